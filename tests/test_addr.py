"""Address math and compiled address formatting (ipam_core.addr, kernels/addrfmt)."""

from __future__ import annotations

import ipaddress

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipam_core import addr
from ipam_core.errors import CIDRError, ConfigError
from ipam_core.kernels._jit import FULL
from ipam_core.kernels.addrfmt import fmt_ipv6


# --------------------------------------------------------------------------- parsing
@pytest.mark.parametrize(
    "text, family, fragment",
    [
        ("10.0.0.1/8", None, "host bits set (expected a network address such as 10.0.0.0/8)"),
        ("fd00::1/64", None, "host bits set (expected a network address such as fd00::/64)"),
        ("10.0.0.0/33", None, "expected an IPv4 or IPv6 prefix"),
        ("banana", None, "expected an IPv4 or IPv6 prefix"),
        ("", None, "expected an IPv4 or IPv6 prefix"),
        ("10.0.0.0/8", 6, "expected an IPv6 prefix, got IPv4"),
        ("fd00::/8", 4, "expected an IPv4 prefix, got IPv6"),
    ],
)
def test_parse_cidr_errors_are_one_line_and_name_the_value(text, family, fragment):
    with pytest.raises(CIDRError) as err:
        addr.parse_cidr(text, family)
    message = str(err.value)
    assert "\n" not in message
    assert repr(text) in message
    assert fragment in message


def test_parse_cidr_accepts_both_families_and_strips_blanks():
    assert addr.parse_cidr(" 10.244.0.0/16 ") == ipaddress.ip_network("10.244.0.0/16")
    assert addr.parse_cidr("2001:DB8::/32", 6) == ipaddress.ip_network("2001:db8::/32")


@pytest.mark.parametrize("text", ["10.0.0.256", "fd00:::1", "10.0.0.0/8", "x"])
def test_parse_ip_refuses_garbage(text):
    with pytest.raises(CIDRError, match="invalid IP address"):
        addr.parse_ip(text)


def test_parse_ip_family_check():
    assert str(addr.parse_ip("fd00::7", 6)) == "fd00::7"
    with pytest.raises(CIDRError, match="expected an IPv4 address, got IPv6"):
        addr.parse_ip("fd00::7", 4)


# --------------------------------------------------------------------------- offsets
@pytest.mark.parametrize(
    "network, offset, expected",
    [
        ("10.0.0.0/24", 0, "10.0.0.0"),
        ("10.0.0.0/24", 255, "10.0.0.255"),
        ("10.1.0.0/16", 258, "10.1.1.2"),
        ("fd00::/64", 65535, "fd00::ffff"),
        ("2001:db8::/32", 2**64, "2001:db8:0:1::"),
    ],
)
def test_address_at_and_offset_of_round_trip(network, offset, expected):
    assert str(addr.address_at(network, offset)) == expected
    assert addr.offset_of(network, expected) == offset


def test_offset_errors():
    with pytest.raises(CIDRError, match="offset 256 is outside 10.0.0.0/24"):
        addr.address_at("10.0.0.0/24", 256)
    with pytest.raises(CIDRError, match="offset -1 is outside"):
        addr.address_at("10.0.0.0/24", -1)
    with pytest.raises(CIDRError, match="address 10.0.1.0 is outside 10.0.0.0/24"):
        addr.offset_of("10.0.0.0/24", "10.0.1.0")
    with pytest.raises(CIDRError, match="outside"):
        addr.offset_of("10.0.0.0/24", "fd00::1")


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_halves_round_trip(value):
    hi, lo = addr.to_halves(value)
    assert isinstance(hi, np.uint64) and isinstance(lo, np.uint64)
    assert addr.from_halves(hi, lo) == value
    assert int(hi) == value // 2**64 and int(lo) == value % 2**64


def test_network_halves():
    hi, lo = addr.network_halves("2001:db8:1:2:3:4:5:0/112")
    assert (int(hi), int(lo)) == (0x20010DB800010002, 0x0003000400050000)
    assert tuple(map(int, addr.network_halves("10.0.0.0/8"))) == (0, 0x0A000000)
    with pytest.raises(CIDRError):
        addr.to_halves(2**128)


# --------------------------------------------------------------------------- overlap
@pytest.mark.parametrize(
    "a, b, expected",
    [
        ("10.0.0.0/8", "10.200.0.0/16", True),
        ("10.200.0.0/16", "10.0.0.0/8", True),
        ("10.0.0.0/16", "10.1.0.0/16", False),
        ("10.0.0.0/24", "10.0.0.0/24", True),
        ("10.0.0.255/32", "10.0.1.0/24", False),
        ("0.0.0.0/0", "192.168.1.0/24", True),
        ("fd00::/8", "fd12:3456::/32", True),
        ("fd00::/64", "fd00:0:0:1::/64", False),
        ("10.0.0.0/8", "::/0", False),
    ],
)
def test_overlaps(a, b, expected):
    assert addr.overlaps(a, b) is expected
    assert addr.overlaps(ipaddress.ip_network(b), a) is expected


def test_check_disjoint_accepts_disjoint_lists_and_keeps_order():
    nets = addr.check_disjoint(["10.1.0.0/16", "10.0.0.0/16", "fd00::/64", "10.2.0.0/15"], "pools")
    assert [str(n) for n in nets] == ["10.1.0.0/16", "10.0.0.0/16", "fd00::/64", "10.2.0.0/15"]
    assert addr.check_disjoint([], "pools") == []


@pytest.mark.parametrize(
    "cidrs, pair",
    [
        (["10.0.0.0/16", "10.1.0.0/16", "10.0.128.0/17"], ("10.0.0.0/16", "10.0.128.0/17")),
        # the containing CIDR is far from its subnet in sorted order
        (["10.0.0.0/8", "11.0.0.0/8", "10.200.0.0/16", "10.3.0.0/16"], ("10.0.0.0/8", "10.3.0.0/16")),
        (["fd00::/64", "10.0.0.0/8", "fd00::/48"], ("fd00::/48", "fd00::/64")),
        (["192.168.0.0/24", "192.168.0.0/24"], ("192.168.0.0/24", "192.168.0.0/24")),
    ],
)
def test_check_disjoint_names_both_overlapping_values(cidrs, pair):
    with pytest.raises(ConfigError) as err:
        addr.check_disjoint(cidrs, "clusterPoolIPv4PodCIDRList")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("clusterPoolIPv4PodCIDRList:")
    assert f"{pair[0]} overlaps {pair[1]}" in message


def test_check_disjoint_parses_every_value():
    with pytest.raises(CIDRError, match="'10.0.0.1/8'"):
        addr.check_disjoint(["10.1.0.0/16", "10.0.0.1/8"], "pools")


@given(st.lists(st.tuples(st.integers(0, 255), st.integers(8, 12)), min_size=0, max_size=12))
def test_check_disjoint_agrees_with_pairwise_overlaps(specs):
    cidrs = [str(ipaddress.ip_network((n << 24, p), strict=False)) for n, p in specs]
    nets = [ipaddress.ip_network(c) for c in cidrs]
    clash = any(nets[i].overlaps(nets[j]) for i in range(len(nets)) for j in range(i + 1, len(nets)))
    if clash:
        with pytest.raises(ConfigError):
            addr.check_disjoint(cidrs, "x")
    else:
        assert len(addr.check_disjoint(cidrs, "x")) == len(cidrs)


# --------------------------------------------------------------------------- formatting
def test_format_addresses_ipv4_matches_ipaddress():
    rng = np.random.default_rng(7)
    offsets = rng.integers(0, 2**24, size=5000)
    got = addr.format_addresses("10.0.0.0/8", offsets)
    assert got.type == pa.string()
    base = ipaddress.ip_address("10.0.0.0")
    assert got.to_pylist() == [str(base + int(o)) for o in offsets]


def test_format_addresses_edges():
    assert addr.format_addresses("0.0.0.0/0", [0, 2**32 - 1, 0x01020304]).to_pylist() == [
        "0.0.0.0",
        "255.255.255.255",
        "1.2.3.4",
    ]
    assert addr.format_addresses("::/0", [0, 1, 2**48]).to_pylist() == ["::", "::1", "::1:0:0:0"]
    empty = addr.format_addresses("10.0.0.0/8", np.empty(0, dtype=np.int64))
    assert len(empty) == 0 and empty.type == pa.string()


def test_format_addresses_refuses_offsets_outside_the_network():
    with pytest.raises(CIDRError, match="offset 256 is outside 10.0.0.0/24"):
        addr.format_addresses("10.0.0.0/24", [1, 256])
    with pytest.raises(CIDRError, match="offset -3"):
        addr.format_addresses("fd00::/64", [-3])
    with pytest.raises(CIDRError, match="must be integers"):
        addr.format_addresses("10.0.0.0/24", [1.5])


def test_format_addresses_switches_to_large_string(monkeypatch):
    monkeypatch.setattr(addr, "STRING_OFFSET_LIMIT", 40)
    got = addr.format_addresses("10.0.0.0/24", [1, 2, 3])
    assert got.type == pa.large_string()
    assert got.to_pylist() == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


# IPv6 values built from groups that are mostly zero, so runs of every length
# and position (and ties) show up.
_groups = st.lists(st.one_of(st.just(0), st.just(0), st.integers(1, 0xF), st.integers(0, 0xFFFF)), min_size=8, max_size=8)


def _join(groups):
    value = 0
    for g in groups:
        value = (value << 16) | g
    return value


@given(st.lists(_groups, min_size=1, max_size=20))
def test_ipv6_text_matches_ipaddress(group_lists):
    for groups in group_lists:
        value = _join(groups)
        ip = ipaddress.IPv6Address(value)
        if ip.ipv4_mapped is not None:
            continue  # no dotted tail wanted; Python >= 3.13 prints one
        # The /65 holding the value keeps the offset inside int64.
        net = ipaddress.ip_network((value, 65), strict=False)
        got = addr.format_addresses(net, [value - int(net.network_address)])
        assert got.to_pylist() == [str(ip)]


@given(st.lists(st.integers(0, 2**32 - 1), max_size=50))
def test_ipv4_text_matches_ipaddress(values):
    got = addr.format_addresses("0.0.0.0/0", values)
    assert got.to_pylist() == [str(ipaddress.IPv4Address(v)) for v in values]


def test_ipv6_tie_takes_the_leftmost_run_and_single_zero_stays():
    values = ["1:0:0:2:0:0:3:4", "1:0:2:3:4:5:6:7", "0:0:1:0:0:0:1:0", "1::", "::"]
    for text in values:
        value = int(ipaddress.IPv6Address(text))
        net = ipaddress.ip_network((value, 65), strict=False)
        assert addr.format_addresses(net, [value - int(net.network_address)])[0].as_py() == str(
            ipaddress.IPv6Address(text)
        )


def test_ipv6_kernel_carries_into_the_high_half():
    buf = np.empty(64, dtype=np.uint8)
    bounds = np.empty(3, dtype=np.int64)
    n = fmt_ipv6(np.uint64(0), FULL, np.array([0, 1]), 0, np.empty(0, dtype=np.uint8), buf, bounds)
    text = bytes(buf[:n]).decode()
    assert text[: bounds[1]] == str(ipaddress.IPv6Address(2**64 - 1))
    assert text[bounds[1] : bounds[2]] == str(ipaddress.IPv6Address(2**64))


@pytest.mark.parametrize(
    "cluster, mask",
    [("10.96.0.0/20", 24), ("10.0.0.0/8", 26), ("192.168.5.208/28", 32), ("2001:db8::/48", 64), ("fd00::/104", 120)],
)
def test_format_cidrs_matches_ipaddress_subnets(cluster, mask):
    net = ipaddress.ip_network(cluster)
    count = 2 ** (mask - net.prefixlen)
    idx = np.unique(np.random.default_rng(3).integers(0, count, size=min(count, 300)))
    expected_all = net.subnets(new_prefix=mask)
    wanted = set(idx.tolist())
    expected = [str(s) for i, s in enumerate(expected_all) if i in wanted] if count <= 4096 else None
    got = addr.format_cidrs(cluster, mask, idx).to_pylist()
    if expected is None:
        size = 2 ** (net.max_prefixlen - mask)
        expected = [str(ipaddress.ip_network((int(net.network_address) + int(i) * size, mask))) for i in idx]
    assert got == expected


def test_format_cidrs_whole_space_and_errors():
    assert addr.format_cidrs("::/0", 0, [0]).to_pylist() == ["::/0"]
    assert addr.format_cidrs("0.0.0.0/0", 32, [2**32 - 1]).to_pylist() == ["255.255.255.255/32"]
    with pytest.raises(CIDRError, match="index 16 is outside 10.96.0.0/20"):
        addr.format_cidrs("10.96.0.0/20", 24, [0, 16])
    with pytest.raises(CIDRError, match="node mask 19 does not fit 10.96.0.0/20"):
        addr.format_cidrs("10.96.0.0/20", 19, [0])


# --------------------------------------------------------------------------- fast keys
_TRICKY_CIDRS = [
    "10.0.5.0/24", "0.0.0.0/0", "255.255.255.255/32", "10.0.0.0/024", "10.0.0.0/08", "010.0.0.0/8",
    "10.0.0.1/24", " 10.0.0.0/8", "10.0.0.0/8 ", "10.0.0.0/33", "10.0.0/24", "256.0.0.0/8", "10.0.0.0/",
    "10.0.0.0", "1.2.3.4/+8", "１0.0.0.0/8", "fd00::/64", "FD00::/64", "fd00::1/64", "::/0", "::ffff:1.2.3.0/120",
    "fd00::/129", "fd00:::/64", "fe80::%eth0/64", "", "/", "x/8",
]


@pytest.mark.parametrize("text", _TRICKY_CIDRS)
def test_cidr_key_accepts_and_refuses_exactly_like_parse_cidr(text):
    try:
        net = addr.parse_cidr(text)
    except CIDRError as exc:
        with pytest.raises(CIDRError) as err:
            addr.cidr_key(text)
        assert str(err.value) == str(exc)
    else:
        assert addr.cidr_key(text) == (net.version, int(net.network_address), net.prefixlen)


@pytest.mark.parametrize(
    "text",
    ["10.0.5.1", "0.0.0.0", "010.0.0.1", "10.0.0.1 ", "1.2.3", "fd00::1", "FD00::A", "::ffff:1.2.3.4", "fd00::1::2",
     "fe80::1%eth0", "10.0.0.0/8", "", "banana"],
)
def test_ip_key_accepts_and_refuses_exactly_like_parse_ip(text):
    try:
        ip = addr.parse_ip(text)
    except CIDRError as exc:
        with pytest.raises(CIDRError) as err:
            addr.ip_key(text)
        assert str(err.value) == str(exc)
    else:
        assert addr.ip_key(text) == (ip.version, int(ip))


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**128 - 1))
def test_ip_text_matches_ipaddress(v4, v6):
    assert addr.ip_text(4, v4) == str(ipaddress.IPv4Address(v4))
    assert addr.ip_text(6, v6) == str(ipaddress.IPv6Address(v6))
