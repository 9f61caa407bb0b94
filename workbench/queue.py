"""The queue, behind one door: everything arq-specific lives here.

The rest of the framework sees four things: `add_job` (enqueue commands added to a pipeline, so
an emit, its trace bookkeeping and the wake-up travel in one round trip), `run_worker`,
`cron claims` and `job payloads`. Swapping arq for another Redis queue means rewriting this module.

What we add on top of arq:
- **Wake-up.** Each enqueue publishes on a channel; an idle worker waits on that channel (with the
  poll delay, or the time until the next deferred job, as its timeout) instead of sleeping, so
  pickup takes milliseconds and polling is only a fallback.
- **Lean runs.** One script call finds, claims and reads due jobs (arq spends three round trips
  per job before it starts one), and the endings of jobs that finish together are written in one
  MULTI/EXEC. A run that cannot finish (the machinery failed, not the step) is put back in the
  queue, never dropped. Measured with py-spy: arq's per-job bookkeeping was most of the worker's
  CPU for short jobs (bench #2, #3).
- **Leases.** A running job's in-progress key lives for `lease_s` and is renewed while the job
  runs, so a job whose worker was SIGKILLed runs again after a few seconds, whatever the longest
  step timeout is (arq's default is that timeout + 10 s, for every job).
- **Resilience.** Losing Redis does not kill the worker: it backs off and carries on.
- **Cron.** Schedules are computed by `workbench.cron` (full cron semantics); each tick is claimed
  with SET NX so that exactly one worker enqueues it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import uuid4

import msgspec
from arq.connections import ArqRedis, RedisSettings
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.jobs import serialize_job
from arq.worker import Worker, func
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from . import keys
from .ids import now_ms

log = logging.getLogger("workbench.queue")

QUEUE = keys.PREFIX + "queue"
WAKE_CHANNEL = keys.PREFIX + "wake"
INTERRUPTS = keys.PREFIX + "interrupts:"  # + job id: runs stopped by a graceful shutdown
JOB_FUNCTION = "workbench.step"
JOB_EXPIRES_MS = 7 * 24 * 3600 * 1000  # a queued job not started within a week is dropped by Redis

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def serializer(obj: dict[str, Any]) -> bytes:
    return _encode(obj)


def deserializer(raw: bytes) -> dict[str, Any]:
    result: dict[str, Any] = _decode(raw)
    return result


_job_seq = itertools.count()


def new_job_id() -> str:
    """32 hex digits that sort in creation order within a process (ms, then a counter): jobs due in
    the same millisecond run in the order they were enqueued (a sorted set orders ties by member)."""
    return f"{now_ms():012x}{next(_job_seq) & 0xFFFFFF:06x}{uuid4().hex[:14]}"


def add_job(pipe: Pipeline, payload: dict[str, Any], *, job_id: str, run_at_ms: int | None = None) -> None:
    """Queue one job (to be run by `JOB_FUNCTION` with `payload`), as commands on `pipe`."""
    enqueued = now_ms()
    score = run_at_ms if run_at_ms is not None else enqueued
    data = serialize_job(JOB_FUNCTION, (payload,), {}, None, enqueued, serializer=serializer)
    pipe.psetex(job_key_prefix + job_id, JOB_EXPIRES_MS + max(0, score - enqueued), data)
    pipe.zadd(QUEUE, {job_id: score})


def add_wake(pipe: Pipeline) -> None:
    pipe.publish(WAKE_CHANNEL, b"1")


async def claim_once(redis: Redis, name: str, ttl_s: int = 3600) -> bool:
    """True for the first caller only (per name, within the ttl): a cron tick's single owner."""
    return bool(await redis.set(name, b"1", nx=True, ex=ttl_s))


async def queue_stats(redis: Redis) -> dict[str, int]:
    now = now_ms()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcount(QUEUE, "-inf", now)
        pipe.zcount(QUEUE, f"({now}", "+inf")
        ready, deferred = await pipe.execute()
    return {"ready": int(ready), "deferred": int(deferred)}


async def make_all_due(redis: Redis) -> int:
    """Move every deferred job (a retry waiting out its backoff, a future cron tick) to now, keeping
    their order; returns how many moved. The test harness's `drain()` uses it so that tests never
    wait for real time to pass."""
    now = now_ms()
    deferred = await redis.zrangebyscore(QUEUE, f"({now}", "+inf")
    if deferred:
        # just before now, in their order (equal scores would be ordered by job id instead)
        await redis.zadd(QUEUE, {job_id: now - 1 + i * 1e-6 for i, job_id in enumerate(deferred)}, xx=True)
    return len(deferred)


# Find and claim due jobs in one round trip, atomically, and hand back what running them needs
# (arq reads the queue, then claims each job with WATCH/EXISTS/ZSCORE/MULTI, then reads it with
# another MULTI: two workers reading the same head of the queue fight over every job, and each job
# costs three round trips before it starts). KEYS: queue. ARGV: now ms, lease ms, jobs wanted, how
# far to look, and the in-progress, try-count, job and interrupt key prefixes.
# Returns, per job: id, score, serialized job (nil once expired), run number, interrupted runs.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[4])
local out, want, taken = {}, tonumber(ARGV[3]), 0
for i = 1, #ids, 2 do
  if taken >= want then break end
  local id = ids[i]
  local lease = ARGV[5] .. id
  if redis.call('EXISTS', lease) == 0 then
    redis.call('PSETEX', lease, ARGV[2], '1')
    local run = redis.call('INCR', ARGV[6] .. id)
    redis.call('EXPIRE', ARGV[6] .. id, 88400)
    local interrupted = 0
    if run > 1 then interrupted = tonumber(redis.call('GET', ARGV[8] .. id) or '0') end
    taken = taken + 1
    out[#out + 1] = id
    out[#out + 1] = ids[i + 1]
    out[#out + 1] = redis.call('GET', ARGV[7] .. id)
    out[#out + 1] = run
    out[#out + 1] = interrupted
  end
end
return out
"""
CLAIM_FIELDS = 5

JobRunner = Callable[[dict[str, Any], "JobInfo"], Awaitable[float | None]]


class JobInfo(msgspec.Struct):
    job_id: str
    try_number: int  # 1 for the first run of this job id; every run counts up (retries, crashes, stops)
    ready_at: int  # ms at which the job became due (enqueue time, retry time or cron tick)
    interrupted: int = 0  # earlier runs stopped by a graceful shutdown (they are not attempts)

    @property
    def attempt(self) -> int:
        return self.try_number - self.interrupted


class StepWorker(Worker):
    """arq's worker with a wake-up channel instead of a sleep, jobs claimed and read in one script
    call, their endings written in batches, renewed leases and Redis back-off."""

    def __init__(
        self,
        *,
        run_job: JobRunner,
        heartbeat: Callable[[], Awaitable[None]] | None,
        lease_s: float,
        max_timeout_s: float,
        **kwargs: Any,
    ) -> None:
        async def not_run_by_arq(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
            raise RuntimeError("workbench jobs are run by StepWorker._run_claimed, not arq's run_job")

        super().__init__(
            functions=[func(not_run_by_arq, name=JOB_FUNCTION)],  # arq wants one; its runner is unused
            queue_name=QUEUE,
            keep_result=0,
            retry_jobs=True,
            job_serializer=serializer,
            job_deserializer=deserializer,
            log_results=False,
            **kwargs,
        )
        self._run_job = run_job
        self.lease_s = lease_s
        self.in_progress_timeout_s = lease_s
        self._backstop_s = max_timeout_s + 5  # each step's own timeout fires first
        self._heartbeat = heartbeat
        self._slot_free = asyncio.Event()
        self._pubsub: Any = None
        self._claim: Any = None
        self._looked = False  # whether the last poll had room to take jobs
        # jobs the last poll claimed (not arq's _jobs_started() difference: a finished task is
        # counted both as complete and, until the poll removes it, as a task)
        self._claimed = 0
        self._endings: list[Callable[[Pipeline], None]] = []  # job endings waiting for the next batch
        self._endings_written: asyncio.Future[None] | None = None
        self._ending_writer: asyncio.Task[None] | None = None

    async def _poll_iteration(self) -> None:
        """arq's poll iteration, with due jobs found, claimed and read by one script call."""
        free = self.max_jobs - self.job_counter
        self._looked = self.allow_pick_jobs and free > 0
        self._claimed = 0
        if self._looked:
            if self._claim is None:
                self._claim = self.pool.register_script(_CLAIM)
            lease_ms = int(self.in_progress_timeout_s * 1000)
            prefixes = [in_progress_key_prefix, retry_key_prefix, job_key_prefix, INTERRUPTS]
            flat = await self._claim(
                keys=[self.queue_name],
                args=[now_ms(), lease_ms, free, self.queue_read_limit, *prefixes],
            )
            self._claimed = len(flat) // CLAIM_FIELDS
            for i in range(0, len(flat), CLAIM_FIELDS):
                job_id = flat[i].decode()
                score, raw, run, interrupted = flat[i + 1 : i + CLAIM_FIELDS]
                info = JobInfo(job_id, int(run), int(float(score)), int(interrupted))
                await self.sem.acquire()
                self.job_counter += 1
                task = self.loop.create_task(self._run_claimed(info, raw))
                task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
                self.tasks[job_id] = task
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # surfaces errors of the job machinery itself
        await self.heart_beat()

    async def _run_claimed(self, info: JobInfo, raw: bytes | None) -> None:
        """One run of a claimed job: the runner, then its ending (done, retry later, or re-queued)."""
        job_id = info.job_id
        if raw is None:  # its data expired (a job not started within JOB_EXPIRES_MS)
            log.warning("job %s expired before it could run; removed", job_id)
            await self._end(job_id, None)
            return
        try:
            payload = _decode(raw)["a"][0]
            async with asyncio.timeout(self._backstop_s):
                delay = await self._run_job(payload, info)
        except asyncio.CancelledError:
            # stopped by a graceful shutdown: the job goes back to the queue at once, and this run
            # does not count against its attempts
            with contextlib.suppress(RedisError, OSError):
                async with self.pool.pipeline(transaction=True) as pipe:
                    pipe.incr(INTERRUPTS + job_id)
                    pipe.expire(INTERRUPTS + job_id, 86_400)
                    pipe.delete(in_progress_key_prefix + job_id)
                    await asyncio.shield(pipe.execute())
            raise
        except Exception:
            # the job machinery itself failed (not the step: its errors are the runner's to handle),
            # Redis away while dead-lettering, say: run the job again later rather than lose it
            delay = min(60.0, 2.0 ** min(info.try_number, 6))
            log.exception("job %s could not be run; it runs again in %.0f s", job_id, delay)
            self.jobs_failed += 1
        else:
            if delay is None:
                self.jobs_complete += 1
            else:
                self.jobs_retried += 1
        await self._end(job_id, delay)

    async def _end(self, job_id: str, retry_in_s: float | None) -> None:
        """Remove a finished job, or put it back in the queue for `retry_in_s`; written with the
        other jobs ending at about the same time, in one MULTI/EXEC."""
        lease = in_progress_key_prefix + job_id

        def build(pipe: Pipeline) -> None:
            if retry_in_s is None:
                pipe.zrem(self.queue_name, job_id)
                pipe.delete(lease, retry_key_prefix + job_id, job_key_prefix + job_id, INTERRUPTS + job_id)
            else:
                pipe.zadd(self.queue_name, {job_id: now_ms() + int(retry_in_s * 1000)}, xx=True)
                pipe.delete(lease)
                add_wake(pipe)  # an idle worker works out its sleep again: this retry may be first

        self._endings.append(build)
        if self._endings_written is None:
            self._endings_written = self.loop.create_future()
        written = self._endings_written
        if self._ending_writer is None or self._ending_writer.done():
            self._ending_writer = self.loop.create_task(self._write_endings())
        try:
            await asyncio.shield(written)
        except (RedisError, OSError) as exc:
            # the lease runs out, and the job runs again: at least once, never lost
            log.warning("could not record the end of job %s (%s); it runs again after its lease", job_id, exc)

    async def _write_endings(self) -> None:
        """Write the job endings queued so far, batch after batch, one round trip each."""
        while self._endings:
            builds, written = self._endings, self._endings_written
            self._endings, self._endings_written = [], None
            assert written is not None
            try:
                async with self.pool.pipeline(transaction=True) as pipe:
                    for build in builds:
                        build(pipe)
                    await pipe.execute()
            except asyncio.CancelledError:
                written.cancel()
                raise
            except Exception as exc:
                written.set_exception(exc)
            else:
                written.set_result(None)

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self._slot_free.set()

    async def main(self) -> None:
        if self._pool is None:
            self._pool = await _connect_with_backoff(self.redis_settings)
        log.info("worker %s started: %d jobs at once", os.getpid(), self.max_jobs)
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        leases = asyncio.create_task(self._renew_leases(), name="workbench-leases")
        backoff = 0.1
        me = asyncio.current_task()
        try:
            while True:
                if me is not None and me.cancelling():
                    # redis-py can swallow a cancellation that lands mid-read: honour it here
                    raise asyncio.CancelledError
                try:
                    if self._pubsub is None:
                        self._pubsub = self.pool.pubsub()
                        await self._pubsub.subscribe(WAKE_CHANNEL)
                    self._slot_free.clear()  # before looking: a job ending from now on wakes us
                    await self._poll_iteration()
                    if self.burst and await self._burst_done():
                        return
                    if self.job_counter >= self.max_jobs or not self.allow_pick_jobs:
                        # full, or stopping (SIGTERM): look again as soon as a job ends
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._slot_free.wait(), self.poll_delay_s)
                    elif self._claimed == 0 and self._looked:
                        # we had room and found nothing due: sleep until work arrives
                        await self._wait_for_work()
                    if backoff > 0.1:
                        log.warning("Redis is reachable again; worker resumes")
                    backoff = 0.1
                except (RedisError, OSError) as exc:
                    log.warning("Redis unreachable (%s); worker retries in %.1fs", exc, backoff)
                    await self._reset_pubsub()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            leases.cancel()
            await self._reset_pubsub()

    async def _burst_done(self) -> bool:
        if 0 <= self.max_burst_jobs <= self._jobs_started():
            await asyncio.gather(*self.tasks.values())
            return True
        if self.job_counter == 0 and not await self.pool.zcard(self.queue_name):
            await asyncio.gather(*self.tasks.values())
            return not await self.pool.zcard(self.queue_name)  # deferred retries count as work left
        return False

    async def _reset_pubsub(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None

    async def _wait_for_work(self) -> None:
        """Until a job is enqueued, a deferred job falls due, or the poll delay passes."""
        # a burst run ends once a poll finds the queue empty: look often rather than sleep past it
        timeout = min(self.poll_delay_s, 0.05) if self.burst else self.poll_delay_s
        due = await self.pool.zrangebyscore(
            self.queue_name, f"({now_ms()}", "+inf", start=0, num=1, withscores=True
        )
        if due:
            timeout = max(0.0005, min(timeout, (due[0][1] - now_ms()) / 1000))
        message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        while message is not None:  # drain: one pass over the queue serves every wake-up so far
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0)

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            running = [job_id for job_id, task in self.tasks.items() if not task.done()]
            if not running:
                continue
            with contextlib.suppress(RedisError, OSError):
                async with self.pool.pipeline(transaction=False) as pipe:
                    for job_id in running:
                        pipe.pexpire(in_progress_key_prefix + job_id, int(self.lease_s * 1000))
                    await pipe.execute()

    async def heart_beat(self) -> None:
        await self.record_health()
        if self._heartbeat is not None:
            await self._heartbeat()

    async def close(self) -> None:
        """arq's close, with redis-py 5's `aclose` (arq still calls the deprecated `close`)."""
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        if not self._pool:
            return
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        with contextlib.suppress(RedisError, OSError):
            await self.pool.delete(self.health_check_key)
        await self.pool.aclose(close_connection_pool=True)
        self._pool = None

    def handle_sig_wait_for_completion(self, signum: signal.Signals) -> None:
        log.info(
            "stopping: waiting up to %.0fs for %d running jobs", self._job_completion_wait, len(self.tasks)
        )
        super().handle_sig_wait_for_completion(signum)


async def _connect_with_backoff(settings: RedisSettings | None) -> ArqRedis:
    from arq.connections import create_pool

    backoff = 0.2
    while True:
        try:
            pool: ArqRedis = await create_pool(settings, default_queue_name=QUEUE, retry=0)
            await pool.ping()
            return pool
        except (RedisError, OSError) as exc:
            log.warning("cannot reach Redis (%s); retrying in %.1fs", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


def make_worker(
    redis_url: str,
    *,
    run_job: JobRunner,
    heartbeat: Callable[[], Awaitable[None]] | None = None,
    concurrency: int,
    poll_delay_s: float,
    lease_s: float,
    grace_s: float,
    max_timeout_s: float,
    burst: bool = False,
    handle_signals: bool = True,
) -> StepWorker:
    settings = RedisSettings.from_dsn(redis_url)
    settings.conn_timeout = 2
    settings.conn_retries = 0
    return StepWorker(
        run_job=run_job,
        heartbeat=heartbeat,
        lease_s=lease_s,
        max_timeout_s=max_timeout_s,
        redis_settings=settings,
        max_jobs=concurrency,
        poll_delay=poll_delay_s,
        burst=burst,
        handle_signals=handle_signals,
        job_completion_wait=grace_s,  # type: ignore[arg-type,unused-ignore]  # arq hints int; wait_for takes any number
        health_check_interval=5,
    )


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
