"""Read proxy formulas back: the exact inverse of ``str(proxy)``.

Grammar (whitespace between tokens is ignored)::

    formula := "layer_" REDUCTION "(" proxy ")" | proxy   (e.g. layer_sum; default: mean)
    proxy  := BINARY "(" branch "," branch ")"
    branch := INPUT | UNARY "(" branch ")"
    NAME   := [A-Za-z_][A-Za-z0-9_.]*        (dots allow plugin names: "myplugin.op")

``BINARY`` must be a registered binary operator, ``UNARY`` a registered unary
operator and ``INPUT`` a registered statistic input symbol. Any error raises
:class:`FormulaError` with one line naming the position (0-based character offset)
and the offending token.
"""
from __future__ import annotations

import re

from lpzero_fw.formula.genotype import Branch, Formula
from lpzero_fw.registry import BINARY_OPS, LAYER_REDUCTIONS, STATS, UNARY_OPS, LPZeroError, Registry

_TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_.]*)|(?P<punct>[(),])|(?P<bad>\S))")



class FormulaError(LPZeroError):
    """A malformed proxy formula or one naming unknown components."""


def format_proxy(proxy: Formula) -> str:
    """The canonical text of ``proxy`` (same as ``str(proxy)``)."""
    return str(proxy)


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens = []
    pos = 0
    while True:
        match = _TOKEN.match(text, pos)
        if match is None:  # only trailing whitespace left
            break
        kind = match.lastgroup
        tokens.append((kind, match.group(kind), match.start(kind)))
        pos = match.end()
    tokens.append(("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def fail(self, message: str, token: tuple[str, str, int] | None = None) -> FormulaError:
        kind, value, pos = token or self.tokens[self.i]
        shown = "end of text" if kind == "end" else repr(value)
        return FormulaError(f"bad proxy formula {self.text!r} at position {pos} ({shown}): {message}")

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.i]
        if token[0] == "bad":
            raise self.fail("unexpected character")
        self.i += 1
        return token

    def expect(self, punct: str, what: str) -> None:
        token = self.peek()
        if token[0] != "punct" or token[1] != punct:
            raise self.fail(f"expected {punct!r} {what}")
        self.take()

    def name(self, what: str) -> tuple[str, str, int]:
        token = self.peek()
        if token[0] != "name":
            if token[0] == "bad":
                raise self.fail("unexpected character")
            raise self.fail(f"expected {what}")
        return self.take()

    def check(self, registry: Registry, token: tuple[str, str, int]) -> str:
        if token[1] not in registry:
            if "." in token[1]:
                plugin = token[1].split(".")[0]
                raise self.fail(
                    f"{registry.kind} {token[1]!r} comes from plugin {plugin!r}, which is not installed "
                    f"(pip install the package that provides it)", token)
            raise self.fail(registry.unknown_message(token[1]), token)
        return token[1]

    def proxy(self) -> Formula:
        layers = "mean"
        token = self.peek()
        if token[0] == "name" and token[1].startswith("layer_") and token[1][6:] != "mean":
            layers = self.check(LAYER_REDUCTIONS, (token[0], token[1][6:], token[2]))
            self.take()
            self.expect("(", f"after layer_{layers}")
        binary = self.check(BINARY_OPS, self.name("a binary operator name"))
        self.expect("(", "after the binary operator")
        left = self.branch()
        self.expect(",", "between the two branches")
        right = self.branch()
        self.expect(")", "closing the binary operator")
        if layers != "mean":
            self.expect(")", f"closing layer_{layers}")
        if self.peek()[0] != "end":
            raise self.fail("unexpected text after the formula")
        return Formula(left, right, binary, layers)

    def branch(self) -> Branch:
        ops: list[str] = []
        while True:
            token = self.name("a unary operator or an input symbol")
            nxt = self.peek()
            if nxt[0] == "punct" and nxt[1] == "(":
                ops.append(self.check(UNARY_OPS, token))
                self.take()
                continue
            symbol = self.check(STATS, token)
            break
        for _ in ops:
            self.expect(")", "closing a unary operator")
        return Branch(symbol, tuple(reversed(ops)))


def parse(text: str) -> Formula:
    """Parse ``binary(unary...(X), unary...(Y))`` into a :class:`Formula`."""
    if not isinstance(text, str):
        raise FormulaError(f"a proxy formula must be a string, got {type(text).__name__}")
    return _Parser(text).proxy()
