"""Random runbooks on a small cluster: the engine's flags, integrals and conflict list stay consistent.

Each property is checked against an independent recomputation from the snapshot rows with
the ``ipaddress`` module, not against the engine's own arrays.
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ipam_core.migration import MigrationEngine
from ipam_core.scenario import load_scenario

NODES = ("n0", "n1", "n2")
SWITCH = ("helm upgrade cilium cilium/cilium --reuse-values --set ipam.mode=cluster-pool "
          "--set ipam.operator.clusterPoolIPv4PodCIDRList={172.20.0.0/22}")

ACTIONS = st.one_of(
    st.tuples(st.just("delete-cn"), st.sampled_from(NODES)),
    st.tuples(st.just("restart-agent"), st.sampled_from(NODES)),
    st.tuples(st.just("restart-all"), st.none()),
    st.tuples(st.just("ds"), st.none()),
    st.tuples(st.just("operator"), st.none()),
    st.tuples(st.just("stale"), st.none()),
    st.tuples(st.just("drain"), st.sampled_from(NODES)),
    st.tuples(st.just("uncordon"), st.sampled_from(NODES)),
    st.tuples(st.just("scale"), st.integers(min_value=0, max_value=12)),
    st.tuples(st.just("rollout"), st.none()),
)


def step(kind, arg, at):
    run = {
        "delete-cn": f"kubectl delete ciliumnode {arg} --ignore-not-found",
        "restart-agent": f"kubectl -n kube-system delete pod -l k8s-app=cilium --field-selector spec.nodeName={arg}",
        "restart-all": "kubectl -n kube-system delete pod -l k8s-app=cilium",
        "ds": "kubectl -n kube-system rollout restart ds/cilium",
        "operator": "kubectl -n kube-system rollout restart deploy/cilium-operator",
        "drain": f"kubectl drain {arg} --ignore-daemonsets",
        "uncordon": f"kubectl uncordon {arg}",
        "scale": f"kubectl scale deploy/web --replicas={arg}",
        "rollout": "kubectl rollout restart deploy/web",
    }.get(kind)
    if kind == "stale":
        return {"at": at, "restartStalePods": "all"}
    return {"at": at, "run": run}


def build(actions, gaps, seed):
    steps = [{"at": 0, "apply": [{"deployment": "web", "replicas": 6},
                                 {"deployment": "coredns", "namespace": "kube-system", "replicas": 2,
                                  "labels": {"k8s-app": "kube-dns"}}]},
             {"at": 60, "run": SWITCH},
             {"at": 60, "run": "kubectl -n kube-system rollout restart deploy/cilium-operator"}]
    t = 60
    for (kind, arg), gap in zip(actions, gaps):
        t += gap
        steps.append(step(kind, arg, t))
    doc = {"name": "p", "seed": seed, "duration": t + 300, "modes": ["kubernetes"],
           "cilium": {"ipam": {"mode": "kubernetes"}},
           "migration": {"nodes": list(NODES), "agentRestart": "20s", "podRestart": "5s", "operatorRestart": "5s"},
           "workload": {"generator": "steady-churn"}, "steps": steps}
    return load_scenario(yaml.safe_dump(doc, sort_keys=False))


def inside(address: str, cidrs: list[str]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(c) for c in cidrs)


@settings(max_examples=30, deadline=None)
@given(st.lists(ACTIONS, min_size=1, max_size=12), st.lists(st.integers(min_value=0, max_value=90), min_size=12,
                                                             max_size=12), st.integers(min_value=0, max_value=2**16))
def test_random_runbooks_keep_flags_integrals_and_conflicts_consistent(actions, gaps, seed):
    engine = MigrationEngine(build(actions, gaps, seed))
    try:
        result = engine.run()
    except Exception as exc:  # a drain with nowhere to go is a valid outcome; nothing else is
        pytest.fail(f"{type(exc).__name__}: {exc}")
    nodes_by_step: dict[int, dict[str, dict]] = {}
    for r in result.node_rows:
        nodes_by_step.setdefault(r["step"], {})[r["node"]] = r
    modes = {r["step"]: r["operator_mode"] for r in result.step_rows}
    for step_index in nodes_by_step:
        pods = result.pods_at(step_index)
        nodes = nodes_by_step[step_index]
        running = [r for r in pods if r["state"] == "running"]
        for r in running:
            node = nodes[r["node"]]
            # disrupted: outside every CIDR the node routes
            assert r["disrupted"] == (not inside(r["address"], node["routed_cidrs"])), r
            # stale: outside every CIDR the running operator accepts for the node
            if modes[step_index] == "cluster-pool":
                ok = node["ciliumnode_exists"] and not node["status_error"]
                accepted = node["ciliumnode_pod_cidrs"] if ok else []
                assert r["stale"] == (not inside(r["address"], accepted)), r
        # the conflict flags cover every shared address at the snapshot
        held = [r["address"] for r in pods if r["address"]]
        shared = {a for a in held if held.count(a) > 1}
        assert {r["address"] for r in pods if r["conflict"]} == shared
        row = result.step_rows[step_index]
        assert row["pods_disrupted"] == sum(r["disrupted"] for r in running)
        assert row["pods_running"] == len(running)
    # the count integrated over time equals the per-pod disrupted intervals
    p = engine.pods
    total = result.summary["disrupted_pod_seconds"]
    assert p.dis_acc.sum() + np.nansum(engine.now - p.dis_since) == pytest.approx(total)
    # every conflict ever recorded is two pods with one address, inside some node's CIDR history
    for c in result.conflicts:
        assert len(c.pods) >= 2 and inside(c.address, ["10.244.0.0/16", "172.20.0.0/22"])
    # the cluster-pool operator's sets count exactly the CIDRs it recorded
    op = engine.operator
    if op is not None and op.mode == "cluster-pool":
        recorded = [c for cidrs in op.recorded.values() for c in cidrs]
        assert len(recorded) == len(set(recorded)) == sum(s.allocated for s in op.sets)
