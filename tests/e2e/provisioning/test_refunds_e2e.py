"""Refunds over HTTP against real processes: the buyer's refund, the policy's refusals (which change
nothing), admins' partial refunds, the study rule and Idempotency-Key."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

from .helpers import RESUME, STUDY, Buyer, Shop, codes, error_code

KST = timezone(timedelta(hours=9))


async def paid_and_granted(shop: Shop, buyer: Buyer, product: dict[str, Any] = RESUME, **extra: Any) -> str:
    tid = await shop.checkout(buyer, product, **extra)
    await shop.wait_for_status(buyer, tid, 50)
    return tid


async def snapshot(shop: Shop, buyer: Buyer, tid: str) -> tuple[Any, ...]:
    """What a refused refund must not change: state, refunded amount, history, PG cancels."""
    detail = await shop.detail(buyer, tid)
    return (
        detail["statusCode"],
        detail["refundedAmount"],
        codes(detail),
        len(await shop.cancels(tid)),
        (await shop.pg_payment(tid))["status"],
    )


async def test_buyer_refund_ends_refunded_with_the_pg_cancelled(shop: Shop) -> None:
    buyer = shop.buyer("refund")
    tid = await paid_and_granted(shop, buyer)

    response = await shop.refund(buyer, tid, {"reason": "no longer needed"})

    assert response.status_code == 202, response.text
    accepted = response.json()
    assert (accepted["transactionId"], accepted["statusCode"], accepted["status"]) == (
        tid,
        90,
        "REFUND_REQUESTED",
    )
    assert accepted["refundedAmount"] == 0
    final = await shop.wait_for_status(buyer, tid, 95)
    assert final["status"] == "REFUNDED"
    detail = await shop.detail(buyer, tid)
    assert detail["refundedAmount"] == detail["amount"] == 9_900
    # 90, the grant taken back (still 90), then 95 once the PG returned the money.
    assert codes(detail) == [10, 30, 40, 45, 50, 90, 90, 95]
    [refund] = detail["refunds"]
    assert (refund["amount"], refund["status"], refund["revokeStatus"]) == (9_900, "DONE", "DONE")
    assert (detail["refundableAmount"], refund["requestedBy"]) == (0, buyer.user_id)
    sent = await shop.cancels(tid)
    assert len(sent) == 1, sent
    assert sent[0]["body"] == {"cancelReason": "no longer needed"}
    assert sent[0]["idempotencyKey"] == refund["refundId"] == detail["history"][-1]["metadata"]["refundId"]
    assert refund["pgTransactionKey"] == (await shop.pg_payment(tid))["cancels"][0]["transactionKey"]
    pg = await shop.pg_payment(tid)
    assert (pg["status"], pg["balanceAmount"], len(pg["cancels"])) == ("CANCELED", 0, 1)


async def test_refused_refunds_change_nothing(shop: Shop) -> None:
    buyer = shop.buyer("owner")
    stranger = shop.buyer("stranger")
    admin = shop.admin()
    tid = await paid_and_granted(shop, buyer)
    before = await snapshot(shop, buyer, tid)

    not_yours = await shop.refund(stranger, tid, {"reason": "mine now"})
    assert (not_yours.status_code, error_code(not_yours)) == (404, "PAY_008")
    partial = await shop.refund(buyer, tid, {"reason": "half", "amount": 4_000})
    assert (partial.status_code, error_code(partial)) == (403, "AUTH_002")
    assert partial.json()["details"] == {"refundableAmount": 9_900}
    too_much = await shop.refund(admin, tid, {"reason": "too much", "amount": 9_901})
    assert (too_much.status_code, error_code(too_much)) == (400, "PAY_000")
    no_reason = await shop.refund(buyer, tid, {"amount": 9_900})
    assert (no_reason.status_code, error_code(no_reason)) == (400, "PAY_000")
    anonymous = await shop.api.post(f"/api/payments/{tid}/refund", json={"reason": "x"})
    assert (anonymous.status_code, error_code(anonymous)) == (401, "AUTH_001")
    unknown = await shop.refund(buyer, f"TXN_{secrets.token_hex(8)}", {"reason": "x"})
    assert (unknown.status_code, error_code(unknown)) == (404, "PAY_008")

    assert await snapshot(shop, buyer, tid) == before

    # The one refund goes through; a second one is a state error and changes nothing either.
    first = await shop.refund(buyer, tid, {"reason": "ok, full"})
    assert first.status_code == 202, first.text
    await shop.wait_for_status(buyer, tid, 95)
    after = await snapshot(shop, buyer, tid)
    retries: list[tuple[Buyer, dict[str, Any]]] = [
        (buyer, {"reason": "again"}),
        (admin, {"reason": "again", "amount": 100}),
    ]
    for caller, body in retries:
        second = await shop.refund(caller, tid, body)
        assert (second.status_code, error_code(second)) == (409, "PAY_001")
    assert await snapshot(shop, buyer, tid) == after
    assert after[:2] == (95, 9_900)
    assert after[3] == 1  # one cancel at the PG


async def test_a_failed_payment_cannot_be_refunded(shop: Shop) -> None:
    buyer = shop.buyer("failed")
    issued = await shop.api.post("/api/payments/issue", json=RESUME, headers=buyer.headers)
    tid = issued.json()["transactionId"]
    cancelled = await shop.api.get(  # the buyer closed the window: the PG knows no payment
        "/api/payments/callback/fail",
        params={"transactionId": tid, "code": "PAY_PROCESS_CANCELED", "message": "cancelled"},
        follow_redirects=False,
    )
    assert cancelled.status_code == 302
    assert (await shop.status(buyer, tid))["statusCode"] == 41

    response = await shop.refund(buyer, tid, {"reason": "never paid"})

    assert (response.status_code, error_code(response)) == (409, "PAY_001")
    assert (await shop.status(buyer, tid))["statusCode"] == 41


async def test_admin_partial_refunds_keep_the_purchase_until_the_last(shop: Shop) -> None:
    buyer = shop.buyer("partial")
    admin = shop.admin()
    tid = await paid_and_granted(shop, buyer, STUDY)

    response = await shop.refund(admin, tid, {"reason": "goodwill", "amount": 20_000})

    assert response.status_code == 202, response.text
    assert (response.json()["statusCode"], response.json()["refundableAmount"]) == (50, 30_000)
    await shop.wait_until(lambda: _refunded(shop, admin, tid, 20_000), "the partial refund")
    status = await shop.status(buyer, tid)
    assert (status["statusCode"], status["refundedAmount"], status["refundableAmount"]) == (
        50,
        20_000,
        30_000,
    )
    [sent] = await shop.cancels(tid)
    assert sent["body"] == {"cancelReason": "goodwill", "cancelAmount": 20_000}
    pg = await shop.pg_payment(tid)
    assert (pg["status"], pg["balanceAmount"]) == ("PARTIAL_CANCELED", 30_000)

    rest = await shop.refund(admin, tid, {"reason": "the rest"})
    assert rest.status_code == 202, rest.text
    await shop.wait_for_status(buyer, tid, 95)
    detail = await shop.detail(admin, tid)
    assert [(r["amount"], r["status"]) for r in detail["refunds"]] == [(20_000, "DONE"), (30_000, "DONE")]
    assert (detail["refundedAmount"], detail["refundableAmount"]) == (50_000, 0)


async def _refunded(shop: Shop, caller: Buyer, tid: str, amount: int) -> bool:
    return (await shop.detail(caller, tid))["refundedAmount"] == amount


STARTED_3_DAYS_AGO: dict[str, Any] = {
    "productType": "STUDY",
    "productId": "study_started_3d",
    "amount": 50_000,
}
STARTED_8_DAYS_AGO: dict[str, Any] = {
    "productType": "STUDY",
    "productId": "study_started_8d",
    "amount": 50_000,
}


async def test_study_started_three_days_ago_refunds_half(shop: Shop) -> None:
    buyer = shop.buyer("study")
    tid = await paid_and_granted(shop, buyer, STARTED_3_DAYS_AGO)

    full = await shop.refund(buyer, tid, {"reason": "full please", "amount": 50_000})
    assert (full.status_code, error_code(full)) == (403, "AUTH_002")
    assert full.json()["details"] == {"refundableAmount": 25_000}
    assert (await shop.status(buyer, tid))["statusCode"] == 50

    half = await shop.refund(buyer, tid, {"reason": "what I may"})
    assert half.status_code == 202, half.text
    await shop.wait_until(lambda: _refunded(shop, buyer, tid, 25_000), "the half refund")
    [sent] = await shop.cancels(tid)
    assert sent["body"] == {"cancelReason": "what I may", "cancelAmount": 25_000}
    assert (await shop.pg_payment(tid))["balanceAmount"] == 25_000
    # The policy's half was refunded: the owner gets no more (an admin still could).
    again = await shop.refund(buyer, tid, {"reason": "more"})
    assert (again.status_code, error_code(again)) == (403, "AUTH_002")
    assert again.json()["details"] == {"refundableAmount": 0}


async def test_study_started_long_ago_is_refused_for_the_owner(shop: Shop) -> None:
    buyer = shop.buyer("late")
    tid = await paid_and_granted(shop, buyer, STARTED_8_DAYS_AGO)
    before = await snapshot(shop, buyer, tid)

    response = await shop.refund(buyer, tid, {"reason": "too late"})

    assert (response.status_code, error_code(response)) == (403, "AUTH_002")
    assert await snapshot(shop, buyer, tid) == before


async def test_a_start_date_sent_in_metadata_is_ignored(shop: Shop) -> None:
    """Attack: `metadata.studyStartsAt: "2099-01-01"` at issue once bought a 100 % refund forever."""
    buyer = shop.buyer("datehack")
    future = datetime(2099, 1, 1, tzinfo=KST).isoformat()
    tid = await paid_and_granted(shop, buyer, STARTED_8_DAYS_AGO, metadata={"studyStartsAt": future})
    before = await snapshot(shop, buyer, tid)

    response = await shop.refund(buyer, tid, {"reason": "the study has not started, has it?"})

    assert (response.status_code, error_code(response)) == (403, "AUTH_002")
    assert await snapshot(shop, buyer, tid) == before


async def test_refund_honours_idempotency_key(shop: Shop) -> None:
    buyer = shop.buyer("idem")
    tid = await paid_and_granted(shop, buyer)
    key = f"refund-{secrets.token_hex(6)}"

    first = await shop.refund(buyer, tid, {"reason": "double click"}, key=key)
    replay = await shop.refund(buyer, tid, {"reason": "double click"}, key=key)
    other_body = await shop.refund(buyer, tid, {"reason": "different"}, key=key)

    assert first.status_code == 202, first.text
    assert replay.status_code == 202, replay.text
    assert replay.headers.get("idempotent-replayed") == "true"
    assert replay.json() == first.json()
    assert (other_body.status_code, error_code(other_body)) == (422, "PAY_009")
    await shop.wait_for_status(buyer, tid, 95)
    assert len(await shop.cancels(tid)) == 1
    assert len((await shop.detail(buyer, tid))["refunds"]) == 1
