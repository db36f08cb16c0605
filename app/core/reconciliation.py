"""Reconciliation: pending (30) transactions converge to what the PG says (Kill Bill's janitor).

A confirm that timed out, a process that died after the claim, a webhook that never came, a
virtual account whose due date passed: each is found by its `next_reconcile_at`, looked up by
orderId, and moved to the state the PG's answer implies. Lookups back off (10 s, 30 s, 1 min,
5 min, 15 min, then hourly, times RECONCILE_BACKOFF_SCALE); an unresolvable one is failed with
`UNRESOLVED_NEEDS_REVIEW` after RECONCILE_GIVE_UP_SECONDS and logged loudly.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import timedelta

from app.core.domain import ErrorCode, Status
from app.core.payment_results import PaymentResults, confirm_idempotency_key
from app.core.ports import Clock, PaymentGateway, TransactionRepository
from app.gateway.models import GatewayError, GatewayErrorKind, PgPaymentStatus

log = logging.getLogger("app.core.reconciliation")

BACKOFF_SECONDS: tuple[float, ...] = (10, 30, 60, 300, 900, 3600)


class ReconcileOutcome(enum.StrEnum):
    """What one reconciliation of a pending transaction did (also the metric's label)."""

    NOT_PENDING = "not-pending"
    FAILED = "failed"
    AWAITING_DEPOSIT = "awaiting-deposit"
    RESOLVED = "resolved"
    GAVE_UP = "gave-up"
    RETRY_LATER = "retry-later"


@dataclass(frozen=True, slots=True)
class ReconcileConfig:
    backoff_scale: float = 1.0
    give_up_seconds: float = 24 * 3600.0
    lease_seconds: float = 60.0


class PaymentReconciler:
    def __init__(
        self,
        *,
        repository: TransactionRepository,
        gateway: PaymentGateway,
        results: PaymentResults,
        clock: Clock,
        config: ReconcileConfig,
    ) -> None:
        self._repo = repository
        self._gateway = gateway
        self._results = results
        self._clock = clock
        self._config = config

    def next_delay(self, attempt: int) -> timedelta:
        step = BACKOFF_SECONDS[min(max(attempt, 1), len(BACKOFF_SECONDS)) - 1]
        return timedelta(seconds=step * self._config.backoff_scale)

    async def reconcile_due(self, *, limit: int) -> dict[str, int]:
        """One bounded round over the pending transactions whose lookup is due."""
        claimed = await self._repo.claim_due_reconciliations(
            self._clock.now(), limit=limit, lease_seconds=self._config.lease_seconds
        )
        counts: dict[str, int] = {}
        for transaction_id, attempt in claimed:
            outcome = await self.reconcile(transaction_id, attempt)
            counts[outcome] = counts.get(outcome, 0) + 1
        return counts

    async def reconcile(self, transaction_id: str, attempt: int) -> ReconcileOutcome:
        """Ask the PG about one pending transaction and apply its answer. Returns what happened."""
        transaction = await self._repo.get(transaction_id)
        if transaction is None or transaction.status != Status.PAYMENT_PENDING:
            return ReconcileOutcome.NOT_PENDING
        now = self._clock.now()
        try:
            payment = await self._gateway.find_payment(provider=transaction.provider, order_id=transaction_id)
        except GatewayError as error:
            if error.kind == GatewayErrorKind.NOT_FOUND and now > max(
                transaction.updated_at + self._gateway.confirm_window(transaction.provider),
                transaction.expires_at,
            ):
                # The PG never heard of it, its session would have expired by now, and so has ours
                # (a forged callback may have claimed it before the buyer even opened the window).
                await self._results.fail_pending(
                    transaction_id,
                    ErrorCode.VERIFICATION_FAILED,
                    "The payment provider has no record of this payment.",
                    error.pg_code,
                    pg_message=error.message or None,
                )
                return ReconcileOutcome.FAILED
            return await self._retry_later(transaction_id, attempt, f"lookup failed: {error.pg_code}")

        if payment.status == PgPaymentStatus.IN_PROGRESS:
            # The buyer authenticated but our confirm never landed: confirm with the key the PG
            # reports for this order (never one a browser sent) and the same Idempotency-Key as
            # any earlier confirm of it (a replay at the PG can never charge twice).
            log.info("re-confirming a pending payment", extra={"transactionId": transaction_id})
            try:
                payment = await self._gateway.confirm_payment(
                    provider=transaction.provider,
                    payment_key=payment.payment_key,
                    order_id=transaction_id,
                    amount=transaction.amount,
                    idempotency_key=confirm_idempotency_key(transaction_id, payment.payment_key),
                )
            except GatewayError as error:
                if not error.outcome_unknown:
                    await self._results.fail_with_gateway_error(transaction_id, error)
                    return ReconcileOutcome.FAILED
                return await self._retry_later(
                    transaction_id, attempt, f"re-confirm unknown: {error.pg_code}"
                )
        await self._results.apply_pg_payment(transaction, payment)
        status = await self._results.current_status(transaction_id)
        if status == Status.PAYMENT_PENDING:
            if payment.status == PgPaymentStatus.WAITING_FOR_DEPOSIT:
                return ReconcileOutcome.AWAITING_DEPOSIT
            return await self._retry_later(transaction_id, attempt, f"PG reports {payment.status.value}")
        return ReconcileOutcome.RESOLVED

    async def _retry_later(self, transaction_id: str, attempt: int, reason: str) -> ReconcileOutcome:
        transaction = await self._repo.get(transaction_id)
        if transaction is None or transaction.status != Status.PAYMENT_PENDING:
            return ReconcileOutcome.NOT_PENDING
        now = self._clock.now()
        if (now - transaction.updated_at).total_seconds() >= self._config.give_up_seconds:
            log.error(
                "UNRESOLVED payment: giving up after %d lookups; needs review",
                attempt,
                extra={"transactionId": transaction_id, "reason": reason},
            )
            await self._results.fail_pending(
                transaction_id,
                ErrorCode.PG_ERROR,
                "The payment could not be verified with the payment provider; it needs review.",
                "UNRESOLVED_NEEDS_REVIEW",
            )
            return ReconcileOutcome.GAVE_UP
        await self._repo.schedule_reconciliation(transaction_id, now + self.next_delay(attempt))
        return ReconcileOutcome.RETRY_LATER
