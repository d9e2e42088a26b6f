"""Malformed dumps and values: exit 2, exactly one stderr line naming the file, object, field and value, and
nothing written under --out (the style of tests/test_bad_input_battery.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ipam_core.cli import app

DATA = Path(__file__).resolve().parent / "data" / "import"
runner = CliRunner()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_refused(tmp_path, args: list[str], needles: tuple[str, ...]) -> str:
    """Exit 2, one stderr line holding every needle, no traceback, --out untouched (and no staging left)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("marker\n")
    before = _snapshot(tmp_path)
    result = runner.invoke(app, ["import", *args, "--out", str(out)])
    context = f"args={args!r} exit={result.exit_code} stderr={result.stderr!r} stdout={result.stdout[-300:]!r}"
    assert result.exit_code == 2, context
    assert "Traceback" not in result.stderr + result.stdout, context
    lines = result.stderr.splitlines()
    assert len(lines) == 1, context
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not named: {context}"
    assert _snapshot(tmp_path) == before, context
    return lines[0]


CP_VALUES = str(DATA / "cluster-pool-values.yaml")


@pytest.mark.parametrize("args, needles", [
    ([str(DATA / "bad-json.json")], ("bad-json.json:", "invalid JSON")),
    ([str(DATA / "cidr-host-bits.json"), "--helm-values", CP_VALUES],
     ("cidr-host-bits.json", "CiliumNode 'pool-b-1'", "spec.ipam.podCIDRs[0]", "10.0.1.5/26", "host bits")),
    ([str(DATA / "pod-ip-outside.json"), "--helm-values", CP_VALUES],
     ("pod-ip-outside.json", "Pod 'prod/stray-7f9c'", "status.podIPs[0]", "10.9.9.9", "10.0.1.0/26")),
    ([str(DATA / "node-missing-podcidr.json"), "--helm-values", str(DATA / "kind-host-scope-values.yaml")],
     ("node-missing-podcidr.json", "Node 'kind-worker3'", "spec.podCIDRs", "missing")),
    ([str(DATA / "kind-host-scope.json"), "--helm-values", str(DATA / "unknown-mode-values.yaml")],
     ("unknown-mode-values.yaml", "ipam.mode", "'clusterpool'", "cluster-pool")),
    ([str(DATA / "overlapping-pools.json")],
     ("overlapping-pools.json", "CiliumPodIPPool 'green'", "10.10.128.0/20", "10.10.0.0/16", "'default'")),
    ([str(DATA / "missing.json")], ("missing.json", "no such dump file")),
    ([str(DATA / "cluster-pool.json"), "--events", str(DATA / "missing-events.json")], ("missing-events.json",)),
])
def test_malformed_input_is_one_line_and_writes_nothing(tmp_path, args, needles):
    assert_refused(tmp_path, args, needles)


def _mutated(tmp_path, name: str, change) -> str:
    doc = json.loads((DATA / name).read_text())
    change(doc["items"])
    path = tmp_path / f"bad-{name}"
    path.write_text(json.dumps(doc))
    return str(path)


def _item(items, kind, name):
    return next(i for i in items if i["kind"] == kind and i["metadata"]["name"] == name)


@pytest.mark.parametrize("change, needles", [
    # the Kubernetes schema: a pod's containers need a name; a node's podCIDRs are a list of strings
    (lambda items: _item(items, "Pod", "worker-0")["spec"]["containers"][0].pop("name"),
     ("Pod 'batch/worker-0'", "spec.containers[0].name", "missing")),
    (lambda items: _item(items, "Node", "pool-a-1")["spec"].update(podCIDRs="10.0.0.0/26"),
     ("Node 'pool-a-1'", "spec.podCIDRs", "10.0.0.0/26")),
    # the CRD fields read, strictly typed
    (lambda items: _item(items, "CiliumNode", "pool-a-2")["spec"]["ipam"].update(podCIDRs=[64]),
     ("CiliumNode 'pool-a-2'", "spec.ipam.podCIDRs[0]", "64", "a valid string")),
    (lambda items: _item(items, "CiliumNode", "pool-a-3").update(apiVersion="cilium.io/v1"),
     ("CiliumNode 'pool-a-3'", "apiVersion", "cilium.io/v1")),
    (lambda items: _item(items, "Pod", "worker-0")["status"].update(podIPs=[{"ip": "10.0.0.300"}]),
     ("Pod 'batch/worker-0'", "status.podIPs[0]", "10.0.0.300")),
    (lambda items: _item(items, "Pod", "worker-0")["status"].update(podIPs=[{"ip": "10.0.0.12"}]),
     ("Pod 'batch/worker-0'", "10.0.0.12", "prod/api-5c7f9d6b8-8hj2k")),
    (lambda items: _item(items, "Pod", "worker-0")["spec"].update(nodeName="pool-z-9"),
     ("Pod 'batch/worker-0'", "spec.nodeName", "pool-z-9")),
    (lambda items: _item(items, "CiliumNode", "pool-a-3")["spec"]["ipam"].update(podCIDRs=["10.0.0.32/27"]),
     ("CiliumNode 'pool-a-3'", "10.0.0.32/27", "overlaps", "10.0.0.0/26 of CiliumNode 'pool-a-1'")),
    (lambda items: items.append(dict(items[0])), ("Node 'pool-a-1'", "listed twice")),
])
def test_schema_and_consistency_errors_name_object_and_field(tmp_path, change, needles):
    path = _mutated(tmp_path, "cluster-pool.json", change)
    assert_refused(tmp_path, [path, "--helm-values", CP_VALUES], (Path(path).name, *needles))


def test_multi_pool_mask_outside_its_cidr_is_refused(tmp_path):
    path = _mutated(tmp_path, "multi-pool.json",
                    lambda items: _item(items, "CiliumPodIPPool", "blue")["spec"]["ipv4"].update(maskSize=16))
    assert_refused(tmp_path, [path], ("CiliumPodIPPool 'blue'", "spec.ipv4.maskSize", "16"))


def test_helm_cidr_with_host_bits_is_refused(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text("ipam:\n  mode: cluster-pool\n  operator:\n    clusterPoolIPv4PodCIDRList: [10.0.0.1/16]\n")
    assert_refused(tmp_path, [str(DATA / "cluster-pool.json"), "--helm-values", str(values)],
                   ("values.yaml", "clusterPoolIPv4PodCIDRList[0]", "10.0.0.1/16"))


def test_missing_kubernetes_package_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # a None entry makes the import raise ImportError
    monkeypatch.setitem(sys.modules, "kubernetes.client", None)
    line = assert_refused(tmp_path, [str(DATA / "cluster-pool.json")], ("'kubernetes'", "ipam-bench[import]"))
    assert "extra" in line


def test_pool_selector_is_checked_with_the_label_selector_schema(tmp_path):
    path = _mutated(tmp_path, "multi-pool.json", lambda items: _item(items, "CiliumPodIPPool", "blue")["spec"].update(
        namespaceSelector={"matchExpressions": [{"key": "team", "values": ["blue"]}]}))
    assert_refused(tmp_path, [path], ("CiliumPodIPPool 'blue'", "spec.namespaceSelector.matchExpressions[0].operator",
                                      "missing"))


def test_without_kubernetes_a_fresh_process_says_which_extra(tmp_path):
    """A fresh process where the kubernetes package does not import: one line, not a traceback."""
    import subprocess

    code = ("import sys; sys.modules['kubernetes'] = sys.modules['kubernetes.client'] = None; "
            "from ipam_core.cli import main; sys.argv = ['ipam-bench'] + sys.argv[1:]; "
            "main()")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", code, "import", str(DATA / "cluster-pool.json"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "ipam-bench[import]" in proc.stderr, proc.stderr
    assert not out.exists()


def test_eni_pod_address_the_node_does_not_hold_is_refused(tmp_path):
    path = _mutated(tmp_path, "eni.json", lambda items: _item(items, "Pod", "web-3")["status"].update(
        podIP="192.168.70.99", podIPs=[{"ip": "192.168.70.99"}]))
    assert_refused(tmp_path, [path, "--helm-values", str(DATA / "eni-values.yaml")],
                   ("Pod 'shop/web-3'", "status.podIPs[0].ip", "192.168.70.99",
                    "ip-192-168-70-21.eu-west-1.compute.internal", "ENIs"))


def test_scheduled_event_without_a_node_is_refused(tmp_path):
    doc = json.loads((DATA / "cluster-pool-events.json").read_text())
    doc["items"][1]["message"] = "Successfully bound"
    path = tmp_path / "events.json"
    path.write_text(json.dumps(doc))
    assert_refused(tmp_path, [str(DATA / "cluster-pool.json"), "--events", str(path)],
                   ("events.json", "Event 'prod/api-5c7f9d6b8-q2w8e.187c1b'", "message", "Successfully bound"))


def test_multi_pool_allocation_outside_its_pool_is_refused(tmp_path):
    path = _mutated(tmp_path, "multi-pool.json", lambda items: _item(items, "CiliumNode", "mp-1")["spec"]["ipam"]["pools"][
        "allocated"][1].update(cidrs=["10.30.0.0/28"]))
    assert_refused(tmp_path, [path], ("CiliumNode 'mp-1'", "spec.ipam.pools.allocated", "'blue'", "10.30.0.0/28",
                                      "10.20.0.0/20"))

