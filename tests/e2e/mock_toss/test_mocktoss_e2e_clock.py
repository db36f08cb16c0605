"""Expiry on the mock's movable clock: READY 30 min, IN_PROGRESS 10 min, virtual-account due dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.e2e.mock_toss.helpers import (
    authenticate_payment,
    confirm,
    eventually,
    webhooks_for,
    window_request,
)


async def advance(toss: httpx.AsyncClient, seconds: float) -> None:
    response = await toss.post("/_mock/clock", json={"advanceSeconds": seconds})
    assert response.status_code == 200, response.text


async def test_clock_shows_and_advances(toss: httpx.AsyncClient) -> None:
    before = (await toss.get("/_mock/clock")).json()
    assert before["offsetSeconds"] == 0
    await advance(toss, 3600)
    after = (await toss.get("/_mock/clock")).json()
    read_by = datetime.now(UTC)  # the mock read its clock before this (the same real clock)
    assert after["offsetSeconds"] == 3600
    # Real time plus exactly the hour: no earlier than the first reading + 1 h, no later than now + 1 h.
    moved = datetime.fromisoformat(after["now"])
    assert datetime.fromisoformat(before["now"]) + timedelta(hours=1) <= moved <= read_by + timedelta(hours=1)
    for bad in ({"advanceSeconds": -1}, {"advanceSeconds": "1"}, {}):
        assert (await toss.post("/_mock/clock", json=bad)).status_code == 400
    await toss.post("/_mock/reset")
    assert (await toss.get("/_mock/clock")).json()["offsetSeconds"] == 0


async def test_a_window_not_approved_within_30_minutes_expires_with_a_webhook(
    toss: httpx.AsyncClient,
) -> None:
    await toss.get("/checkout", params=window_request("order-ready-001"))
    await advance(toss, 29 * 60)
    assert (await toss.get("/v1/payments/orders/order-ready-001")).json()["status"] == "READY"
    await advance(toss, 61)
    expired = (await toss.get("/v1/payments/orders/order-ready-001")).json()
    assert expired["status"] == "EXPIRED"
    assert expired["failure"] == {
        "code": "EXPIRED_PAYMENT",
        "message": "결제가 만료되었습니다. 다시 시도해주세요.",
    }

    async def expired_webhook_delivered() -> bool:
        deliveries = await webhooks_for(toss, "order-ready-001")
        return any(
            d["body"]["data"]["status"] == "EXPIRED" and d["status"] == "DELIVERED"
            for d in deliveries
            if d["eventType"] == "PAYMENT_STATUS_CHANGED"
        )

    await eventually(expired_webhook_delivered)
    # An expired window cannot be approved any more.
    html = await toss.get("/checkout", params=window_request("order-ready-001"))
    assert html.status_code == 303 and "DUPLICATED_ORDER_ID" in html.headers["location"]


async def test_confirm_after_10_minutes_finds_no_session_and_the_payment_expires(
    toss: httpx.AsyncClient,
) -> None:
    on_time_key = await authenticate_payment(toss, "order-late-0001")
    late_key = await authenticate_payment(toss, "order-late-0002")
    await advance(toss, 9 * 60 + 50)
    assert (await confirm(toss, on_time_key, "order-late-0001")).status_code == 200
    await advance(toss, 20)
    late = await confirm(toss, late_key, "order-late-0002")
    assert (late.status_code, late.json()["code"]) == (404, "NOT_FOUND_PAYMENT_SESSION")
    payment = (await toss.get(f"/v1/payments/{late_key}")).json()
    assert payment["status"] == "EXPIRED" and payment["failure"]["code"] == "EXPIRED_PAYMENT"
    english = await toss.get(f"/v1/payments/{late_key}", headers={"Accept-Language": "en-US"})
    assert english.json()["failure"]["message"] == "The payment has expired. Please try again."
    assert (await toss.get(f"/v1/payments/{on_time_key}")).json()["status"] == "DONE"


async def test_virtual_account_due_date_passes_silently(toss: httpx.AsyncClient) -> None:
    response = await toss.post(
        "/v1/virtual-accounts",
        json={
            "amount": 20000,
            "orderId": "order-due-00001",
            "orderName": "AI 이력서 크레딧",
            "customerName": "김토스",
            "bank": "06",
            "validHours": 1,
        },
    )
    assert response.status_code == 200

    async def issue_webhooks_delivered() -> bool:
        deliveries = await webhooks_for(toss, "order-due-00001")
        return len(deliveries) == 2 and all(d["status"] == "DELIVERED" for d in deliveries)

    await eventually(issue_webhooks_delivered)
    await advance(toss, 3601)
    payment = (await toss.get("/v1/payments/orders/order-due-00001")).json()
    assert payment["status"] == "WAITING_FOR_DEPOSIT"
    assert payment["virtualAccount"]["expired"] is True
    assert len(await webhooks_for(toss, "order-due-00001")) == 2  # no webhook for the due date, like Toss
    late = await toss.post("/_mock/virtual-accounts/order-due-00001/deposit")
    assert (late.status_code, late.json()["code"]) == (400, "EXPIRED_VIRTUAL_ACCOUNT")
