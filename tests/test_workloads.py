"""Workload layer: event-array invariants, spec parsing, generators and file replay."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as paipc
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipam_core.errors import ConfigError
from ipam_core.workloads import (
    OP_NODE_ADD,
    OP_NODE_DEL,
    OP_POD_ADD,
    OP_POD_DEL,
    SPEC_TYPES,
    ReplaySpec,
    SteadyChurnSpec,
    Workload,
    generate,
    merge,
    parse_workload,
    read_events,
    truncate,
)

DATA = Path(__file__).parent / "data"
COLUMNS = ("time", "op", "node", "pod", "namespace", "pool")


# ---------------------------------------------------------------------- helpers
def gen(raw: dict, *, nodes=10, max_pods=110, namespaces=("a", "b", "c"), duration_s=600.0, seed=7) -> Workload:
    return generate(parse_workload(raw), nodes=nodes, max_pods=max_pods, namespaces=list(namespaces),
                    duration_s=duration_s, seed=seed)


def same_events(a: Workload, b: Workload) -> bool:
    return (all(np.array_equal(getattr(a, c), getattr(b, c)) for c in COLUMNS)
            and (a.node_names, a.namespaces, a.pool_names, a.n_pods)
            == (b.node_names, b.namespaces, b.pool_names, b.n_pods))


def live_pods(w: Workload) -> np.ndarray:
    """Pods created minus pods deleted after each event (node deletes not counted)."""
    return np.cumsum((w.op == OP_POD_ADD).astype(np.int64) - (w.op == OP_POD_DEL))


def live_nodes(w: Workload) -> np.ndarray:
    return np.cumsum((w.op == OP_NODE_ADD).astype(np.int64) - (w.op == OP_NODE_DEL))


def make(time, op, node, pod, namespace, pool, *, nodes=2, namespaces=("ns",), pools=(), n_pods=None):
    pod = np.asarray(pod)
    n = int(pod.max()) + 1 if n_pods is None and (pod >= 0).any() else (n_pods or 0)
    return Workload(np.asarray(time, float), op, node, pod, namespace, pool,
                    [f"n{i}" for i in range(nodes)], list(namespaces), list(pools), n)


# One spec per generator, each with some randomness even where its timing is fixed.
GENERATOR_SPECS = {
    "steady-churn": {"generator": "steady-churn", "podsPerNode": 8, "churnPerSecond": 5},
    "steady-churn-filled": {"generator": "steady-churn", "podsPerNode": 4, "fillQps": 20,
                            "namespaceWeights": {"a": 1, "c": 3}, "podPoolFractions": {"blue": 0.5}},
    "scale-out": {"generator": "scale-out", "qps": 2, "podPoolFractions": {"blue": 0.3, "red": 0.2}},
    "burst": {"generator": "burst", "repeats": 2, "hold": 30, "podPoolFractions": {"blue": 0.5}},
    "burst-qps": {"generator": "burst", "qps": 50, "namespaceWeights": {"b": 1, "c": 1}},
    "node-autoscaling": {"generator": "node-autoscaling", "period": 300, "interval": 30, "podsPerNode": 5},
    "node-autoscaling-reuse": {"generator": "node-autoscaling", "period": 300, "interval": 20,
                               "minNodes": 2, "maxNodes": 9, "reuseNodeIds": True, "pinPods": False,
                               "podPoolFractions": {"blue": 1.0}},
    "cl2-load": {"generator": "cl2-load", "podPoolFractions": {"blue": 0.25}},
}


# ------------------------------------------------------------------- generators
@pytest.mark.parametrize("name", list(GENERATOR_SPECS))
def test_generator_validates_and_is_deterministic(name):
    raw = GENERATOR_SPECS[name]
    first, again, other = gen(raw, seed=3), gen(raw, seed=3), gen(raw, seed=4)
    first.validate()
    other.validate()
    assert len(first) > 0 and first.n_pods > 0
    assert same_events(first, again)
    assert not same_events(first, other)
    assert (live_pods(first) >= 0).all()
    assert first.time.dtype == np.float64 and first.op.dtype == np.int8
    assert all(getattr(first, c).dtype == np.int32 for c in ("node", "pod", "namespace", "pool"))


@pytest.mark.parametrize("name", list(GENERATOR_SPECS))
def test_generator_pod_ids_follow_creation_order(name):
    w = gen(GENERATOR_SPECS[name])
    assert np.array_equal(w.pod[w.op == OP_POD_ADD], np.arange(w.n_pods))
    initial = w.time == 0
    assert (w.op[initial & (w.op <= OP_NODE_DEL)] == OP_NODE_ADD).all()
    assert (w.time >= 0).all() and w.time[-1] <= 600.0


def test_steady_churn_keeps_target_after_fill():
    nodes, ppn, rate, duration = 7, 12, 4.0, 250.0
    w = gen({"generator": "steady-churn", "podsPerNode": ppn, "churnPerSecond": rate},
            nodes=nodes, duration_s=duration)
    target = nodes * ppn
    live = live_pods(w)
    filled = int(np.argmax(live == target))
    assert live[filled:].min() >= target - 1 and live[filled:].max() == target
    # every churn step is a delete immediately followed by a create at the same instant
    churn_ops = w.op[filled + 1:]
    assert (churn_ops[0::2] == OP_POD_DEL).all() and (churn_ops[1::2] == OP_POD_ADD).all()
    assert np.array_equal(w.time[filled + 1:][0::2], w.time[filled + 1:][1::2])
    steps = len(churn_ops) // 2
    assert steps == math.floor(duration * rate)
    assert np.allclose(np.diff(w.time[filled + 1:][0::2]), 1 / rate)
    # victims are random live pods: both initial and churned pods get replaced
    victims = w.pod[filled + 1:][0::2]
    assert (victims < target).any() and (victims >= target).any()
    assert w.n_pods == target + steps


def test_steady_churn_caps_pods_per_node_by_max_pods_and_fills_at_qps():
    w = gen({"generator": "steady-churn", "podsPerNode": 50, "fillQps": 10, "churnPerSecond": 1},
            nodes=3, max_pods=20, duration_s=30)
    target = 3 * 20
    adds = np.flatnonzero(w.op == OP_POD_ADD)[:target]
    assert np.allclose(w.time[adds], np.arange(target) / 10)
    assert live_pods(w).max() == target


def test_steady_churn_namespace_round_robin_and_weights():
    w = gen({"generator": "steady-churn", "podsPerNode": 3}, nodes=4, duration_s=10)
    adds = w.op == OP_POD_ADD
    assert np.array_equal(w.namespace[adds], np.arange(w.n_pods) % 3)
    w = gen({"generator": "steady-churn", "podsPerNode": 30, "namespaceWeights": {"a": 1, "c": 3}},
            nodes=20, duration_s=10)
    counts = np.bincount(w.namespace[w.op == OP_POD_ADD], minlength=3)
    assert counts[1] == 0 and 2.0 < counts[2] / counts[0] < 4.5


def test_namespace_weights_must_name_known_namespaces():
    with pytest.raises(ConfigError, match=r"workload\.namespaceWeights\.zz"):
        gen({"generator": "scale-out", "namespaceWeights": {"zz": 1}})


def test_scale_out_rate_total_and_truncation():
    w = gen({"generator": "scale-out", "qps": 10}, nodes=5, max_pods=110, duration_s=1e6)
    assert w.n_pods == 5 * 30 and not (w.op == OP_POD_DEL).any()
    adds = w.op == OP_POD_ADD
    assert np.allclose(w.time[adds], np.arange(150) / 10)
    short = gen({"generator": "scale-out", "qps": 10}, nodes=5, duration_s=4.0)
    assert short.n_pods == 41  # t = 0, 0.1, ..., 4.0
    explicit = gen({"generator": "scale-out", "pods": 1000, "qps": 100}, nodes=2, max_pods=10, duration_s=1e6)
    assert explicit.n_pods == 1000  # explicit totals may exceed node capacity


@pytest.mark.parametrize("nodes", [1, 13, 100])
def test_burst_is_30_pods_per_node_held_then_deleted(nodes):
    w = gen({"generator": "burst", "hold": 45, "start": 5}, nodes=nodes, duration_s=1e5)
    adds, dels = w.op == OP_POD_ADD, w.op == OP_POD_DEL
    assert adds.sum() == dels.sum() == 30 * nodes
    assert (w.time[adds] == 5).all() and (w.time[dels] == 50).all()
    assert live_pods(w).max() == 30 * nodes and live_pods(w)[-1] == 0


def test_burst_repeats_and_qps_spacing():
    nodes, qps, hold, gap = 4, 40.0, 10.0, 20.0
    w = gen({"generator": "burst", "qps": qps, "hold": hold, "gap": gap, "repeats": 3}, nodes=nodes,
            duration_s=1e5)
    size = 30 * nodes
    assert w.n_pods == 3 * size
    adds = w.time[w.op == OP_POD_ADD]
    span = (size - 1) / qps
    first_burst = adds[:size]
    assert np.allclose(np.diff(first_burst), 1 / qps)
    second_start = span + hold + span + gap
    assert np.isclose(adds[size], second_start)
    live = live_pods(w)
    assert live.max() == size and live[-1] == 0


def test_node_autoscaling_follows_cosine_schedule():
    nodes, lo, hi, period, interval = 12, 3, 12, 600.0, 50.0
    w = gen({"generator": "node-autoscaling", "minNodes": lo, "maxNodes": hi, "period": period,
             "interval": interval, "podsPerNode": 4}, nodes=nodes, duration_s=1200)
    counts = live_nodes(w)
    for t in np.arange(0, 1200 + 1, interval):
        last = np.flatnonzero(w.time <= t)[-1]
        expected = round(lo + (hi - lo) * (1 - math.cos(2 * math.pi * t / period)) / 2)
        assert counts[last] == expected, t
    joins = np.flatnonzero(w.op == OP_NODE_ADD)
    assert w.n_pods == 4 * len(joins)
    assert len(w.node_names) == len(joins)  # new id per joining node
    # pinned pods are created right after their node joins, at the same instant
    adds = np.flatnonzero(w.op == OP_POD_ADD)
    node_of_join = dict()
    for i in joins:
        node_of_join.setdefault(int(w.node[i]), float(w.time[i]))
    assert all(node_of_join[int(w.node[i])] == w.time[i] for i in adds)
    assert not (w.op == OP_POD_DEL).any()  # pods leave with their node


def test_node_autoscaling_reuses_ids_when_asked():
    w = gen(GENERATOR_SPECS["node-autoscaling-reuse"], nodes=9, duration_s=900)
    assert len(w.node_names) == 9
    assert (w.op == OP_NODE_ADD).sum() > 9  # ids were re-added
    assert (w.node[w.op == OP_POD_ADD] == -1).all()  # pinPods: false


def test_node_autoscaling_min_above_max_is_an_error():
    with pytest.raises(ConfigError, match=r"workload\.minNodes"):
        parse_workload({"generator": "node-autoscaling", "minNodes": 9, "maxNodes": 3})
    with pytest.raises(ConfigError, match=r"workload\.minNodes"):
        gen({"generator": "node-autoscaling", "maxNodes": 2, "minNodes": 3}, nodes=10)


def test_cl2_load_deployment_shares_rate_and_phases():
    nodes = 100
    w = gen({"generator": "cl2-load"}, nodes=nodes, namespaces=(), duration_s=1e6, seed=11)
    assert w.namespaces == ["test-ns-1"]
    saturation = 3000 / 10
    adds = w.op == OP_POD_ADD
    creation = adds & (w.time < saturation)
    # a deployment's pods are created at one random instant: group creations by time
    sizes = Counter(Counter(w.time[creation].tolist()).values())
    assert sizes == {250: 3, 30: 25, 5: 300}
    assert 250 * 3 == 30 * 25 == 3000 // 4 and 5 * 300 == 3000 // 2
    assert creation.sum() == 3000 and w.time[creation].max() < saturation
    # scaling phase: each deployment resized within [X/2, 3X/2], within saturation/4
    live = live_pods(w)
    end_scaling = np.flatnonzero(w.time < saturation * 1.25)[-1]
    assert 125 * 3 + 15 * 25 + 2 * 300 <= live[end_scaling] <= 375 * 3 + 45 * 25 + 7 * 300
    assert live[end_scaling] != 3000
    # then everything is deleted
    assert live[-1] == 0 and (w.op == OP_POD_DEL).sum() == w.n_pods
    assert w.time[-1] < saturation * 2.25


def test_cl2_load_scaling_resizes_each_deployment_and_drops_its_newest_pods():
    w = gen({"generator": "cl2-load"}, nodes=100, namespaces=(), duration_s=1e6, seed=5)
    saturation = 300.0
    adds, dels = w.op == OP_POD_ADD, w.op == OP_POD_DEL
    created = adds & (w.time < saturation)
    deployment_of_pod = {}  # deployment = the instant its initial pods were created
    for t, p in zip(w.time[created].tolist(), w.pod[created].tolist()):
        deployment_of_pod[p] = t
    initial = Counter(deployment_of_pod.values())
    scaling = (w.time >= saturation) & (w.time < saturation * 1.25)
    final = dict(initial)
    for t in np.unique(w.time[scaling]):
        at = scaling & (w.time == t)
        if dels[at].any():
            assert not adds[at].any()
            gone = w.pod[at]
            dep = {deployment_of_pod[p] for p in gone.tolist()}
            assert len(dep) == 1  # one deployment per scaling instant
            dep = dep.pop()
            members = sorted(p for p, d in deployment_of_pod.items() if d == dep)
            assert sorted(gone.tolist()) == members[-len(gone):]  # the newest pods go
            final[dep] -= len(gone)
        else:  # a scale-up: which deployment is not observable, so check the count bound
            assert any(n // 2 <= initial[d] + at.sum() <= (3 * n) // 2 for d, n in initial.items())
    ratios = np.array([final[d] / initial[d] for d in initial])
    assert (ratios >= 0.4).all() and (ratios <= 1.5).all()
    shrunk = [d for d in initial if final[d] < initial[d]]
    assert shrunk and all(final[d] >= initial[d] // 2 for d in shrunk)
    # the lower end X/2 is reached: 300 small deployments, each lands on 2 of 2..7 with p = 1/6
    assert min(final[d] for d in initial if initial[d] == 5) == 2
    grown = adds & scaling
    assert grown.any()
    assert 0.9 < (live_pods(w)[np.flatnonzero(scaling)[-1]] / 3000) < 1.1  # U[X/2, 3X/2] averages X


def test_cl2_load_namespaces_from_nodes_or_given():
    w = gen({"generator": "cl2-load"}, nodes=250, namespaces=(), duration_s=1e6)
    assert w.namespaces == ["test-ns-1", "test-ns-2"]
    per_ns = np.bincount(w.namespace[(w.op == OP_POD_ADD) & (w.time < 6000 / 10)])
    assert per_ns.tolist() == [3000, 3000]  # 100 nodes x 30 pods per namespace; 50 nodes left over
    # integer divisions as in the config: 1000 pods/namespace -> 1 x 250 + 8 x 30 + 100 x 5
    small = gen({"generator": "cl2-load", "podsPerNode": 10}, nodes=100, namespaces=(), duration_s=1e6)
    assert Counter(Counter(small.time[(small.op == OP_POD_ADD) & (small.time < 99)].tolist()).values()) == \
        {250: 1, 30: 8, 5: 100}
    given_ns = gen({"generator": "cl2-load"}, nodes=100, namespaces=("x", "y", "z"), duration_s=1e6)
    assert given_ns.namespaces == ["x", "y", "z"]
    assert set(np.unique(given_ns.namespace[given_ns.op == OP_POD_ADD])) == {0, 1, 2}


def test_pod_pool_fractions_are_exact_and_seeded():
    raw = {"generator": "scale-out", "pods": 400, "qps": 100, "podPoolFractions": {"blue": 0.25, "red": 0.5}}
    w = gen(raw, duration_s=1e6)
    assert w.pool_names == ["blue", "red"]
    counts = np.bincount(w.pool[w.op == OP_POD_ADD] + 1, minlength=3)
    assert counts.tolist() == [100, 100, 200]
    assert not np.array_equal(w.pool, gen(raw, duration_s=1e6, seed=8).pool)
    assert (w.pool[w.op <= OP_NODE_DEL] == -1).all()


def test_pod_pool_fraction_rounds_to_nearest():
    w = gen({"generator": "scale-out", "pods": 10, "qps": 100, "podPoolFractions": {"blue": 0.21}}, duration_s=1e6)
    assert (w.pool[w.op == OP_POD_ADD] == 0).sum() == 2


def test_generate_rejects_bad_arguments():
    spec = parse_workload({"generator": "steady-churn"})
    base = dict(nodes=2, max_pods=10, namespaces=[], duration_s=10.0, seed=1)
    for key, value in (("nodes", 0), ("max_pods", -1), ("duration_s", 0), ("seed", -3), ("nodes", True)):
        with pytest.raises(ConfigError, match=key):
            generate(spec, **{**base, key: value})
    with pytest.raises(ConfigError, match="finite"):
        generate(spec, **{**base, "duration_s": math.inf})
    with pytest.raises(ConfigError, match="at most"):
        generate(parse_workload({"generator": "steady-churn", "churnPerSecond": 1e6}),
                 **{**base, "duration_s": 1e6})


@st.composite
def small_specs(draw):
    kind = draw(st.sampled_from(sorted(set(SPEC_TYPES) - {"replay"})))
    pos = st.integers(1, 12)
    rate = st.floats(0.1, 50, allow_nan=False)
    raw: dict = {"generator": kind}
    if kind == "steady-churn":
        raw.update(podsPerNode=draw(pos), churnPerSecond=draw(rate))
        if draw(st.booleans()):
            raw["fillQps"] = draw(rate)
    elif kind == "scale-out":
        raw.update(qps=draw(rate), pods=draw(st.integers(1, 300)))
    elif kind == "burst":
        raw.update(podsPerNode=draw(pos), hold=draw(st.floats(0, 20)), repeats=draw(st.integers(1, 3)),
                   gap=draw(st.floats(0, 20)))
        if draw(st.booleans()):
            raw["qps"] = draw(rate)
    elif kind == "node-autoscaling":
        raw.update(period=draw(st.floats(5, 200)), interval=draw(st.floats(1, 50)), podsPerNode=draw(pos),
                   pinPods=draw(st.booleans()), reuseNodeIds=draw(st.booleans()))
    else:
        raw.update(podsPerNode=draw(pos), nodesPerNamespace=draw(st.integers(1, 5)), qps=draw(rate),
                   phaseGap=draw(st.floats(0, 10)))
    if draw(st.booleans()):
        raw["podPoolFractions"] = {"p1": draw(st.floats(0.01, 0.5)), "p2": draw(st.floats(0.01, 0.5))}
    return raw


@given(raw=small_specs(), nodes=st.integers(1, 8), max_pods=st.integers(1, 40),
       duration=st.floats(0.5, 300), seed=st.integers(0, 2**32), n_ns=st.integers(0, 3))
def test_property_generated_workloads_are_valid(raw, nodes, max_pods, duration, seed, n_ns):
    w = generate(parse_workload(raw), nodes=nodes, max_pods=max_pods, namespaces=[f"ns{i}" for i in range(n_ns)],
                 duration_s=duration, seed=seed)
    w.validate()
    assert (live_pods(w) >= 0).all()
    assert (live_nodes(w) >= 0).all()
    assert len(w) == 0 or w.time[-1] <= duration


# -------------------------------------------------------------------- spec
def test_parse_fills_defaults_and_round_trips():
    spec = parse_workload({"generator": "steady-churn"})
    assert spec == SteadyChurnSpec(pods_per_node=30, churn_per_second=20.0)
    cl2 = parse_workload({"generator": "cl2-load"})
    assert (cl2.pods_per_node, cl2.qps, cl2.nodes_per_namespace) == (30, 10.0, 100)
    assert (cl2.big_group_size, cl2.medium_group_size, cl2.small_group_size) == (250, 30, 5)
    for raw in GENERATOR_SPECS.values():
        spec = parse_workload(raw)
        assert parse_workload(spec.to_raw()) == spec
    replay = parse_workload({"generator": "replay", "path": "events/x.csv", "timeScale": 2})
    assert replay == ReplaySpec(path="events/x.csv", time_scale=2.0)
    with pytest.raises(AttributeError):
        replay.path = "other"  # frozen


@pytest.mark.parametrize("raw, where, pieces", [
    ({"generator": "steady-chrun"}, "workload", ["workload.generator", "'steady-chrun'", "steady-churn"]),
    ({}, "workload", ["workload.generator is missing"]),
    ({"generator": "burst", "hodl": 5}, "workload", ["workload.hodl", "did you mean 'hold'"]),
    ({"generator": "steady-churn", "churnpersecond": 5}, "workload",
     ["workload.churnpersecond", "did you mean 'churnPerSecond'"]),
    ({"generator": "scale-out", "qps": "fast"}, "workload", ["workload.qps", "'fast'", "number > 0"]),
    ({"generator": "scale-out", "qps": 0}, "workload", ["workload.qps", "0", "> 0"]),
    ({"generator": "burst", "hold": -1}, "workload", ["workload.hold", "-1", ">= 0"]),
    ({"generator": "burst", "repeats": 1.5}, "workload", ["workload.repeats", "1.5", "integer > 0"]),
    ({"generator": "burst", "repeats": True}, "workload", ["workload.repeats", "True", "integer"]),
    ({"generator": "steady-churn", "churnPerSecond": float("nan")}, "workload", ["workload.churnPerSecond"]),
    ({"generator": "steady-churn", "podPoolFractions": {"a": 0.7, "b": 0.6}}, "workload",
     ["workload.podPoolFractions", "<= 1"]),
    ({"generator": "steady-churn", "podPoolFractions": {"a": 0}}, "workload", ["workload.podPoolFractions.a"]),
    ({"generator": "steady-churn", "podPoolFractions": ["a"]}, "workload", ["workload.podPoolFractions"]),
    ({"generator": "scale-out", "namespaceWeights": {"a": 0}}, "workload", ["workload.namespaceWeights"]),
    ({"generator": "node-autoscaling", "pinPods": "yes"}, "workload", ["workload.pinPods", "true or false"]),
    ({"generator": "replay"}, "workload", ["workload.path is missing"]),
    ({"generator": "replay", "path": ""}, "workload", ["workload.path"]),
    ({"generator": "replay", "path": "x.csv", "timeScale": -2}, "workload", ["workload.timeScale", "-2"]),
    ({"generator": "cl2-load", "qps": 10, "namespaces": 3}, "scenarios[1].workload",
     ["scenarios[1].workload.namespaces", "unknown key"]),
    (["steady-churn"], "workload", ["workload = ['steady-churn']", "mapping"]),
])
def test_parse_errors_name_the_key_value_and_expectation(raw, where, pieces):
    with pytest.raises(ConfigError) as info:
        parse_workload(raw, where=where)
    message = str(info.value)
    assert "\n" not in message
    for piece in pieces:
        assert piece in message, (piece, message)


# ------------------------------------------------------------------ Workload
def test_validate_accepts_contract_example():
    w = make([0, 0, 0, 0.1, 5, 9], [0, 0, 2, 2, 3, 1], [0, 1, -1, 1, -1, 1], [-1, -1, 0, 1, 0, -1],
             [-1, -1, 0, 0, 0, -1], [-1, -1, -1, 0, -1, -1], pools=("blue",))
    w.validate()
    assert len(w) == 6 and w.pod_name(1) == "pod-1"


@pytest.mark.parametrize("case, fragment", [
    (dict(time=[0, 2, 1]), "ascending"),
    (dict(time=[0, float("nan"), 1]), "finite"),
    (dict(op=[0, 7, 3]), "op"),
    (dict(op=[0, 2, 2], pod=[-1, 0, 0], namespace=[-1, 0, 0], pool=[-1, -1, -1]), "added 2 times"),
    (dict(op=[0, 3, 2]), "delete after"),
    (dict(node=[5, -1, -1]), "node id"),
    (dict(pod=[0, 0, 0]), "-1 for a node op"),
    (dict(namespace=[-1, 3, 3]), "namespace index"),
    (dict(pool=[-1, 4, 4]), "pool index"),
    (dict(pool=[-1, -1, 0]), "pool of the pod's add"),
    (dict(op=[0, 0, 3], node=[0, 0, -1], pod=[-1, -1, 0], namespace=[-1, -1, 0], pool=[-1, -1, -1]),
     "pod 0 is added 0 times"),
])
def test_validate_rejects(case, fragment):
    cols = dict(time=[0, 1, 2], op=[0, 2, 3], node=[0, -1, -1], pod=[-1, 0, 0], namespace=[-1, 0, 0],
                pool=[-1, -1, -1])
    cols.update(case)
    w = make(**cols, pools=("blue",), n_pods=1)
    with pytest.raises(ConfigError, match=fragment):
        w.validate()


def test_validate_node_sequence():
    twice = make([0, 1], [0, 0], [0, 0], [-1, -1], [-1, -1], [-1, -1], n_pods=0)
    with pytest.raises(ConfigError, match="already present"):
        twice.validate()
    absent = make([0, 1], [0, 1], [0, 1], [-1, -1], [-1, -1], [-1, -1], n_pods=0)
    with pytest.raises(ConfigError, match="not present"):
        absent.validate()
    readd = make([0, 1, 2], [0, 1, 0], [1, 1, 1], [-1, -1, -1], [-1, -1, -1], [-1, -1, -1], n_pods=0)
    readd.validate()


def test_merge_offsets_pods_and_unifies_names():
    nodes = gen({"generator": "node-autoscaling", "podsPerNode": 1, "period": 100, "interval": 10},
                nodes=4, duration_s=100)
    pods = read_events(DATA / "events_iso.csv")
    both = merge(nodes, pods)
    both.validate()
    assert both.n_pods == nodes.n_pods + pods.n_pods
    assert both.namespaces == ["a", "b", "c", "default", "jobs"]
    assert both.pod_name(nodes.n_pods) == "api-0" and both.pod_name(0) == "pod-0"
    assert (np.diff(both.time) >= 0).all()


def test_truncate_keeps_prefix_and_renumbers():
    w = read_events(DATA / "events_small.csv")
    cut = truncate(w, 3.0)
    cut.validate()
    assert cut.time[-1] <= 3.0 and len(cut) == 10
    assert cut.n_pods == 6 and cut.pod_names.to_pylist() == ["web-1", "web-2", "db-0", "job-1", "job-2", "web-1"]


# -------------------------------------------------------------------- replay
def test_replay_example_csv():
    w = read_events(DATA / "events_small.csv")
    assert w.node_names == ["node-a", "node-b", "node-c", "node-d"]
    assert w.namespaces == ["shop", "batch"]
    assert w.pool_names == ["blue", "green"]
    assert w.n_pods == 9
    assert w.pod_names.to_pylist() == ["web-1", "web-2", "db-0", "job-1", "job-2", "web-1", "web-3", "job-3",
                                       "job-4"]
    adds = w.op == OP_POD_ADD
    assert [w.pool_names[p] if p >= 0 else None for p in w.pool[adds]] == \
        ["blue", "blue", "green", None, None, "blue", "green", None, None]
    assert [w.node_names[n] if n >= 0 else None for n in w.node[adds]] == \
        [None, None, "node-b", None, "node-c", None, "node-d", None, "node-c"]
    # web-1 deleted at 2.5 is pod 0; created again at 3.0 it is pod 5
    assert w.pod[(w.op == OP_POD_DEL) & (w.time == 2.5)].tolist() == [0]
    assert w.pod[adds & (w.time == 3.0)].tolist() == [5]
    assert np.bincount(w.op, minlength=4).tolist() == [5, 2, 9, 5]


def test_replay_iso_times_and_case_insensitive_ops():
    w = read_events(DATA / "events_iso.csv")
    assert w.time.tolist() == [0.0, 0.25, 1.0, 2.5, 3.0, 4.0, 5.0, 6.0]
    assert w.op.tolist() == [2, 2, 2, 3, 2, 3, 2, 3]
    assert w.node_names == [] and (w.node == -1).all()
    assert w.pod.tolist() == [0, 1, 2, 0, 3, 2, 4, 1]


def test_replay_through_generate_adds_nodes_and_scales_time():
    spec = parse_workload({"generator": "replay", "path": str(DATA / "events_iso.csv"), "timeScale": 2})
    w = generate(spec, nodes=3, max_pods=10, namespaces=[], duration_s=8.0, seed=0)
    w.validate()
    assert w.node_names == ["node-0", "node-1", "node-2"]
    assert w.op[:3].tolist() == [OP_NODE_ADD] * 3
    assert w.time[3:].tolist() == [0.0, 0.5, 2.0, 5.0, 6.0, 8.0]  # cut at 8 s
    with_nodes = generate(parse_workload({"generator": "replay", "path": str(DATA / "events_small.csv")}),
                          nodes=50, max_pods=10, namespaces=[], duration_s=100.0, seed=0)
    assert len(with_nodes.node_names) == 4


def _write(table: pa.Table, path: Path, fmt: str) -> None:
    if fmt == "csv":
        plain = pa.table({n: (c.cast(pa.string()) if pa.types.is_dictionary(c.type) else c)
                          for n, c in zip(table.column_names, table.columns)})
        pacsv.write_csv(plain, path)
    elif fmt == "parquet":
        pq.write_table(table, path)
    else:
        with paipc.new_file(path, table.schema) as f:
            f.write_table(table)


@pytest.mark.parametrize("fmt, name", [("csv", "w.csv"), ("parquet", "w.parquet"), ("arrow", "w.arrow"),
                                       ("parquet", "sniffed.bin"), ("arrow", "sniffed.dat")])
def test_replay_round_trip(tmp_path, fmt, name):
    raw = {"generator": "node-autoscaling", "period": 200, "interval": 20, "podsPerNode": 3,
           "podPoolFractions": {"blue": 0.4}}
    nodes_and_pins = gen(raw, nodes=5, duration_s=400)
    churn = gen({"generator": "steady-churn", "podsPerNode": 2, "churnPerSecond": 1,
                 "podPoolFractions": {"red": 0.5}}, nodes=1, duration_s=60)
    keep = churn.op >= OP_POD_ADD  # pod events only, scheduled by the engine
    churn_pods = Workload(*(getattr(churn, c)[keep] for c in COLUMNS), [], churn.namespaces, churn.pool_names,
                          churn.n_pods)
    source = merge(nodes_and_pins, churn_pods)
    source.validate()
    path = tmp_path / name
    _write(source.to_arrow(), path, fmt)
    back = read_events(path)
    assert np.allclose(back.time, source.time) and np.array_equal(back.op, source.op)
    pod_ops = source.op >= OP_POD_ADD
    # read_events numbers pods in creation order; the merged source does not, so compare via names
    src_names = np.array(source.pod_name_array().to_pylist(), dtype=object)
    back_names = np.array(back.pod_name_array().to_pylist(), dtype=object)
    assert (src_names[source.pod[pod_ops]] == back_names[back.pod[pod_ops]]).all()
    # same pod identity: two events share a source id exactly when they share a read-back id
    pairs = set(zip(source.pod[pod_ops].tolist(), back.pod[pod_ops].tolist()))
    assert len(pairs) == source.n_pods == back.n_pods
    assert np.array_equal(back.pod[back.op == OP_POD_ADD], np.arange(back.n_pods))

    def names(w, col, table):
        return [table[i] if i >= 0 else None for i in getattr(w, col)]

    assert names(back, "node", back.node_names) == names(source, "node", source.node_names)
    assert names(back, "namespace", back.namespaces) == names(source, "namespace", source.namespaces)
    assert names(back, "pool", back.pool_names) == names(source, "pool", source.pool_names)


def _csv(tmp_path: Path, text: str, name: str = "ev.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("body, pieces", [
    ("time,op,pod\n0,add,a\n", ["missing column 'namespace'"]),
    ("time,op,pod,namespace\n0,add,a,ns\n1,explode,a,ns\n", ["row 2", "'explode'", "one of add"]),
    ("time,op,pod,namespace\n0,add,a,ns\n1,delete,b,ns\n", ["row 2", "never-created", "'ns/b'"]),
    ("time,op,pod,namespace\n0,add,a,ns\n1,delete,a,ns\n2,delete,a,ns\n", ["row 3", "already-deleted", "'ns/a'"]),
    ("time,op,pod,namespace\n0,add,a,ns\n1,add,a,ns\n", ["row 2", "create of pod", "'ns/a'"]),
    ("time,op,pod,namespace\n0,node-add,,\n", ["row 1", "'node-add'", "'node' column"]),
    ("time,op,pod,namespace,node\n0,node-add,,,\n", ["row 1", "node", "node-add/node-delete"]),
    ("time,op,pod,namespace\n0,add,,ns\n", ["row 1", "pod", "None"]),
    ("time,op,pod,namespace\n0,add,a,\n", ["row 1", "namespace"]),
    ("time,op,pod,namespace\n0,add,a,ns\nsoon,delete,a,ns\n", ["row 2", "'soon'", "ISO-8601"]),
    ("time,op,pod,namespace\n0,add,a,ns\n,delete,a,ns\n", ["row 2", "time"]),
    ("time,op,pod,namespace,annotations\n0,add,a,ns,garbage\n", ["row 1", "'garbage'", "key=value"]),
    ("time,op,pod,namespace,node\n0,node-add,,,n1\n1,node-add,,,n1\n", ["row 2", "node-add of present", "'n1'"]),
    ("time,op,pod,namespace,node\n0,node-add,,,n1\n1,node-delete,,,n1\n2,node-delete,,,n1\n",
     ["row 3", "node-delete of absent", "'n1'"]),
    ("time,op,pod,namespace\n,add,a,ns\n", ["row 1", "time"]),
    ("Time,OP,Pod,Namespace\n", ["0 event rows"]),
    # unsorted rows are sorted stably: the delete at t=1 (row 1) comes after the add at t=0 (row 2) ...
    ("time,op,pod,namespace\n1,delete,a,ns\n0,add,a,ns\n3,delete,a,ns\n", ["row 3", "already-deleted"]),
])
def test_replay_errors_name_file_row_and_value(tmp_path, body, pieces):
    path = _csv(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        read_events(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    for piece in pieces:
        assert piece in message, (piece, message)


def test_replay_sorts_unsorted_rows_stably(tmp_path):
    path = _csv(tmp_path, "time,op,pod,namespace\n2,delete,a,ns\n1,add,b,ns\n1,add,a,ns\n3,delete,b,ns\n")
    w = read_events(path)
    assert w.time.tolist() == [1, 1, 2, 3]
    assert w.pod_names.to_pylist() == ["b", "a"]  # equal times keep file order
    assert w.pod.tolist() == [0, 1, 1, 0]


def test_replay_implicit_nodes_and_annotation_forms(tmp_path):
    path = _csv(tmp_path, 'time,op,pod,namespace,node,annotations\n'
                          '5,add,a,ns,n2," ipam.cilium.io/ip-pool = blue ; x=y"\n'
                          '6,node-delete,,,n1,\n'
                          '7,add,b,ns,,"{""other"": 1, ""ipam.cilium.io/ip-pool"":""red""}"\n'
                          '8,add,c,ns,,"x.ipam.cilium.io/ip-pool=no"\n')
    w = read_events(path)
    assert w.node_names == ["n2", "n1"]
    assert w.op[:2].tolist() == [OP_NODE_ADD, OP_NODE_ADD] and w.time[:2].tolist() == [5, 5]
    adds = w.op == OP_POD_ADD
    assert [w.pool_names[p] if p >= 0 else None for p in w.pool[adds]] == ["blue", "red", None]


def test_replay_ignores_pod_cells_on_node_rows(tmp_path):
    path = _csv(tmp_path, "time,op,pod,namespace,node\n0,node-add,x,other,n1\n1,add,x,ns,\n2,node-delete,x,ns,n1\n")
    w = read_events(path)
    assert w.namespaces == ["ns"] and w.n_pods == 1
    assert w.op.tolist() == [OP_NODE_ADD, OP_POD_ADD, OP_NODE_DEL]


def test_replay_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="no such events file"):
        read_events(tmp_path / "missing.csv")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(ConfigError, match="bad.parquet"):
        read_events(bad)


def test_replay_checks_against_the_scenario_name_row_and_value(tmp_path):
    path = _csv(tmp_path, "time,op,pod,namespace,node,pool\n0,node-add,,,n1,\n1,add,a,ns,,blue\n"
                          "2,add,b,ns,n1,\n700,delete,a,ns,,\n")
    read_events(path)  # alone, the file is fine
    with pytest.raises(ConfigError, match=r"row 4: time 700\.0; expected at most the scenario's duration, 600 s"):
        read_events(path, duration_s=600)
    with pytest.raises(ConfigError, match=r"row 4: time 700\.0; .*x timeScale 2"):
        read_events(path, duration_s=1000, time_scale=2)
    read_events(path, duration_s=700)
    with pytest.raises(ConfigError, match=r"row 2: pool 'blue'; expected a pool the scenario defines \(default\)"):
        read_events(path, pools=("default",))
    read_events(path, pools=("default", "blue"))
    pinned = _csv(tmp_path, "time,op,pod,namespace,node\n0,node-add,,,n1\n1,add,a,ns,n9\n", name="p.csv")
    with pytest.raises(ConfigError, match=r"row 2: node 'n9'; expected a node of the file's node rows"):
        read_events(pinned, nodes=("node-0",))
    assert read_events(pinned, nodes=("n9",)).node_names == ["n1", "n9"]


def test_replay_refuses_negative_times_and_keeps_slashes_apart(tmp_path):
    with pytest.raises(ConfigError, match=r"row 2: time -3\.0; expected seconds >= 0"):
        read_events(_csv(tmp_path, "time,op,pod,namespace\n0,add,a,ns\n-3,delete,a,ns\n"))
    # namespace "a/b" + pod "c" is not namespace "a" + pod "b/c"
    with pytest.raises(ConfigError, match=r"row 2: delete of never-created pod 'a/b/c'"):
        read_events(_csv(tmp_path, "time,op,pod,namespace\n1,add,c,a/b\n2,delete,b/c,a\n", name="s.csv"))
    # "NA" and "null" are names, not missing cells; "nan" as a time is named as written
    w = read_events(_csv(tmp_path, "time,op,pod,namespace\n1,add,NA,null\n", name="n.csv"))
    assert w.pod_names.to_pylist() == ["NA"] and w.namespaces == ["null"]
    with pytest.raises(ConfigError, match=r"row 1: time 'nan'"):
        read_events(_csv(tmp_path, "time,op,pod,namespace\nnan,add,a,ns\n", name="t.csv"))
