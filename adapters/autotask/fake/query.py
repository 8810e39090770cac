"""Autotask's query filters (`POST /{Entity}/query`: operators, and/or groupings, UDF filters) and
its paging (`nextPageUrl`, POSTed again with the same body)."""

from __future__ import annotations

import copy
import json
import secrets
from typing import Any

from adapters.autotask.fake.schema import (
    FIELDS,
    MAX_RECORDS,
    OPERATORS,
    READ_ONLY,
    AutotaskApiError,
    Row,
    invalid,
)
from adapters.autotask.fake.store import AutotaskStore


def normalized(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    return value


def coerce(value: Any, kind: str) -> Any:
    """A filter value as the field's type (Autotask accepts `"5"` for an integer field)."""
    if value is None:
        return None
    if kind in ("integer", "long"):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise invalid(f"Unable to convert '{value}' to an integer.") from None
    if kind == "double":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise invalid(f"Unable to convert '{value}' to a number.") from None
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        return str(value).lower() in ("true", "1")
    if kind == "datetime":
        return str(value).rstrip("Z")[:19]
    return str(value)


class AutotaskQueries(AutotaskStore):
    """Entity queries and field information over the store."""

    # -- queries -----------------------------------------------------------------------------

    def _field_info(self, entity: str) -> list[Row]:
        fields = []
        picks = self.picklists.get(entity, {})
        for name, kind in FIELDS.get(entity, {}).items():
            values = picks.get(name)
            fields.append(
                {
                    "name": name,
                    "dataType": kind,
                    "length": 0,
                    "isRequired": name in self.required.get(entity, ()),
                    "isReadOnly": name in READ_ONLY,
                    "isQueryable": True,
                    "isReference": name.endswith("ID") and name != "id",
                    "referenceEntityType": "",
                    "isPickList": values is not None,
                    "picklistValues": copy.deepcopy(values) if values is not None else None,
                    "picklistParentValueField": "issueType" if name == "subIssueType" else "",
                    "isSupportedWebhookField": False,
                }
            )
        return fields

    def _resolve_field(self, entity: str, name: Any) -> tuple[str, str]:
        if not isinstance(name, str):
            raise invalid("Each filter needs a field.")
        for known, kind in FIELDS[entity].items():
            if known.lower() == name.lower():
                return known, kind
        raise invalid(f"Unable to find {name} in the {entity} entity.")

    def _matches(self, entity: str, row: Row, item: Any) -> bool:
        if not isinstance(item, dict):
            raise invalid("Each filter must be an object.")
        op = item.get("op")
        if op in ("and", "or"):
            items = item.get("items")
            if not isinstance(items, list) or not items:
                raise invalid(f"The '{op}' grouping needs items.")
            results = [self._matches(entity, row, sub) for sub in items]
            return all(results) if op == "and" else any(results)
        if op not in OPERATORS:
            raise invalid(f"The filter operator '{op}' is not supported.")
        if item.get("udf"):
            name = item.get("field")
            if not isinstance(name, str) or name not in self.udfs.get(entity, set()):
                raise invalid(f"Unable to find user-defined field {name} in the {entity} entity.")
            actual: Any = next(
                (u["value"] for u in row.get("userDefinedFields", []) if u["name"] == name), None
            )
            kind = "string"
        else:
            name, kind = self._resolve_field(entity, item.get("field"))
            actual = row.get(name)
        value = item.get("value")
        if op == "exist":
            return actual not in (None, "")
        if op == "notExist":
            return actual in (None, "")
        if op in ("in", "notIn"):
            if not isinstance(value, list):
                raise invalid(f"The '{op}' operator needs an array value.")
            found = normalized(coerce(actual, kind)) in {normalized(coerce(v, kind)) for v in value}
            return found if op == "in" else not found
        if isinstance(value, list | dict):
            raise invalid(f"The '{op}' operator needs a single value.")
        want = normalized(coerce(value, kind))
        have = normalized(coerce(actual, kind))
        if op == "eq":
            return bool(have == want)
        if op == "noteq":
            return bool(have != want)
        if have is None or want is None:
            return False
        if op in ("beginsWith", "endsWith", "contains"):
            have_s, want_s = str(have), str(want)
            if op == "beginsWith":
                return have_s.startswith(want_s)
            if op == "endsWith":
                return have_s.endswith(want_s)
            return want_s in have_s
        try:
            if op == "gt":
                return bool(have > want)
            if op == "gte":
                return bool(have >= want)
            if op == "lt":
                return bool(have < want)
            return bool(have <= want)
        except TypeError:
            raise invalid(f"Cannot compare {name} with '{value}'.") from None

    def _select(self, entity: str, body: Any) -> tuple[list[Row], int, list[str] | None]:
        if entity not in FIELDS:
            raise AutotaskApiError(
                405, None, body={"Message": "The requested resource does not support http method 'POST'."}
            )
        data = self._object(body)
        lowered = {k.lower(): v for k, v in data.items()}
        unknown = set(lowered) - {"filter", "maxrecords", "includefields"}
        if unknown:
            raise invalid(f"Unknown query property: {sorted(unknown)[0]}.")
        filters = lowered.get("filter")
        if not isinstance(filters, list) or not filters:
            raise invalid("A query requires at least one filter.")
        size = lowered.get("maxrecords") or MAX_RECORDS
        if not isinstance(size, int) or not 1 <= size <= MAX_RECORDS:
            raise invalid(f"MaxRecords must be between 1 and {MAX_RECORDS}.")
        include = lowered.get("includefields")
        names: list[str] | None = None
        if include:
            if not isinstance(include, list):
                raise invalid("IncludeFields must be an array.")
            names = [self._resolve_field(entity, n)[0] for n in include]
        rows = [
            r
            for _, r in sorted(self.data[entity].items())
            if all(self._matches(entity, r, f) for f in filters)
        ]
        return rows, size, names

    def _page(self, entity: str, body: Any, offset: int) -> Row:
        rows, size, names = self._select(entity, body)
        page = rows[offset : offset + size]
        items = []
        for row in page:
            item = copy.deepcopy(row)
            if names is not None:
                item = {k: v for k, v in item.items() if k in names or k == "id"}
            items.append(item)
        next_url = None
        if offset + size < len(rows):
            token = secrets.token_urlsafe(12)
            self._paging[token] = (entity, json.dumps(body, sort_keys=True), offset + size)
            next_url = f"{self.zone_url}V1.0/{entity}/query/next?paging={token}"
        return {
            "items": items,
            "pageDetails": {
                "count": len(items),
                "requestCount": size,
                "prevPageUrl": None,
                "nextPageUrl": next_url,
            },
        }

    def _query(self, entity: str, body: Any, offset: int) -> Row:
        return self._page(entity, body, offset)

    def _query_next(self, entity: str, token: str, body: Any) -> Row:
        state = self._paging.get(token)
        if state is None or state[0] != entity:
            raise invalid("The paging token is invalid or expired.")
        if json.dumps(body, sort_keys=True) != state[1]:
            raise invalid("The query for the next page must be the same as the original query.")
        return self._page(entity, body, state[2])
