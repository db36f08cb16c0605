"""GatewayService: Core's one entry into the payment gateways (PGs), whatever the provider.

It picks the provider adapter by name and applies the normalization rules that hold for every PG:
a repeated confirm that the PG calls "already processed" is our own earlier confirm when the
payment matches, and a refund of a payment that is already cancelled counts as done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Final, Protocol

from app import messages as texts
from app.gateway.models import (
    GatewayError,
    GatewayErrorKind,
    PaymentInfo,
    PgPaymentStatus,
    RefundAccount,
    RefundResult,
    WebhookNotice,
    WebhookRefused,
)
from app.metrics import PG_REQUEST_SECONDS

logger = logging.getLogger("app.gateway")

# statuses a successful confirm leaves a payment in
_CONFIRMED_STATUSES: Final = frozenset({PgPaymentStatus.DONE, PgPaymentStatus.WAITING_FOR_DEPOSIT})
_CANCELED_STATUSES: Final = frozenset({PgPaymentStatus.CANCELED, PgPaymentStatus.PARTIAL_CANCELED})


class PaymentProvider(Protocol):
    """One PG adapter (TossClient today; KakaoPay, NaverPay later). Failures raise GatewayError."""

    @property
    def name(self) -> str:
        """The provider's registry name, e.g. "TOSS"."""
        ...

    @property
    def confirm_window(self) -> timedelta:
        """How long an authenticated payment stays confirmable at this PG."""
        ...

    def window_failure_kind(self, code: str) -> GatewayErrorKind:
        """What the code of the payment window's fail redirect means."""
        ...

    async def confirm(
        self, *, payment_key: str, order_id: str, amount: int, idempotency_key: str
    ) -> PaymentInfo:
        """Approve an authenticated payment; the idempotency key makes retries safe."""
        ...

    async def get_payment(self, payment_key: str) -> PaymentInfo:
        """Look a payment up by the PG's payment key."""
        ...

    async def find_payment_by_order_id(self, order_id: str) -> PaymentInfo:
        """Look a payment up by our order id (the transaction id)."""
        ...

    async def cancel(
        self,
        *,
        payment_key: str,
        reason: str,
        amount: int | None,
        idempotency_key: str,
        refund_account: RefundAccount | None = None,
    ) -> RefundResult:
        """Cancel a payment, in full when `amount` is None (to `refund_account` for a paid VA)."""
        ...


class WebhookReader(Protocol):
    """One PG's webhook deliveries, read into neutral notices (refused with WebhookRefused)."""

    provider: str

    def read(self, raw: bytes, headers: Mapping[str, str]) -> WebhookNotice: ...


class GatewayService:
    """Confirms, looks up and refunds payments through the named provider, results normalized."""

    def __init__(self, providers: Iterable[PaymentProvider], webhooks: Iterable[WebhookReader] = ()) -> None:
        self._providers: dict[str, PaymentProvider] = {}
        for provider in providers:
            if provider.name in self._providers:
                raise ValueError(f"two payment providers are named {provider.name!r}")
            self._providers[provider.name] = provider
        self._webhooks = {reader.provider: reader for reader in webhooks}

    def read_webhook(self, *, provider: str, raw: bytes, headers: Mapping[str, str]) -> WebhookNotice:
        """A delivery of `provider`'s webhooks as a neutral notice; WebhookRefused when malformed
        or forged."""
        reader = self._webhooks.get(provider)
        if reader is None:
            raise WebhookRefused(texts.WEBHOOK_UNKNOWN_PROVIDER)
        return reader.read(raw, headers)

    def confirm_window(self, provider: str) -> timedelta:
        return self._provider(provider).confirm_window

    def window_failure_kind(self, *, provider: str, code: str) -> GatewayErrorKind:
        return self._provider(provider).window_failure_kind(code)

    @property
    def provider_names(self) -> tuple[str, ...]:
        """The names of the registered providers."""
        return tuple(self._providers)

    async def confirm_payment(
        self, *, provider: str, payment_key: str, order_id: str, amount: int, idempotency_key: str
    ) -> PaymentInfo:
        """Confirm (approve) a payment the buyer authenticated, server to server.

        Returns the payment as the PG reports it: DONE, or WAITING_FOR_DEPOSIT for a virtual
        account. When the PG says the payment was already processed, it is looked up by order id
        and returned if it is this very payment (same payment key and amount) in a confirmed
        state — a confirm we made before; otherwise the ALREADY_PROCESSED error is raised.

        Raises GatewayError; `outcome_unknown` errors mean: ask the PG again before deciding.
        """
        pg = self._provider(provider)
        started = time.perf_counter()
        try:
            try:
                payment = await pg.confirm(
                    payment_key=payment_key,
                    order_id=order_id,
                    amount=amount,
                    idempotency_key=idempotency_key,
                )
            except GatewayError as error:
                if error.kind is not GatewayErrorKind.ALREADY_PROCESSED:
                    raise
                payment = await self._earlier_confirm(
                    pg, error, payment_key=payment_key, order_id=order_id, amount=amount
                )
        except GatewayError as error:
            _log_failure("confirm", provider, started, error, order_id=order_id, payment_key=payment_key)
            raise
        _log_success("confirm", provider, started, payment)
        return payment

    async def get_payment(self, *, provider: str, payment_key: str) -> PaymentInfo:
        """The payment with this PG payment key, as the PG reports it now (S2S, never the browser)."""
        pg = self._provider(provider)
        started = time.perf_counter()
        try:
            payment = await pg.get_payment(payment_key)
        except GatewayError as error:
            _log_failure("get_payment", provider, started, error, order_id=None, payment_key=payment_key)
            raise
        _log_success("get_payment", provider, started, payment)
        return payment

    async def find_payment(self, *, provider: str, order_id: str) -> PaymentInfo:
        """The payment for our order id, as the PG reports it now; NOT_FOUND if the PG has none.

        This is how an unknown outcome (a confirm that timed out) is resolved.
        """
        pg = self._provider(provider)
        started = time.perf_counter()
        try:
            payment = await pg.find_payment_by_order_id(order_id)
        except GatewayError as error:
            _log_failure("find_payment", provider, started, error, order_id=order_id, payment_key=None)
            raise
        _log_success("find_payment", provider, started, payment)
        return payment

    async def cancel_payment(
        self,
        *,
        provider: str,
        payment_key: str,
        reason: str,
        amount: int | None,
        idempotency_key: str,
        refund_account: RefundAccount | None = None,
    ) -> RefundResult:
        """Refund a payment through the PG: in full when `amount` is None, else that many KRW.

        When the PG says the payment is already cancelled and a lookup confirms it (CANCELED or
        PARTIAL_CANCELED), returns `RefundResult(already_canceled=True)` — the refund is done —
        with the total cancelled so far and the payment's last transaction key.

        Raises GatewayError; `outcome_unknown` errors mean: ask the PG again before deciding.
        """
        pg = self._provider(provider)
        started = time.perf_counter()
        try:
            try:
                refund = await pg.cancel(
                    payment_key=payment_key,
                    reason=reason,
                    amount=amount,
                    idempotency_key=idempotency_key,
                    refund_account=refund_account,
                )
            except GatewayError as error:
                if error.kind is not GatewayErrorKind.ALREADY_CANCELED:
                    raise
                refund = await self._earlier_cancel(pg, error, payment_key=payment_key)
        except GatewayError as error:
            _log_failure("cancel", provider, started, error, order_id=None, payment_key=payment_key)
            raise
        _log_success(
            "cancel",
            provider,
            started,
            refund.payment,
            detail=f"canceled={refund.canceled_amount} already_canceled={refund.already_canceled}",
        )
        return refund

    def _provider(self, name: str) -> PaymentProvider:
        provider = self._providers.get(name)
        if provider is None:
            known = ", ".join(sorted(self._providers)) or "none"
            raise GatewayError(
                GatewayErrorKind.MISCONFIGURED,
                "UNKNOWN_PROVIDER",
                f"no payment provider named {name!r} (registered: {known})",
            )
        return provider

    @staticmethod
    async def _earlier_confirm(
        pg: PaymentProvider, error: GatewayError, *, payment_key: str, order_id: str, amount: int
    ) -> PaymentInfo:
        """The payment our earlier confirm produced, or re-raise the ALREADY_PROCESSED `error`."""
        try:
            payment = await pg.find_payment_by_order_id(order_id)
        except GatewayError as lookup_error:
            raise error from lookup_error
        if (
            payment.status in _CONFIRMED_STATUSES
            and payment.payment_key == payment_key
            and payment.total_amount == amount
        ):
            logger.info(
                "%s confirm order=%s: already processed by an earlier confirm of ours (%s)",
                pg.name,
                order_id,
                payment.status,
                extra={"order_id": order_id, "payment_key": payment_key, "status": str(payment.status)},
            )
            return payment
        logger.warning(
            "%s confirm order=%s: already processed, but the PG has %s payment=%s amount=%d"
            " (we confirmed payment=%s amount=%d)",
            pg.name,
            order_id,
            payment.status,
            payment.payment_key,
            payment.total_amount,
            payment_key,
            amount,
            extra={"order_id": order_id, "payment_key": payment_key, "status": str(payment.status)},
        )
        raise error

    @staticmethod
    async def _earlier_cancel(pg: PaymentProvider, error: GatewayError, *, payment_key: str) -> RefundResult:
        """The refund that already happened, or re-raise the ALREADY_CANCELED `error`."""
        try:
            payment = await pg.get_payment(payment_key)
        except GatewayError as lookup_error:
            raise error from lookup_error
        if payment.status not in _CANCELED_STATUSES:
            raise error
        return RefundResult(
            payment=payment,
            # which earlier cancel was "ours" cannot be told: report everything cancelled so far
            canceled_amount=payment.total_amount - payment.balance_amount,
            transaction_key=payment.last_transaction_key,
            already_canceled=True,
        )


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _log_success(
    operation: str, provider: str, started: float, payment: PaymentInfo, *, detail: str = ""
) -> None:
    elapsed_ms = _elapsed_ms(started)
    PG_REQUEST_SECONDS.labels(endpoint=operation, outcome="ok").observe(elapsed_ms / 1000)
    logger.info(
        "%s %s order=%s payment=%s → %s %s in %d ms",
        provider,
        operation,
        payment.order_id,
        payment.payment_key,
        payment.status,
        detail,
        elapsed_ms,
        extra={
            "provider": provider,
            "operation": operation,
            "order_id": payment.order_id,
            "payment_key": payment.payment_key,
            "status": str(payment.status),
            "elapsed_ms": elapsed_ms,
        },
    )


def _log_failure(
    operation: str,
    provider: str,
    started: float,
    error: GatewayError,
    *,
    order_id: str | None,
    payment_key: str | None,
) -> None:
    elapsed_ms = _elapsed_ms(started)
    PG_REQUEST_SECONDS.labels(endpoint=operation, outcome=error.kind.value).observe(elapsed_ms / 1000)
    logger.warning(
        "%s %s order=%s payment=%s → %s %s (HTTP %s) in %d ms: %s",
        provider,
        operation,
        order_id,
        payment_key,
        error.kind,
        error.pg_code,
        error.http_status,
        elapsed_ms,
        error.message,
        extra={
            "provider": provider,
            "operation": operation,
            "order_id": order_id,
            "payment_key": payment_key,
            "status": f"{error.kind}:{error.pg_code}",
            "elapsed_ms": elapsed_ms,
        },
    )
