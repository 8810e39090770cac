"""The HTTP face of the fake Administration Server: `POST /api/v1.0/Class.Method` with the named
arguments as JSON, KSCBasic sign-in to `Session.StartSession`, `X-KSC-Session` and `X-KSC-VServer`
checks, the host accessors and key iterators, and fault hooks."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters.kaspersky_security_center.fake.store import (
    Accessor,
    FakeVServer,
    Fault,
    Iterator,
    KscStore,
    Row,
    Session,
)
from adapters.testing.faults import AsgiFake, decode_body, lowered_headers, retry_after_value

PREFIX = "/api/v1.0/"
ARGUMENTS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "Session.StartSession": (frozenset(), frozenset()),
    "VServers.GetVServers": (frozenset({"lParentGroup"}), frozenset({"lParentGroup"})),
    "HostGroup.FindHosts": (
        frozenset({"wstrFilter", "vecFieldsToReturn", "vecFieldsToOrder", "pParams", "lMaxLifeTime"}),
        frozenset({"wstrFilter", "vecFieldsToReturn"}),
    ),
    "ChunkAccessor.GetItemsCount": (frozenset({"strAccessor"}), frozenset({"strAccessor"})),
    "ChunkAccessor.GetItemsChunk": (
        frozenset({"strAccessor", "nStart", "nCount"}),
        frozenset({"strAccessor", "nStart", "nCount"}),
    ),
    "ChunkAccessor.Release": (frozenset({"strAccessor"}), frozenset({"strAccessor"})),
    "LicenseKeys.EnumKeys": (
        frozenset({"pFields", "pFieldsToOrder", "pOptions", "lTimeoutSec"}),
        frozenset({"pFields"}),
    ),
    "GroupSyncIterator.GetNextItems": (
        frozenset({"szwIteratorId", "nCount"}),
        frozenset({"szwIteratorId", "nCount"}),
    ),
    "GroupSyncIterator.ReleaseIterator": (frozenset({"szwIteratorId"}), frozenset({"szwIteratorId"})),
}
"""Every method the fake answers: (accepted arguments, required arguments)."""
BASIC = re.compile(r"^KSCBasic\s+(.*)$")
PAIR = re.compile(r'(\w+)="([^"]*)"')
UNCURED_FILTER = re.compile(r"^\(KLHST_WKS_UNCURED_COUNT\s*>\s*(\d+)\)$")


class KscApiError(Exception):
    def __init__(
        self, status: int, message: str, code: int = 1, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = {"PxgError": {"code": self.code, "module": "KLSTD", "message": self.message}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def _b64(value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise KscApiError(401, "malformed KSCBasic credentials", code=1105) from None


class KscFake(KscStore, AsgiFake):
    """One fake Administration Server with virtual servers. Construct, seed, then point an adapter
    at `app`. `call_count` keys are operation names (`list_agents`, …) and method names."""

    def __init__(self, *, now: datetime | None = None) -> None:
        super().__init__(now=now)
        self.app = Starlette(routes=[Route("/api/v1.0/{method}", self._dispatch, methods=["POST"])])

    # -- hooks -----------------------------------------------------------------------------------

    def fail_next(self, operation: str, status: int = 500, times: int | None = 1) -> None:
        self.faults.append(Fault(status, times, path=operation))

    def rate_limit(self, operation: str, times: int | None = 1, retry_after: float = 1.0) -> None:
        self.faults.append(Fault(429, times, path=operation, retry_after=retry_after))

    def clear_faults(self) -> None:
        self.faults.clear()

    def expire_sessions(self) -> None:
        self.sessions.clear()

    def call_count(self, key: str | None = None) -> int:
        return sum(self.calls.values()) if key is None else self.calls[key]

    def reset_calls(self) -> None:
        self.calls.clear()
        self.statuses.clear()
        self.requests.clear()

    # -- dispatch --------------------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> JSONResponse:
        method = request.path_params["method"]
        body = decode_body(await request.body())
        headers = lowered_headers(request)
        self.requests.append({"method": method, "headers": headers, "body": body})
        try:
            answer = self._answer(method, headers, body)
        except KscApiError as error:
            self.statuses[error.status] += 1
            return error.response()
        self.statuses[200] += 1
        return JSONResponse(answer)

    def _answer(self, method: str, headers: dict[str, str], body: Any) -> Row:
        if method not in ARGUMENTS:
            raise KscApiError(404, f"no method {method}", code=1190)
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise KscApiError(400, "the request body is not a JSON object", code=1174)
        accepted, required = ARGUMENTS[method]
        unknown = sorted(set(body) - accepted)
        if unknown:
            raise KscApiError(400, f"{method}: unknown argument {unknown[0]}", code=1174)
        missing = sorted(required - set(body))
        if missing:
            raise KscApiError(400, f"{method}: missing argument {missing[0]}", code=1174)
        if method == "Session.StartSession":
            return self._start_session(headers)
        session = self._session(headers)
        self.calls[method] += 1
        handler: Callable[[Session, dict[str, Any]], Row] = getattr(self, "_" + method.replace(".", "_"))
        return handler(session, body)

    def _fault(self, operation: str) -> None:
        self.calls[operation] += 1
        for fault in self.faults:
            if fault.matches(None, operation):
                fault.claim()
                raise KscApiError(
                    fault.status,
                    "too many requests" if fault.status == 429 else "injected failure",
                    headers=fault.retry_headers(),
                )

    # -- sessions --------------------------------------------------------------------------------

    def _vserver_of(self, headers: dict[str, str]) -> str | None:
        sent = headers.get("x-ksc-vserver")
        if sent is None:
            return None
        uid = _b64(sent)
        if uid not in self.vservers:
            raise KscApiError(401, f"no virtual server {uid!r}", code=1105)
        return uid

    def _start_session(self, headers: dict[str, str]) -> Row:
        self.calls["Session.StartSession"] += 1
        found = BASIC.match(headers.get("authorization", ""))
        if found is None:
            raise KscApiError(401, "authentication required", code=1105)
        pairs = dict(PAIR.findall(found.group(1)))
        if pairs.get("internal") != "1" or "user" not in pairs or "pass" not in pairs:
            raise KscApiError(401, "only internal users can sign in here", code=1105)
        user, password = _b64(pairs["user"]), _b64(pairs["pass"])
        if self.users.get(user) != password:
            raise KscApiError(401, "invalid user name or password", code=1105)
        vserver = self._vserver_of(headers)
        token = secrets.token_urlsafe(24)
        self.sessions[token] = Session(token, vserver)
        return {"PxgRetVal": token}

    def _session(self, headers: dict[str, str]) -> Session:
        session = self.sessions.get(headers.get("x-ksc-session", ""))
        if session is None:
            raise KscApiError(401, "session not found or expired", code=1105)
        if self._vserver_of(headers) != session.vserver:
            raise KscApiError(403, "the session belongs to another virtual server", code=1105)
        return session

    def _server(self, session: Session) -> FakeVServer:
        if session.vserver is None:
            raise KscApiError(400, "this fake lists hosts and keys per virtual server only", code=1174)
        return self.vservers[session.vserver]

    # -- methods ---------------------------------------------------------------------------------

    def _VServers_GetVServers(self, session: Session, body: dict[str, Any]) -> Row:
        self._fault("list_customers")
        if session.vserver is not None:
            raise KscApiError(403, "virtual servers are listed on the main server", code=1105)
        group = body["lParentGroup"]
        rows = [
            {
                "type": "params",
                "value": {
                    "KLVSRV_ID": s.id,
                    "KLVSRV_UID": s.uid,
                    "KLVSRV_DN": s.name,
                    "KLVSRV_GRP": s.group,
                    "KLVSRV_ENABLED": True,
                },
            }
            for s in self.vservers.values()
            if group == -1 or s.group == group
        ]
        return {"PxgRetVal": rows}

    def _HostGroup_FindHosts(self, session: Session, body: dict[str, Any]) -> Row:
        server = self._server(session)
        text = str(body["wstrFilter"]).strip()
        fields = [str(f) for f in body["vecFieldsToReturn"]]
        if text == "":
            kind, hosts = "agents", list(server.hosts.values())
        else:
            found = UNCURED_FILTER.match(text)
            if found is None:
                raise KscApiError(400, f"filter not supported by this fake: {text}", code=1174)
            self._fault("list_threats")
            kind = "threats"
            hosts = [h for h in server.hosts.values() if h.uncured_count > int(found.group(1))]
        accessor = Accessor(
            secrets.token_hex(8), session.vserver, kind, [self.host_row(h, fields) for h in hosts]
        )
        self.accessors[accessor.id] = accessor
        return {"PxgRetVal": len(accessor.rows), "strAccessor": accessor.id}

    def _accessor(self, session: Session, body: dict[str, Any]) -> Accessor:
        accessor = self.accessors.get(str(body["strAccessor"]))
        if accessor is None or accessor.vserver != session.vserver:
            raise KscApiError(400, "accessor not found or released", code=1174)
        return accessor

    def _ChunkAccessor_GetItemsCount(self, session: Session, body: dict[str, Any]) -> Row:
        return {"PxgRetVal": len(self._accessor(session, body).rows)}

    def _ChunkAccessor_GetItemsChunk(self, session: Session, body: dict[str, Any]) -> Row:
        accessor = self._accessor(session, body)
        if accessor.kind == "agents":
            self._fault("list_agents")
        start, count = int(body["nStart"]), int(body["nCount"])
        if start < 0 or count < 0:
            raise KscApiError(400, "nStart and nCount must not be negative", code=1174)
        rows = accessor.rows[start : start + count]
        return {"pChunk": {"KLCSP_ITERATOR_ARRAY": rows}, "PxgRetVal": len(rows)}

    def _ChunkAccessor_Release(self, session: Session, body: dict[str, Any]) -> Row:
        accessor = self._accessor(session, body)
        del self.accessors[accessor.id]
        self.released.append(accessor.id)
        return {}

    def _LicenseKeys_EnumKeys(self, session: Session, body: dict[str, Any]) -> Row:
        server = self._server(session)
        self._fault("licence_use")
        fields = [str(f) for f in body["pFields"]]
        rows = [self.key_row(server, key, fields) for key in server.keys]
        iterator = Iterator(secrets.token_hex(8), session.vserver, rows)
        self.iterators[iterator.id] = iterator
        return {"lKeyCount": len(rows), "wstrIterator": iterator.id}

    def _iterator(self, session: Session, body: dict[str, Any]) -> Iterator:
        iterator = self.iterators.get(str(body["szwIteratorId"]))
        if iterator is None or iterator.vserver != session.vserver:
            raise KscApiError(400, "iterator not found or released", code=1174)
        return iterator

    def _GroupSyncIterator_GetNextItems(self, session: Session, body: dict[str, Any]) -> Row:
        iterator = self._iterator(session, body)
        count = int(body["nCount"])
        rows = iterator.rows[iterator.offset : iterator.offset + count]
        iterator.offset += len(rows)
        return {"pData": {"KLCSP_ITERATOR_ARRAY": rows}, "bEOF": iterator.offset >= len(iterator.rows)}

    def _GroupSyncIterator_ReleaseIterator(self, session: Session, body: dict[str, Any]) -> Row:
        iterator = self._iterator(session, body)
        del self.iterators[iterator.id]
        self.released.append(iterator.id)
        return {}


__all__ = ["ARGUMENTS", "KscApiError", "KscFake", "retry_after_value"]
