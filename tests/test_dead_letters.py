"""Dead letters as a store: bounded by count and age, retried by the runtime (a retry that cannot run
keeps the letter and says why: 409), and a manual emit that fails closes its trace."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from redis import Redis

from workbench import keys
from workbench.job_queue import JobInfo
from workbench.registry import discover
from workbench.testing import Harness, harness_settings

from .conftest import write_step

FAILING = """
config = {"type": "event", "name": "Doomed", "subscribes": ["doom"], "retries": 1}


async def handler(data, ctx):
    raise RuntimeError("no")
"""
H = {"x-workbench": "1"}


@pytest.fixture
def lab(tmp_path: Path, workbench_redis_url: str) -> Iterator[tuple[Path, str]]:
    client = Redis.from_url(workbench_redis_url)
    client.flushdb()
    client.close()
    write_step(tmp_path, "doomed", FAILING)
    path = list(sys.path)
    yield tmp_path, workbench_redis_url
    sys.path[:] = path


def test_a_letter_whose_step_is_gone_is_kept_with_a_409(lab: tuple[Path, str]) -> None:
    steps, url = lab
    with Harness(harness_settings(url, steps), discover(steps)) as h:
        trace_id = h.emit("doom", {"n": 1})
        h.drain()
        (letter,) = h.dead_letters()
    (steps / "doomed_step.py").unlink()  # the step is removed from the project, the letter stays
    write_step(steps, "other", 'config = {"type": "noop", "name": "Other"}\n')
    with Harness(harness_settings(url, steps), discover(steps)) as h:
        one = h.client.post(f"/_workbench/api/dead-letters/{letter['id']}/retry", headers=H)
        assert one.status_code == 409
        assert "no background step named 'Doomed'" in one.json()["detail"]
        every = h.client.post("/_workbench/api/dead-letters/retry-all", headers=H)
        assert every.status_code == 202 and every.json()["retried"] == 0 and len(every.json()["kept"]) == 1
        page = h.client.post(f"/_workbench/dead-letters/{letter['id']}/retry", headers=H)
        assert page.status_code == 409
        assert [d["id"] for d in h.dead_letters()] == [letter["id"]]  # kept, all three times
        assert h.trace(trace_id).status == "failed"
        assert h.client.post("/_workbench/api/dead-letters/nope/retry", headers=H).status_code == 404


def test_a_retried_letter_runs_again_in_its_trace(lab: tuple[Path, str]) -> None:
    steps, url = lab
    with Harness(harness_settings(url, steps), discover(steps)) as h:
        trace_id = h.emit("doom", {"n": 1})
        h.drain()
        (letter,) = h.dead_letters()
        retried = h.client.post(f"/_workbench/api/dead-letters/{letter['id']}/retry", headers=H)
        assert retried.status_code == 202 and retried.json()["jobId"]
        assert h.dead_letters() == []
        assert h.trace(trace_id).status == "running"
        h.drain()
        assert [s.attempt for s in h.trace(trace_id).spans_of("Doomed")] == [1, 2]
        assert len(h.dead_letters()) == 1  # it failed again: a new letter


def test_dead_letters_are_bounded_by_count_and_age(lab: tuple[Path, str]) -> None:
    steps, url = lab
    settings = replace(harness_settings(url, steps), dead_letters_max=3, dead_letters_age_s=3600)
    with Harness(settings, discover(steps)) as h:
        letters = h.runtime.dead_letters
        info = JobInfo("job", 1, 0)
        for n in range(5):
            h.call(lambda n=n: letters.add({"step": "Doomed", "data": {"n": n}}, info, 1, {"message": "x"}))
        assert [d["data"]["n"] for d in h.dead_letters()] == [4, 3, 2]  # the newest three
        raw = Redis.from_url(url)
        try:
            oldest = raw.zrange(keys.DEAD, 0, 0)[0]
            raw.zadd(keys.DEAD, {oldest: 1})  # failed long ago
        finally:
            raw.close()
        assert h.call(letters.trim) == 1
        assert [d["data"]["n"] for d in h.dead_letters()] == [4, 3]


def test_a_manual_emit_that_fails_closes_its_trace(workbench: Harness) -> None:
    with pytest.raises(ValueError, match="lone surrogate"):
        workbench.call(lambda: workbench.runtime.emit_new_trace("pet.created", {"x": "\ud800"}))
    (trace,) = workbench.traces()
    assert trace.status == "failed"
    assert trace.spans[0].status == "failed" and trace.spans[0].error is not None


LOUD = """
config = {"type": "event", "name": "Loud", "subscribes": ["shout"]}


async def handler(data, ctx):
    for n in range(data["lines"]):
        ctx.logger.info("line", n=n, blob="x" * data["blob"])
"""


def test_a_span_keeps_a_bounded_number_of_log_lines_and_bytes(lab: tuple[Path, str]) -> None:
    steps, url = lab
    write_step(steps, "loud", LOUD)
    settings = replace(harness_settings(url, steps), span_log_cap=50, span_log_bytes=1 << 20, field_cap=100)
    with Harness(settings, discover(steps)) as h:
        trace_id = h.emit("shout", {"lines": 5000, "blob": 10})
        h.drain()
        logs = h.logs("Loud", trace_id=trace_id)
        assert len(logs) == 51  # 50 kept, then one line saying the rest were not
        assert logs[-1].level == "warning" and logs[-1].message.startswith("log cap reached")
        assert h.trace(trace_id).status == "completed"
        big = h.emit("shout", {"lines": 3, "blob": 20_000_000 // 1000})
        h.drain()
        fields = [log.fields["blob"] for log in h.logs("Loud", trace_id=big)]
        assert len(fields) == 3 and all(len(f) <= 110 and f.endswith("…") for f in fields)
