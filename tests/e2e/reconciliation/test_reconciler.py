"""The reconciler end to end: confirms whose outcome is unknown, a PG that is down, expiry.

The stack sweeps every second, asks the PG 1 s after a claim and backs off 1, 3, 6, 30 s
(BACKOFF × 0.1). The mock holds the slow card's confirm 3 s; our read timeout is 1 s.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from app.core.payment_results import confirm_idempotency_key

from .helpers import (
    CARD_FAIL_ONCE,
    CARD_SLOW_CONFIRM,
    Shop,
    codes,
    eventually,
    is_done_psc,
)


def _single_key(confirms: list[dict[str, Any]], tid: str) -> None:
    keys = {c["idempotencyKey"] for c in confirms}
    # every attempt, by anyone, carried the same key: one per order and the PG's paymentKey
    assert keys == {confirm_idempotency_key(tid, confirms[0]["body"]["paymentKey"])}, confirms


async def _done_webhooks(shop: Shop, tid: str) -> list[dict[str, Any]]:
    return [d for d in await shop.mock_webhooks(tid) if is_done_psc(d)]


async def test_a_confirm_that_timed_out_is_resolved_by_asking_the_pg_without_a_second_charge(
    shop: Shop,
) -> None:
    shopper = shop.shopper("slow")
    issued = await shop.issue(shopper)
    tid = issued["transactionId"]
    redirect_url = await shop.open_window(issued, card=CARD_SLOW_CONFIRM)

    landed = await shop.follow(redirect_url)
    confirms_at_landing = await shop.confirms(tid)

    assert landed.is_success, landed  # money may have moved: never "failed" without asking the PG
    # The buyer had the page while the PG still held our first confirm: the callback did not wait for it.
    assert confirms_at_landing and confirms_at_landing[0]["status"] is None, confirms_at_landing
    assert (await shop.status(shopper, tid))["statusCode"] == 30
    final = await shop.wait_for_status(shopper, tid, 50)

    assert final["failure"] is None
    confirms = await shop.confirms(tid)
    _single_key(confirms, tid)
    pg = await shop.pg_payment(tid)
    assert (pg["status"], pg["balanceAmount"], pg["cancels"]) == ("DONE", 50_000, None), pg
    assert len(await _done_webhooks(shop, tid)) == 1  # the mock approved it exactly once
    detail = await shop.detail(shopper, tid)
    assert codes(detail).count(40) == 1 and codes(detail)[-3:] == [40, 45, 50], detail["history"]
    messages = [h["message"] for h in detail["history"]]
    assert any("confirm outcome unknown" in m for m in messages), messages
    final_code, n_confirms, cancels = await shop.summary("slow-confirm-timeout", shopper, tid)
    assert (final_code, cancels) == (50, 0)
    assert n_confirms >= 2, confirms  # our timed-out attempt plus at least one retry, one key


async def test_a_pg_that_is_down_leaves_the_payment_pending_until_it_answers_again(shop: Shop) -> None:
    shopper = shop.shopper("pgdown")
    issued = await shop.issue(shopper)
    tid = issued["transactionId"]
    redirect_url = await shop.open_window(issued, card=CARD_SLOW_CONFIRM)
    # Every lookup fails from now on (confirm itself is untouched: it is merely slow).
    chaos = await shop.set_chaos(
        {
            "seed": 11,
            "routes": {"lookup": {"errorRate": 1.0, "errorCode": "FAILED_INTERNAL_SYSTEM_PROCESSING"}},
        }
    )
    assert chaos["enabled"], chaos
    try:
        landed = await shop.follow(redirect_url)
        assert landed.is_success, landed
        # The PG finishes the confirm (its DONE webhook goes out), yet nobody here can look it up.
        done = await eventually(lambda: _done_webhooks(shop, tid), lambda d: len(d) == 1, max_seconds=10)
        assert len(done) == 1, done
        await asyncio.sleep(3)
        status = await shop.status(shopper, tid)
        assert status["statusCode"] == 30 and status["failure"] is None, status
        stats = (await shop.chaos())["stats"]["lookup"]
        assert stats["errors"] >= 3 and stats["errors"] == stats["requests"], (
            stats
        )  # reconciler + webhook job
    finally:
        await shop.clear_chaos()

    final = await shop.wait_for_status(shopper, tid, 50)

    assert final["failure"] is None
    _single_key(await shop.confirms(tid), tid)
    assert len(await _done_webhooks(shop, tid)) == 1
    detail = await shop.detail(shopper, tid)
    assert codes(detail).count(40) == 1 and 41 not in codes(detail), detail["history"]
    print(f"  lookups that failed while the PG was down: {stats['errors']}")
    final_code, _, cancels = await shop.summary("pg-down-during-reconciliation", shopper, tid)
    assert (final_code, cancels) == (50, 0)


async def test_a_confirm_that_failed_once_with_500_is_confirmed_again_and_succeeds(shop: Shop) -> None:
    """Card 054: the first confirm answers 500, "the next one DONE" (mock_toss/README.md). The service confirms
    again with the same Idempotency-Key (it must: the 500 may have been a lost success)."""
    shopper = shop.shopper("failonce")
    issued = await shop.issue(shopper)
    tid = issued["transactionId"]
    landed = await shop.follow(await shop.open_window(issued, card=CARD_FAIL_ONCE))
    assert landed.is_success, landed

    # The reconciler asks at +1 s, then backs off 1 s, 3 s, 6 s: four re-confirms within ~12 s.
    final = await eventually(
        lambda: shop.status(shopper, tid), lambda s: s["statusCode"] >= 40, max_seconds=15
    )

    if final["statusCode"] in (40, 45):
        final = await shop.wait_for_status(shopper, tid, 50, max_seconds=15)  # the grant follows

    confirms = await shop.confirms(tid)
    _single_key(confirms, tid)
    pg = await shop.pg_payment(tid)
    answers = [c["status"] for c in confirms]
    _, n_confirms, cancels = await shop.summary("card-054-fail-once", shopper, tid)
    print(f"  confirm answers: {answers}; PG status {pg['status']}")
    assert n_confirms >= 2, confirms  # it was confirmed again
    assert final["statusCode"] == 50, (final, answers, pg["status"])
    assert pg["status"] == "DONE", pg
    assert answers.count(200) == 1, answers  # approved once; every other answer was the 500
    assert len(await _done_webhooks(shop, tid)) == 1
    assert cancels == 0


async def test_a_created_transaction_past_its_expiry_is_failed_by_the_sweeper(shop: Shop) -> None:
    shopper = shop.shopper("expire")
    issued = await shop.issue(shopper)
    tid = issued["transactionId"]
    # The buyer authenticated but never came back in time.
    redirect_url = await shop.open_window(issued)
    await shop.set_columns(tid, expires_at=datetime.now(UTC) - timedelta(minutes=1))

    final = await shop.wait_for_status(shopper, tid, 41, max_seconds=15)

    assert final["failure"]["code"] == "PAY_002", final
    assert (final["isSettled"], final["needsPolling"], final["retryAfterMs"]) == (True, False, None)
    detail = await shop.detail(shopper, tid)
    assert codes(detail) == [10, 41], detail["history"]
    # The late browser callback lands on the fail page and never confirms.
    landed = await shop.follow(redirect_url)
    assert not landed.is_success and landed.params["code"] == "PAY_002", landed
    assert (await shop.pg_payment(tid))["status"] == "IN_PROGRESS"  # never charged
    final_code, confirms, cancels = await shop.summary("created-expiry", shopper, tid)
    assert (final_code, confirms, cancels) == (41, 0, 0)
