"""A browser-and-frontend stand-in that drives a card checkout through our API and the mock Toss."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from app.core.auth import TokenAuthority

FRONTEND = "http://frontend.test"
SUCCESS_PAGE = f"{FRONTEND}/payment/success"
FAIL_PAGE = f"{FRONTEND}/payment/fail"
CONFIRM_PATH = "/v1/payments/confirm"
# The pair from Toss's public docs: the mock's defaults and the service's development defaults.
CLIENT_KEY = "test_ck_D5GePWvyJnrK0W0k6q8gLzN97Eoq"
SECRET_KEY = "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R"

# The mock's test cards (mock_toss/README.md, "Test cards").
CARD_APPROVE = "4330000000000005"
CARD_REJECT_BALANCE = "4330000000000013"
CARD_EXPIRED = "4330000000000021"
CARD_PROVIDER_ERROR = "4330000000000039"
CARD_SLOW_CONFIRM = "4330000000000047"
CARD_FAIL_ONCE = "4330000000000054"
CARD_WINDOW_REJECT = "4330000000000062"

STUDY = {"productType": "STUDY", "productId": "study_123", "amount": 50_000}
RESUME = {"productType": "AI_RESUME", "productId": "resume_credit_10", "amount": 9_900}

SUCCESS_CODES = {40, 45, 50}  # paid; provisioning (a later issue) may already have moved it on


@dataclass(frozen=True, slots=True)
class Shopper:
    """A buyer with a bearer token; every test makes its own, so tests never share transactions."""

    user_id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True, slots=True)
class PageRedirect:
    """Where our API sent the browser (a 302 to the frontend)."""

    location: str
    page: str  # scheme://host/path without the query
    params: dict[str, str]

    @property
    def is_success(self) -> bool:
        return self.page == SUCCESS_PAGE

    @property
    def is_fail(self) -> bool:
        return self.page == FAIL_PAGE


@dataclass(frozen=True, slots=True)
class Window:
    """What the mock's payment window answered: the paymentKey (None if it failed) and the redirect."""

    payment_key: str | None
    redirect_url: str


def page_redirect(response: httpx.Response) -> PageRedirect:
    """The frontend page a 302 of our API points at; fails the test on anything else."""
    assert response.status_code == 302, (response.status_code, response.text)
    location = response.headers["location"]
    parts = urlsplit(location)
    page = f"{parts.scheme}://{parts.netloc}{parts.path}"
    assert page in (SUCCESS_PAGE, FAIL_PAGE), location
    params = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
    return PageRedirect(location=location, page=page, params=params)


def status_codes(detail: dict[str, Any]) -> list[int]:
    return [entry["statusCode"] for entry in detail["history"]]


def assert_error_envelope(response: httpx.Response, http_status: int, code: str) -> dict[str, Any]:
    """The API's one error shape (docs/api.md): {code, message, details?}."""
    assert response.status_code == http_status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) <= {"code", "message", "details"}, body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"], body
    return body


class Checkout:
    """Drives checkouts like the frontend and the browser would: our API, the mock's window, redirects."""

    def __init__(
        self, *, api: httpx.AsyncClient, mock: httpx.AsyncClient, tokens: TokenAuthority, api_url: str
    ) -> None:
        self.api = api
        self.mock = mock
        self.tokens = tokens
        self.api_url = api_url.rstrip("/")
        basic = base64.b64encode(f"{SECRET_KEY}:".encode()).decode()
        self._toss_auth = {"Authorization": f"Basic {basic}"}

    # --- who -------------------------------------------------------------------------------------

    def shopper(self, label: str = "buyer") -> Shopper:
        user_id = f"e2e-{label}-{secrets.token_hex(5)}"[:64]
        return Shopper(user_id=user_id, token=self.tokens.mint(user_id))

    # --- our API ---------------------------------------------------------------------------------

    async def issue_response(
        self, shopper: Shopper, body: Any = None, *, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return await self.api.post(
            "/api/payments/issue",
            json=STUDY if body is None else body,
            headers={**shopper.auth, **(headers or {})},
        )

    async def issue(self, shopper: Shopper, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.issue_response(shopper, body)
        assert response.status_code == 201, response.text
        issued: dict[str, Any] = response.json()
        return issued

    async def status(self, shopper: Shopper, transaction_id: str) -> dict[str, Any]:
        response = await self.api.get(f"/api/payments/{transaction_id}/status", headers=shopper.auth)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def detail(self, shopper: Shopper, transaction_id: str) -> dict[str, Any]:
        response = await self.api.get(f"/api/payments/{transaction_id}", headers=shopper.auth)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def list_items(self, shopper: Shopper) -> list[dict[str, Any]]:
        response = await self.api.get("/api/payments", params={"limit": 100}, headers=shopper.auth)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def poll_until_settled(
        self, shopper: Shopper, transaction_id: str, *, max_seconds: float = 10.0
    ) -> list[dict[str, Any]]:
        """Poll like the frontend: wait `retryAfterMs` between polls until `needsPolling` is false.

        Returns every status answer seen; the last one is settled, or the deadline passed.
        """
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + max_seconds
        while True:
            body = await self.status(shopper, transaction_id)
            seen.append(body)
            if not body["needsPolling"] or time.monotonic() >= deadline:
                return seen
            wait = body["retryAfterMs"]
            assert isinstance(wait, int) and 0 <= wait <= 5000, body
            await asyncio.sleep(min(wait / 1000, max(deadline - time.monotonic(), 0)))

    async def follow(self, url: str) -> httpx.Response:
        """The browser arriving at one of our callback URLs (redirects not followed)."""
        assert url.startswith(self.api_url + "/api/payments/callback/"), url
        return await self.api.get(url, follow_redirects=False)

    async def success_callback(self, **params: str) -> httpx.Response:
        return await self.api.get("/api/payments/callback/success", params=params, follow_redirects=False)

    async def fail_callback(self, **params: str) -> httpx.Response:
        return await self.api.get("/api/payments/callback/fail", params=params, follow_redirects=False)

    # --- the mock Toss ---------------------------------------------------------------------------

    async def open_window(
        self, issued: dict[str, Any], *, card: str | None = CARD_APPROVE, action: str = "approve"
    ) -> Window:
        """The buyer in the payment window (the mock's browserless `POST /_mock/checkout`)."""
        body: dict[str, Any] = {
            "clientKey": issued["clientKey"],
            "orderId": issued["transactionId"],
            "amount": issued["amount"],
            "orderName": issued["orderName"],
            "method": issued.get("method", "CARD"),
            "successUrl": issued["successUrl"],
            "failUrl": issued["failUrl"],
            "action": action,
        }
        if card is not None:
            body["cardNumber"] = card
        response = await self.mock.post("/_mock/checkout", json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        return Window(payment_key=answer["paymentKey"], redirect_url=answer["redirectUrl"])

    async def pay(
        self, shopper: Shopper, *, card: str | None = CARD_APPROVE, action: str = "approve"
    ) -> tuple[dict[str, Any], Window, PageRedirect]:
        """Issue, go through the window and land on the frontend: (issued, window, where we landed)."""
        issued = await self.issue(shopper)
        window = await self.open_window(issued, card=card, action=action)
        landed = page_redirect(await self.follow(window.redirect_url))
        return issued, window, landed

    async def confirms(self, order_id: str) -> list[dict[str, Any]]:
        """Every `POST /v1/payments/confirm` the mock received for this orderId."""
        response = await self.mock.get(
            "/_mock/requests", params={"method": "POST", "path": CONFIRM_PATH, "orderId": order_id}
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        requests: list[dict[str, Any]] = answer["requests"]
        assert answer["count"] == len(requests)
        return requests

    async def pg_payment(self, order_id: str) -> dict[str, Any]:
        """The mock's own view of the payment (`GET /v1/payments/orders/{orderId}`, S2S)."""
        response = await self.mock.get(f"/v1/payments/orders/{order_id}", headers=self._toss_auth)
        assert response.status_code == 200, response.text
        payment: dict[str, Any] = response.json()
        return payment
