"""AiohttpTransport against a real socket server on 127.0.0.1: what TossClient relies on from
httpx's own transport still holds — the request on the wire, decoded bodies, and each failure as
the httpx error TossClient's retry rules are written for."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from app.gateway.toss import create_http_client

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Serve = Callable[[Handler], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> str:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    return head, await reader.readexactly(length)


def _answer(body: bytes, *extra: bytes) -> bytes:
    lines = [b"HTTP/1.1 200 OK", b"Content-Type: application/json", b"Content-Length: %d" % len(body), *extra]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def test_the_request_goes_out_as_httpx_built_it_and_a_gzip_answer_is_decoded(serve: Serve) -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await _read_request(reader))
        writer.write(_answer(gzip.compress(b'{"status":"DONE"}'), b"Content-Encoding: gzip"))
        await writer.drain()
        writer.close()

    url = await serve(handler)
    client = create_http_client(connect_timeout=2, read_timeout=5)
    try:
        answer = await client.post(
            f"{url}/v1/payments/confirm",
            content=b'{"amount":50000}',
            headers={
                "Authorization": "Basic abc",
                "Idempotency-Key": "confirm-1",
                "Content-Type": "application/json",
            },
        )
    finally:
        await client.aclose()

    assert answer.status_code == 200 and answer.json() == {"status": "DONE"}
    head, body = seen[0]
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/payments/confirm HTTP/1.1"
    names = [line.split(":", 1)[0].lower() for line in lines[1:] if line]
    for name in ("authorization", "idempotency-key", "content-type", "content-length", "host", "user-agent"):
        assert names.count(name) == 1, (name, lines)
    assert any(line.lower().startswith("user-agent: python-httpx/") for line in lines)
    assert body == b'{"amount":50000}'


async def test_a_broken_encoding_is_httpx_decoding_error_not_a_transport_error(serve: Serve) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(_answer(b"not gzip at all", b"Content-Encoding: gzip"))
        await writer.drain()
        writer.close()

    client = create_http_client(connect_timeout=2, read_timeout=5)
    try:
        with pytest.raises(httpx.DecodingError):
            await client.get(f"{await serve(handler)}/v1/payments/x")
    finally:
        await client.aclose()


async def test_an_answer_that_never_comes_is_a_read_timeout(serve: Serve) -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await release.wait()  # holds the connection open, silent
        writer.close()

    client = create_http_client(connect_timeout=2, read_timeout=0.3)
    try:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{await serve(handler)}/v1/payments/x")
    finally:
        release.set()
        await client.aclose()


async def test_a_connection_dropped_before_the_answer_is_a_transport_error(serve: Serve) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.transport.abort()  # the PG's side resets: the outcome is unknown

    client = create_http_client(connect_timeout=2, read_timeout=5)
    try:
        with pytest.raises(httpx.TransportError) as raised:
            await client.post(f"{await serve(handler)}/v1/payments/confirm", content=b"{}")
    finally:
        await client.aclose()
    assert not isinstance(raised.value, httpx.TimeoutException)


async def test_nothing_listening_is_a_connect_error() -> None:
    client = create_http_client(connect_timeout=2, read_timeout=5)
    try:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:1/v1/payments/x")
    finally:
        await client.aclose()
