"""TossClient over HTTP: auth, paths, Idempotency-Key, retries, logging (httpx.MockTransport, no network)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.gateway.models import GatewayError, GatewayErrorKind, PgPaymentStatus
from app.gateway.toss import TossClient, create_http_client

SECRET_KEY = "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R"
EXPECTED_AUTHORIZATION = "Basic dGVzdF9za196WExrS0V5cE5BcldtbzUwblgzbG1lYXhZRzVSOg=="

Factory = Callable[..., Any]
PaymentJson = Callable[..., dict[str, Any]]


def answer_with(payload: dict[str, Any]) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(200, json=payload)


def canceled(payment_json: PaymentJson, *, cancel_amount: int, balance: int) -> dict[str, Any]:
    return payment_json(
        status="CANCELED" if balance == 0 else "PARTIAL_CANCELED",
        balanceAmount=balance,
        lastTransactionKey="CANCELTX1",
        cancels=[
            {
                "cancelAmount": cancel_amount,
                "cancelReason": "buyer asked",
                "canceledAt": "2024-02-14T10:00:00+09:00",
                "transactionKey": "CANCELTX1",
                "refundableAmount": balance,
                "cancelStatus": "DONE",
            }
        ],
    )


# --- authentication and request shape ---------------------------------------------------------------


async def test_every_call_carries_basic_auth_of_the_secret_key_with_a_trailing_colon(
    toss: Factory, card_payment: dict[str, Any], payment_json: PaymentJson
) -> None:
    harness = toss(
        lambda request: httpx.Response(
            200,
            json=canceled(payment_json, cancel_amount=1000, balance=0)
            if request.url.path.endswith("/cancel")
            else card_payment,
        )
    )
    await harness.client.confirm(payment_key="pk_1", order_id="order_0001", amount=1000, idempotency_key="k1")
    await harness.client.get_payment("pk_1")
    await harness.client.find_payment_by_order_id("order_0001")
    await harness.client.cancel(payment_key="pk_1", reason="r", amount=None, idempotency_key="k2")

    assert len(harness.requests) == 4
    assert {request.headers["Authorization"] for request in harness.requests} == {EXPECTED_AUTHORIZATION}


async def test_confirm_posts_payment_key_order_id_and_amount_with_the_idempotency_key(
    toss: Factory, card_payment: dict[str, Any]
) -> None:
    harness = toss(answer_with(card_payment))

    payment = await harness.client.confirm(
        payment_key="pk_confirm", order_id="order_0001", amount=1000, idempotency_key="confirm-key-1"
    )

    (request,) = harness.requests
    assert request.method == "POST"
    assert str(request.url) == "https://toss.example.test/v1/payments/confirm"
    assert request.headers["Idempotency-Key"] == "confirm-key-1"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {
        "paymentKey": "pk_confirm",
        "orderId": "order_0001",
        "amount": 1000,
    }
    assert payment.status is PgPaymentStatus.DONE
    assert payment.provider == "TOSS" == harness.client.name


async def test_lookups_use_get_without_a_body_or_idempotency_key(
    toss: Factory, card_payment: dict[str, Any]
) -> None:
    harness = toss(answer_with(card_payment))

    await harness.client.get_payment("pk_lookup")
    await harness.client.find_payment_by_order_id("order_0001")

    assert [request.method for request in harness.requests] == ["GET", "GET"]
    assert harness.paths() == ["/v1/payments/pk_lookup", "/v1/payments/orders/order_0001"]
    assert all("Idempotency-Key" not in request.headers for request in harness.requests)
    assert all(request.content == b"" for request in harness.requests)


async def test_path_segments_are_url_encoded(toss: Factory, payment_json: PaymentJson) -> None:
    harness = toss(answer_with(canceled(payment_json, cancel_amount=1000, balance=0)))

    await harness.client.get_payment("pk/../a b?c")
    await harness.client.find_payment_by_order_id("order/1#x")
    await harness.client.cancel(payment_key="pk/2", reason="r", amount=None, idempotency_key="k")

    assert harness.paths() == [
        "/v1/payments/pk%2F..%2Fa%20b%3Fc",
        "/v1/payments/orders/order%2F1%23x",
        "/v1/payments/pk%2F2/cancel",
    ]


async def test_base_url_may_end_with_a_slash_and_carry_a_path(
    toss: Factory, card_payment: dict[str, Any]
) -> None:
    harness = toss(answer_with(card_payment), base_url="http://127.0.0.1:8090/toss/")

    await harness.client.get_payment("pk_1")

    assert str(harness.requests[0].url) == "http://127.0.0.1:8090/toss/v1/payments/pk_1"


async def test_full_cancel_omits_cancel_amount_and_sends_the_idempotency_key(
    toss: Factory, payment_json: PaymentJson
) -> None:
    harness = toss(answer_with(canceled(payment_json, cancel_amount=1000, balance=0)))

    refund = await harness.client.cancel(
        payment_key="pk_1", reason="provisioning failed", amount=None, idempotency_key="refund-7"
    )

    (request,) = harness.requests
    assert request.method == "POST"
    assert harness.paths() == ["/v1/payments/pk_1/cancel"]
    assert request.headers["Idempotency-Key"] == "refund-7"
    assert json.loads(request.content) == {"cancelReason": "provisioning failed"}
    assert refund.canceled_amount == 1000
    assert refund.payment.status is PgPaymentStatus.CANCELED
    assert refund.already_canceled is False


async def test_partial_cancel_sends_cancel_amount(toss: Factory, payment_json: PaymentJson) -> None:
    harness = toss(answer_with(canceled(payment_json, cancel_amount=300, balance=700)))

    await harness.client.cancel(payment_key="pk_1", reason="partial", amount=300, idempotency_key="refund-8")

    assert json.loads(harness.requests[0].content) == {"cancelReason": "partial", "cancelAmount": 300}


@pytest.mark.parametrize("idempotency_key", ["", "k" * 301])
async def test_a_post_without_a_usable_idempotency_key_is_refused_before_reaching_toss(
    toss: Factory, card_payment: dict[str, Any], idempotency_key: str
) -> None:
    harness = toss(answer_with(card_payment))

    with pytest.raises(GatewayError) as confirm_error:
        await harness.client.confirm(
            payment_key="pk", order_id="order_0001", amount=1000, idempotency_key=idempotency_key
        )
    with pytest.raises(GatewayError) as cancel_error:
        await harness.client.cancel(
            payment_key="pk", reason="r", amount=None, idempotency_key=idempotency_key
        )

    assert confirm_error.value.kind is GatewayErrorKind.INVALID_REQUEST
    assert cancel_error.value.pg_code == "INVALID_IDEMPOTENCY_KEY"
    assert harness.requests == []


async def test_an_idempotency_key_of_300_characters_is_accepted(
    toss: Factory, card_payment: dict[str, Any]
) -> None:
    harness = toss(answer_with(card_payment))

    await harness.client.confirm(
        payment_key="pk", order_id="order_0001", amount=1000, idempotency_key="k" * 300
    )

    assert harness.requests[0].headers["Idempotency-Key"] == "k" * 300


@pytest.mark.parametrize("amount", [0, -1000])
async def test_a_non_positive_amount_is_refused_before_reaching_toss(
    toss: Factory, card_payment: dict[str, Any], amount: int
) -> None:
    harness = toss(answer_with(card_payment))

    with pytest.raises(GatewayError) as error:
        await harness.client.confirm(
            payment_key="pk", order_id="order_0001", amount=amount, idempotency_key="k"
        )
    with pytest.raises(GatewayError):
        await harness.client.cancel(payment_key="pk", reason="r", amount=amount, idempotency_key="k")

    assert error.value.kind is GatewayErrorKind.INVALID_REQUEST
    assert harness.requests == []


# --- retries ------------------------------------------------------------------------------------


def always_raise(exception: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exception

    return handler


@pytest.mark.parametrize(
    ("exception", "pg_code"),
    [
        (httpx.ConnectTimeout("connect timed out"), "TIMEOUT"),
        (httpx.ReadTimeout("read timed out"), "TIMEOUT"),
        (httpx.ConnectError("connection refused"), "CONNECTION_ERROR"),
        (httpx.RemoteProtocolError("server disconnected"), "CONNECTION_ERROR"),
    ],
    ids=["connect-timeout", "read-timeout", "connect-error", "disconnected"],
)
async def test_confirm_is_retried_three_times_one_second_apart_with_one_idempotency_key_then_unavailable(
    toss: Factory, exception: Exception, pg_code: str
) -> None:
    harness = toss(always_raise(exception))

    with pytest.raises(GatewayError) as error:
        await harness.client.confirm(
            payment_key="pk_1", order_id="order_0001", amount=1000, idempotency_key="confirm-once"
        )

    assert error.value.kind is GatewayErrorKind.UNAVAILABLE
    assert error.value.outcome_unknown
    assert error.value.pg_code == pg_code
    assert len(harness.requests) == 3
    assert [request.headers["Idempotency-Key"] for request in harness.requests] == ["confirm-once"] * 3
    assert [request.content for request in harness.requests] == [harness.requests[0].content] * 3
    assert harness.sleeps == [1.0, 1.0]


async def test_cancel_is_retried_with_the_same_idempotency_key(toss: Factory) -> None:
    harness = toss(always_raise(httpx.ReadTimeout("read timed out")))

    with pytest.raises(GatewayError) as error:
        await harness.client.cancel(payment_key="pk_1", reason="r", amount=500, idempotency_key="refund-1")

    assert error.value.kind is GatewayErrorKind.UNAVAILABLE
    assert error.value.pg_code == "TIMEOUT"
    assert [request.headers["Idempotency-Key"] for request in harness.requests] == ["refund-1"] * 3


async def test_a_retry_that_gets_an_answer_returns_it(toss: Factory, card_payment: dict[str, Any]) -> None:
    outcomes: list[httpx.Response | Exception] = [
        httpx.ConnectError("refused"),
        httpx.Response(200, json=card_payment),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    harness = toss(handler)

    payment = await harness.client.find_payment_by_order_id("a4CWyWY5m89PNh7xJwhk1")

    assert payment.order_id == "a4CWyWY5m89PNh7xJwhk1"
    assert len(harness.requests) == 2
    assert harness.sleeps == [1.0]


async def test_attempts_and_delay_are_configurable(toss: Factory) -> None:
    harness = toss(always_raise(httpx.ConnectError("refused")), max_attempts=5, retry_delay=0.25)

    with pytest.raises(GatewayError):
        await harness.client.get_payment("pk_1")

    assert len(harness.requests) == 5
    assert harness.sleeps == [0.25] * 4


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(400, json={"code": "INVALID_REQUEST", "message": "잘못된 요청입니다."}),
        httpx.Response(403, json={"code": "REJECT_CARD_PAYMENT", "message": "잔액부족"}),
        httpx.Response(409, json={"code": "IDEMPOTENT_REQUEST_PROCESSING", "message": "처리중"}),
        httpx.Response(429, json={"code": "TOO_MANY_REQUESTS", "message": "too many"}),
        httpx.Response(500, json={"code": "FAILED_INTERNAL_SYSTEM_PROCESSING", "message": "실패"}),
        httpx.Response(502, text="<html><body>Bad Gateway</body></html>"),
        httpx.Response(503, text=""),
    ],
    ids=["400", "403", "409", "429", "500", "502-html", "503-empty"],
)
async def test_an_http_answer_is_never_retried(toss: Factory, answer: httpx.Response) -> None:
    harness = toss(lambda request: answer)

    with pytest.raises(GatewayError) as error:
        await harness.client.confirm(
            payment_key="pk_1", order_id="order_0001", amount=1000, idempotency_key="k"
        )

    assert error.value.http_status == answer.status_code
    assert len(harness.requests) == 1
    assert harness.sleeps == []


async def test_idempotent_request_still_processing_means_the_outcome_is_unknown(toss: Factory) -> None:
    harness = toss(
        lambda request: httpx.Response(
            409, json={"code": "IDEMPOTENT_REQUEST_PROCESSING", "message": "이전 멱등 요청이 처리중입니다."}
        )
    )

    with pytest.raises(GatewayError) as error:
        await harness.client.confirm(
            payment_key="pk_1", order_id="order_0001", amount=1000, idempotency_key="k"
        )

    assert error.value.kind is GatewayErrorKind.UNAVAILABLE
    assert error.value.outcome_unknown
    assert error.value.pg_code == "IDEMPOTENT_REQUEST_PROCESSING"
    assert error.value.message == "이전 멱등 요청이 처리중입니다."


# --- logging ------------------------------------------------------------------------------------


async def test_calls_are_logged_with_order_id_endpoint_status_and_elapsed_but_never_the_secret(
    toss: Factory, card_payment: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    outcomes: list[httpx.Response | Exception] = [
        httpx.ReadTimeout("slow"),
        httpx.Response(200, json=card_payment),
    ]
    answers = iter(outcomes)

    def handler(request: httpx.Request) -> httpx.Response:
        outcome = next(answers)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    harness = toss(handler)
    caplog.set_level(logging.DEBUG, logger="app.gateway")

    await harness.client.confirm(payment_key="pk_1", order_id="order_0001", amount=1000, idempotency_key="k")

    records = [record for record in caplog.records if record.name.startswith("app.gateway")]
    assert [record.__dict__["status"] for record in records] == ["TIMEOUT", 200]
    for record in records:
        assert record.__dict__["order_id"] == "order_0001"
        assert record.__dict__["endpoint"] == "POST /v1/payments/confirm"
        assert isinstance(record.__dict__["elapsed_ms"], int)
    rendered = caplog.text + repr([record.__dict__ for record in caplog.records])
    assert SECRET_KEY not in rendered
    assert "dGVzdF9za196" not in rendered
    assert "Basic" not in rendered


def test_the_client_repr_does_not_show_the_secret_key() -> None:
    client = TossClient(httpx.AsyncClient(), base_url="http://127.0.0.1:8090", secret_key=SECRET_KEY)

    assert SECRET_KEY not in repr(client)
    assert "dGVzdF9za196" not in repr(client)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_url": "127.0.0.1:8090", "secret_key": SECRET_KEY},
        {"base_url": "http://127.0.0.1:8090", "secret_key": ""},
        {"base_url": "http://127.0.0.1:8090", "secret_key": SECRET_KEY, "max_attempts": 0},
    ],
    ids=["no-scheme", "empty-secret", "zero-attempts"],
)
def test_a_misconfigured_client_is_refused_at_startup(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TossClient(httpx.AsyncClient(), **kwargs)


async def test_create_http_client_bounds_every_phase_of_a_call() -> None:
    http = create_http_client(connect_timeout=2.0, read_timeout=10.0, max_connections=20)
    try:
        assert http.timeout.connect == 2.0
        assert http.timeout.read == 10.0
        assert http.timeout.write == 10.0
        assert http.timeout.pool == 2.0
        assert http.follow_redirects is False
    finally:
        await http.aclose()
