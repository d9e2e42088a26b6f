"""The compiled steady-churn generator gives, array for array, the workload of the vectorised one it replaced.

Traces committed in results/ and every seeded sweep depend on the events of a
seed staying the same; the reference below is the numpy implementation the
generator had before the events moved into ``ipam_core.workloads.churn_events``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipam_core.workloads import generate, parse_workload
from ipam_core.workloads.generators import _build, _node_adds, _pod_namespaces, _pod_pools
from ipam_core.workloads.events import OP_POD_ADD, OP_POD_DEL, Workload

COLUMNS = ("time", "op", "node", "pod", "namespace", "pool")


def previous_occupant(slots: np.ndarray, n_slots: int) -> np.ndarray:
    """Pod deleted at each step, found vectorised (the replaced implementation)."""
    if len(slots) == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(slots.astype(np.int64) * len(slots) + np.arange(len(slots)))
    s = slots[order]
    same_as_prev = np.r_[False, s[1:] == s[:-1]]
    victim_sorted = s.astype(np.int64)
    prev_step = np.r_[0, order[:-1]]
    victim_sorted[same_as_prev] = n_slots + prev_step[same_as_prev]
    victims = np.empty_like(victim_sorted)
    victims[order] = victim_sorted
    return victims


def reference_steady_churn(raw: dict, nodes: int, max_pods: int, namespaces: list[str], duration_s: float,
                           seed: int) -> Workload:
    spec = parse_workload(raw)
    rng = np.random.default_rng(seed)
    target = nodes * min(spec.pods_per_node, max_pods)
    fill_t = np.zeros(target) if spec.fill_qps is None else np.arange(target) / spec.fill_qps
    fill_end = float(fill_t[-1])
    n_steps = max(0, int(math.floor((duration_s - fill_end) * spec.churn_per_second)))
    slots = rng.integers(0, target, n_steps)
    victims = previous_occupant(slots, target)
    step_t = fill_end + np.arange(1, n_steps + 1) / spec.churn_per_second
    churn = (
        np.repeat(step_t, 2),
        np.tile(np.array([OP_POD_DEL, OP_POD_ADD], np.int8), n_steps),
        np.full(2 * n_steps, -1, np.int32),
        np.column_stack([victims, target + np.arange(n_steps)]).ravel(),
    )
    fill = (fill_t, np.full(target, OP_POD_ADD, np.int8), np.full(target, -1, np.int32), np.arange(target))
    n_pods = target + n_steps
    ns = _pod_namespaces(rng, n_pods, namespaces, spec.namespace_weights)
    pool, pool_names = _pod_pools(rng, n_pods, spec.pod_pool_fractions)
    return _build([_node_adds(nodes), fill, churn], n_pods, ns, pool, [f"node-{i}" for i in range(nodes)],
                  namespaces, pool_names, duration_s)


def assert_same_workload(got: Workload, want: Workload) -> None:
    for column in COLUMNS:
        a, b = getattr(got, column), getattr(want, column)
        assert a.dtype == b.dtype, column
        assert a.tobytes() == b.tobytes(), column  # bit for bit, times included
    assert (got.n_pods, got.node_names, got.namespaces, got.pool_names) == (
        want.n_pods, want.node_names, want.namespaces, want.pool_names)


def churn(raw: dict, nodes: int, max_pods: int, namespaces: list[str], duration_s: float, seed: int) -> Workload:
    return generate(parse_workload(raw), nodes=nodes, max_pods=max_pods, namespaces=namespaces,
                    duration_s=duration_s, seed=seed)


@pytest.mark.parametrize("seed", [0, 1, 7, 20_240_613])
def test_default_scenario_workload_is_unchanged(seed):
    raw = {"generator": "steady-churn", "podsPerNode": 55, "churnPerSecond": 2}
    args = (raw, 32, 110, ["default"], 1200.0, seed)
    assert_same_workload(churn(*args), reference_steady_churn(*args))


@pytest.mark.parametrize("raw, duration_s", [
    # a slow fill that the duration cuts: no churn at all, pods dropped
    ({"generator": "steady-churn", "podsPerNode": 30, "fillQps": 7.0, "churnPerSecond": 3}, 50.0),
    # rates whose step times round: 1/3 and 1/7 are not exact in binary
    ({"generator": "steady-churn", "podsPerNode": 5, "fillQps": 3.0, "churnPerSecond": 7.0}, 61.3),
    ({"generator": "steady-churn", "podsPerNode": 2, "churnPerSecond": 0.3}, 3600.0),
    # weights and pools: the generator draws slots, then namespaces, then pools
    ({"generator": "steady-churn", "podsPerNode": 9, "churnPerSecond": 11, "namespaceWeights": {"a": 1, "c": 3},
      "podPoolFractions": {"blue": 0.25, "red": 0.5}}, 120.0),
])
def test_edge_workloads_are_unchanged(raw, duration_s):
    args = (raw, 6, 110, ["a", "b", "c"], duration_s, 3)
    assert_same_workload(churn(*args), reference_steady_churn(*args))


@settings(max_examples=60, deadline=None)
@given(
    nodes=st.integers(1, 12),
    per_node=st.integers(1, 40),
    max_pods=st.integers(1, 40),
    churn_rate=st.floats(0.05, 50, allow_nan=False),
    fill_qps=st.one_of(st.none(), st.floats(0.5, 500, allow_nan=False)),
    duration=st.floats(0.5, 900, allow_nan=False),
    n_ns=st.integers(1, 4),
    weighted=st.booleans(),
    pools=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_compiled_churn_equals_the_vectorised_one(nodes, per_node, max_pods, churn_rate, fill_qps,
                                                           duration, n_ns, weighted, pools, seed):
    raw = {"generator": "steady-churn", "podsPerNode": per_node, "churnPerSecond": churn_rate}
    if fill_qps is not None:
        raw["fillQps"] = fill_qps
    namespaces = [f"ns{i}" for i in range(n_ns)]
    if weighted:
        raw["namespaceWeights"] = {name: i + 1 for i, name in enumerate(namespaces)}
    if pools:
        raw["podPoolFractions"] = {"blue": 0.4}
    args = (raw, nodes, max_pods, namespaces, duration, seed)
    got = churn(*args)
    got.validate()
    assert_same_workload(got, reference_steady_churn(*args))
