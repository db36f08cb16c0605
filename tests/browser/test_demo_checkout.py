"""The demo checkout (app/demo.py) in a real browser, against the whole service.

Every test starts on the demo's shop, pays through the Toss SDK the page loads from the mock, acts
in the mock's payment window like a buyer (a test card, approve or cancel), follows the redirects
through our API's callbacks back to the demo's result page and checks what the buyer sees there.
Each saves a screenshot of its end state in test-reports/screenshots/.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, Route, expect

from tests.browser.conftest import PHONE, DemoStack, screenshot

STUDY = "study_123"  # 50,000원 in app/catalog.json
STUDY_PRICE = "50,000원"

CARD_APPROVE = "4330000000000005"
CARD_REJECT_BALANCE = "4330000000000013"
CARD_PROVIDER_ERROR = "4330000000000039"
CARD_SLOW_CONFIRM = "4330000000000047"
CARD_FAIL_ONCE = "4330000000000054"
CARD_WINDOW_REJECT = "4330000000000062"

# Longest a result page may need: a slow confirm (3 s), reconciliation, the grant, 1-2-3-5 s polls.
SETTLED_TIMEOUT_MS = 30_000


# --- acting like a buyer ------------------------------------------------------------------------------


def open_shop(page: Page, demo: DemoStack) -> None:
    page.goto(f"{demo.api_url}/demo/")
    expect(page.locator(f'li.product[data-product-id="{STUDY}"]')).to_be_visible()


def open_payment_window(page: Page, demo: DemoStack, *, method: str = "CARD") -> None:
    """From the shop: choose `method`, press "Pay" on the study, land in the mock's window."""
    open_shop(page, demo)
    page.locator(f'input[name="method"][value="{method}"]').check()
    page.locator(f'li.product[data-product-id="{STUDY}"] button.pay').click()
    page.wait_for_url(f"{demo.mock_url}/checkout?**")


def pay(page: Page, demo: DemoStack, *, method: str = "CARD", card: str | None = None) -> None:
    """A whole payment: the window approves (with `card` for card payments); back on a result page."""
    open_payment_window(page, demo, method=method)
    if card is not None:
        page.locator("#cardNumber").fill(card)
    page.locator("button.approve").click()
    page.wait_for_url(re.compile(r"/demo/payment/(success|fail)\?"))


def result(page: Page) -> Locator:
    return page.locator("#payment-result")


def state(page: Page, name: str) -> Locator:
    return page.locator(f'#payment-result section[data-state="{name}"]')


def expect_state(page: Page, name: str, *, timeout: float = SETTLED_TIMEOUT_MS) -> Locator:
    """Wait until the result page shows state `name` (and only it)."""
    expect(result(page)).to_have_attribute("data-current-state", name, timeout=timeout)
    section = state(page, name)
    expect(section).to_be_visible()
    expect(page.locator("#payment-result section[data-state]:visible")).to_have_count(1)
    return section


def query_of(page: Page) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(page.url).query).items()}


def seen_states(page: Page) -> list[str]:
    return (result(page).get_attribute("data-seen-states") or "").split()


def expect_ready(page: Page) -> Locator:
    """The success state once the purchase is granted (50): "ready"."""
    section = expect_state(page, "success")
    provisioning = page.locator("#provisioning")
    expect(provisioning).to_have_attribute("data-provisioning", "ready", timeout=SETTLED_TIMEOUT_MS)
    expect(provisioning).to_contain_text("준비 완료")
    expect(provisioning).to_contain_text("Ready: your study is waiting for you.")
    return section


def expect_paid_receipt(page: Page, section: Locator) -> None:
    transaction_id = query_of(page)["transactionId"]
    expect(section).to_contain_text("결제가 완료되었어요")
    expect(section).to_contain_text("Payment complete")
    expect(section.locator('[data-field="order-number"]')).to_have_text(transaction_id)
    expect(section.locator('[data-field="amount"]')).to_have_text(STUDY_PRICE)
    expect(section.locator("#paid-at")).to_contain_text("(KST)")
    expect(section.locator("#order-name")).to_have_text("Async study: Kotlin coroutines (8 weeks)")


def expect_no_raw_json(page: Page) -> None:
    text = page.locator("main").inner_text()
    assert '{"' not in text and '":' not in text, text


# --- cards --------------------------------------------------------------------------------------------


def test_an_approved_card_is_paid_and_the_study_gets_ready(page: Page, demo_stack: DemoStack) -> None:
    pay(page, demo_stack, card=CARD_APPROVE)

    assert urlsplit(page.url).path == "/demo/payment/success"
    section = expect_ready(page)
    expect_paid_receipt(page, section)
    assert seen_states(page)[0] == "checking", seen_states(page)
    expect_no_raw_json(page)
    screenshot(page, "demo-card-approved")


def test_a_slow_confirm_shows_confirming_then_success(page: Page, demo_stack: DemoStack) -> None:
    pay(page, demo_stack, card=CARD_SLOW_CONFIRM)

    section = expect_ready(page)
    expect_paid_receipt(page, section)
    # The mock held the confirm 3 s, longer than the API waits (1 s read timeout): the callback
    # redirected while the payment was still being confirmed, and reconciliation finished it.
    seen = seen_states(page)
    assert "confirming" in seen and seen.index("confirming") < seen.index("success"), seen
    screenshot(page, "demo-card-slow-confirmed")


def test_a_confirm_that_fails_once_still_ends_paid(page: Page, demo_stack: DemoStack) -> None:
    pay(page, demo_stack, card=CARD_FAIL_ONCE)

    section = expect_ready(page)
    expect_paid_receipt(page, section)
    screenshot(page, "demo-card-fail-once-paid")


@pytest.mark.parametrize(
    ("card", "error_code", "pg_code", "reason_ko", "reason_en", "name"),
    [
        pytest.param(
            CARD_REJECT_BALANCE,
            "PAY_004",
            "REJECT_CARD_PAYMENT",
            "잔액 또는 카드 한도가 부족해요.",
            "Insufficient balance or card limit.",
            "demo-card-rejected",
            id="insufficient-balance",
        ),
        pytest.param(
            CARD_PROVIDER_ERROR,
            "PAY_005",
            "PROVIDER_ERROR",
            "결제사 시스템 문제로 결제하지 못했어요.",
            "The payment provider could not process the payment.",
            "demo-card-provider-error",
            id="provider-error",
        ),
        pytest.param(
            CARD_WINDOW_REJECT,
            "PAY_003",
            "REJECT_CARD_COMPANY",
            "카드사 또는 결제사에서 결제를 승인하지 않았어요.",
            "The card company or the payment provider declined the payment.",
            "demo-card-window-rejected",
            id="window-reject",
        ),
    ],
)
def test_a_failed_card_shows_why_and_offers_to_try_again(
    page: Page,
    demo_stack: DemoStack,
    card: str,
    error_code: str,
    pg_code: str,
    reason_ko: str,
    reason_en: str,
    name: str,
) -> None:
    pay(page, demo_stack, card=card)

    assert urlsplit(page.url).path == "/demo/payment/fail"
    query = query_of(page)
    assert (query["code"], query["errorCode"]) == (pg_code, error_code), query
    section = expect_state(page, "failure")
    expect(section.locator("#failure-title")).to_contain_text("결제하지 못했어요")
    expect(section.locator("#failure-title")).to_contain_text("The payment did not go through")
    expect(section.locator("#failure-reason")).to_contain_text(reason_ko)
    expect(section.locator("#failure-reason")).to_contain_text(reason_en)
    expect(section.locator('[data-field="order-number"]')).to_have_text(query["transactionId"])
    expect(section).not_to_contain_text("취소")  # a decline is not the buyer's cancel
    try_again = section.locator("a#try-again")
    expect(try_again).to_contain_text("다시 시도하기")
    expect(try_again).to_have_attribute("href", "/demo/")
    # The status answer agrees (41, the PG's code kept), and nothing polls any more.
    expect(result(page)).to_have_attribute("data-failure-code", error_code)
    page.locator("details.developer summary").click()  # for developers: a list, never raw JSON
    details = page.locator("#developer-details")
    expect(details).to_contain_text("41 PAYMENT_FAILED")
    expect(details).to_contain_text(pg_code)
    expect_no_raw_json(page)
    screenshot(page, name)

    try_again.click()
    page.wait_for_url(f"{demo_stack.api_url}/demo/")


def test_the_buyer_cancelling_in_the_window_is_not_a_decline(page: Page, demo_stack: DemoStack) -> None:
    open_payment_window(page, demo_stack)
    page.locator("button.cancel").click()
    page.wait_for_url("**/demo/payment/fail?**")

    assert "code=PAY_PROCESS_CANCELED" in page.url, page.url
    section = expect_state(page, "failure")
    expect(section.locator("#failure-title")).to_contain_text("결제를 취소했어요")
    expect(section.locator("#failure-title")).to_contain_text("You cancelled the payment")
    expect(section.locator("#failure-reason")).to_contain_text("You have not been charged.")
    expect(section).not_to_contain_text("declined")
    expect(section).not_to_contain_text("거절")
    expect(page.locator("#developer-details")).to_contain_text("41 PAYMENT_FAILED")
    expect(result(page)).to_have_attribute("data-failure-code", "PAY_PROCESS_CANCELED")
    screenshot(page, "demo-buyer-cancel")


# --- other methods --------------------------------------------------------------------------------


def test_a_virtual_account_waits_for_the_deposit_then_is_paid(
    phone_page: Page, demo_stack: DemoStack
) -> None:
    page = phone_page
    pay(page, demo_stack, method="VIRTUAL_ACCOUNT")

    section = expect_state(page, "waiting-deposit")
    expect(section).to_contain_text("입금을 기다리고 있어요")
    expect(section).to_contain_text("Waiting for your deposit")
    expect(section.locator("#va-bank")).to_contain_text("우리은행")  # the mock's bank, code 20
    expect(section.locator("#va-account")).to_have_text(re.compile(r"^X\w{6,}"))
    expect(section.locator("#va-due")).to_contain_text("(KST)")
    expect(section.locator('[data-field="amount"]')).to_have_text(STUDY_PRICE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing sideways
    screenshot(page, "demo-va-waiting")

    section.locator("#simulate-deposit").click()

    paid = expect_ready(page)
    expect_paid_receipt(page, paid)
    assert seen_states(page)[-2:] == ["waiting-deposit", "success"], seen_states(page)
    screenshot(page, "demo-va-paid")


def test_toss_pay_as_easy_pay_is_paid(page: Page, demo_stack: DemoStack) -> None:
    open_payment_window(page, demo_stack, method="EASY_PAY")
    # The SDK asked for a card payment straight to Toss Pay's window: the mock's easy-pay window.
    assert query_of(page)["method"] == "EASY_PAY", page.url
    expect(page.locator("#method")).to_contain_text("EASY_PAY")
    page.locator("button.approve").click()
    page.wait_for_url("**/demo/payment/success?**")

    section = expect_ready(page)
    expect_paid_receipt(page, section)
    screenshot(page, "demo-easypay-approved")


# --- when it takes too long, and when the page is opened again -------------------------------------


def test_a_payment_stuck_in_confirmation_ends_in_delayed(page: Page, demo_stack: DemoStack) -> None:
    # Every confirm fails with a 5xx while this test runs: the outcome stays unknown (30).
    chaos = {"seed": 1, "routes": {"confirm": {"errorRate": 1.0}}}
    httpx.put(f"{demo_stack.mock_url}/_mock/chaos", json=chaos, timeout=5, trust_env=False).raise_for_status()
    try:
        pay(page, demo_stack, card=CARD_APPROVE)
        expect_state(page, "confirming")
        expect(state(page, "confirming")).to_contain_text("결제를 승인하고 있어요")
        screenshot(page, "demo-confirming")

        # The limit of polls is a query parameter: 2 polls (1 s apart), then "still processing".
        page.goto(page.url + "&maxPolls=2")
        section = expect_state(page, "delayed", timeout=10_000)
        expect(section).to_contain_text("아직 처리 중이에요")
        expect(section).to_contain_text("Check your order history")
        expect(section.locator('[data-field="order-number"]')).to_have_text(query_of(page)["transactionId"])
        assert seen_states(page) == ["checking", "confirming", "delayed"], seen_states(page)
        screenshot(page, "demo-delayed")
    finally:
        httpx.delete(f"{demo_stack.mock_url}/_mock/chaos", timeout=5, trust_env=False).raise_for_status()


def test_a_paid_result_opens_in_a_fresh_browser_context(
    page: Page, browser: Browser, demo_stack: DemoStack
) -> None:
    pay(page, demo_stack, card=CARD_APPROVE)
    expect_ready(page)
    paid_url = page.url

    # Another tab of another browser session: no cookies, no storage, only the URL.
    fresh = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    try:
        other = fresh.new_page()
        other.goto(paid_url)
        section = expect_ready(other)
        expect_paid_receipt(other, section)
        screenshot(other, "demo-fresh-tab-paid")
    finally:
        fresh.close()


def test_a_result_page_without_a_transaction_says_so(page: Page, demo_stack: DemoStack) -> None:
    page.goto(f"{demo_stack.api_url}/demo/payment/success?transactionId=tx_nobody_knows_0001")

    section = expect_state(page, "error")
    expect(section).to_contain_text("이 결제를 찾을 수 없어요")
    expect(section).to_contain_text("We could not find this payment.")
    screenshot(page, "demo-error-not-found")


def test_a_result_page_that_cannot_reach_the_api_says_so_and_can_check_again(
    page: Page, demo_stack: DemoStack
) -> None:
    pay(page, demo_stack, card=CARD_APPROVE)
    expect_ready(page)
    paid_url = page.url
    page.route("**/api/payments/*/status?**", lambda route: route.abort("internetdisconnected"))

    page.goto(paid_url)
    section = expect_state(page, "error", timeout=15_000)  # 3 requests without an answer, 1 s and 2 s apart
    expect(section).to_contain_text("서버에 연결할 수 없어요")
    expect(section).to_contain_text("Check your connection and try again.")
    screenshot(page, "demo-error-network")

    page.unroute("**/api/payments/*/status?**")
    section.locator("#retry-status").click()
    expect_ready(page)


# --- pushed by the event stream, or polled when it fails ----------------------------------------------


def test_the_result_page_follows_the_event_stream(page: Page, demo_stack: DemoStack) -> None:
    polls: list[str] = []
    streams: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if "/status?" in request.url else None)
    page.on("request", lambda request: streams.append(request.url) if "/events?" in request.url else None)

    # The slow card: the first poll sees 30, so the page opens the stream before anything is settled.
    pay(page, demo_stack, card=CARD_SLOW_CONFIRM)

    section = expect_ready(page)
    expect_paid_receipt(page, section)
    expect(result(page)).to_have_attribute("data-transport", "sse")
    seen = seen_states(page)
    assert seen.index("confirming") < seen.index("success"), seen
    # One poll (its streamToken opened the stream), one stream, and every later state came by it.
    assert len(polls) == 1, polls
    assert len(streams) == 1 and "streamToken=st1." in streams[0], streams
    assert "Bearer" not in streams[0] and "eyJ" not in streams[0]  # never the bearer token in a URL
    page.locator("details.developer summary").click()
    expect(page.locator("#developer-details")).to_contain_text("50 PROVISION_SUCCESS")
    expect(page.locator("#developer-details")).to_contain_text("sse")
    screenshot(page, "demo-stream-ready")


def test_the_result_page_polls_when_the_event_stream_fails(page: Page, demo_stack: DemoStack) -> None:
    refused: list[str] = []
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if "/status?" in request.url else None)

    def refuse(route: Route) -> None:
        refused.append(route.request.url)
        route.abort("connectionrefused")

    page.route("**/api/payments/*/events?**", refuse)
    pay(page, demo_stack, card=CARD_SLOW_CONFIRM)

    section = expect_ready(page)
    expect_paid_receipt(page, section)
    expect(result(page)).to_have_attribute("data-transport", "polling")
    assert len(refused) == 1, refused  # tried once; after its error the page polled
    assert len(polls) >= 2, polls
    seen = seen_states(page)
    assert seen.index("confirming") < seen.index("success"), seen
    screenshot(page, "demo-stream-refused-polled")


# --- the shop itself ----------------------------------------------------------------------------------


def test_the_shop_on_a_phone_lists_products_and_methods(phone_page: Page, demo_stack: DemoStack) -> None:
    page = phone_page
    open_shop(page, demo_stack)

    expect(page.locator("li.product")).to_have_count(4)
    expect(page.locator(f'li.product[data-product-id="{STUDY}"]')).to_contain_text(STUDY_PRICE)
    for label in ("카드", "토스페이", "가상계좌", "계좌이체"):
        expect(page.locator("fieldset.methods")).to_contain_text(label)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "demo-shop-phone")


def test_an_attempt_keeps_its_idempotency_key_when_its_request_is_sent_again(
    page: Page, demo_stack: DemoStack
) -> None:
    keys: list[str] = []

    def first_one_lost(route: Route) -> None:
        keys.append(route.request.headers["idempotency-key"])
        if len(keys) == 1:
            route.abort("connectionreset")  # the network drops the first request
        else:
            route.continue_()

    page.route("**/api/payments/issue", first_one_lost)
    open_payment_window(page, demo_stack)
    assert len(keys) == 2 and keys[0] == keys[1], keys

    open_payment_window(page, demo_stack)  # a new attempt (a new click): a new key
    assert len(keys) == 3 and keys[2] != keys[0], keys


def test_an_sdk_error_is_shown_on_the_shop(page: Page, demo_stack: DemoStack) -> None:
    def issued_with_a_bad_order_id(route: Route) -> None:
        answer = route.fetch()
        body = answer.json()
        body["transactionId"] = "x"  # too short for an orderId: the SDK refuses to open the window
        route.fulfill(response=answer, body=json.dumps(body))

    page.route("**/api/payments/issue", issued_with_a_bad_order_id)
    open_shop(page, demo_stack)
    page.locator(f'li.product[data-product-id="{STUDY}"] button.pay').click()

    error = page.locator("#shop-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("결제창을 열지 못했어요.")
    expect(error).to_contain_text("The payment window could not be opened.")
    expect(error.locator("code")).to_contain_text("INVALID_ORDER_ID")
    expect(page.locator("button.pay").first).to_be_enabled()  # the buyer can try again
    screenshot(page, "demo-sdk-error")
