"""redirect_url: a callback's outcome → the frontend's success or fail page, and its query."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from app.core.checkout import CallbackOutcome
from app.http.redirects import FrontendPages, redirect_url

FRONTEND = "https://shop.example.com"


def fail_query(url: str) -> list[tuple[str, str]]:
    """The fail page's query, in order (fails the test for any other page)."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{FRONTEND}/payment/fail", url
    return parse_qsl(parts.query, keep_blank_values=True)


def test_success_names_the_transaction_only() -> None:
    assert (
        redirect_url(FRONTEND, CallbackOutcome.success("TXN_1"))
        == f"{FRONTEND}/payment/success?transactionId=TXN_1"
    )


def test_a_buyer_cancel_carries_the_pgs_code_and_ours() -> None:
    outcome = CallbackOutcome.fail(
        "TXN_1", "PAY_003", "The payment was cancelled in the payment window.", pg_code="PAY_PROCESS_CANCELED"
    )

    url = redirect_url(FRONTEND, outcome, "en")

    assert fail_query(url) == [
        ("transactionId", "TXN_1"),
        ("code", "PAY_PROCESS_CANCELED"),
        ("message", "The payment was cancelled in the payment window."),
        ("errorCode", "PAY_003"),
    ]
    assert url == (
        f"{FRONTEND}/payment/fail?transactionId=TXN_1&code=PAY_PROCESS_CANCELED"
        "&message=The+payment+was+cancelled+in+the+payment+window.&errorCode=PAY_003"
    )


@pytest.mark.parametrize(
    ("pg_code", "ours"),
    [
        ("REJECT_CARD_COMPANY", "PAY_003"),
        ("REJECT_CARD_PAYMENT", "PAY_004"),
        ("INVALID_CARD_EXPIRATION", "PAY_003"),
    ],
)
def test_a_decline_carries_the_pgs_code_and_ours(pg_code: str, ours: str) -> None:
    query = dict(
        fail_query(redirect_url(FRONTEND, CallbackOutcome.fail("TXN_1", ours, "no", pg_code=pg_code)))
    )

    assert (query["code"], query["errorCode"], query["message"]) == (pg_code, ours, "no")


def test_without_a_pg_code_both_codes_are_ours() -> None:
    outcome = CallbackOutcome.fail("TXN_1", "PAY_002", "The transaction has expired.")

    assert fail_query(redirect_url(FRONTEND, outcome, "en")) == [
        ("transactionId", "TXN_1"),
        ("code", "PAY_002"),
        ("message", "The transaction has expired."),
        ("errorCode", "PAY_002"),
    ]


def test_our_message_is_korean_unless_the_browser_prefers_english() -> None:
    outcome = CallbackOutcome.fail(
        "TXN_1", "PAY_003", "The payment was cancelled in the payment window.", pg_code="PAY_PROCESS_CANCELED"
    )

    korean = dict(fail_query(redirect_url(FRONTEND, outcome)))
    english = dict(fail_query(FrontendPages(FRONTEND).url(outcome, "en")))

    assert korean["message"] == "결제창에서 결제가 취소되었습니다."
    assert english["message"] == "The payment was cancelled in the payment window."
    assert {k: v for k, v in korean.items() if k != "message"} == {
        k: v for k, v in english.items() if k != "message"
    }


def test_a_message_that_is_not_ours_is_passed_on_as_it_is() -> None:
    # Failures stored before the PG's words had a column of their own keep them as the message.
    outcome = CallbackOutcome.fail("TXN_1", "PAY_003", "카드사 거절")

    assert dict(fail_query(redirect_url(FRONTEND, outcome, "en")))["message"] == "카드사 거절"
    assert dict(fail_query(redirect_url(FRONTEND, outcome, "ko")))["message"] == "카드사 거절"


def test_without_a_transaction_the_id_is_left_out() -> None:
    outcome = CallbackOutcome.fail(None, "PAY_008", "No such transaction.")

    assert fail_query(redirect_url(FRONTEND, outcome, "en")) == [
        ("code", "PAY_008"),
        ("message", "No such transaction."),
        ("errorCode", "PAY_008"),
    ]


@pytest.mark.parametrize(
    "pg_code",
    ["reject", "REJECT CARD", "<script>", "X" * 65, "REJECT\r\nSet-Cookie: a=b", "", "ＲＥＪＥＣＴ"],
    ids=["lower-case", "space", "markup", "too-long", "header-injection", "empty", "full-width"],
)
def test_a_pg_code_of_any_other_shape_never_reaches_the_url(pg_code: str) -> None:
    outcome = CallbackOutcome.fail("TXN_1", "PAY_003", "The payment was not completed.", pg_code=pg_code)

    assert outcome.pg_code is None
    assert dict(fail_query(redirect_url(FRONTEND, outcome)))["code"] == "PAY_003"


def test_the_message_is_url_encoded() -> None:
    outcome = CallbackOutcome.fail("TXN_1", "PAY_003", "결제 & 취소 = ?#", pg_code="PAY_PROCESS_CANCELED")

    url = redirect_url(FRONTEND, outcome)

    assert "#" not in url and " " not in url
    assert dict(fail_query(url))["message"] == "결제 & 취소 = ?#"


def test_a_trailing_slash_of_the_frontend_is_ignored() -> None:
    outcome = CallbackOutcome.fail("TXN_1", "PAY_003", "no", pg_code="REJECT_CARD_COMPANY")

    assert FrontendPages(FRONTEND + "/").url(outcome) == redirect_url(FRONTEND, outcome)
    assert redirect_url(FRONTEND + "/", outcome).startswith(f"{FRONTEND}/payment/fail?")
