"""Where a value sits in a scenario file (dotted key, file, line), for one-line errors.

Every validation error of a scenario names the dotted key of the offending value
(``cilium.ipam.operator.clusterPoolIPv4MaskSize``, ``manifests[2].spec.ipv4.cidrs[0]``),
prefixed with ``file:line:`` when the scenario came from YAML text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NoReturn

import yaml

from ipam_core.errors import ConfigError

KeyPath = tuple[str | int, ...]

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def dotted(path: KeyPath) -> str:
    """Format a key path the way error messages show it.

    Parameters
    ----------
    path : tuple of str or int
        Mapping keys and list indices from the document root.

    Returns
    -------
    str
        ``a.b[0].c``; keys that contain dots or slashes (annotations) are quoted:
        ``metadata.annotations["ipam.cilium.io/ip-pool"]``.
    """
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _PLAIN_KEY.match(part):
            out.append(("." if out else "") + part)
        else:
            out.append(f'["{part}"]')
    return "".join(out)


@dataclass(frozen=True)
class Source:
    """The text a scenario came from: a display name and the line of every key."""

    name: str | None = None
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line(self, path: KeyPath) -> int | None:
        """Line of ``path``, or of its nearest ancestor that has one."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]


class Where:
    """A position in the scenario document: raises errors that name it.

    Parameters
    ----------
    path : tuple of str or int
        Key path from the root.
    source : Source or None
        Where the document came from (adds ``file:line:`` to messages).
    """

    __slots__ = ("path", "source")

    def __init__(self, path: KeyPath = (), source: Source | None = None) -> None:
        self.path = path
        self.source = source

    def __truediv__(self, part: str | int) -> Where:
        return Where(self.path + (part,), self.source)

    def __str__(self) -> str:
        return dotted(self.path)

    def error(self, message: str) -> ConfigError:
        """Build (not raise) the ConfigError for ``message`` at this position."""
        prefix = ""
        if self.source is not None and self.source.name:
            line = self.source.line(self.path)
            prefix = f"{self.source.name}:{line}: " if line else f"{self.source.name}: "
        key = dotted(self.path)
        return ConfigError(f"{prefix}{key}: {message}" if key else f"{prefix}{message}")

    def fail(self, message: str) -> NoReturn:
        """Raise a one-line :class:`ConfigError` naming this position."""
        raise self.error(message)


def _first_line(text: str) -> str:
    return " ".join(str(text).split())


def load_yaml(text: str, name: str) -> tuple[object, Source]:
    """Parse one YAML document with PyYAML's safe loader and index the line of every key.

    Parameters
    ----------
    text : str
        The YAML text.
    name : str
        Name shown in messages (the file path, or ``<scenario>``).

    Returns
    -------
    (object, Source)
        The document (``None`` for an empty one) and its line index.

    Raises
    ------
    ConfigError
        ``name:line: invalid YAML: ...`` for syntax errors, several documents in
        one file, or a key repeated in one mapping (YAML would silently keep the last).
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, Source(name, {})
        lines: dict[KeyPath, int] = {}
        _index(node, (), lines, name)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        problem = exc.problem or exc.context or "syntax error"
        if exc.context and exc.problem:
            problem = f"{exc.context}: {exc.problem}"
        raise ConfigError(f"{where}: invalid YAML: {_first_line(problem)}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: invalid YAML: {_first_line(exc)}") from None
    finally:
        loader.dispose()
    return data, Source(name, lines)


def _index(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], name: str) -> None:
    """Record the 1-based line of every mapping key and list item under ``node``."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue  # complex keys and merge keys: no line of their own
            key = key_node.value
            if key in seen:
                raise ConfigError(
                    f"{name}:{key_node.start_mark.line + 1}: {dotted(path + (key,))}: duplicate key; "
                    "expected each key once per mapping (YAML would keep only the last value)"
                )
            seen.add(key)
            lines[path + (key,)] = key_node.start_mark.line + 1
            _index(value_node, path + (key,), lines, name)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + 1
            _index(item, path + (i,), lines, name)
