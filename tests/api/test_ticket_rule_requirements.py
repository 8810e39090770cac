"""A ticket rule that leaves unset a field the PSA's tenant requires on every ticket is refused when
it is saved (422 naming the field), not at ticket time: Autotask says which ticket fields are
required in its field metadata (`/Tickets/entityInformation/fields`, `isRequired`)."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.autotask import SPEC
from adapters.testing.harness import PsaWorld, load_harness
from tests.support.vendors import VendorRouter


async def _autotask(
    client: Any, vendors: VendorRouter, headers: dict[str, str], **options: Any
) -> tuple[PsaWorld, str]:
    world = load_harness(SPEC).start(companies=("Acme Dental",), devices_per_company=1)
    assert isinstance(world, PsaWorld)
    for host in world.hosts:
        vendors.add(host, world.transport())
    return await _autotask_on(client, world, headers, **options)


async def _autotask_on(
    client: Any, world: PsaWorld, headers: dict[str, str], **options: Any
) -> tuple[PsaWorld, str]:
    body = world.connection.as_json()
    body["name"] = f"Autotask {options or ''} {id(body)}"
    body["options"] = {**body.get("options", {}), **options}
    response = await client.post("/api/v1/connections", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return world, response.json()["id"]


def rule(world: PsaWorld, connection_id: str, **changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"psa_connection_id": connection_id, **world.ticket_ids.rule_fields()}
    fields.update(changes)
    return {name: value for name, value in fields.items() if value is not ...}


async def test_a_rule_without_a_required_priority_is_refused_naming_it(
    client: Any, vendors: VendorRouter, make_key: Any
) -> None:
    headers = await make_key("engineer")
    world, connection_id = await _autotask(client, vendors, headers)
    fake: Any = world.fake  # type: ignore[attr-defined]
    fields = {f["name"]: f for f in fake._field_info("Tickets")}
    assert fields["priority"]["isRequired"] is True

    refused = await client.post(
        "/api/v1/ticket-rules", json=rule(world, connection_id, priority_id=...), headers=headers
    )
    assert refused.status_code == 422, refused.text
    (error,) = refused.json()["errors"]
    assert error["field"] == "priority_id" and "requires this on every new ticket" in error["message"]

    created = await client.post("/api/v1/ticket-rules", json=rule(world, connection_id), headers=headers)
    assert created.status_code == 201, created.text
    path = f"/api/v1/ticket-rules/{created.json()['id']}"
    cleared = await client.patch(path, json={"priority_id": None}, headers=headers)
    assert cleared.status_code == 422 and cleared.json()["errors"][0]["field"] == "priority_id"
    # A disabled rule sends no tickets, so it may be saved incomplete.
    disabled = await client.patch(path, json={"priority_id": None, "enabled": False}, headers=headers)
    assert disabled.status_code == 200, disabled.text
    # Once the tenant stops requiring it (a new adapter reads the metadata afresh), it is accepted.
    fake.required["Tickets"] = tuple(n for n in fake.required["Tickets"] if n != "priority")
    _, other = await _autotask_on(client, world, headers)
    accepted = await client.post(
        "/api/v1/ticket-rules", json=rule(world, other, priority_id=...), headers=headers
    )
    assert accepted.status_code == 201, accepted.text


@pytest.mark.parametrize("required", [("companyID", "title", "status", "priority", "issueType")])
async def test_every_required_field_is_named_and_a_configured_default_satisfies_priority(
    client: Any, vendors: VendorRouter, make_key: Any, required: tuple[str, ...]
) -> None:
    headers = await make_key("engineer")
    world, connection_id = await _autotask(client, vendors, headers, default_priority_id=1)
    fake: Any = world.fake  # type: ignore[attr-defined]
    fake.required["Tickets"] = required
    body = rule(world, connection_id, priority_id=..., type_id=...)
    refused = await client.post("/api/v1/ticket-rules", json=body, headers=headers)
    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["type_id"]
