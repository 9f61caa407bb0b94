"""Forms from schemas: the home page's quick form and the example bodies of Endpoints and Emit.

A body schema given as a pydantic model or as a JSON Schema dict gives fields; a msgspec Struct
(or no schema) gives none and an empty example.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..registry import Registry
from ..step_config import ApiStep


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    type: str  # text | number | select
    options: list[Any]
    required: bool
    example: Any
    min: Any
    default: Any = None  # the schema's default

    @property
    def initial(self) -> Any:
        """What the field starts with: the schema's example, else its default (None: empty). A value,
        never a placeholder: a placeholder looks filled in but is sent as nothing."""
        return self.example if self.example is not None else self.default


def json_schema(model: Any) -> dict[str, Any] | None:
    """The JSON Schema of a body: a pydantic model's, or the schema itself when given as a dict."""
    if isinstance(model, Mapping):
        return dict(model)
    if model is None or not hasattr(model, "model_json_schema"):
        return None
    schema: dict[str, Any] = model.model_json_schema()
    return schema


def schema_fields(model: Any) -> list[Field]:
    """Inputs for a model: text, number or a select for enums, with the schema's examples."""
    schema = json_schema(model)
    if schema is None:
        return []
    required = set(schema.get("required", []))
    fields = []
    for name, prop in schema.get("properties", {}).items():
        options = prop.get("enum")
        if options is None:
            for alt in prop.get("anyOf", []):
                options = options or alt.get("enum")
        kind = prop.get("type") or next(
            (a.get("type") for a in prop.get("anyOf", []) if a.get("type") != "null"), "string"
        )
        fields.append(
            Field(
                name=name,
                label=humanize(name),
                type="select" if options else ("number" if kind in ("integer", "number") else "text"),
                options=options or [],
                required=name in required,
                example=(prop.get("examples") or [prop.get("example")])[0],
                min=prop.get("minimum"),
                default=prop.get("default"),
            )
        )
    return fields


def form_fields(step: ApiStep) -> list[Field]:
    return schema_fields(step.body_schema)


def humanize(name: str) -> str:
    """`ageMonths` → `Age months`, `CreatePet` → `Create pet`: camelCase and snake_case into words."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").split()
    return " ".join([words[0].capitalize(), *(w.lower() for w in words[1:])]) if words else name


def example_json(model: Any) -> str:
    """A body to start from: each required field, and each with an example or a default, with its
    example (else its default, else the first option, else "")."""
    body = {f.name: f.initial if f.initial is not None else (f.options[0] if f.options else "")
            for f in schema_fields(model) if f.required or f.initial is not None}  # fmt: skip
    return json.dumps(body, indent=2) if body else ""


def example_body(step: ApiStep) -> str:
    return example_json(step.body_schema)


def topic_example(registry: Registry, topic: str) -> str:
    """A payload for `topic`: the example of its first subscriber's input schema, else `{}`."""
    for step in registry.subscribers_of(topic):
        if example := example_json(getattr(step, "input_schema", None)):
            return example
    return "{}"


def featured_step(registry: Registry) -> ApiStep | None:
    """The home page's quick form: the first POST endpoint with a body schema."""
    for step in registry.api_steps():
        if step.method == "POST" and step.body_schema is not None:
            return step
    return None


@dataclass(frozen=True)
class QuickForm:
    """A step as a form: its heading (the first clause of its description, else its name in words)
    and its button (its name in words)."""

    step: ApiStep
    title: str
    submit: str
    fields: list[Field]

    @classmethod
    def of(cls, step: ApiStep) -> QuickForm:
        clause = re.split(r"[;.]", step.description, maxsplit=1)[0].strip()
        return cls(step, clause or humanize(step.name), humanize(step.name), form_fields(step))
