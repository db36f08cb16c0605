"""TossClient and GatewayService against the mock Toss running as a real process over HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from app.gateway.models import GatewayError, GatewayErrorKind, PaymentInfo, PaymentMethod, PgPaymentStatus
from app.gateway.service import GatewayService
from app.gateway.toss import TossClient, create_http_client
from tests.support.servers import RunningServer, running_server

pytestmark = pytest.mark.slow

CLIENT_KEY = "test_ck_D5GePWvyJnrK0W0k6q8gLzN97Eoq"
SECRET_KEY = "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R"
SLOW_CONFIRM_SECONDS = 3
APPROVING_CARD = "4330000000000005"
BALANCE_TOO_LOW_CARD = "4330000000000013"
SLOW_CARD = "4330000000000047"


@pytest.fixture(scope="module")
def mock_toss() -> Iterator[RunningServer]:
    with running_server(
        ["mock_toss", "--slow-confirm-seconds", str(SLOW_CONFIRM_SECONDS)], health_path="/_mock/health"
    ) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = create_http_client(connect_timeout=2.0, read_timeout=10.0)
    yield client
    await client.aclose()


@pytest.fixture
def gateway(mock_toss: RunningServer, http: httpx.AsyncClient) -> GatewayService:
    toss = TossClient(http, base_url=mock_toss.url, secret_key=SECRET_KEY, retry_delay=0.2)
    return GatewayService([toss])


def new_order_id() -> str:
    return f"gw_{uuid.uuid4().hex}"


async def authenticate(
    http: httpx.AsyncClient, mock_toss: RunningServer, *, amount: int, card_number: str = APPROVING_CARD
) -> tuple[str, str]:
    """The buyer goes through the payment window: returns (order_id, payment_key) to confirm."""
    order_id = new_order_id()
    response = await http.post(
        f"{mock_toss.url}/_mock/checkout",
        json={
            "clientKey": CLIENT_KEY,
            "orderId": order_id,
            "amount": amount,
            "orderName": "스터디 등록",
            "method": "CARD",
            "successUrl": "http://127.0.0.1:9/payments/success",
            "failUrl": "http://127.0.0.1:9/payments/fail",
            "cardNumber": card_number,
            "action": "approve",
        },
    )
    assert response.status_code == 200, response.text
    payment_key = response.json()["paymentKey"]
    assert payment_key, response.text
    return order_id, payment_key


async def journal(
    http: httpx.AsyncClient, mock_toss: RunningServer, *, path: str, order_id: str
) -> list[Any]:
    """The API requests the mock received for this order on this path, oldest first."""
    response = await http.get(f"{mock_toss.url}/_mock/requests", params={"path": path, "orderId": order_id})
    assert response.status_code == 200, response.text
    body = response.json()
    entries = body["requests"] if isinstance(body, dict) else body
    assert isinstance(entries, list)
    return entries


async def confirmed(gateway: GatewayService, order_id: str, payment_key: str, amount: int) -> PaymentInfo:
    return await gateway.confirm_payment(
        provider="TOSS",
        payment_key=payment_key,
        order_id=order_id,
        amount=amount,
        idempotency_key=f"confirm-{order_id}",
    )


async def test_confirm_approves_a_card_payment(
    gateway: GatewayService, http: httpx.AsyncClient, mock_toss: RunningServer
) -> None:
    order_id, payment_key = await authenticate(http, mock_toss, amount=50000)

    payment = await confirmed(gateway, order_id, payment_key, 50000)

    assert payment.status is PgPaymentStatus.DONE
    assert payment.provider == "TOSS"
    assert (payment.order_id, payment.payment_key) == (order_id, payment_key)
    assert payment.method is PaymentMethod.CARD
    assert (payment.total_amount, payment.balance_amount) == (50000, 50000)
    assert payment.approved_at is not None and payment.approved_at.tzinfo is not None
    assert payment.last_transaction_key
    assert await gateway.get_payment(provider="TOSS", payment_key=payment_key) == payment
    assert await gateway.find_payment(provider="TOSS", order_id=order_id) == payment


async def test_a_second_confirm_returns_the_same_payment(
    gateway: GatewayService, http: httpx.AsyncClient, mock_toss: RunningServer
) -> None:
    order_id, payment_key = await authenticate(http, mock_toss, amount=9900)
    first = await confirmed(gateway, order_id, payment_key, 9900)

    # a fresh key, as after a restart: Toss answers ALREADY_PROCESSED_PAYMENT and the service looks it up
    second = await gateway.confirm_payment(
        provider="TOSS",
        payment_key=payment_key,
        order_id=order_id,
        amount=9900,
        idempotency_key="another-key",
    )
    # the same key: Toss replays the first answer
    replayed = await confirmed(gateway, order_id, payment_key, 9900)

    assert second == first
    assert replayed == first
    confirms = await journal(http, mock_toss, path="/v1/payments/confirm", order_id=order_id)
    assert [entry["status"] for entry in confirms] == [200, 400, 200]


async def test_a_card_without_enough_balance_is_insufficient_funds(
    gateway: GatewayService, http: httpx.AsyncClient, mock_toss: RunningServer
) -> None:
    order_id, payment_key = await authenticate(
        http, mock_toss, amount=50000, card_number=BALANCE_TOO_LOW_CARD
    )

    with pytest.raises(GatewayError) as error:
        await confirmed(gateway, order_id, payment_key, 50000)

    assert error.value.kind is GatewayErrorKind.INSUFFICIENT_FUNDS
    assert error.value.pg_code == "REJECT_CARD_PAYMENT"
    assert error.value.http_status == 403
    assert error.value.message


async def settled(gateway: GatewayService, order_id: str) -> PaymentInfo:
    """Ask Toss by order id until the payment leaves IN_PROGRESS, as Core's reconciliation does."""
    payment = await gateway.find_payment(provider="TOSS", order_id=order_id)
    for _ in range(SLOW_CONFIRM_SECONDS * 10 + 50):
        if payment.status is not PgPaymentStatus.IN_PROGRESS:
            break
        await asyncio.sleep(0.1)
        payment = await gateway.find_payment(provider="TOSS", order_id=order_id)
    return payment


@pytest.fixture
async def impatient_gateway(mock_toss: RunningServer) -> AsyncIterator[GatewayService]:
    """A gateway whose read timeout (0.5 s) is far shorter than the slow card's confirm."""
    impatient_http = create_http_client(connect_timeout=2.0, read_timeout=0.5)
    toss = TossClient(impatient_http, base_url=mock_toss.url, secret_key=SECRET_KEY, retry_delay=0.2)
    yield GatewayService([toss])
    await impatient_http.aclose()


async def test_a_confirm_slower_than_the_read_timeout_is_unavailable_and_charged_once(
    impatient_gateway: GatewayService, mock_toss: RunningServer, http: httpx.AsyncClient
) -> None:
    order_id, payment_key = await authenticate(http, mock_toss, amount=30000, card_number=SLOW_CARD)

    with pytest.raises(GatewayError) as error:
        await impatient_gateway.confirm_payment(
            provider="TOSS",
            payment_key=payment_key,
            order_id=order_id,
            amount=30000,
            idempotency_key="slow-1",
        )

    # the first attempt timed out; the retry, with the same key, found Toss still working on it
    assert error.value.kind is GatewayErrorKind.UNAVAILABLE
    assert error.value.outcome_unknown
    assert error.value.pg_code == "IDEMPOTENT_REQUEST_PROCESSING"
    payment = await settled(impatient_gateway, order_id)
    assert payment.status is PgPaymentStatus.DONE
    assert (payment.payment_key, payment.total_amount, payment.balance_amount) == (payment_key, 30000, 30000)
    confirms = await journal(http, mock_toss, path="/v1/payments/confirm", order_id=order_id)
    assert [entry["idempotencyKey"] for entry in confirms] == ["slow-1", "slow-1"]
    # one confirm was processed (and charged); the retry was refused as a duplicate in flight
    assert [entry["status"] for entry in confirms] == [200, 409]


async def test_every_attempt_timing_out_is_unavailable_after_three_attempts_with_one_key(
    impatient_gateway: GatewayService, mock_toss: RunningServer, http: httpx.AsyncClient
) -> None:
    order_id, payment_key = await authenticate(http, mock_toss, amount=40000)
    # every confirm waits 1.5 s before Toss even looks at it: each attempt's read times out
    chaos = await http.put(
        f"{mock_toss.url}/_mock/chaos", json={"seed": 1, "routes": {"confirm": {"latencyMs": 1500}}}
    )
    assert chaos.status_code == 200, chaos.text
    try:
        with pytest.raises(GatewayError) as error:
            await impatient_gateway.confirm_payment(
                provider="TOSS",
                payment_key=payment_key,
                order_id=order_id,
                amount=40000,
                idempotency_key="late-1",
            )
    finally:
        cleared = await http.delete(f"{mock_toss.url}/_mock/chaos")
        assert cleared.status_code == 200, cleared.text

    assert error.value.kind is GatewayErrorKind.UNAVAILABLE
    assert error.value.pg_code == "TIMEOUT"
    payment = await settled(impatient_gateway, order_id)
    assert payment.status is PgPaymentStatus.DONE
    assert payment.balance_amount == 40000
    await asyncio.sleep(1.6)  # let the mock finish answering the last (abandoned) attempt
    confirms = await journal(http, mock_toss, path="/v1/payments/confirm", order_id=order_id)
    assert [entry["idempotencyKey"] for entry in confirms] == ["late-1"] * 3
    assert [entry["body"] for entry in confirms] == [confirms[0]["body"]] * 3
    # the same key again replays the one approval instead of charging a second time
    replayed = await impatient_gateway.confirm_payment(
        provider="TOSS", payment_key=payment_key, order_id=order_id, amount=40000, idempotency_key="late-1"
    )
    assert replayed.last_transaction_key == payment.last_transaction_key
    assert replayed.approved_at == payment.approved_at


async def test_full_cancel(
    gateway: GatewayService, http: httpx.AsyncClient, mock_toss: RunningServer
) -> None:
    order_id, payment_key = await authenticate(http, mock_toss, amount=20000)
    await confirmed(gateway, order_id, payment_key, 20000)

    refund = await gateway.cancel_payment(
        provider="TOSS",
        payment_key=payment_key,
        reason="고객 요청",
        amount=None,
        idempotency_key=f"refund-{order_id}",
    )

    assert refund.already_canceled is False
    assert refund.canceled_amount == 20000
    assert refund.payment.status is PgPaymentStatus.CANCELED
    assert refund.payment.balance_amount == 0
    assert refund.transaction_key is not None
    assert refund.transaction_key == refund.payment.last_transaction_key


async def test_partial_cancels(
    gateway: GatewayService, http: httpx.AsyncClient, mock_toss: RunningServer
) -> None:
    order_id, payment_key = await authenticate(http, mock_toss, amount=10000)
    await confirmed(gateway, order_id, payment_key, 10000)

    first = await gateway.cancel_payment(
        provider="TOSS",
        payment_key=payment_key,
        reason="부분 환불",
        amount=3000,
        idempotency_key=f"r1-{order_id}",
    )
    second = await gateway.cancel_payment(
        provider="TOSS",
        payment_key=payment_key,
        reason="부분 환불",
        amount=2000,
        idempotency_key=f"r2-{order_id}",
    )

    assert (first.canceled_amount, first.payment.balance_amount) == (3000, 7000)
    assert first.payment.status is PgPaymentStatus.PARTIAL_CANCELED
    assert (second.canceled_amount, second.payment.balance_amount) == (2000, 5000)
    assert second.payment.status is PgPaymentStatus.PARTIAL_CANCELED
    assert second.payment.total_amount == 10000
    assert first.transaction_key != second.transaction_key
    cancels = await journal(http, mock_toss, path=f"/v1/payments/{payment_key}/cancel", order_id=order_id)
    assert [entry["body"].get("cancelAmount") for entry in cancels] == [3000, 2000]


async def test_cancelling_twice_reports_already_canceled(
    gateway: GatewayService, http: httpx.AsyncClient, mock_toss: RunningServer
) -> None:
    order_id, payment_key = await authenticate(http, mock_toss, amount=15000)
    await confirmed(gateway, order_id, payment_key, 15000)
    first = await gateway.cancel_payment(
        provider="TOSS", payment_key=payment_key, reason="환불", amount=None, idempotency_key=f"r1-{order_id}"
    )

    again = await gateway.cancel_payment(
        provider="TOSS", payment_key=payment_key, reason="환불", amount=None, idempotency_key=f"r2-{order_id}"
    )

    assert first.already_canceled is False
    assert again.already_canceled is True
    assert again.payment.status is PgPaymentStatus.CANCELED
    assert again.canceled_amount == 15000
    assert again.transaction_key == first.transaction_key


async def test_a_wrong_secret_key_is_misconfigured(
    mock_toss: RunningServer, http: httpx.AsyncClient, gateway: GatewayService
) -> None:
    order_id, payment_key = await authenticate(http, mock_toss, amount=10000)
    wrong = GatewayService(
        [
            TossClient(
                http, base_url=mock_toss.url, secret_key="test_sk_not_the_merchants_key", retry_delay=0.2
            )
        ]
    )

    with pytest.raises(GatewayError) as confirm_error:
        await confirmed(wrong, order_id, payment_key, 10000)
    with pytest.raises(GatewayError) as lookup_error:
        await wrong.find_payment(provider="TOSS", order_id=order_id)

    assert confirm_error.value.kind is GatewayErrorKind.MISCONFIGURED
    assert confirm_error.value.pg_code == "UNAUTHORIZED_KEY"
    assert confirm_error.value.http_status == 401
    assert lookup_error.value.kind is GatewayErrorKind.MISCONFIGURED
    # nothing was confirmed with the wrong key: the right key still can
    assert (await confirmed(gateway, order_id, payment_key, 10000)).status is PgPaymentStatus.DONE
