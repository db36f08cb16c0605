"""Stream tokens: a short-lived, signed permission to read ONE transaction's status events.

A browser's `EventSource` cannot send an Authorization header, so the status stream
(`GET /api/payments/{id}/events`) also accepts `?streamToken=…`. A URL ends up in logs, browser
history and proxies, so the token in it is worth as little as possible:

- it names one transaction and its owner, and the stream endpoint accepts it for that
  transaction only (another transaction's token: 403);
- it expires (`STREAM_TOKEN_TTL_SECONDS`, at most an hour; checked when a stream opens);
- it is no bearer token: it is signed with a key derived from JWT_SECRET for this purpose alone
  (HMAC-SHA256 over a payload of our own format, `st1.<payload>.<tag>`), so no endpoint that takes
  a bearer JWT accepts it (it is not even a JWT), and the stream endpoint refuses a bearer JWT in
  the URL.

The owner gets one in the issue answer and in every status answer (`streamToken`), so minting is
on the status hot path. A token is re-minted at most once a minute per transaction and owner (a
poll in between gets the same one, which then has between TTL - 60 s and TTL left): a dictionary
look-up per poll instead of an HMAC.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable

import msgspec

from app import messages as texts
from app.core.domain import Forbidden, Unauthenticated

_PREFIX = "st1."
_KEY_PURPOSE = b"asyncsite-payments: status stream tokens v1"
MAX_TTL_SECONDS = 3600
_PAYLOAD = msgspec.json.Decoder(tuple[int, str, str])  # (expires at, transaction id, user id)
REUSE_SECONDS = 60  # a token is handed out again for this long after it was minted
_ENCODE = msgspec.json.encode


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class StreamTokens:
    """Mints and verifies stream tokens under a key derived from `secret` (JWT_SECRET)."""

    CACHE_SIZE = 10_000

    def __init__(
        self, secret: str, *, ttl_seconds: int = MAX_TTL_SECONDS, now: Callable[[], float] = time.time
    ) -> None:
        if not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
            raise ValueError(f"a stream token lives 1 to {MAX_TTL_SECONDS} s, not {ttl_seconds}")
        key = hmac.new(secret.encode(), _KEY_PURPOSE, hashlib.sha256).digest()
        self._mac = hmac.new(key, digestmod=hashlib.sha256)  # copied per token: no key set-up each time
        self._ttl = ttl_seconds
        self._now = now
        self._reuse = min(REUSE_SECONDS, ttl_seconds // 2)
        self._recent: dict[tuple[str, str], tuple[str, float]] = {}  # → token, re-mint after

    @property
    def ttl_seconds(self) -> int:
        return self._ttl

    def _tag(self, signed: str) -> bytes:
        mac = self._mac.copy()
        mac.update(signed.encode("ascii"))
        return mac.digest()

    def mint(self, transaction_id: str, user_id: str) -> str:
        """A token for reading `transaction_id`'s events as its owner `user_id` (the one minted in
        the last minute, if any)."""
        now = self._now()
        recent = self._recent.get((transaction_id, user_id))
        if recent is not None and now < recent[1]:
            return recent[0]
        signed = _PREFIX + _b64(_ENCODE((int(now) + self._ttl, transaction_id, user_id)))
        token = f"{signed}.{_b64(self._tag(signed))}"
        if len(self._recent) >= self.CACHE_SIZE:
            self._recent.clear()  # bounded; a miss costs one HMAC
        self._recent[(transaction_id, user_id)] = (token, now + self._reuse)
        return token

    def verify(self, token: str, transaction_id: str) -> str:
        """The owner named by a valid, unexpired token for `transaction_id`.

        AUTH_001 (401) for anything not minted here, or expired; AUTH_002 (403) for a valid token
        of another transaction."""
        if not token.startswith(_PREFIX):
            if token.startswith("eyJ") or token.lower().startswith("bearer"):
                raise Unauthenticated(texts.STREAM_BEARER_IN_URL)
            raise Unauthenticated(texts.STREAM_TOKEN_INVALID)
        signed, dot, tag = token.rpartition(".")
        try:
            valid = bool(dot) and hmac.compare_digest(_unb64(tag), self._tag(signed))
            expires_at, for_transaction, user_id = _PAYLOAD.decode(_unb64(signed[len(_PREFIX) :]))
        except (ValueError, binascii.Error, msgspec.DecodeError, UnicodeEncodeError):
            valid = False
        if not valid:
            raise Unauthenticated(texts.STREAM_TOKEN_INVALID)
        if expires_at <= self._now():
            raise Unauthenticated(texts.STREAM_TOKEN_EXPIRED)
        if for_transaction != transaction_id:
            raise Forbidden(texts.STREAM_TOKEN_OTHER_TRANSACTION)
        return user_id
