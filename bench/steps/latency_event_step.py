"""Benchmark 1: records when its handler started (wall clock), keyed by the request's sequence number."""

import time

config = {"type": "event", "name": "BenchLatencyEvent", "subscribes": ["bench.latency"]}


async def handler(data, ctx):
    started = time.time()
    await ctx.state.set("bench-latency", str(data["seq"]), started)
