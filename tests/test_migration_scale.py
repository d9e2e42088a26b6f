"""The migration engine's indexed structures give what whole-array scans gave, rule for rule.

* Replays and plans of every migration scenario match, figure for figure and row for row,
  what the engine produced before its placement, counts and address accounting were indexed
  (``tests/data/migration-golden.json``, recorded from commit 0ea10d0 with the same calls).
* After every settle step of those runs, the per-node and per-group pod lists, the running /
  disrupted / stale / unavailable counts and the addresses in use equal a scan of every pod
  and a sort of every interval (the way the engine computed them before).
* The placement kernel equals kube-scheduler's rule written as a loop over every node;
  :class:`CidrCover` equals the union of its intervals.
* ``neededIPCeil`` has one implementation, the engine's; the engine never imports migration.
"""

from __future__ import annotations

import ast
import hashlib
import ipaddress
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ipam_core.modes.multi_pool as engine_multi_pool
from ipam_core.migration import _agents, plan as plan_module
from ipam_core.migration import actions as A
from ipam_core.migration import plan_migration, run_migration
from ipam_core.migration._place import place_pods, tree_size
from ipam_core.migration.cluster import GONE, LIVE, CidrCover, PodTable
from ipam_core.migration.engine import MigrationEngine, _helm_values
from ipam_core.migration.helm import resolve, upgrade_values
from ipam_core.migration.steps import parse_steps
from ipam_core.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = json.loads((ROOT / "tests" / "data" / "migration-golden.json").read_text())
SCENARIOS = ["seed-lab", "cluster-pool-to-multi-pool", "kubernetes-to-multi-pool", "cluster-pool-append"]
PLANS = [{}, {"batch": 3}, {"nodes": 40, "pods_per_node": 7, "batch": 6, "seed": 3},
         {"nodes": 300, "pods_per_node": 30}]


def _digest(rows) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=repr).encode()).hexdigest()


def _plain(values: dict) -> dict:
    return {k: (repr(v) if isinstance(v, float) else v) for k, v in values.items()}


# ---------------------------------------------------------------- outputs as before
@pytest.mark.parametrize("name", SCENARIOS)
def test_replay_matches_the_recorded_outputs(name):
    result = run_migration(load_scenario(ROOT / "scenarios" / f"{name}.yaml"))
    want = GOLDEN["replay"][name]
    assert _plain(result.summary) == want["summary"]
    assert _digest(result.step_rows) == want["step_rows"]
    assert _digest(result.node_rows) == want["node_rows"]
    assert _digest(result.pod_rows) == want["pod_rows"]
    assert _digest(result.events) == want["events"]
    assert _digest(sorted(result.observations.items())) == want["observations"]
    assert _digest([(c.time_s, c.address, c.pods) for c in result.conflicts]) == want["conflicts"]


@pytest.mark.parametrize("kwargs", PLANS, ids=lambda kw: " ".join(f"{k}={v}" for k, v in kw.items()) or "default")
@pytest.mark.parametrize("name", SCENARIOS)
def test_plan_matches_the_recorded_outputs(name, kwargs):
    plan = plan_migration(load_scenario(ROOT / "scenarios" / f"{name}.yaml"), **kwargs)
    key = f"{name} " + " ".join(f"{k}={v}" for k, v in sorted(kwargs.items()))
    want = GOLDEN["plan"][key.strip()]
    assert (plan.nodes, plan.pods) == (want["nodes"], want["pods"])
    assert [_plain(vars(row)) for row in plan.rows] == want["rows"]


# ---------------------------------------------------------------- indexes equal scans, at every step
def _union(lo: np.ndarray, hi: np.ndarray) -> int:
    if lo.shape[0] == 0:
        return 0
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], hi[order]
    reach = np.concatenate(([lo[0] - 1], np.maximum.accumulate(hi)[:-1]))
    return int(np.clip(hi - np.maximum(lo, reach + 1) + 1, 0, None).sum())


def addresses_in_use_by_scan(engine) -> int:
    """Routed CIDRs plus the older CIDRs pods still hold addresses in, by a scan of every pod."""
    p = engine.pods
    n = len(engine.nodes)
    rlo, rhi = engine.rows["route"][0][:n], engine.rows["route"][1][:n]
    hlo, hhi = engine.rows["hist"][0][:n], engine.rows["hist"][1][:n]
    held = np.flatnonzero((p.state > GONE) & (p.addr >= 0) & (p.node >= 0))
    addr, nodes = p.addr[held], p.node[held]
    used = np.zeros(hlo.shape, dtype=bool)
    for h in range(hlo.shape[1]):
        inside = (addr >= hlo[nodes, h]) & (addr <= hhi[nodes, h])
        used[nodes[inside], h] = True
    routed = rlo <= rhi
    return _union(np.concatenate((rlo[routed], hlo[used])), np.concatenate((rhi[routed], hhi[used])))


def check_indexes(engine) -> None:
    p = engine.pods
    alive = p.state > GONE
    for v in range(len(engine.nodes)):
        assert p.on_nodes([v]).tolist() == np.flatnonzero(alive & (p.node == v)).tolist()
        assert engine.node_pods[v] == np.count_nonzero(alive & (p.node == v))
    for g in range(len(engine.groups)):
        assert p.of_groups([g]).tolist() == np.flatnonzero(alive & (p.group == g)).tolist()
    live = p.state == LIVE
    assert engine.n_live == np.count_nonzero(live)
    assert engine.n_dis == np.count_nonzero(live & p.dis)
    assert engine.n_stale == np.count_nonzero(live & p.stale)
    g = len(engine.groups)
    per_group = np.bincount(p.group[live], minlength=g)[:g]
    assert engine.n_unavail == int(np.clip(engine.g_rep[:g] - per_group, 0, None).sum())
    assert engine.cover.size == addresses_in_use_by_scan(engine)
    n = len(engine.nodes)
    if engine.tree_nodes == n:  # the placement tree's leaves, except nodes marked for refresh
        size = engine.tree.shape[0] // 2
        can_take = engine.node_open[:n] & (engine.node_pods[:n] < engine.node_room[:n])
        keys = np.where(can_take, engine.node_pods[:n] * n + np.arange(n), np.iinfo(np.int64).max)
        fresh = np.ones(n, dtype=bool)
        fresh[sorted(engine.tree_dirty)] = False
        assert np.array_equal(engine.tree[size:size + n][fresh], keys[fresh])


class CheckedEngine(MigrationEngine):
    """The engine, checking its indexes against scans after every settle step."""

    settles = 0

    def _settle(self) -> None:
        super()._settle()
        check_indexes(self)
        CheckedEngine.settles += 1


@pytest.mark.parametrize("name", SCENARIOS)
def test_indexes_equal_scans_after_every_step_of_a_replay(name):
    CheckedEngine.settles = 0
    result = CheckedEngine(load_scenario(ROOT / "scenarios" / f"{name}.yaml")).run()
    assert CheckedEngine.settles > 10
    assert _plain(result.summary) == GOLDEN["replay"][name]["summary"]


@pytest.mark.parametrize("name", ["seed-lab", "cluster-pool-to-multi-pool"])
def test_indexes_equal_scans_after_every_step_of_a_plan(name, monkeypatch):
    monkeypatch.setattr(plan_module, "MigrationEngine", CheckedEngine)
    CheckedEngine.settles = 0
    plan = plan_migration(load_scenario(ROOT / "scenarios" / f"{name}.yaml"), nodes=12, pods_per_node=9, batch=5)
    assert CheckedEngine.settles > 50
    assert plan.pods == 12 * 9 + 2


# ---------------------------------------------------------------- placement and cover against plain rules
def place_by_scan(groups, pins, exists, open_, room, pods, node_of_group_pods, anti):
    """kube-scheduler's rule, a loop over every node per pod (the engine's rule before the tree)."""
    n = len(exists)
    counts = {}
    for grp, v in node_of_group_pods:
        counts[(grp, v)] = counts.get((grp, v), 0) + 1
    pods = list(pods)
    out = []
    for g, pin in zip(groups, pins):
        best = -1
        if pin >= 0:
            best = pin if exists[pin] and pods[pin] < room[pin] else -1
        else:
            scored = [((counts.get((g, v), 0), pods[v], v), v) for v in range(n)
                      if open_[v] and pods[v] < room[v] and not any(counts.get((a, v), 0) for a in anti.get(g, ()))]
            best = min(scored)[1] if scored else -1
        out.append(best)
        if best >= 0:
            pods[best] += 1
            counts[(g, best)] = counts.get((g, best), 0) + 1
    return out


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_placement_equals_a_scan_of_every_node(data):
    n = data.draw(st.integers(1, 12))
    n_groups = data.draw(st.integers(1, 5))
    exists = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    open_ = [e and data.draw(st.booleans()) for e in exists]
    room = data.draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    placed = data.draw(st.lists(st.tuples(st.integers(0, n_groups - 1), st.integers(0, n - 1)), max_size=15))
    todo_groups = data.draw(st.lists(st.integers(0, n_groups - 1), min_size=1, max_size=25))
    pins = [data.draw(st.sampled_from([-1, -1, -1, *range(n)])) for _ in todo_groups]
    anti_pairs = data.draw(st.sets(st.tuples(st.integers(0, n_groups - 1), st.integers(0, n_groups - 1)), max_size=4))
    anti: dict[int, set[int]] = {}
    for a, b in anti_pairs:  # both directions, as the engine builds it
        anti.setdefault(a, set()).add(b)
        anti.setdefault(b, set()).add(a)
    node_pods = [0] * n
    for _, v in placed:
        node_pods[v] += 1
    want = place_by_scan(todo_groups, pins, exists, open_, room, node_pods, placed, anti)

    total = len(placed) + len(todo_groups)
    group_of = np.array([g for g, _ in placed] + todo_groups, dtype=np.int32)
    pod_node = np.array([v for _, v in placed] + [-1] * len(todo_groups), dtype=np.int32)
    group_head = np.full(n_groups, -1, dtype=np.int64)
    group_nxt = np.full(total, -1, dtype=np.int64)
    for pod in range(total - 1, -1, -1):
        group_nxt[pod] = group_head[group_of[pod]]
        group_head[group_of[pod]] = pod
    ptr = np.zeros(n_groups + 1, dtype=np.int64)
    idx = []
    for g in range(n_groups):
        idx += sorted(anti.get(g, ()))
        ptr[g + 1] = len(idx)
    out = np.empty(len(todo_groups), dtype=np.int32)
    node_pods_arr = np.array(node_pods, dtype=np.int64)
    place_pods(np.empty(tree_size(n), dtype=np.int64), True, np.zeros(0, dtype=np.int64),
               np.arange(len(placed), total, dtype=np.int64), group_of[len(placed):], np.array(pins, dtype=np.int32),
               np.array(exists), np.array(open_), np.array(room, dtype=np.int64), node_pods_arr, pod_node,
               np.full(n, -1, dtype=np.int64), np.full(total, -1, dtype=np.int64), np.full(total, -1, dtype=np.int64),
               group_head, group_nxt, ptr, np.array(idx, dtype=np.int64), out)
    assert out.tolist() == want
    assert pod_node[len(placed):].tolist() == want


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(st.tuples(st.booleans(), st.integers(20, 28), st.integers(0, 63)), max_size=40))
def test_cidr_cover_equals_the_union_of_its_cidrs(ops):
    cover = CidrCover()
    held: list[tuple[int, int]] = []
    for remove, prefix, which in ops:
        if remove and held:
            cover.remove(*held.pop(which % len(held)))
        else:
            size = 1 << (32 - prefix)  # CIDRs of one /20, so that they nest
            lo = (which * 64) & ~(size - 1)
            held.append((lo, lo + (1 << (32 - prefix)) - 1))
            cover.add(*held[-1])
        lo = np.array([a for a, _ in held], dtype=np.int64)
        hi = np.array([b for _, b in held], dtype=np.int64)
        assert cover.size == _union(lo, hi)


# ---------------------------------------------------------------- one implementation of each rule
def test_needed_ip_ceil_is_the_engines():
    assert _agents.needed_ip_ceil is engine_multi_pool.needed_ip_ceil
    for path in (ROOT / "ipam_core" / "migration").glob("*.py"):
        defined = {node.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef)}
        assert not any("needed_ip" in name for name in defined), path


def test_the_engine_never_imports_migration():
    for path in (ROOT / "ipam_core" / "engine").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("ipam_core.migration"), path
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("ipam_core.migration") for a in node.names), path


def test_plan_5000_pools_fit_every_node():
    """scenarios/plan-5000.yaml: KCM's cluster CIDR and the target's pool list hold a /24 for each of 5,000 nodes."""
    scenario = load_scenario(ROOT / "scenarios" / "plan-5000.yaml")
    ipam = scenario.ipam
    kcm = ipaddress.ip_network(ipam.kcm_cidr(4))
    assert scenario.cluster.nodes == 5000 and 2 ** (ipam.kcm_node_mask_v4 - kcm.prefixlen) >= 5000
    upgrade = next(s.action for s in parse_steps(scenario) if isinstance(s.action, A.HelmUpgrade))
    target = resolve(upgrade_values(_helm_values(scenario), upgrade.assignments, upgrade.values, upgrade.reuse_values))
    assert target.mode == "cluster-pool"
    assert sum(2 ** (target.cluster_pool_mask - ipaddress.ip_network(c).prefixlen) for c in target.cluster_pool) >= 5000


def test_indexes_survive_compaction(monkeypatch):
    """A plan large enough that gone pods are compacted away (pod ids change): the lists and work lists follow."""
    compactions = []
    original = PodTable.compact

    def counted(self):
        compactions.append(self.n)
        original(self)

    monkeypatch.setattr(PodTable, "compact", counted)
    monkeypatch.setattr(plan_module, "MigrationEngine", CheckedEngine)
    plan = plan_migration(load_scenario(ROOT / "scenarios" / "seed-lab.yaml"), nodes=140, pods_per_node=30, batch=70)
    assert compactions
    assert plan.pods == 140 * 30 + 2 and all(row.nodes_waiting_at_end == 0 for row in plan.rows)
