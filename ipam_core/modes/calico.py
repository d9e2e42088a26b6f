"""Calico IPAM (``calico-ipam`` CNI plugin with kube-controllers), projectcalico/calico v3.31.7.

IP pools are cut into small blocks (/26 by default) that nodes claim and hold by
affinity. A node's pods get addresses from its own blocks first, in datastore order and
in each block from the front of a queue of free ordinals (released ordinals go to the
back); a node whose blocks are full claims a new one, below ``maxBlocksPerHost``, searching
the pool from a start seeded by the FNV hash of its hostname; when no block can be
claimed (not even an empty block of another node claimed a minute ago) it borrows an
address from another node's block, unless ``strictAffinity`` is set. kube-controllers
releases a node's empty blocks after the grace period (all but its last), the blocks of
deleted nodes, and leaked addresses.

The rules are compiled (:mod:`ipam_core.modes.calico_rules`, kube-controllers' passes in
:mod:`ipam_core.modes.calico_controllers`) over plain numpy tables
(:mod:`ipam_core.modes.calico_tables`); this module holds the mode's registry entry, the
scenario check, and the Python views of the tables (error texts, per-node rows, the
``calicoctl ipam show --show-blocks`` listing). docs/calico.md says what is modelled.

The engine runs it through :mod:`ipam_core.modes.calico_hooks` (``layout`` names the
blocks for the engine's tables, ``engine_tables`` builds the allocator's tables for a run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ipam_core.addr import parse_cidr
from ipam_core.engine.layout import POLICY_CALICO, Layout, SetSpec
from ipam_core.errors import ConfigError
from ipam_core.modes import calico_hooks  # noqa: F401 (registers Calico's rules with the loop)
from ipam_core.modes.calico_controllers import (gc_leaks, mark_leaked, next_block_release, node_deleted,
                                                node_metrics, release_empty_blocks)
from ipam_core.modes.calico_rules import assign, claim_block, node_added, release
from ipam_core.modes.calico_tables import (ADDR_SHIFT, CFG_MAX_BLOCKS, DEFAULT_MAX_BLOCKS, DEFAULT_SYNC_PERIOD_S,
                                           ERROR_TEXT, F_GRACE, K_ALLOCS, K_BLOCK_RELEASES, K_BORROWS,
                                           K_CLAIMS, K_FAILS, K_LEAKS_GC, K_RECLAIMS, K_RELEASES, NM_NAMES,
                                           NM_NCOL, S_DELAY_COUNT, S_DELAY_MAX, S_DELAY_SUM, CalicoTables,
                                           PoolRule, block_network, new_tables, unpack)
from ipam_core.modes.spec import RULES_CALICO, ModeSpec
from ipam_core.workloads.events import OP_POD_ADD

NAME = "calico"
UPSTREAM = (
    "projectcalico/calico libcalico-go/lib/ipam/ipam.go",
    "projectcalico/calico libcalico-go/lib/ipam/ipam_block.go",
    "projectcalico/calico libcalico-go/lib/ipam/ipam_block_reader_writer.go",
    "projectcalico/calico kube-controllers/pkg/controllers/node/ipam.go",
)
CALICO_VERSION = "v3.31.7"
#: Blocks of at most 2**62: the tables index blocks in 64 bits (calico_tables.new_tables refuses more).
_MAX_BLOCKS = 1 << 62


def pool_rules(pools: Sequence) -> tuple[PoolRule, ...]:
    """The allocator's view of the scenario's pools.

    Parameters
    ----------
    pools : sequence of ipam_core.scenario.calico.CalicoPool
        Sorted by name.

    Returns
    -------
    tuple of PoolRule
    """
    return tuple(PoolRule(name=p.name, cidr=parse_cidr(p.cidr), block_size=p.block_size, enabled=not p.disabled,
                          automatic=p.assignment_mode == "Automatic", workload="Workload" in p.allowed_uses)
                 for p in pools)


def automatic_row(pools: Sequence, family: int, namespace_labels: Mapping[str, str]) -> tuple[tuple[int, ...], bool]:
    """The pools a pod without pool annotation may use (ipam.go ``determinePools``).

    Parameters
    ----------
    pools : sequence of CalicoPool
        Sorted by name.
    family : int
        4 or 6.
    namespace_labels : mapping
        Labels of the pod's namespace, for each pool's ``namespaceSelector``.

    Returns
    -------
    (pool indexes, explicit)
        A poolset row: enabled, Automatic, Workload pools of the family whose namespace
        selector matches; node selectors are applied per node by the compiled rules.
    """
    ids = tuple(i for i, p in enumerate(pools) if p.family == family and not p.disabled
                and p.assignment_mode == "Automatic" and "Workload" in p.allowed_uses
                and p.namespace_selector.matches(namespace_labels))
    return ids, False


def explicit_row(pools: Sequence, names: Sequence[str]) -> tuple[tuple[int, ...], bool]:
    """A poolset row for pools named by a pod's or namespace's ``cni.projectcalico.org/ipv4pools``.

    Parameters
    ----------
    pools : sequence of CalicoPool
    names : sequence of str
        Pool names, in the annotation's order (``scenario.calico.pool_annotation``).

    Returns
    -------
    (pool indexes, explicit)
    """
    index = {p.name: i for i, p in enumerate(pools)}
    return tuple(index[n] for n in names), True


def tunnel_row(pools: Sequence, family: int) -> tuple[tuple[int, ...], bool]:
    """The pools a node takes its IPIP / VXLAN tunnel address from, when it starts.

    Follows calico-node ``pkg/allocateip/allocateip.go``: enabled pools of the family with
    ``ipipMode`` or ``vxlanMode`` on and ``Tunnel`` among their ``allowedUses``; the compiled
    rules keep those whose ``nodeSelector`` selects the node. The address comes from the
    node's blocks like a pod's (usually its first block, which it then never lets go while
    the node lives).

    Parameters
    ----------
    pools : sequence of CalicoPool
    family : int
        4 or 6.

    Returns
    -------
    (pool indexes, explicit)
        Empty when no pool of the family tunnels: the node takes no tunnel address.
    """
    return tuple(i for i, p in enumerate(pools) if p.family == family and not p.disabled and p.tunnel
                 and "Tunnel" in p.allowed_uses), False


def build_tables(manifests, node_names: Sequence[str], *, node_labels: Sequence[Mapping[str, str]] | None = None,
                 poolsets: Sequence[tuple[tuple[int, ...], bool]] | None = None,
                 block_capacity: int | None = None) -> tuple[CalicoTables, tuple[PoolRule, ...]]:
    """Allocator tables for a scenario's Calico manifests and nodes.

    Parameters
    ----------
    manifests : ipam_core.scenario.calico.CalicoManifests
    node_names : sequence of str
        Node id -> hostname.
    node_labels : sequence of mappings, optional
        Node id -> labels, for the pools' ``nodeSelector`` (default: no labels).
    poolsets : sequence of rows, optional
        Pool choices (:func:`automatic_row`, :func:`explicit_row`); default: the automatic
        IPv4 pools (row 0) and IPv6 pools (row 1) for a namespace without labels.
    block_capacity : int, optional

    Returns
    -------
    (CalicoTables, tuple of PoolRule)
    """
    pools = manifests.pools
    rules = pool_rules(pools)
    labels = node_labels if node_labels is not None else [{} for _ in node_names]
    ok = np.array([[p.node_selector.matches(lab) for p in pools] for lab in labels], dtype=np.int8)
    if poolsets is None:
        poolsets = [automatic_row(pools, 4, {}), automatic_row(pools, 6, {})]
    cfg = manifests.ipam_config
    tables = new_tables(rules, node_names, strict_affinity=cfg.strict_affinity,
                        auto_allocate_blocks=cfg.auto_allocate_blocks, max_blocks_per_host=cfg.max_blocks_per_host,
                        leak_grace_s=manifests.leak_grace_s, poolsets=poolsets,
                        node_pool_ok=ok.reshape(len(node_names), len(pools)), block_capacity=block_capacity)
    return tables, rules


def sync_period(tables: CalicoTables) -> float:
    """kube-controllers' periodic IPAM sync: half the grace period, 5 min without one.

    Parameters
    ----------
    tables : CalicoTables

    Returns
    -------
    float
        Seconds.
    """
    grace = float(tables.fcfg[F_GRACE])
    return grace / 2 if grace > 0 else DEFAULT_SYNC_PERIOD_S


def error_message(tables: CalicoTables, rules: Sequence[PoolRule], code: int, *, node: str, poolset: int) -> str:
    """Upstream's text for a failed :func:`assign` (negative return value).

    Parameters
    ----------
    tables : CalicoTables
    rules : sequence of PoolRule
    code : int
        The ``E_*`` code.
    node : str
        Hostname.
    poolset : int
        The row the request used.

    Returns
    -------
    str
    """
    ids = [int(i) for i in tables.poolset[poolset] if i >= 0]
    family = 6 if ids and rules[ids[0]].family == 1 else 4
    limit = int(tables.cfg[CFG_MAX_BLOCKS]) or DEFAULT_MAX_BLOCKS
    return ERROR_TEXT[code].format(node=node, limit=limit, family=family,
                                   pools=" ".join(str(rules[i].cidr) for i in ids),
                                   capacity=tables.blk_used.shape[0])


def address_of(tables: CalicoTables, rules: Sequence[PoolRule], packed: int):
    """The IP address of a packed address.

    Parameters
    ----------
    tables : CalicoTables
    rules : sequence of PoolRule
    packed : int

    Returns
    -------
    ipaddress.IPv4Address or ipaddress.IPv6Address
    """
    slot, ordinal = unpack(int(packed))
    block = block_network(rules, int(tables.blk_pool[slot]), int(tables.blk_index[slot]))
    return block.network_address + ordinal


def node_cidrs(tables: CalicoTables, rules: Sequence[PoolRule], node: int) -> list[str]:
    """The node's affine blocks, in the order its allocations try them (``cidrs`` of nodes.arrow).

    Parameters
    ----------
    tables : CalicoTables
    rules : sequence of PoolRule
    node : int

    Returns
    -------
    list of str
    """
    slots = tables.node_blk[node, :tables.node_nblk[node]]
    return [str(block_network(rules, int(tables.blk_pool[s]), int(tables.blk_index[s]))) for s in slots]


def node_rows(tables: CalicoTables) -> dict[str, np.ndarray]:
    """Per node and family (arrays [nodes, 2]): blocks, empty blocks, used, free, stranded, borrowed, lent.

    Parameters
    ----------
    tables : CalicoTables

    Returns
    -------
    dict of str to numpy.ndarray
        Keys :data:`~ipam_core.modes.calico_tables.NM_NAMES`.
    """
    out = np.zeros((tables.node_nblk.shape[0], 2, NM_NCOL), dtype=np.int64)
    node_metrics(tables, out)
    return {name: out[:, :, i] for i, name in enumerate(NM_NAMES)}


def show_blocks(tables: CalicoTables, rules: Sequence[PoolRule], node_names: Sequence[str]) -> list[dict]:
    """Rows like ``calicoctl ipam show --show-blocks`` prints, one per block, in address order.

    Parameters
    ----------
    tables : CalicoTables
    rules : sequence of PoolRule
    node_names : sequence of str

    Returns
    -------
    list of dict
        ``block`` (CIDR), ``affinity`` (``host:<name>`` or ``""``), ``size``, ``in_use``,
        ``free``, ``borrowed_out`` (in use by pods of other nodes).
    """
    rows = []
    for slot in np.flatnonzero(tables.blk_used):
        block = block_network(rules, int(tables.blk_pool[slot]), int(tables.blk_index[slot]))
        node = int(tables.blk_node[slot])
        size, free = int(tables.blk_size[slot]), int(tables.blk_nfree[slot])
        rows.append({"block": str(block), "affinity": f"host:{node_names[node]}" if node >= 0 else "",
                     "size": size, "in_use": size - free, "free": free,
                     "borrowed_out": int(tables.blk_foreign[slot])})
    rows.sort(key=lambda r: (":" in r["block"], parse_cidr(r["block"]).network_address.packed))
    return rows


def cluster_counts(tables: CalicoTables) -> dict[str, float]:
    """Cumulative counts since the tables were made, and the empty-block release delay.

    Parameters
    ----------
    tables : CalicoTables

    Returns
    -------
    dict
        ``block_claims``, ``block_reclaims``, ``block_releases``, ``ip_allocs``, ``ip_borrows``,
        ``ip_alloc_failures``, ``ip_releases``, ``leaks_collected``, ``empty_block_release_mean_s``,
        ``empty_block_release_max_s`` (0 when none was released).
    """
    c, s = tables.counters, tables.stats
    n = s[:, S_DELAY_COUNT].sum()
    return {"block_claims": int(c[K_CLAIMS]), "block_reclaims": int(c[K_RECLAIMS]),
            "block_releases": int(c[K_BLOCK_RELEASES]), "ip_allocs": int(c[K_ALLOCS]),
            "ip_borrows": int(c[K_BORROWS]), "ip_alloc_failures": int(c[K_FAILS]),
            "ip_releases": int(c[K_RELEASES]), "leaks_collected": int(c[K_LEAKS_GC]),
            "empty_block_release_mean_s": float(s[:, S_DELAY_SUM].sum() / n) if n else 0.0,
            "empty_block_release_max_s": float(s[:, S_DELAY_MAX].max())}


def trace_columns(tables: CalicoTables, rules: Sequence[PoolRule]) -> dict[int, dict[str, int]]:
    """The trace.arrow pool columns per family, in the words of docs/dev/contracts.md.

    A block is what a node CIDR is to the other modes: ``node_cidrs`` counts blocks,
    ``addrs_carved`` the addresses inside them, ``addrs_idle`` their free addresses (on
    whichever node holds them), ``carvable_node_cidrs`` the blocks no one has claimed. The
    cumulative counts (``cidr_carves``, ``ip_allocs``, ...) are :func:`cluster_counts`, for
    both families together.

    Parameters
    ----------
    tables : CalicoTables
    rules : sequence of PoolRule

    Returns
    -------
    dict
        Family (4, 6) -> column -> value: ``addrs_pool``, ``addrs_carved``, ``addrs_used``,
        ``addrs_idle``, ``addrs_uncarved``, ``node_cidrs``, ``carvable_node_cidrs``,
        ``affine_blocks``, ``empty_affine_blocks``, ``borrowed``.
    """
    used = tables.blk_used != 0
    family = np.where(used, tables.pool_family[np.maximum(tables.blk_pool, 0)], -1)
    size = tables.blk_size.astype(np.int64)
    free = tables.blk_nfree.astype(np.int64)
    affine = used & (tables.blk_node >= 0)
    out = {}
    for fam, version in ((0, 4), (1, 6)):
        mine = family == fam
        pool_addrs = sum(r.cidr.num_addresses for r in rules if r.family == fam and r.enabled)
        pool_blocks = sum(r.n_blocks for r in rules if r.family == fam and r.enabled)
        carved = int(size[mine].sum())
        out[version] = {
            "addrs_pool": pool_addrs, "addrs_carved": carved, "addrs_used": int((size - free)[mine].sum()),
            "addrs_idle": int(free[mine].sum()), "addrs_uncarved": pool_addrs - carved,
            "node_cidrs": int(mine.sum()), "carvable_node_cidrs": pool_blocks - int(mine.sum()),
            "affine_blocks": int((mine & affine).sum()),
            "empty_affine_blocks": int((mine & affine & (free == size)).sum()),
            "borrowed": int(tables.node_borrowed[:, fam].sum()),
        }
    return out


def check(ipam, root) -> None:
    """What the mode needs: for each enabled family an enabled IPPool that pods may use automatically.

    Parameters
    ----------
    ipam : object
        The scenario's IPAM settings; reads ``ipam.families`` (4 and/or 6) and ``ipam.calico``
        (:class:`ipam_core.scenario.calico.CalicoManifests`).
    root : ipam_core.scenario._where.Where
        The document root: errors name its keys.

    Raises
    ------
    ConfigError
        A family with no usable pool: every pod would fail with "no configured Calico pools
        for node ..." (ipam.go ``prepareAffinityBlocksForHost``).
    """
    pools = ipam.calico.pools if ipam.calico is not None else ()
    for family in ipam.families:
        usable = [p for p in pools if p.family == family and not p.disabled and p.assignment_mode == "Automatic"
                  and "Workload" in p.allowed_uses]
        if not usable:
            listed = ", ".join(f"{p.name} ({p.cidr})" for p in pools) or "none"
            (root / "manifests").fail(
                f"no enabled Automatic IPv{family} IPPool for workloads (pools: {listed}) while IPv{family} is "
                f"enabled; expected one, else every pod fails with 'no configured Calico pools for node' "
                f"(needed by mode {NAME})")


def _enabled_pools(scenario) -> list[tuple[int, object]]:
    """(index, pool) of the enabled pools of the enabled families, IPv4 first, each family by name."""
    pools = scenario.ipam.calico.pools
    return sorted(((i, p) for i, p in enumerate(pools) if not p.disabled and p.family in scenario.ipam.families),
                  key=lambda ip: (ip[1].family, ip[1].name))


def layout(scenario) -> Layout:
    """The engine's view of the pools: one set per enabled pool, cut at its block size.

    The engine's own tables hold no block (:mod:`ipam_core.modes.calico_hooks` keeps them in
    :class:`CalicoTables`); the sets name the blocks in nodes.arrow and give ``addrs_pool``.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario

    Returns
    -------
    Layout
    """
    families = tuple(0 if f == 4 else 1 for f in scenario.ipam.families)
    sets = tuple(SetSpec(pool=0, network=parse_cidr(p.cidr), node_mask=p.block_size)
                 for _, p in _enabled_pools(scenario))
    return Layout(mode=NAME, policy=POLICY_CALICO, families=families, pool_names=("calico",), pre_allocation=(0,),
                  sets=sets, default_pool=0, revert_partial=False)


def _namespace_rows(scenario, workload, pools, rows: dict) -> np.ndarray:
    """int32 [namespaces, 2]: the poolset row of each workload namespace per family (ipam.go ``determinePools``)."""
    out = np.full((max(len(workload.namespaces), 1), 2), -1, dtype=np.int32)
    named = scenario.ipam.calico.namespace_pools  # the loader resolved each annotation to pool names
    for n, ns_name in enumerate(workload.namespaces):
        ns = scenario.namespace(ns_name)
        for family in scenario.ipam.families:
            if (ns_name, family) in named:
                row = explicit_row(pools, named[ns_name, family])
            else:
                row = automatic_row(pools, family, ns.labels)
            out[n, 0 if family == 4 else 1] = rows.setdefault(row, len(rows))
    return out


def _pod_annotation_rows(scenario, workload, adds: np.ndarray, pools, rows: dict, pod_rows: np.ndarray) -> None:
    """Pods that name their pools (the workload's ``pool``): that family's row is their annotation's.

    Follows cni-plugin ``pkg/k8s/k8s.go``: a pod's ``cni.projectcalico.org/ipv4pools`` (or
    ``ipv6pools``) replaces its namespace's; a family the pod does not name keeps the
    namespace's choice. One pass per distinct pool value, spread to its pods with numpy.

    Raises
    ------
    ConfigError
        A pool value naming no enabled IPPool (``the given pool (...) does not exist, or is not enabled``).
    """
    if not workload.pool_names or adds.size == 0:
        return
    pod_pool = workload.pool.take(adds)
    families = {f: 0 if f == 4 else 1 for f in scenario.ipam.families}
    for value in np.unique(pod_pool[pod_pool >= 0]).tolist():
        name = workload.pool_names[value]
        try:
            named = scenario.ipam.calico.pod_pools(name)
        except ConfigError as exc:
            raise ConfigError(f"pod pool {name!r} (the pod's cni.projectcalico.org/ipv4pools): {exc}") from None
        pods = workload.pod.take(adds[pod_pool == value])
        for family, names in named.items():
            if family in families:
                pod_rows[pods, families[family]] = rows.setdefault(explicit_row(pools, names), len(rows))


def block_capacity(scenario, pools) -> int:
    """Block slots for a run: every node full of its smallest blocks plus one partly used block per pool.

    A node claims a block only when its blocks of the pod's pools are full, so it never holds more
    than ``ceil((maxPods + 1) / size) + 1`` blocks of a pool (its pods and tunnel address in the
    smallest blocks, one more being emptied); the engine stops with a plain error if a run needs more.
    """
    per_node = sum(-(-(scenario.cluster.max_pods + 1) // (1 << p.block_bits)) + 1
                   for p in pools if p.enabled and p.family in (0 if f == 4 else 1 for f in scenario.ipam.families))
    total = sum(p.n_blocks for p in pools if p.enabled)
    return int(max(1, min(total, scenario.cluster.nodes * max(per_node, 1) + 64, 1 << 22)))


def engine_tables(scenario, workload):
    """What :func:`ipam_core.modes.calico_hooks.prepare` needs for one run.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
    workload : ipam_core.workloads.Workload

    Returns
    -------
    tuple
        ``(tables, set_of_pool, pod_rows, tunnel_rows, pool_blocks)``: the allocator's tables
        (one poolset row per distinct pool choice of the workload's namespaces, then the tunnel
        rows, then the pods' own annotations; node selectors evaluated against
        ``cluster.nodeLabels`` and hostnames), the layout set of each pool (-1: not enabled),
        int32 [pod ids, 2] the poolset row of each pod per family, the tunnel row per family
        (-1: none), the enabled pools' blocks per family.

    Raises
    ------
    ConfigError
        A pod pool naming no enabled IPPool.
    """
    manifests = scenario.ipam.calico
    pools = manifests.pools
    rules = pool_rules(pools)
    rows: dict = {}
    ns_rows = _namespace_rows(scenario, workload, pools, rows)
    tunnel_rows = [-1, -1]
    for family in scenario.ipam.families:
        row = tunnel_row(pools, family)
        if row[0]:
            tunnel_rows[0 if family == 4 else 1] = rows.setdefault(row, len(rows))
    adds = np.flatnonzero(workload.op == OP_POD_ADD)
    pod_rows = np.full((max(workload.n_pods, 1), 2), -1, dtype=np.int32)
    pod_rows[workload.pod.take(adds)] = ns_rows[workload.namespace.take(adds)]
    _pod_annotation_rows(scenario, workload, adds, pools, rows, pod_rows)
    poolsets = sorted(rows, key=rows.get)
    labels = scenario.cluster.node_labels_for(workload.node_names)
    tables, _ = build_tables(manifests, workload.node_names, node_labels=labels, poolsets=poolsets or None,
                             block_capacity=block_capacity(scenario, rules))
    set_of_pool = [-1] * len(pools)
    pool_blocks = [0, 0]
    for k, (i, p) in enumerate(_enabled_pools(scenario)):
        set_of_pool[i] = k
        pool_blocks[0 if p.family == 4 else 1] += rules[i].n_blocks
    return tables, set_of_pool, pod_rows, tunnel_rows, [min(b, _MAX_BLOCKS) for b in pool_blocks]


MODE = ModeSpec(
    name=NAME, rules=RULES_CALICO, settings="manifests", helm_mode=None, migration=False, cloud=False,
    check=check, upstream=UPSTREAM, named_only=True, holds="affine blocks",
    summary="Calico IPAM: nodes claim /26 blocks of IPPools by affinity, borrow from others when none is left",
)

__all__ = [
    "ADDR_SHIFT", "CALICO_VERSION", "MODE", "NAME", "NM_NCOL", "RULES_CALICO", "UPSTREAM", "address_of", "assign",
    "automatic_row", "block_capacity", "build_tables", "check", "claim_block", "cluster_counts", "engine_tables",
    "error_message", "explicit_row", "layout",
    "gc_leaks", "mark_leaked", "next_block_release", "node_added", "node_cidrs", "node_deleted", "node_rows",
    "pool_rules", "release", "release_empty_blocks", "show_blocks", "sync_period", "trace_columns", "tunnel_row",
]
