"""A copied or unpickled allocator keeps its bitmap views on its own arena (ArenaFields.__setstate__)."""

from __future__ import annotations

import copy
import pickle

import pytest

from ipam_core import PodIPRange
from ipam_core.cidrset import CIDRSet

DUPLICATES = {"deepcopy": copy.deepcopy, "pickle": lambda x: pickle.loads(pickle.dumps(x))}


@pytest.mark.parametrize("duplicate", DUPLICATES.values(), ids=DUPLICATES.keys())
@pytest.mark.parametrize("batch_only", [False, True])
def test_a_copied_pod_range_sees_its_own_per_call_changes(batch_only, duplicate):
    r = PodIPRange("10.0.0.0/24", seed=1, batch_only=batch_only)
    r.allocate_next()
    twin = duplicate(r)
    ip = twin.allocate_next()  # the per-call kernel writes the copy's arena
    assert twin.has(ip) and not r.has(ip)  # has() reads the words view
    assert twin.allocated_offsets().shape[0] == twin.used == 2
    taken = twin.allocate_next_many(3)  # the batch kernels take the words view too
    assert len(set(twin.addresses(taken).to_pylist()) | {ip}) == 4
    assert r.used == 1 and r.allocated_offsets().shape[0] == 1


@pytest.mark.parametrize("duplicate", DUPLICATES.values(), ids=DUPLICATES.keys())
def test_a_copied_cidr_set_sees_its_own_per_call_changes(duplicate):
    s = CIDRSet("10.0.0.0/16", 24)
    s.allocate_next()
    twin = duplicate(s)
    cidr = twin.allocate_next()
    assert twin.is_allocated(cidr) and not s.is_allocated(cidr)
    assert twin.allocated_indices().shape[0] == twin.allocated == 2
    assert s.allocated == 1 and s.allocated_indices().shape[0] == 1
