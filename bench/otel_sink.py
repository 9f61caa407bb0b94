"""`python -m bench --otel`: an OTLP/HTTP collector that accepts every export and discards it, so the
benchmarks measure what OpenTelemetry export costs the web and worker processes (workbench/otel.py)."""

from __future__ import annotations

import argparse
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from workbench.redis_server import free_port, wait_for_port

from .procs import Proc


class Discard(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the exporters reuse their connection, as with a collector

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start(logdir: Path) -> str:
    """Start the sink as a process of its own (stopped with the benchmark's others) and point every
    process the benchmarks start at it; returns its URL."""
    port = free_port()
    Proc("otel-sink", ["bench.otel_sink", "--port", str(port)], dict(os.environ), logdir)
    if not wait_for_port("127.0.0.1", port, 10):
        raise RuntimeError("the OTLP sink did not start")
    url = f"http://127.0.0.1:{port}"
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = url  # bench.procs.Stack.env passes os.environ on
    return url


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.otel_sink")
    parser.add_argument("--port", type=int, required=True)
    ThreadingHTTPServer(("127.0.0.1", parser.parse_args().port), Discard).serve_forever()
