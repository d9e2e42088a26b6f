"""Prefix fallback state, the dense-allocation arm, cloud API cost and throttling (issue #12 items 3 and 4)."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import OP_NODE_ADD, OP_POD_ADD, workload
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cloud_engine import cloud_scenario, last, run, slow_pods

from ipam_core.pipeline import build_workload, simulate, summarize
from ipam_core.engine import tables as T
from ipam_core.modes.cloud_pool import _cilium_prefix_delegated
from ipam_core.errors import ConfigError
from ipam_core.kernels.blocks import bm_take_densest
from ipam_core.kernels.layout import bm_init, bm_sizes
from ipam_core.kernels.slots import bm_set
from ipam_core.modes import aws_vpc_cni, azure, eni
from ipam_core.scenario import scenario_for_mode

PD = {"cilium": {"eni": {"awsEnablePrefixDelegation": True}}}


def cloud(tmp_path, patch=None, name="s.yaml"):
    return cloud_scenario(tmp_path, patch, name=name)


# ---------------------------------------------------------------- the dense kernel
def _densest_reference(taken: set[int], n: int) -> int:
    """The lowest free address of the aligned 16-block with the fewest free addresses (lowest block on ties)."""
    free_in: dict[int, int] = {}
    for o in range(n):
        if o not in taken:
            free_in[o >> 4] = free_in.get(o >> 4, 0) + 1
    if not free_in:
        return -1
    block = min(free_in, key=lambda b: (free_in[b], b))
    return next(o for o in range(block << 4, (block + 1) << 4) if o not in taken)


@settings(max_examples=60, deadline=None)
@given(order=st.integers(4, 12), data=st.data())
def test_take_densest_packs_the_fullest_block(order, data):
    n = 1 << order
    taken = set(data.draw(st.lists(st.integers(0, n - 1), max_size=n)))
    words_len, summary_len = bm_sizes(n)
    words = np.zeros(words_len, dtype=np.uint64)
    summary = np.zeros(summary_len, dtype=np.uint64)
    bm_init(words, summary, n)
    for o in taken:
        bm_set(words, summary, o)
    for _ in range(data.draw(st.integers(1, 20))):
        expected = _densest_reference(taken, n)
        assert bm_take_densest(words, summary, 4) == expected
        if expected < 0:
            break
        taken.add(expected)


# ---------------------------------------------------------------- prefix fallback state (cilium IsPrefixDelegated)
@pytest.fixture(scope="module")
def pd_state(tmp_path_factory):
    sc = cloud(tmp_path_factory.mktemp("pd"), PD)
    return run(sc, workload(slow_pods(1, 3), 1), "eni").state


def test_prefix_delegation_state_follows_the_enis(pd_state):
    st_ = pd_state._replace(cl_iface=pd_state.cl_iface.copy(), core=pd_state.core._replace(icfg=pd_state.core.icfg.copy()))
    iface = st_.cl_iface[0]
    assert iface[0, T.CI_PREFIXES] >= 1 and _cilium_prefix_delegated(st_, 0)
    # eth0 holds prefixes and the fallback's single addresses: still prefix-delegated (AllocateIPs retries)
    iface[0, T.CI_UNITS] = iface[0, T.CI_PREFIXES] + 2
    assert _cilium_prefix_delegated(st_, 0)
    # an ENI created without prefixes (CreateInterface's fallback) holds single addresses only: off
    iface[1, T.CI_ATTACHED], iface[1, T.CI_UNITS], iface[1, T.CI_PREFIXES] = 1, 3, 0
    assert not _cilium_prefix_delegated(st_, 0)
    # ... until they are released (an ENI with its primary address only does not count)
    iface[1, T.CI_UNITS] = 0
    assert _cilium_prefix_delegated(st_, 0)
    iface[1, T.CI_UNITS] = 3
    st_.core.icfg[T.I_CL_STRATEGY] = T.STRATEGY_DENSE  # CFP #38499 never leaves prefix mode
    assert _cilium_prefix_delegated(st_, 0)
    st_.cl_node[0, T.CN_PD] = 0  # prefix delegation off (or a Xen instance): never
    assert not _cilium_prefix_delegated(st_, 0)
    st_.cl_node[0, T.CN_PD] = 1


def test_a_refused_prefix_call_on_an_eni_with_prefixes_is_tried_again(tmp_path):
    # a /26: .0-.3 and .63 reserved, eth0's primary somewhere: at most two whole /28s. eth0 gets prefixes,
    # then a refused call and single addresses on the same ENI; upstream asks for prefixes again next time
    sc = cloud(tmp_path, {**PD, "cloud": {"subnets": ["10.1.0.0/26"]}, "duration": "10m"})
    r = run(sc, workload(slow_pods(1, 40, gap=5.0), 1), "eni")
    assert last(r, "prefixes") >= 1 and last(r, "node_cidrs") > last(r, "prefixes")  # prefixes and singles
    assert last(r, "frag_failures") >= 2  # the sticky rule this replaces asked once, then never again
    assert last(r, "cloud_api_prefix") >= last(r, "frag_failures") + last(r, "prefixes") // 3


def test_dense_arm_packs_the_fallback_and_keeps_asking_for_prefixes(tmp_path):
    # t3.small: 3 ENIs of 3 units. In a /25 crowded by 6 nodes' primaries, prefixes run out early
    patch = {**PD, "cloud": {"subnets": ["10.1.0.0/25"]}, "cluster": {"instanceType": "t3.small"}, "duration": "15m"}
    events = [(0.0, OP_NODE_ADD, i, -1) for i in range(6)]
    events += [(30.0 + p * 2.0, OP_POD_ADD, p % 6, p) for p in range(60)]
    up = run(cloud(tmp_path, patch), workload(events, 6), "eni")
    dense_patch = {**patch, "cilium": {"eni": {"awsEnablePrefixDelegation": True, "allocationStrategy": "dense"}}}
    dense = run(cloud(tmp_path, dense_patch, name="dense.yaml"), workload(events, 6), "eni")
    assert last(up, "frag_failures") >= 1 and last(dense, "frag_failures") >= 1
    # dense singles sit in /28s already broken: the largest free block is at least as large
    assert last(dense, "largest_free_block") >= last(up, "largest_free_block")
    # and it never gives up prefix mode: more prefix calls than the upstream arm
    assert last(dense, "cloud_api_prefix") > last(up, "cloud_api_prefix")


# ---------------------------------------------------------------- cloud API cost and throttling
BURST = [(0.0, OP_NODE_ADD, i, -1) for i in range(8)] + [(30.0 + p * 0.05, OP_POD_ADD, p % 8, p) for p in range(200)]


def test_throttling_delays_refills_and_pod_starts(tmp_path):
    base = {"cluster": {"nodes": 8}, "duration": "10m", "timing": {"podPendingTimeout": "30m"}}
    free = run(cloud(tmp_path, base), workload(BURST, 8), "eni")
    tight = {**base, "cloud": {"subnets": ["10.1.0.0/20"],
                               "apiThrottle": {"enabled": True, "clientQPS": 1.0, "clientBurst": 1}}}
    slow = run(cloud(tmp_path, tight, name="tight.yaml"), workload(BURST, 8), "eni")
    assert last(free, "cloud_api_throttled") == 0 and last(free, "cloud_api_delay_ms") == 0
    assert last(slow, "cloud_api_throttled") > 0 and last(slow, "cloud_api_delay_ms") > 0
    # every pod starts in both, later with throttling
    assert last(free, "pods_started") == last(slow, "pods_started") == 200
    assert last(slow, "pod_start_wait_ms") > last(free, "pod_start_wait_ms")
    # the client limiter never lets more than its burst plus its rate through: 1 + 1/s (3 tokens an ENI)
    t = slow.trace["time_s"]
    calls = slow.trace["cloud_api_assign"] + slow.trace["cloud_api_release"] + 3 * slow.trace["cloud_api_attach"]
    assert np.all(calls <= 1 + 1.0 * t + 3)  # + the debt one pass may run into


def test_throttle_off_is_the_unthrottled_model(tmp_path):
    base = {"cluster": {"nodes": 8}, "duration": "5m"}
    off = run(cloud(tmp_path, base), workload(BURST, 8), "eni")
    big = {**base, "cloud": {"subnets": ["10.1.0.0/20"],
                             "apiThrottle": {"enabled": True, "clientBurst": 1_000_000, "bucketSize": 1_000_000}}}
    roomy = run(cloud(tmp_path, big, name="big.yaml"), workload(BURST, 8), "eni")
    for column in ("addrs_idle", "cloud_api_assign", "cloud_api_attach", "pod_start_wait_ms"):
        assert np.array_equal(off.trace[column], roomy.trace[column]), column


def test_azure_draws_every_call_from_one_write_bucket(tmp_path):
    sc = cloud(tmp_path, {"cloud": {"subnets": ["10.1.0.0/20"], "apiThrottle": {"enabled": True}}})
    cfg = eni.cloud(scenario_for_mode(sc, "eni"))
    assert (cfg.client_qps, cfg.client_burst, cfg.bucket, cfg.refill, cfg.shared_bucket) == (4.0, 20, 50, 5.0, False)
    vpc = aws_vpc_cni.cloud(scenario_for_mode(sc, "aws-vpc-cni"))
    assert vpc.client_qps == 0.0 and vpc.bucket == 50  # ipamd has no client limiter
    az = azure.cloud(scenario_for_mode(sc, "azure"))
    assert (az.bucket, az.refill, az.shared_bucket, az.client_qps) == (200, 10.0, True, 4.0)


def test_summary_has_calls_per_minute_and_start_wait(tmp_path):
    sc = cloud(tmp_path, {"cluster": {"nodes": 4}, "duration": "2m", "modes": ["eni", "aws-vpc-cni"]})
    result = simulate(sc, workload=build_workload(sc))
    rows = {r["mode"]: r for r in summarize(result).to_pylist()}
    for mode, m in zip(("eni", "aws-vpc-cni"), result.modes):
        calls = int(m.trace["cloud_api_attach"][-1] + m.trace["cloud_api_assign"][-1] + m.trace["cloud_api_release"][-1])
        duration = float(m.trace["time_s"][-1])
        assert rows[mode]["cloud_api_calls"] == calls > 0
        assert rows[mode]["api_calls_per_min"] == round(calls * 60.0 / duration, 1)
        assert rows[mode]["api_peak_per_min"] >= rows[mode]["api_calls_per_min"]
        started = int(m.trace["pods_started"][-1])
        assert rows[mode]["start_wait_s"] == round(int(m.trace["pod_start_wait_ms"][-1]) / 1000 / started, 3)


# ---------------------------------------------------------------- scenario vocabulary
@pytest.mark.parametrize("patch, message", [
    ({"cloud": {"apiThrottle": {"enabled": "yes"}}}, r"cloud\.apiThrottle\.enabled.*'yes' is a string; expected true"),
    ({"cloud": {"apiThrottle": {"clientQPS": -1}}}, r"cloud\.apiThrottle\.clientQPS.*-1 is out of range; expected a "
                                                    r"number >= 0"),
    ({"cloud": {"apiThrottle": {"refillPerSecond": 0}}}, r"refillPerSecond.*0 is out of range; expected a number > 0"),
    ({"cloud": {"apiThrottle": {"bucketSize": 0}}}, r"bucketSize.*0 is out of range; expected an integer from 1"),
    ({"cloud": {"apiThrottle": {"clientBurst": 2.5}}}, r"clientBurst.*2.5 is a number; expected an integer"),
    ({"cloud": {"apiThrottle": {"bucket": 5}}}, r"cloud\.apiThrottle\.bucket.*unknown key 'bucket' \(did you mean "
                                                r"'bucketSize'\?\)"),
    ({"cilium": {"eni": {"allocationStrategy": "sparse"}}}, r"allocationStrategy.*'sparse' is not an allocation "
                                                            r"strategy; expected one of: upstream, dense"),
    ({"cilium": {"eni": {"allocationStrategy": "dense"}}}, r"allocationStrategy.*awsEnablePrefixDelegation is false"),
])
def test_bad_values_are_one_line_naming_key_value_and_expectation(tmp_path, patch, message):
    with pytest.raises(ConfigError, match=message) as err:
        cloud(tmp_path, {"cloud": {"subnets": ["10.1.0.0/20"], **patch.get("cloud", {})},
                         **({"cilium": patch["cilium"]} if "cilium" in patch else {})})
    assert "\n" not in str(err.value)
