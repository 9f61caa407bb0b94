"""The worker loop: claims due jobs from the queue and runs each in a task of its own.

It is ours, not arq's `Worker` (see `arq_seam.py` for what is still arq's: the data layout):
- **Slots.** At most `concurrency` jobs run at once; a job ending frees its slot and wakes the loop.
- **Poll and wake.** The loop claims as many due jobs as it has free slots, in one script call. With
  room to spare and nothing due it sleeps until a wake-up message arrives (every enqueue publishes
  one), the next deferred job falls due, or the poll delay passes (a fallback).
- **Leases.** A running job's lease is renewed every third of the lease by a thread with its own
  Redis connection (`LeaseKeeper`), so a handler blocking the event loop (`time.sleep(8)` in an
  `async def`) cannot make the worker look dead: only a dead process loses its jobs.
- **Endings with the records.** A job's ending is written by `write_ending` (the worker process and
  the harness pass `Recorder.after_records`): after its span's end, in the recorder's next batch, so
  many jobs' endings share the records' round trip and a job is never seen done before its span
  ended; a run that emitted ended its job already, with its emits (`JobInfo.ended`). Without
  `write_ending`, the endings of jobs that finish together are written in one MULTI/EXEC. A
  run that cannot finish (the machinery failed, not the step) is put back in the queue, never dropped.
  An ending that cannot be written is tried again while the job is still held (lease renewed), and the
  loop's connections are opened at start: one opened while a handler blocks the loop would time out.
- **Burst.** With `burst`, the loop returns once the queue is empty (deferred retries included).
- **Graceful stop.** SIGTERM or SIGINT (or `stop()`): no more claims; running jobs get the grace
  period to finish, then they are cancelled and re-queued (an interrupted run is not an attempt). A
  second signal ends the grace period at once. Whatever the handlers do, the process is gone
  `STOP_BOUND_S` after the grace period: a worker that cannot stop cleanly (its event loop blocked,
  a handler ignoring its cancellation) releases its jobs' leases, so they run again elsewhere at
  once, and exits.
- **Resilience.** Losing Redis does not kill the worker: it backs off and carries on.
- **Liveness.** The `heartbeat` hook (the cron ticks and the worker list) runs every iteration.
- **Cancel.** Job ids sent on `CANCEL_CHANNEL` (a user's cancel, `cancel.py`) go to `on_cancel`
  (`Runtime.cancel_runs`), which cancels those of its runs; the same subscription as the wake-ups.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable
from types import FrameType
from typing import Any

from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from . import lua
from .ids import now_ms
from .job_queue import (
    CANCEL_CHANNEL,
    WAKE_CHANNEL,
    JobInfo,
    JobQueue,
    JobRunner,
    lease_key,
    payload_of,
    woken_for,
)

log = logging.getLogger("workbench.queue")

_CANCEL = CANCEL_CHANNEL.encode()
CANCEL_WAIT_S = 2.0  # after the grace period: how long cancelled jobs get to record their stop
STOP_BOUND_S = 5.0  # after the grace period: when a worker that could not stop cleanly exits anyway
ENDING_TRIES = 5  # writes of a job's ending before it is left to its lease (0.75 s of back-off in all)
LOOP_CONNECTIONS = 4  # opened at start: the claims, the endings, the wake-up subscription, a spare


# writes a job's ending (the commands `build` queues) after the records of its trace (`trace_id`)
EndingWriter = Callable[[str, Callable[[Pipeline], None]], Awaitable[None]]


class WorkerLoop:
    """Runs jobs from the queue until stopped (or, with `burst`, until the queue is empty)."""

    def __init__(
        self,
        redis_url: str,
        *,
        run_job: JobRunner,
        heartbeat: Callable[[], Awaitable[None]] | None,
        on_cancel: Callable[[list[str]], None] | None = None,
        write_ending: EndingWriter | None = None,
        concurrency: int,
        poll_delay_s: float,
        lease_s: float,
        grace_s: float,
        max_timeout_s: float,
        burst: bool,
        handle_signals: bool,
    ) -> None:
        self.redis_url = redis_url
        self.concurrency = concurrency
        self.poll_delay_s = poll_delay_s
        self.lease_s = lease_s
        self.grace_s = grace_s
        self.burst = burst
        self.handle_signals = handle_signals
        self.jobs_complete = self.jobs_retried = self.jobs_failed = 0
        self._run_job = run_job
        self._heartbeat = heartbeat
        self._on_cancel = on_cancel  # a user's cancel of running jobs (cancel.py), passed to the runner
        # where a job's ending is written: with the records of its trace (Recorder.after_records), so a
        # job is never seen done before its span's end is stored; else in batches of the loop's own
        self._write_ending = write_ending
        self._backstop_s = max_timeout_s + 5  # each step's own timeout fires first
        self._redis: Redis | None = None
        self._queue: JobQueue | None = None
        self._pubsub: Any = None  # redis-py's PubSub (its close is untyped)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self._grace_over = False
        # the loop's one wake-up: set by a job ending, a wake-up message, or a stop; cleared before
        # each look at the queue, so nothing that happens while looking is missed
        self._nudged = False
        self._nap: asyncio.Future[None] | None = None
        self._endings: list[Callable[[Pipeline], None]] = []  # job endings waiting for the next batch
        self._endings_written: asyncio.Future[None] | None = None
        self._ending_writer: asyncio.Task[None] | None = None
        self._previous_handlers: dict[int, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._leases: LeaseKeeper | None = None
        self._deadline: threading.Timer | None = None
        self.stuck = False  # jobs that did not end when cancelled: only leaving the process ends them

    # --- running --------------------------------------------------------------------------------

    async def async_run(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        if self.handle_signals:
            # Python-level handlers, not the loop's: they run even while a handler blocks the loop
            # (a time.sleep is interrupted for them), so the stop deadline is always armed
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous_handlers[sig] = signal.signal(sig, self._on_signal)
        self._redis = await _connect_with_backoff(self.redis_url)
        # opened now, not when first needed: a connection opened while a handler blocks the loop times
        # out (its connect timeout runs on loop time), and a job ending written on it would be lost
        await _open_connections(self._redis, LOOP_CONNECTIONS)
        self._queue = JobQueue(self._redis, lease_s=self.lease_s, read_limit=max(self.concurrency * 5, 100))
        self._leases = LeaseKeeper(self.redis_url, self._queue, interval_s=self.lease_s / 3)
        self._leases.start()
        log.info("worker %s started: %d jobs at once", os.getpid(), self.concurrency)
        listener = loop.create_task(self._listen(), name="workbench-wake")
        try:
            await self._poll_loop()
            await self._finish_running()
        except asyncio.CancelledError:
            self._stopping = self._grace_over = True
            await self._cancel_running()
            raise
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await self._reset_pubsub()

    def stop(self) -> None:
        """Stop claiming jobs; running ones get the grace period. A second call ends the grace."""
        if self._stopping:
            self._grace_over = True
        else:
            log.info("stopping: waiting up to %.0fs for %d running jobs", self.grace_s, len(self._running))
        self._stopping = True
        self._nudge()

    async def close(self) -> None:
        """Release what `async_run` opened (jobs still running are cancelled and re-queued). An
        armed stop deadline stays armed: it bounds the rest of the process's shutdown too."""
        for sig, previous in self._previous_handlers.items():
            signal.signal(sig, previous)
        self._previous_handlers = {}
        if self._running:
            self._stopping = self._grace_over = True
            await self._cancel_running()
        if self._leases is not None:
            self._leases.stop()
            self._leases = None
        if self._redis is not None:
            await self._redis.aclose(close_connection_pool=True)
            self._redis = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT, in the main thread (between two bytecodes of whatever runs there)."""
        if self._deadline is None:
            self._deadline = threading.Timer(self.grace_s + STOP_BOUND_S, self._hard_exit, args=(signum,))
            self._deadline.daemon = True
            self._deadline.start()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.stop)

    def _hard_exit(self, signum: int) -> None:
        """The stop deadline passed (in the timer's thread): release the leases and leave."""
        leases = self._leases
        jobs = leases.jobs() if leases is not None else []
        log.error(
            "the worker did not stop within %.0f s of %s (a handler blocking the event loop or ignoring "
            "its cancellation?): exiting now; its %d running jobs run again elsewhere",
            self.grace_s + STOP_BOUND_S,
            signal.Signals(signum).name,
            len(jobs),
        )
        if jobs:
            release_leases(self.redis_url, jobs)
        exit_now(1)

    async def _poll_loop(self) -> None:
        backoff = 0.1
        me = asyncio.current_task()
        while not self._stopping:
            if me is not None and me.cancelling():
                # redis-py can swallow a cancellation that lands mid-read: honour it here
                raise asyncio.CancelledError
            try:
                self._nudged = False  # before looking: a job ending or a wake-up from now on counts
                free = self.concurrency - len(self._running)
                claimed = await self._claim(free) if free > 0 else 0
                if self._heartbeat is not None:
                    await self._heartbeat()
                if self.burst and not self._running and not claimed and not await self._q.size():
                    return
                if free <= claimed:
                    await self._sleep(self.poll_delay_s)  # full: until a job ends
                elif claimed == 0:
                    await self._sleep(await self._idle_timeout())  # until work arrives
                if backoff > 0.1:
                    log.warning("Redis is reachable again; worker resumes")
                backoff = 0.1
            except (RedisError, OSError) as exc:
                log.warning("Redis unreachable (%s); worker retries in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _claim(self, free: int) -> int:
        # the lease keeper renews the candidates' leases from before the claim is sent: its answer
        # may wait in the socket while a handler blocks the loop, and the leases must not lapse
        claimed = await self._q.claim(free, self._running, holding=self._l.add, not_held=self._not_held)
        for info, raw in claimed:
            task = asyncio.get_running_loop().create_task(self._run_claimed(info, raw))
            self._running[info.job_id] = task
            task.add_done_callback(functools.partial(self._job_done, info.job_id))
        return len(claimed)

    def _not_held(self, job_ids: list[str]) -> None:
        self._l.discard_all(job_id for job_id in job_ids if job_id not in self._running)

    def _job_done(self, job_id: str, task: asyncio.Task[None]) -> None:
        if self._running.get(job_id) is task:
            del self._running[job_id]
            self._l.discard(job_id)  # its ending is written (or its lease is left to run out)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("the worker failed running a job", exc_info=exc)
        self._nudge()

    async def _idle_timeout(self) -> float:
        # a burst run ends once a poll finds the queue empty: look often rather than sleep past it
        timeout = min(self.poll_delay_s, 0.05) if self.burst else self.poll_delay_s
        due = await self._q.next_deferred_ms()
        if due is not None:
            timeout = max(0.0005, min(timeout, (due - now_ms()) / 1000))
        return timeout

    def _nudge(self) -> None:
        self._nudged = True
        if self._nap is not None and not self._nap.done():
            self._nap.set_result(None)

    async def _sleep(self, seconds: float) -> None:
        """Until nudged (a job ended, a wake-up arrived, a stop) or `seconds` pass."""
        if self._nudged:
            return
        loop = asyncio.get_running_loop()
        self._nap = nap = loop.create_future()
        timer = loop.call_later(seconds, _resolve, nap)
        try:
            await nap
        finally:
            timer.cancel()
            self._nap = None

    async def _listen(self) -> None:
        """Read wake-up messages for as long as the worker runs, reconnecting after a Redis outage."""
        backoff = 0.1
        while True:
            try:
                if self._pubsub is None:
                    self._pubsub = self._r.pubsub()
                    await self._pubsub.subscribe(WAKE_CHANNEL, CANCEL_CHANNEL)
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                if message is None:
                    pass
                elif message["channel"] == _CANCEL:
                    if self._on_cancel is not None:
                        self._on_cancel(message["data"].decode().split(","))
                else:
                    self._q.hint(woken_for(message["data"]))
                    self._nudge()
                backoff = 0.1
            except (RedisError, OSError):
                await self._reset_pubsub()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                self._nudge()  # a wake-up may have been lost meanwhile: look at the queue

    async def _reset_pubsub(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None

    # --- one job ----------------------------------------------------------------------------------

    async def _run_claimed(self, info: JobInfo, raw: bytes | None) -> None:
        """One run of a claimed job: the runner, then its ending (done, retry later, or re-queued)."""
        job_id = info.job_id
        if raw is None:  # its data expired (a job not started within JOB_EXPIRES_MS)
            log.warning("job %s expired before it could run; removed", job_id)
            await self._end(job_id, None)
            return
        trace_id = ""
        try:
            payload = payload_of(raw)
            trace_id = str(payload.get("traceId") or "")
            async with asyncio.timeout(self._backstop_s):
                delay = await self._run_job(payload, info)
        except asyncio.CancelledError:
            # stopped by a graceful shutdown: the job goes back to the queue at once
            with contextlib.suppress(RedisError, OSError):
                async with self._r.pipeline(transaction=True) as pipe:
                    self._q.interrupt(pipe, job_id)
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
                if info.ended:  # its ending went out with its emits (Runtime.send_outbox)
                    return
            else:
                self.jobs_retried += 1
        await self._end(job_id, delay, trace_id)

    async def _end(self, job_id: str, retry_in_s: float | None, trace_id: str = "") -> None:
        """Remove a finished job, or put it back in the queue for `retry_in_s`: with the records of
        its trace (`write_ending`), or written with the other jobs ending at about the same time."""
        build: Callable[[Pipeline], None]
        if retry_in_s is None:
            build = functools.partial(JobQueue.end, job_id=job_id)
        else:
            build = functools.partial(
                JobQueue.retry_at, job_id=job_id, at_ms=now_ms() + int(retry_in_s * 1000)
            )
        # tried again a few times (both endings can be written twice): the job is still held meanwhile,
        # its lease renewed, so a failed write (a connection that timed out while a handler blocked
        # the loop, a Redis blip) does not give it up to a second run at once
        for attempt in range(ENDING_TRIES):
            if self._write_ending is not None:
                try:
                    await asyncio.shield(self._write_ending(trace_id, build))
                    return
                except (RedisError, OSError) as exc:
                    if attempt + 1 == ENDING_TRIES:
                        log.warning(
                            "could not record the end of job %s (%s); it runs again after its lease",
                            job_id, exc,
                        )  # fmt: skip
                        return
                    await asyncio.sleep(0.05 * 2**attempt)
                    continue
            self._endings.append(build)
            if self._endings_written is None:
                self._endings_written = asyncio.get_running_loop().create_future()
            written = self._endings_written
            if self._ending_writer is None or self._ending_writer.done():
                self._ending_writer = asyncio.get_running_loop().create_task(self._write_endings())
            try:
                await asyncio.shield(written)
                return
            except (RedisError, OSError) as exc:
                if attempt + 1 == ENDING_TRIES:
                    # the lease runs out, and the job runs again: at least once, never lost
                    log.warning(
                        "could not record the end of job %s (%s); it runs again after its lease", job_id, exc
                    )
                    return
                await asyncio.sleep(0.05 * 2**attempt)

    async def _write_endings(self) -> None:
        """Write the job endings queued so far, batch after batch, one round trip each."""
        while self._endings:
            builds, written = self._endings, self._endings_written
            self._endings, self._endings_written = [], None
            assert written is not None
            try:
                async with self._r.pipeline(transaction=True) as pipe:
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

    # --- stopping ---------------------------------------------------------------------------------

    async def _finish_running(self) -> None:
        """The grace period: running jobs may finish; then the rest are cancelled and re-queued."""
        deadline = asyncio.get_running_loop().time() + self.grace_s
        while self._running and not self._grace_over:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            self._nudged = False
            await self._sleep(left)
        await self._cancel_running()

    async def _cancel_running(self) -> None:
        tasks = list(self._running.values())
        if not tasks:
            return
        log.info("stopping: %d jobs did not finish in time; they are re-queued", len(tasks))
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=CANCEL_WAIT_S)
        stuck = [job_id for job_id, task in self._running.items() if not task.done()]
        if stuck:
            # not even their cancellation ended them: let them run again elsewhere now, and leave
            self.stuck = True
            log.error("stopping: %d jobs did not end when cancelled; their leases are released", len(stuck))
            for job_id in stuck:
                self._l.discard(job_id)
                del self._running[job_id]
            with contextlib.suppress(RedisError, OSError):
                await self._r.delete(*[lease_key(job_id) for job_id in stuck])

    @property
    def _r(self) -> Redis:
        assert self._redis is not None, "the worker is not running"
        return self._redis

    @property
    def _q(self) -> JobQueue:
        assert self._queue is not None, "the worker is not running"
        return self._queue

    @property
    def _l(self) -> LeaseKeeper:
        assert self._leases is not None, "the worker is not running"
        return self._leases


class LeaseKeeper(threading.Thread):
    """Renews the leases of the worker's running jobs, every `interval_s`, from a thread with a
    Redis connection of its own: a blocked event loop cannot stop it (time.sleep releases the GIL,
    and pure-Python code gives it up every few milliseconds)."""

    def __init__(self, redis_url: str, queue: JobQueue, *, interval_s: float) -> None:
        super().__init__(name="workbench-leases", daemon=True)
        self._url = redis_url
        self._queue = queue
        self._interval_s = interval_s
        self._jobs: set[str] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def add(self, job_ids: Iterable[str]) -> None:
        with self._lock:
            self._jobs.update(job_ids)

    def discard(self, job_id: str) -> None:
        with self._lock:
            self._jobs.discard(job_id)

    def discard_all(self, job_ids: Iterable[str]) -> None:
        with self._lock:
            self._jobs.difference_update(job_ids)

    def jobs(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    def stop(self) -> None:
        self._stopped.set()
        self.join(5)

    def run(self) -> None:
        client = SyncRedis.from_url(self._url, socket_connect_timeout=2, socket_timeout=2)
        renew = client.register_script(lua.load("renew"))
        try:
            while not self._stopped.wait(self._interval_s):
                if jobs := self.jobs():
                    lease_keys, args = self._queue.renew_args(jobs)
                    try:
                        renew(keys=lease_keys, args=args)
                    except (RedisError, OSError) as exc:  # Redis away: the loop says so; try again
                        log.debug("could not renew %d leases: %s", len(jobs), exc)
        finally:
            client.close()


def release_leases(redis_url: str, job_ids: list[str]) -> None:
    """Delete the leases of jobs this process gives up, so another worker runs them at once (the
    run counts as an attempt, as a crashed worker's does: the job may be what stopped it)."""
    client = SyncRedis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.delete(*[lease_key(job_id) for job_id in job_ids])
    except (RedisError, OSError) as exc:
        log.warning("could not release %d leases (%s): they run again after the lease", len(job_ids), exc)
    finally:
        client.close()


def exit_now(code: int) -> None:
    """Leave the process at once, without waiting for threads or tasks that will not end (what
    is written to the terminal and the log handlers is flushed first)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _open_connections(redis: Redis, n: int) -> None:
    pool, opened = redis.connection_pool, []
    try:
        for _ in range(n):
            opened.append(await pool.get_connection())
    except (RedisError, OSError) as exc:  # Redis away: the loop's back-off copes
        log.debug("could not open Redis connections ahead (%s)", exc)
    finally:
        for connection in opened:
            await pool.release(connection)


async def _connect_with_backoff(url: str) -> Redis:
    backoff = 0.2
    while True:
        redis: Redis = Redis.from_url(
            url, socket_connect_timeout=2, health_check_interval=10, retry_on_timeout=False
        )
        try:
            await redis.ping()
            return redis
        except (RedisError, OSError) as exc:
            await redis.aclose(close_connection_pool=True)
            log.warning("cannot reach Redis (%s); retrying in %.1fs", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


def make_worker(
    redis_url: str,
    *,
    run_job: JobRunner,
    heartbeat: Callable[[], Awaitable[None]] | None = None,
    on_cancel: Callable[[list[str]], None] | None = None,
    write_ending: EndingWriter | None = None,
    concurrency: int,
    poll_delay_s: float,
    lease_s: float,
    grace_s: float,
    max_timeout_s: float,
    burst: bool = False,
    handle_signals: bool = True,
) -> WorkerLoop:
    return WorkerLoop(
        redis_url,
        run_job=run_job,
        heartbeat=heartbeat,
        on_cancel=on_cancel,
        write_ending=write_ending,
        concurrency=concurrency,
        poll_delay_s=poll_delay_s,
        lease_s=lease_s,
        grace_s=grace_s,
        max_timeout_s=max_timeout_s,
        burst=burst,
        handle_signals=handle_signals,
    )
