"""Refunds through real arq: the PG cancel job, its retries when the outcome is unknown, and the
"already cancelled" answer that counts as done."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from app.core.checkout import IssueCommand
from app.core.domain import (
    InvalidTransition,
    Method,
    PaymentError,
    RefundStatus,
    RevokeStatus,
    Status,
    Transition,
)
from app.core.refund_policy import RefundRefused
from app.gateway.models import RefundAccount
from app.main import Services
from app.provisioning.jobs import sweep
from app.provisioning.queue import refund_job_id

from .conftest import ServicesFactory
from .helpers import (
    RESUME,
    STUDY,
    TOSS_AUTH,
    Poller,
    Product,
    age,
    cancels,
    history,
    history_codes,
    new_user,
    new_worker,
    pay,
    pg_payment,
    refund_of,
    run_worker,
    status_of,
)


@pytest.fixture
async def chaos(toss: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """The mock's chaos controls; always cleared afterwards (the mock is shared by the run)."""
    yield toss
    await toss.delete("/_mock/chaos")


async def granted(services: Services, toss: httpx.AsyncClient, product: Product = RESUME) -> str:
    """A paid and granted (50) transaction's id."""
    tid = (await pay(services, toss, product)).transaction_id
    await run_worker(services)
    assert await status_of(services, tid) == Status.PROVISION_SUCCESS
    return tid


async def test_owner_refund_cancels_at_the_pg_once(
    make_services: ServicesFactory, toss: httpx.AsyncClient
) -> None:
    services = await make_services()
    tid = await granted(services, toss)
    owner = (await services.queries.get_transaction(tid)).user_id  # type: ignore[union-attr]

    requested = await services.refunds.request_refund(
        transaction_id=tid, user_id=owner, is_admin=False, reason="changed my mind", amount=None
    )

    assert requested.status == Status.REFUND_REQUESTED
    assert requested.refunded_amount == 0
    assert services.redis is not None
    [queued] = await services.refunds.list_refunds(tid)
    assert await services.redis.exists(f"arq:job:{refund_job_id(queued.refund_id)}") == 1
    await run_worker(services)
    final = await services.queries.get_transaction(tid)
    assert final is not None
    assert (final.status, final.refunded_amount) == (Status.REFUNDED, 9_900)
    refund = await refund_of(services, tid)
    assert (refund.status, refund.amount, refund.actor, refund.reason) == (
        "DONE",
        9_900,
        owner,
        "changed my mind",
    )
    assert refund.pg_transaction_key
    sent = await cancels(toss, tid)
    assert [(c["status"], c["idempotencyKey"]) for c in sent] == [(200, refund.refund_id)]
    assert sent[0]["body"] == {"cancelReason": "changed my mind"}
    assert (await pg_payment(toss, tid))["status"] == "CANCELED"
    # 90, the grant taken back (still 90), then the money: 95.
    assert (await history_codes(services, tid))[-4:] == [50, 90, 90, 95]
    assert refund.revoke_status == RevokeStatus.DONE

    # Nothing is left: a further request changes nothing.
    with pytest.raises(InvalidTransition):
        await services.refunds.request_refund(
            transaction_id=tid, user_id=owner, is_admin=False, reason="again", amount=None
        )
    with pytest.raises(InvalidTransition):
        await services.refunds.request_refund(
            transaction_id=tid, user_id="admin", is_admin=True, reason="again", amount=100
        )
    assert len(await cancels(toss, tid)) == 1


async def test_several_partial_refunds_keep_the_status_until_the_last_one(
    make_services: ServicesFactory, toss: httpx.AsyncClient
) -> None:
    """Like Toss's PARTIAL_CANCELED: a partial refund is a row of its own; the transaction stays 50
    until the refund that returns the last won moves it 90 → 95."""
    services = await make_services()
    tid = await granted(services, toss, STUDY)

    after_first = await services.refunds.request_refund(
        transaction_id=tid, user_id="ops-admin", is_admin=True, reason="goodwill", amount=12_000
    )
    assert (after_first.status, after_first.refundable_amount) == (Status.PROVISION_SUCCESS, 38_000)
    await run_worker(services)

    final = await services.queries.get_transaction(tid)
    assert final is not None
    assert (final.status, final.refunded_amount, final.refundable_amount) == (
        Status.PROVISION_SUCCESS,
        12_000,
        38_000,
    )
    [sent] = await cancels(toss, tid)
    assert sent["body"] == {"cancelReason": "goodwill", "cancelAmount": 12_000}
    pg = await pg_payment(toss, tid)
    assert (pg["status"], pg["balanceAmount"]) == ("PARTIAL_CANCELED", 38_000)

    await services.refunds.request_refund(
        transaction_id=tid, user_id="ops-admin", is_admin=True, reason="second", amount=8_000
    )
    with pytest.raises(PaymentError) as over:
        await services.refunds.request_refund(
            transaction_id=tid, user_id="ops-admin", is_admin=True, reason="too much", amount=30_001
        )
    assert over.value.code == "PAY_000"
    await services.refunds.request_refund(
        transaction_id=tid, user_id="ops-admin", is_admin=True, reason="the rest", amount=None
    )
    await run_worker(services)

    final = await services.queries.get_transaction(tid)
    assert final is not None
    assert (final.status, final.refunded_amount, final.refundable_amount) == (Status.REFUNDED, 50_000, 0)
    refunds = await services.refunds.list_refunds(tid)
    assert [(r.amount, r.status, r.actor) for r in refunds] == [
        (12_000, RefundStatus.DONE, "ops-admin"),
        (8_000, RefundStatus.DONE, "ops-admin"),
        (30_000, RefundStatus.DONE, "ops-admin"),
    ]
    assert len({r.pg_transaction_key for r in refunds}) == 3
    assert [c["body"].get("cancelAmount") for c in await cancels(toss, tid)] == [12_000, 8_000, 30_000]
    pg = await pg_payment(toss, tid)
    assert (pg["status"], pg["balanceAmount"], len(pg["cancels"])) == ("CANCELED", 0, 3)
    codes = await history_codes(services, tid)
    assert codes.count(90) >= 1 and codes[-1] == 95 and codes.count(95) == 1


async def test_twenty_parallel_refunds_never_exceed_what_was_paid(
    make_services: ServicesFactory, toss: httpx.AsyncClient
) -> None:
    """20 admins refund 3,000 KRW each of a 50,000 KRW purchase at once, on MariaDB: the balance is the
    guard, so exactly 16 fit (48,000) and the rest are refused; the PG refunds exactly that."""
    services = await make_services()
    tid = await granted(services, toss, STUDY)

    results = await asyncio.gather(
        *(
            services.refunds.request_refund(
                transaction_id=tid, user_id=f"ops-{n}", is_admin=True, reason=f"part {n}", amount=3_000
            )
            for n in range(20)
        ),
        return_exceptions=True,
    )

    accepted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, PaymentError) for r in refused), refused
    stored = await services.queries.get_transaction(tid)
    assert stored is not None
    rows = await services.refunds.list_refunds(tid)
    assert len(rows) == len(accepted) == 16, (len(accepted), [str(r) for r in refused])
    assert stored.refund_reserved_amount == 48_000
    await run_worker(services)
    final = await services.queries.get_transaction(tid)
    assert final is not None
    assert (final.status, final.refunded_amount) == (Status.PROVISION_SUCCESS, 48_000)
    pg = await pg_payment(toss, tid)
    assert (pg["balanceAmount"], len(pg["cancels"])) == (2_000, 16)


async def test_a_refused_policy_changes_nothing(
    make_services: ServicesFactory, toss: httpx.AsyncClient
) -> None:
    services = await make_services()
    tid = await granted(services, toss)
    owner = (await services.queries.get_transaction(tid)).user_id  # type: ignore[union-attr]
    before = await history_codes(services, tid)

    with pytest.raises(RefundRefused):
        await services.refunds.request_refund(
            transaction_id=tid, user_id=owner, is_admin=False, reason="half please", amount=5_000
        )

    assert await status_of(services, tid) == Status.PROVISION_SUCCESS
    assert await history_codes(services, tid) == before
    assert await services.refunds.list_refunds(tid) == []
    assert services.redis is not None
    assert [j for j in await services.redis.zrange("arq:queue", 0, -1) if j.startswith(b"refund:")] == []
    assert await cancels(toss, tid) == []


async def test_a_cancel_that_times_out_stays_90_until_the_pg_answers(
    make_services: ServicesFactory, toss: httpx.AsyncClient, chaos: httpx.AsyncClient
) -> None:
    """Every cancel answers later than our 0.5 s read timeout (chaos latency on the cancel route):
    the outcome is unknown, so the refund stays 90 and the job keeps asking with the same key."""
    services = await make_services(toss_read_timeout_seconds=0.5, refund_retry_seconds=0.2)
    tid = await granted(services, toss)
    owner = (await services.queries.get_transaction(tid)).user_id  # type: ignore[union-attr]
    setting = await chaos.put("/_mock/chaos", json={"seed": 7, "routes": {"cancel": {"latencyMs": 1500}}})
    assert setting.status_code == 200, setting.text
    await services.refunds.request_refund(
        transaction_id=tid, user_id=owner, is_admin=False, reason="timeout test", amount=None
    )
    worker = asyncio.create_task(new_worker(services).main())
    try:

        async def tried_three_times() -> bool:
            return len(await cancels(toss, tid)) >= 3

        await Poller(timeout=20).until(tried_three_times, "three cancel attempts")
        assert await status_of(services, tid) == Status.REFUND_REQUESTED
        assert (await refund_of(services, tid)).status == "REQUESTED"
        assert not worker.done()  # the refund job is still being retried

        cleared = await chaos.delete("/_mock/chaos")
        assert cleared.status_code == 200
        await asyncio.wait_for(asyncio.shield(worker), 20)
    finally:
        if not worker.done():
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    final = await services.queries.get_transaction(tid)
    assert final is not None
    assert (final.status, final.refunded_amount) == (Status.REFUNDED, 9_900)
    refund = await refund_of(services, tid)
    assert refund.status == "DONE"
    sent = await cancels(toss, tid)
    assert len(sent) >= 4, sent
    assert {c["idempotencyKey"] for c in sent} == {refund.refund_id}  # every attempt: one key
    pg = await pg_payment(toss, tid)
    assert (pg["status"], pg["balanceAmount"], len(pg["cancels"])) == ("CANCELED", 0, 1)  # refunded once
    assert (await history_codes(services, tid))[-4:] == [50, 90, 90, 95]


async def test_a_cancel_whose_answer_was_lost_is_replayed_not_repeated(
    make_services: ServicesFactory, toss: httpx.AsyncClient, chaos: httpx.AsyncClient
) -> None:
    """The PG cancels but withholds the answer (chaos timeout): the retry with the same
    Idempotency-Key gets the stored answer, so the money goes back exactly once."""
    services = await make_services(toss_read_timeout_seconds=0.5, refund_retry_seconds=0.2)
    tid = await granted(services, toss)
    owner = (await services.queries.get_transaction(tid)).user_id  # type: ignore[union-attr]
    setting = await chaos.put(
        "/_mock/chaos", json={"seed": 7, "routes": {"cancel": {"timeoutRate": 1.0, "timeoutSeconds": 2}}}
    )
    assert setting.status_code == 200, setting.text
    await services.refunds.request_refund(
        transaction_id=tid, user_id=owner, is_admin=False, reason="lost answer", amount=None
    )

    worker = await run_worker(services)

    assert worker.jobs_retried >= 1
    assert await status_of(services, tid) == Status.REFUNDED
    refund = await refund_of(services, tid)
    sent = await cancels(toss, tid)
    assert len(sent) >= 2, sent
    assert {c["idempotencyKey"] for c in sent} == {refund.refund_id}
    pg = await pg_payment(toss, tid)
    assert (pg["status"], len(pg["cancels"])) == ("CANCELED", 1)
    history_95 = [meta for code, _, meta in await history(services, tid) if code == 95]
    assert history_95[0]["pgTransactionKey"] == pg["cancels"][0]["transactionKey"]


async def test_already_canceled_at_the_pg_counts_as_done(
    make_services: ServicesFactory, toss: httpx.AsyncClient
) -> None:
    services = await make_services()
    tid = await granted(services, toss)
    owner = (await services.queries.get_transaction(tid)).user_id  # type: ignore[union-attr]
    await services.refunds.request_refund(
        transaction_id=tid, user_id=owner, is_admin=False, reason="cancelled elsewhere", amount=None
    )
    payment_key = (await services.queries.get_transaction(tid)).payment_key  # type: ignore[union-attr]
    # Someone cancelled it at the PG already (the merchant console, an earlier lost answer...).
    direct = await toss.post(
        f"/v1/payments/{payment_key}/cancel", json={"cancelReason": "console"}, headers=TOSS_AUTH
    )
    assert direct.status_code == 200, direct.text

    await run_worker(services)

    final = await services.queries.get_transaction(tid)
    assert final is not None
    assert (final.status, final.refunded_amount) == (Status.REFUNDED, 9_900)
    assert (await refund_of(services, tid)).status == "DONE"
    sent = await cancels(toss, tid)
    assert len(sent) == 2, sent
    ours = sent[1]
    assert ours["idempotencyKey"] == (await refund_of(services, tid)).refund_id
    assert ours["status"] == 400  # the PG answered 400 ALREADY_CANCELED_PAYMENT
    pg = await pg_payment(toss, tid)
    assert (pg["status"], len(pg["cancels"])) == ("CANCELED", 1)  # the console's cancel only
    refunded = [message for code, message, _ in await history(services, tid) if code == 95]
    assert len(refunded) == 1 and "already cancelled" in refunded[0], refunded


async def test_two_concurrent_refund_requests_start_one_refund(
    make_services: ServicesFactory, toss: httpx.AsyncClient
) -> None:
    services = await make_services()
    tid = await granted(services, toss)
    owner = (await services.queries.get_transaction(tid)).user_id  # type: ignore[union-attr]

    results = await asyncio.gather(
        services.refunds.request_refund(
            transaction_id=tid, user_id=owner, is_admin=False, reason="a", amount=None
        ),
        services.refunds.request_refund(
            transaction_id=tid, user_id="ops", is_admin=True, reason="b", amount=None
        ),
        return_exceptions=True,
    )

    assert sum(not isinstance(r, BaseException) for r in results) == 1, results
    assert all(isinstance(r, InvalidTransition) for r in results if isinstance(r, BaseException)), results
    await run_worker(services)
    assert await status_of(services, tid) == Status.REFUNDED
    assert len(await cancels(toss, tid)) == 1
    assert len(await services.refunds.list_refunds(tid)) == 1


async def test_a_failed_grant_whose_refund_did_not_start_is_refunded_by_the_sweeper(
    make_services: ServicesFactory, toss: httpx.AsyncClient
) -> None:
    """45→51 commits first; the automatic refund (51→90 and its job) is a second step. If the
    process dies or the database hiccups in between, the 51 must not stay unrefunded forever: a
    rerun of the grant job skips it (not 45), so only the sweeper can pick it up."""
    services = await make_services(sweep_stale_after_seconds=1800.0)
    tid = (await pay(services, toss, RESUME)).transaction_id
    assert services.redis is not None
    await services.redis.delete(f"arq:job:provision:{tid}")
    await services.redis.zrem("arq:queue", f"provision:{tid}")
    # The first step only, as if the process died right after it.
    moved = await services.repository.apply(
        tid,
        Transition(
            Status.PROVISION_PENDING, Status.PROVISION_FAILED, "grant failed for good: downstream refused"
        ),
        now=datetime.now(UTC),
    )
    assert moved
    await age(services, tid, 1800 + 60)

    await sweep({"deps": services.job_deps})
    await run_worker(services)

    # Expected: the automatic refund follows a 51 (docs/api.md, the state machine), even after a crash in between.
    assert await status_of(services, tid) == Status.REFUNDED, await history_codes(services, tid)
    assert len(await cancels(toss, tid)) == 1


async def test_a_refund_accepted_for_a_virtual_account_payment_completes(
    make_services: ServicesFactory, toss: httpx.AsyncClient
) -> None:
    """A deposited virtual account: Toss needs `refundReceiveAccount` to cancel it. A refund the API
    accepts (202) must reach 95 — or be refused up front — never stay 90 forever."""
    services = await make_services()
    issued = await services.checkout.issue(
        IssueCommand(
            user_id=new_user(),
            product_type=RESUME[0],
            product_id=RESUME[1],
            amount=RESUME[2],
            order_name=None,
            method=Method.VIRTUAL_ACCOUNT,
            metadata={},
        )
    )
    tid = issued.transaction.transaction_id
    window = await toss.post(
        "/_mock/checkout",
        json={
            "clientKey": issued.client_key,
            "orderId": tid,
            "amount": RESUME[2],
            "orderName": issued.transaction.order_name,
            "method": "VIRTUAL_ACCOUNT",
            "successUrl": issued.success_url,
            "failUrl": issued.fail_url,
        },
    )
    assert window.status_code == 200, window.text
    query = {k: v[-1] for k, v in parse_qs(urlsplit(window.json()["redirectUrl"]).query).items()}
    await services.checkout.handle_success_callback(
        payment_key=query["paymentKey"], order_id=tid, amount=query["amount"]
    )
    assert await status_of(services, tid) == Status.PAYMENT_PENDING  # waiting for the deposit
    deposit = await toss.post(f"/_mock/virtual-accounts/{tid}/deposit")
    assert deposit.status_code == 200, deposit.text
    # What the webhook or the reconciler does: ask the PG and apply its view.
    transaction = await services.queries.get_transaction(tid)
    assert transaction is not None
    payment = await services.gateway.find_payment(provider="TOSS", order_id=tid)
    await services.results.apply_pg_payment(transaction, payment)
    await run_worker(services)
    assert await status_of(services, tid) == Status.PROVISION_SUCCESS

    # Without the buyer's bank account Toss cannot refund a deposit: refused up front, nothing changes.
    with pytest.raises(PaymentError) as refused:
        await services.refunds.request_refund(
            transaction_id=tid, user_id=transaction.user_id, is_admin=False, reason="va refund", amount=None
        )
    assert refused.value.code == "PAY_000"
    assert await status_of(services, tid) == Status.PROVISION_SUCCESS

    await services.refunds.request_refund(
        transaction_id=tid,
        user_id=transaction.user_id,
        is_admin=False,
        reason="va refund",
        amount=None,
        refund_account=RefundAccount(bank="88", account_number="110123456789", holder_name="김토스"),
    )
    await run_worker(services)

    refund = await refund_of(services, tid)
    assert await status_of(services, tid) == Status.REFUNDED, (refund.status, refund.pg_error_code)
    cancels = (
        await toss.get("/_mock/requests", params={"method": "POST", "orderId": tid, "path": "/v1/payments/*"})
    ).json()["requests"]
    sent = [r["body"] for r in cancels if r["path"].endswith("/cancel")]
    assert len(sent) == 1 and sent[0]["refundReceiveAccount"] == {
        "bank": "88",
        "accountNumber": "110123456789",
        "holderName": "김토스",
    }
