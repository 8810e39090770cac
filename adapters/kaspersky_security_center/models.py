"""Kaspersky Security Center connection settings and Open API wire models.

Names are the Open API's own (../shared/specs/kaspersky-security-center/NOTES.md): method arguments
(`wstrFilter`, `vecFieldsToReturn`, `strAccessor`, `nStart`, `nCount`, …) and the attribute names of
the "params" containers (`KLHST_WKS_*` hosts, `KLVSRV_*` virtual servers, `KLLIC_*` licence keys).
Values inside containers may be typed (`{"type": "datetime", "value": "2020-04-08T12:22:35Z"}`,
`{"type": "long", …}`, `{"type": "params", "value": {…}}`): `plain` unwraps them before reading.

What the adapter SENDS is strict (`extra="forbid"`); what it READS is lenient: every field
optional, unknown attributes ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from adapters.common import LenientRead, id_text

TYPED_VALUES = frozenset({"datetime", "long", "params", "binary", "float", "double", "date"})
"""The `type` tags of typed values inside "params" containers (NOTES "Transport")."""


def plain(value: Any) -> Any:
    """A value as read from the wire with every typed wrapper (`{"type": …, "value": …}`) unwrapped,
    through nested containers and arrays."""
    if isinstance(value, dict):
        if set(value) == {"type", "value"} and value.get("type") in TYPED_VALUES:
            return plain(value["value"])
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


# ---------------------------------------------------------------------------------------------
# Connection settings
# ---------------------------------------------------------------------------------------------


class KscCredentials(BaseModel):
    """A KSC internal user (or a domain account with `domain`) allowed to read the virtual servers'
    devices and licence keys; it signs in with `KSCBasic`."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=256)
    password: SecretStr = Field(min_length=1)
    domain: str | None = Field(
        default=None, max_length=256, description="For a domain account; unset: a KSC internal user"
    )

    @field_validator("username")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value


class KscOptions(BaseModel):
    """Per-connection options. The connection's base URL is the Administration Server's Open API
    address (`https://ksc.example.com:13299`)."""

    model_config = ConfigDict(extra="forbid")

    page_size: int = Field(
        default=500,
        ge=1,
        le=1000,
        description="Hosts (and licence keys) read per ChunkAccessor.GetItemsChunk / GetNextItems",
    )
    accessor_lifetime_seconds: int = Field(default=600, ge=60, le=7200)
    product: str = Field(
        default="Kaspersky Endpoint Security",
        min_length=1,
        max_length=200,
        description="The product name reported for hosts with real-time protection installed",
    )
    outdated_definitions_days: int = Field(
        default=7,
        ge=1,
        le=365,
        description="Anti-virus bases older than this many days count as out of date",
    )
    max_concurrency: int = Field(
        default=2,
        ge=1,
        le=8,
        description="Each Open API connection carries one call at a time; calls beyond this wait",
    )


# ---------------------------------------------------------------------------------------------
# What the adapter sends (method arguments)
# ---------------------------------------------------------------------------------------------


class _Write(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def wire(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class GetVServersWrite(_Write):
    lParentGroup: int


class FindParamsWrite(_Write):
    KLGRP_FIND_FROM_CUR_VS_ONLY: bool


class FindHostsWrite(_Write):
    wstrFilter: str
    vecFieldsToReturn: list[str]
    vecFieldsToOrder: list[dict[str, Any]]
    pParams: FindParamsWrite
    lMaxLifeTime: int


class AccessorWrite(_Write):
    strAccessor: str


class ChunkWrite(_Write):
    strAccessor: str
    nStart: int
    nCount: int


class EnumKeysWrite(_Write):
    pFields: list[str]
    pFieldsToOrder: list[dict[str, Any]]
    pOptions: dict[str, Any]
    lTimeoutSec: int


class NextItemsWrite(_Write):
    szwIteratorId: str
    nCount: int


class ReleaseIteratorWrite(_Write):
    szwIteratorId: str


# ---------------------------------------------------------------------------------------------
# What the adapter reads
# ---------------------------------------------------------------------------------------------


class _Read(LenientRead):
    pass


class PxgErrorRead(_Read):
    code: int | None = None
    module: str | None = None
    message: str | None = None


class VServerRead(_Read):
    KLVSRV_ID: str | None = None
    KLVSRV_UID: str | None = None
    KLVSRV_DN: str | None = None
    KLVSRV_ENABLED: bool | None = None

    _id = field_validator("KLVSRV_ID", mode="before")(id_text)


class HostRead(_Read):
    KLHST_WKS_HOSTNAME: str | None = None
    KLHST_WKS_DN: str | None = None
    KLHST_WKS_FQDN: str | None = None
    KLHST_WKS_WINHOSTNAME: str | None = None
    KLHST_WKS_GROUPID: int | None = None
    KLHST_WKS_STATUS: int | None = None
    KLHST_WKS_STATUS_ID: int | None = None
    KLHST_WKS_RTP_STATE: int | None = None
    KLHST_WKS_RTP_AV_BASES_TIME: datetime | None = None
    KLHST_WKS_LAST_FULLSCAN: datetime | None = None
    KLHST_WKS_VIRUS_COUNT: int | None = None
    KLHST_WKS_UNCURED_COUNT: int | None = None
    KLHST_WKS_LAST_VISIBLE: datetime | None = None
    KLHST_WKS_LAST_NAGENT_CONNECTED: datetime | None = None
    KLHST_WKS_NAG_VERSION: str | None = None
    KLHST_WKS_OS_NAME: str | None = None

    _id = field_validator("KLHST_WKS_HOSTNAME", mode="before")(id_text)


class LicenceKeyRead(_Read):
    KLLIC_SERIAL: str | None = None
    KLLIC_PROD_NAME: str | None = None
    KLLIC_KEY_TYPE: int | None = None
    KLLIC_LIC_COUNT: int | None = None
    KLLIC_NHOSTS_ASCURRENT: int | None = None
    KLLIC_LIMIT_DATE: datetime | None = None
