"""`GET /healthz` (liveness) and `GET /readyz` (readiness) for a load balancer or Kubernetes.

Neither is behind the token, and neither touches the steps' API: `/healthz` answers 200 while the
process serves requests; `/readyz` answers 200 when Redis answers a PING within `READY_TIMEOUT_S`
and can take writes, else 503 naming the cause (`unreachable`, `timeout`, `out of memory`). The
workers alive (heartbeat less than 5 s old) are reported too, for information only: a web process
serves its API without any. Under a `maxmemory`, how full Redis is (`MemoryPressure`) is reported by
readiness and shown by the header's status dots (pages.py), so a Redis filling up is seen before it
refuses writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from litestar import Request, Response, get
from redis.exceptions import RedisError

from .. import keys
from ..ids import now_ms
from ..metrics import WORKER_ALIVE_MS

READY_TIMEOUT_S = 1.0
# policies under which a full Redis refuses our writes (the allkeys-* ones evict instead)
_REFUSING_POLICIES = ("noeviction", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl")
MEMORY_HIGH = 0.8  # used_memory / maxmemory from which memory pressure is "high" (an amber dot)


@dataclass(frozen=True)
class MemoryPressure:
    """How full a Redis with a `maxmemory` is, from its INFO memory."""

    used: int
    limit: int
    policy: str

    @property
    def percent(self) -> float:
        return round(100 * self.used / self.limit, 1)

    @property
    def level(self) -> Literal["ok", "high", "full"]:
        """`full`: at the limit under a policy that refuses writes; `high`: from MEMORY_HIGH on (or at
        the limit under one that evicts keys to make room)."""
        if self.used >= self.limit and self.policy in _REFUSING_POLICIES:
            return "full"
        return "high" if self.used >= MEMORY_HIGH * self.limit else "ok"

    def describe(self) -> str:
        text = f"Redis memory {self.percent:g} %: {_mb(self.used)} of {_mb(self.limit)} ({self.policy})"
        if self.level == "full":
            return text + ": writes are refused"
        if self.used >= self.limit:
            return text + ": keys are evicted to make room"
        return text

    def to_json(self) -> dict[str, Any]:
        return {"used": self.used, "max": self.limit, "policy": self.policy, "percent": self.percent,
                "pressure": self.level}  # fmt: skip


def memory_pressure(memory: Mapping[str, Any]) -> MemoryPressure | None:
    """From INFO memory; None when Redis has no `maxmemory` (it may grow to what the machine has)."""
    limit = int(memory.get("maxmemory", 0))
    if not limit:
        return None
    return MemoryPressure(
        int(memory.get("used_memory", 0)), limit, str(memory.get("maxmemory_policy", "noeviction"))
    )


def _mb(n: int) -> str:
    return f"{n / 1_048_576:.1f} MiB"


async def readiness(redis: Any, timeout_s: float = READY_TIMEOUT_S) -> tuple[bool, dict[str, Any]]:
    """(ready, the answer's body) for the Redis behind `redis` (an async client)."""
    try:
        async with asyncio.timeout(timeout_s):
            await redis.ping()
            memory = await redis.info("memory")
            workers = int(await redis.zcount(keys.WORKERS, now_ms() - WORKER_ALIVE_MS, "+inf"))
    except TimeoutError:
        return False, {"status": "not ready", "redis": "timeout",
                       "reason": f"Redis did not answer within {timeout_s:g} s"}  # fmt: skip
    except (RedisError, OSError) as exc:
        reason = str(exc) or type(exc).__name__
        if "OOM" in reason:
            return False, {"status": "not ready", "redis": "out of memory", "reason": reason}
        return False, {
            "status": "not ready",
            "redis": "unreachable",
            "reason": f"Redis unreachable: {reason}",
        }
    pressure = memory_pressure(memory)
    body: dict[str, Any] = {"status": "ready", "redis": "ok", "workers": workers}
    if pressure is not None and pressure.level == "full":
        reason = (
            f"Redis out of memory: used_memory {pressure.used} >= maxmemory {pressure.limit} "
            f"(policy {pressure.policy}): writes are refused"
        )
        return False, {"status": "not ready", "redis": "out of memory", "reason": reason, "workers": workers,
                       "memory": pressure.to_json()}  # fmt: skip
    if pressure is not None:
        body["memory"] = pressure.to_json()
    return True, body


@get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    """Liveness: the process is up and its event loop answers."""
    return {"status": "ok"}


@get("/readyz", include_in_schema=False)
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """Readiness: Redis answers and takes writes."""
    ready, body = await readiness(request.app.state.runtime.redis)
    return Response(body, status_code=200 if ready else 503, headers={} if ready else {"retry-after": "1"})


health_routes = [healthz, readyz]
