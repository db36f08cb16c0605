"""The card checkout as a buyer lives it: issue → payment window → callback → polling."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

from .helpers import (
    CLIENT_KEY,
    FRONTEND,
    SUCCESS_CODES,
    Checkout,
    page_redirect,
    status_codes,
)

TRANSACTION_ID = re.compile(r"[A-Za-z0-9_-]{6,64}")


async def test_issue_answers_what_the_payment_window_needs(checkout: Checkout) -> None:
    shopper = checkout.shopper("issue")
    before = datetime.now(UTC)

    issued = await checkout.issue(shopper)

    tid = issued["transactionId"]
    assert TRANSACTION_ID.fullmatch(tid)
    assert (issued["status"], issued["statusCode"], issued["amount"]) == ("CREATED", 10, 50_000)
    assert issued["orderName"]
    assert issued["clientKey"] == CLIENT_KEY
    assert issued["successUrl"] == f"{checkout.api_url}/api/payments/callback/success"
    assert issued["failUrl"].startswith(f"{checkout.api_url}/api/payments/callback/fail?")
    assert tid in issued["failUrl"]  # PAY_PROCESS_CANCELED arrives without orderId
    expires_at = datetime.fromisoformat(issued["expiresAt"])
    assert expires_at.tzinfo is not None
    assert before + timedelta(minutes=29) < expires_at < before + timedelta(minutes=31)
    status = await checkout.status(shopper, tid)
    assert (status["status"], status["statusCode"], status["needsPolling"]) == ("CREATED", 10, True)
    assert status["isSettled"] is False
    assert [t["transactionId"] for t in await checkout.list_items(shopper)] == [tid]


async def test_approved_card_lands_on_the_success_page_and_settles_as_paid(checkout: Checkout) -> None:
    shopper = checkout.shopper("happy")

    issued, window, landed = await checkout.pay(shopper)

    tid = issued["transactionId"]
    assert window.payment_key
    assert landed.is_success, landed.location
    assert landed.location == f"{FRONTEND}/payment/success?transactionId={tid}"

    polls = await checkout.poll_until_settled(shopper, tid)
    final = polls[-1]
    assert final["statusCode"] in SUCCESS_CODES, final
    assert final["isSettled"] is True
    assert final["needsPolling"] is False
    assert final["retryAfterMs"] is None
    assert final["failure"] is None
    assert final["amount"] == 50_000
    assert final["completedAt"] is not None

    confirms = await checkout.confirms(tid)
    assert len(confirms) == 1, confirms
    assert confirms[0]["body"] == {"paymentKey": window.payment_key, "orderId": tid, "amount": 50_000}
    assert confirms[0]["status"] == 200
    assert confirms[0]["idempotencyKey"]  # a confirm is never sent without one

    detail = await checkout.detail(shopper, tid)
    codes = status_codes(detail)
    assert codes[:3] == [10, 30, 40], detail["history"]
    assert detail["paymentKey"] == window.payment_key
    assert detail["pgMethod"] == "CARD"
    assert detail["userId"] == shopper.user_id
    pg = await checkout.pg_payment(tid)
    assert (pg["status"], pg["totalAmount"], pg["paymentKey"]) == ("DONE", 50_000, window.payment_key)


async def test_buyer_cancelling_the_window_lands_on_the_fail_page(checkout: Checkout) -> None:
    shopper = checkout.shopper("cancel")
    issued = await checkout.issue(shopper)
    tid = issued["transactionId"]

    window = await checkout.open_window(issued, action="cancel")

    assert window.payment_key is None
    assert "PAY_PROCESS_CANCELED" in window.redirect_url
    assert "orderId=" not in window.redirect_url  # Toss leaves it out: our failUrl carries the id
    landed = page_redirect(await checkout.follow(window.redirect_url))
    assert landed.is_fail
    assert landed.params["transactionId"] == tid
    assert (landed.params["code"], landed.params["errorCode"]) == ("PAY_PROCESS_CANCELED", "PAY_003")
    assert landed.params["message"] == "The payment was cancelled in the payment window."
    status = await checkout.status(shopper, tid)
    assert (status["statusCode"], status["isSettled"], status["needsPolling"]) == (41, True, False)
    assert status["retryAfterMs"] is None
    assert (status["failure"]["code"], status["failure"]["pgCode"]) == ("PAY_003", "PAY_PROCESS_CANCELED")
    detail = await checkout.detail(shopper, tid)
    assert detail["failure"]["pgCode"] == "PAY_PROCESS_CANCELED"
    assert status_codes(detail) == [10, 41]
    assert await checkout.confirms(tid) == []


async def test_five_simultaneous_success_callbacks_confirm_once(checkout: Checkout) -> None:
    shopper = checkout.shopper("double")
    issued = await checkout.issue(shopper)
    tid = issued["transactionId"]
    window = await checkout.open_window(issued)

    responses = await asyncio.gather(*(checkout.follow(window.redirect_url) for _ in range(5)))

    for response in responses:
        landed = page_redirect(response)
        assert landed.is_success, landed.location
        assert landed.params == {"transactionId": tid}
    status = await checkout.status(shopper, tid)
    assert status["statusCode"] in SUCCESS_CODES, status
    assert len(await checkout.confirms(tid)) == 1
    detail = await checkout.detail(shopper, tid)
    assert status_codes(detail).count(30) == 1
    assert status_codes(detail).count(40) == 1


async def test_refreshing_the_success_callback_later_redirects_again_without_confirming(
    checkout: Checkout,
) -> None:
    shopper = checkout.shopper("refresh")
    issued, window, landed = await checkout.pay(shopper)
    tid = issued["transactionId"]
    assert landed.is_success

    again = page_redirect(await checkout.follow(window.redirect_url))
    once_more = page_redirect(await checkout.follow(window.redirect_url))

    assert again.location == landed.location
    assert once_more.location == landed.location
    assert len(await checkout.confirms(tid)) == 1
    assert (await checkout.status(shopper, tid))["statusCode"] in SUCCESS_CODES


async def test_a_late_fail_redirect_cannot_undo_a_paid_transaction(checkout: Checkout) -> None:
    shopper = checkout.shopper("latefail")
    issued, _, landed = await checkout.pay(shopper)
    tid = issued["transactionId"]
    assert landed.is_success

    after = page_redirect(await checkout.follow(f"{issued['failUrl']}&code=PAY_PROCESS_CANCELED&message=x"))

    assert after.is_success  # it redirects by the current state
    status = await checkout.status(shopper, tid)
    assert status["statusCode"] in SUCCESS_CODES
    assert 41 not in status_codes(await checkout.detail(shopper, tid))


async def test_a_second_product_and_buyer_do_not_interfere(checkout: Checkout) -> None:
    alice, bob = checkout.shopper("alice"), checkout.shopper("bob")
    a = await checkout.issue(alice)
    b = await checkout.issue(
        bob, {"productType": "AI_RESUME", "productId": "resume_credit_10", "amount": 9_900}
    )
    wa, wb = await asyncio.gather(checkout.open_window(a), checkout.open_window(b))

    la, lb = await asyncio.gather(checkout.follow(wa.redirect_url), checkout.follow(wb.redirect_url))

    assert page_redirect(la).params["transactionId"] == a["transactionId"]
    assert page_redirect(lb).params["transactionId"] == b["transactionId"]
    assert (await checkout.status(alice, a["transactionId"]))["amount"] == 50_000
    assert (await checkout.status(bob, b["transactionId"]))["amount"] == 9_900
    assert [t["transactionId"] for t in await checkout.list_items(alice)] == [a["transactionId"]]
    assert [t["transactionId"] for t in await checkout.list_items(bob)] == [b["transactionId"]]
