"""The step-testing harness (`workbench.testing`): a real Redis, a real worker, in-process requests,
and what a test asserts on. The pet store's own tests use it too (test_pets_api.py, ...)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from redis import Redis

from workbench.job_queue import lease_key, queue_stats
from workbench.registry import discover
from workbench.step_config import CronStep
from workbench.testing import DrainError, Harness, harness_settings
from workbench.testing.plugin import check_test_redis_url

from .conftest import write_step

PET = {"name": "Jack", "species": "dog", "ageMonths": 24}


@pytest.fixture
def lab(tmp_path: Path, workbench_redis_url: str) -> Iterator[tuple[Path, str]]:
    """An empty steps folder of one's own, and the session's test Redis, emptied."""
    client = Redis.from_url(workbench_redis_url)
    client.flushdb()
    client.close()
    path = list(sys.path)
    yield tmp_path, workbench_redis_url
    sys.path[:] = path
    for name in [m for m in sys.modules if m.startswith("workbench_steps")]:
        del sys.modules[name]


def harness(lab: tuple[Path, str]) -> Harness:
    steps, url = lab
    return Harness(harness_settings(url, steps), discover(steps))


def queue_left(h: Harness) -> int:
    stats = h.call(lambda: queue_stats(h.runtime.redis))
    return stats["ready"] + stats["deferred"]


# --- the pet store through the fixture ----------------------------------------------------------------


def test_a_request_and_its_background_work(workbench: Harness) -> None:
    response = workbench.client.post("/pets", json=PET)
    assert response.status_code == 201
    pet_id = response.json()["id"]
    assert workbench.state.get("pets", pet_id)["status"] == "new"  # nothing ran yet

    result = workbench.drain()

    # one job at a time, in the order they were queued
    assert result.steps == ["PetLifecycleOrchestrator", "SetNextFeedingReminder", "PetLifecycleOrchestrator"]
    trace = workbench.trace(response)
    assert trace.status == "completed"
    assert [(s.step, s.status, s.attempt) for s in trace.spans] == [
        ("CreatePet", "completed", 1),
        ("PetLifecycleOrchestrator", "completed", 1),
        ("SetNextFeedingReminder", "completed", 1),
        ("PetLifecycleOrchestrator", "completed", 1),
    ]
    assert [(e.topic, e.step) for e in workbench.emitted()] == [
        ("pet.created", "CreatePet"),
        ("feeding.reminder.enqueued", "CreatePet"),
        ("feeding.reminder.completed", "SetNextFeedingReminder"),
        ("pet.status.changed", "PetLifecycleOrchestrator"),
    ]
    changed = workbench.emitted("pet.status.changed")
    assert [e.data for e in changed] == [
        {"petId": pet_id, "from": "new", "to": "in_quarantine", "kind": "automatic"}
    ]
    assert changed[0].trace_id == trace.id
    assert changed[0].span_id == trace.spans[3].id
    assert [log.message for log in workbench.logs("SetNextFeedingReminder")] == [
        "Setting next feeding reminder",
        "Next feeding reminder set",
    ]
    assert workbench.logs("CreatePet")[0].fields == {"petId": pet_id, "name": "Jack", "species": "dog"}
    assert workbench.logs(level="warning") == []
    assert workbench.state.get("pets", pet_id)["status"] == "in_quarantine"
    assert queue_left(workbench) == 0


def test_each_test_starts_from_an_empty_redis(workbench: Harness) -> None:
    assert workbench.traces() == []
    assert workbench.state.groups() == []
    workbench.state.set("pets", "9", {"id": "9"})
    assert workbench.state.group("pets") == {"9": {"id": "9"}}


def test_a_manual_emit_and_logs_by_level(workbench: Harness) -> None:
    trace_id = workbench.emit("feeding.reminder.enqueued", {"petId": "404"})
    workbench.drain()
    trace = workbench.trace(trace_id)
    assert trace.status == "completed"
    assert trace.steps == ["test", "SetNextFeedingReminder"]
    warnings = workbench.logs(level="warning")
    assert [(w.step, w.message, w.fields) for w in warnings] == [
        ("SetNextFeedingReminder", "Pet not found or deleted; no reminder set", {"petId": "404"})
    ]
    assert [w.level for w in workbench.logs("SetNextFeedingReminder", level="info")] == ["info", "warning"]
    with pytest.raises(ValueError, match=r"no step emits or subscribes to 'no\.such'"):
        workbench.emit("no.such", {})


def test_cron_steps_run_now_and_list_their_next_runs(workbench: Harness) -> None:
    workbench.state.set("pets", "1", {"id": "1", "status": "deleted", "purgeAt": 1})
    workbench.state.set("pets", "2", {"id": "2", "status": "available"})
    trace = workbench.run_cron("DeletionReaper")
    assert trace.status == "completed"
    assert trace.span("DeletionReaper").status == "completed"
    assert workbench.state.group("pets") == {"2": {"id": "2", "status": "available"}}
    step = workbench.registry.get("DeletionReaper")
    assert isinstance(step, CronStep) and step.schedule is not None
    zone = step.schedule.zone  # the server's zone: the step sets none
    after = datetime(2026, 3, 1, 2, 0, tzinfo=zone)  # exactly at a run: the next is a day later
    assert workbench.next_runs("DeletionReaper", after=after, count=3) == [
        datetime(2026, 3, day, 2, 0, tzinfo=zone) for day in (2, 3, 4)
    ]
    with pytest.raises(ValueError, match="no cron step named 'CreatePet'"):
        workbench.run_cron("CreatePet")


# --- drain(): nothing left unrun, no waiting ------------------------------------------------------------

FLAKY = """
config = {
    "type": "event", "name": "Flaky", "subscribes": ["work.started"], "emits": ["work.done"],
    "retries": {"attempts": 3, "backoff": 3600, "max_backoff": 3600},
}


async def handler(data, ctx):
    if ctx.attempt < 3:
        raise RuntimeError(f"attempt {ctx.attempt} fails")
    await ctx.emit("work.done", {"n": data["n"]})
"""

FINISH = """
config = {"type": "event", "name": "Finish", "subscribes": ["work.done"]}


async def handler(data, ctx):
    await ctx.state.set("done", str(data["n"]), True)
"""

HOPELESS = """
config = {"type": "event", "name": "Hopeless", "subscribes": ["doomed"], "retries": 2}


async def handler(data, ctx):
    raise ValueError("never works")
"""

LOOP = """
config = {"type": "event", "name": "Loop", "subscribes": ["again"], "emits": ["again"]}


async def handler(data, ctx):
    await ctx.emit("again", data)
"""

START = """
from workbench import ApiResponse

config = {"type": "api", "name": "Start", "method": "POST", "path": "/start", "emits": ["work.started"]}


async def handler(request, ctx):
    await ctx.emit("work.started", request.body)
    return ApiResponse(202, {"queued": True})
"""


def test_drain_runs_retries_at_once_and_what_they_emit(lab: tuple[Path, str]) -> None:
    steps, _ = lab
    write_step(steps, "start", START)
    write_step(steps, "flaky", FLAKY)
    write_step(steps, "finish", FINISH)
    with harness(lab) as h:
        response = h.client.post("/start", json={"n": 7})
        assert response.status_code == 202
        result = h.drain()  # an hour of backoff between attempts is not waited for
        assert result.steps == ["Flaky", "Flaky", "Flaky", "Finish"]
        trace = h.trace(response)
        assert [(s.step, s.attempt, s.status, s.will_retry) for s in trace.spans] == [
            ("Start", 1, "completed", False),
            ("Flaky", 1, "failed", True),
            ("Flaky", 2, "failed", True),
            ("Flaky", 3, "completed", False),
            ("Finish", 1, "completed", False),
        ]
        assert trace.status == "completed"
        assert trace.spans_of("Flaky")[0].error is not None
        assert trace.spans_of("Flaky")[0].error["message"] == "attempt 1 fails"
        assert h.state.get("done", "7") is True
        assert h.dead_letters() == []
        assert queue_left(h) == 0


def test_a_job_that_keeps_failing_ends_as_a_dead_letter(lab: tuple[Path, str]) -> None:
    steps, _ = lab
    write_step(steps, "hopeless", HOPELESS)
    with harness(lab) as h:
        trace_id = h.emit("doomed", {"x": 1})
        assert h.drain().steps == ["Hopeless", "Hopeless"]
        letters = h.dead_letters()
        assert [(d["step"], d["attempts"], d["data"], d["traceId"]) for d in letters] == [
            ("Hopeless", 2, {"x": 1}, trace_id)
        ]
        assert letters[0]["error"]["message"] == "never works"
        assert h.trace(trace_id).status == "failed"
        assert queue_left(h) == 0


def test_drain_runs_deferred_jobs_without_waiting_for_them(lab: tuple[Path, str]) -> None:
    steps, _ = lab
    write_step(steps, "finish", FINISH)
    with harness(lab) as h:
        step = h.registry.get("Finish")
        assert step is not None
        in_a_day = int(datetime.now().timestamp() * 1000) + 86_400_000
        h.call(lambda: h.runtime.enqueue_step(step, {"n": 1}, run_at_ms=in_a_day))
        assert queue_left(h) == 1
        assert h.drain().steps == ["Finish"]
        assert h.state.get("done", "1") is True
        assert queue_left(h) == 0


def test_drain_stops_a_step_that_emits_forever(lab: tuple[Path, str]) -> None:
    steps, _ = lab
    write_step(steps, "loop", LOOP)
    with harness(lab) as h:
        h.emit("again", {})
        with pytest.raises(DrainError, match=r"stopped after 25 runs with jobs still queued .*Loop"):
            h.drain(max_runs=25)
        assert queue_left(h) == 1  # the job that was not run is kept, not lost


def test_drain_says_so_when_another_worker_holds_the_queued_jobs(lab: tuple[Path, str]) -> None:
    steps, url = lab
    write_step(steps, "finish", FINISH)
    with harness(lab) as h:
        step = h.registry.get("Finish")
        assert step is not None
        _, job_id = h.call(lambda: h.runtime.enqueue_step(step, {"n": 1}))
        client = Redis.from_url(url)
        try:
            client.set(lease_key(job_id), "1", px=60_000)  # as a live worker elsewhere would
            with pytest.raises(
                DrainError, match="1 queued jobs it could not claim: another worker holds them"
            ):
                h.drain()
        finally:
            client.close()
        assert queue_left(h) == 1 and h.state.get("done", "1") is None


def test_the_test_redis_is_never_the_one_on_6379() -> None:
    for url in ("redis://127.0.0.1:6379/0", "redis://localhost/1", "redis://127.0.0.1"):
        with pytest.raises(pytest.UsageError, match="6379"):
            check_test_redis_url(url)
    assert check_test_redis_url("redis://127.0.0.1:6390/2") == "redis://127.0.0.1:6390/2"


def test_the_session_redis_is_a_private_server(workbench_redis_url: str) -> None:
    assert ":6379" not in workbench_redis_url
    client = Redis.from_url(workbench_redis_url)
    try:
        assert client.ping()
    finally:
        client.close()
