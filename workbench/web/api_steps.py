"""API steps as Litestar routes: each request is the entry point of a new trace."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import msgspec
from litestar import Request, Response, route
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Operation, RequestBody
from litestar.params import JSONBody, QueryParameter
from redis.exceptions import RedisError

from ..http import ApiRequest, as_response
from ..ids import new_id, now_ms
from ..json_values import MAX_DEPTH, UnfitJson, check_value, parse_json
from ..otel import join_trace
from ..replay import capture_request, capture_response
from ..runtime import Runtime, end_span
from ..step_config import ApiStep
from ..tracing.recorder import current_scope
from ..tracing.records import Span, SpanStatus, error_info
from .api_invoke import invoke
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
    return msgspec.to_builtins(parsed)


_BODY_METHODS = ("POST", "PUT", "PATCH")


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def check_json_request(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """A body a step reads as JSON must say it is JSON (415 otherwise: a cross-site form or a
    `text/plain` fetch cannot reach a step without a CORS preflight) and must be JSON the framework
    can store and show (400 otherwise, before Litestar parses it)."""
    if request.method not in _BODY_METHODS:
        return None
    raw = await request.body()  # kept by Litestar for the parse that follows
    if not raw.strip():
        return None
    if not _is_json(request.headers.get("content-type", "")):
        return Response(
            {"error": "content-type: a JSON body needs Content-Type: application/json",
             "fields": [{"field": "content-type", "message": "must be application/json"}]},
            status_code=415,
        )  # fmt: skip
    # most bodies cannot be unfit (fewer brackets than the depth limit, no \u escape), and are not
    # parsed twice: Litestar parses the body itself right after
    if raw.count(b"[") + raw.count(b"{") >= MAX_DEPTH or b"\\u" in raw:
        try:
            parse_json(raw)
        except UnfitJson as exc:
            detail = {"field": "body", "message": str(exc)}
            return Response({"error": str(exc), "fields": [detail]}, status_code=400)
    return None


def _encode(body: Any) -> tuple[bytes | str | None, str | None]:
    """The response body as sent, encoded here (not after the span ended) so that a body JSON cannot
    carry fails the span and answers one clear 500; a str or bytes body is sent as it is."""
    if body is None or isinstance(body, (bytes, str)):
        return body, None
    return _json(body), "application/json"


def _enc_hook(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON")


_json = msgspec.json.Encoder(enc_hook=_enc_hook).encode


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
    exchange_cap = runtime.settings.exchange_cap

    def start_span(request: Request[Any, Any, Any]) -> Span:
        """A new trace with this request's span open in it (the trace's one open span)."""
        started = now_ms()
        http = {"method": request.method, "path": request.url.path}
        joined = join_trace(request.headers.get("traceparent"))  # a W3C caller's trace (see otel.py)
        if joined is None:
            trace_id = runtime.begin_trace(entry=step.name, kind="api", label=label, open_=1)
        else:
            trace_id, http["traceparent"] = joined.trace_id, joined.traceparent
            recorder.open_trace(trace_id, entry=step.name, kind="api", label=label, start=started, open_=1)
        span = Span(
            id=new_id(),
            trace_id=trace_id,
            step=step.name,
            kind="api",
            started_at=started,
            http=http,
        )
        recorder.span(span)
        return span

    def finish(span: Span, http_status: int, error: BaseException | None = None) -> None:
        """The one way a request's span ends: failed on a 5xx (a 5xx counts as the trace's failure
        and error), else completed; `error`, when given, is kept on the span."""
        span.http = {**(span.http or {}), "status": http_status}
        if span.exchange is not None and "response" not in span.exchange:  # no body: an error answer
            span.exchange["response"] = {"status": http_status, "body": "", "bodyCut": None}
        status: SpanStatus = "failed" if http_status >= 500 else "completed"
        end_span(recorder, span, status, error_info(error) if error is not None else None)

    async def call(span: Span, api_request: ApiRequest) -> Response[Any]:
        """Run the handler inside the span; the span ends however the handler does. Its emits leave
        only when it succeeds (a non-5xx answer), together with the span's end, in one round trip."""
        scope = runtime.scope(span)
        scope.outbox = []
        token = current_scope.set(scope)
        try:
            result = as_response(await invoke(step, api_request, runtime.context(step, scope)))
            check_value(result.body, what="response body")
            content, media_type = _encode(result.body)
        except RedisError as exc:
            runtime.drop_outbox(scope)
            finish(span, 503, exc)  # answered 503 by the app's RedisError handler
            raise
        except HTTPException as exc:  # a handler may raise Litestar's own HTTP errors
            runtime.drop_outbox(scope)
            finish(span, exc.status_code)
            raise
        except Exception as exc:
            logging.getLogger(f"steps.{step.name}").exception("Unhandled error in %s", step.name)
            runtime.drop_outbox(scope)
            finish(span, 500, exc)
            return Response(
                {"error": "Internal server error", "step": step.name, "traceId": span.trace_id},
                status_code=500,
                headers={"x-trace-id": span.trace_id},
            )
        finally:
            current_scope.reset(token)
        if result.status >= 500:
            runtime.drop_outbox(scope)
        if span.exchange is not None:  # the answer as sent (already encoded), for replays
            capture_response(span.exchange, result.status, content, exchange_cap)
        finish(span, result.status)
        try:
            await runtime.send_outbox(scope)
        except RedisError as exc:  # its emits could not leave: the client gets the 503 the span says
            span.http = {**(span.http or {}), "status": 503}
            end_span(recorder, span, "failed", error_info(exc), closes=False, final=True,
                     finished_at=span.finished_at)  # fmt: skip
            raise
        return Response(
            content=content,
            status_code=result.status,
            headers={**result.headers, "x-trace-id": span.trace_id},
            media_type=media_type or "application/json",  # Litestar's default, as before
        )

    async def run(request: Request[Any, Any, Any], parsed: Any, has_body: bool) -> Response[Any]:
        if has_body:
            body = _dump(parsed)
        elif request.method in _BODY_METHODS:
            body = await json_body(request)  # checked by check_json_request already
        else:
            body = None
        span = start_span(request)
        if exchange_cap:  # the request as served (its body as read already), for replays
            raw = await request.body() if request.method in _BODY_METHODS else b""
            span.exchange = capture_request(request.scope, raw, exchange_cap)
        return await call(span, _api_request(request, body, parsed))

    if step.body_model is not None:

        async def endpoint_with_body(request: Request[Any, Any, Any], data: Any) -> Response[Any]:
            return await run(request, data, True)

        endpoint_with_body.__annotations__ = {
            "request": Request,
            "data": JSONBody[step.body_model],  # type: ignore[name-defined,misc]  # built at run time
            "return": Response[Any],
        }
        fn: Any = endpoint_with_body
    else:

        async def endpoint(request: Request[Any, Any, Any]) -> Response[Any]:
            return await run(request, None, False)

        fn = endpoint
    fn.__name__ = f"step_{step.name}"
    responses = {  # JSON Schema dicts (Motia's spelling) are checked and shown in the workbench only
        status: ResponseSpec(data_container=schema, description=f"{status} response")
        for status, schema in step.response_schema.items()
        if not isinstance(schema, Mapping)
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
        before_request=check_json_request,
        operation_class=_operation_class(step),
    )(_with_query_params(fn, step))
    return handler


def _operation_class(step: ApiStep) -> type[Operation]:
    """OpenAPI's operation for the step, with the JSON Schema dicts (Motia's spelling) of its body
    and responses put in as they are (Litestar documents classes only)."""
    body = step.body_json_schema
    responses = {
        status: schema for status, schema in step.response_schema.items() if isinstance(schema, Mapping)
    }
    if body is None and not responses:
        return Operation

    @dataclass
    class StepOperation(Operation):
        def __post_init__(self) -> None:
            # the schema dicts are serialised as they are (Litestar's to_schema copies dict values)
            if body is not None and self.request_body is None:
                media = OpenAPIMediaType(schema=cast(Any, dict(body)))
                self.request_body = RequestBody(content={"application/json": media}, required=True)
            if responses:
                known = dict(self.responses or {})
                for status, schema in responses.items():
                    media = OpenAPIMediaType(schema=cast(Any, dict(schema)))
                    known[str(status)] = OpenAPIResponse(
                        description=f"{status} response", content={"application/json": media}
                    )
                self.responses = known

    return StepOperation


def _with_query_params(fn: Any, step: ApiStep) -> Any:
    """Document the step's query parameters in OpenAPI: keyword parameters Litestar reads from the
    query (all optional text; the handler still gets every parameter in `request.query_params`)."""
    if not step.query_params:
        return fn
    taken = set(step.path_params)

    aliases: list[str] = []

    async def with_query(**kwargs: Any) -> Response[Any]:
        for alias in aliases:
            kwargs.pop(alias, None)
        response: Response[Any] = await fn(**kwargs)
        return response

    params = list(inspect.signature(fn).parameters.values())
    annotations = dict(fn.__annotations__)
    for index, name in enumerate(q for q in step.query_params if q not in taken):
        alias = f"query_{index}"
        aliases.append(alias)
        # plain text, optional (not `str | None`: its oneOf schema trips schemathesis's generator)
        default = QueryParameter(
            name=name, default="", required=False, description=step.query_descriptions.get(name)
        )
        params.append(
            inspect.Parameter(alias, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=str)
        )
        annotations[alias] = str
    with_query.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    with_query.__annotations__ = annotations
    with_query.__name__ = fn.__name__
    return with_query
