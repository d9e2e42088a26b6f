"""Cold start: the engine's compiled functions compile once per argument type, never per literal value.

A jitted callee used to compile once for each constant it was called with (``_ring_reverse`` five times
per rules family, the cloud ``_assign`` seven times) and once more for int32 pod rows: each such compile
costs a fraction of a second to seconds with an empty cache (results/first-run.md). After running two
rules families and the cloud family, no ipam_core dispatcher may hold a literal signature, nor two
signatures for one State class that differ only in the width of an integer.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from numba.core import types
from numba.core.dispatcher import Dispatcher

import ipam_core
from ipam_core.engine import simulate
from ipam_core.scenario import load_scenario
from engine_helpers import scenario


def _dispatchers():
    for info in pkgutil.walk_packages(ipam_core.__path__, "ipam_core."):
        if not (info.name.startswith("ipam_core.engine") or info.name.startswith("ipam_core.kernels")
                or info.name.startswith("ipam_core.cloud")):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, Dispatcher) and value.py_func.__module__ == info.name:
                yield f"{info.name}.{name}", value


def _literal(t) -> bool:
    if isinstance(t, types.Literal):
        return True
    return isinstance(t, types.BaseTuple) and any(_literal(x) for x in t)


def _widened(sig):
    return tuple(types.int64 if isinstance(t, types.Integer) and t.signed else t for t in sig)


ROOT = Path(__file__).resolve().parents[1]


def test_no_literal_or_narrow_int_specialisations_after_three_families(tmp_path):
    simulate(scenario(tmp_path, {"duration": "3m"}), ["kubernetes", "multi-pool"])
    simulate(load_scenario(str(ROOT / "scenarios" / "cloud-modes.yaml")), ["eni"])
    seen = {}
    for name, disp in _dispatchers():
        literal = [sig for sig in disp.signatures if any(_literal(t) for t in sig)]
        assert not literal, f"{name} compiled for literal arguments: {literal}"
        widened = [_widened(sig) for sig in disp.signatures]
        assert len(widened) == len(set(widened)), f"{name} compiled once per integer width: {disp.signatures}"
        seen[name] = len(disp.signatures)
    # the check saw the loop's functions: the two families compiled the shared ones
    assert seen["ipam_core.engine.core._push"] >= 1
    assert seen["ipam_core.engine.sampling.sample_run"] >= 3  # node-CIDR, multi-pool and cloud states
