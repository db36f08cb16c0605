"""Grants through real arq on Redis, against MariaDB, the mock Toss and the fake study service."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from sqlalchemy import update

from app.core.catalog import StaticProductCatalog
from app.core.domain import Status
from app.db import transactions
from app.provisioning.handlers import GrantRequest, LedgerGrantHandler
from app.provisioning.jobs import provision_grant, sweep
from app.provisioning.queue import grant_job_id
from tests.support.fake_downstream import FakeDownstream

from .conftest import ServicesFactory
from .helpers import (
    RESUME,
    STUDY,
    Product,
    age,
    cancels,
    history,
    history_codes,
    ledger_rows,
    new_worker,
    pay,
    pg_payment,
    refund_of,
    run_worker,
    status_of,
)

QUEUE = "arq:queue"


async def test_a_grant_job_queued_and_run_twice_grants_once(
    make_services: ServicesFactory, toss: httpx.AsyncClient
) -> None:
    services = await make_services()  # no downstream URLs: the local ledger grants
    assert services.redis is not None
    transaction = await pay(services, toss, RESUME)
    tid = transaction.transaction_id
    job_key = f"arq:job:{grant_job_id(tid)}"

    # Queued once by 40→45; queueing again while it exists is a no-op (one job in the queue).
    assert await services.redis.exists(job_key) == 1
    await services.queue.enqueue_grant(tid)
    await services.queue.enqueue_grant(tid)
    assert await services.redis.zcard(QUEUE) == 1

    worker = await run_worker(services)

    assert worker.jobs_complete == 1
    assert await status_of(services, tid) == Status.PROVISION_SUCCESS
    assert await ledger_rows(services, tid) == 1
    # keep_result=0: the finished job left nothing behind, so its id can be queued again
    assert await services.redis.exists(job_key, f"arq:result:{grant_job_id(tid)}") == 0

    # The same job again (a sweeper, a duplicate delivery): it runs, finds 50, grants nothing.
    await services.queue.enqueue_grant(tid)
    assert await services.redis.exists(job_key) == 1
    again = await run_worker(services)
    assert again.jobs_complete == 1
    assert await ledger_rows(services, tid) == 1

    # And the job function called directly, twice, with a ctx: still one grant.
    ctx = {"deps": services.job_deps, "job_try": 1, "job_id": grant_job_id(tid)}
    assert await provision_grant(ctx, tid) == "skipped: not pending"
    assert await provision_grant(ctx, tid) == "skipped: not pending"
    assert await ledger_rows(services, tid) == 1
    codes = await history_codes(services, tid)
    assert codes == [10, 30, 40, 45, 50], codes


async def test_two_concurrent_runs_of_the_job_grant_once(
    make_services: ServicesFactory, toss: httpx.AsyncClient
) -> None:
    services = await make_services()
    tid = (await pay(services, toss, RESUME)).transaction_id
    ctx = {"deps": services.job_deps, "job_try": 1, "job_id": grant_job_id(tid)}

    results = await asyncio.gather(provision_grant(ctx, tid), provision_grant(ctx, tid))

    assert "granted" in results, results
    assert set(results) <= {"granted", "skipped: not pending"}, results
    assert await ledger_rows(services, tid) == 1
    codes = await history_codes(services, tid)
    assert codes.count(50) == 1, codes
    assert await status_of(services, tid) == Status.PROVISION_SUCCESS


async def test_a_run_that_died_after_granting_is_completed_by_the_next_run(
    make_services: ServicesFactory, toss: httpx.AsyncClient
) -> None:
    services = await make_services()
    transaction = await pay(services, toss, STUDY)
    tid = transaction.transaction_id
    # The first run granted and then died before reporting 50.
    product = await StaticProductCatalog.from_file().get_product(
        transaction.product_type, transaction.product_id
    )
    assert product is not None
    first = await LedgerGrantHandler(services.engine).grant(GrantRequest.of(transaction, product))
    assert first == {"ledger": "granted"}
    assert await status_of(services, tid) == Status.PROVISION_PENDING

    await run_worker(services)

    assert await status_of(services, tid) == Status.PROVISION_SUCCESS
    assert await ledger_rows(services, tid) == 1
    completed = [meta for code, _, meta in await history(services, tid) if code == 50]
    assert completed == [{"try": 1, "ledger": "already granted"}]


async def test_transient_failures_are_retried_with_one_idempotency_key_until_granted(
    make_services: ServicesFactory,
    toss: httpx.AsyncClient,
    fake: FakeDownstream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    services = await make_services(study_service_url=fake.url, provisioning_retry_base_seconds=0.1)
    fake.fail_next(2, status=503)
    transaction = await pay(services, toss, STUDY, metadata={"studyId": "study-77", "applicationId": "app-1"})
    tid = transaction.transaction_id

    with caplog.at_level(logging.WARNING, logger="app.provisioning"):
        worker = await run_worker(services)

    assert await status_of(services, tid) == Status.PROVISION_SUCCESS
    requests = fake.requests(tid)
    assert [r.status for r in requests] == [503, 503, 200]
    assert {r.idempotency_key for r in requests} == {tid}
    # The catalog's study, whatever metadata.studyId says; the body carries what the study service checks.
    assert {r.path for r in requests} == {"/api/studies/study_123/confirm-payment"}
    assert all(
        r.body
        == {
            "applicationId": "app-1",
            "paymentId": tid,
            "userId": transaction.user_id,
            "productId": "study_123",
            "amount": 50_000,
        }
        for r in requests
    )
    assert len(fake.grants(tid)) == 1
    assert len(fake.requests()) == 3  # nothing else was called
    # Each failure was handed back to arq as a Retry with the growing delay: 0.1 s, then 0.2 s.
    retries = [
        (r.__dict__["try"], r.__dict__["retryInSeconds"])
        for r in caplog.records
        if r.getMessage() == "grant failed; retrying" and r.__dict__.get("transactionId") == tid
    ]
    assert retries == [(1, 0.1), (2, 0.2)], retries
    assert worker.jobs_retried == 2
    completed = [meta for code, _, meta in await history(services, tid) if code == 50]
    assert completed[0]["try"] == 3
    assert completed[0]["downstreamStatus"] == 200
    assert "answer" not in completed[0]  # the downstream's body is logged, never shown to the buyer


async def test_retries_exhausted_fail_the_grant_and_refund_it_once(
    make_services: ServicesFactory, toss: httpx.AsyncClient, fake: FakeDownstream
) -> None:
    services = await make_services(study_service_url=fake.url, provisioning_max_tries=3)
    fake.down()
    transaction = await pay(services, toss, STUDY)
    tid = transaction.transaction_id

    await run_worker(services)  # the grant job gives up, queues the refund job, which runs too

    final = await services.queries.get_transaction(tid)
    assert final is not None
    assert final.status == Status.REFUNDED
    assert final.refunded_amount == 50_000
    assert final.failure_code == "PAY_006"
    assert [r.status for r in fake.requests(tid)] == [503, 503, 503]
    assert fake.grants() == []
    codes = await history_codes(services, tid)
    assert codes == [10, 30, 40, 45, 51, 90, 95], codes
    refund = await refund_of(services, tid)
    assert (refund.status, refund.amount, refund.actor) == ("DONE", 50_000, "system")
    sent = await cancels(toss, tid)
    assert len(sent) == 1, sent
    assert sent[0]["status"] == 200
    assert sent[0]["idempotencyKey"] == refund.refund_id
    assert "cancelAmount" not in sent[0]["body"]  # a full cancel
    pg = await pg_payment(toss, tid)
    assert (pg["status"], pg["balanceAmount"], len(pg["cancels"])) == ("CANCELED", 0, 1)


async def test_a_refused_grant_fails_at_once_and_is_refunded(
    make_services: ServicesFactory, toss: httpx.AsyncClient, fake: FakeDownstream
) -> None:
    services = await make_services(study_service_url=fake.url, provisioning_max_tries=5)
    fake.refuse(400)
    tid = (await pay(services, toss, STUDY)).transaction_id

    worker = await run_worker(services)

    assert await status_of(services, tid) == Status.REFUNDED
    assert [r.status for r in fake.requests(tid)] == [400]  # permanent: never retried
    assert worker.jobs_retried == 0
    assert len(await cancels(toss, tid)) == 1
    assert (await pg_payment(toss, tid))["status"] == "CANCELED"
    failed = [msg for code, msg, _ in await history(services, tid) if code == 51]
    assert len(failed) == 1 and "400" in failed[0], failed


async def test_an_unreachable_service_is_transient_until_the_last_try(
    make_services: ServicesFactory, toss: httpx.AsyncClient, fake: FakeDownstream
) -> None:
    services = await make_services(study_service_url=fake.url, provisioning_max_tries=3)
    tid = (await pay(services, toss, STUDY)).transaction_id
    fake.down(refuse=True)  # connections refused
    try:
        worker = await run_worker(services)
    finally:
        fake.ok()

    assert worker.jobs_retried == 2  # tries 1 and 2 retried; try 3 gave up
    assert await status_of(services, tid) == Status.REFUNDED
    assert fake.requests(tid) == []  # nothing ever reached it
    failed = [msg for code, msg, _ in await history(services, tid) if code == 51]
    assert len(failed) == 1 and "gave up after 3 tries" in failed[0] and "ConnectError" in failed[0], failed
    assert len(await cancels(toss, tid)) == 1


async def test_a_late_answer_is_retried_and_counted_once(
    make_services: ServicesFactory, toss: httpx.AsyncClient, fake: FakeDownstream
) -> None:
    """The service answers after our HTTP timeout (it did the work): the retry with the same
    Idempotency-Key is answered "already granted", and the buyer is granted once."""
    services = await make_services(
        study_service_url=fake.url, provisioning_http_timeout_seconds=0.4, provisioning_max_tries=6
    )
    tid = (await pay(services, toss, STUDY)).transaction_id
    # Held well past the 0.4 s timeout, however late the worker's first request arrives.
    fake.hold(2.0, key=tid)

    await run_worker(services)

    assert await status_of(services, tid) == Status.PROVISION_SUCCESS
    requests = fake.requests(tid)
    assert len(requests) >= 2, requests
    assert {r.idempotency_key for r in requests} == {tid}
    assert len(fake.grants(tid)) == 1
    completed = [meta for code, _, meta in await history(services, tid) if code == 50]
    assert completed[0]["try"] >= 2
    assert set(completed[0]) == {"try", "downstreamStatus"}  # never the downstream's body


@pytest.mark.parametrize("product", [STUDY, RESUME], ids=["study", "credit"])
async def test_credit_and_study_handlers_are_wired_by_url(
    make_services: ServicesFactory, toss: httpx.AsyncClient, fake: FakeDownstream, product: Product
) -> None:
    services = await make_services(study_service_url=fake.url, credit_service_url=fake.url)
    transaction = await pay(services, toss, product)
    tid = transaction.transaction_id

    await run_worker(services)

    assert await status_of(services, tid) == Status.PROVISION_SUCCESS
    [request] = fake.requests(tid)
    if product is STUDY:
        assert request.path == "/api/studies/study_123/confirm-payment"
    else:
        assert request.path == "/api/credits/grants"
        assert request.body == {
            "userId": transaction.user_id,
            "productId": "resume_credit_10",
            "paymentId": tid,
            "amount": 9_900,
            "credits": 10,  # the catalog's count for this product
        }
    assert await ledger_rows(services, tid) == 0  # a downstream service, not the ledger


# --- the sweeper ------------------------------------------------------------------------------------

STALE = 1800.0  # only our own aged transactions are this old within one test run


async def test_sweeper_requeues_a_lost_grant_and_enqueue_stays_idempotent(
    make_services: ServicesFactory, toss: httpx.AsyncClient, fake: FakeDownstream
) -> None:
    services = await make_services(study_service_url=fake.url, sweep_stale_after_seconds=STALE)
    assert services.redis is not None
    tid = (await pay(services, toss, STUDY)).transaction_id
    # The job is lost (Redis flushed, enqueue failed after the commit, ...).
    await services.redis.delete(f"arq:job:{grant_job_id(tid)}")
    await services.redis.zrem(QUEUE, grant_job_id(tid))
    await age(services, tid, STALE + 60)
    ctx = {"deps": services.job_deps}

    first = await sweep(ctx)
    second = await sweep(ctx)  # the job exists now: queueing it again is a no-op

    assert first["grants"] >= 1 and second["grants"] >= 1
    assert await services.redis.zcard(QUEUE) == 1
    await run_worker(services)
    assert await status_of(services, tid) == Status.PROVISION_SUCCESS
    assert len(fake.requests(tid)) == 1


async def test_sweeper_moves_a_stale_40_to_45_and_the_grant_follows(
    make_services: ServicesFactory, toss: httpx.AsyncClient
) -> None:
    services = await make_services(sweep_stale_after_seconds=STALE)
    assert services.redis is not None
    tid = (await pay(services, toss, RESUME)).transaction_id
    # Rewind to "40 committed, then the process died before 40→45 and the enqueue".
    await services.redis.delete(f"arq:job:{grant_job_id(tid)}")
    await services.redis.zrem(QUEUE, grant_job_id(tid))
    async with services.engine.begin() as conn:
        await conn.execute(
            update(transactions)
            .where(transactions.c.transaction_id == tid)
            .values(status=int(Status.PAYMENT_SUCCESS))
        )
    await age(services, tid, STALE + 60)

    counts = await sweep({"deps": services.job_deps})

    assert counts["provisioning"] >= 1
    assert await status_of(services, tid) == Status.PROVISION_PENDING
    await run_worker(services)
    assert await status_of(services, tid) == Status.PROVISION_SUCCESS
    assert await ledger_rows(services, tid) == 1


async def test_worker_processes_many_grants_concurrently(
    make_services: ServicesFactory, toss: httpx.AsyncClient, fake: FakeDownstream
) -> None:
    services = await make_services(study_service_url=fake.url)
    tids = [(await pay(services, toss, STUDY)).transaction_id for _ in range(6)]
    fake.fail_next(3)

    worker = new_worker(services)
    await asyncio.wait_for(worker.main(), 30)

    assert [await status_of(services, tid) for tid in tids] == [Status.PROVISION_SUCCESS] * 6
    assert {g.idempotency_key for g in fake.grants()} == set(tids)
    assert len(fake.requests()) == 6 + 3
