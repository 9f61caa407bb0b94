"""The live feed and the log stream are capped by size as well as by length (apply_records.lua), so big
records cannot fill Redis with the framework's own data: measured with Redis's MEMORY USAGE of each
stream, batch after batch, against the real test Redis."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from workbench import keys
from workbench.registry import discover
from workbench.runtime import Runtime
from workbench.settings import Settings
from workbench.tracing.store import Record, TraceStore, event_record, span_record, trace_record

from .conftest import PET_STEPS, make_settings

BUDGET = 1 << 20  # 1 MiB per stream


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


def log_line(trace: str, n: int, size: int) -> Record:
    return event_record(
        {"traceId": trace, "spanId": "s1", "kind": "log", "ts": n, "step": "S", "level": "info",
         "message": f"line {n}", "fields": {"blob": "x" * size}}
    )  # fmt: skip


async def write(store: TraceStore, records: list[Record]) -> None:
    async with store.redis.pipeline(transaction=False) as pipe:
        store.apply(pipe, records)
        (result,) = await pipe.execute()
    assert result == len(records)


async def sizes(redis: Redis) -> tuple[int, int]:
    feed = await redis.memory_usage(keys.FEED, samples=0) or 0
    logs = await redis.memory_usage(keys.LOGS, samples=0) or 0
    return int(feed), int(logs)


async def load(store: TraceStore, *, batches: int, per_batch: int, size: int, start: int = 0) -> None:
    """`batches` batches of one span and `per_batch` log lines of about `size` bytes each, checking
    after every batch that neither stream is over its size cap."""
    n = start
    for b in range(batches):
        trace = f"T{start}-{b}"
        records = [trace_record(trace, start=1, entry="E", kind="api", label="x", open_=1)]
        records.append(span_record({"id": "s1", "traceId": trace, "step": "S", "startedAt": 1}))
        for _ in range(per_batch):
            records.append(log_line(trace, n, size))
            n += 1
        await write(store, records)
        if store.feed_max_bytes:
            feed, logs = await sizes(store.redis)
            assert feed <= store.feed_max_bytes and logs <= store.logs_max_bytes, (b, feed, logs)


async def test_big_records_keep_both_streams_under_their_size_caps_and_the_newest_lines(redis: Redis) -> None:
    store = TraceStore(redis, feed_max_bytes=BUDGET, logs_max_bytes=BUDGET)
    await store.ensure_scripts()
    await load(store, batches=60, per_batch=10, size=16_000)  # ~9.6 MB of lines into each stream
    feed, logs = await sizes(redis)
    assert BUDGET // 2 < feed <= BUDGET and BUDGET // 2 < logs <= BUDGET  # full, not emptied
    assert 0 < await redis.xlen(keys.LOGS) < 600  # far under the length cap: the size cap holds it
    (_, newest), *_ = await redis.xrevrange(keys.LOGS, count=1)
    assert json.loads(newest["d"])["message"] == "line 599"  # the oldest went, the newest stayed
    # the stored trace events are not the streams': all 600 lines are in their traces
    assert sum([await redis.llen(keys.EVENTS + f"T0-{b}") for b in range(60)]) == 600


async def test_without_a_size_cap_the_same_load_grows_the_streams_past_it(redis: Redis) -> None:
    store = TraceStore(redis, feed_max_bytes=0, logs_max_bytes=0)  # 0: length caps only, as before
    await store.ensure_scripts()
    await load(store, batches=60, per_batch=10, size=16_000)
    feed, logs = await sizes(redis)
    assert feed > 8 * BUDGET and logs > 8 * BUDGET
    assert await redis.xlen(keys.LOGS) == 600


async def test_small_lines_are_held_by_the_length_cap_and_a_burst_of_big_ones_by_the_size_cap(
    redis: Redis,
) -> None:
    store = TraceStore(
        redis, feed_maxlen=2000, logs_maxlen=1000, feed_max_bytes=BUDGET, logs_max_bytes=BUDGET
    )
    await store.ensure_scripts()
    await load(store, batches=30, per_batch=100, size=20)  # 3,000 small lines: the length caps decide
    assert 1000 <= await redis.xlen(keys.LOGS) <= 1100  # MAXLEN ~ trims whole nodes (100 entries)
    assert await redis.xlen(keys.FEED) <= 2100
    _, small_logs = await sizes(redis)
    assert small_logs < BUDGET // 4
    # then big lines arrive, a few per batch: the caps drop at once, before the average catches up
    await load(store, batches=40, per_batch=3, size=50_000, start=10_000)
    feed, logs = await sizes(redis)
    assert BUDGET // 2 < logs <= BUDGET and BUDGET // 2 < feed <= BUDGET
    # and small ones again: the caps grow back as the average comes down, never over the size cap
    await load(store, batches=30, per_batch=100, size=20, start=20_000)
    feed, logs = await sizes(redis)
    assert logs <= BUDGET and feed <= BUDGET
    assert await redis.xlen(keys.LOGS) <= 1100


async def test_the_size_caps_are_settings_the_runtime_passes_on(redis_url: str, monkeypatch: Any) -> None:
    monkeypatch.setenv("WORKBENCH_FEED_MAX_BYTES", "12345")
    monkeypatch.setenv("WORKBENCH_LOGS_MAX_BYTES", "0")
    from_env = Settings.from_env()
    assert (from_env.feed_max_bytes, from_env.logs_max_bytes) == (12345, 0)
    assert (Settings.feed_max_bytes, Settings.logs_max_bytes) == (32 << 20, 128 << 20)  # the defaults
    settings = make_settings(redis_url, PET_STEPS, feed_max_bytes=777, logs_max_bytes=888)
    runtime = Runtime(settings, discover(PET_STEPS))
    assert (runtime.store.feed_max_bytes, runtime.store.logs_max_bytes) == (777, 888)
    await runtime.redis.aclose()
