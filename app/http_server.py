"""uvicorn's HTTP protocol with a deadline on the request head (request line and headers).

uvicorn (0.55) times out only idle keep-alive connections, and any byte received cancels that
timer; nothing bounds how long a client may take to send a request head (its issue #157,
`--timeout-request-start`, is still open). A slowloris client that opens many connections and
trickles header bytes would hold them all. This protocol closes a connection whose request head
is not complete REQUEST_HEAD_TIMEOUT_SECONDS after the connection opened, or after the first byte
of the next request on a kept-alive connection. Bodies and responses are not limited by it.

Built on the httptools protocol, which uvicorn[standard] installs and `http="auto"` picks anyway.

It also tells the app when the server begins a graceful shutdown (`on_server_shutdown`): uvicorn
then waits up to `timeout_graceful_shutdown` for every response to finish, and an open status stream
(app.http.status_events) would only finish after minutes; told, the app ends its streams at once
(their clients reconnect to another replica) instead of being cancelled, with an ERROR, 20 s later.
This serves `payments serve --server uvicorn` and `payments dev`; under granian (the default of
`payments serve`) app/granian_server.py does both instead.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("app.http")

_TIMEOUT_BODY = b'{"code":"REQUEST_TIMEOUT","message":"The request head did not arrive in time."}'
_ON_SHUTDOWN: list[Callable[[], None]] = []


def on_server_shutdown(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` (idempotent, synchronous) when this process's server begins a graceful
    shutdown; returns the function that takes it back."""
    _ON_SHUTDOWN.append(callback)
    return lambda: _ON_SHUTDOWN.remove(callback) if callback in _ON_SHUTDOWN else None


def server_shutdown_begins() -> None:
    """The server of this process begins a graceful shutdown (uvicorn: HeadTimeoutProtocol.shutdown;
    granian: app.granian_server's signal hook). Called on the event loop's thread."""
    for callback in list(_ON_SHUTDOWN):
        callback()


class HeadTimeoutProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that cuts off connections slow to deliver a complete request head."""

    def __init__(self, *args: Any, head_timeout_seconds: float = 10.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_timeout_seconds = head_timeout_seconds
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_started = False  # a byte of the awaited request has arrived

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown reached this connection (it calls this for each one)."""
        server_shutdown_begins()
        super().shutdown()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_started = True
        self._arm_head_deadline()  # the next request on a kept-alive connection: its own deadline

    def on_headers_complete(self) -> None:
        self._disarm_head_deadline()
        self._head_started = False
        super().on_headers_complete()

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.head_timeout_seconds, self._head_timed_out)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing():
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown"
        log.info("closing %s: no complete request head within %.1f s", client, self.head_timeout_seconds)
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request is still being answered: finish it, then close.
            self.cycle.keep_alive = False
            return
        if self._head_started:  # a silent connection (a browser's preconnect) gets no answer
            head = [b"HTTP/1.1 408 Request Timeout\r\n"]
            head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
            head += [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n",
                b"connection: close\r\n\r\n",
            ]
            self.transport.write(b"".join(head) + _TIMEOUT_BODY)
        self.transport.close()


def head_timeout_protocol(head_timeout_seconds: float) -> Any:
    """The `http=` protocol for uvicorn.run; a partial, so it survives `--workers`' pickling."""
    return functools.partial(HeadTimeoutProtocol, head_timeout_seconds=head_timeout_seconds)
