"""`redact`: secrets, card numbers and tokens vanish from text; ordinary payment data stays readable."""

from __future__ import annotations

import pytest

from app.observability import REDACTED, redact

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ0b3BvLXVzZXIiLCJleHAiOjE3OTU2Njc4Nzl9"
    ".kQOLDvzyil1Q7O7n-Wh3NrfwlvB6VVrh6jpJC4UmPLw"
)

SECRETS = {
    "Toss test secret key": "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R",
    "Toss live secret key": "live_sk_Zx9LkKEypNArWmo50nX3lmeaxYG5R",
    "Toss widget secret key": "test_gsk_docs_OaPz8L5KdmQXkzRz3y47BMw6",
    "Toss client key": "test_ck_D5GePWvyJnrK0W0k6q8gLzN97Eoq",
    "bearer JWT": JWT,
    "card number": "4330000000000005",
    "declined test card": "4330000000000013",
    "card number with dashes": "4330-0000-0000-0005",
    "card number with spaces": "4330 0000 0000 0005",
    "15-digit card number": "378282246310005",
    "virtual-account webhook secret": "ps_ootpc5L8PUpgB7Jh7HTHzYtvRJ9G",
}

READABLE = [
    "TXN_20261126_9JVHhg85QQUj0KG8ETRSGw",  # transaction id
    "tviva20261126124010kdGRu",  # paymentKey
    "50000",  # amount
    "2026-11-26T12:40:10+09:00",  # time
    "order=TXN_20261126_9JVHhg85QQUj0KG8ETRSGw → HTTP 200 in 15 ms (attempt 1)",
    "http://127.0.0.1:8000/api/payments/callback/success",
    "PAY_004 REJECT_CARD_PAYMENT",
]


@pytest.mark.parametrize("secret", SECRETS.values(), ids=SECRETS.keys())
def test_a_secret_inside_a_message_is_replaced(secret: str) -> None:
    text = f"before {secret} after"

    cleaned = redact(text)

    assert secret not in cleaned
    assert REDACTED in cleaned
    assert cleaned.startswith("before ") and cleaned.endswith(" after")


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer {JWT}",
        "Bearer opaque-token-value_123",
        "Basic dGVzdF9za196WGtMa0V5cE5BcldtbzUwblgzbG1lYXhZRzVSOg==",
    ],
)
def test_authorization_header_values_are_replaced(header: str) -> None:
    credentials = header.split(" ", 1)[1]

    cleaned = redact(f"Authorization: {header}")

    assert credentials not in cleaned
    assert REDACTED in cleaned


def test_secrets_in_a_json_body_are_replaced() -> None:
    body = (
        '{"secret":"ps_ootpc5L8PUpgB7Jh7HTHzYtvRJ9G","cardNumber":"4330000000000005",'
        '"orderId":"TXN_20261126_9JVHhg85QQUj0KG8ETRSGw"}'
    )

    cleaned = redact(body)

    assert "ps_ootpc5L8PUpgB7Jh7HTHzYtvRJ9G" not in cleaned
    assert "4330000000000005" not in cleaned
    assert "TXN_20261126_9JVHhg85QQUj0KG8ETRSGw" in cleaned


@pytest.mark.parametrize("text", READABLE)
def test_ordinary_payment_data_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_redaction_is_idempotent() -> None:
    once = redact(" ".join(SECRETS.values()))

    assert redact(once) == once
    assert all(secret not in once for secret in SECRETS.values())
