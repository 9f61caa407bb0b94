"""Dead letters: background jobs that failed their last attempt, kept with everything needed to
try them again (payload, error, attempts, trace id). A store over Redis, like `State`: it knows
nothing of the runtime; retrying one (starting a run) is the runtime's (`Runtime.retry_dead_letter`).

Kept bounded: at most `max_count` letters (the oldest go first) and none older than `max_age_s`;
what the bounds remove is logged, never silently lost from view.
"""

from __future__ import annotations

import itertools
import json
import logging
from typing import TYPE_CHECKING, Any

from . import keys
from .ids import new_id, now_ms

if TYPE_CHECKING:
    from .job_queue import JobInfo

log = logging.getLogger("workbench.deadletters")
_sequence = itertools.count()


class DeadLetters:
    def __init__(self, redis: Any, *, max_count: int = 10_000, max_age_s: int = 30 * 24 * 3600) -> None:
        self.redis: Any = redis  # redis-py's types mix sync and async returns
        self.max_count = max_count
        self.max_age_s = max_age_s

    async def add(self, payload: dict[str, Any], info: JobInfo, attempts: int, error: dict[str, str]) -> str:
        letter_id = new_id()
        failed_at = now_ms()
        record = {
            "id": letter_id,
            "jobId": info.job_id,
            "step": payload.get("step"),
            "topic": payload.get("topic"),
            "data": payload.get("data"),
            "traceId": payload.get("traceId"),
            "parentId": payload.get("parentId"),
            "attempts": attempts,
            "error": error,
            "failedAt": failed_at,
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.DEAD_LETTER + letter_id, json.dumps(record, default=str))
            # a fraction of a ms keeps letters of the same ms in the order they failed (in this process)
            pipe.zadd(keys.DEAD, {letter_id: failed_at + next(_sequence) % 1000 / 1000})
            pipe.zcard(keys.DEAD)
            *_, count = await pipe.execute()
        if count > self.max_count:
            await self.trim()
        return letter_id

    async def trim(self) -> int:
        """Remove the letters beyond the count and age bounds (oldest first); returns how many."""
        doomed: list[str] = list(
            await self.redis.zrangebyscore(keys.DEAD, "-inf", f"({now_ms() - self.max_age_s * 1000}")
        )
        total = await self.redis.zcard(keys.DEAD)
        if total - len(doomed) > self.max_count:
            doomed += await self.redis.zrange(keys.DEAD, len(doomed), total - self.max_count - 1)
        if doomed:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(*[keys.DEAD_LETTER + i for i in doomed])
                pipe.zrem(keys.DEAD, *doomed)
                await pipe.execute()
            log.warning(
                "removed %d dead letters beyond the bounds (%d letters, %d days): "
                "WORKBENCH_DEAD_LETTERS_MAX and WORKBENCH_DEAD_LETTERS_AGE set them",
                len(doomed), self.max_count, self.max_age_s // 86_400,
            )  # fmt: skip
        return len(doomed)

    async def get(self, letter_id: str) -> dict[str, Any] | None:
        raw = await self.redis.get(keys.DEAD_LETTER + letter_id)
        return json.loads(raw) if raw else None

    async def list(self, *, step: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        ids = await self.redis.zrevrange(keys.DEAD, 0, -1)
        out: list[dict[str, Any]] = []
        for start in range(0, len(ids), 200):
            raws = await self.redis.mget([keys.DEAD_LETTER + i for i in ids[start : start + 200]])
            for raw in raws:
                if raw is None:
                    continue
                record = json.loads(raw)
                if step and record.get("step") != step:
                    continue
                out.append(record)
                if len(out) >= limit:
                    return out
        return out

    async def count(self) -> int:
        return int(await self.redis.zcard(keys.DEAD))

    async def take(self, letter_id: str) -> dict[str, Any] | None:
        """Remove a letter and return it (None if it was not there, or another caller took it)."""
        record = await self.get(letter_id)
        if record is None:
            return None
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.DEAD_LETTER + letter_id)
            pipe.zrem(keys.DEAD, letter_id)
            deleted, _ = await pipe.execute()
        return record if deleted else None

    async def put_back(self, record: dict[str, Any]) -> None:
        """Keep a letter that was taken but could not be retried, as it was."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.DEAD_LETTER + record["id"], json.dumps(record, default=str))
            pipe.zadd(keys.DEAD, {record["id"]: record["failedAt"]})
            await pipe.execute()

    async def discard(self, letter_id: str) -> bool:
        return await self.take(letter_id) is not None

    async def discard_all(self, *, step: str | None = None) -> int:
        return sum([1 for r in await self.list(step=step, limit=10_000) if await self.discard(r["id"])])
