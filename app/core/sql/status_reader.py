"""The status poll's read: one indexed SELECT of the columns a StatusView needs.

Two StatusReaders run the same statement: `SqlStatusReader` through the SQLAlchemy engine
(SQLite, tests), `MySqlStatusReader` on a plain asyncmy pool of its own (production). Caching
is not theirs: `app.core.status_cache.CachedStatusReader` wraps either.

Both also read a view with its sequence (`get_sequenced_view`, the status stream's event id): the
same columns and the count of the transaction's history rows, in one statement, so the two agree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, overload

import asyncmy
from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.domain import Method, Status
from app.core.ports import SequencedView, StatusView
from app.db import transaction_history as history_table
from app.db import transactions as tx_table
from app.db_direct import driver_connect_args

_STATUS_COLUMNS = (
    tx_table.c.transaction_id,
    tx_table.c.user_id,
    tx_table.c.status,
    tx_table.c.amount,
    tx_table.c.method,
    tx_table.c.updated_at,
    tx_table.c.completed_at,
    tx_table.c.failure_code,
    tx_table.c.failure_message,
    tx_table.c.va_bank_code,
    tx_table.c.va_account_number,
    tx_table.c.va_due_date,
    tx_table.c.refunded_amount,
    tx_table.c.refund_reserved_amount,
    tx_table.c.failure_pg_code,
    tx_table.c.failure_pg_message,
)
# Built once: SQLAlchemy caches its compiled form, so a poll costs one round trip and no compiling.
_STATUS_QUERY = select(*_STATUS_COLUMNS).where(tx_table.c.transaction_id == bindparam("transaction_id"))
# The same row and, read in the same statement (one snapshot), how many history rows it has.
_HISTORY_ROWS = (
    select(func.count())
    .select_from(history_table)
    .where(history_table.c.transaction_id == tx_table.c.transaction_id)
    .correlate(tx_table)
    .scalar_subquery()
)
_SEQUENCED_QUERY = select(*_STATUS_COLUMNS, _HISTORY_ROWS).where(
    tx_table.c.transaction_id == bindparam("transaction_id")
)


@overload
def _as_utc(moment: datetime) -> datetime: ...
@overload
def _as_utc(moment: None) -> None: ...
def _as_utc(moment: datetime | None) -> datetime | None:
    """The raw reader gets naive UTC datetimes; the SQLAlchemy type already made them aware."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _to_view(row: Sequence[Any]) -> StatusView:
    return StatusView(
        transaction_id=row[0],
        user_id=row[1],
        status=Status(row[2]),
        amount=int(row[3]),
        method=Method(row[4]),
        updated_at=_as_utc(row[5]),
        completed_at=_as_utc(row[6]),
        failure_code=row[7],
        failure_message=row[8],
        va_bank_code=row[9],
        va_account_number=row[10],
        va_due_date=_as_utc(row[11]),
        refunded_amount=int(row[12]),
        refund_reserved_amount=int(row[13]),
        failure_pg_code=row[14],
        failure_pg_message=row[15],
    )


def _to_sequenced(row: Sequence[Any]) -> SequencedView:
    return SequencedView(view=_to_view(row), sequence=int(row[len(_STATUS_COLUMNS)]))


class SqlStatusReader:
    """The status read through the SQLAlchemy engine (SQLite, or MySQL without a pool of its own)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get_status_view(self, transaction_id: str) -> StatusView | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(_STATUS_QUERY, {"transaction_id": transaction_id})).first()
        return None if row is None else _to_view(row)

    async def get_sequenced_view(self, transaction_id: str) -> SequencedView | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(_SEQUENCED_QUERY, {"transaction_id": transaction_id})).first()
        return None if row is None else _to_sequenced(row)


class MySqlStatusReader:
    """The status poll's one SELECT on a plain asyncmy pool (autocommit): one round trip, and
    none of SQLAlchemy's per-call work, which costs more CPU than the query itself on this path.
    The SQL is the SQLAlchemy statement compiled once, so the two paths cannot drift apart.
    """

    SQL = str(_STATUS_QUERY.compile(dialect=mysql_dialect.dialect()))
    SEQUENCED_SQL = str(_SEQUENCED_QUERY.compile(dialect=mysql_dialect.dialect()))

    def __init__(
        self,
        database_url: str,
        *,
        pool_size: int,
        recycle_seconds: int,
        shared_pool: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self._connect_args = driver_connect_args(database_url)
        self._pool_size = pool_size
        self._recycle = recycle_seconds
        self._pool: Any = None
        self._opening = asyncio.Lock()
        # The write path's pool (app.db_direct.DirectDatabase.pool), the same kind of connection:
        # one pool per process for both, owned (and closed) by the DirectDatabase.
        self._shared_pool = shared_pool

    async def get_status_view(self, transaction_id: str) -> StatusView | None:
        row = await self.fetch(transaction_id)
        return None if row is None else _to_view(row)

    async def fetch(self, transaction_id: str) -> Sequence[Any] | None:
        """The raw row of the status columns, or None."""
        return await self._fetch(self.SQL, transaction_id)

    async def get_sequenced_view(self, transaction_id: str) -> SequencedView | None:
        row = await self._fetch(self.SEQUENCED_SQL, transaction_id)
        return None if row is None else _to_sequenced(row)

    async def _fetch(self, sql: str, transaction_id: str) -> Sequence[Any] | None:
        pool = self._pool or await self._open()
        async with pool.acquire() as conn, conn.cursor() as cursor:
            await cursor.execute(sql, (transaction_id,))
            row: Sequence[Any] | None = await cursor.fetchone()
            return row

    async def _open(self) -> Any:
        if self._shared_pool is not None:
            self._pool = await self._shared_pool()
            return self._pool
        async with self._opening:  # the pool binds to the running event loop: open it lazily, once
            if self._pool is None:
                self._pool = await asyncmy.create_pool(
                    minsize=1, maxsize=self._pool_size, pool_recycle=self._recycle, **self._connect_args
                )
        return self._pool

    async def close(self) -> None:
        if self._shared_pool is not None:
            self._pool = None  # its owner closes it
            return
        if self._pool is not None:
            self._pool.close()
            await self._pool.wait_closed()
            self._pool = None
