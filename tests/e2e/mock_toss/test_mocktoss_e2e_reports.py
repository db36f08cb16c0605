"""Transactions and settlements against the mock as a real process: the movable clock decides when a
settlement appears, the settlement-config control sets fees and the payout cycle, the journal sees
every report request."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx

from mock_toss.payments import KST
from tests.e2e.mock_toss.helpers import confirmed_payment

EVERYTHING = {"startDate": "2000-01-01", "endDate": "2999-12-31"}


async def next_kst_day(toss: httpx.AsyncClient) -> None:
    """Move the mock clock just past the next midnight in Korea."""
    now = datetime.fromisoformat((await toss.get("/_mock/clock")).json()["now"])
    midnight = datetime.combine(
        now.astimezone(KST).date() + timedelta(days=1), datetime.min.time(), tzinfo=KST
    )
    response = await toss.post("/_mock/clock", json={"advanceSeconds": (midnight - now).total_seconds() + 1})
    assert response.status_code == 200


async def test_transactions_and_settlements_follow_the_mock_clock(toss: httpx.AsyncClient) -> None:
    payment = await confirmed_payment(toss, "order-e2e-report-1", amount=34000)
    key = payment["paymentKey"]
    canceled = await toss.post(
        f"/v1/payments/{key}/cancel", json={"cancelReason": "부분 환불", "cancelAmount": 4000}
    )
    assert canceled.status_code == 200
    transactions = (await toss.get("/v1/transactions", params=EVERYTHING)).json()
    assert [(t["status"], t["amount"]) for t in transactions] == [("DONE", 34000), ("PARTIAL_CANCELED", 4000)]
    assert (await toss.get("/v1/settlements", params=EVERYTHING)).json() == []

    await next_kst_day(toss)
    rows = (await toss.get("/v1/settlements", params=EVERYTHING)).json()
    assert [(r["amount"], r["fee"], r["supplyAmount"], r["vat"], r["payOutAmount"]) for r in rows] == [
        (34000, 1156, 1051, 105, 32844),
        (-4000, -136, -124, -12, -3864),
    ]
    sold = datetime.fromisoformat(payment["approvedAt"]).date()
    assert {(r["soldDate"], r["paidOutDate"]) for r in rows} == {
        (sold.isoformat(), (sold + timedelta(days=2)).isoformat())
    }
    journal = (await toss.get("/_mock/requests", params={"path": "/v1/settlements"})).json()
    assert [entry["status"] for entry in journal["requests"]] == [200, 200]


async def test_settlement_config_sets_fees_and_the_payout_cycle(toss: httpx.AsyncClient) -> None:
    changed = await toss.put(
        "/_mock/settlement-config",
        json={"fees": {"CARD": {"percent": 2.0, "fixed": 50}}, "payoutDays": 3, "businessDaysOnly": True},
    )
    assert changed.status_code == 200 and changed.headers["access-control-allow-origin"] == "*"
    assert changed.json()["fees"]["CARD"] == {"percent": 2.0, "fixed": 50}
    payment = await confirmed_payment(toss, "order-e2e-report-2", amount=10000)
    await next_kst_day(toss)
    [row] = (await toss.get("/v1/settlements", params=EVERYTHING)).json()
    assert (row["fee"], row["payOutAmount"]) == (250, 9750)
    sold = datetime.fromisoformat(payment["approvedAt"]).date()
    paid_out = datetime.fromisoformat(row["paidOutDate"]).date()
    assert paid_out.weekday() < 5 and (paid_out - sold).days in (3, 4, 5)
    by_paid_out = await toss.get(
        "/v1/settlements",
        params={"dateType": "paidOutDate", "startDate": row["paidOutDate"], "endDate": row["paidOutDate"]},
    )
    assert by_paid_out.json() == [row]
    await toss.post("/_mock/reset")
    assert (await toss.get("/_mock/settlement-config")).json()["fees"]["CARD"] == {"percent": 3.4, "fixed": 0}
