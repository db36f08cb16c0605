"""Toss's webhook deliveries turned into neutral WebhookNotices: body shapes, header names and
Toss's own rules about them live here, not in Core.

Two documented shapes: PAYMENT_STATUS_CHANGED (`{"eventType", "data": {orderId, paymentKey,
status, ...}}`) and the flat DEPOSIT_CALLBACK (`{orderId, status, secret, ...}`, no eventType).
Toss does not sign payment webhooks; when TOSS_WEBHOOK_SECRET is set (a signing proxy in front),
`X-Toss-Signature` must be the hex HMAC-SHA256 of the raw body.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from app import messages as texts
from app.gateway.models import WebhookNotice, WebhookRefused

TRANSMISSION_ID_HEADER = "tosspayments-webhook-transmission-id"
RETRIED_COUNT_HEADER = "tosspayments-webhook-transmission-retried-count"
_RETRIED_COUNT_NAME = "TossPayments-Webhook-Transmission-Retried-Count"  # as Toss spells it
SIGNATURE_HEADER = "x-toss-signature"
_RETRIED_COUNT = re.compile(r"[0-9]{1,9}")  # ASCII digits only, and within the column's INT


@dataclass(frozen=True, slots=True)
class TossNotice:
    """What a delivery's body claims (PAYMENT_STATUS_CHANGED or DEPOSIT_CALLBACK shape)."""

    event_type: str
    order_id: str | None
    payment_key: str | None
    status: str | None
    secret: str | None


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def parse_toss_webhook(raw: bytes) -> TossNotice:
    """Both documented shapes; anything else is a malformed delivery (WebhookRefused)."""
    try:
        body = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        raise WebhookRefused(texts.WEBHOOK_NOT_JSON, field="body") from None
    if not isinstance(body, dict):
        raise WebhookRefused(texts.WEBHOOK_NOT_OBJECT, field="body")
    event_type = body.get("eventType")
    if event_type == "PAYMENT_STATUS_CHANGED":
        data = body.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("orderId"), str):
            raise WebhookRefused(
                texts.WEBHOOK_FIELD_REQUIRED.format(event=event_type, field="data.orderId"),
                field="data.orderId",
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
            raise WebhookRefused(
                texts.WEBHOOK_FIELD_REQUIRED.format(event="DEPOSIT_CALLBACK", field="orderId, status"),
                field="orderId",
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
    raise WebhookRefused(texts.WEBHOOK_UNKNOWN_SHAPE, field="eventType")


def signature_is_valid(secret: str, raw: bytes, signature: str | None) -> bool:
    """X-Toss-Signature: hex HMAC-SHA256 of the raw body (the original design's rule)."""
    if not signature:
        return False
    expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    # bytes: compare_digest refuses str with non-ASCII characters (a TypeError, not a mismatch)
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


def retried_count(headers: Mapping[str, str]) -> int:
    """Toss's retry counter of a delivery: 0 when absent; anything but plain digits is malformed."""
    raw = headers.get(RETRIED_COUNT_HEADER)
    if raw is None:
        return 0
    if not _RETRIED_COUNT.fullmatch(raw):
        raise WebhookRefused(
            texts.WEBHOOK_RETRY_COUNT_INVALID.format(field=_RETRIED_COUNT_NAME),
            field=_RETRIED_COUNT_NAME,
            location="header",
        )
    return int(raw)


class TossWebhooks:
    """Reads Toss deliveries (headers lower-cased) into WebhookNotices."""

    provider = "TOSS"

    def __init__(self, signing_secret: str | None = None) -> None:
        self._signing_secret = signing_secret

    def read(self, raw: bytes, headers: Mapping[str, str]) -> WebhookNotice:
        if self._signing_secret and not signature_is_valid(
            self._signing_secret, raw, headers.get(SIGNATURE_HEADER)
        ):
            raise WebhookRefused(texts.WEBHOOK_SIGNATURE_INVALID, forged=True)
        notice = parse_toss_webhook(raw)
        if notice.event_type == "DEPOSIT_CALLBACK" and notice.secret is None:
            # Toss always sends the virtual account's secret: without one the delivery is forged.
            raise WebhookRefused(texts.WEBHOOK_SECRET_MISSING, forged=True)
        transmission_id = headers.get(TRANSMISSION_ID_HEADER) or "sha256:" + hashlib.sha256(raw).hexdigest()
        return WebhookNotice(
            provider=self.provider,
            transmission_id=transmission_id[:100],
            event_type=notice.event_type,
            order_id=notice.order_id,
            payment_key=notice.payment_key,
            status=notice.status,
            secret=notice.secret,
            retried_count=retried_count(headers),
        )
