"""Idempotency-Key on issue, over the real Redis the API process uses."""

from __future__ import annotations

import asyncio
import json
import secrets

from .helpers import RESUME, STUDY, Checkout, assert_error_envelope


def _key() -> str:
    return f"e2e-{secrets.token_urlsafe(12)}"


async def test_replay_with_the_same_body_returns_the_first_response(checkout: Checkout) -> None:
    shopper = checkout.shopper("replay")
    key = _key()

    first = await checkout.issue_response(shopper, STUDY, headers={"Idempotency-Key": key})
    # Same JSON, other key order and spacing: still the same request.
    reordered = json.dumps({"amount": 50_000, "productId": "study_123", "productType": "STUDY"}, indent=2)
    second = await checkout.api.post(
        "/api/payments/issue",
        content=reordered,
        headers={**shopper.auth, "Idempotency-Key": key, "Content-Type": "application/json"},
    )

    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    assert second.status_code == 201, second.text
    assert second.headers.get("idempotent-replayed") == "true"
    assert second.json() == first.json()
    assert len(await checkout.list_items(shopper)) == 1


async def test_same_key_with_a_different_body_is_422_pay_009(checkout: Checkout) -> None:
    shopper = checkout.shopper("reuse")
    key = _key()
    first = await checkout.issue_response(shopper, STUDY, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text

    response = await checkout.issue_response(shopper, RESUME, headers={"Idempotency-Key": key})

    assert_error_envelope(response, 422, "PAY_009")
    assert [t["transactionId"] for t in await checkout.list_items(shopper)] == [first.json()["transactionId"]]


async def test_keys_are_per_user(checkout: Checkout) -> None:
    alice, bob = checkout.shopper("alice"), checkout.shopper("bob")
    key = _key()

    a = await checkout.issue_response(alice, STUDY, headers={"Idempotency-Key": key})
    b = await checkout.issue_response(bob, STUDY, headers={"Idempotency-Key": key})

    assert (a.status_code, b.status_code) == (201, 201)
    assert "idempotent-replayed" not in b.headers
    assert a.json()["transactionId"] != b.json()["transactionId"]
    assert len(await checkout.list_items(bob)) == 1


async def test_a_refused_request_does_not_burn_its_key(checkout: Checkout) -> None:
    shopper = checkout.shopper("retrykey")
    key = _key()

    refused = await checkout.issue_response(shopper, {**STUDY, "amount": 1}, headers={"Idempotency-Key": key})
    fixed = await checkout.issue_response(shopper, STUDY, headers={"Idempotency-Key": key})

    assert_error_envelope(refused, 400, "PAY_007")
    assert fixed.status_code == 201, fixed.text
    assert "idempotent-replayed" not in fixed.headers
    assert len(await checkout.list_items(shopper)) == 1


async def test_ten_concurrent_issues_with_one_key_create_one_transaction(checkout: Checkout) -> None:
    shopper = checkout.shopper("race")
    key = _key()

    responses = await asyncio.gather(
        *(checkout.issue_response(shopper, STUDY, headers={"Idempotency-Key": key}) for _ in range(10))
    )

    created = [r for r in responses if r.status_code == 201]
    fresh = [r for r in created if r.headers.get("idempotent-replayed") != "true"]
    assert len(fresh) == 1, [(r.status_code, r.text) for r in responses]
    assert {r.json()["transactionId"] for r in created} == {fresh[0].json()["transactionId"]}
    for response in responses:
        if response.status_code != 201:
            assert_error_envelope(response, 409, "PAY_010")
    items = await checkout.list_items(shopper)
    assert [t["transactionId"] for t in items] == [fresh[0].json()["transactionId"]]
    # Once the first finished, the key replays.
    later = await checkout.issue_response(shopper, STUDY, headers={"Idempotency-Key": key})
    assert later.status_code == 201 and later.headers.get("idempotent-replayed") == "true"
    assert later.json() == fresh[0].json()
