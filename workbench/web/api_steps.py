"""API steps as Litestar routes: each request is the entry point of a new trace."""

from __future__ import annotations

import json
import logging
from typing import Any

from litestar import Request, Response, route
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from redis.exceptions import RedisError

from ..http import ApiRequest, as_response
from ..ids import new_id, now_ms
from ..runtime import Runtime
from ..step_config import ApiStep
from ..tracing.recorder import current_scope
from ..tracing.records import Span, error_info

log = logging.getLogger("workbench.api")


def litestar_path(path: str) -> str:
    """`/pets/{id}` → `/pets/{id:str}`."""
    parts = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}") and ":" not in part:
            part = part[:-1] + ":str}"
        parts.append(part)
    return "/".join(parts)


def _json_body(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(status_code=400, detail=f"Malformed JSON body: {exc}") from exc


def _dump(parsed: Any) -> Any:
    if hasattr(parsed, "model_dump"):
        return parsed.model_dump(mode="json", exclude_unset=True, by_alias=True)
    import msgspec

    return msgspec.to_builtins(parsed)


def build_route(step: ApiStep, runtime: Runtime) -> HTTPRouteHandler:
    async def run(request: Request[Any, Any, Any], parsed: Any, has_body: bool) -> Response[Any]:
        if has_body:
            body = _dump(parsed)
        elif request.method in ("POST", "PUT", "PATCH"):
            body = _json_body(await request.body())
        else:
            body = None
        started = now_ms()
        trace_id = runtime.begin_trace(
            entry=step.name, kind="api", label=f"{step.method} {step.path}", open_=1
        )
        span = Span(
            id=new_id(),
            trace_id=trace_id,
            step=step.name,
            kind="api",
            started_at=started,
            http={"method": request.method, "path": request.url.path},
        )
        runtime.recorder.span(span)
        scope = runtime.scope(span)
        token = current_scope.set(scope)
        api_request = ApiRequest(
            method=request.method,
            path=request.url.path,
            body=body,
            path_params={k: str(v) for k, v in request.path_params.items()},
            query_params=dict(request.query_params),
            headers=dict(request.headers),
            parsed=parsed,
        )
        try:
            result = as_response(await step.handler(api_request, runtime.context(step, scope)))  # type: ignore[misc]
        except RedisError as exc:
            span.status, span.finished_at, span.error = "failed", now_ms(), error_info(exc)
            span.http = {**(span.http or {}), "status": 503}
            runtime.recorder.span(span, open_delta=-1, failed_delta=1, error_delta=1)
            raise
        except HTTPException as exc:  # a handler may raise Litestar's own HTTP errors
            failed = 1 if exc.status_code >= 500 else 0
            span.status, span.finished_at = ("failed" if failed else "completed"), now_ms()
            span.http = {**(span.http or {}), "status": exc.status_code}
            runtime.recorder.span(span, open_delta=-1, failed_delta=failed, error_delta=failed)
            raise
        except Exception as exc:
            logging.getLogger(f"steps.{step.name}").exception("Unhandled error in %s", step.name)
            span.status, span.finished_at, span.error = "failed", now_ms(), error_info(exc)
            span.http = {**(span.http or {}), "status": 500}
            runtime.recorder.span(span, open_delta=-1, failed_delta=1, error_delta=1)
            return Response(
                {"error": "Internal server error", "step": step.name, "traceId": trace_id},
                status_code=500,
                headers={"x-trace-id": trace_id},
            )
        finally:
            current_scope.reset(token)
        span.finished_at = now_ms()
        span.status = "failed" if result.status >= 500 else "completed"
        span.http = {**(span.http or {}), "status": result.status}
        failed = 1 if result.status >= 500 else 0
        runtime.recorder.span(span, open_delta=-1, failed_delta=failed, error_delta=failed)
        return Response(
            content=result.body, status_code=result.status, headers={**result.headers, "x-trace-id": trace_id}
        )

    if step.body_schema is not None:

        async def endpoint_with_body(request: Request[Any, Any, Any], data: Any) -> Response[Any]:
            return await run(request, data, True)

        endpoint_with_body.__annotations__ = {
            "request": Request,
            "data": JSONBody[step.body_schema],  # type: ignore[name-defined,misc]  # built at run time
            "return": Response[Any],
        }
        fn: Any = endpoint_with_body
    else:

        async def endpoint(request: Request[Any, Any, Any]) -> Response[Any]:
            return await run(request, None, False)

        fn = endpoint
    fn.__name__ = f"step_{step.name}"
    responses = {
        status: ResponseSpec(data_container=schema, description=f"{status} response")
        for status, schema in step.response_schema.items()
    }
    handler: HTTPRouteHandler = route(
        litestar_path(step.path),
        http_method=[step.method],  # type: ignore[list-item]  # validated in steps.py
        name=f"step:{step.name}",
        summary=step.name,
        description=step.description or None,
        tags=list(step.flows) or ["steps"],
        responses=responses or None,
        status_code=next(iter(sorted(step.response_schema)), 200),
        operation_id=step.name,
    )(fn)
    return handler
