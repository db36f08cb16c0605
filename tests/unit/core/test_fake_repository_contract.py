"""The in-memory fake and the SQL adapters answer the same way (SQLite here; MariaDB in integration/).

Service tests are only worth what their fake is worth: every assertion below runs against both
InMemoryTransactionRepository and SqlTransactionRepository (with SqlRefundRepository for the
refund writes, which the fake keeps in the same object).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.domain import (
    ForbiddenTransition,
    Method,
    ProductType,
    RefundStatus,
    RevokeStatus,
    Status,
    Transaction,
    Transition,
    TransitionChange,
)
from app.core.ports import InvalidCursor, RefundRecord
from app.core.sql.refunds import SqlRefundRepository
from app.core.sql.transactions import SqlTransactionRepository, encode_cursor
from app.db import create_engine
from app.migrate import upgrade_database
from app.settings import load_settings
from tests.support.fakes import InMemoryTransactionRepository

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
Repo = InMemoryTransactionRepository | SqlTransactionRepository
Refunds = InMemoryTransactionRepository | SqlRefundRepository


@pytest.fixture(scope="module")
async def engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('core_repo') / 'r.sqlite3'}"
    await asyncio.to_thread(upgrade_database, url)
    engine = create_engine(load_settings({}, database_url=url, environment="test"))
    yield engine
    await engine.dispose()


@pytest.fixture(params=["memory", "sqlite"])
def repo(request: pytest.FixtureRequest, engine: AsyncEngine) -> Repo:
    if request.param == "memory":
        return InMemoryTransactionRepository()
    return SqlTransactionRepository(engine)  # one shared file: each test uses its own users and ids


@pytest.fixture
def refunds(repo: Repo, engine: AsyncEngine) -> Refunds:
    """The refund writes on the same rows as `repo`: the fake itself, or the SQL refund adapter."""
    return repo if isinstance(repo, InMemoryTransactionRepository) else SqlRefundRepository(engine)


def new_transaction(user_id: str, *, created_at: datetime = T0, **fields: Any) -> Transaction:
    values: dict[str, Any] = {
        "transaction_id": f"TXN_c_{secrets.token_hex(10)}",
        "user_id": user_id,
        "product_type": ProductType.STUDY,
        "product_id": "study_123",
        "order_name": "Study",
        "amount": 50000,
        "method": Method.CARD,
        "status": Status.CREATED,
        "created_at": created_at,
        "updated_at": created_at,
        "expires_at": created_at + timedelta(minutes=30),
        "metadata": {"cohort": 7},
        **fields,
    }
    return Transaction(provider="TOSS", **values)


@pytest.fixture
def user() -> str:
    return f"u_{secrets.token_hex(6)}"


async def test_add_get_and_status_view(repo: Repo, user: str) -> None:
    t = new_transaction(user)
    await repo.add(t, "issued")
    assert await repo.get(t.transaction_id) == t
    view = await repo.get_status_view(t.transaction_id)
    assert view is not None
    assert (view.user_id, view.status, view.amount, view.updated_at) == (user, Status.CREATED, 50000, T0)
    assert [(h.status, h.message) for h in await repo.history(t.transaction_id)] == [
        (Status.CREATED, "issued")
    ]
    assert await repo.get("TXN_c_missing") is None
    assert await repo.get_status_view("TXN_c_missing") is None


async def test_guarded_transition(repo: Repo, user: str) -> None:
    t = new_transaction(user)
    await repo.add(t, "issued")
    later = T0 + timedelta(seconds=5)
    change = TransitionChange(payment_key="pk_1")
    assert await repo.apply(
        t.transaction_id,
        Transition(
            Status.CREATED, Status.PAYMENT_PENDING, "claimed", change=change, history={"paymentKey": "pk_1"}
        ),
        now=later,
    )
    # the loser of the race: not in `expected` any more → False, and nothing changes
    before = await repo.get(t.transaction_id)
    assert not await repo.apply(
        t.transaction_id,
        Transition(
            Status.CREATED, Status.PAYMENT_FAILED, "too late", change=TransitionChange(failure_code="PAY_003")
        ),
        now=later + timedelta(seconds=1),
    )
    after = await repo.get(t.transaction_id)
    assert after == before
    assert after is not None
    assert (after.status, after.payment_key, after.updated_at, after.failure_code) == (
        Status.PAYMENT_PENDING,
        "pk_1",
        later,
        None,
    )
    history = await repo.history(t.transaction_id)
    assert [(h.status, h.message, h.metadata) for h in history] == [
        (Status.CREATED, "issued", {}),
        (Status.PAYMENT_PENDING, "claimed", {"paymentKey": "pk_1"}),
    ]
    assert not await repo.apply(
        "TXN_c_missing", Transition(Status.CREATED, Status.PAYMENT_PENDING, "x"), now=later
    )


async def test_concurrent_claims_have_one_winner(repo: Repo, user: str) -> None:
    t = new_transaction(user)
    await repo.add(t, "issued")
    results = await asyncio.gather(
        *(
            repo.apply(t.transaction_id, Transition(Status.CREATED, Status.PAYMENT_PENDING, "c"), now=T0)
            for _ in range(5)
        )
    )
    assert sorted(results) == [False] * 4 + [True]
    assert [h.status for h in await repo.history(t.transaction_id)] == [
        Status.CREATED,
        Status.PAYMENT_PENDING,
    ]


async def test_record_event(repo: Repo, user: str) -> None:
    t = new_transaction(user)
    await repo.add(t, "issued")
    due = T0 + timedelta(days=2)
    # with a change: guarded by the status
    assert not await repo.record_event(
        t.transaction_id,
        status=Status.PAYMENT_PENDING,
        message="va",
        metadata={},
        now=T0,
        change=TransitionChange(va_account_number="123"),
    )
    assert (await repo.get(t.transaction_id)) == t
    assert await repo.record_event(
        t.transaction_id,
        status=Status.CREATED,
        message="va issued",
        metadata={"bankCode": "88"},
        now=T0,
        change=TransitionChange(va_account_number="123", expires_at=due),
    )
    stored = await repo.get(t.transaction_id)
    assert stored is not None
    assert (stored.status, stored.va_account_number, stored.expires_at, stored.updated_at) == (
        Status.CREATED,
        "123",
        due,
        T0,
    )
    # without a change: a note in the history, guarded all the same
    assert not await repo.record_event(
        t.transaction_id, status=Status.PAYMENT_PENDING, message="stale note", metadata={}, now=T0
    )
    assert await repo.record_event(
        t.transaction_id, status=Status.CREATED, message="note", metadata={"k": 1}, now=T0
    )
    assert not await repo.record_event(
        "TXN_c_missing", status=Status.CREATED, message="x", metadata={}, now=T0
    )
    assert [(h.status, h.message, h.metadata) for h in await repo.history(t.transaction_id)] == [
        (Status.CREATED, "issued", {}),
        (Status.CREATED, "va issued", {"bankCode": "88"}),
        (Status.CREATED, "note", {"k": 1}),
    ]


async def test_list_for_user(repo: Repo, user: str) -> None:
    ids = []
    for i in range(5):
        t = new_transaction(user, created_at=T0 + timedelta(seconds=i))
        await repo.add(t, "issued")
        ids.append(t.transaction_id)
    await repo.add(new_transaction(user + "_other"), "issued")
    await repo.apply(ids[1], Transition(Status.CREATED, Status.PAYMENT_FAILED, "x"), now=T0)

    pages, cursor = [], None
    for _ in range(4):
        page = await repo.list_for_user(user, statuses=None, cursor=cursor, limit=2)
        pages.append([t.transaction_id for t in page.items])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[:1]]

    failed = await repo.list_for_user(user, statuses=[Status.PAYMENT_FAILED], cursor=None, limit=10)
    assert [t.transaction_id for t in failed.items] == [ids[1]]
    exact = await repo.list_for_user(user, statuses=None, cursor=None, limit=5)
    assert exact.next_cursor is None and len(exact.items) == 5
    for garbage in ("not-a-cursor", "", encode_cursor(1)[:-1] + "!"):  # never the first page again
        with pytest.raises(InvalidCursor):
            await repo.list_for_user(user, statuses=None, cursor=garbage, limit=10)
    past_the_end = await repo.list_for_user(user, statuses=None, cursor=encode_cursor(1), limit=10)
    assert past_the_end.items == [] and past_the_end.next_cursor is None


async def test_find_expired_created_and_stale(repo: Repo, user: str) -> None:
    base = T0 - timedelta(days=3650)  # far in the past: older than any other test's rows
    late = new_transaction(user, created_at=base + timedelta(minutes=5))
    early = new_transaction(user, created_at=base)
    claimed = new_transaction(user, created_at=base)
    fresh = new_transaction(user, created_at=base + timedelta(hours=1))
    for t in (late, early, claimed, fresh):
        await repo.add(t, "issued")
    await repo.apply(
        claimed.transaction_id, Transition(Status.CREATED, Status.PAYMENT_PENDING, "c"), now=base
    )
    cutoff = base + timedelta(minutes=35)
    assert await repo.find_expired_created(cutoff, 10) == [early.transaction_id, late.transaction_id]
    assert await repo.find_expired_created(cutoff, 1) == [early.transaction_id]
    assert await repo.find_expired_created(base + timedelta(minutes=30), 10) == [early.transaction_id]
    assert await repo.find_stale(Status.PAYMENT_PENDING, base, 10) == [claimed.transaction_id]
    assert await repo.find_stale(Status.PAYMENT_PENDING, base - timedelta(seconds=1), 10) == []


def _refund(t: Transaction, amount: int, **fields: Any) -> RefundRecord:
    values: dict[str, Any] = {
        "refund_id": f"RF_{secrets.token_hex(8)}",
        "transaction_id": t.transaction_id,
        "amount": amount,
        "reason": "changed my mind",
        "actor": t.user_id,
        "status": RefundStatus.REQUESTED,
        "created_at": T0,
        **fields,
    }
    return RefundRecord(**values)


async def test_partial_refunds_reserve_the_balance_and_only_the_last_closes(
    repo: Repo, refunds: Refunds, user: str
) -> None:
    t = new_transaction(user, status=Status.PROVISION_SUCCESS, payment_key="pk_r")
    await repo.add(t, "granted")
    first = _refund(t, 20000, revoke_status=RevokeStatus.PENDING)
    # The guard is the status and the amount: a wrong status or an amount that does not fit misses.
    assert not await refunds.start_refund(
        first, expected=Status.PAYMENT_SUCCESS, closes=False, message="r", now=T0
    )
    assert not await refunds.start_refund(
        first, expected=Status.PROVISION_SUCCESS, closes=True, message="r", now=T0
    )
    too_much = _refund(t, 50001)
    assert not await refunds.start_refund(
        too_much, expected=Status.PROVISION_SUCCESS, closes=False, message="r", now=T0
    )
    assert await refunds.get_refund(first.refund_id) is None

    assert await refunds.start_refund(
        first, expected=Status.PROVISION_SUCCESS, closes=False, message="partial", now=T0
    )
    stored = await repo.get(t.transaction_id)
    assert stored is not None
    assert (stored.status, stored.refund_reserved_amount, stored.refunded_amount) == (
        Status.PROVISION_SUCCESS,
        20000,
        0,
    )
    assert stored.refundable_amount == 30000
    assert await refunds.get_refund(first.refund_id) == first

    # The rest closes it: 50 → 90 at once, so nothing more can be asked for.
    rest = _refund(t, 30000, revoke_status=RevokeStatus.PENDING)
    assert not await refunds.start_refund(
        rest, expected=Status.PROVISION_SUCCESS, closes=False, message="r", now=T0
    )
    assert await refunds.start_refund(
        rest, expected=Status.PROVISION_SUCCESS, closes=True, message="rest", now=T0
    )
    stored = await repo.get(t.transaction_id)
    assert stored is not None
    assert (stored.status, stored.refund_reserved_amount, stored.refundable_amount) == (
        Status.REFUND_REQUESTED,
        50000,
        0,
    )
    assert [r.refund_id for r in await refunds.list_refunds(t.transaction_id)] == [
        first.refund_id,
        rest.refund_id,
    ]
    assert set(await refunds.find_open_refunds(T0, 10)) >= {first.refund_id, rest.refund_id}

    # Revokes are guarded by PENDING; a failed one parks a REQUESTED refund for review.
    assert await refunds.finish_revoke(first, revoked=True, detail="ok", message="revoked", now=T0)
    assert not await refunds.finish_revoke(first, revoked=False, detail="late", message="x", now=T0)
    assert await refunds.finish_revoke(rest, revoked=False, detail="503", message="failed", now=T0)
    parked = await refunds.get_refund(rest.refund_id)
    assert parked is not None
    assert (parked.status, parked.revoke_status) == (RefundStatus.NEEDS_REVIEW, RevokeStatus.FAILED)

    done_at = T0 + timedelta(minutes=1)
    assert await refunds.complete_refund(first, pg_transaction_key="ptk1", message="refunded", now=done_at)
    assert not await refunds.complete_refund(first, pg_transaction_key="ptk1", message="again", now=done_at)
    record = await refunds.get_refund(first.refund_id)
    assert record is not None
    assert (record.status, record.pg_transaction_key, record.completed_at) == (
        RefundStatus.DONE,
        "ptk1",
        done_at,
    )
    stored = await repo.get(t.transaction_id)
    assert stored is not None
    assert (stored.status, stored.refunded_amount) == (Status.REFUND_REQUESTED, 20000)
    assert first.refund_id not in await refunds.find_open_refunds(done_at, 10)


async def test_the_refund_that_returns_the_last_won_moves_90_to_95(
    repo: Repo, refunds: Refunds, user: str
) -> None:
    t = new_transaction(user, status=Status.PAYMENT_SUCCESS, payment_key="pk_r")
    await repo.add(t, "paid")
    whole = _refund(t, 50000)
    assert await refunds.start_refund(
        whole, expected=Status.PAYMENT_SUCCESS, closes=True, message="all", now=T0
    )
    assert await refunds.complete_refund(whole, pg_transaction_key="ptk", message="refunded", now=T0)
    stored = await repo.get(t.transaction_id)
    assert stored is not None
    assert (stored.status, stored.refunded_amount) == (Status.REFUNDED, 50000)
    assert [h.status for h in await repo.history(t.transaction_id)] == [
        Status.PAYMENT_SUCCESS,
        Status.REFUND_REQUESTED,
        Status.REFUNDED,
    ]


async def test_a_refused_refund_frees_its_amount(repo: Repo, refunds: Refunds, user: str) -> None:
    t = new_transaction(user, status=Status.PROVISION_SUCCESS, payment_key="pk_r")
    await repo.add(t, "granted")
    part = _refund(t, 10000)
    assert await refunds.start_refund(
        part, expected=Status.PROVISION_SUCCESS, closes=False, message="p", now=T0
    )
    assert await refunds.refuse_refund(
        part, pg_error_code="NOT_CANCELABLE_PAYMENT", message="refused", now=T0
    )
    assert not await refunds.refuse_refund(part, pg_error_code="AGAIN", message="refused twice", now=T0)
    stored = await repo.get(t.transaction_id)
    assert stored is not None
    assert (stored.refund_reserved_amount, stored.refundable_amount) == (0, 50000)
    record = await refunds.get_refund(part.refund_id)
    assert record is not None
    assert (record.status, record.pg_error_code) == (RefundStatus.REFUSED, "NOT_CANCELABLE_PAYMENT")


async def test_a_pg_side_cancel_is_recorded_once_and_closes_when_nothing_is_left(
    repo: Repo, refunds: Refunds, user: str
) -> None:
    t = new_transaction(user, status=Status.PROVISION_SUCCESS, payment_key="pk_r")
    await repo.add(t, "granted")
    console = _refund(t, 15000, actor="pg", status=RefundStatus.DONE, pg_transaction_key=f"tk_{user}_1")
    assert await refunds.record_pg_refund(console, expected=Status.PROVISION_SUCCESS, message="pg", now=T0)
    same_key = _refund(t, 15000, actor="pg", status=RefundStatus.DONE, pg_transaction_key=f"tk_{user}_1")
    assert not await refunds.record_pg_refund(
        same_key, expected=Status.PROVISION_SUCCESS, message="pg", now=T0
    )
    stored = await repo.get(t.transaction_id)
    assert stored is not None
    assert (stored.status, stored.refunded_amount, stored.refund_reserved_amount) == (
        Status.PROVISION_SUCCESS,
        15000,
        15000,
    )
    rest = _refund(t, 35000, actor="pg", status=RefundStatus.DONE, pg_transaction_key=f"tk_{user}_2")
    assert await refunds.record_pg_refund(rest, expected=Status.PROVISION_SUCCESS, message="pg", now=T0)
    stored = await repo.get(t.transaction_id)
    assert stored is not None
    assert (stored.status, stored.refunded_amount) == (Status.REFUNDED, 50000)
    assert [h.status for h in await repo.history(t.transaction_id)][-2:] == [
        Status.REFUND_REQUESTED,
        Status.REFUNDED,
    ]


def _fields(refund: RefundRecord) -> dict[str, Any]:
    return {name: getattr(refund, name) for name in RefundRecord.__dataclass_fields__}


@pytest.mark.parametrize(
    ("expected", "target"),
    [(Status.CREATED, Status.PROVISION_SUCCESS), (Status.PAYMENT_FAILED, Status.PAYMENT_SUCCESS)],
    ids=lambda s: s.name,
)
async def test_both_refuse_a_transition_the_state_machine_lacks(
    repo: Repo, user: str, expected: Status, target: Status
) -> None:
    t = new_transaction(user, status=expected)
    await repo.add(t, "seeded")
    with pytest.raises(ForbiddenTransition):
        await repo.apply(t.transaction_id, Transition(expected, target, "not in the table"), now=T0)
    assert (await repo.get(t.transaction_id)) == t
    assert len(await repo.history(t.transaction_id)) == 1


def test_every_named_transition_is_in_the_table() -> None:
    made = [
        Transition.claim_for_confirm(reconcile_at=T0),
        Transition.claim_reported_payment(pg_status="DONE", reconcile_at=T0),
        Transition.mark_paid(payment_key="pk", pg_method="CARD", completed_at=T0, history={}),
        Transition.fail(Status.CREATED, code="PAY_003", message="m"),
        Transition.fail(Status.PAYMENT_PENDING, code="PAY_003", message="m"),
        Transition.expire(),
        Transition.start_provisioning(),
        Transition.provisioned({}),
        Transition.provisioning_failed("r"),
    ]
    assert all(t.allowed for t in made)
