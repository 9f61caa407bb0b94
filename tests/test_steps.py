"""Step discovery and validation: `discover(dir)` turns `*_step.py` files into a registry, or raises a
`StepError` that names the file and the config key at fault."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workbench.registry import Registry, discover
from workbench.step_config import ApiStep, CronStep, EventStep, NoopStep, RetryPolicy, StepError

from .conftest import PET_STEPS, write_step

API_HANDLER = "async def handler(request, ctx):\n    return None\n"
EVENT_HANDLER = "async def handler(data, ctx):\n    return None\n"
CRON_HANDLER = "async def handler(ctx):\n    return None\n"
HANDLERS = {"api": API_HANDLER, "event": EVENT_HANDLER, "cron": CRON_HANDLER, "noop": ""}

API = {"type": "api", "name": "Thing", "method": "GET", "path": "/things"}
EVENT = {"type": "event", "name": "OnThing", "subscribes": ["thing.created"]}
CRON = {"type": "cron", "name": "Nightly", "cron": "0 2 * * *"}
BASES = {"api": API, "event": EVENT, "cron": CRON}


def source(config: dict[str, Any], handler: str | None = None) -> str:
    """A step file: `config` as a literal, then the handler for its kind (unless one is given)."""
    if handler is None:
        handler = HANDLERS.get(str(config.get("type")), "")
    return f"config = {config!r}\n\n\n{handler}"


@pytest.fixture(autouse=True)
def _isolate_imports(tmp_path: Path) -> Iterator[None]:
    """discover() adds the steps folder (and its parent) to sys.path and registers the step modules,
    named from the project folder (`steps.pets.create_pet_step`): undo both."""
    path = list(sys.path)
    modules = set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if name.split(".")[0] in (tmp_path.name, "steps"):
            del sys.modules[name]


def broken(tmp_path: Path, config: dict[str, Any], handler: str | None = None) -> tuple[StepError, Path]:
    """Write one step file and return the StepError discovery raises for it."""
    file = write_step(tmp_path, "broken", source(config, handler))
    with pytest.raises(StepError) as info:
        discover(tmp_path)
    return info.value, file


def assert_names(exc: StepError, file: Path, key: str | None) -> None:
    file = file.resolve()  # discover() resolves the steps folder
    assert exc.file == str(file)
    assert exc.key == key
    text = str(exc)
    assert str(file) in text
    if key is not None:
        assert f"config[{key!r}]" in text
    else:
        assert "config[" not in text
    expected = f"{file}: {exc.reason}" if key is None else f"{file}: config[{key!r}]: {exc.reason}"
    assert text == expected


# --- StepError itself ------------------------------------------------------------------------------------


def test_step_error_format() -> None:
    exc = StepError(Path("/x/a_step.py"), "path", "is wrong")
    assert (exc.file, exc.key, exc.reason) == ("/x/a_step.py", "path", "is wrong")
    assert str(exc) == "/x/a_step.py: config['path']: is wrong"
    assert str(StepError("/x/a_step.py", None, "cannot be imported")) == "/x/a_step.py: cannot be imported"


# --- unknown and missing keys ----------------------------------------------------------------------------


def test_unknown_config_key(tmp_path: Path) -> None:
    exc, file = broken(tmp_path, {**API, "colour": "red"})
    assert_names(exc, file, "colour")
    assert "unknown key for a api step" in exc.reason
    assert "path" in exc.reason and "query_params" in exc.reason  # the allowed keys are listed


def test_misspelled_key_is_reported_before_the_missing_one(tmp_path: Path) -> None:
    config = {"type": "event", "name": "OnThing", "subscribe": ["thing.created"]}
    exc, file = broken(tmp_path, config)
    assert_names(exc, file, "subscribe")


def test_key_of_another_kind_is_unknown(tmp_path: Path) -> None:
    exc, file = broken(tmp_path, {**CRON, "subscribes": ["a.b"]})
    assert_names(exc, file, "subscribes")
    assert "cron step" in exc.reason


@pytest.mark.parametrize(
    ("kind", "missing"),
    [("api", "path"), ("api", "method"), ("api", "name"), ("event", "subscribes"), ("cron", "cron")],
)
def test_missing_required_key(tmp_path: Path, kind: str, missing: str) -> None:
    config = {k: v for k, v in BASES[kind].items() if k != missing}
    exc, file = broken(tmp_path, config)
    assert_names(exc, file, missing)
    assert exc.reason.startswith("missing")


def test_missing_type(tmp_path: Path) -> None:
    exc, file = broken(tmp_path, {"name": "Thing", "path": "/things", "method": "GET"}, API_HANDLER)
    assert_names(exc, file, "type")
    assert "missing" in exc.reason and "api, event, cron, noop" in exc.reason


def test_unknown_type(tmp_path: Path) -> None:
    exc, file = broken(tmp_path, {**API, "type": "webhook"}, API_HANDLER)
    assert_names(exc, file, "type")
    assert "'webhook' is not one of" in exc.reason


def test_missing_config_entirely(tmp_path: Path) -> None:
    file = write_step(tmp_path, "broken", API_HANDLER)
    with pytest.raises(StepError) as info:
        discover(tmp_path)
    assert_names(info.value, file, "config")
    assert "module-level `config` dict" in str(info.value)


def test_config_not_a_dict(tmp_path: Path) -> None:
    file = write_step(tmp_path, "broken", "config = [('type', 'noop')]\n")
    with pytest.raises(StepError) as info:
        discover(tmp_path)
    assert_names(info.value, file, None)
    assert "`config` must be a dict" in str(info.value)


# --- wrong types -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [42, None, ["Thing"]])
def test_name_not_a_string(tmp_path: Path, name: object) -> None:
    exc, file = broken(tmp_path, {**API, "name": name})
    assert_names(exc, file, "name")
    assert "must be a string" in exc.reason


@pytest.mark.parametrize("name", ["", "has space", "1st", "bad/name"])
def test_name_not_valid(tmp_path: Path, name: str) -> None:
    exc, file = broken(tmp_path, {**API, "name": name})
    assert_names(exc, file, "name")
    assert "not a valid step name" in exc.reason


@pytest.mark.parametrize(
    ("kind", "key", "value", "reason"),
    [
        ("api", "emits", "pet.created", "must be a list of strings, got str"),
        ("api", "emits", {"pet.created": 1}, "must be a list of strings, got dict"),
        ("api", "emits", ["pet.created", 3], "3 is not a valid topic name"),
        ("api", "emits", ["has space"], "'has space' is not a valid topic name"),
        ("api", "flows", "pets", "must be a list of strings"),
        ("api", "query_params", "includeDeleted", "must be a list of strings"),
        ("event", "subscribes", "thing.created", "must be a list of strings"),
        ("event", "virtual_emits", "x.y", "must be a list of strings"),
        ("api", "description", 5, "must be a string, got int"),
        ("api", "method", 1, "must be a string, got int"),
        ("api", "path", None, "must be a string, got NoneType"),
    ],
)
def test_wrong_type(tmp_path: Path, kind: str, key: str, value: object, reason: str) -> None:
    exc, file = broken(tmp_path, {**BASES[kind], key: value})
    assert_names(exc, file, key)
    assert reason in exc.reason


@pytest.mark.parametrize("kind", ["event", "cron"])
@pytest.mark.parametrize("timeout", [-1, 0, "10s", True, None, [5]])
def test_timeout_invalid(tmp_path: Path, kind: str, timeout: object) -> None:
    exc, file = broken(tmp_path, {**BASES[kind], "timeout": timeout})
    assert_names(exc, file, "timeout")
    assert "must be a number ≥ 0.001" in exc.reason


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("timeout", "math.nan", "must be a number ≥ 0.001, got nan"),
        ("retries", "{'backoff': math.nan}", "must be a number ≥ 0, got nan"),
    ],
)
def test_nan_is_not_a_number_of_seconds(tmp_path: Path, key: str, value: str, reason: str) -> None:
    file = write_step(
        tmp_path, "broken", f"import math\n\nconfig = {{**{EVENT!r}, {key!r}: {value}}}\n\n\n{EVENT_HANDLER}"
    )
    with pytest.raises(StepError) as info:
        discover(tmp_path)
    assert_names(info.value, file, key)
    assert reason in info.value.reason


@pytest.mark.parametrize("kind", ["event", "cron"])
@pytest.mark.parametrize(
    ("retries", "reason"),
    [
        (0, "must be at least 1 attempt, got 0"),
        (-2, "must be at least 1 attempt"),
        ("3", "must be a number of attempts or a dict, got str"),
        (2.5, "must be a number of attempts or a dict, got float"),
        (True, "must be a number of attempts or a dict, got bool"),
        ([3], "must be a number of attempts or a dict, got list"),
        ({"attempts": 0}, "attempts must be a whole number ≥ 1, got 0"),
        ({"attempts": "3"}, "attempts must be a whole number ≥ 1, got '3'"),
        ({"attempts": True}, "attempts must be a whole number ≥ 1, got True"),
        ({"attempts": 2.0}, "attempts must be a whole number ≥ 1, got 2.0"),
        ({"tries": 3}, "unknown keys ['tries']"),
        ({"backoff": -1}, "must be a number ≥ 0, got -1"),
        ({"max_backoff": "30s"}, "must be a number ≥ 0, got '30s'"),
    ],
)
def test_retries_malformed(tmp_path: Path, kind: str, retries: object, reason: str) -> None:
    exc, file = broken(tmp_path, {**BASES[kind], "retries": retries})
    assert_names(exc, file, "retries")
    assert reason in exc.reason


def test_retries_not_allowed_on_api_steps(tmp_path: Path) -> None:
    exc, file = broken(tmp_path, {**API, "retries": 3})
    assert_names(exc, file, "retries")
    assert "unknown key" in exc.reason


# --- cron expressions and time zones ---------------------------------------------------------------------


@pytest.mark.parametrize("expr", ["61 * * * *", "* * *", "every day", "* * * * 8", "0 0 0 * * * *"])
def test_bad_cron_expression(tmp_path: Path, expr: str) -> None:
    exc, file = broken(tmp_path, {**CRON, "cron": expr})
    assert_names(exc, file, "cron")
    assert repr(expr) in exc.reason


def test_cron_not_a_string(tmp_path: Path) -> None:
    exc, file = broken(tmp_path, {**CRON, "cron": 5})
    assert_names(exc, file, "cron")
    assert "must be a string, got int" in exc.reason


def test_cron_that_never_fires_is_refused(tmp_path: Path) -> None:
    # (not `match="cron"`: the tmp_path of this test has "cron" in it, so that would always match)
    exc, file = broken(tmp_path, {**CRON, "cron": "0 0 30 2 *"})
    assert_names(exc, file, "cron")
    assert "'0 0 30 2 *'" in exc.reason


@pytest.mark.parametrize("zone", ["Mars/Base", "Europe/berlin", "UTC+1"])
def test_bad_time_zone(tmp_path: Path, zone: str) -> None:
    exc, file = broken(tmp_path, {**CRON, "timezone": zone})
    assert_names(exc, file, "timezone")
    assert f"unknown time zone {zone!r}" in exc.reason


def test_time_zone_not_a_string(tmp_path: Path) -> None:
    exc, file = broken(tmp_path, {**CRON, "timezone": 1})
    assert_names(exc, file, "timezone")
    assert "must be a string, got int" in exc.reason


def test_timezone_key_not_allowed_on_event_steps(tmp_path: Path) -> None:
    exc, file = broken(tmp_path, {**EVENT, "timezone": "UTC"})
    assert_names(exc, file, "timezone")
    assert "unknown key" in exc.reason


# --- conflicts between files -----------------------------------------------------------------------------


def test_duplicate_step_name_across_files(tmp_path: Path) -> None:
    first = write_step(tmp_path, "a_first", source({**API, "name": "Same"}))
    second = write_step(tmp_path, "b_second", source({**EVENT, "name": "Same"}))
    with pytest.raises(StepError) as info:
        discover(tmp_path)
    assert_names(info.value, second, "name")  # files are loaded in sorted order: the second one is at fault
    assert f"step name 'Same' is already used by {first}" in info.value.reason


def test_duplicate_step_name_in_a_sub_folder(tmp_path: Path) -> None:
    write_step(tmp_path, "a", source({**CRON, "name": "Same"}))
    nested = write_step(tmp_path / "z", "b", source({**CRON, "name": "Same"}))
    with pytest.raises(StepError) as info:
        discover(tmp_path)
    assert_names(info.value, nested, "name")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("GET", "/pets"), ("GET", "/pets")),
        (("GET", "/pets/{id}"), ("GET", "/pets/{petId}")),
        (("PUT", "/pets/{id}/notes"), ("PUT", "/pets/{pet_id}/notes")),
        (("POST", "/pets"), ("post", "/pets")),
        (("GET", "/pets"), ("GET", "/pets/")),
    ],
)
def test_two_api_steps_on_the_same_route(
    tmp_path: Path, first: tuple[str, str], second: tuple[str, str]
) -> None:
    write_step(tmp_path, "a", source({**API, "name": "A", "method": first[0], "path": first[1]}))
    file = write_step(tmp_path, "b", source({**API, "name": "B", "method": second[0], "path": second[1]}))
    with pytest.raises(StepError) as info:
        discover(tmp_path)
    assert_names(info.value, file, "path")
    assert f"{second[0].upper()} {second[1]} is already served by A" in info.value.reason


def test_same_path_with_another_method_is_fine(tmp_path: Path) -> None:
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    for i, method in enumerate(methods):
        write_step(
            tmp_path, f"s{i}", source({**API, "name": f"S{i}", "method": method, "path": "/pets/{id}"})
        )
    write_step(tmp_path, "other", source({**API, "name": "Other", "path": "/pets/{id}/photo"}))
    registry = discover(tmp_path)
    assert sorted(s.method for s in registry.api_steps() if s.path == "/pets/{id}") == sorted(methods)
    assert len(registry) == 6


# --- handlers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "handler", "expected"),
    [
        ("api", "async def handler(request):\n    pass\n", "(request, ctx); it takes 1 parameters"),
        ("api", "async def handler():\n    pass\n", "(request, ctx); it takes 0 parameters"),
        ("event", "async def handler(data, ctx, extra):\n    pass\n", "(data, ctx); it takes 3 parameters"),
        ("event", "async def handler(*args):\n    pass\n", "(data, ctx); it takes 0 parameters"),
        ("cron", "async def handler(ctx, extra):\n    pass\n", "(ctx); it takes 2 parameters"),
        ("cron", "async def handler():\n    pass\n", "(ctx); it takes 0 parameters"),
    ],
)
def test_wrong_handler_signature(tmp_path: Path, kind: str, handler: str, expected: str) -> None:
    exc, file = broken(tmp_path, BASES[kind], handler)
    assert_names(exc, file, None)  # the handler is not a config key
    assert exc.reason == f"handler must take {expected}"


def test_sync_api_handler(tmp_path: Path) -> None:
    # an API handler runs in the web process's event loop: a plain `def` would block it
    sync = HANDLERS["api"].replace("async def", "def")
    exc, file = broken(tmp_path, BASES["api"], sync)
    assert_names(exc, file, None)
    assert exc.reason == "handler must be an `async def` function"


@pytest.mark.parametrize("kind", ["event", "cron"])
def test_sync_background_handler_is_accepted(tmp_path: Path, kind: str) -> None:
    # a background handler may be a plain `def`: the worker runs it in a thread (test_worker_stall)
    write_step(tmp_path, "plain", source(BASES[kind], HANDLERS[kind].replace("async def", "def")))
    [step] = list(discover(tmp_path))
    assert step.kind == kind and not inspect.iscoroutinefunction(step.handler)


def test_handler_not_a_function(tmp_path: Path) -> None:
    exc, file = broken(tmp_path, EVENT, "handler = 'not callable'\n")
    assert_names(exc, file, None)
    assert "async def" in exc.reason


@pytest.mark.parametrize(
    ("kind", "shown"),
    [("api", "('request', 'ctx')"), ("event", "('data', 'ctx')"), ("cron", "('ctx',)")],
)
def test_missing_handler(tmp_path: Path, kind: str, shown: str) -> None:
    exc, file = broken(tmp_path, BASES[kind], "")
    assert_names(exc, file, None)
    assert exc.reason == f"a {kind} step needs an `async def handler{shown}`"


def test_event_step_with_empty_subscribes(tmp_path: Path) -> None:
    exc, file = broken(tmp_path, {**EVENT, "subscribes": []})
    assert_names(exc, file, "subscribes")
    assert "at least one topic" in exc.reason


# --- files that do not import ----------------------------------------------------------------------------


def test_syntax_error(tmp_path: Path) -> None:
    file = write_step(tmp_path, "broken", "config = {\n    'type': 'noop',\n    'name': 'X' oops\n}\n")
    with pytest.raises(StepError) as info:
        discover(tmp_path)
    assert_names(info.value, file, None)
    assert "failed to import: SyntaxError: " in str(info.value)
    assert str(info.value).count("line 3") == 1  # the step file's line, said once
    assert f"{tmp_path.name}.broken_step" not in sys.modules


def test_syntax_error_line_number_is_the_step_files(tmp_path: Path) -> None:
    write_step(tmp_path, "broken", "config = {\n    'type': 'noop',\n    'name': 'X' oops\n}\n")
    with pytest.raises(StepError) as info:
        discover(tmp_path)
    assert str(info.value).endswith("(line 3)")


def test_exception_raised_at_import(tmp_path: Path) -> None:
    file = write_step(tmp_path, "broken", "import os\n\n\nraise RuntimeError('boom at import')\n")
    with pytest.raises(StepError) as info:
        discover(tmp_path)
    assert_names(info.value, file, None)
    assert info.value.reason == "failed to import: RuntimeError: boom at import (line 4)"
    assert isinstance(info.value.__cause__, RuntimeError)
    assert f"{tmp_path.name}.broken_step" not in sys.modules


def test_missing_import(tmp_path: Path) -> None:
    file = write_step(tmp_path, "broken", "from no_such_module_here import thing\n")
    with pytest.raises(StepError) as info:
        discover(tmp_path)
    assert_names(info.value, file, None)
    assert "failed to import: ModuleNotFoundError: No module named 'no_such_module_here'" in str(info.value)


def test_missing_steps_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(StepError) as info:
        discover(missing)
    assert_names(info.value, missing, None)
    assert "steps folder does not exist" in str(info.value)


# --- api paths, methods and schemas ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/_workbench", "/_workbench/api/steps", "pets", "", "/a//b"])
def test_bad_api_path(tmp_path: Path, path: str) -> None:
    exc, file = broken(tmp_path, {**API, "path": path})
    assert_names(exc, file, "path")
    assert f"{path!r} must start with / and not be under /_workbench" in exc.reason


@pytest.mark.parametrize("method", ["FETCH", "HEAD", "OPTIONS", "", "GET POST"])
def test_invalid_method(tmp_path: Path, method: str) -> None:
    exc, file = broken(tmp_path, {**API, "method": method})
    assert_names(exc, file, "method")
    assert "is not one of GET, POST, PUT, PATCH, DELETE" in exc.reason


def test_method_is_case_insensitive(tmp_path: Path) -> None:
    write_step(tmp_path, "ok", source({**API, "method": "patch"}))
    (step,) = discover(tmp_path)
    assert isinstance(step, ApiStep) and step.method == "PATCH"


@pytest.mark.parametrize(
    ("key", "value"),
    [("body_schema", "dict"), ("body_schema", "{'name': str}"), ("response_schema", "{200: dict}")],
)
def test_schema_not_a_model(tmp_path: Path, key: str, value: str) -> None:
    file = write_step(tmp_path, "broken", f"config = {{**{API!r}, {key!r}: {value}}}\n\n\n{API_HANDLER}")
    with pytest.raises(StepError) as info:
        discover(tmp_path)
    assert_names(info.value, file, key)
    assert "must be a pydantic model or msgspec Struct class" in str(info.value)


@pytest.mark.parametrize("status", ["'200'", "99", "600"])
def test_response_schema_status_codes(tmp_path: Path, status: str) -> None:
    file = write_step(
        tmp_path,
        "broken",
        "from pydantic import BaseModel\n\n\nclass Out(BaseModel):\n    id: str\n\n\n"
        f"config = {{**{API!r}, 'response_schema': {{{status}: Out}}}}\n\n\n{API_HANDLER}",
    )
    with pytest.raises(StepError) as info:
        discover(tmp_path)
    assert_names(info.value, file, "response_schema")
    assert "keys must be HTTP status codes" in str(info.value)


def test_schemas_pydantic_and_msgspec(tmp_path: Path) -> None:
    write_step(
        tmp_path,
        "ok",
        "import msgspec\nfrom pydantic import BaseModel\n\n\nclass Body(BaseModel):\n    name: str\n\n\n"
        "class Out(msgspec.Struct):\n    id: str\n\n\n"
        f"config = {{**{API!r}, 'method': 'POST', 'body_schema': Body, 'response_schema': Out}}\n\n\n"
        f"{API_HANDLER}",
    )
    (step,) = discover(tmp_path)
    assert isinstance(step, ApiStep)
    assert step.body_schema.__name__ == "Body"
    assert list(step.response_schema) == [200]  # a bare schema means the 200 response
    assert step.response_schema[200].__name__ == "Out"


# --- the example pet app ---------------------------------------------------------------------------------

PET_KINDS = {
    "CreatePet": "api",
    "ListPets": "api",
    "GetPet": "api",
    "UpdatePet": "api",
    "DeletePet": "api",
    "SetNextFeedingReminder": "event",
    "DeletionReaper": "cron",
    "PetLifecycleOrchestrator": "event",
}


@pytest.fixture
def pets() -> Registry:
    return discover(PET_STEPS)


def test_pet_app_steps(pets: Registry) -> None:
    assert {s.name: s.kind for s in pets} == PET_KINDS
    assert len(pets) == 8
    classes = {"api": ApiStep, "event": EventStep, "cron": CronStep}
    assert all(isinstance(s, classes[s.kind]) for s in pets)
    assert all(
        s.file.parent == PET_STEPS.resolve() / "pets" and s.file.name.endswith("_step.py") for s in pets
    )
    for step in pets:  # each step's handler is the `handler` of its own file, as imported
        module = sys.modules[f"steps.pets.{step.file.stem}"]
        assert step.handler is module.handler and inspect.iscoroutinefunction(step.handler)


def test_pet_app_routes(pets: Registry) -> None:
    routes = {(s.method, s.path): s.name for s in pets.api_steps()}
    assert routes == {
        ("POST", "/pets"): "CreatePet",
        ("GET", "/pets"): "ListPets",
        ("GET", "/pets/{id}"): "GetPet",
        ("PUT", "/pets/{id}"): "UpdatePet",
        ("DELETE", "/pets/{id}"): "DeletePet",
    }
    get_pet = pets.get("GetPet")
    assert isinstance(get_pet, ApiStep) and get_pet.path_params == ["id"]
    list_pets = pets.get("ListPets")
    assert isinstance(list_pets, ApiStep) and list_pets.query_params == ("includeDeleted",)


def test_pet_app_subscribers(pets: Registry) -> None:
    assert [s.name for s in pets.subscribers_of("feeding.reminder.enqueued")] == ["SetNextFeedingReminder"]
    assert [s.name for s in pets.subscribers_of("pet.created")] == ["PetLifecycleOrchestrator"]
    assert [s.name for s in pets.subscribers_of("feeding.reminder.completed")] == ["PetLifecycleOrchestrator"]
    assert pets.subscribers_of("pet.status.changed") == []  # emitted, but nobody listens
    assert pets.subscribers_of("no.such.topic") == []
    assert pets.topics() == [
        "feeding.reminder.completed",
        "feeding.reminder.enqueued",
        "pet.created",
        "pet.status.changed",
        "pet.status.update.requested",
    ]


def test_pet_app_background_steps(pets: Registry) -> None:
    reminder = pets.get("SetNextFeedingReminder")
    assert isinstance(reminder, EventStep)
    assert reminder.retries == RetryPolicy(attempts=3, backoff_s=1.0, max_backoff_s=10.0)
    assert reminder.timeout_s == 10.0
    assert reminder.emits == ("feeding.reminder.completed",)
    orchestrator = pets.get("PetLifecycleOrchestrator")
    assert isinstance(orchestrator, EventStep)
    assert orchestrator.retries == RetryPolicy()  # defaults: 3 attempts
    assert orchestrator.timeout_s == 30.0
    reaper = pets.get("DeletionReaper")
    assert isinstance(reaper, CronStep)
    assert [s.name for s in pets.cron_steps()] == ["DeletionReaper"]
    assert reaper.cron == "0 2 * * *" and reaper.timezone is None
    assert reaper.schedule is not None and reaper.schedule.expression == "0 2 * * *"
    assert reaper.retries == RetryPolicy(attempts=1)
    assert reaper.timeout_s == 300.0


# --- which files are step files --------------------------------------------------------------------------


def test_step_in_a_nested_sub_folder_is_found(tmp_path: Path) -> None:
    top = write_step(tmp_path, "top", source(API))
    deep = write_step(tmp_path / "a" / "b" / "c", "deep", source(EVENT))
    registry = discover(tmp_path)
    assert {s.name: s.file for s in registry} == {"Thing": top.resolve(), "OnThing": deep.resolve()}
    assert f"{tmp_path.name}.a.b.c.deep_step" in sys.modules


def test_error_in_a_nested_sub_folder_names_the_nested_file(tmp_path: Path) -> None:
    write_step(tmp_path, "top", source(API))
    nested = write_step(tmp_path / "inner", "broken", source({**EVENT, "retries": 0}))
    with pytest.raises(StepError) as info:
        discover(tmp_path)
    assert_names(info.value, nested, "retries")


def test_files_not_ending_in_step_py_are_ignored(tmp_path: Path) -> None:
    write_step(tmp_path, "real", source(API))
    poison = "raise RuntimeError('must not be imported')\n"
    (tmp_path / "helpers.py").write_text(poison)
    (tmp_path / "step.py").write_text(poison)
    (tmp_path / "stepper.py").write_text(poison)
    (tmp_path / "many_steps.py").write_text(poison)
    (tmp_path / "real_step.py.bak").write_text(poison)
    (tmp_path / "notes_step.txt").write_text(poison)
    (tmp_path / "other.py").write_text(source({**API, "name": "NotAStep", "path": "/other"}))
    (tmp_path / "dir_step.py").mkdir()  # a folder with a step-like name is not a file
    registry = discover(tmp_path)
    assert [s.name for s in registry] == ["Thing"]


def test_step_files_can_import_helpers_beside_them(tmp_path: Path) -> None:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "topics.py").write_text("CREATED = 'order.created'\n")
    write_step(
        tmp_path / "shop",
        "order",
        "from shop.topics import CREATED\n\n"
        "config = {'type': 'event', 'name': 'OnOrder', 'subscribes': [CREATED]}\n\n\n" + EVENT_HANDLER,
    )
    registry = discover(tmp_path)
    assert [s.name for s in registry.subscribers_of("order.created")] == ["OnOrder"]
    del sys.modules["shop.topics"], sys.modules["shop"]


def test_empty_folder(tmp_path: Path) -> None:
    registry = discover(tmp_path)
    assert len(registry) == 0 and registry.topics() == []


def test_subscribers_in_discovery_order(tmp_path: Path) -> None:
    write_step(tmp_path, "b", source({**EVENT, "name": "Second"}))
    write_step(tmp_path, "a", source({**EVENT, "name": "First", "subscribes": ["thing.created", "x.y"]}))
    registry = discover(tmp_path)
    assert [s.name for s in registry.subscribers_of("thing.created")] == ["First", "Second"]
    assert [s.name for s in registry.subscribers_of("x.y")] == ["First"]
    assert [s.name for s in registry.event_steps()] == ["First", "Second"]


# --- noop steps ------------------------------------------------------------------------------------------


def test_noop_step_needs_no_handler(tmp_path: Path) -> None:
    config = {
        "type": "noop",
        "name": "HumanReview",
        "description": "a person checks it",
        "virtual_subscribes": ["review.requested"],
        "virtual_emits": ["review.done"],
        "flows": ["review"],
    }
    write_step(tmp_path, "review", source(config))
    (step,) = discover(tmp_path)
    assert isinstance(step, NoopStep)
    assert step.kind == "noop" and step.handler is None
    assert step.virtual_subscribes == ("review.requested",) and step.virtual_emits == ("review.done",)


def test_noop_step_ignores_a_handler(tmp_path: Path) -> None:
    write_step(tmp_path, "review", source({"type": "noop", "name": "N"}, "def handler(x):\n    pass\n"))
    (step,) = discover(tmp_path)
    assert isinstance(step, NoopStep) and step.handler is None


# --- retry policies --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "retries", "policy"),
    [
        ("event", None, RetryPolicy(attempts=3, backoff_s=1.0, max_backoff_s=30.0)),
        ("cron", None, RetryPolicy(attempts=1, backoff_s=1.0, max_backoff_s=30.0)),
        ("event", 5, RetryPolicy(attempts=5, backoff_s=1.0, max_backoff_s=30.0)),
        ("cron", 1, RetryPolicy(attempts=1)),
        ("event", {"attempts": 4, "backoff": 0.5, "max_backoff": 8}, RetryPolicy(4, 0.5, 8.0)),
        ("cron", {"attempts": 2, "backoff": 2, "max_backoff": 60}, RetryPolicy(2, 2.0, 60.0)),
        ("event", {"backoff": 0}, RetryPolicy(attempts=3, backoff_s=0.0, max_backoff_s=30.0)),
        ("event", {}, RetryPolicy()),
        ("cron", {"max_backoff": 5}, RetryPolicy(attempts=3, backoff_s=1.0, max_backoff_s=5.0)),
    ],
)
def test_retries_policy(tmp_path: Path, kind: str, retries: object, policy: RetryPolicy) -> None:
    config = dict(BASES[kind])
    if retries is not None:
        config["retries"] = retries
    write_step(tmp_path, "ok", source(config))
    (step,) = discover(tmp_path)
    assert isinstance(step, (EventStep, CronStep))
    assert step.retries == policy
    assert isinstance(step.retries.backoff_s, float) and isinstance(step.retries.max_backoff_s, float)


def test_timeouts(tmp_path: Path) -> None:
    write_step(tmp_path, "e", source({**EVENT, "timeout": 2}))
    write_step(tmp_path, "c", source({**CRON, "timeout": 0.5, "timezone": "Europe/Berlin"}))
    registry = discover(tmp_path)
    event, cron = registry.get("OnThing"), registry.get("Nightly")
    assert isinstance(event, EventStep) and event.timeout_s == 2.0
    assert isinstance(cron, CronStep) and cron.timeout_s == 0.5
    assert cron.timezone == "Europe/Berlin"
    assert cron.schedule is not None and str(cron.schedule.zone) == "Europe/Berlin"


def test_delay_grows_exponentially_and_is_capped() -> None:
    policy = RetryPolicy()
    assert [policy.delay_s(n, 0.0) for n in range(1, 9)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    custom = RetryPolicy(attempts=10, backoff_s=0.5, max_backoff_s=5.0)
    assert [custom.delay_s(n, 0.0) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert RetryPolicy(backoff_s=0.0).delay_s(5, 0.9) == 0.0
    assert custom.delay_s(50, 0.0) == 5.0


@pytest.mark.parametrize("rand", [0.0, 0.1, 0.5, 0.75, 0.999999])
@pytest.mark.parametrize("attempt", [1, 3, 5, 6, 12])
def test_delay_jitter_stays_within_25_percent(rand: float, attempt: int) -> None:
    policy = RetryPolicy(backoff_s=1.0, max_backoff_s=30.0)
    base = min(30.0, 2.0 ** (attempt - 1))
    delay = policy.delay_s(attempt, rand)
    assert base <= delay < base * 1.25
    assert delay == pytest.approx(base * (1 + 0.25 * rand))


def test_delay_jitter_is_monotonic_in_rand() -> None:
    policy = RetryPolicy()
    delays = [policy.delay_s(3, r / 10) for r in range(10)]
    assert delays == sorted(delays) and delays[0] == 4.0 and delays[-1] == pytest.approx(4.9)


def test_delay_is_capped_for_very_many_attempts() -> None:
    assert RetryPolicy(attempts=5000).delay_s(1100, 0.0) == 30.0


# --- the CLI: `workbench steps` --------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_STEPS"}
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


def test_cli_steps_broken_folder(tmp_path: Path) -> None:
    folder = tmp_path / "steps"
    write_step(folder, "good", source(API))
    file = write_step(folder / "sub", "broken", source({**API, "name": "Other", "colour": "red"}))
    result = run_cli("steps", "--steps", str(folder), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {file.resolve()}: config['colour']: unknown key for a api step")


def test_cli_steps_missing_folder(tmp_path: Path) -> None:
    result = run_cli("steps", "--steps", str(tmp_path / "nope"), cwd=tmp_path)
    assert result.returncode == 2
    assert "steps folder does not exist" in result.stderr and str(tmp_path / "nope") in result.stderr


def test_cli_steps_table_for_the_pet_app(tmp_path: Path) -> None:
    result = run_cli("steps", "--steps", str(PET_STEPS), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "TRIGGER", "EMITS"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == set(PET_KINDS)
    assert len(lines) == 1 + len(PET_KINDS)
    for name, kind in PET_KINDS.items():
        assert rows[name].split()[1] == kind
    assert "POST /pets" in rows["CreatePet"] and "pet.created, feeding.reminder.enqueued" in rows["CreatePet"]
    assert "DELETE /pets/{id}" in rows["DeletePet"]
    assert "cron 0 2 * * *" in rows["DeletionReaper"]
    assert "feeding.reminder.enqueued" in rows["SetNextFeedingReminder"]
    assert rows["GetPet"].rstrip().endswith("-")  # emits nothing
    # the columns line up: each step's KIND starts where the header's does
    kind_column = lines[0].index("KIND")
    assert all(line[kind_column:].split()[0] in ("api", "event", "cron") for line in lines[1:])
