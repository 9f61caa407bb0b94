"""OpenTelemetry export: every trace as one OTel trace, step logs as OTel log records (OTLP/HTTP).

On when the standard variables name a collector (`OTEL_EXPORTER_OTLP_ENDPOINT`, or the traces or
logs endpoint of their own, or `OTEL_TRACES_EXPORTER` / `OTEL_LOGS_EXPORTER=otlp`), off otherwise:
then `opentelemetry` is never imported and the recorder has no observer more. The SDK reads the
rest of its variables itself (headers, timeout, compression, certificates, `OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*` / `OTEL_BLRP_*`).

Spans are made from our finished span records (`Recorder.on_span_end`), with the SDK's tracer,
their start and end times given, and the logs from the span's log events (`Recorder.on_log`). The
event loop only queues them (a deque append); a thread of ours makes the SDK's spans and log records
(tens of microseconds each) and the SDK's batch threads encode and send them, so a request or a job
never waits for export; a collector that is away costs one warning a minute (the SDK's own
complaints are gathered into it).

**Ids are derived, not carried.** The OTel trace id is our trace id read as a number (a ULID holds
128 bits), a span id is a 64-bit hash of ours. Every process can so name any span of a trace from
the ids it already has (a job knows its trace and the span that emitted it): nothing is added to a
job's payload nor read from Redis, and `ctx.traceparent` is the same with export off. A request
with a W3C `traceparent` gets a trace id that starts with the caller's 32-hex trace id, followed by
a ULID of ours (58 characters, still unique per request): the OTel trace id is then the caller's,
in the web process and in every worker alike; the caller's span, the API span's parent, is kept in
the span's `http.traceparent`. Every trace is recorded and exported (the caller's sampled flag is
not followed, and `OTEL_TRACES_SAMPLER` is not read: the Workbench stores every trace anyway;
sample in the collector).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .ids import new_id
from .log_limit import Limited
from .tracing.records import FAILED, Event, Span

if TYPE_CHECKING:
    from .registry import Registry
    from .settings import Settings
    from .tracing.recorder import Recorder

log = logging.getLogger("workbench.otel")
_limited = Limited(log, interval_s=60.0)

# --- ids and traceparent (no SDK needed) --------------------------------------------------------------

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_AS_BASE32 = str.maketrans(_CROCKFORD, "0123456789abcdefghijklmnopqrstuv")  # int(x, 32)'s digits
JOINED_LEN = 58  # a trace joined to a caller's: its 32-hex trace id, then a 26-character ULID
_MASK_128 = (1 << 128) - 1


@dataclass(frozen=True)
class Joined:
    """A request's trace that joins a caller's (from its `traceparent` header)."""

    trace_id: str  # ours: the caller's trace id in hex, then a new ULID
    traceparent: str  # the caller's, as received (lower case), kept in the API span's `http`


def parse_traceparent(header: str | None) -> tuple[str, str] | None:
    """(trace id, parent span id) in hex from a W3C `traceparent`, or None when it is not a valid one."""
    if not header:
        return None
    match = _TRACEPARENT.fullmatch(header.strip().lower())
    if match is None:
        return None
    version, trace_hex, span_hex, _, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or not int(trace_hex, 16) or not int(span_hex, 16):
        return None
    return trace_hex, span_hex


def join_trace(header: str | None) -> Joined | None:
    """The trace id of a request that came with a `traceparent` (None without a valid one)."""
    parsed = parse_traceparent(header)
    if parsed is None:
        return None
    assert header is not None
    return Joined(parsed[0] + new_id(), header.strip().lower())


def otel_trace_id(trace_id: str) -> int:
    """The OTel trace id of one of our traces: the caller's for a joined trace, else our ULID's bits."""
    if len(trace_id) == JOINED_LEN and _HEX32.fullmatch(trace_id[:32]):
        return int(trace_id[:32], 16)
    if len(trace_id) == 26:
        try:
            value = int(trace_id.translate(_AS_BASE32), 32) & _MASK_128
        except ValueError:
            value = 0
        if value:
            return value
    return int.from_bytes(hashlib.blake2b(trace_id.encode(), digest_size=16).digest(), "big") or 1


def otel_span_id(span_id: str) -> int:
    """The OTel span id of one of our spans (an API span's ULID, a job run's `jobId:run`)."""
    return int.from_bytes(hashlib.blake2b(span_id.encode(), digest_size=8).digest(), "big") or 1


def traceparent(trace_id: str, span_id: str) -> str:
    """The W3C `traceparent` of our span `span_id` in trace `trace_id` (sampled: every trace is kept)."""
    return f"00-{otel_trace_id(trace_id):032x}-{otel_span_id(span_id):016x}-01"


# --- when export is on --------------------------------------------------------------------------------


def _wanted(signal: str, environ: Mapping[str, str]) -> bool:
    exporters = {e.strip().lower() for e in environ.get(f"OTEL_{signal}_EXPORTER", "").split(",")}
    if "none" in exporters:
        return False
    return bool(
        "otlp" in exporters
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
    )


def export_wanted(environ: Mapping[str, str] = os.environ) -> tuple[bool, bool]:
    """(traces, logs): which signals the environment asks to export."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False, False
    return _wanted("TRACES", environ), _wanted("LOGS", environ)


def from_env(settings: Settings, registry: Registry) -> Telemetry | None:
    """The process's exporter when the environment asks for one; None (nothing imported) otherwise."""
    traces, logs = export_wanted()
    if not (traces or logs):
        return None
    try:
        return Telemetry(settings, registry, traces=traces, logs=logs)
    except Exception as exc:  # a bad OTEL_* value must not keep the process from serving
        log.warning("OpenTelemetry export is off: %s", exc)
        return None


class _ExportProblems(logging.Handler):
    """The SDK's own warnings (each failed batch, each retry) said as one line a minute."""

    last_failure = -1e9  # monotonic time of the exporters' latest complaint

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        if record.name.startswith("opentelemetry.exporter"):
            _ExportProblems.last_failure = time.monotonic()
            _limited.warning(
                "export", "OpenTelemetry export is failing; spans and logs are dropped meanwhile: %s", message
            )
        else:  # anything else the SDK says (a full queue, a bad OTEL_* value)
            _limited.warning("sdk", "OpenTelemetry: %s", message)


def _quiet_sdk_warnings() -> None:
    sdk_log = logging.getLogger("opentelemetry")
    if not any(isinstance(h, _ExportProblems) for h in sdk_log.handlers):
        sdk_log.addHandler(_ExportProblems())
    sdk_log.propagate = False


def _attribute(value: Any) -> Any:
    """A log field as an OTel attribute value (text, number, bool, or a list of them; else JSON)."""
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    return json.dumps(value, default=str, separators=(",", ":"))


_SEVERITY = {"debug": 5, "info": 9, "warning": 13, "error": 17, "critical": 21}


class Telemetry:
    """The tracer and logger of one runtime, exporting over OTLP/HTTP (protobuf) in batches."""

    HANDOFF_S = 0.05  # how often the thread makes the SDK's spans and logs from those queued
    HANDOFF_CAP = 100_000  # queued at most (beyond: dropped, and said)
    STOP_BOUND_S = 3.0  # a stop waits this long for the last batches (a failing collector: hardly)

    def __init__(self, settings: Settings, registry: Registry, *, traces: bool, logs: bool) -> None:
        from opentelemetry import trace
        from opentelemetry._logs import SeverityNumber
        from opentelemetry.context import Context as OtelContext
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.id_generator import IdGenerator
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        _quiet_sdk_warnings()
        resource = Resource.create({"workbench.process": settings.mode})
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: settings.app_name}))
        self._trace = trace  # the SDK's names, kept here: nothing of it is imported while export is off
        self._empty_context = OtelContext
        self._severity = {name: SeverityNumber(n) for name, n in _SEVERITY.items()}
        self._routes = {s.name: s.path for s in registry.api_steps()}
        self._crons = {s.name: str(s.cron) for s in registry.cron_steps()}
        self._exporters: list[Any] = []
        self._processors: list[Any] = []
        self._tracer: Any = None
        self._logger: Any = None
        self._handoff: deque[tuple[Callable[[Any], None], Any]] = deque()
        self._dropped = 0
        self._closing = threading.Event()
        self._converter = threading.Thread(target=self._convert, name="workbench-otel", daemon=True)

        class NextIds(IdGenerator):
            """Hands the SDK the ids derived from ours, set just before each span starts."""

            trace_id = 0
            span_id = 0

            def generate_span_id(self) -> int:
                return self.span_id

            def generate_trace_id(self) -> int:
                return self.trace_id

        if traces:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            self._ids = NextIds()
            provider = TracerProvider(
                resource=resource, sampler=ALWAYS_ON, id_generator=self._ids, shutdown_on_exit=False
            )
            span_exporter = OTLPSpanExporter()
            span_processor = BatchSpanProcessor(span_exporter)
            provider.add_span_processor(span_processor)
            self._tracer = provider.get_tracer("workbench")
            self._exporters.append(span_exporter)
            self._processors.append(span_processor)
        if logs:
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
            from opentelemetry.sdk._logs import LoggerProvider
            from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

            log_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
            log_exporter = OTLPLogExporter()
            log_processor = BatchLogRecordProcessor(log_exporter)
            log_provider.add_log_record_processor(log_processor)
            self._logger = log_provider.get_logger("workbench")
            self._exporters.append(log_exporter)
            self._processors.append(log_processor)
        self._converter.start()

    def watch(self, recorder: Recorder) -> None:
        """Export every span `recorder` sees end and every step log line it records."""
        if self._tracer is not None:
            recorder.on_span_end.append(self._span_seen)
        if self._logger is not None:
            recorder.on_log.append(self._log_seen)

    # --- the hand-off: the event loop only queues; the SDK's spans and logs are made on a thread ------

    def _span_seen(self, span: Span) -> None:
        # the span itself, not a copy: a span is changed after its end only when it is ended again
        # (its emits could not leave), and then its latest state is the one to export
        if len(self._handoff) < self.HANDOFF_CAP:
            self._handoff.append((self.span_ended, span))
        else:
            self._dropped += 1

    def _log_seen(self, event: Event) -> None:
        if len(self._handoff) < self.HANDOFF_CAP:
            self._handoff.append((self.logged, event))
        else:
            self._dropped += 1

    def _convert(self) -> None:
        """The thread turning queued spans and logs into the SDK's, every `HANDOFF_S`."""
        while not self._closing.wait(self.HANDOFF_S):
            self._drain()
        self._drain()

    def _drain(self) -> None:
        handoff = self._handoff
        while handoff:
            make, item = handoff.popleft()
            try:
                make(item)
            except Exception as exc:  # one bad record never stops the export of the others
                _limited.warning("convert", "OpenTelemetry: a span or log could not be exported: %r", exc)
        if self._dropped:
            dropped, self._dropped = self._dropped, 0
            _limited.warning("full", "OpenTelemetry: %d spans and logs dropped (export is behind)", dropped)

    # --- spans ----------------------------------------------------------------------------------------

    def _context(self, trace_id: int, span_id: int) -> Any:
        trace = self._trace
        parent = trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(1))
        return parent, trace.set_span_in_context(trace.NonRecordingSpan(parent))

    def span_ended(self, span: Span) -> None:
        """One of our spans reached a finished status: the same span in OTel."""
        trace = self._trace
        SpanKind, Status, StatusCode = trace.SpanKind, trace.Status, trace.StatusCode
        trace_int = otel_trace_id(span.trace_id)
        attributes: dict[str, Any] = {
            "workbench.step": span.step,
            "workbench.trace_id": span.trace_id,
        }
        if span.status != "completed":  # the usual end is not spelt out (each attribute costs ~4 µs)
            attributes["workbench.status"] = span.status
        links: list[Any] = []
        context: Any = self._empty_context()  # a root unless a parent is given
        http = span.http or {}
        if span.kind == "api":
            kind = SpanKind.SERVER
            route = self._routes.get(span.step, http.get("path", ""))
            name = f"{http.get('method', 'HTTP')} {route}"
            attributes.update({
                "http.request.method": http.get("method", ""),
                "url.path": http.get("path", ""),
                "http.route": route,
            })  # fmt: skip
            if http.get("status") is not None:
                attributes["http.response.status_code"] = int(http["status"])
                if int(http["status"]) >= 500:
                    attributes["error.type"] = str(http["status"])
            caller = parse_traceparent(http.get("traceparent"))
            if caller is not None:
                _, context = self._context(trace_int, int(caller[1], 16))
        elif span.kind == "emit":
            kind = SpanKind.PRODUCER
            name = f"send {span.topic}"
            attributes.update({
                "messaging.system": "workbench",
                "messaging.operation.type": "send",
                "messaging.destination.name": span.topic or "",
            })  # fmt: skip
        else:
            kind = SpanKind.CONSUMER
            name = f"process {span.topic}" if span.topic else f"{span.kind} {span.step}"
            attributes.update({
                "messaging.system": "workbench",
                "messaging.operation.type": "process",
                "workbench.attempt": span.attempt,
            })  # fmt: skip
            if span.topic:
                attributes["messaging.destination.name"] = span.topic
            if span.job_id:
                attributes["messaging.message.id"] = span.job_id
            if span.enqueued_at is not None and span.started_at:
                attributes["workbench.queue_wait_ms"] = max(0, span.started_at - span.enqueued_at)
            if span.will_retry:
                attributes["workbench.will_retry"] = True
            if span.step in self._crons:
                attributes["workbench.cron"] = self._crons[span.step]
            if span.parent_id:  # the span that emitted it: its parent, and linked as messaging spans are
                parent, context = self._context(trace_int, otel_span_id(span.parent_id))
                links.append(trace.Link(parent))
        if span.error and span.status in FAILED:
            attributes.setdefault("error.type", span.error.get("type") or "error")
        ids = self._ids
        ids.trace_id, ids.span_id = trace_int, otel_span_id(span.id)
        started_ns = span.started_at * 1_000_000
        ended_ns = (span.finished_at or span.started_at) * 1_000_000
        otel_span = self._tracer.start_span(
            name, context=context, kind=kind, attributes=attributes, links=links, start_time=started_ns
        )
        if span.status in FAILED:
            error = span.error or {}
            message = error.get("message") or span.status
            otel_span.set_status(Status(StatusCode.ERROR, message))
            if error:
                otel_span.add_event(
                    "exception",
                    {
                        "exception.type": error.get("type") or "Error",
                        "exception.message": message,
                        "exception.stacktrace": error.get("traceback") or "",
                    },
                    timestamp=ended_ns,
                )
        otel_span.end(end_time=ended_ns)

    # --- logs -----------------------------------------------------------------------------------------

    def logged(self, event: Event) -> None:
        """A log line recorded in one of our spans: an OTel log record with its trace and span ids."""
        data = event.data
        level = str(data.get("level") or "info")
        attributes = {"workbench.step": event.step, "workbench.trace_id": event.trace_id}
        for key, value in (data.get("fields") or {}).items():
            attributes[str(key)] = _attribute(value)
        _, context = self._context(otel_trace_id(event.trace_id), otel_span_id(event.span_id))
        self._logger.emit(
            timestamp=event.ts * 1_000_000,
            context=context,
            severity_number=self._severity.get(level, self._severity["info"]),
            severity_text=level.upper(),
            body=str(data.get("message", "")),
            attributes=attributes,
        )

    # --- stop -----------------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Send what is still batched, waiting at most `STOP_BOUND_S` (then, or at once when the collector
        failed within the last minute, the rest is given up)."""
        bound = self.STOP_BOUND_S
        self._closing.set()  # the converter makes what is queued, then ends
        started = time.monotonic()
        await asyncio.to_thread(self._converter.join, bound)
        bound = max(0.2, bound - (time.monotonic() - started))
        processors, exporters = self._processors, self._exporters

        def shut() -> None:
            for processor in processors:
                processor.shutdown()

        worker = threading.Thread(target=shut, name="workbench-otel-stop", daemon=True)
        worker.start()
        failing = time.monotonic() - _ExportProblems.last_failure < 60  # then do not wait for it
        await asyncio.to_thread(worker.join, 0.2 if failing else bound)
        if worker.is_alive():  # the collector is not answering: stop the retries, drop the rest
            log.warning("OpenTelemetry: the last spans and logs could not be sent before stopping")
            for exporter in exporters:
                try:
                    exporter.shutdown()
                except Exception:
                    pass
