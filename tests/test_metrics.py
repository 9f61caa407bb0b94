"""Prometheus metrics: `/metrics` of the web process and `workbench worker --metrics-port`, parsed
with prometheus-client's own parser and checked against what ran (as the traces API tells it)."""

from __future__ import annotations

import collections
import logging
from pathlib import Path
from typing import Any

import httpx
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from workbench.metrics import Metrics
from workbench.redis_server import RedisServer, free_port, wait_for_port
from workbench.registry import discover
from workbench.tracing.recorder import Recorder
from workbench.tracing.records import Span
from workbench.tracing.store import TraceStore, span_record
from workbench.web.app import create_app

from .conftest import PET_STEPS, make_settings, spawn, start_stack, wait_until, write_step

TOKEN = "a-metrics-token-of-some-length"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample as {(name, sorted labels): value}."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def by_name(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


FLAKY_STEPS = {
    "kick": """
config = {"type": "api", "name": "Kick", "method": "POST", "path": "/kick", "emits": ["kicked"]}

async def handler(request, ctx):
    await ctx.emit("kicked", {"n": request.body["n"]})
    return {"status": 202, "body": {"ok": True}}
""",
    "fine": """
config = {"type": "event", "name": "Fine", "subscribes": ["kicked"]}

async def handler(data, ctx):
    ctx.logger.info("fine", n=data["n"])
""",
    "flaky": """
config = {"type": "event", "name": "Flaky", "subscribes": ["kicked"],
          "retries": {"attempts": 2, "backoff": 0.05, "max_backoff": 0.05}}

async def handler(data, ctx):
    raise RuntimeError("always fails")
""",
}


def test_web_and_worker_metrics_match_the_workload(redis_url: str, tmp_path: Path) -> None:
    """3 requests, each fanning out to a step that completes and one that fails both its attempts:
    the run counters by step and outcome, the histograms' counts, retries and dead letters equal
    what the traces API shows ran; both ports are behind the token."""
    steps = tmp_path / "steps"
    for name, source in FLAKY_STEPS.items():
        write_step(steps, name, source)
    stack = start_stack(redis_url, tmp_path, steps_dir=steps, workers=0, WORKBENCH_TOKEN=TOKEN)
    port = free_port()
    worker = spawn(["worker", "--metrics-port", str(port)], stack.env, tmp_path / "worker.log")
    stack.workers.append(worker)
    auth = {"authorization": f"Bearer {TOKEN}"}
    try:
        assert wait_for_port("127.0.0.1", port, 20), worker.output()
        worker_url = f"http://127.0.0.1:{port}"
        with stack.client(headers=auth) as client:
            traces = [client.post("/kick", json={"n": n}).headers["x-trace-id"] for n in range(3)]

            def done() -> list[dict[str, Any]] | None:
                got = [client.get(f"/_workbench/api/traces/{t}").json() for t in traces]
                return got if all(t["status"] != "running" for t in got) else None

            finished = wait_until(done, timeout=30, message="the 3 traces to finish")
            spans = [s for t in finished for s in t["spanList"]]
            ran = collections.Counter((s["step"], s["kind"], s["status"]) for s in spans)
            assert ran == {
                ("Kick", "api", "completed"): 3,
                ("Fine", "event", "completed"): 3,
                ("Flaky", "event", "failed"): 6,
            }

            # the web process ran the API spans; its Redis gauges see the dead letters, an empty queue
            # and one live worker
            with httpx.Client(base_url=stack.url, timeout=10) as anonymous:
                refused = anonymous.get("/metrics")
                assert refused.status_code == 401, refused.text
            answer = client.get("/metrics")
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/plain")
            web = parse(answer.text)
            assert by_name(web, "workbench_runs_total") == {
                (("kind", "api"), ("outcome", "completed"), ("step", "Kick")): 3.0
            }
            assert value(web, "workbench_run_duration_seconds_count", step="Kick") == 3
            assert value(web, "workbench_dead_letters") == 3
            assert by_name(web, "workbench_queue_depth") == {}
            assert value(web, "workbench_workers_alive") == 1
            assert value(web, "workbench_sse_clients") == 0

        # the worker ran the background spans: the same counts, on its own port
        with httpx.Client(base_url=worker_url, timeout=10) as anonymous:
            assert anonymous.get("/metrics").status_code == 401
            assert anonymous.get("/healthz").status_code == 200  # liveness is never behind the token
        with httpx.Client(base_url=worker_url, timeout=10, headers=auth) as client:
            answer = client.get("/metrics")
        assert answer.status_code == 200
        work = parse(answer.text)
        runs = by_name(work, "workbench_runs_total")
        assert runs == {
            (("kind", k), ("outcome", o), ("step", s)): float(n) for (s, k, o), n in ran.items() if k != "api"
        }
        for step, count in (("Fine", 3), ("Flaky", 6)):
            assert value(work, "workbench_run_duration_seconds_count", step=step) == count
            assert value(work, "workbench_queue_wait_seconds_count", step=step) == count
        assert by_name(work, "workbench_retries_total") == {(("step", "Flaky"),): 3.0}
        assert by_name(work, "workbench_dead_lettered_total") == {(("step", "Flaky"),): 3.0}
        assert value(work, "workbench_dead_letters") == 3
        # the durations' sum is what the spans say (ms in the spans, seconds here)
        flaky_ms = sum(s["finishedAt"] - s["startedAt"] for s in spans if s["step"] == "Flaky")
        assert abs(value(work, "workbench_run_duration_seconds_sum", step="Flaky") - flaky_ms / 1000) < 1e-6
    finally:
        stack.stop()


def test_sse_clients_are_counted_while_open(redis_url: str, tmp_path: Path) -> None:
    stack = start_stack(redis_url, tmp_path, workers=0)
    try:
        with stack.client() as client:
            assert value(parse(client.get("/metrics").text), "workbench_sse_clients") == 0
            with client.stream("GET", "/_workbench/api/stream") as stream:
                assert stream.status_code == 200
                wait_until(
                    lambda: value(parse(client.get("/metrics").text), "workbench_sse_clients") == 1,
                    message="the open stream to be counted",
                )
            wait_until(
                lambda: value(parse(client.get("/metrics").text), "workbench_sse_clients") == 0,
                message="the closed stream to be uncounted",
            )
    finally:
        stack.stop()


async def test_queue_depth_by_step_and_state(redis_url: str) -> None:
    """No worker runs: each POST /pets queues one job per subscriber of its two emits."""
    settings = make_settings(redis_url)
    app = create_app(settings, discover(PET_STEPS))
    async with AsyncTestClient(app) as client:
        for name in ("Jack", "Rex", "Tom"):
            response = await client.post("/pets", json={"name": name, "species": "dog", "ageMonths": 3})
            assert response.status_code == 201
        samples = parse((await client.get("/metrics")).text)
    assert by_name(samples, "workbench_queue_depth") == {
        (("state", "ready"), ("step", "PetLifecycleOrchestrator")): 3.0,
        (("state", "ready"), ("step", "SetNextFeedingReminder")): 3.0,
    }
    assert by_name(samples, "workbench_runs_total") == {
        (("kind", "api"), ("outcome", "completed"), ("step", "CreatePet")): 3.0
    }


async def test_queue_depth_counts_a_paused_steps_parked_jobs(redis_url: str) -> None:
    """A paused step's due jobs leave the queue for the parked set: still jobs waiting, shown as paused."""
    from workbench.worker import run_worker

    settings = make_settings(redis_url)
    registry = discover(PET_STEPS)
    app = create_app(settings, registry)
    async with AsyncTestClient(app) as client:
        paused = await client.post(
            "/_workbench/api/queues/SetNextFeedingReminder/pause", headers={"X-Workbench": "1"}
        )
        assert paused.status_code == 200, paused.text
        for name in ("Jack", "Rex"):
            response = await client.post("/pets", json={"name": name, "species": "dog", "ageMonths": 3})
            assert response.status_code == 201
        await run_worker(settings, registry, burst=True, handle_signals=False)  # parks the paused step's jobs
        samples = parse((await client.get("/metrics")).text)
    assert by_name(samples, "workbench_queue_depth") == {
        (("state", "paused"), ("step", "SetNextFeedingReminder")): 2.0,
    }


async def test_two_apps_in_one_process_count_apart(redis_url: str) -> None:
    settings = make_settings(redis_url)
    first, second = create_app(settings, discover(PET_STEPS)), create_app(settings, discover(PET_STEPS))
    async with AsyncTestClient(first) as one, AsyncTestClient(second) as two:
        assert (await one.post("/pets", json={"name": "Jack", "species": "dog", "ageMonths": 3})).status_code
        samples_one = parse((await one.get("/metrics")).text)
        samples_two = parse((await two.get("/metrics")).text)
    assert value(samples_one, "workbench_runs_total", step="CreatePet", kind="api", outcome="completed") == 1
    assert by_name(samples_two, "workbench_runs_total") == {}


async def test_redis_errors_are_counted_and_a_scrape_still_answers() -> None:
    server = RedisServer().start()
    settings = make_settings(server.url)
    app = create_app(settings, discover(PET_STEPS))
    try:
        async with AsyncTestClient(app) as client:
            before = parse((await client.get("/metrics")).text)
            assert by_name(before, "workbench_redis_errors_total") == {}
            server.stop()
            response = await client.post("/pets", json={"name": "Jack", "species": "dog", "ageMonths": 3})
            assert response.status_code == 503
            answer = await client.get("/metrics")
            assert answer.status_code == 200
            after = parse(answer.text)
            assert value(after, "workbench_redis_errors_total", logger="workbench.web") == 1
            assert value(after, "workbench_scrape_redis_errors_total") == 1
            # the run that met the error is counted as what it was: a failed API run (503)
            assert value(after, "workbench_runs_total", step="CreatePet", kind="api", outcome="failed") == 1
            logging.getLogger("workbench.recorder").setLevel(logging.CRITICAL)  # its retries while stopping
    finally:
        logging.getLogger("workbench.recorder").setLevel(logging.NOTSET)
        server.stop()


async def test_the_hook_sees_finished_spans_only_even_with_tracing_off(redis_url: str) -> None:
    """`Recorder.on_span_end`: a running span is not an end; a lost run (written as a raw record by
    the run that notices it) is; observers run with tracing off too."""
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        recorder = Recorder(TraceStore(redis), enabled=False)
        metrics = Metrics()
        metrics.watch(recorder)
        span = Span(id="j:1", trace_id="t", step="S", kind="event", enqueued_at=1000, started_at=1500)
        recorder.span(span)
        assert by_name(parse(metrics.exposition().decode()), "workbench_runs_total") == {}
        span.status, span.finished_at = "completed", 1750
        recorder.span(span, open_delta=-1)
        lost = {**span.to_json(), "id": "j:2", "status": "lost", "finishedAt": 2000, "startedAt": 1800}
        recorder.add_raw(span_record(lost, error_delta=1))
        samples = parse(metrics.exposition().decode())
        assert by_name(samples, "workbench_runs_total") == {
            (("kind", "event"), ("outcome", "completed"), ("step", "S")): 1.0,
            (("kind", "event"), ("outcome", "lost"), ("step", "S")): 1.0,
        }
        assert value(samples, "workbench_run_duration_seconds_sum", step="S") == 0.25 + 0.2
        assert value(samples, "workbench_queue_wait_seconds_sum", step="S") == 0.5 + 0.8
        assert by_name(samples, "workbench_dead_lettered_total") == {}  # a lost run is tried again
    finally:
        await redis.aclose()


async def test_metrics_behind_the_token_in_process(redis_url: str) -> None:
    settings = make_settings(redis_url, workbench_token=TOKEN)
    app = create_app(settings, discover(PET_STEPS))
    async with AsyncTestClient(app) as client:
        assert (await client.get("/metrics")).status_code == 401
        ok = await client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        assert "workbench_runs" in ok.text
