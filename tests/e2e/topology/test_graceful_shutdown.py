"""Graceful shutdown: SIGTERM to `payments serve`, under uvicorn and under granian.

A slow success callback in flight: the PG holds the confirm for 2 s (the mock's slow test card).
The API receives SIGTERM once the confirm has reached the PG; it must still finish that request
(302 to the success page, the payment recorded), run its lifespan shutdown (pools closed, logged)
and exit cleanly — with one worker, and with `--workers 2` as compose.yaml runs it.

A request held by its client (`Expect: 100-continue`, the body sent only when the test says):
while it is in progress after SIGTERM, new connections are not served (refused, except by
uvicorn's `--workers` supervisor, which leaves them waiting), and the held request is still
answered once its body comes. The open status streams: test_status_stream.py.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.auth import TokenAuthority
from tests.support.servers import RunningServer, free_port, start_server
from tests.support.stack import FAST_ENV

from .helpers import (
    CARD_SLOW_CONFIRM,
    CONFIRM_PATH,
    STUDY,
    SUCCESS_PAGE,
    issue,
    landed_on,
    mock_toss_on,
    open_window,
    statuses,
    user_id,
)

SLOW_CONFIRM_SECONDS = 2.0
SERVERS_AND_WORKERS = [
    pytest.param(server, workers, id=f"{server}-{workers}")
    for server in ("uvicorn", "granian")
    for workers in (1, 2)
]
# The lifespan of each worker process logs its start and, once its pools are closed, its end (app.main).
STARTED_LINE = "AsyncSite Payments is running in TEST mode"
STOPPED_LINE = "API process stopped: database and Redis connections closed"
SOCKET_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def slow_pg() -> Iterator[RunningServer]:
    with mock_toss_on(free_port(), extra_args=["--slow-confirm-seconds", str(SLOW_CONFIRM_SECONDS)]) as mock:
        yield mock


def start_api(
    server: str, workers: int, *, mysql_url: str, redis_url: str, pg_url: str, jwt_secret: str
) -> RunningServer:
    port = free_port()
    env = {
        **FAST_ENV,
        "TOSS_READ_TIMEOUT_SECONDS": "10",  # longer than the slow confirm: the request just waits
        "DATABASE_URL": mysql_url,
        "REDIS_URL": redis_url,
        "TOSS_API_URL": pg_url,
        "JWT_SECRET": jwt_secret,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "FRONTEND_BASE_URL": "http://frontend.test",
    }
    api = start_server(
        ["app.cli", "serve", "--port", str(port), "--workers", str(workers), "--server", server],
        port=port,
        health_path="/health/ready",
        env=env,
    )
    # /health/ready answers once one worker serves: wait for the others too (each logs its start).
    api.wait_until(
        lambda: api.log().count(STARTED_LINE) >= workers, timeout=30, waiting_for=f"{workers} started workers"
    )
    return api


def assert_stopped_cleanly(exit_code: int, log: str, workers: int) -> None:
    # uvicorn finishes the in-flight requests, then re-raises the SIGTERM it captured (so a lone
    # server reports -15); its --workers supervisor, and granian's supervisor, exit 0 once their
    # workers are done.
    assert exit_code in (0, -signal.SIGTERM), (exit_code, log[-3000:])
    assert "Traceback" not in log and "CancelledError" not in log, log[-3000:]
    # The lifespan shutdown ran in every worker process: pools closed.
    assert log.count(STOPPED_LINE) == workers, log[-3000:]


@pytest.mark.parametrize(("server", "workers"), SERVERS_AND_WORKERS)
async def test_sigterm_lets_the_in_flight_callback_finish(
    server: str, workers: int, mysql_url: str, redis_url: str, slow_pg: RunningServer
) -> None:
    jwt_secret = secrets.token_hex(16)
    api = start_api(
        server, workers, mysql_url=mysql_url, redis_url=redis_url, pg_url=slow_pg.url, jwt_secret=jwt_secret
    )
    engine = create_async_engine(mysql_url, pool_size=1)
    try:
        user = user_id("sigterm")
        headers = {"Authorization": f"Bearer {TokenAuthority(jwt_secret).mint(user)}"}
        async with (
            httpx.AsyncClient(base_url=api.url, timeout=30.0) as http,
            httpx.AsyncClient(base_url=slow_pg.url, timeout=10.0) as pg,
        ):
            issued = await issue(http, headers)
            tid = issued["transactionId"]
            window = await open_window(pg, issued, card=CARD_SLOW_CONFIRM)
            callback = asyncio.create_task(http.get(window.redirect_url))

            # Wait (bounded) until the confirm is at the PG and unanswered: the request is in flight.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                journal = await pg.get(
                    "/_mock/requests", params={"method": "POST", "path": CONFIRM_PATH, "orderId": tid}
                )
                if journal.json()["count"]:
                    break
                await asyncio.sleep(0.05)
            assert journal.json()["count"] == 1, journal.text
            assert journal.json()["requests"][0]["status"] is None  # not answered yet
            assert not callback.done()

            api.process.terminate()  # SIGTERM
            # Bounded by the shutdown grace (20 s in app/cli.py, app/granian_server.py): past it
            # the request would be cancelled, not answered.
            response = await asyncio.wait_for(callback, timeout=20)
            answered = await pg.get(
                "/_mock/requests", params={"method": "POST", "path": CONFIRM_PATH, "orderId": tid}
            )

        exit_code = await asyncio.to_thread(api.process.wait, 25)
        log = api.log()
        assert landed_on(response) == SUCCESS_PAGE, (response.status_code, response.text, log[-2000:])
        # The PG answered the confirm after the SIGTERM, and the request in flight used that answer.
        assert [c["status"] for c in answered.json()["requests"]] == [200], answered.text
        assert_stopped_cleanly(exit_code, log, workers)
        recorded = await statuses(engine, [tid])
        assert recorded[tid] in (40, 45), recorded  # confirmed and stored before the process left
    finally:
        await asyncio.to_thread(api.stop)  # SIGTERM (lets the supervisor stop its workers), then SIGKILL
        await engine.dispose()


def read_head(sock: socket.socket) -> bytes:
    """One response head (up to the blank line) from `sock`."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed before a response head: {data!r}"
        data += chunk
    head, _, _ = data.partition(b"\r\n\r\n")
    return head


def new_connection_is_served(url: str) -> str | None:
    """None when a new connection gets an answer; else how it failed."""
    try:
        httpx.get(f"{url}/health/live", timeout=2.0)
    except httpx.TransportError as exc:
        return type(exc).__name__
    return None


@pytest.mark.parametrize(("server", "workers"), SERVERS_AND_WORKERS)
def test_sigterm_refuses_new_connections_while_it_finishes_a_request_in_progress(
    server: str, workers: int, mysql_url: str, redis_url: str, slow_pg: RunningServer
) -> None:
    jwt_secret = secrets.token_hex(16)
    api = start_api(
        server, workers, mysql_url=mysql_url, redis_url=redis_url, pg_url=slow_pg.url, jwt_secret=jwt_secret
    )
    token = TokenAuthority(jwt_secret).mint(user_id("held"))
    body = json.dumps(STUDY).encode()
    try:
        with socket.create_connection(("127.0.0.1", api.port), timeout=SOCKET_TIMEOUT) as held:
            held.settimeout(SOCKET_TIMEOUT)
            held.sendall(
                b"POST /api/payments/issue HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + f"Authorization: Bearer {token}\r\n".encode()
                + b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
            )
            # The server asks for the body once the app reads it: the request is in progress.
            interim = read_head(held)
            assert interim.startswith(b"HTTP/1.1 100"), interim

            # One uvicorn process closes its listening socket, and so does each granian worker (its
            # own SO_REUSEPORT listener): refused. uvicorn's --workers supervisor keeps the socket it
            # handed its workers open until it exits: the kernel still completes new connections,
            # which nobody serves (they wait, then are reset when the supervisor exits). On the way
            # there a connection may still be served, or reset when queued on a closing listener.
            expected = "ReadTimeout" if server == "uvicorn" and workers > 1 else "ConnectError"
            api.process.terminate()  # SIGTERM
            deadline = time.monotonic() + 10
            while (failure := new_connection_is_served(api.url)) != expected:
                assert time.monotonic() < deadline, f"no {expected} 10 s after SIGTERM (last: {failure})"
                time.sleep(0.1)
            # The held request keeps the server up: the refusal is the shutdown's, not an exit.
            assert api.alive(), api.log()[-3000:]

            held.sendall(body)
            answer = read_head(held)
        assert answer.startswith(b"HTTP/1.1 201"), answer
        exit_code = api.process.wait(25)
        assert_stopped_cleanly(exit_code, api.log(), workers)
    finally:
        api.stop()
