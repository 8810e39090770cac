"""A forced removal of a PSA connection as real processes: `connector serve` SIGKILLed while it is
writing the hand-over notes removes nothing (the connection, its mappings and every open ticket link
are still there, with no audit entry claiming otherwise), and the retry on a new process hands every
ticket over, so no open problem is ever left without its ticket link. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.connectwise_manage.fake import ManageFake
from tests.api.world import canonical_alert
from tests.conftest import _RAN, _postgres_reachable
from tests.support.processes import PG_URL, Deployment, ServedApp, query, wait_until

pytestmark = pytest.mark.processes

TICKETS = 4
HANDOVER = "no longer managed by connector"
ORPHANS = (
    "SELECT count(*) FROM problems WHERE state = 'open' AND id NOT IN (SELECT problem_id FROM ticket_links)"
)


class HeldNotes:
    """ASGI wrapper around the fake: while `hold` is set, a ticket note is stored at once but its
    answer never comes, so the serving process is stuck mid-removal, after a PSA write."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.hold = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        note = scope["type"] == "http" and scope["method"] == "POST" and scope["path"].endswith("/notes")
        if not (note and self.hold):
            await self.app(scope, receive, send)
            return

        async def swallow(_message: dict[str, Any]) -> None:
            return None

        await self.app(scope, receive, swallow)
        await asyncio.sleep(3600)


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    backend = str(request.param)
    if backend == "postgresql" and (reason := _postgres_reachable()) is not None:
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {reason}")
    _RAN[backend] += 1
    deployed = Deployment.create(backend, tmp_path / "deployment")
    deployed.migrate()
    try:
        yield deployed
    finally:
        deployed.close()


def test_a_removal_killed_mid_way_removes_nothing_and_its_retry_hands_every_ticket_over(
    deployment: Deployment,
) -> None:
    manage = ManageFake()
    seed = manage.seed_demo(companies=1)
    company = seed.company_ids[0]
    notes = HeldNotes(manage.app)
    headers = deployment.api_key("engineer")
    with ServedApp(notes) as served:
        serve = deployment.start("serve")
        http = httpx.Client(base_url=serve.url, headers=headers, timeout=30)

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            response = http.post(path, json=body)
            assert response.status_code == 201, response.text
            created: dict[str, Any] = response.json()
            return created

        rmm = post(
            "/api/v1/connections",
            {
                "name": "Automate",
                "kind": "connectwise_automate",
                "base_url": "https://automate.example.com",
                "credentials": {"username": "svc", "password": "pw", "client_id": "cid"},
            },
        )
        psa = post(
            "/api/v1/connections",
            {
                "name": "Manage",
                "kind": "connectwise_manage",
                "base_url": served.url,
                "credentials": manage.credentials(),
            },
        )
        post(
            "/api/v1/client-mappings",
            {
                "rmm_connection_id": rmm["id"],
                "rmm_client_id": "c-1",
                "psa_connection_id": psa["id"],
                "psa_company_id": str(company),
            },
        )
        post(
            "/api/v1/ticket-rules",
            {"psa_connection_id": psa["id"], "problem": None, "board_id": str(seed.board_id)},
        )
        for n in range(TICKETS):
            alert = canonical_alert(f"evt-{n}", endpoint_id=f"ep-{n}", client_id="c-1")
            sent = http.post(f"/webhooks/{rmm['id']}", json=alert, params={"token": rmm["webhook_secret"]})
            assert sent.status_code == 202, sent.text
        wait_until(lambda: len(manage.tickets_for(company)) == TICKETS, timeout=60, what="the tickets")
        wait_until(
            lambda: (
                query(deployment, "SELECT count(*) FROM ticket_links WHERE state = 'open'") == [(TICKETS,)]
            ),
            timeout=30,
            what="the ticket links",
        )

        def handed_over_notes() -> int:
            return sum(
                HANDOVER in note["text"]
                for t in manage.tickets_for(company)
                for note in manage.notes_for(t["id"])
            )

        notes.hold = True
        answers: list[BaseException | httpx.Response] = []

        def remove() -> None:
            try:
                answers.append(http.delete(f"/api/v1/connections/{psa['id']}", params={"force": "true"}))
            except httpx.HTTPError as exc:
                answers.append(exc)

        thread = threading.Thread(target=remove)
        thread.start()
        wait_until(lambda: handed_over_notes() == 1, timeout=30, what="the first hand-over note")
        serve.kill()
        thread.join(30)
        assert answers and isinstance(answers[0], httpx.HTTPError), answers  # no answer: it died

        # Nothing was removed: the connection, its mapping and every open link are there, unaudited.
        assert query(deployment, "SELECT count(*) FROM connections WHERE id = :id", id=psa["id"]) == [(1,)]
        assert query(deployment, "SELECT count(*) FROM client_mappings") == [(1,)]
        links = query(deployment, "SELECT state, psa_connection_id FROM ticket_links")
        assert links == [("open", psa["id"])] * TICKETS
        assert query(deployment, ORPHANS) == [(0,)]
        assert query(
            deployment,
            "SELECT count(*) FROM audit_events WHERE kind IN ('connection.deleted', 'ticket.handed_over')",
        ) == [(0,)]

        notes.hold = False
        again = deployment.start("serve")
        retried = httpx.delete(
            f"{again.url}/api/v1/connections/{psa['id']}",
            params={"force": "true"},
            headers=headers,
            timeout=60,
        )
        assert retried.status_code == 200, retried.text
        assert {(t["action"], t["noted"]) for t in retried.json()["tickets"]} == {("handed_over", True)}
        assert len(retried.json()["tickets"]) == TICKETS
        assert query(deployment, "SELECT count(*) FROM connections WHERE id = :id", id=psa["id"]) == [(0,)]
        states = query(deployment, "SELECT state, psa_connection_id FROM ticket_links")
        assert states == [("handed_over", None)] * TICKETS
        assert query(deployment, ORPHANS) == [(0,)]
        assert query(deployment, "SELECT count(*) FROM problems WHERE state = 'open'") == [(TICKETS,)]
        assert query(deployment, "SELECT count(*) FROM audit_events WHERE kind = 'ticket.handed_over'") == [
            (TICKETS,)
        ]
        # Every ticket got its note (the one the killed process wrote, twice) and none was closed.
        assert handed_over_notes() == TICKETS + 1
        assert all(t["status"]["id"] != seed.closed_status_id for t in manage.tickets_for(company))
        http.close()
