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

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from .. import keys
from ..ids import now_ms
from .records import trace_from_hash

log = logging.getLogger("workbench.store")

# Updates the trace hash by the given deltas and pushes the new summary to the feed.
_LUA_TRACE = """
local function trace_touch(trace, feed, maxlen, open_d, failed_d, errors_d, ts, step, err)
  if open_d ~= 0 then redis.call('HINCRBY', trace, 'open', open_d) end
  if failed_d ~= 0 then redis.call('HINCRBY', trace, 'failed', failed_d) end
  if errors_d ~= 0 then redis.call('HINCRBY', trace, 'errors', errors_d) end
  if err ~= '' then redis.call('HSET', trace, 'error', err) end
  local e = tonumber(redis.call('HGET', trace, 'end') or '0')
  if ts > e then redis.call('HSET', trace, 'end', ts) end
  if step ~= '' then
    local steps = redis.call('HGET', trace, 'steps') or ''
    if not string.find(',' .. steps .. ',', ',' .. step .. ',', 1, true) then
      if steps == '' then steps = step else steps = steps .. ',' .. step end
      redis.call('HSET', trace, 'steps', steps)
    end
  end
  local flat = redis.call('HGETALL', trace)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  redis.call('XADD', feed, 'MAXLEN', '~', maxlen, '*', 't', 'trace', 'd', cjson.encode(t))
end
"""

# KEYS: trace, traces zset, feed. ARGV: id, start, entry, kind, label, maxlen, open
TRACE_OPEN = (
    _LUA_TRACE
    + """
local start = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'entry', ARGV[3], 'kind', ARGV[4], 'label', ARGV[5])
local s = redis.call('HGET', KEYS[1], 'start')
if (not s) or tonumber(s) > start then redis.call('HSET', KEYS[1], 'start', start) end
redis.call('ZADD', KEYS[2], 'NX', start, ARGV[1])
trace_touch(KEYS[1], KEYS[3], ARGV[6], tonumber(ARGV[7]), 0, 0, start, '', '')
return 1
"""
)

# KEYS: trace, spans, feed. ARGV: span id, span json, open_d, failed_d, errors_d, ts, step, err, maxlen
SPAN_PUT = (
    _LUA_TRACE
    + """
local isnew = redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if isnew == 1 then redis.call('HINCRBY', KEYS[1], 'spans', 1) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[9], '*', 't', 'span', 'd', ARGV[2])
trace_touch(KEYS[1], KEYS[3], ARGV[9], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]),
            tonumber(ARGV[6]), ARGV[7], ARGV[8])
return isnew
"""
)

# KEYS: events list, feed, logs stream, log ids list. ARGV: kind, json, feed maxlen, logs maxlen
EVENT_ADD = """
redis.call('RPUSH', KEYS[1], ARGV[2])
if ARGV[1] == 'log' then
  local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'd', ARGV[2])
  redis.call('RPUSH', KEYS[4], id)
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 't', ARGV[1], 'd', ARGV[2])
return 1
"""

# KEYS: trace, feed. ARGV: open_d, failed_d, ts, maxlen
TRACE_ADJUST = (
    _LUA_TRACE
    + """
trace_touch(KEYS[1], KEYS[2], ARGV[4], tonumber(ARGV[1]), tonumber(ARGV[2]), 0, tonumber(ARGV[3]), '', '')
return 1
"""
)

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


def _call(pipe: Pipeline, script: Any, keys_: list[str], args: list[Any]) -> None:
    """Queue a script call on a pipeline as a bare EVALSHA. (Registering the script with the pipeline
    would cost a SCRIPT EXISTS round trip on every execute; `ensure_scripts` loads them once instead.)"""
    pipe.evalsha(script.sha, len(keys_), *keys_, *args)


def _logids_key(trace_id: str) -> str:
    return keys.EVENTS + trace_id + ":logids"


class TraceStore:
    def __init__(self, redis: Redis, *, feed_maxlen: int = 10_000, logs_maxlen: int = 100_000) -> None:
        # redis-py types each command as "Awaitable[T] | T" (one signature for sync and async)
        self.redis: Any = redis
        self.feed_maxlen = feed_maxlen
        self.logs_maxlen = logs_maxlen
        self._open = redis.register_script(TRACE_OPEN)
        self._span = redis.register_script(SPAN_PUT)
        self._event = redis.register_script(EVENT_ADD)
        self._adjust = redis.register_script(TRACE_ADJUST)
        self._scripts_loaded = False

    async def ensure_scripts(self) -> None:
        """Load the Lua scripts into Redis once (again after `forget_scripts`, e.g. a Redis restart)."""
        if not self._scripts_loaded:
            for script in (self._open, self._span, self._event, self._adjust):
                script.sha = await self.redis.script_load(script.script)
            self._scripts_loaded = True

    def forget_scripts(self) -> None:
        self._scripts_loaded = False

    # --- writes: each adds one script call to a pipeline ------------------------------------------

    def open_trace(
        self, pipe: Pipeline, trace_id: str, *, start: int, entry: str, kind: str, label: str, open_: int = 0
    ) -> None:
        _call(
            pipe,
            self._open,
            [keys.TRACE + trace_id, keys.TRACES, keys.FEED],
            [trace_id, start, entry, kind, label, self.feed_maxlen, open_],
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
        trace_id = span["traceId"]
        ts = span.get("finishedAt") or span.get("startedAt") or now_ms()
        err = span["error"]["message"][:200] if span.get("error") else ""
        _call(
            pipe,
            self._span,
            [keys.TRACE + trace_id, keys.SPANS + trace_id, keys.FEED],
            [
                span["id"],
                json.dumps(span, default=str),
                open_delta,
                failed_delta,
                error_delta,
                ts,
                span["step"],
                err,
                self.feed_maxlen,
            ],
        )

    def add_event(self, pipe: Pipeline, event: dict[str, Any]) -> None:
        trace_id = event["traceId"]
        _call(
            pipe,
            self._event,
            [keys.EVENTS + trace_id, keys.FEED, keys.LOGS, _logids_key(trace_id)],
            [event["kind"], json.dumps(event, default=str), self.feed_maxlen, self.logs_maxlen],
        )

    def adjust_trace(
        self, pipe: Pipeline, trace_id: str, *, open_delta: int = 0, failed_delta: int = 0
    ) -> None:
        _call(
            pipe,
            self._adjust,
            [keys.TRACE + trace_id, keys.FEED],
            [open_delta, failed_delta, now_ms(), self.feed_maxlen],
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
            key=lambda s: (s.get("enqueuedAt") or s["startedAt"], s["startedAt"], s["attempt"]),
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
        needle = q.lower() if q else None
        found: list[dict[str, Any]] = []
        offset, scanned, chunk = 0, 0, max(limit * 2, 100)
        while len(found) < limit and scanned < scan_budget:
            ids = await self.redis.zrevrangebyscore(
                keys.TRACES, max_score, min_score, start=offset, num=chunk, withscores=True
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
                if status and trace["status"] != status:
                    continue
                if step and step not in trace["steps"]:
                    continue
                if entry and trace["entry"] != entry:
                    continue
                if needle and not any(
                    needle in str(v).lower()
                    for v in (trace["id"], trace["entry"], trace["label"], trace["error"], *trace["steps"])
                ):
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
        min_level = LEVELS.get(level.lower(), 0) if level else 0
        needle = q.lower() if q else None

        def keep(event: dict[str, Any]) -> bool:
            if step and event.get("step") != step:
                return False
            if LEVELS.get(str(event.get("level", "info")).lower(), 20) < min_level:
                return False
            if needle:
                text = (
                    event.get("message", "") + " " + json.dumps(event.get("fields", {}), default=str)
                ).lower()
                if needle not in text:
                    return False
            return True

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
                )
            pipe.zrem(keys.TRACES, *trace_ids)
            await pipe.execute()
