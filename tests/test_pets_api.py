"""The pet store API, every endpoint's success and error paths, through the `workbench` fixture
(`workbench.testing`): in-process requests, and the background jobs run to completion by drain().
The feeding reminder and the deletion reaper have their own files (test_pet_reminder.py,
test_pet_reaper.py)."""

from __future__ import annotations

from typing import Any

from workbench.ids import now_ms
from workbench.testing import Harness

DAY = 24 * 3600 * 1000
STATUS_REQUESTED = "Status change requested; the lifecycle orchestrator will apply it if allowed"


def create(workbench: Harness, **over: Any) -> dict[str, Any]:
    body = {"name": "Jack", "species": "dog", "ageMonths": 24, **over}
    r = workbench.client.post("/pets", json=body)
    assert r.status_code == 201, r.text
    pet: dict[str, Any] = r.json()
    return pet


def test_create_pet_returns_201_with_the_pet(workbench: Harness) -> None:
    before = now_ms()
    r = workbench.client.post("/pets", json={"name": "Jack", "species": "dog", "ageMonths": 24})
    assert r.status_code == 201
    pet = r.json()
    assert pet["name"] == "Jack" and pet["species"] == "dog" and pet["ageMonths"] == 24
    assert pet["status"] == "new" and pet["id"] == "1"
    assert before <= pet["createdAt"] == pet["updatedAt"] <= now_ms()
    assert r.headers["x-trace-id"]
    assert pet == {
        "id": "1", "name": "Jack", "species": "dog", "ageMonths": 24, "status": "new",
        "createdAt": pet["createdAt"], "updatedAt": pet["createdAt"],
    }  # fmt: skip
    assert workbench.state.get("pets", "1") == pet  # stored as answered; nothing ran in the background yet
    trace = workbench.trace(r)
    assert trace.id == r.headers["x-trace-id"] and trace.entry == "CreatePet"
    api = trace.span("CreatePet")
    assert api.status == "completed" and api.http == {"method": "POST", "path": "/pets", "status": 201}
    assert [(e.topic, e.data, e.subscribers, e.trace_id) for e in workbench.emitted()] == [
        ("pet.created", {"petId": "1", "event": "pet.created"}, ["PetLifecycleOrchestrator"], trace.id),
        ("feeding.reminder.enqueued", {"petId": "1", "enqueuedAt": pet["createdAt"]},
         ["SetNextFeedingReminder"], trace.id),
    ]  # fmt: skip
    assert [(log.message, log.fields) for log in workbench.logs("CreatePet")] == [
        ("Pet created", {"petId": "1", "name": "Jack", "species": "dog"})
    ]
    second = create(workbench, name="Luna", species="cat", ageMonths=3)
    assert second["id"] == "2"  # ids count up


BAD_CREATE_BODIES = [
    ({"species": "dog", "ageMonths": 1}, "name"),
    ({"name": "", "species": "dog", "ageMonths": 1}, "name"),
    ({"name": "A", "species": "fish", "ageMonths": 1}, "species"),
    ({"name": "A", "species": "dog", "ageMonths": -1}, "ageMonths"),
    ({"name": "A", "species": "dog", "ageMonths": "old"}, "ageMonths"),
    ({"name": "A", "species": "dog"}, "ageMonths"),
    ({"name": "A", "species": "dog", "ageMonths": 1, "colour": "red"}, "colour"),
]


def test_create_pet_rejects_bad_fields_naming_them(workbench: Harness) -> None:
    for body, field in BAD_CREATE_BODIES:  # one harness for all: each gets its own assertions
        r = workbench.client.post("/pets", json=body)
        assert r.status_code == 400, (body, r.text)
        assert field in r.text, (body, r.text)
        assert workbench.client.get("/pets").json() == {"pets": []}, body
        assert workbench.emitted() == [], body  # nothing was started for a rejected body
    assert workbench.drain().runs == 0


def test_malformed_json_is_400(workbench: Harness) -> None:
    r = workbench.client.post("/pets", content=b'{"name": "Ja', headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert workbench.state.group("pets") == {}
    assert workbench.emitted() == []


def test_list_pets_newest_first_without_deleted(workbench: Harness) -> None:
    a = create(workbench, name="A")
    b = create(workbench, name="B")
    c = create(workbench, name="C")
    assert workbench.client.delete(f"/pets/{b['id']}").status_code == 202
    r = workbench.client.get("/pets")
    assert r.status_code == 200
    assert [p["name"] for p in r.json()["pets"]] == ["C", "A"]
    every = workbench.client.get("/pets", params={"includeDeleted": "true"}).json()["pets"]
    assert [p["id"] for p in every] == [c["id"], b["id"], a["id"]]
    assert every[1]["status"] == "deleted"
    assert r.json()["pets"] == [c, a]  # the pets as created: the background work has not run


def test_get_pet_200_and_404(workbench: Harness) -> None:
    pet = create(workbench)
    r = workbench.client.get(f"/pets/{pet['id']}")
    assert r.status_code == 200 and r.json()["name"] == "Jack"
    assert r.json() == pet
    r = workbench.client.get("/pets/999")
    assert r.status_code == 404 and "999" in r.json()["error"]
    assert r.json() == {"error": "pet 999 not found"}


def test_update_pet_details_200(workbench: Harness) -> None:
    pet = create(workbench)
    r = workbench.client.put(f"/pets/{pet['id']}", json={"name": "Jackie", "ageMonths": 25})
    assert r.status_code == 200
    assert r.json()["name"] == "Jackie" and r.json()["ageMonths"] == 25 and r.json()["status"] == "new"
    assert workbench.client.get(f"/pets/{pet['id']}").json()["name"] == "Jackie"
    assert workbench.state.get("pets", pet["id"]) == r.json()
    assert r.json()["updatedAt"] >= pet["updatedAt"] and r.json()["createdAt"] == pet["createdAt"]
    assert workbench.emitted("pet.status.update.requested") == []  # details only: no status request
    assert [log.fields for log in workbench.logs("UpdatePet")] == [
        {"petId": pet["id"], "fields": ["ageMonths", "name"]}
    ]
    same = workbench.client.put(f"/pets/{pet['id']}", json={"status": "new"})  # the status it has
    assert same.status_code == 200 and same.json() == r.json()  # nothing to request, nothing changed
    assert workbench.emitted("pet.status.update.requested") == []


def test_update_pet_status_is_only_requested_202(workbench: Harness) -> None:
    pet = create(workbench)
    workbench.drain()  # new -> in_quarantine
    r = workbench.client.put(f"/pets/{pet['id']}", json={"status": "healthy"})
    assert r.status_code == 202
    assert r.json() == {
        "message": STATUS_REQUESTED,
        "petId": pet["id"],
        "currentStatus": "in_quarantine",
        "requestedStatus": "healthy",
    }
    assert workbench.client.get(f"/pets/{pet['id']}").json()["status"] == "in_quarantine"  # not written here
    requested = workbench.emitted("pet.status.update.requested")
    assert [(e.data, e.step, e.trace_id) for e in requested] == [
        (
            {"petId": pet["id"], "requestedStatus": "healthy", "currentStatus": "in_quarantine"},
            "UpdatePet",
            r.headers["x-trace-id"],
        )
    ]
    assert workbench.drain().steps == ["PetLifecycleOrchestrator"]
    assert workbench.client.get(f"/pets/{pet['id']}").json()["status"] == "available"  # healthy -> available
    trace = workbench.trace(r)
    assert trace.status == "completed"
    assert [(s.step, s.status) for s in trace.spans] == [
        ("UpdatePet", "completed"),
        ("PetLifecycleOrchestrator", "completed"),
    ]
    assert [e.data for e in workbench.emitted("pet.status.changed", trace_id=trace.id)] == [
        {"petId": pet["id"], "from": "in_quarantine", "to": "healthy", "kind": "requested"},
        {"petId": pet["id"], "from": "healthy", "to": "available", "kind": "automatic"},
    ]


BAD_UPDATE_BODIES = [({}, 400), ({"status": "flying"}, 400), ({"ageMonths": -3}, 400), ({"owner": "x"}, 400)]


def test_update_pet_bad_bodies(workbench: Harness) -> None:
    pet = create(workbench)
    for body, status in BAD_UPDATE_BODIES:  # one harness for all: each gets its own assertions
        r = workbench.client.put(f"/pets/{pet['id']}", json=body)
        assert r.status_code == status, (body, r.text)
        assert workbench.state.get("pets", pet["id"]) == pet, body  # unchanged
        assert workbench.emitted("pet.status.update.requested") == [], body


def test_update_missing_or_deleted_pet(workbench: Harness) -> None:
    missing = workbench.client.put("/pets/404", json={"name": "X"})
    assert missing.status_code == 404
    assert missing.json() == {"error": "pet 404 not found"}
    pet = create(workbench)
    workbench.client.delete(f"/pets/{pet['id']}")
    deleted = workbench.state.get("pets", pet["id"])
    conflict = workbench.client.put(f"/pets/{pet['id']}", json={"name": "X"})
    assert conflict.status_code == 409
    assert conflict.json() == {"error": f"pet {pet['id']} is deleted"}
    assert workbench.state.get("pets", pet["id"]) == deleted  # unchanged
    assert workbench.client.put(f"/pets/{pet['id']}", json={"status": "healthy"}).status_code == 409
    assert workbench.emitted("pet.status.update.requested") == []


def test_delete_is_soft_with_purge_in_30_days(workbench: Harness) -> None:
    pet = create(workbench)
    r = workbench.client.delete(f"/pets/{pet['id']}")
    assert r.status_code == 202
    body = r.json()
    assert body["petId"] == pet["id"] and body["message"]
    got = workbench.client.get(f"/pets/{pet['id']}").json()
    assert got["status"] == "deleted"
    assert got["purgeAt"] - got["deletedAt"] == 30 * DAY == body["purgeAt"] - got["deletedAt"]
    assert got == {**pet, "status": "deleted", "deletedAt": got["deletedAt"], "purgeAt": body["purgeAt"],
                   "updatedAt": got["deletedAt"]}  # fmt: skip
    again = workbench.client.delete(f"/pets/{pet['id']}")
    assert again.status_code == 202  # idempotent: the first purge date stands
    assert again.json()["purgeAt"] == body["purgeAt"]
    already = {"message": "Pet was already deleted", "petId": pet["id"], "purgeAt": body["purgeAt"]}
    assert again.json() == already
    assert workbench.state.get("pets", pet["id"]) == got
    missing = workbench.client.delete("/pets/12345")
    assert missing.status_code == 404
    assert missing.json() == {"error": "pet 12345 not found"}
    assert [(log.message, log.fields) for log in workbench.logs("DeletePet")] == [
        ("Pet deleted", {"petId": pet["id"], "purgeAt": body["purgeAt"]})
    ]


def test_openapi_documents_the_pet_api_only(workbench: Harness) -> None:
    spec = workbench.client.get("/schema/openapi.json").json()
    assert set(spec["paths"]) == {"/pets", "/pets/{id}"}
    post = spec["paths"]["/pets"]["post"]
    assert "requestBody" in post and "201" in post["responses"]
    schemas = spec["components"]["schemas"]
    assert any("species" in s.get("properties", {}) for s in schemas.values())
