"""Sweeps: many scenarios from one base and a few axes, run in parallel, results keyed by parameters.

>>> from ipam_core.sweep import load_spec, run_sweep
>>> spec = load_spec("scenarios/sweeps/mask-size.yaml")
>>> run = run_sweep(spec, "out/sweep-mask-size", workers=2)     # doctest: +SKIP
>>> run.table_path                                               # doctest: +SKIP
PosixPath('out/sweep-mask-size/sweep.parquet')

Spec schema: docs/sweep.md.
"""

from ipam_core.sweep.aggregate import aggregate, t_interval
from ipam_core.sweep.results import WALL_COLUMNS, read_sweep
from ipam_core.sweep.run import SweepRun, plan, run_sweep
from ipam_core.sweep.spec import Axis, Point, SweepSpec, load_spec, parse_spec, resolve_path

__all__ = ["Axis", "Point", "SweepRun", "SweepSpec", "WALL_COLUMNS", "aggregate", "load_spec", "parse_spec", "plan",
           "read_sweep", "resolve_path", "run_sweep", "t_interval"]
