"""Workbench: event-driven Python backends made of small steps, with a live developer workbench."""

from .context import Context, StepLogger, UndeclaredEmitError
from .http import ApiRequest, ApiResponse
from .registry import Registry, discover
from .settings import Settings
from .step_config import RetryPolicy, StepError

__all__ = [
    "ApiRequest",
    "ApiResponse",
    "Context",
    "Registry",
    "RetryPolicy",
    "Settings",
    "StepError",
    "StepLogger",
    "UndeclaredEmitError",
    "discover",
]
