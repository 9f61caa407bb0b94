"""The pet store API, every endpoint's success and error paths, with the background jobs run by a
real (burst, in-process) arq worker against the test Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from workbench.ids import now_ms
from workbench.registry import Registry
from workbench.settings import Settings
from workbench.web.app import create_app

from .conftest import drain

DAY = 24 * 3600 * 1000


@pytest.fixture
async def client(settings: Settings, registry: Registry) -> AsyncIterator[AsyncTestClient[Any]]:
    app = create_app(settings, registry)
    async with AsyncTestClient(app) as c:
        yield c


async def create(client: AsyncTestClient[Any], **over: Any) -> dict[str, Any]:
    body = {"name": "Jack", "species": "dog", "ageMonths": 24, **over}
    r = await client.post("/pets", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def test_create_pet_returns_201_with_the_pet(client: AsyncTestClient[Any]) -> None:
    before = now_ms()
    r = await client.post("/pets", json={"name": "Jack", "species": "dog", "ageMonths": 24})
    assert r.status_code == 201
    pet = r.json()
    assert pet["name"] == "Jack" and pet["species"] == "dog" and pet["ageMonths"] == 24
    assert pet["status"] == "new" and pet["id"] == "1"
    assert before <= pet["createdAt"] == pet["updatedAt"] <= now_ms()
    assert r.headers["x-trace-id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"species": "dog", "ageMonths": 1}, "name"),
        ({"name": "", "species": "dog", "ageMonths": 1}, "name"),
        ({"name": "A", "species": "fish", "ageMonths": 1}, "species"),
        ({"name": "A", "species": "dog", "ageMonths": -1}, "ageMonths"),
        ({"name": "A", "species": "dog", "ageMonths": "old"}, "ageMonths"),
        ({"name": "A", "species": "dog"}, "ageMonths"),
        ({"name": "A", "species": "dog", "ageMonths": 1, "colour": "red"}, "colour"),
    ],
)
async def test_create_pet_rejects_bad_fields_naming_them(
    client: AsyncTestClient[Any], body: dict[str, Any], field: str
) -> None:
    r = await client.post("/pets", json=body)
    assert r.status_code == 400
    assert field in r.text
    assert (await client.get("/pets")).json() == {"pets": []}


async def test_malformed_json_is_400(client: AsyncTestClient[Any]) -> None:
    r = await client.post("/pets", content=b'{"name": "Ja', headers={"content-type": "application/json"})
    assert r.status_code == 400


async def test_feeding_reminder_sets_next_feeding_and_notes(
    client: AsyncTestClient[Any], settings: Settings, registry: Registry
) -> None:
    pet = await create(client)
    await drain(settings, registry)
    got = (await client.get(f"/pets/{pet['id']}")).json()
    assert abs(got["nextFeedingAt"] - (now_ms() + DAY)) < 10_000
    assert "Jack" in got["notes"]
    assert got["status"] == "in_quarantine"  # the lifecycle's automatic move after the reminder


async def test_list_pets_newest_first_without_deleted(client: AsyncTestClient[Any]) -> None:
    a = await create(client, name="A")
    b = await create(client, name="B")
    c = await create(client, name="C")
    assert (await client.delete(f"/pets/{b['id']}")).status_code == 202
    r = await client.get("/pets")
    assert r.status_code == 200
    assert [p["name"] for p in r.json()["pets"]] == ["C", "A"]
    every = (await client.get("/pets", params={"includeDeleted": "true"})).json()["pets"]
    assert [p["id"] for p in every] == [c["id"], b["id"], a["id"]]


async def test_get_pet_200_and_404(client: AsyncTestClient[Any]) -> None:
    pet = await create(client)
    r = await client.get(f"/pets/{pet['id']}")
    assert r.status_code == 200 and r.json()["name"] == "Jack"
    r = await client.get("/pets/999")
    assert r.status_code == 404 and "999" in r.json()["error"]


async def test_update_pet_details_200(client: AsyncTestClient[Any]) -> None:
    pet = await create(client)
    r = await client.put(f"/pets/{pet['id']}", json={"name": "Jackie", "ageMonths": 25})
    assert r.status_code == 200
    assert r.json()["name"] == "Jackie" and r.json()["ageMonths"] == 25 and r.json()["status"] == "new"
    assert (await client.get(f"/pets/{pet['id']}")).json()["name"] == "Jackie"


async def test_update_pet_status_is_only_requested_202(
    client: AsyncTestClient[Any], settings: Settings, registry: Registry
) -> None:
    pet = await create(client)
    await drain(settings, registry)  # new -> in_quarantine
    r = await client.put(f"/pets/{pet['id']}", json={"status": "healthy"})
    assert r.status_code == 202
    assert r.json() == {
        "message": r.json()["message"],
        "petId": pet["id"],
        "currentStatus": "in_quarantine",
        "requestedStatus": "healthy",
    }
    assert (await client.get(f"/pets/{pet['id']}")).json()["status"] == "in_quarantine"  # not written here
    await drain(settings, registry)
    assert (await client.get(f"/pets/{pet['id']}")).json()["status"] == "available"  # healthy -> available


@pytest.mark.parametrize(
    ("body", "status"),
    [({}, 400), ({"status": "flying"}, 400), ({"ageMonths": -3}, 400), ({"owner": "x"}, 400)],
)
async def test_update_pet_bad_bodies(client: AsyncTestClient[Any], body: dict[str, Any], status: int) -> None:
    pet = await create(client)
    r = await client.put(f"/pets/{pet['id']}", json=body)
    assert r.status_code == status, r.text


async def test_update_missing_or_deleted_pet(client: AsyncTestClient[Any]) -> None:
    assert (await client.put("/pets/404", json={"name": "X"})).status_code == 404
    pet = await create(client)
    await client.delete(f"/pets/{pet['id']}")
    assert (await client.put(f"/pets/{pet['id']}", json={"name": "X"})).status_code == 409


async def test_delete_is_soft_with_purge_in_30_days(client: AsyncTestClient[Any]) -> None:
    pet = await create(client)
    r = await client.delete(f"/pets/{pet['id']}")
    assert r.status_code == 202
    body = r.json()
    assert body["petId"] == pet["id"] and body["message"]
    got = (await client.get(f"/pets/{pet['id']}")).json()
    assert got["status"] == "deleted"
    assert got["purgeAt"] - got["deletedAt"] == 30 * DAY == body["purgeAt"] - got["deletedAt"]
    again = await client.delete(f"/pets/{pet['id']}")
    assert again.status_code == 202  # idempotent: the first purge date stands
    assert again.json()["purgeAt"] == body["purgeAt"]
    assert (await client.delete("/pets/12345")).status_code == 404


async def test_reaper_purges_only_pets_past_purge_at(
    client: AsyncTestClient[Any], settings: Settings, registry: Registry, sync_redis: Any
) -> None:
    old = await create(client, name="Old")
    recent = await create(client, name="Recent")
    keep = await create(client, name="Alive")
    for pet in (old, recent):
        await client.delete(f"/pets/{pet['id']}")
    # move Old's purge date into the past
    import json

    raw = json.loads(sync_redis.hget("wb:state:pets", old["id"]))
    raw["purgeAt"] = now_ms() - 1000
    sync_redis.hset("wb:state:pets", old["id"], json.dumps(raw))

    r = await client.post("/_workbench/api/cron/DeletionReaper/run", headers={"x-workbench": "1"})
    assert r.status_code == 202
    trace_id = r.json()["traceId"]
    await drain(settings, registry)
    assert (await client.get(f"/pets/{old['id']}")).status_code == 404
    assert (await client.get(f"/pets/{recent['id']}")).json()["status"] == "deleted"
    assert (await client.get(f"/pets/{keep['id']}")).status_code == 200

    trace = (await client.get(f"/_workbench/api/traces/{trace_id}")).json()
    messages = [e["message"] for s in trace["spanList"] for e in s["events"] if e["kind"] == "log"]
    assert messages[0] == "Deletion reaper started"
    assert messages.count("Pet purged") == 1
    summary = next(
        e for s in trace["spanList"] for e in s["events"] if e.get("message") == "Deletion reaper finished"
    )
    assert summary["fields"] == {"scanned": 3, "purged": 1}


async def test_openapi_documents_the_pet_api_only(client: AsyncTestClient[Any]) -> None:
    spec = (await client.get("/schema/openapi.json")).json()
    assert set(spec["paths"]) == {"/pets", "/pets/{id}"}
    post = spec["paths"]["/pets"]["post"]
    assert "requestBody" in post and "201" in post["responses"]
    schemas = spec["components"]["schemas"]
    assert any("species" in s.get("properties", {}) for s in schemas.values())
