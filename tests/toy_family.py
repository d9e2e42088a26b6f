"""A test-only rules family, run by tests/test_engine_hooks.py in a process of its own.

Each node holds a budget of ``BUDGET`` addresses (the family's own table, filled by its prepare
step), is ready at once and sets no timer; the loop (scheduler, pod lifecycle, retries, timeouts,
sampling) runs it through
:mod:`ipam_core.engine.hooks` with no edit anywhere in the engine. Its own process and kernel cache:
Numba's cache index of a shared loop function lists every State class it was compiled for, and a
process that cannot import this module could not read an index naming ``ToyState``.
"""

from __future__ import annotations

import dataclasses
import types

import numpy as np

from ipam_core.engine import hooks
from ipam_core.engine import tables as T
from ipam_core.engine.core import _sched_update
from ipam_core.pipeline.run import Simulation
from ipam_core.pipeline import run as engine_run
from ipam_core.engine.state import family_state
from ipam_core.kernels._jit import kjit
from ipam_core.modes import get_mode
from ipam_core.scenario import load_scenario
from ipam_core.workloads.events import OP_NODE_ADD, OP_NODE_DEL, OP_POD_ADD, OP_POD_DEL, Workload

BUDGET = 3
TOY_POLICY = 90
ToyState = family_state("ToyState", __name__, ("toy_budget",))  # core tables + the family's own


@kjit
def toy_take(st, pod, node, now):
    core = st.core
    if core.cidr.np_inuse[node, 0, 0] >= st.toy_budget[node]:
        core.cnt[T.K_FAMILY_BASE + T.F_IP_FAILS] += 1
        return 0  # IPv4 got no address
    core.cidr.np_inuse[node, 0, 0] += 1
    core.pod_tables.pods[pod, T.D_SLOT] = 0  # holds one (the toy keeps no address, only the count)
    core.cnt[T.K_FAMILY_BASE + T.F_USED] += 1
    return -1


@kjit
def toy_give(st, pod):
    core = st.core
    if core.pod_tables.pods[pod, T.D_SLOT] >= 0:
        core.cidr.np_inuse[core.pod_tables.pods[pod, T.D_NODE], 0, 0] -= 1
        core.pod_tables.pods[pod, T.D_SLOT] = -1
        core.cnt[T.K_FAMILY_BASE + T.F_USED] -= 1


@kjit
def toy_node_added(st, node, now):
    core = st.core
    core.nodes[node, T.N_READY] = 1
    core.cnt[T.K_READY] += 1
    _sched_update(core.nodes, core.sched, core.icfg, core.cnt, node)


@kjit
def toy_node_deleted(st, node):
    st.toy_budget[node] = -1  # the family's own table: the hook ran for this node


@kjit
def toy_timer(st, kind, node, gen, now):
    st.core.cnt[T.K_ERROR] = 99  # the toy sets no timer: none may reach it


@kjit
def toy_room(st, node):
    core = st.core
    return core.nodes[node, T.N_PODS] - core.nodes[node, T.N_PENDING] + st.toy_budget[node] - core.cidr.np_inuse[node, 0, 0]


@kjit
def toy_rows(st, families, sample, node_tab, cidr_tab, fill):
    return True


def toy_prepare(state, module, scenario, workload):
    """The family's own table: every node's address budget."""
    return state._replace(toy_budget=np.full(len(workload.node_names), BUDGET, dtype=np.int64))


hooks.register(ToyState, TOY_POLICY, prepare=toy_prepare, take_pod_addresses=toy_take, give_pod_addresses=toy_give,
               node_added=toy_node_added, node_deleted=toy_node_deleted, node_timer=toy_timer,
               address_room=toy_room, sample_nodes=toy_rows)


def install_toy_mode():
    """Mode ``toy``: cluster-pool's layout under the toy family's policy code, as the engine looks modes up."""
    pool = get_mode("cluster-pool")
    toy = types.SimpleNamespace(layout=lambda sc: dataclasses.replace(pool.layout(sc), mode="toy", policy=TOY_POLICY))
    engine_run.get_mode = lambda name: toy if name == "toy" else get_mode(name)


def _workload(events):
    """(time, op, node, pod) rows as a Workload: pods in namespace 0 with no pool annotation."""
    t, op, node, pod = (np.array(c) for c in zip(*events))
    is_pod = (op == OP_POD_ADD) | (op == OP_POD_DEL)
    return Workload(t.astype(np.float64), op.astype(np.int8), node.astype(np.int32),
                    np.where(is_pod, pod, -1).astype(np.int32), np.where(is_pod, 0, -1).astype(np.int32),
                    np.full(len(events), -1, np.int32), ["n0", "n1"], ["default"], ["default"],
                    int(pod[is_pod].max()) + 1)


def check_the_loop_runs_the_family():
    sc = load_scenario("name: toy\nworkload: {generator: steady-churn}\ntiming: {podPendingTimeout: 30s}\n")
    pods = [(1.0 + i / 10, OP_POD_ADD, -1, i) for i in range(8)]  # 8 pods, 2 nodes x 3 addresses
    events = [(0.0, OP_NODE_ADD, 0, -1), (0.0, OP_NODE_ADD, 1, -1), *pods,
              (5.0, OP_POD_DEL, -1, 0), (100.0, OP_NODE_DEL, 1, -1)]
    sim = Simulation(sc, _workload(events), "toy")
    assert type(sim.state) is ToyState and sim.state.toy_budget.tolist() == [BUDGET, BUDGET]
    sim.advance(4.0)
    c = sim.state.core.cnt
    assert c[T.K_RUNNING] == 2 * BUDGET and c[T.K_PENDING] == 2 and c[T.K_ERROR] == 0
    sim.advance(20.0)  # pod 0 left at 5 s: one pending pod takes its address on its next retry
    assert c[T.K_RUNNING] == 2 * BUDGET and c[T.K_PENDING] == 1
    sim.advance(200.0)  # the last one times out; node 1 goes with its 3 pods
    assert c[T.K_FAILED] == 1 and c[T.K_RUNNING] == BUDGET and c[T.K_ERROR] == 0
    assert sim.state.toy_budget.tolist() == [BUDGET, -1] and sim.state.core.cidr.np_inuse[0, 0, 0] == BUDGET
    assert c[T.K_FAMILY_BASE + T.F_USED] == BUDGET


def check_the_loop_compiles_only_this_family():
    from ipam_core.modes import cloud_hooks, multi_pool

    sc = load_scenario("name: toy\nworkload: {generator: steady-churn}\n")
    Simulation(sc, _workload([(0.0, OP_NODE_ADD, 0, -1), (1.0, OP_POD_ADD, -1, 0)]), "toy").advance(10.0)
    for rule in (multi_pool.node_timer, cloud_hooks.node_timer, cloud_hooks.address_room):
        assert not any("ToyState" in str(sig[0]) for sig in rule.signatures)



if __name__ == "__main__":
    install_toy_mode()
    check_the_loop_runs_the_family()
    check_the_loop_compiles_only_this_family()
    print("toy family ran")
