"""Work a handler leaves running (Motia's tutorial emits from an `asyncio.create_task` after returning):
it is not cancelled when the job ends, its records land in the same span marked as after its end, the
trace stays running until it is done, and the step's timeout still bounds it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.testing import Harness

from .conftest import steps_harness

LATER = """
import asyncio

config = {"type": "event", "name": "Later", "subscribes": ["start"], "emits": ["done"], "timeout": 5}


async def handler(data, ctx):
    async def follow_up():
        await asyncio.sleep(data["after"])
        ctx.logger.info("late line")
        await ctx.emit("done", {"n": data["n"]})

    asyncio.create_task(follow_up())
    ctx.logger.info("handler returns")
"""

DONE = """
config = {"type": "event", "name": "Done", "subscribes": ["done"]}


async def handler(data, ctx):
    await ctx.state.set("done", str(data["n"]), True)
"""

FAILS_LATER = """
import asyncio

config = {"type": "event", "name": "FailsLater", "subscribes": ["boom"], "emits": ["done"], "retries": 1}


async def handler(data, ctx):
    async def follow_up():
        await asyncio.sleep(0.2)
        await ctx.emit("done", {"n": 99})

    asyncio.create_task(follow_up())
    raise RuntimeError("the attempt fails")
"""


@pytest.fixture
def lab(tmp_path: Path, workbench_redis_url: str) -> Iterator[Harness]:
    with steps_harness(
        tmp_path, workbench_redis_url, {"later": LATER, "done": DONE, "fails_later": FAILS_LATER}
    ) as harness:
        yield harness


def test_late_records_land_in_the_span_marked_and_the_trace_waits_for_them(lab: Harness) -> None:
    trace_id = lab.emit("start", {"after": 0.3, "n": 1})
    result = lab.drain()  # waits for the left-over task and runs what it emitted
    assert result.steps == ["Later", "Done"]
    assert lab.state.get("done", "1") is True
    trace = lab.trace(trace_id)
    assert trace.status == "completed"
    span = trace.span("Later")
    assert span.status == "completed"
    events = {(e["kind"], e.get("message") or e.get("topic")): e for e in span.events}
    assert "afterEnd" not in events[("log", "handler returns")]
    assert events[("log", "late line")]["afterEnd"] is True
    assert events[("emit", "done")]["afterEnd"] is True
    assert events[("log", "late line")]["ts"] >= span.raw["finishedAt"]


def test_the_step_timeout_bounds_what_it_left_running(lab: Harness) -> None:
    trace_id = lab.emit("start", {"after": 30, "n": 2})  # past the step's 5 s timeout
    lab.drain()
    assert lab.state.get("done", "2") is None
    assert lab.trace(trace_id).status == "completed"
    warnings = [log.message for log in lab.logs("Later", "warning", trace_id=trace_id)]
    assert warnings == ["a task the handler started was still running at its timeout; cancelled"]


def test_a_failed_attempt_s_left_over_work_is_cancelled(lab: Harness) -> None:
    trace_id = lab.emit("boom", {})
    lab.drain()
    assert lab.state.get("done", "99") is None  # its emit never left
    assert lab.trace(trace_id).status == "failed"
    assert [e.topic for e in lab.emitted(trace_id=trace_id)] == ["boom"]
