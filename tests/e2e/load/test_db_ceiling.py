"""`make db-ceiling` (scripts/db_ceiling.py) on the real MariaDB, in short bounded runs: it exits 0,
reports every field, writes exactly the card checkout's rows (every transaction at 50 through
10, 30, 40, 45, 50, one grant, one webhook event) and drops its scratch database. No timed
assertions: the rates are whatever this machine gives. About 10 s (two runs of ~2 s of load each,
plus start-up and migrations); each run is stopped after 120 s."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url

from tests.conftest import MARIADB_ADMIN_URL
from tests.support.servers import port_open

REPO_ROOT = Path(__file__).resolve().parents[3]
SCRIPT = REPO_ROOT / "scripts" / "db_ceiling.py"
STEP_FIELDS = {
    "writers",
    "processes",
    "seconds",
    "checkouts",
    "checkouts_per_s",
    "statements_per_s",
    "commits_per_s",
    "commit_p50_ms",
    "commit_p99_ms",
    "db_cpu_us_per_checkout",
    "db_cpu_percent",
    "generator_cpu_percent",
    "generator_max_process_percent",
    "generator_saturated",
    "fsyncs_per_commit",
    "errors",
}


def _database_name() -> str:
    return f"payments_ceiling_test_{os.getpid()}_{secrets.token_hex(3)}"


def _run(database: str, report_dir: Path, *extra: str) -> dict[str, Any]:
    if not port_open(make_url(MARIADB_ADMIN_URL).port or 3306):
        pytest.fail("MariaDB is not reachable. Start the services with `make services`.", pytrace=False)
    command = [
        sys.executable,
        str(SCRIPT),
        "--database",
        database,
        "--report-dir",
        str(report_dir),
        "--mysql-admin-url",
        MARIADB_ADMIN_URL,
        *extra,
    ]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "== DB ceiling" in done.stdout
    assert (report_dir / "db-ceiling.md").read_text().count("\n|") >= 3  # header, rule, a row per step
    report: dict[str, Any] = json.loads((report_dir / "db-ceiling.json").read_text())
    return report


async def _query(database: str | None, sql: str) -> list[tuple[Any, ...]]:
    import asyncmy

    url = make_url(MARIADB_ADMIN_URL)
    conn = await asyncmy.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        db=database,
        autocommit=True,
    )
    try:
        async with conn.cursor() as cursor:
            await cursor.execute(sql)
            return list(await cursor.fetchall())
    finally:
        await conn.ensure_closed()


def _exists(database: str) -> bool:
    rows = asyncio.run(
        _query(None, f"SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{database}'")
    )
    return bool(rows[0][0])


def test_a_short_sweep_reports_every_field_and_drops_its_database(tmp_path: Path) -> None:
    database = _database_name()
    report = _run(database, tmp_path, "--seconds", "1", "--warmup", "0.2", "--concurrency", "1,4")

    assert not _exists(database), "the scratch database was not dropped"
    assert report["database"] == database and report["dropped"] is True
    assert [s["writers"] for s in report["steps"]] == [1, 4]
    for step in report["steps"]:
        assert step.keys() >= STEP_FIELDS
        assert step["checkouts"] > 0 and step["errors"] == 0
        # 8 commits per checkout (issue, 10→30, 30→40, 40→45, grant, 45→50, webhook in, webhook done)
        # and 21 statements; counted in the same window (a checkout in flight at its edges aside)
        assert 6 <= step["commits_per_s"] / step["checkouts_per_s"] <= 10
        assert 17 <= step["statements_per_s"] / step["checkouts_per_s"] <= 25
    pattern = report["pattern"]
    assert pattern["commits_per_checkout"] == 8 and pattern["statements_per_checkout"] == 21
    assert pattern["polls"] == 2 and pattern["connection_mode"] in ("engine", "direct")
    for name in ("innodb_flush_log_at_trx_commit", "sync_binlog", "innodb_buffer_pool_size", "log_bin"):
        assert name in report["server"]
    assert report["summary"].keys() >= {"max_checkouts_per_s", "db_cpu_us_per_checkout", "max_commits_per_s"}
    checked = report["verification"]
    assert checked["ok"] is True and checked["transactions"] > 0
    assert checked["history_sequences"] == {"10,30,40,45,50": checked["transactions"]}


def test_the_rows_left_behind_are_one_card_checkout_each(tmp_path: Path) -> None:
    database = _database_name()
    try:
        report = _run(
            database,
            tmp_path,
            "--seconds",
            "0.5",
            "--warmup",
            "0",
            "--concurrency",
            "3",
            "--keep-database",
            "--connection-mode",
            "engine",  # the other test runs the default (direct when the app has app.db_direct)
        )
        assert _exists(database) and report["dropped"] is False
        assert report["pattern"]["connection_mode"] == "engine"

        async def rows() -> dict[str, Any]:
            async def q(sql: str) -> list[tuple[Any, ...]]:
                return await _query(database, sql)

            return {
                "transactions": await q("SELECT transaction_id, status, payment_key FROM transactions"),
                "history": await q(
                    "SELECT transaction_id, GROUP_CONCAT(status ORDER BY id) FROM transaction_history "
                    "GROUP BY transaction_id"
                ),
                "grants": await q("SELECT transaction_id FROM entitlements"),
                "webhooks": await q("SELECT order_id, outcome, processed_at IS NOT NULL FROM webhook_events"),
            }

        found = asyncio.run(rows())
        transactions = found["transactions"]
        ids = {t[0] for t in transactions}
        assert len(ids) == len(transactions) > 0
        assert all(status == 50 and key for _, status, key in transactions)
        assert dict(found["history"]) == dict.fromkeys(ids, "10,30,40,45,50")
        assert sorted(g[0] for g in found["grants"]) == sorted(ids)
        assert sorted(found["webhooks"]) == sorted((tid, "NO_CHANGE", 1) for tid in ids)
        assert report["verification"]["transactions"] == len(ids)
    finally:
        asyncio.run(_query(None, f"DROP DATABASE IF EXISTS `{database}`"))
