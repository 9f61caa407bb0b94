"""The path of a new user, with the installed package only: build the wheel and the sdist, install the
wheel into a fresh virtualenv outside the checkout, `workbench new` a project, run its tests and
its type check, start its `workbench dev`, and use every page, every static file and the flow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from workbench.redis_server import free_port, wait_for_port

from .conftest import ROOT, wait_until

PAGES = [
    "/_workbench/", "/_workbench/flows", "/_workbench/endpoints", "/_workbench/traces", "/_workbench/logs",
    "/_workbench/cron", "/_workbench/state", "/_workbench/emit", "/_workbench/dead-letters",
    "/_workbench/status", "/_workbench/flows/node/PlaceOrder", "/schema/openapi.json",
]  # fmt: skip


def run(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel and the sdist, built from the checkout as a release would be."""
    out = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], cwd=out, env=env, timeout=300)
    return out


@pytest.fixture(scope="module")
def user_env(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A fresh virtualenv, outside the checkout, with only the wheel (and its dependencies) installed."""
    home = tmp_path_factory.mktemp("user")
    venv.create(home / "venv", with_pip=True)
    bindir = home / "venv" / "bin"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VIRTUAL_ENV", "PYTHON", "WORKBENCH", "REDIS"))
    }
    env.update(PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}", PIP_DISABLE_PIP_VERSION_CHECK="1")
    wheel = next(dist.glob("*.whl"))
    run([str(bindir / "python"), "-m", "pip", "install", "-q", str(wheel)], cwd=home, env=env, timeout=600)
    yield home, env


def test_the_wheel_carries_the_ui_the_template_and_the_entry_points(dist: Path) -> None:
    wheel = next(dist.glob("workbench_steps-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"workbench/templates/{p.relative_to(ROOT / 'templates')}"
        for p in (ROOT / "templates").rglob("*.html")
    }
    expected |= {
        f"workbench/static/{p.relative_to(ROOT / 'static')}"
        for p in (ROOT / "static").rglob("*")
        if p.is_file()
    }
    expected |= {
        str(p.relative_to(ROOT))
        for p in (ROOT / "workbench").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert expected - names == set()
    assert "workbench/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "steps/", "bench/"))]
    info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    entry_points = zipfile.ZipFile(wheel).read(info).decode()
    assert "workbench = workbench.cli:main" in entry_points
    assert "[pytest11]\nworkbench = workbench.testing.plugin" in entry_points
    metadata = zipfile.ZipFile(wheel).read(info.replace("entry_points.txt", "METADATA")).decode()
    assert "Name: workbench-steps" in metadata and "License-Expression: MIT" in metadata
    assert "Classifier: Typing :: Typed" in metadata


def test_the_sdist_carries_the_ui(dist: Path) -> None:
    sdist = next(dist.glob("workbench_steps-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for folder in ("templates", "static"):
        files = {str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*") if p.is_file()}
        assert files - names == set()
    assert "LICENSE" in names and "workbench/project_template/pyproject.toml.in" in names


def test_a_new_project_from_the_installed_package(user_env: tuple[Path, dict[str, str]]) -> None:
    home, env = user_env
    bindir = home / "venv" / "bin"
    version = run([str(bindir / "workbench"), "--version"], cwd=home, env=env).stdout.strip()
    assert version.startswith("workbench 0.")

    started = time.monotonic()
    run([str(bindir / "workbench"), "new", "shop"], cwd=home, env=env)
    new_took = time.monotonic() - started
    project = home / "shop"
    assert (project / "pyproject.toml").read_text().count("workbench-steps>=") == 1
    assert (project / ".gitignore").exists() and (project / "README.md").exists()

    # a non-empty folder is refused, and left as it was
    before = sorted(str(p.relative_to(project)) for p in project.rglob("*"))
    refused = subprocess.run(
        [str(bindir / "workbench"), "new", "shop"],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "is not empty" in refused.stderr
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*")) == before

    # the project's own commands: install its test tools, check, type-check and test its steps
    run(
        [str(bindir / "python"), "-m", "pip", "install", "-q", "-e", ".[test]"],
        cwd=project,
        env=env,
        timeout=600,
    )
    assert "ok: 4 steps" in run([str(bindir / "workbench"), "check"], cwd=project, env=env).stdout
    run([str(bindir / "mypy")], cwd=project, env=env)
    tested = run([str(bindir / "pytest"), "-q", "-p", "no:cacheprovider"], cwd=project, env=env)
    assert "5 passed" in tested.stdout
    print(f"\nnew project's tests: {tested.stdout.strip().splitlines()[-1]}")

    # its workbench: every page and static file, and an order that fans out into a completed trace
    port = free_port()
    dev_started = time.monotonic()
    dev = subprocess.Popen(
        [str(bindir / "workbench"), "dev", "--port", str(port), "--redis", "embedded", "--no-reload"],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert wait_for_port("127.0.0.1", port, 60), "workbench dev did not start"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            wait_until(lambda: client.get("/_workbench/").status_code == 200, 30, message="the first page")
            first_page = new_took + time.monotonic() - dev_started
            for page in PAGES:
                response = client.get(page)
                assert response.status_code == 200, f"{page}: {response.status_code} {response.text[:300]}"
            static = Path(run([str(bindir / "python"), "-c",
                              "from workbench.ui_files import ui_dir; print(ui_dir('static'))"],
                              cwd=home, env=env).stdout.strip())  # fmt: skip
            assert home in static.parents  # the installed copy, not the checkout's
            files = [p for p in static.rglob("*") if p.is_file()]
            assert len(files) >= 4
            for path in files:
                url = "/_workbench/static/" + str(path.relative_to(static))
                assert client.get(url).status_code == 200, url
            order = client.post("/orders", json={"item": "coffee", "quantity": 2})
            assert order.status_code == 201
            trace_id = order.headers["x-trace-id"]
            assert client.get(f"/_workbench/traces/{trace_id}").status_code == 200

            def finished() -> dict[str, Any] | None:
                trace: dict[str, Any] = client.get(f"/_workbench/api/traces/{trace_id}").json()
                return trace if trace["status"] != "running" else None

            trace = wait_until(finished, 30, message="the order's trace to finish")
            assert trace["status"] == "completed", json.dumps(trace)[:2000]
            assert [s["step"] for s in trace["spanList"]] == ["PlaceOrder", "ConfirmOrder"]
            assert client.get("/orders/1").json()["status"] == "confirmed"
        print(f"\nnew project: `workbench new` {new_took:.2f} s, then `workbench dev` to the first page: "
              f"{first_page:.1f} s in all")  # fmt: skip
    finally:
        dev.send_signal(signal.SIGINT)
        try:
            output = dev.communicate(timeout=15)[0]
        except subprocess.TimeoutExpired:
            dev.kill()
            output = dev.communicate()[0]
    assert "embedded redis-server" in output
