"""A recorded API trace as a pytest file ("Save as test"): it replays the recorded request with the
`workbench` fixture (`workbench.testing`), drains the background jobs, and asserts what the trace
showed: the status, the topics each step emitted (in order) and the final state of the keys it wrote.

What differs on every run must not fail it: a state key or value equal to an id the response returned
is written as that part of the response (`body["id"]`); any other value shaped like a time (ISO text,
epoch seconds or ms near the recording) or a generated id (a UUID, a long random token) is matched by
its shape only (`ANY_TIME`, `ANY_ID`). The generated file says which values it treats so.

A key's expected value is its value after the trace's last write, as the state diff recorded it when
there is one (`after` on the state event), else its value in Redis when the file is generated. Keys
the trace only read are seeded with their value before the trace (the diff's `before`, else Redis now).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from ..replay import Refused, recorded_request, root_span
from ..runtime import Runtime

WIDTH = 88  # a line of the generated file (ruff's default, so it is clean in any project)
ARG_ROOM = WIDTH - 24  # for a value inside a call, on the call's line
WRITES = ("set", "update", "delete", "increment")
# request headers the harness's client sets itself, or that say nothing about the request
_CLIENT_HEADERS = frozenset({
    "host", "user-agent", "accept", "accept-encoding", "accept-language", "connection", "content-length",
    "origin", "referer", "sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest", "sec-ch-ua",
    "sec-ch-ua-mobile", "sec-ch-ua-platform", "traceparent", "tracestate", "baggage", "priority",
    "x-forwarded-for", "x-forwarded-proto", "x-real-ip", "dnt", "cache-control", "pragma",
    "upgrade-insecure-requests",
})  # fmt: skip
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
_TOKEN = re.compile(r"(?=.*\d)(?=.*[A-Za-z])[0-9A-Za-z_-]{16,}")
YEAR_S = 366 * 24 * 3600

MATCHERS = '''class Varies:
    """A value that differs on every run (a time, a generated id): any value of its shape matches."""

    def __init__(self, what: str, pattern: str) -> None:
        self.what = what
        self.pattern = re.compile(pattern)

    def __eq__(self, other: object) -> bool:
        return self.pattern.fullmatch(str(other)) is not None

    def __repr__(self) -> str:
        return f"<any {self.what}>"
'''
_MATCHER_DEFS = {
    "ANY_TIME": 'ANY_TIME = Varies("time", r"\\d{4}-\\d{2}-\\d{2}[T ].*|\\d{10,13}(\\.\\d+)?")',
    "ANY_ID": 'ANY_ID = Varies("id", r"[0-9A-Za-z_-]{8,}")',
}


class Expr:
    """Python source standing for a value in the generated file (`body["id"]`, `ANY_TIME`)."""

    def __init__(self, source: str) -> None:
        self.source = source


@dataclass
class _Subst:
    """Turns recorded values into what the test compares: ids of the response, times, random ids."""

    ids: dict[str, str]  # a value the response returned -> its expression in the test
    start_ms: int
    used: set[str] = field(default_factory=set)  # ANY_TIME / ANY_ID / body, as used
    varied: list[str] = field(default_factory=list)  # what was matched by shape, for the file's note

    def value(self, value: Any, where: str) -> Any:
        if isinstance(value, dict):
            return {k: self.value(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, str) and value in self.ids:
            self.used.add("body")
            return Expr(self.ids[value])
        kind = self._varies(value)
        if kind:
            self.used.add(kind)
            self.varied.append(where)
            return Expr(kind)
        return value

    def _varies(self, value: Any) -> str | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            start = self.start_ms
            if abs(value - start / 1000) < YEAR_S or abs(value - start) < YEAR_S * 1000:
                return "ANY_TIME"
            return None
        if isinstance(value, str):
            if _ISO_TIME.match(value):
                return "ANY_TIME"
            if _UUID.fullmatch(value) or _TOKEN.fullmatch(value):
                return "ANY_ID"
        return None


def literal(value: Any, indent: int = 0, room: int = WIDTH) -> str:
    """`value` as Python source, on one line when it fits in `room`, else one item a line (with the
    trailing commas ruff's formatter keeps)."""
    if isinstance(value, Expr):
        return value.source
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    pad, inner = " " * indent, " " * (indent + 4)
    if isinstance(value, dict):
        items = [f"{literal(k)}: {literal(v, indent + 4, WIDTH - indent - 4)}" for k, v in value.items()]
        opening, closing = "{", "}"
    else:
        items = [literal(v, indent + 4, WIDTH - indent - 4) for v in value]
        opening, closing = "[", "]"
    flat = opening + ", ".join(items) + closing
    if len(flat) <= room and "\n" not in flat:
        return flat
    return opening + "\n" + "".join(f"{inner}{item},\n" for item in items) + pad + closing


def _call_line(prefix: str, args: list[str], indent: int = 4) -> str:
    """`prefix(arg, arg)` on one line when it fits, else one argument a line (`args` are rendered at
    indent 0: their lines are indented here)."""
    pad = " " * indent
    flat = f"{pad}{prefix}({', '.join(args)})"
    if len(flat) <= WIDTH and "\n" not in flat:
        return flat
    lines = [f"{pad}{prefix}("]
    for arg in args:
        arg = arg.replace("\n", "\n" + pad + "    ")
        lines.append(f"{pad}    {arg},")
    lines.append(f"{pad})")
    return "\n".join(lines)


def _response_ids(body: Any) -> dict[str, str]:
    """Id-like values of the response (fields named `id`, `...Id`, `..._id`, `key`): value -> expression."""
    found: dict[str, str] = {}

    def walk(value: Any, expr: str, name: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{expr}[{json.dumps(k)}]", str(k))
        elif isinstance(value, list):
            for i, v in enumerate(value[:20]):
                walk(v, f"{expr}[{i}]", name)
        elif isinstance(value, str) and value and value not in found:
            if re.search(r"(^|_)id$|[a-z]Id$|^key$", name) or _UUID.fullmatch(value):
                found[value] = expr

    walk(body, "body", "")
    return found


def test_file_name(trace: dict[str, Any]) -> str:
    return f"test_{_slug(trace)}_{trace['id'][-6:].lower()}.py"


def _slug(trace: dict[str, Any]) -> str:
    request = recorded_request(trace)
    words = re.sub(r"\{[^}]*\}|[^0-9A-Za-z]+", " ", f"{request['method']} {request['path']}").split()
    return "_".join(words).lower()[:60] or "request"


def _diff(event: dict[str, Any]) -> bool:
    """The state event recorded the value before and after, whole (a missing one: the key was absent)."""
    return ("before" in event or "after" in event) and not event.get("truncated")


@dataclass
class _KeyUse:
    group: str
    key: str
    ops: list[dict[str, Any]]

    @property
    def written(self) -> bool:
        return any(op["op"] in WRITES for op in self.ops)


def _key_uses(trace: dict[str, Any]) -> list[_KeyUse]:
    uses: dict[tuple[str, str], _KeyUse] = {}
    for span in trace["spanList"]:
        for event in span.get("events", []):
            if event["kind"] == "state" and event.get("key") is not None:
                pair = (event["group"], event["key"])
                uses.setdefault(pair, _KeyUse(*pair, [])).ops.append(event)
    return list(uses.values())


async def export_test(runtime: Runtime, trace: dict[str, Any]) -> str:
    """The pytest file for an API trace (`Refused` for one that served no kept request)."""
    request = recorded_request(trace)
    if request.get("bodyCut"):
        raise Refused("its request body was cut at the cap when recorded: it cannot be replayed as a test")
    root = root_span(trace) or {}
    response = (root.get("exchange") or {}).get("response") or {}
    status = response.get("status") or (root.get("http") or {}).get("status")
    if status is None:
        raise Refused(f"trace {trace['id']} has no answer recorded yet (is it still running?)")
    if trace.get("status") == "running":  # its emits and state so far are not what the test would check
        raise Refused(
            f"trace {trace['id']} is still running (a job of it is queued, running or waiting for a "
            "retry): save it as a test once it has ended"
        )
    try:
        response_body = json.loads(response.get("body") or "null")
    except ValueError:
        response_body = None
    subst = _Subst(_response_ids(response_body), int(trace.get("start") or 0))

    seeds: list[tuple[str, str, Any]] = []
    finals: list[tuple[str, str, Any]] = []
    skipped: list[str] = []
    unseeded: list[str] = []
    for use in _key_uses(trace):
        first, last_write = use.ops[0], next((o for o in reversed(use.ops) if o["op"] in WRITES), None)
        if not use.written:
            before = first.get("before") if _diff(first) else await runtime.state.get(use.group, use.key)
            if before is not None:
                seeds.append((use.group, use.key, before))
            continue
        if last_write is not None and _diff(last_write):
            after = last_write.get("after")  # absent: deleted
        else:
            after = await runtime.state.get(use.group, use.key)
        if first["op"] != "set":
            if _diff(first):
                if first.get("before") is not None:
                    seeds.append((use.group, use.key, first["before"]))
            elif all(o["op"] == "increment" for o in use.ops) and isinstance(after, int):
                # a counter (ids): where it stood before the trace's increments (of 1, as most are)
                seeds.append((use.group, use.key, after - len(use.ops)))
            else:
                unseeded.append(f"{use.group}/{use.key}")
        if use.key not in subst.ids and subst._varies(use.key):
            skipped.append(f"{use.group}/{use.key}")
            continue
        finals.append((use.group, use.key, after))

    topics: dict[str, list[str]] = {}
    for span in trace["spanList"]:
        for event in span.get("events", []):
            if event["kind"] == "emit":
                topics.setdefault(event["step"], []).append(event["topic"])

    notes = {"skipped": skipped, "unseeded": unseeded}
    return _render(trace, request, int(status), subst, seeds, finals, topics, notes)


def _render(
    trace: dict[str, Any],
    request: dict[str, Any],
    status: int,
    subst: _Subst,
    seeds: list[tuple[str, str, Any]],
    finals: list[tuple[str, str, Any]],
    topics: dict[str, list[str]],
    notes_of: dict[str, list[str]],
) -> str:
    method, path = request["method"], request["path"]
    when = datetime.fromtimestamp(int(trace.get("start") or 0) / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    body_lines: list[str] = []
    for group, key, value in seeds:
        value_src = literal(value, 0, ARG_ROOM)
        body_lines.append(_call_line("workbench.state.set", [literal(group), literal(key), value_src]))
    if seeds:
        body_lines.append("")

    args = [literal(path)]
    headers = {k: v for k, v in (request.get("headers") or {}).items() if k not in _CLIENT_HEADERS}
    raw_body = request.get("body") or ""
    content_type = headers.get("content-type", "")
    json_body: Any = None
    if raw_body and "json" in content_type:
        try:
            json_body = json.loads(raw_body)
        except ValueError:
            json_body = None
        else:
            headers.pop("content-type")  # the client sets it for `json=`
    if request.get("query"):
        args.append(f"params={literal(parse_qsl(request['query'], keep_blank_values=True), 0, ARG_ROOM)}")
    if headers:
        args.append(f"headers={literal(headers, 0, ARG_ROOM)}")
    if json_body is not None:
        args.append(f"json={literal(json_body, 0, ARG_ROOM)}")
    elif raw_body:
        args.append(f"content={literal(raw_body)}")
    verb = method.lower()
    if verb in ("get", "post", "put", "patch", "delete", "head", "options"):
        call = _call_line(f"response = workbench.client.{verb}", args)
    else:
        call = _call_line("response = workbench.client.request", [literal(method), *args])
    body_lines += [call, f"    assert response.status_code == {status}"]

    final_lines: list[str] = []
    for group, key, value in finals:
        key_src = subst.ids.get(key)
        if key_src:
            subst.used.add("body")
        key_expr = key_src or literal(key)
        expected = subst.value(value, f"{group}/{key}")
        target = f"workbench.state.get({literal(group)}, {key_expr})"
        if value is None:
            final_lines.append(f"    assert {target} is None")
        else:
            final_lines.append(_assert_equal(target, expected))
    if "body" in subst.used:
        body_lines.append("    body = response.json()")
    body_lines += ["", "    workbench.drain()  # the background jobs the request started, to the end", ""]
    body_lines.append("    emitted: dict[str, list[str]] = {}")
    body_lines.append("    for event in workbench.emitted():")
    body_lines.append("        emitted.setdefault(event.step, []).append(event.topic)")
    body_lines.append(_assert_equal("emitted", topics))
    if final_lines:
        body_lines += ["", *final_lines]

    notes = [
        f"Recorded by Workbench from trace {trace['id']} ({method} {path} -> {status}, {when}).",
        "",
        "The request is sent again as it was; then the background jobs run to the end, and the",
        "test checks what the trace showed: the status, the topics each step emitted (in order;",
        "steps running side by side may emit in any order between them) and the final state of",
        "the keys the trace wrote.",
    ]
    if subst.varied:
        shown = ", ".join(subst.varied[:6]) + (" ..." if len(subst.varied) > 6 else "")
        notes += ["", "Values that differ on every run are matched by their shape only:", _wrap(shown)]
    if notes_of["skipped"]:
        notes += ["", "Keys named by a generated id are not checked:", _wrap(", ".join(notes_of["skipped"]))]
    if notes_of["unseeded"]:
        unseeded = _wrap(", ".join(notes_of["unseeded"]))
        said = "The trace changed these keys from values it did not record (seed them above the"
        notes += ["", said, "request if the test needs them):", unseeded]
    # the path, keys and field names are the request's text: escaped, so that a quote or a backslash in
    # them cannot end the docstring (and make the rest of it code) or break the file
    notes = ['"""' + _doc_text(notes[0]), *(_doc_text(line) for line in notes[1:]), '"""']

    head = [*notes, ""]
    matchers = [name for name in ("ANY_TIME", "ANY_ID") if name in subst.used]
    if matchers:
        head.append("import re")
        head.append("")
    head += ["from workbench.testing import Harness", "", ""]
    if matchers:
        head += [MATCHERS, "", *(_MATCHER_DEFS[m] for m in matchers), "", ""]
    name = f"test_{_slug(trace)}_as_recorded"
    lines = [*head, f"def {name}(workbench: Harness) -> None:", *body_lines]
    return "\n".join(lines).rstrip() + "\n"


def _doc_text(text: str) -> str:
    """`text` as it reads inside a docstring: backslashes, quotes and control characters escaped."""
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", text)


def _assert_equal(target: str, expected: Any) -> str:
    flat = f"    assert {target} == {literal(expected)}"
    if len(flat) <= WIDTH and "\n" not in flat:
        return flat
    return f"    assert {target} == {literal(expected, 4, WIDTH - len(target) - 15)}"


def _wrap(text: str) -> str:
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > WIDTH - 4:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\n".join(f"    {line}" for line in lines)
