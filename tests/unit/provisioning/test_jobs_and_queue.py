"""The job functions with a fake ctx, the retry delays, and the in-process queue's Retry semantics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from arq import Retry

from app.core.domain import Method, ProductType, Status, Transaction
from app.core.reconciliation import PaymentReconciler
from app.core.service import PaymentService, RefundOutcomeUnknown
from app.core.webhooks import WebhookService
from app.provisioning.handlers import GrantHandler, GrantRequest, PermanentGrantError, TransientGrantError
from app.provisioning.jobs import JobDeps, grant_retry_delay, provision_grant, refund_payment
from app.provisioning.queue import InProcessQueue, grant_job_id, refund_job_id

TID = "TXN_20250314_jobsjobsjobs"


# --- fakes ----------------------------------------------------------------------------------------


@dataclass
class FakePayments:
    """The slice of PaymentService the jobs use, with guarded 45→50 / 45→51 like the real one."""

    transactions: dict[str, Transaction] = field(default_factory=dict)
    completed: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    refund_outcomes: list[Status | Exception] = field(default_factory=list)
    refund_calls: int = 0

    def add(self, transaction: Transaction) -> None:
        self.transactions[transaction.transaction_id] = transaction

    async def get_transaction(self, transaction_id: str) -> Transaction | None:
        await asyncio.sleep(0)
        return self.transactions.get(transaction_id)

    async def complete_provisioning(self, transaction_id: str, details: dict[str, Any]) -> bool:
        await asyncio.sleep(0)
        transaction = self.transactions[transaction_id]
        if transaction.status != Status.PROVISION_PENDING:
            return False
        transaction.status = Status.PROVISION_SUCCESS
        self.completed.append((transaction_id, details))
        return True

    async def fail_provisioning(self, transaction_id: str, reason: str) -> bool:
        await asyncio.sleep(0)
        transaction = self.transactions[transaction_id]
        if transaction.status != Status.PROVISION_PENDING:
            return False
        transaction.status = Status.PROVISION_FAILED
        self.failed.append((transaction_id, reason))
        return True

    async def execute_refund(self, transaction_id: str) -> Status:
        self.refund_calls += 1
        outcome = self.refund_outcomes.pop(0) if self.refund_outcomes else Status.REFUNDED
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class ScriptedHandler:
    """Answers each grant with the next scripted outcome (an exception or details); records calls."""

    def __init__(self, *outcomes: Exception | dict[str, Any], gate: asyncio.Event | None = None) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[GrantRequest] = []
        self.gate = gate

    async def grant(self, request: GrantRequest) -> dict[str, Any]:
        self.calls.append(request)
        if self.gate is not None:
            await self.gate.wait()
        outcome = self.outcomes.pop(0) if self.outcomes else {"ok": True}
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def pending(transaction_id: str = TID, status: Status = Status.PROVISION_PENDING) -> Transaction:
    now = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
    return Transaction(
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
    max_tries: int = 4,
    base: float = 0.01,
    ceiling: float = 0.05,
    refund_retry: float = 0.01,
) -> JobDeps:
    return JobDeps(
        payments=cast(PaymentService, payments),
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
    payments.add(pending())
    handler = ScriptedHandler({"downstreamStatus": 200})
    assert await provision_grant(ctx_for(deps(payments, handler), job_try=2), TID) == "granted"
    assert payments.transactions[TID].status == Status.PROVISION_SUCCESS
    assert payments.completed == [(TID, {"try": 2, "downstreamStatus": 200})]
    assert handler.calls == [GrantRequest.of(payments.transactions[TID])]


@pytest.mark.parametrize("status", [s for s in Status if s != Status.PROVISION_PENDING])
async def test_grant_skips_anything_not_pending_without_calling_the_handler(status: Status) -> None:
    payments = FakePayments()
    payments.add(pending(status=status))
    handler = ScriptedHandler()
    assert await provision_grant(ctx_for(deps(payments, handler)), TID) == "skipped: not pending"
    assert handler.calls == []
    assert payments.transactions[TID].status == status


async def test_grant_of_an_unknown_transaction_is_skipped() -> None:
    handler = ScriptedHandler()
    assert await provision_grant(ctx_for(deps(FakePayments(), handler)), "nope") == "skipped: not pending"
    assert handler.calls == []


async def test_transient_error_before_the_last_try_raises_retry_with_the_growing_delay() -> None:
    for job_try, expected_ms in [(1, 10), (2, 20), (3, 40)]:
        payments = FakePayments()
        payments.add(pending())
        handler = ScriptedHandler(TransientGrantError("503"))
        with pytest.raises(Retry) as caught:
            await provision_grant(ctx_for(deps(payments, handler, ceiling=1.0), job_try=job_try), TID)
        assert caught.value.defer_score == expected_ms
        assert payments.transactions[TID].status == Status.PROVISION_PENDING
        assert payments.failed == []


async def test_transient_error_on_the_last_try_fails_the_grant() -> None:
    payments = FakePayments()
    payments.add(pending())
    handler = ScriptedHandler(TransientGrantError("503 again"))
    result = await provision_grant(ctx_for(deps(payments, handler, max_tries=4), job_try=4), TID)
    assert result == "failed: retries exhausted"
    assert payments.transactions[TID].status == Status.PROVISION_FAILED
    assert payments.failed[0][0] == TID
    assert "gave up after 4 tries" in payments.failed[0][1]
    assert "503 again" in payments.failed[0][1]


async def test_permanent_error_fails_the_grant_at_once() -> None:
    payments = FakePayments()
    payments.add(pending())
    handler = ScriptedHandler(PermanentGrantError("400 study is full"))
    result = await provision_grant(ctx_for(deps(payments, handler), job_try=1), TID)
    assert result == "failed: refused"
    assert payments.failed == [(TID, "400 study is full")]


async def test_two_concurrent_runs_report_50_once() -> None:
    payments = FakePayments()
    payments.add(pending())
    gate = asyncio.Event()
    handler = ScriptedHandler(gate=gate)
    job_deps = deps(payments, handler)
    runs = [asyncio.create_task(provision_grant(ctx_for(job_deps), TID)) for _ in range(2)]
    await wait_until(lambda: len(handler.calls) == 2)
    gate.set()
    assert await asyncio.gather(*runs) == ["granted", "granted"]
    assert len(payments.completed) == 1  # the guarded 45→50 lets only one win


# --- refund_payment --------------------------------------------------------------------------------


async def test_refund_job_returns_the_status_name() -> None:
    payments = FakePayments(refund_outcomes=[Status.REFUNDED])
    assert await refund_payment(ctx_for(deps(payments, ScriptedHandler())), TID) == "REFUNDED"


async def test_refund_job_retries_when_the_outcome_is_unknown() -> None:
    payments = FakePayments(refund_outcomes=[RefundOutcomeUnknown("FAILED_INTERNAL_SYSTEM_PROCESSING")])
    with pytest.raises(Retry) as caught:
        await refund_payment(ctx_for(deps(payments, ScriptedHandler(), refund_retry=0.5)), TID)
    assert caught.value.defer_score == 500


# --- the in-process queue ----------------------------------------------------------------------------


def in_process(job_deps: JobDeps, *, max_tries: int = 4) -> InProcessQueue:
    return InProcessQueue({"deps": job_deps}, max_tries=max_tries, sweep_interval_seconds=60)


async def test_in_process_queue_retries_after_retry_then_succeeds() -> None:
    payments = FakePayments()
    payments.add(pending())
    handler = ScriptedHandler(
        TransientGrantError("503"), TransientGrantError("503"), {"downstreamStatus": 200}
    )
    queue = in_process(deps(payments, handler, base=0.01, ceiling=0.02))
    started = time.monotonic()
    try:
        await queue.enqueue_grant(TID)
        await wait_until(lambda: bool(payments.completed))
    finally:
        await queue.close()
    assert len(handler.calls) == 3
    assert payments.completed == [(TID, {"try": 3, "downstreamStatus": 200})]
    assert time.monotonic() - started >= 0.01 + 0.02  # the deferrals were honoured


async def test_in_process_queue_gives_up_like_arq_and_the_grant_fails() -> None:
    payments = FakePayments()
    payments.add(pending())
    handler = ScriptedHandler(*[TransientGrantError("down") for _ in range(10)])
    queue = in_process(deps(payments, handler, max_tries=3), max_tries=3)
    try:
        await queue.enqueue_grant(TID)
        await wait_until(lambda: bool(payments.failed))
    finally:
        await queue.close()
    assert len(handler.calls) == 3
    assert payments.transactions[TID].status == Status.PROVISION_FAILED


async def test_in_process_queue_deduplicates_a_job_id_while_it_runs() -> None:
    payments = FakePayments()
    payments.add(pending())
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
    payments = FakePayments(refund_outcomes=[RefundOutcomeUnknown("timeout"), Status.REFUNDED])
    queue = in_process(deps(payments, ScriptedHandler(), refund_retry=0.01))
    try:
        await queue.enqueue_refund(TID)
        await wait_until(lambda: payments.refund_calls == 2)
        await asyncio.sleep(0.02)
    finally:
        await queue.close()
    assert payments.refund_calls == 2
    assert payments.refund_outcomes == []


def test_job_ids_are_deterministic_per_transaction() -> None:
    assert grant_job_id(TID) == f"provision:{TID}"
    assert refund_job_id(TID) == f"refund:{TID}"
