"""Transactions and settlements of the mock Toss, in-process: Toss's objects, the fee arithmetic, the
mock clock deciding when a settlement appears, paging, errors and the settlement-config control."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from mock_toss.app import create_app
from mock_toss.auth import basic_auth_header
from mock_toss.config import DEFAULT_CLIENT_KEY, DEFAULT_SECRET_KEY, MockConfig
from mock_toss.payments import KST
from mock_toss.reports import FeeRule, SettlementConfig, parse_moment, vat_of_fee
from mock_toss.service import MockToss

AUTH = {"Authorization": basic_auth_header(DEFAULT_SECRET_KEY)}
EVERYTHING = {"startDate": "2000-01-01", "endDate": "2999-12-31"}
TRANSACTION_KEYS = (
    "mId",
    "transactionKey",
    "paymentKey",
    "orderId",
    "method",
    "customerKey",
    "useEscrow",
    "receiptUrl",
    "status",
    "transactionAt",
    "currency",
    "amount",
)
SETTLEMENT_KEYS = {
    "mId",
    "paymentKey",
    "transactionKey",
    "orderId",
    "currency",
    "method",
    "amount",
    "interestFee",
    "fees",
    "fee",
    "supplyAmount",
    "vat",
    "payOutAmount",
    "approvedAt",
    "soldDate",
    "paidOutDate",
    "card",
    "easyPay",
    "giftCertificate",
    "mobilePhone",
    "transfer",
    "virtualAccount",
    "cancel",
}


@pytest.fixture
def mock() -> MockToss:
    return MockToss(MockConfig())


@pytest.fixture
async def client(mock: MockToss) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(mock.config, mock=mock)) as test_client:
        yield test_client


async def paid(
    client: AsyncTestClient[Any], order_id: str, amount: int = 15000, method: str = "CARD"
) -> dict[str, Any]:
    window = await client.post(
        "/_mock/checkout",
        json={
            "clientKey": DEFAULT_CLIENT_KEY,
            "orderId": order_id,
            "amount": amount,
            "orderName": "스터디 등록",
            "method": method,
            "successUrl": "http://shop.test/success",
            "failUrl": "http://shop.test/fail",
        },
    )
    payment_key = window.json()["paymentKey"]
    confirmed = await client.post(
        "/v1/payments/confirm",
        json={"paymentKey": payment_key, "orderId": order_id, "amount": amount},
        headers=AUTH,
    )
    assert confirmed.status_code == 200, confirmed.text
    payment: dict[str, Any] = confirmed.json()
    return payment


async def cancel(client: AsyncTestClient[Any], payment_key: str, amount: int | None = None) -> Any:
    body: dict[str, Any] = {"cancelReason": "고객 요청"}
    if amount is not None:
        body["cancelAmount"] = amount
    response = await client.post(f"/v1/payments/{payment_key}/cancel", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


async def transactions(client: AsyncTestClient[Any], **query: Any) -> list[dict[str, Any]]:
    response = await client.get("/v1/transactions", params={**EVERYTHING, **query}, headers=AUTH)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


async def settlements(client: AsyncTestClient[Any], **query: Any) -> list[dict[str, Any]]:
    response = await client.get("/v1/settlements", params={**EVERYTHING, **query}, headers=AUTH)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def next_kst_day(mock: MockToss) -> None:
    """Move the mock clock just past the next midnight in Korea (today's soldDate has then passed)."""
    now = mock.clock.now().astimezone(KST)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=KST)
    mock.advance_clock((midnight - now).total_seconds() + 1)


def test_fee_vat_and_supply_follow_tosses_examples() -> None:
    # Toss's settlement guide: fees 800 + 60 = 860 → supplyAmount 782, vat 78, payOut 34000 − 860.
    assert (vat_of_fee(860), 860 - vat_of_fee(860)) == (78, 782)
    # Observed answers: fee 1492 → vat 136; a refunded fee −2250 → vat −205 (half away from zero).
    assert (vat_of_fee(1492), vat_of_fee(-2250), vat_of_fee(859950)) == (136, -205, 78177)
    card = FeeRule(Decimal("3.4"), 0)
    assert (card.fee(15000), card.fee(0), FeeRule(Decimal(0), 400).fee(300)) == (510, 0, 300)


def test_payout_dates_in_calendar_or_business_days() -> None:
    config = SettlementConfig()
    friday = date(2024, 3, 1)
    assert config.paid_out_date(friday) == date(2024, 3, 3)  # D+2 calendar days by default
    config.update({"businessDaysOnly": True})
    assert config.paid_out_date(friday) == date(2024, 3, 5)  # Monday, Tuesday
    config.update({"payoutDays": 0})
    assert config.paid_out_date(friday) == friday


def test_query_moments_are_iso_8601_in_korean_time_unless_offset() -> None:
    assert parse_moment("2022-01-01", "startDate").at == datetime(2022, 1, 1, tzinfo=KST)
    plain = parse_moment("2022-01-01T23:59:59", "endDate")
    assert (plain.at, plain.precision) == (datetime(2022, 1, 1, 23, 59, 59, tzinfo=KST), timedelta(seconds=1))
    assert parse_moment("2022-01-01T23:59:59.999", "endDate").precision == timedelta(milliseconds=1)
    utc = parse_moment("2022-01-01T00:00:00Z", "startDate").at
    assert utc.astimezone(KST).hour == 9
    # `+09:00` unencoded in a query string arrives as a space.
    assert parse_moment("2022-01-01T00:00:00 09:00", "startDate").at == datetime(2022, 1, 1, tzinfo=KST)


async def test_every_approval_and_cancel_is_a_transaction_in_time_order(
    client: AsyncTestClient[Any],
) -> None:
    payment = await paid(client, "order-tx-001")
    key = payment["paymentKey"]
    partial = await cancel(client, key, 4000)
    full = await cancel(client, key)
    found = await transactions(client)
    assert [tuple(t) for t in found] == [TRANSACTION_KEYS] * 3
    assert [(t["status"], t["amount"]) for t in found] == [
        ("DONE", 15000),
        ("PARTIAL_CANCELED", 4000),
        ("CANCELED", 11000),
    ]
    assert [t["transactionKey"] for t in found] == [
        payment["lastTransactionKey"],
        partial["cancels"][0]["transactionKey"],
        full["cancels"][1]["transactionKey"],
    ]
    first = found[0]
    assert first["transactionAt"] == payment["approvedAt"] and first["transactionAt"].endswith("+09:00")
    assert (first["mId"], first["method"], first["customerKey"], first["useEscrow"], first["currency"]) == (
        "tosspayments",
        "카드",
        None,
        False,
        "KRW",
    )
    assert first["receiptUrl"] == payment["receipt"]["url"] and first["orderId"] == "order-tx-001"


async def test_virtual_accounts_make_a_transaction_when_issued_and_when_deposited(
    client: AsyncTestClient[Any],
) -> None:
    issued = await paid(client, "order-tx-va1", amount=30000, method="VIRTUAL_ACCOUNT")
    deposited = (await client.post("/_mock/virtual-accounts/order-tx-va1/deposit")).json()
    found = await transactions(client)
    assert [(t["status"], t["transactionKey"]) for t in found] == [
        ("WAITING_FOR_DEPOSIT", issued["lastTransactionKey"]),
        ("DONE", deposited["lastTransactionKey"]),
    ]
    assert {t["method"] for t in found} == {"가상계좌"}


async def test_transactions_by_time_window_cursor_and_limit(
    client: AsyncTestClient[Any], mock: MockToss
) -> None:
    keys = []
    for number in range(5):
        keys.append((await paid(client, f"order-page-{number:03d}"))["lastTransactionKey"])
        mock.advance_clock(10)
    everything = await transactions(client)
    assert [t["transactionKey"] for t in everything] == keys
    page_one = await transactions(client, limit=2)
    page_two = await transactions(client, limit=2, startingAfter=page_one[-1]["transactionKey"])
    page_three = await transactions(client, limit=2, startingAfter=page_two[-1]["transactionKey"])
    assert [t["transactionKey"] for t in page_one + page_two + page_three] == keys
    assert await transactions(client, startingAfter=keys[-1]) == []
    # The window is inclusive of endDate's whole second, in Korean time when no offset is given.
    second = datetime.fromisoformat(everything[1]["transactionAt"])
    plain = second.astimezone(KST).strftime("%Y-%m-%dT%H:%M:%S")
    only = await transactions(client, startDate=plain, endDate=plain)
    assert [t["transactionKey"] for t in only] == [keys[1]]
    with_offset = await transactions(client, startDate=everything[1]["transactionAt"], endDate=plain)
    assert with_offset == only
    before = (second - timedelta(seconds=1)).astimezone(KST).strftime("%Y-%m-%dT%H:%M:%S")
    assert [t["transactionKey"] for t in await transactions(client, endDate=before)] == keys[:1]


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ({"startDate": None}, 400, "INVALID_REQUEST"),
        ({"endDate": None}, 400, "INVALID_REQUEST"),
        ({"startDate": "01/01/2022"}, 400, "INVALID_DATE"),
        ({"startDate": "2022-13-01"}, 400, "INVALID_DATE"),
        ({"startDate": "2022-01-02", "endDate": "2022-01-01"}, 400, "INVALID_DATE"),
        ({"limit": "0"}, 400, "INVALID_REQUEST"),
        ({"limit": "10001"}, 400, "INVALID_REQUEST"),
        ({"limit": "ten"}, 400, "INVALID_REQUEST"),
        ({"startingAfter": "NOT_A_TRANSACTION"}, 400, "INVALID_TRANSACTION_KEY"),
    ],
)
async def test_transaction_query_errors(
    client: AsyncTestClient[Any], query: dict[str, Any], status: int, code: str
) -> None:
    params = {key: value for key, value in {**EVERYTHING, **query}.items() if value is not None}
    response = await client.get("/v1/transactions", params=params, headers=AUTH)
    assert (response.status_code, response.json()["code"]) == (status, code)


async def test_reports_take_basic_auth_and_are_journaled(client: AsyncTestClient[Any]) -> None:
    for path in ("/v1/transactions", "/v1/settlements"):
        unauthenticated = await client.get(path, params=EVERYTHING)
        assert (unauthenticated.status_code, unauthenticated.json()["code"]) == (401, "UNAUTHORIZED_KEY")
        assert (await client.get(path, params=EVERYTHING, headers=AUTH)).status_code == 200
    journal = (await client.get("/_mock/requests", params={"path": "/v1/"})).json()
    assert [(r["method"], r["path"], r["status"]) for r in journal["requests"]] == [
        ("GET", "/v1/transactions", 401),
        ("GET", "/v1/transactions", 200),
        ("GET", "/v1/settlements", 401),
        ("GET", "/v1/settlements", 200),
    ]
    assert journal["requests"][1]["query"] == EVERYTHING


async def test_a_settlement_appears_once_its_sold_date_has_passed(
    client: AsyncTestClient[Any], mock: MockToss
) -> None:
    payment = await paid(client, "order-settle-1", amount=34000)
    assert await settlements(client) == []  # sold today: not settled yet
    next_kst_day(mock)
    [row] = await settlements(client)
    assert set(row) == SETTLEMENT_KEYS
    sold = datetime.fromisoformat(payment["approvedAt"]).date()
    assert (row["paymentKey"], row["transactionKey"], row["orderId"]) == (
        payment["paymentKey"],
        payment["lastTransactionKey"],
        "order-settle-1",
    )
    # 3.4 % of 34,000 = 1,156 (VAT included): vat round(1156 / 11) = 105, supply 1,051.
    assert (row["amount"], row["fees"], row["fee"], row["supplyAmount"], row["vat"]) == (
        34000,
        [{"type": "BASE", "fee": 1156}],
        1156,
        1051,
        105,
    )
    assert (row["payOutAmount"], row["interestFee"], row["currency"], row["method"]) == (
        32844,
        0,
        "KRW",
        "카드",
    )
    assert row["approvedAt"] == payment["approvedAt"]
    assert (row["soldDate"], row["paidOutDate"]) == (sold.isoformat(), (sold + timedelta(days=2)).isoformat())
    assert row["card"]["number"] == payment["card"]["number"] and row["cancel"] is None
    assert (row["easyPay"], row["virtualAccount"], row["transfer"], row["mobilePhone"]) == (None,) * 4


async def test_cancels_settle_as_negative_rows_whose_fees_refund_the_whole_fee(
    client: AsyncTestClient[Any], mock: MockToss
) -> None:
    payment = await paid(client, "order-settle-2", amount=15000)
    key = payment["paymentKey"]
    await cancel(client, key, 4000)
    await cancel(client, key)
    next_kst_day(mock)
    rows = await settlements(client)
    assert [(r["amount"], r["fee"], r["payOutAmount"]) for r in rows] == [
        (15000, 510, 14490),
        (-4000, -136, -3864),  # fee(15,000) − fee(11,000)
        (-11000, -374, -10626),
    ]
    assert sum(r["fee"] for r in rows) == 0 and sum(r["payOutAmount"] for r in rows) == 0
    assert [r["cancel"]["cancelAmount"] for r in rows[1:]] == [4000, 11000]
    assert {r["approvedAt"] for r in rows} == {payment["approvedAt"]}
    assert [r["vat"] + r["supplyAmount"] for r in rows] == [r["fee"] for r in rows]


async def test_settlements_by_paid_out_date_and_pages(client: AsyncTestClient[Any], mock: MockToss) -> None:
    first = await paid(client, "order-settle-3")
    await paid(client, "order-settle-4", amount=20000, method="TRANSFER")
    await paid(client, "order-settle-5", amount=30000, method="VIRTUAL_ACCOUNT")  # not deposited: nothing
    next_kst_day(mock)
    sold = datetime.fromisoformat(first["approvedAt"]).date()
    paid_out = sold + timedelta(days=2)
    by_sold = await settlements(client, startDate=sold.isoformat(), endDate=sold.isoformat())
    assert [(r["orderId"], r["fee"]) for r in by_sold] == [("order-settle-3", 510), ("order-settle-4", 400)]
    assert await settlements(client, startDate=paid_out.isoformat(), endDate=paid_out.isoformat()) == []
    by_paid_out = await settlements(
        client, dateType="paidOutDate", startDate=paid_out.isoformat(), endDate=paid_out.isoformat()
    )
    assert by_paid_out == by_sold
    assert [r["orderId"] for r in await settlements(client, size=1, page=2)] == ["order-settle-4"]
    assert await settlements(client, size=1, page=3) == []
    for bad in ({"dateType": "approvedAt"}, {"page": "0"}, {"size": "10001"}, {"startDate": "someday"}):
        response = await client.get("/v1/settlements", params={**EVERYTHING, **bad}, headers=AUTH)
        assert response.status_code == 400, bad


async def test_a_virtual_account_settles_when_deposited_with_its_fixed_fee(
    client: AsyncTestClient[Any], mock: MockToss
) -> None:
    await paid(client, "order-settle-va", amount=30000, method="VIRTUAL_ACCOUNT")
    deposited = (await client.post("/_mock/virtual-accounts/order-settle-va/deposit")).json()
    next_kst_day(mock)
    [row] = await settlements(client)
    assert (row["transactionKey"], row["approvedAt"]) == (
        deposited["lastTransactionKey"],
        deposited["approvedAt"],
    )
    assert (row["fee"], row["payOutAmount"], row["method"]) == (400, 29600, "가상계좌")
    assert row["virtualAccount"]["accountNumber"] == deposited["virtualAccount"]["accountNumber"]


async def test_settlement_config_control(client: AsyncTestClient[Any], mock: MockToss) -> None:
    defaults = (await client.get("/_mock/settlement-config")).json()
    assert defaults["fees"]["CARD"] == {"percent": 3.4, "fixed": 0}
    assert (defaults["payoutDays"], defaults["businessDaysOnly"]) == (2, False)
    before = await paid(client, "order-config-1", amount=10000)
    changed = await client.put(
        "/_mock/settlement-config", json={"fees": {"카드": {"percent": 2.5, "fixed": 100}}, "payoutDays": 5}
    )
    assert changed.status_code == 200
    assert changed.json()["fees"]["CARD"] == {"percent": 2.5, "fixed": 100}
    assert changed.json()["fees"]["TRANSFER"] == defaults["fees"]["TRANSFER"]  # untouched
    await paid(client, "order-config-2", amount=10000)
    next_kst_day(mock)
    rows = await settlements(client)
    sold = datetime.fromisoformat(before["approvedAt"]).date()
    # The rules in force when a payment was approved apply to it.
    assert [(r["fee"], r["paidOutDate"]) for r in rows] == [
        (340, (sold + timedelta(days=2)).isoformat()),
        (350, (sold + timedelta(days=5)).isoformat()),
    ]
    for bad in (
        {"fees": {"CASH": {"percent": 1}}},
        {"fees": {"CARD": {"percent": 101}}},
        {"fees": {"CARD": {"rate": 1}}},
        {"payoutDays": -1},
        {"unknown": True},
        [],
    ):
        response = await client.put("/_mock/settlement-config", json=bad)
        assert (response.status_code, response.json()["code"]) == (400, "INVALID_REQUEST"), bad
    assert (await client.delete("/_mock/settlement-config")).json() == defaults
    await client.put("/_mock/settlement-config", json={"payoutDays": 9})
    await client.post("/_mock/reset")
    assert (await client.get("/_mock/settlement-config")).json() == defaults
    assert await transactions(client) == []


async def test_manual_settlement_request(client: AsyncTestClient[Any]) -> None:
    payment = await paid(client, "order-manual-1")
    response = await client.post("/v1/settlements", json={"paymentKey": payment["paymentKey"]}, headers=AUTH)
    assert (response.status_code, response.json()) == (200, {"result": True})
    looked_up = (await client.get(f"/v1/payments/{payment['paymentKey']}", headers=AUTH)).json()
    assert looked_up["card"]["acquireStatus"] == "REQUESTED"
    unknown = await client.post("/v1/settlements", json={"paymentKey": "tviva_nope"}, headers=AUTH)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND_PAYMENT")
    transfer = await paid(client, "order-manual-2", method="TRANSFER")
    not_card = await client.post("/v1/settlements", json={"paymentKey": transfer["paymentKey"]}, headers=AUTH)
    assert (not_card.status_code, not_card.json()["code"]) == (400, "INVALID_REQUEST")
    missing = await client.post("/v1/settlements", json={}, headers=AUTH)
    assert (missing.status_code, missing.json()["code"]) == (400, "INVALID_REQUEST")
    journal = (await client.get("/_mock/requests", params={"path": "/v1/settlements"})).json()
    assert journal["requests"][0]["orderId"] == "order-manual-1"
