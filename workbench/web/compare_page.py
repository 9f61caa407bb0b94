"""Comparing two traces: the page `/_workbench/compare?a=…&b=…` and its JSON at
`/_workbench/api/compare?a=…&b=…` (the logic is `tracing/compare.py`).

Traces of different entries may be compared (spans are matched by step name all the same): the
page says so at the top, the JSON has `sameEntry: false`. An id that names no trace is a 404
naming the parameter; a missing one is a 400, except on the page, where a missing `b` lists the
recent traces of `a`'s entry to pick from.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.exceptions import HTTPException, NotFoundException
from litestar.response import Template

from ..ids import now_ms
from ..runtime import Runtime
from ..tracing.compare import compare_traces
from .params import Text
from .runtime_access import fresh
from .urls import API, BASE

PICK_TRACES = 20  # recent traces of the same entry offered to compare with


async def _trace(runtime: Runtime, name: str, trace_id: str | None) -> dict[str, Any]:
    if not trace_id:
        raise HTTPException(status_code=400, detail=f"{name}: required, a trace id")
    trace = await runtime.store.get_trace(trace_id)
    if trace is None:
        raise NotFoundException(f"{name}: no trace {trace_id}")
    return trace


class ComparePage(Controller):
    path = BASE
    include_in_schema = False

    @get("/compare")
    async def compare(self, request: Request[Any, Any, Any], a: Text = None, b: Text = None) -> Template:
        runtime = await fresh(request)
        trace_a = await _trace(runtime, "a", a)
        context: dict[str, Any] = {
            "active": "traces",
            "app_name": runtime.settings.app_name,
            "mode": runtime.settings.mode,
            "now": now_ms(),
            "a": trace_a,
        }
        if not b:  # pick the other one: recent traces of the same entry
            found, _ = await runtime.store.list_traces(
                entry=trace_a["entry"], limit=PICK_TRACES + 1, scan_budget=2000
            )
            context["candidates"] = [t for t in found if t["id"] != trace_a["id"]][:PICK_TRACES]
            return Template(template_name="compare.html", context=context)
        trace_b = await _trace(runtime, "b", b)
        context["cmp"] = compare_traces(trace_a, trace_b)
        return Template(template_name="compare.html", context=context)


class CompareApi(Controller):
    path = API
    include_in_schema = False

    @get("/compare")
    async def compare_json(
        self, request: Request[Any, Any, Any], a: Text = None, b: Text = None
    ) -> dict[str, Any]:
        runtime = await fresh(request)
        trace_a = await _trace(runtime, "a", a)
        trace_b = await _trace(runtime, "b", b)
        return compare_traces(trace_a, trace_b).to_json()
