"""The queue door against a real Redis: jobs are claimed and read in one call, their endings are
written in batches, and nothing is lost when a run cannot finish."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from workbench import job_queue as queue
from workbench.ids import now_ms
from workbench.worker_loop import WorkerLoop, make_worker


async def enqueue(redis_url: str, payloads: list[dict[str, Any]]) -> list[str]:
    client = Redis.from_url(redis_url)
    ids = [queue.new_job_id() for _ in payloads]
    async with client.pipeline(transaction=True) as pipe:
        for job_id, payload in zip(ids, payloads, strict=True):
            queue.add_job(pipe, payload, job_id=job_id)
        await pipe.execute()
    await client.aclose()
    return ids


def make_test_worker(
    redis_url: str, runner: queue.JobRunner, *, concurrency: int = 5, poll_delay_s: float = 0.05, burst: bool
) -> WorkerLoop:
    return make_worker(
        redis_url,
        run_job=runner,
        concurrency=concurrency,
        poll_delay_s=poll_delay_s,
        lease_s=5,
        grace_s=1,
        max_timeout_s=5,
        burst=burst,
        handle_signals=False,
    )


async def run_until_empty(
    redis_url: str, runner: queue.JobRunner, concurrency: int = 5, poll_delay_s: float = 0.05
) -> None:
    worker = make_test_worker(
        redis_url, runner, concurrency=concurrency, poll_delay_s=poll_delay_s, burst=True
    )
    try:
        await worker.async_run()
    finally:
        await worker.close()


async def test_each_job_runs_once_with_its_payload_and_leaves_no_keys_behind(redis_url: str) -> None:
    ids = await enqueue(redis_url, [{"i": i} for i in range(60)])
    runs: list[tuple[int, str, int]] = []

    async def runner(payload: dict[str, Any], info: queue.JobInfo) -> None:
        runs.append((payload["i"], info.job_id, info.try_number))

    await run_until_empty(redis_url, runner, concurrency=7)
    assert sorted(runs) == sorted((i, job_id, 1) for i, job_id in enumerate(ids))
    client = Redis.from_url(redis_url)
    leftovers = [k async for k in client.scan_iter("arq:*")] + [k async for k in client.scan_iter("wb:*")]
    await client.aclose()
    assert leftovers == []


POLL_DELAY_S = 60.0  # far longer than any test waits: a worker that waited for its poll fails the test


async def run_until(
    redis_url: str, runner: queue.JobRunner, done: asyncio.Event, seconds: float = 20
) -> None:
    """A long-running worker that polls only every POLL_DELAY_S, until `done` (or fail after
    `seconds`)."""
    worker = make_test_worker(redis_url, runner, poll_delay_s=POLL_DELAY_S, burst=False)
    task = asyncio.create_task(worker.async_run())
    try:
        await asyncio.wait_for(done.wait(), seconds)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await worker.close()


async def test_a_worker_with_due_jobs_never_sleeps_its_poll_delay(redis_url: str) -> None:
    # no wake-up arrives (the jobs were queued before the worker subscribed): only a worker that
    # wrongly thinks nothing is due would wait its poll delay
    await enqueue(redis_url, [{"i": i} for i in range(300)])
    ran: list[int] = []
    done = asyncio.Event()

    async def runner(payload: dict[str, Any], info: queue.JobInfo) -> None:
        await asyncio.sleep(random.random() * 0.003)  # jobs end at scattered moments, some mid-poll
        ran.append(payload["i"])
        if len(ran) == 300:
            done.set()

    await run_until(redis_url, runner, done)
    assert sorted(ran) == list(range(300))


async def test_an_idle_worker_runs_a_retry_when_it_falls_due_not_at_its_next_poll(redis_url: str) -> None:
    # once the first run asks for a retry in 0.3 s the worker has nothing due and sleeps: only the
    # retry's due time can wake it (its poll delay is beyond the wait, and a retry sends no job id)
    await enqueue(redis_url, [{"i": 0}])
    runs: list[tuple[int, int, int]] = []  # run number, due at (ms), started at (ms)
    done = asyncio.Event()

    async def runner(payload: dict[str, Any], info: queue.JobInfo) -> float | None:
        runs.append((info.try_number, info.ready_at, now_ms()))
        if info.try_number == 1:
            return 0.3
        done.set()
        return None

    await run_until(redis_url, runner, done)
    (_, _, first_start), (run, due, start) = runs
    assert run == 2 and due >= first_start + 300 and start >= due


async def test_a_delay_from_the_runner_runs_the_job_again_after_it(redis_url: str) -> None:
    await enqueue(redis_url, [{"i": 0}])
    runs: list[tuple[int, int, int]] = []

    async def runner(payload: dict[str, Any], info: queue.JobInfo) -> float | None:
        runs.append((info.try_number, info.ready_at, now_ms()))
        return 0.3 if info.try_number == 1 else None

    await run_until_empty(redis_url, runner)
    (first, _, first_start), (second, due, start) = runs
    assert (first, second) == (1, 2)
    assert due >= first_start + 300 and start >= due  # due 0.3 s after the first run, not run before


async def test_a_runner_that_breaks_gets_its_job_run_again_not_dropped(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await enqueue(redis_url, [{"i": 0}])
    runs: list[int] = []

    async def runner(payload: dict[str, Any], info: queue.JobInfo) -> None:
        runs.append(info.try_number)
        if info.try_number == 1:
            raise ConnectionError("Redis went away while dead-lettering")

    with caplog.at_level(logging.ERROR, logger="workbench.queue"):
        await run_until_empty(redis_url, runner)
    assert runs == [1, 2]
    assert "could not be run; it runs again in 2 s" in caplog.text


async def test_a_job_whose_data_expired_is_removed_with_a_warning(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = Redis.from_url(redis_url)
    await client.zadd(queue.QUEUE, {"gone": time.time() * 1000})
    called: list[str] = []

    async def runner(payload: dict[str, Any], info: queue.JobInfo) -> None:
        called.append(info.job_id)

    with caplog.at_level(logging.WARNING, logger="workbench.queue"):
        await run_until_empty(redis_url, runner)
    assert called == []
    assert await client.zcard(queue.QUEUE) == 0
    await client.aclose()
    assert "job gone expired before it could run" in caplog.text


async def test_two_workers_on_one_queue_run_each_job_once(redis_url: str) -> None:
    # both read the same head of the queue: each claim re-checks its candidates in the script
    await enqueue(redis_url, [{"i": i} for i in range(200)])
    runs: list[tuple[int, str]] = []

    def runner(name: str) -> queue.JobRunner:
        async def run(payload: dict[str, Any], info: queue.JobInfo) -> None:
            runs.append((payload["i"], name))
            await asyncio.sleep(0)  # let the other worker claim meanwhile

        return run

    await asyncio.gather(
        run_until_empty(redis_url, runner("a"), concurrency=4),
        run_until_empty(redis_url, runner("b"), concurrency=4),
    )
    assert sorted(i for i, _ in runs) == list(range(200))
    assert {name for _, name in runs} == {"a", "b"}


async def test_a_claim_skips_candidates_another_worker_took_and_reads_the_queue_again(redis_url: str) -> None:
    ids = await enqueue(redis_url, [{"i": i} for i in range(6)])
    a, b = Redis.from_url(redis_url), Redis.from_url(redis_url)
    qa = queue.JobQueue(a, lease_s=5, read_limit=100)
    qb = queue.JobQueue(b, lease_s=5, read_limit=100)
    first = await qa.claim(1)  # reads all six as candidates, claims the first
    assert [info.job_id for info, _ in first] == ids[:1]
    taken = await qb.claim(4)  # b's first candidate is a's: it gets the next three at once
    assert [info.job_id for info, _ in taken] == ids[1:4]
    assert [info.job_id for info, _ in await qb.claim(1)] == ids[4:5]
    rest = await qa.claim(3)  # a's candidates 1-4 were taken: it looks past them
    assert [info.job_id for info, _ in rest] == ids[5:]
    assert await qa.claim(3, running={ids[0], ids[5]}) == []  # the rest are running (b's)
    await a.aclose()
    await b.aclose()


async def test_a_wake_up_names_the_jobs_it_is_for(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(queue.WAKE_CHANNEL)
    async with client.pipeline(transaction=True) as pipe:
        queue.add_wake(pipe, ["j1", "j2"])
        queue.add_wake(pipe)
        await pipe.execute()
    messages: list[list[str]] = []
    async with asyncio.timeout(10):
        while len(messages) < 2:  # (the subscription's own confirmation reads as None)
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if message is not None:
                messages.append(queue.woken_for(message["data"]))
    assert messages == [["j1", "j2"], []]
    await pubsub.aclose()
    await client.aclose()
