"""Cancelling work from the web process or the CLI: a job, or everything of a trace still to do.

- **A job no worker holds** (queued, a deferred retry, parked by a pause) is taken out of the queue
  atomically with claims (`job_queue.remove_waiting`) and a `cancelled` span is recorded for the run
  it will not have, closing its part of the trace.
- **A running job** is asked for on `job_queue.CANCEL_CHANNEL`; the worker running it cancels its
  handler's task (`Runtime.cancel_runs`): the run ends `cancelled`, is not retried and is not a dead
  letter. A handler that ignores its cancellation is left behind, as for a timeout (handler_watch).
  The caller waits for the outcome a few seconds.

Either way the trace is marked `cancelled` (a field of its hash), so once nothing is left open and
nothing failed, its status is `cancelled`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from redis.asyncio import Redis

from . import job_queue, keys
from .ids import now_ms
from .tracing.records import Span, plain_error

if TYPE_CHECKING:
    from .runtime import Runtime

CANCEL_WAIT_S = 5.0  # how long a cancel of a running job waits for its worker to end it
CANCELLED_FIELD = "cancelled"  # in the trace's hash: ms of the first cancel

Outcome = Literal["cancelled", "finished", "requested"]


class NothingToCancel(LookupError):
    """No such job or trace, or nothing of it is queued or running (the message says which)."""


@dataclass
class Cancelled:
    """What a cancel did, job by job: `cancelled` (removed, or its run stopped), `finished` (it ended
    before the cancel reached it) or `requested` (its worker has not ended it yet)."""

    trace_id: str | None
    jobs: dict[str, Outcome] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out = {"cancelled": 0, "finished": 0, "requested": 0}
        for outcome in self.jobs.values():
            out[outcome] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {"traceId": self.trace_id, "jobs": self.jobs, **self.counts()}


async def mark_trace(redis: Redis, trace_id: str) -> None:
    """The trace was cancelled by someone (kept: its status reads `cancelled` once it ends unfailed)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hsetnx(keys.TRACE + trace_id, CANCELLED_FIELD, str(now_ms()))
        await pipe.execute()


def job_id_of(ref: str) -> str:
    """A job id from a job id or a span id (`jobId:run`)."""
    head, sep, tail = ref.rpartition(":")
    return head if sep and head and tail.isdigit() else ref


async def cancel_waiting(runtime: Runtime, job_id: str, *, why: str = "cancelled") -> bool:
    """Remove a job no worker holds and record its cancelled run; False if it was not waiting."""
    removed = await job_queue.remove_waiting(runtime.redis, job_id)
    if not isinstance(removed, job_queue.Removed):
        return False
    payload = removed.payload or {}
    trace_id = payload.get("traceId")
    if not trace_id:
        return True  # its data had expired: nothing recorded it
    await mark_trace(runtime.redis, trace_id)
    from .runtime import end_span

    runs = removed.runs
    span = Span(
        id=f"{job_id}:{runs + 1}",
        trace_id=trace_id,
        step=str(payload.get("step")),
        kind=_kind_of(runtime, str(payload.get("step"))),
        parent_id=payload.get("parentId"),
        attempt=int(payload.get("attemptBase") or 0) + runs - removed.interrupted + 1,
        enqueued_at=removed.due_ms,
        started_at=now_ms(),
        topic=payload.get("topic"),
        job_id=job_id,
    )
    what = "purged from its queue" if why == "purged" else "cancelled before it ran"
    end_span(runtime.recorder, span, "cancelled", plain_error("Cancelled", what))
    return True


async def cancel_job(runtime: Runtime, ref: str, *, wait_s: float = CANCEL_WAIT_S) -> Cancelled:
    """Cancel one job (by its id or one of its spans' ids), waiting up to `wait_s` for a running one."""
    # the ref as a job id first: a cron job's id (`cron:Step:tick`) ends in digits as a span id does
    job_id = ref
    raw = await runtime.redis.get(job_queue.job_key(job_id))
    if raw is None and (job_id := job_id_of(ref)) != ref:
        raw = await runtime.redis.get(job_queue.job_key(job_id))
    if raw is None:
        raise NothingToCancel(f"no queued or running job {job_id!r} (it may have finished already)")
    result = Cancelled(_trace_of(raw))
    await _cancel(runtime, [job_id], result, wait_s)
    return result


async def cancel_trace(runtime: Runtime, trace_id: str, *, wait_s: float = CANCEL_WAIT_S) -> Cancelled:
    """Cancel everything of a trace still queued or running."""
    trace = await runtime.store.get_trace(trace_id)
    if trace is None:
        raise NothingToCancel(f"no trace {trace_id!r}")
    jobs = [
        j.job_id
        for j in await job_queue.waiting_jobs(runtime.redis)
        if (j.payload or {}).get("traceId") == trace_id
    ]
    if not jobs:
        raise NothingToCancel(
            f"trace {trace_id} has no job queued or running (its status: {trace['status']})"
        )
    result = Cancelled(trace_id)
    await _cancel(runtime, jobs, result, wait_s)
    return result


async def _cancel(runtime: Runtime, job_ids: list[str], result: Cancelled, wait_s: float) -> None:
    redis = runtime.redis
    asked: set[str] = set()
    deadline = asyncio.get_running_loop().time() + wait_s
    pending = list(job_ids)
    while pending:
        still = []
        for job_id in pending:
            if await cancel_waiting(runtime, job_id):
                result.jobs[job_id] = "cancelled"
            elif not await redis.exists(job_queue.job_key(job_id)):  # it ended: how?
                result.jobs[job_id] = await _ended_how(runtime, job_id, result.trace_id)
            else:  # a worker runs it: ask that worker (once), then wait for its end
                if job_id not in asked:
                    if result.trace_id:
                        await mark_trace(redis, result.trace_id)
                    await redis.publish(job_queue.CANCEL_CHANNEL, job_id)
                    asked.add(job_id)
                still.append(job_id)
        pending = still
        if pending:
            if asyncio.get_running_loop().time() >= deadline:
                for job_id in pending:
                    result.jobs[job_id] = "requested"
                break
            await asyncio.sleep(0.05)  # the worker's answer is the job's end in Redis
    await runtime.recorder.flush()


async def _ended_how(runtime: Runtime, job_id: str, trace_id: str | None) -> Outcome:
    if trace_id is None:
        return "finished"
    spans = (await runtime.store.get_trace(trace_id) or {}).get("spanList", [])
    mine = [s for s in spans if s.get("jobId") == job_id]
    return "cancelled" if mine and mine[-1]["status"] == "cancelled" else "finished"


def _trace_of(raw: Any) -> str | None:
    try:
        payload = job_queue.payload_of(raw.encode() if isinstance(raw, str) else raw)
    except Exception:
        return None
    trace_id = payload.get("traceId")
    return str(trace_id) if trace_id else None


def _kind_of(runtime: Runtime, step: str) -> str:
    found = runtime.registry.get(step)
    return found.kind if found is not None else "event"
