"""Skipping periodic passes that change nothing (issue #9): the traces stay exactly the same.

Every case runs one workload twice through a mode: as the engine runs it, and as a reference
run with skipping switched off (``state.core.quiet[QUIET_OFF] = 1``: every multi-pool refresh,
Cilium operator resync, ipamd tick and CNS tick runs). Every trace and node column must be
equal, value for value; and the skipping run must actually skip (it sets far fewer timers).
The workloads have the shape of ``scenarios/long-quiet.yaml`` (written by the same
generator), smaller and busier, with settings that reach each time rule of the passes
(release delay, decrease interval, ENI minimum age, cooldowns) and timers that tie.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import yaml
from engine_helpers import OP_NODE_ADD, OP_POD_ADD, scenario, workload
from hypothesis import given, settings
from hypothesis import strategies as hst

from ipam_core.pipeline import build_workload
from ipam_core.engine import core
from ipam_core.engine import tables as T
from ipam_core.engine.check import check_invariants
from ipam_core.pipeline.run import Simulation, node_sample_mask, sample_times
from ipam_core.scenario import load_scenario, scenario_for_mode

REPO = Path(__file__).resolve().parents[1]
ALL_MODES = ("kubernetes", "cluster-pool", "multi-pool", "gke", "eni", "aws-vpc-cni", "azure", "crd")
PERIODIC = ("multi-pool", "eni", "aws-vpc-cni", "azure", "crd")  # modes with a periodic pass per node

_spec = importlib.util.spec_from_file_location("long_quiet", REPO / "scenarios" / "long-quiet.py")
long_quiet = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(long_quiet)


def quiet_scenario(tmp_path, *, days=2, nodes=24, pods=90, per_day=80.0, node_gap_days=0.3, shift=0.0, seed=5,
                   patch=None, sample="10m"):
    """A small long-quiet-shaped scenario: its replay file in ``tmp_path``, times shifted by ``shift`` s."""
    table = long_quiet.long_quiet_events(seed=seed, days=days, nodes=nodes, pods=pods, pod_events_per_day=per_day,
                                         node_gap_days=node_gap_days, startup_s=300)
    if shift:
        table = table.set_column(0, "time", pa.array(table.column("time").to_numpy() + shift))
    pacsv.write_csv(table, tmp_path / "events.csv")
    doc = yaml.safe_load((REPO / "scenarios" / "long-quiet.yaml").read_text())
    doc.update({"duration": days * 86400 + 3600, "sampleInterval": sample, "nodeSampleInterval": "2h"})
    doc["workload"]["path"] = "events.csv"
    doc["cloud"]["subnets"] = ["10.1.0.0/22", "10.1.4.0/22", "10.1.8.0/22"]
    for key, value in (patch or {}).items():
        doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) else value
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_scenario(str(tmp_path / "s.yaml"))


def run(scenario, mode, skip, wl=None):
    """Sample a run; with ``skip=False`` every periodic pass runs (the reference)."""
    ms = scenario_for_mode(scenario, mode)
    sim = Simulation(ms, wl if wl is not None else build_workload(scenario), mode)
    sim.state.core.quiet[core.QUIET_OFF] = 0.0 if skip else 1.0
    times = sample_times(ms.duration_s, ms.sample_interval_s)
    every = max(1, int(round(ms.node_sample_interval_s / ms.sample_interval_s)))
    trace, nodes = sim.record(times, node_sample_mask(times.size, every))
    assert check_invariants(sim.state) == []
    return trace, nodes, sim.state


def assert_same_run(scenario, mode, must_skip=True, fewer=4, wl=None):
    trace, nodes, state = run(scenario, mode, skip=True, wl=wl)
    ref_trace, ref_nodes, ref_state = run(scenario, mode, skip=False, wl=wl)
    assert trace.keys() == ref_trace.keys()
    for key in trace:
        np.testing.assert_array_equal(trace[key], ref_trace[key], err_msg=f"{mode}: trace column {key}")
    for key in nodes:
        if key == "cidrs_values":
            assert nodes[key].equals(ref_nodes[key]), f"{mode}: node column {key}"
        else:
            np.testing.assert_array_equal(nodes[key], ref_nodes[key], err_msg=f"{mode}: node column {key}")
    assert ref_state.core.quiet[core.QUIET_COUNT] == 0  # the reference never skips
    timers, ref_timers = state.core.cnt[T.K_SEQ], ref_state.core.cnt[T.K_SEQ]
    if must_skip and mode in PERIODIC:
        assert timers * fewer < ref_timers, f"{mode}: {timers} timers set with skipping, {ref_timers} without"
    return trace


# ---------------------------------------------------------------- every mode, quiet trace with ties
@pytest.mark.parametrize("mode", ALL_MODES)
def test_skipping_quiet_passes_changes_no_column(tmp_path, mode):
    trace = assert_same_run(quiet_scenario(tmp_path), mode)
    assert trace["pods_running"][-1] > 0 and trace["nodes_ready"][-1] > 0


# ---------------------------------------------------------------- each time rule and pass branch
CASES = {
    # Cilium ENI with release: excess waits excessIPReleaseDelay, then goes
    "eni-release": ("eni", {"cilium": {"eni": {"awsReleaseExcessIPs": True}}}),
    # prefixes are never released upstream: the excess mark restarts every delay, those passes run
    "eni-prefixes": ("eni", {"cilium": {"eni": {"awsEnablePrefixDelegation": True, "awsReleaseExcessIPs": True}}}),
    # ipamd: warm IP / minimum targets (shrinks every decreaseInterval), ENIs freed once a minute old
    "vpc-warm-ip": ("aws-vpc-cni", {"cloud": {"awsVpcCni": {"WARM_IP_TARGET": 2, "MINIMUM_IP_TARGET": 6}}}),
    "vpc-warm-eni": ("aws-vpc-cni", {"cloud": {"awsVpcCni": {"WARM_ENI_TARGET": 2}}}),
    "vpc-prefixes": ("aws-vpc-cni", {"cloud": {"awsVpcCni": {"ENABLE_PREFIX_DELEGATION": True,
                                                            "WARM_PREFIX_TARGET": 1}}}),
    "aks-dynamic": ("azure", {"cloud": {"aks": {"podIPAllocationMode": "DynamicIndividual"}}}),
    "aks-static": ("azure", {"cloud": {"aks": {"podIPAllocationMode": "StaticBlock"}}}),
    "crd-static": ("crd", {"cloud": {"crd": {"poolPerNode": 12}}}),
    "crd-release": ("crd", {"cloud": {"crd": {"releaseExcessIPs": True}}}),
    # no debounce and no operator delay: an update's operator pass lands on a skipped refresh's
    "multi-pool-no-delays": ("multi-pool", {"timing": {"ciliumNodeUpdateRate": 0, "operatorSyncInterval": 0}}),
    "multi-pool-slow-retry": ("multi-pool", {"timing": {"podRetryInterval": "7m", "pendingAllocationTTL": "5m"}}),
    # every periodic pass on the same seconds as the operator's and the pod retries
    "vpc-ties": ("aws-vpc-cni", {"timing": {"ipamdPoolInterval": 10, "podRetryInterval": 10,
                                            "operatorSyncInterval": 5}}),
    "eni-ties": ("eni", {"timing": {"ipamResyncInterval": 15, "ciliumNodeUpdateRate": 15}}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_skipping_is_exact_for_each_time_rule(tmp_path, case):
    mode, patch = CASES[case]
    assert_same_run(quiet_scenario(tmp_path, patch=patch), mode, must_skip=case != "eni-prefixes")


def test_operator_passes_due_after_a_fast_forward_still_run(tmp_path):
    # multi-pool's refresh at 60 s sets an operator pass for 69 s. The loop stops at the 63 s sample,
    # so the fast-forward fires the 60 s refresh and must leave its operator pass due. With no
    # debounce, a pod at 64 s raises the node's request at once (9 in use: 24 > 3 CIDRs x 6), and that
    # pending pass carves for it at 69 s, before the update's own pass at 73 s: the 70 s sample sees it.
    patch = {"duration": 120, "sampleInterval": 7, "modes": ["multi-pool"],
             "timing": {"ciliumNodeUpdateRate": 0, "operatorSyncInterval": 9, "multiPoolRefresh": 20},
             "cilium": {"ipam": {"operator": {"clusterPoolIPv4MaskSize": 29}}}}  # 6 addresses per CIDR
    sc = scenario(tmp_path, patch)
    events = [(0.0, OP_NODE_ADD, 0, -1)] + [(1.0 + p, OP_POD_ADD, 0, p) for p in range(6)]
    wl = workload(events + [(64.0, OP_POD_ADD, 0, 6)], 1)
    trace = assert_same_run(sc, "multi-pool", must_skip=False, wl=wl)  # (a fast-forward sets as many timers)
    at = dict(zip(trace["time_s"].tolist(), trace["cidr_carves"].tolist()))
    assert at[63.0] == 3 and at[70.0] == 4  # carved by the 60 s refresh's pass at 69 s


@pytest.mark.parametrize("mode", PERIODIC)
def test_skipping_is_exact_with_times_that_are_not_whole_seconds(tmp_path, mode):
    # 0.37 s is no multiple of a power of two: the fast-forward adds periods one by one
    assert_same_run(quiet_scenario(tmp_path, shift=0.37, days=1), mode)


@pytest.mark.parametrize("mode", ("eni", "aws-vpc-cni", "azure", "multi-pool"))
def test_nodes_blocked_on_full_subnets_keep_their_passes(tmp_path, mode):
    # /26 subnets and pools for 24 nodes: pools run dry, passes read the shared subnets, no node is quiet for long
    patch = {"cloud": {"subnets": ["10.1.0.0/26", "10.1.0.64/26", "10.1.0.128/26"]},
             "cilium": {"ipam": {"operator": {"clusterPoolIPv4PodCIDRList": ["10.64.0.0/24"],
                                              "clusterPoolIPv4MaskSize": 28}}}}
    assert_same_run(quiet_scenario(tmp_path, patch=patch, days=1), mode, must_skip=False)


def test_the_cloud_modes_scenario_is_unchanged(tmp_path):
    # a busy cluster: few passes can be skipped, none may change anything
    doc = yaml.safe_load((REPO / "scenarios" / "cloud-modes.yaml").read_text())
    doc["duration"] = "4m"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    scenario = load_scenario(str(tmp_path / "c.yaml"))
    for mode in scenario.modes:
        assert_same_run(scenario, mode, must_skip=False)


# ---------------------------------------------------------------- the fast-forward's arithmetic
def loop_grid(t, period, until):
    """What the loop does: fire while before ``until``, set again ``period`` later."""
    fired, last = 0, t
    while t < until:
        fired, last, t = fired + 1, t, t + period
    return fired, last, t


@settings(max_examples=300, deadline=None)
@given(t=hst.one_of(hst.integers(0, 10**7).map(float), hst.floats(0, 1e7, allow_nan=False)),
       period=hst.sampled_from([1.0, 5.0, 60.0, 0.5, 0.1, 7.3, 15.0]),
       ahead=hst.floats(0, 5e4, allow_nan=False))
def test_grid_matches_adding_the_period_again_and_again(t, period, ahead):
    until = t + ahead
    assert core._grid(t, period, until) == loop_grid(t, period, until)
