"""The job functions, shared by the arq worker and the in-process queue (same retry rules).

Jobs may run more than once (arq favours "more than once" over "never"): each one re-reads the
transaction and acts only when it is still in the state the job is for.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from arq import Retry

from app.core.checkout import Checkout
from app.core.domain import ProductType, RefundStatus, RevokeStatus, Status
from app.core.fulfilment import Fulfilment
from app.core.ports import ProductCatalog, RefundRecord, TransactionRepository
from app.core.reconciliation import PaymentReconciler
from app.core.refunds import RefundOutcomeUnknown, RefundService, RefundsInFlight
from app.core.sweeper import Sweeper
from app.core.webhooks import WebhookNotSettled, WebhookService
from app.gateway.models import GatewayError
from app.metrics import PROVISIONING_OUTCOMES, PROVISIONING_RETRIES, RECONCILIATION_ACTIONS
from app.outages import database_unavailable
from app.provisioning.handlers import (
    GrantHandler,
    GrantRequest,
    PermanentGrantError,
    TransientGrantError,
    revoke_request,
)

log = logging.getLogger("app.provisioning")

GRANT_JOB = "provision_grant"
REFUND_JOB = "refund_payment"
WEBHOOK_JOB = "process_webhook"
CALLBACK_JOB = "replay_callback"
SWEEP_JOB = "sweep"
# Webhook jobs have an arq queue (and worker slots) of their own: anyone can post a webhook, and
# a flood of them must never hold the slots grants and refunds run in.
WEBHOOK_QUEUE = "arq:queue:webhooks"


@dataclass(frozen=True, slots=True)
class JobDeps:
    """What the jobs need; put in the job context as ctx["deps"]."""

    transactions: TransactionRepository
    checkout: Checkout
    fulfilment: Fulfilment
    sweeper: Sweeper
    refunds: RefundService
    catalog: ProductCatalog
    reconciler: PaymentReconciler
    webhooks: WebhookService
    handlers: Mapping[ProductType, GrantHandler]
    max_tries: int
    retry_base_seconds: float
    retry_max_seconds: float
    refund_retry_seconds: float
    sweep_stale_after_seconds: float
    sweep_batch_size: int


def job_tries(provisioning_max_tries: int) -> dict[str, int]:
    """How many tries each job gets, the same under arq and in-process (keyed by function name)."""
    return {
        "provision_grant": provisioning_max_tries + 2,  # our own rule turns the last try into 51
        "refund_payment": 1000,  # the PG cancel is retried until the PG answers
        "process_webhook": 20,
        # Waits grow to PROVISIONING_RETRY_MAX_SECONDS; 60 tries outlast Toss's 10 minutes.
        "replay_callback": 60,
    }


def grant_retry_delay(job_try: int, base: float, ceiling: float) -> float:
    """Growing waits between grant attempts: base, 2·base, 4·base, … up to the ceiling."""
    return float(min(base * 2 ** (job_try - 1), ceiling))


async def provision_grant(ctx: dict[str, Any], transaction_id: str) -> str:
    """Grant a 45 transaction's purchase; report 50, retry, or 51 (which refunds) to Core."""
    deps: JobDeps = ctx["deps"]
    job_try: int = ctx.get("job_try", 1)
    transaction = await deps.transactions.get(transaction_id)
    if transaction is None or transaction.status != Status.PROVISION_PENDING:
        return "skipped: not pending"
    handler = deps.handlers[transaction.product_type]
    # What is granted is the catalog's product, never what the buyer sent along.
    product = await deps.catalog.get_product(transaction.product_type, transaction.product_id)
    try:
        if product is None:
            raise PermanentGrantError("the product is no longer in the catalog")
        details = await handler.grant(GrantRequest.of(transaction, product))
    except PermanentGrantError as exc:
        await deps.fulfilment.fail_provisioning(transaction_id, str(exc))
        PROVISIONING_OUTCOMES.labels(outcome="refused").inc()
        return "failed: refused"
    except TransientGrantError as exc:
        if job_try >= deps.max_tries:
            await deps.fulfilment.fail_provisioning(transaction_id, f"gave up after {job_try} tries: {exc}")
            PROVISIONING_OUTCOMES.labels(outcome="exhausted").inc()
            return "failed: retries exhausted"
        delay = grant_retry_delay(job_try, deps.retry_base_seconds, deps.retry_max_seconds)
        log.warning(
            "grant failed; retrying",
            extra={
                "transactionId": transaction_id,
                "try": job_try,
                "retryInSeconds": delay,
                "error": str(exc),
            },
        )
        PROVISIONING_RETRIES.inc()
        raise Retry(defer=delay) from exc
    await deps.fulfilment.complete_provisioning(transaction_id, {"try": job_try, **details})
    PROVISIONING_OUTCOMES.labels(outcome="granted").inc()
    return "granted"


async def refund_payment(ctx: dict[str, Any], refund_id: str) -> str:
    """A refund's work: take back the grant (retried, then a human), then cancel at the PG
    (retried until the PG answers). See app.core.refunds for why in this order."""
    deps: JobDeps = ctx["deps"]
    job_try: int = ctx.get("job_try", 1)
    refund = await deps.refunds.get_refund(refund_id)
    if refund is None:
        return "skipped: no such refund"
    if refund.revoke_status == RevokeStatus.PENDING:
        outcome = await _revoke(deps, refund, job_try)
        if outcome is not None:
            return outcome
    try:
        return await deps.refunds.execute_refund(refund_id)
    except RefundOutcomeUnknown as exc:
        log.warning("refund outcome unknown; retrying", extra={"refundId": refund_id, "pgCode": str(exc)})
        raise Retry(defer=deps.refund_retry_seconds) from exc


async def _revoke(deps: JobDeps, refund: RefundRecord, job_try: int) -> str | None:
    """Take back what the refund covers; None when the refund may go on to the PG cancel."""
    transaction = await deps.transactions.get(refund.transaction_id)
    product = (
        await deps.catalog.get_product(transaction.product_type, transaction.product_id)
        if transaction is not None
        else None
    )
    if transaction is None or product is None:
        await deps.refunds.revoke_failed(refund, "the transaction or its product is not known")
        return "revoke failed: unknown product"
    request = revoke_request(
        refund, GrantRequest.of(transaction, product), await deps.refunds.list_refunds(refund.transaction_id)
    )
    try:
        details = await deps.handlers[transaction.product_type].revoke(request)
    except PermanentGrantError as exc:
        await deps.refunds.revoke_failed(refund, str(exc))
        return "revoke failed: refused"
    except TransientGrantError as exc:
        if job_try >= deps.max_tries:
            await deps.refunds.revoke_failed(refund, f"gave up after {job_try} tries: {exc}")
            return "revoke failed: retries exhausted"
        delay = grant_retry_delay(job_try, deps.retry_base_seconds, deps.retry_max_seconds)
        log.warning(
            "revoke failed; retrying",
            extra={"refundId": refund.refund_id, "try": job_try, "retryInSeconds": delay, "error": str(exc)},
        )
        raise Retry(defer=delay) from exc
    await deps.refunds.revoke_done(refund, ", ".join(f"{k}={v}" for k, v in details.items()))
    if refund.status != RefundStatus.REQUESTED:
        return "revoked"  # a cancel made at the PG: the money went back already
    return None


async def process_webhook(ctx: dict[str, Any], event_id: int) -> str:
    """Apply a recorded webhook delivery after re-fetching the payment S2S."""
    deps: JobDeps = ctx["deps"]
    try:
        return await deps.webhooks.process(event_id)
    except (WebhookNotSettled, RefundsInFlight) as exc:
        delay = grant_retry_delay(ctx.get("job_try", 1), deps.retry_base_seconds, deps.retry_max_seconds)
        raise Retry(defer=delay) from exc
    except GatewayError as exc:
        # Only an unknown outcome (timeout, 5xx) is asked again; the PG's NOT_FOUND ends the
        # delivery inside `process` (asking again would only repeat the lookup).
        if not exc.outcome_unknown:
            raise
        delay = grant_retry_delay(ctx.get("job_try", 1), deps.retry_base_seconds, deps.retry_max_seconds)
        raise Retry(defer=delay) from exc


async def replay_callback(ctx: dict[str, Any], kind: str, query: dict[str, str]) -> str:
    """A browser callback that arrived while the database was unreachable, handled now as if the
    browser had come back: the same checks, and the PG's confirm only by whoever claims 10→30.
    Retried (growing waits, bounded tries) while the database is still unreachable."""
    deps: JobDeps = ctx["deps"]
    try:
        if kind == "success":
            outcome = await deps.checkout.handle_success_callback(
                payment_key=query.get("paymentKey"), order_id=query.get("orderId"), amount=query.get("amount")
            )
        else:
            outcome = await deps.checkout.handle_fail_callback(
                transaction_id=query.get("transactionId"),
                order_id=query.get("orderId"),
                code=query.get("code"),
                message=query.get("message"),
            )
    except Exception as exc:
        if not database_unavailable(exc):
            raise
        delay = grant_retry_delay(ctx.get("job_try", 1), deps.retry_base_seconds, deps.retry_max_seconds)
        log.warning(
            "callback replay: the database is still unreachable; retrying",
            extra={"orderId": query.get("orderId"), "try": ctx.get("job_try", 1), "retryInSeconds": delay},
        )
        raise Retry(defer=delay) from exc
    return "replayed: " + ("fail" if outcome.failed else "success")  # the page the buyer would see now


async def sweep(ctx: dict[str, Any]) -> dict[str, int]:
    """Periodic: expire, reconcile pending payments, re-queue lost work (bounded batches)."""
    deps: JobDeps = ctx["deps"]
    counts = await deps.sweeper.sweep(
        stale_after_seconds=deps.sweep_stale_after_seconds, batch_size=deps.sweep_batch_size
    )
    for outcome, count in (await deps.reconciler.reconcile_due(limit=deps.sweep_batch_size)).items():
        counts[f"reconcile:{outcome}"] = count
        RECONCILIATION_ACTIONS.labels(action=outcome).inc(count)
    if any(counts.values()):
        log.info("sweep", extra=counts)
    return counts
