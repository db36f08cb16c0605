"""PG webhooks: record every delivery, verify, then let a job re-fetch the truth S2S.

The gateway reads a PG's deliveries (body shapes, headers, signatures) into neutral notices.

The body is never trusted: it only says which payment to look at. The job asks the PG for the
payment and applies the transition its *current* status implies, so duplicates, retries and
out-of-order deliveries are no-ops. Unknown transactions get 200 and a log line: a non-200
would make Toss retry the same delivery for almost four days. Anyone can post a delivery (Toss
does not sign them), so each costs at most one lookup: when the PG has no such payment the
delivery ends IGNORED instead of being retried.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping

from app import messages as texts
from app.core.domain import ErrorCode, PaymentError, Problem, Status, ValidationFailed
from app.core.payment_results import PaymentResults
from app.core.ports import (
    Clock,
    PaymentGateway,
    ProvisioningQueue,
    TransactionRepository,
    WebhookEvent,
    WebhookEventRepository,
    WebhookOutcome,
)
from app.core.refunds import RefundService
from app.gateway.models import GatewayError, GatewayErrorKind, PgPaymentStatus, WebhookNotice, WebhookRefused
from app.metrics import WEBHOOK_DELIVERIES

log = logging.getLogger("app.core.webhooks")


class WebhookNotSettled(Exception):
    """The delivery cannot be applied yet (a grant or our own refund is under way): retry later."""


class WebhookRejected(PaymentError):
    code = ErrorCode.UNAUTHENTICATED


def read_notice(
    gateway: PaymentGateway, provider: str, raw: bytes, headers: Mapping[str, str]
) -> WebhookNotice:
    """A delivery read by the gateway, its refusal as the API's error: a forged one is AUTH_001
    (refused before it is recorded: no row, no job, no lookup), a malformed one PAY_000."""
    try:
        return gateway.read_webhook(provider=provider, raw=raw, headers=headers)
    except WebhookRefused as refused:
        if refused.forged:
            log.warning("webhook refused: %s", refused.message, extra={"provider": provider})
            raise WebhookRejected(refused.text) from None
        problems = [Problem(refused.field, refused.text, refused.location)] if refused.field else []
        raise ValidationFailed(*problems, text=refused.text) from None


def _secrets_match(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class WebhookService:
    def __init__(
        self,
        *,
        events: WebhookEventRepository,
        results: PaymentResults,
        transactions: TransactionRepository,
        refunds: RefundService,
        gateway: PaymentGateway,
        queue: ProvisioningQueue,
        clock: Clock,
    ) -> None:
        self._events = events
        self._results = results
        self._transactions = transactions
        self._refunds = refunds
        self._gateway = gateway
        self._queue = queue
        self._clock = clock

    async def receive(self, provider: str, raw: bytes, headers: Mapping[str, str]) -> str:
        """Verify and record a delivery, queue its processing; returns the outcome to answer."""
        notice = read_notice(self._gateway, provider, raw, headers)
        now = self._clock.now()
        event_id, outcome = await self._events.record(
            WebhookEvent(
                provider=notice.provider,
                transmission_id=notice.transmission_id,
                event_type=notice.event_type,
                order_id=notice.order_id,
                payment_key=notice.payment_key,
                pg_status=notice.status,
                secret=notice.secret,
                retried_count=notice.retried_count,
                raw_body=raw.decode("utf-8", errors="replace"),
                received_at=now,
            )
        )
        if outcome != WebhookOutcome.RECEIVED:
            WEBHOOK_DELIVERIES.labels(outcome=WebhookOutcome.DUPLICATE).inc()
            return WebhookOutcome.DUPLICATE  # this delivery was processed already
        if notice.order_id is None:
            await self._events.finish(
                event_id, outcome=WebhookOutcome.IGNORED, detail=f"{notice.event_type} not handled", now=now
            )
            WEBHOOK_DELIVERIES.labels(outcome=WebhookOutcome.IGNORED).inc()
            return WebhookOutcome.IGNORED
        transaction = await self._transactions.get(notice.order_id)
        if transaction is None:
            log.warning("webhook for an unknown transaction", extra={"orderId": notice.order_id})
            await self._events.finish(
                event_id, outcome=WebhookOutcome.IGNORED, detail="unknown transaction", now=now
            )
            WEBHOOK_DELIVERIES.labels(outcome=WebhookOutcome.IGNORED).inc()
            return WebhookOutcome.IGNORED
        if (
            notice.secret
            and transaction.va_secret
            and not _secrets_match(notice.secret, transaction.va_secret)
        ):
            await self._events.finish(
                event_id, outcome=WebhookOutcome.REJECTED, detail="secret mismatch", now=now
            )
            WEBHOOK_DELIVERIES.labels(outcome=WebhookOutcome.REJECTED).inc()
            log.warning("webhook secret mismatch", extra={"transactionId": transaction.transaction_id})
            raise WebhookRejected(texts.WEBHOOK_SECRET_MISMATCH)
        await self._queue.enqueue_webhook(event_id)
        return WebhookOutcome.QUEUED

    async def process(self, event_id: int) -> str:
        """The job: re-fetch the payment S2S and apply what its current status implies."""
        event = await self._events.get(event_id)
        if event is None or event.order_id is None:
            return "missing"
        transaction = await self._transactions.get(event.order_id)
        if transaction is None:
            return await self._finish(event_id, WebhookOutcome.IGNORED, "unknown transaction")
        if _cannot_change(transaction.status, event.pg_status):
            # What the delivery claims would change nothing even if it were true (a paid order's
            # DONE, the usual echo of our own confirm): no need to ask the PG. A claimed cancel is
            # always looked up, and an order still open (10, 30) always asks what the PG says.
            return await self._finish(
                event_id,
                WebhookOutcome.NO_CHANGE,
                f"claims {event.pg_status} while {transaction.status.name}; not looked up",
            )
        try:
            payment = await self._gateway.find_payment(provider=transaction.provider, order_id=event.order_id)
        except GatewayError as error:
            if error.kind is not GatewayErrorKind.NOT_FOUND:
                raise  # the job is retried until the PG answers
            # The PG has no payment for this order (a forged delivery, or a window never used):
            # nothing to apply, and asking again would only repeat the lookup.
            log.warning("webhook for an order the PG does not know", extra={"transactionId": event.order_id})
            return await self._finish(
                event_id, WebhookOutcome.IGNORED, "the PG has no payment for this order"
            )
        if event.secret and payment.secret and not _secrets_match(event.secret, payment.secret):
            log.warning("webhook secret differs from the PG's", extra={"transactionId": event.order_id})
            return await self._finish(event_id, WebhookOutcome.REJECTED, "secret differs from the PG's")
        before = transaction.status
        changed = False
        if before == Status.PAYMENT_PENDING:
            changed = (await self._results.apply_pg_payment(transaction, payment)).changed
        elif before == Status.CREATED and payment.status in (
            PgPaymentStatus.ABORTED,
            PgPaymentStatus.EXPIRED,
        ):
            changed = await self._results.fail_created_by_pg(transaction, payment)
        elif payment.status in (PgPaymentStatus.CANCELED, PgPaymentStatus.PARTIAL_CANCELED):
            if before in (Status.PAYMENT_SUCCESS, Status.PROVISION_PENDING):
                # Paid and about to be granted (40 → 45 → 50/51): decide once the grant settled, in a
                # later try, so a partial cancel is revoked from what was really granted.
                raise WebhookNotSettled(f"{event.order_id} is granting; the cancel is applied after")
            # Cancelled at the PG (an operator in its console): the same refund path as ours.
            changed = await self._refunds.reflect_pg_cancels(transaction, payment) > 0
        # Otherwise settled already: a late or duplicate delivery changes nothing. Only the
        # delivery whose guarded write won is APPLIED, however many race.
        outcome = WebhookOutcome.APPLIED if changed else WebhookOutcome.NO_CHANGE
        return await self._finish(event_id, outcome, f"PG {payment.status.value} while {before.name}")

    async def _finish(self, event_id: int, outcome: str, detail: str) -> str:
        await self._events.finish(event_id, outcome=outcome, detail=detail, now=self._clock.now())
        WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()
        return outcome


# The PG statuses a delivery may claim that change nothing for an order past 10 and 30: only a
# cancel does (an operator's refund in the PG's console), and an unknown or missing claim is
# looked up like a cancel.
_NOTHING_TO_APPLY_ONCE_SETTLED = frozenset(
    {
        PgPaymentStatus.READY.value,
        PgPaymentStatus.IN_PROGRESS.value,
        PgPaymentStatus.WAITING_FOR_DEPOSIT.value,
        PgPaymentStatus.DONE.value,
        PgPaymentStatus.ABORTED.value,
        PgPaymentStatus.EXPIRED.value,
    }
)


def _cannot_change(status: Status, claimed_pg_status: str | None) -> bool:
    """Whether process() would end NO_CHANGE whatever the PG answers, for a delivery that claims
    `claimed_pg_status` (untrusted: only ever a reason to skip a lookup, never to write)."""
    if status in (Status.CREATED, Status.PAYMENT_PENDING):
        return False
    return claimed_pg_status in _NOTHING_TO_APPLY_ONCE_SETTLED
