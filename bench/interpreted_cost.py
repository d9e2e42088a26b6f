"""CPU time per workload event of the interpreted engine (the kernels' Python source), per scenario and mode.

``ipam_core.pipeline.engine_choice.EVENT_COST_S`` estimates from this, before a run starts, whether a
run on a cold kernel cache is cheaper interpreted than compiled. Each mode runs once through
``run_mode`` in a process with the JIT off; the workload is built first and not timed.

Usage (from the repository root)::

    NUMBA_DISABLE_JIT=1 PYTHONPATH=$PWD python -W ignore bench/interpreted_cost.py default scenarios/cloud-modes.yaml

The figures are recorded in results/first-run.md.
"""

from __future__ import annotations

import sys
import time

from numba.core import config

from ipam_core.pipeline import build_workload
from ipam_core.pipeline.run import run_mode
from ipam_core.scenario import load_scenario, scenario_for_mode


def main(paths: list[str]) -> None:
    if not config.DISABLE_JIT:
        sys.exit("set NUMBA_DISABLE_JIT=1: this measures the interpreted engine")
    print(f"{'scenario':28s} {'mode':14s} {'nodes':>6s} {'events':>8s} {'CPU s':>7s} {'µs/event':>9s}")
    for path in paths:
        scenario = load_scenario(path)
        workload = build_workload(scenario)
        for mode in scenario.modes:
            start = time.process_time()
            run_mode(scenario_for_mode(scenario, mode), workload, mode)
            seconds = time.process_time() - start
            events = len(workload.time)
            print(f"{scenario.name:28s} {mode:14s} {scenario.cluster.nodes:6d} {events:8d} {seconds:7.2f} "
                  f"{seconds / events * 1e6:9.1f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["default"])
