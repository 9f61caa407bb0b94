"""Benchmark 7: a soak at 200 traces/s with low retention; does memory stay flat?

`POST /bench/soak` at a steady 200 requests/s (each a trace with an API span, one background job
and one log line) with WORKBENCH_RETENTION_TRACES=2000. Every 5 s: Redis `used_memory`, and the
VmRSS of the web and worker processes. "Start" is the first sample once retention is trimming
(a quarter of the way in, at least 20 s, at most half way); memory counts as flat when the end
is within 10% + 2 MB of the start, for all three, with both processes alive throughout (request
errors, e.g. timeouts on an overloaded machine, are reported but do not decide it).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from .procs import BENCH_STEPS, Proc, Stack
from .report import Row

RATE = 200
RETENTION = 2000
SAMPLE_EVERY = 5.0
IN_FLIGHT = 50


def sample(st: Stack, web: Proc, worker: Proc, t: float, sent: int) -> dict[str, float]:
    return {
        "t": round(t, 1),
        "sent": sent,
        "redis_mb": round(st.used_memory_mb(), 2),
        "web_rss_mb": round(web.rss_mb(), 1),
        "worker_rss_mb": round(worker.rss_mb(), 1),
        "traces": st.redis.zcard("wb:traces"),
        "queued": st.redis.zcard("wb:queue"),
        "alive": web.popen.poll() is None and worker.popen.poll() is None,
    }


def flat(start: float, end: float) -> bool:
    return end <= start * 1.10 + 2


async def run(quick: bool, logdir: Path) -> list[Row]:
    duration = 20.0 if quick else 180.0
    with Stack(logdir, "b7") as st:
        web, url = st.web(BENCH_STEPS, WORKBENCH_RETENTION_TRACES=RETENTION)
        worker = st.workers(BENCH_STEPS, WORKBENCH_RETENTION_TRACES=RETENTION)[0]
        samples: list[dict[str, Any]] = []
        counts = {"sent": 0, "ok": 0, "errors": 0, "skipped": 0}
        error_kinds: Counter[str] = Counter()
        slots = asyncio.Semaphore(IN_FLIGHT)
        limits = httpx.Limits(max_connections=IN_FLIGHT)
        async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:

            async def send(n: int) -> None:
                try:
                    response = await client.post("/bench/soak", json={"n": n})
                    counts["ok" if response.status_code == 202 else "errors"] += 1
                    if response.status_code != 202:
                        error_kinds[f"HTTP {response.status_code}"] += 1
                except httpx.HTTPError as exc:
                    counts["errors"] += 1
                    error_kinds[type(exc).__name__] += 1
                finally:
                    slots.release()

            start = time.monotonic()
            next_sample = 0.0
            tasks: set[asyncio.Task[None]] = set()
            for n in range(int(duration * RATE)):
                at = n / RATE
                if at >= next_sample:
                    samples.append(sample(st, web, worker, time.monotonic() - start, counts["sent"]))
                    next_sample += SAMPLE_EVERY
                await asyncio.sleep(max(0.0, start + at - time.monotonic()))
                if slots.locked():  # the server is behind: count it, do not pile up requests
                    counts["skipped"] += 1
                    continue
                await slots.acquire()
                counts["sent"] += 1
                task = asyncio.create_task(send(n))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)
            elapsed = time.monotonic() - start
        samples.append(sample(st, web, worker, elapsed, counts["sent"]))
    warm = min(max(20.0, duration / 4), duration / 2)
    base = next((s for s in samples if s["t"] >= warm), samples[0])
    end = samples[-1]
    keys = ("redis_mb", "web_rss_mb", "worker_rss_mb")
    is_flat = {k: flat(base[k], end[k]) for k in keys}
    achieved = counts["sent"] / duration
    died = next((s["t"] for s in samples if not s["alive"]), None)
    text = ", ".join(
        f"{k.removesuffix('_mb').replace('_rss', '')} {base[k]:.0f}->{end[k]:.0f} MB" for k in keys
    )
    data = {"duration_s": duration, "rate_per_s": RATE, "achieved_per_s": round(achieved, 1),
            "retention_traces": RETENTION, "counts": counts, "start_sample": base, "end_sample": end,
            "flat": is_flat, "error_kinds": error_kinds, "samples": samples}  # fmt: skip
    if counts["errors"]:
        kinds = ", ".join(f"{k} x{v}" for k, v in error_kinds.items())
        text += f"; {counts['errors']} request errors ({kinds})"
    if died is not None:  # a dead process has no RSS: say so instead of reporting memory
        text = f"a process exited at t~{died:.0f} s (see logs); " + text
    return [
        Row("7", f"soak {duration:.0f} s, {RATE} traces/s (sent {achieved:.0f}/s), retention {RETENTION}",
            text, f"at t={base['t']:.0f} s -> t={end['t']:.0f} s", "flat (end <= start*1.1 + 2 MB)",
            all(is_flat.values()) and died is None, data),
    ]  # fmt: skip
