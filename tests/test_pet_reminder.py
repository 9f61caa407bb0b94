"""The feeding reminder (`SetNextFeedingReminder`), through the `workbench` fixture: a new pet gets its
next feeding and a welcome note, and its completion moves the pet into quarantine."""

from __future__ import annotations

from workbench.ids import now_ms
from workbench.testing import Harness

DAY = 24 * 3600 * 1000
PET = {"name": "Jack", "species": "dog", "ageMonths": 24}
NOTE = "Welcome, Jack! First feeding check is scheduled for tomorrow."


def test_feeding_reminder_sets_next_feeding_and_notes(workbench: Harness) -> None:
    r = workbench.client.post("/pets", json=PET)
    assert r.status_code == 201
    pet = r.json()
    before = now_ms()
    workbench.drain()
    after = now_ms()

    got = workbench.client.get(f"/pets/{pet['id']}").json()
    assert abs(got["nextFeedingAt"] - (now_ms() + DAY)) < 10_000
    assert before + DAY <= got["nextFeedingAt"] <= after + DAY
    assert "Jack" in got["notes"]
    assert got["notes"] == NOTE
    assert got["status"] == "in_quarantine"  # the lifecycle's automatic move after the reminder
    assert workbench.state.get("pets", pet["id"]) == got

    trace = workbench.trace(r)
    assert trace.status == "completed"
    reminder = trace.span("SetNextFeedingReminder")
    assert (reminder.status, reminder.attempt) == ("completed", 1)
    assert reminder.topic == "feeding.reminder.enqueued"
    assert len(trace.spans_of("SetNextFeedingReminder")) == 1
    assert [(log.level, log.message, log.fields) for log in workbench.logs("SetNextFeedingReminder")] == [
        ("info", "Setting next feeding reminder", {"petId": pet["id"], "enqueuedAt": pet["createdAt"]}),
        ("info", "Next feeding reminder set", {"petId": pet["id"], "nextFeedingAt": got["nextFeedingAt"]}),
    ]
    completed = workbench.emitted("feeding.reminder.completed")
    assert [(e.step, e.span_id, e.subscribers) for e in completed] == [
        ("SetNextFeedingReminder", reminder.id, ["PetLifecycleOrchestrator"])
    ]
    assert completed[0].data == {"petId": pet["id"], "completedAt": completed[0].data["completedAt"]}
    assert before <= completed[0].data["completedAt"] <= after
    assert [e.data for e in workbench.emitted("pet.status.changed")] == [
        {"petId": pet["id"], "from": "new", "to": "in_quarantine", "kind": "automatic"}
    ]
    assert workbench.logs(level="warning") == []
    assert workbench.dead_letters() == []


def test_a_deleted_or_missing_pet_gets_no_reminder(workbench: Harness) -> None:
    r = workbench.client.post("/pets", json=PET)
    pet_id = r.json()["id"]
    assert workbench.client.delete(f"/pets/{pet_id}").status_code == 202  # before its reminder ran
    deleted = workbench.state.get("pets", pet_id)
    missing = workbench.emit("feeding.reminder.enqueued", {"petId": "404"})

    steps = workbench.drain().steps
    assert sorted(steps) == ["PetLifecycleOrchestrator", "SetNextFeedingReminder", "SetNextFeedingReminder"]

    assert workbench.state.get("pets", pet_id) == deleted  # no nextFeedingAt, no note, still deleted
    assert "nextFeedingAt" not in deleted and "notes" not in deleted
    assert workbench.state.get("pets", "404") is None  # not created by the reminder
    assert list(workbench.state.group("pets")) == [pet_id]
    for trace in (workbench.trace(r), workbench.trace(missing)):
        assert trace.status == "completed"
        assert trace.span("SetNextFeedingReminder").status == "completed"  # a warning, not a failure
    assert [(log.level, log.message, log.fields) for log in workbench.logs("SetNextFeedingReminder")] == [
        ("info", "Setting next feeding reminder", {"petId": pet_id, "enqueuedAt": r.json()["createdAt"]}),
        ("warning", "Pet not found or deleted; no reminder set", {"petId": pet_id}),
        ("info", "Setting next feeding reminder", {"petId": "404", "enqueuedAt": None}),
        ("warning", "Pet not found or deleted; no reminder set", {"petId": "404"}),
    ]
    assert workbench.emitted("feeding.reminder.completed") == []
    assert workbench.emitted("pet.status.changed") == []
    assert workbench.dead_letters() == []
