"""One error envelope for everything: `{"code", "message", "details"}`; every code the API answers
(`ApiError`: its HTTP status and what it means); and the language of the message.

The domain raises errors that carry a code and a text in both languages (app.messages); which
HTTP status a code gets, and which language a client reads (its `Accept-Language`: Korean unless
it prefers English), is decided here. Validation errors name the field as the client sent it
(app.http.validation turns msgspec's and Litestar's refusals into words).

The README's error table is `error_code_table()`; `python -m app.http.errors` prints it, and
tests/unit/http/test_error_catalog.py keeps the two equal.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from redis.exceptions import RedisError

from app import messages as texts
from app.core.domain import PaymentError, Problem, ValidationFailed
from app.core.ports import ServiceUnavailable
from app.core.schemas import ErrorBody
from app.http.validation import parameter_problems
from app.messages import ERROR_MESSAGES, Lang, language_of
from app.metrics import DATABASE_UNAVAILABLE, REDIS_UNAVAILABLE
from app.outages import database_unavailable
from app.ratelimit import RateLimited

log = logging.getLogger("app")


class ApiError(enum.StrEnum):
    """Every code of the error envelope: its HTTP status and when it is answered. The code's
    message, in Korean and English, is app.messages.ERROR_MESSAGES[code] (or a more precise text
    of the same code)."""

    status: int
    description: str

    def __new__(cls, code: str, status: int, description: str) -> ApiError:
        member = str.__new__(cls, code)
        member._value_ = code
        member.status = status
        member.description = description
        return member

    PAY_000 = (
        "PAY_000",
        400,
        "Malformed request: a body, field, header, query or path parameter is missing or invalid; "
        "`details` lists each as `{field, in, reason}`.",
    )
    PAY_001 = "PAY_001", 409, "Not allowed in the transaction's state (e.g. refunding an unpaid transaction)."
    # PAY_002 … PAY_006 say why a transaction failed (its `failure.code`, the fail page's
    # `errorCode`); no request is refused with them today. Their status is what one would get.
    PAY_002 = "PAY_002", 400, "A failure code: expired before payment (the order or the payment session)."
    PAY_003 = "PAY_003", 400, "A failure code: cancelled in the payment window, declined or not verified."
    PAY_004 = "PAY_004", 402, "A failure code: insufficient balance or card limit."
    PAY_005 = "PAY_005", 502, "A failure code: the payment provider failed."
    PAY_006 = (
        "PAY_006",
        500,
        "A failure code: the purchase could not be granted; it is refunded automatically.",
    )
    PAY_007 = "PAY_007", 400, "The amount is not the catalog's price; `details.expectedAmount` is."
    PAY_008 = "PAY_008", 404, "No such transaction (or not the caller's), or no such product."
    PAY_009 = "PAY_009", 422, "Idempotency-Key reused with a different body."
    PAY_010 = "PAY_010", 409, "A request with this Idempotency-Key is still running; retry later."
    AUTH_001 = (
        "AUTH_001",
        401,
        "Missing, malformed, invalid or expired bearer token or `streamToken` (a bearer JWT in a URL too); "
        "a forged webhook; `/metrics` without its token.",
    )
    AUTH_002 = (
        "AUTH_002",
        403,
        "Not allowed: e.g. a refund the policy refuses (`details.refundableAmount`), "
        "another transaction's `streamToken`.",
    )
    NOT_FOUND = "NOT_FOUND", 404, "No such route."
    METHOD_NOT_ALLOWED = (
        "METHOD_NOT_ALLOWED",
        405,
        "The route exists, not with this method; `Allow` lists its methods.",
    )
    PAYLOAD_TOO_LARGE = (
        "PAYLOAD_TOO_LARGE",
        413,
        "A body over 65,535 bytes on issue, refund or the webhook (read no further).",
    )
    RATE_LIMITED = (
        "RATE_LIMITED",
        429,
        "Over a per-minute limit (`RATE_LIMIT_*`) or the open status streams per user (`STREAM_MAX_PER_USER`); "
        "`Retry-After` and `details.retryAfterSeconds` say when to retry.",
    )
    SERVICE_UNAVAILABLE = (
        "SERVICE_UNAVAILABLE",
        503,
        "The database or Redis is unreachable where the request needs it; nothing was done; `Retry-After`.",
    )
    NOT_READY = (
        "NOT_READY",
        503,
        "`/health/ready` only: the database or Redis is unreachable (`details` says which).",
    )
    INTERNAL_ERROR = "INTERNAL_ERROR", 500, "A bug; logged with the request id."


# The HTTP status of every code the API answers with.
HTTP_STATUS: dict[str, int] = {code.value: code.status for code in ApiError}
# Litestar's own refusals (routing, body size, malformed requests) as codes.
_HTTP_CODES: dict[int, ApiError] = {
    400: ApiError.PAY_000,
    401: ApiError.AUTH_001,
    403: ApiError.AUTH_002,
    404: ApiError.NOT_FOUND,
    405: ApiError.METHOD_NOT_ALLOWED,
    413: ApiError.PAYLOAD_TOO_LARGE,
    429: ApiError.RATE_LIMITED,
    503: ApiError.SERVICE_UNAVAILABLE,
}


def error_code_table() -> str:
    """The list of codes as a Markdown table (the README's, between its error-codes markers)."""
    rows = ["| code | HTTP | when |", "|---|---|---|"]
    rows += [f"| `{code.value}` | {code.status} | {code.description} |" for code in ApiError]
    return "\n".join(rows)


def http_status_of(error: PaymentError) -> int:
    return HTTP_STATUS.get(error.code, 400)


def request_language(request: Request[Any, Any, Any]) -> Lang:
    """The language of our texts for this request (its Accept-Language)."""
    return language_of(request.headers.get("accept-language"))


def envelope(status_code: int, code: str, message: str, details: Any = None) -> Response[ErrorBody]:
    return Response(ErrorBody(code=code, message=message, details=details), status_code=status_code)


def problem_details(problems: tuple[Problem, ...] | list[Problem], lang: Lang) -> list[dict[str, str]]:
    """`details` of a PAY_000: each field as the client sent it, where it was, and why."""
    return [{"field": p.field, "in": p.location, "reason": p.reason(lang)} for p in problems]


def payment_error_handler(request: Request[Any, Any, Any], exc: PaymentError) -> Response[ErrorBody]:
    lang = request_language(request)
    details = problem_details(exc.problems, lang) if exc.problems else exc.details
    response = envelope(http_status_of(exc), exc.code, exc.text(lang), details)
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


def validation_error_handler(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[ErrorBody]:
    """Litestar refused a parameter (or found no body): PAY_000 naming each as the client sent it."""
    return payment_error_handler(request, ValidationFailed(*parameter_problems(request, exc)))


def http_error_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    code = _HTTP_CODES.get(exc.status_code)
    if code is None:
        # Nothing of ours or Litestar's answers another status today: keep the list's promise.
        code = ApiError.PAY_000 if exc.status_code < 500 else ApiError.INTERNAL_ERROR
        log.warning(
            "HTTP %s on %s %s answered as %s", exc.status_code, request.method, request.url.path, code
        )
    if code.status >= 500:
        log.error("HTTP %s on %s %s", exc.status_code, request.method, request.url.path, exc_info=exc)
    if code == ApiError.PAY_000:
        return payment_error_handler(request, _malformed(exc))
    response = envelope(code.status, code, ERROR_MESSAGES[code](request_language(request)))
    for name, value in (exc.headers or {}).items():  # e.g. Allow on a 405
        response.headers[name] = value
    return response


def _malformed(exc: HTTPException) -> ValidationFailed:
    """A request Litestar could not read (a 400 of its own), in our words."""
    if (exc.detail or "").startswith("Invalid content-length"):
        return ValidationFailed(Problem("Content-Length", texts.CONTENT_LENGTH_INVALID, "header"))
    return ValidationFailed()


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    if database_unavailable(exc):  # not a bug: the client may retry once the database is back
        DATABASE_UNAVAILABLE.labels(component="request").inc()
        log.warning(
            "database unreachable on %s %s: answered 503",
            request.method,
            request.url.path,
            extra={"error": repr(exc)},
        )
        return payment_error_handler(request, ServiceUnavailable(texts.DATABASE_UNAVAILABLE))
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    code = ApiError.INTERNAL_ERROR
    return envelope(code.status, code, ERROR_MESSAGES[code](request_language(request)))


EXCEPTION_HANDLERS: dict[int | type[Exception], Any] = {
    PaymentError: payment_error_handler,
    ValidationException: validation_error_handler,
    HTTPException: http_error_handler,
    RedisError: redis_error_handler,
    Exception: internal_error_handler,
}


if __name__ == "__main__":  # python -m app.http.errors: the README's table
    print(error_code_table())
