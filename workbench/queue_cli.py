"""`workbench cancel`, `queues`, `pause` and `resume`: the queue controls (`queue_control.py`,
`cancel.py`) from a terminal, against the project's Redis (as `workbench emit` does); the workers
that run the jobs need not be this process.

Each prints the outcome on stdout; a bad id or an unknown step is a clear message on stderr and
exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from . import keys
from .cancel import NothingToCancel, cancel_job, cancel_trace
from .queue_control import UnknownStep, pause, queue_overview, resume
from .runtime import Runtime


def add_commands(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    cancel = sub.add_parser("cancel", help="cancel a trace's queued and running jobs, or one job")
    common(cancel)
    cancel.add_argument("ref", metavar="TRACE|JOB", help="a trace id, a job id or a span id (jobId:run)")
    cancel.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    cancel.set_defaults(fn=cmd_cancel)

    queues = sub.add_parser("queues", help="per background step: ready, deferred, running, retrying, ...")
    common(queues)
    queues.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    queues.set_defaults(fn=cmd_queues)

    for name, what in (
        ("pause", "pause a background step: its jobs wait"),
        ("resume", "resume a paused step"),
    ):
        cmd = sub.add_parser(name, help=what)
        common(cmd)
        cmd.add_argument("step", metavar="STEP")
        cmd.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
        cmd.set_defaults(fn=cmd_pause if name == "pause" else cmd_resume)


def _run(args: argparse.Namespace, action: Callable[[Runtime], Awaitable[str]]) -> int:
    from .cli import _load, _settings

    settings = _settings(args)
    registry = _load(settings)

    async def go() -> str:
        runtime = Runtime(settings, registry)
        await runtime.start()
        try:
            return await action(runtime)
        finally:
            await runtime.stop()

    try:
        print(asyncio.run(go()))
    except (NothingToCancel, UnknownStep) as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    async def act(runtime: Runtime) -> str:
        if await runtime.redis.exists(keys.TRACE + args.ref):
            result = await cancel_trace(runtime, args.ref)
        else:
            result = await cancel_job(runtime, args.ref)
        counts = result.counts()
        parts = [f"{n} {what}" for what, n in counts.items() if n]
        note = " (its worker has not stopped it yet)" if counts["requested"] else ""
        return ", ".join(parts) + note

    return _run(args, act)


def cmd_queues(args: argparse.Namespace) -> int:
    async def act(runtime: Runtime) -> str:
        rows = await queue_overview(runtime)
        head = ("step", "ready", "deferred", "running", "retrying", "dead", "runs/min")
        lines = ["{:<24} {:>6} {:>8} {:>7} {:>8} {:>5} {:>8}".format(*head)]
        for r in rows:
            mark = " (paused)" if r.paused else ""
            lines.append(
                f"{r.step:<24} {r.ready:>6} {r.deferred:>8} {r.running:>7} {r.retrying:>8} "
                f"{r.dead_letters:>5} {r.runs_per_minute:>8.1f}{mark}"
            )
        return "\n".join(lines)

    return _run(args, act)


def cmd_pause(args: argparse.Namespace) -> int:
    async def act(runtime: Runtime) -> str:
        changed = await pause(runtime, args.step)
        return f"{args.step} paused" + ("" if changed else " (it was already)")

    return _run(args, act)


def cmd_resume(args: argparse.Namespace) -> int:
    async def act(runtime: Runtime) -> str:
        changed, moved = await resume(runtime, args.step)
        if not changed:
            return f"{args.step} was not paused"
        return f"{args.step} resumed: {moved} waiting jobs back in the queue"

    return _run(args, act)
