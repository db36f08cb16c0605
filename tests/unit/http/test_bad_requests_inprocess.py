"""A walk through bad requests against the real app in-process: every answer is the envelope
`{code, message, details?}`, its code is one of ApiError's, its HTTP status the one listed for that
code, and its message is Korean unless Accept-Language prefers English. A PAY_000 names each field
as the client sent it (and where: body, query, header or path).

As in tests/unit/core/test_api_inprocess.py: Litestar's AsyncTestClient over a migrated SQLite
file, with a FakeGateway and a FakeQueue; a second app has REDIS_URL on a closed port.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.exceptions import ClientException, HTTPException, NotFoundException, ServiceUnavailableException
from litestar.testing import AsyncTestClient

from app.core.checkout import IssueCommand
from app.core.domain import Method, ProductType
from app.core.idempotency import request_fingerprint
from app.http.errors import EXCEPTION_HANDLERS, ApiError
from app.main import Services, build_services, create_app
from app.migrate import upgrade_database
from app.settings import load_settings
from tests.support.fakes import FakeGateway, FakeQueue
from tests.support.servers import free_port

ISSUE = "/api/payments/issue"
WEBHOOK = "/webhooks/payments/toss"
STUDY = {"productType": "STUDY", "productId": "study_123", "amount": 50000}
PRICE = 50000
HANGUL = re.compile(r"[\uac00-\ud7a3]")
ENGLISH = "en-US,en;q=0.9,ko;q=0.8"
REFUNDS_PER_MINUTE = 40  # the walk refunds as "owner" below that


@dataclass
class World:
    client: AsyncTestClient[Litestar]
    services: Services
    without_redis: AsyncTestClient[Litestar]
    without_redis_services: Services
    paid: str  # a granted (50) transaction of "owner"
    created: str  # a CREATED (10) transaction of "owner"

    def token(self, user_id: str, *, admin: bool = False, ttl: int = 3600) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.services.tokens.mint(user_id, admin=admin, ttl_seconds=ttl)}"}

    def owner(self, **extra: str) -> dict[str, str]:
        return {**self.token("owner"), **extra}

    def someone(self, **extra: str) -> dict[str, str]:
        """A user of their own, for requests that count (rate limits) or claim (Idempotency-Keys)."""
        return {**self.token(f"user_{secrets.token_hex(6)}"), **extra}


async def _issue(services: Services, user_id: str) -> str:
    issued = await services.checkout.issue(
        IssueCommand(
            user_id=user_id,
            product_type=ProductType.STUDY,
            product_id="study_123",
            amount=PRICE,
            order_name=None,
            method=Method.CARD,
            metadata={},
        )
    )
    return issued.transaction.transaction_id


async def _app(tmp_path_factory: pytest.TempPathFactory, name: str, **overrides: Any) -> tuple[str, Services]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp(name) / 't.sqlite3'}"
    await asyncio.to_thread(upgrade_database, url)  # alembic runs its own event loop
    settings = load_settings({}, database_url=url, environment="test", **overrides)
    return url, build_services(settings, gateway=FakeGateway(), queue=FakeQueue())


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    _, services = await _app(
        tmp_path_factory, "bad_requests", rate_limit_refund_per_minute=REFUNDS_PER_MINUTE
    )
    _, offline = await _app(
        tmp_path_factory, "bad_requests_no_redis", redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    try:
        async with (
            AsyncTestClient(app=create_app(services=services)) as client,
            AsyncTestClient(app=create_app(services=offline)) as without_redis,
        ):
            paid = await _issue(services, "owner")
            callback = f"/api/payments/callback/success?orderId={paid}&paymentKey=pk_walk_1&amount={PRICE}"
            assert (await client.get(callback, follow_redirects=False)).status_code == 302
            assert await services.fulfilment.complete_provisioning(paid, {})  # 45 → 50
            created = await _issue(services, "owner")
            yield World(client, services, without_redis, offline, paid, created)
    finally:
        await services.close()
        await offline.close()


# --- the walk ---------------------------------------------------------------------------------------

Probe = Callable[[World, dict[str, str]], Awaitable[httpx.Response]]


@dataclass(frozen=True)
class Bad:
    name: str
    code: str
    probe: Probe
    fields: tuple[tuple[str, str], ...] = ()  # PAY_000: (field, in) of each detail


def _issue_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {**STUDY, **changes}
    return {k: v for k, v in body.items() if v is not None}


async def _in_progress(w: World, h: dict[str, str]) -> httpx.Response:
    """The first request with this key still runs (its claim is in the store): PAY_010."""
    headers = w.someone(**{"Idempotency-Key": "key-running"})
    user_id = w.services.tokens.verify(headers["Authorization"]).user_id
    body = json.dumps(STUDY).encode()
    scope = f"{user_id}:POST:{ISSUE}"
    await w.services.idempotency.begin(scope, "key-running", request_fingerprint("POST", ISSUE, body))
    return await w.client.post(
        ISSUE, content=body, headers={**headers, "Content-Type": "application/json", **h}
    )


async def _reused_key(w: World, h: dict[str, str]) -> httpx.Response:
    headers = w.someone(**{"Idempotency-Key": "key-reused"})
    first = await w.client.post(ISSUE, json=STUDY, headers=headers)
    assert first.status_code == 201, first.text
    return await w.client.post(ISSUE, json={**STUDY, "orderName": "another"}, headers={**headers, **h})


async def _over_the_refund_limit(w: World, h: dict[str, str]) -> httpx.Response:
    headers = w.someone()
    path = "/api/payments/TXN_20250101_notours0000001/refund"
    for _ in range(REFUNDS_PER_MINUTE):
        assert (await w.client.post(path, json={"reason": "x"}, headers=headers)).status_code == 404
    response = await w.client.post(path, json={"reason": "x"}, headers={**headers, **h})
    assert int(response.headers["retry-after"]) >= 1
    return response


def _refund(tid: str) -> str:
    return f"/api/payments/{tid}/refund"


BAD_REQUESTS: list[Bad] = [
    # routing
    Bad("unknown route", "NOT_FOUND", lambda w, h: w.client.get("/api/nothing-here", headers=h)),
    Bad(
        "unknown route under a transaction",
        "NOT_FOUND",
        lambda w, h: w.client.get(f"/api/payments/{w.paid}/status/more", headers=w.owner(**h)),
    ),
    Bad("DELETE on issue", "METHOD_NOT_ALLOWED", lambda w, h: w.client.delete(ISSUE, headers=w.owner(**h))),
    Bad(
        "PUT on the status",
        "METHOD_NOT_ALLOWED",
        lambda w, h: w.client.put(f"/api/payments/{w.paid}/status", headers=w.owner(**h)),
    ),
    Bad("GET on the webhook", "METHOD_NOT_ALLOWED", lambda w, h: w.client.get(WEBHOOK, headers=h)),
    # tokens
    Bad("no token", "AUTH_001", lambda w, h: w.client.get("/api/payments", headers=h)),
    Bad(
        "expired token",
        "AUTH_001",
        lambda w, h: w.client.get("/api/payments", headers={**w.token("owner", ttl=-5), **h}),
    ),
    Bad(
        "garbage token",
        "AUTH_001",
        lambda w, h: w.client.get("/api/payments", headers={"Authorization": "Bearer garbage", **h}),
    ),
    Bad(
        "not a bearer token",
        "AUTH_001",
        lambda w, h: w.client.post(ISSUE, json=STUDY, headers={"Authorization": "Basic dXNlcjpwYXNz", **h}),
    ),
    # issue: the body
    Bad(
        "empty body",
        "PAY_000",
        lambda w, h: w.client.post(ISSUE, content=b"", headers=w.owner(**h)),
        (("body", "body"),),
    ),
    Bad(
        "not JSON",
        "PAY_000",
        lambda w, h: w.client.post(ISSUE, content=b"{amount: 1", headers=w.owner(**h)),
        (("body", "body"),),
    ),
    Bad(
        "a JSON array",
        "PAY_000",
        lambda w, h: w.client.post(ISSUE, content=b"[]", headers=w.owner(**h)),
        (("body", "body"),),
    ),
    Bad(
        "amount missing",
        "PAY_000",
        lambda w, h: w.client.post(ISSUE, json=_issue_body(amount=None), headers=w.owner(**h)),
        (("amount", "body"),),
    ),
    Bad(
        "amount a string",
        "PAY_000",
        lambda w, h: w.client.post(ISSUE, json=_issue_body(amount="50000"), headers=w.owner(**h)),
        (("amount", "body"),),
    ),
    Bad(
        "amount zero",
        "PAY_000",
        lambda w, h: w.client.post(ISSUE, json=_issue_body(amount=0), headers=w.owner(**h)),
        (("amount", "body"),),
    ),
    Bad(
        "productId empty",
        "PAY_000",
        lambda w, h: w.client.post(ISSUE, json=_issue_body(productId=""), headers=w.owner(**h)),
        (("productId", "body"),),
    ),
    Bad(
        "unknown productType",
        "PAY_000",
        lambda w, h: w.client.post(ISSUE, json=_issue_body(productType="BOOK"), headers=w.owner(**h)),
        (("productType", "body"),),
    ),
    Bad(
        "unknown field",
        "PAY_000",
        lambda w, h: w.client.post(ISSUE, json=_issue_body(price=1), headers=w.owner(**h)),
        (("price", "body"),),
    ),
    Bad(
        "metadata over 4 KB",
        "PAY_000",
        lambda w, h: w.client.post(ISSUE, json=_issue_body(metadata={"k": "x" * 5000}), headers=w.owner(**h)),
        (("metadata", "body"),),
    ),
    Bad(
        "orderName with a line break",
        "PAY_000",
        lambda w, h: w.client.post(ISSUE, json=_issue_body(orderName="a\nb"), headers=w.owner(**h)),
        (("orderName", "body"),),
    ),
    Bad(
        "oversized body",
        "PAYLOAD_TOO_LARGE",
        lambda w, h: w.client.post(ISSUE, content=b"{" + b" " * 70_000 + b"}", headers=w.owner(**h)),
    ),
    Bad(
        "not the price",
        "PAY_007",
        lambda w, h: w.client.post(ISSUE, json=_issue_body(amount=1), headers=w.owner(**h)),
    ),
    Bad(
        "unknown product",
        "PAY_008",
        lambda w, h: w.client.post(ISSUE, json=_issue_body(productId="nope"), headers=w.owner(**h)),
    ),
    # issue: the Idempotency-Key header
    Bad(
        "Idempotency-Key too long",
        "PAY_000",
        lambda w, h: w.client.post(
            ISSUE, json=STUDY, headers=w.someone(**{"Idempotency-Key": "k" * 256}, **h)
        ),
        (("Idempotency-Key", "header"),),
    ),
    Bad(
        "Idempotency-Key with a tab",
        "PAY_000",
        lambda w, h: w.client.post(ISSUE, json=STUDY, headers=w.someone(**{"Idempotency-Key": "a\tb"}, **h)),
        (("Idempotency-Key", "header"),),
    ),
    Bad("Idempotency-Key replayed with another body", "PAY_009", _reused_key),
    Bad("Idempotency-Key still running", "PAY_010", _in_progress),
    # refund
    Bad(
        "refund without a body",
        "PAY_000",
        lambda w, h: w.client.post(_refund(w.paid), content=b"", headers=w.owner(**h)),
        (("body", "body"),),
    ),
    Bad(
        "refund without a reason",
        "PAY_000",
        lambda w, h: w.client.post(_refund(w.paid), json={}, headers=w.owner(**h)),
        (("reason", "body"),),
    ),
    Bad(
        "refund amount not an integer",
        "PAY_000",
        lambda w, h: w.client.post(
            _refund(w.paid), json={"reason": "x", "amount": 1.5}, headers=w.owner(**h)
        ),
        (("amount", "body"),),
    ),
    Bad(
        "refund account number not digits",
        "PAY_000",
        lambda w, h: w.client.post(
            _refund(w.paid),
            json={
                "reason": "x",
                "refundReceiveAccount": {"bank": "신한", "accountNumber": "1-2", "holderName": "김"},
            },
            headers=w.owner(**h),
        ),
        (("refundReceiveAccount.accountNumber", "body"),),
    ),
    Bad(
        "refund over the balance",
        "PAY_000",
        lambda w, h: w.client.post(
            _refund(w.paid),
            json={"reason": "x", "amount": PRICE + 1},
            headers={**w.token("admin", admin=True), **h},
        ),
        (("amount", "body"),),
    ),
    Bad(
        "refund of another amount than the policy's",
        "AUTH_002",
        lambda w, h: w.client.post(
            _refund(w.paid), json={"reason": "x", "amount": 1000}, headers=w.owner(**h)
        ),
    ),
    Bad(
        "refund of an unpaid transaction",
        "PAY_001",
        lambda w, h: w.client.post(_refund(w.created), json={"reason": "x"}, headers=w.owner(**h)),
    ),
    Bad(
        "refund of a foreign transaction",
        "PAY_008",
        lambda w, h: w.client.post(_refund(w.paid), json={"reason": "x"}, headers=w.someone(**h)),
    ),
    Bad("refunds over the per-minute limit", "RATE_LIMITED", _over_the_refund_limit),
    # status, detail, list
    Bad(
        "status of a foreign transaction",
        "PAY_008",
        lambda w, h: w.client.get(f"/api/payments/{w.paid}/status", headers=w.someone(**h)),
    ),
    Bad(
        "detail of a foreign transaction",
        "PAY_008",
        lambda w, h: w.client.get(f"/api/payments/{w.paid}", headers=w.someone(**h)),
    ),
    Bad(
        "transaction id too long",
        "PAY_000",
        lambda w, h: w.client.get(f"/api/payments/{'T' * 65}/status", headers=w.owner(**h)),
        (("transactionId", "path"),),
    ),
    Bad(
        "attempt not a number",
        "PAY_000",
        lambda w, h: w.client.get(f"/api/payments/{w.paid}/status?attempt=abc", headers=w.owner(**h)),
        (("attempt", "query"),),
    ),
    Bad(
        "cursor garbage",
        "PAY_000",
        lambda w, h: w.client.get("/api/payments?cursor=garbage", headers=w.owner(**h)),
        (("cursor", "query"),),
    ),
    Bad(
        "cursor too long",
        "PAY_000",
        lambda w, h: w.client.get("/api/payments?cursor=" + "c" * 201, headers=w.owner(**h)),
        (("cursor", "query"),),
    ),
    Bad(
        "unknown status filter",
        "PAY_000",
        lambda w, h: w.client.get("/api/payments?status=PAID,NOPE", headers=w.owner(**h)),
        (("status", "query"),),
    ),
    Bad(
        "limit zero",
        "PAY_000",
        lambda w, h: w.client.get("/api/payments?limit=0", headers=w.owner(**h)),
        (("limit", "query"),),
    ),
    # the webhook
    Bad(
        "webhook without a body",
        "PAY_000",
        lambda w, h: w.client.post(WEBHOOK, content=b"", headers=h),
        (("body", "body"),),
    ),
    Bad(
        "webhook not JSON",
        "PAY_000",
        lambda w, h: w.client.post(WEBHOOK, content=b"<xml/>", headers=h),
        (("body", "body"),),
    ),
    Bad(
        "webhook with a bad retry count",
        "PAY_000",
        lambda w, h: w.client.post(
            WEBHOOK,
            json={"eventType": "PAYMENT_STATUS_CHANGED", "data": {"orderId": w.paid, "status": "DONE"}},
            headers={"TossPayments-Webhook-Transmission-Retried-Count": "-1", **h},
        ),
        (("TossPayments-Webhook-Transmission-Retried-Count", "header"),),
    ),
    Bad(
        "deposit callback without its secret",
        "AUTH_001",
        lambda w, h: w.client.post(WEBHOOK, json={"orderId": w.paid, "status": "DONE"}, headers=h),
    ),
    # Redis unreachable
    Bad(
        "an Idempotency-Key that cannot be checked",
        "SERVICE_UNAVAILABLE",
        lambda w, h: w.without_redis.post(
            ISSUE,
            json=STUDY,
            headers={
                "Authorization": f"Bearer {w.without_redis_services.tokens.mint('owner')}",
                "Idempotency-Key": "k-1",
                **h,
            },
        ),
    ),
    Bad("readiness without Redis", "NOT_READY", lambda w, h: w.without_redis.get("/health/ready", headers=h)),
]


def test_the_walk_is_long_and_covers_the_list() -> None:
    assert len(BAD_REQUESTS) >= 25
    walked = {bad.code for bad in BAD_REQUESTS}
    failure_codes = {"PAY_002", "PAY_003", "PAY_004", "PAY_005", "PAY_006"}  # in `failure`, not answers
    assert walked >= {code.value for code in ApiError} - failure_codes - {"INTERNAL_ERROR"}


def assert_listed_envelope(response: httpx.Response, code: str) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert response.headers["content-type"].startswith("application/json"), response.headers
    assert set(body) <= {"code", "message", "details"} and {"code", "message"} <= set(body), body
    assert body["code"] in {c.value for c in ApiError}, body
    assert response.status_code == ApiError(body["code"]).status, (response.status_code, body)
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"].strip(), body
    return body


@pytest.mark.parametrize("bad", BAD_REQUESTS, ids=[b.name for b in BAD_REQUESTS])
async def test_a_bad_request_gets_a_listed_code_in_the_envelope_in_its_language(
    world: World, bad: Bad
) -> None:
    korean = assert_listed_envelope(await bad.probe(world, {}), bad.code)
    english = assert_listed_envelope(await bad.probe(world, {"Accept-Language": ENGLISH}), bad.code)

    assert HANGUL.search(korean["message"]), korean  # no Accept-Language: Korean
    assert not HANGUL.search(english["message"]), english
    if bad.code == "PAY_000":
        for body in (korean, english):
            assert [(d["field"], d["in"]) for d in body["details"]][: len(bad.fields)] == list(bad.fields), (
                body
            )
            assert all(set(d) == {"field", "in", "reason"} for d in body["details"]), body
        assert english["message"] == english["details"][0]["reason"]
        assert all(HANGUL.search(d["reason"]) for d in korean["details"]), korean
        assert not any(HANGUL.search(d["reason"]) for d in english["details"]), english
    if bad.code == "METHOD_NOT_ALLOWED":
        assert (await bad.probe(world, {})).headers.get("allow")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Accept-Language": "en"}, "amount must be an integer greater than 0."),
        ({"Accept-Language": "en-US,en;q=0.9,ko;q=0.8"}, "amount must be an integer greater than 0."),
        ({"Accept-Language": "ko-KR,ko;q=0.9,en;q=0.8"}, "amount 값은 0보다 큰 정수여야 합니다."),
        ({"Accept-Language": "fr"}, "amount 값은 0보다 큰 정수여야 합니다."),
        ({}, "amount 값은 0보다 큰 정수여야 합니다."),
    ],
)
async def test_the_reason_reads_as_a_sentence_in_the_chosen_language(
    world: World, headers: dict[str, str], expected: str
) -> None:
    response = await world.client.post(
        _refund(world.paid), json={"reason": "x", "amount": 0}, headers=world.owner(**headers)
    )
    body = assert_listed_envelope(response, "PAY_000")
    assert body["message"] == expected
    assert body["details"] == [{"field": "amount", "in": "body", "reason": expected}]


async def test_the_idempotency_key_header_is_named_as_sent(world: World) -> None:
    headers = world.someone(**{"Idempotency-Key": "k" * 256, "Accept-Language": "en"})
    body = assert_listed_envelope(await world.client.post(ISSUE, json=STUDY, headers=headers), "PAY_000")
    assert body["details"] == [
        {
            "field": "Idempotency-Key",
            "in": "header",
            "reason": "Idempotency-Key must be 1–255 printable characters.",
        }
    ]


async def test_an_empty_refund_body_says_so(world: World) -> None:
    response = await world.client.post(_refund(world.paid), headers=world.owner(**{"Accept-Language": "en"}))
    body = assert_listed_envelope(response, "PAY_000")
    assert body["message"] == "The body is empty: it must be a JSON object."


async def test_a_bug_is_internal_error_in_the_envelope(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken() -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(world.services.queries, "list_products", broken)
    korean = assert_listed_envelope(await world.client.get("/api/products"), "INTERNAL_ERROR")
    english = assert_listed_envelope(
        await world.client.get("/api/products", headers={"Accept-Language": "en"}), "INTERNAL_ERROR"
    )
    assert HANGUL.search(korean["message"]) and english["message"] == "Something went wrong on our side."
    assert "a bug" not in korean["message"] + english["message"]


# --- Litestar's own refusals that no route of ours makes today ---------------------------------------


@pytest.mark.parametrize(
    ("raised", "status", "code"),
    [
        (ClientException("Invalid content-length: 'x'"), 400, "PAY_000"),
        (ClientException(), 400, "PAY_000"),
        (HTTPException(status_code=418), 400, "PAY_000"),  # not in the list: answered as the list says
        (NotFoundException(), 404, "NOT_FOUND"),
        (HTTPException(status_code=502), 500, "INTERNAL_ERROR"),
        (ServiceUnavailableException(), 503, "SERVICE_UNAVAILABLE"),
    ],
    ids=["bad-content-length", "client-exception", "teapot", "not-found", "bad-gateway", "unavailable"],
)
async def test_any_http_exception_is_answered_with_a_listed_code(
    raised: HTTPException, status: int, code: str
) -> None:
    @get("/boom", sync_to_thread=False)
    def boom() -> None:
        raise raised

    async with AsyncTestClient(app=Litestar([boom], exception_handlers=EXCEPTION_HANDLERS)) as client:
        response = await client.get("/boom", headers={"Accept-Language": "en"})

    body = assert_listed_envelope(response, code)
    assert response.status_code == status
    if str(raised.detail).startswith("Invalid content-length"):
        assert body["details"] == [
            {
                "field": "Content-Length",
                "in": "header",
                "reason": "The Content-Length header is not a valid length.",
            }
        ]
