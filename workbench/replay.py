"""Acting on what a trace recorded, in the loop where a bug is found.

An API span keeps the request it served and its answer (`capture_request`, `capture_response`:
bounded by `WORKBENCH_EXCHANGE_CAP`, credentials left out), so `replay` can send it again, as it was or
edited, through the app itself: the same route, middleware and validation as any request. A cron trace
replays its tick, a manual emit emits again. `rerun` runs one background step alone with the input it
had (or an edited one), `reemit` sends one recorded emit again.

Each action starts a new trace linked to the one it came from: `replayOf`, `replayKind` and
`replayOfSpan` on the new trace's summary, which the original lists in `wb:replays:<id>`.

The input of an event run is the payload of the emit that queued it, as its parent span recorded it
(capped at `WORKBENCH_PAYLOAD_CAP`): a payload cut there is refused (pass the data explicitly), never
guessed. A run started here keeps its input on its trace's summary (`input`), so it can be rerun too.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote, unquote_plus, urlencode

from . import keys
from .ids import now_ms
from .json_values import UnfitJson, check_value
from .runtime import Runtime
from .step_config import BackgroundStep, CronStep
from .tracing.records import cap_payload, trace_from_hash

# never kept: credentials (the workbench's token travels in `authorization` or its cookie), and any
# header whose name says it holds a secret
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SECRETISH = re.compile(r"token|secret|passw|auth|api[-_]?key|session|csrf|xsrf|signature|credential")
# kept to be shown, never re-sent: the connection's own, and the trace context of the original request
# (a replay is a trace of its own)
NOT_RESENT = frozenset({
    "host", "content-length", "connection", "transfer-encoding", "keep-alive", "upgrade", "te",
    "expect", "traceparent", "tracestate", "baggage",
})  # fmt: skip
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,200}$")
EDITS = ("body", "query", "headers")


class Refused(Exception):
    """The trace or span cannot be replayed as asked (its request or input was not kept, its step is
    gone); the message says why."""


class BadEdit(ValueError):
    """An edit that cannot be sent: `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # "not given": the recorded value is used


@dataclass
class Started:
    """A new trace an action started; for a replayed request, the app's answer."""

    trace_id: str
    status: int | None = None
    body: str | None = None


# --- capture (on the API hot path: slices and a dict, nothing parsed or encoded again) -----------------


_names: dict[bytes, str | None] = {}  # a raw header name -> its lower-case name, None: never kept


def _header_name(raw: bytes) -> str | None:
    name = raw.decode("latin-1").lower()
    kept = None if name in _SECRET_HEADERS or _SECRETISH.search(name) else name
    if len(_names) < 1000:  # the names a process sees are few; remembered, bounded
        _names[raw] = kept
    return kept


def kept_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    kept: dict[str, str] = {}
    names = _names
    for name_b, value_b in raw:
        name = names[name_b] if name_b in names else _header_name(name_b)
        if name is None:
            continue
        value = value_b.decode("latin-1")
        kept[name] = f"{kept[name]}, {value}" if name in kept else value
    return kept


def kept_query(query: str) -> str:
    """The query string without parameters whose name says they hold a secret (`?token=`,
    `?api_key=`), as for headers; parsed only when such a name could be in it."""
    if not query or not _SECRETISH.search(query.lower()):
        return query
    kept = [
        part
        for part in query.split("&")
        if not _SECRETISH.search(unquote_plus(part.partition("=")[0]).lower())
    ]
    return "&".join(kept)


def _cut(data: bytes | str | None, cap: int) -> tuple[str, int | None]:
    """Text kept of a body, and its full size in bytes when it was cut at `cap`."""
    if not data:
        return "", None
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) <= cap:
        return raw.decode("utf-8", "replace"), None
    return raw[:cap].decode("utf-8", "ignore"), len(raw)


def capture_request(scope: Mapping[str, Any], body: bytes, cap: int) -> dict[str, Any]:
    """What an API span keeps of the request it serves: method, path, query, headers (no credentials),
    and the body, cut at `cap` bytes (`bodyCut`: its full size)."""
    text, cut = _cut(body, cap)
    return {
        "request": {
            "method": scope["method"],
            "path": scope["path"],
            "query": kept_query(scope["query_string"].decode("latin-1")),
            "headers": kept_headers(scope["headers"]),
            "body": text,
            "bodyCut": cut,
        }
    }


def capture_response(exchange: dict[str, Any], status: int, content: bytes | str | None, cap: int) -> None:
    text, cut = _cut(content, cap)
    exchange["response"] = {"status": status, "body": text, "bodyCut": cut}


# --- reading what was recorded ---------------------------------------------------------------------------


async def load_trace(runtime: Runtime, trace_id: str) -> dict[str, Any]:
    await runtime.recorder.flush()
    trace = await runtime.store.get_trace(trace_id)
    if trace is None:
        raise LookupError(f"no trace {trace_id}")
    return trace


def root_span(trace: dict[str, Any]) -> dict[str, Any] | None:
    spans: list[dict[str, Any]] = trace["spanList"]
    return next((s for s in spans if not s.get("parentId")), spans[0] if spans else None)


def recorded_request(trace: dict[str, Any]) -> dict[str, Any]:
    """The request an API trace served, as its span kept it; `Refused` when there is none."""
    if trace.get("kind") != "api":
        raise Refused(f"trace {trace['id']} is a {trace.get('kind')} trace: it served no HTTP request")
    root = root_span(trace)
    request = ((root or {}).get("exchange") or {}).get("request")
    if not request:
        raise Refused(
            f"trace {trace['id']} cannot be replayed: its request was not kept (recorded before requests "
            "were kept, or with WORKBENCH_EXCHANGE_CAP=0)"
        )
    return cast(dict[str, Any], request)


async def span_input(runtime: Runtime, trace: dict[str, Any], span: dict[str, Any]) -> tuple[Any, str]:
    """The input a background run had (`MISSING` and the reason when it is not known exactly)."""
    if span["kind"] == "cron":
        return None, ""
    parent_id = span.get("parentId")
    if not parent_id:  # a run started by rerun/replay keeps its input on its trace
        stored, cut = await runtime.store.redis.hmget(keys.TRACE + trace["id"], ["input", "inputCut"])
        if cut:
            return MISSING, "its input was too large to keep (WORKBENCH_PAYLOAD_CAP); pass the data"
        if stored is None:
            return MISSING, "the input of this run was not recorded; pass the data"
        return json.loads(stored), ""
    parent = next((s for s in trace["spanList"] if s["id"] == parent_id), None)
    emits = [
        e
        for e in (parent or {}).get("events", [])
        if e["kind"] == "emit"
        and e["topic"] == span.get("topic")
        and span["step"] in e.get("subscribers", [])
    ]
    if not emits:
        return MISSING, f"no emit of {span.get('topic')!r} to {span['step']} is recorded in its parent span"
    if any(e.get("truncated") for e in emits):
        cap = runtime.settings.payload_cap
        return (
            MISSING,
            f"its input was cut at {cap} bytes when recorded (WORKBENCH_PAYLOAD_CAP); pass the data",
        )
    payloads = {json.dumps(e["payload"], sort_keys=True) for e in emits}
    if len(payloads) > 1:
        return MISSING, (
            f"its parent emitted {span.get('topic')!r} {len(emits)} times with different payloads, and "
            "which one this run had was not recorded; pass the data"
        )
    return emits[0]["payload"], ""


async def replays_of(runtime: Runtime, trace_id: str, limit: int = 20) -> list[dict[str, Any]]:
    """The traces started from this one, newest first (those removed by retention are left out)."""
    ids = await runtime.store.redis.zrevrange(keys.REPLAYS + trace_id, 0, limit - 1)
    if not ids:
        return []
    async with runtime.redis.pipeline(transaction=False) as pipe:
        for new_id in ids:
            pipe.hgetall(keys.TRACE + new_id)
        rows = await pipe.execute()
    return [trace_from_hash(raw) for raw in rows if raw and "id" in raw]


async def _link(
    runtime: Runtime,
    new_id: str,
    original: str,
    kind: str,
    *,
    span_id: str | None = None,
    data: Any = MISSING,
) -> None:
    await runtime.recorder.flush()  # the new trace's summary exists before it is marked
    fields: dict[str, str] = {"replayOf": original, "replayKind": kind}
    if span_id:
        fields["replayOfSpan"] = span_id
    if data is not MISSING:
        kept, cut = cap_payload(data, runtime.settings.payload_cap)
        if cut:
            fields["inputCut"] = "1"
        else:
            fields["input"] = json.dumps(kept)
    async with runtime.redis.pipeline(transaction=False) as pipe:
        pipe.hset(keys.TRACE + new_id, mapping=fields)
        pipe.zadd(keys.REPLAYS + original, {new_id: now_ms()})
        await pipe.execute()


# --- edits -----------------------------------------------------------------------------------------------


def check_edits(edits: Any) -> dict[str, Any]:
    """The edits of a replay (`body`, `query`, `headers`), checked; `BadEdit` names the field at fault."""
    if edits is None:
        return {}
    if not isinstance(edits, dict):
        raise BadEdit("body", 'expected {"body"?, "query"?, "headers"?}')
    for name in edits:
        if name not in EDITS:
            raise BadEdit(name, "not an edit of a replay (body, query, headers)")
    out = dict(edits)
    if "body" in out:
        _finite(out["body"], "body")
    query = out.get("query")
    if "query" in out and not isinstance(query, str):
        if not isinstance(query, dict) or not all(
            isinstance(v, str) or (isinstance(v, list) and all(isinstance(i, str) for i in v))
            for v in query.values()
        ):
            raise BadEdit("query", "a query string (a=1&b=2) or an object of strings")
        out["query"] = urlencode(query, doseq=True)
    if "headers" in out:
        headers = out["headers"]
        if not isinstance(headers, dict):
            raise BadEdit("headers", "an object of header names to values")
        for name, value in headers.items():
            if not _HEADER_NAME.match(name):
                raise BadEdit(f"headers.{name[:100]}", "not a valid header name")
            if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
                raise BadEdit(f"headers.{name}", "a value is one line of text")
            if not value.isascii() and not _latin1(value):
                raise BadEdit(
                    f"headers.{name}", "a value is Latin-1 text (HTTP sends header values as bytes)"
                )
    return out


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


# what a query string may hold as it is; anything else (a space, `#`, a line break, non-ASCII) is
# percent-encoded, as a browser would send it
_QUERY_SAFE = "!$&'()*+,;=:@/?%~-._"


def _query_text(query: str, *, recorded: bool) -> str:
    """A query string fit for a URL: a recorded one is the bytes the client sent (kept as Latin-1), an
    edited one is text (UTF-8)."""
    return quote(query.encode("latin-1" if recorded else "utf-8"), safe=_QUERY_SAFE)


def _body_text(body: Any) -> str:
    """A replay's body: text is sent as it is, any other JSON value as its JSON."""
    return body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)


def _finite(value: Any, field: str) -> None:
    """Refused as every door refuses it (`check_value`: NaN and Infinity, which Python's JSON parser
    reads, lone surrogates, absurd nesting), as an edit error naming `field`."""
    try:
        check_value(value, what=field)
    except UnfitJson as exc:
        raise BadEdit(field, str(exc).removeprefix(f"{field}: ")) from exc


def _check_data(step: BackgroundStep, data: Any, field: str) -> None:
    _finite(data, field)
    try:
        step.prepare_input(data)
    except UnfitJson as exc:
        raise BadEdit(field, str(exc).removeprefix(f"{field}: ")) from exc
    except Exception as exc:  # the step's own input check (a schema): what the run would fail on
        raise BadEdit(field, f"not an input {step.name} accepts: {str(exc)[:500]}") from exc


# --- actions ---------------------------------------------------------------------------------------------


async def replay(runtime: Runtime, app: Any, trace_id: str, edits: Any = None) -> Started:
    """Start the trace's entry again as a new trace: an API request re-sent through `app`, a cron tick,
    a manual emit (its payload: the `body` edit), or the run a rerun started."""
    trace = await load_trace(runtime, trace_id)
    changes = check_edits(edits)
    kind = trace.get("kind")
    root = root_span(trace)
    if root is None:
        raise Refused(f"trace {trace_id} has no span to replay")
    if kind == "api":
        started = await resend(app, recorded_request(trace), changes)
        await _link(runtime, started.trace_id, trace_id, "replay")
        return started
    for name in ("query", "headers"):
        if name in changes:
            raise BadEdit(name, f"a {kind} trace has no HTTP request")
    if kind == "emit":
        emits = [e for e in root.get("events", []) if e["kind"] == "emit"]
        if not emits:
            raise Refused(f"trace {trace_id} recorded no emit to send again")
        return await reemit(runtime, trace_id, emits[0]["id"], changes.get("body", MISSING), field="body",
                            kind="replay", source=root["step"])  # fmt: skip
    if kind == "cron" and "body" in changes:
        raise BadEdit("body", "a cron tick has no input")
    return await rerun(
        runtime, trace_id, root["id"], changes.get("body", MISSING), field="body", kind="replay"
    )


async def resend(app: Any, request: dict[str, Any], changes: dict[str, Any]) -> Started:
    """Send a recorded request (with `changes`) through the app in-process (an ASGI call): the same
    route, middleware and validation as a request from outside."""
    import httpx

    if "body" in changes:
        body = _body_text(changes["body"])
    elif request.get("bodyCut"):
        raise Refused(
            f"the request's body was {request['bodyCut']} bytes and only the first part was kept "
            "(WORKBENCH_EXCHANGE_CAP): pass the body to replay it"
        )
    else:
        body = request.get("body") or ""
    recorded: dict[str, str] = request.get("headers") or {}
    sent = changes.get("headers", recorded)
    # as bytes: a recorded value is the Latin-1 the client sent, an edited one was checked to be Latin-1
    headers = {k: v.encode("latin-1") for k, v in sent.items() if k.lower() not in NOT_RESENT}
    if "query" in changes:
        query = _query_text(changes["query"], recorded=False)
    else:
        query = _query_text(request.get("query") or "", recorded=True)
    # the recorded Host is sent as the header, never spliced into the URL (where a `/` or `?` in it would
    # change the path that is requested)
    headers["host"] = (recorded.get("host") or "127.0.0.1").encode("latin-1")
    url = f"http://127.0.0.1{quote(request['path'])}" + (f"?{query}" if query else "")
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 0))
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.request(
            request["method"], url, headers=headers, content=body.encode() if body else None
        )
    new_id = response.headers.get("x-trace-id")
    if not new_id:  # answered before any step ran: a bad body, an unknown route, ...
        raise Refused(
            f"the app answered {response.status_code} before the step ran, so there is no trace: "
            + response.text[:500]
        )
    return Started(new_id, response.status_code, response.text[:2000])


async def rerun(
    runtime: Runtime,
    trace_id: str,
    span_id: str,
    data: Any = MISSING,
    *,
    field: str = "data",
    kind: str = "rerun",
) -> Started:
    """Run the span's background step again, alone, as a new trace: with the input it had, or `data`.
    Its emits run as usual."""
    trace = await load_trace(runtime, trace_id)
    span = next((s for s in trace["spanList"] if s["id"] == span_id), None)
    if span is None:
        raise LookupError(f"no span {span_id} in trace {trace_id}")
    if span["kind"] not in ("event", "cron"):
        raise Refused(f"span {span_id} is an {span['kind']} span: only event and cron runs can run again")
    step = runtime.registry.get(span["step"])
    if not isinstance(step, BackgroundStep):
        raise Refused(f"no background step named {span['step']!r} in the step files now")
    if data is MISSING:
        data, reason = await span_input(runtime, trace, span)
        if data is MISSING:
            raise Refused(f"span {span_id} cannot run again as it was: {reason}")
    elif isinstance(step, CronStep):
        if data is not None:
            raise BadEdit(field, "a cron run has no input")
    else:
        _check_data(step, data, field)
    new_id, _ = await runtime.enqueue_step(step, data, topic=span.get("topic"), label=kind)
    await _link(runtime, new_id, trace_id, kind, span_id=span_id, data=data)
    return Started(new_id)


async def reemit(
    runtime: Runtime,
    trace_id: str,
    event_id: str,
    payload: Any = MISSING,
    *,
    field: str = "payload",
    kind: str = "reemit",
    source: str = "reemit",
) -> Started:
    """Emit a recorded emit's topic again as a new trace, with its recorded payload or `payload`."""
    trace = await load_trace(runtime, trace_id)
    events = (e for s in trace["spanList"] for e in s.get("events", []))
    event = next((e for e in events if e["id"] == event_id and e["kind"] == "emit"), None)
    if event is None:
        raise LookupError(f"no emit {event_id} in trace {trace_id}")
    topic = event["topic"]
    if topic not in runtime.registry.topics():
        raise Refused(f"no step emits or subscribes to {topic!r} in the step files now")
    if payload is MISSING:
        if event.get("truncated"):
            raise Refused(
                f"the payload of this emit was cut at {runtime.settings.payload_cap} bytes when recorded "
                f"(WORKBENCH_PAYLOAD_CAP): pass the {field} to send"
            )
        payload = event["payload"]
    else:
        _finite(payload, field)
    new_id, _ = await runtime.emit_new_trace(topic, payload, source=source)
    await _link(runtime, new_id, trace_id, kind, span_id=event["spanId"])
    return Started(new_id)


# --- a recorded request as a shell command ---------------------------------------------------------------


def curl_command(request: dict[str, Any], base_url: str) -> str:
    """A curl command sending the recorded request to `base_url` (shell-quoted, one option a line)."""
    if request.get("bodyCut"):
        raise Refused(f"the request's body was cut at the cap when recorded ({request['bodyCut']} bytes)")
    query = request.get("query") or ""
    url = base_url.rstrip("/") + quote(request["path"]) + (f"?{query}" if query else "")
    body = request.get("body") or ""
    lines = [["curl", *(["-X", request["method"]] if request["method"] != "GET" or body else []), url]]
    for name, value in (request.get("headers") or {}).items():
        if name not in NOT_RESENT and name not in ("accept-encoding", "user-agent"):  # curl says its own
            lines.append(["-H", f"{name}: {value}"])
    if body:
        lines.append(["--data-raw", body])
    return " \\\n  ".join(" ".join(shlex.quote(part) for part in line) for line in lines)
