"""Payment Core's domain: the transaction, its state machine and its errors. Pure Python, no I/O."""

from __future__ import annotations

import enum
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.messages import (
    ERROR_MESSAGES,
    NO_SUCH_PRODUCT,
    PROVISIONING_FAILED_PREFIX,
    TRANSACTION_EXPIRED,
    Text,
)


class Status(enum.IntEnum):
    CREATED = 10
    PAYMENT_PENDING = 30
    PAYMENT_SUCCESS = 40
    PAYMENT_FAILED = 41
    PROVISION_PENDING = 45
    PROVISION_SUCCESS = 50
    PROVISION_FAILED = 51
    REFUND_REQUESTED = 90
    REFUNDED = 95

    @property
    def is_settled(self) -> bool:
        """The payment outcome is known (docs/api.md: code ≥ 40)."""
        return self >= Status.PAYMENT_SUCCESS

    @property
    def needs_polling(self) -> bool:
        return self < Status.PAYMENT_SUCCESS


# The only transitions the system may make (docs/api.md, "The state machine"); anything else is PAY_001.
ALLOWED_TRANSITIONS: frozenset[tuple[Status, Status]] = frozenset(
    {
        (Status.CREATED, Status.PAYMENT_PENDING),
        (Status.CREATED, Status.PAYMENT_FAILED),
        (Status.PAYMENT_PENDING, Status.PAYMENT_SUCCESS),
        (Status.PAYMENT_PENDING, Status.PAYMENT_FAILED),
        (Status.PAYMENT_SUCCESS, Status.PROVISION_PENDING),
        (Status.PAYMENT_SUCCESS, Status.REFUND_REQUESTED),
        (Status.PROVISION_PENDING, Status.PROVISION_SUCCESS),
        (Status.PROVISION_PENDING, Status.PROVISION_FAILED),
        (Status.PROVISION_SUCCESS, Status.REFUND_REQUESTED),
        (Status.PROVISION_FAILED, Status.REFUND_REQUESTED),
        (Status.REFUND_REQUESTED, Status.REFUNDED),
    }
)

# Statuses no transition leaves: once there, a transaction never changes again (41, 95).
FINAL_STATUSES: frozenset[Status] = frozenset(
    s for s in Status if all(a != s for a, _ in ALLOWED_TRANSITIONS)
)


def can_transition(current: Status, target: Status) -> bool:
    return (current, target) in ALLOWED_TRANSITIONS


class ProductType(enum.StrEnum):
    STUDY = "STUDY"
    AI_RESUME = "AI_RESUME"


class Method(enum.StrEnum):
    CARD = "CARD"
    VIRTUAL_ACCOUNT = "VIRTUAL_ACCOUNT"
    EASY_PAY = "EASY_PAY"
    TRANSFER = "TRANSFER"


# --- errors: each is one code of the API's envelope ------------------------------------------------


class ErrorCode(enum.StrEnum):
    """The codes of the API's error envelope, also a failed transaction's `failure.code`.
    The HTTP layer decides each one's HTTP status (app.http.errors)."""

    MALFORMED = "PAY_000"
    INVALID_STATE = "PAY_001"
    EXPIRED = "PAY_002"
    VERIFICATION_FAILED = "PAY_003"
    INSUFFICIENT_FUNDS = "PAY_004"
    PG_ERROR = "PAY_005"
    PROVISIONING_FAILED = "PAY_006"
    AMOUNT_MISMATCH = "PAY_007"
    NOT_FOUND = "PAY_008"
    IDEMPOTENCY_KEY_REUSED = "PAY_009"
    IDEMPOTENCY_KEY_IN_PROGRESS = "PAY_010"
    UNAUTHENTICATED = "AUTH_001"
    FORBIDDEN = "AUTH_002"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a request: the field as the client sent it (`amount`,
    `refundReceiveAccount.bank`, `Idempotency-Key`), where it was (`body`, `query`, `header` or
    `path`) and why, in both languages (app.messages). The envelope's `details` lists them."""

    field: str
    reason: Text
    location: str = "body"


class PaymentError(Exception):
    """An error the caller gets in the envelope: its code, a text in both languages (the request's
    Accept-Language picks one) and optional details. Without a text, the code's own
    (app.messages.ERROR_MESSAGES)."""

    code: str = ErrorCode.MALFORMED
    default_text: Text | None = None

    def __init__(self, text: Text | None = None, *, details: Any = None) -> None:
        self.text = text or self.default_text or ERROR_MESSAGES[self.code]
        self.details = details
        self.problems: tuple[Problem, ...] = ()
        super().__init__(self.text.en)

    @property
    def message(self) -> str:
        """The text in English, for logs."""
        return self.text.en


class ValidationFailed(PaymentError):
    """PAY_000: what is wrong, field by field; the message is the first problem's reason."""

    code = ErrorCode.MALFORMED

    def __init__(self, *problems: Problem, text: Text | None = None) -> None:
        super().__init__(text or (problems[0].reason if problems else None))
        self.problems = problems


class InvalidTransition(PaymentError):
    code = ErrorCode.INVALID_STATE


class AmountMismatch(PaymentError):
    code = ErrorCode.AMOUNT_MISMATCH


class TransactionNotFound(PaymentError):
    code = ErrorCode.NOT_FOUND


class ProductNotFound(PaymentError):
    # Unknown product → 404 with a clear message; PAY_008 is the "no such thing" code.
    code, default_text = ErrorCode.NOT_FOUND, NO_SUCH_PRODUCT


class IdempotencyKeyReused(PaymentError):
    code = ErrorCode.IDEMPOTENCY_KEY_REUSED


class IdempotencyKeyInProgress(PaymentError):
    code = ErrorCode.IDEMPOTENCY_KEY_IN_PROGRESS


class Unauthenticated(PaymentError):
    code = ErrorCode.UNAUTHENTICATED


class Forbidden(PaymentError):
    code = ErrorCode.FORBIDDEN


# --- the transaction ---------------------------------------------------------------------------

REFUNDABLE_STATUSES = frozenset({Status.PAYMENT_SUCCESS, Status.PROVISION_SUCCESS})


def refundable_amount(status: Status, amount: int, reserved: int) -> int:
    return max(0, amount - reserved) if status in REFUNDABLE_STATUSES else 0


class RefundStatus(enum.StrEnum):
    REQUESTED = "REQUESTED"  # the amount is reserved; the revoke, then the PG cancel, are under way
    DONE = "DONE"  # the PG returned the money
    REFUSED = "REFUSED"  # the PG refused the cancel for good: the amount is free again; needs a human
    NEEDS_REVIEW = "NEEDS_REVIEW"  # the grant could not be taken back: no money moved; needs a human


class RevokeStatus(enum.StrEnum):
    NOT_REQUIRED = "NOT_REQUIRED"  # nothing was granted (a failed grant, or refunded before granting)
    PENDING = "PENDING"
    DONE = "DONE"
    FAILED = "FAILED"


def new_transaction_id(now: datetime) -> str:
    """Unique, unguessable, and a valid Toss orderId (6–64 of [A-Za-z0-9_-])."""
    return f"TXN_{now:%Y%m%d}_{secrets.token_urlsafe(16).replace('-', 'x').replace('_', 'y')}"


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a transaction failed: our code and message, and the PG's own code and message when the
    PG gave them (a buyer who cancelled in the window and a declined card share PAY_003; their
    `pg_code` tells them apart)."""

    code: str
    message: str
    pg_code: str | None = None
    pg_message: str | None = None


@dataclass(slots=True)
class Transaction:
    """One purchase attempt. Mutated only through the repository's guarded transitions."""

    transaction_id: str
    user_id: str
    product_type: ProductType
    product_id: str
    order_name: str
    amount: int
    method: Method
    status: Status
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    provider: str  # the gateway provider that takes the payment
    payment_key: str | None = None
    pg_method: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    completed_at: datetime | None = None
    failure_code: str | None = None
    failure_pg_code: str | None = None
    failure_message: str | None = None
    failure_pg_message: str | None = None
    va_bank_code: str | None = None
    va_account_number: str | None = None
    va_due_date: datetime | None = None
    va_secret: str | None = None
    refunded_amount: int = 0  # returned to the buyer by the PG
    refund_reserved_amount: int = 0  # refunds requested, under way or done: what no new refund may take

    @property
    def refundable_amount(self) -> int:
        """What is left to refund: only a paid transaction (40/50) can be refunded at all."""
        return refundable_amount(self.status, self.amount, self.refund_reserved_amount)

    @property
    def paid_by_virtual_account(self) -> bool:
        """Toss refunds a deposit only to a bank account the buyer names."""
        return self.pg_method == "VIRTUAL_ACCOUNT" or (
            self.pg_method is None and self.method == Method.VIRTUAL_ACCOUNT
        )

    @property
    def failure(self) -> Failure | None:
        if self.failure_code is None:
            return None
        return Failure(
            self.failure_code, self.failure_message or "", self.failure_pg_code, self.failure_pg_message
        )

    def is_expired(self, now: datetime) -> bool:
        return self.status == Status.CREATED and now >= self.expires_at


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    status: Status
    message: str
    metadata: dict[str, Any]
    created_at: datetime


# --- transitions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TransitionChange:
    """Column values written together with a status change (None = leave as is)."""

    payment_key: str | None = None
    pg_method: str | None = None
    failure_code: str | None = None
    failure_pg_code: str | None = None
    failure_message: str | None = None
    failure_pg_message: str | None = None
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    va_bank_code: str | None = None
    va_account_number: str | None = None
    va_due_date: datetime | None = None
    va_secret: str | None = None
    next_reconcile_at: datetime | None = None


_NO_CHANGE = TransitionChange()


@dataclass(frozen=True, slots=True)
class Transition:
    """One guarded status change: from `expected` to `target`, the columns it sets and the history
    row it leaves. Use cases make them with the named constructors below; a repository applies one
    only when the transaction is still in `expected`, and refuses a pair ALLOWED_TRANSITIONS lacks.
    """

    expected: Status
    target: Status
    message: str
    change: TransitionChange = _NO_CHANGE
    history: Mapping[str, Any] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return can_transition(self.expected, self.target)

    # 10 → 30
    @classmethod
    def claim_for_confirm(cls, *, reconcile_at: datetime) -> Transition:
        """The one request that may confirm with the PG; if it dies, the reconciler asks the PG."""
        return cls(
            Status.CREATED,
            Status.PAYMENT_PENDING,
            "confirming with the payment provider",
            TransitionChange(next_reconcile_at=reconcile_at),
        )

    @classmethod
    def claim_reported_payment(cls, *, pg_status: str, reconcile_at: datetime) -> Transition:
        """The PG reports a payment for an order still at 10 (a fail redirect that was not the truth)."""
        return cls(
            Status.CREATED,
            Status.PAYMENT_PENDING,
            "the payment provider reports the payment; applying it",
            TransitionChange(next_reconcile_at=reconcile_at),
            {"pgStatus": pg_status},
        )

    # 30 → 40
    @classmethod
    def mark_paid(
        cls,
        *,
        payment_key: str,
        pg_method: str | None,
        completed_at: datetime,
        history: Mapping[str, Any],
    ) -> Transition:
        return cls(
            Status.PAYMENT_PENDING,
            Status.PAYMENT_SUCCESS,
            "payment confirmed by the payment provider",
            TransitionChange(payment_key=payment_key, pg_method=pg_method, completed_at=completed_at),
            history,
        )

    # 10 → 41 or 30 → 41
    @classmethod
    def fail(
        cls,
        expected: Status,
        *,
        code: str,
        message: str,
        pg_code: str | None = None,
        pg_message: str | None = None,
        history: Mapping[str, Any] | None = None,
    ) -> Transition:
        """`code` and `message` are ours (what the buyer is told); `pg_code` and `pg_message` the
        PG's own words, when it gave them."""
        notes: dict[str, Any] = {"code": code, "pgCode": pg_code}
        if pg_message:
            notes["pgMessage"] = pg_message
        return cls(
            expected,
            Status.PAYMENT_FAILED,
            message,
            TransitionChange(
                failure_code=code,
                failure_pg_code=pg_code or None,
                failure_message=message,
                failure_pg_message=pg_message or None,
            ),
            {**notes, **(history or {})},
        )

    @classmethod
    def expire(cls) -> Transition:
        return cls(
            Status.CREATED,
            Status.PAYMENT_FAILED,
            "expired before payment",
            TransitionChange(failure_code=ErrorCode.EXPIRED, failure_message=TRANSACTION_EXPIRED.en),
        )

    # 40 → 45, 45 → 50, 45 → 51
    @classmethod
    def start_provisioning(cls) -> Transition:
        return cls(Status.PAYMENT_SUCCESS, Status.PROVISION_PENDING, "grant queued")

    @classmethod
    def provisioned(cls, details: Mapping[str, Any]) -> Transition:
        return cls(Status.PROVISION_PENDING, Status.PROVISION_SUCCESS, "purchase granted", history=details)

    @classmethod
    def provisioning_failed(cls, reason: str) -> Transition:
        return cls(
            Status.PROVISION_PENDING,
            Status.PROVISION_FAILED,
            f"grant failed for good: {reason}",
            TransitionChange(
                failure_code=ErrorCode.PROVISIONING_FAILED,
                failure_message=f"{PROVISIONING_FAILED_PREFIX}{reason}",
            ),
            {"code": ErrorCode.PROVISIONING_FAILED.value, "reason": reason[:200]},
        )


class ForbiddenTransition(Exception):
    """A transition the state machine does not have: a bug in the caller, refused before any write
    (a 500, not a client's error)."""

    def __init__(self, transition: Transition) -> None:
        super().__init__(
            f"The state machine does not allow {transition.expected.name} → {transition.target.name}."
        )


# --- polling schedule --------------------------------------------------------------------------

# The design's client schedule (docs/api.md, "Polling"): poll at once, then wait 1, 2, 3, then 5 s between polls.
POLL_SCHEDULE_MS: tuple[int, ...] = (0, 1000, 2000, 3000, 5000)
# When each wait of the schedule starts, counted from the last status change (0, 1, 3, 6 s).
_SCHEDULE_STARTS_S: tuple[float, ...] = (1.0, 3.0, 6.0)
# A virtual account may wait days for its deposit: nobody should poll every 5 s for that long.
VIRTUAL_ACCOUNT_POLL_CEILING_MS = 60_000


def retry_after_ms(
    status: Status, pending_for_seconds: float, attempt: int | None, awaiting_deposit: bool
) -> int | None:
    """The client's next wait before polling again; None when the outcome is known.

    With `attempt` (how many polls the client made before this one) the wait is the schedule's
    next step: 1, 2, 3, then 5 s. Without it, the step is chosen by how long the transaction has
    been in its current state, so a client that polls on the schedule gets the same answers.
    A virtual account awaiting its deposit backs off further: from the second minute on the wait
    doubles from 5 s per minute waited, up to VIRTUAL_ACCOUNT_POLL_CEILING_MS.
    """
    if not status.needs_polling:
        return None
    if attempt is not None:
        wait = POLL_SCHEDULE_MS[min(max(attempt, 0) + 1, len(POLL_SCHEDULE_MS) - 1)]
    else:
        step = sum(1 for start in _SCHEDULE_STARTS_S if pending_for_seconds >= start)
        wait = POLL_SCHEDULE_MS[step + 1]
    if awaiting_deposit and pending_for_seconds >= 60:
        doubled = POLL_SCHEDULE_MS[-1] * 2 ** min(int(pending_for_seconds // 60), 8)
        wait = min(max(wait, doubled), VIRTUAL_ACCOUNT_POLL_CEILING_MS)
    return wait
