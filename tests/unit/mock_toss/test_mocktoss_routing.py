"""Routing like Toss: auth before anything on every /v1 request, unknown paths and methods in
Toss's shape and in the journal, static routes before path parameters, the legacy confirm."""

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
    async with AsyncTestClient(app=create_app(MockConfig())) as test_client:
        yield test_client


async def journal(client: AsyncTestClient[Any], **filters: str) -> list[dict[str, Any]]:
    response = await client.get("/_mock/requests", params=filters)
    assert response.status_code == 200
    entries: list[dict[str, Any]] = response.json()["requests"]
    return entries


async def authenticated(client: AsyncTestClient[Any], order_id: str, amount: int = 15000) -> str:
    response = await client.post(
        "/_mock/checkout",
        json={
            "clientKey": DEFAULT_CLIENT_KEY,
            "orderId": order_id,
            "amount": amount,
            "orderName": "스터디 등록",
            "successUrl": "http://shop.test/success",
            "failUrl": "http://shop.test/fail",
        },
    )
    payment_key: str = response.json()["paymentKey"]
    return payment_key


async def test_an_unknown_api_path_checks_the_key_first_and_is_journaled(
    client: AsyncTestClient[Any],
) -> None:
    without_key = await client.post("/v1/nowhere/at-all", json={"a": 1})
    assert (without_key.status_code, without_key.json()["code"]) == (401, "UNAUTHORIZED_KEY")
    malformed = await client.get("/v1/nowhere", headers={"Authorization": "Bearer x"})
    assert (malformed.status_code, malformed.json()["code"]) == (403, "INCORRECT_BASIC_AUTH_FORMAT")
    with_key = await client.get("/v1/nowhere", headers={**AUTH, "Accept-Language": "en-US"})
    assert with_key.status_code == 404
    assert with_key.json() == {"code": "NOT_FOUND", "message": "The requested information does not exist."}
    entries = await journal(client, path="/v1/nowhere*")
    assert [(entry["method"], entry["path"], entry["status"]) for entry in entries] == [
        ("POST", "/v1/nowhere/at-all", 401),
        ("GET", "/v1/nowhere", 403),
        ("GET", "/v1/nowhere", 404),
    ]
    assert entries[0]["body"] == {"a": 1} and entries[2]["durationMs"] is not None


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/v1/payments/tviva_any"),
        ("PUT", "/v1/payments/tviva_any/cancel"),
        ("GET", "/v1/payments/confirm"),
        ("GET", "/v1/payments/key-in"),
        ("PATCH", "/v1/billing/some-billing-key"),
        ("GET", "/v1/billing/authorizations/issue"),
        ("DELETE", "/v1/cash-receipts"),
        ("POST", "/v1/payments/orders/order-1"),
        ("POST", "/v1"),
    ],
)
async def test_a_method_a_known_path_lacks_is_not_found_http_method_after_auth(
    client: AsyncTestClient[Any], method: str, path: str
) -> None:
    without_key = await client.request(method, path)
    assert (without_key.status_code, without_key.json()["code"]) == (401, "UNAUTHORIZED_KEY")
    response = await client.request(method, path, headers=AUTH)
    assert response.status_code == 404
    assert response.json() == {
        "code": "NOT_FOUND_HTTP_METHOD",
        "message": "존재하지 않는 HTTP 메소드 접근입니다.",
    }
    assert [entry["status"] for entry in await journal(client, path=path, method=method)] == [401, 404]


async def test_an_unknown_route_ignores_the_test_code_header(client: AsyncTestClient[Any]) -> None:
    # Toss's router answers before the test code applies; on a real route the code wins.
    headers = {**AUTH, "TossPayments-Test-Code": "REJECT_CARD_COMPANY"}
    assert (await client.get("/v1/nowhere", headers=headers)).json()["code"] == "NOT_FOUND"
    assert (await client.get("/v1/payments/tviva_x", headers=headers)).json()["code"] == "REJECT_CARD_COMPANY"


async def test_static_routes_win_over_the_payment_key_parameter(client: AsyncTestClient[Any]) -> None:
    # POST /v1/payments/key-in reaches key-in (its own validation), not the paymentKey routes.
    response = await client.post("/v1/payments/key-in", json={}, headers=AUTH)
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_REQUEST")
    lookup = await client.get("/v1/payments/orders/unknown-order", headers=AUTH)
    assert lookup.json()["code"] == "NOT_FOUND_PAYMENT"


async def test_the_sdk_script_and_test_controls_stay_outside_the_api(client: AsyncTestClient[Any]) -> None:
    assert (await client.get("/v1")).status_code == 200  # the v1 SDK script, no key
    unknown_control = await client.get("/_mock/nowhere")
    assert (unknown_control.status_code, unknown_control.json()["code"]) == (404, "NOT_FOUND")
    assert await journal(client) == []


async def test_the_legacy_confirm_path_confirms(client: AsyncTestClient[Any]) -> None:
    payment_key = await authenticated(client, "order-legacy-1")
    wrong = await client.post(
        f"/v1/payments/{payment_key}", json={"orderId": "order-legacy-1", "amount": 1}, headers=AUTH
    )
    assert (wrong.status_code, wrong.json()["code"]) == (400, "INVALID_REQUEST")
    response = await client.post(
        f"/v1/payments/{payment_key}", json={"orderId": "order-legacy-1", "amount": 15000}, headers=AUTH
    )
    assert response.status_code == 200
    payment = response.json()
    assert tuple(payment) == PAYMENT_KEYS
    assert (payment["status"], payment["paymentKey"]) == ("DONE", payment_key)
    again = await client.post(
        f"/v1/payments/{payment_key}", json={"orderId": "order-legacy-1", "amount": 15000}, headers=AUTH
    )
    assert again.json()["code"] == "ALREADY_PROCESSED_PAYMENT"
    entries = await journal(client, path=f"/v1/payments/{payment_key}", method="POST")
    assert [(entry["orderId"], entry["paymentKey"], entry["status"]) for entry in entries] == [
        ("order-legacy-1", payment_key, 400),
        ("order-legacy-1", payment_key, 200),
        ("order-legacy-1", payment_key, 400),
    ]
    unknown = await client.post(
        "/v1/payments/tviva_unknown", json={"orderId": "order-legacy-1", "amount": 15000}, headers=AUTH
    )
    assert unknown.json()["code"] == "NOT_FOUND_PAYMENT_SESSION"


async def test_chaos_star_covers_the_new_write_routes(client: AsyncTestClient[Any]) -> None:
    chaos = await client.put("/_mock/chaos", json={"seed": 3, "routes": {"*": {"errorRate": 1.0}}})
    assert set(chaos.json()["routes"]) >= {"key-in", "billing", "cash-receipts"}
    response = await client.post("/v1/payments/key-in", json={}, headers=AUTH)
    assert (response.status_code, response.json()["code"]) == (500, "FAILED_INTERNAL_SYSTEM_PROCESSING")
    listing = await client.get("/v1/cash-receipts", params={"requestDate": "2024-01-01"}, headers=AUTH)
    assert listing.status_code == 200  # a GET: only "lookup" names it
