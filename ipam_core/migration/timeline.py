"""A migration replay as readable text: each step, what it set off, and the state it led to."""

from __future__ import annotations

from ipam_core.migration.observe import table

INDENT = " " * 13
MAX_EVENTS = 16
MAX_NODES = 12


def fmt_time(seconds: float) -> str:
    """``0s``, ``45s``, ``25m00s``, ``1h02m03s`` (fractions kept below a minute)."""
    if seconds < 60:
        return f"{seconds:g}s"
    whole = int(round(seconds))
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _node_table(rows: list[dict]) -> list[str]:
    body = []
    for r in rows[:MAX_NODES]:
        cidrs = r["ciliumnode_pod_cidrs"] + r["pools_allocated"]
        shown = ",".join(cidrs) if r["ciliumnode_exists"] else "(deleted)"
        state = "" if r["agent_state"] == "ready" else f" ({r['agent_state']})"
        body.append([r["node"], shown or "-", (",".join(r["routed_cidrs"]) or "-") + state, r["status_error"] or "-"])
    lines = table(["node", "CiliumNode CIDRs", "agent routes", "operator status error"], body)
    if len(rows) > MAX_NODES:
        lines.append(f"... and {len(rows) - MAX_NODES} more node(s)")
    return lines


def _node_key(rows: list[dict]) -> tuple:
    return tuple((r["node"], tuple(r["ciliumnode_pod_cidrs"]), tuple(r["pools_allocated"]), r["ciliumnode_exists"],
                  tuple(r["routed_cidrs"]), r["agent_state"], r["status_error"]) for r in rows)


def _pods_line(row: dict) -> str:
    parts = [f"{row['pods_running']} running"]
    if row["pods_pending"]:
        parts.append(f"{row['pods_pending']} starting")
    parts.append(f"{row['pods_stale']} stale")
    parts.append(f"{row['pods_disrupted']} disrupted")
    text = "pods: " + ", ".join(parts)
    if row["disrupted_pod_s"]:
        text += f"; {row['disrupted_pod_s']:,.0f} disrupted pod-seconds until the next step"
    if row["conflicts"]:
        text += f"; ADDRESS CONFLICTS: {row['conflicts']}"
    return text


def format_timeline(result, *, width_events: int = MAX_EVENTS, observations: bool = True) -> str:
    """The readable timeline of a replay.

    Parameters
    ----------
    result : MigrationResult
    width_events : int
        Events shown per step before ``... N more`` (0: none, and no count).
    observations : bool
        Show what read-only commands (``kubectl get ...``) print.

    Returns
    -------
    str
        One block per step (time, index, command, note, events, the output of read-only
        commands, the node table when it changed, a pods line when it changed) and the
        overall figures.
    """
    s = result.summary
    nodes0 = len({r["node"] for r in result.node_rows})
    out = [f"ipam-bench migrate: {result.scenario} ({s['start_mode']} -> {s['end_mode']}), {nodes0} node(s), "
           f"seed {result.seed}", ""]
    before = [text for _, i, text in result.events if i == -1][: width_events]
    if before:
        out.append(f"{'0s':>8}  installed")
        out.extend(INDENT + t for t in before)
    rows_by_step: dict[int, list[dict]] = {}
    for r in result.node_rows:
        rows_by_step.setdefault(r["step"], []).append(r)
    last_nodes: tuple = ()
    last_pods = ""
    for row in result.step_rows:
        i = row["step"]
        out.append(f"{fmt_time(row['at_s']):>8}  #{i:<3} {row['command']}")
        if row["note"]:
            out.append(INDENT + "# " + row["note"])
        events = row["events"]
        out.extend(INDENT + e for e in events[:width_events])
        if width_events and len(events) > width_events:
            out.append(INDENT + f"... and {len(events) - width_events} more event(s)")
        if observations and i in result.observations:
            out.extend(INDENT + "| " + line for line in result.observations[i])
        nodes = rows_by_step.get(i, [])
        key = _node_key(nodes)
        if key != last_nodes:
            out.append(INDENT + f"at {fmt_time(row['snapshot_s'])}:")
            out.extend(INDENT + "  " + line for line in _node_table(nodes))
            last_nodes = key
        pods = _pods_line(row)
        if pods != last_pods:
            out.append(INDENT + pods)
            last_pods = pods
    out += ["", "overall", *summary_lines(result)]
    return "\n".join(out) + "\n"


def summary_lines(result) -> list[str]:
    """The overall figures of a replay, one per line."""
    s = result.summary
    conflicts = ("none: no two pods ever held one address" if not result.conflicts else
                 f"{len(result.conflicts)}: " + "; ".join(f"{c.address} at {fmt_time(c.time_s)} "
                                                          f"({', '.join(c.pods)})" for c in result.conflicts[:3]))
    lines = [
        f"  disrupted pod-seconds   {s['disrupted_pod_seconds']:,.0f} (peak {s['peak_disrupted_pods']} pod(s) at once; "
        f"some pod disrupted for {fmt_time(s['disruption_seconds'])})",
        f"  unavailable pod-seconds {s['unavailable_pod_seconds']:,.0f} (Deployments below their replicas, pods "
        "starting)",
        f"  pods started            {s['pod_starts']} since the migration began at {fmt_time(s['migration_start_s'])}",
        f"  addresses needed        {s['addresses_needed']:,} at the peak (routed CIDRs and old CIDRs still holding "
        "pods)",
        f"  address conflicts       {conflicts}",
        f"  at the end              {s['pods_at_end']} pods running, {s['stale_at_end']} stale, "
        f"{s['disrupted_at_end']} disrupted; {s['nodes_in_error_at_end']} node(s) with an operator error, "
        f"{s['nodes_waiting_at_end']} waiting for a CIDR",
    ]
    return lines


__all__ = ["fmt_time", "format_timeline", "summary_lines"]
