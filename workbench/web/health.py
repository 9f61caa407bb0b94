"""`GET /healthz` (liveness) and `GET /readyz` (readiness) for a load balancer or Kubernetes.

Neither is behind the token, and neither touches the steps' API: `/healthz` answers 200 while the
process serves requests; `/readyz` answers 200 when Redis answers a PING within `READY_TIMEOUT_S`
and can take writes, else 503 naming the cause (`unreachable`, `timeout`, `out of memory`). The
workers alive (heartbeat less than 5 s old) are reported too, for information only: a web process
serves its API without any.
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, Response, get
from redis.exceptions import RedisError

from .. import keys
from ..ids import now_ms
from ..metrics import WORKER_ALIVE_MS

READY_TIMEOUT_S = 1.0
# policies under which a full Redis refuses our writes (the allkeys-* ones evict instead)
_REFUSING_POLICIES = ("noeviction", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl")


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
    used, limit = int(memory.get("used_memory", 0)), int(memory.get("maxmemory", 0))
    policy = str(memory.get("maxmemory_policy", "noeviction"))
    body: dict[str, Any] = {"status": "ready", "redis": "ok", "workers": workers}
    if limit and used >= limit and policy in _REFUSING_POLICIES:
        reason = (
            f"Redis out of memory: used_memory {used} >= maxmemory {limit} (policy {policy}): "
            "writes are refused"
        )
        return False, {"status": "not ready", "redis": "out of memory", "reason": reason, "workers": workers}
    if limit:
        body["memory"] = {"used": used, "max": limit, "policy": policy}
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
