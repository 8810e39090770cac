"""Building Automate `condition` expressions safely (vendor-notes/rmm.md §1.2).

Grammar as documented by gavsto/AutomateAPI (`Get-AutomateAPIGeneric.ps1`, `Get-AutomateComputer.ps1`):
operators `=`/`eq`, `>`, `>=`, `<`, `<=`, `and`, `or`, parentheses, `like` (MySQL LIKE), `contains`,
`in`, `not` (only with in/like/contains); strings in single or double quotes; booleans `true`/`false`;
nested fields with dots (`Client.Id`); datetimes written bare in the sortable form
(`RemoteAgentLastContact <= 2019-12-18T00:50:19`). No escape sequence inside quotes is documented, so a
string is quoted with whichever quote it does not contain, and one containing both is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

Value = str | int | bool | datetime


def field(path: str) -> str:
    if not path or not all(part.isidentifier() for part in path.split(".")):
        raise ValueError(f"not a condition field: {path!r}")
    return path


def literal(value: Value, tz: tzinfo = UTC) -> str:
    """A condition operand; datetimes are converted to the server's zone and written without offset."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S")
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError("a condition string cannot contain both quote characters")


def compare(path: str, op: str, value: Value, tz: tzinfo = UTC) -> str:
    if op not in {"=", ">", ">=", "<", "<=", "like", "contains"}:
        raise ValueError(f"unsupported operator {op!r}")
    return f"{field(path)} {op} {literal(value, tz)}"


def in_(path: str, values: list[int] | list[str]) -> str:
    if not values:
        raise ValueError("`in` needs at least one value")
    return f"{field(path)} in ({', '.join(literal(v) for v in values)})"


def group(text: str) -> str:
    return f"({text})"


def and_(*parts: str | None) -> str:
    """Each part is parenthesized, so an engineer's own condition keeps its precedence."""
    kept = [p.strip() for p in parts if p and p.strip()]
    if len(kept) == 1:
        return kept[0]
    return " and ".join(group(p) for p in kept)


def or_(*parts: str | None) -> str:
    kept = [p.strip() for p in parts if p and p.strip()]
    if len(kept) == 1:
        return kept[0]
    return group(" or ".join(group(p) for p in kept))
