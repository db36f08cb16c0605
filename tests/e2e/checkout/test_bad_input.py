"""Bad input on every endpoint: the one error envelope, the right HTTP status, and nothing written."""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt
import pytest

from .helpers import STUDY, Checkout, Shopper, assert_error_envelope, page_redirect


async def _assert_nothing_written(checkout: Checkout, shopper: Shopper, before: int) -> None:
    assert len(await checkout.list_items(shopper)) == before


# --- POST /api/payments/issue ---------------------------------------------------------------------

MALFORMED_BODIES: list[Any] = [
    pytest.param(b'{"productType": "STUDY", "productId": ', id="truncated-json"),
    pytest.param(b"productType=STUDY", id="not-json"),
    pytest.param(b"[]", id="array"),
    pytest.param(b'"STUDY"', id="string"),
    pytest.param(b"", id="empty"),
]


@pytest.mark.parametrize("raw", MALFORMED_BODIES)
async def test_issue_with_a_malformed_body_is_pay_000(checkout: Checkout, raw: bytes) -> None:
    shopper = checkout.shopper("malformed")

    response = await checkout.api.post(
        "/api/payments/issue", content=raw, headers={**shopper.auth, "Content-Type": "application/json"}
    )

    assert_error_envelope(response, 400, "PAY_000")
    await _assert_nothing_written(checkout, shopper, 0)


INVALID_FIELDS: list[Any] = [
    pytest.param({**STUDY, "amount": "50000"}, "amount", id="amount-as-string"),
    pytest.param({**STUDY, "amount": 50000.5}, "amount", id="amount-fraction"),
    pytest.param({**STUDY, "amount": True}, "amount", id="amount-bool"),
    pytest.param({**STUDY, "amount": 0}, "amount", id="amount-zero"),
    pytest.param({**STUDY, "amount": -50000}, "amount", id="amount-negative"),
    pytest.param({**STUDY, "amount": 10**20}, "amount", id="amount-huge"),
    pytest.param({**STUDY, "amount": None}, "amount", id="amount-null"),
    pytest.param({"productType": "STUDY", "productId": "study_123"}, "amount", id="amount-missing"),
    pytest.param({**STUDY, "productType": "BOOK"}, "productType", id="unknown-product-type"),
    pytest.param({**STUDY, "productType": 1}, "productType", id="product-type-number"),
    pytest.param({"productId": "study_123", "amount": 50000}, "productType", id="product-type-missing"),
    pytest.param({**STUDY, "productId": ""}, "productId", id="product-id-empty"),
    pytest.param({**STUDY, "productId": "x" * 51}, "productId", id="product-id-too-long"),
    pytest.param({**STUDY, "productId": 123}, "productId", id="product-id-number"),
    pytest.param({**STUDY, "orderName": "x" * 101}, "orderName", id="order-name-too-long"),
    pytest.param({**STUDY, "method": "BITCOIN"}, "method", id="unknown-method"),
    pytest.param({**STUDY, "metadata": ["a"]}, "metadata", id="metadata-array"),
    pytest.param({**STUDY, "metadata": {"blob": "x" * 5000}}, "metadata", id="metadata-over-4kb"),
    pytest.param({**STUDY, "userId": "someone-else"}, "userId", id="unknown-field"),
]


@pytest.mark.parametrize(("body", "field"), INVALID_FIELDS)
async def test_issue_with_an_invalid_field_is_pay_000_naming_the_field(
    checkout: Checkout, body: dict[str, Any], field: str
) -> None:
    shopper = checkout.shopper("invalid")

    response = await checkout.issue_response(shopper, body)

    envelope = assert_error_envelope(response, 400, "PAY_000")
    assert field in f"{envelope['message']} {envelope.get('details')}", envelope
    await _assert_nothing_written(checkout, shopper, 0)


async def test_issue_of_an_unknown_product_is_404_pay_008(checkout: Checkout) -> None:
    shopper = checkout.shopper("noproduct")

    response = await checkout.issue_response(shopper, {**STUDY, "productId": "study_does_not_exist"})

    assert_error_envelope(response, 404, "PAY_008")
    await _assert_nothing_written(checkout, shopper, 0)


async def test_issue_with_an_amount_other_than_the_price_is_pay_007(checkout: Checkout) -> None:
    shopper = checkout.shopper("price")

    response = await checkout.issue_response(shopper, {**STUDY, "amount": 100})

    envelope = assert_error_envelope(response, 400, "PAY_007")
    assert envelope["details"] == {"expectedAmount": 50_000}
    await _assert_nothing_written(checkout, shopper, 0)


async def test_issue_with_metadata_just_under_4kb_is_accepted(checkout: Checkout) -> None:
    shopper = checkout.shopper("meta")

    issued = await checkout.issue(shopper, {**STUDY, "metadata": {"blob": "x" * 4000}})

    assert (await checkout.detail(shopper, issued["transactionId"]))["metadata"] == {"blob": "x" * 4000}


async def test_issue_with_an_overlong_idempotency_key_is_pay_000(checkout: Checkout) -> None:
    shopper = checkout.shopper("longkey")

    response = await checkout.issue_response(shopper, STUDY, headers={"Idempotency-Key": "k" * 256})

    assert_error_envelope(response, 400, "PAY_000")
    await _assert_nothing_written(checkout, shopper, 0)


# --- authentication ---------------------------------------------------------------------------------


def _bad_authorizations(checkout: Checkout, user_id: str) -> dict[str, dict[str, str]]:
    now = int(time.time())
    forged = jwt.encode({"sub": user_id, "exp": now + 3600}, secrets.token_urlsafe(32), algorithm="HS256")
    unsigned = jwt.encode({"sub": user_id, "exp": now + 3600}, key="", algorithm="none")
    return {
        "missing": {},
        "bearer-without-token": {"Authorization": "Bearer"},
        "basic-scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
        "garbage": {"Authorization": "Bearer not.a.jwt"},
        "expired": {"Authorization": f"Bearer {checkout.tokens.mint(user_id, ttl_seconds=-60)}"},
        "forged": {"Authorization": f"Bearer {forged}"},
        "alg-none": {"Authorization": f"Bearer {unsigned}"},
    }


async def test_every_protected_endpoint_refuses_bad_tokens_with_auth_001(checkout: Checkout) -> None:
    shopper = checkout.shopper("auth")
    issued = await checkout.issue(shopper)
    tid = issued["transactionId"]
    requests: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", "/api/payments/issue", STUDY),
        ("GET", f"/api/payments/{tid}/status", None),
        ("GET", f"/api/payments/{tid}", None),
        ("GET", "/api/payments", None),
    ]

    for name, headers in _bad_authorizations(checkout, shopper.user_id).items():
        for method, path, body in requests:
            response = await checkout.api.request(method, path, json=body, headers=headers)
            assert response.status_code == 401, (name, method, path, response.text)
            assert_error_envelope(response, 401, "AUTH_001")

    assert [t["transactionId"] for t in await checkout.list_items(shopper)] == [tid]
    assert (await checkout.status(shopper, tid))["statusCode"] == 10


async def test_products_are_public(checkout: Checkout) -> None:
    response = await checkout.api.get("/api/products")

    assert response.status_code == 200
    items = {(p["productType"], p["productId"]): p["amount"] for p in response.json()["items"]}
    assert items[("STUDY", "study_123")] == 50_000
    assert items[("AI_RESUME", "resume_credit_10")] == 9_900


# --- reading transactions ---------------------------------------------------------------------------


async def test_another_users_transaction_does_not_exist_for_you(checkout: Checkout) -> None:
    owner, other = checkout.shopper("owner"), checkout.shopper("snoop")
    tid = (await checkout.issue(owner))["transactionId"]

    for path in (f"/api/payments/{tid}/status", f"/api/payments/{tid}"):
        response = await checkout.api.get(path, headers=other.auth)
        assert_error_envelope(response, 404, "PAY_008")
    assert await checkout.list_items(other) == []


async def test_unknown_transaction_is_404_pay_008(checkout: Checkout) -> None:
    shopper = checkout.shopper("unknown")
    tid = "TXN_20260101_" + secrets.token_urlsafe(16)

    for path in (f"/api/payments/{tid}/status", f"/api/payments/{tid}"):
        response = await checkout.api.get(path, headers=shopper.auth)
        assert_error_envelope(response, 404, "PAY_008")


async def test_overlong_transaction_id_gets_the_envelope(checkout: Checkout) -> None:
    shopper = checkout.shopper("longid")

    response = await checkout.api.get(f"/api/payments/{'x' * 65}/status", headers=shopper.auth)

    assert response.status_code in (400, 404)
    assert_error_envelope(
        response, response.status_code, "PAY_000" if response.status_code == 400 else "PAY_008"
    )


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"status": "PAID"}, id="unknown-status-name"),
        pytest.param({"status": "99"}, id="unknown-status-code"),
        pytest.param({"status": "CREATED,bogus"}, id="one-bad-in-a-list"),
        pytest.param({"status": "²"}, id="unicode-digit"),
        pytest.param({"limit": "0"}, id="limit-zero"),
        pytest.param({"limit": "101"}, id="limit-too-big"),
        pytest.param({"limit": "ten"}, id="limit-not-a-number"),
        pytest.param({"cursor": "c" * 201}, id="cursor-too-long"),
    ],
)
async def test_list_with_bad_query_is_pay_000(checkout: Checkout, params: dict[str, str]) -> None:
    shopper = checkout.shopper("listq")

    response = await checkout.api.get("/api/payments", params=params, headers=shopper.auth)

    assert_error_envelope(response, 400, "PAY_000")


async def test_list_filters_by_status_name_or_code(checkout: Checkout) -> None:
    shopper = checkout.shopper("filter")
    created = (await checkout.issue(shopper))["transactionId"]
    failed = (await checkout.issue(shopper))["transactionId"]
    page_redirect(
        await checkout.fail_callback(transactionId=failed, code="PAY_PROCESS_CANCELED", message="x")
    )

    async def ids(status: str) -> list[str]:
        response = await checkout.api.get("/api/payments", params={"status": status}, headers=shopper.auth)
        assert response.status_code == 200, response.text
        return [t["transactionId"] for t in response.json()["items"]]

    assert await ids("CREATED") == [created]
    assert await ids("41") == [failed]
    assert await ids("payment_failed") == [failed]
    assert await ids("10,41") == [failed, created]
    assert await ids("PAYMENT_SUCCESS") == []


async def test_list_pages_with_a_cursor(checkout: Checkout) -> None:
    shopper = checkout.shopper("pages")
    issued = [(await checkout.issue(shopper))["transactionId"] for _ in range(3)]

    first = await checkout.api.get("/api/payments", params={"limit": 2}, headers=shopper.auth)
    cursor = first.json()["nextCursor"]
    second = await checkout.api.get(
        "/api/payments", params={"limit": 2, "cursor": cursor}, headers=shopper.auth
    )

    assert cursor
    seen = [t["transactionId"] for t in first.json()["items"] + second.json()["items"]]
    assert seen == list(reversed(issued))
    assert second.json()["nextCursor"] is None


# --- callbacks (browser redirects: always a 302 to the frontend, never an error page) --------------


async def test_success_callback_without_parameters_goes_to_the_fail_page(checkout: Checkout) -> None:
    landed = page_redirect(await checkout.success_callback())

    assert landed.is_fail
    assert landed.params["code"] == "PAY_000"
    assert "transactionId" not in landed.params


async def test_success_callback_without_payment_key_writes_nothing(checkout: Checkout) -> None:
    shopper = checkout.shopper("nokey")
    issued = await checkout.issue(shopper)
    tid = issued["transactionId"]

    landed = page_redirect(await checkout.success_callback(orderId=tid, amount="50000"))

    assert landed.is_fail and landed.params["code"] == "PAY_000"
    status = await checkout.status(shopper, tid)
    assert status["statusCode"] == 10  # still payable
    assert await checkout.confirms(tid) == []


async def test_success_callback_for_an_unknown_order_is_pay_008(checkout: Checkout) -> None:
    landed = page_redirect(
        await checkout.success_callback(
            paymentKey="tviva20260101000000abcde",
            orderId="TXN_20260101_nope" + secrets.token_hex(4),
            amount="1",
        )
    )

    assert landed.is_fail
    assert landed.params["code"] == "PAY_008"
    assert "transactionId" not in landed.params


async def test_fail_callback_without_parameters_is_pay_000(checkout: Checkout) -> None:
    landed = page_redirect(await checkout.fail_callback())

    assert landed.is_fail and landed.params["code"] == landed.params["errorCode"] == "PAY_000"


async def test_fail_callback_for_an_unknown_transaction_is_pay_008(checkout: Checkout) -> None:
    landed = page_redirect(
        await checkout.fail_callback(transactionId="TXN_20260101_nope" + secrets.token_hex(4), code="X")
    )

    # No transaction of ours: the failure is ours, whatever code the redirect brought.
    assert landed.is_fail and landed.params["code"] == landed.params["errorCode"] == "PAY_008"
