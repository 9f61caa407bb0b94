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
import math
import re
from typing import Any

MAX_DEPTH = 64  # arrays and objects inside each other
_SURROGATE = re.compile("[\ud800-\udfff]")


class UnfitJson(ValueError):
    """Not JSON, or JSON that cannot be stored and shown again; the message says why."""


def check_value(value: Any, *, what: str = "value") -> Any:
    """`value` itself, when every string in it is valid Unicode, every number finite (no NaN or
    Infinity), and it nests at most `MAX_DEPTH` deep; else `UnfitJson` naming where (`what.a[2]`)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth >= MAX_DEPTH:
                raise UnfitJson(f"{what}: nested deeper than {MAX_DEPTH} levels")
            for key, inner in item.items():
                if isinstance(key, str) and not key.isascii() and _SURROGATE.search(key):
                    raise UnfitJson(
                        f"{_where(value, what)}: a key holds a lone surrogate (not valid Unicode)"
                    )
                stack.append((inner, depth + 1))
        elif isinstance(item, (list, tuple)):
            if depth >= MAX_DEPTH:
                raise UnfitJson(f"{what}: nested deeper than {MAX_DEPTH} levels")
            stack.extend((inner, depth + 1) for inner in item)
        elif isinstance(item, str):  # written out, not `_unfit`: this runs for every emit's payload
            if not item.isascii() and _SURROGATE.search(item):
                raise UnfitJson(f"{_where(value, what)}: {_why(item)}")
        elif isinstance(item, float) and not math.isfinite(item):
            raise UnfitJson(f"{_where(value, what)}: {_why(item)}")
    return value


def _unfit(item: Any) -> bool:
    if isinstance(item, str):
        return not item.isascii() and _SURROGATE.search(item) is not None
    return isinstance(item, float) and not math.isfinite(item)


def _why(item: Any) -> str:
    if isinstance(item, str):
        return "a string holds a lone surrogate (not valid Unicode)"
    # Python writes it as NaN/Infinity, which is not JSON: a browser reads null, or nothing
    return f"{item!r} is not a JSON number"


def _where(value: Any, what: str) -> str:
    """The path of the first unfit part of `value` (walked again only once one was found)."""
    stack: list[tuple[Any, str]] = [(value, what)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                if isinstance(key, str) and _SURROGATE.search(key):
                    return path
                stack.append((inner, f"{path}.{key}"))
        elif isinstance(item, (list, tuple)):
            stack.extend((inner, f"{path}[{i}]") for i, inner in enumerate(item))
        elif _unfit(item):
            return path
    return what


def parse_json(raw: bytes | str, *, what: str = "body") -> Any:
    """The JSON in `raw`, checked by `check_value`; raises `UnfitJson`."""
    try:
        value = json.loads(raw)
    except RecursionError as exc:
        raise UnfitJson(f"{what}: nested deeper than {MAX_DEPTH} levels") from exc
    except ValueError as exc:  # UnicodeDecodeError included
        raise UnfitJson(f"{what}: not valid JSON ({exc})") from exc
    return check_value(value, what=what)
