"""Toss webhooks: record every delivery, verify, then let a job re-fetch the truth S2S.

The body is never trusted: it only says which payment to look at. The job asks the PG for the
payment and applies the transition its *current* status implies, so duplicates, retries and
out-of-order deliveries are no-ops. Unknown transactions get 200 and a log line: a non-200
would make Toss retry the same delivery for almost four days. Anyone can post a delivery (Toss
does not sign them), so each costs at most one lookup: when the PG has no such payment the
delivery ends IGNORED instead of being retried.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from app.core.domain import ErrorCode, PaymentError, Status, ValidationFailed
from app.core.payment_results import PaymentResults
from app.core.ports import (
    Clock,
    PaymentGateway,
    ProvisioningQueue,
    TransactionRepository,
    WebhookEvent,
    WebhookEventRepository,
)
from app.core.refunds import RefundService
from app.gateway.models import GatewayError, GatewayErrorKind, PgPaymentStatus

log = logging.getLogger("app.core.webhooks")

RETRIED_COUNT_HEADER = "tosspayments-webhook-transmission-retried-count"
_RETRIED_COUNT = re.compile(r"[0-9]{1,9}")  # ASCII digits only, and within the column's INT


class WebhookNotSettled(Exception):
    """The delivery cannot be applied yet (a grant or our own refund is under way): retry later."""


class WebhookRejected(PaymentError):
    code, default_message = ErrorCode.UNAUTHENTICATED, "The webhook's signature or secret is not valid."


@dataclass(frozen=True, slots=True)
class TossNotice:
    """What a delivery claims (PAYMENT_STATUS_CHANGED or DEPOSIT_CALLBACK shape)."""

    event_type: str
    order_id: str | None
    payment_key: str | None
    status: str | None
    secret: str | None


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def parse_toss_webhook(raw: bytes) -> TossNotice:
    """Both documented shapes; anything else is a malformed delivery (PAY_000)."""
    try:
        body = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        raise ValidationFailed("The webhook body is not JSON.") from None
    if not isinstance(body, dict):
        raise ValidationFailed("The webhook body must be a JSON object.")
    event_type = body.get("eventType")
    if event_type == "PAYMENT_STATUS_CHANGED":
        data = body.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("orderId"), str):
            raise ValidationFailed(
                "PAYMENT_STATUS_CHANGED needs data.orderId.", details=[{"field": "data.orderId"}]
            )
        return TossNotice(
            event_type=event_type,
            order_id=_text(data.get("orderId"), 64),
            payment_key=_text(data.get("paymentKey"), 200),
            status=_text(data.get("status"), 30),
            secret=_text(data.get("secret"), 64),
        )
    if event_type in (None, "DEPOSIT_CALLBACK"):
        # Toss's documented DEPOSIT_CALLBACK is flat and has no eventType.
        nested = body.get("data")
        fields: dict[str, Any] = nested if isinstance(nested, dict) else body
        if not isinstance(fields.get("orderId"), str) or not isinstance(fields.get("status"), str):
            raise ValidationFailed(
                "DEPOSIT_CALLBACK needs orderId and status.", details=[{"field": "orderId"}]
            )
        return TossNotice(
            event_type="DEPOSIT_CALLBACK",
            order_id=_text(fields.get("orderId"), 64),
            payment_key=None,
            status=_text(fields.get("status"), 30),
            secret=_text(fields.get("secret"), 64),
        )
    if isinstance(event_type, str):
        return TossNotice(
            event_type=event_type[:40], order_id=None, payment_key=None, status=None, secret=None
        )
    raise ValidationFailed("Unknown webhook shape.")


def signature_is_valid(secret: str, raw: bytes, signature: str | None) -> bool:
    """X-Toss-Signature: hex HMAC-SHA256 of the raw body (the original design's rule)."""
    if not signature:
        return False
    expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    # bytes: compare_digest refuses str with non-ASCII characters (a TypeError, not a mismatch)
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


def retried_count(headers: Mapping[str, str]) -> int:
    """Toss's retry counter of a delivery: 0 when absent; anything but plain digits is PAY_000."""
    raw = headers.get(RETRIED_COUNT_HEADER)
    if raw is None:
        return 0
    if not _RETRIED_COUNT.fullmatch(raw):
        raise ValidationFailed(
            f"{RETRIED_COUNT_HEADER} must be a count (1 to 9 ASCII digits).",
            details=[{"field": RETRIED_COUNT_HEADER, "reason": "1 to 9 ASCII digits"}],
        )
    return int(raw)


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
        signing_secret: str | None,
    ) -> None:
        self._events = events
        self._results = results
        self._transactions = transactions
        self._refunds = refunds
        self._gateway = gateway
        self._queue = queue
        self._clock = clock
        self._signing_secret = signing_secret

    async def receive(self, raw: bytes, headers: Mapping[str, str]) -> str:
        """Verify and record a delivery, queue its processing; returns the outcome to answer."""
        if self._signing_secret and not signature_is_valid(
            self._signing_secret, raw, headers.get("x-toss-signature")
        ):
            log.warning("webhook with a bad or missing X-Toss-Signature refused")
            raise WebhookRejected("X-Toss-Signature is missing or wrong.")
        notice = parse_toss_webhook(raw)
        if notice.event_type == "DEPOSIT_CALLBACK" and notice.secret is None:
            # Toss always sends the virtual account's secret: without one the delivery is forged.
            # Refused before it is recorded, so it costs no row, no job and no lookup.
            log.warning("DEPOSIT_CALLBACK without a secret refused", extra={"orderId": notice.order_id})
            raise WebhookRejected("A DEPOSIT_CALLBACK must carry the virtual account's secret.")
        now = self._clock.now()
        transmission_id = headers.get("tosspayments-webhook-transmission-id") or (
            "sha256:" + hashlib.sha256(raw).hexdigest()
        )
        event_id, outcome = await self._events.record(
            WebhookEvent(
                provider="TOSS",
                transmission_id=transmission_id[:100],
                event_type=notice.event_type,
                order_id=notice.order_id,
                payment_key=notice.payment_key,
                pg_status=notice.status,
                secret=notice.secret,
                retried_count=retried_count(headers),
                raw_body=raw.decode("utf-8", errors="replace"),
                received_at=now,
            )
        )
        if outcome != "RECEIVED":
            return "DUPLICATE"  # this delivery was processed already
        if notice.order_id is None:
            await self._events.finish(
                event_id, outcome="IGNORED", detail=f"{notice.event_type} not handled", now=now
            )
            return "IGNORED"
        transaction = await self._transactions.get(notice.order_id)
        if transaction is None:
            log.warning("webhook for an unknown transaction", extra={"orderId": notice.order_id})
            await self._events.finish(event_id, outcome="IGNORED", detail="unknown transaction", now=now)
            return "IGNORED"
        if (
            notice.secret
            and transaction.va_secret
            and not _secrets_match(notice.secret, transaction.va_secret)
        ):
            await self._events.finish(event_id, outcome="REJECTED", detail="secret mismatch", now=now)
            log.warning("webhook secret mismatch", extra={"transactionId": transaction.transaction_id})
            raise WebhookRejected("The webhook's secret does not match the payment.")
        await self._queue.enqueue_webhook(event_id)
        return "QUEUED"

    async def process(self, event_id: int) -> str:
        """The job: re-fetch the payment S2S and apply what its current status implies."""
        event = await self._events.get(event_id)
        if event is None or event.order_id is None:
            return "missing"
        notice = parse_toss_webhook(event.raw_body.encode())
        transaction = await self._transactions.get(event.order_id)
        if transaction is None:
            return await self._finish(event_id, "IGNORED", "unknown transaction")
        try:
            payment = await self._gateway.find_payment(provider=transaction.provider, order_id=event.order_id)
        except GatewayError as error:
            if error.kind is not GatewayErrorKind.NOT_FOUND:
                raise  # the job is retried until the PG answers
            # The PG has no payment for this order (a forged delivery, or a window never used):
            # nothing to apply, and asking again would only repeat the lookup.
            log.warning("webhook for an order the PG does not know", extra={"transactionId": event.order_id})
            return await self._finish(event_id, "IGNORED", "the PG has no payment for this order")
        if notice.secret and payment.secret and not _secrets_match(notice.secret, payment.secret):
            log.warning("webhook secret differs from the PG's", extra={"transactionId": event.order_id})
            return await self._finish(event_id, "REJECTED", "secret differs from the PG's")
        before = transaction.status
        changed = False
        if before == Status.PAYMENT_PENDING:
            changed = (await self._results.apply_pg_payment(transaction, payment)).changed
        elif before == Status.CREATED and payment.status in (
            PgPaymentStatus.ABORTED,
            PgPaymentStatus.EXPIRED,
        ):
            changed = await self._results.fail_created_by_pg(transaction, payment.status.value)
        elif payment.status in (PgPaymentStatus.CANCELED, PgPaymentStatus.PARTIAL_CANCELED):
            if before == Status.PROVISION_PENDING:
                # The grant is under way: decide once it settled (50 or 51), in a later try.
                raise WebhookNotSettled(f"{event.order_id} is granting; the cancel is applied after")
            # Cancelled at the PG (an operator in its console): the same refund path as ours.
            changed = await self._refunds.reflect_pg_cancels(transaction, payment) > 0
        # Otherwise settled already: a late or duplicate delivery changes nothing. Only the
        # delivery whose guarded write won is APPLIED, however many race.
        outcome = "APPLIED" if changed else "NO_CHANGE"
        return await self._finish(event_id, outcome, f"PG {payment.status.value} while {before.name}")

    async def _finish(self, event_id: int, outcome: str, detail: str) -> str:
        await self._events.finish(event_id, outcome=outcome, detail=detail, now=self._clock.now())
        return outcome
