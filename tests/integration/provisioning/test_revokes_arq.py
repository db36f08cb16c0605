"""A refund takes back what was granted (revoke first, then the money), and a cancel made at the PG
itself (an operator in Toss's console) goes through the same path: real MariaDB, Redis, arq worker,
the mock Toss as a process and the fake study/credit service over HTTP."""

from __future__ import annotations

import json

import httpx
from prometheus_client import REGISTRY

from app.core.domain import RefundStatus, RevokeStatus, Status
from app.provisioning.handlers import list_entitlements
from tests.support.fake_downstream import FakeDownstream

from .conftest import ServicesFactory
from .helpers import (
    RESUME,
    STUDY,
    TOSS_AUTH,
    cancels,
    history_codes,
    pay,
    pg_payment,
    refund_of,
    run_worker,
    status_of,
)


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _granted(services, toss, product=RESUME) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    transaction = await pay(services, toss, product)
    await run_worker(services)
    assert await status_of(services, transaction.transaction_id) == Status.PROVISION_SUCCESS
    return transaction.transaction_id, transaction.user_id


async def test_a_refund_takes_the_ledger_grant_back_and_the_entitlement_shows_it(
    make_services: ServicesFactory, toss: httpx.AsyncClient
) -> None:
    """Pay, get the goods, refund: the goods go back (once fully refunded, revokedAt is set)."""
    services = await make_services()
    tid, owner = await _granted(services, toss, RESUME)
    [before] = [e for e in await list_entitlements(services.engine, owner) if e.transaction_id == tid]
    assert (before.credits, before.revoked_credits, before.revoked_at) == (10, 0, None)

    await services.refunds.request_refund(
        transaction_id=tid, user_id=owner, is_admin=False, reason="changed my mind", amount=None
    )
    await run_worker(services)

    assert await status_of(services, tid) == Status.REFUNDED
    [after] = [e for e in await list_entitlements(services.engine, owner) if e.transaction_id == tid]
    assert (after.revoked_credits, after.revoked_at is not None) == (10, True)
    assert (await refund_of(services, tid)).revoke_status == RevokeStatus.DONE


async def test_a_partial_refund_of_credits_takes_back_their_share_only(
    make_services: ServicesFactory, toss: httpx.AsyncClient, fake: FakeDownstream
) -> None:
    services = await make_services(credit_service_url=fake.url)
    tid, owner = await _granted(services, toss, RESUME)

    await services.refunds.request_refund(
        transaction_id=tid, user_id="ops", is_admin=True, reason="goodwill", amount=1_000
    )
    await run_worker(services)

    refund = await refund_of(services, tid)
    [revocation] = fake.revocations(refund.refund_id)
    assert revocation.path == "/api/credits/revocations"
    assert revocation.body == {
        "userId": owner,
        "productId": "resume_credit_10",
        "paymentId": tid,
        "refundId": refund.refund_id,
        "refundedAmount": 1_000,
        "credits": 2,  # ceil(10 × 1,000 / 9,900)
    }
    assert await status_of(services, tid) == Status.PROVISION_SUCCESS


async def test_the_study_service_hears_of_the_refund_before_the_money_goes_back(
    make_services: ServicesFactory, toss: httpx.AsyncClient, fake: FakeDownstream
) -> None:
    services = await make_services(study_service_url=fake.url)
    tid, owner = await _granted(services, toss, STUDY)
    await services.refunds.request_refund(
        transaction_id=tid, user_id="ops", is_admin=True, reason="study cancelled", amount=None
    )
    await run_worker(services)

    refund = await refund_of(services, tid)
    [cancel] = [r for r in fake.requests(refund.refund_id) if r.status == 200]
    assert cancel.path == "/api/studies/study_123/cancel-payment"
    assert cancel.body == {
        "applicationId": None,
        "paymentId": tid,
        "userId": owner,
        "refundedAmount": 50_000,
    }
    [pg_cancel] = await cancels(toss, tid)
    assert pg_cancel["idempotencyKey"] == refund.refund_id
    assert await status_of(services, tid) == Status.REFUNDED


async def test_a_revoke_that_fails_for_good_moves_no_money_and_waits_for_a_human(
    make_services: ServicesFactory, toss: httpx.AsyncClient, fake: FakeDownstream
) -> None:
    """The study service keeps refusing: the buyer must not end up with both the money and the seat.
    No PG cancel is sent; the refund waits (NEEDS_REVIEW) with its amount still reserved."""
    services = await make_services(study_service_url=fake.url, provisioning_max_tries=2)
    tid, _ = await _granted(services, toss, STUDY)
    failed_before = _metric("payments_refunds_total", stage="revoke_failed")
    fake.down()

    await services.refunds.request_refund(
        transaction_id=tid, user_id="ops", is_admin=True, reason="revoke will fail", amount=None
    )
    await run_worker(services)

    refund = await refund_of(services, tid)
    assert (refund.status, refund.revoke_status) == (RefundStatus.NEEDS_REVIEW, RevokeStatus.FAILED)
    assert await cancels(toss, tid) == []  # no money moved
    assert (await pg_payment(toss, tid))["status"] == "DONE"
    stored = await services.queries.get_transaction(tid)
    assert stored is not None
    assert (stored.status, stored.refundable_amount) == (Status.REFUND_REQUESTED, 0)  # never twice
    assert _metric("payments_refunds_total", stage="revoke_failed") == failed_before + 1
    assert len(fake.requests(refund.refund_id)) == 2  # retried, then gave up


async def test_a_cancel_in_the_pg_console_is_recorded_revoked_and_closes_the_transaction(
    make_services: ServicesFactory, toss: httpx.AsyncClient
) -> None:
    """An operator cancels part, then the rest, in Toss's console: each arrives as a webhook and is
    applied through the refund path (a row each, the grant taken back, 95 when nothing is left)."""
    services = await make_services()
    tid, owner = await _granted(services, toss, RESUME)
    stored = await services.queries.get_transaction(tid)
    assert stored is not None and stored.payment_key
    alerts_before = _metric("payments_pg_side_cancels_total")

    async def console_cancel(amount: int | None, n: int) -> None:
        body: dict[str, object] = {"cancelReason": f"console {n}"}
        if amount is not None:
            body["cancelAmount"] = amount
        answer = await toss.post(f"/v1/payments/{stored.payment_key}/cancel", json=body, headers=TOSS_AUTH)
        assert answer.status_code == 200, answer.text
        status = answer.json()["status"]
        raw = json.dumps(
            {"eventType": "PAYMENT_STATUS_CHANGED", "data": {"orderId": tid, "status": status}}
        ).encode()
        outcome = await services.webhooks.receive(
            "TOSS", raw, {"tosspayments-webhook-transmission-id": f"wh-console-{tid}-{n}"}
        )
        assert outcome == "QUEUED"
        await run_worker(services)

    await console_cancel(3_000, 1)
    after_partial = await services.queries.get_transaction(tid)
    assert after_partial is not None
    assert (after_partial.status, after_partial.refunded_amount) == (Status.PROVISION_SUCCESS, 3_000)
    [partial] = await services.refunds.list_refunds(tid)
    assert (partial.actor, partial.status, partial.revoke_status, partial.amount) == (
        "pg",
        RefundStatus.DONE,
        RevokeStatus.DONE,
        3_000,
    )
    assert partial.reason == "console 1"

    await console_cancel(None, 2)
    final = await services.queries.get_transaction(tid)
    assert final is not None
    assert (final.status, final.refunded_amount) == (Status.REFUNDED, 9_900)
    refunds = await services.refunds.list_refunds(tid)
    assert [(r.amount, r.actor) for r in refunds] == [(3_000, "pg"), (6_900, "pg")]
    pg = await pg_payment(toss, tid)
    assert {c["transactionKey"] for c in pg["cancels"]} == {r.pg_transaction_key for r in refunds}
    [entitlement] = [e for e in await list_entitlements(services.engine, owner) if e.transaction_id == tid]
    assert entitlement.revoked_at is not None
    assert _metric("payments_pg_side_cancels_total") == alerts_before + 2
    codes = await history_codes(services, tid)
    # 90 → 95 once, then the revoke of the console's cancel is noted at 95 (the money went first).
    assert codes[codes.index(90) :] == [90, 95, 95], codes

    # The same delivery again, or a stale one, changes nothing.
    raw = json.dumps(
        {"eventType": "PAYMENT_STATUS_CHANGED", "data": {"orderId": tid, "status": "CANCELED"}}
    ).encode()
    await services.webhooks.receive(
        "TOSS", raw, {"tosspayments-webhook-transmission-id": f"wh-console-{tid}-3"}
    )
    await run_worker(services)
    assert len(await services.refunds.list_refunds(tid)) == 2
