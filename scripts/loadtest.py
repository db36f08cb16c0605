#!/usr/bin/env python
"""Start the full local stack, run a Locust scenario against it, print the summary, stop everything.

    .venv/bin/python scripts/loadtest.py                       # what `make loadtest` runs
    .venv/bin/python scripts/loadtest.py --ui                  # what `make loadtest-ui` runs
    .venv/bin/python scripts/loadtest.py --users 100 --run-time 2m --api-workers 2 --scenario checkout
    .venv/bin/python scripts/loadtest.py -- --poll-mode server --decline-share 0.3   # extra Locust args

The stack: a fresh MariaDB database (migrated), Redis database 7 (flushed), the mock Toss with its
webhooks pointed at the API, `payments serve --workers N --server S` and one `payments worker`, each on a free
127.0.0.1 port, logging into the report folder. Reports (Locust CSV + HTML, metrics.json) go to
loadtests/reports/<timestamp>/. The exit code is Locust's (non-zero when a threshold broke).

`LocalStack` is also what scripts/bench.py starts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import fcntl
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `python scripts/loadtest.py` puts scripts/ first, not the root
    sys.path.insert(0, str(REPO_ROOT))

from app.core.auth import TokenAuthority  # noqa: E402
from app.settings import HttpSettings  # noqa: E402
from tests.support.servers import (  # noqa: E402  (processes: the one helper tests and scripts share)
    ManagedProcess,
    PortInUse,
    ProcessFailed,
    RunningServer,
    free_port,
    port_open,
    start_process,
    start_server,
)

REPORTS_DIR = REPO_ROOT / "loadtests" / "reports"
LOCUSTFILE = REPO_ROOT / "loadtests" / "locustfile.py"
FRONTEND_BASE_URL = "http://frontend.test"
SERVERS = ("uvicorn", "granian")  # `payments serve --server`
DEFAULT_SERVER = HttpSettings().server  # the SERVER setting's default
SCENARIOS: dict[str, list[str]] = {
    "mixed": ["CheckoutUser", "VirtualAccountUser", "PollingUser"],
    "checkout": ["CheckoutUser"],
    "virtual-account": ["VirtualAccountUser"],
    "polling": ["PollingUser"],
}


def log(message: str) -> None:
    print(f"[loadtest] {message}", flush=True)


# --- the stack --------------------------------------------------------------------------------------


@dataclass
class StackOptions:
    """How to start the stack; every default fits a 2-core developer machine."""

    api_workers: int = 2
    server: str = DEFAULT_SERVER  # `payments serve --server`: uvicorn or granian
    database: str = "payments_load"
    drop_database: bool = False  # keep it after the run for inspection (it is recreated next time)
    redis_db: int = 7
    mysql_admin_url: str = "mysql+asyncmy://root@127.0.0.1:3306"
    redis_base_url: str = "redis://127.0.0.1:6379"
    pool_size: int = 10
    max_overflow: int = 10
    start_worker: bool = True
    log_dir: Path = REPORTS_DIR / "logs"
    lock_wait_seconds: float = 0.0
    extra_env: dict[str, str] = field(default_factory=dict)
    # More API servers, by name, each with its own environment on top of the stack's (the
    # benchmark's "api-uncached" runs with STATUS_CACHE_TTL_SECONDS=0); SERVER in it picks its server
    extra_apis: dict[str, dict[str, str]] = field(default_factory=dict)


class StackError(RuntimeError):
    pass


# Every process of the stack runs in a session of its own (Ctrl-C reaches this script, which stops
# them in order) and gets this long to leave after SIGTERM.
STOP_GRACE_SECONDS = 15.0


class LocalStack:
    """MariaDB database + Redis db + mock Toss + API (N workers) + arq worker, all on 127.0.0.1."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.jwt_secret = secrets.token_hex(24)
        self.api_port = free_port()
        self.mock_port = free_port()
        self.extra_api_ports = {name: free_port() for name in options.extra_apis}
        self.processes: list[ManagedProcess] = []
        self.ready_after: dict[str, float] = {}  # server name → seconds from its start to ready
        self._lock: IO[str] | None = None
        self._database_created = False

    # --- public ---------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def url_of(self, server: str) -> str:
        """The URL of the API called `server` ("api" or a name from StackOptions.extra_apis)."""
        port = self.api_port if server == "api" else self.extra_api_ports[server]
        return f"http://127.0.0.1:{port}"

    @property
    def mock_url(self) -> str:
        return f"http://127.0.0.1:{self.mock_port}"

    @property
    def database_url(self) -> str:
        return f"{self.options.mysql_admin_url.rstrip('/')}/{self.options.database}"

    @property
    def redis_url(self) -> str:
        return f"{self.options.redis_base_url.rstrip('/')}/{self.options.redis_db}"

    def token(self, user_id: str) -> str:
        return TokenAuthority(self.jwt_secret).mint(user_id, ttl_seconds=12 * 3600)

    @property
    def env(self) -> dict[str, str]:
        """The service's environment (README, "Configuration")."""
        return {
            "ENVIRONMENT": "test",
            "DATABASE_URL": self.database_url,
            "DATABASE_POOL_SIZE": str(self.options.pool_size),
            "DATABASE_MAX_OVERFLOW": str(self.options.max_overflow),
            "REDIS_URL": self.redis_url,
            "TOSS_API_URL": self.mock_url,
            "PUBLIC_BASE_URL": self.api_url,
            "FRONTEND_BASE_URL": FRONTEND_BASE_URL,
            "JWT_SECRET": self.jwt_secret,
            "SWEEP_INTERVAL_SECONDS": "2",
            # Every webhook of the run comes from the one mock, thousands a minute: the run measures
            # checkouts, not the per-source webhook limit (tests/e2e/reconciliation test that).
            "RATE_LIMIT_WEBHOOK_PER_MINUTE": "0",
            **self.options.extra_env,
        }

    def __enter__(self) -> LocalStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        o = self.options
        o.log_dir.mkdir(parents=True, exist_ok=True)
        self._require_services()
        self._take_lock()
        log(f"database {o.database} (fresh, migrated), Redis db {o.redis_db} (flushed)")
        asyncio.run(self._recreate_database())
        self._database_created = True
        from app.migrate import upgrade_database

        upgrade_database(self.database_url)
        self._flush_redis()
        for attempt in range(1, 4):
            try:
                self._start_servers()
                break
            except PortInUse as exc:
                # a free port can be taken between choosing it and binding it (busy shared machine)
                for managed in reversed(self.processes):
                    managed.stop()
                self.processes.clear()
                if attempt == 3:
                    raise StackError(str(exc)) from exc
                log("a port was taken between choosing it and binding it; trying other ports")
                self.api_port, self.mock_port = free_port(), free_port()
                self.extra_api_ports = {name: free_port() for name in o.extra_apis}
            except ProcessFailed as exc:
                raise StackError(str(exc)) from exc
        if o.start_worker:
            worker = start_process(
                [sys.executable, "-m", "app.cli", "worker"],
                name="worker",
                log_path=o.log_dir / "worker.log",
                env=self.env,
                own_group=True,
                grace_seconds=STOP_GRACE_SECONDS,
            )
            self.processes.append(worker)
            try:
                worker.wait_for_log(("Starting worker", "redis_version"), timeout=30.0)
            except ProcessFailed as exc:
                raise StackError(str(exc)) from exc
        log(
            f"stack up: API {self.api_url} ({o.server}, {o.api_workers} workers, pool {o.pool_size}+"
            f"{o.max_overflow}), "
            f"mock {self.mock_url}, worker {'on' if o.start_worker else 'off'}; logs in {o.log_dir}"
        )

    def _start_servers(self) -> None:
        """The mock (webhooks pointed at the API), then the API; PortInUse when a port is gone."""
        webhook = f"{self.api_url}/webhooks/payments/toss"
        mock_args = ["--port", str(self.mock_port), "--webhook-url", webhook, "--time-scale", "0.01"]
        self._serve("mock", ["mock_toss", *mock_args], self.mock_port, "/_mock/health", timeout=60)
        workers = str(self.options.api_workers)
        api_args = ["app.cli", "serve", "--port", str(self.api_port), "--workers", workers]
        self._serve(
            "api", [*api_args, "--server", self.options.server], self.api_port, "/health/ready", timeout=90
        )
        for name, env in self.options.extra_apis.items():
            port = self.extra_api_ports[name]
            extra_args = ["app.cli", "serve", "--port", str(port), "--workers", workers]
            extra_args += ["--server", env.get("SERVER", self.options.server)]
            self._serve(name, extra_args, port, "/health/ready", timeout=90, env=env)

    def stop(self) -> None:
        for managed in reversed(self.processes):
            managed.stop()
        self.processes.clear()
        if self._database_created and self.options.drop_database:
            with contextlib.suppress(Exception):
                asyncio.run(self._drop_database())
            self._database_created = False
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def check_alive(self) -> None:
        for managed in self.processes:
            if not managed.alive():
                raise StackError(
                    f"{managed.name} exited with {managed.process.returncode}; see {managed.log_path}"
                )

    # --- internals ----------------------------------------------------------------------------------

    def _require_services(self) -> None:
        redis_port = urlsplit(self.options.redis_base_url).port or 6379
        for name, port in (("MariaDB", 3306), ("Redis", redis_port)):
            if not port_open(port):
                raise StackError(
                    f"{name} is not reachable on 127.0.0.1:{port}: run `make services` "
                    "(or bash scripts/ensure-services.sh)"
                )

    def _take_lock(self) -> None:
        """One run per Redis database on this machine (its worker would eat another run's jobs)."""
        path = Path(f"/tmp/asyncsite-payments-load-redis-{self.options.redis_db}.lock")
        handle = path.open("w")
        deadline = time.monotonic() + self.options.lock_wait_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._lock = handle
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.close()
                    raise StackError(
                        f"another load run uses Redis db {self.options.redis_db} ({path} is locked); "
                        "wait for it or pass --redis-db/--database"
                    ) from None
                time.sleep(1)

    async def _admin(self, statement: str) -> None:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(f"{self.options.mysql_admin_url.rstrip('/')}/mysql")
        try:
            with warnings.catch_warnings():  # MariaDB's note for DROP DATABASE IF EXISTS
                warnings.simplefilter("ignore")
                async with engine.begin() as conn:
                    await conn.execute(text(statement))
        finally:
            await engine.dispose()

    async def _recreate_database(self) -> None:
        name = self.options.database
        if not name.replace("_", "").isalnum():
            raise StackError(f"database name {name!r}: letters, digits and _ only")
        await self._admin(f"DROP DATABASE IF EXISTS `{name}`")
        await self._admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")

    async def _drop_database(self) -> None:
        await self._admin(f"DROP DATABASE IF EXISTS `{self.options.database}`")

    def _flush_redis(self) -> None:
        import redis

        client = redis.Redis.from_url(self.redis_url)
        try:
            client.flushdb()
        finally:
            client.close()

    def _serve(
        self,
        name: str,
        args: list[str],
        port: int,
        health_path: str,
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
    ) -> RunningServer:
        """`python -m <args>` logging into the log folder; returns once `health_path` answers 200."""
        started = time.monotonic()
        server = start_server(
            args,
            port=port,
            health_path=health_path,
            env={**self.env, **(env or {})},
            timeout=timeout,
            name=name,
            log_path=self.options.log_dir / f"{name}.log",
            own_group=True,
            grace_seconds=STOP_GRACE_SECONDS,
        )
        self.processes.append(server)
        self.ready_after[name] = time.monotonic() - started
        return server


# --- signals: SIGTERM behaves like Ctrl-C, so `finally` blocks stop the stack ------------------------


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- Locust --------------------------------------------------------------------------------------------


def locust_command(
    args: argparse.Namespace,
    stack: LocalStack,
    report_dir: Path,
    extra: list[str],
    master_port: int | None = None,
) -> list[str]:
    """The Locust command; with `master_port`, a master expecting --workers worker processes."""
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--host",
        stack.api_url,
        "--mock-url",
        stack.mock_url,
        "--frontend-url",
        FRONTEND_BASE_URL,
        "--report-dir",
        str(report_dir),
        "--csv",
        str(report_dir / "locust"),
        "--html",
        str(report_dir / "report.html"),
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.spawn_rate),
        "--run-time",
        args.run_time,
        "--stop-timeout",
        str(args.stop_timeout),
        "--poll-mode",
        args.poll_mode,
    ]
    if args.ui:
        command += ["--web-host", "127.0.0.1", "--web-port", str(args.web_port)]
    else:
        command += ["--headless", "--only-summary"]
    if master_port is not None:
        command += [
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(master_port),
            "--expect-workers",
            str(args.workers),
            "--expect-workers-max-wait",
            str(EXPECT_WORKERS_MAX_WAIT),
        ]
    elif args.processes > 1:
        command += ["--processes", str(args.processes)]
    command += extra
    command += SCENARIOS[args.scenario]
    return command


# How long the master waits for its workers to connect before it gives up (exit code 1).
EXPECT_WORKERS_MAX_WAIT = 60


def worker_command(master_port: int) -> list[str]:
    """One Locust worker process; it gets the custom options (--mock-url, --poll-mode …) from the master."""
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--worker",
        "--master-host",
        "127.0.0.1",
        "--master-port",
        str(master_port),
    ]


def start_workers(
    count: int, master_port: int, env: Mapping[str, str], log_dir: Path
) -> list[ManagedProcess]:
    """`count` Locust workers in the background, each logging into `log_dir/locust-worker-<i>.log`."""
    workers = []
    for index in range(1, count + 1):
        workers.append(
            start_process(
                worker_command(master_port),
                name=f"locust-worker-{index}",
                log_path=log_dir / f"locust-worker-{index}.log",
                env=env,
                own_group=True,
                grace_seconds=STOP_GRACE_SECONDS,
            )
        )
    return workers


def stop_workers(workers: list[ManagedProcess], wait_seconds: float = 15.0) -> list[str]:
    """Give the workers `wait_seconds` to leave after the master's quit, then stop them; the problems."""
    deadline = time.monotonic() + wait_seconds
    while any(w.alive() for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    problems = []
    for worker in workers:
        if worker.alive():
            problems.append(f"{worker.name} still running after the master quit: stopped")
        worker.stop()
        if worker.process.returncode not in (0, None, -signal.SIGTERM):
            problems.append(f"{worker.name} exited with {worker.process.returncode}; see {worker.log_path}")
    return problems


def run_locust(command: list[str], env: Mapping[str, str], hard_timeout: float) -> int:
    """Run Locust in the foreground (it shares the terminal: Ctrl-C reaches it and it writes reports)."""
    process = subprocess.Popen(command, cwd=REPO_ROOT, env={**os.environ, **env})
    try:
        return process.wait(timeout=hard_timeout)
    except subprocess.TimeoutExpired:
        log(f"Locust still running after {hard_timeout:.0f} s: stopping it")
        process.send_signal(signal.SIGINT)
    except KeyboardInterrupt:
        log("interrupted: waiting for Locust to write its reports")
    try:
        return process.wait(timeout=60)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        process.kill()
        return process.wait(timeout=10)


def parse_duration(text: str) -> float:
    """Locust's run-time syntax (90, 90s, 2m, 1h30m) in seconds."""
    text = text.strip().lower()
    if text.isdigit():
        return float(text)
    total, number = 0.0, ""
    for char in text:
        if char.isdigit():
            number += char
        elif char in "hms" and number:
            total += int(number) * {"h": 3600, "m": 60, "s": 1}[char]
            number = ""
        else:
            raise argparse.ArgumentTypeError(f"not a duration: {text!r}")
    if number:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (missing unit)")
    return total


def read_stats(report_dir: Path) -> list[dict[str, str]]:
    path = report_dir / "locust_stats.csv"
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def summary_table(report_dir: Path) -> str:
    """Locust's request statistics plus the custom metrics, as one plain-text block."""
    lines = []
    rows = read_stats(report_dir)
    if rows:
        head = f"{'Type':<9}{'Name':<38}{'reqs':>8}{'fails':>7}{'req/s':>8}{'p50':>7}{'p95':>7}{'p99':>7}{'max':>8}"
        lines += [head, "-" * len(head)]
        for row in rows:
            name = row["Name"] if len(row["Name"]) <= 37 else row["Name"][:34] + "..."
            lines.append(
                f"{row['Type']:<9}{name:<38}{row['Request Count']:>8}{row['Failure Count']:>7}"
                f"{float(row['Requests/s']):>8.1f}{row['50%']:>7}{row['95%']:>7}{row['99%']:>7}"
                f"{float(row['Max Response Time'] or 0):>8.0f}"
            )
        lines.append("(times in ms; CHECKOUT rows are whole checkouts: issue → window → callback → polls)")
    metrics_txt = report_dir / "metrics.txt"
    if metrics_txt.exists():
        lines += ["", metrics_txt.read_text().rstrip()]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=50, help="concurrent Locust users (default 50)")
    parser.add_argument("--spawn-rate", type=float, default=10, help="users started per second (default 10)")
    parser.add_argument("--run-time", default="60s", help="Locust run time, e.g. 60s, 5m (default 60s)")
    parser.add_argument("--stop-timeout", default="90s", help="let checkouts in flight finish (default 90s)")
    parser.add_argument(
        "--scenario", choices=sorted(SCENARIOS), default="mixed", help="user classes (default mixed)"
    )
    parser.add_argument("--poll-mode", choices=["schedule", "server"], default="schedule")
    parser.add_argument("--api-workers", type=int, default=2, help="API worker processes (default 2)")
    parser.add_argument(
        "--server",
        choices=SERVERS,
        default=DEFAULT_SERVER,
        help=f"the API's HTTP server, `payments serve --server` (default {DEFAULT_SERVER})",
    )
    parser.add_argument(
        "--pool-size", type=int, default=10, help="DATABASE_POOL_SIZE per process (default 10)"
    )
    parser.add_argument("--processes", type=int, default=1, help="Locust processes (default 1)")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="Locust distributed mode: a master and this many worker processes (0 or 1: one process)",
    )
    parser.add_argument("--ui", action="store_true", help="Locust's web UI instead of a headless run")
    parser.add_argument("--web-port", type=int, default=8089, help="web UI port on 127.0.0.1 (default 8089)")
    parser.add_argument(
        "--ui-max-minutes", type=float, default=60, help="stop a web-UI session after this long (default 60)"
    )
    parser.add_argument(
        "--database", default="payments_load", help="MariaDB database, recreated (default payments_load)"
    )
    parser.add_argument("--drop-database", action="store_true", help="drop the database at the end")
    parser.add_argument("--redis-db", type=int, default=7, help="Redis database, flushed (default 7)")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("TEST_REDIS_HOST_URL", "redis://127.0.0.1:6379"),
        help="Redis server without database (default $TEST_REDIS_HOST_URL or redis://127.0.0.1:6379)",
    )
    parser.add_argument(
        "--lock-wait", type=float, default=0, help="seconds to wait for another run on the same Redis db"
    )
    parser.add_argument(
        "--mysql-admin-url",
        default=os.environ.get("TEST_MARIADB_URL", "mysql+asyncmy://root@127.0.0.1:3306"),
        help="server URL without database",
    )
    parser.add_argument("--report-dir", type=Path, default=None, help="default loadtests/reports/<timestamp>")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the API and worker, e.g. --env RATE_LIMIT_ISSUE_PER_MINUTE=0 (repeatable)",
    )
    args = parser.parse_args(argv)
    for item in args.env:
        if "=" not in item or not item.split("=", 1)[0]:
            parser.error(f"--env expects NAME=VALUE, got {item!r}")
    parse_duration(args.run_time)
    parse_duration(args.stop_timeout)
    if args.users < 1 or args.api_workers < 1 or args.processes < 1:
        parser.error("--users, --api-workers and --processes must be at least 1")
    if args.workers < 0:
        parser.error("--workers must be 0 or more")
    if args.workers > 1 and args.processes > 1:
        parser.error("--workers and --processes are two ways to run several Locust processes: pick one")
    return args, extra


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    report_dir: Path = args.report_dir or REPORTS_DIR / time.strftime("%Y%m%d-%H%M%S")
    report_dir = report_dir.resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    options = StackOptions(
        api_workers=args.api_workers,
        server=args.server,
        database=args.database,
        drop_database=args.drop_database,
        redis_db=args.redis_db,
        redis_base_url=args.redis_url,
        mysql_admin_url=args.mysql_admin_url,
        pool_size=args.pool_size,
        log_dir=report_dir / "logs",
        lock_wait_seconds=args.lock_wait,
        extra_env=dict(item.split("=", 1) for item in args.env),
    )
    exit_code = 1
    with sigterm_as_interrupt():
        try:
            with LocalStack(options) as stack:
                distributed = args.workers > 1
                master_port = free_port() if distributed else None
                command = locust_command(args, stack, report_dir, extra, master_port)
                run_seconds = parse_duration(args.run_time) + parse_duration(args.stop_timeout)
                hard_timeout = args.ui_max_minutes * 60 if args.ui else run_seconds + 120
                if distributed:
                    hard_timeout += EXPECT_WORKERS_MAX_WAIT
                log(
                    f"Locust: {args.scenario} scenario, {args.users} users, spawn rate {args.spawn_rate}/s, "
                    f"{f'web UI at http://127.0.0.1:{args.web_port}' if args.ui else args.run_time}"
                    f"{f', master + {args.workers} workers' if distributed else ''}; reports in {report_dir}"
                )
                locust_env = {"LOCUST_JWT_SECRET": stack.jwt_secret}
                commands: dict[str, object] = {"locust": command}
                if master_port is not None:
                    commands["workers"] = [worker_command(master_port)] * args.workers
                (report_dir / "command.json").write_text(json.dumps(commands, indent=2) + "\n")
                workers: list[ManagedProcess] = []
                try:
                    if master_port is not None:
                        workers = start_workers(args.workers, master_port, locust_env, report_dir / "logs")
                    exit_code = run_locust(command, locust_env, hard_timeout)
                finally:
                    for problem in stop_workers(workers):
                        log(f"Locust worker: {problem}")
                        exit_code = exit_code or 1
                try:
                    stack.check_alive()
                except StackError as exc:
                    log(f"during the run: {exc}")
                    exit_code = exit_code or 1
                log("stopping the stack")
        except StackError as exc:
            log(f"could not run: {exc}")
            return 2
        except KeyboardInterrupt:
            log("interrupted: the stack is stopped")
            return 130
    print()
    print(f"== Load test summary ({report_dir}) ==")
    print(summary_table(report_dir))
    print(f"HTML report: {report_dir / 'report.html'}")
    print(f"Locust exit code: {exit_code} ({'passed' if exit_code == 0 else 'FAILED'})")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
