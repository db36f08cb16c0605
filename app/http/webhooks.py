"""/webhooks/payments/toss: Toss's deliveries, public and limited per source address."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, post
from litestar.params import Body

from app.client_address import request_source
from app.core.domain import ErrorCode, PaymentError
from app.core.webhooks import WebhookService
from app.gateway.toss_webhooks import TossWebhooks
from app.http.requests import MAX_BODY_BYTES, RawBody
from app.metrics import WEBHOOK_DELIVERIES
from app.ratelimit import RateLimited, RateLimiter


@dataclass(frozen=True, slots=True)
class WebhookPieces:
    """What the webhook endpoint needs, put in app.state by the composition root."""

    service: WebhookService
    rate_limiter: RateLimiter


class WebhookController(Controller):
    path = "/webhooks/payments"
    tags = ["webhooks"]

    @post(
        "/toss",
        status_code=200,
        summary="Toss webhooks (PAYMENT_STATUS_CHANGED, DEPOSIT_CALLBACK)",
        description="Public (Toss does not sign payment webhooks): limited per source address, "
        "429 with Retry-After above the limit, which Toss retries later.",
        request_max_body_size=MAX_BODY_BYTES,
        # The bytes as sent: the gateway checks the signature over them, then decodes them once.
        dto=RawBody[dict[str, Any]],
    )
    async def toss(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[
            bytes,
            Body(description="Toss's body, as sent; only used to know which payment to re-fetch S2S"),
        ],
    ) -> dict[str, str]:
        pieces: WebhookPieces = request.app.state.webhooks  # not dependencies: no task group
        webhook_service, rate_limiter = pieces.service, pieces.rate_limiter
        try:
            await rate_limiter.hit(request_source(request), "webhook")
        except RateLimited:
            WEBHOOK_DELIVERIES.labels(outcome="RATE_LIMITED").inc()
            raise
        try:
            outcome = await webhook_service.receive(TossWebhooks.provider, data, request.headers)
        except PaymentError as error:
            WEBHOOK_DELIVERIES.labels(
                outcome="REJECTED" if error.code == ErrorCode.UNAUTHENTICATED else "MALFORMED"
            ).inc()
            raise
        if outcome in ("QUEUED", "IGNORED"):
            WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()
        return {"outcome": outcome}
