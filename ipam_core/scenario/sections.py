"""Readers for the scenario sections written in upstream vocabulary.

``cluster.kubeControllerManager`` (KCM flags), ``cilium`` (Helm values, IPAM subset)
and ``timing``. Each reader applies upstream defaults and the checks that need only
its own section; :mod:`ipam_core.scenario.rules` does the cross-section ones.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from ipam_core.addr import Network
from ipam_core.scenario import defaults as d
from ipam_core.scenario._values import (as_bool, as_cidr, as_duration, as_int, as_list, as_mapping, as_str,
                                        check_keys, kind_of, show)
from ipam_core.scenario._where import Where
from ipam_core.scenario.manifests import read_pool_family
from ipam_core.scenario.model import PoolSpec, Timing
from ipam_core.scenario.rules import check_disjoint, check_node_mask


# ---------------------------------------------------------------- kube-controller-manager flags
@dataclass(frozen=True)
class KCMFlags:
    """Resolved KCM node-IPAM flags."""

    cluster_cidrs: tuple[str, ...]
    node_mask_v4: int
    node_mask_v6: int
    allocate_node_cidrs: bool


def read_kcm(where: Where, value: object, families: tuple[int, ...]) -> KCMFlags:
    """Read kube-controller-manager flags (keys with or without a leading ``--``).

    Follows kubernetes ``cmd/kube-controller-manager/app/core.go`` (``setNodeCIDRMaskSizes``,
    ``validateCIDRs``) and ``pkg/controller/nodeipam/node_ipam_controller.go``.
    Without ``cluster-cidr``, kind's default pod subnet is used for each family Cilium enables.

    Raises
    ------
    ConfigError
        Unknown or repeated flag; more than 2 cluster CIDRs or 2 of one family; overlapping
        entries; ``node-cidr-mask-size`` with per-family flags or on a dual-stack cluster; a
        per-family flag for a family the cluster does not have; an impossible node mask.
    """
    raw = as_mapping(where, value)
    flags: dict[str, tuple[Where, object]] = {}
    for key, val in raw.items():
        if not isinstance(key, str):
            where.fail(f"key {show(key)} is {kind_of(key)}; expected a flag name")
        canon = key[2:] if key.startswith("--") else key
        if canon not in d.KCM_FLAGS:
            close = difflib.get_close_matches(canon, d.KCM_FLAGS, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            (where / key).fail(f"unknown flag {key!r}{hint}; expected one of: {', '.join(d.KCM_FLAGS)}")
        if canon in flags:
            (where / key).fail(f"flag {canon!r} is given twice (also as {flags[canon][0]}); expected it once")
        flags[canon] = (where / key, val)
        if source := where.source:  # let later checks find the line under the plain flag name
            line = source.lines.get((where / key).path)
            if line is not None:
                source.lines.setdefault((where / canon).path, line)

    cidr_where, cidr_value = flags.get("cluster-cidr", (where / "cluster-cidr", None))
    nets = _kcm_cidrs(cidr_where, cidr_value, families)
    dual = len(nets) == 2
    single_family = nets[0].version
    masks = {name: (w, _flag_int(w, v)) for name, (w, v) in flags.items() if name.startswith("node-cidr-mask-size")}
    plain = masks.get("node-cidr-mask-size")
    if plain and dual:
        plain[0].fail(f"{plain[1]}: usage of --node-cidr-mask-size is not allowed with dual-stack clusters; "
                      "expected node-cidr-mask-size-ipv4 / node-cidr-mask-size-ipv6")
    per_family = {4: masks.get("node-cidr-mask-size-ipv4"), 6: masks.get("node-cidr-mask-size-ipv6")}
    for family, entry in per_family.items():
        if entry is None:
            continue
        if plain:
            entry[0].fail(f"{entry[1]}: usage of --node-cidr-mask-size-ipv4 and --node-cidr-mask-size-ipv6 is not "
                          "allowed if --node-cidr-mask-size is set; expected one or the other")
        if not dual and single_family != family:
            entry[0].fail(f"{entry[1]}: usage of --node-cidr-mask-size-ipv{family} is not allowed for a single-stack "
                          f"IPv{single_family} cluster (cluster-cidr {cidr_value or str(nets[0])!r}); expected "
                          f"node-cidr-mask-size or node-cidr-mask-size-ipv{single_family}")
    resolved = {4: d.DEFAULT_KCM_NODE_MASK_V4, 6: d.DEFAULT_KCM_NODE_MASK_V6}
    for family in (4, 6):
        if per_family[family]:
            resolved[family] = per_family[family][1]
        elif plain and single_family == family:
            resolved[family] = plain[1]
    for net in nets:
        family = net.version
        entry = per_family[family] or (plain if plain and not dual else None)
        mask_where = entry[0] if entry else cidr_where
        mask_name = "" if entry else f"the default node-cidr-mask-size-ipv{family}"
        check_node_mask(mask_where, resolved[family], [(cidr_where, net)], family, "cluster CIDR", mask_name)
    allocate = True
    if "allocate-node-cidrs" in flags:
        w, v = flags["allocate-node-cidrs"]
        allocate = as_bool(w, v)
    return KCMFlags(tuple(str(n) for n in nets), resolved[4], resolved[6], allocate)


def _kcm_cidrs(where: Where, value: object, families: tuple[int, ...]) -> list[Network]:
    if value is None:
        return [as_cidr(where, d.DEFAULT_KCM_CLUSTER_CIDR_V4 if f == 4 else d.DEFAULT_KCM_CLUSTER_CIDR_V6)
                for f in families]
    if isinstance(value, (list, tuple)):
        items = [as_str(where / i, v, what="a CIDR") for i, v in enumerate(value)]
        text = ",".join(items)
    else:
        text = as_str(where, value, what="comma-separated CIDRs")
        items = text.split(",")
    if len(items) > d.KCM_MAX_CLUSTER_CIDRS:
        where.fail(f"{text!r} has {len(items)} CIDRs; expected at most {d.KCM_MAX_CLUSTER_CIDRS}, one per family "
                   "(kube-controller-manager supports one IPv4 and one IPv6 cluster CIDR)")
    nets = [as_cidr(where, item.strip(), what="cluster-cidr entry") for item in items]
    if len(nets) == 2 and nets[0].version == nets[1].version:
        check_disjoint([(where, nets[0]), (where, nets[1])], "cluster CIDRs")
        where.fail(f"{text!r} has two IPv{nets[0].version} CIDRs; expected a dual-stack pair (one IPv4, one IPv6): "
                   "kube-controller-manager allows two cluster CIDRs only for dual-stack")
    return nets


def _flag_int(where: Where, value: object) -> int:
    """A mask flag: an integer, or a string of digits as written on a command line."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    return as_int(where, value, lo=1, hi=128, what="a mask size from 1 to 32 (IPv4) or 128 (IPv6)")


# ---------------------------------------------------------------- Cilium Helm values
@dataclass(frozen=True)
class CiliumValues:
    """Resolved Cilium Helm values, with the parsed networks kept for cross checks."""

    mode: str
    ipv4: bool
    ipv6: bool
    health_ip: bool
    node_update_rate: tuple[Where, float] | None
    cluster_pool: dict[int, tuple[str, ...]]
    cluster_pool_mask: dict[int, int]
    auto_pools: list[tuple[Where, PoolSpec, dict]]
    pre_allocation: dict[str, int]
    default_pool: str


def read_cilium(where: Where, value: object) -> CiliumValues:
    """Read the IPAM subset of Cilium's Helm values, with Helm's defaults.

    Follows cilium ``install/kubernetes/cilium/values.yaml`` and, for the checks,
    ``pkg/ipam/allocator/clusterpool/clusterpool.go`` / ``cidralloc/cidralloc.go``
    (wrong family, overlapping entries, impossible mask).
    """
    values = as_mapping(where, value)
    check_keys(where, values, d.CILIUM_KEYS)
    ipv4 = _enabled(where / "ipv4", values.get("ipv4"), d.DEFAULT_IPV4, d.FAMILY_KEYS)
    ipv6 = _enabled(where / "ipv6", values.get("ipv6"), d.DEFAULT_IPV6, d.FAMILY_KEYS)
    health = _enabled(where / "endpointHealthChecking", values.get("endpointHealthChecking"), d.DEFAULT_HEALTH_IP,
                      d.HEALTH_KEYS)
    if not ipv4 and not ipv6:
        (where / "ipv4" / "enabled").fail("false, and cilium.ipv6.enabled is false too; expected at least one "
                                          "IP family enabled")
    w_ipam = where / "ipam"
    ipam = as_mapping(w_ipam, values.get("ipam"))
    check_keys(w_ipam, ipam, d.IPAM_KEYS)
    mode = d.DEFAULT_MODE
    if "mode" in ipam:
        mode = read_mode(w_ipam / "mode", ipam["mode"])
    rate = None
    if "ciliumNodeUpdateRate" in ipam:
        rate = (w_ipam / "ciliumNodeUpdateRate", as_duration(w_ipam / "ciliumNodeUpdateRate",
                                                             ipam["ciliumNodeUpdateRate"], zero_ok=True))
    w_op = w_ipam / "operator"
    op = as_mapping(w_op, ipam.get("operator"))
    check_keys(w_op, op, d.OPERATOR_KEYS)
    pools, masks = {}, {}
    for family, default_list, default_mask in ((4, d.DEFAULT_CLUSTER_POOL_V4, d.DEFAULT_CLUSTER_POOL_V4_MASK),
                                               (6, d.DEFAULT_CLUSTER_POOL_V6, d.DEFAULT_CLUSTER_POOL_V6_MASK)):
        list_key, mask_key = f"clusterPoolIPv{family}PodCIDRList", f"clusterPoolIPv{family}MaskSize"
        raw = as_list(w_op / list_key, op[list_key]) if list_key in op else list(default_list)
        nets = [(w_op / list_key / i, as_cidr(w_op / list_key / i, c, family))
                for i, c in enumerate(raw)]
        check_disjoint(nets, f"{list_key} entries", "cilium cidralloc: ErrCIDRCollision")
        bits = 32 if family == 4 else 128
        mask = as_int(w_op / mask_key, op[mask_key], lo=1, hi=bits) if mask_key in op else default_mask
        mask_where = w_op / mask_key if mask_key in op else w_op / list_key
        check_node_mask(mask_where, mask, nets, family, f"{list_key} entry",
                        "" if mask_key in op else f"the default {mask_key}")
        pools[family] = tuple(str(n) for _, n in nets)
        masks[family] = mask
    auto = _auto_pools(w_op / "autoCreateCiliumPodIPPools", op.get("autoCreateCiliumPodIPPools"))
    pre = read_pre_allocation(w_ipam / "multiPoolPreAllocation",
                              ipam.get("multiPoolPreAllocation", d.DEFAULT_PRE_ALLOCATION))
    default_pool = d.DEFAULT_POOL
    if "defaultPool" in ipam:
        default_pool = as_str(w_ipam / "defaultPool", ipam["defaultPool"], what="a pool name").strip()
    return CiliumValues(mode, ipv4, ipv6, health, rate, pools, masks, auto, pre, default_pool)


def read_mode(where: Where, value: object) -> str:
    """An IPAM mode from :data:`~ipam_core.scenario.defaults.ALL_MODES` (pool and cloud modes)."""
    if value not in d.ALL_MODES:
        close = difflib.get_close_matches(str(value), d.ALL_MODES, n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        where.fail(f"{show(value)} is not a known IPAM mode{hint}; expected one of: {', '.join(d.ALL_MODES)}")
    return value


def _enabled(where: Where, value: object, default: bool, keys: tuple[str, ...]) -> bool:
    section = as_mapping(where, value)
    check_keys(where, section, keys)
    return as_bool(where / "enabled", section["enabled"]) if "enabled" in section else default


def _auto_pools(where: Where, value: object) -> list[tuple[Where, PoolSpec, dict]]:
    """Helm ``ipam.operator.autoCreateCiliumPodIPPools``: ``{name: {ipv4: {cidrs, maskSize}, ipv6: ...}}``."""
    out = []
    for name, spec in as_mapping(where, value).items():
        w = where / str(name)
        name = as_str(w, name, what="a pool name")
        spec = as_mapping(w, spec, null_ok=False)
        check_keys(w, spec, ("ipv4", "ipv6"))
        if not spec:
            w.fail("{} has neither ipv4 nor ipv6; expected at least one of them")
        fam = {f: read_pool_family(w / f"ipv{f}", spec[f"ipv{f}"], f) if f"ipv{f}" in spec else ((), [], None)
               for f in (4, 6)}
        pool = PoolSpec(name, fam[4][0], fam[4][2], fam[6][0], fam[6][2])
        out.append((w, pool, {4: fam[4][1], 6: fam[6][1]}))
    return out


def read_pre_allocation(where: Where, value: object) -> dict[str, int]:
    """Multi-pool pre-allocation: ``"pool=N,pool=N"`` (the agent flag's form) or a mapping.

    Follows cilium ``--ipam-multi-pool-pre-allocation`` (default ``default=8``,
    ``pkg/defaults/defaults.go``). An empty value means that default, as upstream: the
    Helm chart leaves the flag out when the value is empty. ``default=0`` turns it off.
    """
    if value == "" or value == {}:
        value = d.DEFAULT_PRE_ALLOCATION
    if isinstance(value, str):
        out: dict[str, int] = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            pool, sep, count = item.partition("=")
            if not sep or not pool.strip() or not count.strip().isdigit():
                where.fail(f"{value!r}: item {item!r} is not pool=N; expected e.g. 'default=8,team-a=16'")
            if pool.strip() in out:
                where.fail(f"{value!r}: pool {pool.strip()!r} is listed twice; expected each pool once")
            out[pool.strip()] = int(count)
        return out
    mapping = as_mapping(where, value)
    return {as_str(where / str(k), k, what="a pool name"): as_int(where / str(k), v, lo=0)
            for k, v in mapping.items()}


# ---------------------------------------------------------------- timing
def read_timing(where: Where, value: object, helm_rate: tuple[Where, float] | None) -> Timing:
    """Read ``timing:`` (durations; defaults in :data:`~ipam_core.scenario.defaults.DEFAULT_TIMING`).

    ``ciliumNodeUpdateRate`` may be set here or as Helm ``cilium.ipam.ciliumNodeUpdateRate``, not both.
    Debounce-like delays may be 0; intervals the engine loops on must be positive.
    """
    section = as_mapping(where, value)
    check_keys(where, section, d.TIMING_KEYS)
    if helm_rate is not None and "ciliumNodeUpdateRate" in section:
        (where / "ciliumNodeUpdateRate").fail(f"{show(section['ciliumNodeUpdateRate'])} is also set as "
                                              f"{helm_rate[0]}; expected it in one place only")
    zero_ok = {"ciliumNodeUpdateRate", "operatorSyncInterval", "excessIPReleaseDelay"}
    got = {}
    for key, (default, _) in d.DEFAULT_TIMING.items():
        raw = section.get(key, default)
        got[key] = as_duration(where / key, raw, zero_ok=key in zero_ok)
    if helm_rate is not None:
        got["ciliumNodeUpdateRate"] = helm_rate[1]
    return Timing(
        cilium_node_update_rate_s=got["ciliumNodeUpdateRate"],
        multi_pool_refresh_s=got["multiPoolRefresh"],
        pending_allocation_ttl_s=got["pendingAllocationTTL"],
        operator_sync_interval_s=got["operatorSyncInterval"],
        pod_retry_interval_s=got["podRetryInterval"],
        pod_pending_timeout_s=got["podPendingTimeout"],
        excess_ip_release_delay_s=got["excessIPReleaseDelay"],
        ipam_resync_interval_s=got["ipamResyncInterval"],
        ipamd_pool_interval_s=got["ipamdPoolInterval"],
        ipamd_decrease_interval_s=got["ipamdDecreaseInterval"],
        cns_refresh_delay_s=got["cnsRefreshDelay"],
    )
