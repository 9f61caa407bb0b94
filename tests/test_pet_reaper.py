"""The deletion reaper (`DeletionReaper`, a cron step at 02:00), through the `workbench` fixture: a
deleted pet past its purge date is purged, everything else is kept; and its schedule."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from workbench.ids import now_ms
from workbench.step_config import CronStep
from workbench.testing import Harness

DAY = 24 * 3600 * 1000


def create(workbench: Harness, name: str) -> dict[str, Any]:
    r = workbench.client.post("/pets", json={"name": name, "species": "dog", "ageMonths": 24})
    assert r.status_code == 201, r.text
    pet: dict[str, Any] = r.json()
    return pet


def test_reaper_purges_only_pets_past_purge_at(workbench: Harness) -> None:
    old = create(workbench, "Old")
    recent = create(workbench, "Recent")
    keep = create(workbench, "Alive")
    for pet in (old, recent):
        assert workbench.client.delete(f"/pets/{pet['id']}").status_code == 202
    workbench.drain()  # the pets' own background work, before the reaper runs
    # move Old's purge date into the past
    raw = workbench.state.get("pets", old["id"])
    raw["purgeAt"] = now_ms() - 1000
    workbench.state.set("pets", old["id"], raw)
    recent_before = workbench.state.get("pets", recent["id"])
    keep_before = workbench.state.get("pets", keep["id"])
    assert recent_before["purgeAt"] > now_ms() + 29 * DAY  # within its 30 days' grace

    trace = workbench.run_cron("DeletionReaper")

    assert trace.status == "completed" and trace.entry == "DeletionReaper"
    assert [(s.step, s.status, s.attempt) for s in trace.spans] == [("DeletionReaper", "completed", 1)]
    r = workbench.client.get(f"/pets/{old['id']}")
    assert r.status_code == 404
    assert workbench.client.get(f"/pets/{recent['id']}").json()["status"] == "deleted"
    assert workbench.client.get(f"/pets/{keep['id']}").status_code == 200
    assert workbench.state.group("pets") == {recent["id"]: recent_before, keep["id"]: keep_before}

    logs = workbench.logs("DeletionReaper", trace_id=trace.id)
    messages = [log.message for log in logs]
    assert messages[0] == "Deletion reaper started"
    assert messages.count("Pet purged") == 1
    summary = next(log for log in logs if log.message == "Deletion reaper finished")
    assert summary.fields == {"scanned": 3, "purged": 1}
    assert [(log.message, log.fields) for log in logs] == [
        ("Deletion reaper started", {}),
        ("Pet purged", {"petId": old["id"], "name": "Old", "deletedAt": raw["deletedAt"]}),
        ("Deletion reaper finished", {"scanned": 3, "purged": 1}),
    ]
    assert workbench.emitted(trace_id=trace.id) == []
    assert workbench.dead_letters() == []


def test_only_a_deleted_pet_with_a_purge_date_that_has_passed_is_purged(workbench: Harness) -> None:
    # nothing to purge yet; through the workbench's "Run now" action this time
    r = workbench.client.post("/_workbench/api/cron/DeletionReaper/run", headers={"x-workbench": "1"})
    assert r.status_code == 202
    assert workbench.drain().steps == ["DeletionReaper"]
    empty = workbench.trace(r.json()["traceId"])
    assert empty.status == "completed" and empty.entry == "DeletionReaper"
    assert empty.span("DeletionReaper").status == "completed"
    assert [(log.message, log.fields) for log in workbench.logs("DeletionReaper", trace_id=empty.id)] == [
        ("Deletion reaper started", {}),
        ("Deletion reaper finished", {"scanned": 0, "purged": 0}),
    ]

    now = now_ms()
    pets = {
        "1": {"id": "1", "name": "Gone", "status": "deleted", "deletedAt": now - 31 * DAY,
              "purgeAt": now - DAY},
        "2": {"id": "2", "name": "Grace", "status": "deleted", "deletedAt": now, "purgeAt": now + 30 * DAY},
        "3": {"id": "3", "name": "Soon", "status": "deleted", "deletedAt": now, "purgeAt": now + 60_000},
        "4": {"id": "4", "name": "Undated", "status": "deleted", "deletedAt": now},  # no purge date
        "5": {"id": "5", "name": "Alive", "status": "available", "purgeAt": now - DAY},  # not deleted
        "6": {"id": "6", "name": "Also", "status": "deleted", "deletedAt": now - 40 * DAY, "purgeAt": 1},
    }  # fmt: skip
    for pet_id, pet in pets.items():
        workbench.state.set("pets", pet_id, pet)

    trace = workbench.run_cron("DeletionReaper")

    assert trace.status == "completed"
    assert workbench.state.group("pets") == {k: pets[k] for k in ("2", "3", "4", "5")}
    logs = workbench.logs("DeletionReaper", trace_id=trace.id)
    assert sorted(log.fields["petId"] for log in logs if log.message == "Pet purged") == ["1", "6"]
    assert logs[-1].message == "Deletion reaper finished"
    assert logs[-1].fields == {"scanned": 6, "purged": 2}


def test_the_reaper_runs_every_day_at_two_in_the_servers_time_zone(workbench: Harness) -> None:
    step = workbench.registry.get("DeletionReaper")
    assert isinstance(step, CronStep) and step.schedule is not None
    assert step.timezone is None
    zone = step.schedule.zone  # the server's zone: the step sets none

    def runs(after: datetime, count: int) -> list[datetime]:
        return workbench.next_runs("DeletionReaper", after=after.replace(tzinfo=zone), count=count)

    # January, July, December: away from any daylight-saving change
    assert runs(datetime(2026, 1, 15, 1, 59), 3) == [
        datetime(2026, 1, day, 2, 0, tzinfo=zone) for day in (15, 16, 17)
    ]
    # exactly at a run: the next is a day later, over a month's end
    assert runs(datetime(2026, 7, 31, 2, 0), 2) == [
        datetime(2026, 8, 1, 2, 0, tzinfo=zone),
        datetime(2026, 8, 2, 2, 0, tzinfo=zone),
    ]
    assert runs(datetime(2026, 12, 31, 2, 0, 1), 1) == [datetime(2027, 1, 1, 2, 0, tzinfo=zone)]
