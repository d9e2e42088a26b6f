"""The imported cluster as a scenario document, a replay workload and an initial-state record.

The scenario holds the cluster's shape and a workload of events:

* the nodes by name, joining at t=0 in the order of their first CIDR (the order a next-fit
  allocator handed them out), the mode and its settings, the pools, kubelet ``maxPods``;
* every pod holding an address at the dump, created at t=0 pinned to its node (a replay row
  with its ``node``), or at its ``Scheduled`` event; pods the events show killed are deleted;

and ``initial-state.json`` the state itself (each node's CIDRs and pool allocations, ENIs or
NICs with their addresses, ``spec.ipam.pool``, each pod's addresses), named by the scenario's
``initialState`` in the modes a run can start from it (:func:`ipam_core.scenario.initial_state.applies`);
see docs/import.md, "What is reproduced, and what is not".
"""

from __future__ import annotations

import copy
import ipaddress
from collections import Counter

from ipam_core.errors import ConfigError
from ipam_core.importer.cluster import (SOURCE_CILIUM_NODE, SOURCE_CLOUD, SOURCE_NODE, SOURCE_POOLS, ClusterState,
                                       cidr_source)
from ipam_core.modes import REGISTRY, RULES_MULTI_POOL, RULES_NODE_CIDR
from ipam_core.scenario.defaults import KNOWN_IPAM_ANNOTATIONS
from ipam_core.scenario.initial_state import applies

INITIAL_STATE_FORMAT = "ipam-bench-initial-state/1"
WORKLOAD_FILE = "workload.csv"
INITIAL_STATE_FILE = "initial-state.json"
#: Simulated time after the last recorded event (and the whole run without events).
TAIL_S = 600.0


def _supernet(cidrs: list[str]) -> str:
    """The smallest CIDR holding every one of ``cidrs`` (one family)."""
    nets = [ipaddress.ip_network(c) for c in cidrs]
    lo = min(int(n.network_address) for n in nets)
    hi = max(int(n.broadcast_address) for n in nets)
    bits = nets[0].max_prefixlen
    prefix = bits - (lo ^ hi).bit_length()
    return str(ipaddress.ip_network((lo, prefix), strict=False))


def _common(values):
    """The most common of ``values`` (first seen on a tie), or ``None``."""
    values = [v for v in values if v is not None]
    return Counter(values).most_common(1)[0][0] if values else None


def build_scenario(state: ClusterState, cilium: dict, *, name: str, sources: list[str],
                   lifetimes=()) -> tuple[dict, list[dict], dict, list[str]]:
    """Build the scenario mapping, the replay rows and the initial-state record.

    Parameters
    ----------
    state : ClusterState
    cilium : dict
        The ``cilium:`` section from the Helm values (may be empty).
    name : str
        The scenario's name.
    sources : list of str
        The files read, for the description.
    lifetimes : sequence of Lifetime
        Pod events (:func:`ipam_core.importer.events.pod_lifetimes`).

    Returns
    -------
    scenario : dict
    rows : list of dict
        Replay rows (``time``, ``op``, ``node``, ``pod``, ``namespace``, ``pool``).
    initial : dict
        The initial-state record.
    notes : list of str
        What was inferred or left out.
    """
    notes = list(state.notes)
    cilium = copy.deepcopy(cilium)
    ipam = cilium.setdefault("ipam", {})
    ipam["mode"] = state.mode
    cilium["ipv4"] = {**cilium.get("ipv4", {}), "enabled": 4 in state.families}
    cilium["ipv6"] = {**cilium.get("ipv6", {}), "enabled": 6 in state.families}
    max_pods = _common([n.max_pods for n in state.nodes])
    if len({n.max_pods for n in state.nodes if n.max_pods is not None}) > 1:
        notes.append(f"nodes have different pod limits; the scenario uses the most common, {max_pods} (each node's "
                     "own is in initial-state.json)")
    cluster: dict = {"nodes": len(state.nodes), "scheduler": "spread"}
    if max_pods is not None:
        cluster["kubelet"] = {"maxPods": max_pods}
    doc: dict = {"name": name}
    modes = [state.mode]
    per_family = {f: [c for n in state.nodes for c in n.cidrs[f]] for f in (4, 6)}
    masks = {f: _common([int(c.split("/")[1]) for c in per_family[f]]) for f in (4, 6)}
    if state.source == SOURCE_NODE:
        cluster["kubeControllerManager"] = _kcm(state, per_family, masks, notes)
    elif state.source == SOURCE_CILIUM_NODE:
        _cluster_pool(ipam, state, per_family, masks, notes)
    manifests = _manifests(state, notes)
    if state.source == SOURCE_POOLS and not manifests and "autoCreateCiliumPodIPPools" not in \
            ipam.get("operator", {}):
        pools = sorted({p for n in state.nodes for p in n.pools})
        notes.append(f"no CiliumPodIPPool in the dump; the scenario derives the default pool (nodes use "
                     f"{', '.join(pools) or 'none'})")
    cloud = _cloud(state, cluster, ipam, notes) if state.source == SOURCE_CLOUD else None
    for other in _companions(state.mode):
        # the other node-CIDR mode over the same addresses, so compare shows the choice
        if _companion_settings(other, state, cluster, ipam, per_family, masks):
            modes.append(other)
    rows, duration = _workload(state, lifetimes, notes)
    files = ", ".join(sources)
    doc.update({
        "description": (f"Imported by ipam-bench import from {files}: {len(state.nodes)} nodes, "
                        f"{sum(1 for p in state.pods if p.ips)} pods with addresses, mode {state.mode}. Node CIDRs "
                        f"and pod addresses as dumped are in {INITIAL_STATE_FILE}."),
        "seed": 0,
        "duration": f"{duration:g}s",
        "sampleInterval": "10s" if duration >= 60 else f"{duration / 6:g}s",
        "modes": modes,
        "cluster": cluster,
        "cilium": cilium,
    })
    if manifests:
        doc["manifests"] = manifests
    if cloud:
        doc["cloud"] = cloud
    if (REGISTRY[state.mode].migration and REGISTRY[state.mode].rules in (RULES_NODE_CIDR, RULES_MULTI_POOL)
            and state.families == (4,)):
        # migrate (IPv4 only) starts from these nodes, in join order, instead of node-0, node-1, ...
        doc["migration"] = {"nodes": [n.name for n in _order(state)]}
    doc["workload"] = {"generator": "replay", "path": WORKLOAD_FILE}
    if applies(state.mode):  # runs of the cluster's mode start from its node CIDRs and pod addresses
        doc["initialState"] = INITIAL_STATE_FILE
    return doc, rows, _initial(state, notes), notes


def _companions(mode: str) -> list[str]:
    """The other modes that carve one CIDR per node and family (not cloud presets), for ``compare``."""
    spec = REGISTRY[mode]
    if spec.rules != RULES_NODE_CIDR or spec.cloud:
        return []
    return [m for m, s in REGISTRY.items() if m != mode and s.rules == RULES_NODE_CIDR and not s.cloud]


def _companion_settings(other: str, state: ClusterState, cluster: dict, ipam: dict, per_family: dict,
                        masks: dict) -> bool:
    """Give ``other`` the cluster's own range and mask; whether it could be given them."""
    if cidr_source(other) == SOURCE_CILIUM_NODE:
        kcm = cluster.get("kubeControllerManager", {})
        ranges = [c for c in str(kcm.get("cluster-cidr", "")).split(",") if c]
        if not ranges:
            return False
        op = ipam.setdefault("operator", {})
        for f in state.families:
            listed = [c for c in ranges if (":" in c) == (f == 6)]
            if listed and masks[f] is not None:
                op.setdefault(f"clusterPoolIPv{f}PodCIDRList", listed[:1])
                op.setdefault(f"clusterPoolIPv{f}MaskSize", masks[f])
        return True
    op = ipam.get("operator", {})
    cidrs = [op[f"clusterPoolIPv{f}PodCIDRList"][0] for f in state.families if op.get(f"clusterPoolIPv{f}PodCIDRList")]
    if not cidrs:
        return False
    kcm = {"cluster-cidr": ",".join(cidrs)}
    for f in state.families:
        if f"clusterPoolIPv{f}MaskSize" in op:
            kcm[f"node-cidr-mask-size-ipv{f}"] = op[f"clusterPoolIPv{f}MaskSize"]
    cluster["kubeControllerManager"] = kcm
    return True


def _kcm(state: ClusterState, per_family: dict, masks: dict, notes: list) -> dict:
    """KCM flags: from its pod's command line when dumped, else inferred from the nodes' podCIDRs."""
    flags = dict(state.kcm)
    if "cluster-cidr" not in flags:
        cidrs = [_supernet(per_family[f]) for f in (4, 6) if f in state.families and per_family[f]]
        flags["cluster-cidr"] = ",".join(cidrs)
        notes.append(f"kube-controller-manager's pod is not in the dump: --cluster-cidr {flags['cluster-cidr']} is "
                     "the smallest range holding every node's podCIDR")
    if not any(k.startswith("node-cidr-mask-size") for k in flags):
        for f in (4, 6):
            if f in state.families and masks[f] is not None:
                flags[f"node-cidr-mask-size-ipv{f}"] = masks[f]
    out: dict = {}
    for key, value in flags.items():
        if key == "allocate-node-cidrs":
            out[key] = str(value).lower() in ("true", "1", "")
        elif key.startswith("node-cidr-mask-size"):
            try:
                out[key] = int(value)
            except ValueError:
                raise ConfigError(f"kube-controller-manager pod: --{key}={value!r}; expected a whole number") from None
        else:
            out[key] = value
    return out


def _cluster_pool(ipam: dict, state: ClusterState, per_family: dict, masks: dict, notes: list) -> None:
    """Cluster-pool list and mask: Helm's when given, else inferred from the CiliumNodes' podCIDRs."""
    op = ipam.setdefault("operator", {})
    for f in state.families:
        key = f"clusterPoolIPv{f}PodCIDRList"
        if key not in op and per_family[f]:
            op[key] = [_supernet(per_family[f])]
            notes.append(f"Helm values lack ipam.operator.{key}: {op[key][0]} is the smallest range holding every "
                         "node's podCIDR")
        if f"clusterPoolIPv{f}MaskSize" not in op and masks[f] is not None:
            op[f"clusterPoolIPv{f}MaskSize"] = masks[f]
    for f in state.families:
        listed = [ipaddress.ip_network(c) for c in op.get(f"clusterPoolIPv{f}PodCIDRList", [])]
        outside = [c for c in per_family[f] if not any(ipaddress.ip_network(c).subnet_of(n) for n in listed)]
        if outside:
            notes.append(f"{len(outside)} node CIDR(s) outside clusterPoolIPv{f}PodCIDRList (e.g. {outside[0]}): the "
                         "operator reports 'allocator not configured' for them")


def _manifests(state: ClusterState, notes: list) -> list[dict]:
    out = []
    for pool in state.pools:
        spec: dict = {}
        for fam, key in ((pool.spec.ipv4, "ipv4"), (pool.spec.ipv6, "ipv6")):
            if fam is not None and int(key[-1]) in state.families:
                spec[key] = {"cidrs": list(fam.cidrs), "maskSize": fam.mask_size}
        if pool.spec.pod_selector is not None:
            spec["podSelector"] = pool.spec.pod_selector
        if pool.spec.namespace_selector is not None:
            spec["namespaceSelector"] = pool.spec.namespace_selector
        if not spec.get("ipv4") and not spec.get("ipv6"):
            notes.append(f"CiliumPodIPPool {pool.metadata.name!r} has no enabled family; left out")
            continue
        out.append({"apiVersion": pool.api_version, "kind": "CiliumPodIPPool",
                    "metadata": {"name": pool.metadata.name}, "spec": spec})
    used = {p.namespace for p in state.pods}
    for ns in state.namespaces:
        meta = ns.metadata
        annotations = {k: v for k, v in (meta.annotations or {}).items() if k in KNOWN_IPAM_ANNOTATIONS}
        if meta.name not in used or not (annotations or (state.pools and meta.labels)):
            continue
        entry = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": meta.name}}
        if meta.labels:
            entry["metadata"]["labels"] = dict(meta.labels)
        if annotations:
            entry["metadata"]["annotations"] = annotations
        out.append(entry)
    return out


def _cloud(state: ClusterState, cluster: dict, ipam: dict, notes: list) -> dict:
    """Subnets, instance type and watermarks of the subnet modes, from the CiliumNodes."""
    cloud: dict = {}
    subnets = list(dict.fromkeys(e["subnet"] for n in state.nodes for e in n.enis if e["subnet"]))
    if not subnets and any(n.addresses for n in state.nodes):
        # Azure / CRD CiliumNodes list their addresses (spec.ipam.pool) but no subnet
        subnets = [_supernet([f"{a}/32" for n in state.nodes for a in n.addresses if ":" not in a])]
        notes.append(f"no subnet in the CiliumNodes: {subnets[0]} is the smallest range holding every node's "
                     "spec.ipam.pool addresses")
    if subnets:
        cloud["subnets"] = subnets
    types = [n.instance_type for n in state.nodes]
    kind = _common(types)
    if kind is not None:
        cluster["instanceType"] = kind
        if len(set(t for t in types if t)) > 1:
            notes.append(f"nodes of {len(set(t for t in types if t))} instance types; the scenario uses the most "
                         f"common, {kind} (each node's own is in initial-state.json)")
    op = ipam.setdefault("operator", {})
    for key in ("preAllocate", "minAllocate", "maxAllocate", "maxAboveWatermark"):
        value = _common([n.watermarks.get(key) for n in state.nodes])
        if value is not None and key not in op:
            op[key] = value
    if not op:
        ipam.pop("operator")
    return cloud


def _order(state: ClusterState) -> list:
    """Nodes in the order their first CIDR starts (next-fit order), nodes without one after, by creation."""
    def key(n):
        first = next((c for f in (4, 6) for c in n.cidrs[f]), None)
        if first is None:
            first = next((c for per in n.pools.values() for f in (4, 6) for c in per.get(f, [])), None)
        if first is None:
            return (1, 0, 0, n.created or "", n.name)
        net = ipaddress.ip_network(first)
        return (0, net.version, int(net.network_address), n.created or "", n.name)
    return sorted(state.nodes, key=key)


def _workload(state: ClusterState, lifetimes, notes: list) -> tuple[list[dict], float]:
    """Replay rows: nodes at t=0, each live pod at t=0 (or its Scheduled event) on its node, recorded kills."""
    rows = [{"time": 0.0, "op": "node-add", "node": n.name, "pod": None, "namespace": None, "pool": None}
            for n in _order(state)]
    pool_of = {(p.namespace, p.name): p.pool for p in state.pods}
    node_of = {(p.namespace, p.name): p.node for p in state.pods}
    t0 = lifetimes[0].time if lifetimes else None
    starts: dict = {}
    stops: dict = {}
    for ev in lifetimes:
        seconds = (ev.time - t0).total_seconds()
        key = (ev.namespace, ev.pod)
        if ev.op == "start":
            starts.setdefault(key, []).append((seconds, ev.node))
        else:
            stops.setdefault(key, []).append((seconds, ev.node))
    names = {n.name for n in state.nodes}
    end = 0.0
    live = {(p.namespace, p.name) for p in state.pods}
    keys = list(dict.fromkeys([*((p.namespace, p.name) for p in state.pods), *starts, *stops]))
    dropped = 0
    for key in keys:
        spans = _spans(starts.get(key, []), stops.get(key, []), key in live, node_of.get(key))
        for (t_on, node), t_off in spans:
            if node is not None and node not in names:
                dropped += 1
                continue
            rows.append({"time": t_on, "op": "add", "node": node, "pod": key[1], "namespace": key[0],
                         "pool": pool_of.get(key) if state.source == SOURCE_POOLS else None})
            if t_off is not None:
                rows.append({"time": t_off, "op": "delete", "node": None, "pod": key[1], "namespace": key[0],
                             "pool": None})
                end = max(end, t_off)
            end = max(end, t_on)
    if dropped:
        notes.append(f"{dropped} recorded pod lifetime(s) on nodes the dump lacks were left out")
    if lifetimes:
        notes.append(f"{len(lifetimes)} pod events replayed over {end:g} s from the first one")
    rows.sort(key=lambda r: (r["time"], r["op"] != "node-add"))  # stable: a pod's add stays before its delete
    return rows, end + TAIL_S


def _spans(starts: list, stops: list, live: bool, node: str | None) -> list:
    """Pair a pod's starts and stops in time: [((t_on, node), t_off or None)], ending alive iff ``live``."""
    events = sorted([(t, 1, n) for t, n in starts] + [(t, 0, n) for t, n in stops])
    spans: list = []
    current = None
    for t, is_start, n in events:
        if is_start:
            if current is not None:  # a start without the stop between (events expired): the old one ended here
                spans.append((current, t))
            current = (t, n)
        else:
            if current is None:  # running before the first event
                current = (0.0, n if n is not None else node)
            spans.append((current, t))
            current = None
    if current is not None:
        spans.append((current, None))
    elif live:
        spans.append(((spans[-1][1] if spans else 0.0, node), None))
    return spans


def _initial(state: ClusterState, notes: list) -> dict:
    """The initial-state record: the dumped CIDRs, pool allocations, interfaces, addresses and pods."""
    nodes = []
    for n in _order(state):
        entry: dict = {"name": n.name, "podCIDRs": [c for f in (4, 6) for c in n.cidrs[f]]}
        if n.pools:
            entry["pools"] = {p: [c for f in (4, 6) for c in per.get(f, [])] for p, per in n.pools.items()}
        for key, value in (("maxPods", n.max_pods), ("instanceType", n.instance_type), ("zone", n.zone),
                           ("operatorError", n.operator_error or None)):
            if value is not None:
                entry[key] = value
        if n.enis:
            entry["enis"] = n.enis
        if n.addresses:
            entry["addresses"] = sorted(n.addresses, key=lambda a: ipaddress.ip_address(a))
        for key, value in (("router", n.router), ("health", n.health)):
            if value:
                entry[key] = value
        nodes.append(entry)
    pods = [{"namespace": p.namespace, "name": p.name, "node": p.node, "phase": p.phase,
             "ips": [p.ips[f] for f in (4, 6) if f in p.ips], **({"pool": p.pool} if p.pool else {})}
            for p in state.pods]
    return {"format": INITIAL_STATE_FORMAT, "mode": state.mode, "families": list(state.families),
            "nodes": nodes, "pods": pods, "pools": [p.metadata.name for p in state.pools], "notes": notes}
