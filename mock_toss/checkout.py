"""The payment window: validating what the merchant's page asks for, Toss's redirects, and the HTML."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import jinja2

from mock_toss.errors import Language, TossError, error_message
from mock_toss.payments import Method, Payment, parse_method
from mock_toss.scenarios import DEFAULT_CARD_NUMBER, TEST_CARDS

ORDER_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{6,64}")
MAX_ORDER_NAME_LENGTH = 100
MAX_CUSTOMER_NAME_LENGTH = 100
# Toss's minimums: cards from 100 KRW, account payments from 200 KRW.
MINIMUM_AMOUNT = {Method.CARD: 100, Method.TRANSFER: 200}

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
)


@dataclass(frozen=True, slots=True)
class CheckoutOrder:
    """A valid payment-window request (what `requestPayment()` sends to Toss)."""

    order_id: str
    amount: int
    order_name: str
    method: Method
    success_url: str
    fail_url: str
    customer_name: str | None = None
    client_key: str | None = None  # which key pair opened the window (None: a server-side issue)


def is_valid_order_id(value: object) -> bool:
    """6–64 characters of `[A-Za-z0-9_-]`."""
    return isinstance(value, str) and ORDER_ID_PATTERN.fullmatch(value) is not None


def is_valid_order_name(value: object) -> bool:
    """1–100 characters."""
    return isinstance(value, str) and len(value.strip()) > 0 and len(value) <= MAX_ORDER_NAME_LENGTH


def is_absolute_http_url(value: object) -> bool:
    """An absolute http(s) URL, as Toss requires for successUrl and failUrl."""
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def parse_amount(value: object) -> int:
    """An integer amount (a JSON number, or digits from a query string); TossError otherwise."""
    if value is None or value == "":
        raise TossError("INVALID_REQUEST", "amount는 필수입니다.", "amount is required.")
    if isinstance(value, bool):
        raise TossError("INVALID_REQUEST", "amount는 정수여야 합니다.", "amount must be an integer.")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,15}", value.strip()):
        return int(value.strip())
    raise TossError("INVALID_REQUEST", "amount는 정수여야 합니다.", "amount must be an integer.")


def check_amount(method: Method, amount: int) -> None:
    """Positive, and at least the method's minimum."""
    if amount <= 0:
        raise TossError("BELOW_ZERO_AMOUNT")
    if amount < MINIMUM_AMOUNT.get(method, 1):
        raise TossError("BELOW_MINIMUM_AMOUNT")


def _required_text(
    fields: Mapping[str, Any], name: str, is_valid: Callable[[object], bool], code: str
) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not is_valid(value):
        raise TossError(code)
    return value


def parse_checkout(fields: Mapping[str, Any], client_keys: Collection[str]) -> CheckoutOrder:
    """Validate a payment-window request like Toss's SDK and window do; TossError (400) otherwise."""
    client_key = fields.get("clientKey")
    if not isinstance(client_key, str) or client_key not in client_keys:
        raise TossError("INVALID_CLIENT_KEY")
    raw_method = fields.get("method") or "CARD"
    method = parse_method(raw_method) if isinstance(raw_method, str) else None
    if method is None:
        raise TossError("NOT_SUPPORTED_METHOD")
    order_id = _required_text(fields, "orderId", is_valid_order_id, "INVALID_ORDER_ID")
    order_name = _required_text(fields, "orderName", is_valid_order_name, "INVALID_ORDER_NAME")
    amount = parse_amount(fields.get("amount"))
    check_amount(method, amount)
    success_url = _required_text(fields, "successUrl", is_absolute_http_url, "INCORRECT_SUCCESS_URL_FORMAT")
    fail_url = _required_text(fields, "failUrl", is_absolute_http_url, "INCORRECT_FAIL_URL_FORMAT")
    customer_name = fields.get("customerName")
    if customer_name is not None and (
        not isinstance(customer_name, str) or len(customer_name) > MAX_CUSTOMER_NAME_LENGTH
    ):
        raise TossError(
            "INVALID_REQUEST", "customerName은 100자 이하여야 합니다.", "customerName is too long."
        )
    return CheckoutOrder(
        order_id=order_id,
        amount=amount,
        order_name=order_name,
        method=method,
        success_url=success_url,
        fail_url=fail_url,
        customer_name=customer_name or None,
        client_key=client_key,
    )


def with_query(url: str, params: list[tuple[str, str]]) -> str:
    """Append query parameters; `&` when the URL already has a query (e.g. `?transactionId=X`)."""
    base, hash_mark, fragment = url.partition("#")
    separator = "&" if "?" in base else "?"
    if base.endswith(("?", "&")):
        separator = ""
    return base + separator + urlencode(params, quote_via=quote) + hash_mark + fragment


def success_redirect(payment: Payment) -> str:
    """`successUrl?paymentType=NORMAL&orderId=…&paymentKey=…&amount=…`."""
    return with_query(
        payment.success_url,
        [
            ("paymentType", "NORMAL"),
            ("orderId", payment.order_id),
            ("paymentKey", payment.payment_key),
            ("amount", str(payment.total_amount)),
        ],
    )


def fail_redirect(fail_url: str, code: str, language: Language, order_id: str | None) -> str:
    """`failUrl?code=…&message=…&orderId=…`; Toss leaves orderId out for PAY_PROCESS_CANCELED."""
    params = [("code", code), ("message", error_message(code, language))]
    if order_id is not None and code != "PAY_PROCESS_CANCELED":
        params.append(("orderId", order_id))
    return with_query(fail_url, params)


def render_window(payment: Payment) -> str:
    """The payment window's HTML: order summary, method, test card field, approve and cancel."""
    return _templates.get_template("checkout.html").render(
        payment=payment,
        amount_text=f"{payment.total_amount:,}원",
        method_name=payment.method.name,
        method_korean=payment.method.value,
        is_card=payment.method is Method.CARD,
        default_card=DEFAULT_CARD_NUMBER,
        test_cards=[(number, outcome.value) for number, outcome in TEST_CARDS.items()],
        action_url=f"/checkout/{payment.payment_key}",
    )
