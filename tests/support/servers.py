"""Start real server processes on free loopback ports for integration and e2e tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
# The Redis server tests use (databases are chosen per test). TEST_REDIS_HOST_URL points a test
# run at a redis-server of its own, so two runs on one machine never flush each other's queues.
REDIS_HOST_URL = os.environ.get("TEST_REDIS_HOST_URL", "redis://127.0.0.1:6379").rstrip("/")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ManagedProcess:
    """A process started by a test, its output in a log file."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL, like a crash."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self, grace_seconds: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not leave in time."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class RunningServer(ManagedProcess):
    """A server process started by a test; `url` is its base URL."""

    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_server(
    args: Sequence[str],
    *,
    port: int,
    health_path: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> RunningServer:
    """Start `python -m <args>` (args[0] is a module) and wait until `health_path` answers 200."""
    log_file = tempfile.NamedTemporaryFile(prefix="server-", suffix=".log", delete=False)  # noqa: SIM115
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", *args],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=full_env,
        cwd=REPO_ROOT,
    )
    server = RunningServer(process=process, log_path=Path(log_file.name), port=port)
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server {args} exited with {process.returncode}:\n{server.log()}")
        try:
            response = httpx.get(f"{server.url}{health_path}", timeout=1.0)
            if response.status_code == 200:
                return server
        except httpx.HTTPError as exc:
            last_error = exc
        time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"server {args} did not become healthy in {timeout}s ({last_error}):\n{server.log()}")


@contextlib.contextmanager
def running_server(
    args: Sequence[str],
    *,
    port: int | None = None,
    health_path: str,
    env: Mapping[str, str] | None = None,
) -> Iterator[RunningServer]:
    """Context manager around start_server that always stops the process."""
    chosen = port or free_port()
    server = start_server([*args, "--port", str(chosen)], port=chosen, health_path=health_path, env=env)
    try:
        yield server
    finally:
        server.stop()
