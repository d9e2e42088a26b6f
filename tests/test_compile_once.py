"""Cold start: the engine's compiled functions compile once per argument type, never per literal value.

A jitted callee used to compile once for each constant it was called with (``_ring_reverse`` five times
per rules family, the cloud ``_assign`` seven times) and once more for int32 pod rows: each such compile
costs a fraction of a second to seconds with an empty cache (results/first-run.md). Literal signatures
only appear while callers compile (a warm cache loads just the signatures asked for), so the run is a
process of its own with an empty kernel cache: one node-CIDR mode through the loop, then every ipam_core
dispatcher is checked for a literal signature, or two signatures for one State class that differ only in
the width of an integer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

PROBE = r"""
import importlib, pkgutil, sys
from numba.core import types
from numba.core.dispatcher import Dispatcher
import ipam_core
from ipam_core.pipeline import simulate
from engine_helpers import scenario

def literal(t):
    return isinstance(t, types.Literal) or (isinstance(t, types.BaseTuple) and any(literal(x) for x in t))

def widened(sig):
    return tuple(types.int64 if isinstance(t, types.Integer) and t.signed else t for t in sig)

simulate(scenario(__import__("pathlib").Path(sys.argv[1]), {"duration": "3m"}), ["kubernetes"])
checked = 0
for info in pkgutil.walk_packages(ipam_core.__path__, "ipam_core."):
    if not info.name.startswith(("ipam_core.engine", "ipam_core.modes", "ipam_core.kernels", "ipam_core.cloud")):
        continue
    for name, disp in vars(importlib.import_module(info.name)).items():
        if not isinstance(disp, Dispatcher) or disp.py_func.__module__ != info.name:
            continue
        checked += len(disp.signatures)
        for sig in disp.signatures:
            if any(literal(t) for t in sig):
                print(f"LITERAL {info.name}.{name} {sig}")
        if len({widened(s) for s in disp.signatures}) != len(disp.signatures):
            print(f"WIDTHS {info.name}.{name} {disp.signatures}")
print(f"checked {checked} signatures")
"""


def test_no_literal_or_narrow_int_specialisations_with_an_empty_cache(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    offending = [line for line in done.stdout.splitlines() if line.startswith(("LITERAL", "WIDTHS"))]
    assert not offending, "\n".join(line[:300] for line in offending)
    checked = int(done.stdout.split("checked ")[1].split()[0])
    assert checked > 20  # the loop's functions were compiled in the probe and seen by the check
