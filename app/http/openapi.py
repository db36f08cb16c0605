"""What the OpenAPI document says beyond the handlers' signatures: the error envelope of every
documented failure, closed request bodies, and the links a client follows from one answer to the
next call."""

from __future__ import annotations

from dataclasses import dataclass, field

from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Link, OpenAPI, OpenAPIResponse, Operation

from app.core.schemas import ErrorBody, IssueRequest, RefundAccountBody, RefundRequest

# Bodies decoded with forbid_unknown_fields: the OpenAPI document marks them additionalProperties: false.
CLOSED_REQUEST_BODIES: tuple[type, ...] = (IssueRequest, RefundRequest, RefundAccountBody)
BEARER: list[dict[str, list[str]]] = [{"BearerToken": []}]
_ERROR_DESCRIPTIONS = {
    400: "Malformed request (PAY_000), expired (PAY_002), verification failed (PAY_003) or wrong price (PAY_007)",
    401: "Missing, invalid or expired bearer token (AUTH_001)",
    403: "Not allowed (AUTH_002), e.g. a refund the policy refuses",
    404: "No such transaction or product (PAY_008)",
    409: "Not allowed in the current state (PAY_001) or Idempotency-Key in progress (PAY_010)",
    422: "Idempotency-Key reused with a different request (PAY_009)",
    413: "Body larger than 65,535 bytes (PAYLOAD_TOO_LARGE)",
    429: "Too many requests (RATE_LIMITED); see Retry-After",
    503: "The database or Redis is briefly unreachable (SERVICE_UNAVAILABLE); retry after Retry-After",
}


def error_responses(*status_codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the SPEC's error envelope."""
    return {
        code: ResponseSpec(data_container=ErrorBody, description=_ERROR_DESCRIPTIONS[code])
        for code in status_codes
    }


# --- OpenAPI links: which answer feeds the next call -------------------------------------------
# The walk a client makes, catalog → issue → callback → status → refund, stated in the document so
# that clients and the contract fuzzer's stateful phase can follow it. Keyed by the source
# (method, path, status); each link maps the target's parameters (or body fields) to runtime
# expressions on the source's request or answer.
@dataclass(frozen=True, slots=True)
class LinkTarget:
    method: str
    path: str
    parameters: dict[str, str] = field(default_factory=dict)
    request_body: dict[str, str] | None = None


_FROM_BODY = "$response.body#/transactionId"
_STATUS_PATH = "/api/payments/{transaction_id}/status"
_DETAIL_PATH = "/api/payments/{transaction_id}"
_REFUND_PATH = "/api/payments/{transaction_id}/refund"


def _about(transaction_id: str) -> dict[str, LinkTarget]:
    """Links from an answer naming a transaction to the operations on that transaction."""
    on = {"path.transaction_id": transaction_id}
    return {
        "PollStatus": LinkTarget("GET", _STATUS_PATH, on),
        "GetDetail": LinkTarget("GET", _DETAIL_PATH, on),
        "RequestRefund": LinkTarget("POST", _REFUND_PATH, on),
    }


OPENAPI_LINKS: dict[tuple[str, str, str], dict[str, LinkTarget]] = {
    ("GET", "/api/products", "200"): {
        "IssueFirstProduct": LinkTarget(
            "POST",
            "/api/payments/issue",
            request_body={
                field: f"$response.body#/items/0/{field}" for field in ("productType", "productId", "amount")
            },
        )
    },
    ("POST", "/api/payments/issue", "201"): {
        # The PG sends the browser back with our transactionId as its orderId (and its own
        # paymentKey and amount, which no answer of ours carries).
        "SuccessCallback": LinkTarget("GET", "/api/payments/callback/success", {"query.orderId": _FROM_BODY}),
        "FailCallback": LinkTarget(
            "GET",
            "/api/payments/callback/fail",
            {"query.transactionId": _FROM_BODY, "query.orderId": _FROM_BODY},
        ),
        **_about(_FROM_BODY),
    },
    # No links out of the callbacks: their query is the browser's, not an id this service answered.
    ("GET", _STATUS_PATH, "200"): _about(_FROM_BODY),
    ("GET", _DETAIL_PATH, "200"): _about(_FROM_BODY),
    ("POST", _REFUND_PATH, "202"): _about(_FROM_BODY),
    ("GET", "/api/payments", "200"): _about("$response.body#/items/0/transactionId"),
}


def document_links(document: OpenAPI) -> None:
    """Add OPENAPI_LINKS to the generated document; targets are named by their operationId."""
    paths = document.paths or {}

    def operation(method: str, path: str) -> Operation:
        found: Operation | None = getattr(paths[path], method.lower())
        if found is None:
            raise KeyError(f"OPENAPI_LINKS names {method} {path}, which the document does not have")
        return found

    for (method, path, status), links in OPENAPI_LINKS.items():
        response = (operation(method, path).responses or {})[status]
        if not isinstance(response, OpenAPIResponse):
            raise TypeError(f"{method} {path} {status} is a reference, not a response")
        response.links = {
            name: Link(
                operation_id=operation(target.method, target.path).operation_id,
                parameters=target.parameters or None,
                request_body=target.request_body,
            )
            for name, target in links.items()
        }
