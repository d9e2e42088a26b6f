"""Multi-pool pool selection for a pod: annotations, then pool selectors, then the default pool."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ipam_core.errors import AllocatorError
from ipam_core.scenario import defaults as d

if TYPE_CHECKING:  # annotations only: the model imports this module for Scenario.select_pool
    from ipam_core.scenario.model import IPAMSpec, NamespaceSpec

#: Synthetic pod labels Cilium adds before matching a pool's ``podSelector``
#: (cilium ``pkg/k8s/apis/cilium.io/const.go`` PodNamespaceLabel / PodNameLabel).
POD_NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
POD_NAME_LABEL = "io.kubernetes.pod.name"


class PoolSelectionError(AllocatorError):
    """No pool can be chosen for a pod: several pools match, or none while one is required.

    Upstream fails the pod's IP allocation with the same message; the pod stays pending.
    """


def _pool_by_annotations(annotations: Mapping[str, str], family: int) -> str | None:
    """Family-specific annotation first, then ``ipam.cilium.io/ip-pool``; empty values do not count."""
    specific = d.ANNOTATION_POOL_V4 if family == 4 else d.ANNOTATION_POOL_V6
    for key in (specific, d.ANNOTATION_POOL):
        if annotations.get(key, ""):
            return annotations[key]
    return None


def select_pool(ipam: IPAMSpec, family: int, *, namespace: NamespaceSpec | None = None,
                pod_annotations: Mapping[str, str] | None = None, pod_labels: Mapping[str, str] | None = None,
                pod_name: str = "") -> str:
    """Choose the multi-pool pool a pod's address of ``family`` comes from.

    Parameters
    ----------
    ipam : IPAMSpec
        The scenario's IPAM settings (its ``pools`` and ``default_pool``).
    family : {4, 6}
        Address family being allocated.
    namespace : NamespaceSpec, optional
        The pod's Namespace (labels and annotations); ``None`` means namespace
        ``default`` without labels or annotations.
    pod_annotations, pod_labels : mapping of str to str, optional
        The pod's annotations and labels.
    pod_name : str
        The pod's name (matched as label ``io.kubernetes.pod.name``); empty when the
        caller resolves one (namespace, annotation) combination for many pods.

    Returns
    -------
    str
        The pool name. It may name no configured pool: an annotation is returned as
        written, and upstream then fails the allocation from the missing pool.

    Raises
    ------
    PoolSelectionError
        More than one selector-matching pool ("multiple CiliumPodIPPools match"), or none
        while ``ipam.cilium.io/require-pool-match: "true"`` is on the pod or namespace.

    Notes
    -----
    Follows cilium ``pkg/ipam/metadata/manager.go`` ``GetIPPoolForPod`` [main]:

    1. pod annotation ``ipam.cilium.io/ipv4-pool`` (``ipv6-pool``), else ``ip-pool``;
    2. the same on the Namespace;
    3. pools with the family and at least one selector, whose ``podSelector`` matches the pod
       labels plus ``io.kubernetes.pod.namespace``/``io.kubernetes.pod.name`` and whose
       ``namespaceSelector`` matches the Namespace labels: exactly one match wins;
    4. no match: an error under ``require-pool-match: "true"``, else the default pool.

    Upstream walks a Go map (random order); matches are reported sorted here.
    """
    if family not in (4, 6):
        raise PoolSelectionError(f"invalid IP family: {family!r}; expected 4 or 6")
    # an undeclared namespace: "default", without labels or annotations
    ns_name, ns_labels, ns_annotations = (("default", {}, {}) if namespace is None
                                          else (namespace.name, namespace.labels, namespace.annotations))
    pod_annotations = pod_annotations or {}
    owner = f"{ns_name}/{pod_name or '*'}"
    for annotations in (pod_annotations, ns_annotations):
        chosen = _pool_by_annotations(annotations, family)
        if chosen is not None:
            return chosen
    labels = dict(pod_labels or {})
    labels[POD_NAMESPACE_LABEL] = ns_name
    labels[POD_NAME_LABEL] = pod_name
    matches = sorted(
        pool.name for pool in ipam.pools
        if pool.has_family(family) and pool.has_selector
        and (pool.pod_selector is None or pool.pod_selector.matches(labels))
        and (pool.namespace_selector is None or pool.namespace_selector.matches(ns_labels))
    )
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise PoolSelectionError(f"multiple CiliumPodIPPools match pod {owner} (family=ipv{family}): "
                                 f"{', '.join(matches)}; expected exactly one")
    for where, annotations in (("pod", pod_annotations), ("namespace", ns_annotations)):
        if annotations.get(d.ANNOTATION_REQUIRE_MATCH) == "true":
            raise PoolSelectionError(f"no matching CiliumPodIPPool found for pod {owner} (family=ipv{family}) and "
                                     f"require-pool-match annotation is set on {where}")
    return ipam.default_pool
