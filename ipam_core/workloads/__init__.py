"""Workloads: cluster event arrays for the engine, from generators or recorded files.

``parse_workload`` validates a scenario's ``workload:`` mapping into a
:class:`WorkloadSpec`; ``generate`` turns it into a :class:`Workload` (or reads
a file for ``replay``); ``read_events`` reads CSV, Parquet or Arrow IPC event
files directly. See ``docs/dev/contracts.md`` section 1.
"""

from ipam_core.workloads.events import (
    OP_NAMES,
    OP_NODE_ADD,
    OP_NODE_DEL,
    OP_POD_ADD,
    OP_POD_DEL,
    Workload,
    merge,
    truncate,
)
from ipam_core.workloads.generators import MAX_EVENTS, generate
from ipam_core.workloads.replay import POOL_ANNOTATION, read_events
from ipam_core.workloads.spec import (
    SPEC_TYPES,
    BurstSpec,
    Cl2LoadSpec,
    NodeAutoscalingSpec,
    ReplaySpec,
    ScaleOutSpec,
    SteadyChurnSpec,
    WorkloadSpec,
    parse_workload,
)

__all__ = [
    "OP_NODE_ADD",
    "OP_NODE_DEL",
    "OP_POD_ADD",
    "OP_POD_DEL",
    "OP_NAMES",
    "Workload",
    "merge",
    "truncate",
    "generate",
    "MAX_EVENTS",
    "read_events",
    "POOL_ANNOTATION",
    "parse_workload",
    "WorkloadSpec",
    "SteadyChurnSpec",
    "ScaleOutSpec",
    "BurstSpec",
    "NodeAutoscalingSpec",
    "Cl2LoadSpec",
    "ReplaySpec",
    "SPEC_TYPES",
]
