"""A run's emits leave only when it succeeds, all together: a failed attempt's emits are not delivered
(so a retry never sends them twice), and an API handler that fails after emitting queues nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.testing import Harness

from .conftest import steps_harness

FLAKY = """
config = {"type": "event", "name": "Flaky", "subscribes": ["go"], "emits": ["next"], "retries": 3}


async def handler(data, ctx):
    await ctx.emit("next", {"attempt": ctx.attempt})
    if ctx.attempt < 3:
        raise RuntimeError("fails after emitting")
"""

COUNT = """
config = {"type": "event", "name": "Count", "subscribes": ["next"]}


async def handler(data, ctx):
    await ctx.state.increment("count", "runs")
    await ctx.state.set("count", "attempt", data["attempt"])
"""

API = """
from workbench import ApiResponse

config = {"type": "api", "name": "Half", "method": "POST", "path": "/half", "emits": ["next"]}


async def handler(request, ctx):
    await ctx.emit("next", {"attempt": 0})
    if request.body.get("fail"):
        raise RuntimeError("fails after emitting")
    if request.body.get("answer"):
        return ApiResponse(request.body["answer"], {})
    return ApiResponse(202, {"ok": True})
"""


@pytest.fixture
def lab(tmp_path: Path, workbench_redis_url: str) -> Iterator[Harness]:
    with steps_harness(
        tmp_path, workbench_redis_url, {"flaky": FLAKY, "count": COUNT, "half": API}
    ) as harness:
        yield harness


def test_a_failed_attempts_emits_are_not_delivered(lab: Harness) -> None:
    trace_id = lab.emit("go", {})
    lab.drain()
    assert lab.state.get("count", "runs") == 1  # only the successful attempt's emit ran
    assert lab.state.get("count", "attempt") == 3
    trace = lab.trace(trace_id)
    assert [(s.attempt, s.status) for s in trace.spans_of("Flaky")] == [
        (1, "failed"),
        (2, "failed"),
        (3, "completed"),
    ]
    not_sent = [log for log in lab.logs("Flaky", "warning", trace_id=trace_id) if "not sent" in log.message]
    assert [log.fields["notSent"] for log in not_sent] == [["next"], ["next"]]


@pytest.mark.parametrize("body", [{"fail": True}, {"answer": 503}])
def test_an_api_handler_that_fails_after_emitting_queues_nothing(
    lab: Harness, body: dict[str, object]
) -> None:
    response = lab.client.post("/half", json=body)
    assert response.status_code in (500, 503)
    assert lab.drain().steps == []
    assert lab.state.get("count", "runs") is None
    assert lab.trace(response).status == "failed"


def test_an_api_handler_that_succeeds_sends_its_emits(lab: Harness) -> None:
    response = lab.client.post("/half", json={})
    assert response.status_code == 202
    assert lab.drain().steps == ["Count"]
    assert lab.trace(response).status == "completed"


SIMPLE = """
config = {"type": "event", "name": "Once", "subscribes": ["start"], "emits": ["next"]}


async def handler(data, ctx):
    await ctx.emit("next", {"attempt": ctx.attempt})
"""


def test_a_runs_emits_leave_with_its_jobs_ending_so_a_worker_killed_after_it_cannot_run_it_again(
    tmp_path: Path, workbench_redis_url: str
) -> None:
    """The run's span end, its emitted jobs and its own job's removal go in one round trip: once
    the run has returned, nothing is left for a second run of the job (a worker SIGKILLed before
    the loop wrote the ending ran it again, and its emits were delivered twice)."""
    from redis import Redis as SyncRedis

    from workbench import job_queue
    from workbench.ids import now_ms

    with steps_harness(tmp_path, workbench_redis_url, {"once": SIMPLE, "count": COUNT}) as lab:
        step = lab.registry.get("Once")
        assert step is not None
        trace_id, job_id = lab.call(lambda: lab.runtime.enqueue_step(step, {}))
        redis = SyncRedis.from_url(workbench_redis_url)
        raw = redis.get(job_queue.job_key(job_id))
        assert raw is not None and redis.zscore(job_queue.QUEUE, job_id) is not None
        info = job_queue.JobInfo(job_id=job_id, try_number=1, ready_at=now_ms())
        # the run alone, as the worker loop calls it, without the loop's ending after it
        assert lab.call(lambda: lab.runtime.run_job(job_queue.payload_of(raw), info)) is None
        assert info.ended  # the loop writes no ending of its own
        assert redis.zscore(job_queue.QUEUE, job_id) is None  # gone from the queue,
        assert redis.exists(job_queue.job_key(job_id)) == 0  # with its data,
        queued = [j.decode() for j in redis.zrange(job_queue.QUEUE, 0, -1)]
        assert len(queued) == 1  # while the job it emitted is queued
        assert lab.trace(trace_id).span("Once").status == "completed"
        lab.drain()
        assert lab.state.get("count", "runs") == 1
        redis.close()
