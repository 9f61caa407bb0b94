"""The workbench pages: server-rendered Jinja with htmx, one `Controller` under `/_workbench`.

Each route gathers what its page shows and names its template; the markup is in `templates/`
(`partials/record_<kind>.html`: the one partial per record kind that both a page's first render
and its live stream, live_html.py, use). The URL of a page comes from its route here: templates
ask `url("<method name>", ...)` (urls.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import anyio
from litestar import Controller, Request, Response, get, post
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template

from .. import keys
from ..ids import now_ms
from ..json_values import UnfitJson, check_value, parse_json
from ..registry import Registry
from ..runtime import RetryRefused, Runtime
from ..step_config import CronStep
from ..tracing.filters import LEVELS
from ..worker import workers_alive
from . import views
from .compare_page import ComparePage
from .debug_api import DebugApi, DebugPages
from .forms import QuickForm, example_body, featured_step, json_schema, topic_example
from .health import memory_pressure
from .live_html import html_stream
from .params import Level, LogCursor, Status, Text, TraceCursor
from .queues_page import QueuesApi, QueuesPage
from .runtime_access import fresh, runtime_of
from .serializers import cron_json, step_json
from .urls import BASE, OPENAPI, STATIC, Urls

# how many rows a page lists (a live list keeps at most LIVE_ROWS, dropping the oldest)
LIVE_ROWS = 300
PAGE_TRACES, PAGE_LOGS = 50, 100
HOME_TRACES, HOME_LOGS = 12, 20
NODE_RUNS = 20  # recent runs in a flow node's panel
Rows = Annotated[int | None, QueryParameter(ge=0, le=10_000_000)]  # a position in a span's events
CRON_RUNS = 5


def _page(name: str, request: Request[Any, Any, Any], active: str, **context: Any) -> Template:
    runtime = runtime_of(request)
    return Template(
        template_name=name,
        context={
            "active": active,
            "app_name": runtime.settings.app_name,
            "mode": runtime.settings.mode,
            "now": now_ms(),
            **context,
        },
    )


async def _feed_position(runtime: Runtime) -> str:
    """The live feed's newest id, so a page's stream continues exactly where its render ended."""
    newest = await runtime.redis.xrevrange(keys.FEED, count=1)
    return str(newest[0][0]) if newest else "0-0"


async def _trace_or_404(runtime: Runtime, trace_id: str) -> dict[str, Any]:
    trace = await runtime.store.get_trace(trace_id)
    if trace is None:
        raise NotFoundException(f"no trace {trace_id}")
    return trace


def _waterfall_context(trace: dict[str, Any], selected: str | None) -> dict[str, Any]:
    bars, ticks, total = views.waterfall(trace, now_ms())
    chosen = next((b.span for b in bars if b.span["id"] == selected), None) or (
        bars[0].span if bars else None
    )
    return {"trace": trace, "bars": bars, "ticks": ticks, "total": total, "selected": chosen}


class WorkbenchPages(Controller):
    path = BASE
    include_in_schema = False

    @get("/")
    async def home(self, request: Request[Any, Any, Any]) -> Template:
        runtime = await fresh(request)
        featured = featured_step(runtime.registry)
        recent, _ = await runtime.store.list_traces(limit=HOME_TRACES)
        log_rows, _ = await runtime.store.list_logs(limit=HOME_LOGS)
        return _page(
            "home.html", request, "home",
            form=QuickForm.of(featured) if featured else None, traces=recent, logs=log_rows,
            trace_cap=HOME_TRACES, log_cap=HOME_LOGS, feed_id=await _feed_position(runtime),
        )  # fmt: skip

    @get("/home/trace/{trace_id:str}")
    async def home_trace(self, request: Request[Any, Any, Any], trace_id: FromPath[str]) -> Template:
        """The home page's "your request" panel: what a trace's steps did, polled until it ends."""
        trace = await (await fresh(request)).store.get_trace(trace_id)  # None (gone): an empty panel
        return Template(template_name="partials/home_trace.html", context={"trace": trace, "now": now_ms()})

    @get("/flows")
    async def flows(self, request: Request[Any, Any, Any], flow: Text = None) -> Template:
        runtime = runtime_of(request)
        registry = runtime.registry
        names = views.flows_of(registry)
        undeclared = await _undeclared_emits(runtime)
        graphs = [
            views.layout_flow(registry, name, undeclared) for name in names if flow is None or name == flow
        ]
        return _page(
            "flows.html", request, "flows",
            graphs=graphs, flow_names=names, selected=flow, node_w=views.NODE_W, node_h=views.NODE_H,
        )  # fmt: skip

    @get("/flows/node/{name:str}")
    async def flow_node(self, request: Request[Any, Any, Any], name: FromPath[str]) -> Template:
        runtime = runtime_of(request)
        step = runtime.registry.get(name)
        if step is None:
            raise NotFoundException(f"no step {name}")
        runs = []
        found, _ = await runtime.store.list_traces(step=name, limit=NODE_RUNS, scan_budget=3000)
        for trace in found:
            full = await runtime.store.get_trace(trace["id"])
            for span in (full or {}).get("spanList", []):
                if span["step"] == name:
                    runs.append(span)
        durations = [s["finishedAt"] - s["startedAt"] for s in runs if s.get("finishedAt")]
        try:
            source = await anyio.Path(step.file).read_text()
        except OSError:
            source = ""
        root_dir = runtime.registry.steps_dir.parent
        try:
            shown_file = str(Path(step.file).relative_to(root_dir))
        except ValueError:
            shown_file = str(step.file)
        return Template(
            template_name="partials/node_panel.html",
            context={
                "step": step_json(step), "file": shown_file, "source": source, "runs": runs[:NODE_RUNS],
                "p50": views.percentile(durations, 50), "p95": views.percentile(durations, 95),
            },
        )  # fmt: skip

    @get("/endpoints")
    async def endpoints(self, request: Request[Any, Any, Any]) -> Template:
        rows = [
            {"step": step, "schema": json_schema(step.body_schema), "example": example_body(step),
             "params": step.path_params}
            for step in runtime_of(request).registry.api_steps()
        ]  # fmt: skip
        return _page("endpoints.html", request, "endpoints", endpoints=rows)

    @get("/traces")
    async def traces(
        self,
        request: Request[Any, Any, Any],
        status: Status = None,
        step: Text = None,
        q: Text = None,
        cursor: TraceCursor = None,
    ) -> Template:
        runtime = await fresh(request)
        rows, nxt = await runtime.store.list_traces(
            status=status, step=step, q=q, cursor=cursor, limit=PAGE_TRACES
        )
        filters = {"status": status or "", "step": step or "", "q": q or ""}
        return _page(
            "traces.html", request, "traces",
            traces=rows, cursor=nxt, filters=filters, steps=[s.name for s in runtime.registry],
            feed_id=await _feed_position(runtime), live=cursor is None, cap=LIVE_ROWS,
        )  # fmt: skip

    @get("/traces/{trace_id:str}")
    async def trace(
        self, request: Request[Any, Any, Any], trace_id: FromPath[str], span: Text = None
    ) -> Template:
        runtime = await fresh(request)
        trace = await _trace_or_404(runtime, trace_id)
        return _page(
            "trace.html", request, "traces",
            feed_id=await _feed_position(runtime), **_waterfall_context(trace, span),
            event_rows=runtime.settings.span_page_rows,
        )  # fmt: skip

    @get("/traces/{trace_id:str}/waterfall")
    async def trace_waterfall(
        self, request: Request[Any, Any, Any], trace_id: FromPath[str], span: Text = None, rows: Rows = None
    ) -> Template:
        runtime = await fresh(request)
        trace = await _trace_or_404(runtime, trace_id)
        # `rows`: the selected span's events already shown (its pages loaded): a refresh keeps them
        shown = max(rows or 0, runtime.settings.span_page_rows)
        context = {**_waterfall_context(trace, span), "event_rows": shown}
        return Template(template_name="partials/waterfall.html", context=context)

    @get("/traces/{trace_id:str}/spans/{span_id:str}")
    async def span(
        self, request: Request[Any, Any, Any], trace_id: FromPath[str], span_id: FromPath[str]
    ) -> Template:
        trace = await _trace_or_404(runtime_of(request), trace_id)
        span = next((s for s in trace["spanList"] if s["id"] == span_id), None)
        if span is None:
            raise NotFoundException(f"no span {span_id}")
        rows = runtime_of(request).settings.span_page_rows
        context = {"trace": trace, "selected": span, "event_rows": rows}
        return Template(template_name="partials/span_detail.html", context=context)

    @get("/traces/{trace_id:str}/spans/{span_id:str}/events")
    async def span_events(
        self,
        request: Request[Any, Any, Any],
        trace_id: FromPath[str],
        span_id: FromPath[str],
        offset: Rows = None,
    ) -> Template:
        """The next page of a span's events, from `offset`: rows for the trace page's event list."""
        runtime = runtime_of(request)
        trace = await _trace_or_404(runtime, trace_id)
        span = next((s for s in trace["spanList"] if s["id"] == span_id), None)
        if span is None:
            raise NotFoundException(f"no span {span_id}")
        start = offset or 0
        events = span["events"][start : start + runtime.settings.span_page_rows]
        return Template(
            template_name="partials/span_events.html",
            context={"trace": trace, "span": span, "events": events, "shown": start + len(events),
                     "total": len(span["events"])},
        )  # fmt: skip

    @get("/logs")
    async def logs(
        self,
        request: Request[Any, Any, Any],
        level: Level = None,
        step: Text = None,
        trace_id: Text = None,
        q: Text = None,
        cursor: LogCursor = None,
    ) -> Template:
        runtime = await fresh(request)
        rows, nxt = await runtime.store.list_logs(
            level=level, step=step, trace_id=trace_id, q=q, cursor=cursor, limit=PAGE_LOGS
        )
        filters = {"level": level or "", "step": step or "", "trace_id": trace_id or "", "q": q or ""}
        return _page(
            "logs.html", request, "logs",
            logs=rows, cursor=nxt, filters=filters, steps=[s.name for s in runtime.registry],
            levels=list(LEVELS), feed_id=await _feed_position(runtime), live=cursor is None, cap=LIVE_ROWS,
        )  # fmt: skip

    @get("/cron")
    async def cron(self, request: Request[Any, Any, Any]) -> Template:
        runtime = runtime_of(request)
        rows = []
        for step in runtime.registry.cron_steps():
            row = cron_json(step)
            row["runs"], _ = await runtime.store.list_traces(
                entry=step.name, limit=CRON_RUNS, scan_budget=2000
            )
            rows.append(row)
        return _page("cron.html", request, "cron", crons=rows)

    @post("/cron/{step_name:str}/run", status_code=200)
    async def cron_run(self, request: Request[Any, Any, Any], step_name: FromPath[str]) -> Template:
        runtime = runtime_of(request)
        step = runtime.registry.get(step_name)
        if not isinstance(step, CronStep):
            raise NotFoundException(f"no cron step {step_name}")
        trace_id, _ = await runtime.enqueue_step(step, None, label="run now")
        return Template(
            template_name="partials/started.html",
            context={"trace_id": trace_id, "what": f"{step_name} started"},
        )

    @get("/state")
    async def state(self, request: Request[Any, Any, Any], group: Text = None) -> Template:
        runtime = runtime_of(request)
        groups = await runtime.state.groups()
        parsed: dict[str, dict[str, Any]] = {}
        broken: dict[str, dict[str, str]] = {}  # group -> key -> why its stored value cannot be shown
        changes: dict[str, dict[str, list[dict[str, Any]]]] = {}  # group -> key -> spans that changed it
        for name in groups:
            if group in (None, name):
                values = await runtime.state.get_group(name)
                parsed[name], broken[name] = _showable(values)
                changes[name] = await runtime.state.changed_by(name, sorted(values))
        return _page(
            "state.html", request, "state",
            groups=groups, values=parsed, broken=broken, selected=group, changes=changes,
        )  # fmt: skip

    # the group and the key travel in the form, never in the path: a key may hold `/`, `?` or `#`
    @post("/state/set", status_code=200)
    async def state_edit(self, request: Request[Any, Any, Any]) -> Template:
        form = await request.form()
        group, key, raw = str(form.get("group", "")), str(form.get("key", "")), str(form.get("value", ""))
        if not group or not key:
            raise HTTPException(status_code=400, detail="group, key: both are required")
        try:
            value = parse_json(raw, what="value")
        except UnfitJson as exc:
            return Template(
                template_name="partials/state_row.html",
                context={"group": group, "key": key, "value": None, "raw": raw, "error": str(exc)},
                status_code=400,
            )
        state = runtime_of(request).state
        await state.set(group, key, value)
        changes = {group: await state.changed_by(group, [key])}
        return Template(
            template_name="partials/state_row.html",
            context={"group": group, "key": key, "value": value, "changes": changes},
        )

    @post("/state/delete", status_code=200)
    async def state_delete(self, request: Request[Any, Any, Any]) -> str:
        form = await request.form()
        group, key = str(form.get("group", "")), str(form.get("key", ""))
        if not group or not key:
            raise HTTPException(status_code=400, detail="group, key: both are required")
        await runtime_of(request).state.delete(group, key)
        return ""

    @get("/emit")
    async def emit(self, request: Request[Any, Any, Any], topic: Text = None) -> Template:
        registry = runtime_of(request).registry
        topics = registry.topics()
        subscribers = {t: [s.name for s in registry.subscribers_of(t)] for t in topics}
        examples = {t: topic_example(registry, t) for t in topics}
        selected = topic if topic in subscribers else (topics[0] if topics else None)
        return _page(
            "emit.html", request, "emit",
            topics=topics, subscribers=subscribers, examples=examples, selected=selected,
        )  # fmt: skip

    @post("/emit", status_code=200)
    async def emit_send(self, request: Request[Any, Any, Any]) -> Template:
        runtime = runtime_of(request)
        form = await request.form()
        topic = str(form.get("topic", ""))
        if topic not in runtime.registry.topics():
            return Template(
                template_name="partials/error.html",
                context={"error": f"topic: unknown topic {topic!r}"},
                status_code=400,
            )
        try:
            data = parse_json(str(form.get("data") or "null"), what="payload")
        except UnfitJson as exc:
            return Template(template_name="partials/error.html", context={"error": str(exc)}, status_code=400)
        trace_id, emitted = await runtime.emit_new_trace(topic, data)
        what = f"Emitted {topic} → {', '.join(emitted.subscribers) or 'no subscribers'}"
        return Template(template_name="partials/started.html", context={"trace_id": trace_id, "what": what})

    @get("/dead-letters")
    async def dead_letters(self, request: Request[Any, Any, Any], step: Text = None) -> Template:
        runtime = runtime_of(request)
        letters = await runtime.dead_letters.list(step=step, limit=200)
        background = [s.name for s in runtime.registry.background_steps()]
        return _page("dead_letters.html", request, "dead", letters=letters, step=step or "", steps=background)

    @post("/dead-letters/{letter_id:str}/{action:str}", status_code=200)
    async def dead_letter_action(
        self, request: Request[Any, Any, Any], letter_id: FromPath[str], action: FromPath[str]
    ) -> str:
        runtime = runtime_of(request)
        if action == "retry":
            try:
                await runtime.retry_dead_letter(letter_id)
            except LookupError as exc:
                raise NotFoundException(str(exc)) from exc
            except RetryRefused as exc:  # kept: the row stays, with the reason
                raise HTTPException(status_code=409, detail=str(exc)) from exc
        elif action == "discard":
            if not await runtime.dead_letters.discard(letter_id):
                raise NotFoundException(f"no dead letter {letter_id}")
        else:
            raise HTTPException(status_code=400, detail="action: retry or discard")
        return ""

    @post("/dead-letters-bulk/{action:str}", status_code=200)
    async def dead_letters_bulk(
        self, request: Request[Any, Any, Any], action: FromPath[str], step: Text = None
    ) -> Response[Any]:
        runtime = runtime_of(request)
        if action == "retry":
            await runtime.retry_dead_letters(step=step)  # the ones that cannot run stay listed
        elif action == "discard":
            await runtime.dead_letters.discard_all(step=step)
        else:
            raise HTTPException(status_code=400, detail="action: retry or discard")
        return Response("", headers={"HX-Refresh": "true"})

    @get("/status")
    async def status(self, request: Request[Any, Any, Any]) -> Template:
        runtime = runtime_of(request)
        try:
            await runtime.redis.ping()
            workers = await workers_alive(runtime.redis)
            dead = await runtime.dead_letters.count()
            running, _ = await runtime.store.list_traces(status="running", limit=50, scan_budget=500)
            context = {"redis": True, "workers": workers, "dead": dead, "running": len(running), "reason": ""}
            context["memory"] = memory_pressure(await runtime.redis.info("memory"))  # None: no maxmemory
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            context = {"redis": False, "workers": None, "dead": None, "running": None, "reason": reason}
        return Template(template_name="partials/status.html", context=context)


@get("/", include_in_schema=False)
async def root() -> Redirect:
    return Redirect(URLS("home"))


URLS = Urls.of(
    WorkbenchPages,
    ComparePage,
    html_stream,
    DebugPages,  # the trace page's replay / rerun panels and the debugging API they post to
    DebugApi,
    QueuesPage,  # queues, pause / resume / purge, cancel (queues_page.py)
    QueuesApi,
    extra={"static": f"{STATIC}/{{file:path}}", "openapi": OPENAPI},
)


def page_handlers(registry: Registry) -> list[Any]:
    """The pages, their live stream, and `/` redirecting to the workbench unless a step serves it."""
    handlers: list[Any] = [WorkbenchPages, html_stream]
    if not any(s.path == "/" and s.method == "GET" for s in registry.api_steps()):
        handlers.append(root)
    return handlers


def _showable(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A group's values that can be shown, sorted by key, and the reasons of those that cannot (a
    value stored before the doors refused it: it shows as an error in its row, never breaks the page)."""
    shown: dict[str, Any] = {}
    broken: dict[str, str] = {}
    for key, value in sorted(values.items()):
        try:
            shown[key] = check_value(value)
        except UnfitJson as exc:
            broken[key] = str(exc)
    return shown, broken


async def _undeclared_emits(runtime: Runtime) -> dict[str, set[str]]:
    """Topics each Motia-rules step has emitted without declaring them (the flows page warns)."""
    steps = [s.name for s in runtime.registry if s.motia_rules]
    if not steps:
        return {}
    async with runtime.redis.pipeline(transaction=False) as pipe:
        for name in steps:
            pipe.smembers(keys.UNDECLARED + name)
        found = await pipe.execute()
    return {name: set(topics) for name, topics in zip(steps, found, strict=True) if topics}
