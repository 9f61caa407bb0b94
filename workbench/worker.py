"""The worker process: runs event and cron steps from the queue."""

from __future__ import annotations

import logging

from .handler_watch import cancel_detached
from .registry import Registry
from .runtime import Runtime
from .settings import Settings
from .worker_loop import exit_now, make_worker

log = logging.getLogger("workbench.worker")


def max_timeout(registry: Registry) -> float:
    timeouts = [s.timeout_s for s in registry.background_steps()]
    return max(timeouts, default=30.0)


async def run_worker(
    settings: Settings, registry: Registry, *, burst: bool = False, handle_signals: bool = True
) -> Runtime:
    """Run until stopped (or, with `burst`, until the queue is empty). Returns the runtime used."""
    runtime = Runtime(settings, registry)
    await runtime.start()
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
