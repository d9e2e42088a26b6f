"""Parse and validate a scenario's ``steps:`` into typed :class:`Step` objects.

A step happens at a simulated time and does one thing, written either as the command an
operator types or as a mapping::

    steps:
      - at: 10m
        run: >-
          helm upgrade cilium cilium/cilium --version 1.17.6 --namespace kube-system --reuse-values
          --set ipam.mode="cluster-pool" --set ipam.operator.clusterPoolIPv4PodCIDRList={"172.20.0.0/16"}
      - {at: 10m, run: "kubectl -n kube-system rollout restart deploy/cilium-operator"}
      - {at: 12m, delete: {ciliumnode: k8s-w1}}
      - {at: 12m, rolloutRestart: {namespace: kube-system, targets: [ds/cilium]}, agentRestart: 45s}
      - at: 15m
        helm: {upgrade: {reuseValues: true, set: {ipam.mode: cluster-pool,
                                                   ipam.operator.clusterPoolIPv4PodCIDRList: [172.20.0.0/16]}}}

Steps run in list order; ``at`` may not go backwards. What a step names (nodes, pods,
Deployments) is checked when it runs, against the simulated cluster of that moment
(:mod:`ipam_core.migration.engine`), with the same one-line errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ipam_core.errors import ConfigError
from ipam_core.migration.actions import (Action, AddNodes, Apply, Cordon, DeleteCiliumNodes, DeleteDeployments,
                                         DeleteNodes, DeletePods, Drain, HelmUpgrade, RestartAgents,
                                         RestartStalePods, RolloutRestart, Scale, Uncordon, describe)
from ipam_core.migration.commands import parse_command
from ipam_core.migration.helm import classify_key, flatten
from ipam_core.migration.objects import read_objects
from ipam_core.migration.settings import STEP_TIMING_KEYS, check_node_name, read_timing_overrides, scenario_source
from ipam_core.scenario._values import as_bool, as_duration, as_int, as_mapping, as_str, check_keys, show
from ipam_core.scenario._where import Source, Where

ACTION_KEYS = ("run", "helm", "rolloutRestart", "delete", "apply", "scale", "node", "drain", "cordon", "uncordon",
               "restartAgents", "restartStalePods")
STEP_KEYS = ("at", "note", "stdin", "allowUnsupported", *STEP_TIMING_KEYS, *ACTION_KEYS)
_SPECIAL_KUBE_SYSTEM = ("cilium-operator", "cilium")


@dataclass(frozen=True, eq=False)
class Step:
    """One step of a migration.

    Attributes
    ----------
    index : int
        Position in ``steps:`` (0-based).
    at_s : float
        Simulated time the step is applied, in seconds.
    command : str
        The command as written (``run:``) or as an operator would type it (structured form).
    action : Action
        What the step does (:mod:`ipam_core.migration.actions`).
    timing : mapping of str to float
        Durations overridden for this step (``agentRestart`` ...).
    allow_unsupported : bool
        Apply a ``helm upgrade`` that Cilium's docs forbid on a running cluster.
    note : str
        Free text shown in the timeline.
    where : Where
        The step's position in the scenario file, for one-line errors.
    """

    index: int
    at_s: float
    command: str
    action: Action
    timing: Mapping[str, float] = field(default_factory=dict)
    allow_unsupported: bool = False
    note: str = ""
    where: Where = field(default_factory=Where)

    def error(self, message: str) -> ConfigError:
        """A one-line ConfigError naming this step, its command and ``message``."""
        shown = self.command if len(self.command) <= 70 else self.command[:67] + "..."
        return self.where.error(f"{shown}: {message}")


def parse_steps(scenario, source: Source | None = None) -> tuple[Step, ...]:
    """Read and validate ``scenario.steps``.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
    source : Source, optional
        Line index of the scenario text (default: built from it).

    Returns
    -------
    tuple of Step

    Raises
    ------
    ConfigError
        One line ``file:line: steps[i].key: ...``: unknown key, not exactly one action, a
        time that is not a duration, goes backwards or is past ``duration``, an unsupported
        command, an unknown Helm value, a malformed manifest.
    """
    source = source if source is not None else scenario_source(scenario)
    root = Where(("steps",), source)
    base = Path(scenario.source_path).parent if scenario.source_path is not None else None
    out: list[Step] = []
    last = 0.0
    for i, raw in enumerate(scenario.steps):
        step = parse_step(root / i, i, raw, base)
        if step.at_s < last:
            (root / i / "at").fail(f"{step.at_s:g} s is before the previous step's {last:g} s; expected steps in "
                                   "time order")
        if step.at_s > scenario.duration_s:
            (root / i / "at").fail(f"{step.at_s:g} s is after the scenario's duration ({scenario.duration_s:g} s); "
                                   "expected a time within it (or a longer duration)")
        last = step.at_s
        out.append(step)
    return tuple(out)


def parse_step(where: Where, index: int, raw: object, base: Path | None = None) -> Step:
    """Read one step (see :func:`parse_steps`).

    Parameters
    ----------
    where : Where
        Position of the step.
    index : int
        Its index in ``steps:``.
    raw : object
        The step as written.
    base : pathlib.Path, optional
        Folder that ``kubectl apply -f FILE`` paths are relative to.

    Returns
    -------
    Step
    """
    step = as_mapping(where, raw, null_ok=False)
    check_keys(where, step, STEP_KEYS)
    if "at" not in step:
        where.fail("missing 'at'; expected the simulated time of the step, e.g. at: 10m")
    at = as_duration(where / "at", step["at"], zero_ok=True)
    actions = [k for k in ACTION_KEYS if k in step]
    if len(actions) != 1:
        got = ", ".join(actions) or "none"
        where.fail(f"has {len(actions)} actions ({got}); expected exactly one of: {', '.join(ACTION_KEYS)}")
    key = actions[0]
    if "stdin" in step and key != "run":
        (where / "stdin").fail("stdin: goes with run: (kubectl apply -f -); expected it only there")
    stdin = as_str(where / "stdin", step["stdin"], what="a manifest") if "stdin" in step else None
    read_file = _file_reader(where / "run", base) if base is not None else None
    if key == "run":
        text = as_str(where / "run", step["run"], what="a command line")
        action = parse_command(text, where / "run", stdin=stdin, read_file=read_file)
        command = " ".join(text.replace("\\\n", " ").split())
    else:
        action = _STRUCTURED[key](where / key, step[key])
        command = describe(action)
    allow = as_bool(where / "allowUnsupported", step["allowUnsupported"]) if "allowUnsupported" in step else False
    if allow and not isinstance(action, HelmUpgrade):
        (where / "allowUnsupported").fail("applies to helm upgrade steps only; expected it on a helm upgrade")
    note = as_str(where / "note", step["note"], empty_ok=True, what="free text") if "note" in step else ""
    return Step(index, at, command, action, read_timing_overrides(where, step, STEP_TIMING_KEYS), allow, note, where)


def _file_reader(where: Where, base: Path):
    def read(name: str) -> str:
        """A manifest file's text, relative to the scenario's folder."""
        path = Path(name).expanduser()
        path = path if path.is_absolute() else base / path
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            where.fail(f"cannot read manifest file {name!r}: {exc.strerror or exc}")
    return read


# ---------------------------------------------------------------- structured forms
def _names(where: Where, value: object, what: str = "a name") -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        where.fail(f"[] is empty; expected {what} or a list of them")
    return tuple(as_str(where / i if isinstance(value, list) else where, v, what=what) for i, v in enumerate(items))


def _nodes(where: Where, value: object) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        where.fail("[] is empty; expected a node name or a list of them")
    return tuple(check_node_name(where / i if isinstance(value, list) else where, v) for i, v in enumerate(items))


def _nodes_or_all(where: Where, value: object) -> tuple[str, ...] | None:
    return None if value == "all" else _nodes(where, value)


def _helm(where: Where, value: object) -> HelmUpgrade:
    spec = as_mapping(where, value, null_ok=False)
    check_keys(where, spec, ("upgrade",))
    w = where / "upgrade"
    up = as_mapping(w, spec.get("upgrade"))
    check_keys(w, up, ("set", "setString", "values", "reuseValues"))
    assignments: list[tuple[str, object]] = []
    for key, as_string in (("set", False), ("setString", True)):
        for name, val in as_mapping(w / key, up.get(key)).items():
            name = as_str(w / key, name, what="a dotted Helm key")
            try:
                classify_key(name)
            except ConfigError as exc:
                (w / key / name).fail(str(exc))
            if as_string and not isinstance(val, str):
                (w / key / name).fail(f"{show(val)} is not a string; expected a string under setString")
            assignments.append((name, list(val) if isinstance(val, (list, tuple)) else val))
    values = as_mapping(w / "values", up.get("values")) or None
    if values:
        for name in flatten(values):
            try:
                classify_key(name)
            except ConfigError as exc:
                (w / "values").fail(str(exc))
    reuse = as_bool(w / "reuseValues", up["reuseValues"]) if "reuseValues" in up else False
    if not assignments and not values:
        w.fail("sets nothing; expected set:, setString: or values:")
    return HelmUpgrade(tuple(assignments), values, reuse)


def _rollout(where: Where, value: object) -> RolloutRestart:
    if isinstance(value, Mapping):
        spec = dict(value)
        check_keys(where, spec, ("namespace", "targets"))
        ns = as_str(where / "namespace", spec["namespace"], what="a namespace") if "namespace" in spec else None
        targets = _names(where / "targets", spec.get("targets"), "a target such as deploy/NAME")
    else:
        ns, targets = None, _names(where, value, "a target such as deploy/NAME or ds/cilium")
    deployments, daemonsets = [], []
    for i, target in enumerate(targets):
        kind, sep, name = target.partition("/")
        if not sep or not name:
            (where / i).fail(f"{target!r} is not TYPE/NAME; expected e.g. deploy/webpod or ds/cilium")
        if kind in ("deploy", "deployment", "deployments"):
            deployments.append(name)
        elif kind in ("ds", "daemonset", "daemonsets"):
            daemonsets.append(name)
        else:
            (where / i).fail(f"cannot restart a {kind!r}; expected deploy/NAME or ds/NAME")
    if ns is None:
        ns = "kube-system" if all(n in _SPECIAL_KUBE_SYSTEM for n in deployments + daemonsets) else "default"
    return RolloutRestart(ns, tuple(deployments), tuple(daemonsets))


def _delete(where: Where, value: object) -> object:
    spec = as_mapping(where, value, null_ok=False)
    check_keys(where, spec, ("ciliumnode", "pod", "deployment", "node", "namespace", "selector", "ignoreNotFound"))
    kinds = [k for k in ("ciliumnode", "pod", "deployment", "node") if k in spec]
    if len(kinds) != 1 and not (kinds == [] and "selector" in spec):
        where.fail(f"names {len(kinds)} kinds ({', '.join(kinds) or 'none'}); expected one of ciliumnode, pod, "
                   "deployment, node")
    ignore = as_bool(where / "ignoreNotFound", spec["ignoreNotFound"]) if "ignoreNotFound" in spec else False
    ns = as_str(where / "namespace", spec.get("namespace", "default"), what="a namespace")
    kind = kinds[0] if kinds else "pod"
    if kind == "ciliumnode":
        if spec["ciliumnode"] == "all":
            return DeleteCiliumNodes((), True, ignore)
        return DeleteCiliumNodes(_nodes(where / "ciliumnode", spec["ciliumnode"]), False, ignore)
    if kind == "node":
        return DeleteNodes(_nodes(where / "node", spec["node"]))
    if kind == "deployment":
        return DeleteDeployments(ns, _names(where / "deployment", spec["deployment"]), ignore)
    selector = None
    if "selector" in spec:
        selector = {as_str(where / "selector", k, what="a label key"): as_str(where / "selector" / str(k), v,
                                                                             empty_ok=True, what="a label value")
                    for k, v in as_mapping(where / "selector", spec["selector"]).items()}
    names = _names(where / "pod", spec["pod"]) if "pod" in spec else ()
    return DeletePods(ns, names, selector, None, ignore)


def _apply(where: Where, value: object) -> Apply:
    return Apply(tuple(read_objects(where, value)))


def _scale(where: Where, value: object) -> Scale:
    spec = as_mapping(where, value, null_ok=False)
    check_keys(where, spec, ("deployment", "namespace", "replicas"))
    for key in ("deployment", "replicas"):
        if key not in spec:
            where.fail(f"missing {key!r}; expected {{deployment: NAME, replicas: N}}")
    return Scale(as_str(where / "namespace", spec.get("namespace", "default"), what="a namespace"),
                 as_str(where / "deployment", spec["deployment"], what="a Deployment name"),
                 as_int(where / "replicas", spec["replicas"], lo=0))


def _node(where: Where, value: object) -> object:
    spec = as_mapping(where, value, null_ok=False)
    check_keys(where, spec, ("add", "delete"))
    if len(spec) != 1:
        where.fail(f"{show(spec)}: expected exactly one of add: or delete:")
    if "add" in spec:
        return AddNodes(_nodes(where / "add", spec["add"]))
    return DeleteNodes(_nodes(where / "delete", spec["delete"]))


def _drain(where: Where, value: object) -> Drain:
    if isinstance(value, Mapping):
        spec = dict(value)
        check_keys(where, spec, ("nodes", "force"))
        force = as_bool(where / "force", spec["force"]) if "force" in spec else False
        return Drain(_nodes(where / "nodes", spec.get("nodes")), force)
    return Drain(_nodes(where, value))


_STRUCTURED = {
    "helm": _helm,
    "rolloutRestart": _rollout,
    "delete": _delete,
    "apply": _apply,
    "scale": _scale,
    "node": _node,
    "drain": _drain,
    "cordon": lambda w, v: Cordon(_nodes(w, v)),
    "uncordon": lambda w, v: Uncordon(_nodes(w, v)),
    "restartAgents": lambda w, v: RestartAgents(_nodes_or_all(w, v)),
    "restartStalePods": lambda w, v: RestartStalePods(_nodes_or_all(w, v)),
}

__all__ = ["ACTION_KEYS", "STEP_KEYS", "Step", "parse_step", "parse_steps"]
