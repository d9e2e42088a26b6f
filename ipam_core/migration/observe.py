"""What a read-only step (``kubectl get ...``, ``cilium config view``) would print at that moment.

The columns follow kubectl's, trimmed to what IPAM is about, so a replayed runbook reads
like the session it came from. Only the simulated state is shown: ``| grep`` filters in
the command are ignored.
"""

from __future__ import annotations

import numpy as np

from ipam_core.migration.cluster import GONE, LIVE, STARTING, ip_text

#: What kubectl's STATUS column says for each pod state.
KUBECTL_STATUS = ("Terminated", "Pending", "ContainerCreating", "Running")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned columns separated by three spaces, as kubectl prints them.

    Parameters
    ----------
    header : list of str
    rows : list of list of str

    Returns
    -------
    list of str
        One line per row, the header first.
    """
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return ["   ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in [header, *rows]]


def render_observation(engine, action) -> list[str]:
    """The output of a read-only command against the engine's current state.

    Parameters
    ----------
    engine : MigrationEngine
    action : Observe

    Returns
    -------
    list of str
    """
    what = action.what
    if what == "ciliumnodes":
        rows = []
        for node in engine.nodes:
            if not node.exists or node.cn is None:
                continue
            cn = node.cn
            cidrs = list(cn.pod_cidrs) + [f"{pool}={c}" for pool, cs in cn.allocated.items() for c in cs]
            rows.append([node.name, ",".join(cidrs) or "<none>", cn.status_error or "-"])
        return table(["NAME", "PODCIDRS", "OPERATOR-STATUS ERROR"], rows)
    if what == "nodes":
        return table(["NAME", "PODCIDR"], [[n.name, n.kcm_cidr or "<none>"] for n in engine.nodes if n.exists])
    if what == "config":
        return [f"ipam{' ' * 46}{engine.cfg.mode}"]
    if what in ("ciliumendpoints", "pods"):
        p = engine.pods
        if what == "ciliumendpoints":
            ids = np.flatnonzero(((p.state == LIVE) | (p.state == STARTING)) & p.managed & (p.addr >= 0))
        else:
            ids = np.flatnonzero(p.state > GONE)
        dis = np.zeros(p.n, dtype=bool)
        stale = np.zeros(p.n, dtype=bool)
        live, live_dis, live_stale = engine._flags_of_live()
        dis[live] = live_dis
        stale[live] = live_stale
        rows = []
        for i in ids.tolist():
            grp = engine.groups[int(p.group[i])]
            name = grp.pod_name(int(p.gen[i]), int(p.tag[i]))
            if what == "ciliumendpoints":
                rows.append([grp.template.namespace, name, ip_text(int(p.addr[i]))])
            else:
                node = engine.nodes[int(p.node[i])].name if p.node[i] >= 0 else "<none>"
                marks = [m for m, on in (("disrupted", dis[i]), ("stale", stale[i] and not dis[i]),
                                         ("no-endpoint", p.state[i] == LIVE and not p.managed[i])) if on]
                rows.append([grp.template.namespace, name, KUBECTL_STATUS[int(p.state[i])],
                             ip_text(int(p.addr[i])) or "<none>", node, ",".join(marks)])
        rows.sort(key=lambda r: (r[0], r[1]))
        if what == "ciliumendpoints":
            return table(["NAMESPACE", "NAME", "IPV4"], rows)
        return table(["NAMESPACE", "NAME", "STATUS", "IP", "NODE", "IPAM"], rows)
    return ["(read-only; nothing simulated to show)"]


__all__ = ["render_observation", "table"]
