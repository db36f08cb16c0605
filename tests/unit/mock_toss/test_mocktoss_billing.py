"""Automatic payments: the card-registration window and its test control, billing keys from an
authKey or from card data, charges (type BILLING) with the registered card's test-card behaviour,
key deletion, and Toss's error codes for each."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from litestar.testing import AsyncTestClient

from mock_toss.app import create_app
from mock_toss.auth import basic_auth_header
from mock_toss.config import (
    DEFAULT_CLIENT_KEY,
    DEFAULT_SECRET_KEY,
    DOCS_WIDGET_CLIENT_KEY,
    DOCS_WIDGET_SECRET_KEY,
    MockConfig,
)
from mock_toss.payments import PAYMENT_KEYS
from mock_toss.service import MockToss

AUTH = {"Authorization": basic_auth_header(DEFAULT_SECRET_KEY)}
WIDGET_AUTH = {"Authorization": basic_auth_header(DOCS_WIDGET_SECRET_KEY)}
CUSTOMER = "customer-7f3a9c"
BILLING_KEYS = (
    "mId",
    "customerKey",
    "authenticatedAt",
    "method",
    "billingKey",
    "card",
    "cardCompany",
    "cardNumber",
)
WINDOW = {
    "clientKey": DEFAULT_CLIENT_KEY,
    "customerKey": CUSTOMER,
    "successUrl": "http://shop.test/billing/success",
    "failUrl": "http://shop.test/billing/fail",
}


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient[Any]]:
    config = MockConfig(slow_confirm_seconds=0.05, webhook_urls=("http://merchant.test/hook",))
    mock = MockToss(config, webhook_transport=httpx.MockTransport(lambda request: httpx.Response(200)))
    async with AsyncTestClient(app=create_app(config, mock=mock)) as test_client:
        yield test_client


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


async def auth_key_for(client: AsyncTestClient[Any], customer_key: str = CUSTOMER, **extra: Any) -> str:
    response = await client.post("/_mock/billing-auth", json={**WINDOW, "customerKey": customer_key, **extra})
    assert response.status_code == 200, response.text
    auth_key = response.json()["authKey"]
    assert isinstance(auth_key, str)
    return auth_key


async def billing_key_for(
    client: AsyncTestClient[Any], customer_key: str = CUSTOMER, card_number: str | None = None
) -> str:
    extra = {"cardNumber": card_number} if card_number else {}
    auth_key = await auth_key_for(client, customer_key, **extra)
    response = await client.post(
        "/v1/billing/authorizations/issue",
        json={"authKey": auth_key, "customerKey": customer_key},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    billing_key: str = response.json()["billingKey"]
    return billing_key


async def charge(
    client: AsyncTestClient[Any],
    billing_key: str,
    order_id: str,
    customer_key: str = CUSTOMER,
    amount: int = 9900,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> httpx.Response:
    return await client.post(
        f"/v1/billing/{billing_key}",
        json={
            "customerKey": customer_key,
            "amount": amount,
            "orderId": order_id,
            "orderName": "월 구독",
            **extra,
        },
        headers=headers or AUTH,
    )


# ------------------------------------------------------------------ the registration window


async def test_the_window_shows_the_customer_and_a_test_card_field(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/billing-auth", params={**WINDOW, "customerName": "김토스"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert CUSTOMER in html and "김토스" in html and 'name="cardNumber"' in html
    assert 'value="register"' in html and 'value="cancel"' in html
    action = re.search(r'action="(/billing-auth/[^"]+)"', html)
    assert action is not None


async def submit(client: AsyncTestClient[Any], action: str, card_number: str = "4330000000000005") -> str:
    html = (await client.get("/billing-auth", params=WINDOW)).text
    match = re.search(r'action="(/billing-auth/[^"]+)"', html)
    assert match is not None
    response = await client.post(
        match.group(1), data={"action": action, "cardNumber": card_number}, follow_redirects=False
    )
    assert response.status_code == 303
    location: str = response.headers["location"]
    return location


async def test_registering_redirects_to_success_url_with_customer_key_and_auth_key(
    client: AsyncTestClient[Any],
) -> None:
    location = await submit(client, "register")
    assert location.startswith("http://shop.test/billing/success?")
    query = query_of(location)
    assert query["customerKey"] == CUSTOMER
    assert re.fullmatch(r"bln_[A-Za-z0-9]{11}", query["authKey"])
    issued = await client.post(
        "/v1/billing/authorizations/issue",
        json={"authKey": query["authKey"], "customerKey": CUSTOMER},
        headers=AUTH,
    )
    assert issued.status_code == 200


@pytest.mark.parametrize(
    ("action", "card_number", "code"),
    [
        ("cancel", "4330000000000005", "PAY_PROCESS_CANCELED"),
        ("register", "1234", "INVALID_CARD_NUMBER"),
        ("register", "4330000000000062", "REJECT_CARD_COMPANY"),
    ],
)
async def test_window_failures_go_to_fail_url_with_code_and_message(
    client: AsyncTestClient[Any], action: str, card_number: str, code: str
) -> None:
    location = await submit(client, action, card_number)
    assert location.startswith("http://shop.test/billing/fail?")
    query = query_of(location)
    assert query["code"] == code and query["message"] and "orderId" not in query


async def test_a_double_submit_gives_the_same_auth_key_and_an_old_window_is_aborted(
    client: AsyncTestClient[Any],
) -> None:
    html = (await client.get("/billing-auth", params=WINDOW)).text
    match = re.search(r'action="(/billing-auth/[^"]+)"', html)
    assert match is not None
    first = await client.post(match.group(1), data={"action": "register"}, follow_redirects=False)
    second = await client.post(match.group(1), data={"action": "register"}, follow_redirects=False)
    assert first.headers["location"] == second.headers["location"]
    stale = re.search(
        r'action="(/billing-auth/[^"]+)"', (await client.get("/billing-auth", params=WINDOW)).text
    )
    assert stale is not None
    await client.post("/_mock/clock", json={"advanceSeconds": 31 * 60})
    aborted = await client.post(stale.group(1), data={"action": "register"}, follow_redirects=False)
    assert query_of(aborted.headers["location"])["code"] == "PAY_PROCESS_ABORTED"
    unknown = await client.post(
        "/billing-auth/bauth_nope", data={"action": "register"}, follow_redirects=False
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"clientKey": "test_ck_unknown"}, "INVALID_CLIENT_KEY"),
        ({"clientKey": DOCS_WIDGET_CLIENT_KEY}, "INVALID_CLIENT_KEY"),
        ({"customerKey": "x"}, "INVALID_CUSTOMER_KEY"),
        ({"customerKey": "has space"}, "INVALID_CUSTOMER_KEY"),
        ({"customerKey": "@@ANONYMOUS"}, "INVALID_CUSTOMER_KEY"),
        ({"successUrl": "/relative"}, "INCORRECT_SUCCESS_URL_FORMAT"),
        ({"failUrl": "ftp://shop.test/f"}, "INCORRECT_FAIL_URL_FORMAT"),
        ({"customerEmail": "nope"}, "INVALID_EMAIL"),
    ],
)
async def test_invalid_window_requests_answer_400_without_a_redirect(
    client: AsyncTestClient[Any], overrides: dict[str, str], code: str
) -> None:
    response = await client.get("/billing-auth", params={**WINDOW, **overrides})
    assert (response.status_code, response.json()["code"]) == (400, code)
    control = await client.post("/_mock/billing-auth", json={**WINDOW, **overrides})
    assert (control.status_code, control.json()["code"]) == (400, code)


async def test_the_control_registers_or_cancels_for_programs(client: AsyncTestClient[Any]) -> None:
    registered = (await client.post("/_mock/billing-auth", json={**WINDOW, "action": "register"})).json()
    assert registered["authKey"] and query_of(registered["redirectUrl"])["authKey"] == registered["authKey"]
    canceled = (await client.post("/_mock/billing-auth", json={**WINDOW, "action": "cancel"})).json()
    assert canceled["authKey"] is None
    assert query_of(canceled["redirectUrl"])["code"] == "PAY_PROCESS_CANCELED"
    bad = await client.post("/_mock/billing-auth", json={**WINDOW, "action": "approve-please"})
    assert (bad.status_code, bad.json()["code"]) == (400, "INVALID_REQUEST")
    assert (await client.post("/_mock/billing-auth", content=b"nope")).status_code == 400


# ------------------------------------------------------------------ billing keys


async def test_an_auth_key_becomes_a_billing_key_once(client: AsyncTestClient[Any]) -> None:
    auth_key = await auth_key_for(client, cardNumber="4330-1234-5678-9012")
    response = await client.post(
        "/v1/billing/authorizations/issue", json={"authKey": auth_key, "customerKey": CUSTOMER}, headers=AUTH
    )
    assert response.status_code == 200
    billing = response.json()
    assert tuple(billing) == BILLING_KEYS
    assert (billing["mId"], billing["customerKey"], billing["method"]) == ("tosspayments", CUSTOMER, "카드")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}=", billing["billingKey"])
    assert billing["card"] == {
        "issuerCode": "11",
        "acquirerCode": "11",
        "number": "43301234****901*",
        "cardType": "신용",
        "ownerType": "개인",
    }
    assert (billing["cardCompany"], billing["cardNumber"]) == ("국민", "43301234****901*")
    assert billing["authenticatedAt"].endswith("+09:00")
    again = await client.post(
        "/v1/billing/authorizations/issue", json={"authKey": auth_key, "customerKey": CUSTOMER}, headers=AUTH
    )
    assert (again.status_code, again.json()["code"]) == (404, "NOT_FOUND_BILLING")


async def test_an_auth_key_is_bound_to_its_customer_key(client: AsyncTestClient[Any]) -> None:
    auth_key = await auth_key_for(client)
    wrong = await client.post(
        "/v1/billing/authorizations/issue",
        json={"authKey": auth_key, "customerKey": "someone-else"},
        headers=AUTH,
    )
    assert (wrong.status_code, wrong.json()["code"]) == (400, "NOT_MATCHES_CUSTOMER_KEY")
    right = await client.post(
        "/v1/billing/authorizations/issue", json={"authKey": auth_key, "customerKey": CUSTOMER}, headers=AUTH
    )
    assert right.status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"customerKey": CUSTOMER}, 400, "INVALID_REQUEST"),
        ({"authKey": "bln_x"}, 400, "INVALID_REQUEST"),
        ({"authKey": "bln_unknown0000", "customerKey": CUSTOMER}, 404, "NOT_FOUND_BILLING"),
        ({"authKey": "bln_unknown0000", "customerKey": "a"}, 400, "INVALID_CUSTOMER_KEY"),
    ],
)
async def test_issue_errors(
    client: AsyncTestClient[Any], body: dict[str, str], status: int, code: str
) -> None:
    response = await client.post("/v1/billing/authorizations/issue", json=body, headers=AUTH)
    assert (response.status_code, response.json()["code"]) == (status, code)


async def test_another_key_pair_cannot_use_the_auth_key_or_the_billing_key(
    client: AsyncTestClient[Any],
) -> None:
    auth_key = await auth_key_for(client)
    response = await client.post(
        "/v1/billing/authorizations/issue",
        json={"authKey": auth_key, "customerKey": CUSTOMER},
        headers=WIDGET_AUTH,
    )
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_API_KEY")
    billing_key = await billing_key_for(client, "customer-pair")
    foreign = await charge(client, billing_key, "order-pair-1", "customer-pair", headers=WIDGET_AUTH)
    assert foreign.json()["code"] == "INVALID_API_KEY"


def card_body(**overrides: Any) -> dict[str, Any]:
    return {
        "customerKey": CUSTOMER,
        "cardNumber": "4330000000000005",
        "cardExpirationYear": "39",
        "cardExpirationMonth": "01",
        "customerIdentityNumber": "1234567890",
        **overrides,
    }


async def test_a_billing_key_from_card_data(client: AsyncTestClient[Any]) -> None:
    response = await client.post("/v1/billing/authorizations/card", json=card_body(), headers=AUTH)
    assert response.status_code == 200
    billing = response.json()
    assert tuple(billing) == BILLING_KEYS and billing["card"]["ownerType"] == "법인"
    payment = (await charge(client, billing["billingKey"], "order-bycard-1")).json()
    assert (payment["status"], payment["card"]["ownerType"]) == ("DONE", "법인")


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"customerKey": None}, 400, "INVALID_REQUEST"),
        ({"cardNumber": "12"}, 400, "INVALID_CARD_NUMBER"),
        ({"cardExpirationYear": "19"}, 400, "INVALID_CARD_EXPIRATION"),
        ({"customerIdentityNumber": "123"}, 400, "INVALID_BIRTH_DAY_FORMAT"),
        ({"cardPassword": "1"}, 400, "INVALID_CARD_PASSWORD"),
        ({"cardNumber": "4330000000000062"}, 403, "REJECT_CARD_COMPANY"),
    ],
)
async def test_card_data_errors(
    client: AsyncTestClient[Any], overrides: dict[str, Any], status: int, code: str
) -> None:
    body = {name: value for name, value in card_body(**overrides).items() if value is not None}
    response = await client.post("/v1/billing/authorizations/card", json=body, headers=AUTH)
    assert (response.status_code, response.json()["code"]) == (status, code)


# ------------------------------------------------------------------ charges


async def test_a_charge_is_a_done_billing_payment_like_any_other(client: AsyncTestClient[Any]) -> None:
    billing_key = await billing_key_for(client)
    response = await charge(client, billing_key, "order-sub-1", customerName="김토스", taxFreeAmount=900)
    assert response.status_code == 200, response.text
    payment = response.json()
    assert tuple(payment) == PAYMENT_KEYS
    assert (payment["type"], payment["method"], payment["status"]) == ("BILLING", "카드", "DONE")
    assert (payment["totalAmount"], payment["taxFreeAmount"], payment["card"]["number"]) == (
        9900,
        900,
        "43300000****000*",
    )
    lookup = await client.get(f"/v1/payments/{payment['paymentKey']}", headers=AUTH)
    assert lookup.json() == payment
    kept = client.app.state.mock.store.get(payment["paymentKey"])
    assert kept.customer_key == CUSTOMER  # not in Toss's Payment object; kept for transactions
    canceled = await client.post(
        f"/v1/payments/{payment['paymentKey']}/cancel",
        json={"cancelReason": "구독 해지 환불", "cancelAmount": 4900},
        headers=AUTH,
    )
    assert (canceled.json()["status"], canceled.json()["type"]) == ("PARTIAL_CANCELED", "BILLING")
    hooks = (await client.get("/_mock/webhooks", params={"orderId": "order-sub-1"})).json()["webhooks"]
    assert [hook["body"]["data"]["status"] for hook in hooks] == ["DONE", "PARTIAL_CANCELED"]
    assert hooks[0]["body"]["data"]["type"] == "BILLING"


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"customerKey": None}, 400, "INVALID_REQUEST"),
        ({"amount": None}, 400, "INVALID_REQUEST"),
        ({"orderId": None}, 400, "INVALID_REQUEST"),
        ({"orderName": None}, 400, "INVALID_REQUEST"),
        ({"amount": 50}, 400, "BELOW_MINIMUM_AMOUNT"),
        ({"orderId": "bad id!"}, 400, "INVALID_ORDER_ID"),
        ({"customerKey": "someone-else"}, 400, "NOT_MATCHES_CUSTOMER_KEY"),
        ({"cardInstallmentPlan": 1}, 400, "INVALID_CARD_INSTALLMENT_PLAN"),
        ({"customerEmail": "a@"}, 400, "INVALID_EMAIL"),
    ],
)
async def test_charge_errors(
    client: AsyncTestClient[Any], overrides: dict[str, Any], status: int, code: str
) -> None:
    billing_key = await billing_key_for(client)
    body = {
        "customerKey": CUSTOMER,
        "amount": 9900,
        "orderId": "order-err-1",
        "orderName": "월 구독",
        **overrides,
    }
    body = {name: value for name, value in body.items() if value is not None}
    response = await client.post(f"/v1/billing/{billing_key}", json=body, headers=AUTH)
    assert (response.status_code, response.json()["code"]) == (status, code)


async def test_an_unknown_billing_key_and_a_used_order_id(client: AsyncTestClient[Any]) -> None:
    unknown = await charge(client, "not-a-billing-key=", "order-unknown-1")
    assert (unknown.status_code, unknown.json()["code"]) == (400, "INVALID_BILL_KEY_REQUEST")
    billing_key = await billing_key_for(client)
    assert (await charge(client, billing_key, "order-twice-1")).status_code == 200
    assert (await charge(client, billing_key, "order-twice-1")).json()["code"] == "DUPLICATED_ORDER_ID"


async def test_a_key_registered_with_the_reject_card_declines_every_charge(
    client: AsyncTestClient[Any],
) -> None:
    billing_key = await billing_key_for(client, card_number="4330000000000013")
    for order_id in ("order-poor-1", "order-poor-2"):
        response = await charge(client, billing_key, order_id)
        assert (response.status_code, response.json()["code"]) == (403, "REJECT_CARD_PAYMENT")
        payment = (await client.get(f"/v1/payments/orders/{order_id}", headers=AUTH)).json()
        assert (payment["status"], payment["type"], payment["failure"]["code"]) == (
            "ABORTED",
            "BILLING",
            "REJECT_CARD_PAYMENT",
        )


async def test_the_fail_once_card_fails_each_order_once(client: AsyncTestClient[Any]) -> None:
    billing_key = await billing_key_for(client, card_number="4330000000000054")
    assert (await charge(client, billing_key, "order-once-1")).status_code == 500
    assert (await charge(client, billing_key, "order-once-1")).json()["status"] == "DONE"
    assert (await charge(client, billing_key, "order-once-2")).status_code == 500


async def test_the_card_behind_a_key_can_be_changed_by_the_test_control(client: AsyncTestClient[Any]) -> None:
    billing_key = await billing_key_for(client)
    changed = await client.post(f"/_mock/billing/{billing_key}/card", json={"cardNumber": "4330000000000013"})
    assert (changed.status_code, changed.json()["billingKey"]) == (200, billing_key)
    assert (await charge(client, billing_key, "order-changed-1")).json()["code"] == "REJECT_CARD_PAYMENT"
    await client.post(f"/_mock/billing/{billing_key}/card", json={"cardNumber": "4330000000000005"})
    assert (await charge(client, billing_key, "order-changed-2")).json()["status"] == "DONE"
    malformed = await client.post(f"/_mock/billing/{billing_key}/card", json={"cardNumber": "12"})
    assert malformed.json()["code"] == "INVALID_CARD_NUMBER"
    unknown = await client.post("/_mock/billing/nope/card", json={"cardNumber": "4330000000000005"})
    assert unknown.json()["code"] == "BILLING_KEY_NOT_FOUND"


# ------------------------------------------------------------------ deletion


async def test_deleting_a_billing_key(client: AsyncTestClient[Any]) -> None:
    billing_key = await billing_key_for(client)
    deleted = await client.delete(f"/v1/billing/{billing_key}", headers=AUTH)
    assert (deleted.status_code, deleted.content) == (200, b"")
    again = await client.delete(f"/v1/billing/{billing_key}", headers=AUTH)
    assert (again.status_code, again.json()["code"]) == (400, "BILLING_KEY_NOT_FOUND")
    after = await charge(client, billing_key, "order-after-delete-1")
    assert (after.status_code, after.json()["code"]) == (400, "INVALID_BILL_KEY_REQUEST")
    without_key = await client.delete(f"/v1/billing/{billing_key}")
    assert without_key.status_code == 401
    journal = (await client.get("/_mock/requests", params={"method": "DELETE"})).json()["requests"]
    assert [entry["status"] for entry in journal] == [200, 400, 401]


async def test_reset_forgets_billing_keys_and_auth_keys(client: AsyncTestClient[Any]) -> None:
    billing_key = await billing_key_for(client)
    auth_key = await auth_key_for(client)
    await client.post("/_mock/reset")
    assert (await charge(client, billing_key, "order-reset-1")).json()["code"] == "INVALID_BILL_KEY_REQUEST"
    issued = await client.post(
        "/v1/billing/authorizations/issue", json={"authKey": auth_key, "customerKey": CUSTOMER}, headers=AUTH
    )
    assert issued.json()["code"] == "NOT_FOUND_BILLING"
