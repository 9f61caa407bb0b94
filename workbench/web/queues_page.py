"""The queues page `/_workbench/queues` and its JSON API: per background step what waits, runs and
failed, pause / resume / purge; and the cancel actions (a job, a whole trace) that the trace page's
buttons and `workbench cancel` use (the logic is `queue_control.py` and `cancel.py`).

Actions answer JSON (the CLI, scripts) with `HX-Refresh`, so an htmx button reloads its page. A step
that is not a background step, or a job / trace with nothing to cancel, is a 404 naming it; a purge
without `confirm` repeating the step's name is a 400.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath
from litestar.response import Template

from ..cancel import Cancelled, NothingToCancel, cancel_job, cancel_trace
from ..ids import now_ms
from ..queue_control import UnknownStep, pause, paused_steps, purge, queue_overview, resume
from ..runtime import Runtime
from .params import Text
from .runtime_access import fresh, runtime_of
from .urls import API, BASE

REFRESH = {"HX-Refresh": "true"}


def _step_or_404(exc: UnknownStep) -> NotFoundException:
    return NotFoundException(f"step: {exc}")


async def overview_json(runtime: Runtime) -> dict[str, Any]:
    rows = await queue_overview(runtime)
    return {"queues": [row.to_json() for row in rows], "at": now_ms()}


def _answer(result: Cancelled) -> Response[Any]:
    """200 once everything asked is cancelled or had finished; 202 while a worker has yet to stop one."""
    return Response(
        result.to_json(), status_code=202 if result.counts()["requested"] else 200, headers=REFRESH
    )


class QueuesPage(Controller):
    path = BASE
    include_in_schema = False

    @get("/queues")
    async def queues(self, request: Request[Any, Any, Any]) -> Template:
        runtime = await fresh(request)
        context = {
            "active": "queues",
            "app_name": runtime.settings.app_name,
            "mode": runtime.settings.mode,
            "now": now_ms(),
            "rows": await queue_overview(runtime),
        }
        return Template(template_name="queues.html", context=context)

    @get("/queues/paused")
    async def paused_badge(self, request: Request[Any, Any, Any]) -> Template:
        """The header's paused steps (a block of its own beside the status dots)."""
        paused = await paused_steps(runtime_of(request).redis)
        return Template(template_name="partials/paused.html", context={"paused": sorted(paused)})


class QueuesApi(Controller):
    path = API
    include_in_schema = False  # the workbench's own API, not the steps' (schema/openapi.json)

    @get("/queues")
    async def queues_json(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        return await overview_json(runtime_of(request))

    @post("/queues/{step:str}/pause", status_code=200)
    async def pause_step(self, request: Request[Any, Any, Any], step: FromPath[str]) -> Response[Any]:
        try:
            changed = await pause(runtime_of(request), step)
        except UnknownStep as exc:
            raise _step_or_404(exc) from exc
        return Response({"step": step, "paused": True, "changed": changed}, headers=REFRESH)

    @post("/queues/{step:str}/resume", status_code=200)
    async def resume_step(self, request: Request[Any, Any, Any], step: FromPath[str]) -> Response[Any]:
        try:
            changed, moved = await resume(runtime_of(request), step)
        except UnknownStep as exc:
            raise _step_or_404(exc) from exc
        return Response(
            {"step": step, "paused": False, "changed": changed, "requeued": moved}, headers=REFRESH
        )

    @post("/queues/{step:str}/purge", status_code=200)
    async def purge_step(
        self, request: Request[Any, Any, Any], step: FromPath[str], confirm: Text = None
    ) -> Response[Any]:
        if confirm != step:
            raise HTTPException(
                status_code=400, detail=f"confirm: must repeat the step's name ({step!r}) to purge it"
            )
        try:
            purged = await purge(runtime_of(request), step)
        except UnknownStep as exc:
            raise _step_or_404(exc) from exc
        return Response({"step": step, "purged": purged}, headers=REFRESH)

    @post("/jobs/{job_id:str}/cancel", status_code=200)
    async def cancel_job_route(self, request: Request[Any, Any, Any], job_id: FromPath[str]) -> Response[Any]:
        try:
            result = await cancel_job(runtime_of(request), job_id)
        except NothingToCancel as exc:
            raise NotFoundException(f"job: {exc}") from exc
        return Response(
            result.to_json(), status_code=202 if result.counts()["requested"] else 200, headers=REFRESH
        )

    @post("/traces/{trace_id:str}/cancel", status_code=200)
    async def cancel_trace_route(
        self, request: Request[Any, Any, Any], trace_id: FromPath[str]
    ) -> Response[Any]:
        try:
            result = await cancel_trace(runtime_of(request), trace_id)
        except NothingToCancel as exc:
            raise NotFoundException(f"trace: {exc}") from exc
        return Response(
            result.to_json(), status_code=202 if result.counts()["requested"] else 200, headers=REFRESH
        )
