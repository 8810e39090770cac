"""Typed SQLAlchemy models, all tables in one module (features share them; migrations import one).

Every row belongs to a tenant: most carry a `tenant_id`; `applied_events` and `sync_cursors` belong
to it through their connection. Queries live in each feature's `service.py` (and the background
modules beside it); a read of a tenant-owned table filters by tenant only through
`connector.infra.db.scoped` / `tenant_rows`, which `tests/architecture/test_data_access.py` checks."""

from __future__ import annotations

import enum
import os
import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from connector.statuses import (
    ActionStatus,
    DeliveryStatus,
    EventState,
    Health,
    JobStatus,
    ProblemSource,
    ProblemStatus,
    Routing,
    SyncStatus,
    SyncTrigger,
    TicketState,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> str:
    """128 random bits as 32 hex characters (the `uuid4().hex` shape). Ids must be unique, not
    secret, so the process's PRNG (seeded from the OS, reseeded after fork) is enough and keeps a
    system call off the webhook hot path."""
    return f"{_ids.getrandbits(128):032x}"


_ids = random.Random(os.urandom(32))  # noqa: S311 - uniqueness, not secrecy (see new_id)
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Money = Numeric(14, 4, asdecimal=True)


E = TypeVar("E", bound=enum.StrEnum)


def status_column(kind: type[E], default: E | None = None) -> Any:
    """A status column: the enum's values in a VARCHAR(16) (no native enum type, no CHECK
    constraint — the same column as before), read back as enum members."""
    column_type = Enum(
        kind,
        native_enum=False,
        create_constraint=False,
        length=16,
        validate_strings=True,
        values_callable=lambda members: [member.value for member in members],
    )
    return mapped_column(column_type, default=default) if default is not None else mapped_column(column_type)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Tenant(Timestamped, Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ApiKey(Timestamped, Base):
    """An API key: only a SHA-256 of the secret part is stored. Keys are 256-bit random, so a
    fast hash is enough (no password stretching needed) and lookups stay O(1) by prefix."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Connection(Timestamped, Base):
    __tablename__ = "connections"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(8))
    base_url: Mapped[str] = mapped_column(String(500))
    credentials_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    webhook_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class ClientMapping(Timestamped, Base):
    """RMM client (in one RMM connection) → PSA company (in one PSA connection)."""

    __tablename__ = "client_mappings"
    __table_args__ = (UniqueConstraint("tenant_id", "rmm_connection_id", "rmm_client_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    rmm_connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    rmm_client_id: Mapped[str] = mapped_column(String(100))
    rmm_client_name: Mapped[str | None] = mapped_column(String(300))
    psa_connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    psa_company_id: Mapped[str] = mapped_column(String(100))
    psa_company_name: Mapped[str | None] = mapped_column(String(300))
    psa_check: Mapped[str | None] = mapped_column(String(16))
    """`checked`: the PSA ids were found in the PSA when last saved; `unchecked`: saved while the
    PSA could not be read (`allow_unchecked`); None: saved before ids were checked."""


class MappingRejection(Base):
    """A client-mapping suggestion an engineer turned down: this RMM client is not this PSA
    company, so it is not proposed again (a mapping made by hand to that company still may be)."""

    __tablename__ = "mapping_rejections"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id",
            "rmm_connection_id",
            "rmm_client_id",
            "psa_connection_id",
            "psa_company_id",
            name="uq_mapping_rejections_suggestion",
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    rmm_connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    rmm_client_id: Mapped[str] = mapped_column(String(100))
    rmm_client_name: Mapped[str | None] = mapped_column(String(300))
    psa_connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    psa_company_id: Mapped[str] = mapped_column(String(100))
    psa_company_name: Mapped[str | None] = mapped_column(String(300))
    rejected_by: Mapped[str | None] = mapped_column(String(32))
    """The API key that rejected it (None: the CLI)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TicketRule(Timestamped, Base):
    """Where a problem's ticket goes in one PSA. `problem` NULL = the default for all problems."""

    __tablename__ = "ticket_rules"
    __table_args__ = (UniqueConstraint("tenant_id", "psa_connection_id", "problem"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    psa_connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    problem: Mapped[str | None] = mapped_column(String(40))
    board_id: Mapped[str] = mapped_column(String(100))
    type_id: Mapped[str | None] = mapped_column(String(100))
    priority_id: Mapped[str | None] = mapped_column(String(100))
    status_new_id: Mapped[str | None] = mapped_column(String(100))
    status_closed_id: Mapped[str | None] = mapped_column(String(100))
    psa_check: Mapped[str | None] = mapped_column(String(16))
    """`checked`: the PSA ids were found in the PSA when last saved; `unchecked`: saved while the
    PSA could not be read (`allow_unchecked`); None: saved before ids were checked."""
    summary_template: Mapped[str] = mapped_column(String(300))
    note_interval_minutes: Mapped[int] = mapped_column(Integer, default=60)
    auto_action: Mapped[str | None] = mapped_column(String(40))
    close_policy: Mapped[str] = mapped_column(String(24), default="close_if_untouched")
    reraise_minutes: Mapped[int | None] = mapped_column(Integer)
    clear_rmm_alert: Mapped[bool] = mapped_column(Boolean, default=False)
    update_configurations: Mapped[bool] = mapped_column(Boolean, default=True)
    create_configurations: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    storm_min_endpoints: Mapped[int | None] = mapped_column(Integer)
    storm_min_percent: Mapped[int | None] = mapped_column(Integer)
    storm_window_minutes: Mapped[int] = mapped_column(Integer, default=60)
    priority_map: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    disabled_problems: Mapped[list[Any]] = mapped_column(JSON, default=list)
    exclusions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    min_age_minutes: Mapped[int] = mapped_column(Integer, default=0)


class BillingRule(Timestamped, Base):
    """What one security product bills as in one PSA."""

    __tablename__ = "billing_rules"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "psa_connection_id", "product", "device_category", name="uq_billing_rules_category"
        ),
        # NULL categories are distinct in a unique constraint: one rule for all categories per product.
        Index(
            "uq_billing_rules_all_categories",
            "tenant_id",
            "psa_connection_id",
            "product",
            unique=True,
            sqlite_where=text("device_category IS NULL"),
            postgresql_where=text("device_category IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    psa_connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    product: Mapped[str] = mapped_column(String(200))
    count_scope: Mapped[str] = mapped_column(String(20))
    count_method: Mapped[str] = mapped_column(String(20))
    agreement_type: Mapped[str | None] = mapped_column(String(200))
    agreement_id: Mapped[str | None] = mapped_column(String(100))
    psa_product_id: Mapped[str] = mapped_column(String(200))
    psa_check: Mapped[str | None] = mapped_column(String(16))
    """`checked`: the PSA ids were found in the PSA when last saved; `unchecked`: saved while the
    PSA could not be read (`allow_unchecked`); None: saved before ids were checked."""
    description: Mapped[str | None] = mapped_column(String(300))
    unit_price: Mapped[Decimal] = mapped_column(Money)
    cost_tiers: Mapped[list[Any]] = mapped_column(default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    device_category: Mapped[str | None] = mapped_column(String(16))
    """`server`, `workstation` or `other`: only endpoints of that category count; None: all."""
    included_seats: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Seats the agreement's fixed fee includes: the line bills only those beyond."""
    minimum_quantity: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """The billed quantity (after included seats) is never below this."""
    billing_timing: Mapped[str] = mapped_column(String(16), default="current", server_default="current")
    """`current`: the period's count; `arrears`: the previous month's; `prorated`: seat-days / days."""


class BillingPriceOverride(Timestamped, Base):
    """One PSA company's own unit price for a billing rule (instead of the rule's)."""

    __tablename__ = "billing_price_overrides"
    __table_args__ = (
        UniqueConstraint("rule_id", "company_id", name="uq_billing_price_overrides_rule_company"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    rule_id: Mapped[str] = mapped_column(ForeignKey("billing_rules.id", ondelete="CASCADE"))
    company_id: Mapped[str] = mapped_column(String(100))
    unit_price: Mapped[Decimal] = mapped_column(Money)


class Delivery(Base):
    """One received webhook: accepted ones are stored (body included) before the 202; rejected ones
    keep their metadata only, so engineers can see what is being refused."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("connection_id", "dedupe_key"),
        Index("ix_deliveries_tenant_received", "tenant_id", "received_at"),
        Index("ix_deliveries_tenant_status", "tenant_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[DeliveryStatus] = status_column(DeliveryStatus)
    dedupe_key: Mapped[str | None] = mapped_column(String(120))
    event_count: Mapped[int] = mapped_column(Integer, default=0)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    body_sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(String(120))
    source_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(200))
    rejection: Mapped[str | None] = mapped_column(String(300))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    processed_at: Mapped[datetime | None]


class Job(Base):
    """A durable unit of background work. Claimed with a lease; a worker that dies loses its lease
    and another worker takes the job over. `unique_key` coalesces queued duplicates."""

    __tablename__ = "jobs"
    __table_args__ = (
        # Claims read each tenant's oldest queued job of each priority, and its jobs by priority in
        # due order, here; every read by status (the running jobs, the queued ones) starts with it.
        Index("ix_jobs_tenant_claim", "status", "tenant_id", "priority", "run_after", "id"),
        Index(
            "uq_jobs_queued_unique_key",
            "unique_key",
            unique=True,
            sqlite_where=text("status = 'queued' AND unique_key IS NOT NULL"),
            postgresql_where=text("status = 'queued' AND unique_key IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[JobStatus] = status_column(JobStatus, JobStatus.QUEUED)
    unique_key: Mapped[str | None] = mapped_column(String(200))
    delivery_id: Mapped[str | None] = mapped_column(String(32), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    priority: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    """0: urgent (a live alert's, a person's work); 1: bulk (a sweep's). Within a tenant, claims take
    every due urgent job before any bulk one (`connector.infra.jobs.queue`)."""
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class AppliedEvent(Base):
    """Alert events already applied to problems, so a replayed or retried delivery changes nothing."""

    __tablename__ = "applied_events"

    connection_id: Mapped[str] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    applied_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProblemState(Base):
    """The newest event applied to one problem (RMM connection × endpoint × problem kind), whether it
    opened, continued or cleared an episode or found nothing to clear: an incoming event is judged
    against it by its own time (`domain.event_order`), so the order in which workers happen to apply
    events does not matter. Its row is also the lock that applies one problem's events one at a time."""

    __tablename__ = "problem_states"

    rmm_connection_id: Mapped[str] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    endpoint_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    state: Mapped[EventState] = status_column(EventState)
    event_at: Mapped[datetime]
    """When the newest event happened (`occurred_at`; the sync's time for status findings)."""
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Problem(Base):
    """One episode of a condition on an endpoint: opened, repeated, cleared. A problem that comes
    back after clearing is a new episode (and a new ticket)."""

    __tablename__ = "problems"
    __table_args__ = (
        Index(
            "uq_problems_open",
            "rmm_connection_id",
            "endpoint_id",
            "kind",
            unique=True,
            sqlite_where=text("state = 'open'"),
            postgresql_where=text("state = 'open'"),
        ),
        Index("ix_problems_tenant_state", "tenant_id", "state"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    rmm_connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    endpoint_id: Mapped[str] = mapped_column(String(100))
    client_id: Mapped[str] = mapped_column(String(100))
    hostname: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(40))
    source: Mapped[ProblemSource] = status_column(ProblemSource)
    state: Mapped[ProblemStatus] = status_column(ProblemStatus, ProblemStatus.OPEN)
    routing: Mapped[Routing] = status_column(Routing, Routing.PENDING)
    message: Mapped[str] = mapped_column(Text, default="")
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    noted_occurrences: Mapped[int] = mapped_column(Integer, default=1)
    """Occurrences already reported on the ticket (the ticket itself reports the first)."""
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    cleared_at: Mapped[datetime | None]
    clear_message: Mapped[str | None] = mapped_column(Text)
    vendor_alert_id: Mapped[str | None] = mapped_column(String(200))
    """The RMM's id of the alert behind the problem (its latest active event), for RMMs that can
    resolve an alert by it when a technician closes the ticket."""
    lock_owner: Mapped[str | None] = mapped_column(String(64))
    lock_expires_at: Mapped[datetime | None]
    storm_id: Mapped[str | None] = mapped_column(ForeignKey("storms.id", ondelete="SET NULL"))
    """The client-level storm ticket this problem is listed on (it then has no ticket of its own)."""


class Storm(Base):
    """One client-level ticket for many endpoints of a client with the same problem. At most one
    open per RMM connection × client × problem kind (partial unique index): concurrent workers
    that both see the storm insert one row, and its lock lets one of them write the ticket."""

    __tablename__ = "storms"
    __table_args__ = (
        Index(
            "uq_storms_open",
            "rmm_connection_id",
            "client_id",
            "kind",
            unique=True,
            sqlite_where=text("state = 'open'"),
            postgresql_where=text("state = 'open'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    rmm_connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    psa_connection_id: Mapped[str | None] = mapped_column(ForeignKey("connections.id", ondelete="SET NULL"))
    client_id: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(16), default="open")
    company_id: Mapped[str] = mapped_column(String(100))
    marker: Mapped[str] = mapped_column(String(40), unique=True)
    ticket_id: Mapped[str | None] = mapped_column(String(100))
    ticket_number: Mapped[str | None] = mapped_column(String(100))
    ticket_url: Mapped[str | None] = mapped_column(String(500))
    members: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Endpoint id → host name, as last listed on the ticket."""
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    lock_owner: Mapped[str | None] = mapped_column(String(64))
    lock_expires_at: Mapped[datetime | None]


class TicketLink(Base):
    """A problem's PSA ticket. Written as `pending` with its marker before the PSA create, so a
    crash between create and record is repaired by looking the marker up, never by creating again."""

    __tablename__ = "ticket_links"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    problem_id: Mapped[str] = mapped_column(ForeignKey("problems.id", ondelete="CASCADE"), unique=True)
    psa_connection_id: Mapped[str | None] = mapped_column(ForeignKey("connections.id", ondelete="SET NULL"))
    """None once the PSA connection was removed (the link is then `handed_over`): the problem keeps
    its ticket's number and address."""
    company_id: Mapped[str] = mapped_column(String(100))
    marker: Mapped[str] = mapped_column(String(40), unique=True)
    state: Mapped[TicketState] = status_column(TicketState, TicketState.PENDING)
    ticket_id: Mapped[str | None] = mapped_column(String(100))
    ticket_number: Mapped[str | None] = mapped_column(String(100))
    ticket_url: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_note_at: Mapped[datetime | None]
    notes_added: Mapped[int] = mapped_column(Integer, default=0)
    closed_at: Mapped[datetime | None]
    reopened: Mapped[int] = mapped_column(Integer, default=0)
    """Times a new ticket was opened on this link: after the first was deleted in the PSA, or a
    technician's close outlasted the rule's re-raise interval."""


class Endpoint(Base):
    """The last observed security status of one RMM endpoint. Never deleted: an endpoint gone from
    the RMM is `retired` (it stops counting for billing, its history stays)."""

    __tablename__ = "endpoints"
    __table_args__ = (
        UniqueConstraint("rmm_connection_id", "endpoint_id", name="uq_endpoints_connection_endpoint"),
        Index("ix_endpoints_tenant_client", "tenant_id", "client_id"),
        # Cover the daily health and usage counts of a sync, which read the whole active fleet
        # even when nothing changed: index-only instead of a table scan.
        Index(
            "ix_endpoints_health_counts",
            "rmm_connection_id",
            "client_id",
            "health",
            sqlite_where=text("retired_at IS NULL"),
            postgresql_where=text("retired_at IS NULL"),
        ),
        Index(
            "ix_endpoints_usage_counts",
            "rmm_connection_id",
            "client_id",
            "product",
            "device_type",
            "os_name",
            "protection_enabled",
            sqlite_where=text("retired_at IS NULL"),
            postgresql_where=text("retired_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    rmm_connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    endpoint_id: Mapped[str] = mapped_column(String(100))
    client_id: Mapped[str] = mapped_column(String(100))
    client_name: Mapped[str | None] = mapped_column(String(255))
    hostname: Mapped[str] = mapped_column(String(255))
    serial_number: Mapped[str | None] = mapped_column(String(100))
    mac_addresses: Mapped[list[str] | None] = mapped_column(JSON)
    os_name: Mapped[str | None] = mapped_column(String(255))
    device_type: Mapped[str | None] = mapped_column(String(64))
    """As the RMM reports it (server, workstation, laptop…): what the billing category comes from first."""
    product: Mapped[str | None] = mapped_column(String(255))
    protection_enabled: Mapped[bool | None]
    definitions_date: Mapped[datetime | None]
    last_scan_at: Mapped[datetime | None]
    active_threats: Mapped[int | None]
    online: Mapped[bool | None]
    last_seen_at: Mapped[datetime | None]
    health: Mapped[Health] = status_column(Health, Health.UNPROTECTED)
    fingerprint: Mapped[str] = mapped_column(String(32), default="")
    pushed_fields_fingerprint: Mapped[str | None] = mapped_column(String(32))
    """Fingerprint of the status fields last written to the PSA configuration (None = never)."""
    seen_in_run_id: Mapped[str | None] = mapped_column(String(32))
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None]
    evaluated_key: Mapped[str | None] = mapped_column(String(32))
    """`fleet.domain.evaluation_key` of the last evaluation; None: evaluate at the next sync (new or
    changed data)."""
    checks_due_at: Mapped[datetime | None]
    """When a time-based check of the stored status can next change its answer (None: never)."""
    present_kinds: Mapped[str | None] = mapped_column(String(200))
    """Problem kinds the last evaluation found present (`fleet.domain.kinds_text`)."""
    present_count: Mapped[int] = mapped_column(Integer, default=0)
    absent_kinds: Mapped[str | None] = mapped_column(String(200))
    """Problem kinds the last evaluation found absent."""


class EndpointConfiguration(Base):
    """The PSA configuration record a status sync wrote for one RMM endpoint, per PSA connection:
    what a new ticket for the endpoint's problem is attached to. Written with the fingerprint of
    the fields written, in the same transaction."""

    __tablename__ = "endpoint_configurations"
    __table_args__ = (
        UniqueConstraint("endpoint_ref", "psa_connection_id", name="uq_endpoint_configurations_endpoint_psa"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    endpoint_ref: Mapped[str] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    """The `endpoints` row (not the RMM's endpoint id)."""
    psa_connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    configuration_id: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConsoleAgent(Base):
    """The last observed status of one agent in a security console, stored beside the RMM's
    endpoints (never over them), and which RMM endpoint it is the same device as. Never deleted:
    an agent gone from the console is `retired`."""

    __tablename__ = "console_agents"
    __table_args__ = (
        UniqueConstraint("connection_id", "agent_id", name="uq_console_agents_connection_agent"),
        Index("ix_console_agents_tenant_customer", "tenant_id", "customer_id"),
        Index("ix_console_agents_endpoint", "endpoint_ref"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    agent_id: Mapped[str] = mapped_column(String(100))
    customer_id: Mapped[str] = mapped_column(String(100))
    customer_name: Mapped[str | None] = mapped_column(String(255))
    hostname: Mapped[str] = mapped_column(String(255))
    serial_number: Mapped[str | None] = mapped_column(String(100))
    mac_addresses: Mapped[list[str] | None] = mapped_column(JSON)
    os_name: Mapped[str | None] = mapped_column(String(255))
    device_type: Mapped[str | None] = mapped_column(String(64))
    product: Mapped[str | None] = mapped_column(String(255))
    agent_version: Mapped[str | None] = mapped_column(String(64))
    protection_enabled: Mapped[bool | None]
    definitions_up_to_date: Mapped[bool | None]
    definitions_date: Mapped[datetime | None]
    last_scan_at: Mapped[datetime | None]
    active_threats: Mapped[int | None]
    online: Mapped[bool | None]
    last_seen_at: Mapped[datetime | None]
    isolated: Mapped[bool | None]
    fingerprint: Mapped[str] = mapped_column(String(32), default="")
    seen_in_run_id: Mapped[str | None] = mapped_column(String(32))
    endpoint_ref: Mapped[str | None] = mapped_column(ForeignKey("endpoints.id", ondelete="SET NULL"))
    """The RMM endpoint (`endpoints.id`) this agent is the same device as; None = no match."""
    match_rule: Mapped[str | None] = mapped_column(String(16))
    """How `endpoint_ref` was found: serial, mac, hostname or manual."""
    match_note: Mapped[str | None] = mapped_column(String(500))
    """Why there is no match although candidates exist (ambiguous, duplicate agent)."""
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None]


class AgentMatchOverride(Timestamped, Base):
    """An engineer's word on which RMM endpoint a console agent is, over the automatic rules."""

    __tablename__ = "agent_match_overrides"
    __table_args__ = (UniqueConstraint("connection_id", "agent_id", name="uq_agent_match_overrides_agent"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    agent_id: Mapped[str] = mapped_column(String(100))
    endpoint_ref: Mapped[str] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))


class LicenceDaily(Base):
    """Seats a console customer uses per product per day, as the vendor counts them for its
    invoice (`peak_used` only grows during the day, `last_used` is the latest sync's count)."""

    __tablename__ = "licence_daily"
    __table_args__ = (
        UniqueConstraint("connection_id", "customer_id", "product", "day", name="uq_licence_daily_key"),
        Index("ix_licence_daily_tenant_day", "tenant_id", "day"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    customer_id: Mapped[str] = mapped_column(String(100))
    product: Mapped[str] = mapped_column(String(255))
    sku: Mapped[str | None] = mapped_column(String(100))
    day: Mapped[str] = mapped_column(String(10))
    """YYYY-MM-DD (UTC)"""
    peak_used: Mapped[int] = mapped_column(Integer, default=0)
    last_used: Mapped[int] = mapped_column(Integer, default=0)
    purchased: Mapped[int | None] = mapped_column(Integer)


class SyncRun(Base):
    """One pass over an RMM connection's fleet. At most one `running` per connection (partial unique
    index): a second trigger is refused, and a run whose heartbeat stopped is taken over."""

    __tablename__ = "sync_runs"
    __table_args__ = (
        Index(
            "uq_sync_runs_running",
            "connection_id",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), index=True)
    trigger: Mapped[SyncTrigger] = status_column(SyncTrigger)
    status: Mapped[SyncStatus] = status_column(SyncStatus, SyncStatus.RUNNING)
    full: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_since: Mapped[datetime | None]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    pages: Mapped[int] = mapped_column(Integer, default=0)
    endpoints_seen: Mapped[int] = mapped_column(Integer, default=0)
    endpoints_changed: Mapped[int] = mapped_column(Integer, default=0)
    endpoints_retired: Mapped[int] = mapped_column(Integer, default=0)
    endpoints_evaluated: Mapped[int] = mapped_column(Integer, default=0)
    """Endpoints whose problems and health the run derived again (the others could not have changed)."""
    problems_opened: Mapped[int] = mapped_column(Integer, default=0)
    problems_closed: Mapped[int] = mapped_column(Integer, default=0)
    psa_calls: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[Any]] = mapped_column(default=list)


class SyncCursor(Base):
    """Where the next incremental sync of a connection starts."""

    __tablename__ = "sync_cursors"

    connection_id: Mapped[str] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    changed_since: Mapped[datetime | None]
    last_full_at: Mapped[datetime | None]


class UsageDaily(Base):
    """Billable endpoints per client and product per day, for both billing scopes (`installed`:
    the product is on the endpoint; `protected`: and real-time protection is on). `peak_*` only grows
    during the day, `last_*` is the latest sync's count."""

    __tablename__ = "usage_daily"
    __table_args__ = (
        UniqueConstraint(
            "rmm_connection_id", "client_id", "product", "category", "day", name="uq_usage_daily_key"
        ),
        Index("ix_usage_daily_tenant_day", "tenant_id", "day"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    rmm_connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(String(100))
    product: Mapped[str] = mapped_column(String(255))
    day: Mapped[str] = mapped_column(String(10))
    """YYYY-MM-DD (UTC)"""
    category: Mapped[str] = mapped_column(String(16), default="", server_default="")
    """The endpoints' device category (server, workstation, other); "" on rows recorded before
    categories were counted (they count for rules without a category only)."""
    peak_installed: Mapped[int] = mapped_column(Integer, default=0)
    last_installed: Mapped[int] = mapped_column(Integer, default=0)
    peak_protected: Mapped[int] = mapped_column(Integer, default=0)
    last_protected: Mapped[int] = mapped_column(Integer, default=0)


class HealthDaily(Base):
    """Endpoints per health class per RMM connection and client per day (the latest sync's counts),
    the history behind the dashboard's trend."""

    __tablename__ = "health_daily"
    __table_args__ = (
        UniqueConstraint("rmm_connection_id", "client_id", "day", name="uq_health_daily_key"),
        Index("ix_health_daily_tenant_day", "tenant_id", "day"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    rmm_connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(String(100))
    day: Mapped[str] = mapped_column(String(10))
    protected: Mapped[int] = mapped_column(Integer, default=0)
    at_risk: Mapped[int] = mapped_column(Integer, default=0)
    unprotected: Mapped[int] = mapped_column(Integer, default=0)
    offline: Mapped[int] = mapped_column(Integer, default=0)
    unknown: Mapped[int] = mapped_column(Integer, default=0)


class BillingLineState(Base):
    """What was last written to the PSA for one billing rule × PSA company: the PSA line it lives
    in, and the quantity and prices it holds. Written after every PSA write, so a push compares
    against it and skips unchanged lines without calling the PSA."""

    __tablename__ = "billing_line_states"
    __table_args__ = (UniqueConstraint("rule_id", "company_id", name="uq_billing_line_states_rule_company"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    rule_id: Mapped[str] = mapped_column(ForeignKey("billing_rules.id", ondelete="CASCADE"))
    company_id: Mapped[str] = mapped_column(String(100))
    agreement_id: Mapped[str | None] = mapped_column(String(100))
    line_id: Mapped[str | None] = mapped_column(String(100))
    period: Mapped[str] = mapped_column(String(7))
    quantity: Mapped[int] = mapped_column(Integer, default=0)
    billed_quantity: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    """The exact quantity written when it is not whole seats (a prorated rule); None otherwise."""
    unit_price: Mapped[Decimal] = mapped_column(Money)
    unit_cost: Mapped[Decimal] = mapped_column(Money)
    pushed_at: Mapped[datetime] = mapped_column(default=utcnow)


class BillingPsaRead(Base):
    """The PSA's own view of one rule × company line, read back before a push and after each write:
    how a change made in the PSA by someone else is seen instead of overwritten."""

    __tablename__ = "billing_psa_reads"
    __table_args__ = (UniqueConstraint("rule_id", "company_id", name="uq_billing_psa_reads_rule_company"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    rule_id: Mapped[str] = mapped_column(ForeignKey("billing_rules.id", ondelete="CASCADE"))
    company_id: Mapped[str] = mapped_column(String(100))
    agreement_id: Mapped[str | None] = mapped_column(String(100))
    line_id: Mapped[str | None] = mapped_column(String(100))
    """None: the agreement has no line of the product."""
    quantity: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    """As the PSA holds it (a prorated line's is not whole seats)."""
    marked: Mapped[bool | None]
    """The line carries connector's marker (False: someone else made it; None: nothing to mark)."""
    error: Mapped[str | None] = mapped_column(String(500))
    """Why the latest read failed (the fields above are then from the read before)."""
    read_at: Mapped[datetime] = mapped_column(default=utcnow)


class BillingDecision(Base):
    """An engineer's answer to one proposed billing change: approve, adjust (to `quantity`, with a
    reason) or dismiss. Keyed by the proposed quantity: a different count is a new proposal."""

    __tablename__ = "billing_decisions"
    __table_args__ = (
        UniqueConstraint(
            "rule_id", "company_id", "period", "proposed_quantity", name="uq_billing_decisions_proposal"
        ),
        Index("ix_billing_decisions_tenant_period", "tenant_id", "period"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    rule_id: Mapped[str] = mapped_column(ForeignKey("billing_rules.id", ondelete="CASCADE"))
    company_id: Mapped[str] = mapped_column(String(100))
    period: Mapped[str] = mapped_column(String(7))
    current_quantity: Mapped[int | None] = mapped_column(Integer)
    proposed_quantity: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    quantity: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str] = mapped_column(String(100))
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)


class BillingPushLease(Base):
    """The one push of a tenant's billing lines that may write to the PSA right now. Held by one
    process (`owner`) until `expires_at` and renewed while the push runs, so a push that dies with its
    process stops blocking the next one once the lease runs out. Per tenant, not per period: a line's
    marker is the same in every period, so pushes of two periods would race for the same lines."""

    __tablename__ = "billing_push_leases"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    owner: Mapped[str] = mapped_column(String(32))
    period: Mapped[str] = mapped_column(String(7))
    trigger: Mapped[str] = mapped_column(String(16))
    """api | cli"""
    holder: Mapped[str] = mapped_column(String(200))
    """Which process holds it (host and pid), for the refusal message."""
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class BillingPeriod(Base):
    """A billing month an engineer closed: pushing it again needs an explicit override."""

    __tablename__ = "billing_periods"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    closed_at: Mapped[datetime] = mapped_column(default=utcnow)


class BillingSnapshotLine(Base):
    """One billed line of a closed period as it stood at the close: the count, what the PSA was last
    given, and (in `billing_snapshot_devices`) the devices behind the count. Kept when the rule is
    deleted, so a client can still be shown what it paid for."""

    __tablename__ = "billing_snapshot_lines"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "period", "rule_id", "company_id", name="uq_billing_snapshot_lines_line"
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    period: Mapped[str] = mapped_column(String(7))
    rule_id: Mapped[str] = mapped_column(String(32))
    company_id: Mapped[str] = mapped_column(String(100))
    company_name: Mapped[str | None] = mapped_column(String(255))
    product: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(16))
    """endpoint | console_agent: what the rule counts."""
    quantity: Mapped[int] = mapped_column(Integer)
    billed_quantity: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    """A prorated line's exact quantity, what was priced (None: `quantity` was)."""
    pushed_quantity: Mapped[int | None] = mapped_column(Integer)
    """The quantity last written to the PSA for the line (None = never pushed)."""
    unit_price: Mapped[Decimal] = mapped_column(Money)
    unit_cost: Mapped[Decimal] = mapped_column(Money)
    closed_at: Mapped[datetime] = mapped_column(default=utcnow)


class BillingSnapshotDevice(Base):
    """One device behind a snapshot line, copied at the close (its row may change or retire later)."""

    __tablename__ = "billing_snapshot_devices"
    __table_args__ = (
        UniqueConstraint("line_id", "device_id", name="uq_billing_snapshot_devices_line_device"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    line_id: Mapped[str] = mapped_column(
        ForeignKey("billing_snapshot_lines.id", ondelete="CASCADE"), index=True
    )
    device_id: Mapped[str] = mapped_column(String(32))
    """`endpoints.id` or `console_agents.id`, by the line's source."""
    hostname: Mapped[str] = mapped_column(String(255))
    serial_number: Mapped[str | None] = mapped_column(String(100))
    first_seen_at: Mapped[datetime]
    """First seen within the period (the period's start when known before it)."""
    last_seen_at: Mapped[datetime]
    """Last seen within the period (the period's end when still there after it)."""


class UsageProfile(Timestamped, Base):
    """How one vendor's monthly usage report (CSV) is read: its columns, what its customer column
    holds, the aliases of customers whose names differ from the PSA's, and the PSA it reconciles
    against."""

    __tablename__ = "billing_usage_profiles"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    psa_connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    customer_column: Mapped[str] = mapped_column(String(200))
    customer_kind: Mapped[str] = mapped_column(String(20))
    """psa_company_id | psa_company_name | customer_name"""
    aliases: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Customer (as the report names it) → PSA company id."""
    product_column: Mapped[str] = mapped_column(String(200))
    quantity_column: Mapped[str] = mapped_column(String(200))
    delimiter: Mapped[str | None] = mapped_column(String(1))
    """`,` `;` or a tab; None: the one the header line uses."""
    header_row: Mapped[int] = mapped_column(Integer, default=0)
    """Lines before the header."""


class UsageUpload(Base):
    """One period's usage report read with a profile; uploading again for the same period and
    profile replaces it (its rows with it)."""

    __tablename__ = "billing_usage_uploads"
    __table_args__ = (
        UniqueConstraint("tenant_id", "profile_id", "period", name="uq_billing_usage_uploads_key"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("billing_usage_profiles.id", ondelete="CASCADE"))
    psa_connection_id: Mapped[str] = mapped_column(String(32))
    """The profile's PSA connection when uploaded (the matches were made in it)."""
    period: Mapped[str] = mapped_column(String(7))
    filename: Mapped[str | None] = mapped_column(String(255))
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """[{line, column, reason}] of the rows not read."""
    warnings: Mapped[list[Any]] = mapped_column(JSON, default=list)


class UsageUploadRow(Base):
    """A customer's seats of one product in an upload; `company_id` NULL when the customer matched
    no PSA company."""

    __tablename__ = "billing_usage_upload_rows"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    upload_id: Mapped[str] = mapped_column(
        ForeignKey("billing_usage_uploads.id", ondelete="CASCADE"), index=True
    )
    customer: Mapped[str] = mapped_column(String(300))
    product: Mapped[str] = mapped_column(String(255))
    quantity: Mapped[int] = mapped_column(BigInteger)
    """Summed over the customer's rows of the product (each at most `MAX_SEATS`)."""
    company_id: Mapped[str | None] = mapped_column(String(100))
    company_name: Mapped[str | None] = mapped_column(String(300))
    lines: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """The file's line numbers the seats were summed from."""
    reason: Mapped[str | None] = mapped_column(String(200))
    """Why the customer matched no PSA company."""


class EndpointAction(Base):
    """A remote action requested on an endpoint and what the RMM answered."""

    __tablename__ = "endpoint_actions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    endpoint_row_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    problem_id: Mapped[str | None] = mapped_column(String(32))
    requested_by: Mapped[str] = mapped_column(String(32))
    """api | rule"""
    status: Mapped[ActionStatus] = status_column(ActionStatus, ActionStatus.QUEUED)
    vendor_reference: Mapped[str | None] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text, default="")
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class AuditEvent(Base):
    """One configuration change or one write made to a PSA or RMM: who (which API key, or the
    background worker), when, what, and the values before and after with secrets redacted.
    Written in the transaction that records the change, so an entry exists iff the change does.
    `connection_id` is not a foreign key: the trail outlives the connections it names."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_tenant_seq", "tenant_id", "seq"),
        Index("ix_audit_events_tenant_at", "tenant_id", "at"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    category: Mapped[str] = mapped_column(String(8))
    """config | psa | rmm"""
    kind: Mapped[str] = mapped_column(String(64))
    """e.g. `connection.updated`, `ticket.created`, `billing_line.written`, `action.sent`"""
    actor: Mapped[str] = mapped_column(String(64))
    """`api_key`, `dashboard`, `cli` or `worker`"""
    api_key_id: Mapped[str | None] = mapped_column(String(32))
    connection_id: Mapped[str | None] = mapped_column(String(32))
    client_id: Mapped[str | None] = mapped_column(String(100))
    target_type: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[str | None] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(String(500))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class DeployRule(Timestamped, Base):
    """Automatic agent deployment on one RMM connection: endpoints it reports without any protection
    product get the connection's `deploy_agent` action, at most once per `interval_minutes`."""

    __tablename__ = "deploy_rules"
    __table_args__ = (UniqueConstraint("tenant_id", "rmm_connection_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    rmm_connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    interval_minutes: Mapped[int] = mapped_column(Integer, default=10_080)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class AgentDeployGuard(Base):
    """One row per endpoint a deploy rule ever deployed to: when it last did. Claimed with a single
    conditional upsert, so concurrent sweeps deploy to an endpoint at most once per interval."""

    __tablename__ = "agent_deploy_guards"

    endpoint_row_id: Mapped[str] = mapped_column(
        ForeignKey("endpoints.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    last_requested_at: Mapped[datetime]
    deployment_id: Mapped[str] = mapped_column(String(32))


class AgentDeployment(Base):
    """An agent deployment a deploy rule requested on an endpoint (its action holds the outcome)."""

    __tablename__ = "agent_deployments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    endpoint_row_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"), index=True)
    rule_id: Mapped[str | None] = mapped_column(ForeignKey("deploy_rules.id", ondelete="SET NULL"))
    action_id: Mapped[str | None] = mapped_column(ForeignKey("endpoint_actions.id", ondelete="SET NULL"))
    interval_minutes: Mapped[int] = mapped_column(Integer)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)


class MaintenanceWindow(Timestamped, Base):
    """Planned maintenance for a tenant, or one RMM client (`rmm_connection_id` + `client_id`):
    problems arising while it is open open no ticket until it ends. Times are the client's local
    wall-clock times in `timezone` (see `connector.maintenance.domain`)."""

    __tablename__ = "maintenance_windows"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    rmm_connection_id: Mapped[str | None] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    client_id: Mapped[str | None] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))
    start_local: Mapped[str | None] = mapped_column(String(19))
    end_local: Mapped[str | None] = mapped_column(String(19))
    weekdays: Mapped[list[Any]] = mapped_column(default=list)
    start_time: Mapped[str | None] = mapped_column(String(5))
    duration_minutes: Mapped[int] = mapped_column(Integer, default=0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class NotificationChannel(Timestamped, Base):
    """Where a tenant's notifications go: a signed webhook (`webhook`, or its Slack- or Teams-shaped
    payloads `slack`, `teams`) or e-mail (`email`). The webhook signing secret or SMTP password is
    stored encrypted and never returned; `options` holds the rest (SMTP host, recipients, …)."""

    __tablename__ = "notification_channels"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    url: Mapped[str | None] = mapped_column(String(500))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    events: Mapped[list[Any]] = mapped_column(default=list)
    """The event kinds sent here (empty: all)."""
    secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class Notification(Base):
    """One notification to one channel: queued, then `delivered` or `dead` after the job's last try."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    channel_id: Mapped[str] = mapped_column(
        ForeignKey("notification_channels.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(500))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class VendorSlot(Base):
    """One of a connection's concurrent-call slots, shared by every process of the deployment
    (`connector.infra.budgets`): free while `holder` is NULL or its lease has expired. A holding
    process renews its leases while it runs, so the slots of a process that died come back once
    `expires_at` passes. Rows `0 … max_concurrency-1` are created on first use; no foreign key, so a
    claim never waits on the connection's row."""

    __tablename__ = "vendor_slots"

    connection_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    slot_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(32))
    """The call holding it (a fresh id per claim), so a late release never frees someone else's."""
    owner: Mapped[str | None] = mapped_column(String(32))
    """The process holding it, which renews all of its slots in one statement."""
    expires_at: Mapped[datetime | None]


class VendorRateSlot(Base):
    """One of a connection's `max_requests_per_minute` starts, shared by every process of the
    deployment: a call starts only by taking a row last used a full window ago, so no window of
    that length ever holds more starts than there are rows (a sliding log with a fixed number of
    entries, unlike fixed minutes, which let twice the limit through across a boundary). Rows
    `0 … limit-1` are created on first use."""

    __tablename__ = "vendor_rate_slots"

    connection_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    slot_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    used_at: Mapped[datetime | None]
    """When the call that last took it started (NULL: never)."""
