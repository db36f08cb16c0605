"""The mock serves Toss's browser SDK and accepts the widget key pair beside the API pair.

What the script does in a browser is tested in tests/browser/test_toss_sdk.py; here: what the
server answers, and the key-pair rules behind the widget flow.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from mock_toss.app import create_app
from mock_toss.auth import basic_auth_header
from mock_toss.config import (
    DEFAULT_CLIENT_KEY,
    DEFAULT_SECRET_KEY,
    DOCS_WIDGET_CLIENT_KEY,
    DOCS_WIDGET_SECRET_KEY,
    MockConfig,
)


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(MockConfig())) as test_client:
        yield test_client


def _settings_of(script: str) -> dict[str, Any]:
    match = re.search(r"\}\)\((\{.*\})\);\s*$", script, re.S)
    assert match is not None, script[-300:]
    settings: dict[str, Any] = json.loads(match.group(1))
    return settings


@pytest.mark.parametrize(("path", "version"), [("/v2/standard", 2), ("/v1", 1), ("/v1/payment", 1)])
async def test_the_sdk_script_is_served_with_its_version_and_the_known_client_keys(
    client: AsyncTestClient[Any], path: str, version: int
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert "window.TossPayments = TossPayments" in response.text
    settings = _settings_of(response.text)
    assert settings["version"] == version
    assert settings["clientKeys"] == [DEFAULT_CLIENT_KEY]
    assert settings["widgetClientKeys"] == [DOCS_WIDGET_CLIENT_KEY]
    # Secret keys never reach a browser.
    assert DEFAULT_SECRET_KEY not in response.text and DOCS_WIDGET_SECRET_KEY not in response.text


async def test_the_promise_mode_return_page_posts_only_to_the_given_origin(
    client: AsyncTestClient[Any],
) -> None:
    page = await client.get(
        "/_mock/sdk/return/success",
        params={"parentOrigin": "http://127.0.0.1:8000", "paymentKey": "k", "orderId": "o"},
    )
    assert page.status_code == 200
    assert 'data-parent-origin="http://127.0.0.1:8000"' in page.text
    assert '"*"' not in page.text
    for bad in ("*", "javascript:alert(1)", 'http://x" onload="alert(1)', ""):
        refused = await client.get("/_mock/sdk/return/success", params={"parentOrigin": bad})
        assert refused.status_code == 400, bad
    assert (await client.get("/_mock/sdk/return/other?parentOrigin=http://a.test")).status_code == 400


async def test_test_controls_answer_any_page_but_the_toss_api_stays_closed_to_browsers(
    client: AsyncTestClient[Any],
) -> None:
    preflight = await client.options(
        "/_mock/virtual-accounts/order-1/deposit",
        headers={
            "Origin": "http://127.0.0.1:8000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "content-type" in preflight.headers["access-control-allow-headers"]
    api = await client.get("/v1/payments/some-key", headers={"Origin": "http://127.0.0.1:8000"})
    assert "access-control-allow-origin" not in api.headers


def _window(client_key: str, order_id: str) -> dict[str, Any]:
    return {
        "clientKey": client_key,
        "orderId": order_id,
        "amount": 50000,
        "orderName": "스터디",
        "method": "CARD",
        "successUrl": "http://shop.test/success",
        "failUrl": "http://shop.test/fail",
    }


async def _authenticated(client: AsyncTestClient[Any], client_key: str, order_id: str) -> str:
    response = await client.post("/_mock/checkout", json=_window(client_key, order_id))
    assert response.status_code == 200, response.text
    payment_key: str = response.json()["paymentKey"]
    return payment_key


async def _confirm(client: AsyncTestClient[Any], secret_key: str, payment_key: str, order_id: str) -> Any:
    return await client.post(
        "/v1/payments/confirm",
        json={"paymentKey": payment_key, "orderId": order_id, "amount": 50000},
        headers={"Authorization": basic_auth_header(secret_key)},
    )


async def test_a_widget_payment_is_confirmed_with_the_widget_secret_key_only(
    client: AsyncTestClient[Any],
) -> None:
    payment_key = await _authenticated(client, DOCS_WIDGET_CLIENT_KEY, "widget-order-1")
    mixed = await _confirm(client, DEFAULT_SECRET_KEY, payment_key, "widget-order-1")
    assert mixed.status_code == 400 and mixed.json()["code"] == "INVALID_API_KEY"
    confirmed = await _confirm(client, DOCS_WIDGET_SECRET_KEY, payment_key, "widget-order-1")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "DONE"


async def test_an_api_key_payment_is_not_confirmed_with_the_widget_secret_key(
    client: AsyncTestClient[Any],
) -> None:
    payment_key = await _authenticated(client, DEFAULT_CLIENT_KEY, "api-order-1")
    mixed = await _confirm(client, DOCS_WIDGET_SECRET_KEY, payment_key, "api-order-1")
    assert mixed.status_code == 400 and mixed.json()["code"] == "INVALID_API_KEY"
    assert (await _confirm(client, DEFAULT_SECRET_KEY, payment_key, "api-order-1")).status_code == 200


async def test_an_unknown_client_key_opens_no_window(client: AsyncTestClient[Any]) -> None:
    response = await client.post("/_mock/checkout", json=_window("test_ck_unknown", "order-unknown-key"))
    assert response.status_code == 400 and response.json()["code"] == "INVALID_CLIENT_KEY"


def test_the_mock_refuses_live_widget_keys() -> None:
    with pytest.raises(ValueError, match="live"):
        MockConfig(widget_client_key="live_gck_x")
