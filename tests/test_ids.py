"""Trace and span ids: fixed length, sortable by time, never repeated."""

from __future__ import annotations

import random
import re

from workbench.ids import new_id


def test_ids_are_26_crockford_characters_and_sort_by_their_millisecond() -> None:
    ids = [new_id(ms) for ms in (1_700_000_000_000, 1_700_000_000_001, 1_800_000_000_000)]
    assert all(re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", i) for i in ids)
    assert ids == sorted(ids)


def test_ids_made_in_the_same_millisecond_differ_even_after_a_step_seeds_random() -> None:
    assert len({new_id(1_700_000_000_000) for _ in range(50_000)}) == 50_000
    random.seed(7)
    first = new_id(1_700_000_000_000)
    random.seed(7)
    assert new_id(1_700_000_000_000) != first
