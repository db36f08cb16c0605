"""A MariaDB server and a Redis server of a test's own, which the test may stop and start again.

    with private_mariadb() as db, private_redis() as cache:
        url = db.url                     # mysql+asyncmy://root@127.0.0.1:<port>/payments, migrated
        db.stop()                        # SIGKILL by default (a crash); stop(signal.SIGTERM) to shut down
        db.start()                       # the same data directory and port, ready when it returns
        cache.url                        # redis://127.0.0.1:<port>

Each server runs as a child process on its own free 127.0.0.1 port, with its data in a temporary
folder: the machine's MariaDB (3306) and Redis (6379) are never touched. Missing binaries fail the
test with a message that says how to install them (never a skip).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.servers import ManagedProcess, ProcessFailed, free_port, start_process

HOW_TO_INSTALL = (
    "Install the servers with `bash scripts/ensure-services.sh` (Debian: apt-get install mariadb-server "
    "redis-server); the outage tests start private copies of them."
)
DATABASE = "payments"
READY_TIMEOUT_SECONDS = 30.0


def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name) or next(
            (str(p) for d in ("/usr/sbin", "/usr/bin", "/usr/local/sbin") if (p := Path(d) / name).exists()),
            None,
        )
        if found:
            return found
    pytest.fail(f"none of {', '.join(names)} is installed. {HOW_TO_INSTALL}", pytrace=False)


def _mysql_greeting(port: int) -> bool:
    """Whether a MariaDB on `port` answers a connection with its handshake (protocol 10)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.settimeout(1.0)
            header = sock.recv(5)
    except OSError:
        return False
    return len(header) == 5 and header[4] == 10


class PrivateMariaDB:
    """`mariadbd` on its own port and data directory; root without a password over TCP."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.datadir = base / "data"
        self.port = free_port()
        self.server: ManagedProcess | None = None
        self.starts = 0
        self._mariadbd = _binary("mariadbd", "mysqld")
        install = _binary("mariadb-install-db", "mysql_install_db")
        log = base / "install.log"
        with log.open("wb") as out:
            done = subprocess.run(
                [
                    install,
                    "--no-defaults",
                    f"--datadir={self.datadir}",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                    "--user=root",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=120,
                check=False,
            )
        if done.returncode != 0:
            pytest.fail(f"{install} failed ({done.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
        # Runs at every start: the database exists before the first client connects.
        (base / "init.sql").write_text(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}` CHARACTER SET utf8mb4;\n")

    @property
    def url(self) -> str:
        return f"mysql+asyncmy://root@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def error_log(self) -> Path:
        return self.base / "error.log"

    @property
    def running(self) -> bool:
        return self.server is not None and self.server.alive()

    def start(self) -> None:
        """Start (again) on the same data directory and port; returns once it accepts clients."""
        if self.running:
            return
        self.server = start_process(
            [
                self._mariadbd,
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.base / 'mariadb.sock'}",
                f"--pid-file={self.base / 'mariadb.pid'}",
                f"--log-error={self.error_log}",
                f"--tmpdir={self.base}",
                f"--init-file={self.base / 'init.sql'}",
                "--user=root",
                "--skip-name-resolve",
                "--skip-log-bin",
                "--performance-schema=OFF",
                "--innodb-buffer-pool-size=64M",
                "--max-connections=300",
            ],
            name="mariadbd",
            log_path=self.base / f"mariadbd-{self.starts + 1}.out",  # its own log is error.log
            cwd=self.base,
        )
        self.starts += 1
        try:
            # "ready for connections" once per start: the init file has run by then.
            self.server.wait_until(
                lambda: (
                    self._log_text().count("ready for connections") >= self.starts
                    and _mysql_greeting(self.port)
                ),
                timeout=READY_TIMEOUT_SECONDS,
                waiting_for="ready for connections",
                interval=0.05,
            )
        except ProcessFailed as exc:
            pytest.fail(f"{exc}\nerror log:\n{self._log_tail()}")

    def stop(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """SIGKILL (a crash: clients see their connections reset) or SIGTERM (a shutdown)."""
        if self.server is None:
            return
        if sig == signal.SIGKILL:
            self.server.kill()
        else:
            self.server.stop(60, sig=sig)

    def _log_text(self) -> str:
        try:
            return self.error_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _log_tail(self) -> str:
        return self._log_text()[-3000:]


class PrivateRedis:
    """`redis-server` on its own port, without persistence: a restart comes back empty."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.server: ManagedProcess | None = None
        self.starts = 0
        self._redis_server = _binary("redis-server")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.server is not None and self.server.alive()

    def start(self) -> None:
        """Start (again) on the same port; returns once it answers PING."""
        if self.running:
            return
        self.server = start_process(
            [
                self._redis_server,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.base),
            ],
            name="redis-server",
            log_path=self.base / f"redis-{self.starts + 1}.log",
            cwd=self.base,
        )
        self.starts += 1
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)

        def answers_ping() -> bool:
            with contextlib.suppress(redis.RedisError):
                return bool(client.ping())
            return False

        try:
            self.server.wait_until(
                answers_ping, timeout=READY_TIMEOUT_SECONDS, waiting_for="PONG", interval=0.05
            )
        except ProcessFailed as exc:
            pytest.fail(str(exc))
        finally:
            client.close()

    def stop(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """SIGKILL (a crash) or SIGTERM (a shutdown, like `redis-cli shutdown nosave` here): either
        way every key is gone, as nothing is persisted."""
        if self.server is None:
            return
        if sig == signal.SIGKILL:
            self.server.kill()
        else:
            self.server.stop(30, sig=sig)


@contextlib.contextmanager
def private_mariadb() -> Iterator[PrivateMariaDB]:
    """A started, migrated private MariaDB; killed and deleted afterwards."""
    from app.migrate import upgrade_database

    base = Path(tempfile.mkdtemp(prefix="outage-mariadb-"))
    server: PrivateMariaDB | None = None
    try:
        server = PrivateMariaDB(base)
        server.start()
        upgrade_database(server.url)
        yield server
    finally:
        if server is not None:
            server.stop(signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    """A started private Redis; killed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="outage-redis-"))
    server: PrivateRedis | None = None
    try:
        server = PrivateRedis(base)
        server.start()
        yield server
    finally:
        if server is not None:
            server.stop(signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)
