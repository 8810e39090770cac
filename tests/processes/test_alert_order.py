"""Alert order across real processes: a `connector serve --no-worker` stores the deliveries, four
`connector worker` processes (two job runs each) apply them concurrently and in no fixed order,
and the ConnectWise Manage fake on a real port is the PSA. Whatever order the workers happen to
apply an active and its clear in, the problem's end state is the one its newest event says."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.connectwise_manage.fake import DemoSeed, ManageFake
from tests.api.world import canonical_alert
from tests.conftest import _RAN, _postgres_reachable
from tests.support.processes import PG_URL, Deployment, ServedApp, query, wait_until

pytestmark = pytest.mark.processes

PROBLEMS = 20
WORKERS = 4
CONCURRENCY = 2  # 8 job runs at once in all
CLIENT = "c-1"


class World:
    """One tenant set up through the HTTP API of the serving process: an Automate RMM connection
    (canonical alerts), the Manage fake as the PSA, the client mapped, one ticket rule."""

    def __init__(self, deployment: Deployment, manage: ManageFake, served: ServedApp) -> None:
        self.deployment = deployment
        self.manage = manage
        self.seed: DemoSeed = manage.seed_demo(companies=1)
        self.serve = deployment.start("serve", "--no-worker")
        self.http = httpx.Client(base_url=self.serve.url, timeout=30)
        self.headers = deployment.api_key("engineer")
        self.rmm = self._post(
            "/api/v1/connections",
            {
                "name": "Automate",
                "kind": "connectwise_automate",
                "base_url": "https://automate.example.com",
                "credentials": {"username": "svc", "password": "pw", "client_id": "cid"},
            },
        )
        psa = self._post(
            "/api/v1/connections",
            {
                "name": "Manage",
                "kind": "connectwise_manage",
                "base_url": served.url,
                "credentials": manage.credentials(),
            },
        )
        self._post(
            "/api/v1/client-mappings",
            {
                "rmm_connection_id": self.rmm["id"],
                "rmm_client_id": CLIENT,
                "rmm_client_name": "Contoso",
                "psa_connection_id": psa["id"],
                "psa_company_id": str(self.company_id),
                "psa_company_name": "Contoso Ltd",
            },
        )
        self._post(
            "/api/v1/ticket-rules",
            {
                "psa_connection_id": psa["id"],
                "problem": None,
                "board_id": str(self.seed.board_id),
                "priority_id": str(self.seed.priority_ids["Priority 2 - High"]),
                "status_new_id": str(self.seed.new_status_id),
                "status_closed_id": str(self.seed.closed_status_id),
                "note_interval_minutes": 0,  # no note waits in the future: the queue drains
                "summary_template": "{problem_title} on {hostname}",
            },
        )

    @property
    def company_id(self) -> int:
        return self.seed.company_ids[0]

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(path, json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def alert(self, n: int, state: str, occurred_at: str) -> None:
        body = canonical_alert(
            f"evt-{n}-{state}-{occurred_at}",
            endpoint_id=f"ep-{n}",
            client_id=CLIENT,
            state=state,
            occurred_at=occurred_at,
        )
        response = self.http.post(
            f"/webhooks/{self.rmm['id']}", json=body, params={"token": self.rmm["webhook_secret"]}
        )
        assert response.status_code == 202, response.text
        assert response.json()["duplicate"] is False

    def start_workers(self) -> None:
        for _ in range(WORKERS):
            self.deployment.start("worker", "--concurrency", str(CONCURRENCY), "--poll-interval", "0.2")

    def drained(self) -> None:
        """Wait until every delivery is applied and no job is left to run."""

        def idle() -> bool:
            pending = query(self.deployment, "SELECT count(*) FROM deliveries WHERE status != 'processed'")
            jobs = query(self.deployment, "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")
            return pending[0][0] == 0 and jobs[0][0] == 0

        wait_until(idle, timeout=180, interval=0.3, what="the workers to drain every job")
        assert query(self.deployment, "SELECT count(*) FROM jobs WHERE status = 'dead'") == [(0,)]

    def problems(self) -> dict[str, list[dict[str, Any]]]:
        """endpoint id → its problem episodes (through the API), newest first."""
        response = self.http.get("/api/v1/problems", params={"limit": "1000"}, headers=self.headers)
        assert response.status_code == 200, response.text
        episodes: dict[str, list[dict[str, Any]]] = {}
        for problem in sorted(response.json(), key=lambda p: p["first_seen_at"], reverse=True):
            episodes.setdefault(problem["endpoint_id"], []).append(problem)
        return episodes

    def tickets(self) -> dict[str, list[bool]]:
        """host name → closed? for each ticket of it in the Manage fake."""
        out: dict[str, list[bool]] = {}
        for ticket in self.manage.tickets_for(self.company_id):
            host = ticket["summary"].split(" on ", 1)[1].split()[0]  # "… on EP-3-PC [CN-…]"
            out.setdefault(host, []).append(ticket["status"]["id"] == self.seed.closed_status_id)
        assert set(out) <= {f"EP-{n}-PC" for n in range(PROBLEMS)}, out
        return out


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    backend = str(request.param)
    if backend == "postgresql":
        reason = _postgres_reachable()
        if reason is not None:
            pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {reason}")
    _RAN[backend] += 1
    deployed = Deployment.create(backend, tmp_path / "deployment")
    deployed.migrate()
    try:
        yield deployed
    finally:
        deployed.close()


@pytest.fixture
def world(deployment: Deployment) -> Iterator[World]:
    manage = ManageFake()
    with ServedApp(manage.app) as served:
        built = World(deployment, manage, served)
        try:
            yield built
        finally:
            built.http.close()


def host(n: int) -> str:
    return f"EP-{n}-PC"


def still_open(episodes: dict[str, list[dict[str, Any]]]) -> list[int]:
    """The problems (by number) with an open episode."""
    return [n for n in range(PROBLEMS) if any(p["state"] == "open" for p in episodes.get(f"ep-{n}", []))]


def test_active_and_newer_clear_stored_before_the_workers_start_end_cleared(world: World) -> None:
    for n in range(PROBLEMS):
        world.alert(n, "active", "2026-11-20T10:00:00Z")
        world.alert(n, "cleared", "2026-11-20T10:05:00Z")
    world.start_workers()
    world.drained()

    episodes = world.problems()
    opened = still_open(episodes)
    tickets = world.tickets()
    open_tickets = [n for n in range(PROBLEMS) if not all(tickets.get(host(n), []))]
    assert opened == [], f"{len(opened)} of {PROBLEMS} problems ended open after their newer clear"
    assert open_tickets == [], f"{len(open_tickets)} of {PROBLEMS} tickets stayed open"
    assert all(len(episodes[f"ep-{n}"]) == 1 for n in range(PROBLEMS))
    assert all(len(t) <= 1 for t in tickets.values())


def test_clear_that_arrives_before_its_older_active_wins(world: World) -> None:
    world.start_workers()
    for n in range(PROBLEMS):
        world.alert(n, "cleared", "2026-11-20T10:05:00Z")
    world.drained()
    for n in range(PROBLEMS):
        world.alert(n, "active", "2026-11-20T10:00:00Z")
    world.drained()

    episodes = world.problems()
    opened = still_open(episodes)
    assert opened == [], f"{len(opened)} of {PROBLEMS} problems opened by an alert older than its clear"
    assert world.tickets() == {}, "a problem that had already cleared got a ticket"
    # The late active is kept as an episode that is already over, so the problems list shows it.
    for n in range(PROBLEMS):
        [episode] = episodes[f"ep-{n}"]
        assert episode["state"] == "cleared"
        assert episode["first_seen_at"].startswith("2026-11-20T10:00:00")
        assert episode["cleared_at"].startswith("2026-11-20T10:05:00")


def test_older_clear_after_a_newer_active_leaves_the_problem_open(world: World) -> None:
    world.start_workers()
    for n in range(PROBLEMS):
        world.alert(n, "active", "2026-11-20T10:00:00Z")
    world.drained()
    for n in range(PROBLEMS):
        world.alert(n, "active", "2026-11-20T10:10:00Z")
    world.drained()
    for n in range(PROBLEMS):
        world.alert(n, "cleared", "2026-11-20T10:05:00Z")
    world.drained()

    episodes = world.problems()
    closed = [n for n in range(PROBLEMS) if episodes[f"ep-{n}"][0]["state"] != "open"]
    assert closed == [], f"{len(closed)} of {PROBLEMS} live problems were closed by an older clear"
    tickets = world.tickets()
    closed_tickets = [n for n in range(PROBLEMS) if tickets.get(host(n)) != [False]]
    assert closed_tickets == [], f"{len(closed_tickets)} of {PROBLEMS} live problems lost their open ticket"
    for n in range(PROBLEMS):
        [episode] = episodes[f"ep-{n}"]
        assert episode["occurrences"] == 2 and episode["ticket_state"] == "open"
