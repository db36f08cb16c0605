"""The real Litestar app in-process (AsyncTestClient) on a migrated SQLite file.

Only the PG (a FakeGateway) and the provisioning queue (a FakeQueue) are replaced; the SQL
repository, the idempotency store, auth, routing and error handling are the production ones.
Every test uses its own user, so "nothing was written" is "that user's list stays empty".
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.core.auth import TokenAuthority
from app.core.catalog import StaticProductCatalog
from app.core.checkout import IssueCommand
from app.core.domain import Method, ProductType
from app.gateway.models import GatewayErrorKind
from app.main import Services, build_services, create_app
from app.migrate import upgrade_database
from app.settings import load_settings
from tests.support.fakes import FakeGateway, FakeQueue, gateway_error, in_progress_payment

NO_PAYMENT_AT_PG = gateway_error(
    GatewayErrorKind.NOT_FOUND, "NOT_FOUND_PAYMENT", "no such payment", http_status=404
)

FRONTEND = "https://shop.example.com"
PUBLIC = "https://pay.example.com"
ISSUE = "/api/payments/issue"
STUDY = {"productType": "STUDY", "productId": "study_123", "amount": 50000}
TOSS_ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{6,64}$")


@dataclass
class Api:
    client: AsyncTestClient[Litestar]
    services: Services
    gateway: FakeGateway
    queue: FakeQueue

    def headers(self, user_id: str, *, admin: bool = False, key: str | None = None) -> dict[str, str]:
        """A valid bearer token for `user_id`, and an Idempotency-Key when given."""
        headers = {"Authorization": f"Bearer {self.services.tokens.mint(user_id, admin=admin)}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    async def issue_directly(self, user_id: str) -> str:
        """A CREATED transaction made through the service (independent of the HTTP issue path)."""
        issued = await self.services.checkout.issue(
            IssueCommand(
                user_id=user_id,
                product_type=ProductType.STUDY,
                product_id="study_123",
                amount=50000,
                order_name=None,
                method=Method.CARD,
                metadata={},
            )
        )
        return issued.transaction.transaction_id

    async def listed(self, user_id: str) -> list[dict[str, Any]]:
        response = await self.client.get("/api/payments", headers=self.headers(user_id))
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('core_api') / 't.sqlite3'}"
    await asyncio.to_thread(upgrade_database, url)  # alembic runs its own event loop
    settings = load_settings(
        {},
        database_url=url,
        environment="test",
        public_base_url=PUBLIC,
        frontend_base_url=FRONTEND,
    )
    gateway, queue = FakeGateway(), FakeQueue()
    # With a FakeQueue the lifespan starts no embedded sweeper: nothing runs behind the tests'
    # backs, and no task is left on the test client's own event loop when it closes.
    services = build_services(settings, gateway=gateway, queue=queue)
    try:
        async with AsyncTestClient(app=create_app(services=services)) as client:
            yield Api(client, services, gateway, queue)
    finally:
        await services.close()


@pytest.fixture
def user() -> str:
    return f"user_{secrets.token_hex(6)}"


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The API's one error envelope: {code, message, details?}."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) <= {"code", "message", "details"} and {"code", "message"} <= set(body), body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"], body
    return body


# --- POST /api/payments/issue: what is refused, and that nothing is written ------------------------

BAD_ISSUE_BODIES: list[Any] = [
    pytest.param(
        b'{"productType":"STUDY","productId":"study_123",', 400, "PAY_000", None, id="malformed-json"
    ),
    pytest.param(b"[]", 400, "PAY_000", None, id="not-an-object"),
    pytest.param(b"", 400, "PAY_000", None, id="empty-body"),
    pytest.param({**STUDY, "amount": "50000"}, 400, "PAY_000", "amount", id="amount-as-string"),
    pytest.param({**STUDY, "amount": 50000.0}, 400, "PAY_000", "amount", id="amount-as-float"),
    pytest.param({**STUDY, "amount": 50000.5}, 400, "PAY_000", "amount", id="amount-fractional"),
    pytest.param({**STUDY, "amount": 0}, 400, "PAY_000", "amount", id="amount-zero"),
    pytest.param({**STUDY, "amount": -50000}, 400, "PAY_000", "amount", id="amount-negative"),
    pytest.param({**STUDY, "amount": True}, 400, "PAY_000", "amount", id="amount-bool"),
    pytest.param({**STUDY, "amount": 10**15}, 400, "PAY_000", "amount", id="amount-huge"),
    pytest.param(
        {"productType": "STUDY", "productId": "study_123"}, 400, "PAY_000", "amount", id="amount-missing"
    ),
    pytest.param({**STUDY, "productType": "BOOK"}, 400, "PAY_000", "productType", id="unknown-productType"),
    pytest.param({**STUDY, "productId": ""}, 400, "PAY_000", "productId", id="productId-empty"),
    pytest.param({**STUDY, "productId": "s" * 51}, 400, "PAY_000", "productId", id="productId-too-long"),
    pytest.param({**STUDY, "method": "CASH"}, 400, "PAY_000", "method", id="unknown-method"),
    pytest.param({**STUDY, "orderName": "n" * 101}, 400, "PAY_000", "orderName", id="orderName-too-long"),
    pytest.param({**STUDY, "metadata": "cohort 7"}, 400, "PAY_000", "metadata", id="metadata-not-object"),
    pytest.param({**STUDY, "couponCode": "FREE"}, 400, "PAY_000", "couponCode", id="unknown-extra-field"),
    pytest.param({**STUDY, "productId": "study_999"}, 404, "PAY_008", None, id="unknown-product"),
    pytest.param({**STUDY, "amount": 100}, 400, "PAY_007", None, id="amount-not-the-price"),
    pytest.param(
        {**STUDY, "metadata": {"note": "x" * 5000}}, 400, "PAY_000", "metadata", id="metadata-over-4kb"
    ),
]


@pytest.mark.parametrize(("body", "status", "code", "field"), BAD_ISSUE_BODIES)
async def test_bad_issue_requests_are_refused_and_write_nothing(
    api: Api, user: str, body: Any, status: int, code: str, field: str | None
) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await api.client.post(
        ISSUE, content=raw, headers={**api.headers(user), "Content-Type": "application/json"}
    )
    envelope = assert_envelope(response, status, code)
    if field is not None:  # docs/api.md: `details` (or at least the message) says which field
        assert field in json.dumps(envelope), envelope
    assert await api.listed(user) == []


async def test_amount_not_the_price_says_the_price(api: Api, user: str) -> None:
    response = await api.client.post(ISSUE, json={**STUDY, "amount": 100}, headers=api.headers(user))
    assert assert_envelope(response, 400, "PAY_007")["details"] == {"expectedAmount": 50000}


def _forged() -> str:
    return TokenAuthority("not-the-service-secret-" + "x" * 48).mint("victim")


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param("expired", id="expired"),
        pytest.param("Bearer " + _forged(), id="forged"),
        pytest.param("Basic dXNlcjpwYXNz", id="wrong-scheme"),
        pytest.param("Bearer garbage", id="garbage"),
    ],
)
async def test_issue_without_valid_token(api: Api, user: str, authorization: str | None) -> None:
    headers: dict[str, str] = {}
    if authorization == "expired":
        headers["Authorization"] = "Bearer " + api.services.tokens.mint(user, ttl_seconds=-5)
    elif authorization is not None:
        headers["Authorization"] = authorization
    response = await api.client.post(ISSUE, json=STUDY, headers={**headers, "Accept-Language": "en"})
    body = assert_envelope(response, 401, "AUTH_001")
    if authorization == "expired":
        assert "expired" in body["message"]
    assert await api.listed(user) == []
    assert await api.listed("victim") == []


@pytest.mark.parametrize(
    "path", ["/api/payments", "/api/payments/TXN_x_000001/status", "/api/payments/TXN_x_000001"]
)
async def test_reads_without_a_token(api: Api, path: str) -> None:
    assert_envelope(await api.client.get(path), 401, "AUTH_001")
    expired = {"Authorization": "Bearer " + api.services.tokens.mint("u", ttl_seconds=-5)}
    assert_envelope(await api.client.get(path, headers=expired), 401, "AUTH_001")


# --- POST /api/payments/issue: success and Idempotency-Key ----------------------------------------


async def test_issue_over_http(api: Api, user: str) -> None:
    before = datetime.now().astimezone()
    response = await api.client.post(ISSUE, json=STUDY, headers=api.headers(user))
    assert response.status_code == 201, response.text
    body = response.json()
    tid = body["transactionId"]
    assert TOSS_ORDER_ID.match(tid)
    assert (body["status"], body["statusCode"], body["amount"]) == ("CREATED", 10, 50000)
    assert body["orderName"] and body["clientKey"] == api.services.settings.toss.client_key
    assert body["successUrl"] == f"{PUBLIC}/api/payments/callback/success"
    assert parse_qs(urlsplit(body["failUrl"]).query)["transactionId"] == [tid]
    expires = datetime.fromisoformat(body["expiresAt"].replace("Z", "+00:00"))
    assert expires.tzinfo is not None
    assert timedelta(minutes=29) < expires - before < timedelta(minutes=31)
    assert [t["transactionId"] for t in await api.listed(user)] == [tid]


async def test_same_key_same_body_replays(api: Api, user: str) -> None:
    headers = api.headers(user, key="order-1")
    first = await api.client.post(ISSUE, json=STUDY, headers=headers)
    # same JSON with its keys in another order is the same request
    second = await api.client.post(ISSUE, json=dict(reversed(list(STUDY.items()))), headers=headers)
    assert (first.status_code, second.status_code) == (201, 201), (first.text, second.text)
    assert first.json()["transactionId"] == second.json()["transactionId"]
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert len(await api.listed(user)) == 1


async def test_same_key_different_body_is_refused(api: Api, user: str) -> None:
    headers = api.headers(user, key="order-2")
    first = await api.client.post(ISSUE, json=STUDY, headers=headers)
    assert first.status_code == 201, first.text
    other = {"productType": "AI_RESUME", "productId": "resume_credit_10", "amount": 9900}
    assert_envelope(await api.client.post(ISSUE, json=other, headers=headers), 422, "PAY_009")
    assert [t["transactionId"] for t in await api.listed(user)] == [first.json()["transactionId"]]


async def test_same_key_from_another_user_is_another_request(api: Api, user: str) -> None:
    a = await api.client.post(ISSUE, json=STUDY, headers=api.headers(user, key="k"))
    b = await api.client.post(ISSUE, json=STUDY, headers=api.headers(user + "_b", key="k"))
    assert (a.status_code, b.status_code) == (201, 201), (a.text, b.text)
    assert a.json()["transactionId"] != b.json()["transactionId"]
    assert "idempotent-replayed" not in b.headers


async def test_a_refused_request_does_not_burn_its_key(api: Api, user: str) -> None:
    headers = api.headers(user, key="order-3")
    assert_envelope(
        await api.client.post(ISSUE, json={**STUDY, "amount": 1}, headers=headers), 400, "PAY_007"
    )
    retried = await api.client.post(ISSUE, json=STUDY, headers=headers)
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers


async def test_idempotency_key_too_long(api: Api, user: str) -> None:
    headers = api.headers(user, key="k" * 256)
    assert_envelope(await api.client.post(ISSUE, json=STUDY, headers=headers), 400, "PAY_000")
    assert await api.listed(user) == []


async def test_ten_concurrent_requests_with_one_key_make_one_transaction(api: Api, user: str) -> None:
    headers = api.headers(user, key="double-click")
    responses = await asyncio.gather(
        *(api.client.post(ISSUE, json=STUDY, headers=headers) for _ in range(10))
    )

    created = [r for r in responses if r.status_code == 201]
    others = [r for r in responses if r.status_code != 201]
    assert created, [r.text for r in responses]
    for r in others:
        assert_envelope(r, 409, "PAY_010")
    assert len({r.json()["transactionId"] for r in created}) == 1
    assert sum(1 for r in created if "idempotent-replayed" not in r.headers) == 1
    assert [t["transactionId"] for t in await api.listed(user)] == [created[0].json()["transactionId"]]


# --- reads: status, detail, list ------------------------------------------------------------------


async def test_status_for_the_owner(api: Api, user: str) -> None:
    tid = await api.issue_directly(user)
    response = await api.client.get(f"/api/payments/{tid}/status", headers=api.headers(user))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {
        "transactionId",
        "status",
        "statusCode",
        "amount",
        "completedAt",
        "isSettled",
        "needsPolling",
        "retryAfterMs",
        "message",
        "failure",
        "virtualAccount",
    }
    assert (body["transactionId"], body["status"], body["statusCode"], body["amount"]) == (
        tid,
        "CREATED",
        10,
        50000,
    )
    assert (body["isSettled"], body["needsPolling"]) == (False, True)
    assert body["retryAfterMs"] in (1000, 2000)  # the schedule's first steps
    assert body["failure"] is None and body["virtualAccount"] is None
    attempt = await api.client.get(f"/api/payments/{tid}/status?attempt=3", headers=api.headers(user))
    assert attempt.json()["retryAfterMs"] == 5000


@pytest.mark.parametrize("what", ["status", "detail"])
async def test_another_users_transaction_is_not_found(api: Api, user: str, what: str) -> None:
    tid = await api.issue_directly(user)
    suffix = "/status" if what == "status" else ""
    stranger = await api.client.get(f"/api/payments/{tid}{suffix}", headers=api.headers(user + "_mallory"))
    missing = await api.client.get(
        f"/api/payments/TXN_20250101_nosuchthing000{suffix}", headers=api.headers(user)
    )
    body = assert_envelope(stranger, 404, "PAY_008")
    assert body == assert_envelope(missing, 404, "PAY_008")  # indistinguishable from "no such id"
    assert user not in stranger.text


async def test_admin_reads_another_users_detail(api: Api, user: str) -> None:
    tid = await api.issue_directly(user)
    response = await api.client.get(f"/api/payments/{tid}", headers=api.headers("ops", admin=True))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["transactionId"], body["userId"]) == (tid, user)
    assert [h["statusCode"] for h in body["history"]] == [10]


@pytest.mark.parametrize(
    "query",
    ["status=PAID", "status=99", "status=CREATED,NOPE", "limit=0", "limit=101", "limit=ten", "limit=-1"],
)
async def test_bad_list_parameters(api: Api, user: str, query: str) -> None:
    await api.issue_directly(user)
    response = await api.client.get(f"/api/payments?{query}", headers=api.headers(user))
    body = assert_envelope(response, 400, "PAY_000")
    assert query.split("=")[0] in json.dumps(body)


async def test_list_pages_and_filters(api: Api, user: str) -> None:
    ids = [await api.issue_directly(user) for _ in range(5)]
    api.gateway.on_find(NO_PAYMENT_AT_PG)
    await api.services.checkout.handle_fail_callback(
        transaction_id=ids[2], order_id=None, code="X", message="x"
    )
    pages: list[list[str]] = []
    cursor = None
    for _ in range(4):
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = (await api.client.get(f"/api/payments?{query}", headers=api.headers(user))).json()
        pages.append([t["transactionId"] for t in body["items"]])
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[:1]]
    failed = await api.client.get("/api/payments?status=PAYMENT_FAILED", headers=api.headers(user))
    assert [t["transactionId"] for t in failed.json()["items"]] == [ids[2]]
    by_code = await api.client.get("/api/payments?status=41,10", headers=api.headers(user))
    assert len(by_code.json()["items"]) == 5


# --- the browser callbacks over HTTP --------------------------------------------------------------


async def test_success_callback_redirects_and_the_poll_sees_it(api: Api, user: str) -> None:
    tid = await api.issue_directly(user)
    response = await api.client.get(
        f"/api/payments/callback/success?paymentType=NORMAL&orderId={tid}&paymentKey=pk_http_1&amount=50000",
        follow_redirects=False,
    )
    assert response.status_code == 302
    assert response.headers["location"] == f"{FRONTEND}/payment/success?transactionId={tid}"
    assert [c.kwargs["amount"] for c in api.gateway.confirm_calls if c.kwargs["order_id"] == tid] == [50000]
    assert api.queue.grants.count(tid) == 1

    status = (await api.client.get(f"/api/payments/{tid}/status", headers=api.headers(user))).json()
    assert (status["isSettled"], status["needsPolling"], status["retryAfterMs"]) == (True, False, None)
    assert status["completedAt"] is not None
    detail = (await api.client.get(f"/api/payments/{tid}", headers=api.headers(user))).json()
    assert [h["statusCode"] for h in detail["history"]] == [10, 30, 40, 45]
    assert detail["paymentKey"] == "pk_http_1"

    again = await api.client.get(
        f"/api/payments/callback/success?orderId={tid}&paymentKey=pk_http_1&amount=50000",
        follow_redirects=False,
    )
    assert again.headers["location"] == response.headers["location"]
    assert len([c for c in api.gateway.confirm_calls if c.kwargs["order_id"] == tid]) == 1


async def test_tampered_callback_over_http(api: Api, user: str) -> None:
    tid = await api.issue_directly(user)
    api.gateway.on_find(in_progress_payment(tid, 50000, payment_key="pk_x"))  # the buyer's own key
    response = await api.client.get(
        f"/api/payments/callback/success?orderId={tid}&paymentKey=pk_x&amount=100", follow_redirects=False
    )
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{FRONTEND}/payment/fail"
    assert parse_qs(location.query)["code"] == ["PAY_003"]
    assert [c for c in api.gateway.confirm_calls if c.kwargs["order_id"] == tid] == []
    status = (await api.client.get(f"/api/payments/{tid}/status", headers=api.headers(user))).json()
    assert (status["status"], status["failure"]["code"]) == ("PAYMENT_FAILED", "PAY_003")


@pytest.mark.parametrize("amount", ["%C2%B2", "9" * 5000], ids=["superscript-two", "5000-digits"])
async def test_callback_with_an_unparseable_amount_still_redirects(api: Api, user: str, amount: str) -> None:
    tid = await api.issue_directly(user)
    api.gateway.on_find(in_progress_payment(tid, 50000, payment_key="pk_x"))
    response = await api.client.get(
        f"/api/payments/callback/success?orderId={tid}&paymentKey=pk_x&amount={amount}",
        follow_redirects=False,
    )
    # the browser must land on the fail page, not on a JSON 500
    assert response.status_code == 302, response.text
    assert parse_qs(urlsplit(response.headers["location"]).query)["code"] == ["PAY_003"]
    assert [c for c in api.gateway.confirm_calls if c.kwargs["order_id"] == tid] == []


async def test_fail_callback_over_http(api: Api, user: str) -> None:
    tid = await api.issue_directly(user)
    api.gateway.on_find(NO_PAYMENT_AT_PG)
    response = await api.client.get(
        f"/api/payments/callback/fail?transactionId={tid}&code=PAY_PROCESS_CANCELED&message=cancelled",
        headers={"Accept-Language": "en-US,en;q=0.9,ko;q=0.8"},  # the browser's
        follow_redirects=False,
    )
    assert response.status_code == 302
    query = parse_qsl(urlsplit(response.headers["location"]).query)
    assert query == [
        ("transactionId", tid),
        ("code", "PAY_PROCESS_CANCELED"),  # the PG's word: the buyer cancelled
        ("message", "The payment was cancelled in the payment window."),
        ("errorCode", "PAY_003"),  # ours
    ]
    expected = {
        "code": "PAY_003",
        "message": "The payment was cancelled in the payment window.",
        "pgCode": "PAY_PROCESS_CANCELED",
        "pgMessage": "cancelled",
    }
    english = {**api.headers(user), "Accept-Language": "en"}
    status = (await api.client.get(f"/api/payments/{tid}/status", headers=english)).json()
    assert (status["statusCode"], status["failure"]) == (41, expected)
    assert status["message"] == expected["message"]
    detail = (await api.client.get(f"/api/payments/{tid}", headers=english)).json()
    assert detail["failure"] == expected
    # Without Accept-Language: our words in Korean; the PG's own stay as they came.
    korean = {**expected, "message": "결제창에서 결제가 취소되었습니다."}
    status = (await api.client.get(f"/api/payments/{tid}/status", headers=api.headers(user))).json()
    assert (status["failure"], status["message"]) == (korean, korean["message"])
    detail = (await api.client.get(f"/api/payments/{tid}", headers=api.headers(user))).json()
    assert detail["failure"] == korean
    listed = await api.listed(user)
    assert [t["failure"] for t in listed] == [korean]


# --- public endpoints -----------------------------------------------------------------------------


async def test_products_list_the_catalog(api: Api) -> None:
    response = await api.client.get("/api/products")
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    expected = [
        {"productType": p.product_type.value, "productId": p.product_id, "name": p.name, "amount": p.amount}
        for p in await StaticProductCatalog.from_file().list_products()
    ]
    # Each product says what it grants (and a study its dates, which the refund policy reads).
    assert [{k: i[k] for k in ("productType", "productId", "name", "amount")} for i in items] == expected
    grants = {i["productId"]: i for i in items}
    assert (grants["study_123"]["studyId"], grants["study_123"]["startsAt"]) == (
        "study_123",
        "2027-03-02T19:00:00+09:00",
    )
    assert "credits" not in grants["study_123"]
    assert grants["resume_credit_10"]["credits"] == 10
    prices = {(i["productType"], i["productId"]): i["amount"] for i in items}
    assert prices[("STUDY", "study_123")] == 50000
    assert prices[("AI_RESUME", "resume_credit_10")] == 9900


async def test_health(api: Api) -> None:
    live = await api.client.get("/health/live")
    ready = await api.client.get("/health/ready")
    assert (live.status_code, live.json()["status"]) == (200, "ok")
    assert (ready.status_code, ready.json()["status"], ready.json()["database"]) == (200, "ok", "ok")


async def test_unknown_route_uses_the_envelope(api: Api) -> None:
    response = await api.client.get("/api/nothing-here")
    assert response.status_code == 404
    assert set(response.json()) <= {"code", "message", "details"}


@pytest.mark.parametrize("path", [ISSUE, "/api/payments/TXN_20250314_whatever0001/refund"])
@pytest.mark.parametrize("body", [b"", b"{", b'{"unknown": 1}'], ids=["empty", "broken", "unknown-field"])
async def test_the_token_is_checked_before_the_body_is_read(api: Api, path: str, body: bytes) -> None:
    """An anonymous request gets 401 whatever it sent: no decoding for callers we do not know."""
    response = await api.client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert_envelope(response, 401, "AUTH_001")
