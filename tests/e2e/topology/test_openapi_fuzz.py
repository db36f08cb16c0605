"""Contract fuzzing: schemathesis against the service's own OpenAPI document, on a real API process.

The run uses every built-in check plus `error_envelope` (schemathesis_hooks.py): no 5xx, documented
status codes, content types, headers and response schemas, negative data rejected, auth enforced,
and every error in the API's error envelope. Exclusions are per operation and justified in
fuzzing.OPERATION_RULES. The stateful phase follows the document's links (issue → callback →
status → refund). This is the short run of `make test`; `make fuzz` (scripts/fuzz.py) runs the same
harness for at least 10,000 requests.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from app.http.openapi import OPENAPI_LINKS
from tests.support.servers import RunningServer
from tests.support.stack import Stack

from .fuzzing import (
    DEFAULT_SEED,
    FuzzSize,
    config_text,
    failures_excerpt,
    hook_environment,
    read_journal,
    recorded_stats,
    schemathesis_command,
    tally,
)
from .helpers import stack_with_mock, user_id

SIZE = FuzzSize(
    examples_per_operation=int(os.environ.get("FUZZ_MAX_EXAMPLES", "40")),
    stateful_scenarios=int(os.environ.get("FUZZ_STATEFUL_SCENARIOS", "30")),
    stateful_steps=6,
)
SEED = int(os.environ.get("FUZZ_SEED", str(DEFAULT_SEED)))
RUN_TIMEOUT = 200.0

SPEC_ENDPOINTS = {
    ("post", "/api/payments/issue"),
    ("get", "/api/payments/callback/success"),
    ("get", "/api/payments/callback/fail"),
    ("get", "/api/payments/{transaction_id}/status"),
    ("get", "/api/payments/{transaction_id}"),
    ("get", "/api/payments"),
    ("post", "/api/payments/{transaction_id}/refund"),
    ("get", "/api/products"),
    ("get", "/api/entitlements"),
    ("post", "/webhooks/payments/toss"),
    ("get", "/health/live"),
    ("get", "/health/ready"),
}


@pytest.fixture(scope="module")
def fuzz_stack(mysql_url: str) -> Iterator[tuple[Stack, RunningServer]]:
    """One API process (plus a mock Toss for the callbacks' confirms), production-like settings.

    The per-user rate limits are off: a fuzzer issuing hundreds of requests as one user would
    otherwise measure the limiter (tested on its own in test_ratelimit.py), not the contract.
    """
    env = {
        "RATE_LIMIT_ISSUE_PER_MINUTE": "0",
        "RATE_LIMIT_REFUND_PER_MINUTE": "0",
        "RATE_LIMIT_WEBHOOK_PER_MINUTE": "0",  # one source posting every webhook example
        "STREAM_MAX_SECONDS": "1",  # a pending transaction's status stream ends after a second
    }
    with stack_with_mock(mysql_url=mysql_url, apis=1, workers=0, env=env) as pair:
        yield pair


def _document(api: RunningServer) -> dict[str, Any]:
    response = httpx.get(f"{api.url}/schema/openapi.json", timeout=10.0)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in node and seen < 20:
        target: Any = document
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
        seen += 1
    return node


def test_the_document_lists_every_endpoint_of_the_spec(fuzz_stack: tuple[Stack, RunningServer]) -> None:
    stack, _ = fuzz_stack
    document = _document(stack.apis[0])

    assert document["openapi"].startswith("3.")
    operations = {(method, path) for path, item in document["paths"].items() for method in item}
    assert operations >= SPEC_ENDPOINTS, SPEC_ENDPOINTS - operations
    assert not [path for path in document["paths"] if path.startswith(("/metrics", "/demo"))]
    schemes = document["components"]["securitySchemes"]
    assert any(s.get("type") == "http" and s.get("scheme") == "bearer" for s in schemes.values()), schemes


def test_every_documented_error_response_is_the_spec_envelope(
    fuzz_stack: tuple[Stack, RunningServer],
) -> None:
    """The document must describe errors as they are served: `{code, message, details?}`."""
    stack, _ = fuzz_stack
    document = _document(stack.apis[0])
    wrong: list[str] = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation.get("responses", {}).items():
                if status[0] not in "45":
                    continue
                response = _resolve(document, response)
                schema = _resolve(
                    document, response.get("content", {}).get("application/json", {}).get("schema", {})
                )
                properties = set(schema.get("properties", {}))
                required = set(schema.get("required", []))
                if properties != {"code", "message", "details"} or not {"code", "message"} <= required:
                    wrong.append(
                        f"{method.upper()} {path} {status}: properties {sorted(properties)}, "
                        f"required {sorted(required)}"
                    )
    assert not wrong, "documented error responses that are not the API's error envelope:\n" + "\n".join(wrong)


def test_the_document_is_valid_openapi_with_the_links_of_a_checkout(
    fuzz_stack: tuple[Stack, RunningServer],
) -> None:
    """The served document passes the OpenAPI 3.1 schema, and every link names an existing operation."""
    stack, _ = fuzz_stack
    document = _document(stack.apis[0])

    errors = [
        f"{error.instance_path}: {error.message}" for error in OPENAPI_31_VALIDATOR.iter_errors(document)
    ]
    assert not errors, errors[:5]
    operation_ids = {
        operation["operationId"]: (method.upper(), path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    served: dict[tuple[str, str, str], dict[str, tuple[str, str]]] = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation.get("responses", {}).items():
                for name, link in response.get("links", {}).items():
                    served.setdefault((method.upper(), path, status), {})[name] = operation_ids[
                        link["operationId"]
                    ]
    assert served == {
        source: {name: (target.method, target.path) for name, target in links.items()}
        for source, links in OPENAPI_LINKS.items()
    }
    issue_links = served[("POST", "/api/payments/issue", "201")]
    assert issue_links["SuccessCallback"] == ("GET", "/api/payments/callback/success")
    assert issue_links["RequestRefund"] == ("POST", "/api/payments/{transaction_id}/refund")


def test_schemathesis_finds_no_contract_violation(
    fuzz_stack: tuple[Stack, RunningServer], tmp_path: Path
) -> None:
    stack, mock = fuzz_stack
    api = stack.apis[0]
    token = stack.token(user_id("fuzz"))
    config = tmp_path / "schemathesis.toml"
    config.write_text(config_text(SIZE))
    report_dir = tmp_path / "report"
    journal = tmp_path / "journal.ndjson"
    command = schemathesis_command(
        config_file=config,
        schema_url=f"{api.url}/schema/openapi.json",
        token=token,
        seed=SEED,
        report_dir=report_dir,
    )
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        cwd=tmp_path,
        env={**os.environ, **hook_environment(journal=journal, mock_toss_url=mock.url)},
        check=False,
    )
    output = result.stdout + result.stderr
    (tmp_path / "schemathesis.out").write_text(output)
    counted = tally(read_journal(journal))
    recorded, checks = recorded_stats(report_dir)
    print(
        f"\nschemathesis (seed {SEED}, {SIZE}): {counted.requests} requests sent "
        f"({dict(counted.by_phase)}; {recorded} interactions recorded with check probes); "
        f"exit {result.returncode}; output in {tmp_path / 'schemathesis.out'}, reports in {report_dir}"
    )

    assert counted.requests >= 200, f"only {counted.requests} requests were sent:\n{output[-3000:]}"
    assert counted.by_phase["stateful"] > 0, counted.by_phase
    assert {"not_a_server_error", "response_schema_conformance", "error_envelope"} <= checks, checks
    assert not counted.server_errors, counted.server_errors[:3]
    assert not counted.envelope_violations, counted.envelope_violations[:3]
    assert result.returncode == 0, failures_excerpt(output)
