"""HTTP routes of the mock Toss: the Toss API (/v1), the payment window (/checkout), test controls (/_mock)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import msgspec
from litestar import Litestar, Request, Response, delete, get, post, put
from litestar.datastructures import State
from litestar.exceptions import HTTPException, NotFoundException
from litestar.types import Message, Scope

from mock_toss import TOSS_API_VERSION, __version__
from mock_toss.answers import encode_answer
from mock_toss.auth import authenticate
from mock_toss.browser_sdk import return_page, sdk_script
from mock_toss.cash_receipts import attach_receipt_request, parse_receipt_request
from mock_toss.checkout import fail_redirect, parse_checkout, render_window
from mock_toss.config import MockConfig
from mock_toss.core_routes import core_routes
from mock_toss.errors import ERRORS, NOT_TEST_CODES, Language, TossError, language_of
from mock_toss.idempotency import MAX_KEY_LENGTH, IdempotencyIdentity
from mock_toss.payments import Payment, toss_time
from mock_toss.report_routes import report_routes
from mock_toss.routing import method_fallbacks, routing_routes
from mock_toss.service import MockToss

__all__ = ["MockConfig", "create_app"]

logger = logging.getLogger("mock_toss")

JSON = "application/json"
_encoder = msgspec.json.Encoder()
# An API operation gets the decoded body and the caller's (authenticated) secret key.
ApiOperation = Callable[[Any, str], Awaitable[Payment]]


class _Malformed:
    """Stands for a request body that is not valid JSON."""


MALFORMED = _Malformed()


def _mock(request: Request[Any, Any, Any]) -> MockToss:
    return cast(MockToss, request.app.state.mock)


def _json(content: Any, status: int = 200) -> Response[bytes]:
    return Response(content=_encoder.encode(content), status_code=status, media_type=JSON)


def _toss_error(error: TossError, language: Language) -> Response[bytes]:
    return _json(error.body(language), error.status)


def _control_error(message: str, status: int = 400) -> Response[bytes]:
    return _json({"code": "INVALID_REQUEST", "message": message}, status)


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return MALFORMED


def _test_code_error(value: str) -> TossError:
    code = value.strip()
    if code in ERRORS and code not in NOT_TEST_CODES:
        return TossError(code)
    return TossError("INVALID_TEST_CODE")


# ---------------------------------------------------------------------------------------------
# The Toss API pipeline: journal → auth → Idempotency-Key check → chaos → idempotency → test code.


async def _serve_api(
    request: Request[Any, Any, Any],
    route: str,
    operation: ApiOperation,
    *,
    payment_key: str | None = None,
    order_id: str | None = None,
) -> Response[bytes]:
    mock = _mock(request)
    headers = request.headers
    raw = await request.body()
    started = time.perf_counter()  # the mock's own time: from a complete request to its answer
    body = _decode(raw)
    idempotency_key = headers.get("idempotency-key")
    fields = body if isinstance(body, dict) else {}
    if payment_key is None and isinstance(fields.get("paymentKey"), str):
        payment_key = fields["paymentKey"]
    # Journal the payment's real orderId when the paymentKey is known, else what the caller sent.
    known = mock.store.get(payment_key) if payment_key is not None and order_id is None else None
    if known is not None:
        order_id = known.order_id
    elif order_id is None and isinstance(fields.get("orderId"), str):
        order_id = fields["orderId"]
    entry = mock.journal.record(
        method=request.method,
        path=request.scope["path"],
        query=dict(request.query_params.items()),
        body=raw.decode("utf-8", "replace") if body is MALFORMED else body,
        idempotency_key=idempotency_key,
        time=toss_time(mock.clock.now()),
        payment_key=payment_key,
    )
    entry.order_id = order_id
    language = language_of(headers.get("accept-language"))
    status, content, payment = await _answer_api(
        mock, request, route, operation, body, idempotency_key, language
    )
    entry.status = status
    if payment is not None:
        entry.order_id = payment.order_id
        entry.payment_key = payment.payment_key
    entry.duration_ms = round((time.perf_counter() - started) * 1000, 2)
    return Response(content=content, status_code=status, media_type=JSON)


async def _answer_api(
    mock: MockToss,
    request: Request[Any, Any, Any],
    route: str,
    operation: ApiOperation,
    body: Any,
    idempotency_key: str | None,
    language: Language,
) -> tuple[int, bytes, Payment | None]:
    headers = request.headers
    try:
        secret_key = authenticate(headers.get("authorization"), mock.config.secret_keys)
        if (
            request.method == "POST"
            and idempotency_key is not None
            and (not idempotency_key.strip() or len(idempotency_key) > MAX_KEY_LENGTH)
        ):
            raise TossError("INVALID_IDEMPOTENCY_KEY")
    except TossError as auth_error:
        return auth_error.status, _encoder.encode(auth_error.body(language)), None

    chaos = mock.chaos.draw(route) if mock.chaos.enabled else None
    if chaos is not None:
        if chaos.delay_seconds:
            await asyncio.sleep(chaos.delay_seconds)
        if chaos.error_code is not None:
            # Injected in front of the idempotency layer, like a failing edge: never replayed.
            injected = TossError(chaos.error_code)
            return injected.status, _encoder.encode(injected.body(language)), None

    identity = None
    if request.method == "POST" and idempotency_key is not None:
        identity = IdempotencyIdentity(idempotency_key, secret_key, request.scope["path"], request.method)
        stored = mock.idempotency.begin(identity)
        if stored is not None:
            if stored.status is None:
                processing = TossError("IDEMPOTENT_REQUEST_PROCESSING")
                return processing.status, _encoder.encode(processing.body(language)), None
            return stored.status, stored.body, None

    payment: Payment | None = None
    try:
        test_code = headers.get("tosspayments-test-code")
        if test_code is not None:
            raise _test_code_error(test_code)
        payment = await operation(body, secret_key)
        status, content = 200, encode_answer(payment, language, mock.clock.now())
    except TossError as error:
        status, content = error.status, _encoder.encode(error.body(language))
    except BaseException:
        if identity is not None:
            mock.idempotency.release(identity)
        raise
    if identity is not None:
        if status >= 500:
            # A 5xx means the request was not processed: nothing to replay, a retry runs again.
            mock.idempotency.release(identity)
        else:
            mock.idempotency.complete(identity, status, content)
    if chaos is not None and chaos.hold_seconds:
        # The work is done; only the answer is late, like a PG whose reply misses the client's timeout.
        await asyncio.sleep(chaos.hold_seconds)
    return status, content, payment


@post("/v1/payments/confirm")
async def confirm_payment(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Toss: approve an authenticated payment."""
    return await _serve_api(request, "confirm", _mock(request).confirm)


@get("/v1/payments/{payment_key:str}")
async def get_payment(request: Request[Any, Any, Any], payment_key: str) -> Response[bytes]:
    """Toss: look a payment up by paymentKey."""
    mock = _mock(request)

    async def lookup(_: Any, __: str) -> Payment:
        return mock.get_payment(payment_key)

    return await _serve_api(request, "lookup", lookup, payment_key=payment_key)


@get("/v1/payments/orders/{order_id:str}")
async def get_payment_by_order(request: Request[Any, Any, Any], order_id: str) -> Response[bytes]:
    """Toss: look a payment up by orderId."""
    mock = _mock(request)

    async def lookup(_: Any, __: str) -> Payment:
        return mock.get_payment_by_order(order_id)

    return await _serve_api(request, "lookup", lookup, order_id=order_id)


@post("/v1/payments/{payment_key:str}/cancel")
async def cancel_payment(request: Request[Any, Any, Any], payment_key: str) -> Response[bytes]:
    """Toss: cancel a payment, fully or partly."""
    mock = _mock(request)

    async def cancel(body: Any, _: str) -> Payment:
        return mock.cancel(payment_key, body)

    return await _serve_api(request, "cancel", cancel, payment_key=payment_key)


@post("/v1/virtual-accounts")
async def issue_virtual_account(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Toss: issue a virtual account server-side."""
    mock = _mock(request)

    async def issue(body: Any, _: str) -> Payment:
        receipt = parse_receipt_request(body.get("cashReceipt") if isinstance(body, dict) else None)
        payment = mock.issue_virtual_account(body)
        attach_receipt_request(mock, payment, receipt)  # issued with the deposit
        return payment

    return await _serve_api(request, "virtual-accounts", issue)


# ---------------------------------------------------------------------------------------------
# The payment window


def _redirect(url: str) -> Response[bytes]:
    return Response(content=b"", status_code=303, headers={"Location": url})


@get("/checkout")
async def open_checkout_window(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The HTML payment window for `requestPayment()`'s parameters."""
    mock = _mock(request)
    language = language_of(request.headers.get("accept-language"))
    fields = dict(request.query_params.items())
    try:
        order = parse_checkout(fields, mock.config.client_keys)
    except TossError as error:
        return _toss_error(error, language)
    try:
        payment = mock.open_session(order)
    except TossError as error:
        return _redirect(fail_redirect(order.fail_url, error.code, language, order.order_id))
    html = render_window(payment)
    return Response(content=html.encode(), status_code=200, media_type="text/html")


@post("/checkout/{payment_key:str}")
async def submit_checkout_window(request: Request[Any, Any, Any], payment_key: str) -> Response[bytes]:
    """The window's form: approve (with a test card) or cancel; answers Toss's redirect."""
    mock = _mock(request)
    language = language_of(request.headers.get("accept-language"))
    payment = mock.store.get(payment_key)
    if payment is None:
        return _toss_error(TossError("NOT_FOUND_PAYMENT"), language)
    form = await request.form()
    action = form.get("action")
    card_number = form.get("cardNumber")
    result = mock.finish_window(
        payment,
        approve=action != "cancel",
        card_number=card_number if isinstance(card_number, str) else None,
        language=language,
    )
    return _redirect(result.redirect_url)


@post("/_mock/checkout")
async def checkout_without_browser(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The payment window for programs: `{paymentKey, redirectUrl}` (paymentKey null when it failed)."""
    mock = _mock(request)
    language = language_of(request.headers.get("accept-language"))
    body = _decode(await request.body())
    if not isinstance(body, dict):
        return _toss_error(
            TossError("INVALID_REQUEST", "JSON 객체가 필요합니다.", "A JSON object is required."), language
        )
    action = body.get("action", "approve")
    card_number = body.get("cardNumber")
    if action not in ("approve", "cancel") or not (card_number is None or isinstance(card_number, str)):
        return _toss_error(
            TossError(
                "INVALID_REQUEST",
                "action은 approve 또는 cancel, cardNumber는 문자열이어야 합니다.",
                "action must be approve or cancel, and cardNumber a string.",
            ),
            language,
        )
    try:
        order = parse_checkout(body, mock.config.client_keys)
        receipt = parse_receipt_request(body.get("cashReceipt"), order.method)
    except TossError as error:
        return _toss_error(error, language)
    try:
        payment = mock.open_session(order)
    except TossError as error:
        redirect_url = fail_redirect(order.fail_url, error.code, language, order.order_id)
        return _json({"paymentKey": None, "redirectUrl": redirect_url})
    result = mock.finish_window(
        payment, approve=action == "approve", card_number=card_number, language=language
    )
    if result.payment_key is not None:
        attach_receipt_request(mock, payment, receipt)
    return _json({"paymentKey": result.payment_key, "redirectUrl": result.redirect_url})


# ---------------------------------------------------------------------------------------------
# The browser SDK (what https://js.tosspayments.com serves)

_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]{1,253}")


def _script(request: Request[Any, Any, Any], version: int) -> Response[bytes]:
    origin = str(request.base_url).rstrip("/")
    content = sdk_script(version, _mock(request).config, origin).encode()
    return Response(
        content=content,
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"},
    )


@get(["/v2/standard", "/v2/standard/"])
async def sdk_v2(request: Request[Any, Any, Any]) -> Response[bytes]:
    """TossPayments.js v2 (`payment()`, `widgets()`), for `<script src>` and `loadTossPayments`."""
    return _script(request, 2)


@get(["/v1", "/v1/", "/v1/payment"])
async def sdk_v1(request: Request[Any, Any, Any]) -> Response[bytes]:
    """TossPayments.js v1 (`requestPayment(method, params)`), for `<script src>` and the v1 loader."""
    return _script(request, 1)


@get("/_mock/sdk/return/{outcome:str}")
async def sdk_return(request: Request[Any, Any, Any], outcome: str) -> Response[bytes]:
    """Where a promise-mode payment window lands: hands the result to the page that opened it."""
    parent_origin = request.query_params.get("parentOrigin", "")
    if outcome not in ("success", "fail") or not _ORIGIN.fullmatch(parent_origin):
        return _control_error("outcome must be success or fail, and parentOrigin an http(s) origin")
    html = return_page(outcome, parent_origin).encode()
    return Response(content=html, status_code=200, media_type="text/html")


# ---------------------------------------------------------------------------------------------
# Test controls (no auth)


@post("/_mock/virtual-accounts/{order_id:str}/deposit")
async def deposit_into_virtual_account(request: Request[Any, Any, Any], order_id: str) -> Response[bytes]:
    """The buyer pays into the virtual account of `orderId`: DONE plus webhooks."""
    mock = _mock(request)
    language = language_of(request.headers.get("accept-language"))
    try:
        payment = mock.deposit(order_id, _decode(await request.body()))
    except TossError as error:
        return _toss_error(error, language)
    return _json(payment.to_toss(language, mock.clock.now()))


@get("/_mock/webhooks")
async def list_webhooks(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Webhook deliveries, oldest first; filters: orderId, eventType, status."""
    params = request.query_params
    deliveries = _mock(request).webhooks.find(
        order_id=params.get("orderId"), event_type=params.get("eventType"), status=params.get("status")
    )
    return _json({"webhooks": [delivery.to_json() for delivery in deliveries], "count": len(deliveries)})


@post("/_mock/webhooks/{delivery_id:str}/resend")
async def resend_webhook(request: Request[Any, Any, Any], delivery_id: str) -> Response[bytes]:
    """Cancel pending retries and attempt the delivery once more now; answers after that attempt."""
    delivery = _mock(request).webhooks.resend(delivery_id)
    if delivery is None:
        return _json({"code": "NOT_FOUND", "message": f"no webhook delivery {delivery_id}"}, 404)
    if delivery.task is not None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(delivery.task)
    return _json(delivery.to_json())


@get("/_mock/requests")
async def list_requests(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The request journal; filters: method, path (exact, or prefix ending in * or /), orderId,
    paymentKey, status."""
    params = request.query_params
    raw_status = params.get("status")
    if raw_status is not None and not raw_status.isdigit():
        return _control_error("status must be an HTTP status code")
    entries = _mock(request).journal.find(
        method=params.get("method"),
        path=params.get("path"),
        order_id=params.get("orderId"),
        payment_key=params.get("paymentKey"),
        status=int(raw_status) if raw_status is not None else None,
    )
    return _json({"requests": [entry.to_json() for entry in entries], "count": len(entries)})


@delete("/_mock/requests", status_code=200)
async def clear_requests(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Forget the journal only."""
    _mock(request).journal.clear()
    return _json({"requests": [], "count": 0})


@get("/_mock/chaos")
async def show_chaos(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The chaos settings, their seed and what they did so far."""
    return _json(_mock(request).chaos.describe())


@put("/_mock/chaos")
async def set_chaos(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Replace the chaos settings (see README for the body)."""
    mock = _mock(request)
    body = _decode(await request.body())
    if not isinstance(body, dict):
        return _control_error("the chaos body must be a JSON object")
    try:
        mock.chaos.configure(body)
    except ValueError as exc:
        return _control_error(str(exc))
    return _json(mock.chaos.describe())


@delete("/_mock/chaos", status_code=200)
async def clear_chaos(request: Request[Any, Any, Any]) -> Response[bytes]:
    """No more chaos."""
    mock = _mock(request)
    mock.chaos.clear()
    return _json(mock.chaos.describe())


def _clock_json(mock: MockToss) -> dict[str, Any]:
    return {"now": toss_time(mock.clock.now()), "offsetSeconds": mock.clock.offset_seconds}


@get("/_mock/clock")
async def show_clock(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The mock's time and how far it was advanced."""
    return _json(_clock_json(_mock(request)))


@post("/_mock/clock")
async def advance_clock(request: Request[Any, Any, Any]) -> Response[bytes]:
    """`{"advanceSeconds": N}`: move the clock forward and apply the expiries now due."""
    mock = _mock(request)
    body = _decode(await request.body())
    seconds = body.get("advanceSeconds") if isinstance(body, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        return _control_error('the body must be {"advanceSeconds": N} with N ≥ 0')
    mock.advance_clock(float(seconds))
    return _json(_clock_json(mock))


@post("/_mock/reset")
async def reset_mock(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Forget payments, idempotency keys, journal, webhooks, chaos and the clock offset."""
    _mock(request).reset()
    return _json({"status": "reset"})


@get("/_mock/health")
async def health() -> Response[bytes]:
    """Liveness plus versions, so tests fail loudly on contract drift."""
    pid = os.getpid()  # `payments dev` uses only the mock it started
    return _json({"status": "ok", "version": __version__, "tossApiVersion": TOSS_API_VERSION, "pid": pid})


# ---------------------------------------------------------------------------------------------
# Errors outside the handlers, in Toss's shape


def _not_found(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    return _toss_error(TossError("NOT_FOUND"), language_of(request.headers.get("accept-language")))


def _http_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    status = exc.status_code if isinstance(exc, HTTPException) else 400
    detail = exc.detail if isinstance(exc, HTTPException) else str(exc)
    return _json({"code": "INVALID_REQUEST", "message": detail}, status)


def _unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    logger.exception("unexpected error on %s %s", request.method, request.scope["path"], exc_info=exc)
    return _toss_error(TossError("FAILED_INTERNAL_SYSTEM_PROCESSING"), "ko")


def _ensure_log_output() -> None:
    # The startup line must be visible under plain uvicorn too, whose log config ignores our logger.
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s mock_toss %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


_CORS_HEADERS = (
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, POST, PUT, DELETE, OPTIONS"),
    (b"access-control-allow-headers", b"content-type, accept-language"),
    (b"access-control-max-age", b"600"),
)


async def _test_controls_for_any_page(message: Message, scope: Scope) -> None:
    """Pages of any origin may call the test controls (/_mock/…), e.g. a demo's "simulate deposit"
    button; the Toss API (/v1/…) stays closed to browsers, like Toss's."""
    if message["type"] == "http.response.start" and scope["path"].startswith("/_mock/"):
        headers = list(message.get("headers", []))
        headers.extend(_CORS_HEADERS)
        message["headers"] = headers


def create_app(config: MockConfig, *, mock: MockToss | None = None) -> Litestar:
    """The mock Toss as an ASGI app (run it with uvicorn, or under Litestar's test clients)."""
    service = mock or MockToss(config)
    _ensure_log_output()
    background: list[asyncio.Task[None]] = []

    async def start() -> None:
        background.append(asyncio.get_running_loop().create_task(service.sweep_forever()))
        urls = ", ".join(config.webhook_urls) or "none"
        logger.info(
            "mock Toss %s listening on %s (secret key %s, client key %s; webhooks → %s; time scale %g)",
            __version__,
            config.base_url,
            config.secret_key,
            config.client_key,
            urls,
            config.time_scale,
        )

    async def stop() -> None:
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await service.webhooks.close()

    app = Litestar(
        route_handlers=[
            confirm_payment,
            get_payment,
            get_payment_by_order,
            cancel_payment,
            issue_virtual_account,
            open_checkout_window,
            sdk_v2,
            sdk_v1,
            sdk_return,
            submit_checkout_window,
            checkout_without_browser,
            deposit_into_virtual_account,
            list_webhooks,
            resend_webhook,
            list_requests,
            clear_requests,
            show_chaos,
            set_chaos,
            clear_chaos,
            show_clock,
            advance_clock,
            reset_mock,
            health,
            *report_routes(_serve_api),
            *routing_routes(_serve_api),
            *core_routes(_serve_api),
        ],
        state=State({"mock": service}),
        on_startup=[start],
        on_shutdown=[stop],
        before_send=[_test_controls_for_any_page],
        exception_handlers={
            NotFoundException: _not_found,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
        openapi_config=None,
        logging_config=None,
        debug=False,
    )
    # Registered last: they answer the methods that the /v1 paths above lack.
    for handler in method_fallbacks(app):
        app.register(handler)
    return app
