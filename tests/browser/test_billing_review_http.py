"""The billing review page over plain HTTP (no browser): the period's proposals, single and bulk
decisions posted as forms and recorded through the billing service (with their audit entries), a
bad field shown on the page, the push, and viewers who only read. Run on every database backend."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tests.browser.test_dashboard_http import csrf_of, plaintext, sign_in
from tests.e2e.stack import Stack
from tests.e2e.test_billing import PERIOD, additions, record_usage
from tests.e2e.test_billing import stack as stack  # the fixture, re-exported

KeyMaker = Callable[..., Awaitable[dict[str, str]]]
PAGE = f"/billing/review?period={PERIOD}"


async def _waiting_world(stack: Stack) -> tuple[str, str]:
    """Two lines pushed (10 and 20 seats), then counts of 11 (within the tolerance) and 30 (beyond
    it). Returns the two companies' ids: (auto-approved, waiting)."""
    await record_usage(stack, "c-0", [10])
    await record_usage(stack, "c-1", [20])
    pushed = await stack.client.post("/api/v1/billing/push", json={"period": PERIOD}, headers=stack.headers)
    assert pushed.status_code == 200 and pushed.json()["summary"] == {"created": 2}, pushed.text
    await record_usage(stack, "c-0", [11])
    await record_usage(stack, "c-1", [30])
    return str(stack.seed.company_ids[0]), str(stack.seed.company_ids[1])


async def _proposals(stack: Stack) -> dict[str, dict[str, Any]]:
    response = await stack.client.get(
        "/api/v1/billing/proposals", params={"period": PERIOD}, headers=stack.headers
    )
    assert response.status_code == 200, response.text
    return {p["company_id"]: p for p in response.json()["proposals"]}


def _row(html: str, company_id: str) -> str:
    match = re.search(rf'<tr data-rule-id="[^"]+" data-company-id="{company_id}".*?</tr>', html, re.S)
    assert match is not None, html
    return match.group(0)


async def _decision(stack: Stack, company_id: str, proposed: int, action: str, **more: str) -> dict[str, str]:
    return {
        "period": PERIOD,
        "rule_id": (await _proposals(stack))[company_id]["rule_id"],
        "company_id": company_id,
        "proposed_quantity": str(proposed),
        "action": action,
        **more,
    }


async def test_the_page_lists_proposals_and_an_approval_is_recorded_with_its_audit_entry(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    auto, waiting = await _waiting_world(stack)
    await sign_in(client, plaintext(stack.headers))
    page = await client.get(PAGE)
    assert page.status_code == 200, page.text
    assert '<th scope="col">Company</th>' in page.text and 'id="proposals"' in page.text
    assert 'data-status="awaiting_review"' in _row(page.text, waiting)
    assert 'data-status="auto_approved"' in _row(page.text, auto)
    assert "+10" in _row(page.text, waiting) and "beyond the tolerance" in _row(page.text, waiting)
    assert "1 line(s) wait for a decision" in page.text
    assert 'aria-current="page">Review</a>' in page.text
    for other in ("/billing", "/billing/reconciliation"):
        linked = await client.get(other, params={"period": PERIOD})
        assert f'href="/billing/review?period={PERIOD}"' in linked.text, other

    token = csrf_of(page.text)
    approved = await client.post(
        "/billing/review/decisions",
        data={"csrf_token": token, **await _decision(stack, waiting, 30, "approve")},
    )
    assert approved.status_code == 303, approved.text
    assert approved.headers["location"] == f"{PAGE}&done=decided"
    proposal = (await _proposals(stack))[waiting]
    assert proposal["status"] == "approved" and proposal["write_quantity"] == 30
    events = await client.get(
        "/api/v1/audit", params={"kind": "billing_decision.recorded"}, headers=stack.headers
    )
    [event] = events.json()["events"]
    assert event["actor"] == "dashboard" and event["after"]["action"] == "approve", event
    after = await client.get(approved.headers["location"])
    assert "Decision recorded." in after.text
    assert "approved by" in _row(after.text, waiting) and "engineer test key" in _row(after.text, waiting)
    assert "Nothing waits for a decision." in after.text


async def test_an_adjustment_needs_a_whole_quantity_and_a_reason_shown_on_the_page(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    _, waiting = await _waiting_world(stack)
    await sign_in(client, plaintext(stack.headers))
    token = csrf_of((await client.get(PAGE)).text)
    for data, field in (
        ({"quantity": "twenty-five", "reason": "contract cap"}, "quantity"),
        ({"quantity": "", "reason": "contract cap"}, "quantity"),
        ({"quantity": "-3", "reason": "contract cap"}, "quantity"),
        ({"quantity": "25", "reason": "  "}, "reason"),
    ):
        bad = await client.post(
            "/billing/review/decisions",
            data={"csrf_token": token, **await _decision(stack, waiting, 30, "adjust", **data)},
        )
        assert bad.status_code == 422, (data, bad.text)
        assert re.search(rf'role="alert"[^>]*>Not recorded: {field}: ', bad.text), (data, bad.text)
        assert 'aria-invalid="true"' in _row(bad.text, waiting)
        assert 'id="proposals"' in bad.text  # the page itself, not an error page
    stale = await client.post(
        "/billing/review/decisions",
        data={"csrf_token": token, **await _decision(stack, waiting, 99, "approve")},
    )
    assert stale.status_code == 422 and "proposed_quantity: the proposal is now 30" in stale.text
    unknown = await client.post(
        "/billing/review/decisions", data={"csrf_token": token, **await _decision(stack, waiting, 30, "wire")}
    )
    assert unknown.status_code == 422 and "action: must be" in unknown.text
    assert (await _proposals(stack))[waiting]["status"] == "awaiting_review"  # nothing was recorded

    adjusted = await client.post(
        "/billing/review/decisions",
        data={
            "csrf_token": token,
            **await _decision(stack, waiting, 30, "adjust", quantity="25", reason="contract cap of 25 seats"),
        },
    )
    assert adjusted.status_code == 303, adjusted.text
    proposal = (await _proposals(stack))[waiting]
    assert proposal["status"] == "adjusted" and proposal["write_quantity"] == 25
    assert proposal["decision"]["reason"] == "contract cap of 25 seats"
    row = _row((await client.get(PAGE)).text, waiting)
    assert "adjusted to 25" in row and "contract cap of 25 seats" in row


async def test_bulk_decisions_and_the_push_from_the_page(client: httpx.AsyncClient, stack: Stack) -> None:
    auto, _ = await _waiting_world(stack)
    await sign_in(client, plaintext(stack.headers))
    page = await client.get(PAGE)
    token = csrf_of(page.text)
    picks = dict(re.findall(r'form="bulk-form" id="pick-\d+" name="(pick-\d+)" value="([^"]+)"', page.text))
    assert len(picks) == 2, page.text
    none_ticked = await client.post(
        "/billing/review/bulk", data={"csrf_token": token, "period": PERIOD, "action": "approve"}
    )
    assert none_ticked.status_code == 422 and "pick: tick at least one line" in none_ticked.text

    dismissed = await client.post(
        "/billing/review/bulk",
        data={"csrf_token": token, "period": PERIOD, "action": "dismiss", "reason": "wait a month", **picks},
    )
    assert dismissed.status_code == 303, dismissed.text
    assert {p["status"] for p in (await _proposals(stack)).values()} == {"dismissed"}
    assert "Decisions recorded for 2 line(s)." in (await client.get(dismissed.headers["location"])).text
    approved = await client.post(
        "/billing/review/bulk", data={"csrf_token": token, "period": PERIOD, "action": "approve", **picks}
    )
    assert approved.status_code == 303, approved.text
    proposals = await _proposals(stack)
    assert {p["status"] for p in proposals.values()} == {"approved"}
    assert proposals[auto]["decision"]["reason"] is None
    events = await client.get(
        "/api/v1/audit", params={"kind": "billing_decision.recorded"}, headers=stack.headers
    )
    assert len(events.json()["events"]) == 4

    pushed = await client.post("/billing/review/push", data={"csrf_token": token, "period": PERIOD})
    assert pushed.status_code == 303, pushed.text
    assert "done=pushed&written=2&waiting=0&failed=0" in pushed.headers["location"]
    after = await client.get(pushed.headers["location"])
    assert "Pushed: 2 line(s) written to the PSA; 0 line(s) still wait." in after.text
    assert 'id="no-proposals"' in after.text
    assert [a["quantity"] for a in additions(stack, 0)] == [11]
    assert [a["quantity"] for a in additions(stack, 1)] == [30]


async def test_viewers_read_the_page_and_cannot_decide_or_push(
    client: httpx.AsyncClient, stack: Stack, make_key: KeyMaker
) -> None:
    _, waiting = await _waiting_world(stack)
    await sign_in(client, plaintext(await make_key("viewer")))
    page = await client.get(PAGE)
    assert page.status_code == 200
    assert 'data-status="awaiting_review"' in _row(page.text, waiting)
    assert "/billing/review/decisions" not in page.text and "/billing/review/push" not in page.text
    assert 'id="review-read-only"' in page.text
    token = csrf_of(page.text)
    for path, data in (
        ("/billing/review/decisions", await _decision(stack, waiting, 30, "approve")),
        ("/billing/review/bulk", {"period": PERIOD, "action": "approve", "pick-1": "x:30:y"}),
        ("/billing/review/push", {"period": PERIOD}),
    ):
        refused = await client.post(path, data={"csrf_token": token, **data})
        assert refused.status_code == 403 and "engineer" in refused.text, path
        assert (await client.post(path, data=data)).status_code == 403  # no token either
    assert (await _proposals(stack))[waiting]["status"] == "awaiting_review"
    bad_period = await client.get("/billing/review", params={"period": "2026-13"})
    assert bad_period.status_code == 200 and "The period must look like YYYY-MM" in bad_period.text
