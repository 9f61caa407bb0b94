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
