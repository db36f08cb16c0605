"""Start and stop real processes on free loopback ports: the tests' servers and the scripts' stacks.

The one place that starts a process, logs its output to a file, waits until it is ready (an HTTP
200, a log line, any check) and stops it: SIGTERM, then SIGKILL after a grace period. The tests
(tests/support/stack.py, private_services.py, the e2e fixtures) and the scripts (scripts/loadtest.py
and, through it, bench.py and fuzz.py; bench_mock.py) all use it. Scripts put the repository root
on sys.path and import it from here, so nothing of it ships in the wheel; it imports no pytest.

    with running_server(["mock_toss"], health_path="/_mock/health") as mock:   # python -m mock_toss
        ...                                                                       # stopped afterwards
    worker = start_process([sys.executable, "-m", "app.cli", "worker"], name="worker", env=env)
    worker.wait_for_log(("Starting worker",), timeout=30)
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
# The Redis server tests use (databases are chosen per test). TEST_REDIS_HOST_URL points a test
# run at a redis-server of its own, so two runs on one machine never flush each other's queues.
REDIS_HOST_URL = os.environ.get("TEST_REDIS_HOST_URL", "redis://127.0.0.1:6379").rstrip("/")
LOG_TAIL_CHARS = 4000  # how much of a failed process's log an error message shows


class ProcessFailed(RuntimeError):
    """A started process exited early, or did not become ready in time (it is killed then)."""


class PortInUse(ProcessFailed):
    """A server's port was taken between choosing it and binding it (a busy shared machine)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port (a service that should be running)."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@dataclass
class ManagedProcess:
    """A process we started, its output (stdout and stderr) in `log_path`.

    `own_group`: it was started in a session of its own, so signals go to its whole process group
    (uvicorn's worker processes with it) and Ctrl-C reaches only the starter, which stops it in order.
    """

    process: subprocess.Popen[bytes]
    log_path: Path
    name: str = "process"
    own_group: bool = False
    grace_seconds: float = 10.0

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, like a crash."""
        if self.alive():
            self._signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, grace_seconds: float | None = None, *, sig: signal.Signals = signal.SIGTERM) -> None:
        """`sig` (SIGTERM: a shutdown), then SIGKILL if it does not leave within the grace period."""
        if self.alive():
            self._signal(sig)
            try:
                self.process.wait(timeout=self.grace_seconds if grace_seconds is None else grace_seconds)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.own_group:  # none of its children (uvicorn's workers) outlives it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def wait_until(
        self,
        ready: Callable[[], bool],
        *,
        timeout: float,
        waiting_for: str,
        interval: float = 0.1,
        last_seen: Callable[[], str] | None = None,
    ) -> None:
        """Poll `ready` until it holds. ProcessFailed if the process exits first (PortInUse when its
        log says its address was in use), or, after killing it, once `timeout` seconds have passed."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                log = self.log()
                failure = PortInUse if "address already in use" in log.lower() else ProcessFailed
                raise failure(
                    f"{self.name} exited with {self.process.returncode} before {waiting_for}; "
                    f"{self._log_excerpt(log)}"
                )
            if ready():
                return
            if time.monotonic() >= deadline:
                self.kill()
                seen = f" (last: {last_seen()})" if last_seen else ""
                raise ProcessFailed(
                    f"{self.name}: no {waiting_for} within {timeout:.0f} s{seen}; {self._log_excerpt(self.log())}"
                )
            time.sleep(interval)

    def wait_for_http(self, url: str, *, timeout: float = 30.0) -> None:
        """Wait until `url` answers 200."""
        last = ["no answer"]

        def answers_200() -> bool:
            try:
                response = httpx.get(url, timeout=2.0, trust_env=False)  # loopback: never via a proxy
            except httpx.HTTPError as exc:
                last[0] = type(exc).__name__
                return False
            last[0] = f"HTTP {response.status_code} {response.text[:200]}"
            return response.status_code == 200

        self.wait_until(
            answers_200, timeout=timeout, waiting_for=f"200 from {url}", last_seen=lambda: last[0]
        )

    def wait_for_log(self, markers: Sequence[str], *, timeout: float = 30.0) -> None:
        """Wait until its log shows one of `markers`."""
        self.wait_until(
            lambda: any(marker in self.log() for marker in markers),
            timeout=timeout,
            waiting_for=f"log line with one of {list(markers)}",
        )

    def _signal(self, sig: signal.Signals) -> None:
        if self.own_group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)

    def _log_excerpt(self, log: str) -> str:
        return f"log {self.log_path}:\n{log[-LOG_TAIL_CHARS:]}"


@dataclass
class RunningServer(ManagedProcess):
    """A server process on 127.0.0.1; `url` is its base URL."""

    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _spawn(
    command: Sequence[str],
    *,
    name: str,
    log_path: Path | None,
    env: Mapping[str, str] | None,
    cwd: Path,
    own_group: bool,
) -> tuple[subprocess.Popen[bytes], Path]:
    if log_path is None:
        handle, temporary = tempfile.mkstemp(prefix=f"{name}-", suffix=".log")
        os.close(handle)
        log_path = Path(temporary)
    with log_path.open("wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            cwd=cwd,
            start_new_session=own_group,
        )
    return process, log_path


def start_process(
    command: Sequence[str],
    *,
    name: str,
    log_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path = REPO_ROOT,
    own_group: bool = False,
    grace_seconds: float = 10.0,
) -> ManagedProcess:
    """Start `command` (environment: ours plus `env`), its output in `log_path` (default: a new
    temporary file, kept for reading after the run). Returns at once: wait with its wait_* methods."""
    process, path = _spawn(command, name=name, log_path=log_path, env=env, cwd=cwd, own_group=own_group)
    return ManagedProcess(
        process=process, log_path=path, name=name, own_group=own_group, grace_seconds=grace_seconds
    )


def start_server(
    args: Sequence[str],
    *,
    port: int,
    health_path: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    name: str = "server",
    log_path: Path | None = None,
    own_group: bool = False,
    grace_seconds: float = 10.0,
) -> RunningServer:
    """Start `python -m <args>` (args[0] is a module; args carry the port) and wait until
    `health_path` answers 200. ProcessFailed (PortInUse) if it does not; it is not running then."""
    process, path = _spawn(
        [sys.executable, "-m", *args],
        name=name,
        log_path=log_path,
        env=env,
        cwd=REPO_ROOT,
        own_group=own_group,
    )
    server = RunningServer(
        process=process,
        log_path=path,
        name=name,
        own_group=own_group,
        grace_seconds=grace_seconds,
        port=port,
    )
    try:
        server.wait_for_http(f"{server.url}{health_path}", timeout=timeout)
    except ProcessFailed:
        server.stop()  # a group's leftovers too
        raise
    return server


@contextlib.contextmanager
def running_server(
    args: Sequence[str],
    *,
    port: int | None = None,
    health_path: str,
    env: Mapping[str, str] | None = None,
    name: str = "server",
) -> Iterator[RunningServer]:
    """start_server with `--port` added (a free one unless given); always stopped afterwards."""
    chosen = port or free_port()
    server = start_server(
        [*args, "--port", str(chosen)], port=chosen, health_path=health_path, env=env, name=name
    )
    try:
        yield server
    finally:
        server.stop()
