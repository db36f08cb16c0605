"""GatewayService: provider registry and the rules for repeated confirms and cancels."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.gateway.models import (
    GatewayError,
    GatewayErrorKind,
    PaymentInfo,
    PaymentMethod,
    PgPaymentStatus,
    RefundResult,
)
from app.gateway.service import GatewayService, PaymentProvider

Factory = Callable[..., Any]
PaymentJson = Callable[..., dict[str, Any]]
SECRET_KEY = "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R"

PAYMENT_KEY = "5EnNZRJGvaBX7zk2yd8ydw26XvwXkLrx9POLqKQjmAw4b0e1"
ORDER_ID = "a4CWyWY5m89PNh7xJwhk1"


def toss_error(status: int, code: str) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": f"{code} message"})


def routed(routes: dict[str, httpx.Response]) -> Callable[[httpx.Request], httpx.Response]:
    """Answer by "METHOD path"; anything else is a test failure (404 NOT_FOUND_PAYMENT)."""

    def handler(request: httpx.Request) -> httpx.Response:
        key = f"{request.method} {request.url.path}"
        return routes.get(key, toss_error(404, "UNEXPECTED_ROUTE"))

    return handler


def service_over(harness: Any) -> GatewayService:
    return GatewayService([harness.client])


# --- confirm: ALREADY_PROCESSED → lookup ---------------------------------------------------------


@pytest.mark.parametrize("status", ["DONE", "WAITING_FOR_DEPOSIT"])
async def test_an_already_processed_confirm_of_the_same_payment_returns_that_payment(
    toss: Factory, payment_json: PaymentJson, status: str
) -> None:
    harness = toss(
        routed(
            {
                "POST /v1/payments/confirm": toss_error(400, "ALREADY_PROCESSED_PAYMENT"),
                f"GET /v1/payments/orders/{ORDER_ID}": httpx.Response(200, json=payment_json(status=status)),
            }
        )
    )

    payment = await service_over(harness).confirm_payment(
        provider="TOSS", payment_key=PAYMENT_KEY, order_id=ORDER_ID, amount=1000, idempotency_key="k"
    )

    assert payment.status == status
    assert payment.payment_key == PAYMENT_KEY
    assert harness.paths() == ["/v1/payments/confirm", f"/v1/payments/orders/{ORDER_ID}"]


@pytest.mark.parametrize(
    ("found", "why"),
    [
        ({"totalAmount": 2000, "balanceAmount": 2000}, "another amount"),
        ({"paymentKey": "another_payment_key"}, "another payment"),
        ({"status": "CANCELED", "balanceAmount": 0}, "cancelled since"),
        ({"status": "ABORTED"}, "failed"),
        ({"status": "IN_PROGRESS", "approvedAt": None}, "not confirmed"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
async def test_an_already_processed_confirm_of_something_else_is_reraised(
    toss: Factory, payment_json: PaymentJson, found: dict[str, Any], why: str
) -> None:
    harness = toss(
        routed(
            {
                "POST /v1/payments/confirm": toss_error(400, "ALREADY_PROCESSED_PAYMENT"),
                f"GET /v1/payments/orders/{ORDER_ID}": httpx.Response(200, json=payment_json(**found)),
            }
        )
    )

    with pytest.raises(GatewayError) as error:
        await service_over(harness).confirm_payment(
            provider="TOSS", payment_key=PAYMENT_KEY, order_id=ORDER_ID, amount=1000, idempotency_key="k"
        )

    assert error.value.kind is GatewayErrorKind.ALREADY_PROCESSED
    assert error.value.pg_code == "ALREADY_PROCESSED_PAYMENT"
    assert error.value.outcome_unknown


async def test_an_already_processed_confirm_whose_lookup_fails_is_reraised(toss: Factory) -> None:
    harness = toss(
        routed(
            {
                "POST /v1/payments/confirm": toss_error(400, "ALREADY_PROCESSED_PAYMENT"),
                f"GET /v1/payments/orders/{ORDER_ID}": toss_error(500, "FAILED_INTERNAL_SYSTEM_PROCESSING"),
            }
        )
    )

    with pytest.raises(GatewayError) as error:
        await service_over(harness).confirm_payment(
            provider="TOSS", payment_key=PAYMENT_KEY, order_id=ORDER_ID, amount=1000, idempotency_key="k"
        )

    assert error.value.kind is GatewayErrorKind.ALREADY_PROCESSED
    assert isinstance(error.value.__cause__, GatewayError)
    assert error.value.__cause__.pg_code == "FAILED_INTERNAL_SYSTEM_PROCESSING"


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (toss_error(403, "REJECT_CARD_PAYMENT"), GatewayErrorKind.INSUFFICIENT_FUNDS),
        (toss_error(404, "NOT_FOUND_PAYMENT_SESSION"), GatewayErrorKind.SESSION_EXPIRED),
        (toss_error(500, "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING"), GatewayErrorKind.UNAVAILABLE),
    ],
)
async def test_other_confirm_errors_pass_through_without_a_lookup(
    toss: Factory, answer: httpx.Response, kind: GatewayErrorKind
) -> None:
    harness = toss(routed({"POST /v1/payments/confirm": answer}))

    with pytest.raises(GatewayError) as error:
        await service_over(harness).confirm_payment(
            provider="TOSS", payment_key=PAYMENT_KEY, order_id=ORDER_ID, amount=1000, idempotency_key="k"
        )

    assert error.value.kind is kind
    assert harness.paths() == ["/v1/payments/confirm"]


async def test_confirm_payment_passes_every_argument_to_the_provider(
    toss: Factory, card_payment: dict[str, Any]
) -> None:
    harness = toss(routed({"POST /v1/payments/confirm": httpx.Response(200, json=card_payment)}))

    payment = await service_over(harness).confirm_payment(
        provider="TOSS",
        payment_key=PAYMENT_KEY,
        order_id=ORDER_ID,
        amount=1000,
        idempotency_key="txn-confirm",
    )

    assert payment.method is PaymentMethod.CARD
    (request,) = harness.requests
    assert request.headers["Idempotency-Key"] == "txn-confirm"
    assert json.loads(request.content) == {"paymentKey": PAYMENT_KEY, "orderId": ORDER_ID, "amount": 1000}


# --- cancel: ALREADY_CANCELED → lookup -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "balance", "canceled"),
    [("CANCELED", 0, 1000), ("PARTIAL_CANCELED", 400, 600)],
)
async def test_cancelling_an_already_cancelled_payment_counts_as_refunded(
    toss: Factory, payment_json: PaymentJson, status: str, balance: int, canceled: int
) -> None:
    found = payment_json(status=status, balanceAmount=balance, lastTransactionKey="TX_EARLIER_CANCEL")
    harness = toss(
        routed(
            {
                f"POST /v1/payments/{PAYMENT_KEY}/cancel": toss_error(400, "ALREADY_CANCELED_PAYMENT"),
                f"GET /v1/payments/{PAYMENT_KEY}": httpx.Response(200, json=found),
            }
        )
    )

    refund = await service_over(harness).cancel_payment(
        provider="TOSS", payment_key=PAYMENT_KEY, reason="refund", amount=None, idempotency_key="r1"
    )

    assert refund.already_canceled is True
    assert refund.canceled_amount == canceled
    assert refund.transaction_key == "TX_EARLIER_CANCEL"
    assert refund.payment.status == status
    assert harness.paths() == [f"/v1/payments/{PAYMENT_KEY}/cancel", f"/v1/payments/{PAYMENT_KEY}"]


async def test_already_canceled_but_the_lookup_shows_it_is_not_is_reraised(
    toss: Factory, payment_json: PaymentJson
) -> None:
    harness = toss(
        routed(
            {
                f"POST /v1/payments/{PAYMENT_KEY}/cancel": toss_error(400, "ALREADY_CANCELED_PAYMENT"),
                f"GET /v1/payments/{PAYMENT_KEY}": httpx.Response(200, json=payment_json(status="DONE")),
            }
        )
    )

    with pytest.raises(GatewayError) as error:
        await service_over(harness).cancel_payment(
            provider="TOSS", payment_key=PAYMENT_KEY, reason="refund", amount=None, idempotency_key="r1"
        )

    assert error.value.kind is GatewayErrorKind.ALREADY_CANCELED
    assert error.value.pg_code == "ALREADY_CANCELED_PAYMENT"


async def test_a_cancel_that_goes_through_is_not_marked_already_canceled(
    toss: Factory, payment_json: PaymentJson
) -> None:
    answer = payment_json(
        status="PARTIAL_CANCELED",
        balanceAmount=700,
        cancels=[
            {"cancelAmount": 300, "transactionKey": "TX_NEW", "canceledAt": "2024-02-14T10:00:00+09:00"}
        ],
    )
    harness = toss(routed({f"POST /v1/payments/{PAYMENT_KEY}/cancel": httpx.Response(200, json=answer)}))

    refund = await service_over(harness).cancel_payment(
        provider="TOSS", payment_key=PAYMENT_KEY, reason="partial", amount=300, idempotency_key="r2"
    )

    assert refund.already_canceled is False
    assert (refund.canceled_amount, refund.transaction_key) == (300, "TX_NEW")
    assert json.loads(harness.requests[0].content) == {"cancelReason": "partial", "cancelAmount": 300}
    assert harness.requests[0].headers["Idempotency-Key"] == "r2"


async def test_a_not_cancelable_answer_passes_through(toss: Factory) -> None:
    harness = toss(
        routed({f"POST /v1/payments/{PAYMENT_KEY}/cancel": toss_error(403, "NOT_CANCELABLE_AMOUNT")})
    )

    with pytest.raises(GatewayError) as error:
        await service_over(harness).cancel_payment(
            provider="TOSS", payment_key=PAYMENT_KEY, reason="too much", amount=99999, idempotency_key="r3"
        )

    assert error.value.kind is GatewayErrorKind.NOT_CANCELABLE
    assert len(harness.requests) == 1


# --- lookups ---------------------------------------------------------------------------------------


async def test_get_and_find_payment_go_to_the_provider(toss: Factory, card_payment: dict[str, Any]) -> None:
    harness = toss(
        routed(
            {
                f"GET /v1/payments/{PAYMENT_KEY}": httpx.Response(200, json=card_payment),
                f"GET /v1/payments/orders/{ORDER_ID}": httpx.Response(200, json=card_payment),
            }
        )
    )
    service = service_over(harness)

    by_key = await service.get_payment(provider="TOSS", payment_key=PAYMENT_KEY)
    by_order = await service.find_payment(provider="TOSS", order_id=ORDER_ID)

    assert by_key == by_order
    assert by_key.order_id == ORDER_ID


async def test_find_payment_of_an_unknown_order_is_not_found(toss: Factory) -> None:
    harness = toss(routed({f"GET /v1/payments/orders/{ORDER_ID}": toss_error(404, "NOT_FOUND_PAYMENT")}))

    with pytest.raises(GatewayError) as error:
        await service_over(harness).find_payment(provider="TOSS", order_id=ORDER_ID)

    assert error.value.kind is GatewayErrorKind.NOT_FOUND


# --- registry ---------------------------------------------------------------------------------------


class RecordingProvider:
    """A second PG (think KakaoPay) that answers canned results and records the calls."""

    def __init__(self, name: str, payment: PaymentInfo) -> None:
        self._name = name
        self._payment = payment
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @property
    def name(self) -> str:
        return self._name

    async def confirm(
        self, *, payment_key: str, order_id: str, amount: int, idempotency_key: str
    ) -> PaymentInfo:
        self.calls.append(("confirm", {"payment_key": payment_key, "order_id": order_id, "amount": amount}))
        return self._payment

    async def get_payment(self, payment_key: str) -> PaymentInfo:
        self.calls.append(("get_payment", {"payment_key": payment_key}))
        return self._payment

    async def find_payment_by_order_id(self, order_id: str) -> PaymentInfo:
        self.calls.append(("find_payment_by_order_id", {"order_id": order_id}))
        return self._payment

    async def cancel(
        self, *, payment_key: str, reason: str, amount: int | None, idempotency_key: str
    ) -> RefundResult:
        self.calls.append(("cancel", {"payment_key": payment_key, "amount": amount}))
        return RefundResult(payment=self._payment, canceled_amount=amount or 0, transaction_key=None)


def kakao_payment() -> PaymentInfo:
    return PaymentInfo(
        provider="KAKAOPAY",
        payment_key="T1234",
        order_id="order_kakao",
        status=PgPaymentStatus.DONE,
        method=PaymentMethod.EASY_PAY,
        total_amount=5000,
        balance_amount=5000,
    )


async def test_calls_are_routed_to_the_named_provider(toss: Factory, card_payment: dict[str, Any]) -> None:
    harness = toss(routed({"POST /v1/payments/confirm": httpx.Response(200, json=card_payment)}))
    kakao = RecordingProvider("KAKAOPAY", kakao_payment())
    providers: list[PaymentProvider] = [harness.client, kakao]
    service = GatewayService(providers)

    kakao_result = await service.confirm_payment(
        provider="KAKAOPAY", payment_key="T1234", order_id="order_kakao", amount=5000, idempotency_key="k"
    )
    toss_result = await service.confirm_payment(
        provider="TOSS", payment_key=PAYMENT_KEY, order_id=ORDER_ID, amount=1000, idempotency_key="k"
    )

    assert service.provider_names == ("TOSS", "KAKAOPAY")
    assert kakao_result.provider == "KAKAOPAY"
    assert toss_result.provider == "TOSS"
    assert kakao.calls == [("confirm", {"payment_key": "T1234", "order_id": "order_kakao", "amount": 5000})]
    assert len(harness.requests) == 1


@pytest.mark.parametrize("operation", ["confirm_payment", "get_payment", "find_payment", "cancel_payment"])
async def test_an_unknown_provider_is_misconfigured(operation: str) -> None:
    kakao = RecordingProvider("KAKAOPAY", kakao_payment())
    service = GatewayService([kakao])
    arguments: dict[str, dict[str, Any]] = {
        "confirm_payment": {"payment_key": "p", "order_id": "o", "amount": 1, "idempotency_key": "k"},
        "get_payment": {"payment_key": "p"},
        "find_payment": {"order_id": "o"},
        "cancel_payment": {"payment_key": "p", "reason": "r", "amount": None, "idempotency_key": "k"},
    }

    with pytest.raises(GatewayError) as error:
        await getattr(service, operation)(provider="NAVERPAY", **arguments[operation])

    assert error.value.kind is GatewayErrorKind.MISCONFIGURED
    assert error.value.pg_code == "UNKNOWN_PROVIDER"
    assert "NAVERPAY" in error.value.message
    assert kakao.calls == []


def test_two_providers_with_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="KAKAOPAY"):
        GatewayService(
            [RecordingProvider("KAKAOPAY", kakao_payment()), RecordingProvider("KAKAOPAY", kakao_payment())]
        )


# --- logging ---------------------------------------------------------------------------------------


async def test_every_outcome_is_logged_with_order_id_status_and_elapsed_never_the_secret(
    toss: Factory, card_payment: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    harness = toss(
        routed(
            {
                "POST /v1/payments/confirm": httpx.Response(200, json=card_payment),
                f"GET /v1/payments/orders/{ORDER_ID}": toss_error(404, "NOT_FOUND_PAYMENT"),
            }
        )
    )
    service = service_over(harness)
    caplog.set_level(logging.DEBUG, logger="app.gateway")

    await service.confirm_payment(
        provider="TOSS", payment_key=PAYMENT_KEY, order_id=ORDER_ID, amount=1000, idempotency_key="k"
    )
    with pytest.raises(GatewayError):
        await service.find_payment(provider="TOSS", order_id=ORDER_ID)

    outcomes = [record.__dict__ for record in caplog.records if "operation" in record.__dict__]
    assert [(o["operation"], o["order_id"], o["status"]) for o in outcomes] == [
        ("confirm", ORDER_ID, "DONE"),
        ("find_payment", ORDER_ID, "NOT_FOUND:NOT_FOUND_PAYMENT"),
    ]
    assert all(isinstance(o["elapsed_ms"], int) for o in outcomes)
    endpoints = [record.__dict__["endpoint"] for record in caplog.records if "endpoint" in record.__dict__]
    assert endpoints == ["POST /v1/payments/confirm", "GET /v1/payments/orders/{orderId}"]
    # Each PG call is logged once (its outcome); the wire detail is DEBUG.
    assert len([r for r in caplog.records if r.levelno >= logging.INFO]) == len(outcomes) == 2
    rendered = caplog.text + repr([record.__dict__ for record in caplog.records])
    assert SECRET_KEY not in rendered
    assert "Basic " not in rendered
