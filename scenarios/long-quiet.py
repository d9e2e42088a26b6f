"""Write the replay file of ``scenarios/long-quiet.yaml``: a long, quiet cluster trace.

The shape of a trace a user replayed (issue #9): 149 days, 1,523 nodes, about 7,000 pods
alive, a few events a day. We do not have that file, so this seeded generator writes one
of the same shape:

* t = 0: ``node-0`` ... ``node-1522`` join; the first ``--pods`` pods are created over the
  first ``--startup`` seconds, each pinned to a node drawn uniformly (``spec.nodeName``, as a
  recorder of a real cluster writes it);
* then, per day, a Poisson number (mean ``--pod-events-per-day``) of pod creates and deletes,
  half each, at whole seconds: a create goes to a random present node, a delete takes a
  random live pod;
* rarely (mean gap ``--node-gap-days``) a node event: a new node joins, or a random node is
  drained (its pods deleted, then recreated on other nodes within a minute) and deleted.

Times are whole seconds, as recorders and ISO-8601 timestamps give them, so timers of the
engine often fall on the same second (the hard case for exact tie order).

Run from the repository root::

    python scenarios/long-quiet.py                      # writes scenarios/long-quiet.csv.gz
    python scenarios/long-quiet.py --days 2 --out x.csv  # a shorter trace of the same shape

:func:`long_quiet_events` is also used by ``bench/test_bench_quiet.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

DAY_S = 86_400
NAMESPACES = ("default", "web", "batch", "monitoring", "kube-system")


def long_quiet_events(*, seed: int = 149, days: int = 149, nodes: int = 1523, pods: int = 7000,
                      pod_events_per_day: float = 6.0, node_gap_days: float = 12.0,
                      startup_s: int = 600) -> pa.Table:
    """Events of a long, quiet cluster, as a replay table.

    Parameters
    ----------
    seed : int
        Seed of every random choice.
    days : int
        Length of the trace; the last event is before ``days * 86400`` s.
    nodes : int
        Nodes at t = 0.
    pods : int
        Pods created during the first ``startup_s`` seconds (the pods alive).
    pod_events_per_day : float
        Mean pod creates + deletes per day after the start (Poisson, half each).
    node_gap_days : float
        Mean days between node events (exponential gaps): a join or a drain + delete.
    startup_s : int
        Seconds over which the initial pods are created.

    Returns
    -------
    pyarrow.Table
        Columns ``time`` (int64 seconds), ``op``, ``pod``, ``namespace``, ``node``
        (empty cells on node rows / unpinned pods are nulls), sorted by time.
    """
    rng = np.random.default_rng(seed)
    end = days * DAY_S
    rows: list[tuple[int, str, str | None, str | None, str | None]] = []
    present = [f"node-{i}" for i in range(nodes)]
    next_node = nodes
    for name in present:
        rows.append((0, "node-add", None, None, name))
    alive: dict[str, tuple[str, str]] = {}  # pod name -> (namespace, node)
    next_pod = 0

    def create(t: int, node: str) -> None:
        nonlocal next_pod
        name = f"pod-{next_pod}"
        next_pod += 1
        ns = NAMESPACES[int(rng.integers(len(NAMESPACES)))]
        alive[name] = (ns, node)
        rows.append((t, "create", name, ns, node))

    def delete(t: int, name: str) -> None:
        ns, _ = alive.pop(name)
        rows.append((t, "delete", name, ns, None))

    for t in np.sort(rng.integers(0, startup_s, pods)):
        create(int(t), present[int(rng.integers(len(present)))])

    # the quiet part: pod events and rare node events, merged in time order
    n_pod_events = rng.poisson(pod_events_per_day * (days - 1))
    pod_times = np.sort(rng.integers(DAY_S // 2, end - 3600, n_pod_events))
    gaps = rng.exponential(node_gap_days * DAY_S, size=max(4, int(3 * days / node_gap_days) + 4))
    node_times = np.cumsum(gaps).astype(np.int64) + DAY_S
    node_times = node_times[node_times < end - 3600]
    events = sorted([(int(t), "pod") for t in pod_times] + [(int(t), "node") for t in node_times])
    for t, kind in events:
        if kind == "pod":
            if rng.random() < 0.5 and alive:
                names = list(alive)
                delete(t, names[int(rng.integers(len(names)))])
            else:
                create(t, present[int(rng.integers(len(present)))])
        elif rng.random() < 0.5:
            name = f"node-{next_node}"
            next_node += 1
            present.append(name)
            rows.append((t, "node-add", None, None, name))
        elif len(present) > 1:
            gone = present.pop(int(rng.integers(len(present))))
            drained = [p for p, (_, n) in alive.items() if n == gone]
            for p in drained:  # drain: delete, then the controllers recreate them elsewhere
                delete(t, p)
            rows.append((t + 30, "node-delete", None, None, gone))
            for k, _ in enumerate(drained):
                create(t + 5 + k % 55, present[int(rng.integers(len(present)))])
    rows.sort(key=lambda r: r[0])  # stable: same-second rows keep their written order
    columns = list(zip(*rows))
    return pa.table({
        "time": pa.array(columns[0], pa.int64()),
        "op": pa.array(columns[1], pa.string()),
        "pod": pa.array(columns[2], pa.string()),
        "namespace": pa.array(columns[3], pa.string()),
        "node": pa.array(columns[4], pa.string()),
    })


def main(argv: list[str] | None = None) -> None:
    """Write the events file (defaults: the committed ``scenarios/long-quiet.csv.gz``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).with_name("long-quiet.csv.gz")))
    parser.add_argument("--seed", type=int, default=149)
    parser.add_argument("--days", type=int, default=149)
    parser.add_argument("--nodes", type=int, default=1523)
    parser.add_argument("--pods", type=int, default=7000)
    parser.add_argument("--pod-events-per-day", type=float, default=6.0)
    parser.add_argument("--node-gap-days", type=float, default=12.0)
    args = parser.parse_args(argv)
    table = long_quiet_events(seed=args.seed, days=args.days, nodes=args.nodes, pods=args.pods,
                              pod_events_per_day=args.pod_events_per_day, node_gap_days=args.node_gap_days)
    out = Path(args.out)
    with pa.CompressedOutputStream(str(out), "gzip") if out.suffix == ".gz" else pa.OSFile(str(out), "wb") as f:
        pacsv.write_csv(table, f)
    print(f"{out}: {table.num_rows} events")


if __name__ == "__main__":
    main()
