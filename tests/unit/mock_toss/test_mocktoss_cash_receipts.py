"""Cash receipts: issue, partial and full cancel, the list by request date with its cursor, and the
`cashReceipt` / `cashReceipts` fields of transfers and virtual accounts paid with a receipt request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from mock_toss.app import create_app
from mock_toss.auth import basic_auth_header
from mock_toss.config import DEFAULT_CLIENT_KEY, DEFAULT_SECRET_KEY, MockConfig

AUTH = {"Authorization": basic_auth_header(DEFAULT_SECRET_KEY)}
RECEIPT_KEYS = (
    "receiptKey",
    "issueNumber",
    "issueStatus",
    "amount",
    "taxFreeAmount",
    "orderId",
    "orderName",
    "type",
    "transactionType",
    "businessNumber",
    "customerIdentityNumber",
    "failure",
    "requestedAt",
    "receiptUrl",
)


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(MockConfig())) as test_client:
        yield test_client


def receipt_body(order_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "amount": 10000,
        "orderId": order_id,
        "orderName": "스터디 현장 결제",
        "customerIdentityNumber": "01012345678",
        "type": "소득공제",
        **overrides,
    }
    return {name: value for name, value in body.items() if value is not None}


async def issue(client: AsyncTestClient[Any], order_id: str, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/v1/cash-receipts", json=receipt_body(order_id, **overrides), headers=AUTH)
    assert response.status_code == 200, response.text
    receipt: dict[str, Any] = response.json()
    return receipt


async def today(client: AsyncTestClient[Any]) -> str:
    now: str = (await client.get("/_mock/clock")).json()["now"]
    return now[:10]


async def listing(client: AsyncTestClient[Any], **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/cash-receipts", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def test_issuing_a_cash_receipt(client: AsyncTestClient[Any]) -> None:
    receipt = await issue(client, "cash-order-1", taxFreeAmount=1000)
    assert tuple(receipt) == RECEIPT_KEYS
    assert (receipt["issueStatus"], receipt["transactionType"], receipt["type"]) == (
        "COMPLETED",
        "CONFIRM",
        "소득공제",
    )
    assert (receipt["amount"], receipt["taxFreeAmount"], receipt["orderId"]) == (10000, 1000, "cash-order-1")
    assert receipt["customerIdentityNumber"] == "010****5678"
    assert len(receipt["issueNumber"]) == 9 and receipt["issueNumber"].isdigit()
    assert len(receipt["businessNumber"]) == 10 and receipt["requestedAt"].endswith("+09:00")
    assert receipt["receiptKey"] in receipt["receiptUrl"]
    duplicate = await client.post("/v1/cash-receipts", json=receipt_body("cash-order-1"), headers=AUTH)
    assert (duplicate.status_code, duplicate.json()["code"]) == (400, "DUPLICATED_CASH_RECEIPT")


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"amount": None}, "INVALID_REQUEST"),
        ({"type": None}, "INVALID_REQUEST"),
        ({"customerIdentityNumber": None}, "INVALID_REQUEST"),
        ({"amount": 0}, "BELOW_ZERO_AMOUNT"),
        ({"orderId": "x"}, "INVALID_ORDER_ID"),
        ({"orderName": ""}, "INVALID_ORDER_NAME"),
        ({"type": "영수증"}, "INVALID_CASH_RECEIPT_INFO"),
        ({"customerIdentityNumber": "010-1234"}, "INVALID_CASH_RECEIPT_INFO"),
        ({"taxFreeAmount": 20000}, "INVALID_REQUEST"),
    ],
)
async def test_issue_errors(client: AsyncTestClient[Any], overrides: dict[str, Any], code: str) -> None:
    body = receipt_body("cash-bad-1", **overrides)
    for name, value in overrides.items():
        if value is None:
            body.pop(name, None)
    response = await client.post("/v1/cash-receipts", json=body, headers=AUTH)
    assert (response.status_code, response.json()["code"]) == (400, code)


async def test_cancelling_in_part_then_the_rest(client: AsyncTestClient[Any]) -> None:
    receipt = await issue(client, "cash-cancel-1", taxFreeAmount=2000)
    key = receipt["receiptKey"]
    part = await client.post(f"/v1/cash-receipts/{key}/cancel", json={"amount": 3000}, headers=AUTH)
    assert part.status_code == 200
    assert (part.json()["transactionType"], part.json()["amount"], part.json()["taxFreeAmount"]) == (
        "CANCEL",
        3000,
        0,
    )
    assert part.json()["receiptKey"] == key and part.json()["issueNumber"] != receipt["issueNumber"]
    too_much = await client.post(f"/v1/cash-receipts/{key}/cancel", json={"amount": 7001}, headers=AUTH)
    assert (too_much.status_code, too_much.json()["code"]) == (403, "NOT_CANCELABLE_AMOUNT")
    rest = await client.post(f"/v1/cash-receipts/{key}/cancel", headers=AUTH)
    assert (rest.json()["amount"], rest.json()["taxFreeAmount"]) == (7000, 2000)
    done = await client.post(f"/v1/cash-receipts/{key}/cancel", json={}, headers=AUTH)
    assert (done.status_code, done.json()["code"]) == (400, "INVALID_REQUEST")
    unknown = await client.post("/v1/cash-receipts/nope/cancel", json={}, headers=AUTH)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND")
    other = (await issue(client, "cash-cancel-2"))["receiptKey"]
    zero = await client.post(f"/v1/cash-receipts/{other}/cancel", json={"amount": 0}, headers=AUTH)
    assert zero.json()["code"] == "INVALID_REQUEST"


async def test_the_list_pages_through_one_days_records(client: AsyncTestClient[Any]) -> None:
    first = await issue(client, "cash-list-1")
    await issue(client, "cash-list-2")
    await client.post(f"/v1/cash-receipts/{first['receiptKey']}/cancel", json={"amount": 1000}, headers=AUTH)
    day = await today(client)
    page = await listing(client, requestDate=day, limit=2)
    assert (page["hasNext"], page["lastCursor"]) == (True, 2)
    assert [(row["orderId"], row["transactionType"]) for row in page["data"]] == [
        ("cash-list-1", "CONFIRM"),
        ("cash-list-2", "CONFIRM"),
    ]
    rest = await listing(client, requestDate=day, cursor=page["lastCursor"], limit=2)
    assert (rest["hasNext"], rest["lastCursor"]) == (False, 3)
    assert [(row["orderId"], row["transactionType"]) for row in rest["data"]] == [("cash-list-1", "CANCEL")]
    everything = await listing(client, requestDate=day)
    assert len(everything["data"]) == 3 and everything["hasNext"] is False
    other_day = await listing(client, requestDate="2020-01-01")
    assert other_day == {"hasNext": False, "lastCursor": None, "data": []}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "INVALID_REQUEST"),
        ({"requestDate": "2024/01/01"}, "INVALID_DATE"),
        ({"requestDate": "2024-02-30"}, "INVALID_DATE"),
        ({"requestDate": "2024-01-01", "limit": "10001"}, "EXCEED_MAX_QUERY_LIMIT"),
        ({"requestDate": "2024-01-01", "limit": "0"}, "INVALID_REQUEST"),
        ({"requestDate": "2024-01-01", "cursor": "abc"}, "INVALID_PAGING_KEY"),
    ],
)
async def test_list_errors(client: AsyncTestClient[Any], params: dict[str, str], code: str) -> None:
    response = await client.get("/v1/cash-receipts", params=params, headers=AUTH)
    assert (response.status_code, response.json()["code"]) == (400, code)


# ------------------------------------------------------------------ receipts of payments


async def window_payment(
    client: AsyncTestClient[Any], order_id: str, method: str, cash_receipt: Any, amount: int = 20000
) -> Any:
    return await client.post(
        "/_mock/checkout",
        json={
            "clientKey": DEFAULT_CLIENT_KEY,
            "orderId": order_id,
            "amount": amount,
            "orderName": "스터디 등록",
            "method": method,
            "successUrl": "http://shop.test/s",
            "failUrl": "http://shop.test/f",
            "cashReceipt": cash_receipt,
        },
    )


async def test_a_transfer_with_a_receipt_request_carries_its_receipt(client: AsyncTestClient[Any]) -> None:
    window = await window_payment(
        client, "cash-transfer-1", "TRANSFER", {"type": "지출증빙", "registrationNumber": "1234567890"}
    )
    payment_key = window.json()["paymentKey"]
    in_progress = (await client.get(f"/v1/payments/{payment_key}", headers=AUTH)).json()
    assert (in_progress["cashReceipt"], in_progress["cashReceipts"]) == (None, None)
    confirmed = await client.post(
        "/v1/payments/confirm",
        json={"paymentKey": payment_key, "orderId": "cash-transfer-1", "amount": 20000},
        headers=AUTH,
    )
    payment = confirmed.json()
    summary = payment["cashReceipt"]
    assert set(summary) == {"type", "receiptKey", "issueNumber", "receiptUrl", "amount", "taxFreeAmount"}
    assert (summary["type"], summary["amount"]) == ("지출증빙", 20000)
    [record] = payment["cashReceipts"]
    assert tuple(record) == RECEIPT_KEYS
    assert (record["transactionType"], record["receiptKey"], record["customerIdentityNumber"]) == (
        "CONFIRM",
        summary["receiptKey"],
        "123***7890",
    )
    canceled = await client.post(
        f"/v1/payments/{payment_key}/cancel",
        json={"cancelReason": "부분", "cancelAmount": 5000},
        headers=AUTH,
    )
    after = canceled.json()
    assert after["cashReceipt"]["amount"] == 15000
    assert [(row["transactionType"], row["amount"]) for row in after["cashReceipts"]] == [
        ("CONFIRM", 20000),
        ("CANCEL", 5000),
    ]
    page = await listing(client, requestDate=await today(client))
    assert [(row["orderId"], row["transactionType"]) for row in page["data"]] == [
        ("cash-transfer-1", "CONFIRM"),
        ("cash-transfer-1", "CANCEL"),
    ]
    duplicate = await client.post("/v1/cash-receipts", json=receipt_body("cash-transfer-1"), headers=AUTH)
    assert duplicate.json()["code"] == "DUPLICATED_CASH_RECEIPT"


async def test_a_virtual_account_gets_its_receipt_with_the_deposit(client: AsyncTestClient[Any]) -> None:
    response = await client.post(
        "/v1/virtual-accounts",
        json={
            "amount": 30000,
            "orderId": "cash-va-1",
            "orderName": "스터디 등록",
            "customerName": "김토스",
            "bank": "88",
            "cashReceipt": {"type": "소득공제", "registrationNumber": "01098765432"},
        },
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    assert response.json()["cashReceipt"] is None
    deposited = (await client.post("/_mock/virtual-accounts/cash-va-1/deposit", json={})).json()
    assert (deposited["status"], deposited["cashReceipt"]["type"]) == ("DONE", "소득공제")
    assert deposited["cashReceipts"][0]["customerIdentityNumber"] == "010****5432"
    lookup = (await client.get("/v1/payments/orders/cash-va-1", headers=AUTH)).json()
    assert lookup["cashReceipt"] == deposited["cashReceipt"]


@pytest.mark.parametrize(
    ("method", "cash_receipt", "code"),
    [
        ("CARD", {"type": "소득공제", "registrationNumber": "01012345678"}, "INVALID_REQUEST"),
        ("TRANSFER", {"type": "영수증", "registrationNumber": "01012345678"}, "INVALID_REQUEST"),
        ("TRANSFER", {"type": "소득공제", "registrationNumber": "12"}, "INVALID_CASH_RECEIPT_INFO"),
        ("TRANSFER", "소득공제", "INVALID_REQUEST"),
    ],
)
async def test_invalid_receipt_requests_are_refused_before_the_window(
    client: AsyncTestClient[Any], method: str, cash_receipt: Any, code: str
) -> None:
    response = await window_payment(client, "cash-bad-req-1", method, cash_receipt)
    assert (response.status_code, response.json()["code"]) == (400, code)
    assert (await client.get("/v1/payments/orders/cash-bad-req-1", headers=AUTH)).status_code == 404


async def test_no_receipt_when_not_asked_or_not_issued(client: AsyncTestClient[Any]) -> None:
    for order_id, cash_receipt in (("cash-none-1", None), ("cash-none-2", {"type": "미발행"})):
        window = await window_payment(client, order_id, "TRANSFER", cash_receipt)
        confirmed = await client.post(
            "/v1/payments/confirm",
            json={"paymentKey": window.json()["paymentKey"], "orderId": order_id, "amount": 20000},
            headers=AUTH,
        )
        assert (confirmed.json()["cashReceipt"], confirmed.json()["cashReceipts"]) == (None, None)
