"""Timer tables that start small and grow while a run goes on.

The engine keeps its timers in three tables (engine/state.py): the pod-retry ring (``retry_t``,
``retry_row``, ``retry_seq``), the node-timer rings (``node_ring_t``, ``node_ring_i``, one ring per kind) and the heap
(``heap_t``, ``heap_i``). Sized for the worst case they were 42 % of the state at 100,000 nodes (a retry
for every live pod, 16 heap entries per node: results/bench-scale-100k.md) while a run used a few per
node. The heap and the node rings now start at :data:`START_PER_NODE` entries per node and grow:

* each table has a limit :data:`TIMER_ROOM` entries below its capacity (``cnt[K_*_LIMIT]``). A push
  past the limit still fits, and asks for room (``cnt[K_ERROR] = GROW_TIMERS``, the fill wanted in
  ``cnt[K_*_NEED]``); the loop checks ``K_ERROR`` between steps, so it stops after the step, before the
  next event or timer (engine/core.py ``advance``);
* :func:`grow_timers` doubles what was asked for, keeping every timer and its order, and the caller
  (engine/run.py ``Simulation``) calls the loop again. The loop resumes where it stopped: the run's
  timers, events and samples are those of a run whose tables were large enough from the start.

Why a push never finds a full table: one step (an event, or a timer firing) sets at most a few timers
(its node's operator request, agent sync and periodic pass, the cluster-wide pass of calico's
controllers), well inside :data:`TIMER_ROOM`. The two steps that set timers for many pods or nodes ask
for their room before they start: a drain (``DRAIN_TIMERS_PER_POD`` heap entries per pod on the node)
and the multi-pool fast-forward of quiet nodes' passes (an operator timer per periodic-ring entry),
engine/core.py ``_drain_room`` and ``_fast_forward_refresh``. A node ring never fails: when full, its
timers go to the heap, which fires them in the same (time, sequence) order.

The pod-retry ring does not grow: it is sized at its bound when the state is built (a retry per pod
alive at once and per retry outliving its pod, engine/state.py ``workload_bounds``; 20 bytes an entry).
A run whose pods wait fills it to nearly that bound (at 100,000 nodes every pod of the fill waits for
its node's CIDR), and growing it there meant copying 3 million entries in doublings and faulting in
fresh pages inside the loop: the whole 100,000-node run was 18-23 % slower (results/bench-scale-100k.md).
"""

from __future__ import annotations

import numpy as np

from ipam_core.engine import tables as T

#: Entries above each timer table's limit: one step's timers fit in them (see the module docstring).
TIMER_ROOM = 64
#: Entries per node each table starts with, above the room (the pod-retry ring, the heap, each node ring).
START_PER_NODE = 1


def start_capacity(n_nodes: int) -> int:
    """Entries the heap and each node ring start with: :data:`START_PER_NODE` per node, plus the room.

    Parameters
    ----------
    n_nodes : int
        Node ids of the run.

    Returns
    -------
    int
    """
    return START_PER_NODE * max(n_nodes, 1) + TIMER_ROOM


def set_limits(core) -> None:
    """Write the heap's and the node rings' limit (capacity less :data:`TIMER_ROOM`) into ``core.cnt``.

    Parameters
    ----------
    core : CoreTables
    """
    core.cnt[T.K_HEAP_LIMIT] = core.timer.heap_t.shape[0] - TIMER_ROOM
    core.cnt[T.K_RING_LIMIT] = core.timer.node_ring_t.shape[1] - TIMER_ROOM


def _capacity(cap: int, need: int) -> int:
    """``cap`` doubled until its limit holds ``need`` entries."""
    cap = max(2 * cap, TIMER_ROOM + 1)
    while cap - TIMER_ROOM < need:
        cap *= 2
    return cap


def _unrolled(columns: tuple[np.ndarray, ...], head: int, count: int, cap: int) -> list[np.ndarray]:
    """A ring's ``count`` entries from ``head`` on (wrapping around), first at 0, in columns of ``cap`` entries."""
    first = min(count, columns[0].shape[0] - head)  # entries before the ring wraps around
    grown = []
    for column in columns:
        new = np.zeros((cap,) + column.shape[1:], dtype=column.dtype)
        new[:first] = column[head : head + first]
        new[first:count] = column[: count - first]
        grown.append(new)
    return grown


def grow_timers(state):
    """The state with room for the timers its loop asked for (``cnt[K_ERROR] == GROW_TIMERS``).

    Parameters
    ----------
    state : State
        Stopped by the loop between two steps.

    Returns
    -------
    State
        The same tables, each timer table that passed its limit replaced by one twice as large (or
        more, to hold what was asked for), with its timers in the same order: a ring's from its head on,
        now at entry 0, the heap's array as it was. ``K_ERROR`` and the requests are cleared.
    """
    core = state.core
    timer, cnt = core.timer, core.cnt
    grown = {}
    need = int(cnt[T.K_RING_NEED])
    if need > cnt[T.K_RING_LIMIT]:
        cap = _capacity(timer.node_ring_t.shape[1], need)
        rings = [_unrolled((timer.node_ring_t[k], timer.node_ring_i[k]), int(timer.node_ring_pos[k, 0]),
                           int(timer.node_ring_pos[k, 1]), cap) for k in range(timer.node_ring_t.shape[0])]
        grown["node_ring_t"] = np.stack([t for t, _ in rings])
        grown["node_ring_i"] = np.stack([i for _, i in rings])
        timer.node_ring_pos[:, 0] = 0
    need = int(cnt[T.K_HEAP_NEED])
    if need > cnt[T.K_HEAP_LIMIT]:
        n, cap = int(cnt[T.K_HEAP]), _capacity(timer.heap_t.shape[0], need)
        grown["heap_t"] = np.zeros(cap, dtype=timer.heap_t.dtype)
        grown["heap_i"] = np.zeros((cap, timer.heap_i.shape[1]), dtype=timer.heap_i.dtype)
        grown["heap_t"][:n] = timer.heap_t[:n]
        grown["heap_i"][:n] = timer.heap_i[:n]
    if not grown:
        raise ValueError(f"the loop asked for timer room it has: cnt K_ERROR={int(cnt[T.K_ERROR])}")
    cnt[T.K_HEAP_NEED] = cnt[T.K_RING_NEED] = 0
    cnt[T.K_ERROR] = 0
    core = core._replace(timer=timer._replace(**grown))
    set_limits(core)
    return state._replace(core=core)
