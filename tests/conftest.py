"""Shared test tooling: a private redis-server (never the user's 6379), settings, in-process and
subprocess web/worker helpers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from redis import Redis as SyncRedis

from workbench.redis_server import RedisServer, free_port, wait_for_port
from workbench.registry import Registry, discover
from workbench.runtime import Runtime
from workbench.settings import Settings

if TYPE_CHECKING:
    from workbench.testing import Harness

ROOT = Path(__file__).resolve().parent.parent
PET_STEPS = ROOT / "steps"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
ARTIFACTS = ROOT / "artifacts"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    assert server.port != 6379
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    client = SyncRedis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[SyncRedis]:
    client = SyncRedis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def make_settings(redis_url: str, steps_dir: Path = PET_STEPS, **overrides: object) -> Settings:
    base = Settings(redis_url=redis_url, steps_dir=steps_dir, poll_delay_s=0.05, lease_s=2.0, grace_s=1.0)
    return replace(base, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return make_settings(redis_url)


@pytest.fixture
def registry(settings: Settings) -> Registry:
    return discover(settings.steps_dir)


@pytest.fixture
async def runtime(settings: Settings, registry: Registry) -> AsyncIterator[Runtime]:
    rt = Runtime(settings, registry)
    await rt.start()
    yield rt
    await rt.stop()


async def drain(settings: Settings, registry: Registry) -> Runtime:
    """Run a burst worker in-process until the queue is empty (retries included)."""
    from workbench.worker import run_worker

    return await run_worker(settings, registry, burst=True, handle_signals=False)


def write_step(folder: Path, name: str, source: str) -> Path:
    path = folder / f"{name}_step.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    return path


# --- real processes ------------------------------------------------------------------------------


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def spawn(args: list[str], env: dict[str, str], log: Path) -> Proc:
    with log.open("ab") as handle:  # the child keeps its own copy of the descriptor
        popen = subprocess.Popen(
            [sys.executable, "-m", "workbench", *args],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    return Proc(popen, log)


@dataclass
class Stack:
    """A web process and worker processes against the test Redis."""

    url: str
    redis_url: str
    web: Proc
    workers: list[Proc]
    env: dict[str, str]
    tmp: Path

    def client(self, **kw: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kw)  # type: ignore[arg-type]

    def add_worker(self) -> Proc:
        proc = spawn(["worker"], self.env, self.tmp / f"worker{len(self.workers)}.log")
        self.workers.append(proc)
        return proc

    def restart_web(self) -> None:
        self.web.stop()
        port = int(self.url.rsplit(":", 1)[1])
        self.web = spawn(["start", "--port", str(port)], self.env, self.tmp / "web2.log")
        assert wait_for_port("127.0.0.1", port, 20), self.web.output()

    def stop(self) -> None:
        self.web.stop()
        for w in self.workers:
            w.stop()


def start_stack(
    redis_url: str, tmp: Path, steps_dir: Path = PET_STEPS, workers: int = 1, **env_extra: str
) -> Stack:
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "WORKBENCH_STEPS": str(steps_dir),
        "WORKBENCH_MODE": "dev",
        "WORKBENCH_POLL_DELAY": "0.5",
        "PYTHONUNBUFFERED": "1",
        **env_extra,
    }
    web = spawn(["start", "--port", str(port)], env, tmp / "web.log")
    stack = Stack(f"http://127.0.0.1:{port}", redis_url, web, [], env, tmp)
    for _ in range(workers):
        stack.add_worker()
    if not wait_for_port("127.0.0.1", port, 20):
        stack.stop()
        raise AssertionError("web did not start:\n" + web.output())
    return stack


@pytest.fixture
def stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    s = start_stack(redis_url, tmp_path)
    yield s
    s.stop()


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05, message: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message} (last: {last!r})")


@contextmanager
def steps_harness(folder: Path, redis_url: str, sources: dict[str, str]) -> Iterator[Harness]:
    """A harness on step files of a test's own (name -> source), against the emptied test Redis;
    the steps folder's place on sys.path is undone afterwards."""
    from workbench.testing import Harness, harness_settings

    client = SyncRedis.from_url(redis_url)
    client.flushdb()
    client.close()
    for name, source in sources.items():
        write_step(folder, name, source)
    path = list(sys.path)
    try:
        with Harness(harness_settings(redis_url, folder), discover(folder)) as harness:
            yield harness
    finally:
        sys.path[:] = path
