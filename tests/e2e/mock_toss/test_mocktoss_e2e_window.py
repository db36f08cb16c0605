"""The payment window, HTML and programmatic, and Toss's browser redirects."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from mock_toss.config import DEFAULT_CLIENT_KEY
from tests.e2e.mock_toss.helpers import window_request


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


async def open_window(toss: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await toss.get("/checkout", params={**window_request("order-html-0001", 50000), **params})


def form_action(html: str) -> str:
    match = re.search(r'<form method="post" action="([^"]+)"', html)
    assert match, html
    return match.group(1)


async def test_html_window_renders_the_order_summary(toss: httpx.AsyncClient) -> None:
    response = await open_window(toss)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    for text in (
        "스터디 등록 외 1건",
        "order-html-0001",
        "50,000원",
        "카드",
        'name="cardNumber"',
        "4330000000000005",
    ):
        assert text in html
    assert 'value="approve"' in html and 'value="cancel"' in html
    lookup = (await toss.get("/v1/payments/orders/order-html-0001")).json()
    assert lookup["status"] == "READY" and form_action(html) == f"/checkout/{lookup['paymentKey']}"


async def test_submitting_the_form_redirects_to_success_url(toss: httpx.AsyncClient) -> None:
    html = (
        await open_window(toss, successUrl="http://shop.test/cb/success?transactionId=order-html-0001")
    ).text
    submitted = await toss.post(
        form_action(html), data={"cardNumber": "4330000000000005", "action": "approve"}
    )
    assert submitted.status_code == 303
    location = submitted.headers["location"]
    assert location.startswith(
        "http://shop.test/cb/success?transactionId=order-html-0001&paymentType=NORMAL&"
    )
    query = query_of(location)
    payment = (await toss.get("/v1/payments/orders/order-html-0001")).json()
    assert query == {
        "transactionId": ["order-html-0001"],
        "paymentType": ["NORMAL"],
        "orderId": ["order-html-0001"],
        "paymentKey": [payment["paymentKey"]],
        "amount": ["50000"],
    }
    assert payment["status"] == "IN_PROGRESS"


async def test_cancel_button_redirects_to_fail_url_without_order_id(toss: httpx.AsyncClient) -> None:
    html = (await open_window(toss)).text
    submitted = await toss.post(form_action(html), data={"action": "cancel"})
    assert submitted.status_code == 303
    query = query_of(submitted.headers["location"])
    assert query == {
        "transactionId": ["order-html-0001"],
        "code": ["PAY_PROCESS_CANCELED"],
        "message": ["사용자에 의해 결제가 취소되었습니다."],
    }
    assert (await toss.get("/v1/payments/orders/order-html-0001")).json()["status"] == "READY"


async def test_window_card_failures_redirect_with_order_id(toss: httpx.AsyncClient) -> None:
    html = (await open_window(toss)).text
    malformed = await toss.post(form_action(html), data={"cardNumber": "1234", "action": "approve"})
    assert query_of(malformed.headers["location"])["code"] == ["INVALID_CARD_NUMBER"]
    rejected = await toss.post(
        form_action(html), data={"cardNumber": "4330000000000062", "action": "approve"}
    )
    query = query_of(rejected.headers["location"])
    assert (query["code"], query["orderId"]) == (["REJECT_CARD_COMPANY"], ["order-html-0001"])
    assert query["message"] == ["결제 승인이 거절되었습니다."]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"orderId": "abc"}, "INVALID_ORDER_ID"),
        ({"orderName": "x" * 101}, "INVALID_ORDER_NAME"),
        ({"amount": "abc"}, "INVALID_REQUEST"),
        ({"amount": "99"}, "BELOW_MINIMUM_AMOUNT"),
        ({"clientKey": "test_ck_unknown"}, "INVALID_CLIENT_KEY"),
        ({"clientKey": "live_ck_D5GePWvyJnrK0W0k6q8gLzN97Eoq"}, "INVALID_CLIENT_KEY"),
        ({"method": "CRYPTO"}, "NOT_SUPPORTED_METHOD"),
        ({"successUrl": "not a url"}, "INCORRECT_SUCCESS_URL_FORMAT"),
    ],
)
async def test_invalid_window_input_is_a_400_json_not_a_redirect(
    toss: httpx.AsyncClient, params: dict[str, str], code: str
) -> None:
    html_window = await open_window(toss, **params)
    assert (html_window.status_code, html_window.json()["code"]) == (400, code)
    body = {**window_request("order-html-0001", 50000), **params}
    program_window = await toss.post("/_mock/checkout", json=body)
    assert (program_window.status_code, program_window.json()["code"]) == (400, code)


async def test_programmatic_window_outcomes(toss: httpx.AsyncClient) -> None:
    canceled = (
        await toss.post("/_mock/checkout", json={**window_request("order-prog-0001"), "action": "cancel"})
    ).json()
    assert canceled["paymentKey"] is None
    assert query_of(canceled["redirectUrl"])["code"] == ["PAY_PROCESS_CANCELED"]
    assert "orderId" not in query_of(canceled["redirectUrl"])

    rejected = (
        await toss.post(
            "/_mock/checkout", json={**window_request("order-prog-0001"), "cardNumber": "4330000000000062"}
        )
    ).json()
    assert rejected["paymentKey"] is None and query_of(rejected["redirectUrl"])["orderId"] == [
        "order-prog-0001"
    ]

    english = await toss.post(
        "/_mock/checkout",
        json={**window_request("order-prog-0001"), "cardNumber": "12ab"},
        headers={"Accept-Language": "en-US"},
    )
    assert query_of(english.json()["redirectUrl"])["message"] == ["Please check the card number."]

    approved = (await toss.post("/_mock/checkout", json=window_request("order-prog-0001"))).json()
    assert approved["paymentKey"] and query_of(approved["redirectUrl"])["paymentKey"] == [
        approved["paymentKey"]
    ]

    bad_action = await toss.post(
        "/_mock/checkout", json={**window_request("order-prog-0002"), "action": "maybe"}
    )
    assert bad_action.status_code == 400


async def test_a_ready_session_is_reused_and_a_taken_order_id_is_a_duplicate(toss: httpx.AsyncClient) -> None:
    first = await open_window(toss)
    second = await open_window(toss, amount="60000")
    assert form_action(first.text) == form_action(second.text)
    assert (await toss.get("/v1/payments/orders/order-html-0001")).json()["totalAmount"] == 60000
    await toss.post(form_action(second.text), data={"action": "approve"})
    reopened = await open_window(toss)
    assert reopened.status_code == 303
    query = query_of(reopened.headers["location"])
    assert (query["code"], query["orderId"]) == (["DUPLICATED_ORDER_ID"], ["order-html-0001"])
    program = (await toss.post("/_mock/checkout", json=window_request("order-html-0001", 50000))).json()
    assert program["paymentKey"] is None and query_of(program["redirectUrl"])["code"] == [
        "DUPLICATED_ORDER_ID"
    ]


async def test_korean_method_names_in_the_window(toss: httpx.AsyncClient) -> None:
    html = (await open_window(toss, method="계좌이체")).text
    assert "계좌이체 (TRANSFER)" in html and 'name="cardNumber"' not in html
    unknown_payment = await toss.post("/checkout/tviva_unknown", data={"action": "approve"})
    assert unknown_payment.status_code == 404


async def test_window_needs_no_auth_but_a_known_client_key(mock_server: Any) -> None:
    async with httpx.AsyncClient(base_url=mock_server.url, trust_env=False) as browser:
        response = await browser.get(
            "/checkout", params={**window_request("order-html-0002"), "clientKey": DEFAULT_CLIENT_KEY}
        )
    assert response.status_code == 200


async def test_double_submit_repeats_the_success_redirect_and_an_expired_window_aborts(
    toss: httpx.AsyncClient,
) -> None:
    html = (await open_window(toss)).text
    first = await toss.post(form_action(html), data={"action": "approve"})
    again = await toss.post(form_action(html), data={"action": "approve"})
    assert first.headers["location"] == again.headers["location"]
    late_html = (await open_window(toss, orderId="order-html-0003")).text
    await toss.post("/_mock/clock", json={"advanceSeconds": 30 * 60 + 1})
    late = await toss.post(form_action(late_html), data={"action": "approve"})
    query = query_of(late.headers["location"])
    assert (query["code"], query["orderId"]) == (["PAY_PROCESS_ABORTED"], ["order-html-0003"])
