"""Usage profiles and uploaded vendor usage reports over HTTP: saving and auditing profiles, every
refusal a 4xx naming the field, uploads as a CSV body or a multipart file, a re-upload replacing
the earlier one, and the reconciliation's console column from them."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

import pytest

from adapters.errors import AdapterError
from tests.api.world import World, build_world, psa_body
from tests.support.dummy_adapters import DummyPsa

PERIOD = "2026-10"
PRODUCT = "Kaspersky Endpoint Security"
"""The world's billing rule's product; the report's SKU names contain it."""


@pytest.fixture
async def world(client: Any, make_key: Any) -> World:
    return await build_world(client, await make_key("engineer"))


def profile_body(world: World, **changes: Any) -> dict[str, Any]:
    return {
        "name": "Vendor X",
        "psa_connection_id": world.psa["id"],
        "customer_column": "Kunde",
        "customer_kind": "customer_name",
        "aliases": {"Fabrikam GmbH": "251"},
        "product_column": "Artikel",
        "quantity_column": "Anzahl",
        "delimiter": ";",
        **changes,
    }


async def make_profile(client: Any, world: World, **changes: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/billing/usage-profiles", json=profile_body(world, **changes), headers=world.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def upload(client: Any, world: World, profile_id: str, text: str, **kw: Any) -> Any:
    return await client.post(
        "/api/v1/billing/usage-uploads",
        params={"period": kw.get("period", PERIOD), "profile": profile_id},
        content=text.encode(),
        headers={**world.headers, "Content-Type": "text/csv"},
    )


REPORT = (
    "\ufeffKunde;Artikel;Anzahl\n"
    f'"Contoso Ltd";"{PRODUCT} Cloud; Plus";4\n'  # the mapping's name for company 250
    f"Fabrikam GmbH;{PRODUCT};2\n"  # an alias to 251
    f"Northwind;{PRODUCT};3\n"  # nobody
    f"Contoso Ltd;{PRODUCT};1.000\n"  # rejected
)


async def test_profiles_are_saved_listed_replaced_deleted_and_audited(client: Any, world: World) -> None:
    created = await make_profile(client, world)
    assert created["delimiter"] == ";" and created["header_row"] == 0
    path = f"/api/v1/billing/usage-profiles/{created['id']}"
    listed = (await client.get("/api/v1/billing/usage-profiles", headers=world.headers)).json()
    assert [p["id"] for p in listed] == [created["id"]]
    replaced = await client.put(
        path, json=profile_body(world, delimiter="tab", header_row=2), headers=world.headers
    )
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["delimiter"], replaced.json()["header_row"]) == ("\t", 2)
    assert (await client.get(path, headers=world.headers)).json()["header_row"] == 2
    assert (await client.delete(path, headers=world.headers)).status_code == 204
    assert (await client.get(path, headers=world.headers)).status_code == 404
    audit = (
        await client.get("/api/v1/audit", params={"kind": "usage_profile"}, headers=world.headers)
    ).json()
    kinds = sorted(entry["kind"] for entry in audit["events"])
    assert kinds == ["usage_profile.created", "usage_profile.deleted", "usage_profile.updated"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"customer_kind": "guess"}, "customer_kind"),
        ({"delimiter": "|"}, "delimiter"),
        ({"header_row": -1}, "header_row"),
        ({"quantity_column": ""}, "quantity_column"),
        ({"name": None}, "name"),
        ({"psa_connection_id": "nope"}, "psa_connection_id"),
        ({"unknown": 1}, "unknown"),
    ],
)
async def test_a_bad_profile_is_a_422_naming_the_field(
    client: Any, world: World, changes: dict[str, Any], field: str
) -> None:
    response = await client.post(
        "/api/v1/billing/usage-profiles", json=profile_body(world, **changes), headers=world.headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field


async def test_a_profile_names_a_psa_connection_and_a_new_name(client: Any, world: World) -> None:
    response = await client.post(
        "/api/v1/billing/usage-profiles",
        json=profile_body(world, psa_connection_id=world.rmm["id"]),
        headers=world.headers,
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "psa_connection_id"
    await make_profile(client, world)
    again = await client.post(
        "/api/v1/billing/usage-profiles", json=profile_body(world), headers=world.headers
    )
    assert again.status_code == 422 and again.json()["errors"][0]["field"] == "name"


async def test_an_upload_lists_accepted_unmatched_and_rejected_rows(client: Any, world: World) -> None:
    profile = await make_profile(client, world)
    response = await upload(client, world, profile["id"], REPORT)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["rows_read"], body["rows_accepted"], body["replaced"]) == (4, 2, False)
    assert {(r["company_id"], r["quantity"], tuple(r["lines"])) for r in body["accepted"]} == {
        ("250", 4, (2,)),
        ("251", 2, (3,)),
    }
    [unmatched] = body["unmatched"]
    assert (unmatched["customer"], unmatched["quantity"], unmatched["lines"]) == ("Northwind", 3, [4])
    assert unmatched["reason"] == "no PSA company has this name"
    assert body["rejected"] == [{"line": 5, "column": "Anzahl", "reason": "not a whole number: '1.000'"}]
    listed = (
        await client.get("/api/v1/billing/usage-uploads", params={"period": PERIOD}, headers=world.headers)
    ).json()
    assert [u["id"] for u in listed] == [body["id"]]
    assert (
        await client.get("/api/v1/billing/usage-uploads", params={"period": "2026-11"}, headers=world.headers)
    ).json() == []


async def test_a_re_upload_replaces_the_earlier_one(client: Any, world: World) -> None:
    profile = await make_profile(client, world)
    first = (await upload(client, world, profile["id"], REPORT)).json()
    second = await upload(client, world, profile["id"], f"Kunde;Artikel;Anzahl\nContoso Ltd;{PRODUCT};7\n")
    assert second.status_code == 201, second.text
    assert second.json()["replaced"] is True
    listed = (await client.get("/api/v1/billing/usage-uploads", headers=world.headers)).json()
    assert [u["id"] for u in listed] == [second.json()["id"]] != [first["id"]]
    rows = await reconciliation(client, world)
    assert [(r["company_id"], r["console_count"], r["console_source"]) for r in rows] == [
        ("250", 7, "upload")
    ]
    other_period = await upload(client, world, profile["id"], REPORT, period="2026-11")
    assert other_period.status_code == 201
    assert len((await client.get("/api/v1/billing/usage-uploads", headers=world.headers)).json()) == 2


async def reconciliation(client: Any, world: World) -> list[dict[str, Any]]:
    response = await client.get(
        "/api/v1/billing/reconciliation", params={"period": PERIOD}, headers=world.headers
    )
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["rows"]
    return rows


async def test_the_reconciliation_shows_the_uploaded_count_and_its_source(client: Any, world: World) -> None:
    profile = await make_profile(client, world)
    uploaded = (await upload(client, world, profile["id"], REPORT)).json()
    rows = {r["company_id"]: r for r in await reconciliation(client, world)}
    assert (rows["250"]["console_count"], rows["250"]["console_source"], rows["250"]["rmm_count"]) == (
        4,
        "upload",
        0,
    )
    assert {c["code"]: c["ids"] for c in rows["250"]["causes"]} == {
        "uploaded_seats_without_rmm_device": [uploaded["id"]]
    }
    assert [c["code"] for c in rows[None]["causes"]] == ["upload_customer_unmatched"]
    assert rows[None]["causes"][0]["ids"] == ["Northwind"]
    response = await client.get(
        "/api/v1/billing/reconciliation",
        params={"period": PERIOD},
        headers={**world.headers, "Accept": "text/csv"},
    )
    table = list(csv.DictReader(io.StringIO(response.text)))
    contoso = next(line for line in table if line["company_id"] == "250")
    assert (contoso["console_count"], contoso["console_source"]) == ("4", "upload")
    gone = await client.delete(f"/api/v1/billing/usage-uploads/{uploaded['id']}", headers=world.headers)
    assert gone.status_code == 204
    assert await reconciliation(client, world) == []


async def test_a_multipart_form_file_is_accepted(client: Any, world: World) -> None:
    profile = await make_profile(client, world)
    response = await client.post(
        "/api/v1/billing/usage-uploads",
        params={"period": PERIOD, "profile": profile["id"]},
        files={"file": ("november.csv", REPORT.encode(), "text/csv")},
        headers=world.headers,
    )
    assert response.status_code == 201, response.text
    assert (response.json()["filename"], response.json()["rows_accepted"]) == ("november.csv", 2)


async def test_every_row_bad_is_a_422_naming_line_and_column(client: Any, world: World) -> None:
    profile = await make_profile(client, world)
    response = await upload(client, world, profile["id"], "Kunde;Artikel;Anzahl\nA;EDR;x\nB;EDR;\n")
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {"field": "Anzahl", "message": "line 2: not a whole number: 'x'"},
        {"field": "Anzahl", "message": "line 3: empty"},
    ]
    assert (await client.get("/api/v1/billing/usage-uploads", headers=world.headers)).json() == []


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("Kunde;Artikel;Seats\nA;EDR;1\n", "quantity_column"),
        ("Kunde;Artikel;Anzahl\n", "body"),
        ("", "header_row"),
        ("Kunde;Artikel;Anzahl\nA\0;EDR;1\n", "body"),
    ],
)
async def test_a_file_the_profile_cannot_read_is_a_422(
    client: Any, world: World, text: str, field: str
) -> None:
    profile = await make_profile(client, world)
    response = await upload(client, world, profile["id"], text)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field


async def test_query_and_media_type_refusals(client: Any, world: World) -> None:
    profile = await make_profile(client, world)
    unknown = await upload(client, world, "nope", REPORT)
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "profile"
    bad_period = await upload(client, world, profile["id"], REPORT, period="2026-13")
    assert bad_period.status_code == 422 and bad_period.json()["errors"][0]["field"] == "period"
    as_json = await client.post(
        "/api/v1/billing/usage-uploads",
        params={"period": PERIOD, "profile": profile["id"]},
        json={"csv": REPORT},
        headers=world.headers,
    )
    assert as_json.status_code == 415
    no_file = await client.post(
        "/api/v1/billing/usage-uploads",
        params={"period": PERIOD, "profile": profile["id"]},
        files={"note": (None, b"x")},
        headers=world.headers,
    )
    assert no_file.status_code == 422 and no_file.json()["errors"][0]["field"] == "file"
    missing = await client.delete("/api/v1/billing/usage-uploads/nope", headers=world.headers)
    assert missing.status_code == 404


async def test_a_file_over_the_limit_is_a_413(client: Any, world: World) -> None:
    profile = await make_profile(client, world)
    big = "Kunde;Artikel;Anzahl\n" + f"Contoso Ltd;{PRODUCT};1\n" * 200_000
    assert len(big.encode()) > 5 * 1024 * 1024
    response = await upload(client, world, profile["id"], big)
    assert response.status_code == 413, response.text
    just_under = "Kunde;Artikel;Anzahl\n" + f"Contoso Ltd;{PRODUCT};1\n" * 40_000  # above the 1 MiB API limit
    assert len(just_under.encode()) > 1024 * 1024
    assert (await upload(client, world, profile["id"], just_under)).status_code == 201


async def test_an_unreadable_psa_matches_mapped_companies_with_a_warning(
    client: Any, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DummyPsa, "catalog_error", AdapterError("PSA down"))
    profile = await make_profile(client, world, psa_connection_id=(await second_psa(client, world))["id"])
    response = await upload(client, world, profile["id"], REPORT)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["warnings"] and "client mappings only" in body["warnings"][0]


async def second_psa(client: Any, world: World) -> dict[str, Any]:
    """A PSA connection created after the world, so no cached look-up of it exists."""
    response = await client.post("/api/v1/connections", json=psa_body("Second PSA"), headers=world.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_uploads_are_audited(client: Any, world: World) -> None:
    profile = await make_profile(client, world)
    first = (await upload(client, world, profile["id"], REPORT)).json()
    second = (await upload(client, world, profile["id"], REPORT)).json()
    gone = await client.delete(f"/api/v1/billing/usage-uploads/{first['id']}", headers=world.headers)
    assert gone.status_code == 404  # replaced by the second
    assert (
        await client.delete(f"/api/v1/billing/usage-uploads/{second['id']}", headers=world.headers)
    ).status_code == 204
    audit = (await client.get("/api/v1/audit", params={"kind": "usage_upload"}, headers=world.headers)).json()
    entries = [(e["kind"], e["summary"]) for e in reversed(audit["events"])]
    assert [kind for kind, _ in entries] == [
        "usage_upload.created",
        "usage_upload.created",
        "usage_upload.deleted",
    ]
    assert "2 row(s) matched, 1 unmatched, 1 rejected" in entries[0][1]
    assert "replacing the earlier upload" in entries[1][1]


async def test_uploads_at_once_store_one(client: Any, world: World) -> None:
    """Two uploads of one period and profile racing: one is stored, the other replaces it or is
    refused (409); never both."""
    profile = await make_profile(client, world)
    answers = await asyncio.gather(*(upload(client, world, profile["id"], REPORT) for _ in range(3)))
    assert {a.status_code for a in answers} <= {201, 409}, [a.text for a in answers]
    assert 201 in {a.status_code for a in answers}
    listed = (await client.get("/api/v1/billing/usage-uploads", headers=world.headers)).json()
    assert len(listed) == 1
    rows = {r["company_id"]: r for r in await reconciliation(client, world)}
    assert rows["250"]["console_count"] == 4


async def test_removing_the_psa_connection_names_its_profiles(client: Any, world: World) -> None:
    profile = await make_profile(client, world)
    await upload(client, world, profile["id"], REPORT)
    path = f"/api/v1/connections/{world.psa['id']}"
    refused = await client.delete(path, headers=world.headers)
    assert refused.status_code == 409, refused.text
    assert {"kind": "usage_profile", "id": profile["id"], "label": "Vendor X"} in refused.json()["dependents"]
    assert (await client.delete(path, params={"force": "true"}, headers=world.headers)).status_code == 200
    assert (await client.get("/api/v1/billing/usage-profiles", headers=world.headers)).json() == []
    assert (await client.get("/api/v1/billing/usage-uploads", headers=world.headers)).json() == []


async def test_many_rejected_rows_are_listed_up_to_a_cap(client: Any, world: World) -> None:
    profile = await make_profile(client, world)
    text = "Kunde;Artikel;Anzahl\n" + f"Contoso Ltd;{PRODUCT};1\n" + f"Contoso Ltd;{PRODUCT};x\n" * 1005
    response = await client.post(
        "/api/v1/billing/usage-uploads",
        params={"period": PERIOD, "profile": profile["id"]},
        files={"file": ("many.csv", text.encode(), "text/csv")},
        headers=world.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["rows_read"], body["rows_accepted"], len(body["rejected"])) == (1006, 1, 1000)
    assert body["warnings"] == ["5 more rejected rows are not listed"]
    assert body["filename"] == "many.csv"


async def test_another_tenants_profile_cannot_be_uploaded_with(
    client: Any, world: World, make_key: Any
) -> None:
    profile = await make_profile(client, world)
    globex = await make_key("engineer", tenant="globex")
    response = await client.post(
        "/api/v1/billing/usage-uploads",
        params={"period": PERIOD, "profile": profile["id"]},
        content=REPORT.encode(),
        headers={**globex, "Content-Type": "text/csv"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0] == {"field": "profile", "message": "no such usage profile"}
    assert (await client.get("/api/v1/billing/usage-profiles", headers=globex)).json() == []
