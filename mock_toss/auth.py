"""Toss's HTTP Basic authentication: `Authorization: Basic base64("<secretKey>:")`."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection

from mock_toss.errors import TossError

_LIVE_KEY_KO = "모의 서버(mock)는 라이브 키를 받지 않습니다. test_ 키를 사용해주세요."
_LIVE_KEY_EN = "The mock refuses live keys. Use a test_ key."


def secret_key_from_header(header: str | None) -> str:
    """The secret key in an Authorization header, or TossError for a missing or malformed header.

    No header → 401 UNAUTHORIZED_KEY; not `Basic <base64>` or no colon inside → 403
    INCORRECT_BASIC_AUTH_FORMAT. The password part after the colon is ignored.
    """
    if header is None or not header.strip():
        raise TossError("UNAUTHORIZED_KEY")
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise TossError("INCORRECT_BASIC_AUTH_FORMAT")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise TossError("INCORRECT_BASIC_AUTH_FORMAT") from None
    if ":" not in decoded:
        raise TossError("INCORRECT_BASIC_AUTH_FORMAT")
    return decoded.split(":", 1)[0]


def authenticate(header: str | None, secret_keys: Collection[str]) -> str:
    """The caller's secret key when it is one of the configured test keys; TossError otherwise."""
    key = secret_key_from_header(header)
    if key.startswith("live_"):
        raise TossError("UNAUTHORIZED_KEY", _LIVE_KEY_KO, _LIVE_KEY_EN)
    if key not in secret_keys:
        raise TossError("UNAUTHORIZED_KEY")
    return key


def basic_auth_header(secret_key: str) -> str:
    """The header value a Toss client sends for `secret_key` (handy in tests and scripts)."""
    return "Basic " + base64.b64encode(f"{secret_key}:".encode()).decode()
