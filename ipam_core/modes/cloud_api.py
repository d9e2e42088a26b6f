"""Cloud API calls of the cloud modes: counted per kind, and optionally throttled by token buckets.

Every call the pool managers of :mod:`ipam_core.modes.cloud_pool` make goes
through :func:`api_ready` (may this pass make its next call now?) and
:func:`api_spend` (the call is made: count it, take its tokens). With
throttling off (the default) ``api_ready`` is always true and ``api_spend``
only counts, so runs are those of the unthrottled model.

With ``cloud.apiThrottle.enabled`` two limits apply, both token buckets
refilled continuously:

* the manager's own client limiter, when it has one: Cilium's operator wraps
  every EC2 / Azure call in ``limiter.Limit`` with ``--limit-ipam-api-qps``
  (default 4) and ``--limit-ipam-api-burst`` (default 20) (cilium
  ``pkg/api/helpers/rate_limit.go``, ``pkg/aws/ec2/ec2.go``,
  ``pkg/defaults/defaults.go`` ``IPAMAPIQPSLimit``, ``IPAMAPIBurst``); an
  interface creation is three EC2 calls there (``CreateNetworkInterface``,
  ``AttachNetworkInterface``, ``ModifyNetworkInterfaceAttribute``), each
  waiting for one token, so it goes once one token is there and takes three.
  ipamd has no client limiter.
* the cloud's request-rate limit: EC2 evaluates each API on its own bucket
  (AWS "Request throttling for the Amazon EC2 API": token bucket per API,
  non-mutating ``Describe*`` 100 tokens refilled at 20/s, mutating actions
  50 refilled at 5/s); Azure Resource Manager has one bucket per operation
  type per subscription (writes 200 refilled at 10/s). Here each call kind
  (attach, assign, release) has its own cloud bucket, or all share one
  (``I_CL_SHARED_BUCKET``, Azure). The buckets are the account's: every
  node's calls draw from them.

A pass whose next call finds a bucket empty makes no call: it is delayed until
a token is there (``CT_API_AT``). Cilium's operator blocks on its limiter and
goes on then; the engine runs the node's pass again at that time
(:func:`ipam_core.modes.cloud_pool.cloud_operator`). ipamd's failed call is tried
again on its next 5 s tick. Calls that follow the first one in the same pass
(the single addresses after a refused prefix request, an interface's second
create call) are taken at once and may leave a bucket in debt, which delays
the next caller: Go's ``rate.Limiter.Wait`` reserves tokens the same way.
"""

from __future__ import annotations

import numpy as np

from ipam_core.engine.tables import (
    C_CL_CLIENT_QPS,
    C_CL_REFILL,
    CT_API_AT,
    I_CL_BUCKET,
    I_CL_CLIENT_BURST,
    I_CL_SHARED_BUCKET,
    I_CL_THROTTLE,
    K_CL_API_ASSIGN,
    K_CL_API_ATTACH,
    K_CL_API_DELAY_US,
    K_CL_API_PREFIX,
    K_CL_API_RELEASE,
    K_CL_API_THROTTLED,
    K_CL_TOKENS,
    K_CL_TOKENS_AT,
)
from ipam_core.kernels._jit import kjit

#: Call kinds.
API_ATTACH = 0  # create + attach (+ modify) an interface
API_ASSIGN = 1  # assign secondary addresses or /28 prefixes
API_RELEASE = 2  # unassign addresses, or detach + delete an interface
API_PREFIX = 3  # an assign call asking for prefixes (counted also as API_ASSIGN)
#: Buckets in ``cnt``: the client limiter, then one cloud bucket per kind (attach, assign, release).
CLIENT_BUCKET = 0
API_BUCKETS = 4
#: Client tokens per call kind: Cilium's interface creation is three EC2 calls, the rest one.
CLIENT_COST_ATTACH = 3
MICRO = 1_000_000  # micro-tokens per token, microseconds per second
_MARGIN_US = 2  # the float round trip of a wake-up time may lose a microsecond or two


def init_buckets(cnt, icfg) -> None:
    """Fill every bucket at time 0 (a run starts with idle buckets).

    Parameters
    ----------
    cnt : numpy.ndarray of int64
        The state's counters (``K_CL_TOKENS`` ... are written).
    icfg : numpy.ndarray of int64
        The state's integer settings, with the ``I_CL_*`` bucket sizes written.
    """
    cnt[K_CL_TOKENS + CLIENT_BUCKET] = icfg[I_CL_CLIENT_BURST] * MICRO
    for b in range(1, API_BUCKETS):
        cnt[K_CL_TOKENS + b] = icfg[I_CL_BUCKET] * MICRO
    cnt[K_CL_TOKENS_AT : K_CL_TOKENS_AT + API_BUCKETS] = 0


@kjit(inline=True)
def _now_us(now):
    return np.int64(now * 1e6)


@kjit(inline=True)
def _cloud_bucket(icfg, kind):
    return 1 if icfg[I_CL_SHARED_BUCKET] != 0 else 1 + kind


@kjit(inline=True)
def _refilled(cnt, b, size, rate, now_us):
    """Micro-tokens bucket ``b`` holds at ``now_us`` (its state is brought up to that time)."""
    tokens = cnt[K_CL_TOKENS + b]
    added = np.int64((now_us - cnt[K_CL_TOKENS_AT + b]) * rate)
    if added > 0:  # below a micro-token the clock stays put, so slow buckets still fill under frequent looks
        tokens = min(size * MICRO, tokens + added)
        cnt[K_CL_TOKENS + b] = tokens
        cnt[K_CL_TOKENS_AT + b] = now_us
    return tokens


@kjit(inline=True)
def _wait_us(cnt, b, size, rate, now_us):
    """Microseconds until bucket ``b`` holds a whole token (0: now)."""
    short = MICRO - _refilled(cnt, b, size, rate, now_us)
    if short <= 0:
        return np.int64(0)
    return np.int64(np.ceil(short / rate)) + _MARGIN_US


@kjit(inline=True)
def _client_cost(kind):
    return CLIENT_COST_ATTACH if kind == API_ATTACH else 1


@kjit
def api_ready(st, node, kind, now):
    """May the node's manager make a call of ``kind`` now?

    Parameters
    ----------
    st : State
    node : int
    kind : int
        ``API_ATTACH``, ``API_ASSIGN`` or ``API_RELEASE``.
    now : float

    Returns
    -------
    bool
        True with throttling off or tokens in every bucket the call takes from.
        Otherwise the pass is throttled: ``cl_time[node, CT_API_AT]`` is when the
        tokens are there, and the delay is counted (``K_CL_API_THROTTLED``,
        ``K_CL_API_DELAY_US``).
    """
    core = st.core
    if core.icfg[I_CL_THROTTLE] == 0:
        return True
    now_us = _now_us(now)
    wait = _wait_us(core.cnt, _cloud_bucket(core.icfg, kind), core.icfg[I_CL_BUCKET], core.cfg[C_CL_REFILL], now_us)
    if core.cfg[C_CL_CLIENT_QPS] > 0.0:
        client = _wait_us(core.cnt, CLIENT_BUCKET, core.icfg[I_CL_CLIENT_BURST], core.cfg[C_CL_CLIENT_QPS], now_us)
        wait = max(wait, client)
    if wait == 0:
        return True
    core.cnt[K_CL_API_THROTTLED] += 1
    core.cnt[K_CL_API_DELAY_US] += wait
    st.cl_time[node, CT_API_AT] = (now_us + wait) / 1e6
    return False


@kjit
def api_spend(cfg, icfg, cnt, kind, now, prefixes):
    """A call of ``kind`` is made now: count it and take its tokens (a bucket may go into debt).

    Parameters
    ----------
    cfg, icfg, cnt : numpy.ndarray
        The core tables' settings and counters (the API buckets' tokens are counters).
    kind : int
        ``API_ATTACH``, ``API_ASSIGN`` or ``API_RELEASE``.
    now : float
    prefixes : bool
        An assign call asking for /28 prefixes (counted in ``K_CL_API_PREFIX`` too).
    """
    if kind == API_ATTACH:
        cnt[K_CL_API_ATTACH] += 1
    elif kind == API_ASSIGN:
        cnt[K_CL_API_ASSIGN] += 1
        if prefixes:
            cnt[K_CL_API_PREFIX] += 1
    else:
        cnt[K_CL_API_RELEASE] += 1
    if icfg[I_CL_THROTTLE] == 0:
        return
    now_us = _now_us(now)
    b = _cloud_bucket(icfg, kind)
    _refilled(cnt, b, icfg[I_CL_BUCKET], cfg[C_CL_REFILL], now_us)
    cnt[K_CL_TOKENS + b] -= MICRO
    if cfg[C_CL_CLIENT_QPS] > 0.0:
        _refilled(cnt, CLIENT_BUCKET, icfg[I_CL_CLIENT_BURST], cfg[C_CL_CLIENT_QPS], now_us)
        cnt[K_CL_TOKENS + CLIENT_BUCKET] -= _client_cost(kind) * MICRO


@kjit(inline=True)
def api_call(st, node, kind, now, prefixes):
    """:func:`api_ready`, then :func:`api_spend` when it may: whether the call was made."""
    if not api_ready(st, node, kind, now):
        return False
    api_spend(st.core.cfg, st.core.icfg, st.core.cnt, kind, now, prefixes)
    return True


@kjit(inline=True)
def api_retry_at(st, node, now):
    """When the node's last pass had a call throttled: the time its tokens are there, else -1."""
    t = st.cl_time[node, CT_API_AT]
    return t if t > now else -1.0
