"""Builders of Payment Core's read models for tests."""

from __future__ import annotations

from datetime import UTC, datetime

from app.core.domain import Method, Status
from app.core.ports import StatusView


def status_view(transaction_id: str = "TXN_1", status: Status = Status.CREATED) -> StatusView:
    """A card payment's status view with no failure and no virtual account."""
    return StatusView(
        transaction_id=transaction_id,
        user_id="user-1",
        status=status,
        amount=50_000,
        method=Method.CARD,
        updated_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        completed_at=None,
        failure_code=None,
        failure_message=None,
        va_bank_code=None,
        va_account_number=None,
        va_due_date=None,
    )
