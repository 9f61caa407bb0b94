"""The baseline worker: plain arq (no wake-up channel, no tracing), with no-op job functions.

python -m bench.bare_arq --redis URL [--poll 0.5] [--concurrency 20]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from arq.connections import RedisSettings
from arq.worker import Worker

QUEUE = "arq:queue"  # arq's default queue


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def latency(ctx: dict[str, Any], seq: int) -> None:
    started = time.time()
    await ctx["redis"].hset("bench:bare-latency", str(seq), repr(started))


async def pet_created(ctx: dict[str, Any], data: dict[str, Any]) -> None:
    return None


async def feeding_reminder(ctx: dict[str, Any], data: dict[str, Any]) -> None:
    return None


async def startup(ctx: dict[str, Any]) -> None:
    await ctx["redis"].incr("bench:bare-ready")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", required=True)
    parser.add_argument("--poll", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    worker = Worker(
        functions=[noop, latency, pet_created, feeding_reminder],  # type: ignore[list-item]
        redis_settings=RedisSettings.from_dsn(args.redis),
        max_jobs=args.concurrency,
        poll_delay=args.poll,
        keep_result=0,
        log_results=False,
        on_startup=startup,
    )
    worker.run()


if __name__ == "__main__":
    main()
