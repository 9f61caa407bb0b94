"""`workbench dev`: Redis (found or embedded), a web process and a worker, restarted together
when a step file changes, and all stopped within a few seconds on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .redis_server import RedisServer, die_with_parent, port_is_free, resolve, wait_for_port
from .registry import discover
from .settings import Settings
from .step_config import StepError

STOP_WAIT_S = 2.0


def pick_port(host: str, port: int) -> int:
    for candidate in range(port, port + 50):
        if port_is_free(host, candidate):
            if candidate != port:
                print(f"Port {port} is in use; using {candidate} instead.", flush=True)
            return candidate
    raise SystemExit(f"error: no free port between {port} and {port + 49}")


class Children:
    def __init__(
        self, settings: Settings, host: str, port: int, redis_url: str, allowed_hosts: tuple[str, ...]
    ) -> None:
        self.settings = settings
        self.host, self.port, self.redis_url = host, port, redis_url
        self.allowed_hosts = allowed_hosts
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        env = {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "WORKBENCH_MODE": "dev",
            "WORKBENCH_STEPS": str(self.settings.steps_dir),
            "WORKBENCH_GRACE": os.environ.get("WORKBENCH_GRACE", "1"),
            "WORKBENCH_ALLOWED_HOSTS": ",".join(self.allowed_hosts),
            "PYTHONUNBUFFERED": "1",
        }
        if sys.stdout.isatty():
            env["FORCE_COLOR"] = "1"
        base = [sys.executable, "-m", "workbench"]
        kwargs = {"env": env, "preexec_fn": die_with_parent if sys.platform == "linux" else None}
        self.procs = [
            subprocess.Popen([*base, "start", "--host", self.host, "--port", str(self.port)], **kwargs),  # type: ignore[call-overload]
            subprocess.Popen([*base, "worker"], **kwargs),  # type: ignore[call-overload]
        ]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        for proc in self.procs:
            try:
                proc.wait(max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []

    def exited(self) -> bool:
        return any(proc.poll() is not None for proc in self.procs)


def _watch(steps_dir: Path, changed: threading.Event, stop: threading.Event) -> None:
    from watchfiles import watch

    for _changes in watch(
        steps_dir, stop_event=stop, watch_filter=lambda _c, p: p.endswith(".py"), debounce=300
    ):
        changed.set()


def run_dev(
    settings: Settings,
    *,
    host: str,
    port: int,
    redis_choice: str | None,
    reload: bool,
    allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1"),
) -> int:
    redis_url, embedded, how = resolve(redis_choice)
    print(how, flush=True)
    server: RedisServer | None = embedded
    port = pick_port(host, port)
    children = Children(settings, host, port, redis_url, allowed_hosts)
    stop = threading.Event()
    changed = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if reload:
        threading.Thread(target=_watch, args=(settings.steps_dir, changed, stop), daemon=True).start()
    try:
        children.start()
        if wait_for_port(host, port, 30):
            shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
            print(f"Workbench: http://{shown}:{port}/   (Ctrl-C to stop)", flush=True)
        while not stop.is_set():
            if changed.wait(0.2):
                changed.clear()
                print("Step files changed; reloading…", flush=True)
                try:
                    discover(settings.steps_dir)
                except StepError as exc:
                    print(f"error: {exc}\n(fix the file; the previous version keeps running)", flush=True)
                    continue
                children.stop()
                children.start()
            elif children.exited() and not stop.is_set():
                print("A child process exited; restarting in 1s…", flush=True)
                time.sleep(1)
                children.stop()
                children.start()
    finally:
        children.stop()
        if server is not None:
            server.stop()
        print("Stopped.", flush=True)
    return 0
