"""`workbench` (also `python -m workbench`): new, dev, start, worker, emit, steps, check."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from .registry import Registry, discover
from .settings import LOOPBACK_HOSTS, Settings
from .step_config import StepError


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _load(settings: Settings) -> Registry:
    try:
        return discover(settings.steps_dir)
    except StepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def _settings(args: argparse.Namespace, **overrides: object) -> Settings:
    settings = Settings.from_env(**overrides)
    if getattr(args, "steps", None):
        settings = replace(settings, steps_dir=Path(args.steps))
    if getattr(args, "redis", None):
        settings = replace(settings, redis_url=args.redis)
    return settings


def cmd_dev(args: argparse.Namespace) -> int:
    from .devserver import run_dev

    settings = _settings(argparse.Namespace(steps=args.steps))
    _load(settings)  # a broken step file stops the start here, with the file and the reason
    hosts = [*LOOPBACK_HOSTS, *args.allow_host]
    if not is_loopback(args.host):
        if not settings.workbench_token and not args.insecure:
            print(f"error: `dev --host {args.host}` serves the workbench (state, emits, step sources) to "
                  "the network: set WORKBENCH_TOKEN (16+ characters) to put it behind a token, or pass "
                  "--insecure to serve it open anyway", file=sys.stderr)  # fmt: skip
            return 2
        if not settings.workbench_token:
            print(f"warning: --insecure: the workbench on {args.host} is open to anyone who can reach it",
                  flush=True)  # fmt: skip
        if args.host not in ("0.0.0.0", "::"):
            hosts.append(args.host)
        if not args.allow_host:
            print("note: only loopback host names are answered; add the names this machine is reached by "
                  "with --allow-host NAME (DNS-rebinding protection)", flush=True)  # fmt: skip
    return run_dev(
        settings, host=args.host, port=args.port, redis_choice=args.redis, reload=not args.no_reload,
        allowed_hosts=tuple(hosts),
    )  # fmt: skip


def cmd_start(args: argparse.Namespace) -> int:
    import uvicorn

    from .console import configure_logging
    from .web.app import create_app
    from .web.server import server_config

    dev = os.environ.get("WORKBENCH_MODE") == "dev"  # set by `workbench dev` for its web process
    settings = _settings(args, mode="dev" if dev else "start")
    if dev and settings.allowed_hosts is None:
        settings = replace(settings, allowed_hosts=LOOPBACK_HOSTS)
    if not dev:
        # production: the workbench UI only when asked for (WORKBENCH_UI=1), and then behind a token
        enabled = os.environ.get("WORKBENCH_UI") == "1"
        if enabled and not settings.workbench_token:
            print("error: WORKBENCH_UI=1 needs WORKBENCH_TOKEN set (the workbench is served behind it)",
                  file=sys.stderr)  # fmt: skip
            return 2
        settings = replace(settings, workbench_enabled=enabled)
    configure_logging(settings.log_level, args.log_format)
    registry = _load(settings)
    app = create_app(settings, registry)
    config = server_config(app, host=args.host, port=args.port, settings=settings)
    if args.log_format == "json":  # uvicorn's own lines too (its config gave them handlers of its own)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True
    uvicorn.Server(config).run()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from .console import configure_logging
    from .worker import run_worker

    overrides: dict[str, object] = {"mode": "worker"}
    if args.concurrency:
        overrides["concurrency"] = args.concurrency
    settings = _settings(args, **overrides)
    configure_logging(settings.log_level, args.log_format)
    registry = _load(settings)
    beat = _LoopBeat()
    if args.metrics_port is not None:
        from .metrics import Metrics, serve_worker_metrics
        from .tracing.recorder import Recorder

        metrics = Metrics()
        Recorder.process_observers.append(metrics.observe)  # the runtime run_worker builds counts here
        try:
            serve_worker_metrics(metrics, settings.redis_url, port=args.metrics_port, host=args.metrics_host,
                                 token=settings.workbench_token, alive=beat.alive)  # fmt: skip
        except OSError as exc:
            print(f"error: --metrics-port {args.metrics_port}: {exc}", file=sys.stderr)
            return 2

    async def run() -> None:
        beat.start(asyncio.get_running_loop())
        try:
            await run_worker(settings, registry, burst=args.burst)
        finally:
            beat.stopping = True

    try:
        asyncio.run(run())
    except (KeyboardInterrupt, asyncio.CancelledError):  # stopped by a signal: a normal end
        pass
    return 0


class _LoopBeat:
    """The worker's liveness as its metrics port's `/healthz` tells it: the event loop ran within
    `STALL_S` (a handler blocking the loop longer makes it fail), and the worker is not stopping."""

    STALL_S = 30.0

    def __init__(self) -> None:
        self._clock = time.monotonic
        self.last = self._clock()
        self.stopping = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        def tick() -> None:
            self.last = self._clock()
            if not self.stopping:
                loop.call_later(1.0, tick)

        tick()

    def alive(self) -> bool:
        return not self.stopping and self._clock() - self.last < self.STALL_S


def cmd_emit(args: argparse.Namespace) -> int:
    from .runtime import Runtime

    settings = _settings(args)
    registry = _load(settings)
    try:
        data = json.loads(args.json)
    except ValueError as exc:
        print(f"error: JSON: {exc}", file=sys.stderr)
        return 2
    if args.topic not in registry.topics():
        print(f"error: no step emits or subscribes to {args.topic!r}", file=sys.stderr)
        return 2

    async def go() -> str:
        runtime = Runtime(settings, registry)
        await runtime.start()
        try:
            trace_id, _ = await runtime.emit_new_trace(args.topic, data, source="cli")
        finally:
            await runtime.stop()
        return trace_id

    print(asyncio.run(go()))
    return 0


def cmd_steps(args: argparse.Namespace) -> int:
    registry = _load(_settings(args))
    rows = [("NAME", "KIND", "TRIGGER", "EMITS")]
    for step in registry:
        rows.append(
            (step.name, step.kind, step.trigger_label(), ", ".join(step.emits + step.virtual_emits) or "-")
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(row)))
    for step in registry:  # config accepted without effect (Motia's includeFiles, ...)
        for note in step.notes:
            print(f"note: {step.name}: {note}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Every step file validated on its own: all the errors, for a project's CI."""
    from .registry import load

    settings = _settings(args)
    registry, errors = load(settings.steps_dir)
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if errors:
        print(f"{len(errors)} invalid step file{'s' if len(errors) != 1 else ''} in {registry.steps_dir}",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"ok: {len(registry)} steps in {registry.steps_dir}")
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    from .scaffold import ScaffoldError, create_project

    target = Path(args.dir)
    try:
        written = create_project(target)
    except ScaffoldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Created {target} ({len(written)} files). Next:\n")
    print(f"  cd {target}")
    print('  pip install -e ".[test]"   # once: the test tools (Workbench itself is already installed)')
    print("  workbench dev              # the workbench on http://localhost:3000")
    print("  pytest                     # the step tests")
    return 0


def parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="workbench", description="Event-driven steps with a live workbench.")
    p.add_argument("--version", action="version", version=f"workbench {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    new = sub.add_parser("new", help="create a new project in DIR (missing or empty)")
    new.add_argument("dir", metavar="DIR")
    new.set_defaults(fn=cmd_new)

    def common(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("--steps", help="folder of *_step.py files (default: ./steps, else ./src)")

    def log_format(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument(
            "--log-format", choices=("text", "json"), default="text",
            help="text: coloured lines (default); json: one JSON object a line, for log collectors",
        )  # fmt: skip

    dev = sub.add_parser("dev", help="web + worker + Redis in one command, reloading on changes")
    common(dev)
    dev.add_argument("--port", type=int, default=3000)
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--redis", help="a Redis URL, or 'embedded' to start a private one")
    dev.add_argument("--no-reload", action="store_true", help="do not restart when step files change")
    dev.add_argument(
        "--allow-host", action="append", default=[], metavar="NAME",
        help="also answer to this Host name (default: loopback names only); repeatable",
    )  # fmt: skip
    dev.add_argument(
        "--insecure", action="store_true",
        help="allow a non-loopback --host without WORKBENCH_TOKEN (the workbench is then open)",
    )  # fmt: skip
    dev.set_defaults(fn=cmd_dev)

    start = sub.add_parser("start", help="the web process only (production)")
    common(start)
    start.add_argument("--port", type=int, default=3000)
    start.add_argument("--host", default="127.0.0.1")
    start.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    log_format(start)
    start.set_defaults(fn=cmd_start)

    worker = sub.add_parser("worker", help="a worker process only")
    common(worker)
    worker.add_argument("--concurrency", type=int, help="jobs run at once (default 20)")
    worker.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.add_argument(
        "--metrics-port", type=int, metavar="N",
        help="serve Prometheus metrics at /metrics and liveness at /healthz on this port",
    )  # fmt: skip
    worker.add_argument("--metrics-host", default="127.0.0.1", help="the address of --metrics-port")
    log_format(worker)
    worker.set_defaults(fn=cmd_worker)

    emit = sub.add_parser("emit", help="emit an event as a new trace; prints the trace id")
    common(emit)
    emit.add_argument("topic")
    emit.add_argument("json")
    emit.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    emit.set_defaults(fn=cmd_emit)

    steps = sub.add_parser("steps", help="list the discovered steps")
    common(steps)
    steps.set_defaults(fn=cmd_steps)

    check = sub.add_parser("check", help="validate every step file; non-zero exit on any invalid one")
    common(check)
    check.set_defaults(fn=cmd_check)

    from .replay_cli import add_commands as add_debug_commands  # replay, rerun, reemit, export-test

    add_debug_commands(sub, common)
    from .queue_cli import add_commands as add_queue_commands  # cancel, queues, pause, resume

    add_queue_commands(sub, common)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.captureWarnings(True)
    code: int = args.fn(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
