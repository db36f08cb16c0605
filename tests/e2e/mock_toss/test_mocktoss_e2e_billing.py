"""Automatic payments against the mock as a real process: the QA subscription flow on the moved
clock (register, issue, three monthly charges with one declined, unsubscribe, a charge after it),
the registration window over plain HTTP, and webhooks of billing charges at a real receiver."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from mock_toss.config import DEFAULT_CLIENT_KEY
from tests.e2e.mock_toss.helpers import WebhookReceiver, eventually

MONTH_SECONDS = 30 * 24 * 3600
WINDOW = {
    "clientKey": DEFAULT_CLIENT_KEY,
    "successUrl": "http://shop.test/subscription/billing/success?plan=monthly",
    "failUrl": "http://shop.test/subscription/billing/fail",
}


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


async def register_card_in_window(toss: httpx.AsyncClient, customer_key: str, card_number: str) -> str:
    """What a browser does, over plain HTTP: open the window, submit its form, follow nothing."""
    window = await toss.get("/billing-auth", params={**WINDOW, "customerKey": customer_key})
    assert window.status_code == 200 and window.headers["content-type"].startswith("text/html")
    action = re.search(r'<form method="post" action="([^"]+)"', window.text)
    assert action, window.text
    submitted = await toss.post(action.group(1), data={"action": "register", "cardNumber": card_number})
    assert submitted.status_code == 303
    location = submitted.headers["location"]
    assert location.startswith("http://shop.test/subscription/billing/success?plan=monthly&customerKey=")
    query = query_of(location)
    assert query["customerKey"] == customer_key
    return query["authKey"]


async def charge(
    toss: httpx.AsyncClient, billing_key: str, customer_key: str, order_id: str
) -> httpx.Response:
    return await toss.post(
        f"/v1/billing/{billing_key}",
        json={
            "customerKey": customer_key,
            "amount": 9900,
            "orderId": order_id,
            "orderName": "프리미엄 월 구독",
        },
        headers={"Idempotency-Key": f"charge-{order_id}"},
    )


async def test_the_qa_subscription_flow_on_the_moved_clock(
    toss: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    customer_key = "qa-subscriber-0001"
    # Subscribe: register the card in the window, then the server issues the billing key.
    auth_key = await register_card_in_window(toss, customer_key, "4330000000000005")
    issued = await toss.post(
        "/v1/billing/authorizations/issue", json={"authKey": auth_key, "customerKey": customer_key}
    )
    assert issued.status_code == 200, issued.text
    billing_key = issued.json()["billingKey"]
    assert issued.json()["cardNumber"] == "43300000****000*"

    # Three monthly charges; in month 2 the card has no money left (test control), then it has again.
    outcomes: list[tuple[int, dict[str, Any]]] = []
    for month in (1, 2, 3):
        if month == 2:
            swapped = await toss.post(
                f"/_mock/billing/{billing_key}/card", json={"cardNumber": "4330000000000013"}
            )
            assert swapped.status_code == 200
        if month == 3:
            await toss.post(f"/_mock/billing/{billing_key}/card", json={"cardNumber": "4330000000000005"})
        response = await charge(toss, billing_key, customer_key, f"qa-sub-0001-m{month}")
        outcomes.append((response.status_code, response.json()))
        clock = await toss.post("/_mock/clock", json={"advanceSeconds": MONTH_SECONDS})
        assert clock.status_code == 200
    (first_status, first), (second_status, second), (third_status, third) = outcomes
    assert (first_status, first["status"], first["type"]) == (200, "DONE", "BILLING")
    assert (second_status, second["code"]) == (403, "REJECT_CARD_PAYMENT")
    assert (third_status, third["status"]) == (200, "DONE")
    months_apart = datetime.fromisoformat(third["approvedAt"]) - datetime.fromisoformat(first["approvedAt"])
    assert 59 <= months_apart.days <= 61
    declined = (await toss.get("/v1/payments/orders/qa-sub-0001-m2")).json()
    assert (declined["status"], declined["failure"]["code"]) == ("ABORTED", "REJECT_CARD_PAYMENT")

    # Unsubscribe: delete the key; a further charge fails like Toss's.
    deleted = await toss.delete(f"/v1/billing/{billing_key}")
    assert (deleted.status_code, deleted.content) == (200, b"")
    after = await charge(toss, billing_key, customer_key, "qa-sub-0001-m4")
    assert (after.status_code, after.json()["code"]) == (400, "INVALID_BILL_KEY_REQUEST")

    # The merchant heard of every charge, declined included.
    async def all_heard() -> bool:
        return all(receiver.for_order(f"qa-sub-0001-m{month}") for month in (1, 2, 3))

    await eventually(all_heard)
    heard = {
        month: [hook.json["data"]["status"] for hook in receiver.for_order(f"qa-sub-0001-m{month}")]
        for month in (1, 2, 3)
    }
    assert heard == {1: ["DONE"], 2: ["ABORTED"], 3: ["DONE"]}
    journal = (await toss.get("/_mock/requests", params={"path": f"/v1/billing/{billing_key}"})).json()
    assert [(entry["method"], entry["status"]) for entry in journal["requests"]] == [
        ("POST", 200),
        ("POST", 403),
        ("POST", 200),
        ("DELETE", 200),
        ("POST", 400),
    ]


async def test_registration_failures_and_the_control_for_programs(toss: httpx.AsyncClient) -> None:
    window = await toss.get("/billing-auth", params={**WINDOW, "customerKey": "qa-subscriber-0002"})
    action = re.search(r'<form method="post" action="([^"]+)"', window.text)
    assert action
    canceled = await toss.post(action.group(1), data={"action": "cancel"})
    assert query_of(canceled.headers["location"])["code"] == "PAY_PROCESS_CANCELED"
    rejected = await toss.post(action.group(1), data={"action": "register", "cardNumber": "4330000000000062"})
    assert query_of(rejected.headers["location"])["code"] == "REJECT_CARD_COMPANY"
    control = await toss.post(
        "/_mock/billing-auth",
        json={**WINDOW, "customerKey": "qa-subscriber-0002", "cardNumber": "4330000000000013"},
    )
    auth_key = control.json()["authKey"]
    wrong = await toss.post(
        "/v1/billing/authorizations/issue", json={"authKey": auth_key, "customerKey": "qa-subscriber-9999"}
    )
    assert (wrong.status_code, wrong.json()["code"]) == (400, "NOT_MATCHES_CUSTOMER_KEY")
    billing_key = (
        await toss.post(
            "/v1/billing/authorizations/issue",
            json={"authKey": auth_key, "customerKey": "qa-subscriber-0002"},
        )
    ).json()["billingKey"]
    spent = await toss.post(
        "/v1/billing/authorizations/issue", json={"authKey": auth_key, "customerKey": "qa-subscriber-0002"}
    )
    assert (spent.status_code, spent.json()["code"]) == (404, "NOT_FOUND_BILLING")
    # Registered with the reject card: every charge is declined.
    for order_id in ("qa-sub-0002-m1", "qa-sub-0002-m2"):
        declined = await charge(toss, billing_key, "qa-subscriber-0002", order_id)
        assert declined.json()["code"] == "REJECT_CARD_PAYMENT"


async def test_idempotent_charges_replay_and_are_journaled_once_per_call(toss: httpx.AsyncClient) -> None:
    auth_key = (
        await toss.post("/_mock/billing-auth", json={**WINDOW, "customerKey": "qa-subscriber-0003"})
    ).json()["authKey"]
    billing_key = (
        await toss.post(
            "/v1/billing/authorizations/issue",
            json={"authKey": auth_key, "customerKey": "qa-subscriber-0003"},
        )
    ).json()["billingKey"]
    first = await charge(toss, billing_key, "qa-subscriber-0003", "qa-sub-0003-m1")
    replay = await charge(toss, billing_key, "qa-subscriber-0003", "qa-sub-0003-m1")
    assert first.status_code == replay.status_code == 200
    assert first.json() == replay.json()
    entries = (await toss.get("/_mock/requests", params={"orderId": "qa-sub-0003-m1"})).json()["requests"]
    assert len(entries) == 2 and all(entry["idempotencyKey"] == "charge-qa-sub-0003-m1" for entry in entries)
