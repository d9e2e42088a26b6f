"""Which pools a Calico pod uses: node labels for IPPool ``nodeSelector``, and the pod's own pool annotation.

Hand-worked cases through the engine (``cluster.nodeLabels`` dealt to nodes, a workload's pod pool read
as the pod's ``cni.projectcalico.org/ipv4pools``), and the one-line refusals of bad input.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ipam_core.cli import app
from ipam_core.engine import tables as T
from ipam_core.pipeline.run import Simulation
from ipam_core.errors import ConfigError
from ipam_core.scenario import load_scenario
from ipam_core.workloads.events import OP_NODE_ADD, OP_POD_ADD, OP_POD_DEL
from test_calico_engine import (GRACE_S, CalicoReference, Pool, address, drive_reference, engine_blocks,  # noqa: I001
                                random_events, scenario, workload)

runner = CliRunner()
NAMES = ["node-a", "node-b"]
TWO_NODES = [(0.0, OP_NODE_ADD, 0, -1), (0.0, OP_NODE_ADD, 1, -1)]


def pools_of_pods(sim, pods, family=0):
    """The pool name each running pod's address comes from."""
    names = [p.name for p in sim.scenario.ipam.calico.pools]
    return [names[address(sim.state, p, family)[0]] for p in pods]


# ---------------------------------------------------------------------------- node labels -> nodeSelector
def test_a_pool_node_selector_picks_the_nodes_cluster_node_labels_give_its_label():
    # a-gpu sorts first: an unlabelled node would take it too if the selector saw no labels at all
    pools = [("a-gpu", {"cidr": "10.1.0.0/26", "blockSize": 29, "nodeSelector": "accelerator == 'nvidia'"}),
             ("b-rest", {"cidr": "10.0.0.0/26", "blockSize": 29, "nodeSelector": "!has(accelerator)"})]
    # nodes dealt 1:1 in id order: node-a (id 0) to the first entry, node-b to the second
    sc = scenario(pools, nodes=2, node_labels=[{"nodes": 1, "labels": {"accelerator": "nvidia"}},
                                               {"nodes": 1, "labels": {"pool": "general"}}])
    events = [*TWO_NODES, (1.0, OP_POD_ADD, 0, 0), (2.0, OP_POD_ADD, 1, 1), (3.0, OP_POD_ADD, 0, 2)]
    sim = Simulation(sc, workload(events, NAMES), "calico")
    sim.advance(4.0)
    assert pools_of_pods(sim, [0, 1, 2]) == ["a-gpu", "b-rest", "a-gpu"]
    assert sim.state.cal.node_pool_ok.tolist() == [[1, 0], [0, 1]]


def test_every_node_carries_its_hostname_label():
    pools = [("a-only-b", {"cidr": "10.1.0.0/26", "blockSize": 29,
                           "nodeSelector": "kubernetes.io/hostname == 'node-b'"}),
             ("b-all", {"cidr": "10.0.0.0/26", "blockSize": 29})]
    sc = scenario(pools, nodes=2)
    sim = Simulation(sc, workload([*TWO_NODES, (1.0, OP_POD_ADD, 0, 0), (2.0, OP_POD_ADD, 1, 1)], NAMES), "calico")
    sim.advance(3.0)
    assert pools_of_pods(sim, [0, 1]) == ["b-all", "a-only-b"]


def test_node_labels_are_dealt_in_proportion_to_shares():
    sc = scenario([("p", {"cidr": "10.0.0.0/24"})], nodes=4,
                  node_labels=[{"share": 1, "labels": {"zone": "a"}}, {"share": 3, "labels": {"zone": "b"}}])
    labels = sc.cluster.node_labels_for([f"n{i}" for i in range(4)])
    assert [lab["zone"] for lab in labels] == ["b", "a", "b", "b"]  # a's one node at 0.5 * 4 / 1 = 2nd slot
    assert [lab["kubernetes.io/hostname"] for lab in labels] == ["n0", "n1", "n2", "n3"]


@pytest.mark.parametrize(("entry", "words"), [
    ({"nodes": 2}, "missing 'labels'"),
    ({"nodes": 0, "labels": {"a": "b"}}, "expected a whole number of nodes > 0"),
    ({"nodes": 1, "share": 1, "labels": {}}, "expected one of nodes (a count) or share"),
    ({"labels": {"gpu": True}}, "(quote it)"),
    ({"labels": {"bad key!": "x"}}, "is not a label key"),
    ({"labels": {"kubernetes.io/hostname": "x"}}, "replace the node's own hostname label"),
    ({"labels": {"a": "b"}, "taints": []}, "taints"),
])
def test_bad_node_labels_are_refused_in_one_line_naming_the_key(entry, words):
    with pytest.raises(ConfigError) as err:
        scenario([("p", {"cidr": "10.0.0.0/24"})], node_labels=[entry])
    message = str(err.value)
    assert words in message and "cluster.nodeLabels[0]" in message and "\n" not in message


# ---------------------------------------------------------------------------- the pod's pool annotation
def annotated_namespaces(pool: str) -> list[dict]:
    """Namespaces default and ml, ml annotated with ``pool``."""
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {
                "name": "ml", "annotations": {"cni.projectcalico.org/ipv4pools": f'["{pool}"]'}}}]


NS_ANNOTATED = annotated_namespaces("b-ml")
NS_ANNOTATED_C = annotated_namespaces("c-manual")
THREE_POOLS = [("a-auto", {"cidr": "10.0.0.0/26", "blockSize": 29}),
               ("b-ml", {"cidr": "10.1.0.0/26", "blockSize": 29, "assignmentMode": "Manual"}),
               ("c-pinned", {"cidr": "10.2.0.0/26", "blockSize": 29, "assignmentMode": "Manual",
                             "nodeSelector": "!all()"})]


def test_a_pod_annotation_replaces_the_namespace_one_which_replaces_the_automatic_pools():
    sc = scenario(THREE_POOLS, nodes=1, objects=NS_ANNOTATED)
    events = [(0.0, OP_NODE_ADD, 0, -1),
              (1.0, OP_POD_ADD, 0, 0, 0, -1),  # default, no annotation: the Automatic pool
              (2.0, OP_POD_ADD, 0, 1, 1, -1),  # ml: its namespace's pool
              (3.0, OP_POD_ADD, 0, 2, 1, 0),  # ml, annotated c-pinned: the pod's (a Manual pool, selectors ignored)
              (4.0, OP_POD_ADD, 0, 3, 0, 1)]  # default, annotated with b-ml's CIDR
    sim = Simulation(sc, workload(events, ["node-a"], ["default", "ml"], ["c-pinned", "10.1.0.0/26"]), "calico")
    sim.advance(5.0)
    assert pools_of_pods(sim, [0, 1, 2, 3]) == ["a-auto", "b-ml", "c-pinned", "b-ml"]


def test_a_pod_annotation_of_one_family_leaves_the_other_to_the_automatic_pools():
    pools = [("a-v4", {"cidr": "10.0.0.0/26", "blockSize": 29}), ("b-v4", {"cidr": "10.1.0.0/26", "blockSize": 29}),
             ("c-v6", {"cidr": "fd00::/120", "blockSize": 122})]
    sc = scenario(pools, nodes=1, dual_stack=True)
    events = [(0.0, OP_NODE_ADD, 0, -1), (1.0, OP_POD_ADD, 0, 0, 0, 0)]
    sim = Simulation(sc, workload(events, ["node-a"], ["default"], ['["b-v4"]']), "calico")
    sim.advance(2.0)
    assert pools_of_pods(sim, [0], family=0) == ["b-v4"] and pools_of_pods(sim, [0], family=1) == ["c-v6"]


def test_a_pod_pool_that_is_disabled_or_missing_is_refused_with_upstreams_words():
    pools = [("a", {"cidr": "10.0.0.0/26"}), ("off", {"cidr": "10.1.0.0/26", "disabled": True})]
    sc = scenario(pools, nodes=1)
    for name in ("off", "nope", "[1]"):
        with pytest.raises(ConfigError) as err:
            Simulation(sc, workload([(0.0, OP_NODE_ADD, 0, -1), (1.0, OP_POD_ADD, 0, 0, 0, 0)], ["node-a"],
                                    ["default"], [name]), "calico")
        assert ("does not exist, or is not enabled" in str(err.value)) != (name == "[1]")
        assert "\n" not in str(err.value)


def test_pod_pool_fractions_naming_a_disabled_pool_fail_at_load_when_calico_runs(tmp_path):
    doc = {"name": "x", "modes": ["calico"], "workload": {"generator": "steady-churn", "podPoolFractions": {"off": 0.1}},
           "manifests": [{"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": name},
                          "spec": spec} for name, spec in (("a", {"cidr": "10.0.0.0/16"}),
                                                           ("off", {"cidr": "10.1.0.0/16", "disabled": True}))]}
    with pytest.raises(ConfigError, match=r"workload.podPoolFractions.off = 0.1: .*the given pool \(off\) does not "
                                          r"exist, or is not enabled; expected an enabled IPPool: a"):
        load_scenario(yaml.safe_dump(doc))
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = runner.invoke(app, ["run", str(path), "--mode", "calico", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "Traceback" not in result.output and not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------- random traces against the oracle
RANDOM_POOLS = [("a-all", {"cidr": "10.0.0.0/26", "blockSize": 29}),
                ("b-some", {"cidr": "10.1.0.0/27", "blockSize": 29,
                            "nodeSelector": "tier == 'gold' && kubernetes.io/hostname in {'node-b', 'node-d'}"}),
                ("c-manual", {"cidr": "10.2.0.0/28", "blockSize": 30, "assignmentMode": "Manual"})]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_annotated_pods_and_selected_nodes_agree_with_the_oracle_on_random_traces(seed):
    """Pool choices worked out here by hand, given to the oracle; the engine makes its own from the scenario."""
    rng = np.random.default_rng(seed)
    names = [f"node-{c}" for c in "abcde"]
    sc = scenario(RANDOM_POOLS, nodes=len(names), node_labels=[{"nodes": 5, "labels": {"tier": "gold"}}],
                  objects=NS_ANNOTATED_C)
    events, t_last = random_events(rng, names, 160)
    # each pod: namespace default or ml (annotated c-manual); its own pool b-some, c-manual or none
    choice = {p: (int(rng.integers(2)), int(rng.integers(-1, 2))) for p in {e[3] for e in events if e[3] >= 0}}
    full = [(*e, *choice[e[3]]) if e[1] in (OP_POD_ADD, OP_POD_DEL) else e for e in events]
    sim = Simulation(sc, workload(full, names, ["default", "ml"], ["b-some", "c-manual"]), "calico")
    t_end = t_last + 1.0
    sim.advance(t_end)
    automatic, only_b, only_c = 0, 1, 2
    poolsets = [([0, 1], False), ([1], True), ([2], True)]
    ok = [[True, name in ("node-b", "node-d"), True] for name in names]
    rows = np.full(max(choice) + 1, -1)
    for pod, (ns, own) in choice.items():
        rows[pod] = only_b if own == 0 else only_c if own == 1 or ns == 1 else automatic
    ref = CalicoReference([Pool(n, s["cidr"], s["blockSize"]) for n, s in RANDOM_POOLS], names, leak_grace_s=GRACE_S,
                          poolsets=poolsets, node_pool_ok=ok)
    ref, held, fails = drive_reference(sim, events, t_end, names, ref, rows)
    state = sim.state
    assert engine_blocks(state) == {k: (b.affinity, list(b.unallocated)) for k, b in ref.blocks.items()}
    running = {int(state.core.pod_tables.pods[r, T.D_ID]) for r in range(state.core.pod_tables.pods.shape[0])
               if state.core.pod_tables.pods[r, T.D_STATE] == T.POD_RUNNING}
    assert running == set(held) and {p: address(state, p) for p in running} == held
    assert int(state.core.cnt[T.K_FAMILY_BASE + T.F_IP_FAILS]) == fails
