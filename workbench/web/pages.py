"""Workbench pages: server-rendered Jinja with htmx. One partial per record kind serves both the
first render and every live update (the HTML stream below renders the same partials)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Request, Response, asgi, get, post
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.template.config import TemplateConfig
from litestar.types import Receive, Scope, Send
from sse_starlette import ServerSentEvent

from ..ids import now_ms
from ..registry import Registry
from ..runtime import Runtime
from ..step_config import ApiStep, CronStep
from ..tracing.feed import FeedRecord
from ..tracing.store import LEVELS
from . import views
from .stream import serve_feed
from .workbench_api import cron_json, fresh, step_json

Text = Annotated[str | None, QueryParameter(max_length=200)]
Cursor = Annotated[str | None, QueryParameter(max_length=200, pattern=r"^[0-9A-Za-z:\-]*$")]
Status = FromQuery[Literal["running", "completed", "failed"] | None]
Level = FromQuery[Literal["debug", "info", "warning", "error", "critical"] | None]

LIVE_ROWS = 300  # rows a live list keeps in the page


def template_config(directory: Path) -> TemplateConfig[Any]:
    env = Environment(
        loader=FileSystemLoader(directory),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.filters.update(
        ms=views.fmt_ms, clock=views.fmt_clock, ago=views.fmt_ago, datetime=views.fmt_datetime,
        pretty=views.pretty_json,
    )  # fmt: skip
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(env))


def _rt(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _page(name: str, request: Request[Any, Any, Any], active: str, **context: Any) -> Template:
    runtime = _rt(request)
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
    newest = await runtime.redis.xrevrange("wb:feed", count=1)
    return str(newest[0][0]) if newest else "0-0"


def _featured_form(registry: Registry) -> ApiStep | None:
    """The home page's quick form: the first POST endpoint with a body schema (CreatePet here)."""
    for step in registry.api_steps():
        if step.method == "POST" and step.body_schema is not None:
            return step
    return None


def form_fields(step: ApiStep) -> list[dict[str, Any]]:
    """Inputs for a body schema: text, number or a select for enums, with the schema's examples."""
    if step.body_schema is None or not hasattr(step.body_schema, "model_json_schema"):
        return []
    schema = step.body_schema.model_json_schema()
    required = set(schema.get("required", []))
    fields = []
    for name, prop in schema.get("properties", {}).items():
        options = prop.get("enum")
        if options is None:
            for alt in prop.get("anyOf", []):
                options = options or alt.get("enum")
        kind = prop.get("type") or next(
            (a.get("type") for a in prop.get("anyOf", []) if a.get("type") != "null"), "string"
        )
        example = (prop.get("examples") or [None])[0]
        fields.append(
            {
                "name": name,
                "label": _humanize(name),
                "type": "select" if options else ("number" if kind in ("integer", "number") else "text"),
                "options": options or [],
                "required": name in required,
                "example": example,
                "min": prop.get("minimum"),
            }
        )
    return fields


def _humanize(name: str) -> str:
    """`ageMonths` → `Age (months)`-ish: split camelCase and snake_case into words."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").split()
    return " ".join([words[0].capitalize(), *(w.lower() for w in words[1:])]) if words else name


def example_body(step: ApiStep) -> str:
    fields = form_fields(step)
    body = {f["name"]: f["example"] if f["example"] is not None else (f["options"][0] if f["options"] else "")
            for f in fields if f["required"] or f["example"] is not None}  # fmt: skip
    return json.dumps(body, indent=2) if body else ""


def page_handlers(registry: Registry) -> list[Any]:
    claims_root = any(s.path == "/" and s.method == "GET" for s in registry.api_steps())
    handlers: list[Any] = [
        home, flows, flow_node, endpoints, traces, trace_page, trace_waterfall, span_detail, logs, cron,
        cron_run_page, state_page, state_edit, state_delete, emit_page, emit_send, dead_letters_page,
        dead_letter_action, dead_letters_bulk, status_bar, html_stream,
    ]  # fmt: skip
    if not claims_root:
        handlers.append(root)
    return handlers


@get("/", include_in_schema=False)
async def root() -> Redirect:
    return Redirect("/_workbench/")


@get(["/_workbench", "/_workbench/"], include_in_schema=False)
async def home(request: Request[Any, Any, Any]) -> Template:
    runtime = await fresh(request)
    featured = _featured_form(runtime.registry)
    recent, _ = await runtime.store.list_traces(limit=12)
    log_rows, _ = await runtime.store.list_logs(limit=20)
    return _page(
        "home.html", request, "home",
        featured=featured, fields=form_fields(featured) if featured else [], traces=recent, logs=log_rows,
        feed_id=await _feed_position(runtime),
    )  # fmt: skip


@get("/_workbench/flows", include_in_schema=False)
async def flows(request: Request[Any, Any, Any], flow: Text = None) -> Template:
    registry = _rt(request).registry
    names = views.flows_of(registry)
    graphs = [views.layout_flow(registry, name) for name in names if flow is None or name == flow]
    return _page("flows.html", request, "flows", graphs=graphs, flow_names=names, selected=flow)


@get("/_workbench/flows/node/{name:str}", include_in_schema=False)
async def flow_node(request: Request[Any, Any, Any], name: FromPath[str]) -> Template:
    runtime = _rt(request)
    step = runtime.registry.get(name)
    if step is None:
        raise NotFoundException(f"no step {name}")
    runs = []
    found, _ = await runtime.store.list_traces(step=name, limit=20, scan_budget=3000)
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
            "step": step_json(step), "file": shown_file, "source": source, "runs": runs[:20],
            "p50": views.percentile(durations, 50), "p95": views.percentile(durations, 95),
        },
    )  # fmt: skip


@get("/_workbench/endpoints", include_in_schema=False)
async def endpoints(request: Request[Any, Any, Any]) -> Template:
    registry = _rt(request).registry
    rows = []
    for step in registry.api_steps():
        schema = (
            step.body_schema.model_json_schema() if hasattr(step.body_schema, "model_json_schema") else None
        )
        rows.append(
            {"step": step, "schema": schema, "example": example_body(step), "params": step.path_params}
        )
    return _page("endpoints.html", request, "endpoints", endpoints=rows)


@get("/_workbench/traces", include_in_schema=False)
async def traces(
    request: Request[Any, Any, Any],
    status: Status = None,
    step: Text = None,
    q: Text = None,
    cursor: Cursor = None,
) -> Template:
    runtime = await fresh(request)
    rows, nxt = await runtime.store.list_traces(status=status, step=step, q=q, cursor=cursor, limit=50)
    filters = {"status": status or "", "step": step or "", "q": q or ""}
    return _page(
        "traces.html", request, "traces",
        traces=rows, cursor=nxt, filters=filters, steps=[s.name for s in runtime.registry],
        feed_id=await _feed_position(runtime), live=cursor is None,
    )  # fmt: skip


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
    subscribers = {}
    for bar in bars:
        for event in bar.span.get("events", []):
            if event["kind"] == "emit":
                subscribers[event["topic"]] = event.get("subscribers", [])
    return {"trace": trace, "bars": bars, "ticks": ticks, "total": total, "selected": chosen}


@get("/_workbench/traces/{trace_id:str}", include_in_schema=False)
async def trace_page(request: Request[Any, Any, Any], trace_id: FromPath[str], span: Text = None) -> Template:
    runtime = await fresh(request)
    trace = await _trace_or_404(runtime, trace_id)
    return _page(
        "trace.html",
        request,
        "traces",
        feed_id=await _feed_position(runtime),
        **_waterfall_context(trace, span),
    )


@get("/_workbench/traces/{trace_id:str}/waterfall", include_in_schema=False)
async def trace_waterfall(
    request: Request[Any, Any, Any], trace_id: FromPath[str], span: Text = None
) -> Template:
    trace = await _trace_or_404(await fresh(request), trace_id)
    return Template(template_name="partials/waterfall.html", context=_waterfall_context(trace, span))


@get("/_workbench/traces/{trace_id:str}/spans/{span_id:str}", include_in_schema=False)
async def span_detail(
    request: Request[Any, Any, Any], trace_id: FromPath[str], span_id: FromPath[str]
) -> Template:
    trace = await _trace_or_404(_rt(request), trace_id)
    span = next((s for s in trace["spanList"] if s["id"] == span_id), None)
    if span is None:
        raise NotFoundException(f"no span {span_id}")
    return Template(template_name="partials/span_detail.html", context={"trace": trace, "selected": span})


@get("/_workbench/logs", include_in_schema=False)
async def logs(
    request: Request[Any, Any, Any],
    level: Level = None,
    step: Text = None,
    trace_id: Text = None,
    q: Text = None,
    cursor: Cursor = None,
) -> Template:
    runtime = await fresh(request)
    rows, nxt = await runtime.store.list_logs(
        level=level, step=step, trace_id=trace_id, q=q, cursor=cursor, limit=100
    )
    filters = {"level": level or "", "step": step or "", "trace_id": trace_id or "", "q": q or ""}
    return _page(
        "logs.html", request, "logs",
        logs=rows, cursor=nxt, filters=filters, steps=[s.name for s in runtime.registry],
        levels=list(LEVELS), feed_id=await _feed_position(runtime), live=cursor is None, cap=LIVE_ROWS,
    )  # fmt: skip


@get("/_workbench/cron", include_in_schema=False)
async def cron(request: Request[Any, Any, Any]) -> Template:
    runtime = _rt(request)
    rows = []
    for step in runtime.registry.cron_steps():
        row = cron_json(step)
        row["runs"], _ = await runtime.store.list_traces(entry=step.name, limit=5, scan_budget=2000)
        rows.append(row)
    return _page("cron.html", request, "cron", crons=rows)


@post("/_workbench/cron/{step_name:str}/run", include_in_schema=False, status_code=200)
async def cron_run_page(request: Request[Any, Any, Any], step_name: FromPath[str]) -> Template:
    runtime = _rt(request)
    step = runtime.registry.get(step_name)
    if not isinstance(step, CronStep):
        raise NotFoundException(f"no cron step {step_name}")
    trace_id, _ = await runtime.enqueue_step(step, None, label="run now")
    return Template(
        template_name="partials/started.html", context={"trace_id": trace_id, "what": f"{step_name} started"}
    )


@get("/_workbench/state", include_in_schema=False)
async def state_page(request: Request[Any, Any, Any], group: Text = None) -> Template:
    runtime = _rt(request)
    groups = await runtime.state.groups()
    parsed = {}
    for name in groups:
        if group in (None, name):
            values = await runtime.state.get_group(name)
            parsed[name] = dict(sorted(values.items()))
    return _page("state.html", request, "state", groups=groups, values=parsed, selected=group)


@post("/_workbench/state/{group:str}/{key:str}", include_in_schema=False, status_code=200)
async def state_edit(request: Request[Any, Any, Any], group: FromPath[str], key: FromPath[str]) -> Template:
    form = await request.form()
    raw = str(form.get("value", ""))
    try:
        value = json.loads(raw)
    except ValueError as exc:
        return Template(
            template_name="partials/state_row.html",
            context={
                "group": group,
                "key": key,
                "value": None,
                "raw": raw,
                "error": f"Not valid JSON: {exc}",
            },
            status_code=400,
        )
    await _rt(request).state.set(group, key, value)
    return Template(
        template_name="partials/state_row.html", context={"group": group, "key": key, "value": value}
    )


@post("/_workbench/state/{group:str}/{key:str}/delete", include_in_schema=False, status_code=200)
async def state_delete(request: Request[Any, Any, Any], group: FromPath[str], key: FromPath[str]) -> str:
    await _rt(request).state.delete(group, key)
    return ""


@get("/_workbench/emit", include_in_schema=False)
async def emit_page(request: Request[Any, Any, Any], topic: Text = None) -> Template:
    runtime = _rt(request)
    topics = runtime.registry.topics()
    subscribers = {t: [s.name for s in runtime.registry.subscribers_of(t)] for t in topics}
    return _page("emit.html", request, "emit", topics=topics, subscribers=subscribers, selected=topic)


@post("/_workbench/emit", include_in_schema=False, status_code=200)
async def emit_send(request: Request[Any, Any, Any]) -> Template:
    runtime = _rt(request)
    form = await request.form()
    topic = str(form.get("topic", ""))
    if topic not in runtime.registry.topics():
        return Template(
            template_name="partials/error.html",
            context={"error": f"topic: unknown topic {topic!r}"},
            status_code=400,
        )
    try:
        data = json.loads(str(form.get("data") or "null"))
    except ValueError as exc:
        return Template(
            template_name="partials/error.html",
            context={"error": f"payload: not valid JSON ({exc})"},
            status_code=400,
        )
    trace_id, emitted = await runtime.emit_new_trace(topic, data)
    what = f"Emitted {topic} → {', '.join(emitted.subscribers) or 'no subscribers'}"
    return Template(template_name="partials/started.html", context={"trace_id": trace_id, "what": what})


@get("/_workbench/dead-letters", include_in_schema=False)
async def dead_letters_page(request: Request[Any, Any, Any], step: Text = None) -> Template:
    runtime = _rt(request)
    letters = await runtime.dead_letters.list(step=step, limit=200)
    background = [s.name for s in runtime.registry.background_steps()]
    return _page("dead_letters.html", request, "dead", letters=letters, step=step or "", steps=background)


@post("/_workbench/dead-letters/{letter_id:str}/{action:str}", include_in_schema=False, status_code=200)
async def dead_letter_action(
    request: Request[Any, Any, Any], letter_id: FromPath[str], action: FromPath[str]
) -> str:
    letters = _rt(request).dead_letters
    if action == "retry":
        ok = await letters.retry(letter_id) is not None
    elif action == "discard":
        ok = await letters.discard(letter_id)
    else:
        raise HTTPException(status_code=400, detail="action: retry or discard")
    if not ok:
        raise NotFoundException(f"no dead letter {letter_id}")
    return ""


@post("/_workbench/dead-letters-bulk/{action:str}", include_in_schema=False, status_code=200)
async def dead_letters_bulk(
    request: Request[Any, Any, Any], action: FromPath[str], step: Text = None
) -> Response[Any]:
    letters = _rt(request).dead_letters
    if action == "retry":
        await letters.retry_all(step=step)
    elif action == "discard":
        await letters.discard_all(step=step)
    else:
        raise HTTPException(status_code=400, detail="action: retry or discard")
    return Response("", headers={"HX-Refresh": "true"})


@get("/_workbench/status", include_in_schema=False)
async def status_bar(request: Request[Any, Any, Any]) -> Template:
    runtime = _rt(request)
    try:
        await runtime.redis.ping()
        workers = await runtime.workers_alive()
        dead = await runtime.dead_letters.count()
        running, _ = await runtime.store.list_traces(status="running", limit=50, scan_budget=500)
        context = {"redis": True, "workers": workers, "dead": dead, "running": len(running), "reason": ""}
    except Exception as exc:
        context = {
            "redis": False,
            "workers": None,
            "dead": None,
            "running": None,
            "reason": str(exc) or type(exc).__name__,
        }
    return Template(template_name="partials/status.html", context=context)


# --- the HTML stream ------------------------------------------------------------------------------------

_VIEWS = ("traces", "logs", "home", "trace")


def _renderer(scope: Scope, query: dict[str, str]) -> Any:
    engine: JinjaTemplateEngine = scope["app"].template_engine  # type: ignore[assignment]  # set in create_app
    view = query.get("view", "traces")
    trace_row = engine.get_template("partials/trace_row.html")
    log_row = engine.get_template("partials/log_row.html")
    status, step, q = query.get("status"), query.get("step"), (query.get("q") or "").lower()
    level = LEVELS.get(query.get("level", ""), 0)
    trace_filter = query.get("trace_id")

    def trace_ok(data: dict[str, Any]) -> bool:
        if status and data["status"] != status:
            return False
        if step and step not in data["steps"]:
            return False
        text = " ".join(
            str(v) for v in (data["id"], data["entry"], data["label"], data["error"], *data["steps"])
        )
        return not q or q in text.lower()

    def log_ok(data: dict[str, Any]) -> bool:
        if step and data.get("step") != step:
            return False
        if trace_filter and data.get("traceId") != trace_filter:
            return False
        if LEVELS.get(str(data.get("level")), 20) < level:
            return False
        text = (data.get("message", "") + " " + json.dumps(data.get("fields", {}), default=str)).lower()
        return not q or q in text

    def render(record: FeedRecord) -> list[ServerSentEvent]:
        now = now_ms()
        if view == "trace":
            return [ServerSentEvent(data=record.type, event="changed", id=record.id)]
        if record.type == "trace" and view in ("traces", "home") and trace_ok(record.data):
            html = trace_row.render(t=record.data, now=now, compact=view == "home")
            return [ServerSentEvent(data=html, event="trace", id=record.id)]
        if record.type == "log" and view in ("logs", "home") and log_ok(record.data):
            html = log_row.render(line=record.data, compact=view == "home")
            return [ServerSentEvent(data=html, event="log", id=record.id)]
        return []

    return render


@asgi("/_workbench/stream", is_mount=False, include_in_schema=False, copy_scope=True)
async def html_stream(scope: Scope, receive: Receive, send: Send) -> None:
    from urllib.parse import parse_qs

    query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
    view = query.get("view", "traces")
    if view not in _VIEWS:
        from .stream import _bad_request

        await _bad_request(scope, receive, send, f"view: one of {', '.join(_VIEWS)}")
        return
    await serve_feed(
        scope, receive, send, _renderer(scope, query), extra_query=("view", "status", "step", "q", "level")
    )
