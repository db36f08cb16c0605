"""Who may refund how much, and when. Pure rules: no I/O.

- A transaction can be refunded several times (partial refunds, like Toss's PARTIAL_CANCELED),
  never beyond what was paid: every refund reserves its amount first.
- Owners refund what is left within REFUND_WINDOW_DAYS of the payment.
- STUDY purchases follow the study team's rule, on the dates of the product catalog (never on
  anything the buyer sent): 100 % before the start, 50 % within 7 days after it, nothing later.
  The owner gets at most that share of the price in all, whatever was refunded already.
- Admins refund any amount up to what is left; the system (a failed grant) refunds what is left.
- Until the purchase is granted (40) only a full refund is possible: it stops the grant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app import messages as texts
from app.core.domain import (
    REFUNDABLE_STATUSES,
    Forbidden,
    InvalidTransition,
    Problem,
    Status,
    Transaction,
    ValidationFailed,
)

STUDY_HALF_REFUND_DAYS = 7


class RefundRefused(Forbidden):
    """The policy does not allow this refund (AUTH_002, 403): nothing changes."""


@dataclass(frozen=True, slots=True)
class RefundRequester:
    user_id: str
    is_admin: bool = False
    is_system: bool = False


def study_refundable_amount(amount: int, starts_at: datetime, now: datetime) -> int:
    """The study team's rule: 100% before the start, 50% within 7 days after, nothing later."""
    if now < starts_at:
        return amount
    if now < starts_at + timedelta(days=STUDY_HALF_REFUND_DAYS):
        return amount // 2
    return 0


def decide_refund_amount(
    transaction: Transaction,
    requester: RefundRequester,
    requested_amount: int | None,
    now: datetime,
    *,
    window_days: int,
    study_starts_at: datetime | None = None,
) -> int:
    """The amount to refund, or an error that says why not (and nothing is changed).

    `study_starts_at` is the catalog's start of the study bought (None for other products).
    """
    balance = transaction.amount - transaction.refund_reserved_amount
    if requested_amount is not None and requested_amount <= 0:
        raise ValidationFailed(Problem("amount", texts.INT_POSITIVE.format(field="amount")))
    if requester.is_system:
        if transaction.status != Status.PROVISION_FAILED:
            raise InvalidTransition(texts.REFUND_AUTOMATIC_AFTER_FAILED_GRANT)
        return balance
    if transaction.status not in REFUNDABLE_STATUSES:
        raise InvalidTransition(texts.REFUND_NOT_PAID.format(status=transaction.status.name))
    if balance <= 0:
        raise InvalidTransition(texts.REFUND_NOTHING_LEFT)
    if requester.is_admin:
        if requested_amount is not None and requested_amount > balance:
            raise ValidationFailed(
                Problem(
                    "amount",
                    texts.REFUND_AMOUNT_OVER_BALANCE.format(amount=requested_amount, balance=balance),
                )
            )
        amount = requested_amount or balance
        _check_before_grant(transaction, amount, balance)
        return amount

    if study_starts_at is not None:
        share = study_refundable_amount(transaction.amount, study_starts_at, now)
        if share <= 0:
            raise RefundRefused(texts.REFUND_STUDY_STARTED)
        allowed = min(balance, share - transaction.refund_reserved_amount)
        if allowed <= 0:
            raise RefundRefused(texts.REFUND_SHARE_TAKEN.format(share=share), details={"refundableAmount": 0})
    else:
        paid_at = transaction.completed_at or transaction.created_at
        if now > paid_at + timedelta(days=window_days):
            raise RefundRefused(texts.REFUND_WINDOW_PASSED.format(days=window_days))
        allowed = balance
    if requested_amount is not None and requested_amount != allowed:
        raise RefundRefused(
            texts.REFUND_EXACT_AMOUNT.format(allowed=allowed), details={"refundableAmount": allowed}
        )
    _check_before_grant(transaction, allowed, balance)
    return allowed


def _check_before_grant(transaction: Transaction, amount: int, balance: int) -> None:
    if transaction.status == Status.PAYMENT_SUCCESS and amount != balance:
        raise InvalidTransition(texts.REFUND_FULL_BEFORE_GRANT, details={"refundableAmount": balance})
