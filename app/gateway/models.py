"""Normalized results of the Payment Gateway: what Core sees, whatever the PG.

These types are the Gateway's public contract (like a client SDK of the Gateway service).
Core imports them; the Gateway never imports Core.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.messages import Text


class PgPaymentStatus(enum.StrEnum):
    """The PG's view of one payment (Toss's statuses; other PGs map onto these)."""

    READY = "READY"
    IN_PROGRESS = "IN_PROGRESS"
    WAITING_FOR_DEPOSIT = "WAITING_FOR_DEPOSIT"
    DONE = "DONE"
    CANCELED = "CANCELED"
    PARTIAL_CANCELED = "PARTIAL_CANCELED"
    ABORTED = "ABORTED"
    EXPIRED = "EXPIRED"


class PaymentMethod(enum.StrEnum):
    """Our method names (Toss answers in Korean: 카드, 가상계좌, 간편결제, 계좌이체, …)."""

    CARD = "CARD"
    VIRTUAL_ACCOUNT = "VIRTUAL_ACCOUNT"
    EASY_PAY = "EASY_PAY"
    TRANSFER = "TRANSFER"
    MOBILE_PHONE = "MOBILE_PHONE"
    OTHER = "OTHER"


@dataclass(frozen=True, slots=True)
class VirtualAccount:
    bank_code: str
    account_number: str
    due_date: datetime
    expired: bool = False


@dataclass(frozen=True, slots=True)
class PgFailure:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class PgCancel:
    """One cancel of a payment as the PG records it (Toss's `cancels[]`): ours or an operator's."""

    transaction_key: str | None
    amount: int
    reason: str
    canceled_at: datetime | None


@dataclass(frozen=True, slots=True)
class PaymentInfo:
    """One payment as the PG reports it (confirm, lookup and cancel all answer this)."""

    provider: str
    payment_key: str
    order_id: str
    status: PgPaymentStatus
    method: PaymentMethod | None
    total_amount: int
    balance_amount: int
    approved_at: datetime | None = None
    last_transaction_key: str | None = None
    virtual_account: VirtualAccount | None = None
    secret: str | None = None  # virtual accounts: verifies deposit webhooks; never shown to clients
    failure: PgFailure | None = None
    cancels: tuple[PgCancel, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


class GatewayErrorKind(enum.StrEnum):
    """What a PG error means for Core, whatever the PG's own code."""

    DECLINED = "DECLINED"  # card/buyer/PG refused for good → PAY_003
    CANCELED_BY_BUYER = "CANCELED_BY_BUYER"  # the buyer cancelled or closed the payment window → PAY_003
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"  # balance or limit → PAY_004
    UNAVAILABLE = "UNAVAILABLE"  # timeout, 5xx, connection error: outcome UNKNOWN → PAY_005
    PROVIDER_ERROR = "PROVIDER_ERROR"  # the PG answered that it failed on its side: not approved → PAY_005
    ALREADY_PROCESSED = "ALREADY_PROCESSED"  # confirm already done: look the payment up
    SESSION_EXPIRED = "SESSION_EXPIRED"  # the PG forgot the authenticated session: failed
    NOT_FOUND = "NOT_FOUND"  # no such payment at the PG
    ALREADY_CANCELED = "ALREADY_CANCELED"  # cancel already done: counts as success for refunds
    NOT_CANCELABLE = "NOT_CANCELABLE"  # amount/state/period does not allow the cancel
    INVALID_REQUEST = "INVALID_REQUEST"  # our request was wrong (a bug or bad data): failed, logged
    MISCONFIGURED = "MISCONFIGURED"  # bad API key or auth header: operators must act


@dataclass(eq=False)
class GatewayError(Exception):
    """A PG call that did not succeed, normalized. `outcome_unknown` means: ask the PG again."""

    kind: GatewayErrorKind
    pg_code: str
    message: str
    http_status: int | None = None

    def __post_init__(self) -> None:
        super().__init__(f"{self.kind}: {self.pg_code}: {self.message}")

    @property
    def outcome_unknown(self) -> bool:
        return self.kind in (GatewayErrorKind.UNAVAILABLE, GatewayErrorKind.ALREADY_PROCESSED)


@dataclass(frozen=True, slots=True)
class RefundAccount:
    """Where a deposited virtual-account payment is refunded to (Toss's refundReceiveAccount)."""

    bank: str
    account_number: str
    holder_name: str


@dataclass(frozen=True, slots=True)
class RefundResult:
    """A PG cancel that went through (or had already gone through)."""

    payment: PaymentInfo
    canceled_amount: int
    transaction_key: str | None
    already_canceled: bool = False


@dataclass(frozen=True, slots=True)
class WebhookNotice:
    """What one webhook delivery claims, in neutral terms. Never trusted beyond "which payment to
    look at": the payment itself is re-fetched from the PG."""

    provider: str
    transmission_id: str  # the PG's id of this delivery (retries repeat it), or a digest of the body
    event_type: str
    order_id: str | None
    payment_key: str | None
    status: str | None
    secret: str | None  # a virtual account's secret, when the PG sends one
    retried_count: int


class WebhookRefused(Exception):
    """A delivery that is malformed (`forged` False) or that cannot be from the PG (`forged` True),
    and why, in both languages. `field` is the part of the delivery at fault when it is one part,
    `location` where it is (`body` or `header`)."""

    def __init__(
        self, text: Text, *, forged: bool = False, field: str | None = None, location: str = "body"
    ) -> None:
        super().__init__(text.en)
        self.text = text
        self.message = text.en
        self.forged = forged
        self.field = field
        self.location = location
