"""Nodes, CiliumNodes and pods of a dump as one checked :class:`ClusterState`.

Where each node's CIDRs come from depends on the IPAM mode, as upstream:

* ``kubernetes`` / ``gke``: ``Node.spec.podCIDRs`` (kube-controller-manager sets them;
  cilium ``pkg/ipam/hostscope.go`` reads them);
* ``cluster-pool``: ``CiliumNode.spec.ipam.podCIDRs`` (the operator's
  ``pkg/ipam/allocator/podcidr/podcidr.go`` writes them);
* ``multi-pool``: ``CiliumNode.spec.ipam.pools.allocated`` (``allocator/multipool``);
* ``eni``, ``azure``, ``crd``, ``aws-vpc-cni``: no node CIDR; the node's addresses are
  ``CiliumNode.spec.ipam.pool`` and its ENIs (``status.eni.enis``, cilium ``pkg/aws/eni``).

Pods that hold a pod address are those with ``status.podIPs`` that are not ``hostNetwork``
and not finished (``Succeeded``/``Failed``). Every CIDR and address is parsed strictly, and the
state is checked for what a working cluster cannot have: a pod address outside its node's
CIDRs, two pods with one address, two nodes or two pools with overlapping CIDRs.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field

from ipam_core.addr import parse_cidr, parse_ip
from ipam_core.errors import ConfigError
from ipam_core.importer._schema import kube_models, validate
from ipam_core.importer.dumps import Dump
from ipam_core.modes import REGISTRY, RULES_CLOUD, RULES_MULTI_POOL

#: Where a mode's node addresses are read (by the registry's rules family and Helm ``ipam.mode``).
SOURCE_NODE = "Node.spec.podCIDRs"
SOURCE_CILIUM_NODE = "CiliumNode.spec.ipam.podCIDRs"
SOURCE_POOLS = "CiliumNode.spec.ipam.pools.allocated"
SOURCE_CLOUD = "CiliumNode.spec.ipam.pool"
#: Helm ``ipam.mode`` of host scope (cilium ``pkg/ipam/option`` ``IPAMKubernetes``): the agent reads the Node.
HOST_SCOPE_HELM_MODE = "kubernetes"
#: Node labels read (well-known labels, kubernetes ``staging/src/k8s.io/api/core/v1/well_known_labels.go``).
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
ZONE_LABEL = "topology.kubernetes.io/zone"
POOL_ANNOTATION = "ipam.cilium.io/ip-pool"


def cidr_source(mode: str) -> str:
    """Where ``mode`` keeps each node's CIDRs or addresses (one of the ``SOURCE_*`` constants).

    Parameters
    ----------
    mode : str
        A registered mode (:data:`ipam_core.modes.REGISTRY`).

    Returns
    -------
    str
    """
    spec = REGISTRY[mode]
    if spec.rules == RULES_MULTI_POOL:
        return SOURCE_POOLS
    if spec.rules == RULES_CLOUD:
        return SOURCE_CLOUD
    return SOURCE_NODE if spec.helm_mode == HOST_SCOPE_HELM_MODE else SOURCE_CILIUM_NODE


@dataclass
class NodeState:
    """One node as dumped: its CIDRs (per family), pool CIDRs, ENIs and pod limit."""

    name: str
    cidrs: dict = field(default_factory=lambda: {4: [], 6: []})
    pools: dict = field(default_factory=dict)  # pool -> {4: [...], 6: [...]}
    max_pods: int | None = None
    instance_type: str | None = None
    zone: str | None = None
    created: str | None = None
    enis: list = field(default_factory=list)  # dicts: id, subnet, addresses, prefixes
    addresses: list = field(default_factory=list)  # spec.ipam.pool (ENI / Azure / CRD modes)
    router: list = field(default_factory=list)  # spec.addresses CiliumInternalIP: the agent's router addresses
    health: list = field(default_factory=list)  # spec.health.ipv4 / ipv6
    watermarks: dict = field(default_factory=dict)
    has_cilium_node: bool = False
    operator_error: str = ""
    source: object = None  # the Origin of the object the CIDRs were read from

    def networks(self) -> list:
        """Every network the node's pods may take addresses from."""
        nets = [parse_cidr(c) for f in (4, 6) for c in self.cidrs[f]]
        nets += [parse_cidr(c) for per in self.pools.values() for f in (4, 6) for c in per.get(f, [])]
        for eni in self.enis:
            nets += [parse_cidr(p) for p in eni["prefixes"]]
        return nets


@dataclass
class PodState:
    """One pod that holds (or waits for) a pod address."""

    namespace: str
    name: str
    node: str | None
    ips: dict  # family -> address text
    pool: str | None
    phase: str
    created: str | None
    annotations: dict


@dataclass
class ClusterState:
    """What the importer read, checked: nodes, pods, pools, KCM flags, and notes for the report."""

    mode: str
    families: tuple
    nodes: list
    pods: list
    pools: list  # crds.CiliumPodIPPool
    namespaces: list  # V1Namespace
    kcm: dict  # flag -> value, from the kube-controller-manager pod when dumped
    notes: list = field(default_factory=list)

    @property
    def source(self) -> str:
        """Where the mode keeps node CIDRs (:func:`cidr_source`)."""
        return cidr_source(self.mode)

    def node(self, name: str) -> NodeState | None:
        """The node called ``name``."""
        return next((n for n in self.nodes if n.name == name), None)


def infer_mode(dump: Dump) -> str:
    """The IPAM mode the dumped objects show, when no Helm values say it.

    Parameters
    ----------
    dump : Dump

    Returns
    -------
    str
        ``eni`` when CiliumNodes carry an instance type or ENIs; ``multi-pool`` when the dump has
        CiliumPodIPPools or CiliumNodes carry pool allocations; ``kubernetes`` when every CiliumNode's podCIDRs equal its Node's
        ``spec.podCIDRs`` (the agent copies them in host scope); ``cluster-pool`` when
        CiliumNodes have podCIDRs of their own; ``kubernetes`` without CiliumNodes.
    """
    cns = dump.cilium_nodes
    # every CiliumNode carries "eni": {} whatever the mode: an instance type or ENIs mean ENI mode
    if any((cn.spec.eni is not None and cn.spec.eni.instance_type) or (cn.status.eni and cn.status.eni.enis)
           for cn in cns):
        return "eni"
    if dump.pools or any(cn.spec.ipam.pools.allocated or cn.spec.ipam.pools.requested for cn in cns):
        return "multi-pool"
    node_cidrs = {n.metadata.name: _node_pod_cidrs(n) for n in dump.nodes}
    with_cidrs = [cn for cn in cns if cn.spec.ipam.pod_cidrs]
    if with_cidrs and any(cn.spec.ipam.pod_cidrs != node_cidrs.get(cn.metadata.name) for cn in with_cidrs):
        return "cluster-pool"
    return "kubernetes"


def _node_pod_cidrs(node) -> list[str]:
    spec = node.spec
    if spec is None:
        return []
    return list(spec.pod_cidrs or ([spec.pod_cidr] if spec.pod_cidr else []))


def build_state(dump: Dump, mode: str, families: tuple) -> ClusterState:
    """Check the dump against itself and the mode, and collect the cluster's state.

    Parameters
    ----------
    dump : Dump
    mode : str
        The IPAM mode (Helm ``ipam.mode``, or :func:`infer_mode`).
    families : tuple of int
        Enabled families (Helm ``ipv4.enabled`` / ``ipv6.enabled``, or what the CIDRs show).

    Returns
    -------
    ClusterState

    Raises
    ------
    ConfigError
        One line naming the file, object, field and value: no Node in the dump; a CIDR or
        address that is malformed or has host bits set; a node without podCIDRs in host
        scope; overlapping CIDRs of two nodes or two pools; a pod on a node the dump lacks;
        a pod address outside every CIDR of its node; two pods with one address.
    """
    if not dump.nodes:
        files = ", ".join(dump.files)
        raise ConfigError(f"{files}: no Node objects; expected kubectl get nodes,pods,ciliumnodes,ciliumpodippools "
                          "-A -o json")
    notes: list[str] = []
    cns = {cn.metadata.name: cn for cn in dump.cilium_nodes}
    nodes = [_node(dump, n, cns.get(n.metadata.name), mode, families) for n in dump.nodes]
    missing_cn = [n.name for n in nodes if not n.has_cilium_node]
    if missing_cn and cidr_source(mode) != SOURCE_NODE:
        notes.append(f"{len(missing_cn)} node(s) without a CiliumNode (no Cilium agent yet): "
                     f"{', '.join(missing_cn[:5])}")
    stray = sorted(set(cns) - {n.name for n in nodes})
    if stray:
        notes.append(f"{len(stray)} CiliumNode(s) without a Node ignored: {', '.join(stray[:5])}")
    _check_disjoint([(n.source, c) for n in nodes for f in (4, 6) for c in n.cidrs[f]]
                    + [(n.source, c) for n in nodes for per in n.pools.values() for f in (4, 6) for c in per[f]],
                    "node CIDR", "each node's CIDRs are its own")
    pools = list(dump.pools)
    _check_disjoint([(dump.origin(p), c) for p in pools for fam in (p.spec.ipv4, p.spec.ipv6) if fam
                     for c in fam.cidrs], "pool CIDR", "overlapping pool CIDRs are not supported by multi-pool")
    for p in pools:
        _check_pool(dump, p)
    _check_allocations(nodes, pools)
    pods, skipped = _pods(dump, nodes, mode, pools)
    for what, count in skipped.items():
        notes.append(f"{count} {what} pod(s) skipped (they hold no pod address)")
    return ClusterState(mode=mode, families=families, nodes=nodes, pods=pods, pools=pools,
                        namespaces=list(dump.namespaces), kcm=_kcm_flags(dump), notes=notes)


def _cidr(origin, field_path: str, text, families=None):
    try:
        net = parse_cidr(str(text))
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {field_path}: {exc}") from None
    if families is not None and net.version not in families:
        raise ConfigError(f"{origin}: {field_path}: {str(text)!r} is IPv{net.version}; expected a CIDR of an enabled "
                          f"family (IPv{' and IPv'.join(map(str, families))})")
    return str(net)


def _node(dump: Dump, node, cn, mode: str, families: tuple) -> NodeState:
    origin = dump.origin(node)
    meta = node.metadata
    labels = meta.labels or {}
    state = NodeState(name=meta.name, instance_type=labels.get(INSTANCE_TYPE_LABEL), zone=labels.get(ZONE_LABEL),
                      created=meta.creation_timestamp.isoformat() if meta.creation_timestamp else None,
                      source=origin)
    capacity = (node.status.allocatable or node.status.capacity or {}) if node.status else {}
    if "pods" in capacity:
        try:
            state.max_pods = int(str(capacity["pods"]))
        except ValueError:
            raise ConfigError(f"{origin}: status.allocatable.pods: {capacity['pods']!r}; expected a whole number of "
                              "pods (the kubelet's maxPods)") from None
    if cidr_source(mode) == SOURCE_NODE:
        spec = node.spec
        listed = list(spec.pod_cidrs or []) if spec else []
        where = "spec.podCIDRs"
        if not listed and spec is not None and spec.pod_cidr:
            listed, where = [spec.pod_cidr], "spec.podCIDR"
        if not listed:
            raise ConfigError(f"{origin}: spec.podCIDRs: missing; expected the node's pod CIDR (host-scope IPAM "
                              "waits for kube-controller-manager to set it)")
        for i, c in enumerate(listed):
            net = _cidr(origin, f"{where}[{i}]", c, families)
            state.cidrs[4 if ":" not in net else 6].append(net)
    if cn is not None:
        state.has_cilium_node = True
        _cilium_node(dump, cn, state, mode, families)
    return state


def _agent_addresses(origin, spec, state: NodeState) -> None:
    """The agent's router (``CiliumInternalIP``) and health addresses, which pods cannot take."""
    found = [(f"spec.addresses[{i}].ip", a.ip, state.router) for i, a in enumerate(spec.addresses)
             if a.type == "CiliumInternalIP"]
    found += [(f"spec.health.{key}", value, state.health)
              for key, value in (("ipv4", spec.health.ipv4), ("ipv6", spec.health.ipv6)) if value]
    for where, text, into in found:
        try:
            into.append(str(parse_ip(text)))
        except ConfigError as exc:
            raise ConfigError(f"{origin}: {where}: {exc}") from None


def _cilium_node(dump: Dump, cn, state: NodeState, mode: str, families: tuple) -> None:
    origin = dump.origin(cn)
    source = cidr_source(mode)
    if source in (SOURCE_CILIUM_NODE, SOURCE_POOLS):
        state.source = origin
    ipam = cn.spec.ipam
    state.operator_error = cn.status.ipam.operator_status.error
    _agent_addresses(origin, cn.spec, state)
    if source == SOURCE_CILIUM_NODE:
        for i, c in enumerate(ipam.pod_cidrs):
            net = _cidr(origin, f"spec.ipam.podCIDRs[{i}]", c, families)
            state.cidrs[4 if ":" not in net else 6].append(net)
    elif source == SOURCE_POOLS:
        for i, alloc in enumerate(ipam.pools.allocated):
            per = state.pools.setdefault(alloc.pool, {4: [], 6: []})
            for j, c in enumerate(alloc.cidrs):
                net = _cidr(origin, f"spec.ipam.pools.allocated[{i}].cidrs[{j}]", c, families)
                per[4 if ":" not in net else 6].append(net)
    elif source == SOURCE_CLOUD:
        for ip in ipam.pool:
            try:
                state.addresses.append(str(parse_ip(ip)))
            except ConfigError as exc:
                raise ConfigError(f"{origin}: spec.ipam.pool: {exc}") from None
        state.watermarks = {k: v for k, v in (("preAllocate", ipam.pre_allocate), ("minAllocate", ipam.min_allocate),
                                              ("maxAllocate", ipam.max_allocate),
                                              ("maxAboveWatermark", ipam.max_above_watermark)) if v is not None}
        if cn.spec.eni is not None and cn.spec.eni.instance_type:
            state.instance_type = cn.spec.eni.instance_type
        if cn.spec.eni is not None and cn.spec.eni.availability_zone:
            state.zone = cn.spec.eni.availability_zone
        enis = cn.status.eni.enis if cn.status.eni else {}
        for key, eni in enis.items():
            subnet = _cidr(origin, f"status.eni.enis[{key}].subnet.cidr", eni.subnet.cidr, (4,)) \
                if eni.subnet.cidr else None
            prefixes = [_cidr(origin, f"status.eni.enis[{key}].prefixes[{i}]", p, (4,))
                        for i, p in enumerate(eni.prefixes)]
            addresses = []
            for i, a in enumerate(eni.addresses):
                try:
                    addresses.append(str(parse_ip(a, 4)))
                except ConfigError as exc:
                    raise ConfigError(f"{origin}: status.eni.enis[{key}].addresses[{i}]: {exc}") from None
            primary = None
            if eni.ip:
                try:
                    primary = str(parse_ip(eni.ip, 4))
                except ConfigError as exc:
                    raise ConfigError(f"{origin}: status.eni.enis[{key}].ip: {exc}") from None
            state.enis.append({"id": eni.id, "number": eni.number, "subnet": subnet, "subnetId": eni.subnet.id,
                               "ip": primary, "addresses": addresses, "prefixes": prefixes})
        _azure_interfaces(origin, cn, state)


def _azure_interfaces(origin, cn, state: NodeState) -> None:
    """An Azure node's NICs (``status.azure.interfaces``) as interface entries like the ENIs'.

    Follows cilium ``pkg/azure/ipam/node.go`` ``ResyncInterfacesAndIPs``: the addresses in state
    ``succeeded`` are the node's pool; the NIC's primary address is not listed (``api.go``
    ``parseInterface``), so the entry has none.
    """
    interfaces = cn.status.azure.interfaces if cn.status.azure else []
    for k, nic in enumerate(interfaces):
        where = f"status.azure.interfaces[{k}]"
        subnet = _cidr(origin, f"{where}.cidr", nic.cidr, (4,)) if nic.cidr else None
        addresses = []
        for i, a in enumerate(nic.addresses):
            if a.state.lower() != "succeeded":
                continue  # still provisioning or failed: not in the pool (types.StateSucceeded)
            try:
                addresses.append(str(parse_ip(a.ip, 4)))
            except ConfigError as exc:
                raise ConfigError(f"{origin}: {where}.addresses[{i}].ip: {exc}") from None
        state.enis.append({"id": nic.id or nic.name, "number": k, "subnet": subnet, "subnetId": "",
                           "ip": None, "addresses": addresses, "prefixes": []})


def _check_pool(dump: Dump, pool) -> None:
    origin = dump.origin(pool)
    for family, spec in ((4, pool.spec.ipv4), (6, pool.spec.ipv6)):
        if spec is None:
            continue
        bits = 32 if family == 4 else 128
        for i, c in enumerate(spec.cidrs):
            net = parse_cidr(c)  # already parsed by _check_disjoint
            if net.version != family:
                raise ConfigError(f"{origin}: spec.ipv{family}.cidrs[{i}]: {c!r} is IPv{net.version}; expected an "
                                  f"IPv{family} CIDR")
            if not net.prefixlen <= spec.mask_size <= bits:
                raise ConfigError(f"{origin}: spec.ipv{family}.maskSize: {spec.mask_size}; expected a mask from "
                                  f"{net.prefixlen} to {bits} (a node CIDR must fit inside {c})")
    client = kube_models()
    for key, sel in (("podSelector", pool.spec.pod_selector), ("namespaceSelector", pool.spec.namespace_selector)):
        if sel is not None:
            validate(client.V1LabelSelector, sel, origin, field_prefix=f"spec.{key}.")


def _check_allocations(nodes: list, pools: list) -> None:
    """A multi-pool allocation lies inside the CIDRs of the pool it names (when the dump has that pool)."""
    nets = {p.metadata.name: [parse_cidr(c) for fam in (p.spec.ipv4, p.spec.ipv6) if fam for c in fam.cidrs]
            for p in pools}
    for node in nodes:
        for pool, per in node.pools.items():
            if pool not in nets:
                continue
            for cidr in (c for f in (4, 6) for c in per[f]):
                net = parse_cidr(cidr)
                if not any(net.version == n.version and net.subnet_of(n) for n in nets[pool]):
                    shown = ", ".join(str(n) for n in nets[pool])
                    raise ConfigError(f"{node.source}: spec.ipam.pools.allocated (pool {pool!r}): {cidr!r} is outside "
                                      f"the pool's CIDRs ({shown}); expected a CIDR the operator carved from the pool")


def _check_disjoint(entries: list, what: str, why: str) -> None:
    """Refuse two overlapping CIDRs, naming both owners (sorted sweep: one pass)."""
    parsed = []
    for owner, text in entries:
        try:
            net = parse_cidr(str(text))
        except ConfigError as exc:
            raise ConfigError(f"{owner}: {what}: {exc}") from None
        parsed.append((net.version, int(net.network_address), int(net.broadcast_address), owner, str(net)))
    parsed.sort(key=lambda p: p[:3])
    for a, b in zip(parsed, parsed[1:]):
        if a[0] == b[0] and b[1] <= a[2]:
            raise ConfigError(f"{b[3]}: {what} {b[4]} overlaps {a[4]} of {a[3].kind} {a[3].name!r}; expected "
                              f"disjoint CIDRs ({why})")


def _pods(dump: Dump, nodes: list, mode: str, pools: list):
    by_name = {n.name: n for n in nodes}
    nets = {n.name: n.networks() for n in nodes}
    eni_ips = {n.name: set(n.addresses) | {a for e in n.enis for a in e["addresses"]} for n in nodes}
    pool_nets = [(parse_cidr(c), p.metadata.name) for p in pools for fam in (p.spec.ipv4, p.spec.ipv6) if fam
                 for c in fam.cidrs]
    skipped: Counter = Counter()
    owners: dict[str, str] = {}
    pools_mode = cidr_source(mode) == SOURCE_POOLS
    out = []
    for pod in dump.pods:
        origin = dump.origin(pod)
        spec, status, meta = pod.spec, pod.status, pod.metadata
        phase = (status.phase if status else None) or "Pending"
        if spec is not None and spec.host_network:
            skipped["hostNetwork"] += 1
            continue
        if phase in ("Succeeded", "Failed"):
            skipped[phase] += 1
            continue
        node = spec.node_name if spec is not None else None
        if node is not None and node not in by_name:
            raise ConfigError(f"{origin}: spec.nodeName: {node!r} is not a Node of the dump; expected one of the "
                              f"dumped nodes ({', '.join(list(by_name)[:5])}{', ...' if len(by_name) > 5 else ''})")
        listed = [(f"status.podIPs[{i}].ip", p.ip) for i, p in enumerate(status.pod_ips or [])] if status else []
        if not listed and status is not None and status.pod_ip:
            listed = [("status.podIP", status.pod_ip)]
        ips: dict[int, str] = {}
        for where, text in listed:
            try:
                ip = parse_ip(text)
            except ConfigError as exc:
                raise ConfigError(f"{origin}: {where}: {exc}") from None
            if node is None:
                raise ConfigError(f"{origin}: {where}: {text!r} on a pod without spec.nodeName; expected a scheduled "
                                  "pod to hold an address")
            _check_inside(origin, where, ip, by_name[node], nets[node], eni_ips[node], mode)
            shown = f"{meta.namespace}/{meta.name}"
            if str(ip) in owners:
                raise ConfigError(f"{origin}: {where}: {str(ip)!r} is also the address of pod {owners[str(ip)]}; "
                                  "expected one pod per address")
            owners[str(ip)] = shown
            ips[ip.version] = str(ip)
        annotations = dict(meta.annotations or {})
        pool = next((name for net, name in pool_nets for v in ips.values()
                     if ipaddress.ip_address(v) in net), None) if pools_mode else None
        if pool is None and pools_mode:
            pool = annotations.get(POOL_ANNOTATION)
        out.append(PodState(namespace=meta.namespace or "default", name=meta.name, node=node, ips=ips, pool=pool,
                            phase=phase, annotations=annotations,
                            created=meta.creation_timestamp.isoformat() if meta.creation_timestamp else None))
    return out, skipped


def _check_inside(origin, where: str, ip, node: NodeState, nets: list, eni_ips: set, mode: str) -> None:
    """A pod address must come from its node: one of its CIDRs (pool modes) or its ENIs / pool (cloud modes)."""
    if cidr_source(mode) != SOURCE_CLOUD:
        if any(ip in net for net in nets):
            return
        cidrs = [str(n) for n in nets] or ["none"]
        raise ConfigError(f"{origin}: {where}: {str(ip)!r} is outside every CIDR of node {node.name!r} "
                          f"({', '.join(cidrs)}); expected an address of the node's pod CIDRs")
    if not eni_ips and not nets:
        return  # a node whose CiliumNode shows no addresses: nothing to check against
    if str(ip) in eni_ips or any(ip in net for net in nets):
        return
    raise ConfigError(f"{origin}: {where}: {str(ip)!r} is not an address of node {node.name!r} (its CiliumNode "
                      "spec.ipam.pool and ENIs); expected an address the node's interfaces hold")


def _kcm_flags(dump: Dump) -> dict:
    """kube-controller-manager's IPAM flags from its static pod's command line, when the dump has it."""
    flags = ("cluster-cidr", "node-cidr-mask-size", "node-cidr-mask-size-ipv4", "node-cidr-mask-size-ipv6",
             "allocate-node-cidrs")
    for pod in dump.pods:
        labels = pod.metadata.labels or {}
        if labels.get("component") != "kube-controller-manager" or pod.spec is None:
            continue
        found = {}
        for container in pod.spec.containers:
            for word in [*(container.command or []), *(container.args or [])]:
                name, eq, value = word.lstrip("-").partition("=")
                if eq and name in flags:
                    found[name] = value
        return found
    return {}
