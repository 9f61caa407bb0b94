"""A stalled worker is not a dead one (issue 13, item 1): a handler that blocks the event loop does
not cost its worker its leases, so no job runs twice; the block is named in the step's span and in
the terminal; plain `def` handlers run in a thread pool."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from redis import Redis as SyncRedis

from workbench.registry import discover
from workbench.runtime import Runtime

from .conftest import drain, make_settings, spawn, wait_until, write_step

BLOCKER = """
import time

config = {"type": "event", "name": "Blocker", "subscribes": ["block"], "flows": ["stall"]}


async def handler(data, ctx):
    await ctx.state.increment("runs", data["id"])
    time.sleep(data["s"])  # blocks the event loop: nothing else in this worker runs meanwhile
    await ctx.state.increment("done", data["id"])
"""


async def emit_all(runtime: Runtime, topic: str, items: list[dict[str, Any]]) -> list[str]:
    await runtime.start()
    try:
        return [(await runtime.emit_new_trace(topic, item))[0] for item in items]
    finally:
        await runtime.stop()


def span_logs(client: SyncRedis, trace_id: str) -> list[str]:
    return [
        e["message"]
        for e in map(json.loads, client.lrange(f"wb:events:{trace_id}", 0, -1))
        if e["kind"] == "log"
    ]


@pytest.mark.timeout(90)
def test_two_workers_blocked_by_their_handlers_run_each_job_once(
    redis_url: str, tmp_path: Path, sync_redis: SyncRedis
) -> None:
    steps = tmp_path / "steps"
    write_step(steps, "blocker", BLOCKER)
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "WORKBENCH_STEPS": str(steps),
        # the blocks (3 s) outlast the lease (1 s) three times over. A job once ran twice here: its
        # ending was written on a connection opened just before another handler blocked the loop,
        # whose connect timeout (loop time) then expired, so the ending was lost and the lease ran
        # out; the worker loop now opens its connections at start and tries an ending again
        "WORKBENCH_LEASE": "1",
        "WORKBENCH_CONCURRENCY": "3",
        "WORKBENCH_GRACE": "30",
        "PYTHONUNBUFFERED": "1",
    }
    workers = [spawn(["worker"], env, tmp_path / f"worker{i}.log") for i in range(2)]
    try:
        for w in workers:
            wait_until(lambda w=w: "started" in w.output(), 20, message="a worker's start")
        settings = make_settings(redis_url, steps)
        items = [{"id": str(i), "s": 3} for i in range(6)]
        traces = asyncio.run(emit_all(Runtime(settings, discover(steps)), "block", items))
        wait_until(lambda: len(sync_redis.hgetall("wb:state:done")) == 6, 60, message="every job done once")
        # a graceful stop waits for whatever still runs (a second run, if there were one)
        for w in workers:
            w.popen.send_signal(signal.SIGTERM)
        for w in workers:
            w.popen.wait(45)
    finally:
        for w in workers:
            w.stop(signal.SIGKILL)
    runs = {k: int(v) for k, v in sync_redis.hgetall("wb:state:runs").items()}
    twice = sum(n > 1 for n in runs.values())
    print(f"\nstalled workers: {twice} of {len(items)} jobs ran more than once")
    assert runs == {item["id"]: 1 for item in items}
    assert sync_redis.zcard("wb:dead") == 0
    both = workers[0].output() + workers[1].output()
    assert len(re.findall(r"Blocker blocked the event loop for 3\.\d s", both)) == 6, both[-3000:]
    for trace_id in traces:
        assert any(
            re.fullmatch(r"Blocker blocked the event loop for 3\.\d s", m)
            for m in span_logs(sync_redis, trace_id)
        )


def test_a_block_below_the_threshold_is_not_reported_and_one_above_is(
    redis_url: str, tmp_path: Path, sync_redis: SyncRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Runtime, "block_warn_s", 0.2)
    steps = tmp_path / "steps"
    write_step(steps, "blocker", BLOCKER)
    settings = make_settings(redis_url, steps)
    registry = discover(steps)
    short, long = asyncio.run(
        emit_all(Runtime(settings, registry), "block", [{"id": "short", "s": 0.01}, {"id": "long", "s": 0.3}])
    )
    asyncio.run(drain(settings, registry))
    assert not any("blocked" in m for m in span_logs(sync_redis, short))
    assert any(
        re.fullmatch(r"Blocker blocked the event loop for 0\.3 s", m) for m in span_logs(sync_redis, long)
    )


SYNC_EVENT = """
import threading

config = {"type": "event", "name": "PlainEvent", "subscribes": ["plain"], "flows": ["stall"]}


def handler(data, ctx):
    ctx.logger.info("plain def", thread=threading.current_thread().name, got=data["n"])
"""

SYNC_CRON = """
import threading

config = {"type": "cron", "name": "PlainCron", "cron": "0 0 1 1 *", "flows": ["stall"]}


def handler(ctx):
    ctx.logger.info("plain def", thread=threading.current_thread().name)
"""


def test_plain_def_event_and_cron_handlers_run_in_a_thread_with_their_span(
    redis_url: str, tmp_path: Path, sync_redis: SyncRedis
) -> None:
    steps = tmp_path / "steps"
    write_step(steps, "plain_event", SYNC_EVENT)
    write_step(steps, "plain_cron", SYNC_CRON)
    settings = make_settings(redis_url, steps)
    registry = discover(steps)

    async def enqueue() -> tuple[str, str]:
        runtime = Runtime(settings, registry)
        await runtime.start()
        try:
            event_trace, _ = await runtime.emit_new_trace("plain", {"n": 1})
            cron_trace, _ = await runtime.enqueue_step(registry.get("PlainCron"), None)
        finally:
            await runtime.stop()
        return event_trace, cron_trace

    traces = asyncio.run(enqueue())
    asyncio.run(drain(settings, registry))
    for trace_id, step in zip(traces, ["PlainEvent", "PlainCron"], strict=True):
        spans = [json.loads(s) for s in sync_redis.hvals(f"wb:spans:{trace_id}")]
        [run] = [s for s in spans if s["step"] == step]
        assert run["status"] == "completed"
        [line] = [
            e
            for e in map(json.loads, sync_redis.lrange(f"wb:events:{trace_id}", 0, -1))
            if e["kind"] == "log"
        ]
        assert line["message"] == "plain def" and line["spanId"] == run["id"]
        assert line["fields"]["thread"] != threading.main_thread().name
