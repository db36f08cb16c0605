"""Toss error codes → what they mean for Core (a `GatewayErrorKind`).

The table is data on purpose: one line per documented Toss code (toss_api.md §1, §2, §4.1–4.4, §5),
so a reviewer can check every code against the docs and a test can walk every entry.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from app.gateway.models import GatewayErrorKind

logger = logging.getLogger("app.gateway")

_DECLINED = GatewayErrorKind.DECLINED
_FUNDS = GatewayErrorKind.INSUFFICIENT_FUNDS
_PROVIDER = GatewayErrorKind.PROVIDER_ERROR
_UNAVAILABLE = GatewayErrorKind.UNAVAILABLE
_MISCONFIGURED = GatewayErrorKind.MISCONFIGURED
_INVALID = GatewayErrorKind.INVALID_REQUEST
_NOT_CANCELABLE = GatewayErrorKind.NOT_CANCELABLE

TOSS_ERROR_KINDS: Final[Mapping[str, GatewayErrorKind]] = MappingProxyType(
    {
        # --- 4.1 confirm -------------------------------------------------------------------------
        "ALREADY_PROCESSED_PAYMENT": GatewayErrorKind.ALREADY_PROCESSED,
        # our orderIds are unique per transaction, so a duplicate means an earlier confirm of ours
        "DUPLICATED_ORDER_ID": GatewayErrorKind.ALREADY_PROCESSED,
        "PROVIDER_ERROR": _PROVIDER,
        "CARD_PROCESSING_ERROR": _PROVIDER,
        "NOT_AVAILABLE_PAYMENT": _PROVIDER,
        "NOT_AVAILABLE_BANK": _PROVIDER,
        "EXCEED_MAX_CARD_INSTALLMENT_PLAN": _DECLINED,
        "NOT_ALLOWED_POINT_USE": _DECLINED,
        "INVALID_REJECT_CARD": _DECLINED,
        "INVALID_CARD_EXPIRATION": _DECLINED,
        "INVALID_STOPPED_CARD": _DECLINED,
        "NOT_SUPPORTED_INSTALLMENT_PLAN_CARD_OR_MERCHANT": _DECLINED,
        "INVALID_CARD_INSTALLMENT_PLAN": _DECLINED,
        "NOT_SUPPORTED_MONTHLY_INSTALLMENT_PLAN": _DECLINED,
        "INVALID_AUTHORIZE_AUTH": _DECLINED,
        "INVALID_CARD_LOST_OR_STOLEN": _DECLINED,
        "RESTRICTED_TRANSFER_ACCOUNT": _DECLINED,
        "INVALID_CARD_NUMBER": _DECLINED,
        "INVALID_ACCOUNT_INFO_RE_REGISTER": _DECLINED,
        "REJECT_CARD_COMPANY": _DECLINED,
        "REJECT_TOSSPAY_INVALID_ACCOUNT": _DECLINED,
        "EXCEED_MAX_AUTH_COUNT": _DECLINED,
        "INVALID_PASSWORD": _DECLINED,
        "FDS_ERROR": _DECLINED,
        "EXCEED_MAX_DAILY_PAYMENT_COUNT": _FUNDS,
        "EXCEED_MAX_PAYMENT_AMOUNT": _FUNDS,
        "EXCEED_MAX_ONE_DAY_WITHDRAW_AMOUNT": _FUNDS,
        "EXCEED_MAX_ONE_TIME_WITHDRAW_AMOUNT": _FUNDS,
        "EXCEED_MAX_AMOUNT": _FUNDS,
        "EXCEED_MAX_MONTHLY_PAYMENT_AMOUNT": _FUNDS,
        "REJECT_ACCOUNT_PAYMENT": _FUNDS,
        "REJECT_CARD_PAYMENT": _FUNDS,
        "EXCEED_MAX_ONE_DAY_AMOUNT": _FUNDS,
        "INVALID_REQUEST": _INVALID,
        # the amount is our product price, so a too-small amount is our data's fault
        "BELOW_MINIMUM_AMOUNT": _INVALID,
        "UNAPPROVED_ORDER_ID": _INVALID,
        "FORBIDDEN_REQUEST": _INVALID,
        "INVALID_API_KEY": _MISCONFIGURED,
        "UNAUTHORIZED_KEY": _MISCONFIGURED,
        "INCORRECT_BASIC_AUTH_FORMAT": _MISCONFIGURED,
        # merchant contract set-up at Toss: operators must act
        "NOT_FOUND_TERMINAL_ID": _MISCONFIGURED,
        "INVALID_UNREGISTERED_SUBMALL": _MISCONFIGURED,
        "NOT_REGISTERED_BUSINESS": _MISCONFIGURED,
        "NOT_FOUND_PAYMENT": GatewayErrorKind.NOT_FOUND,
        "NOT_FOUND_PAYMENT_SESSION": GatewayErrorKind.SESSION_EXPIRED,
        "FAILED_PAYMENT_INTERNAL_SYSTEM_PROCESSING": _UNAVAILABLE,
        "FAILED_INTERNAL_SYSTEM_PROCESSING": _UNAVAILABLE,
        "UNKNOWN_PAYMENT_ERROR": _UNAVAILABLE,
        # --- 4.2 cancel --------------------------------------------------------------------------
        "ALREADY_CANCELED_PAYMENT": GatewayErrorKind.ALREADY_CANCELED,
        "ALREADY_REFUND_PAYMENT": GatewayErrorKind.ALREADY_CANCELED,
        "INVALID_REFUND_ACCOUNT_INFO": _INVALID,
        "INVALID_REFUND_ACCOUNT_NUMBER": _INVALID,
        "INVALID_BANK": _INVALID,
        "EXCEED_CANCEL_AMOUNT_DISCOUNT_AMOUNT": _NOT_CANCELABLE,
        "NOT_MATCHES_REFUNDABLE_AMOUNT": _NOT_CANCELABLE,
        "REFUND_REJECTED": _NOT_CANCELABLE,
        "FORBIDDEN_BANK_REFUND_REQUEST": _NOT_CANCELABLE,
        "NOT_CANCELABLE_AMOUNT": _NOT_CANCELABLE,
        "NOT_CANCELABLE_PAYMENT": _NOT_CANCELABLE,
        "EXCEED_MAX_REFUND_DUE": _NOT_CANCELABLE,
        "NOT_ALLOWED_PARTIAL_REFUND_WAITING_DEPOSIT": _NOT_CANCELABLE,
        "NOT_ALLOWED_PARTIAL_REFUND": _NOT_CANCELABLE,
        "NOT_CANCELABLE_PAYMENT_FOR_DORMANT_USER": _NOT_CANCELABLE,
        "EXCEED_CANCEL_LIMIT": _NOT_CANCELABLE,
        "FORBIDDEN_CONSECUTIVE_REQUEST": _UNAVAILABLE,
        "FAILED_REFUND_PROCESS": _UNAVAILABLE,
        "FAILED_METHOD_HANDLING_CANCEL": _UNAVAILABLE,
        "FAILED_PARTIAL_REFUND": _UNAVAILABLE,
        "COMMON_ERROR": _UNAVAILABLE,
        # --- 4.3 other codes of the full table ---------------------------------------------------
        "INVALID_ORDER_ID": _INVALID,
        "INVALID_ORDER_NAME": _INVALID,
        "BELOW_ZERO_AMOUNT": _INVALID,
        "REQUIRED_AMOUNT": _INVALID,
        "INVALID_REQUIRED_PARAM": _INVALID,
        "INVALID_PAYMENT_KEY": _INVALID,
        "INVALID_CURRENCY": _INVALID,
        "INVALID_DATE": _INVALID,
        "INVALID_ISO_DATE_FORMAT": _INVALID,
        "EXCEED_MAX_VALID_HOURS": _INVALID,
        "EXCEED_MAX_DUE_DATE": _INVALID,
        "INVALID_TEST_CODE": _INVALID,
        "NOT_FOUND_METHOD": _INVALID,
        # an identical request is (or was just) in flight: the outcome is unknown, ask again
        "DUPLICATED_REQUEST": _UNAVAILABLE,
        "NOT_SUPPORTED_METHOD": _DECLINED,
        "MAINTAINED_METHOD": _PROVIDER,
        "API_VERSION_UPDATE_NEEDED": _MISCONFIGURED,
        "NOT_FOUND_MERCHANT": _MISCONFIGURED,
        "NOT_FOUND": GatewayErrorKind.NOT_FOUND,
        "NOT_FOUND_BILLING": GatewayErrorKind.NOT_FOUND,
        "FAILED_DB_PROCESSING": _UNAVAILABLE,
        "UNKNOWN_ERROR": _UNAVAILABLE,
        # only seen as Payment.failure.code of an EXPIRED payment
        "EXPIRED_PAYMENT": GatewayErrorKind.SESSION_EXPIRED,
        # --- 4.4 failUrl (browser redirect) codes ------------------------------------------------
        "PAY_PROCESS_CANCELED": GatewayErrorKind.CANCELED_BY_BUYER,
        "PAY_PROCESS_ABORTED": _DECLINED,
        "USER_CANCEL": GatewayErrorKind.CANCELED_BY_BUYER,
        "INVALID_CLIENT_KEY": _MISCONFIGURED,
        "INCORRECT_SUCCESS_URL_FORMAT": _INVALID,
        "INCORRECT_FAIL_URL_FORMAT": _INVALID,
        # --- 5 idempotency -----------------------------------------------------------------------
        "INVALID_IDEMPOTENCY_KEY": _INVALID,
        # the first request with this key is still running: its outcome is unknown
        "IDEMPOTENT_REQUEST_PROCESSING": _UNAVAILABLE,
        # --- §1 keys and §2 endpoint-specific codes ----------------------------------------------
        "NOT_SUPPORTED_WIDGET_KEY": _MISCONFIGURED,
        "NOT_SUPPORTED_API_INDIVIDUAL_KEY": _MISCONFIGURED,
        "INSECURE_KEY_USAGE": _MISCONFIGURED,
        "NOT_SUPPORTED_MONTHLY_INSTALLMENT_PLAN_BELOW_AMOUNT": _DECLINED,
        "INVALID_REGISTRATION_NUMBER_TYPE": _INVALID,
        "INVALID_VALID_HOURS_WITH_DUE_DATE_AND_SINGLE": _INVALID,
        "REQUIRED_ACCOUNT_KEY": _INVALID,
        "INVALID_CARD_PASSWORD": _DECLINED,
        "INVALID_CARD_IDENTITY": _DECLINED,
        "INVALID_BIRTH_DAY_FORMAT": _DECLINED,
        "NOT_SUPPORTED_CARD_TYPE": _DECLINED,
        # the card company may have approved before its answer got lost: outcome unknown
        "FAILED_CARD_COMPANY_RESPONSE": _UNAVAILABLE,
        "NOT_MATCHES_CUSTOMER_KEY": _INVALID,
    }
)

# For codes missing from the table (or bodies without a code): by HTTP status.
_KIND_BY_HTTP_STATUS: Final[Mapping[int, GatewayErrorKind]] = MappingProxyType(
    {
        401: _MISCONFIGURED,
        408: _UNAVAILABLE,
        409: _UNAVAILABLE,  # Toss uses 409 only for "idempotent request still processing"
        429: _UNAVAILABLE,
    }
)


def kind_for_http_status(http_status: int) -> GatewayErrorKind:
    """The kind of an error answer whose code we do not know: 5xx and throttling are UNAVAILABLE."""
    if http_status in _KIND_BY_HTTP_STATUS:
        return _KIND_BY_HTTP_STATUS[http_status]
    if 400 <= http_status < 500:
        return _DECLINED
    # 5xx, and anything a proxy might answer (1xx/3xx): we cannot tell what happened
    return _UNAVAILABLE


def kind_for_toss_error(code: str, http_status: int) -> GatewayErrorKind:
    """The kind of a Toss error answer: the table first, then the HTTP status (logged as unmapped)."""
    kind = TOSS_ERROR_KINDS.get(code)
    if kind is not None:
        return kind
    fallback = kind_for_http_status(http_status)
    logger.warning(
        "unmapped Toss error code %s (HTTP %s) treated as %s",
        code,
        http_status,
        fallback,
        extra={"pg_code": code, "http_status": http_status},
    )
    return fallback
