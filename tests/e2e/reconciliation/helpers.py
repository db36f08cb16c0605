"""Drivers for the reconciliation e2e tests: a whole environment (proxy → mock → stack) and a shop.

    proxy ◄── webhooks ── mock Toss (time scale 0.001) ◄── confirm/lookup ── API + worker (stack)
      └──────────────── forwards to the API's /webhooks/payments/toss ──────────────────► API

Every wait is a bounded poll (≤ 40 s).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core.auth import TokenAuthority
from app.db import transactions as tx_table
from app.db import webhook_events as webhook_table
from tests.support.private_services import private_redis as private_redis_server
from tests.support.servers import REDIS_HOST_URL, RunningServer, running_server
from tests.support.stack import Stack, running_stack
from tests.support.webhook_proxy import WebhookProxy, running_webhook_proxy

FRONTEND = "http://frontend.test"
SUCCESS_PAGE = f"{FRONTEND}/payment/success"
FAIL_PAGE = f"{FRONTEND}/payment/fail"
WEBHOOK_PATH = "/webhooks/payments/toss"
CONFIRM_PATH = "/v1/payments/confirm"
SECRET_KEY = "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R"  # the mock's default, the service's dev default
SLOW_CONFIRM_SECONDS = 3.0  # vs the stack's 1 s read timeout (tests/support/stack.py FAST_ENV)
MAX_WAIT_SECONDS = 40.0
GIVE_UP_SECONDS = 3  # RECONCILE_GIVE_UP_SECONDS of the signed env
SHARED_REDIS_URL = REDIS_HOST_URL

CARD_APPROVE = "4330000000000005"
CARD_SLOW_CONFIRM = "4330000000000047"
CARD_FAIL_ONCE = "4330000000000054"

STUDY = {"productType": "STUDY", "productId": "study_123", "amount": 50_000}

# The flood environment (conftest `flood_env`, test_webhook_flood.py): two webhook job slots per
# worker, a low per-source webhook limit, and one loopback address trusted as a reverse proxy.
WEBHOOK_JOB_SLOTS = 2
WEBHOOK_LIMIT_PER_MINUTE = 25
TRUSTED_PROXY = "127.0.0.20"
FLOOD_ENV = {
    "WEBHOOK_MAX_JOBS": str(WEBHOOK_JOB_SLOTS),
    "RATE_LIMIT_WEBHOOK_PER_MINUTE": str(WEBHOOK_LIMIT_PER_MINUTE),
    "TRUSTED_PROXIES": TRUSTED_PROXY,
    "TOSS_READ_TIMEOUT_SECONDS": "10",  # the flood test slows lookups down on purpose
}

T = TypeVar("T")


# --- the environment ------------------------------------------------------------------------------


@dataclass
class Env:
    """One mock Toss, one webhook proxy in front of one stack (API + worker)."""

    mock: RunningServer
    proxy: WebhookProxy
    stack: Stack
    signing_secret: str | None
    database_url: str

    @property
    def webhook_url(self) -> str:
        return f"{self.stack.api_url}{WEBHOOK_PATH}"


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server of our own on a free 127.0.0.1 port; yields its base URL (no database).

    The shared Redis on 6379 is used by every test session and load test running at the same
    time; tests/support/stack.py hands its databases 10–15 out per process starting at 10, so two
    sessions' stacks share a queue and one's workers take (and flush) the other's jobs. A private
    server makes the environments' queues ours alone. Without a redis-server binary the shared
    one is used.
    """
    if shutil.which("redis-server") is None:
        yield SHARED_REDIS_URL
        return
    with private_redis_server() as server:
        yield server.url


MARIADB_ADMIN_URL = os.environ.get("TEST_MARIADB_URL", "mysql+asyncmy://root@127.0.0.1:3306")


async def _admin(statement: str) -> None:
    engine = create_async_engine(f"{MARIADB_ADMIN_URL}/mysql")
    try:
        async with engine.begin() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@contextlib.contextmanager
def fresh_database(label: str) -> Iterator[str]:
    """A migrated MariaDB database of one environment's own, dropped afterwards.

    Every stack's sweeper reconciles *every* pending transaction in its database against *its*
    mock; two stacks on one database would look each other's payments up at the wrong PG (NOT
    FOUND → backoff, or give up), so each environment gets a database of its own.
    """
    from app.migrate import upgrade_database

    name = f"payments_{label}_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(_admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    try:
        url = f"{MARIADB_ADMIN_URL}/{name}"
        upgrade_database(url)
        yield url
    finally:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS `{name}`"))


@contextlib.contextmanager
def running_env(
    *,
    database_url: str,
    redis_base_url: str,
    signing_secret: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[Env]:
    """Proxy first (its URL goes to the mock), then the mock, then the stack; then aim the proxy."""
    with running_webhook_proxy() as proxy:
        mock_args = [
            "mock_toss",
            "--time-scale",
            "0.001",
            "--slow-confirm-seconds",
            str(SLOW_CONFIRM_SECONDS),
            "--webhook-url",
            proxy.url,
        ]
        stack_env = dict(env or {})
        if signing_secret is not None:
            mock_args += ["--webhook-secret", signing_secret]
            stack_env["TOSS_WEBHOOK_SECRET"] = signing_secret
        with (
            running_server(mock_args, health_path="/_mock/health") as mock,
            running_stack(
                mysql_url=database_url,
                redis_base_url=redis_base_url,
                toss_url=mock.url,
                workers=1,
                env=stack_env,
            ) as stack,
        ):
            proxy.set_target(f"{stack.api_url}{WEBHOOK_PATH}")
            yield Env(
                mock=mock,
                proxy=proxy,
                stack=stack,
                signing_secret=signing_secret,
                database_url=database_url,
            )


# --- small pieces ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shopper:
    user_id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True, slots=True)
class Landing:
    """Where our callback sent the browser."""

    page: str
    params: dict[str, str]

    @property
    def is_success(self) -> bool:
        return self.page == SUCCESS_PAGE


def landing(response: httpx.Response) -> Landing:
    assert response.status_code == 302, (response.status_code, response.text)
    parts = urlsplit(response.headers["location"])
    page = f"{parts.scheme}://{parts.netloc}{parts.path}"
    assert page in (SUCCESS_PAGE, FAIL_PAGE), response.headers["location"]
    return Landing(page=page, params={k: v[-1] for k, v in parse_qs(parts.query).items()})


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def new_transmission_id() -> str:
    return "whtrans_atest" + secrets.token_hex(11)


async def eventually(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    max_seconds: float = MAX_WAIT_SECONDS,
    interval: float = 0.2,
) -> T:
    """Call `probe` until `done(result)`; returns the last result (the caller asserts on it)."""
    deadline = time.monotonic() + min(max_seconds, MAX_WAIT_SECONDS)
    while True:
        result = await probe()
        if done(result) or time.monotonic() >= deadline:
            return result
        await asyncio.sleep(interval)


def codes(detail: Mapping[str, Any]) -> list[int]:
    return [entry["statusCode"] for entry in detail["history"]]


# --- the shop -------------------------------------------------------------------------------------


class Shop:
    """Our API, the mock Toss, the proxy and the database, as one test would use them."""

    def __init__(self, env: Env, *, api: httpx.AsyncClient, mock: httpx.AsyncClient, db: AsyncEngine) -> None:
        self.env = env
        self.api = api
        self.mock = mock
        self.db = db
        self.tokens = TokenAuthority(env.stack.jwt_secret)
        basic = base64.b64encode(f"{SECRET_KEY}:".encode()).decode()
        self.toss_auth = {"Authorization": f"Basic {basic}"}

    @property
    def proxy(self) -> WebhookProxy:
        return self.env.proxy

    # --- our API -----------------------------------------------------------------------------------

    def shopper(self, label: str) -> Shopper:
        user_id = f"e2e-recon-{label}-{secrets.token_hex(4)}"[:64]
        return Shopper(user_id=user_id, token=self.tokens.mint(user_id))

    async def issue(self, shopper: Shopper, *, method: str = "CARD") -> dict[str, Any]:
        response = await self.api.post(
            "/api/payments/issue", json={**STUDY, "method": method}, headers=shopper.auth
        )
        assert response.status_code == 201, response.text
        issued: dict[str, Any] = response.json()
        return issued

    async def status(self, shopper: Shopper, tid: str) -> dict[str, Any]:
        response = await self.api.get(f"/api/payments/{tid}/status", headers=shopper.auth)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def detail(self, shopper: Shopper, tid: str) -> dict[str, Any]:
        response = await self.api.get(f"/api/payments/{tid}", headers=shopper.auth)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def wait_for_status(
        self, shopper: Shopper, tid: str, wanted: int | set[int], *, max_seconds: float = MAX_WAIT_SECONDS
    ) -> dict[str, Any]:
        targets = {wanted} if isinstance(wanted, int) else wanted
        body = await eventually(
            lambda: self.status(shopper, tid), lambda s: s["statusCode"] in targets, max_seconds=max_seconds
        )
        assert body["statusCode"] in targets, (targets, body)
        return body

    async def follow(self, redirect_url: str) -> Landing:
        """The browser arriving at our callback URL."""
        assert redirect_url.startswith(self.env.stack.api_url + "/api/payments/callback/"), redirect_url
        return landing(await self.api.get(redirect_url, follow_redirects=False))

    @contextlib.asynccontextmanager
    async def client_from(self, address: str) -> AsyncIterator[httpx.AsyncClient]:
        """A client of our API whose connections come from `address` (any 127.x.y.z on Linux):
        another source, as the API sees it."""
        transport = httpx.AsyncHTTPTransport(local_address=address)
        async with httpx.AsyncClient(
            base_url=self.env.stack.api_url, transport=transport, timeout=20.0, trust_env=False
        ) as client:
            yield client

    async def post_webhook(
        self,
        body: bytes | Mapping[str, Any],
        *,
        transmission_id: str | None = None,
        via: httpx.AsyncClient | None = None,
        **headers: str,
    ) -> httpx.Response:
        """A delivery straight to our receiver (not through the mock), through `via` when given;
        signed when the env signs, unless an explicit `x_toss_signature` header is given."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {
            "Content-Type": "application/json",
            "tosspayments-webhook-transmission-id": transmission_id or new_transmission_id(),
            "tosspayments-webhook-transmission-retried-count": "0",
            "tosspayments-webhook-transmission-time": "2026-03-01T12:00:00+09:00",
        }
        explicit = {name.replace("_", "-"): value for name, value in headers.items()}
        if self.env.signing_secret and "x-toss-signature" not in explicit:
            sent["X-Toss-Signature"] = sign(raw, self.env.signing_secret)
        sent.update(explicit)
        return await (via or self.api).post(WEBHOOK_PATH, content=raw, headers=sent)

    # --- the mock Toss -----------------------------------------------------------------------------

    async def open_window(self, issued: Mapping[str, Any], *, card: str | None = CARD_APPROVE) -> str:
        """The buyer authenticates in the window; returns the success redirect URL (with paymentKey)."""
        body: dict[str, Any] = {
            "clientKey": issued["clientKey"],
            "orderId": issued["transactionId"],
            "amount": issued["amount"],
            "orderName": issued["orderName"],
            "method": issued.get("method", "CARD"),
            "successUrl": issued["successUrl"],
            "failUrl": issued["failUrl"],
            "action": "approve",
        }
        if card is not None:
            body["cardNumber"] = card
        response = await self.mock.post("/_mock/checkout", json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["paymentKey"], answer
        redirect: str = answer["redirectUrl"]
        return redirect

    async def journal(
        self, tid: str, *, method: str | None = None, path: str | None = None
    ) -> list[dict[str, Any]]:
        params = {"orderId": tid}
        if method:
            params["method"] = method
        if path:
            params["path"] = path
        response = await self.mock.get("/_mock/requests", params=params)
        assert response.status_code == 200, response.text
        requests: list[dict[str, Any]] = response.json()["requests"]
        return requests

    async def lookups(self, tid: str) -> list[dict[str, Any]]:
        """Our `GET /v1/payments/orders/{tid}` requests, whatever the mock answered."""
        return await self.journal(tid, method="GET", path=f"/v1/payments/orders/{tid}")

    async def confirms(self, tid: str) -> list[dict[str, Any]]:
        return await self.journal(tid, method="POST", path=CONFIRM_PATH)

    async def cancels(self, tid: str) -> list[dict[str, Any]]:
        posts = await self.journal(tid, method="POST", path="/v1/payments/*")
        return [entry for entry in posts if entry["path"].endswith("/cancel")]

    async def pg_payment(self, tid: str) -> dict[str, Any]:
        response = await self.mock.get(f"/v1/payments/orders/{tid}", headers=self.toss_auth)
        assert response.status_code == 200, response.text
        payment: dict[str, Any] = response.json()
        return payment

    async def mock_webhooks(self, tid: str) -> list[dict[str, Any]]:
        response = await self.mock.get("/_mock/webhooks", params={"orderId": tid})
        assert response.status_code == 200, response.text
        webhooks: list[dict[str, Any]] = response.json()["webhooks"]
        return webhooks

    async def wait_for_mock_webhooks(
        self, tid: str, done: Callable[[list[dict[str, Any]]], bool], *, max_seconds: float = 20
    ) -> list[dict[str, Any]]:
        return await eventually(lambda: self.mock_webhooks(tid), done, max_seconds=max_seconds)

    async def deposit(self, tid: str) -> dict[str, Any]:
        response = await self.mock.post(
            f"/_mock/virtual-accounts/{tid}/deposit", json={"depositorName": "홍길동"}
        )
        assert response.status_code == 200, response.text
        payment: dict[str, Any] = response.json()
        return payment

    async def resend(self, delivery_id: str) -> dict[str, Any]:
        response = await self.mock.post(f"/_mock/webhooks/{delivery_id}/resend")
        assert response.status_code == 200, response.text
        delivery: dict[str, Any] = response.json()
        return delivery

    async def set_chaos(self, body: Mapping[str, Any]) -> dict[str, Any]:
        response = await self.mock.put("/_mock/chaos", json=body)
        assert response.status_code == 200, response.text
        described: dict[str, Any] = response.json()
        return described

    async def chaos(self) -> dict[str, Any]:
        response = await self.mock.get("/_mock/chaos")
        assert response.status_code == 200, response.text
        described: dict[str, Any] = response.json()
        return described

    async def clear_chaos(self) -> None:
        response = await self.mock.delete("/_mock/chaos")
        assert response.status_code == 200, response.text

    # --- the database ------------------------------------------------------------------------------

    async def webhook_events(self, tid: str) -> list[dict[str, Any]]:
        query = (
            select(
                webhook_table.c.id,
                webhook_table.c.transmission_id,
                webhook_table.c.event_type,
                webhook_table.c.pg_status,
                webhook_table.c.retried_count,
                webhook_table.c.outcome,
                webhook_table.c.detail,
            )
            .where(webhook_table.c.order_id == tid)
            .order_by(webhook_table.c.id)
        )
        async with self.db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [dict(row._mapping) for row in rows]

    async def event_outcomes(self, transmission_ids: Sequence[str], tid: str) -> dict[str, str]:
        events = await self.webhook_events(tid)
        return {
            e["transmission_id"]: e["outcome"] for e in events if e["transmission_id"] in transmission_ids
        }

    async def wait_for_events_processed(self, tid: str, transmission_ids: Sequence[str]) -> dict[str, str]:
        """Outcomes of these deliveries once none is still RECEIVED (queued, not yet processed)."""
        outcomes = await eventually(
            lambda: self.event_outcomes(transmission_ids, tid),
            lambda o: set(o) == set(transmission_ids) and "RECEIVED" not in o.values(),
        )
        assert set(outcomes) == set(transmission_ids), outcomes
        assert "RECEIVED" not in outcomes.values(), outcomes
        return outcomes

    async def set_columns(self, tid: str, **values: Any) -> None:
        async with self.db.begin() as conn:
            result = await conn.execute(
                tx_table.update().where(tx_table.c.transaction_id == tid).values(**values)
            )
            assert result.rowcount == 1

    # --- the report line ---------------------------------------------------------------------------

    async def summary(self, name: str, shopper: Shopper, tid: str) -> tuple[int, int, int]:
        final = (await self.status(shopper, tid))["statusCode"]
        confirms, cancels = len(await self.confirms(tid)), len(await self.cancels(tid))
        print(f"SCENARIO {name}: final={final} confirms={confirms} cancels={cancels}")
        return final, confirms, cancels


# --- flows ----------------------------------------------------------------------------------------


def is_waiting_psc(delivery: Mapping[str, Any]) -> bool:
    return delivery["eventType"] == "PAYMENT_STATUS_CHANGED" and (
        delivery["body"]["data"]["status"] == "WAITING_FOR_DEPOSIT"
    )


def is_waiting_deposit_callback(delivery: Mapping[str, Any]) -> bool:
    return delivery["eventType"] == "DEPOSIT_CALLBACK" and delivery["body"]["status"] == "WAITING_FOR_DEPOSIT"


def is_done_psc(delivery: Mapping[str, Any]) -> bool:
    return delivery["eventType"] == "PAYMENT_STATUS_CHANGED" and delivery["body"]["data"]["status"] == "DONE"


def is_done_deposit_callback(delivery: Mapping[str, Any]) -> bool:
    return delivery["eventType"] == "DEPOSIT_CALLBACK" and delivery["body"]["status"] == "DONE"


def all_delivered(deliveries: Sequence[Mapping[str, Any]], count: int) -> bool:
    return len(deliveries) >= count and all(d["status"] == "DELIVERED" for d in deliveries)


@dataclass(frozen=True, slots=True)
class VirtualAccountOrder:
    shopper: Shopper
    tid: str
    status: dict[str, Any]  # our status answer right after the callback
    waiting_psc: dict[str, Any]  # the mock's WAITING_FOR_DEPOSIT deliveries (processed by us)
    waiting_deposit_callback: dict[str, Any]


async def virtual_account_order(shop: Shop, label: str) -> VirtualAccountOrder:
    """Issue a VIRTUAL_ACCOUNT transaction, go through the window and the callback: 30, awaiting."""
    shopper = shop.shopper(label)
    issued = await shop.issue(shopper, method="VIRTUAL_ACCOUNT")
    tid = issued["transactionId"]
    landed = await shop.follow(await shop.open_window(issued, card=None))
    assert landed.is_success and landed.params == {"transactionId": tid}, landed
    status = await shop.status(shopper, tid)
    # The mock sends PAYMENT_STATUS_CHANGED and DEPOSIT_CALLBACK for the issued account.
    deliveries = await shop.wait_for_mock_webhooks(tid, lambda d: all_delivered(d, 2))
    assert all_delivered(deliveries, 2), deliveries
    [psc] = [d for d in deliveries if is_waiting_psc(d)]
    [callback] = [d for d in deliveries if is_waiting_deposit_callback(d)]
    await shop.wait_for_events_processed(tid, [psc["id"], callback["id"]])
    return VirtualAccountOrder(
        shopper=shopper, tid=tid, status=status, waiting_psc=psc, waiting_deposit_callback=callback
    )
