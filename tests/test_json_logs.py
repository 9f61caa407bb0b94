"""`workbench start` / `workbench worker` with `--log-format json`: one JSON object a line, each with
the trace id, span id and step of the span it was logged in."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from workbench.console import ConsoleFormatter, JsonFormatter, configure_logging
from workbench.redis_server import free_port, wait_for_port
from workbench.tracing.recorder import Recorder, SpanScope, current_scope
from workbench.tracing.records import Span

from .conftest import PET_STEPS, spawn, wait_until


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of a process's output, as JSON (a line that is not JSON fails the test)."""
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError as exc:
            raise AssertionError(f"not a JSON line: {line!r}") from exc
    return parsed


def test_start_and_worker_log_json_lines_with_the_span_of_each(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "WORKBENCH_STEPS": str(PET_STEPS), "WORKBENCH_MODE": "dev",
           "WORKBENCH_POLL_DELAY": "0.5", "PYTHONUNBUFFERED": "1"}  # fmt: skip
    web = spawn(["start", "--port", str(port), "--log-format", "json"], env, tmp_path / "web.log")
    worker = spawn(["worker", "--log-format", "json"], env, tmp_path / "worker.log")
    try:
        assert wait_for_port("127.0.0.1", port, 20), web.output()
        import httpx

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            created = client.post("/pets", json={"name": "Jack", "species": "dog", "ageMonths": 24})
            assert created.status_code == 201
            trace_id = created.headers["x-trace-id"]
            pet_id = created.json()["id"]
            trace = wait_until(
                lambda: (
                    (t := client.get(f"/_workbench/api/traces/{trace_id}").json())["status"] == "completed"
                    and t
                ),
                timeout=20,
                message="the pet's trace to complete",
            )
        # the span each line was logged in, as the trace keeps it (the step runs more than once)
        logged_in = {
            e["message"]: (span["id"], span["step"])
            for span in trace["spanList"]
            for e in span["events"]
            if e["kind"] == "log"
        }

        def line_of(proc_output: str, message: str) -> dict[str, Any]:
            found = [line for line in json_lines(proc_output) if line["message"] == message]
            assert len(found) == 1, found
            return found[0]

        wait_until(lambda: "Pet registered in the lifecycle" in worker.output(), message="the worker's line")
        api_line = line_of(web.output(), "Pet created")
        assert set(api_line) == {
            "time",
            "level",
            "logger",
            "message",
            "trace_id",
            "span_id",
            "step",
            "fields",
        }
        assert api_line["level"] == "info"
        assert api_line["logger"] == "steps.CreatePet"
        assert (api_line["trace_id"], api_line["span_id"], api_line["step"]) == (
            trace_id,
            *logged_in["Pet created"],
        )
        assert api_line["step"] == "CreatePet"
        assert api_line["fields"] == {"petId": pet_id, "name": "Jack", "species": "dog"}
        assert api_line["time"].endswith("Z") and "T" in api_line["time"]

        job_line = line_of(worker.output(), "Pet registered in the lifecycle")
        assert (job_line["trace_id"], job_line["span_id"], job_line["step"]) == (
            trace_id,
            *logged_in["Pet registered in the lifecycle"],
        )
        assert job_line["step"] == "PetLifecycleOrchestrator"
        assert job_line["fields"] == {"petId": pet_id, "status": "new"}
    finally:
        web.stop()
        worker.stop()
    # every line either process wrote, to its end (shutdown lines included), is JSON; lines outside a
    # span carry no trace
    for proc in (web, worker):
        lines = json_lines(proc.output())
        assert lines
        outside = [line for line in lines if line["step"] is None]
        assert all(line["trace_id"] is None and line["span_id"] is None for line in outside)


def test_the_default_stays_the_coloured_lines(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "WORKBENCH_STEPS": str(PET_STEPS), "WORKBENCH_MODE": "dev",
           "PYTHONUNBUFFERED": "1", "WORKBENCH_LOG_LEVEL": "INFO"}  # fmt: skip
    web = spawn(["start", "--port", str(port)], env, tmp_path / "web.log")
    try:
        assert wait_for_port("127.0.0.1", port, 20), web.output()
        import httpx

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            assert (
                client.post("/pets", json={"name": "Rex", "species": "dog", "ageMonths": 2}).status_code
                == 201
            )
        wait_until(lambda: "Pet created" in web.output(), message="the step's line")
    finally:
        web.stop()
    line = next(line for line in web.output().splitlines() if "Pet created" in line)
    assert not line.startswith("{")
    assert " INFO    CreatePet " in line and "petId=" in line


def test_formatter_exceptions_odd_values_and_the_scope() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.json_logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        recorder = Recorder.__new__(Recorder)  # never written to: the scope only names the span
        span = Span(id="s1", trace_id="t1", step="Step1", kind="event")
        token = current_scope.set(SpanScope(recorder, span))
        try:
            try:
                raise ValueError("boom")
            except ValueError:
                logger.error("failed %s", "hard", exc_info=True, extra={"odd": {1, 2}, "n": 3, "text": "é"})
        finally:
            current_scope.reset(token)
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert (first["message"], first["level"], first["logger"]) == ("failed hard", "error", "tests.json_logs")
    assert (first["trace_id"], first["span_id"], first["step"]) == ("t1", "s1", "Step1")
    assert first["fields"] == {"odd": "{1, 2}", "n": 3, "text": "é"}
    assert first["exception"].startswith("Traceback") and "ValueError: boom" in first["exception"]
    assert (second["message"], second["trace_id"], second["span_id"], second["step"]) == (
        "outside",
        None,
        None,
        None,
    )
    assert second["fields"] == {}


def test_configure_logging_picks_the_formatter() -> None:
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        configure_logging(logging.INFO, "json")
        ours = [h for h in root.handlers if getattr(h, "_workbench", False)]
        assert len(ours) == 1 and isinstance(ours[0].formatter, JsonFormatter)
        assert getattr(ours[0], "stream", None) is sys.stdout
        configure_logging(logging.INFO)
        ours = [h for h in root.handlers if getattr(h, "_workbench", False)]
        assert len(ours) == 1 and isinstance(ours[0].formatter, ConsoleFormatter)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
