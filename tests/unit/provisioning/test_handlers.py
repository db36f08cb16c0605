"""Grant handlers against httpx.MockTransport: the request they send and how answers map to errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.core.domain import ProductType
from app.provisioning.handlers import (
    CreditTopUpHandler,
    GrantRequest,
    LedgerGrantHandler,
    PermanentGrantError,
    StudyEnrollmentHandler,
    TransientGrantError,
    build_handlers,
)
from tests.support.fake_downstream import running_fake_downstream
from tests.support.servers import free_port

STUDY_URL = "http://study.test"
CREDIT_URL = "http://credit.test"
TID = "TXN_20250314_abcdefghijklmnop"

Responder = Callable[[httpx.Request], httpx.Response]


def study_request(**metadata: Any) -> GrantRequest:
    return GrantRequest(
        transaction_id=TID,
        user_id="user-1",
        product_type=ProductType.STUDY,
        product_id="study_123",
        amount=50_000,
        metadata=metadata,
    )


def credit_request() -> GrantRequest:
    return GrantRequest(
        transaction_id=TID,
        user_id="user-2",
        product_type=ProductType.AI_RESUME,
        product_id="resume_credit_10",
        amount=9_900,
        metadata={"ignored": True},
    )


class Recorder:
    """A MockTransport handler that records requests and answers with `responder`."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.responder(request)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


def answer(status: int, body: Any = None) -> Responder:
    def respond(_: httpx.Request) -> httpx.Response:
        if body is None:
            return httpx.Response(status)
        return httpx.Response(status, json=body)

    return respond


def raising(error: type[httpx.TransportError]) -> Responder:
    def respond(request: httpx.Request) -> httpx.Response:
        raise error("boom", request=request)

    return respond


# --- the request ---------------------------------------------------------------------------------


async def test_study_handler_posts_confirm_payment_with_the_transaction_as_idempotency_key() -> None:
    recorder = Recorder(answer(200, {"success": True, "memberId": "m-1", "message": "enrolled"}))
    async with recorder.client() as http:
        details = await StudyEnrollmentHandler(http, STUDY_URL + "/").grant(
            study_request(studyId="study-42", applicationId="app-7", checkoutId="co-9")
        )

    assert len(recorder.requests) == 1
    sent = recorder.requests[0]
    assert sent.method == "POST"
    assert str(sent.url) == f"{STUDY_URL}/api/studies/study-42/confirm-payment"
    assert sent.headers["Idempotency-Key"] == TID
    assert sent.headers["content-type"] == "application/json"
    assert json.loads(sent.content) == {"applicationId": "app-7", "paymentId": TID, "checkoutId": "co-9"}
    assert details == {
        "downstreamStatus": 200,
        "answer": {"success": True, "memberId": "m-1", "message": "enrolled"},
    }


async def test_study_handler_falls_back_to_product_id_and_transaction_id() -> None:
    recorder = Recorder(answer(200, {"success": True}))
    async with recorder.client() as http:
        await StudyEnrollmentHandler(http, STUDY_URL).grant(study_request())

    sent = recorder.requests[0]
    assert str(sent.url) == f"{STUDY_URL}/api/studies/study_123/confirm-payment"
    assert json.loads(sent.content) == {"applicationId": None, "paymentId": TID, "checkoutId": TID}
    assert sent.headers["Idempotency-Key"] == TID


async def test_credit_handler_posts_grants_with_user_product_and_amount() -> None:
    recorder = Recorder(answer(201, {"grantId": "g-1"}))
    async with recorder.client() as http:
        details = await CreditTopUpHandler(http, CREDIT_URL + "/").grant(credit_request())

    sent = recorder.requests[0]
    assert sent.method == "POST"
    assert str(sent.url) == f"{CREDIT_URL}/api/credits/grants"
    assert sent.headers["Idempotency-Key"] == TID
    assert json.loads(sent.content) == {
        "userId": "user-2",
        "productId": "resume_credit_10",
        "paymentId": TID,
        "amount": 9_900,
    }
    assert details == {"downstreamStatus": 201, "answer": {"grantId": "g-1"}}


# --- status mapping -------------------------------------------------------------------------------


@pytest.mark.parametrize("handler_kind", ["study", "credit"])
@pytest.mark.parametrize(
    ("status", "body"),
    [(200, {"success": True}), (201, {"ok": 1}), (204, None), (409, {"message": "already granted"})],
)
async def test_2xx_and_409_are_success(handler_kind: str, status: int, body: Any) -> None:
    recorder = Recorder(answer(status, body))
    async with recorder.client() as http:
        if handler_kind == "study":
            details = await StudyEnrollmentHandler(http, STUDY_URL).grant(study_request())
        else:
            details = await CreditTopUpHandler(http, CREDIT_URL).grant(credit_request())
    assert details["downstreamStatus"] == status
    assert details["answer"] == (body or {})
    assert len(recorder.requests) == 1  # the handler itself never retries: the queue does


async def test_success_with_a_non_json_or_non_object_body_still_succeeds() -> None:
    for responder in (
        lambda _: httpx.Response(200, text="OK"),
        lambda _: httpx.Response(200, json=["a", "list"]),
    ):
        async with Recorder(responder).client() as http:
            details = await StudyEnrollmentHandler(http, STUDY_URL).grant(study_request())
        assert details == {"downstreamStatus": 200, "answer": {}}


@pytest.mark.parametrize("handler_kind", ["study", "credit"])
@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
async def test_5xx_and_429_are_transient(handler_kind: str, status: int) -> None:
    recorder = Recorder(answer(status, {"message": "busy"}))
    async with recorder.client() as http:
        with pytest.raises(TransientGrantError):
            if handler_kind == "study":
                await StudyEnrollmentHandler(http, STUDY_URL).grant(study_request())
            else:
                await CreditTopUpHandler(http, CREDIT_URL).grant(credit_request())


@pytest.mark.parametrize(
    "error", [httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.RemoteProtocolError]
)
async def test_timeouts_and_connection_errors_are_transient(error: type[httpx.TransportError]) -> None:
    async with Recorder(raising(error)).client() as http:
        with pytest.raises(TransientGrantError) as caught:
            await StudyEnrollmentHandler(http, STUDY_URL).grant(study_request())
    assert isinstance(caught.value.__cause__, error)


@pytest.mark.parametrize("handler_kind", ["study", "credit"])
@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
async def test_other_4xx_are_permanent(handler_kind: str, status: int) -> None:
    recorder = Recorder(answer(status, {"message": "study is full"}))
    async with recorder.client() as http:
        with pytest.raises(PermanentGrantError) as caught:
            if handler_kind == "study":
                await StudyEnrollmentHandler(http, STUDY_URL).grant(study_request())
            else:
                await CreditTopUpHandler(http, CREDIT_URL).grant(credit_request())
    assert str(status) in str(caught.value)


async def test_a_real_read_timeout_is_transient() -> None:
    """Not a raised exception: the client's own read timeout fires against a server that holds."""
    with running_fake_downstream() as fake:
        fake.hold(3)
        async with httpx.AsyncClient(timeout=0.2) as http:
            with pytest.raises(TransientGrantError) as caught:
                await StudyEnrollmentHandler(http, fake.url).grant(study_request())
        fake.release()
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


async def test_a_refused_connection_is_transient() -> None:
    async with httpx.AsyncClient(timeout=1) as http:
        with pytest.raises(TransientGrantError) as caught:
            await CreditTopUpHandler(http, f"http://127.0.0.1:{free_port()}").grant(credit_request())
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


# --- wiring ---------------------------------------------------------------------------------------


async def test_build_handlers_picks_http_handlers_only_when_a_url_is_configured() -> None:
    http = httpx.AsyncClient()
    engine: Any = object()
    with_urls = build_handlers(
        engine=engine, http=http, study_service_url=STUDY_URL, credit_service_url=CREDIT_URL
    )
    assert isinstance(with_urls[ProductType.STUDY], StudyEnrollmentHandler)
    assert isinstance(with_urls[ProductType.AI_RESUME], CreditTopUpHandler)
    without = build_handlers(engine=engine, http=http, study_service_url=None, credit_service_url=None)
    assert isinstance(without[ProductType.STUDY], LedgerGrantHandler)
    assert without[ProductType.STUDY] is without[ProductType.AI_RESUME]
    mixed = build_handlers(engine=engine, http=http, study_service_url=STUDY_URL, credit_service_url=None)
    assert isinstance(mixed[ProductType.STUDY], StudyEnrollmentHandler)
    assert isinstance(mixed[ProductType.AI_RESUME], LedgerGrantHandler)
    await http.aclose()
