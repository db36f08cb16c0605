"""The rest of the core API against the mock as a real process: routing (auth first, journaled),
key-in payments with their webhooks and the slow card, and cash receipts of a paid virtual account."""

from __future__ import annotations

import hashlib
import hmac

import httpx

from tests.e2e.mock_toss.helpers import (
    SLOW_CONFIRM_SECONDS,
    WEBHOOK_SECRET,
    WebhookReceiver,
    eventually,
)


def key_in_body(order_id: str, card_number: str = "4330000000000005") -> dict[str, object]:
    return {
        "amount": 15000,
        "orderId": order_id,
        "orderName": "스터디 등록",
        "cardNumber": card_number,
        "cardExpirationYear": "39",
        "cardExpirationMonth": "12",
        "customerIdentityNumber": "900101",
    }


async def test_unknown_routes_and_methods_check_the_key_first_and_are_journaled(
    toss: httpx.AsyncClient,
) -> None:
    async with httpx.AsyncClient(base_url=str(toss.base_url), trust_env=False, timeout=10) as anonymous:
        without_key = await anonymous.get("/v1/no-such-route")
        assert (without_key.status_code, without_key.json()["code"]) == (401, "UNAUTHORIZED_KEY")
    unknown = await toss.get("/v1/no-such-route")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND")
    wrong_method = await toss.delete("/v1/payments/confirm")
    assert (wrong_method.status_code, wrong_method.json()["code"]) == (404, "NOT_FOUND_HTTP_METHOD")
    key_in = await toss.post("/v1/payments/key-in", json={})
    assert (key_in.status_code, key_in.json()["code"]) == (400, "INVALID_REQUEST")  # not a 405
    journal = (await toss.get("/_mock/requests")).json()["requests"]
    assert [(entry["method"], entry["path"], entry["status"]) for entry in journal] == [
        ("GET", "/v1/no-such-route", 401),
        ("GET", "/v1/no-such-route", 404),
        ("DELETE", "/v1/payments/confirm", 404),
        ("POST", "/v1/payments/key-in", 400),
    ]


async def test_a_key_in_payment_is_done_and_signed_webhooks_follow(
    toss: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    response = await toss.post(
        "/v1/payments/key-in",
        json=key_in_body("e2e-keyin-0001"),
        headers={"Idempotency-Key": "e2e-keyin-0001"},
    )
    assert response.status_code == 200, response.text
    payment = response.json()
    assert (payment["status"], payment["method"], payment["type"]) == ("DONE", "카드", "NORMAL")
    replay = await toss.post(
        "/v1/payments/key-in",
        json=key_in_body("e2e-keyin-0001"),
        headers={"Idempotency-Key": "e2e-keyin-0001"},
    )
    assert replay.json() == payment

    async def heard() -> bool:
        return bool(receiver.for_order("e2e-keyin-0001"))

    await eventually(heard)
    [hook] = receiver.for_order("e2e-keyin-0001")
    assert hook.json["eventType"] == "PAYMENT_STATUS_CHANGED" and hook.json["data"]["status"] == "DONE"
    expected = hmac.new(WEBHOOK_SECRET.encode(), hook.body, hashlib.sha256).hexdigest()
    assert hook.headers["x-toss-signature"] == expected
    canceled = await toss.post(f"/v1/payments/{payment['paymentKey']}/cancel", json={"cancelReason": "환불"})
    assert canceled.json()["status"] == "CANCELED"


async def test_the_slow_card_finishes_a_key_in_payment_even_when_the_client_gives_up(
    toss: httpx.AsyncClient,
) -> None:
    body = key_in_body("e2e-keyin-slow-1", "4330000000000047")
    try:
        await toss.post("/v1/payments/key-in", json=body, timeout=SLOW_CONFIRM_SECONDS / 4)
        raise AssertionError("the slow card answered at once")
    except httpx.TimeoutException:
        pass
    during = (await toss.get("/v1/payments/orders/e2e-keyin-slow-1")).json()
    assert during["status"] == "IN_PROGRESS"

    async def done() -> bool:
        return (await toss.get("/v1/payments/orders/e2e-keyin-slow-1")).json()["status"] == "DONE"

    await eventually(done, within=SLOW_CONFIRM_SECONDS + 5)
    retry = await toss.post("/v1/payments/key-in", json=body)
    assert retry.json()["code"] == "DUPLICATED_ORDER_ID"


async def test_a_deposited_virtual_account_carries_its_cash_receipt(
    toss: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    issued = await toss.post(
        "/v1/virtual-accounts",
        json={
            "amount": 30000,
            "orderId": "e2e-cash-va-1",
            "orderName": "스터디 등록",
            "customerName": "김토스",
            "bank": "신한",
            "cashReceipt": {"type": "소득공제", "registrationNumber": "01012345678"},
        },
    )
    assert issued.status_code == 200, issued.text
    assert issued.json()["cashReceipt"] is None
    deposited = (await toss.post("/_mock/virtual-accounts/e2e-cash-va-1/deposit", json={})).json()
    receipt = deposited["cashReceipt"]
    assert (receipt["type"], receipt["amount"]) == ("소득공제", 30000)

    async def heard_done() -> bool:
        return any(
            hook.json.get("data", {}).get("status") == "DONE" for hook in receiver.for_order("e2e-cash-va-1")
        )

    await eventually(heard_done)
    done_hook = next(
        hook
        for hook in receiver.for_order("e2e-cash-va-1")
        if hook.json.get("data", {}).get("status") == "DONE"
    )
    assert done_hook.json["data"]["cashReceipt"] == receipt
    today = (await toss.get("/_mock/clock")).json()["now"][:10]
    listing = (await toss.get("/v1/cash-receipts", params={"requestDate": today})).json()
    assert [(row["orderId"], row["transactionType"]) for row in listing["data"]] == [
        ("e2e-cash-va-1", "CONFIRM")
    ]
    own = await toss.post(
        "/v1/cash-receipts",
        json={
            "amount": 5000,
            "orderId": "e2e-cash-own-1",
            "orderName": "현장 결제",
            "customerIdentityNumber": "01012345678",
            "type": "지출증빙",
        },
    )
    canceled = await toss.post(f"/v1/cash-receipts/{own.json()['receiptKey']}/cancel", json={})
    assert (canceled.json()["transactionType"], canceled.json()["amount"]) == ("CANCEL", 5000)
    # Paging one record at a time walks the same three records as one full page.
    full = (await toss.get("/v1/cash-receipts", params={"requestDate": today})).json()["data"]
    walked, cursor = [], 0
    for _ in range(5):
        page = (
            await toss.get("/v1/cash-receipts", params={"requestDate": today, "cursor": cursor, "limit": 1})
        ).json()
        walked.extend(page["data"])
        if not page["hasNext"]:
            break
        cursor = page["lastCursor"]
    assert walked == full and len(full) == 3
    assert sorted((row["orderId"], row["transactionType"]) for row in full) == [
        ("e2e-cash-own-1", "CANCEL"),
        ("e2e-cash-own-1", "CONFIRM"),
        ("e2e-cash-va-1", "CONFIRM"),
    ]
