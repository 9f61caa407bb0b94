"""`ctx.state.update`: a read-modify-write that loses no update and is only redone when its own key
changed meanwhile."""

from __future__ import annotations

import asyncio
from typing import Any

from workbench.runtime import Runtime


async def test_concurrent_updates_of_one_key_lose_nothing(runtime: Runtime) -> None:
    def bump(old: Any) -> dict[str, int]:
        return {"n": (old or {"n": 0})["n"] + 1}

    await asyncio.gather(*(runtime.state.update("g", "k", bump) for _ in range(50)))
    assert await runtime.state.get("g", "k") == {"n": 50}


async def test_an_update_is_redone_when_its_own_key_changed_meanwhile(runtime: Runtime) -> None:
    state = runtime.state
    await state.set("g", "k", {"n": 1})
    seen: list[int] = []

    async def change(old: Any) -> dict[str, int]:
        seen.append(old["n"])
        if len(seen) == 1:
            await state.set("g", "k", {"n": 10})  # another writer got there first
        return {"n": old["n"] + 1}

    assert await state.update("g", "k", change) == {"n": 11}
    assert seen == [1, 10]


async def test_writes_to_other_keys_of_the_group_do_not_redo_an_update(runtime: Runtime) -> None:
    state = runtime.state
    await state.set("pets", "1", {"n": 0})
    calls = 0

    async def change(old: Any) -> dict[str, int]:
        nonlocal calls
        calls += 1
        await state.set("pets", "2", {"other": calls})  # a busy group: another pet is written
        return {"n": old["n"] + 1}

    assert await state.update("pets", "1", change) == {"n": 1}
    assert calls == 1
    assert await state.groups() == ["pets"]


async def test_an_update_of_a_missing_key_creates_it_unless_someone_else_did(runtime: Runtime) -> None:
    state = runtime.state
    seen: list[Any] = []

    async def create(old: Any) -> dict[str, str]:
        seen.append(old)
        if len(seen) == 1:
            await state.set("g", "new", {"by": "other"})
        return {"by": "me", "after": old["by"] if old else "nobody"}

    assert await state.update("g", "new", create) == {"by": "me", "after": "other"}
    assert seen == [None, {"by": "other"}]


async def test_groups_are_found_again_after_redis_lost_the_group_list(
    runtime: Runtime, sync_redis: Any
) -> None:
    await runtime.state.set("pets", "1", {"a": 1})
    await runtime.state.set("orders", "9", 9)
    sync_redis.delete("wb:state-groups")  # as a restore or an eviction would
    assert await runtime.state.groups() == ["orders", "pets"]
    assert sorted(sync_redis.smembers("wb:state-groups")) == ["orders", "pets"]  # healed
    await runtime.state.delete("orders", "9")
    assert await runtime.state.groups() == ["pets"]  # an emptied group is not listed
