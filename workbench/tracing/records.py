"""The record shapes shared by the store, the JSON API, the live feed and the templates.

A trace is one entry point; a span is one attempt of one step run inside it; an event is a log
line, an emit or a state operation inside a span. Records are plain JSON-able dicts so that they
cross processes and reach the browser unchanged.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass, field
from typing import Any, Literal

from ..ids import new_id

SpanStatus = Literal[
    "running", "completed", "failed", "timed_out", "lost", "interrupted", "cancelled", "skipped"
]
# cancelled: a trace someone cancelled (cancel.py), once nothing of it is open and nothing failed
TraceStatus = Literal["running", "completed", "failed", "cancelled"]
# cancelled: stopped or taken out of the queue by a user; skipped: a cron tick of a paused step
FINISHED = ("completed", "failed", "timed_out", "lost", "interrupted", "cancelled", "skipped")
FAILED = ("failed", "timed_out", "lost")


@dataclass
class Span:
    id: str
    trace_id: str
    step: str
    kind: str  # api | event | cron | emit
    parent_id: str | None = None
    attempt: int = 1
    status: SpanStatus = "running"
    enqueued_at: int | None = None  # ms; None for spans that did not wait in a queue
    started_at: int = 0
    finished_at: int | None = None
    topic: str | None = None
    job_id: str | None = None
    http: dict[str, Any] | None = None  # method, path, status
    error: dict[str, str] | None = None  # type, message, traceback
    will_retry: bool = False  # a failed attempt that is followed by another
    retry_at: int | None = None
    # an API span's request and response, bounded (workbench/replay.py: what "Replay" re-sends)
    exchange: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        # written out (not dataclasses.asdict): this runs twice for every step run
        return {
            "id": self.id,
            "traceId": self.trace_id,
            "step": self.step,
            "kind": self.kind,
            "parentId": self.parent_id,
            "attempt": self.attempt,
            "status": self.status,
            "enqueuedAt": self.enqueued_at,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "topic": self.topic,
            "jobId": self.job_id,
            "http": self.http,
            "error": self.error,
            "willRetry": self.will_retry,
            "retryAt": self.retry_at,
            "exchange": self.exchange,
        }


def error_info(exc: BaseException) -> dict[str, str]:
    return {
        "type": type(exc).__name__,
        "message": str(exc) or type(exc).__name__,
        "traceback": "".join(traceback.format_exception(exc)),
    }


@dataclass
class Event:
    """A log line, an emit or a state operation, in the order they happened inside a span."""

    kind: Literal["log", "emit", "state"]
    ts: int
    trace_id: str
    span_id: str
    step: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_id)  # stable: the same row in a page render and a live update

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "ts": self.ts,
            "traceId": self.trace_id,
            "spanId": self.span_id,
            "step": self.step,
            **self.data,
        }


def cap_payload(payload: Any, cap: int) -> tuple[Any, bool]:
    """A payload as kept in a trace: unchanged when small, else its JSON text cut at `cap` bytes."""
    return cap_json(payload, json.dumps(payload, default=str, separators=(",", ":")), cap)


def cap_json(value: Any, text: str, cap: int) -> tuple[Any, bool]:
    """`cap_payload` for a value whose JSON `text` is at hand (a state value as stored)."""
    if len(text) * 4 <= cap or len(text.encode()) <= cap:  # 4: the most bytes a character takes
        return value, False
    return text.encode()[:cap].decode(errors="ignore") + "…", True


def trace_status(open_count: int, failed: int, cancelled: bool = False) -> TraceStatus:
    if open_count > 0:
        return "running"
    if failed > 0:
        return "failed"
    return "cancelled" if cancelled else "completed"


def trace_from_hash(raw: dict[str, str]) -> dict[str, Any]:
    """The trace summary as the API and the UI show it, from its Redis hash."""
    ints = ("start", "end", "open", "failed", "spans", "errors")
    data: dict[str, Any] = {k: raw.get(k, "") for k in ("id", "entry", "kind", "label", "error")}
    for key in ints:
        value = raw.get(key)
        data[key] = int(value) if value not in (None, "") else None
    data["open"] = data["open"] or 0
    data["failed"] = data["failed"] or 0
    data["spans"] = data["spans"] or 0
    data["errors"] = data["errors"] or 0
    data["steps"] = [s for s in raw.get("steps", "").split(",") if s]
    if raw.get("replayOf"):  # a trace started from another one (replay.py): which, and how
        data["replayOf"] = raw["replayOf"]
        data["replayKind"] = raw.get("replayKind") or "replay"
        data["replayOfSpan"] = raw.get("replayOfSpan") or None
    data["status"] = trace_status(data.pop("open"), data["failed"], bool(raw.get("cancelled")))
    start, end = data["start"], data["end"]
    data["durationMs"] = (end - start) if (start and end and data["status"] != "running") else None
    return data


def plain_error(type_: str, message: str) -> dict[str, str]:
    """An error of ours (not an exception's): its type and message, no traceback."""
    return {"type": type_, "message": message, "traceback": ""}
