"""Webhook delivery: schedule, headers, signature, retries and resend, against an in-memory transport."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from collections.abc import Callable

import httpx
import msgspec
import pytest

from mock_toss.store import MockClock
from mock_toss.webhooks import RETRY_MINUTES, WebhookDispatcher, retry_delays


def test_retry_schedule_is_tosses_minutes_times_the_scale() -> None:
    assert RETRY_MINUTES == (1, 4, 16, 64, 256, 1024, 4096)
    assert retry_delays(1.0) == [60, 240, 960, 3840, 15360, 61440, 245760]
    assert retry_delays(0.001) == pytest.approx([0.06, 0.24, 0.96, 3.84, 15.36, 61.44, 245.76])


class Merchant:
    """An in-memory webhook endpoint answering the statuses it is told, then 200."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.statuses.pop(0) if self.statuses else 200)


def dispatcher_for(merchant: Merchant, *, time_scale: float, secret: str | None = None) -> WebhookDispatcher:
    return WebhookDispatcher(
        ("http://merchant.test/hook",),
        MockClock(),
        time_scale=time_scale,
        secret=secret,
        transport=httpx.MockTransport(merchant.handle),
    )


async def wait_until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


PAYLOAD = {"eventType": "PAYMENT_STATUS_CHANGED", "createdAt": "2024-01-01T00:00:00.000000", "data": {"a": 1}}


async def test_delivery_headers_and_signature() -> None:
    merchant = Merchant()
    dispatcher = dispatcher_for(merchant, time_scale=1.0, secret="whsec")
    dispatcher.publish("PAYMENT_STATUS_CHANGED", "order-1", "pk", PAYLOAD)
    [delivery] = dispatcher.find(order_id="order-1")
    await wait_until(lambda: delivery.status == "DELIVERED")
    [request] = merchant.requests
    assert request.headers["tosspayments-webhook-transmission-id"] == delivery.id
    assert re.fullmatch(r"whtrans_[a-z0-9]{27}", delivery.id)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+09:00", request.headers["tosspayments-webhook-transmission-time"]
    )
    assert request.headers["tosspayments-webhook-transmission-retried-count"] == "0"
    expected = hmac.new(b"whsec", request.content, hashlib.sha256).hexdigest()
    assert request.headers["x-toss-signature"] == expected
    assert msgspec.json.decode(request.content) == PAYLOAD
    await dispatcher.close()


async def test_unsigned_without_a_secret_and_no_delivery_without_urls() -> None:
    merchant = Merchant()
    dispatcher = dispatcher_for(merchant, time_scale=1.0)
    dispatcher.publish("PAYMENT_STATUS_CHANGED", "order-1", "pk", PAYLOAD)
    await wait_until(lambda: len(merchant.requests) == 1)
    assert "x-toss-signature" not in merchant.requests[0].headers
    nowhere = WebhookDispatcher((), MockClock())
    nowhere.publish("PAYMENT_STATUS_CHANGED", "order-1", "pk", PAYLOAD)
    assert nowhere.find() == []
    await dispatcher.close()


async def test_seven_retries_then_failed_with_counted_retries() -> None:
    merchant = Merchant([500] * 20)
    dispatcher = dispatcher_for(merchant, time_scale=1e-6)  # the whole schedule takes ≈ 0.33 s
    dispatcher.publish("PAYMENT_STATUS_CHANGED", "order-1", "pk", PAYLOAD)
    [delivery] = dispatcher.find()
    await wait_until(lambda: delivery.status == "FAILED")
    counts = [
        request.headers["tosspayments-webhook-transmission-retried-count"] for request in merchant.requests
    ]
    assert counts == ["0", "1", "2", "3", "4", "5", "6", "7"]
    assert [attempt.status_code for attempt in delivery.attempts] == [500] * 8
    assert delivery.next_attempt_at is None
    await dispatcher.close()


async def test_a_non_200_success_status_is_still_a_failure() -> None:
    merchant = Merchant([204])
    dispatcher = dispatcher_for(merchant, time_scale=1e-4)
    dispatcher.publish("PAYMENT_STATUS_CHANGED", "order-1", "pk", PAYLOAD)
    [delivery] = dispatcher.find()
    await wait_until(lambda: delivery.status == "DELIVERED")
    assert [attempt.status_code for attempt in delivery.attempts] == [204, 200]
    await dispatcher.close()


async def test_resend_cancels_the_pending_retry_and_attempts_at_once() -> None:
    merchant = Merchant([500])
    dispatcher = dispatcher_for(merchant, time_scale=1.0)  # the pending retry would wait 60 s
    dispatcher.publish("PAYMENT_STATUS_CHANGED", "order-1", "pk", PAYLOAD)
    [delivery] = dispatcher.find()
    await wait_until(lambda: len(delivery.attempts) == 1 and delivery.next_attempt_at is not None)
    resent = dispatcher.resend(delivery.id)
    assert resent is delivery
    await wait_until(lambda: delivery.status == "DELIVERED")
    assert [attempt.retried_count for attempt in delivery.attempts] == [0, 1]
    assert delivery.next_attempt_at is None
    assert dispatcher.resend("whtrans_unknown") is None
    await dispatcher.close()


async def test_unreachable_merchant_records_the_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    dispatcher = WebhookDispatcher(
        ("http://merchant.test/hook",), MockClock(), time_scale=1.0, transport=httpx.MockTransport(refuse)
    )
    dispatcher.publish("DEPOSIT_CALLBACK", "order-1", "pk", {"status": "DONE"})
    [delivery] = dispatcher.find(event_type="DEPOSIT_CALLBACK")
    await wait_until(lambda: len(delivery.attempts) == 1)
    assert delivery.attempts[0].status_code is None
    assert "ConnectError" in (delivery.attempts[0].error or "")
    assert delivery.status == "PENDING"
    await dispatcher.close()
