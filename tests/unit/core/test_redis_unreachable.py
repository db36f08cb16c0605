"""Redis unreachable: no 500. The limiter fails open, an Idempotency-Key gets 503, a webhook that
cannot be queued gets 503 (Toss retries it), everything else carries on.

The real app in-process, built by the composition root with REDIS_URL pointing at a closed port,
on a migrated SQLite file. tests/e2e/topology/test_redis_outage.py stops a real Redis mid-run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy import select

from app.core.idempotency import RedisIdempotencyStore
from app.core.ports import ServiceUnavailable
from app.db import webhook_events
from app.http.errors import http_status_of
from app.main import Services, build_services, create_app
from app.migrate import upgrade_database
from app.ratelimit import RateLimited, RateLimiter
from app.settings import load_settings
from tests.support.servers import free_port

ISSUE = "/api/payments/issue"
WEBHOOK = "/webhooks/payments/toss"
STUDY = {"productType": "STUDY", "productId": "study_123", "amount": 50000}


def closed_redis_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there


def redis_unavailable(component: str) -> float:
    value = REGISTRY.get_sample_value("payments_redis_unavailable_total", {"component": component})
    return value or 0.0


@dataclass
class Api:
    client: AsyncTestClient[Litestar]
    services: Services

    def auth(self, user_id: str, key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.services.tokens.mint(user_id)}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    async def listed(self, user_id: str) -> list[dict[str, Any]]:
        response = await self.client.get("/api/payments", headers=self.auth(user_id))
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('no_redis') / 't.sqlite3'}"
    await asyncio.to_thread(upgrade_database, url)  # alembic runs its own event loop
    settings = load_settings(
        {},
        database_url=url,
        redis_url=closed_redis_url(),
        environment="test",
        toss_api_url=f"http://127.0.0.1:{free_port()}",
        toss_max_attempts=1,
    )
    services = build_services(settings)
    try:
        async with AsyncTestClient(app=create_app(services=services)) as client:
            yield Api(client, services)
    finally:
        await services.close()


@pytest.fixture
def user() -> str:
    return f"user_{secrets.token_hex(6)}"


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    body = response.json()
    assert set(body) <= {"code", "message", "details"}, body
    assert body["code"] == "SERVICE_UNAVAILABLE", body
    assert isinstance(body["message"], str) and body["message"], body
    retry_after = response.headers.get("retry-after")
    assert retry_after is not None and retry_after.isdigit() and int(retry_after) >= 1, response.headers
    assert body["details"]["retryAfterSeconds"] == int(retry_after), body


async def test_issue_without_a_key_goes_through(api: Api, user: str) -> None:
    before = redis_unavailable("rate_limiter")
    response = await api.client.post(ISSUE, json=STUDY, headers=api.auth(user))
    assert response.status_code == 201, response.text
    assert [t["transactionId"] for t in await api.listed(user)] == [response.json()["transactionId"]]
    assert redis_unavailable("rate_limiter") == before + 1  # the limiter failed open, counted


async def test_issue_with_a_key_is_503_and_writes_nothing(api: Api, user: str) -> None:
    response = await api.client.post(ISSUE, json=STUDY, headers=api.auth(user, key="k-" + user))
    assert_unavailable(response)
    assert await api.listed(user) == []


async def test_refund_answers_without_a_500(api: Api, user: str) -> None:
    issued = await api.client.post(ISSUE, json=STUDY, headers=api.auth(user))
    tid = issued.json()["transactionId"]
    path = f"/api/payments/{tid}/refund"

    with_key = await api.client.post(path, json={"reason": "x"}, headers=api.auth(user, key="r-" + user))
    without_key = await api.client.post(path, json={"reason": "x"}, headers=api.auth(user))

    assert_unavailable(with_key)
    # past the (failed-open) limiter: the state machine answers, as with Redis up
    assert without_key.status_code == 409, without_key.text
    assert without_key.json()["code"] == "PAY_001"


async def test_a_webhook_that_cannot_be_queued_is_recorded_and_answered_503(api: Api, user: str) -> None:
    issued = await api.client.post(ISSUE, json=STUDY, headers=api.auth(user))
    tid = issued.json()["transactionId"]
    raw = json.dumps({"eventType": "PAYMENT_STATUS_CHANGED", "data": {"orderId": tid, "status": "DONE"}})
    headers = {"Content-Type": "application/json", "TossPayments-Webhook-Transmission-Id": "wh-" + tid}

    response = await api.client.post(WEBHOOK, content=raw, headers=headers)

    assert_unavailable(response)  # not 200: nothing re-queues the delivery but Toss's retry
    async with api.services.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(webhook_events.c.outcome).where(webhook_events.c.transmission_id == "wh-" + tid)
            )
        ).all()
    assert [r[0] for r in rows] == ["RECEIVED"]  # recorded; Toss's retry queues it again


async def test_a_webhook_that_needs_no_queue_is_200(api: Api) -> None:
    raw = json.dumps(
        {"eventType": "PAYMENT_STATUS_CHANGED", "data": {"orderId": "TXN_nobody", "status": "DONE"}}
    )
    response = await api.client.post(WEBHOOK, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json() == {"outcome": "IGNORED"}


async def test_polls_and_readiness_answer(api: Api, user: str) -> None:
    issued = await api.client.post(ISSUE, json=STUDY, headers=api.auth(user))
    poll = await api.client.get(
        f"/api/payments/{issued.json()['transactionId']}/status", headers=api.auth(user)
    )
    ready = await api.client.get("/health/ready")
    assert poll.status_code == 200, poll.text
    assert ready.status_code == 503 and ready.json()["code"] == "NOT_READY", ready.text


# --- the adapters --------------------------------------------------------------------------------------


async def test_the_limiter_fails_open_logs_once_and_still_counts_locally(
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis = Redis.from_url(closed_redis_url())
    limiter = RateLimiter(redis, {"issue": 3})
    try:
        with caplog.at_level(logging.WARNING, logger="app.ratelimit"):
            for _ in range(3):
                await limiter.hit("alice", "issue")
            with pytest.raises(RateLimited):  # this process still counts: a flood is not let through
                await limiter.hit("alice", "issue")
            await limiter.hit("bob", "issue")
    finally:
        await redis.aclose()
    warnings = [r for r in caplog.records if r.name == "app.ratelimit"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "failing open" in warnings[0].getMessage()


async def test_the_idempotency_store_says_unavailable() -> None:
    redis = Redis.from_url(closed_redis_url())
    store = RedisIdempotencyStore(redis)
    try:
        with pytest.raises(ServiceUnavailable) as raised:
            await store.begin("alice:POST:/api/payments/issue", "key-1", "fingerprint")
    finally:
        await redis.aclose()
    assert (raised.value.code, http_status_of(raised.value)) == ("SERVICE_UNAVAILABLE", 503)
    assert raised.value.retry_after >= 1
