"""Toss's wire format: the JSON shapes of its answers (msgspec Structs that ignore unknown fields,
since Toss adds fields without a version bump), read into the gateway's neutral models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

import httpx
import msgspec

from app.gateway.error_codes import kind_for_http_status, kind_for_toss_error
from app.gateway.models import (
    GatewayError,
    GatewayErrorKind,
    PaymentInfo,
    PaymentMethod,
    PgCancel,
    PgFailure,
    PgPaymentStatus,
    VirtualAccount,
)

KST: Final = timezone(timedelta(hours=9), "KST")

_METHODS_BY_TOSS_NAME: Final[dict[str, PaymentMethod]] = {
    "카드": PaymentMethod.CARD,
    "가상계좌": PaymentMethod.VIRTUAL_ACCOUNT,
    "간편결제": PaymentMethod.EASY_PAY,
    "계좌이체": PaymentMethod.TRANSFER,
    "휴대폰": PaymentMethod.MOBILE_PHONE,
}

_ERROR_BODY_SNIPPET_CHARS: Final = 200


# --- Toss wire shapes (unknown fields are ignored: msgspec's default) --------------------------------


class TossVirtualAccount(msgspec.Struct, rename="camel"):
    bank_code: str
    account_number: str
    due_date: datetime  # documented without offset, observed with +09:00: both mean KST
    expired: bool = False


class TossFailure(msgspec.Struct):
    code: str
    message: str | None = None


class TossCancel(msgspec.Struct, rename="camel"):
    cancel_amount: int
    transaction_key: str | None = None
    cancel_reason: str | None = None
    canceled_at: datetime | None = None


class TossPayment(msgspec.Struct, rename="camel"):
    payment_key: str
    order_id: str
    status: PgPaymentStatus
    total_amount: int
    balance_amount: int
    method: str | None = None
    approved_at: datetime | None = None
    last_transaction_key: str | None = None
    virtual_account: TossVirtualAccount | None = None
    secret: str | None = None
    failure: TossFailure | None = None
    cancels: list[TossCancel] | None = None


class TossErrorBody(msgspec.Struct):
    code: str
    message: str | None = None


# --- the client ------------------------------------------------------------------------------------


def payment_info(wire: TossPayment, raw: dict[str, Any], *, provider: str) -> PaymentInfo:
    virtual_account = None
    if wire.virtual_account is not None:
        virtual_account = VirtualAccount(
            bank_code=wire.virtual_account.bank_code,
            account_number=wire.virtual_account.account_number,
            due_date=_as_utc(wire.virtual_account.due_date),
            expired=wire.virtual_account.expired,
        )
    failure = None
    if wire.failure is not None:
        failure = PgFailure(code=wire.failure.code, message=wire.failure.message or "")
    method = None
    if wire.method is not None:
        method = _METHODS_BY_TOSS_NAME.get(wire.method, PaymentMethod.OTHER)
    return PaymentInfo(
        provider=provider,
        payment_key=wire.payment_key,
        order_id=wire.order_id,
        status=wire.status,
        method=method,
        total_amount=wire.total_amount,
        balance_amount=wire.balance_amount,
        approved_at=_as_utc(wire.approved_at) if wire.approved_at is not None else None,
        last_transaction_key=wire.last_transaction_key,
        virtual_account=virtual_account,
        secret=wire.secret,
        failure=failure,
        cancels=tuple(
            PgCancel(
                transaction_key=c.transaction_key,
                amount=c.cancel_amount,
                reason=(c.cancel_reason or "")[:200],
                canceled_at=_as_utc(c.canceled_at) if c.canceled_at is not None else None,
            )
            for c in wire.cancels or ()
        ),
        raw=raw,
    )


# --- helpers ---------------------------------------------------------------------------------------


def read_answer(response: httpx.Response, endpoint: str) -> dict[str, Any]:
    """The JSON object of a 2xx answer; any other answer becomes the matching GatewayError."""
    status = response.status_code
    if not 200 <= status < 300:
        raise error_from_answer(response)
    try:
        raw = msgspec.json.decode(response.content)
    except msgspec.DecodeError as exc:
        raise _invalid_response(f"Toss {endpoint} answered {status} with a body that is not JSON") from exc
    if not isinstance(raw, dict):
        raise _invalid_response(f"Toss {endpoint} answered {status} with JSON that is not an object")
    return raw


def error_from_answer(response: httpx.Response) -> GatewayError:
    status = response.status_code
    try:
        body = msgspec.json.decode(response.content, type=TossErrorBody)
    except (msgspec.DecodeError, msgspec.ValidationError):
        # e.g. an HTML 502 page from a proxy in front of Toss: judge by the status alone
        snippet = " ".join(response.text.split())[:_ERROR_BODY_SNIPPET_CHARS]
        return GatewayError(
            kind_for_http_status(status),
            f"HTTP_{status}",
            snippet or f"HTTP {status} without a body",
            http_status=status,
        )
    return GatewayError(
        kind_for_toss_error(body.code, status), body.code, body.message or "", http_status=status
    )


def decode_payment(raw: dict[str, Any]) -> TossPayment:
    try:
        return msgspec.convert(raw, TossPayment)
    except msgspec.ValidationError as exc:
        raise _invalid_response(f"Toss answered a Payment object we cannot read: {exc}") from exc


def _invalid_response(message: str) -> GatewayError:
    # a 2xx we cannot read: Toss may have acted on the request, so the outcome is unknown
    return GatewayError(GatewayErrorKind.UNAVAILABLE, "INVALID_RESPONSE", message, http_status=200)


def newest_cancel(cancels: list[TossCancel] | None) -> TossCancel | None:
    if not cancels:
        return None
    timed = [(c.canceled_at, index, c) for index, c in enumerate(cancels) if c.canceled_at is not None]
    if len(timed) < len(cancels):
        return cancels[-1]  # Toss appends: the last entry is the newest
    # order by time when every entry has one; ties keep the later entry
    return max(timed, key=lambda item: (_as_utc(item[0]), item[1]))[2]


def _as_utc(moment: datetime) -> datetime:
    """Aware UTC; a time without offset is Korean time (Toss documents some fields that way)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=KST)
    return moment.astimezone(UTC)
