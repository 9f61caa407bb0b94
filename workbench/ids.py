"""Sortable identifiers: trace and span ids that order by creation time (ULID-style)."""

import base64
import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32 for the time part: it sorts
_last_ms = -1
_last_prefix = ""


def _b32(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        out.append(_ALPHABET[rem])
    return "".join(reversed(out))


def new_id(now_ms: int | None = None) -> str:
    """A 26-character id: 48 bits of milliseconds (sortable), then 80 random bits."""
    global _last_ms, _last_prefix
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    if ms != _last_ms:  # ids are made in bursts: the time part is worked out once per millisecond
        _last_ms, _last_prefix = ms, _b32(ms, 10)
    return _last_prefix + base64.b32encode(os.urandom(10)).decode()


def now_ms() -> int:
    return int(time.time() * 1000)
