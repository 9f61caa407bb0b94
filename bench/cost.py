"""Benchmark 8: the cost model. What one traced job and one `POST /pets` cost Redis (commands, bytes
on the wire, Redis CPU) and the worker (CPU), and how throughput grows with 1, 2 and 4 workers.

Redis's own counters are read before and after each phase: `INFO commandstats` (calls per command),
`INFO stats` (`total_net_input_bytes` / `total_net_output_bytes`) and `INFO cpu` (`used_cpu_user` +
`used_cpu_sys`). The benchmark's own traffic inside a phase (the INFO calls, the ZCARD polls that
tell it the queue is empty) goes over a raw connection whose bytes it counts exactly, and is taken
off; with a quiet Redis, what is left is the framework's.

- **Traced no-op job.** n traces of one job each (`Runtime.emit_new_trace`, as bench #2), with the
  worker paused: the enqueue phase is the producer's cost (what an API step's emit adds); then the
  worker is resumed until the queue is empty: the run phase is the worker's (claim, records, ending).
- **`POST /pets`.** n requests to a web process on the pet steps, its worker paused: the request
  phase is the web process's cost; then the worker runs the three jobs each request queued.
- **Throughput.** bench #2's timed run (`throughput.timed_run`) over 1, 2 and 4 worker processes.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from workbench.job_queue import QUEUE
from workbench.registry import discover
from workbench.runtime import Runtime
from workbench.settings import Settings

from .procs import BENCH_STEPS, PET_STEPS, Proc, Stack
from .report import Row, median
from .throughput import CONCURRENCY, enqueue_framework, open_traces, timed_run

PET_BODY = {"name": "Jack", "species": "dog", "ageMonths": 24}


def _resp(*args: str) -> bytes:
    return b"".join([f"*{len(args)}\r\n".encode()] + [f"${len(a)}\r\n{a}\r\n".encode() for a in args])


@dataclass
class Counters:
    calls: dict[str, int]
    net_in: int
    net_out: int
    cpu_s: float


class Meter:
    """Redis's counters over a raw socket, so that the meter's own bytes are known exactly."""

    INFO = _resp("INFO", "all")  # one section per call before Redis 7.2: all holds the three
    ZCARD = _resp("ZCARD", QUEUE)

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("redis://").split("/")[0].split(":")
        self.sock = socket.create_connection((host, int(port)))
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def call(self, request: bytes) -> tuple[bytes, int]:
        """Send one command; its reply's body and its size on the wire."""
        self.sock.sendall(request)
        head = self._line()
        size = len(head) + 2
        if head[:1] == b"$":
            n = int(head[1:])
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(65536)
            body, self.buf = self.buf[:n], self.buf[n + 2 :]
            size += n + 2
        else:
            body = head[1:]
        return body, size

    def read(self) -> tuple[Counters, int]:
        """Redis's counters, and the size of the reply that carried them."""
        raw, size = self.call(self.INFO)
        calls: dict[str, int] = {}
        fields: dict[str, str] = {}
        for line in raw.decode().splitlines():
            if line.startswith("cmdstat_"):
                name, _, rest = line.partition(":")
                calls[name.removeprefix("cmdstat_")] = int(rest.split(",")[0].removeprefix("calls="))
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value
        counters = Counters(
            calls,
            int(fields["total_net_input_bytes"]),
            int(fields["total_net_output_bytes"]),
            float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"]),
        )
        return counters, size


class Phase:
    """Redis's counters from now until `end()`, less the meter's own traffic in between.

    Redis counts a command's request bytes when it reads them (before running it) and its reply's
    when it writes them (after): so the opening INFO's reply and the closing INFO's request fall
    inside the phase, and so does every poll."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.polls = self.polls_in = self.polls_out = 0
        self.start, self.opening_reply = meter.read()

    def queue_size(self) -> int:
        body, size = self.meter.call(Meter.ZCARD)
        self.polls += 1
        self.polls_in += len(Meter.ZCARD)
        self.polls_out += size
        return int(body)

    def wait_empty(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.queue_size():
            if time.monotonic() > deadline:
                raise RuntimeError("the queue did not empty")
            time.sleep(0.005)

    def end(self, per: int) -> dict[str, Any]:
        """Commands, bytes and Redis CPU per unit (`per` units were done in the phase)."""
        end, _ = self.meter.read()
        calls = {k: v - self.start.calls.get(k, 0) for k, v in end.calls.items() if k != "info"}
        calls["zcard"] = calls.get("zcard", 0) - self.polls
        calls = {k: v for k, v in calls.items() if v > 0}
        net_in = end.net_in - self.start.net_in - self.polls_in - len(Meter.INFO)
        net_out = end.net_out - self.start.net_out - self.polls_out - self.opening_reply
        return {
            "commands": round(sum(calls.values()) / per, 2),
            "by_command": {k: round(v / per, 2) for k, v in sorted(calls.items(), key=lambda kv: -kv[1])},
            "bytes_in": round(net_in / per),
            "bytes_out": round(net_out / per),
            "redis_cpu_ms": round((end.cpu_s - self.start.cpu_s) * 1000 / per, 3),
        }


def _median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each number's median over the runs (a command's calls too)."""
    out: dict[str, Any] = {}
    for key in runs[0]:
        if isinstance(runs[0][key], dict):
            out[key] = _median_of([r[key] for r in runs])
        else:
            out[key] = round(median([r.get(key, 0) for r in runs]), 3)
    return out


async def job_cost(st: Stack, meter: Meter, worker: Proc, runtime: Runtime, n: int) -> dict[str, Any]:
    """One round of n traced no-op jobs: the producer's cost, then the worker's."""
    st.redis.flushdb()
    phase = Phase(meter)
    ids = await enqueue_framework(runtime, n)
    enqueue = phase.end(n)
    cpu0 = worker.cpu_s()
    phase = Phase(meter)
    worker.resume()
    phase.wait_empty()
    run = phase.end(n)
    worker.pause()
    cpu = worker.cpu_s() - cpu0
    if open_traces(st, ids):
        raise RuntimeError("traces still open once the queue was empty: the run phase missed records")
    return {"enqueue": enqueue, "run": run, "worker_cpu_ms": round(cpu * 1000 / n, 3)}


async def pets_cost(st: Stack, meter: Meter, web: Proc, url: str, worker: Proc, n: int) -> dict[str, Any]:
    """One round of n `POST /pets` (20 at a time), then the worker running their jobs."""
    st.redis.flushdb()
    web_cpu0 = web.cpu_s()
    phase = Phase(meter)
    statuses: dict[int, int] = {}
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        todo = iter(range(n))

        async def loop() -> None:
            for _ in todo:
                r = await client.post("/pets", json=PET_BODY)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        await asyncio.gather(*(loop() for _ in range(20)))
    request = phase.end(n)
    web_cpu = web.cpu_s() - web_cpu0
    if statuses != {201: n}:
        raise RuntimeError(f"POST /pets answered {statuses}")
    jobs = st.redis.zcard(QUEUE)
    cpu0 = worker.cpu_s()
    phase = Phase(meter)
    worker.resume()
    phase.wait_empty()
    run = phase.end(n)
    worker.pause()
    return {
        "request": request,
        "jobs": run,
        "queued_by_request": round(jobs / n, 2),  # the pet flow queues a third job as it runs
        "web_cpu_ms": round(web_cpu * 1000 / n, 3),
        "worker_cpu_ms": round((worker.cpu_s() - cpu0) * 1000 / n, 3),
    }


def _total(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    return {k: round(a[k] + b[k], 3) for k in ("commands", "bytes_in", "bytes_out", "redis_cpu_ms")}


async def run(quick: bool, logdir: Path) -> list[Row]:
    n, n_pets, rounds = (1000, 300, 1) if quick else (5000, 2000, 3)
    high = {"WORKBENCH_RETENTION_TRACES": 10**7, "WORKBENCH_CONCURRENCY": CONCURRENCY}
    job_runs: list[dict[str, Any]] = []
    pet_runs: list[dict[str, Any]] = []
    scale: dict[int, list[dict[str, float]]] = {1: [], 2: [], 4: []}
    with Stack(logdir, "b8") as st:
        [first] = st.workers(BENCH_STEPS, 1, WORKBENCH_TRACING=1, **high)
        first.pause()
        meter = Meter(st.url)
        base = Settings(redis_url=st.url, steps_dir=BENCH_STEPS, retention_traces=10**7)
        runtime = Runtime(replace(base, tracing=True), discover(BENCH_STEPS))
        await runtime.start()
        try:
            for _ in range(rounds):
                job_runs.append(await job_cost(st, meter, first, runtime, n))
            # throughput: the same jobs over 1, 2 and 4 worker processes, in turns
            more = st.workers(BENCH_STEPS, 3, WORKBENCH_TRACING=1, **high)
            for proc in more:
                proc.pause()
            workers = [first, *more]
            for _ in range(rounds):
                for count in scale:
                    st.redis.flushdb()
                    ids = await enqueue_framework(runtime, n)
                    scale[count].append(timed_run(st, workers[:count], QUEUE, ids))
        finally:
            await runtime.stop()
            meter.close()
    with Stack(logdir, "b8pets") as st:
        web, url = st.web(PET_STEPS)
        [worker] = st.workers(PET_STEPS, 1)
        worker.pause()
        meter = Meter(st.url)
        try:
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:  # warm-up, not counted
                for _ in range(20):
                    (await client.post("/pets", json=PET_BODY)).raise_for_status()
            worker.resume()
            Phase(meter).wait_empty()
            worker.pause()
            for _ in range(rounds):
                pet_runs.append(await pets_cost(st, meter, web, url, worker, n_pets))
        finally:
            meter.close()
    job: dict[str, Any] = {
        "enqueue": _median_of([r["enqueue"] for r in job_runs]),
        "run": _median_of([r["run"] for r in job_runs]),
        "worker_cpu_ms": median([r["worker_cpu_ms"] for r in job_runs]),
    }
    job["total"] = _total(job["enqueue"], job["run"])
    pets: dict[str, Any] = {
        "request": _median_of([r["request"] for r in pet_runs]),
        "jobs": _median_of([r["jobs"] for r in pet_runs]),
        **{k: median([r[k] for r in pet_runs]) for k in ("queued_by_request", "web_cpu_ms", "worker_cpu_ms")},
    }
    pets["total"] = _total(pets["request"], pets["jobs"])
    rate = {c: median([n / r["seconds"] for r in runs]) for c, runs in scale.items()}
    redis_ms = {c: median([r["redis_cpu_s"] * 1000 / n for r in runs]) for c, runs in scale.items()}
    capacity = {
        "traced_jobs_per_s": round(1000 / job["total"]["redis_cpu_ms"]),
        "post_pets_per_s": round(1000 / pets["total"]["redis_cpu_ms"]),
    }
    data: dict[str, Any] = {
        "jobs": n, "requests": n_pets, "rounds": rounds, "job": job, "post_pets": pets,
        "throughput": {"jobs_per_s": {c: round(v) for c, v in rate.items()},
                       "redis_cpu_ms_per_job": {c: round(v, 3) for c, v in redis_ms.items()}, "runs": scale},
        "one_redis_core_carries": capacity, "job_runs": job_runs, "pet_runs": pet_runs,
    }  # fmt: skip
    jt, pt = job["total"], pets["total"]
    return [
        Row("8", "Redis per traced no-op job (enqueue + run)",
            f"{jt['commands']:.1f} commands, {jt['bytes_in'] + jt['bytes_out']:.0f} B, "
            f"{jt['redis_cpu_ms']:.3f} ms Redis CPU",
            f"enqueue {job['enqueue']['commands']:.1f} + run {job['run']['commands']:.1f} cmds", "(info)",
            None, data),
        Row("8b", "  Redis per POST /pets (+ its 3 jobs)",
            f"{pt['commands']:.1f} commands, {pt['bytes_in'] + pt['bytes_out']:.0f} B, "
            f"{pt['redis_cpu_ms']:.3f} ms Redis CPU",
            f"request {pets['request']['commands']:.1f} + jobs {pets['jobs']['commands']:.1f} cmds",
            "(info)"),
        Row("8c", "  worker CPU per job",
            f"no-op {job['worker_cpu_ms']:.2f} ms; per POST /pets {pets['worker_cpu_ms']:.2f} ms",
            f"web per POST /pets: {pets['web_cpu_ms']:.2f} ms", "(info)"),
        Row("8d", "  no-op jobs/s with 1, 2, 4 workers",
            " / ".join(f"{rate[c]:.0f}" for c in scale), f"{os.cpu_count()} CPUs",
            f"{rate[2] / rate[1]:.2f}x, {rate[4] / rate[1]:.2f}x (info)"),
        Row("8e", "  one Redis core at 100% carries",
            f"~{capacity['traced_jobs_per_s']:,} traced jobs/s or "
            f"~{capacity['post_pets_per_s']:,} POST /pets/s",
            "from Redis CPU per unit", "(info)"),
    ]  # fmt: skip
