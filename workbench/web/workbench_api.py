"""The workbench's JSON API under `/_workbench/api/`: the registry, traces, logs, state, cron,
emits and dead letters. Bad query parameters get 400 naming the parameter."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Controller, Request, get, post
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath

from ..ids import now_ms
from ..job_queue import queue_stats
from ..json_values import UnfitJson, check_value
from ..runtime import RetryRefused
from ..step_config import CronStep
from ..worker import workers_alive
from .params import Level, Limit, LogCursor, Millis, Status, Text, TraceCursor, json_body
from .runtime_access import fresh, runtime_of
from .serializers import cron_json, step_json
from .urls import API


class WorkbenchApi(Controller):
    path = API
    include_in_schema = False

    @get("/steps")
    async def steps(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        return {"steps": [step_json(s) for s in runtime_of(request).registry]}

    @get("/health")
    async def health(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        runtime = runtime_of(request)
        process = {"sseClients": len(request.app.state.feed.subscribers), "tasks": len(asyncio.all_tasks())}
        try:
            await runtime.redis.ping()
            workers = await workers_alive(runtime.redis)
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
        status: Status = None,
        step: Text = None,
        entry: Text = None,
        q: Text = None,
        since: Millis = None,
        until: Millis = None,
        limit: Limit = 50,
        cursor: TraceCursor = None,
    ) -> dict[str, Any]:
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
        level: Level = None,
        q: Text = None,
        limit: Limit = 100,
        cursor: LogCursor = None,
    ) -> dict[str, Any]:
        rows, nxt = await (await fresh(request)).store.list_logs(
            trace_id=trace_id, step=step, level=level, q=q, limit=limit, cursor=cursor
        )
        return {"logs": rows, "cursor": nxt}

    @get("/state")
    async def state(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        """Every group's values; a stored value that cannot be shown is left out and named in `errors`."""
        runtime = runtime_of(request)
        groups: dict[str, dict[str, Any]] = {}
        errors: dict[str, dict[str, str]] = {}
        for group in await runtime.state.groups():
            groups[group] = {}
            for key, value in (await runtime.state.get_group(group)).items():
                try:
                    groups[group][key] = check_value(value)
                except UnfitJson as exc:
                    errors.setdefault(group, {})[key] = str(exc)
        return {"groups": groups, "errors": errors}

    @get("/state/changes")
    async def state_changes(
        self, request: Request[Any, Any, Any], group: Text = None, key: Text = None
    ) -> dict[str, Any]:
        """The spans that last changed a key, newest first (`gone`: retention has removed its trace)."""
        if not group or not key:
            raise HTTPException(status_code=400, detail="group, key: both are required")
        changes = await runtime_of(request).state.changed_by(group, [key], limit=10)
        return {"group": group, "key": key, "changes": changes[key]}

    # the group and the key travel in the body, never in the path: a key may hold `/`, `?` or `#`
    @post("/state/set", status_code=200)
    async def state_set(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        body = await json_body(request, empty={})
        group, key = _group_and_key(body)
        if "value" not in body:
            raise HTTPException(status_code=400, detail='value: the body must be {"group", "key", "value"}')
        await runtime_of(request).state.set(group, key, body["value"])
        return {"group": group, "key": key, "value": body["value"]}

    @post("/state/delete", status_code=200)
    async def state_delete(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        group, key = _group_and_key(await json_body(request, empty={}))
        if not await runtime_of(request).state.delete(group, key):
            raise NotFoundException(f"no key {key!r} in group {group!r}")
        return {"deleted": True}

    @get("/cron")
    async def cron(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        runtime = runtime_of(request)
        out = []
        for step in runtime.registry.cron_steps():
            row = cron_json(step)
            runs, _ = await runtime.store.list_traces(entry=step.name, limit=5, scan_budget=2000)
            row["runs"] = runs
            out.append(row)
        return {"cron": out}

    @post("/cron/{step_name:str}/run", status_code=202)
    async def cron_run(self, request: Request[Any, Any, Any], step_name: FromPath[str]) -> dict[str, Any]:
        runtime = runtime_of(request)
        step = runtime.registry.get(step_name)
        if not isinstance(step, CronStep):
            raise NotFoundException(f"no cron step named {step_name!r}")
        trace_id, job_id = await runtime.enqueue_step(step, None, label="run now")
        return {"traceId": trace_id, "jobId": job_id}

    @post("/emit", status_code=202)
    async def emit(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        runtime = runtime_of(request)
        body = await json_body(request, empty={})
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
        return {"deadLetters": await runtime_of(request).dead_letters.list(step=step, limit=limit)}

    @post("/dead-letters/{letter_id:str}/retry", status_code=202)
    async def dead_letter_retry(
        self, request: Request[Any, Any, Any], letter_id: FromPath[str]
    ) -> dict[str, Any]:
        try:
            job_id = await runtime_of(request).retry_dead_letter(letter_id)
        except LookupError as exc:
            raise NotFoundException(str(exc)) from exc
        except RetryRefused as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from exc
        return {"jobId": job_id}

    @post("/dead-letters/{letter_id:str}/discard", status_code=200)
    async def dead_letter_discard(
        self, request: Request[Any, Any, Any], letter_id: FromPath[str]
    ) -> dict[str, Any]:
        if not await runtime_of(request).dead_letters.discard(letter_id):
            raise NotFoundException(f"no dead letter {letter_id}")
        return {"discarded": 1}

    @post("/dead-letters/retry-all", status_code=202)
    async def dead_letters_retry_all(
        self, request: Request[Any, Any, Any], step: Text = None
    ) -> dict[str, Any]:
        retried, kept = await runtime_of(request).retry_dead_letters(step=step)
        return {"retried": retried, "kept": kept}

    @post("/dead-letters/discard-all", status_code=200)
    async def dead_letters_discard_all(
        self, request: Request[Any, Any, Any], step: Text = None
    ) -> dict[str, Any]:
        return {"discarded": await runtime_of(request).dead_letters.discard_all(step=step)}

    @get("/time")
    async def time(self) -> dict[str, int]:
        return {"now": now_ms()}


def _group_and_key(body: Any) -> tuple[str, str]:
    if not isinstance(body, dict):
        raise HTTPException(status_code=400, detail='body: expected {"group": ..., "key": ...}')
    for name in ("group", "key"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise HTTPException(status_code=400, detail=f"{name}: required, a non-empty string")
    return body["group"], body["key"]
