"""Debugging in the browser (Chromium, as tests/test_ui.py drives it): the home form sent as it comes
and its request followed in place, state diffs in a span, the State page's "changed by", and two
traces compared with their difference highlighted. A real web process and worker (`stack`)."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import expect

from .conftest import Stack
from .test_ui import UI, XSS_NAME, api_get, browser, create_pet, expect_live, open_ui, wait_trace

__all__ = ["browser", "open_ui"]  # the fixtures, used by name


def test_home_form_is_prefilled_submits_as_is_and_follows_its_request(
    stack: Stack, open_ui: Callable[..., UI]
) -> None:
    ui = open_ui(stack.url)
    page = ui.page
    ui.goto("/_workbench/")
    expect_live(ui)
    form = page.locator("#featured-form")
    # the schema's examples are values, not placeholders: the form can be sent untouched
    expect(form.get_by_label("Name")).to_have_value("Jack")
    expect(form.get_by_label("Age")).to_have_value("24")
    expect(form.get_by_label("Species")).to_have_value("dog")
    assert form.locator("[placeholder]").count() == 0
    form.get_by_role("button", name="Create pet").click()
    expect(form.locator(".tryit-result .result.ok")).to_contain_text("→ 201")
    trace_id = wait_trace(stack, api_get(stack, "/_workbench/api/traces")["traces"][0]["id"])["id"]

    # "Your request": that trace, its steps and what they did, until it has completed
    panel = page.locator("#home-trace")
    expect(panel).to_have_attribute("data-trace", trace_id)
    expect(panel).to_have_attribute("data-status", "completed")
    expect(panel.locator(".home-step[data-step=CreatePet]")).to_contain_text("set pets / 1")
    expect(panel.locator(".home-step[data-step=SetNextFeedingReminder]")).to_contain_text(
        "Next feeding reminder set"
    )
    # ... and its row is first in the recent traces, marked
    expect(page.locator("#home-traces > tr").first).to_have_id(f"trace-{trace_id}")
    expect(page.locator(f"#trace-{trace_id}")).to_have_class(re.compile(r"\bmine\b"))
    ui.assert_not_reloaded()
    # a reload of the tab keeps it
    page.reload()
    expect(page.locator("#home-trace")).to_have_attribute("data-trace", trace_id)
    assert [p["name"] for p in api_get(stack, "/pets")["pets"]] == ["Jack"]


def test_a_span_shows_its_state_diff_field_by_field(stack: Stack, open_ui: Callable[..., UI]) -> None:
    _, trace_id = create_pet(stack, name=XSS_NAME)
    wait_trace(stack, trace_id)
    ui = open_ui(stack.url)
    page = ui.page
    ui.goto(f"/_workbench/traces/{trace_id}")
    page.locator(".waterfall .wf-row", has_text="SetNextFeedingReminder").click()
    diff = page.locator("#span-detail tr.ev-state", has_text="update").locator("table.state-diff")
    expect(diff.locator("tr.added", has_text="notes")).to_contain_text("First feeding check")
    expect(diff.locator("tr.added", has_text="nextFeedingAt")).to_have_count(1)
    expect(diff.locator("tr.changed", has_text="updatedAt")).to_contain_text("→")
    expect(diff.locator("tr.same", has_text="name")).to_contain_text(XSS_NAME)  # as text, never markup
    # the API span: the pet set where nothing was (before: absent), the counter from 0 to 1
    page.locator(".waterfall .wf-row", has_text="CreatePet").click()
    created = page.locator("#span-detail tr.ev-state", has_text="set pets / 1")
    expect(created.locator(".state-diff.whole .absent")).to_have_text("(absent)")
    counter = page.locator("#span-detail tr.ev-state", has_text="increment").locator(".state-diff.inline")
    expect(counter).to_have_text("0 → 1")
    ui.check()


def test_the_state_page_lists_the_spans_that_changed_each_key(
    stack: Stack, open_ui: Callable[..., UI]
) -> None:
    pet_id, trace_id = create_pet(stack)
    wait_trace(stack, trace_id)
    ui = open_ui(stack.url)
    page = ui.page
    ui.goto("/_workbench/state?group=pets")
    changes = page.locator(f"tr[data-key='{pet_id}'] td.changes .change")
    expect(changes).to_have_count(3)  # newest first: the orchestrator's update, the reminder's, the creation
    expect(changes.first).to_contain_text("PetLifecycleOrchestrator")
    expect(changes.last).to_contain_text("CreatePet · set")
    changes.last.get_by_role("link", name="CreatePet").click()
    expect(page).to_have_url(re.compile(rf"/_workbench/traces/{trace_id}\?span="))
    expect(page.locator("#span-detail h2")).to_contain_text("CreatePet")


def test_two_traces_compared_with_the_difference_highlighted(
    stack: Stack, open_ui: Callable[..., UI]
) -> None:
    _, first = create_pet(stack, name="Jack", species="dog")
    _, second = create_pet(stack, name="Jack", species="cat")
    wait_trace(stack, first)
    wait_trace(stack, second)
    ui = open_ui(stack.url)
    page = ui.page
    ui.goto("/_workbench/traces")
    compare = page.get_by_role("button", name="Compare")
    expect(compare).to_be_disabled()
    page.locator(f"#trace-{first} input.pick").check()
    page.locator(f"#trace-{second} input.pick").check()
    compare.click()
    expect(page).to_have_url(re.compile(rf"/_workbench/compare\?a={first}&b={second}$"))
    # the pet set by CreatePet differs in its species (and its id); the same fields are folded
    created = page.locator("tr.cmp-op.differs[data-step=CreatePet]", has_text="set")
    expect(created.locator("table.cmp-fields tr.d", has_text="species").first).to_contain_text('"dog"')
    expect(created.locator("table.cmp-fields tr.d", has_text="species").last).to_contain_text('"cat"')
    expect(created.locator("tr.d", has_text="name")).to_have_count(0)
    expect(page.locator(".cmp-count")).to_contain_text("highlighted")
    # from a trace page: Compare with… another trace of the same entry
    ui.goto(f"/_workbench/traces/{first}")
    page.get_by_role("link", name="Compare with…").click()
    page.locator(".cmp-pick tr", has_text=second[-10:]).get_by_role("link", name="Compare").click()
    expect(page).to_have_url(re.compile(rf"/_workbench/compare\?a={first}&b={second}$"))
    expect(page.locator("table.cmp-spans")).to_be_visible()
