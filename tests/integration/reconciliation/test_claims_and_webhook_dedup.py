"""claim_due_reconciliations and webhook_events on real MariaDB: concurrency, leases, dedup."""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.domain import Status, Transition
from app.core.ports import WebhookEvent
from app.core.sql.transactions import SqlTransactionRepository
from app.core.sql.webhook_events import SqlWebhookEventRepository
from app.db import transactions as tx_table
from app.db import webhook_events as webhook_table

from .conftest import pending_transaction, utc

# A fixed "now" far from the wall clock: only rows these tests schedule can ever be due.
NOW = utc(2031, 5, 17, 8, 0, 0)


async def _pending_rows(
    repository: SqlTransactionRepository, count: int, *, due_at: datetime = NOW - timedelta(minutes=5)
) -> list[str]:
    ids = []
    for index in range(count):
        transaction = pending_transaction(NOW - timedelta(minutes=30))
        await repository.add(transaction, "confirming")
        # Staggered due times, all in the past of NOW.
        await repository.schedule_reconciliation(
            transaction.transaction_id, due_at + timedelta(milliseconds=index)
        )
        ids.append(transaction.transaction_id)
    return ids


async def _reconcile_columns(engine: AsyncEngine, ids: list[str]) -> dict[str, tuple[datetime | None, int]]:
    query = select(
        tx_table.c.transaction_id, tx_table.c.next_reconcile_at, tx_table.c.reconcile_attempts
    ).where(tx_table.c.transaction_id.in_(ids))
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {r[0]: (r[1], int(r[2])) for r in rows}


# --- concurrent claims ----------------------------------------------------------------------------


async def test_two_concurrent_claims_take_disjoint_halves_of_twenty_due_rows(
    engine: AsyncEngine, repository: SqlTransactionRepository
) -> None:
    ids = await _pending_rows(repository, 20)
    # Separate repositories on one pooled engine: each claim runs on its own connection.
    first, second = SqlTransactionRepository(engine), SqlTransactionRepository(engine)

    claims = await asyncio.wait_for(
        asyncio.gather(
            first.claim_due_reconciliations(NOW, limit=10, lease_seconds=60),
            second.claim_due_reconciliations(NOW, limit=10, lease_seconds=60),
        ),
        timeout=20,
    )

    a = [tid for tid, _ in claims[0]]
    b = [tid for tid, _ in claims[1]]
    assert not set(a) & set(b), "a row was claimed twice"
    # How many rows the loser of the race skips depends on InnoDB's plan (it may lock every
    # scanned row): what matters is that nothing is shared and the next round takes the rest.
    assert len(a) + len(b) >= 10, (len(a), len(b))
    rest = [tid for tid, _ in await first.claim_due_reconciliations(NOW, limit=20, lease_seconds=60)]
    assert not set(rest) & (set(a) | set(b)), "a leased row was claimed again"
    assert set(a) | set(b) | set(rest) == set(ids)
    assert all(attempt == 1 for _, attempt in [*claims[0], *claims[1]])
    columns = await _reconcile_columns(engine, ids)
    assert {attempts for _, attempts in columns.values()} == {1}
    assert {at for at, _ in columns.values()} == {NOW + timedelta(seconds=60)}  # all leased


async def test_five_concurrent_claimers_never_share_a_row(
    engine: AsyncEngine, repository: SqlTransactionRepository
) -> None:
    ids = await _pending_rows(repository, 20)
    claimers = [SqlTransactionRepository(engine) for _ in range(5)]

    claims = await asyncio.wait_for(
        asyncio.gather(*(c.claim_due_reconciliations(NOW, limit=6, lease_seconds=60) for c in claimers)),
        timeout=20,
    )

    claimed = [tid for claim in claims for tid, _ in claim]
    assert len(claimed) == len(set(claimed)), "a row was claimed twice"
    assert set(claimed) == set(ids)  # 5 × 6 ≥ 20: everything due was taken, by exactly one claimer


async def test_claims_take_the_oldest_due_first_and_respect_the_limit(
    repository: SqlTransactionRepository,
) -> None:
    ids = await _pending_rows(repository, 5)

    claimed = await repository.claim_due_reconciliations(NOW, limit=3, lease_seconds=60)

    assert [tid for tid, _ in claimed] == ids[:3]
    rest = await repository.claim_due_reconciliations(NOW, limit=3, lease_seconds=60)
    assert [tid for tid, _ in rest] == ids[3:]


async def test_only_pending_transactions_that_are_due_are_claimed(
    engine: AsyncEngine, repository: SqlTransactionRepository
) -> None:
    due, later = (
        await _pending_rows(repository, 1),
        await _pending_rows(repository, 1, due_at=NOW + timedelta(seconds=1)),
    )
    settled = await _pending_rows(repository, 1)
    assert await repository.apply(
        settled[0], Transition(Status.PAYMENT_PENDING, Status.PAYMENT_SUCCESS, "confirmed"), now=NOW
    )

    claimed = await repository.claim_due_reconciliations(NOW, limit=10, lease_seconds=60)

    assert [tid for tid, _ in claimed] == due
    assert later[0] not in [tid for tid, _ in claimed]


# --- leases ---------------------------------------------------------------------------------------


async def test_a_leased_row_is_not_claimed_again_until_its_lease_ends(
    engine: AsyncEngine, repository: SqlTransactionRepository
) -> None:
    [tid] = await _pending_rows(repository, 1)

    first = await repository.claim_due_reconciliations(NOW, limit=10, lease_seconds=30)
    assert first == [(tid, 1)]

    for later in (NOW, NOW + timedelta(seconds=1), NOW + timedelta(seconds=29, microseconds=999_999)):
        assert await repository.claim_due_reconciliations(later, limit=10, lease_seconds=30) == [], later

    # The worker that held the lease died: once it ends, the next round takes the row again.
    again = await repository.claim_due_reconciliations(
        NOW + timedelta(seconds=30), limit=10, lease_seconds=30
    )
    assert again == [(tid, 2)]
    columns = await _reconcile_columns(engine, [tid])
    assert columns[tid] == (NOW + timedelta(seconds=60), 2)


async def test_scheduling_replaces_the_lease(
    engine: AsyncEngine, repository: SqlTransactionRepository
) -> None:
    [tid] = await _pending_rows(repository, 1)
    await repository.claim_due_reconciliations(NOW, limit=10, lease_seconds=600)

    # The reconciler finished early and asked to look again in 2 s.
    await repository.schedule_reconciliation(tid, NOW + timedelta(seconds=2))

    assert (
        await repository.claim_due_reconciliations(NOW + timedelta(seconds=1), limit=5, lease_seconds=600)
        == []
    )
    assert await repository.claim_due_reconciliations(
        NOW + timedelta(seconds=2), limit=5, lease_seconds=600
    ) == [(tid, 2)]


async def test_a_row_locked_by_another_transaction_is_skipped_not_waited_for(
    engine: AsyncEngine, repository: SqlTransactionRepository
) -> None:
    locked, free = await _pending_rows(repository, 2)
    async with engine.connect() as holder:
        transaction = await holder.begin()
        # Another worker is in the middle of its claim of `locked`.
        await holder.execute(
            text("SELECT id FROM transactions WHERE transaction_id = :tid FOR UPDATE"), {"tid": locked}
        )
        try:
            claimed = await asyncio.wait_for(
                repository.claim_due_reconciliations(NOW, limit=10, lease_seconds=60), timeout=5
            )
        finally:
            await transaction.rollback()

    assert claimed == [(free, 1)]  # SKIP LOCKED: no wait (a plain FOR UPDATE would block 50 s)
    again = await repository.claim_due_reconciliations(NOW, limit=10, lease_seconds=60)
    assert again == [(locked, 1)]


async def test_the_server_is_a_version_that_supports_skip_locked(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        version = str((await conn.execute(text("SELECT VERSION()"))).scalar_one())
    numbers = tuple(int(part) for part in version.split("-")[0].split(".")[:2])
    if "mariadb" in version.lower():
        assert numbers >= (10, 6), version
    else:
        assert numbers >= (8, 0), version


# --- webhook_events dedup -------------------------------------------------------------------------


def _event(transmission_id: str, *, order_id: str = "TXN_webhook_itest", retried: int = 0) -> WebhookEvent:
    return WebhookEvent(
        provider="TOSS",
        transmission_id=transmission_id,
        event_type="PAYMENT_STATUS_CHANGED",
        order_id=order_id,
        payment_key="pk_itest",
        pg_status="DONE",
        secret=None,
        retried_count=retried,
        raw_body=json.dumps(
            {"eventType": "PAYMENT_STATUS_CHANGED", "data": {"orderId": order_id, "status": "DONE"}}
        ),
        received_at=NOW,
    )


async def _event_rows(engine: AsyncEngine, transmission_id: str) -> list[tuple[int, str, int]]:
    query = select(webhook_table.c.id, webhook_table.c.outcome, webhook_table.c.retried_count).where(
        webhook_table.c.transmission_id == transmission_id
    )
    async with engine.connect() as conn:
        return [(int(r[0]), str(r[1]), int(r[2])) for r in (await conn.execute(query)).all()]


async def test_ten_concurrent_records_of_one_transmission_store_one_row(
    engine: AsyncEngine, webhook_events: SqlWebhookEventRepository
) -> None:
    transmission_id = "whtrans_a" + secrets.token_hex(13)
    recorders = [SqlWebhookEventRepository(engine) for _ in range(10)]

    results = await asyncio.wait_for(
        asyncio.gather(*(r.record(_event(transmission_id, retried=i)) for i, r in enumerate(recorders))),
        timeout=20,
    )

    rows = await _event_rows(engine, transmission_id)
    assert len(rows) == 1, rows
    [(row_id, outcome, _)] = rows
    assert outcome == "RECEIVED"
    assert {event_id for event_id, _ in results} == {row_id}  # every caller is pointed at that row
    assert {answer for _, answer in results} == {"RECEIVED"}  # not processed yet: its current outcome


async def test_a_delivery_recorded_after_processing_reports_the_outcome(
    engine: AsyncEngine, webhook_events: SqlWebhookEventRepository
) -> None:
    transmission_id = "whtrans_a" + secrets.token_hex(13)
    event_id, outcome = await webhook_events.record(_event(transmission_id))
    assert outcome == "RECEIVED"
    await webhook_events.finish(event_id, outcome="APPLIED", detail="PG DONE: 30 → 40", now=NOW)

    results = await asyncio.gather(
        *(SqlWebhookEventRepository(engine).record(_event(transmission_id, retried=n)) for n in range(1, 6))
    )

    assert set(results) == {(event_id, "APPLIED")}  # the receiver answers DUPLICATE for these
    assert await _event_rows(engine, transmission_id) == [(event_id, "APPLIED", 0)]  # first delivery kept


async def test_different_transmissions_of_one_order_are_separate_rows(
    engine: AsyncEngine, webhook_events: SqlWebhookEventRepository
) -> None:
    order_id = "TXN_itest_" + secrets.token_hex(6)
    ids = ["whtrans_a" + secrets.token_hex(13) for _ in range(3)]

    results = await asyncio.gather(*(webhook_events.record(_event(t, order_id=order_id)) for t in ids))

    assert len({event_id for event_id, _ in results}) == 3
    async with engine.connect() as conn:
        count = (
            await conn.execute(select(func.count()).where(webhook_table.c.order_id == order_id))
        ).scalar_one()
    assert count == 3
    stored = await webhook_events.get(results[0][0])
    assert stored is not None
    assert (stored.transmission_id, stored.order_id, stored.pg_status) == (ids[0], order_id, "DONE")
    assert stored.received_at == NOW
