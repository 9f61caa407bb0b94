"""web/forms.py: form fields and example bodies from a step's schema, and the home page's quick form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import msgspec
import pytest
from pydantic import BaseModel, Field

from workbench.registry import Registry
from workbench.step_config import ApiStep, EventStep
from workbench.web.forms import (
    QuickForm,
    example_body,
    example_json,
    featured_step,
    humanize,
    schema_fields,
    topic_example,
)


class Order(BaseModel):
    customerName: str = Field(examples=["Ada"])
    size: Literal["S", "M", "L"]
    quantity: int = Field(ge=1)
    note: str | None = None
    colour: Literal["red", "blue"] | None = Field(default=None, examples=["blue"])


class Plain(msgspec.Struct):
    name: str


def api(name: str, method: str = "POST", body: Any = Order, description: str = "") -> ApiStep:
    return ApiStep(name=name, file=Path(f"{name}.py"), method=method, path=f"/{name.lower()}",
                   body_schema=body, description=description)  # fmt: skip


@pytest.mark.parametrize(
    ("name", "words"),
    [("ageMonths", "Age months"), ("CreateOrder", "Create order"), ("next_run_at", "Next run at"),
     ("id", "Id"), ("HTTPCode", "Httpcode"), ("", "")],
)  # fmt: skip
def test_humanize(name: str, words: str) -> None:
    assert humanize(name) == words


def test_fields_of_a_pydantic_body() -> None:
    fields = {f.name: f for f in schema_fields(Order)}
    assert list(fields) == ["customerName", "size", "quantity", "note", "colour"]
    name, size, quantity, note, colour = fields.values()
    assert (name.label, name.type, name.required, name.example) == ("Customer name", "text", True, "Ada")
    assert (size.type, size.options, size.required) == ("select", ["S", "M", "L"], True)
    assert (quantity.type, quantity.min, quantity.example) == ("number", 1, None)
    assert (note.type, note.required) == ("text", False)  # `str | None`: the string side
    assert (colour.type, colour.options, colour.required) == ("select", ["red", "blue"], False)


def test_example_body_has_required_and_exemplified_fields() -> None:
    body = json.loads(example_body(api("CreateOrder")))
    # a required field without an example: its first option, else ""; optional ones only with an example
    assert body == {"customerName": "Ada", "size": "S", "quantity": "", "colour": "blue"}


def test_bodies_without_a_json_schema_give_no_form() -> None:
    assert schema_fields(Plain) == [] and example_json(Plain) == ""
    assert schema_fields(None) == [] and example_json(None) == ""


def registry_of(*steps: Any) -> Registry:
    registry = Registry(steps_dir=Path("steps"))
    for step in steps:
        registry.add(step)
    return registry


def test_the_quick_form_is_the_first_post_with_a_body_labelled_from_its_step() -> None:
    registry = registry_of(
        api("ListOrders", method="GET", body=None),
        api("Ping", body=None),
        api("PlaceOrder", description="Order something; it ships tomorrow."),
        api("CancelOrder"),
    )
    step = featured_step(registry)
    assert step is not None and step.name == "PlaceOrder"
    form = QuickForm.of(step)
    assert (form.title, form.submit) == ("Order something", "Place order")
    assert [f.name for f in form.fields] == ["customerName", "size", "quantity", "note", "colour"]
    # no description: the heading is the step's name in words
    assert QuickForm.of(api("CancelOrder")).title == "Cancel order"
    assert featured_step(registry_of(api("Ping", body=None))) is None


def test_an_emit_example_comes_from_a_subscriber_input_schema() -> None:
    def subscriber(name: str, schema: Any) -> EventStep:
        return EventStep(
            name=name, file=Path(f"{name}.py"), subscribes=("order.placed",), input_schema=schema
        )

    registry = registry_of(subscriber("Audit", None), subscriber("Ship", Order))
    assert json.loads(topic_example(registry, "order.placed"))["customerName"] == "Ada"
    assert topic_example(registry, "nobody.listens") == "{}"


def test_a_json_schema_dict_gives_the_same_fields() -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "examples": ["Ada"]}, "size": {"enum": ["S", "M"]}},
        "required": ["name", "size"],
    }
    assert [(f.name, f.type, f.required) for f in schema_fields(schema)] == [
        ("name", "text", True), ("size", "select", True),
    ]  # fmt: skip
    assert json.loads(example_json(schema)) == {"name": "Ada", "size": "S"}


class Booking(BaseModel):
    guests: int = Field(default=2, ge=1)
    room: Literal["single", "double"] = "double"
    name: str = Field(examples=["Ada"], default="guest")
    note: str | None = None


def test_a_field_starts_with_its_example_else_its_default_as_a_value() -> None:
    fields = {f.name: f for f in schema_fields(Booking)}
    assert fields["guests"].initial == 2 and fields["room"].initial == "double"
    assert fields["name"].initial == "Ada"  # the example wins over the default
    assert fields["note"].initial is None  # nothing to start with: left empty, not sent
    body = json.loads(example_json(Booking))
    assert body == {"guests": 2, "room": "double", "name": "Ada"}
    # an OpenAPI-style single `example` counts too
    schema = {"type": "object", "properties": {"n": {"type": "integer", "example": 5}}}
    assert schema_fields(schema)[0].initial == 5


def test_the_home_form_is_filled_with_values_not_placeholders() -> None:
    from workbench.ui_files import ui_dir
    from workbench.web.pages import URLS
    from workbench.web.templating import environment

    env = environment(ui_dir("templates"), URLS)
    form = QuickForm.of(api("Book", body=Booking))
    html = env.get_template("home.html").render(
        form=form, traces=[], logs=[], trace_cap=12, log_cap=20, feed_id="0-0", now=0
    )
    assert 'name="guests" type="number" data-type="number"' in html and 'value="2"' in html
    assert 'value="Ada"' in html and "placeholder" not in html
    assert "<option selected>double</option>" in html
