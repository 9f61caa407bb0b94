"""workbench/tracing/feed.py's FeedHub against the real test Redis: replay after a Last-Event-ID,
no gaps and no duplicates from replay into live, a slow subscriber that overflows falls back to
replay, and the stream reader runs only while someone listens.

The hub's Redis client is wrapped in `Watched`, which counts XREAD calls and their returns and can
hold a return back: the tests wait on those signals, never on time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from workbench import keys
from workbench.tracing.feed import FeedHub, FeedRecord, Subscriber, decode, parse_id

WAIT = 5.0  # seconds any single signal may take before the test fails


class Watched:
    """A Redis client that reports the hub reader's XREADs (everything else passes through)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self.calls = 0
        self.returns = 0
        self.newest_reads = 0  # XREVRANGEs answered: how a listener finds where "now" is
        self.replays_ended = 0  # XRANGEs that came back empty: a replay reached the stream's end
        self.hold: asyncio.Event | None = None  # when set up, an XREAD's result waits for it
        self._changed = asyncio.Condition()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._redis, name)

    async def _bump(self, attr: str) -> None:
        async with self._changed:
            setattr(self, attr, getattr(self, attr) + 1)
            self._changed.notify_all()

    async def xread(self, *args: Any, **kwargs: Any) -> Any:
        await self._bump("calls")
        result = await self._redis.xread(*args, **kwargs)
        if self.hold is not None:
            await self.hold.wait()
        await self._bump("returns")
        return result

    async def xrevrange(self, *args: Any, **kwargs: Any) -> Any:
        result = await self._redis.xrevrange(*args, **kwargs)
        await self._bump("newest_reads")
        return result

    async def xrange(self, *args: Any, **kwargs: Any) -> Any:
        result = await self._redis.xrange(*args, **kwargs)
        if not result:
            await self._bump("replays_ended")
        return result

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        """Wait until `predicate()` holds, re-checked at every XREAD call and return."""
        try:
            async with asyncio.timeout(WAIT), self._changed:
                await self._changed.wait_for(predicate)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def watched(redis: Redis) -> Watched:
    return Watched(redis)


@pytest.fixture
async def hub(watched: Watched) -> AsyncIterator[FeedHub]:
    feed = FeedHub(watched)  # type: ignore[arg-type]
    await feed.start()
    yield feed
    await feed.stop()


async def add(redis: Redis, n: int, kind: str = "log") -> str:
    """Append a feed entry carrying `n`; returns its stream id."""
    entry_id: str = await redis.xadd(keys.FEED, {"t": kind, "d": json.dumps({"n": n, "traceId": "T"})})
    return entry_id


async def add_many(redis: Redis, numbers: range) -> list[str]:
    async with redis.pipeline(transaction=False) as pipe:
        for n in numbers:
            pipe.xadd(keys.FEED, {"t": "log", "d": json.dumps({"n": n, "traceId": "T"})})
        ids: list[str] = await pipe.execute()
    return ids


async def settle(predicate: Callable[[], bool], what: str) -> None:
    """Let tasks already scheduled take their steps until `predicate()` holds (no I/O involved)."""
    for _ in range(100):
        if predicate():
            return
        await asyncio.sleep(0)  # one turn of the event loop
    raise AssertionError(f"{what} did not happen")


async def take(records: AsyncIterator[FeedRecord], count: int) -> list[int]:
    """The next `count` records' numbers."""
    got = []
    async with asyncio.timeout(WAIT):
        while len(got) < count:
            got.append((await anext(records)).data["n"])
    return got


# --- pure helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parsed"),
    [("5", (5, 0)), ("5-3", (5, 3)), ("1700000000000-12", (1700000000000, 12)), ("0-0", (0, 0)),
     ("x", None), ("-1", None), ("5-x", None), (" 5", None), ("", None), ("5-3-1", None)],
)  # fmt: skip
def test_parse_id(value: str, parsed: tuple[int, int] | None) -> None:
    assert parse_id(value) == parsed


def test_decode_turns_trace_hashes_into_summaries() -> None:
    log = decode("1-0", {"t": "log", "d": json.dumps({"message": "hi"})})
    assert log == FeedRecord("1-0", "log", {"message": "hi"})
    untyped = decode("1-1", {"d": json.dumps({"message": "old entry"})})
    assert untyped.type == "log"
    raw = {"id": "T1", "entry": "CreatePet", "start": "1000", "end": "1500", "open": "0", "failed": "0"}
    trace = decode("2-0", {"t": "trace", "d": json.dumps(raw)})
    assert trace.type == "trace"
    assert (trace.data["id"], trace.data["status"], trace.data["durationMs"]) == ("T1", "completed", 500)


# --- replay -----------------------------------------------------------------------------------------


async def test_replay_gives_what_came_after_an_id_oldest_first_across_pages(
    hub: FeedHub, redis: Redis
) -> None:
    ids = await add_many(redis, range(1200))  # more than one page (500) of XRANGE
    replayed = [r async for r in hub.replay(ids[99])]
    assert [r.data["n"] for r in replayed] == list(range(100, 1200))
    assert [r.id for r in replayed] == ids[100:]
    upto = parse_id(ids[109])
    assert [r.data["n"] async for r in hub.replay(ids[99], upto=upto)] == list(range(100, 110))
    assert [r async for r in hub.replay(ids[-1])] == []


async def test_a_client_with_a_last_event_id_gets_what_it_missed_then_live(
    hub: FeedHub, redis: Redis
) -> None:
    ids = [await add(redis, n) for n in range(5)]
    records = hub.records(ids[1])
    assert await take(records, 3) == [2, 3, 4]  # replayed
    await add(redis, 5)
    await add(redis, 6)
    assert await take(records, 2) == [5, 6]  # live
    await records.aclose()


async def test_no_duplicates_where_replay_and_live_overlap(
    hub: FeedHub, redis: Redis, watched: Watched
) -> None:
    ids = [await add(redis, n) for n in range(3)]
    records = hub.records(ids[0])
    assert await take(records, 1) == [1]  # replaying; the reader already listens from entry 2 on
    calls = watched.calls
    await add(redis, 3)
    await add(redis, 4)
    # the reader queues 3 and 4 for this client live; its replay, still going, reads them too
    await watched.until(lambda: watched.returns > calls, "the reader to read entries 3 and 4")
    assert await take(records, 3) == [2, 3, 4]  # replay
    ended = watched.replays_ended
    following = asyncio.ensure_future(anext(records))
    await watched.until(lambda: watched.replays_ended > ended, "the replay to reach the end")
    # now live, where 3 and 4 wait in the queue: they must be skipped
    await add(redis, 5)
    async with asyncio.timeout(WAIT):
        assert (await following).data["n"] == 5
    await records.aclose()


async def test_a_client_without_a_last_event_id_gets_only_what_comes_after_it(
    hub: FeedHub, redis: Redis, watched: Watched
) -> None:
    await add(redis, 0)
    records = hub.records(None)
    pending = asyncio.ensure_future(anext(records))  # connects: subscribes, starts the reader
    await watched.until(lambda: watched.calls >= 1, "the reader to start")
    await add(redis, 1)
    async with asyncio.timeout(WAIT):
        first = await pending
    assert first.data["n"] == 1
    await records.aclose()


# --- slow subscribers ---------------------------------------------------------------------------------


async def test_a_slow_subscriber_overflows_and_catches_up_by_replay(
    hub: FeedHub, redis: Redis, watched: Watched
) -> None:
    slow = hub.records(None)
    first = asyncio.ensure_future(anext(slow))
    await watched.until(lambda: watched.calls >= 1, "the reader to start")
    (slow_sub,) = hub.subscribers
    assert isinstance(slow_sub, Subscriber)
    fast = hub.records(None)
    second = asyncio.ensure_future(anext(fast))
    await settle(lambda: len(hub.subscribers) == 2, "the second subscription")
    await add(redis, 0)
    async with asyncio.timeout(WAIT):
        assert ((await first).data["n"], (await second).data["n"]) == (0, 0)

    # the slow one reads nothing while 6,000 entries go by; the fast one keeps up
    total = 6000
    reader: asyncio.Future[list[int]] = asyncio.ensure_future(take(fast, total))
    await add_many(redis, range(1, total + 1))
    async with asyncio.timeout(WAIT * 3):
        assert await reader == list(range(1, total + 1))
    assert slow_sub.overflowed
    assert slow_sub.queue.qsize() == 1  # it kept no backlog: only the marker sending it to the stream
    assert not any(s.overflowed for s in hub.subscribers if s is not slow_sub)
    # and from its last record (0) it replays everything, once, in order, then goes on live
    async with asyncio.timeout(WAIT * 3):
        caught_up = [(await anext(slow)).data["n"] for _ in range(total)]
    assert caught_up == list(range(1, total + 1))
    await add(redis, total + 1)
    assert await take(slow, 1) == [total + 1]
    assert await take(fast, 1) == [total + 1]
    await slow.aclose()
    await fast.aclose()


# --- the reader runs only while someone listens ---------------------------------------------------------


async def test_the_reader_reads_only_while_someone_listens(
    hub: FeedHub, redis: Redis, watched: Watched
) -> None:
    await asyncio.sleep(0)  # one turn of the loop: the reader task has run up to its first wait
    assert watched.calls == 0  # started, nobody listening: no XREAD at all

    records = hub.records(None)
    pending = asyncio.ensure_future(anext(records))
    await watched.until(lambda: watched.calls >= 1, "the reader to start reading")
    await add(redis, 1)
    async with asyncio.timeout(WAIT):
        assert (await pending).data["n"] == 1
    await records.aclose()  # the last listener leaves
    assert hub.subscribers == set()

    calls = watched.calls
    await add(redis, 2)  # wakes the XREAD still blocked, which was the reader's last
    await watched.until(lambda: watched.returns >= calls, "the reader's last XREAD to return")
    for _ in range(3):
        await asyncio.sleep(0)  # a reader that went on would call XREAD again within these turns
    assert watched.calls == calls

    # a new listener wakes it again
    again = hub.records(None)
    pending = asyncio.ensure_future(anext(again))
    await watched.until(lambda: watched.calls > calls, "the reader to start again")
    await add(redis, 3)
    async with asyncio.timeout(WAIT):
        assert (await pending).data["n"] == 3  # not 2, written while nobody listened
    await again.aclose()


async def test_a_read_started_before_the_reader_restarted_is_dropped(
    hub: FeedHub, redis: Redis, watched: Watched
) -> None:
    first = hub.records(None)
    pending = asyncio.ensure_future(anext(first))
    await watched.until(lambda: watched.calls >= 1, "the reader to start")
    await add(redis, 0)
    async with asyncio.timeout(WAIT):
        assert (await pending).data["n"] == 0
    watched.hold = asyncio.Event()  # the result of the XREAD in flight is held back
    await first.aclose()
    await watched.until(lambda: watched.calls > watched.returns, "an XREAD in flight")
    returns = watched.returns
    await add(redis, 1)  # nobody listens: the XREAD in flight has it, its result held

    second = hub.records(None)  # restarts the reader from the newest entry (1)
    pending = asyncio.ensure_future(anext(second))
    newest = watched.newest_reads
    await watched.until(lambda: watched.newest_reads > newest, "the new listener to find the newest entry")
    watched.hold.set()
    watched.hold = None
    await watched.until(lambda: watched.returns > returns, "the held XREAD to return")
    await add(redis, 2)
    async with asyncio.timeout(WAIT):
        assert (await pending).data["n"] == 2  # entry 1 came before this listener: not delivered
    await second.aclose()


# --- stopping ---------------------------------------------------------------------------------------------


async def test_stop_ends_every_listener(redis: Redis, watched: Watched) -> None:
    feed = FeedHub(watched)  # type: ignore[arg-type]
    await feed.start()
    records = feed.records(None)
    pending = asyncio.ensure_future(anext(records))
    await watched.until(lambda: watched.calls >= 1, "the reader to start")
    await feed.stop()
    with pytest.raises(StopAsyncIteration):
        async with asyncio.timeout(WAIT):
            await pending
    assert feed.subscribers == set()
    assert feed._task is not None and feed._task.done()
