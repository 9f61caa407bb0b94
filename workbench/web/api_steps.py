"""API steps as Litestar routes: each request is the entry point of a new trace."""

from __future__ import annotations

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
from .params import json_body

log = logging.getLogger("workbench.api")


def litestar_path(path: str) -> str:
    """`/pets/{id}` → `/pets/{id:str}`."""
    parts = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}") and ":" not in part:
            part = part[:-1] + ":str}"
        parts.append(part)
    return "/".join(parts)


def _dump(parsed: Any) -> Any:
    if hasattr(parsed, "model_dump"):
        return parsed.model_dump(mode="json", exclude_unset=True, by_alias=True)
    import msgspec

    return msgspec.to_builtins(parsed)


def _api_request(request: Request[Any, Any, Any], body: Any, parsed: Any) -> ApiRequest:
    return ApiRequest(
        method=request.method,
        path=request.url.path,
        body=body,
        path_params={k: str(v) for k, v in request.path_params.items()},
        query_params=dict(request.query_params),
        headers=dict(request.headers),
        parsed=parsed,
    )


def build_route(step: ApiStep, runtime: Runtime) -> HTTPRouteHandler:
    recorder = runtime.recorder
    label = f"{step.method} {step.path}"

    def start_span(request: Request[Any, Any, Any]) -> Span:
        """A new trace with this request's span open in it (the trace's one open span)."""
        started = now_ms()
        trace_id = runtime.begin_trace(entry=step.name, kind="api", label=label, open_=1)
        span = Span(
            id=new_id(),
            trace_id=trace_id,
            step=step.name,
            kind="api",
            started_at=started,
            http={"method": request.method, "path": request.url.path},
        )
        recorder.span(span)
        return span

    def finish(span: Span, http_status: int, error: BaseException | None = None) -> None:
        """The one way a request's span ends: failed on a 5xx (a 5xx counts as the trace's failure
        and error), else completed; `error`, when given, is kept on the span."""
        failed = 1 if http_status >= 500 else 0
        span.status = "failed" if failed else "completed"
        span.finished_at = now_ms()
        if error is not None:
            span.error = error_info(error)
        span.http = {**(span.http or {}), "status": http_status}
        recorder.span(span, open_delta=-1, failed_delta=failed, error_delta=failed)

    async def call(span: Span, api_request: ApiRequest) -> Response[Any]:
        """Run the handler inside the span; the span ends however the handler does."""
        scope = runtime.scope(span)
        token = current_scope.set(scope)
        try:
            result = as_response(await step.handler(api_request, runtime.context(step, scope)))  # type: ignore[misc]
        except RedisError as exc:
            finish(span, 503, exc)  # answered 503 by the app's RedisError handler
            raise
        except HTTPException as exc:  # a handler may raise Litestar's own HTTP errors
            finish(span, exc.status_code)
            raise
        except Exception as exc:
            logging.getLogger(f"steps.{step.name}").exception("Unhandled error in %s", step.name)
            finish(span, 500, exc)
            return Response(
                {"error": "Internal server error", "step": step.name, "traceId": span.trace_id},
                status_code=500,
                headers={"x-trace-id": span.trace_id},
            )
        finally:
            current_scope.reset(token)
        finish(span, result.status)
        return Response(
            content=result.body,
            status_code=result.status,
            headers={**result.headers, "x-trace-id": span.trace_id},
        )

    async def run(request: Request[Any, Any, Any], parsed: Any, has_body: bool) -> Response[Any]:
        if has_body:
            body = _dump(parsed)
        elif request.method in ("POST", "PUT", "PATCH"):
            body = await json_body(request)
        else:
            body = None
        span = start_span(request)
        return await call(span, _api_request(request, body, parsed))

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
