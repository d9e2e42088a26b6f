"""Slow, obvious reference allocators for the tests (stumpy's ``naive.py`` idea).

Written only with ``ipaddress``, Python ints and sets, straight from the
upstream Go code's behaviour (kubernetes ``cidrset/cidr_set.go``, cilium
``service/ipallocator/allocator.go`` + ``allocator/bitmap.go``), and sharing
no code with ``ipam_core``. Errors are :class:`RefError` with a ``kind`` and
the upstream message, so tests can compare both.
"""

from __future__ import annotations

import ipaddress


class RefError(Exception):
    """A reference allocator refused an operation.

    Parameters
    ----------
    kind : str
        ``"full"``, ``"not_in_range"``, ``"allocated"`` or ``"config"``.
    message : str
        Upstream's error text.
    """

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


class RefCIDRSet:
    """kube-controller-manager's CidrSet: a set of used block indices and a cursor.

    Parameters
    ----------
    cluster : str
        Cluster CIDR.
    node_mask : int
        Node CIDR prefix length (not shorter than the cluster prefix).
    """

    def __init__(self, cluster: str, node_mask: int):
        self.net = ipaddress.ip_network(cluster)
        self.node_mask = node_mask
        if self.net.version == 6 and node_mask - self.net.prefixlen > 16:
            raise RefError("config", "New CIDR set failed; the node CIDR size is too big")
        self.max = 2 ** (node_mask - self.net.prefixlen)
        self.used: set[int] = set()
        self.cursor = 0

    @property
    def allocated(self) -> int:
        return len(self.used)

    @property
    def is_full(self) -> bool:
        return len(self.used) == self.max

    def block(self, index: int):
        """The node CIDR of an index, by plain addition on the cluster base."""
        size = 2 ** (self.net.max_prefixlen - self.node_mask)
        start = self.net.network_address + index * size
        return ipaddress.ip_network(f"{start}/{self.node_mask}")

    def index(self, block) -> int:
        size = 2 ** (self.net.max_prefixlen - self.node_mask)
        return (int(block.network_address) - int(self.net.network_address)) // size

    def allocate_next(self) -> str:
        if len(self.used) == self.max:
            raise RefError(
                "full",
                "CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range",
            )
        candidate = self.cursor
        for _ in range(self.max):
            if candidate not in self.used:
                break
            candidate = (candidate + 1) % self.max
        self.used.add(candidate)
        self.cursor = (candidate + 1) % self.max
        return str(self.block(candidate))

    def covered(self, cidr: str) -> list[int]:
        """Indices of every node block the CIDR overlaps."""
        net = ipaddress.ip_network(cidr)
        if net.version != self.net.version or not net.overlaps(self.net):
            raise RefError("not_in_range", f"cidr {net} is out the range of cluster cidr {self.net}")
        if net.prefixlen <= self.net.prefixlen:
            return list(range(self.max))
        if net.prefixlen >= self.node_mask:
            return [self.index(net.supernet(new_prefix=self.node_mask))]
        return [self.index(b) for b in net.subnets(new_prefix=self.node_mask)]

    def occupy(self, cidr: str) -> int:
        before = len(self.used)
        self.used.update(self.covered(cidr))
        return len(self.used) - before

    def release(self, cidr: str) -> int:
        before = len(self.used)
        self.used.difference_update(self.covered(cidr))
        return before - len(self.used)


class RefPodIPRange:
    """Cilium's per-node IP range with the random starts supplied by the caller.

    Parameters
    ----------
    cidr : str
        Pod CIDR.
    """

    WINDOW_V6 = 65536

    def __init__(self, cidr: str):
        self.net = ipaddress.ip_network(cidr)
        host_bits = self.net.max_prefixlen - self.net.prefixlen
        if host_bits >= self.net.max_prefixlen - 1:
            size = 0  # upstream RangeSize guard (/0 and /1)
        elif self.net.version == 6:
            size = min(self.net.num_addresses, self.WINDOW_V6)
        else:
            size = self.net.num_addresses
        if size <= 2:
            first, count = 0, size
        else:
            first, count = 1, size - 2
        self.usable = [self.net.network_address + first + i for i in range(count)]
        self.offset = {ip: i for i, ip in enumerate(self.usable)}
        self.max = count
        self.used: set[int] = set()

    @property
    def free(self) -> int:
        return self.max - len(self.used)

    def allocate_next_with_start(self, start: int) -> str:
        if len(self.used) >= self.max:
            raise RefError("full", "range is full")
        for i in range(self.max):
            at = (start + i) % self.max
            if at not in self.used:
                self.used.add(at)
                return str(self.usable[at])
        raise AssertionError("unreachable: count says not full")

    def allocate(self, ip: str) -> None:
        addr = ipaddress.ip_address(ip)
        if addr not in self.offset:
            raise RefError(
                "not_in_range", f"provided IP is not in the valid range. The range of valid IPs is {self.net}"
            )
        if self.offset[addr] in self.used:
            raise RefError("allocated", "provided IP is already allocated")
        self.used.add(self.offset[addr])

    def release(self, ip: str) -> None:
        addr = ipaddress.ip_address(ip)
        if addr in self.offset:
            self.used.discard(self.offset[addr])

    def has(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        return addr in self.offset and self.offset[addr] in self.used

    def addresses_used(self) -> set[str]:
        return {str(self.usable[i]) for i in self.used}
