"""Every bad input is refused before work starts: exit 2, one line naming the key or flag and the value.

A property-based battery: valid scenarios (the built-in default and scenarios/*.yaml), the
replay example file and valid command lines, each mutated in one place (a number out of
bounds, negative, a float, huge or a string; a key removed, renamed or unknown; a CIDR
malformed or overlapping; an unknown mode; a replay row broken), then run through the CLI in
process with ``--out`` pointing at a folder that already holds a marker file. Every case must
end with exit status 2, exactly one non-empty line on stderr that names the key or flag and
the value, no traceback, and the folder unchanged. The engine and the migration engine are
replaced by tripwires: a bad input that gets as far as simulating fails the test.

The numbered regressions at the end are the inputs of issue #13 that were let through or
ended in a traceback.
"""

from __future__ import annotations

import copy
import csv
import io
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import ipam_core.pipeline
from ipam_core.cli import app
from ipam_core.migration.engine import MigrationEngine
from ipam_core.scenario import limits

ROOT = Path(__file__).resolve().parent.parent
SCENARIO_FILES = [ROOT / "ipam_core" / "scenarios" / "default.yaml"] + sorted((ROOT / "scenarios").glob("*.yaml"))
REPLAY_SCENARIO = ROOT / "scenarios" / "replay.yaml"
REPLAY_CSV = ROOT / "scenarios" / "data" / "replay-example.csv"
SEED_LAB = ROOT / "scenarios" / "seed-lab.yaml"
runner = CliRunner()


class EngineReached(AssertionError):
    """A bad input got past validation into a simulation."""


def _tripwire(*args, **kwargs):
    raise EngineReached("the engine was reached: validation must refuse the input first")


@pytest.fixture(autouse=True, scope="module")
def no_engine():
    """Replace both engines: no case of this file may simulate anything."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ipam_core.pipeline, "simulate", _tripwire)
        mp.setattr(ipam_core.pipeline, "build_workload", _tripwire)
        mp.setattr(MigrationEngine, "run", _tripwire)
        yield


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _needle_found(message: str, needle: str | tuple[str, ...]) -> bool:
    needles = (needle,) if isinstance(needle, str) else needle
    return any(n in message for n in needles)


def assert_refused(args: list[str], out: Path, key, value) -> str:
    """Run the CLI; check exit 2, one stderr line naming ``key`` and ``value``, no traceback, ``out`` untouched."""
    out.mkdir(parents=True, exist_ok=True)
    marker = out / "keep.txt"
    if not marker.exists():
        marker.write_bytes(b"marker: must survive a refused run\n")
    before = _snapshot(out)
    result = runner.invoke(app, [*args, "--out", str(out)])
    stderr = result.stderr
    context = f"args={args!r} exit={result.exit_code} stderr={stderr!r} stdout={result.stdout[-300:]!r}"
    assert not isinstance(result.exception, EngineReached), context
    assert result.exit_code == 2, context
    assert "Traceback" not in stderr and "Traceback" not in result.stdout, context
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), context
    message = lines[0]
    assert _needle_found(message, key), f"key {key!r} not named: {context}"
    assert _needle_found(message, value), f"value {value!r} not named: {context}"
    assert _snapshot(out) == before, context
    return message


def _shown(value) -> tuple[str, ...]:
    """How a message may show a YAML value (a whole float like 1e12 may be shown as the integer it is)."""
    forms = [repr(value), str(value)]
    if isinstance(value, float) and value.is_integer():
        forms.append(str(int(value)))
    return tuple(forms)


# ---------------------------------------------------------------- scenario mutations
_DOCS = {p.name: yaml.safe_load(p.read_text()) for p in SCENARIO_FILES}

#: Integers a scenario may hold, with values that are each wrong for it.
_INT_KEYS = {
    ("seed",): [-1, -5, 2**63, 2**233, 1.5, 1e12, "abc", True],
    ("cluster", "nodes"): [0, -5, limits.MAX_NODES + 1, 10**12, 1e12, 2.5, "abc", "1e12"],
    ("cluster", "kubelet", "maxPods"): [0, -1, limits.MAX_PODS_PER_NODE + 1, 10**12, 1e12, 3.5, "110"],
    ("cilium", "ipam", "operator", "clusterPoolIPv4MaskSize"): [0, -3, 33, 64, 24.5, "x"],
    ("cilium", "ipam", "operator", "preAllocate"): [-1, 10**12, 1e12, 2.5, "x"],
    ("cloud", "gke", "maxPodsPerNode"): [0, -1, limits.MAX_PODS_PER_NODE + 1, 10**12, "x"],
    ("cloud", "awsVpcCni", "WARM_IP_TARGET"): [-1, 10**12, "1e12", 2.5],
}
_DURATION_KEYS = {
    ("duration",): [0, -5, "-5m", "abc", "5 parsecs", float("nan"), float("inf"), 1e12, "1000000h"],
    ("sampleInterval",): [0, -1, "1000h", "abc", float("inf"), 1e-9],
    ("timing", "podRetryInterval"): [0, -1, "abc", float("nan")],
}
#: Workload keys by kind, with wrong values.
_WORKLOAD_INTS = ["podsPerNode", "pods", "repeats", "minNodes", "maxNodes", "nodesPerNamespace", "bigGroupSize"]
_WORKLOAD_FLOATS = ["churnPerSecond", "qps", "fillQps", "hold", "gap", "period", "interval", "timeScale"]
_BAD_INTS = [0, -1, -100, 10**12, 1e12, 2.5, "abc", True]
_BAD_FLOATS = [0, -1, -0.5, float("nan"), float("inf"), 1e12, "fast", True]


def _get(doc, path):
    for part in path:
        doc = doc[part]
    return doc


def _set(doc, path, value):
    for part in path[:-1]:
        doc = doc.setdefault(part, {})
    doc[path[-1]] = value


def _has(doc, path) -> bool:
    try:
        _get(doc, path)
    except (KeyError, TypeError, IndexError):
        return False
    return True


def _mappings(doc, path=()):
    """Paths of every mapping in the document (where an unknown key can go)."""
    if isinstance(doc, dict):
        if path[:1] not in (("manifests",), ("steps",), ("migration",)):  # raw or other validators' sections
            yield path
        for key, value in doc.items():
            yield from _mappings(value, path + (key,))


@st.composite
def scenario_mutation(draw):
    """(scenario file name, mutated document, key needle, value needle)."""
    name = draw(st.sampled_from(sorted(_DOCS)))
    doc = copy.deepcopy(_DOCS[name])
    kind = draw(st.sampled_from(["int", "duration", "workload", "unknown-key", "renamed-key", "cidr", "overlap",
                                 "mode", "removed"]))
    if kind == "int":
        path = draw(st.sampled_from(sorted(_INT_KEYS)))
        value = draw(st.sampled_from(_INT_KEYS[path]))
        _set(doc, path, value)
        return name, doc, path[-1], _shown(value)
    if kind == "duration":
        path = draw(st.sampled_from(sorted(_DURATION_KEYS)))
        value = draw(st.sampled_from(_DURATION_KEYS[path]))
        _set(doc, path, value)
        return name, doc, path[-1], _shown(value)
    if kind == "workload":
        generator = doc.get("workload", {}).get("generator", "steady-churn")
        keys = {"steady-churn": ["podsPerNode", "churnPerSecond", "fillQps"],
                "scale-out": ["qps", "pods", "podsPerNode"], "burst": ["podsPerNode", "qps", "hold", "repeats", "gap"],
                "node-autoscaling": ["minNodes", "maxNodes", "period", "interval", "podsPerNode"],
                "cl2-load": ["podsPerNode", "nodesPerNamespace", "qps", "bigGroupSize"],
                "replay": ["timeScale"]}[generator]
        key = draw(st.sampled_from(keys))
        value = draw(st.sampled_from(_BAD_INTS if key in _WORKLOAD_INTS else _BAD_FLOATS))
        if key == "maxNodes" and isinstance(value, int) and not isinstance(value, bool) and value > 0:
            doc["workload"].pop("minNodes", None)  # a huge maxNodes alone, not a min > max
        doc.setdefault("workload", {"generator": generator})[key] = value
        return name, doc, key, _shown(value)
    if kind == "unknown-key":
        path = draw(st.sampled_from(list(_mappings(doc))))
        key = draw(st.sampled_from(["bogusKey", "nodez", "maxpods", "podsPerNod"]))
        _get(doc, path)[key] = 1
        return name, doc, key, key
    if kind == "renamed-key":
        candidates = [p + (k,) for p in _mappings(doc) for k in _get(doc, p)
                      if isinstance(k, str) and not (p == ("workload",) and k == "generator")]
        path = draw(st.sampled_from(candidates))
        parent = _get(doc, path[:-1])
        new = path[-1] + "X"
        parent[new] = parent.pop(path[-1])
        return name, doc, new, new
    if kind in ("cidr", "overlap"):
        path = ("cilium", "ipam", "operator", "clusterPoolIPv4PodCIDRList")
        current = _get(doc, path) if _has(doc, path) else ["10.0.0.0/8"]
        if kind == "cidr":
            bad = draw(st.sampled_from(["10.0.0.0/33", "10.0.0.1/8", "banana", "10.0.0.0", "300.1.2.3/8",
                                        "fd00::/104"]))
            _set(doc, path, [bad] + list(current)[1:])
            return name, doc, "clusterPoolIPv4PodCIDRList", bad
        _set(doc, path, [current[0], current[0]])
        return name, doc, "clusterPoolIPv4PodCIDRList", str(current[0])
    if kind == "mode":
        bad = draw(st.sampled_from(["weave", "clusterpool", "Kubernetes", "host-scope", ""]))
        where = draw(st.sampled_from(["cilium.ipam.mode", "modes"]))
        if where == "modes":
            doc["modes"] = list(doc.get("modes") or ["kubernetes"]) + [bad]
            return name, doc, "modes", repr(bad)
        doc.setdefault("cilium", {}).setdefault("ipam", {})["mode"] = bad
        return name, doc, "mode", repr(bad)
    # removed: a key the scenario cannot do without
    what = draw(st.sampled_from(["name", "generator"]))
    if what == "name":
        doc.pop("name")
        return name, doc, "name", "missing"
    doc.setdefault("workload", {}).pop("generator", None)
    return name, doc, "generator", "missing"


@settings(max_examples=140)
@given(scenario_mutation(), st.sampled_from(["compare", "run"]))
def test_mutated_scenario_is_refused_in_one_line(case, command):
    name, doc, key, value = case
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "data").symlink_to(ROOT / "scenarios" / "data")  # replay paths resolve as in scenarios/
        path = folder / name
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        args = [command, str(path)] + (["--no-plot"] if command == "compare" else [])
        assert_refused(args, folder / "out", key, value)


# ---------------------------------------------------------------- command-line mutations
_SCENARIO = str(ROOT / "scenarios" / "multi-pool-teams.yaml")
_PLAN = ["migrate", str(SEED_LAB), "--plan"]


@st.composite
def cli_mutation(draw):
    """(args, flag needle, value needle)."""
    kind = draw(st.sampled_from(["seed", "modes", "mode", "plan", "unknown-flag", "not-a-number"]))
    if kind == "seed":
        value = draw(st.sampled_from(["-1", str(2**63), str(2**233), "-9223372036854775809"]))
        base = draw(st.sampled_from([["compare", _SCENARIO, "--no-plot"], ["run", _SCENARIO], _PLAN]))
        return [*base, "--seed", value], "--seed", value
    if kind == "modes":
        value = draw(st.sampled_from(["", " ", ",", "kubernetes,,multi-pool", "kubernetes, kubernetes",
                                      "multi-pool ,cluster-pool, multi-pool", "kubernetes, weave", "k8s"]))
        return ["compare", _SCENARIO, "--no-plot", "--modes", value], "--modes", repr(value)
    if kind == "mode":
        value = draw(st.sampled_from(["weave", "clusterpool", "Multi-Pool", "", "kubernetes,multi-pool"]))
        return ["run", _SCENARIO, "--mode", value], "mode", repr(value)
    if kind == "plan":
        flag = draw(st.sampled_from(["--nodes", "--pods-per-node", "--batch"]))
        value = draw(st.sampled_from(["0", "-5", "10000000", str(limits.MAX_PLAN_NODES + 1), "111", "5000"]))
        if flag != "--pods-per-node" and value in ("111",):
            value = "0"
        if flag != "--pods-per-node" and value == "5000":
            value = "-1"
        return [*_PLAN, flag, value], flag, value
    if kind == "unknown-flag":
        flag = draw(st.sampled_from(["--bogus", "--node", "--seeds", "--mode"]))
        base = draw(st.sampled_from([["compare", _SCENARIO], _PLAN]))
        if flag == "--mode" and base[0] == "run":
            flag = "--bogus"
        return [*base, flag, "1"], flag, flag
    flag = draw(st.sampled_from(["--seed", "--nodes", "--batch", "--pods-per-node"]))
    value = draw(st.sampled_from(["abc", "1e12", "1.5", "", "0x10", "12pods"]))
    base = _PLAN if flag != "--seed" else draw(st.sampled_from([["compare", _SCENARIO], _PLAN]))
    return [*base, flag, value], flag, repr(value)


@settings(max_examples=60)
@given(cli_mutation())
def test_mutated_command_line_is_refused_in_one_line(case):
    args, flag, value = case
    with tempfile.TemporaryDirectory() as tmp:
        assert_refused(args, Path(tmp) / "out", flag, value)


# ---------------------------------------------------------------- migration-settings mutations
_SEED_LAB_DOC = yaml.safe_load(SEED_LAB.read_text())
_MIGRATION_BAD = {
    "podsPerNode": [0, -1, 111, 10**12, 1e12, "x"],  # seed-lab's maxPods is 110
    "replicasPerDeployment": [0, -1, 10**12, 2.5],
    "agentRestart": [-5, "-5s", "abc", "1000d", float("nan")],
    "drain": [-1, "soon", float("inf")],
    "nodes": [[], ["Bad_Name"], [1], ["k8s-ctr", "k8s-ctr"]],
}


@st.composite
def migration_mutation(draw):
    """(mutated seed-lab document, key needle, value needle)."""
    doc = copy.deepcopy(_SEED_LAB_DOC)
    key = draw(st.sampled_from(sorted(_MIGRATION_BAD)))
    value = draw(st.sampled_from(_MIGRATION_BAD[key]))
    doc["migration"][key] = value
    if key == "nodes":
        shown = {0: "[]", 1: "'Bad_Name'", 2: "1", 3: "'k8s-ctr'"}[_MIGRATION_BAD["nodes"].index(value)]
        return doc, "migration.nodes", shown
    return doc, f"migration.{key}", _shown(value)


@settings(max_examples=40)
@given(migration_mutation(), st.sampled_from([[], ["--plan"], ["--plan", "--nodes", "3"]]))
def test_mutated_migration_settings_are_refused_in_one_line(case, flags):
    doc, key, value = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "seed-lab.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        assert_refused(["migrate", str(path), *flags], Path(tmp) / "out", key, value)


# ---------------------------------------------------------------- replay-file mutations
_REPLAY_ROWS = list(csv.DictReader(REPLAY_CSV.open()))
_REPLAY_FIELDS = list(_REPLAY_ROWS[0])
_POD_ADDS = [i for i, r in enumerate(_REPLAY_ROWS) if r["op"] == "add"]
_POD_DELETES = [i for i, r in enumerate(_REPLAY_ROWS) if r["op"] == "delete"]
_DURATION_S = 15 * 60


class Rows(list):
    """Replay rows with a short repr (hypothesis prints failing cases)."""

    def __init__(self, rows, change: str):
        super().__init__(rows)
        self.change = change

    def __repr__(self) -> str:
        return f"<replay-example.csv, {self.change}>"


@st.composite
def replay_mutation(draw):
    """(what changed, rows, column needle, value needle)."""
    rows = [dict(r) for r in _REPLAY_ROWS]
    kind = draw(st.sampled_from(["negative-time", "late-time", "bad-time", "bad-op", "no-pod", "created-twice",
                                 "delete-first", "unknown-pool", "unknown-node"]))
    i = draw(st.sampled_from(_POD_ADDS))
    if kind == "negative-time":
        value = -draw(st.integers(1, 10**6))
        rows[i]["time"] = str(value)
        return f"{kind} at row {i + 1}", rows, "time", (str(float(value)), str(value))
    if kind == "late-time":
        value = _DURATION_S + draw(st.integers(1, 10**9))
        rows[i]["time"] = str(value)
        return f"{kind} at row {i + 1}", rows, "time", (str(float(value)), str(value))
    if kind == "bad-time":
        value = draw(st.sampled_from(["soon", "nan", "inf", "12:00", "1e400"]))
        rows[i]["time"] = value
        return f"{kind} at row {i + 1}", rows, "time", (repr(value), "nan", "inf")
    if kind == "bad-op":
        value = draw(st.sampled_from(["remove", "kill", "node_add", "ADDD"]))
        rows[i]["op"] = value
        return f"{kind} at row {i + 1}", rows, "op", repr(value)
    if kind == "no-pod":
        rows[i]["pod"] = ""
        return f"{kind} at row {i + 1}", rows, "pod", "None"
    if kind == "created-twice":
        rows.insert(i + 1, dict(rows[i]))
        return f"{kind} at row {i + 1}", rows, "create of pod", rows[i]["pod"]
    if kind == "delete-first":
        j = draw(st.sampled_from(_POD_DELETES))
        ghost = dict(rows[j], pod="never-created-" + rows[j]["pod"])
        rows.insert(j, ghost)
        return f"{kind} at row {i + 1}", rows, "delete of never-created pod", ghost["pod"]
    if kind == "unknown-pool":
        value = draw(st.sampled_from(["nosuchpool", "blue", "Default"]))
        rows[i]["pool"] = value
        return f"{kind} at row {i + 1}", rows, "pool", repr(value)
    value = draw(st.sampled_from(["ghost-node", "node-6", "node-99"]))
    rows[i]["node"] = value
    return f"{kind} at row {i + 1}", rows, "node", repr(value)


@settings(max_examples=60)
@given(replay_mutation(), st.sampled_from(["compare", "run"]))
def test_mutated_replay_file_is_refused_in_one_line(case, command):
    change, rows, column, value = case
    rows = Rows(rows, change)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "data").mkdir()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, _REPLAY_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
        (folder / "data" / "replay-example.csv").write_text(buffer.getvalue())
        scenario = folder / "replay.yaml"
        scenario.write_text(REPLAY_SCENARIO.read_text())
        args = [command, str(scenario)] + (["--no-plot"] if command == "compare" else [])
        message = assert_refused(args, folder / "out", column, value)
        assert "replay-example.csv" in message and "row " in message


# ---------------------------------------------------------------- issue #13 regressions, one by one
def _scenario(tmp_path, text: str) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("text, key, value", [
    ("name: t\ncluster: {nodes: 1e12}\nworkload: {generator: steady-churn}\n", "cluster.nodes", "'1e12'"),
    ("name: t\ncluster: {nodes: 1.0e+12}\nworkload: {generator: steady-churn}\n", "cluster.nodes", "1000000000000.0"),
    ("name: t\ncluster: {nodes: 1000000000000}\nworkload: {generator: steady-churn}\n", "cluster.nodes",
     "1000000000000"),
    ("name: t\ncluster: {kubelet: {maxPods: 1000000000000}}\nworkload: {generator: steady-churn}\n",
     "cluster.kubelet.maxPods", "1000000000000"),
    ("name: t\nworkload: {generator: scale-out, pods: 1000000000000}\n", "workload.pods", "1000000000000"),
    ("name: t\nworkload: {generator: steady-churn, podsPerNode: 1000000000000}\n", "workload.podsPerNode",
     "1000000000000"),
    ("name: t\nseed: " + str(2**233) + "\nworkload: {generator: steady-churn}\n", "seed", str(2**233)),
    # each number within its own limit, but 100,000 nodes x 300 pods = 30 M live pods: over the live-pod cap
    ("name: t\ncluster: {nodes: 100000, kubelet: {maxPods: 300}}\nworkload: {generator: steady-churn, "
     "podsPerNode: 300}\n", "workload.podsPerNode", "30,000,000"),
    ("name: t\nduration: 1h\nworkload: {generator: steady-churn, churnPerSecond: 100000}\n",
     "workload.churnPerSecond", "100000"),
])
def test_issue_13_huge_numbers_in_a_scenario(tmp_path, text, key, value):
    assert_refused(["compare", _scenario(tmp_path, text), "--no-plot"], tmp_path / "out", key, value)


def test_issue_13_seed_of_2_to_the_233_on_the_command_line(tmp_path):
    message = assert_refused(["compare", "--seed", str(2**233), "--no-plot"], tmp_path / "out", "--seed", str(2**233))
    assert "2^63" in message


@pytest.mark.parametrize("modes, needle", [
    ("", "names no mode"),
    ("kubernetes,kubernetes", "twice"),
    ("kubernetes, cluster-pool, kubernetes", "twice"),
    ("kubernetes, weave", "kubernetes, cluster-pool, multi-pool"),
])
def test_issue_13_modes_flag(tmp_path, modes, needle):
    message = assert_refused(["compare", "--modes", modes, "--no-plot"], tmp_path / "out", "--modes", repr(modes))
    assert needle in message


def test_issue_13_modes_with_spaces_after_commas_are_parsed():
    from ipam_core.cli import _modes
    from ipam_core.scenario import load_scenario

    scenario = load_scenario("default")
    assert _modes("kubernetes, cluster-pool ,  multi-pool", scenario) == ["kubernetes", "cluster-pool", "multi-pool"]
    assert _modes(None, scenario) == list(scenario.modes)


def _replay_case(tmp_path, body: str, extra: str = "") -> str:
    (tmp_path / "e.csv").write_text(body)
    return _scenario(tmp_path, "name: r\nduration: 10m\nmodes: [cluster-pool, multi-pool]\n"
                               f"workload: {{generator: replay, path: e.csv{extra}}}\n")


@pytest.mark.parametrize("body, extra, column, value", [
    ("time,op,pod,namespace\n-5,add,a,ns\n10,delete,a,ns\n", "", "time", "-5.0"),
    ("time,op,pod,namespace\n0,add,a,ns\n601,delete,a,ns\n", "", "time", "601.0"),
    ("time,op,pod,namespace\n0,add,a,ns\n400,delete,a,ns\n", ", timeScale: 2", "time", "400.0"),
    ("time,op,pod,namespace\n5,delete,a,ns\n6,add,a,ns\n", "", "delete of never-created pod", "ns/a"),
    ("time,op,pod,namespace\n1,add,c,a/b\n2,delete,b/c,a\n", "", "delete of never-created pod", "a/b/c"),
    ("time,op,pod,namespace\n1,add,a,ns\n2,add,a,ns\n", "", "create of pod", "ns/a"),
    ("time,op,pod,namespace,pool\n1,add,a,ns,nosuchpool\n", "", "pool", "'nosuchpool'"),
    ("time,op,pod,namespace,node\n0,node-add,,,n1\n1,add,a,ns,n2\n", "", "node", "'n2'"),
])
def test_issue_13_replay_files_validated_whole(tmp_path, body, extra, column, value):
    message = assert_refused(["compare", _replay_case(tmp_path, body, extra), "--no-plot"], tmp_path / "out",
                             column, value)
    assert "e.csv: row " in message


def test_replay_pinned_to_a_cluster_node_or_implicit_nodes_still_loads(tmp_path):
    from ipam_core.scenario import load_scenario

    # a file with node rows may pin pods to the scenario's own nodes (node-0 ...)
    load_scenario(_replay_case(tmp_path, "time,op,pod,namespace,node\n0,node-add,,,n1\n1,add,a,ns,node-0\n"))
    # a file without node rows: the pinned names are its nodes
    load_scenario(_replay_case(tmp_path, "time,op,pod,namespace,node\n1,add,a,ns,ip-10-0-0-1\n"))


@pytest.mark.parametrize("flag, value", [("--nodes", "0"), ("--nodes", "-5"), ("--nodes", "10000000"),
                                         ("--pods-per-node", "0"), ("--batch", "0"), ("--nodes", "1e12")])
def test_issue_13_migrate_plan_sizes(tmp_path, flag, value):
    assert_refused([*_PLAN, flag, value], tmp_path / "out", flag, value)


def test_pods_per_node_above_the_scenarios_max_pods(tmp_path):
    message = assert_refused([*_PLAN, "--pods-per-node", "111"], tmp_path / "out", "--pods-per-node", "111")
    assert "maxPods" in message and "110" in message


def test_usage_errors_are_one_line_not_a_box(tmp_path):
    for args, flag, value in ((["compare", "--seed", "abc"], "--seed", "'abc'"),
                              ([*_PLAN, "--nodes", "abc"], "--nodes", "'abc'"),
                              (["compare", "default", "--modes", "kubernetes,", "cluster-pool"], "argument",
                               "cluster-pool")):
        message = assert_refused(args, tmp_path / "out", flag, value)
        assert "\u2500" not in message and "Usage" not in message


def test_kubeadm_join_accepts_its_documented_flags():
    from ipam_core.migration.actions import AddNodes, Observe
    from ipam_core.migration.commands import parse_command
    from ipam_core.scenario._where import Where

    here = Where(("steps", 0, "run"))
    line = ("kubeadm join 192.168.10.100:6443 --token 123456.1234567890123456 "
            "--discovery-token-unsafe-skip-ca-verification --node-name k8s-w1 -v=5")
    assert parse_command(line, here) == AddNodes(("k8s-w1",))
    full = ("kubeadm join 10.0.0.1:6443 --token abc.def --discovery-token-ca-cert-hash sha256:00ff --control-plane "
            "--certificate-key 0a1b --apiserver-advertise-address 10.0.0.2 "
            "--cri-socket unix:///run/containerd/containerd.sock --config join.yaml --ignore-preflight-errors=all "
            "--node-name w2 -v 5")
    assert parse_command(full, here) == AddNodes(("w2",))
    assert isinstance(parse_command("kubeadm join --dry-run --node-name w3", here), Observe)
    with pytest.raises(Exception, match="unknown flag '--bogus'"):
        parse_command("kubeadm join --bogus --node-name w4", here)


@pytest.mark.parametrize("workload, key, value", [
    ("{generator: scale-out, namespaceWeights: {nosuchns: 1}}", "namespaceWeights.nosuchns", "1"),
    ("{generator: steady-churn, podPoolFractions: {nosuchpool: 0.5}}", "podPoolFractions.nosuchpool", "0.5"),
    ("{generator: node-autoscaling, maxNodes: 3}", "workload.minNodes", "4"),  # default minNodes: nodes // 2
    ("{generator: node-autoscaling, interval: 0.000001}", "workload.interval", "1e-06"),
])
def test_names_and_ranges_the_generators_would_refuse_are_refused_at_load(tmp_path, workload, key, value):
    text = (f"name: t\nmodes: [multi-pool]\ncluster: {{nodes: 8}}\nduration: 1000h\nsampleInterval: 1h\n"
            f"workload: {workload}\n")
    assert_refused(["compare", _scenario(tmp_path, text), "--no-plot"], tmp_path / "out", key, value)


@pytest.mark.parametrize("text, key", [
    ("name: t\nduration: 10000h\nworkload: {generator: scale-out}\n", "duration"),
    ("name: t\nduration: 9000h\nworkload: {generator: scale-out}\n", "duration"),
    ("name: t\nduration: 300h\nsampleInterval: 1s\nworkload: {generator: scale-out}\n", "sampleInterval"),
    ("name: t\nduration: 300h\nsampleInterval: 1m\nnodeSampleInterval: 1m\ncluster: {nodes: 5000}\n"
     "workload: {generator: scale-out}\n", "nodeSampleInterval"),
])
def test_durations_and_sample_counts_are_bounded(tmp_path, text, key):
    message = assert_refused(["compare", _scenario(tmp_path, text), "--no-plot"], tmp_path / "out", key, key)
    assert "expected" in message


@pytest.mark.parametrize("args, needle", [
    (["compare", str(ROOT / "scenarios" / "dual-stack.yaml"), "--modes", "kubernetes, eni", "--no-plot"],
     "needed by mode eni"),
    (["run", str(ROOT / "scenarios" / "dual-stack.yaml"), "--mode", "eni"], "needed by mode eni"),
])
def test_a_mode_the_scenario_cannot_run_is_refused_before_the_workload(tmp_path, args, needle):
    message = assert_refused(args, tmp_path / "out", "cilium.ipv6.enabled", "true")
    assert needle in message


def test_multi_pool_added_on_the_command_line_checks_the_replay_pools(tmp_path):
    (tmp_path / "e.csv").write_text("time,op,pod,namespace,pool\n1,add,a,ns,nosuchpool\n")
    path = _scenario(tmp_path, "name: r\nmodes: [cluster-pool]\nworkload: {generator: replay, path: e.csv}\n")
    assert_refused(["compare", path, "--modes", "cluster-pool,multi-pool", "--no-plot"], tmp_path / "out", "pool",
                   "'nosuchpool'")
