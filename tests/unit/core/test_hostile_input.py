"""Hostile input never gets a 500: the envelope's 4xx for the API and webhooks, a 302 for callbacks.

The real app in-process (AsyncTestClient) on a migrated SQLite file, built by the composition
root exactly as `payments dev` builds it; its PG URL points at a closed port, so a test that
reaches the PG by mistake sees an unreachable PG (and fails), never a server someone else runs.
The MariaDB-only failures (JSON depth limit, TEXT column size, INT column range) are caught
before anything is written, so the same checks hold here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from app.db import webhook_events
from app.main import Services, build_services, create_app
from app.migrate import upgrade_database
from app.settings import load_settings
from tests.support.servers import free_port

FRONTEND = "https://shop.example.com"
ISSUE = "/api/payments/issue"
WEBHOOK = "/webhooks/payments/toss"
STUDY = {"productType": "STUDY", "productId": "study_123", "amount": 50000}
SIGNING_SECRET = "whsec_" + "s" * 24
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass
class Api:
    client: AsyncTestClient[Litestar]
    services: Services

    def auth(self, user_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.services.tokens.mint(user_id)}"}

    async def listed(self, user_id: str) -> list[dict[str, Any]]:
        response = await self.client.get("/api/payments", headers=self.auth(user_id))
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def webhook_rows(self) -> int:
        async with self.services.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(webhook_events))).scalar_one())


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('hostile') / 't.sqlite3'}"
    await asyncio.to_thread(upgrade_database, url)  # alembic runs its own event loop
    settings = load_settings(
        {},
        database_url=url,
        environment="test",
        public_base_url="https://pay.example.com",
        frontend_base_url=FRONTEND,
        toss_api_url=f"http://127.0.0.1:{free_port()}",
        toss_max_attempts=1,
        toss_webhook_secret=SIGNING_SECRET,
    )
    services = build_services(settings)
    try:
        async with AsyncTestClient(app=create_app(services=services)) as client:
            yield Api(client, services)
    finally:
        await services.close()


@pytest.fixture
def user() -> str:
    return f"user_{secrets.token_hex(6)}"


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The API's one error envelope: {code, message, details?}, as JSON."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body: dict[str, Any] = response.json()
    assert set(body) <= {"code", "message", "details"} and {"code", "message"} <= set(body), body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"], body
    return body


def nested(levels: int) -> dict[str, Any]:
    """An object `levels` deep: nested(1) == {"a": {}}."""
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


RawHeaders = list[tuple[bytes, bytes]]


def raw_headers(headers: dict[str, str | bytes]) -> RawHeaders:
    """Headers as bytes, so a test can send values that are not ASCII."""
    return [(k.encode(), v if isinstance(v, bytes) else v.encode()) for k, v in headers.items()]


def signed(raw: bytes, **headers: str | bytes) -> RawHeaders:
    signature = hmac.new(SIGNING_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return raw_headers({**JSON_HEADERS, "X-Toss-Signature": signature, **headers})


def webhook_body(order_id: str = "TXN_20250101_unknownorder0000", **extra: Any) -> bytes:
    data = {"orderId": order_id, "status": "DONE", **extra}
    return json.dumps({"eventType": "PAYMENT_STATUS_CHANGED", "data": data}).encode()


# --- POST /api/payments/issue -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param(nested(31), id="object-31-deep"),
        pytest.param(nested(40), id="object-40-deep"),
        pytest.param({"list": json.loads("[" * 35 + "]" * 35)}, id="array-35-deep"),
    ],
)
async def test_deeply_nested_metadata_is_pay_000_naming_metadata(
    api: Api, user: str, metadata: dict[str, Any]
) -> None:
    assert len(json.dumps(metadata)) < 4096  # small enough: only the depth is wrong

    response = await api.client.post(ISSUE, json={**STUDY, "metadata": metadata}, headers=api.auth(user))

    body = assert_envelope(response, 400, "PAY_000")
    assert body["details"][0]["field"] == "metadata", body
    assert await api.listed(user) == []


async def test_metadata_nested_a_few_levels_is_kept(api: Api, user: str) -> None:
    metadata = {"cohort": {"id": 7, "tags": [["a", {"b": nested(5)}]]}}
    response = await api.client.post(ISSUE, json={**STUDY, "metadata": metadata}, headers=api.auth(user))
    assert response.status_code == 201, response.text
    detail = await api.client.get(f"/api/payments/{response.json()['transactionId']}", headers=api.auth(user))
    assert detail.json()["metadata"] == metadata


DEEP_ARRAYS = b"[" * 10_000 + b"]" * 10_000
DEEP_OBJECTS = b'{"a":' * 10_000 + b"1" + b"}" * 10_000


@pytest.mark.parametrize("raw", [DEEP_ARRAYS, DEEP_OBJECTS], ids=["arrays", "objects"])
async def test_json_nested_10000_levels_is_pay_000_everywhere(api: Api, user: str, raw: bytes) -> None:
    issued = await api.client.post(ISSUE, json=STUDY, headers=api.auth(user))
    tid = issued.json()["transactionId"]
    rows_before = await api.webhook_rows()

    issue = await api.client.post(ISSUE, content=raw, headers={**api.auth(user), **JSON_HEADERS})
    refund = await api.client.post(
        f"/api/payments/{tid}/refund", content=raw, headers={**api.auth(user), **JSON_HEADERS}
    )
    webhook = await api.client.post(WEBHOOK, content=raw, headers=signed(raw))

    for response in (issue, refund, webhook):
        assert_envelope(response, 400, "PAY_000")
    assert len(await api.listed(user)) == 1
    assert await api.webhook_rows() == rows_before


async def test_huge_amounts_are_pay_000_naming_amount(api: Api, user: str) -> None:
    issued = await api.client.post(ISSUE, json=STUDY, headers=api.auth(user))
    tid = issued.json()["transactionId"]
    headers = {**api.auth(user), **JSON_HEADERS}

    issue = await api.client.post(ISSUE, json={**STUDY, "amount": 10**30}, headers=api.auth(user))
    refund = await api.client.post(
        f"/api/payments/{tid}/refund", json={"reason": "x", "amount": 10**30}, headers=api.auth(user)
    )
    exponent = await api.client.post(
        ISSUE, content=b'{"productType":"STUDY","productId":"study_123","amount":1e400}', headers=headers
    )

    for response in (issue, refund):
        assert "amount" in json.dumps(assert_envelope(response, 400, "PAY_000"))
    assert_envelope(exponent, 400, "PAY_000")
    assert len(await api.listed(user)) == 1


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"productType":"\xff\xfe","productId":"study_123","amount":50000}', id="invalid-utf8"),
        pytest.param(json.dumps(STUDY).encode("utf-16"), id="utf16"),
        pytest.param(b'{"productType":"STUDY","productId":"\\udc00x","amount":50000}', id="lone-surrogate"),
    ],
)
async def test_bodies_that_are_not_utf8_json_are_pay_000(api: Api, user: str, raw: bytes) -> None:
    response = await api.client.post(ISSUE, content=raw, headers={**api.auth(user), **JSON_HEADERS})
    assert_envelope(response, 400, "PAY_000")
    assert await api.listed(user) == []


async def test_an_issue_body_over_64_kb_is_413_in_the_envelope(api: Api, user: str) -> None:
    raw = json.dumps({**STUDY, "orderName": "x" * 70_000}).encode()
    response = await api.client.post(ISSUE, content=raw, headers={**api.auth(user), **JSON_HEADERS})
    assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")
    assert await api.listed(user) == []


# --- POST /webhooks/payments/toss ----------------------------------------------------------------------


async def test_a_webhook_body_over_64_kb_is_413_and_not_recorded(api: Api) -> None:
    raw = webhook_body(pad="x" * 70_000)
    rows_before = await api.webhook_rows()

    response = await api.client.post(WEBHOOK, content=raw, headers=signed(raw))

    assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")
    assert await api.webhook_rows() == rows_before


async def test_a_webhook_body_just_under_the_limit_is_taken(api: Api) -> None:
    raw = webhook_body(pad="")
    raw = webhook_body(pad="x" * (65_535 - len(raw)))
    assert len(raw) == 65_535  # MariaDB's TEXT holds 65,535 bytes: the raw body is stored whole
    response = await api.client.post(WEBHOOK, content=raw, headers=signed(raw))
    assert response.status_code == 200, response.text[:500]


@pytest.mark.parametrize(
    "retried",
    [
        pytest.param(b"1" * 23, id="23-digits"),
        pytest.param(b"2147483648", id="over-int32"),
        pytest.param(b"\xb2", id="latin1-superscript-two"),
        pytest.param("٣".encode(), id="arabic-indic-three"),
        pytest.param("３".encode(), id="fullwidth-three"),
        pytest.param(b"-1", id="negative"),
        pytest.param(b"1e3", id="exponent"),
        pytest.param(b"", id="empty"),
    ],
)
async def test_a_bad_retried_count_header_is_pay_000_naming_it(api: Api, retried: bytes) -> None:
    raw = webhook_body(note=secrets.token_hex(4))
    rows_before = await api.webhook_rows()

    response = await api.client.post(
        WEBHOOK,
        content=raw,
        headers=signed(raw, **{"TossPayments-Webhook-Transmission-Retried-Count": retried}),
    )

    body = assert_envelope(response, 400, "PAY_000")
    assert "tosspayments-webhook-transmission-retried-count" in json.dumps(body).lower(), body
    assert await api.webhook_rows() == rows_before


@pytest.mark.parametrize("retried", [b"0", b"7", b"999999999"])
async def test_a_plain_retried_count_is_taken(api: Api, retried: bytes) -> None:
    raw = webhook_body(note=secrets.token_hex(4))
    response = await api.client.post(
        WEBHOOK,
        content=raw,
        headers=signed(raw, **{"TossPayments-Webhook-Transmission-Retried-Count": retried}),
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"outcome": "IGNORED"}  # an order we do not know


@pytest.mark.parametrize(
    "signature",
    [pytest.param("é" * 64, id="non-ascii"), pytest.param("zz", id="not-hex"), pytest.param("", id="empty")],
)
async def test_an_odd_signature_is_401(api: Api, signature: str) -> None:
    raw = webhook_body(note=secrets.token_hex(4))
    response = await api.client.post(
        WEBHOOK, content=raw, headers=raw_headers({**JSON_HEADERS, "X-Toss-Signature": signature})
    )
    assert_envelope(response, 401, "AUTH_001")


# --- GET /api/payments/callback/success: always a redirect ---------------------------------------------


@pytest.mark.parametrize("length", [201, 5000])
async def test_a_callback_paymentkey_over_200_chars_lands_on_the_fail_page(
    api: Api, user: str, length: int
) -> None:
    issued = await api.client.post(ISSUE, json=STUDY, headers=api.auth(user))
    tid = issued.json()["transactionId"]

    response = await api.client.get(
        "/api/payments/callback/success",
        params={"paymentKey": "k" * length, "orderId": tid, "amount": "50000"},
        follow_redirects=False,
    )

    assert response.status_code == 302, response.text[:500]
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{FRONTEND}/payment/fail"
    assert parse_qs(location.query)["code"] == ["PAY_000"]
    # a forged or garbled callback changes nothing: the buyer's real one may still come
    status = await api.client.get(f"/api/payments/{tid}/status", headers=api.auth(user))
    assert status.json()["statusCode"] == 10


# --- headers, query and path parameters ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/payments/%00/status",
        "/api/payments/%ff",
        "/api/payments/%C3%BC%0A/status",
        "/api/payments/" + "x" * 65 + "/status",
    ],
)
async def test_odd_transaction_ids_in_the_path_are_4xx(api: Api, user: str, path: str) -> None:
    response = await api.client.get(path, headers=api.auth(user))
    assert 400 <= response.status_code < 500, response.text
    assert_envelope(response, response.status_code, response.json()["code"])


@pytest.mark.parametrize(
    "query", ["attempt=" + "9" * 30, "attempt=%C2%B2", "limit=" + "9" * 30, "status=" + "9" * 30]
)
async def test_out_of_range_query_parameters_are_pay_000(api: Api, user: str, query: str) -> None:
    issued = await api.client.post(ISSUE, json=STUDY, headers=api.auth(user))
    tid = issued.json()["transactionId"]
    path = f"/api/payments/{tid}/status" if query.startswith("attempt") else "/api/payments"
    response = await api.client.get(f"{path}?{query}", headers=api.auth(user))
    assert_envelope(response, 400, "PAY_000")


@pytest.mark.parametrize(
    "row_id",
    ["9" * 30, "9223372036854775808", "-1", "٣", "1e3"],
    ids=["30-digits", "2**63", "negative", "arabic-indic", "exponent"],
)
async def test_a_forged_list_cursor_is_refused(api: Api, user: str, row_id: str) -> None:
    await api.client.post(ISSUE, json=STUDY, headers=api.auth(user))
    cursor = base64.urlsafe_b64encode(f"v1:{row_id}".encode()).decode().rstrip("=")
    response = await api.client.get("/api/payments", params={"cursor": cursor}, headers=api.auth(user))
    body = assert_envelope(response, 400, "PAY_000")  # not a cursor of ours: never the first page
    assert [(d["field"], d["in"]) for d in body["details"]] == [("cursor", "query")]


@pytest.mark.parametrize(
    "authorization", [b"Bearer \xff\xfe", b"Bearer " + b"a" * 10_000, b"\xb2", b"Bearer e30.e30.x"]
)
async def test_odd_authorization_headers_are_401(api: Api, user: str, authorization: bytes) -> None:
    response = await api.client.post(ISSUE, json=STUDY, headers=raw_headers({"Authorization": authorization}))
    assert_envelope(response, 401, "AUTH_001")


async def test_a_non_ascii_idempotency_key_works_like_any_other(api: Api, user: str) -> None:
    headers = raw_headers({**api.auth(user), "Idempotency-Key": "ü-\xff-key".encode("latin-1")})
    first = await api.client.post(ISSUE, json=STUDY, headers=headers)
    again = await api.client.post(ISSUE, json=STUDY, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201), (first.text, again.text)
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()
