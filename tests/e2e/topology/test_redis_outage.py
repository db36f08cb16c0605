"""Redis stops mid-run and comes back: the API never answers 500, and nothing is lost.

A redis-server of this test's own (a free port; the shared one is never touched) under an API
process and a worker on the run's MariaDB, confirming at the shared mock Toss. While Redis is
down: the rate limiter fails open, a request carrying an Idempotency-Key is 503
SERVICE_UNAVAILABLE with Retry-After (nothing done), a refund without one is accepted (the
sweeper queues its job later), a webhook that cannot be queued is recorded and answered 503 so
Toss delivers it again. Once Redis is back: keys work again, the re-delivered webhook is queued
and processed, and the refund reaches 95.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.support.private_services import PrivateRedis, private_redis
from tests.support.servers import RunningServer
from tests.support.stack import Stack, running_stack

from .helpers import (
    STUDY,
    SUCCESS_PAGE,
    WEBHOOK_PATH,
    issue,
    landed_on,
    metric_value,
    metrics_text,
    open_window,
    statuses,
    user_id,
    wait_for_statuses,
)


@pytest.fixture(scope="module")
def own_redis() -> Iterator[PrivateRedis]:
    """A redis-server this test starts, shuts down (SIGTERM, nothing persisted) and starts again."""
    with private_redis() as server:
        yield server


@pytest.fixture(scope="module")
def outage_stack(mysql_url: str, own_redis: PrivateRedis, mock_toss: RunningServer) -> Iterator[Stack]:
    with running_stack(
        mysql_url=mysql_url, redis_base_url=own_redis.url, toss_url=mock_toss.url, workers=1
    ) as stack:
        yield stack


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    body = response.json()
    assert set(body) <= {"code", "message", "details"} and body["code"] == "SERVICE_UNAVAILABLE", body
    assert isinstance(body["message"], str) and body["message"], body
    retry_after = response.headers.get("retry-after")
    assert retry_after is not None and retry_after.isdigit() and int(retry_after) >= 1, response.headers


def webhook(order_id: str, transmission_id: str) -> dict[str, Any]:
    body = {"eventType": "PAYMENT_STATUS_CHANGED", "data": {"orderId": order_id, "status": "IN_PROGRESS"}}
    return {
        "content": json.dumps(body),
        "headers": {
            "Content-Type": "application/json",
            "TossPayments-Webhook-Transmission-Id": transmission_id,
            "TossPayments-Webhook-Transmission-Retried-Count": "0",
        },
    }


async def webhook_outcome(engine: AsyncEngine, transmission_id: str) -> list[str]:
    query = text("SELECT outcome FROM webhook_events WHERE transmission_id = :t")
    async with engine.connect() as conn:
        return [str(r[0]) for r in (await conn.execute(query, {"t": transmission_id})).all()]


async def wait_until(check: Any, *, within: float) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value or time.monotonic() >= deadline:
            return value
        await asyncio.sleep(0.25)


async def test_redis_outage_answers_without_500_and_recovers(
    outage_stack: Stack, own_redis: PrivateRedis, mock_toss: RunningServer, mysql_url: str
) -> None:
    stack = outage_stack
    buyer, other = user_id("redis-buyer"), user_id("redis-other")
    engine = create_async_engine(mysql_url, pool_size=2, max_overflow=2)
    timeout = httpx.Timeout(20.0)
    try:
        async with (
            httpx.AsyncClient(base_url=stack.api_url, timeout=timeout) as api,
            httpx.AsyncClient(base_url=mock_toss.url, timeout=timeout) as mock,
        ):
            # --- before: a paid and granted purchase, and a second one whose window is open ----------
            paid = await issue(api, stack.headers(buyer))
            window = await open_window(mock, paid)
            callback = await api.get(window.path_and_query, follow_redirects=False)
            assert landed_on(callback) == SUCCESS_PAGE
            paid_id = paid["transactionId"]
            assert (await wait_for_statuses(engine, [paid_id], {50}, within=20))[paid_id] == 50
            pending = await issue(api, stack.headers(other))
            await open_window(mock, pending)  # the PG has the payment; our callback never came
            pending_id = pending["transactionId"]

            # --- Redis goes away ----------------------------------------------------------------------
            own_redis.stop(signal.SIGTERM)  # like an operator: every key is gone
            ready = await api.get("/health/ready")
            assert ready.status_code == 503 and ready.json()["code"] == "NOT_READY", ready.text

            issued = await api.post("/api/payments/issue", json=STUDY, headers=stack.headers(other))
            assert issued.status_code == 201, issued.text  # the rate limiter failed open
            key = "outage-" + secrets.token_hex(4)
            keyed = await api.post(
                "/api/payments/issue", json=STUDY, headers={**stack.headers(other), "Idempotency-Key": key}
            )
            assert_unavailable(keyed)
            listed = await api.get("/api/payments", headers=stack.headers(other))
            assert len(listed.json()["items"]) == 2  # the keyed request did nothing

            refund_path = f"/api/payments/{paid_id}/refund"
            keyed_refund = await api.post(
                refund_path,
                json={"reason": "outage"},
                headers={**stack.headers(buyer), "Idempotency-Key": key},
            )
            assert_unavailable(keyed_refund)
            assert (await statuses(engine, [paid_id]))[paid_id] == 50
            refund = await api.post(refund_path, json={"reason": "outage"}, headers=stack.headers(buyer))
            assert refund.status_code == 202, refund.text  # committed; its job is queued later
            assert (await statuses(engine, [paid_id]))[paid_id] == 90

            transmission = "outage-" + pending_id
            delivery = await api.post(WEBHOOK_PATH, **webhook(pending_id, transmission))
            assert_unavailable(delivery)  # so Toss delivers it again
            assert await webhook_outcome(engine, transmission) == ["RECEIVED"]

            poll = await api.get(f"/api/payments/{paid_id}/status", headers=stack.headers(buyer))
            assert poll.status_code == 200, poll.text
            exposition = await metrics_text(api)
            assert metric_value(exposition, "payments_redis_unavailable_total", component="rate_limiter") >= 1
            assert metric_value(exposition, "payments_redis_unavailable_total", component="idempotency") >= 2

            # --- Redis is back ------------------------------------------------------------------------
            own_redis.start()

            async def is_ready() -> bool:
                return (await api.get("/health/ready")).status_code == 200

            assert await wait_until(is_ready, within=15), "the API did not see Redis come back"
            first = await api.post(
                "/api/payments/issue", json=STUDY, headers={**stack.headers(other), "Idempotency-Key": key}
            )
            again = await api.post(
                "/api/payments/issue", json=STUDY, headers={**stack.headers(other), "Idempotency-Key": key}
            )
            assert first.status_code == 201, first.text
            assert again.status_code == 201 and again.headers.get("idempotent-replayed") == "true", again.text
            assert again.json()["transactionId"] == first.json()["transactionId"]

            redelivery = await api.post(WEBHOOK_PATH, **webhook(pending_id, transmission))
            assert redelivery.status_code == 200, redelivery.text
            assert redelivery.json() == {"outcome": "QUEUED"}

            # arq's worker exits when its Redis vanishes (after its own reconnect attempts); like a
            # process supervisor, start another one once it is gone.
            async def settled() -> bool:
                if all(worker.process.poll() is not None for worker in stack.workers):
                    stack.start_worker()
                outcome = await webhook_outcome(engine, transmission)
                refunded = (await statuses(engine, [paid_id]))[paid_id] == 95
                return refunded and outcome not in ([], ["RECEIVED"])

            assert await wait_until(settled, within=60), (
                await webhook_outcome(engine, transmission),
                await statuses(engine, [paid_id]),
                "\n".join(w.log()[-3000:] for w in stack.workers),
            )
    finally:
        await engine.dispose()

    api_log = stack.apis[0].log()
    assert "unhandled error" not in api_log, api_log[-3000:]
