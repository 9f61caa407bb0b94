"""Benchmark 7: one trace per request, with one background job."""

config = {
    "type": "api",
    "name": "BenchSoakApi",
    "method": "POST",
    "path": "/bench/soak",
    "emits": ["bench.soak"],
}


async def handler(request, ctx):
    await ctx.emit("bench.soak", {"n": request.body.get("n")})
    return {"status": 202, "body": {"ok": True}}
