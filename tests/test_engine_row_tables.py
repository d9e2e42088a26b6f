"""The per-pod and per-node tables are int32, one 64-byte cache line per row, and refuse what would not fit.

Issue #9 (memory-bound scale): at 100,000 nodes x 30 pods the pods table was 120 bytes a row
(int64) and the event loop waited on memory. Its rows are now 16 int32 columns, line-aligned;
a run whose ids or counts would overflow int32 is refused once, when the tables are built.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ipam_core.pipeline import build_workload
from ipam_core.pipeline.run import Simulation, engine_config, workload_facts
from ipam_core.engine.state import INT32_MAX, build_state, check_int32_fit
from ipam_core.errors import ConfigError
from ipam_core.scenario import load_scenario, scenario_for_mode

MODES = ("kubernetes", "cluster-pool", "multi-pool")


def _row_tables(state):
    return {"pods": state.core.pod_tables.pods, "nodes": state.core.nodes}


@pytest.mark.parametrize("mode", MODES)
def test_pod_and_node_rows_are_one_aligned_cache_line(mode):
    sc = load_scenario("default")
    w = build_workload(sc)
    sim = Simulation(scenario_for_mode(sc, mode), w, mode)
    b = workload_facts(w, sim.config.pod_retry_s)
    # the Simulation built it table by table; this one is copied from the per-process template
    again = build_state(sim.layout, sim.config, len(w.node_names), w.n_pods, b.node_adds, b.max_live, b.stale_timers)
    for state in (sim.state, again):
        for name, table in _row_tables(state).items():
            assert table.dtype == np.int32, name
            assert table.shape[1] * table.itemsize == 64, name
            assert table.ctypes.data % 64 == 0, name
            assert table.flags.c_contiguous and table.flags.writeable, name


def test_pod_failed_at_has_a_row_per_pod_in_multi_pool_alone():
    sc = load_scenario("default")
    w = build_workload(sc)
    sims = {mode: Simulation(scenario_for_mode(sc, mode), w, mode) for mode in MODES}
    assert sims["multi-pool"].state.core.pod_tables.pod_failed_at.shape == (sims["multi-pool"].state.core.pod_tables.pods.shape[0],)
    assert sims["cluster-pool"].state.core.pod_tables.pod_failed_at.shape == (1,)
    assert sims["kubernetes"].state.core.pod_tables.pod_failed_at.shape == (1,)


def test_int32_limits_are_inclusive():
    check_int32_fit(INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX)  # no error


@pytest.mark.parametrize("field, message", [
    ("max_live", "pods alive at once: 2,147,483,648"),
    ("node_adds", "node-add events: 2,147,483,648"),
])
def test_a_run_too_big_for_int32_is_refused_in_one_line_before_any_table(field, message):
    sc = scenario_for_mode(load_scenario("default"), "cluster-pool")
    w = build_workload(sc)
    bounds = dataclasses.replace(workload_facts(w, engine_config(sc).pod_retry_s), **{field: INT32_MAX + 1})
    with pytest.raises(ConfigError) as err:
        Simulation(sc, w, "cluster-pool", bounds=bounds)  # without the check: hundreds of GB asked for
    text = str(err.value)
    assert "\n" not in text and text.startswith(message) and "2,147,483,647" in text


def test_too_many_pod_ids_are_refused():
    sc = scenario_for_mode(load_scenario("default"), "cluster-pool")
    w = dataclasses.replace(build_workload(sc), n_pods=INT32_MAX + 1)
    with pytest.raises(ConfigError, match=r"^pod ids: 2,147,483,648 do not fit"):
        Simulation(sc, w, "cluster-pool")
