"""What step authors import: `from workbench import ...`, and that each name is the object the
framework really hands to (or accepts from) a step, behaving as the README documents."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import inspect
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

import workbench
from workbench.web.app import create_app

from .conftest import PET_STEPS, make_settings, write_step

PUBLIC = [
    "ApiConfig", "ApiHandler", "ApiRequest", "ApiResponse", "Context", "CronConfig", "CronHandler",
    "EventConfig", "EventHandler", "NoopConfig", "Registry", "RetriesConfig", "RetryPolicy", "Settings",
    "StepConfig", "StepError", "StepLogger", "UndeclaredEmitError", "__version__", "api_handler",
    "cron_handler", "discover", "event_handler",
]  # fmt: skip
FUNCTIONS = {"api_handler", "cron_handler", "discover", "event_handler"}
NOT_CLASSES = FUNCTIONS | {"StepConfig", "__version__"}  # a union of the config types; a string


@pytest.fixture(autouse=True)
def _isolate_imports() -> Iterator[None]:
    """discover() adds the steps folder to sys.path and registers `workbench_steps.*` modules: undo both."""
    path = list(sys.path)
    modules = set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if name.startswith("workbench_steps"):
            del sys.modules[name]


def test_exactly_the_documented_names_are_exported() -> None:
    assert sorted(workbench.__all__) == PUBLIC
    star: dict[str, Any] = {}
    exec("from workbench import *", star)
    assert sorted(k for k in star if k != "__builtins__") == PUBLIC
    classes = {name for name in PUBLIC if inspect.isclass(getattr(workbench, name))}
    assert classes == set(PUBLIC) - NOT_CLASSES
    assert {name for name in PUBLIC if inspect.isfunction(getattr(workbench, name))} == FUNCTIONS
    assert workbench.__version__ == importlib.metadata.version("workbench-steps")


def test_errors_are_exceptions_a_step_author_can_catch() -> None:
    assert issubclass(workbench.StepError, Exception)
    assert issubclass(workbench.UndeclaredEmitError, Exception)
    exc = workbench.StepError("/x/a_step.py", "path", "is wrong")
    assert (exc.file, exc.key, exc.reason) == ("/x/a_step.py", "path", "is wrong")
    assert str(exc) == "/x/a_step.py: config['path']: is wrong"


def test_discover_returns_a_registry_and_raises_step_error(tmp_path: Path) -> None:
    registry = workbench.discover(PET_STEPS)
    assert type(registry) is workbench.Registry
    assert len(registry) == 8 and registry.get("CreatePet") is not None
    reminder = registry.get("SetNextFeedingReminder")
    retries = getattr(reminder, "retries", None)
    assert type(retries) is workbench.RetryPolicy and retries == workbench.RetryPolicy(3, 1.0, 10.0)
    write_step(tmp_path, "bad", "config = {'type': 'api', 'name': 'Bad'}\n")
    with pytest.raises(workbench.StepError) as info:
        workbench.discover(tmp_path)
    assert (info.value.key, info.value.reason) == (
        "method",
        "missing (a api step needs method, name, path, type)",
    )
    assert info.value.file == str((tmp_path / "bad_step.py").resolve())


def test_retry_policy_defaults_and_delays() -> None:
    policy = workbench.RetryPolicy()
    assert (policy.attempts, policy.backoff_s, policy.max_backoff_s) == (3, 1.0, 30.0)
    assert [policy.delay_s(n, 0.0) for n in (1, 2, 3, 6, 7)] == [1.0, 2.0, 4.0, 30.0, 30.0]
    assert policy.delay_s(1, 0.5) == 1.125
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.attempts = 5  # type: ignore[misc]


def test_api_response_and_request_defaults() -> None:
    response = workbench.ApiResponse()
    assert (response.status, response.body, dict(response.headers)) == (200, None, {})
    assert workbench.ApiResponse(201, {"id": 1}, {"x-a": "b"}).headers == {"x-a": "b"}
    request = workbench.ApiRequest("GET", "/pets")
    assert (request.body, dict(request.path_params), dict(request.query_params)) == (None, {}, {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.method = "POST"  # type: ignore[misc]


def test_settings_from_env_reads_the_documented_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://example:1234/3")
    monkeypatch.setenv("WORKBENCH_STEPS", "elsewhere")
    monkeypatch.setenv("WORKBENCH_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("WORKBENCH_CONCURRENCY", "7")
    monkeypatch.setenv("WORKBENCH_TRACING", "0")
    settings = workbench.Settings.from_env()
    assert type(settings) is workbench.Settings
    assert settings.redis_url == "redis://example:1234/3"
    assert settings.steps_dir == Path("elsewhere")
    assert settings.log_level == logging.WARNING
    assert settings.concurrency == 7
    assert settings.tracing is False
    defaults = workbench.Settings()
    assert (defaults.retention_traces, defaults.retention_age_s) == (10_000, 7 * 24 * 3600)
    assert (defaults.lease_s, defaults.grace_s, defaults.max_body_bytes) == (5.0, 10.0, 1_048_576)


PROBE_STEP = """
from workbench import ApiRequest, ApiResponse, Context, StepLogger, UndeclaredEmitError

config = {"type": "api", "name": "Probe", "method": "POST", "path": "/probe", "emits": ["probe.done"]}


async def handler(request, ctx):
    try:
        await ctx.emit("not.declared", {})
        refused = None
    except UndeclaredEmitError as exc:
        refused = str(exc)
    return ApiResponse(
        201,
        {
            "request": type(request) is ApiRequest,
            "ctx": type(ctx) is Context,
            "logger": type(ctx.logger) is StepLogger,
            "body": request.body,
            "refused": refused,
        },
        {"x-probe": "yes"},
    )
"""


async def test_a_step_gets_and_returns_the_exported_types(redis_url: str, tmp_path: Path) -> None:
    """A real request through the app: the handler receives `workbench.ApiRequest` and
    `workbench.Context`, an undeclared emit raises `workbench.UndeclaredEmitError`, and the
    `workbench.ApiResponse` it returns becomes the HTTP response."""
    write_step(tmp_path, "probe", PROBE_STEP)
    settings = make_settings(redis_url, tmp_path)
    async with AsyncTestClient(create_app(settings, workbench.discover(tmp_path))) as client:
        r = await client.post("/probe", json={"n": 1})
    assert r.status_code == 201, r.text
    assert r.headers["x-probe"] == "yes"
    body = r.json()
    refused = body.pop("refused")
    assert body == {"request": True, "ctx": True, "logger": True, "body": {"n": 1}}
    assert isinstance(refused, str) and "'not.declared'" in refused and "declared: probe.done" in refused


def test_step_logger_writes_through_std_logging_with_fields(caplog: pytest.LogCaptureFixture) -> None:
    logger = workbench.StepLogger("Probe")
    with caplog.at_level(logging.DEBUG, logger="steps.Probe"):
        logger.debug("d")
        logger.info("Pet created", petId=7)
        logger.warning("w")
        logger.error("e", why="x")
    got = [(r.name, r.levelno, r.getMessage(), r.__dict__.get("wb_fields")) for r in caplog.records]
    assert got == [
        ("steps.Probe", logging.DEBUG, "d", {}),
        ("steps.Probe", logging.INFO, "Pet created", {"petId": 7}),
        ("steps.Probe", logging.WARNING, "w", {}),
        ("steps.Probe", logging.ERROR, "e", {"why": "x"}),
    ]
    assert {r.filename for r in caplog.records} == {Path(__file__).name}  # the caller's line, not ours
