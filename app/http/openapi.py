"""What the OpenAPI document says beyond the handlers' signatures, added to the generated document
once at start-up (`finish_document`): per operation (OPERATIONS) its operationId, the error codes it
can answer with an example each, and examples of every request and answer; the statuses and error
codes as enums; closed request bodies; the links a client follows from one answer to the next call;
and the guide in `info.description` (app.http.openapi_description). The examples themselves are in
app.http.openapi_examples; the list of error codes is app.http.errors.ApiError."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from litestar import Litestar
from litestar.openapi.spec import (
    Components,
    Example,
    Link,
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    Schema,
)

from app.core.domain import Status
from app.core.schemas import ErrorBody, IssueRequest, RefundAccountBody, RefundRequest
from app.http import openapi_examples as ex
from app.http.errors import ApiError
from app.http.openapi_description import STATUS_MEANINGS, api_description

# Bodies decoded with forbid_unknown_fields: the OpenAPI document marks them additionalProperties: false.
CLOSED_REQUEST_BODIES: tuple[type, ...] = (IssueRequest, RefundRequest, RefundAccountBody)
BEARER: list[dict[str, list[str]]] = [{"BearerToken": []}]


# --- one table: what each operation is called, which errors it answers, its examples -----------


@dataclass(frozen=True, slots=True)
class OperationDoc:
    """What the document says about one operation beyond its signature.

    `errors`: every code of the error envelope it can answer (its HTTP status is the code's,
    app.http.errors.ApiError), each shown with ex.ERROR_EXAMPLES' example or `error_examples`';
    `request`: examples of its body; `responses`: examples per success status (for a redirect, of
    its Location); `parameters`: examples per parameter name; `bodiless`: answers without a body
    that the handler's signature cannot state (status → description)."""

    operation_id: str
    errors: tuple[ApiError, ...] = ()
    request: Mapping[str, Example] | None = None
    responses: Mapping[str, Mapping[str, Example]] = field(default_factory=dict)
    parameters: Mapping[str, Mapping[str, Example]] = field(default_factory=dict)
    error_examples: Mapping[str, ex.ErrorExample] = field(default_factory=dict)
    bodiless: Mapping[str, str] = field(default_factory=dict)


A = ApiError
_AUTHORIZED = (A.AUTH_001, A.SERVICE_UNAVAILABLE)  # a bearer token; the database may be away
_WRITE = (A.PAYLOAD_TOO_LARGE, A.RATE_LIMITED)  # issue, refund, the webhook: body limit, rate limit
_TXN = {"transaction_id": ex.TRANSACTION_ID_PARAMETER}

OPERATIONS: dict[tuple[str, str], OperationDoc] = {
    ("POST", "/api/payments/issue"): OperationDoc(
        "issuePayment",
        errors=(A.PAY_000, A.PAY_007, A.PAY_008, A.PAY_010, A.PAY_009, *_AUTHORIZED, *_WRITE),
        request=ex.ISSUE_REQUEST,
        responses={"201": ex.ISSUE_RESPONSE},
        parameters={"Idempotency-Key": ex.IDEMPOTENCY_KEY_PARAMETER},
        error_examples=ex.ISSUE_ERRORS,
    ),
    ("GET", "/api/payments/{transaction_id}/status"): OperationDoc(
        "getPaymentStatus",
        errors=(A.PAY_000, A.PAY_008, *_AUTHORIZED),
        responses={"200": ex.STATUS_RESPONSE},
        parameters={**_TXN, "attempt": ex.ATTEMPT_PARAMETER},
    ),
    ("GET", "/api/payments/{transaction_id}/events"): OperationDoc(
        "streamPaymentStatus",
        errors=(A.PAY_000, A.AUTH_001, A.AUTH_002, A.PAY_008, A.RATE_LIMITED, A.SERVICE_UNAVAILABLE),
        responses={"200": ex.EVENTS_RESPONSE},
        parameters={
            **_TXN,
            "streamToken": ex.STREAM_TOKEN_PARAMETER,
            "Last-Event-ID": ex.LAST_EVENT_ID_PARAMETER,
            "lastEventId": ex.LAST_EVENT_ID_PARAMETER,
        },
        error_examples=ex.EVENTS_ERRORS,
        bodiless={
            "204": "A resumed stream (Last-Event-ID) with nothing left to send: the transaction has "
            "ended, and EventSource stops reconnecting."
        },
    ),
    ("GET", "/api/payments/{transaction_id}"): OperationDoc(
        "getPayment",
        errors=(A.PAY_000, A.PAY_008, *_AUTHORIZED),
        responses={"200": ex.DETAIL_RESPONSE},
        parameters=_TXN,
    ),
    ("GET", "/api/payments"): OperationDoc(
        "listPayments",
        errors=(A.PAY_000, *_AUTHORIZED),
        responses={"200": ex.LIST_RESPONSE},
        parameters=ex.LIST_PARAMETERS,
    ),
    ("POST", "/api/payments/{transaction_id}/refund"): OperationDoc(
        "refundPayment",
        errors=(A.PAY_000, A.AUTH_002, A.PAY_008, A.PAY_001, A.PAY_010, A.PAY_009, *_AUTHORIZED, *_WRITE),
        request=ex.REFUND_REQUEST,
        responses={"202": ex.REFUND_RESPONSE},
        parameters={**_TXN, "Idempotency-Key": ex.IDEMPOTENCY_KEY_PARAMETER},
        error_examples=ex.REFUND_ERRORS,
    ),
    # The callbacks always redirect: a problem goes to the fail page (errorCode=…), never an envelope.
    ("GET", "/api/payments/callback/success"): OperationDoc(
        "paymentSuccessCallback",
        responses={"302": ex.SUCCESS_REDIRECTS},
        parameters={
            name: ex.CALLBACK_PARAMETERS[name] for name in ("paymentKey", "orderId", "amount", "paymentType")
        },
    ),
    ("GET", "/api/payments/callback/fail"): OperationDoc(
        "paymentFailCallback",
        responses={"302": ex.FAIL_REDIRECTS},
        parameters={
            name: ex.CALLBACK_PARAMETERS[name] for name in ("transactionId", "orderId", "code", "message")
        },
    ),
    ("POST", "/webhooks/payments/toss"): OperationDoc(
        "receiveTossWebhook",
        errors=(A.PAY_000, A.AUTH_001, A.SERVICE_UNAVAILABLE, *_WRITE),
        request=ex.WEBHOOK_REQUEST,
        responses={"200": ex.WEBHOOK_RESPONSE},
        error_examples=ex.WEBHOOK_ERRORS,
    ),
    ("GET", "/api/products"): OperationDoc("listProducts", responses={"200": ex.PRODUCTS_RESPONSE}),
    ("GET", "/api/entitlements"): OperationDoc(
        "listEntitlements", errors=_AUTHORIZED, responses={"200": ex.ENTITLEMENTS_RESPONSE}
    ),
    ("GET", "/health/live"): OperationDoc("healthLive", responses={"200": ex.LIVE_RESPONSE}),
    ("GET", "/health/ready"): OperationDoc(
        "healthReady", errors=(A.NOT_READY,), responses={"200": ex.READY_RESPONSE}
    ),
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


# --- the error codes: the envelope's `code` enum, and each operation's error responses ----------

# Failed transactions carry one of these as `failure.code` (our code; the PG's is `pgCode`).
FAILURE_CODES: tuple[ApiError, ...] = (A.PAY_002, A.PAY_003, A.PAY_004, A.PAY_005, A.PAY_006)
# Answers with these codes carry Retry-After (seconds).
RETRY_AFTER_CODES = frozenset({A.RATE_LIMITED, A.SERVICE_UNAVAILABLE})
_ERROR_BODY_REF = Reference(ref="#/components/schemas/ErrorBody")


@dataclass(eq=False)
class _EnumSchema(Schema):
    """A Schema whose enum values carry descriptions (and names), as code generators read them."""

    enum_descriptions: list[str] | None = field(default=None, metadata={"alias": "x-enum-descriptions"})
    enum_varnames: list[str] | None = field(default=None, metadata={"alias": "x-enum-varnames"})


def _enum_schema(
    base: Schema | None,
    values: Sequence[str | int],
    descriptions: Sequence[str],
    *,
    names: Sequence[str] | None = None,
    description: str | None = None,
) -> _EnumSchema:
    kept = {f.name: getattr(base, f.name) for f in fields(Schema)} if base is not None else {}
    enum = _EnumSchema(**kept)
    enum.enum = list(values)
    enum.enum_descriptions = list(descriptions)
    enum.enum_varnames = list(names) if names is not None else None
    if description is not None:
        enum.description = description
    return enum


def _error_body_schema() -> Schema:
    """ErrorBody, as it is served: `code` one of ApiError (each with its HTTP status and meaning)."""
    code = _enum_schema(
        None,
        [c.value for c in ApiError],
        [f"HTTP {c.status}: {c.description}" for c in ApiError],
        description="What went wrong, for code: one of the API's error codes (see the API description).",
    )
    code.type = OpenAPIType.STRING
    schema = Schema(
        type=OpenAPIType.OBJECT,
        title="ErrorBody",
        description="The one error envelope of the API.",
        required=["code", "message"],
        properties={
            "code": code,
            "message": Schema(
                type=OpenAPIType.STRING,
                description="What went wrong, for people: Korean, or English when Accept-Language "
                "prefers it.",
            ),
            "details": Schema(
                description="More, when there is more: for PAY_000 a list of items {field, in, reason} "
                "(`in`: body, query, header or path); for PAY_007 {expectedAmount}; for a refund's "
                "AUTH_002 or PAY_001 {refundableAmount}; for RATE_LIMITED and SERVICE_UNAVAILABLE "
                "{retryAfterSeconds}; for NOT_READY the checks; else null."
            ),
        },
    )
    assert set(schema.properties or {}) == set(ErrorBody.__struct_encode_fields__)
    return schema


def _error_responses(doc: OperationDoc) -> dict[str, OpenAPIResponse]:
    """One response per HTTP status of `doc.errors`, with an example per code."""
    by_status: dict[int, list[ApiError]] = {}
    for code in doc.errors:
        by_status.setdefault(code.status, []).append(code)
    responses = {}
    for status, answered in sorted(by_status.items()):
        examples: dict[str, Example | Reference] = {}
        for code in answered:
            summary, message, details = doc.error_examples.get(code) or ex.ERROR_EXAMPLES[code]
            examples[code.value] = ex.example(
                f"{code.value}: {summary}", {"code": code.value, "message": message, "details": details}
            )
        retry = [code.value for code in answered if code in RETRY_AFTER_CODES]
        responses[str(status)] = OpenAPIResponse(
            description="\n".join(f"- `{code.value}`: {code.description}" for code in answered),
            content={"application/json": OpenAPIMediaType(schema=_ERROR_BODY_REF, examples=examples)},
            headers={
                "Retry-After": OpenAPIHeader(
                    schema=Schema(type=OpenAPIType.INTEGER, minimum=1),
                    description=f"With {', '.join(retry)}: seconds to wait before retrying.",
                )
            }
            if retry
            else None,
        )
    return responses


# --- statuses as enums --------------------------------------------------------------------------


def _document_statuses(schemas: dict[str, Schema]) -> None:
    """Every object with `status` (a name) and `statusCode` (its number) lists the statuses; a
    failure's `code` lists the failure codes."""
    meanings = [f"{int(s)} {s.name}: {STATUS_MEANINGS[s]}" for s in Status]
    for schema in schemas.values():
        properties = schema.properties or {}
        name, code = properties.get("status"), properties.get("statusCode")
        if not isinstance(name, Schema) or not isinstance(code, Schema) or name.type != OpenAPIType.STRING:
            continue
        properties["status"] = _enum_schema(
            name,
            [s.name for s in Status],
            meanings,
            description="The transaction's status by name; `statusCode` is its number.",
        )
        properties["statusCode"] = _enum_schema(
            code,
            [int(s) for s in Status],
            meanings,
            names=[s.name for s in Status],
            description="The transaction's status by number (10 → 30 → 40 → 45 → 50; 41, 51, 90, 95).",
        )
    failure = schemas.get("FailureBody")
    code = (failure.properties or {}).get("code") if failure is not None else None
    if failure is not None and failure.properties is not None and isinstance(code, Schema):
        failure.properties["code"] = _enum_schema(
            code,
            [c.value for c in FAILURE_CODES],
            [c.description for c in FAILURE_CODES],
            description="Our code for the failure (PAY_002 … PAY_006); the PG's is `pgCode`.",
        )


# --- putting it together ------------------------------------------------------------------------


def _operations(document: OpenAPI) -> dict[tuple[str, str], Operation]:
    found = {}
    for path, item in (document.paths or {}).items():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(item, method, None)
            if operation is not None:
                found[(method.upper(), path)] = operation
    return found


def _media(content: Mapping[str, OpenAPIMediaType] | None) -> OpenAPIMediaType | None:
    """The JSON (or event stream) body of a request or answer."""
    for media_type, media in (content or {}).items():
        if media_type == "application/json" or media_type.startswith("text/"):
            return media
    return None


def _document_operation(operation: Operation, doc: OperationDoc) -> None:
    operation.operation_id = doc.operation_id
    responses = operation.responses if operation.responses is not None else {}
    operation.responses = responses
    for status in [status for status in responses if status[0] in "45"]:
        del responses[status]  # Litestar's own 400 and any hand-made list: the table decides
    responses.update(_error_responses(doc))
    for status, description in doc.bodiless.items():
        responses.setdefault(status, OpenAPIResponse(description=description))
    for status, examples in doc.responses.items():
        response = responses[status]
        assert isinstance(response, OpenAPIResponse), f"{doc.operation_id} {status} is a reference"
        media = _media(response.content)
        if media is not None:
            media.examples = dict(examples)
            continue
        for name, header in (response.headers or {}).items():
            if name.lower() == "location" and isinstance(header, OpenAPIHeader):
                header.examples = dict(examples)
    if doc.request is not None:
        body = operation.request_body
        assert body is not None and not isinstance(body, Reference), f"{doc.operation_id} has no body"
        media = _media(body.content)
        assert media is not None, f"{doc.operation_id}: no JSON body"
        media.examples = dict(doc.request)
    for parameter in operation.parameters or []:
        if isinstance(parameter, Parameter) and parameter.name in doc.parameters:
            parameter.examples = dict(doc.parameters[parameter.name])


def finish_document(app: Litestar) -> None:
    """Complete the generated document (idempotent); a no-op when the app serves no schema."""
    if app.openapi_config is None:
        return
    document = app.openapi_schema
    document.components = document.components or Components()
    schemas = document.components.schemas = document.components.schemas or {}
    for struct in CLOSED_REQUEST_BODIES:
        schema = schemas.get(struct.__name__)
        if schema is not None:
            schema.additional_properties = False
    schemas["ErrorBody"] = _error_body_schema()
    _document_statuses(schemas)
    operations = _operations(document)
    for key, operation in operations.items():
        doc = OPERATIONS.get(key)
        if doc is not None:  # an operation missing from the table keeps Litestar's; a test catches it
            _document_operation(operation, doc)
    document_links(document)
    document.info.description = api_description(
        [(c.value, c.status, c.description) for c in ApiError],
        has_event_stream=("GET", "/api/payments/{transaction_id}/events") in operations,
    )


def openapi_document(app: Litestar) -> dict[str, Any]:
    """The document as /schema/openapi.json serves it; the app need not be running."""
    finish_document(app)
    return app.openapi_schema.to_schema()


def openapi_json(app: Litestar) -> str:
    """The document as `payments openapi` prints it (and clients/typescript/openapi.json holds it)."""
    return json.dumps(openapi_document(app), indent=2, ensure_ascii=False) + "\n"
