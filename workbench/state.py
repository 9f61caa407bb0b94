"""`ctx.state`: JSON values in Redis, grouped (one hash per group), shared by every process.

Each operation is recorded in the running span (op, group, key), so a trace shows what a step
read and wrote.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from . import keys, lua
from .json_values import check_value
from .tracing.recorder import current_scope


def _record(op: str, group: str, key: str | None) -> None:
    scope = current_scope.get()
    if scope is not None:
        scope.state(op, group, key)


def _dumps(value: Any) -> str:
    """The stored form of a value; refuses (UnfitJson, a ValueError) what could not be shown again."""
    return json.dumps(check_value(value), separators=(",", ":"), default=str)


class State:
    def __init__(self, redis: Redis) -> None:
        # redis-py types each command as "Awaitable[T] | T" (one signature for sync and async)
        self.redis: Any = redis
        self._listed: set[str] = set()  # groups this process has already added to the group list
        self._compare_and_set = redis.register_script(lua.load("compare_and_set"))

    async def _list_group(self, group: str) -> None:
        """Name the group in the list of groups once per process (a list only ever grows;
        `groups()` leaves out the empty ones), so a write is one command, not a transaction."""
        if group not in self._listed:
            await self.redis.sadd(keys.STATE_GROUPS, group)
            self._listed.add(group)

    async def get(self, group: str, key: str) -> Any:
        _record("get", group, key)
        raw = await self.redis.hget(keys.STATE + group, key)
        return None if raw is None else json.loads(raw)

    async def set(self, group: str, key: str, value: Any) -> Any:
        check_value(key, what="key")
        _record("set", group, key)
        await self._list_group(group)
        await self.redis.hset(keys.STATE + group, key, _dumps(value))
        return value

    async def delete(self, group: str, key: str) -> bool:
        _record("delete", group, key)
        return bool(await self.redis.hdel(keys.STATE + group, key))

    async def get_group(self, group: str) -> dict[str, Any]:
        _record("get_group", group, None)
        raw = await self.redis.hgetall(keys.STATE + group)
        return {k: json.loads(v) for k, v in raw.items()}

    async def clear(self, group: str) -> None:
        _record("clear", group, None)
        await self.redis.delete(keys.STATE + group)

    async def increment(self, group: str, key: str, by: int = 1) -> int:
        """An atomic counter (for ids); stored like any other value."""
        _record("increment", group, key)
        await self._list_group(group)
        return int(await self.redis.hincrby(keys.STATE + group, key, by))

    async def update(self, group: str, key: str, change: Callable[[Any], Awaitable[Any] | Any]) -> Any:
        """Read, change and write one value with no lost update: `change(old)` returns the new value
        (or `None` to leave it as it is) and is run again if another writer changed this key first.

        The write is a compare-and-set on this key alone (a script), not a WATCH on the group's
        hash: writers of other keys in the group (every pet in `pets`) do not make it start over."""
        _record("update", group, key)
        name = keys.STATE + group
        while True:
            raw = await self.redis.hget(name, key)
            old = None if raw is None else json.loads(raw)
            new = change(old)
            if hasattr(new, "__await__"):
                new = await new
            if new is None:
                return old
            expected = ["0", ""] if raw is None else ["1", raw]
            if await self._compare_and_set(keys=[name], args=[key, *expected, _dumps(new)]):
                await self._list_group(group)
                return new

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
