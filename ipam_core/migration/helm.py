"""Cilium's Helm release values across ``helm upgrade``: ``--set`` parsing, key checks, the resolved config.

The release starts with the scenario's ``cilium:`` mapping (the values it was installed with).
``helm upgrade`` merges ``--set`` assignments into them (``--reuse-values``) or into the chart
defaults (no ``--reuse-values``, as Helm 3 does when new values are given,
``pkg/action/upgrade.go`` ``reuseValues``). The IPAM subset is then validated exactly as a
scenario's ``cilium:`` section is (:func:`ipam_core.scenario.sections.read_cilium`: CIDR syntax,
overlapping ``clusterPoolIPv4PodCIDRList`` entries = cilium ``cidralloc`` ``ErrCIDRCollision``,
impossible masks), and :func:`upgrade_problems` applies the rules Cilium's docs give for a
running cluster (never change existing pool entries, never change the mask size).
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ipam_core.errors import ConfigError
from ipam_core.modes import REGISTRY
from ipam_core.scenario._where import Where
from ipam_core.scenario.model import PoolSpec
from ipam_core.scenario.sections import read_cilium

#: Helm ``ipam.mode`` values a migration can start from or go to: the registry's modes that ``migrate`` simulates.
MIGRATION_MODES = tuple(spec.helm_mode for spec in REGISTRY.values() if spec.migration)

#: Values that land in the scenario's ``cilium:`` subset (validated by read_cilium).
IPAM_KEYS = (
    "ipv4.enabled", "ipv6.enabled", "endpointHealthChecking.enabled", "ipam.mode", "ipam.ciliumNodeUpdateRate",
    "ipam.operator.clusterPoolIPv4PodCIDRList", "ipam.operator.clusterPoolIPv4MaskSize",
    "ipam.operator.clusterPoolIPv6PodCIDRList", "ipam.operator.clusterPoolIPv6MaskSize",
    "ipam.multiPoolPreAllocation",
)
IPAM_PREFIXES = ("ipam.operator.autoCreateCiliumPodIPPools.",)
#: Values that change what the simulation does, with their kind and chart default.
BEHAVIOUR_KEYS: dict[str, tuple[str, object]] = {
    # PR #46104: the operator copies spec.ipam.podCIDRs into the default pool's allocation.
    "extraConfig.enable-cluster-pool-to-multi-pool-migration": ("bool", False),
    "extraConfig.ipam-default-ip-pool": ("str", ""),
    # Pod-template checksums of the ConfigMap: a helm upgrade then restarts the pods itself.
    "operator.rollOutPods": ("bool", False),
    "rollOutCiliumPods": ("bool", False),
    # operator/pkg/unmanagedpods: restart kube-dns pods without a CiliumEndpoint every 15 s.
    "operator.unmanagedPodWatcher.restart": ("bool", True),
    "operator.unmanagedPodWatcher.intervalSeconds": ("int", 15),
    # The agent DaemonSet's rolling update (Helm default 2).
    "updateStrategy.rollingUpdate.maxUnavailable": ("int-or-percent", 2),
}
#: Accepted and recorded, with no effect on pod addresses in this simulation.
NEUTRAL_KEYS = (
    "ipv4NativeRoutingCIDR", "ipv6NativeRoutingCIDR", "routingMode", "tunnelProtocol", "tunnel",
    "autoDirectNodeRoutes", "kubeProxyReplacement", "k8sServiceHost", "k8sServicePort", "bpf.masquerade",
    "enableIPv4Masquerade", "enableIPv6Masquerade", "endpointRoutes.enabled", "debug.enabled", "operator.replicas",
    "loadBalancer.mode", "bandwidthManager.enabled", "socketLB.enabled", "l2announcements.enabled",
    "externalIPs.enabled", "nodePort.enabled", "ipMasqAgent.enabled", "cni.exclusive", "cluster.name", "cluster.id",
    "installNoConntrackIptablesRules", "localRedirectPolicy",
)
NEUTRAL_PREFIXES = ("hubble.", "prometheus.", "operator.prometheus.", "image.", "operator.image.", "envoy.",
                    "resources.", "extraConfig.", "k8s.", "bgpControlPlane.", "gatewayAPI.", "ingressController.",
                    "dashboards.", "operator.dashboards.", "encryption.", "clustermesh.")
_CILIUM_SUBSET = ("ipv4", "ipv6", "endpointHealthChecking", "ipam")
_INT = re.compile(r"^-?[1-9][0-9]*$|^0$")
_INDEX = re.compile(r"^(.*?)\[(\d+)\]$")


# ---------------------------------------------------------------- --set parsing (helm pkg/strvals)
def parse_set(text: str, *, as_string: bool = False) -> list[tuple[str, object]]:
    """Parse one ``--set`` argument into ``(dotted key, value)`` pairs.

    Parameters
    ----------
    text : str
        E.g. ``"ipam.mode=cluster-pool"``, ``"a=1,b=2"`` or
        ``"ipam.operator.clusterPoolIPv4PodCIDRList={172.20.0.0/16,172.21.0.0/16}"`` (the
        shell has already removed quotes).
    as_string : bool
        ``--set-string``: every value stays a string.

    Returns
    -------
    list of (str, object)
        Keys keep ``[i]`` indices (``a.b[0]``); values are typed as Helm types them:
        ``true``/``false`` booleans, integers without leading zeros, ``null``, ``{a,b}``
        lists, else strings.

    Raises
    ------
    ConfigError
        ``key=value`` missing its ``=``, an empty key, or an unclosed ``{``.

    Notes
    -----
    Follows helm ``pkg/strvals/parser.go``: commas separate assignments outside ``{}``, a
    backslash escapes the next character.
    """
    out: list[tuple[str, object]] = []
    i, n = 0, len(text)
    while i < n:
        key, i, stop = _read_until(text, i, "=,")
        if stop != "=":
            raise ConfigError(f"--set {text!r}: {key!r} has no '='; expected key=value")
        if not key.strip():
            raise ConfigError(f"--set {text!r}: empty key before '='; expected key=value")
        if i < n and text[i] == "{":
            close = text.find("}", i)
            if close < 0:
                raise ConfigError(f"--set {text!r}: '{{' is never closed; expected a list such as {{a,b}}")
            body = text[i + 1:close]
            items = [] if not body else [_typed(v, as_string) for v in _split_escaped(body, ",")]
            value: object = items
            i = close + 1
            if i < n and text[i] == ",":
                i += 1
            elif i < n:
                raise ConfigError(f"--set {text!r}: unexpected {text[i:]!r} after '}}'; expected ',' or the end")
        else:
            raw, i, _ = _read_until(text, i, ",")
            value = _typed(raw, as_string)
        out.append((key.strip(), value))
    return out


def _read_until(text: str, i: int, stops: str) -> tuple[str, int, str]:
    buf = []
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            buf.append(text[i + 1])
            i += 2
            continue
        if ch in stops:
            return "".join(buf), i + 1, ch
        buf.append(ch)
        i += 1
    return "".join(buf), i, ""


def _split_escaped(text: str, sep: str) -> list[str]:
    parts, i = [], 0
    while True:
        part, i, stop = _read_until(text, i, sep)
        parts.append(part)
        if not stop:
            return parts


def _typed(raw: str, as_string: bool) -> object:
    if as_string:
        return raw
    if raw == "true":
        return True
    if raw == "false":
        return False
    if raw == "null":
        return None
    if _INT.match(raw):
        return int(raw)
    return raw


# ---------------------------------------------------------------- keys
def key_path(key: str) -> list[str | int]:
    """Split a dotted key with indices into path parts: ``"a.b[1].c"`` -> ``["a", "b", 1, "c"]``.

    Parameters
    ----------
    key : str

    Returns
    -------
    list of str or int
    """
    parts: list[str | int] = []
    for segment in key.split("."):
        indices = []
        while (m := _INDEX.match(segment)) is not None:
            indices.append(int(m.group(2)))
            segment = m.group(1)
        parts.append(segment)
        parts.extend(reversed(indices))
    return parts


def classify_key(key: str) -> str:
    """Which kind of Helm value ``key`` is: ``"ipam"``, ``"behaviour"`` or ``"neutral"``.

    Parameters
    ----------
    key : str
        Dotted key, indices allowed (``ipam.operator.clusterPoolIPv4PodCIDRList[0]``).

    Returns
    -------
    str

    Raises
    ------
    ConfigError
        An unknown key, with the closest known one suggested.
    """
    base = re.sub(r"\[\d+\]", "", key)
    if base in IPAM_KEYS or base.startswith(IPAM_PREFIXES):
        return "ipam"
    if base in BEHAVIOUR_KEYS:
        return "behaviour"
    if base in NEUTRAL_KEYS or base.startswith(NEUTRAL_PREFIXES):
        return "neutral"
    known = list(IPAM_KEYS) + list(BEHAVIOUR_KEYS) + list(NEUTRAL_KEYS)
    close = difflib.get_close_matches(base, known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"unknown Helm value {key!r}{hint}; expected an IPAM value such as ipam.mode or "
                      "ipam.operator.clusterPoolIPv4PodCIDRList, or a value listed in docs/migration.md")


def set_value(values: dict, key: str, value: object) -> None:
    """Write ``value`` at dotted ``key`` into nested ``values`` (creating mappings and list slots).

    Parameters
    ----------
    values : dict
        Modified in place.
    key : str
        Dotted key with optional indices.
    value : object
        ``None`` deletes the key, as Helm's ``null`` does.
    """
    path = key_path(key)
    node: object = values
    for part, nxt in zip(path[:-1], path[1:]):
        if isinstance(part, int):
            while len(node) <= part:  # type: ignore[arg-type]
                node.append(None)  # type: ignore[union-attr]
            if not isinstance(node[part], (dict, list)):  # type: ignore[index]
                node[part] = [] if isinstance(nxt, int) else {}  # type: ignore[index]
            node = node[part]  # type: ignore[index]
        else:
            if not isinstance(node.get(part), (dict, list)):  # type: ignore[union-attr]
                node[part] = [] if isinstance(nxt, int) else {}  # type: ignore[index]
            node = node[part]  # type: ignore[index]
    last = path[-1]
    if isinstance(last, int):
        while len(node) <= last:  # type: ignore[arg-type]
            node.append(None)  # type: ignore[union-attr]
        node[last] = value  # type: ignore[index]
    elif value is None:
        node.pop(last, None)  # type: ignore[union-attr]
    else:
        node[last] = copy.deepcopy(value)  # type: ignore[index]


def get_value(values: Mapping, key: str, default: object = None) -> object:
    """Read dotted ``key`` from nested ``values``.

    Parameters
    ----------
    values : mapping
        Nested Helm values.
    key : str
        Dotted key with optional indices.
    default : object
        Returned when the key is absent.

    Returns
    -------
    object
    """
    node: object = values
    for part in key_path(key):
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return default
        elif not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]  # type: ignore[index]
    return node


def flatten(values: Mapping, prefix: str = "") -> dict[str, object]:
    """Nested values as dotted key -> leaf value (lists are leaves).

    Parameters
    ----------
    values : mapping
        Nested Helm values.
    prefix : str
        Prepended to every key (used in the recursion).

    Returns
    -------
    dict of str to object
    """
    out: dict[str, object] = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


# ---------------------------------------------------------------- resolved configuration
@dataclass(frozen=True)
class HelmConfig:
    """What the operator and the agents read from the release's values (IPv4 only)."""

    values: Mapping
    mode: str
    health_ip: bool
    cluster_pool: tuple[str, ...]
    cluster_pool_mask: int
    auto_pools: tuple[PoolSpec, ...]
    pre_allocation: Mapping[str, int]
    default_pool: str
    migrate_cluster_pool: bool
    rollout_operator: bool
    rollout_agents: bool
    watcher_restart: bool
    watcher_interval_s: float
    agent_max_unavailable: int | str

    def max_unavailable(self, nodes: int) -> int:
        """The agent DaemonSet's ``maxUnavailable`` for ``nodes`` nodes (percentages round up, at least 1)."""
        value = self.agent_max_unavailable
        if isinstance(value, str):
            return max(1, -(-nodes * int(value[:-1]) // 100))
        return max(1, int(value))


def resolve(values: Mapping) -> HelmConfig:
    """Resolve release values into the configuration the simulation reads.

    Parameters
    ----------
    values : mapping
        Nested Helm values: the IPAM subset as in a scenario's ``cilium:`` section plus any
        other key :func:`classify_key` accepts.

    Returns
    -------
    HelmConfig

    Raises
    ------
    ConfigError
        Anything :func:`~ipam_core.scenario.sections.read_cilium` refuses (named by the
        Helm key, e.g. ``ipam.operator.clusterPoolIPv4PodCIDRList[1]: ... overlaps ...``),
        IPv6 enabled or IPv4 disabled (the migration simulation models IPv4), a mode
        other than :data:`MIGRATION_MODES` (kubernetes / cluster-pool / multi-pool), or a behaviour value of the
        wrong kind.
    """
    subset = {k: values[k] for k in _CILIUM_SUBSET if k in values}
    cilium = read_cilium(Where(()), subset)
    if cilium.ipv6:
        raise ConfigError("ipv6.enabled: true; expected false: the migration simulation models IPv4 pod addresses "
                          "only")
    if not cilium.ipv4:
        raise ConfigError("ipv4.enabled: false; expected true: the migration simulation models IPv4 pod addresses")
    if cilium.mode not in MIGRATION_MODES:
        raise ConfigError(f"ipam.mode: {cilium.mode!r} is not simulated by migrate; expected one of "
                          f"{', '.join(MIGRATION_MODES)}")
    behaviour = {key: _behaviour(key, get_value(values, key, default)) for key, (_, default) in BEHAVIOUR_KEYS.items()}
    default_pool = behaviour["extraConfig.ipam-default-ip-pool"] or cilium.default_pool
    return HelmConfig(
        values=copy.deepcopy(dict(values)),
        mode=cilium.mode,
        health_ip=cilium.health_ip,
        cluster_pool=cilium.cluster_pool[4],
        cluster_pool_mask=cilium.cluster_pool_mask[4],
        auto_pools=tuple(pool for _, pool, _ in cilium.auto_pools),
        pre_allocation=dict(cilium.pre_allocation),
        default_pool=str(default_pool),
        migrate_cluster_pool=behaviour["extraConfig.enable-cluster-pool-to-multi-pool-migration"],
        rollout_operator=behaviour["operator.rollOutPods"],
        rollout_agents=behaviour["rollOutCiliumPods"],
        watcher_restart=behaviour["operator.unmanagedPodWatcher.restart"],
        watcher_interval_s=float(behaviour["operator.unmanagedPodWatcher.intervalSeconds"]),
        agent_max_unavailable=behaviour["updateStrategy.rollingUpdate.maxUnavailable"],
    )


def _behaviour(key: str, value: object) -> object:
    kind = BEHAVIOUR_KEYS[key][0]
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):  # extraConfig values are strings in the chart
            return value == "true"
        raise ConfigError(f"{key}: {value!r} is not a boolean; expected true or false")
    if kind == "str":
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: {value!r} is not a string; expected a pool name")
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise ConfigError(f"{key}: {value!r} is not an integer >= 0; expected e.g. 15")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, str) and re.fullmatch(r"[1-9][0-9]?%|100%", value):
        return value
    raise ConfigError(f"{key}: {value!r} is not a count >= 1 or a percentage; expected e.g. 2 or '10%'")


def upgrade_values(current: Mapping, assignments: Sequence[tuple[str, object]], extra: Mapping | None,
                   reuse: bool) -> dict:
    """The release values after ``helm upgrade``.

    Parameters
    ----------
    current : mapping
        Values of the running release.
    assignments : sequence of (str, object)
        ``--set`` / ``--set-string`` pairs, in command-line order.
    extra : mapping or None
        Nested values given as a mapping (a values file's content), merged before the
        assignments as Helm merges ``-f`` before ``--set``.
    reuse : bool
        ``--reuse-values``; without it the chart defaults are the base when new values are
        given, and the current values when none are (Helm 3 ``reuseValues``).

    Returns
    -------
    dict

    Raises
    ------
    ConfigError
        An assignment to an unknown key.
    """
    for key, _ in assignments:
        classify_key(key)
    if extra:
        for key in flatten(extra):
            classify_key(key)
    given = bool(assignments) or bool(extra)
    values = copy.deepcopy(dict(current)) if (reuse or not given) else {}
    if extra:
        _deep_merge(values, extra)
    for key, value in assignments:
        set_value(values, key, value)
    return values


def _deep_merge(into: dict, new: Mapping) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def changed_values(old: Mapping, new: Mapping) -> list[str]:
    """One text per value an upgrade changed: ``ipam.mode: kubernetes -> cluster-pool``.

    Parameters
    ----------
    old, new : mapping
        Release values before and after.

    Returns
    -------
    list of str
        Sorted by key; lists shown as ``[a, b]``; removed keys as ``(unset)``.
    """
    a, b = flatten(old), flatten(new)
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, _MISSING) != b.get(key, _MISSING):
            note = "" if classify_key(key) != "neutral" else " (no effect on pod addresses here)"
            out.append(f"{key}: {_show(a.get(key, _MISSING))} -> {_show(b.get(key, _MISSING))}{note}")
    return out


_MISSING = object()


def _show(value: object) -> str:
    if value is _MISSING:
        return "(unset)"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def upgrade_problems(old: HelmConfig, new: HelmConfig, in_use: Mapping[str, Sequence[str]],
                     cluster_pool_running: bool) -> tuple[list[str], list[str]]:
    """Check an upgrade against the rules Cilium documents for a running cluster-pool.

    Parameters
    ----------
    old : HelmConfig
        The configuration the running operator was started with.
    new : HelmConfig
        The upgraded values.
    in_use : mapping of str to sequence of str
        ``clusterPoolIPv4PodCIDRList`` entry -> nodes holding a CIDR from it.
    cluster_pool_running : bool
        Whether the running operator allocates in cluster-pool mode.

    Returns
    -------
    (errors, warnings)
        ``errors`` are refused unless the step says ``allowUnsupported: true``.

    Notes
    -----
    Cilium ``Documentation/network/concepts/ipam/cluster-pool.rst``: never change existing
    elements of ``clusterPoolIPv4PodCIDRList``, only append; ``clusterPoolIPv4MaskSize``
    cannot be changed. Upstream accepts both and then leaves nodes with CIDRs it calls "not
    configured" (issues #28266, #15977).
    """
    errors: list[str] = []
    warnings: list[str] = []
    if not (cluster_pool_running and new.mode == "cluster-pool"):
        return errors, warnings
    if new.cluster_pool_mask != old.cluster_pool_mask:
        errors.append(f"ipam.operator.clusterPoolIPv4MaskSize: {old.cluster_pool_mask} -> {new.cluster_pool_mask}: "
                      f"the mask size of a running cluster pool cannot be changed (Cilium docs); expected "
                      f"{old.cluster_pool_mask}")
    removed = [entry for entry in old.cluster_pool if entry not in new.cluster_pool]
    for entry in removed:
        holders = list(in_use.get(entry, ()))
        if holders:
            shown = ", ".join(holders[:3]) + (f" and {len(holders) - 3} more" if len(holders) > 3 else "")
            errors.append(f"ipam.operator.clusterPoolIPv4PodCIDRList: entry {entry} is removed or changed while "
                          f"nodes hold CIDRs from it ({shown}); expected existing entries kept and new ones "
                          "appended (Cilium docs: never change existing elements)")
        else:
            warnings.append(f"clusterPoolIPv4PodCIDRList entry {entry} removed (no node holds a CIDR from it)")
    if [e for e in new.cluster_pool if e in old.cluster_pool] != [e for e in old.cluster_pool if e in new.cluster_pool]:
        warnings.append("clusterPoolIPv4PodCIDRList entries reordered: allocation preference changes")
    return errors, warnings


__all__ = ["BEHAVIOUR_KEYS", "HelmConfig", "IPAM_KEYS", "MIGRATION_MODES", "NEUTRAL_KEYS", "changed_values",
           "classify_key", "flatten", "get_value", "key_path", "parse_set", "resolve", "set_value",
           "upgrade_problems", "upgrade_values"]
