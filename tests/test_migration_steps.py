"""Steps in the operator's vocabulary: command lines, the structured form, Helm --set, and one-line errors."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from ipam_core.errors import ConfigError
from ipam_core.migration import actions as A
from ipam_core.migration.commands import parse_command, split_command
from ipam_core.migration.helm import changed_values, classify_key, parse_set, resolve, upgrade_values
from ipam_core.migration.steps import parse_steps
from ipam_core.scenario import load_scenario
from ipam_core.scenario._where import Where

RUN = Where(("steps", 0, "run"))

# The founding document's commands, verbatim, and what each means.
SEED_COMMANDS = [
    ('helm upgrade cilium cilium/cilium --version 1.17.6 --namespace kube-system --reuse-values \\\n'
     '  --set ipam.mode="cluster-pool" \\\n  --set ipam.operator.clusterPoolIPv4PodCIDRList={"172.20.0.0/16"} \\\n'
     '  --set ipv4NativeRoutingCIDR=172.20.0.0/16',
     A.HelmUpgrade((("ipam.mode", "cluster-pool"), ("ipam.operator.clusterPoolIPv4PodCIDRList", ["172.20.0.0/16"]),
                    ("ipv4NativeRoutingCIDR", "172.20.0.0/16")), None, True)),
    ("kubectl -n kube-system rollout restart deploy/cilium-operator # 오퍼레이터 재시작 필요",
     A.RolloutRestart("kube-system", ("cilium-operator",))),
    ("kubectl -n kube-system rollout restart ds/cilium", A.RolloutRestart("kube-system", (), ("cilium",))),
    ("kubectl delete ciliumnode k8s-w1", A.DeleteCiliumNodes(("k8s-w1",))),
    ("kubectl -n kube-system rollout restart deploy/hubble-relay deploy/hubble-ui",
     A.RolloutRestart("kube-system", ("hubble-relay", "hubble-ui"))),
    ("kubectl rollout restart deploy/webpod", A.RolloutRestart("default", ("webpod",))),
    ("kubectl delete pod curl-pod", A.DeletePods("default", ("curl-pod",))),
    ("❯ kubectl get ciliumnode -o json | grep podCIDRs -A2", A.Observe("ciliumnodes",
                                                                     ("kubectl", "get", "ciliumnode", "-o", "json"))),
    ("cilium config view | grep ^ipam", A.Observe("config", ("cilium", "config", "view"))),
    ('kubectl -n kube-system delete pod --field-selector spec.nodeName=kind-worker '
     '--selector="app.kubernetes.io/name=cilium-agent"', A.RestartAgents(("kind-worker",))),
    ("kubectl -n kube-system delete pod -l k8s-app=cilium", A.RestartAgents(None)),
    ("kubectl scale deployment nginx --replicas=8", A.Scale("default", "nginx", 8)),
    ("kubectl drain node-a --ignore-daemonsets --delete-emptydir-data --force", A.Drain(("node-a",), force=True)),
    ("kubectl uncordon node-a", A.Uncordon(("node-a",))),
    ("kubectl delete node node-b", A.DeleteNodes(("node-b",))),
    ("kubeadm join 192.168.10.100:6443 --token abc --node-name k8s-w2", A.AddNodes(("k8s-w2",))),
]


@pytest.mark.parametrize("text, expected", SEED_COMMANDS, ids=[c[0][:40] for c in SEED_COMMANDS])
def test_verbatim_commands_parse_to_their_meaning(text, expected):
    assert parse_command(text, RUN) == expected


def test_apply_reads_the_pasted_manifest_from_stdin():
    manifest = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: webpod}
spec:
  replicas: 2
  template:
    metadata: {labels: {app: webpod}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchExpressions: [{key: app, operator: In, values: [sample-app]}]}
            topologyKey: kubernetes.io/hostname
---
apiVersion: v1
kind: Service
metadata: {name: webpod}
"""
    action = parse_command("kubectl apply -f -", RUN, stdin=manifest)
    dep, svc = action.objects
    assert (dep.kind, dep.name, dep.replicas, dep.labels) == ("Deployment", "webpod", 2, {"app": "webpod"})
    assert not dep.anti_affinity[0].matches(dep.labels)  # the document's selector names another app
    assert (svc.kind, svc.name) == ("Service", "webpod")


# ---------------------------------------------------------------- helm --set
@pytest.mark.parametrize("text, as_string, expected", [
    ("ipam.mode=cluster-pool", False, [("ipam.mode", "cluster-pool")]),
    ("a=1,b=true,c=null,d=010", False, [("a", 1), ("b", True), ("c", None), ("d", "010")]),
    ("l={10.0.0.0/8,11.0.0.0/8},m=2", False, [("l", ["10.0.0.0/8", "11.0.0.0/8"]), ("m", 2)]),
    ("x=true", True, [("x", "true")]),
    (r"k=a\,b", False, [("k", "a,b")]),
    ("list[1]=z", False, [("list[1]", "z")]),
])
def test_set_values_are_typed_as_helm_types_them(text, as_string, expected):
    assert parse_set(text, as_string=as_string) == expected


@given(st.lists(st.sampled_from(["10.0.0.0/8", "172.20.0.0/16", "192.168.0.0/24"]), min_size=1, max_size=4),
       st.integers(min_value=1, max_value=32))
def test_set_list_and_int_round_trip(cidrs, mask):
    text = f"ipam.operator.clusterPoolIPv4PodCIDRList={{{','.join(cidrs)}}},ipam.operator.clusterPoolIPv4MaskSize={mask}"
    assert parse_set(text) == [("ipam.operator.clusterPoolIPv4PodCIDRList", cidrs),
                               ("ipam.operator.clusterPoolIPv4MaskSize", mask)]


def test_reuse_values_keeps_the_release_and_without_it_helm_resets_to_chart_defaults():
    current = {"ipam": {"mode": "cluster-pool", "operator": {"clusterPoolIPv4PodCIDRList": ["10.10.0.0/16"]}}}
    reused = upgrade_values(current, [("ipam.operator.clusterPoolIPv4MaskSize", 26)], None, reuse=True)
    assert resolve(reused).cluster_pool == ("10.10.0.0/16",)
    reset = upgrade_values(current, [("ipam.operator.clusterPoolIPv4MaskSize", 26)], None, reuse=False)
    assert resolve(reset).cluster_pool == ("10.0.0.0/8",)  # the chart default came back
    assert upgrade_values(current, [], None, reuse=False) == current  # no new values: Helm keeps the old
    assert changed_values(current, reset) == [
        "ipam.mode: cluster-pool -> (unset)",
        "ipam.operator.clusterPoolIPv4MaskSize: (unset) -> 26",
        "ipam.operator.clusterPoolIPv4PodCIDRList: [10.10.0.0/16] -> (unset)"]


@pytest.mark.parametrize("key, kind", [("ipam.mode", "ipam"), ("ipam.operator.clusterPoolIPv4PodCIDRList[0]", "ipam"),
                                       ("ipam.operator.autoCreateCiliumPodIPPools.default.ipv4.cidrs", "ipam"),
                                       ("operator.rollOutPods", "behaviour"), ("ipv4NativeRoutingCIDR", "neutral"),
                                       ("hubble.relay.enabled", "neutral")])
def test_known_helm_keys(key, kind):
    assert classify_key(key) == kind


# ---------------------------------------------------------------- the structured form
def scenario(steps, extra=""):
    text = (f"name: t\nduration: 1h\nworkload: {{generator: steady-churn}}\n{extra}"
            + yaml.safe_dump({"steps": steps}, sort_keys=False))
    return load_scenario(text)


def test_structured_steps_mean_the_same_as_their_commands():
    structured = scenario([
        {"at": "1m", "helm": {"upgrade": {"reuseValues": True, "set": {
            "ipam.mode": "cluster-pool", "ipam.operator.clusterPoolIPv4PodCIDRList": ["172.20.0.0/16"]}}}},
        {"at": "1m", "rolloutRestart": "deploy/cilium-operator"},
        {"at": "2m", "delete": {"ciliumnode": "node-1"}},
        {"at": "2m", "rolloutRestart": {"namespace": "kube-system", "targets": ["ds/cilium"]}},
        {"at": "3m", "restartAgents": ["node-1"], "agentRestart": "45s"},
        {"at": "4m", "drain": {"nodes": "node-0", "force": True}},
        {"at": "5m", "node": {"add": "node-9"}},
    ])
    commands = scenario([
        {"at": "1m", "run": "helm upgrade cilium cilium/cilium --reuse-values --set ipam.mode=cluster-pool "
                            "--set ipam.operator.clusterPoolIPv4PodCIDRList={172.20.0.0/16}"},
        {"at": "1m", "run": "kubectl -n kube-system rollout restart deploy/cilium-operator"},
        {"at": "2m", "run": "kubectl delete ciliumnode node-1"},
        {"at": "2m", "run": "kubectl -n kube-system rollout restart ds/cilium"},
        {"at": "3m", "run": "kubectl -n kube-system delete pod -l k8s-app=cilium --field-selector spec.nodeName=node-1",
         "agentRestart": "45s"},
        {"at": "4m", "run": "kubectl drain node-0 --force"},
        {"at": "5m", "run": "kubeadm join --node-name node-9"},
    ])
    a, b = parse_steps(structured), parse_steps(commands)
    assert [s.action for s in a] == [s.action for s in b]
    assert [s.at_s for s in a] == [60, 60, 120, 120, 180, 240, 300]
    assert a[4].timing == {"agentRestart": 45.0}


BAD_STEPS = [
    ([{"run": "kubectl delete ciliumnode a"}], "missing 'at'"),
    ([{"at": "2m", "run": "kubectl delete ciliumnode a"}, {"at": "1m", "run": "kubectl delete ciliumnode b"}],
     "steps[1].at: 60 s is before the previous step"),
    ([{"at": "2h", "run": "kubectl delete ciliumnode a"}], "after the scenario's duration"),
    ([{"at": "1m"}], "expected exactly one of"),
    ([{"at": "1m", "run": "kubectl delete ciliumnode a", "cordon": "a"}], "has 2 actions"),
    ([{"at": "1m", "run": "rm -rf /"}], "unsupported command 'rm'"),
    ([{"at": "1m", "run": "helm upgrade c c --set ipam.operator.clusterPoolIPv4PodCIDRLIst={1.0.0.0/8}"}],
     "did you mean 'ipam.operator.clusterPoolIPv4PodCIDRList'"),
    ([{"at": "1m", "run": "helm upgrade c c -f values.yaml"}], "values files are not read"),
    ([{"at": "1m", "run": "kubectl rollout restart sts/db"}], "cannot restart a 'sts'"),
    ([{"at": "1m", "run": "kubectl apply -f -"}], "has no 'stdin:'"),
    ([{"at": "1m", "run": "kubectl delete ciliumnode a && kubectl delete ciliumnode b"}], "one command per step"),
    ([{"at": "1m", "delete": {"ciliumnode": "Bad_Name"}}], "not a valid node name"),
    ([{"at": "1m", "apply": [{"kind": "DaemonSet", "apiVersion": "apps/v1", "metadata": {"name": "x"}}]}],
     "'DaemonSet' is not simulated"),
    ([{"at": "1m", "run": "kubectl get pods", "allowUnsupported": True}], "helm upgrade steps only"),
    ([{"at": "1m", "run": "kubectl get pods", "agentRestrat": "1s"}], "did you mean 'agentRestart'"),
]


@pytest.mark.parametrize("steps, needle", BAD_STEPS, ids=[n for _, n in BAD_STEPS])
def test_bad_steps_are_one_line_errors_naming_the_step(steps, needle):
    with pytest.raises(ConfigError) as err:
        parse_steps(scenario(steps))
    message = str(err.value)
    assert "\n" not in message and needle in message and "steps[" in message


def test_errors_name_the_scenario_file_and_line(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: t\nduration: 1h\nworkload: {generator: steady-churn}\nsteps:\n"
                    "  - {at: 1m, run: 'kubectl rollout restart sts/db'}\n")
    with pytest.raises(ConfigError, match=r"s\.yaml:5: steps\[0\]\.run: "):
        parse_steps(load_scenario(path))


def test_split_command_drops_prompt_comment_and_filter():
    assert split_command("$ kubectl get pod -A # all | x") == ["kubectl", "get", "pod", "-A"]
    assert split_command("kubectl get pod | grep 10.244.") == ["kubectl", "get", "pod"]
    with pytest.raises(ConfigError, match="balanced quotes"):
        split_command("kubectl delete pod 'x")


@pytest.mark.parametrize("mode", ["eni", "azure", "calico"])
def test_a_mode_migrate_does_not_simulate_is_a_one_line_error_naming_it(mode):
    with pytest.raises(ConfigError) as err:
        resolve({"ipam": {"mode": mode}})
    assert "\n" not in str(err.value) and repr(mode) in str(err.value) and "ipam.mode" in str(err.value)


def test_apply_reads_a_manifest_file_next_to_the_scenario(tmp_path):
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "web.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec: {replicas: 3}\n")
    path = tmp_path / "s.yaml"
    path.write_text("name: t\nduration: 1h\nworkload: {generator: steady-churn}\nsteps:\n"
                    "  - {at: 0s, run: 'kubectl apply -f manifests/web.yaml'}\n"
                    "  - {at: 1s, run: 'kubectl apply -f manifests/missing.yaml'}\n")
    with pytest.raises(ConfigError, match=r"s\.yaml:6: steps\[1\]\.run: cannot read manifest file 'manifests/missing"):
        parse_steps(load_scenario(path))
    text = path.read_text().rsplit("  - {at: 1s", 1)[0]
    path.write_text(text)
    (step,) = parse_steps(load_scenario(path))
    (web,) = step.action.objects
    assert (web.kind, web.namespace, web.name, web.replicas) == ("Deployment", "shop", "web", 3)
