"""SqlTransactionRepository against a real, migrated MariaDB database."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.domain import ForbiddenTransition, Status, Transaction, Transition, TransitionChange
from app.core.sql.transactions import SqlTransactionRepository
from app.db import transaction_history

NewTransaction = Callable[..., Transaction]


async def _history_rows(engine: AsyncEngine, transaction_id: str, status: Status | None = None) -> int:
    query = select(func.count()).where(transaction_history.c.transaction_id == transaction_id)
    if status is not None:
        query = query.where(transaction_history.c.status == int(status))
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


# --- add / get / status view / history ----------------------------------------------------------


async def test_add_then_get_round_trips_every_field(
    repository: SqlTransactionRepository, new_transaction: NewTransaction
) -> None:
    created_at = datetime(2026, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)
    transaction = new_transaction(
        created_at=created_at, metadata={"cohort": 7, "note": "한글 ✓", "nested": {"a": [1, 2]}}
    )

    await repository.add(transaction, "issued")
    loaded = await repository.get(transaction.transaction_id)

    assert loaded == transaction
    assert loaded is not None
    assert loaded.created_at.tzinfo is not None
    assert loaded.created_at == created_at  # microseconds survive DATETIME(6)
    assert loaded.expires_at == created_at + timedelta(minutes=30)


async def test_get_unknown_transaction_is_none(repository: SqlTransactionRepository) -> None:
    assert await repository.get("TXN_unknown_" + secrets.token_hex(8)) is None
    assert await repository.get_status_view("TXN_unknown_" + secrets.token_hex(8)) is None
    assert await repository.history("TXN_unknown_" + secrets.token_hex(8)) == []


async def test_status_view_has_the_polling_columns(
    repository: SqlTransactionRepository, new_transaction: NewTransaction
) -> None:
    transaction = new_transaction(amount=9900)
    await repository.add(transaction, "issued")

    view = await repository.get_status_view(transaction.transaction_id)

    assert view is not None
    assert view.transaction_id == transaction.transaction_id
    assert view.user_id == transaction.user_id
    assert view.status == Status.CREATED
    assert view.amount == 9900
    assert view.method == transaction.method
    assert view.updated_at == transaction.updated_at
    assert view.completed_at is None
    assert view.failure_code is None and view.failure_message is None
    assert view.va_account_number is None


async def test_add_writes_the_first_history_row(
    repository: SqlTransactionRepository, new_transaction: NewTransaction
) -> None:
    transaction = new_transaction()
    await repository.add(transaction, "issued")

    history = await repository.history(transaction.transaction_id)

    assert [(h.status, h.message, h.metadata) for h in history] == [(Status.CREATED, "issued", {})]
    assert history[0].created_at == transaction.created_at


# --- guarded transitions ------------------------------------------------------------------------


async def test_transition_writes_status_change_and_history_together(
    repository: SqlTransactionRepository, new_transaction: NewTransaction
) -> None:
    transaction = new_transaction()
    await repository.add(transaction, "issued")
    tid = transaction.transaction_id
    t1 = transaction.created_at + timedelta(seconds=5)
    t2 = t1 + timedelta(seconds=2)

    claimed = await repository.apply(
        tid,
        Transition(
            Status.CREATED,
            Status.PAYMENT_PENDING,
            "confirming",
            change=TransitionChange(payment_key="pk_1"),
            history={"paymentKey": "pk_1"},
        ),
        now=t1,
    )
    done = await repository.apply(
        tid,
        Transition(
            Status.PAYMENT_PENDING,
            Status.PAYMENT_SUCCESS,
            "confirmed",
            change=TransitionChange(pg_method="CARD", completed_at=t2),
        ),
        now=t2,
    )

    assert claimed and done
    loaded = await repository.get(tid)
    assert loaded is not None
    assert loaded.status == Status.PAYMENT_SUCCESS
    assert loaded.payment_key == "pk_1"  # kept: None in a later change leaves a column as is
    assert loaded.pg_method == "CARD"
    assert loaded.completed_at == t2
    assert loaded.updated_at == t2
    history = await repository.history(tid)
    assert [(h.status, h.message) for h in history] == [
        (Status.CREATED, "issued"),
        (Status.PAYMENT_PENDING, "confirming"),
        (Status.PAYMENT_SUCCESS, "confirmed"),
    ]
    assert history[1].metadata == {"paymentKey": "pk_1"}
    assert history[1].created_at == t1


async def test_transition_from_the_wrong_state_changes_nothing(
    repository: SqlTransactionRepository, engine: AsyncEngine, new_transaction: NewTransaction
) -> None:
    transaction = new_transaction()
    await repository.add(transaction, "issued")
    tid = transaction.transaction_id

    moved = await repository.apply(
        tid,
        Transition(
            Status.PAYMENT_PENDING,
            Status.PAYMENT_SUCCESS,
            "should not happen",
            change=TransitionChange(payment_key="pk_nope"),
        ),
        now=datetime.now(UTC),
    )

    assert moved is False
    loaded = await repository.get(tid)
    assert loaded == transaction  # no column touched
    assert await _history_rows(engine, tid) == 1


@pytest.mark.parametrize(
    ("expected", "target"),
    [
        (Status.CREATED, Status.PROVISION_SUCCESS),  # skipping the payment
        (Status.PAYMENT_FAILED, Status.PAYMENT_SUCCESS),  # resurrecting a failure
        (Status.REFUNDED, Status.PROVISION_SUCCESS),  # un-refunding
        (Status.CREATED, Status.CREATED),
    ],
    ids=lambda s: s.name,
)
async def test_mariadb_refuses_a_transition_the_state_machine_lacks(
    repository: SqlTransactionRepository,
    engine: AsyncEngine,
    new_transaction: NewTransaction,
    expected: Status,
    target: Status,
) -> None:
    """Even from the very status it names, a forbidden pair is refused before any write."""
    transaction = new_transaction(status=expected)
    await repository.add(transaction, "seeded")
    forbidden = Transition(expected, target, "not in the table")

    with pytest.raises(ForbiddenTransition):
        await repository.apply(transaction.transaction_id, forbidden, now=datetime.now(UTC))

    assert await repository.get(transaction.transaction_id) == transaction
    assert await _history_rows(engine, transaction.transaction_id) == 1


async def test_transition_of_an_unknown_transaction_is_false(repository: SqlTransactionRepository) -> None:
    moved = await repository.apply(
        "TXN_unknown_" + secrets.token_hex(8),
        Transition(Status.CREATED, Status.PAYMENT_PENDING, "x"),
        now=datetime.now(UTC),
    )
    assert moved is False


async def test_failure_columns_show_in_the_status_view(
    repository: SqlTransactionRepository, new_transaction: NewTransaction
) -> None:
    transaction = new_transaction()
    await repository.add(transaction, "issued")

    assert await repository.apply(
        transaction.transaction_id,
        Transition(
            Status.CREATED,
            Status.PAYMENT_FAILED,
            "declined",
            change=TransitionChange(
                failure_code="PAY_004", failure_pg_code="REJECT_CARD_PAYMENT", failure_message="잔액 부족"
            ),
            history={"code": "PAY_004", "pgCode": "REJECT_CARD_PAYMENT"},
        ),
        now=datetime.now(UTC),
    )

    view = await repository.get_status_view(transaction.transaction_id)
    assert view is not None
    assert (view.status, view.failure_code, view.failure_message) == (
        Status.PAYMENT_FAILED,
        "PAY_004",
        "잔액 부족",
    )
    loaded = await repository.get(transaction.transaction_id)
    assert loaded is not None and loaded.failure is not None
    assert loaded.failure.pg_code == "REJECT_CARD_PAYMENT"


async def test_twenty_concurrent_claims_of_one_row_have_exactly_one_winner(
    repository: SqlTransactionRepository, engine: AsyncEngine, new_transaction: NewTransaction
) -> None:
    transaction = new_transaction()
    await repository.add(transaction, "issued")
    tid = transaction.transaction_id
    now = datetime.now(UTC)

    results = await asyncio.gather(
        *(
            repository.apply(
                tid,
                Transition(
                    Status.CREATED,
                    Status.PAYMENT_PENDING,
                    f"claim {i}",
                    change=TransitionChange(payment_key=f"pk_{i}"),
                    history={"claimer": i},
                ),
                now=now,
            )
            for i in range(20)
        )
    )

    assert results.count(True) == 1
    assert results.count(False) == 19
    assert await _history_rows(engine, tid, Status.PAYMENT_PENDING) == 1
    winner = results.index(True)
    loaded = await repository.get(tid)
    assert loaded is not None
    assert loaded.status == Status.PAYMENT_PENDING
    assert loaded.payment_key == f"pk_{winner}"  # the winner's change, nobody else's
    history = await repository.history(tid)
    assert history[-1].metadata == {"claimer": winner}


async def test_racing_success_and_failure_never_both_win(
    repository: SqlTransactionRepository, engine: AsyncEngine, new_transaction: NewTransaction
) -> None:
    """A callback (10→30) and a fail redirect or expiry sweeper (10→41) racing on one row."""
    transaction = new_transaction()
    await repository.add(transaction, "issued")
    tid = transaction.transaction_id
    now = datetime.now(UTC)

    calls = []
    for i in range(20):
        target = Status.PAYMENT_PENDING if i % 2 == 0 else Status.PAYMENT_FAILED
        calls.append(repository.apply(tid, Transition(Status.CREATED, target, f"race {i}"), now=now))
    results = await asyncio.gather(*calls)

    assert results.count(True) == 1
    assert await _history_rows(engine, tid) == 2  # "issued" and the one winner
    loaded = await repository.get(tid)
    assert loaded is not None
    expected_status = Status.PAYMENT_PENDING if results.index(True) % 2 == 0 else Status.PAYMENT_FAILED
    assert loaded.status == expected_status


# --- record_event --------------------------------------------------------------------------------


async def test_record_event_appends_history_and_writes_change_in_the_right_state(
    repository: SqlTransactionRepository, new_transaction: NewTransaction
) -> None:
    transaction = new_transaction()
    await repository.add(transaction, "issued")
    tid = transaction.transaction_id
    now = datetime.now(UTC)
    assert await repository.apply(
        tid, Transition(Status.CREATED, Status.PAYMENT_PENDING, "confirming"), now=now
    )
    due = datetime(2026, 12, 1, 14, 59, 59, tzinfo=UTC)

    recorded = await repository.record_event(
        tid,
        status=Status.PAYMENT_PENDING,
        message="virtual account issued",
        metadata={"bankCode": "88"},
        now=now,
        change=TransitionChange(
            va_bank_code="88", va_account_number="X1234567890123", va_due_date=due, expires_at=due
        ),
    )

    assert recorded is True
    loaded = await repository.get(tid)
    assert loaded is not None
    assert loaded.status == Status.PAYMENT_PENDING  # an event never changes the status
    assert (loaded.va_bank_code, loaded.va_account_number, loaded.va_due_date) == (
        "88",
        "X1234567890123",
        due,
    )
    assert loaded.expires_at == due
    history = await repository.history(tid)
    assert (history[-1].status, history[-1].message, history[-1].metadata) == (
        Status.PAYMENT_PENDING,
        "virtual account issued",
        {"bankCode": "88"},
    )


async def test_record_event_with_a_change_is_refused_in_another_state(
    repository: SqlTransactionRepository, engine: AsyncEngine, new_transaction: NewTransaction
) -> None:
    transaction = new_transaction()
    await repository.add(transaction, "issued")
    tid = transaction.transaction_id

    recorded = await repository.record_event(
        tid,
        status=Status.PAYMENT_PENDING,
        message="late virtual account",
        metadata={},
        now=datetime.now(UTC),
        change=TransitionChange(va_bank_code="88", va_account_number="X1"),
    )

    assert recorded is False
    loaded = await repository.get(tid)
    assert loaded == transaction
    assert await _history_rows(engine, tid) == 1


async def test_record_event_without_a_change_is_also_refused_in_another_state(
    repository: SqlTransactionRepository, engine: AsyncEngine, new_transaction: NewTransaction
) -> None:
    """The port promises: "Guarded like a transition: returns False, changing nothing, when the
    transaction is no longer in `status`" — with or without column changes. Otherwise a late
    "still pending (30)" note lands after the row already moved to 40 or 41."""
    transaction = new_transaction()
    await repository.add(transaction, "issued")
    tid = transaction.transaction_id
    now = datetime.now(UTC)
    assert await repository.apply(
        tid, Transition(Status.CREATED, Status.PAYMENT_PENDING, "confirming"), now=now
    )
    assert await repository.apply(
        tid, Transition(Status.PAYMENT_PENDING, Status.PAYMENT_SUCCESS, "confirmed"), now=now
    )

    recorded = await repository.record_event(
        tid,
        status=Status.PAYMENT_PENDING,
        message="payment provider reports IN_PROGRESS; still pending",
        metadata={"pgStatus": "IN_PROGRESS"},
        now=now,
    )

    assert recorded is False
    assert await _history_rows(engine, tid, Status.PAYMENT_PENDING) == 1  # only the claim's row
    history = await repository.history(tid)
    assert history[-1].status == Status.PAYMENT_SUCCESS


async def test_record_event_repeating_the_same_values_still_succeeds(
    repository: SqlTransactionRepository, new_transaction: NewTransaction
) -> None:
    """A duplicate webhook writes the same columns again: the row matches, so it is no "lost race"
    (MySQL reports 0 *changed* rows for such an UPDATE unless the driver counts found rows)."""
    transaction = new_transaction()
    await repository.add(transaction, "issued")
    tid = transaction.transaction_id
    now = datetime.now(UTC)
    assert await repository.apply(
        tid, Transition(Status.CREATED, Status.PAYMENT_PENDING, "confirming"), now=now
    )
    change = TransitionChange(va_bank_code="88", va_account_number="X999")

    first = await repository.record_event(
        tid, status=Status.PAYMENT_PENDING, message="va", metadata={}, now=now, change=change
    )
    second = await repository.record_event(
        tid, status=Status.PAYMENT_PENDING, message="va again", metadata={}, now=now, change=change
    )

    assert (first, second) == (True, True)
    assert [h.message for h in await repository.history(tid)][-2:] == ["va", "va again"]


# --- list with cursor and status filter ----------------------------------------------------------


async def test_list_for_user_pages_newest_first_with_a_cursor(
    repository: SqlTransactionRepository, new_transaction: NewTransaction
) -> None:
    user = f"itest-list-{secrets.token_hex(4)}"
    mine = [new_transaction(user_id=user) for _ in range(5)]
    for t in mine:
        await repository.add(t, "issued")
    await repository.add(new_transaction(), "issued")  # somebody else's

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await repository.list_for_user(user, statuses=None, cursor=cursor, limit=2)
        pages += 1
        seen.extend(t.transaction_id for t in page.items)
        assert all(t.user_id == user for t in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        assert pages < 10

    assert pages == 3
    assert seen == [t.transaction_id for t in reversed(mine)]  # newest first, no gaps, no repeats


async def test_list_for_user_with_an_exact_page_has_no_next_cursor(
    repository: SqlTransactionRepository, new_transaction: NewTransaction
) -> None:
    user = f"itest-list-{secrets.token_hex(4)}"
    for _ in range(2):
        await repository.add(new_transaction(user_id=user), "issued")

    page = await repository.list_for_user(user, statuses=None, cursor=None, limit=2)

    assert len(page.items) == 2
    assert page.next_cursor is None


async def test_list_for_user_filters_by_status(
    repository: SqlTransactionRepository, new_transaction: NewTransaction
) -> None:
    user = f"itest-list-{secrets.token_hex(4)}"
    created, failed, pending = (new_transaction(user_id=user) for _ in range(3))
    for t in (created, failed, pending):
        await repository.add(t, "issued")
    now = datetime.now(UTC)
    assert await repository.apply(
        failed.transaction_id, Transition(Status.CREATED, Status.PAYMENT_FAILED, "x"), now=now
    )
    assert await repository.apply(
        pending.transaction_id, Transition(Status.CREATED, Status.PAYMENT_PENDING, "x"), now=now
    )

    only_failed = await repository.list_for_user(
        user, statuses=[Status.PAYMENT_FAILED], cursor=None, limit=10
    )
    two = await repository.list_for_user(
        user, statuses=[Status.CREATED, Status.PAYMENT_PENDING], cursor=None, limit=10
    )
    none = await repository.list_for_user(user, statuses=[Status.REFUNDED], cursor=None, limit=10)

    assert [t.transaction_id for t in only_failed.items] == [failed.transaction_id]
    assert [t.transaction_id for t in two.items] == [pending.transaction_id, created.transaction_id]
    assert none.items == [] and none.next_cursor is None


async def test_list_for_user_pages_a_status_filter_with_a_cursor(
    repository: SqlTransactionRepository, new_transaction: NewTransaction
) -> None:
    user = f"itest-list-{secrets.token_hex(4)}"
    transactions = [new_transaction(user_id=user) for _ in range(6)]
    for t in transactions:
        await repository.add(t, "issued")
    now = datetime.now(UTC)
    failed = transactions[::2]
    for t in failed:
        assert await repository.apply(
            t.transaction_id, Transition(Status.CREATED, Status.PAYMENT_FAILED, "x"), now=now
        )

    first = await repository.list_for_user(user, statuses=[Status.PAYMENT_FAILED], cursor=None, limit=2)
    assert first.next_cursor is not None
    second = await repository.list_for_user(
        user, statuses=[Status.PAYMENT_FAILED], cursor=first.next_cursor, limit=2
    )

    assert [t.transaction_id for t in [*first.items, *second.items]] == [
        t.transaction_id for t in reversed(failed)
    ]
    assert second.next_cursor is None


# --- expiry query ---------------------------------------------------------------------------------


async def test_find_expired_created_returns_only_created_past_expiry(
    repository: SqlTransactionRepository, new_transaction: NewTransaction
) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=3650)
    expired = new_transaction(created_at=long_ago, expires_in=timedelta(minutes=30))
    expired_but_paid = new_transaction(created_at=long_ago, expires_in=timedelta(minutes=30))
    fresh = new_transaction()
    for t in (expired, expired_but_paid, fresh):
        await repository.add(t, "issued")
    assert await repository.apply(
        expired_but_paid.transaction_id,
        Transition(Status.CREATED, Status.PAYMENT_PENDING, "x"),
        now=datetime.now(UTC),
    )

    found = await repository.find_expired_created(long_ago + timedelta(minutes=31), 1000)

    assert expired.transaction_id in found
    assert expired_but_paid.transaction_id not in found
    assert fresh.transaction_id not in found
