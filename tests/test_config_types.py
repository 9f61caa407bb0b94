"""Typed step configs and handler Protocols: plain dicts still load, and mypy catches a misspelt key, a key
of another kind and a handler with the wrong signature, as it would in a user's project."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from workbench import ApiConfig, EventConfig, api_handler
from workbench.registry import discover

from .conftest import write_step

GOOD = """
from typing import Any

from workbench import ApiConfig, ApiRequest, ApiResponse, Context, EventConfig, api_handler, event_handler

config: ApiConfig = {"type": "api", "name": "Hello", "method": "GET", "path": "/hello"}


@api_handler
async def handler(request: ApiRequest, ctx: Context) -> ApiResponse:
    return ApiResponse(200, {"hello": request.query_params.get("name", "world")})


other: EventConfig = {"type": "event", "name": "On", "subscribes": ["a"], "retries": {"attempts": 2}}


@event_handler
async def on(data: Any, ctx: Context) -> None:
    await ctx.emit("a", data)
"""

MISSPELT = """
from workbench import EventConfig

config: EventConfig = {"type": "event", "name": "Typo", "subscribe": ["a"]}
"""

WRONG_KIND_KEY = """
from workbench import CronConfig

config: CronConfig = {"type": "cron", "name": "Nightly", "cron": "0 2 * * *", "path": "/x"}
"""

WRONG_SIGNATURE = """
from workbench import Context, api_handler


@api_handler
async def handler(ctx: Context) -> None:
    return None
"""


def mypy(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental",
         "--cache-dir", str(folder / ".cache"),
         "--config-file", "/dev/null", str(folder)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_mypy_accepts_good_steps_and_names_each_mistake(tmp_path: Path) -> None:
    good = tmp_path / "good"
    write_step(good, "hello", GOOD)
    done = mypy(good)
    assert done.returncode == 0, done.stdout

    bad = tmp_path / "bad"
    write_step(bad, "misspelt", MISSPELT)
    write_step(bad, "kind", WRONG_KIND_KEY)
    write_step(bad, "signature", WRONG_SIGNATURE)
    done = mypy(bad)
    assert done.returncode == 1
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    by_file: dict[str, list[str]] = {}
    for line in errors:
        by_file.setdefault(Path(line.split(":", 1)[0]).name, []).append(line.split(": error: ", 1)[1])
    assert sorted(by_file["misspelt_step.py"]) == sorted(
        [
            'Missing key "subscribes" for TypedDict "EventConfig"  [typeddict-item]',
            'Extra key "subscribe" for TypedDict "EventConfig"  [typeddict-unknown-key]',
        ]
    )
    assert by_file["kind_step.py"] == ['Extra key "path" for TypedDict "CronConfig"  [typeddict-unknown-key]']
    assert len(by_file["signature_step.py"]) == 1
    assert 'Value of type variable "_Api" of "api_handler" cannot be' in by_file["signature_step.py"][0]
    assert len(by_file) == 3


def test_typed_configs_are_plain_dicts_at_run_time(tmp_path: Path) -> None:
    config: ApiConfig = {"type": "api", "name": "Hello", "method": "GET", "path": "/hello"}
    assert type(config) is dict
    event: EventConfig = {"type": "event", "name": "On", "subscribes": ["a"]}
    assert type(event) is dict

    async def handler(request: object, ctx: object) -> None:
        return None

    assert api_handler(handler) is handler  # type: ignore[arg-type]  # the check is mypy's, not the runtime's
    write_step(tmp_path, "hello", GOOD)
    registry = discover(tmp_path)
    assert sorted(s.name for s in registry) == ["Hello"]
