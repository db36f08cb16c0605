"""Grant handlers against httpx.MockTransport: the request they send and how answers map to errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.core.domain import Method, ProductType, RefundStatus, Status, Transaction
from app.core.ports import Product, RefundRecord
from app.provisioning.handlers import (
    CreditTopUpHandler,
    GrantRequest,
    LedgerGrantHandler,
    PermanentGrantError,
    StudyEnrollmentHandler,
    TransientGrantError,
    build_handlers,
    credits_to_revoke,
    revoke_request,
)
from tests.support.fake_downstream import running_fake_downstream
from tests.support.servers import free_port

STUDY_URL = "http://study.test"
CREDIT_URL = "http://credit.test"
TID = "TXN_20250314_abcdefghijklmnop"

Responder = Callable[[httpx.Request], httpx.Response]


def study_product(study_id: str = "study_123") -> Product:
    return Product(
        ProductType.STUDY,
        "study_123",
        "Async study",
        50_000,
        study_id=study_id,
        starts_at=datetime(2027, 3, 2, 10, tzinfo=UTC),
    )


CREDIT_PRODUCT = Product(ProductType.AI_RESUME, "resume_credit_10", "10 credits", 9_900, credits=10)


def _transaction(product: Product, user_id: str, metadata: dict[str, Any]) -> Transaction:
    now = datetime(2025, 3, 14, tzinfo=UTC)
    return Transaction(
        provider="TOSS",
        transaction_id=TID,
        user_id=user_id,
        product_type=product.product_type,
        product_id=product.product_id,
        order_name=product.name,
        amount=product.amount,
        method=Method.CARD,
        status=Status.PROVISION_PENDING,
        created_at=now,
        updated_at=now,
        expires_at=now,
        metadata=metadata,
    )


def study_request(product: Product | None = None, **metadata: Any) -> GrantRequest:
    product = product or study_product()
    return GrantRequest.of(_transaction(product, "user-1", metadata), product)


def credit_request() -> GrantRequest:
    return GrantRequest.of(_transaction(CREDIT_PRODUCT, "user-2", {"ignored": True}), CREDIT_PRODUCT)


def refund(refund_id: str, amount: int, status: RefundStatus = RefundStatus.REQUESTED) -> RefundRecord:
    return RefundRecord(
        refund_id=refund_id,
        transaction_id=TID,
        amount=amount,
        reason="r",
        actor="user-1",
        status=status,
        created_at=datetime(2025, 3, 15, tzinfo=UTC),
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


async def test_study_handler_enrolls_in_the_catalogs_study_with_what_the_study_service_checks() -> None:
    recorder = Recorder(answer(200, {"success": True, "memberId": "m-1", "message": "enrolled"}))
    async with recorder.client() as http:
        details = await StudyEnrollmentHandler(http, STUDY_URL + "/").grant(
            study_request(applicationId="app-7", checkoutId="co-9")
        )

    assert len(recorder.requests) == 1
    sent = recorder.requests[0]
    assert sent.method == "POST"
    assert str(sent.url) == f"{STUDY_URL}/api/studies/study_123/confirm-payment"
    assert sent.headers["Idempotency-Key"] == TID
    assert sent.headers["content-type"] == "application/json"
    assert json.loads(sent.content) == {
        "applicationId": "app-7",
        "paymentId": TID,
        "userId": "user-1",
        "productId": "study_123",
        "amount": 50_000,
    }
    # The downstream's answer body is never handed back (it could reach the buyer): the status only.
    assert details == {"downstreamStatus": 200}


@pytest.mark.parametrize(
    "study_id",
    ["study_123", "../../admin/users/export?x=", "study_algo_7"],
    ids=["same", "traversal", "other"],
)
async def test_buyer_metadata_never_chooses_the_study(study_id: str) -> None:
    """Attack: buy study_algo_7 (35,000 KRW) with metadata.studyId naming another study or a path."""
    cheap = Product(
        ProductType.STUDY,
        "study_algo_7",
        "Algorithms",
        35_000,
        study_id="study_algo_7",
        starts_at=datetime(2027, 3, 9, tzinfo=UTC),
    )
    recorder = Recorder(answer(200, {}))
    async with recorder.client() as http:
        await StudyEnrollmentHandler(http, STUDY_URL).grant(study_request(cheap, studyId=study_id))
    assert [str(r.url) for r in recorder.requests] == [
        f"{STUDY_URL}/api/studies/study_algo_7/confirm-payment"
    ]
    assert json.loads(recorder.requests[0].content)["amount"] == 35_000


async def test_every_path_segment_built_from_data_is_quoted() -> None:
    recorder = Recorder(answer(200, {}))
    async with recorder.client() as http:
        await StudyEnrollmentHandler(http, STUDY_URL).grant(study_request(study_product("a/../b?c=#d")))
    assert recorder.requests[0].url.raw_path == b"/api/studies/a%2F..%2Fb%3Fc%3D%23d/confirm-payment"


@pytest.mark.parametrize("value", [42, "", "x" * 65, {"nested": 1}], ids=["int", "empty", "long", "object"])
async def test_an_application_id_that_is_not_a_short_string_is_dropped(value: Any) -> None:
    recorder = Recorder(answer(200, {}))
    async with recorder.client() as http:
        await StudyEnrollmentHandler(http, STUDY_URL).grant(study_request(applicationId=value))
    assert json.loads(recorder.requests[0].content)["applicationId"] is None


async def test_credit_handler_grants_the_catalogs_credit_count() -> None:
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
        "credits": 10,
    }
    assert details == {"downstreamStatus": 201}


# --- the revoke side --------------------------------------------------------------------------------


async def test_study_revoke_posts_cancel_payment_keyed_by_the_refund() -> None:
    recorder = Recorder(answer(200, {"cancelled": True}))
    request = revoke_request(
        refund("RF_1", 50_000), study_request(applicationId="app-7"), [refund("RF_1", 50_000)]
    )
    async with recorder.client() as http:
        details = await StudyEnrollmentHandler(http, STUDY_URL).revoke(request)
    sent = recorder.requests[0]
    assert str(sent.url) == f"{STUDY_URL}/api/studies/study_123/cancel-payment"
    assert sent.headers["Idempotency-Key"] == "RF_1"
    assert json.loads(sent.content) == {
        "applicationId": "app-7",
        "paymentId": TID,
        "userId": "user-1",
        "refundedAmount": 50_000,
    }
    assert details == {"downstreamStatus": 200}


async def test_credit_revocations_take_back_credits_in_proportion_and_all_of_them_in_the_end() -> None:
    recorder = Recorder(answer(200, {}))
    refunds = [refund("RF_1", 1_000), refund("RF_X", 5_000, RefundStatus.REFUSED), refund("RF_2", 8_900)]
    async with recorder.client() as http:
        for r in (refunds[0], refunds[2]):
            await CreditTopUpHandler(http, CREDIT_URL).revoke(revoke_request(r, credit_request(), refunds))
    sent = [json.loads(r.content) for r in recorder.requests]
    assert [str(r.url) for r in recorder.requests] == [f"{CREDIT_URL}/api/credits/revocations"] * 2
    assert [r.headers["Idempotency-Key"] for r in recorder.requests] == ["RF_1", "RF_2"]
    # 1,000 of 9,900 KRW: ceil(10 × 1000/9900) = 2 credits; the rest (a refused refund counts for
    # nothing) takes the remaining 8, so a buyer never keeps credits they got their money back for.
    assert [(b["refundId"], b["refundedAmount"], b["credits"]) for b in sent] == [
        ("RF_1", 1_000, 2),
        ("RF_2", 8_900, 8),
    ]
    assert sent[0]["userId"] == "user-2"


@pytest.mark.parametrize(
    ("credits", "price", "steps"),
    [(10, 9_900, [100] * 99), (30, 24_900, [24_899, 1]), (10, 9_900, [9_900]), (1, 3, [1, 1, 1])],
)
def test_credits_to_revoke_sum_to_the_grant_exactly(credits: int, price: int, steps: list[int]) -> None:
    before, total = 0, 0
    for amount in steps:
        taken = credits_to_revoke(credits, price, before, amount)
        assert taken >= 0
        total += taken
        before += amount
    assert total == credits


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
    assert details == {"downstreamStatus": status}
    assert len(recorder.requests) == 1  # the handler itself never retries: the queue does


async def test_success_with_a_non_json_or_non_object_body_still_succeeds() -> None:
    for responder in (
        lambda _: httpx.Response(200, text="OK"),
        lambda _: httpx.Response(200, json=["a", "list"]),
    ):
        async with Recorder(responder).client() as http:
            details = await StudyEnrollmentHandler(http, STUDY_URL).grant(study_request())
        assert details == {"downstreamStatus": 200}


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
    assert "study is full" not in str(caught.value)  # the downstream's words never reach the buyer


async def test_a_real_read_timeout_is_transient() -> None:
    """Not a raised exception: the client's own read timeout fires against a server that holds."""
    with running_fake_downstream() as fake:
        fake.hold(3)
        # Only the read is short: a connect slowed by a loaded machine must not end it first.
        async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=0.2)) as http:
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
