#!/usr/bin/env python
"""`make db-ceiling`: how many of this service's card checkouts MariaDB sustains per second, here.

No HTTP, no Python service: N concurrent writers replay, straight on asyncmy, the database work of
one approved card checkout as the service issues it (statement by statement, the same SQL, compiled
from the app's own tables in `app.db`, on a scratch database migrated with `app.migrate`):

    issue (API)               ping, INSERT transactions, INSERT history (10), COMMIT, ROLLBACK*
    success callback (API)    ping, SELECT * by id, ROLLBACK*
                              ping, UPDATE … SET status=30 WHERE id=… AND status=10, INSERT history, COMMIT, ROLLBACK*
                              (the PG confirm happens here: not simulated, no wait)
                              ping, UPDATE … 30→40 (payment key, method, completed_at), INSERT history, COMMIT, ROLLBACK*
                              ping, UPDATE … 40→45, INSERT history, COMMIT, ROLLBACK*     (then the grant is queued)
                              ping, SELECT * by id, ROLLBACK*                           (the redirect's outcome)
    poll 1 (API)              SELECT <status columns> by id   (the status pool: autocommit, no ping)
    grant job (worker)        ping, SELECT * by id, ROLLBACK*
                              ping, INSERT entitlements, COMMIT, ROLLBACK*               (the local ledger; --no-ledger)
                              ping, UPDATE … 45→50, INSERT history, COMMIT, ROLLBACK*
    Toss's webhook (API)      ping, INSERT webhook_events, COMMIT, ROLLBACK*; ping, SELECT * by id, ROLLBACK*
    webhook job (worker)      ping, SELECT webhook_events by id, ROLLBACK*; ping, SELECT * by id, ROLLBACK*
                              ping, UPDATE webhook_events SET outcome=NO_CHANGE…, COMMIT, ROLLBACK*  (--no-webhook)
    poll 2 … --polls (API)    SELECT <status columns> by id

    * `--connection-mode engine`: SQLAlchemy's pool pings a connection when it is checked out
      (pool_pre_ping) and rolls it back when it is returned, also after a COMMIT (measured with
      SHOW SESSION STATUS). `--connection-mode direct` (app.db_direct, the write path's own pool):
      no ping and no ROLLBACK; a write is BEGIN … COMMIT on an autocommit connection, a read is
      its SELECT alone, and the callback's outcome is the status view's SELECT, not SELECT *.
      The default, auto, is direct when the app has app.db_direct.

Every transaction must end at 50 with 5 history rows (10, 30, 40, 45, 50), one entitlement and
one webhook event: the script checks that before it drops the database, and fails otherwise.

The design's polling (docs/api.md, "Polling"): a result page polls at once, then after 1, 2, 3,
5 s, until 50. An approved card is at 45 on the first poll and at 50 on the second: `--polls 2`.

Per step (a number of writers, each with its own connection, plus a small autocommit status pool
per process): checkouts/s, SQL statements/s, commits/s, the COMMIT's p50/p99, MariaDB's CPU
(utime+stime of mariadbd from /proc) per checkout, fsyncs per commit (server-wide InnoDB
counters) and the generator's own CPU. The generator runs in several processes when one would
be saturated (`--processes`; auto: one per 16 writers, at most one per core). On a small box
the generator and MariaDB share the cores: read MariaDB's CPU per checkout first, it does not
depend on who else runs.

    .venv/bin/python scripts/db_ceiling.py                      # what `make db-ceiling` runs (~70 s)
    .venv/bin/python scripts/db_ceiling.py --seconds 5 --concurrency 1,8,32 --processes 2

Writes loadtests/reports/db-ceiling-<timestamp>/db-ceiling.json and db-ceiling.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import multiprocessing as mp
import os
import platform
import secrets
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

REPORTS_DIR = REPO_ROOT / "loadtests" / "reports"
DEFAULT_ADMIN_URL = os.environ.get("TEST_MARIADB_URL", "mysql+asyncmy://root@127.0.0.1:3306")
RETRYABLE = frozenset({1213, 1205})  # deadlock, lock wait timeout: the app retries these (3 attempts)
MAX_TOTAL_SECONDS = 600
# A step during which the rest of the machine used this much of a core (other people's runs, on a
# shared box) is marked disturbed, and left out of the summary when undisturbed steps exist.
DISTURBED_PERCENT = 25.0
SERVER_VARIABLES = (
    "version",
    "innodb_flush_log_at_trx_commit",
    "sync_binlog",
    "log_bin",
    "innodb_buffer_pool_size",
    "innodb_flush_method",
    "innodb_doublewrite",
    "innodb_log_file_size",
    "innodb_io_capacity",
    "max_connections",
)
# MariaDB 10.11 counts every fsync in Innodb_data_fsyncs (the redo log's too; MySQL also has Innodb_os_log_fsyncs)
GLOBAL_COUNTERS = ("Innodb_data_fsyncs", "Innodb_log_writes", "Com_commit", "Questions")
WEBHOOK_BODY_BYTES = 1800  # about the size of Toss's PAYMENT_STATUS_CHANGED body for a card payment


def log(message: str) -> None:
    print(f"[db-ceiling] {message}", flush=True)


# --- the statements, compiled from the app's tables ----------------------------------------------


@dataclass(frozen=True)
class Sql:
    text: str
    params: tuple[str, ...]  # the names of the positional %s parameters, in order


def build_statements() -> dict[str, Sql]:
    """The SQL the service sends, compiled from `app.db`'s tables for MySQL/MariaDB."""
    from sqlalchemy import bindparam, insert, select, update
    from sqlalchemy.dialects import mysql

    from app.core.sql.status_reader import MySqlStatusReader
    from app.db import entitlements, transactions, webhook_events
    from app.db import transaction_history as history

    dialect = mysql.dialect()

    def compiled(statement: Any) -> Sql:
        result = statement.compile(dialect=dialect)
        return Sql(str(result), tuple(result.positiontup or ()))

    def transition(*columns: str) -> Sql:
        values: dict[str, Any] = {"status": bindparam("target"), "updated_at": bindparam("now")}
        values.update({name: bindparam(f"v_{name}") for name in columns})
        return compiled(
            update(transactions)
            .where(
                transactions.c.transaction_id == bindparam("tid"),
                transactions.c.status == bindparam("expected"),
            )
            .values(**values)
        )

    tx_columns = (
        "transaction_id",
        "user_id",
        "product_type",
        "product_id",
        "order_name",
        "amount",
        "method",
        "status",
        "provider",
        "metadata",
        "created_at",
        "updated_at",
        "expires_at",
        "refunded_amount",
    )
    return {
        # SqlTransactionRepository.add
        "insert_transaction": compiled(
            insert(transactions).values(**{name: bindparam(f"v_{name}") for name in tx_columns})
        ),
        # app.core.sql.history.append_history
        "insert_history": compiled(
            insert(history).values(
                transaction_id=bindparam("tid"),
                status=bindparam("v_status"),
                message=bindparam("v_message"),
                metadata=bindparam("v_metadata"),
                created_at=bindparam("now"),
            )
        ),
        # SqlTransactionRepository.get
        "get_transaction": compiled(
            select(transactions).where(transactions.c.transaction_id == bindparam("tid"))
        ),
        # SqlTransactionRepository.apply: Transition.claim_for_confirm, mark_paid, start_provisioning, provisioned
        "claim": transition("next_reconcile_at"),
        "mark_paid": transition("payment_key", "pg_method", "completed_at"),
        "start_provisioning": transition(),
        "provisioned": transition(),
        # LedgerGrantHandler.grant
        "insert_entitlement": compiled(
            insert(entitlements).values(
                transaction_id=bindparam("tid"),
                user_id=bindparam("v_user_id"),
                product_type=bindparam("v_product_type"),
                product_id=bindparam("v_product_id"),
                study_id=bindparam("v_study_id"),
                credits=bindparam("v_credits"),
                granted_at=bindparam("now"),
            )
        ),
        # SqlWebhookEventRepository.record, get, finish
        "insert_webhook": compiled(
            insert(webhook_events).values(
                provider=bindparam("v_provider"),
                transmission_id=bindparam("v_transmission_id"),
                event_type=bindparam("v_event_type"),
                order_id=bindparam("tid"),
                pg_status=bindparam("v_pg_status"),
                retried_count=bindparam("v_retried_count"),
                raw_body=bindparam("v_raw_body"),
                received_at=bindparam("now"),
                outcome=bindparam("v_outcome"),
            )
        ),
        "get_webhook": compiled(select(webhook_events).where(webhook_events.c.id == bindparam("event_id"))),
        "finish_webhook": compiled(
            update(webhook_events)
            .where(webhook_events.c.id == bindparam("event_id"))
            .values(
                outcome=bindparam("v_outcome"), detail=bindparam("v_detail"), processed_at=bindparam("now")
            )
        ),
        # MySqlStatusReader.SQL: the poll, on the status pool
        "status": Sql(MySqlStatusReader.SQL, ("tid",)),
    }


# --- one checkout, as the service issues it --------------------------------------------------------


@dataclass
class Counters:
    checkouts: int = 0
    statements: int = 0  # SQL statements: INSERT, UPDATE, SELECT (COMMIT and ROLLBACK counted apart)
    commits: int = 0
    rollbacks: int = 0
    pings: int = 0
    begins: int = 0
    retries: int = 0  # deadlocks / lock wait timeouts retried, as the app does
    errors: int = 0
    commit_ms: list[float] = field(default_factory=list)  # the COMMIT round trip (where the fsync is)
    write_ms: list[float] = field(default_factory=list)  # a write transaction: ping … COMMIT
    checkout_ms: list[float] = field(default_factory=list)  # the whole pattern, one writer, no waits

    def merge(self, other: Counters) -> None:
        for name in (
            "checkouts",
            "statements",
            "commits",
            "rollbacks",
            "pings",
            "begins",
            "retries",
            "errors",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.commit_ms += other.commit_ms
        self.write_ms += other.write_ms
        self.checkout_ms += other.checkout_ms


@dataclass(frozen=True)
class Pattern:
    polls: int = 2
    ledger: bool = True
    webhook: bool = True
    # How the repositories reach MariaDB: "engine" = SQLAlchemy's pool (a ping when a connection is
    # checked out, ROLLBACK when it is returned, also after a COMMIT); "direct" = app.db_direct
    # (autocommit connections: BEGIN … COMMIT for a write, a read alone; the callback's last read is
    # the status view's SELECT instead of the whole row).
    connection_mode: str = "engine"

    @property
    def units_per_checkout(self) -> int:
        """`begin()`/`connect()` blocks: issue 1, callback 5, grant job 2 (+1 ledger), webhook 5."""
        return 1 + 5 + 2 + int(self.ledger) + 5 * int(self.webhook)

    @property
    def round_trips_per_checkout(self) -> int:
        """Statements + COMMITs, and per block a ping and a ROLLBACK (engine) or per write a BEGIN (direct)."""
        extra = 2 * self.units_per_checkout if self.connection_mode == "engine" else self.commits_per_checkout
        return self.statements_per_checkout + self.commits_per_checkout + extra

    @property
    def commits_per_checkout(self) -> int:
        return 5 + int(self.ledger) + 2 * int(self.webhook)

    @property
    def statements_per_checkout(self) -> int:
        # issue 2, callback 1+2+2+2+1, grant job 1+2 (+1 ledger), webhook 1+1 and job 1+1+1, polls
        return 2 + 8 + 3 + int(self.ledger) + 5 * int(self.webhook) + self.polls

    def describe(self) -> str:
        parts = [
            "issue (INSERT transaction + history)",
            "callback: SELECT, 10→30, 30→40, 40→45 (+ history each), "
            + ("SELECT" if self.connection_mode == "engine" else "SELECT of the status view"),
        ]
        parts.append(
            "grant: SELECT" + (", INSERT entitlement" if self.ledger else "") + ", 45→50 (+ history)"
        )
        if self.webhook:
            parts.append("webhook: INSERT event, SELECT; job: SELECT event, SELECT, UPDATE event")
        parts.append(f"{self.polls} status polls")
        parts.append(
            "through SQLAlchemy's pool (a ping and a ROLLBACK around each block)"
            if self.connection_mode == "engine"
            else "through app.db_direct (BEGIN … COMMIT, autocommit reads)"
        )
        return "; ".join(parts)


class Window:
    """Counts only what completes inside [start, end); the writers run on until `end`."""

    def __init__(self, start: float, end: float) -> None:
        self.start, self.end = start, end

    def inside(self, moment: float) -> bool:
        return self.start <= moment < self.end


class Writer:
    """One writer: its own connection (the SQLAlchemy pool's), polls on the process's status pool."""

    def __init__(
        self,
        conn: Any,
        status_pool: Any,
        statements: dict[str, Sql],
        pattern: Pattern,
        window: Window,
        counters: Counters,
        name: str,
    ) -> None:
        self.conn = conn
        self.status_pool = status_pool
        self.sql = statements
        self.pattern = pattern
        self.window = window
        self.c = counters
        self.name = name
        self.sequence = 0

    async def _execute(self, cursor: Any, name: str, values: dict[str, Any]) -> int:
        sql = self.sql[name]
        await cursor.execute(sql.text, tuple(values[p] for p in sql.params))
        if self.window.inside(time.monotonic()):
            self.c.statements += 1
        return int(cursor.rowcount)

    async def _unit(self, work: list[tuple[str, dict[str, Any]]], *, write: bool) -> list[Any]:
        """One `engine.begin()` (write) or `engine.connect()` (read) of the app: ping, the
        statements, COMMIT (write), and the pool's ROLLBACK on return; or, through app.db_direct,
        BEGIN, the statements, COMMIT (write) or the statements alone (read). Retries deadlocks."""
        from asyncmy.errors import OperationalError

        engine = self.pattern.connection_mode == "engine"
        for attempt in range(1, 4):
            started = time.monotonic()
            try:
                if engine:
                    await self.conn.ping(reconnect=False)
                    if self.window.inside(time.monotonic()):
                        self.c.pings += 1
                elif write:
                    await self.conn.begin()
                    if self.window.inside(time.monotonic()):
                        self.c.begins += 1
                results: list[Any] = []
                async with self.conn.cursor() as cursor:
                    for name, values in work:
                        rowcount = await self._execute(cursor, name, values)
                        if name.startswith(("get_", "status")):
                            results.append(await cursor.fetchone())
                        else:
                            results.append((rowcount, cursor.lastrowid))
                if write:
                    before_commit = time.monotonic()
                    await self.conn.commit()
                    done = time.monotonic()
                    if self.window.inside(done):
                        self.c.commits += 1
                        self.c.commit_ms.append((done - before_commit) * 1000)
                        self.c.write_ms.append((done - started) * 1000)
                if engine:
                    await self.conn.rollback()
                    if self.window.inside(time.monotonic()):
                        self.c.rollbacks += 1
                return results
            except OperationalError as exc:
                await self.conn.rollback()
                if attempt == 3 or not exc.args or exc.args[0] not in RETRYABLE:
                    raise
                self.c.retries += 1
                await asyncio.sleep(0.02 * attempt)
        raise AssertionError("unreachable")

    async def _poll(self, tid: str) -> None:
        async with self.status_pool.acquire() as conn, conn.cursor() as cursor:
            await self._execute(cursor, "status", {"tid": tid})
            row = await cursor.fetchone()
        if row is None:
            raise RuntimeError(f"poll: {tid} not found")

    async def _transition(
        self, tid: str, name: str, expected: int, target: int, message: str, **extra: Any
    ) -> None:
        now = _now()
        values: dict[str, Any] = {"tid": tid, "expected": expected, "target": target, "now": now}
        values.update({f"v_{k}": v for k, v in extra.pop("columns", {}).items()})
        history = {
            "tid": tid,
            "now": now,
            "v_status": target,
            "v_message": message,
            "v_metadata": json.dumps(extra.pop("notes", {})),
        }
        (changed, _), _ = await self._unit([(name, values), ("insert_history", history)], write=True)
        if changed != 1:
            raise RuntimeError(f"{tid}: {expected}→{target} did not apply")

    async def checkout(self) -> None:
        from app.core.domain import new_transaction_id

        started = time.monotonic()
        now = _now()
        tid = new_transaction_id(now)
        user = f"ceiling-{self.name}"
        self.sequence += 1
        # issue (API): the transaction and its history row, one database transaction
        await self._unit(
            [
                (
                    "insert_transaction",
                    {
                        "v_transaction_id": tid,
                        "v_user_id": user,
                        "v_product_type": "STUDY",
                        "v_product_id": "study_123",
                        "v_order_name": "Algorithm study (12 weeks)",
                        "v_amount": 50_000,
                        "v_method": "CARD",
                        "v_status": 10,
                        "v_provider": "toss",
                        "v_metadata": "{}",
                        "v_created_at": now,
                        "v_updated_at": now,
                        "v_expires_at": now + timedelta(minutes=30),
                        "v_refunded_amount": 0,
                    },
                ),
                (
                    "insert_history",
                    {"tid": tid, "now": now, "v_status": 10, "v_message": "issued", "v_metadata": "{}"},
                ),
            ],
            write=True,
        )
        # success callback (API)
        await self._unit([("get_transaction", {"tid": tid})], write=False)
        await self._transition(
            tid,
            "claim",
            10,
            30,
            "confirming with the payment provider",
            columns={"next_reconcile_at": _now() + timedelta(seconds=10)},
        )
        payment_key = f"tgen_{secrets.token_hex(10)}"
        await self._transition(
            tid,
            "mark_paid",
            30,
            40,
            "payment confirmed by the payment provider",
            columns={"payment_key": payment_key, "pg_method": "CARD", "completed_at": _now()},
            notes={"pgStatus": "DONE", "paymentKey": payment_key, "secondsSinceIssue": 0.05},
        )
        await self._transition(tid, "start_provisioning", 40, 45, "grant queued")
        if self.pattern.connection_mode == "engine":
            await self._unit([("get_transaction", {"tid": tid})], write=False)  # the redirect's outcome
        else:
            await self._poll(tid)  # the redirect's outcome: the status view, read through (one SELECT)
        polls = self.pattern.polls
        if polls > 0:
            await self._poll(tid)  # the success page's first poll: 45
            polls -= 1
        # the grant job (worker)
        await self._unit([("get_transaction", {"tid": tid})], write=False)
        if self.pattern.ledger:
            await self._unit(
                [
                    (
                        "insert_entitlement",
                        {
                            "tid": tid,
                            "now": _now(),
                            "v_user_id": user,
                            "v_product_type": "STUDY",
                            "v_product_id": "study_123",
                            "v_study_id": "study_123",
                            "v_credits": None,
                        },
                    )
                ],
                write=True,
            )
        await self._transition(
            tid, "provisioned", 45, 50, "purchase granted", notes={"try": 1, "ledger": "granted"}
        )
        # Toss's PAYMENT_STATUS_CHANGED (DONE): recorded by the API, processed by a job, no change
        if self.pattern.webhook:
            [(_, event_id)] = await self._unit(
                [
                    (
                        "insert_webhook",
                        {
                            "tid": tid,
                            "now": _now(),
                            "v_provider": "toss",
                            "v_transmission_id": f"whtrans_{secrets.token_hex(12)}",
                            "v_event_type": "PAYMENT_STATUS_CHANGED",
                            "v_pg_status": "DONE",
                            "v_retried_count": 0,
                            "v_raw_body": _webhook_body(tid, payment_key),
                            "v_outcome": "RECEIVED",
                        },
                    )
                ],
                write=True,
            )
            await self._unit([("get_transaction", {"tid": tid})], write=False)
            await self._unit([("get_webhook", {"event_id": event_id})], write=False)
            await self._unit([("get_transaction", {"tid": tid})], write=False)
            await self._unit(
                [
                    (
                        "finish_webhook",
                        {
                            "event_id": event_id,
                            "now": _now(),
                            "v_outcome": "NO_CHANGE",
                            "v_detail": "PG DONE while PROVISION_SUCCESS",
                        },
                    )
                ],
                write=True,
            )
        for _ in range(polls):
            await self._poll(tid)  # the next poll: 50, the page stops
        done = time.monotonic()
        if self.window.inside(done):
            self.c.checkouts += 1
            self.c.checkout_ms.append((done - started) * 1000)

    async def run(self) -> None:
        while time.monotonic() < self.window.end:
            try:
                await self.checkout()
            except Exception as exc:  # counted and reported; a broken connection ends this writer
                self.c.errors += 1
                log(f"{self.name}: {type(exc).__name__}: {exc}")
                if self.c.errors > 50 or not getattr(self.conn, "connected", True):
                    return


def _now() -> datetime:
    """Naive UTC with microseconds: what UTCDateTime binds."""
    return datetime.now(UTC).replace(tzinfo=None)


def _webhook_body(tid: str, payment_key: str) -> str:
    body = {
        "eventType": "PAYMENT_STATUS_CHANGED",
        "createdAt": datetime.now(UTC).isoformat(),
        "data": {"orderId": tid, "paymentKey": payment_key, "status": "DONE", "totalAmount": 50_000},
    }
    text = json.dumps(body)
    return text + " " * max(0, WEBHOOK_BODY_BYTES - len(text))


# --- a generator process ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildPlan:
    index: int
    writers: int
    connect: dict[str, Any]
    statements: dict[str, Sql]
    pattern: Pattern
    warmup: float
    seconds: float


def child_main(plan: ChildPlan, ready: Any, results: Any, go: Any, start_at: Any) -> None:
    try:
        counters = asyncio.run(_child(plan, ready, go, start_at))
        results.put((plan.index, asdict(counters), None))
    except BaseException as exc:
        results.put((plan.index, None, f"{type(exc).__name__}: {exc}"))


async def _child(plan: ChildPlan, ready: Any, go: Any, start_at: Any) -> Counters:
    import asyncmy

    autocommit = plan.pattern.connection_mode == "direct"
    conns = [await asyncmy.connect(autocommit=autocommit, **plan.connect) for _ in range(plan.writers)]
    pool_size = max(1, math.ceil(plan.writers / 4))
    status_pool = await asyncmy.create_pool(
        minsize=pool_size, maxsize=pool_size, autocommit=True, **plan.connect
    )
    ready.put(plan.index)
    if not await asyncio.to_thread(go.wait, 120):
        raise RuntimeError("no start signal")
    start = float(start_at.value)
    window = Window(start + plan.warmup, start + plan.warmup + plan.seconds)
    counters = Counters()
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    writers = [
        Writer(conn, status_pool, plan.statements, plan.pattern, window, counters, f"p{plan.index}w{i}")
        for i, conn in enumerate(conns)
    ]
    try:
        await asyncio.gather(*(w.run() for w in writers))
    finally:
        for conn in conns:
            await conn.ensure_closed()
        status_pool.close()
        await status_pool.wait_closed()
    return counters


# --- CPU and server counters -----------------------------------------------------------------------


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc/<pid>/stat (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of stat(5)


def machine_busy_seconds() -> float:
    """Every core's non-idle time, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def database_pids() -> list[int]:
    """The local mariadbd/mysqld processes (as scripts/bench.py finds them)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("mariadbd", "mysqld"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


async def server_query(connect: dict[str, Any], sql: str) -> dict[str, str]:
    import asyncmy

    conn = await asyncmy.connect(autocommit=True, **connect)
    try:
        async with conn.cursor() as cursor:
            await cursor.execute(sql)
            return {str(k): str(v) for k, v in await cursor.fetchall()}
    finally:
        await conn.ensure_closed()


async def global_counters(connect: dict[str, Any]) -> dict[str, int]:
    names = ", ".join(f"'{n}'" for n in GLOBAL_COUNTERS)
    rows = await server_query(connect, f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})")
    return {k: int(v) for k, v in rows.items()}


# --- a step: N writers for a fixed time ------------------------------------------------------------------


@dataclass
class Step:
    writers: int
    processes: int
    seconds: float
    checkouts: int
    checkouts_per_s: float
    statements_per_s: float
    commits_per_s: float
    round_trips_per_s: float
    commit_p50_ms: float | None
    commit_p99_ms: float | None
    write_p50_ms: float | None
    write_p99_ms: float | None
    checkout_p50_ms: float | None
    db_cpu_us_per_checkout: float | None
    db_cpu_percent: float | None  # of one core
    generator_cpu_percent: float  # of one core, all generator processes
    generator_max_process_percent: float  # the busiest generator process, of one core
    generator_saturated: bool
    other_cpu_percent: float  # the rest of the machine, of one core
    fsyncs_per_s: float  # server-wide Innodb_data_fsyncs
    fsyncs_per_commit: float | None
    log_writes_per_commit: float | None  # server-wide Innodb_log_writes: < 1 when group commit batches
    retries: int
    errors: int
    disturbed: bool  # the rest of the machine used ≥ DISTURBED_PERCENT of a core: other load on the box


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 3)


def processes_for(writers: int, requested: int) -> int:
    if requested > 0:
        return max(1, min(requested, writers))
    return max(1, min(os.cpu_count() or 1, math.ceil(writers / 16), writers))


async def run_step(
    writers: int,
    processes: int,
    *,
    connect: dict[str, Any],
    statements: dict[str, Sql],
    pattern: Pattern,
    warmup: float,
    seconds: float,
) -> Step:
    ctx = mp.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    go, start_at = ctx.Event(), ctx.Value("d", 0.0)
    shares = [writers // processes + (1 if i < writers % processes else 0) for i in range(processes)]
    children = [
        ctx.Process(
            target=child_main,
            args=(
                ChildPlan(i, n, connect, statements, pattern, warmup, seconds),
                ready,
                results,
                go,
                start_at,
            ),
            daemon=True,
        )
        for i, n in enumerate(shares)
    ]
    for child in children:
        child.start()
    try:
        for _ in children:
            await asyncio.to_thread(ready.get, True, 60)
        start = time.monotonic() + 0.2
        start_at.value = start
        go.set()
        db_pids = database_pids()

        def sample() -> tuple[float, float, list[float], float]:
            return (
                time.monotonic(),
                sum(process_cpu_seconds(p) for p in db_pids),
                [process_cpu_seconds(c.pid or 0) for c in children],
                machine_busy_seconds(),
            )

        await asyncio.sleep(max(0.0, start + warmup - time.monotonic()))
        t0, db0, gen0, machine0 = sample()
        server0 = await global_counters(connect)
        await asyncio.sleep(max(0.0, start + warmup + seconds - time.monotonic()))
        t1, db1, gen1, machine1 = sample()
        server1 = await global_counters(connect)
        merged, problems = Counters(), []
        for _ in children:
            index, counters, problem = await asyncio.to_thread(results.get, True, seconds + 120)
            if problem:
                problems.append(f"process {index}: {problem}")
            else:
                merged.merge(Counters(**counters))
        for child in children:
            await asyncio.to_thread(child.join, 30)
        if problems:
            raise RuntimeError("; ".join(problems))
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
    elapsed = t1 - t0
    gen_each = [100 * (b - a) / elapsed for a, b in zip(gen0, gen1, strict=True)]
    db_percent = 100 * (db1 - db0) / elapsed if db_pids else None
    machine_percent = 100 * (machine1 - machine0) / elapsed
    fsyncs = server1.get("Innodb_data_fsyncs", 0) - server0.get("Innodb_data_fsyncs", 0)
    log_writes = server1.get("Innodb_log_writes", 0) - server0.get("Innodb_log_writes", 0)
    round_trips = merged.statements + merged.commits + merged.rollbacks + merged.pings + merged.begins
    return Step(
        writers=writers,
        processes=processes,
        seconds=round(elapsed, 3),
        checkouts=merged.checkouts,
        checkouts_per_s=round(merged.checkouts / elapsed, 1),
        statements_per_s=round(merged.statements / elapsed, 1),
        commits_per_s=round(merged.commits / elapsed, 1),
        round_trips_per_s=round(round_trips / elapsed, 1),
        commit_p50_ms=_percentile(merged.commit_ms, 0.50),
        commit_p99_ms=_percentile(merged.commit_ms, 0.99),
        write_p50_ms=_percentile(merged.write_ms, 0.50),
        write_p99_ms=_percentile(merged.write_ms, 0.99),
        checkout_p50_ms=_percentile(merged.checkout_ms, 0.50),
        db_cpu_us_per_checkout=round((db1 - db0) / merged.checkouts * 1e6)
        if db_pids and merged.checkouts
        else None,
        db_cpu_percent=None if db_percent is None else round(db_percent, 1),
        generator_cpu_percent=round(sum(gen_each), 1),
        generator_max_process_percent=round(max(gen_each), 1),
        generator_saturated=max(gen_each) >= 90,
        other_cpu_percent=round(max(0.0, machine_percent - sum(gen_each) - (db_percent or 0)), 1),
        fsyncs_per_s=round(fsyncs / elapsed, 1),
        fsyncs_per_commit=round(fsyncs / merged.commits, 3) if merged.commits else None,
        log_writes_per_commit=round(log_writes / merged.commits, 3) if merged.commits else None,
        retries=merged.retries,
        errors=merged.errors,
        disturbed=max(0.0, machine_percent - sum(gen_each) - (db_percent or 0)) >= DISTURBED_PERCENT,
    )


# --- the scratch database, the check of what was written ---------------------------------------------


def connect_args(admin_url: str, database: str | None) -> dict[str, Any]:
    from sqlalchemy import make_url

    url = make_url(admin_url)
    args: dict[str, Any] = {
        "host": url.host or "127.0.0.1",
        "port": url.port or 3306,
        "user": url.username or "root",
        "password": url.password or "",
        "charset": "utf8mb4",
    }
    if database:
        args["db"] = database
    return args


async def admin(connect: dict[str, Any], sql: str) -> None:
    import asyncmy

    conn = await asyncmy.connect(autocommit=True, **connect)
    try:
        async with conn.cursor() as cursor:
            await cursor.execute(sql)
    finally:
        await conn.ensure_closed()


async def verify(connect: dict[str, Any], pattern: Pattern) -> dict[str, Any]:
    """What the writers left: every transaction at 50, with its 5 history rows (and grant, webhook)."""
    import asyncmy

    conn = await asyncmy.connect(autocommit=True, **connect)
    try:
        async with conn.cursor() as cursor:

            async def rows(sql: str) -> list[tuple[Any, ...]]:
                await cursor.execute(sql)
                return list(await cursor.fetchall())

            by_status = {
                int(s): int(n)
                for s, n in await rows("SELECT status, COUNT(*) FROM transactions GROUP BY status")
            }
            history = {
                int(k): int(n)
                for k, n in await rows(
                    "SELECT n, COUNT(*) FROM (SELECT COUNT(*) AS n FROM transaction_history "
                    "GROUP BY transaction_id) AS per GROUP BY n"
                )
            }
            sequences = {
                str(s): int(n)
                for s, n in await rows(
                    "SELECT seq, COUNT(*) FROM (SELECT GROUP_CONCAT(status ORDER BY id) AS seq "
                    "FROM transaction_history GROUP BY transaction_id) AS per GROUP BY seq"
                )
            }
            [(entitlements,)] = await rows("SELECT COUNT(*) FROM entitlements")
            webhooks = {
                str(o): int(n)
                for o, n in await rows("SELECT outcome, COUNT(*) FROM webhook_events GROUP BY outcome")
            }
    finally:
        await conn.ensure_closed()
    total = sum(by_status.values())
    expected_webhooks = {"NO_CHANGE": total} if pattern.webhook and total else {}
    ok = (
        total > 0
        and by_status == {50: total}
        and history == {5: total}
        and sequences == {"10,30,40,45,50": total}
        and int(entitlements) == (total if pattern.ledger else 0)
        and webhooks == expected_webhooks
    )
    return {
        "transactions": total,
        "by_status": by_status,
        "history_rows_per_transaction": history,
        "history_sequences": sequences,
        "entitlements": int(entitlements),
        "webhook_events": webhooks,
        "ok": ok,
    }


# --- report --------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render_markdown(report: dict[str, Any]) -> str:
    settings = report["server"]
    lines = [
        f"DB ceiling, {report['date']}: `{report['command']}`",
        "",
        f"Pattern per checkout: {report['pattern']['description']} "
        f"({report['pattern']['commits_per_checkout']} commits, {report['pattern']['statements_per_checkout']} statements, "
        f"{report['pattern']['round_trips_per_checkout']} round trips).",
        "",
        "| writers | procs | checkouts/s | statements/s | commits/s | commit p50 ms | commit p99 ms "
        "| write tx p99 ms | MariaDB µs/checkout | MariaDB % core | gen % core (max proc) | other % | fsyncs/commit | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in report["steps"]:
        saturated = " **sat.**" if s["generator_saturated"] else ""
        disturbed = " †" if s.get("disturbed") else ""
        db_us = "-" if s["db_cpu_us_per_checkout"] is None else f"{s['db_cpu_us_per_checkout']:,}"
        db_pct = "-" if s["db_cpu_percent"] is None else f"{s['db_cpu_percent']:.0f}"
        per_commit = "-" if s["fsyncs_per_commit"] is None else f"{s['fsyncs_per_commit']:.2f}"
        lines.append(
            f"| {s['writers']} | {s['processes']} | {s['checkouts_per_s']:,.1f} | {s['statements_per_s']:,.0f} "
            f"| {s['commits_per_s']:,.0f} | {_ms(s['commit_p50_ms'])} | {_ms(s['commit_p99_ms'])} "
            f"| {_ms(s['write_p99_ms'])} | {db_us} | {db_pct} "
            f"| {s['generator_cpu_percent']:.0f} ({s['generator_max_process_percent']:.0f}){saturated} "
            f"| {s['other_cpu_percent']:.0f}{disturbed} | {per_commit} | {s['errors'] + s['retries']} |"
        )
    best = report["summary"]
    lines += [
        "",
        f"Ceiling on this box: **{best['max_checkouts_per_s']:,.1f} checkouts/s** "
        f"({best['max_commits_per_s']:,.0f} commits/s) at {best['at_writers']} writers; MariaDB "
        f"{best['db_cpu_us_per_checkout'] if best['db_cpu_us_per_checkout'] is not None else '-'} µs CPU per checkout "
        f"(median over steps {best['steps_used']}) → ≈ {best['checkouts_per_db_core'] or '-'} checkouts/s per "
        "MariaDB core. † = disturbed: the rest of the machine used ≥ 25 % of a core (left out when others are not).",
        f"Server: MariaDB {settings.get('version', '?')}, innodb_flush_log_at_trx_commit="
        f"{settings.get('innodb_flush_log_at_trx_commit')}, sync_binlog={settings.get('sync_binlog')}, "
        f"log_bin={settings.get('log_bin')}, innodb_buffer_pool_size="
        f"{int(settings.get('innodb_buffer_pool_size', 0)) // 2**20} MiB, "
        f"innodb_flush_method={settings.get('innodb_flush_method')}, "
        f"innodb_doublewrite={settings.get('innodb_doublewrite')}.",
        f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, load average at start "
        f"{report['machine']['load_average_at_start']}. Generator and MariaDB share these cores; "
        "*gen* is the generator's CPU (all its processes; **sat.** = one process at ≥ 90 % of a core), "
        "*other* the rest of the machine. fsyncs and log writes are server-wide (Innodb_data_fsyncs, Innodb_log_writes) per commit of this run.",
        f"Verification: {report['verification']['transactions']} transactions, all at 50 with history "
        f"10,30,40,45,50: {'yes' if report['verification']['ok'] else 'NO'}.",
    ]
    return "\n".join(lines)


def summarise(steps: list[Step]) -> dict[str, Any]:
    """The best step and MariaDB's CPU per checkout (median), from the steps nothing else disturbed
    (the rest of the machine below DISTURBED_PERCENT of a core) when there are any."""
    quiet = [s for s in steps if not s.disturbed] or steps
    best = max(quiet, key=lambda s: s.checkouts_per_s)
    per_checkout = [s.db_cpu_us_per_checkout for s in quiet if s.db_cpu_us_per_checkout and s.checkouts >= 50]
    db_us = round(statistics.median(per_checkout)) if per_checkout else None
    return {
        "steps_used": [s.writers for s in quiet],
        "max_checkouts_per_s": best.checkouts_per_s,
        "max_commits_per_s": best.commits_per_s,
        "max_statements_per_s": best.statements_per_s,
        "at_writers": best.writers,
        "commit_p99_ms_at_max": best.commit_p99_ms,
        "db_cpu_us_per_checkout": db_us,
        "checkouts_per_db_core": round(1e6 / db_us) if db_us else None,
        "generator_saturated_at_max": best.generator_saturated,
        "fsyncs_per_commit_at_max": best.fsyncs_per_commit,
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per step (default 10)")
    parser.add_argument(
        "--warmup", type=float, default=1, help="unmeasured seconds before each step (default 1)"
    )
    parser.add_argument(
        "--concurrency",
        default="1,4,16,32,64",
        help="writers per step, comma-separated (default 1,4,16,32,64)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="generator processes per step (default 0 = auto: one per 16 writers, at most one per core)",
    )
    parser.add_argument(
        "--polls", type=int, default=2, help="status polls per checkout (default 2: the design's)"
    )
    parser.add_argument("--no-ledger", action="store_true", help="a downstream grants: no entitlements row")
    parser.add_argument(
        "--no-webhook", action="store_true", help="no PAYMENT_STATUS_CHANGED webhook per checkout"
    )
    parser.add_argument(
        "--connection-mode",
        choices=["auto", "engine", "direct"],
        default="auto",
        help="engine: SQLAlchemy's pool (ping + ROLLBACK per block); direct: app.db_direct (BEGIN … COMMIT, "
        "autocommit reads); auto (default): direct when the app has app.db_direct",
    )
    parser.add_argument(
        "--database", default="payments_ceiling", help="scratch database (recreated, dropped)"
    )
    parser.add_argument(
        "--keep-database", action="store_true", help="do not drop the scratch database at the end"
    )
    parser.add_argument("--mysql-admin-url", default=DEFAULT_ADMIN_URL, help="server URL without database")
    parser.add_argument(
        "--report-dir", type=Path, default=None, help="default loadtests/reports/db-ceiling-<timestamp>"
    )
    args = parser.parse_args(argv)
    try:
        args.steps = [int(v) for v in args.concurrency.split(",") if v.strip()]
    except ValueError:
        parser.error("--concurrency: comma-separated integers, e.g. 1,4,16")
    if not args.steps or any(n < 1 or n > 256 for n in args.steps):
        parser.error("--concurrency: between 1 and 256 writers per step")
    if args.seconds <= 0 or args.warmup < 0 or args.polls < 0:
        parser.error("--seconds must be > 0, --warmup and --polls ≥ 0")
    if len(args.steps) * (args.seconds + args.warmup) > MAX_TOTAL_SECONDS:
        parser.error(f"steps × (seconds + warmup) must stay within {MAX_TOTAL_SECONDS} s")
    if not all(c.isalnum() or c == "_" for c in args.database):
        parser.error("--database: letters, digits and _ only")
    return args


async def run(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Measure every step on a scratch database; the report (steps, summary, verification)."""
    from app.migrate import upgrade_database

    pattern = Pattern(
        polls=args.polls,
        ledger=not args.no_ledger,
        webhook=not args.no_webhook,
        connection_mode=_connection_mode(args.connection_mode),
    )
    server_connect = connect_args(args.mysql_admin_url, None)
    db_connect = connect_args(args.mysql_admin_url, args.database)
    server = await server_query(
        server_connect,
        "SHOW GLOBAL VARIABLES WHERE Variable_name IN ({})".format(
            ", ".join(f"'{v}'" for v in SERVER_VARIABLES)
        ),
    )
    if os.getloadavg()[0] >= (os.cpu_count() or 1):
        log(f"the machine is busy (load average {os.getloadavg()[0]:.1f}): steps may be disturbed (†)")
    log(
        f"MariaDB {server.get('version')}: innodb_flush_log_at_trx_commit={server.get('innodb_flush_log_at_trx_commit')}, "
        f"sync_binlog={server.get('sync_binlog')}, log_bin={server.get('log_bin')}, "
        f"buffer pool {int(server.get('innodb_buffer_pool_size', 0)) // 2**20} MiB"
    )
    machine = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    await admin(server_connect, f"DROP DATABASE IF EXISTS `{args.database}`")
    await admin(server_connect, f"CREATE DATABASE `{args.database}` CHARACTER SET utf8mb4")
    steps: list[Step] = []
    try:
        url = f"{args.mysql_admin_url.rstrip('/')}/{args.database}"
        await asyncio.to_thread(_quiet_upgrade, upgrade_database, url)
        statements = build_statements()
        log(f"pattern: {pattern.describe()}")
        for writers in args.steps:
            processes = processes_for(writers, args.processes)
            log(
                f"step: {writers} writers in {processes} process(es), {args.warmup:g} s warm-up + {args.seconds:g} s"
            )
            step = await run_step(
                writers,
                processes,
                connect=db_connect,
                statements=statements,
                pattern=pattern,
                warmup=args.warmup,
                seconds=args.seconds,
            )
            steps.append(step)
            log(
                f"  {step.checkouts_per_s:,.1f} checkouts/s, {step.statements_per_s:,.0f} statements/s, "
                f"{step.commits_per_s:,.0f} commits/s, commit p50/p99 {_ms(step.commit_p50_ms)}/{_ms(step.commit_p99_ms)} ms, "
                f"MariaDB {step.db_cpu_us_per_checkout} µs/checkout ({step.db_cpu_percent} % of a core), "
                f"generator {step.generator_cpu_percent} % (busiest process {step.generator_max_process_percent} %)"
                + (" SATURATED: use more --processes" if step.generator_saturated else "")
                + (f", {step.errors} errors" if step.errors else "")
            )
        checked = await verify(db_connect, pattern)
        log(f"verification: {checked}")
    finally:
        if not args.keep_database:
            await admin(server_connect, f"DROP DATABASE IF EXISTS `{args.database}`")
            log(f"dropped database {args.database}")
    return {
        "date": datetime.now(UTC).astimezone().isoformat(timespec="seconds"),
        "command": " ".join(["scripts/db_ceiling.py", *argv]).strip(),
        "database": args.database,
        "dropped": not args.keep_database,
        "pattern": {
            "polls": pattern.polls,
            "ledger": pattern.ledger,
            "webhook": pattern.webhook,
            "commits_per_checkout": pattern.commits_per_checkout,
            "statements_per_checkout": pattern.statements_per_checkout,
            "round_trips_per_checkout": pattern.round_trips_per_checkout,
            "connection_mode": pattern.connection_mode,
            "description": pattern.describe(),
        },
        "server": server,
        "machine": machine,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "steps": [asdict(s) for s in steps],
        "summary": summarise(steps),
        "verification": checked,
    }


def _connection_mode(asked: str) -> str:
    """What the repositories use: app.db_direct when the app has it (the write path's own pool)."""
    if asked != "auto":
        return asked
    import importlib.util

    return "direct" if importlib.util.find_spec("app.db_direct") is not None else "engine"


def _quiet_upgrade(upgrade: Any, url: str) -> None:
    """app.migrate.upgrade_database without MariaDB's notes on the alembic table."""
    logging.getLogger("asyncmy").setLevel(logging.ERROR)
    upgrade(url)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.getLogger("asyncmy").setLevel(logging.ERROR)  # "Can't drop database …; database doesn't exist"
    folder: Path = (args.report_dir or REPORTS_DIR / time.strftime("db-ceiling-%Y%m%d-%H%M%S")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        report = asyncio.run(run(args, argv))
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    (folder / "db-ceiling.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    table = render_markdown(report)
    (folder / "db-ceiling.md").write_text(table + "\n")
    print()
    print(f"== DB ceiling ({folder}) ==")
    print(table)
    steps = report["steps"]
    if any(s["generator_saturated"] for s in steps):
        log("the generator was saturated in a step: its rate there is the generator's, not MariaDB's")
    failed = not report["verification"]["ok"] or any(s["errors"] for s in steps)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
