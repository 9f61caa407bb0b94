"""Benchmark 4: logs `count` lines at `rate` per second, each carrying the time it was logged."""

import asyncio
import time

config = {"type": "event", "name": "BenchLogBurst", "subscribes": ["bench.logs"], "timeout": 600}


async def handler(data, ctx):
    count, rate = int(data["count"]), float(data["rate"])
    start = time.monotonic()
    for seq in range(count):
        delay = start + seq / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        ctx.logger.info("tick", run=data.get("run"), seq=seq, sent=time.time())
