"""TOSS_BROWSER_URL: where a browser reaches the mock Toss when the API reaches it elsewhere.

In compose the API calls the mock server to server at http://mock-toss:8090, a name only the
containers resolve, while the buyer's browser reaches the same mock at http://localhost:8090 (its
published port). Everything a browser is handed (the default checkout URL in the issue answer, the
SDK script and the deposit button of the reference checkout, the pages' Content-Security-Policy)
follows TOSS_BROWSER_URL; the PG calls keep TOSS_API_URL. Unset, TOSS_BROWSER_URL is TOSS_API_URL.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.core.auth import DEVELOPMENT_USER_ID
from app.main import build_services
from app.settings import Settings, load_settings
from tests.unit.http.test_hardening_inprocess import (
    PRODUCTION,
    bearer,
    csp_directives,
    database_url,  # noqa: F401 (the module's SQLite fixture)
    resources,
    serving,
)

SERVER_SIDE = "http://mock-toss:8090"  # the mock as the API's container reaches it
BROWSER_SIDE = "http://localhost:8090"  # the mock as the host's browser reaches it
BOTH = {"TOSS_API_URL": SERVER_SIDE, "TOSS_BROWSER_URL": f"{BROWSER_SIDE}/"}


def test_the_setting_defaults_to_the_api_url() -> None:
    assert load_settings({}).toss.browser_base_url == load_settings({}).toss.api_url
    assert load_settings({"TOSS_API_URL": f"{SERVER_SIDE}/"}).toss.browser_base_url == SERVER_SIDE
    both = load_settings(BOTH)
    assert (both.toss.api_url, both.toss.browser_base_url) == (SERVER_SIDE, BROWSER_SIDE)


async def test_the_pg_calls_keep_the_api_url() -> None:
    services = build_services(load_settings({**BOTH, "DATABASE_URL": "sqlite+aiosqlite:///:memory:"}))
    try:
        providers = getattr(services.gateway, "_providers")  # noqa: B009 (a private attribute, read on purpose)
        assert [repr(p) for p in providers.values()] == [f"TossClient(base_url={SERVER_SIDE!r})"]
    finally:
        await services.close()


async def _issue(client: AsyncTestClient[Litestar], settings: Settings) -> dict[str, object]:
    products = (await client.get("/api/products")).json()["items"]
    product = next(p for p in products if p["productType"] == "AI_RESUME")
    answer = await client.post(
        "/api/payments/issue",
        json={k: product[k] for k in ("productType", "productId", "amount")},
        headers=bearer(settings, DEVELOPMENT_USER_ID),
    )
    assert answer.status_code == 201, answer.text
    issued: dict[str, object] = answer.json()
    return issued


async def test_the_issue_answer_hands_the_browser_the_browser_side_window(database_url: str) -> None:  # noqa: F811
    async with serving(database_url, **BOTH) as (client, settings):
        issued = await _issue(client, settings)

    checkout = urlsplit(str(issued["checkoutUrl"]))
    assert f"{checkout.scheme}://{checkout.netloc}{checkout.path}" == f"{BROWSER_SIDE}/checkout"
    query = parse_qs(checkout.query)
    assert query["clientKey"] == [issued["clientKey"]] and query["orderId"] == [issued["transactionId"]]
    assert "mock-toss" not in str(issued)


async def test_production_still_hands_out_no_default_window(database_url: str) -> None:  # noqa: F811
    async with serving(database_url, **BOTH, **PRODUCTION) as (client, settings):
        issued = await _issue(client, settings)
    assert issued["checkoutUrl"] is None


async def test_the_reference_checkout_loads_the_mock_from_the_browser_side(database_url: str) -> None:  # noqa: F811
    async with serving(database_url, **BOTH) as (client, _):
        shop = await client.get("/demo/")
        result = await client.get("/demo/payment/success?transactionId=tx_1")

    assert resources(shop.text).scripts[0] == f"{BROWSER_SIDE}/v2/standard"
    mock_url = re.search(r'data-mock-url="([^"]*)"', result.text)
    assert mock_url and mock_url.group(1) == BROWSER_SIDE, result.text[:400]
    for page in (shop, result):
        directives = csp_directives(page)
        for kind in ("script-src", "connect-src", "form-action"):
            assert directives[kind] == ["'self'", BROWSER_SIDE], (kind, directives)
        assert directives["frame-src"] == [BROWSER_SIDE], directives
        assert "mock-toss" not in page.text and "mock-toss" not in page.headers["content-security-policy"]
