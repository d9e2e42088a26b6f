"""``kubectl get events -A -o json`` into pod lifetimes: when each pod was scheduled and killed.

The kubelet and the scheduler record two events per pod lifetime that a user can read without
special access: ``Scheduled`` (``Successfully assigned NS/POD to NODE``, kube-scheduler
``pkg/scheduler/schedule_one.go``) and ``Killing`` (``Stopping container ...``, reported by the
kubelet of the node, ``pkg/kubelet/kuberuntime/kuberuntime_container.go``). Times are
``eventTime``, else ``firstTimestamp``, else ``lastTimestamp``. Both ``v1`` Events (what
``kubectl get events`` prints) and ``events.k8s.io/v1`` Events (``regarding``, ``note``,
``deprecatedSource``) are read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ipam_core.errors import ConfigError

_ASSIGNED = re.compile(r"^Successfully assigned (?P<ns>[^/\s]+)/(?P<pod>\S+) to (?P<node>\S+)")


@dataclass(frozen=True)
class Lifetime:
    """A pod event: ``start`` (scheduled on ``node``) or ``stop`` (killed), at ``time`` (a datetime)."""

    namespace: str
    pod: str
    op: str
    node: str | None
    time: object


def pod_lifetimes(dump) -> list[Lifetime]:
    """The Scheduled and Killing events of pods, in time order.

    Parameters
    ----------
    dump : ipam_core.importer.dumps.Dump
        Its ``events`` (``CoreV1Event`` or ``EventsV1Event`` objects).

    Returns
    -------
    list of Lifetime

    Raises
    ------
    ConfigError
        An event without any timestamp, or a Scheduled event whose message does not name
        the node.
    """
    out = []
    for ev in dump.events:
        if hasattr(ev, "regarding"):  # events.k8s.io/v1: regarding, note, deprecated* timestamps and source
            obj, message = ev.regarding, ev.note
            when = ev.event_time or ev.deprecated_first_timestamp or ev.deprecated_last_timestamp
            source = ev.deprecated_source
        else:
            obj, message = ev.involved_object, ev.message
            when = ev.event_time or ev.first_timestamp or ev.last_timestamp
            source = ev.source
        if obj is None or obj.kind != "Pod" or ev.reason not in ("Scheduled", "Killing"):
            continue
        origin = dump.origin(ev)
        if when is None:
            raise ConfigError(f"{origin}: eventTime: missing (and no firstTimestamp or lastTimestamp); expected the "
                              "time of the event")
        if ev.reason == "Scheduled":
            m = _ASSIGNED.match(message or "")
            if m is None:
                raise ConfigError(f"{origin}: message: {message!r}; expected 'Successfully assigned NS/POD to NODE'")
            out.append(Lifetime(obj.namespace or "default", obj.name, "start", m["node"], when))
        else:
            host = source.host if source is not None else None
            out.append(Lifetime(obj.namespace or "default", obj.name, "stop", host, when))
    out.sort(key=lambda x: (x.time, x.op == "start"))
    return out
