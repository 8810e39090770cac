"""Dashboard set-up pages: connections (a credential form generated from the adapter's own JSON
Schema, a live test, enable/disable, webhook secret rotation), ticket and billing rules picked from
the PSA catalog, API keys (admin) and the first-run checklist. Every write goes through the same
service functions as `/api/v1` (so validation, PSA checks and audit entries are the same); a bad
form value re-renders the page with a 422 naming the field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import ActionKind, AdapterSpec, CatalogKind, ProblemKind, Role
from connector.api.deps import ServicesDep, Session, after_commit
from connector.audit.domain import Actor
from connector.connections import service as connections
from connector.connections.api import webhook_url
from connector.connections.catalog import read_catalog
from connector.fleet import service as fleet
from connector.fleet import stats as fleet_stats
from connector.infra.context import Services
from connector.infra.errors import Conflict, FieldError, NotFound, VendorUnavailable
from connector.infra.logs import get_logger
from connector.infra.security.apikeys import ApiRole
from connector.models import Connection
from connector.rules import service as rules
from connector.tenants import service as tenants
from connector.web.auth import User, WebError, WebUser, check_csrf, read_form, require_engineer
from connector.web.render import redirect, render

log = get_logger("connector.web.setup")
router = APIRouter(include_in_schema=False)

FieldKind = Literal["string", "secret", "integer", "boolean", "enum"]


# -- forms generated from a JSON Schema (pure) ----------------------------------------------------


@dataclass(frozen=True)
class FormField:
    """One input of a form generated from a pydantic JSON Schema property."""

    name: str
    label: str
    kind: FieldKind
    required: bool
    description: str | None = None
    choices: tuple[str, ...] = ()
    default: Any = None
    nullable: bool = False
    """Optional with no value as its default (a flag then has three states: unset, true, false)."""


def _resolve(schema: Mapping[str, Any], prop: Mapping[str, Any]) -> Mapping[str, Any]:
    """A property with `$ref` and `anyOf [X, null]` (an optional field) unwrapped to X."""
    if "anyOf" in prop:
        options = [p for p in prop["anyOf"] if p.get("type") != "null"]
        if len(options) == 1:
            prop = {**{k: v for k, v in prop.items() if k != "anyOf"}, **options[0]}
    ref = prop.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = schema.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
        prop = {**target, **{k: v for k, v in prop.items() if k != "$ref"}}
    return prop


def schema_fields(schema: Mapping[str, Any]) -> list[FormField]:
    """The inputs of a credentials or options model, in declaration order: strings, secrets
    (`format: password`, write-only), integers, booleans and enums, with title, description,
    whether required and the default."""
    required = set(schema.get("required", ()))
    out: list[FormField] = []
    for name, raw in schema.get("properties", {}).items():
        prop = _resolve(schema, raw)
        kind: FieldKind = "string"
        choices: tuple[str, ...] = ()
        if "enum" in prop:
            kind, choices = "enum", tuple(str(v) for v in prop["enum"])
        elif prop.get("format") == "password" or prop.get("writeOnly"):
            kind = "secret"
        elif prop.get("type") == "integer":
            kind = "integer"
        elif prop.get("type") == "boolean":
            kind = "boolean"
        out.append(
            FormField(
                name=name,
                label=str(prop.get("title") or name.replace("_", " ").capitalize()),
                kind=kind,
                required=name in required,
                description=prop.get("description"),
                choices=choices,
                default=None if kind == "secret" else prop.get("default"),
                nullable=any(p.get("type") == "null" for p in raw.get("anyOf", ())),
            )
        )
    return out


def form_values(fields: list[FormField], form: Mapping[str, str], prefix: str) -> dict[str, Any]:
    """The submitted values of generated inputs named `prefix.name`, typed as the JSON API takes
    them: an empty optional input is left out (its default applies), an unchecked box is false, and
    an integer that does not parse is passed on as text so validation names the field."""
    out: dict[str, Any] = {}
    for f in fields:
        raw = form.get(f"{prefix}.{f.name}")
        if f.kind == "boolean" and f.nullable:
            if raw:
                out[f.name] = {"true": True, "false": False}.get(raw, raw)
            continue
        if f.kind == "boolean":
            out[f.name] = raw is not None
            continue
        value = (raw or "").strip() if f.kind != "secret" else (raw or "")
        if value == "":
            if f.required:
                out[f.name] = ""
            continue
        if f.kind == "integer":
            try:
                out[f.name] = int(value)
            except ValueError:
                out[f.name] = value
            continue
        out[f.name] = value
    return out


def sticky(fields: list[FormField], form: Mapping[str, str], prefix: str) -> dict[str, str]:
    """What to put back into a re-rendered form: everything but secrets (never shown back)."""
    return {
        f.name: form.get(f"{prefix}.{f.name}", "")
        for f in fields
        if f.kind != "secret" and f"{prefix}.{f.name}" in form
    }


def field_errors(exc: FieldError) -> list[dict[str, str]]:
    return list(exc.errors)


def error_text(errors: list[dict[str, str]]) -> str:
    return "; ".join(f"{e['field']}: {e['message']}" for e in errors)


# -- checklist ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChecklistItem:
    key: str
    text: str
    href: str
    done: bool


async def checklist(session: AsyncSession, tenant_id: str) -> list[ChecklistItem]:
    """What a new installation still needs before it works: an RMM, a PSA, a mapping and a rule."""
    rows = await connections.list_connections(session, tenant_id)
    roles = {row.role for row in rows}

    async def any_of(kind: rules.RuleKind[Any]) -> bool:
        return bool(await rules.list_rows(kind, session, tenant_id, limit=1, offset=0))

    has_rule = await any_of(rules.TICKET_RULES) or await any_of(rules.BILLING_RULES)
    return [
        ChecklistItem("rmm", "Add an RMM connection", "/setup/connections", "rmm" in roles),
        ChecklistItem("psa", "Add a PSA connection", "/setup/connections", "psa" in roles),
        ChecklistItem(
            "mapping", "Map an RMM client to a PSA company", "/mappings", await any_of(rules.CLIENT_MAPPINGS)
        ),
        ChecklistItem("rule", "Add a ticket or billing rule", "/setup/rules", has_rule),
    ]


@dataclass(frozen=True)
class DemoSystem:
    """A simulated vendor of `connector demo`, with what it takes to connect to it by hand."""

    title: str
    kind: str
    base_url: str
    credentials: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


def demo_systems(request: Request, user: WebUser | None) -> list[DemoSystem]:
    """Only for signed-in engineers: these are the demo fakes' credentials, not a real vendor's,
    but a viewer has no use for them."""
    if user is None or not user.is_engineer:
        return []
    raw = getattr(request.app.state, "demo_systems", None) or []
    return [
        DemoSystem(
            str(s["title"]),
            str(s["kind"]),
            str(s["base_url"]),
            dict(s.get("credentials", {})),
            dict(s.get("options", {})),
        )
        for s in raw
    ]


# -- connections ----------------------------------------------------------------------------------


def _actor(user: WebUser) -> Actor:
    return Actor.key(user.principal.api_key_id, dashboard=True)


def _spec(services: Services, kind: str | None) -> AdapterSpec | None:
    return services.registry.get(kind) if kind else None


@dataclass
class ConnectionsPage:
    kind: str | None = None
    values: dict[str, str] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    created: Connection | None = None
    secret: str | None = None
    secret_url: str | None = None
    tested: Connection | None = None
    test: connections.LiveCheck | None = None
    status: int = 200


async def _connections_page(
    request: Request, services: Services, session: AsyncSession, user: WebUser, page: ConnectionsPage
) -> Response:
    tenant_id = user.principal.tenant_id
    rows = await connections.list_connections(session, tenant_id)
    spec = _spec(services, page.kind)
    return render(
        request,
        "setup_connections.html",
        user,
        status=page.status,
        connections=[
            {
                "row": row,
                "credentials_set": connections.credentials_set(services, row),
                "webhook_url": webhook_url(services, row),
            }
            for row in rows
        ],
        specs=sorted(services.registry.all(), key=lambda s: (s.role.value, s.title)),
        spec=spec,
        credential_fields=schema_fields(spec.credentials_schema()) if spec else [],
        option_fields=schema_fields(spec.options_schema()) if spec else [],
        page=page,
        demo=demo_systems(request, user),
    )


@router.get("/setup")
async def setup_index(request: Request, session: Session, user: User) -> Response:
    return render(
        request,
        "setup_index.html",
        user,
        checklist=await checklist(session, user.principal.tenant_id),
        demo=demo_systems(request, user),
    )


@router.get("/setup/connections")
async def connections_page(
    request: Request, services: ServicesDep, session: Session, user: User, kind: str | None = None
) -> Response:
    page = ConnectionsPage(kind=kind if _spec(services, kind) else None)
    return await _connections_page(request, services, session, user, page)


@router.post("/setup/connections")
async def create_connection(
    request: Request, services: ServicesDep, session: Session, user: User
) -> Response:
    form = await read_form(request, max_fields=100)
    check_csrf(form, user.csrf)
    require_engineer(user)
    kind = form.get("kind", "")
    spec = _spec(services, kind)
    page = ConnectionsPage(kind=kind if spec else None, status=422)
    if spec is None:
        page.errors = [{"field": "kind", "message": "choose an installed adapter kind"}]
        return await _connections_page(request, services, session, user, page)
    creds, opts = schema_fields(spec.credentials_schema()), schema_fields(spec.options_schema())
    page.values = {
        "name": form.get("name", ""),
        "base_url": form.get("base_url", ""),
        **{f"credentials.{k}": v for k, v in sticky(creds, form, "credentials").items()},
        **{f"options.{k}": v for k, v in sticky(opts, form, "options").items()},
    }
    name = form.get("name", "").strip()
    if not name:
        page.errors = [{"field": "name", "message": "a name is required"}]
        return await _connections_page(request, services, session, user, page)
    try:
        async with session.begin_nested():
            row, secret = await connections.create_connection(
                services,
                session,
                user.principal.tenant_id,
                name=name[:200],
                kind=kind,
                base_url=form.get("base_url", "").strip() or None,
                credentials=form_values(creds, form, "credentials"),
                options=form_values(opts, form, "options"),
                enabled=True,
                actor=_actor(user),
            )
    except FieldError as exc:
        page.errors = field_errors(exc)
        return await _connections_page(request, services, session, user, page)
    log.info("dashboard connection created", connection_id=row.id, key_id=user.principal.api_key_id)
    done = ConnectionsPage(created=row, secret=secret, secret_url=webhook_url(services, row), status=201)
    return await _connections_page(request, services, session, user, done)


async def _own_connection(session: AsyncSession, user: WebUser, connection_id: str) -> Connection:
    try:
        return await connections.get_connection(session, user.principal.tenant_id, connection_id)
    except NotFound:
        raise WebError(404, "There is no such connection.") from None


@router.post("/setup/connections/{connection_id}/test")
async def test_connection(
    connection_id: str, request: Request, services: ServicesDep, session: Session, user: User
) -> Response:
    check_csrf(await read_form(request), user.csrf)
    require_engineer(user)
    row = await _own_connection(session, user, connection_id)
    check = await connections.check_live(services, row)
    page = ConnectionsPage(tested=row, test=check)
    return await _connections_page(request, services, session, user, page)


@router.post("/setup/connections/{connection_id}/{action}")
async def connection_action(
    connection_id: str, action: str, request: Request, services: ServicesDep, session: Session, user: User
) -> Response:
    check_csrf(await read_form(request), user.csrf)
    require_engineer(user)
    row = await _own_connection(session, user, connection_id)
    if action in ("enable", "disable"):
        changes = {"enabled": action == "enable"}
        await connections.update_connection(services, session, row, changes, _actor(user))
        after_commit(session, lambda: services.connection_changed(connection_id))
        return redirect("/setup/connections")
    if action == "webhook-secret":
        try:
            secret = await connections.rotate_webhook_secret(services, session, row, _actor(user))
        except FieldError as exc:
            raise WebError(422, error_text(field_errors(exc))) from None
        after_commit(session, lambda: services.connection_changed(connection_id))
        page = ConnectionsPage(created=row, secret=secret, secret_url=webhook_url(services, row))
        return await _connections_page(request, services, session, user, page)
    raise WebError(404, "There is no such action.")


# -- ticket and billing rules ---------------------------------------------------------------------

TICKET_PICKS = {
    "board_id": CatalogKind.BOARDS,
    "type_id": CatalogKind.TICKET_TYPES,
    "priority_id": CatalogKind.PRIORITIES,
    "status_new_id": CatalogKind.STATUSES,
    "status_closed_id": CatalogKind.STATUSES,
}
BILLING_PICKS = {"agreement_type": CatalogKind.AGREEMENT_TYPES, "psa_product_id": CatalogKind.PRODUCTS}
TICKET_TEXT = ("summary_template",)
TICKET_INTEGERS = ("note_interval_minutes",)
TICKET_CHOICES = {
    "problem": tuple(k.value for k in ProblemKind),
    "auto_action": tuple(a.value for a in ActionKind),
}
BILLING_TEXT = ("product", "description", "unit_price")
BILLING_INTEGERS = ("included_seats", "minimum_quantity")
BILLING_CHOICES = {
    "count_scope": ("protected", "installed", "console_seats"),
    "count_method": ("peak", "average", "end_of_period"),
    "billing_timing": ("current", "arrears", "prorated"),
}


def rule_body(
    form: Mapping[str, str],
    *,
    picks: Mapping[str, CatalogKind],
    text: tuple[str, ...],
    integers: tuple[str, ...],
    choices: Mapping[str, tuple[str, ...]],
    required: tuple[str, ...],
    clear_blanks: bool = False,
) -> dict[str, Any]:
    """A rule's API body from its form: empty optional inputs left out (on an edit, `clear_blanks`:
    set to none, so emptying a field clears it), counts as integers (text that does not parse is
    kept so validation names the field), the enabled box as a flag."""
    body: dict[str, Any] = {"psa_connection_id": form.get("psa_connection_id", "")}
    for name in (*picks, *text, *choices):
        value = form.get(name, "").strip()
        if value or name in required:
            body[name] = value
        elif clear_blanks:
            body[name] = None
    for name in integers:
        value = form.get(name, "").strip()
        if value:
            body[name] = int(value) if value.lstrip("-").isdigit() else value
    body["enabled"] = "enabled" in form
    return body


@dataclass(frozen=True)
class Picklists:
    items: dict[CatalogKind, list[Any]]
    error: str | None


async def picklists(services: Services, row: Connection | None, kinds: set[CatalogKind]) -> Picklists:
    """The PSA catalog lists the rule forms pick from; when the PSA cannot be read, the error (and
    the forms take typed ids, saved unchecked)."""
    if row is None:
        return Picklists({}, None)
    items: dict[CatalogKind, list[Any]] = {}
    try:
        for kind in sorted(kinds):
            items[kind] = (await read_catalog(services, row, kind)).items
    except (VendorUnavailable, FieldError) as exc:
        return Picklists({}, str(exc))
    return Picklists(items, None)


@dataclass
class RulesPage:
    psa: str | None = None
    edit_ticket: str | None = None
    edit_billing: str | None = None
    form: str | None = None
    values: dict[str, str] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    status: int = 200
    notice: str | None = None


def _rule_values(row: Any, names: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in names:
        value = getattr(row, name, None)
        if isinstance(value, bool):
            out[name] = "on" if value else ""
        elif value is not None:
            out[name] = str(value)
    return out


TICKET_FIELDS = (*TICKET_PICKS, *TICKET_TEXT, *TICKET_INTEGERS, *TICKET_CHOICES, "enabled")
BILLING_FIELDS = (*BILLING_PICKS, *BILLING_TEXT, *BILLING_INTEGERS, *BILLING_CHOICES, "enabled")


async def _rules_page(
    request: Request, services: Services, session: AsyncSession, user: WebUser, page: RulesPage
) -> Response:
    tenant_id = user.principal.tenant_id
    rows = await connections.list_connections(session, tenant_id)
    psas = [c for c in rows if c.role == Role.PSA.value]
    psa_row = next((c for c in psas if c.id == page.psa), psas[0] if psas else None)
    ticket_rules = await rules.list_rows(rules.TICKET_RULES, session, tenant_id, limit=500, offset=0)
    billing_rules = await rules.list_rows(rules.BILLING_RULES, session, tenant_id, limit=500, offset=0)
    ticket_values: dict[str, str] = {"enabled": "on", "summary_template": "{problem_title} on {hostname}"}
    billing_values: dict[str, str] = {"enabled": "on"}
    editing_ticket = next((r for r in ticket_rules if r.id == page.edit_ticket), None)
    editing_billing = next((r for r in billing_rules if r.id == page.edit_billing), None)
    if editing_ticket is not None:
        ticket_values = _rule_values(editing_ticket, TICKET_FIELDS)
        psa_row = next((c for c in psas if c.id == editing_ticket.psa_connection_id), psa_row)
    if editing_billing is not None:
        billing_values = _rule_values(editing_billing, BILLING_FIELDS)
        psa_row = next((c for c in psas if c.id == editing_billing.psa_connection_id), psa_row)
    if page.form == "ticket":
        ticket_values = page.values
    elif page.form == "billing":
        billing_values = page.values
    lists = await picklists(services, psa_row, {*TICKET_PICKS.values(), *BILLING_PICKS.values()})
    currency = await tenants.get_currency(session, tenant_id)
    return render(
        request,
        "setup_rules.html",
        user,
        status=page.status,
        psas=psas,
        psa_row=psa_row,
        names={c.id: c.name for c in rows},
        ticket_rules=ticket_rules,
        billing_rules=billing_rules,
        editing_ticket=editing_ticket,
        editing_billing=editing_billing,
        ticket_values=ticket_values,
        billing_values=billing_values,
        ticket_picks=TICKET_PICKS,
        billing_picks=BILLING_PICKS,
        ticket_choices=TICKET_CHOICES,
        billing_choices=BILLING_CHOICES,
        lists=lists,
        products=await fleet.reported_products(session, tenant_id),
        catalog_names={kind.value: {i.id: i.name for i in items} for kind, items in lists.items.items()},
        page=page,
        notice=page.notice,
        money_in=(currency.currency, currency.locale),
    )


@router.get("/setup/rules")
async def rules_page(
    request: Request,
    services: ServicesDep,
    session: Session,
    user: User,
    psa: str | None = None,
    edit_ticket: str | None = None,
    edit_billing: str | None = None,
    done: str | None = None,
) -> Response:
    page = RulesPage(psa=psa, edit_ticket=edit_ticket, edit_billing=edit_billing)
    page.notice = {"ticket": "Ticket rule saved.", "billing": "Billing rule saved."}.get(done or "")
    return await _rules_page(request, services, session, user, page)


async def _save_rule(
    request: Request,
    services: Services,
    session: AsyncSession,
    user: WebUser,
    which: Literal["ticket", "billing"],
    rule_id: str | None,
) -> Response:
    form = await read_form(request)
    check_csrf(form, user.csrf)
    require_engineer(user)
    kind: rules.RuleKind[Any]
    if which == "ticket":
        kind = rules.TICKET_RULES
        body = rule_body(
            form,
            picks=TICKET_PICKS,
            text=TICKET_TEXT,
            integers=TICKET_INTEGERS,
            choices=TICKET_CHOICES,
            required=("board_id", "summary_template"),
            clear_blanks=rule_id is not None,
        )
    else:
        kind = rules.BILLING_RULES
        body = rule_body(
            form,
            picks=BILLING_PICKS,
            text=BILLING_TEXT,
            integers=BILLING_INTEGERS,
            choices=BILLING_CHOICES,
            required=("product", "psa_product_id", "unit_price"),
            clear_blanks=rule_id is not None,
        )
    checking = rules.PsaChecking(services, allow_unchecked="allow_unchecked" in form)
    tenant_id = user.principal.tenant_id
    row: Any
    try:
        async with session.begin_nested():
            if rule_id is None:
                row = await rules.create(kind, session, tenant_id, body, checking, actor=_actor(user))
            else:
                row = await rules.update(
                    kind, session, tenant_id, rule_id, body, checking, actor=_actor(user)
                )
    except NotFound:
        raise WebError(404, f"There is no such {kind.entity}.") from None
    except (FieldError, VendorUnavailable) as exc:
        errors = (
            field_errors(exc)
            if isinstance(exc, FieldError)
            else [{"field": exc.field or "psa_connection_id", "message": str(exc)}]
        )
        page = RulesPage(
            psa=body["psa_connection_id"],
            edit_ticket=rule_id if which == "ticket" else None,
            edit_billing=rule_id if which == "billing" else None,
            form=which,
            values={k: v for k, v in form.items() if k != "csrf_token"},
            errors=errors,
            status=422 if isinstance(exc, FieldError) else 502,
        )
        return await _rules_page(request, services, session, user, page)
    except Conflict as exc:
        raise WebError(409, str(exc)) from None
    await rules.reroute_after_change(session, tenant_id, row)
    log.info(f"dashboard {kind.entity} saved", rule_id=row.id, key_id=user.principal.api_key_id)
    return redirect(f"/setup/rules?psa={row.psa_connection_id}&done={which}")


@router.post("/setup/ticket-rules")
async def create_ticket_rule(
    request: Request, services: ServicesDep, session: Session, user: User
) -> Response:
    return await _save_rule(request, services, session, user, "ticket", None)


@router.post("/setup/ticket-rules/{rule_id}")
async def update_ticket_rule(
    rule_id: str, request: Request, services: ServicesDep, session: Session, user: User
) -> Response:
    return await _save_rule(request, services, session, user, "ticket", rule_id)


@router.post("/setup/billing-rules")
async def create_billing_rule(
    request: Request, services: ServicesDep, session: Session, user: User
) -> Response:
    return await _save_rule(request, services, session, user, "billing", None)


@router.post("/setup/billing-rules/{rule_id}")
async def update_billing_rule(
    rule_id: str, request: Request, services: ServicesDep, session: Session, user: User
) -> Response:
    return await _save_rule(request, services, session, user, "billing", rule_id)


# -- client mappings: bulk accept and the manual form (the page itself is routes.mappings) --------


async def manual_mapping_context(
    services: Services,
    session: AsyncSession,
    tenant_id: str,
    rmm_row: Connection | None,
    psa_row: Connection | None,
) -> dict[str, Any]:
    """What the manual mapping form lists: the PSA companies (or why they could not be read) and
    the RMM connection's clients that have no mapping yet."""
    if psa_row is None or rmm_row is None:
        return {"companies": [], "companies_error": None, "unmapped_clients": []}
    lists = await picklists(services, psa_row, {CatalogKind.COMPANIES})
    _, clients = await fleet_stats.summary(session, tenant_id)
    existing = await rules.list_rows(rules.CLIENT_MAPPINGS, session, tenant_id, limit=5000, offset=0)
    mapped = {m.rmm_client_id for m in existing if m.rmm_connection_id == rmm_row.id}
    unmapped = [
        (c.client_id, c.client_name or c.client_id)
        for c in clients
        if c.rmm_connection_id == rmm_row.id and c.client_id not in mapped
    ]
    return {
        "companies": lists.items.get(CatalogKind.COMPANIES, []),
        "companies_error": lists.error,
        "unmapped_clients": unmapped,
    }


@router.post("/mappings/manual")
async def manual_mapping(request: Request, services: ServicesDep, session: Session, user: User) -> Response:
    """One mapping from the manual form: a PSA company picked from its catalog (or typed when the
    PSA could not be read, then saved unchecked)."""
    form = await read_form(request)
    check_csrf(form, user.csrf)
    require_engineer(user)
    tenant_id = user.principal.tenant_id
    company_id = form.get("psa_company_id", "").strip()
    company_name = None
    psa_id = form.get("psa_connection_id", "")
    try:
        psa_row = await connections.connection_of_role(
            session, tenant_id, psa_id, Role.PSA, "psa_connection_id"
        )
        lists = await picklists(services, psa_row, {CatalogKind.COMPANIES})
        company_name = next(
            (c.name for c in lists.items.get(CatalogKind.COMPANIES, []) if c.id == company_id), None
        )
        body = {
            "rmm_connection_id": form.get("rmm_connection_id", ""),
            "rmm_client_id": form.get("rmm_client_id", "").strip(),
            "rmm_client_name": form.get("rmm_client_name", "").strip() or None,
            "psa_connection_id": psa_id,
            "psa_company_id": company_id,
            "psa_company_name": company_name,
        }
        checking = rules.PsaChecking(services, allow_unchecked=lists.error is not None)
        row = await rules.create(
            rules.CLIENT_MAPPINGS, session, tenant_id, body, checking, actor=_actor(user)
        )
    except FieldError as exc:
        raise WebError(422, error_text(field_errors(exc))) from None
    except VendorUnavailable as exc:
        raise WebError(502, str(exc)) from None
    await rules.reroute_after_change(session, tenant_id, row)
    log.info("dashboard mapping", mapping_id=row.id, key_id=user.principal.api_key_id)
    return redirect(f"/mappings?rmm={row.rmm_connection_id}&psa={row.psa_connection_id}&done=mapped")


MAX_BULK = 200


@router.post("/mappings/bulk")
async def bulk_mappings(request: Request, services: ServicesDep, session: Session, user: User) -> Response:
    """Accept every ticked suggestion: one mapping each, through the same service as the API."""
    form = await read_form(request, max_fields=6 * MAX_BULK + 10, max_bytes=512 * MAX_BULK)
    check_csrf(form, user.csrf)
    require_engineer(user)
    tenant_id = user.principal.tenant_id
    rmm_id, psa_id = form.get("rmm_connection_id", ""), form.get("psa_connection_id", "")
    picked = [i for i in range(MAX_BULK) if form.get(f"pick_{i}")]
    if not picked:
        raise WebError(422, "pick: tick at least one suggestion")
    checking = rules.PsaChecking(services, allow_unchecked=True)
    saved = []
    for i in picked:
        body = {
            "rmm_connection_id": rmm_id,
            "rmm_client_id": form.get(f"client_id_{i}", ""),
            "rmm_client_name": form.get(f"client_name_{i}") or None,
            "psa_connection_id": psa_id,
            "psa_company_id": form.get(f"company_id_{i}", ""),
            "psa_company_name": form.get(f"company_name_{i}") or None,
        }
        try:
            row = await rules.create(
                rules.CLIENT_MAPPINGS, session, tenant_id, body, checking, actor=_actor(user)
            )
        except FieldError as exc:
            raise WebError(422, error_text(field_errors(exc))) from None
        saved.append(row)
    for row in saved:
        await rules.reroute_after_change(session, tenant_id, row)
    log.info("dashboard mappings bulk", count=len(saved), key_id=user.principal.api_key_id)
    return redirect(f"/mappings?rmm={rmm_id}&psa={psa_id}&done=mapped")


# -- API keys (admin) -----------------------------------------------------------------------------


def require_admin(user: WebUser) -> None:
    if not user.role.allows(ApiRole.ADMIN):
        raise WebError(403, "This needs an API key with the admin role.")


async def _keys_page(
    request: Request,
    session: AsyncSession,
    user: WebUser,
    *,
    created: tuple[Any, str] | None = None,
    errors: list[dict[str, str]] | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "setup_api_keys.html",
        user,
        status=status,
        keys=await tenants.list_api_keys(session, user.principal.tenant_id),
        roles=[r.value for r in ApiRole],
        created=created,
        errors=errors or [],
    )


@router.get("/setup/api-keys")
async def api_keys_page(request: Request, session: Session, user: User) -> Response:
    require_admin(user)
    return await _keys_page(request, session, user)


@router.post("/setup/api-keys")
async def create_api_key(request: Request, session: Session, user: User) -> Response:
    form = await read_form(request)
    check_csrf(form, user.csrf)
    require_admin(user)
    name, role = form.get("name", "").strip(), form.get("role", "")
    errors = []
    if not name or len(name) > 200:
        errors.append({"field": "name", "message": "a name of 1 to 200 characters is required"})
    if role not in {r.value for r in ApiRole}:
        errors.append({"field": "role", "message": "choose admin, engineer or viewer"})
    if errors:
        return await _keys_page(request, session, user, errors=errors, status=422)
    row, plaintext = await tenants.issue_api_key(
        session, user.principal.tenant_id, ApiRole(role), name, actor=_actor(user)
    )
    log.info("dashboard api key created", created_key_id=row.id, key_id=user.principal.api_key_id)
    return await _keys_page(request, session, user, created=(row, plaintext), status=201)


@router.post("/setup/api-keys/{key_id}/revoke")
async def revoke_api_key(key_id: str, request: Request, session: Session, user: User) -> Response:
    check_csrf(await read_form(request), user.csrf)
    require_admin(user)
    try:
        await tenants.revoke_api_key(
            session,
            user.principal.tenant_id,
            key_id,
            current_key_id=user.principal.api_key_id,
            actor=_actor(user),
        )
    except NotFound:
        raise WebError(404, "There is no such API key.") from None
    except FieldError as exc:
        return await _keys_page(request, session, user, errors=field_errors(exc), status=422)
    return redirect("/setup/api-keys")
