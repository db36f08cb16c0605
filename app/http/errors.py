"""One error envelope for everything: `{"code", "message", "details"}`, and the HTTP status of each code.

The domain raises errors that carry a code only; which HTTP status a code gets is decided here.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from redis.exceptions import RedisError

from app.core.domain import ErrorCode, PaymentError
from app.core.ports import ServiceUnavailable
from app.core.schemas import ErrorBody
from app.metrics import DATABASE_UNAVAILABLE, REDIS_UNAVAILABLE
from app.outages import database_unavailable
from app.ratelimit import RateLimited

log = logging.getLogger("app")

# The HTTP status of every code the API answers with.
HTTP_STATUS: dict[str, int] = {
    ErrorCode.MALFORMED: 400,
    ErrorCode.INVALID_STATE: 409,
    ErrorCode.EXPIRED: 400,
    ErrorCode.VERIFICATION_FAILED: 400,
    ErrorCode.INSUFFICIENT_FUNDS: 402,
    ErrorCode.PG_ERROR: 502,
    ErrorCode.PROVISIONING_FAILED: 500,
    ErrorCode.AMOUNT_MISMATCH: 400,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.IDEMPOTENCY_KEY_REUSED: 422,
    ErrorCode.IDEMPOTENCY_KEY_IN_PROGRESS: 409,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    RateLimited.code: 429,
    ServiceUnavailable.code: 503,
}
# Litestar's own refusals (routing, body size) as codes.
_HTTP_CODES: dict[int, str] = {
    400: ErrorCode.MALFORMED,
    401: ErrorCode.UNAUTHENTICATED,
    403: ErrorCode.FORBIDDEN,
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
}


def http_status_of(error: PaymentError) -> int:
    return HTTP_STATUS.get(error.code, 400)


def envelope(status_code: int, code: str, message: str, details: Any = None) -> Response[ErrorBody]:
    return Response(ErrorBody(code=code, message=message, details=details), status_code=status_code)


def payment_error_handler(_: Request[Any, Any, Any], exc: PaymentError) -> Response[ErrorBody]:
    response = envelope(http_status_of(exc), exc.code, exc.message, exc.details)
    if isinstance(exc, (RateLimited, ServiceUnavailable)):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def redis_error_handler(request: Request[Any, Any, Any], exc: RedisError) -> Response[ErrorBody]:
    """Redis unreachable where no adapter decided otherwise (e.g. queueing a webhook): 503, retry."""
    REDIS_UNAVAILABLE.labels(component="request").inc()
    log.warning(
        "Redis unreachable on %s %s: answered 503",
        request.method,
        request.url.path,
        extra={"error": repr(exc)},
    )
    return payment_error_handler(request, ServiceUnavailable())


def validation_error_handler(_: Request[Any, Any, Any], exc: ValidationException) -> Response[ErrorBody]:
    details = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            details.append({"field": item.get("key") or item.get("source"), "reason": item.get("message")})
    message = "The request is malformed."
    if details and details[0].get("reason"):
        message = f"{details[0]['field'] or 'body'}: {details[0]['reason']}"
    return envelope(400, ErrorCode.MALFORMED, message, details or None)


def http_error_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    if exc.status_code >= 500:
        log.error("HTTP %s on %s %s", exc.status_code, request.method, request.url.path, exc_info=exc)
    code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR" if exc.status_code < 500 else "INTERNAL_ERROR")
    response = envelope(exc.status_code, code, exc.detail or "HTTP error")
    for name, value in (exc.headers or {}).items():  # e.g. Allow on a 405
        response.headers[name] = value
    return response


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    if database_unavailable(exc):  # not a bug: the client may retry once the database is back
        DATABASE_UNAVAILABLE.labels(component="request").inc()
        log.warning(
            "database unreachable on %s %s: answered 503",
            request.method,
            request.url.path,
            extra={"error": repr(exc)},
        )
        return payment_error_handler(
            request, ServiceUnavailable("The database is briefly unreachable. Retry shortly.")
        )
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return envelope(HTTP_500_INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "Something went wrong on our side.")


EXCEPTION_HANDLERS: dict[int | type[Exception], Any] = {
    PaymentError: payment_error_handler,
    ValidationException: validation_error_handler,
    HTTPException: http_error_handler,
    RedisError: redis_error_handler,
    Exception: internal_error_handler,
}
