"""Routing like Toss's API: every `/v1` request is authenticated first and journaled, whatever its
path or method, and only then told that the path (404 `NOT_FOUND`) or the method
(404 `NOT_FOUND_HTTP_METHOD`) does not exist; plus the legacy confirm `POST /v1/payments/{paymentKey}`.

`routing_routes(serve_api)` builds the legacy confirm and the catch-all of unknown `/v1` paths;
`method_fallbacks(app)`, called once every route is registered, answers the methods a known `/v1`
path lacks (Litestar would answer 405 before any handler runs, so without auth and journal).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import msgspec
from litestar import Litestar, Request, Response, post, route
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute

from mock_toss.auth import authenticate
from mock_toss.errors import TossError, language_of
from mock_toss.payments import Payment, toss_time
from mock_toss.service import MockToss

JSON = "application/json"
API_METHODS = (HttpMethod.GET, HttpMethod.POST, HttpMethod.PUT, HttpMethod.PATCH, HttpMethod.DELETE)
# app.py's `_serve_api(request, route, operation, *, payment_key=None, order_id=None)`.
ServeApi = Callable[..., Awaitable[Response[bytes]]]


def _mock(request: Request[Any, Any, Any]) -> MockToss:
    return cast(MockToss, request.app.state.mock)


def is_api_path(path: str) -> bool:
    """A path of the Toss API (`/v1`, `/v1/…`)."""
    return path == "/v1" or path.startswith("/v1/")


async def answer_unrouted(request: Request[Any, Any, Any], code: str) -> Response[bytes]:
    """Journal the request, authenticate it like any API call, then answer `code` (NOT_FOUND or
    NOT_FOUND_HTTP_METHOD). No chaos, idempotency or test code: nothing behind the route runs."""
    mock = _mock(request)
    raw = await request.body()
    started = time.perf_counter()
    try:
        body: Any = msgspec.json.decode(raw) if raw else None
    except msgspec.DecodeError:
        body = raw.decode("utf-8", "replace")
    entry = mock.journal.record(
        method=request.method,
        path=request.scope["path"],
        query=dict(request.query_params.items()),
        body=body,
        idempotency_key=request.headers.get("idempotency-key"),
        time=toss_time(mock.clock.now()),
        payment_key=None,
    )
    language = language_of(request.headers.get("accept-language"))
    try:
        authenticate(request.headers.get("authorization"), mock.config.secret_keys)
        raise TossError(code)
    except TossError as error:
        entry.status = error.status
        entry.duration_ms = round((time.perf_counter() - started) * 1000, 2)
        return Response(
            content=msgspec.json.encode(error.body(language)), status_code=error.status, media_type=JSON
        )


def routing_routes(serve_api: ServeApi) -> list[HTTPRouteHandler]:
    """The legacy confirm and the catch-all of unknown `/v1` paths."""

    @post("/v1/payments/{payment_key:str}", status_code=200)
    async def confirm_legacy(request: Request[Any, Any, Any], payment_key: str) -> Response[bytes]:
        """Toss's legacy confirm: `POST /v1/payments/{paymentKey}` `{orderId, amount}`."""
        mock = _mock(request)

        async def confirm(body: Any, secret_key: str) -> Payment:
            request_body = {**body, "paymentKey": payment_key} if isinstance(body, dict) else body
            return await mock.confirm(request_body, secret_key)

        return await serve_api(request, "confirm", confirm, payment_key=payment_key)

    @route("/v1/{rest:path}", http_method=list(API_METHODS), status_code=200)
    async def unknown_api_path(request: Request[Any, Any, Any]) -> Response[bytes]:
        """Any other /v1 path: 401 without a valid key, else 404 NOT_FOUND."""
        return await answer_unrouted(request, "NOT_FOUND")

    return [confirm_legacy, unknown_api_path]


def _wrong_method_handler(path: str, methods: list[HttpMethod]) -> HTTPRouteHandler:
    async def wrong_method(request: Request[Any, Any, Any]) -> Response[bytes]:
        return await answer_unrouted(request, "NOT_FOUND_HTTP_METHOD")

    return route(path, http_method=methods, status_code=200, name=f"wrong-method:{path}")(wrong_method)


def method_fallbacks(app: Litestar) -> list[HTTPRouteHandler]:
    """Handlers for the methods each known `/v1` path lacks (GET, POST, PUT, PATCH, DELETE)."""
    handlers = []
    for known in app.routes:
        if not isinstance(known, HTTPRoute) or not is_api_path(known.path) or "{rest:path}" in known.path:
            continue
        missing = [method for method in API_METHODS if method not in known.methods]
        if missing:
            handlers.append(_wrong_method_handler(known.path, missing))
    return handlers
