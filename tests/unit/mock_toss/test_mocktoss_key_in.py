"""Key-in payments (`POST /v1/payments/key-in`): approved at once, test cards, Toss's validation
codes, DUPLICATED_ORDER_ID, Idempotency-Key, lookups, cancels and webhooks like any payment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from mock_toss.app import create_app
from mock_toss.auth import basic_auth_header
from mock_toss.config import DEFAULT_CLIENT_KEY, DEFAULT_SECRET_KEY, MockConfig
from mock_toss.payments import PAYMENT_KEYS
from mock_toss.service import MockToss

AUTH = {"Authorization": basic_auth_header(DEFAULT_SECRET_KEY)}
HOOK = "http://merchant.test/hook"


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient[Any]]:
    config = MockConfig(slow_confirm_seconds=0.05, webhook_urls=(HOOK,))
    mock = MockToss(config, webhook_transport=httpx.MockTransport(lambda request: httpx.Response(200)))
    async with AsyncTestClient(app=create_app(config, mock=mock)) as test_client:
        yield test_client


def key_in_body(order_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "amount": 15000,
        "orderId": order_id,
        "orderName": "AI 이력서 크레딧 10회",
        "cardNumber": "4330000000000005",
        "cardExpirationYear": "39",
        "cardExpirationMonth": "12",
        "customerIdentityNumber": "900101",
    }
    body.update(overrides)
    return {name: value for name, value in body.items() if value is not None}


async def key_in(client: AsyncTestClient[Any], order_id: str, **overrides: Any) -> httpx.Response:
    return await client.post("/v1/payments/key-in", json=key_in_body(order_id, **overrides), headers=AUTH)


async def test_a_key_in_payment_is_done_at_once_with_its_card(client: AsyncTestClient[Any]) -> None:
    response = await key_in(client, "keyin-ok-1", customerName="김토스", cardPassword="12")
    assert response.status_code == 200, response.text
    payment = response.json()
    assert tuple(payment) == PAYMENT_KEYS
    assert (payment["status"], payment["method"], payment["type"]) == ("DONE", "카드", "NORMAL")
    assert payment["approvedAt"] is not None and payment["receipt"] is not None
    card = payment["card"]
    assert (card["number"], card["installmentPlanMonths"], card["ownerType"], card["amount"]) == (
        "43300000****000*",
        0,
        "개인",
        15000,
    )
    assert (payment["suppliedAmount"], payment["vat"]) == (13636, 1364)
    by_key = await client.get(f"/v1/payments/{payment['paymentKey']}", headers=AUTH)
    by_order = await client.get("/v1/payments/orders/keyin-ok-1", headers=AUTH)
    assert by_key.json() == by_order.json() == payment


async def test_installments_business_cards_and_tax_free_amounts(client: AsyncTestClient[Any]) -> None:
    response = await key_in(
        client,
        "keyin-plan-1",
        amount=60000,
        cardInstallmentPlan=3,
        useFreeInstallmentPlan=True,
        customerIdentityNumber="1234567890",
        taxFreeAmount=5000,
    )
    payment = response.json()
    card = payment["card"]
    assert (card["installmentPlanMonths"], card["isInterestFree"], card["interestPayer"]) == (
        3,
        True,
        "CARD_COMPANY",
    )
    assert card["ownerType"] == "법인"
    assert (payment["taxFreeAmount"], payment["vat"]) == (5000, 5000)
    plain = (await key_in(client, "keyin-plan-2", amount=60000, cardInstallmentPlan=2)).json()["card"]
    assert (plain["isInterestFree"], plain["interestPayer"]) == (False, "BUYER")


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"amount": None}, 400, "INVALID_REQUEST"),
        ({"orderName": None}, 400, "INVALID_REQUEST"),
        ({"cardNumber": None}, 400, "INVALID_REQUEST"),
        ({"cardExpirationYear": None}, 400, "INVALID_REQUEST"),
        ({"cardExpirationMonth": None}, 400, "INVALID_REQUEST"),
        ({"customerIdentityNumber": None}, 400, "INVALID_REQUEST"),
        ({"amount": "15000"}, 400, "INVALID_REQUEST"),
        ({"amount": 0}, 400, "BELOW_ZERO_AMOUNT"),
        ({"amount": 99}, 400, "BELOW_MINIMUM_AMOUNT"),
        ({"orderId": "short"}, 400, "INVALID_ORDER_ID"),
        ({"orderName": "x" * 101}, 400, "INVALID_ORDER_NAME"),
        ({"cardNumber": "4330-0000"}, 400, "INVALID_CARD_NUMBER"),
        ({"cardNumber": ""}, 400, "INVALID_CARD_NUMBER"),
        ({"cardExpirationMonth": "13"}, 400, "INVALID_CARD_EXPIRATION"),
        ({"cardExpirationMonth": "1"}, 400, "INVALID_CARD_EXPIRATION"),
        ({"cardExpirationYear": "20"}, 400, "INVALID_CARD_EXPIRATION"),
        ({"customerIdentityNumber": "12345"}, 400, "INVALID_BIRTH_DAY_FORMAT"),
        ({"customerIdentityNumber": "991332"}, 400, "INVALID_BIRTH_DAY_FORMAT"),
        ({"customerIdentityNumber": "12345678901"}, 400, "INVALID_BIRTH_DAY_FORMAT"),
        ({"cardPassword": "123"}, 400, "INVALID_CARD_PASSWORD"),
        ({"cardInstallmentPlan": 1}, 400, "INVALID_CARD_INSTALLMENT_PLAN"),
        ({"cardInstallmentPlan": 13}, 400, "INVALID_CARD_INSTALLMENT_PLAN"),
        ({"cardInstallmentPlan": 3}, 400, "NOT_SUPPORTED_MONTHLY_INSTALLMENT_PLAN_BELOW_AMOUNT"),
        ({"taxFreeAmount": 20000}, 400, "INVALID_REQUEST"),
        ({"customerEmail": "not-an-email"}, 400, "INVALID_EMAIL"),
        ({"customerName": "x" * 101}, 400, "INVALID_REQUEST"),
    ],
)
async def test_invalid_requests_get_tosses_codes_and_create_nothing(
    client: AsyncTestClient[Any], overrides: dict[str, Any], status: int, code: str
) -> None:
    body = key_in_body("keyin-bad-1", **overrides)
    for name, value in overrides.items():
        if value is None:
            body.pop(name, None)
    response = await client.post("/v1/payments/key-in", json=body, headers=AUTH)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert (await client.get("/v1/payments/orders/keyin-bad-1", headers=AUTH)).status_code == 404


async def test_a_body_that_is_not_an_object_is_an_invalid_request(client: AsyncTestClient[Any]) -> None:
    response = await client.post("/v1/payments/key-in", content=b"[1]", headers=AUTH)
    assert response.json()["code"] == "INVALID_REQUEST"


@pytest.mark.parametrize(
    ("card_number", "status", "code"),
    [
        ("4330000000000013", 403, "REJECT_CARD_PAYMENT"),
        ("4330000000000021", 400, "INVALID_CARD_EXPIRATION"),
        ("4330000000000062", 403, "REJECT_CARD_COMPANY"),
    ],
)
async def test_declining_test_cards_leave_an_aborted_payment(
    client: AsyncTestClient[Any], card_number: str, status: int, code: str
) -> None:
    response = await key_in(client, "keyin-decline-1", cardNumber=card_number)
    assert (response.status_code, response.json()["code"]) == (status, code)
    payment = (await client.get("/v1/payments/orders/keyin-decline-1", headers=AUTH)).json()
    assert (payment["status"], payment["failure"]["code"], payment["approvedAt"]) == ("ABORTED", code, None)
    again = await key_in(client, "keyin-decline-1")
    assert again.json()["code"] == "DUPLICATED_ORDER_ID"


async def test_the_provider_error_card_keeps_nothing_and_the_order_can_be_retried(
    client: AsyncTestClient[Any],
) -> None:
    response = await key_in(client, "keyin-provider-1", cardNumber="4330000000000039")
    assert (response.status_code, response.json()["code"]) == (400, "PROVIDER_ERROR")
    assert (await client.get("/v1/payments/orders/keyin-provider-1", headers=AUTH)).status_code == 404
    assert (await key_in(client, "keyin-provider-1")).json()["status"] == "DONE"


async def test_the_fail_once_card_fails_the_first_time_an_order_is_charged(
    client: AsyncTestClient[Any],
) -> None:
    headers = {**AUTH, "Idempotency-Key": "keyin-retry-key-1"}
    body = key_in_body("keyin-once-1", cardNumber="4330000000000054")
    first = await client.post("/v1/payments/key-in", json=body, headers=headers)
    assert (first.status_code, first.json()["code"]) == (500, "FAILED_INTERNAL_SYSTEM_PROCESSING")
    retry = await client.post("/v1/payments/key-in", json=body, headers=headers)  # 5xx is not replayed
    assert (retry.status_code, retry.json()["status"]) == (200, "DONE")


async def test_the_slow_card_answers_late_with_a_done_payment(client: AsyncTestClient[Any]) -> None:
    response = await key_in(client, "keyin-slow-1", cardNumber="4330000000000047")
    assert response.json()["status"] == "DONE"


async def test_a_used_order_id_is_a_duplicate_even_from_the_window(client: AsyncTestClient[Any]) -> None:
    assert (await key_in(client, "keyin-dup-1")).status_code == 200
    assert (await key_in(client, "keyin-dup-1")).json()["code"] == "DUPLICATED_ORDER_ID"
    window = await client.post(
        "/_mock/checkout",
        json={
            "clientKey": DEFAULT_CLIENT_KEY,
            "orderId": "keyin-dup-2",
            "amount": 15000,
            "orderName": "창 결제",
            "successUrl": "http://shop.test/s",
            "failUrl": "http://shop.test/f",
        },
    )
    assert window.status_code == 200
    assert (await key_in(client, "keyin-dup-2")).json()["code"] == "DUPLICATED_ORDER_ID"


async def test_idempotency_key_replays_the_first_answer(client: AsyncTestClient[Any]) -> None:
    headers = {**AUTH, "Idempotency-Key": "keyin-idem-1"}
    first = await client.post("/v1/payments/key-in", json=key_in_body("keyin-idem-1"), headers=headers)
    second = await client.post("/v1/payments/key-in", json=key_in_body("keyin-idem-1"), headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    fresh = await client.post("/v1/payments/key-in", json=key_in_body("keyin-idem-1"), headers=AUTH)
    assert fresh.json()["code"] == "DUPLICATED_ORDER_ID"


async def test_test_codes_apply_before_validation(client: AsyncTestClient[Any]) -> None:
    headers = {**AUTH, "TossPayments-Test-Code": "INVALID_STOPPED_CARD"}
    response = await client.post("/v1/payments/key-in", json={}, headers=headers)
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_STOPPED_CARD")


async def test_key_in_payments_cancel_and_send_webhooks_like_any_payment(
    client: AsyncTestClient[Any],
) -> None:
    payment = (await key_in(client, "keyin-cancel-1")).json()
    canceled = await client.post(
        f"/v1/payments/{payment['paymentKey']}/cancel", json={"cancelReason": "고객 변심"}, headers=AUTH
    )
    assert (canceled.json()["status"], canceled.json()["card"]["acquireStatus"]) == ("CANCELED", "CANCELED")
    await key_in(client, "keyin-cancel-2", cardNumber="4330000000000013")
    hooks = (await client.get("/_mock/webhooks", params={"eventType": "PAYMENT_STATUS_CHANGED"})).json()
    statuses = [(hook["orderId"], hook["body"]["data"]["status"]) for hook in hooks["webhooks"]]
    assert statuses == [
        ("keyin-cancel-1", "DONE"),
        ("keyin-cancel-1", "CANCELED"),
        ("keyin-cancel-2", "ABORTED"),
    ]
    journal = (await client.get("/_mock/requests", params={"path": "/v1/payments/key-in"})).json()
    assert [entry["orderId"] for entry in journal["requests"]] == ["keyin-cancel-1", "keyin-cancel-2"]
