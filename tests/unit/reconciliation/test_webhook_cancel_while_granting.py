"""A cancel made at the PG while the purchase is still being granted (40 → 45 → 50/51) waits for the
grant to settle, so what a partial cancel takes back is what was really granted."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from app.core.domain import Method, ProductType, Status, Transaction
from app.core.webhooks import WebhookNotSettled, WebhookService
from app.gateway.models import PgCancel, PgPaymentStatus
from tests.support.core import build_test_core
from tests.support.fakes import OneWebhookDelivery, done_payment

TID = "TXN_20250314_cancelwhilegranting"
NOW = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("status", [Status.PAYMENT_SUCCESS, Status.PROVISION_PENDING], ids=["40", "45"])
async def test_a_partial_cancel_at_the_pg_waits_while_the_purchase_is_being_granted(status: Status) -> None:
    core = build_test_core()
    await core.repo.add(
        Transaction(
            transaction_id=TID,
            user_id="u-1",
            product_type=ProductType.AI_RESUME,
            product_id="resume_credit_10",
            order_name="credits",
            amount=9_900,
            method=Method.CARD,
            status=status,
            created_at=NOW,
            updated_at=NOW,
            expires_at=NOW + timedelta(minutes=30),
            provider="TOSS",
            payment_key="pk_done_1",
        ),
        "paid",
    )
    partially_cancelled = dataclasses.replace(
        done_payment(TID, 9_900),
        status=PgPaymentStatus.PARTIAL_CANCELED,
        balance_amount=6_900,
        cancels=(PgCancel(transaction_key="tk_console_1", amount=3_000, reason="console", canceled_at=NOW),),
    )
    core.gateway.on_find(partially_cancelled)
    events = OneWebhookDelivery(TID, "PARTIAL_CANCELED", payment_key="pk_done_1")
    webhooks = WebhookService(
        events=events,
        results=core.results,
        transactions=core.repo,
        refunds=core.refunds,
        gateway=core.gateway,
        queue=core.queue,
        clock=core.clock,
    )

    with pytest.raises(WebhookNotSettled):
        await webhooks.process(1)

    assert await core.refunds.list_refunds(TID) == []
    assert core.repo.stored(TID).status == status
    assert events.outcomes == []  # left for a later try


@pytest.mark.parametrize("status", [Status.CREATED, Status.PAYMENT_FAILED], ids=["10", "41"])
async def test_a_cancel_at_the_pg_of_a_payment_we_never_took_is_no_refund(status: Status) -> None:
    """A late CANCELED delivery for a virtual account that failed (41) before its deposit: nothing was
    paid, so it must not walk 41 → 90 → 95 as if money went back."""
    core = build_test_core()
    await core.repo.add(
        Transaction(
            transaction_id=TID,
            user_id="u-1",
            product_type=ProductType.AI_RESUME,
            product_id="resume_credit_10",
            order_name="credits",
            amount=9_900,
            method=Method.VIRTUAL_ACCOUNT,
            status=status,
            created_at=NOW,
            updated_at=NOW,
            expires_at=NOW + timedelta(minutes=30),
            provider="TOSS",
        ),
        "seeded",
    )
    cancelled = dataclasses.replace(
        done_payment(TID, 9_900),
        status=PgPaymentStatus.CANCELED,
        balance_amount=0,
        cancels=(PgCancel(transaction_key="tk_va_cancel", amount=9_900, reason="console", canceled_at=NOW),),
    )

    assert await core.refunds.reflect_pg_cancels(core.repo.stored(TID), cancelled) == 0

    assert await core.refunds.list_refunds(TID) == []
    assert core.repo.stored(TID).status == status
