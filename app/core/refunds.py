"""Refunds: several per transaction, each one reserved, revoked, then cancelled at the PG.

The order is deliberate: **take back the grant first, then return the money.**
- A refund whose revoke fails must never leave the buyer with both the money and the goods. If
  the money went first and the revoke then failed for good, we could only ask for the goods back.
  Revoking first means a failed revoke stops the refund before any money moves: it retries, and
  then waits for a human (NEEDS_REVIEW, an ERROR log and `payments_refunds_total{stage=
  "revoke_failed"}`), with its amount still reserved so it can never be refunded twice.
- A PG cancel is retried until the PG answers (its Idempotency-Key is the refund's id), so once
  the goods are back the money always follows.
- A cancel made at the PG itself (an operator in the Toss console) returned the money already:
  it is recorded as a DONE refund and its revoke runs after, the same way.

Nothing here trusts the browser: amounts come from our records and the policy's dates from the
product catalog.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from datetime import datetime

from app import messages as texts
from app.core.domain import (
    InvalidTransition,
    Problem,
    ProductType,
    RefundStatus,
    RevokeStatus,
    Status,
    Transaction,
    TransactionNotFound,
    ValidationFailed,
)
from app.core.ports import (
    Clock,
    PaymentGateway,
    ProductCatalog,
    ProvisioningQueue,
    RefundRecord,
    RefundRepository,
    TransactionRepository,
)
from app.core.printable import require_printable
from app.core.refund_policy import RefundRequester, decide_refund_amount
from app.gateway.models import GatewayError, PaymentInfo, PgPaymentStatus, RefundAccount
from app.metrics import PG_SIDE_CANCELS, REFUNDS

log = logging.getLogger("app.core.refunds")

PG_ACTOR = "pg"
# Statuses in which we hold the buyer's money: only there is a cancel at the PG a refund.
_MONEY_HELD = frozenset(
    {
        Status.PAYMENT_SUCCESS,
        Status.PROVISION_PENDING,
        Status.PROVISION_SUCCESS,
        Status.PROVISION_FAILED,
        Status.REFUND_REQUESTED,
    }
)
SYSTEM_ACTOR = "system"


class RefundOutcomeUnknown(Exception):
    """The PG cancel timed out or failed on the PG's side: ask again later (the refund stays open)."""


class RefundsInFlight(Exception):
    """Our own refunds are still under way: a PG-side cancel can only be told apart afterwards."""


def new_refund_id(now: datetime) -> str:
    """Our refund's id; also the PG cancel's Idempotency-Key, so a retry never refunds twice."""
    return f"RF_{now:%Y%m%d}_{secrets.token_hex(12)}"


class RefundService:
    """Request, execute and record refunds; the revoke itself is the provisioning worker's."""

    def __init__(
        self,
        *,
        repository: TransactionRepository,
        refunds: RefundRepository,
        gateway: PaymentGateway,
        catalog: ProductCatalog,
        queue: ProvisioningQueue,
        clock: Clock,
        window_days: int,
    ) -> None:
        self._repo = repository
        self._refunds = refunds
        self._gateway = gateway
        self._catalog = catalog
        self._queue = queue
        self._clock = clock
        self._window_days = window_days

    # --- asking for a refund -------------------------------------------------------------------

    async def request_refund(
        self,
        *,
        transaction_id: str,
        user_id: str,
        is_admin: bool,
        reason: str,
        amount: int | None,
        refund_account: RefundAccount | None = None,
    ) -> Transaction:
        """Owner or admin asks for a refund: policy check, then the amount reserved and a job queued."""
        require_printable(
            {
                "reason": reason,
                "refundReceiveAccount.bank": refund_account.bank if refund_account else None,
                "refundReceiveAccount.holderName": refund_account.holder_name if refund_account else None,
            }
        )
        transaction = await self._repo.get(transaction_id)
        if transaction is None or (transaction.user_id != user_id and not is_admin):
            raise TransactionNotFound()
        if transaction.paid_by_virtual_account and refund_account is None:
            raise ValidationFailed(Problem("refundReceiveAccount", texts.REFUND_ACCOUNT_REQUIRED))
        requester = RefundRequester(user_id=user_id, is_admin=is_admin)
        await self._start(
            transaction, requester, reason=reason, requested_amount=amount, refund_account=refund_account
        )
        refreshed = await self._repo.get(transaction_id)
        assert refreshed is not None
        return refreshed

    async def start_automatic_refund(self, transaction: Transaction) -> None:
        """A grant failed for good (51): refund everything; nothing was granted to take back."""
        try:
            await self._start(
                transaction,
                RefundRequester(user_id=SYSTEM_ACTOR, is_system=True),
                reason="automatic refund: the purchase could not be granted",
                requested_amount=None,
            )
        except InvalidTransition:
            pass  # another worker started it first

    async def _start(
        self,
        transaction: Transaction,
        requester: RefundRequester,
        *,
        reason: str,
        requested_amount: int | None,
        refund_account: RefundAccount | None = None,
    ) -> None:
        now = self._clock.now()
        amount = decide_refund_amount(
            transaction,
            requester,
            requested_amount,
            now,
            window_days=self._window_days,
            study_starts_at=await self._study_start(transaction),
        )
        left = transaction.amount - transaction.refund_reserved_amount
        refund = RefundRecord(
            refund_id=new_refund_id(now),
            transaction_id=transaction.transaction_id,
            amount=amount,
            reason=reason[:200],
            actor=requester.user_id[:64],
            status=RefundStatus.REQUESTED,
            created_at=now,
            # Only a granted purchase (50) has something to take back.
            revoke_status=(
                RevokeStatus.PENDING
                if transaction.status == Status.PROVISION_SUCCESS
                else RevokeStatus.NOT_REQUIRED
            ),
            refund_account=refund_account,
        )
        started = await self._refunds.start_refund(
            refund,
            expected=transaction.status,
            closes=amount == left,
            message=f"refund of {amount} KRW requested",
            now=now,
        )
        if not started:
            raise InvalidTransition(texts.REFUND_RACED)
        REFUNDS.labels(stage="requested").inc()
        log.info(
            "refund requested",
            extra={
                "transactionId": transaction.transaction_id,
                "refundId": refund.refund_id,
                "amount": amount,
                "actor": requester.user_id,
            },
        )
        await self._enqueue(refund.refund_id)

    async def _study_start(self, transaction: Transaction) -> datetime | None:
        if transaction.product_type != ProductType.STUDY:
            return None
        product = await self._catalog.get_product(transaction.product_type, transaction.product_id)
        return product.starts_at if product is not None else None

    # --- reads -----------------------------------------------------------------------------------

    async def get_refund(self, refund_id: str) -> RefundRecord | None:
        return await self._refunds.get_refund(refund_id)

    async def list_refunds(self, transaction_id: str) -> Sequence[RefundRecord]:
        return await self._refunds.list_refunds(transaction_id)

    # --- the worker's side: revoke, then cancel at the PG ---------------------------------------

    async def revoke_done(self, refund: RefundRecord, detail: str) -> None:
        await self._refunds.finish_revoke(
            refund, revoked=True, detail=detail, message="grant taken back", now=self._clock.now()
        )

    async def revoke_failed(self, refund: RefundRecord, reason: str) -> None:
        """The grant could not be taken back: no money moves until a human looks (NEEDS_REVIEW)."""
        log.error(
            "grant could not be taken back; the refund waits for review",
            extra={"transactionId": refund.transaction_id, "refundId": refund.refund_id, "reason": reason},
        )
        REFUNDS.labels(stage="revoke_failed").inc()
        await self._refunds.finish_revoke(
            refund,
            revoked=False,
            detail=reason,
            message="the grant could not be taken back; needs review",
            now=self._clock.now(),
        )

    async def execute_refund(self, refund_id: str) -> str:
        """Cancel at the PG once the grant is back. Raises RefundOutcomeUnknown to be retried."""
        refund = await self._refunds.get_refund(refund_id)
        if refund is None:
            return "missing"
        if refund.status != RefundStatus.REQUESTED:
            return refund.status.value
        if refund.revoke_status not in (RevokeStatus.DONE, RevokeStatus.NOT_REQUIRED):
            return f"waiting: revoke {refund.revoke_status.value}"
        transaction = await self._repo.get(refund.transaction_id)
        if transaction is None or transaction.payment_key is None:
            return "missing"
        if transaction.paid_by_virtual_account and refund.refund_account is None:
            # Toss cannot refund a deposit without the buyer's account (an automatic refund after a
            # failed grant has none): a human must collect it. Asking Toss would only fail.
            log.error(
                "virtual-account refund needs the buyer's bank account",
                extra={"transactionId": transaction.transaction_id, "refundId": refund_id},
            )
            if await self._refunds.refuse_refund(
                refund,
                pg_error_code="REFUND_ACCOUNT_REQUIRED",
                message="refund needs the buyer's bank account (virtual account); needs review",
                now=self._clock.now(),
            ):
                REFUNDS.labels(stage="refused").inc()
            return RefundStatus.REFUSED.value
        whole_payment = refund.amount == transaction.amount
        try:
            result = await self._gateway.cancel_payment(
                provider=transaction.provider,
                payment_key=transaction.payment_key,
                reason=refund.reason,
                amount=None if whole_payment else refund.amount,
                idempotency_key=refund.refund_id,
                refund_account=refund.refund_account,
            )
        except GatewayError as error:
            if error.outcome_unknown:
                raise RefundOutcomeUnknown(error.pg_code) from error
            log.error(
                "the PG refused the refund; needs review",
                extra={
                    "transactionId": transaction.transaction_id,
                    "refundId": refund_id,
                    "pgCode": error.pg_code,
                },
            )
            if await self._refunds.refuse_refund(
                refund,
                pg_error_code=error.pg_code,
                message=f"PG refused the cancel: {error.message}",
                now=self._clock.now(),
            ):
                REFUNDS.labels(stage="refused").inc()
            return RefundStatus.REFUSED.value
        if await self._refunds.complete_refund(
            refund,
            pg_transaction_key=None if result.already_canceled else result.transaction_key,
            message=f"{refund.amount} KRW refunded by the payment provider"
            + (" (already cancelled)" if result.already_canceled else ""),
            now=self._clock.now(),
        ):
            REFUNDS.labels(stage="refunded").inc()
        log.info(
            "refund completed",
            extra={
                "transactionId": transaction.transaction_id,
                "refundId": refund_id,
                "amount": refund.amount,
            },
        )
        return RefundStatus.DONE.value

    # --- cancels made at the PG ------------------------------------------------------------------

    async def reflect_pg_cancels(self, transaction: Transaction, payment: PaymentInfo) -> int:
        """Record the PG's cancels we did not ask for (an operator in the PG's console), through the
        same refund path: a row each, the revoke, 95 once nothing is left. Returns how many.

        Raises RefundsInFlight while one of our own refunds is under way: its cancel may already be
        in the PG's list without its key in ours yet, and must not be counted twice.
        """
        if payment.status not in (PgPaymentStatus.CANCELED, PgPaymentStatus.PARTIAL_CANCELED):
            return 0
        if transaction.status not in _MONEY_HELD:
            # Never paid (10, 30) or failed (41): a cancel at the PG returned nothing of ours.
            return 0
        if payment.order_id != transaction.transaction_id or payment.total_amount != transaction.amount:
            log.error(
                "PG cancel does not match the transaction",
                extra={"transactionId": transaction.transaction_id},
            )
            return 0
        ours = await self._refunds.list_refunds(transaction.transaction_id)
        if any(r.status == RefundStatus.REQUESTED for r in ours):
            raise RefundsInFlight(transaction.transaction_id)
        known = {r.pg_transaction_key for r in ours if r.pg_transaction_key}
        recorded = 0
        current: Transaction | None = transaction
        for cancel in payment.cancels:
            if current is None or not cancel.transaction_key or cancel.transaction_key in known:
                continue
            amount = min(cancel.amount, current.amount - current.refunded_amount)
            if amount <= 0:
                continue  # e.g. our own full refund answered ALREADY_CANCELED for this very cancel
            now = self._clock.now()
            refund = RefundRecord(
                refund_id=new_refund_id(now),
                transaction_id=current.transaction_id,
                amount=amount,
                reason=(cancel.reason or "cancelled at the payment provider")[:200],
                actor=PG_ACTOR,
                status=RefundStatus.DONE,
                created_at=now,
                revoke_status=(
                    RevokeStatus.PENDING
                    if current.status in (Status.PROVISION_SUCCESS, Status.REFUND_REQUESTED)
                    else RevokeStatus.NOT_REQUIRED
                ),
                pg_transaction_key=cancel.transaction_key[:64],
                completed_at=cancel.canceled_at or now,
            )
            if await self._refunds.record_pg_refund(
                refund,
                expected=current.status,
                message=f"{amount} KRW cancelled at the payment provider",
                now=now,
            ):
                recorded += 1
                PG_SIDE_CANCELS.inc()
                REFUNDS.labels(stage="pg_side").inc()
                log.warning(
                    "payment cancelled at the PG, not by us",
                    extra={
                        "transactionId": current.transaction_id,
                        "refundId": refund.refund_id,
                        "amount": amount,
                    },
                )
                if refund.revoke_status == RevokeStatus.PENDING:
                    await self._enqueue(refund.refund_id)
            current = await self._repo.get(transaction.transaction_id)
        return recorded

    # --- the sweeper ---------------------------------------------------------------------------

    async def requeue_open(self, created_before: datetime, limit: int) -> int:
        """Queue again the refunds with work left whose job a crash or a Redis flush may have lost."""
        open_ids = await self._refunds.find_open_refunds(created_before, limit)
        for refund_id in open_ids:
            await self._enqueue(refund_id)
        return len(open_ids)

    async def _enqueue(self, refund_id: str) -> None:
        try:
            await self._queue.enqueue_refund(refund_id)
        except Exception:  # the sweeper re-queues it; the request must not fail for this
            log.exception("could not queue the refund; the sweeper will retry", extra={"refundId": refund_id})
