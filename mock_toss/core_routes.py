"""HTTP routes of key-in payments, automatic payments (billing) and cash receipts, with the
card-registration window and its test controls.

`core_routes(serve_api)` builds the handlers; app.py passes its Toss API pipeline (`_serve_api`:
journal → auth → Idempotency-Key → chaos → idempotency → test code), so every /v1 route here is
authenticated, journaled, replayed and chaos-able like the payment routes. Chaos route names:
`key-in`, `billing` (issue, charge, delete), `cash-receipts` (issue, cancel), `lookup` (the list).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.handlers import HTTPRouteHandler

from mock_toss import billing, cash_receipts
from mock_toss.answers import NO_CONTENT, Answer, NoContent
from mock_toss.errors import Language, TossError, language_of
from mock_toss.key_in import key_in
from mock_toss.payments import Payment
from mock_toss.service import MockToss

JSON = "application/json"
# app.py's `_serve_api(request, route, operation, *, payment_key=None, order_id=None)`.
ServeApi = Callable[..., Awaitable[Response[bytes]]]


def _mock(request: Request[Any, Any, Any]) -> MockToss:
    return cast(MockToss, request.app.state.mock)


def _json(content: Any, status: int = 200) -> Response[bytes]:
    return Response(content=msgspec.json.encode(content), status_code=status, media_type=JSON)


def _toss_error(error: TossError, language: Language) -> Response[bytes]:
    return _json(error.body(language), error.status)


def _redirect(url: str) -> Response[bytes]:
    return Response(content=b"", status_code=303, headers={"Location": url})


def _language(request: Request[Any, Any, Any]) -> Language:
    return language_of(request.headers.get("accept-language"))


async def _json_body(request: Request[Any, Any, Any]) -> Any:
    raw = await request.body()
    try:
        return msgspec.json.decode(raw) if raw else None
    except msgspec.DecodeError:
        return None


def core_routes(serve_api: ServeApi) -> list[HTTPRouteHandler]:
    """Every handler of this module."""

    # ------------------------------------------------------------------ key-in

    @post("/v1/payments/key-in", status_code=200)
    async def pay_by_card_number(request: Request[Any, Any, Any]) -> Response[bytes]:
        """Toss: approve a payment with card data (카드 번호 결제)."""
        mock = _mock(request)

        async def run(body: Any, _: str) -> Payment:
            return await key_in(mock, body)

        return await serve_api(request, "key-in", run)

    # ------------------------------------------------------------------ billing API

    @post("/v1/billing/authorizations/issue", status_code=200)
    async def issue_billing_key(request: Request[Any, Any, Any]) -> Response[bytes]:
        """Toss: a billing key for the authKey the registration window handed out."""
        mock = _mock(request)

        async def run(body: Any, secret_key: str) -> Answer:
            return Answer(billing.issue_by_auth_key(mock, body, secret_key))

        return await serve_api(request, "billing", run)

    @post("/v1/billing/authorizations/card", status_code=200)
    async def issue_billing_key_by_card(request: Request[Any, Any, Any]) -> Response[bytes]:
        """Toss: a billing key for card data (needs an extra contract at Toss)."""
        mock = _mock(request)

        async def run(body: Any, secret_key: str) -> Answer:
            return Answer(billing.issue_by_card(mock, body, secret_key))

        return await serve_api(request, "billing", run)

    @post("/v1/billing/{billing_key:str}", status_code=200)
    async def charge_billing_key(request: Request[Any, Any, Any], billing_key: str) -> Response[bytes]:
        """Toss: charge a billing key (카드 자동결제 승인)."""
        mock = _mock(request)

        async def run(body: Any, secret_key: str) -> Payment:
            return await billing.charge_billing_key(mock, billing_key, body, secret_key)

        return await serve_api(request, "billing", run)

    @delete("/v1/billing/{billing_key:str}", status_code=200)
    async def delete_billing_key(request: Request[Any, Any, Any], billing_key: str) -> Response[bytes]:
        """Toss: delete a billing key (빌링키 삭제): 200 with an empty body."""
        mock = _mock(request)

        async def run(_: Any, secret_key: str) -> NoContent:
            billing.delete_billing_key(mock, billing_key, secret_key)
            return NO_CONTENT

        return await serve_api(request, "billing", run)

    # ------------------------------------------------------------------ cash receipts API

    @post("/v1/cash-receipts", status_code=200)
    async def issue_cash_receipt(request: Request[Any, Any, Any]) -> Response[bytes]:
        """Toss: issue a cash receipt (현금영수증 발급)."""
        mock = _mock(request)

        async def run(body: Any, _: str) -> Answer:
            record = cash_receipts.issue_receipt(mock, body)
            return Answer(record, order_id=record.order_id)

        return await serve_api(request, "cash-receipts", run)

    @post("/v1/cash-receipts/{receipt_key:str}/cancel", status_code=200)
    async def cancel_cash_receipt(request: Request[Any, Any, Any], receipt_key: str) -> Response[bytes]:
        """Toss: cancel a cash receipt, fully or in part."""
        mock = _mock(request)

        async def run(body: Any, _: str) -> Answer:
            record = cash_receipts.cancel_receipt(mock, receipt_key, body)
            return Answer(record, order_id=record.order_id)

        return await serve_api(request, "cash-receipts", run)

    @get("/v1/cash-receipts")
    async def list_cash_receipts(request: Request[Any, Any, Any]) -> Response[bytes]:
        """Toss: the cash receipts requested on requestDate, with a cursor."""
        mock = _mock(request)
        query = dict(request.query_params.items())

        async def run(_: Any, __: str) -> Answer:
            return Answer(cash_receipts.list_receipts(mock, query))

        return await serve_api(request, "lookup", run)

    # ------------------------------------------------------------------ the registration window

    @get("/billing-auth")
    async def open_billing_auth_window(request: Request[Any, Any, Any]) -> Response[bytes]:
        """The HTML card-registration window for `requestBillingAuth()`'s parameters."""
        mock = _mock(request)
        try:
            auth_request = billing.parse_billing_auth(
                dict(request.query_params.items()), (mock.config.client_key,)
            )
        except TossError as error:
            return _toss_error(error, _language(request))
        window = billing.open_billing_auth(mock, auth_request)
        html = billing.render_billing_auth(window)
        return Response(content=html.encode(), status_code=200, media_type="text/html")

    @post("/billing-auth/{window_id:str}")
    async def submit_billing_auth_window(request: Request[Any, Any, Any], window_id: str) -> Response[bytes]:
        """The window's form: register (with a test card) or cancel; answers Toss's redirect."""
        mock = _mock(request)
        language = _language(request)
        window = billing.billing_state(mock).windows.get(window_id)
        if window is None:
            return _toss_error(TossError("NOT_FOUND"), language)
        form = await request.form()
        card_number = form.get("cardNumber")
        _, redirect_url = billing.finish_billing_auth(
            mock,
            window,
            register=form.get("action") != "cancel",
            card_number=card_number if isinstance(card_number, str) else None,
            language=language,
        )
        return _redirect(redirect_url)

    # ------------------------------------------------------------------ test controls

    @post("/_mock/billing-auth", status_code=200)
    async def billing_auth_without_browser(request: Request[Any, Any, Any]) -> Response[bytes]:
        """The registration window for programs: `{authKey, redirectUrl}` (authKey null when it
        failed or was cancelled)."""
        mock = _mock(request)
        language = _language(request)
        body = await _json_body(request)
        if not isinstance(body, dict):
            return _toss_error(
                TossError("INVALID_REQUEST", "JSON 객체가 필요합니다.", "A JSON object is required."),
                language,
            )
        action = body.get("action", "register")
        card_number = body.get("cardNumber")
        if action not in ("register", "approve", "cancel") or not (
            card_number is None or isinstance(card_number, str)
        ):
            return _toss_error(
                TossError(
                    "INVALID_REQUEST",
                    "action은 register 또는 cancel, cardNumber는 문자열이어야 합니다.",
                    "action must be register or cancel, and cardNumber a string.",
                ),
                language,
            )
        try:
            auth_request = billing.parse_billing_auth(body, (mock.config.client_key,))
        except TossError as error:
            return _toss_error(error, language)
        window = billing.open_billing_auth(mock, auth_request)
        auth_key, redirect_url = billing.finish_billing_auth(
            mock, window, register=action != "cancel", card_number=card_number, language=language
        )
        return _json({"authKey": auth_key, "redirectUrl": redirect_url})

    @post("/_mock/billing/{billing_key:str}/card", status_code=200)
    async def change_billing_card(request: Request[Any, Any, Any], billing_key: str) -> Response[bytes]:
        """`{cardNumber}`: another test card behind the billing key; answers the Billing object."""
        mock = _mock(request)
        language = _language(request)
        try:
            key = billing.change_card(mock, billing_key, await _json_body(request))
        except TossError as error:
            return _toss_error(error, language)
        return _json(key.to_toss(language, mock.clock.now()))

    return [
        pay_by_card_number,
        issue_billing_key,
        issue_billing_key_by_card,
        charge_billing_key,
        delete_billing_key,
        issue_cash_receipt,
        cancel_cash_receipt,
        list_cash_receipts,
        open_billing_auth_window,
        submit_billing_auth_window,
        billing_auth_without_browser,
        change_billing_card,
    ]
