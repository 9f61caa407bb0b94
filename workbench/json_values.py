"""What JSON the framework takes in and stores: one definition for every door.

Python's `json` reads things that cannot be written back out: a lone surrogate (`"\\ud800"`) is
read as a `str` that UTF-8 cannot encode, so storing it worked and every page showing it answered
500; ten thousand nested arrays reach the recursion limit of whatever walks them next. So request
bodies (state edits, emits, API steps' bodies) are parsed by `parse_json`, and values a step hands
to `ctx.state` or `ctx.emit` are checked by `check_value`: both refuse such input with a message
naming what is wrong, before anything is stored.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64  # arrays and objects inside each other
_SURROGATE = re.compile("[\ud800-\udfff]")


class UnfitJson(ValueError):
    """Not JSON, or JSON that cannot be stored and shown again; the message says why."""


def check_value(value: Any, *, what: str = "value") -> Any:
    """`value` itself, when every string in it is valid Unicode and it nests at most `MAX_DEPTH` deep."""
    stack: list[tuple[Any, int, str]] = [(value, 0, what)]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                raise UnfitJson(f"{where}: a string holds a lone surrogate (not valid Unicode)")
        elif isinstance(item, dict):
            if depth >= MAX_DEPTH:
                raise UnfitJson(f"{where}: nested deeper than {MAX_DEPTH} levels")
            for key, inner in item.items():
                if isinstance(key, str) and not key.isascii() and _SURROGATE.search(key):
                    raise UnfitJson(f"{where}: a key holds a lone surrogate (not valid Unicode)")
                stack.append((inner, depth + 1, where))
        elif isinstance(item, (list, tuple)):
            if depth >= MAX_DEPTH:
                raise UnfitJson(f"{where}: nested deeper than {MAX_DEPTH} levels")
            stack.extend((inner, depth + 1, where) for inner in item)
    return value


def parse_json(raw: bytes | str, *, what: str = "body") -> Any:
    """The JSON in `raw`, checked by `check_value`; raises `UnfitJson`."""
    try:
        value = json.loads(raw)
    except RecursionError as exc:
        raise UnfitJson(f"{what}: nested deeper than {MAX_DEPTH} levels") from exc
    except ValueError as exc:  # UnicodeDecodeError included
        raise UnfitJson(f"{what}: not valid JSON ({exc})") from exc
    return check_value(value, what=what)
