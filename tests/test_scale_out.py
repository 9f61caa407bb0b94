"""Scale-out (issue 15, item 5): two web processes (`workbench start`) and three workers
(`workbench worker`) on one Redis, as deployed, under a few thousand requests spread over both web
processes, with one worker SIGKILLed mid-load.

What it shows, each from what the handlers and the store recorded (not from the framework's word):
- every job ran exactly once (a per-job counter the handlers increment, and one completed span);
  the jobs the killed worker held run again once its leases expire: a `lost` span, then a
  completed one;
- every cron tick ran once: the 1-second ticks form an unbroken series and no tick ran twice
  across the three workers;
- an SSE client on each web process received every record of every trace, compared with the store.

`-s` prints the figures (requests, req/s, jobs, time to drain, time to recover after the kill).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis as SyncRedis

from workbench.job_queue import payload_of
from workbench.redis_server import free_port, wait_for_port
from workbench.tracing.records import trace_from_hash

from .conftest import Proc, spawn, wait_until, write_step

REQUESTS = 2400
CONNECTIONS = 16  # keep-alive connections, half to each web process
LEASE_S = 2.0
TOKEN = "scale-out-test-token-0123456789"

PLACE = """
from workbench import ApiResponse

config = {"type": "api", "name": "PlaceOrder", "method": "POST", "path": "/orders",
          "emits": ["order.placed"], "flows": ["scale"]}


async def handler(request, ctx):
    order = request.body["id"]
    ctx.logger.info("order placed", order=order)
    await ctx.emit("order.placed", {"id": order, "s": request.body.get("s", 0.02)})
    return ApiResponse(201, {"id": order, "traceId": ctx.trace_id})
"""

# 20 ms, and every 10th order 0.5 s: long enough that a worker killed under load is seen to hold jobs
# that are running (their `running` span in the store) when the SIGKILL lands
PACK = """
import asyncio

config = {"type": "event", "name": "Pack", "subscribes": ["order.placed"], "emits": ["order.packed"],
          "flows": ["scale"]}


async def handler(data, ctx):
    await ctx.state.increment("pack-runs", data["id"])
    await asyncio.sleep(data["s"])
    ctx.logger.info("packed", order=data["id"])
    await ctx.emit("order.packed", {"id": data["id"]})
"""

SHIP = """
config = {"type": "event", "name": "Ship", "subscribes": ["order.packed"], "flows": ["scale"]}


async def handler(data, ctx):
    await ctx.state.increment("ship-runs", data["id"])
"""

TICK = """
config = {"type": "cron", "name": "Tick", "cron": "* * * * * *", "flows": ["scale"]}


async def handler(ctx):
    await ctx.state.increment("tick-runs", ctx.trace_id)
"""


# --- an SSE client ---------------------------------------------------------------------------------


@dataclass
class SseClient:
    """Reads `/_workbench/api/stream` of one web process in a thread, keeping every record by trace."""

    url: str
    events: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    spans: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: defaultdict(dict))
    traces: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: int = 0
    last_id: str = ""
    connected: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> SseClient:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        # Last-Event-ID 0-0: everything since the stream began, then live (the stream's own resume,
        # so the records written before this client subscribed are not a race)
        headers = {"authorization": f"Bearer {TOKEN}", "last-event-id": "0-0"}
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(10, read=None)) as client,
                client.stream("GET", self.url + "/_workbench/api/stream", headers=headers) as response,
            ):
                response.raise_for_status()
                kind, data, entry = "", "", ""
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith(":"):
                        self.connected.set()
                    elif line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:"):
                        data = line[5:].strip()
                    elif line.startswith("id:"):
                        entry = line[3:].strip()
                    elif line == "" and data:
                        self._keep(kind, json.loads(data))
                        self.last_id = entry
                        kind, data, entry = "", "", ""
        except BaseException as exc:  # surfaced by the test
            if not self._stop.is_set():
                self.error = exc

    def _keep(self, kind: str, record: dict[str, Any]) -> None:
        self.records += 1
        if kind == "trace":
            self.traces[record["id"]] = record
        elif kind == "span":
            self.spans[record["traceId"]][record["id"]] = record  # the last put of each span
        else:
            self.events[record["traceId"]].append(record)

    def stop(self) -> None:
        self._stop.set()


def stream_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


# --- the load ---------------------------------------------------------------------------------------


async def post_orders(
    url: str, orders: Iterator[int], accepted: dict[str, str], statuses: dict[int, int]
) -> int:
    """POST /orders on one keep-alive connection until `orders` runs out; returns how many. Plain
    HTTP/1.1 over asyncio streams: httpx's own CPU per request in this process held the load to
    ~160 req/s, below what the two web processes serve."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    sent = 0
    try:
        for i in orders:
            await asyncio.sleep(0)  # a close the web process sent while this loop was busy arrives
            if reader.at_eof():  # it closed the idle keep-alive connection (5 s): as any client, reconnect
                writer.close()
                reader, writer = await asyncio.open_connection(host, int(port))
            body = json.dumps({"id": f"o{i}", "s": 0.5 if i % 10 == 0 else 0.02}).encode()
            writer.write(
                f"POST /orders HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\n\r\n".encode()
                + body
            )
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                message = f"o{i}: {url} closed the connection without an answer ({exc!r})"
                raise AssertionError(message) from exc
            status = int(head.split(b" ", 2)[1])
            length = re.search(rb"(?im)^content-length: *(\d+)", head)
            assert length, head
            answer = await reader.readexactly(int(length.group(1)))
            statuses[status] += 1
            sent += 1
            if status == 201:
                accepted[f"o{i}"] = json.loads(answer)["traceId"]
    finally:
        writer.close()
    return sent


async def load(
    urls: list[str],
    orders: Iterator[int],
    accepted: dict[str, str],
    statuses: dict[int, int],
    per_web: list[int],
) -> None:
    counts = await asyncio.gather(
        *(post_orders(urls[n % 2], orders, accepted, statuses) for n in range(CONNECTIONS))
    )
    for n, count in enumerate(counts):
        per_web[n % 2] += count


# --- the processes ---------------------------------------------------------------------------------


@dataclass
class Deployment:
    webs: list[tuple[Proc, str]]
    workers: list[Proc]

    def all(self) -> list[Proc]:
        return [p for p, _ in self.webs] + self.workers


@pytest.fixture
def deployment(redis_url: str, tmp_path: Path, sync_redis: SyncRedis) -> Iterator[Deployment]:
    steps = tmp_path / "steps"
    for name, source in {"place": PLACE, "pack": PACK, "ship": SHIP, "tick": TICK}.items():
        write_step(steps, name, source)
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "WORKBENCH_STEPS": str(steps),
        "WORKBENCH_UI": "1",  # production `start`, its workbench (the stream) behind the token
        "WORKBENCH_TOKEN": TOKEN,
        "WORKBENCH_LEASE": str(LEASE_S),
        "WORKBENCH_GRACE": "5",
        # keep every record and trace of the run: the SSE clients are compared with the store
        "WORKBENCH_FEED_MAXLEN": "1000000",
        "WORKBENCH_FEED_MAX_BYTES": "0",
        "WORKBENCH_RETENTION_TRACES": "1000000",
        "PYTHONUNBUFFERED": "1",
    }
    ports = [free_port(), free_port()]
    webs = [
        (spawn(["start", "--port", str(port)], env, tmp_path / f"web{i}.log"), f"http://127.0.0.1:{port}")
        for i, port in enumerate(ports)
    ]
    workers = [spawn(["worker"], env, tmp_path / f"worker{i}.log") for i in range(3)]
    dep = Deployment(webs, workers)
    try:
        for (proc, _), port in zip(webs, ports, strict=True):
            assert wait_for_port("127.0.0.1", port, 30), proc.output()[-3000:]
        wait_until(lambda: sync_redis.zcard("wb:workers") == 3, 30, message="three workers' heartbeats")
        yield dep
    finally:
        for proc in dep.all():
            proc.stop(signal.SIGKILL)


# --- reading the store -----------------------------------------------------------------------------


def job_runs(spans: dict[str, dict[str, Any]]) -> dict[str, list[tuple[int, str]]]:
    """Background spans of one trace by job id: [(run number, status)] in run order."""
    runs: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for span_id, span in spans.items():
        if span["jobId"]:
            job, _, run = span_id.rpartition(":")
            runs[job].append((int(run), span["status"]))
    return {job: sorted(r) for job, r in runs.items()}


def read_store(client: SyncRedis, trace_ids: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for first in range(0, len(trace_ids), 500):
        chunk = trace_ids[first : first + 500]
        pipe = client.pipeline(transaction=False)
        for tid in chunk:
            pipe.hgetall(f"wb:trace:{tid}")
            pipe.hgetall(f"wb:spans:{tid}")
            pipe.lrange(f"wb:events:{tid}", 0, -1)
        answers = pipe.execute()
        for i, tid in enumerate(chunk):
            summary, spans, events = answers[3 * i : 3 * i + 3]
            out[tid] = {
                "trace": trace_from_hash(summary),
                "spans": {k: json.loads(v) for k, v in spans.items()},
                "events": [json.loads(e) for e in events],
            }
    return out


def victim_running(client: SyncRedis, prefix: str) -> dict[str, tuple[str, int]]:
    """Jobs the worker whose lease token starts with `prefix` holds, with their trace and run
    number, among those whose `running` span is already in the store."""
    held: dict[str, tuple[str, int]] = {}
    for key in client.scan_iter("arq:in-progress:*", count=1000):
        if (client.get(key) or "").startswith(prefix):
            job = key.removeprefix("arq:in-progress:")
            raw = client.get(f"arq:job:{job}")
            run = client.get(f"arq:retry:{job}")
            if raw is None or run is None:
                continue
            trace = payload_of(raw.encode())["traceId"]
            span = client.hget(f"wb:spans:{trace}", f"{job}:{run}")
            if span and json.loads(span)["status"] == "running":
                held[job] = (trace, int(run))
    return held


def leases_of(client: SyncRedis, prefix: str) -> set[str]:
    return {
        key.removeprefix("arq:in-progress:")
        for key in client.scan_iter("arq:in-progress:*", count=1000)
        if (client.get(key) or "").startswith(prefix)
    }


def stuck(client: SyncRedis, trace_ids: list[str]) -> str:
    """What the traces still open are waiting for: their spans, and each job's place in the queue."""
    lines = []
    for tid in trace_ids:
        if int(client.hget(f"wb:trace:{tid}", "open") or 0) == 0:
            continue
        spans = {k: json.loads(v) for k, v in client.hgetall(f"wb:spans:{tid}").items()}
        jobs = {s["jobId"] for s in spans.values() if s["jobId"]}
        where = {
            job: {
                "queued": client.zscore("wb:queue", job),
                "lease": client.get(f"arq:in-progress:{job}"),
                "runs": client.get(f"arq:retry:{job}"),
            }
            for job in jobs
        }
        runs = {k: (v["step"], v["status"]) for k, v in spans.items()}
        gone = [
            k for k, v in spans.items()
            if v["status"] == "running" and v["jobId"] and not any(where[v["jobId"]].values())
        ]  # fmt: skip
        why = (
            f" (spans {gone} stay running, their job ended: its end was written before the span's end, "
            "and the worker died in between)"
            if gone
            else ""
        )
        lines.append(f"{tid}: open={client.hget(f'wb:trace:{tid}', 'open')} spans={runs} jobs={where}{why}")
    return f"{len(lines)} open, first: " + "; ".join(lines[:5])


# --- the test --------------------------------------------------------------------------------------


@pytest.mark.timeout(150)
def test_two_web_three_workers_run_every_job_and_tick_once_stream_every_record_and_survive_a_kill(
    deployment: Deployment, sync_redis: SyncRedis
) -> None:
    client = sync_redis
    urls = [url for _, url in deployment.webs]
    sse = [SseClient(url).start() for url in urls]
    for s in sse:
        assert s.connected.wait(10), s.error
    started = time.time()

    # the load, in a thread: CONNECTIONS keep-alive connections, half to each web process
    orders = iter(range(REQUESTS))
    accepted: dict[str, str] = {}  # order id -> trace id
    statuses: dict[int, int] = defaultdict(int)
    per_web = [0, 0]
    failed: list[BaseException] = []

    def run_load() -> None:
        try:
            asyncio.run(load(urls, orders, accepted, statuses, per_web))
        except BaseException as exc:  # reported by the test, after the join
            failed.append(exc)

    thread = threading.Thread(target=run_load)
    t_load = time.monotonic()
    thread.start()

    # mid-load: SIGKILL a worker while it runs jobs whose `running` span is stored
    victim = deployment.workers[0]
    prefix = f"{socket.gethostname()}:{victim.popen.pid}:"
    wait_until(lambda: failed or len(accepted) >= REQUESTS // 4, 60, message="a quarter of the load")
    assert not failed, f"the load failed: {failed[0]!r}"

    def running_slow() -> bool:
        slow = {tid for order, tid in list(accepted.items()) if int(order[1:]) % 10 == 0}
        held = victim_running(client, prefix)
        return any(trace in slow for trace, _ in held.values())

    wait_until(running_slow, 30, 0.01, message="the victim running a 0.5 s job")
    victim.popen.send_signal(signal.SIGKILL)
    victim.popen.wait(5)
    killed_at = time.monotonic()
    killed_wall_ms = int(time.time() * 1000)
    # what it held when it died: its leases outlive it by up to LEASE_S
    affected = leases_of(client, prefix)
    caught = victim_running(client, prefix)  # those whose `running` span was stored
    assert caught, "the killed worker held no running job"
    accepted_at_kill = len(accepted)
    job_data = {job: client.get(f"arq:job:{job}") for job in affected}  # read before they run again
    affected_traces = {job: payload_of(raw.encode())["traceId"] for job, raw in job_data.items() if raw}
    assert set(affected_traces) == affected, job_data

    # the killed worker's jobs: each runs again after its lease, to completion (the load goes on)
    def recovered() -> bool:
        for job, trace in affected_traces.items():
            runs = job_runs({k: json.loads(v) for k, v in client.hgetall(f"wb:spans:{trace}").items()})
            if not runs.get(job) or runs[job][-1][1] != "completed":
                return False
        return True

    wait_until(recovered, 30, message="the killed worker's jobs run again")
    recovery_s = time.monotonic() - killed_at
    recovered_mid_load = thread.is_alive()
    thread.join(120)
    load_s = time.monotonic() - t_load
    load_end_after_kill = time.monotonic() - killed_at
    assert not failed, f"the load failed: {failed[0]!r}"
    assert dict(statuses) == {201: REQUESTS}, dict(statuses)
    assert accepted_at_kill < REQUESTS, "the kill came after the load"

    # drained: every order's trace closed (both jobs completed)
    order_traces = list(accepted.values())

    def open_traces() -> int:  # (a counter below 0 is checked below, with the jobs)
        pipe = client.pipeline(transaction=False)
        for tid in order_traces:
            pipe.hget(f"wb:trace:{tid}", "open")
        return sum(int(v or 0) > 0 for v in pipe.execute())

    try:
        wait_until(lambda: open_traces() == 0, 60, 0.1, message="every order's trace closed")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {stuck(client, order_traces)}") from None
    drained_s = time.monotonic() - t_load - load_s

    # every tick due by now has run (cron keeps ticking meanwhile: the series is cut here); a tick's
    # trace starts at its tick time
    cut_ms = int(time.time() * 1000) - 1000

    def ticks_closed() -> bool:
        due = [int(k.rsplit(":", 1)[1]) for k in client.scan_iter("wb:cron-claim:Tick:*", count=1000)]
        due = [ms for ms in due if ms <= cut_ms]
        pipe = client.pipeline(transaction=False)
        for tid in client.zrangebyscore("wb:traces", min(due), cut_ms):
            pipe.hmget(f"wb:trace:{tid}", ["entry", "open"])
        closed = [entry for entry, n in pipe.execute() if entry == "Tick" and int(n or 0) == 0]
        return len(closed) == len(due)

    wait_until(ticks_closed, 30, 0.1, message="every tick due by now run")

    # stop the workers (SIGTERM: a graceful stop), so that no record is written after this
    for w in deployment.workers[1:]:
        w.popen.send_signal(signal.SIGTERM)
    for w in deployment.workers[1:]:
        assert w.popen.wait(20) == 0, w.output()[-3000:]

    # --- jobs: every one ran exactly once (the killed worker's: lost runs, then one completed) ------
    traces = [tid for tid in client.zrange("wb:traces", 0, -1)]
    store = read_store(client, traces)
    pack_runs = {k: int(v) for k, v in client.hgetall("wb:state:pack-runs").items()}
    ship_runs = {k: int(v) for k, v in client.hgetall("wb:state:ship-runs").items()}
    tick_runs = {k: int(v) for k, v in client.hgetall("wb:state:tick-runs").items()}
    twice: list[tuple[str, str, int]] = []
    bad_runs: dict[str, list[tuple[int, str]]] = {}
    lost_then_completed = unrecorded_lost = 0
    not_once: dict[str, Any] = {}  # order -> its jobs' runs, where a step completed other than once
    jobs = 0
    for order, tid in accepted.items():
        entry = store[tid]
        assert entry["trace"]["status"] == "completed", (order, entry["trace"])
        runs = job_runs(entry["spans"])
        steps_done = sorted(s["step"] for s in entry["spans"].values() if s["status"] == "completed")
        if steps_done != ["Pack", "PlaceOrder", "Ship"]:
            not_once[order] = {
                job: [(run, status, job in affected) for run, status in job_spans]
                for job, job_spans in runs.items()
            }
        for job, job_spans in runs.items():
            jobs += 1
            if job in affected:
                *before, last = job_spans
                if last[1] != "completed" or any(status != "lost" for _, status in before):
                    bad_runs[job] = job_spans
                lost_then_completed += bool(before)
                unrecorded_lost += not before and last[0] > 1
            elif job_spans != [(1, "completed")]:
                bad_runs[job] = job_spans
        pack_job = next(j for j, s in runs.items() if entry["spans"][f"{j}:{s[-1][0]}"]["step"] == "Pack")
        ship_job = next(j for j, s in runs.items() if entry["spans"][f"{j}:{s[-1][0]}"]["step"] == "Ship")
        for counter, job in ((pack_runs, pack_job), (ship_runs, ship_job)):
            n = counter.get(order, 0)
            # a killed run may have got as far as the handler: at most one handler run per claim
            if n != 1 and not (job in affected and 1 <= n <= runs[job][-1][0]):
                twice.append((order, job, n))
    assert not not_once, (
        f"orders whose steps did not complete exactly once (job: [(run, status, held by the killed "
        f"worker)]): {not_once}; killed at {killed_wall_ms}. Two completed runs of a job the killed "
        f"worker held: its run had ended (span and emits written) but not its job, so it ran again"
    )
    counters = {t: n for t in accepted.values() if (n := int(client.hget(f"wb:trace:{t}", "open") or 0))}
    assert not counters, f"order traces whose open counter is not 0 once all is done: {counters}"
    assert not bad_runs, f"jobs whose runs are not [completed] (or, killed: [lost..., completed]): {bad_runs}"
    assert not twice, f"(order, job, handler runs) not run exactly once: {twice[:20]}"
    assert set(pack_runs) == set(ship_runs) == set(accepted)
    assert all(job in affected_traces for job in caught)
    reruns = sorted(  # when each of the killed worker's jobs started again, after the kill
        (store[trace]["spans"][f"{job}:{job_runs(store[trace]['spans'])[job][-1][0]}"]["startedAt"]
         - killed_wall_ms) / 1000
        for job, trace in affected_traces.items()
    )  # fmt: skip
    for job in caught:  # caught running in the store: shown as lost, then run again to completion
        trace, run = caught[job]
        spans_of_job = job_runs(store[trace]["spans"])[job]
        assert spans_of_job[0] == (run, "lost") and spans_of_job[-1][1] == "completed", spans_of_job

    # --- cron: an unbroken series of ticks, each run once ---------------------------------------------
    claimed = sorted(int(k.rsplit(":", 1)[1]) for k in client.scan_iter("wb:cron-claim:Tick:*", count=1000))
    tick_of: dict[int, str] = {}  # a tick's trace starts at the tick's time
    for tid in traces:
        if store[tid]["trace"]["entry"] == "Tick":
            ms = store[tid]["trace"]["start"]
            assert ms not in tick_of, f"tick {ms} has two traces: {tick_of[ms]} and {tid}"
            tick_of[ms] = tid
    tick_spans = {ms: job_runs(store[tid]["spans"]).get(f"cron:Tick:{ms}", []) for ms, tid in tick_of.items()}
    window = [ms for ms in claimed if ms <= cut_ms]
    assert window and window[0] < killed_wall_ms < window[-1], (window[:3], killed_wall_ms, window[-3:])
    gaps = [(a, b) for a, b in itertools.pairwise(window) if b - a != 1000]
    assert not gaps, f"ticks missing between: {gaps}"
    assert set(claimed) == set(tick_of), (
        f"claimed ticks without a trace: {sorted(set(claimed) - set(tick_of))}"
    )
    tick_twice = {}
    for ms in window:
        job = f"cron:Tick:{ms}"
        n = tick_runs.get(tick_of[ms], 0)
        done = [s for s in tick_spans[ms] if s[1] == "completed"]
        if job in affected:
            ok = len(done) == 1 and 1 <= n <= tick_spans[ms][-1][0]
        else:
            ok = tick_spans[ms] == [(1, "completed")] and n == 1
        if not ok:
            tick_twice[ms] = (tick_spans[ms], n)
    assert not tick_twice, f"ticks not run exactly once: {tick_twice}"
    later = {tid: n for ms, tid in tick_of.items() if ms > cut_ms and (n := tick_runs.get(tid, 0)) > 1}
    assert not later, f"ticks after the cut run more than once: {later}"

    # --- SSE: each web process's client got every record of every trace ----------------------------
    last = client.xrevrange("wb:feed", count=1)[0][0]
    for s in sse:
        wait_until(lambda s=s: s.error or (s.last_id and stream_id(s.last_id) >= stream_id(last)), 30,
                   message=f"{s.url}'s stream to reach the feed's end")  # fmt: skip
        assert s.error is None, s.error
        s.stop()
    for s in sse:
        missing: list[str] = []
        for tid in traces:
            entry = store[tid]
            if s.traces.get(tid) != entry["trace"]:
                missing.append(f"{tid}: trace summary {s.traces.get(tid)} != {entry['trace']}")
            if s.spans.get(tid, {}) != entry["spans"]:
                missing.append(f"{tid}: spans differ ({len(s.spans.get(tid, {}))} vs {len(entry['spans'])})")
            if s.events.get(tid, []) != entry["events"]:
                missing.append(
                    f"{tid}: events differ ({len(s.events.get(tid, []))} vs {len(entry['events'])})"
                )
        assert not missing, f"{s.url}: {len(missing)} differences, first: {missing[:5]}"
        assert set(s.traces) == set(traces)

    took = time.time() - started
    print(
        f"\nscale-out: 2 web + 3 workers, {REQUESTS} POST /orders ({per_web[0]} + {per_web[1]}) in "
        f"{load_s:.1f} s = {REQUESTS / load_s:.0f} req/s; {jobs} jobs + {len(window)} cron ticks, "
        f"drained {drained_s:.1f} s after the load; SIGKILL of a worker holding {len(affected)} jobs "
        f"({len(caught)} caught running): all completed {recovery_s:.1f} s after the kill"
        f"{' (load still running)' if recovered_mid_load else ''} (lease "
        f"{LEASE_S:g} s; reruns started {reruns[0]:.1f}-{reruns[-1]:.1f} s after the kill, the load "
        f"ended {load_end_after_kill:.1f} s after it), {lost_then_completed} shown lost then completed, "
        f"{unrecorded_lost} re-run with no record of the lost run; SSE: {sse[0].records} and "
        f"{sse[1].records} records, every record of {len(traces)} traces on both; {took:.1f} s in all"
    )
