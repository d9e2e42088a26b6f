"""Typed readers for scenario values: each checks one value and fails naming its key."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping

from ipam_core.addr import Network, parse_cidr
from ipam_core.errors import CIDRError, ConfigError
from ipam_core.scenario._where import Where


def kind_of(value: object) -> str:
    """Name a YAML value's type for messages ("a string", "a list", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def show(value: object, limit: int = 80) -> str:
    """Short one-line rendering of a value for messages."""
    text = repr(value) if not isinstance(value, Mapping) else repr(dict(value))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_keys(where: Where, mapping: Mapping, known: Iterable[str]) -> None:
    """Refuse keys of ``mapping`` that are not in ``known``, suggesting the closest.

    Raises
    ------
    ConfigError
        ``<key>: unknown key 'x' (did you mean 'y'?); expected one of ...``.
    """
    known = list(known)
    for key in mapping:
        if not isinstance(key, str):
            (where / str(key)).fail(f"key {show(key)} is {kind_of(key)}; expected a string key")
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            (where / key).fail(f"unknown key {key!r}{hint}; expected one of: {', '.join(known)}")


def as_mapping(where: Where, value: object, *, null_ok: bool = True) -> dict:
    """A mapping (``None`` reads as empty when ``null_ok``)."""
    if value is None and null_ok:
        return {}
    if not isinstance(value, Mapping):
        where.fail(f"{show(value)} is {kind_of(value)}; expected a mapping")
    return dict(value)


def as_list(where: Where, value: object, *, null_ok: bool = True) -> list:
    """A list (``None`` reads as empty when ``null_ok``)."""
    if value is None and null_ok:
        return []
    if not isinstance(value, (list, tuple)):
        where.fail(f"{show(value)} is {kind_of(value)}; expected a list")
    return list(value)


def as_str(where: Where, value: object, *, empty_ok: bool = False, what: str = "a string") -> str:
    """A string (YAML numbers and booleans are refused: quote them)."""
    if not isinstance(value, str):
        hint = " (quote it)" if isinstance(value, (bool, int, float)) else ""
        where.fail(f"{show(value)} is {kind_of(value)}; expected {what}{hint}")
    if not empty_ok and not value.strip():
        where.fail(f"{value!r} is empty; expected {what}")
    return value


def as_bool(where: Where, value: object) -> bool:
    """A YAML boolean (``true``/``false``)."""
    if not isinstance(value, bool):
        where.fail(f"{show(value)} is {kind_of(value)}; expected true or false")
    return value


def as_int(where: Where, value: object, *, lo: int | None = None, hi: int | None = None,
           what: str | None = None) -> int:
    """An integer within ``[lo, hi]``."""
    if lo is not None and hi is not None:
        expect = what or f"an integer from {lo} to {hi}"
    elif lo is not None:
        expect = what or f"an integer >= {lo}"
    else:
        expect = what or "an integer"
    if isinstance(value, bool) or not isinstance(value, int):
        where.fail(f"{show(value)} is {kind_of(value)}; expected {expect}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        where.fail(f"{value} is out of range; expected {expect}")
    return value


def node_group_weight(where: Where, entry: Mapping) -> float:
    """A group's share of the nodes: its ``nodes`` (a count) or ``share`` (a weight), 1 when neither is set.

    Parameters
    ----------
    where : Where
        Position of the group (``cloud.nodeGroups[i]``, ``cluster.nodeLabels[i]``).
    entry : mapping

    Returns
    -------
    float

    Raises
    ------
    ConfigError
        Both keys, or a count that is not a whole number > 0, or a share <= 0.
    """
    if "nodes" in entry and "share" in entry:
        (where / "share").fail("is set with nodes; expected one of nodes (a count) or share (a weight)")
    key = "share" if "share" in entry else "nodes"
    weight = entry.get(key, 1)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0 or \
            (key == "nodes" and not isinstance(weight, int)):
        what = "a whole number of nodes > 0" if key == "nodes" else "a weight > 0"
        (where / key).fail(f"{show(weight)} is {kind_of(weight)}; expected {what}")
    return float(weight)


# Go time.ParseDuration units (kubelet, Cilium and Helm write durations this way), in seconds.
_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_duration(value: object) -> float:
    """Parse a duration into seconds.

    Parameters
    ----------
    value : int, float or str
        A number of seconds (``90``, ``0.5``, ``"90"``) or a Go duration string
        (``"90s"``, ``"30m"``, ``"2h"``, ``"1h30m"``, ``"1.5h"``, ``"500ms"``).

    Returns
    -------
    float
        Seconds, >= 0.

    Raises
    ------
    ConfigError
        Not a number or duration string, negative, or not finite.

    Notes
    -----
    Follows Go ``time.ParseDuration`` (what ``ciliumNodeUpdateRate: 15s`` means to
    Cilium), plus bare numbers as seconds. Signs are refused: no duration here is negative.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{value!r} is a boolean; expected a duration such as 90, '90s', '30m' or '1h30m'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for match in _DURATION_PART.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNITS[match.group(2)]
                pos = match.end()
            if pos != len(text) or not text:
                raise ConfigError(
                    f"{value!r} is not a duration; expected seconds or a Go duration such as "
                    "'90s', '30m', '2h', '1h30m' or '500ms'"
                ) from None
    else:
        raise ConfigError(f"{value!r} is {kind_of(value)}; expected a duration such as 90, '90s' or '30m'")
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{value!r} is not a non-negative finite duration; expected e.g. '90s' or '30m'")
    return seconds


def as_duration(where: Where, value: object, *, zero_ok: bool = False) -> float:
    """A duration in seconds (see :func:`parse_duration`), > 0 unless ``zero_ok``."""
    try:
        seconds = parse_duration(value)
    except ConfigError as exc:
        where.fail(str(exc))
    if seconds == 0 and not zero_ok:
        where.fail(f"{show(value)} is zero; expected a positive duration")
    return seconds


def as_cidr(where: Where, value: object, family: int | None = None, *, what: str = "") -> Network:
    """A CIDR string with a prefix length, of ``family`` if given (``addr.parse_cidr``)."""
    text = as_str(where, value, what="a CIDR such as 10.0.0.0/8")
    if "/" not in text:
        where.fail(f"invalid CIDR {text!r}: no prefix length; expected a CIDR such as 10.0.0.0/8 or fd00::/104")
    try:
        return parse_cidr(text, family)
    except CIDRError as exc:
        suffix = f" ({what})" if what else ""
        where.fail(f"{exc}{suffix}")
