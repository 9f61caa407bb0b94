"""`Harness`: a project's steps running in-process against a real Redis, for tests.

The web app (with its lifespan) runs on an event loop in a background thread (Litestar's test
client portal); `client` sends requests to it in-process. `drain()` runs a real worker on that
same loop until no job is left. Everything a test asserts on is read back from what the runtime
recorded: traces, spans, emits, logs, state and dead letters. The API is synchronous, so it
works in plain `def` tests and in async tests alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from litestar.testing import TestClient

from .. import keys, late_work
from ..job_queue import QUEUE, JobInfo, lease_key, make_all_due, queue_stats
from ..registry import Registry
from ..runtime import Runtime
from ..settings import Settings
from ..step_config import CronStep
from ..tracing.store import LEVELS
from ..web.app import create_app
from ..worker import max_timeout
from ..worker_loop import make_worker

T = TypeVar("T")


class DrainError(AssertionError):
    """`drain()` could not empty the queue: a step that keeps emitting, or a job that never ends."""


@dataclass(frozen=True)
class Emit:
    topic: str
    data: Any
    step: str  # the step that emitted it
    trace_id: str
    span_id: str
    subscribers: list[str]


@dataclass(frozen=True)
class Log:
    level: str  # debug | info | warning | error | critical
    message: str
    fields: dict[str, Any]
    step: str
    trace_id: str
    span_id: str


@dataclass(frozen=True)
class Span:
    id: str
    step: str
    kind: str
    status: str  # running | completed | failed | timed_out | lost | interrupted
    attempt: int
    topic: str | None
    error: dict[str, str] | None
    will_retry: bool
    http: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False)

    @property
    def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.raw.get("events", [])
        return events


@dataclass(frozen=True)
class Trace:
    id: str
    status: str  # running | completed | failed
    entry: str
    kind: str
    spans: list[Span]
    raw: dict[str, Any] = field(repr=False)

    def spans_of(self, step: str) -> list[Span]:
        """Every run (attempt) of `step` in this trace, in order."""
        return [s for s in self.spans if s.step == step]

    def span(self, step: str) -> Span:
        """The last run of `step` in this trace."""
        runs = self.spans_of(step)
        if not runs:
            raise AssertionError(f"step {step!r} did not run in trace {self.id} (ran: {self.steps})")
        return runs[-1]

    @property
    def steps(self) -> list[str]:
        return list(dict.fromkeys(s.step for s in self.spans))


@dataclass(frozen=True)
class DrainResult:
    runs: int  # job runs (attempts) the drain made
    steps: list[str]  # the step of each run, in order


def _span(raw: dict[str, Any]) -> Span:
    return Span(
        id=raw["id"],
        step=raw["step"],
        kind=raw["kind"],
        status=raw["status"],
        attempt=raw.get("attempt", 1),
        topic=raw.get("topic"),
        error=raw.get("error"),
        will_retry=bool(raw.get("willRetry")),
        http=raw.get("http"),
        raw=raw,
    )


def _trace(raw: dict[str, Any]) -> Trace:
    return Trace(
        id=raw["id"],
        status=raw["status"],
        entry=raw["entry"],
        kind=raw["kind"],
        spans=[_span(s) for s in raw.get("spanList", [])],
        raw=raw,
    )


class StateView:
    """`ctx.state` for a test: seed values before a request, read them after a drain."""

    def __init__(self, harness: Harness) -> None:
        self._h = harness

    def get(self, group: str, key: str) -> Any:
        return self._h.call(lambda: self._h.runtime.state.get(group, key))

    def set(self, group: str, key: str, value: Any) -> Any:
        return self._h.call(lambda: self._h.runtime.state.set(group, key, value))

    def delete(self, group: str, key: str) -> bool:
        return self._h.call(lambda: self._h.runtime.state.delete(group, key))

    def group(self, group: str) -> dict[str, Any]:
        return self._h.call(lambda: self._h.runtime.state.get_group(group))

    def groups(self) -> list[str]:
        return self._h.call(lambda: self._h.runtime.state.groups())


def harness_settings(redis_url: str, steps_dir: Path, **overrides: Any) -> Settings:
    """Settings for a harness: dev mode, full payloads kept, short waits."""
    base = Settings(
        redis_url=redis_url,
        steps_dir=steps_dir,
        app_name=steps_dir.resolve().parent.name,
        mode="dev",
        poll_delay_s=0.05,
        lease_s=5.0,
        grace_s=1.0,
        payload_cap=1 << 20,
    )
    return replace(base, **overrides)


class Harness:
    """One test's view of the project: an in-process client, a drain, and what was recorded."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        self.app = create_app(settings, registry)
        self.client = TestClient(self.app, base_url="http://testserver.local")
        self.state = StateView(self)
        self._open = False

    # --- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> Harness:
        self.client.__enter__()
        self._open = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._open = False
        self.client.__exit__(*exc)

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine on the app's event loop (where its Redis connections live)."""
        if not self._open:
            raise RuntimeError("the harness is not running (use it inside `with Harness(...)`)")

        async def run() -> T:
            return await fn()

        return self.client.blocking_portal.call(run)

    # --- acting -------------------------------------------------------------------------------------

    def drain(self, *, max_runs: int = 1000) -> DrainResult:
        """Run every queued background job, and the jobs those emit in turn, until none is left.

        One job at a time, in queue order, on a real worker. Retries and deferred jobs do not wait
        for their time: they are run as soon as they are next. A job that keeps failing ends as a
        dead letter (see `dead_letters()`). More than `max_runs` runs raises `DrainError`."""
        return self.call(lambda: self._drain(max_runs))

    async def _drain(self, max_runs: int) -> DrainResult:
        runtime = self.runtime
        await runtime.recorder.flush()
        steps: list[str] = []
        over_budget = asyncio.Event()

        async def run_job(payload: dict[str, Any], info: JobInfo) -> float | None:
            if len(steps) >= max_runs:
                over_budget.set()  # the drain stops the worker; this job goes back to the queue
                return 0.0
            steps.append(str(payload.get("step")))
            delay = await runtime.run_job(payload, info)
            await make_all_due(runtime.redis)  # what this run deferred is next, not later
            return None if delay is None else 0.0  # a retry runs next, without its backoff

        idle_passes = 0  # passes over a non-empty queue that ran nothing
        while True:
            await make_all_due(runtime.redis)
            held = await self._held_elsewhere()
            if held:
                raise DrainError(
                    f"drain() found {held} queued jobs it could not claim: another worker holds them "
                    "(is a worker process running against this Redis?)"
                )
            runs_before = len(steps)
            worker = make_worker(
                self.settings.redis_url,
                run_job=run_job,
                heartbeat=None,  # no cron ticks by the clock: tests run cron steps with run_cron()
                write_ending=runtime.recorder.after_records,  # as the worker process does
                concurrency=1,
                poll_delay_s=self.settings.poll_delay_s,
                lease_s=self.settings.lease_s,
                grace_s=0.0,
                max_timeout_s=max_timeout(self.registry),
                burst=True,
                handle_signals=False,
            )
            running = asyncio.ensure_future(worker.async_run())
            stopped = asyncio.ensure_future(over_budget.wait())
            try:
                await asyncio.wait({running, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
                if not running.done():
                    running.cancel()
                await asyncio.gather(running, return_exceptions=True)
                await worker.close()
            await runtime.recorder.flush()
            if over_budget.is_set():
                last = ", ".join(steps[-6:])
                raise DrainError(
                    f"drain() stopped after {max_runs} runs with jobs still queued (the last runs: {last}): "
                    "does a step emit in a loop? (raise max_runs if the work is really that long)"
                )
            running.result()  # a failure of the worker itself
            await late_work.wait_all()  # what handlers left running may emit more
            stats = await queue_stats(runtime.redis)
            left = stats["ready"] + stats["deferred"]
            if left == 0:
                return DrainResult(runs=len(steps), steps=steps)
            idle_passes = idle_passes + 1 if len(steps) == runs_before else 0
            if idle_passes >= 2:
                raise DrainError(
                    f"drain() found {left} queued jobs it could not claim: another worker holds them "
                    "(is a worker process running against this Redis?)"
                )

    async def _held_elsewhere(self) -> int:
        """How many jobs are queued, all of them leased to some other worker (0 if any is free)."""
        redis = self.runtime.redis
        queued = await redis.zrange(QUEUE, 0, -1)
        if not queued:
            return 0
        async with redis.pipeline(transaction=False) as pipe:
            for job_id in queued:
                pipe.exists(lease_key(job_id))
            leased = await pipe.execute()
        return len(queued) if all(leased) else 0

    def emit(self, topic: str, data: Any = None) -> str:
        """Emit an event as a new trace (as `workbench emit` does); returns the trace id."""
        if topic not in self.registry.topics():
            raise ValueError(f"no step emits or subscribes to {topic!r}")

        async def go() -> str:
            trace_id, _ = await self.runtime.emit_new_trace(topic, data, source="test")
            return trace_id

        return self.call(go)

    def run_cron(self, step_name: str, *, drain: bool = True) -> Trace:
        """Run a cron step now (as its "Run now" button does), then drain; returns its trace."""
        step = self._cron(step_name)

        async def go() -> str:
            trace_id, _ = await self.runtime.enqueue_step(step, None, label="run now")
            return trace_id

        trace_id = self.call(go)
        if drain:
            self.drain()
        return self.trace(trace_id)

    def next_runs(self, step_name: str, after: datetime, count: int = 5) -> list[datetime]:
        """The next `count` run times of a cron step strictly after `after` (in its time zone)."""
        schedule = self._cron(step_name).schedule
        assert schedule is not None
        out: list[datetime] = []
        moment = after
        for _ in range(count):
            moment = schedule.next_after(moment)
            out.append(moment)
        return out

    def _cron(self, step_name: str) -> CronStep:
        step = self.registry.get(step_name)
        if not isinstance(step, CronStep):
            crons = ", ".join(s.name for s in self.registry.cron_steps()) or "none"
            raise ValueError(f"no cron step named {step_name!r} (cron steps: {crons})")
        return step

    # --- what was recorded --------------------------------------------------------------------------

    def trace(self, of: str | Any) -> Trace:
        """A trace by id, or the trace of a response (its `x-trace-id` header)."""
        trace_id = of if isinstance(of, str) else of.headers.get("x-trace-id")
        if not trace_id:
            raise ValueError("no trace id: pass a trace id or a response of an API step")

        async def go() -> dict[str, Any] | None:
            await self.runtime.recorder.flush()
            return await self.runtime.store.get_trace(trace_id)

        raw = self.call(go)
        if raw is None:
            raise AssertionError(f"no trace {trace_id}")
        return _trace(raw)

    def traces(self) -> list[Trace]:
        """Every trace recorded in this test, oldest first."""
        return [_trace(raw) for raw in self.call(self._all_traces)]

    async def _all_traces(self) -> list[dict[str, Any]]:
        await self.runtime.recorder.flush()
        store = self.runtime.store
        ids = await store.redis.zrange(keys.TRACES, 0, -1)
        found = [await store.get_trace(trace_id) for trace_id in ids]
        return [t for t in found if t is not None]

    def _events(self, kind: str, trace_id: str | None) -> Iterator[dict[str, Any]]:
        traces = [self.trace(trace_id).raw] if trace_id else [t.raw for t in self.traces()]
        for trace in traces:
            for span in trace.get("spanList", []):
                for event in span.get("events", []):
                    if event["kind"] == kind:
                        yield event

    def emitted(self, topic: str | None = None, *, trace_id: str | None = None) -> list[Emit]:
        """Events emitted (in this test, or in one trace), optionally of one topic, in order."""
        out = []
        for e in self._events("emit", trace_id):
            if topic is None or e["topic"] == topic:
                out.append(
                    Emit(
                        e["topic"],
                        e["payload"],
                        e["step"],
                        e["traceId"],
                        e["spanId"],
                        e.get("subscribers", []),
                    )
                )
        return out

    def logs(
        self, step: str | None = None, level: str | None = None, *, trace_id: str | None = None
    ) -> list[Log]:
        """Log lines of the steps, optionally of one step and at `level` or above, in order."""
        floor = LEVELS[level.lower()] if level else 0
        out = []
        for e in self._events("log", trace_id):
            if step is not None and e["step"] != step:
                continue
            if LEVELS.get(e["level"], 20) < floor:
                continue
            fields = e.get("fields", {})
            out.append(Log(e["level"], e["message"], fields, e["step"], e["traceId"], e["spanId"]))
        return out

    def dead_letters(self, step: str | None = None) -> list[dict[str, Any]]:
        """Jobs that failed their last attempt: step, data, attempts, error, traceId."""
        return self.call(lambda: self.runtime.dead_letters.list(step=step, limit=10_000))
