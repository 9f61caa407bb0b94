"""Benchmarks 2 and 3: a job that does nothing."""

config = {"type": "event", "name": "BenchNoop", "subscribes": ["bench.noop"]}


async def handler(data, ctx):
    return None
