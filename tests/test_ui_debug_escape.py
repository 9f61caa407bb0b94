"""User text in the debugging panels is shown as text, never run (Chromium against a real web process and
worker, the `stack` fixture): the replay editor's prefilled body, query and headers, the curl command,
Run again's input, a span's state diff, the compare page, the State page's values and changed-by, and
'Your request' on home. Each piece of text tries to set `window.__xss` (a script, an onerror, an
attribute break-out); the flag must stay unset and the text must read literally."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from . import test_ui
from .conftest import Stack
from .test_ui import UI, api_get, wait_trace

browser, open_ui = test_ui.browser, test_ui.open_ui  # the browser fixtures of test_ui.py

NAME = '"></textarea></pre><script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
NOTE = "'><img src=x onerror=window.__xss=3></textarea><script>window.__xss=4</script>"
SHOWN = json.dumps(NAME)  # a value is shown as its JSON: quoted, its quotes escaped
QUERY = 'q="><svg/onload=window.__xss=5>'


def no_script_ran(page: Page) -> None:
    assert page.evaluate("window.__xss") is None, "injected text ran as a script"
    expect(page.locator("img[src=x]")).to_have_count(0)
    expect(page.locator("svg[onload]")).to_have_count(0)


def create(stack: Stack, name: str, species: str = "dog") -> str:
    with stack.client() as client:
        response = client.post(
            "/pets", params={"q": QUERY[2:]}, json={"name": name, "species": species, "ageMonths": 3},
            headers={"x-note": NOTE},
        )  # fmt: skip
    assert response.status_code == 201, response.text
    return str(response.headers["x-trace-id"])


def test_user_text_in_the_debugging_panels_is_text(stack: Stack, open_ui: Callable[..., UI]) -> None:
    first = create(stack, NAME)
    second = create(stack, NAME + " 2", species="cat")
    wait_trace(stack, first)
    wait_trace(stack, second)
    ui = open_ui(stack.url)
    page = ui.page

    # the replay editor, prefilled: body, query, headers; the curl command and the recorded answer
    ui.goto(f"/_workbench/traces/{first}")
    page.get_by_role("button", name="Replay", exact=True).click()
    body = page.locator("#replay-editor textarea[name=body]")
    expect(body).to_be_visible()
    assert SHOWN in body.input_value()
    assert NOTE in page.locator("#replay-editor textarea[name=headers]").input_value()
    query = page.locator("#replay-editor input[name=query]")
    expect(query).to_have_value(re.compile(r"^q=.*svg"))  # as the client encoded it
    page.get_by_role("button", name="Copy as curl").click()
    expect(page.locator("#curl-text")).to_contain_text("x-note: " + NOTE.replace("'", "'\"'\"'"))
    no_script_ran(page)

    # the state diff in CreatePet's span
    page.locator(".waterfall .wf-row", has_text="CreatePet").click()
    expect(page.locator("#span-detail tr.ev-state", has_text="set pets").first).to_contain_text(SHOWN)
    no_script_ran(page)

    # a re-emit with the markup in its payload: the emit trace's editor, and Run again's input in the
    # span it queued
    trace = api_get(stack, f"/_workbench/api/traces/{first}")
    emit = next(e for s in trace["spanList"] for e in s.get("events", []) if e["kind"] == "emit")
    with stack.client() as client:
        answer = client.post(
            f"/_workbench/api/traces/{first}/emits/{emit['id']}/reemit",
            json={"payload": {**emit["payload"], "note": NAME}},
            headers={"X-Workbench": "1"},
        )
    assert answer.status_code == 202, answer.text
    emitted = answer.json()["traceId"]
    wait_trace(stack, emitted)
    ui.goto(f"/_workbench/traces/{emitted}")
    page.get_by_role("button", name="Replay", exact=True).click()
    payload = page.locator("#replay-editor textarea[name=body]")
    expect(payload).to_be_visible()
    assert SHOWN in payload.input_value()
    page.locator(".waterfall .wf-row", has_text="PetLifecycleOrchestrator").first.click()
    data = page.locator(".rerun-panel textarea[name=data]")
    expect(data).to_have_value(re.compile("note"))
    assert SHOWN in data.input_value()
    no_script_ran(page)

    # the compare page: the name differs, both shown as text
    ui.goto(f"/_workbench/compare?a={first}&b={second}")
    created = page.locator("tr.cmp-op.differs[data-step=CreatePet]", has_text="set").first
    expect(created.locator("tr.d", has_text="name").first).to_contain_text(SHOWN)
    expect(created.locator("tr.d", has_text="name").last).to_contain_text(json.dumps(NAME + " 2"))
    no_script_ran(page)

    # the State page: values and the spans that changed them
    ui.goto("/_workbench/state?group=pets")
    expect(page.get_by_text(SHOWN[1:-1], exact=False).first).to_be_visible()
    no_script_ran(page)

    # home: 'Your request' after sending the form with the markup as the name
    ui.goto("/_workbench/")
    form = page.locator("#featured-form")
    form.get_by_label("Name").fill(NAME)
    form.get_by_role("button", name="Create pet").click()
    expect(form.locator(".tryit-result .result.ok")).to_contain_text("→ 201")
    expect(page.locator("#home-trace")).to_have_attribute("data-status", "completed")
    expect(page.locator("#home-trace")).to_contain_text("set pets")
    no_script_ran(page)
    ui.check()
