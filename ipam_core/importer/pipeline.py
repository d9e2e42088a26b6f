"""Dumps (and Helm values, and events) in, an :class:`Imported` cluster out."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ipam_core.importer.cluster import ClusterState, build_state, infer_mode
from ipam_core.importer.dumps import read_dumps
from ipam_core.importer.events import pod_lifetimes
from ipam_core.importer.helm import HelmValues, read_helm_values
from ipam_core.importer.scenario import build_scenario
from ipam_core.scenario.defaults import DEFAULT_MODE


@dataclass
class Imported:
    """An imported cluster: the scenario mapping, its replay rows, the initial-state record, notes."""

    scenario: dict
    rows: list
    initial: dict
    notes: list
    state: ClusterState


def import_cluster(dumps, *, helm_values=None, events=None, name: str = "imported") -> Imported:
    """Read a cluster's dumps and build its scenario.

    Parameters
    ----------
    dumps : sequence of str or os.PathLike
        ``kubectl get nodes,pods,ciliumnodes,ciliumpodippools -A -o json`` output, in one
        file or several (namespaces may be dumped too: their pool annotations are kept).
    helm_values : str or os.PathLike, optional
        ``helm get values cilium -o yaml``. Without it the mode is inferred from the objects
        (:func:`ipam_core.importer.cluster.infer_mode`); with it and no ``ipam.mode``, the
        mode is the chart's default, ``cluster-pool``.
    events : str or os.PathLike, optional
        ``kubectl get events -A -o json``: pod Scheduled / Killing events become the workload.
    name : str
        The scenario's name.

    Returns
    -------
    Imported

    Raises
    ------
    ConfigError
        One line naming the file, object, field and value (see the readers).
    """
    helm = read_helm_values(helm_values) if helm_values is not None else HelmValues()
    dump = read_dumps(list(dumps))
    notes = []
    if helm.mode is not None:
        mode = helm.mode
    elif helm_values is not None:
        mode = DEFAULT_MODE
        notes.append(f"Helm values set no ipam.mode: the chart's default, {DEFAULT_MODE}")
    else:
        mode = infer_mode(dump)
        notes.append(f"no Helm values: ipam.mode {mode} inferred from the objects")
    families = _families(helm, dump)
    state = build_state(dump, mode, families)
    state.notes[:0] = notes
    if helm.ignored:
        state.notes.append(f"Helm values without effect on pod addresses ignored: {', '.join(helm.ignored[:8])}"
                           + (" ..." if len(helm.ignored) > 8 else ""))
    if dump.skipped:
        state.notes.append("objects of other kinds skipped: " + ", ".join(f"{n} {k}" for k, n in
                                                                          sorted(dump.skipped.items())))
    lifetimes = []
    sources = [*map(str, dumps)] + ([str(helm_values)] if helm_values is not None else [])
    if events is not None:
        lifetimes = pod_lifetimes(read_dumps([events], kinds=("Event",)))
        sources.append(str(events))
    doc, rows, initial, all_notes = build_scenario(state, helm.cilium, name=name, sources=sources,
                                                   lifetimes=lifetimes)
    return Imported(doc, rows, initial, all_notes, state)


def _families(helm: HelmValues, dump) -> tuple[int, ...]:
    """Helm's ``ipv4.enabled`` / ``ipv6.enabled`` when set, else the families the node CIDRs and pod IPs show."""
    v4 = helm.cilium.get("ipv4", {}).get("enabled")
    v6 = helm.cilium.get("ipv6", {}).get("enabled")
    if helm.path is not None:
        return tuple(f for f, on in ((4, True if v4 is None else bool(v4)), (6, bool(v6))) if on)
    seen = set()
    for node in dump.nodes:
        for c in (node.spec.pod_cidrs or []) if node.spec else []:
            seen.add(6 if ":" in c else 4)
    for pod in dump.pods:
        for ip in (pod.status.pod_ips or []) if pod.status else []:
            if ip.ip and not (pod.spec and pod.spec.host_network):
                try:
                    seen.add(ipaddress.ip_address(ip.ip).version)
                except ValueError:
                    pass  # reported with its pod by build_state
    return tuple(sorted(seen)) or (4,)
