"""ipam-bench import: realistic dumps of five kinds of cluster become scenarios that load and run.

Fixtures (tests/data/import/) are written by hand from the Kubernetes and Cilium object shapes:
a kind-like host-scope cluster (with its kube-controller-manager static pod), a cluster-pool
cluster with an events dump, a multi-pool cluster with two pools and Namespaces, an ENI cluster
(instance types, ENIs, spec.ipam.pool) and a dual-stack host-scope cluster.
"""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

import pyarrow.ipc as ipc
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ipam_core.cli import app
from ipam_core.importer import import_cluster, write_import
from ipam_core.importer.cluster import infer_mode
from ipam_core.importer.dumps import read_dumps
from ipam_core.rundir import verify_run
from ipam_core.scenario import load_scenario

DATA = Path(__file__).resolve().parent / "data" / "import"
runner = CliRunner()


def _import(tmp_path, dump, values=None, events=None, name="out"):
    out = tmp_path / name
    args = ["import", str(DATA / dump), "--out", str(out)]
    if values:
        args += ["--helm-values", str(DATA / values)]
    if events:
        args += ["--events", str(DATA / events)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return out, result


def _rows(out):
    with (out / "workload.csv").open() as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- what each kind of cluster becomes
def test_host_scope_kind_cluster_keeps_nodes_kcm_flags_and_live_pods(tmp_path):
    out, result = _import(tmp_path, "kind-host-scope.json", "kind-host-scope-values.yaml")
    assert sorted(p.name for p in out.iterdir()) == ["initial-state.json", "manifest.json", "scenario.yaml",
                                                     "workload.csv"]
    verify_run(out)
    doc = yaml.safe_load((out / "scenario.yaml").read_text())
    assert doc["cilium"]["ipam"]["mode"] == "kubernetes"
    # read from the kube-controller-manager pod's command line, not guessed
    assert doc["cluster"]["kubeControllerManager"]["cluster-cidr"] == "10.244.0.0/16"
    assert doc["cluster"]["kubeControllerManager"]["allocate-node-cidrs"] is True
    assert doc["cluster"]["nodes"] == 3 and doc["cluster"]["kubelet"]["maxPods"] == 110
    assert doc["migration"]["nodes"] == ["kind-control-plane", "kind-worker", "kind-worker2"]
    rows = _rows(out)
    assert [r["node"] for r in rows if r["op"] == "node-add"] == ["kind-control-plane", "kind-worker", "kind-worker2"]
    pods = {(r["namespace"], r["pod"]): r["node"] for r in rows if r["op"] == "add"}
    # hostNetwork pods (KCM, cilium agent) and the Succeeded job hold no pod address: left out
    assert pods == {("kube-system", "coredns-6f6b679f8f-4xq9z"): "kind-control-plane",
                    ("kube-system", "coredns-6f6b679f8f-ttw5m"): "kind-control-plane",
                    ("shop", "web-7d9c5b8f4-2kq7x"): "kind-worker",
                    ("shop", "web-7d9c5b8f4-9mvnb"): "kind-worker2",
                    ("shop", "web-7d9c5b8f4-x2c4d"): "kind-worker2"}
    assert {float(r["time"]) for r in rows} == {0.0}
    state = json.loads((out / "initial-state.json").read_text())
    assert [n["podCIDRs"] for n in state["nodes"]] == [["10.244.0.0/24"], ["10.244.1.0/24"], ["10.244.2.0/24"]]
    assert {p["name"]: p["ips"] for p in state["pods"]}["web-7d9c5b8f4-x2c4d"] == ["10.244.2.96"]
    assert "2 hostNetwork pod(s) skipped" in result.stdout and "Succeeded" in result.stdout
    assert "kubeProxyReplacement" in result.stdout  # ignored Helm values are listed


def test_cluster_pool_with_events_replays_recorded_lifetimes(tmp_path):
    out, _ = _import(tmp_path, "cluster-pool.json", "cluster-pool-values.yaml", "cluster-pool-events.json")
    doc = yaml.safe_load((out / "scenario.yaml").read_text())
    assert doc["cilium"]["ipam"]["operator"] == {"clusterPoolIPv4PodCIDRList": ["10.0.0.0/22"],
                                                 "clusterPoolIPv4MaskSize": 26}
    assert doc["modes"] == ["cluster-pool", "kubernetes"]
    rows = [(float(r["time"]), r["op"], r["pod"], r["node"]) for r in _rows(out) if r["op"] != "node-add"]
    t0 = 0.0
    assert (t0, "add", "api-5c7f9d6b8-old11", "pool-a-2") in rows  # running before the window, killed at its start
    assert (t0, "delete", "api-5c7f9d6b8-old11", "") in rows
    assert rows.index((t0, "add", "api-5c7f9d6b8-old11", "pool-a-2")) < rows.index((t0, "delete", "api-5c7f9d6b8-old11",
                                                                                     ""))
    assert (pytest.approx(10.512301), "add", "api-5c7f9d6b8-q2w8e", "pool-a-2") in rows  # its Scheduled event
    assert (20.0, "add", "report-28871220-k2l9p", "pool-a-1") in rows and \
        (80.0, "delete", "report-28871220-k2l9p", "") in rows
    assert (t0, "add", "worker-0", "pool-a-1") in rows  # no event: alive from t=0
    assert (t0, "add", "report-28871230-x7kq2", "") in rows  # Pending, unscheduled: the engine places it
    assert doc["duration"] == "680s"  # the last event + 10 minutes


def test_multi_pool_keeps_pools_namespaces_and_each_pods_pool(tmp_path):
    out, _ = _import(tmp_path, "multi-pool.json", "multi-pool-values.yaml")
    doc = yaml.safe_load((out / "scenario.yaml").read_text())
    pools = {m["metadata"]["name"]: m["spec"] for m in doc["manifests"] if m["kind"] == "CiliumPodIPPool"}
    assert pools["blue"]["ipv4"] == {"cidrs": ["10.20.0.0/20", "10.20.64.0/20"], "maskSize": 28}
    assert pools["blue"]["namespaceSelector"] == {"matchLabels": {"team": "blue"}}
    namespaces = {m["metadata"]["name"]: m["metadata"] for m in doc["manifests"] if m["kind"] == "Namespace"}
    assert namespaces["team-blue"]["annotations"] == {"ipam.cilium.io/ip-pool": "blue"}  # the owner annotation dropped
    assert doc["cilium"]["ipam"]["multiPoolPreAllocation"] == "default=8,blue=4"  # from extraConfig
    pools_of = {r["pod"]: r["pool"] for r in _rows(out) if r["op"] == "add"}
    assert pools_of == {"frontend-0": "default", "frontend-1": "default", "cache-0": "default",
                        "ledger-6b9d-4kq": "blue", "ledger-6b9d-8zt": "blue"}
    nodes = {n["name"]: n for n in json.loads((out / "initial-state.json").read_text())["nodes"]}
    assert nodes["mp-2"]["pools"] == {"default": ["10.10.0.32/27", "10.10.0.64/27"]}
    scenario = load_scenario(out / "scenario.yaml")
    assert [p.name for p in scenario.ipam.pools] == ["default", "blue"]


def test_eni_cluster_keeps_instance_type_subnets_watermarks_and_enis(tmp_path):
    out, _ = _import(tmp_path, "eni.json", "eni-values.yaml")
    doc = yaml.safe_load((out / "scenario.yaml").read_text())
    assert doc["modes"] == ["eni"]
    assert doc["cluster"]["instanceType"] == "m5.large" and doc["cluster"]["kubelet"]["maxPods"] == 29
    assert doc["cloud"]["subnets"] == ["192.168.32.0/19", "192.168.64.0/19"]
    assert doc["cilium"]["ipam"]["operator"] == {"preAllocate": 8}
    assert doc["cilium"]["eni"]["awsReleaseExcessIPs"] is True
    state = json.loads((out / "initial-state.json").read_text())
    first = state["nodes"][0]
    assert first["zone"] == "eu-west-1a" and first["enis"][0]["subnetId"] == "subnet-0aa1"
    assert first["addresses"][-1] == "192.168.34.7"
    scenario = load_scenario(out / "scenario.yaml")
    assert scenario.ipam.cloud.subnets == ("192.168.32.0/19", "192.168.64.0/19")


def test_dual_stack_without_kcm_pod_infers_the_cluster_cidrs(tmp_path):
    out, result = _import(tmp_path, "dual-stack.json", "dual-stack-values.yaml")
    doc = yaml.safe_load((out / "scenario.yaml").read_text())
    kcm = doc["cluster"]["kubeControllerManager"]
    assert kcm == {"cluster-cidr": "10.244.0.0/23,fd00:10:244::/63", "node-cidr-mask-size-ipv4": 24,
                   "node-cidr-mask-size-ipv6": 64}
    assert "smallest range" in result.stdout
    assert "migration" not in doc  # migrate models IPv4 only
    state = json.loads((out / "initial-state.json").read_text())
    assert {p["name"]: p["ips"] for p in state["pods"]}["echo-5d8f9c7b6-7q8wz"] == ["10.244.1.36", "fd00:10:244:1::2e"]
    assert load_scenario(out / "scenario.yaml").ipam.families == (4, 6)


@pytest.mark.parametrize("dump, mode", [("kind-host-scope.json", "kubernetes"), ("cluster-pool.json", "cluster-pool"),
                                        ("multi-pool.json", "multi-pool"), ("eni.json", "eni"),
                                        ("dual-stack.json", "kubernetes")])
def test_mode_is_inferred_from_the_objects_without_helm_values(dump, mode):
    assert infer_mode(read_dumps([DATA / dump])) == mode


def test_objects_split_over_several_files_and_yaml_dumps(tmp_path):
    items = json.loads((DATA / "cluster-pool.json").read_text())["items"]
    nodes = {"apiVersion": "v1", "kind": "NodeList", "items": [{k: v for k, v in i.items() if k != "kind"}
                                                               for i in items if i["kind"] == "Node"]}
    (tmp_path / "nodes.json").write_text(json.dumps(nodes))
    (tmp_path / "rest.yaml").write_text(yaml.safe_dump_all([i for i in items if i["kind"] != "Node"]))
    one = import_cluster([DATA / "cluster-pool.json"], helm_values=DATA / "cluster-pool-values.yaml")
    split = import_cluster([tmp_path / "nodes.json", tmp_path / "rest.yaml"],
                           helm_values=DATA / "cluster-pool-values.yaml")
    assert split.rows == one.rows and split.initial == one.initial


def test_a_second_import_replaces_the_first(tmp_path):
    out, _ = _import(tmp_path, "cluster-pool.json", "cluster-pool-values.yaml")
    imported = import_cluster([DATA / "eni.json"], helm_values=DATA / "eni-values.yaml", name="out")
    write_import(imported, out)
    assert yaml.safe_load((out / "scenario.yaml").read_text())["modes"] == ["eni"]
    verify_run(out)


# ---------------------------------------------------------------- the imported scenario runs
def test_imported_host_scope_runs_and_the_engine_carves_the_dumped_node_cidrs(tmp_path):
    out, _ = _import(tmp_path, "kind-host-scope.json", "kind-host-scope-values.yaml")
    run = tmp_path / "run"
    result = runner.invoke(app, ["run", str(out / "scenario.yaml"), "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert "5 pods, 0 failed" in result.stdout
    nodes = ipc.open_file(run / "nodes.arrow").read_all().to_pylist()
    last = max(r["time_s"] for r in nodes)
    carved = {r["node"]: list(r["cidrs"]) for r in nodes if r["time_s"] == last}
    # nodes join in the order of their dumped CIDRs, so KCM's next-fit carving gives each its own CIDR back
    assert carved == {"kind-control-plane": ["10.244.0.0/24"], "kind-worker": ["10.244.1.0/24"],
                      "kind-worker2": ["10.244.2.0/24"]}
    used = {r["node"]: r["used"] for r in nodes if r["time_s"] == last}
    assert used == {"kind-control-plane": 2, "kind-worker": 1, "kind-worker2": 2}  # each pod on its own node


def test_imported_multi_pool_and_cluster_pool_compare(tmp_path):
    for dump, values, modes in (("multi-pool.json", "multi-pool-values.yaml", ["multi-pool"]),
                                ("cluster-pool.json", "cluster-pool-values.yaml", ["cluster-pool", "kubernetes"])):
        out, _ = _import(tmp_path, dump, values, name=dump[:-5])
        cmp_out = tmp_path / f"cmp-{dump[:-5]}"
        result = runner.invoke(app, ["compare", str(out / "scenario.yaml"), "--out", str(cmp_out), "--no-plot"])
        assert result.exit_code == 0, result.output
        rows = list(csv.DictReader((cmp_out / "summary.csv").open()))
        assert [r["mode"] for r in rows] == modes
        assert all(r["pods_failed"] == "0" for r in rows)


def test_imported_cluster_pool_plans_a_migration_on_its_own_nodes(tmp_path):
    out, _ = _import(tmp_path, "cluster-pool.json", "cluster-pool-values.yaml")
    result = runner.invoke(app, ["migrate", str(out / "scenario.yaml"), "--plan", "--to", "multi-pool",
                                 "--out", str(tmp_path / "plan")])
    assert result.exit_code == 0, result.output
    assert "cluster-pool -> multi-pool, 3 node(s)" in result.stdout


def test_crd_mode_without_subnets_takes_the_range_of_the_node_pools(tmp_path):
    doc = json.loads((DATA / "eni.json").read_text())
    for item in doc["items"]:
        if item["kind"] == "CiliumNode":
            item["spec"].pop("eni")
            item["status"].pop("eni")
    (tmp_path / "crd.json").write_text(json.dumps(doc))
    (tmp_path / "values.yaml").write_text("ipam:\n  mode: crd\n")
    imported = import_cluster([tmp_path / "crd.json"], helm_values=tmp_path / "values.yaml")
    write_import(imported, tmp_path / "out")
    scenario = load_scenario(tmp_path / "out" / "scenario.yaml")
    assert scenario.ipam.mode == "crd"
    # 192.168.33.51 ... 192.168.70.82: the smallest range holding both nodes' spec.ipam.pool
    assert scenario.ipam.cloud.subnets == ("192.168.0.0/17",)


def test_events_k8s_io_events_give_the_same_lifetimes(tmp_path):
    core = json.loads((DATA / "cluster-pool-events.json").read_text())
    items = []
    for ev in core["items"]:
        new = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": ev["metadata"], "reason": ev["reason"],
               "regarding": ev["involvedObject"], "note": ev["message"], "type": ev["type"]}
        if "eventTime" in ev:
            new["eventTime"] = ev["eventTime"]
        else:  # what the API server shows for an event recorded through core/v1
            new["eventTime"] = None
            new["deprecatedFirstTimestamp"] = ev["firstTimestamp"]
        if "source" in ev:
            new["deprecatedSource"] = ev["source"]
        items.append(new)
    (tmp_path / "events.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    values = DATA / "cluster-pool-values.yaml"
    one = import_cluster([DATA / "cluster-pool.json"], helm_values=values, events=DATA / "cluster-pool-events.json")
    other = import_cluster([DATA / "cluster-pool.json"], helm_values=values, events=tmp_path / "events.json")
    assert other.rows == one.rows and len([r for r in one.rows if r["op"] == "delete"]) == 2


@settings(max_examples=15, deadline=None)
@given(order=st.permutations(range(len(json.loads((DATA / "multi-pool.json").read_text())["items"]))))
def test_the_order_of_objects_in_a_dump_changes_nothing(order):
    doc = json.loads((DATA / "multi-pool.json").read_text())
    doc["items"] = [doc["items"][i] for i in order]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dump.json"
        path.write_text(json.dumps(doc))
        shuffled = import_cluster([path], helm_values=DATA / "multi-pool-values.yaml")
    base = import_cluster([DATA / "multi-pool.json"], helm_values=DATA / "multi-pool-values.yaml")
    key = lambda r: (r["time"], r["op"], r["namespace"] or "", r["pod"] or "", r["node"] or "")  # noqa: E731
    assert [r for r in shuffled.rows if r["op"] == "node-add"] == [r for r in base.rows if r["op"] == "node-add"]
    assert sorted(shuffled.rows, key=key) == sorted(base.rows, key=key)
    assert [n["name"] for n in shuffled.initial["nodes"]] == ["mp-1", "mp-2"]  # CIDR order, not dump order
    assert shuffled.scenario["cilium"] == base.scenario["cilium"]


def test_imported_scenario_is_a_sweep_base(tmp_path):
    out, _ = _import(tmp_path, "cluster-pool.json", "cluster-pool-values.yaml")
    spec = tmp_path / "sweep.yaml"
    spec.write_text("name: imported-mask\nbase: out/scenario.yaml\nmodes: [cluster-pool]\n"
                    "axes:\n  ipam.operator.clusterPoolIPv4MaskSize: [26, 27]\n")
    result = runner.invoke(app, ["sweep", str(spec), "--out", str(tmp_path / "sw"), "--workers", "1", "--no-plot"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "sw" / "aggregate.csv").open()))
    carved = {r["ipam.operator.clusterPoolIPv4MaskSize"]: float(r["peak_carved_mean"]) for r in rows}
    assert carved == {"26": 3 * 64.0, "27": 3 * 32.0}  # the dumped three nodes, each with its CIDR
