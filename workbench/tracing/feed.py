"""The live feed: one Redis Stream reader per web process, fanned out to every SSE client.

A client that reconnects with `Last-Event-ID` first replays what it missed from the stream
(everything still within the stream's cap), then continues live, skipping anything it has
already seen, so it gets no gaps and no duplicates. A client too slow to keep up is not allowed
to grow memory: it drops to replaying from the stream, and catches up from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .. import keys
from .records import trace_from_hash

log = logging.getLogger("workbench.feed")

OVERFLOW: tuple[str, dict[str, str]] = ("", {})
StreamId = tuple[int, int]


def parse_id(value: str) -> StreamId | None:
    ms, _, seq = value.partition("-")
    if not ms.isdigit() or (seq and not seq.isdigit()):
        return None
    return int(ms), int(seq or 0)


@dataclass(frozen=True)
class FeedRecord:
    id: str
    type: str  # trace | span | log | emit | state
    data: dict[str, Any]


def decode(entry_id: str, fields: dict[str, str]) -> FeedRecord:
    raw = json.loads(fields["d"])
    kind = fields.get("t", "log")
    data = trace_from_hash(raw) if kind == "trace" else raw
    return FeedRecord(entry_id, kind, data)


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue[tuple[str, dict[str, str]]] = field(default_factory=lambda: asyncio.Queue(5000))
    overflowed: bool = False


class FeedHub:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self.closing = False
        # the reader runs only while someone listens: a web process with no open workbench reads nothing
        self._active = asyncio.Event()
        self._position = "0-0"
        self._epoch = 0

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._read(), name="workbench-feed")

    async def stop(self) -> None:
        self.closing = True
        if self._task:
            self._task.cancel()
            # redis-py can swallow a cancellation that lands mid-read; the loop also checks `closing`
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, 2.5)
        for sub in list(self.subscribers):
            while not sub.queue.empty():
                sub.queue.get_nowait()
            sub.queue.put_nowait(OVERFLOW)

    def subscribe(self) -> Subscriber:
        sub = Subscriber()
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        if not self.subscribers:
            self._active.clear()

    async def _ensure_reading(self) -> None:
        """Start the reader from the stream's newest entry, before a new listener replays anything,
        so that replay and live reading overlap (deduplicated) rather than leave a gap."""
        if self._active.is_set():
            return
        newest = await self.redis.xrevrange(keys.FEED, count=1)
        if not self._active.is_set():
            self._position = newest[0][0] if newest else "0-0"
            self._epoch += 1
            self._active.set()

    async def _read(self) -> None:
        backoff = 0.1
        while not self.closing:
            await self._active.wait()
            epoch, last = self._epoch, self._position
            try:
                result = await self.redis.xread({keys.FEED: last}, block=500, count=1000)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("live feed: Redis unreachable (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if epoch != self._epoch:
                continue  # the reader was restarted from a newer position meanwhile
            for _stream, entries in result or ():
                for entry in entries:
                    self._position = entry[0]
                    for sub in list(self.subscribers):
                        if sub.overflowed:
                            continue
                        try:
                            sub.queue.put_nowait(entry)
                        except asyncio.QueueFull:
                            # too slow: forget its backlog; it will replay from the stream
                            sub.overflowed = True
                            while not sub.queue.empty():
                                sub.queue.get_nowait()
                            sub.queue.put_nowait(OVERFLOW)

    async def replay(self, after: str, upto: StreamId | None = None) -> AsyncIterator[FeedRecord]:
        """Records after stream id `after` (exclusive), oldest first."""
        cursor = after
        while True:
            entries = await self.redis.xrange(keys.FEED, min=f"({cursor}", max="+", count=500)
            if not entries:
                return
            for entry_id, fields in entries:
                if upto is not None and (parse_id(entry_id) or (0, 0)) > upto:
                    return
                yield decode(entry_id, fields)
                cursor = entry_id

    async def records(self, last_event_id: str | None) -> AsyncIterator[FeedRecord]:
        """Every record after `last_event_id` (or from now on), live, in stream order, once each."""
        sub = self.subscribe()
        try:
            await self._ensure_reading()
            seen: StreamId | None = parse_id(last_event_id) if last_event_id else None
            if seen is not None and last_event_id:
                async for record in self.replay(last_event_id):
                    seen = parse_id(record.id)
                    yield record
            while True:
                entry_id, fields = await sub.queue.get()
                if entry_id == "":  # overflowed, or the hub is stopping: catch up from the stream
                    if self.closing:
                        return
                    self.unsubscribe(sub)
                    sub = self.subscribe()
                    await self._ensure_reading()
                    if seen is not None:
                        async for record in self.replay(f"{seen[0]}-{seen[1]}"):
                            seen = parse_id(record.id)
                            yield record
                    continue
                current = parse_id(entry_id)
                if seen is not None and current is not None and current <= seen:
                    continue
                seen = current
                yield decode(entry_id, fields)
        finally:
            self.unsubscribe(sub)
