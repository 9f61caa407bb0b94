"""tracing/filters.py: what a trace or a log line must match, and that the store's queries, the
JSON API and the pages' live stream all keep exactly the records it matches."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.plugins.jinja import JinjaTemplateEngine
from redis.asyncio import Redis

from workbench.tracing.feed import FeedRecord
from workbench.tracing.filters import LEVELS, LogFilter, TraceFilter
from workbench.tracing.recorder import Recorder
from workbench.tracing.records import Event, Span
from workbench.tracing.store import TraceStore
from workbench.ui_files import ui_dir
from workbench.web.live_html import renderer
from workbench.web.pages import URLS
from workbench.web.templating import environment


def trace(**over: Any) -> dict[str, Any]:
    base = {"id": "T1", "entry": "CreatePet", "label": "POST /pets", "error": "", "status": "completed",
            "steps": ["CreatePet", "Notify"]}  # fmt: skip
    return {**base, **over}


def line(**over: Any) -> dict[str, Any]:
    base = {"id": "L1", "kind": "log", "traceId": "T1", "step": "CreatePet", "level": "info",
            "message": "Pet created", "fields": {"petId": "7"}}  # fmt: skip
    return {**base, **over}


# --- traces ---------------------------------------------------------------------------------------------


def test_an_empty_trace_filter_matches_everything_and_empty_values_mean_any() -> None:
    assert TraceFilter().matches(trace())
    assert TraceFilter(status="", step="", entry="", q="").matches(trace())


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"status": "completed"}, True),
        ({"status": "failed"}, False),
        ({"step": "Notify"}, True),  # any step that ran in the trace, not only the entry
        ({"step": "Other"}, False),
        ({"entry": "CreatePet"}, True),
        ({"entry": "Notify"}, False),  # ran in it, but did not start it
        ({"q": "t1"}, True),  # the id, ignoring case
        ({"q": "post /PETS"}, True),  # the label
        ({"q": "notif"}, True),  # a step name
        ({"q": "nowhere"}, False),
        ({"status": "completed", "step": "Notify", "q": "pets"}, True),
        ({"status": "completed", "step": "Other", "q": "pets"}, False),
    ],
)
def test_trace_filter_fields(kwargs: dict[str, str], expected: bool) -> None:
    assert TraceFilter(**kwargs).matches(trace()) is expected


def test_trace_search_looks_at_the_error_and_never_across_two_fields() -> None:
    failed = trace(status="failed", error="TimeoutError: took too long")
    assert TraceFilter(q="timeouterror").matches(failed)
    assert not TraceFilter(q="createpet post").matches(failed)  # the end of one field and the next


def test_trace_filter_from_a_query_string() -> None:
    wanted = TraceFilter.from_query({"status": "failed", "step": "Notify", "q": "X", "view": "traces"})
    assert (wanted.status, wanted.step, wanted.entry, wanted.needle) == ("failed", "Notify", None, "x")


# --- log lines ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "kept"),
    [
        (None, ["debug", "info", "warning", "error", "critical", None]),
        ("info", ["info", "warning", "error", "critical", None]),  # a line without a level is info
        ("WARNING", ["warning", "error", "critical"]),
        ("critical", ["critical"]),
    ],
)
def test_log_filter_keeps_the_level_and_above(level: str | None, kept: list[str | None]) -> None:
    lines = [line(level=name) for name in LEVELS] + [{k: v for k, v in line().items() if k != "level"}]
    wanted = LogFilter(level=level)
    assert [entry.get("level") for entry in lines if wanted.matches(entry)] == kept


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, True),
        ({"step": "", "trace_id": "", "level": "", "q": ""}, True),
        ({"step": "CreatePet"}, True),
        ({"step": "Notify"}, False),
        ({"trace_id": "T1"}, True),
        ({"trace_id": "T2"}, False),
        ({"q": "PET CREATED"}, True),  # the message, ignoring case
        ({"q": '"petid": "7"'}, True),  # the fields, as JSON
        ({"q": "8"}, False),
        ({"step": "CreatePet", "level": "error"}, False),
    ],
)
def test_log_filter_fields(kwargs: dict[str, str], expected: bool) -> None:
    assert LogFilter(**kwargs).matches(line()) is expected


def test_log_search_reads_fields_json_cannot_encode_as_text() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd-value"

    assert LogFilter(q="odd-value").matches(line(fields={"x": Odd()}))


# --- the store, the JSON API and the live stream agree ------------------------------------------------------

TRACES = [  # id, entry, status, extra step, error, start
    ("A1", "CreatePet", "completed", "Notify", "", 1000),
    ("A2", "CreatePet", "failed", "Notify", "boom: the notifier is down", 2000),
    ("A3", "DeletePet", "completed", None, "", 3000),
    ("A4", "Reaper", "failed", None, "Timeout", 4000),
    ("A5", "CreatePet", "running", None, "", 5000),
]
LOGS = [  # trace, step, level, message, fields
    ("A1", "CreatePet", "info", "Pet created", {"petId": "1"}),
    ("A1", "Notify", "debug", "sending", {"to": "owner@example.com"}),
    ("A2", "Notify", "error", "notifier down", {"attempt": 3}),
    ("A3", "DeletePet", "warning", "Pet deleted", {"petId": "1", "soft": True}),
    ("A4", "Reaper", "critical", "took too long", {}),
    ("A5", "CreatePet", "info", "Pet created", {"petId": "2"}),
]
TRACE_QUERIES: list[dict[str, str]] = [
    {}, {"status": "failed"}, {"status": "completed"}, {"step": "Notify"}, {"entry": "CreatePet"},
    {"q": "notifier"}, {"q": "a3"}, {"status": "failed", "q": "timeout"},
    {"step": "Notify", "status": "running"},
]  # fmt: skip
LOG_QUERIES: list[dict[str, str]] = [
    {}, {"level": "warning"}, {"level": "debug"}, {"step": "Notify"}, {"trace_id": "A1"},
    {"q": "pet"}, {"q": '"petid": "1"'}, {"trace_id": "A1", "level": "info"}, {"step": "CreatePet", "q": "2"},
]  # fmt: skip


@pytest.fixture
async def stored(redis_url: str) -> AsyncIterator[TraceStore]:
    redis = Redis.from_url(redis_url, decode_responses=True)
    store = TraceStore(redis)
    recorder = Recorder(store)
    for tid, entry, status, extra, error, start in TRACES:
        open_ = 1 if status == "running" else 0
        recorder.open_trace(tid, entry=entry, kind="api", label=f"POST /{entry}", start=start, open_=open_)
        for n, step in enumerate([entry] + ([extra] if extra else [])):
            span = Span(id=f"{tid}-{n}", trace_id=tid, step=step, kind="api", started_at=start + n,
                        finished_at=start + 10, status="failed" if error and n else "completed")  # fmt: skip
            if error and step == (extra or entry):
                span.error = {"type": "Error", "message": error, "traceback": ""}
            recorder.span(span, failed_delta=1 if error and step == (extra or entry) else 0)
    for i, (tid, step, level, message, fields) in enumerate(LOGS):
        data = {"level": level, "message": message, "fields": fields}
        recorder.event(
            Event(kind="log", ts=10_000 + i, trace_id=tid, span_id=f"{tid}-0", step=step, data=data)
        )
    await recorder.flush()
    yield store
    await redis.aclose()


def live_rows(view: str, query: dict[str, str], records: list[FeedRecord]) -> list[str]:
    """The ids of the rows the pages' live stream sends for `records`."""
    engine = JinjaTemplateEngine.from_environment(environment(ui_dir("templates"), URLS))
    render = renderer(engine, {"view": view, **query})
    return [event.id for record in records for event in render(record) if event.id is not None]


async def test_the_store_and_the_live_stream_keep_what_the_trace_filter_matches(stored: TraceStore) -> None:
    every, _ = await stored.list_traces(limit=100)
    assert [t["id"] for t in every] == ["A5", "A4", "A3", "A2", "A1"]
    assert [t["status"] for t in every] == ["running", "failed", "completed", "failed", "completed"]
    feed = [FeedRecord(t["id"], "trace", t) for t in every]
    for query in TRACE_QUERIES:
        expected = [t["id"] for t in every if TraceFilter(**query).matches(t)]
        found, _ = await stored.list_traces(**query, limit=100)
        assert [t["id"] for t in found] == expected, query
        if "entry" not in query:  # the Traces page has no entry filter
            assert live_rows("traces", query, feed) == expected, query
    assert [t["id"] for t in (await stored.list_traces(status="failed", q="timeout"))[0]] == ["A4"]


async def test_the_store_and_the_live_stream_keep_what_the_log_filter_matches(stored: TraceStore) -> None:
    every, _ = await stored.list_logs(limit=100)
    assert [e["message"] for e in every] == [m for *_, m, _ in reversed(LOGS)]
    feed = [FeedRecord(e["id"], "log", e) for e in every]
    for query in LOG_QUERIES:
        expected = [e["id"] for e in every if LogFilter(**query).matches(e)]
        found, _ = await stored.list_logs(**query, limit=100)
        assert [e["id"] for e in found] == expected, query
        assert live_rows("logs", query, feed) == expected, query
    assert len((await stored.list_logs(level="warning"))[0]) == 3
