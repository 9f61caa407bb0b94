""" "Save as test" (workbench/testing/export.py): a trace recorded by a real stack (web and worker
processes) becomes a pytest file; run by pytest in a subprocess, it passes against the code that
recorded it and fails after a change to what the steps do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import PET_STEPS, ROOT, start_stack, wait_until

RUFF = Path(sys.executable).parent / "ruff"
CREATE = "steps/pets/create_pet_step.py"


def record(redis_url: str, project: Path) -> tuple[str, str]:
    """POST /pets on a stack running the project's steps; (the generated file, its download name)."""
    stack = start_stack(redis_url, project, steps_dir=project / "steps")
    try:
        with stack.client() as c:
            created = c.post("/pets", json={"name": "Jack", "species": "dog", "ageMonths": 24})
            assert created.status_code == 201, created.text
            trace_id = created.headers["x-trace-id"]

            def done() -> bool:
                trace = c.get(f"/_workbench/api/traces/{trace_id}").json()
                return bool(trace["status"] == "completed" and "SetNextFeedingReminder" in trace["steps"])

            wait_until(done, message="the trace to complete")
            exported = c.get(f"/_workbench/api/traces/{trace_id}/test")
    finally:
        stack.stop()
    assert exported.status_code == 200, exported.text
    name = exported.headers["content-disposition"].split('filename="')[1].rstrip('"')
    return exported.text, name


def run_pytest(project: Path, redis_url: str, test_file: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WORKBENCH_TEST_REDIS_URL": redis_url}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    shutil.copytree(PET_STEPS, folder / "steps", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "tests").mkdir()
    (folder / "pytest.ini").write_text("[pytest]\nworkbench_steps = steps\n")
    return folder


@pytest.mark.parametrize(
    ("change", "failure"),
    [
        # a different value in state: the pet's name is stored upper-cased
        (('"name": body["name"].strip(),', '"name": body["name"].strip().upper(),'), "'JACK'"),
        # a topic no longer emitted
        (
            (
                '    await ctx.emit("feeding.reminder.enqueued", {"petId": pet["id"], "enqueuedAt": now})\n',
                "",
            ),
            "feeding.reminder.enqueued",
        ),
    ],
)
def test_a_saved_trace_passes_then_fails_after_a_change(
    redis_url: str, project: Path, change: tuple[str, str], failure: str
) -> None:
    source, name = record(redis_url, project)
    assert name.startswith("test_post_pets_") and name.endswith(".py")
    test_file = project / "tests" / name
    test_file.write_text(source)
    for check in (["check", "--isolated"], ["format", "--isolated", "--check"]):
        linted = subprocess.run([str(RUFF), *check, str(test_file)], capture_output=True, text=True)
        assert linted.returncode == 0, linted.stdout + linted.stderr + source
    assert "ANY_TIME" in source and 'body["id"]' in source  # times and the new pet's id vary per run

    passed = run_pytest(project, redis_url, test_file)
    assert passed.returncode == 0, passed.stdout + passed.stderr + source
    assert "1 passed" in passed.stdout
    again = run_pytest(project, redis_url, test_file)  # ids and times differ this time: still passes
    assert again.returncode == 0, again.stdout + again.stderr

    step = project / CREATE
    old, new = change
    assert old in step.read_text()
    step.write_text(step.read_text().replace(old, new))
    failed = run_pytest(project, redis_url, test_file)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert failure in failed.stdout and "1 failed" in failed.stdout


def test_the_cli_writes_the_same_file(redis_url: str, project: Path) -> None:
    source, _ = record(redis_url, project)
    trace_id = source.split("trace ", 1)[1].split(" ", 1)[0]
    out = project / "tests" / "test_from_cli.py"
    env = {**os.environ, "REDIS_URL": redis_url, "WORKBENCH_STEPS": str(project / "steps")}
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "export-test", trace_id, "-o", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # the counter's seed is read when the file is written: the same, as nothing ran in between
    assert out.read_text() == source
