"""`payments dev` (what `make run` calls) as a real process: its ports, its banner, its mock Toss.

Every run gets its own SQLite file (a SQLite DATABASE_URL is the one database setting `payments
dev` keeps), so the repository's var/ is never touched.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.dev import DevError, _wait_for_mock
from tests.support.servers import RunningServer, free_port, port_open, running_server, start_process

BANNER = "AsyncSite Payments (development)"
REFUSAL_SECONDS = 30.0  # a refusal comes before anything starts: only the imports take time


def dev_command(port: int, mock_port: int) -> list[str]:
    return [sys.executable, "-m", "app.cli", "dev", "--port", str(port), "--mock-port", str(mock_port)]


def dev_env(tmp_path: Path) -> dict[str, str]:
    return {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'dev.sqlite3'}"}


@pytest.fixture
def listening_socket() -> Iterator[int]:
    """A port something else listens on, for as long as the test runs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def refused(tmp_path: Path, port: int, mock_port: int) -> subprocess.CompletedProcess[str]:
    """Run `payments dev` expecting it to refuse at once."""
    started = time.monotonic()
    result = subprocess.run(
        dev_command(port, mock_port),
        capture_output=True,
        text=True,
        timeout=REFUSAL_SECONDS + 30,
        cwd=tmp_path,
        env={**os.environ, **dev_env(tmp_path)},
    )
    assert time.monotonic() - started < REFUSAL_SECONDS
    return result


def assert_nothing_started(result: subprocess.CompletedProcess[str], tmp_path: Path, *free: int) -> None:
    assert BANNER not in result.stdout and "TOKEN" not in result.stdout, result.stdout
    assert "eyJ" not in result.stdout + result.stderr  # no JWT anywhere
    assert not (tmp_path / "dev.sqlite3").exists()  # not even migrated
    for port in free:
        assert not port_open(port), f"something was started on {port}"


def test_a_busy_api_port_is_named_with_its_flag(tmp_path: Path, listening_socket: int) -> None:
    mock_port = free_port()

    result = refused(tmp_path, listening_socket, mock_port)

    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stderr == (
        f"payments dev: port {listening_socket} (API) is already in use; "
        "choose another with --port (make run PORT=…)\n"
    )
    assert_nothing_started(result, tmp_path, mock_port)


def test_a_busy_mock_port_is_named_with_its_flag(tmp_path: Path, listening_socket: int) -> None:
    port = free_port()

    result = refused(tmp_path, port, listening_socket)

    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stderr == (
        f"payments dev: port {listening_socket} (mock Toss) is already in use; "
        "choose another with --mock-port (make run MOCK_PORT=…)\n"
    )
    assert_nothing_started(result, tmp_path, port)


def test_a_mock_toss_already_running_on_the_mock_port_is_not_adopted(tmp_path: Path) -> None:
    """The old failure: someone's mock answered the health check, so `payments dev` printed its
    banner and token with it, then died on the API port."""
    port = free_port()
    with running_server(["mock_toss"], health_path="/_mock/health", name="someone-elses-mock") as theirs:
        result = refused(tmp_path, port, theirs.port)

        assert theirs.alive()
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert f"port {theirs.port} (mock Toss) is already in use" in result.stderr
    assert "--mock-port" in result.stderr
    assert_nothing_started(result, tmp_path, port)


def test_one_port_for_both_is_refused(tmp_path: Path) -> None:
    port = free_port()

    result = refused(tmp_path, port, port)

    assert result.returncode == 2
    assert f"--port and --mock-port are both {port}" in result.stderr
    assert result.stderr.count("\n") == 1
    assert_nothing_started(result, tmp_path, port)


def test_a_mock_answering_with_another_pid_is_never_used(mock_toss: RunningServer) -> None:
    """Waiting for its mock, `payments dev` accepts only a health answer carrying the pid of the
    process it started; if that process exits, it says who answers instead."""
    ours = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    try:
        with pytest.raises(DevError) as stopped:
            _wait_for_mock(ours, "127.0.0.1", mock_toss.port)
    finally:
        ours.kill()
        ours.wait()

    assert f"pid {mock_toss.process.pid}" in str(stopped.value)
    assert "--mock-port" in str(stopped.value)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stop_with", "exit_status"),
    [pytest.param(signal.SIGTERM, 143, id="SIGTERM"), pytest.param(signal.SIGINT, 130, id="SIGINT")],
)
def test_payments_dev_serves_on_the_chosen_ports_and_stops_its_mock(
    tmp_path: Path, stop_with: signal.Signals, exit_status: int
) -> None:
    port, mock_port = free_port(), free_port()
    while mock_port == port:
        mock_port = free_port()
    dev = start_process(
        dev_command(port, mock_port),
        name="payments-dev",
        env=dev_env(tmp_path),
        cwd=tmp_path,
        log_path=tmp_path / "dev.log",
        own_group=True,  # signals below go to it alone; a failed test's leftovers go with its group
    )
    try:
        dev.wait_for_http(f"http://127.0.0.1:{port}/health/live", timeout=60)
        api = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{api}/demo/", timeout=10, trust_env=False).status_code == 200
        health = httpx.get(f"http://127.0.0.1:{mock_port}/_mock/health", timeout=10, trust_env=False)
        assert health.status_code == 200
        mock_pid = health.json()["pid"]
        assert mock_pid != dev.process.pid
        log = dev.log()
        assert BANNER in log
        assert f"{api}/demo/" in log
        assert f"http://127.0.0.1:{mock_port}" in log
        assert "export TOKEN=" in log
        assert (tmp_path / "dev.sqlite3").exists()
        # A browser tab following a payment's status stream must not hold the stop up.
        stream = _open_status_stream(api, log.split("export TOKEN=", 1)[1].split()[0])

        dev.process.send_signal(stop_with)  # to `payments dev` only, not to its mock
        assert dev.process.wait(timeout=15) == exit_status, dev.log()[-3000:]
        stream.close()
        assert _gone(mock_pid, within=10), f"the mock Toss (pid {mock_pid}) outlived payments dev"
        assert not port_open(mock_port) and not port_open(port)
    finally:
        dev.stop(grace_seconds=5)


def _open_status_stream(api: str, token: str) -> socket.socket:
    """Issue a payment as the banner's user and open its status stream; the first event is read."""
    issued = httpx.post(
        f"{api}/api/payments/issue",
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"dev-stop-{time.time_ns()}"},
        json={"productType": "STUDY", "productId": "study_123", "amount": 50000},
        timeout=10,
        trust_env=False,
    )
    assert issued.status_code == 201, issued.text
    body = issued.json()
    host, port = api.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    path = f"/api/payments/{body['transactionId']}/events?streamToken={body['streamToken']}"
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
    received = b""
    while b"event: status" not in received:
        chunk = sock.recv(4096)
        assert chunk, received
        received += chunk
    return sock


def _gone(pid: int, *, within: float) -> bool:
    """Whether process `pid` no longer exists (a zombie counts as gone) within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if _is_zombie(pid):
            return True
        time.sleep(0.1)
    return False


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"
