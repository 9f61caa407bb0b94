"""The runtime: one per process, tying the registry to Redis, the queue and the recorder.

It starts traces at entry points, turns emits into jobs, and runs a job's step with its
context, timeout, retries and span (`end_span` is the one way a span ends). The web process and
the worker both build one; cron ticks (`cron_scheduler.py`) and worker liveness (`worker.py`) are
the worker's own.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from . import job_queue, keys, late_work
from .context import Context, MotiaState, StepLogger
from .deadletters import DeadLetters
from .handler_watch import Watched
from .ids import new_id, now_ms
from .json_values import check_value
from .otel import Telemetry, from_env
from .registry import Registry
from .settings import Settings
from .state import State
from .step_config import BackgroundStep, Step
from .tracing.recorder import Recorder, SpanScope, current_scope, install_span_capture
from .tracing.records import FAILED, Span, SpanStatus, error_info, plain_error
from .tracing.store import TraceStore, adjust_record, span_record

log = logging.getLogger("workbench.runtime")


def connect(url: str) -> Redis:
    client: Redis = Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=2,
        # no per-read timeout: it costs a timer per command (~7% of the web's CPU under load),
        # and a Redis that goes away resets the connection, which fails the command at once
        health_check_interval=10,
        retry_on_timeout=False,
    )
    return client


@dataclass
class Outgoing:
    """An emit on its way: the jobs it becomes, one per subscriber."""

    topic: str
    data: Any
    subscribers: list[BackgroundStep]
    job_ids: list[str]
    undeclared: bool = False  # not in the emitting step's `emits` (allowed by Motia's rules)


@dataclass
class Emitted:
    topic: str
    subscribers: list[str]
    job_ids: list[str]


class Runtime:
    # a handler running this long without yielding to the event loop is named in its span and the
    # terminal (everything else in the process waited meanwhile)
    block_warn_s = 1.0
    telemetry: Telemetry | None = None  # OpenTelemetry export (workbench/otel.py), set by start()

    def __init__(self, settings: Settings, registry: Registry, redis: Redis | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.redis = redis or connect(settings.redis_url)
        self.store = TraceStore(
            self.redis, feed_maxlen=settings.feed_maxlen, logs_maxlen=settings.logs_maxlen,
            feed_max_bytes=settings.feed_max_bytes, logs_max_bytes=settings.logs_max_bytes,
        )  # fmt: skip
        # no batch window: records gather by themselves while the previous write is in flight
        # (measured: a 2-10 ms window halved worker throughput, bench #2)
        self.recorder = Recorder(
            self.store,
            enabled=settings.tracing,
            payload_cap=settings.payload_cap,
            span_log_cap=settings.span_log_cap,
            span_log_bytes=settings.span_log_bytes,
            field_cap=settings.field_cap,
        )
        self.state = State(self.redis)
        self.state.changes_ttl_s = settings.retention_age_s  # a key's changed-by list lives as long as traces
        self.dead_letters = DeadLetters(
            self.redis, max_count=settings.dead_letters_max, max_age_s=settings.dead_letters_age_s
        )
        self._retention_task: asyncio.Task[None] | None = None
        # cancels of running jobs (cancel.py asks, the worker loop passes them on): job id -> its
        # run's task while its handler runs, and job ids asked for (kept a minute: a cancel may
        # arrive before the claimed job's run has started)
        self._handlers: dict[str, asyncio.Task[Any]] = {}
        self._cancel_wanted: dict[str, int] = {}

    async def start(self) -> None:
        install_span_capture(self.settings.log_level)
        late_work.install(asyncio.get_running_loop())
        self.recorder.start()
        self._retention_task = asyncio.get_running_loop().create_task(self._retention_loop())
        self.telemetry = from_env(self.settings, self.registry)
        if self.telemetry is not None:
            self.telemetry.watch(self.recorder)

    async def stop(self) -> None:
        if self._retention_task:
            self._retention_task.cancel()
        try:
            await asyncio.wait_for(self.recorder.stop(), 3)
        except (TimeoutError, Exception) as exc:  # Redis away at shutdown: records are lost, say so
            log.warning("could not write the last trace records: %s", exc)
        if self.telemetry is not None:  # the last spans and logs, sent (bounded)
            await self.telemetry.stop()
        await self.redis.aclose()

    async def _retention_loop(self) -> None:
        while True:
            await asyncio.sleep(5 + random.random() * 5)
            try:
                if indexed := await self.store.index_failed_traces():
                    log.info("indexed %d failed traces stored by an earlier version", indexed)
                await self.dead_letters.trim()
                removed = await self.store.enforce_retention(
                    max_traces=self.settings.retention_traces, max_age_s=self.settings.retention_age_s
                )
                if removed:
                    log.debug("retention removed %d traces", removed)
            except Exception as exc:
                log.debug("retention skipped: %s", exc)

    # --- entry points -----------------------------------------------------------------------------

    def begin_trace(self, *, entry: str, kind: str, label: str, open_: int = 0) -> str:
        trace_id = new_id()
        self.recorder.open_trace(trace_id, entry=entry, kind=kind, label=label, start=now_ms(), open_=open_)
        return trace_id

    def context(self, step: Step, scope: SpanScope, attempt: int = 1, topic: str | None = None) -> Context:
        async def emit(topic: str, data: Any) -> None:
            await self.emit(topic, data, scope=scope)

        # Motia's steps get Motia's answers from state (`{"data": value}`, see MotiaState)
        state = cast(State, MotiaState(self.state)) if step.motia_rules else self.state
        return Context(
            trace_id=scope.trace_id,
            step=step,
            state=state,
            logger=StepLogger(step.name),
            _emit=emit,
            attempt=attempt,
            topic=topic,
        )

    def scope(self, span: Span) -> SpanScope:
        return SpanScope(self.recorder, span, log_level=self.settings.log_level)

    async def emit(self, topic: str, data: Any, *, scope: SpanScope) -> Emitted:
        """One job per subscriber. While a step runs, its emits wait in the run's outbox and leave
        together when it succeeds (`send_outbox`); otherwise they leave at once, with the trace's
        bookkeeping, in one round trip."""
        check_value(data, what=f"emit {topic!r}")  # what could not be stored and shown is refused here
        subscribers = self.registry.subscribers_of(topic)
        emitter = self.registry.get(scope.span.step)
        undeclared = emitter is not None and topic not in emitter.emits
        outgoing = Outgoing(
            topic, data, subscribers, [job_queue.new_job_id() for _ in subscribers], undeclared
        )
        scope.emit(topic, data, [s.name for s in subscribers])
        if scope.outbox is not None:
            scope.outbox.append(outgoing)
        else:
            await self._send(scope, [outgoing])
        return Emitted(topic, [s.name for s in subscribers], outgoing.job_ids)

    async def send_outbox(self, scope: SpanScope, job: job_queue.JobInfo | None = None) -> None:
        """The run succeeded: its emits leave now, in one round trip with every record of the trace
        queued so far (the span's end among them) and the ending of its `job` — a worker killed
        after it can never run the job again and send them twice. Later emits (from work it left
        running) leave at once."""
        outgoing, scope.outbox = scope.outbox or [], None
        if outgoing:
            await self._send(scope, outgoing, job.job_id if job else None)
            if job is not None:
                job.ended = True

    def drop_outbox(self, scope: SpanScope) -> None:
        """The run failed: its emits are not delivered (a retry sends its own, once)."""
        outgoing, scope.outbox = scope.outbox or [], None
        if outgoing:
            scope.log(
                logging.WARNING,
                f"{len(outgoing)} emits of this failed run were not sent: "
                + ", ".join(o.topic for o in outgoing),
                {"notSent": [o.topic for o in outgoing]},
            )

    async def _send(self, scope: SpanScope, outgoing: list[Outgoing], done_job: str | None = None) -> None:
        jobs = sum(len(o.subscribers) for o in outgoing)
        if jobs:  # written in the same round trip as the jobs, just before them
            self.recorder.add_raw(adjust_record(scope.trace_id, open_delta=jobs))

        def build(pipe: Pipeline) -> None:
            for o in outgoing:
                if o.undeclared:  # the flows page shows it as a warning edge
                    pipe.sadd(keys.UNDECLARED + scope.span.step, o.topic)
                for step, job_id in zip(o.subscribers, o.job_ids, strict=True):
                    payload = {
                        "step": step.name,
                        "data": o.data,
                        "traceId": scope.trace_id,
                        "parentId": scope.span.id,
                        "topic": o.topic,
                    }
                    delay_ms = int(step.first_run_delay_s * 1000)
                    run_at = now_ms() + delay_ms if delay_ms else None  # Motia's queue.delaySeconds
                    job_queue.add_job(pipe, payload, job_id=job_id, run_at_ms=run_at)
            if jobs:
                job_queue.add_wake(pipe, [job_id for o in outgoing for job_id in o.job_ids])
            if done_job is not None:
                job_queue.JobQueue.end(pipe, done_job)

        await self.recorder.run_with_records(scope.trace_id, build)

    async def emit_new_trace(self, topic: str, data: Any, *, source: str = "emit") -> tuple[str, Emitted]:
        """A manual emit (CLI, workbench): a trace of its own, with a span holding the emit."""
        trace_id = self.begin_trace(entry=source, kind="emit", label=f"emit {topic}", open_=1)
        span = Span(
            id=new_id(), trace_id=trace_id, step=source, kind="emit", started_at=now_ms(), topic=topic
        )
        self.recorder.span(span)
        scope = self.scope(span)
        try:
            emitted = await self.emit(topic, data, scope=scope)
        except BaseException as exc:  # every trace opened is closed: this one as failed
            end_span(self.recorder, span, "failed", error_info(exc))
            raise
        end_span(self.recorder, span, "completed")
        await self.recorder.flush()
        return trace_id, emitted

    async def retry_dead_letter(self, letter_id: str) -> str:
        """Run a dead letter's job again, as the next attempt in its trace; returns the new job id.

        Raises `LookupError` when there is no such letter, and `RetryRefused` when it cannot run
        (its step is gone from the step files): then the letter is kept, as it was."""
        record = await self.dead_letters.get(letter_id)
        if record is None:
            raise LookupError(f"no dead letter {letter_id}")
        step = self.registry.get(str(record.get("step")))
        if not isinstance(step, BackgroundStep):
            raise RetryRefused(
                f"dead letter {letter_id} cannot be retried: no background step named {record.get('step')!r} "
                "in the step files now; it is kept (restore the step, or discard the letter)"
            )
        taken = await self.dead_letters.take(letter_id)
        if taken is None:
            raise LookupError(f"no dead letter {letter_id} (retried or discarded meanwhile)")
        self.recorder.adjust_trace(taken["traceId"], failed_delta=-1)
        try:
            _, job_id = await self.enqueue_step(
                step,
                taken["data"],
                trace_id=taken["traceId"],
                parent_id=taken.get("parentId"),
                topic=taken.get("topic"),
                attempt_base=int(taken["attempts"]),
            )
        except BaseException:
            self.recorder.adjust_trace(taken["traceId"], failed_delta=1)
            await self.dead_letters.put_back(taken)  # nothing was queued: the letter stays
            raise
        return job_id

    async def retry_dead_letters(self, *, step: str | None = None) -> tuple[int, list[str]]:
        """Retry every dead letter (of one step): how many were retried, and why the others were kept."""
        retried, kept = 0, []
        for record in await self.dead_letters.list(step=step, limit=10_000):
            try:
                await self.retry_dead_letter(record["id"])
                retried += 1
            except RetryRefused as exc:
                kept.append(str(exc))
            except LookupError:
                continue  # taken by someone else meanwhile
        return retried, kept

    async def enqueue_step(
        self,
        step: Step,
        data: Any = None,
        *,
        trace_id: str | None = None,
        parent_id: str | None = None,
        topic: str | None = None,
        attempt_base: int = 0,
        run_at_ms: int | None = None,
        job_id: str | None = None,
        label: str | None = None,
    ) -> tuple[str, str]:
        """Queue one run of a background step; a new trace is opened unless `trace_id` is given."""
        opens = trace_id is None
        trace_id = trace_id or new_id()
        job_id = job_id or job_queue.new_job_id()
        payload = {
            "step": step.name,
            "data": data,
            "traceId": trace_id,
            "parentId": parent_id,
            "topic": topic,
            "attemptBase": attempt_base,
        }
        if opens:
            self.recorder.open_trace(
                trace_id,
                entry=step.name,
                kind=step.kind,
                label=label or step.kind,
                start=run_at_ms or now_ms(),
            )

        self.recorder.add_raw(adjust_record(trace_id, open_delta=1))

        def build(pipe: Pipeline) -> None:
            job_queue.add_job(pipe, payload, job_id=job_id, run_at_ms=run_at_ms)
            job_queue.add_wake(pipe, [job_id])

        await self.recorder.run_with_records(trace_id, build)
        return trace_id, job_id

    # --- running a job (worker side) -------------------------------------------------------------

    async def run_job(self, payload: dict[str, Any], info: job_queue.JobInfo) -> float | None:
        """Run one attempt; returns seconds to wait before the next attempt, or None when done."""
        step = self.registry.get(payload["step"])
        base = int(payload.get("attemptBase") or 0)  # attempts made before a dead letter was retried
        attempt = base + info.attempt
        if not isinstance(step, BackgroundStep):
            await self._unknown_step(payload, info, attempt)
            return None
        if info.try_number > 1:
            await self._mark_lost(payload["traceId"], f"{info.job_id}:{info.try_number - 1}")
        span = _run_span(step, payload, info, attempt)
        if attempt > base + step.retries.attempts:
            # earlier attempts were lost with their worker: nothing more to try
            message = (
                f"gave up after {step.retries.attempts} attempts (the last ones were lost with their worker)"
            )
            end_span(self.recorder, span, "failed", plain_error("AttemptsExhausted", message),
                     finished_at=span.started_at)  # fmt: skip
            await self.dead_letters.add(payload, info, attempt - 1, span.error or {})
            return None
        self.recorder.span(span)
        scope = self.scope(span)
        token = current_scope.set(scope)
        late_work.watch(scope)  # tasks the handler starts and leaves running are kept (late_work.py)
        scope.outbox = []  # its emits leave when it succeeds
        task = asyncio.current_task()
        if task is not None:
            self._handlers[info.job_id] = task
        try:
            if self._cancel_wanted and info.job_id in self._cancel_wanted:
                raise asyncio.CancelledError  # asked for before its run started
            outcome = await self._run_handler(step, payload, scope, attempt)
        except asyncio.CancelledError:
            if self._cancel_wanted.pop(info.job_id, None) is None:
                stopped = plain_error("Interrupted", "worker stopped; the job was re-queued")
                end_span(self.recorder, span, "interrupted", stopped, closes=False)
                raise
            if task is not None:
                task.uncancel()  # the cancel was for this run, and it is handled here
            outcome = _Outcome(
                "cancelled", plain_error("Cancelled", "cancelled while it ran"), retryable=False
            )
        finally:
            self._handlers.pop(info.job_id, None)
            current_scope.reset(token)
            left = late_work.left_running(scope)
        if outcome.status == "cancelled":
            await self._cancelled(scope, left)
            return None
        if outcome.error is None:
            await self._succeeded(step, scope, left, info)
            return None
        return await self._failed(step, payload, info, scope, left, outcome, base)

    async def _run_handler(self, step: BackgroundStep, payload: dict[str, Any], scope: SpanScope,
                           attempt: int) -> _Outcome:  # fmt: skip
        """The handler with its input checked and its timeout: how it ended (a CancelledError of the
        run itself, the worker stopping, is raised)."""
        try:
            data = step.prepare_input(payload.get("data"))
        except Exception as exc:  # bad input does not get better by trying again
            return _Outcome("failed", error_info(exc), retryable=False)
        try:
            ctx = self.context(step, scope, attempt, payload.get("topic"))
            async with asyncio.timeout(step.timeout_s) as deadline:
                try:
                    # a handler that blocks the loop is named in its span; one that ignores its
                    # cancellation is left behind, and the run ends as timed out all the same
                    await Watched(
                        step.invoke(data, ctx),
                        block_warn_s=self.block_warn_s,
                        on_block=lambda seconds: _step_log(step).warning(
                            "%s blocked the event loop for %.1f s", step.name, seconds
                        ),
                        on_detach=lambda: _step_log(step).warning(
                            "%s ignored its cancellation; it was left running in the background", step.name
                        ),
                    )
                except TimeoutError as exc:
                    if deadline.expired():
                        raise
                    return _Outcome("failed", error_info(exc))  # the handler's own TimeoutError
        except TimeoutError:
            _step_log(step).error("Timed out after %g s", step.timeout_s)
            return _Outcome("timed_out", plain_error("TimeoutError", f"timed out after {step.timeout_s:g} s"))
        except Exception as exc:
            return _Outcome("failed", error_info(exc))
        return _Outcome("completed")

    async def _succeeded(self, step: BackgroundStep, scope: SpanScope, left: set[asyncio.Task[Any]],
                         info: job_queue.JobInfo) -> None:  # fmt: skip
        span = scope.span
        if left:  # the trace stays open until they end (or the step's timeout cancels them)
            end_span(self.recorder, span, "completed", closes=False)
            assert span.finished_at is not None
            late_work.keep(
                left,
                scope=scope,
                deadline_s=step.timeout_s - (span.finished_at - span.started_at) / 1000,
                on_done=lambda: self.recorder.adjust_trace(span.trace_id, open_delta=-1),
            )
        else:
            end_span(self.recorder, span, "completed")
        await self.send_outbox(scope, info)  # with the span's end and the job's, in one round trip

    async def _failed(self, step: BackgroundStep, payload: dict[str, Any], info: job_queue.JobInfo,
                      scope: SpanScope, left: set[asyncio.Task[Any]], outcome: _Outcome,
                      base: int) -> float | None:  # fmt: skip
        """A failed attempt: tried again after its backoff, or the job's last, then a dead letter."""
        span, error = scope.span, outcome.error
        assert error is not None
        self.drop_outbox(scope)
        for task in left:  # a failed attempt's left-over work would run again with its retry
            task.cancel()
        if outcome.retryable and span.attempt < base + step.retries.attempts:
            delay = step.retries.delay_s(span.attempt - base, random.random())
            now = now_ms()
            span.will_retry, span.retry_at = True, now + int(delay * 1000)
            end_span(self.recorder, span, outcome.status, error, closes=False, finished_at=now)
            return delay
        end_span(self.recorder, span, outcome.status, error)
        await self.dead_letters.add(payload, info, span.attempt, error)
        return None

    async def _cancelled(self, scope: SpanScope, left: set[asyncio.Task[Any]]) -> None:
        """A run cancelled by a user: not retried, not a dead letter, its emits not sent. Its records
        are written before the job ends, so whoever asked sees the outcome once the job is gone."""
        self.drop_outbox(scope)
        for task in left:
            task.cancel()
        from .cancel import mark_trace

        await mark_trace(self.redis, scope.trace_id)
        end_span(self.recorder, scope.span, "cancelled", plain_error("Cancelled", "cancelled while it ran"))
        await self.recorder.flush()

    def cancel_runs(self, job_ids: list[str]) -> None:
        """Cancel the runs of these jobs that run in this process (a cancel asked through Redis)."""
        now = now_ms()
        for job_id in job_ids:
            self._cancel_wanted[job_id] = now
            task = self._handlers.get(job_id)
            if task is not None:
                task.cancel()
        if len(self._cancel_wanted) > 1000 or any(now - at > 60_000 for at in self._cancel_wanted.values()):
            self._cancel_wanted = {j: at for j, at in self._cancel_wanted.items() if now - at <= 60_000}

    async def _unknown_step(self, payload: dict[str, Any], info: job_queue.JobInfo, attempt: int) -> None:
        """A job naming no background step (the step files changed): a dead letter at once."""
        error = plain_error("UnknownStep", f"no background step named {payload['step']!r}")
        await self.dead_letters.add(payload, info, attempt, error)
        self.recorder.adjust_trace(payload["traceId"], open_delta=-1, failed_delta=1)

    async def _mark_lost(self, trace_id: str, span_id: str) -> None:
        """The run before this one never finished: its worker died. Say so in its span (written as
        it was stored: the span is another run's)."""
        previous = await self.store.get_span(trace_id, span_id)
        if previous is None or previous.get("status") != "running":
            return
        previous.update(
            status="lost",
            finishedAt=now_ms(),
            error=plain_error("WorkerLost", "the worker running this attempt stopped"),
        )
        self.recorder.add_raw(span_record(previous, error_delta=1))


def end_span(
    recorder: Recorder,
    span: Span,
    status: SpanStatus,
    error: dict[str, str] | None = None,
    *,
    closes: bool = True,
    final: bool | None = None,
    finished_at: int | None = None,
) -> None:
    """The one way a span ends: its status, error and end time, and the trace's counters.

    `closes`: the span's end closes its part of the trace (open - 1); not for a run that is tried
    again, was interrupted, or left work running. `final` (by default `closes`): a failed status is
    the trace's failure (failed + 1). A failed status always counts as one of the trace's errors."""
    span.status = status
    span.finished_at = finished_at if finished_at is not None else now_ms()
    if error is not None:
        span.error = error
    failing = status in FAILED
    recorder.span(
        span,
        open_delta=-1 if closes else 0,
        failed_delta=1 if failing and (closes if final is None else final) else 0,
        error_delta=1 if failing else 0,
    )


def _run_span(step: BackgroundStep, payload: dict[str, Any], info: job_queue.JobInfo, attempt: int) -> Span:
    return Span(
        id=f"{info.job_id}:{info.try_number}",  # one span per run of the job
        trace_id=payload["traceId"],
        step=step.name,
        kind=step.kind,
        parent_id=payload.get("parentId"),
        attempt=attempt,
        enqueued_at=info.ready_at,
        started_at=now_ms(),
        topic=payload.get("topic"),
        job_id=info.job_id,
    )


@dataclass
class _Outcome:
    """How a handler's run ended: its span status, and for a failure its error and whether a retry
    could help."""

    status: SpanStatus
    error: dict[str, str] | None = None
    retryable: bool = True


def _step_log(step: Step) -> logging.Logger:
    """The logger of a step's own lines (the console shows them under the step's name)."""
    return logging.getLogger(f"steps.{step.name}")


class RetryRefused(Exception):
    """A dead letter that cannot be retried; it is kept, and the message says why."""
