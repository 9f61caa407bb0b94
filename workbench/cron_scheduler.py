"""Enqueueing cron ticks: every worker computes the ticks due, and exactly one enqueues each.

Each worker's heartbeat asks `CronScheduler.tick` about the next second or so; a tick is claimed with
`SET NX` (`job_queue.claim_once`), so however many workers run, one of them queues it, as a new trace
(`Runtime.enqueue_step`). The times come from `cron.CronSchedule`. A tick of a paused step
(`queue_control.py`) is not run: it is recorded as a trace of its own whose span is `skipped`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from . import job_queue, keys, queue_control
from .ids import new_id, now_ms
from .step_config import CronStep
from .tracing.records import Span, plain_error

if TYPE_CHECKING:
    from .runtime import Runtime

TOO_LATE_MS = 60_000  # a tick this far in the past (a worker that was away) is not run late


class CronScheduler:
    """The next tick of each cron step, and the enqueueing of those that fall due."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._next: dict[str, datetime] = {}

    async def tick(self, moment: datetime, window_s: float = 1.0) -> None:
        """Enqueue each cron tick due within `window_s` of `moment`, claimed so one worker in all does it."""
        for step in self.runtime.registry.cron_steps():
            assert step.schedule is not None
            nxt = self._next.get(step.name)
            if nxt is None:
                nxt = self._next[step.name] = step.schedule.next_after(moment)
            while nxt.timestamp() <= moment.timestamp() + window_s:
                tick_ms = int(nxt.timestamp() * 1000)
                claim = f"{keys.CRON_CLAIM}{step.name}:{tick_ms}"
                if tick_ms >= now_ms() - TOO_LATE_MS and await job_queue.claim_once(
                    self.runtime.redis, claim
                ):
                    await self._run_tick(step, tick_ms)
                nxt = self._next[step.name] = step.schedule.next_after(nxt)

    async def _run_tick(self, step: CronStep, tick_ms: int) -> None:
        if await queue_control.is_paused(self.runtime.redis, step.name):
            self.record_skipped(step, tick_ms)
            return
        await self.runtime.enqueue_step(
            step, None, run_at_ms=tick_ms, job_id=f"cron:{step.name}:{tick_ms}", label=f"cron {step.cron}"
        )

    def record_skipped(self, step: CronStep, tick_ms: int) -> str:
        """A tick of a paused step: a trace with one `skipped` span, where the run would have been."""
        runtime = self.runtime
        trace_id = runtime.begin_trace(
            entry=step.name, kind=step.kind, label=f"cron {step.cron} · skipped (paused)"
        )
        span = Span(
            id=new_id(),
            trace_id=trace_id,
            step=step.name,
            kind=step.kind,
            enqueued_at=tick_ms,
            started_at=tick_ms,
            status="skipped",
            finished_at=tick_ms,
            error=plain_error("Paused", f"{step.name} is paused: this tick was skipped"),
        )
        runtime.recorder.span(span)
        return trace_id
