"""`payments dev`: the API on SQLite and the in-process queue, with the mock Toss beside it.

In order: both ports are checked (nothing is printed, migrated or started while one is taken),
the database is migrated, the mock Toss is started and waited for (its health answer must carry
the pid of the process started here: a mock someone else runs is never used), then the banner
and the API. SIGTERM and Ctrl-C stop the API, then the mock.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType

import httpx
import uvicorn

from app.client_address import server_proxy_options
from app.core.auth import DEVELOPMENT_USER_ID, TokenAuthority
from app.http_server import head_timeout_protocol
from app.main import create_app
from app.migrate import upgrade_database
from app.settings import load_settings

EXIT_PORT_UNUSABLE = 2  # a port is taken (or both flags name one port): nothing was started
MOCK_START_SECONDS = 20.0
# Left out of the environment: `payments dev` is the embedded default (a SQLite DATABASE_URL stays).
_NOT_EMBEDDED = ("REDIS_URL", "ENVIRONMENT")


class DevError(Exception):
    """`payments dev` cannot go on: one line for stderr, and the exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class _Listener:
    """A port `payments dev` listens on, and how the user chooses another."""

    port: int
    role: str
    flag: str
    make_variable: str

    @property
    def choose_another(self) -> str:
        return f"choose another with {self.flag} (make run {self.make_variable}=…)"


def check_ports(host: str, port: int, mock_port: int) -> None:
    """Both ports can be listened on, or DevError (status 2) naming the first that cannot, what it
    was for and the flag that changes it."""
    api = _Listener(port, "API", "--port", "PORT")
    mock = _Listener(mock_port, "mock Toss", "--mock-port", "MOCK_PORT")
    if port == mock_port:
        raise DevError(
            f"--port and --mock-port are both {port}: the API and the mock Toss need a port each; "
            f"{mock.choose_another}",
            EXIT_PORT_UNUSABLE,
        )
    for listener in (api, mock):
        problem = _cannot_listen(host, listener.port)
        if problem == "in use":
            raise DevError(
                f"port {listener.port} ({listener.role}) is already in use; {listener.choose_another}",
                EXIT_PORT_UNUSABLE,
            )
        if problem is not None:
            raise DevError(
                f"cannot listen on {host} port {listener.port} ({listener.role}): {problem}; "
                f"{listener.choose_another}",
                EXIT_PORT_UNUSABLE,
            )


def _cannot_listen(host: str, port: int) -> str | None:
    """Why nothing could listen on (host, port) now: "in use", another reason, or None (free).

    Binds a socket the way the servers will (SO_REUSEADDR, so a port whose last connections are
    in TIME_WAIT counts as free, as it is for them) and lets it go at once. Like asyncio, an
    address family the machine lacks (EADDRNOTAVAIL) is skipped while another address binds.
    """
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"unknown host ({exc.strerror})"
    skipped: list[str] = []
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as sock:
            if os.name != "nt":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return "in use"
                if exc.errno != errno.EADDRNOTAVAIL:
                    return exc.strerror or str(exc)
                skipped.append(exc.strerror or str(exc))
                continue
        return None
    return skipped[0] if skipped else "no address to listen on"


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _embedded_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment without what would leave the embedded default: Redis, another environment,
    a MariaDB/MySQL DATABASE_URL. A SQLite DATABASE_URL is kept (another file than var/'s)."""
    kept = {name: value for name, value in environ.items() if name not in _NOT_EMBEDDED}
    if not kept.get("DATABASE_URL", "").startswith("sqlite"):
        kept.pop("DATABASE_URL", None)
    return kept


def _start_mock(host: str, mock_port: int, webhook_url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mock_toss",
            "--host",
            host,
            "--port",
            str(mock_port),
            "--webhook-url",
            webhook_url,
        ]
    )


def _wait_for_mock(process: subprocess.Popen[bytes], host: str, mock_port: int) -> None:
    """Until the mock started here answers its health check with its own pid. An answer from any
    other process on that port is not ours: never used, and named if ours then exits."""
    url = f"{_url(host, mock_port)}/_mock/health"
    deadline = time.monotonic() + MOCK_START_SECONDS
    stranger: object = None
    while True:
        if process.poll() is not None:
            other = (
                f"; another process (pid {stranger}) answers there: choose another port with "
                "--mock-port (make run MOCK_PORT=…)"
                if stranger is not None
                else " (its output is above)"
            )
            raise DevError(
                f"the mock Toss exited with status {process.returncode} before it answered on port "
                f"{mock_port}{other}"
            )
        pid = _health_pid(url)
        if pid == process.pid:
            return
        if pid is not None:
            stranger = pid
        if time.monotonic() >= deadline:
            raise DevError(
                f"the mock Toss did not answer on port {mock_port} within {MOCK_START_SECONDS:.0f} s"
            )
        time.sleep(0.2)


def _health_pid(url: str) -> object:
    """The `pid` of the mock answering `url`, or None (no answer, or none with a pid)."""
    try:
        answer = httpx.get(url, timeout=1.0, trust_env=False)  # loopback: never through a proxy
        body = answer.json() if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    return body.get("pid") if isinstance(body, dict) else None


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM ends `payments dev` through its `finally`, which stops the mock. (uvicorn handles
    SIGTERM itself while it serves, then raises it again once it stopped: it lands here.)"""
    raise SystemExit(128 + signum)


def _banner(host: str, port: int, mock_port: int, token: str, client_key: str, database_url: str) -> str:
    api = _url(host, port)
    mock = _url(host, mock_port)
    get_id = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"transactionId\"])'"
    get_redirect = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"redirectUrl\"])'"
    return f"""
================ AsyncSite Payments (development) ================
 Demo shop (click here)  {api}/demo/
 API                     {api}/api/payments  (OpenAPI: {api}/schema)
 Mock Toss               {mock}  (journal: {mock}/_mock/requests)
 Database                {database_url}
 Queue                   in-process (REDIS_URL unset)

 Dev token for user '{DEVELOPMENT_USER_ID}' (8 h), the demo pages' user too:
   export TOKEN={token}

 One checkout with curl:
   TX=$(curl -s -X POST {api}/api/payments/issue -H "Authorization: Bearer $TOKEN" \\
        -H 'Content-Type: application/json' -H "Idempotency-Key: demo-$RANDOM" \\
        -d '{{"productType":"STUDY","productId":"study_123","amount":50000}}' | {get_id})
   REDIRECT=$(curl -s -X POST {mock}/_mock/checkout -H 'Content-Type: application/json' \\
        -d '{{"clientKey":"{client_key}","orderId":"'$TX'","amount":50000,"orderName":"study",
             "method":"CARD","successUrl":"{api}/api/payments/callback/success",
             "failUrl":"{api}/api/payments/callback/fail?transactionId='$TX'"}}' | {get_redirect})
   curl -s -o /dev/null -w '%{{http_code}} -> %{{redirect_url}}\\n' "$REDIRECT"
   curl -s {api}/api/payments/$TX/status -H "Authorization: Bearer $TOKEN"
==================================================================
"""


def run_dev(*, host: str, port: int, mock_port: int) -> int:
    """Run until SIGTERM or Ctrl-C. DevError when it cannot start (status 2: a port is unusable)."""
    check_ports(host, port, mock_port)  # before anything is printed, migrated or started
    api = _url(host, port)
    settings = load_settings(
        _embedded_environ(os.environ),
        environment="development",
        toss_api_url=_url(host, mock_port),
        public_base_url=api,
        frontend_base_url=f"{api}/demo",
    )
    previous_sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    mock: subprocess.Popen[bytes] | None = None
    try:
        upgrade_database(settings.database.url)
        mock = _start_mock(host, mock_port, f"{api}/webhooks/payments/toss")
        _wait_for_mock(mock, host, mock_port)
        token = TokenAuthority(settings.http.jwt_secret).mint(DEVELOPMENT_USER_ID, ttl_seconds=8 * 3600)
        print(
            _banner(host, port, mock_port, token, settings.toss.client_key, settings.database.url), flush=True
        )
        config = uvicorn.Config(
            create_app(settings),
            host=host,
            port=port,
            log_level="info",
            # The protocol `payments serve` uses: a deadline on request heads, and open status
            # streams end when shutdown starts (so Ctrl-C never waits for a browser tab).
            http=head_timeout_protocol(settings.http.request_head_timeout_seconds),
            timeout_graceful_shutdown=5,
            **server_proxy_options(settings.http.trusted_proxies),
        )
        uvicorn.Server(config).run()
    except KeyboardInterrupt:  # Ctrl-C: uvicorn stopped first, then raised it again
        return 128 + signal.SIGINT
    finally:
        if mock is not None:
            _stop(mock)
        signal.signal(signal.SIGTERM, previous_sigterm)
    return 0
