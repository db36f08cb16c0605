"""Confirms whose outcome we cannot know at once: the PG answered too late, or with a 5xx.

What these tests show is what the service does *today*: it never marks such a payment failed
without asking the PG, it never confirms twice (one Idempotency-Key for every attempt), and it
leaves the transaction PAYMENT_PENDING (30) when the PG's lookup says the payment is still in
progress. Nothing re-asks the PG afterwards yet: the automatic resolver (reconciler) arrives in a
later issue, and these tests must then be extended to expect 40.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .helpers import CARD_FAIL_ONCE, CARD_SLOW_CONFIRM, Checkout, page_redirect, status_codes

SLOW_CONFIRM_SECONDS = 4.0  # the shared mock runs with --slow-confirm-seconds 4 (tests/conftest.py)
API_MAX_ATTEMPTS = 2  # TOSS_MAX_ATTEMPTS of the e2e API process


async def _wait_for_answers(checkout: Checkout, order_id: str, *, max_seconds: float) -> list[dict[str, Any]]:
    """The confirm journal once the mock has answered every confirm it received for the order."""
    deadline = time.monotonic() + max_seconds
    while True:
        confirms = await checkout.confirms(order_id)
        if (confirms and all(c["status"] is not None for c in confirms)) or time.monotonic() > deadline:
            return confirms
        await asyncio.sleep(0.2)


def _assert_pending(status: dict[str, Any]) -> None:
    assert (status["status"], status["statusCode"]) == ("PAYMENT_PENDING", 30), status
    assert (status["isSettled"], status["needsPolling"]) == (False, True)
    assert isinstance(status["retryAfterMs"], int) and 0 < status["retryAfterMs"] <= 5000
    assert status["failure"] is None


async def test_slow_confirm_past_our_timeout_stays_pending_with_one_idempotency_key_and_one_charge(
    checkout: Checkout,
) -> None:
    shopper = checkout.shopper("slow")
    issued = await checkout.issue(shopper)
    tid = issued["transactionId"]
    window = await checkout.open_window(issued, card=CARD_SLOW_CONFIRM)

    # Our API gives up on the PG after 1 s x 2 attempts, yet sends the buyer to the success page
    # (which polls): the money may have moved, so it must not say "failed".
    landed = await checkout.follow(window.redirect_url)
    confirms_at_landing = await checkout.confirms(tid)

    page = page_redirect(landed)
    assert page.is_success, page.location
    assert page.params == {"transactionId": tid}
    # The PG still held our first confirm when the buyer had the page: the callback did not wait for it.
    assert confirms_at_landing and confirms_at_landing[0]["status"] is None, confirms_at_landing
    _assert_pending(await checkout.status(shopper, tid))

    # The mock finishes the slow confirm: the payment is DONE at the PG, charged exactly once.
    confirms = await _wait_for_answers(checkout, tid, max_seconds=SLOW_CONFIRM_SECONDS + 4)
    assert 1 <= len(confirms) <= API_MAX_ATTEMPTS, confirms
    keys = {c["idempotencyKey"] for c in confirms}
    assert len(keys) == 1 and None not in keys, confirms  # every attempt carried the SAME key
    assert [c["status"] for c in confirms].count(200) == 1, confirms  # exactly one approval
    pg = await checkout.pg_payment(tid)
    assert (pg["status"], pg["totalAmount"], pg["paymentKey"]) == ("DONE", 50_000, window.payment_key)

    # What is true today: nothing re-asks the PG, so we still say 30 although the PG says DONE.
    _assert_pending(await checkout.status(shopper, tid))
    detail = await checkout.detail(shopper, tid)
    assert status_codes(detail)[:2] == [10, 30]
    assert 40 not in status_codes(detail) and 41 not in status_codes(detail)
    messages = [h["message"] for h in detail["history"]]
    assert any("confirm outcome unknown" in m for m in messages), messages
    # The browser's key is stored only once the PG reports it for this order (reconciliation does).
    assert detail["paymentKey"] is None
    # A refresh of the callback neither confirms again nor fails the payment.
    again = page_redirect(await checkout.follow(window.redirect_url))
    assert again.is_success
    assert len(await checkout.confirms(tid)) == len(confirms)


async def test_confirm_500_once_stays_pending_because_the_lookup_says_in_progress(checkout: Checkout) -> None:
    shopper = checkout.shopper("failonce")
    issued = await checkout.issue(shopper)
    tid = issued["transactionId"]
    window = await checkout.open_window(issued, card=CARD_FAIL_ONCE)

    landed = page_redirect(await checkout.follow(window.redirect_url))

    # A 5xx is an answer, so it is not retried; the outcome is unknown → lookup → IN_PROGRESS.
    assert landed.is_success, landed.location
    _assert_pending(await checkout.status(shopper, tid))
    confirms = await checkout.confirms(tid)
    assert len(confirms) == 1, confirms
    assert confirms[0]["status"] == 500
    detail = await checkout.detail(shopper, tid)
    messages = [h["message"] for h in detail["history"]]
    assert any("confirm outcome unknown" in m for m in messages), messages
    assert any("IN_PROGRESS" in m for m in messages), messages
    assert 41 not in status_codes(detail)
    pg = await checkout.pg_payment(tid)
    assert pg["status"] == "IN_PROGRESS"  # not charged: the PG waits for a confirm that never comes
