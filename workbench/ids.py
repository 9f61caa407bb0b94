"""Sortable identifiers: trace and span ids that order by creation time (ULID-style)."""

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32


def _b32(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        out.append(_ALPHABET[rem])
    return "".join(reversed(out))


def new_id(now_ms: int | None = None) -> str:
    """A 26-character id: 48 bits of milliseconds, then 80 random bits."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return _b32(ms, 10) + _b32(int.from_bytes(os.urandom(10), "big"), 16)


def now_ms() -> int:
    return int(time.time() * 1000)
