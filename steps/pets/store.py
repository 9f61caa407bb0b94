"""Pets live in step state, group `pets`, keyed by id."""

from __future__ import annotations

import time
from typing import Any

PETS = "pets"
DAY_MS = 24 * 3600 * 1000


def now_ms() -> int:
    return int(time.time() * 1000)


async def next_id(state: Any) -> str:
    return str(await state.increment("pets-meta", "lastId"))
