"""The interfaces Payment Core needs from the outside world (typed ports).

Adapters implement them: SQLAlchemy for the repository, Redis or memory for idempotency, the
Gateway service for the PG. The Gateway's result types are its public contract, so Core imports
them from `app.gateway.models`; the Gateway never imports Core.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from app.core.domain import (
    HistoryEntry,
    Method,
    PaymentError,
    Problem,
    ProductType,
    RefundStatus,
    RevokeStatus,
    Status,
    Transaction,
    Transition,
    TransitionChange,
    ValidationFailed,
)
from app.gateway.models import GatewayErrorKind, PaymentInfo, RefundAccount, RefundResult, WebhookNotice
from app.messages import CURSOR_INVALID, Text


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


@dataclass(frozen=True, slots=True)
class Product:
    """A product on sale and what buying it grants. The grant's target and the dates the refund
    policy reads come from here, never from what the buyer sends."""

    product_type: ProductType
    product_id: str
    name: str
    amount: int
    study_id: str | None = None  # STUDY: the study the buyer is enrolled in
    starts_at: datetime | None = None  # STUDY: the refund policy's 100 % / 50 % / 0 % dates
    ends_at: datetime | None = None
    credits: int | None = None  # AI_RESUME: how many credits one purchase grants


class ProductCatalog(Protocol):
    async def get_product(self, product_type: ProductType, product_id: str) -> Product | None:
        """The product with its current price, or None when it does not exist."""
        ...

    async def list_products(self) -> Sequence[Product]:
        """Every product on sale."""
        ...


@dataclass(frozen=True, slots=True)
class StatusView:
    """The columns the polling endpoint needs, read in one indexed query (no ORM objects)."""

    transaction_id: str
    user_id: str
    status: Status
    amount: int
    method: Method
    updated_at: datetime
    completed_at: datetime | None
    failure_code: str | None
    failure_message: str | None
    va_bank_code: str | None
    va_account_number: str | None
    va_due_date: datetime | None
    refunded_amount: int = 0
    refund_reserved_amount: int = 0
    failure_pg_code: str | None = None
    failure_pg_message: str | None = None


@dataclass(frozen=True, slots=True)
class SequencedView:
    """A status view and its sequence: how many history rows the transaction had when the view was
    read, in the same statement. Every write that changes a view leaves a history row in its own
    database transaction, so the sequence only grows, and any process reads the same one: the
    status stream's event ids."""

    view: StatusView
    sequence: int


class SequencedStatusReader(Protocol):
    async def get_sequenced_view(self, transaction_id: str) -> SequencedView | None:
        """The status view and its sequence from the database (never a cache), or None."""
        ...


@dataclass(frozen=True, slots=True)
class TransactionPage:
    items: Sequence[Transaction]
    next_cursor: str | None


class InvalidCursor(ValidationFailed):
    """A list cursor that is not one a page of ours handed out: PAY_000 naming the `cursor` query
    parameter, never the first page again."""

    def __init__(self) -> None:
        super().__init__(Problem("cursor", CURSOR_INVALID, "query"))


class StatusReader(Protocol):
    async def get_status_view(self, transaction_id: str) -> StatusView | None:
        """The polling endpoint's columns in one indexed read, or None."""
        ...


class TransactionRepository(StatusReader, Protocol):
    """Transactions and their history. Its status read is the StatusReader it was built with
    (in production the cached one: app.core.status_cache.CachedStatusReader)."""

    async def add(self, transaction: Transaction, message: str) -> None:
        """Insert a new transaction and its first history row, atomically."""
        ...

    async def get(self, transaction_id: str) -> Transaction | None:
        """The transaction, or None."""
        ...

    async def current_status_view(self, transaction_id: str) -> StatusView | None:
        """The status view as the database holds it now, never a cached one (a callback's answer
        after its own writes, which another process's may have raced)."""
        ...

    async def history(self, transaction_id: str) -> Sequence[HistoryEntry]:
        """Every status change, oldest first."""
        ...

    async def list_for_user(
        self, user_id: str, *, statuses: Sequence[Status] | None, cursor: str | None, limit: int
    ) -> TransactionPage:
        """The user's transactions, newest first, cursor-paginated; InvalidCursor for a cursor that
        is not a `next_cursor` of this repository's."""
        ...

    async def apply(self, transaction_id: str, transition: Transition, *, now: datetime) -> bool:
        """Apply a transition guarded in the database (`UPDATE … WHERE status = expected`).

        Writes the history row in the same database transaction. Returns False, changing
        nothing, when the row was not in `expected` (somebody else won the race). Raises
        ForbiddenTransition, writing nothing, for a pair the state machine does not allow.
        """
        ...

    async def record_event(
        self,
        transaction_id: str,
        *,
        status: Status,
        message: str,
        metadata: Mapping[str, Any],
        now: datetime,
        change: TransitionChange | None = None,
    ) -> bool:
        """Append a history row (and write `change`) without changing the status.

        Guarded like a transition: returns False, changing nothing, when the transaction is no
        longer in `status`.
        """
        ...

    async def store_virtual_account(
        self,
        transaction_id: str,
        *,
        message: str,
        metadata: Mapping[str, Any],
        now: datetime,
        change: TransitionChange,
    ) -> bool:
        """Write a pending (30) transaction's virtual account once, with its history row.

        Guarded by status 30 and "no account stored yet"; returns False, changing nothing,
        otherwise.
        """
        ...

    async def find_expired_created(self, now: datetime, limit: int) -> Sequence[str]:
        """Ids of CREATED transactions past their expiry, oldest first."""
        ...

    async def find_stale(self, status: Status, updated_before: datetime, limit: int) -> Sequence[str]:
        """Ids of transactions in `status` not changed since `updated_before`, oldest first."""
        ...

    async def claim_due_reconciliations(
        self, now: datetime, *, limit: int, lease_seconds: float
    ) -> Sequence[tuple[str, int]]:
        """Pending (30) transactions whose next PG lookup is due, as (id, attempt number).

        Rows are locked with FOR UPDATE SKIP LOCKED and leased (next lookup pushed back by
        `lease_seconds`) in one database transaction, so concurrent workers never take the
        same transaction in the same round.
        """
        ...

    async def schedule_reconciliation(self, transaction_id: str, next_at: datetime) -> None:
        """When to ask the PG about a pending (30) transaction next."""
        ...


class WebhookOutcome(enum.StrEnum):
    """What became of a webhook delivery (stored per delivery, and answered to the PG)."""

    RECEIVED = "RECEIVED"  # recorded; its job is queued or about to be
    QUEUED = "QUEUED"  # the answer to a new delivery: its job will apply it
    DUPLICATE = "DUPLICATE"  # the answer to a delivery recorded before
    APPLIED = "APPLIED"  # its job's guarded write won: the transaction changed
    NO_CHANGE = "NO_CHANGE"  # settled already, or another delivery won
    IGNORED = "IGNORED"  # not about a payment of ours, or the PG has no such payment
    REJECTED = "REJECTED"  # its secret does not match the payment's


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    provider: str
    transmission_id: str
    event_type: str
    order_id: str | None
    payment_key: str | None
    pg_status: str | None
    secret: str | None
    retried_count: int
    raw_body: str
    received_at: datetime


class WebhookEventRepository(Protocol):
    async def record(self, event: WebhookEvent) -> tuple[int, str]:
        """Store a delivery once per transmission id; returns (event id, its current outcome)."""
        ...

    async def get(self, event_id: int) -> WebhookEvent | None:
        """A recorded delivery."""
        ...

    async def finish(self, event_id: int, *, outcome: str, detail: str, now: datetime) -> None:
        """Record what processing the delivery did."""
        ...


@dataclass(frozen=True, slots=True)
class RefundRecord:
    """One refund of a transaction; a transaction may have several (partial refunds)."""

    refund_id: str
    transaction_id: str
    amount: int
    reason: str
    actor: str  # who asked: a user id, "system" (a failed grant) or "pg" (cancelled at the PG)
    status: RefundStatus
    created_at: datetime
    revoke_status: RevokeStatus = RevokeStatus.NOT_REQUIRED
    revoke_detail: str | None = None
    pg_transaction_key: str | None = None
    pg_error_code: str | None = None
    completed_at: datetime | None = None
    refund_account: RefundAccount | None = None  # a paid virtual account's refund destination


class RefundRepository(Protocol):
    """Refund rows and the transaction's refund amounts, always written together."""

    async def start_refund(
        self, refund: RefundRecord, *, expected: Status, closes: bool, message: str, now: datetime
    ) -> bool:
        """Reserve the refund's amount and insert its row (REQUESTED), atomically.

        Guarded in the database: the transaction is in `expected` and the amount fits what is
        left (`closes`: it is exactly what is left, and the transaction moves to 90; otherwise it
        is less, and the status stays). Returns False, changing nothing, when the guard missed, so
        concurrent refunds can never reserve more than was paid.
        """
        ...

    async def get_refund(self, refund_id: str) -> RefundRecord | None:
        """One refund, or None."""
        ...

    async def list_refunds(self, transaction_id: str) -> Sequence[RefundRecord]:
        """A transaction's refunds, oldest first."""
        ...

    async def find_open_refunds(self, created_before: datetime, limit: int) -> Sequence[str]:
        """Ids of refunds with work left (REQUESTED, or a revoke PENDING) created before a time."""
        ...

    async def finish_revoke(
        self, refund: RefundRecord, *, revoked: bool, detail: str, message: str, now: datetime
    ) -> bool:
        """The grant was taken back (DONE) or could not be (FAILED; a REQUESTED refund then waits
        for a human as NEEDS_REVIEW). Guarded by revoke PENDING; writes a history row."""
        ...

    async def complete_refund(
        self, refund: RefundRecord, *, pg_transaction_key: str | None, message: str, now: datetime
    ) -> bool:
        """The PG returned the money: the refund DONE, refundedAmount raised, and 90 → 95 once all
        of the payment is refunded, atomically. Guarded by the refund being REQUESTED."""
        ...

    async def refuse_refund(
        self, refund: RefundRecord, *, pg_error_code: str, message: str, now: datetime
    ) -> bool:
        """The PG refused the cancel for good: the refund is REFUSED (its amount free again) and
        needs a human. Guarded by the refund being REQUESTED; returns False, changing nothing,
        otherwise."""
        ...

    async def record_pg_refund(
        self, refund: RefundRecord, *, expected: Status, message: str, now: datetime
    ) -> bool:
        """A cancel made at the PG (e.g. in its console): insert it DONE, raise the reserved and
        refunded amounts, and move the transaction through 90 to 95 when nothing is left.

        Guarded by the status `expected`, the amount fitting, and the PG transaction key being
        new; returns False, changing nothing, otherwise.
        """
        ...


@runtime_checkable  # Litestar checks injected dependencies against their annotation
class ProvisioningQueue(Protocol):
    """Where Core hands work to the workers. Enqueues are idempotent per transaction."""

    async def enqueue_grant(self, transaction_id: str) -> None:
        """Queue the grant of a 45 transaction (job id `provision:{transactionId}`)."""
        ...

    async def enqueue_refund(self, refund_id: str) -> None:
        """Queue a refund's work: revoke the grant, then cancel at the PG (job id `refund:{refundId}`)."""
        ...

    async def enqueue_webhook(self, event_id: int) -> None:
        """Queue the processing of a recorded webhook delivery (job id `webhook:{eventId}`)."""
        ...

    async def enqueue_callback(self, kind: str, query: Mapping[str, str]) -> None:
        """Queue the replay of a browser callback ("success" or "fail", with its query parameters)
        that arrived while the database was unreachable (job id `callback:{digest of both}`)."""
        ...


class PaymentGateway(Protocol):
    """What Core asks of the Payment Gateway (satisfied by app.gateway.service.GatewayService)."""

    async def confirm_payment(
        self, *, provider: str, payment_key: str, order_id: str, amount: int, idempotency_key: str
    ) -> PaymentInfo: ...

    async def get_payment(self, *, provider: str, payment_key: str) -> PaymentInfo: ...

    def read_webhook(self, *, provider: str, raw: bytes, headers: Mapping[str, str]) -> WebhookNotice:
        """A webhook delivery as a neutral notice; raises WebhookRefused when malformed or forged."""
        ...

    def confirm_window(self, provider: str) -> timedelta:
        """How long an authenticated payment stays confirmable at the PG."""
        ...

    def window_failure_kind(self, *, provider: str, code: str) -> GatewayErrorKind:
        """What the code of the payment window's fail redirect means."""
        ...

    async def find_payment(self, *, provider: str, order_id: str) -> PaymentInfo: ...

    async def cancel_payment(
        self,
        *,
        provider: str,
        payment_key: str,
        reason: str,
        amount: int | None,
        idempotency_key: str,
        refund_account: RefundAccount | None = None,
    ) -> RefundResult: ...


class ServiceUnavailable(PaymentError):
    """An adapter's backing service (Redis) cannot be reached; nothing was done: retry after
    `retry_after` s. Not one of the PAY_ codes: 503 SERVICE_UNAVAILABLE with Retry-After."""

    code = "SERVICE_UNAVAILABLE"

    def __init__(self, text: Text | None = None, *, retry_after: int = 5) -> None:
        super().__init__(text, details={"retryAfterSeconds": retry_after})
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: bytes


@runtime_checkable  # Litestar checks injected dependencies against their annotation
class IdempotencyStore(Protocol):
    """Stripe-style keys: (scope, key) → fingerprint and, once finished, the first response."""

    async def begin(self, scope: str, key: str, fingerprint: str) -> StoredResponse | None:
        """Claim the key. Returns the stored response to replay when the key already finished.

        Raises IdempotencyKeyReused when the fingerprint differs and IdempotencyKeyInProgress
        when the first request with this key is still running. Every method raises
        ServiceUnavailable when the store cannot be reached.
        """
        ...

    async def finish(self, scope: str, key: str, fingerprint: str, response: StoredResponse) -> None:
        """Store the response of a claimed key for replays."""
        ...

    async def abandon(self, scope: str, key: str) -> None:
        """Release a claimed key whose request failed before doing anything (safe to retry)."""
        ...


class StatusChanges(Protocol):
    """Tells every process that a transaction's row changed, so cached status views are dropped."""

    async def announce(self, transaction_id: str) -> None:
        """Call after the write committed. Never raises: a lost announcement is bounded by the
        status cache's expiry (see `app.core.status_cache`)."""
        ...
