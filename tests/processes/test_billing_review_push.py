"""An approved billing change survives a crash: a `connector sync --billing` SIGKILLed while the PSA
fake holds the answer to the approved write, then run again, leaves exactly one line with the
approved quantity, on every PSA kind through its real adapter. On SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import pytest

from tests.processes.psa_billing import PsaBillingWorld, psa_world
from tests.processes.test_billing_push import EXIT_PUSH_RUNNING, PERIOD, World, execute, world
from tests.support.processes import query, wait_until

__all__ = ["psa_world", "world"]
"""The fixtures: every PSA kind's fake with usage and one billing rule; twelve Manage companies."""
pytestmark = pytest.mark.processes


def _post(world: World, path: str, body: dict[str, object]) -> dict[str, object]:
    response = httpx.post(f"{world.serve.url}{path}", json=body, headers=world.headers, timeout=120)
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


def test_a_crash_between_approval_and_write_writes_once(psa_world: PsaBillingWorld) -> None:
    """On every PSA kind, through its real adapter: the approved write reaches the PSA, the push is
    killed before it hears back, and the next push finds the line there instead of writing it again."""
    world = psa_world
    others = len(world.companies) - 1
    first = world.post("/api/v1/billing/push", {"period": PERIOD})["summary"]
    # "updated": a PSA that bills through a line that already exists (a contract service's seats).
    assert first in ({"created": others + 1}, {"updated": others + 1}), first
    company = world.companies[0]
    assert world.quantities(company) == [10]
    execute(
        world.deployment,
        "UPDATE usage_daily SET peak_installed = 30, last_installed = 30 WHERE client_id = 'c-0'",
        [{}],
    )
    waiting = world.post("/api/v1/billing/push", {"period": PERIOD})
    assert waiting["summary"] == {"waiting": 1, "unchanged": others}, waiting
    [(rule_id,)] = query(world.deployment, "SELECT id FROM billing_rules")
    decision = {"rule_id": rule_id, "company_id": company, "proposed_quantity": 30, "action": "approve"}
    world.post("/api/v1/billing/decisions", {"period": PERIOD, "decisions": [decision]})

    world.writes.delay = 30.0
    doomed = world.push_cli()
    wait_until(
        lambda: world.quantities(company) == [30],
        timeout=60,
        interval=0.02,
        what="the approved quantity in the PSA",
    )
    doomed.kill()
    assert world.writes.held >= 1, "the write was not held"
    assert world.recorded(company) == 10, "the kill did not land between the PSA write and its record"

    world.writes.delay = 0
    runs: list[tuple[int, str]] = []

    def rerun_done() -> bool:  # refused (exit 3) while the dead push's lease is live
        proc = world.push_cli()
        runs.append((proc.wait(), proc.output()))
        return runs[-1][0] != EXIT_PUSH_RUNNING

    wait_until(rerun_done, timeout=60, interval=0.5, what="a push after the killed one's lease")
    assert runs[-1][0] == 0, runs[-1][1]
    assert world.quantities(company) == [30], runs[-1][1]
    for n, other in enumerate(world.companies[1:], start=1):
        assert world.quantities(other) == [10 + n], (other, runs[-1][1])
    assert world.recorded(company) == 30, runs[-1][1]


def test_a_line_edited_in_the_psa_survives_pushes_racing_from_the_cli_and_the_api(world: World) -> None:
    """Someone sets a line to 14 in the PSA; two CLI pushes and an API push then race. Each reads
    the line back first: none overwrites it, every run that ran reports it waiting, and no line doubles."""
    world.manage.latency = 0
    assert _post(world, "/api/v1/billing/push", {"period": PERIOD})["summary"] == {"created": 12}
    company = world.seed.company_ids[0]
    [addition] = world.manage.additions_for(world.seed.agreement_ids[company])
    addition["quantity"] = 14.0  # as a member saving the agreement in Manage
    world.manage.latency = 0.05

    clis = [world.push_cli(), world.push_cli()]
    api = httpx.post(
        f"{world.serve.url}/api/v1/billing/push", json={"period": PERIOD}, headers=world.headers, timeout=120
    )
    codes = [proc.wait() for proc in clis]
    outputs = "\n---\n".join(proc.output() for proc in clis)
    assert set(codes) <= {0, EXIT_PUSH_RUNNING}, outputs
    assert api.status_code in (200, 409), api.text
    ran = [proc.output() for proc, code in zip(clis, codes, strict=True) if code == 0]
    if api.status_code == 200:
        assert api.json()["summary"] == {"waiting": 1, "unchanged": 11}, api.text
    assert ran or api.status_code == 200, outputs
    for output in ran:
        assert "changed in the PSA outside connector" in output, output
    assert [a["quantity"] for a in world.manage.additions_for(world.seed.agreement_ids[company])] == [14]
    assert set(world.lines().values()) == {1}, world.lines()
    [(recorded,)] = query(
        world.deployment, "SELECT quantity FROM billing_line_states WHERE company_id = :c", c=str(company)
    )
    [(read,)] = query(
        world.deployment, "SELECT quantity FROM billing_psa_reads WHERE company_id = :c", c=str(company)
    )
    assert (recorded, read) == (10, 14)
