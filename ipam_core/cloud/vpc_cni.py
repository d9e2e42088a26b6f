"""The AWS VPC CNI's warm pool (``ipamd``): how many ENIs, IPs and /28 prefixes a node holds.

``ipamd`` runs on every node and, every 5 s, compares its datastore with the
targets set by environment variables (aws/amazon-vpc-cni-k8s
``pkg/ipamd/ipamd.go``: ``isDatastorePoolTooLow``, ``isDatastorePoolTooHigh``,
``datastoreTargetState``, ``getPrefixesNeeded``, ``increaseDatastorePool``,
``tryAssignIPs``, ``tryAssignPrefixes``, ``tryAllocateENI``,
``tryUnassignCidrsFromAll``, ``shouldRemoveExtraENIs``; ``pkg/ipamd/datastore``
``getDeletableENI``). Documented in ``docs/eni-and-ip-target.md`` and
``docs/prefix-and-ip-target.md``, whose worked examples
:func:`warm_pool_state` reproduces.

The decision functions are compiled: the engine's ``aws-vpc-cni`` mode calls the
same code on its state tables. Terms: ``total`` addresses in the datastore,
``assigned`` addresses given to pods, ``available = total - assigned``; with
prefix delegation every datastore entry is a /28 prefix of 16 addresses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ipam_core.cloud.limits import PREFIX_SIZE, InstanceLimits
from ipam_core.errors import ConfigError
from ipam_core.kernels._jit import kjit

#: ``ipamd.go`` constants and environment defaults.
DEFAULT_WARM_ENI_TARGET = 1  # defaultWarmENITarget
DEFAULT_WARM_IP_TARGET = 0  # noWarmIPTarget (unset)
DEFAULT_MINIMUM_IP_TARGET = 0  # noMinimumIPTarget (unset)
#: The code's default is 0; the shipped aws-node DaemonSet (config/master/aws-k8s-cni.yaml) sets 1.
DEFAULT_WARM_PREFIX_TARGET = 1
POOL_MONITOR_INTERVAL_S = 5.0  # ipPoolMonitorInterval
DECREASE_INTERVAL_S = 30.0  # decreaseIPPoolInterval
MIN_ENI_LIFETIME_S = 60.0  # datastore minENILifeTime: younger ENIs are never freed
INSUFFICIENT_CIDR_COOLDOWN_S = 120.0  # insufficientCidrErrorCooldown after InsufficientCidrBlocks


@kjit
def _ceil_div(a, b):
    return -(-a // b)


@kjit
def target_state(total, assigned, total_prefixes, free_prefixes, warm_ip, min_ip, pd):
    """Short and over of ``WARM_IP_TARGET`` / ``MINIMUM_IP_TARGET`` (``datastoreTargetState``).

    Parameters
    ----------
    total, assigned : int
        Addresses in the datastore and addresses given to pods.
    total_prefixes, free_prefixes : int
        /28 prefixes held and prefixes with no address given (prefix delegation).
    warm_ip, min_ip : int
        ``WARM_IP_TARGET`` and ``MINIMUM_IP_TARGET`` (0 = unset).
    pd : bool
        ``ENABLE_PREFIX_DELEGATION``.

    Returns
    -------
    tuple of int
        ``(short, over)``: addresses (or, with prefix delegation, prefixes) missing to
        meet the targets, and those above them. Both 0 when neither target is set.
    """
    if warm_ip == 0 and min_ip == 0:
        return 0, 0
    available = total - assigned
    short = max(warm_ip - available, 0)
    short = max(short, min_ip - total)
    over = max(available - warm_ip, 0)
    over = max(min(over, total - min_ip), 0)
    if pd:
        short_prefixes = _ceil_div(short, PREFIX_SIZE)
        for_warm = _ceil_div(assigned + warm_ip, PREFIX_SIZE)
        for_min = _ceil_div(min_ip, PREFIX_SIZE)
        over_prefixes = max(min(free_prefixes, total_prefixes - for_warm), 0)
        over_prefixes = max(min(over_prefixes, total_prefixes - for_min), 0)
        return short_prefixes, over_prefixes
    return short, over


@kjit
def pool_too_low(total, assigned, total_prefixes, free_prefixes, warm_eni, warm_ip, min_ip, warm_prefix, pd,
                 ips_per_eni):
    """Whether ipamd must grow the pool (``isDatastorePoolTooLow``).

    Parameters
    ----------
    ips_per_eni : int
        Secondary addresses one ENI holds (``ipv4_per_eni - 1``).
    Other parameters as in :func:`target_state`; ``warm_eni`` and ``warm_prefix`` are
    ``WARM_ENI_TARGET`` and ``WARM_PREFIX_TARGET``.

    Returns
    -------
    bool
        With a warm IP or minimum target: short > 0. Otherwise the free addresses are
        fewer than ``WARM_ENI_TARGET`` ENIs' worth (``WARM_PREFIX_TARGET`` prefixes' worth
        with prefix delegation), or the target is 0 and nothing is free.
    """
    if warm_ip != 0 or min_ip != 0:
        short, _ = target_state(total, assigned, total_prefixes, free_prefixes, warm_ip, min_ip, pd)
        return short > 0
    available = total - assigned
    warm = warm_eni
    per = ips_per_eni
    if pd:
        warm = warm_prefix
        per = PREFIX_SIZE
    return available < per * warm or (warm == 0 and available == 0)


@kjit
def pool_too_high(total, assigned, total_prefixes, free_prefixes, warm_ip, min_ip, warm_prefix, pd):
    """Whether ipamd may give addresses back (``isDatastorePoolTooHigh``).

    Returns
    -------
    bool
        With a warm IP or minimum target: over > 0. With prefix delegation: more free
        prefixes than ``WARM_PREFIX_TARGET``. Otherwise (``WARM_ENI_TARGET``) never:
        only whole ENIs are freed then.
    """
    if warm_ip != 0 or min_ip != 0:
        _, over = target_state(total, assigned, total_prefixes, free_prefixes, warm_ip, min_ip, pd)
        return over > 0
    if pd:
        return free_prefixes > warm_prefix
    return False


@kjit
def prefixes_needed(total, assigned, total_prefixes, free_prefixes, warm_ip, min_ip, warm_prefix):
    """Prefixes to ask for in one call (``getPrefixesNeeded``): at least 1.

    Returns
    -------
    int
        ``max(1, short)`` under the warm IP targets, else ``max(1, WARM_PREFIX_TARGET -
        free prefixes)``.
    """
    if warm_ip != 0 or min_ip != 0:
        short, _ = target_state(total, assigned, total_prefixes, free_prefixes, warm_ip, min_ip, True)
        return max(1, short)
    return max(1, warm_prefix - free_prefixes)


@kjit
def over_to_release(total, assigned, total_prefixes, free_prefixes, warm_ip, min_ip, warm_prefix, pd):
    """Addresses (prefixes with delegation) ``tryUnassignCidrsFromAll`` gives back.

    Returns
    -------
    int
        ``over`` of :func:`target_state` under the warm IP targets, else free prefixes
        above ``WARM_PREFIX_TARGET`` (``computeExtraPrefixesOverWarmTarget``), else 0.
    """
    if warm_ip != 0 or min_ip != 0:
        _, over = target_state(total, assigned, total_prefixes, free_prefixes, warm_ip, min_ip, pd)
        return over
    if pd:
        return max(free_prefixes - warm_prefix, 0)
    return 0


@kjit
def should_remove_extra_enis(total, assigned, warm_eni, warm_ip, min_ip, warm_prefix, pd, ips_per_eni,
                             freeable_eni_exists):
    """Whether ipamd looks for an ENI to free (``shouldRemoveExtraENIs``).

    Parameters
    ----------
    freeable_eni_exists : bool
        A non-primary ENI holds no assigned address (``CheckFreeableENIexists``).

    Returns
    -------
    bool
        Always under the warm IP targets (``getDeletableENI`` checks them); otherwise
        ``available >= (target + 1) * addresses per ENI`` (with prefix delegation,
        ``WARM_PREFIX_TARGET`` and 16 addresses per prefix slot), or, with delegation,
        a freeable ENI exists.
    """
    if warm_ip != 0 or min_ip != 0:
        return True
    available = total - assigned
    warm = warm_eni
    per_eni = ips_per_eni
    if pd:
        warm = warm_prefix
        per_eni = ips_per_eni * PREFIX_SIZE
    if available >= (warm + 1) * per_eni:
        return True
    return pd and freeable_eni_exists


@kjit
def eni_required(other_free, other_total, other_free_prefixes, warm_ip, min_ip, warm_prefix, pd):
    """Whether an unused ENI must stay for the targets (datastore ``isRequiredFor*Target``).

    Parameters
    ----------
    other_free, other_total, other_free_prefixes : int
        Free addresses, addresses and free prefixes on every other ENI.

    Returns
    -------
    bool
        The other ENIs alone would fall below ``WARM_IP_TARGET`` (rounded up to whole
        prefixes with delegation), ``MINIMUM_IP_TARGET`` or ``WARM_PREFIX_TARGET``.
    """
    if warm_ip != 0:
        target = warm_ip
        if pd:
            target = _ceil_div(warm_ip, PREFIX_SIZE) * PREFIX_SIZE
        if other_free < target:
            return True
    if min_ip != 0:
        target = min_ip
        if pd:
            target = _ceil_div(min_ip, PREFIX_SIZE) * PREFIX_SIZE
        if other_total < target:
            return True
    return pd and warm_prefix != 0 and other_free_prefixes < warm_prefix


# ---------------------------------------------------------------------------- steady state
@dataclass(frozen=True)
class Targets:
    """The ``aws-node`` environment variables that size the warm pool."""

    warm_eni: int = DEFAULT_WARM_ENI_TARGET
    warm_ip: int = DEFAULT_WARM_IP_TARGET
    minimum_ip: int = DEFAULT_MINIMUM_IP_TARGET
    warm_prefix: int = DEFAULT_WARM_PREFIX_TARGET
    prefix_delegation: bool = False


@dataclass
class WarmPool:
    """What a node holds: per ENI (attach order) the pods on each secondary IP or /28 prefix."""

    units: list[list[int]] = field(default_factory=lambda: [[]])
    unit_size: int = 1

    @property
    def enis(self) -> int:
        return len(self.units)

    @property
    def total(self) -> int:
        return sum(len(u) for u in self.units) * self.unit_size

    @property
    def assigned(self) -> int:
        return sum(sum(u) for u in self.units)

    @property
    def prefixes(self) -> int:
        return sum(len(u) for u in self.units) if self.unit_size > 1 else 0

    @property
    def free_prefixes(self) -> int:
        return sum(1 for u in self.units for used in u if used == 0) if self.unit_size > 1 else 0

    @property
    def unused_ips(self) -> int:
        return self.total - self.assigned

    def per_eni(self) -> list[int]:
        """Secondary IPs (or prefixes) per ENI."""
        return [len(u) for u in self.units]

    def pods_per_eni(self) -> list[int]:
        return [sum(u) for u in self.units]

    def pods_per_prefix(self) -> list[int]:
        return [used for u in self.units for used in u]


def _stats(pool: WarmPool) -> tuple[int, int, int, int]:
    return pool.total, pool.assigned, pool.prefixes, pool.free_prefixes


def _increase(pool: WarmPool, t: Targets, per_eni: int, max_enis: int) -> bool:
    """``increaseDatastorePool``: fill an existing ENI first, else attach one."""
    stats = _stats(pool)
    defined = t.warm_ip != 0 or t.minimum_ip != 0
    short, _ = target_state(*stats, t.warm_ip, t.minimum_ip, t.prefix_delegation)
    if t.prefix_delegation:
        want = prefixes_needed(*stats, t.warm_ip, t.minimum_ip, t.warm_prefix)
    else:
        if defined and short == 0:
            return False
        want = short if defined else per_eni
    for units in pool.units:  # tryAssignIPs / tryAssignPrefixes: the first ENI with room
        room = per_eni - len(units)
        if room > 0:
            units.extend([0] * min(room, want))
            return True
    if pool.enis >= max_enis:
        return False
    if t.prefix_delegation:  # GetENIResourcesToAllocate
        count = min(want, per_eni)
    else:
        count = min(short, per_eni) if defined else per_eni
    if count <= 0:
        return False
    pool.units.append([0] * count)
    return True


def _decrease(pool: WarmPool, t: Targets) -> bool:
    """``tryUnassignCidrsFromAll``: give back free IPs (prefixes) above the targets, newest ENI first."""
    over = over_to_release(*_stats(pool), t.warm_ip, t.minimum_ip, t.warm_prefix, t.prefix_delegation)
    released = False
    for units in reversed(pool.units):
        while over > 0 and 0 in units:
            units.remove(0)
            over -= 1
            released = True
    return released


def _free_eni(pool: WarmPool, t: Targets, per_eni: int) -> bool:
    """``tryFreeENI``: drop one unused, non-primary ENI the targets do not need."""
    total, assigned, _, free_prefixes = _stats(pool)
    freeable = any(sum(u) == 0 for u in pool.units[1:])
    if not should_remove_extra_enis(total, assigned, t.warm_eni, t.warm_ip, t.minimum_ip, t.warm_prefix,
                                    t.prefix_delegation, per_eni, freeable):
        return False
    size = pool.unit_size
    for i in range(pool.enis - 1, 0, -1):
        units = pool.units[i]
        if sum(units) != 0:
            continue
        other_total = total - len(units) * size
        other_free = (total - assigned) - len(units) * size
        other_free_prefixes = free_prefixes - (len(units) if size > 1 else 0)
        if eni_required(other_free, other_total, other_free_prefixes, t.warm_ip, t.minimum_ip, t.warm_prefix,
                        t.prefix_delegation):
            continue
        del pool.units[i]
        return True
    return False


def _reconcile(pool: WarmPool, t: Targets, per_eni: int, max_enis: int) -> None:
    """``updateIPPoolIfRequired`` until nothing changes (timers and ENI ages ignored)."""
    for _ in range(10_000):
        stats = _stats(pool)
        changed = False
        if pool_too_low(*stats, t.warm_eni, t.warm_ip, t.minimum_ip, t.warm_prefix, t.prefix_delegation, per_eni):
            changed = _increase(pool, t, per_eni, max_enis)
        elif pool_too_high(*stats, t.warm_ip, t.minimum_ip, t.warm_prefix, t.prefix_delegation):
            changed = _decrease(pool, t)
        changed = _free_eni(pool, t, per_eni) or changed
        if not changed:
            return
    raise RuntimeError("ipamd reconcile did not settle")  # a bug: the rules always converge


def warm_pool_state(limits: InstanceLimits, targets: Targets, pods: int) -> WarmPool:
    """The pool ipamd settles on after ``pods`` pods arrive one by one on a fresh node.

    Parameters
    ----------
    limits : InstanceLimits
        The instance type's ENI and address limits.
    targets : Targets
        ``WARM_ENI_TARGET``, ``WARM_IP_TARGET``, ``MINIMUM_IP_TARGET``,
        ``WARM_PREFIX_TARGET``, ``ENABLE_PREFIX_DELEGATION``.
    pods : int
        Pods placed on the node.

    Returns
    -------
    WarmPool
        ENIs in attach order, each with the pods on each of its secondary IPs or
        prefixes.

    Raises
    ------
    ConfigError
        The pods do not fit on the instance.

    Notes
    -----
    The node starts with its primary ENI and no secondary address. Before each pod
    and after the last one, ipamd's reconcile runs until it changes nothing (the
    5 s tick, the 30 s decrease interval and the 1 min ENI minimum age are not
    modelled here; the engine models them). Pods take the first free address of
    the first ENI and prefix with one, the order the upstream examples show.
    """
    pd = targets.prefix_delegation and limits.supports_prefix_delegation
    t = Targets(targets.warm_eni, targets.warm_ip, targets.minimum_ip, targets.warm_prefix, pd)
    per_eni = limits.secondary_per_eni
    pool = WarmPool(unit_size=PREFIX_SIZE if pd else 1)
    for pod in range(pods + 1):
        _reconcile(pool, t, per_eni, limits.enis)
        if pod == pods:
            break
        for units in pool.units:
            slot = next((k for k, used in enumerate(units) if used < pool.unit_size), None)
            if slot is not None:
                units[slot] += 1
                break
        else:
            raise ConfigError(f"{pods} pods do not fit on {limits.instance_type}: the pool holds {pool.total} "
                              f"addresses after {pod} pods; expected at most {pool.total} pods")
    return pool
