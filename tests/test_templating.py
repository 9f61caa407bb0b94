"""The pages' templates and URLs without a server: `Urls` from the routes, the status badge, the
record partials (one per record kind, the same rows in a first render and in the live stream), and
templates and JS that spell out no workbench URL and know nothing of the example app."""

from __future__ import annotations

import re
from typing import Any

import pytest
from jinja2 import Environment
from litestar import Controller, get
from litestar.plugins.jinja import JinjaTemplateEngine

from workbench.ids import now_ms
from workbench.tracing.feed import FeedRecord
from workbench.ui_files import ui_dir
from workbench.web.live_html import VIEWS, record_partial, renderer
from workbench.web.pages import LIVE_ROWS, URLS
from workbench.web.templating import environment
from workbench.web.urls import BASE, Urls

TEMPLATES = ui_dir("templates")
JS = ui_dir("static") / "workbench.js"


@pytest.fixture(scope="module")
def env() -> Environment:
    return environment(TEMPLATES, URLS)


# --- URLs ----------------------------------------------------------------------------------------------


class Things(Controller):
    path = "/base"

    @get("/")
    async def index(self) -> str:
        return ""

    @get("/things/{thing_id:str}/parts/{part:str}")
    async def part(self) -> str:
        return ""

    @get("/files/{file:path}", name="file")
    async def any_name(self) -> str:
        return ""


def test_urls_come_from_the_routes() -> None:
    urls = Urls.of(Things, extra={"docs": "/docs"})
    assert urls.routes == {
        "index": "/base/",
        "part": "/base/things/{thing_id:str}/parts/{part:str}",
        "file": "/base/files/{file:path}",
        "docs": "/docs",
    }
    assert urls("index") == "/base/"
    assert urls("part", thing_id="a b", part="x/y:1") == "/base/things/a%20b/parts/x%2Fy:1"
    assert urls("file", file="vendor/htmx.js") == "/base/files/vendor/htmx.js"  # a path keeps its slashes
    # other keywords are the query; None and "" are left out, as a form would
    assert (
        urls("index", q="a&b c", step="", level=None, cursor="1700:ab") == "/base/?q=a%26b+c&cursor=1700:ab"
    )
    assert urls.templates("part") == {"part": "/base/things/{thing_id}/parts/{part}"}
    with pytest.raises(TypeError, match="missing path parameter 'part'"):
        urls("part", thing_id="a")
    with pytest.raises(KeyError, match="no workbench route named 'nope'"):
        urls("nope")
    with pytest.raises(ValueError, match="two routes named 'index'"):
        Urls.of(Things, Things)


def test_the_pages_urls_are_the_ones_they_always_were() -> None:
    assert URLS("home") == f"{BASE}/"
    assert URLS("trace", trace_id="T1", span="s:1") == f"{BASE}/traces/T1?span=s:1"
    assert URLS("span", trace_id="T1", span_id="s:1") == f"{BASE}/traces/T1/spans/s:1"
    assert URLS("state_edit") == f"{BASE}/state/set"  # the group and key go in the form: a key may hold `/`
    assert URLS("state_delete") == f"{BASE}/state/delete"
    assert URLS("html_stream", view="logs", lastEventId="1-0") == f"{BASE}/stream?view=logs&lastEventId=1-0"
    assert URLS("static", file="workbench.css") == f"{BASE}/static/workbench.css"


def template_sources() -> dict[str, str]:
    return {str(p.relative_to(TEMPLATES)): p.read_text() for p in sorted(TEMPLATES.rglob("*.html"))}


def test_templates_and_js_spell_out_no_workbench_url() -> None:
    for name, text in [*template_sources().items(), ("workbench.js", JS.read_text())]:
        assert BASE not in text, name


def test_every_url_a_template_asks_for_exists() -> None:
    asked = {m for text in template_sources().values() for m in re.findall(r"url\(['\"](\w+)['\"]", text)}
    assert asked and asked <= set(URLS.routes), asked - set(URLS.routes)


def test_the_framework_ui_knows_nothing_of_the_example_app() -> None:
    for name, text in [*template_sources().items(), ("workbench.js", JS.read_text())]:
        assert not re.search(r"\bpets?\b|petId|CreatePet", text, re.IGNORECASE), name


# --- the status badge ------------------------------------------------------------------------------------


def badge(env: Environment, *args: str, **kwargs: Any) -> str:
    macro = env.get_template("macros.html").module.status_badge  # type: ignore[attr-defined]
    return str(macro(*args, **kwargs))


def test_the_status_badge(env: Environment) -> None:
    assert badge(env, "completed") == '<span class="pill completed">✔ completed</span>'
    assert (
        badge(env, "running", title="running")
        == '<span class="pill running" title="running">◌ running</span>'
    )
    assert badge(env, "failed") == '<span class="pill failed">✖ failed</span>'
    # every way of failing is red; a span's own words without the icon
    assert badge(env, "timed_out", icon=False) == '<span class="pill failed">timed out</span>'
    assert badge(env, "interrupted", icon=False) == '<span class="pill failed">interrupted</span>'
    link = badge(env, "completed", label="12 ms", href="/t?a=1&b=2", title="<now>")
    assert link == '<a class="pill completed" href="/t?a=1&amp;b=2" title="&lt;now&gt;">✔ 12 ms</a>'


def test_the_badge_is_the_only_pill_markup() -> None:
    for name, text in template_sources().items():
        if name != "macros.html":
            assert 'class="pill' not in text, name


# --- record partials: the first render and the live stream show the same row ---------------------------


def records() -> dict[str, dict[str, Any]]:
    """A trace and one event of each kind, a second old when made: "now" in a first render and in a
    live row rendered right after it."""
    now = now_ms()
    trace = {
        "id": "T1", "entry": "Checkout", "kind": "api", "label": "POST /orders", "error": "",
        "start": now - 1000, "end": now - 960, "failed": 0, "spans": 2, "errors": 0, "steps": ["Checkout"],
        "status": "completed", "durationMs": 40,
    }  # fmt: skip
    event = {"traceId": "T1", "spanId": "S1", "step": "Checkout"}
    return {
        "trace": trace,
        "log": {**event, "id": "L1", "kind": "log", "ts": now - 990, "level": "warning",
                "message": "Card <declined>", "fields": {"orderId": "9"}},
        "emit": {**event, "id": "E1", "kind": "emit", "ts": now - 980, "topic": "order.placed",
                 "payload": {"orderId": "9"}, "truncated": False, "subscribers": ["Ship"]},
        "state": {**event, "id": "O1", "kind": "state", "ts": now - 970, "op": "set", "group": "orders",
                  "key": "9"},
    }  # fmt: skip


NO_TRACE_FILTERS = {"status": "", "step": "", "q": ""}
NO_LOG_FILTERS = {"level": "", "step": "", "trace_id": "", "q": ""}
HOME = {"form": None, "trace_cap": 12, "log_cap": 20}


def page(env: Environment, name: str, **context: Any) -> str:
    base = {"active": "", "app_name": "app", "mode": "dev", "now": now_ms(), "feed_id": "0-0", "live": True,
            "cursor": None, "cap": LIVE_ROWS, "steps": [], "levels": []}  # fmt: skip
    return env.get_template(name).render({**base, **context})


def live(view: str, record: FeedRecord) -> str:
    engine = JinjaTemplateEngine.from_environment(environment(TEMPLATES, URLS))
    (event,) = renderer(engine, {"view": view})(record)
    assert event.event == record.type and event.id == record.id
    return str(event.data)


def squash(html: str) -> str:
    return re.sub(r">\s+<", "><", re.sub(r"\s+", " ", html)).strip()


def rows(html: str) -> list[str]:
    return re.findall(r"<tr id=.*?</tr>", squash(html))


@pytest.mark.parametrize(
    ("view", "template", "kind", "context"),
    [
        ("traces", "traces.html", "trace", {"filters": NO_TRACE_FILTERS}),
        ("logs", "logs.html", "log", {"filters": NO_LOG_FILTERS}),
        ("home", "home.html", "trace", {"logs": [], **HOME}),
        ("home", "home.html", "log", {"traces": [], **HOME}),
    ],
)
def test_a_live_row_is_the_row_of_the_first_render(
    env: Environment, view: str, template: str, kind: str, context: dict[str, Any]
) -> None:
    assert kind in VIEWS[view]
    record = records()[kind]
    first = rows(page(env, template, **{f"{kind}s": [record]}, **context))
    assert len(first) == 1 and f'id="{kind}-{record["id"]}"' in first[0]
    assert rows(live(view, FeedRecord("1-0", kind, record))) == first


def test_rows_of_each_layout(env: Environment) -> None:
    made = records()
    listed = squash(page(env, "logs.html", logs=[made["log"]], filters=NO_LOG_FILTERS))
    assert f'<a href="{BASE}/traces/T1" title="T1">T1</a>' in listed  # the trace column
    assert "Card &lt;declined&gt;" in listed and "<pre>" in listed  # escaped; fields unfold
    compact = squash(page(env, "home.html", traces=[made["trace"]], logs=[made["log"]], **HOME))
    assert 'class="trace"' not in compact and "<pre>" not in compact  # no trace column, no fields
    assert 'data-live-list="12"' in compact and 'data-live-list="20"' in compact
    assert f'data-live-list="{LIVE_ROWS}"' in page(env, "traces.html", traces=[], filters=NO_TRACE_FILTERS)


def test_a_span_shows_each_event_with_its_kind_partial(env: Environment) -> None:
    made = records()
    span = {"id": "S1", "traceId": "T1", "step": "Checkout", "kind": "api", "attempt": 1,
            "status": "timed_out", "startedAt": made["trace"]["start"], "finishedAt": None,
            "events": [made["log"], made["emit"], made["state"]]}  # fmt: skip
    html = squash(env.get_template("partials/span_detail.html").render(trace=made["trace"], selected=span))
    assert re.findall(r'<tr class="ev-(\w+)"', html) == ["log", "emit", "state"]
    assert '<span class="pill failed">timed out</span>' in html
    assert "Card &lt;declined&gt;" in html and "orderId=<b>9</b>" in html
    assert "<code>order.placed</code> → Ship" in html and "set <code>orders / 9</code>" in html
    for kind in made:
        assert (TEMPLATES / record_partial(kind)).is_file()
