"""Typed errors of ipam_core.

Every error a user can cause derives from :class:`IPAMBenchError`; the CLI
prints its message on one line and exits non-zero, without a traceback.
Messages name the offending value and what was expected.
"""

from __future__ import annotations


class IPAMBenchError(Exception):
    """Base of every error ipam-bench reports to a user."""


class ConfigError(IPAMBenchError, ValueError):
    """A scenario, flag or value is malformed or impossible."""


class CIDRError(ConfigError):
    """A CIDR or IP address is malformed, of the wrong family, or out of range."""


class AllocatorError(IPAMBenchError):
    """Base of allocator failures (the Python API of the allocators)."""


class RangeFull(AllocatorError):
    """No free slot is left (upstream: ``range is full`` / ``ErrFull``)."""


class NoCIDRsRemaining(RangeFull):
    """A node CIDR set is exhausted (upstream ``ErrCIDRRangeNoCIDRsRemaining``)."""


class NotInRange(AllocatorError, ValueError):
    """An address or CIDR is outside the allocator's range (``ErrNotInRange``)."""


class AlreadyAllocated(AllocatorError):
    """The address or slot is already taken (``ErrAllocated``)."""
