"""Plain-Python oracle of the cloud API model: call counts per kind and token-bucket throttling.

Written from the rules ``ipam_core/modes/cloud_api.py`` states (Cilium's operator
client limiter, cilium ``pkg/api/helpers/rate_limit.go``; EC2 per-API and Azure
Resource Manager per-operation token buckets), with integers for tokens and
microseconds as the engine keeps them, so the two agree call for call.
"""

from __future__ import annotations

import math

ATTACH, ASSIGN, RELEASE = 0, 1, 2
CLIENT = 0  # bucket 0: the manager's own limiter; 1 + kind: the cloud's bucket of that kind (or 1 for all)
MICRO = 1_000_000
MARGIN_US = 2


class CloudAPI:
    """The cloud calls of one run: how many of each kind, and the account's token buckets.

    Parameters
    ----------
    cfg : ipam_core.engine.cloud_config.CloudConfig
        ``throttle``, ``client_qps``, ``client_burst``, ``bucket``, ``refill``, ``shared_bucket``.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.calls = [0, 0, 0]  # attach, assign, release
        self.prefix_calls = 0
        self.throttled = 0
        self.delay_us = 0
        self.tokens = [cfg.client_burst * MICRO] + [cfg.bucket * MICRO] * 3
        self.at = [0, 0, 0, 0]

    def _limits(self, kind: int) -> list[tuple[int, int, float, int]]:
        """(bucket, size, tokens per second, tokens the call takes) of every bucket a call of ``kind`` draws from."""
        c = self.cfg
        out = [(1 if c.shared_bucket else 1 + kind, c.bucket, c.refill, 1)]
        if c.client_qps > 0:
            out.append((CLIENT, c.client_burst, c.client_qps, 3 if kind == ATTACH else 1))
        return out

    def _refill(self, b: int, size: int, rate: float, now_us: int) -> int:
        added = int((now_us - self.at[b]) * rate)
        if added > 0:  # below a micro-token the clock stays put
            self.tokens[b] = min(size * MICRO, self.tokens[b] + added)
            self.at[b] = now_us
        return self.tokens[b]

    def ready(self, kind: int, now: float) -> float | None:
        """None when a call of ``kind`` may go now, else the time its tokens are there (the delay is counted)."""
        if not self.cfg.throttle:
            return None
        now_us = int(now * 1e6)
        wait = 0
        for b, size, rate, _ in self._limits(kind):
            short = MICRO - self._refill(b, size, rate, now_us)  # each call waits for one token
            if short > 0:
                wait = max(wait, math.ceil(short / rate) + MARGIN_US)
        if wait == 0:
            return None
        self.throttled += 1
        self.delay_us += wait
        return (now_us + wait) / 1e6

    def spend(self, kind: int, now: float, prefixes: bool = False) -> None:
        """The call is made: count it and take its tokens (a bucket may go into debt)."""
        self.calls[kind] += 1
        self.prefix_calls += prefixes
        if not self.cfg.throttle:
            return
        now_us = int(now * 1e6)
        for b, size, rate, cost in self._limits(kind):
            self._refill(b, size, rate, now_us)
            self.tokens[b] -= cost * MICRO

    def columns(self) -> dict[str, int]:
        """The trace's API columns."""
        return {
            "cloud_api_attach": self.calls[ATTACH],
            "cloud_api_assign": self.calls[ASSIGN],
            "cloud_api_release": self.calls[RELEASE],
            "cloud_api_prefix": self.prefix_calls,
            "cloud_api_throttled": self.throttled,
            "cloud_api_delay_ms": self.delay_us // 1000,
        }
