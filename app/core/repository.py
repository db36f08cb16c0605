"""SQLAlchemy adapter of TransactionRepository (MySQL/MariaDB through asyncmy, or SQLite)."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, overload

import asyncmy
from sqlalchemy import Column, bindparam, case, insert, make_url, select, update
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.core.domain import (
    ForbiddenTransition,
    HistoryEntry,
    Method,
    ProductType,
    RefundStatus,
    RevokeStatus,
    Status,
    Transaction,
    Transition,
    TransitionChange,
)
from app.core.ports import (
    RefundRecord,
    StatusChanges,
    StatusView,
    TransactionPage,
    WebhookEvent,
)
from app.core.printable import printable_text
from app.core.status_cache import StatusViewCache
from app.core.status_changes import LocalStatusChanges
from app.db import refunds as refunds_table
from app.db import transaction_history as history_table
from app.db import transactions as tx_table
from app.db import webhook_events as webhook_table
from app.gateway.models import RefundAccount
from app.metrics import (
    PAYMENT_DURATION,
    PAYMENTS_FAILED,
    PAYMENTS_SUCCEEDED,
    REFUNDS,
    STATUS_CACHE,
    TRANSACTIONS_CREATED,
    WEBHOOK_DELIVERIES,
)

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
)
# Built once: SQLAlchemy caches its compiled form, so a poll costs one round trip and no compiling.
_STATUS_QUERY = select(*_STATUS_COLUMNS).where(tx_table.c.transaction_id == bindparam("transaction_id"))

_CACHE_HITS = STATUS_CACHE.labels(result="hit")
_CACHE_MISSES = STATUS_CACHE.labels(result="miss")

_DEADLOCK_ATTEMPTS = 3
_RETRYABLE_MYSQL_ERRORS = frozenset({1213, 1205})  # deadlock, lock wait timeout


def _mysql_error_code(exc: OperationalError) -> int | None:
    args = getattr(exc.orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


@overload
def _as_utc(moment: datetime) -> datetime: ...
@overload
def _as_utc(moment: None) -> None: ...
def _as_utc(moment: datetime | None) -> datetime | None:
    """The raw reader gets naive UTC datetimes; the SQLAlchemy type already made them aware."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class MySqlStatusReader:
    """The status poll's one SELECT on a plain asyncmy pool (autocommit): one round trip, and
    none of SQLAlchemy's per-call work, which costs more CPU than the query itself on this path.
    The SQL is the SQLAlchemy statement compiled once, so the two paths cannot drift apart.
    """

    SQL = str(_STATUS_QUERY.compile(dialect=mysql_dialect.dialect()))

    def __init__(self, database_url: str, *, pool_size: int, recycle_seconds: int) -> None:
        url = make_url(database_url)
        self._connect_args: dict[str, Any] = {
            "host": url.host or "127.0.0.1",
            "port": url.port or 3306,
            "user": url.username or "root",
            "password": url.password or "",
            "db": url.database,
            "autocommit": True,
            "charset": "utf8mb4",
        }
        self._pool_size = pool_size
        self._recycle = recycle_seconds
        self._pool: Any = None
        self._opening = asyncio.Lock()

    async def fetch(self, transaction_id: str) -> Sequence[Any] | None:
        pool = self._pool or await self._open()
        async with pool.acquire() as conn, conn.cursor() as cursor:
            await cursor.execute(self.SQL, (transaction_id,))
            row: Sequence[Any] | None = await cursor.fetchone()
            return row

    async def _open(self) -> Any:
        async with self._opening:  # the pool binds to the running event loop: open it lazily, once
            if self._pool is None:
                self._pool = await asyncmy.create_pool(
                    minsize=1, maxsize=self._pool_size, pool_recycle=self._recycle, **self._connect_args
                )
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            await self._pool.wait_closed()
            self._pool = None


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
    """Every write is one database transaction: a status change commits with its history row."""

    def __init__(
        self,
        engine: AsyncEngine,
        status_reader: MySqlStatusReader | None = None,
        *,
        status_cache: StatusViewCache | None = None,
        status_changes: StatusChanges | None = None,
    ) -> None:
        self._engine = engine
        self._status_reader = status_reader  # MySQL: the poll's own pool; SQLite: the engine
        # Polls are served from this process's cache while it is coherent (app.core.status_cache);
        # by default only final views (41, 95), which never change, are kept.
        if status_cache is None:
            status_cache = StatusViewCache(ttl_seconds=0, coherent=True)
        self._status_cache = status_cache
        # Every committed write to a row is announced, so no process keeps serving the old view.
        self._status_changes = (
            status_changes if status_changes is not None else LocalStatusChanges(status_cache)
        )

    async def add(self, transaction: Transaction, message: str) -> None:
        t = transaction
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(tx_table).values(
                    transaction_id=t.transaction_id,
                    user_id=t.user_id,
                    product_type=t.product_type.value,
                    product_id=t.product_id,
                    order_name=_fit(tx_table.c.order_name, t.order_name),
                    amount=t.amount,
                    method=t.method.value,
                    status=int(t.status),
                    provider=t.provider,
                    metadata=t.metadata,
                    created_at=t.created_at,
                    updated_at=t.updated_at,
                    expires_at=t.expires_at,
                    refunded_amount=0,
                )
            )
            await _append_history(conn, t.transaction_id, t.status, message, {}, t.created_at)
        TRANSACTIONS_CREATED.labels(product_type=t.product_type.value).inc()

    async def get(self, transaction_id: str) -> Transaction | None:
        async with self._engine.connect() as conn:
            result = await conn.execute(select(tx_table).where(tx_table.c.transaction_id == transaction_id))
            row = result.first()
        return None if row is None else _to_transaction(row)

    async def get_status_view(self, transaction_id: str) -> StatusView | None:
        cache = self._status_cache
        cached = cache.get(transaction_id)
        if cached is not None:
            _CACHE_HITS.inc()
            return cached
        _CACHE_MISSES.inc()
        ticket = cache.ticket()  # before the read: a write announced during it voids the ticket
        if self._status_reader is not None:
            row: Sequence[Any] | None = await self._status_reader.fetch(transaction_id)
        else:
            async with self._engine.connect() as conn:
                row = (await conn.execute(_STATUS_QUERY, {"transaction_id": transaction_id})).first()
        if row is None:
            return None
        view = StatusView(
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
        )
        cache.put(view, ticket)
        return view

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
            if before is not None:
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
                async with self._engine.begin() as conn:
                    result = await conn.execute(
                        update(tx_table)
                        .where(
                            tx_table.c.transaction_id == transaction_id,
                            tx_table.c.status == int(transition.expected),
                        )
                        .values(**values)
                    )
                    if result.rowcount != 1:
                        return False
                    await _append_history(
                        conn, transaction_id, transition.target, transition.message, transition.history, now
                    )
                break
            except OperationalError as exc:
                # InnoDB picked this transaction as a deadlock victim and rolled it back: run it again.
                if attempt == _DEADLOCK_ATTEMPTS or _mysql_error_code(exc) not in _RETRYABLE_MYSQL_ERRORS:
                    raise
                await asyncio.sleep(0.02 * attempt)
        await self._status_changes.announce(transaction_id)
        _observe_transition(transition.target, transition.change, transition.history)
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
            await _append_history(conn, transaction_id, status, message, metadata, now)
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
            await _append_history(conn, transaction_id, Status.PAYMENT_PENDING, message, metadata, now)
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

    # --- refunds -------------------------------------------------------------------------------

    async def start_refund(
        self, refund: RefundRecord, *, expected: Status, closes: bool, message: str, now: datetime
    ) -> bool:
        left = tx_table.c.amount - tx_table.c.refund_reserved_amount
        values: dict[str, Any] = {
            "refund_reserved_amount": tx_table.c.refund_reserved_amount + refund.amount,
            "updated_at": now,
        }
        if closes:
            values["status"] = int(Status.REFUND_REQUESTED)
        async with self._engine.begin() as conn:
            # The guard is the balance itself: racing refunds can never reserve more than was paid.
            result = await conn.execute(
                update(tx_table)
                .where(
                    tx_table.c.transaction_id == refund.transaction_id,
                    tx_table.c.status == int(expected),
                    (left == refund.amount) if closes else (left > refund.amount),
                )
                .values(**values)
            )
            if result.rowcount != 1:
                return False
            await conn.execute(insert(refunds_table).values(**_refund_values(refund)))
            await _append_history(
                conn,
                refund.transaction_id,
                Status.REFUND_REQUESTED if closes else expected,
                message,
                {
                    "refundId": refund.refund_id,
                    "amount": refund.amount,
                    "actor": refund.actor,
                    "partial": not closes,
                },
                now,
            )
        await self._status_changes.announce(refund.transaction_id)
        REFUNDS.labels(stage="requested").inc()
        return True

    async def get_refund(self, refund_id: str) -> RefundRecord | None:
        query = select(refunds_table).where(refunds_table.c.refund_id == refund_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _to_refund(row)

    async def list_refunds(self, transaction_id: str) -> Sequence[RefundRecord]:
        query = (
            select(refunds_table)
            .where(refunds_table.c.transaction_id == transaction_id)
            .order_by(refunds_table.c.id)
        )
        async with self._engine.connect() as conn:
            return [_to_refund(row) for row in (await conn.execute(query)).all()]

    async def find_open_refunds(self, created_before: datetime, limit: int) -> Sequence[str]:
        open_work = (refunds_table.c.status == RefundStatus.REQUESTED.value) | (
            refunds_table.c.revoke_status == RevokeStatus.PENDING.value
        )
        query = (
            select(refunds_table.c.refund_id)
            .where(open_work, refunds_table.c.created_at <= created_before)
            .order_by(refunds_table.c.id)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [r[0] for r in (await conn.execute(query)).all()]

    async def finish_revoke(
        self, refund: RefundRecord, *, revoked: bool, detail: str, message: str, now: datetime
    ) -> bool:
        values: dict[str, Any] = {
            "revoke_status": (RevokeStatus.DONE if revoked else RevokeStatus.FAILED).value,
            "revoke_detail": _fit(refunds_table.c.revoke_detail, detail),
        }
        if not revoked:
            # A REQUESTED refund stops here: no money moves while the buyer still has the goods.
            values["status"] = case(
                (refunds_table.c.status == RefundStatus.REQUESTED.value, RefundStatus.NEEDS_REVIEW.value),
                else_=refunds_table.c.status,
            )
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(refunds_table)
                .where(
                    refunds_table.c.refund_id == refund.refund_id,
                    refunds_table.c.revoke_status == RevokeStatus.PENDING.value,
                )
                .values(**values)
            )
            if result.rowcount != 1:
                return False
            status = await _locked_status(conn, refund.transaction_id)
            await _append_history(
                conn,
                refund.transaction_id,
                status,
                message,
                {"refundId": refund.refund_id, "revoke": values["revoke_status"]},
                now,
            )
        await self._status_changes.announce(refund.transaction_id)
        return True

    async def complete_refund(
        self, refund: RefundRecord, *, pg_transaction_key: str | None, message: str, now: datetime
    ) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(refunds_table)
                .where(
                    refunds_table.c.refund_id == refund.refund_id,
                    refunds_table.c.status == RefundStatus.REQUESTED.value,
                )
                .values(
                    status=RefundStatus.DONE.value,
                    pg_transaction_key=pg_transaction_key,
                    completed_at=now,
                )
            )
            if result.rowcount != 1:
                return False
            await conn.execute(
                update(tx_table)
                .where(tx_table.c.transaction_id == refund.transaction_id)
                .values(refunded_amount=tx_table.c.refunded_amount + refund.amount, updated_at=now)
            )
            await _close_when_refunded(
                conn,
                refund.transaction_id,
                message,
                {
                    "refundId": refund.refund_id,
                    "pgTransactionKey": pg_transaction_key,
                    "amount": refund.amount,
                },
                now,
            )
        await self._status_changes.announce(refund.transaction_id)
        REFUNDS.labels(stage="refunded").inc()
        return True

    async def refuse_refund(
        self, refund: RefundRecord, *, pg_error_code: str, message: str, now: datetime
    ) -> None:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(refunds_table)
                .where(
                    refunds_table.c.refund_id == refund.refund_id,
                    refunds_table.c.status == RefundStatus.REQUESTED.value,
                )
                .values(
                    status=RefundStatus.REFUSED.value,
                    pg_error_code=_fit(refunds_table.c.pg_error_code, pg_error_code),
                )
            )
            if result.rowcount != 1:
                return
            # Nothing was returned: the amount may be refunded again (by a human, once reviewed).
            await conn.execute(
                update(tx_table)
                .where(tx_table.c.transaction_id == refund.transaction_id)
                .values(refund_reserved_amount=tx_table.c.refund_reserved_amount - refund.amount)
            )
            status = await _locked_status(conn, refund.transaction_id)
            await _append_history(
                conn,
                refund.transaction_id,
                status,
                message,
                {"refundId": refund.refund_id, "pgCode": pg_error_code},
                now,
            )
        await self._status_changes.announce(refund.transaction_id)
        REFUNDS.labels(stage="refused").inc()

    async def record_pg_refund(
        self, refund: RefundRecord, *, expected: Status, message: str, now: datetime
    ) -> bool:
        # The money is back already: it fits what was not returned yet, and the reservation grows to
        # cover it (a refund waiting for review may hold part of it).
        refunded_after = tx_table.c.refunded_amount + refund.amount
        try:
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    update(tx_table)
                    .where(
                        tx_table.c.transaction_id == refund.transaction_id,
                        tx_table.c.status == int(expected),
                        refunded_after <= tx_table.c.amount,
                    )
                    .values(
                        refund_reserved_amount=case(
                            (tx_table.c.refund_reserved_amount < refunded_after, refunded_after),
                            else_=tx_table.c.refund_reserved_amount,
                        ),
                        refunded_amount=tx_table.c.refunded_amount + refund.amount,
                        updated_at=now,
                    )
                )
                if result.rowcount != 1:
                    return False
                await conn.execute(insert(refunds_table).values(**_refund_values(refund)))
                await _close_when_refunded(
                    conn,
                    refund.transaction_id,
                    message,
                    {
                        "refundId": refund.refund_id,
                        "pgTransactionKey": refund.pg_transaction_key,
                        "amount": refund.amount,
                        "actor": refund.actor,
                    },
                    now,
                )
        except IntegrityError:
            return False  # this PG cancel is recorded already: the whole change was rolled back
        await self._status_changes.announce(refund.transaction_id)
        REFUNDS.labels(stage="pg_side").inc()
        return True


async def _locked_status(conn: AsyncConnection, transaction_id: str) -> Status:
    query = select(tx_table.c.status).where(tx_table.c.transaction_id == transaction_id).with_for_update()
    return Status((await conn.execute(query)).scalar_one())


async def _close_when_refunded(
    conn: AsyncConnection,
    transaction_id: str,
    message: str,
    metadata: Mapping[str, Any],
    now: datetime,
) -> None:
    """After money went back: a history row, and → 95 (through 90) once all of it is back."""
    query = (
        select(tx_table.c.status, tx_table.c.amount, tx_table.c.refunded_amount)
        .where(tx_table.c.transaction_id == transaction_id)
        .with_for_update()
    )
    status, amount, refunded = (await conn.execute(query)).one()
    status = Status(status)
    if refunded < amount or status == Status.REFUNDED:
        await _append_history(conn, transaction_id, status, message, metadata, now)
        return
    if status != Status.REFUND_REQUESTED:
        await _append_history(
            conn, transaction_id, Status.REFUND_REQUESTED, "the payment provider cancelled it", metadata, now
        )
    await conn.execute(
        update(tx_table)
        .where(tx_table.c.transaction_id == transaction_id)
        .values(status=int(Status.REFUNDED), updated_at=now)
    )
    await _append_history(conn, transaction_id, Status.REFUNDED, message, metadata, now)


def _refund_values(refund: RefundRecord) -> dict[str, Any]:
    account = refund.refund_account
    return {
        "refund_id": refund.refund_id,
        "transaction_id": refund.transaction_id,
        "amount": refund.amount,
        "reason": _fit(refunds_table.c.reason, refund.reason),
        "actor": refund.actor,
        "status": refund.status.value,
        "revoke_status": refund.revoke_status.value,
        "revoke_detail": _fit(refunds_table.c.revoke_detail, refund.revoke_detail),
        "pg_transaction_key": refund.pg_transaction_key,
        "created_at": refund.created_at,
        "completed_at": refund.completed_at,
        "refund_bank": _fit(refunds_table.c.refund_bank, account.bank if account else None),
        "refund_account_number": account.account_number if account else None,
        "refund_holder_name": _fit(
            refunds_table.c.refund_holder_name, account.holder_name if account else None
        ),
    }


def _to_refund(row: Row[Any]) -> RefundRecord:
    m = row._mapping
    return RefundRecord(
        refund_id=m["refund_id"],
        transaction_id=m["transaction_id"],
        amount=int(m["amount"]),
        reason=m["reason"],
        actor=m["actor"],
        status=RefundStatus(m["status"]),
        created_at=m["created_at"],
        revoke_status=RevokeStatus(m["revoke_status"]),
        revoke_detail=m["revoke_detail"],
        pg_transaction_key=m["pg_transaction_key"],
        pg_error_code=m["pg_error_code"],
        completed_at=m["completed_at"],
        refund_account=(
            RefundAccount(m["refund_bank"], m["refund_account_number"], m["refund_holder_name"])
            if m["refund_bank"]
            else None
        ),
    )


async def _append_history(
    conn: AsyncConnection,
    transaction_id: str,
    status: Status,
    message: str,
    metadata: Mapping[str, Any] | None,
    now: datetime,
) -> None:
    """Every status change (or note) leaves a row, written in the caller's database transaction."""
    await conn.execute(
        insert(history_table).values(
            transaction_id=transaction_id,
            status=int(status),
            message=_fit(history_table.c.message, message),
            metadata=_printable_notes(dict(metadata or {})),
            created_at=now,
        )
    )


def _observe_transition(
    target: Status, change: TransitionChange | None, history_metadata: Mapping[str, Any] | None
) -> None:
    if target == Status.PAYMENT_SUCCESS:
        PAYMENTS_SUCCEEDED.inc()
        seconds = (history_metadata or {}).get("secondsSinceIssue")
        if isinstance(seconds, (int, float)):
            PAYMENT_DURATION.observe(seconds)
    elif target == Status.PAYMENT_FAILED:
        PAYMENTS_FAILED.labels(code=(change.failure_code if change else None) or "UNKNOWN").inc()


def _change_values(change: TransitionChange | None) -> dict[str, Any]:
    if change is None:
        return {}
    values = {name: getattr(change, name) for name in change.__slots__ if getattr(change, name) is not None}
    for name in _PG_TEXT_COLUMNS:
        if name in values:
            values[name] = _fit(tx_table.c[name], values[name])
    return values


# A failure's message and code come from a browser redirect or a PG answer.
_PG_TEXT_COLUMNS = ("failure_message", "failure_pg_code")
# A history note's strings (a PG's message, a callback's amount) are as short as its message.
_NOTE_LENGTH = 255


def _fit(column: Column[Any], value: str | None) -> str | None:
    """Text is stored printable, on one line, and within its column (app.core.printable)."""
    length = getattr(column.type, "length", None)
    assert isinstance(length, int), f"{column} has no length"
    return None if value is None else printable_text(value, length)


def _printable_notes(value: Any) -> Any:
    if isinstance(value, str):
        return printable_text(value, _NOTE_LENGTH)
    if isinstance(value, Mapping):
        return {key: _printable_notes(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_printable_notes(item) for item in value]
    return value


class SqlWebhookEventRepository:
    """Every delivery is recorded once per transmission id, with its raw body and outcome."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record(self, event: WebhookEvent) -> tuple[int, str]:
        try:
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    insert(webhook_table).values(
                        provider=event.provider,
                        transmission_id=event.transmission_id,
                        event_type=_fit(webhook_table.c.event_type, event.event_type),
                        order_id=event.order_id,
                        pg_status=_fit(webhook_table.c.pg_status, event.pg_status),
                        retried_count=event.retried_count,
                        raw_body=event.raw_body,
                        received_at=event.received_at,
                        outcome="RECEIVED",
                    )
                )
                key = result.inserted_primary_key
                assert key is not None
                return int(key[0]), "RECEIVED"
        except IntegrityError:
            query = select(webhook_table.c.id, webhook_table.c.outcome).where(
                webhook_table.c.provider == event.provider,
                webhook_table.c.transmission_id == event.transmission_id,
            )
            async with self._engine.connect() as conn:
                row = (await conn.execute(query)).one()
            WEBHOOK_DELIVERIES.labels(outcome="DUPLICATE").inc()
            return int(row[0]), str(row[1])

    async def get(self, event_id: int) -> WebhookEvent | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(webhook_table).where(webhook_table.c.id == event_id))).first()
        if row is None:
            return None
        m = row._mapping
        return WebhookEvent(
            provider=m["provider"],
            transmission_id=m["transmission_id"],
            event_type=m["event_type"],
            order_id=m["order_id"],
            payment_key=None,
            pg_status=m["pg_status"],
            secret=None,
            retried_count=int(m["retried_count"]),
            raw_body=m["raw_body"],
            received_at=m["received_at"],
        )

    async def finish(self, event_id: int, *, outcome: str, detail: str, now: datetime) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(webhook_table)
                .where(webhook_table.c.id == event_id)
                .values(outcome=outcome, detail=_fit(webhook_table.c.detail, detail), processed_at=now)
            )
        WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()
