"""Pages written against Toss's official SDK, unchanged but for `src`, pay through the mock.

The pages in tests/browser/official_sdk/ import the official npm loaders
(`@tosspayments/tosspayments-sdk` 2.x, `@tosspayments/payment-sdk` 1.x, installed there by npm, not
in the product) and point `src` at the mock's /v2/standard or /v1. Each test issues a payment on
the real service (MariaDB, Redis, an arq worker), drives the page in headless Chromium through the
mock's payment window, and checks the outcome on the service: the status the frontend polls.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from playwright.sync_api import Page

from mock_toss.config import DOCS_WIDGET_CLIENT_KEY, DOCS_WIDGET_SECRET_KEY
from tests.browser.conftest import screenshot
from tests.integration.provisioning.redis_claim import claimed_redis_db
from tests.support.servers import RunningServer, free_port, running_server, start_server
from tests.support.stack import Stack, running_stack

PAGES_DIR = Path(__file__).parent / "official_sdk"
USER = "sdk-buyer"


@dataclass(frozen=True)
class SdkWorld:
    stack: Stack
    mock: RunningServer
    pages: RunningServer
    widget_api: RunningServer  # the same service configured with the widget key pair


@pytest.fixture(scope="module")
def world(mysql_url: str) -> Iterator[SdkWorld]:
    if not (PAGES_DIR / "node_modules" / "@tosspayments" / "tosspayments-sdk").is_dir():
        pytest.fail(
            "the official SDK fixture is not installed: run `npm install --no-package-lock "
            f"--prefix {PAGES_DIR.relative_to(Path.cwd())}` (make test does)"
        )
    mock_port, api_port = free_port(), free_port()
    mock_url = f"http://127.0.0.1:{mock_port}"
    pages_port = free_port()
    pages = start_server(
        ["http.server", "--bind", "127.0.0.1", "--directory", str(PAGES_DIR), str(pages_port)],
        port=pages_port,
        health_path="/package.json",
        name="official-sdk-pages",
    )
    try:
        frontend = f"{pages.url}/frontend"
        with (
            # A Redis database of our own for the queue: another run's worker must not take our jobs.
            claimed_redis_db() as redis_db_url,
            running_stack(
                mysql_url=mysql_url,
                toss_url=mock_url,
                workers=1,
                apis=0,
                env={"FRONTEND_BASE_URL": frontend, "REDIS_URL": redis_db_url},
            ) as stack,
        ):
            stack.start_api(port=api_port)
            with running_server(
                [
                    "mock_toss",
                    "--webhook-url",
                    f"{stack.api_url}/webhooks/payments/toss",
                    "--time-scale",
                    "0.001",
                ],
                port=mock_port,
                health_path="/_mock/health",
                name="mock-toss",
            ) as mock:
                widget_api = stack.start_api(
                    env={"TOSS_CLIENT_KEY": DOCS_WIDGET_CLIENT_KEY, "TOSS_SECRET_KEY": DOCS_WIDGET_SECRET_KEY}
                )
                yield SdkWorld(stack=stack, mock=mock, pages=pages, widget_api=widget_api)
    finally:
        pages.stop()


def issue(world: SdkWorld, method: str = "CARD", *, api: RunningServer | None = None) -> dict[str, Any]:
    url = (api or world.stack.apis[0]).url
    response = httpx.post(
        f"{url}/api/payments/issue",
        headers={**world.stack.headers(USER), "Idempotency-Key": str(uuid.uuid4())},
        json={"productType": "STUDY", "productId": "study_123", "amount": 50000, "method": method},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    issued: dict[str, Any] = response.json()
    return issued


def status_of(world: SdkWorld, transaction_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{world.stack.api_url}/api/payments/{transaction_id}/status",
        headers=world.stack.headers(USER),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def wait_for_status(
    world: SdkWorld, transaction_id: str, codes: set[int], timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = status_of(world, transaction_id)
        if answer["statusCode"] in codes or time.monotonic() > deadline:
            assert answer["statusCode"] in codes, answer
            return answer
        time.sleep(0.3)


def open_page(page: Page, world: SdkWorld, issued: dict[str, Any], version: int = 2) -> None:
    src = f"{world.mock.url}/v2/standard" if version == 2 else f"{world.mock.url}/v1"
    query = urlencode({"issued": json.dumps(issued), "src": src})
    page.goto(f"{world.pages.url}/checkout-v{version}.html?{query}")
    page.wait_for_function("window.sdkReady === true")


def start_checkout(page: Page, options: dict[str, Any]) -> None:
    """Call the page's checkout without awaiting it: it navigates away or waits for the window."""
    page.evaluate("(options) => { window.outcome = window.checkout(options); }", options)


def outcome(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate("window.outcome")
    return result


def approve_in_window(page: Page, card_number: str | None = None) -> None:
    page.wait_for_url("**/checkout?**")
    if card_number is not None:
        page.fill("#cardNumber", card_number)
    page.click("button.approve")


# ---------------------------------------------------------------------------------------------


def test_an_unchanged_v2_page_pays_by_card_through_the_official_loader(world: SdkWorld, page: Page) -> None:
    issued = issue(world)
    open_page(page, world, issued)
    start_checkout(page, {"mode": "redirect", "method": "CARD"})
    approve_in_window(page)
    page.wait_for_url(f"**/frontend/payment/success/?transactionId={issued['transactionId']}")
    answer = wait_for_status(world, issued["transactionId"], {40, 45, 50})
    assert answer["amount"] == 50000
    screenshot(page, "sdk-v2-card-redirect-success")


def test_an_unchanged_v2_page_pays_into_a_virtual_account(world: SdkWorld, page: Page) -> None:
    issued = issue(world, "VIRTUAL_ACCOUNT")
    open_page(page, world, issued)
    start_checkout(page, {"mode": "redirect", "method": "VIRTUAL_ACCOUNT"})
    approve_in_window(page)
    page.wait_for_url("**/frontend/payment/success/**")
    waiting = wait_for_status(world, issued["transactionId"], {30})
    assert waiting["virtualAccount"]["accountNumber"]
    deposit = httpx.post(
        f"{world.mock.url}/_mock/virtual-accounts/{issued['transactionId']}/deposit", json={}, timeout=10
    )
    assert deposit.status_code == 200, deposit.text
    wait_for_status(world, issued["transactionId"], {40, 45, 50})
    screenshot(page, "sdk-v2-virtual-account-redirect")


def test_promise_mode_resolves_the_result_and_the_merchant_confirms_it(world: SdkWorld, page: Page) -> None:
    issued = issue(world)
    open_page(page, world, issued)
    start_checkout(page, {"mode": "promise", "method": "CARD"})
    window = page.frame_locator("[data-mock-toss=payment-window] iframe")
    window.locator("button.approve").wait_for()
    screenshot(page, "sdk-v2-promise-layer-open")
    window.locator("button.approve").click()
    result = outcome(page)
    assert set(result) == {"paymentType", "paymentKey", "orderId", "amount"}
    assert result["orderId"] == issued["transactionId"] and result["paymentType"] == "NORMAL"
    assert result["amount"] == {"currency": "KRW", "value": 50000}
    assert page.locator("[data-mock-toss=payment-window]").count() == 0
    # The merchant's page hands the result to its server: here, our success callback.
    query = urlencode(
        {
            "paymentKey": result["paymentKey"],
            "orderId": result["orderId"],
            "amount": result["amount"]["value"],
        }
    )
    page.goto(f"{issued['successUrl']}?{query}")
    page.wait_for_url("**/frontend/payment/success/**")
    wait_for_status(world, issued["transactionId"], {40, 45, 50})


def test_promise_mode_cancel_rejects_user_cancel_and_charges_nothing(world: SdkWorld, page: Page) -> None:
    issued = issue(world)
    open_page(page, world, issued)
    start_checkout(page, {"mode": "promise"})
    page.frame_locator("[data-mock-toss=payment-window] iframe").locator("button.cancel").click()
    assert outcome(page)["code"] == "USER_CANCEL"
    start_checkout(page, {"mode": "promise"})
    page.locator("[data-mock-toss=payment-window] button[aria-label]").click()  # the layer's ×
    assert outcome(page)["code"] == "USER_CANCEL"
    assert status_of(world, issued["transactionId"])["statusCode"] == 10


def test_redirect_mode_buyer_cancel_reaches_the_fail_page_with_the_pgs_code(
    world: SdkWorld, page: Page
) -> None:
    issued = issue(world)
    open_page(page, world, issued)
    start_checkout(page, {"mode": "redirect"})
    page.wait_for_url("**/checkout?**")
    page.click("button.cancel")
    page.wait_for_url("**/frontend/payment/fail/**")
    assert "code=PAY_PROCESS_CANCELED" in page.url
    answer = wait_for_status(world, issued["transactionId"], {41})
    assert answer["failure"]["pgCode"] == "PAY_PROCESS_CANCELED"


def test_easy_pay_through_the_card_method_with_tosspay(world: SdkWorld, page: Page) -> None:
    issued = issue(world, "EASY_PAY")
    open_page(page, world, issued)
    start_checkout(
        page, {"mode": "redirect", "method": "CARD", "card": {"flowMode": "DIRECT", "easyPay": "TOSSPAY"}}
    )
    page.wait_for_url("**/checkout?**")
    assert "토스페이" in page.content() or "간편결제" in page.content()
    page.click("button.approve")
    page.wait_for_url("**/frontend/payment/success/**")
    wait_for_status(world, issued["transactionId"], {40, 45, 50})


def test_widgets_with_the_widget_key_pair(world: SdkWorld, page: Page) -> None:
    issued = issue(world, api=world.widget_api)
    assert issued["clientKey"] == DOCS_WIDGET_CLIENT_KEY
    open_page(page, world, issued)
    start_checkout(page, {"mode": "redirect", "widgets": True})
    page.wait_for_selector("[data-mock-toss=payment-methods] input[value=CARD]:checked")
    page.wait_for_selector("[data-mock-toss=agreement] input:checked")
    assert page.evaluate("window.selectedMethod()") == {"code": "CARD"}
    screenshot(page, "sdk-v2-widgets-rendered")
    page.click("#pay")
    approve_in_window(page)
    page.wait_for_url("**/frontend/payment/success/**")
    # Confirmed by the service with the widget secret key (the mock refuses the other pair's).
    wait_for_status(world, issued["transactionId"], {40, 45, 50})


def test_widgets_refuse_to_pay_without_the_required_agreement(world: SdkWorld, page: Page) -> None:
    issued = issue(world, api=world.widget_api)
    open_page(page, world, issued)
    start_checkout(page, {"mode": "redirect", "widgets": True})
    page.click("[data-mock-toss=agreement] input")
    page.click("#pay")
    assert outcome(page)["code"] == "NEED_AGREEMENT_WITH_REQUIRED_TERMS"


def test_widgets_refuse_an_api_individual_key(world: SdkWorld, page: Page) -> None:
    issued = issue(world)  # the API key pair's client key
    open_page(page, world, issued)
    start_checkout(page, {"mode": "redirect", "widgets": True})
    assert outcome(page)["code"] == "NOT_SUPPORTED_API_INDIVIDUAL_KEY"


def test_an_unchanged_v1_page_pays_with_korean_method_names(world: SdkWorld, page: Page) -> None:
    issued = issue(world)
    open_page(page, world, issued, version=1)
    start_checkout(page, {"mode": "redirect", "method": "카드"})
    approve_in_window(page)
    page.wait_for_url("**/frontend/payment/success/**")
    wait_for_status(world, issued["transactionId"], {40, 45, 50})

    easy = issue(world, "EASY_PAY")
    open_page(page, world, easy, version=1)
    start_checkout(page, {"mode": "promise", "method": "토스페이"})
    page.frame_locator("[data-mock-toss=payment-window] iframe").locator("button.approve").click()
    result = outcome(page)
    assert result["amount"] == 50000 and result["orderId"] == easy["transactionId"]


@pytest.mark.parametrize(
    ("version", "options", "code"),
    [
        (2, {"clientKey": "test_ck_unknownKey000000000000"}, "INVALID_CLIENT_KEY"),
        (2, {"method": "CULTURE_GIFT_CERTIFICATE"}, "NOT_SUPPORTED_METHOD"),
        (2, {"clientKey": DOCS_WIDGET_CLIENT_KEY}, "NOT_SUPPORTED_WIDGET_KEY"),
        (1, {"method": "카드", "extra": {"amount": "50000"}}, "INVALID_AMOUNT_VALUE"),
        (1, {"method": "카드", "extra": {"amount": -1}}, "BELOW_ZERO_AMOUNT"),
        (1, {"method": "카드", "extra": {"orderId": None}}, "INVALID_ORDER_ID"),
        (
            1,
            {"method": "카드", "extra": {"successUrl": "/relative", "failUrl": "/relative"}},
            "INCORRECT_SUCCESS_URL_FORMAT",
        ),
        (1, {"method": "문화상품권"}, "NOT_SUPPORTED_METHOD"),
    ],
)
def test_bad_requests_are_thrown_like_the_sdk_throws_them(
    world: SdkWorld, page: Page, version: int, options: dict[str, Any], code: str
) -> None:
    issued = issue(world)
    open_page(page, world, issued, version=version)
    result = page.evaluate("(options) => window.checkout(options)", options)  # fails at once: no window
    assert result["code"] == code, result
    assert result["message"]
    assert "/checkout?" not in page.url  # no window opened
