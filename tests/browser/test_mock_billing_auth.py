"""The mock's card-registration window, opened through its SDK's `requestBillingAuth` (v2
`payment({customerKey}).requestBillingAuth({method: "CARD", …})` and v1 `requestBillingAuth("카드", …)`),
in headless Chromium: register → successUrl with customerKey and authKey → the billing key is issued
and charged; cancel → failUrl; the SDK's own input errors.

Only the mock runs (a real process) and a static page server (`python -m http.server` over a temp
dir), no payment service.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, expect

from mock_toss.auth import basic_auth_header
from mock_toss.config import DEFAULT_CLIENT_KEY, DEFAULT_SECRET_KEY
from tests.browser.conftest import screenshot
from tests.support.servers import RunningServer, free_port, running_server, start_server

AUTH = {"Authorization": basic_auth_header(DEFAULT_SECRET_KEY)}

_SUBSCRIBE_PAGE = """<!doctype html>
<html lang="ko"><head><meta charset="utf-8"><title>구독 신청 (SDK v{version})</title>
<script src="{sdk}"></script></head>
<body>
<h1>프리미엄 월 구독</h1>
<button id="subscribe" type="button">카드 등록하고 구독하기</button>
<script>
  const clientKey = "{client_key}";
  window.subscribe = function (options) {{
    const base = window.location.origin;
    const request = Object.assign(
      {{ successUrl: base + "/success.html?plan=monthly", failUrl: base + "/fail.html" }}, options.request || {{}}
    );
    if (window.TossPayments.version.indexOf("1") === 0) {{
      return TossPayments(clientKey).requestBillingAuth(options.method || "카드",
        Object.assign({{ customerKey: options.customerKey }}, request));
    }}
    return TossPayments(clientKey)
      .payment({{ customerKey: options.customerKey }})
      .requestBillingAuth(Object.assign({{ method: options.method || "CARD" }}, request));
  }};
  window.errorOf = function (options) {{
    return window.subscribe(options).then(
      function () {{ return "resolved"; }},
      function (error) {{ return error.code; }}
    );
  }};
  document.getElementById("subscribe").addEventListener("click", function () {{
    window.subscribe({{ customerKey: "browser-subscriber-01", request: {{ customerName: "김토스",
      customerEmail: "buyer@example.com" }} }});
  }});
</script>
</body></html>
"""
_LANDING_PAGE = """<!doctype html>
<html lang="ko"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1 id="landing">{title}</h1></body></html>
"""


@dataclass(frozen=True)
class BillingWorld:
    mock: RunningServer
    pages: RunningServer


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BillingWorld]:
    with running_server(
        ["mock_toss", "--time-scale", "0.001"], health_path="/_mock/health", name="mock-toss"
    ) as mock:
        pages_dir: Path = tmp_path_factory.mktemp("billing-pages")
        for version, sdk_path in ((2, "/v2/standard"), (1, "/v1")):
            page = _SUBSCRIBE_PAGE.format(
                version=version, sdk=f"{mock.url}{sdk_path}", client_key=DEFAULT_CLIENT_KEY
            )
            (pages_dir / f"subscribe-v{version}.html").write_text(page, encoding="utf-8")
        (pages_dir / "success.html").write_text(
            _LANDING_PAGE.format(title="카드 등록 완료"), encoding="utf-8"
        )
        (pages_dir / "fail.html").write_text(_LANDING_PAGE.format(title="카드 등록 실패"), encoding="utf-8")
        port = free_port()
        pages = start_server(
            ["http.server", "--bind", "127.0.0.1", "--directory", str(pages_dir), str(port)],
            port=port,
            health_path="/success.html",
            name="billing-pages",
        )
        try:
            yield BillingWorld(mock=mock, pages=pages)
        finally:
            pages.stop()


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def open_subscribe_page(page: Page, world: BillingWorld, version: int) -> None:
    page.goto(f"{world.pages.url}/subscribe-v{version}.html")
    page.wait_for_function("typeof window.TossPayments === 'function'")


def issue_and_charge(world: BillingWorld, auth_key: str, customer_key: str, order_id: str) -> dict[str, Any]:
    with httpx.Client(base_url=world.mock.url, headers=AUTH, timeout=10, trust_env=False) as toss:
        issued = toss.post(
            "/v1/billing/authorizations/issue", json={"authKey": auth_key, "customerKey": customer_key}
        )
        assert issued.status_code == 200, issued.text
        charged = toss.post(
            f"/v1/billing/{issued.json()['billingKey']}",
            json={
                "customerKey": customer_key,
                "amount": 9900,
                "orderId": order_id,
                "orderName": "프리미엄 월 구독",
            },
        )
        assert charged.status_code == 200, charged.text
        payment: dict[str, Any] = charged.json()
        return payment


def test_v2_request_billing_auth_opens_the_window_and_registers_the_card(
    page: Page, world: BillingWorld
) -> None:
    open_subscribe_page(page, world, 2)
    page.click("#subscribe")
    page.wait_for_url(f"{world.mock.url}/billing-auth?*")
    expect(page.locator("h1")).to_have_text("자동결제 카드 등록")
    expect(page.locator("#customer-key")).to_have_text("browser-subscriber-01")
    expect(page.locator("#customer-name")).to_have_text("김토스")
    expect(page.locator("#customer-email")).to_have_text("buyer@example.com")
    expect(page.locator("#cardNumber")).to_have_value("4330000000000005")
    screenshot(page, "mock-billing-auth-window")
    page.fill("#cardNumber", "4330 1234 5678 9012")
    page.click("button.register")
    page.wait_for_url(f"{world.pages.url}/success.html?*")
    expect(page.locator("#landing")).to_have_text("카드 등록 완료")
    query = query_of(page.url)
    assert query["plan"] == "monthly" and query["customerKey"] == "browser-subscriber-01"
    payment = issue_and_charge(world, query["authKey"], "browser-subscriber-01", "browser-sub-v2-m1")
    assert (payment["status"], payment["type"], payment["card"]["number"]) == (
        "DONE",
        "BILLING",
        "43301234****901*",
    )


def test_v1_request_billing_auth_and_a_cancel_in_the_window(page: Page, world: BillingWorld) -> None:
    open_subscribe_page(page, world, 1)
    page.evaluate("() => { window.subscribe({ customerKey: 'browser-subscriber-02' }); }")
    page.wait_for_url(f"{world.mock.url}/billing-auth?*")
    page.click("button.cancel")
    page.wait_for_url(f"{world.pages.url}/fail.html?*")
    query = query_of(page.url)
    assert query["code"] == "PAY_PROCESS_CANCELED" and query["message"]
    # And once more, registering: v1's "카드" lands on successUrl the same way.
    open_subscribe_page(page, world, 1)
    page.evaluate("() => { window.subscribe({ customerKey: 'browser-subscriber-02' }); }")
    page.wait_for_url(f"{world.mock.url}/billing-auth?*")
    page.click("button.register")
    page.wait_for_url(f"{world.pages.url}/success.html?*")
    payment = issue_and_charge(
        world, query_of(page.url)["authKey"], "browser-subscriber-02", "browser-sub-v1-m1"
    )
    assert payment["status"] == "DONE"


@pytest.mark.parametrize(
    ("version", "options", "code"),
    [
        (2, {"customerKey": "@@ANONYMOUS"}, "INVALID_CUSTOMER_KEY"),
        (2, {"customerKey": "browser-subscriber-03", "method": "TRANSFER"}, "NOT_SUPPORTED_METHOD"),
        (2, {"customerKey": "browser-subscriber-03", "request": {"failUrl": None}}, "INVALID_PARAMETERS"),
        (
            2,
            {"customerKey": "browser-subscriber-03", "request": {"successUrl": "/relative"}},
            "INCORRECT_SUCCESS_URL_FORMAT",
        ),
        (1, {"customerKey": "x"}, "INVALID_CUSTOMER_KEY"),
        (1, {"customerKey": "browser-subscriber-03", "method": "가상계좌"}, "NOT_SUPPORTED_METHOD"),
    ],
)
def test_the_sdk_rejects_bad_billing_requests_without_leaving_the_page(
    page: Page, world: BillingWorld, version: int, options: dict[str, Any], code: str
) -> None:
    open_subscribe_page(page, world, version)
    assert page.evaluate("(options) => window.errorOf(options)", options) == code
    assert page.url.startswith(world.pages.url)
