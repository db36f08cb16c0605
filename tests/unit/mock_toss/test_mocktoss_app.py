"""The mock's HTTP app in-process (Litestar's AsyncTestClient): payment shapes and money rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from mock_toss.app import create_app
from mock_toss.auth import basic_auth_header
from mock_toss.config import DEFAULT_CLIENT_KEY, DEFAULT_SECRET_KEY, MockConfig
from mock_toss.payments import PAYMENT_KEYS

AUTH = {"Authorization": basic_auth_header(DEFAULT_SECRET_KEY)}


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(MockConfig(slow_confirm_seconds=0.05))) as test_client:
        yield test_client


async def authenticated(
    client: AsyncTestClient[Any], order_id: str, amount: int = 15000, method: str = "CARD", **extra: Any
) -> str:
    response = await client.post(
        "/_mock/checkout",
        json={
            "clientKey": DEFAULT_CLIENT_KEY,
            "orderId": order_id,
            "amount": amount,
            "orderName": "AI 이력서 크레딧 10회",
            "method": method,
            "successUrl": "http://shop.test/success",
            "failUrl": "http://shop.test/fail",
            **extra,
        },
    )
    assert response.status_code == 200, response.text
    payment_key = response.json()["paymentKey"]
    assert isinstance(payment_key, str)
    return payment_key


async def confirmed(
    client: AsyncTestClient[Any], order_id: str, amount: int = 15000, method: str = "CARD"
) -> Any:
    payment_key = await authenticated(client, order_id, amount, method)
    response = await client.post(
        "/v1/payments/confirm",
        json={"paymentKey": payment_key, "orderId": order_id, "amount": amount},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_payment_objects_carry_every_documented_key_in_every_status(
    client: AsyncTestClient[Any],
) -> None:
    payment_key = await authenticated(client, "order-keys-1")
    in_progress = (await client.get(f"/v1/payments/{payment_key}", headers=AUTH)).json()
    done = await confirmed(client, "order-keys-2")
    waiting = await confirmed(client, "order-keys-3", method="VIRTUAL_ACCOUNT")
    for payment in (in_progress, done, waiting):
        assert tuple(payment) == PAYMENT_KEYS
    assert in_progress["status"] == "IN_PROGRESS" and in_progress["approvedAt"] is None
    assert in_progress["receipt"] is None and in_progress["card"] is None


async def test_card_easy_pay_transfer_and_mobile_phone_confirm_to_done(client: AsyncTestClient[Any]) -> None:
    card = await confirmed(client, "order-card-1")
    assert (card["status"], card["method"], card["card"]["number"]) == ("DONE", "카드", "43300000****000*")
    assert (card["suppliedAmount"], card["vat"]) == (13636, 1364)
    easy = await confirmed(client, "order-easy-1", method="간편결제")
    assert (easy["method"], easy["easyPay"]["provider"], easy["card"]) == ("간편결제", "토스페이", None)
    transfer = await confirmed(client, "order-transfer-1", method="TRANSFER")
    assert (transfer["method"], transfer["transfer"]["settlementStatus"]) == ("계좌이체", "COMPLETED")
    phone = await confirmed(client, "order-phone-1", method="MOBILE_PHONE")
    assert (phone["method"], phone["mobilePhone"]["settlementStatus"]) == ("휴대폰", "COMPLETED")
    for payment in (card, easy, transfer, phone):
        assert (
            payment["approvedAt"] is not None and payment["lastTransactionKey"] == payment["transactionKey"]
        )


async def test_partial_cancels_reduce_balance_supplied_amount_and_vat(client: AsyncTestClient[Any]) -> None:
    payment = await confirmed(client, "order-cancel-1", amount=15000)
    key = payment["paymentKey"]
    first = await client.post(
        f"/v1/payments/{key}/cancel", json={"cancelReason": "부분 환불", "cancelAmount": 4000}, headers=AUTH
    )
    assert first.status_code == 200
    after_first = first.json()
    assert (after_first["status"], after_first["balanceAmount"], after_first["totalAmount"]) == (
        "PARTIAL_CANCELED",
        11000,
        15000,
    )
    assert (after_first["vat"], after_first["suppliedAmount"]) == (1000, 10000)
    [cancel] = after_first["cancels"]
    assert cancel["refundableAmount"] == 11000 and cancel["cancelStatus"] == "DONE"
    assert after_first["lastTransactionKey"] == cancel["transactionKey"] != payment["lastTransactionKey"]
    rest = (
        await client.post(f"/v1/payments/{key}/cancel", json={"cancelReason": "나머지"}, headers=AUTH)
    ).json()
    assert (rest["status"], rest["balanceAmount"], rest["vat"], rest["suppliedAmount"]) == (
        "CANCELED",
        0,
        0,
        0,
    )
    assert [c["cancelAmount"] for c in rest["cancels"]] == [4000, 11000]
    assert rest["card"]["acquireStatus"] == "CANCELED"


async def test_english_messages_on_request(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/v1/payments/tviva_unknown", headers={**AUTH, "Accept-Language": "en-US"})
    assert response.status_code == 404
    assert response.json() == {"code": "NOT_FOUND_PAYMENT", "message": "The payment does not exist."}
    korean = await client.get("/v1/payments/tviva_unknown", headers=AUTH)
    assert korean.json()["message"] == "존재하지 않는 결제 정보 입니다."


async def test_slow_card_and_health(client: AsyncTestClient[Any]) -> None:
    payment_key = await authenticated(client, "order-slow-1", cardNumber="4330000000000047")
    response = await client.post(
        "/v1/payments/confirm",
        json={"paymentKey": payment_key, "orderId": "order-slow-1", "amount": 15000},
        headers=AUTH,
    )
    assert response.json()["status"] == "DONE"
    health = (await client.get("/_mock/health")).json()
    assert health["status"] == "ok" and health["version"]


async def test_unknown_routes_answer_in_tosses_shape(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/v1/nowhere", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"
