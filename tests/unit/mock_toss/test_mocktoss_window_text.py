"""The mock's payment window shows the merchant's orderName as text, never as markup."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar.testing import AsyncTestClient

from mock_toss.app import create_app
from mock_toss.config import DEFAULT_CLIENT_KEY, MockConfig


async def test_the_window_escapes_the_order_name() -> None:
    query = {
        "clientKey": DEFAULT_CLIENT_KEY,
        "orderId": "TXN_window_text_1",
        "amount": "15000",
        "orderName": '<img src=x onerror=alert(1)>"><script>alert(2)</script>',
        "method": "CARD",
        "successUrl": "http://shop.test/success",
        "failUrl": "http://shop.test/fail",
    }
    async with AsyncTestClient(app=create_app(MockConfig())) as client:
        response: Any = await client.get("/checkout?" + urlencode(query))

    assert response.status_code == 200, response.text
    page = response.text
    assert "<img" not in page and "<script>alert(2)" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;&#34;&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in page
