"""Webhook delivery like Toss: background POSTs, 200-within-10-s success, 7 retries on 1…4096 minutes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import string
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import msgspec

from mock_toss.payments import toss_time
from mock_toss.store import MockClock

logger = logging.getLogger("mock_toss")

RETRY_MINUTES = (1, 4, 16, 64, 256, 1024, 4096)
DELIVERY_TIMEOUT_SECONDS = 10.0
# Deliveries sent at once (the rest wait their turn, each still timed only while it is sent). httpx's
# pool scans every connection and waiting request on each step, so a burst of a few hundred
# deliveries costs the mock more CPU than the merchant's answers take: measured with `make bench`,
# (d) spent ~7 ms of mock CPU per checkout before this cap and under 2 ms with it.
DELIVERIES_AT_ONCE = 8
MAX_KEPT_DELIVERIES = 50_000
SIGNATURE_HEADER = "X-Toss-Signature"

_ids = random.Random()


def retry_delays(time_scale: float) -> list[float]:
    """Seconds to wait before each retry: Toss's minutes × 60 × time scale."""
    return [minutes * 60 * time_scale for minutes in RETRY_MINUTES]


def new_transmission_id() -> str:
    """`whtrans_` + 27 lowercase characters, like Toss's transmission ids."""
    return "whtrans_a" + "".join(_ids.choices(string.digits + string.ascii_lowercase, k=26))


def sign(body: bytes, secret: str) -> str:
    """Lowercase hex HMAC-SHA256 of the raw body (the AsyncSite design's webhook signature)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(slots=True)
class DeliveryAttempt:
    """One POST of a webhook."""

    at: str
    retried_count: int
    status_code: int | None
    error: str | None
    duration_ms: float

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.at,
            "retriedCount": self.retried_count,
            "statusCode": self.status_code,
            "error": self.error,
            "durationMs": self.duration_ms,
        }


@dataclass(slots=True, eq=False)
class WebhookDelivery:
    """One webhook to one URL, with its attempts; `id` is its transmission id."""

    id: str
    url: str
    event_type: str
    order_id: str
    payment_key: str
    body: bytes
    created_at: str
    status: str = "PENDING"
    attempts: list[DeliveryAttempt] = field(default_factory=list)
    next_attempt_at: str | None = None
    task: asyncio.Task[None] | None = None

    def to_json(self) -> dict[str, Any]:
        """The delivery as `GET /_mock/webhooks` shows it."""
        return {
            "id": self.id,
            "url": self.url,
            "eventType": self.event_type,
            "orderId": self.order_id,
            "paymentKey": self.payment_key,
            "status": self.status,
            "createdAt": self.created_at,
            "attempts": [attempt.to_json() for attempt in self.attempts],
            "nextAttemptAt": self.next_attempt_at,
            "body": msgspec.json.decode(self.body),
        }


class WebhookDispatcher:
    """Sends webhooks in background tasks so an API answer never waits for a merchant."""

    def __init__(
        self,
        urls: tuple[str, ...],
        clock: MockClock,
        *,
        time_scale: float = 1.0,
        secret: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.urls = urls
        self._clock = clock
        self._delays = retry_delays(time_scale)
        self._secret = secret
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._sending = asyncio.Semaphore(DELIVERIES_AT_ONCE)
        self._deliveries: OrderedDict[str, WebhookDelivery] = OrderedDict()

    def publish(self, event_type: str, order_id: str, payment_key: str, payload: dict[str, Any]) -> None:
        """Queue `payload` to every configured URL; returns at once (call from inside the event loop)."""
        if not self.urls:
            return
        body = msgspec.json.encode(payload)
        created_at = toss_time(self._clock.now())
        for url in self.urls:
            delivery = WebhookDelivery(
                id=new_transmission_id(),
                url=url,
                event_type=event_type,
                order_id=order_id,
                payment_key=payment_key,
                body=body,
                created_at=created_at,
            )
            self._keep(delivery)
            delivery.task = asyncio.get_running_loop().create_task(self._deliver_with_retries(delivery))

    def resend(self, delivery_id: str) -> WebhookDelivery | None:
        """Cancel pending retries and make one fresh attempt now (Toss console's "다시 시도")."""
        delivery = self._deliveries.get(delivery_id)
        if delivery is None:
            return None
        if delivery.task is not None and not delivery.task.done():
            delivery.task.cancel()
        delivery.status = "PENDING"
        delivery.next_attempt_at = None
        delivery.task = asyncio.get_running_loop().create_task(self._deliver_once(delivery))
        return delivery

    def find(
        self, *, order_id: str | None = None, event_type: str | None = None, status: str | None = None
    ) -> list[WebhookDelivery]:
        """Deliveries matching every filter given, oldest first."""
        return [
            delivery
            for delivery in self._deliveries.values()
            if (order_id is None or delivery.order_id == order_id)
            and (event_type is None or delivery.event_type == event_type)
            and (status is None or delivery.status == status)
        ]

    def reset(self) -> None:
        """Cancel every pending delivery and forget them all."""
        for delivery in self._deliveries.values():
            if delivery.task is not None and not delivery.task.done():
                delivery.task.cancel()
        self._deliveries.clear()

    async def close(self) -> None:
        """Stop delivering and close the HTTP client."""
        self.reset()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _keep(self, delivery: WebhookDelivery) -> None:
        self._deliveries[delivery.id] = delivery
        while len(self._deliveries) > MAX_KEPT_DELIVERIES:
            _, oldest = self._deliveries.popitem(last=False)
            if oldest.task is not None and not oldest.task.done():
                oldest.task.cancel()

    async def _deliver_with_retries(self, delivery: WebhookDelivery) -> None:
        while True:
            if await self._attempt(delivery):
                delivery.status = "DELIVERED"
                delivery.next_attempt_at = None
                return
            retries_so_far = len(delivery.attempts) - 1
            if retries_so_far >= len(self._delays):
                delivery.status = "FAILED"
                delivery.next_attempt_at = None
                logger.warning("webhook %s to %s failed for good", delivery.id, delivery.url)
                return
            delay = self._delays[retries_so_far]
            delivery.next_attempt_at = toss_time(self._clock.now() + timedelta(seconds=delay))
            await asyncio.sleep(delay)

    async def _deliver_once(self, delivery: WebhookDelivery) -> None:
        delivery.status = "DELIVERED" if await self._attempt(delivery) else "FAILED"

    async def _attempt(self, delivery: WebhookDelivery) -> bool:
        retried_count = len(delivery.attempts)
        headers = {
            "Content-Type": "application/json",
            "tosspayments-webhook-transmission-time": toss_time(self._clock.now()),
            "tosspayments-webhook-transmission-id": delivery.id,
            "tosspayments-webhook-transmission-retried-count": str(retried_count),
        }
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(delivery.body, self._secret)
        attempt = DeliveryAttempt(
            at=toss_time(self._clock.now()),
            retried_count=retried_count,
            status_code=None,
            error=None,
            duration_ms=0,
        )
        async with self._sending:
            return await self._send(delivery, headers, attempt)

    async def _send(
        self, delivery: WebhookDelivery, headers: dict[str, str], attempt: DeliveryAttempt
    ) -> bool:
        started = time.perf_counter()
        try:
            response = await self._http().post(delivery.url, content=delivery.body, headers=headers)
            attempt.status_code = response.status_code
            if response.status_code != 200:
                attempt.error = f"HTTP {response.status_code} (Toss needs 200)"
        except httpx.HTTPError as exc:
            attempt.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        attempt.duration_ms = round((time.perf_counter() - started) * 1000, 1)
        delivery.attempts.append(attempt)
        return attempt.status_code == 200

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # trust_env=False: a proxy from the environment must never see merchant webhooks.
            self._client = httpx.AsyncClient(
                timeout=DELIVERY_TIMEOUT_SECONDS,
                transport=self._transport,
                trust_env=False,
                # every connection of the deliveries at once is kept alive
                limits=httpx.Limits(
                    max_connections=DELIVERIES_AT_ONCE, max_keepalive_connections=DELIVERIES_AT_ONCE
                ),
            )
        return self._client
