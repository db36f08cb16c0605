"""`request_id_middleware` on a bare ASGI app: accept a sane X-Request-Id, make one otherwise."""

from __future__ import annotations

import re
from typing import Any, cast

import pytest

from app.observability import REQUEST_ID, request_id_middleware

GENERATED = re.compile(r"[0-9a-f]{32}")


class Recorder:
    """A tiny ASGI app that remembers the request id it saw and answers 200."""

    def __init__(self, extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.seen: list[str | None] = []
        self.extra_headers = extra_headers or []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.seen.append(REQUEST_ID.get())
        if scope["type"] != "http":
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain"), *self.extra_headers],
            }
        )
        await send({"type": "http.response.body", "body": b"ok"})


async def call(headers: list[tuple[bytes, bytes]], app: Recorder | None = None) -> tuple[Recorder, list[Any]]:
    inner = app or Recorder()
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope: Any = {"type": "http", "headers": headers}
    await request_id_middleware(inner)(scope, cast(Any, receive), send)
    return inner, sent


def response_ids(sent: list[Any]) -> list[str]:
    start = next(message for message in sent if message["type"] == "http.response.start")
    return [value.decode() for name, value in start["headers"] if name.lower() == b"x-request-id"]


async def test_a_sane_request_id_is_used_and_returned() -> None:
    inner, sent = await call([(b"x-request-id", b"front-1234.abc:def_9")])

    assert inner.seen == ["front-1234.abc:def_9"]
    assert response_ids(sent) == ["front-1234.abc:def_9"]
    assert REQUEST_ID.get() is None  # reset after the request


async def test_without_one_a_fresh_id_is_made_per_request() -> None:
    first, sent_first = await call([])
    second, sent_second = await call([])

    assert GENERATED.fullmatch(first.seen[0] or "")
    assert response_ids(sent_first) == [first.seen[0]]
    assert first.seen != second.seen
    assert response_ids(sent_second) == [second.seen[0]]


@pytest.mark.parametrize(
    "bad",
    [b"x" * 200, b"x" * 65, b"has spaces", b"semi;colon", b"", b"tab\there", "caf\u00e9".encode("latin-1")],
    ids=["200 chars", "65 chars", "spaces", "semicolon", "empty", "tab", "non-ascii"],
)
async def test_a_malformed_request_id_is_replaced(bad: bytes) -> None:
    inner, sent = await call([(b"x-request-id", bad)])

    assert GENERATED.fullmatch(inner.seen[0] or ""), inner.seen
    assert response_ids(sent) == [inner.seen[0]]


async def test_exactly_64_characters_are_still_accepted() -> None:
    value = b"a" * 64
    inner, sent = await call([(b"x-request-id", value)])

    assert inner.seen == [value.decode()]
    assert response_ids(sent) == [value.decode()]


async def test_other_scopes_pass_through_untouched() -> None:
    inner = Recorder()

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        raise AssertionError(f"nothing should be sent: {message}")

    scope: Any = {"type": "lifespan"}
    await request_id_middleware(inner)(scope, cast(Any, receive), send)

    assert inner.seen == [None]
