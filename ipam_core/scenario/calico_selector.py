"""Calico's label selector expressions (``nodeSelector``, ``namespaceSelector`` of an IPPool).

The subset of projectcalico/calico ``libcalico-go/lib/selector/parser`` that IP pools use:
``all()``, ``has(k)``, ``k == 'v'``, ``k != 'v'``, ``k in {'a', 'b'}``, ``k not in {...}``,
``!``, ``&&``, ``||`` and parentheses. An empty selector selects everything (upstream treats
``""`` as ``all()`` for pools). Anything else is refused with the position of the problem.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ipam_core.errors import ConfigError

_TOKEN = re.compile(r"""\s*(?:(?P<op>&&|\|\||==|!=|!|\(|\)|\{|\}|,)"""
                    r"""|(?P<str>'[^']*'|"[^"]*")|(?P<word>[A-Za-z0-9_./-]+))""")

Predicate = Callable[[Mapping[str, str]], bool]


@dataclass(frozen=True)
class CalicoSelector:
    """A parsed selector: ``matches(labels)`` evaluates it.

    Attributes
    ----------
    text : str
        The selector as written.
    """

    text: str
    _predicate: Predicate = field(compare=False, repr=False, default=lambda labels: True)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an object with ``labels`` is selected.

        Parameters
        ----------
        labels : mapping of str to str

        Returns
        -------
        bool
        """
        return self._predicate(labels)

    def __reduce__(self):
        # the predicate is a tree of closures: a pickled selector (a sweep sends scenarios to its
        # workers) is parsed again from its text
        return parse_selector, (self.text,)


def parse_selector(text: str) -> CalicoSelector:
    """Parse a Calico selector expression.

    Parameters
    ----------
    text : str

    Returns
    -------
    CalicoSelector

    Raises
    ------
    ConfigError
        One line naming what was found, where, and what was expected.
    """
    tokens = _tokenize(text)
    if not tokens:
        return CalicoSelector(text)
    parser = _Parser(text, tokens)
    predicate = parser.expression()
    if parser.pos < len(tokens):
        parser.fail("the end of the selector")
    return CalicoSelector(text, predicate)


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            at = len(text) - len(text[pos:].lstrip())
            raise ConfigError(f"selector {text!r}: unexpected {text[at]!r} at character {at + 1}; "
                              "expected a Calico selector such as all(), has(k), k == 'v', k in {'a'}")
        kind = m.lastgroup
        out.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str, tokens: list[tuple[str, str, int]]):
        self.text, self.tokens, self.pos = text, tokens, 0

    def fail(self, expected: str):
        if self.pos < len(self.tokens):
            found, at = repr(self.tokens[self.pos][1]), f" at character {self.tokens[self.pos][2] + 1}"
        else:
            found, at = "the end", ""
        raise ConfigError(f"selector {self.text!r}: found {found}{at}; expected {expected}")

    def peek(self, value: str | None = None, kind: str | None = None) -> bool:
        if self.pos >= len(self.tokens):
            return False
        k, v, _ = self.tokens[self.pos]
        return (value is None or v == value) and (kind is None or k == kind)

    def take(self, value: str | None = None, kind: str | None = None, expected: str = "") -> str:
        if not self.peek(value, kind):
            self.fail(expected or repr(value))
        self.pos += 1
        return self.tokens[self.pos - 1][1]

    def expression(self) -> Predicate:
        terms = [self.conjunction()]
        while self.peek("||", "op"):
            self.pos += 1
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else (lambda labels: any(t(labels) for t in terms))

    def conjunction(self) -> Predicate:
        factors = [self.factor()]
        while self.peek("&&", "op"):
            self.pos += 1
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else (lambda labels: all(f(labels) for f in factors))

    def factor(self) -> Predicate:
        if self.peek("!", "op"):
            self.pos += 1
            inner = self.factor()
            return lambda labels: not inner(labels)
        if self.peek("(", "op"):
            self.pos += 1
            inner = self.expression()
            self.take(")", "op")
            return inner
        word = self.take(kind="word", expected="all(), has(key), or a label key")
        if word in ("all", "has") and self.peek("(", "op"):
            self.pos += 1
            if word == "all":
                self.take(")", "op")
                return lambda labels: True
            key = self.take(kind="word", expected="a label key")
            self.take(")", "op")
            return lambda labels: key in labels
        if self.peek("==", "op") or self.peek("!=", "op"):
            op = self.take()
            value = self.string()
            if op == "==":
                return lambda labels: labels.get(word) == value
            return lambda labels: labels.get(word) != value
        negate = False
        if self.peek("not", "word"):
            self.pos += 1
            negate = True
        self.take("in", "word", expected="==, !=, in or not in")
        self.take("{", "op")
        values = {self.string()}
        while self.peek(",", "op"):
            self.pos += 1
            values.add(self.string())
        self.take("}", "op")
        if negate:
            return lambda labels: labels.get(word) not in values
        return lambda labels: word in labels and labels[word] in values

    def string(self) -> str:
        return self.take(kind="str", expected="a quoted value")[1:-1]
