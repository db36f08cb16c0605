"""The status stream's streamToken (app/core/stream_tokens.py): one transaction, short-lived, and
never interchangeable with a bearer JWT in either direction."""

from __future__ import annotations

import base64
import json

import pytest

from app.core.auth import TokenAuthority
from app.core.domain import ErrorCode, Forbidden, Unauthenticated
from app.core.stream_tokens import MAX_TTL_SECONDS, REUSE_SECONDS, StreamTokens
from app.settings import SettingsError, load_settings

SECRET = "unit-test-secret-0123456789abcdef0123"
TID = "TXN_20260301_abcdefghijklmnopqrstuv"
OTHER_TID = "TXN_20260301_zzzzzzzzzzzzzzzzzzzzzz"


class FakeTime:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def tokens(clock: FakeTime) -> StreamTokens:
    return StreamTokens(SECRET, ttl_seconds=600, now=clock)


def test_a_token_names_its_transaction_and_owner(tokens: StreamTokens) -> None:
    token = tokens.mint(TID, "alice")
    assert token.startswith("st1.")
    assert tokens.verify(token, TID) == "alice"


def test_it_expires_after_its_ttl(tokens: StreamTokens, clock: FakeTime) -> None:
    token = tokens.mint(TID, "alice")
    clock.now += 599
    assert tokens.verify(token, TID) == "alice"
    clock.now += 1
    with pytest.raises(Unauthenticated) as caught:
        tokens.verify(token, TID)
    assert "expired" in caught.value.text.en


def test_another_transactions_token_is_forbidden(tokens: StreamTokens) -> None:
    token = tokens.mint(OTHER_TID, "alice")
    with pytest.raises(Forbidden) as caught:
        tokens.verify(token, TID)
    assert caught.value.code == ErrorCode.FORBIDDEN


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), id="tag"),
        pytest.param(lambda t: t.replace("st1.", "st1.A", 1), id="payload"),
        pytest.param(lambda t: t.rpartition(".")[0], id="no-tag"),
        pytest.param(lambda t: "st1.", id="empty"),
        pytest.param(lambda t: "st1.%%%.***", id="not-base64"),
        pytest.param(lambda t: t + "é", id="not-ascii"),
        pytest.param(lambda t: "st2." + t[4:], id="other-version"),
    ],
)
def test_a_tampered_token_is_invalid(tokens: StreamTokens, mangle: object) -> None:
    token = tokens.mint(TID, "alice")
    with pytest.raises(Unauthenticated):
        tokens.verify(mangle(token), TID)  # type: ignore[operator]


def test_a_forged_payload_with_a_valid_looking_shape_is_invalid(tokens: StreamTokens) -> None:
    # Someone else's user id put into a real token's payload: the tag no longer matches.
    token = tokens.mint(TID, "alice")
    _, payload, tag = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims[2] = "mallory"
    forged = (
        base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=").decode()
    )
    with pytest.raises(Unauthenticated):
        tokens.verify(f"st1.{forged}.{tag}", TID)


def test_a_token_of_another_secret_is_invalid(tokens: StreamTokens, clock: FakeTime) -> None:
    elsewhere = StreamTokens("another-secret-0123456789abcdef0123", now=clock)
    with pytest.raises(Unauthenticated):
        tokens.verify(elsewhere.mint(TID, "alice"), TID)


def test_a_bearer_jwt_is_refused_as_a_stream_token(tokens: StreamTokens) -> None:
    jwt = TokenAuthority(SECRET).mint("alice")  # same secret: still no stream token
    for given in (jwt, f"Bearer {jwt}"):
        with pytest.raises(Unauthenticated) as caught:
            tokens.verify(given, TID)
        assert "never accepted in the URL" in caught.value.text.en


def test_a_stream_token_is_refused_as_a_bearer_token(tokens: StreamTokens) -> None:
    token = tokens.mint(TID, "alice")
    with pytest.raises(Unauthenticated):
        TokenAuthority(SECRET).verify(f"Bearer {token}")


def test_a_token_is_reused_for_a_minute_then_minted_again(tokens: StreamTokens, clock: FakeTime) -> None:
    first = tokens.mint(TID, "alice")
    clock.now += REUSE_SECONDS - 1
    assert tokens.mint(TID, "alice") == first  # the status hot path pays a dictionary look-up
    assert tokens.mint(TID, "bob") != first  # per owner
    assert tokens.mint(OTHER_TID, "alice") != first  # and per transaction
    clock.now += 1
    second = tokens.mint(TID, "alice")
    assert second != first
    assert tokens.verify(second, TID) == "alice"


def test_a_reused_token_still_has_most_of_its_life(tokens: StreamTokens, clock: FakeTime) -> None:
    first = tokens.mint(TID, "alice")
    clock.now += REUSE_SECONDS - 1  # handed out once more now: still good for TTL - 59 s
    assert tokens.mint(TID, "alice") == first
    clock.now += 600 - REUSE_SECONDS
    assert tokens.verify(first, TID) == "alice"


def test_the_ttl_is_at_most_an_hour() -> None:
    StreamTokens(SECRET, ttl_seconds=MAX_TTL_SECONDS)
    with pytest.raises(ValueError):
        StreamTokens(SECRET, ttl_seconds=MAX_TTL_SECONDS + 1)
    assert load_settings({}).stream.token_ttl_seconds == 3600
    with pytest.raises(SettingsError, match="STREAM_TOKEN_TTL_SECONDS"):
        load_settings({"STREAM_TOKEN_TTL_SECONDS": "3601"})
