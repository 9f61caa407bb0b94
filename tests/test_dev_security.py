"""`dev` and `start` against the network: loopback Host names only unless told, no open workbench on a
non-loopback address without a token or an explicit --insecure, and tokens long enough to guard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from workbench.redis_server import free_port, wait_for_port

from .conftest import PET_STEPS, ROOT, Stack, wait_until


def workbench(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_dev_on_the_network_needs_a_token_or_insecure() -> None:
    done = workbench("dev", "--host", "0.0.0.0", "--port", str(free_port()), "--no-reload")
    assert done.returncode == 2
    assert "set WORKBENCH_TOKEN" in done.stderr and "--insecure" in done.stderr
    assert "Workbench: http" not in done.stdout  # nothing was started


def test_dev_with_insecure_says_so_and_answers_only_the_names_it_was_given(
    redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "dev.log"
    with log.open("w") as out:
        dev = subprocess.Popen(
            [sys.executable, "-m", "workbench", "dev", "--host", "0.0.0.0", "--port", str(port),
             "--no-reload", "--insecure", "--allow-host", "pets.test", "--redis", redis_url,
             "--steps", str(PET_STEPS)],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    try:
        assert wait_for_port("127.0.0.1", port, 30), log.read_text()
        wait_until(lambda: "Workbench: http" in log.read_text(), 30, message="dev to be ready")
        assert "warning: --insecure" in log.read_text()
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{url}/_workbench/api/health").status_code == 200, 30, message="web")
        assert httpx.get(f"{url}/pets", headers={"host": f"pets.test:{port}"}).status_code == 200
        rebound = httpx.get(f"{url}/_workbench/api/state", headers={"host": "attacker.example"})
        assert rebound.status_code == 421
    finally:
        dev.send_signal(signal.SIGINT)
        dev.wait(15)


def test_a_rebinding_host_is_refused_by_the_dev_web_process(stack: Stack) -> None:
    with stack.client() as client:
        assert client.get("/_workbench/api/state").status_code == 200
        for path in ("/_workbench/api/state", "/pets"):
            response = client.get(path, headers={"host": "rebind.example:80"})
            assert response.status_code == 421, response.text
        emit = client.post(
            "/_workbench/api/emit", json={"topic": "pet.created", "data": {}},
            headers={"host": "rebind.example", "x-workbench": "1"},
        )  # fmt: skip
        assert emit.status_code == 421


def test_a_short_token_is_refused_at_start() -> None:
    done = workbench(
        "start", "--port", str(free_port()), env={"WORKBENCH_UI": "1", "WORKBENCH_TOKEN": "short"}
    )
    assert done.returncode != 0
    assert "WORKBENCH_TOKEN must be at least 16 characters" in done.stderr
