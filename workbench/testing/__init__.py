"""Testing a project's steps: the `workbench` pytest fixture and the `Harness` behind it.

    def test_create_pet(workbench):
        response = workbench.client.post("/pets", json={"name": "Jack", "species": "dog", "ageMonths": 24})
        assert response.status_code == 201
        workbench.drain()  # every background job, and those they emit, run to completion
        assert [e.topic for e in workbench.emitted()] == ["pet.created", "feeding.reminder.enqueued", ...]
        assert workbench.state.get("pets", "1")["status"] == "in_quarantine"

The fixtures come from the pytest plugin `workbench.testing.plugin`, registered by the package
(entry point `pytest11`), so a project needs no conftest.py to use them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .harness import DrainError, DrainResult, Emit, Harness, Log, Span, StateView, Trace, harness_settings

__all__ = [
    "DrainError",
    "DrainResult",
    "Emit",
    "Harness",
    "Log",
    "Span",
    "StateView",
    "Trace",
    "harness_settings",
]


def __getattr__(name: str) -> Any:
    """The harness is imported on first use: pytest loads the plugin (`workbench.testing.plugin`, in
    this package) into every run of an environment where Workbench is installed, and that must stay
    cheap and unbreakable for projects that never use it."""
    if name in __all__:
        from . import harness

        return getattr(harness, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
