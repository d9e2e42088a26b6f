"""A cloud cluster's own state (ENI, CRD) as the start of a run, and ``migrate --plan`` from a dumped cluster.

Hand-worked fixtures: a 2-node ENI cluster whose CiliumNodes hold 2 ENIs with 10 addresses on node A and
1 ENI with 2 addresses and a /28 prefix on node B; a CRD cluster with spec.ipam.pool only. After import
and run, t=0 holds exactly the dump's interfaces, addresses and pods; then the operator's watermarks act.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.ipc as ipc
import pytest
import yaml
from typer.testing import CliRunner

from ipam_core.cli import app
from ipam_core.pipeline import build_workload
from ipam_core.engine import tables as T
from ipam_core.pipeline.run import TRACE_COUNTERS, Simulation, run_mode, sample_times
from ipam_core.migration.engine import MigrationEngine
from ipam_core.migration.imported import imported_cluster
from ipam_core.migration.plan import plan_migration
from ipam_core.modes import aws_vpc_cni, eni
from ipam_core.scenario import load_scenario

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from baseline_engine import BaselineEngine, baseline_trace  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "import"
runner = CliRunner()
SUBNET = "192.168.32.0/19"
A, B = "ip-192-168-33-10.eu-west-1.compute.internal", "ip-192-168-70-21.eu-west-1.compute.internal"
A_ENIS = {  # node A: eth0 and eth1 in the same subnet, 6 + 4 secondary addresses
    "eni-a0": ("192.168.33.10", [f"192.168.33.{i}" for i in range(51, 57)], []),
    "eni-a1": ("192.168.33.11", [f"192.168.35.{i}" for i in range(1, 5)], []),
}
B_ENIS = {"eni-b0": ("192.168.70.21", ["192.168.70.80", "192.168.70.81"], ["192.168.71.16/28"])}
PODS = {("shop", "web-1"): (A, "192.168.33.51"), ("shop", "web-2"): (A, "192.168.33.55"),
        ("shop", "web-3"): (A, "192.168.35.3"), ("shop", "web-4"): (A, "192.168.35.4"),
        ("shop", "web-5"): (B, "192.168.71.20")}  # inside node B's prefix


def _enis(enis: dict, subnet: str) -> dict:
    return {key: {"id": key, "ip": ip, "number": k, "addresses": addrs, "prefixes": prefixes,
                  "subnet": {"id": "subnet-x", "cidr": subnet}}
            for k, (key, (ip, addrs, prefixes)) in enumerate(enis.items())}


def _eni_dump(tmp_path: Path) -> Path:
    """The ENI fixture of tests/data/import with the hand-worked ENIs and pods above."""
    doc = json.loads((DATA / "eni.json").read_text())
    template = next(o for o in doc["items"] if o["kind"] == "Pod" and o["metadata"]["name"] == "web-1")
    items = [o for o in doc["items"] if o["kind"] in ("Node", "CiliumNode")]
    for cn in (o for o in items if o["kind"] == "CiliumNode"):
        own = A_ENIS if cn["metadata"]["name"] == A else B_ENIS
        subnet = SUBNET if cn["metadata"]["name"] == A else "192.168.64.0/19"
        cn["status"]["eni"]["enis"] = _enis(own, subnet)
        pool = [a for _, addrs, _ in own.values() for a in addrs]
        pool += [str(ip) for _, _, prefixes in own.values() for p in prefixes for ip in ipaddress.ip_network(p)]
        cn["spec"]["ipam"]["pool"] = {a: {"resource": "eni"} for a in pool}
        cn["status"]["ipam"]["used"] = {}
    for (namespace, name), (node, ip) in PODS.items():
        pod = copy.deepcopy(template)
        pod["metadata"].update(name=name, namespace=namespace, uid=name)
        pod["spec"]["nodeName"] = node
        pod["status"]["podIP"] = ip
        pod["status"]["podIPs"] = [{"ip": ip}]
        items.append(pod)
    path = tmp_path / "eni-cluster.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    return path


def _invoke(args: list) -> object:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def _cloud_addresses(sim: Simulation) -> tuple[dict, dict]:
    """Node -> addresses of its units, and (namespace, pod) -> address, read from the engine's tables."""
    st, sets = sim.state, sim.layout.sets
    names = sim.workload.node_names
    units: dict = {}
    for node in range(len(names)):
        for unit in st.cl_unit[node]:
            if unit[T.CU_SET] >= 0:
                base = int(sets[int(unit[T.CU_SET])].network.network_address) + int(unit[T.CU_OFF])
                units.setdefault(names[node], set()).update(
                    str(ipaddress.IPv4Address(base + k)) for k in range(int(unit[T.CU_SIZE])))
    pods: dict = {}
    pod_names = sim.workload.pod_names.to_pylist()
    for row in np.flatnonzero(st.core.pod_tables.pods[:, T.D_STATE] == T.POD_RUNNING).tolist():
        node, j = int(st.core.pod_tables.pods[row, T.D_NODE]), int(st.core.pod_tables.pods[row, T.D_SLOT])
        unit = st.cl_unit[node, j]
        address = int(sets[int(unit[T.CU_SET])].network.network_address) + int(unit[T.CU_OFF]) + int(
            st.core.pod_tables.pods[row, T.D_OFF])
        pods[("shop", pod_names[int(st.core.pod_tables.pods[row, T.D_ID])])] = (names[node], str(ipaddress.IPv4Address(address)))
    return units, pods


def test_eni_run_starts_from_the_dumped_enis_addresses_and_pods(tmp_path):
    out = tmp_path / "out"
    _invoke(["import", _eni_dump(tmp_path), "--helm-values", DATA / "eni-values.yaml", "--out", out])
    scenario = load_scenario(out / "scenario.yaml")
    assert scenario.initial_state is not None and scenario.initial_state.cloud is not None
    sim = Simulation(scenario, build_workload(scenario), "eni")
    sim.advance(1e-9)
    units, pods = _cloud_addresses(sim)
    want_a = {a for _, addrs, _ in A_ENIS.values() for a in addrs}
    want_b = set(B_ENIS["eni-b0"][1]) | {str(ip) for ip in ipaddress.ip_network("192.168.71.16/28")}
    assert units == {A: want_a, B: want_b}
    assert pods == PODS  # each pod at exactly its dumped address
    names = sim.workload.node_names
    a, b = names.index(A), names.index(B)
    st = sim.state
    assert (st.cl_node[a, T.CN_IFACES], st.cl_node[b, T.CN_IFACES]) == (2, 1)
    assert (st.cl_node[a, T.CN_HELD], st.cl_node[b, T.CN_HELD]) == (10, 18)
    assert st.cl_node[b, T.CN_PREFIXES] == 1
    primaries = {int(ipaddress.IPv4Address(ip)) for ip, _, _ in (*A_ENIS.values(), *B_ENIS.values())}
    held = {int(sim.layout.sets[int(st.cl_iface[n, i, T.CI_SET])].network.network_address)
            + int(st.cl_iface[n, i, T.CI_PRIMARY]) for n in (a, b) for i in range(st.cl_iface.shape[1])
            if st.cl_iface[n, i, T.CI_ATTACHED]}
    assert held == primaries  # the dumped ENIs' own primary addresses, not fresh ones


def test_eni_trace_at_t0_counts_the_dump_then_the_watermarks_act(tmp_path):
    out = tmp_path / "out"
    _invoke(["import", _eni_dump(tmp_path), "--helm-values", DATA / "eni-values.yaml", "--out", out])
    _invoke(["run", out / "scenario.yaml", "--out", tmp_path / "run"])
    trace = ipc.open_file(tmp_path / "run" / "trace.arrow").read_all().to_pylist()
    first, last = trace[0], trace[-1]
    assert first["time_s"] == 0.0
    assert first["interfaces"] == 3 and first["prefixes"] == 1
    assert first["pods_running"] == 5
    # the subnets' carved addresses: each subnet's 5 the cloud keeps, 3 primaries, 10 + 2 + 16 pool addresses
    assert first["addrs_carved"] == 2 * 5 + 3 + 28
    nodes = ipc.open_file(tmp_path / "run" / "nodes.arrow").read_all().to_pylist()
    at0 = {r["node"]: r for r in nodes if r["time_s"] == 0.0}
    assert sorted(at0[A]["cidrs"]) == sorted(f"{a}/32" for _, addrs, _ in A_ENIS.values() for a in addrs)
    assert at0[A]["used"] >= 4 and at0[B]["used"] >= 1
    # then the operator keeps pre-allocate (8) free: node A (10 held, 4 pods + router/health) grew
    end = {r["node"]: r for r in nodes if r["time_s"] == last["time_s"]}
    assert end[A]["free"] >= 8 and len(end[A]["cidrs"]) > 10


def _import_as(tmp_path: Path, dump: dict, mode: str) -> Path:
    """Import ``dump`` with Helm values naming ``mode``; the run folder."""
    path = tmp_path / f"{mode}.json"
    path.write_text(json.dumps(dump))
    values = tmp_path / f"{mode}-values.yaml"
    values.write_text(f"ipam:\n  mode: {mode}\n")
    out = tmp_path / mode
    _invoke(["import", path, "--helm-values", values, "--out", out])
    return out


def _import_crd(tmp_path: Path) -> tuple[Path, dict]:
    """The ENI cluster's CiliumNodes without ENIs, in ``crd`` mode: spec.ipam.pool only."""
    dump = json.loads(_eni_dump(tmp_path).read_text())
    for cn in (o for o in dump["items"] if o["kind"] == "CiliumNode"):
        cn["spec"].pop("eni")
        cn["status"].pop("eni")
    return _import_as(tmp_path, dump, "crd"), dump


def test_crd_run_starts_from_spec_ipam_pool(tmp_path):
    out, dump = _import_crd(tmp_path)
    scenario = load_scenario(out / "scenario.yaml")
    sim = Simulation(scenario, build_workload(scenario), "crd")
    sim.advance(1e-9)
    units, pods = _cloud_addresses(sim)
    pool = {name: set(cn["spec"]["ipam"]["pool"]) for cn in dump["items"] if cn["kind"] == "CiliumNode"
            for name in [cn["metadata"]["name"]]}
    assert units == pool and pods == PODS


def _import_azure(tmp_path: Path) -> tuple[Path, dict, dict]:
    """One NIC per node (status.azure.interfaces), an address in state failed on each, pods web-3 and -4 gone."""
    dump = json.loads(_eni_dump(tmp_path).read_text())
    nics = {}
    for cn in (o for o in dump["items"] if o["kind"] == "CiliumNode"):
        name = cn["metadata"]["name"]
        cn["spec"].pop("eni")
        cn["status"].pop("eni")
        subnet = SUBNET if name == A else "192.168.64.0/19"
        addresses = [f"192.168.33.{i}" for i in range(51, 56)] if name == A else [
            "192.168.70.80", "192.168.70.81", "192.168.71.20"]
        failed = "192.168.40.1" if name == A else "192.168.90.1"
        nics[name] = set(addresses)
        cn["status"]["azure"] = {"interfaces": [{
            "id": f"nic-{name[:12]}", "name": "eth0", "cidr": subnet,
            "addresses": [*({"ip": a, "subnet": "sub", "state": "succeeded"} for a in addresses),
                          {"ip": failed, "subnet": "sub", "state": "failed"}]}]}
        cn["spec"]["ipam"]["pool"] = {a: {"resource": "nic"} for a in addresses}
    kept = {k: v for k, v in PODS.items() if k[1] not in ("web-3", "web-4")}  # on node A's second ENI
    dump["items"] = [o for o in dump["items"] if o["kind"] != "Pod" or ("shop", o["metadata"]["name"]) in kept]
    return _import_as(tmp_path, dump, "azure"), nics, kept


def test_azure_run_starts_from_the_nics_succeeded_addresses(tmp_path):
    out, nics, kept = _import_azure(tmp_path)
    scenario = load_scenario(out / "scenario.yaml")
    sim = Simulation(scenario, build_workload(scenario), "azure")
    sim.advance(1e-9)
    units, pods = _cloud_addresses(sim)
    assert units == nics  # the address in state failed is not in the pool
    assert pods == kept
    st = sim.state
    for name in (A, B):
        node = sim.workload.node_names.index(name)
        assert st.cl_node[node, T.CN_IFACES] == 1
        primary = int(st.cl_iface[node, 0, T.CI_PRIMARY])  # not in the dump: a free address of the subnet
        base = int(sim.layout.sets[int(st.cl_iface[node, 0, T.CI_SET])].network.network_address)
        assert primary >= 0 and str(ipaddress.IPv4Address(base + primary)) not in nics[name]


@pytest.mark.parametrize("mode", ["eni", "azure", "crd"])
def test_the_oracle_started_from_the_same_state_gives_the_same_trace(tmp_path, mode):
    if mode == "eni":
        out = tmp_path / "eni"
        _invoke(["import", _eni_dump(tmp_path), "--helm-values", DATA / "eni-values.yaml", "--out", out])
    else:
        out = (_import_azure if mode == "azure" else _import_crd)(tmp_path)[0]
    scenario = load_scenario(out / "scenario.yaml")
    workload = build_workload(scenario)
    engine = run_mode(scenario, workload, mode).trace
    oracle = BaselineEngine(scenario, workload, mode)
    assert oracle.c.running == len(oracle.pods) > 0  # started from the dump before the first event
    expected = baseline_trace(oracle, sample_times(scenario.duration_s, scenario.sample_interval_s))
    for column in TRACE_COUNTERS:
        differ = np.flatnonzero(engine[column] != expected[column])
        assert differ.size == 0, (f"{mode}: {column} differs first at t={engine['time_s'][differ[0]]:g}s: engine "
                                  f"{engine[column][differ[0]]}, oracle {expected[column][differ[0]]}")


def test_a_cloud_state_that_does_not_fit_is_one_line(tmp_path):
    out = tmp_path / "out"
    _invoke(["import", _eni_dump(tmp_path), "--helm-values", DATA / "eni-values.yaml", "--out", out])
    state = json.loads((out / "initial-state.json").read_text())
    state["nodes"][0]["enis"][0]["addresses"].append("192.168.33.11")  # eth1's primary address
    (out / "initial-state.json").write_text(json.dumps(state))
    result = runner.invoke(app, ["run", str(out / "scenario.yaml"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    line, = result.stderr.splitlines()
    assert "initial-state.json" in line and "'192.168.33.11' is also held by" in line
    assert not (tmp_path / "run").exists()


def test_cloud_max_pods_is_the_largest_node_groups():
    scenario = load_scenario(Path(__file__).resolve().parent.parent / "scenarios" / "questions" /
                             "mixed-instances-warm.yaml")
    for module in (eni, aws_vpc_cni):
        per_group = [module._instance_max_pods(replace(scenario, ipam=replace(
            scenario.ipam, cloud=replace(scenario.ipam.cloud, instance_type=group.instance_type))))
            for group in scenario.ipam.cloud.node_groups]
        assert len(set(per_group)) > 1  # the groups differ
        assert module.max_pods(scenario) == max(per_group)


# ---------------------------------------------------------------- migrate --plan from the dumped cluster
HOLES = {"10.244.1.": "10.244.7.", "10.244.2.": "10.244.3."}  # nodes that are not in next-fit order


def _import_moved(tmp_path: Path, fixture: str, moves: dict) -> tuple[Path, object, dict]:
    """A fixture with its CIDRs and addresses moved (a cluster that lost nodes): folder, scenario, state."""
    text = (DATA / f"{fixture}.json").read_text()
    for old, new in moves.items():
        text = text.replace(old, new)
    (tmp_path / "dump.json").write_text(text)
    out = tmp_path / "out"
    _invoke(["import", tmp_path / "dump.json", "--helm-values", DATA / f"{fixture}-values.yaml", "--out", out])
    return out, load_scenario(out / "scenario.yaml"), json.loads((out / "initial-state.json").read_text())


def test_migrate_plan_starts_from_the_dumped_cidrs_and_pods(tmp_path):
    out, scenario, state = _import_moved(tmp_path, "kind-host-scope", HOLES)
    cidrs = {n["name"]: n["podCIDRs"][0] for n in state["nodes"]}
    dumped = sorted((p["node"], p["ips"][0]) for p in state["pods"] if p["ips"])
    engine = MigrationEngine(scenario, (), record=False, end=60.0, imported=imported_cluster(scenario, "kubernetes"))
    engine.run()
    assert {n.name: n.kcm_cidr for n in engine.nodes} == cidrs  # the holes kept, not carved again
    assert {n.name: n.agent.routed for n in engine.nodes} == {k: [v] for k, v in cidrs.items()}
    p = engine.pods
    held = sorted((engine.nodes[int(p.node[i])].name, str(ipaddress.IPv4Address(int(p.addr[i])))) for i in range(p.n))
    assert held == dumped
    plan = plan_migration(scenario, to_mode="cluster-pool")
    assert (plan.nodes, plan.pods) == (3, len(dumped))  # not a generated 30 pods per node
    new_cluster = next(r for r in plan.rows if r.strategy == "new-cluster")
    assert new_cluster.pod_restarts == len(dumped)  # every dumped pod starts again in the new cluster


def test_migrate_plan_restarts_exactly_the_dumped_pods_whose_cidr_changes(tmp_path):
    # cluster-pool with a hole: pool-a-3 holds the 9th /26; kube-controller-manager hands out /26s in join order
    out, scenario, state = _import_moved(
        tmp_path, "cluster-pool", {"10.0.0.128/26": "10.0.2.0/26", "10.0.0.133": "10.0.2.5", "10.0.0.140": "10.0.2.12"})
    order = yaml.safe_load((out / "scenario.yaml").read_text())["migration"]["nodes"]  # join order
    carved = dict(zip(order, (str(net) for net in ipaddress.ip_network("10.0.0.0/22").subnets(new_prefix=26))))
    moved = {n["name"] for n in state["nodes"] if n["podCIDRs"][0] != carved[n["name"]]}
    must_restart = sum(1 for p in state["pods"] if p["ips"] and p["node"] in moved)
    assert moved == {"pool-a-3"} and must_restart >= 1
    plan = plan_migration(scenario, to_mode="kubernetes")
    assert plan.pods == sum(1 for p in state["pods"] if p["ips"])
    for row in plan.rows:
        if row.strategy in ("all-at-once", "node-by-node"):
            assert row.pod_restarts == must_restart, row  # the pods outside their node's new CIDR, no others


# multi-pool with holes in both pools' CIDR order: mp-2's second default /27 and mp-1's blue /28 moved up
MULTI_POOL_HOLES = {"10.10.0.64/27": "10.10.0.128/27", '"10.10.0.77"': '"10.10.0.141"',
                    '"10.20.0.3"': '"10.20.0.35"', '"10.20.0.11"': '"10.20.0.43"', "10.20.0.0/28": "10.20.0.32/28"}


def test_migrate_plan_starts_a_multi_pool_cluster_from_its_pools_and_pods(tmp_path):
    out, scenario, state = _import_moved(tmp_path, "multi-pool", MULTI_POOL_HOLES)
    pools = {n["name"]: n["pools"] for n in state["nodes"]}
    assert pools == {"mp-1": {"default": ["10.10.0.0/27"], "blue": ["10.20.0.32/28"]},
                     "mp-2": {"default": ["10.10.0.32/27", "10.10.0.128/27"]}}  # the moves took
    dumped = sorted((p["node"], p["ips"][0], p["pool"]) for p in state["pods"] if p["ips"])
    engine = MigrationEngine(scenario, (), record=False, end=60.0, imported=imported_cluster(scenario, "multi-pool"))
    engine.run()
    # each node holds exactly its dumped CIDRs per pool (the holes kept, nothing carved next-fit)
    assert {n.name: n.cn.allocated for n in engine.nodes} == pools
    assert {n.name: engine.operator.tracked[n.name] for n in engine.nodes} == pools
    assert {n.name: sorted((r.pool, r.cidr) for r in n.agent.ranges) for n in engine.nodes} == {
        name: sorted((pool, c) for pool, cidrs in held.items() for c in cidrs) for name, held in pools.items()}
    p = engine.pods
    held = []
    for i in range(p.n):
        node = engine.nodes[int(p.node[i])]
        r, = (r for r in node.agent.ranges if r.contains(p.addr[i: i + 1])[0])
        assert int(p.addr[i]) - r.base in r.alloc.allocated_offsets()  # the agent holds it
        held.append((node.name, str(ipaddress.IPv4Address(int(p.addr[i]))), r.pool))
    assert sorted(held) == dumped  # every pod at its address, in its pool's CIDR

    # cluster-pool over the default pool's range: next-fit /27s in join order; pods outside theirs restart
    doc = yaml.safe_load((out / "scenario.yaml").read_text())
    doc["cilium"]["ipam"]["operator"].update(clusterPoolIPv4PodCIDRList=["10.10.0.0/16"], clusterPoolIPv4MaskSize=27)
    (out / "to-cluster-pool.yaml").write_text(yaml.safe_dump(doc))
    scenario = load_scenario(out / "to-cluster-pool.yaml")
    carved = dict(zip(doc["migration"]["nodes"], ipaddress.ip_network("10.10.0.0/16").subnets(new_prefix=27)))
    must_restart = sum(1 for node, ip, _ in dumped if ipaddress.ip_address(ip) not in carved[node])
    assert must_restart == 3  # both blue pods, and frontend-1 in mp-2's moved /27
    plan = plan_migration(scenario, to_mode="cluster-pool")
    assert (plan.nodes, plan.pods) == (2, len(dumped))  # not a generated steady state
    for row in plan.rows:
        if row.strategy in ("all-at-once", "node-by-node"):
            assert row.pod_restarts == must_restart, row
    assert next(r for r in plan.rows if r.strategy == "new-cluster").pod_restarts == len(dumped)


def test_migrate_plan_keeps_an_empty_dumped_multi_pool_cidr_the_free_buffer_needs(tmp_path):
    # mp-2: 21 pods, router and health in 10.10.0.32/27 (30 addresses); 10.10.0.128/27 empty. With
    # pre-allocation 8 the agent needs 32 addresses (neededIPCeil(23, 8)), so it keeps the empty /27;
    # judged before its pods were placed it would give it back and get 10.10.0.64/27 from the operator.
    doc = json.loads((DATA / "multi-pool.json").read_text().replace("10.10.0.64/27", "10.10.0.128/27")
                     .replace('"10.10.0.77"', '"10.10.0.61"'))
    template = next(i for i in doc["items"] if i["kind"] == "Pod" and i["metadata"]["name"] == "frontend-1")
    for k in range(19):
        pod = copy.deepcopy(template)
        pod["metadata"].update(name=f"filler-{k}", uid=f"filler-{k}")
        pod["status"]["podIP"] = f"10.10.0.{41 + k}"
        pod["status"]["podIPs"] = [{"ip": f"10.10.0.{41 + k}"}]
        doc["items"].append(pod)
    (tmp_path / "dump.json").write_text(json.dumps(doc))
    out = tmp_path / "out"
    _invoke(["import", tmp_path / "dump.json", "--helm-values", DATA / "multi-pool-values.yaml", "--out", out])
    scenario = load_scenario(out / "scenario.yaml")
    engine = MigrationEngine(scenario, (), record=False, end=60.0, imported=imported_cluster(scenario, "multi-pool"))
    engine.run()
    mp2 = next(n for n in engine.nodes if n.name == "mp-2")
    assert sum(r.alloc.used for r in mp2.agent.ranges) == 23
    assert mp2.cn.allocated == {"default": ["10.10.0.32/27", "10.10.0.128/27"]}
    assert mp2.cn.requested["default"] == 32


def test_dumped_addresses_other_consumers_hold_stop_the_run_in_one_line(tmp_path):
    out = tmp_path / "out"
    _invoke(["import", _eni_dump(tmp_path), "--helm-values", DATA / "eni-values.yaml", "--out", out])
    text = (out / "scenario.yaml").read_text()
    shared = text.replace(f"  - {SUBNET}\n", f"  - {{cidr: {SUBNET}, sharedUsed: 0.9}}\n")
    assert shared != text
    (out / "shared.yaml").write_text(shared)
    result = runner.invoke(app, ["run", str(out / "shared.yaml"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    line, = result.stderr.splitlines()
    assert "initialState: initial-state.json" in line and "sharedUsed" in line
    assert not (tmp_path / "run").exists()
