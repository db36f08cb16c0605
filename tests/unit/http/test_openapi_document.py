"""The OpenAPI document a frontend generates its client from (/schema/openapi.json, in-process):
real examples everywhere and nothing a generator made up, error codes from one list, each
operation's error responses from its entry in app.http.openapi.OPERATIONS, statuses as enums."""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from jsonschema import Draft202012Validator
from litestar.testing import TestClient

from app.core.domain import Status
from app.core.schemas import ErrorBody
from app.http.errors import ApiError
from app.http.openapi import FAILURE_CODES, OPERATIONS, openapi_document
from app.main import create_app
from app.migrate import upgrade_database
from app.settings import load_settings

METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('openapi') / 'payments.sqlite3'}"
    upgrade_database(url)
    with TestClient(app=create_app(load_settings({"DATABASE_URL": url}))) as client:
        response = client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text[:300]
    served: dict[str, Any] = response.json()
    return served


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def examples_in(node: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """Every example value anywhere in the document: `examples` maps (media types, parameters,
    headers) and lists (schemas), and `example`."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}/{key}"
            if key == "examples" and isinstance(value, dict):
                for name, example in value.items():
                    yield f"{here}/{name}", example.get("value") if isinstance(example, dict) else example
            elif key == "examples" and isinstance(value, list):
                for i, example in enumerate(value):
                    yield f"{here}/{i}", example
            elif key == "example":
                yield here, value
            else:
                yield from examples_in(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from examples_in(value, f"{where}/{i}")


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


# --- random-looking strings --------------------------------------------------------------------
# Ids whose random part is random by design, in our formats and Toss's: allowed, then blanked out.
ID_FORMATS = re.compile(
    r"TXN_\d{8}_[A-Za-z0-9]{22}"  # our transaction id
    r"|RF_\d{8}_[0-9a-f]{24}"  # our refund id
    r"|tviva\d{14}[A-Za-z0-9]{5}"  # Toss's paymentKey
    r"|\b[0-9A-F]{32}\b"  # Toss's transactionKey
    r"|\b(?:test|live)_ck_[A-Za-z0-9]{28}\b"  # Toss's client key
    r"|\bps_[A-Za-z0-9]{28}\b"  # a virtual account's webhook secret
    r"|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"  # an Idempotency-Key
    r"|\bst1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}"  # our streamToken (app.core.stream_tokens)
)
WORDLIKE = re.compile(r"[a-z0-9]+|[A-Z0-9]+|[A-Za-z][a-z]+(?:[A-Z][a-z]+|[0-9]+)*")
HEXLIKE = re.compile(r"(?=.*[0-9])(?=.*[a-fA-F])[0-9a-fA-F]{8,}")


def our_cursor(text: str) -> bool:
    try:
        return (
            re.fullmatch(r"v1:[0-9]+", base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode())
            is not None
        )
    except ValueError:
        return False


def random_looking(text: str) -> str | None:
    """The part of `text` that looks generated (Litestar's and polyfactory's: `ilvbzQIBShDtFfOfiPXw`,
    `b17e570850`), or None."""
    if our_cursor(text):
        return None
    for token in re.findall(r"[A-Za-z0-9]+", ID_FORMATS.sub(" ", text)):
        if len(token) < 8:
            continue
        letters = [c for c in token.lower() if c.isalpha()]
        vowels = sum(c in "aeiouy" for c in letters)
        if (
            not WORDLIKE.fullmatch(token)
            or HEXLIKE.fullmatch(token)
            or (len(letters) >= 8 and vowels < 0.2 * len(letters))
        ):
            return token
    return None


def test_the_detector_knows_generated_strings_from_ours() -> None:
    for generated in ("ilvbzQIBShDtFfOfiPXw", "DwEkQQHiBrmXZcSFtoJx", "vmoGjgxiHQOyswaLrqex", "b17e570850"):
        assert random_looking(generated), generated
    for ours in (
        "https://pay.asyncsite.com/api/payments/callback/fail?transactionId=TXN_20261205_VUqbakjM8RgYIsTH6nmB7Q",
        "PAY_PROCESS_CANCELED",
        "paymentSuccessCallback",
        "djE6MTE4Nw",
        "2026-12-05T14:04:02.118204Z",
        "사용자에 의해 결제가 취소되었습니다.",
    ):
        assert random_looking(ours) is None, ours


def test_no_example_is_made_up(document: dict[str, Any]) -> None:
    found = [
        f"{where}: {text!r} ({token})"
        for where, value in examples_in(document)
        for text in strings_in(value)
        if (token := random_looking(text))
    ]
    assert not found, "random-looking example strings:\n" + "\n".join(found)
    # Examples live beside operations, never generated into the schemas (ResponseSpec's default).
    generated = [where for where, _ in examples_in(document["components"]["schemas"], "#/components/schemas")]
    assert not generated, generated


# --- error codes -------------------------------------------------------------------------------


def error_code_enum(document: dict[str, Any]) -> list[str]:
    code: dict[str, Any] = document["components"]["schemas"]["ErrorBody"]["properties"]["code"]
    enum: list[str] = code["enum"]
    assert len(code["x-enum-descriptions"]) == len(enum)
    return enum


def test_error_codes_are_one_enum_with_descriptions(document: dict[str, Any]) -> None:
    schema = document["components"]["schemas"]["ErrorBody"]
    enum = error_code_enum(document)

    assert enum == [c.value for c in ApiError]
    assert len(set(enum)) == len(enum)
    assert set(schema["properties"]) == set(ErrorBody.__struct_encode_fields__)
    assert set(schema["required"]) == {"code", "message"}
    for code in enum:
        assert f"`{code}`" in document["info"]["description"], f"{code} is not in the API description"
    failure_code = document["components"]["schemas"]["FailureBody"]["properties"]["code"]
    assert failure_code["enum"] == [c.value for c in FAILURE_CODES] and set(FAILURE_CODES) <= set(enum)


def test_every_example_code_is_a_documented_error_code(document: dict[str, Any]) -> None:
    enum = set(error_code_enum(document))
    wrong = []
    for where, value in examples_in(document):
        for found in _codes_in(value):
            if found not in enum:
                wrong.append(f"{where}: {found}")
    assert not wrong, wrong


def _codes_in(value: Any) -> Iterator[str]:
    """`code` of envelopes and failures, and a fail page's `errorCode`."""
    if isinstance(value, dict):
        if isinstance(value.get("code"), str):
            yield value["code"]
        for item in value.values():
            yield from _codes_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _codes_in(item)
    elif isinstance(value, str) and value.startswith("http"):
        yield from parse_qs(urlsplit(value).query).get("errorCode", [])


def test_each_operation_answers_the_errors_of_its_table_entry(document: dict[str, Any]) -> None:
    served = {(method, path) for method, path, _ in operations(document)}
    assert served == set(OPERATIONS), (
        f"operations missing from app.http.openapi.OPERATIONS: {served - set(OPERATIONS)}; "
        f"in the table but not served: {set(OPERATIONS) - served}"
    )
    for method, path, operation in operations(document):
        entry = OPERATIONS[(method, path)]
        assert operation["operationId"] == entry.operation_id
        expected: dict[str, set[str]] = {}
        for code in entry.errors:
            expected.setdefault(str(code.status), set()).add(code.value)
        answered = {
            status: set(response["content"]["application/json"]["examples"])
            for status, response in operation["responses"].items()
            if status[0] in "45"
        }
        assert answered == expected, f"{method} {path}"
        for status, codes in answered.items():
            for code in codes:
                value = operation["responses"][status]["content"]["application/json"]["examples"][code][
                    "value"
                ]
                assert value["code"] == code, (method, path, status, code)


def test_the_status_endpoint_lists_only_what_a_poll_can_answer(document: dict[str, Any]) -> None:
    responses = document["paths"]["/api/payments/{transaction_id}/status"]["get"]["responses"]
    codes = {
        code
        for response in responses.values()
        for code in response.get("content", {}).get("application/json", {}).get("examples", {})
    }

    assert "PAY_007" not in codes and "PAY_002" not in codes
    assert {"PAY_000", "PAY_008", "AUTH_001", "SERVICE_UNAVAILABLE"} <= codes


# --- examples of every request, answer and parameter -------------------------------------------


def test_every_operation_has_examples_of_its_body_parameters_and_answers(document: dict[str, Any]) -> None:
    missing = []
    for method, path, operation in operations(document):
        body = operation.get("requestBody")
        if body is not None:
            for media_type, media in body["content"].items():
                if not media.get("examples"):
                    missing.append(f"{method} {path} request body ({media_type})")
        for parameter in operation.get("parameters", []):
            if not parameter.get("examples"):
                missing.append(f"{method} {path} parameter {parameter['name']}")
        for status, response in operation["responses"].items():
            response = resolve(document, response)
            if response.get("content"):
                for media_type, media in response["content"].items():
                    if not media.get("examples"):
                        missing.append(f"{method} {path} {status} ({media_type})")
            elif status.startswith("3") and not any(
                header.get("examples") for header in response.get("headers", {}).values()
            ):
                missing.append(f"{method} {path} {status} (a redirect: its Location)")
    assert not missing, "without examples:\n" + "\n".join(missing)


def closed(document: dict[str, Any], node: Any) -> Any:
    """The schema with its references inlined and every object closed to unknown properties, so an
    example with a field the schema lacks (renamed, removed) fails too."""
    if isinstance(node, dict):
        if "$ref" in node:
            return closed(document, resolve(document, node))
        out = {key: closed(document, value) for key, value in node.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [closed(document, value) for value in node]
    return node


def test_every_example_is_valid_for_its_schema(document: dict[str, Any]) -> None:
    wrong = []

    def check(label: str, schema: dict[str, Any], examples: dict[str, Any]) -> None:
        validator = Draft202012Validator(closed(document, copy.deepcopy(schema)))
        for name, example in examples.items():
            for error in validator.iter_errors(example["value"]):
                wrong.append(f"{label} example {name}: {error.json_path}: {error.message}")

    for method, path, operation in operations(document):
        label = f"{method} {path}"
        for media in operation.get("requestBody", {}).get("content", {}).values():
            check(f"{label} request", media["schema"], media.get("examples", {}))
        for parameter in operation.get("parameters", []):
            check(f"{label} {parameter['name']}", parameter["schema"], parameter.get("examples", {}))
        for status, response in operation["responses"].items():
            for media in resolve(document, response).get("content", {}).values():
                if "schema" in media:
                    check(f"{label} {status}", media["schema"], media.get("examples", {}))
    assert not wrong, "\n".join(wrong)


def test_a_failure_and_a_virtual_account_are_shown(document: dict[str, Any]) -> None:
    status = document["paths"]["/api/payments/{transaction_id}/status"]["get"]["responses"]["200"]
    examples = {name: e["value"] for name, e in status["content"]["application/json"]["examples"].items()}

    assert examples["failed"]["failure"]["pgCode"] == "PAY_PROCESS_CANCELED"
    assert examples["failed"]["statusCode"] == 41 and examples["failed"]["retryAfterMs"] is None
    account = examples["awaitingDeposit"]["virtualAccount"]
    assert account["bankCode"] and account["accountNumber"] and account["dueDate"]
    issued = document["paths"]["/api/payments/issue"]["post"]["responses"]["201"]["content"][
        "application/json"
    ]
    assert re.fullmatch(r"TXN_\d{8}_[A-Za-z0-9]{22}", issued["examples"]["card"]["value"]["transactionId"])


# --- statuses and the guide ----------------------------------------------------------------------


def test_statuses_are_enums_wherever_a_status_is_answered(document: dict[str, Any]) -> None:
    with_status = {
        name: schema
        for name, schema in document["components"]["schemas"].items()
        if {"status", "statusCode"} <= set(schema.get("properties", {}))
    }
    assert {
        "IssueResponse",
        "StatusResponse",
        "TransactionBody",
        "TransactionDetailBody",
        "HistoryBody",
    } <= set(with_status)
    for name, schema in with_status.items():
        status, code = schema["properties"]["status"], schema["properties"]["statusCode"]
        assert status["enum"] == [s.name for s in Status], name
        assert code["enum"] == [int(s) for s in Status], name
        assert code["x-enum-varnames"] == [s.name for s in Status], name
        assert len(status["x-enum-descriptions"]) == len(Status), name


def test_the_guide_tells_the_checkout_polling_and_idempotency(document: dict[str, Any]) -> None:
    guide = document["info"]["description"]
    for needed in (
        "POST /api/payments/issue",
        "requestPayment",
        "/api/payments/callback/success",
        "retryAfterMs",
        "0 → 1 → 2 → 3 → 5 s",
        "Idempotency-Key",
        "Idempotent-Replayed",
        "/refund",
    ):
        assert needed in guide, needed
    if any(path.endswith("/events") for path in document["paths"]):
        assert "streamToken" in guide and "/events" in guide


def test_payments_openapi_prints_the_served_document(
    document: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """What `payments openapi` prints (no server, no lifespan) is what /schema/openapi.json serves."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('openapi-cli') / 'payments.sqlite3'}"
    built = openapi_document(create_app(load_settings({"DATABASE_URL": url})))
    assert json.loads(json.dumps(built)) == document
