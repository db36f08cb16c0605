"""Virtual accounts and webhooks end to end: API + worker + mock Toss as real processes.

The webhook body is never trusted: every delivery only names a payment, the worker re-fetches it
from the PG and applies what the PG's *current* status implies. Duplicates, stale and forged
deliveries therefore change nothing.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

from .helpers import (
    CARD_APPROVE,
    Shop,
    all_delivered,
    codes,
    is_done_deposit_callback,
    is_done_psc,
    new_transmission_id,
    virtual_account_order,
)


def _error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"], body


# --- the happy path -------------------------------------------------------------------------------


async def test_virtual_account_waits_for_the_deposit_then_the_webhook_settles_and_grants(shop: Shop) -> None:
    order = await virtual_account_order(shop, "va")
    shopper, tid, status = order.shopper, order.tid, order.status
    pg = await shop.pg_payment(tid)
    assert pg["status"] == "WAITING_FOR_DEPOSIT"
    va_secret = pg["secret"]
    assert isinstance(va_secret, str) and va_secret.startswith("ps_"), pg

    # 30 with the account to pay into; never the secret.
    assert (status["status"], status["statusCode"]) == ("PAYMENT_PENDING", 30), status
    assert (status["isSettled"], status["needsPolling"]) == (False, True), status
    assert isinstance(status["retryAfterMs"], int) and status["retryAfterMs"] > 0, status
    assert status["failure"] is None
    va = status["virtualAccount"]
    assert set(va) == {"bankCode", "accountNumber", "dueDate"}, va
    assert va["bankCode"] == pg["virtualAccount"]["bankCode"]
    assert va["accountNumber"] == pg["virtualAccount"]["accountNumber"]
    assert datetime.fromisoformat(va["dueDate"]) == datetime.fromisoformat(pg["virtualAccount"]["dueDate"])
    detail_response = await shop.api.get(f"/api/payments/{tid}", headers=shopper.auth)
    list_response = await shop.api.get("/api/payments", headers=shopper.auth)
    status_response = await shop.api.get(f"/api/payments/{tid}/status", headers=shopper.auth)
    for response in (detail_response, list_response, status_response):
        assert response.status_code == 200, response.text
        assert va_secret not in response.text, response.text
        assert "secret" not in response.text.lower(), response.text
    detail = detail_response.json()
    assert detail["virtualAccount"] == va
    assert codes(detail)[:2] == [10, 30] and set(codes(detail)) == {10, 30}, detail["history"]
    # The WAITING_FOR_DEPOSIT webhooks were recorded and changed nothing.
    outcomes = await shop.event_outcomes([order.waiting_psc["id"], order.waiting_deposit_callback["id"]], tid)
    # Whoever stores the account first (a webhook job or the callback) applied it; nobody else did.
    assert list(outcomes.values()).count("APPLIED") <= 1, outcomes
    assert set(outcomes.values()) <= {"APPLIED", "NO_CHANGE"}, outcomes

    # The buyer pays: the mock sends DONE webhooks; nothing else (1 h recheck) would notice yet.
    await shop.deposit(tid)
    final = await shop.wait_for_status(shopper, tid, 50)

    assert final["virtualAccount"] is None and final["failure"] is None, final
    assert final["completedAt"] is not None
    detail = await shop.detail(shopper, tid)
    assert codes(detail).count(40) == 1, detail["history"]
    assert codes(detail)[-3:] == [40, 45, 50], detail["history"]
    done = await shop.wait_for_mock_webhooks(tid, lambda d: all_delivered(d, 4))
    done_ids = [d["id"] for d in done if is_done_psc(d) or is_done_deposit_callback(d)]
    assert len(done_ids) == 2, done
    outcomes = await shop.wait_for_events_processed(tid, done_ids)
    print(f"  DONE deliveries' outcomes: {sorted(outcomes.values())}")
    assert "APPLIED" in outcomes.values(), outcomes  # the webhook moved it, not a sweeper
    assert set(outcomes.values()) <= {"APPLIED", "NO_CHANGE"}, outcomes
    forwarded = shop.proxy.for_order(tid)
    assert len(forwarded) == 4 and all(f.upstream_status == 200 for f in forwarded), forwarded
    assert {f.outcome for f in forwarded} == {"QUEUED"}

    final_code, confirms, cancels = await shop.summary("va-deposit-webhook", shopper, tid)
    assert (final_code, confirms, cancels) == (50, 1, 0)


# --- duplicates and stale deliveries --------------------------------------------------------------


async def test_a_webhook_resent_three_times_and_a_stale_waiting_delivery_change_nothing(shop: Shop) -> None:
    order = await virtual_account_order(shop, "dup")
    shopper, tid = order.shopper, order.tid
    await shop.deposit(tid)
    await shop.wait_for_status(shopper, tid, 50)
    deliveries = await shop.wait_for_mock_webhooks(tid, lambda d: all_delivered(d, 4))
    [done_psc] = [d for d in deliveries if is_done_psc(d)]
    await shop.wait_for_events_processed(tid, [d["id"] for d in deliveries])
    history_before = (await shop.detail(shopper, tid))["history"]
    events_before = await shop.webhook_events(tid)

    # Toss's console "다시 시도" three times: the same transmission id each time.
    for expected_retry in (1, 2, 3):
        resent = await shop.resend(done_psc["id"])
        assert resent["status"] == "DELIVERED", resent
        assert resent["attempts"][-1]["statusCode"] == 200, resent
        assert resent["attempts"][-1]["retriedCount"] == expected_retry, resent
    resends = [f for f in shop.proxy.for_order(tid) if f.transmission_id == done_psc["id"]]
    assert [f.retried_count for f in resends] == [0, 1, 2, 3], resends
    assert [f.outcome for f in resends] == ["QUEUED", "DUPLICATE", "DUPLICATE", "DUPLICATE"], resends

    # A stale WAITING_FOR_DEPOSIT arrives after DONE, as a new transmission (both shapes).
    stale_ids = [new_transmission_id(), new_transmission_id()]
    for body, transmission_id in zip(
        (order.waiting_psc["body"], order.waiting_deposit_callback["body"]), stale_ids, strict=True
    ):
        response = await shop.post_webhook(body, transmission_id=transmission_id)
        assert response.status_code == 200, response.text
        assert response.json() == {"outcome": "QUEUED"}
    stale_outcomes = await shop.wait_for_events_processed(tid, stale_ids)

    assert stale_outcomes == dict.fromkeys(stale_ids, "NO_CHANGE"), stale_outcomes
    assert (await shop.detail(shopper, tid))["history"] == history_before
    events_after = await shop.webhook_events(tid)
    assert events_after[: len(events_before)] == events_before  # the resends rewrote nothing
    assert [e["transmission_id"] for e in events_after].count(done_psc["id"]) == 1
    assert len(events_after) == len(events_before) + 2
    final_code, confirms, cancels = await shop.summary("resend-x3-and-stale-waiting", shopper, tid)
    assert (final_code, confirms, cancels) == (50, 1, 0)


# --- verification ---------------------------------------------------------------------------------


async def test_a_deposit_callback_with_a_wrong_secret_is_refused_and_changes_nothing(shop: Shop) -> None:
    order = await virtual_account_order(shop, "badsecret")
    shopper, tid = order.shopper, order.tid
    history_before = (await shop.detail(shopper, tid))["history"]
    callback = dict(order.waiting_deposit_callback["body"])
    wrong_secret = "ps_" + "W" * 28
    assert callback["secret"] != wrong_secret

    forged_callback = {**callback, "status": "DONE", "secret": wrong_secret}
    psc = json.loads(json.dumps(order.waiting_psc["body"]))
    psc["data"].update(status="DONE", secret=wrong_secret)
    rejected_ids = [new_transmission_id(), new_transmission_id()]
    for body, transmission_id in zip((forged_callback, psc), rejected_ids, strict=True):
        _error(await shop.post_webhook(body, transmission_id=transmission_id), 401, "AUTH_001")

    outcomes = await shop.event_outcomes(rejected_ids, tid)
    assert outcomes == dict.fromkeys(rejected_ids, "REJECTED"), outcomes  # recorded, for the audit
    status = await shop.status(shopper, tid)
    assert status["statusCode"] == 30 and status["virtualAccount"] is not None, status
    assert (await shop.detail(shopper, tid))["history"] == history_before
    assert (await shop.pg_payment(tid))["status"] == "WAITING_FOR_DEPOSIT"

    # The real deposit still goes through.
    await shop.deposit(tid)
    await shop.wait_for_status(shopper, tid, 50)
    final_code, confirms, cancels = await shop.summary("wrong-va-secret", shopper, tid)
    assert (final_code, confirms, cancels) == (50, 1, 0)


async def test_a_deposit_callback_without_the_secret_is_refused_before_anything_is_recorded(
    shop: Shop,
) -> None:
    """Toss always sends the virtual account's secret: a DEPOSIT_CALLBACK without one is forged."""
    order = await virtual_account_order(shop, "nosecret")
    shopper, tid = order.shopper, order.tid
    history_before = (await shop.detail(shopper, tid))["history"]
    genuine = dict(order.waiting_deposit_callback["body"])
    assert genuine.get("secret"), genuine
    done = {**genuine, "status": "DONE"}
    without_secret = {key: value for key, value in done.items() if key != "secret"}
    bodies = [
        without_secret,  # Toss's documented flat shape
        {**done, "secret": ""},
        {**done, "secret": None},
        {"eventType": "DEPOSIT_CALLBACK", "createdAt": "2026-03-01T12:00:00", "data": without_secret},
    ]
    refused_ids = [new_transmission_id() for _ in bodies]
    for body, transmission_id in zip(bodies, refused_ids, strict=True):
        _error(await shop.post_webhook(body, transmission_id=transmission_id), 401, "AUTH_001")

    # Nothing recorded, so nothing queued (a job is queued only for a recorded delivery).
    assert await shop.event_outcomes(refused_ids, tid) == {}
    status = await shop.status(shopper, tid)
    assert status["statusCode"] == 30 and status["virtualAccount"] is not None, status
    assert (await shop.detail(shopper, tid))["history"] == history_before

    # The real deposit, whose callbacks carry the secret, still goes through.
    await shop.deposit(tid)
    await shop.wait_for_status(shopper, tid, 50)
    final_code, confirms, cancels = await shop.summary("deposit-callback-without-secret", shopper, tid)
    assert (final_code, confirms, cancels) == (50, 1, 0)


async def test_a_forged_done_is_overruled_by_the_pg_s_own_status(shop: Shop) -> None:
    # (1) A virtual account the PG still shows WAITING_FOR_DEPOSIT; the forger even knows the secret.
    order = await virtual_account_order(shop, "forged-va")
    shopper, tid = order.shopper, order.tid
    history_before = (await shop.detail(shopper, tid))["history"]
    psc = json.loads(json.dumps(order.waiting_psc["body"]))
    psc["data"].update(status="DONE", approvedAt=psc["data"]["requestedAt"])
    deposit_callback = {**order.waiting_deposit_callback["body"], "status": "DONE"}
    forged_ids = [new_transmission_id(), new_transmission_id()]
    for body, transmission_id in zip((psc, deposit_callback), forged_ids, strict=True):
        response = await shop.post_webhook(body, transmission_id=transmission_id)
        assert response.status_code == 200 and response.json() == {"outcome": "QUEUED"}, response.text

    assert await shop.wait_for_events_processed(tid, forged_ids) == dict.fromkeys(forged_ids, "NO_CHANGE")
    assert (await shop.status(shopper, tid))["statusCode"] == 30
    assert (await shop.detail(shopper, tid))["history"] == history_before
    final_code, confirms, cancels = await shop.summary("forged-done-va-waiting", shopper, tid)
    assert (final_code, confirms, cancels) == (30, 1, 0)

    # (2) A card payment the buyer authenticated (PG: IN_PROGRESS) before our callback came.
    card_shopper = shop.shopper("forged-card")
    issued = await shop.issue(card_shopper)
    card_tid = issued["transactionId"]
    redirect_url = await shop.open_window(issued, card=CARD_APPROVE)
    assert (await shop.pg_payment(card_tid))["status"] == "IN_PROGRESS"
    payment_key = redirect_url.split("paymentKey=")[1].split("&")[0]
    forged = {
        "eventType": "PAYMENT_STATUS_CHANGED",
        "createdAt": "2026-03-01T12:00:00.000000",
        "data": {
            "orderId": card_tid,
            "paymentKey": payment_key,
            "status": "DONE",
            "totalAmount": issued["amount"],
            "method": "카드",
        },
    }
    forged_id = new_transmission_id()
    response = await shop.post_webhook(forged, transmission_id=forged_id)
    assert response.status_code == 200 and response.json() == {"outcome": "QUEUED"}, response.text

    assert await shop.wait_for_events_processed(card_tid, [forged_id]) == {forged_id: "NO_CHANGE"}
    assert (await shop.status(card_shopper, card_tid))["statusCode"] == 10
    assert await shop.confirms(card_tid) == []  # a webhook never confirms
    # The browser's callback then pays it normally, once.
    landed = await shop.follow(redirect_url)
    assert landed.is_success
    await shop.wait_for_status(card_shopper, card_tid, 50)
    final_code, confirms, cancels = await shop.summary("forged-done-card-in-progress", card_shopper, card_tid)
    assert (final_code, confirms, cancels) == (50, 1, 0)


# --- a receiver that crashed after recording ------------------------------------------------------


async def test_a_500_after_recording_is_retried_by_the_pg_and_processed_once(shop: Shop) -> None:
    order = await virtual_account_order(shop, "crash")
    shopper, tid = order.shopper, order.tid
    shop.proxy.fail_next(1)

    await shop.deposit(tid)
    deliveries = await shop.wait_for_mock_webhooks(tid, lambda d: all_delivered(d, 4))
    assert all_delivered(deliveries, 4), deliveries
    await shop.wait_for_status(shopper, tid, 50)

    assert shop.proxy.failures_pending == 0
    failed_once = [d for d in deliveries if len(d["attempts"]) > 1]
    assert len(failed_once) == 1, deliveries
    [retried] = failed_once
    assert [a["statusCode"] for a in retried["attempts"]] == [500, 200], retried
    assert [a["retriedCount"] for a in retried["attempts"]] == [0, 1], retried
    seen = [f for f in shop.proxy.for_order(tid) if f.transmission_id == retried["id"]]
    assert [(f.retried_count, f.upstream_status, f.answered_status) for f in seen] == [
        (0, 200, 500),  # our API recorded and queued it; the "crash" lost the answer
        (1, 200, 200),
    ], seen
    assert seen[0].outcome == "QUEUED"
    assert seen[1].outcome in ("QUEUED", "DUPLICATE"), seen[1]  # QUEUED if not yet processed
    events = await shop.webhook_events(tid)
    rows = [e for e in events if e["transmission_id"] == retried["id"]]
    assert len(rows) == 1 and rows[0]["retried_count"] == 0, rows
    await shop.wait_for_events_processed(tid, [d["id"] for d in deliveries])
    detail = await shop.detail(shopper, tid)
    assert codes(detail).count(40) == 1, detail["history"]
    assert codes(detail).count(45) == 1 and codes(detail).count(50) == 1, detail["history"]
    print(f"  retried delivery {retried['eventType']}: second answer {seen[1].outcome}")
    final_code, confirms, cancels = await shop.summary("receiver-500-after-recording", shopper, tid)
    assert (final_code, confirms, cancels) == (50, 1, 0)


# --- webhook and browser callback in either order -------------------------------------------------


async def test_webhook_before_and_after_the_browser_callback_converge(shop: Shop) -> None:
    # A: the PG approves, but its answer to our confirm is held 0.9 s (under our 1 s timeout):
    # its DONE webhook reaches us and is processed while the callback still waits for the answer.
    first = shop.shopper("hook-first")
    issued_a = await shop.issue(first)
    tid_a = issued_a["transactionId"]
    redirect_a = await shop.open_window(issued_a)
    await shop.set_chaos({"seed": 5, "routes": {"confirm": {"timeoutRate": 1.0, "timeoutSeconds": 0.9}}})
    try:
        landed_a = await shop.follow(redirect_a)
    finally:
        await shop.clear_chaos()
    assert landed_a.is_success, landed_a

    # B: the usual order: callback first, the webhook after it.
    second = shop.shopper("hook-after")
    issued_b = await shop.issue(second)
    tid_b = issued_b["transactionId"]
    landed_b = await shop.follow(await shop.open_window(issued_b))
    assert landed_b.is_success, landed_b

    results = {}
    for shopper, tid in ((first, tid_a), (second, tid_b)):
        final = await shop.wait_for_status(shopper, tid, 50)
        deliveries = await shop.wait_for_mock_webhooks(tid, lambda d: all_delivered(d, 1))
        [done] = [d for d in deliveries if is_done_psc(d)]
        outcome = (await shop.wait_for_events_processed(tid, [done["id"]]))[done["id"]]
        detail = await shop.detail(shopper, tid)
        assert codes(detail) == [10, 30, 40, 45, 50], detail["history"]
        confirms = await shop.confirms(tid)
        assert len(confirms) == 1 and confirms[0]["status"] == 200, confirms
        results[tid] = (final["statusCode"], outcome)
    assert results[tid_a][0] == results[tid_b][0] == 50
    assert results[tid_a][1] == "APPLIED", results  # the webhook won: it came before the answer
    assert results[tid_b][1] == "NO_CHANGE", results  # the callback had settled it already
    code_a, confirms_a, cancels_a = await shop.summary("webhook-before-callback", first, tid_a)
    code_b, confirms_b, cancels_b = await shop.summary("webhook-after-callback", second, tid_b)
    assert (code_a, confirms_a, cancels_a) == (code_b, confirms_b, cancels_b) == (50, 1, 0)


async def test_unknown_transactions_and_other_events_are_acknowledged_and_ignored(shop: Shop) -> None:
    unknown = {
        "eventType": "PAYMENT_STATUS_CHANGED",
        "createdAt": "2026-03-01T12:00:00.000000",
        "data": {"orderId": "TXN_not_ours_0001", "status": "DONE", "paymentKey": "pk_x"},
    }
    response = await shop.post_webhook(unknown)
    assert response.status_code == 200 and response.json() == {"outcome": "IGNORED"}, response.text
    other = {"eventType": "BILLING_DELETED", "createdAt": "2026-03-01T12:00:00", "data": {"billingKey": "b"}}
    response = await shop.post_webhook(other)
    assert response.status_code == 200 and response.json() == {"outcome": "IGNORED"}, response.text
    for raw in (
        b"not json",
        b"[]",
        b'{"eventType":"PAYMENT_STATUS_CHANGED","data":{}}',
        b'{"status":"DONE"}',
    ):
        _error(await shop.post_webhook(raw), 400, "PAY_000")
    # A repeated IGNORED delivery is a duplicate.
    transmission_id = new_transmission_id()
    first = await shop.post_webhook(unknown, transmission_id=transmission_id)
    again = await shop.post_webhook(unknown, transmission_id=transmission_id)
    assert (first.json(), again.json()) == ({"outcome": "IGNORED"}, {"outcome": "DUPLICATE"})
    print("SCENARIO unknown-and-malformed-webhooks: final=- confirms=0 cancels=0")


async def test_waiting_webhooks_processed_before_our_confirm_answer_record_the_account_once(
    shop: Shop,
) -> None:
    """The mock publishes WAITING_FOR_DEPOSIT while it answers our confirm. With the answer held
    0.9 s (under our 1 s timeout) the webhook job records the account first; the callback then
    applies the same answer. The account was issued once, so the history must say so once."""
    shopper = shop.shopper("va-race")
    issued = await shop.issue(shopper, method="VIRTUAL_ACCOUNT")
    tid = issued["transactionId"]
    redirect_url = await shop.open_window(issued, card=None)
    await shop.set_chaos({"seed": 9, "routes": {"confirm": {"timeoutRate": 1.0, "timeoutSeconds": 0.9}}})
    try:
        landed = await shop.follow(redirect_url)
    finally:
        await shop.clear_chaos()
    assert landed.is_success, landed
    deliveries = await shop.wait_for_mock_webhooks(tid, lambda d: all_delivered(d, 2))
    outcomes = await shop.wait_for_events_processed(tid, [d["id"] for d in deliveries])
    # Whoever stores the account first (a webhook job or the callback) applied it; nobody else did.
    assert list(outcomes.values()).count("APPLIED") <= 1, outcomes
    assert set(outcomes.values()) <= {"APPLIED", "NO_CHANGE"}, outcomes

    status = await shop.status(shopper, tid)
    assert status["statusCode"] == 30 and status["virtualAccount"] is not None, status
    detail = await shop.detail(shopper, tid)
    issued_rows = [h for h in detail["history"] if h["message"].startswith("virtual account issued")]
    final_code, confirms, cancels = await shop.summary("va-webhook-before-confirm-answer", shopper, tid)
    assert (final_code, confirms, cancels) == (30, 1, 0)
    assert len(issued_rows) == 1, detail["history"]


async def test_a_virtual_account_cancelled_at_the_pg_before_the_deposit_fails_the_transaction(
    shop: Shop,
) -> None:
    order = await virtual_account_order(shop, "va-cancel")
    shopper, tid = order.shopper, order.tid
    payment_key = (await shop.pg_payment(tid))["paymentKey"]

    # Cancelled at Toss (the merchant's console, say): Toss sends CANCELED webhooks.
    response = await shop.mock.post(
        f"/v1/payments/{payment_key}/cancel",
        json={"cancelReason": "buyer changed their mind"},
        headers=shop.toss_auth,
    )
    assert response.status_code == 200 and response.json()["status"] == "CANCELED", response.text
    final = await shop.wait_for_status(shopper, tid, 41)

    assert final["failure"]["code"] == "PAY_003", final
    assert final["virtualAccount"] is None
    detail = await shop.detail(shopper, tid)
    assert detail["failure"]["pgCode"] == "CANCELED", detail["failure"]
    assert codes(detail)[-1] == 41 and codes(detail).count(41) == 1, detail["history"]
    deliveries = await shop.wait_for_mock_webhooks(tid, lambda d: all_delivered(d, 4))
    canceled = [d["id"] for d in deliveries[2:]]
    outcomes = await shop.wait_for_events_processed(tid, canceled)
    assert "APPLIED" in outcomes.values() and set(outcomes.values()) <= {"APPLIED", "NO_CHANGE"}, outcomes
    # cancels=1 is the test's own cancel at the PG, not one of ours.
    final_code, confirms, cancels = await shop.summary("va-cancelled-at-pg", shopper, tid)
    assert (final_code, confirms, cancels) == (41, 1, 1)


async def test_concurrent_deliveries_of_one_deposit_mark_exactly_one_of_them_applied(shop: Shop) -> None:
    """Six DONE deliveries for one deposit are processed concurrently by the worker; one of them
    moved the transaction (one 40 in the history), so the audit table must say APPLIED for one."""
    order = await virtual_account_order(shop, "va-concurrent")
    shopper, tid = order.shopper, order.tid
    copies = [new_transmission_id() for _ in range(4)]
    done_callback = {**order.waiting_deposit_callback["body"], "status": "DONE"}

    async def genuine_deposit() -> None:
        await shop.deposit(tid)

    async def copy(transmission_id: str) -> None:
        await asyncio.sleep(0.05)  # just after the deposit, together with the mock's own two
        response = await shop.post_webhook(done_callback, transmission_id=transmission_id)
        assert response.status_code == 200, response.text

    await asyncio.gather(genuine_deposit(), *(copy(t) for t in copies))
    await shop.wait_for_status(shopper, tid, 50)
    deliveries = await shop.wait_for_mock_webhooks(tid, lambda d: all_delivered(d, 4))
    done_ids = [d["id"] for d in deliveries if is_done_psc(d) or is_done_deposit_callback(d)] + copies
    outcomes = await shop.wait_for_events_processed(tid, done_ids)

    detail = await shop.detail(shopper, tid)
    assert codes(detail).count(40) == 1, detail["history"]
    applied = sorted(outcomes.values())
    print(f"  outcomes of {len(done_ids)} concurrent DONE deliveries: {applied}")
    final_code, confirms, cancels = await shop.summary("concurrent-done-deliveries", shopper, tid)
    assert (final_code, confirms, cancels) == (50, 1, 0)
    assert applied.count("APPLIED") == 1, outcomes  # the others found it settled: NO_CHANGE
