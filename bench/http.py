"""Benchmark 5: `POST /pets` under load, the framework vs a bare Litestar app doing the same writes.

Both run on uvicorn with one worker process, paused while the load runs (on a 2-core machine a
busy worker takes a core from the web process: the framework's runs the real pet steps, three jobs
per request, the bare app's are no-op arq functions) and resumed to drain the queue between
rounds. The load is `wrk` (20 connections, one thread) when installed, else an httpx client with
20 concurrent loops. Rounds alternate between the two apps; the median of the rounds is reported,
with the web process's CPU time per request (a number the noise of a shared machine moves less
than req/s).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from workbench.job_queue import QUEUE

from .bare_arq import QUEUE as BARE_QUEUE
from .procs import PET_STEPS, Proc, Stack, wait_until
from .report import Row, median
from .throughput import redis_cpu_s

CONNECTIONS = 20
BODY = '{"name": "Jack", "species": "dog", "ageMonths": 24}'
WRK_SCRIPT = f"""wrk.method = "POST"
wrk.body = '{BODY}'
wrk.headers["Content-Type"] = "application/json"
"""


async def wrk(url: str, seconds: float) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT)
        script.flush()
        args = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency", "-s", script.name, url]
        proc = await asyncio.create_subprocess_exec(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            raw, err = await proc.communicate()
        finally:
            if proc.returncode is None:  # cancelled (Ctrl-C): do not leave wrk running
                proc.kill()
                await proc.wait()
    if proc.returncode:
        raise RuntimeError(f"wrk failed: {err.decode()}")
    out = raw.decode()
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    p50 = re.search(r"50%\s+(\S+)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
    return {
        "requests": total,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "errors": (int(bad.group(1)) if bad else 0) + (sum(map(int, sock.groups())) if sock else 0),
        "latency_p50": p50.group(1) if p50 else None,
        "latency_p99": p99.group(1) if p99 else None,
    }


async def httpx_load(url: str, seconds: float) -> dict[str, Any]:
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=CONNECTIONS)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:

        async def loop() -> None:
            while time.monotonic() < deadline:
                try:
                    r = await client.post(url, content=BODY, headers={"content-type": "application/json"})
                    statuses[r.status_code] += 1
                except httpx.HTTPError:
                    statuses[0] += 1

        t0 = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(CONNECTIONS)))
        elapsed = time.monotonic() - t0
    total = sum(statuses.values())
    return {"requests": total, "rps": total / elapsed, "errors": total - statuses[201]}


async def load(url: str, seconds: float) -> dict[str, Any]:
    if shutil.which("wrk"):
        return await wrk(url, seconds)
    return await httpx_load(url, seconds)


async def measure(
    st: Stack, web: Proc, workers: list[Proc], url: str, queue: str, seconds: float
) -> dict[str, Any]:
    """One round: the load with the worker paused (the web process alone is measured: the pet
    steps' background work is the app's, not the request path's, and the bare worker's jobs do
    nothing), then the worker resumed to drain the queue before the next round."""
    for worker in workers:
        worker.pause()
    await load(url + "/pets", 1)  # warm-up
    cpu0, redis0 = web.cpu_s(), redis_cpu_s(st)
    result = await load(url + "/pets", seconds)
    result["web_cpu_ms_per_req"] = round((web.cpu_s() - cpu0) * 1000 / max(1, result["requests"]), 3)
    result["redis_cpu_ms_per_req"] = round((redis_cpu_s(st) - redis0) * 1000 / max(1, result["requests"]), 3)
    result["backlog_after"] = st.redis.zcard(queue)
    t0 = time.monotonic()
    for worker in workers:
        worker.resume()
    drained = await wait_until(lambda: not st.redis.zcard(queue), 120, 0.1)
    result["drained_s"] = round(time.monotonic() - t0, 1) if drained else None
    if not drained:
        raise RuntimeError(f"the worker did not drain {st.redis.zcard(queue)} jobs in 120 s")
    return result


async def run(quick: bool, logdir: Path) -> list[Row]:
    seconds, rounds = (3, 1) if quick else (10, 2)
    runs: dict[str, list[dict[str, Any]]] = {"framework": [], "bare": []}
    with Stack(logdir, "b5") as fw, Stack(logdir, "b5bare") as bare:
        fw_web, fw_url = fw.web(PET_STEPS)
        fw_workers = fw.workers(PET_STEPS)
        bare_web, bare_url = bare.bare_web()
        bare_workers = bare.bare_workers(poll=0.01)
        for _ in range(rounds):
            runs["framework"].append(await measure(fw, fw_web, fw_workers, fw_url, QUEUE, seconds))
            runs["bare"].append(await measure(bare, bare_web, bare_workers, bare_url, BARE_QUEUE, seconds))
    rps = {k: median([r["rps"] for r in v]) for k, v in runs.items()}
    cpu = {k: median([r["web_cpu_ms_per_req"] for r in v]) for k, v in runs.items()}
    errors = sum(r["errors"] for v in runs.values() for r in v)
    ratio = rps["framework"] / rps["bare"]
    tool = "wrk" if shutil.which("wrk") else "httpx"
    data = {"tool": tool, "seconds": seconds, "connections": CONNECTIONS, "rounds": rounds, "runs": runs}
    return [
        Row("5", f"POST /pets, {CONNECTIONS} connections, {seconds} s ({tool})",
            f"{rps['framework']:.0f} req/s, {errors} errors", f"bare Litestar: {rps['bare']:.0f} req/s",
            f"{ratio:.2f} (target >= 0.7)", ratio >= 0.7 and errors == 0, data),
        Row("5b", "  web CPU per request", f"{cpu['framework']:.2f} ms", f"bare: {cpu['bare']:.2f} ms",
            f"{cpu['bare'] / cpu['framework']:.2f} (info)"),
    ]  # fmt: skip
