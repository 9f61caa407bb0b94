"""`GET /_workbench/stream?view=...`: the live feed as HTML rows for the pages, which htmx's SSE
extension puts in their lists.

A row is rendered by the same record partial (`templates/partials/record_<kind>.html`) as the page's first
render, and kept or dropped by the same filter as the store's query behind that render
(`tracing/filters.py`), so a live update looks exactly like a reload would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from litestar import asgi
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.types import Receive, Scope, Send
from sse_starlette import ServerSentEvent

from ..ids import now_ms
from ..tracing.feed import FeedRecord
from ..tracing.filters import LogFilter, TraceFilter
from .stream import Render, bad_request, parse_stream_query, serve_feed
from .urls import BASE

# what each page's stream shows: the record kinds rendered as rows ("trace": the trace page is told
# that its trace changed and fetches its waterfall again)
VIEWS: dict[str, tuple[str, ...]] = {
    "traces": ("trace",),
    "logs": ("log",),
    "home": ("trace", "log"),
    "trace": (),
}
QUERY = ("view", "status", "step", "q", "level")  # besides the feed's own `types`, `trace_id`, `lastEventId`
FILTERS: dict[str, Callable[[Mapping[str, str]], TraceFilter | LogFilter]] = {
    "trace": TraceFilter.from_query,
    "log": LogFilter.from_query,
}


def record_partial(kind: str) -> str:
    """The template of one record kind's row, shared by the first render and the live stream."""
    return f"partials/record_{kind}.html"


def renderer(engine: JinjaTemplateEngine, query: Mapping[str, str]) -> Render:
    view = query.get("view", "traces")
    if view == "trace":
        return lambda record: [ServerSentEvent(data=record.type, event="changed", id=record.id)]
    layout = "compact" if view == "home" else "list"
    shown: dict[str, tuple[Any, Callable[[Mapping[str, Any]], bool]]] = {
        kind: (engine.get_template(record_partial(kind)), FILTERS[kind](query).matches)
        for kind in VIEWS[view]
    }

    def render(record: FeedRecord) -> list[ServerSentEvent]:
        row = shown.get(record.type)
        if row is None:
            return []
        template, matches = row
        if not matches(record.data):
            return []
        html = template.render(record=record.data, layout=layout, now=now_ms())
        return [ServerSentEvent(data=html, event=record.type, id=record.id)]

    return render


@asgi(f"{BASE}/stream", is_mount=False, include_in_schema=False, copy_scope=True)
async def html_stream(scope: Scope, receive: Receive, send: Send) -> None:
    query, _ = parse_stream_query(scope)
    if query.get("view", "traces") not in VIEWS:
        await bad_request(scope, receive, send, f"view: one of {', '.join(VIEWS)}")
        return
    engine: JinjaTemplateEngine = scope["app"].template_engine  # type: ignore[assignment]  # set in create_app
    await serve_feed(scope, receive, send, renderer(engine, query), extra_query=QUERY)
