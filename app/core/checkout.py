"""Checkout: issuing a transaction and the two browser callbacks (success and fail redirects).

Nothing the browser sends is trusted. Callbacks return a CallbackOutcome (which frontend page, and
why); the HTTP layer turns it into the redirect URL.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote_plus, urlencode

import msgspec

from app import messages as texts
from app.core.domain import (
    AmountMismatch,
    ErrorCode,
    Method,
    Problem,
    ProductNotFound,
    ProductType,
    Status,
    Transaction,
    Transition,
    ValidationFailed,
    new_transaction_id,
)
from app.core.payment_results import Deadline, PaymentResults, window_failure
from app.core.ports import Clock, PaymentGateway, ProductCatalog, StatusView, TransactionRepository
from app.core.printable import pg_error_code, printable_text, require_printable
from app.gateway.models import GatewayError, GatewayErrorKind, PgPaymentStatus
from app.metrics import TRANSACTIONS_CREATED

log = logging.getLogger("app.core")

MAX_METADATA_BYTES = 4096
# MariaDB refuses JSON nested 32 levels or deeper (its JSON columns are checked by JSON_VALID):
# buyer metadata gets well under that, so no write can fail on it.
MAX_METADATA_DEPTH = 16
MAX_ORDER_NAME_LENGTH = 100
MAX_PAYMENT_KEY_LENGTH = 200  # Toss's paymentKey is at most 200 characters
MAX_PG_MESSAGE_LENGTH = 510  # the failure_pg_message column
_AMOUNT_PATTERN = re.compile(r"[0-9]{1,12}")  # ASCII digits only, and short enough for int()
_FAILED_AT_PG = frozenset(
    {PgPaymentStatus.READY, PgPaymentStatus.ABORTED, PgPaymentStatus.EXPIRED, PgPaymentStatus.CANCELED}
)


@dataclass(frozen=True, slots=True)
class CheckoutConfig:
    public_base_url: str
    transaction_expire_minutes: int
    client_key: str
    provider: str  # the PG new transactions are paid with (a gateway provider's name)
    checkout_url: str | None = None  # a hosted payment window (the mock's) for frontends without the SDK


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
class CallbackOutcome:
    """Where a callback leaves the buyer: the success page (which polls the status, "confirming"
    until the outcome is known) or the fail page with our code, a message, and the PG's code for
    the failure when the PG gave one (a buyer's cancel and a declined card share our PAY_003)."""

    transaction_id: str | None
    failed: bool = False
    code: str | None = None  # ours (ErrorCode)
    message: str | None = None  # ours, its English text (app.messages.buyer_text has both)
    pg_code: str | None = None  # the PG's, always code-shaped (app.core.printable.pg_error_code)

    @classmethod
    def success(cls, transaction_id: str) -> CallbackOutcome:
        return cls(transaction_id)

    @classmethod
    def fail(
        cls, transaction_id: str | None, code: str, message: str, *, pg_code: str | None = None
    ) -> CallbackOutcome:
        return cls(transaction_id, failed=True, code=code, message=message, pg_code=pg_error_code(pg_code))

    @classmethod
    def of(cls, transaction: Transaction | StatusView) -> CallbackOutcome:
        """The page for a transaction as it stands."""
        if transaction.status == Status.PAYMENT_FAILED:
            return cls.fail(
                transaction.transaction_id,
                transaction.failure_code or ErrorCode.VERIFICATION_FAILED,
                transaction.failure_message or texts.PAYMENT_FAILED.en,
                pg_code=transaction.failure_pg_code,
            )
        if transaction.status == Status.CREATED:
            return cls.fail(transaction.transaction_id, ErrorCode.INVALID_STATE, texts.NOT_COMPLETED.en)
        return cls.success(transaction.transaction_id)


@dataclass(frozen=True, slots=True)
class WindowFailure:
    """A failure in the payment window, as the fail redirect reported it."""

    code: ErrorCode  # ours
    message: str  # ours, for the buyer
    pg_code: str | None  # the PG's, when the redirect carried a code-shaped one
    pg_message: str | None  # the PG's, printable and bounded
    notes: dict[str, Any]  # for the history row


class Checkout:
    def __init__(
        self,
        *,
        repository: TransactionRepository,
        catalog: ProductCatalog,
        gateway: PaymentGateway,
        results: PaymentResults,
        clock: Clock,
        config: CheckoutConfig,
    ) -> None:
        self._repo = repository
        self._catalog = catalog
        self._gateway = gateway
        self._results = results
        self._clock = clock
        self._config = config
        base = config.public_base_url.rstrip("/")
        self._success_url = f"{base}/api/payments/callback/success"
        self._fail_url = f"{base}/api/payments/callback/fail"
        self._window_prefix = f"{config.checkout_url}?{urlencode({'clientKey': config.client_key})}"

    async def issue(self, command: IssueCommand) -> IssuedTransaction:
        """Create a CREATED transaction priced by the catalog (docs/api.md, POST /api/payments/issue)."""
        if len(msgspec.json.encode(command.metadata)) > MAX_METADATA_BYTES:
            raise ValidationFailed(
                Problem("metadata", texts.JSON_TOO_LARGE.format(field="metadata", n=MAX_METADATA_BYTES))
            )
        require_printable({"orderName": command.order_name})
        if _nesting_depth(command.metadata) > MAX_METADATA_DEPTH:
            raise ValidationFailed(
                Problem("metadata", texts.JSON_TOO_DEEP.format(field="metadata", n=MAX_METADATA_DEPTH))
            )
        product = await self._catalog.get_product(command.product_type, command.product_id)
        if product is None:
            raise ProductNotFound(
                texts.PRODUCT_NOT_FOUND.format(type=command.product_type.value, id=command.product_id)
            )
        if command.amount != product.amount:
            raise AmountMismatch(
                texts.AMOUNT_DIFFERS.format(
                    amount=command.amount, product=product.product_id, price=product.amount
                ),
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
        TRANSACTIONS_CREATED.labels(product_type=transaction.product_type.value).inc()
        log.info(
            "transaction issued",
            extra={
                "transactionId": transaction.transaction_id,
                "userId": transaction.user_id,
                "amount": transaction.amount,
                "productType": transaction.product_type.value,
            },
        )
        tid = transaction.transaction_id
        # PAY_PROCESS_CANCELED arrives without orderId, so the failUrl carries our id itself.
        fail_url = f"{self._fail_url}?transactionId={tid}"
        checkout_url = None
        if self._config.checkout_url:
            # The window's query, as urlencode() writes it; its fixed parts are encoded once.
            checkout_url = (
                f"{self._window_prefix}&orderId={quote_plus(tid)}&amount={transaction.amount}"
                f"&orderName={quote_plus(transaction.order_name)}&method={quote_plus(transaction.method.value)}"
                f"&successUrl={quote_plus(self._success_url)}&failUrl={quote_plus(fail_url)}"
            )
        return IssuedTransaction(
            transaction=transaction,
            success_url=self._success_url,
            fail_url=fail_url,
            client_key=self._config.client_key,
            checkout_url=checkout_url,
        )

    # --- browser callbacks ---------------------------------------------------------------------

    async def handle_success_callback(
        self, *, payment_key: str | None, order_id: str | None, amount: str | None
    ) -> CallbackOutcome:
        """Verify S2S and confirm; returns where the browser goes next.

        Nothing the browser sends is trusted: a paymentKey is used only for a confirm (which the PG
        refuses for another order), stored only once the PG reports it for this order, and a
        callback never fails a payment the PG says is going on. The PG calls of one callback share
        a budget (CALLBACK_BUDGET_SECONDS): past it the buyer sees the "confirming" page and
        reconciliation finishes the job.
        """
        deadline = Deadline.after(self._results.callback_budget_seconds)
        if not order_id or not payment_key:
            return CallbackOutcome.fail(order_id, ErrorCode.MALFORMED, texts.CALLBACK_INCOMPLETE.en)
        if len(payment_key) > MAX_PAYMENT_KEY_LENGTH:
            # Not a key Toss issues: nothing to confirm, and nothing changes (the real callback may follow).
            return CallbackOutcome.fail(order_id, ErrorCode.MALFORMED, texts.CALLBACK_KEY_INVALID.en)
        transaction = await self._repo.get(order_id)
        if transaction is None:
            return CallbackOutcome.fail(None, ErrorCode.NOT_FOUND, texts.TRANSACTION_NOT_FOUND.en)
        if transaction.status == Status.PAYMENT_PENDING and transaction.va_account_number is None:
            claimed_for = self._clock.now() - transaction.updated_at
            if claimed_for < timedelta(seconds=self._results.callback_budget_seconds):
                # The request that claimed it is still within its budget, confirming: a duplicate
                # callback (double click, refresh) must never confirm a second time.
                return CallbackOutcome.of(transaction)
            # Pending without a known outcome: this may be the buyer's real callback after a forged
            # one claimed the transaction. The PG knows which payment belongs to this order.
            await self._results.settle_with_pg(transaction, deadline)
            return await self._outcome_now(transaction.transaction_id)
        if transaction.status != Status.CREATED:
            # Refresh, back button, double delivery: never confirm twice.
            return CallbackOutcome.of(transaction)
        now = self._clock.now()
        if transaction.is_expired(now):
            await self._results.fail_created(
                transaction, ErrorCode.EXPIRED, texts.TRANSACTION_EXPIRED.en, pg_code=None
            )
            return await self._outcome_now(transaction.transaction_id)
        if amount is None or not _AMOUNT_PATTERN.fullmatch(amount) or int(amount) != transaction.amount:
            # Tampered amount: refuse before the PG's confirm is ever called, and fail the payment
            # only when the key is the PG's own for this order (not someone else's forged callback).
            if await self._results.pg_payment_key(transaction, deadline) == payment_key:
                await self._results.fail_created(
                    transaction,
                    ErrorCode.VERIFICATION_FAILED,
                    texts.PAID_AMOUNT_MISMATCH.en,  # the callback's amount is in the history
                    pg_code=None,
                    metadata={"callbackAmount": amount},
                )
                return await self._outcome_now(transaction.transaction_id)
            log.warning(
                "callback with a wrong amount and a foreign paymentKey ignored",
                extra={"transactionId": transaction.transaction_id},
            )
            return CallbackOutcome.fail(
                transaction.transaction_id,
                ErrorCode.VERIFICATION_FAILED,
                texts.NOT_VERIFIED.en,
            )

        # The callback's paymentKey is not stored: only the PG's own key for this order is.
        claimed = await self._repo.apply(
            transaction.transaction_id,
            Transition.claim_for_confirm(reconcile_at=self._results.first_reconcile(now)),
            now=now,
        )
        if not claimed:
            return await self._outcome_now(transaction.transaction_id)
        await self._results.confirm_claimed(transaction, payment_key, deadline)
        return await self._outcome_now(transaction.transaction_id)

    async def handle_fail_callback(
        self, *, transaction_id: str | None, order_id: str | None, code: str | None, message: str | None
    ) -> CallbackOutcome:
        """The PG's failure redirect: 10→41 with our code and message and the PG's code and message
        beside them; returns where the browser goes next.

        Anyone can open this URL with someone else's transaction id, so the PG is asked first: a
        payment it reports as authenticated or paid is not failed (a paid one is applied).
        """
        tid = transaction_id or order_id
        if not tid:
            return CallbackOutcome.fail(None, ErrorCode.MALFORMED, texts.CALLBACK_NAMES_NO_TRANSACTION.en)
        transaction = await self._repo.get(tid)
        if transaction is None:
            return CallbackOutcome.fail(None, ErrorCode.NOT_FOUND, texts.TRANSACTION_NOT_FOUND.en)
        if transaction.status != Status.CREATED:
            return await self._outcome_now(tid)
        failure = self._window_failure(transaction.provider, code, message)
        verdict = await self._pg_view_of_failure(transaction)
        if verdict == "fail":
            await self._results.fail_created(
                transaction,
                failure.code,
                failure.message,
                pg_code=failure.pg_code,
                pg_message=failure.pg_message,
                metadata=failure.notes,
            )
            return await self._outcome_now(tid)
        if verdict == "paid":
            return await self._outcome_now(tid)
        # "going on" or "unknown": nothing changes; the buyer's real redirect or the expiry decides.
        return CallbackOutcome.fail(tid, failure.code, failure.message, pg_code=failure.pg_code)

    def window_failure_page(
        self, transaction_id: str, *, code: str | None, message: str | None
    ) -> CallbackOutcome:
        """The fail page for a fail redirect that cannot be checked now (the database is away and
        the callback is replayed later): what its code means, nothing stored."""
        failure = self._window_failure(self._config.provider, code, message)
        return CallbackOutcome.fail(transaction_id, failure.code, failure.message, pg_code=failure.pg_code)

    def _window_failure(self, provider: str, code: str | None, message: str | None) -> WindowFailure:
        """What a fail redirect's `code` and `message` (the browser's text, untrusted) mean: our
        code and message by what the PG's code means, the PG's code only when it has a code's
        shape, its message printable and bounded. Anything else in `code` is noted in the history."""
        pg_code = pg_error_code(code)
        kind = None if pg_code is None else self._gateway.window_failure_kind(provider=provider, code=pg_code)
        our_code, our_message = window_failure(kind)
        notes = {"callbackCode": printable_text(code, 64)} if code and pg_code is None else {}
        return WindowFailure(
            code=our_code,
            message=our_message,
            pg_code=pg_code,
            pg_message=printable_text(message or "", MAX_PG_MESSAGE_LENGTH) or None,
            notes=notes,
        )

    async def _pg_view_of_failure(self, transaction: Transaction) -> str:
        """What the PG says of a CREATED transaction whose fail redirect arrived: "fail" (no payment
        or a failed one), "paid" (applied here), "going on" or "unknown" (PG unreachable)."""
        tid = transaction.transaction_id
        try:
            payment = await self._results.find_payment(
                transaction, Deadline.after(self._results.callback_budget_seconds)
            )
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
            pg_status=payment.status.value, reconcile_at=self._results.first_reconcile(now)
        )
        if await self._repo.apply(tid, claim, now=now):
            await self._results.apply_pg_payment(transaction, payment)
        return "paid"

    async def _outcome_now(self, transaction_id: str) -> CallbackOutcome:
        # The status view holds all the page needs: the poll's one indexed read of a few columns,
        # from the database (another process's write may have raced ours), not the whole row.
        view = await self._repo.current_status_view(transaction_id)
        if view is None:
            return CallbackOutcome.fail(None, ErrorCode.NOT_FOUND, texts.TRANSACTION_NOT_FOUND.en)
        return CallbackOutcome.of(view)


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
