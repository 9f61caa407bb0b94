"""`workbench replay`, `rerun`, `reemit` and `export-test`: the debugging actions of `replay.py` from a
terminal. Each builds its own Runtime against the project's Redis (as `workbench emit` does), so no web
process needs to run: a replayed request goes through an app built here, in-process, with the same
routes, middleware and validation; the jobs it starts are run by the project's workers as usual.

Each prints the new trace id (stdout; the replayed answer's status on stderr) or, for `export-test`,
the file; a bad id or a refusal is a clear message on stderr and exit status 1, a bad argument 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .replay import MISSING, BadEdit, Refused, Started
from .runtime import Runtime
from .settings import Settings


def add_commands(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    replay = sub.add_parser("replay", help="start a trace's entry again as a new trace; prints its id")
    common(replay)
    replay.add_argument("trace", metavar="TRACE")
    replay.add_argument("--body", help="the body to send instead (an API trace: text as is; else JSON)")
    replay.add_argument("--query", help="the query string to send instead (a=1&b=2)")
    replay.add_argument(
        "--header", action="append", default=[], metavar="NAME:VALUE",
        help="a header to send (added to the recorded ones or replacing one; NAME: drops it); repeatable",
    )  # fmt: skip
    replay.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    replay.set_defaults(fn=cmd_replay)

    rerun = sub.add_parser("rerun", help="run one event or cron run again, alone, as a new trace")
    common(rerun)
    rerun.add_argument(
        "span", metavar="TRACE/SPAN", help="the trace id and the span id (as the trace page shows)"
    )
    rerun.add_argument("--data", help="the input to run it with instead (JSON)")
    rerun.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    rerun.set_defaults(fn=cmd_rerun)

    reemit = sub.add_parser("reemit", help="send a recorded emit's topic again, as a new trace")
    common(reemit)
    reemit.add_argument("emit", metavar="TRACE/EVENT", help="the trace id and the emit's event id")
    reemit.add_argument("--payload", help="the payload to send instead (JSON)")
    reemit.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    reemit.set_defaults(fn=cmd_reemit)

    export = sub.add_parser("export-test", help="an API trace as a pytest file (workbench.testing)")
    common(export)
    export.add_argument("trace", metavar="TRACE")
    export.add_argument("-o", "--output", metavar="FILE", help="write it here (default: stdout)")
    export.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    export.set_defaults(fn=cmd_export_test)


def _error(message: str, code: int = 1) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _json_arg(name: str, raw: str | None) -> Any:
    if raw is None:
        return MISSING
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BadEdit(name, f"not JSON: {exc}") from exc


def _pair(arg: str, what: str) -> tuple[str, str]:
    first, sep, second = arg.partition("/")
    if not sep or not first or not second:
        raise BadEdit(what, f"expected TRACE/ID (as the trace page shows them), got {arg!r}")
    return first, second


def _run(args: argparse.Namespace, action: Callable[[Runtime], Awaitable[Any]]) -> tuple[int, Any]:
    from .cli import _load, _settings

    settings: Settings = _settings(args)
    registry = _load(settings)

    async def go() -> Any:
        runtime = Runtime(settings, registry)
        await runtime.start()
        try:
            return await action(runtime)
        finally:
            await runtime.stop()

    try:
        return 0, asyncio.run(go())
    except LookupError as exc:
        return _error(str(exc).strip("'\"")), None
    except BadEdit as exc:
        return _error(str(exc), 2), None
    except Refused as exc:
        return _error(str(exc)), None


def _print_started(code: int, started: Started | None) -> int:
    if started is None:
        return code
    print(started.trace_id)
    if started.status is not None:
        print(f"answered {started.status}", file=sys.stderr)
    return code


def cmd_replay(args: argparse.Namespace) -> int:
    from . import replay
    from .web.app import create_app

    async def act(runtime: Runtime) -> Started:
        trace = await replay.load_trace(runtime, args.trace)
        edits: dict[str, Any] = {}
        if args.body is not None:
            edits["body"] = args.body if trace.get("kind") == "api" else _json_arg("--body", args.body)
        if args.query is not None:
            edits["query"] = args.query
        if args.header:
            headers = dict(replay.recorded_request(trace).get("headers") or {})
            for item in args.header:
                name, sep, value = item.partition(":")
                if not sep:
                    raise BadEdit("--header", f"expected NAME:VALUE, got {item!r}")
                headers.pop(name.strip().lower(), None)
                if value.strip():
                    headers[name.strip().lower()] = value.strip()
            edits["headers"] = headers
        app = create_app(runtime.settings, runtime.registry, runtime)
        return await replay.replay(runtime, app, args.trace, edits)

    return _print_started(*_run(args, act))


def cmd_rerun(args: argparse.Namespace) -> int:
    from . import replay

    try:
        trace_id, span_id = _pair(args.span, "TRACE/SPAN")
        data = _json_arg("--data", args.data)
    except BadEdit as exc:
        return _error(str(exc), 2)
    return _print_started(*_run(args, lambda runtime: replay.rerun(runtime, trace_id, span_id, data)))


def cmd_reemit(args: argparse.Namespace) -> int:
    from . import replay

    try:
        trace_id, event_id = _pair(args.emit, "TRACE/EVENT")
        payload = _json_arg("--payload", args.payload)
    except BadEdit as exc:
        return _error(str(exc), 2)
    return _print_started(*_run(args, lambda runtime: replay.reemit(runtime, trace_id, event_id, payload)))


def cmd_export_test(args: argparse.Namespace) -> int:
    from .replay import load_trace
    from .testing.export import export_test

    async def act(runtime: Runtime) -> str:
        return await export_test(runtime, await load_trace(runtime, args.trace))

    code, source = _run(args, act)
    if source is None:
        return code
    if args.output:
        Path(args.output).write_text(source)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(source)
    return 0
