"""The workbench UI in a real browser: Playwright (sync API) driving Debian's Chromium against a real
web process and worker (the `stack` fixture).

Every test fails on a page JS error, on any unexpected dialog (an alert would mean XSS) and on any
request for `x` (what an injected `<img src=x>` would load). Each test leaves a screenshot in
`artifacts/screenshots/<test-name>.png`.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Dialog, Locator, Page, expect, sync_playwright
from redis import Redis as SyncRedis

from workbench import keys

from .conftest import ARTIFACTS, PET_STEPS, ROOT, Stack, start_stack, wait_until

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
SCREENSHOTS = ARTIFACTS / "screenshots"
XSS_NAME = "<img src=x onerror=alert(1)>"
WORKBENCH_HEADERS = {"X-Workbench": "1"}

expect.set_options(timeout=10_000)


# --- browser and page fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the UI tests drive Debian's Chromium (apt-get install chromium)",
            pytrace=False,
        )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield b
        b.close()


@dataclass
class UI:
    """One browser context + page, watching for JS errors, dialogs and injected-image requests."""

    page: Page
    base: str
    name: str  # screenshots: artifacts/screenshots/<name>[-<label>].png
    errors: list[str] = field(default_factory=list)
    allowed_confirms: list[str] = field(default_factory=list)  # message prefixes accepted once each
    accepted: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    def screenshot(self, label: str = "") -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{self.name}{'-' + label if label else ''}.png"))

    def goto(self, path: str) -> None:
        response = self.page.goto(self.url(path))
        assert response is not None and response.ok, f"GET {path}: {response and response.status}"
        self.mark()
        self.check()

    def mark(self) -> None:
        """Mark the current document; `assert_not_reloaded` proves it is still the same one."""
        self.page.evaluate("window.__wbSameDocument = true")

    def assert_not_reloaded(self) -> None:
        assert self.page.evaluate("window.__wbSameDocument === true"), "the page was reloaded"

    def check(self) -> None:
        assert not self.errors, "page errors / unexpected dialogs:\n" + "\n".join(self.errors)

    def allow_confirm(self, prefix: str) -> None:
        self.allowed_confirms.append(prefix)

    def _on_dialog(self, dialog: Dialog) -> None:
        for prefix in self.allowed_confirms:
            if dialog.type == "confirm" and dialog.message.startswith(prefix):
                self.allowed_confirms.remove(prefix)
                self.accepted.append(dialog.message)
                dialog.accept()
                return
        self.errors.append(f"unexpected {dialog.type} dialog: {dialog.message!r} on {self.page.url}")
        dialog.dismiss()


@pytest.fixture
def open_ui(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Callable[..., UI]]:
    """`open_ui(base_url, **context_options)` → a fresh context and page (1280x800 unless given)."""
    opened: list[tuple[Any, UI]] = []

    def make(base: str, **options: Any) -> UI:
        options.setdefault("viewport", {"width": 1280, "height": 800})
        context = browser.new_context(**options)
        page = context.new_page()
        ui = UI(page, base, request.node.name if not opened else f"{request.node.name}-{len(opened) + 1}")
        page.on("pageerror", lambda exc: ui.errors.append(f"page error on {page.url}: {exc}"))
        page.on("dialog", ui._on_dialog)
        page.on(
            "request",
            lambda req: (
                ui.errors.append(f"request for an injected image: {req.url}")
                if re.search(r"/x(\?|$)", req.url)
                else None
            ),
        )
        opened.append((context, ui))
        return ui

    yield make
    problems = []
    for context, ui in opened:
        try:
            ui.screenshot()
        finally:
            problems += ui.errors
            context.close()
    if problems:
        pytest.fail("page errors / unexpected dialogs:\n" + "\n".join(problems), pytrace=False)


# --- helpers --------------------------------------------------------------------------------------------


def create_pet(stack: Stack, name: str = "Jack", species: str = "dog", age: int = 24) -> tuple[str, str]:
    """POST /pets → (pet id, trace id)."""
    with stack.client() as c:
        r = c.post("/pets", json={"name": name, "species": species, "ageMonths": age})
    assert r.status_code == 201, r.text
    return r.json()["id"], r.headers["x-trace-id"]


def api_get(stack: Stack, path: str) -> Any:
    with stack.client() as c:
        r = c.get(path)
    assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text}"
    return r.json()


def wait_trace(stack: Stack, trace_id: str, status: str = "completed", timeout: float = 10) -> dict[str, Any]:
    last: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with stack.client() as c:
            r = c.get(f"/_workbench/api/traces/{trace_id}")
        if r.status_code == 200:
            last = r.json()
            if last["status"] == status:
                return last
        time.sleep(0.1)
    spans = [(s["step"], s["status"]) for s in last.get("spanList", [])]
    raise AssertionError(
        f"trace {trace_id} not {status} after {timeout}s: {last.get('status')} {spans}\n"
        f"worker log tail:\n{stack.workers[0].output()[-1500:]}"
    )


@contextmanager
def worker_paused(stack: Stack) -> Iterator[None]:
    """Freeze the worker (SIGSTOP) so a page can be opened before the background steps run."""
    popen = stack.workers[0].popen
    popen.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        popen.send_signal(signal.SIGCONT)


def log_rows(ui: UI, text: str | None = None) -> Locator:
    rows = ui.page.locator("#log-list > tr")
    return rows.filter(has_text=text) if text else rows


def row_ids(ui: UI, tbody: str) -> list[str]:
    ids: list[str] = ui.page.evaluate(
        "sel => Array.from(document.querySelectorAll(sel + ' > tr')).map(r => r.id)", tbody
    )
    return ids


def expect_live(ui: UI, timeout: float = 10_000) -> None:
    expect(ui.page.locator("#live-indicator .label")).to_have_text("live", timeout=timeout)


def stored_log_count(redis: SyncRedis, message: str) -> int:
    return sum(1 for _id, fields in redis.xrange(keys.LOGS) if json.loads(fields["d"])["message"] == message)


def expect_span_completed(ui: UI, stack: Stack, trace_id: str, step: str) -> Locator:
    """The waterfall row of `step` turns completed live; if it does not, say whether the page is stale."""
    row = ui.page.locator(".waterfall .wf-row", has_text=step).first
    try:
        expect(row.locator(".bar.run.completed")).to_have_count(1)
        expect(row).to_have_class(re.compile(r"\bst-completed\b"))
    except AssertionError as exc:
        trace = api_get(stack, f"/_workbench/api/traces/{trace_id}")
        spans = [(s["step"], s["status"]) for s in trace["spanList"]]
        shown = ui.page.locator(".waterfall .wf-row[data-span]").evaluate_all(
            "rows => rows.map(r => r.getAttribute('aria-label') + ': ' + r.className)"
        )
        raise AssertionError(
            f"the waterfall did not show {step} completed without a reload.\n"
            f"API (trace {trace['status']}): {spans}\npage rows: {shown}"
        ) from exc
    return row


def luminance(css_color: str) -> float:
    r, g, b = (int(v) for v in re.findall(r"\d+", css_color)[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


# --- 1. home: create a pet, follow its trace live -------------------------------------------------------


def test_home_create_pet_and_follow_trace_live(stack: Stack, open_ui: Callable[..., UI]) -> None:
    ui = open_ui(stack.url)
    page = ui.page
    ui.goto("/")
    expect(page).to_have_url(re.compile(r"/_workbench/$"))
    expect_live(ui)
    form = page.locator("#featured-form")
    with worker_paused(stack):  # the background steps wait until the trace page is open
        form.get_by_label("Name").fill("Rex")
        form.get_by_label("Species").select_option("cat")
        form.get_by_label("Age").fill("7")
        form.get_by_role("button", name="Create pet").click()

        result = form.locator(".tryit-result .result.ok")
        expect(result).to_contain_text("→ 201")
        link = result.get_by_role("link", name=re.compile(r"^trace "))
        expect(link).to_be_visible()
        href = link.get_attribute("href") or ""
        trace_id = href.rsplit("/", 1)[-1]
        assert re.fullmatch(r"/_workbench/traces/[0-9A-Za-z]+", href), href

        # the new trace shows up in "Recent traces" without a reload
        expect(page.locator(f"#home-traces > tr#trace-{trace_id}")).to_be_visible()
        expect(page.locator("#home-traces-empty")).to_have_count(0)
        ui.assert_not_reloaded()

        link.click()
        expect(page).to_have_url(ui.url(href))
        ui.mark()
        expect_live(ui)
        reminder = page.locator(".waterfall .wf-row", has_text="SetNextFeedingReminder")
        expect(page.locator(".waterfall .wf-row.st-completed", has_text="CreatePet")).to_be_visible()
        expect(reminder.locator(".bar.run.completed")).to_have_count(0)
    # the worker runs now: the waterfall re-renders from SSE `changed` events
    expect_span_completed(ui, stack, trace_id, "SetNextFeedingReminder")
    expect(page.locator(".trace-head .pill")).to_have_text(re.compile("completed"))
    ui.assert_not_reloaded()
    assert wait_trace(stack, trace_id)["entry"] == "CreatePet"
    pets = api_get(stack, "/pets")["pets"]
    assert [(p["name"], p["species"], p["ageMonths"]) for p in pets] == [("Rex", "cat", 7)]


# --- 2. logs page live ----------------------------------------------------------------------------------


def test_logs_page_shows_tutorial_lines_live(stack: Stack, open_ui: Callable[..., UI]) -> None:
    ui = open_ui(stack.url)
    ui.goto("/_workbench/logs")
    expect_live(ui)
    expect(log_rows(ui)).to_have_count(0)
    _, trace_id = create_pet(stack)
    for message in ("Pet created", "Setting next feeding reminder", "Next feeding reminder set"):
        expect(log_rows(ui, message)).to_have_count(1)
    expect(log_rows(ui, "Pet created")).to_contain_text("CreatePet")
    expect(log_rows(ui, "Pet created").locator("td.trace a")).to_have_attribute(
        "href", f"/_workbench/traces/{trace_id}"
    )
    ui.assert_not_reloaded()


# --- 3. filters in the URL; filtered live lists ---------------------------------------------------------


def test_filters_survive_reload_and_filter_live_rows(stack: Stack, open_ui: Callable[..., UI]) -> None:
    ui = open_ui(stack.url)
    page = ui.page

    ui.goto("/_workbench/traces?status=failed&step=CreatePet&q=abc")
    for _ in range(2):
        expect(page.locator("select[name=status]")).to_have_value("failed")
        expect(page.locator("select[name=step]")).to_have_value("CreatePet")
        expect(page.locator("input[name=q]")).to_have_value("abc")
        page.reload()

    ui.goto("/_workbench/logs?level=warning&step=CreatePet&q=xyz")
    for _ in range(2):
        expect(page.locator("select[name=level]")).to_have_value("warning")
        expect(page.locator("select[name=step]")).to_have_value("CreatePet")
        expect(page.locator("input[name=q]")).to_have_value("xyz")
        page.reload()

    # choosing a filter puts it in the URL
    page.locator("select[name=level]").select_option("error")
    expect(page).to_have_url(re.compile(r"[?&]level=error(&|$)"))
    expect(page.locator("select[name=step]")).to_have_value("CreatePet")

    # a filtered live list only receives matching rows
    ui.goto("/_workbench/traces?step=DeletePet")
    expect_live(ui)
    rows = page.locator("#trace-list > tr")
    pet_id, create_trace = create_pet(stack)
    wait_trace(stack, create_trace)

    # the negative check needs no waiting: the feed delivers records in order, so once the DeletePet
    # trace (started after the CreatePet trace had finished) is shown, everything of the CreatePet
    # trace has reached the page too; had any of it passed the filter, it would be a second row
    with stack.client() as c:
        r = c.delete(f"/pets/{pet_id}")
    assert r.status_code == 202, r.text
    delete_trace = r.headers["x-trace-id"]
    expect(page.locator(f"#trace-list > tr#trace-{delete_trace}")).to_be_visible()
    expect(rows).to_have_count(1)
    assert row_ids(ui, "#trace-list") == [f"trace-{delete_trace}"]
    expect(rows.first.locator("td.entry")).to_have_text("DeletePet")
    ui.assert_not_reloaded()


# --- 4. XSS ---------------------------------------------------------------------------------------------


def test_pet_name_with_html_is_shown_as_text_everywhere(stack: Stack, open_ui: Callable[..., UI]) -> None:
    ui = open_ui(stack.url)
    page = ui.page

    # through the live path first: the logs page is open when the pet is created
    ui.goto("/_workbench/logs")
    expect_live(ui)
    pet_id, trace_id = create_pet(stack, name=XSS_NAME)
    expect(log_rows(ui, "Pet created")).to_have_count(1)
    expect(log_rows(ui, "Pet created")).to_contain_text(XSS_NAME)
    expect(page.locator("img[src=x]")).to_have_count(0)

    # through the home form
    ui.goto("/")
    form = page.locator("#featured-form")
    form.get_by_label("Name").fill(XSS_NAME)
    form.get_by_label("Age").fill("3")
    form.get_by_role("button", name="Create pet").click()
    expect(form.locator(".tryit-result .result.ok")).to_contain_text("→ 201")
    wait_trace(stack, trace_id)
    pets = api_get(stack, "/pets")["pets"]
    assert [p["name"] for p in pets] == [XSS_NAME, XSS_NAME]
    for p in pets:
        wait_until(lambda p=p: api_get(stack, f"/pets/{p['id']}")["status"] == "in_quarantine", 10)

    pages = {
        "/": False,
        "/_workbench/flows": False,
        "/_workbench/endpoints": False,
        "/_workbench/traces": False,
        f"/_workbench/traces/{trace_id}": True,
        "/_workbench/logs": True,
        "/_workbench/cron": False,
        "/_workbench/state": True,
        "/_workbench/emit": False,
        "/_workbench/dead-letters": False,
    }
    for path, shows_name in pages.items():
        ui.goto(path)
        expect(page.locator("main.content")).to_be_visible()
        if shows_name:
            expect(page.get_by_text(XSS_NAME).first).to_be_visible()
        expect(page.locator("img[src=x]")).to_have_count(0)
        ui.check()

    # the endpoints "try it" renders the response JSON in the page
    ui.goto("/_workbench/endpoints")
    card = page.locator("section.endpoint", has=page.locator("code", has_text=re.compile(r"^/pets/\{id\}$")))
    get_form = card.filter(has=page.locator(".method.GET")).locator("form.tryit")
    get_form.locator("input[name='path:id']").fill(pet_id)
    get_form.get_by_role("button", name="Send").click()
    expect(get_form.locator(".tryit-result pre")).to_contain_text(XSS_NAME)
    # no element an onerror could hang on; a dialog or a request for `x` arriving later still fails
    # the test: the open_ui fixture checks the page's errors again after its final screenshot
    expect(page.locator("img[src=x]")).to_have_count(0)
    ui.check()


# --- 5. cron "Run now" ----------------------------------------------------------------------------------


def test_cron_run_now_links_to_a_completed_trace(stack: Stack, open_ui: Callable[..., UI]) -> None:
    ui = open_ui(stack.url)
    page = ui.page
    ui.goto("/_workbench/cron")
    row = page.locator("table.cron tr", has=page.locator("strong", has_text="DeletionReaper"))
    expect(row).to_have_count(1)
    with worker_paused(stack):
        row.get_by_role("button", name="Run now").click()
        link = row.locator(".run-result a")
        expect(link).to_have_text(re.compile(r"^trace "))
        expect(row.locator(".run-result")).to_contain_text("DeletionReaper started")
        link.click()
        expect(page).to_have_url(re.compile(r"/_workbench/traces/[0-9A-Za-z]+$"))
        ui.mark()
        expect(page.locator(".trace-head")).to_contain_text("DeletionReaper")
        expect_live(ui)
    trace_id = page.url.rsplit("/", 1)[-1]
    span = expect_span_completed(ui, stack, trace_id, "DeletionReaper")
    expect(page.locator(".trace-head .pill")).to_have_text(re.compile("completed"))
    span.click()
    expect(span).to_have_class(re.compile(r"\bselected\b"))
    detail = page.locator("#span-detail")
    expect(detail.locator("h2")).to_contain_text("DeletionReaper")
    expect(detail).to_contain_text("Deletion reaper finished")
    expect(detail.locator(".pill")).to_have_text("completed")
    ui.assert_not_reloaded()
    assert wait_trace(stack, trace_id)["entry"] == "DeletionReaper"


# --- 6. the live feed resumes after a web restart -------------------------------------------------------


def test_live_feed_resumes_after_web_restart_without_gaps(
    stack: Stack, open_ui: Callable[..., UI], sync_redis: SyncRedis
) -> None:
    setting = "Setting next feeding reminder"
    _, first = create_pet(stack)
    wait_trace(stack, first)

    ui = open_ui(stack.url)
    ui.goto("/_workbench/logs")
    expect_live(ui)
    expect(log_rows(ui, setting)).to_have_count(1)

    # the web goes down; meanwhile the worker keeps logging (events emitted straight into Redis)
    stack.web.stop()
    expect(ui.page.locator("#live-indicator .label")).to_have_text("reconnecting…")
    emits = 3
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "workbench", "emit", "feeding.reminder.enqueued", '{"petId": "1"}'],
            env=stack.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(emits)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out.decode()
    wait_until(lambda: stored_log_count(sync_redis, setting) == 1 + emits, 10, message="the worker's logs")

    stack.restart_web()
    expect_live(ui, timeout=20_000)
    expect(log_rows(ui, setting)).to_have_count(1 + emits)

    # and it carries on live
    create_pet(stack, name="Second")
    expect(log_rows(ui, "Pet created")).to_have_count(2)
    expect(log_rows(ui, setting)).to_have_count(2 + emits)
    expect(log_rows(ui, "Next feeding reminder set")).to_have_count(2 + emits)
    ids = row_ids(ui, "#log-list")
    assert len(ids) == len(set(ids)), f"duplicate row ids: {ids}"
    ui.assert_not_reloaded()


# --- 7. a burst of log lines ----------------------------------------------------------------------------

BURST_STEP = """
config = {
    "type": "event",
    "name": "BurstLogger",
    "description": "Logs many lines as fast as it can.",
    "subscribes": ["burst.start"],
    "flows": ["burst"],
}


async def handler(data, ctx):
    for i in range(int(data.get("lines", 500))):
        ctx.logger.info(f"burst line {i:03d}", n=i)
"""


@pytest.fixture
def burst_stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    """The pet steps plus a step that logs a burst of lines on `burst.start`."""
    steps_dir = tmp_path / "steps"
    shutil.copytree(PET_STEPS / "pets", steps_dir / "pets", ignore=shutil.ignore_patterns("__pycache__"))
    (steps_dir / "pets" / "burst_step.py").write_text(BURST_STEP)
    stack = start_stack(redis_url, tmp_path, steps_dir=steps_dir)
    yield stack
    stack.stop()


def test_burst_of_log_lines_keeps_page_responsive(burst_stack: Stack, open_ui: Callable[..., UI]) -> None:
    stack = burst_stack
    ui = open_ui(stack.url)
    page = ui.page
    ui.goto("/_workbench/logs")
    expect_live(ui)
    cap = int(page.locator("#log-list").get_attribute("data-live-list") or "0")
    expect(page.locator(".live-controls")).to_contain_text(f"latest {cap} kept")
    assert cap == 300

    # the page's own main thread: the longest task it ran while the lines arrived (Long Tasks API)
    page.evaluate(
        """window.wbLongest = 0;
           new PerformanceObserver(function (list) {
             list.getEntries().forEach(function (e) {
               window.wbLongest = Math.max(window.wbLongest, e.duration);
             });
           }).observe({type: "longtask"});"""
    )
    started = time.monotonic()
    with stack.client(headers=WORKBENCH_HEADERS) as c:
        r = c.post("/_workbench/api/emit", json={"topic": "burst.start", "data": {"lines": 500}})
    assert r.status_code == 202, r.text
    trace_id = r.json()["traceId"]

    # the page answers promptly while the lines arrive, until the last one is shown
    slowest = 0.0
    last_line = page.locator("#log-list > tr", has_text="burst line 499")
    while not last_line.count():
        assert time.monotonic() - started < 10, "the last burst line did not show up within 10 s"
        t0 = time.monotonic()
        page.evaluate("1 + 1")
        slowest = max(slowest, time.monotonic() - t0)
        page.wait_for_timeout(50)
    took = time.monotonic() - started
    longest_ms = page.evaluate("window.wbLongest")
    print(f"\nlongest main-thread task {longest_ms:.0f} ms, slowest answer {slowest:.2f} s")
    # measured here: 80-290 ms (the batch inserted at once), 370-480 ms before (row by row)
    assert longest_ms < 1000, f"the page's main thread was busy for {longest_ms:.0f} ms at a stretch"
    # the round trip from this test to the page also waits for the CPU that the servers, Redis and
    # the browser share on a 2-core machine: only a frozen page would take seconds
    assert slowest < 3, f"the page took {slowest:.2f}s to answer while lines arrived"
    assert took < 10, f"took {took:.1f}s"

    wait_trace(stack, trace_id)
    logs = api_get(stack, f"/_workbench/api/logs?trace_id={trace_id}&limit=500")["logs"]
    assert [line["message"] for line in logs] == [f"burst line {i:03d}" for i in reversed(range(500))]
    # 500 lines, each its own row (keyed by the line's id), the list capped: exactly the newest `cap`
    # rows, newest first
    expect(log_rows(ui)).to_have_count(cap)
    assert row_ids(ui, "#log-list") == [f"log-{line['id']}" for line in logs[:cap]]
    expect(page.locator("#log-list-count")).to_have_text(str(cap))
    expect(log_rows(ui).first).to_contain_text("burst line 499")
    ui.assert_not_reloaded()


# --- 8. pause / resume ----------------------------------------------------------------------------------


def test_logs_pause_and_resume(stack: Stack, open_ui: Callable[..., UI]) -> None:
    ui = open_ui(stack.url)
    page = ui.page
    ui.goto("/_workbench/logs")
    expect_live(ui)
    pause = page.locator("#pause")
    pause.click()
    expect(pause).to_have_text("Resume")

    _, trace_id = create_pet(stack)
    wait_trace(stack, trace_id)
    lines = api_get(stack, f"/_workbench/api/logs?trace_id={trace_id}")["logs"]
    assert sorted(line["message"] for line in lines) == [
        "Next feeding reminder set", "Pet created", "Pet registered in the lifecycle",
        "Setting next feeding reminder", "Transition applied",
    ]  # fmt: skip
    pending = page.locator("#log-list-pending")
    expect(pending).to_have_text(f"{len(lines)} new while paused")
    expect(log_rows(ui)).to_have_count(0)

    pause.click()
    expect(pause).to_have_text("Pause")
    expect(pending).to_have_text("")
    for message in ("Pet created", "Setting next feeding reminder", "Next feeding reminder set"):
        expect(log_rows(ui, message)).to_have_count(1)
    expect(log_rows(ui)).to_have_count(len(lines))
    expect(page.locator("#log-list-count")).to_have_text(str(len(lines)))
    ui.assert_not_reloaded()


# --- 9. themes and a narrow window ----------------------------------------------------------------------


def test_dark_and_light_themes_and_narrow_window(stack: Stack, open_ui: Callable[..., UI]) -> None:
    body_bg = "getComputedStyle(document.body).backgroundColor"

    light = open_ui(stack.url, color_scheme="light")
    light.goto("/")
    assert luminance(light.page.evaluate(body_bg)) > 0.8

    dark = open_ui(stack.url, color_scheme="dark", viewport={"width": 800, "height": 800})
    page = dark.page
    dark.goto("/")
    assert luminance(page.evaluate(body_bg)) < 0.2, page.evaluate(body_bg)
    text = page.evaluate("getComputedStyle(document.body).color")
    assert luminance(text) > 0.6, text

    # 800 px wide: the nav and the create-pet form are visible, nothing scrolls sideways
    expect(page.locator("nav.sidebar")).to_be_visible()
    expect(page.locator("nav.sidebar").get_by_role("link", name="Logs")).to_be_in_viewport()
    form = page.locator("#featured-form")
    expect(form).to_be_visible()
    expect(form.get_by_role("button", name="Create pet")).to_be_visible()
    box = form.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 800, box
    assert page.evaluate("document.documentElement.scrollWidth") <= 800

    # the toggle switches to light, and the choice is remembered
    dark.screenshot("dark")
    page.get_by_role("button", name="◐").click()
    assert luminance(page.evaluate(body_bg)) > 0.8
    page.reload()
    assert luminance(page.evaluate(body_bg)) > 0.8


# --- 10. flows ------------------------------------------------------------------------------------------


def test_flow_graph_nodes_edges_and_side_panel(stack: Stack, open_ui: Callable[..., UI]) -> None:
    _, trace_id = create_pet(stack)
    wait_trace(stack, trace_id)
    ui = open_ui(stack.url)
    page = ui.page
    ui.goto("/_workbench/flows")
    flow = page.locator("section.flow", has=page.locator("h2", has_text=re.compile(r"^pet-lifecycle$")))
    expect(flow).to_have_count(1)
    nodes = flow.locator("svg g.node")
    expected = {"CreatePet", "UpdatePet", "SetNextFeedingReminder", "PetLifecycleOrchestrator"}
    expect(nodes).to_have_count(len(expected))
    names = {nodes.nth(i).get_attribute("data-node") for i in range(nodes.count())}
    assert names == expected

    boxes = {}
    for i in range(nodes.count()):
        node = nodes.nth(i)
        expect(node.locator("text.node-title")).to_have_text(node.get_attribute("data-node") or "")
        box = node.locator("rect").bounding_box()
        assert box is not None and box["width"] > 0 and box["height"] > 0
        boxes[node.get_attribute("data-node")] = box
    items = list(boxes.items())
    for i, (a, p) in enumerate(items):
        for b, q in items[i + 1 :]:
            apart = (
                p["x"] + p["width"] <= q["x"]
                or q["x"] + q["width"] <= p["x"]
                or p["y"] + p["height"] <= q["y"]
                or q["y"] + q["height"] <= p["y"]
            )
            assert apart, f"nodes {a} and {b} overlap: {p} {q}"

    labels = flow.locator("svg text.edge-label").all_text_contents()
    for topic in ("pet.created", "feeding.reminder.enqueued", "feeding.reminder.completed",
                  "pet.status.update.requested"):  # fmt: skip
        assert topic in labels, labels
    expect(flow.locator("svg path.edge")).to_have_count(len(labels))

    panel = page.locator("#node-panel")
    flow.locator("g.node[data-node=SetNextFeedingReminder]").click()
    expect(panel).to_have_class(re.compile(r"\bopen\b"))
    expect(panel).to_be_in_viewport(ratio=1)
    expect(panel.locator("h2")).to_contain_text("SetNextFeedingReminder")
    config = panel.locator("dl.config")
    expect(config).to_contain_text("feeding.reminder.enqueued")
    expect(config).to_contain_text("feeding.reminder.completed")
    expect(config).to_contain_text("3 attempts")
    expect(config).to_contain_text(re.compile(r"Timeout\s*10(\.0)? s"))
    expect(panel.get_by_role("heading", name=re.compile("Recent runs"))).to_be_visible()
    expect(panel.locator(f"a[href^='/_workbench/traces/{trace_id}?span=']")).to_have_count(1)

    panel.get_by_role("button", name="Close").click()
    expect(panel).not_to_have_class(re.compile(r"\bopen\b"))
    expect(panel).not_to_be_in_viewport()

    # another node replaces the panel content
    flow.locator("g.node[data-node=PetLifecycleOrchestrator]").click()
    expect(panel).to_be_in_viewport(ratio=1)
    expect(panel.locator("h2")).to_contain_text("PetLifecycleOrchestrator")
    expect(panel.locator("dl.config")).to_contain_text("pet.status.update.requested")
    expect(panel.locator(f"a[href^='/_workbench/traces/{trace_id}?span=']")).to_have_count(2)
    ui.assert_not_reloaded()


# --- 11. state ------------------------------------------------------------------------------------------


def test_state_edit_and_delete(stack: Stack, open_ui: Callable[..., UI]) -> None:
    pet_id, trace_id = create_pet(stack, name="Jack")
    wait_trace(stack, trace_id)
    with stack.client(headers=WORKBENCH_HEADERS) as c:
        r = c.post(
            "/_workbench/api/state/set", json={"group": "scratch", "key": "doomed", "value": {"bye": True}}
        )
    assert r.status_code == 200, r.text

    ui = open_ui(stack.url)
    page = ui.page
    ui.goto("/_workbench/state")
    row = page.locator(f'tr[data-group="pets"][data-key="{pet_id}"]')
    expect(row.locator("pre.json")).to_contain_text('"name": "Jack"')

    row.get_by_role("button", name="Edit").click()
    textarea = row.locator("textarea[name=value]")
    expect(textarea).to_be_visible()
    pet = json.loads(textarea.input_value())
    textarea.fill(json.dumps({**pet, "name": "Jackie"}, indent=2))
    row.get_by_role("button", name="Save").click()
    expect(row.locator("pre.json")).to_contain_text('"name": "Jackie"')
    expect(row.locator("pre.json")).to_be_visible()
    expect(row.locator("textarea[name=value]")).to_be_hidden()
    assert api_get(stack, f"/pets/{pet_id}")["name"] == "Jackie"

    doomed = page.locator('tr[data-group="scratch"][data-key="doomed"]')
    expect(doomed).to_be_visible()
    ui.allow_confirm("Delete scratch / doomed?")
    doomed.get_by_role("button", name="Delete").click()
    expect(doomed).to_have_count(0)
    assert ui.accepted == ["Delete scratch / doomed? This cannot be undone."]
    groups = api_get(stack, "/_workbench/api/state")["groups"]
    assert "doomed" not in groups.get("scratch", {})
    page.reload()
    expect(page.locator('tr[data-group="scratch"][data-key="doomed"]')).to_have_count(0)
    expect(page.locator(f'tr[data-group="pets"][data-key="{pet_id}"] pre.json')).to_contain_text(
        '"name": "Jackie"'
    )


# --- 12. emit -------------------------------------------------------------------------------------------


def test_emit_page_starts_a_trace(stack: Stack, open_ui: Callable[..., UI]) -> None:
    pet_id, trace_id = create_pet(stack)
    wait_trace(stack, trace_id)
    ui = open_ui(stack.url)
    page = ui.page
    ui.goto("/_workbench/emit")
    page.get_by_label("Topic").select_option("feeding.reminder.enqueued")
    expect(page.locator("#subs")).to_have_text("SetNextFeedingReminder")
    page.get_by_label("JSON payload").fill(json.dumps({"petId": pet_id}))
    page.get_by_role("button", name="Emit").click()
    result = page.locator("#emit-result .result.ok")
    expect(result).to_contain_text("Emitted feeding.reminder.enqueued → SetNextFeedingReminder")
    link = result.get_by_role("link", name=re.compile(r"^trace "))
    href = link.get_attribute("href") or ""
    assert re.fullmatch(r"/_workbench/traces/[0-9A-Za-z]+", href), href
    emitted = wait_trace(stack, href.rsplit("/", 1)[-1])
    assert "SetNextFeedingReminder" in emitted["steps"]
    link.click()
    expect(page.locator(".waterfall .wf-row", has_text="SetNextFeedingReminder")).to_have_count(1)


# --- beyond the issue: feedback the pages should give ---------------------------------------------------


def test_invalid_json_is_reported_in_place(stack: Stack, open_ui: Callable[..., UI]) -> None:
    """The server answers 400 with an error partial; the page must show it (emit and state edit)."""
    with stack.client(headers=WORKBENCH_HEADERS) as c:
        r = c.post("/_workbench/api/state/set", json={"group": "scratch", "key": "kept", "value": {"a": 1}})
    assert r.status_code == 200, r.text
    ui = open_ui(stack.url)
    page = ui.page
    missing = []

    ui.goto("/_workbench/emit")
    page.get_by_label("JSON payload").fill("{oops")
    with page.expect_response(
        lambda r: r.url.endswith("/_workbench/emit") and r.request.method == "POST"
    ) as info:
        page.get_by_role("button", name="Emit").click()
    assert info.value.status == 400
    error = page.locator("#emit-result .result.bad")
    try:
        expect(error).to_contain_text("not valid JSON", timeout=2000)
    except AssertionError:
        missing.append("emit page: no '#emit-result .result.bad' after a 400 for payload '{oops'")

    ui.goto("/_workbench/state")
    row = page.locator('tr[data-group="scratch"][data-key="kept"]')
    row.get_by_role("button", name="Edit").click()
    row.locator("textarea[name=value]").fill("{not json")
    with page.expect_response(lambda r: r.url.endswith("/_workbench/state/set")) as info:
        row.get_by_role("button", name="Save").click()
    assert info.value.status == 400
    try:
        expect(page.locator('tr[data-group="scratch"][data-key="kept"] .result.bad')).to_contain_text(
            "value: not valid JSON", timeout=2000
        )
    except AssertionError:
        missing.append("state page: no error in the scratch/kept row after a 400 for value '{not json'")
    assert api_get(stack, "/_workbench/api/state")["groups"]["scratch"]["kept"] == {"a": 1}
    assert not missing, (
        "the 400 error partial is not shown (htmx 2 does not swap 4xx by default):\n" + "\n".join(missing)
    )


def test_empty_list_message_goes_away_when_live_rows_arrive(stack: Stack, open_ui: Callable[..., UI]) -> None:
    traces = open_ui(stack.url)
    traces.goto("/_workbench/traces")
    logs = open_ui(stack.url)
    logs.goto("/_workbench/logs")
    empties = {
        "/_workbench/traces": traces.page.get_by_text("No traces match."),
        "/_workbench/logs": logs.page.get_by_text("No log lines match."),
    }
    for empty in empties.values():
        expect(empty).to_be_visible()
    expect_live(traces)
    expect_live(logs)

    create_pet(stack)
    expect(traces.page.locator("#trace-list > tr")).to_have_count(1)
    expect(log_rows(logs, "Pet created")).to_have_count(1)
    stale = [f"{path}: {empty.inner_text()!r}" for path, empty in empties.items() if empty.is_visible()]
    assert not stale, "the empty-list message stays next to live rows:\n" + "\n".join(stale)


def test_no_horizontal_scroll_at_800px_on_any_page(stack: Stack, open_ui: Callable[..., UI]) -> None:
    _, trace_id = create_pet(stack)
    wait_trace(stack, trace_id)
    ui = open_ui(stack.url, viewport={"width": 800, "height": 800})
    paths = ["/", f"/_workbench/traces/{trace_id}"] + [
        f"/_workbench/{name}"
        for name in ("flows", "endpoints", "traces", "logs", "cron", "state", "emit", "dead-letters")
    ]
    too_wide = {}
    for path in paths:
        ui.goto(path)
        width = ui.page.evaluate("document.documentElement.scrollWidth")
        if width > 800:
            too_wide[path] = (width, ui.page.evaluate(_WIDER_THAN_VIEWPORT))
    ui.goto("/_workbench/flows")
    assert not too_wide, f"pages wider than the 800 px window: {too_wide}"


_WIDER_THAN_VIEWPORT = """() => Array.from(document.querySelectorAll('body *'))
    .filter(e => e.getBoundingClientRect().right > innerWidth + 0.5
                 && !e.closest('.svg-wrap, pre, table'))
    .slice(0, 3).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + ' right='
                          + Math.round(e.getBoundingClientRect().right))"""


def test_role_button_elements_work_from_the_keyboard(stack: Stack, open_ui: Callable[..., UI]) -> None:
    """Flow nodes and waterfall rows are `role=button tabindex=0`: Enter must do what a click does."""
    _, trace_id = create_pet(stack)
    wait_trace(stack, trace_id)
    ui = open_ui(stack.url)
    page = ui.page
    failures = []

    ui.goto("/_workbench/flows")
    node = page.locator("section.flow g.node[data-node=CreatePet]").first
    node.focus()
    page.keyboard.press("Enter")
    try:
        expect(page.locator("#node-panel h2")).to_contain_text("CreatePet", timeout=2000)
    except AssertionError:
        failures.append("flows: Enter on a focused g.node[role=button] does not open #node-panel")

    ui.goto(f"/_workbench/traces/{trace_id}")
    row = page.locator(".waterfall .wf-row[data-span]", has_text="SetNextFeedingReminder")
    row.focus()
    page.keyboard.press("Enter")
    try:
        expect(page.locator("#span-detail h2")).to_contain_text("SetNextFeedingReminder", timeout=2000)
    except AssertionError:
        failures.append("trace: Enter on a focused .wf-row[role=button] does not select the span")
    assert not failures, "\n".join(failures)
