"""Steps as the workbench shows them, in its JSON API and its pages alike."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..step_config import CronStep, Step


def step_json(step: Step) -> dict[str, Any]:
    return step.describe()


def cron_json(step: CronStep) -> dict[str, Any]:
    """A cron step with its schedule in words and its next run."""
    assert step.schedule is not None
    nxt = step.schedule.next_after(datetime.now(step.schedule.zone))
    return {
        "step": step.name,
        "cron": step.cron,
        "description": step.schedule.describe(),
        "timezone": str(step.schedule.zone),
        "next": int(nxt.timestamp() * 1000),
        "nextText": nxt.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
