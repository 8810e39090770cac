"""Vendors' usage reports for the reconciliation: saved column profiles (`billing_usage_profiles`)
and the reports uploaded per period (`billing_usage_uploads`, with one row per customer and product
in `billing_usage_upload_rows`). Customers are matched to PSA companies when the file is uploaded,
against the companies of the profile's PSA connection (read from the PSA; when it cannot be read,
the companies its client mappings name, with a warning), so the reconciliation reads stored rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import CatalogKind, Role
from connector.audit import service as audit
from connector.audit.domain import Actor, changed
from connector.billing import reconciliation
from connector.billing.schemas import UsageProfileIn
from connector.billing.usage_upload import (
    Columns,
    Company,
    CustomerKind,
    Report,
    ReportError,
    Usage,
    decode,
    match,
    read_report,
)
from connector.connections.catalog import read_catalog
from connector.connections.service import connection_of_role, validation_errors
from connector.infra.context import Services
from connector.infra.db import scoped, tenant_rows
from connector.infra.errors import Conflict, FieldError, NotFound, VendorUnavailable
from connector.models import ClientMapping, UsageProfile, UsageUpload, UsageUploadRow

PROFILE_FIELDS = tuple(UsageProfileIn.model_fields)
REJECTED_LISTED = 1000
"""Rejected rows kept and answered per upload; a warning counts the rest."""


def profile_values(row: UsageProfile) -> dict[str, Any]:
    return {name: getattr(row, name) for name in PROFILE_FIELDS}


async def list_profiles(session: AsyncSession, tenant_id: str) -> list[UsageProfile]:
    return list(await session.scalars(tenant_rows(UsageProfile, tenant_id).order_by(UsageProfile.name)))


async def get_profile(session: AsyncSession, tenant_id: str, profile_id: str) -> UsageProfile:
    row = await session.scalar(tenant_rows(UsageProfile, tenant_id).where(UsageProfile.id == profile_id))
    if row is None:
        raise NotFound("usage profile")
    return row


def _validate(payload: dict[str, Any]) -> UsageProfileIn:
    try:
        return UsageProfileIn.model_validate(payload)
    except ValidationError as exc:
        raise FieldError.many(validation_errors("", exc)) from exc


async def _save(session: AsyncSession, tenant_id: str, row: UsageProfile, data: UsageProfileIn) -> None:
    await connection_of_role(session, tenant_id, data.psa_connection_id, Role.PSA, "psa_connection_id")
    clash = await session.scalar(
        scoped(select(UsageProfile.id), UsageProfile, tenant_id).where(
            UsageProfile.name == data.name, UsageProfile.id != row.id
        )
    )
    if clash is not None:
        raise FieldError("name", "a usage profile with this name already exists")
    for name, value in data.model_dump().items():
        setattr(row, name, value)
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent save took the name
        raise FieldError("name", "a usage profile with this name already exists") from exc


async def create_profile(
    session: AsyncSession, tenant_id: str, payload: dict[str, Any], *, actor: Actor
) -> UsageProfile:
    data = _validate(payload)
    row = UsageProfile(tenant_id=tenant_id)
    await _save(session, tenant_id, row, data)
    await session.refresh(row)
    audit.record(
        session,
        tenant_id,
        "usage_profile.created",
        actor,
        target_type="usage_profile",
        target_id=row.id,
        summary=f"usage profile {row.name!r} created",
        after=profile_values(row),
    )
    return row


async def update_profile(
    session: AsyncSession, tenant_id: str, profile_id: str, payload: dict[str, Any], *, actor: Actor
) -> UsageProfile:
    """Replaces the profile; uploads already read with it keep their rows (upload again to re-read)."""
    row = await get_profile(session, tenant_id, profile_id)
    data = _validate(payload)
    before = profile_values(row)
    await _save(session, tenant_id, row, data)
    await session.refresh(row)
    old, new = changed(before, profile_values(row))
    if new:
        audit.record(
            session,
            tenant_id,
            "usage_profile.updated",
            actor,
            target_type="usage_profile",
            target_id=row.id,
            summary=f"usage profile {row.name!r} changed: {', '.join(sorted(new))}",
            before=old,
            after=new,
        )
    return row


async def delete_profile(session: AsyncSession, tenant_id: str, profile_id: str, *, actor: Actor) -> None:
    """The profile and every upload read with it."""
    row = await get_profile(session, tenant_id, profile_id)
    before = profile_values(row)
    uploads = list(
        await session.scalars(
            scoped(select(UsageUpload.id), UsageUpload, tenant_id).where(UsageUpload.profile_id == row.id)
        )
    )
    await _delete_uploads(session, tenant_id, uploads)
    await session.delete(row)
    audit.record(
        session,
        tenant_id,
        "usage_profile.deleted",
        actor,
        target_type="usage_profile",
        target_id=profile_id,
        summary=f"usage profile {before['name']!r} deleted with {len(uploads)} upload(s)",
        before=before,
    )


async def _delete_uploads(session: AsyncSession, tenant_id: str, upload_ids: list[str]) -> None:
    if not upload_ids:
        return
    await session.execute(
        scoped(delete(UsageUploadRow), UsageUploadRow, tenant_id).where(
            UsageUploadRow.upload_id.in_(upload_ids)
        )
    )
    await session.execute(
        scoped(delete(UsageUpload), UsageUpload, tenant_id).where(UsageUpload.id.in_(upload_ids))
    )


def columns_of(profile: UsageProfile) -> Columns:
    return Columns(
        profile.customer_column,
        profile.product_column,
        profile.quantity_column,
        profile.delimiter,
        profile.header_row,
    )


async def psa_companies(
    services: Services, session: AsyncSession, tenant_id: str, psa_connection_id: str
) -> tuple[list[Company], list[str]]:
    """The PSA connection's companies, and warnings: read from the PSA, then as its client
    mappings name them (a second name to match); only the mapped ones (with a warning) when the
    PSA cannot be read."""
    row = await connection_of_role(session, tenant_id, psa_connection_id, Role.PSA, "psa_connection_id")
    mapped = await session.execute(
        scoped(
            select(ClientMapping.psa_company_id, ClientMapping.psa_company_name), ClientMapping, tenant_id
        ).where(ClientMapping.psa_connection_id == row.id)
    )
    companies: list[Company] = []
    warnings: list[str] = []
    try:
        catalog = await read_catalog(services, row, CatalogKind.COMPANIES)
        companies += [Company(item.id, item.name) for item in catalog.items]
    except VendorUnavailable as exc:
        warnings.append(f"{exc}; customers were matched to the companies of client mappings only")
    companies += [
        Company(company_id, name)
        for company_id, name in sorted(set(mapped.all()), key=lambda r: (r[0], r[1] or ""))
    ]
    return companies, warnings


@dataclass
class Stored:
    upload: UsageUpload
    rows: list[UsageUploadRow]
    replaced: bool = False


def read_file(data: bytes, profile: UsageProfile) -> Report:
    """The file read with the profile: 422 naming the profile field when its header lacks a column,
    or naming each bad row's column when no row could be read."""
    try:
        report = read_report(decode(data), columns_of(profile))
    except ReportError as exc:
        raise FieldError(exc.field, exc.message) from None
    if not report.rows:
        if not report.rejected:
            raise FieldError("body", "the file has no data rows")
        raise FieldError.many(
            [
                {"field": r.column or "body", "message": f"line {r.line}: {r.reason}"}
                for r in report.rejected[:100]
            ]
        )
    return report


async def store_upload(
    session: AsyncSession,
    tenant_id: str,
    profile: UsageProfile,
    period: str,
    filename: str | None,
    report: Report,
    usages: list[Usage],
    warnings: list[str],
    *,
    actor: Actor,
) -> Stored:
    """The period's upload for the profile, replacing an earlier one in the same transaction."""
    earlier = list(
        await session.scalars(
            scoped(select(UsageUpload.id), UsageUpload, tenant_id).where(
                UsageUpload.profile_id == profile.id, UsageUpload.period == period
            )
        )
    )
    await _delete_uploads(session, tenant_id, earlier)
    await session.flush()
    if len(report.rejected) > REJECTED_LISTED:
        more = len(report.rejected) - REJECTED_LISTED
        warnings = [*warnings, f"{more} more rejected rows are not listed"]
    upload = UsageUpload(
        tenant_id=tenant_id,
        profile_id=profile.id,
        psa_connection_id=profile.psa_connection_id,
        period=period,
        filename=(filename or "").replace("\0", "")[:255] or None,
        rows_read=len(report.rows) + len(report.rejected),
        rejected=[
            {"line": r.line, "column": r.column, "reason": r.reason}
            for r in report.rejected[:REJECTED_LISTED]
        ],
        warnings=warnings,
    )
    session.add(upload)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("another upload for this period and profile is being stored; try again") from exc
    rows = [
        UsageUploadRow(
            tenant_id=tenant_id,
            upload_id=upload.id,
            customer=u.customer[:300],
            product=u.product[:255],
            quantity=u.quantity,
            company_id=u.company.id if u.company else None,
            company_name=u.company.name if u.company else None,
            lines=u.lines,
            reason=u.reason,
        )
        for u in usages
    ]
    session.add_all(rows)
    await session.flush()
    accepted = sum(len(u.lines) for u in usages if u.company)
    audit.record(
        session,
        tenant_id,
        "usage_upload.created",
        actor,
        target_type="usage_upload",
        target_id=upload.id,
        summary=(
            f"usage report for {period} uploaded with profile {profile.name!r}: {accepted} row(s) "
            f"matched, {len(report.rows) - accepted} unmatched, {len(report.rejected)} rejected"
            + (" (replacing the earlier upload)" if earlier else "")
        ),
        after={"period": period, "profile_id": profile.id, "filename": upload.filename},
    )
    return Stored(upload, rows, replaced=bool(earlier))


async def upload(
    services: Services,
    session: AsyncSession,
    tenant_id: str,
    profile_id: str,
    period: str,
    data: bytes,
    filename: str | None,
    *,
    actor: Actor,
) -> Stored:
    profile = await session.scalar(tenant_rows(UsageProfile, tenant_id).where(UsageProfile.id == profile_id))
    if profile is None:
        raise FieldError("profile", "no such usage profile")
    report = read_file(data, profile)
    companies, warnings = await psa_companies(services, session, tenant_id, profile.psa_connection_id)
    kind = cast(CustomerKind, profile.customer_kind)  # validated on save (`UsageProfileIn`)
    usages = match(report.rows, kind, companies, profile.aliases or {})
    return await store_upload(
        session, tenant_id, profile, period, filename, report, usages, warnings, actor=actor
    )


async def list_uploads(session: AsyncSession, tenant_id: str, period: str | None) -> list[Stored]:
    query = tenant_rows(UsageUpload, tenant_id)
    if period is not None:
        query = query.where(UsageUpload.period == period)
    uploads = list(await session.scalars(query.order_by(UsageUpload.period, UsageUpload.uploaded_at)))
    rows = await _rows_of(session, tenant_id, [u.id for u in uploads])
    return [Stored(u, rows.get(u.id, [])) for u in uploads]


async def get_upload(session: AsyncSession, tenant_id: str, upload_id: str) -> Stored:
    row = await session.scalar(tenant_rows(UsageUpload, tenant_id).where(UsageUpload.id == upload_id))
    if row is None:
        raise NotFound("usage upload")
    return Stored(row, (await _rows_of(session, tenant_id, [row.id])).get(row.id, []))


async def delete_upload(session: AsyncSession, tenant_id: str, upload_id: str, *, actor: Actor) -> None:
    found = await get_upload(session, tenant_id, upload_id)
    await _delete_uploads(session, tenant_id, [upload_id])
    audit.record(
        session,
        tenant_id,
        "usage_upload.deleted",
        actor,
        target_type="usage_upload",
        target_id=upload_id,
        summary=f"usage report for {found.upload.period} deleted",
        before={"period": found.upload.period, "profile_id": found.upload.profile_id},
    )


async def _rows_of(
    session: AsyncSession, tenant_id: str, upload_ids: list[str]
) -> dict[str, list[UsageUploadRow]]:
    out: dict[str, list[UsageUploadRow]] = {}
    if not upload_ids:
        return out
    rows = await session.scalars(
        tenant_rows(UsageUploadRow, tenant_id)
        .where(UsageUploadRow.upload_id.in_(upload_ids))
        .order_by(UsageUploadRow.customer, UsageUploadRow.product)
    )
    for row in rows:
        out.setdefault(row.upload_id, []).append(row)
    return out


async def uploaded_usage(session: AsyncSession, tenant_id: str, period: str) -> list[reconciliation.Uploaded]:
    """The period's uploaded seats, for the reconciliation."""
    rows = await session.execute(
        scoped(
            select(
                UsageUpload.id,
                UsageUpload.psa_connection_id,
                UsageUploadRow.company_id,
                UsageUploadRow.company_name,
                UsageUploadRow.customer,
                UsageUploadRow.product,
                UsageUploadRow.quantity,
            ).join(UsageUploadRow, UsageUploadRow.upload_id == UsageUpload.id),
            UsageUpload,
            tenant_id,
        ).where(UsageUpload.period == period)
    )
    return [reconciliation.Uploaded(*row) for row in rows.all()]
