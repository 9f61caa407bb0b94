"""`ctx.state`: JSON values in Redis, grouped (one hash per group), shared by every process.

Inside a traced span each operation is recorded with what it did: the value before and after a
write (capped like an emit's payload, `WORKBENCH_PAYLOAD_CAP`), the value a read found, the count a
group read or clear saw. The value replaced comes back from the write itself (`lua/state_write.lua`,
`lua/compare_and_set.lua`): no extra round trip. In the same call the key's change list
(`wb:state-changes:…`, the State page's "changed by") gets the span, capped at `changes_kept`
entries, expiring after `changes_ttl_s` and deleted with its key. Outside a span (the workbench's
own edits), or with tracing off, an operation is the plain command it always was.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from . import keys, lua
from .ids import now_ms
from .json_values import check_value
from .settings import Settings
from .tracing.recorder import SpanScope, current_scope
from .tracing.records import cap_json

# key -> the spans that changed it, newest first (a list of JSON entries); see `changes_key`
STATE_CHANGES = keys.PREFIX + "state-changes:"


def changes_key(group: str, key: str) -> str:
    """`wb:state-changes:<len(group)>:<group>:<key>`: the length keeps `a:b`/`c` apart from `a`/`b:c`."""
    return f"{STATE_CHANGES}{len(group)}:{group}:{key}"


_decode = msgspec.json.Decoder().decode


def _traced() -> SpanScope | None:
    scope = current_scope.get()
    return scope if scope is not None and scope.recorder.enabled else None


def _dumps(value: Any) -> str:
    """The stored form of a value; refuses (UnfitJson, a ValueError) what could not be shown again."""
    return _stored_form(value)[0]


def _stored_form(value: Any) -> tuple[str, bool]:
    """`_dumps`, and whether a part of the value was not JSON and was stored as its text (`str`: a
    datetime, a set): then the value as stored differs from `value`, and a state diff shows the stored
    one."""
    converted = False

    def as_text(item: Any) -> str:
        nonlocal converted
        converted = True
        return str(item)

    text = json.dumps(check_value(value), separators=(",", ":"), default=as_text)
    return text, converted


def _entry(scope: SpanScope, op: str) -> str:
    """A change list's entry, `{"traceId", "spanId", "step", "op", "ts"}` (the span's part made once)."""
    head = scope.tags.get("wb.state_entry")
    if head is None:
        span = scope.span
        head = scope.tags["wb.state_entry"] = json.dumps(
            {"traceId": span.trace_id, "spanId": span.id, "step": span.step}, separators=(",", ":")
        )[:-1]
    return f'{head},"op":"{op}","ts":{now_ms()}}}'


class _Change:
    """What one operation did, as its span records it (values capped at the recorder's payload cap)."""

    def __init__(self, scope: SpanScope) -> None:
        self.scope = scope
        self.cap = scope.recorder.payload_cap
        self.data: dict[str, Any] = {}

    def value(self, name: str, value: Any, text: str | None = None) -> _Change:
        kept, cut = cap_json(value, text if text is not None else _dumps(value), self.cap)
        self.data[name] = kept
        if cut:
            self.data["truncated"] = True
        return self

    def stored(self, name: str, raw: str | None) -> _Change:
        """A value as Redis gave it (None: the key was absent, and `name` is left out). A stored text
        that is not JSON fit to show (written by hand, or before the doors refused it) is kept as
        text, marked `unreadable`: a record must never fail the operation it describes."""
        if raw is None:
            return self
        try:
            value = _decode(raw)  # msgspec: quicker than json.loads, and it refuses lone surrogates
        except msgspec.DecodeError:
            self.data["unreadable"] = True
            return self.value(name, raw, json.dumps(raw))
        return self.value(name, value, raw)

    def record(self, op: str, group: str, key: str | None, **more: Any) -> None:
        self.scope.state(op, group, key, **self.data, **more)


class State:
    def __init__(self, redis: Redis) -> None:
        # redis-py types each command as "Awaitable[T] | T" (one signature for sync and async)
        self.redis: Any = redis
        self._listed: set[str] = set()  # groups this process has already added to the group list
        self._compare_and_set = redis.register_script(lua.load("compare_and_set"))
        self._write = redis.register_script(lua.load("state_write"))
        self.changes_kept = 10  # spans a key's change list keeps
        self.changes_ttl_s = Settings.retention_age_s  # the Runtime sets its own retention age

    async def _list_group(self, group: str) -> None:
        """Name the group in the list of groups once per process (a list only ever grows;
        `groups()` leaves out the empty ones), so a write is one command, not a transaction."""
        if group not in self._listed:
            await self.redis.sadd(keys.STATE_GROUPS, group)
            self._listed.add(group)

    async def _traced_write(self, scope: SpanScope | None, op: str, group: str, key: str, arg: Any) -> Any:
        """One script call: the write, the key's change list (when `scope`), the group's listing."""
        unlisted = group if op != "delete" and group not in self._listed else ""
        entry = _entry(scope, op) if scope else ""
        names = (keys.STATE + group, changes_key(group, key), keys.STATE_GROUPS)
        args = (op, key, arg, entry, self.changes_kept, self.changes_ttl_s, unlisted)
        try:  # EVALSHA itself: redis-py's Script wrapper costs more than the script's own work here
            result = await self.redis.evalsha(self._write.sha, 3, *names, *args)
        except NoScriptError:  # a Redis that has not seen it yet (or restarted): load it, once
            result = await self._write(keys=names, args=args)
        if unlisted:
            self._listed.add(group)
        return result

    async def get(self, group: str, key: str) -> Any:
        raw = await self.redis.hget(keys.STATE + group, key)
        if (scope := _traced()) is not None:
            _Change(scope).stored("value", raw).record("get", group, key)
        return None if raw is None else json.loads(raw)

    async def set(self, group: str, key: str, value: Any) -> Any:
        check_value(key, what="key")
        raw, converted = _stored_form(value)
        if (scope := _traced()) is None:
            await self._list_group(group)
            await self.redis.hset(keys.STATE + group, key, raw)
            return value
        old = await self._traced_write(scope, "set", group, key, raw)
        after = json.loads(raw) if converted else value
        _Change(scope).stored("before", old).value("after", after, raw).record("set", group, key)
        return value

    async def delete(self, group: str, key: str) -> bool:
        return await self._take(group, key) is not None

    async def take(self, group: str, key: str) -> Any:
        """Delete a key and return the value it held (None if it was absent): one round trip."""
        raw = await self._take(group, key)
        return None if raw is None else json.loads(raw)

    async def _take(self, group: str, key: str) -> str | None:
        scope = _traced()
        raw: str | None = await self._traced_write(None, "delete", group, key, "")
        if scope is not None:
            _Change(scope).stored("before", raw).record("delete", group, key)
        return raw

    async def get_group(self, group: str) -> dict[str, Any]:
        raw = await self.redis.hgetall(keys.STATE + group)
        if (scope := _traced()) is not None:
            scope.state("get_group", group, None, count=len(raw))
        return {k: json.loads(v) for k, v in raw.items()}

    async def clear(self, group: str) -> None:
        """Delete the group, and the change lists of its keys."""
        names = await self.redis.hkeys(keys.STATE + group)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.STATE + group)
            for start in range(0, len(names), 500):
                pipe.delete(*(changes_key(group, k) for k in names[start : start + 500]))
            await pipe.execute()
        if (scope := _traced()) is not None:
            scope.state("clear", group, None, count=len(names))

    async def increment(self, group: str, key: str, by: int = 1) -> int:
        """An atomic counter (for ids); stored like any other value."""
        if (scope := _traced()) is None:
            await self._list_group(group)
            return int(await self.redis.hincrby(keys.STATE + group, key, by))
        after = int(await self._traced_write(scope, "increment", group, key, by))
        scope.state("increment", group, key, before=after - by, after=after)
        return after

    async def update(self, group: str, key: str, change: Callable[[Any], Awaitable[Any] | Any]) -> Any:
        """Read, change and write one value with no lost update: `change(old)` returns the new value
        (or `None` to leave it as it is) and is run again if another writer changed this key first.

        The write is a compare-and-set on this key alone (a script), not a WATCH on the group's
        hash: writers of other keys in the group (every pet in `pets`) do not make it start over."""
        name = keys.STATE + group
        scope = _traced()
        tries = 0
        while True:
            tries += 1
            raw = await self.redis.hget(name, key)
            old = None if raw is None else json.loads(raw)
            new = change(old)
            if hasattr(new, "__await__"):
                new = await new
            if new is None:
                if scope is not None:
                    _Change(scope).stored("before", raw).stored("after", raw).record(
                        "update", group, key, changed=False
                    )
                return old
            text, converted = _stored_form(new)
            expected = ["0", ""] if raw is None else ["1", raw]
            traced: list[Any] = (
                [_entry(scope, "update"), self.changes_kept, self.changes_ttl_s] if scope else []
            )
            names = [name, changes_key(group, key)] if scope else [name]
            if await self._compare_and_set(keys=names, args=[key, *expected, text, *traced]):
                await self._list_group(group)
                if scope is not None:
                    more = {"tries": tries} if tries > 1 else {}
                    after = json.loads(text) if converted else new
                    _Change(scope).stored("before", raw).value("after", after, text).record(
                        "update", group, key, **more
                    )
                return new

    async def changed_by(
        self, group: str, keys_: list[str], limit: int = 5
    ) -> dict[str, list[dict[str, Any]]]:
        """The spans that last changed each key, newest first (at most `limit` each), from the keys'
        change lists; an entry whose trace retention has removed since says so (`gone`)."""
        if not keys_:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys_:
                pipe.lrange(changes_key(group, key), 0, limit - 1)
            found = [[json.loads(e) for e in entries] for entries in await pipe.execute()]
        entries = [e for listed in found for e in listed]
        if entries:
            async with self.redis.pipeline(transaction=False) as pipe:
                for e in entries:
                    pipe.exists(keys.TRACE + str(e.get("traceId")))
                for e, exists in zip(entries, await pipe.execute(), strict=True):
                    e["gone"] = not exists
        return dict(zip(keys_, found, strict=True))

    async def groups(self) -> list[str]:
        """Groups that hold at least one key: the group list, healed from the keys themselves.

        The list is written once per process (a write stays one command), so a Redis that lost it
        (a restore, an eviction, a hand-deleted key) would hide groups that hold data: the groups
        are found again from the `wb:state:*` hashes (one SCAN, on the State page only) and put
        back in the list."""
        listed = set(await self.redis.smembers(keys.STATE_GROUPS))
        found: set[str] = set()
        async for name in self.redis.scan_iter(match=keys.STATE + "*", count=1000, _type="HASH"):
            found.add(name.removeprefix(keys.STATE))
        if found - listed:
            await self.redis.sadd(keys.STATE_GROUPS, *sorted(found - listed))
        return sorted(found)
