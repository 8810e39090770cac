"""Building Manage `conditions` expressions safely (vendor-notes/psa.md §1.3, CW Developer Guide).

Values: strings in double quotes, integers bare, booleans `True`/`False`, `null`, datetimes in square
brackets. Inside a quoted string a `"` or `\\` is backslash-escaped. `contains`/`like` are evaluated as
SQL LIKE, where `[` opens a character class, so a literal `[` is written `[[]` (documented); `%`/`_`
are left alone (they can only widen a match, and callers verify matches client-side).
"""

from __future__ import annotations

from datetime import UTC, datetime

Value = str | int | bool | datetime | None


def literal(value: Value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        when = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return "[" + when.strftime("%Y-%m-%dT%H:%M:%SZ") + "]"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def like_literal(text: str) -> str:
    """A quoted operand for `contains`/`like` with `[` escaped as `[[]`."""
    return literal(text.replace("[", "[[]"))


def _path(path: str) -> str:
    if not path or not all(part.isidentifier() for part in path.split("/")):
        raise ValueError(f"not a condition path: {path!r}")
    return path


def eq(path: str, value: Value) -> str:
    return f"{_path(path)} = {literal(value)}"


def ne(path: str, value: Value) -> str:
    return f"{_path(path)} != {literal(value)}"


def contains(path: str, text: str) -> str:
    return f"{_path(path)} contains {like_literal(text)}"


def and_(*parts: str) -> str:
    """Joins with `and`; operands built by `or_` are already parenthesized."""
    kept = [p for p in parts if p]
    return " and ".join(kept)


def or_(*parts: str) -> str:
    kept = [p for p in parts if p]
    if len(kept) == 1:
        return kept[0]
    return "(" + " or ".join(kept) + ")"
