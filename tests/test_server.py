"""The web process against slow and numerous clients: a request must arrive within the read deadline,
connections are bounded, and the live feed (a long response) is not cut by the read deadline."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import Stack, start_stack, wait_until


@pytest.fixture
def guarded(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    stack = start_stack(redis_url, tmp_path, WORKBENCH_READ_TIMEOUT="1", WORKBENCH_MAX_CONNECTIONS="40")
    yield stack
    stack.stop()


def _port(stack: Stack) -> int:
    return int(stack.url.rsplit(":", 1)[1])


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed the connection (or answered and closed it)."""
    try:
        data = sock.recv(4096)
    except (BlockingIOError, TimeoutError):
        return False
    except OSError:
        return True
    if data.startswith(b"HTTP/1.1 "):  # an answer (503 when over the limit): read on to the close
        return _closed_by_server(sock) if data else True
    return data == b""


def test_clients_that_send_headers_slowly_are_disconnected(guarded: Stack) -> None:
    slow = []
    for _ in range(30):
        sock = socket.create_connection(("127.0.0.1", _port(guarded)), timeout=5)
        sock.sendall(b"GET /pets HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # and never the rest
        sock.settimeout(0.05)
        slow.append(sock)
    try:
        started = time.monotonic()
        for sock in slow:
            wait_until(lambda s=sock: _closed_by_server(s), 10, message="the slow client to be cut off")
        assert time.monotonic() - started < 10
        with guarded.client() as client:  # and the server still answers everyone else
            assert client.get("/pets").status_code == 200
    finally:
        for sock in slow:
            sock.close()


def test_connections_beyond_the_limit_get_503_not_a_hang(redis_url: str, tmp_path: Path) -> None:
    # a read deadline longer than the test takes: the held connections must stay open
    guarded = start_stack(redis_url, tmp_path, WORKBENCH_READ_TIMEOUT="60", WORKBENCH_MAX_CONNECTIONS="40")
    held = []
    try:
        for _ in range(39):  # keep-alive connections up to the limit (the 40th is the one over it)
            sock = socket.create_connection(("127.0.0.1", _port(guarded)), timeout=5)
            held.append(sock)
            sock.sendall(b"GET /pets HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(64).startswith(b"HTTP/1.1 200")
        over = httpx.get(f"{guarded.url}/pets", timeout=5)
        assert over.status_code == 503
        for sock in held:
            sock.close()
        wait_until(lambda: httpx.get(f"{guarded.url}/pets", timeout=5).status_code == 200, 10, message="room")
    finally:
        for sock in held:
            sock.close()
        guarded.stop()


def test_the_live_feed_outlives_the_read_deadline(guarded: Stack) -> None:
    with httpx.Client(base_url=guarded.url, timeout=10) as client:
        with client.stream("GET", "/_workbench/api/stream") as stream:
            lines = stream.iter_lines()
            assert next(lines).startswith(":")  # connected
            started = time.monotonic()
            with guarded.client() as other:
                wait_until(lambda: time.monotonic() - started > 1.5, 5, message="past the read deadline")
                assert (
                    other.post("/pets", json={"name": "Jack", "species": "dog", "ageMonths": 1}).status_code
                    == 201
                )
            for line in lines:  # the stream is still open: the new pet's records arrive
                if line.startswith("event: trace"):
                    break
