"""The reconciler's backoff schedule, and the SQL its claim query renders for MySQL/MariaDB."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects.mysql import asyncmy
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.sql import Select

from app.core.reconciliation import BACKOFF_SECONDS, PaymentReconciler, ReconcileConfig
from app.core.sql.transactions import SqlTransactionRepository

# --- next_delay -----------------------------------------------------------------------------------


def _reconciler(scale: float) -> PaymentReconciler:
    # next_delay touches only the config; the other collaborators are never called.
    unused: Any = object()
    return PaymentReconciler(
        repository=unused,
        gateway=unused,
        results=unused,
        clock=unused,
        config=ReconcileConfig(backoff_scale=scale),
    )


def test_the_documented_schedule_is_10s_30s_1m_5m_15m_then_hourly() -> None:
    assert BACKOFF_SECONDS == (10, 30, 60, 300, 900, 3600)


@pytest.mark.parametrize(
    ("attempt", "seconds"),
    [(1, 10), (2, 30), (3, 60), (4, 300), (5, 900), (6, 3600), (7, 3600), (50, 3600), (10_000, 3600)],
)
def test_next_delay_follows_the_schedule_at_scale_one(attempt: int, seconds: float) -> None:
    assert _reconciler(1.0).next_delay(attempt) == timedelta(seconds=seconds)


@pytest.mark.parametrize("attempt", [0, -1, -100])
def test_next_delay_before_the_first_attempt_is_the_first_step(attempt: int) -> None:
    assert _reconciler(1.0).next_delay(attempt) == timedelta(seconds=10)


@pytest.mark.parametrize("scale", [0.1, 0.001, 2.5])
def test_next_delay_is_multiplied_by_the_scale(scale: float) -> None:
    reconciler = _reconciler(scale)

    delays = [reconciler.next_delay(attempt) for attempt in range(1, 9)]

    expected = [timedelta(seconds=s * scale) for s in (10, 30, 60, 300, 900, 3600, 3600, 3600)]
    assert delays == expected


def test_next_delay_never_shrinks_as_attempts_grow() -> None:
    reconciler = _reconciler(0.1)
    delays = [reconciler.next_delay(attempt) for attempt in range(0, 20)]

    assert delays == sorted(delays)
    assert delays[-1] == timedelta(seconds=360)


def test_a_zero_scale_retries_at_once() -> None:
    assert _reconciler(0.0).next_delay(3) == timedelta(0)


def test_the_default_config() -> None:
    config = ReconcileConfig()

    assert (config.backoff_scale, config.give_up_seconds, config.lease_seconds) == (1.0, 86400.0, 60.0)


# --- the claim query's SQL ------------------------------------------------------------------------


class _CapturingConnection:
    def __init__(self, statements: list[Any]) -> None:
        self._statements = statements

    async def execute(self, statement: Any, *args: Any) -> Any:
        self._statements.append(statement)

        class _NoRows:
            def all(self) -> list[Any]:
                return []

        return _NoRows()


class _CapturingEngine:
    """Stands in for an AsyncEngine: records the statements instead of running them."""

    def __init__(self) -> None:
        self.statements: list[Any] = []

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[_CapturingConnection]:
        yield _CapturingConnection(self.statements)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[_CapturingConnection]:
        yield _CapturingConnection(self.statements)


async def _claim_query() -> Select[Any]:
    """The exact statement claim_due_reconciliations executes (captured, not rebuilt)."""
    engine = _CapturingEngine()
    repository = SqlTransactionRepository(engine)  # type: ignore[arg-type]

    claimed = await repository.claim_due_reconciliations(
        datetime(2026, 3, 1, 12, 0, tzinfo=UTC), limit=10, lease_seconds=60
    )

    assert claimed == []
    assert len(engine.statements) == 1, engine.statements  # no rows due: no UPDATE
    statement = engine.statements[0]
    assert isinstance(statement, Select)
    return statement


def _mariadb_asyncmy() -> Dialect:
    dialect = asyncmy.dialect()
    dialect.is_mariadb = True  # what the engine sets after connecting to MariaDB
    return dialect


def _sql(statement: Select[Any], dialect: Dialect) -> str:
    return " ".join(str(statement.compile(dialect=dialect)).split())


DIALECTS = {
    "mysql": mysql.dialect,
    "mysql+asyncmy": asyncmy.dialect,
    "mariadb+asyncmy": _mariadb_asyncmy,
    "engine(mysql+asyncmy)": lambda: create_async_engine("mysql+asyncmy://root@127.0.0.1:3306/x").dialect,
}


@pytest.mark.parametrize("dialect_name", list(DIALECTS))
async def test_the_claim_query_renders_for_update_skip_locked(dialect_name: str) -> None:
    statement = await _claim_query()

    sql = _sql(statement, DIALECTS[dialect_name]())

    assert sql.endswith("FOR UPDATE SKIP LOCKED"), sql
    assert re.fullmatch(
        r"SELECT transactions\.transaction_id, transactions\.reconcile_attempts, transactions\.id "
        r"FROM transactions "
        r"WHERE transactions\.status = %s AND transactions\.next_reconcile_at <= %s "
        r"ORDER BY transactions\.next_reconcile_at "
        r"LIMIT %s FOR UPDATE SKIP LOCKED",
        sql,
    ), sql


async def test_the_claim_query_binds_pending_status_now_and_the_limit() -> None:
    statement = await _claim_query()

    params = statement.compile(dialect=asyncmy.dialect()).params

    assert sorted(params.values(), key=str) == sorted(
        [30, datetime(2026, 3, 1, 12, 0, tzinfo=UTC), 10], key=str
    ), params  # PAYMENT_PENDING only, due by now, at most `limit` rows


async def test_the_claim_query_locks_with_skip_locked_not_nowait() -> None:
    statement = await _claim_query()

    sql = _sql(statement, mysql.dialect())

    assert "NOWAIT" not in sql
    assert sql.count("FOR UPDATE") == 1
    assert "LOCK IN SHARE MODE" not in sql
