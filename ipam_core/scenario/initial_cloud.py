"""A cloud cluster's own state (``eni``, ``azure``, ``crd``) placed in the subnets of its mode.

What the CiliumNodes say, as ``ipam-bench import`` writes it to ``initial-state.json``: per node
its interfaces (ENIs: cilium ``pkg/aws/eni/types`` ``ENI``, ``status.eni.enis``; Azure NICs:
``pkg/azure/types`` ``AzureInterface``, ``status.azure.interfaces``) with their subnet, primary
address, secondary addresses and /28 prefixes, else the addresses of ``spec.ipam.pool`` (``crd``,
and nodes whose CiliumNode lists no interface); per pod its address. Each address becomes the
subnet offset the engine's unit tables hold (:mod:`ipam_core.modes.cloud_initial`): a subnet is a
set of the mode's layout with node mask /32, so an address is "CIDR" ``offset`` of its set, at pod
offset 0, the same (set, index, offset) triple the pool modes use.
"""

from __future__ import annotations

import ipaddress

import numpy as np

from ipam_core.cloud.limits import PREFIX_SIZE
from ipam_core.modes.cloud_initial import UN_SET, CloudStart


class CloudPlacer:
    """Places one cloud node's interfaces and addresses; errors through the reader's ``fail``.

    Parameters
    ----------
    reader : object
        :class:`ipam_core.scenario.initial_state._Reader` (``fail``, ``_list``).
    layout : ipam_core.engine.layout.Layout
        The mode's subnets.
    limits : ipam_core.engine.cloud_config.CloudConfig
        The run's tables (:meth:`~ipam_core.engine.cloud_net.CloudNet.merged`): interfaces per
        node, units per interface, whether the cloud keeps each subnet's first four and last address.
    taken : dict
        Address -> owner, shared with the pods' and agents' addresses.
    """

    def __init__(self, reader, layout, limits, taken: dict) -> None:
        self.reader = reader
        self.subnets = [spec.network for spec in layout.sets]
        self.limits = limits
        self.taken = taken
        self.ifaces: list[tuple[int, int, int, int]] = []
        self.units: list[tuple[int, int, int, int, int]] = []
        self.per_iface: dict[tuple[int, int], int] = {}

    def node(self, i: int, node: dict) -> dict:
        """Place node ``i``'s interfaces and units; returns ``(set, offset) -> unit`` of its pod addresses."""
        owner = f"node {node['name']!r}"
        enis = self.reader._list(node.get("enis", []), ("nodes", i, "enis"), "interfaces")
        mine: dict[tuple[int, int], int] = {}
        if not enis:  # crd, or a CiliumNode without interfaces: spec.ipam.pool on interface 0
            pool = self.reader._list(node.get("addresses", []), ("nodes", i, "addresses"), "addresses")
            for j, text in enumerate(pool):
                s, offset = self._address(("nodes", i, "addresses", j), text, None, owner)
                self._unit(("nodes", i, "addresses", j), i, 0, s, offset, 1, mine)
            if pool:
                self.ifaces.append((i, 0, self.units[-len(pool)][UN_SET], -1))
            return mine
        numbers: set[int] = set()
        for k, eni in enumerate(enis):
            where = ("nodes", i, "enis", k)
            if not isinstance(eni, dict):
                self.reader.fail(where, f"{eni!r}; expected an interface object")
            number = eni.get("number")
            number = k if number is None else number
            if not isinstance(number, int) or not 0 <= number < max(self.limits.ifaces, 1) or number in numbers:
                self.reader.fail((*where, "number"), f"{number!r}: expected a distinct interface index below "
                                 f"{self.limits.ifaces} (the interfaces the scenario's instance type attaches)")
            numbers.add(number)
            s = self._subnet((*where, "subnet"), eni.get("subnet"))
            primary = -1
            if eni.get("ip"):
                _, primary = self._address((*where, "ip"), eni["ip"], s, f"the primary address of {eni.get('id')!r}")
            self.ifaces.append((i, number, s, primary))
            for j, text in enumerate(self.reader._list(eni.get("addresses", []), (*where, "addresses"), "addresses")):
                _, offset = self._address((*where, "addresses", j), text, s, owner)
                self._unit((*where, "addresses", j), i, number, s, offset, 1, mine)
            for j, text in enumerate(self.reader._list(eni.get("prefixes", []), (*where, "prefixes"), "prefixes")):
                self._prefix((*where, "prefixes", j), text, i, number, s, owner, mine)
        return mine

    def start(self) -> CloudStart:
        """The placed interfaces and units."""
        return CloudStart(np.asarray(self.ifaces, dtype=np.int64).reshape(-1, 4),
                          np.asarray(self.units, dtype=np.int64).reshape(-1, 5))

    def _subnet(self, where: tuple, text: object) -> int:
        try:
            net = ipaddress.ip_network(str(text))
        except ValueError:
            self.reader.fail(where, f"{text!r} is not a CIDR; expected the interface's subnet")
        for s, subnet in enumerate(self.subnets):
            if subnet == net:
                return s
        self.reader.fail(where, f"{text!r} is not a subnet of the scenario ({', '.join(map(str, self.subnets))}); "
                         "expected each interface's subnet among cloud.subnets")

    def _address(self, where: tuple, text: object, s: int | None, owner: str) -> tuple[int, int]:
        """(set, offset) of an IPv4 address inside subnet ``s`` (any subnet when None), held once."""
        try:
            ip = ipaddress.IPv4Address(str(text))
        except ValueError:
            self.reader.fail(where, f"{text!r} is not an IPv4 address; expected an address of a subnet")
        choices = range(len(self.subnets)) if s is None else (s,)
        for t in choices:
            if ip in self.subnets[t]:
                offset = int(ip) - int(self.subnets[t].network_address)
                self._reserved(where, text, t, offset)
                if ip in self.taken:
                    self.reader.fail(where, f"{text!r} is also held by {self.taken[ip]}; expected each address "
                                     "held once")
                self.taken[ip] = owner
                return t, offset
        inside = self.subnets[s] if s is not None else ", ".join(map(str, self.subnets))
        self.reader.fail(where, f"{text!r} is outside {inside}; expected an address of the interface's subnet")

    def _reserved(self, where: tuple, text: object, s: int, offset: int) -> None:
        size = self.subnets[s].num_addresses
        if self.limits.subnet_reserved and size >= 8 and (offset < 4 or offset == size - 1):
            self.reader.fail(where, f"{text!r} is an address the cloud reserves in {self.subnets[s]} (its first "
                             "four and last); expected an address it hands out")

    def _prefix(self, where: tuple, text: object, i: int, iface: int, s: int, owner: str, mine: dict) -> None:
        try:
            net = ipaddress.IPv4Network(str(text))
        except ValueError:
            self.reader.fail(where, f"{text!r} is not an IPv4 CIDR; expected a /28 prefix")
        if net.prefixlen != 28 or not net.subnet_of(self.subnets[s]):
            self.reader.fail(where, f"{text!r}: expected a /28 prefix inside {self.subnets[s]}")
        first = int(net.network_address) - int(self.subnets[s].network_address)
        for k in range(PREFIX_SIZE):
            ip = net.network_address + k
            self._reserved(where, str(ip), s, first + k)
            if ip in self.taken:
                self.reader.fail(where, f"{text!r} holds {ip}, also held by {self.taken[ip]}; expected each "
                                 "address held once")
            self.taken[ip] = owner
        self._unit(where, i, iface, s, first, PREFIX_SIZE, mine)

    def _unit(self, where: tuple, i: int, iface: int, s: int, offset: int, size: int, mine: dict) -> None:
        held = self.per_iface.get((i, iface), 0)
        if held >= self.limits.units:
            self.reader.fail(where, f"interface {iface} holds more than {self.limits.units} addresses and prefixes; "
                             "expected at most what one interface of the scenario's instance type holds")
        for k in range(size):
            mine[s, offset + k] = len(self.units)
        self.per_iface[i, iface] = held + 1
        self.units.append((i, iface, s, offset, size))
