"""Benchmark 1: from the API response to the start of the event handler it emitted to.

The client sends `POST /bench/latency` at a steady rate and notes (wall clock) when each response
arrived; the event step notes when its handler started. The baseline is plain arq with its default
0.5 s poll: the client enqueues the same pattern and notes when `enqueue_job` returned.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from arq.connections import RedisSettings, create_pool

from .procs import BENCH_STEPS, Stack, wait_until
from .report import Row, summary_ms

RATE = 100  # per second


async def paced(n: int, send: Callable[[int], Awaitable[None]]) -> None:
    """Call `send(seq)` for seq in 0..n-1 at RATE per second, each in its own task."""
    start = time.monotonic()
    tasks = []
    for seq in range(n):
        await asyncio.sleep(max(0.0, start + seq / RATE - time.monotonic()))
        tasks.append(asyncio.create_task(send(seq)))
    await asyncio.gather(*tasks)


async def wait_for_hash(st: Stack, key: str, n: int) -> dict[int, float]:
    await wait_until(lambda: st.redis.hlen(key) >= n, 30)
    return {int(k): float(json.loads(v)) for k, v in st.redis.hgetall(key).items()}


async def framework(st: Stack, url: str, n: int) -> dict[str, object]:
    arrived: dict[int, float] = {}
    emitted: dict[int, float] = {}
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:

        async def send(seq: int) -> None:
            response = await client.post("/bench/latency", json={"seq": seq})
            arrived[seq] = time.time()
            response.raise_for_status()
            emitted[seq] = response.json()["emitted"]

        for seq in range(-20, 0):  # warm-up, not counted
            await send(seq)
        await paced(n, send)
    started = await wait_for_hash(st, "wb:state:bench-latency", n + 20)
    done = [s for s in range(n) if s in started]
    return {
        "response_to_start": summary_ms([started[s] - arrived[s] for s in done]),
        "emit_to_start": summary_ms([started[s] - emitted[s] for s in done]),
        "lost": n - len(done),
    }


async def bare(st: Stack, n: int) -> dict[str, object]:
    pool = await create_pool(RedisSettings.from_dsn(st.url))
    enqueued: dict[int, float] = {}

    async def send(seq: int) -> None:
        await pool.enqueue_job("latency", seq)
        enqueued[seq] = time.time()

    try:
        await paced(n, send)
    finally:
        await pool.aclose()
    started = await wait_for_hash(st, "bench:bare-latency", n)
    done = [s for s in range(n) if s in started]
    return {"enqueue_to_start": summary_ms([started[s] - enqueued[s] for s in done]), "lost": n - len(done)}


async def run(quick: bool, logdir: Path) -> list[Row]:
    n = 200 if quick else 1000
    with Stack(logdir, "b1") as st:
        _, url = st.web(BENCH_STEPS)
        st.workers(BENCH_STEPS)
        fw = await framework(st, url, n)
        st.bare_workers(poll=0.5)
        base = await bare(st, n)
    ours, theirs = fw["response_to_start"], base["enqueue_to_start"]
    assert isinstance(ours, dict) and isinstance(theirs, dict)
    met = ours["p50_ms"] <= 5 and ours["p99_ms"] <= 25 and fw["lost"] == 0
    return [
        Row(
            "1",
            f"API response -> event handler start ({n:,} at {RATE}/s)",
            f"p50 {ours['p50_ms']:.1f} ms, p99 {ours['p99_ms']:.1f} ms",
            f"bare arq (poll 0.5 s): p50 {theirs['p50_ms']:.0f} ms, p99 {theirs['p99_ms']:.0f} ms",
            f"bare +{theirs['p50_ms'] - ours['p50_ms']:.0f} ms at p50; target p50<=5, p99<=25 ms",
            met,
            {"framework": fw, "bare_arq_poll_0.5": base, "events": n, "rate_per_s": RATE},
        )
    ]
