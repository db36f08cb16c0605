"""`JsonFormatter`: one JSON object per line, with the request id, extras, and nothing secret."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from app.observability import REDACTED, REQUEST_ID, JsonFormatter

SECRET_KEY = "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R"
CARD = "4330000000000005"
VA_SECRET = "ps_ootpc5L8PUpgB7Jh7HTHzYtvRJ9G"


def make_record(
    message: str = "hello %s",
    args: tuple[Any, ...] = ("world",),
    *,
    level: int = logging.INFO,
    extra: dict[str, Any] | None = None,
    exc_info: Any = None,
) -> logging.LogRecord:
    logger = logging.getLogger("app.test")
    record = logger.makeRecord(
        "app.test", level, __file__, 42, message, args, exc_info, func="f", extra=extra
    )
    return record


def render(record: logging.LogRecord) -> dict[str, Any]:
    line = JsonFormatter().format(record)
    assert "\n" not in line, line
    entry: dict[str, Any] = json.loads(line)
    return entry


@pytest.fixture
def request_id() -> Iterator[str]:
    token = REQUEST_ID.set("req-abc-123")
    yield "req-abc-123"
    REQUEST_ID.reset(token)


def test_a_line_has_time_level_logger_and_message() -> None:
    entry = render(make_record())

    assert entry["message"] == "hello world"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "app.test"
    stamp = datetime.fromisoformat(entry["time"])
    assert stamp.tzinfo is not None and stamp.utcoffset() == UTC.utcoffset(None)
    assert "requestId" not in entry  # outside a request


def test_the_request_id_of_the_current_request_is_on_every_line(request_id: str) -> None:
    assert render(make_record())["requestId"] == request_id
    assert render(make_record(level=logging.ERROR))["requestId"] == request_id


def test_extras_are_fields_of_their_own() -> None:
    entry = render(make_record(extra={"transactionId": "TXN_1", "amount": 50_000, "ok": True, "none": None}))

    assert (entry["transactionId"], entry["amount"], entry["ok"], entry["none"]) == (
        "TXN_1",
        50_000,
        True,
        None,
    )


def test_values_json_cannot_encode_become_text() -> None:
    when = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)

    entry = render(make_record(extra={"when": when, "thing": object()}))

    assert entry["when"] == str(when)
    assert isinstance(entry["thing"], str)


def test_secrets_in_the_message_and_its_arguments_are_redacted() -> None:
    entry = render(make_record("calling Toss with %s for card %s", (SECRET_KEY, CARD)))

    assert SECRET_KEY not in entry["message"] and CARD not in entry["message"]
    assert entry["message"].count(REDACTED) == 2


@pytest.mark.parametrize(
    "key", ["secret", "token", "authorization", "password", "cardNumber", "card_number", "apiKey", "jwtToken"]
)
def test_extras_named_like_secrets_are_redacted_whatever_their_value(key: str) -> None:
    entry = render(make_record(extra={key: "plain-looking-value"}))

    assert entry[key] == REDACTED


def test_secret_values_under_innocent_names_are_redacted() -> None:
    entry = render(make_record(extra={"note": f"paid with {CARD}", "body": {"secret": VA_SECRET, "x": 1}}))

    assert CARD not in json.dumps(entry)
    assert VA_SECRET not in json.dumps(entry)
    assert entry["body"]["x"] == 1


def test_secrets_nested_in_lists_are_redacted_like_in_dicts() -> None:
    """A list of objects (e.g. a webhook's or a PG answer's array) gets the same key-based
    redaction as a dict: a secret-named field is hidden even when its value looks harmless."""
    entry = render(make_record(extra={"events": [{"secret": "hunter2", "orderId": "TXN_1"}]}))

    assert "hunter2" not in json.dumps(entry), entry


def test_an_exception_is_one_redacted_field() -> None:
    try:
        raise RuntimeError(f"Toss refused {SECRET_KEY}")
    except RuntimeError:
        record = make_record("failed", (), level=logging.ERROR, exc_info=sys.exc_info())

    entry = render(record)

    assert "RuntimeError" in entry["exception"]
    assert "Traceback" in entry["exception"]
    assert SECRET_KEY not in entry["exception"]


def test_a_multi_line_message_stays_one_line() -> None:
    entry = render(make_record("first\nsecond", ()))

    assert entry["message"] == "first\nsecond"
