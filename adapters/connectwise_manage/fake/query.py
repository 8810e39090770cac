"""ConnectWise's `conditions` language (vendor-notes/psa.md §1.3): tokenizer, parser and evaluator."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Row = dict[str, Any]
Predicate = Callable[[Row], bool]


class ConditionError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------
# `conditions` parser
# ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<date>\[[^\]]*\])
  | (?P<num>-?\d+(?:\.\d+)?(?![A-Za-z_]))
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<lp>\()
  | (?P<rp>\))
  | (?P<comma>,)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.VERBOSE,
)
_KEYWORDS = frozenset({"and", "or", "not", "contains", "like", "in", "true", "false", "null"})


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ConditionError(f"Unexpected character {text[pos]!r} at position {pos}")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_Tok(kind, match.group(), pos))
        pos = match.end()
    return tokens


def _unescape(quoted: str) -> str:
    return re.sub(r"\\(.)", r"\1", quoted[1:-1])


def _parse_datetime(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Cmp:
    path: tuple[str, ...]
    op: str
    value: Any
    negate: bool = False


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Not:
    item: Any


class ConditionParser:
    def __init__(self, text: str, fields: frozenset[str]) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.fields = {name.casefold(): name for name in fields}

    def peek(self, offset: int = 0) -> _Tok | None:
        index = self.i + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def word(self, offset: int = 0) -> str | None:
        tok = self.peek(offset)
        return tok.text.lower() if tok is not None and tok.kind == "word" else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise ConditionError("Unexpected end of conditions")
        self.i += 1
        return tok

    def parse(self) -> Any:
        if not self.tokens:
            raise ConditionError("Empty conditions")
        node = self.parse_or()
        if self.peek() is not None:
            tok = self.peek()
            assert tok is not None
            raise ConditionError(f"Unexpected {tok.text!r} at position {tok.pos}")
        return node

    def parse_or(self) -> Any:
        items = [self.parse_and()]
        while self.word() == "or":
            self.take()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def parse_and(self) -> Any:
        items = [self.parse_unary()]
        while self.word() == "and":
            self.take()
            items.append(self.parse_unary())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def parse_unary(self) -> Any:
        if self.word() == "not":
            self.take()
            return Not(self.parse_unary())
        tok = self.peek()
        if tok is not None and tok.kind == "lp":
            self.take()
            node = self.parse_or()
            closing = self.take()
            if closing.kind != "rp":
                raise ConditionError(f"Expected ')' at position {closing.pos}")
            return node
        return self.parse_comparison()

    def path(self) -> tuple[str, ...]:
        tok = self.take()
        if tok.kind != "word" or tok.text.lower() in _KEYWORDS:
            raise ConditionError(f"Expected a field name at position {tok.pos}, got {tok.text!r}")
        parts = tok.text.split("/")
        head = self.fields.get(parts[0].casefold())
        if head is None:
            raise ConditionError(f"Unknown field '{tok.text}'")
        rest = [p.lower() if p.lower() in ("id", "name", "identifier") else p for p in parts[1:]]
        return (head, *rest)

    def value(self) -> Any:
        tok = self.take()
        if tok.kind == "str":
            return _unescape(tok.text)
        if tok.kind == "num":
            return float(tok.text) if "." in tok.text else int(tok.text)
        if tok.kind == "date":
            when = _parse_datetime(tok.text[1:-1])
            if when is None:
                raise ConditionError(f"Invalid date {tok.text}")
            return when
        if tok.kind == "word" and tok.text.lower() in ("true", "false"):
            return tok.text.lower() == "true"
        if tok.kind == "word" and tok.text.lower() == "null":
            return None
        raise ConditionError(f"Expected a value at position {tok.pos}, got {tok.text!r}")

    def parse_comparison(self) -> Cmp:
        path = self.path()
        negate = False
        if self.word() == "not":
            self.take()
            negate = True
        tok = self.take()
        if tok.kind == "op" and not negate:
            op = "!=" if tok.text == "<>" else tok.text
            return Cmp(path, op, self.value())
        keyword = tok.text.lower() if tok.kind == "word" else ""
        if keyword in ("contains", "like"):
            operand = self.value()
            if not isinstance(operand, str):
                raise ConditionError(f"'{keyword}' needs a quoted string at position {tok.pos}")
            return Cmp(path, keyword, operand, negate)
        if keyword == "in":
            opening = self.take()
            if opening.kind != "lp":
                raise ConditionError(f"Expected '(' after 'in' at position {opening.pos}")
            values = [self.value()]
            while (nxt := self.take()).kind == "comma":
                values.append(self.value())
            if nxt.kind != "rp":
                raise ConditionError(f"Expected ')' at position {nxt.pos}")
            return Cmp(path, "in", tuple(values), negate)
        raise ConditionError(f"Expected an operator at position {tok.pos}, got {tok.text!r}")


def parse_conditions(text: str, fields: frozenset[str]) -> Any:
    """Parse a Manage `conditions` string into an AST (Cmp / BoolOp / Not)."""
    return ConditionParser(text, fields).parse()


def lookup(row: Row, path: tuple[str, ...]) -> Any:
    value: Any = row
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _like_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("[[]", i):
            out.append(re.escape("["))
            i += 3
            continue
        char = pattern[i]
        if char in "%*":
            out.append(".*")
        elif char == "_":
            out.append(".")
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def _compare(actual: Any, op: str, wanted: Any) -> bool:
    if wanted is None or actual is None:
        both = wanted is None and actual is None
        if op == "=":
            return both
        if op == "!=":
            return not both
        return False
    if isinstance(wanted, bool):
        flag = actual if isinstance(actual, bool) else str(actual).lower() == "true"
        return (flag == wanted) if op == "=" else (flag != wanted) if op == "!=" else False
    left: Any
    right: Any
    if isinstance(wanted, int | float):
        try:
            left, right = float(actual), float(wanted)
        except (TypeError, ValueError):
            return op == "!="
    elif isinstance(wanted, datetime):
        left, right = _parse_datetime(str(actual)), wanted
        if left is None:
            return False
    else:
        left, right = str(actual).casefold(), str(wanted).casefold()
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    if op == ">=":
        return bool(left >= right)
    return False


def compile_conditions(node: Any) -> Predicate:
    """AST → predicate over a stored record."""
    if isinstance(node, BoolOp):
        parts = [compile_conditions(item) for item in node.items]
        if node.op == "and":
            return lambda row: all(p(row) for p in parts)
        return lambda row: any(p(row) for p in parts)
    if isinstance(node, Not):
        inner = compile_conditions(node.item)
        return lambda row: not inner(row)
    assert isinstance(node, Cmp)
    path, op, wanted, negate = node.path, node.op, node.value, node.negate
    test: Predicate
    if op == "contains":
        needle = wanted.replace("[[]", "[").casefold()

        def test(row: Row) -> bool:
            value = lookup(row, path)
            return value is not None and needle in str(value).casefold()

    elif op == "like":
        regex = _like_regex(wanted)

        def test(row: Row) -> bool:
            value = lookup(row, path)
            return value is not None and regex.fullmatch(str(value)) is not None

    elif op == "in":
        options = wanted

        def test(row: Row) -> bool:
            value = lookup(row, path)
            return any(_compare(value, "=", option) for option in options)

    else:

        def test(row: Row) -> bool:
            return _compare(lookup(row, path), op, wanted)

    if negate:
        return lambda row: not test(row)
    return test


def equality_hint(node: Any, path: tuple[str, ...]) -> int | None:
    """`path = N` required by the whole expression (top-level and-chain), for index lookups."""
    items = node.items if isinstance(node, BoolOp) and node.op == "and" else (node,)
    for item in items:
        if (
            isinstance(item, Cmp)
            and item.path == path
            and item.op == "="
            and not item.negate
            and isinstance(item.value, int)
            and not isinstance(item.value, bool)
        ):
            return item.value
    return None
