"""Time run_mode on the engine-1M-events workload (bench/test_bench_engine.py) and the default scenario.

Usage: python results/lifecycle-overhead.py REPO_ROOT ROUNDS [MODE]   (MODE: cluster-pool (default) or
multi-pool for the 1M workload). Prints the min and median seconds of ROUNDS runs each, after a warm-up.
Used for results/lifecycle-overhead.md (base and change interleaved, each in its own NUMBA_CACHE_DIR).
"""

import sys
import time

import numpy as np

sys.path.insert(0, sys.argv[1] + "/bench")
from test_bench_engine import scenario_1m, workload_1m  # noqa: E402

from ipam_core.pipeline import build_workload, warmup  # noqa: E402
from ipam_core.pipeline.run import run_mode  # noqa: E402
from ipam_core.scenario import load_scenario, scenario_for_mode  # noqa: E402

mode = sys.argv[3] if len(sys.argv) > 3 else "cluster-pool"
warmup()
big = scenario_for_mode(scenario_1m(), mode)
events = workload_1m()
default = load_scenario("default")
small = scenario_for_mode(default, "multi-pool")
small_events = build_workload(default)
run_mode(big, events, mode)
run_mode(small, small_events, "multi-pool")
for label, sc, w, m in ((f"1M {mode}", big, events, mode), ("default multi-pool", small, small_events, "multi-pool")):
    times = []
    for _ in range(int(sys.argv[2])):
        t0 = time.perf_counter()
        run_mode(sc, w, m)
        times.append(time.perf_counter() - t0)
    print(label, "min %.4f s median %.4f s" % (min(times), float(np.median(times))))
