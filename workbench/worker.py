"""The worker process: runs event and cron steps from the queue, enqueues cron ticks, and says it
is alive (`Liveness`: the workers list the health checks and the status header read)."""

from __future__ import annotations

import logging
from datetime import datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError

from . import job_queue, keys
from .cron_scheduler import CronScheduler
from .handler_watch import cancel_detached
from .ids import now_ms
from .queue_control import RunTally
from .registry import Registry
from .runtime import Runtime
from .settings import Settings
from .worker_loop import exit_now, make_worker

log = logging.getLogger("workbench.worker")


async def open_connections(redis: Redis, n: int) -> None:
    """Open `n` of the runtime's Redis connections up front (one per job slot, and a couple for
    the recorder). A connection opened while another job's handler blocks the event loop would
    time out, its connect timeout running on loop time, and fail an innocent job's attempt."""
    pool = redis.connection_pool
    opened = []
    try:
        for _ in range(n):
            opened.append(await pool.get_connection())
    except (RedisError, OSError) as exc:  # Redis away at start: the worker loop's back-off copes
        log.debug("could not open Redis connections ahead (%s)", exc)
    finally:
        for connection in opened:
            await pool.release(connection)


ALIVE_MS = 5000  # a worker whose last beat is older than this is not counted alive
FORGET_MS = 60_000  # a worker silent this long leaves the list


class Liveness:
    """This worker's entry in the workers list (`keys.WORKERS`: worker id -> last beat ms)."""

    def __init__(self, redis: Redis, worker_id: str | None = None) -> None:
        self.redis = redis
        self.worker_id = worker_id or job_queue.worker_name()

    async def beat(self, now: int) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(keys.WORKERS, {self.worker_id: now})
            pipe.zremrangebyscore(keys.WORKERS, "-inf", now - FORGET_MS)
            await pipe.execute()


async def workers_alive(redis: Redis) -> int:
    """How many workers beat within the last `ALIVE_MS`."""
    return int(await redis.zcount(keys.WORKERS, now_ms() - ALIVE_MS, "+inf"))


class Heartbeat:
    """What the worker loop calls every iteration: at most every 100 ms the cron ticks due, and once
    a second the worker's beat and the runs it ended per step (for the queues page's runs/min)."""

    def __init__(self, runtime: Runtime) -> None:
        self.liveness = Liveness(runtime.redis)
        self.cron = CronScheduler(runtime)
        self.tally = RunTally()
        runtime.recorder.on_span_end.append(self.tally)
        self._last = 0

    async def __call__(self) -> None:
        now = now_ms()
        if now - self._last < 100:
            return
        beat_second = now // 1000 != self._last // 1000
        self._last = now
        if beat_second:
            await self.liveness.beat(now)
            await self.tally.flush(self.liveness.redis, now)
        await self.cron.tick(datetime.now().astimezone())


def max_timeout(registry: Registry) -> float:
    timeouts = [s.timeout_s for s in registry.background_steps()]
    return max(timeouts, default=30.0)


async def run_worker(
    settings: Settings, registry: Registry, *, burst: bool = False, handle_signals: bool = True
) -> Runtime:
    """Run until stopped (or, with `burst`, until the queue is empty). Returns the runtime used."""
    runtime = Runtime(settings, registry)
    await runtime.start()
    await open_connections(runtime.redis, settings.concurrency + 2)
    worker = make_worker(
        settings.redis_url,
        run_job=runtime.run_job,
        heartbeat=Heartbeat(runtime),
        on_cancel=runtime.cancel_runs,
        write_ending=runtime.recorder.after_records,
        concurrency=settings.concurrency,
        poll_delay_s=settings.poll_delay_s,
        lease_s=settings.lease_s,
        grace_s=settings.grace_s,
        max_timeout_s=max_timeout(registry),
        burst=burst,
        handle_signals=handle_signals,
    )
    try:
        await worker.async_run()
    finally:
        await worker.close()
        await runtime.stop()
        if handle_signals and (worker.stuck or await cancel_detached(0.5)):
            # a handler that ignores its cancellation would keep the process alive for ever
            # (asyncio.run waits for every task): its job was re-queued or has ended, so leave
            log.error("handlers are still running after the worker stopped; exiting without them")
            exit_now(1)
    return runtime
