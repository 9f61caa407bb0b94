"""`GET /_workbench/api/stream`: the live feed as Server-Sent Events (sse-starlette inside a
Litestar ASGI handler). Each event carries its stream id, so `Last-Event-ID` resumes it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from urllib.parse import parse_qs

import anyio
from litestar import asgi
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Scope, Send
from sse_starlette import EventSourceResponse, ServerSentEvent

from ..tracing.feed import FeedHub, FeedRecord, parse_id
from .urls import API

RECORD_TYPES = {"trace", "span", "log", "emit", "state"}
Render = Callable[[FeedRecord], list[ServerSentEvent]]


def json_events(record: FeedRecord) -> list[ServerSentEvent]:
    return [ServerSentEvent(data=json.dumps(record.data, default=str), event=record.type, id=record.id)]


async def bad_request(scope: Scope, receive: Receive, send: Send, message: str) -> None:
    response = ASGIResponse(body=json.dumps({"status_code": 400, "detail": message}).encode(),
                            status_code=400, media_type="application/json")  # fmt: skip
    await response(scope, receive, send)


def parse_stream_query(scope: Scope) -> tuple[dict[str, str], str | None]:
    """The query (single values) and Last-Event-ID (header, or `lastEventId` in the query)."""
    # bytes that are not UTF-8 become U+FFFD, which no parameter or stream id accepts: a 400, not a 500
    query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("utf-8", "replace")).items()}
    headers = {k.decode("latin-1").lower(): v.decode("utf-8", "replace") for k, v in scope.get("headers", [])}
    return query, headers.get("last-event-id") or query.get("lastEventId")


def make_filter(query: dict[str, str]) -> Callable[[FeedRecord], bool] | str:
    """A record filter from `types` and `trace_id`, or an error message."""
    types = set(query.get("types", ",".join(sorted(RECORD_TYPES))).split(","))
    if not types <= RECORD_TYPES:
        return f"types: unknown record types {sorted(types - RECORD_TYPES)}; use {sorted(RECORD_TYPES)}"
    trace_id = query.get("trace_id")
    if trace_id is not None and (not trace_id.isalnum() or len(trace_id) > 64):
        return "trace_id: not a trace id"

    def keep(record: FeedRecord) -> bool:
        if record.type not in types:
            return False
        if trace_id is None:
            return True
        return (record.data.get("id") if record.type == "trace" else record.data.get("traceId")) == trace_id

    return keep


async def serve_feed(
    scope: Scope, receive: Receive, send: Send, render: Render, extra_query: tuple[str, ...] = ()
) -> None:
    hub: FeedHub = scope["app"].state.feed
    shutdown: anyio.Event = scope["app"].state.shutdown
    query, last_id = parse_stream_query(scope)
    allowed = {"types", "trace_id", "lastEventId", *extra_query}
    unknown = set(query) - allowed
    if unknown:
        await bad_request(scope, receive, send, f"{sorted(unknown)[0]}: unknown parameter")
        return
    if last_id is not None and parse_id(last_id) is None:
        await bad_request(scope, receive, send, "Last-Event-ID: not a stream id")
        return
    keep = make_filter(query)
    if isinstance(keep, str):
        await bad_request(scope, receive, send, keep)
        return
    predicate = keep

    async def events() -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(comment="connected")  # flushes the headers: the client knows it is live
        async for record in hub.records(last_id):
            if predicate(record):
                for event in render(record):
                    yield event

    response = EventSourceResponse(
        events(),
        ping=scope["app"].state.settings.sse_ping_s,
        shutdown_event=shutdown,
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
    await response(scope, receive, send)  # type: ignore[arg-type]


@asgi(f"{API}/stream", is_mount=False, include_in_schema=False, copy_scope=True)
async def stream(scope: Scope, receive: Receive, send: Send) -> None:
    await serve_feed(scope, receive, send, json_events)
