"""A webhook delivery whose claim could change nothing is finished without asking the PG.

Toss echoes every confirm with a PAYMENT_STATUS_CHANGED DONE delivery. For an order already paid
(40, 45, 50) nothing it could say applies, so the job records NO_CHANGE and makes no lookup. The
claim is untrusted: it is only ever a reason to skip a lookup, never to write. A claimed cancel, a
missing or unknown claim, and any order still open (10, 30) are always looked up.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from app.core.domain import Method, ProductType, Status, Transaction
from app.core.ports import WebhookOutcome
from app.core.webhooks import WebhookService
from app.gateway.models import PgCancel, PgPaymentStatus
from tests.support.core import CoreOverFakes, build_test_core
from tests.support.fakes import OneWebhookDelivery, done_payment

TID = "TXN_20250314_lookupshortcut"
NOW = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


async def _core_with(status: Status) -> CoreOverFakes:
    core = build_test_core()
    await core.repo.add(
        Transaction(
            transaction_id=TID,
            user_id="u-1",
            product_type=ProductType.STUDY,
            product_id="study_123",
            order_name="study",
            amount=50_000,
            method=Method.CARD,
            status=status,
            created_at=NOW,
            updated_at=NOW,
            expires_at=NOW + timedelta(minutes=30),
            provider="TOSS",
            payment_key="pk_done_1" if status >= Status.PAYMENT_SUCCESS else None,
        ),
        "seeded",
    )
    return core


def _service(core: CoreOverFakes, events: OneWebhookDelivery) -> WebhookService:
    return WebhookService(
        events=events,
        results=core.results,
        transactions=core.repo,
        refunds=core.refunds,
        gateway=core.gateway,
        queue=core.queue,
        clock=core.clock,
    )


@pytest.mark.parametrize(
    "status", [Status.PAYMENT_SUCCESS, Status.PROVISION_PENDING, Status.PROVISION_SUCCESS], ids=str
)
@pytest.mark.parametrize("claim", ["DONE", "WAITING_FOR_DEPOSIT", "IN_PROGRESS", "ABORTED", "EXPIRED"])
async def test_a_claim_that_changes_nothing_for_a_paid_order_is_not_looked_up(
    status: Status, claim: str
) -> None:
    core = await _core_with(status)
    events = OneWebhookDelivery(TID, claim)

    assert await _service(core, events).process(1) == WebhookOutcome.NO_CHANGE

    assert core.gateway.calls_to("find_payment") == []
    assert core.repo.stored(TID).status == status
    assert events.finished == [
        (WebhookOutcome.NO_CHANGE, f"claims {claim} while {status.name}; not looked up")
    ]


@pytest.mark.parametrize("claim", ["CANCELED", "PARTIAL_CANCELED", None, "SOMETHING_NEW"])
async def test_a_claimed_cancel_or_an_unknown_claim_for_a_provisioned_order_is_looked_up(
    claim: str | None,
) -> None:
    """The PG is asked, and what it says (a cancel made in its console) is what is applied."""
    core = await _core_with(Status.PROVISION_SUCCESS)
    core.gateway.on_find(
        dataclasses.replace(
            done_payment(TID, 50_000),
            status=PgPaymentStatus.CANCELED,
            balance_amount=0,
            cancels=(
                PgCancel(transaction_key="tk_console_1", amount=50_000, reason="console", canceled_at=NOW),
            ),
        )
    )
    events = OneWebhookDelivery(TID, claim)

    await _service(core, events).process(1)

    assert len(core.gateway.calls_to("find_payment")) == 1
    assert [r.amount for r in await core.refunds.list_refunds(TID)] == [50_000]


async def test_a_forged_done_claim_never_writes_for_a_paid_order() -> None:
    """The shortcut trusts nothing: a DONE claim for an order the PG says was cancelled changes
    nothing by itself; only the PG's own answer (asked for a cancel claim) refunds."""
    core = await _core_with(Status.PROVISION_SUCCESS)
    events = OneWebhookDelivery(TID, "DONE")

    await _service(core, events).process(1)

    assert core.repo.stored(TID).status == Status.PROVISION_SUCCESS
    assert await core.refunds.list_refunds(TID) == []


@pytest.mark.parametrize("status", [Status.CREATED, Status.PAYMENT_PENDING], ids=str)
async def test_an_open_order_always_asks_the_pg_whatever_the_delivery_claims(status: Status) -> None:
    core = await _core_with(status)
    core.gateway.on_find(done_payment(TID, 50_000))
    events = OneWebhookDelivery(TID, "DONE")

    await _service(core, events).process(1)

    assert len(core.gateway.calls_to("find_payment")) == 1
    if status == Status.PAYMENT_PENDING:  # the PG's DONE, not the claim, moved it on
        assert core.repo.stored(TID).status >= Status.PAYMENT_SUCCESS
