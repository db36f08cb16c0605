"""Webhooks against a real receiver: shapes, Toss headers, signature, retries, resend, env config."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from typing import Any

import httpx

from tests.e2e.mock_toss.helpers import (
    WEBHOOK_SECRET,
    WebhookReceiver,
    confirmed_payment,
    eventually,
    start_receiver,
    webhooks_for,
)
from tests.support.servers import running_server

CREATED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}")


async def delivered(toss: httpx.AsyncClient, order_id: str, count: int) -> list[dict[str, Any]]:
    """Wait until `count` deliveries for the order are DELIVERED; return them."""
    found: list[dict[str, Any]] = []

    async def all_delivered() -> bool:
        nonlocal found
        found = await webhooks_for(toss, order_id)
        return len(found) == count and all(d["status"] == "DELIVERED" for d in found)

    await eventually(all_delivered)
    return found


async def test_done_payment_sends_a_signed_status_changed_webhook(
    toss: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    payment = await confirmed_payment(toss, "order-hook-0001")
    [delivery] = await delivered(toss, "order-hook-0001", 1)
    assert delivery["eventType"] == "PAYMENT_STATUS_CHANGED" and delivery["url"] == receiver.url()
    [hook] = receiver.for_order("order-hook-0001")
    body = hook.json
    assert list(body) == ["eventType", "createdAt", "data"]
    assert body["eventType"] == "PAYMENT_STATUS_CHANGED" and CREATED_AT.fullmatch(body["createdAt"])
    assert body["data"] == payment
    assert hook.headers["tosspayments-webhook-transmission-id"] == delivery["id"]
    assert hook.headers["tosspayments-webhook-transmission-id"].startswith("whtrans_")
    assert re.fullmatch(r".+\+09:00", hook.headers["tosspayments-webhook-transmission-time"])
    assert hook.headers["tosspayments-webhook-transmission-retried-count"] == "0"
    expected = hmac.new(WEBHOOK_SECRET.encode(), hook.body, hashlib.sha256).hexdigest()
    assert hook.headers["x-toss-signature"] == expected


async def test_a_failed_delivery_is_retried_with_its_retry_count(
    toss: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    receiver.fail_first_for.add("order-hook-0002")
    await confirmed_payment(toss, "order-hook-0002")
    [delivery] = await delivered(toss, "order-hook-0002", 1)
    first, retry = receiver.for_order("order-hook-0002")
    assert (first.answered, retry.answered) == (500, 200)
    assert first.headers["tosspayments-webhook-transmission-retried-count"] == "0"
    assert retry.headers["tosspayments-webhook-transmission-retried-count"] == "1"
    assert (
        first.headers["tosspayments-webhook-transmission-id"]
        == retry.headers["tosspayments-webhook-transmission-id"]
    )
    assert first.body == retry.body
    assert (
        retry.headers["x-toss-signature"]
        == hmac.new(WEBHOOK_SECRET.encode(), retry.body, hashlib.sha256).hexdigest()
    )
    assert [(a["retriedCount"], a["statusCode"]) for a in delivery["attempts"]] == [(0, 500), (1, 200)]
    assert delivery["attempts"][0]["error"] and delivery["nextAttemptAt"] is None


async def test_resend_cancels_pending_retries_and_delivers_now(
    toss: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    receiver.always_fail_for.add("order-hook-0003")
    await confirmed_payment(toss, "order-hook-0003")

    async def retried_once() -> bool:
        [delivery] = await webhooks_for(toss, "order-hook-0003")
        return len(delivery["attempts"]) >= 2 and delivery["nextAttemptAt"] is not None

    await eventually(retried_once)
    [pending] = await webhooks_for(toss, "order-hook-0003")
    assert pending["status"] == "PENDING"
    receiver.always_fail_for.clear()
    resent = await toss.post(f"/_mock/webhooks/{pending['id']}/resend")
    assert resent.status_code == 200
    result = resent.json()
    assert result["status"] == "DELIVERED" and result["nextAttemptAt"] is None
    attempts_after_resend = len(result["attempts"])
    await asyncio.sleep(1.2)  # longer than the cancelled retry (0.96 s at time scale 0.001)
    [final] = await webhooks_for(toss, "order-hook-0003")
    assert len(final["attempts"]) == attempts_after_resend
    assert receiver.for_order("order-hook-0003")[-1].answered == 200
    missing = await toss.post("/_mock/webhooks/whtrans_nothing/resend")
    assert missing.status_code == 404


async def test_virtual_account_lifecycle_webhooks(toss: httpx.AsyncClient, receiver: WebhookReceiver) -> None:
    issued = (
        await toss.post(
            "/v1/virtual-accounts",
            json={
                "amount": 30000,
                "orderId": "order-hook-va01",
                "orderName": "스터디",
                "customerName": "김",
                "bank": "88",
            },
        )
    ).json()
    await delivered(toss, "order-hook-va01", 2)
    await toss.post("/_mock/virtual-accounts/order-hook-va01/deposit")
    await delivered(toss, "order-hook-va01", 4)
    deliveries = await webhooks_for(toss, "order-hook-va01")
    kinds = [(d["eventType"], d["body"].get("status") or d["body"]["data"]["status"]) for d in deliveries]
    assert kinds == [
        ("PAYMENT_STATUS_CHANGED", "WAITING_FOR_DEPOSIT"),
        ("DEPOSIT_CALLBACK", "WAITING_FOR_DEPOSIT"),
        ("PAYMENT_STATUS_CHANGED", "DONE"),
        ("DEPOSIT_CALLBACK", "DONE"),
    ]
    callback = deliveries[3]["body"]
    assert list(callback) == ["createdAt", "secret", "status", "transactionKey", "orderId"]
    assert callback["secret"] == issued["secret"] and CREATED_AT.fullmatch(callback["createdAt"])
    done = (await toss.get("/v1/payments/orders/order-hook-va01")).json()
    assert callback["transactionKey"] == done["lastTransactionKey"]
    filtered = (await toss.get("/_mock/webhooks", params={"eventType": "DEPOSIT_CALLBACK"})).json()
    assert filtered["count"] == 2
    received = [hook.json for hook in receiver.for_order("order-hook-va01")]
    # Deliveries run concurrently, so arrival order is not guaranteed; DEPOSIT_CALLBACK has no eventType.
    assert (
        sorted(body.get("eventType", "-") for body in received) == ["-", "-"] + ["PAYMENT_STATUS_CHANGED"] * 2
    )


async def test_cancel_and_abort_send_status_changed(toss: httpx.AsyncClient) -> None:
    payment = await confirmed_payment(toss, "order-hook-0004")
    await toss.post(
        f"/v1/payments/{payment['paymentKey']}/cancel", json={"cancelReason": "a", "cancelAmount": 1000}
    )
    await toss.post(f"/v1/payments/{payment['paymentKey']}/cancel", json={"cancelReason": "b"})
    statuses = [d["body"]["data"]["status"] for d in await delivered(toss, "order-hook-0004", 3)]
    assert statuses == ["DONE", "PARTIAL_CANCELED", "CANCELED"]
    checkout = await toss.post(
        "/_mock/checkout",
        json={
            "clientKey": "test_ck_D5GePWvyJnrK0W0k6q8gLzN97Eoq",
            "orderId": "order-hook-0005",
            "amount": 1000,
            "orderName": "x",
            "successUrl": "http://shop.test/s",
            "failUrl": "http://shop.test/f",
            "cardNumber": "4330000000000013",
        },
    )
    await toss.post(
        "/v1/payments/confirm",
        json={"paymentKey": checkout.json()["paymentKey"], "orderId": "order-hook-0005", "amount": 1000},
    )
    [aborted] = await delivered(toss, "order-hook-0005", 1)
    assert aborted["body"]["data"]["status"] == "ABORTED"
    assert aborted["body"]["data"]["failure"]["code"] == "REJECT_CARD_PAYMENT"


async def test_environment_configuration_two_urls_unsigned_and_other_keys() -> None:
    second, server = start_receiver()
    env = {
        "MOCK_TOSS_WEBHOOK_URL": f"{second.url('/a')},{second.url('/b')}",
        "MOCK_TOSS_TIME_SCALE": "0.001",
        "MOCK_TOSS_SECRET_KEY": "test_sk_otherSecretKey000000000",
        "MOCK_TOSS_CLIENT_KEY": "test_ck_otherClientKey000000000",
        "MOCK_TOSS_WEBHOOK_SECRET": "",
    }
    try:
        with running_server(["mock_toss"], health_path="/_mock/health", env=env) as mock:
            auth = httpx.BasicAuth("test_sk_otherSecretKey000000000", "")
            async with httpx.AsyncClient(base_url=mock.url, auth=auth, trust_env=False) as toss:
                default_key = await toss.get(
                    "/v1/payments/x", auth=httpx.BasicAuth("test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R", "")
                )
                assert default_key.json()["code"] == "UNAUTHORIZED_KEY"
                window = await toss.post(
                    "/_mock/checkout",
                    json={
                        "clientKey": "test_ck_otherClientKey000000000",
                        "orderId": "order-env-0001",
                        "amount": 1000,
                        "orderName": "x",
                        "successUrl": "http://shop.test/s",
                        "failUrl": "http://shop.test/f",
                    },
                )
                confirmed = await toss.post(
                    "/v1/payments/confirm",
                    json={
                        "paymentKey": window.json()["paymentKey"],
                        "orderId": "order-env-0001",
                        "amount": 1000,
                    },
                )
                assert confirmed.status_code == 200
                await delivered(toss, "order-env-0001", 2)
            assert "listening on" in mock.log() and mock.url in mock.log()
        hooks = second.for_order("order-env-0001")
        assert sorted(hook.path for hook in hooks) == ["/a", "/b"]
        assert all("x-toss-signature" not in hook.headers for hook in hooks)
    finally:
        server.shutdown()
        server.server_close()
