"""HTTP routes of the reconciliation APIs (transactions, settlements) and their test control.

`report_routes(serve_api)` builds the handlers; app.py passes its Toss API pipeline (`_serve_api`:
journal → auth → Idempotency-Key → chaos → idempotency → test code), so these routes are
authenticated and journaled like every /v1 route. The pipeline answers with `answer.to_toss(language,
now)` and journals `answer.order_id` / `answer.payment_key`: `ReportAnswer` below is that shape for
results that are not a Payment (lists, `{result}`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, cast

import msgspec
from litestar import Request, Response, delete, get, post, put
from litestar.handlers import HTTPRouteHandler

from mock_toss.errors import Language, TossError
from mock_toss.service import MockToss

JSON = "application/json"
# app.py's `_serve_api(request, route, operation, *, payment_key=None, order_id=None)`.
ServeApi = Callable[..., Awaitable[Response[bytes]]]


class ReportAnswer:
    """A Toss API answer that is not a Payment object."""

    def __init__(self, body: Any, *, order_id: str | None = None, payment_key: str | None = None) -> None:
        self.body = body
        self.order_id = order_id
        self.payment_key = payment_key

    def to_toss(self, language: Language, now: datetime) -> Any:
        return self.body


def _mock(request: Request[Any, Any, Any]) -> MockToss:
    return cast(MockToss, request.app.state.mock)


def _json(content: Any, status: int = 200) -> Response[bytes]:
    return Response(content=msgspec.json.encode(content), status_code=status, media_type=JSON)


def report_routes(serve_api: ServeApi) -> list[HTTPRouteHandler]:
    """The handlers of `GET /v1/transactions`, `GET/POST /v1/settlements` and
    `GET/PUT/DELETE /_mock/settlement-config`."""

    @get("/v1/transactions")
    async def list_transactions(request: Request[Any, Any, Any]) -> Response[bytes]:
        """Toss: every approval and cancel between startDate and endDate, oldest first."""
        mock = _mock(request)
        query = dict(request.query_params.items())

        async def run(_: Any, __: str) -> ReportAnswer:
            return ReportAnswer(mock.reports.transactions(query))

        return cast(Response[bytes], await serve_api(request, "transactions", run))

    @get("/v1/settlements")
    async def list_settlements(request: Request[Any, Any, Any]) -> Response[bytes]:
        """Toss: settlement rows by soldDate (or paidOutDate), those whose soldDate has passed."""
        mock = _mock(request)
        query = dict(request.query_params.items())

        async def run(_: Any, __: str) -> ReportAnswer:
            return ReportAnswer(mock.reports.settlements(query, mock.clock.now()))

        return cast(Response[bytes], await serve_api(request, "settlements", run))

    @post("/v1/settlements", status_code=200)
    async def request_settlement(request: Request[Any, Any, Any]) -> Response[bytes]:
        """Toss: manual settlement of one card payment (needs an extra contract at Toss)."""
        mock = _mock(request)

        async def run(body: Any, __: str) -> ReportAnswer:
            payment_key = body.get("paymentKey") if isinstance(body, dict) else None
            if not isinstance(payment_key, str) or not payment_key or len(payment_key) > 200:
                raise TossError(
                    "INVALID_REQUEST", "paymentKey는 필수입니다.", "paymentKey is required (at most 200)."
                )
            payment = mock.store.get(payment_key)
            mock.reports.request_manual_settlement(payment)
            assert payment is not None
            return ReportAnswer({"result": True}, order_id=payment.order_id, payment_key=payment.payment_key)

        return cast(Response[bytes], await serve_api(request, "settlements", run))

    @get("/_mock/settlement-config")
    async def show_settlement_config(request: Request[Any, Any, Any]) -> Response[bytes]:
        """Fee rules per method and the payout cycle."""
        return _json(_mock(request).reports.config.to_json())

    @put("/_mock/settlement-config")
    async def set_settlement_config(request: Request[Any, Any, Any]) -> Response[bytes]:
        """Change the fields given: `{"fees": {"CARD": {"percent", "fixed"}}, "payoutDays",
        "businessDaysOnly"}`. Applies to transactions from now on."""
        config = _mock(request).reports.config
        raw = await request.body()
        try:
            config.update(msgspec.json.decode(raw) if raw else None)
        except (ValueError, msgspec.DecodeError) as exc:
            return _json({"code": "INVALID_REQUEST", "message": str(exc)}, 400)
        return _json(config.to_json())

    @delete("/_mock/settlement-config", status_code=200)
    async def reset_settlement_config(request: Request[Any, Any, Any]) -> Response[bytes]:
        """Back to the defaults."""
        reports = _mock(request).reports
        reports.config = type(reports.config)()
        return _json(reports.config.to_json())

    return [
        list_transactions,
        list_settlements,
        request_settlement,
        show_settlement_config,
        set_settlement_config,
        reset_settlement_config,
    ]
