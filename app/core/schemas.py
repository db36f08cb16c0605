"""Wire shapes of the HTTP API: msgspec Structs, camelCase on the wire (SPEC §3)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from app.core.domain import HistoryEntry, Method, ProductType, Status, Transaction
from app.core.ports import Product, StatusView


class ApiStruct(msgspec.Struct, rename="camel"):
    pass


class ErrorBody(ApiStruct):
    """The one error envelope of the API."""

    code: str
    message: str
    details: Any = None


class IssueRequest(ApiStruct, forbid_unknown_fields=True):
    product_type: ProductType
    product_id: Annotated[str, Meta(min_length=1, max_length=50)]
    amount: Annotated[int, Meta(ge=1, le=100_000_000)]
    order_name: Annotated[str, Meta(min_length=1, max_length=100)] | None = None
    method: Method = Method.CARD
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class RefundAccountBody(ApiStruct, forbid_unknown_fields=True):
    """A bank account for refunding a deposited virtual-account payment (Toss requires one)."""

    bank: Annotated[str, Meta(min_length=1, max_length=20)]
    account_number: Annotated[str, Meta(pattern=r"^[0-9]{1,20}$")]
    holder_name: Annotated[str, Meta(min_length=1, max_length=60)]


class RefundRequest(ApiStruct, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(min_length=1, max_length=200)]
    amount: Annotated[int, Meta(ge=1, le=100_000_000)] | None = None
    refund_receive_account: RefundAccountBody | None = None


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


class FailureBody(ApiStruct):
    code: str
    message: str
    pg_code: str | None = None


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


class TransactionDetailBody(TransactionBody):
    history: list[HistoryBody]


class TransactionListBody(ApiStruct):
    items: list[TransactionBody]
    next_cursor: str | None


class ProductBody(ApiStruct):
    product_type: ProductType
    product_id: str
    name: str
    amount: int


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


def status_response(view: StatusView, message: str, retry_after: int | None) -> StatusResponse:
    failure = None
    if view.status in (Status.PAYMENT_FAILED, Status.PROVISION_FAILED) and view.failure_code:
        failure = FailureBody(code=view.failure_code, message=view.failure_message or "")
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
    )


def transaction_body(t: Transaction) -> TransactionBody:
    return TransactionBody(**_transaction_fields(t))


def transaction_detail_body(t: Transaction, history: list[HistoryEntry]) -> TransactionDetailBody:
    return TransactionDetailBody(
        **_transaction_fields(t),
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


def _transaction_fields(t: Transaction) -> dict[str, Any]:
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
        "method": t.method,
        "provider": t.provider,
        "payment_key": t.payment_key,
        "pg_method": t.pg_method,
        "metadata": t.metadata,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
        "expires_at": t.expires_at,
        "completed_at": t.completed_at,
        "failure": FailureBody(failure.code, failure.message, failure.pg_code) if failure else None,
        "virtual_account": _virtual_account(t.status, t.va_bank_code, t.va_account_number, t.va_due_date),
    }


def product_body(p: Product) -> ProductBody:
    return ProductBody(product_type=p.product_type, product_id=p.product_id, name=p.name, amount=p.amount)
