"""Capturing records while steps run, and writing them to Redis in batches.

`Recorder` is the process-wide writer: records are queued in memory and a flusher task (two: one
can write while the other's write is on its way) writes whatever has accumulated in one pipeline,
so a burst of logs costs one round trip, and records reach Redis in the order they were made.
Anything that makes work visible to another process (an emit) first drains the buffer into its own
pipeline, so a job can never finish before the records that led to it are stored.

`SpanScope` is the span currently running, held in a context variable: `ctx.logger` and Python's
standard `logging` inside a handler both land in it without being threaded through by hand.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError, OutOfMemoryError, RedisError

from ..ids import now_ms
from ..log_limit import Limited
from .records import Event, Span, cap_payload
from .store import Record, TraceStore, adjust_record, event_record, span_record, trace_record

log = logging.getLogger("workbench.recorder")
_limited = Limited(log)

SpanObserver = Callable[[Span], None]
LogObserver = Callable[[Event], None]


@dataclass
class _After:
    """Commands to send in the round trip that writes the records of `trace_id` queued before them."""

    trace_id: str
    build: Callable[[Pipeline], None]
    written: asyncio.Future[None]


class Recorder:
    """Queues records and writes them in batches, keeping each trace's records in order.

    At most one write per trace is in flight at a time, so a trace's records reach Redis in the
    order they were made, while writes for different traces (concurrent requests) go in parallel.
    """

    def __init__(
        self,
        store: TraceStore,
        *,
        enabled: bool = True,
        payload_cap: int = 4096,
        span_log_cap: int = 1000,
        span_log_bytes: int = 1 << 20,
        field_cap: int = 8192,
    ) -> None:
        self.store = store
        self.enabled = enabled
        self.payload_cap = payload_cap
        # a span keeps at most `span_log_cap` log lines and `span_log_bytes` of them, each field at
        # most `field_cap` bytes: one step logging in a loop cannot fill Redis (nor a trace page)
        self.span_log_cap = span_log_cap
        self.span_log_bytes = span_log_bytes
        self.field_cap = field_cap
        self._pending: list[Record] = []
        self._span_at: dict[str, int] = {}  # span id -> index of its record in _pending (merged in place)
        self._inflight: dict[str, asyncio.Future[None]] = {}  # trace id -> the write carrying its records
        self._after: list[_After] = []  # commands waiting for their trace's records (after_records)
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # called with each span record that reaches a finished status (metrics subscribe here);
        # called in the recording task, so an observer must be quick and must not block
        self.on_span_end: list[SpanObserver] = list(Recorder.process_observers)
        # called with each log line recorded in a span (OpenTelemetry export subscribes here), as quick
        self.on_log: list[LogObserver] = []

    # observers every Recorder made from now on starts with: a worker process subscribes its
    # metrics here before `run_worker` builds its runtime
    process_observers: ClassVar[list[SpanObserver]] = []

    def _span_ended(self, span: Span) -> None:
        for observe in self.on_span_end:
            try:
                observe(span)
            except Exception:  # an observer never breaks the run it watches
                log.exception("a span observer failed")

    @property
    def redis(self) -> Redis:
        client: Redis = self.store.redis
        return client

    # --- lifecycle -------------------------------------------------------------------------------------

    # flushers: while one write is on its way, another can take what gathered for the other traces
    # (each trace still has at most one write in flight, so its records stay in order); a job's
    # ending (`after_records`) then waits for no other trace's round trip
    FLUSHERS = 2

    def start(self) -> None:
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self._run(), name=f"workbench-recorder-{n}") for n in range(self.FLUSHERS)
            ]

    async def stop(self) -> None:
        await self.flush()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass

    def _add(self, record: Record) -> None:
        self._pending.append(record)
        self._wakeup.set()

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            try:
                records, after = self._take(None), self._take_after(None)
                if records or after:
                    await self._write(records, after=after)
                backoff = 0.05
            except (RedisError, OSError) as exc:
                # Redis is away: keep the records and try again, with a growing pause
                _limited.warning(
                    "unwritten", "cannot write trace records (%s); retrying in %.1fs", exc, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                self._wakeup.set()

    async def flush(self) -> None:
        """Write everything queued so far (and wait for writes already in flight)."""
        while self._pending or self._inflight or self._after:
            if self._inflight:
                await asyncio.gather(*set(self._inflight.values()))
            records, after = self._take(None), self._take_after(None)
            if records or after:
                await self._write(records, after=after)

    async def run_with_records(self, trace_id: str, build: Callable[[Pipeline], None]) -> list[Any]:
        """Run `build`'s commands right after every record of `trace_id` queued so far, in one round
        trip: a job an emit enqueues can never be seen before the records that led to it."""
        while (earlier := self._inflight.get(trace_id)) is not None:
            await earlier
        return await self._write(self._take(trace_id), build, also=trace_id, after=self._take_after(trace_id))

    def after_records(self, trace_id: str, build: Callable[[Pipeline], None]) -> asyncio.Future[None]:
        """Send `build`'s commands in the flusher's next round trip, right after the records of
        `trace_id` queued so far; the future resolves once Redis has run them (or with the error).

        A job's ending (worker_loop) goes this way: a job is never seen done before its span's end
        is stored (a worker killed in between would leave that span running for ever), and the
        endings of many jobs share the round trip of their records instead of taking one of their own.
        """
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._after.append(_After(trace_id, build, written))
        self._wakeup.set()
        return written

    def _take_after(self, trace_id: str | None) -> list[_After]:
        """The waiting commands that may go now, by the rule of `_take` (taken in the same step)."""
        if not self._after:
            return []
        taken: list[_After] = []
        kept: list[_After] = []
        for after in self._after:
            tid = after.trace_id
            if tid == trace_id or (trace_id is None and tid not in self._inflight):
                taken.append(after)
            else:
                kept.append(after)
        self._after = kept
        return taken

    def _take(self, trace_id: str | None) -> list[Record]:
        """Pending records that may be written now: those of `trace_id`, or (None) those of every
        trace that has no write in flight. The others stay queued, in order."""
        taken: list[Record] = []
        kept: list[Record] = []
        for record in self._pending:
            tid = record[1]
            if tid == trace_id or (trace_id is None and tid not in self._inflight):
                taken.append(record)
            else:
                kept.append(record)
        self._pending = kept
        self._span_at = {r[2]: i for i, r in enumerate(kept) if r[0] == "S"}
        return taken

    async def _write(
        self,
        records: list[Record],
        build: Callable[[Pipeline], None] | None = None,
        also: str | None = None,
        after: list[_After] | None = None,
    ) -> list[Any]:
        """One round trip: the records (one script call), the waiting commands `after` (each
        resolved with its own outcome), then `build`'s commands (their results returned)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        after = after or []
        traces = {r[1] for r in records} | {a.trace_id for a in after} | ({also} if also else set())
        for tid in traces:
            self._inflight[tid] = done
        try:
            try:
                await self.store.ensure_scripts()
            except BaseException as exc:
                self.store.forget_scripts()
                self._requeue(records)
                _fail(after, exc)
                raise
            async with self.redis.pipeline(transaction=False) as pipe:
                self.store.apply(pipe, records)
                bounds: list[tuple[int, int]] = []  # each waiting command set's place in the results
                for waiting in after:
                    first = len(pipe.command_stack)
                    waiting.build(pipe)
                    bounds.append((first, len(pipe.command_stack)))
                if build is not None:
                    build(pipe)
                try:
                    results: list[Any] = await pipe.execute(raise_on_error=False)
                except BaseException as exc:
                    self.store.forget_scripts()  # a Redis that restarted has forgotten the script
                    self._requeue(records)
                    _fail(after, exc)
                    raise
            for waiting, (first, last) in zip(after, bounds, strict=True):
                error = next((r for r in results[first:last] if isinstance(r, Exception)), None)
                if waiting.written.done():
                    continue
                if error is None:
                    waiting.written.set_result(None)
                else:
                    waiting.written.set_exception(error)
        finally:
            for tid in traces:
                if self._inflight.get(tid) is done:
                    del self._inflight[tid]
            done.set_result(None)
            if self._pending or self._after:
                self._wakeup.set()  # what was held back behind this write may go now
        own = results[:1] if records else []
        if own and isinstance(own[0], NoScriptError):
            self.store.forget_scripts()
            self._requeue(records)
        elif own and (isinstance(own[0], OutOfMemoryError) or "OOM command not allowed" in str(own[0])):
            # Redis is full: keep the records (bounded) and try again, so traces close once it has room
            # (Redis refuses a script only before its first write, never half-way, so a refused batch
            # wrote nothing and is written once later: apply_records.lua, tests/test_lua.py)
            self._requeue(records)
            raise OutOfMemoryError(str(own[0]))  # the flusher backs off and retries; a caller sees why
        elif own and isinstance(own[0], Exception):
            _limited.warning("dropped", "trace records were not written: %s", own[0])
        rest = results[len(own) + sum(last - first for first, last in bounds) :]
        for result in rest:
            if isinstance(result, Exception):
                raise result
        return rest

    def _requeue(self, records: list[Record]) -> None:
        """Keep records that could not be written, in order, ahead of newer ones (bounded)."""
        self._pending[:0] = records
        self._span_at = {r[2]: i for i, r in enumerate(self._pending) if r[0] == "S"}
        if len(self._pending) > 100_000:
            log.warning(
                "dropping %d trace records: Redis has been away too long", len(self._pending) - 100_000
            )
            del self._pending[: len(self._pending) - 100_000]
            self._span_at = {r[2]: i for i, r in enumerate(self._pending) if r[0] == "S"}
        self._wakeup.set()

    # --- record builders ---------------------------------------------------------------------------------

    def open_trace(
        self, trace_id: str, *, entry: str, kind: str, label: str, start: int, open_: int = 0
    ) -> None:
        if self.enabled:
            self._add(trace_record(trace_id, start=start, entry=entry, kind=kind, label=label, open_=open_))

    def span(self, span: Span, *, open_delta: int = 0, failed_delta: int = 0, error_delta: int = 0) -> None:
        if self.on_span_end and span.status != "running":
            self._span_ended(span)
        if not self.enabled:
            return
        record = span_record(
            span.to_json(), open_delta=open_delta, failed_delta=failed_delta, error_delta=error_delta
        )
        at = self._span_at.get(span.id)
        if at is not None:
            # the span's earlier state is still unwritten: write only the latest, with both deltas
            old = self._pending[at]
            self._pending[at] = (
                *record[:4],
                old[4] + open_delta,
                old[5] + failed_delta,
                old[6] + error_delta,
                *record[7:],
            )
            return
        self._span_at[span.id] = len(self._pending)
        self._add(record)

    def event(self, event: Event) -> None:
        if self.on_log and event.kind == "log":
            for observe in self.on_log:
                try:
                    observe(event)
                except Exception:  # an observer never breaks the run it watches
                    log.exception("a log observer failed")
        if self.enabled:
            self._add(event_record(event.to_json()))

    def adjust_trace(self, trace_id: str, *, open_delta: int = 0, failed_delta: int = 0) -> None:
        if self.enabled:
            self._add(adjust_record(trace_id, open_delta=open_delta, failed_delta=failed_delta))

    def add_raw(self, record: Record) -> None:
        if self.on_span_end and record[0] == "S":  # a span written as is (a run lost with its worker)
            data = json.loads(record[3])
            if data.get("status") != "running":
                self._span_ended(_span_from_json(data))
        if self.enabled:
            self._add(record)


def _fail(after: list[_After], exc: BaseException) -> None:
    """The round trip carrying these waiting commands did not happen: their callers learn why."""
    for waiting in after:
        if waiting.written.done():
            continue
        if isinstance(exc, asyncio.CancelledError):
            waiting.written.cancel()
        else:
            waiting.written.set_exception(exc)


def _span_from_json(data: dict[str, Any]) -> Span:
    """A span from its JSON (`Span.to_json`'s shape), for observers of spans written as raw records."""
    return Span(
        id=data["id"],
        trace_id=data["traceId"],
        step=data["step"],
        kind=data.get("kind") or "",
        parent_id=data.get("parentId"),
        attempt=int(data.get("attempt") or 1),
        status=data.get("status") or "running",
        enqueued_at=data.get("enqueuedAt"),
        started_at=int(data.get("startedAt") or 0),
        finished_at=data.get("finishedAt"),
        topic=data.get("topic"),
        job_id=data.get("jobId"),
        http=data.get("http"),
        error=data.get("error"),
        will_retry=bool(data.get("willRetry")),
        retry_at=data.get("retryAt"),
    )


@dataclass
class SpanScope:
    """The span a piece of code runs in; events recorded here belong to it."""

    recorder: Recorder
    span: Span
    log_level: int = logging.INFO
    events: int = 0
    tags: dict[str, Any] = field(default_factory=dict)
    logs: int = 0  # log lines kept in this span
    log_bytes: int = 0  # and their size
    logs_dropped: int = 0  # beyond the span's caps
    # while the step runs, its emits wait here and leave together when it succeeds (None: at once)
    outbox: list[Any] | None = None

    @property
    def trace_id(self) -> str:
        return self.span.trace_id

    def record(self, kind: Literal["log", "emit", "state"], data: dict[str, Any]) -> None:
        self.events += 1
        if self.span.finished_at is not None:  # from work the handler left running (late_work.py)
            data = {**data, "afterEnd": True}
        self.recorder.event(
            Event(
                kind=kind,
                ts=now_ms(),
                trace_id=self.trace_id,
                span_id=self.span.id,
                step=self.span.step,
                data=data,
            )
        )

    def log(self, level: int, message: str, fields: dict[str, Any]) -> None:
        if level < self.log_level:
            return
        recorder = self.recorder
        if self.logs_dropped:
            self.logs_dropped += 1
            return
        cap = recorder.field_cap
        message, cut = _cut(message, cap * 2)
        kept: dict[str, Any] = {}
        for name, value in fields.items():
            value, value_cut = cap_payload(value, cap)
            kept[name] = value
            cut = cut or value_cut
        size = len(message) + sum(len(str(v)) for v in kept.values())
        if self.logs >= recorder.span_log_cap or self.log_bytes + size > recorder.span_log_bytes:
            self.logs_dropped = 1
            self.record("log", {
                "level": "warning",
                "message": f"log cap reached: later lines of this span are not kept ({self.logs} lines, "
                           f"{self.log_bytes} bytes; WORKBENCH_SPAN_LOGS / WORKBENCH_SPAN_LOG_BYTES)",
                "fields": {"capped": True},
            })  # fmt: skip
            return
        self.logs += 1
        self.log_bytes += size
        data: dict[str, Any] = {
            "level": logging.getLevelName(level).lower(),
            "message": message,
            "fields": kept,
        }
        if cut:
            data["truncated"] = True  # a field or the message was cut at the cap (marked with …)
        self.record("log", data)

    def emit(self, topic: str, payload: Any, subscribers: list[str]) -> None:
        kept, cut = cap_payload(payload, self.recorder.payload_cap)
        self.record("emit", {"topic": topic, "payload": kept, "truncated": cut, "subscribers": subscribers})

    def state(self, op: str, group: str, key: str | None, **change: Any) -> None:
        """A state operation; `change` is what it did, as `workbench/state.py` made it: `before` /
        `after` / `value` (each capped there, `truncated` when one was cut) or a `count`."""
        self.record("state", {"op": op, "group": group, "key": key, **change})


def _cut(text: str, cap: int) -> tuple[str, bool]:
    if len(text) <= cap:
        return text, False
    return text[:cap] + f"… ({len(text) - cap} more characters not kept)", True


current_scope: contextvars.ContextVar[SpanScope | None] = contextvars.ContextVar(
    "workbench_span", default=None
)

# attributes every LogRecord has; anything else passed in `extra` is a structured field
_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "wb_fields",
}


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = dict(getattr(record, "wb_fields", {}) or {})
    for key, value in record.__dict__.items():
        if key not in _STANDARD_ATTRS and not key.startswith("_"):
            fields[key] = value
    return fields


class SpanLogHandler(logging.Handler):
    """Routes every log record made inside a step run into that run's span."""

    def emit(self, record: logging.LogRecord) -> None:
        scope = current_scope.get()
        if scope is None or record.name.startswith("workbench."):
            return
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            scope.log(record.levelno, message, record_fields(record))
        except Exception:  # logging must never break the step that logs
            self.handleError(record)


def install_span_capture(level: int) -> None:
    """Capture log records into spans; each span applies its own threshold (`SpanScope.log_level`)."""
    root = logging.getLogger()
    if not any(isinstance(h, SpanLogHandler) for h in root.handlers):
        root.addHandler(SpanLogHandler())
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)
