"""In-memory state of the mock: its movable clock and the payments, indexed for O(1) lookups."""

from __future__ import annotations

import heapq
import itertools
from datetime import UTC, datetime, timedelta

from mock_toss.payments import Payment


class MockClock:
    """Wall-clock time plus an offset that tests move forward (`POST /_mock/clock`)."""

    def __init__(self) -> None:
        self.offset_seconds = 0.0

    def now(self) -> datetime:
        """The mock's current time (timezone-aware UTC)."""
        return datetime.now(UTC) + timedelta(seconds=self.offset_seconds)

    def advance(self, seconds: float) -> None:
        """Move the clock forward; it never goes back."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.offset_seconds += seconds

    def reset(self) -> None:
        """Back to wall-clock time."""
        self.offset_seconds = 0.0


MAX_PAYMENTS = 200_000


class PaymentStore:
    """Payments by paymentKey and by orderId, plus a heap of the times they change on their own.

    Bounded: beyond `max_payments` the oldest payment is forgotten (≈ 1.7 kB each), so a long load
    test cannot exhaust memory.
    """

    def __init__(self, max_payments: int = MAX_PAYMENTS) -> None:
        self.by_key: dict[str, Payment] = {}
        self.by_order: dict[str, Payment] = {}
        self._max_payments = max_payments
        self._deadlines: list[tuple[datetime, int, Payment]] = []
        self._scheduled = 0  # payments whose deadline is set; the rest of the heap is stale entries
        self._sequence = itertools.count()

    def add(self, payment: Payment) -> None:
        """Keep a new payment (its paymentKey and orderId must be new)."""
        self.by_key[payment.payment_key] = payment
        self.by_order[payment.order_id] = payment
        if len(self.by_key) > self._max_payments:
            oldest = self.by_key.pop(next(iter(self.by_key)))
            self.by_order.pop(oldest.order_id, None)
            self.schedule(oldest, None)

    def get(self, payment_key: str) -> Payment | None:
        """The payment with this paymentKey, if any."""
        return self.by_key.get(payment_key)

    def get_by_order(self, order_id: str) -> Payment | None:
        """The payment with this orderId, if any."""
        return self.by_order.get(order_id)

    def schedule(self, payment: Payment, at: datetime | None) -> None:
        """Set (or clear, with None) when the payment changes on its own."""
        self._scheduled += (at is not None) - (payment.deadline is not None)
        payment.deadline = at
        if at is not None:
            heapq.heappush(self._deadlines, (at, next(self._sequence), payment))
            self._compact()

    def pop_due(self, now: datetime) -> list[Payment]:
        """Payments whose current deadline has passed; O(1) when none has."""
        due: list[Payment] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            at, _, payment = heapq.heappop(self._deadlines)
            # A rescheduled or cleared deadline leaves a stale heap entry behind: skip it.
            if payment.deadline == at:
                payment.deadline = None
                self._scheduled -= 1
                due.append(payment)
        return due

    def clear(self) -> None:
        """Forget every payment."""
        self.by_key.clear()
        self.by_order.clear()
        self._deadlines.clear()
        self._scheduled = 0

    def _compact(self) -> None:
        # Stale entries (approved sessions, confirmed payments) would otherwise pile up until their
        # time passes; rebuilding when they dominate keeps the heap O(live deadlines), amortized O(1).
        if len(self._deadlines) > 2 * self._scheduled + 1000:
            self._deadlines = [entry for entry in self._deadlines if entry[2].deadline == entry[0]]
            heapq.heapify(self._deadlines)

    @property
    def heap_entries(self) -> int:
        """Entries in the deadline heap, stale ones included (bounded by compaction)."""
        return len(self._deadlines)

    def __len__(self) -> int:
        return len(self.by_key)
