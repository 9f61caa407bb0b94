"""Types for step files: what editors and mypy check a `config` and a `handler` against.

Plain dicts keep working (the runtime validates every config at start, see `step_config`); these
types only add checking before that: annotate `config: ApiConfig = {...}` and a misspelt or
misplaced key is an error in the editor and in mypy. The handler Protocols say what each kind's
handler is called with; decorate a handler with `api_handler`, `event_handler` or `cron_handler`
(they return the function unchanged) and mypy checks its signature too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, Required, TypedDict, TypeVar

if TYPE_CHECKING:
    from .context import Context
    from .http import ApiRequest, ApiResponse

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


class RetriesConfig(TypedDict, total=False):
    attempts: int  # tries in all, the first included (default 3 for event steps, 1 for cron steps)
    backoff: float  # seconds before the second try; doubles each time ...
    max_backoff: float  # ... up to this


class _Common(TypedDict, total=False):
    name: Required[str]
    description: str
    flows: Sequence[str]
    emits: Sequence[str]
    virtual_emits: Sequence[str]
    virtual_subscribes: Sequence[str]


class ApiConfig(_Common, total=False):
    """An HTTP endpoint: `path` like `/pets/{id}`; a bad body gets 400 naming the field."""

    type: Required[Literal["api"]]
    method: Required[HttpMethod]
    path: Required[str]
    body_schema: type[Any]  # a pydantic model or msgspec Struct
    response_schema: Mapping[int, type[Any]]
    query_params: Sequence[str]


class EventConfig(_Common, total=False):
    """A background job run for each event on one of `subscribes`."""

    type: Required[Literal["event"]]
    subscribes: Required[Sequence[str]]
    input_schema: type[Any]
    retries: int | RetriesConfig
    timeout: float  # seconds


class CronConfig(_Common, total=False):
    """A background job run on a schedule: 5 cron fields, or 6 with leading seconds."""

    type: Required[Literal["cron"]]
    cron: Required[str]
    timezone: str  # an IANA zone name; default: the server's
    retries: int | RetriesConfig
    timeout: float


class NoopConfig(_Common, total=False):
    """Drawn in flows only (an external system, a person), never run."""

    type: Required[Literal["noop"]]


StepConfig = ApiConfig | EventConfig | CronConfig | NoopConfig


class ApiHandler(Protocol):
    """`async def handler(request, ctx)`: returns `ApiResponse` or `{"status", "body", "headers"}`."""

    def __call__(
        self, request: ApiRequest, ctx: Context, /
    ) -> Awaitable[ApiResponse | Mapping[str, Any]]: ...


class EventHandler(Protocol):
    """`async def handler(data, ctx)`: `data` is the event's payload (validated by `input_schema`)."""

    def __call__(self, data: Any, ctx: Context, /) -> Awaitable[None]: ...


class CronHandler(Protocol):
    """`async def handler(ctx)`."""

    def __call__(self, ctx: Context, /) -> Awaitable[None]: ...


_Api = TypeVar("_Api", bound=ApiHandler)
_Event = TypeVar("_Event", bound=EventHandler)
_Cron = TypeVar("_Cron", bound=CronHandler)


def api_handler(fn: _Api) -> _Api:
    """Marks (and, for mypy, checks) an API step's handler; returns it unchanged."""
    return fn


def event_handler(fn: _Event) -> _Event:
    """Marks (and, for mypy, checks) an event step's handler; returns it unchanged."""
    return fn


def cron_handler(fn: _Cron) -> _Cron:
    """Marks (and, for mypy, checks) a cron step's handler; returns it unchanged."""
    return fn
