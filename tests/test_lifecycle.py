"""Node lifecycle (issue #12 item 5): drains, node-group scaling, spot interruptions, stranded CIDRs.

What each test holds: the vocabulary's bad inputs fail on one line; the
lifecycle's node events are seeded and leave the generator's own events
alone; a drain evicts and reschedules, and each mode keeps on the drained
node what its upstream rule keeps; the released-CIDR fault strands CIDRs,
fails pods with free addresses elsewhere, and an agent restart or the
PR #46674 reclaim undoes it; the compiled engine agrees column for column
with the plain-Python baseline on lifecycle workloads; a run without a
lifecycle has no lifecycle trace columns.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from ipam_core.pipeline import simulate, summarize, trace_tables
from ipam_core.pipeline.run import run_mode, sample_times
from ipam_core.errors import ConfigError
from ipam_core.scenario import scenario_for_mode
from ipam_core.trace import TRACE_SCHEMA
from ipam_core.trace.schema import TRACE_LIFECYCLE_SCHEMA
from ipam_core.workloads import generate, parse_workload
from ipam_core.workloads.events import OP_AGENT_RESTART, OP_NODE_ADD, OP_NODE_DEL, OP_NODE_DRAIN
from ipam_core.workloads.lifecycle import parse_lifecycle

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from baseline_engine import run_baseline  # noqa: E402
from test_engine_vs_baseline import assert_same_trace, make_scenario, workload_of  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CHURN = {"generator": "steady-churn", "podsPerNode": 20, "churnPerSecond": 2, "fillQps": 20}


# ---------------------------------------------------------------------------- vocabulary
@pytest.mark.parametrize(
    "raw, key, expected",
    [
        ({"drains": [{"at": -1, "nodes": 2}]}, "drains[0].at", "seconds >= 0"),
        ({"drains": [{"at": 10, "nodes": 0}]}, "drains[0].nodes", "an integer > 0"),
        ({"drains": [{"nodes": 2}]}, "drains[0].at is missing", "expected a value"),
        ({"drains": []}, "drains", "a non-empty list"),
        ({"scale": [{"at": 5, "add": 2, "remove": 1}]}, "scale[0]", "exactly one of add or remove"),
        ({"scale": [{"at": 5, "add": 2, "drainTime": 3}]}, "scale[0].drainTime", "only with remove"),
        ({"spotInterruptions": {"perHour": 0}}, "spotInterruptions.perHour", "> 0"),
        ({"spotInterruptions": {"perHour": 2, "replace": "yes"}}, "spotInterruptions.replace", "true or false"),
        ({"agentRestarts": "1m"}, "agentRestarts", "a non-empty list"),
        ({"releasedCIDRs": "lost"}, "releasedCIDRs", "one of freed, stranded, reclaimed"),
        ({"drain": []}, "drain", "one of the keys"),
    ],
)
def test_bad_lifecycle_names_key_value_and_expectation(raw, key, expected):
    with pytest.raises(ConfigError) as err:
        parse_workload({**CHURN, "lifecycle": raw})
    message = str(err.value)
    assert "\n" not in message
    assert f"workload.lifecycle.{key}" in message and expected in message


def test_bad_lifecycle_on_the_command_line_exits_2_and_writes_nothing(tmp_path):
    import subprocess

    doc = yaml.safe_load((REPO / "scenarios/questions/drained-node-holds-addresses.yaml").read_text())
    doc["workload"]["lifecycle"] = {"spotInterruptions": {"perHour": -3}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "ipam_core", "run", str(path), "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "spotInterruptions.perHour" in proc.stderr
    assert "-3" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_lifecycle_round_trips():
    raw = {"drains": [{"at": 60, "nodes": 2, "deleteAfter": 30}], "scale": [{"at": 5, "add": 1},
           {"at": 9, "remove": 2, "drainTime": 4}], "spotInterruptions": {"perHour": 3, "notice": 90,
           "replace": False}, "agentRestarts": [100], "releasedCIDRs": "reclaimed"}
    spec = parse_lifecycle(raw)
    assert parse_lifecycle(spec.to_raw()) == spec
    assert parse_workload(parse_workload({**CHURN, "lifecycle": raw}).to_raw()).lifecycle == spec


# ---------------------------------------------------------------------------- events
def _generate(lifecycle, seed=3, nodes=6, duration=1800.0, **workload):
    spec = parse_workload({**CHURN, **workload, **({"lifecycle": lifecycle} if lifecycle else {})})
    return generate(spec, nodes=nodes, max_pods=110, namespaces=[], duration_s=duration, seed=seed)


def test_lifecycle_events_are_seeded_and_leave_the_pod_events_alone():
    life = {"spotInterruptions": {"perHour": 12}, "drains": [{"at": 400, "nodes": 2, "deleteAfter": 60}],
            "scale": [{"at": 200, "add": 3}, {"at": 900, "remove": 2}], "agentRestarts": [1000]}
    a, b, plain = _generate(life), _generate(life), _generate(None)
    for column in ("time", "op", "node", "pod"):
        assert np.array_equal(getattr(a, column), getattr(b, column))
    pods = a.pod >= 0
    assert np.array_equal(a.time[pods], plain.time[plain.pod >= 0])
    assert np.array_equal(a.pod[pods], plain.pod[plain.pod >= 0])
    assert a.node_names[:6] == plain.node_names and len(a.node_names) > 6
    other = _generate(life, seed=4)
    assert not np.array_equal(other.time[other.op == OP_NODE_DRAIN], a.time[a.op == OP_NODE_DRAIN])


def test_spot_interruption_drains_then_deletes_after_the_notice_and_replaces():
    w = _generate({"spotInterruptions": {"perHour": 6, "notice": 120}}, duration=3600.0)
    drains = np.flatnonzero(w.op == OP_NODE_DRAIN)
    assert len(drains) >= 2
    for i in drains:
        node, t = w.node[i], w.time[i]
        gone = np.flatnonzero((w.op == OP_NODE_DEL) & (w.node == node))
        if t + 120 <= 3600:
            assert len(gone) == 1 and w.time[gone[0]] == t + 120
            joined = np.flatnonzero((w.op == OP_NODE_ADD) & (w.time == t + 120))
            assert len(joined) >= 1  # a replacement joins when the instance goes
    # the node count stays at 6 after every interruption's replacement
    present = np.cumsum(np.where(w.op == OP_NODE_ADD, 1, 0) - np.where(w.op == OP_NODE_DEL, 1, 0))
    assert present[-1] == 6


def test_scale_down_only_takes_nodes_present_and_agent_restarts_every_present_node():
    w = _generate({"scale": [{"at": 100, "add": 2}, {"at": 300, "remove": 7}], "agentRestarts": [600]})
    removed = w.node[(w.op == OP_NODE_DEL)]
    assert len(removed) == 7  # 8 present, all but one could go; 7 asked
    restarts = w.node[w.op == OP_AGENT_RESTART]
    assert len(restarts) == 1 and restarts[0] not in removed


# ---------------------------------------------------------------------------- engine
def _drain_scenario(mode_pool_mask=26, scheduler="spread", lifecycle=None, **kw):
    life = lifecycle or {"drains": [{"at": 300, "nodes": 2}]}
    return make_scenario("lifecycle", nodes=8, scheduler=scheduler, mask_v4=mode_pool_mask,
                         workload={**CHURN, "lifecycle": life}, **kw)


def test_drain_evicts_reschedules_and_each_mode_keeps_its_rule():
    scenario = _drain_scenario()
    result = simulate(scenario)
    trace, _ = trace_tables(result)
    assert trace.schema.names == TRACE_LIFECYCLE_SCHEMA.names
    t = trace.to_pydict()
    modes = np.asarray(trace.column("mode").to_pylist())
    time = np.asarray(t["time_s"])
    after = time >= 400
    for mode in ("kubernetes", "cluster-pool", "multi-pool"):
        rows = (modes == mode) & after
        evicted = np.asarray(t["pods_evicted"])[rows]
        # 160 pods on 8 nodes spread evenly: 2 drained nodes had ~40 pods between them
        assert 30 <= evicted[-1] <= 50
        assert (np.asarray(t["nodes_cordoned"])[rows] == 2).all()
        assert (np.asarray(t["pods_running"])[rows][-1]) == 160  # every replacement runs elsewhere
        # a /26 each: the node CIDR until the node is deleted (kubernetes, cluster-pool); multi-pool's agent
        # keeps its first /26, which holds router, health and the pre-allocation buffer
        assert (np.asarray(t["addrs_held_cordoned"])[rows] == 2 * 64).all()
    summary = summarize(result).to_pylist()
    assert all(row["pods_evicted"] >= 30 and row["peak_held_cordoned"] > 0 for row in summary)


def test_multi_pool_drained_node_gives_back_all_but_its_buffer():
    scenario = make_scenario("lifecycle-mp", nodes=8, mask_v4=28, scheduler="spread",
                             workload={**CHURN, "lifecycle": {"drains": [{"at": 300, "nodes": 2}]}})
    trace = run_mode(scenario_for_mode(scenario, "multi-pool"), workload_of(scenario), "multi-pool").trace
    time = trace["time_s"]
    before, after = trace["addrs_held_cordoned"][time < 300], trace["addrs_held_cordoned"][time >= 500]
    assert (before == 0).all()
    # 20 pods + router + health need neededIPCeil(22, 8) = 32: three /28s (14 usable each). Drained, the
    # agent needs neededIPCeil(2, 8) = 16, a free buffer of 14: it gives back the last /28 (40 - 14 = 26
    # free left >= 14) but not the second (26 - 14 = 12 < 14): two /28s (2 x 16 addresses) per node stay
    assert (after == 2 * 2 * 16).all()


def test_no_lifecycle_no_lifecycle_columns():
    scenario = make_scenario("plain", nodes=4, workload=CHURN, duration="2m")
    trace, _ = trace_tables(simulate(scenario, ["cluster-pool"]))
    assert trace.schema.equals(TRACE_SCHEMA, check_metadata=False)


# ---------------------------------------------------------------------------- stranded CIDRs
STRAND_CHURN = {"generator": "steady-churn", "podsPerNode": 16, "churnPerSecond": 4, "fillQps": 20}
# every node's pods come, all go, and come again: the agent gives CIDRs back between the bursts
STRAND_BURSTS = {"generator": "burst", "podsPerNode": 40, "qps": 40, "hold": 240, "repeats": 3, "gap": 120}


def _strand(released, restarts=None, duration="20m"):
    life = {"releasedCIDRs": released, **({"agentRestarts": restarts} if restarts else {})}
    scenario = make_scenario("strand", nodes=8, mask_v4=28, scheduler="spread", duration=duration, sample="10s",
                             workload={**STRAND_BURSTS, "lifecycle": life}, timeout="2m")
    scenario = scenario_for_mode(scenario, "multi-pool")
    return run_mode(scenario, workload_of(scenario), "multi-pool").trace


def test_stranded_cidrs_fail_pods_while_addresses_are_free_and_reclaim_fixes_it():
    freed, stranded, reclaimed = _strand("freed"), _strand("stranded"), _strand("reclaimed")
    assert freed["cidrs_stranded"].max() == 0
    assert stranded["cidrs_stranded"].max() > 0
    assert stranded["addrs_stranded"].max() == 14 * stranded["cidrs_stranded"].max()  # /28: 14 usable each
    # the operator counts a stranded CIDR as the node's: it does not carve, the agent cannot allocate
    assert stranded["pods_failed"][-1] > freed["pods_failed"][-1]
    assert stranded["pods_failed_free_elsewhere"][-1] > 0
    assert reclaimed["pods_failed"][-1] < stranded["pods_failed"][-1]
    assert stranded["cidr_releases"][-1] < freed["cidr_releases"][-1]  # stranded CIDRs never go back


def test_agent_restart_makes_stranded_cidrs_usable_again():
    trace = _strand("stranded", restarts=[900.0])
    time = trace["time_s"]
    assert trace["cidrs_stranded"][(time < 900)].max() > 0
    assert trace["cidrs_stranded"][time == 900][0] == 0  # the sample at 900 s follows the restart


# ---------------------------------------------------------------------------- against the baseline
BASELINE_CASES = {
    "drain": {"drains": [{"at": 200, "nodes": 2, "deleteAfter": 200}], "scale": [{"at": 300, "add": 2}]},
    "spot": {"spotInterruptions": {"perHour": 30, "notice": 120}},
    "scale-down": {"scale": [{"at": 250, "remove": 3, "drainTime": 30}]},
    "stranded": {"releasedCIDRs": "stranded", "agentRestarts": [400], "drains": [{"at": 200, "nodes": 2}]},
    "reclaimed": {"releasedCIDRs": "reclaimed", "drains": [{"at": 200, "nodes": 1}]},
}


POOL_MODES = ("kubernetes", "cluster-pool", "multi-pool")


@pytest.mark.parametrize(
    "case, mode",
    [(case, mode) for case in sorted(BASELINE_CASES) for mode in POOL_MODES
     if mode == "multi-pool" or "releasedCIDRs" not in BASELINE_CASES[case]],  # the fault model is multi-pool's
)
def test_engine_matches_baseline_with_lifecycle(case, mode):
    workload = {**STRAND_CHURN, "churnPerSecond": 2, "lifecycle": BASELINE_CASES[case]}
    scenario = make_scenario(case, nodes=8, mask_v4=27, max_pods=40, scheduler="spread", duration="10m",
                             workload=workload, timeout="1m")
    scenario = scenario_for_mode(scenario, mode)
    events = workload_of(scenario)
    engine = run_mode(scenario, events, mode).trace
    baseline = run_baseline(scenario, events, mode, sample_times(scenario.duration_s, scenario.sample_interval_s))
    assert_same_trace(engine, baseline, f"{case}/{mode}")
    # what the case must exercise, on the engine's side
    assert engine["pods_evicted"][-1] > 0
    if case == "stranded":
        assert engine["cidrs_stranded"].max() > 0


@pytest.mark.parametrize("mode", ["eni", "aws-vpc-cni"])
def test_cloud_engine_matches_oracle_with_drains(mode):
    from test_cloud_vs_baseline import CHURN as CLOUD_CHURN
    from test_cloud_vs_baseline import cloud_scenario
    from test_cloud_vs_baseline import compare as cloud_compare

    life = {"drains": [{"at": 200, "nodes": 1, "deleteAfter": 200}], "spotInterruptions": {"perHour": 20}}
    scenario = cloud_scenario("lifecycle-cloud", nodes=5, workload={**CLOUD_CHURN, "lifecycle": life})
    engine, _ = cloud_compare(scenario, mode)
    assert engine["pods_evicted"][-1] > 0 and engine["addrs_held_cordoned"].max() > 0


@pytest.mark.parametrize("scenario_file, mode", [
    ("drained-node-holds-addresses.yaml", "cluster-pool"),
    ("drained-node-holds-addresses.yaml", "multi-pool"),
    ("drained-node-holds-addresses.yaml", "eni"),
    ("stranded-cidrs.yaml", "multi-pool"),
])
def test_lifecycle_columns_sample_what_the_state_says(scenario_file, mode):
    from ipam_core.scenario import load_scenario
    from test_engine_sampling import assert_same_as_reference, short

    assert_same_as_reference(short(load_scenario(REPO / "scenarios/questions" / scenario_file), 10), mode)


def test_lifecycle_events_write_and_replay(tmp_path):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from ipam_core.workloads import read_events

    w = _generate({"drains": [{"at": 100, "nodes": 2, "deleteAfter": 50}], "scale": [{"at": 60, "add": 1}],
                   "agentRestarts": [300]}, duration=600.0)
    table = w.to_arrow().select(["time", "op", "node", "pod", "namespace"])
    plain = pa.table({name: table[name].cast(pa.string()) if name != "time" else table[name]
                      for name in table.column_names})
    pacsv.write_csv(plain, tmp_path / "events.csv")
    back = read_events(tmp_path / "events.csv")
    assert np.array_equal(back.op, w.op) and np.array_equal(back.time, w.time)
    node_rows = w.pod < 0
    assert [w.node_names[n] for n in w.node[node_rows]] == [back.node_names[n] for n in back.node[node_rows]]
    assert (back.op == OP_NODE_DRAIN).sum() == 2 and (back.op == OP_AGENT_RESTART).sum() > 0


@pytest.mark.parametrize("life, key", [
    ({"scale": [{"at": 10, "add": 200_000}]}, "workload.lifecycle.scale"),
    ({"spotInterruptions": {"perHour": 1e9}}, "workload.lifecycle.spotInterruptions.perHour"),
    ({"drains": [{"at": 1, "nodes": 1, "deleteAfter": 1e12}]}, "workload.lifecycle.drains[0].deleteAfter"),
])
def test_lifecycle_sizes_beyond_the_limits_are_refused_at_load(life, key):
    with pytest.raises(ConfigError) as err:
        make_scenario("too-big", nodes=4, workload={**CHURN, "lifecycle": life})
    assert key in str(err.value) and "\n" not in str(err.value)
