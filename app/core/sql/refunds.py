"""SQLAlchemy adapter of RefundRepository: a refund's row and its transaction's refund amounts
(and, once all the money is back, 90 → 95) always change in one database transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.core.domain import ForbiddenTransition, RefundStatus, RevokeStatus, Status, Transition
from app.core.ports import RefundRecord, StatusChanges
from app.core.sql.history import append_history
from app.core.sql.stored_text import fit
from app.core.status_changes import UncachedStatusChanges
from app.db import refunds as refunds_table
from app.db import transactions as tx_table
from app.gateway.models import RefundAccount


class SqlRefundRepository:
    """Every write that changes a transaction's amounts or status is announced after its commit
    (`status_changes`), like the transaction writes: a poll shows refundedAmount and the status."""

    def __init__(self, engine: AsyncEngine, *, status_changes: StatusChanges | None = None) -> None:
        self._engine = engine
        # Pass the bus whenever any process caches status views; without one nothing is announced.
        self._status_changes = status_changes if status_changes is not None else UncachedStatusChanges()

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
            await append_history(
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
            "revoke_detail": fit(refunds_table.c.revoke_detail, detail),
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
            await append_history(
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
        return True

    async def refuse_refund(
        self, refund: RefundRecord, *, pg_error_code: str, message: str, now: datetime
    ) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(refunds_table)
                .where(
                    refunds_table.c.refund_id == refund.refund_id,
                    refunds_table.c.status == RefundStatus.REQUESTED.value,
                )
                .values(
                    status=RefundStatus.REFUSED.value,
                    pg_error_code=fit(refunds_table.c.pg_error_code, pg_error_code),
                )
            )
            if result.rowcount != 1:
                return False
            # Nothing was returned: the amount may be refunded again (by a human, once reviewed).
            await conn.execute(
                update(tx_table)
                .where(tx_table.c.transaction_id == refund.transaction_id)
                .values(refund_reserved_amount=tx_table.c.refund_reserved_amount - refund.amount)
            )
            status = await _locked_status(conn, refund.transaction_id)
            await append_history(
                conn,
                refund.transaction_id,
                status,
                message,
                {"refundId": refund.refund_id, "pgCode": pg_error_code},
                now,
            )
        await self._status_changes.announce(refund.transaction_id)
        return True

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
        await append_history(conn, transaction_id, status, message, metadata, now)
        return
    if status != Status.REFUND_REQUESTED:
        closing = Transition(status, Status.REFUND_REQUESTED, "the payment provider cancelled it")
        if not closing.allowed:  # like every transition: the table decides, and nothing is written
            raise ForbiddenTransition(closing)
        await append_history(conn, transaction_id, closing.target, closing.message, metadata, now)
    await conn.execute(
        update(tx_table)
        .where(tx_table.c.transaction_id == transaction_id)
        .values(status=int(Status.REFUNDED), updated_at=now)
    )
    await append_history(conn, transaction_id, Status.REFUNDED, message, metadata, now)


def _refund_values(refund: RefundRecord) -> dict[str, Any]:
    account = refund.refund_account
    return {
        "refund_id": refund.refund_id,
        "transaction_id": refund.transaction_id,
        "amount": refund.amount,
        "reason": fit(refunds_table.c.reason, refund.reason),
        "actor": refund.actor,
        "status": refund.status.value,
        "revoke_status": refund.revoke_status.value,
        "revoke_detail": fit(refunds_table.c.revoke_detail, refund.revoke_detail),
        "pg_transaction_key": refund.pg_transaction_key,
        "created_at": refund.created_at,
        "completed_at": refund.completed_at,
        "refund_bank": fit(refunds_table.c.refund_bank, account.bank if account else None),
        "refund_account_number": account.account_number if account else None,
        "refund_holder_name": fit(
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
