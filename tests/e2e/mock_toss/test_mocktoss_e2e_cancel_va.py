"""Cancels (full, partial, errors) and virtual accounts (issue, deposit, cancel rules), over HTTP."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from mock_toss.payments import KST, PAYMENT_KEYS
from tests.e2e.mock_toss.helpers import authenticate_payment, confirmed_payment

REFUND_ACCOUNT = {"bank": "88", "accountNumber": "110123456789", "holderName": "홍길동"}


async def cancel(toss: httpx.AsyncClient, payment_key: str, **body: Any) -> httpx.Response:
    return await toss.post(f"/v1/payments/{payment_key}/cancel", json=body)


def issue_body(order_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "amount": 50000,
        "orderId": order_id,
        "orderName": "알고리즘 스터디 4주",
        "customerName": "김토스",
        "bank": "20",
        **overrides,
    }


async def issued(toss: httpx.AsyncClient, order_id: str, **overrides: Any) -> dict[str, Any]:
    response = await toss.post("/v1/virtual-accounts", json=issue_body(order_id, **overrides))
    assert response.status_code == 200, response.text
    payment: dict[str, Any] = response.json()
    return payment


async def deposit(toss: httpx.AsyncClient, order_id: str) -> httpx.Response:
    return await toss.post(f"/_mock/virtual-accounts/{order_id}/deposit")


async def test_partial_then_full_cancel(toss: httpx.AsyncClient) -> None:
    payment = await confirmed_payment(toss, "order-cancel-01", 15000)
    key = payment["paymentKey"]
    partial = await cancel(toss, key, cancelReason="단순 변심", cancelAmount=5000)
    assert partial.status_code == 200
    after = partial.json()
    assert tuple(after) == PAYMENT_KEYS
    assert (after["status"], after["totalAmount"], after["balanceAmount"]) == (
        "PARTIAL_CANCELED",
        15000,
        10000,
    )
    assert (after["suppliedAmount"], after["vat"]) == (9091, 909)
    [entry] = after["cancels"]
    assert entry == {
        "cancelAmount": 5000,
        "cancelReason": "단순 변심",
        "taxFreeAmount": 0,
        "taxExemptionAmount": 0,
        "refundableAmount": 10000,
        "cardDiscountAmount": 0,
        "transferDiscountAmount": 0,
        "easyPayDiscountAmount": 0,
        "canceledAt": entry["canceledAt"],
        "transactionKey": after["lastTransactionKey"],
        "receiptKey": None,
        "cancelStatus": "DONE",
        "cancelRequestId": None,
    }
    over = await cancel(toss, key, cancelReason="너무 많이", cancelAmount=10001)
    assert (over.status_code, over.json()["code"]) == (403, "NOT_CANCELABLE_AMOUNT")
    rest = (await cancel(toss, key, cancelReason="전액 환불")).json()
    assert (rest["status"], rest["balanceAmount"], len(rest["cancels"])) == ("CANCELED", 0, 2)
    assert rest["cancels"][1]["cancelAmount"] == 10000 and rest["cancels"][1]["refundableAmount"] == 0
    again = await cancel(toss, key, cancelReason="또")
    assert (again.status_code, again.json()["code"]) == (400, "ALREADY_CANCELED_PAYMENT")


async def test_cancel_validation_and_states(toss: httpx.AsyncClient) -> None:
    payment = await confirmed_payment(toss, "order-cancel-02")
    key = payment["paymentKey"]
    for body in (
        {},
        {"cancelReason": ""},
        {"cancelReason": "x" * 201},
        {"cancelReason": "a", "cancelAmount": -1},
    ):
        response = await toss.post(f"/v1/payments/{key}/cancel", json=body)
        assert (response.status_code, response.json()["code"]) == (400, "INVALID_REQUEST"), body
    assert (await cancel(toss, key, cancelReason="x" * 200, cancelAmount=100)).status_code == 200
    unknown = await cancel(toss, "tviva_nobody", cancelReason="없음")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND_PAYMENT")
    in_progress = await authenticate_payment(toss, "order-cancel-03")
    not_cancelable = await cancel(toss, in_progress, cancelReason="승인 전")
    assert (not_cancelable.status_code, not_cancelable.json()["code"]) == (403, "NOT_CANCELABLE_PAYMENT")


async def test_server_side_virtual_account_issue(toss: httpx.AsyncClient) -> None:
    payment = await issued(toss, "order-vacct-01", validHours=24)
    assert tuple(payment) == PAYMENT_KEYS
    assert (payment["status"], payment["method"], payment["approvedAt"]) == (
        "WAITING_FOR_DEPOSIT",
        "가상계좌",
        None,
    )
    assert payment["secret"].startswith("ps_") and payment["lastTransactionKey"]
    account = payment["virtualAccount"]
    assert (account["bankCode"], account["customerName"], account["accountType"]) == ("20", "김토스", "일반")
    due = datetime.fromisoformat(account["dueDate"]) - datetime.fromisoformat(payment["requestedAt"])
    assert due == timedelta(hours=24)  # both from the one moment the request was served
    in_three_days = (datetime.now(KST) + timedelta(days=3)).replace(microsecond=0)
    by_name = await issued(
        toss, "order-vacct-02", bank="신한", dueDate=in_three_days.strftime("%Y-%m-%dT%H:%M:%S")
    )
    assert by_name["virtualAccount"]["bankCode"] == "88"
    assert datetime.fromisoformat(by_name["virtualAccount"]["dueDate"]) == in_three_days


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        (
            {"validHours": 24, "dueDate": "2030-01-01T00:00:00"},
            "INVALID_VALID_HOURS_WITH_DUE_DATE_AND_SINGLE",
        ),
        ({"bank": "99"}, "INVALID_BANK"),
        ({"bank": "토스"}, "INVALID_BANK"),  # a bank that cannot issue virtual accounts
        ({"validHours": 2161}, "EXCEED_MAX_VALID_HOURS"),
        ({"dueDate": "tomorrow"}, "INVALID_DATE"),
        ({"dueDate": "2001-01-01T00:00:00"}, "INVALID_DATE"),
        ({"dueDate": "2099-01-01T00:00:00"}, "EXCEED_MAX_DUE_DATE"),
        ({"orderId": "bad id"}, "INVALID_ORDER_ID"),
        ({"orderName": ""}, "INVALID_ORDER_NAME"),
        ({"customerName": None}, "INVALID_REQUEST"),
        ({"amount": None}, "INVALID_REQUEST"),
    ],
)
async def test_virtual_account_issue_errors(
    toss: httpx.AsyncClient, overrides: dict[str, Any], code: str
) -> None:
    response = await toss.post("/v1/virtual-accounts", json=issue_body("order-vacct-03", **overrides))
    assert (response.status_code, response.json()["code"]) == (400, code)


async def test_virtual_account_duplicate_order_id(toss: httpx.AsyncClient) -> None:
    await issued(toss, "order-vacct-04")
    duplicate = await toss.post("/v1/virtual-accounts", json=issue_body("order-vacct-04"))
    assert (duplicate.status_code, duplicate.json()["code"]) == (400, "DUPLICATED_ORDER_ID")


async def test_deposit_then_cancel_needs_a_refund_account(toss: httpx.AsyncClient) -> None:
    payment = await issued(toss, "order-vacct-05", amount=30000)
    deposited = await deposit(toss, "order-vacct-05")
    assert deposited.status_code == 200
    done = deposited.json()
    assert (done["status"], done["virtualAccount"]["settlementStatus"]) == ("DONE", "COMPLETED")
    assert done["approvedAt"] is not None and done["secret"] == payment["secret"]
    again = await deposit(toss, "order-vacct-05")
    assert (again.status_code, again.json()["code"]) == (400, "NOT_WAITING_FOR_DEPOSIT")

    key = payment["paymentKey"]
    missing = await cancel(toss, key, cancelReason="환불")
    assert (missing.status_code, missing.json()["code"]) == (400, "INVALID_REQUEST")
    for bad in (
        {**REFUND_ACCOUNT, "accountNumber": "110-123-456"},
        {**REFUND_ACCOUNT, "accountNumber": "1" * 21},
        {**REFUND_ACCOUNT, "holderName": "x" * 61},
        {**REFUND_ACCOUNT, "bank": "99"},
    ):
        response = await cancel(toss, key, cancelReason="환불", refundReceiveAccount=bad)
        assert (response.status_code, response.json()["code"]) == (400, "INVALID_REFUND_ACCOUNT_INFO"), bad
    incomplete = await cancel(toss, key, cancelReason="환불", refundReceiveAccount={"bank": "88"})
    assert (incomplete.status_code, incomplete.json()["code"]) == (400, "INVALID_REQUEST")
    partial = await cancel(
        toss, key, cancelReason="부분 환불", cancelAmount=10000, refundReceiveAccount=REFUND_ACCOUNT
    )
    assert partial.status_code == 200
    refunded = partial.json()
    assert (refunded["status"], refunded["balanceAmount"]) == ("PARTIAL_CANCELED", 20000)
    assert refunded["virtualAccount"]["refundReceiveAccount"] == {
        "bankCode": "88",
        "accountNumber": "110123456789",
        "holderName": "홍길동",
    }
    assert refunded["virtualAccount"]["refundStatus"] == "PENDING"
    await toss.post("/_mock/clock", json={"advanceSeconds": 2 * 86400})  # Toss refunds about two days later
    later = (await toss.get(f"/v1/payments/{key}")).json()
    assert later["virtualAccount"]["refundStatus"] == "COMPLETED"


async def test_before_deposit_only_a_full_cancel(toss: httpx.AsyncClient) -> None:
    payment = await issued(toss, "order-vacct-06", amount=30000)
    key = payment["paymentKey"]
    partial = await cancel(toss, key, cancelReason="부분", cancelAmount=1000)
    assert (partial.status_code, partial.json()["code"]) == (
        403,
        "NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT",
    )
    full = await cancel(toss, key, cancelReason="입금 전 취소")
    assert full.status_code == 200
    assert (full.json()["status"], full.json()["balanceAmount"]) == ("CANCELED", 0)
    late = await deposit(toss, "order-vacct-06")
    assert (late.status_code, late.json()["code"]) == (400, "NOT_WAITING_FOR_DEPOSIT")
    unknown = await deposit(toss, "order-nobody-01")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND_PAYMENT")
