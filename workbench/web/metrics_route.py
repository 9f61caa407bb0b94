"""`GET /metrics`: the web process's Prometheus metrics (see `workbench.metrics`).

Behind `WORKBENCH_TOKEN` when one is set (`guard.PROTECTED` includes `/metrics`: a scraper sends
`Authorization: Bearer <token>`), open otherwise, like the workbench itself.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from prometheus_client import Gauge

from ..metrics import CONTENT_TYPE, Metrics
from ..runtime import Runtime
from ..tracing.feed import FeedHub

PATH = "/metrics"


def metrics_routes(runtime: Runtime, feed: FeedHub) -> list[Any]:
    """The `/metrics` route of one app, counting what `runtime` runs (a registry per app)."""
    metrics = Metrics()
    metrics.watch(runtime.recorder)
    Gauge(
        "workbench_sse_clients",
        "Open live-stream (SSE) clients of this web process",
        registry=metrics.registry,
    ).set_function(lambda: len(feed.subscribers))

    @get(PATH, include_in_schema=False)
    async def scrape(request: Request[Any, Any, Any]) -> Response[bytes]:
        await metrics.refresh(runtime.redis)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    return [scrape]
