"""Replay, Run again and Save as test on the trace page, in Chromium against a real web process and worker
(the `stack` fixture). User text in the editors is escaped: the pet's name is an injected image."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import expect

from . import test_ui
from .conftest import Stack
from .test_ui import UI, XSS_NAME, create_pet, wait_trace

browser, open_ui = test_ui.browser, test_ui.open_ui  # the browser fixtures of test_ui.py

SHOTS = Path("/work/notes/shots")


def shot(ui: UI, name: str) -> None:
    if SHOTS.is_dir():
        ui.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    ui.screenshot(name)


def test_replay_with_an_edited_body_opens_the_new_trace(stack: Stack, open_ui: Callable[..., UI]) -> None:
    _, trace_id = create_pet(stack, name=XSS_NAME)
    wait_trace(stack, trace_id)
    ui = open_ui(stack.url)
    ui.goto(f"/_workbench/traces/{trace_id}")
    page = ui.page
    page.get_by_role("button", name="Replay", exact=True).click()
    body = page.locator("#replay-editor textarea[name=body]")
    expect(body).to_be_visible()
    assert XSS_NAME in body.input_value()  # shown as text, not markup
    body.fill(body.input_value().replace(XSS_NAME, "Rex <b>edited</b>"))
    shot(ui, "replay-editor")
    page.get_by_role("button", name="Send as a new trace").click()
    page.wait_for_url(lambda url: trace_id not in url)
    new_id = page.url.rsplit("/", 1)[1]
    expect(page.locator(".replay-of")).to_contain_text("replay of")
    expect(page.locator(".replay-of a").first).to_have_attribute("href", f"/_workbench/traces/{trace_id}")
    new = wait_trace(stack, new_id)
    assert new["replayOf"] == trace_id
    request = next(s for s in new["spanList"] if s["step"] == "CreatePet")["exchange"]["request"]
    assert "Rex <b>edited</b>" in request["body"]
    page.reload()
    expect(page.locator(".trace-head")).to_contain_text("completed")
    shot(ui, "replayed-trace")
    # one click compares it with the original
    page.get_by_role("link", name="Compare with original").click()
    page.wait_for_url(re.compile(r"/_workbench/compare\?a="))
    assert f"a={trace_id}" in page.url and f"b={new_id}" in page.url
    shot(ui, "replay-compare")
    # the original lists it
    ui.goto(f"/_workbench/traces/{trace_id}")
    expect(page.locator(".replays a")).to_have_attribute("href", f"/_workbench/traces/{new_id}")
    # a bad edit is refused in place, naming the field, escaped
    page.get_by_role("button", name="Replay", exact=True).click()
    page.locator("#replay-editor textarea[name=headers]").fill("no colon <img src=x>")
    page.get_by_role("button", name="Send as a new trace").click()
    expect(page.locator("#replay-editor .wb-action-result")).to_contain_text("headers: line 1")
    ui.check()


def test_run_again_and_save_as_test(stack: Stack, open_ui: Callable[..., UI], tmp_path: Path) -> None:
    _, trace_id = create_pet(stack, name="Jack")
    trace = wait_trace(stack, trace_id)
    span = next(s for s in trace["spanList"] if s["step"] == "SetNextFeedingReminder")
    ui = open_ui(stack.url, accept_downloads=True)
    ui.goto(f"/_workbench/traces/{trace_id}?span={span['id']}")
    page = ui.page
    rerun = page.locator(".rerun-panel")
    expect(rerun.locator("textarea[name=data]")).to_have_value(
        re.compile(r'"petId": "1",\s+"enqueuedAt": \d+')
    )
    rerun.locator("summary").click()  # the input it had, shown
    shot(ui, "run-again")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Save as test").click()
    download = download_info.value
    assert download.suggested_filename.startswith("test_post_pets_")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert "def test_post_pets_as_recorded(workbench: Harness)" in saved.read_text()
    page.get_by_role("button", name="Copy as curl").click()
    expect(page.locator("#curl-text")).to_be_visible()
    expect(page.locator("#curl-text")).to_contain_text("curl -X POST")
    rerun.get_by_role("button", name="Run again").click()
    page.wait_for_url(lambda url: trace_id not in url)
    new_id = page.url.rsplit("/", 1)[1]
    new = wait_trace(stack, new_id)
    assert new["entry"] == "SetNextFeedingReminder" and new["replayKind"] == "rerun"
    expect(page.locator(".replay-of")).to_contain_text("rerun of")
    ui.check()
