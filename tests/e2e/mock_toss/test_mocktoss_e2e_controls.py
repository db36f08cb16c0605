"""Test controls over HTTP: health, request journal, reset, and seeded chaos."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from mock_toss import __version__
from tests.e2e.mock_toss.helpers import authenticate_payment, confirm, confirmed_payment


async def journal(toss: httpx.AsyncClient, **filters: str) -> dict[str, Any]:
    response = await toss.get("/_mock/requests", params=filters)
    assert response.status_code == 200
    found: dict[str, Any] = response.json()
    return found


async def test_health(toss: httpx.AsyncClient) -> None:
    response = await toss.get("/_mock/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok" and response.json()["version"] == __version__


async def test_journal_records_api_calls_with_their_order_id(toss: httpx.AsyncClient) -> None:
    payment = await confirmed_payment(toss, "order-jrnl-0001")
    key = payment["paymentKey"]
    await toss.get(f"/v1/payments/{key}")
    await toss.get("/v1/payments/orders/order-jrnl-0001")
    await toss.post(
        f"/v1/payments/{key}/cancel", json={"cancelReason": "테스트"}, headers={"Idempotency-Key": "c-1"}
    )
    await confirmed_payment(toss, "order-jrnl-0002")

    everything = await journal(toss)
    assert everything["count"] == 5 == len(everything["requests"])  # the window is not a Toss API call
    confirms = await journal(toss, path="/v1/payments/confirm", orderId="order-jrnl-0001")
    assert confirms["count"] == 1
    [entry] = confirms["requests"]
    assert entry["method"] == "POST" and entry["status"] == 200 and entry["paymentKey"] == key
    assert entry["body"] == {"paymentKey": key, "orderId": "order-jrnl-0001", "amount": 15000}
    assert entry["time"].endswith("+09:00") and entry["idempotencyKey"] is None
    by_order = await journal(toss, orderId="order-jrnl-0001")
    assert [(e["method"], e["path"]) for e in by_order["requests"]] == [
        ("POST", "/v1/payments/confirm"),
        ("GET", f"/v1/payments/{key}"),
        ("GET", "/v1/payments/orders/order-jrnl-0001"),
        ("POST", f"/v1/payments/{key}/cancel"),
    ]
    assert by_order["requests"][3]["idempotencyKey"] == "c-1"
    assert (await journal(toss, method="get"))["count"] == 2
    assert (await journal(toss, path="/v1/payments/*"))["count"] == 5
    assert (await journal(toss, path="/v1/payments/"))["count"] == 5
    assert (await journal(toss, path="/v1/payments"))["count"] == 0  # exact unless it ends in * or /
    assert (await journal(toss, path="/v1/payments/orders/*"))["count"] == 1
    assert (await journal(toss, status="200"))["count"] == 5


async def test_journal_records_failures_and_unknown_payment_keys(toss: httpx.AsyncClient) -> None:
    await toss.get("/v1/payments/tviva_unknown")
    await toss.post("/v1/payments/confirm", content=b"not json")
    entries = (await journal(toss))["requests"]
    assert [(e["status"], e["orderId"]) for e in entries] == [(404, None), (400, None)]
    assert entries[1]["body"] == "not json"
    cleared = await toss.delete("/_mock/requests")
    assert cleared.json()["count"] == 0 and (await journal(toss))["count"] == 0


async def test_reset_forgets_everything(toss: httpx.AsyncClient) -> None:
    payment = await confirmed_payment(toss, "order-reset-001")
    await toss.post("/_mock/clock", json={"advanceSeconds": 60})
    await toss.put("/_mock/chaos", json={"seed": 1, "routes": {"lookup": {"errorRate": 1}}})
    assert (await toss.post("/_mock/reset")).status_code == 200
    assert (await toss.get(f"/v1/payments/{payment['paymentKey']}")).status_code == 404
    assert (await journal(toss))["count"] == 1  # only the lookup just made
    assert (await toss.get("/_mock/webhooks")).json()["count"] == 0
    assert (await toss.get("/_mock/chaos")).json()["enabled"] is False
    assert (await toss.get("/_mock/clock")).json()["offsetSeconds"] == 0
    # The orderId is free again.
    await confirmed_payment(toss, "order-reset-001")


async def lookup_outcomes(toss: httpx.AsyncClient, payment_key: str, count: int) -> list[int]:
    return [(await toss.get(f"/v1/payments/{payment_key}")).status_code for _ in range(count)]


async def test_chaos_with_a_seed_is_reproducible(toss: httpx.AsyncClient) -> None:
    payment_key = await authenticate_payment(toss, "order-chaos-001")
    settings = {"seed": 42, "routes": {"lookup": {"errorRate": 0.5, "errorCode": "COMMON_ERROR"}}}
    shown = await toss.put("/_mock/chaos", json=settings)
    assert shown.status_code == 200 and shown.json()["seed"] == 42
    first_run = await lookup_outcomes(toss, payment_key, 30)
    await toss.put("/_mock/chaos", json=settings)
    second_run = await lookup_outcomes(toss, payment_key, 30)
    assert first_run == second_run
    assert set(first_run) == {200, 500}
    stats = (await toss.get("/_mock/chaos")).json()["stats"]["lookup"]
    assert stats == {"requests": 30, "errors": second_run.count(500), "timeouts": 0}
    failing = await toss.get(f"/v1/payments/{payment_key}")
    if failing.status_code == 500:
        assert failing.json()["code"] == "COMMON_ERROR"
    cleared = await toss.delete("/_mock/chaos")
    assert cleared.json()["enabled"] is False
    assert set(await lookup_outcomes(toss, payment_key, 10)) == {200}


async def test_chaos_on_posts_leaves_lookups_alone_and_injected_errors_are_not_replayed(
    toss: httpx.AsyncClient,
) -> None:
    payment_key = await authenticate_payment(toss, "order-chaos-002")
    await toss.put("/_mock/chaos", json={"seed": 7, "routes": {"*": {"errorRate": 1.0}}})
    assert (await toss.get(f"/v1/payments/{payment_key}")).status_code == 200
    failed = await confirm(toss, payment_key, "order-chaos-002", headers={"Idempotency-Key": "retry-me"})
    assert (failed.status_code, failed.json()["code"]) == (500, "FAILED_INTERNAL_SYSTEM_PROCESSING")
    await toss.delete("/_mock/chaos")
    retried = await confirm(toss, payment_key, "order-chaos-002", headers={"Idempotency-Key": "retry-me"})
    assert (retried.status_code, retried.json()["status"]) == (200, "DONE")


async def test_chaos_timeout_processes_the_request_but_withholds_the_answer(toss: httpx.AsyncClient) -> None:
    payment_key = await authenticate_payment(toss, "order-chaos-003")
    await toss.put(
        "/_mock/chaos", json={"seed": 3, "routes": {"confirm": {"timeoutRate": 1.0, "timeoutSeconds": 1}}}
    )
    with pytest.raises(httpx.ReadTimeout):
        await toss.post(
            "/v1/payments/confirm",
            json={"paymentKey": payment_key, "orderId": "order-chaos-003", "amount": 15000},
            timeout=0.3,
        )
    assert (await toss.get(f"/v1/payments/{payment_key}")).json()["status"] == "DONE"
    [entry] = (await journal(toss, path="/v1/payments/confirm"))["requests"]
    assert entry["orderId"] == "order-chaos-003"
    assert (await toss.get("/_mock/chaos")).json()["stats"]["confirm"]["timeouts"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {"routes": {"refunds": {}}},
        {"routes": {"confirm": {"errorRate": 2}}},
        {"routes": {"confirm": {"errorCode": "NOT_A_CODE"}}},
        ["not", "an", "object"],
    ],
)
async def test_invalid_chaos_is_refused(toss: httpx.AsyncClient, body: Any) -> None:
    response = await toss.put("/_mock/chaos", json=body)
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_REQUEST")
    assert (await toss.get("/_mock/chaos")).json()["enabled"] is False
