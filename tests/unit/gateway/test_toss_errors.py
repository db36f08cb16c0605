"""Toss error answers → GatewayError: the table, unmapped codes, non-JSON bodies, unreadable 200s."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.gateway.error_codes import TOSS_ERROR_KINDS
from app.gateway.models import GatewayError, GatewayErrorKind

Factory = Callable[..., Any]
K = GatewayErrorKind

# Every code documented in toss_api.md §4.1–4.4, §5 and INVALID_TEST_CODE (§1): the table must know them.
DOCUMENTED_CODES = {
    # 4.1 confirm
    "ALREADY_PROCESSED_PAYMENT", "PROVIDER_ERROR", "EXCEED_MAX_CARD_INSTALLMENT_PLAN", "INVALID_REQUEST",
    "NOT_ALLOWED_POINT_USE", "INVALID_API_KEY", "INVALID_REJECT_CARD", "BELOW_MINIMUM_AMOUNT",
    "INVALID_CARD_EXPIRATION", "INVALID_STOPPED_CARD", "EXCEED_MAX_DAILY_PAYMENT_COUNT",
    "NOT_SUPPORTED_INSTALLMENT_PLAN_CARD_OR_MERCHANT", "INVALID_CARD_INSTALLMENT_PLAN",
    "NOT_SUPPORTED_MONTHLY_INSTALLMENT_PLAN", "EXCEED_MAX_PAYMENT_AMOUNT", "NOT_FOUND_TERMINAL_ID",
    "INVALID_AUTHORIZE_AUTH", "INVALID_CARD_LOST_OR_STOLEN", "RESTRICTED_TRANSFER_ACCOUNT",
    "INVALID_CARD_NUMBER", "INVALID_UNREGISTERED_SUBMALL", "NOT_REGISTERED_BUSINESS",
    "EXCEED_MAX_ONE_DAY_WITHDRAW_AMOUNT", "EXCEED_MAX_ONE_TIME_WITHDRAW_AMOUNT", "CARD_PROCESSING_ERROR",
    "EXCEED_MAX_AMOUNT", "INVALID_ACCOUNT_INFO_RE_REGISTER", "NOT_AVAILABLE_PAYMENT", "UNAPPROVED_ORDER_ID",
    "EXCEED_MAX_MONTHLY_PAYMENT_AMOUNT", "UNAUTHORIZED_KEY", "REJECT_ACCOUNT_PAYMENT", "REJECT_CARD_PAYMENT",
    "REJECT_CARD_COMPANY", "FORBIDDEN_REQUEST", "REJECT_TOSSPAY_INVALID_ACCOUNT", "EXCEED_MAX_AUTH_COUNT",
    "EXCEED_MAX_ONE_DAY_AMOUNT", "NOT_AVAILABLE_BANK", "INVALID_PASSWORD", "INCORRECT_BASIC_AUTH_FORMAT",
    "FDS_ERROR", "NOT_FOUND_PAYMENT", "NOT_FOUND_PAYMENT_SESSION", "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING",
    "FAILED_INTERNAL_SYSTEM_PROCESSING", "UNKNOWN_PAYMENT_ERROR", "DUPLICATED_ORDER_ID",
    # 4.2 cancel
    "ALREADY_CANCELED_PAYMENT", "INVALID_REFUND_ACCOUNT_INFO", "EXCEED_CANCEL_AMOUNT_DISCOUNT_AMOUNT",
    "INVALID_REFUND_ACCOUNT_NUMBER", "INVALID_BANK", "NOT_MATCHES_REFUNDABLE_AMOUNT", "REFUND_REJECTED",
    "ALREADY_REFUND_PAYMENT", "FORBIDDEN_BANK_REFUND_REQUEST", "NOT_CANCELABLE_AMOUNT",
    "FORBIDDEN_CONSECUTIVE_REQUEST", "NOT_CANCELABLE_PAYMENT", "EXCEED_MAX_REFUND_DUE",
    "NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT", "NOT_ALLOWED_PARTIAL_REFUND",
    "NOT_CANCELABLE_PAYMENT_FOR_DORMANT_USER", "EXCEED_CANCEL_LIMIT", "FAILED_REFUND_PROCESS",
    "FAILED_METHOD_HANDLING_CANCEL", "FAILED_PARTIAL_REFUND", "COMMON_ERROR",
    # 4.3 other
    "INVALID_ORDER_ID", "INVALID_ORDER_NAME", "BELOW_ZERO_AMOUNT", "REQUIRED_AMOUNT", "INVALID_REQUIRED_PARAM",
    "INVALID_PAYMENT_KEY", "INVALID_CURRENCY", "INVALID_DATE", "INVALID_ISO_DATE_FORMAT",
    "EXCEED_MAX_VALID_HOURS", "EXCEED_MAX_DUE_DATE", "DUPLICATED_REQUEST", "NOT_SUPPORTED_METHOD",
    "MAINTAINED_METHOD", "INVALID_TEST_CODE", "API_VERSION_UPDATE_NEEDED", "PAY_PROCESS_CANCELED",
    "PAY_PROCESS_ABORTED", "NOT_FOUND", "NOT_FOUND_MERCHANT", "NOT_FOUND_METHOD", "NOT_FOUND_BILLING",
    "FAILED_DB_PROCESSING", "UNKNOWN_ERROR", "EXPIRED_PAYMENT",
    # 4.4 failUrl
    "INVALID_CLIENT_KEY", "USER_CANCEL", "INCORRECT_SUCCESS_URL_FORMAT", "INCORRECT_FAIL_URL_FORMAT",
    # 5 idempotency
    "INVALID_IDEMPOTENCY_KEY", "IDEMPOTENT_REQUEST_PROCESSING",
}  # fmt: skip

# What the important codes must mean, written out independently of the table, with Toss's HTTP status.
SPOT_CHECKS = [
    (403, "REJECT_CARD_COMPANY", K.DECLINED),
    (400, "INVALID_CARD_EXPIRATION", K.DECLINED),
    (400, "INVALID_CARD_NUMBER", K.DECLINED),
    (400, "INVALID_STOPPED_CARD", K.DECLINED),
    (400, "INVALID_CARD_LOST_OR_STOLEN", K.DECLINED),
    (403, "FDS_ERROR", K.DECLINED),
    (400, "PAY_PROCESS_CANCELED", K.CANCELED_BY_BUYER),  # not a decline: the buyer closed the window
    (400, "USER_CANCEL", K.CANCELED_BY_BUYER),
    (400, "PAY_PROCESS_ABORTED", K.DECLINED),
    (403, "REJECT_CARD_PAYMENT", K.INSUFFICIENT_FUNDS),
    (403, "REJECT_ACCOUNT_PAYMENT", K.INSUFFICIENT_FUNDS),
    (400, "EXCEED_MAX_PAYMENT_AMOUNT", K.INSUFFICIENT_FUNDS),
    (400, "EXCEED_MAX_AMOUNT", K.INSUFFICIENT_FUNDS),
    (400, "EXCEED_MAX_MONTHLY_PAYMENT_AMOUNT", K.INSUFFICIENT_FUNDS),
    (400, "EXCEED_MAX_DAILY_PAYMENT_COUNT", K.INSUFFICIENT_FUNDS),
    (403, "EXCEED_MAX_ONE_DAY_AMOUNT", K.INSUFFICIENT_FUNDS),
    (400, "PROVIDER_ERROR", K.PROVIDER_ERROR),
    (400, "CARD_PROCESSING_ERROR", K.PROVIDER_ERROR),
    (403, "NOT_AVAILABLE_BANK", K.PROVIDER_ERROR),
    (400, "NOT_AVAILABLE_PAYMENT", K.PROVIDER_ERROR),
    (500, "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING", K.UNAVAILABLE),
    (500, "FAILED_INTERNAL_SYSTEM_PROCESSING", K.UNAVAILABLE),
    (500, "UNKNOWN_PAYMENT_ERROR", K.UNAVAILABLE),
    (500, "COMMON_ERROR", K.UNAVAILABLE),
    (409, "IDEMPOTENT_REQUEST_PROCESSING", K.UNAVAILABLE),
    (403, "FORBIDDEN_CONSECUTIVE_REQUEST", K.UNAVAILABLE),
    (400, "ALREADY_PROCESSED_PAYMENT", K.ALREADY_PROCESSED),
    (404, "NOT_FOUND_PAYMENT_SESSION", K.SESSION_EXPIRED),
    (404, "NOT_FOUND_PAYMENT", K.NOT_FOUND),
    (404, "NOT_FOUND", K.NOT_FOUND),
    (400, "ALREADY_CANCELED_PAYMENT", K.ALREADY_CANCELED),
    (400, "ALREADY_REFUND_PAYMENT", K.ALREADY_CANCELED),
    (403, "NOT_CANCELABLE_AMOUNT", K.NOT_CANCELABLE),
    (403, "NOT_CANCELABLE_PAYMENT", K.NOT_CANCELABLE),
    (403, "EXCEED_MAX_REFUND_DUE", K.NOT_CANCELABLE),
    (403, "NOT_ALLOWED_PARTIAL_REFUND", K.NOT_CANCELABLE),
    (403, "NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT", K.NOT_CANCELABLE),
    (401, "UNAUTHORIZED_KEY", K.MISCONFIGURED),
    (403, "INCORRECT_BASIC_AUTH_FORMAT", K.MISCONFIGURED),
    (400, "INVALID_API_KEY", K.MISCONFIGURED),
    (400, "INVALID_REQUEST", K.INVALID_REQUEST),
    (400, "INVALID_ORDER_ID", K.INVALID_REQUEST),
    (400, "INVALID_IDEMPOTENCY_KEY", K.INVALID_REQUEST),
    (400, "INVALID_TEST_CODE", K.INVALID_REQUEST),
]


def test_the_table_knows_every_documented_toss_code() -> None:
    assert DOCUMENTED_CODES - set(TOSS_ERROR_KINDS) == set()


def test_the_table_is_data_that_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        TOSS_ERROR_KINDS["REJECT_CARD_PAYMENT"] = GatewayErrorKind.DECLINED  # type: ignore[index]


async def confirm_answering(toss: Factory, answer: httpx.Response) -> GatewayError:
    harness = toss(lambda request: answer)
    with pytest.raises(GatewayError) as error:
        await harness.client.confirm(
            payment_key="pk_1", order_id="order_0001", amount=1000, idempotency_key="k"
        )
    return error.value


@pytest.mark.parametrize(("code", "kind"), sorted(TOSS_ERROR_KINDS.items()))
async def test_every_table_entry_becomes_its_kind_keeping_toss_code_and_message(
    toss: Factory, code: str, kind: GatewayErrorKind
) -> None:
    # a 4xx falls back to DECLINED and a 5xx to UNAVAILABLE: under both, the table must win
    for status in (400, 503):
        error = await confirm_answering(
            toss, httpx.Response(status, json={"code": code, "message": f"msg {code}"})
        )

        assert error.kind is kind
        assert error.pg_code == code
        assert error.message == f"msg {code}"
        assert error.http_status == status


@pytest.mark.parametrize(("status", "code", "kind"), SPOT_CHECKS, ids=[code for _, code, _ in SPOT_CHECKS])
async def test_important_codes_mean_what_core_expects(
    toss: Factory, status: int, code: str, kind: GatewayErrorKind
) -> None:
    error = await confirm_answering(toss, httpx.Response(status, json={"code": code, "message": "m"}))

    assert error.kind is kind


def test_timeouts_server_errors_and_already_processed_are_the_outcome_unknown_kinds() -> None:
    unknown = {kind for kind in GatewayErrorKind if GatewayError(kind, "X", "m").outcome_unknown}

    assert TOSS_ERROR_KINDS["IDEMPOTENT_REQUEST_PROCESSING"] in unknown
    assert TOSS_ERROR_KINDS["FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING"] in unknown
    assert TOSS_ERROR_KINDS["ALREADY_PROCESSED_PAYMENT"] in unknown
    assert TOSS_ERROR_KINDS["REJECT_CARD_PAYMENT"] not in unknown


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, K.DECLINED),
        (403, K.DECLINED),
        (404, K.DECLINED),
        (401, K.MISCONFIGURED),
        (409, K.UNAVAILABLE),
        (429, K.UNAVAILABLE),
        (500, K.UNAVAILABLE),
        (503, K.UNAVAILABLE),
    ],
)
async def test_an_unmapped_code_is_judged_by_http_status_and_logged(
    toss: Factory, caplog: pytest.LogCaptureFixture, status: int, kind: GatewayErrorKind
) -> None:
    caplog.set_level(logging.WARNING, logger="app.gateway")

    error = await confirm_answering(
        toss, httpx.Response(status, json={"code": "BRAND_NEW_TOSS_CODE", "message": "새 오류"})
    )

    assert error.kind is kind
    assert error.pg_code == "BRAND_NEW_TOSS_CODE"
    assert error.message == "새 오류"
    assert error.http_status == status
    assert any("unmapped" in record.getMessage() and "BRAND_NEW_TOSS_CODE" in record.getMessage()
               for record in caplog.records)  # fmt: skip


async def test_a_mapped_code_is_not_logged_as_unmapped(
    toss: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="app.gateway")

    await confirm_answering(toss, httpx.Response(403, json={"code": "REJECT_CARD_PAYMENT", "message": "m"}))

    assert not any("unmapped" in record.getMessage() for record in caplog.records)


async def test_a_non_json_502_from_a_proxy_is_unavailable(toss: Factory) -> None:
    html = "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>nginx</body>\n</html>"

    error = await confirm_answering(
        toss, httpx.Response(502, text=html, headers={"Content-Type": "text/html"})
    )

    assert error.kind is GatewayErrorKind.UNAVAILABLE
    assert error.outcome_unknown
    assert error.pg_code == "HTTP_502"
    assert error.http_status == 502
    assert "502 Bad Gateway" in error.message


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(504, text=""),
        httpx.Response(500, json={"message": "no code"}),
        httpx.Response(500, json=["not", "an", "object"]),
    ],
    ids=["empty-504", "json-without-code", "json-array"],
)
async def test_a_server_error_without_a_toss_error_body_is_unavailable(
    toss: Factory, answer: httpx.Response
) -> None:
    error = await confirm_answering(toss, answer)

    assert error.kind is GatewayErrorKind.UNAVAILABLE
    assert error.pg_code == f"HTTP_{answer.status_code}"


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="<html>ok</html>"),
        httpx.Response(200, json=["a", "list"]),
        httpx.Response(200, json={"paymentKey": "pk_1"}),
        httpx.Response(200, json={"paymentKey": "pk_1", "orderId": "o", "status": "DONE",
                                  "totalAmount": "1000", "balanceAmount": 1000}),
        httpx.Response(200, json={"paymentKey": "pk_1", "orderId": "o", "status": "SOMETHING_NEW",
                                  "totalAmount": 1000, "balanceAmount": 1000}),
    ],
    ids=["html", "json-array", "missing-fields", "amount-as-string", "unknown-status"],
)  # fmt: skip
async def test_a_200_that_does_not_parse_is_unavailable_invalid_response(
    toss: Factory, answer: httpx.Response
) -> None:
    harness = toss(lambda request: answer)

    with pytest.raises(GatewayError) as error:
        await harness.client.get_payment("pk_1")

    assert error.value.kind is GatewayErrorKind.UNAVAILABLE
    assert error.value.pg_code == "INVALID_RESPONSE"
    assert len(harness.requests) == 1
