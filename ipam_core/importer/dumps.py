"""Read ``kubectl get ... -o json`` (or ``-o yaml``) files into typed objects.

A file holds one object, a ``List`` (what ``kubectl get a,b,c -A -o json`` prints, kinds
mixed), a JSON array, or several YAML documents. Node, Pod, Namespace and Event go through
the official client's models (:mod:`._schema`); CiliumNode and CiliumPodIPPool through
:mod:`.crds`. Objects of other kinds (Services, ConfigMaps, ...) are counted and skipped.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ipam_core.errors import ConfigError
from ipam_core.importer import crds
from ipam_core.importer._schema import Origin, kube_models, validate

#: kind -> (client model name or CRD class). ``*List`` kinds are flattened.
KINDS = ("Node", "Pod", "Namespace", "Event", "CiliumNode", "CiliumPodIPPool")


@dataclass
class Dump:
    """Every object read from the dump files, typed, with where each came from."""

    nodes: list = field(default_factory=list)
    pods: list = field(default_factory=list)
    namespaces: list = field(default_factory=list)
    events: list = field(default_factory=list)
    cilium_nodes: list = field(default_factory=list)
    pools: list = field(default_factory=list)
    origins: dict = field(default_factory=dict)  # id(object) -> Origin
    skipped: Counter = field(default_factory=Counter)  # kind -> count
    files: list = field(default_factory=list)

    def origin(self, obj) -> Origin:
        """Where ``obj`` was read."""
        return self.origins[id(obj)]


def read_dumps(paths, *, kinds: tuple[str, ...] = KINDS) -> Dump:
    """Read dump files into one :class:`Dump`.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        ``kubectl get ... -o json`` (or ``-o yaml``) files.
    kinds : tuple of str
        Kinds to keep; others are counted in ``Dump.skipped``.

    Returns
    -------
    Dump

    Raises
    ------
    ConfigError
        One line naming the file (and the object and field): unreadable file, invalid JSON or
        YAML (with line and column), an item that is not an object or has no ``kind``, an
        object that does not match its schema, the same object twice.
    """
    client = kube_models()
    models = {"Node": client.V1Node, "Pod": client.V1Pod, "Namespace": client.V1Namespace,
              "Event": client.CoreV1Event, "CiliumNode": crds.CiliumNode, "CiliumPodIPPool": crds.CiliumPodIPPool}
    lists = {"Node": "nodes", "Pod": "pods", "Namespace": "namespaces", "Event": "events",
             "CiliumNode": "cilium_nodes", "CiliumPodIPPool": "pools"}
    dump = Dump()
    seen: dict[tuple, Origin] = {}
    for path in paths:
        text = os.fspath(path)
        dump.files.append(text)
        for index, raw in enumerate(_items(Path(text))):
            kind = raw.get("kind")
            meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
            name = meta.get("name")
            shown = f"{meta['namespace']}/{name}" if meta.get("namespace") and name else str(name)
            origin = Origin(text, index, str(kind), shown)
            if not isinstance(kind, str) or not kind:
                raise ConfigError(f"{text}: item {index}: kind {kind!r}; expected a Kubernetes object with a kind "
                                  f"(kubectl get ... -o json)")
            if kind not in kinds:
                dump.skipped[kind] += 1
                continue
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{text}: {kind} item {index}: metadata.name {name!r}; expected the object's name")
            model = models[kind]
            if kind == "Event" and str(raw.get("apiVersion", "")).startswith("events.k8s.io/"):
                model = client.EventsV1Event  # kubectl get events.v1.events.k8s.io
                # the server writes eventTime: null for events recorded through core/v1, which the
                # client's schema calls required: take the deprecated timestamp the server kept instead
                raw = {**raw, "eventTime": raw.get("eventTime") or raw.get("deprecatedFirstTimestamp")
                       or raw.get("deprecatedLastTimestamp")}
            obj = validate(model, raw, origin)
            key = (kind, meta.get("namespace"), name)
            if key in seen:
                raise ConfigError(f"{origin}: listed twice (also in {seen[key].path} item {seen[key].index}); "
                                  "expected each object once")
            seen[key] = origin
            getattr(dump, lists[kind]).append(obj)
            dump.origins[id(obj)] = origin
    return dump


def _items(path: Path) -> list[dict]:
    """The objects of one file, flattened out of ``List`` / ``*List`` wrappers."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such dump file; expected the output of kubectl get ... -o json") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({type(exc).__name__}: {' '.join(str(exc).split())}); expected "
                          "a kubectl -o json file") from None
    stripped = text.lstrip()
    if not stripped:
        raise ConfigError(f"{path}: empty file; expected the output of kubectl get ... -o json")
    if stripped[0] in "{[":
        try:
            docs = [json.loads(text)]
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}; expected the output of "
                              "kubectl get ... -o json") from None
    else:
        try:
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise ConfigError(f"{path}{at}: invalid YAML: {problem}; expected the output of kubectl get ... -o json "
                              "or -o yaml") from None
    out: list[dict] = []
    for doc in docs:
        out.extend(_flatten(path, doc))
    return out


def _flatten(path: Path, doc) -> list[dict]:
    if isinstance(doc, list):
        items = doc
    elif isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List") and "items" in doc:
        items = doc["items"]
        if not isinstance(items, list):
            raise ConfigError(f"{path}: items {type(items).__name__}; expected a list of objects")
        kind = str(doc["kind"])[: -len("List")]
        if kind:  # the API's PodList leaves kind off its items; kubectl's List does not
            items = [{"kind": kind, "apiVersion": doc.get("apiVersion"), **item} if isinstance(item, dict)
                     and "kind" not in item else item for item in items]
    elif isinstance(doc, dict):
        items = [doc]
    else:
        raise ConfigError(f"{path}: top level is {type(doc).__name__} {doc!r:.40}; expected a Kubernetes object or "
                          "List")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"{path}: item {i}: {type(item).__name__} {item!r:.40}; expected a Kubernetes object")
    return items
