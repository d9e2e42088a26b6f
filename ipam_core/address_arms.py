"""The cost of an address-blind scheduler: every mode run once per ``cluster.addressFilter``.

kube-scheduler does not know how many pod addresses a node has left
(kubernetes/enhancements#611, aws/amazon-vpc-cni-k8s#2638). Running the same
workload through each mode with the filter off (``none``, today's scheduler)
and on (``free``, ``warm``) puts that cost in one column: the pods that failed
with the blind scheduler and not with the filtered one.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa

from ipam_core.pipeline import build_workload, simulate
from ipam_core.engine import tables as T
from ipam_core.errors import ConfigError
from ipam_core.workloads import Workload

#: Columns of :func:`compare_address_filters`, with what each holds.
ARM_COLUMNS = (
    ("mode", "IPAM mode"),
    ("family", "4 or 6"),
    ("address_filter", "cluster.addressFilter of the run: none (address-blind), free or warm"),
    ("pods_failed", "pods that gave up waiting for an address"),
    ("failed_free_elsewhere", "of those, while addresses were free elsewhere"),
    ("blind_extra_failures", "pods_failed of the address-blind run minus this run's (0 on the blind row)"),
    ("pods_running_end", "pods running at the end"),
    ("pods_pending_end", "pods waiting at the end (unschedulable or without an address)"),
)


def check_address_filters(filters) -> list[str]:
    """The filters to run, checked, with ``none`` (the address-blind baseline) first if it is missing.

    Parameters
    ----------
    filters : sequence of str
        Values of ``cluster.addressFilter``.

    Returns
    -------
    list of str

    Raises
    ------
    ConfigError
        A filter that is not one of ``none``, ``free``, ``warm``, or one listed twice.
    """
    filters = list(filters)
    for i, name in enumerate(filters):
        if name not in T.ADDRESS_FILTERS:
            raise ConfigError(f"address filter {name!r} is not one of: {', '.join(T.ADDRESS_FILTERS)}")
        if name in filters[:i]:
            raise ConfigError(f"address filter {name!r} is listed twice; expected each filter once")
    if "none" not in filters:
        filters.insert(0, "none")
    return filters


def compare_address_filters(scenario, modes=None, filters=("none", "free", "warm"),
                            workload: Workload | None = None, done=None) -> pa.Table:
    """Run each mode once per address filter on the same workload; one row per mode, family and filter.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
        Validated scenario; its own ``cluster.addressFilter`` is replaced per run.
    modes : sequence of str, optional
        Modes to run; defaults to ``scenario.modes``.
    filters : sequence of str
        Values of ``cluster.addressFilter`` to run; ``none`` first gives the
        baseline of ``blind_extra_failures`` (added when missing).
    workload : Workload, optional
        Events to use instead of the scenario's own (built once, shared by every run).
    done : ipam_core.engine.RunResult, optional
        A run already made of ``scenario`` with these modes on this workload (``compare`` has one):
        it stands for the scenario's own ``cluster.addressFilter`` instead of running it again.

    Returns
    -------
    pyarrow.Table
        Columns :data:`ARM_COLUMNS`, rows ordered by mode, family, then filter.

    Raises
    ------
    ConfigError
        A filter that is not one of ``none``, ``free``, ``warm``, or one listed twice.
    """
    filters = check_address_filters(filters)
    modes = list(modes or scenario.modes)
    workload = workload if workload is not None else build_workload(scenario)
    runs = {}
    for name in filters:
        if done is not None and name == scenario.cluster.address_filter:
            runs[name] = done.modes
            continue
        arm = replace(scenario, cluster=replace(scenario.cluster, address_filter=name))
        runs[name] = simulate(arm, modes, workload=workload).modes
    rows = []
    for mi, mode in enumerate(modes):
        for family in runs["none"][mi].families:
            blind = _last_values(runs["none"][mi].trace, family)
            for name in filters:
                last = _last_values(runs[name][mi].trace, family)
                rows.append((mode, family, name, last["pods_failed"], last["pods_failed_free_elsewhere"],
                             blind["pods_failed"] - last["pods_failed"], last["pods_running"], last["pods_pending"]))
    names = [name for name, _ in ARM_COLUMNS]
    return pa.table({name: [row[i] for row in rows] for i, name in enumerate(names)})


def _last_values(trace: dict, family: int) -> dict[str, int]:
    """The last sample of the pod counters for one family (the trace interleaves families)."""
    at = int(np.flatnonzero(trace["family"] == family)[-1])
    return {column: int(trace[column][at])
            for column in ("pods_failed", "pods_failed_free_elsewhere", "pods_running", "pods_pending")}
