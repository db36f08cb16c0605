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
from datetime import timedelta
from typing import Any, Final
from urllib.parse import quote

import httpx
import msgspec

from app.gateway.error_codes import TOSS_ERROR_KINDS
from app.gateway.http_transport import AiohttpTransport
from app.gateway.models import (
    GatewayError,
    GatewayErrorKind,
    PaymentInfo,
    RefundAccount,
    RefundResult,
)
from app.gateway.toss_wire import (
    decode_payment,
    newest_cancel,
    payment_info,
    read_answer,
)

logger = logging.getLogger("app.gateway")

MAX_IDEMPOTENCY_KEY_LENGTH: Final = 300  # Toss rejects longer keys with INVALID_IDEMPOTENCY_KEY


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
        # httpx's API over aiohttp's connections: a sixth of the CPU per call (app.gateway.http_transport)
        transport=AiohttpTransport(max_connections=max_connections),
        follow_redirects=False,
        trust_env=False,
    )


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
        return payment_info(decode_payment(raw), raw, provider=self.name)

    async def get_payment(self, payment_key: str) -> PaymentInfo:
        """Look a payment up by its paymentKey (GET /v1/payments/{paymentKey})."""
        raw = await self._call(
            "GET",
            f"/v1/payments/{_segment(payment_key)}",
            endpoint="GET /v1/payments/{paymentKey}",
            payment_key=payment_key,
        )
        return payment_info(decode_payment(raw), raw, provider=self.name)

    async def find_payment_by_order_id(self, order_id: str) -> PaymentInfo:
        """Look a payment up by our order id (GET /v1/payments/orders/{orderId})."""
        raw = await self._call(
            "GET",
            f"/v1/payments/orders/{_segment(order_id)}",
            endpoint="GET /v1/payments/orders/{orderId}",
            order_id=order_id,
        )
        return payment_info(decode_payment(raw), raw, provider=self.name)

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
        wire = decode_payment(raw)
        newest = newest_cancel(wire.cancels)
        if newest is None:
            # the cancel may well have happened: the outcome is unknown, not failed
            raise GatewayError(
                GatewayErrorKind.UNAVAILABLE,
                "INVALID_RESPONSE",
                "Toss answered a cancel without any cancels[] entry",
                http_status=200,
            )
        return RefundResult(
            payment=payment_info(wire, raw, provider=self.name),
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
            return read_answer(response, endpoint)


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
