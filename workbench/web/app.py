"""`create_app`: the Litestar application of a web process (a factory, never a module global)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from litestar import Litestar, Request, Response
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, NotFoundException
from litestar.handlers import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.static_files import create_static_files_router
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..registry import Registry
from ..runtime import Runtime
from ..settings import Settings
from ..tracing.feed import FeedHub
from ..ui_files import ui_dir
from .api_options import options_routes
from .api_steps import build_route
from .debug_api import DebugApi, DebugPages
from .guard import guard_middleware
from .health import health_routes
from .metrics_route import metrics_routes
from .stream import stream
from .urls import STATIC
from .workbench_api import WorkbenchApi

log = logging.getLogger("workbench.web")


def redis_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """503, naming the real cause: a Redis out of memory refuses writes; one that is away answers nothing."""
    if isinstance(exc, OutOfMemoryError) or (isinstance(exc, ResponseError) and "OOM" in str(exc)):
        cause = "is out of memory (maxmemory reached): it refuses writes until memory is freed"
    elif isinstance(exc, (RedisConnectionError, ConnectionError, RedisTimeoutError, OSError)):
        cause = "cannot be reached"
    else:
        cause = f"answered an error ({type(exc).__name__})"
    log.warning("%s %s: Redis %s: %s", request.method, request.url.path, cause, exc)
    return Response(
        {"error": f"Service unavailable: the data store (Redis) {cause}; try again shortly."},
        status_code=503,
        headers={"retry-after": "1"},
    )


def client_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """4xx answers of the steps' API share the steps' own error shape, `{"error": ...}`, naming the
    fields at fault; the workbench's routes keep Litestar's `{"status_code", "detail"}`."""
    headers = dict(exc.headers or {})
    if request.url.path.startswith("/_workbench"):
        body: dict[str, Any] = {"status_code": exc.status_code, "detail": exc.detail}
        if exc.extra:
            body["extra"] = exc.extra
        return Response(body, status_code=exc.status_code, headers=headers)
    fields = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            key = str(item.get("key", ""))
            field = "body" if key == "data" else key
            message = str(item.get("message", ""))
            fields.append({"field": field, "message": "required" if message == f"'{key}'" else message})
    error = "; ".join(f"{f['field']}: {f['message']}" for f in fields) if fields else exc.detail
    return Response({"error": error, "fields": fields}, status_code=exc.status_code, headers=headers)


def plain_file_names(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A static file's name has no NUL or control characters (the OS refuses them: a 500 before)."""
    if any(ord(c) < 32 for c in connection.url.path):
        raise NotFoundException()


def static_not_found(request: Request[Any, Any, Any], exc: NotFoundException) -> Response[Any]:
    """A missing static file is a plain 404 that says nothing of where the files are."""
    return Response({"status_code": 404, "detail": "Not Found"}, status_code=404)


def create_app(settings: Settings, registry: Registry, runtime: Runtime | None = None) -> Litestar:
    runtime = runtime or Runtime(settings, registry)
    feed = FeedHub(runtime.redis)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.shutdown = anyio.Event()
        await runtime.start()
        await feed.start()
        try:
            yield
        finally:
            app.state.shutdown.set()
            await feed.stop()
            await runtime.stop()

    api_steps = registry.api_steps()
    # the paths' OPTIONS first: Litestar then makes none of its own (see api_options)
    route_handlers: list[Any] = [*options_routes(api_steps), *(build_route(s, runtime) for s in api_steps)]
    route_handlers += [*health_routes, *metrics_routes(runtime, feed)]  # /healthz, /readyz, /metrics
    if settings.workbench_enabled:
        from .compare_page import CompareApi, ComparePage
        from .pages import page_handlers
        from .templating import template_config

        route_handlers += [WorkbenchApi, stream, *page_handlers(registry), ComparePage, CompareApi]
        route_handlers += [DebugApi, DebugPages]  # replay, rerun, re-emit, curl, save as test
        from .queues_page import QueuesApi, QueuesPage

        route_handlers += [QueuesPage, QueuesApi]  # queues: pause, resume, purge; cancel a job or trace
        route_handlers.append(
            create_static_files_router(
                path=STATIC,
                directories=[ui_dir("static")],
                include_in_schema=False,
                guards=[plain_file_names],
                exception_handlers={NotFoundException: static_not_found},
            )
        )
        templates = template_config(ui_dir("templates"))
    else:
        templates = None

    app = Litestar(
        route_handlers=route_handlers,
        lifespan=[lifespan],
        exception_handlers={
            RedisError: redis_unavailable,
            ConnectionError: redis_unavailable,
            HTTPException: client_error,
        },
        openapi_config=OpenAPIConfig(
            title=f"{settings.app_name} API",
            version="1.0.0",
            path="/schema",
            render_plugins=[JsonRenderPlugin()],
        ),
        template_config=templates,
        middleware=[guard_middleware(settings.workbench_token, allowed_hosts=settings.allowed_hosts)],
        request_max_body_size=settings.max_body_bytes,
        debug=False,
        logging_config=None,
    )
    app.state.runtime = runtime
    app.state.feed = feed
    app.state.settings = settings
    return app
