"""Benchmarks 2 and 3: how fast queued no-op jobs are run.

For each configuration, its workers are started, left idle until ready and then paused (SIGSTOP);
the jobs are enqueued; the clock starts when the workers are resumed (SIGCONT) and stops when the
queue is empty and, with tracing on, every trace is closed (its records written). So process start
and enqueueing are not timed. Configurations are measured in turns, round after round, on one
Redis (flushed before each measurement), and the median of the rounds is reported.

- bare: plain arq, 20 jobs at once, poll_delay 0 (arq sleeps poll_delay between batches; 0 is its
  best case for a full queue, see README)
- on1 / off1: one framework worker (concurrency 20), tracing on / off (WORKBENCH_TRACING)
- on2: two framework workers, tracing on
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from arq.connections import RedisSettings, create_pool

from workbench.job_queue import QUEUE
from workbench.registry import discover
from workbench.runtime import Runtime
from workbench.settings import Settings

from .bare_arq import QUEUE as BARE_QUEUE
from .procs import BENCH_STEPS, Proc, Stack
from .report import Row, median

CONCURRENCY = 20


async def enqueue_framework(runtime: Runtime, n: int) -> list[str]:
    """n traces, each an emit to the no-op step: one job each (the framework's own enqueue)."""
    ids: list[str] = []
    for first in range(0, n, 100):
        batch = range(first, min(n, first + 100))
        done = await asyncio.gather(*(runtime.emit_new_trace("bench.noop", {"i": i}) for i in batch))
        ids += [trace_id for trace_id, _ in done]
    return ids


async def enqueue_bare(url: str, n: int) -> None:
    pool = await create_pool(RedisSettings.from_dsn(url))
    try:
        for first in range(0, n, 100):
            await asyncio.gather(*(pool.enqueue_job("noop") for _ in range(first, min(n, first + 100))))
    finally:
        await pool.aclose()


def open_traces(st: Stack, trace_ids: list[str]) -> int:
    pipe = st.redis.pipeline(transaction=False)
    for trace_id in trace_ids:
        pipe.hget("wb:trace:" + trace_id, "open")
    return sum(int(v or 0) for v in pipe.execute())


def redis_cpu_s(st: Stack) -> float:
    info = st.redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def timed_run(st: Stack, procs: list[Proc], queue: str, trace_ids: list[str]) -> dict[str, float]:
    """Resume the workers, wait until the work is done, pause them again."""
    cpu0, rcpu0 = sum(p.cpu_s() for p in procs), redis_cpu_s(st)
    t0 = time.perf_counter()
    for proc in procs:
        proc.resume()
    while st.redis.zcard(queue):
        time.sleep(0.005)
    queue_empty = time.perf_counter() - t0
    while trace_ids and open_traces(st, trace_ids):
        time.sleep(0.02)
    done = time.perf_counter() - t0
    for proc in procs:
        proc.pause()
    return {
        "seconds": round(done, 3),
        "queue_empty_s": round(queue_empty, 3),
        "worker_cpu_s": round(sum(p.cpu_s() for p in procs) - cpu0, 2),
        "redis_cpu_s": round(redis_cpu_s(st) - rcpu0, 2),
    }


async def run(quick: bool, logdir: Path, which: set[str]) -> list[Row]:
    n, rounds = (1000, 1) if quick else (5000, 5)
    configs = (["bare", "on1", "off1"] if "2" in which else []) + (["on2"] if "3" in which else [])
    configs = list(dict.fromkeys(configs or ["on1"]))
    if "on1" not in configs:
        configs.append("on1")
    results: dict[str, list[dict[str, float]]] = {c: [] for c in configs}
    with Stack(logdir, "b23") as st:
        high = {"WORKBENCH_RETENTION_TRACES": 10**7, "WORKBENCH_CONCURRENCY": CONCURRENCY}
        groups: dict[str, list[Proc]] = {}
        if "bare" in configs:
            groups["bare"] = st.bare_workers(1, poll=0, concurrency=CONCURRENCY)
        on = st.workers(BENCH_STEPS, 2 if "on2" in configs else 1, WORKBENCH_TRACING=1, **high)
        groups["on1"], groups["on2"] = on[:1], on
        if "off1" in configs:
            groups["off1"] = st.workers(BENCH_STEPS, 1, WORKBENCH_TRACING=0, **high)
        for proc in {p for procs in groups.values() for p in procs}:
            proc.pause()
        registry = discover(BENCH_STEPS)
        base = Settings(redis_url=st.url, steps_dir=BENCH_STEPS, retention_traces=10**7)
        runtimes = {tracing: Runtime(replace(base, tracing=tracing), registry) for tracing in (True, False)}
        for runtime in runtimes.values():
            await runtime.start()
        try:
            for _ in range(rounds):
                for config in configs:
                    st.redis.flushdb()
                    if config == "bare":
                        await enqueue_bare(st.url, n)
                        results[config].append(timed_run(st, groups[config], BARE_QUEUE, []))
                    else:
                        tracing = config != "off1"
                        ids = await enqueue_framework(runtimes[tracing], n)
                        results[config].append(timed_run(st, groups[config], QUEUE, ids if tracing else []))
        finally:
            for runtime in runtimes.values():
                await runtime.stop()
    rate = {c: median([n / r["seconds"] for r in runs]) for c, runs in results.items()}
    data: dict[str, Any] = {"jobs": n, "rounds": rounds, "concurrency": CONCURRENCY, "runs": results}
    data["jobs_per_s"] = {c: round(v) for c, v in rate.items()}
    rows = []
    if "2" in which:
        on_bare, off_bare, on_off = (
            rate["on1"] / rate["bare"],
            rate["off1"] / rate["bare"],
            rate["on1"] / rate["off1"],
        )
        bare_text = f"bare arq: {rate['bare']:.0f} jobs/s"
        rows += [
            Row("2", f"{n:,} no-op jobs, 1 worker, tracing on", f"{rate['on1']:.0f} jobs/s", bare_text,
                f"{on_bare:.2f} (target >= 0.8)", on_bare >= 0.8, data),
            Row("2b", "  same, tracing off", f"{rate['off1']:.0f} jobs/s", bare_text,
                f"{off_bare:.2f} (info)"),
            Row("2c", "  tracing on / tracing off", f"{on_off:.2f}", f"off: {rate['off1']:.0f} jobs/s",
                f"{on_off:.2f} (info)"),
        ]  # fmt: skip
    if "3" in which:
        scale = rate["on2"] / rate["on1"]
        rows.append(
            Row("3", f"{n:,} no-op jobs, 2 workers vs 1 (tracing on)", f"{rate['on2']:.0f} jobs/s",
                f"1 worker: {rate['on1']:.0f} jobs/s", f"{scale:.2f} (target >= 1.5)", scale >= 1.5,
                data if "2" not in which else {"see": "row 2"})
        )  # fmt: skip
    return rows
