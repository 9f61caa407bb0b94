"""A handler cannot hold its worker hostage (issue 13, item 7): past its timeout a run is recorded
`timed_out` and its slot is freed whether or not the handler cooperates, and SIGTERM stops the
worker within its grace period plus a small bound whatever the handlers do; the jobs of a worker
that could not stop cleanly run again elsewhere."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis as SyncRedis

from workbench.registry import discover
from workbench.runtime import Runtime
from workbench.worker_loop import STOP_BOUND_S

from .conftest import Proc, make_settings, spawn, wait_until, write_step

STEPS = {
    "stubborn": """
import asyncio

config = {"type": "event", "name": "Stubborn", "subscribes": ["stubborn"], "timeout": 0.5, "retries": 1}


async def handler(data, ctx):
    await ctx.state.increment("started", "Stubborn")
    while True:  # ignores every cancellation
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            ctx.logger.info("ignoring a cancellation")
""",
    "holdout": """
import asyncio

config = {"type": "event", "name": "Holdout", "subscribes": ["holdout"], "timeout": 600}


async def handler(data, ctx):
    await ctx.state.increment("started", "Holdout")
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass
""",
    "sleeper": """
import time

config = {"type": "event", "name": "Sleeper", "subscribes": ["sleeper"], "timeout": 600}


async def handler(data, ctx):
    await ctx.state.increment("started", "Sleeper")
    time.sleep(600)  # blocks the event loop: not even a signal handler of the loop's can run
""",
    "quick": """
config = {"type": "event", "name": "Quick", "subscribes": ["quick"]}


async def handler(data, ctx):
    await ctx.state.set("quick", "ran", data)
""",
}

GRACE_S = 1.0


@pytest.fixture
def steps(tmp_path: Path) -> Path:
    folder = tmp_path / "steps"
    for name, source in STEPS.items():
        write_step(folder, name, source)
    return folder


def worker(redis_url: str, steps: Path, tmp: Path, name: str = "worker") -> Proc:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "WORKBENCH_STEPS": str(steps),
        "WORKBENCH_CONCURRENCY": "1",  # one slot: a slot never freed stops everything after it
        "WORKBENCH_GRACE": str(GRACE_S),
        "PYTHONUNBUFFERED": "1",
    }
    proc = spawn(["worker"], env, tmp / f"{name}.log")
    wait_until(lambda: "started" in proc.output(), 20, message=f"{name}'s start")
    return proc


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.stop(signal.SIGKILL)


def emit(redis_url: str, steps: Path, topic: str, data: Any = None) -> str:
    async def go() -> str:
        runtime = Runtime(make_settings(redis_url, steps), discover(steps))
        await runtime.start()
        try:
            trace_id, _ = await runtime.emit_new_trace(topic, data or {})
        finally:
            await runtime.stop()
        return trace_id

    return asyncio.run(go())


def spans_of(client: SyncRedis, trace_id: str, step: str) -> list[dict[str, Any]]:
    spans = [json.loads(s) for s in client.hvals(f"wb:spans:{trace_id}")]
    return sorted((s for s in spans if s["step"] == step), key=lambda s: s["id"])


def stop_and_time(proc: Proc) -> float:
    """SIGTERM, then seconds until the process is gone (fails if it is not gone in 30 s)."""
    started = time.monotonic()
    proc.popen.send_signal(signal.SIGTERM)
    try:
        proc.popen.wait(30)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            "the worker was still alive 30 s after SIGTERM:\n" + proc.output()[-3000:]
        ) from None
    return time.monotonic() - started


def test_a_handler_that_ignores_its_timeout_is_timed_out_and_frees_its_slot(
    redis_url: str, steps: Path, tmp_path: Path, sync_redis: SyncRedis, procs: list[Proc]
) -> None:
    procs.append(worker(redis_url, steps, tmp_path))
    stubborn = emit(redis_url, steps, "stubborn")
    emit(redis_url, steps, "quick", {"after": "stubborn"})
    # one slot: Quick can only run once Stubborn's run has let go of it
    wait_until(lambda: sync_redis.hget("wb:state:quick", "ran"), 30, message="the job queued after Stubborn")
    [run] = spans_of(sync_redis, stubborn, "Stubborn")
    assert run["status"] == "timed_out" and run["error"]["message"] == "timed out after 0.5 s"
    events = [json.loads(e) for e in sync_redis.lrange(f"wb:events:{stubborn}", 0, -1)]
    logs = [e["message"] for e in events if e["kind"] == "log"]
    assert "ignoring a cancellation" in logs
    assert "Stubborn ignored its cancellation; it was left running in the background" in logs
    [letter] = [json.loads(sync_redis.get(f"wb:dead:{i}")) for i in sync_redis.zrange("wb:dead", 0, -1)]
    assert letter["step"] == "Stubborn" and letter["error"]["type"] == "TimeoutError"
    assert json.loads(sync_redis.hget("wb:trace:" + stubborn, "open") or "0") == 0


def test_sigterm_stops_a_worker_whose_handler_ignores_cancellation_and_requeues_its_job(
    redis_url: str, steps: Path, tmp_path: Path, sync_redis: SyncRedis, procs: list[Proc]
) -> None:
    first = worker(redis_url, steps, tmp_path, "first")
    procs.append(first)
    trace = emit(redis_url, steps, "holdout")
    wait_until(lambda: sync_redis.hget("wb:state:started", "Holdout") == "1", 20, message="Holdout's start")
    took = stop_and_time(first)
    print(
        f"\nSIGTERM with a handler ignoring its cancellation: stopped in {took:.1f} s (grace {GRACE_S:g} s)"
    )
    assert first.popen.returncode == 1  # it could not stop cleanly, and says so
    assert "handlers are still running after the worker stopped" in first.output()
    [interrupted] = spans_of(sync_redis, trace, "Holdout")
    assert interrupted["status"] == "interrupted"
    procs.append(worker(redis_url, steps, tmp_path, "second"))  # the job was re-queued: it runs again
    wait_until(lambda: sync_redis.hget("wb:state:started", "Holdout") == "2", 20, message="Holdout's rerun")


def test_sigterm_stops_a_worker_whose_event_loop_is_blocked_and_releases_its_jobs(
    redis_url: str, steps: Path, tmp_path: Path, sync_redis: SyncRedis, procs: list[Proc]
) -> None:
    first = worker(redis_url, steps, tmp_path, "first")
    procs.append(first)
    emit(redis_url, steps, "sleeper")
    wait_until(lambda: sync_redis.hget("wb:state:started", "Sleeper") == "1", 20, message="Sleeper's start")
    took = stop_and_time(first)
    print(f"\nSIGTERM with the event loop blocked: stopped in {took:.1f} s (grace {GRACE_S:g} s)")
    assert first.popen.returncode == 1
    assert f"did not stop within {GRACE_S + STOP_BOUND_S:.0f} s of SIGTERM" in first.output()
    assert not list(sync_redis.scan_iter("arq:in-progress:*"))  # its lease was released, not left to run out
    procs.append(worker(redis_url, steps, tmp_path, "second"))
    wait_until(lambda: sync_redis.hget("wb:state:started", "Sleeper") == "2", 20, message="Sleeper's rerun")
