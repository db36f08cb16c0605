"""Wire shapes of the HTTP API: msgspec Structs, camelCase on the wire (docs/api.md)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from app.core.domain import (
    HistoryEntry,
    Method,
    ProductType,
    RefundStatus,
    RevokeStatus,
    Status,
    Transaction,
    refundable_amount,
)
from app.core.ports import Product, RefundRecord, StatusView
from app.messages import DEFAULT_LANGUAGE, Lang, buyer_text


class ApiStruct(msgspec.Struct, rename="camel"):
    pass


# Enforced by the use cases (app.core.printable), which answer PAY_000 naming the field.
_PRINTABLE = (
    "Visible text on one line: no control or invisible format characters "
    "(C0/C1, line breaks, bidi overrides, zero-width spaces), not blank."
)


class ErrorBody(ApiStruct):
    """The one error envelope of the API."""

    code: str
    message: str
    details: Any = None


class IssueRequest(ApiStruct, forbid_unknown_fields=True):
    product_type: ProductType
    product_id: Annotated[str, Meta(min_length=1, max_length=50)]
    amount: Annotated[int, Meta(ge=1, le=100_000_000)]
    order_name: Annotated[str, Meta(min_length=1, max_length=100, description=_PRINTABLE)] | None = None
    method: Method = Method.CARD
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class RefundAccountBody(ApiStruct, forbid_unknown_fields=True):
    """A bank account for refunding a deposited virtual-account payment (Toss requires one)."""

    bank: Annotated[str, Meta(min_length=1, max_length=20, description=_PRINTABLE)]
    account_number: Annotated[str, Meta(pattern=r"^[0-9]{1,20}$")]
    holder_name: Annotated[str, Meta(min_length=1, max_length=60, description=_PRINTABLE)]


class RefundRequest(ApiStruct, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(min_length=1, max_length=200, description=_PRINTABLE)]
    amount: Annotated[int, Meta(ge=1, le=100_000_000)] | None = None
    refund_receive_account: RefundAccountBody | None = None


_STREAM_TOKEN = (
    "Opens this transaction's event stream: GET /api/payments/{transactionId}/events?streamToken=…"
    " (for EventSource, which cannot send a bearer token). Good for this transaction only, for at"
    " most an hour; never a bearer token."
)


class IssueResponse(ApiStruct):
    transaction_id: str
    status: str
    status_code: int
    amount: int
    order_name: str
    product_type: ProductType
    product_id: str
    method: Method
    success_url: str
    fail_url: str
    expires_at: datetime
    client_key: str
    checkout_url: str | None
    stream_token: Annotated[str | None, Meta(description=_STREAM_TOKEN)] = None


class FailureBody(ApiStruct):
    """Why a transaction failed. A buyer who cancelled in the payment window and a declined card
    share our `code` (PAY_003); the PG's `pgCode` tells them apart (PAY_PROCESS_CANCELED,
    REJECT_CARD_COMPANY, …)."""

    code: Annotated[str, Meta(description="Our code: PAY_002 … PAY_006")]
    message: Annotated[str, Meta(description="Our message, for the buyer")]
    pg_code: Annotated[
        str | None, Meta(description="The PG's code for the failure, when it gave one (null otherwise)")
    ]
    pg_message: Annotated[str | None, Meta(description="The PG's own message, when it gave one")]


class VirtualAccountBody(ApiStruct):
    bank_code: str
    account_number: str
    due_date: datetime | None


class StatusResponse(ApiStruct):
    transaction_id: str
    status: str
    status_code: int
    amount: int
    completed_at: datetime | None
    is_settled: bool
    needs_polling: bool
    retry_after_ms: int | None
    message: str
    failure: FailureBody | None
    virtual_account: VirtualAccountBody | None
    refunded_amount: int = 0
    refundable_amount: int = 0
    stream_token: Annotated[str | None, Meta(description=_STREAM_TOKEN)] = None


class HistoryBody(ApiStruct):
    status: str
    status_code: int
    message: str
    metadata: dict[str, Any]
    created_at: datetime


class TransactionBody(ApiStruct):
    transaction_id: str
    user_id: str
    status: str
    status_code: int
    product_type: ProductType
    product_id: str
    order_name: str
    amount: int
    refunded_amount: int
    refundable_amount: int
    method: Method
    provider: str
    payment_key: str | None
    pg_method: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    completed_at: datetime | None
    failure: FailureBody | None
    virtual_account: VirtualAccountBody | None


class RefundBody(ApiStruct):
    """One refund of a transaction (several partial refunds are possible)."""

    refund_id: str
    amount: int
    reason: str
    status: RefundStatus
    requested_by: str
    created_at: datetime
    completed_at: datetime | None
    pg_transaction_key: str | None
    revoke_status: RevokeStatus


class TransactionDetailBody(TransactionBody):
    history: list[HistoryBody]
    refunds: list[RefundBody] = msgspec.field(default_factory=list)


class TransactionListBody(ApiStruct):
    items: list[TransactionBody]
    next_cursor: str | None


class ProductBody(ApiStruct, omit_defaults=True):
    """A product and what it grants: a STUDY its studyId and dates, an AI_RESUME its credits."""

    product_type: ProductType
    product_id: str
    name: str
    amount: int
    study_id: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    credits: int | None = None


class ProductListBody(ApiStruct):
    items: list[ProductBody]


# --- mapping from domain objects ---------------------------------------------------------------


def _virtual_account(
    status: Status, bank_code: str | None, number: str | None, due: datetime | None
) -> VirtualAccountBody | None:
    # Shown only while the deposit is awaited; the PG's `secret` is never part of any response.
    if status != Status.PAYMENT_PENDING or bank_code is None or number is None:
        return None
    return VirtualAccountBody(bank_code=bank_code, account_number=number, due_date=due)


def status_response(
    view: StatusView,
    message: str,
    retry_after: int | None,
    lang: Lang = DEFAULT_LANGUAGE,
    *,
    stream_token: str | None = None,
) -> StatusResponse:
    """`message` is in `lang` already (PaymentQueries.get_status); so is our `failure.message`."""
    failure = None
    if view.status in (Status.PAYMENT_FAILED, Status.PROVISION_FAILED) and view.failure_code:
        failure = FailureBody(
            code=view.failure_code,
            message=buyer_text(view.failure_message or "")(lang),
            pg_code=view.failure_pg_code,
            pg_message=view.failure_pg_message,
        )
    return StatusResponse(
        transaction_id=view.transaction_id,
        status=view.status.name,
        status_code=int(view.status),
        amount=view.amount,
        completed_at=view.completed_at,
        is_settled=view.status.is_settled,
        needs_polling=view.status.needs_polling,
        retry_after_ms=retry_after,
        message=message,
        failure=failure,
        virtual_account=_virtual_account(
            view.status, view.va_bank_code, view.va_account_number, view.va_due_date
        ),
        refunded_amount=view.refunded_amount,
        refundable_amount=refundable_amount(view.status, view.amount, view.refund_reserved_amount),
        stream_token=stream_token,
    )


def transaction_body(t: Transaction, lang: Lang = DEFAULT_LANGUAGE) -> TransactionBody:
    return TransactionBody(**_transaction_fields(t, lang))


def transaction_detail_body(
    t: Transaction,
    history: list[HistoryEntry],
    refunds: Sequence[RefundRecord] = (),
    lang: Lang = DEFAULT_LANGUAGE,
) -> TransactionDetailBody:
    return TransactionDetailBody(
        **_transaction_fields(t, lang),
        refunds=[
            RefundBody(
                refund_id=r.refund_id,
                amount=r.amount,
                reason=r.reason,
                status=r.status,
                requested_by=r.actor,
                created_at=r.created_at,
                completed_at=r.completed_at,
                pg_transaction_key=r.pg_transaction_key,
                revoke_status=r.revoke_status,
            )
            for r in refunds
        ],
        history=[
            HistoryBody(
                status=h.status.name,
                status_code=int(h.status),
                message=h.message,
                metadata=h.metadata,
                created_at=h.created_at,
            )
            for h in history
        ],
    )


def _transaction_fields(t: Transaction, lang: Lang) -> dict[str, Any]:
    failure = t.failure
    return {
        "transaction_id": t.transaction_id,
        "user_id": t.user_id,
        "status": t.status.name,
        "status_code": int(t.status),
        "product_type": t.product_type,
        "product_id": t.product_id,
        "order_name": t.order_name,
        "amount": t.amount,
        "refunded_amount": t.refunded_amount,
        "refundable_amount": t.refundable_amount,
        "method": t.method,
        "provider": t.provider,
        "payment_key": t.payment_key,
        "pg_method": t.pg_method,
        "metadata": t.metadata,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
        "expires_at": t.expires_at,
        "completed_at": t.completed_at,
        "failure": FailureBody(
            failure.code, buyer_text(failure.message)(lang), failure.pg_code, failure.pg_message
        )
        if failure
        else None,
        "virtual_account": _virtual_account(t.status, t.va_bank_code, t.va_account_number, t.va_due_date),
    }


def product_body(p: Product) -> ProductBody:
    return ProductBody(
        product_type=p.product_type,
        product_id=p.product_id,
        name=p.name,
        amount=p.amount,
        study_id=p.study_id,
        starts_at=p.starts_at,
        ends_at=p.ends_at,
        credits=p.credits,
    )
