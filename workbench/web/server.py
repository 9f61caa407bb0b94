"""The HTTP server of a web process: uvicorn, with bounds a public server needs.

- **Read deadline.** uvicorn waits for a request's headers and body as long as the client takes,
  so slow clients (slowloris) could hold connections forever. Here a client has `read_timeout_s`
  from connecting (or from the end of its previous response) to send a whole request; a slower one
  is disconnected. A response that streams (the live feed) is not bounded: only reading is.
- **Connections.** At most `max_connections` at once; beyond that uvicorn answers 503.
Behind a reverse proxy (nginx, Caddy, a cloud load balancer) these are the proxy's job as well;
see the README's deployment notes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..settings import Settings


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol (httptools) with a deadline for reading each request."""

    read_timeout_s = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.read_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's
        super().connection_made(transport)
        self._arm()

    def on_message_complete(self) -> None:
        self._disarm()  # the request is in: the response may take as long as it takes
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection, if any, has the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def server_config(app: Any, *, host: str, port: int, settings: Settings) -> uvicorn.Config:
    protocol = type("BoundedHttpTools", (BoundedHttpTools,), {"read_timeout_s": settings.read_timeout_s})
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        limit_concurrency=settings.max_connections,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
