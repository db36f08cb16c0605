"""Reading Toss deliveries: `parse_toss_webhook` (both documented shapes), malformed bodies refused as
PAY_000 by Core, and `signature_is_valid`."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from app.core.domain import ValidationFailed
from app.core.webhooks import read_notice
from app.gateway.service import GatewayService
from app.gateway.toss_webhooks import TossNotice, TossWebhooks, parse_toss_webhook, signature_is_valid
from app.http.errors import http_status_of

ORDER_ID = "TXN_20260301_abcdef0123456789"
PAYMENT_KEY = "tviva20260301123456abcDE"
VA_SECRET = "ps_Z1aOwX7K8mYZnE4E9r0e8yQxzvNP"


def _raw(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def _payment_status_changed(**data: Any) -> dict[str, Any]:
    payment = {
        "mId": "tosspayments",
        "version": "2022-11-16",
        "paymentKey": PAYMENT_KEY,
        "orderId": ORDER_ID,
        "status": "DONE",
        "secret": VA_SECRET,
        "totalAmount": 50000,
        "method": "가상계좌",
    }
    payment.update(data)
    return {"eventType": "PAYMENT_STATUS_CHANGED", "createdAt": "2026-03-01T12:00:00.000000", "data": payment}


def _deposit_callback(**fields: Any) -> dict[str, Any]:
    # Toss's documented example: flat, and no eventType at all.
    body = {
        "createdAt": "2026-03-01T12:00:00.000000",
        "secret": VA_SECRET,
        "status": "DONE",
        "transactionKey": "9FF15E1A29D0E77C218F57262BFA4986",
        "orderId": ORDER_ID,
    }
    body.update(fields)
    return body


# --- the two documented shapes --------------------------------------------------------------------


def test_payment_status_changed_reads_the_payment_inside_data() -> None:
    notice = parse_toss_webhook(_raw(_payment_status_changed()))

    assert notice == TossNotice(
        event_type="PAYMENT_STATUS_CHANGED",
        order_id=ORDER_ID,
        payment_key=PAYMENT_KEY,
        status="DONE",
        secret=VA_SECRET,
    )


def test_payment_status_changed_for_a_card_has_no_secret() -> None:
    body = _payment_status_changed(method="카드", secret=None, status="CANCELED")

    notice = parse_toss_webhook(_raw(body))

    assert (notice.event_type, notice.order_id, notice.status, notice.secret) == (
        "PAYMENT_STATUS_CHANGED",
        ORDER_ID,
        "CANCELED",
        None,
    )


def test_flat_deposit_callback_without_event_type_is_a_deposit_callback() -> None:
    notice = parse_toss_webhook(_raw(_deposit_callback()))

    assert notice == TossNotice(
        event_type="DEPOSIT_CALLBACK",
        order_id=ORDER_ID,
        payment_key=None,  # the flat shape carries no paymentKey
        status="DONE",
        secret=VA_SECRET,
    )


def test_deposit_callback_with_event_type_and_nested_data_is_accepted_too() -> None:
    # Third-party handlers expect {eventType, data}; the parser takes either.
    body = {"eventType": "DEPOSIT_CALLBACK", "createdAt": "2026-03-01T12:00:00", "data": _deposit_callback()}

    notice = parse_toss_webhook(_raw(body))

    assert (notice.event_type, notice.order_id, notice.status, notice.secret) == (
        "DEPOSIT_CALLBACK",
        ORDER_ID,
        "DONE",
        VA_SECRET,
    )


def test_deposit_callback_waiting_for_deposit_status() -> None:
    notice = parse_toss_webhook(_raw(_deposit_callback(status="WAITING_FOR_DEPOSIT")))

    assert notice.status == "WAITING_FOR_DEPOSIT"


def test_overlong_values_are_cut_to_their_column_sizes() -> None:
    body = _payment_status_changed(orderId="o" * 100, paymentKey="k" * 300, status="S" * 50, secret="x" * 90)

    notice = parse_toss_webhook(_raw(body))

    assert notice.order_id == "o" * 64
    assert notice.payment_key == "k" * 200
    assert notice.status == "S" * 30
    assert notice.secret == "x" * 64


def test_non_string_optional_fields_become_none() -> None:
    notice = parse_toss_webhook(_raw(_payment_status_changed(paymentKey=123, status=None, secret="")))

    assert (notice.payment_key, notice.status, notice.secret) == (None, None, None)


# --- other event types are ignored, not refused ---------------------------------------------------


@pytest.mark.parametrize(
    "event_type",
    ["CANCEL_STATUS_CHANGED", "BILLING_DELETED", "METHOD_UPDATED", "payout.changed", "SOMETHING_NEW"],
)
def test_other_event_types_parse_without_an_order(event_type: str) -> None:
    body = {"eventType": event_type, "createdAt": "2026-03-01T12:00:00", "data": {"orderId": ORDER_ID}}

    notice = parse_toss_webhook(_raw(body))

    assert notice == TossNotice(
        event_type=event_type, order_id=None, payment_key=None, status=None, secret=None
    )


def test_a_very_long_event_type_is_cut_to_its_column() -> None:
    notice = parse_toss_webhook(_raw({"eventType": "E" * 100}))

    assert notice.event_type == "E" * 40
    assert notice.order_id is None


# --- malformed deliveries are PAY_000 -------------------------------------------------------------


def read(raw: bytes) -> None:
    """What Core does with a delivery: the gateway reads it, a refusal becomes the API's error."""
    read_notice(GatewayService([], webhooks=[TossWebhooks()]), "TOSS", raw, {})


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "empty body"),
        (b"not json", "not JSON"),
        (b'{"eventType": "PAYMENT_STATUS_CHANGED", ', "truncated JSON"),
        (b"[1, 2, 3]", "an array"),
        (b'[{"orderId": "TXN_1", "status": "DONE"}]', "an array of a valid object"),
        (b'"PAYMENT_STATUS_CHANGED"', "a JSON string"),
        (b"42", "a number"),
        (b"null", "null"),
    ],
)
def test_bodies_that_are_not_a_json_object_are_refused(raw: bytes, why: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        read(raw)
    assert caught.value.code == "PAY_000", why
    assert http_status_of(caught.value) == 400


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"eventType": "PAYMENT_STATUS_CHANGED"}, "no data"),
        ({"eventType": "PAYMENT_STATUS_CHANGED", "data": None}, "data null"),
        ({"eventType": "PAYMENT_STATUS_CHANGED", "data": [ORDER_ID]}, "data an array"),
        ({"eventType": "PAYMENT_STATUS_CHANGED", "data": {"status": "DONE"}}, "no orderId"),
        ({"eventType": "PAYMENT_STATUS_CHANGED", "data": {"orderId": 12345}}, "orderId not a string"),
        ({"eventType": "PAYMENT_STATUS_CHANGED", "orderId": ORDER_ID, "status": "DONE"}, "flat PSC"),
    ],
)
def test_payment_status_changed_without_data_order_id_is_refused(body: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        read(_raw(body))
    assert caught.value.code == "PAY_000", why
    assert [(p.field, p.location) for p in caught.value.problems] == [("data.orderId", "body")]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"secret": VA_SECRET, "status": "DONE"}, "no orderId"),
        ({"secret": VA_SECRET, "orderId": ORDER_ID}, "no status"),
        ({"orderId": ORDER_ID, "status": 1}, "status not a string"),
        ({"orderId": None, "status": "DONE"}, "orderId null"),
        ({}, "empty object"),
        ({"eventType": "DEPOSIT_CALLBACK", "data": {"orderId": ORDER_ID}}, "nested without status"),
        ({"eventType": None, "createdAt": "2026-03-01T12:00:00"}, "eventType null, nothing else"),
    ],
)
def test_deposit_callback_without_order_id_or_status_is_refused(body: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        read(_raw(body))
    assert caught.value.code == "PAY_000", why


@pytest.mark.parametrize("event_type", [5, True, ["PAYMENT_STATUS_CHANGED"], {"a": 1}])
def test_an_event_type_that_is_not_a_string_is_refused(event_type: Any) -> None:
    with pytest.raises(ValidationFailed):
        read(_raw({"eventType": event_type, "orderId": ORDER_ID, "status": "DONE"}))


# --- X-Toss-Signature -----------------------------------------------------------------------------

SIGNING_SECRET = "whsec-unit-test-0123456789"
BODY = _raw(_payment_status_changed())


def _sign(body: bytes, secret: str = SIGNING_SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_the_right_signature_is_valid() -> None:
    assert signature_is_valid(SIGNING_SECRET, BODY, _sign(BODY))


def test_uppercase_hex_and_surrounding_whitespace_are_accepted() -> None:
    assert signature_is_valid(SIGNING_SECRET, BODY, _sign(BODY).upper())
    assert signature_is_valid(SIGNING_SECRET, BODY, f"  {_sign(BODY)}\n")


@pytest.mark.parametrize("signature", [None, ""])
def test_a_missing_signature_is_invalid(signature: str | None) -> None:
    assert not signature_is_valid(SIGNING_SECRET, BODY, signature)


def test_a_signature_with_another_secret_is_invalid() -> None:
    assert not signature_is_valid(SIGNING_SECRET, BODY, _sign(BODY, "another-secret"))


def test_a_signature_of_another_body_is_invalid() -> None:
    tampered = BODY.replace(b'"DONE"', b'"CANCELED"')
    assert tampered != BODY

    assert not signature_is_valid(SIGNING_SECRET, tampered, _sign(BODY))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s[:-1],  # truncated
        lambda s: s + "0",  # one digit too many
        lambda s: s[:-1] + ("0" if s[-1] != "0" else "1"),  # last digit changed
        lambda s: "sha256=" + s,  # a GitHub-style prefix is not our format
        lambda s: "z" * len(s),  # not hex
    ],
)
def test_mangled_signatures_are_invalid(mangle: Any) -> None:
    assert not signature_is_valid(SIGNING_SECRET, BODY, mangle(_sign(BODY)))


def test_a_base64_signature_of_the_same_hmac_is_invalid() -> None:
    import base64

    digest = hmac.new(SIGNING_SECRET.encode(), BODY, hashlib.sha256).digest()

    assert not signature_is_valid(SIGNING_SECRET, BODY, base64.b64encode(digest).decode())


def test_the_signature_covers_the_raw_bytes_not_the_parsed_json() -> None:
    # Same JSON, different bytes (key order, spacing): the signature must not carry over.
    reordered = json.dumps(json.loads(BODY), sort_keys=True, indent=1).encode()
    assert json.loads(reordered) == json.loads(BODY)

    assert not signature_is_valid(SIGNING_SECRET, reordered, _sign(BODY))
    assert signature_is_valid(SIGNING_SECRET, reordered, _sign(reordered))
