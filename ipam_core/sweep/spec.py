"""Sweep specs: a base scenario, the axes to vary, how to sample them, and replicates.

A spec is YAML (schema: docs/sweep.md)::

    name: mask-vs-churn
    base: default                      # built-in scenario name, or a path relative to this file
    modes: [cluster-pool, multi-pool]  # default: the base scenario's modes
    axes:
      ipam.operator.clusterPoolIPv4MaskSize: [24, 25, 26]
      workload.churnPerSecond: {min: 0.5, max: 4}
    sampling: latin-hypercube          # grid (default) | random | latin-hypercube
    samples: 20                        # random and latin-hypercube only
    replicates: 3
    seed: 0

An axis is a dotted path into the scenario file, in the scenario's own vocabulary:
``cluster.nodes``, ``workload.churnPerSecond``, ``cloud.awsVpcCni.WARM_IP_TARGET``,
``manifests[0].spec.ipv4.maskSize``. A path starting with a Cilium Helm key
(``ipam``, ``ipv4``, ``eni`` ...) is read as under ``cilium:``, as ``helm --set`` writes it.
Every point is set into the base's raw mapping and validated by the scenario loader
before anything runs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ipam_core.errors import ConfigError
from ipam_core.scenario import Scenario, load_scenario, parse_scenario
from ipam_core.scenario.defaults import ALL_MODES, CILIUM_KEYS, TOP_KEYS

__all__ = ["Axis", "Point", "SweepSpec", "SAMPLINGS", "SEED_BY", "build_point", "load_spec", "parse_spec",
           "plan_points", "resolve_path"]

SAMPLINGS = ("grid", "random", "latin-hypercube")
SEED_BY = ("replicate", "point")
SPEC_KEYS = ("name", "description", "base", "modes", "axes", "sampling", "samples", "replicates", "seed", "seedBy",
             "size")
MODE_PATH = ("cilium", "ipam", "mode")
_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True)
class Axis:
    """One swept parameter.

    Attributes
    ----------
    name : str
        The dotted path as the spec writes it; also the results column name.
    path : tuple
        Keys and list indices into the scenario mapping (``cilium.`` prefix added).
    values : tuple or None
        The listed values (grid, or picked from by random / latin-hypercube).
    low, high : float or None
        A range ``{min, max}`` (random and latin-hypercube only).
    integer : bool
        Both range ends are integers: sampled values are rounded to integers.
    """

    name: str
    path: tuple
    values: tuple | None = None
    low: float | None = None
    high: float | None = None
    integer: bool = False

    @property
    def is_mode(self) -> bool:
        """Whether this axis chooses the IPAM mode (``ipam.mode``)."""
        return self.path == MODE_PATH


@dataclass(frozen=True)
class Point:
    """One validated point of a sweep: its parameters, scenario and modes."""

    index: int
    params: dict
    scenario: Scenario
    modes: tuple[str, ...]


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep spec (see the module docstring).

    Attributes
    ----------
    name : str
    base : Scenario
        The base scenario, validated.
    base_mapping : dict
        Its raw YAML mapping, into which points are set.
    axes : tuple of Axis
    modes : tuple of str or None
        Modes from the spec; ``None`` means the base's (or the ``ipam.mode`` axis).
    sampling : str
    samples : int or None
    replicates : int
    seed : int
    seed_by : {"replicate", "point"}
    text : str
        The spec's YAML text (hashed into the results' metadata and point keys).
    source : str
        Where the spec came from, for messages.
    size : dict or None
        The raw ``size:`` section (read by :mod:`ipam_core.sweep.size`).
    """

    name: str
    base: Scenario
    base_mapping: dict
    axes: tuple[Axis, ...]
    modes: tuple[str, ...] | None
    sampling: str
    samples: int | None
    replicates: int
    seed: int
    seed_by: str
    text: str
    source: str
    size: dict | None = field(default=None, compare=False)

    @property
    def sha256(self) -> str:
        """SHA-256 of the spec text."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def resolve_path(name: str) -> tuple:
    """Turn an axis name into a key path of the scenario mapping.

    Parameters
    ----------
    name : str
        ``a.b[0].c`` (``a.b.0.c`` also works for list indices).

    Returns
    -------
    tuple
        Keys (str) and list indices (int); a first key that is a Cilium Helm key
        (``ipam``, ``ipv4``, ``ipv6``, ``endpointHealthChecking``, ``eni``, ``azure``)
        gets ``cilium`` in front.

    Raises
    ------
    ConfigError
        Empty or malformed path, or a first key that is neither a scenario key nor a Helm key.
    """
    text = str(name).strip()
    parts: list = []
    pos = 0
    while pos < len(text):
        if text[pos] == ".":
            pos += 1
        m = _SEGMENT.match(text, pos)
        if not m:
            raise ConfigError(f"sweep axis {name!r}: malformed path; expected dotted keys such as "
                              "ipam.operator.clusterPoolIPv4MaskSize or manifests[0].spec.ipv4.maskSize")
        key, index = m.groups()
        parts.append(int(index) if index is not None else (int(key) if key.isdigit() else key))
        pos = m.end()
    if not parts or not isinstance(parts[0], str):
        raise ConfigError(f"sweep axis {name!r}: empty path; expected dotted keys into the scenario")
    if parts[0] in CILIUM_KEYS and parts[0] not in TOP_KEYS:
        parts.insert(0, "cilium")
    elif parts[0] not in TOP_KEYS:
        raise ConfigError(f"sweep axis {name!r}: {parts[0]!r} is not a scenario key; expected a path starting "
                          f"with one of: {', '.join((*TOP_KEYS, *CILIUM_KEYS))}")
    return tuple(parts)


def set_path(mapping: dict, path: tuple, value, name: str) -> None:
    """Set ``value`` at ``path`` inside ``mapping`` in place, creating missing mappings."""
    node = mapping
    for i, key in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(key, int):
            if not isinstance(node, list) or key >= len(node):
                raise ConfigError(f"sweep axis {name}: the base scenario has no item [{key}] there; expected an "
                                  "index of an existing list item")
            if node[key] is None:
                node[key] = [] if isinstance(nxt, int) else {}
            node = node[key]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"sweep axis {name}: {key!r} is inside a value that is not a mapping in the base "
                              "scenario; expected a path of mappings")
        if node.get(key) is None:
            node[key] = [] if isinstance(nxt, int) else {}
        node = node[key]
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise ConfigError(f"sweep axis {name}: the base scenario has no item [{last}] there; expected an index "
                              "of an existing list item")
    elif not isinstance(node, dict):
        raise ConfigError(f"sweep axis {name}: the base scenario's value there is not a mapping; expected a path "
                          "of mappings")
    node[last] = copy.deepcopy(value)


def _fail(source: str, key: str, message: str) -> ConfigError:
    return ConfigError(f"{source}: {key}: {message}")


def _as_int(source: str, key: str, value, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise _fail(source, key, f"{value!r} is not an integer ≥ {lo}; expected an integer ≥ {lo}")
    return value


def _axis(source: str, name, value) -> Axis:
    if not isinstance(name, str):
        raise _fail(source, "axes", f"key {name!r} is not a string; expected a dotted path")
    path = resolve_path(name)
    key = f"axes.{name}"
    if isinstance(value, list):
        if not value:
            raise _fail(source, key, "[] is empty; expected a list of values or {min, max}")
        return Axis(name, path, values=tuple(value))
    if isinstance(value, dict):
        if set(value) != {"min", "max"}:
            raise _fail(source, key, f"{value!r} has keys {sorted(value)}; expected a list of values or {{min, max}}")
        lo, hi = value["min"], value["max"]
        for end in (lo, hi):
            if isinstance(end, bool) or not isinstance(end, (int, float)):
                raise _fail(source, key, f"{end!r} is not a number; expected numeric min and max")
        if not lo <= hi:
            raise _fail(source, key, f"min {lo!r} is above max {hi!r}; expected min ≤ max")
        if path == MODE_PATH:
            raise _fail(source, key, "a range of modes; expected a list of modes")
        return Axis(name, path, low=float(lo), high=float(hi), integer=isinstance(lo, int) and isinstance(hi, int))
    raise _fail(source, key, f"{value!r} is not a list or a range; expected a list of values or {{min, max}}")


def parse_spec(doc, text: str, source: str, folder: Path | None) -> SweepSpec:
    """Validate a parsed spec mapping (see :func:`load_spec`).

    Parameters
    ----------
    doc : object
        What ``yaml.safe_load`` returned.
    text : str
        The spec's text.
    source : str
        Name for messages.
    folder : pathlib.Path or None
        Folder a relative ``base`` path is resolved against.

    Returns
    -------
    SweepSpec

    Raises
    ------
    ConfigError
        One line naming the key, the value and what was expected.
    """
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: the sweep spec is {type(doc).__name__}; expected a mapping with base and axes")
    for key in doc:
        if key not in SPEC_KEYS:
            raise _fail(source, str(key), f"unknown key; expected one of: {', '.join(SPEC_KEYS)}")
    base_ref = doc.get("base", "default")
    if isinstance(base_ref, dict):
        base_text = yaml.safe_dump(base_ref, sort_keys=False)
        base = parse_scenario(base_ref, base_text, folder / "base.yaml" if folder else None)
    elif isinstance(base_ref, str) and base_ref.strip():
        candidate = folder / base_ref if folder is not None and not Path(base_ref).is_absolute() else Path(base_ref)
        base = load_scenario(candidate if candidate.is_file() else base_ref)
    else:
        raise _fail(source, "base", f"{base_ref!r}; expected a scenario file, a built-in name or a mapping")
    mapping = yaml.safe_load(base.source_text)
    axes_doc = doc.get("axes")
    if not isinstance(axes_doc, dict) or not axes_doc:
        raise _fail(source, "axes", f"{axes_doc!r}; expected a mapping of dotted paths to lists of values")
    axes = tuple(_axis(source, name, value) for name, value in axes_doc.items())
    paths = [a.path for a in axes]
    for i, a in enumerate(axes):
        if a.path in paths[:i]:
            raise _fail(source, f"axes.{a.name}", "names a parameter another axis already sets; expected each once")
    modes = doc.get("modes")
    if modes is not None:
        if not isinstance(modes, list) or not modes or any(m not in ALL_MODES for m in modes):
            raise _fail(source, "modes", f"{modes!r}; expected a list of modes from: {', '.join(ALL_MODES)}")
        if any(a.is_mode for a in axes):
            raise _fail(source, "modes", "set together with an ipam.mode axis; expected one of the two")
        modes = tuple(modes)
    sampling = doc.get("sampling", "grid")
    if sampling not in SAMPLINGS:
        raise _fail(source, "sampling", f"{sampling!r}; expected one of: {', '.join(SAMPLINGS)}")
    samples = doc.get("samples")
    if sampling == "grid":
        if samples is not None:
            raise _fail(source, "samples", "set with sampling: grid; expected samples only with random or "
                                           "latin-hypercube")
        for a in axes:
            if a.values is None:
                raise _fail(source, f"axes.{a.name}", "a {min, max} range with sampling: grid; expected a list of "
                                                      "values (ranges need random or latin-hypercube)")
    else:
        samples = _as_int(source, "samples", samples, 1)
    seed_by = doc.get("seedBy", "replicate")
    if seed_by not in SEED_BY:
        raise _fail(source, "seedBy", f"{seed_by!r}; expected one of: {', '.join(SEED_BY)}")
    size = doc.get("size")
    if size is not None and not isinstance(size, dict):
        raise _fail(source, "size", f"{size!r}; expected a mapping with target and search")
    return SweepSpec(
        name=str(doc.get("name") or (Path(source).stem if source else "sweep")),
        base=base, base_mapping=mapping, axes=axes, modes=modes, sampling=sampling, samples=samples,
        replicates=_as_int(source, "replicates", doc.get("replicates", 1), 1),
        seed=_as_int(source, "seed", doc.get("seed", 0), 0), seed_by=seed_by, text=text, source=source, size=size,
    )


def load_spec(path_or_text: str | Path) -> SweepSpec:
    """Load and validate a sweep spec file (or YAML text containing a newline).

    Parameters
    ----------
    path_or_text : str or pathlib.Path

    Returns
    -------
    SweepSpec

    Raises
    ------
    ConfigError
        Missing file, YAML syntax, or any invalid key (one line).
    """
    text = str(path_or_text)
    if "\n" in text and not isinstance(path_or_text, Path):
        source, folder = "<sweep>", Path.cwd()
    else:
        path = Path(text).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read sweep spec {str(path)!r}: {exc.__class__.__name__}; expected a "
                              "readable YAML file") from None
        source, folder = str(path), path.resolve().parent
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {' '.join(str(exc).split())}") from None
    return parse_spec(doc, text, source, folder)


def _show(value) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def build_point(spec: SweepSpec, params: dict, index: int = 0) -> Point:
    """Set ``params`` (axis name -> value) into the base scenario and validate it.

    Parameters
    ----------
    spec : SweepSpec
    params : dict
        A value for some or all of the spec's axes.
    index : int
        The point's index in the sweep.

    Returns
    -------
    Point

    Raises
    ------
    ConfigError
        ``sweep axis NAME value V: <scenario error>`` (or ``sweep point A=1, B=2: ...`` when
        several axes are set).
    """
    axes = {a.name: a for a in spec.axes}
    mapping = copy.deepcopy(spec.base_mapping)
    label = ", ".join(f"{k}={_show(v)}" for k, v in params.items())
    where = (f"sweep axis {next(iter(params))} value {_show(next(iter(params.values())))}" if len(params) == 1
             else f"sweep point {label}")
    try:
        for name, value in params.items():
            set_path(mapping, axes[name].path, value, name)
        # a point whose pools or masks cannot hold the base's initial state runs it as a what-if
        scenario = parse_scenario(mapping, "", spec.base.source_path, initial_misfit_ok=True)
    except ConfigError as exc:
        message = str(exc)
        if message.startswith("sweep axis "):
            message = message.split(": ", 1)[1]
        raise ConfigError(f"{where}: {' '.join(message.split())}") from None
    mode_axis = next((a for a in spec.axes if a.is_mode and a.name in params), None)
    if mode_axis is not None:
        modes = (scenario.ipam.mode,)
    else:
        modes = spec.modes or scenario.modes
    return Point(index, dict(params), scenario, tuple(modes))


def plan_points(spec: SweepSpec, params_list: list[dict]) -> list[Point]:
    """Validate every point before anything runs.

    Each axis value is first checked alone on the base scenario, so a bad value is
    named by its own axis; then every combination is built.

    Parameters
    ----------
    spec : SweepSpec
    params_list : list of dict
        The sampled points (see :mod:`ipam_core.sweep.sampling`).

    Returns
    -------
    list of Point

    Raises
    ------
    ConfigError
        The first bad axis value or point, one line.
    """
    seen: set = set()
    for params in params_list:
        for name, value in params.items():
            key = (name, json.dumps(value, sort_keys=True))
            if key not in seen:
                seen.add(key)
                build_point(spec, {name: value})
    return [build_point(spec, params, i) for i, params in enumerate(params_list)]
