"""OpenTelemetry export (workbench/otel.py) through real processes to a real OTLP/HTTP receiver.

The receiver is an HTTP server in the test, decoding what arrives with opentelemetry-proto: the pet
flow and a few probe steps run through a real web process and worker started with
`OTEL_EXPORTER_OTLP_ENDPOINT` pointing at it.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as PbStatus

from workbench.otel import join_trace, otel_span_id, otel_trace_id, parse_traceparent, traceparent
from workbench.redis_server import RedisServer, free_port

from .conftest import PET_STEPS, ROOT, Stack, start_stack, wait_until, write_step

# --- the receiver ------------------------------------------------------------------------------------


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, which) if which else None


def _attrs(items: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in items}


class Receiver:
    """An OTLP/HTTP collector: keeps every span and log record it is sent, decoded."""

    def __init__(self, port: int = 0) -> None:
        self.spans: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self.requests = 0
        lock = self.lock = threading.Lock()
        me = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                assert self.headers.get("content-type") == "application/x-protobuf"
                if self.path == "/v1/traces":
                    me._traces(ExportTraceServiceRequest.FromString(body))
                    answer = ExportTraceServiceResponse().SerializeToString()
                elif self.path == "/v1/logs":
                    me._logs(ExportLogsServiceRequest.FromString(body))
                    answer = ExportLogsServiceResponse().SerializeToString()
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                with lock:
                    me.requests += 1
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _traces(self, request: ExportTraceServiceRequest) -> None:
        for rs in request.resource_spans:
            resource = _attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    span = {
                        "name": s.name,
                        "kind": s.kind,
                        "traceId": s.trace_id.hex(),
                        "spanId": s.span_id.hex(),
                        "parentId": s.parent_span_id.hex(),
                        "attributes": _attrs(s.attributes),
                        "status": s.status.code,
                        "statusMessage": s.status.message,
                        "events": [(e.name, _attrs(e.attributes), e.time_unix_nano) for e in s.events],
                        "links": [(link.trace_id.hex(), link.span_id.hex()) for link in s.links],
                        "start": s.start_time_unix_nano,
                        "end": s.end_time_unix_nano,
                        "resource": resource,
                    }
                    with self.lock:
                        self.spans.append(span)

    def _logs(self, request: ExportLogsServiceRequest) -> None:
        for rl in request.resource_logs:
            for sl in rl.scope_logs:
                for r in sl.log_records:
                    record = {
                        "traceId": r.trace_id.hex(),
                        "spanId": r.span_id.hex(),
                        "body": _value(r.body),
                        "severity": r.severity_text,
                        "severityNumber": r.severity_number,
                        "attributes": _attrs(r.attributes),
                        "time": r.time_unix_nano,
                    }
                    with self.lock:
                        self.logs.append(record)

    def spans_of(self, trace_hex: str) -> list[dict[str, Any]]:
        with self.lock:
            return [s for s in self.spans if s["traceId"] == trace_hex]

    def logs_of(self, trace_hex: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.logs if r["traceId"] == trace_hex]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- probe steps beside the pet steps ----------------------------------------------------------------

# the SDK and what only export needs (Litestar itself imports the `opentelemetry` namespace and a few
# semantic-convention names when the package is installed: that is not the SDK)
SDK_MODULES = ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.proto", "opentelemetry.trace",
               "opentelemetry._logs", "google.protobuf")  # fmt: skip

PROBE_API = """
import sys

SDK = __SDK__

from workbench import ApiResponse

config = {"type": "api", "name": "Probe", "method": "POST", "path": "/probe/{mode}",
          "emits": ["probe.echo", "probe.fail"], "flows": ["probe"]}


async def handler(request, ctx):
    mode = request.path_params["mode"]
    ctx.logger.info("Probe called", mode=mode)
    await ctx.emit("probe.fail" if mode == "fail" else "probe.echo", {"mode": mode})
    modules = sorted(m for m in sys.modules if m.startswith(SDK))
    return ApiResponse(200, {"traceparent": ctx.traceparent, "otelModules": modules})
""".replace("__SDK__", repr(SDK_MODULES))

PROBE_ECHO = """
import sys

SDK = __SDK__

config = {"type": "event", "name": "ProbeEcho", "subscribes": ["probe.echo"], "flows": ["probe"]}


async def handler(data, ctx):
    modules = sorted(m for m in sys.modules if m.startswith(SDK))
    ctx.logger.info("Echo", traceparent=ctx.traceparent, otelModules=modules)
""".replace("__SDK__", repr(SDK_MODULES))

PROBE_FAIL = """
config = {"type": "event", "name": "ProbeFail", "subscribes": ["probe.fail"], "retries": 1}


async def handler(data, ctx):
    ctx.logger.warning("About to fail")
    raise RuntimeError("probe failed on purpose")
"""

PROBE_TICK = """
config = {"type": "cron", "name": "ProbeTick", "cron": "* * * * * *", "flows": ["probe"]}


async def handler(ctx):
    ctx.logger.info("Tick")
"""

FAST_BATCHES = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_BLRP_SCHEDULE_DELAY": "100"}


def probe_steps(folder: Path) -> Path:
    """The pet steps and the probe steps in one steps folder."""
    steps = folder / "steps"
    shutil.copytree(PET_STEPS / "pets", steps / "pets", ignore=shutil.ignore_patterns("__pycache__"))
    for name, source in {
        "probe/probe_api": PROBE_API,
        "probe/probe_echo": PROBE_ECHO,
        "probe/probe_fail": PROBE_FAIL,
        "probe/probe_tick": PROBE_TICK,
    }.items():
        write_step(steps, name, source)
    return steps


def trace_done(client: httpx.Client, trace_id: str) -> dict[str, Any] | None:
    trace = client.get(f"/_workbench/api/traces/{trace_id}").json()
    return trace if trace.get("status") in ("completed", "failed") else None


@pytest.fixture(scope="module")
def exporting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Receiver]]:
    """One web process and one worker exporting to the receiver, for the tests that read what it got
    (on a Redis of their own: the other tests' workers must not run these jobs, nor these theirs)."""
    redis_server = RedisServer().start()
    tmp = tmp_path_factory.mktemp("otel")
    receiver = Receiver()
    stack = start_stack(
        redis_server.url, tmp, steps_dir=probe_steps(tmp), workers=1,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_SERVICE_NAME="pets-service", **FAST_BATCHES,
    )  # fmt: skip
    yield stack, receiver
    stack.stop()
    receiver.close()
    redis_server.stop()


SERVER, CONSUMER = PbSpan.SpanKind.SPAN_KIND_SERVER, PbSpan.SpanKind.SPAN_KIND_CONSUMER


def test_pet_flow_is_one_otel_trace(exporting: tuple[Stack, Receiver]) -> None:
    stack, receiver = exporting
    with stack.client() as client:
        answer = client.post("/pets", json={"name": "Rex", "species": "dog", "ageMonths": 3})
        assert answer.status_code == 201, answer.text
        trace_id = answer.headers["x-trace-id"]
        trace = wait_until(lambda: trace_done(client, trace_id), 20, message="the pet trace completes")
    ours = {s["id"]: s for s in trace["spanList"]}
    assert len(ours) >= 3  # the API span and at least the two jobs its emits made
    trace_hex = f"{otel_trace_id(trace_id):032x}"
    spans = wait_until(
        lambda: (got := receiver.spans_of(trace_hex)) and len(got) >= len(ours) and got,
        10,
        message="every span of the trace exported",
    )
    assert len(spans) == len(ours)  # one OTel span per span of ours, all in one OTel trace
    by_id = {s["spanId"]: s for s in spans}
    assert set(by_id) == {f"{otel_span_id(i):016x}" for i in ours}

    api_ours = next(s for s in ours.values() if s["kind"] == "api")
    api = by_id[f"{otel_span_id(api_ours['id']):016x}"]
    assert api["kind"] == SERVER and api["name"] == "POST /pets"
    assert api["parentId"] == ""  # no traceparent came in: the root
    assert api["attributes"]["http.request.method"] == "POST"
    assert api["attributes"]["url.path"] == "/pets"
    assert api["attributes"]["http.route"] == "/pets"
    assert api["attributes"]["http.response.status_code"] == 201
    assert api["attributes"]["workbench.step"] == "CreatePet"
    assert api["attributes"]["workbench.trace_id"] == trace_id
    assert api["status"] == PbStatus.StatusCode.STATUS_CODE_UNSET
    assert "workbench.status" not in api["attributes"]  # completed: said only when it is not
    assert api["resource"]["service.name"] == "pets-service"
    assert api["end"] >= api["start"] > 0
    assert api["start"] == api_ours["startedAt"] * 1_000_000

    jobs = [s for s in ours.values() if s["kind"] != "api"]
    for job in jobs:
        span = by_id[f"{otel_span_id(job['id']):016x}"]
        parent = f"{otel_span_id(job['parentId']):016x}"
        assert span["kind"] == CONSUMER, span
        assert span["name"] == f"process {job['topic']}"
        assert span["parentId"] == parent  # a child of the span that emitted it ...
        assert span["links"] == [(trace_hex, parent)]  # ... and linked to it
        attributes = span["attributes"]
        assert attributes["messaging.destination.name"] == job["topic"]
        assert attributes["messaging.operation.type"] == "process"
        assert attributes["workbench.step"] == job["step"]
        assert attributes["workbench.attempt"] == job["attempt"] == 1
        assert attributes["messaging.message.id"] == job["jobId"]
        assert attributes["workbench.queue_wait_ms"] == max(0, job["startedAt"] - job["enqueuedAt"])
        assert span["resource"]["workbench.process"] == "worker"
    assert {s["attributes"]["workbench.step"] for s in spans} >= {
        "CreatePet", "PetLifecycleOrchestrator", "SetNextFeedingReminder"
    }  # fmt: skip

    # step logs: OTel log records carrying the trace id and the id of the span they were made in
    def logs() -> list[dict[str, Any]]:
        expected = sum(1 for s in ours.values() for e in s["events"] if e["kind"] == "log")
        got = receiver.logs_of(trace_hex)
        return got if len(got) >= expected else []

    records = wait_until(logs, 10, message="the trace's log lines exported")
    created = next(r for r in records if r["body"] == "Pet created")
    assert created["spanId"] == api["spanId"]
    assert created["severity"] == "INFO" and created["severityNumber"] == 9
    assert created["attributes"]["name"] == "Rex"
    assert created["attributes"]["workbench.step"] == "CreatePet"
    ours_logs = {
        (e["spanId"], e["message"]) for s in ours.values() for e in s["events"] if e["kind"] == "log"
    }
    exported = {(r["spanId"], r["body"]) for r in records}
    assert exported == {(f"{otel_span_id(s):016x}", m) for s, m in ours_logs}


def test_failing_step_is_an_error_with_its_exception(exporting: tuple[Stack, Receiver]) -> None:
    stack, receiver = exporting
    with stack.client() as client:
        answer = client.post("/probe/fail")
        assert answer.status_code == 200, answer.text
        trace_id = answer.headers["x-trace-id"]
        wait_until(lambda: trace_done(client, trace_id), 20, message="the failing trace ends")
    trace_hex = f"{otel_trace_id(trace_id):032x}"
    failed = wait_until(
        lambda: [s for s in receiver.spans_of(trace_hex) if s["attributes"]["workbench.step"] == "ProbeFail"],
        10,
        message="the failed run exported",
    )[0]
    assert failed["status"] == PbStatus.StatusCode.STATUS_CODE_ERROR
    assert failed["statusMessage"] == "probe failed on purpose"
    assert failed["attributes"]["error.type"] == "RuntimeError"
    assert failed["attributes"]["workbench.status"] == "failed"
    [(name, attributes, at)] = failed["events"]
    assert name == "exception" and at == failed["end"]
    assert attributes["exception.type"] == "RuntimeError"
    assert attributes["exception.message"] == "probe failed on purpose"
    assert "RuntimeError: probe failed on purpose" in attributes["exception.stacktrace"]
    warned = wait_until(
        lambda: [r for r in receiver.logs_of(trace_hex) if r["body"] == "About to fail"], 10, message="log"
    )[0]
    assert warned["severity"] == "WARNING" and warned["spanId"] == failed["spanId"]


def test_traceparent_in_joins_the_callers_trace(exporting: tuple[Stack, Receiver]) -> None:
    stack, receiver = exporting
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with stack.client() as client:
        answer = client.post("/probe/echo", headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"})
        assert answer.status_code == 200, answer.text
        trace_id = answer.headers["x-trace-id"]
        trace = wait_until(lambda: trace_done(client, trace_id), 20, message="the trace completes")
    assert trace_id.startswith(caller_trace) and len(trace_id) == 58
    spans = wait_until(
        lambda: len(got := receiver.spans_of(caller_trace)) >= 2 and got, 10, message="both spans exported"
    )
    api = next(s for s in spans if s["kind"] == SERVER)
    echo = next(s for s in spans if s["kind"] == CONSUMER)
    assert api["parentId"] == caller_span  # the API span is a child of the caller's span
    assert echo["parentId"] == api["spanId"]  # and the worker's run joined the same OTel trace
    assert api["attributes"]["http.route"] == "/probe/{mode}"
    assert api["attributes"]["url.path"] == "/probe/echo"
    # ctx.traceparent: the running span's, for outgoing calls
    assert answer.json()["traceparent"] == f"00-{caller_trace}-{api['spanId']}-01"
    [echo_ours] = [s for s in trace["spanList"] if s["step"] == "ProbeEcho"]
    [line] = [e for e in echo_ours["events"] if e["kind"] == "log"]
    assert line["fields"]["traceparent"] == f"00-{caller_trace}-{echo['spanId']}-01"
    assert line["fields"]["otelModules"]  # export on: the SDK is loaded in the worker


def test_cron_runs_are_exported(exporting: tuple[Stack, Receiver]) -> None:
    _, receiver = exporting

    def ticks() -> list[dict[str, Any]]:
        with receiver.lock:
            return [s for s in receiver.spans if s["attributes"].get("workbench.step") == "ProbeTick"]

    tick = wait_until(ticks, 10, message="a cron run exported")[0]
    assert tick["kind"] == CONSUMER and tick["name"] == "cron ProbeTick"
    assert tick["parentId"] == "" and tick["links"] == []
    assert tick["attributes"]["workbench.cron"] == "* * * * * *"
    assert tick["attributes"]["messaging.message.id"].startswith("cron:ProbeTick:")
    assert "workbench.queue_wait_ms" in tick["attributes"]


def test_off_exports_nothing_and_loads_no_sdk(redis_url: str, tmp_path: Path) -> None:
    """No OTEL_* endpoint: the SDK is not even imported, in the web process nor in the worker, and
    nothing reaches the default collector address; `ctx.traceparent` works all the same."""
    try:
        default_collector = Receiver(4318)  # where an SDK left unconfigured would send
    except OSError:
        pytest.skip("port 4318 is taken on this machine")
    unset = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
             "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_LOGS_EXPORTER")  # fmt: skip
    env = {name: "" for name in unset}
    stack = start_stack(redis_url, tmp_path, steps_dir=probe_steps(tmp_path), **env, **FAST_BATCHES)
    try:
        with stack.client() as client:
            answer = client.post("/probe/echo")
            assert answer.status_code == 200, answer.text
            trace_id = answer.headers["x-trace-id"]
            trace = wait_until(lambda: trace_done(client, trace_id), 20, message="the trace completes")
            assert answer.json()["otelModules"] == []  # the web process never imported it
            [echo] = [s for s in trace["spanList"] if s["step"] == "ProbeEcho"]
            [line] = [e for e in echo["events"] if e["kind"] == "log"]
            assert line["fields"]["otelModules"] == []  # nor the worker
            [api] = [s for s in trace["spanList"] if s["kind"] == "api"]
            assert answer.json()["traceparent"] == traceparent(trace_id, api["id"])
            assert line["fields"]["traceparent"] == traceparent(trace_id, echo["id"])
            assert parse_traceparent(line["fields"]["traceparent"]) is not None
    finally:
        stack.stop()
        default_collector.close()
    assert default_collector.requests == 0


class Dropping:
    """A collector that accepts every connection and closes it at once, counting them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.attempts = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.attempts += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("collector", ["closed port", "dropping connections"])
def test_dead_collector_costs_one_warning(redis_url: str, tmp_path: Path, collector: str) -> None:
    """A collector that is not there (or drops every connection): requests and jobs run as usual, and
    each process says so once, however many batches fail."""
    dropping = Dropping() if collector == "dropping connections" else None
    port = dropping.port if dropping else free_port()  # free_port: nothing listens there
    endpoint = f"http://127.0.0.1:{port}"
    stack = start_stack(redis_url, tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, **FAST_BATCHES)
    try:
        with stack.client() as client:
            ids, slowest = [], 0.0
            for n in range(30):
                started = time.monotonic()
                answer = client.post("/pets", json={"name": f"Pet {n}", "species": "cat", "ageMonths": 1})
                slowest = max(slowest, time.monotonic() - started)
                assert answer.status_code == 201, answer.text
                ids.append(answer.headers["x-trace-id"])
            assert slowest < 1.0  # export never waits on the collector (each failed batch retries after 1 s)
            for trace_id in ids:
                wait_until(lambda t=trace_id: trace_done(client, t), 20, message="every flow completes")
        said = "OpenTelemetry export is failing"
        wait_until(lambda: said in stack.web.output(), 15, message="the web process warns")
        wait_until(lambda: said in stack.workers[0].output(), 15, message="the worker warns")
        if dropping is not None:  # several failed attempts by now, in both processes: still said once
            wait_until(lambda: dropping.attempts >= 8, 20, message="export retried several times")
        assert stack.web.output().count(said) == 1, stack.web.output()
        assert stack.workers[0].output().count(said) == 1, stack.workers[0].output()
        assert "Traceback" not in stack.web.output() + stack.workers[0].output()
        started = time.monotonic()
        stack.stop()
        assert time.monotonic() - started < 3  # a failing collector is not waited for at the stop
        for proc in (stack.web, *stack.workers):  # each stopped by its SIGTERM, none had to be killed
            assert proc.popen.returncode in (0, -signal.SIGTERM), proc.output()
    finally:
        stack.stop()
        if dropping is not None:
            dropping.close()


# --- ids, without processes --------------------------------------------------------------------------


def test_ids_are_derived_and_stable() -> None:
    from workbench.ids import new_id

    trace_id = new_id()
    assert otel_trace_id(trace_id) == otel_trace_id(trace_id) > 0
    assert otel_trace_id(trace_id) != otel_trace_id(new_id())
    assert otel_span_id("JOB1:1") != otel_span_id("JOB1:2")
    assert 0 < otel_span_id("JOB1:1") < 1 << 64 and otel_trace_id(trace_id) < 1 << 128
    assert otel_trace_id("not-a-ulid") > 0  # any id of ours has one
    tp = traceparent(trace_id, "JOB1:1")
    assert parse_traceparent(tp) == (f"{otel_trace_id(trace_id):032x}", f"{otel_span_id('JOB1:1'):016x}")
    assert tp.endswith("-01") and len(tp) == 55


@pytest.mark.parametrize(
    "header",
    [
        None, "", "garbage", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero span id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is invalid
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # version 00 has 4 fields
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short
    ],
)  # fmt: skip
def test_invalid_traceparent_starts_a_trace_of_our_own(header: str | None) -> None:
    assert join_trace(header) is None


def test_joined_trace_ids() -> None:
    joined = join_trace("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01")  # upper case: tolerated
    assert joined is not None and joined.trace_id.startswith("4bf92f3577b34da6a3ce929d0e0e4736")
    assert joined.trace_id.isalnum() and len(joined.trace_id) == 58  # a valid id for the live stream
    assert otel_trace_id(joined.trace_id) == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    other = join_trace("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future")  # a later version
    assert other is not None and other.trace_id != joined.trace_id  # two calls, two traces of ours


def test_sdk_not_imported_by_the_package() -> None:
    """Importing every process's modules loads nothing of OpenTelemetry (export off costs nothing)."""
    code = (
        "import sys, workbench.web.app, workbench.cli, workbench.worker, workbench.otel\n"
        f"print(sorted(m for m in sys.modules if m.startswith({SDK_MODULES!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
