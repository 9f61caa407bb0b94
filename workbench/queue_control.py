"""Queue controls: pause and resume a background step, purge its waiting jobs, and the numbers the
queues page shows per step.

A paused step's jobs stay queued: the claim script parks each one as it falls due (`job_queue.PARKED`)
instead of starting it, and `resume` puts them back at their due times. A cron tick of a paused step
is recorded as `skipped` (`cron_scheduler.py`). Runs per minute come from the workers: each counts
the runs it ends per step and adds them, once a second with its heartbeat, to a per-minute hash
(`RUNS`), so nothing is written per run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from redis.asyncio import Redis

from . import job_queue, keys
from .ids import now_ms
from .step_config import BackgroundStep
from .tracing.records import Span

if TYPE_CHECKING:
    from .runtime import Runtime

RUNS = keys.PREFIX + "runs:"  # + minute (ms // 60000): hash step -> runs ended in that minute
RUNS_TTL_S = 180


class UnknownStep(LookupError):
    """No background step of that name (the message lists those there are)."""


def background_step(runtime: Runtime, name: str) -> BackgroundStep:
    step = runtime.registry.get(name)
    if not isinstance(step, BackgroundStep):
        names = ", ".join(s.name for s in runtime.registry.background_steps()) or "none"
        raise UnknownStep(f"no background step named {name!r} (background steps: {names})")
    return step


async def is_paused(redis: Redis, step: str) -> bool:
    return bool(await _wait(redis.hexists(job_queue.PAUSED, step)))


async def paused_steps(redis: Redis) -> dict[str, int]:
    """Paused step -> ms it was paused."""
    raw = await _wait(redis.hgetall(job_queue.PAUSED))
    return {_text(k): int(v) for k, v in raw.items()}


async def pause(runtime: Runtime, name: str) -> bool:
    """Pause a step; False when it was paused already."""
    step = background_step(runtime, name)
    return bool(await _wait(runtime.redis.hsetnx(job_queue.PAUSED, step.name, str(now_ms()))))


async def resume(runtime: Runtime, name: str) -> tuple[bool, int]:
    """Resume a step: whether it was paused, and how many parked jobs went back to the queue.

    The step leaves the paused set first: from then on no claim parks its jobs, so one pass over
    the parked ones finds them all."""
    step = background_step(runtime, name)
    was_paused = bool(await _wait(runtime.redis.hdel(job_queue.PAUSED, step.name)))
    jobs = [j.job_id for j in await job_queue.waiting_jobs(runtime.redis) if j.parked and j.step == step.name]
    return was_paused, await job_queue.unpark(runtime.redis, jobs)


async def purge(runtime: Runtime, name: str) -> int:
    """Cancel every job of a step that waits (ready, deferred, a retry, parked); runs under way go on.
    Each purged job's span is recorded `cancelled`, so its trace closes as cancelled."""
    from .cancel import cancel_waiting

    step = background_step(runtime, name)
    purged = 0
    for job in await job_queue.waiting_jobs(runtime.redis):
        if (
            job.step == step.name
            and not job.leased
            and await cancel_waiting(runtime, job.job_id, why="purged")
        ):
            purged += 1
    await runtime.recorder.flush()
    return purged


# --- runs per minute -------------------------------------------------------------------------------


class RunTally:
    """Runs ended per step in this process, since the last `flush` (a `Recorder.on_span_end` observer)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, span: Span) -> None:
        if span.kind not in ("api", "emit") and span.status != "skipped":  # a paused tick is no run
            self.counts[span.step] += 1

    async def flush(self, redis: Redis, now: int) -> None:
        if not self.counts:
            return
        counts, self.counts = self.counts, Counter()
        key = RUNS + str(now // 60_000)
        async with redis.pipeline(transaction=False) as pipe:
            for step, n in counts.items():
                pipe.hincrby(key, step, n)
            pipe.expire(key, RUNS_TTL_S)
            await pipe.execute()


async def runs_per_minute(redis: Redis, now: int) -> dict[str, float]:
    """Runs per step over the last 60 s: this minute's count plus the part of the last one that
    falls in the window."""
    minute = now // 60_000
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(RUNS + str(minute))
        pipe.hgetall(RUNS + str(minute - 1))
        current, previous = await pipe.execute()
    share = 1 - (now % 60_000) / 60_000
    rates: dict[str, float] = {}
    for step in {*current, *previous}:
        rates[_text(step)] = int(current.get(step, 0)) + int(previous.get(step, 0)) * share
    return rates


# --- the queues page's numbers ---------------------------------------------------------------------


@dataclass
class StepQueue:
    step: str
    kind: str
    paused: bool = False
    paused_at: int | None = None
    ready: int = 0  # due, waiting for a worker (parked ones of a paused step included)
    deferred: int = 0  # not due yet (a later run, a first-run delay, a cron tick ahead)
    running: int = 0
    retrying: int = 0  # failed before and waiting for its next attempt
    parked: int = 0
    dead_letters: int = 0
    oldest_wait_ms: int | None = None  # how long the longest-waiting due job has waited
    runs_per_minute: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "kind": self.kind,
            "paused": self.paused,
            "pausedAt": self.paused_at,
            "ready": self.ready,
            "deferred": self.deferred,
            "running": self.running,
            "retrying": self.retrying,
            "parked": self.parked,
            "deadLetters": self.dead_letters,
            "oldestWaitMs": self.oldest_wait_ms,
            "runsPerMinute": round(self.runs_per_minute, 1),
        }


async def queue_overview(runtime: Runtime) -> list[StepQueue]:
    """One row per background step (and per step name found queued that the step files lack)."""
    redis, now = runtime.redis, now_ms()
    rows = {s.name: StepQueue(s.name, s.kind) for s in runtime.registry.background_steps()}
    for name, at in (await paused_steps(redis)).items():
        if name in rows:
            rows[name].paused, rows[name].paused_at = True, at
    for job in await job_queue.waiting_jobs(redis):
        row = rows.get(job.step) or rows.setdefault(job.step, StepQueue(job.step, "unknown"))
        if job.leased:
            row.running += 1
            continue
        row.parked += job.parked
        if job.runs > 0:
            row.retrying += 1
        elif job.due_ms > now:
            row.deferred += 1
        else:
            row.ready += 1
        if job.due_ms <= now:
            waited = now - job.due_ms
            row.oldest_wait_ms = max(row.oldest_wait_ms or 0, waited)
    for letter in await runtime.dead_letters.list(limit=10_000):
        step = str(letter.get("step"))
        if step in rows:
            rows[step].dead_letters += 1
    for step, rate in (await runs_per_minute(redis, now)).items():
        if step in rows:
            rows[step].runs_per_minute = rate
    return list(rows.values())


T = TypeVar("T")


def _wait(answer: Awaitable[T] | T) -> Awaitable[T]:
    """redis-py's async commands, typed as the awaitables they are (its stubs say "or a value")."""
    return cast("Awaitable[T]", answer)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
