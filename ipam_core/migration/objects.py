"""Objects an ``apply`` step creates: Pods, Deployments and CiliumPodIPPools.

Manifests are read as ``kubectl apply -f`` would take them (a list, or one multi-document
YAML string, pasted as they are). Only what placement and IPAM need is read: names,
namespace, labels, the ``ipam.cilium.io/ip-pool`` annotation, ``spec.nodeName``,
``spec.hostNetwork``, required pod anti-affinity on ``kubernetes.io/hostname``, ``replicas``
and the rolling-update ``maxSurge`` / ``maxUnavailable``. Everything else in a pod spec
(containers, probes, ...) is accepted and ignored. Services, ConfigMaps and other objects
that do not hold pod addresses are accepted and skipped.

A compact form saves the boilerplate::

    apply:
      - {deployment: webpod, replicas: 2, labels: {app: webpod}, antiAffinity: true}
      - {pod: curl-pod, nodeName: k8s-ctr}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml

from ipam_core.scenario._values import as_bool, as_int, as_list, as_mapping, as_str, check_keys, show
from ipam_core.scenario._where import Where
from ipam_core.scenario.manifests import read_pool_spec, read_selector, read_string_map
from ipam_core.scenario.model import LabelSelector, PoolSpec

#: Kinds that hold no pod address: accepted by ``apply`` and skipped.
SKIPPED_KINDS = ("Service", "Namespace", "ConfigMap", "Secret", "ServiceAccount", "Role", "RoleBinding",
                 "ClusterRole", "ClusterRoleBinding", "Endpoints", "EndpointSlice", "Ingress", "NetworkPolicy",
                 "CiliumNetworkPolicy", "PersistentVolumeClaim", "PodDisruptionBudget", "HorizontalPodAutoscaler")
WORKLOAD_API = {"Pod": ("v1",), "Deployment": ("apps/v1",), "CiliumPodIPPool": ("cilium.io/v2alpha1", "cilium.io/v2")}
HOSTNAME_TOPOLOGY = "kubernetes.io/hostname"
COMPACT_KEYS = ("pod", "deployment", "namespace", "replicas", "labels", "annotations", "nodeName", "antiAffinity",
                "maxSurge", "maxUnavailable", "hostNetwork")
DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class PodTemplate:
    """A bare Pod or a Deployment's pod template, with what placement and IPAM read."""

    kind: str                      # "Pod" or "Deployment"
    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    node_name: str | None = None
    anti_affinity: tuple[LabelSelector, ...] = ()
    host_network: bool = False
    replicas: int = 1
    max_surge: int | str = "25%"
    max_unavailable: int | str = "25%"

    @property
    def key(self) -> tuple[str, str, str]:
        """``(kind, namespace, name)``: what ``apply`` matches an existing object by."""
        return self.kind, self.namespace, self.name

    @property
    def pool(self) -> str | None:
        """The ``ipam.cilium.io/ip-pool`` annotation (multi-pool), if any."""
        return self.annotations.get("ipam.cilium.io/ip-pool") or None


@dataclass(frozen=True)
class PoolObject:
    """A ``CiliumPodIPPool`` applied during the migration."""

    pool: PoolSpec


@dataclass(frozen=True)
class SkippedObject:
    """An object ``apply`` accepts but that holds no pod address (a Service, ...)."""

    kind: str
    name: str


def read_objects(where: Where, value: object) -> list[PodTemplate | PoolObject | SkippedObject]:
    """Read the objects of an ``apply`` step.

    Parameters
    ----------
    where : Where
        Position of the value (for one-line errors).
    value : list or str
        Manifests and compact items, or one multi-document YAML string.

    Returns
    -------
    list
        :class:`PodTemplate`, :class:`PoolObject` and :class:`SkippedObject` items in order.

    Raises
    ------
    ConfigError
        Invalid YAML, a kind that creates pods but is not simulated (DaemonSet, StatefulSet,
        Job, ...), a missing name, a bad label selector or replica count.
    """
    out = []
    for w, raw in _items(where, value):
        if "kind" not in raw:
            out.append(_compact(w, raw))
            continue
        kind = raw.get("kind")
        if kind in ("List",):
            out.extend(read_objects(w / "items", raw.get("items")))
            continue
        name = _meta_name(w, raw)
        if kind in SKIPPED_KINDS:
            out.append(SkippedObject(str(kind), name))
            continue
        if kind not in WORKLOAD_API:
            (w / "kind").fail(f"{show(kind)} is not simulated; expected Pod, Deployment or CiliumPodIPPool (objects "
                              f"without pod addresses such as {', '.join(SKIPPED_KINDS[:3])} are skipped)")
        api = raw.get("apiVersion")
        if api not in WORKLOAD_API[kind]:
            (w / "apiVersion").fail(f"{show(api)} is not an apiVersion of {kind}; expected "
                                    + " or ".join(WORKLOAD_API[kind]))
        if kind == "CiliumPodIPPool":
            pool, _ = read_pool_spec(w / "spec", name, raw.get("spec"))
            out.append(PoolObject(pool))
        elif kind == "Pod":
            out.append(_pod(w, raw, name))
        else:
            out.append(_deployment(w, raw, name))
    return out


def _items(where: Where, value: object) -> list[tuple[Where, dict]]:
    if isinstance(value, str):
        try:
            docs = [d for d in yaml.safe_load_all(value) if d is not None]
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" (line {mark.line + 1} of the manifest)" if mark is not None else ""
            where.fail(f"invalid YAML{at}: {' '.join(str(getattr(exc, 'problem', exc)).split())}")
        return [(where / i, as_mapping(where / i, d, null_ok=False)) for i, d in enumerate(docs)]
    if isinstance(value, Mapping):
        return [(where, dict(value))]
    return [(where / i, as_mapping(where / i, d, null_ok=False)) for i, d in enumerate(as_list(where, value))]


def _meta_name(w: Where, raw: dict) -> str:
    meta = as_mapping(w / "metadata", raw.get("metadata"), null_ok=False)
    if "name" not in meta:
        (w / "metadata").fail(f"{raw.get('kind')} has no metadata.name; expected a name")
    return as_str(w / "metadata" / "name", meta["name"], what="a name")


def _namespace(w: Where, meta: Mapping) -> str:
    return as_str(w, meta["namespace"], what="a namespace") if "namespace" in meta else DEFAULT_NAMESPACE


def _pod_spec(w: Where, spec: Mapping) -> dict:
    """nodeName, hostNetwork and required hostname anti-affinity of a pod spec."""
    out: dict = {}
    if spec.get("nodeName") is not None:
        out["node_name"] = as_str(w / "nodeName", spec["nodeName"], what="a node name")
    if "hostNetwork" in spec:
        out["host_network"] = as_bool(w / "hostNetwork", spec["hostNetwork"])
    affinity = as_mapping(w / "affinity", spec.get("affinity"))
    anti = as_mapping(w / "affinity" / "podAntiAffinity", affinity.get("podAntiAffinity"))
    terms = as_list(w / "affinity" / "podAntiAffinity" / "requiredDuringSchedulingIgnoredDuringExecution",
                    anti.get("requiredDuringSchedulingIgnoredDuringExecution"))
    selectors = []
    for i, term in enumerate(terms):
        tw = w / "affinity" / "podAntiAffinity" / "requiredDuringSchedulingIgnoredDuringExecution" / i
        term = as_mapping(tw, term, null_ok=False)
        topology = as_str(tw / "topologyKey", term.get("topologyKey"), what="a topology key")
        if topology != HOSTNAME_TOPOLOGY:
            continue  # zones are not modelled: every node is its own topology domain
        selectors.append(read_selector(tw / "labelSelector", term.get("labelSelector")))
    out["anti_affinity"] = tuple(selectors)
    return out


def _pod(w: Where, raw: dict, name: str) -> PodTemplate:
    meta = as_mapping(w / "metadata", raw.get("metadata"))
    spec = as_mapping(w / "spec", raw.get("spec"))
    return PodTemplate("Pod", _namespace(w / "metadata" / "namespace", meta), name,
                       read_string_map(w / "metadata" / "labels", meta.get("labels")),
                       read_string_map(w / "metadata" / "annotations", meta.get("annotations")),
                       **_pod_spec(w / "spec", spec))


def _surge(where: Where, value: object) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.endswith("%") and value[:-1].isdigit() and int(value[:-1]) <= 100:
        return value
    where.fail(f"{show(value)} is not a count >= 0 or a percentage; expected e.g. 1 or '25%'")


def _deployment(w: Where, raw: dict, name: str) -> PodTemplate:
    meta = as_mapping(w / "metadata", raw.get("metadata"))
    spec = as_mapping(w / "spec", raw.get("spec"))
    replicas = as_int(w / "spec" / "replicas", spec.get("replicas", 1), lo=0)
    template = as_mapping(w / "spec" / "template", spec.get("template"))
    tmeta = as_mapping(w / "spec" / "template" / "metadata", template.get("metadata"))
    tspec = as_mapping(w / "spec" / "template" / "spec", template.get("spec"))
    strategy = as_mapping(w / "spec" / "strategy", spec.get("strategy"))
    surge, unavailable = "25%", "25%"
    if strategy.get("type") == "Recreate":
        surge, unavailable = 0, "100%"
    rolling = as_mapping(w / "spec" / "strategy" / "rollingUpdate", strategy.get("rollingUpdate"))
    if "maxSurge" in rolling:
        surge = _surge(w / "spec" / "strategy" / "rollingUpdate" / "maxSurge", rolling["maxSurge"])
    if "maxUnavailable" in rolling:
        unavailable = _surge(w / "spec" / "strategy" / "rollingUpdate" / "maxUnavailable", rolling["maxUnavailable"])
    return PodTemplate("Deployment", _namespace(w / "metadata" / "namespace", meta), name,
                       read_string_map(w / "spec" / "template" / "metadata" / "labels", tmeta.get("labels")),
                       read_string_map(w / "spec" / "template" / "metadata" / "annotations", tmeta.get("annotations")),
                       replicas=replicas, max_surge=surge, max_unavailable=unavailable,
                       **_pod_spec(w / "spec" / "template" / "spec", tspec))


def _compact(w: Where, raw: dict) -> PodTemplate:
    check_keys(w, raw, COMPACT_KEYS)
    if ("pod" in raw) == ("deployment" in raw):
        w.fail(f"{show(raw)} needs exactly one of 'pod' or 'deployment' (or a manifest with 'kind')")
    kind, key = ("Pod", "pod") if "pod" in raw else ("Deployment", "deployment")
    name = as_str(w / key, raw[key], what=f"a {kind} name")
    labels = read_string_map(w / "labels", raw.get("labels")) or {"app": name}
    anti: tuple[LabelSelector, ...] = ()
    if "antiAffinity" in raw:
        value = raw["antiAffinity"]
        if isinstance(value, bool):
            anti = (LabelSelector(dict(labels)),) if value else ()
        else:
            anti = (read_selector(w / "antiAffinity", value),)
    replicas = as_int(w / "replicas", raw.get("replicas", 1), lo=0)
    if kind == "Pod" and "replicas" in raw:
        (w / "replicas").fail("a bare Pod has no replicas; expected a deployment for more than one pod")
    return PodTemplate(
        kind, as_str(w / "namespace", raw.get("namespace", DEFAULT_NAMESPACE), what="a namespace"), name, labels,
        read_string_map(w / "annotations", raw.get("annotations")),
        node_name=as_str(w / "nodeName", raw["nodeName"], what="a node name") if "nodeName" in raw else None,
        anti_affinity=anti,
        host_network=as_bool(w / "hostNetwork", raw["hostNetwork"]) if "hostNetwork" in raw else False,
        replicas=replicas,
        max_surge=_surge(w / "maxSurge", raw["maxSurge"]) if "maxSurge" in raw else "25%",
        max_unavailable=_surge(w / "maxUnavailable", raw["maxUnavailable"]) if "maxUnavailable" in raw else "25%",
    )


def scaled(value: int | str, replicas: int, *, round_up: bool) -> int:
    """A count, or a percentage of ``replicas`` (Kubernetes ``GetScaledValueFromIntOrPercent``).

    Parameters
    ----------
    value : int or str
        ``2`` or ``"25%"``.
    replicas : int
        What a percentage is of.
    round_up : bool
        Round a percentage up (``maxSurge``) or down (``maxUnavailable``).

    Returns
    -------
    int
    """
    if isinstance(value, str):
        pct = int(value[:-1])
        return -(-replicas * pct // 100) if round_up else replicas * pct // 100
    return int(value)


__all__ = ["PodTemplate", "PoolObject", "SkippedObject", "read_objects", "scaled"]
