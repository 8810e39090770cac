"""Automate's `condition` language (`= eq > >= < <=`, `like`, `contains`, `in`, `not`, `and`/`or`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from adapters.testing.faults import sort_key

Row = dict[str, Any]
Predicate = Callable[[Row], bool]


class ConditionError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------
# `condition` parser
# ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>'[^']*'|"[^"]*")
  | (?P<date>\d{4}-\d{2}-\d{2}(?:[T\s]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?(?![\d:]))
  | (?P<num>-?\d+(?:\.\d+)?(?![\w.]))
  | (?P<op><=|>=|=|<|>)
  | (?P<lp>\()
  | (?P<rp>\))
  | (?P<comma>,)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.VERBOSE,
)
_KEYWORDS = frozenset({"and", "or", "not", "like", "contains", "in", "eq", "true", "false", "null"})


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ConditionError(f"Unexpected character '{text[pos]}' at position {pos} in condition.")
        kind = match.lastgroup or ""
        if kind != "ws":
            value = match.group()
            if kind == "word" and value.lower() in _KEYWORDS:
                kind = value.lower()
            out.append((kind, value))
        pos = match.end()
    return out


def _parse_dt(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _resolve(row: Row, path: str) -> Any:
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        lowered = {k.lower(): v for k, v in value.items()}
        value = lowered.get(part.lower())
    return value


def _compare(left: Any, op: str, right: Any) -> bool:
    if right is None:
        return (left is None) if op == "=" else False
    if left is None:
        return False
    if isinstance(right, bool):
        return op == "=" and isinstance(left, bool) and left == right
    if isinstance(right, datetime) or (isinstance(right, str) and _parse_dt(right) and _parse_dt(left)):
        a, b = _parse_dt(left), _parse_dt(right)
        if a is None or b is None:
            return False
        pair: tuple[Any, Any] = (a, b)
    elif isinstance(right, int | float):
        try:
            pair = (float(left), float(right))
        except (TypeError, ValueError):
            return False
    else:
        pair = (str(left).lower(), str(right).lower())
    a, b = pair
    return bool({"=": a == b, ">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op])


def _like(value: Any, pattern: str) -> bool:
    if value is None:
        return False
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, str(value), re.I | re.S) is not None


def _contains(value: Any, needle: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, list):
        return any(str(v).lower() == str(needle).lower() for v in value)
    return str(needle).lower() in str(value).lower()


class _Parser:
    def __init__(self, text: str, fields: frozenset[str]) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.fields = fields

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def take(self, *kinds: str) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise ConditionError("Unexpected end of condition.")
        token = self.tokens[self.pos]
        if kinds and token[0] not in kinds:
            raise ConditionError(f"Unexpected '{token[1]}' in condition; expected {' or '.join(kinds)}.")
        self.pos += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.or_()
        if self.pos != len(self.tokens):
            raise ConditionError(f"Unexpected '{self.tokens[self.pos][1]}' in condition.")
        return predicate

    def or_(self) -> Predicate:
        parts = [self.and_()]
        while self.peek() == "or":
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else (lambda row: any(p(row) for p in parts))

    def and_(self) -> Predicate:
        parts = [self.unary()]
        while self.peek() == "and":
            self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda row: all(p(row) for p in parts))

    def unary(self) -> Predicate:
        if self.peek() == "lp":
            self.take()
            inner = self.or_()
            self.take("rp")
            return inner
        return self.comparison()

    def value(self) -> Any:
        kind, text = self.take("str", "num", "date", "true", "false", "null")
        if kind == "str":
            return text[1:-1]
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind == "date":
            when = _parse_dt(text.replace(" ", "T"))
            if when is None:
                raise ConditionError(f"'{text}' is not a valid date.")
            return when
        return {"true": True, "false": False, "null": None}[kind]

    def comparison(self) -> Predicate:
        _, path = self.take("word")
        if path.lower() not in self.fields:
            raise ConditionError(f"Unknown field '{path}' in condition.")
        negate = False
        if self.peek() == "not":
            self.take()
            negate = True
            if self.peek() not in ("like", "contains", "in"):
                raise ConditionError("'not' can only be used with 'in', 'like' or 'contains'.")
        kind, op = self.take("op", "eq", "like", "contains", "in")
        if kind == "in":
            self.take("lp")
            values = [self.value()]
            while self.peek() == "comma":
                self.take()
                values.append(self.value())
            self.take("rp")
            test: Predicate = lambda row: any(_compare(_resolve(row, path), "=", v) for v in values)  # noqa: E731
        elif kind in ("like", "contains"):
            operand = self.value()
            if kind == "like":
                test = lambda row: _like(_resolve(row, path), str(operand))  # noqa: E731
            else:
                test = lambda row: _contains(_resolve(row, path), operand)  # noqa: E731
        else:
            symbol = "=" if kind == "eq" else op
            operand = self.value()
            return lambda row: _compare(_resolve(row, path), symbol, operand)
        return (lambda row: not test(row)) if negate else test


def parse_condition(text: str, fields: frozenset[str]) -> Predicate:
    return _Parser(text, fields).parse()


def row_key(name: str, row: Row) -> tuple[int, Any]:
    return sort_key(_resolve(row, name))
