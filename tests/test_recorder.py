"""workbench/tracing/recorder.py against the real test Redis: batching, order per trace, spans merged
while unwritten, run_with_records' ordering guarantee, SpanScope's level threshold, stdlib logging
routed into the current span, and record_fields."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from workbench import keys
from workbench.ids import now_ms
from workbench.tracing.recorder import (
    Recorder,
    SpanLogHandler,
    SpanScope,
    current_scope,
    record_fields,
)
from workbench.tracing.records import Event, Span, trace_from_hash
from workbench.tracing.store import TraceStore


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    await client.config_resetstat()
    yield client
    await client.aclose()


@pytest.fixture
async def recorder(redis: Redis) -> AsyncIterator[Recorder]:
    rec = Recorder(TraceStore(redis), payload_cap=64)
    yield rec
    await rec.stop()


def event(trace: str, n: int, span: str = "s1") -> Event:
    return Event(kind="log", ts=now_ms(), trace_id=trace, span_id=span, step="S", data={"message": f"m{n}"})


def make_span(trace: str, sid: str = "s1", step: str = "S") -> Span:
    return Span(id=sid, trace_id=trace, step=step, kind="event", started_at=now_ms())


async def stored_messages(redis: Redis, trace: str) -> list[str]:
    return [json.loads(e)["message"] for e in await redis.lrange(keys.EVENTS + trace, 0, -1)]


async def feed(redis: Redis) -> list[tuple[str, dict[str, Any]]]:
    return [(f["t"], json.loads(f["d"])) for _id, f in await redis.xrange(keys.FEED)]


async def script_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


class Gate:
    """Holds the first write that reaches `ensure_scripts` until opened: a write in flight."""

    def __init__(self, store: TraceStore) -> None:
        self.entered = asyncio.Event()
        self.open = asyncio.Event()
        self.calls = 0
        original = store.ensure_scripts

        async def gated() -> None:
            self.calls += 1
            if self.calls == 1:
                self.entered.set()
                await self.open.wait()
            await original()

        store.ensure_scripts = gated  # type: ignore[method-assign]


# --- batching and order ----------------------------------------------------------------------------


async def test_records_wait_in_memory_until_written_in_one_script_call(
    recorder: Recorder, redis: Redis
) -> None:
    recorder.open_trace("T1", entry="E", kind="api", label="GET /", start=now_ms())
    for n in range(100):
        recorder.event(event("T1", n))
    assert await redis.llen(keys.EVENTS + "T1") == 0  # nothing written without the flusher or a flush
    await recorder.flush()
    assert await stored_messages(redis, "T1") == [f"m{n}" for n in range(100)]
    assert await script_calls(redis) == 1
    # the feed got every event, then one summary of the trace, at the end of the batch
    kinds = [t for t, _ in await feed(redis)]
    assert kinds == ["log"] * 100 + ["trace"]


async def test_the_flusher_batches_what_gathers_while_a_write_is_in_flight(
    recorder: Recorder, redis: Redis
) -> None:
    recorder.start()
    for chunk in range(10):
        for n in range(100):
            recorder.event(event("T1", chunk * 100 + n))
        await asyncio.sleep(0)  # let the flusher run: the next chunk is made while it writes
    await recorder.flush()
    assert await stored_messages(redis, "T1") == [f"m{n}" for n in range(1000)]  # in the order made
    assert 1 <= await script_calls(redis) <= 10  # a chunk is never split over calls


async def test_records_of_many_traces_each_keep_their_order(recorder: Recorder, redis: Redis) -> None:
    recorder.start()
    for n in range(300):
        recorder.event(event(f"T{n % 3}", n))
        if n % 7 == 0:
            await asyncio.sleep(0)
    await recorder.flush()
    for t in range(3):
        assert await stored_messages(redis, f"T{t}") == [f"m{n}" for n in range(t, 300, 3)]


async def test_stop_writes_what_is_still_queued(redis: Redis) -> None:
    rec = Recorder(TraceStore(redis))
    rec.start()
    rec.event(event("T1", 1))
    rec.event(event("T1", 2))
    await rec.stop()
    assert await stored_messages(redis, "T1") == ["m1", "m2"]


async def test_a_disabled_recorder_records_nothing(redis: Redis) -> None:
    rec = Recorder(TraceStore(redis), enabled=False)
    rec.open_trace("T1", entry="E", kind="api", label="x", start=now_ms())
    rec.span(make_span("T1"), open_delta=1)
    rec.event(event("T1", 1))
    rec.adjust_trace("T1", open_delta=1)
    await rec.flush()
    assert await redis.keys("*") == []
    assert await script_calls(redis) == 0


async def test_records_survive_a_failed_write_and_keep_their_place(recorder: Recorder, redis: Redis) -> None:
    store = recorder.store
    original = store.ensure_scripts
    in_flight, fail_now = asyncio.Event(), asyncio.Event()

    async def unreachable_once() -> None:
        if not fail_now.is_set():
            in_flight.set()
            await fail_now.wait()
            raise RedisConnectionError("Redis went away")
        await original()

    store.ensure_scripts = unreachable_once  # type: ignore[method-assign]
    recorder.event(event("T1", 1))
    recorder.event(event("T1", 2))
    first = asyncio.create_task(recorder.flush())
    await asyncio.wait_for(in_flight.wait(), 5)
    recorder.event(event("T1", 3))  # made while m1 and m2 are on their way
    fail_now.set()
    with pytest.raises(RedisConnectionError):
        await first
    assert await redis.llen(keys.EVENTS + "T1") == 0
    await recorder.flush()
    assert await stored_messages(redis, "T1") == ["m1", "m2", "m3"]  # the kept records go first


async def feed_after(redis: Redis, last: str) -> list[tuple[str, dict[str, str]]]:
    """The feed entries after `last`, waiting (XREAD BLOCK, up to 5 s) for the first to arrive."""
    result = await redis.xread({keys.FEED: last}, block=5000)
    assert result, "nothing was written"
    entries: list[tuple[str, dict[str, str]]] = result[0][1]
    return entries


async def test_the_flusher_writes_without_being_asked(recorder: Recorder, redis: Redis) -> None:
    recorder.start()
    recorder.event(event("T1", 1))
    written = await feed_after(redis, "0-0")
    assert [f["t"] for _, f in written] == ["log", "trace"]
    assert await stored_messages(redis, "T1") == ["m1"]
    recorder.event(event("T1", 2))  # and again, after a write, with no flush in between
    written = await feed_after(redis, written[-1][0])
    assert [f["t"] for _, f in written] == ["log", "trace"]
    assert await stored_messages(redis, "T1") == ["m1", "m2"]


# --- spans merged while unwritten ---------------------------------------------------------------------


async def trace_hash(redis: Redis, trace: str) -> dict[str, str]:
    fields: dict[str, str] = await redis.hgetall(keys.TRACE + trace)
    return fields


async def test_a_span_started_and_finished_before_a_write_is_written_once_with_both_deltas(
    recorder: Recorder, redis: Redis
) -> None:
    recorder.open_trace("T1", entry="E", kind="event", label="x", start=now_ms())
    span = make_span("T1")
    recorder.span(span, open_delta=1)
    span.status, span.finished_at = "failed", now_ms()
    span.error = {"type": "ValueError", "message": "boom", "traceback": ""}
    recorder.span(span, open_delta=-1, failed_delta=1, error_delta=1)
    await recorder.flush()
    spans = [data for t, data in await feed(redis) if t == "span"]
    assert [s["status"] for s in spans] == ["failed"]  # one record: the latest state only
    stored = trace_from_hash(await trace_hash(redis, "T1"))
    assert (stored["status"], stored["failed"], stored["errors"], stored["spans"]) == ("failed", 1, 1, 1)
    assert stored["error"] == "boom"


async def test_a_span_already_written_gets_a_second_record(recorder: Recorder, redis: Redis) -> None:
    recorder.open_trace("T1", entry="E", kind="event", label="x", start=now_ms())
    span = make_span("T1")
    recorder.span(span, open_delta=1)
    await recorder.flush()
    assert (await trace_hash(redis, "T1"))["open"] == "1"
    span.status, span.finished_at = "completed", now_ms()
    recorder.span(span, open_delta=-1)
    await recorder.flush()
    spans = [data for t, data in await feed(redis) if t == "span"]
    assert [s["status"] for s in spans] == ["running", "completed"]
    stored = await trace_hash(redis, "T1")
    assert (stored["open"], stored["spans"]) == ("0", "1")  # the same span, counted once
    assert trace_from_hash(stored)["status"] == "completed"
    assert json.loads(await redis.hget(keys.SPANS + "T1", "s1"))["status"] == "completed"


async def test_span_merge_finds_its_record_after_other_traces_records_were_taken(
    recorder: Recorder, redis: Redis
) -> None:
    recorder.event(event("OTHER", 1))  # queued first: the span record sits after it
    span = make_span("T1")
    recorder.span(span, open_delta=1)
    await recorder.run_with_records("OTHER", lambda pipe: None)  # takes OTHER's record out of the queue
    span.status, span.finished_at = "completed", now_ms()
    recorder.span(span, open_delta=-1)
    await recorder.flush()
    spans = [(data["id"], data["status"]) for t, data in await feed(redis) if t == "span"]
    assert spans == [("s1", "completed")]
    assert (await trace_hash(redis, "T1")).get("open", "0") == "0"  # +1 and -1 in one record
    assert await stored_messages(redis, "OTHER") == ["m1"]


async def test_different_spans_are_not_merged(recorder: Recorder, redis: Redis) -> None:
    recorder.span(make_span("T1", "a"), open_delta=1)
    recorder.span(make_span("T1", "b"), open_delta=1)
    await recorder.flush()
    assert sorted(await redis.hkeys(keys.SPANS + "T1")) == ["a", "b"]
    assert (await trace_hash(redis, "T1"))["open"] == "2"


# --- run_with_records ----------------------------------------------------------------------------------


async def test_run_with_records_runs_its_commands_right_after_the_traces_records(
    recorder: Recorder, redis: Redis
) -> None:
    for n in range(3):
        recorder.event(event("T1", n))
    recorder.event(event("T2", 9))

    def build(pipe: Pipeline) -> None:
        pipe.lrange(keys.EVENTS + "T1", 0, -1)  # what a worker picking up the job could see
        pipe.set("job", "queued")

    seen, ok = await recorder.run_with_records("T1", build)
    assert [json.loads(e)["message"] for e in seen] == ["m0", "m1", "m2"]
    assert ok is True
    assert await redis.get("job") == "queued"
    assert await redis.llen(keys.EVENTS + "T2") == 0  # another trace's records are not its business
    await recorder.flush()
    assert await stored_messages(redis, "T2") == ["m9"]


async def test_run_with_records_raises_its_commands_errors_after_writing_the_records(
    recorder: Recorder, redis: Redis
) -> None:
    await redis.set("text", "not a number")
    recorder.event(event("T1", 1))
    with pytest.raises(ResponseError):
        await recorder.run_with_records("T1", lambda pipe: pipe.incr("text"))
    assert await stored_messages(redis, "T1") == ["m1"]


async def test_run_with_records_waits_for_its_traces_write_in_flight_but_not_for_others(
    recorder: Recorder, redis: Redis
) -> None:
    gate = Gate(recorder.store)
    recorder.start()
    recorder.event(event("A", 1))
    await asyncio.wait_for(gate.entered.wait(), 5)  # the flusher is writing A's first record
    recorder.event(event("A", 2))
    emit_a = asyncio.create_task(recorder.run_with_records("A", lambda pipe: pipe.set("job:A", "1")))
    recorder.event(event("B", 1))
    await asyncio.wait_for(recorder.run_with_records("B", lambda pipe: pipe.set("job:B", "1")), 5)
    # B went past A's write in flight; A's job waits for it, so it cannot overtake m1
    assert await redis.get("job:B") == "1" and await stored_messages(redis, "B") == ["m1"]
    assert not emit_a.done()
    assert await redis.get("job:A") is None and await stored_messages(redis, "A") == []
    gate.open.set()
    await asyncio.wait_for(emit_a, 5)
    assert await stored_messages(redis, "A") == ["m1", "m2"]
    assert await redis.get("job:A") == "1"


# --- SpanScope -------------------------------------------------------------------------------------------


async def stored_events(redis: Redis, trace: str) -> list[dict[str, Any]]:
    return [json.loads(e) for e in await redis.lrange(keys.EVENTS + trace, 0, -1)]


@pytest.mark.parametrize(
    ("threshold", "kept"),
    [
        (logging.DEBUG, ["debug", "info", "warning", "error"]),
        (logging.INFO, ["info", "warning", "error"]),
        (logging.WARNING, ["warning", "error"]),
        (logging.ERROR, ["error"]),
    ],
)
async def test_span_scope_keeps_lines_at_or_above_its_level(
    recorder: Recorder, redis: Redis, threshold: int, kept: list[str]
) -> None:
    scope = SpanScope(recorder, make_span("T1"), log_level=threshold)
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
        scope.log(level, f"at {level}", {"n": level})
    await recorder.flush()
    lines = await stored_events(redis, "T1")
    assert [e["level"] for e in lines] == kept
    assert scope.events == len(kept)
    first = lines[0]
    assert (first["kind"], first["traceId"], first["spanId"], first["step"]) == ("log", "T1", "s1", "S")
    assert first["message"] == f"at {logging.getLevelName(kept[0].upper())}"
    assert first["fields"] == {"n": logging.getLevelName(kept[0].upper())}


async def test_span_scope_emits_and_state_ops_in_order_with_capped_payloads(
    recorder: Recorder, redis: Redis
) -> None:
    scope = SpanScope(recorder, make_span("T1"))
    scope.emit("small.topic", {"a": 1}, ["Sub"])
    scope.state("set", "pets", "7")
    scope.emit("big.topic", {"text": "x" * 200}, [])
    await recorder.flush()
    small, state, big = await stored_events(redis, "T1")
    assert (small["kind"], small["topic"], small["payload"], small["truncated"], small["subscribers"]) == (
        "emit", "small.topic", {"a": 1}, False, ["Sub"],
    )  # fmt: skip
    assert (state["kind"], state["op"], state["group"], state["key"]) == ("state", "set", "pets", "7")
    assert big["truncated"] is True
    assert big["payload"] == '{"text":"' + "x" * 55 + "…"  # the JSON text cut at the cap (64 bytes)
    assert scope.events == 3


# --- SpanLogHandler and record_fields --------------------------------------------------------------------


@pytest.fixture
def app_logger() -> Iterator[logging.Logger]:
    """A logger of the kind a step's own code uses, with only the span handler on it."""
    logger = logging.getLogger("tests.recorder.app")
    handler = SpanLogHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger
    logger.removeHandler(handler)
    logger.propagate = True


def in_scope(scope: SpanScope, fn: Callable[[], None]) -> None:
    token = current_scope.set(scope)
    try:
        fn()
    finally:
        current_scope.reset(token)


async def test_stdlib_logging_inside_a_span_lands_in_it(
    recorder: Recorder, redis: Redis, app_logger: logging.Logger
) -> None:
    scope = SpanScope(recorder, make_span("T1"))

    def work() -> None:
        app_logger.warning("charged %s for %d pets", "Jack", 2, extra={"invoice": "I-1"})
        app_logger.debug("below the span's INFO threshold")
        try:
            raise ValueError("card declined")
        except ValueError:
            app_logger.exception("payment failed")

    app_logger.info("outside any span")
    in_scope(scope, work)
    app_logger.info("after the span")
    await recorder.flush()
    lines = await stored_events(redis, "T1")
    assert [(e["level"], e["message"].splitlines()[0]) for e in lines] == [
        ("warning", "charged Jack for 2 pets"),
        ("error", "payment failed"),
    ]
    assert lines[0]["fields"] == {"invoice": "I-1"}
    assert "Traceback (most recent call last)" in lines[1]["message"]
    assert lines[1]["message"].endswith("ValueError: card declined")
    # nothing from outside the span went anywhere
    assert sorted(await redis.keys(keys.EVENTS + "*")) == [keys.EVENTS + "T1", keys.EVENTS + "T1:logids"]


async def test_the_frameworks_own_loggers_are_not_captured(recorder: Recorder, redis: Redis) -> None:
    handler = SpanLogHandler()
    logger = logging.getLogger("workbench.queue")
    scope = SpanScope(recorder, make_span("T1"))
    in_scope(
        scope, lambda: handler.handle(logger.makeRecord(logger.name, logging.ERROR, "f", 1, "x", (), None))
    )
    other = logging.getLogger("workbenchish")  # only the "workbench." namespace is the framework's
    in_scope(
        scope, lambda: handler.handle(other.makeRecord(other.name, logging.ERROR, "f", 1, "y", (), None))
    )
    await recorder.flush()
    assert [e["message"] for e in await stored_events(redis, "T1")] == ["y"]


async def test_each_task_logs_into_its_own_span(
    recorder: Recorder, redis: Redis, app_logger: logging.Logger
) -> None:
    async def run(trace: str) -> None:
        current_scope.set(SpanScope(recorder, make_span(trace)))  # a task's context is its own
        for n in range(3):
            app_logger.info(f"{trace} line {n}")
            await asyncio.sleep(0)  # interleave the two tasks

    await asyncio.gather(run("T1"), run("T2"))
    assert current_scope.get() is None
    await recorder.flush()
    for trace in ("T1", "T2"):
        assert [e["message"] for e in await stored_events(redis, trace)] == [
            f"{trace} line {n}" for n in range(3)
        ]


async def test_a_log_call_that_cannot_be_formatted_does_not_break_the_step(
    recorder: Recorder, redis: Redis, app_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging, "raiseExceptions", False)  # handleError stays quiet
    scope = SpanScope(recorder, make_span("T1"))
    in_scope(scope, lambda: app_logger.info("%d pets", "many"))
    in_scope(scope, lambda: app_logger.info("fine"))
    await recorder.flush()
    assert [e["message"] for e in await stored_events(redis, "T1")] == ["fine"]


def make_record(**extra: Any) -> logging.LogRecord:
    record = logging.getLogger("x").makeRecord(
        "x", logging.INFO, "f.py", 3, "msg %s", ("a",), None, extra=extra
    )
    return record


def test_record_fields_are_the_extras_and_the_loggers_fields() -> None:
    assert record_fields(make_record()) == {}
    assert record_fields(make_record(petId=7, pet="Jack")) == {"petId": 7, "pet": "Jack"}
    # ctx.logger passes its fields as `wb_fields`; extras beside them win on a clash
    assert record_fields(make_record(wb_fields={"a": 1, "b": 2}, b=3)) == {"a": 1, "b": 3}
    assert record_fields(make_record(wb_fields=None)) == {}


def test_record_fields_leave_out_the_records_own_attributes() -> None:
    record = make_record(_private=1, kept=True)
    logging.Formatter("%(asctime)s %(message)s").format(record)  # adds `message` and `asctime`
    record.stack_info = "stack"
    assert record_fields(record) == {"kept": True}


# --- commands after a trace's records (after_records: the job endings) ------------------------------

# copies the span's stored JSON into `marker` when the command runs: what was written before it
_SEEN = "redis.call('set', KEYS[2], redis.call('hget', KEYS[1], ARGV[1]) or 'missing')"


def copy_span_into(marker: str, trace: str, span_id: str) -> Callable[[Pipeline], None]:
    def build(pipe: Pipeline) -> None:
        pipe.eval(_SEEN, 2, keys.SPANS + trace, marker, span_id)

    return build


async def test_commands_after_records_run_after_them_in_the_same_round_trip(
    recorder: Recorder, redis: Redis
) -> None:
    span = make_span("T1")
    span.status, span.finished_at = "completed", now_ms()
    recorder.span(span, open_delta=-1)
    written = recorder.after_records("T1", copy_span_into("marker", "T1", "s1"))
    assert not written.done()  # nothing goes without the flusher or a flush
    recorder.start()
    await asyncio.wait_for(written, 5)
    assert json.loads(await redis.get("marker"))["status"] == "completed"  # the span's end came first
    assert await script_calls(redis) == 1
    info = await redis.info("commandstats")
    assert info["cmdstat_eval"]["calls"] == 1


async def test_commands_after_a_trace_with_a_write_in_flight_wait_for_its_next_records(
    recorder: Recorder, redis: Redis
) -> None:
    store = recorder.store
    original = store.ensure_scripts
    in_flight, go_on = asyncio.Event(), asyncio.Event()

    async def slow_once() -> None:
        if not in_flight.is_set():  # the first write only: it stays on its way until go_on
            in_flight.set()
            await go_on.wait()
        await original()

    store.ensure_scripts = slow_once  # type: ignore[method-assign]
    recorder.span(make_span("T1"))
    first = asyncio.create_task(recorder.flush())
    await asyncio.wait_for(in_flight.wait(), 5)
    span = make_span("T1")
    span.status, span.finished_at = "completed", now_ms()
    recorder.span(span)  # queued while T1's first write is on its way
    written = recorder.after_records("T1", copy_span_into("marker", "T1", "s1"))
    recorder.after_records("T2", lambda pipe: pipe.rpush("other", "x"))  # another trace: not held back
    recorder.start()
    try:
        assert await redis.blpop(["other"], timeout=5) == ("other", "x")
        assert not written.done() and await redis.get("marker") is None
    finally:
        go_on.set()
    await first
    await asyncio.wait_for(written, 5)
    assert json.loads(await redis.get("marker"))["status"] == "completed"


async def test_commands_after_records_learn_of_a_failed_round_trip(recorder: Recorder, redis: Redis) -> None:
    async def unreachable() -> None:
        raise RedisConnectionError("Redis went away")

    original = recorder.store.ensure_scripts
    recorder.store.ensure_scripts = unreachable  # type: ignore[method-assign]
    recorder.event(event("T1", 1))
    written = recorder.after_records("T1", lambda pipe: pipe.set("marker", "x"))
    with pytest.raises(RedisConnectionError):
        await recorder.flush()
    with pytest.raises(RedisConnectionError):
        await written
    assert await redis.get("marker") is None  # its caller (the worker loop) tries again
    recorder.store.ensure_scripts = original  # type: ignore[method-assign]
    await recorder.flush()
    assert await stored_messages(redis, "T1") == ["m1"]  # the records themselves were kept


async def test_a_failing_command_after_records_fails_only_its_own_future(
    recorder: Recorder, redis: Redis
) -> None:
    await redis.set("a-string", "x")
    bad = recorder.after_records("T1", lambda pipe: pipe.hset("a-string", "f", "v"))  # WRONGTYPE
    good = recorder.after_records("T2", lambda pipe: pipe.set("marker", "x"))
    await recorder.flush()
    with pytest.raises(ResponseError):
        await bad
    await good
    assert await redis.get("marker") == "x"


async def test_a_disabled_recorder_still_sends_commands_after_records(redis: Redis) -> None:
    rec = Recorder(TraceStore(redis), enabled=False)
    rec.start()
    try:
        await asyncio.wait_for(rec.after_records("T1", lambda pipe: pipe.set("marker", "x")), 5)
    finally:
        await rec.stop()
    assert await redis.get("marker") == "x"


async def test_commands_held_behind_a_write_in_flight_go_once_it_ends_with_no_records_of_their_own(
    recorder: Recorder, redis: Redis
) -> None:
    """The flushers woke for them while their trace was in flight, so only the end of that write can
    send them (it once looked at the waiting records only: they waited for ever)."""
    store = recorder.store
    original = store.ensure_scripts
    in_flight, go_on = asyncio.Event(), asyncio.Event()

    async def slow_once() -> None:
        if not in_flight.is_set():
            in_flight.set()
            await go_on.wait()
        await original()

    store.ensure_scripts = slow_once  # type: ignore[method-assign]
    recorder.start()
    recorder.span(make_span("T1"))
    await asyncio.wait_for(in_flight.wait(), 5)  # a flusher is writing T1's span
    written = recorder.after_records("T1", lambda pipe: pipe.set("marker", "x"))
    for _ in range(3):
        await asyncio.sleep(0)  # the other flusher wakes, finds T1 in flight, and waits again
    go_on.set()
    await asyncio.wait_for(written, 5)
    assert await redis.get("marker") == "x"
