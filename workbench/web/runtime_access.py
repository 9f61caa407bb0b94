"""The process's `Runtime` from inside a route (the app keeps it in `app.state`)."""

from __future__ import annotations

from typing import Any

from litestar import Request

from ..runtime import Runtime


def runtime_of(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def fresh(request: Request[Any, Any, Any]) -> Runtime:
    """The runtime, after this process's buffered records are written: read-your-writes for a
    client that asks for a trace right after the response that started it."""
    runtime = runtime_of(request)
    await runtime.recorder.flush()
    return runtime
