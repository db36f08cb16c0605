"""The Toss API of the mock, over HTTP against the real process: auth, confirm, lookup, test cards."""

from __future__ import annotations

import asyncio
import base64
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from mock_toss.payments import PAYMENT_KEYS
from tests.e2e.mock_toss.helpers import (
    SLOW_CONFIRM_SECONDS,
    authenticate_payment,
    confirm,
    confirmed_payment,
    eventually,
)
from tests.support.servers import RunningServer

TOSS_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+09:00")


def basic(raw: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "UNAUTHORIZED_KEY"),
        (basic("test_sk_somebodyElsesKey0000000:"), 401, "UNAUTHORIZED_KEY"),
        (basic("live_sk_zXLkKEypNArWmo50nX3lmeaxYG5R:"), 401, "UNAUTHORIZED_KEY"),
        (basic("test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R"), 403, "INCORRECT_BASIC_AUTH_FORMAT"),
        ({"Authorization": "Basic %%%not-base64"}, 403, "INCORRECT_BASIC_AUTH_FORMAT"),
        ({"Authorization": "Bearer abc"}, 403, "INCORRECT_BASIC_AUTH_FORMAT"),
    ],
)
async def test_authentication_errors(
    mock_server: RunningServer, headers: dict[str, str], status: int, code: str
) -> None:
    async with httpx.AsyncClient(base_url=mock_server.url, trust_env=False) as anonymous:
        for method, path in (("POST", "/v1/payments/confirm"), ("GET", "/v1/payments/orders/order-000001")):
            response = await anonymous.request(method, path, headers=headers, json={})
            assert response.status_code == status, (method, path)
            body = response.json()
            assert body["code"] == code
            assert set(body) == {"code", "message"}
        english = await anonymous.get("/v1/payments/abc", headers={**headers, "Accept-Language": "en-US"})
        assert english.json()["message"].isascii()


async def test_unauthorized_key_message_in_both_languages(mock_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=mock_server.url, trust_env=False) as anonymous:
        korean = await anonymous.get("/v1/payments/abc")
        english = await anonymous.get("/v1/payments/abc", headers={"Accept-Language": "en-US"})
    assert korean.json() == {
        "code": "UNAUTHORIZED_KEY",
        "message": "인증되지 않은 시크릿 키 혹은 클라이언트 키 입니다.",
    }
    assert english.json() == {
        "code": "UNAUTHORIZED_KEY",
        "message": "This is an unauthenticated secret key or client key.",
    }


async def test_card_confirm_returns_a_complete_done_payment(toss: httpx.AsyncClient) -> None:
    payment_key = await authenticate_payment(toss, "order-card-0001", 15000)
    assert re.fullmatch(r"tviva\d{14}[A-Za-z0-9]{5}", payment_key)
    before = (await toss.get(f"/v1/payments/{payment_key}")).json()
    assert before["status"] == "IN_PROGRESS"
    response = await confirm(toss, payment_key, "order-card-0001", 15000)
    assert response.status_code == 200
    payment = response.json()
    assert tuple(payment) == PAYMENT_KEYS
    assert payment["status"] == "DONE" and payment["method"] == "카드" and payment["type"] == "NORMAL"
    assert TOSS_TIME.fullmatch(payment["approvedAt"]) and TOSS_TIME.fullmatch(payment["requestedAt"])
    assert re.fullmatch(r"[0-9A-F]{32}", payment["lastTransactionKey"])
    assert payment["card"]["number"] == "43300000****000*" and payment["card"]["amount"] == 15000
    assert (payment["totalAmount"], payment["balanceAmount"], payment["suppliedAmount"], payment["vat"]) == (
        15000,
        15000,
        13636,
        1364,
    )
    assert payment["virtualAccount"] is None and payment["secret"] is None and payment["failure"] is None
    assert payment["easyPay"] is None and payment["cancels"] is None


async def test_easy_pay_confirm_has_an_easy_pay_object(toss: httpx.AsyncClient) -> None:
    payment = await confirmed_payment(toss, "order-easy-0001", 9900, "EASY_PAY")
    assert (payment["status"], payment["method"]) == ("DONE", "간편결제")
    assert payment["easyPay"] == {"provider": "토스페이", "amount": 9900, "discountAmount": 0}


async def test_virtual_account_from_the_window_waits_for_deposit(toss: httpx.AsyncClient) -> None:
    payment = await confirmed_payment(toss, "order-va-0001", 50000, "가상계좌")
    confirmed_by = datetime.now(UTC)  # the mock confirmed before this (the same real clock)
    assert (payment["status"], payment["method"], payment["approvedAt"]) == (
        "WAITING_FOR_DEPOSIT",
        "가상계좌",
        None,
    )
    assert re.fullmatch(r"ps_[A-Za-z0-9]{28}", payment["secret"])
    account = payment["virtualAccount"]
    assert account["expired"] is False and account["settlementStatus"] == "INCOMPLETED"
    assert account["bankCode"] and account["accountNumber"]
    # 7 days from the confirm, which came after the window opened (requestedAt) and before now.
    due = datetime.fromisoformat(account["dueDate"])
    requested = datetime.fromisoformat(payment["requestedAt"])
    assert requested + timedelta(hours=168) <= due <= confirmed_by + timedelta(hours=168)


async def test_confirm_errors(toss: httpx.AsyncClient) -> None:
    unknown = await confirm(toss, "tviva20240101000000xxxxx", "order-err-0001", 1000)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND_PAYMENT_SESSION")

    payment_key = await authenticate_payment(toss, "order-err-0001", 15000)
    wrong_amount = await confirm(toss, payment_key, "order-err-0001", 1000)
    assert (wrong_amount.status_code, wrong_amount.json()["code"]) == (400, "INVALID_REQUEST")
    assert "amount" in wrong_amount.json()["message"]
    wrong_order = await confirm(toss, payment_key, "order-err-9999", 15000)
    assert (wrong_order.status_code, wrong_order.json()["code"]) == (400, "INVALID_REQUEST")
    assert "orderId" in wrong_order.json()["message"]
    assert (await toss.get(f"/v1/payments/{payment_key}")).json()["status"] == "IN_PROGRESS"

    for body in ({}, {"paymentKey": payment_key, "orderId": "order-err-0001"}, {"amount": "15000"}):
        missing = await toss.post("/v1/payments/confirm", json=body)
        assert (missing.status_code, missing.json()["code"]) == (400, "INVALID_REQUEST"), body
    not_json = await toss.post(
        "/v1/payments/confirm", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (not_json.status_code, not_json.json()["code"]) == (400, "INVALID_REQUEST")

    assert (await confirm(toss, payment_key, "order-err-0001", 15000)).status_code == 200
    again = await confirm(toss, payment_key, "order-err-0001", 15000)
    assert (again.status_code, again.json()) == (
        400,
        {"code": "ALREADY_PROCESSED_PAYMENT", "message": "이미 처리된 결제 입니다."},
    )


async def test_lookups_by_payment_key_and_order_id(toss: httpx.AsyncClient) -> None:
    payment = await confirmed_payment(toss, "order-lookup-01")
    by_key = await toss.get(f"/v1/payments/{payment['paymentKey']}")
    by_order = await toss.get("/v1/payments/orders/order-lookup-01")
    assert by_key.status_code == by_order.status_code == 200
    assert by_key.json() == by_order.json() == payment
    for path in ("/v1/payments/tviva_unknown", "/v1/payments/orders/order-unknown-1"):
        missing = await toss.get(path)
        assert (missing.status_code, missing.json()["code"]) == (404, "NOT_FOUND_PAYMENT")


@pytest.mark.parametrize(
    ("card", "status", "code", "payment_status"),
    [
        ("4330000000000013", 403, "REJECT_CARD_PAYMENT", "ABORTED"),
        ("4330000000000021", 400, "INVALID_CARD_EXPIRATION", "ABORTED"),
        ("4330000000000039", 400, "PROVIDER_ERROR", "IN_PROGRESS"),
    ],
)
async def test_declining_test_cards(
    toss: httpx.AsyncClient, card: str, status: int, code: str, payment_status: str
) -> None:
    payment_key = await authenticate_payment(toss, "order-decline-1", cardNumber=card)
    response = await confirm(toss, payment_key, "order-decline-1")
    assert (response.status_code, response.json()["code"]) == (status, code)
    looked_up = (await toss.get("/v1/payments/orders/order-decline-1")).json()
    assert looked_up["status"] == payment_status
    if payment_status == "ABORTED":
        assert looked_up["failure"]["code"] == code and looked_up["failure"]["message"]
        assert looked_up["approvedAt"] is None
    else:
        assert looked_up["failure"] is None
        assert (await confirm(toss, payment_key, "order-decline-1")).json()["code"] == "PROVIDER_ERROR"


async def test_fail_once_card_fails_the_first_confirm_only(toss: httpx.AsyncClient) -> None:
    payment_key = await authenticate_payment(toss, "order-flaky-001", cardNumber="4330000000000054")
    first = await confirm(toss, payment_key, "order-flaky-001")
    assert (first.status_code, first.json()["code"]) == (500, "FAILED_INTERNAL_SYSTEM_PROCESSING")
    assert (await toss.get(f"/v1/payments/{payment_key}")).json()["status"] == "IN_PROGRESS"
    second = await confirm(toss, payment_key, "order-flaky-001")
    assert (second.status_code, second.json()["status"]) == (200, "DONE")


async def test_slow_card_becomes_done_when_its_delay_ends_even_if_the_client_hung_up(
    toss: httpx.AsyncClient,
) -> None:
    payment_key = await authenticate_payment(toss, "order-slow-0001", cardNumber="4330000000000047")
    with pytest.raises(httpx.ReadTimeout):
        await toss.post(
            "/v1/payments/confirm",
            json={"paymentKey": payment_key, "orderId": "order-slow-0001", "amount": 15000},
            timeout=SLOW_CONFIRM_SECONDS / 4,
        )
    assert (await toss.get(f"/v1/payments/{payment_key}")).json()["status"] == "IN_PROGRESS"
    # Another confirm while the first is still being processed: the payment is already taken.
    concurrent = await confirm(toss, payment_key, "order-slow-0001")
    assert concurrent.json()["code"] == "ALREADY_PROCESSED_PAYMENT"

    async def done() -> bool:
        return bool((await toss.get(f"/v1/payments/{payment_key}")).json()["status"] == "DONE")

    await eventually(done, within=SLOW_CONFIRM_SECONDS * 5)


async def test_slow_card_answers_done_to_a_patient_client(toss: httpx.AsyncClient) -> None:
    payment_key = await authenticate_payment(toss, "order-slow-0002", cardNumber="4330000000000047")
    response = await confirm(toss, payment_key, "order-slow-0002")
    assert (response.status_code, response.json()["status"]) == (200, "DONE")


async def test_test_code_header_forces_the_error_before_any_validation(toss: httpx.AsyncClient) -> None:
    forced = await toss.post(
        "/v1/payments/confirm",
        json={"paymentKey": "dummy", "orderId": "x", "amount": 1},
        headers={"TossPayments-Test-Code": "REJECT_CARD_PAYMENT"},
    )
    assert (forced.status_code, forced.json()["code"]) == (403, "REJECT_CARD_PAYMENT")
    for code, status in (
        ("IDEMPOTENT_REQUEST_PROCESSING", 409),
        ("COMMON_ERROR", 500),
        ("NOT_FOUND_PAYMENT", 404),
    ):
        response = await toss.get("/v1/payments/anything", headers={"TossPayments-Test-Code": code})
        assert (response.status_code, response.json()["code"]) == (status, code)
    unknown = await toss.post(
        "/v1/payments/confirm", json={}, headers={"TossPayments-Test-Code": "NO_SUCH_CODE"}
    )
    assert (unknown.status_code, unknown.json()["code"]) == (400, "INVALID_TEST_CODE")
    # Auth still comes first.
    async with httpx.AsyncClient(base_url=str(toss.base_url), trust_env=False) as anonymous:
        response = await anonymous.post(
            "/v1/payments/confirm", json={}, headers={"TossPayments-Test-Code": "REJECT_CARD_PAYMENT"}
        )
    assert response.json()["code"] == "UNAUTHORIZED_KEY"


async def test_idempotent_confirm_replays_the_first_response_whatever_the_body(
    toss: httpx.AsyncClient,
) -> None:
    first_key = await authenticate_payment(toss, "order-idem-0001")
    second_key = await authenticate_payment(toss, "order-idem-0002")
    headers = {"Idempotency-Key": "confirm-order-idem-0001"}
    first = await confirm(toss, first_key, "order-idem-0001", headers=headers)
    replay = await confirm(toss, first_key, "order-idem-0001", headers=headers)
    other_body = await confirm(toss, second_key, "order-idem-0002", headers=headers)
    assert first.status_code == replay.status_code == other_body.status_code == 200
    assert first.content == replay.content == other_body.content
    # The second payment was never confirmed: the key replayed the first one's answer.
    assert (await toss.get(f"/v1/payments/{second_key}")).json()["status"] == "IN_PROGRESS"
    journal = (await toss.get("/_mock/requests", params={"path": "/v1/payments/confirm"})).json()
    assert journal["count"] == 3 and {entry["status"] for entry in journal["requests"]} == {200}


async def test_idempotency_replays_errors_too_and_is_scoped_by_path(toss: httpx.AsyncClient) -> None:
    payment_key = await authenticate_payment(toss, "order-idem-0003")
    headers = {"Idempotency-Key": "same-key"}
    failed = await confirm(toss, payment_key, "order-idem-0003", 1, headers=headers)
    assert failed.status_code == 400
    replayed = await confirm(toss, payment_key, "order-idem-0003", 15000, headers=headers)
    assert (replayed.status_code, replayed.content) == (400, failed.content)
    # The same key on another path is another request.
    cancel = await toss.post(
        f"/v1/payments/{payment_key}/cancel", json={"cancelReason": "테스트"}, headers=headers
    )
    assert cancel.json()["code"] == "NOT_CANCELABLE_PAYMENT"
    # GETs ignore the header entirely, whatever its length.
    lookup = await toss.get(f"/v1/payments/{payment_key}", headers={"Idempotency-Key": "x" * 400})
    assert lookup.status_code == 200


async def test_idempotency_key_longer_than_300_characters_is_refused(toss: httpx.AsyncClient) -> None:
    payment_key = await authenticate_payment(toss, "order-idem-0004")
    too_long = await confirm(toss, payment_key, "order-idem-0004", headers={"Idempotency-Key": "k" * 301})
    assert (too_long.status_code, too_long.json()["code"]) == (400, "INVALID_IDEMPOTENCY_KEY")
    assert (await toss.get(f"/v1/payments/{payment_key}")).json()["status"] == "IN_PROGRESS"
    just_right = await confirm(toss, payment_key, "order-idem-0004", headers={"Idempotency-Key": "k" * 300})
    assert just_right.status_code == 200


async def test_concurrent_duplicate_gets_409_while_the_first_is_processing(toss: httpx.AsyncClient) -> None:
    payment_key = await authenticate_payment(toss, "order-idem-0005", cardNumber="4330000000000047")
    headers = {"Idempotency-Key": "slow-confirm-key"}
    first = asyncio.create_task(confirm(toss, payment_key, "order-idem-0005", headers=headers))

    async def first_arrived() -> bool:
        return bool(
            (await toss.get("/_mock/requests", params={"orderId": "order-idem-0005"})).json()["count"]
        )

    await eventually(first_arrived)
    duplicate = await confirm(toss, payment_key, "order-idem-0005", headers=headers)
    assert (duplicate.status_code, duplicate.json()["code"]) == (409, "IDEMPOTENT_REQUEST_PROCESSING")
    first_response = await first
    assert first_response.json()["status"] == "DONE"
    replay = await confirm(toss, payment_key, "order-idem-0005", headers=headers)
    assert (replay.status_code, replay.content) == (200, first_response.content)


async def test_a_5xx_answer_is_not_replayed_so_a_retry_with_the_same_key_runs_again(
    toss: httpx.AsyncClient,
) -> None:
    payment_key = await authenticate_payment(toss, "order-flaky-002", cardNumber="4330000000000054")
    headers = {"Idempotency-Key": "confirm-order-flaky-002"}
    first = await confirm(toss, payment_key, "order-flaky-002", headers=headers)
    assert (first.status_code, first.json()["code"]) == (500, "FAILED_INTERNAL_SYSTEM_PROCESSING")
    retried = await confirm(toss, payment_key, "order-flaky-002", headers=headers)
    assert (retried.status_code, retried.json()["status"]) == (200, "DONE")
    replay = await confirm(toss, payment_key, "order-flaky-002", headers=headers)
    assert (replay.status_code, replay.content) == (200, retried.content)
