"""SQLAlchemy adapter of TransactionRepository: the rows, guarded transitions and their history."""

from __future__ import annotations

import asyncio
import base64
import functools
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Update, bindparam, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.domain import (
    ForbiddenTransition,
    HistoryEntry,
    Method,
    ProductType,
    Status,
    Transaction,
    Transition,
    TransitionChange,
)
from app.core.ports import InvalidCursor, StatusChanges, StatusReader, StatusView, TransactionPage
from app.core.sql.history import append_history
from app.core.sql.status_reader import SqlStatusReader
from app.core.sql.stored_text import fit
from app.core.status_cache import CachedStatusReader
from app.core.status_changes import UncachedStatusChanges
from app.db import transaction_history as history_table
from app.db import transactions as tx_table
from app.db_direct import HotPathDatabase

# The hot statements are built once and given their values at execution: SQLAlchemy then compiles
# each once and caches it, where a statement built per call with .values(...) costs more CPU to
# build than the database takes to run it (scripts/profile_write_path.py, loadtests/README.md).
_INSERT_TRANSACTION = insert(tx_table)
_SELECT_TRANSACTION = select(tx_table).where(tx_table.c.transaction_id == bindparam("transaction_id"))


@functools.cache
def _guarded_update(columns: frozenset[str]) -> Update:
    """UPDATE … SET <columns> WHERE transaction_id = :where_transaction_id AND status = :where_status
    (the guarded transition), one statement per set of columns a transition writes."""
    return (
        update(tx_table)
        .where(
            tx_table.c.transaction_id == bindparam("where_transaction_id"),
            tx_table.c.status == bindparam("where_status"),
        )
        .values({name: bindparam(name) for name in sorted(columns)})
    )


_DEADLOCK_ATTEMPTS = 3
_RETRYABLE_MYSQL_ERRORS = frozenset({1213, 1205})  # deadlock, lock wait timeout


def _mysql_error_code(exc: OperationalError) -> int | None:
    args = getattr(exc.orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _to_transaction(row: Row[Any]) -> Transaction:
    m = row._mapping
    return Transaction(
        transaction_id=m["transaction_id"],
        user_id=m["user_id"],
        product_type=ProductType(m["product_type"]),
        product_id=m["product_id"],
        order_name=m["order_name"],
        amount=int(m["amount"]),
        method=Method(m["method"]),
        status=Status(m["status"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        expires_at=m["expires_at"],
        provider=m["provider"],
        payment_key=m["payment_key"],
        pg_method=m["pg_method"],
        metadata=dict(m["metadata"] or {}),
        completed_at=m["completed_at"],
        failure_code=m["failure_code"],
        failure_pg_code=m["failure_pg_code"],
        failure_message=m["failure_message"],
        failure_pg_message=m["failure_pg_message"],
        va_bank_code=m["va_bank_code"],
        va_account_number=m["va_account_number"],
        va_due_date=m["va_due_date"],
        va_secret=m["va_secret"],
        refunded_amount=int(m["refunded_amount"]),
        refund_reserved_amount=int(m["refund_reserved_amount"]),
    )


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{row_id}".encode()).decode().rstrip("=")


_CURSOR_ROW_ID = re.compile(r"[0-9]{1,18}")


def decode_cursor(cursor: str) -> int | None:
    """The row id behind an opaque cursor, or None when the cursor is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, _, value = raw.partition(":")
        # ASCII digits that fit a BIGINT only: int() also takes "-1" and "٣", and SQLite cannot bind 2**63
        return int(value) if version == "v1" and _CURSOR_ROW_ID.fullmatch(value) else None
    except (ValueError, UnicodeDecodeError):
        return None


class SqlTransactionRepository:
    """Every write is one database transaction: a status change commits with its history row, and
    is announced (`status_changes`) after the commit, so no process keeps serving the old view."""

    def __init__(
        self,
        engine: AsyncEngine,
        status_reader: StatusReader | None = None,
        *,
        status_changes: StatusChanges | None = None,
        hot: HotPathDatabase | None = None,
    ) -> None:
        self._engine = engine
        # What the checkout's statements run on (add, get, the guarded transitions): on MySQL a
        # plain driver pool (app.db_direct), the engine otherwise and for everything else.
        self._hot = hot if hot is not None else engine
        # The poll's read, as the composition root built it (MySQL's own pool, behind the cache).
        self._status_reader = status_reader if status_reader is not None else SqlStatusReader(engine)
        # Pass the bus whenever any process caches status views; without one nothing is announced.
        self._status_changes = status_changes if status_changes is not None else UncachedStatusChanges()

    async def add(self, transaction: Transaction, message: str) -> None:
        t = transaction
        async with self._hot.begin() as conn:
            await conn.execute(
                _INSERT_TRANSACTION,
                {
                    "transaction_id": t.transaction_id,
                    "user_id": t.user_id,
                    "product_type": t.product_type.value,
                    "product_id": t.product_id,
                    "order_name": fit(tx_table.c.order_name, t.order_name),
                    "amount": t.amount,
                    "method": t.method.value,
                    "status": int(t.status),
                    "provider": t.provider,
                    "metadata": t.metadata,
                    "created_at": t.created_at,
                    "updated_at": t.updated_at,
                    "expires_at": t.expires_at,
                    "refunded_amount": 0,
                },
            )
            await append_history(conn, t.transaction_id, t.status, message, {}, t.created_at)

    async def get(self, transaction_id: str) -> Transaction | None:
        async with self._hot.connect() as conn:
            row = (await conn.execute(_SELECT_TRANSACTION, {"transaction_id": transaction_id})).first()
        return None if row is None else _to_transaction(row)

    async def get_status_view(self, transaction_id: str) -> StatusView | None:
        return await self._status_reader.get_status_view(transaction_id)

    async def current_status_view(self, transaction_id: str) -> StatusView | None:
        if isinstance(self._status_reader, CachedStatusReader):
            return await self._status_reader.read_through(transaction_id)
        return await self._status_reader.get_status_view(transaction_id)

    async def history(self, transaction_id: str) -> Sequence[HistoryEntry]:
        query = (
            select(history_table.c.status, history_table.c.message, history_table.c.metadata)
            .add_columns(history_table.c.created_at)
            .where(history_table.c.transaction_id == transaction_id)
            .order_by(history_table.c.id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            HistoryEntry(status=Status(r[0]), message=r[1], metadata=dict(r[2] or {}), created_at=r[3])
            for r in rows
        ]

    async def list_for_user(
        self, user_id: str, *, statuses: Sequence[Status] | None, cursor: str | None, limit: int
    ) -> TransactionPage:
        query = select(tx_table).where(tx_table.c.user_id == user_id)
        if statuses:
            query = query.where(tx_table.c.status.in_([int(s) for s in statuses]))
        if cursor is not None:
            before = decode_cursor(cursor)
            if before is None:
                raise InvalidCursor()
            query = query.where(tx_table.c.id < before)
        query = query.order_by(tx_table.c.id.desc()).limit(limit + 1)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        has_more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]._mapping["id"]) if has_more and rows else None
        return TransactionPage(items=[_to_transaction(r) for r in rows], next_cursor=next_cursor)

    async def apply(self, transaction_id: str, transition: Transition, *, now: datetime) -> bool:
        if not transition.allowed:
            raise ForbiddenTransition(transition)
        values: dict[str, Any] = {"status": int(transition.target), "updated_at": now}
        values.update(_change_values(transition.change))
        for attempt in range(1, _DEADLOCK_ATTEMPTS + 1):
            try:
                async with self._hot.begin() as conn:
                    result = await conn.execute(
                        _guarded_update(frozenset(values)),
                        {
                            **values,
                            "where_transaction_id": transaction_id,
                            "where_status": int(transition.expected),
                        },
                    )
                    if result.rowcount != 1:
                        return False
                    await append_history(
                        conn, transaction_id, transition.target, transition.message, transition.history, now
                    )
                break
            except OperationalError as exc:
                # InnoDB picked this transaction as a deadlock victim and rolled it back: run it again.
                if attempt == _DEADLOCK_ATTEMPTS or _mysql_error_code(exc) not in _RETRYABLE_MYSQL_ERRORS:
                    raise
                await asyncio.sleep(0.02 * attempt)
        await self._status_changes.announce(transaction_id)
        return True

    async def record_event(
        self,
        transaction_id: str,
        *,
        status: Status,
        message: str,
        metadata: Mapping[str, Any],
        now: datetime,
        change: TransitionChange | None = None,
    ) -> bool:
        async with self._engine.begin() as conn:
            values = _change_values(change)
            if values:
                result = await conn.execute(
                    update(tx_table)
                    .where(tx_table.c.transaction_id == transaction_id, tx_table.c.status == int(status))
                    .values(**values)
                )
                if result.rowcount != 1:
                    return False
            else:
                # Nothing to write, but the note is still only true in `status`: lock and check.
                current = await conn.execute(
                    select(tx_table.c.status)
                    .where(tx_table.c.transaction_id == transaction_id)
                    .with_for_update()
                )
                if current.scalar_one_or_none() != int(status):
                    return False
            await append_history(conn, transaction_id, status, message, metadata, now)
        if values:
            await self._status_changes.announce(transaction_id)
        return True

    async def store_virtual_account(
        self,
        transaction_id: str,
        *,
        message: str,
        metadata: Mapping[str, Any],
        now: datetime,
        change: TransitionChange,
    ) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(tx_table)
                .where(
                    tx_table.c.transaction_id == transaction_id,
                    tx_table.c.status == int(Status.PAYMENT_PENDING),
                    tx_table.c.va_account_number.is_(None),
                )
                .values(**_change_values(change))
            )
            if result.rowcount != 1:
                return False
            await append_history(conn, transaction_id, Status.PAYMENT_PENDING, message, metadata, now)
        await self._status_changes.announce(transaction_id)
        return True

    async def find_expired_created(self, now: datetime, limit: int) -> Sequence[str]:
        query = (
            select(tx_table.c.transaction_id)
            .where(tx_table.c.status == int(Status.CREATED), tx_table.c.expires_at <= now)
            .order_by(tx_table.c.expires_at)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [r[0] for r in (await conn.execute(query)).all()]

    async def find_stale(self, status: Status, updated_before: datetime, limit: int) -> Sequence[str]:
        query = (
            select(tx_table.c.transaction_id)
            .where(tx_table.c.status == int(status), tx_table.c.updated_at <= updated_before)
            .order_by(tx_table.c.updated_at)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [r[0] for r in (await conn.execute(query)).all()]

    async def claim_due_reconciliations(
        self, now: datetime, *, limit: int, lease_seconds: float
    ) -> Sequence[tuple[str, int]]:
        due = (
            select(tx_table.c.transaction_id, tx_table.c.reconcile_attempts, tx_table.c.id)
            .where(
                tx_table.c.status == int(Status.PAYMENT_PENDING),
                tx_table.c.next_reconcile_at <= now,
            )
            .order_by(tx_table.c.next_reconcile_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        lease_until = now + timedelta(seconds=lease_seconds)
        async with self._engine.begin() as conn:
            rows = (await conn.execute(due)).all()
            if not rows:
                return []
            # By primary key: the rows are locked already, and locking the transaction_id index
            # too would take locks in the opposite order of a transition's UPDATE (a deadlock).
            await conn.execute(
                update(tx_table)
                .where(tx_table.c.id.in_([r[2] for r in rows]))
                .values(
                    next_reconcile_at=lease_until,
                    reconcile_attempts=tx_table.c.reconcile_attempts + 1,
                )
            )
        return [(r[0], int(r[1]) + 1) for r in rows]

    async def schedule_reconciliation(self, transaction_id: str, next_at: datetime) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(tx_table)
                .where(
                    tx_table.c.transaction_id == transaction_id,
                    tx_table.c.status == int(Status.PAYMENT_PENDING),
                )
                .values(next_reconcile_at=next_at)
            )


# A failure's PG code and message come from a browser redirect or a PG answer.
_PG_TEXT_COLUMNS = ("failure_message", "failure_pg_code", "failure_pg_message")


def _change_values(change: TransitionChange | None) -> dict[str, Any]:
    if change is None:
        return {}
    values = {name: getattr(change, name) for name in change.__slots__ if getattr(change, name) is not None}
    for name in _PG_TEXT_COLUMNS:
        if name in values:
            values[name] = fit(tx_table.c[name], values[name])
    return values
