"""A stack with TOSS_WEBHOOK_SECRET (the mock signs with the same secret) and a 1 s virtual
account recheck: signed deliveries, forged signatures, and a due date that passes silently."""

from __future__ import annotations

import json

import httpx

from app.core.payment_results import confirm_idempotency_key

from .helpers import (
    CARD_APPROVE,
    GIVE_UP_SECONDS,
    Shop,
    all_delivered,
    codes,
    is_done_deposit_callback,
    is_done_psc,
    new_transmission_id,
    sign,
    virtual_account_order,
)

EIGHT_DAYS = 8 * 24 * 3600


def _refused(response: httpx.Response) -> None:
    assert response.status_code == 401, (response.status_code, response.text)
    assert response.json()["code"] == "AUTH_001", response.text


async def test_signed_deliveries_are_accepted_and_a_bad_signature_changes_nothing(signed_shop: Shop) -> None:
    shop = signed_shop
    secret = shop.env.signing_secret
    assert secret
    order = await virtual_account_order(shop, "signed")  # its WAITING deliveries were processed
    shopper, tid = order.shopper, order.tid
    forwarded = shop.proxy.for_order(tid)
    assert len(forwarded) == 2, forwarded
    for delivery in forwarded:
        signature = delivery.headers.get("x-toss-signature")
        assert signature == sign(delivery.body, secret), delivery.headers
        assert (delivery.upstream_status, delivery.outcome) == (200, "QUEUED"), delivery
    history_before = (await shop.detail(shopper, tid))["history"]
    events_before = await shop.webhook_events(tid)

    # A forged DONE (even with the account's real secret) whose signature is wrong or missing.
    forged = json.dumps({**order.waiting_deposit_callback["body"], "status": "DONE"}).encode()
    genuine_looking = sign(forged, "not-the-secret")
    refused_ids = [new_transmission_id() for _ in range(4)]
    _refused(
        await shop.post_webhook(forged, transmission_id=refused_ids[0], x_toss_signature=genuine_looking)
    )
    _refused(await shop.post_webhook(forged, transmission_id=refused_ids[1], x_toss_signature=""))
    # The signature of the WAITING body does not carry over to a body saying DONE.
    waiting_raw = next(f.body for f in forwarded if f.json().get("eventType") == "PAYMENT_STATUS_CHANGED")
    tampered = waiting_raw.replace(b'"WAITING_FOR_DEPOSIT"', b'"DONE"')
    assert tampered != waiting_raw
    _refused(
        await shop.post_webhook(
            tampered, transmission_id=refused_ids[2], x_toss_signature=sign(waiting_raw, secret)
        )
    )
    # No signature header at all.
    no_header = await shop.api.post(
        "/webhooks/payments/toss",
        content=forged,
        headers={"Content-Type": "application/json", "tosspayments-webhook-transmission-id": refused_ids[3]},
    )
    _refused(no_header)

    assert await shop.webhook_events(tid) == events_before  # refused before anything was recorded
    assert (await shop.detail(shopper, tid))["history"] == history_before
    assert (await shop.status(shopper, tid))["statusCode"] == 30
    assert (await shop.pg_payment(tid))["status"] == "WAITING_FOR_DEPOSIT"

    # A correctly signed stale WAITING copy is accepted (and changes nothing); uppercase hex too.
    stale_id = new_transmission_id()
    response = await shop.post_webhook(
        waiting_raw, transmission_id=stale_id, x_toss_signature=sign(waiting_raw, secret).upper()
    )
    assert response.status_code == 200 and response.json() == {"outcome": "QUEUED"}, response.text
    assert await shop.wait_for_events_processed(tid, [stale_id]) == {stale_id: "NO_CHANGE"}

    # The real deposit: signed DONE deliveries, accepted.
    await shop.deposit(tid)
    await shop.wait_for_status(shopper, tid, 50)
    deliveries = await shop.wait_for_mock_webhooks(tid, lambda d: all_delivered(d, 4))
    done_ids = [d["id"] for d in deliveries if is_done_psc(d) or is_done_deposit_callback(d)]
    assert len(done_ids) == 2, deliveries
    outcomes = await shop.wait_for_events_processed(tid, done_ids)
    assert set(outcomes.values()) <= {"APPLIED", "NO_CHANGE"}, outcomes
    for delivery in shop.proxy.for_order(tid):
        assert delivery.headers.get("x-toss-signature") == sign(delivery.body, secret)
        assert delivery.upstream_status == 200 and delivery.answered_status == 200, delivery
    assert all(len(d["attempts"]) == 1 for d in deliveries), deliveries  # none was refused
    detail = await shop.detail(shopper, tid)
    assert codes(detail).count(40) == 1, detail["history"]
    final_code, confirms, cancels = await shop.summary("signed-webhooks", shopper, tid)
    assert (final_code, confirms, cancels) == (50, 1, 0)


async def test_a_virtual_account_whose_due_date_passes_is_failed_by_asking_the_pg(signed_shop: Shop) -> None:
    shop = signed_shop
    order = await virtual_account_order(shop, "va-expiry")
    shopper, tid = order.shopper, order.tid
    webhooks_before = await shop.mock_webhooks(tid)
    # Alongside: a card payment authenticated at the PG whose callback never comes.
    card_shopper = shop.shopper("session-expiry")
    card = await shop.issue(card_shopper)
    card_tid = card["transactionId"]
    await shop.open_window(card, card=CARD_APPROVE)
    try:
        # Eight days later at the PG (the account was valid for seven): Toss sends nothing.
        response = await shop.mock.post("/_mock/clock", json={"advanceSeconds": EIGHT_DAYS})
        assert response.status_code == 200, response.text
        pg = await shop.pg_payment(tid)
        assert (pg["status"], pg["virtualAccount"]["expired"]) == ("WAITING_FOR_DEPOSIT", True), pg

        final = await shop.wait_for_status(shopper, tid, 41, max_seconds=20)

        assert final["failure"]["code"] == "PAY_002", final
        assert final["virtualAccount"] is None, final
        assert len(await shop.mock_webhooks(tid)) == len(webhooks_before)  # no webhook told us
        detail = await shop.detail(shopper, tid)
        assert codes(detail)[-1] == 41 and codes(detail).count(41) == 1, detail["history"]
        assert detail["failure"]["code"] == "PAY_002", detail
        # The buyer can no longer pay into it.
        late = await shop.mock.post(f"/_mock/virtual-accounts/{tid}/deposit", json={})
        assert late.status_code == 400 and late.json()["code"] == "EXPIRED_VIRTUAL_ACCOUNT", late.text
        final_code, confirms, cancels = await shop.summary("va-due-date-passed", shopper, tid)
        assert (final_code, confirms, cancels) == (41, 1, 0)

        # The card session expired at the PG too, and for that Toss does send a webhook: it fails
        # the still-CREATED transaction (our own 30-minute expiry has not come yet).
        card_final = await shop.wait_for_status(card_shopper, card_tid, 41, max_seconds=20)
        assert card_final["failure"]["code"] == "PAY_002", card_final
        [expired] = [
            d for d in await shop.mock_webhooks(card_tid) if d["body"]["data"]["status"] == "EXPIRED"
        ]
        assert await shop.wait_for_events_processed(card_tid, [expired["id"]]) == {expired["id"]: "APPLIED"}
        assert codes(await shop.detail(card_shopper, card_tid)) == [10, 41]
        final_code, confirms, cancels = await shop.summary("session-expired-webhook", card_shopper, card_tid)
        assert (final_code, confirms, cancels) == (41, 0, 0)
    finally:
        # The mock's clock cannot go back: forget everything so later tests start fresh.
        await shop.mock.post("/_mock/reset")


async def test_a_payment_the_pg_cannot_be_asked_about_is_given_up_for_review(signed_shop: Shop) -> None:
    """Confirm answers 500 (injected in front of the PG: nothing was approved) and every lookup
    fails: after RECONCILE_GIVE_UP_SECONDS the reconciler fails it for a human to review."""
    shop = signed_shop
    shopper = shop.shopper("giveup")
    issued = await shop.issue(shopper)
    tid = issued["transactionId"]
    redirect_url = await shop.open_window(issued, card=CARD_APPROVE)
    failing = {"errorRate": 1.0, "errorCode": "FAILED_INTERNAL_SYSTEM_PROCESSING"}
    await shop.set_chaos({"seed": 3, "routes": {"confirm": failing, "lookup": failing}})
    try:
        landed = await shop.follow(redirect_url)
        assert landed.is_success, landed  # outcome unknown: never "failed" at once
        assert (await shop.status(shopper, tid))["statusCode"] == 30

        final = await shop.wait_for_status(shopper, tid, 41, max_seconds=GIVE_UP_SECONDS + 12)
    finally:
        await shop.clear_chaos()

    detail = await shop.detail(shopper, tid)
    assert detail["failure"]["code"] == "PAY_005", detail["failure"]
    assert detail["failure"]["pgCode"] == "UNRESOLVED_NEEDS_REVIEW", detail["failure"]
    assert final["failure"]["code"] == "PAY_005", final
    assert codes(detail)[-1] == 41 and codes(detail).count(41) == 1, detail["history"]
    assert (await shop.pg_payment(tid))["status"] == "IN_PROGRESS"  # nothing was charged
    confirms = await shop.confirms(tid)
    key = confirm_idempotency_key(tid, confirms[0]["body"]["paymentKey"])
    assert {c["idempotencyKey"] for c in confirms} == {key}, confirms
    final_code, n_confirms, cancels = await shop.summary("reconcile-give-up", shopper, tid)
    assert (final_code, n_confirms, cancels) == (41, 1, 0)  # a 5xx is an answer: not re-sent
