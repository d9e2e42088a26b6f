"""Rules of the cloud modes against upstream's own figures: test tables, worked examples, vendor tables."""

from __future__ import annotations

import csv
import math
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipam_core.cloud import aks, gke, limits, vpc_cni, watermarks
from ipam_core.errors import ConfigError

DATA = Path(str(resources.files("ipam_core").joinpath("data")))


def rows(name):
    with open(DATA / name, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- instance limits
def test_packaged_limits_table_has_every_row_and_the_max_pods_rule():
    table = limits.load_instance_limits()
    raw = rows("aws_vpc_cni_instance_limits.csv")
    assert len(table) == len(raw) == 1391
    for r in raw:
        lim = table[r["instance_type"]]
        assert (lim.enis, lim.ipv4_per_eni, lim.max_pods) == (int(r["enis"]), int(r["ipv4_per_eni"]), int(r["max_pods"]))
        # the file's other two columns follow from the same limits
        assert limits.aws_max_pods(lim, custom_networking=True) == int(r["max_pods_custom_networking"])
        if r["max_pods_prefix_delegation_uncapped"]:
            uncapped = lim.enis * (lim.ipv4_per_eni - 1) * 16 + 2
            assert uncapped == int(r["max_pods_prefix_delegation_uncapped"])


def test_packaged_limits_match_the_upstream_eni_max_pods_file():
    # misc/eni-max-pods.txt ships beside the CSV in the shared data: "<type> <max pods>" per line
    shared = Path("/work/shared/data/aws_vpc_cni_eni-max-pods.txt")
    if not shared.exists():
        pytest.skip("shared reference data not present")
    table = limits.load_instance_limits()
    pairs = [line.split() for line in shared.read_text().splitlines() if line and not line.startswith("#")]
    assert len(pairs) == len(table)
    for name, pods in pairs:
        assert table[name].max_pods == int(pods)


@pytest.mark.parametrize(
    "instance, pd, vcpus, expected",
    [
        ("t3.small", False, None, 11),  # eni-max-pods.txt
        ("m5.large", False, None, 29),
        ("p3dn.24xlarge", False, None, 737),  # uncapped without a vCPU count (the bootstrap's table)
        ("p3dn.24xlarge", False, 96, 250),  # max-pods-calculator.sh: > 30 vCPUs -> 250 ceiling
        ("t3.small", True, 2, 110),  # 3 * 3 * 16 + 2 = 146, capped at 110 (<= 30 vCPUs)
        ("m5.large", True, None, 110),  # 434 uncapped; without vCPUs the low ceiling
        ("c4.large", True, None, 29),  # xen: no prefix delegation, secondary IPs as upstream falls back
    ],
)
def test_aws_max_pods_follows_the_calculator(instance, pd, vcpus, expected):
    assert limits.aws_max_pods(limits.instance_limits(instance), prefix_delegation=pd, vcpus=vcpus) == expected


def test_unknown_instance_type_is_one_line_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"unknown EC2 instance type 'm5.larg' \(did you mean 'm5.large'\?\)"):
        limits.instance_limits("m5.larg")


def test_limits_file_errors_name_file_line_and_column(tmp_path):
    good = (DATA / "aws_vpc_cni_instance_limits.csv").read_text().splitlines()
    bad = tmp_path / "limits.csv"
    bad.write_text("\n".join([good[0], good[1].replace(",4,15,58,", ",4,15,59,")]) + "\n")
    with pytest.raises(ConfigError, match=r"limits.csv:2: max_pods 59 .*enis\*\(ipv4_per_eni-1\)\+2 = 58"):
        limits.load_instance_limits(bad)
    bad.write_text("instance_type,enis\nx,1\n")
    with pytest.raises(ConfigError, match="missing column 'ipv4_per_eni'"):
        limits.load_instance_limits(bad)
    custom = tmp_path / "ok.csv"
    custom.write_text("\n".join(good[:3]) + "\n")
    assert set(limits.load_instance_limits(custom)) == {good[1].split(",")[0], good[2].split(",")[0]}


# ---------------------------------------------------------------- Cilium watermarks
# cilium pkg/ipam/node_test.go neededDef / excessDef (available, used, pre, min, max|maxAbove, result)
NEEDED = [(0, 0, 0, 16, 0, 16), (0, 0, 8, 16, 0, 16), (0, 0, 16, 8, 0, 16), (0, 0, 16, 0, 0, 16), (8, 0, 0, 16, 0, 8),
          (8, 4, 8, 0, 0, 4), (8, 4, 8, 8, 0, 4), (8, 4, 8, 8, 6, 0), (8, 4, 8, 0, 8, 0), (4, 4, 8, 0, 8, 4)]
EXCESS = [(0, 0, 0, 16, 0, 0), (15, 0, 8, 16, 8, 0), (17, 0, 8, 16, 0, 9), (20, 0, 8, 16, 4, 0), (21, 0, 8, 0, 4, 9),
          (20, 0, 8, 20, 8, 0), (16, 1, 8, 16, 8, 0), (20, 4, 8, 17, 8, 0), (20, 4, 8, 0, 0, 8), (20, 4, 8, 0, 8, 0)]


@pytest.mark.parametrize("available, used, pre, minimum, maximum, expected", NEEDED)
def test_needed_ips_matches_upstream_table(available, used, pre, minimum, maximum, expected):
    assert watermarks.needed_ips(available, used, pre, minimum, maximum) == expected


@pytest.mark.parametrize("available, used, pre, minimum, above, expected", EXCESS)
def test_excess_ips_matches_upstream_table(available, used, pre, minimum, above, expected):
    assert watermarks.excess_ips(available, used, pre, minimum, above) == expected


@given(st.integers(0, 300), st.integers(0, 300), st.integers(0, 32), st.integers(0, 64), st.integers(0, 400))
def test_needed_ips_meets_the_watermarks_within_max_allocate(available, used, pre, minimum, maximum):
    used = min(used, available)
    needed = watermarks.needed_ips(available, used, pre, minimum, maximum)
    assert needed >= 0
    if maximum:
        assert needed == 0 or available + needed <= maximum
    if maximum == 0 or (available <= maximum and used + pre <= maximum and minimum <= maximum):
        assert available + needed - used >= pre  # pre-allocate free addresses
        assert available + needed >= minimum  # the min-allocate floor


@pytest.mark.parametrize("needed, above, pending, expected", [(0, 4, 10, 0), (8, 0, 3, 8), (8, 0, 12, 12), (8, 2, 12, 14)])
def test_surge_adds_pending_pods_beyond_needed(needed, above, pending, expected):
    # pkg/ipam/node.go determineMaintenanceAction: surge = pending - needed when pending > needed
    assert watermarks.max_ips_to_allocate(needed, above, pending) == expected


def test_eni_instance_figures():
    m5 = limits.instance_limits("m5.large")
    # cilium pkg/aws/eni/node_test.go: m5.large, first-interface-index 0 -> 3 * (10 - 1) = 27
    assert watermarks.eni_max_allocatable(m5, 0) == 27
    assert watermarks.eni_max_allocatable(m5, 1) == 18
    assert watermarks.eni_max_allocatable(m5, 0, prefix_delegation=True) == 27 * 16
    assert watermarks.eni_default_pre_allocate(m5) == 8
    t3nano = limits.instance_limits("t3.nano")
    assert watermarks.eni_default_pre_allocate(t3nano) == min(8, t3nano.enis * (t3nano.ipv4_per_eni - 1))
    assert watermarks.eni_default_pre_allocate(m5, 3) == 0
    assert watermarks.pool_minimum(0, 0, True) == 2 and watermarks.pool_minimum(0, 8, True) == 8
    assert watermarks.pool_minimum(12, 8, True) == 12 and watermarks.pool_minimum(0, 0, False) == 1


# ---------------------------------------------------------------- AWS VPC CNI worked examples
def _target(text):
    return 0 if text.strip() == "-" else int(text)


def _ints(text):
    return [int(x) for x in text.split(",")] if text.strip() else None


SECONDARY = rows("aws_vpc_cni_warm_pool_examples_secondary_ip.csv")
PREFIX = rows("aws_vpc_cni_warm_pool_examples_prefix.csv")


def _id(r):
    return "-".join(f"{k}={v}" for k, v in r.items() if k in ("instance_type", "warm_eni_target", "warm_prefix_target",
                                                              "warm_ip_target", "minimum_ip_target", "pods"))


@pytest.mark.parametrize("row", SECONDARY, ids=[_id(r) for r in SECONDARY])
def test_secondary_ip_worked_examples(row):
    """docs/eni-and-ip-target.md, every row.

    The "IPs per ENI" column is compared as a multiset: ipamd keeps its ENIs in a Go map, so
    the order the doc prints is not an order ipamd has (t3.small, WARM_IP_TARGET 2,
    MINIMUM_IP_TARGET 5, 0 pods prints 2,3 where the primary ENI is filled first).
    """
    lim = limits.instance_limits(row["instance_type"])
    warm_eni = _target(row["warm_eni_target"])
    t = vpc_cni.Targets(warm_eni=warm_eni, warm_ip=_target(row["warm_ip_target"]),
                        minimum_ip=_target(row["minimum_ip_target"]), prefix_delegation=False)
    pool = vpc_cni.warm_pool_state(lim, t, int(row["pods"]))
    assert pool.enis == int(row["attached_enis"])
    assert pool.total == int(row["attached_secondary_ips"])
    assert pool.unused_ips == int(row["unused_ips"])
    assert sorted(pool.per_eni()) == sorted(_ints(row["ips_per_eni"]))


#: Rows of docs/prefix-and-ip-target.md that contradict themselves or the doc's own rules,
#: with the columns that are still checked.
PREFIX_CONTRADICTIONS = {
    ("t3.small", "-", "7", "20", "0"): (
        ("attached prefixes 1 and unused IPs 16 (one prefix) but pods per prefix '0,0' and prefixes per ENI 2 (two); "
         "MINIMUM_IP_TARGET 20 needs two prefixes, as the next row (5 pods, '5,0') shows"),
        {"enis", "pod_per_enis", "pod_per_prefixes", "prefixes_per_eni"},
    ),
    ("p3dn.24xlarge", "1", "-", "-", "3"): (
        ("2 ENIs, the second with no prefix: the doc says a new ENI comes only after the attached ones run out of "
         "prefixes (p3dn ENIs hold 49) and ipamd never attaches an ENI without a prefix"),
        {"attached_prefixes", "unused_prefixes", "unused_ips"},
    ),
    ("p3dn.24xlarge", "1", "-", "-", "95"): (
        "3 ENIs, two without prefixes, for 7 prefixes: same contradiction",
        {"attached_prefixes", "unused_prefixes", "unused_ips"},
    ),
    ("p3dn.24xlarge", "-", "5", "10", "45"): (
        "2 ENIs, the second without prefixes, for 4 prefixes: same contradiction",
        {"attached_prefixes", "unused_prefixes", "unused_ips"},
    ),
}
ALL_PREFIX_COLUMNS = {"enis", "pod_per_enis", "attached_prefixes", "pod_per_prefixes", "unused_prefixes",
                      "prefixes_per_eni", "unused_ips"}


@pytest.mark.parametrize("row", PREFIX, ids=[_id(r) for r in PREFIX])
def test_prefix_delegation_worked_examples(row):
    """docs/prefix-and-ip-target.md: every column of every row, except the noted contradictions."""
    key = (row["instance_type"], row["warm_prefix_target"], row["warm_ip_target"], row["minimum_ip_target"], row["pods"])
    _, checked = PREFIX_CONTRADICTIONS.get(key, ("", ALL_PREFIX_COLUMNS))
    lim = limits.instance_limits(row["instance_type"])
    t = vpc_cni.Targets(warm_eni=vpc_cni.DEFAULT_WARM_ENI_TARGET, warm_ip=_target(row["warm_ip_target"]),
                        minimum_ip=_target(row["minimum_ip_target"]), warm_prefix=_target(row["warm_prefix_target"]),
                        prefix_delegation=True)
    pool = vpc_cni.warm_pool_state(lim, t, int(row["pods"]))
    got = {
        "enis": pool.enis,
        "pod_per_enis": pool.pods_per_eni(),
        "attached_prefixes": pool.prefixes,
        "pod_per_prefixes": pool.pods_per_prefix(),
        "unused_prefixes": pool.free_prefixes,
        "prefixes_per_eni": pool.per_eni(),
        "unused_ips": pool.unused_ips,
    }
    want = {
        "enis": int(row["enis"]),
        "pod_per_enis": _ints(row["pod_per_enis"]),
        "attached_prefixes": int(row["attached_prefixes"]),
        "pod_per_prefixes": _ints(row["pod_per_prefixes"]),
        "unused_prefixes": int(row["unused_prefixes"]),
        "prefixes_per_eni": _ints(row["prefixes_per_eni"]),
        "unused_ips": int(row["unused_ips"]),
    }
    for column in sorted(checked):
        if want[column] is None:  # the p3dn rows leave "pods per prefix" empty
            continue
        assert got[column] == want[column], column


def test_every_noted_contradiction_is_a_row_and_really_differs():
    keys = {(r["instance_type"], r["warm_prefix_target"], r["warm_ip_target"], r["minimum_ip_target"], r["pods"]): r
            for r in PREFIX}
    for key, (reason, checked) in PREFIX_CONTRADICTIONS.items():
        assert key in keys and reason
        row = keys[key]
        lim = limits.instance_limits(row["instance_type"])
        t = vpc_cni.Targets(warm_ip=_target(row["warm_ip_target"]), minimum_ip=_target(row["minimum_ip_target"]),
                            warm_prefix=_target(row["warm_prefix_target"]), prefix_delegation=True)
        pool = vpc_cni.warm_pool_state(lim, t, int(row["pods"]))
        # the unchecked columns are the ones the model answers differently
        assert pool.enis != int(row["enis"]) or pool.prefixes != int(row["attached_prefixes"])
        assert checked < ALL_PREFIX_COLUMNS


def test_warm_pool_never_exceeds_the_instance():
    lim = limits.instance_limits("t3.small")
    with pytest.raises(ConfigError, match="10 pods do not fit on t3.small"):
        vpc_cni.warm_pool_state(lim, vpc_cni.Targets(), 10)
    pool = vpc_cni.warm_pool_state(lim, vpc_cni.Targets(prefix_delegation=True), 100)
    assert pool.enis <= 3 and max(pool.per_eni()) <= 3


@given(pods=st.integers(0, 40), warm_ip=st.integers(0, 20), minimum=st.integers(0, 40), pd=st.booleans())
def test_warm_ip_targets_hold_after_reconcile(pods, warm_ip, minimum, pd):
    if warm_ip == 0 and minimum:
        minimum = 0  # MINIMUM_IP_TARGET alone never grows the pool past it (see the next test)
    lim = limits.instance_limits("m5.large")  # 3 ENIs x 9
    capacity = 27 * (16 if pd else 1)
    pods = min(pods, capacity)
    t = vpc_cni.Targets(warm_ip=warm_ip, minimum_ip=minimum, prefix_delegation=pd)
    pool = vpc_cni.warm_pool_state(lim, t, pods)
    if warm_ip or minimum:
        if pool.total < capacity:  # when the instance is not full, both targets are met
            assert pool.unused_ips >= warm_ip and pool.total >= minimum
        if not pd:  # and nothing above them is kept in secondary-IP mode
            assert pool.unused_ips <= max(warm_ip, minimum - pods, 0)


def test_minimum_ip_target_without_warm_ip_target_stops_at_the_minimum():
    # datastoreTargetState: short = max(WARM_IP_TARGET - available, MINIMUM_IP_TARGET - total); with
    # WARM_IP_TARGET 0 nothing is short once the minimum is held, so the next pod gets no address
    lim = limits.instance_limits("m5.large")
    t = vpc_cni.Targets(warm_ip=0, minimum_ip=4)
    assert vpc_cni.warm_pool_state(lim, t, 4).total == 4
    with pytest.raises(ConfigError, match="5 pods do not fit"):
        vpc_cni.warm_pool_state(lim, t, 5)


# ---------------------------------------------------------------- AKS pod subnet
@pytest.mark.parametrize("demand, expected", [(0, 16), (1, 16), (8, 16), (9, 32), (24, 32), (25, 48), (242, 250)])
def test_aks_dynamic_batches_of_16_refill_below_8_free(demand, expected):
    assert aks.dynamic_target(demand, aks.DYNAMIC_BATCH, aks.DYNAMIC_REQUEST_THRESHOLD_PERCENT, aks.DYNAMIC_MAX_IPS) == expected


@given(st.integers(0, 250))
def test_aks_dynamic_keeps_8_to_23_free_below_the_max(demand):
    target = aks.dynamic_target(demand, 16, 50, 250)
    if target < 250:
        assert target % 16 == 0 and 8 <= target - demand < 24
    else:
        assert demand + 8 > 240


def test_aks_static_blocks_follow_the_documented_examples():
    row = limits.pod_cidr_row("azure", "cni_pod_subnet_static_block")
    assert row.per_node_block == "/28" and row.addresses_per_block == 16
    # "30->2 blocks 1 wasted; 31->0 wasted; 32->3 blocks 15 wasted"
    assert (aks.static_blocks(30), aks.static_wasted(30)) == (2, 1)
    assert aks.static_wasted(31) == 0
    assert (aks.static_blocks(32), aks.static_wasted(32)) == (3, 15)
    assert all(aks.static_wasted(16 * n - 1) == 0 for n in range(1, 17))


# ---------------------------------------------------------------- GKE
@pytest.mark.parametrize("max_pods, mask", [(8, 28), (9, 27), (16, 27), (17, 26), (32, 26), (33, 25), (64, 25),
                                            (65, 24), (110, 24), (111, 23), (256, 23)])
def test_gke_node_mask_from_max_pods(max_pods, mask):
    assert gke.node_mask_for_max_pods(max_pods) == mask


@pytest.mark.parametrize("max_pods", range(8, 257))
def test_gke_range_holds_twice_max_pods_and_is_smallest_on_the_documented_rows(max_pods):
    size = 2 ** (32 - gke.node_mask_for_max_pods(max_pods))
    assert size >= 2 * max_pods
    if max_pods <= 110:  # the page's rows; 111-256 -> /23 is derived in the CSV (111-128 would fit a /24)
        assert size == max(16, 2 ** math.ceil(math.log2(2 * max_pods)))


def test_gke_out_of_table_is_refused():
    with pytest.raises(ConfigError, match="gke.maxPodsPerNode 7 .* expected 8 to 256"):
        gke.node_mask_for_max_pods(7)
    with pytest.raises(ConfigError, match="expected 8 to 110"):
        gke.node_mask_for_max_pods(111, include_derived=False)
