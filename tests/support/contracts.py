"""Requests checked against the vendor's own API description, and the fakes' answers with them.

A `Description` is loaded from the vendor's document where it lies (`tests/support/specs.py`; never
copied into the repository) in one of three forms: OpenAPI 3 (`openapi3`), Swagger 2 (`swagger2`)
and the compact ConnectWise Manage form (`connectwise_compact`: per path and method the query names,
the body schema and the returned model). `Description.check(exchange)` refuses a request unless

- its path (under the description's base path) and method are an operation of the document;
- every query parameter it carries is declared by that operation, and every required query
  parameter and header is there;
- its JSON body validates against the operation's body schema, with `$ref`s resolved against the
  document and every object schema closed (`additionalProperties: false`), so an unknown or
  misspelt field fails here rather than being dropped by the vendor (required fields, types, enums
  and max lengths are the document's own);
- for ConnectWise, `conditions`, `orderBy` and `fields` name real fields of the resource model the
  operation returns (dotted paths such as `company/id` followed through references), and a JSON
  Patch body is an RFC 6902 array whose paths name fields of that model.

`Description.check_response(exchange)` validates a JSON answer against the operation's response
schema for that status, where the document has one (objects left open: a vendor may add fields).

`RecordingTransport` wraps the transport an adapter is given (a stateful fake's ASGI app) and keeps
every request with its answer; `drive_psa` / `drive_rmm` take a harness world's adapter through every
public operation of its kind (and the lookups after writes that time out), so a test then checks
everything it sent with `Description.check_all`.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
from openapi_schema_validator import OAS30Validator

from adapters.base import AdapterSpec, ClearsAlerts, ConfigurationUpdate, PsaAdapter, RmmAdapter
from adapters.testing.harness import PsaOperation, PsaWorld, RmmWorld, billing_line, load_harness, ticket_spec

JSON_PATCH_OPS = frozenset({"add", "remove", "replace", "move", "copy", "test"})


class ContractError(AssertionError):
    """A request (or answer) the vendor's description does not allow."""


# ---------------------------------------------------------------------------------------------
# Recording what an adapter sends
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One request as it went on the wire, and the answer it got."""

    method: str
    url: str
    query: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]
    body: Any
    """The JSON body (parsed), or None when the request had no body."""
    status: int = 0
    response: Any = None
    """The JSON answer (parsed), or None when the answer was not JSON."""
    raw_body: bytes = b""

    @property
    def path(self) -> str:
        return httpx.URL(self.url).path

    @classmethod
    def of(
        cls,
        method: str,
        url: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        status: int = 0,
        response: Any = None,
    ) -> Exchange:
        """An exchange made up by hand (the planted bad requests that prove a validator)."""
        parsed = httpx.URL(url)
        return cls(
            method.upper(),
            url,
            tuple(parsed.params.multi_items()),
            {k.lower(): v for k, v in (headers or {}).items()},
            body,
            status,
            response,
        )


def _json_or_none(content: bytes, content_type: str) -> Any:
    if not content or "json" not in content_type:
        return None
    try:
        return json.loads(content)
    except ValueError:
        return None


class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes every request to `inner` and records it, with its answer, in `log`."""

    def __init__(self, inner: httpx.AsyncBaseTransport, log: list[Exchange]) -> None:
        self.inner = inner
        self.log = log

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        content = request.content
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TransportError:
            self._record(request, content, 0, b"", "")
            raise
        answer = await response.aread()
        self._record(request, content, response.status_code, answer, response.headers.get("content-type", ""))
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=answer,
            request=request,
            extensions=response.extensions,
        )

    def _record(
        self, request: httpx.Request, content: bytes, status: int, answer: bytes, answer_type: str
    ) -> None:
        self.log.append(
            Exchange(
                method=request.method,
                url=str(request.url),
                query=tuple(request.url.params.multi_items()),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=_json_or_none(content, request.headers.get("content-type", "")),
                status=status,
                response=_json_or_none(answer, answer_type),
                raw_body=content,
            )
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


def recording(
    transport: Callable[[], httpx.AsyncBaseTransport], log: list[Exchange]
) -> Callable[[], httpx.AsyncBaseTransport]:
    """A transport maker like `transport` whose transports record into `log`."""
    return lambda: RecordingTransport(transport(), log)


# ---------------------------------------------------------------------------------------------
# Descriptions
# ---------------------------------------------------------------------------------------------


@dataclass
class Operation:
    method: str
    template: str
    query: frozenset[str]
    """Declared query parameter names (compared case-insensitively when `case_insensitive_query`)."""
    required_query: frozenset[str] = frozenset()
    required_headers: frozenset[str] = frozenset()
    """Lower-cased names of the headers the operation requires."""
    body: dict[str, Any] | None = None
    body_required: bool = False
    raw_body: bool = False
    """The body the operation takes is not JSON (e.g. `text/plain`): it is sent, not validated."""
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Status ("200", "2XX", "default") → schema of the JSON answer."""
    model: str | None = None
    """The resource model the operation reads or writes (ConnectWise field checks)."""

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"


def close_objects(schemas: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `schemas` with every object schema that lists properties closed to others."""
    closed: dict[str, Any] = copy.deepcopy(dict(schemas))

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(closed)
    return closed


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "/?$", re.IGNORECASE)


class Description:
    """One vendor document: its operations, and the schemas their `$ref`s point into."""

    def __init__(
        self,
        title: str,
        operations: Iterable[Operation],
        *,
        base_paths: Sequence[str],
        ref_root: str,
        schemas: Mapping[str, Any],
        validator: type[Any] = OAS30Validator,
        case_insensitive_query: bool = False,
        response_schemas: Mapping[str, Any] | None = None,
    ) -> None:
        self.title = title
        self.operations = {(op.method, op.template): op for op in operations}
        self.base_paths = tuple(base_paths)
        self.ref_root = ref_root
        self.schemas = dict(schemas)
        self.strict_schemas = close_objects(schemas)
        self.response_schemas = dict(response_schemas if response_schemas is not None else schemas)
        self.validator = validator
        self.case_insensitive_query = case_insensitive_query
        self._patterns = [(_template_regex(t), t) for t in {t for _m, t in self.operations}]
        self._validators: dict[tuple[str, str, bool], Any] = {}
        self._partial: dict[str, Any] | None = None
        self.answers: Description | None = None
        """Where answers are validated, when another document describes them (else this one)."""

    # -- locating the operation ----------------------------------------------------------------

    def relative_path(self, path: str) -> str:
        for base in sorted(self.base_paths, key=len, reverse=True):
            if re.match(re.escape(base) + "(/|$)", path, re.IGNORECASE):
                return path[len(base) :] or "/"
        raise ContractError(f"{path} is not under {' or '.join(self.base_paths)} ({self.title})")

    def operation(self, method: str, path: str) -> Operation:
        relative = self.relative_path(path)
        templates = [t for pattern, t in self._patterns if pattern.match(relative)]
        if not templates:
            raise ContractError(f"{relative} is not a path of {self.title}")
        # A literal segment beats a parameter (`/Tickets/entityInformation` over `/Tickets/{id}`).
        for template in sorted(templates, key=lambda t: t.count("{")):
            found = self.operations.get((method.upper(), template))
            if found:
                return found
        raise ContractError(f"{method.upper()} {templates[0]} is not an operation of {self.title}")

    def has(self, exchange: Exchange) -> bool:
        try:
            self.operation(exchange.method, exchange.path)
        except ContractError:
            return False
        return True

    # -- schemas -------------------------------------------------------------------------------

    def _validator_for(self, schema: dict[str, Any], *, strict: bool, partial: bool = False) -> Any:
        key = (json.dumps(schema, sort_keys=True), self.ref_root, strict, partial)
        cached = self._validators.get(key)
        if cached is None:
            root: dict[str, Any] = dict(schema)
            container: dict[str, Any] = {}
            node = container
            parts = self.ref_root.strip("#/").split("/")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = (
                self.strict_schemas
                if strict
                else self.partial_schemas()
                if partial
                else self.response_schemas
            )
            root.update(container)
            cached = self.validator(root)
            self._validators[key] = cached
        return cached

    def partial_schemas(self) -> dict[str, Any]:
        """The answer schemas without `required`: a partial answer (`fields=`) leaves fields out."""
        if self._partial is None:
            self._partial = copy.deepcopy(self.response_schemas)
            for schema in self._partial.values():
                if isinstance(schema, dict):
                    schema.pop("required", None)
        return self._partial

    def validate_schema(
        self, schema: dict[str, Any], value: Any, *, strict: bool, what: str, partial: bool = False
    ) -> None:
        validator = self._validator_for(schema, strict=strict, partial=partial)
        errors = sorted(validator.iter_errors(value), key=lambda e: e.path)
        if errors:
            first = errors[0]
            where = "/".join(str(p) for p in first.absolute_path) or "(body)"
            raise ContractError(f"{what}: {where}: {first.message}")

    def model_properties(self, model: str) -> dict[str, Any]:
        schema = self.schemas.get(model)
        if not isinstance(schema, dict):
            raise ContractError(f"{model} is not a model of {self.title}")
        properties: dict[str, Any] = schema.get("properties", {})
        return properties

    def _ref_model(self, schema: Mapping[str, Any]) -> str | None:
        ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
        return str(ref).rsplit("/", 1)[-1] if ref else None

    def field_exists(self, model: str, dotted: str) -> bool:
        """Whether `company/id` (or `company.id`) names a field of `model`, through references."""
        current: str | None = model
        parts = [p for p in re.split(r"[/.]", dotted) if p]
        for index, part in enumerate(parts):
            if current is None:
                return False
            properties = {k.lower(): v for k, v in self.model_properties(current).items()}
            prop = properties.get(part.lower())
            if prop is None:
                return False
            if index < len(parts) - 1:
                current = self._ref_model(prop)
        return True

    # -- checks --------------------------------------------------------------------------------

    def check(self, exchange: Exchange) -> str:
        """The operation the request is, or `ContractError` naming what the description refuses."""
        operation = self.operation(exchange.method, exchange.path)
        self.check_query(operation, exchange.query)
        for header in sorted(operation.required_headers):
            if not exchange.headers.get(header):
                raise ContractError(f"{operation.name}: required header {header!r} is missing")
        if operation.body is None:
            if operation.raw_body:
                if operation.body_required and not exchange.raw_body:
                    raise ContractError(f"{operation.name} needs a body")
            elif exchange.body is not None or exchange.raw_body:
                raise ContractError(f"{operation.name} takes no body")
        else:
            if exchange.body is None:
                if operation.body_required or exchange.raw_body:
                    raise ContractError(f"{operation.name} needs a JSON body")
            else:
                self.validate_schema(operation.body, exchange.body, strict=True, what=operation.name)
                if operation.model and self.json_patch(operation):
                    self.check_patch(operation, exchange.body)
        if operation.model:
            self.check_field_lists(operation, exchange.query)
        return operation.name

    def json_patch(self, operation: Operation) -> bool:
        return operation.method == "PATCH" and "PatchOperation" in json.dumps(operation.body)

    def check_query(self, operation: Operation, query: Sequence[tuple[str, str]]) -> None:
        def norm(name: str) -> str:
            return name.lower() if self.case_insensitive_query else name

        declared = {norm(q) for q in operation.query}
        sent = {norm(name) for name, _ in query}
        unknown = sorted(sent - declared)
        if unknown:
            raise ContractError(f"{operation.name}: query parameter {unknown[0]!r} is not declared")
        missing = sorted({norm(q) for q in operation.required_query} - sent)
        if missing:
            raise ContractError(f"{operation.name}: required query parameter {missing[0]!r} is missing")

    def check_field_lists(self, operation: Operation, query: Sequence[tuple[str, str]]) -> None:
        assert operation.model is not None
        for name, value in query:
            if name == "conditions":
                fields = condition_fields(value)
            elif name in ("fields", "orderBy"):
                fields = [
                    re.sub(r"\s+(asc|desc)$", "", f.strip(), flags=re.IGNORECASE) for f in value.split(",")
                ]
            else:
                continue
            for item in fields:
                if not self.field_exists(operation.model, item):
                    raise ContractError(
                        f"{operation.name}: {name} names {item!r}, not a field of {operation.model}"
                    )

    def check_patch(self, operation: Operation, body: Any) -> None:
        assert operation.model is not None
        if not isinstance(body, list) or not body:
            raise ContractError(f"{operation.name}: a JSON Patch body is a non-empty array")
        for op in body:
            if op.get("op") not in JSON_PATCH_OPS:
                raise ContractError(f"{operation.name}: {op.get('op')!r} is not a JSON Patch operation")
            if op["op"] in ("add", "replace", "test") and "value" not in op:
                raise ContractError(f"{operation.name}: {op['op']} needs a value")
            path = str(op.get("path", ""))
            if not path or not self.field_exists(operation.model, path.lstrip("/")):
                raise ContractError(
                    f"{operation.name}: patch path {path!r} is not a field of {operation.model}"
                )

    def check_response(self, exchange: Exchange) -> bool:
        """Validates a JSON answer against the schema for its status; False when there is none."""
        if exchange.response is None or not exchange.status:
            return False
        if self.answers is not None:
            return self.answers.check_response(exchange) if self.answers.has(exchange) else False
        operation = self.operation(exchange.method, exchange.path)
        status = str(exchange.status)
        schema = (
            operation.responses.get(status)
            or operation.responses.get(status[0] + "XX")
            or (operation.responses.get("default") if exchange.status < 400 else None)
        )
        if schema is None:
            return False
        partial = any(name.lower() in ("fields", "includefields") for name, _ in exchange.query)
        self.validate_schema(
            schema, exchange.response, strict=False, partial=partial, what=f"answer to {operation.name}"
        )
        return True

    def check_all(
        self, exchanges: Iterable[Exchange], *, skip: Callable[[Exchange], bool] | None = None
    ) -> set[str]:
        """Every exchange's request (and answer where a schema covers it); the operations seen."""
        seen: set[str] = set()
        for exchange in exchanges:
            if skip is not None and skip(exchange):
                continue
            try:
                seen.add(self.check(exchange))
                self.check_response(exchange)
            except ContractError as error:
                raise ContractError(f"{exchange.method} {exchange.url}: {error}") from None
        return seen


def condition_fields(conditions: str) -> list[str]:
    """The field names a ConnectWise `conditions` expression compares (strings and values left out)."""
    without_strings = re.sub(r'"(?:\\.|[^"\\])*"', '""', conditions)
    without_dates = re.sub(r"\[[^\]]*\]", "[]", without_strings)
    names = re.findall(
        r"([A-Za-z_][A-Za-z0-9_/.]*)\s*(?:=|!=|<=|>=|<|>|\s(?:contains|like|in|not)\b)", without_dates
    )
    keywords = {"and", "or", "not", "true", "false", "null"}
    return [name for name in names if name.lower() not in keywords]


# ---------------------------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------------------------

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def _declared_parameters(parameters: Sequence[Mapping[str, Any]]) -> dict[str, frozenset[str]]:
    """An operation's query names, required query names and required headers (lower-cased)."""
    return {
        "query": frozenset(p["name"] for p in parameters if p.get("in") == "query"),
        "required_query": frozenset(
            p["name"] for p in parameters if p.get("in") == "query" and p.get("required")
        ),
        "required_headers": frozenset(
            p["name"].lower() for p in parameters if p.get("in") == "header" and p.get("required")
        ),
    }


def _json_schema_of(content: Mapping[str, Any]) -> dict[str, Any] | None:
    for media, entry in content.items():
        if "json" in media and isinstance(entry, dict) and "schema" in entry:
            schema: dict[str, Any] = entry["schema"]
            return schema
    return None


def _resolved(document: Mapping[str, Any], node: Mapping[str, Any]) -> Any:
    """A `$ref` to `#/components/requestBodies/…` or `#/components/parameters/…`, followed."""
    ref = node.get("$ref") if isinstance(node, Mapping) else None
    if not isinstance(ref, str) or not ref.startswith("#/components/") or "/schemas/" in ref:
        return node
    target: Any = document
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return target


def openapi3(
    document: Mapping[str, Any],
    *,
    base_paths: Sequence[str],
    title: str | None = None,
    case_insensitive_query: bool = False,
    null_in_answers: bool = False,
) -> Description:
    """An OpenAPI 3 document; `null_in_answers` lets any answer property be null (see
    `nullable_properties`)."""
    operations = []
    for template, item in document["paths"].items():
        shared = item.get("parameters", [])
        for method in METHODS:
            raw = item.get(method)
            if not isinstance(raw, dict):
                continue
            parameters = [_resolved(document, p) for p in [*shared, *raw.get("parameters", [])]]
            request = _resolved(document, raw.get("requestBody") or {})
            responses = {
                str(status): schema
                for status, answer in (raw.get("responses") or {}).items()
                if isinstance(answer, dict)
                for schema in [_json_schema_of(answer.get("content") or {})]
                if schema is not None
            }
            operations.append(
                Operation(
                    method=method.upper(),
                    template=template,
                    **_declared_parameters(parameters),
                    body=_json_schema_of(request.get("content") or {}),
                    body_required=bool(request.get("required")),
                    raw_body=bool(request.get("content")) and _json_schema_of(request["content"]) is None,
                    responses=responses,
                )
            )
    return Description(
        title or str(document.get("info", {}).get("title", "OpenAPI document")),
        operations,
        base_paths=base_paths,
        ref_root="#/components/schemas",
        schemas=document.get("components", {}).get("schemas", {}),
        case_insensitive_query=case_insensitive_query,
        response_schemas=nullable_properties(document.get("components", {}).get("schemas", {}))
        if null_in_answers
        else None,
    )


def nullable_properties(schemas: Mapping[str, Any]) -> dict[str, Any]:
    """A copy where every property may be null, for OpenAPI 3.0 documents generated from .NET
    models without `nullable` (the server writes `null` for every unset reference-typed field)."""
    copied: dict[str, Any] = copy.deepcopy(dict(schemas))
    for schema in copied.values():
        if isinstance(schema, dict):
            for name, prop in list(schema.get("properties", {}).items()):
                if "$ref" in prop:
                    schema["properties"][name] = {"anyOf": [prop, {"enum": [None]}]}
                else:
                    prop["nullable"] = True
    return copied


def null_allowed(schemas: Mapping[str, Any]) -> dict[str, Any]:
    """A copy where every typed property may also be null: Swagger 2 cannot say `nullable`, and
    vendors answer `null` for fields the document types as strings (Autotask's `nextPageUrl`)."""
    copied: dict[str, Any] = copy.deepcopy(dict(schemas))
    for schema in copied.values():
        if isinstance(schema, dict):
            for prop in schema.get("properties", {}).values():
                kind = prop.get("type")
                if isinstance(kind, str):
                    prop["type"] = [kind, "null"]
                    if "enum" in prop:
                        prop["enum"] = [*prop["enum"], None]
    return copied


def swagger2(
    document: Mapping[str, Any],
    *,
    adjust: Callable[[dict[str, Any]], None] | None = None,
) -> Description:
    """A Swagger 2 document (`basePath` is the base path); `adjust` edits the definitions first."""
    definitions: dict[str, Any] = copy.deepcopy(document["definitions"])
    for schema in definitions.values():
        if isinstance(schema, dict):
            for prop in schema.get("properties", {}).values():
                prop.pop("readOnly", None)
    if definitions.get("Object") == {"type": "object", "properties": {}} or definitions.get("Object") == {
        "type": "object"
    }:
        # .NET `object`: any JSON value (Autotask's `itemId` is a number).
        definitions["Object"] = {}
    if adjust is not None:
        adjust(definitions)
    operations = []
    for template, item in document["paths"].items():
        for method in METHODS:
            raw = item.get(method)
            if not isinstance(raw, dict):
                continue
            parameters = raw.get("parameters", [])
            body = next((p for p in parameters if p.get("in") == "body"), None)
            responses = {
                str(status): answer["schema"]
                for status, answer in (raw.get("responses") or {}).items()
                if isinstance(answer, dict) and "schema" in answer
            }
            operations.append(
                Operation(
                    method=method.upper(),
                    template=template,
                    **_declared_parameters(parameters),
                    body=body["schema"] if body else None,
                    body_required=bool(body and body.get("required")),
                    responses=responses,
                )
            )
    return Description(
        str(document.get("info", {}).get("title", "Swagger document")),
        operations,
        base_paths=[document.get("basePath", "")],
        ref_root="#/definitions",
        schemas=definitions,
        validator=jsonschema.Draft4Validator,
        response_schemas=null_allowed(definitions),
    )


def connectwise_compact(
    document: Mapping[str, Any],
    *,
    base_paths: Sequence[str],
    responses_from: Mapping[str, Any] | None = None,
) -> Description:
    """The compact ConnectWise Manage form (every operation of All.json); GET answers are validated
    against the OpenAPI document `responses_from` where it has the operation."""
    answers = openapi3(responses_from, base_paths=base_paths) if responses_from else None
    operations = []
    for template, item in document["paths"].items():
        for method, raw in item.items():
            if method not in METHODS:
                continue
            body = raw.get("body")
            returns = str(raw.get("returns", ""))
            model = returns.removeprefix("[]").removeprefix("*")
            body_model = None
            if body:
                body_model = (
                    body["schema"].get("$ref", "").rsplit("/", 1)[-1]
                    or body["schema"].get("items", {}).get("$ref", "").rsplit("/", 1)[-1]
                )
            resource = model if model and model[0].isupper() and "." not in model else None
            if body_model and body_model != "PatchOperation":
                resource = body_model
            operations.append(
                Operation(
                    method=method.upper(),
                    template=template,
                    query=frozenset(raw.get("query", [])),
                    required_headers=frozenset(h.lower() for h in raw.get("header", [])),
                    body=body["schema"] if body else None,
                    body_required=bool(body and body["param"] in raw.get("required_params", [])),
                    model=resource,
                )
            )
    schemas = dict(document["components"]["schemas"])
    # JSON Patch values are any JSON value (a number, a string, a reference object), not only objects.
    schemas["PatchOperation"] = {
        "type": "object",
        "properties": {
            "op": {"type": "string", "enum": sorted(JSON_PATCH_OPS)},
            "path": {"type": "string"},
            "value": {},
        },
        "required": ["op", "path"],
    }
    description = Description(
        "ConnectWise Manage All.json 2025.1",
        operations,
        base_paths=base_paths,
        ref_root="#/components/schemas",
        schemas=schemas,
    )
    # Answers are validated against the OpenAPI document, whose `$ref`s point into its own components.
    description.answers = answers
    return description


# ---------------------------------------------------------------------------------------------
# Driving an adapter through every operation of its kind
# ---------------------------------------------------------------------------------------------


async def no_sleep(_seconds: float) -> None:
    return None


def record_world(world: Any, log: list[Exchange]) -> None:
    """From now on every adapter the world builds sends through a transport recording into `log`."""
    world.transport = recording(world.transport, log)


async def drive_psa(
    world: PsaWorld, log: list[Exchange], *, marker: str = "cn:ep-contract:antivirus_off"
) -> PsaAdapter:
    """Every public operation of a PSA adapter against the world's fake (reads, a ticket found,
    created, noted and closed, a configuration record updated and created, a billing line created
    and updated); returns the adapter, still open."""
    record_world(world, log)
    adapter = world.adapter(sleep=no_sleep)
    await adapter.test_connection()
    assert [c async for c in adapter.list_companies()]
    company = next(iter(world.companies))
    await adapter.list_agreements(company)
    options = await adapter.list_ticket_options()
    assert options, "list_ticket_options answered nothing"
    spec = ticket_spec(world, marker, company)
    assert await adapter.find_ticket(marker, company) is None
    ref = await adapter.create_ticket(spec)
    found = await adapter.find_ticket(marker, company)
    assert found is not None and found.id == ref.id
    await adapter.add_note(ref.id, "Full scan started.")
    # The read-back before a close, with a technician's note, time and reassignment on the ticket.
    world.human_note(ref.id, "Called the user.")
    world.human_time_entry(ref.id)
    world.human_reassign(ref.id)
    back = await adapter.read_ticket(ref.id)
    assert back is not None and back.touched
    await adapter.close_ticket(ref.id, world.ticket_ids.status_closed_id, "Protection is back on.")
    status = {name: "Protected" for name in world.configuration_fields}
    devices = world.device_names(company)
    record = await adapter.upsert_configuration(
        ConfigurationUpdate(company_id=company, device_name=devices[0], fields=status)
    )
    assert record
    # A ticket attached to the endpoint's configuration record.
    attached = await adapter.create_ticket(
        spec.model_copy(update={"marker": marker + ":ci", "configuration_id": record})
    )
    assert world.ticket_configurations(attached.id) == [record]
    assert await adapter.upsert_configuration(
        ConfigurationUpdate(
            company_id=company,
            device_name="NEW-PC-01",
            serial_number="SN-NEW-01",
            create_if_missing=True,
            type_id=world.configuration_type_id,
            fields=status,
        )
    )
    line = billing_line(world, 5, company)
    await adapter.upsert_billing_line(line)
    await adapter.upsert_billing_line(line.model_copy(update={"quantity": Decimal(7)}))
    # Writes that time out after the vendor applied them are looked up, not repeated: the lookups
    # are requests too.
    world.time_out_next(PsaOperation.CREATE_TICKET)
    recovered = await adapter.create_ticket(spec.model_copy(update={"marker": marker + ":again"}))
    world.time_out_next(PsaOperation.ADD_NOTE)
    await adapter.add_note(recovered.id, "Scan finished.")
    world.delete_ticket(recovered.id)
    assert await adapter.read_ticket(recovered.id) is None
    return adapter


async def drive_rmm(world: RmmWorld, log: list[Exchange]) -> RmmAdapter:
    """Every public operation of an RMM adapter against the world's fake (clients, a full and a
    changed-since listing, alert polls, each declared action); returns the adapter, still open."""
    record_world(world, log)
    adapter = world.adapter(sleep=no_sleep)
    await adapter.test_connection()
    assert [c async for c in adapter.list_clients()]
    endpoints = [e async for page in adapter.iter_endpoint_pages(None) for e in page.statuses]
    assert endpoints
    cursor = world.cursor()
    first = next(iter(world.endpoints))
    world.touch([first])
    world.put_in_trouble(first)
    [e async for page in adapter.iter_endpoint_pages(cursor) for e in page.statuses]
    world.raise_polled_alert(first)
    polled = await adapter.poll_alerts(None)
    await adapter.poll_alerts(cursor)
    for action in sorted(world.spec.actions):
        await adapter.run_action(first, action)
    if isinstance(adapter, ClearsAlerts):
        for event in polled.events:
            await adapter.clear_alert(event.endpoint_id, event.problem, event.vendor_alert_id)
    return adapter


TWO_CLIENTS = ("Acme Dental", "Blue Harbor Logistics")


def psa_world(spec: AdapterSpec) -> PsaWorld:
    """The kind's fake, seeded small: two companies with two devices each."""
    started = load_harness(spec).start(companies=TWO_CLIENTS, devices_per_company=2)
    assert isinstance(started, PsaWorld)
    return started


def rmm_world(spec: AdapterSpec) -> RmmWorld:
    """The kind's fake, seeded small: two clients with three endpoints each."""
    started = load_harness(spec).start(clients=TWO_CLIENTS, endpoints_per_client=3)
    assert isinstance(started, RmmWorld)
    return started
