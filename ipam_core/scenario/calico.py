"""Read Calico ``IPPool`` and ``IPAMConfiguration`` manifests pasted into a scenario as they are.

Both API groups are accepted: ``projectcalico.org/v3`` (calicoctl, the Calico API server)
and ``crd.projectcalico.org/v1`` (what ``kubectl get ippools.crd.projectcalico.org -o yaml``
prints), whose IPAM settings kind is ``IPAMConfig``. Server-filled metadata and ``status``
are ignored; ``spec`` is checked strictly, following the IPPool validation of
projectcalico/calico ``libcalico-go/lib/validator/v3/validator.go`` (``validateIPPool``):
``blockSize`` defaults to 26 (IPv4) / 122 (IPv6) and must lie in 20-32 / 116-128, the CIDR
must be strictly masked and no smaller than a block, and enabled pools may not overlap.
``ipipMode`` / ``vxlanMode`` matter to IPAM only as far as they make calico-node take a
tunnel address per node; the other data-plane fields (``natOutgoing``, ...) are accepted and
ignored.

Objects of other kinds (``Namespace``, ``CiliumPodIPPool``) are handed back untouched for
``ipam_core.scenario.manifests`` to read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import yaml

from ipam_core.addr import overlaps
from ipam_core.errors import ConfigError
from ipam_core.scenario._values import (as_bool, as_cidr, as_duration, as_int, as_list, as_mapping, as_str,
                                        check_keys, show)
from ipam_core.scenario._where import Where
from ipam_core.scenario.calico_selector import CalicoSelector, parse_selector
from ipam_core.scenario.manifests import META_KEYS, OBJECT_KEYS

API_V3 = "projectcalico.org/v3"
API_CRD = "crd.projectcalico.org/v1"
KINDS = {"IPPool": (API_V3, API_CRD), "IPAMConfiguration": (API_V3, API_CRD), "IPAMConfig": (API_CRD,),
         "KubeControllersConfiguration": (API_V3, API_CRD)}
LIST_KINDS = ("IPPoolList", "IPAMConfigurationList", "IPAMConfigList", "KubeControllersConfigurationList")
#: Kinds this module leaves to ipam_core.scenario.manifests.
OTHER_KINDS = ("Namespace", "CiliumPodIPPool")

POOL_SPEC_KEYS = ("cidr", "blockSize", "nodeSelector", "namespaceSelector", "disabled", "assignmentMode",
                  "allowedUses", "ipipMode", "vxlanMode", "natOutgoing", "disableBGPExport", "awsSubnetID",
                  "ipip", "nat-outgoing")
KCC_SPEC_KEYS = ("logSeverityScreen", "healthChecks", "etcdV3CompactionPeriod", "prometheusMetricsPort",
                 "controllers", "debugProfilePort")
KCC_CONTROLLER_KEYS = ("node", "policy", "workloadEndpoint", "serviceAccount", "namespace", "loadBalancer")
KCC_NODE_KEYS = ("reconcilerPeriod", "syncLabels", "hostEndpoint", "leakGracePeriod")
#: kube-controllers' LeakGracePeriod default: leak candidates and empty blocks wait this long.
DEFAULT_LEAK_GRACE_S = 900.0
IPAM_CONFIG_KEYS = ("strictAffinity", "autoAllocateBlocks", "maxBlocksPerHost", "kubeVirtVMAddressPersistence")
ASSIGNMENT_MODES = ("Automatic", "Manual")
ALLOWED_USES = ("Workload", "Tunnel", "LoadBalancer")
ENCAP_MODES = ("Never", "Always", "CrossSubnet")
BLOCK_SIZE = {4: (26, 20, 32), 6: (122, 116, 128)}  # default, smallest prefix, largest prefix
#: Pod and namespace annotations naming the pools to use, a JSON list of names or CIDRs.
POOL_ANNOTATIONS = {4: "cni.projectcalico.org/ipv4pools", 6: "cni.projectcalico.org/ipv6pools"}


@dataclass(frozen=True)
class CalicoPool:
    """One Calico ``IPPool``.

    Attributes
    ----------
    name, cidr : str
    family : int
        4 or 6.
    block_size : int
        Prefix length of its blocks.
    node_selector, namespace_selector : CalicoSelector
    disabled : bool
    assignment_mode : str
        ``Automatic`` or ``Manual`` (only used when a pod names the pool).
    allowed_uses : tuple of str
    tunnel : bool
        ``ipipMode`` or ``vxlanMode`` is ``Always`` or ``CrossSubnet``: each node it selects
        takes a tunnel address from it (calico-node ``allocateip.go``).
    """

    name: str
    cidr: str
    family: int
    block_size: int
    node_selector: CalicoSelector = field(default_factory=lambda: parse_selector("all()"))
    namespace_selector: CalicoSelector = field(default_factory=lambda: parse_selector(""))
    disabled: bool = False
    assignment_mode: str = "Automatic"
    allowed_uses: tuple[str, ...] = ("Workload", "Tunnel")
    tunnel: bool = False


@dataclass(frozen=True)
class CalicoIPAMConfig:
    """The cluster's ``IPAMConfiguration`` (``default``); upstream's defaults when none is given.

    Attributes
    ----------
    strict_affinity : bool
    auto_allocate_blocks : bool
    max_blocks_per_host : int
        0: none configured (a request then gets 20, ipam.go ``autoAssign``).
    """

    strict_affinity: bool = False
    auto_allocate_blocks: bool = True
    max_blocks_per_host: int = 0


@dataclass(frozen=True)
class CalicoManifests:
    """What the Calico manifests of a scenario say.

    Attributes
    ----------
    pools : tuple of CalicoPool
        Sorted by name, as upstream lists them.
    ipam_config : CalicoIPAMConfig
    leak_grace_s : float
        ``KubeControllersConfiguration`` ``spec.controllers.node.leakGracePeriod`` (15 min by
        default; 0 turns leak GC and empty-block release off).
    others : tuple of (Where, dict)
        Objects of :data:`OTHER_KINDS`, for ``ipam_core.scenario.manifests``.
    namespace_pools : mapping
        ``(namespace, family) -> pool names`` from each Namespace's
        ``cni.projectcalico.org/ipv4pools`` / ``ipv6pools`` annotation (:func:`namespace_pools`).
    """

    pools: tuple[CalicoPool, ...]
    ipam_config: CalicoIPAMConfig
    leak_grace_s: float = DEFAULT_LEAK_GRACE_S
    others: tuple[tuple[Where, dict], ...] = ()
    namespace_pools: Mapping[tuple[str, int], tuple[str, ...]] = field(default_factory=dict)

    def pool(self, name: str) -> CalicoPool | None:
        """The pool named ``name``, or None."""
        return next((p for p in self.pools if p.name == name), None)

    def pod_pools(self, value: str) -> dict[int, tuple[str, ...]]:
        """:func:`pod_annotation_pools` of a workload's pod pool ``value`` (family -> pool names)."""
        return pod_annotation_pools(value, self)


def read_calico_manifests(where: Where, value: object) -> CalicoManifests:
    """Read the ``manifests:`` value (a list of objects or one multi-document YAML string).

    Parameters
    ----------
    where : Where
        Position of ``manifests``.
    value : list or str or None

    Returns
    -------
    CalicoManifests

    Raises
    ------
    ConfigError
        Unknown kind or key, bad CIDR, ``blockSize`` out of range, overlapping enabled pools,
        duplicate names, a second IPAM configuration, a bad selector.
    """
    objects = _objects(where, value)
    pools: list[tuple[Where, CalicoPool]] = []
    config: CalicoIPAMConfig | None = None
    grace: float | None = None
    others: list[tuple[Where, dict]] = []
    for w, obj in objects:
        kind = obj.get("kind")
        if kind in OTHER_KINDS:
            others.append((w, obj))
            continue
        check_keys(w, obj, OBJECT_KEYS)
        meta = as_mapping(w / "metadata", obj.get("metadata"), null_ok=False)
        check_keys(w / "metadata", meta, META_KEYS)
        name = as_str(w / "metadata" / "name", meta.get("name"), what="a name")
        if kind == "IPPool":
            pools.append((w, read_pool(w / "spec", name, obj.get("spec"))))
            continue
        if kind == "KubeControllersConfiguration":
            if grace is not None:
                (w / "metadata" / "name").fail("a second KubeControllersConfiguration; expected one")
            grace = read_leak_grace(w / "spec", obj.get("spec"))
            continue
        if name != "default":
            (w / "metadata" / "name").fail(f"{name!r} is not read by Calico; expected 'default' (the only "
                                           f"{kind} IPAM uses)")
        if config is not None:
            (w / "metadata" / "name").fail(f"a second {kind} 'default'; expected one IPAM configuration")
        config = read_ipam_config(w / "spec", obj.get("spec"))
    seen: dict[str, Where] = {}
    for w, pool in pools:
        if pool.name in seen:
            (w / "metadata" / "name").fail(f"IPPool {pool.name!r} is defined twice (also at {seen[pool.name]}); "
                                           "expected each name once")
        seen[pool.name] = w
    enabled = [(w, p) for w, p in pools if not p.disabled]
    for i, (w, pool) in enumerate(enabled):
        for _, other in enabled[:i]:
            if overlaps(pool.cidr, other.cidr):
                (w / "spec" / "cidr").fail(f"{pool.cidr} of IPPool {pool.name!r} overlaps {other.cidr} of IPPool "
                                           f"{other.name!r}; expected enabled pools that do not overlap")
    return CalicoManifests(tuple(sorted((p for _, p in pools), key=lambda p: p.name)),
                           config or CalicoIPAMConfig(), DEFAULT_LEAK_GRACE_S if grace is None else grace,
                           tuple(others))


def _objects(where: Where, value: object) -> list[tuple[Where, dict]]:
    """Flatten ``manifests`` (objects, ``*List`` objects, or a multi-document string) into (where, object)."""
    if value is None:
        return []
    if isinstance(value, str):
        try:
            items = [doc for doc in yaml.safe_load_all(value) if doc is not None]
        except yaml.YAMLError as exc:
            where.fail(f"invalid YAML in the manifests string: {' '.join(str(exc).split())}")
    else:
        items = as_list(where, value)
    out: list[tuple[Where, dict]] = []
    for i, raw in enumerate(items):
        w = where / i
        obj = as_mapping(w, raw, null_ok=False)
        kind = obj.get("kind")
        if kind == "List" or kind in LIST_KINDS:
            out.extend(_objects(w / "items", obj.get("items")))
        elif kind in OTHER_KINDS:
            out.append((w, obj))
        elif kind not in KINDS:
            (w / "kind").fail(f"unsupported kind {show(kind)}; expected IPPool, IPAMConfiguration (IPAMConfig in "
                              f"{API_CRD}), Namespace or CiliumPodIPPool")
        elif obj.get("apiVersion") not in KINDS[kind]:
            (w / "apiVersion").fail(f"{show(obj.get('apiVersion'))} is not an apiVersion of {kind}; expected "
                                    + " or ".join(KINDS[kind]))
        else:
            out.append((w, obj))
    return out


def read_pool(where: Where, name: str, value: object) -> CalicoPool:
    """Read an ``IPPool.spec``.

    Parameters
    ----------
    where : Where
        Position of ``spec``.
    name : str
    value : mapping

    Returns
    -------
    CalicoPool

    Raises
    ------
    ConfigError
        With the key, the value and what was expected.
    """
    spec = as_mapping(where, value, null_ok=False)
    check_keys(where, spec, POOL_SPEC_KEYS)
    if "cidr" not in spec:
        where.fail("missing 'cidr'; expected the pool's CIDR, e.g. 192.168.0.0/16")
    text = as_str(where / "cidr", spec["cidr"], what="a CIDR such as 192.168.0.0/16")
    cidr = as_cidr(where / "cidr", text)
    family = cidr.version
    default, lo, hi = BLOCK_SIZE[family]
    block = as_int(where / "blockSize", spec["blockSize"], lo=lo, hi=hi) if "blockSize" in spec else default
    disabled = as_bool(where / "disabled", spec["disabled"]) if "disabled" in spec else False
    if not disabled and cidr.prefixlen > block:
        (where / "cidr").fail(f"{cidr} is smaller than a /{block} block; expected a pool at least as large as "
                              "its blockSize (IP pool size is too small for use with Calico IPAM. It must be "
                              "equal to or greater than the block size.)")
    mode = as_str(where / "assignmentMode", spec.get("assignmentMode", "Automatic"))
    if mode not in ASSIGNMENT_MODES:
        (where / "assignmentMode").fail(f"{show(mode)} is not an assignment mode; expected Automatic or Manual")
    uses = tuple(as_str(where / "allowedUses" / i, u) for i, u in
                 enumerate(as_list(where / "allowedUses", spec.get("allowedUses", ["Workload", "Tunnel"]))))
    for i, use in enumerate(uses):
        if use not in ALLOWED_USES:
            (where / "allowedUses" / i).fail(f"{show(use)} is not an allowed use; expected one of "
                                             + ", ".join(ALLOWED_USES))
    modes = []
    for key in ("ipipMode", "vxlanMode"):
        mode_of = as_str(where / key, spec.get(key, "Never"))
        if mode_of not in ENCAP_MODES:
            (where / key).fail(f"{show(mode_of)} is not an encapsulation mode; expected one of "
                               + ", ".join(ENCAP_MODES))
        modes.append(mode_of)
    if modes[0] != "Never" and family == 6:
        (where / "ipipMode").fail(f"{modes[0]} on an IPv6 pool; expected Never (IPIP carries IPv4 only)")
    return CalicoPool(
        name=name, cidr=str(cidr), family=family, block_size=block, tunnel=modes != ["Never", "Never"],
        node_selector=_selector(where / "nodeSelector", spec.get("nodeSelector", "all()")),
        namespace_selector=_selector(where / "namespaceSelector", spec.get("namespaceSelector", "")),
        disabled=disabled, assignment_mode=mode, allowed_uses=uses,
    )


def _selector(where: Where, value: object) -> CalicoSelector:
    text = as_str(where, value, empty_ok=True, what="a Calico selector such as all()")
    try:
        return parse_selector(text)
    except ConfigError as exc:
        where.fail(str(exc))


def read_leak_grace(where: Where, value: object) -> float:
    """``spec.controllers.node.leakGracePeriod`` of a ``KubeControllersConfiguration`` (seconds).

    Parameters
    ----------
    where : Where
    value : mapping

    Returns
    -------
    float
        The grace period; 15 min when the node controller or the key is absent.
    """
    spec = as_mapping(where, value)
    check_keys(where, spec, KCC_SPEC_KEYS)
    controllers = as_mapping(where / "controllers", spec.get("controllers"))
    check_keys(where / "controllers", controllers, KCC_CONTROLLER_KEYS)
    node = as_mapping(where / "controllers" / "node", controllers.get("node"))
    check_keys(where / "controllers" / "node", node, KCC_NODE_KEYS)
    if "leakGracePeriod" not in node:
        return DEFAULT_LEAK_GRACE_S
    return as_duration(where / "controllers" / "node" / "leakGracePeriod", node["leakGracePeriod"], zero_ok=True)


def read_ipam_config(where: Where, value: object) -> CalicoIPAMConfig:
    """Read an ``IPAMConfiguration.spec`` (or ``IPAMConfig.spec``).

    Parameters
    ----------
    where : Where
    value : mapping

    Returns
    -------
    CalicoIPAMConfig

    Raises
    ------
    ConfigError
        Unknown key, wrong type, negative ``maxBlocksPerHost``, or a limit set while
        ``strictAffinity`` is false (Calico accepts a global limit only with strict affinity).
    """
    spec = as_mapping(where, value)
    check_keys(where, spec, IPAM_CONFIG_KEYS)
    strict = as_bool(where / "strictAffinity", spec["strictAffinity"]) if "strictAffinity" in spec else False
    auto = as_bool(where / "autoAllocateBlocks", spec["autoAllocateBlocks"]) if "autoAllocateBlocks" in spec else True
    limit = (as_int(where / "maxBlocksPerHost", spec["maxBlocksPerHost"], lo=0, hi=2**31 - 1)
             if "maxBlocksPerHost" in spec else 0)
    if limit > 0 and not strict:
        (where / "maxBlocksPerHost").fail(f"{limit} is set while strictAffinity is false; expected 0, or "
                                          "strictAffinity: true (Calico takes a global block limit only with "
                                          "strict affinity)")
    return CalicoIPAMConfig(strict_affinity=strict, auto_allocate_blocks=auto, max_blocks_per_host=limit)


def pool_annotation(where: Where, value: object, family: int, manifests: CalicoManifests) -> tuple[str, ...]:
    """Resolve a ``cni.projectcalico.org/ipv4pools`` (or ``ipv6pools``) annotation to pool names.

    Follows ipam.go ``determinePools``: each entry names a pool or its CIDR; a pool that does
    not exist, is disabled or is of the other family is an error at assignment time upstream
    (``the given pool (...) does not exist, or is not enabled``), refused here up front.

    Parameters
    ----------
    where : Where
        Position of the annotation.
    value : str
        The annotation's value, a JSON list.
    family : int
        4 or 6.
    manifests : CalicoManifests

    Returns
    -------
    tuple of str
        Pool names, in the annotation's order.
    """
    text = as_str(where, value)
    try:
        entries = json.loads(text)
    except json.JSONDecodeError:
        entries = None
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        where.fail(f"{text!r} is not a JSON list of strings; expected e.g. '[\"default-ipv{family}-ippool\"]'")
    names = []
    for entry in entries:
        pool = _named_pool(manifests, entry)
        if pool is None or pool.family != family:
            where.fail(f"{_not_enabled(entry)}; expected an enabled IPv{family} pool: "
                       f"{_enabled_names(manifests, family)}")
        names.append(pool.name)
    return tuple(names)


def _named_pool(manifests: CalicoManifests, entry: str) -> CalicoPool | None:
    """The enabled pool an annotation entry names (by name or CIDR), or None."""
    pool = manifests.pool(entry) or next((p for p in manifests.pools if p.cidr == entry), None)
    return None if pool is None or pool.disabled else pool


def _not_enabled(entry: str) -> str:
    # ipam.go determinePools' words (the CNI plugin hands it the pools' CIDRs)
    return f"the given pool ({entry}) does not exist, or is not enabled"


def _enabled_names(manifests: CalicoManifests, family: int | None = None) -> str:
    return ", ".join(p.name for p in manifests.pools if not p.disabled and family in (None, p.family)) or "none"


def pod_annotation_pools(value: str, manifests: CalicoManifests) -> dict[int, tuple[str, ...]]:
    """A pod's own pool request: the pools its ``cni.projectcalico.org/ipv4pools`` / ``ipv6pools`` name.

    The workload names a pod's pool once (``podPoolFractions``' keys, a replay file's ``pool``
    column); under Calico that is the pod's annotation: a pool name or CIDR, or a JSON list of
    them as the annotation holds it. Each pool goes to the annotation of its family; a family
    the pod does not name falls back to its namespace's annotation, then to the automatic
    pools (cni-plugin ``pkg/k8s/k8s.go``: a pod annotation replaces the namespace's).

    Parameters
    ----------
    value : str
        ``"blue"``, ``"10.250.0.0/22"`` or ``'["blue", "fd00:1::/64"]'``.
    manifests : CalicoManifests

    Returns
    -------
    dict
        Family (4, 6) -> pool names, in the order given.

    Raises
    ------
    ConfigError
        Not a JSON list of strings, or a pool that does not exist or is disabled (upstream
        fails the pod's every assignment: ``the given pool (...) does not exist, or is not
        enabled``).
    """
    entries: object = [value]
    if value.lstrip().startswith("["):
        try:
            entries = json.loads(value)
        except json.JSONDecodeError:
            entries = None
    if not isinstance(entries, list) or not entries or not all(isinstance(e, str) for e in entries):
        raise ConfigError(f"{value!r} is not a pool name or a JSON list of pool names; expected e.g. "
                          f"'default-ipv4-ippool' or '[\"default-ipv4-ippool\"]'")
    out: dict[int, tuple[str, ...]] = {}
    for entry in entries:
        pool = _named_pool(manifests, entry)
        if pool is None:
            raise ConfigError(f"{_not_enabled(entry)}; expected an enabled IPPool: {_enabled_names(manifests)}")
        out[pool.family] = (*out.get(pool.family, ()), pool.name)
    return out


def namespace_pools(where: Where, manifests: CalicoManifests, namespaces) -> CalicoManifests:
    """The manifests with each Namespace's pool annotation resolved (:func:`pool_annotation`).

    Parameters
    ----------
    where : Where
        Position of ``manifests`` (errors name the annotation under it).
    manifests : CalicoManifests
    namespaces : sequence of NamespaceSpec

    Returns
    -------
    CalicoManifests
        With ``namespace_pools`` filled.

    Raises
    ------
    ConfigError
        An annotation that is not a JSON list, or names a pool that does not exist, is
        disabled or is of the other family.
    """
    named = {}
    for ns in namespaces:
        for family, key in POOL_ANNOTATIONS.items():
            if key in ns.annotations:
                at = where / f"Namespace {ns.name}" / "metadata" / "annotations" / key
                named[ns.name, family] = pool_annotation(at, ns.annotations[key], family, manifests)
    return replace(manifests, namespace_pools=named)
