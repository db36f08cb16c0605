"""Helpers shared by the mock Toss e2e tests (imported as tests.e2e.mock_toss.helpers)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from mock_toss.auth import basic_auth_header
from mock_toss.config import DEFAULT_CLIENT_KEY, DEFAULT_SECRET_KEY

AUTH = {"Authorization": basic_auth_header(DEFAULT_SECRET_KEY)}
WEBHOOK_SECRET = "whsec_e2e_secret"
SLOW_CONFIRM_SECONDS = 1.0


@dataclass
class ReceivedWebhook:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def order_id(self) -> str | None:
        payload = self.json
        return payload.get("orderId") or payload.get("data", {}).get("orderId")


@dataclass
class WebhookReceiver:
    """A merchant webhook endpoint: records every POST; can fail the first one, or all, per orderId."""

    port: int = 0
    received: list[ReceivedWebhook] = field(default_factory=list)
    fail_first_for: set[str] = field(default_factory=set)
    always_fail_for: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def status_for(self, order_id: str | None) -> int:
        with self.lock:
            if order_id in self.always_fail_for:
                return 500
            if order_id in self.fail_first_for:
                self.fail_first_for.discard(order_id)
                return 500
        return 200

    def for_order(self, order_id: str) -> list[ReceivedWebhook]:
        with self.lock:
            return [hook for hook in self.received if hook.order_id == order_id]

    def reset(self) -> None:
        with self.lock:
            self.received.clear()
            self.fail_first_for.clear()
            self.always_fail_for.clear()


def _handler_for(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            order_id = ReceivedWebhook(self.path, {}, body, 0).order_id
            status = receiver.status_for(order_id)
            with receiver.lock:
                receiver.received.append(
                    ReceivedWebhook(self.path, {k.lower(): v for k, v in self.headers.items()}, body, status)
                )
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def start_receiver() -> tuple[WebhookReceiver, ThreadingHTTPServer]:
    """A WebhookReceiver listening on a free loopback port in a daemon thread."""
    hooks = WebhookReceiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(hooks))
    hooks.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return hooks, server


def window_request(order_id: str, amount: int = 15000, method: str = "CARD", **extra: Any) -> dict[str, Any]:
    return {
        "clientKey": DEFAULT_CLIENT_KEY,
        "orderId": order_id,
        "amount": amount,
        "orderName": "스터디 등록 외 1건",
        "method": method,
        "successUrl": "http://shop.test/api/payments/callback/success",
        "failUrl": f"http://shop.test/api/payments/callback/fail?transactionId={order_id}",
        **extra,
    }


async def authenticate_payment(
    toss: httpx.AsyncClient, order_id: str, amount: int = 15000, method: str = "CARD", **extra: Any
) -> str:
    """Run the payment window to IN_PROGRESS; returns the paymentKey."""
    response = await toss.post("/_mock/checkout", json=window_request(order_id, amount, method, **extra))
    assert response.status_code == 200, response.text
    payment_key = response.json()["paymentKey"]
    assert isinstance(payment_key, str), response.json()
    return payment_key


async def confirm(
    toss: httpx.AsyncClient,
    payment_key: str,
    order_id: str,
    amount: int = 15000,
    *,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await toss.post(
        "/v1/payments/confirm",
        json={"paymentKey": payment_key, "orderId": order_id, "amount": amount},
        headers=headers,
    )


async def confirmed_payment(
    toss: httpx.AsyncClient, order_id: str, amount: int = 15000, method: str = "CARD", **extra: Any
) -> dict[str, Any]:
    payment_key = await authenticate_payment(toss, order_id, amount, method, **extra)
    response = await confirm(toss, payment_key, order_id, amount)
    assert response.status_code == 200, response.text
    payment: dict[str, Any] = response.json()
    return payment


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float = 5.0, interval: float = 0.02
) -> None:
    """Wait until `check()` is true (webhooks arrive in the background)."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)


async def webhooks_for(toss: httpx.AsyncClient, order_id: str) -> list[dict[str, Any]]:
    response = await toss.get("/_mock/webhooks", params={"orderId": order_id})
    assert response.status_code == 200
    deliveries: list[dict[str, Any]] = response.json()["webhooks"]
    return deliveries
