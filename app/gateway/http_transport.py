"""The PG client's HTTP transport: httpx's API over aiohttp's connections.

Every PG call (confirm, lookup, cancel) goes through one httpx.AsyncClient (app.gateway.toss).
Measured on this project's mock (scripts/profile_write_path.py, loadtests/README.md), httpx's
default transport (httpcore on anyio) spends ~400 µs of CPU per request below httpx itself, more
than the rest of a confirm; aiohttp's connection pool and parser spend ~80 µs. This transport keeps
httpx's client for everything the code and the tests see — requests, timeouts, responses, errors,
httpx.MockTransport in unit tests — and moves only the wire to aiohttp:

- timeouts: httpx's per-request `connect` (and `pool`) become aiohttp's connect timeout, `read` its
  per-read socket timeout; a timeout is raised as httpx.ConnectTimeout / ReadTimeout / PoolTimeout;
- errors: refused or unreachable is httpx.ConnectError, a connection dropped mid-answer
  RemoteProtocolError or ReadError, anything else httpx.TransportError, so TossClient's retry rules
  (same Idempotency-Key, outcome unknown) apply unchanged;
- bodies: aiohttp does not decompress; httpx decodes Content-Encoding as with its own transport (a
  broken encoding is still httpx.DecodingError);
- no redirects, no retries, no proxies from the environment, TLS verified against certifi's roots.
"""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp
import certifi
import httpx

# Headers aiohttp would add on its own: httpx's (or none) are sent instead.
_SKIP_AUTO_HEADERS = frozenset({"User-Agent", "Accept-Encoding", "Accept", "Content-Type"})
# Headers aiohttp computes from the request itself.
_OWN_HEADERS = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection"})


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport on one aiohttp session (opened on first use, in the running loop)."""

    def __init__(self, *, max_connections: int = 100, keepalive_seconds: float = 5.0) -> None:
        self._max_connections = max_connections
        self._keepalive_seconds = keepalive_seconds
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            keepalive_timeout=self._keepalive_seconds,
            ssl=ssl.create_default_context(cafile=certifi.where()),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            trust_env=False,
            skip_auto_headers=_SKIP_AUTO_HEADERS,
            timeout=aiohttp.ClientTimeout(total=None),
        )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        timeout = _timeout(request.extensions.get("timeout", {}))
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.headers.raw
            if name.lower() not in _OWN_HEADERS
        ]
        body = await request.aread()
        try:
            async with session.request(
                request.method,
                str(request.url),
                data=body or None,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as answer:
                content = await answer.read()
                return httpx.Response(
                    answer.status,
                    headers=[(name, value) for name, value in answer.raw_headers],
                    content=content,
                    request=request,
                    extensions={"http_version": b"HTTP/1.1"},
                )
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
        except (aiohttp.SocketTimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
        except TimeoutError as exc:
            raise httpx.PoolTimeout("no connection in time", request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise httpx.RemoteProtocolError(str(exc) or "server disconnected", request=request) from exc
        except (aiohttp.ClientPayloadError, aiohttp.ClientOSError) as exc:
            raise httpx.ReadError(str(exc), request=request) from exc
        except aiohttp.ClientResponseError as exc:  # an answer that is not HTTP
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.TransportError(str(exc), request=request) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def _timeout(given: dict[str, Any]) -> aiohttp.ClientTimeout:
    connect = given.get("connect")
    pool = given.get("pool")
    waits = [t for t in (connect, pool) if t is not None]
    return aiohttp.ClientTimeout(
        total=None,
        connect=sum(waits) if waits else None,  # a pooled connection, or a new one, in this long
        sock_connect=connect,
        sock_read=given.get("read"),
    )
