"""Who may refund how much, and when. Pure rules: no I/O.

- Owners refund in full from 40/50 within REFUND_WINDOW_DAYS of the payment.
- STUDY purchases whose `metadata.studyStartsAt` is known follow the study team's rule instead:
  100% before the start, 50% within 7 days after it, nothing later.
- Admins refund any amount up to the balance; the system (a failed grant) refunds in full.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.core.domain import Forbidden, InvalidTransition, ProductType, Status, Transaction, ValidationFailed

REFUNDABLE_BY_REQUEST = frozenset({Status.PAYMENT_SUCCESS, Status.PROVISION_SUCCESS})
STUDY_HALF_REFUND_DAYS = 7


class RefundRefused(Forbidden):
    """The policy does not allow this refund (AUTH_002, 403): nothing changes."""


@dataclass(frozen=True, slots=True)
class RefundRequester:
    user_id: str
    is_admin: bool = False
    is_system: bool = False


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


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
) -> int:
    """The amount to refund, or an error that says why not (and nothing is changed)."""
    balance = transaction.amount - transaction.refunded_amount
    if requested_amount is not None and requested_amount <= 0:
        raise ValidationFailed("amount must be positive", details=[{"field": "amount"}])
    if requester.is_system:
        if transaction.status != Status.PROVISION_FAILED:
            raise InvalidTransition("Automatic refunds follow a failed grant only.")
        return balance
    if transaction.status not in REFUNDABLE_BY_REQUEST:
        raise InvalidTransition(
            f"A transaction in {transaction.status.name} cannot be refunded; only paid ones can."
        )
    if balance <= 0:
        raise InvalidTransition("Nothing is left to refund.")
    if requester.is_admin:
        if requested_amount is not None and requested_amount > balance:
            raise ValidationFailed(
                f"amount {requested_amount} exceeds the refundable balance {balance}",
                details=[{"field": "amount", "reason": f"at most {balance}"}],
            )
        return requested_amount or balance

    allowed = balance
    starts_at = _parse_time(transaction.metadata.get("studyStartsAt"))
    if transaction.product_type == ProductType.STUDY and starts_at is not None:
        allowed = min(balance, study_refundable_amount(transaction.amount, starts_at, now))
        if allowed <= 0:
            raise RefundRefused("The study started more than 7 days ago; it can no longer be refunded.")
    else:
        paid_at = transaction.completed_at or transaction.created_at
        if now > paid_at + timedelta(days=window_days):
            raise RefundRefused(f"Refunds are possible within {window_days} days of payment.")
    if requested_amount is not None and requested_amount != allowed:
        raise RefundRefused(
            f"You may refund exactly {allowed} KRW of this purchase.",
            details={"refundableAmount": allowed},
        )
    return allowed
