"""Record ``tests/data/migration-golden.json`` (what ``tests/test_migration_scale.py`` compares with).

Run from the repository root::

    python tests/data/record_migration_golden.py            # list the entries that differ, write nothing
    python tests/data/record_migration_golden.py --write    # and rewrite the file

Only after a change that is meant to change the migration's outputs: the test exists to catch the ones
that are not. The list names each replay field and plan row that moved, for the commit message.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from test_migration_scale import PLANS, SCENARIOS, _digest, _plain  # noqa: E402

from ipam_core.migration import plan_migration, run_migration  # noqa: E402
from ipam_core.scenario import load_scenario  # noqa: E402

GOLDEN = ROOT / "tests" / "data" / "migration-golden.json"


def replay_entry(name: str) -> dict:
    result = run_migration(load_scenario(ROOT / "scenarios" / f"{name}.yaml"))
    return {
        "summary": _plain(result.summary),
        "step_rows": _digest(result.step_rows),
        "node_rows": _digest(result.node_rows),
        "pod_rows": _digest(result.pod_rows),
        "events": _digest(result.events),
        "observations": _digest(sorted(result.observations.items())),
        "conflicts": _digest([(c.time_s, c.address, c.pods) for c in result.conflicts]),
    }


def plan_entry(name: str, kwargs: dict) -> tuple[str, dict]:
    plan = plan_migration(load_scenario(ROOT / "scenarios" / f"{name}.yaml"), **kwargs)
    key = (f"{name} " + " ".join(f"{k}={v}" for k, v in sorted(kwargs.items()))).strip()
    return key, {"nodes": plan.nodes, "pods": plan.pods, "rows": [_plain(vars(row)) for row in plan.rows]}


def differences(old: dict, new: dict, where: str) -> list[str]:
    out = []
    for field in sorted(set(old) | set(new)):
        if old.get(field) == new.get(field):
            continue
        if isinstance(new.get(field), dict) and isinstance(old.get(field), dict):
            changed = [k for k in new[field] if old[field].get(k) != new[field][k]]
            out.append(f"{where} {field}: " + ", ".join(f"{k} {old[field].get(k)} -> {new[field][k]}" for k in changed))
        elif field == "rows":
            for o, n in zip(old[field], new[field]):
                moved = {k: (o.get(k), v) for k, v in n.items() if o.get(k) != v}
                if moved:
                    out.append(f"{where} {n['strategy']}: "
                               + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in moved.items()))
        else:
            out.append(f"{where} {field}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the golden file")
    args = parser.parse_args()
    old = json.loads(GOLDEN.read_text())
    new = {"plan": {}, "replay": {}}
    for name in SCENARIOS:
        new["replay"][name] = replay_entry(name)
        for kwargs in PLANS:
            key, entry = plan_entry(name, kwargs)
            new["plan"][key] = entry
    lines = []
    for kind in ("replay", "plan"):
        for key in sorted(new[kind]):
            lines += differences(old[kind].get(key, {}), new[kind][key], f"{kind} {key}:")
    print("\n".join(lines) or "no difference")
    if args.write:
        GOLDEN.write_text(json.dumps(new, indent=1, sort_keys=True))
        print(f"wrote {GOLDEN.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
