"""Starting and stopping the processes a benchmark needs: a private Redis, web and worker processes.

Every child is registered in `_live` and killed by `stop_all()` (called from `__main__` on any exit,
Ctrl-C included). Children run in their own session, so Ctrl-C reaches only the benchmark, which then
stops them in order; PR_SET_PDEATHSIG makes them die with the benchmark even if it is SIGKILLed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from workbench.redis_server import RedisServer, free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
BENCH_STEPS = ROOT / "bench" / "steps"
PET_STEPS = ROOT / "steps"
CLK_TCK = os.sysconf("SC_CLK_TCK")

_live: list[Proc | RedisServer] = []


def _die_with_parent() -> None:
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Proc:
    """A Python child process (`python -m <module> ...`), its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.log = logdir / f"{name}.log"
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", *args],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        _live.append(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def pause(self) -> None:
        self.popen.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.popen.send_signal(signal.SIGCONT)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 5) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGCONT)  # a paused process cannot handle SIGTERM
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self in _live:
            _live.remove(self)


def stop_all() -> None:
    for item in reversed(list(_live)):
        item.stop()
        if item in _live:
            _live.remove(item)


class Stack:
    """One private Redis, and the web / worker processes started against it (stopped on exit)."""

    def __init__(self, logdir: Path, tag: str) -> None:
        self.logdir = logdir
        self.tag = tag
        self.server = RedisServer().start()
        _live.append(self.server)
        self.url = self.server.url
        self.redis = redis.Redis.from_url(self.url, decode_responses=True)
        self.procs: list[Proc] = []

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.redis.close()
        self.server.stop()
        if self.server in _live:
            _live.remove(self.server)

    def env(self, steps: Path, **extra: Any) -> dict[str, str]:
        return {
            **os.environ,
            "REDIS_URL": self.url,
            "WORKBENCH_STEPS": str(steps),
            "WORKBENCH_MODE": "dev",
            "WORKBENCH_GRACE": "1",
            "PYTHONUNBUFFERED": "1",
            **{k: str(v) for k, v in extra.items()},
        }

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> Proc:
        proc = Proc(f"{self.tag}-{name}-{len(self.procs)}", args, env, self.logdir)
        self.procs.append(proc)
        return proc

    def _wait_port(self, proc: Proc, port: int) -> str:
        if not wait_for_port("127.0.0.1", port, 30) or proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} did not start:\n{proc.output()[-3000:]}")
        return f"http://127.0.0.1:{port}"

    def web(self, steps: Path, **env: Any) -> tuple[Proc, str]:
        """`python -m workbench start` on a free port; returns the process and its base URL."""
        port = free_port()
        proc = self._spawn("web", ["workbench", "start", "--port", str(port)], self.env(steps, **env))
        return proc, self._wait_port(proc, port)

    def workers(self, steps: Path, n: int = 1, **env: Any) -> list[Proc]:
        """`python -m workbench worker` processes, returned once each has sent its first heartbeat."""
        before = self.redis.zcard("wb:workers")
        procs = [self._spawn("worker", ["workbench", "worker"], self.env(steps, **env)) for _ in range(n)]
        self._wait(lambda: self.redis.zcard("wb:workers") >= before + n, procs)
        return procs

    def bare_workers(self, n: int = 1, poll: float = 0.5, concurrency: int = 20) -> list[Proc]:
        """Plain arq workers (bench/bare_arq.py); returned once each has run its startup hook."""
        before = int(self.redis.get("bench:bare-ready") or 0)
        args = ["bench.bare_arq", "--redis", self.url, "--poll", str(poll), "--concurrency", str(concurrency)]
        procs = [self._spawn("bare-worker", args, self.env(BENCH_STEPS)) for _ in range(n)]
        self._wait(lambda: int(self.redis.get("bench:bare-ready") or 0) >= before + n, procs)
        return procs

    def bare_web(self) -> tuple[Proc, str]:
        """The bare Litestar app (bench/bare_app.py) on uvicorn, on a free port."""
        port = free_port()
        proc = self._spawn(
            "bare-web", ["bench.bare_app", "--redis", self.url, "--port", str(port)], self.env(BENCH_STEPS)
        )
        return proc, self._wait_port(proc, port)

    def _wait(self, ready: Any, procs: list[Proc], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [p for p in procs if p.popen.poll() is not None]
            if dead or time.monotonic() > deadline:
                culprit = (dead or procs)[0]
                raise RuntimeError(f"{culprit.name} did not start:\n{culprit.output()[-3000:]}")
            time.sleep(0.05)

    def used_memory_mb(self) -> float:
        return int(self.redis.info("memory")["used_memory"]) / 1024 / 1024


async def wait_until(predicate: Any, seconds: float, every: float = 0.05) -> bool:
    """Poll `predicate()` until it is true (returns True) or `seconds` pass (returns False)."""
    for _ in range(max(1, int(seconds / every))):
        if predicate():
            return True
        await asyncio.sleep(every)
    return bool(predicate())
