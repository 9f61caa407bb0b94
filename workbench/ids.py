"""Sortable identifiers: trace and span ids that order by creation time (ULID-style)."""

import random
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: it sorts like the numbers it encodes
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # 10 bits -> 2 characters
_SHIFTS = (70, 60, 50, 40, 30, 20, 10, 0)
# a private generator, seeded from os.urandom: a step calling random.seed() cannot make ids repeat.
# Ids name traces and spans; they are not secrets (several ids per request: urandom + base64
# cost 3x as much)
_rng = random.Random()
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
    bits = _rng.getrandbits(80)
    return _last_prefix + "".join([_PAIRS[(bits >> shift) & 1023] for shift in _SHIFTS])


def now_ms() -> int:
    return int(time.time() * 1000)
