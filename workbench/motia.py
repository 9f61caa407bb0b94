"""Motia's spelling of a step config, mapped to ours, so Motia 0.17 Python steps load unchanged.

Our spelling (snake_case keys, `{id}` paths, topic strings) stays the documented one; Motia's is
accepted beside it: camelCase keys, `:id` path segments, `emits` entries as objects with a label
and a `conditional` flag, `queryParams` as `{name, description}` objects, `infrastructure` (mapped
to our timeout, retries and a first-run delay), `includeFiles` (accepted, without effect) and
`middleware`. A key given in both spellings is an error naming both.

A step written in Motia's spelling, or loaded from a project laid out as Motia's (steps in `src/`),
follows Motia's rules at run time as well (`motia_rules`): it may emit topics it does not declare
(delivered, and warned about), and its `ctx.state.get` answers as Motia's does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .step_config import StepError

RENAMED = {  # Motia's key -> ours
    "bodySchema": "body_schema",
    "responseSchema": "response_schema",
    "queryParams": "query_params",
    "virtualEmits": "virtual_emits",
    "virtualSubscribes": "virtual_subscribes",
    "input": "input_schema",
}
MOTIA_ONLY = ("infrastructure", "includeFiles", "middleware")
_EXPRESS_PARAM = re.compile(r"^:([A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class MotiaExtras:
    """What Motia's spelling says beyond our keys."""

    motia_rules: bool = False  # written in Motia's spelling (or from a Motia-style project)
    emit_labels: dict[str, str] = field(default_factory=dict)  # topic -> the edge's label
    conditional_emits: frozenset[str] = frozenset()  # topics emitted only on some runs (dashed edges)
    query_descriptions: dict[str, str] = field(default_factory=dict)
    middleware: tuple[Callable[..., Any], ...] = ()
    first_run_delay_s: float = 0.0  # infrastructure.queue.delaySeconds
    notes: tuple[str, ...] = ()  # keys accepted without effect, shown by `workbench steps`


def express_path(path: str) -> str:
    """`/pets/:id` → `/pets/{id}` (a path already in our spelling is returned as it is)."""
    parts = []
    for part in path.split("/"):
        match = _EXPRESS_PARAM.match(part)
        parts.append("{" + match.group(1) + "}" if match else part)
    return "/".join(parts)


def translate(
    file: Path, config: Mapping[str, Any], *, motia_project: bool = False
) -> tuple[dict[str, Any], MotiaExtras]:
    """Our spelling of `config`, and what Motia's spelling adds; raises `StepError` on a key given
    in both spellings or a Motia-only value of the wrong shape."""
    out = dict(config)
    motia = motia_project
    for theirs, ours in RENAMED.items():
        if theirs in out:
            if ours in out:
                raise StepError(
                    file, theirs, f"given twice, as {theirs!r} (Motia's spelling) and as {ours!r}: keep one"
                )
            out[ours] = out.pop(theirs)
            motia = True
    labels: dict[str, str] = {}
    conditional: set[str] = set()
    for key in ("emits", "virtual_emits"):
        value = out.get(key)
        if isinstance(value, (list, tuple)) and any(isinstance(item, Mapping) for item in value):
            out[key] = [_emit_topic(file, key, item, labels, conditional) for item in value]
            motia = True
    path = out.get("path")
    if isinstance(path, str) and ":" in path:
        out["path"] = express_path(path)
        motia = True
    descriptions: dict[str, str] = {}
    params = out.get("query_params")
    if isinstance(params, (list, tuple)) and any(isinstance(item, Mapping) for item in params):
        names = []
        for item in params:
            if isinstance(item, Mapping):
                name = item.get("name")
                if not isinstance(name, str) or not name:
                    raise StepError(
                        file, "queryParams", f"each entry needs a string 'name', got {dict(item)!r}"
                    )
                names.append(name)
                if isinstance(item.get("description"), str):
                    descriptions[name] = item["description"]
            else:
                names.append(item)
        out["query_params"] = names
        motia = True
    notes: list[str] = []
    delay = 0.0
    if "infrastructure" in out:
        delay = _infrastructure(file, out, out.pop("infrastructure"), notes)
        motia = True
    if "includeFiles" in out:
        included = out.pop("includeFiles")
        if not isinstance(included, (list, tuple)) or not all(isinstance(f, str) for f in included):
            raise StepError(file, "includeFiles", "must be a list of file patterns")
        notes.append("includeFiles has no effect: steps run in-process, next to their files")
        motia = True
    middleware: tuple[Callable[..., Any], ...] = ()
    if "middleware" in out:
        value = out.pop("middleware")
        if out.get("type") != "api":
            raise StepError(file, "middleware", "only API steps take middleware")
        if not isinstance(value, (list, tuple)) or not all(callable(mw) for mw in value):
            raise StepError(file, "middleware", "must be a list of `async def mw(req, ctx, next)` functions")
        middleware = tuple(value)
        motia = True
    return out, MotiaExtras(
        motia_rules=motia,
        emit_labels=labels,
        conditional_emits=frozenset(conditional),
        query_descriptions=descriptions,
        middleware=middleware,
        first_run_delay_s=delay,
        notes=tuple(notes),
    )


def _emit_topic(file: Path, key: str, item: Any, labels: dict[str, str], conditional: set[str]) -> Any:
    if not isinstance(item, Mapping):
        return item  # a topic string: validated with the others
    shown = "emits" if key == "emits" else "virtualEmits"
    unknown = set(item) - {"topic", "label", "conditional"}
    if unknown:
        raise StepError(
            file, shown, f"unknown keys {sorted(unknown)} in {dict(item)!r}; use topic, label, conditional"
        )
    topic = item.get("topic")
    if not isinstance(topic, str):
        raise StepError(file, shown, f"each object needs a string 'topic', got {dict(item)!r}")
    if "label" in item:
        if not isinstance(item["label"], str):
            raise StepError(file, shown, f"'label' of {topic!r} must be a string")
        labels[topic] = item["label"]
    if item.get("conditional"):
        conditional.add(topic)
    return topic


def _infrastructure(file: Path, out: dict[str, Any], value: Any, notes: list[str]) -> float:
    """`{"handler": {"timeout"}, "queue": {"maxRetries", "visibilityTimeout", "delaySeconds"}}`:
    the timeout and the retries go to our keys; returns the first-run delay."""
    key = "infrastructure"
    if out.get("type") not in ("event", "cron"):
        raise StepError(file, key, "only event and cron steps run on the queue")
    if not isinstance(value, Mapping) or set(value) - {"handler", "queue"}:
        raise StepError(file, key, 'must be {"handler": {"timeout"}, "queue": {"maxRetries", ...}}')
    handler = value.get("handler") or {}
    queue = value.get("queue") or {}
    if not isinstance(handler, Mapping) or set(handler) - {"timeout", "ram", "cpu"}:
        raise StepError(file, key, f"handler: unknown keys in {handler!r}; use timeout")
    if not isinstance(queue, Mapping) or set(queue) - {
        "type",
        "maxRetries",
        "visibilityTimeout",
        "delaySeconds",
    }:
        raise StepError(
            file, key, f"queue: unknown keys in {queue!r}; use maxRetries, visibilityTimeout, delaySeconds"
        )
    for resource in ("ram", "cpu"):
        if resource in handler:
            notes.append(f"infrastructure.handler.{resource} has no effect: steps share their worker process")
    if "timeout" in handler:
        if "timeout" in out:
            raise StepError(file, key, "handler.timeout and 'timeout' are both given: keep one")
        out["timeout"] = handler["timeout"]
    if "maxRetries" in queue:
        retries = queue["maxRetries"]
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise StepError(file, key, f"queue.maxRetries must be a whole number ≥ 0, got {retries!r}")
        if "retries" in out:
            raise StepError(file, key, "queue.maxRetries and 'retries' are both given: keep one")
        out["retries"] = max(1, retries)  # Motia's queues count every attempt, the first included, as ours
    if "visibilityTimeout" in queue:
        notes.append(
            "infrastructure.queue.visibilityTimeout has no effect: a running job's lease is renewed "
            "while it runs (WORKBENCH_LEASE), so a long job is never handed to a second worker"
        )
    if "type" in queue and queue["type"] not in ("standard", "fifo"):
        raise StepError(file, key, f"queue.type must be standard or fifo, got {queue['type']!r}")
    if queue.get("type") == "fifo":
        notes.append(
            "infrastructure.queue.type fifo is not kept: jobs run in the order they are due, but several "
            "at a time (WORKBENCH_CONCURRENCY) and retries wait their backoff"
        )
    delay = queue.get("delaySeconds", 0)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
        raise StepError(file, key, f"queue.delaySeconds must be a number ≥ 0, got {delay!r}")
    return float(delay)
