"""The IPAM modes: one module per mode, named as upstream names it.

``REGISTRY`` is the only place that switches on a mode's name: each module
turns a scenario into a :class:`ipam_core.engine.layout.Layout` (its pools
and rules) and the engine runs any layout. Mode strings are Cilium's
(``pkg/ipam/option/option.go``).
"""

from __future__ import annotations

from types import ModuleType

from ipam_core.errors import ConfigError
from ipam_core.modes import aws_vpc_cni, azure, cluster_pool, crd, eni, gke, kubernetes, multi_pool

REGISTRY: dict[str, ModuleType] = {
    kubernetes.NAME: kubernetes,
    cluster_pool.NAME: cluster_pool,
    multi_pool.NAME: multi_pool,
    gke.NAME: gke,
    eni.NAME: eni,
    aws_vpc_cni.NAME: aws_vpc_cni,
    azure.NAME: azure,
    crd.NAME: crd,
}


def get_mode(name: str) -> ModuleType:
    """The module of a mode.

    Parameters
    ----------
    name : str
        Mode name (``kubernetes``, ``cluster-pool``, ``multi-pool``).

    Returns
    -------
    module
        Exposes ``NAME``, ``UPSTREAM`` and ``layout(scenario)``; optionally ``max_pods(scenario)``
        (the pods per node the kubelet admits, when the mode sets it) and
        ``cloud(scenario)`` (the cloud modes' settings, :class:`ipam_core.engine.cloud.CloudConfig`).

    Raises
    ------
    ConfigError
        For an unknown mode, listing the known ones.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(REGISTRY)
        raise ConfigError(f"unknown IPAM mode {name!r}: expected one of {known}") from None
