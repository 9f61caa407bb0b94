"""The worker process: runs event and cron steps from the queue."""

from __future__ import annotations

import logging

from .registry import Registry
from .runtime import Runtime
from .settings import Settings
from .worker_loop import make_worker

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
    return runtime
