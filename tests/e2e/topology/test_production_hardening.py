"""Hardening that only a real `payments serve` can show: the request-head timeout and the metrics port,
under uvicorn and under granian (`--server`).

Slow clients talk to the server over raw sockets. Every socket has its own bounded timeout, so a
server that never cuts a connection off fails the test within seconds instead of hanging it.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from app.core.auth import TokenAuthority
from app.settings import ENVIRONMENT_VARIABLES
from tests.support.servers import REDIS_HOST_URL, RunningServer, free_port, running_server

from .helpers import STUDY, metric_value

HEAD_TIMEOUT = 2.0  # REQUEST_HEAD_TIMEOUT_SECONDS of the server under test
SOCKET_TIMEOUT = 8.0  # how long a test waits for the server to act before failing


def only(**settings: str) -> dict[str, str]:
    """These settings and nothing the test runner's environment might carry."""
    blanked = {name: "" for name in ENVIRONMENT_VARIABLES if name in os.environ}
    return {**blanked, **settings}


@pytest.fixture(scope="module", params=["uvicorn", "granian"])
def slow_client_server(request: pytest.FixtureRequest, mysql_url: str) -> Iterator[RunningServer]:
    env = only(ENVIRONMENT="test", DATABASE_URL=mysql_url, REQUEST_HEAD_TIMEOUT_SECONDS=str(HEAD_TIMEOUT))
    args = ["app.cli", "serve", "--server", request.param]
    with running_server(args, health_path="/health/live", env=env) as server:
        yield server


def connect(server: RunningServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=SOCKET_TIMEOUT)
    sock.settimeout(SOCKET_TIMEOUT)
    return sock


def seconds_until_closed(sock: socket.socket, started: float) -> tuple[float, bytes]:
    """Read until the server closes the connection; (seconds since `started`, what it sent)."""
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {SOCKET_TIMEOUT} s; it sent {received!r}")
    except ConnectionResetError:
        pass
    return time.monotonic() - started, received


def read_response(sock: socket.socket) -> bytes:
    """One complete response with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(4096)
    return head


def test_a_partial_request_head_is_cut_off_after_the_timeout(slow_client_server: RunningServer) -> None:
    with connect(slow_client_server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow")
        elapsed, received = seconds_until_closed(sock, started)

    assert HEAD_TIMEOUT - 0.5 <= elapsed <= HEAD_TIMEOUT + 2.0, elapsed
    # uvicorn (app/http_server.py) answers 408 when a byte had arrived; granian (hyper) just closes.
    assert received == b"" or received.startswith(b"HTTP/1.1 408"), received


def test_a_trickling_head_is_cut_off_although_bytes_keep_coming(slow_client_server: RunningServer) -> None:
    """Slowloris proper: one byte every 0.25 s never completes the head and never lets it expire."""
    head = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 200
    with connect(slow_client_server) as sock:
        started = time.monotonic()
        closed_after = None
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - started
                break
            time.sleep(0.25)
            if time.monotonic() - started > SOCKET_TIMEOUT:
                pytest.fail(f"still open after {SOCKET_TIMEOUT} s of trickling")

    assert closed_after is not None and closed_after <= HEAD_TIMEOUT + 2.0, closed_after


def test_a_connection_that_sends_nothing_is_cut_off(slow_client_server: RunningServer) -> None:
    with connect(slow_client_server) as sock:
        elapsed, received = seconds_until_closed(sock, time.monotonic())

    assert elapsed <= HEAD_TIMEOUT + 2.0, elapsed
    assert received == b"" or received.startswith(b"HTTP/1.1 408"), received


def test_the_next_request_on_a_kept_alive_connection_gets_the_same_deadline(
    slow_client_server: RunningServer,
) -> None:
    with connect(slow_client_server) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
        elapsed, _ = seconds_until_closed(sock, started)

    assert elapsed <= HEAD_TIMEOUT + 2.0, elapsed


def test_a_slow_but_timely_head_and_a_slow_body_are_served(slow_client_server: RunningServer) -> None:
    """The control: the deadline covers the head only, and a head that completes in time is served."""
    with connect(slow_client_server) as sock:
        sock.sendall(b"POST /api/payments/issue HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        time.sleep(HEAD_TIMEOUT / 2)
        sock.sendall(b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n")
        time.sleep(HEAD_TIMEOUT + 0.5)  # past the head deadline, inside the body
        sock.sendall(b"{}")
        head = read_response(sock)

    assert head.startswith(b"HTTP/1.1 401"), head  # answered by the app: no token


# --- the metrics port ---------------------------------------------------------------------------------


def processes_serving(server: RunningServer, connections: int = 20) -> set[int]:
    """The worker processes that answered `connections` new kept-alive connections (read off the
    sockets each process holds). Spread by SO_REUSEPORT's hash over 2 workers, all 20 land on one
    with a chance of 2⁻¹⁹."""
    socks = [connect(server) for _ in range(connections)]
    try:
        for sock in socks:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        for sock in socks:
            assert read_response(sock).startswith(b"HTTP/1.1 200")
        ours = {sock.getsockname()[1] for sock in socks}
        return {
            child.pid
            for child in psutil.Process(server.process.pid).children(recursive=True)
            for conn in child.net_connections(kind="tcp")
            if conn.laddr and conn.laddr.port == server.port and conn.raddr and conn.raddr.port in ours
        }
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.parametrize(
    ("server", "workers"), [("uvicorn", 2), ("granian", 2), ("granian", 1)], ids=lambda v: str(v)
)
def test_production_metrics_on_their_own_port_aggregate_every_worker_process(
    server: str, workers: int, mysql_url: str
) -> None:
    """`--workers 2`: the supervisor's metrics listener shows series recorded by the worker processes.
    Granian's one worker is a process of its own too."""
    jwt_secret = secrets.token_urlsafe(32)
    metrics_port = free_port()
    env = only(
        ENVIRONMENT="production",
        JWT_SECRET=jwt_secret,
        TOSS_SECRET_KEY="test_sk_" + secrets.token_hex(16),
        TOSS_CLIENT_KEY="test_ck_" + secrets.token_hex(16),
        DATABASE_URL=mysql_url,
        REDIS_URL=f"{REDIS_HOST_URL}/8",
        METRICS_PORT=str(metrics_port),
    )
    headers = {"Authorization": f"Bearer {TokenAuthority(jwt_secret).mint('metrics-port-buyer')}"}
    args = ["app.cli", "serve", "--workers", str(workers), "--server", server]
    with running_server(args, health_path="/health/ready", env=env) as api:
        on_api_port = httpx.get(f"{api.url}/metrics", timeout=5.0)
        issued = [
            httpx.post(f"{api.url}/api/payments/issue", json=STUDY, headers=headers, timeout=10.0)
            for _ in range(4)  # new connections: likely spread over both processes
        ]
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5.0)
        serving = processes_serving(api)
        log = api.log()

    assert on_api_port.status_code == 404, on_api_port.text[:300]
    assert [r.status_code for r in issued] == [201] * 4, [r.text for r in issued]
    assert scraped.status_code == 200, scraped.text[:300]
    created = metric_value(scraped.text, "payments_transactions_created_total", product_type="STUDY")
    assert created >= 4, f"created_total{{STUDY}} = {created} on the metrics port"
    assert "Traceback" not in log, log[-3000:]
    # Granian's workers each listen (SO_REUSEPORT: the kernel spreads new connections over them), so
    # each takes some. uvicorn's share one socket, where a worker that wakes first may accept them all.
    if server == "granian":
        assert len(serving) == workers, serving
    else:
        assert 1 <= len(serving) <= workers, serving
