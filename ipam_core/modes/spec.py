"""What the registry knows about a mode: one frozen :class:`ModeSpec` per mode module.

Every list of modes elsewhere (scenario validation, ``--mode``/``--modes``, the
migration simulation and its planner, the docs' tables) is derived from these
specs through :mod:`ipam_core.modes`; nothing outside this package spells a mode's
name in a list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

#: Rules families: which engine rules run a mode (the ``Layout.policy`` it builds).
RULES_NODE_CIDR = "node-cidr"  # one node CIDR per node and family, carved from cluster CIDRs
RULES_MULTI_POOL = "multi-pool"  # per-pool node CIDRs sized by the agent's demand
RULES_CLOUD = "cloud-pool"  # per-node pools of addresses / prefixes from cloud subnets
RULES_CALICO = "calico-blocks"  # Calico: nodes claim blocks of IPPools by affinity and borrow from others
RULES = (RULES_NODE_CIDR, RULES_MULTI_POOL, RULES_CLOUD, RULES_CALICO)


@dataclass(frozen=True)
class Section:
    """A scenario section that only one mode reads, and the keys it accepts.

    Attributes
    ----------
    path : str
        Dotted key of the section (``cilium.eni``, ``cloud.awsVpcCni``); its parent is
        ``cilium`` or ``cloud``.
    keys : tuple of str
        Keys the section accepts; any other is refused with a hint.
    """

    path: str
    keys: tuple[str, ...]

    @property
    def parent(self) -> str:
        """``cilium`` or ``cloud``."""
        return self.path.split(".", 1)[0]

    @property
    def name(self) -> str:
        """The section's own key in its parent (``eni``, ``awsVpcCni``)."""
        return self.path.split(".", 1)[1]


@dataclass(frozen=True)
class ModeSpec:
    """One IPAM mode as the rest of the program sees it.

    Attributes
    ----------
    name : str
        The value of ``cilium.ipam.mode``, ``--mode`` and ``--modes`` (Cilium's spelling,
        ``pkg/ipam/option/option.go``, where Cilium has the mode).
    rules : str
        Rules family (:data:`RULES`): which engine rules run it.
    summary : str
        One line for docs and help texts.
    settings : str
        Dotted scenario key where its own settings live.
    sections : tuple of Section
        Scenario sections only this mode reads, with the keys each accepts.
    helm_mode : str or None
        Helm ``ipam.mode`` of a cluster running it; ``None`` when Cilium's IPAM is not in
        charge (``aws-vpc-cni``).
    migration : bool
        Whether ``ipam-bench migrate`` simulates it (as start or target).
    cloud : bool
        A cloud mode (docs/cloud-modes.md): run only when named, not by the default ``compare``.
    named_only : bool
        Run only when named, though not a cloud mode: its scenario vocabulary is not Cilium's
        (``calico`` reads Calico manifests), so the default ``compare`` leaves it out.
    holds : str
        What a node holds its pod addresses in, as the figures name it ("node CIDRs",
        "affine blocks", "ENI addresses and prefixes", ...).
    check : callable
        ``check(ipam, root)``: refuse (``root / key).fail(...)``) a scenario that lacks what
        the mode needs; ``ipam`` is the scenario's ``IPAMSpec``.
    upstream : tuple of str
        The upstream files the mode follows.
    """

    name: str
    rules: str
    summary: str
    settings: str
    helm_mode: str | None
    migration: bool
    cloud: bool
    check: Callable = field(compare=False, repr=False)
    sections: tuple[Section, ...] = ()
    upstream: tuple[str, ...] = ()
    named_only: bool = False
    holds: str = "node CIDRs"

    def __post_init__(self):
        if self.rules not in RULES:
            raise ValueError(f"mode {self.name!r}: rules {self.rules!r}; expected one of {', '.join(RULES)}")
