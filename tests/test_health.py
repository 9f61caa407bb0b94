"""Liveness (`/healthz`) and readiness (`/readyz`) of the web process, and the worker's liveness on
its metrics port: never behind the token; readiness names why Redis cannot serve."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
from litestar.testing import AsyncTestClient
from redis import Redis as SyncRedis

from workbench.redis_server import RedisServer, free_port, wait_for_port
from workbench.registry import discover
from workbench.web.app import create_app

from .conftest import PET_STEPS, make_settings, spawn, start_stack, wait_until

TOKEN = "a-health-token-of-some-length"


async def test_live_and_ready_without_the_token(redis_url: str) -> None:
    app = create_app(make_settings(redis_url, workbench_token=TOKEN), discover(PET_STEPS))
    async with AsyncTestClient(app) as client:
        live = await client.get("/healthz")
        assert (live.status_code, live.json()) == (200, {"status": "ok"})
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready", "redis": "ok", "workers": 0})
        assert (await client.get("/_workbench/api/health")).status_code == 401  # the workbench still is


def test_ready_until_redis_stops_in_a_real_web_process(tmp_path: Path) -> None:
    server = RedisServer().start()
    stack = start_stack(server.url, tmp_path, workers=1)
    try:
        with stack.client() as client:
            # the worker's heartbeat reaches Redis: readiness reports it (information only)
            ready = wait_until(
                lambda: (r := client.get("/readyz")).json().get("workers") == 1 and r,
                message="readiness to count the worker",
            )
            assert ready.status_code == 200
            assert ready.json()["status"] == "ready"
            server.stop()
            down = client.get("/readyz")
            assert down.status_code == 503
            body = down.json()
            assert body["status"] == "not ready"
            assert body["redis"] == "unreachable"
            assert body["reason"].startswith("Redis unreachable: ")
            assert down.headers["retry-after"] == "1"
            assert client.get("/healthz").status_code == 200  # alive all the same: restarting would not help
    finally:
        stack.stop()
        server.stop()


async def test_not_ready_when_redis_is_full_or_does_not_answer() -> None:
    server = RedisServer().start()
    admin = SyncRedis.from_url(server.url)
    app = create_app(make_settings(server.url), discover(PET_STEPS))
    try:
        async with AsyncTestClient(app) as client:
            assert (await client.get("/readyz")).status_code == 200
            # full: PING still answers, writes are refused (maxmemory below what Redis already uses)
            admin.config_set("maxmemory", "1")
            full = await client.get("/readyz")
            assert full.status_code == 503
            assert full.json()["redis"] == "out of memory"
            assert "used_memory" in full.json()["reason"] and "noeviction" in full.json()["reason"]
            # a policy that evicts keeps taking writes: ready, with the memory reported
            admin.config_set("maxmemory-policy", "allkeys-lru")
            evicting = await client.get("/readyz")
            assert evicting.status_code == 200
            assert evicting.json()["memory"]["policy"] == "allkeys-lru"
            admin.config_set("maxmemory", "0")
            admin.config_set("maxmemory-policy", "noeviction")
            assert (await client.get("/readyz")).status_code == 200
            # a Redis that does not answer (stopped, not gone): a timeout, not a hang
            assert server.process is not None
            os.kill(server.process.pid, signal.SIGSTOP)
            try:
                stalled = await client.get("/readyz")
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            assert stalled.status_code == 503
            assert stalled.json() == {"status": "not ready", "redis": "timeout",
                                      "reason": "Redis did not answer within 1 s"}  # fmt: skip
            assert (await client.get("/readyz")).status_code == 200  # and back when it answers again
    finally:
        admin.close()
        server.stop()


def test_worker_liveness_on_its_metrics_port(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "WORKBENCH_STEPS": str(PET_STEPS),
           "WORKBENCH_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}  # fmt: skip
    worker = spawn(["worker", "--metrics-port", str(port)], env, tmp_path / "worker.log")
    try:
        assert wait_for_port("127.0.0.1", port, 20), worker.output()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            live = client.get("/healthz")
            assert (live.status_code, live.text) == (200, "ok\n")
            assert client.get("/nothing").status_code == 404
            assert client.get("/metrics").status_code == 401
    finally:
        worker.stop()
    assert worker.popen.returncode == 0, worker.output()


def test_a_taken_metrics_port_stops_the_worker_with_a_message(redis_url: str, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "REDIS_URL": redis_url, "WORKBENCH_STEPS": str(PET_STEPS)}
        worker = spawn(["worker", "--metrics-port", str(port)], env, tmp_path / "worker.log")
        assert worker.popen.wait(20) == 2
    assert f"error: --metrics-port {port}:" in worker.output()
