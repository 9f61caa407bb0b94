"""The CLI, as a user runs it: `dev` (embedded Redis, port fallback, reload, Ctrl-C), `emit`."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from workbench import keys
from workbench.devserver import STOP_WAIT_S
from workbench.redis_server import free_port, port_is_free

from .conftest import PET_STEPS, ROOT, wait_until


class Dev:
    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.log = b""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workbench", "dev", *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        os.set_blocking(self.proc.stdout.fileno(), False)  # type: ignore[union-attr]

    def output(self) -> str:
        chunk = self.proc.stdout.read()  # type: ignore[union-attr]
        if chunk:
            self.log += chunk
        return self.log.decode(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        return wait_until(
            lambda: re.search(pattern, self.output()), timeout, message=f"{pattern!r} in dev output"
        )

    def children(self) -> list[int]:
        """Every process below `dev` (web, worker, embedded redis-server)."""
        found, frontier = [], [self.proc.pid]
        while frontier:
            out = subprocess.run(["pgrep", "-P", str(frontier.pop())], capture_output=True, text=True).stdout
            kids = [int(p) for p in out.split()]
            found += kids
            frontier += kids
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.output()
        self.proc.stdout.close()  # type: ignore[union-attr]


def role(pid: int) -> str:
    """What a process below `dev` is: `redis-server`, or the workbench command it runs."""
    argv = [a for a in Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0") if a]
    if Path(argv[0].split()[0]).name == "redis-server":
        return "redis-server"
    return argv[argv.index("workbench") + 1] if "workbench" in argv else " ".join(argv)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_dev_with_embedded_redis_serves_the_tutorial_and_stops_cleanly_on_ctrl_c() -> None:
    port = free_port()
    dev = Dev(["--redis", "embedded", "--port", str(port), "--no-reload"])
    try:
        dev.wait_for(
            r"Redis: embedded redis-server on redis://127\.0\.0\.1:\d+/0 \(forced with --redis embedded"
        )
        dev.wait_for(rf"Workbench: http://localhost:{port}/")
        base = f"http://127.0.0.1:{port}"
        created = httpx.post(f"{base}/pets", json={"name": "Jack", "species": "dog", "ageMonths": 24})
        assert created.status_code == 201
        pet_id = created.json()["id"]
        pet = wait_until(
            lambda: (p := httpx.get(f"{base}/pets/{pet_id}").json()).get("nextFeedingAt") and p,
            message="reminder",
        )
        assert pet["notes"]
        children = dev.children()
        assert sorted(role(pid) for pid in children) == ["redis-server", "start", "worker"], dev.output()
        before = len(dev.output())
        dev.proc.send_signal(signal.SIGINT)
        # dev gives its children STOP_WAIT_S after SIGTERM before it kills them: it must be gone
        # sooner than that (killed children would keep it at least that long), the worker stopping
        # gracefully
        dev.proc.wait(STOP_WAIT_S)
        assert dev.proc.returncode == 0
        stopping = dev.output()[before:]
        assert re.search(r"stopping: waiting up to \d+s for 0 running jobs\n", stopping), stopping
        assert stopping.endswith("Stopped.\n"), stopping
        wait_until(lambda: not any(alive(pid) for pid in children), 1, message="children gone")
        assert port_is_free("127.0.0.1", port)
    finally:
        dev.stop()


def test_dev_takes_the_next_free_port_and_says_so(redis_url: str) -> None:
    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        dev = Dev(["--port", str(port), "--no-reload"], env={"REDIS_URL": redis_url})
        try:
            dev.wait_for(rf"Redis: {re.escape(redis_url)} \(from REDIS_URL\)")
            match = dev.wait_for(rf"Port {port} is in use; using (\d+) instead")
            other = int(match.group(1))
            dev.wait_for(rf"Workbench: http://localhost:{other}/")
            assert httpx.get(f"http://127.0.0.1:{other}/pets").status_code == 200
        finally:
            dev.proc.send_signal(signal.SIGINT)
            dev.proc.wait(5)
            dev.stop()


def test_dev_reloads_web_and_worker_when_a_step_file_changes(redis_url: str, tmp_path: Path) -> None:
    steps = tmp_path / "steps"
    shutil.copytree(PET_STEPS, steps, ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    dev = Dev(["--port", str(port), "--steps", str(steps)], env={"REDIS_URL": redis_url})
    base = f"http://127.0.0.1:{port}"
    try:
        dev.wait_for(r"Workbench: http://")
        assert httpx.get(f"{base}/hello").status_code == 404
        (steps / "hello_step.py").write_text(
            "from workbench import ApiResponse\n"
            "config = {'type': 'api', 'name': 'Hello', 'method': 'GET', 'path': '/hello'}\n"
            "async def handler(request, ctx):\n    return ApiResponse(200, {'hello': 'world'})\n"
        )
        dev.wait_for(r"reloading")
        wait_until(lambda: _get(f"{base}/hello") == {"hello": "world"}, 20, message="new step served")
        # a broken change is reported and the running version stays up
        (steps / "hello_step.py").write_text("config = {'type': 'api', 'name': 'Hello', 'method': 'GET'}\n")
        dev.wait_for(r"hello_step\.py: config\['path'\]: missing")
        assert _get(f"{base}/hello") == {"hello": "world"}
    finally:
        dev.proc.send_signal(signal.SIGINT)
        dev.proc.wait(5)
        dev.stop()


def _get(url: str) -> object:
    try:
        return httpx.get(url, timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return None


def test_dev_refuses_a_broken_step_folder_with_the_file_and_key(tmp_path: Path, redis_url: str) -> None:
    (tmp_path / "bad_step.py").write_text(
        "config = {'type': 'event', 'name': 'Bad'}\nasync def handler(d, c): ...\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "workbench", "dev", "--steps", str(tmp_path)],
        cwd=ROOT, env={**os.environ, "REDIS_URL": redis_url}, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    file = (tmp_path / "bad_step.py").resolve()
    assert (
        result.stderr
        == f"error: {file}: config['subscribes']: missing (a event step needs name, subscribes, type)\n"
    )


def test_emit_starts_a_trace_the_worker_runs(stack, sync_redis) -> None:  # type: ignore[no-untyped-def]
    with stack.client() as client:
        pet = client.post("/pets", json={"name": "Rex", "species": "dog", "ageMonths": 3}).json()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "workbench",
            "emit",
            "feeding.reminder.enqueued",
            json.dumps({"petId": pet["id"]}),
        ],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    trace_id = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"[0-9A-Z]{26}", trace_id)
    with stack.client() as client:
        trace = wait_until(
            lambda: (
                (t := client.get(f"/_workbench/api/traces/{trace_id}").json()).get("status") == "completed"
                and t
            ),
            message="emitted trace completes",
        )
    assert [s["step"] for s in trace["spanList"]][:2] == ["cli", "SetNextFeedingReminder"]


def test_emit_rejects_unknown_topics_and_bad_json(redis_url: str) -> None:
    env = {**os.environ, "REDIS_URL": redis_url}
    cmd = [sys.executable, "-m", "workbench", "emit"]
    bad_topic = subprocess.run([*cmd, "no.such", "{}"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert bad_topic.returncode == 2 and bad_topic.stdout == ""
    assert bad_topic.stderr == "error: no step emits or subscribes to 'no.such'\n"
    bad_json = subprocess.run(
        [*cmd, "pet.created", "{nope"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert bad_json.returncode == 2 and bad_json.stdout == ""
    assert bad_json.stderr.startswith("error: JSON: Expecting property name enclosed in double quotes")


@pytest.mark.timeout(60)
def test_a_per_second_cron_runs_once_per_tick_with_three_workers(
    redis_url: str, tmp_path: Path, sync_redis
) -> None:  # type: ignore[no-untyped-def]
    from .conftest import FIXTURES, start_stack

    ticks = keys.STATE + "ticks"
    stack = start_stack(redis_url, tmp_path, steps_dir=FIXTURES / "ticker", workers=3)
    try:
        wait_until(lambda: len(sync_redis.hgetall(ticks)) >= 6, 20, message="six ticks")
    finally:
        stack.stop()
    counts = {int(k): int(v) for k, v in sync_redis.hgetall(ticks).items()}
    assert set(counts.values()) == {1}, counts  # never twice for one tick
    seconds = sorted(counts)
    assert seconds[-1] - seconds[0] + 1 == len(seconds), seconds  # and no tick missed
    # each tick's run logged once, by the worker that ran it; the runs were shared out
    ran = [
        [int(s) for s in re.findall(r" Tick +\S+ +tick  second='(\d+)'", w.output())] for w in stack.workers
    ]
    assert sorted(s for by_worker in ran for s in by_worker) == seconds, ran
    assert sum(1 for by_worker in ran if by_worker) >= 2, ran
