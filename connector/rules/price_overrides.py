"""Per-company unit prices of a billing rule: one PSA company pays its own price for the rule's
product instead of the rule's. Each change is audited like the rule itself."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from connector.audit import service as audit
from connector.audit.domain import Actor
from connector.connections.service import validation_errors
from connector.infra.db import tenant_rows
from connector.infra.errors import FieldError, NotFound
from connector.models import BillingPriceOverride, BillingRule
from connector.rules import service as rules

COMPANY_ID_MAX = 100


class PriceOverrideIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"unit_price": "3.95"}]})

    unit_price: Decimal = Field(ge=0, max_digits=14, decimal_places=4)
    """The company's price per seat, as text or a number (up to 4 decimal places)."""


def parse(body: Any) -> PriceOverrideIn:
    try:
        return PriceOverrideIn.model_validate(body)
    except ValidationError as exc:
        raise FieldError.many(validation_errors("", exc)) from exc


def _company(company_id: str) -> str:
    if not company_id.strip() or len(company_id) > COMPANY_ID_MAX:
        raise FieldError("company_id", f"a PSA company id of 1 to {COMPANY_ID_MAX} characters")
    return company_id


async def list_overrides(session: AsyncSession, tenant_id: str, rule_id: str) -> list[BillingPriceOverride]:
    await rules.get(rules.BILLING_RULES, session, tenant_id, rule_id)
    return list(
        await session.scalars(
            tenant_rows(BillingPriceOverride, tenant_id)
            .where(BillingPriceOverride.rule_id == rule_id)
            .order_by(BillingPriceOverride.company_id)
        )
    )


async def _find(
    session: AsyncSession, tenant_id: str, rule_id: str, company_id: str
) -> BillingPriceOverride | None:
    found: BillingPriceOverride | None = await session.scalar(
        tenant_rows(BillingPriceOverride, tenant_id).where(
            BillingPriceOverride.rule_id == rule_id, BillingPriceOverride.company_id == company_id
        )
    )
    return found


async def put_override(
    session: AsyncSession, tenant_id: str, rule_id: str, company_id: str, body: Any, *, actor: Actor
) -> BillingPriceOverride:
    """Set the company's price for the rule (created or replaced)."""
    rule: BillingRule = await rules.get(rules.BILLING_RULES, session, tenant_id, rule_id)
    company_id = _company(company_id)
    data = parse(body)
    row = await _find(session, tenant_id, rule_id, company_id)
    before = None if row is None else {"unit_price": row.unit_price}
    if row is None:
        row = BillingPriceOverride(tenant_id=tenant_id, rule_id=rule_id, company_id=company_id)
        session.add(row)
    row.unit_price = data.unit_price
    await session.flush()
    if before is None or Decimal(before["unit_price"]) != data.unit_price:
        audit.record(
            session,
            tenant_id,
            "billing_price_override.created" if before is None else "billing_price_override.updated",
            actor,
            target_type="billing_rule",
            target_id=rule_id,
            connection_id=rule.psa_connection_id,
            summary=f"price of {rule.product} for company {company_id} set to {data.unit_price} "
            f"(rule price {rule.unit_price})",
            before=None if before is None else {"company_id": company_id, **before},
            after={"company_id": company_id, "unit_price": data.unit_price},
        )
    return row


async def delete_override(
    session: AsyncSession, tenant_id: str, rule_id: str, company_id: str, *, actor: Actor
) -> None:
    """The company pays the rule's price again."""
    rule: BillingRule = await rules.get(rules.BILLING_RULES, session, tenant_id, rule_id)
    row = await _find(session, tenant_id, rule_id, company_id)
    if row is None:
        raise NotFound("price override")
    audit.record(
        session,
        tenant_id,
        "billing_price_override.deleted",
        actor,
        target_type="billing_rule",
        target_id=rule_id,
        connection_id=rule.psa_connection_id,
        summary=f"price override of {rule.product} for company {company_id} removed "
        f"(the rule's price {rule.unit_price} applies)",
        before={"company_id": company_id, "unit_price": row.unit_price},
    )
    await session.delete(row)
    await session.flush()
