"""Payment Core's use cases: issue, browser callbacks, status, detail, list, expiry.

Each use case reads and writes through the ports only. Every state change goes through the
repository's guarded transition, so concurrent callers (callback, webhook, reconciler, worker)
can never both win, and the PG's confirm is called only by the one that claimed 10→30.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import msgspec

from app.core.domain import (
    STATUS_MESSAGES,
    AmountMismatch,
    HistoryEntry,
    Method,
    ProductNotFound,
    ProductType,
    Status,
    Transaction,
    TransactionNotFound,
    Transition,
    TransitionChange,
    ValidationFailed,
    new_transaction_id,
    retry_after_ms,
)
from app.core.ports import (
    Clock,
    PaymentGateway,
    Product,
    ProductCatalog,
    ProvisioningQueue,
    StatusView,
    TransactionPage,
    TransactionRepository,
)
from app.core.printable import printable_text, require_printable
from app.core.refunds import RefundService
from app.gateway.models import GatewayError, GatewayErrorKind, PaymentInfo, PgPaymentStatus

log = logging.getLogger("app.core")

MAX_METADATA_BYTES = 4096
# MariaDB refuses JSON nested 32 levels or deeper (its JSON columns are checked by JSON_VALID):
# buyer metadata gets well under that, so no write can fail on it.
MAX_METADATA_DEPTH = 16
MAX_ORDER_NAME_LENGTH = 100
MAX_PAYMENT_KEY_LENGTH = 200  # Toss's paymentKey is at most 200 characters
_AMOUNT_PATTERN = re.compile(r"[0-9]{1,12}")  # ASCII digits only, and short enough for int()

# What a PG error means for the buyer, as the SPEC's codes.
_ERROR_KIND_TO_CODE: dict[GatewayErrorKind, tuple[str, str]] = {
    GatewayErrorKind.DECLINED: ("PAY_003", "The payment was declined."),
    GatewayErrorKind.INSUFFICIENT_FUNDS: ("PAY_004", "Insufficient balance or card limit."),
    GatewayErrorKind.PROVIDER_ERROR: ("PAY_005", "The payment provider could not process the payment."),
    GatewayErrorKind.SESSION_EXPIRED: ("PAY_002", "The payment session expired before it was confirmed."),
    GatewayErrorKind.NOT_FOUND: ("PAY_003", "The payment provider does not know this payment."),
    GatewayErrorKind.INVALID_REQUEST: ("PAY_003", "The payment provider refused the confirmation."),
    GatewayErrorKind.MISCONFIGURED: ("PAY_005", "The payment provider refused our credentials."),
    GatewayErrorKind.NOT_CANCELABLE: ("PAY_003", "The payment provider refused the request."),
    GatewayErrorKind.ALREADY_CANCELED: ("PAY_003", "The payment was already cancelled."),
}
# Confirm errors that a paymentKey of another order (a forged callback) also produces.
_KEY_MAY_BELONG_ELSEWHERE = frozenset(
    {GatewayErrorKind.NOT_FOUND, GatewayErrorKind.SESSION_EXPIRED, GatewayErrorKind.INVALID_REQUEST}
)
_FAILED_AT_PG = frozenset(
    {PgPaymentStatus.READY, PgPaymentStatus.ABORTED, PgPaymentStatus.EXPIRED, PgPaymentStatus.CANCELED}
)
# failUrl codes that mean the buyer's balance or limit; every other window failure is PAY_003.
_INSUFFICIENT_FUNDS_CODES = frozenset(
    {"REJECT_CARD_PAYMENT", "REJECT_ACCOUNT_PAYMENT", "EXCEED_MAX_DAILY_PAYMENT_COUNT", "EXCEED_MAX_AMOUNT"}
)


@dataclass(frozen=True, slots=True)
class CoreConfig:
    public_base_url: str
    frontend_base_url: str
    transaction_expire_minutes: int
    client_key: str
    checkout_url: str | None = None  # a hosted payment window (the mock's) for frontends without the SDK
    provider: str = "TOSS"
    refund_window_days: int = 7
    reconcile_first_delay_seconds: float = 10.0
    virtual_account_recheck_seconds: float = 3600.0
    callback_budget_seconds: float = 12.0  # a callback answers well within 15 s, even when the PG hangs


@dataclass(frozen=True, slots=True)
class IssueCommand:
    user_id: str
    product_type: ProductType
    product_id: str
    amount: int
    order_name: str | None
    method: Method
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class IssuedTransaction:
    transaction: Transaction
    success_url: str
    fail_url: str
    client_key: str
    checkout_url: str | None


@dataclass(frozen=True, slots=True)
class StatusReport:
    view: StatusView
    message: str
    retry_after_ms: int | None


@dataclass(frozen=True, slots=True)
class AppliedPayment:
    status: Status
    changed: bool


@dataclass(frozen=True, slots=True)
class TransactionDetail:
    transaction: Transaction
    history: Sequence[HistoryEntry]


class PaymentService:
    """The use cases of Payment Core."""

    def __init__(
        self,
        *,
        repository: TransactionRepository,
        gateway: PaymentGateway,
        catalog: ProductCatalog,
        clock: Clock,
        config: CoreConfig,
        queue: ProvisioningQueue,
        refunds: RefundService,
    ) -> None:
        self._repo = repository
        self._queue = queue
        self._refunds = refunds
        self._gateway = gateway
        self._catalog = catalog
        self._clock = clock
        self._config = config

    # --- issue ---------------------------------------------------------------------------------

    async def issue(self, command: IssueCommand) -> IssuedTransaction:
        """Create a CREATED transaction priced by the catalog (SPEC §3 POST /api/payments/issue)."""
        if len(msgspec.json.encode(command.metadata)) > MAX_METADATA_BYTES:
            raise ValidationFailed(
                "metadata is larger than 4 KB",
                details=[{"field": "metadata", "reason": f"at most {MAX_METADATA_BYTES} bytes of JSON"}],
            )
        require_printable({"orderName": command.order_name})
        if _nesting_depth(command.metadata) > MAX_METADATA_DEPTH:
            raise ValidationFailed(
                f"metadata is nested more than {MAX_METADATA_DEPTH} levels deep",
                details=[{"field": "metadata", "reason": f"at most {MAX_METADATA_DEPTH} levels of nesting"}],
            )
        product = await self._catalog.get_product(command.product_type, command.product_id)
        if product is None:
            raise ProductNotFound(f"No {command.product_type.value} product with id '{command.product_id}'.")
        if command.amount != product.amount:
            raise AmountMismatch(
                f"amount {command.amount} differs from the price of {product.product_id}: {product.amount}",
                details={"expectedAmount": product.amount},
            )
        now = self._clock.now()
        transaction = Transaction(
            transaction_id=new_transaction_id(now),
            user_id=command.user_id,
            product_type=command.product_type,
            product_id=command.product_id,
            order_name=printable_text(command.order_name or product.name, MAX_ORDER_NAME_LENGTH),
            amount=product.amount,
            method=command.method,
            status=Status.CREATED,
            created_at=now,
            updated_at=now,
            expires_at=now + timedelta(minutes=self._config.transaction_expire_minutes),
            provider=self._config.provider,
            metadata=command.metadata,
        )
        await self._repo.add(transaction, "issued")
        log.info(
            "transaction issued",
            extra={
                "transactionId": transaction.transaction_id,
                "userId": transaction.user_id,
                "amount": transaction.amount,
                "productType": transaction.product_type.value,
            },
        )
        base = self._config.public_base_url.rstrip("/")
        tid = transaction.transaction_id
        checkout_url = None
        if self._config.checkout_url:
            checkout_url = f"{self._config.checkout_url}?" + urlencode(
                {
                    "clientKey": self._config.client_key,
                    "orderId": tid,
                    "amount": transaction.amount,
                    "orderName": transaction.order_name,
                    "method": transaction.method.value,
                    "successUrl": f"{base}/api/payments/callback/success",
                    "failUrl": f"{base}/api/payments/callback/fail?transactionId={tid}",
                }
            )
        return IssuedTransaction(
            transaction=transaction,
            success_url=f"{base}/api/payments/callback/success",
            # PAY_PROCESS_CANCELED arrives without orderId, so the failUrl carries our id itself.
            fail_url=f"{base}/api/payments/callback/fail?transactionId={tid}",
            client_key=self._config.client_key,
            checkout_url=checkout_url,
        )

    async def list_products(self) -> Sequence[Product]:
        return await self._catalog.list_products()

    # --- browser callbacks ---------------------------------------------------------------------

    async def handle_success_callback(
        self, *, payment_key: str | None, order_id: str | None, amount: str | None
    ) -> str:
        """Verify S2S and confirm; returns the frontend URL to redirect the browser to.

        Nothing the browser sends is trusted: a paymentKey is used only for a confirm (which the PG
        refuses for another order), stored only once the PG reports it for this order, and a
        callback never fails a payment the PG says is going on. The PG calls of one callback share
        a budget (CALLBACK_BUDGET_SECONDS): past it the buyer sees the "confirming" page and
        reconciliation finishes the job.
        """
        deadline = Deadline.after(self._config.callback_budget_seconds)
        if not order_id or not payment_key:
            return self._fail_page(
                order_id, "PAY_000", "The payment callback is missing paymentKey or orderId."
            )
        if len(payment_key) > MAX_PAYMENT_KEY_LENGTH:
            # Not a key Toss issues: nothing to confirm, and nothing changes (the real callback may follow).
            return self._fail_page(order_id, "PAY_000", "The payment callback's paymentKey is not valid.")
        transaction = await self._repo.get(order_id)
        if transaction is None:
            return self._fail_page(None, "PAY_008", "No such transaction.")
        if transaction.status == Status.PAYMENT_PENDING and transaction.va_account_number is None:
            claimed_for = self._clock.now() - transaction.updated_at
            if claimed_for < timedelta(seconds=self._config.callback_budget_seconds):
                # The request that claimed it is still within its budget, confirming: a duplicate
                # callback (double click, refresh) must never confirm a second time.
                return self._page_for(transaction)
            # Pending without a known outcome: this may be the buyer's real callback after a forged
            # one claimed the transaction. The PG knows which payment belongs to this order.
            await self.settle_with_pg(transaction, deadline)
            return await self._page_for_current(transaction.transaction_id)
        if transaction.status != Status.CREATED:
            # Refresh, back button, double delivery: never confirm twice.
            return self._page_for(transaction)
        now = self._clock.now()
        if transaction.is_expired(now):
            await self._fail_created(transaction, "PAY_002", "The transaction has expired.", pg_code=None)
            return await self._page_for_current(transaction.transaction_id)
        if amount is None or not _AMOUNT_PATTERN.fullmatch(amount) or int(amount) != transaction.amount:
            # Tampered amount: refuse before the PG's confirm is ever called, and fail the payment
            # only when the key is the PG's own for this order (not someone else's forged callback).
            if await self._pg_payment_key(transaction, deadline) == payment_key:
                await self._fail_created(
                    transaction,
                    "PAY_003",
                    f"The paid amount ({amount}) does not match the transaction amount ({transaction.amount}).",
                    pg_code=None,
                    metadata={"callbackAmount": amount},
                )
                return await self._page_for_current(transaction.transaction_id)
            log.warning(
                "callback with a wrong amount and a foreign paymentKey ignored",
                extra={"transactionId": transaction.transaction_id},
            )
            return self._fail_page(
                transaction.transaction_id, "PAY_003", "The payment could not be verified."
            )

        # The callback's paymentKey is not stored: only the PG's own key for this order is.
        claimed = await self._repo.apply(
            transaction.transaction_id,
            Transition.claim_for_confirm(reconcile_at=self._first_reconcile(now)),
            now=now,
        )
        if not claimed:
            return await self._page_for_current(transaction.transaction_id)
        await self.confirm_claimed(transaction, payment_key, deadline)
        return await self._page_for_current(transaction.transaction_id)

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
            await self._note_budget_spent(transaction, "confirm")
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
            async with asyncio.timeout(deadline.remaining()):
                payment = await self._gateway.find_payment(provider=transaction.provider, order_id=tid)
        except TimeoutError:
            await self._note_budget_spent(transaction, "lookup")
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

    async def _pg_payment_key(self, transaction: Transaction, deadline: Deadline) -> str | None:
        """The paymentKey the PG holds for this order, or None (unknown, unreachable, too slow)."""
        try:
            async with asyncio.timeout(deadline.remaining()):
                payment = await self._gateway.find_payment(
                    provider=transaction.provider, order_id=transaction.transaction_id
                )
        except (TimeoutError, GatewayError):
            return None
        return payment.payment_key if payment.order_id == transaction.transaction_id else None

    async def _note_budget_spent(self, transaction: Transaction, step: str) -> None:
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

        Returns the status afterwards and whether *this* call changed anything: concurrent
        callers (callback, webhook jobs, reconciler) race through guarded writes, one wins.
        """
        tid = transaction.transaction_id
        now = self._clock.now()
        if payment.order_id != tid or payment.total_amount != transaction.amount:
            log.error(
                "PG payment does not match the transaction",
                extra={"transactionId": tid, "pgOrderId": payment.order_id, "pgAmount": payment.total_amount},
            )
            changed = await self.fail_pending(
                tid, "PAY_003", "The PG's payment does not match the transaction.", None
            )
        elif payment.status == PgPaymentStatus.DONE:
            changed = await self._repo.apply(
                tid,
                Transition.mark_paid(
                    payment_key=payment.payment_key,
                    pg_method=payment.method.value if payment.method else None,
                    completed_at=payment.approved_at or now,
                    history={
                        "pgStatus": payment.status.value,
                        "paymentKey": payment.payment_key,
                        "secondsSinceIssue": round((now - transaction.created_at).total_seconds(), 3),
                    },
                ),
                now=now,
            )
            if changed:
                log.info("payment succeeded", extra={"transactionId": tid, "amount": transaction.amount})
                await self.start_provisioning(tid)
        elif payment.status == PgPaymentStatus.WAITING_FOR_DEPOSIT and payment.virtual_account is not None:
            changed = await self._apply_waiting_for_deposit(transaction, payment, now)
        elif payment.status in (PgPaymentStatus.ABORTED, PgPaymentStatus.EXPIRED, PgPaymentStatus.CANCELED):
            failure = payment.failure
            code = "PAY_002" if payment.status == PgPaymentStatus.EXPIRED else "PAY_003"
            changed = await self.fail_pending(
                tid,
                code,
                failure.message if failure else f"The payment provider reports {payment.status.value}.",
                failure.code if failure else payment.status.value,
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
        return AppliedPayment(status=await self._current_status(tid), changed=changed)

    async def _apply_waiting_for_deposit(
        self, transaction: Transaction, payment: PaymentInfo, now: datetime
    ) -> bool:
        va = payment.virtual_account
        assert va is not None
        tid = transaction.transaction_id
        if va.expired or now >= va.due_date:
            # Toss sends nothing when the due date passes: whoever notices fails it.
            return await self.fail_pending(
                tid, "PAY_002", "The virtual account expired before the deposit.", None
            )
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

    async def handle_fail_callback(
        self, *, transaction_id: str | None, order_id: str | None, code: str | None, message: str | None
    ) -> str:
        """The PG's failure redirect: 10→41 with the PG's code; returns the fail page URL.

        Anyone can open this URL with someone else's transaction id, so the PG is asked first: a
        payment it reports as authenticated or paid is not failed (a paid one is applied).
        """
        tid = transaction_id or order_id
        if not tid:
            return self._fail_page(None, "PAY_000", "The failure callback names no transaction.")
        transaction = await self._repo.get(tid)
        if transaction is None:
            return self._fail_page(None, "PAY_008", "No such transaction.")
        # Both come from the browser's URL: printable and bounded before they are stored or echoed.
        pg_code = printable_text(code or "", 64) or "UNKNOWN"
        text = printable_text(message or "", 510) or "The payment was not completed."
        our_code = "PAY_004" if pg_code in _INSUFFICIENT_FUNDS_CODES else "PAY_003"
        if transaction.status != Status.CREATED:
            return await self._page_for_current(tid)
        verdict = await self._pg_view_of_failure(transaction)
        if verdict == "fail":
            await self._fail_created(transaction, our_code, text, pg_code=pg_code)
            return await self._page_for_current(tid)
        if verdict == "paid":
            return await self._page_for_current(tid)
        # "going on" or "unknown": nothing changes; the buyer's real redirect or the expiry decides.
        return self._fail_page(tid, our_code, text)

    async def _pg_view_of_failure(self, transaction: Transaction) -> str:
        """What the PG says of a CREATED transaction whose fail redirect arrived: "fail" (no payment
        or a failed one), "paid" (applied here), "going on" or "unknown" (PG unreachable)."""
        tid = transaction.transaction_id
        try:
            async with asyncio.timeout(self._config.callback_budget_seconds):
                payment = await self._gateway.find_payment(provider=transaction.provider, order_id=tid)
        except TimeoutError:
            return "unknown"
        except GatewayError as error:
            return "fail" if error.kind == GatewayErrorKind.NOT_FOUND else "unknown"
        if payment.order_id != tid or payment.status in _FAILED_AT_PG:
            return "fail"
        if payment.status == PgPaymentStatus.IN_PROGRESS:
            log.warning(
                "a fail redirect for a payment the PG reports in progress; ignored",
                extra={"transactionId": tid},
            )
            return "going on"
        # Paid (or a deposit awaited) at the PG although a fail redirect came: apply the PG's truth.
        log.warning(
            "a fail redirect for a payment the PG reports paid; applying the PG", extra={"transactionId": tid}
        )
        now = self._clock.now()
        claim = Transition.claim_reported_payment(
            pg_status=payment.status.value, reconcile_at=self._first_reconcile(now)
        )
        if await self._repo.apply(tid, claim, now=now):
            await self.apply_pg_payment(transaction, payment)
        return "paid"

    # --- reads ---------------------------------------------------------------------------------

    async def get_status(self, *, user_id: str, transaction_id: str, attempt: int | None) -> StatusReport:
        """The polling endpoint: one indexed read, no writes."""
        view = await self._repo.get_status_view(transaction_id)
        if view is None or view.user_id != user_id:
            raise TransactionNotFound()
        pending_for = (self._clock.now() - view.updated_at).total_seconds()
        awaiting_deposit = view.status == Status.PAYMENT_PENDING and view.va_account_number is not None
        message = STATUS_MESSAGES[view.status]
        if awaiting_deposit:
            message = "Waiting for your deposit to the virtual account."
        elif view.status == Status.PAYMENT_FAILED and view.failure_message:
            message = view.failure_message
        return StatusReport(
            view=view,
            message=message,
            retry_after_ms=retry_after_ms(view.status, pending_for, attempt, awaiting_deposit),
        )

    async def get_transaction(self, transaction_id: str) -> Transaction | None:
        """For workers: the transaction as stored, with no owner check."""
        return await self._repo.get(transaction_id)

    async def get_detail(self, *, user_id: str, is_admin: bool, transaction_id: str) -> TransactionDetail:
        transaction = await self._repo.get(transaction_id)
        if transaction is None or (transaction.user_id != user_id and not is_admin):
            raise TransactionNotFound()
        return TransactionDetail(transaction=transaction, history=await self._repo.history(transaction_id))

    async def list_transactions(
        self, *, user_id: str, statuses: Sequence[Status] | None, cursor: str | None, limit: int
    ) -> TransactionPage:
        return await self._repo.list_for_user(user_id, statuses=statuses, cursor=cursor, limit=limit)

    # --- expiry --------------------------------------------------------------------------------

    async def expire_stale(self, *, limit: int = 100) -> int:
        """CREATED transactions past expiresAt → 41 PAY_002. Returns how many expired."""
        now = self._clock.now()
        expired = 0
        for tid in await self._repo.find_expired_created(now, limit):
            if await self._repo.apply(tid, Transition.expire(), now=now):
                expired += 1
        return expired

    # --- provisioning ----------------------------------------------------------------------------

    async def start_provisioning(self, transaction_id: str) -> bool:
        """40 → 45, then queue the grant — after the commit, never inside it.

        A crash or a Redis error between the two leaves a 45 without a job; the sweeper queues
        it again (enqueues are idempotent per transaction), so no grant is ever lost.
        """
        moved = await self._repo.apply(transaction_id, Transition.start_provisioning(), now=self._clock.now())
        if moved:
            await self._enqueue_grant(transaction_id)
        return moved

    async def complete_provisioning(self, transaction_id: str, details: dict[str, Any]) -> bool:
        """45 → 50: the buyer has what they paid for."""
        done = await self._repo.apply(transaction_id, Transition.provisioned(details), now=self._clock.now())
        if done:
            log.info("provisioning succeeded", extra={"transactionId": transaction_id})
        return done

    async def fail_provisioning(self, transaction_id: str, reason: str) -> bool:
        """45 → 51, then an automatic full refund (51 → 90 → 95)."""
        failed = await self._repo.apply(
            transaction_id, Transition.provisioning_failed(reason), now=self._clock.now()
        )
        if failed:
            log.error(
                "provisioning failed; refunding", extra={"transactionId": transaction_id, "reason": reason}
            )
        transaction = await self._repo.get(transaction_id)
        if transaction is not None and transaction.status == Status.PROVISION_FAILED:
            await self._refunds.start_automatic_refund(transaction)
        return failed

    # --- the sweeper: nothing is lost between a commit and an enqueue ---------------------------

    async def sweep(self, *, stale_after_seconds: float, batch_size: int = 100) -> dict[str, int]:
        """Expire stale CREATED, and re-queue 40/45/51/90 work whose job may have been lost."""
        now = self._clock.now()
        before = now - timedelta(seconds=stale_after_seconds)
        counts = {
            "expired": await self.expire_stale(limit=batch_size),
            "provisioning": 0,
            "grants": 0,
            "refunds": 0,
        }
        for tid in await self._repo.find_stale(Status.PAYMENT_SUCCESS, before, batch_size):
            counts["provisioning"] += int(await self.start_provisioning(tid))
        for tid in await self._repo.find_stale(Status.PROVISION_PENDING, before, batch_size):
            await self._enqueue_grant(tid)
            counts["grants"] += 1
        for tid in await self._repo.find_stale(Status.PROVISION_FAILED, before, batch_size):
            # 45→51 commits before the automatic refund starts: finish what a crash cut short.
            failed = await self._repo.get(tid)
            if failed is not None and not await self._refunds.list_refunds(tid):
                await self._refunds.start_automatic_refund(failed)
                counts["refunds"] += 1
        counts["refunds"] += await self._refunds.requeue_open(before, batch_size)
        return counts

    async def _enqueue_grant(self, transaction_id: str) -> None:
        try:
            await self._queue.enqueue_grant(transaction_id)
        except Exception:  # the sweeper re-queues it; the request must not fail for this
            log.exception(
                "could not queue the grant; the sweeper will retry", extra={"transactionId": transaction_id}
            )

    # --- helpers -------------------------------------------------------------------------------

    async def _fail_created(
        self,
        transaction: Transaction,
        code: str,
        message: str,
        *,
        pg_code: str | None,
        metadata: dict[str, Any] | None = None,
    ) -> bool:
        failure = Transition.fail(
            Status.CREATED, code=code, message=message, pg_code=pg_code, history=metadata
        )
        return await self._repo.apply(transaction.transaction_id, failure, now=self._clock.now())

    async def fail_created_by_pg(self, transaction: Transaction, pg_status: str) -> bool:
        """10 → 41 when the PG reports the buyer's session ended (ABORTED/EXPIRED)."""
        code = "PAY_002" if pg_status == "EXPIRED" else "PAY_003"
        return await self._fail_created(
            transaction, code, f"The payment provider reports {pg_status}.", pg_code=pg_status
        )

    async def fail_with_gateway_error(self, transaction_id: str, error: GatewayError) -> bool:
        """30 → 41 for a PG answer that means "not approved", with the SPEC's code."""
        code, message = _ERROR_KIND_TO_CODE.get(error.kind, ("PAY_003", "The payment failed."))
        return await self.fail_pending(transaction_id, code, error.message or message, error.pg_code)

    async def fail_pending(self, transaction_id: str, code: str, message: str, pg_code: str | None) -> bool:
        """30 → 41 (guarded)."""
        failure = Transition.fail(Status.PAYMENT_PENDING, code=code, message=message, pg_code=pg_code)
        return await self._repo.apply(transaction_id, failure, now=self._clock.now())

    def _first_reconcile(self, now: datetime) -> datetime:
        """When the reconciler first asks the PG about a claimed (30) transaction."""
        return now + timedelta(seconds=self._config.reconcile_first_delay_seconds)

    async def _current_status(self, transaction_id: str) -> Status:
        view = await self._repo.get_status_view(transaction_id)
        if view is None:
            raise TransactionNotFound()
        return view.status

    async def _page_for_current(self, transaction_id: str) -> str:
        transaction = await self._repo.get(transaction_id)
        if transaction is None:
            return self._fail_page(None, "PAY_008", "No such transaction.")
        return self._page_for(transaction)

    def _page_for(self, transaction: Transaction) -> str:
        if transaction.status == Status.PAYMENT_FAILED:
            return self._fail_page(
                transaction.transaction_id,
                transaction.failure_code or "PAY_003",
                transaction.failure_message or "The payment failed.",
            )
        if transaction.status == Status.CREATED:
            return self._fail_page(transaction.transaction_id, "PAY_001", "The payment was not completed.")
        return self.success_page(transaction.transaction_id)

    def success_page(self, transaction_id: str) -> str:
        """The frontend's success page: it polls the status ("confirming" until the outcome is
        known). Also where a callback that met an unreachable database sends the buyer."""
        return f"{self._frontend}/payment/success?" + urlencode({"transactionId": transaction_id})

    def fail_page(self, transaction_id: str | None, code: str, message: str) -> str:
        """The frontend's fail page, with our code and a message."""
        return self._fail_page(transaction_id, code, message)

    def _fail_page(self, transaction_id: str | None, code: str, message: str) -> str:
        query = {"code": code, "message": message}
        if transaction_id:
            query = {"transactionId": transaction_id, **query}
        return f"{self._frontend}/payment/fail?" + urlencode(query)

    @property
    def _frontend(self) -> str:
        return self._config.frontend_base_url.rstrip("/")


def _nesting_depth(value: Any) -> int:
    """Levels of objects/arrays in a decoded JSON value ({} is 1, {"a": []} is 2); iterative."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest


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
