"""The payment store: deadlines, stale heap entries, and its memory bound."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mock_toss.payments import Method, Payment
from mock_toss.store import MockClock, PaymentStore

START = datetime(2024, 1, 1, tzinfo=UTC)


def payment(number: int) -> Payment:
    return Payment(
        payment_key=f"tviva{number:019d}",
        order_id=f"order-{number:06d}",
        order_name="스터디",
        method=Method.CARD,
        total_amount=1000,
        requested_at=START,
    )


def test_due_payments_pop_once_and_rescheduled_ones_wait_for_their_new_time() -> None:
    store = PaymentStore()
    early, moved, cleared = payment(1), payment(2), payment(3)
    for item in (early, moved, cleared):
        store.add(item)
        store.schedule(item, START + timedelta(minutes=10))
    store.schedule(moved, START + timedelta(minutes=30))
    store.schedule(cleared, None)
    assert store.pop_due(START + timedelta(minutes=9)) == []
    assert store.pop_due(START + timedelta(minutes=10)) == [early]
    assert store.pop_due(START + timedelta(minutes=20)) == []
    assert store.pop_due(START + timedelta(minutes=30)) == [moved]
    assert early.deadline is None and moved.deadline is None


def test_stale_deadlines_do_not_pile_up() -> None:
    store = PaymentStore()
    for number in range(20_000):
        item = payment(number)
        store.add(item)
        store.schedule(item, START + timedelta(minutes=30))
        store.schedule(item, START + timedelta(minutes=10))  # approved: a new deadline
        store.schedule(item, None)  # confirmed: no deadline
    assert store.heap_entries <= 1000 + 2  # only stale entries below the compaction threshold


def test_the_oldest_payments_are_forgotten_beyond_the_bound() -> None:
    store = PaymentStore(max_payments=3)
    items = [payment(number) for number in range(5)]
    for item in items:
        store.add(item)
        store.schedule(item, START)
    assert len(store) == 3
    assert store.get(items[0].payment_key) is None and store.get_by_order(items[1].order_id) is None
    assert store.get(items[4].payment_key) is items[4]
    assert store.pop_due(START) == items[2:]  # forgotten payments never expire (no webhook for them)


def test_mock_clock_moves_only_forward() -> None:
    clock = MockClock()
    before = clock.now()
    clock.advance(600)
    assert clock.now() - before >= timedelta(seconds=600)
    with pytest.raises(ValueError):
        clock.advance(-1)
    clock.reset()
    assert clock.offset_seconds == 0
