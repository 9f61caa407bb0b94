"""Traces, spans, events and logs in Redis: atomic writes (Lua) and the queries behind the API.

Every write also appends to the live feed stream in the same script, so what the browser sees
live and what a reload shows can never disagree. A trace's status is derived from two counters:
`open` (API spans running + background jobs not yet finally done) and `failed` (final failures).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from .. import keys, lua
from ..ids import now_ms
from .filters import LEVELS as LEVELS  # re-exported: where callers have found it so far
from .filters import LogFilter, TraceFilter
from .records import trace_from_hash

log = logging.getLogger("workbench.store")

# One script call writes a whole batch of records (see lua/apply_records.lua for the record kinds),
# passed as one msgpack array: packing one argument is far cheaper for the client than packing ten
# per record. Every key it writes is given in KEYS, four per trace (`_trace_keys`).
APPLY = lua.load("apply_records")

Record = tuple[Any, ...]  # (kind, trace id, ...): one record of the apply_records script
_pack = msgspec.msgpack.Encoder().encode
# record bodies are JSON; values a handler logs that JSON has no type for are written as text
_json = msgspec.json.Encoder(enc_hook=str).encode


def trace_record(trace_id: str, *, start: int, entry: str, kind: str, label: str, open_: int = 0) -> Record:
    return ("T", trace_id, start, entry, kind, label, open_)


def span_record(
    span: dict[str, Any], *, open_delta: int = 0, failed_delta: int = 0, error_delta: int = 0
) -> Record:
    ts = span.get("finishedAt") or span.get("startedAt") or now_ms()
    err = span["error"]["message"][:200] if span.get("error") else ""
    body = _json(span).decode()  # str: Redis msgpack has no binary type
    return (
        "S",
        span["traceId"],
        span["id"],
        body,
        open_delta,
        failed_delta,
        error_delta,
        ts,
        span["step"],
        err,
    )


def event_record(event: dict[str, Any]) -> Record:
    return ("E", event["traceId"], event["kind"], _json(event).decode())  # str: Redis msgpack has no binary


def adjust_record(trace_id: str, *, open_delta: int = 0, failed_delta: int = 0) -> Record:
    return ("A", trace_id, open_delta, failed_delta, now_ms())


def _logids_key(trace_id: str) -> str:
    return keys.EVENTS + trace_id + ":logids"


def _trace_keys(records: list[Record]) -> list[str]:
    """The apply_records script's KEYS: the streams, indexes and sizes, then four keys per trace, in the
    order the traces first appear in `records` (the order the script reads them in)."""
    names = [keys.FEED, keys.LOGS, keys.TRACES, keys.FAILED_TRACES, keys.STREAM_SIZES]
    for trace_id in dict.fromkeys([r[1] for r in records]):
        names += (keys.TRACE + trace_id, keys.SPANS + trace_id, keys.EVENTS + trace_id, _logids_key(trace_id))
    return names


class TraceStore:
    def __init__(
        self,
        redis: Redis,
        *,
        feed_maxlen: int = 10_000,
        logs_maxlen: int = 100_000,
        feed_max_bytes: int = 32 << 20,
        logs_max_bytes: int = 128 << 20,
    ) -> None:
        # redis-py types each command as "Awaitable[T] | T" (one signature for sync and async)
        self.redis: Any = redis
        # the two streams are capped by length and by size (0: no size cap), both enforced by the
        # XADDs of apply_records.lua themselves: the framework's own data stops growing before a
        # small Redis is full, at no cost per record
        self.feed_maxlen = feed_maxlen
        self.logs_maxlen = logs_maxlen
        self.feed_max_bytes = feed_max_bytes
        self.logs_max_bytes = logs_max_bytes
        self._apply = redis.register_script(APPLY)
        self._scripts_loaded = False

    async def ensure_scripts(self) -> None:
        """Load the Lua script into Redis once (again after `forget_scripts`, e.g. a Redis restart)."""
        if not self._scripts_loaded:
            self._apply.sha = await self.redis.script_load(self._apply.script)
            self._scripts_loaded = True

    def forget_scripts(self) -> None:
        self._scripts_loaded = False

    def apply(self, pipe: Pipeline, records: list[Record]) -> None:
        """Queue one script call writing `records` (a bare EVALSHA: `ensure_scripts` loads it once,
        where registering it with the pipeline would cost a SCRIPT EXISTS round trip every time)."""
        if not records:
            return
        batch = _pack(records)
        trace_keys = _trace_keys(records)
        args: list[Any] = [
            *trace_keys, self.feed_maxlen, self.logs_maxlen, batch, self.feed_max_bytes, self.logs_max_bytes
        ]  # fmt: skip
        pipe.evalsha(self._apply.sha, len(trace_keys), *args)

    # single-record conveniences (tests, benchmarks, tools)
    def open_trace(
        self, pipe: Pipeline, trace_id: str, *, start: int, entry: str, kind: str, label: str, open_: int = 0
    ) -> None:
        self.apply(
            pipe, [trace_record(trace_id, start=start, entry=entry, kind=kind, label=label, open_=open_)]
        )

    def put_span(
        self,
        pipe: Pipeline,
        span: dict[str, Any],
        *,
        open_delta: int = 0,
        failed_delta: int = 0,
        error_delta: int = 0,
    ) -> None:
        self.apply(
            pipe,
            [span_record(span, open_delta=open_delta, failed_delta=failed_delta, error_delta=error_delta)],
        )

    # --- reads --------------------------------------------------------------------------------------

    async def get_trace(self, trace_id: str) -> dict[str, Any] | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.TRACE + trace_id)
            pipe.hvals(keys.SPANS + trace_id)
            pipe.lrange(keys.EVENTS + trace_id, 0, -1)
            raw, spans_raw, events_raw = await pipe.execute()
        if not raw or "id" not in raw:
            return None
        trace = trace_from_hash(raw)
        spans = sorted(
            (json.loads(s) for s in spans_raw),
            # ties in the same millisecond go by id: job ids sort in creation order (job_queue.new_job_id)
            key=lambda s: (s.get("enqueuedAt") or s["startedAt"], s["startedAt"], s["attempt"], s["id"]),
        )
        events = [json.loads(e) for e in events_raw]
        by_span: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            by_span.setdefault(event["spanId"], []).append(event)
        for span in spans:
            span["events"] = by_span.get(span["id"], [])
        trace["spanList"] = spans
        return trace

    async def get_span(self, trace_id: str, span_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(keys.SPANS + trace_id, span_id)
        return json.loads(raw) if raw else None

    async def list_traces(
        self,
        *,
        status: str | None = None,
        step: str | None = None,
        entry: str | None = None,
        q: str | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int = 50,
        cursor: str | None = None,
        scan_budget: int = 5000,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first. The cursor is `start:id` of the last trace returned."""
        max_score: float | str = until if until is not None else "+inf"
        after: tuple[int, str] | None = None
        if cursor:
            ms, _, cid = cursor.partition(":")
            after = (int(ms), cid)
            max_score = int(ms) if until is None else min(int(ms), until)
        min_score: float | str = since if since is not None else "-inf"
        wanted = TraceFilter(status=status, step=step, entry=entry, q=q)
        # failed traces have an index of their own: a rare status is not searched for among all
        index = keys.FAILED_TRACES if status == "failed" else keys.TRACES
        found: list[dict[str, Any]] = []
        offset, scanned, chunk = 0, 0, max(limit * 2, 100)
        while len(found) < limit and scanned < scan_budget:
            ids = await self.redis.zrevrangebyscore(
                index, max_score, min_score, start=offset, num=chunk, withscores=True
            )
            if not ids:
                return found, None
            offset += len(ids)
            if after is not None:
                ids = [(i, s) for i, s in ids if (int(s), i) < after]
            async with self.redis.pipeline(transaction=False) as pipe:
                for trace_id, _ in ids:
                    pipe.hgetall(keys.TRACE + trace_id)
                rows = await pipe.execute()
            for raw in rows:
                scanned += 1
                if not raw or "id" not in raw:
                    continue
                trace = trace_from_hash(raw)
                if not wanted.matches(trace):
                    continue
                found.append(trace)
                if len(found) == limit:
                    break
        if not found and scanned < scan_budget:
            return found, None
        last = found[-1] if found else None
        return found, (f"{last['start']}:{last['id']}" if last else None)

    async def list_logs(
        self,
        *,
        trace_id: str | None = None,
        step: str | None = None,
        level: str | None = None,
        q: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        scan_budget: int = 20_000,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first. The cursor is the stream id of the last line returned."""
        keep = LogFilter(step=step, trace_id=trace_id, level=level, q=q).matches
        if trace_id:
            # one trace: its own event list is short and already in order
            raw = await self.redis.lrange(keys.EVENTS + trace_id, 0, -1)
            lines = [e for e in (json.loads(r) for r in raw) if e["kind"] == "log" and keep(e)]
            lines.reverse()
            start = int(cursor) if cursor and cursor.isdigit() else 0
            page = lines[start : start + limit]
            more = start + limit < len(lines)
            return page, (str(start + limit) if more else None)

        found: list[dict[str, Any]] = []
        max_id = f"({cursor}" if cursor else "+"
        scanned = 0
        while len(found) < limit and scanned < scan_budget:
            entries = await self.redis.xrevrange(keys.LOGS, max=max_id, min="-", count=500)
            if not entries:
                return found, None
            for entry_id, fields in entries:
                scanned += 1
                max_id = f"({entry_id}"  # the cursor: a position in the log stream
                event = json.loads(fields["d"])
                if keep(event):
                    found.append(event)
                    if len(found) == limit:
                        break
        return found, max_id[1:]

    # --- retention -----------------------------------------------------------------------------------

    async def index_failed_traces(self, chunk: int = 1000) -> int:
        """Put traces stored before the failed-trace index existed into it (once per Redis: a marker
        records it). Returns how many were added."""
        if await self.redis.exists(keys.FAILED_INDEXED):
            return 0
        added, offset = 0, 0
        while ids := await self.redis.zrange(keys.TRACES, offset, offset + chunk - 1, withscores=True):
            offset += len(ids)
            async with self.redis.pipeline(transaction=False) as pipe:
                for trace_id, _ in ids:
                    pipe.hget(keys.TRACE + trace_id, "failed")
                counts = await pipe.execute()
            failed = {tid: score for (tid, score), n in zip(ids, counts, strict=True) if int(n or 0) > 0}
            if failed:
                added += await self.redis.zadd(keys.FAILED_TRACES, failed, nx=True)
        await self.redis.set(keys.FAILED_INDEXED, "1")
        return added

    async def enforce_retention(self, *, max_traces: int, max_age_s: int) -> int:
        """Delete the oldest traces beyond the count and age limits, with their spans, events and logs."""
        doomed: list[str] = []
        total = await self.redis.zcard(keys.TRACES)
        if total > max_traces:
            doomed += await self.redis.zrange(keys.TRACES, 0, total - max_traces - 1)
        cutoff = now_ms() - max_age_s * 1000
        doomed += await self.redis.zrangebyscore(keys.TRACES, "-inf", f"({cutoff}", start=0, num=10_000)
        doomed = list(dict.fromkeys(doomed))
        for batch_start in range(0, len(doomed), 500):
            await self._delete_traces(doomed[batch_start : batch_start + 500])
        return len(doomed)

    async def _delete_traces(self, trace_ids: Sequence[str]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for trace_id in trace_ids:
                pipe.lrange(_logids_key(trace_id), 0, -1)
            log_ids = await pipe.execute()
        async with self.redis.pipeline(transaction=False) as pipe:
            for trace_id, ids in zip(trace_ids, log_ids, strict=True):
                if ids:
                    pipe.xdel(keys.LOGS, *ids)
                pipe.delete(
                    keys.TRACE + trace_id,
                    keys.SPANS + trace_id,
                    keys.EVENTS + trace_id,
                    _logids_key(trace_id),
                    keys.REPLAYS + trace_id,  # the traces replayed from it (replay.py)
                )
            pipe.zrem(keys.TRACES, *trace_ids)
            pipe.zrem(keys.FAILED_TRACES, *trace_ids)
            await pipe.execute()
