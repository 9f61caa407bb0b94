"""Benchmark 7: the background half of a soak trace: one log line."""

config = {"type": "event", "name": "BenchSoakEvent", "subscribes": ["bench.soak"]}


async def handler(data, ctx):
    ctx.logger.info("soaked", n=data.get("n"))
