"""TossClient: the only code that talks to Toss Payments (https://api.tosspayments.com, or the mock).

One shared `httpx.AsyncClient` (made by `create_http_client` at startup, closed at shutdown by the
composition root) carries every call. Answers are parsed with msgspec into wire Structs that ignore
unknown fields (Toss adds fields without a version bump) and normalized into `app.gateway.models`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final
from urllib.parse import quote

import httpx
import msgspec

from app.gateway.error_codes import TOSS_ERROR_KINDS, kind_for_http_status, kind_for_toss_error
from app.gateway.models import (
    GatewayError,
    GatewayErrorKind,
    PaymentInfo,
    PaymentMethod,
    PgCancel,
    PgFailure,
    PgPaymentStatus,
    RefundAccount,
    RefundResult,
    VirtualAccount,
)

logger = logging.getLogger("app.gateway")

KST: Final = timezone(timedelta(hours=9), "KST")
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 300  # Toss rejects longer keys with INVALID_IDEMPOTENCY_KEY

_METHODS_BY_TOSS_NAME: Final[dict[str, PaymentMethod]] = {
    "카드": PaymentMethod.CARD,
    "가상계좌": PaymentMethod.VIRTUAL_ACCOUNT,
    "간편결제": PaymentMethod.EASY_PAY,
    "계좌이체": PaymentMethod.TRANSFER,
    "휴대폰": PaymentMethod.MOBILE_PHONE,
}

_ERROR_BODY_SNIPPET_CHARS: Final = 200


def create_http_client(
    *, connect_timeout: float, read_timeout: float, max_connections: int = 100
) -> httpx.AsyncClient:
    """The one HTTP client shared by every PG call; the composition root closes it at shutdown.

    Waiting for a free pooled connection is bounded by the connect timeout, and sending the body by
    the read timeout, so no call can hang.
    """
    return httpx.AsyncClient(
        timeout=httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
        ),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        follow_redirects=False,
    )


# --- Toss wire shapes (unknown fields are ignored: msgspec's default) --------------------------------


class _TossVirtualAccount(msgspec.Struct, rename="camel"):
    bank_code: str
    account_number: str
    due_date: datetime  # documented without offset, observed with +09:00: both mean KST
    expired: bool = False


class _TossFailure(msgspec.Struct):
    code: str
    message: str | None = None


class _TossCancel(msgspec.Struct, rename="camel"):
    cancel_amount: int
    transaction_key: str | None = None
    cancel_reason: str | None = None
    canceled_at: datetime | None = None


class _TossPayment(msgspec.Struct, rename="camel"):
    payment_key: str
    order_id: str
    status: PgPaymentStatus
    total_amount: int
    balance_amount: int
    method: str | None = None
    approved_at: datetime | None = None
    last_transaction_key: str | None = None
    virtual_account: _TossVirtualAccount | None = None
    secret: str | None = None
    failure: _TossFailure | None = None
    cancels: list[_TossCancel] | None = None


class _TossErrorBody(msgspec.Struct):
    code: str
    message: str | None = None


# --- the client ------------------------------------------------------------------------------------


class TossClient:
    """Confirms, looks up and cancels Toss payments; every answer normalized, every failure a GatewayError.

    Connection errors and timeouts are retried (`max_attempts` attempts, `retry_delay` seconds apart):
    safe because confirm and cancel always carry an Idempotency-Key, so Toss replays instead of
    charging twice, and lookups change nothing. An HTTP answer is never retried.
    """

    name = "TOSS"
    # An authenticated (IN_PROGRESS) payment can be confirmed for 10 minutes, then Toss expires it.
    confirm_window = timedelta(minutes=10)

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        secret_key: str,
        max_attempts: int = 3,
        retry_delay: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if retry_delay < 0:
            raise ValueError("retry_delay must not be negative")
        if httpx.URL(base_url).scheme not in ("http", "https"):
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        if not secret_key:
            raise ValueError("secret_key must not be empty")
        self._http = http
        self._base_url = base_url.rstrip("/")
        # username = secret key, empty password: the trailing colon is mandatory
        token = base64.b64encode(f"{secret_key}:".encode()).decode("ascii")
        self._authorization = f"Basic {token}"
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"TossClient(base_url={self._base_url!r})"  # never the secret key

    @staticmethod
    def window_failure_kind(code: str) -> GatewayErrorKind:
        """What the code of Toss's fail redirect (the payment window's failUrl) means; a code we do
        not know is a plain decline."""
        return TOSS_ERROR_KINDS.get(code, GatewayErrorKind.DECLINED)

    async def confirm(
        self, *, payment_key: str, order_id: str, amount: int, idempotency_key: str
    ) -> PaymentInfo:
        """Approve an authenticated payment (POST /v1/payments/confirm).

        Answers DONE for cards and easy pay, WAITING_FOR_DEPOSIT for a virtual account.
        """
        _check_amount(amount)
        _check_idempotency_key(idempotency_key)
        raw = await self._call(
            "POST",
            "/v1/payments/confirm",
            endpoint="POST /v1/payments/confirm",
            body={"paymentKey": payment_key, "orderId": order_id, "amount": amount},
            idempotency_key=idempotency_key,
            order_id=order_id,
            payment_key=payment_key,
        )
        return self._payment_info(_decode_payment(raw), raw)

    async def get_payment(self, payment_key: str) -> PaymentInfo:
        """Look a payment up by its paymentKey (GET /v1/payments/{paymentKey})."""
        raw = await self._call(
            "GET",
            f"/v1/payments/{_segment(payment_key)}",
            endpoint="GET /v1/payments/{paymentKey}",
            payment_key=payment_key,
        )
        return self._payment_info(_decode_payment(raw), raw)

    async def find_payment_by_order_id(self, order_id: str) -> PaymentInfo:
        """Look a payment up by our order id (GET /v1/payments/orders/{orderId})."""
        raw = await self._call(
            "GET",
            f"/v1/payments/orders/{_segment(order_id)}",
            endpoint="GET /v1/payments/orders/{orderId}",
            order_id=order_id,
        )
        return self._payment_info(_decode_payment(raw), raw)

    async def cancel(
        self,
        *,
        payment_key: str,
        reason: str,
        amount: int | None,
        idempotency_key: str,
        refund_account: RefundAccount | None = None,
    ) -> RefundResult:
        """Cancel a payment (POST /v1/payments/{paymentKey}/cancel): in full when `amount` is None.

        The result's amount and transaction key come from the newest entry of Toss's `cancels[]`.
        """
        if amount is not None:
            _check_amount(amount)
        _check_idempotency_key(idempotency_key)
        body: dict[str, Any] = {"cancelReason": reason}
        if amount is not None:
            body["cancelAmount"] = amount
        if refund_account is not None:
            # Required by Toss to refund a virtual-account payment after its deposit.
            body["refundReceiveAccount"] = {
                "bank": refund_account.bank,
                "accountNumber": refund_account.account_number,
                "holderName": refund_account.holder_name,
            }
        raw = await self._call(
            "POST",
            f"/v1/payments/{_segment(payment_key)}/cancel",
            endpoint="POST /v1/payments/{paymentKey}/cancel",
            body=body,
            idempotency_key=idempotency_key,
            payment_key=payment_key,
        )
        wire = _decode_payment(raw)
        newest = _newest_cancel(wire.cancels)
        if newest is None:
            # the cancel may well have happened: the outcome is unknown, not failed
            raise GatewayError(
                GatewayErrorKind.UNAVAILABLE,
                "INVALID_RESPONSE",
                "Toss answered a cancel without any cancels[] entry",
                http_status=200,
            )
        return RefundResult(
            payment=self._payment_info(wire, raw),
            canceled_amount=newest.cancel_amount,
            transaction_key=newest.transaction_key,
        )

    # --- HTTP --------------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        body: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        order_id: str | None = None,
        payment_key: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Authorization": self._authorization}
        content: bytes | None = None
        if body is not None:
            content = msgspec.json.encode(body)
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        url = self._base_url + path
        log_fields = {"endpoint": endpoint, "order_id": order_id, "payment_key": payment_key}

        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                response = await self._http.request(method, url, content=content, headers=headers)
            except httpx.TransportError as exc:
                elapsed_ms = _elapsed_ms(started)
                pg_code = "TIMEOUT" if isinstance(exc, httpx.TimeoutException) else "CONNECTION_ERROR"
                logger.warning(
                    "Toss %s order=%s payment=%s attempt %d/%d: %s (%s) after %d ms",
                    endpoint,
                    order_id,
                    payment_key,
                    attempt,
                    self._max_attempts,
                    pg_code,
                    type(exc).__name__,
                    elapsed_ms,
                    extra={**log_fields, "status": pg_code, "elapsed_ms": elapsed_ms, "attempt": attempt},
                )
                if attempt < self._max_attempts:
                    await self._sleep(self._retry_delay)
                    continue
                raise GatewayError(
                    GatewayErrorKind.UNAVAILABLE,
                    pg_code,
                    f"Toss {endpoint} did not answer after {attempt} attempts ({type(exc).__name__})",
                ) from exc
            except httpx.RequestError as exc:
                # an answer came but could not be read (e.g. a broken Content-Encoding)
                raise GatewayError(
                    GatewayErrorKind.UNAVAILABLE,
                    "INVALID_RESPONSE",
                    f"Toss {endpoint} answered unreadably ({type(exc).__name__})",
                ) from exc
            elapsed_ms = _elapsed_ms(started)
            # The call's outcome is logged once, by GatewayService; this is the wire detail.
            logger.debug(
                "Toss %s order=%s payment=%s → HTTP %d in %d ms (attempt %d)",
                endpoint,
                order_id,
                payment_key,
                response.status_code,
                elapsed_ms,
                attempt,
                extra={
                    **log_fields,
                    "status": response.status_code,
                    "elapsed_ms": elapsed_ms,
                    "attempt": attempt,
                },
            )
            return _read_answer(response, endpoint)

    def _payment_info(self, wire: _TossPayment, raw: dict[str, Any]) -> PaymentInfo:
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
            provider=self.name,
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


def _read_answer(response: httpx.Response, endpoint: str) -> dict[str, Any]:
    """The JSON object of a 2xx answer; any other answer becomes the matching GatewayError."""
    status = response.status_code
    if not 200 <= status < 300:
        raise _error_from_answer(response)
    try:
        raw = msgspec.json.decode(response.content)
    except msgspec.DecodeError as exc:
        raise _invalid_response(f"Toss {endpoint} answered {status} with a body that is not JSON") from exc
    if not isinstance(raw, dict):
        raise _invalid_response(f"Toss {endpoint} answered {status} with JSON that is not an object")
    return raw


def _error_from_answer(response: httpx.Response) -> GatewayError:
    status = response.status_code
    try:
        body = msgspec.json.decode(response.content, type=_TossErrorBody)
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


def _decode_payment(raw: dict[str, Any]) -> _TossPayment:
    try:
        return msgspec.convert(raw, _TossPayment)
    except msgspec.ValidationError as exc:
        raise _invalid_response(f"Toss answered a Payment object we cannot read: {exc}") from exc


def _invalid_response(message: str) -> GatewayError:
    # a 2xx we cannot read: Toss may have acted on the request, so the outcome is unknown
    return GatewayError(GatewayErrorKind.UNAVAILABLE, "INVALID_RESPONSE", message, http_status=200)


def _newest_cancel(cancels: list[_TossCancel] | None) -> _TossCancel | None:
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


def _segment(value: str) -> str:
    return quote(value, safe="")


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _check_amount(amount: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise GatewayError(
            GatewayErrorKind.INVALID_REQUEST,
            "INVALID_AMOUNT",
            f"amount must be a positive int, got {amount!r}",
        )


def _check_idempotency_key(idempotency_key: str) -> None:
    # retrying a POST is only safe with a key: refuse to send one without it
    if not idempotency_key or len(idempotency_key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise GatewayError(
            GatewayErrorKind.INVALID_REQUEST,
            "INVALID_IDEMPOTENCY_KEY",
            f"an Idempotency-Key of 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters is required",
        )
