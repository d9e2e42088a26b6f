"""Read ``CiliumPodIPPool`` and ``Namespace`` manifests pasted into a scenario as they are.

``manifests:`` is a list of objects or one multi-document YAML string (what
``kubectl get -o yaml`` prints, ``kind: List`` included). Server-filled metadata
(``uid``, ``resourceVersion``, ``managedFields``...) and ``status`` are accepted and
ignored; anything under ``spec`` is checked strictly, since a typo there changes results.
"""

from __future__ import annotations

import re

import yaml

from ipam_core.addr import Network
from ipam_core.scenario import defaults as d
from ipam_core.scenario._values import (as_bool, as_cidr, as_int, as_list, as_mapping, as_str, check_keys,
                                        kind_of, show)
from ipam_core.scenario._where import Where
from ipam_core.scenario.model import SELECTOR_OPERATORS, LabelRequirement, LabelSelector, NamespaceSpec, PoolSpec
from ipam_core.scenario.rules import check_node_mask

POOL_API_VERSIONS = ("cilium.io/v2alpha1", "cilium.io/v2")
KINDS = {"CiliumPodIPPool": POOL_API_VERSIONS, "Namespace": ("v1",)}
LIST_KINDS = ("List", "CiliumPodIPPoolList", "NamespaceList")

OBJECT_KEYS = ("apiVersion", "kind", "metadata", "spec", "status")
META_KEYS = ("name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
             "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
             "ownerReferences", "finalizers", "managedFields")
POOL_SPEC_KEYS = ("ipv4", "ipv6", "podSelector", "namespaceSelector", "allowFirstIP", "allowLastIP")
POOL_FAMILY_KEYS = ("cidrs", "maskSize", "pool")
NAMESPACE_SPEC_KEYS = ("finalizers",)
SELECTOR_KEYS = ("matchLabels", "matchExpressions")
REQUIREMENT_KEYS = ("key", "operator", "values")

# DNS-1123 subdomain (pool names) and label (namespace names), as the API server checks them.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

#: A pool family as read: canonical CIDR strings, their networks (with keys), and the mask.
PoolFamily = tuple[tuple[str, ...], list[tuple[Where, Network]], int | None]


def read_manifests(where: Where, value: object, skip_kinds: tuple[str, ...] = ()
                   ) -> tuple[list[tuple[Where, PoolSpec, dict]], list[NamespaceSpec]]:
    """Read the ``manifests:`` value into pools and namespaces.

    Parameters
    ----------
    where : Where
        Position of ``manifests``.
    value : list or str or None
        The objects, or one multi-document YAML string.
    skip_kinds : tuple of str
        Kinds another reader takes (Calico's, ``ipam_core.scenario.calico``): passed over here.

    Returns
    -------
    (pools, namespaces)
        ``pools`` holds ``(where, PoolSpec, networks)`` with ``networks`` mapping family to
        ``[(where, network)]`` for overlap checks; ``namespaces`` the NamespaceSpecs.

    Raises
    ------
    ConfigError
        Unknown kind or key, bad CIDR, mask shorter than a pool CIDR, duplicate names.
    """
    objects = _objects(where, value, skip_kinds)
    pools: list[tuple[Where, PoolSpec, dict]] = []
    namespaces: list[NamespaceSpec] = []
    seen: dict[tuple[str, str], Where] = {}
    for w, obj in objects:
        kind = obj.get("kind")
        name = _name(w, obj, kind)
        if (kind, name) in seen:
            (w / "metadata" / "name").fail(f"{kind} {name!r} is defined twice (also at {seen[kind, name]}); "
                                           "expected each name once")
        seen[kind, name] = w
        if kind == "CiliumPodIPPool":
            pool, nets = read_pool_spec(w / "spec", name, obj.get("spec"))
            pools.append((w, pool, nets))
        else:
            meta = as_mapping(w / "metadata", obj.get("metadata"))
            labels = read_string_map(w / "metadata" / "labels", meta.get("labels"))
            annotations = read_annotations(w / "metadata" / "annotations", meta.get("annotations"))
            spec = as_mapping(w / "spec", obj.get("spec"))
            check_keys(w / "spec", spec, NAMESPACE_SPEC_KEYS)
            namespaces.append(NamespaceSpec(name, labels, annotations))
    return pools, namespaces


def _objects(where: Where, value: object, skip_kinds: tuple[str, ...] = ()) -> list[tuple[Where, dict]]:
    """Flatten ``manifests`` into ``(where, object)`` pairs, checking kind and apiVersion."""
    if value is None:
        return []
    if isinstance(value, str):
        try:
            docs = [doc for doc in yaml.safe_load_all(value) if doc is not None]
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" (line {mark.line + 1} of the string)" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            where.fail(f"invalid YAML in the manifests string{at}: {' '.join(str(problem).split())}")
        items = list(enumerate(docs))
    else:
        items = list(enumerate(as_list(where, value)))
    out: list[tuple[Where, dict]] = []
    for i, raw in items:
        w = where / i
        obj = as_mapping(w, raw, null_ok=False)
        kind = obj.get("kind")
        if kind in LIST_KINDS:
            check_keys(w, obj, ("apiVersion", "kind", "metadata", "items"))
            out.extend(_objects(w / "items", obj.get("items"), skip_kinds))
            continue
        if kind in skip_kinds:
            continue
        check_keys(w, obj, OBJECT_KEYS)
        if kind not in KINDS:
            (w / "kind").fail(f"unsupported kind {show(kind)}; expected CiliumPodIPPool or Namespace "
                              "(the only objects a scenario reads"
                              + (f", with {', '.join(k for k in skip_kinds if not k.endswith('List'))})" if skip_kinds else ")"))
        api = obj.get("apiVersion")
        if api not in KINDS[kind]:
            (w / "apiVersion").fail(f"{show(api)} is not an apiVersion of {kind}; expected "
                                    + " or ".join(KINDS[kind]))
        out.append((w, obj))
    return out


def _name(w: Where, obj: dict, kind: str) -> str:
    meta = as_mapping(w / "metadata", obj.get("metadata"), null_ok=False)
    check_keys(w / "metadata", meta, META_KEYS)
    if "name" not in meta:
        (w / "metadata").fail(f"{kind} has no metadata.name; expected a name")
    name = as_str(w / "metadata" / "name", meta["name"], what="a name")
    pattern, rule = ((_DNS_LABEL, "a DNS-1123 label") if kind == "Namespace"
                     else (_DNS_SUBDOMAIN, "a DNS-1123 subdomain"))
    limit = 63 if kind == "Namespace" else 253
    if not pattern.match(name) or len(name) > limit:
        (w / "metadata" / "name").fail(f"{name!r} is not a valid {kind} name; expected {rule} "
                                       f"(lowercase letters, digits, '-', at most {limit} characters)")
    return name


def read_pool_spec(where: Where, name: str, value: object) -> tuple[PoolSpec, dict[int, list[tuple[Where, Network]]]]:
    """Read a ``CiliumPodIPPool.spec`` (or an ``autoCreateCiliumPodIPPools`` entry).

    Follows the CRD in cilium ``pkg/k8s/apis/cilium.io/v2alpha1/ippool_types.go``:
    ``ipv4``/``ipv6`` each need ``cidrs`` (1..32) and ``maskSize``; selectors are optional.

    Returns
    -------
    (PoolSpec, dict)
        The pool and, per family, the parsed networks with their keys.
    """
    spec = as_mapping(where, value, null_ok=False)
    check_keys(where, spec, POOL_SPEC_KEYS)
    v4 = read_pool_family(where / "ipv4", spec.get("ipv4"), 4) if "ipv4" in spec else ((), [], None)
    v6 = read_pool_family(where / "ipv6", spec.get("ipv6"), 6) if "ipv6" in spec else ((), [], None)
    pool = PoolSpec(
        name=name,
        ipv4_cidrs=v4[0], ipv4_mask_size=v4[2],
        ipv6_cidrs=v6[0], ipv6_mask_size=v6[2],
        pod_selector=read_selector(where / "podSelector", spec["podSelector"]) if "podSelector" in spec else None,
        namespace_selector=(read_selector(where / "namespaceSelector", spec["namespaceSelector"])
                            if "namespaceSelector" in spec else None),
        allow_first_ip=as_bool(where / "allowFirstIP", spec["allowFirstIP"]) if "allowFirstIP" in spec else False,
        allow_last_ip=as_bool(where / "allowLastIP", spec["allowLastIP"]) if "allowLastIP" in spec else False,
    )
    return pool, {4: v4[1], 6: v6[1]}


def read_pool_family(where: Where, value: object, family: int) -> PoolFamily:
    """Read ``spec.ipv4`` / ``spec.ipv6`` of a pool: CIDRs of the family and a mask that fits them."""
    spec = as_mapping(where, value, null_ok=False)
    check_keys(where, spec, POOL_FAMILY_KEYS)
    if "pool" in spec:
        (where / "pool").fail("per-CIDR reserved ranges are not supported yet; expected only cidrs and maskSize")
    for key in ("cidrs", "maskSize"):
        if key not in spec:
            where.fail(f"missing {key!r}; expected both cidrs and maskSize (CiliumPodIPPool CRD)")
    raw = as_list(where / "cidrs", spec["cidrs"], null_ok=False)
    if not 1 <= len(raw) <= d.POOL_MAX_CIDRS:
        (where / "cidrs").fail(f"has {len(raw)} CIDRs; expected 1 to {d.POOL_MAX_CIDRS} (CiliumPodIPPool CRD)")
    nets = [(where / "cidrs" / i, as_cidr(where / "cidrs" / i, c, family)) for i, c in enumerate(raw)]
    bits = 32 if family == 4 else 128
    mask = as_int(where / "maskSize", spec["maskSize"], lo=1, hi=bits)
    check_node_mask(where / "maskSize", mask, nets, family, "pool CIDR")
    return tuple(str(n) for _, n in nets), nets, mask


def read_selector(where: Where, value: object) -> LabelSelector:
    """Read a Kubernetes ``LabelSelector`` (``matchLabels``, ``matchExpressions``).

    Follows kubernetes ``apimachinery/pkg/apis/meta/v1/helpers.go`` ``LabelSelectorAsSelector``:
    ``In``/``NotIn`` need values, ``Exists``/``DoesNotExist`` must have none.
    """
    spec = as_mapping(where, value)
    check_keys(where, spec, SELECTOR_KEYS)
    labels = read_string_map(where / "matchLabels", spec.get("matchLabels"))
    reqs = []
    for i, raw in enumerate(as_list(where / "matchExpressions", spec.get("matchExpressions"))):
        w = where / "matchExpressions" / i
        expr = as_mapping(w, raw, null_ok=False)
        check_keys(w, expr, REQUIREMENT_KEYS)
        key = as_str(w / "key", expr.get("key"), what="a label key")
        op = expr.get("operator")
        if op not in SELECTOR_OPERATORS:
            (w / "operator").fail(f"{show(op)} is not a label selector operator; expected one of "
                                  + ", ".join(SELECTOR_OPERATORS))
        values = tuple(as_str(w / "values" / j, v, empty_ok=True, what="a label value")
                       for j, v in enumerate(as_list(w / "values", expr.get("values"))))
        if op in ("In", "NotIn") and not values:
            (w / "values").fail(f"operator {op} needs at least one value; expected a non-empty list")
        if op in ("Exists", "DoesNotExist") and values:
            (w / "values").fail(f"{show(list(values))} given with operator {op}; expected no values")
        reqs.append(LabelRequirement(key, op, values))
    return LabelSelector(labels, tuple(reqs))


def read_string_map(where: Where, value: object) -> dict[str, str]:
    """Labels or annotations: a mapping of strings to strings (unquoted ``1``/``true`` are refused)."""
    out = {}
    for key, val in as_mapping(where, value).items():
        if not isinstance(key, str):
            where.fail(f"key {show(key)} is {kind_of(key)}; expected a string key (quote it)")
        out[key] = as_str(where / key, val, empty_ok=True)
    return out


def read_annotations(where: Where, value: object) -> dict[str, str]:
    """Annotations, refusing a misspelt ``ipam.cilium.io/`` one (upstream would silently ignore it)."""
    notes = read_string_map(where, value)
    for key, val in notes.items():
        if key.startswith("ipam.cilium.io/"):
            check_keys(where, {key: val}, d.KNOWN_IPAM_ANNOTATIONS)
        if key == d.ANNOTATION_REQUIRE_MATCH and val not in ("true", "false"):
            (where / key).fail(f"{val!r} is not 'true' or 'false'; upstream honours only the exact string "
                               "\"true\" and would treat this as false")
    return notes
