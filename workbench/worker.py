"""The worker process: runs event and cron steps from the queue."""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .handler_watch import cancel_detached
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
        heartbeat=runtime.heartbeat,
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
