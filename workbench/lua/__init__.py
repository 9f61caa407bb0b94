"""The framework's Lua scripts, one `.lua` file each, read from the installed package.

Each script takes every key it touches in KEYS (worked out in Python, next to the other key names),
so none builds a key name of its own; tests/test_lua.py runs each against a real Redis."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def load(name: str) -> str:
    """The source of `<name>.lua`."""
    return resources.files(__name__).joinpath(f"{name}.lua").read_text(encoding="utf-8")
