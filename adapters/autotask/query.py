"""Builders for Autotask's query filter JSON (`Filter` in the Swagger; vendor-notes/psa.md §2.5).

Each filter is `{"op", "field", "value"}` (add `"udf": true` for a user-defined field); groupings are
`{"op": "and"|"or", "items": [...]}`; top-level filters are ANDed. Operator names are case-sensitive
(`noteq`, `beginsWith`), so they are spelt once, here.
"""

from __future__ import annotations

from adapters.autotask.models import FilterValue, QueryBody, QueryFilter

OPERATORS = frozenset(
    {
        "eq",
        "noteq",
        "gt",
        "gte",
        "lt",
        "lte",
        "beginsWith",
        "endsWith",
        "contains",
        "exist",
        "notExist",
        "in",
        "notIn",
    }
)
GROUPS = frozenset({"and", "or"})


def cond(op: str, field: str, value: FilterValue = None, *, udf: bool = False) -> QueryFilter:
    if op not in OPERATORS:
        raise ValueError(f"unknown Autotask filter operator {op!r}")
    return QueryFilter(op=op, field=field, value=value, udf=True if udf else None)


def eq(field: str, value: FilterValue, *, udf: bool = False) -> QueryFilter:
    return cond("eq", field, value, udf=udf)


def noteq(field: str, value: FilterValue) -> QueryFilter:
    return cond("noteq", field, value)


def gt(field: str, value: FilterValue) -> QueryFilter:
    return cond("gt", field, value)


def gte(field: str, value: FilterValue) -> QueryFilter:
    return cond("gte", field, value)


def lt(field: str, value: FilterValue) -> QueryFilter:
    return cond("lt", field, value)


def lte(field: str, value: FilterValue) -> QueryFilter:
    return cond("lte", field, value)


def contains(field: str, value: str) -> QueryFilter:
    return cond("contains", field, value)


def begins_with(field: str, value: str) -> QueryFilter:
    return cond("beginsWith", field, value)


def in_(field: str, values: list[int] | list[str]) -> QueryFilter:
    return cond("in", field, values)


def or_(*items: QueryFilter) -> QueryFilter:
    return QueryFilter(op="or", items=list(items))


def and_(*items: QueryFilter) -> QueryFilter:
    return QueryFilter(op="and", items=list(items))


ALL = gte("id", 0)
"""Autotask queries need at least one filter; this one matches every record."""


def body(*filters: QueryFilter, max_records: int = 500, include_fields: list[str] | None = None) -> QueryBody:
    return QueryBody(filter=list(filters) or [ALL], maxRecords=max_records, includeFields=include_fields)
