"""`payments serve` under granian (the default; `--server uvicorn` for uvicorn): the same app, the
same guarantees (loadtests/README.md, "uvicorn or granian", has the numbers and the differences).

Granian (a Rust HTTP server, hyper underneath) always runs a supervisor process and `--workers`
worker processes, each with its own SO_REUSEPORT listener on the port. What uvicorn does through
its options and app/http_server.py, granian does here:

- the request-head deadline: hyper's `header_read_timeout` (HTTP1Settings), REQUEST_HEAD_TIMEOUT_SECONDS.
  It closes the connection without a 408 (uvicorn's protocol sends one when a byte had arrived),
  and bounds the wait for the next request on a kept-alive connection the same way;
- TRUSTED_PROXIES: granian reads no forwarded headers, so each worker wraps the app in uvicorn's
  ProxyHeadersMiddleware, the very middleware `uvicorn --proxy-headers` installs;
- the graceful shutdown: on SIGTERM the supervisor signals its workers; each stops accepting (its
  listener closes: new connections are refused), lets in-flight requests finish, then runs the
  lifespan shutdown. Granian tells Python only once every connection has finished, so a worker
  also calls `app.http_server.server_shutdown_begins` itself when the signal arrives (see
  `_hook_worker_signals`): open status streams end at once instead of holding the shutdown. A
  worker still busy WORKERS_KILL_SECONDS after the signal is killed (uvicorn's
  `timeout_graceful_shutdown` cancels its requests instead, and still runs the lifespan shutdown);
- HTTP/1.1 only, as uvicorn (no HTTP/2 over cleartext, whose connections the header timeout of
  HTTP/1 would not cover).

Body limits, request ids, CORS and the rest are the app's own (app.main) and do not depend on the server.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
from collections.abc import Callable
from typing import Any

from app.http_server import server_shutdown_begins

WORKERS_KILL_SECONDS = 20  # as uvicorn's timeout_graceful_shutdown in app/cli.py
BACKLOG = 2048  # uvicorn's default
# Connections one worker holds at once (granian's "backpressure"; more wait in the backlog). Each
# open status stream holds one: room for `make bench-sse`'s thousands. uvicorn has no such cap.
CONNECTIONS_PER_WORKER = 10_000
TARGET = "app.main:create_served_app"

log = logging.getLogger("app.http")

# Granian's own logger ("_granian", also its Rust side) and its access log go through our handler.
_LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {
        "_granian": {"handlers": [], "propagate": True},
        "granian.access": {"handlers": [], "propagate": True},
    },
}


class PortInUse(OSError):
    """Something already listens on the address (granian alone would share it: SO_REUSEPORT)."""


def run_granian(*, host: str, port: int, workers: int, head_timeout_seconds: float) -> None:
    """Serve app.main:create_served_app until SIGTERM/SIGINT (in this, the supervisor, process).

    PortInUse, before anything starts, when the address is taken."""
    refuse_a_port_in_use(host, port)
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    server = Granian(
        TARGET,
        address=host,
        port=port,
        interface=Interfaces.ASGI,  # with the lifespan protocol
        workers=workers,
        http=HTTPModes.http1,
        websockets=False,
        http1_settings=HTTP1Settings(header_read_timeout=max(1, round(head_timeout_seconds * 1000))),
        backlog=BACKLOG,
        backpressure=CONNECTIONS_PER_WORKER,
        workers_kill_timeout=WORKERS_KILL_SECONDS,
        respawn_failed_workers=True,  # as uvicorn's --workers supervisor (a crash loop still exits)
        log_level=LogLevels.warning,  # as uvicorn's log_level="warning": no start-up chatter
        log_dictconfig=_LOG_CONFIG,
        log_access=False,
        factory=True,
    )
    server.serve(target_loader=load_worker_app)


def refuse_a_port_in_use(host: str, port: int) -> None:
    """Granian's workers bind with SO_REUSEPORT, so a second server on a taken port (an old
    instance, another run) would start and silently share its connections. Bind once without it,
    as uvicorn does, to fail like uvicorn instead: "address already in use"."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT port is free
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(exc.errno, f"{host}:{port}: address already in use") from exc
            raise


def load_worker_app(target: str) -> Any:
    """In each worker process, before it serves: the ASGI app, and the shutdown hook."""
    _catch_signals_while_booting()
    from app.client_address import trusted_proxy_middleware
    from app.main import create_served_app
    from app.settings import load_settings

    assert target == TARGET, target
    _hook_worker_signals()
    return trusted_proxy_middleware(create_served_app(), load_settings().http.trusted_proxies)


_SIGNALLED_WHILE_BOOTING: list[int] = []


def _catch_signals_while_booting() -> None:
    """A worker is forked with the supervisor's SIGTERM/SIGINT handler, which does nothing in a
    worker: a SIGTERM that arrives while the worker builds the app (before granian installs the
    worker's own handlers) would be lost, and the worker killed WORKERS_KILL_SECONDS later. Note
    such a signal instead; the worker begins its shutdown as soon as its handlers are in place."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: _SIGNALLED_WHILE_BOOTING.append(signum))


def _hook_worker_signals() -> None:
    """Make a worker call server_shutdown_begins() the moment SIGTERM/SIGINT reaches it.

    A granian worker installs its signal handlers with `granian._signals.set_loop_signals(loop)`,
    which returns the WorkerSignal that stops the Rust server; the Python side hears back only
    after every connection has finished (`WorkerSignal.add_cb`), too late for an open stream. This
    wraps that function, looked up when the worker starts serving (after this loader ran), so the
    worker's handlers first tell the app, then stop the server as before. Should a granian release
    drop it, the worker logs a warning and streams then end only at STREAM_MAX_SECONDS or when the
    supervisor kills the worker (WORKERS_KILL_SECONDS).
    """
    from granian import _signals

    original: Callable[[asyncio.AbstractEventLoop], Any] | None = getattr(_signals, "set_loop_signals", None)
    if original is None or getattr(original, "tells_the_app", False):
        if original is None:
            log.warning("granian has no set_loop_signals: open status streams will hold its shutdown")
        return

    def set_loop_signals(loop: asyncio.AbstractEventLoop) -> Any:
        stop_server = original(loop)

        def shutdown(*_: object) -> None:
            server_shutdown_begins()
            stop_server.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, shutdown)
            except NotImplementedError:  # as granian's own fallback
                signal.signal(sig, shutdown)
        if _SIGNALLED_WHILE_BOOTING:  # told to stop while booting: serve nothing, then stop
            loop.call_soon(shutdown)
        return stop_server

    set_loop_signals.tells_the_app = True  # type: ignore[attr-defined]
    _signals.set_loop_signals = set_loop_signals
