"""Service settings from the environment (prefix `CONNECTOR_`), read once per process."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONNECTOR_", env_file=".env", extra="ignore")

    data_dir: Path = Path("data")
    database_url: str = ""
    """Default: a SQLite file in `data_dir`. PostgreSQL: postgresql+asyncpg://user@host/db."""
    database_schema: str = Field(default="", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$|^$")
    """PostgreSQL only: keep all tables in this schema (for a database shared with other apps)."""
    initial_admin_key_file: Path | None = None
    """Where the first start writes the admin key it creates (0600, once); default
    `data_dir/initial-admin.key`. Read it, then delete it."""
    secret_key: SecretStr | None = None
    """Comma-separated Fernet keys; the first encrypts, all decrypt (rotation). Default: a key file
    generated in `data_dir` on first start."""
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""
    """Base URL the RMMs reach this service on; used to show webhook URLs. Default: http://host:port."""
    sync_interval_seconds: int = 3600
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "console"
    max_body_bytes: int = 1_048_576
    webhook_max_body_bytes: int = 262_144
    usage_upload_max_bytes: int = 5_242_880
    """The largest vendor usage report `POST /api/v1/billing/usage-uploads` accepts (413 beyond)."""
    allow_private_networks: bool = False
    """Allow connections to private-range hosts (on-premises PSAs/RMMs)."""
    allow_insecure_loopback: bool = False
    """Allow plain http:// base URLs to loopback addresses (tests, local fakes)."""
    notification_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long one notification (webhook POST or SMTP conversation) may take before it is retried."""
    run_worker: bool = True
    run_scheduler: bool = True
    db_pool_size: int = Field(default=10, ge=1)
    billing_push_lease_seconds: float = Field(default=60, gt=0)
    """How long a billing push holds its tenant's lease between renewals (renewed every third of it):
    a push whose process died blocks the next push for at most this long."""
    redis_url: str = ""
    """Where vendor request budgets are kept (redis://host:6379/0); empty: in the database. Either
    way every process of the deployment shares each connection's `max_concurrency` and
    `max_requests_per_minute`."""
    vendor_slot_lease_seconds: float = Field(default=30.0, gt=0)
    """How long a vendor call's concurrency slot is leased between renewals (renewed every third of
    it): the slots of a process that died come back after at most this long."""
    vendor_budget_wait_seconds: float = Field(default=3.0, gt=0)
    """How long one statement of the database budget may wait (a pooled connection, a lock) before
    it is tried again."""
    vendor_budget_outage_seconds: float = Field(default=30.0, gt=0)
    """How long a vendor call keeps asking a budget store that fails or times out before it goes
    ahead under this process's own limit (then, for as long again, calls try the store once)."""
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    """Opening a PostgreSQL connection."""
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    """Waiting for a free pooled connection."""
    db_command_timeout_seconds: float = Field(default=5.0, gt=0)
    """Each statement on the request path (API, dashboard, webhooks incl. each group commit,
    /readyz); on SQLite, the wait for the write lock. Past it the request answers 503."""
    db_work_command_timeout_seconds: float = Field(default=300.0, gt=0)
    """Each statement of background work (jobs: syncs, tickets, configuration and billing writes;
    the scheduler; CLI commands), which may legitimately scan large tables. Migrations: no limit."""

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'connector.db').resolve()}"

    def resolved_initial_admin_key_file(self) -> Path:
        return self.initial_admin_key_file or self.data_dir / "initial-admin.key"

    def resolved_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
