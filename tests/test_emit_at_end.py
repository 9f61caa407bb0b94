"""A run's emits leave only when it succeeds, all together: a failed attempt's emits are not delivered
(so a retry never sends them twice), and an API handler that fails after emitting queues nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.testing import Harness

from .conftest import steps_harness

FLAKY = """
config = {"type": "event", "name": "Flaky", "subscribes": ["go"], "emits": ["next"], "retries": 3}


async def handler(data, ctx):
    await ctx.emit("next", {"attempt": ctx.attempt})
    if ctx.attempt < 3:
        raise RuntimeError("fails after emitting")
"""

COUNT = """
config = {"type": "event", "name": "Count", "subscribes": ["next"]}


async def handler(data, ctx):
    await ctx.state.increment("count", "runs")
    await ctx.state.set("count", "attempt", data["attempt"])
"""

API = """
from workbench import ApiResponse

config = {"type": "api", "name": "Half", "method": "POST", "path": "/half", "emits": ["next"]}


async def handler(request, ctx):
    await ctx.emit("next", {"attempt": 0})
    if request.body.get("fail"):
        raise RuntimeError("fails after emitting")
    if request.body.get("answer"):
        return ApiResponse(request.body["answer"], {})
    return ApiResponse(202, {"ok": True})
"""


@pytest.fixture
def lab(tmp_path: Path, workbench_redis_url: str) -> Iterator[Harness]:
    with steps_harness(
        tmp_path, workbench_redis_url, {"flaky": FLAKY, "count": COUNT, "half": API}
    ) as harness:
        yield harness


def test_a_failed_attempts_emits_are_not_delivered(lab: Harness) -> None:
    trace_id = lab.emit("go", {})
    lab.drain()
    assert lab.state.get("count", "runs") == 1  # only the successful attempt's emit ran
    assert lab.state.get("count", "attempt") == 3
    trace = lab.trace(trace_id)
    assert [(s.attempt, s.status) for s in trace.spans_of("Flaky")] == [
        (1, "failed"),
        (2, "failed"),
        (3, "completed"),
    ]
    not_sent = [log for log in lab.logs("Flaky", "warning", trace_id=trace_id) if "not sent" in log.message]
    assert [log.fields["notSent"] for log in not_sent] == [["next"], ["next"]]


@pytest.mark.parametrize("body", [{"fail": True}, {"answer": 503}])
def test_an_api_handler_that_fails_after_emitting_queues_nothing(
    lab: Harness, body: dict[str, object]
) -> None:
    response = lab.client.post("/half", json=body)
    assert response.status_code in (500, 503)
    assert lab.drain().steps == []
    assert lab.state.get("count", "runs") is None
    assert lab.trace(response).status == "failed"


def test_an_api_handler_that_succeeds_sends_its_emits(lab: Harness) -> None:
    response = lab.client.post("/half", json={})
    assert response.status_code == 202
    assert lab.drain().steps == ["Count"]
    assert lab.trace(response).status == "completed"
