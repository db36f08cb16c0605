"""Pure rules of the mock Toss: money, formats, identifiers, validation, redirects, error table."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from mock_toss.auth import authenticate, basic_auth_header, secret_key_from_header
from mock_toss.checkout import fail_redirect, is_valid_order_id, parse_checkout, with_query
from mock_toss.config import DEFAULT_CLIENT_KEY, DEFAULT_SECRET_KEY, MockConfig
from mock_toss.errors import ERRORS, TossError, language_of
from mock_toss.payments import (
    Method,
    bank_code_of,
    masked_card_number,
    new_payment_key,
    new_secret,
    new_transaction_key,
    parse_method,
    toss_time,
    vat_of,
    webhook_time,
)
from mock_toss.scenarios import CardOutcome, card_outcome, normalize_card_number

MOMENT = datetime(2024, 2, 13, 3, 17, 57, 729718, tzinfo=UTC)  # 12:17:57.729718 in Seoul


@pytest.mark.parametrize(
    ("amount", "tax_free", "vat"),
    [
        (15000, 0, 1364),
        (1000, 0, 91),
        (4900, 0, 445),
        (9026, 0, 821),
        (1000, 100, 82),
        (11, 0, 1),
        (5, 0, 0),
        (6, 0, 1),
    ],
)
def test_vat_is_a_rounded_eleventh_of_the_taxable_amount(amount: int, tax_free: int, vat: int) -> None:
    assert vat_of(amount, tax_free) == vat


def test_api_times_are_kst_without_fractions_and_webhook_times_have_microseconds_without_offset() -> None:
    assert toss_time(MOMENT) == "2024-02-13T12:17:57+09:00"
    assert webhook_time(MOMENT) == "2024-02-13T12:17:57.729718"


def test_identifiers_look_like_toss_ones() -> None:
    assert re.fullmatch(r"tviva20240213121757[A-Za-z0-9]{5}", new_payment_key(MOMENT))
    assert re.fullmatch(r"[0-9A-F]{32}", new_transaction_key())
    secret = new_secret()
    assert secret.startswith("ps_") and len(secret) == 31
    assert masked_card_number("4330000000000005") == "43300000****000*"


@pytest.mark.parametrize(
    ("order_id", "valid"),
    [
        ("abc123", True),
        ("A-b_C-9", True),
        ("x" * 64, True),
        ("abc12", False),
        ("x" * 65, False),
        ("order 1", False),
        ("order.1", False),
        ("주문번호123", False),
        (None, False),
    ],
)
def test_order_id_rule(order_id: str | None, valid: bool) -> None:
    assert is_valid_order_id(order_id) is valid


def test_methods_accept_our_names_and_korean_names() -> None:
    assert parse_method("CARD") is Method.CARD
    assert parse_method("카드") is Method.CARD
    assert parse_method("virtual_account") is Method.VIRTUAL_ACCOUNT
    assert parse_method("가상계좌") is Method.VIRTUAL_ACCOUNT
    assert parse_method("간편결제") is Method.EASY_PAY
    assert parse_method("계좌이체") is Method.TRANSFER
    assert parse_method("휴대폰") is Method.MOBILE_PHONE
    assert parse_method("BITCOIN") is None


def test_banks_by_code_or_korean_name() -> None:
    assert bank_code_of("88") == "88"
    assert bank_code_of("신한") == "88"
    assert bank_code_of("KB국민") == "06"
    assert bank_code_of("99") is None


def test_basic_auth_key_parsing() -> None:
    assert secret_key_from_header(basic_auth_header(DEFAULT_SECRET_KEY)) == DEFAULT_SECRET_KEY
    assert authenticate(basic_auth_header(DEFAULT_SECRET_KEY), (DEFAULT_SECRET_KEY,)) == DEFAULT_SECRET_KEY
    cases = {
        None: "UNAUTHORIZED_KEY",
        "": "UNAUTHORIZED_KEY",
        "Bearer abc": "INCORRECT_BASIC_AUTH_FORMAT",
        "Basic": "INCORRECT_BASIC_AUTH_FORMAT",
        "Basic not-base64!!": "INCORRECT_BASIC_AUTH_FORMAT",
        "Basic dGVzdF9za19ub2NvbG9u": "INCORRECT_BASIC_AUTH_FORMAT",  # base64("test_sk_nocolon")
        basic_auth_header("test_sk_unknown"): "UNAUTHORIZED_KEY",
        basic_auth_header("live_sk_zXLkKEypNArWmo50nX3lmeaxYG5R"): "UNAUTHORIZED_KEY",
    }
    for header, code in cases.items():
        with pytest.raises(TossError) as caught:
            authenticate(header, (DEFAULT_SECRET_KEY,))
        assert caught.value.code == code, header


def test_the_docs_worked_example_header_authenticates() -> None:
    header = "Basic dGVzdF9za196WExrS0V5cE5BcldtbzUwblgzbG1lYXhZRzVSOg=="
    assert authenticate(header, (DEFAULT_SECRET_KEY,)) == DEFAULT_SECRET_KEY


def test_error_table_has_documented_statuses_and_both_languages() -> None:
    documented = {
        "UNAUTHORIZED_KEY": 401,
        "INCORRECT_BASIC_AUTH_FORMAT": 403,
        "ALREADY_PROCESSED_PAYMENT": 400,
        "PROVIDER_ERROR": 400,
        "REJECT_CARD_PAYMENT": 403,
        "REJECT_CARD_COMPANY": 403,
        "NOT_FOUND_PAYMENT": 404,
        "NOT_FOUND_PAYMENT_SESSION": 404,
        "FAILED_INTERNAL_SYSTEM_PROCESSING": 500,
        "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING": 500,
        "IDEMPOTENT_REQUEST_PROCESSING": 409,
        "INVALID_IDEMPOTENCY_KEY": 400,
        "NOT_CANCELABLE_AMOUNT": 403,
        "NOT_CANCELABLE_PAYMENT": 403,
        "ALREADY_CANCELED_PAYMENT": 400,
        "NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT": 403,
        "INVALID_REFUND_ACCOUNT_INFO": 400,
        "DUPLICATED_ORDER_ID": 400,
        "INVALID_BANK": 400,
        "INVALID_VALID_HOURS_WITH_DUE_DATE_AND_SINGLE": 400,
        "INVALID_TEST_CODE": 400,
        "BELOW_MINIMUM_AMOUNT": 400,
        "COMMON_ERROR": 500,
    }
    for code, status in documented.items():
        assert ERRORS[code].status == status, code
    for code, spec in ERRORS.items():
        assert spec.status in (400, 401, 403, 404, 409, 429, 500), code
        assert spec.message_ko and spec.message_en and spec.message_ko != spec.message_en, code
    assert ERRORS["NOT_FOUND_PAYMENT_SESSION"].message_en == (
        "Payment session does not exist because the session time has expired."
    )


def test_toss_error_bodies_follow_the_callers_language() -> None:
    error = TossError("ALREADY_PROCESSED_PAYMENT")
    assert error.body("ko") == {"code": "ALREADY_PROCESSED_PAYMENT", "message": "이미 처리된 결제 입니다."}
    assert error.body("en")["message"] == "The payment has already been processed."
    assert language_of("en-US") == "en"
    assert language_of("ko-KR,ko;q=0.9") == "ko"
    assert language_of(None) == "ko"
    with pytest.raises(KeyError):
        TossError("NOT_A_TOSS_CODE")


def test_redirects_append_to_an_existing_query_and_leave_order_id_out_of_cancellations() -> None:
    assert (
        with_query("http://shop.test/cb?transactionId=X", [("a", "1")])
        == "http://shop.test/cb?transactionId=X&a=1"
    )
    assert with_query("http://shop.test/cb", [("a", "1 2")]) == "http://shop.test/cb?a=1%202"
    canceled = urlsplit(
        fail_redirect("http://shop.test/fail?transactionId=X", "PAY_PROCESS_CANCELED", "ko", "o-123456")
    )
    query = parse_qs(canceled.query)
    assert query == {
        "transactionId": ["X"],
        "code": ["PAY_PROCESS_CANCELED"],
        "message": ["사용자에 의해 결제가 취소되었습니다."],
    }
    rejected = parse_qs(
        urlsplit(fail_redirect("http://shop.test/f", "REJECT_CARD_COMPANY", "en", "o-123456")).query
    )
    assert rejected["orderId"] == ["o-123456"]
    assert rejected["message"] == ["The payment approval was rejected."]


def test_card_numbers_and_their_outcomes() -> None:
    assert normalize_card_number(None) == "4330000000000005"
    assert normalize_card_number("4330 0000 0000 0013") == "4330000000000013"
    assert normalize_card_number("1234") is None
    assert normalize_card_number("43300000000000AB") is None
    assert normalize_card_number("4" * 17) is None
    assert card_outcome("4330000000000013") is CardOutcome.REJECT_BALANCE
    assert card_outcome("4330000000000062") is CardOutcome.WINDOW_REJECT
    assert card_outcome("5555444433332222") is CardOutcome.APPROVE


def _window(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "clientKey": DEFAULT_CLIENT_KEY,
        "orderId": "order-123456",
        "amount": 5000,
        "orderName": "스터디 등록",
        "method": "CARD",
        "successUrl": "http://shop.test/success",
        "failUrl": "http://shop.test/fail",
    }
    fields.update(overrides)
    return fields


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"clientKey": "test_ck_other"}, "INVALID_CLIENT_KEY"),
        ({"orderId": "short"}, "INVALID_ORDER_ID"),
        ({"orderName": "x" * 101}, "INVALID_ORDER_NAME"),
        ({"orderName": ""}, "INVALID_ORDER_NAME"),
        ({"amount": "12.5"}, "INVALID_REQUEST"),
        ({"amount": None}, "INVALID_REQUEST"),
        ({"amount": 0}, "BELOW_ZERO_AMOUNT"),
        ({"amount": 99}, "BELOW_MINIMUM_AMOUNT"),
        ({"amount": 150, "method": "TRANSFER"}, "BELOW_MINIMUM_AMOUNT"),
        ({"method": "BITCOIN"}, "NOT_SUPPORTED_METHOD"),
        ({"successUrl": "/relative"}, "INCORRECT_SUCCESS_URL_FORMAT"),
        ({"failUrl": "ftp://x"}, "INCORRECT_FAIL_URL_FORMAT"),
    ],
)
def test_window_input_validation(overrides: dict[str, object], code: str) -> None:
    with pytest.raises(TossError) as caught:
        parse_checkout(_window(**overrides), (DEFAULT_CLIENT_KEY,))
    assert caught.value.code == code
    assert caught.value.status == 400


def test_window_accepts_amounts_from_query_strings_and_small_amounts_for_virtual_accounts() -> None:
    assert parse_checkout(_window(amount="5000"), (DEFAULT_CLIENT_KEY,)).amount == 5000
    order = parse_checkout(_window(amount=50, method="가상계좌"), (DEFAULT_CLIENT_KEY,))
    assert (order.amount, order.method) == (50, Method.VIRTUAL_ACCOUNT)


def test_config_refuses_live_keys_and_nonsense() -> None:
    assert MockConfig().secret_key == DEFAULT_SECRET_KEY
    with pytest.raises(ValueError, match="live"):
        MockConfig(secret_key="live_sk_abc")
    with pytest.raises(ValueError, match="live"):
        MockConfig(client_key="live_ck_abc")
    with pytest.raises(ValueError):
        MockConfig(time_scale=0)
    with pytest.raises(ValueError):
        MockConfig(webhook_urls=("localhost:9000/hook",))
