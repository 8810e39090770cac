"""The adapters' shared helpers: the create-or-recover rule every PSA write relies on, server URLs
and the bearer-token cache."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from adapters.common import BearerToken, TokenCache, create_or_recover, server_root
from adapters.errors import ConfigurationError, TransientVendorError, VendorRequestError
from adapters.testing.harness import RecordingSleep


class Script:
    """A create that answers with `error` (or "made"), and a find that answers `found` in turn."""

    def __init__(self, error: Exception | None, *found: str | Exception | None) -> None:
        self.error = error
        self.found = list(found)
        self.creates = 0
        self.finds = 0

    async def create(self) -> str:
        self.creates += 1
        if self.error is not None:
            raise self.error
        return "made"

    async def find(self) -> str | None:
        self.finds += 1
        answer = self.found.pop(0) if self.found else None
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_a_create_that_succeeds_is_not_looked_up() -> None:
    script, sleeps = Script(None), RecordingSleep()
    assert await create_or_recover(script.create, script.find, sleep=sleeps, what="x") == "made"
    assert (script.creates, script.finds, sleeps.calls) == (1, 0, [])


@pytest.mark.parametrize(
    "error", [TransientVendorError("refused", maybe_applied=False), VendorRequestError("bad", field="x")]
)
async def test_a_create_the_vendor_certainly_did_not_apply_is_raised_without_a_look_up(
    error: Exception,
) -> None:
    script, sleeps = Script(error), RecordingSleep()
    with pytest.raises(type(error)) as caught:
        await create_or_recover(script.create, script.find, sleep=sleeps, what="x")
    assert caught.value is error
    assert (script.creates, script.finds, sleeps.calls) == (1, 0, [])


async def test_a_maybe_applied_create_is_found_after_the_delays_it_takes() -> None:
    script, sleeps = Script(TransientVendorError("timed out"), None, "found"), RecordingSleep()
    assert await create_or_recover(script.create, script.find, sleep=sleeps, what="x") == "found"
    assert (script.creates, script.finds, sleeps.calls) == (1, 2, [2.0])


async def test_a_transient_error_while_looking_is_one_more_miss() -> None:
    script = Script(TransientVendorError("timed out"), TransientVendorError("502"), "found")
    sleeps = RecordingSleep()
    assert await create_or_recover(script.create, script.find, sleep=sleeps, what="x") == "found"
    assert (script.finds, sleeps.calls) == (2, [2.0])


async def test_a_create_never_found_raises_its_own_error_after_looking_patiently() -> None:
    error = TransientVendorError("timed out")
    script, sleeps = Script(error), RecordingSleep()
    with pytest.raises(TransientVendorError) as caught:
        await create_or_recover(script.create, script.find, sleep=sleeps, what="x")
    assert caught.value is error
    assert (script.creates, script.finds, sleeps.calls) == (1, 3, [2.0, 5.0])


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("rmm.example.com", "https://rmm.example.com"),
        ("https://rmm.example.com:8443/tenant/API/", "https://rmm.example.com:8443/tenant"),
        ("http://10.0.0.5/api-explorer", "http://10.0.0.5"),
        ("https://rmm.example.com/apis", "https://rmm.example.com/apis"),
    ],
)
def test_server_root_normalizes_what_an_engineer_typed(typed: str, expected: str) -> None:
    assert server_root(typed, vendor="Test", suffixes=("/api", "/api-explorer")) == expected


@pytest.mark.parametrize("typed", ["", "   ", "https://:8443"])
def test_server_root_without_a_host_names_base_url(typed: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        server_root(typed, vendor="Test")
    assert caught.value.field == "base_url"


async def test_token_cache_renews_once_for_requests_refused_together_and_before_expiry() -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    fetched: list[datetime] = []

    async def fetch(at: datetime) -> BearerToken:
        fetched.append(at)
        await asyncio.sleep(0)
        return BearerToken(f"t{len(fetched)}", at + timedelta(hours=1))

    tokens = TokenCache(fetch, clock=lambda: now[0], margin=timedelta(minutes=2))
    assert (await tokens.get()).value == "t1"
    assert (await tokens.get()).value == "t1"  # reused
    refused = await asyncio.gather(*(tokens.get(force=True) for _ in range(5)))
    assert {t.value for t in refused} == {"t2"} and len(fetched) == 2  # one renewal for all five
    now[0] += timedelta(minutes=59)  # within the margin of expiry
    assert await tokens.headers(False) == {"Authorization": "Bearer t3"}
