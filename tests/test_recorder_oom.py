"""The recorder against a Redis that fills up while it writes (maxmemory, noeviction): the batches Redis
refuses are re-queued and written once it has room, and no record is written twice or lost. Refused
batches are written whole later, because Redis refuses a script only before its first write (see
tests/test_lua.py); this test counts every record of every trace, in the store and in the live feed."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from workbench import keys
from workbench.ids import now_ms
from workbench.redis_server import RedisServer
from workbench.tracing.recorder import Recorder
from workbench.tracing.records import Event, Span
from workbench.tracing.store import TraceStore

TRACES, LINES = 40, 150


@pytest.fixture
async def small() -> AsyncIterator[Redis]:
    server = RedisServer().start()
    client = Redis.from_url(server.url, decode_responses=True)
    await client.config_set("maxmemory-policy", "noeviction")
    yield client
    await client.aclose()
    server.stop()


async def refused(redis: Redis) -> int:
    """How many commands Redis has answered with an error so far (a script refused for want of
    memory counts as one)."""
    return int((await redis.info("stats"))["total_error_replies"])


async def test_batches_refused_by_a_full_redis_are_written_once_each_when_it_has_room(small: Redis) -> None:
    recorder = Recorder(TraceStore(small, feed_maxlen=100_000, logs_maxlen=100_000))
    recorder.start()
    await recorder.store.ensure_scripts()
    used = int((await small.info("memory"))["used_memory"])
    await small.config_set("maxmemory", used + 400_000)  # room for a part of what comes
    spans = {}
    for t in range(TRACES):
        tid = f"T{t}"
        recorder.open_trace(tid, entry="E", kind="api", label="x", start=now_ms(), open_=1)
        spans[tid] = Span(id=f"{tid}:s", trace_id=tid, step="S", kind="api", started_at=now_ms())
        recorder.span(spans[tid])
    for n in range(LINES):  # the traces' lines interleaved, a round at a time, as concurrent steps do
        for t in range(TRACES):
            tid = f"T{t}"
            data = {"level": "info", "message": f"{tid}/{n}", "fields": {"pad": "x" * 100}}
            recorder.event(
                Event(kind="log", ts=now_ms(), trace_id=tid, span_id=spans[tid].id, step="S", data=data)
            )
        await asyncio.sleep(0)  # the flusher writes what has gathered meanwhile
    for span in spans.values():
        span.status, span.finished_at = "completed", now_ms()
        recorder.span(span, open_delta=-1)
    deadline = asyncio.get_running_loop().time() + 20
    while not await refused(small):  # Redis filled up and refused batches (re-queued)
        assert asyncio.get_running_loop().time() < deadline, "Redis never filled up"
        await asyncio.sleep(0.01)
    assert recorder._pending  # records wait for room
    await small.config_set("maxmemory", 0)  # room again
    await recorder.flush()
    await recorder.stop()

    feed_lines: Counter[str] = Counter()
    for _, fields in await small.xrange(keys.FEED):
        if fields["t"] == "log":
            feed_lines[json.loads(fields["d"])["message"]] += 1
    log_lines = Counter(json.loads(f["d"])["message"] for _, f in await small.xrange(keys.LOGS))
    for t in range(TRACES):
        tid = f"T{t}"
        expected = [f"{tid}/{n}" for n in range(LINES)]
        stored = [json.loads(e)["message"] for e in await small.lrange(keys.EVENTS + tid, 0, -1)]
        assert stored == expected, tid  # each line once, in order
        trace = await small.hgetall(keys.TRACE + tid)
        assert (trace["spans"], trace.get("open", "0")) == ("1", "0"), (tid, trace)  # counted once
        assert await small.llen(keys.EVENTS + tid + ":logids") == LINES
    assert set(feed_lines.values()) == {1} and len(feed_lines) == TRACES * LINES  # live feed: once each
    assert set(log_lines.values()) == {1} and len(log_lines) == TRACES * LINES
