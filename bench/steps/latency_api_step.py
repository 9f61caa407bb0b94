"""Benchmark 1: an API step that emits one event and returns the time the emit was queued."""

import time

config = {
    "type": "api",
    "name": "BenchLatencyApi",
    "method": "POST",
    "path": "/bench/latency",
    "emits": ["bench.latency"],
}


async def handler(request, ctx):
    await ctx.emit("bench.latency", {"seq": request.body["seq"]})
    return {"status": 200, "body": {"emitted": time.time()}}
