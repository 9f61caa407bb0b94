"""`python -m bench [--quick] [--only 1,2]`: run the benchmarks, print a table, write results/latest.json."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import time
import traceback
from pathlib import Path

from . import cost, http, latency, soak, sse, throughput, traces
from .procs import stop_all
from .report import Row, table

RESULTS = Path(__file__).resolve().parent / "results"
NAMES = {
    "1": "API response -> event handler start",
    "2": "no-op job throughput vs bare arq",
    "3": "no-op job throughput, 2 workers vs 1",
    "4": "worker log -> SSE client",
    "5": "POST /pets under load vs bare Litestar",
    "6": "traces API with 100,000 traces",
    "7": "soak: memory at 200 traces/s",
    "8": "cost model: Redis and CPU per job and per POST /pets, 1/2/4 workers",
}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    parser.add_argument("--only", help="comma-separated benchmark numbers, e.g. 1,2")
    parser.add_argument(
        "--otel", action="store_true", help="with OpenTelemetry export on, to a local sink that discards"
    )
    args = parser.parse_args()
    selected = sorted(set((args.only or ",".join(NAMES)).replace(" ", "").split(",")) - {""})
    unknown = [n for n in selected if n not in NAMES]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(NAMES)}")
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    RESULTS.mkdir(exist_ok=True)
    logdir = RESULTS / "logs"
    logdir.mkdir(exist_ok=True)
    if args.otel:
        from .otel_sink import start as start_sink

        print(f"OpenTelemetry export on, to {start_sink(logdir)} (discarded)", file=sys.stderr)
    runs = {
        "1": lambda: latency.run(args.quick, logdir),
        "4": lambda: sse.run(args.quick, logdir),
        "5": lambda: http.run(args.quick, logdir),
        "6": lambda: traces.run(args.quick, logdir),
        "7": lambda: soak.run(args.quick, logdir),
        "8": lambda: cost.run(args.quick, logdir),
    }
    rows: list[Row] = []
    errors = 0
    load: dict[str, list[float]] = {}  # 1-minute load average before and after each benchmark
    began = time.time()
    try:
        for num in selected:
            if num == "3" and "2" in selected:
                continue  # measured together with 2
            if num in ("2", "3"):
                which = {n for n in ("2", "3") if n in selected}
                job = lambda which=which: throughput.run(args.quick, logdir, which)  # noqa: E731
            else:
                job = runs[num]
            print(f"[{num}] {NAMES[num]} ...", file=sys.stderr, flush=True)
            t0, load0 = time.monotonic(), os.getloadavg()[0]
            try:
                rows += asyncio.run(job())
            except Exception as exc:
                errors += 1
                traceback.print_exc()
                rows.append(Row(num, NAMES[num], f"error: {type(exc).__name__}: {exc}"[:100], met=False))
            load[num] = [round(load0, 2), round(os.getloadavg()[0], 2)]
            took = time.monotonic() - t0
            note = f"[{num}] done in {took:.0f} s (load average {load[num][0]} -> {load[num][1]})"
            print(note, file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("interrupted: stopping processes", file=sys.stderr)
        stop_all()
        return 130
    finally:
        stop_all()
    print(table(rows))
    out = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(began)),
        "seconds": round(time.time() - began, 1),
        "quick": args.quick,
        "otel": args.otel,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average_1min": load,
        "rows": [row.__dict__ for row in rows],
    }
    (RESULTS / "latest.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(
        f"\nmachine: {os.cpu_count()} CPUs; 1-minute load average before -> after each benchmark: "
        + ", ".join(f"{k}: {a} -> {b}" for k, a, b in ((k, *v) for k, v in load.items()))
    )
    print(f"written: {RESULTS / 'latest.json'} (process logs in {logdir})")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
