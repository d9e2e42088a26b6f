"""Scenario keys of the cloud API model: ``cloud.apiThrottle`` and ``cilium.eni.allocationStrategy``.

* ``cloud.apiThrottle``: ``enabled`` (default false), ``clientQPS`` / ``clientBurst``
  (Cilium operator ``--limit-ipam-api-qps`` / ``--limit-ipam-api-burst``, default 4 /
  20), ``bucketSize`` / ``refillPerSecond`` (the cloud's bucket per API: EC2 mutating
  actions 50 / 5, Azure Resource Manager writes 200 / 10). Defaults in
  :mod:`ipam_core.cloud.api_limits`; the rules in :mod:`ipam_core.modes.cloud_api`.
* ``cilium.eni.allocationStrategy``: ``upstream`` (what Cilium does after
  ``InsufficientCidrBlocks``) or ``dense`` (CFP cilium/cilium#38499), which needs
  ``awsEnablePrefixDelegation: true``.

Each error is one line naming the dotted key, the value and what was expected.
"""

from __future__ import annotations

from ipam_core.engine.cloud_config import STRATEGIES
from ipam_core.scenario import defaults as d
from ipam_core.scenario._values import as_bool, as_int, as_mapping, check_keys, kind_of, show
from ipam_core.scenario._where import Where
from ipam_core.scenario.model import ApiThrottleSpec

#: Largest bucket and rate accepted: far above any published limit, small enough to stay exact in the engine.
MAX_TOKENS = 1_000_000


def _rate(where: Where, value: object, *, zero_ok: bool) -> float:
    """Tokens per second: a number > 0 (or >= 0 when ``zero_ok``) and at most :data:`MAX_TOKENS`."""
    lo = ">= 0" if zero_ok else "> 0"
    expect = f"a number {lo} and at most {MAX_TOKENS:,} (tokens per second)"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        where.fail(f"{show(value)} is {kind_of(value)}; expected {expect}")
    if not (value >= 0 if zero_ok else value > 0) or value > MAX_TOKENS:
        where.fail(f"{value} is out of range; expected {expect}")
    return float(value)


def _tokens(where: Where, value: object) -> int:
    return as_int(where, value, lo=1, hi=MAX_TOKENS, what=f"an integer from 1 to {MAX_TOKENS:,} (tokens)")


def read_api_throttle(w_cloud: Where, cloud: dict) -> ApiThrottleSpec:
    """Read ``cloud.apiThrottle``.

    Parameters
    ----------
    w_cloud : Where
        Where ``cloud`` is in the document.
    cloud : dict
        The ``cloud`` mapping.

    Returns
    -------
    ApiThrottleSpec

    Raises
    ------
    ConfigError
        Unknown key, a value of the wrong type or out of range.
    """
    w = w_cloud / "apiThrottle"
    spec = as_mapping(w, cloud.get("apiThrottle"))
    check_keys(w, spec, d.API_THROTTLE_KEYS)
    return ApiThrottleSpec(
        enabled=as_bool(w / "enabled", spec.get("enabled", False)),
        client_qps=_rate(w / "clientQPS", spec["clientQPS"], zero_ok=True) if "clientQPS" in spec else None,
        client_burst=_tokens(w / "clientBurst", spec["clientBurst"]) if "clientBurst" in spec else None,
        bucket_size=_tokens(w / "bucketSize", spec["bucketSize"]) if "bucketSize" in spec else None,
        refill_per_second=(_rate(w / "refillPerSecond", spec["refillPerSecond"], zero_ok=False)
                           if "refillPerSecond" in spec else None),
    )


def read_allocation_strategy(w_eni: Where, eni: dict, prefix_delegation: bool) -> str:
    """Read ``cilium.eni.allocationStrategy`` (default ``upstream``).

    Raises
    ------
    ConfigError
        Not one of :data:`ipam_core.engine.cloud_config.STRATEGIES`, or ``dense`` without
        ``awsEnablePrefixDelegation: true``.
    """
    w = w_eni / "allocationStrategy"
    value = eni.get("allocationStrategy", STRATEGIES[0])
    if value not in STRATEGIES:
        w.fail(f"{show(value)} is not an allocation strategy; expected one of: {', '.join(STRATEGIES)}")
    if value == "dense" and not prefix_delegation:
        w.fail("'dense' packs the addresses of a refused prefix request, but awsEnablePrefixDelegation is false; "
               "expected awsEnablePrefixDelegation: true with allocationStrategy: dense")
    return value
