"""uvicorn's HTTP protocol with a deadline on request headers (slowloris).

uvicorn closes idle kept-alive connections, but a connection that sends its
request headers a byte at a time, or never finishes them, stays open for as
long as the client likes: a few hundred such connections hold a server's
sockets. With this protocol a request has QUESTLINE_HEADER_TIMEOUT (10 s)
from its connection's start (or, on a kept-alive connection, from the
request's first byte) to finish its headers, or the connection is closed.
Bodies are bounded by QUESTLINE_MAX_BODY_BYTES; a WebSocket's headers are a
request's headers like any other.

    uvicorn --factory app.main:app_from_env --http app.header_timeout:HeaderTimeoutProtocol

`questline serve` uses it; the value is read from the environment, as the app is.
"""

from __future__ import annotations

import asyncio
import functools
from asyncio import TimerHandle

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.settings import Settings


@functools.cache
def header_timeout() -> float:
    """Seconds from QUESTLINE_HEADER_TIMEOUT, read once per process (as the app's settings)."""
    return Settings.from_env().header_timeout.total_seconds()


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """Closes a connection whose request headers are not complete in time."""

    _header_timer: TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:  # a later request on a kept-alive connection
            self._start_header_timer()

    def on_headers_complete(self) -> None:
        self._stop_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def _start_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(header_timeout(), self._headers_too_slow)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.logger.info(
                "closing a connection whose request headers took over %.0fs", header_timeout()
            )
            self.transport.close()
