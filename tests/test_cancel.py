"""Cancel against real processes (a web process and a worker): a running job stopped mid-run (its
step waits on a Redis key the test sets), a deferred retry, a queued job of a paused step, a whole
trace; the trace's status, the spans and the dead letters after each; bad ids in the API and CLI."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis as SyncRedis

from workbench import job_queue
from workbench.runtime import Runtime

from .conftest import ROOT, Stack, start_stack, wait_until, write_step

H = {"x-workbench": "1"}
API = "/_workbench/api"

GO = """
config = {"type": "api", "name": "Go", "method": "POST", "path": "/go/{topic}",
          "emits": ["hold", "fail", "stubborn"]}

async def handler(request, ctx):
    await ctx.emit(request.path_params["topic"], request.body or {})
    return {"status": 202, "body": {"traceId": ctx.trace_id}}
"""
HOLD = """
import asyncio
import os

from redis.asyncio import Redis

config = {"type": "event", "name": "Hold", "subscribes": ["hold"], "timeout": 60, "retries": 3}

async def handler(data, ctx):
    redis = Redis.from_url(os.environ["REDIS_URL"])
    try:
        while not await redis.exists("test:gate:" + data["id"]):  # the test opens the gate
            await asyncio.sleep(0.02)
    finally:
        await redis.aclose()
    ctx.logger.info("gate open")
"""
STUBBORN = """
import asyncio
import os

from redis.asyncio import Redis

config = {"type": "event", "name": "Stubborn", "subscribes": ["stubborn"], "timeout": 60}

async def handler(data, ctx):
    redis = Redis.from_url(os.environ["REDIS_URL"])
    ignored = False
    while True:
        try:  # every cancellation it gets is swallowed, and it carries on
            if ignored:
                await redis.set("test:ignored:" + data["id"], 1)
            if await redis.exists("test:gate:" + data["id"]):
                break
            await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            ignored = True
    await redis.aclose()
"""
FAIL = """
config = {"type": "event", "name": "Fail", "subscribes": ["fail"],
          "retries": {"attempts": 3, "backoff": 60, "max_backoff": 60}}

async def handler(data, ctx):
    raise ValueError("always")
"""


def steps_folder(tmp: Path) -> Path:
    folder = tmp / "steps"
    write_step(folder, "go", GO)
    write_step(folder, "hold", HOLD)
    write_step(folder, "fail", FAIL)
    write_step(folder, "stubborn", STUBBORN)
    return folder


@pytest.fixture
def lab(redis_url: str, tmp_path: Path, sync_redis: SyncRedis) -> Iterator[Stack]:
    sync_redis.flushdb()
    stack = start_stack(redis_url, tmp_path, steps_dir=steps_folder(tmp_path))
    yield stack
    stack.stop()


def trace_of(client: httpx.Client, trace_id: str) -> dict[str, Any]:
    r = client.get(f"{API}/traces/{trace_id}")
    return r.json() if r.status_code == 200 else {"spanList": [], "status": "unknown"}


def spans(trace: dict[str, Any], step: str) -> list[dict[str, Any]]:
    return [s for s in trace["spanList"] if s["step"] == step]


def go(client: httpx.Client, topic: str, data: dict[str, Any]) -> str:
    r = client.post(f"/go/{topic}", json=data)
    assert r.status_code == 202, r.text
    return str(r.json()["traceId"])


def running_span(client: httpx.Client, trace_id: str, step: str) -> dict[str, Any]:
    found = wait_until(
        lambda: next((s for s in spans(trace_of(client, trace_id), step) if s["status"] == "running"), None),
        20,
        message=f"{step} running",
    )
    return dict(found)


def test_cancel_stops_a_running_job_mid_run_not_retried_not_a_dead_letter(
    lab: Stack, sync_redis: SyncRedis
) -> None:
    with lab.client() as client:
        trace_id = go(client, "hold", {"id": "a"})
        span = running_span(client, trace_id, "Hold")
        r = client.post(f"{API}/jobs/{span['jobId']}/cancel", headers=H)
        assert r.status_code == 200, r.text
        assert r.json()["cancelled"] == 1 and r.json()["traceId"] == trace_id
        trace = trace_of(client, trace_id)
        runs = spans(trace, "Hold")
        assert [(s["status"], s["error"]["type"]) for s in runs] == [("cancelled", "Cancelled")]
        assert trace["status"] == "cancelled"
        assert client.get(f"{API}/dead-letters").json()["deadLetters"] == []
        assert sync_redis.zcard("wb:queue") == 0  # removed, not put back for a retry
        listed = client.get(f"{API}/traces", params={"status": "cancelled"}).json()["traces"]
        assert [t["id"] for t in listed] == [trace_id]
        # the worker goes on with other work (its slot was freed)
        other = go(client, "hold", {"id": "b"})
        running_span(client, other, "Hold")
        sync_redis.set("test:gate:b", 1)
        wait_until(lambda: trace_of(client, other)["status"] == "completed", 20, message="the next job")


def test_a_handler_that_ignores_its_cancel_is_left_behind_and_the_run_ends_cancelled(
    lab: Stack, sync_redis: SyncRedis
) -> None:
    with lab.client() as client:
        trace_id = go(client, "stubborn", {"id": "s"})
        running_span(client, trace_id, "Stubborn")
        r = client.post(f"{API}/traces/{trace_id}/cancel", headers=H)
        assert r.status_code == 200 and r.json()["cancelled"] == 1, r.text
        assert sync_redis.exists("test:ignored:s")  # it saw the cancel, and went on
        trace = trace_of(client, trace_id)
        assert [s["status"] for s in spans(trace, "Stubborn")] == ["cancelled"] and trace[
            "status"
        ] == "cancelled"
        lines = [e["message"] for e in spans(trace, "Stubborn")[0]["events"] if e["kind"] == "log"]
        assert any("ignored its cancellation" in line for line in lines), lines  # left behind
        # its slot is free: the worker runs the next job
        other = go(client, "hold", {"id": "after"})
        running_span(client, other, "Hold")
        sync_redis.set("test:gate:after", 1)
        wait_until(lambda: trace_of(client, other)["status"] == "completed", 20, message="the next job")


def test_cancel_a_trace_takes_its_deferred_retry_out_of_the_queue(lab: Stack, sync_redis: SyncRedis) -> None:
    with lab.client() as client:
        trace_id = go(client, "fail", {})
        wait_until(lambda: any(s["willRetry"] for s in spans(trace_of(client, trace_id), "Fail")), 20)
        assert trace_of(client, trace_id)["status"] == "running"  # its retry waits 60 s
        r = client.post(f"{API}/traces/{trace_id}/cancel", headers=H)
        assert r.status_code == 200 and r.json()["cancelled"] == 1, r.text
        trace = trace_of(client, trace_id)
        assert [s["status"] for s in spans(trace, "Fail")] == ["failed", "cancelled"]
        assert trace["status"] == "cancelled"
        assert sync_redis.zcard("wb:queue") == 0
        # nothing left to cancel: a clear 404 naming the trace
        again = client.post(f"{API}/traces/{trace_id}/cancel", headers=H)
        assert again.status_code == 404 and "no job queued or running" in again.json()["detail"]


def test_cancel_a_queued_job_of_a_paused_step(lab: Stack, sync_redis: SyncRedis) -> None:
    with lab.client() as client:
        assert client.post(f"{API}/queues/Hold/pause", headers=H).json()["paused"] is True
        trace_id = go(client, "hold", {"id": "q"})
        wait_until(lambda: sync_redis.zcard("wb:parked") == 1, 20, message="the job parked by the claim")
        r = client.post(f"{API}/traces/{trace_id}/cancel", headers=H)
        assert r.status_code == 200 and r.json()["cancelled"] == 1
        trace = trace_of(client, trace_id)
        assert [s["status"] for s in spans(trace, "Hold")] == ["cancelled"]
        assert trace["status"] == "cancelled" and sync_redis.zcard("wb:parked") == 0


def test_bad_ids_are_404s_naming_them(lab: Stack) -> None:
    with lab.client() as client:
        r = client.post(f"{API}/jobs/nope/cancel", headers=H)
        assert r.status_code == 404 and "no queued or running job 'nope'" in r.json()["detail"]
        r = client.post(f"{API}/traces/nope/cancel", headers=H)
        assert r.status_code == 404 and "no trace 'nope'" in r.json()["detail"]
        r = client.post(f"{API}/jobs/x/cancel")  # without the workbench header: refused
        assert r.status_code == 403


def cli(lab: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args], env=lab.env, cwd=ROOT, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def test_cli_cancel_a_running_job_and_bad_ids(lab: Stack) -> None:
    with lab.client() as client:
        trace_id = go(client, "hold", {"id": "c"})
        running_span(client, trace_id, "Hold")
        out = cli(lab, "cancel", trace_id)
        assert out.returncode == 0 and out.stdout.strip() == "1 cancelled", out.stderr
        assert trace_of(client, trace_id)["status"] == "cancelled"
    bad = cli(lab, "cancel", "nope")
    assert bad.returncode == 1 and "no queued or running job 'nope'" in bad.stderr


async def test_a_cron_jobs_id_is_taken_as_a_job_id_not_a_span_id(runtime: Runtime) -> None:
    """`cron:Step:tick` ends in digits like a span id (`job:run`): it was read as job `cron:Step`."""
    from workbench.cancel import cancel_job, job_id_of
    from workbench.ids import now_ms

    step = next(iter(runtime.registry.cron_steps()))
    job_id = f"cron:{step.name}:{now_ms() + 3_600_000}"
    trace_id, _ = await runtime.enqueue_step(step, None, run_at_ms=now_ms() + 3_600_000, job_id=job_id)
    result = await cancel_job(runtime, job_id, wait_s=0)
    assert result.trace_id == trace_id
    assert await runtime.redis.get(job_queue.job_key(job_id)) is None
    assert job_id_of(":1") == ":1" and job_id_of("JOB:2") == "JOB"
