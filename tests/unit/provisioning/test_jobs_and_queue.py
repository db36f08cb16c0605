"""The job functions with a fake ctx, the retry delays, and the in-process queue's Retry semantics."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from arq import Retry

from app.core.catalog import StaticProductCatalog
from app.core.checkout import Checkout
from app.core.domain import Method, ProductType, RefundStatus, RevokeStatus, Status, Transaction
from app.core.ports import RefundRecord
from app.core.reconciliation import PaymentReconciler
from app.core.refunds import RefundOutcomeUnknown, RefundService
from app.core.sweeper import Sweeper
from app.core.webhooks import WebhookService
from app.provisioning.handlers import (
    GrantHandler,
    GrantRequest,
    PermanentGrantError,
    RevokeRequest,
    TransientGrantError,
)
from app.provisioning.jobs import JobDeps, grant_retry_delay, job_tries, provision_grant, refund_payment
from app.provisioning.queue import InProcessQueue, grant_job_id, refund_job_id
from tests.support.core import build_test_core

TID = "TXN_20250314_jobsjobsjobs"
RID = "RF_20250315_jobsjobsjobs"
CATALOG = StaticProductCatalog.from_file()


# --- fakes ----------------------------------------------------------------------------------------


class FakePayments:
    """The real Fulfilment over the in-memory repository (the guarded 45→50 / 45→51 are the real
    ones), with what happened to each transaction read back from its history."""

    def __init__(self) -> None:
        self.core = build_test_core()

    async def add(self, transaction: Transaction) -> None:
        await self.core.repo.add(transaction, "seeded")

    def status(self, transaction_id: str) -> Status:
        return self.core.repo.stored(transaction_id).status

    def _ended(self, status: Status) -> list[tuple[str, dict[str, Any]]]:
        return [
            (tid, h.metadata)
            for tid in self.core.repo.ids()
            for h in self.core.repo.stored_history(tid)
            if h.status == status
        ]

    @property
    def completed(self) -> list[tuple[str, dict[str, Any]]]:
        return self._ended(Status.PROVISION_SUCCESS)

    @property
    def failed(self) -> list[tuple[str, str]]:
        return [(tid, notes["reason"]) for tid, notes in self._ended(Status.PROVISION_FAILED)]


@dataclass
class FakeRefunds:
    """The slice of RefundService the refund job uses: one refund, its revoke and its PG cancel."""

    refund: RefundRecord | None = None
    outcomes: list[str | Exception] = field(default_factory=list)
    executed: int = 0
    revoked: list[str] = field(default_factory=list)
    revoke_failures: list[str] = field(default_factory=list)

    async def get_refund(self, refund_id: str) -> RefundRecord | None:
        await asyncio.sleep(0)
        return self.refund if self.refund is not None and self.refund.refund_id == refund_id else None

    async def list_refunds(self, transaction_id: str) -> list[RefundRecord]:
        return [self.refund] if self.refund is not None else []

    async def revoke_done(self, refund: RefundRecord, detail: str) -> None:
        assert self.refund is not None
        self.refund = dataclasses.replace(self.refund, revoke_status=RevokeStatus.DONE)
        self.revoked.append(detail)

    async def revoke_failed(self, refund: RefundRecord, reason: str) -> None:
        assert self.refund is not None
        self.refund = dataclasses.replace(
            self.refund, revoke_status=RevokeStatus.FAILED, status=RefundStatus.NEEDS_REVIEW
        )
        self.revoke_failures.append(reason)

    async def execute_refund(self, refund_id: str) -> str:
        self.executed += 1
        assert self.refund is not None
        assert self.refund.revoke_status in (RevokeStatus.DONE, RevokeStatus.NOT_REQUIRED), (
            "money before goods"
        )
        outcome = self.outcomes.pop(0) if self.outcomes else "DONE"
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def a_refund(revoke: RevokeStatus = RevokeStatus.NOT_REQUIRED) -> RefundRecord:
    return RefundRecord(
        refund_id=RID,
        transaction_id=TID,
        amount=50_000,
        reason="changed my mind",
        actor="u-1",
        status=RefundStatus.REQUESTED,
        created_at=datetime(2025, 3, 15, tzinfo=UTC),
        revoke_status=revoke,
    )


class ScriptedHandler:
    """Answers each grant with the next scripted outcome (an exception or details); records calls."""

    def __init__(self, *outcomes: Exception | dict[str, Any], gate: asyncio.Event | None = None) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[GrantRequest] = []
        self.revokes: list[RevokeRequest] = []
        self.gate = gate

    async def grant(self, request: GrantRequest) -> dict[str, Any]:
        self.calls.append(request)
        if self.gate is not None:
            await self.gate.wait()
        outcome = self.outcomes.pop(0) if self.outcomes else {"ok": True}
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def revoke(self, request: RevokeRequest) -> dict[str, Any]:
        self.revokes.append(request)
        outcome = self.outcomes.pop(0) if self.outcomes else {"revoked": True}
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def pending(transaction_id: str = TID, status: Status = Status.PROVISION_PENDING) -> Transaction:
    now = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
    return Transaction(
        provider="TOSS",
        transaction_id=transaction_id,
        user_id="u-1",
        product_type=ProductType.STUDY,
        product_id="study_123",
        order_name="study",
        amount=50_000,
        method=Method.CARD,
        status=status,
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(minutes=30),
        metadata={"studyId": "s-1"},
    )


def deps(
    payments: FakePayments,
    handler: GrantHandler,
    *,
    refunds: FakeRefunds | None = None,
    max_tries: int = 4,
    base: float = 0.01,
    ceiling: float = 0.05,
    refund_retry: float = 0.01,
) -> JobDeps:
    return JobDeps(
        transactions=payments.core.repo,
        fulfilment=payments.core.fulfilment,
        checkout=cast(Checkout, None),
        sweeper=cast(Sweeper, None),
        refunds=cast(RefundService, refunds or FakeRefunds()),
        catalog=CATALOG,
        reconciler=cast(PaymentReconciler, None),
        webhooks=cast(WebhookService, None),
        handlers={ProductType.STUDY: handler, ProductType.AI_RESUME: handler},
        max_tries=max_tries,
        retry_base_seconds=base,
        retry_max_seconds=ceiling,
        refund_retry_seconds=refund_retry,
        sweep_stale_after_seconds=15,
        sweep_batch_size=100,
    )


def ctx_for(job_deps: JobDeps, job_try: int = 1) -> dict[str, Any]:
    return {"deps": job_deps, "job_try": job_try, "job_id": grant_job_id(TID)}


async def wait_until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


# --- grant_retry_delay --------------------------------------------------------------------------------


def test_grant_retry_delay_doubles_from_the_base() -> None:
    assert [grant_retry_delay(n, 2.0, 60.0) for n in range(1, 7)] == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0]


def test_grant_retry_delay_is_capped_and_a_float() -> None:
    assert grant_retry_delay(50, 2.0, 60.0) == 60.0
    assert grant_retry_delay(3, 0.2, 1.0) == pytest.approx(0.8)
    assert grant_retry_delay(4, 0.2, 1.0) == 1.0
    assert isinstance(grant_retry_delay(1, 1, 10), float)
    delays = [grant_retry_delay(n, 0.05, 0.3) for n in range(1, 10)]
    assert delays == sorted(delays)  # never shrinks


# --- provision_grant with a fake ctx -----------------------------------------------------------------


async def test_grant_success_reports_50_with_the_try_and_details() -> None:
    payments = FakePayments()
    await payments.add(pending())
    handler = ScriptedHandler({"downstreamStatus": 200})
    assert await provision_grant(ctx_for(deps(payments, handler), job_try=2), TID) == "granted"
    assert payments.status(TID) == Status.PROVISION_SUCCESS
    assert payments.completed == [(TID, {"try": 2, "downstreamStatus": 200})]
    product = await CATALOG.get_product(ProductType.STUDY, "study_123")
    assert product is not None
    assert handler.calls == [GrantRequest.of(payments.core.repo.stored(TID), product)]
    # What is granted is the catalog's study, whatever the buyer put in metadata.
    assert (handler.calls[0].study_id, payments.core.repo.stored(TID).metadata["studyId"]) == (
        "study_123",
        "s-1",
    )


async def test_a_product_no_longer_in_the_catalog_fails_the_grant() -> None:
    payments = FakePayments()
    gone = pending()
    gone.product_id = "study_withdrawn"
    await payments.add(gone)
    handler = ScriptedHandler()
    assert await provision_grant(ctx_for(deps(payments, handler)), TID) == "failed: refused"
    assert handler.calls == []
    assert payments.failed == [(TID, "the product is no longer in the catalog")]


@pytest.mark.parametrize("status", [s for s in Status if s != Status.PROVISION_PENDING])
async def test_grant_skips_anything_not_pending_without_calling_the_handler(status: Status) -> None:
    payments = FakePayments()
    await payments.add(pending(status=status))
    handler = ScriptedHandler()
    assert await provision_grant(ctx_for(deps(payments, handler)), TID) == "skipped: not pending"
    assert handler.calls == []
    assert payments.status(TID) == status


async def test_grant_of_an_unknown_transaction_is_skipped() -> None:
    handler = ScriptedHandler()
    assert await provision_grant(ctx_for(deps(FakePayments(), handler)), "nope") == "skipped: not pending"
    assert handler.calls == []


async def test_transient_error_before_the_last_try_raises_retry_with_the_growing_delay() -> None:
    for job_try, expected_ms in [(1, 10), (2, 20), (3, 40)]:
        payments = FakePayments()
        await payments.add(pending())
        handler = ScriptedHandler(TransientGrantError("503"))
        with pytest.raises(Retry) as caught:
            await provision_grant(ctx_for(deps(payments, handler, ceiling=1.0), job_try=job_try), TID)
        assert caught.value.defer_score == expected_ms
        assert payments.status(TID) == Status.PROVISION_PENDING
        assert payments.failed == []


async def test_transient_error_on_the_last_try_fails_the_grant() -> None:
    payments = FakePayments()
    await payments.add(pending())
    handler = ScriptedHandler(TransientGrantError("503 again"))
    result = await provision_grant(ctx_for(deps(payments, handler, max_tries=4), job_try=4), TID)
    assert result == "failed: retries exhausted"
    # 51, then at once the automatic refund (the real Fulfilment): 90.
    assert payments.status(TID) == Status.REFUND_REQUESTED
    assert payments.failed[0][0] == TID
    assert "gave up after 4 tries" in payments.failed[0][1]
    assert "503 again" in payments.failed[0][1]


async def test_permanent_error_fails_the_grant_at_once() -> None:
    payments = FakePayments()
    await payments.add(pending())
    handler = ScriptedHandler(PermanentGrantError("400 study is full"))
    result = await provision_grant(ctx_for(deps(payments, handler), job_try=1), TID)
    assert result == "failed: refused"
    assert payments.failed == [(TID, "400 study is full")]


async def test_two_concurrent_runs_report_50_once() -> None:
    payments = FakePayments()
    await payments.add(pending())
    gate = asyncio.Event()
    handler = ScriptedHandler(gate=gate)
    job_deps = deps(payments, handler)
    runs = [asyncio.create_task(provision_grant(ctx_for(job_deps), TID)) for _ in range(2)]
    await wait_until(lambda: len(handler.calls) == 2)
    gate.set()
    assert await asyncio.gather(*runs) == ["granted", "granted"]
    assert len(payments.completed) == 1  # the guarded 45→50 lets only one win


# --- refund_payment --------------------------------------------------------------------------------


async def test_refund_job_without_anything_to_revoke_goes_to_the_pg() -> None:
    refunds = FakeRefunds(a_refund(), outcomes=["DONE"])
    handler = ScriptedHandler()
    assert await refund_payment(ctx_for(deps(FakePayments(), handler, refunds=refunds)), RID) == "DONE"
    assert (refunds.executed, handler.revokes) == (1, [])


async def test_refund_job_takes_the_grant_back_before_the_money_goes() -> None:
    payments = FakePayments()
    await payments.add(pending(status=Status.REFUND_REQUESTED))
    refunds = FakeRefunds(a_refund(RevokeStatus.PENDING))
    handler = ScriptedHandler({"downstreamStatus": 200})
    assert await refund_payment(ctx_for(deps(payments, handler, refunds=refunds)), RID) == "DONE"
    assert [r.refund_id for r in handler.revokes] == [RID]
    assert handler.revokes[0].grant.study_id == "study_123"  # the catalog's, not metadata's "s-1"
    assert refunds.revoked == ["downstreamStatus=200"]
    assert refunds.executed == 1  # FakeRefunds asserts the revoke was done first


async def test_a_revoke_that_may_work_later_is_retried_and_no_money_moves() -> None:
    payments = FakePayments()
    await payments.add(pending(status=Status.REFUND_REQUESTED))
    refunds = FakeRefunds(a_refund(RevokeStatus.PENDING))
    handler = ScriptedHandler(TransientGrantError("study service 503"))
    with pytest.raises(Retry):
        await refund_payment(ctx_for(deps(payments, handler, refunds=refunds), job_try=1), RID)
    assert (refunds.executed, refunds.revoke_failures) == (0, [])


@pytest.mark.parametrize(
    ("error", "job_try", "outcome"),
    [
        (TransientGrantError("503"), 4, "revoke failed: retries exhausted"),
        (PermanentGrantError("400"), 1, "revoke failed: refused"),
    ],
)
async def test_a_revoke_that_fails_for_good_waits_for_a_human_and_no_money_moves(
    error: Exception, job_try: int, outcome: str
) -> None:
    payments = FakePayments()
    await payments.add(pending(status=Status.REFUND_REQUESTED))
    refunds = FakeRefunds(a_refund(RevokeStatus.PENDING))
    handler = ScriptedHandler(error)
    job = deps(payments, handler, refunds=refunds, max_tries=4)
    assert await refund_payment(ctx_for(job, job_try=job_try), RID) == outcome
    assert refunds.executed == 0
    assert refunds.refund is not None and refunds.refund.status == RefundStatus.NEEDS_REVIEW
    assert len(refunds.revoke_failures) == 1


async def test_refund_job_retries_when_the_outcome_is_unknown() -> None:
    refunds = FakeRefunds(a_refund(), outcomes=[RefundOutcomeUnknown("FAILED_INTERNAL_SYSTEM_PROCESSING")])
    with pytest.raises(Retry) as caught:
        await refund_payment(
            ctx_for(deps(FakePayments(), ScriptedHandler(), refunds=refunds, refund_retry=0.5)), RID
        )
    assert caught.value.defer_score == 500


async def test_refund_job_for_an_unknown_refund_is_skipped() -> None:
    assert await refund_payment(ctx_for(deps(FakePayments(), ScriptedHandler())), "RF_nope") == (
        "skipped: no such refund"
    )


# --- the in-process queue ----------------------------------------------------------------------------


def in_process(job_deps: JobDeps, *, max_tries: int = 4) -> InProcessQueue:
    """The in-process queue with the same tries per job as the arq worker."""
    queue = InProcessQueue(tries=job_tries(max_tries), sweep_interval_seconds=60)
    queue.run_jobs_with(job_deps)
    return queue


async def test_in_process_queue_retries_after_retry_then_succeeds() -> None:
    payments = FakePayments()
    await payments.add(pending())
    handler = ScriptedHandler(
        TransientGrantError("503"), TransientGrantError("503"), {"downstreamStatus": 200}
    )
    queue = in_process(deps(payments, handler, base=0.01, ceiling=0.02))
    try:
        await queue.enqueue_grant(TID)
        await wait_until(lambda: bool(payments.completed))
    finally:
        await queue.close()
    assert len(handler.calls) == 3
    assert payments.completed == [(TID, {"try": 3, "downstreamStatus": 200})]


async def test_in_process_queue_waits_for_the_deferral_before_the_next_try() -> None:
    payments = FakePayments()
    await payments.add(pending())
    handler = ScriptedHandler(TransientGrantError("503"), {"downstreamStatus": 200})
    queue = in_process(deps(payments, handler, base=60.0, ceiling=60.0))
    try:
        await queue.enqueue_grant(TID)
        await wait_until(lambda: len(handler.calls) >= 1)
        for _ in range(100):  # a retry that ignored its deferral would run within a few loop turns
            await asyncio.sleep(0)
        assert len(handler.calls) == 1  # the second try waits its 60 s
        assert payments.completed == []
    finally:
        await queue.close()


async def test_in_process_queue_gives_up_like_arq_and_the_grant_fails() -> None:
    payments = FakePayments()
    await payments.add(pending())
    handler = ScriptedHandler(*[TransientGrantError("down") for _ in range(10)])
    queue = in_process(deps(payments, handler, max_tries=3), max_tries=3)
    try:
        await queue.enqueue_grant(TID)
        # 51, then the automatic refund (the real Fulfilment): 90, a step later on the same loop.
        await wait_until(lambda: bool(payments.failed) and payments.status(TID) == Status.REFUND_REQUESTED)
    finally:
        await queue.close()
    assert len(handler.calls) == 3


async def test_in_process_queue_deduplicates_a_job_id_while_it_runs() -> None:
    payments = FakePayments()
    await payments.add(pending())
    gate = asyncio.Event()
    handler = ScriptedHandler(gate=gate)
    queue = in_process(deps(payments, handler))
    try:
        await queue.enqueue_grant(TID)
        await wait_until(lambda: len(handler.calls) == 1)
        await queue.enqueue_grant(TID)  # already queued: a no-op
        await queue.enqueue_grant(TID)
        await asyncio.sleep(0.05)
        assert len(handler.calls) == 1
        gate.set()
        await wait_until(lambda: bool(payments.completed))
        # finished: the id is free again; a new run finds 50 and does nothing
        await queue.enqueue_grant(TID)
        await asyncio.sleep(0.05)
    finally:
        await queue.close()
    assert len(handler.calls) == 1
    assert len(payments.completed) == 1


async def test_in_process_queue_runs_refunds_with_retry_too() -> None:
    refunds = FakeRefunds(a_refund(), outcomes=[RefundOutcomeUnknown("timeout"), "DONE"])
    queue = in_process(deps(FakePayments(), ScriptedHandler(), refunds=refunds, refund_retry=0.01))
    try:
        await queue.enqueue_refund(RID)
        await wait_until(lambda: refunds.executed == 2)
        await asyncio.sleep(0.02)
    finally:
        await queue.close()
    assert refunds.executed == 2
    assert refunds.outcomes == []


def test_job_ids_are_deterministic_per_transaction() -> None:
    assert grant_job_id(TID) == f"provision:{TID}"
    assert refund_job_id(RID) == f"refund:{RID}"
