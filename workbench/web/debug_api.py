"""The workbench's debugging actions on recorded traces (replay, rerun, re-emit, copy as curl, save as
test): the JSON API under `/_workbench/api/`, and the partials the trace page loads for them.

The logic is in `workbench/replay.py` and `workbench/testing/export.py`; here it meets HTTP: 404 for an
unknown trace, span or emit, 409 for one that cannot be replayed (the reason in `detail`), 400 naming
the field for a bad edit.
"""

from __future__ import annotations

import json
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath
from litestar.response import Template

from .. import replay
from ..replay import MISSING, BadEdit, Refused, Started
from ..testing.export import export_test, test_file_name
from .params import json_body
from .runtime_access import fresh, runtime_of
from .urls import API, BASE


def _started(started: Started) -> dict[str, Any]:
    out: dict[str, Any] = {"traceId": started.trace_id}
    if started.status is not None:
        out.update(status=started.status, response=started.body)
    return out


def _field(body: Any, name: str) -> Any:
    """`body[name]` of an action's JSON body (`{}` or none: MISSING, the recorded value is used)."""
    if body is None:
        return MISSING
    if not isinstance(body, dict):
        raise HTTPException(status_code=400, detail=f'body: expected {{"{name}": ...}} or nothing')
    extra = sorted(set(body) - {name})
    if extra:
        raise HTTPException(status_code=400, detail=f"{extra[0]}: not a field of this action (only {name})")
    return body.get(name, MISSING)


async def _act(action: Any) -> dict[str, Any]:
    try:
        return _started(await action)
    except LookupError as exc:
        raise NotFoundException(str(exc)) from exc
    except BadEdit as exc:
        raise HTTPException(status_code=400, detail=str(exc), extra={"field": exc.field}) from exc
    except Refused as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc


def base_url(request: Request[Any, Any, Any]) -> str:
    """The address the browser reached this process at (what "Copy as curl" sends to)."""
    scheme = request.headers.get("x-forwarded-proto", "").split(",")[0].strip() or request.url.scheme
    return f"{scheme}://{request.headers.get('host') or request.url.netloc}"


class DebugApi(Controller):
    path = API
    include_in_schema = False

    @post("/traces/{trace_id:str}/replay", status_code=202)
    async def replay_trace(self, request: Request[Any, Any, Any], trace_id: FromPath[str]) -> dict[str, Any]:
        edits = await json_body(request, empty=None)
        return await _act(replay.replay(runtime_of(request), request.app, trace_id, edits))

    @post("/traces/{trace_id:str}/spans/{span_id:str}/rerun", status_code=202)
    async def rerun_span(
        self, request: Request[Any, Any, Any], trace_id: FromPath[str], span_id: FromPath[str]
    ) -> dict[str, Any]:
        data = _field(await json_body(request, empty=None), "data")
        return await _act(replay.rerun(runtime_of(request), trace_id, span_id, data))

    @post("/traces/{trace_id:str}/emits/{event_id:str}/reemit", status_code=202)
    async def reemit_event(
        self, request: Request[Any, Any, Any], trace_id: FromPath[str], event_id: FromPath[str]
    ) -> dict[str, Any]:
        payload = _field(await json_body(request, empty=None), "payload")
        return await _act(replay.reemit(runtime_of(request), trace_id, event_id, payload))

    @get("/traces/{trace_id:str}/replays")
    async def trace_replays(self, request: Request[Any, Any, Any], trace_id: FromPath[str]) -> dict[str, Any]:
        runtime = await fresh(request)
        trace = await runtime.store.get_trace(trace_id)
        if trace is None:
            raise NotFoundException(f"no trace {trace_id}")
        return {"replayOf": trace.get("replayOf"), "replays": await replay.replays_of(runtime, trace_id)}

    @get("/traces/{trace_id:str}/curl")
    async def trace_curl(self, request: Request[Any, Any, Any], trace_id: FromPath[str]) -> dict[str, Any]:
        try:
            trace = await replay.load_trace(runtime_of(request), trace_id)
            return {"curl": replay.curl_command(replay.recorded_request(trace), base_url(request))}
        except LookupError as exc:
            raise NotFoundException(str(exc)) from exc
        except Refused as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from exc

    @get("/traces/{trace_id:str}/test")
    async def trace_test_file(
        self, request: Request[Any, Any, Any], trace_id: FromPath[str]
    ) -> Response[str]:
        runtime = runtime_of(request)
        try:
            trace = await replay.load_trace(runtime, trace_id)
            source = await export_test(runtime, trace)
        except LookupError as exc:
            raise NotFoundException(str(exc)) from exc
        except Refused as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from exc
        name = test_file_name(trace)
        return Response(
            source,
            media_type="text/x-python; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )


class DebugPages(Controller):
    """The trace page's debugging panels, loaded into it (htmx) so they can be refreshed on their own."""

    path = BASE
    include_in_schema = False

    @get("/traces/{trace_id:str}/replay-panel")
    async def replay_panel(self, request: Request[Any, Any, Any], trace_id: FromPath[str]) -> Template:
        runtime = await fresh(request)
        try:
            trace = await replay.load_trace(runtime, trace_id)
        except LookupError as exc:
            raise NotFoundException(str(exc)) from exc
        context: dict[str, Any] = {"trace": trace, "replays": await replay.replays_of(runtime, trace_id)}
        if trace.get("kind") == "api":
            try:
                recorded = replay.recorded_request(trace)
            except Refused as exc:
                context["refused"] = str(exc)
            else:
                context["recorded"] = recorded
                context["body_text"] = _editable(recorded.get("body") or "")
                context["headers_text"] = "\n".join(
                    f"{k}: {v}" for k, v in recorded["headers"].items() if k not in replay.NOT_RESENT
                )
                try:
                    context["curl"] = replay.curl_command(recorded, base_url(request))
                except Refused as exc:
                    context["curl_refused"] = str(exc)
                root = replay.root_span(trace) or {}
                context["response"] = (root.get("exchange") or {}).get("response")
        elif trace.get("kind") == "emit":
            root = replay.root_span(trace) or {}
            emit = next((e for e in root.get("events", []) if e["kind"] == "emit"), None)
            if emit is None or emit.get("truncated"):
                context["refused"] = "its payload was not kept whole: replay it from the API with a payload"
            else:
                context["payload_text"] = json.dumps(emit["payload"], indent=2, ensure_ascii=False)
        return Template(template_name="partials/replay_panel.html", context=context)

    @get("/traces/{trace_id:str}/spans/{span_id:str}/rerun-panel")
    async def rerun_panel(
        self, request: Request[Any, Any, Any], trace_id: FromPath[str], span_id: FromPath[str]
    ) -> Template:
        runtime = runtime_of(request)
        try:
            trace = await replay.load_trace(runtime, trace_id)
        except LookupError as exc:
            raise NotFoundException(str(exc)) from exc
        span = next((s for s in trace["spanList"] if s["id"] == span_id), None)
        if span is None:
            raise NotFoundException(f"no span {span_id}")
        data, reason = await replay.span_input(runtime, trace, span)
        text = "" if data is MISSING else json.dumps(data, indent=2, ensure_ascii=False)
        return Template(
            template_name="partials/rerun_panel.html",
            context={"trace": trace, "span": span, "input_text": text, "reason": reason},
        )


def _editable(body: str) -> str:
    """A JSON body pretty-printed for editing (the same JSON); any other text as it is."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body
