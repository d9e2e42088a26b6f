"""The IPAM modes: one module per mode, named as upstream names it, and the one registry of them.

Each mode module holds its :class:`~ipam_core.modes.spec.ModeSpec` (``MODE``: name,
rules family, settings section and the keys it accepts, Helm ``ipam.mode``, whether
``migrate`` simulates it, a one-line summary, the scenario check) and the functions that
turn a scenario into what the engine runs: ``layout(scenario)`` (a
:class:`~ipam_core.engine.layout.Layout`), optionally ``max_pods(scenario)`` (the pods per
node the kubelet admits, when the mode sets it; with node groups, the largest group's) and ``cloud(scenario)`` (a
:class:`~ipam_core.engine.cloud_config.CloudConfig`).

:data:`REGISTRY` is the only list of modes: scenario validation, ``--mode``/``--modes``,
``migrate`` and its planner, and the docs derive theirs from it. Adding a mode is one
module here plus one entry in :data:`MODULES`. The modes import the engine (their compiled
rules register with its hooks, docs/layout.md) and never the scenario loader (which validates
through them); the engine never imports a mode.
"""

from __future__ import annotations

from types import ModuleType

from ipam_core.errors import ConfigError
from ipam_core.modes import aws_vpc_cni, azure, calico, cluster_pool, crd, eni, gke, kubernetes, multi_pool
from ipam_core.modes.spec import (RULES, RULES_CALICO, RULES_CLOUD, RULES_MULTI_POOL, RULES_NODE_CIDR, ModeSpec,
                                  Section)

#: Every mode module, in the order modes are listed to users.
MODULES: tuple[ModuleType, ...] = (kubernetes, cluster_pool, multi_pool, eni, aws_vpc_cni, azure, crd, gke, calico)

#: Mode name -> its spec.
REGISTRY: dict[str, ModeSpec] = {module.MODE.name: module.MODE for module in MODULES}

_MODULE_OF: dict[str, ModuleType] = {module.MODE.name: module for module in MODULES}

#: Every mode a scenario, ``--mode`` or ``--modes`` may name.
ALL_MODES: tuple[str, ...] = tuple(REGISTRY)
#: The modes ``compare`` runs when a scenario names none: every mode that is not a cloud mode nor named-only.
POOL_MODES: tuple[str, ...] = tuple(name for name, spec in REGISTRY.items() if not spec.cloud and not spec.named_only)
#: The cloud modes (docs/cloud-modes.md): run only when named.
CLOUD_MODES: tuple[str, ...] = tuple(name for name, spec in REGISTRY.items() if spec.cloud)
#: The modes ``ipam-bench migrate`` simulates, as start or target.
MIGRATION_MODES: tuple[str, ...] = tuple(name for name, spec in REGISTRY.items() if spec.migration)


def _unknown(name: object) -> ConfigError:
    return ConfigError(f"unknown IPAM mode {name!r}: expected one of {', '.join(REGISTRY)}")


def mode_spec(name: str) -> ModeSpec:
    """The registry entry of a mode.

    Parameters
    ----------
    name : str
        Mode name (``kubernetes``, ``cluster-pool``, ...).

    Returns
    -------
    ModeSpec

    Raises
    ------
    ConfigError
        For an unknown mode, listing the known ones.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise _unknown(name) from None


def get_mode(name: str) -> ModuleType:
    """The module of a mode.

    Parameters
    ----------
    name : str
        Mode name (``kubernetes``, ``cluster-pool``, ``multi-pool``, ...).

    Returns
    -------
    module
        Exposes ``MODE``, ``NAME``, ``UPSTREAM`` and ``layout(scenario)``; optionally
        ``max_pods(scenario)`` and ``cloud(scenario)`` (see the package docstring).

    Raises
    ------
    ConfigError
        For an unknown mode, listing the known ones.
    """
    try:
        return _MODULE_OF[name]
    except KeyError:
        raise _unknown(name) from None


def section_keys(parent: str) -> dict[str, tuple[str, ...]]:
    """The mode-owned sections under ``parent`` (``cilium`` or ``cloud``) and the keys each accepts.

    Parameters
    ----------
    parent : str

    Returns
    -------
    dict
        Section name (``eni``, ``awsVpcCni``) -> accepted keys, in registry order.
    """
    return {s.name: s.keys for spec in REGISTRY.values() for s in spec.sections if s.parent == parent}


__all__ = [
    "ALL_MODES", "CLOUD_MODES", "MIGRATION_MODES", "MODULES", "POOL_MODES", "REGISTRY", "RULES", "RULES_CALICO", "RULES_CLOUD",
    "RULES_MULTI_POOL", "RULES_NODE_CIDR", "ModeSpec", "Section", "get_mode", "mode_spec", "section_keys",
]
