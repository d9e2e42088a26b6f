"""``helm get values cilium -o yaml`` into the scenario's ``cilium:`` section.

Only the IPAM subset the scenario knows (docs/scenario.md, ``cilium``) is carried over; other
values (hubble, kube-proxy replacement, images, ...) do not change pod addresses and are
listed as ignored. Values the agent takes as ``extraConfig`` flags
(``ipam-default-ip-pool``, ``ipam-multi-pool-pre-allocation``) are mapped to their keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ipam_core.addr import parse_cidr
from ipam_core.errors import ConfigError
from ipam_core.modes import REGISTRY, section_keys

#: Helm keys copied as they are, when present (dotted path in the values).
_COPIED = ("ipv4.enabled", "ipv6.enabled", "endpointHealthChecking.enabled", "ipam.mode",
           "ipam.ciliumNodeUpdateRate", "ipam.multiPoolPreAllocation",
           "ipam.operator.clusterPoolIPv4PodCIDRList", "ipam.operator.clusterPoolIPv4MaskSize",
           "ipam.operator.clusterPoolIPv6PodCIDRList", "ipam.operator.clusterPoolIPv6MaskSize",
           "ipam.operator.autoCreateCiliumPodIPPools")
#: agent flags set through ``extraConfig`` -> scenario key.
_EXTRA_CONFIG = {"ipam-default-ip-pool": "ipam.defaultPool",
                 "ipam-multi-pool-pre-allocation": "ipam.multiPoolPreAllocation"}
#: Upstream IPAM modes the engine does not model (cilium ``pkg/ipam/option/option.go``).
_UNMODELLED = ("alibabacloud", "delegated-plugin")
#: Helm ``ipam.mode`` values the engine models, each the name of its mode.
HELM_MODES = tuple(dict.fromkeys(spec.helm_mode for spec in REGISTRY.values() if spec.helm_mode))


@dataclass
class HelmValues:
    """The ``cilium:`` section built from Helm values, and what was left out."""

    cilium: dict = field(default_factory=dict)
    ignored: list = field(default_factory=list)  # top-level keys without effect on pod addresses
    path: str | None = None

    @property
    def mode(self) -> str | None:
        """``ipam.mode`` when the values set it."""
        return self.cilium.get("ipam", {}).get("mode")


def read_helm_values(path) -> HelmValues:
    """Read Helm values and map them to the scenario's ``cilium:`` section.

    Parameters
    ----------
    path : str or os.PathLike
        ``helm get values cilium -o yaml`` output (a leading ``USER-SUPPLIED VALUES:`` or
        ``COMPUTED VALUES:`` line, as plain ``helm get values`` prints, is accepted).

    Returns
    -------
    HelmValues

    Raises
    ------
    ConfigError
        ``FILE: key: value; expected ...``: unreadable file or YAML, a mode ipam-bench does
        not know, a cluster-pool CIDR that is malformed, has host bits set or is of the
        wrong family.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such Helm values file; expected the output of helm get values cilium -o yaml") \
            from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read ({type(exc).__name__}); expected a Helm values YAML file") from None
    lines = text.splitlines()
    if lines and lines[0].strip() in ("USER-SUPPLIED VALUES:", "COMPUTED VALUES:"):
        text = "\n".join(lines[1:])
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{p}{at}: invalid YAML: {getattr(exc, 'problem', None) or type(exc).__name__}; expected "
                          "helm get values cilium -o yaml") from None
    if values is None or values == "null":
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{p}: top level is {type(values).__name__}; expected a mapping of Helm values")
    out = HelmValues(path=str(p))
    for dotted in _COPIED:
        found, value = _get(values, dotted)
        if found:
            _put(out.cilium, dotted, value)
    extra = values.get("extraConfig") if isinstance(values.get("extraConfig"), dict) else {}
    for flag, key in _EXTRA_CONFIG.items():
        if flag in extra:
            _put(out.cilium, key, extra[flag])
    sections = section_keys("cilium")  # the mode-owned Helm sections (eni, azure) and the keys each accepts
    for name, keys in sections.items():
        section = values.get(name)
        kept = {k: v for k, v in section.items() if k in keys} if isinstance(section, dict) else {}
        if kept:
            out.cilium[name] = kept
    out.ignored = sorted(k for k in values if k not in ("ipv4", "ipv6", "endpointHealthChecking", "ipam", "extraConfig",
                                                          *sections))
    _check(p, out.cilium)
    return out


def _check(path: Path, cilium: dict) -> None:
    """The values a dump is checked against: the mode and the cluster-pool CIDRs."""
    mode = cilium.get("ipam", {}).get("mode")
    if mode is not None and mode not in HELM_MODES:
        why = "an upstream mode ipam-bench does not model" if mode in _UNMODELLED else "not a Cilium IPAM mode"
        raise ConfigError(f"{path}: ipam.mode: {mode!r} is {why}; expected one of: {', '.join(HELM_MODES)}")
    operator = cilium.get("ipam", {}).get("operator", {})
    for family in (4, 6):
        key = f"clusterPoolIPv{family}PodCIDRList"
        if key not in operator:
            continue
        entries = operator[key]
        if isinstance(entries, str):  # --set ipam.operator.clusterPoolIPv4PodCIDRList=10.0.0.0/8 gives a string
            entries = [e.strip() for e in entries.split(",") if e.strip()]
            operator[key] = entries
        if not isinstance(entries, list):
            raise ConfigError(f"{path}: ipam.operator.{key}: {entries!r}; expected a list of IPv{family} CIDRs")
        for i, entry in enumerate(entries):
            try:
                parse_cidr(str(entry), family)
            except ConfigError as exc:
                raise ConfigError(f"{path}: ipam.operator.{key}[{i}]: {exc}") from None


def _get(values: dict, dotted: str):
    node = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _put(target: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value
