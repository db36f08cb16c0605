"""GET /metrics on the API port, and who may read it.

- METRICS_TOKEN set: served to `Authorization: Bearer <METRICS_TOKEN>` only (401 AUTH_001 otherwise).
- else METRICS_PORT set: not on the API port; `payments serve` runs a separate listener
  (app.metrics.serve_metrics) on METRICS_HOST:METRICS_PORT.
- else open outside production (`make run` stays friendly) and absent (404) in production.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler

from app.core.domain import ErrorCode
from app.core.schemas import ErrorBody
from app.messages import METRICS_TOKEN_REQUIRED, language_of
from app.metrics import render_metrics
from app.settings import Settings


def metrics_route(settings: Settings) -> HTTPRouteHandler | None:
    """The API port's /metrics handler for these settings, or None when it must not be served."""
    token = settings.observability.metrics_token
    if token is None and (settings.observability.metrics_port or settings.is_production):
        return None

    @get("/metrics", tags=["health"], include_in_schema=False)
    async def metrics(request: Request[Any, Any, Any]) -> Response[Any]:
        if token is not None and not presents_token(request.headers.get("authorization"), token):
            return Response(
                ErrorBody(
                    code=ErrorCode.UNAUTHENTICATED,
                    message=METRICS_TOKEN_REQUIRED(language_of(request.headers.get("accept-language"))),
                ),
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        body, content_type = render_metrics()
        # Litestar would append a second charset to a text/* media type: set the header as given.
        return Response(body, headers={"Content-Type": content_type})

    return metrics


def presents_token(authorization: str | None, token: str) -> bool:
    """`Bearer <token>` (scheme case-insensitive), compared in constant time."""
    scheme, _, value = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())
