"""Dead letters: background jobs that failed their last attempt, kept with everything needed to
try them again (payload, error, attempts, trace id). Nothing is dropped silently."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from . import keys
from .ids import new_id, now_ms

if TYPE_CHECKING:
    from .queue import JobInfo
    from .runtime import Runtime


class DeadLetters:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.redis: Any = runtime.redis  # redis-py's types mix sync and async returns

    async def add(self, payload: dict[str, Any], info: JobInfo, attempts: int, error: dict[str, str]) -> str:
        letter_id = new_id()
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
            "failedAt": now_ms(),
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.DEAD_LETTER + letter_id, json.dumps(record, default=str))
            pipe.zadd(keys.DEAD, {letter_id: record["failedAt"]})
            await pipe.execute()
        return letter_id

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

    async def _remove(self, letter_id: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.DEAD_LETTER + letter_id)
            pipe.zrem(keys.DEAD, letter_id)
            deleted, _ = await pipe.execute()
        return bool(deleted)

    async def retry(self, letter_id: str) -> str | None:
        """Run the job again as a new attempt in the same trace; returns the new job id."""
        record = await self.get(letter_id)
        if record is None or not await self._remove(letter_id):
            return None
        step = self.runtime.registry.get(record["step"])
        if step is None:
            return None
        self.runtime.recorder.adjust_trace(record["traceId"], failed_delta=-1)
        _, job_id = await self.runtime.enqueue_step(
            step,
            record["data"],
            trace_id=record["traceId"],
            parent_id=record.get("parentId"),
            topic=record.get("topic"),
            attempt_base=int(record["attempts"]),
        )
        return job_id

    async def discard(self, letter_id: str) -> bool:
        return await self._remove(letter_id)

    async def retry_all(self, *, step: str | None = None) -> int:
        return sum([1 for r in await self.list(step=step, limit=10_000) if await self.retry(r["id"])])

    async def discard_all(self, *, step: str | None = None) -> int:
        return sum([1 for r in await self.list(step=step, limit=10_000) if await self.discard(r["id"])])
