"""A stateful fake of the ConnectWise PSA (Manage) REST API 3.0, as an ASGI app.

Use it in-process with `httpx.ASGITransport(app=fake.app)` (any host routes to it), or serve
`fake.app` with uvicorn for a demo. It behaves like Manage where the adapter depends on it:

- `GET /login/companyinfo/{companyId}` (unauthenticated) returns `Codebase`, `IsCloud`, ...; the API
  lives under `/{codebase}apis/3.0` (vendor-notes/psa.md §1.1).
- Basic `{companyId}+{publicKey}:{privateKey}` and the `clientId` header are checked on every API
  call; failures are 401 with Manage's error body (§1.2). The `Accept` version is recorded.
- Lists page like Manage (§1.4): `page`/`pageSize` (default 25, silently capped at 1,000) with an
  RFC 5988 `Link` header (first/prev/next/last, the query kept); forward-only paging with
  `pagination-type: forward-only` and `pageId` (= `id > pageId`, id order, `orderBy` refused, `Link`
  always carries the next `pageId`). `fields` (partial responses) and `orderBy` are honoured.
- `conditions` (§1.3) are parsed, not pattern-matched: `= != < <= > >= contains like in`, `not`,
  `and`/`or`, parentheses, quoted strings with backslash escapes (`[[]` is a literal `[` in
  contains/like), integers/decimals, `True`/`False`/`null`, `[datetime]`, dotted paths such as
  `company/id`. Unknown fields or bad syntax are a 400 with Manage's error body. String comparisons
  are case-insensitive (SQL Server collation).
- Writes are validated against the All.json field lists (`ai-connor/connectwise` model_*.go): unknown
  fields, wrong reference shapes (`{"id": n}` / `{"identifier": ...}` objects), missing required fields,
  references to records that do not exist → 400 `{"code", "message", "errors": [{..., "field"}]}`.
- PATCH takes a JSON array of `{op, path, value}` (§1.5); a nested path such as `company/identifier`
  is accepted with 200 and changes nothing, like the real API (recorded in `ignored_patch_ops`).
- Service notes need one of `detailDescriptionFlag`/`internalAnalysisFlag`/`resolutionFlag`
  (observed Manage behaviour, not in All.json).

Test and benchmark hooks: seeding helpers (`add_*`, `seed_demo`), fault injection (`fail_next`,
`rate_limit`, `fail_path`, `clear_faults`, `latency`), and a call counter (`calls`, `call_count`,
`requests`, `reset_calls`). Stores are indexed by id, company and parent so 50k-record tenants stay fast.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import copy
import itertools
import json
import re
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.testing.faults import (
    AsgiFake,
    FaultHooks,
    RecordedRequest,
    RouteTable,
    ScriptedFault,
    count_calls,
    decode_body,
    first_fault,
    retry_after_value,
)

Row = dict[str, Any]
Predicate = Callable[[Row], bool]

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 25


# ---------------------------------------------------------------------------------------------
# Field lists (from All.json 2025.8 via ai-connor/connectwise model_*.go)
# ---------------------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


TICKET_FIELDS = _words(
    "id summary recordType board status workRole workType company site siteName addressLine1 "
    "addressLine2 city stateIdentifier zip country contact contactName contactPhoneNumber "
    "contactPhoneExtension contactEmailAddress type subType item team owner priority serviceLocation "
    "source requiredDate budgetHours opportunity agreement agreementType severity impact externalXRef "
    "poNumber knowledgeBaseCategoryId knowledgeBaseSubCategoryId allowAllClientsPortalView "
    "customerUpdatedFlag automaticEmailContactFlag automaticEmailResourceFlag automaticEmailCcFlag "
    "automaticEmailCc initialDescription initialInternalAnalysis initialResolution "
    "initialDescriptionFrom contactEmailLookup processNotifications skipCallback closedDate closedBy "
    "closedFlag actualHours approved estimatedExpenseCost estimatedExpenseRevenue estimatedProductCost "
    "estimatedProductRevenue estimatedTimeCost estimatedTimeRevenue billingMethod billingAmount "
    "hourlyRate subBillingMethod subBillingAmount subDateAccepted dateResolved dateResplan "
    "dateResponded resolveMinutes resPlanMinutes respondMinutes isInSla knowledgeBaseLinkId resources "
    "parentTicketId hasChildTicket hasMergedChildTicketFlag knowledgeBaseLinkType billTime "
    "billExpenses billProducts predecessorType predecessorId predecessorClosedFlag lagDays "
    "lagNonworkingDaysFlag estimatedStartDate duration location department mobileGuid sla slaStatus "
    "requestForChangeFlag currency mergedParentTicket integratorTags _info escalationStartDateUTC "
    "escalationLevel minutesBeforeWaiting respondedSkippedMinutes resplanSkippedMinutes respondedHours "
    "respondedBy resplanHours resplanBy resolutionHours resolvedBy minutesWaiting customFields"
)
TICKET_REFS = _words(
    "board status workRole workType company site country contact type subType item team owner priority "
    "serviceLocation source opportunity agreement location department sla currency mergedParentTicket"
)
NOTE_FIELDS = _words(
    "id ticketId text detailDescriptionFlag internalAnalysisFlag resolutionFlag issueFlag member "
    "contact customerUpdatedFlag processNotifications dateCreated createdBy internalFlag externalFlag "
    "sentimentScore _info"
)
NOTE_REFS = _words("member contact")
ADDITION_FIELDS = _words(
    "id product quantity lessIncluded unitPrice unitCost billCustomer effectiveDate cancelledDate "
    "taxableFlag serialNumber invoiceDescription purchaseItemFlag specialOrderFlag agreementId "
    "description billedQuantity uom extPrice extCost sequenceNumber margin prorateCost proratePrice "
    "extendedProrateCost extendedProratePrice prorateCurrentPeriodFlag opportunity agreementStatus "
    "invoiceGrouping _info customFields"
)
ADDITION_REFS = _words("product opportunity invoiceGrouping")
CONFIGURATION_FIELDS = _words(
    "id name type status company contact site locationId location businessUnitId department "
    "deviceIdentifier serialNumber modelNumber tagNumber purchaseDate installationDate installedBy "
    "warrantyExpirationDate vendorNotes notes macAddress lastLoginName billFlag backupSuccesses "
    "backupIncomplete backupFailed backupRestores lastBackupDate backupServerName "
    "backupBillableSpaceGb backupProtectedDeviceList backupYear backupMonth ipAddress defaultGateway "
    "osType osInfo cpuSpeed ram localHardDrives parentConfigurationId vendor manufacturer questions "
    "activeFlag managementLink remoteLink sla mobileGuid displayVendorFlag companyLocationId "
    "showRemoteFlag showAutomateFlag needsRenewalFlag manufacturerPartNumber _info customFields"
)
CONFIGURATION_REFS = _words(
    "type status company contact site location department installedBy vendor manufacturer sla"
)
COMPANY_FIELDS = _words(
    "id identifier name status addressLine1 addressLine2 city state zip country phoneNumber faxNumber "
    "website territory market accountNumber defaultContact dateAcquired sicCode parentCompany "
    "annualRevenue numberOfEmployees yearEstablished revenueYear ownershipType timeZoneSetup leadSource "
    "leadFlag unsubscribeFlag calendar vendorIdentifier taxIdentifier taxCode billingTerms "
    "invoiceTemplate pricingSchedule companyEntityType billToCompany billingSite billingContact "
    "invoiceDeliveryMethod invoiceToEmailAddress invoiceCCEmailAddress deletedFlag dateDeleted "
    "deletedBy mobileGuid facebookUrl twitterUrl linkedInUrl currency territoryManager "
    "resellerIdentifier isVendorFlag types site integratorTags _info customFields"
)
AGREEMENT_FIELDS = _words(
    "id name type company contact site subContractCompany subContractContact parentAgreement customerPO "
    "location department startDate endDate noEndingDateFlag opportunity cancelledFlag dateCancelled "
    "reasonCancelled sla workOrder internalNotes applicationUnits applicationLimit applicationCycle "
    "billingCycle billAmount billStartDate prorateFlag invoiceProratedAdditionsFlag invoiceDescription "
    "billTime billExpenses billProducts agreementStatus _info customFields"
)
BOARD_FIELDS = _words("id name location department inactiveFlag projectFlag _info")
STATUS_FIELDS = _words(
    "id name board sortOrder displayOnBoard inactive closedStatus timeEntryNotAllowed defaultFlag "
    "escalationStatus customerPortalDescription customerPortalFlag _info"
)
TYPE_FIELDS = _words(
    "id name category defaultFlag inactiveFlag requestForChangeFlag integrationXref board _info"
)
PRIORITY_FIELDS = _words("id name color sortOrder defaultFlag imageLink urgencySortOrder level _info")
CATALOG_FIELDS = _words(
    "id identifier description inactiveFlag subcategory type productClass serializedFlag unitOfMeasure "
    "price cost taxableFlag customerDescription recurringFlag recurringRevenue recurringCost "
    "integrationXRef _info customFields"
)
CONFIGURATION_TYPE_FIELDS = _words("id name inactiveFlag systemFlag _info")
READ_ONLY = frozenset({"id", "_info"})
BILL_CUSTOMER = ("Billable", "DoNotBill", "NoCharge")


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class ManageApiError(Exception):
    """Raised inside handlers; rendered as Manage's ErrorResponseMessage."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        body = {"code": self.code, "message": self.message, "errors": self.errors}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def invalid(resource: str, field_name: str, message: str, code: str = "InvalidField") -> ManageApiError:
    return ManageApiError(
        400,
        "InvalidObject",
        f"{resource} object is invalid",
        [{"code": code, "message": message, "resource": resource, "field": field_name}],
    )


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


class _Parser:
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
    return _Parser(text, fields).parse()


def _lookup(row: Row, path: tuple[str, ...]) -> Any:
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
            value = _lookup(row, path)
            return value is not None and needle in str(value).casefold()

    elif op == "like":
        regex = _like_regex(wanted)

        def test(row: Row) -> bool:
            value = _lookup(row, path)
            return value is not None and regex.fullmatch(str(value)) is not None

    elif op == "in":
        options = wanted

        def test(row: Row) -> bool:
            value = _lookup(row, path)
            return any(_compare(value, "=", option) for option in options)

    else:

        def test(row: Row) -> bool:
            return _compare(_lookup(row, path), op, wanted)

    if negate:
        return lambda row: not test(row)
    return test


def _equality_hint(node: Any, path: tuple[str, ...]) -> int | None:
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


# ---------------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------------


class Table:
    """Rows by id (ids only grow, so `ids` stays sorted), with company and parent indexes."""

    def __init__(self, name: str, fields: frozenset[str], *, parent_field: str | None = None) -> None:
        self.name = name
        self.fields = fields
        self.parent_field = parent_field
        self.rows: dict[int, Row] = {}
        self.ids: list[int] = []
        self.by_company: defaultdict[int, list[int]] = defaultdict(list)
        self.by_parent: defaultdict[int, list[int]] = defaultdict(list)
        self.version = 0
        self._next = itertools.count(1)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows.values())

    def all(self) -> list[Row]:
        return list(self.rows.values())

    def get(self, row_id: int) -> Row | None:
        return self.rows.get(int(row_id))

    def insert(self, row: Row) -> Row:
        row_id = next(self._next)
        row["id"] = row_id
        self.rows[row_id] = row
        self.ids.append(row_id)
        company = row.get("company")
        if isinstance(company, dict) and isinstance(company.get("id"), int):
            self.by_company[company["id"]].append(row_id)
        if self.parent_field is not None:
            parent = _lookup(row, tuple(self.parent_field.split("/")))
            if isinstance(parent, int):
                self.by_parent[parent].append(row_id)
        self.version += 1
        return row

    def replace(self, row: Row) -> None:
        """Store an updated row (company/parent must not change: the fake never moves them)."""
        self.rows[row["id"]] = row
        self.version += 1

    def candidates(self, *, parent: int | None, company: int | None) -> list[int]:
        base = self.by_parent.get(parent, []) if parent is not None else self.ids
        if company is None:
            return base
        by_company = self.by_company.get(company, [])
        if parent is None:
            return by_company
        allowed = set(base)
        return [i for i in by_company if i in allowed]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _info(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    stamp = _now()
    return {"lastUpdated": stamp, "dateEntered": stamp, "enteredBy": "APIMember", **(extra or {})}


def _project(row: Row, fields: list[tuple[str, ...]]) -> Row:
    out: Row = {}
    for path in fields:
        value = _lookup(row, path)
        if value is None and not _has_path(row, path):
            continue
        target = out
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = copy.deepcopy(value)
    return out


def _has_path(row: Row, path: tuple[str, ...]) -> bool:
    value: Any = row
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


# ---------------------------------------------------------------------------------------------
# Faults and call records
# ---------------------------------------------------------------------------------------------


@dataclass
class Fault(ScriptedFault):
    """A scripted failure. `path` is API-relative (`/service/tickets`) and matches the concrete
    path or its route template (`/service/tickets/{id}`); `*` at the end matches a prefix."""

    ignore_case = False

    def response(self) -> JSONResponse:
        self.claim()
        if self.status == 429:
            wait = self.retry_after if self.retry_after is not None else 30
            return JSONResponse(
                {
                    "error": "ConnectWiseAPI",
                    "message": f"Too many requests. Please try again in {wait} seconds.",
                },
                status_code=429,
                headers={"Retry-After": retry_after_value(wait)},
            )
        if self.status >= 500:
            body = {
                "code": "UnexpectedServerError",
                "message": "An unexpected server error has occurred: Execution Timeout Expired. "
                "The timeout period elapsed prior to completion of the operation.",
                "errors": None,
            }
        else:
            body = {"code": "InjectedFault", "message": f"injected {self.status}", "errors": None}
        return JSONResponse(body, status_code=self.status, headers=self.retry_headers())


@dataclass
class DemoSeed:
    company_ids: list[int] = field(default_factory=list)
    agreement_ids: dict[int, int] = field(default_factory=dict)
    board_id: int = 0
    new_status_id: int = 0
    closed_status_id: int = 0
    priority_ids: dict[str, int] = field(default_factory=dict)
    type_ids: dict[str, int] = field(default_factory=dict)
    configuration_type_id: int = 0
    product_identifiers: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# The fake
# ---------------------------------------------------------------------------------------------

Handler = Callable[[Request, dict[str, int]], Any]


class ManageFake(AsgiFake, FaultHooks[Fault]):
    """One fake Manage tenant. Construct, seed, then point an adapter at `app` (`transport_factory`
    is a drop-in `ConnectionContext.transport_factory`: a fresh in-process transport per client)."""

    fault_type = Fault

    def __init__(
        self,
        *,
        company_id: str = "training",
        public_key: str = "fakepublic",
        private_key: str = "fakeprivate",
        client_id: str = "00000000-0000-4000-8000-00000000c11d",
        codebase: str = "v2025_1/",
        is_cloud: bool = False,
        company_name: str = "Fake MSP",
        version: str = "v2025.1.10431",
    ) -> None:
        self.company_id = company_id
        self.public_key = public_key
        self.private_key = private_key
        self.client_id = client_id
        self.codebase = codebase.strip("/") + "/"
        self.is_cloud = is_cloud
        self.company_name = company_name
        self.version = version
        self.latency = 0.0
        self.faults: list[Fault] = []
        self.calls: Counter[str] = Counter()
        self.requests: deque[RecordedRequest] = deque(maxlen=10_000)
        self.api_versions: Counter[str] = Counter()
        self.ignored_patch_ops: list[dict[str, Any]] = []
        self._agreement_types: dict[str, int] = {}
        self._match_cache: OrderedDict[tuple[Any, ...], list[int]] = OrderedDict()

        self.companies = Table("company", COMPANY_FIELDS)
        self.agreements = Table("agreement", AGREEMENT_FIELDS)
        self.boards = Table("board", BOARD_FIELDS)
        self.statuses = Table("boardStatus", STATUS_FIELDS, parent_field="board/id")
        self.types = Table("boardType", TYPE_FIELDS, parent_field="board/id")
        self.priorities = Table("priority", PRIORITY_FIELDS)
        self.tickets = Table("ticket", TICKET_FIELDS)
        self.notes = Table("serviceNote", NOTE_FIELDS, parent_field="ticketId")
        self.configurations = Table("configuration", CONFIGURATION_FIELDS)
        self.configuration_types = Table("configurationType", CONFIGURATION_TYPE_FIELDS)
        self.configuration_custom_fields: list[Row] = []
        self.products = Table("catalogItem", CATALOG_FIELDS)
        self.additions = Table("addition", ADDITION_FIELDS, parent_field="agreementId")

        self._routes: RouteTable[Handler] = RouteTable()
        self._build_routes()
        self.app = Starlette(
            routes=[
                Route(
                    "/{path:path}",
                    self._dispatch,
                    methods=["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS"],
                )
            ]
        )

    # -- credentials / urls -----------------------------------------------------------------

    def credentials(self) -> dict[str, str]:
        """Values for `ManageCredentials` that this fake accepts."""
        return {
            "company_id": self.company_id,
            "public_key": self.public_key,
            "private_key": self.private_key,
            "client_id": self.client_id,
        }

    @property
    def api_prefix(self) -> str:
        return f"/{self.codebase}apis/3.0"

    # -- seeding ----------------------------------------------------------------------------

    def add_company(self, name: str, identifier: str | None = None, **fields: Any) -> Row:
        row: Row = {
            "identifier": identifier or re.sub(r"[^A-Za-z0-9]", "", name)[:25] or "Company",
            "name": name,
            "status": {"id": 1, "name": "Active"},
            "deletedFlag": False,
            "types": [{"id": 1, "name": "Client"}],
            "_info": _info(),
            **fields,
        }
        return self.companies.insert(row)

    def add_companies(self, count: int, *, prefix: str = "Company") -> list[int]:
        """Bulk-seed `count` companies named `{prefix} {n}`; returns their ids."""
        start = len(self.companies) + 1
        return [
            self.add_company(f"{prefix} {n}", f"{prefix[:10]}{n}")["id"] for n in range(start, start + count)
        ]

    def _company_ref(self, company_id: int) -> Row:
        company = self.companies.get(company_id)
        if company is None:
            raise KeyError(f"no company {company_id}")
        return {"id": company["id"], "identifier": company["identifier"], "name": company["name"]}

    def add_agreement(
        self,
        company_id: int,
        name: str = "Managed Services",
        *,
        type_name: str = "Managed Services",
        status: str = "Active",
        **fields: Any,
    ) -> Row:
        type_id = self._agreement_types.setdefault(type_name, len(self._agreement_types) + 1)
        row: Row = {
            "name": name,
            "type": {"id": type_id, "name": type_name},
            "company": self._company_ref(company_id),
            "contact": {"id": 1, "name": "Primary Contact"},
            "agreementStatus": status,
            "cancelledFlag": status == "Cancelled",
            "startDate": "2024-01-01T00:00:00Z",
            "noEndingDateFlag": True,
            "billAmount": 0.0,
            "_info": _info(),
            **fields,
        }
        return self.agreements.insert(row)

    def add_board(
        self,
        name: str,
        *,
        statuses: Iterable[tuple[str, bool]] = (("New", False), ("In Progress", False), ("Closed", True)),
        types: Iterable[str] = ("Alert", "Incident"),
        inactive: bool = False,
    ) -> Row:
        board = self.boards.insert(
            {
                "name": name,
                "location": {"id": 1, "name": "Main"},
                "department": {"id": 1, "name": "Service"},
                "inactiveFlag": inactive,
                "projectFlag": False,
                "_info": _info(),
            }
        )
        for index, (status_name, closed) in enumerate(statuses):
            self.add_board_status(board["id"], status_name, closed=closed, default=index == 0)
        for type_name in types:
            self.add_board_type(board["id"], type_name)
        return board

    def add_board_status(
        self, board_id: int, name: str, *, closed: bool = False, default: bool = False, inactive: bool = False
    ) -> Row:
        board = self._require(self.boards, board_id)
        order = len(self.statuses.by_parent.get(board_id, []))
        return self.statuses.insert(
            {
                "name": name,
                "board": {"id": board["id"], "name": board["name"]},
                "sortOrder": order,
                "displayOnBoard": True,
                "inactive": inactive,
                "closedStatus": closed,
                "defaultFlag": default,
                "escalationStatus": "NotResponded",
                "_info": _info(),
            }
        )

    def add_board_type(self, board_id: int, name: str, *, inactive: bool = False) -> Row:
        board = self._require(self.boards, board_id)
        return self.types.insert(
            {
                "name": name,
                "category": "Reactive",
                "defaultFlag": False,
                "inactiveFlag": inactive,
                "requestForChangeFlag": False,
                "board": {"id": board["id"], "name": board["name"]},
                "_info": _info(),
            }
        )

    def add_priority(self, name: str, *, sort_order: int | None = None, default: bool = False) -> Row:
        return self.priorities.insert(
            {
                "name": name,
                "color": "Blue",
                "sortOrder": sort_order if sort_order is not None else len(self.priorities) + 1,
                "defaultFlag": default,
                "level": "NotApplicable",
                "_info": _info(),
            }
        )

    def add_configuration_type(self, name: str) -> Row:
        return self.configuration_types.insert(
            {"name": name, "inactiveFlag": False, "systemFlag": False, "_info": _info()}
        )

    def add_configuration_custom_field(self, caption: str, *, type: str = "Text") -> Row:
        """Define a custom field every configuration carries (existing ones get it too)."""
        definition = {
            "id": len(self.configuration_custom_fields) + 1,
            "caption": caption,
            "type": type,
            "entryMethod": "EntryField",
            "numberOfDecimals": 0,
        }
        self.configuration_custom_fields.append(definition)
        for config in self.configurations:
            config.setdefault("customFields", []).append({**definition, "value": None})
        return definition

    def _custom_fields(self) -> list[Row]:
        return [{**definition, "value": None} for definition in self.configuration_custom_fields]

    def add_configuration(
        self,
        company_id: int,
        name: str,
        *,
        type_id: int | None = None,
        serial_number: str | None = None,
        **fields: Any,
    ) -> Row:
        if type_id is None:
            type_id = (
                next(iter(self.configuration_types.ids), None)
                or self.add_configuration_type("Managed Workstation")["id"]
            )
        ctype = self._require(self.configuration_types, type_id)
        row: Row = {
            "name": name,
            "type": {"id": ctype["id"], "name": ctype["name"]},
            "status": {"id": 1, "name": "Active"},
            "company": self._company_ref(company_id),
            "serialNumber": serial_number,
            "activeFlag": True,
            "notes": None,
            "questions": [],
            "customFields": self._custom_fields(),
            "_info": _info(),
            **fields,
        }
        return self.configurations.insert(row)

    def add_product(
        self, identifier: str, description: str | None = None, *, price: float = 0.0, cost: float = 0.0
    ) -> Row:
        return self.products.insert(
            {
                "identifier": identifier,
                "description": description or identifier,
                "customerDescription": description or identifier,
                "inactiveFlag": False,
                "productClass": "Agreement",
                "serializedFlag": False,
                "price": price,
                "cost": cost,
                "recurringFlag": True,
                "_info": _info(),
            }
        )

    def add_addition(
        self,
        agreement_id: int,
        product_identifier: str,
        quantity: float,
        *,
        unit_price: float = 0.0,
        unit_cost: float = 0.0,
        description: str | None = None,
        **fields: Any,
    ) -> Row:
        agreement = self._require(self.agreements, agreement_id)
        product = self._product_by_identifier(product_identifier) or self.add_product(product_identifier)
        row = self._new_addition(
            agreement,
            product,
            {
                "quantity": quantity,
                "unitPrice": unit_price,
                "unitCost": unit_cost,
                "billCustomer": "Billable",
            },
        )
        if description is not None:
            row["description"] = description
        row.update(fields)
        return self.additions.insert(row)

    def add_ticket(self, company_id: int, board_id: int, summary: str, **fields: Any) -> Row:
        body: Row = {"summary": summary, "company": {"id": company_id}, "board": {"id": board_id}, **fields}
        return self._create_ticket(body)

    def seed_demo(self, *, companies: int = 12, devices_per_company: int = 0) -> DemoSeed:
        """A small, plausible tenant: companies with a managed-services agreement each, a service
        board with New/In Progress/Closed, priorities, ticket types, a configuration type and
        products for per-seat billing."""
        seed = DemoSeed()
        names = [
            "Acme Dental",
            "Blue Harbor Logistics",
            "Cedar Law Group",
            "Delta Machining",
            "Evergreen Clinic",
            "Fairview Schools",
            "Granite Accounting",
            "Harbor Marine",
            "Iris Architects",
            "Juniper Foods",
            "Keystone Realty",
            "Lakeside Vets",
        ]
        for n in range(companies):
            name = names[n] if n < len(names) else f"Client {n + 1}"
            company = self.add_company(name)
            seed.company_ids.append(company["id"])
            seed.agreement_ids[company["id"]] = self.add_agreement(company["id"], "Managed Services")["id"]
        board = self.add_board(
            "Security Alerts",
            statuses=(("New", False), ("In Progress", False), ("Waiting Customer", False), ("Closed", True)),
            types=("Security Alert", "Maintenance"),
        )
        seed.board_id = board["id"]
        board_statuses = [self.statuses.rows[i] for i in self.statuses.by_parent[board["id"]]]
        seed.new_status_id = board_statuses[0]["id"]
        seed.closed_status_id = next(s["id"] for s in board_statuses if s["closedStatus"])
        for name in ("Priority 1 - Critical", "Priority 2 - High", "Priority 3 - Normal", "Priority 4 - Low"):
            seed.priority_ids[name] = self.add_priority(name, default=name.startswith("Priority 3"))["id"]
        seed.type_ids = {self.types.rows[i]["name"]: i for i in self.types.by_parent[board["id"]]}
        seed.configuration_type_id = self.add_configuration_type("Managed Workstation")["id"]
        for identifier, price, cost in (("EDR-SEAT", 6.0, 2.5), ("AV-SEAT", 3.0, 1.0)):
            self.add_product(identifier, f"{identifier} per endpoint", price=price, cost=cost)
            seed.product_identifiers.append(identifier)
        for company_id in seed.company_ids:
            for d in range(devices_per_company):
                self.add_configuration(
                    company_id,
                    f"WS-{company_id:03d}-{d + 1:03d}",
                    type_id=seed.configuration_type_id,
                    serial_number=f"SN{company_id:04d}{d + 1:04d}",
                )
        return seed

    # -- fault injection and counters -------------------------------------------------------

    def fail_path(
        self,
        path: str,
        status: int = 500,
        *,
        method: str | None = None,
        times: int | None = None,
        after_apply: bool = False,
    ) -> Fault:
        """Every matching request (or only the next `times`) on `path` fails until `clear_faults()`."""
        return self._add_fault(Fault(status, times, method=method, path=path, after_apply=after_apply))

    def call_count(self, method: str | None = None, path: str | None = None) -> int:
        """Requests seen, optionally for one method and/or API-relative route template
        (e.g. `call_count("GET", "/company/companies")`, `"/service/tickets/{id}/notes"`)."""
        return count_calls(self.calls, method, path, ignore_case=False)

    def reset_calls(self) -> None:
        self.calls.clear()
        self.requests.clear()

    # -- accessors --------------------------------------------------------------------------

    def notes_for(self, ticket_id: int) -> list[Row]:
        return [self.notes.rows[i] for i in self.notes.by_parent.get(ticket_id, [])]

    def additions_for(self, agreement_id: int) -> list[Row]:
        return [self.additions.rows[i] for i in self.additions.by_parent.get(agreement_id, [])]

    def tickets_for(self, company_id: int) -> list[Row]:
        return [self.tickets.rows[i] for i in self.tickets.by_company.get(company_id, [])]

    # -- routing ----------------------------------------------------------------------------

    def _build_routes(self) -> None:
        r = self._routes.add
        r("GET", "/system/info", self._system_info)
        listing: list[tuple[str, Table, str | None]] = [
            ("/company/companies", self.companies, None),
            ("/finance/agreements", self.agreements, None),
            ("/service/boards", self.boards, None),
            ("/service/boards/{parentId}/statuses", self.statuses, "parentId"),
            ("/service/boards/{parentId}/types", self.types, "parentId"),
            ("/service/priorities", self.priorities, None),
            ("/service/tickets", self.tickets, None),
            ("/service/tickets/{parentId}/notes", self.notes, "parentId"),
            ("/company/configurations", self.configurations, None),
            ("/company/configurations/types", self.configuration_types, None),
            ("/procurement/catalog", self.products, None),
            ("/finance/agreements/{parentId}/additions", self.additions, "parentId"),
        ]
        for template, table, parent in listing:
            r("GET", template + "/count", self._counter(table, parent))
            r("GET", template, self._lister(table, parent))
            r("GET", template + "/{id}", self._getter(table, parent))
        r("POST", "/service/tickets/search", self._ticket_search)
        r("POST", "/service/tickets", self._post_ticket)
        r("PATCH", "/service/tickets/{id}", self._patch_ticket)
        r("POST", "/service/tickets/{parentId}/notes", self._post_note)
        r("POST", "/company/configurations", self._post_configuration)
        r("PATCH", "/company/configurations/{id}", self._patch_configuration)
        r("POST", "/finance/agreements/{parentId}/additions", self._post_addition)
        r("PATCH", "/finance/agreements/{parentId}/additions/{id}", self._patch_addition)

    async def _dispatch(self, request: Request) -> Response:
        if self.latency:
            await asyncio.sleep(self.latency)
        path = "/" + request.path_params["path"]
        method = request.method.upper()
        if method == "GET" and path.lower().startswith("/login/companyinfo/"):
            self.calls["GET /login/companyinfo/{companyId}"] += 1
            return self._company_info(path.rsplit("/", 1)[-1])
        prefix = self.api_prefix
        if not path.startswith(prefix + "/"):
            self.calls[f"{method} {path}"] += 1
            return ManageApiError(404, "NotFound", f"The resource {path} was not found").response()
        api_path = path[len(prefix) :]
        route = self._routes.match(method, api_path)
        template = route.template
        self.calls[f"{method} {template}"] += 1
        body = decode_body(await request.body())
        status = 0
        try:
            fault = first_fault(self.faults, method, api_path, template)
            if fault is not None:
                early: Response = fault.response()
                status = early.status_code
                return early
            self._authenticate(request)
            if route.handler is None:
                if route.known:
                    raise ManageApiError(405, "MethodNotAllowed", f"{method} is not allowed on {api_path}")
                raise ManageApiError(404, "NotFound", f"The resource {api_path} was not found")
            if isinstance(body, str):
                raise ManageApiError(400, "InvalidObject", "The request body is not valid JSON")
            request.state.json = body
            result = route.handler(request, route.params)
            response: Response = result if isinstance(result, Response) else JSONResponse(result)
            fault = first_fault(self.faults, method, api_path, template, after_apply=True)
            if fault is not None:
                response = fault.response()
            status = response.status_code
            return response
        except ManageApiError as error:
            status = error.status
            return error.response()
        finally:
            self.requests.append(RecordedRequest.of(request, method, api_path, template, body, status))

    def _authenticate(self, request: Request) -> None:
        accept = request.headers.get("accept", "")
        version = re.search(r"version=([0-9.]+)", accept)
        if version:
            self.api_versions[version.group(1)] += 1
        auth = request.headers.get("authorization", "")
        expected = base64.b64encode(
            f"{self.company_id}+{self.public_key}:{self.private_key}".encode()
        ).decode()
        if not auth.startswith("Basic ") or auth[6:].strip() != expected:
            raise ManageApiError(401, "Unauthorized", "Your credentials are invalid.")
        if request.headers.get("clientid") != self.client_id:
            raise ManageApiError(
                401, "Unauthorized", "A valid clientId is required. See developer.connectwise.com/ClientID"
            )

    def _company_info(self, company: str) -> Response:
        if company.lower() != self.company_id.lower():
            return JSONResponse(None)
        return JSONResponse(
            {
                "CompanyName": self.company_name,
                "Codebase": self.codebase,
                "VersionCode": self.version.split(".")[0],
                "VersionNumber": self.version,
                "CompanyID": self.company_id,
                "IsCloud": self.is_cloud,
            }
        )

    def _system_info(self, request: Request, params: dict[str, int]) -> Row:
        return {
            "version": self.version,
            "isCloud": self.is_cloud,
            "serverTimeZone": "Eastern Standard Time",
            "cloudRegion": "NA" if self.is_cloud else None,
        }

    # -- generic reads ----------------------------------------------------------------------

    @staticmethod
    def _require(table: Table, row_id: int) -> Row:
        row = table.get(row_id)
        if row is None:
            raise ManageApiError(
                404, "NotFound", f"{table.name[0].upper()}{table.name[1:]} Id {row_id} not found"
            )
        return row

    def _filter(
        self, table: Table, conditions: str | None
    ) -> tuple[Predicate | None, int | None, int | None]:
        if not conditions:
            return None, None, None
        try:
            node = parse_conditions(conditions, table.fields)
        except ConditionError as exc:
            raise ManageApiError(
                400,
                "InvalidObject",
                "conditions is invalid",
                [
                    {
                        "code": "InvalidConditions",
                        "message": str(exc),
                        "resource": table.name,
                        "field": "conditions",
                    }
                ],
            ) from exc
        return (
            compile_conditions(node),
            _equality_hint(node, ("company", "id")),
            _equality_hint(node, ("id",)),
        )

    def _matching_ids(
        self, table: Table, parent: int | None, conditions: str | None, order_by: str | None
    ) -> list[int]:
        predicate, company, row_id = self._filter(table, conditions)
        key = (table.name, table.version, parent, conditions, order_by)
        cached = self._match_cache.get(key)
        if cached is not None:
            self._match_cache.move_to_end(key)
            return cached
        if row_id is not None:
            base = [row_id] if row_id in table.rows else []
        else:
            base = table.candidates(parent=parent, company=company)
        rows = table.rows
        if predicate is None:
            ids = list(base)
        else:
            ids = [i for i in base if predicate(rows[i])]
        if order_by:
            ids = self._ordered(table, ids, order_by)
        self._match_cache[key] = ids
        if len(self._match_cache) > 64:
            self._match_cache.popitem(last=False)
        return ids

    def _ordered(self, table: Table, ids: list[int], order_by: str) -> list[int]:
        for clause in reversed([c.strip() for c in order_by.split(",") if c.strip()]):
            parts = clause.split()
            if len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
                raise invalid(table.name, "orderBy", f"orderBy clause {clause!r} is invalid")
            try:
                path = _Parser(parts[0], table.fields).path()
            except ConditionError as exc:
                raise invalid(table.name, "orderBy", str(exc)) from exc
            reverse = len(parts) == 2 and parts[1].lower() == "desc"

            def sort_key(i: int, path: tuple[str, ...] = path) -> tuple[int, Any]:
                value = _lookup(table.rows[i], path)
                if value is None:
                    return (0, "")
                if isinstance(value, bool | int | float):
                    return (1, float(value))
                return (2, str(value).casefold())

            ids = sorted(ids, key=sort_key, reverse=reverse)
        return ids

    def _lister(self, table: Table, parent_param: str | None) -> Handler:
        def handler(request: Request, params: dict[str, int]) -> Response:
            parent = params.get(parent_param) if parent_param else None
            if parent_param is not None:
                self._require(self._parent_table(table), parent or 0)
            return self._list(table, request, parent, dict(request.query_params))

        return handler

    def _parent_table(self, table: Table) -> Table:
        return {
            "boardStatus": self.boards,
            "boardType": self.boards,
            "serviceNote": self.tickets,
            "addition": self.agreements,
        }[table.name]

    def _counter(self, table: Table, parent_param: str | None) -> Handler:
        def handler(request: Request, params: dict[str, int]) -> Row:
            parent = params.get(parent_param) if parent_param else None
            ids = self._matching_ids(table, parent, request.query_params.get("conditions"), None)
            return {"count": len(ids)}

        return handler

    def _getter(self, table: Table, parent_param: str | None) -> Handler:
        def handler(request: Request, params: dict[str, int]) -> Row:
            row = self._require(table, params["id"])
            if parent_param is not None and row["id"] not in table.by_parent.get(params[parent_param], []):
                raise ManageApiError(404, "NotFound", f"{table.name} Id {params['id']} not found")
            return self._shape(table, row, request.query_params.get("fields"))

        return handler

    def _shape(self, table: Table, row: Row, fields: str | None) -> Row:
        if not fields:
            return row
        paths = []
        for item in fields.split(","):
            item = item.strip()
            if not item:
                continue
            try:
                paths.append(_Parser(item, table.fields).path())
            except ConditionError as exc:
                raise invalid(table.name, "fields", str(exc)) from exc
        return _project(row, paths)

    def _list(self, table: Table, request: Request, parent: int | None, query: dict[str, str]) -> Response:
        try:
            page_size = int(query.get("pageSize", DEFAULT_PAGE_SIZE))
            page = int(query.get("page", 1))
            page_id = int(query.get("pageId", 0) or 0)
        except ValueError as exc:
            raise ManageApiError(400, "InvalidObject", "page, pageSize and pageId must be integers") from exc
        if page_size < 1 or page < 1:
            raise ManageApiError(400, "InvalidObject", "page and pageSize must be positive")
        page_size = min(page_size, MAX_PAGE_SIZE)
        conditions = query.get("conditions")
        order_by = query.get("orderBy")
        fields = query.get("fields")
        forward = request.headers.get("pagination-type", "").lower() == "forward-only"
        headers: dict[str, str] = {}
        if forward:
            if order_by:
                raise invalid(table.name, "orderBy", "orderBy is not supported with forward-only pagination")
            items = self._forward_page(table, parent, conditions, page_id, page_size)
            if items:
                next_url = request.url.remove_query_params("page").include_query_params(
                    pageId=items[-1]["id"]
                )
                headers["Link"] = f'<{next_url}>; rel="next"'
        else:
            ids = self._matching_ids(table, parent, conditions, order_by)
            start = (page - 1) * page_size
            items = [table.rows[i] for i in ids[start : start + page_size]]
            last = max(1, -(-len(ids) // page_size))
            links = []
            if page > 1:
                links.append((1, "first"))
                links.append((min(page - 1, last), "prev"))
            if page < last:
                links.append((page + 1, "next"))
                links.append((last, "last"))
            if links:
                headers["Link"] = ", ".join(
                    f'<{request.url.include_query_params(page=n, pageSize=page_size)}>; rel="{rel}"'
                    for n, rel in links
                )
        body = [self._shape(table, row, fields) for row in items]
        return JSONResponse(body, headers=headers)

    def _forward_page(
        self, table: Table, parent: int | None, conditions: str | None, page_id: int, size: int
    ) -> list[Row]:
        predicate, company, row_id = self._filter(table, conditions)
        if row_id is not None:
            base = [row_id] if row_id in table.rows else []
        else:
            base = table.candidates(parent=parent, company=company)
        start = bisect.bisect_right(base, page_id)
        out: list[Row] = []
        rows = table.rows
        for i in itertools.islice(base, start, None):
            row = rows[i]
            if predicate is None or predicate(row):
                out.append(row)
                if len(out) >= size:
                    break
        return out

    def _ticket_search(self, request: Request, params: dict[str, int]) -> Response:
        body = request.state.json or {}
        if not isinstance(body, dict):
            raise ManageApiError(400, "InvalidObject", "search body must be an object")
        query = {
            k: str(v) for k, v in body.items() if k in ("conditions", "orderBy", "fields", "page", "pageSize")
        }
        query.update({k: v for k, v in request.query_params.items() if k in ("page", "pageSize", "pageId")})
        return self._list(self.tickets, request, None, query)

    # -- write validation -------------------------------------------------------------------

    def _check_body(
        self, body: Any, resource: str, fields: frozenset[str], refs: frozenset[str], required: Iterable[str]
    ) -> Row:
        if not isinstance(body, dict):
            raise ManageApiError(
                400, "InvalidObject", f"{resource} object is invalid: expected a JSON object"
            )
        for key in body:
            if key not in fields:
                raise invalid(resource, key, f"{key} is not a valid field of {resource}", "UnknownField")
        for name in required:
            if body.get(name) in (None, ""):
                raise invalid(resource, name, f"The {name} field is required.", "MissingRequiredField")
        for name in refs & body.keys():
            self._check_ref(resource, name, body[name])
        return {k: v for k, v in body.items() if k not in READ_ONLY}

    @staticmethod
    def _check_ref(resource: str, name: str, value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, dict) or not ({"id", "identifier", "name"} & value.keys()):
            raise invalid(resource, name, f'{name} must be a reference object such as {{"id": 1}}')
        allowed = {"id", "identifier", "name", "_info", "sort", "serializedFlag"}
        unknown = value.keys() - allowed
        if unknown:
            raise invalid(resource, name, f"{name} has unknown properties {sorted(unknown)}", "UnknownField")
        if "id" in value and (not isinstance(value["id"], int) or isinstance(value["id"], bool)):
            raise invalid(resource, name, f"{name}/id must be an integer")

    def _resolve(self, resource: str, name: str, table: Table, ref: Row) -> Row:
        row: Row | None = None
        if "id" in ref:
            row = table.get(ref["id"])
        elif "identifier" in ref:
            wanted = str(ref["identifier"]).casefold()
            row = next((r for r in table if str(r.get("identifier", "")).casefold() == wanted), None)
        elif "name" in ref:
            wanted = str(ref["name"]).casefold()
            row = next((r for r in table if str(r.get("name", "")).casefold() == wanted), None)
        if row is None:
            raise invalid(resource, name, f"{name} {json.dumps(ref)} was not found", "InvalidReference")
        return row

    @staticmethod
    def _number(resource: str, name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid(resource, name, f"{name} must be a number")
        return float(value)

    @staticmethod
    def _text(resource: str, name: str, value: Any, max_length: int | None = None) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise invalid(resource, name, f"{name} must be a string")
        if max_length is not None and len(value) > max_length:
            raise invalid(
                resource, name, f"{name} cannot be longer than {max_length} characters", "MaxLength"
            )
        return value

    def _patch_ops(self, resource: str, fields: frozenset[str], body: Any) -> list[tuple[str, str, Any]]:
        if not isinstance(body, list) or not body:
            raise ManageApiError(
                400, "InvalidObject", "The patch body must be a non-empty JSON array of operations"
            )
        ops: list[tuple[str, str, Any]] = []
        for op in body:
            if (
                not isinstance(op, dict)
                or not {"op", "path"} <= op.keys()
                or op.keys() - {"op", "path", "value"}
            ):
                raise ManageApiError(400, "InvalidObject", "Each patch operation must be {op, path, value}")
            kind = str(op["op"]).lower()
            if kind not in ("add", "replace", "remove"):
                raise invalid(resource, "op", f"Unsupported patch operation {op['op']!r}")
            path = str(op["path"]).lstrip("/")
            if "/" in path:
                self.ignored_patch_ops.append(op)  # Manage answers 200 and changes nothing
                continue
            if path not in fields:
                raise invalid(resource, path, f"{path} is not a valid field of {resource}", "UnknownField")
            if path in READ_ONLY:
                raise invalid(resource, path, f"{path} is read-only")
            if kind != "remove" and "value" not in op:
                raise invalid(resource, path, "A value is required")
            ops.append((kind, path, op.get("value")))
        return ops

    # -- tickets ----------------------------------------------------------------------------

    def _board_status(self, board_id: int, ref: Row | None) -> Row:
        statuses = [self.statuses.rows[i] for i in self.statuses.by_parent.get(board_id, [])]
        if ref is None:
            default = next((s for s in statuses if s["defaultFlag"]), None) or (
                statuses[0] if statuses else None
            )
            if default is None:
                raise invalid("ticket", "status", f"board {board_id} has no statuses")
            return default
        for status in statuses:
            if ("id" in ref and status["id"] == ref["id"]) or (
                "id" not in ref and str(ref.get("name", "")).casefold() == status["name"].casefold()
            ):
                if status["inactive"]:
                    raise invalid("ticket", "status", f"status {status['name']} is inactive")
                return status
        raise invalid("ticket", "status", f"status {json.dumps(ref)} is not a status of board {board_id}")

    def _apply_status(self, ticket: Row, status: Row) -> None:
        ticket["status"] = {"id": status["id"], "name": status["name"], "sort": status["sortOrder"]}
        if status["closedStatus"]:
            if not ticket.get("closedFlag"):
                ticket["closedFlag"] = True
                ticket["closedDate"] = _now()
                ticket["closedBy"] = "APIMember"
        else:
            ticket["closedFlag"] = False
            ticket["closedDate"] = None
            ticket["closedBy"] = None

    def _create_ticket(self, body: Any) -> Row:
        data = self._check_body(body, "ticket", TICKET_FIELDS, TICKET_REFS, ("summary", "company"))
        self._text("ticket", "summary", data["summary"], 100)
        self._text("ticket", "externalXRef", data.get("externalXRef"), 100)
        company = self._resolve("ticket", "company", self.companies, data["company"])
        if data.get("board"):
            board = self._resolve("ticket", "board", self.boards, data["board"])
        elif self.boards.ids:
            board = self.boards.rows[self.boards.ids[0]]
        else:
            raise invalid("ticket", "board", "No service board given and no default board is set up")
        if board.get("inactiveFlag"):
            raise invalid("ticket", "board", f"board {board['name']} is inactive")
        status = self._board_status(board["id"], data.get("status"))
        priority_ref = data.get("priority")
        priority: Row | None
        if priority_ref:
            priority = self._resolve("ticket", "priority", self.priorities, priority_ref)
        else:
            defaults = [p for p in self.priorities if p["defaultFlag"]] or self.priorities.all()
            priority = defaults[0] if defaults else None
        ticket_type = None
        if data.get("type"):
            ticket_type = self._resolve("ticket", "type", self.types, data["type"])
            if ticket_type["board"]["id"] != board["id"]:
                raise invalid(
                    "ticket", "type", f"type {ticket_type['id']} is not a type of board {board['id']}"
                )
        initial = {
            k: data.pop(k, None)
            for k in ("initialDescription", "initialInternalAnalysis", "initialResolution")
        }
        data.pop("initialDescriptionFrom", None)
        ticket: Row = {
            "recordType": "ServiceTicket",
            **data,
            "summary": data["summary"],
            "board": {"id": board["id"], "name": board["name"]},
            "company": {"id": company["id"], "identifier": company["identifier"], "name": company["name"]},
            "priority": {"id": priority["id"], "name": priority["name"], "sort": priority["sortOrder"]}
            if priority
            else None,
            "type": {"id": ticket_type["id"], "name": ticket_type["name"]} if ticket_type else None,
            "closedFlag": False,
            "_info": _info(),
        }
        self._apply_status(ticket, status)
        self.tickets.insert(ticket)
        for key, flag in (
            ("initialDescription", "detailDescriptionFlag"),
            ("initialInternalAnalysis", "internalAnalysisFlag"),
            ("initialResolution", "resolutionFlag"),
        ):
            if initial[key]:
                self._insert_note(ticket["id"], {"text": initial[key], flag: True})
        return ticket

    def _post_ticket(self, request: Request, params: dict[str, int]) -> Response:
        return JSONResponse(self._create_ticket(request.state.json), status_code=201)

    def _patch_ticket(self, request: Request, params: dict[str, int]) -> Row:
        ticket = self._require(self.tickets, params["id"])
        updated = copy.deepcopy(ticket)
        for kind, path, value in self._patch_ops("ticket", TICKET_FIELDS, request.state.json):
            if path in ("initialDescription", "initialInternalAnalysis", "initialResolution"):
                raise invalid("ticket", path, f"{path} can only be set when the ticket is created")
            if kind == "remove":
                if path in ("summary", "company", "board", "status"):
                    raise invalid("ticket", path, f"The {path} field is required.", "MissingRequiredField")
                updated.pop(path, None)
                continue
            if path in TICKET_REFS:
                self._check_ref("ticket", path, value)
            if path == "status":
                self._apply_status(updated, self._board_status(updated["board"]["id"], value))
            elif path == "summary":
                if not value:
                    raise invalid(
                        "ticket", "summary", "The summary field is required.", "MissingRequiredField"
                    )
                updated["summary"] = self._text("ticket", "summary", value, 100)
            elif path == "priority":
                priority = self._resolve("ticket", "priority", self.priorities, value)
                updated["priority"] = {
                    "id": priority["id"],
                    "name": priority["name"],
                    "sort": priority["sortOrder"],
                }
            elif path == "type":
                ticket_type = self._resolve("ticket", "type", self.types, value)
                if ticket_type["board"]["id"] != updated["board"]["id"]:
                    raise invalid("ticket", "type", f"type {ticket_type['id']} is not a type of this board")
                updated["type"] = {"id": ticket_type["id"], "name": ticket_type["name"]}
            elif path in ("company", "board"):
                raise invalid("ticket", path, f"changing {path} is not supported by this fake")
            else:
                updated[path] = value
        updated["_info"] = {**updated.get("_info", {}), "lastUpdated": _now()}
        self.tickets.replace(updated)
        return updated

    # -- notes ------------------------------------------------------------------------------

    def _insert_note(self, ticket_id: int, data: Row) -> Row:
        note: Row = {
            "ticketId": ticket_id,
            "detailDescriptionFlag": False,
            "internalAnalysisFlag": False,
            "resolutionFlag": False,
            "issueFlag": False,
            "customerUpdatedFlag": False,
            "processNotifications": True,
            "internalFlag": False,
            "externalFlag": False,
            **data,
            "dateCreated": _now(),
            "createdBy": "APIMember",
            "member": {"id": 1, "identifier": "APIMember", "name": "API Member"},
            "_info": _info(),
        }
        if note["internalAnalysisFlag"]:
            note["internalFlag"] = True
        if note["detailDescriptionFlag"] or note["resolutionFlag"]:
            note["externalFlag"] = True
        return self.notes.insert(note)

    def _post_note(self, request: Request, params: dict[str, int]) -> Response:
        ticket = self._require(self.tickets, params["parentId"])
        data = self._check_body(request.state.json, "serviceNote", NOTE_FIELDS, NOTE_REFS, ("text",))
        self._text("serviceNote", "text", data["text"])
        for flag in (
            "detailDescriptionFlag",
            "internalAnalysisFlag",
            "resolutionFlag",
            "issueFlag",
            "processNotifications",
            "customerUpdatedFlag",
            "internalFlag",
            "externalFlag",
        ):
            if flag in data and data[flag] is not None and not isinstance(data[flag], bool):
                raise invalid("serviceNote", flag, f"{flag} must be a boolean")
        if not any(data.get(f) for f in ("detailDescriptionFlag", "internalAnalysisFlag", "resolutionFlag")):
            raise invalid(
                "serviceNote",
                "detailDescriptionFlag",
                "One of detailDescriptionFlag, internalAnalysisFlag or resolutionFlag must be true",
            )
        data.pop("ticketId", None)
        note = self._insert_note(ticket["id"], data)
        return JSONResponse(note, status_code=201)

    # -- configurations ---------------------------------------------------------------------

    def _post_configuration(self, request: Request, params: dict[str, int]) -> Response:
        data = self._check_body(
            request.state.json,
            "configuration",
            CONFIGURATION_FIELDS,
            CONFIGURATION_REFS,
            ("name", "type", "company"),
        )
        self._text("configuration", "name", data["name"], 100)
        self._text("configuration", "serialNumber", data.get("serialNumber"), 250)
        self._text("configuration", "notes", data.get("notes"))
        company = self._resolve("configuration", "company", self.companies, data["company"])
        ctype = self._resolve("configuration", "type", self.configuration_types, data["type"])
        custom = self._custom_fields()
        if "customFields" in data:
            custom = self._merge_custom_fields(custom, data.pop("customFields"))
        row: Row = {
            "status": {"id": 1, "name": "Active"},
            "activeFlag": True,
            "questions": [],
            **data,
            "company": self._company_ref(company["id"]),
            "type": {"id": ctype["id"], "name": ctype["name"]},
            "customFields": custom,
            "_info": _info(),
        }
        return JSONResponse(self.configurations.insert(row), status_code=201)

    def _merge_custom_fields(self, current: list[Row], value: Any) -> list[Row]:
        if not isinstance(value, list):
            raise invalid("configuration", "customFields", "customFields must be an array")
        by_id = {cf["id"]: dict(cf) for cf in current}
        for item in value:
            if not isinstance(item, dict) or not isinstance(item.get("id"), int):
                raise invalid("configuration", "customFields", "each custom field needs its integer id")
            extra = item.keys() - {
                "id",
                "caption",
                "type",
                "entryMethod",
                "numberOfDecimals",
                "value",
                "connectWiseId",
            }
            if extra:
                raise invalid(
                    "configuration", "customFields", f"unknown custom field properties {sorted(extra)}"
                )
            if item["id"] not in by_id:
                raise invalid("configuration", "customFields", f"custom field {item['id']} does not exist")
            by_id[item["id"]]["value"] = item.get("value")
        return list(by_id.values())

    def _patch_configuration(self, request: Request, params: dict[str, int]) -> Row:
        config = self._require(self.configurations, params["id"])
        updated = copy.deepcopy(config)
        for kind, path, value in self._patch_ops("configuration", CONFIGURATION_FIELDS, request.state.json):
            if kind == "remove":
                if path in ("name", "type", "company"):
                    raise invalid(
                        "configuration", path, f"The {path} field is required.", "MissingRequiredField"
                    )
                updated[path] = None
                continue
            if path in CONFIGURATION_REFS:
                self._check_ref("configuration", path, value)
            if path == "customFields":
                updated["customFields"] = self._merge_custom_fields(updated.get("customFields") or [], value)
            elif path == "type":
                ctype = self._resolve("configuration", "type", self.configuration_types, value)
                updated["type"] = {"id": ctype["id"], "name": ctype["name"]}
            elif path == "company":
                raise invalid("configuration", path, "changing company is not supported by this fake")
            elif path in ("name", "serialNumber", "notes", "deviceIdentifier", "osType", "osInfo"):
                limit = {
                    "name": 100,
                    "serialNumber": 250,
                    "deviceIdentifier": 100,
                    "osType": 250,
                    "osInfo": 250,
                }
                updated[path] = self._text("configuration", path, value, limit.get(path))
            else:
                updated[path] = value
        updated["_info"] = {**updated.get("_info", {}), "lastUpdated": _now()}
        self.configurations.replace(updated)
        return updated

    # -- additions --------------------------------------------------------------------------

    def _product_by_identifier(self, identifier: str) -> Row | None:
        wanted = identifier.casefold()
        return next((p for p in self.products if str(p["identifier"]).casefold() == wanted), None)

    def _new_addition(self, agreement: Row, product: Row, data: Row) -> Row:
        quantity = float(data.get("quantity") or 0.0)
        unit_price = (
            float(data["unitPrice"]) if data.get("unitPrice") is not None else float(product["price"])
        )
        unit_cost = float(data["unitCost"]) if data.get("unitCost") is not None else float(product["cost"])
        row: Row = {
            "lessIncluded": 0.0,
            "taxableFlag": False,
            "purchaseItemFlag": False,
            "specialOrderFlag": False,
            "description": product["description"],
            "uom": "Each",
            "sequenceNumber": float(len(self.additions.by_parent.get(agreement["id"], [])) + 1),
            "prorateCurrentPeriodFlag": False,
            "effectiveDate": agreement.get("startDate"),
            "cancelledDate": None,
            **data,
            "product": {"id": product["id"], "identifier": product["identifier"], "serializedFlag": False},
            "agreementId": agreement["id"],
            "agreementStatus": agreement.get("agreementStatus", "Active"),
            "quantity": quantity,
            "unitPrice": unit_price,
            "unitCost": unit_cost,
            "_info": _info(),
        }
        self._recompute_addition(row)
        return row

    @staticmethod
    def _recompute_addition(row: Row) -> None:
        quantity = float(row.get("quantity") or 0.0)
        row["billedQuantity"] = quantity
        row["extPrice"] = round(quantity * float(row.get("unitPrice") or 0.0), 2)
        row["extCost"] = round(quantity * float(row.get("unitCost") or 0.0), 2)
        row["margin"] = round(row["extPrice"] - row["extCost"], 2)

    def _check_addition_values(self, data: Row) -> None:
        for name in ("quantity", "unitPrice", "unitCost", "lessIncluded"):
            if name in data and data[name] is not None:
                self._number("addition", name, data[name])
        if "billCustomer" in data and data["billCustomer"] not in BILL_CUSTOMER:
            raise invalid(
                "addition", "billCustomer", f"billCustomer must be one of {', '.join(BILL_CUSTOMER)}"
            )
        self._text("addition", "invoiceDescription", data.get("invoiceDescription"), 6000)
        self._text("addition", "description", data.get("description"))
        self._text("addition", "serialNumber", data.get("serialNumber"), 50)

    def _post_addition(self, request: Request, params: dict[str, int]) -> Response:
        agreement = self._require(self.agreements, params["parentId"])
        data = self._check_body(
            request.state.json, "addition", ADDITION_FIELDS, ADDITION_REFS, ("product", "billCustomer")
        )
        self._check_addition_values(data)
        product = self._resolve("addition", "product", self.products, data.pop("product"))
        data.pop("agreementId", None)
        row = self._new_addition(agreement, product, data)
        return JSONResponse(self.additions.insert(row), status_code=201)

    def _patch_addition(self, request: Request, params: dict[str, int]) -> Row:
        self._require(self.agreements, params["parentId"])
        addition = self._require(self.additions, params["id"])
        if addition["agreementId"] != params["parentId"]:
            raise ManageApiError(404, "NotFound", f"Addition Id {params['id']} not found")
        updated = copy.deepcopy(addition)
        for kind, path, value in self._patch_ops("addition", ADDITION_FIELDS, request.state.json):
            if kind == "remove":
                if path in ("product", "billCustomer"):
                    raise invalid("addition", path, f"The {path} field is required.", "MissingRequiredField")
                updated[path] = None
                continue
            if path in ADDITION_REFS:
                self._check_ref("addition", path, value)
            if path == "product":
                product = self._resolve("addition", "product", self.products, value)
                updated["product"] = {
                    "id": product["id"],
                    "identifier": product["identifier"],
                    "serializedFlag": False,
                }
            elif path in (
                "agreementId",
                "extPrice",
                "extCost",
                "margin",
                "billedQuantity",
                "agreementStatus",
            ):
                raise invalid("addition", path, f"{path} is read-only")
            else:
                self._check_addition_values({path: value})
                updated[path] = float(value) if path in ("quantity", "unitPrice", "unitCost") else value
        self._recompute_addition(updated)
        updated["_info"] = {**updated.get("_info", {}), "lastUpdated": _now()}
        self.additions.replace(updated)
        return updated


__all__ = [
    "ConditionError",
    "DemoSeed",
    "Fault",
    "ManageApiError",
    "ManageFake",
    "RecordedRequest",
    "Table",
    "compile_conditions",
    "parse_conditions",
]
