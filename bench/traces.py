"""Benchmark 6: the traces list with 100,000 traces stored.

Redis is filled directly through `TraceStore` (open_trace + put_span, 1,000 traces a pipeline)
before the web process starts, then the first page of `GET /_workbench/api/traces?limit=50` and
of the HTML page `GET /_workbench/traces` are timed one request after another.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from workbench.ids import new_id
from workbench.keys import FAILED_INDEXED
from workbench.tracing.records import Span
from workbench.tracing.store import TraceStore

from .procs import BENCH_STEPS, Stack, wait_until
from .report import Row, pct

REQUESTS = 200


async def fill(url: str, n: int) -> float:
    redis = Redis.from_url(url, decode_responses=True)
    store = TraceStore(redis)
    now = int(time.time() * 1000)
    t0 = time.perf_counter()
    try:
        await store.ensure_scripts()  # writes are bare EVALSHAs: the scripts must be loaded first
        for first in range(0, n, 1000):
            async with redis.pipeline(transaction=False) as pipe:
                for i in range(first, min(n, first + 1000)):
                    start = now - (n - i) * 10  # one trace every 10 ms, the newest now
                    trace_id = new_id(start)
                    store.open_trace(pipe, trace_id, start=start, entry="CreatePet", kind="api",
                                     label="POST /pets", open_=1)  # fmt: skip
                    span = Span(id=new_id(start), trace_id=trace_id, step="CreatePet", kind="api",
                                status="completed", started_at=start, finished_at=start + 3,
                                http={"method": "POST", "path": "/pets", "status": 201})  # fmt: skip
                    store.put_span(pipe, span.to_json(), open_delta=-1)
                await pipe.execute()
    finally:
        await redis.aclose()
    return time.perf_counter() - t0


async def timings(client: httpx.AsyncClient, path: str, count: int = REQUESTS) -> dict[str, Any]:
    first = await client.get(path)
    if first.status_code == 404:
        return {"status": 404}
    first.raise_for_status()
    for _ in range(5):
        await client.get(path)  # warm-up
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        response = await client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        response.raise_for_status()
    return {"status": 200, "p50_ms": round(pct(times, 50), 2), "p95_ms": round(pct(times, 95), 2),
            "bytes": len(first.content)}  # fmt: skip


async def run(quick: bool, logdir: Path) -> list[Row]:
    n = 20_000 if quick else 100_000
    with Stack(logdir, "b6") as st:
        fill_s = await fill(st.url, n)
        stored = st.redis.zcard("wb:traces")
        memory = st.used_memory_mb()
        _, url = st.web(BENCH_STEPS, WORKBENCH_RETENTION_TRACES=10 * n)
        # steady state: after the web's one-time pass indexing failed traces stored before it ran
        await wait_until(lambda: st.redis.exists(FAILED_INDEXED), 30, 0.2)
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            api = await timings(client, "/_workbench/api/traces?limit=50")
            rows_returned = len((await client.get("/_workbench/api/traces?limit=50")).json()["traces"])
            failed = await timings(client, "/_workbench/api/traces?limit=50&status=failed", 30)
            search = await timings(client, "/_workbench/api/traces?limit=50&q=no-such-text", 30)
            html = await timings(client, "/_workbench/traces")
    data = {"traces": stored, "fill_s": round(fill_s, 1), "redis_used_memory_mb": round(memory, 1),
            "api": api, "api_rows": rows_returned, "api_status_failed": failed, "api_search": search,
            "html": html}  # fmt: skip
    api_met = api["p95_ms"] <= 100 and rows_returned == 50
    rows = [
        Row("6", f"GET /_workbench/api/traces?limit=50, {stored:,} traces", f"p95 {api['p95_ms']:.1f} ms",
            f"p50 {api['p50_ms']:.1f} ms", "target p95<=100 ms", api_met, data),
        Row("6b", "  same, ?status=failed (its own index; none failed)", f"p95 {failed['p95_ms']:.1f} ms",
            f"p50 {failed['p50_ms']:.1f} ms", "(info)"),
        Row("6d", "  same, ?q=no-such-text (no match: scans its budget)", f"p95 {search['p95_ms']:.1f} ms",
            f"p50 {search['p50_ms']:.1f} ms", "(info)"),
    ]  # fmt: skip
    page = "  GET /_workbench/traces (HTML page, first page)"
    if html["status"] == 404:
        rows.append(Row("6c", page, "n/a (page not built)", "-", "target p95<=100 ms"))
    else:
        rows.append(Row("6c", page, f"p95 {html['p95_ms']:.1f} ms", f"p50 {html['p50_ms']:.1f} ms",
                        "target p95<=100 ms", html["p95_ms"] <= 100))  # fmt: skip
    return rows
