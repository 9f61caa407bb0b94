"""Prometheus metrics of a process (`prometheus-client`), each process with its own registry.

Per run (counted as spans finish, through `Recorder.on_span_end`: a few counter increments, no
Redis round trip): runs by step, kind and outcome, run duration and queue wait histograms by step,
retries and dead-lettered runs by step. Read from Redis when scraped (a handful of commands per
scrape, nothing on the hot path): queue depth by step, dead letters, workers alive. Also open SSE
clients (the web process) and the Redis errors the process logged.

The web process serves them at `/metrics` (`web/metrics_route.py`), a worker on its own port
(`workbench worker --metrics-port N`, `serve_worker_metrics`, with `/healthz` beside it).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import Counter as Tally
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from redis import Redis as SyncRedis
from redis.exceptions import RedisError

from . import job_queue, keys
from .ids import now_ms
from .tracing.records import FAILED, Span

CONTENT_TYPE = CONTENT_TYPE_LATEST
# a scrape reads at most this many queued jobs (in due order) to tell the queue's depth by step;
# jobs beyond it are counted under the step `_unsampled`, so the steps always add up to the depth
QUEUE_SAMPLE = 1000
UNSAMPLED = "_unsampled"
WORKER_ALIVE_MS = 5000  # a worker whose last heartbeat is older is not counted alive

_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    """The metrics of one process (one web app or one worker), in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs = Counter(
            "workbench_runs",
            "Step runs (one per attempt) that ended, by step, kind and outcome "
            "(completed, failed, timed_out, lost, interrupted)",
            ["step", "kind", "outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "workbench_run_duration_seconds",
            "How long a step run took, start to end, by step",
            ["step"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "workbench_queue_wait_seconds",
            "How long a background run waited in the queue after it was due, by step",
            ["step"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "workbench_retries", "Failed attempts that are tried again, by step", ["step"], registry=r
        )
        self.dead_lettered = Counter(
            "workbench_dead_lettered",
            "Background runs that failed their last attempt (each became a dead letter), by step",
            ["step"],
            registry=r,
        )
        self.redis_errors = Counter(
            "workbench_redis_errors",
            "Redis errors this process met (and logged), by the logger that reported them",
            ["logger"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "workbench_queue_depth",
            f"Jobs in the queue by step and state (ready: due now; deferred: retries and later runs; "
            f"paused: due jobs of a paused step, held until it is resumed); "
            f"jobs beyond the first {QUEUE_SAMPLE} in due order are counted under step {UNSAMPLED!r}",
            ["step", "state"],
            registry=r,
        )
        self.dead_letters = Gauge(
            "workbench_dead_letters", "Dead letters kept (not yet retried or discarded)", registry=r
        )
        self.workers_alive = Gauge(
            "workbench_workers_alive", "Worker processes whose heartbeat is less than 5 s old", registry=r
        )
        self.scrape_errors = Counter(
            "workbench_scrape_redis_errors",
            "Scrapes whose Redis reads failed (the Redis-read gauges then keep their last values)",
            registry=r,
        )
        self._children: dict[tuple[str, str, str], tuple[Any, Any, Any]] = {}
        _REDIS_ERRORS.add(self)

    # --- per run -------------------------------------------------------------------------------------

    def observe(self, span: Span) -> None:
        """A span reached a finished status (`Recorder.on_span_end`)."""
        step = span.step
        key = (step, span.kind, span.status)
        children = self._children.get(key)
        if children is None:  # labelled series looked up once per (step, kind, outcome)
            children = self._children[key] = (
                self.runs.labels(*key),
                self.duration.labels(step),
                self.queue_wait.labels(step),
            )
        runs, duration, queue_wait = children
        runs.inc()
        if span.finished_at is not None and span.started_at:
            duration.observe(max(0, span.finished_at - span.started_at) / 1000)
        if span.enqueued_at is not None and span.started_at:
            queue_wait.observe(max(0, span.started_at - span.enqueued_at) / 1000)
        if span.status in FAILED and span.kind not in ("api", "emit"):
            if span.will_retry:
                self.retries.labels(step).inc()
            elif span.status != "lost":  # a lost run is tried again by the run that notices it
                self.dead_lettered.labels(step).inc()

    def watch(self, recorder: Any) -> None:
        """Count every span `recorder` (a `Recorder`) sees end."""
        recorder.on_span_end.append(self.observe)

    # --- at scrape time ------------------------------------------------------------------------------

    def build_reads(self, pipe: Any) -> None:
        """The Redis reads a scrape makes, as commands on `pipe` (sync or async)."""
        now = now_ms()
        pipe.zcount(job_queue.QUEUE, "-inf", now)
        pipe.zcount(job_queue.QUEUE, f"({now}", "+inf")
        pipe.zrange(job_queue.QUEUE, 0, QUEUE_SAMPLE - 1, withscores=True)
        pipe.zcard(keys.DEAD)
        pipe.zcount(keys.WORKERS, now - WORKER_ALIVE_MS, "+inf")
        pipe.zcard(job_queue.PARKED)
        pipe.zrange(job_queue.PARKED, 0, QUEUE_SAMPLE - 1)

    def sample_keys(self, results: list[Any]) -> list[str]:
        """The data keys of the sampled jobs: the queue's, then the parked ones'."""
        queued = [_text(job_id) for job_id, _ in results[2]]
        parked = [_text(job_id) for job_id in results[6]]
        return [job_queue.job_key(job_id) for job_id in queued + parked]

    def apply_reads(self, results: list[Any], jobs: list[Any]) -> None:
        """Set the gauges from `build_reads`'s answers and the sampled jobs' data (MGET)."""
        ready, deferred, sample, dead, alive, paused, parked = results
        now = now_ms()
        depth: Tally[tuple[str, str]] = Tally()
        for (_, score), raw in zip(sample, jobs[: len(sample)], strict=True):
            state = "ready" if float(score) <= now else "deferred"
            depth[(_step_of(raw), state)] += 1
        for raw in jobs[len(sample) :]:
            depth[(_step_of(raw), "paused")] += 1
        if int(paused) > len(parked):
            depth[(UNSAMPLED, "paused")] += int(paused) - len(parked)
        sampled_ready = sum(n for (_, state), n in depth.items() if state == "ready")
        sampled_deferred = sum(n for (_, state), n in depth.items() if state == "deferred")
        if int(ready) > sampled_ready:
            depth[(UNSAMPLED, "ready")] += int(ready) - sampled_ready
        if int(deferred) > sampled_deferred:
            depth[(UNSAMPLED, "deferred")] += int(deferred) - sampled_deferred
        self.queue_depth.clear()  # steps no longer queued disappear rather than stay at their last value
        for (step, state), count in depth.items():
            self.queue_depth.labels(step, state).set(count)
        self.dead_letters.set(int(dead))
        self.workers_alive.set(int(alive))

    async def refresh(self, redis: Any) -> None:
        """Read the Redis gauges with an async client (the web process)."""
        try:
            async with redis.pipeline(transaction=False) as pipe:
                self.build_reads(pipe)
                results = await pipe.execute()
            names = self.sample_keys(results)
            jobs = await redis.mget(names) if names else []
        except (RedisError, OSError):
            self.scrape_errors.inc()
            return
        self.apply_reads(results, jobs)

    def refresh_sync(self, redis: SyncRedis) -> None:
        """The same with a sync client (the worker's metrics thread)."""
        try:
            with redis.pipeline(transaction=False) as pipe:
                self.build_reads(pipe)
                results = pipe.execute()
            names = self.sample_keys(results)
            jobs = redis.mget(names) if names else []
        except (RedisError, OSError):
            self.scrape_errors.inc()
            return
        self.apply_reads(results, list(jobs))  # type: ignore[arg-type]

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _step_of(raw: Any) -> str:
    if raw is None:
        return "_expired"  # the job's data expired: the worker drops it when it reaches it
    try:
        step = job_queue.payload_of(raw.encode() if isinstance(raw, str) else raw).get("step")
    except Exception:
        return "_unreadable"
    return str(step) if step else "_unreadable"


# --- Redis errors, counted from the log lines that report them -----------------------------------------


class _RedisErrorCounter(logging.Handler):
    """Counts `workbench.*` log records that carry a Redis error (as an argument or as exc_info):
    every place that meets one (the recorder's writes, the worker loop, the live feed, a request
    answered 503) logs it with the exception."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.targets: weakref.WeakSet[Metrics] = weakref.WeakSet()

    def add(self, metrics: Metrics) -> None:
        self.targets.add(metrics)
        root = logging.getLogger("workbench")
        if self not in root.handlers:
            root.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if not _carries_redis_error(record):
            return
        for metrics in list(self.targets):
            metrics.redis_errors.labels(record.name).inc()


def _carries_redis_error(record: logging.LogRecord) -> bool:
    if record.exc_info and isinstance(record.exc_info[1], RedisError | OSError):
        return True
    args = record.args
    values = args.values() if isinstance(args, dict) else (args or ())
    return any(isinstance(value, RedisError | OSError) for value in values)


_REDIS_ERRORS = _RedisErrorCounter()


# --- the worker's metrics port ---------------------------------------------------------------------


def serve_worker_metrics(
    metrics: Metrics, redis_url: str, *, port: int, host: str = "0.0.0.0", token: str | None = None,
    alive: Callable[[], bool] = lambda: True,
) -> ThreadingHTTPServer:  # fmt: skip
    """`/metrics` (behind `token` when one is given) and `/healthz` on a thread of their own."""
    from .web.guard import same_secret

    redis = SyncRedis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=2)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                ok = alive()
                self._answer(200 if ok else 503, b"ok\n" if ok else b"stopping\n", "text/plain")
            elif path == "/metrics":
                given = self.headers.get("authorization", "").removeprefix("Bearer ").strip()
                if token is not None and not (given and same_secret(given, token)):
                    self._answer(401, b"metrics need the token (Authorization: Bearer ...)\n", "text/plain")
                    return
                with lock:  # one scrape at a time reads Redis
                    metrics.refresh_sync(redis)
                    body = metrics.exposition()
                self._answer(200, body, CONTENT_TYPE)
            else:
                self._answer(404, b"not found: /metrics or /healthz\n", "text/plain")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes every few seconds would drown the worker's own lines

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="workbench-metrics", daemon=True)
    thread.start()
    return server
