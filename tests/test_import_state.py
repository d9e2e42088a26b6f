"""A cluster's own state as the engine's starting state (scenario key ``initialState``).

After ``ipam-bench import`` a run of the cluster's mode starts with every node holding exactly its
dumped CIDRs and every pod its dumped address; other modes (and sweep points whose settings cannot
hold the state) carve by their rules. Fixtures: tests/data/import/ (host scope, cluster-pool,
multi-pool, dual-stack, ENI), and variants with holes in the node CIDRs, which next-fit carving
would not give back.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import numpy as np

import pyarrow.ipc as ipc
import pytest
import yaml
from typer.testing import CliRunner

from ipam_core.cli import app
from ipam_core.kernels.slots import bm_test
from ipam_core.pipeline import build_workload
from ipam_core.engine import tables as T
from ipam_core.engine.check import check_invariants
from ipam_core.engine.core import _slot_bitmap
from ipam_core.engine.initial import held_addresses
from ipam_core.pipeline.run import Simulation
from ipam_core.scenario import load_scenario
from ipam_core.sweep.spec import load_spec, plan_points

DATA = Path(__file__).resolve().parent / "data" / "import"
runner = CliRunner()

FIXTURES = {  # dump, Helm values, the cluster's mode
    "host-scope": ("kind-host-scope.json", "kind-host-scope-values.yaml", "kubernetes"),
    "cluster-pool": ("cluster-pool.json", "cluster-pool-values.yaml", "cluster-pool"),
    "multi-pool": ("multi-pool.json", "multi-pool-values.yaml", "multi-pool"),
    "dual-stack": ("dual-stack.json", "dual-stack-values.yaml", "kubernetes"),
}


def _invoke(args: list[str]):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def _import(tmp_path: Path, dump, values, name: str = "out") -> Path:
    out = tmp_path / name
    _invoke(["import", dump, "--helm-values", values, "--out", out])
    return out


def _with_holes(tmp_path: Path, dump: str, moves: dict[str, str]) -> Path:
    """The dump with text replaced (node CIDRs and pod addresses moved): a cluster that lost nodes."""
    text = (DATA / dump).read_text()
    for old, new in moves.items():
        text = text.replace(old, new)
    path = tmp_path / f"holes-{dump}"
    path.write_text(text)
    return path


def _dumped(out: Path) -> tuple[dict, dict]:
    """Node -> CIDRs (multi-pool: every pool's) and (namespace, pod) -> addresses of initial-state.json."""
    state = json.loads((out / "initial-state.json").read_text())
    cidrs = {n["name"]: sorted(n["podCIDRs"] + [c for per in n.get("pools", {}).values() for c in per])
             for n in state["nodes"]}
    pods = {(p["namespace"], p["name"]): p["ips"] for p in state["pods"] if p["ips"]}
    return cidrs, pods


def _first_sample(run: Path, mode: str, last: bool = False) -> dict:
    """Node -> CIDRs in the first (or last) node sample of ``mode`` in a run's nodes.arrow."""
    nodes = ipc.open_file(run / "nodes.arrow").read_all().to_pylist()
    pick = max if last else min
    when = pick(r["time_s"] for r in nodes if r["mode"] == mode)
    out: dict = {}
    for r in nodes:
        if r["mode"] == mode and r["time_s"] == when:
            out.setdefault(r["node"], []).extend(r["cidrs"])
    return {k: sorted(v) for k, v in out.items()}


def _started(out: Path, mode: str) -> Simulation:
    """A simulation of the imported scenario in ``mode``, advanced past t=0."""
    scenario = load_scenario(out / "scenario.yaml")
    sim = Simulation(scenario, build_workload(scenario), mode)
    sim.advance(1e-9)
    return sim


# ---------------------------------------------------------------- exact CIDRs and addresses at t=0
@pytest.mark.parametrize("kind", sorted(FIXTURES))
def test_run_starts_from_the_dumped_cidrs_and_addresses(tmp_path, kind):
    dump, values, mode = FIXTURES[kind]
    out = _import(tmp_path, DATA / dump, DATA / values)
    assert yaml.safe_load((out / "scenario.yaml").read_text())["initialState"] == "initial-state.json"
    sim = _assert_starts_from_dump(tmp_path, out, mode)
    assert check_invariants(sim.state) == []
    sim.advance(float(load_scenario(out / "scenario.yaml").duration_s))
    assert check_invariants(sim.state) == []


@pytest.mark.parametrize("dump, values, mode, moves", [
    # host scope: workers at 10.244.7.0/24 and 10.244.3.0/24, pods moved with them
    ("kind-host-scope.json", "kind-host-scope-values.yaml", "kubernetes",
     {"10.244.1.": "10.244.7.", "10.244.2.": "10.244.3."}),
    # cluster-pool: the nodes hold the 1st, 6th and 9th /26 of the list, pods (and router/health) moved along
    ("cluster-pool.json", "cluster-pool-values.yaml", "cluster-pool",
     {"10.0.0.128/26": "10.0.2.0/26", "10.0.0.133": "10.0.2.5", "10.0.0.140": "10.0.2.12",
      "10.0.0.64/26": "10.0.1.64/26", "10.0.0.101": "10.0.1.101", "10.0.0.77": "10.0.1.77", "10.0.0.91": "10.0.1.91"}),
])
def test_node_cidrs_with_holes_are_taken_where_they_are_not_by_carving_order(tmp_path, dump, values, mode, moves):
    out = _import(tmp_path, _with_holes(tmp_path, dump, moves), DATA / values)
    cidrs, pods = _dumped(out)
    # next-fit carving from the start of the range would give the nodes other CIDRs
    assert sorted(c for v in cidrs.values() for c in v) != sorted(_first_sample_of_rules(tmp_path, out, mode))
    _assert_starts_from_dump(tmp_path, out, mode)


def _assert_starts_from_dump(tmp_path: Path, out: Path, mode: str) -> Simulation:
    """``run`` of an import: nodes.arrow's first sample holds the dumped CIDRs, the pods their addresses."""
    cidrs, pods = _dumped(out)
    run = tmp_path / "run"
    _invoke(["run", out / "scenario.yaml", "--out", run, "--mode", mode])
    assert _first_sample(run, mode) == cidrs
    sim = _started(out, mode)
    held = held_addresses(sim.state, sim.layout, sim.workload)
    assert {k: v for k, v in held.items() if k in pods} == pods
    return sim


def _first_sample_of_rules(tmp_path: Path, out: Path, mode: str) -> list[str]:
    """The node CIDRs the mode's rules carve for the same scenario without its initial state."""
    doc = yaml.safe_load((out / "scenario.yaml").read_text())
    del doc["initialState"]
    rules = out.parent / "rules.yaml"
    doc["workload"]["path"] = str(out / "workload.csv")
    rules.write_text(yaml.safe_dump(doc))
    run = tmp_path / "rules-run"
    _invoke(["run", rules, "--out", run, "--mode", mode])
    nodes = ipc.open_file(run / "nodes.arrow").read_all().to_pylist()
    last = max(r["time_s"] for r in nodes)
    return sorted(c for r in nodes if r["time_s"] == last for c in r["cidrs"])


def test_router_and_health_take_their_dumped_addresses_and_random_ones_avoid_the_pods(tmp_path):
    # /29 node CIDRs (6 usable addresses) holding 1 or 2 pods: a router drawn before them would hit one.
    # kind-control-plane's CiliumNode names its router and health addresses, the workers' their health only
    moves = {"10.244.0.0/24": "10.244.0.0/29", "10.244.1.0/24": "10.244.0.8/29", "10.244.2.0/24": "10.244.0.16/29",
             "10.244.0.38": "10.244.0.1", "10.244.0.171": "10.244.0.2", "10.244.1.201": "10.244.0.9",
             "10.244.2.17": "10.244.0.17", "10.244.2.96": "10.244.0.19", "10.244.0.155": "10.244.0.5",
             "10.244.0.212": "10.244.0.6", "10.244.1.11": "10.244.0.14", "10.244.2.140": "10.244.0.22",
             '"--cluster-cidr=10.244.0.0/16"': '"--cluster-cidr=10.244.0.0/16", "--node-cidr-mask-size=29"'}
    out = _import(tmp_path, _with_holes(tmp_path, "kind-host-scope.json", moves), DATA / "kind-host-scope-values.yaml")
    state = json.loads((out / "initial-state.json").read_text())
    assert {n["name"]: (n.get("router"), n.get("health")) for n in state["nodes"]} == {
        "kind-control-plane": (["10.244.0.5"], ["10.244.0.6"]), "kind-worker": (None, ["10.244.0.14"]),
        "kind-worker2": (None, ["10.244.0.22"])}
    _, pods = _dumped(out)
    sim = _started(out, "kubernetes")
    assert {k: v for k, v in held_addresses(sim.state, sim.layout, sim.workload).items() if k in pods} == pods
    for address in ("10.244.0.5", "10.244.0.6", "10.244.0.14", "10.244.0.22"):
        assert _is_taken(sim, address)
    rows = sim.node_rows()
    per_node = {sim.workload.node_names[n]: (int(u), int(r), int(f))
                for n, u, r, f in zip(rows["node"], rows["used"], rows["reserved"], rows["free"])}
    # used, reserved (network, last, router, health), free
    assert per_node == {"kind-control-plane": (2, 4, 2), "kind-worker": (1, 4, 3), "kind-worker2": (2, 4, 2)}
    assert check_invariants(sim.state) == []


def _is_taken(sim: Simulation, address: str) -> bool:
    """Whether ``address`` is set in the pod bitmap of the node CIDR holding it."""
    st, ip = sim.state, ipaddress.ip_address(address)
    for slot in np.flatnonzero(st.core.cidr.slots[:, T.L_STATE] == T.SLOT_LIVE):
        spec = sim.layout.sets[st.core.cidr.slots[slot, T.L_SET]]
        shift = spec.network.max_prefixlen - spec.node_mask
        net = ipaddress.ip_network((int(spec.network.network_address) + (int(st.core.cidr.slots[slot, T.L_INDEX]) << shift),
                                    spec.node_mask))
        if ip in net:
            words, _ = _slot_bitmap(st.core.cidr, slot)
            return bool(bm_test(words, int(ip) - int(net.network_address) - 1))
    return False


def test_multi_pool_keeps_each_pools_allocation_then_follows_the_agents_demand(tmp_path):
    out = _import(tmp_path, DATA / "multi-pool.json", DATA / "multi-pool-values.yaml")
    cidrs, _ = _dumped(out)
    sim = _started(out, "multi-pool")
    rows = sim.node_rows()
    at_zero = {}
    for node, n in zip(rows["node"], rows["cidrs_counts"]):
        at_zero[sim.workload.node_names[node]] = n
    assert at_zero == {name: len(c) for name, c in cidrs.items()}
    assert sim.sample()[0]["cidr_carves"] == sum(len(c) for c in cidrs.values())
    sim.advance(600.0)  # the agents' demand reaches the operator: it carves or takes back by the rules
    assert check_invariants(sim.state) == []


# ---------------------------------------------------------------- other modes and settings: a what-if
def test_compare_starts_the_own_mode_from_the_state_and_the_other_by_its_rules(tmp_path):
    moves = {"10.244.1.": "10.244.7.", "10.244.2.": "10.244.3."}
    out = _import(tmp_path, _with_holes(tmp_path, "kind-host-scope.json", moves), DATA / "kind-host-scope-values.yaml")
    cidrs, _ = _dumped(out)
    cmp_out = tmp_path / "cmp"
    result = _invoke(["compare", out / "scenario.yaml", "--out", cmp_out, "--no-plot"])
    assert "kubernetes" in result.stdout and "cluster-pool" in result.stdout
    assert _first_sample(cmp_out, "kubernetes") == cidrs
    what_if = _first_sample(cmp_out, "cluster-pool", last=True)  # carved after the operator's first pass
    assert what_if != cidrs and sorted(c for v in what_if.values() for c in v) == [
        "10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]  # cluster-pool's own next-fit carving


def test_sweep_point_whose_mask_cannot_hold_the_state_is_a_what_if(tmp_path):
    _import(tmp_path, DATA / "cluster-pool.json", DATA / "cluster-pool-values.yaml")
    spec_path = tmp_path / "sweep.yaml"
    spec_path.write_text("name: imported-mask\nbase: out/scenario.yaml\nmodes: [cluster-pool]\n"
                         "axes:\n  ipam.operator.clusterPoolIPv4MaskSize: [26, 27]\n")
    points = plan_points(spec := load_spec(spec_path), [{"ipam.operator.clusterPoolIPv4MaskSize": m}
                                                              for m in (26, 27)])
    assert spec.base.initial_state.starts
    fits, misfit = (p.scenario.initial_state for p in points)
    assert fits.starts and not misfit.starts
    assert "10.0.0.0/26 is not a /27 CIDR inside cluster-pool's pool" in misfit.misfit
    _invoke(["sweep", spec_path, "--out", tmp_path / "sw", "--workers", "1", "--no-plot"])


def test_migrate_plan_accepts_the_imported_scenario(tmp_path):
    out = _import(tmp_path, DATA / "kind-host-scope.json", DATA / "kind-host-scope-values.yaml")
    result = _invoke(["migrate", out / "scenario.yaml", "--plan", "--to", "cluster-pool", "--out", tmp_path / "plan"])
    assert "kubernetes -> cluster-pool, 3 node(s)" in result.stdout


def test_eni_cluster_names_its_state(tmp_path):
    out = _import(tmp_path, DATA / "eni.json", DATA / "eni-values.yaml")
    doc = yaml.safe_load((out / "scenario.yaml").read_text())
    assert doc["initialState"] == "initial-state.json"  # ENIs and addresses: tests/test_import_cloud_state.py
    assert "runs of eni start from them" in (out / "scenario.yaml").read_text().splitlines()[1]


def test_cluster_pool_cidrs_outside_the_list_import_without_initial_state_and_a_note(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text((DATA / "cluster-pool-values.yaml").read_text().replace("10.0.0.0/22", "10.0.0.0/25"))
    out = tmp_path / "out"
    result = _invoke(["import", DATA / "cluster-pool.json", "--helm-values", values, "--out", out])
    assert "initialState" not in yaml.safe_load((out / "scenario.yaml").read_text())
    assert "does not start from initial-state.json" in result.stdout
    assert "10.0.0.128/26 is not a /26 CIDR inside cluster-pool's pool (10.0.0.0/25)" in result.stdout


# ---------------------------------------------------------------- a state that is not one: one line, nothing written
def _edit_nodes(state, i, key, value):
    state["nodes"][i][key] = value


def _edit_pod(state, name, key, value):
    next(p for p in state["pods"] if p["name"] == name)[key] = value


BAD_STATES = [
    (lambda s: _edit_nodes(s, 1, "podCIDRs", ["10.245.1.0/24"]),
     ("nodes[1].podCIDRs[0]", "10.245.1.0/24 is not a /24 CIDR inside kubernetes's pool (10.244.0.0/16)")),
    (lambda s: _edit_nodes(s, 1, "podCIDRs", ["10.244.1.0/25"]), ("nodes[1].podCIDRs[0]", "not a /24 CIDR")),
    (lambda s: _edit_nodes(s, 1, "podCIDRs", ["10.244.0.0/24"]),
     ("nodes[1].podCIDRs[0]", "also held by node 'kind-control-plane'")),
    (lambda s: _edit_nodes(s, 1, "podCIDRs", ["10.244.1.0/24", "10.244.9.0/24"]),
     ("nodes[1].podCIDRs[1]", "second IPv4 CIDR")),
    (lambda s: _edit_nodes(s, 1, "podCIDRs", ["10.244.1.5/24"]), ("nodes[1].podCIDRs[0]", "host bits set")),
    (lambda s: _edit_pod(s, "web-7d9c5b8f4-2kq7x", "ips", ["10.244.2.7"]),
     ("pods[", "'10.244.2.7' is outside every CIDR of node 'kind-worker' (10.244.1.0/24)")),
    (lambda s: _edit_pod(s, "web-7d9c5b8f4-x2c4d", "ips", ["10.244.2.17"]), ("10.244.2.17", "also held by pod")),
    (lambda s: _edit_pod(s, "web-7d9c5b8f4-2kq7x", "ips", ["10.244.1.0"]), ("'10.244.1.0' is not a pod address",)),
    (lambda s: _edit_pod(s, "web-7d9c5b8f4-2kq7x", "ips", ["10.244.1.300"]), ("'10.244.1.300' is not an IP",)),
    (lambda s: _edit_pod(s, "web-7d9c5b8f4-2kq7x", "node", "kind-worker9"), ("'kind-worker9' is not a node",)),
    (lambda s: _edit_nodes(s, 2, "router", ["10.244.2.17"]), ("nodes[2].router[0]", "also held by pod shop/")),
    (lambda s: _edit_nodes(s, 2, "health", ["10.244.2.0"]), ("nodes[2].health[0]", "is not a pod address")),
    (lambda s: s.update(format="something/2"), ("format", "'something/2'", "ipam-bench-initial-state/1")),
    (lambda s: s.update(mode="aws-vpc-cni"), ("mode", "'aws-vpc-cni'", "one of: kubernetes, cluster-pool, multi-pool, eni")),
    (lambda s: s.update(mode="eni"), ("mode", "'eni' is not among the scenario's modes")),
    (lambda s: s.update(mode="multi-pool"), ("mode", "'multi-pool' is not among the scenario's modes")),
    (lambda s: s["nodes"].append(dict(s["nodes"][0])), ("nodes[3].name", "'kind-control-plane' is listed twice")),
]


def _run_refused(tmp_path: Path, scenario: Path, needles: tuple[str, ...]) -> None:
    """``run`` exits 2 with one stderr line holding every needle, no traceback, nothing written."""
    run = tmp_path / "run"
    result = runner.invoke(app, ["run", str(scenario), "--out", str(run)])
    context = f"exit={result.exit_code} stderr={result.stderr!r} stdout={result.stdout[-300:]!r}"
    assert result.exit_code == 2 and "Traceback" not in result.output, context
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "initialState" in lines[0], context
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not named: {context}"
    assert not run.exists()


@pytest.mark.parametrize("change, needles", BAD_STATES)
def test_a_broken_initial_state_is_one_line_and_nothing_runs(tmp_path, change, needles):
    out = _import(tmp_path, DATA / "kind-host-scope.json", DATA / "kind-host-scope-values.yaml")
    state = json.loads((out / "initial-state.json").read_text())
    change(state)
    (out / "initial-state.json").write_text(json.dumps(state))
    _run_refused(tmp_path, out / "scenario.yaml", ("initial-state.json", *needles))


@pytest.mark.parametrize("value, text, needles", [
    ("missing.json", None, ("'missing.json' cannot be read",)),
    ("bad.json", "{\"format\": ", ("'bad.json': invalid JSON",)),
    (3, None, ("3 is not a file name",)),
])
def test_an_unreadable_initial_state_is_one_line(tmp_path, value, text, needles):
    out = _import(tmp_path, DATA / "kind-host-scope.json", DATA / "kind-host-scope-values.yaml")
    if text is not None:
        (out / value).write_text(text)
    scenario = (out / "scenario.yaml").read_text().replace("initialState: initial-state.json",
                                                           f"initialState: {value}")
    (out / "scenario.yaml").write_text(scenario)
    _run_refused(tmp_path, out / "scenario.yaml", ("scenario.yaml:", *needles))


# ---------------------------------------------------------------- the question gallery's imported cluster
def test_gallery_cluster_is_what_import_writes_and_starts_from_its_holes(tmp_path):
    gallery = Path(__file__).resolve().parents[1] / "scenarios" / "questions" / "my-cluster"
    out = _import(tmp_path, gallery / "cluster.json", gallery / "values.yaml", name="imported")
    for name in ("workload.csv", "initial-state.json"):
        assert (out / name).read_bytes() == (gallery / "imported" / name).read_bytes(), name
    mine, shipped = ({k: v for k, v in yaml.safe_load(p.read_text()).items() if k != "description"}  # paths differ
                     for p in (out / "scenario.yaml", gallery / "imported" / "scenario.yaml"))
    assert mine == shipped
    scenario = load_scenario(gallery / "imported" / "scenario.yaml")
    assert scenario.initial_state.starts and scenario.initial_state.mode == "cluster-pool"
    assert _dumped(gallery / "imported")[0] == {"pool-a-1": ["10.0.0.0/26"], "pool-a-2": ["10.0.1.64/26"],
                                                "pool-a-3": ["10.0.2.0/26"]}


def test_with_events_the_pods_alive_at_t0_start_from_their_addresses(tmp_path):
    out = tmp_path / "out"
    _invoke(["import", DATA / "cluster-pool.json", "--helm-values", DATA / "cluster-pool-values.yaml",
             "--events", DATA / "cluster-pool-events.json", "--out", out])
    cidrs, pods = _dumped(out)
    sim = _started(out, "cluster-pool")
    at_zero = {k: v for k, v in held_addresses(sim.state, sim.layout, sim.workload).items() if k in pods}
    assert at_zero and at_zero == {k: pods[k] for k in at_zero}  # those created later take theirs by the rules
    assert _first_sample_of_sim(sim) == cidrs
    sim.advance(float(load_scenario(out / "scenario.yaml").duration_s))
    assert check_invariants(sim.state) == []


def _first_sample_of_sim(sim: Simulation) -> dict:
    rows = sim.node_rows()
    values, out, at = rows["cidrs_values"].to_pylist(), {}, 0
    for node, count in zip(rows["node"], rows["cidrs_counts"]):
        out[sim.workload.node_names[node]] = sorted(values[at: at + count])
        at += count
    return out
