"""A buyer's and an operator's view of provisioning and refunds over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.fake_downstream import FakeDownstream
from tests.support.stack import Stack

SECRET_KEY = "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R"
TOSS_AUTH = {"Authorization": "Basic " + base64.b64encode(f"{SECRET_KEY}:".encode()).decode()}
STUDY: dict[str, Any] = {"productType": "STUDY", "productId": "study_123", "amount": 50_000}
RESUME: dict[str, Any] = {"productType": "AI_RESUME", "productId": "resume_credit_10", "amount": 9_900}
TERMINAL = {41, 50, 95}
POLL_SECONDS = 40.0
POLL_INTERVAL = 0.2


@dataclass(frozen=True, slots=True)
class Buyer:
    user_id: str
    headers: dict[str, str]


class Shop:
    """Drives checkouts and refunds through the stack's API and the mock's payment window."""

    def __init__(
        self, *, stack: Stack, api: httpx.AsyncClient, mock: httpx.AsyncClient, fake: FakeDownstream
    ) -> None:
        self.stack = stack
        self.api = api
        self.mock = mock
        self.fake = fake

    def buyer(self, label: str = "buyer") -> Buyer:
        user_id = f"e2e-prov-{label}-{secrets.token_hex(4)}"
        return Buyer(user_id=user_id, headers=self.stack.headers(user_id))

    def admin(self) -> Buyer:
        user_id = f"e2e-admin-{secrets.token_hex(4)}"
        return Buyer(user_id=user_id, headers=self.stack.headers(user_id, admin=True))

    async def issue(
        self, buyer: Buyer, product: dict[str, Any] | None = None, **extra: Any
    ) -> dict[str, Any]:
        """POST /api/payments/issue: the issued transaction (10)."""
        issued = await self.api.post(
            "/api/payments/issue", json={**(product or STUDY), **extra}, headers=buyer.headers
        )
        assert issued.status_code == 201, issued.text
        body: dict[str, Any] = issued.json()
        return body

    async def pay(self, issued: dict[str, Any]) -> str:
        """Approve in the mock's window and deliver the browser to our callback: the transactionId."""
        window = await self.mock.post(
            "/_mock/checkout",
            json={
                "clientKey": issued["clientKey"],
                "orderId": issued["transactionId"],
                "amount": issued["amount"],
                "orderName": issued["orderName"],
                "method": "CARD",
                "successUrl": issued["successUrl"],
                "failUrl": issued["failUrl"],
                "cardNumber": "4330000000000005",
            },
        )
        assert window.status_code == 200, window.text
        landed = await self.api.get(window.json()["redirectUrl"], follow_redirects=False)
        assert landed.status_code == 302, landed.text
        assert "/payment/success" in landed.headers["location"], landed.headers["location"]
        tid: str = issued["transactionId"]
        return tid

    async def checkout(self, buyer: Buyer, product: dict[str, Any] | None = None, **extra: Any) -> str:
        """Issue and pay: the transactionId (its grant is queued by then)."""
        return await self.pay(await self.issue(buyer, product, **extra))

    async def status(self, buyer: Buyer, tid: str) -> dict[str, Any]:
        response = await self.api.get(f"/api/payments/{tid}/status", headers=buyer.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def detail(self, buyer: Buyer, tid: str) -> dict[str, Any]:
        response = await self.api.get(f"/api/payments/{tid}", headers=buyer.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def wait_for_status(
        self, buyer: Buyer, tid: str, wanted: int, *, within: float = POLL_SECONDS
    ) -> dict[str, Any]:
        """Poll (bounded) until the status code is `wanted`; fails early on another terminal code."""
        deadline = time.monotonic() + within
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            last = await self.status(buyer, tid)
            if last["statusCode"] == wanted:
                return last
            if last["statusCode"] in TERMINAL:
                raise AssertionError(f"{tid} settled at {last['statusCode']}, wanted {wanted}: {last}")
            await asyncio.sleep(POLL_INTERVAL)
        raise AssertionError(f"{tid} did not reach {wanted} in {within}s; last: {last}")

    async def wait_until(
        self, condition: Callable[[], Awaitable[bool]], what: str, *, within: float = POLL_SECONDS
    ) -> None:
        """Poll (bounded) until `condition()` holds."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if await condition():
                return
            await asyncio.sleep(POLL_INTERVAL)
        raise AssertionError(f"{what}: not reached in {within}s")

    async def refund(
        self, caller: Buyer, tid: str, body: dict[str, Any], *, key: str | None = None
    ) -> httpx.Response:
        headers = {**caller.headers, **({"Idempotency-Key": key} if key else {})}
        return await self.api.post(f"/api/payments/{tid}/refund", json=body, headers=headers)

    async def cancels(self, tid: str) -> list[dict[str, Any]]:
        response = await self.mock.get(
            "/_mock/requests", params={"method": "POST", "path": "/v1/payments/*", "orderId": tid}
        )
        assert response.status_code == 200, response.text
        return [r for r in response.json()["requests"] if r["path"].endswith("/cancel")]

    async def pg_payment(self, tid: str) -> dict[str, Any]:
        response = await self.mock.get(f"/v1/payments/orders/{tid}", headers=TOSS_AUTH)
        assert response.status_code == 200, response.text
        payment: dict[str, Any] = response.json()
        return payment


def codes(detail: dict[str, Any]) -> list[int]:
    return [entry["statusCode"] for entry in detail["history"]]


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) <= {"code", "message", "details"}, body
    code: str = body["code"]
    return code
