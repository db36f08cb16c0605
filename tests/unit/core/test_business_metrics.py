"""The business series are recorded by the use case whose guarded write won: once per decision,
however many callers race for the same transaction or refund, and never by a write that lost."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from app.core.checkout import IssueCommand
from app.core.domain import ErrorCode, Method, ProductType, Status, Transaction, Transition
from app.gateway.models import GatewayErrorKind, RefundResult
from tests.support.core import CoreOverFakes, build_test_core
from tests.support.fakes import done_payment, gateway_error

PRICE = 50000


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def issued(core: CoreOverFakes) -> Transaction:
    command = IssueCommand(
        user_id="u1",
        product_type=ProductType.STUDY,
        product_id="study_123",
        amount=PRICE,
        order_name=None,
        method=Method.CARD,
        metadata={},
    )
    return (await core.checkout.issue(command)).transaction


async def pending(core: CoreOverFakes) -> Transaction:
    """A transaction claimed for its confirm (30)."""
    transaction = await issued(core)
    now = core.clock.now()
    assert await core.repo.apply(
        transaction.transaction_id, Transition.claim_for_confirm(reconcile_at=now), now=now
    )
    return core.repo.stored(transaction.transaction_id)


async def test_an_issued_transaction_is_counted() -> None:
    core = build_test_core()
    before = sample("payments_transactions_created_total", product_type="STUDY")

    await issued(core)

    assert sample("payments_transactions_created_total", product_type="STUDY") == before + 1


async def test_a_payment_confirmed_by_two_racing_callers_is_counted_once_with_its_duration() -> None:
    core = build_test_core()
    transaction = await pending(core)
    core.clock.advance(seconds=42)
    succeeded = sample("payments_payments_succeeded_total")
    durations = sample("payments_payment_duration_seconds_count")
    seconds = sample("payments_payment_duration_seconds_sum")

    payment = done_payment(transaction.transaction_id, PRICE)
    applied = await asyncio.gather(*(core.results.apply_pg_payment(transaction, payment) for _ in range(2)))

    assert sorted(a.changed for a in applied) == [False, True]
    assert sample("payments_payments_succeeded_total") == succeeded + 1
    assert sample("payments_payment_duration_seconds_count") == durations + 1
    assert sample("payments_payment_duration_seconds_sum") == seconds + 42


async def test_a_payment_failed_by_two_racing_callers_is_counted_once_by_its_code() -> None:
    core = build_test_core()
    transaction = await pending(core)
    before = sample("payments_payments_failed_total", code="PAY_004")
    tid = transaction.transaction_id

    failed = await asyncio.gather(
        *(
            core.results.fail_pending(tid, ErrorCode.INSUFFICIENT_FUNDS, "no money", "REJECT")
            for _ in range(2)
        )
    )

    assert sorted(failed) == [False, True]
    assert sample("payments_payments_failed_total", code="PAY_004") == before + 1


async def test_an_expiry_raced_by_two_sweeps_is_counted_once() -> None:
    core = build_test_core()
    transaction = await issued(core)
    core.clock.advance(minutes=31)
    before = sample("payments_payments_failed_total", code="PAY_002")

    expired = await asyncio.gather(core.sweeper.expire_stale(), core.sweeper.expire_stale())

    assert sorted(expired) == [0, 1]
    assert core.repo.stored(transaction.transaction_id).status == Status.PAYMENT_FAILED
    assert sample("payments_payments_failed_total", code="PAY_002") == before + 1


async def automatic_refund(core: CoreOverFakes) -> str:
    """A paid payment whose grant failed for good (51): its automatic refund is REQUESTED."""
    transaction = await pending(core)
    tid = transaction.transaction_id
    assert (await core.results.apply_pg_payment(transaction, done_payment(tid, PRICE))).changed
    requested = sample("payments_refunds_total", stage="requested")
    assert await core.fulfilment.fail_provisioning(tid, "the study service refused")
    assert sample("payments_refunds_total", stage="requested") == requested + 1
    [refund] = await core.refunds.list_refunds(tid)
    return refund.refund_id


async def test_a_refund_executed_by_two_racing_jobs_is_counted_refunded_once() -> None:
    core = build_test_core()
    refund_id = await automatic_refund(core)
    done = done_payment(core.repo.ids()[0], PRICE)
    core.gateway.on_cancel(
        *(RefundResult(payment=done, canceled_amount=PRICE, transaction_key="tk") for _ in "ab")
    )
    before = sample("payments_refunds_total", stage="refunded")

    await asyncio.gather(core.refunds.execute_refund(refund_id), core.refunds.execute_refund(refund_id))

    assert len(core.gateway.calls_to("cancel_payment")) == 2  # both jobs asked: the race was real
    assert sample("payments_refunds_total", stage="refunded") == before + 1


async def test_a_refund_refused_to_two_racing_jobs_is_counted_refused_once() -> None:
    core = build_test_core()
    refund_id = await automatic_refund(core)
    refused = gateway_error(GatewayErrorKind.NOT_CANCELABLE, "NOT_CANCELABLE_PAYMENT", "cannot cancel")
    core.gateway.on_cancel(refused, refused)
    before = sample("payments_refunds_total", stage="refused")

    await asyncio.gather(core.refunds.execute_refund(refund_id), core.refunds.execute_refund(refund_id))

    assert len(core.gateway.calls_to("cancel_payment")) == 2  # both jobs asked: the race was real
    assert sample("payments_refunds_total", stage="refused") == before + 1
