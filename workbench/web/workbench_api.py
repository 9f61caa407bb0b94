"""The workbench's JSON API under `/_workbench/api/`: the registry, traces, logs, state, cron,
emits and dead letters. Bad query parameters get 400 naming the parameter."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath, FromQuery, QueryParameter

from ..ids import now_ms
from ..job_queue import queue_stats
from ..runtime import Runtime
from ..step_config import CronStep, Step

Limit = Annotated[int, QueryParameter(ge=1, le=500)]
Cursor = Annotated[str | None, QueryParameter(max_length=200, pattern=r"^[0-9A-Za-z:\-]*$")]
Text = Annotated[str | None, QueryParameter(max_length=200)]
Millis = Annotated[int | None, QueryParameter(ge=0)]


def step_json(step: Step) -> dict[str, Any]:
    return step.describe()


def cron_json(step: CronStep) -> dict[str, Any]:
    assert step.schedule is not None
    nxt = step.schedule.next_after(datetime.now(step.schedule.zone))
    return {
        "step": step.name,
        "cron": step.cron,
        "description": step.schedule.describe(),
        "timezone": str(step.schedule.zone),
        "next": int(nxt.timestamp() * 1000),
        "nextText": nxt.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def fresh(request: Request[Any, Any, Any]) -> Runtime:
    """The runtime, after this process's buffered records are written: read-your-writes for a
    client that asks for a trace right after the response that started it."""
    runtime = _runtime(request)
    await runtime.recorder.flush()
    return runtime


async def _json_body(request: Request[Any, Any, Any]) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=f"Malformed JSON body: {exc}") from exc


class WorkbenchApi(Controller):
    path = "/_workbench/api"
    include_in_schema = False

    @get("/steps")
    async def steps(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        return {"steps": [step_json(s) for s in _runtime(request).registry]}

    @get("/health")
    async def health(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        runtime = _runtime(request)
        process = {"sseClients": len(request.app.state.feed.subscribers), "tasks": len(asyncio.all_tasks())}
        try:
            await runtime.redis.ping()
            workers = await runtime.workers_alive()
            stats = await queue_stats(runtime.redis)
            dead = await runtime.dead_letters.count()
            return {"redis": "ok", "workers": workers, "queue": stats, "deadLetters": dead, "web": process}
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            return {"redis": "unreachable", "reason": reason, "workers": None, "web": process}

    @get("/traces")
    async def traces(
        self,
        request: Request[Any, Any, Any],
        status: FromQuery[Literal["running", "completed", "failed"] | None] = None,
        step: Text = None,
        entry: Text = None,
        q: Text = None,
        since: Millis = None,
        until: Millis = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> dict[str, Any]:
        if cursor and ":" not in cursor:
            raise HTTPException(status_code=400, detail="cursor: not a cursor returned by this API")
        rows, nxt = await (await fresh(request)).store.list_traces(
            status=status, step=step, entry=entry, q=q, since=since, until=until, limit=limit, cursor=cursor
        )
        return {"traces": rows, "cursor": nxt}

    @get("/traces/{trace_id:str}")
    async def trace(self, request: Request[Any, Any, Any], trace_id: FromPath[str]) -> dict[str, Any]:
        trace = await (await fresh(request)).store.get_trace(trace_id)
        if trace is None:
            raise NotFoundException(f"no trace {trace_id}")
        return trace

    @get("/logs")
    async def logs(
        self,
        request: Request[Any, Any, Any],
        trace_id: Text = None,
        step: Text = None,
        level: FromQuery[Literal["debug", "info", "warning", "error", "critical"] | None] = None,
        q: Text = None,
        limit: Limit = 100,
        cursor: Cursor = None,
    ) -> dict[str, Any]:
        rows, nxt = await (await fresh(request)).store.list_logs(
            trace_id=trace_id, step=step, level=level, q=q, limit=limit, cursor=cursor
        )
        return {"logs": rows, "cursor": nxt}

    @get("/state")
    async def state(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        runtime = _runtime(request)
        groups = {}
        for group in await runtime.state.groups():
            groups[group] = await runtime.state.get_group(group)
        return {"groups": groups}

    @post("/state/{group:str}/{key:str}", status_code=200)
    async def state_set(
        self, request: Request[Any, Any, Any], group: FromPath[str], key: FromPath[str]
    ) -> dict[str, Any]:
        body = await _json_body(request)
        if not isinstance(body, dict) or "value" not in body:
            raise HTTPException(status_code=400, detail='value: the body must be {"value": <any JSON>}')
        await _runtime(request).state.set(group, key, body["value"])
        return {"group": group, "key": key, "value": body["value"]}

    @post("/state/{group:str}/{key:str}/delete", status_code=200)
    async def state_delete(
        self, request: Request[Any, Any, Any], group: FromPath[str], key: FromPath[str]
    ) -> dict[str, Any]:
        deleted = await _runtime(request).state.delete(group, key)
        if not deleted:
            raise NotFoundException(f"no key {key!r} in group {group!r}")
        return {"deleted": True}

    @get("/cron")
    async def cron(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        runtime = _runtime(request)
        out = []
        for step in runtime.registry.cron_steps():
            row = cron_json(step)
            runs, _ = await runtime.store.list_traces(entry=step.name, limit=5, scan_budget=2000)
            row["runs"] = runs
            out.append(row)
        return {"cron": out}

    @post("/cron/{step_name:str}/run", status_code=202)
    async def cron_run(self, request: Request[Any, Any, Any], step_name: FromPath[str]) -> dict[str, Any]:
        runtime = _runtime(request)
        step = runtime.registry.get(step_name)
        if not isinstance(step, CronStep):
            raise NotFoundException(f"no cron step named {step_name!r}")
        trace_id, job_id = await runtime.enqueue_step(step, None, label="run now")
        return {"traceId": trace_id, "jobId": job_id}

    @post("/emit", status_code=202)
    async def emit(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        runtime = _runtime(request)
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise HTTPException(status_code=400, detail='body: expected {"topic": ..., "data": ...}')
        topic = body.get("topic")
        if not isinstance(topic, str) or not topic:
            raise HTTPException(status_code=400, detail="topic: required, a string")
        if topic not in runtime.registry.topics():
            raise HTTPException(status_code=400, detail=f"topic: no step emits or subscribes to {topic!r}")
        trace_id, emitted = await runtime.emit_new_trace(topic, body.get("data"))
        return {"traceId": trace_id, "subscribers": emitted.subscribers}

    @get("/dead-letters")
    async def dead_letters(
        self, request: Request[Any, Any, Any], step: Text = None, limit: Limit = 100
    ) -> dict[str, Any]:
        return {"deadLetters": await _runtime(request).dead_letters.list(step=step, limit=limit)}

    @post("/dead-letters/{letter_id:str}/retry", status_code=202)
    async def dead_letter_retry(
        self, request: Request[Any, Any, Any], letter_id: FromPath[str]
    ) -> dict[str, Any]:
        job_id = await _runtime(request).dead_letters.retry(letter_id)
        if job_id is None:
            raise NotFoundException(f"no dead letter {letter_id}")
        return {"jobId": job_id}

    @post("/dead-letters/{letter_id:str}/discard", status_code=200)
    async def dead_letter_discard(
        self, request: Request[Any, Any, Any], letter_id: FromPath[str]
    ) -> dict[str, Any]:
        if not await _runtime(request).dead_letters.discard(letter_id):
            raise NotFoundException(f"no dead letter {letter_id}")
        return {"discarded": 1}

    @post("/dead-letters/retry-all", status_code=202)
    async def dead_letters_retry_all(
        self, request: Request[Any, Any, Any], step: Text = None
    ) -> dict[str, Any]:
        return {"retried": await _runtime(request).dead_letters.retry_all(step=step)}

    @post("/dead-letters/discard-all", status_code=200)
    async def dead_letters_discard_all(
        self, request: Request[Any, Any, Any], step: Text = None
    ) -> dict[str, Any]:
        return {"discarded": await _runtime(request).dead_letters.discard_all(step=step)}

    @get("/time")
    async def time(self) -> dict[str, int]:
        return {"now": now_ms()}
