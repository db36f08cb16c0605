"""Payment results: what a PG's answer means for a transaction, shared by checkout, webhooks and
reconciliation alike.

The confirm (by the one request that claimed 10→30), applying the PG's own view of a payment
(30 → 40, a virtual account waiting for its deposit, or 30 → 41), the unknown-outcome path
(timeouts and 5xx are never failures: the PG is asked) and the PG-error → failure-code mapping.
A paid payment is handed over to fulfilment through `on_paid`, which the composition root wires.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app import messages as texts
from app.core.domain import ErrorCode, Status, Transaction, TransactionNotFound, Transition, TransitionChange
from app.core.payment_metrics import count_payment_outcome
from app.core.ports import Clock, PaymentGateway, TransactionRepository
from app.gateway.models import GatewayError, GatewayErrorKind, PaymentInfo, PgPaymentStatus

log = logging.getLogger("app.core")

# What a PG error means for the buyer: our code and our message (the PG's own code and
# message are kept beside them, as the failure's pgCode and pgMessage). Messages are stored in
# English; app.messages has them in Korean too.
_ERROR_KIND_TO_CODE: dict[GatewayErrorKind, tuple[ErrorCode, str]] = {
    GatewayErrorKind.DECLINED: (ErrorCode.VERIFICATION_FAILED, texts.PAYMENT_DECLINED.en),
    GatewayErrorKind.CANCELED_BY_BUYER: (ErrorCode.VERIFICATION_FAILED, texts.PAYMENT_CANCELED_IN_WINDOW.en),
    GatewayErrorKind.INSUFFICIENT_FUNDS: (ErrorCode.INSUFFICIENT_FUNDS, texts.INSUFFICIENT_FUNDS.en),
    GatewayErrorKind.PROVIDER_ERROR: (ErrorCode.PG_ERROR, texts.PROVIDER_FAILED.en),
    GatewayErrorKind.SESSION_EXPIRED: (ErrorCode.EXPIRED, texts.SESSION_EXPIRED.en),
    GatewayErrorKind.NOT_FOUND: (ErrorCode.VERIFICATION_FAILED, texts.PROVIDER_DOES_NOT_KNOW.en),
    GatewayErrorKind.INVALID_REQUEST: (ErrorCode.VERIFICATION_FAILED, texts.PROVIDER_REFUSED_CONFIRM.en),
    GatewayErrorKind.MISCONFIGURED: (ErrorCode.PG_ERROR, texts.PROVIDER_REFUSED_CREDENTIALS.en),
    GatewayErrorKind.NOT_CANCELABLE: (ErrorCode.VERIFICATION_FAILED, texts.PROVIDER_REFUSED_REQUEST.en),
    GatewayErrorKind.ALREADY_CANCELED: (ErrorCode.VERIFICATION_FAILED, texts.ALREADY_CANCELED.en),
}
# Confirm errors that a paymentKey of another order (a forged callback) also produces.
_KEY_MAY_BELONG_ELSEWHERE = frozenset(
    {GatewayErrorKind.NOT_FOUND, GatewayErrorKind.SESSION_EXPIRED, GatewayErrorKind.INVALID_REQUEST}
)


# The fail redirect named no code of the PG's (or one that is not a PG's code).
_WINDOW_NOT_COMPLETED = texts.NOT_COMPLETED.en
# How the PG's view of a payment that did not go through reads for the buyer.
_FAILED_AT_PG_MESSAGES: dict[PgPaymentStatus, str] = {
    PgPaymentStatus.ABORTED: texts.NOT_APPROVED_BY_PROVIDER.en,
    PgPaymentStatus.EXPIRED: texts.SESSION_EXPIRED.en,
    PgPaymentStatus.CANCELED: texts.CANCELED_AT_PROVIDER.en,
}


def window_failure(kind: GatewayErrorKind | None) -> tuple[ErrorCode, str]:
    """Our code and message for a failure in the payment window (the fail redirect), by what the
    PG's code means (None: no code of the PG's). The buyer's balance or limit is PAY_004, anything
    else PAY_003; a buyer who cancelled is told so, not that the payment was declined."""
    if kind is None:
        return ErrorCode.VERIFICATION_FAILED, _WINDOW_NOT_COMPLETED
    _, message = _ERROR_KIND_TO_CODE.get(kind, (ErrorCode.VERIFICATION_FAILED, _WINDOW_NOT_COMPLETED))
    code = (
        ErrorCode.INSUFFICIENT_FUNDS
        if kind == GatewayErrorKind.INSUFFICIENT_FUNDS
        else ErrorCode.VERIFICATION_FAILED
    )
    return code, message


OnPaid = Callable[[str], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class ResultsConfig:
    reconcile_first_delay_seconds: float = 10.0
    virtual_account_recheck_seconds: float = 3600.0
    callback_budget_seconds: float = 12.0  # a callback answers well within 15 s, even when the PG hangs


@dataclass(frozen=True, slots=True)
class AppliedPayment:
    changed: bool  # this call's guarded write won (the status afterwards: current_status)


class PaymentResults:
    """Turns the PG's answers into guarded transitions."""

    def __init__(
        self,
        *,
        repository: TransactionRepository,
        gateway: PaymentGateway,
        clock: Clock,
        config: ResultsConfig,
        on_paid: OnPaid,
    ) -> None:
        self._repo = repository
        self._gateway = gateway
        self._clock = clock
        self._config = config
        self._on_paid = on_paid

    @property
    def callback_budget_seconds(self) -> float:
        return self._config.callback_budget_seconds

    async def confirm_claimed(
        self, transaction: Transaction, payment_key: str, deadline: Deadline | None = None
    ) -> None:
        """Confirm a transaction this caller moved to 30; apply what the PG answers."""
        deadline = deadline or Deadline.after(self._config.callback_budget_seconds)
        try:
            async with asyncio.timeout(deadline.remaining()):
                payment = await self._gateway.confirm_payment(
                    provider=transaction.provider,
                    payment_key=payment_key,
                    order_id=transaction.transaction_id,
                    amount=transaction.amount,
                    idempotency_key=confirm_idempotency_key(transaction.transaction_id, payment_key),
                )
        except TimeoutError:
            await self.note_budget_spent(transaction, "confirm")
            return
        except GatewayError as error:
            if error.outcome_unknown:
                await self._confirm_outcome_unknown(transaction, payment_key, error, deadline)
            elif error.kind in _KEY_MAY_BELONG_ELSEWHERE:
                # The key may not be this order's (a forged callback): ask the PG before failing.
                await self.settle_with_pg(transaction, deadline, tried_key=payment_key, error=error)
            else:
                await self.fail_with_gateway_error(transaction.transaction_id, error)
            return
        await self.apply_pg_payment(transaction, payment)

    async def settle_with_pg(
        self,
        transaction: Transaction,
        deadline: Deadline,
        *,
        tried_key: str | None = None,
        error: GatewayError | None = None,
    ) -> None:
        """Look a pending (30) transaction up by orderId and act on the PG's own payment for it.

        An authenticated payment (IN_PROGRESS) is confirmed with the key the PG reports, never with
        one a browser sent; `error` (the confirm of `tried_key` failed) fails the transaction only
        when the PG's payment for this order is that very key. Anything unknown is left to
        reconciliation.
        """
        tid = transaction.transaction_id
        try:
            payment = await self.find_payment(transaction, deadline)
        except TimeoutError:
            await self.note_budget_spent(transaction, "lookup")
            return
        except GatewayError as lookup_error:
            if tried_key is not None and lookup_error.kind == GatewayErrorKind.NOT_FOUND:
                log.warning(
                    "a callback's paymentKey is unknown to the PG for this order; left pending",
                    extra={"transactionId": tid},
                )
            return  # reconciliation asks again
        if payment.order_id != tid:
            return
        if error is not None and payment.payment_key == tried_key:
            await self.fail_with_gateway_error(tid, error)  # the failure was about this order's payment
            return
        if tried_key is not None and payment.payment_key != tried_key:
            log.warning(
                "a callback named a paymentKey that is not the PG's for this order",
                extra={"transactionId": tid, "pgStatus": payment.status.value},
            )
        if payment.status == PgPaymentStatus.IN_PROGRESS and payment.payment_key != tried_key:
            await self.confirm_claimed(transaction, payment.payment_key, deadline)
            return
        await self.apply_pg_payment(transaction, payment)

    async def find_payment(self, transaction: Transaction, deadline: Deadline) -> PaymentInfo:
        """The PG's payment for this order, asked within what is left of the deadline.
        Raises TimeoutError past it, GatewayError for the PG's refusals."""
        async with asyncio.timeout(deadline.remaining()):
            return await self._gateway.find_payment(
                provider=transaction.provider, order_id=transaction.transaction_id
            )

    async def pg_payment_key(self, transaction: Transaction, deadline: Deadline) -> str | None:
        """The paymentKey the PG holds for this order, or None (unknown, unreachable, too slow)."""
        try:
            payment = await self.find_payment(transaction, deadline)
        except (TimeoutError, GatewayError):
            return None
        return payment.payment_key if payment.order_id == transaction.transaction_id else None

    async def note_budget_spent(self, transaction: Transaction, step: str) -> None:
        log.warning(
            "callback budget spent; reconciliation finishes the payment",
            extra={"transactionId": transaction.transaction_id, "step": step},
        )
        await self._repo.record_event(
            transaction.transaction_id,
            status=Status.PAYMENT_PENDING,
            message=f"the payment provider did not answer the {step} in time; will ask again",
            metadata={"step": step},
            now=self._clock.now(),
        )

    async def apply_pg_payment(self, transaction: Transaction, payment: PaymentInfo) -> AppliedPayment:
        """Move a pending (30) transaction to what the PG's own view of the payment implies.

        Returns whether *this* call changed anything: concurrent callers (callback, webhook jobs,
        reconciler) race through guarded writes, one wins. Whoever needs the status afterwards
        reads it (`current_status`); the callback and the webhook job do not.
        """
        tid = transaction.transaction_id
        now = self._clock.now()
        if payment.order_id != tid or payment.total_amount != transaction.amount:
            log.error(
                "PG payment does not match the transaction",
                extra={"transactionId": tid, "pgOrderId": payment.order_id, "pgAmount": payment.total_amount},
            )
            changed = await self.fail_pending(
                tid, ErrorCode.VERIFICATION_FAILED, texts.PG_PAYMENT_MISMATCH.en, None
            )
        elif payment.status == PgPaymentStatus.DONE:
            paid = Transition.mark_paid(
                payment_key=payment.payment_key,
                pg_method=payment.method.value if payment.method else None,
                completed_at=payment.approved_at or now,
                history={
                    "pgStatus": payment.status.value,
                    "paymentKey": payment.payment_key,
                    "secondsSinceIssue": round((now - transaction.created_at).total_seconds(), 3),
                },
            )
            changed = await self._apply_counted(tid, paid, now)
            if changed:
                log.info("payment succeeded", extra={"transactionId": tid, "amount": transaction.amount})
                await self._on_paid(tid)
        elif payment.status == PgPaymentStatus.WAITING_FOR_DEPOSIT and payment.virtual_account is not None:
            changed = await self._apply_waiting_for_deposit(transaction, payment, now)
        elif payment.status in _FAILED_AT_PG_MESSAGES:
            failure = payment.failure
            code = (
                ErrorCode.EXPIRED
                if payment.status == PgPaymentStatus.EXPIRED
                else ErrorCode.VERIFICATION_FAILED
            )
            changed = await self.fail_pending(
                tid,
                code,
                _FAILED_AT_PG_MESSAGES[payment.status],
                failure.code if failure else payment.status.value,
                pg_message=failure.message if failure else None,
            )
        else:
            # READY / IN_PROGRESS / PARTIAL_CANCELED: not decided yet; reconciliation asks again later.
            await self._repo.record_event(
                tid,
                status=Status.PAYMENT_PENDING,
                message=f"payment provider reports {payment.status.value}; still pending",
                metadata={"pgStatus": payment.status.value},
                now=now,
            )
            changed = False
        return AppliedPayment(changed=changed)

    async def _apply_waiting_for_deposit(
        self, transaction: Transaction, payment: PaymentInfo, now: datetime
    ) -> bool:
        va = payment.virtual_account
        assert va is not None
        tid = transaction.transaction_id
        if va.expired or now >= va.due_date:
            # Toss sends nothing when the due date passes: whoever notices fails it.
            return await self.fail_pending(tid, ErrorCode.EXPIRED, texts.VIRTUAL_ACCOUNT_EXPIRED.en, None)
        recheck_at = min(va.due_date, now + timedelta(seconds=self._config.virtual_account_recheck_seconds))
        # Written once: the callback and both of Toss's WAITING_FOR_DEPOSIT webhooks may race here.
        stored = await self._repo.store_virtual_account(
            tid,
            message="virtual account issued; waiting for the deposit",
            metadata={"bankCode": va.bank_code, "dueDate": va.due_date.isoformat()},
            now=now,
            change=TransitionChange(
                payment_key=payment.payment_key,
                pg_method=payment.method.value if payment.method else None,
                va_bank_code=va.bank_code,
                va_account_number=va.account_number,
                va_due_date=va.due_date,
                va_secret=payment.secret,
                expires_at=va.due_date,
                next_reconcile_at=recheck_at,
            ),
        )
        if not stored:
            await self._repo.schedule_reconciliation(tid, recheck_at)
        return stored

    async def _confirm_outcome_unknown(
        self, transaction: Transaction, payment_key: str, error: GatewayError, deadline: Deadline
    ) -> None:
        """Timeout or 5xx: the PG may have charged. Never mark failed without asking the PG."""
        tid = transaction.transaction_id
        log.warning(
            "confirm outcome unknown; asking the PG",
            extra={"transactionId": tid, "pgCode": error.pg_code, "kind": error.kind.value},
        )
        await self._repo.record_event(
            tid,
            status=Status.PAYMENT_PENDING,
            message="confirm outcome unknown; will ask the payment provider",
            metadata={"pgCode": error.pg_code, "pgMessage": error.message[:200]},
            now=self._clock.now(),
        )
        # ALREADY_PROCESSED for a key that is not this order's (a forged callback) resolves here too:
        # the PG's own payment for the order is confirmed with its own key.
        await self.settle_with_pg(transaction, deadline, tried_key=payment_key)

    async def fail_created(
        self,
        transaction: Transaction,
        code: str,
        message: str,
        *,
        pg_code: str | None,
        pg_message: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> bool:
        failure = Transition.fail(
            Status.CREATED,
            code=code,
            message=message,
            pg_code=pg_code,
            pg_message=pg_message,
            history=metadata,
        )
        return await self._apply_counted(transaction.transaction_id, failure, self._clock.now())

    async def fail_created_by_pg(self, transaction: Transaction, payment: PaymentInfo) -> bool:
        """10 → 41 when the PG reports the buyer's session ended (ABORTED/EXPIRED), with the PG's
        failure (its code and message) when it gave one."""
        code = (
            ErrorCode.EXPIRED if payment.status == PgPaymentStatus.EXPIRED else ErrorCode.VERIFICATION_FAILED
        )
        # Another status (READY: the window was left unfinished) is named by the failure's pgCode.
        message = _FAILED_AT_PG_MESSAGES.get(payment.status, _WINDOW_NOT_COMPLETED)
        failure = payment.failure
        return await self.fail_created(
            transaction,
            code,
            message,
            pg_code=failure.code if failure else payment.status.value,
            pg_message=failure.message if failure else None,
        )

    async def fail_with_gateway_error(self, transaction_id: str, error: GatewayError) -> bool:
        """30 → 41 for a PG answer that means "not approved": our code and our message, the
        PG's code and message beside them."""
        code, message = _ERROR_KIND_TO_CODE.get(
            error.kind, (ErrorCode.VERIFICATION_FAILED, texts.PAYMENT_FAILED.en)
        )
        return await self.fail_pending(
            transaction_id, code, message, error.pg_code, pg_message=error.message or None
        )

    async def fail_pending(
        self,
        transaction_id: str,
        code: str,
        message: str,
        pg_code: str | None,
        *,
        pg_message: str | None = None,
    ) -> bool:
        """30 → 41 (guarded). `code`, `message` are ours; `pg_code`, `pg_message` the PG's."""
        failure = Transition.fail(
            Status.PAYMENT_PENDING, code=code, message=message, pg_code=pg_code, pg_message=pg_message
        )
        return await self._apply_counted(transaction_id, failure, self._clock.now())

    async def _apply_counted(self, transaction_id: str, transition: Transition, now: datetime) -> bool:
        """Apply a paid or failed outcome; count it only when this write won."""
        won = await self._repo.apply(transaction_id, transition, now=now)
        if won:
            count_payment_outcome(transition)
        return won

    def first_reconcile(self, now: datetime) -> datetime:
        """When the reconciler first asks the PG about a claimed (30) transaction."""
        return now + timedelta(seconds=self._config.reconcile_first_delay_seconds)

    async def current_status(self, transaction_id: str) -> Status:
        """The transaction's status in the database now (whatever raced this process's writes)."""
        view = await self._repo.current_status_view(transaction_id)
        if view is None:
            raise TransactionNotFound()
        return view.status


def confirm_idempotency_key(transaction_id: str, payment_key: str) -> str:
    """Stable per transaction and paymentKey, so a retried or repeated confirm can never charge
    twice, and a confirm of a forged key cannot block the confirm of the order's real one."""
    digest = hashlib.sha256(payment_key.encode()).hexdigest()[:16]
    return f"confirm-{transaction_id}-{digest}"


@dataclass(frozen=True, slots=True)
class Deadline:
    """When the PG calls of one request must be done (a callback's budget)."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())
