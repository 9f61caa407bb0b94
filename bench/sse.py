"""Benchmark 4: from a worker's log call to its receipt by SSE clients of the live feed.

Ten clients hold `GET /_workbench/api/stream?types=log` open; a worker step logs at 100 lines/s,
each line carrying `sent=time.time()` in its fields; each client notes when each line arrived.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx

from .procs import BENCH_STEPS, Stack, wait_until
from .report import Row, summary_ms

CLIENTS = 10
RATE = 100


async def reader(
    client: httpx.AsyncClient, got: dict[str, list[tuple[int, float]]], ready: asyncio.Event
) -> None:
    async with client.stream("GET", "/_workbench/api/stream", params={"types": "log"}) as response:
        response.raise_for_status()
        ready.set()
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                now = time.time()
                fields = json.loads(line[5:]).get("fields", {})
                got.setdefault(str(fields.get("run")), []).append((fields["seq"], now - fields["sent"]))


async def burst(
    client: httpx.AsyncClient, run: str, count: int, got: list[dict[str, list[tuple[int, float]]]]
) -> None:
    """Have the worker log `count` lines; wait until every client has them (or a timeout)."""
    body = {"topic": "bench.logs", "data": {"run": run, "count": count, "rate": RATE}}
    headers = {"x-workbench": "1"}  # workbench actions need it (workbench/web/guard.py)
    (await client.post("/_workbench/api/emit", json=body, headers=headers)).raise_for_status()
    await wait_until(lambda: all(len(g.get(run, ())) >= count for g in got), count / RATE + 15, 0.1)


async def run(quick: bool, logdir: Path) -> list[Row]:
    count = 300 if quick else 1000
    with Stack(logdir, "b4") as st:
        _, url = st.web(BENCH_STEPS)
        st.workers(BENCH_STEPS)
        got: list[dict[str, list[tuple[int, float]]]] = [{} for _ in range(CLIENTS)]
        limits = httpx.Limits(max_connections=CLIENTS + 5)
        async with httpx.AsyncClient(
            base_url=url, timeout=httpx.Timeout(10, read=None), limits=limits
        ) as client:
            ready = [asyncio.Event() for _ in range(CLIENTS)]
            tasks = [asyncio.create_task(reader(client, got[i], ready[i])) for i in range(CLIENTS)]
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 15)
            await burst(client, "warmup", 20, got)  # every client is subscribed and warm
            await burst(client, "main", count, got)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    delays = [d for g in got for _, d in g.get("main", [])]
    lost = CLIENTS * count - len(delays)
    stats = summary_ms(delays)
    met = stats["p99_ms"] <= 50 and lost == 0
    return [
        Row(
            "4",
            f"worker log -> SSE receipt ({CLIENTS} clients, {count:,} logs at {RATE}/s)",
            f"p50 {stats['p50_ms']:.1f} ms, p99 {stats['p99_ms']:.1f} ms"
            + (f", {lost} lost" if lost else ""),
            "-",
            "target p99<=50 ms",
            met,
            {"latency": stats, "clients": CLIENTS, "logs": count, "rate_per_s": RATE, "lost": lost},
        )
    ]
