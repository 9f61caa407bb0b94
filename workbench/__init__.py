"""Workbench: event-driven Python backends made of small steps, with a live developer workbench."""

from importlib.metadata import version as _version

from .config_types import (
    ApiConfig,
    ApiHandler,
    CronConfig,
    CronHandler,
    EventConfig,
    EventHandler,
    NoopConfig,
    RetriesConfig,
    StepConfig,
    api_handler,
    cron_handler,
    event_handler,
)
from .context import Context, StepLogger, UndeclaredEmitError
from .http import ApiRequest, ApiResponse
from .registry import Registry, discover
from .settings import Settings
from .step_config import RetryPolicy, StepError

__version__ = _version("workbench-steps")

__all__ = [
    "ApiConfig",
    "ApiHandler",
    "ApiRequest",
    "ApiResponse",
    "Context",
    "CronConfig",
    "CronHandler",
    "EventConfig",
    "EventHandler",
    "NoopConfig",
    "Registry",
    "RetriesConfig",
    "RetryPolicy",
    "Settings",
    "StepConfig",
    "StepError",
    "StepLogger",
    "UndeclaredEmitError",
    "__version__",
    "api_handler",
    "cron_handler",
    "discover",
    "event_handler",
]
