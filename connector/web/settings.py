"""Dashboard pages for a tenant's settings and the forms that used to need the API: the status
thresholds, the currency amounts are shown in, the billing review settings, rejecting client-mapping
suggestions (and undoing it), editing maintenance windows, and closing a billing period. Every form
goes through the same service function as its `/api/v1` route (same validation, same audit entry);
a bad value re-renders the page with a 422 naming the field; viewers see the values read-only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from connector.api.deps import Session, configuration_changed
from connector.audit.domain import Actor
from connector.billing import domain as billing_domain
from connector.billing import review, snapshots
from connector.billing import service as billing_service
from connector.connections.service import list_connections
from connector.fleet import endpoints as fleet_endpoints
from connector.fleet.domain import Thresholds
from connector.infra.errors import FieldError, NotFound
from connector.infra.logs import get_logger
from connector.maintenance import service as maintenance
from connector.rules import rejections
from connector.tenants import service as tenants
from connector.tenants.schemas import CurrencySettings
from connector.web.auth import User, WebError, WebUser, check_csrf, read_form, require_engineer
from connector.web.render import money, redirect, render

log = get_logger("connector.web.settings")
router = APIRouter(include_in_schema=False)

NOTICES = {
    "thresholds": "Status thresholds saved; the next sync applies them to every endpoint.",
    "currency": "Currency saved; amounts are shown in it from now on (nothing is converted).",
    "review": "Billing review settings saved; they apply to the next proposals and push.",
}
SAMPLE_AMOUNT = Decimal("1234.5")
COMMON_CURRENCIES = ("USD", "EUR", "GBP", "CAD", "AUD", "CHF", "NZD", "SEK", "NOK", "DKK", "ZAR")
COMMON_LOCALES = ("en_US", "en_GB", "en_IE", "en_CA", "en_AU", "de_DE", "de_CH", "fr_FR", "nl_NL", "sv_SE")


def _actor(user: WebUser) -> Actor:
    return Actor.key(user.principal.api_key_id, dashboard=True)


# -- form values (pure) ---------------------------------------------------------------------------


def whole(value: str | None) -> int | str | None:
    """A form's whole number; text that is not one is passed on as typed (validation then names
    the field); blank is None (the field's default applies)."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def submitted(form: Mapping[str, str], model: type[BaseModel]) -> dict[str, Any]:
    """The model's fields from a form: numbers typed as the JSON API takes them (strict integers
    stay strict: "3.5" is refused, not rounded), a checkbox is a flag, a blank input is left out."""
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        raw = form.get(name)
        if info.annotation is bool:
            out[name] = raw is not None
        elif info.annotation is int:
            value = whole(raw)
            if value is not None:
                out[name] = value
        elif raw is not None and raw.strip():
            out[name] = raw.strip()
    return out


def problems(exc: ValidationError | FieldError) -> list[dict[str, str]]:
    """`{field, message}` for each problem, as `_setup_errors.html` lists them."""
    if isinstance(exc, FieldError):
        return list(exc.errors)
    return [
        {
            "field": ".".join(str(part) for part in e["loc"]) or "form",
            "message": str(e["msg"]).removeprefix("Value error, "),
        }
        for e in exc.errors()
    ]


# -- the settings page ----------------------------------------------------------------------------


async def _settings_page(
    request: Request,
    session: AsyncSession,
    user: WebUser,
    *,
    section: str | None = None,
    errors: list[dict[str, str]] | None = None,
    form: Mapping[str, str] | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    tenant_id = user.principal.tenant_id
    currency = await tenants.get_currency(session, tenant_id)
    return render(
        request,
        "setup_settings.html",
        user,
        status=status,
        thresholds=await fleet_endpoints.get_thresholds(session, tenant_id),
        currency=currency,
        review_settings=await billing_service.get_review_settings(session, tenant_id),
        sample=money(SAMPLE_AMOUNT, currency.currency, currency.locale),
        sample_amount=SAMPLE_AMOUNT,
        currencies=COMMON_CURRENCIES,
        locales=COMMON_LOCALES,
        section=section,
        errors=errors or [],
        form=form or {},
        notice=notice,
    )


@router.get("/setup/settings")
async def settings_page(request: Request, session: Session, user: User, done: str | None = None) -> Response:
    return await _settings_page(request, session, user, notice=NOTICES.get(done or ""))


SaveSetting = Callable[[AsyncSession, str, Any, Actor], Awaitable[object]]
"""A settings service call: (session, tenant, validated body, actor); the API's own function."""


async def _save_setting(
    request: Request,
    session: AsyncSession,
    user: WebUser,
    *,
    section: str,
    model: type[BaseModel],
    save: SaveSetting,
    entity: str,
) -> Response:
    """One settings form: the API's request model built from the fields, the API's service call and
    its `configuration changed` line; a bad value re-renders the page with 422 naming the field."""
    form = await read_form(request)
    check_csrf(form, user.csrf)
    require_engineer(user)
    tenant_id = user.principal.tenant_id
    try:
        body = model.model_validate(submitted(form, model))
        await save(session, tenant_id, body, _actor(user))
    except ValidationError as exc:
        return await _settings_page(
            request, session, user, section=section, errors=problems(exc), form=form, status=422
        )
    configuration_changed(session, user.principal, entity, "update", tenant_id, body.model_fields_set)
    return redirect(f"/setup/settings?done={section}#{section}")


@router.post("/setup/settings/thresholds")
async def save_thresholds(request: Request, session: Session, user: User) -> Response:
    async def save(session: AsyncSession, tenant_id: str, body: Any, actor: Actor) -> object:
        return await fleet_endpoints.set_thresholds(session, tenant_id, body, actor=actor)

    return await _save_setting(
        request, session, user, section="thresholds", model=Thresholds, save=save, entity="thresholds"
    )


@router.post("/setup/settings/currency")
async def save_currency(request: Request, session: Session, user: User) -> Response:
    async def save(session: AsyncSession, tenant_id: str, body: Any, actor: Actor) -> object:
        return await tenants.set_currency(session, tenant_id, body, actor=actor)

    return await _save_setting(
        request, session, user, section="currency", model=CurrencySettings, save=save, entity="currency"
    )


@router.post("/setup/settings/billing-review")
async def save_review_settings(request: Request, session: Session, user: User) -> Response:
    async def save(session: AsyncSession, tenant_id: str, body: Any, actor: Actor) -> object:
        return await billing_service.set_review_settings(session, tenant_id, body, actor=actor)

    return await _save_setting(
        request,
        session,
        user,
        section="review",
        model=review.ReviewSettings,
        save=save,
        entity="billing_review",
    )


# -- rejected mapping suggestions -----------------------------------------------------------------

MAX_BULK = 200
"""Suggestions one bulk form lists (the same limit as bulk accept)."""


def _mappings_url(rmm_id: str, psa_id: str, done: str) -> str:
    return "/mappings?" + urlencode({"rmm": rmm_id, "psa": psa_id, "done": done})


def _rejection(form: Mapping[str, str], suffix: str = "") -> rejections.Rejection:
    client_id = form.get(f"client_id{suffix}", "").strip()
    company_id = form.get(f"company_id{suffix}", "").strip()
    if not client_id or len(client_id) > 100:
        raise FieldError("rmm_client_id", "an RMM client id of 1 to 100 characters is required")
    if not company_id or len(company_id) > 100:
        raise FieldError("psa_company_id", "a PSA company id of 1 to 100 characters is required")
    return rejections.Rejection(
        rmm_connection_id=form.get("rmm_connection_id", ""),
        rmm_client_id=client_id,
        rmm_client_name=(form.get(f"client_name{suffix}") or "").strip()[:300] or None,
        psa_connection_id=form.get("psa_connection_id", ""),
        psa_company_id=company_id,
        psa_company_name=(form.get(f"company_name{suffix}") or "").strip()[:300] or None,
    )


async def _reject(session: AsyncSession, user: WebUser, items: list[rejections.Rejection]) -> int:
    try:
        stored = await rejections.reject(session, user.principal.tenant_id, items, actor=_actor(user))
    except FieldError as exc:
        raise WebError(422, "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)) from None
    for row, created in stored:
        if created:
            configuration_changed(session, user.principal, "mapping_suggestion", "reject", row.id)
    return sum(1 for _, created in stored if created)


@router.post("/mappings/reject")
async def reject_one(request: Request, session: Session, user: User) -> Response:
    """Reject one suggestion (its row's Reject button): it is not suggested again."""
    form = await read_form(request)
    check_csrf(form, user.csrf)
    require_engineer(user)
    try:
        item = _rejection(form)
    except FieldError as exc:
        raise WebError(422, f"{exc.errors[0]['field']}: {exc.errors[0]['message']}") from None
    await _reject(session, user, [item])
    log.info("dashboard mapping suggestion rejected", key_id=user.principal.api_key_id)
    return redirect(_mappings_url(item.rmm_connection_id, item.psa_connection_id, "rejected"))


@router.post("/mappings/bulk-reject")
async def reject_many(request: Request, session: Session, user: User) -> Response:
    """Reject every ticked suggestion of the bulk form (the same ticks bulk accept reads)."""
    form = await read_form(request, max_fields=6 * MAX_BULK + 10, max_bytes=512 * MAX_BULK)
    check_csrf(form, user.csrf)
    require_engineer(user)
    picked = [i for i in range(MAX_BULK) if form.get(f"pick_{i}")]
    if not picked:
        raise WebError(422, "pick: tick at least one suggestion")
    try:
        items = [_rejection(form, f"_{i}") for i in picked]
    except FieldError as exc:
        raise WebError(422, f"{exc.errors[0]['field']}: {exc.errors[0]['message']}") from None
    await _reject(session, user, items)
    log.info("dashboard mapping suggestions rejected", count=len(items), key_id=user.principal.api_key_id)
    rmm_id, psa_id = form.get("rmm_connection_id", ""), form.get("psa_connection_id", "")
    return redirect(_mappings_url(rmm_id, psa_id, "rejected"))


@router.get("/mappings/rejections")
async def rejections_page(
    request: Request, session: Session, user: User, done: str | None = None
) -> Response:
    """Every rejected suggestion of the tenant, newest first, each with its undo button."""
    tenant_id = user.principal.tenant_id
    rows = await rejections.list_rejections(session, tenant_id, limit=5000)
    connections = await list_connections(session, tenant_id)
    return render(
        request,
        "mapping_rejections.html",
        user,
        rows=rows,
        names={c.id: c.name for c in connections},
        notice="Rejection undone: the pair may be suggested again." if done == "undone" else None,
    )


@router.post("/mappings/rejections/{rejection_id}/undo")
async def undo_rejection(rejection_id: str, request: Request, session: Session, user: User) -> Response:
    check_csrf(await read_form(request), user.csrf)
    require_engineer(user)
    try:
        await rejections.undo(session, user.principal.tenant_id, rejection_id, actor=_actor(user))
    except NotFound:
        raise WebError(404, "There is no such rejected suggestion.") from None
    configuration_changed(session, user.principal, "mapping_suggestion", "restore", rejection_id)
    return redirect("/mappings/rejections?done=undone")


# -- maintenance windows: edit, enable and disable ------------------------------------------------

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def window_changes(form: Mapping[str, str]) -> dict[str, Any]:
    """The whole window from the edit form, as the API's PATCH takes it (then validated whole)."""
    kind = form.get("kind") or "once"
    body: dict[str, Any] = {
        "name": form.get("name", "").strip(),
        "timezone": form.get("timezone", "").strip(),
        "kind": kind,
        "rmm_connection_id": form.get("rmm_connection_id") or None,
        "client_id": (form.get("client_id") or "").strip() or None,
        "enabled": form.get("enabled") is not None,
    }
    if kind == "weekly":
        duration = whole(form.get("duration_minutes"))
        body |= {
            "weekdays": [i for i in range(7) if form.get(f"day{i}")],
            "start_time": form.get("start_time") or None,
            "duration_minutes": 0 if duration is None else duration,
            "start_local": None,
            "end_local": None,
        }
    else:
        body |= {
            "start_local": form.get("start_local") or None,
            "end_local": form.get("end_local") or None,
            "weekdays": [],
            "start_time": None,
            "duration_minutes": 0,
        }
    return body


async def _window_page(
    request: Request,
    session: AsyncSession,
    user: WebUser,
    window_id: str,
    *,
    errors: list[dict[str, str]] | None = None,
    form: Mapping[str, str] | None = None,
    status: int = 200,
) -> Response:
    tenant_id = user.principal.tenant_id
    try:
        row = await maintenance.get(session, tenant_id, window_id)
    except NotFound:
        raise WebError(404, "There is no such maintenance window.") from None
    connections = await list_connections(session, tenant_id)
    return render(
        request,
        "maintenance_edit.html",
        user,
        status=status,
        window=maintenance.out(row, datetime.now(UTC)),
        rmms=[c for c in connections if c.role == "rmm"],
        weekdays=WEEKDAYS,
        errors=errors or [],
        form=form,
    )


@router.get("/maintenance/{window_id}/edit")
async def edit_window_page(window_id: str, request: Request, session: Session, user: User) -> Response:
    return await _window_page(request, session, user, window_id)


@router.post("/maintenance/{window_id}/edit")
async def edit_window(window_id: str, request: Request, session: Session, user: User) -> Response:
    form = await read_form(request)
    check_csrf(form, user.csrf)
    require_engineer(user)
    changes = window_changes(form)
    try:
        await maintenance.update(session, user.principal.tenant_id, window_id, changes, actor=_actor(user))
    except NotFound:
        raise WebError(404, "There is no such maintenance window.") from None
    except FieldError as exc:
        return await _window_page(
            request, session, user, window_id, errors=problems(exc), form=form, status=422
        )
    configuration_changed(session, user.principal, "maintenance window", "update", window_id, changes)
    return redirect("/maintenance?done=window_saved")


@router.post("/maintenance/{window_id}/enabled")
async def toggle_window(window_id: str, request: Request, session: Session, user: User) -> Response:
    """Switch a window on or off (`enabled` = `true` or `false`) and keep its times."""
    form = await read_form(request)
    check_csrf(form, user.csrf)
    require_engineer(user)
    if form.get("enabled") not in ("true", "false"):
        raise WebError(422, "enabled: must be true or false")
    try:
        await maintenance.update(
            session,
            user.principal.tenant_id,
            window_id,
            {"enabled": form["enabled"] == "true"},
            actor=_actor(user),
        )
    except NotFound:
        raise WebError(404, "There is no such maintenance window.") from None
    except FieldError as exc:
        raise WebError(422, "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)) from None
    configuration_changed(session, user.principal, "maintenance window", "update", window_id, ("enabled",))
    return redirect("/maintenance?done=window_saved")


# -- billing: close a period ----------------------------------------------------------------------


@router.post("/billing/periods/{period}/close")
async def close_period(period: str, request: Request, session: Session, user: User) -> Response:
    """Close the period as `POST /api/v1/billing/periods/{period}/close` does: the first close
    freezes each billed line with its devices and makes the client statements; again changes nothing."""
    check_csrf(await read_form(request), user.csrf)
    require_engineer(user)
    if not billing_domain.PERIOD.match(period):
        raise WebError(422, "period: must look like YYYY-MM")
    try:
        await snapshots.close(session, user.principal.tenant_id, period, actor=_actor(user))
    except ValueError as exc:
        raise WebError(422, f"period: {exc}") from None
    log.info("dashboard billing period closed", period=period, key_id=user.principal.api_key_id)
    return redirect("/billing?" + urlencode({"period": period}))
