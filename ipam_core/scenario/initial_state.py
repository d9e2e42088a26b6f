"""A cluster's own state as a scenario's starting point: the ``initialState:`` key.

``initialState: initial-state.json`` (written by ``ipam-bench import``, resolved
relative to the scenario) names the node CIDRs and pod addresses a cluster holds.
In the mode the cluster runs (the file's ``mode``), the engine starts from them:
at t=0 each node takes exactly its CIDRs and each pod its address
(:mod:`ipam_core.engine.initial`); in ``eni``, ``azure`` and ``crd`` each node its
interfaces and their addresses (:mod:`ipam_core.scenario.initial_cloud`,
:mod:`ipam_core.modes.cloud_initial`). Other modes carve by their own rules (a
what-if). This module reads the file and places every CIDR and address in the
mode's layout at load, so a state that does not fit is refused before anything
runs, with one line naming the file, the item and the value.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ipam_core.addr import parse_cidr
from ipam_core.errors import CIDRError, ConfigError
from ipam_core.modes import REGISTRY, RULES_CLOUD, RULES_MULTI_POOL, RULES_NODE_CIDR, get_mode
from ipam_core.engine.cloud_net import cloud_net
from ipam_core.engine.layout import Layout, family_index, pod_range
from ipam_core.podiprange import range_size
from ipam_core.scenario._values import show
from ipam_core.scenario._where import Where
from ipam_core.scenario.initial_cloud import CloudPlacer, CloudStart

#: The ``format`` of the file (``ipam_core.importer.scenario.INITIAL_STATE_FORMAT`` writes it).
FORMAT = "ipam-bench-initial-state/1"


@dataclass(frozen=True, eq=False)
class InitialState:
    """Node CIDRs and pod addresses of a cluster, placed in the layout of the mode it runs.

    Attributes
    ----------
    path : Path
        The file.
    mode : str
        The mode the cluster runs: only runs of this mode start from the state.
    node_names : tuple of str
        Node index -> name.
    cidr_rows : numpy.ndarray
        int64 [node CIDRs, 3]: node index, set (index into the layout's ``sets``),
        CIDR index in the set; in the order the node lists them.
    pod_keys : tuple of (str, str)
        Pod index -> (namespace, name), pods with an address for every enabled family.
    pod_node : numpy.ndarray
        int64 [pods]: node index of each pod.
    pod_addrs : numpy.ndarray
        int64 [pods, 2, 3]: per engine family (0 IPv4, 1 IPv6) the set, CIDR index
        and offset in the node CIDR's pod bitmap; -1 where the pod has none.
    agent_addrs : numpy.ndarray
        int64 [nodes, 2, 2, 3]: per node its router (0) and health (1) address per
        engine family, as set, CIDR index and offset; -1 where the dump has none.
    misfit : str
        Empty, or why the node CIDRs do not fit the settings (a sweep point's other
        mask or pools): then no run starts from the state (a what-if, by the rules).
    cloud : CloudStart, optional
        A cloud mode's interfaces and address units (``eni``, ``azure``, ``crd``); its pods'
        and agents' addresses are (subnet set, address offset, 0), an address being a /32
        "node CIDR" of the subnet's set; ``cidr_rows`` is empty.
    """

    path: Path
    mode: str
    node_names: tuple[str, ...]
    cidr_rows: np.ndarray
    pod_keys: tuple[tuple[str, str], ...]
    pod_node: np.ndarray
    pod_addrs: np.ndarray
    agent_addrs: np.ndarray
    misfit: str = ""
    cloud: CloudStart | None = None

    @property
    def starts(self) -> bool:
        """Whether runs of :attr:`mode` start from the state (it fits the settings)."""
        return not self.misfit


def applies(mode: str) -> bool:
    """Whether a cluster running ``mode`` can be a starting state.

    The Cilium modes whose CiliumNodes say where every address is: the pool modes (node CIDRs)
    and ``eni``, ``azure``, ``crd`` (interfaces and ``spec.ipam.pool``); not ``aws-vpc-cni``
    (no CiliumNode) nor the modes no Helm ``ipam.mode`` names.
    """
    spec = REGISTRY.get(mode)
    return spec is not None and spec.helm_mode == mode and spec.rules in (RULES_NODE_CIDR, RULES_MULTI_POOL,
                                                                          RULES_CLOUD)


def read_initial_state(where: Where, value: object, base: Path | None, scenario, *,
                       misfit_ok: bool = False) -> InitialState:
    """Read ``initialState:`` and place its CIDRs and addresses in the layout of the cluster's mode.

    Parameters
    ----------
    where : Where
        The ``initialState`` key (messages name it and its line).
    value : object
        The key's value: a path, relative to the scenario's folder.
    base : Path or None
        The scenario's folder.
    scenario : Scenario
        The scenario built so far (its IPAM settings give the mode's layout).
    misfit_ok : bool
        When the node CIDRs do not fit the settings, return a state that starts no run
        (:attr:`InitialState.misfit`) instead of refusing it (sweep points that change
        the pools or masks).

    Returns
    -------
    InitialState

    Raises
    ------
    ConfigError
        One line: the file cannot be read, its mode is not a pool mode of this scenario, a node
        CIDR is outside the mode's pools or not of their mask, two nodes hold one CIDR, a pod's
        address is outside its node's CIDRs or taken twice, a pod's node is not listed.
    """
    if not isinstance(value, str) or not value.strip():
        where.fail(f"{show(value)} is not a file name; expected the path of an initial-state.json (written by "
                   "ipam-bench import), relative to the scenario")
    path = Path(value)
    if not path.is_absolute() and base is not None:
        path = base / path
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        where.fail(f"{value!r} cannot be read ({exc.strerror or exc}); expected an initial-state.json written by "
                   "ipam-bench import")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where.fail(f"{value!r}: invalid JSON ({' '.join(str(exc).split())}); expected an initial-state.json")
    reader = _Reader(where, value)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else doc
        reader.fail(("format",), f"{show(got)} is not the format; expected {FORMAT!r}")
    mode = doc.get("mode")
    if not applies(mode):
        reader.fail(("mode",), f"{show(mode)}: a cluster's state is a starting point only in the Cilium modes "
                    f"whose CiliumNodes hold it; expected one of: {', '.join(m for m in REGISTRY if applies(m))} "
                    "(aws-vpc-cni states are not reproduced; leave initialState out)")
    if mode not in scenario.modes and mode != scenario.ipam.mode:
        reader.fail(("mode",), f"{mode!r} is not among the scenario's modes ({', '.join(scenario.modes)}); "
                    "expected the mode the cluster runs to be one of them")
    layout = get_mode(mode).layout(scenario)
    if REGISTRY[mode].rules == RULES_CLOUD:
        return reader.place_cloud(doc, mode, layout, path, misfit_ok, scenario)
    return reader.place(doc, mode, layout, path, misfit_ok)


class _Reader:
    """Reads the file's nodes and pods; every error names ``initialState: FILE: key.path``."""

    def __init__(self, where: Where, name: str) -> None:
        self.where = where
        self.name = name

    def fail(self, path: tuple, message: str):
        inner = Where(path).error(message)
        self.where.fail(f"{self.name}: {inner}")

    def items(self, doc: dict, key: str) -> list:
        value = doc.get(key, [])
        if not isinstance(value, list):
            self.fail((key,), f"{show(value)} is not a list; expected a list of objects")
        for i, item in enumerate(value):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                self.fail((key, i), f"{show(item)}; expected an object with a 'name'")
        return value

    def cidr(self, path: tuple, text: object):
        try:
            return parse_cidr(text) if isinstance(text, str) else parse_cidr(str(text))
        except CIDRError as exc:
            self.fail(path, str(exc))

    def place(self, doc: dict, mode: str, layout: Layout, path: Path, misfit_ok: bool) -> InitialState:
        multi_pool = REGISTRY[mode].rules == RULES_MULTI_POOL
        enabled = set(layout.families)
        node_index: dict[str, int] = {}
        rows: list[tuple[int, int, int]] = []
        held: dict[tuple[int, int], str] = {}
        node_cidrs: list[list[tuple[object, int, int]]] = []  # per node: (network, set, index)
        for i, node in enumerate(self.items(doc, "nodes")):
            name = node["name"]
            if name in node_index:
                self.fail(("nodes", i, "name"), f"{name!r} is listed twice; expected each node once")
            node_index[name] = i
            mine: list[tuple[object, int, int]] = []
            for key, pool, cidrs in self._node_cidrs(node, i, multi_pool):
                for j, text in enumerate(cidrs):
                    where = ("nodes", i, *key, j)
                    net = self.cidr(where, text)
                    if family_index(net) not in enabled:
                        self.fail(where, f"{text!r} is IPv{net.version}, a family the scenario does not enable")
                    try:
                        s, index = self._locate(where, net, pool, layout, mode)
                    except ConfigError as exc:
                        if not misfit_ok:
                            raise
                        return _misfit(path, mode, exc)
                    if (s, index) in held:
                        self.fail(where, f"{text!r} is also held by node {held[s, index]!r}; expected each node "
                                  "CIDR held by one node")
                    if not multi_pool and any(family_index(n) == family_index(net) for n, _, _ in mine):
                        self.fail(where, f"{text!r} is a second IPv{net.version} CIDR of the node; expected one "
                                  f"per family ({mode} gives each node one CIDR per family)")
                    held[s, index] = name
                    mine.append((net, s, index))
                    rows.append((i, s, index))
            node_cidrs.append(mine)
        taken: dict[object, str] = {}

        def locate(where, ip, n):
            return self._offset(where, ip, doc["nodes"][n]["name"], node_cidrs[n])

        def inside(text, n):
            return _inside(text, node_cidrs[n])

        keys, pod_node, pod_addrs = self._pods(doc, node_index, locate, enabled, taken)
        return InitialState(
            path=path, mode=mode, node_names=tuple(node_index),
            cidr_rows=np.asarray(rows, dtype=np.int64).reshape(-1, 3),
            pod_keys=tuple(keys), pod_node=np.asarray(pod_node, dtype=np.int64),
            pod_addrs=np.asarray(pod_addrs, dtype=np.int64).reshape(-1, 2, 3),
            agent_addrs=self._agent_addrs(doc, len(node_cidrs), inside, locate, enabled, taken),
        )

    def place_cloud(self, doc: dict, mode: str, layout: Layout, path: Path, misfit_ok: bool,
                    scenario) -> InitialState:
        """A cloud mode's state: each node's interfaces and units, then pods and agents on their addresses.

        A pod's address must be one its node holds (a secondary address, an address of a /28
        prefix or of ``spec.ipam.pool``); the router and health addresses are taken where the
        node holds them, else the agent takes free ones of its pool.
        """
        limits = cloud_net(get_mode(mode), scenario).merged()
        placer = CloudPlacer(self, layout, limits, {})
        node_index: dict[str, int] = {}
        units_of: list[dict] = []
        for i, node in enumerate(self.items(doc, "nodes")):
            if node["name"] in node_index:
                self.fail(("nodes", i, "name"), f"{node['name']!r} is listed twice; expected each node once")
            node_index[node["name"]] = i
            try:
                units_of.append(placer.node(i, node))
            except ConfigError as exc:
                if not misfit_ok:
                    raise
                return _misfit(path, mode, exc)
        names = list(node_index)

        def locate(where, ip, n):
            if ip.version == 4:
                for s, spec in enumerate(layout.sets):
                    offset = int(ip) - int(spec.network.network_address)
                    if ip in spec.network and (s, offset) in units_of[n]:
                        return [s, offset, 0]
            self.fail(where, f"'{ip}' is not an address node {names[n]!r} holds (its interfaces' addresses and "
                      "prefixes, or spec.ipam.pool); expected an address of the node's pool")

        def inside(text, n):
            try:
                ip = ipaddress.ip_address(str(text))
            except ValueError:
                return True  # not an address: let the reader refuse it
            return ip.version == 4 and any(ip in spec.network and (s, int(ip) - int(spec.network.network_address))
                                           in units_of[n] for s, spec in enumerate(layout.sets))

        taken: dict[object, str] = {}
        enabled = set(layout.families)
        keys, pod_node, pod_addrs = self._pods(doc, node_index, locate, enabled, taken)
        return InitialState(
            path=path, mode=mode, node_names=tuple(names), cidr_rows=np.zeros((0, 3), np.int64),
            pod_keys=tuple(keys), pod_node=np.asarray(pod_node, dtype=np.int64),
            pod_addrs=np.asarray(pod_addrs, dtype=np.int64).reshape(-1, 2, 3),
            agent_addrs=self._agent_addrs(doc, len(names), inside, locate, enabled, taken),
            cloud=placer.start(),
        )

    def _agent_addrs(self, doc: dict, n_nodes: int, inside, locate, enabled: set, taken: dict) -> np.ndarray:
        """Each node's router and health addresses (CiliumNode ``spec.addresses`` and ``spec.health``).

        One the node does not hold (``inside(text, node)``) is left out: the agent then takes a new one,
        as cilium ``daemon/cmd/ipam.go`` does for a restored router address its CIDR does not hold.
        """
        out = np.full((n_nodes, 2, 2, 3), -1, dtype=np.int64)
        for i, node in enumerate(doc.get("nodes", [])):
            for kind, key in enumerate(("router", "health")):
                for j, text in enumerate(self._list(node.get(key, []), ("nodes", i, key), "addresses")):
                    where = ("nodes", i, key, j)
                    if not inside(text, i):
                        continue
                    ip, family = self._address(where, text, enabled, out[i, kind], taken,
                                               f"the {key} address of node {node['name']!r}")
                    out[i, kind, family] = locate(where, ip, i)
        return out

    def _list(self, value: object, path: tuple, what: str) -> list:
        if not isinstance(value, list):
            self.fail(path, f"{show(value)} is not a list; expected a list of {what}")
        return value

    def _address(self, where: tuple, text: object, enabled: set, held: np.ndarray, taken: dict, owner: str):
        """An address of an enabled family, the first of its family for its owner, held by no one else."""
        try:
            ip = ipaddress.ip_address(str(text))
        except ValueError:
            self.fail(where, f"{show(text)} is not an IP address; expected an IPv4 or IPv6 address")
        family = 0 if ip.version == 4 else 1
        if family not in enabled or held[family][0] >= 0:
            self.fail(where, f"{text!r}: expected one address per enabled family")
        if ip in taken:
            self.fail(where, f"{text!r} is also held by {taken[ip]}; expected each address held once")
        taken[ip] = owner
        return ip, family

    def _node_cidrs(self, node: dict, i: int, multi_pool: bool):
        """(key path, pool name or None, CIDR list) of a node: its pools' allocations in multi-pool."""
        if not multi_pool:
            value = node.get("podCIDRs", [])
            if not isinstance(value, list):
                self.fail(("nodes", i, "podCIDRs"), f"{show(value)} is not a list; expected a list of CIDRs")
            return [(("podCIDRs",), None, value)]
        pools = node.get("pools", {})
        if not isinstance(pools, dict):
            self.fail(("nodes", i, "pools"), f"{show(pools)} is not a mapping; expected pool name -> list of CIDRs")
        for pool, cidrs in pools.items():
            if not isinstance(cidrs, list):
                self.fail(("nodes", i, "pools", pool), f"{show(cidrs)} is not a list; expected a list of CIDRs")
        return [(("pools", pool), pool, cidrs) for pool, cidrs in pools.items()]

    def _locate(self, where: tuple, net, pool: str | None, layout: Layout, mode: str) -> tuple[int, int]:
        """The set of the layout holding ``net`` at its node mask, and the CIDR's index in it."""
        pool_id = None
        if pool is not None:
            if pool not in layout.pool_names:
                self.fail(where, f"pool {pool!r} is not a pool of the scenario; expected one of: "
                          f"{', '.join(layout.pool_names)}")
            pool_id = layout.pool_names.index(pool)
        for s, spec in enumerate(layout.sets):
            if (pool_id is not None and spec.pool != pool_id) or spec.network.version != net.version:
                continue
            if net.subnet_of(spec.network) and net.prefixlen == spec.node_mask:
                shift = net.max_prefixlen - spec.node_mask
                return s, (int(net.network_address) - int(spec.network.network_address)) >> shift
        ranges = [f"{spec.network}" for spec in layout.sets
                  if spec.network.version == net.version and (pool_id is None or spec.pool == pool_id)]
        masks = sorted({spec.node_mask for spec in layout.sets if spec.network.version == net.version
                        and (pool_id is None or spec.pool == pool_id)})
        owner = f"pool {pool!r}" if pool is not None else f"{mode}'s pool"
        self.fail(where, f"{net} is not a /{'/'.join(map(str, masks)) or '?'} CIDR inside {owner} "
                  f"({', '.join(ranges) or 'none'}); expected the node CIDRs to fit the scenario's settings for "
                  f"{mode}")

    def _pods(self, doc: dict, node_index: dict, locate, enabled: set, taken: dict):
        """The pods with an address for every enabled family: keys, node indices, ``locate``'s triples."""
        keys: list[tuple[str, str]] = []
        pod_node: list[int] = []
        pod_addrs: list[list[list[int]]] = []
        seen_pods: set[tuple[str, str]] = set()
        for i, pod in enumerate(self.items(doc, "pods")):
            key = (str(pod.get("namespace", "default")), pod["name"])
            if key in seen_pods:
                self.fail(("pods", i), f"pod {key[0]}/{key[1]} is listed twice; expected each pod once")
            seen_pods.add(key)
            ips = self._list(pod.get("ips", []), ("pods", i, "ips"), "addresses")
            if not ips:
                continue  # pending: the run schedules it by the mode's rules
            node = pod.get("node")
            if node not in node_index:
                self.fail(("pods", i, "node"), f"{show(node)} is not a node of the file; expected the name of a "
                          "listed node")
            n = node_index[node]
            addrs = np.full((2, 3), -1, dtype=np.int64)
            for j, text in enumerate(ips):
                where = ("pods", i, "ips", j)
                ip, family = self._address(where, text, enabled, addrs, taken, f"pod {key[0]}/{key[1]}")
                addrs[family] = locate(where, ip, n)
            if any(addrs[f][0] < 0 for f in enabled):
                continue  # an address for some family only: the run allocates the pod by the rules
            keys.append(key)
            pod_node.append(n)
            pod_addrs.append(addrs)
        return keys, pod_node, pod_addrs

    def _offset(self, where: tuple, ip, node: str, cidrs: list) -> list[int]:
        """(set, index, offset) of ``ip`` in the node's CIDR holding it (cilium ipallocator offsets)."""
        for net, s, index in cidrs:
            if ip.version == net.version and ip in net:
                size = range_size(net)
                base = int(net.network_address) + (1 if size > 2 else 0)
                usable, _ = pod_range(net, net.prefixlen)
                offset = int(ip) - base
                if not 0 <= offset < usable:
                    self.fail(where, f"'{ip}' is not a pod address of {net} (network, last or beyond the 65,536 "
                              "addresses an IPv6 node CIDR hands out); expected an address the agent hands out")
                return [s, index, offset]
        listed = ", ".join(str(net) for net, _, _ in cidrs) or "none"
        self.fail(where, f"'{ip}' is outside every CIDR of node {node!r} ({listed}); expected an address of the "
                  "node's CIDRs")


def _inside(text: object, cidrs: list) -> bool:
    """Whether ``text`` is an address inside one of a node's ``(network, set, index)`` CIDRs."""
    try:
        ip = ipaddress.ip_address(str(text))
    except ValueError:
        return True  # not an address: let the reader refuse it
    return any(ip.version == net.version and ip in net for net, _, _ in cidrs)


def _misfit(path: Path, mode: str, error: ConfigError) -> InitialState:
    """A state whose placement failed in a sweep point's settings: it starts no run."""
    return InitialState(path, mode, (), np.zeros((0, 3), np.int64), (), np.zeros(0, np.int64),
                        np.zeros((0, 2, 3), np.int64), np.zeros((0, 2, 2, 3), np.int64),
                        misfit=without_position(error))


def without_position(error: ConfigError) -> str:
    """The message of a refused initial state without its ``file:line:`` prefix (for the importer's note)."""
    text = str(error)
    marker = "initialState: "
    return text[text.index(marker) + len(marker):] if marker in text else text
