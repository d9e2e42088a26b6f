"""What a migration step does, as typed values: one dataclass per kind of action.

Both forms of a step (the command line in ``run:`` and the structured mapping) are read into
these, and :func:`describe` turns any of them back into the command an operator would type,
which is what the timeline shows for a structured step.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from ipam_core.migration.objects import PodTemplate, PoolObject, SkippedObject

KUBE_SYSTEM = "kube-system"
AGENT_DAEMONSET = "cilium"
OPERATOR_DEPLOYMENT = "cilium-operator"
#: Label selectors that pick the Cilium agent pods (chart labels, old and new).
AGENT_SELECTORS = ({"k8s-app": "cilium"}, {"app.kubernetes.io/name": "cilium-agent"})


@dataclass(frozen=True)
class HelmUpgrade:
    """``helm upgrade cilium cilium/cilium [--reuse-values] --set k=v ...``."""

    assignments: tuple[tuple[str, object], ...] = ()
    values: Mapping | None = None
    reuse_values: bool = False


@dataclass(frozen=True)
class RolloutRestart:
    """``kubectl -n NS rollout restart deploy/A ds/B``: Deployments and DaemonSets of one namespace."""

    namespace: str
    deployments: tuple[str, ...] = ()
    daemonsets: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeleteCiliumNodes:
    """``kubectl delete ciliumnode A B`` (``names`` empty with ``all``: ``--all``)."""

    names: tuple[str, ...] = ()
    all: bool = False
    ignore_missing: bool = False
    only_in_error: bool = False    # planning: only CiliumNodes whose operator status shows an error


@dataclass(frozen=True)
class DeletePods:
    """``kubectl -n NS delete pod A B`` or by label selector, optionally on one node."""

    namespace: str
    names: tuple[str, ...] = ()
    selector: Mapping[str, str] | None = None
    node: str | None = None
    ignore_missing: bool = False


@dataclass(frozen=True)
class RestartAgents:
    """Delete the Cilium agent pods of some nodes (``None``: every node) so that they restart at once."""

    nodes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DeleteDeployments:
    """``kubectl -n NS delete deployment A``."""

    namespace: str
    names: tuple[str, ...]
    ignore_missing: bool = False


@dataclass(frozen=True)
class Apply:
    """``kubectl apply -f``: Pods, Deployments and CiliumPodIPPools (other kinds skipped)."""

    objects: tuple[PodTemplate | PoolObject | SkippedObject, ...]


@dataclass(frozen=True)
class Scale:
    """``kubectl -n NS scale deploy/NAME --replicas=N``."""

    namespace: str
    name: str
    replicas: int


@dataclass(frozen=True)
class AddNodes:
    """Nodes join (``kubeadm join``): KCM gives each a podCIDR, the agent starts in the current mode."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class DeleteNodes:
    """``kubectl delete node A``: its pods go, KCM releases its podCIDR, its CiliumNode is deleted."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class Drain:
    """``kubectl drain NODE``: cordon, then evict every pod a controller will recreate.

    Without ``force`` a bare pod on the node is an error, as kubectl refuses; with ``force``
    bare pods are deleted for good. ``skip_bare`` (planning only) leaves them in place.
    """

    nodes: tuple[str, ...]
    force: bool = False
    skip_bare: bool = False


@dataclass(frozen=True)
class Cordon:
    """``kubectl cordon NODE``."""

    nodes: tuple[str, ...]


@dataclass(frozen=True)
class Uncordon:
    """``kubectl uncordon NODE``."""

    nodes: tuple[str, ...]


@dataclass(frozen=True)
class RestartStalePods:
    """Restart the pods whose address is outside the CIDRs their node's agent allocates from.

    ``None``: on every node. A Deployment owning such a pod gets a rolling restart
    (``kubectl rollout restart``: old pods run until their replacements are ready); a bare pod
    is deleted and created again (``kubectl replace --force``).
    """

    nodes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Observe:
    """A read-only command (``kubectl get ...``, ``cilium config view``): shows state, changes nothing."""

    what: str
    args: tuple[str, ...] = field(default_factory=tuple)


Action = (HelmUpgrade | RolloutRestart | DeleteCiliumNodes | DeletePods | RestartAgents | DeleteDeployments | Apply
          | Scale | AddNodes | DeleteNodes | Drain | Cordon | Uncordon | RestartStalePods | Observe)


def _ns(namespace: str) -> str:
    return "" if namespace == "default" else f"-n {namespace} "


def describe(action: Action) -> str:
    """The command an operator would type for ``action`` (what the timeline shows).

    Parameters
    ----------
    action : Action

    Returns
    -------
    str
    """
    if isinstance(action, HelmUpgrade):
        parts = ["helm upgrade cilium cilium/cilium -n kube-system"]
        if action.reuse_values:
            parts.append("--reuse-values")
        if action.values:
            parts.append("-f <values>")
        for key, value in action.assignments:
            shown = "{" + ",".join(str(v) for v in value) + "}" if isinstance(value, list) else (
                str(value).lower() if isinstance(value, bool) else str(value))
            parts.append(f"--set {key}={shown}")
        return " ".join(parts)
    if isinstance(action, RolloutRestart):
        targets = [f"deploy/{n}" for n in action.deployments] + [f"ds/{n}" for n in action.daemonsets]
        return f"kubectl {_ns(action.namespace)}rollout restart {' '.join(targets)}"
    if isinstance(action, DeleteCiliumNodes):
        which = "--all" if action.all else " ".join(action.names)
        if action.only_in_error:
            return f"kubectl delete ciliumnode <those of {which} with an operator status error>"
        return "kubectl delete ciliumnode " + which
    if isinstance(action, DeletePods):
        text = f"kubectl {_ns(action.namespace)}delete pod"
        if action.names:
            text += " " + " ".join(action.names)
        if action.selector:
            text += " -l " + ",".join(f"{k}={v}" for k, v in action.selector.items())
        if action.node:
            text += f" --field-selector spec.nodeName={action.node}"
        return text
    if isinstance(action, RestartAgents):
        if action.nodes is None:
            return "kubectl -n kube-system delete pod -l k8s-app=cilium"
        return " ; ".join(f"kubectl -n kube-system delete pod -l k8s-app=cilium --field-selector spec.nodeName={n}"
                          for n in action.nodes)
    if isinstance(action, DeleteDeployments):
        return f"kubectl {_ns(action.namespace)}delete deployment {' '.join(action.names)}"
    if isinstance(action, Apply):
        shown = [f"{o.kind.lower()}/{o.name}" for o in action.objects if isinstance(o, PodTemplate)]
        shown += [f"ciliumpodippool/{o.pool.name}" for o in action.objects if isinstance(o, PoolObject)]
        return "kubectl apply -f - (" + ", ".join(shown or ["nothing with pod addresses"]) + ")"
    if isinstance(action, Scale):
        return f"kubectl {_ns(action.namespace)}scale deploy/{action.name} --replicas={action.replicas}"
    if isinstance(action, AddNodes):
        return " ; ".join(f"kubeadm join (node {n})" for n in action.names)
    if isinstance(action, DeleteNodes):
        return f"kubectl delete node {' '.join(action.names)}"
    if isinstance(action, Drain):
        flags = " --force" if action.force else ""
        return " ; ".join(f"kubectl drain {n} --ignore-daemonsets --delete-emptydir-data{flags}" for n in action.nodes)
    if isinstance(action, Cordon):
        return f"kubectl cordon {' '.join(action.nodes)}"
    if isinstance(action, Uncordon):
        return f"kubectl uncordon {' '.join(action.nodes)}"
    if isinstance(action, RestartStalePods):
        where = "" if action.nodes is None else " on " + ", ".join(action.nodes)
        return f"kubectl rollout restart / replace --force <pods with addresses outside their node's CIDRs{where}>"
    if isinstance(action, Observe):
        return shlex.join(action.args) if action.args else action.what
    raise TypeError(f"not an action: {action!r}")


__all__ = ["AGENT_DAEMONSET", "AGENT_SELECTORS", "Action", "AddNodes", "Apply", "Cordon", "DeleteCiliumNodes",
           "DeleteDeployments", "DeleteNodes", "DeletePods", "Drain", "HelmUpgrade", "KUBE_SYSTEM",
           "OPERATOR_DEPLOYMENT", "Observe", "RestartAgents", "RestartStalePods", "RolloutRestart", "Scale",
           "Uncordon", "describe"]
