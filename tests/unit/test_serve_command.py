"""`payments serve --server granian|uvicorn` (and SERVER): which server runs, with what.

The servers themselves are not started here (tests/e2e/topology/test_servers.py and the other
topology tests run both for real); uvicorn.run and run_granian are replaced by recorders.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

import app.metrics  # noqa: F401  (prometheus_client decides its mode at import: before the env changes)
from app import cli, granian_server


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(cli, "_configure_logging", lambda **_: None)  # the test process keeps its logging
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: calls.append(("uvicorn", kwargs)))
    monkeypatch.setattr(granian_server, "run_granian", lambda **kwargs: calls.append(("granian", kwargs)))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")  # restored after the test
    for name in ("SERVER", "REDIS_URL", "METRICS_PORT", "ENVIRONMENT", "TRUSTED_PROXIES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "sqlite+aiosqlite://")
    monkeypatch.setenv("REQUEST_HEAD_TIMEOUT_SECONDS", "3.5")
    return calls


def serve(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli.main, ["serve", "--port", "18000", *args], env=env)


def test_server_uvicorn_runs_uvicorn_with_its_protocol(started: list[tuple[str, dict[str, Any]]]) -> None:
    result = serve("--server", "uvicorn")
    assert result.exit_code == 0, result.output
    [(server, options)] = started
    assert server == "uvicorn"
    assert options["timeout_graceful_shutdown"] == 20 and options["proxy_headers"] is False
    assert options["http"].keywords == {"head_timeout_seconds": 3.5}  # app/http_server.py
    assert not os.environ["PROMETHEUS_MULTIPROC_DIR"]  # one process: its own registry


def test_granian_is_the_default_with_the_head_timeout(
    started: list[tuple[str, dict[str, Any]]],
) -> None:
    result = serve()
    assert result.exit_code == 0, result.output
    assert started == [
        ("granian", {"host": "127.0.0.1", "port": 18000, "workers": 1, "head_timeout_seconds": 3.5})
    ]
    # Granian's one worker is a process apart from the supervisor, whose metrics listener reads it.
    assert os.path.isdir(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    os.rmdir(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def test_the_server_setting_chooses_and_the_option_overrides_it(
    started: list[tuple[str, dict[str, Any]]],
) -> None:
    assert serve(env={"SERVER": "uvicorn"}).exit_code == 0
    assert serve("--server", "granian", env={"SERVER": "uvicorn"}).exit_code == 0
    assert serve(env={"SERVER": "granian"}).exit_code == 0
    assert [server for server, _ in started] == ["uvicorn", "granian", "granian"]
    if os.environ["PROMETHEUS_MULTIPROC_DIR"]:
        os.rmdir(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def test_an_unknown_server_is_refused(started: list[tuple[str, dict[str, Any]]]) -> None:
    by_option = serve("--server", "gunicorn")
    by_setting = serve(env={"SERVER": "gunicorn"})
    assert by_option.exit_code == 2 and "gunicorn" in by_option.output
    assert by_setting.exit_code == 1 and "SERVER" in by_setting.output
    assert started == []


@contextlib.contextmanager
def granian_worker_signals(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[asyncio.AbstractEventLoop, list[str]]]:
    """A loop for granian's worker signal set-up with our hook, and what the app was told; this
    process's SIGINT/SIGTERM handling is restored afterwards."""
    from granian import _signals

    from app.http_server import on_server_shutdown

    monkeypatch.setattr(_signals, "set_loop_signals", _signals.set_loop_signals)  # undone afterwards
    monkeypatch.setattr(granian_server, "_SIGNALLED_WHILE_BOOTING", [])
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    told: list[str] = []
    forget = on_server_shutdown(lambda: told.append("shutdown"))
    loop = asyncio.new_event_loop()
    try:
        yield loop, told
    finally:
        forget()
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, handler)
        loop.close()


def run_until_told(loop: asyncio.AbstractEventLoop, told: list[str]) -> None:
    for _ in range(100):  # bounded: up to 5 s for the handler to run
        loop.run_until_complete(asyncio.sleep(0.05))
        if told:
            return


def test_granian_workers_call_the_shutdown_callbacks_when_signalled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hook each granian worker installs wraps granian's own signal set-up (app/granian_server.py)."""
    from granian import _signals

    with granian_worker_signals(monkeypatch) as (loop, told):
        granian_server._hook_worker_signals()
        granian_server._hook_worker_signals()  # once is enough: not wrapped twice
        assert getattr(_signals.set_loop_signals, "tells_the_app", False)
        _signals.set_loop_signals(loop)
        loop.call_soon(os.kill, os.getpid(), signal.SIGTERM)  # handled on the loop, not by default
        run_until_told(loop, told)
    assert told == ["shutdown"]


def test_a_signal_while_a_granian_worker_boots_stops_it_once_it_can(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker inherits the supervisor's handler, which would lose a SIGTERM sent while it builds the app."""
    from granian import _signals

    with granian_worker_signals(monkeypatch) as (loop, told):
        granian_server._catch_signals_while_booting()
        os.kill(os.getpid(), signal.SIGTERM)  # noted, neither fatal nor lost
        deadline = time.monotonic() + 5
        while not granian_server._SIGNALLED_WHILE_BOOTING and time.monotonic() < deadline:
            time.sleep(0.01)
        assert granian_server._SIGNALLED_WHILE_BOOTING == [signal.SIGTERM]
        granian_server._hook_worker_signals()
        _signals.set_loop_signals(loop)  # the worker's handlers are in place: it stops now
        run_until_told(loop, told)
    assert told == ["shutdown"]


def test_granian_refuses_a_port_another_server_listens_on() -> None:
    """Granian's own SO_REUSEPORT listeners would share the port with the server already there."""
    import socket

    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # as a granian worker binds
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(granian_server.PortInUse, match="address already in use"):
            granian_server.refuse_a_port_in_use("127.0.0.1", port)
