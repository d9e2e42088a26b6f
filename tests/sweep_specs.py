"""Small sweep specs over a tiny scenario (4 nodes, 2 minutes) for the sweep tests."""

from __future__ import annotations

import yaml

from engine_helpers import BASE, merge

TINY = merge(BASE, {"duration": "2m", "timing": {"podPendingTimeout": "30s"}, "cluster": {"nodes": 3}, "workload": {"podsPerNode": 40, "churnPerSecond": 1}})


def write_spec(tmp_path, axes: dict, name: str = "spec.yaml", base: dict | None = None, **extra) -> str:
    """Write the tiny base scenario and a spec sweeping ``axes`` over it; return the spec path."""
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base or TINY, sort_keys=False))
    spec = {"name": "t", "base": "base.yaml", "axes": axes, **extra}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path)
