"""The N-central fake itself: paging limits with the real error shape, deterministic seeding."""

from __future__ import annotations

from typing import Any

import httpx

from adapters.ncentral.fake import NcentralFake

BASE = "https://ncentral.example.com"


async def test_fake_enforces_paging_limits_with_the_real_error_shape() -> None:
    fake = NcentralFake()
    fake.seed_fleet(customers=3, devices=30)
    async with httpx.AsyncClient(transport=fake.transport(), base_url=BASE) as client:
        anonymous = await client.get("/api/devices")
        assert anonymous.status_code == 401
        assert anonymous.json()["status"] == 401
        assert anonymous.json()["message"].startswith("[ID=")
        auth = await client.post(
            "/api/auth/authenticate", headers={"Authorization": f"Bearer {fake.api_token}"}
        )
        headers = {"Authorization": f"Bearer {auth.json()['tokens']['access']['token']}"}
        for size in ("0", "1001", "x"):
            refused = await client.get("/api/devices", params={"pageSize": size}, headers=headers)
            assert refused.status_code == 400 and "pageSize" in refused.json()["message"]
        default = (await client.get("/api/devices", headers=headers)).json()
        assert (default["pageSize"], default["itemCount"], default["totalItems"]) == (50, 30, 30)
        last = (
            await client.get("/api/devices", params={"pageNumber": 3, "pageSize": 12}, headers=headers)
        ).json()
        assert (last["itemCount"], last["totalPages"]) == (6, 3)
        assert "nextPage" not in last["_links"] and "previousPage" in last["_links"]


def test_fake_seeding_is_deterministic() -> None:
    def snapshot(fake: NcentralFake) -> list[tuple[Any, ...]]:
        fake.seed_fleet(customers=5, devices=200)
        return [
            (d.id, d.customer_id, d.name, d.last_checkin, tuple((s.module, s.state) for s in d.services))
            for d in fake.devices.values()
        ]

    assert snapshot(NcentralFake()) == snapshot(NcentralFake())
