"""Fixtures for the Payment Gateway unit tests: a TossClient over httpx.MockTransport (no network)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from app.gateway.toss import TossClient

SECRET_KEY = "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R"
BASE_URL = "https://toss.example.test"

Handler = Callable[[httpx.Request], httpx.Response]

# toss_api.md §3: the documented DONE card payment
CARD_PAYMENT_EXAMPLE: dict[str, Any] = {
    "mId": "tosspayments",
    "lastTransactionKey": "9C62B18EEF0DE3EB7F4422EB6D14BC6E",
    "paymentKey": "5EnNZRJGvaBX7zk2yd8ydw26XvwXkLrx9POLqKQjmAw4b0e1",
    "orderId": "a4CWyWY5m89PNh7xJwhk1",
    "orderName": "토스 티셔츠 외 2건",
    "taxExemptionAmount": 0,
    "status": "DONE",
    "requestedAt": "2024-02-13T12:17:57+09:00",
    "approvedAt": "2024-02-13T12:18:14+09:00",
    "useEscrow": False,
    "cultureExpense": False,
    "card": {
        "issuerCode": "71",
        "acquirerCode": "71",
        "number": "12345678****000*",
        "installmentPlanMonths": 0,
        "isInterestFree": False,
        "interestPayer": None,
        "approveNo": "00000000",
        "useCardPoint": False,
        "cardType": "신용",
        "ownerType": "개인",
        "acquireStatus": "READY",
        "amount": 1000,
    },
    "virtualAccount": None,
    "transfer": None,
    "mobilePhone": None,
    "giftCertificate": None,
    "cashReceipt": None,
    "cashReceipts": None,
    "discount": None,
    "cancels": None,
    "secret": None,
    "type": "NORMAL",
    "easyPay": {"provider": "토스페이", "amount": 0, "discountAmount": 0},
    "country": "KR",
    "failure": None,
    "isPartialCancelable": True,
    "receipt": {
        "url": "https://dashboard.tosspayments.com/receipt/redirection?transactionId=tviva20240213121757MvuS8&ref=PX"
    },
    "checkout": {
        "url": "https://api.tosspayments.com/v1/payments/5EnNZRJGvaBX7zk2yd8ydw26XvwXkLrx9POLqKQjmAw4b0e1/checkout"
    },
    "currency": "KRW",
    "totalAmount": 1000,
    "balanceAmount": 1000,
    "suppliedAmount": 909,
    "vat": 91,
    "taxFreeAmount": 0,
    "metadata": None,
    "method": "카드",
    "version": "2024-06-01",
}


@dataclass
class TossHarness:
    """A TossClient wired to a scripted handler; records what Toss received and every retry sleep."""

    client: TossClient
    requests: list[httpx.Request] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [request.url.raw_path.decode() for request in self.requests]


TossFactory = Callable[..., TossHarness]


@pytest.fixture
async def toss() -> AsyncIterator[TossFactory]:
    """`toss(handler, **client_kwargs)` → a TossHarness; the handler may return or raise."""
    opened: list[httpx.AsyncClient] = []

    def build(handler: Handler, **client_kwargs: Any) -> TossHarness:
        harness: TossHarness

        def recording_handler(request: httpx.Request) -> httpx.Response:
            harness.requests.append(request)
            return handler(request)

        async def no_wait(seconds: float) -> None:
            harness.sleeps.append(seconds)

        http = httpx.AsyncClient(transport=httpx.MockTransport(recording_handler))
        opened.append(http)
        kwargs: dict[str, Any] = {"base_url": BASE_URL, "secret_key": SECRET_KEY, "sleep": no_wait}
        kwargs.update(client_kwargs)
        harness = TossHarness(client=TossClient(http, **kwargs))
        return harness

    yield build
    for http in opened:
        await http.aclose()


@pytest.fixture
def card_payment() -> dict[str, Any]:
    """A fresh copy of the documented DONE card payment (toss_api.md §3)."""
    return copy.deepcopy(CARD_PAYMENT_EXAMPLE)


@pytest.fixture
def payment_json() -> Callable[..., dict[str, Any]]:
    """`payment_json(**overrides)` → a Toss Payment object based on the documented card example."""

    def build(**overrides: Any) -> dict[str, Any]:
        payment = copy.deepcopy(CARD_PAYMENT_EXAMPLE)
        payment.update(overrides)
        return payment

    return build


def toss_error(status: int, code: str, message: str = "오류") -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": message})


@pytest.fixture
def error_answer() -> Callable[..., httpx.Response]:
    """`error_answer(status, code, message)` → Toss's error body `{code, message}`."""
    return toss_error
