"""Contract fuzzing: schemathesis against the service's own OpenAPI document, on a real API process.

The run uses every built-in check plus `error_envelope` (schemathesis_hooks.py): no 5xx, documented
status codes, content types, headers and response schemas, negative data rejected, auth enforced,
and every error in the SPEC's envelope. Exclusions are per operation and justified in CONFIG.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import RunningServer
from tests.support.stack import Stack

from .helpers import stack_with_mock, user_id

HERE = Path(__file__).resolve().parent
HOOKS = HERE / "schemathesis_hooks.py"
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "40"))
SEED = os.environ.get("FUZZ_SEED", "20261126")
RUN_TIMEOUT = 200.0
# Not part of the API contract: Prometheus' scrape endpoint and the development-only demo pages.
EXCLUDED_PATHS = r"^/(metrics|demo)(/|$)"

# Every check stays on for every operation; only what a schema cannot state is relaxed, per
# operation and per status code.
CONFIG = """
[[operations]]
# positive_data_acceptance (ST202) sends schema-valid bodies and wants them accepted. Issuing is
# priced by the product catalog: a schema-valid `amount` that is not the catalog's price is
# PAY_007 (400) by design (SPEC §3), and the schema cannot list prices. Only 400 is added to the
# check's defaults; the other checks (schema, envelope, 5xx, ...) still apply to these answers.
include-name = "POST /api/payments/issue"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]

[[operations]]
# Money is an integer on the wire, strictly (house rule): JSON Schema's "integer" also admits 1.0,
# which the service refuses with 400 PAY_000 rather than silently truncating an amount.
include-name = "POST /api/payments/{transaction_id}/refund"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]

[[operations]]
# Toss sends two body shapes (PAYMENT_STATUS_CHANGED with data.orderId, DEPOSIT_CALLBACK flat with
# orderId) and adds fields without notice, so the document keeps the body an open JSON object. A
# schema-valid object that names no payment is malformed by design (400 PAY_000, issue 5); every
# other check (envelope, schema of answers, 5xx) still applies.
include-name = "POST /webhooks/payments/toss"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401"]
"""

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
    env = {"RATE_LIMIT_ISSUE_PER_MINUTE": "0", "RATE_LIMIT_REFUND_PER_MINUTE": "0"}
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
    assert not wrong, "documented error responses that are not the SPEC envelope:\n" + "\n".join(wrong)


def _run_stats(report_dir: Path) -> tuple[int, set[str]]:
    """HTTP requests schemathesis sent and the checks it ran, from its NDJSON event stream."""
    sent = 0
    checks: set[str] = set()
    for path in report_dir.glob("*.ndjson"):
        for line in path.read_text().splitlines():
            finished = json.loads(line).get("ScenarioFinished")
            if not finished:
                continue
            recorder = finished.get("recorder", {})
            sent += len(recorder.get("interactions", {}))
            for results in recorder.get("checks", {}).values():
                checks.update(result["name"] for result in results)
    return sent, checks


def _summary(output: str) -> str:
    """The end of schemathesis' output (failures summary) plus the first failure details."""
    start = output.find("=== FAILURES ===")
    details = output[start : start + 6000] if start >= 0 else ""
    summary_at = output.find("=== SUMMARY ===")
    summary = output[summary_at:] if summary_at >= 0 else output[-4000:]
    return f"{summary}\n--- first failures ---\n{details}"


def test_schemathesis_finds_no_contract_violation(
    fuzz_stack: tuple[Stack, RunningServer], tmp_path: Path
) -> None:
    stack, _ = fuzz_stack
    api = stack.apis[0]
    token = stack.token(user_id("fuzz"))
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    report_dir = tmp_path / "report"
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{api.url}/schema/openapi.json",
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {token}",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        SEED,
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--exclude-path-regex",
        EXCLUDED_PATHS,
        "--generation-database",
        "none",
        "--request-timeout",
        "15",
        "--workers",
        "1",
        "--report",
        "junit,ndjson",
        "--report-dir",
        str(report_dir),
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
        check=False,
    )
    output = result.stdout + result.stderr
    (tmp_path / "schemathesis.out").write_text(output)
    sent, checks = _run_stats(report_dir)
    print(
        f"\nschemathesis (seed {SEED}, max {MAX_EXAMPLES} examples per operation): {sent} requests sent; "
        f"exit {result.returncode}; output in {tmp_path / 'schemathesis.out'}, reports in {report_dir}"
    )

    assert sent >= 200, f"only {sent} requests were generated:\n{output[-3000:]}"
    assert {"not_a_server_error", "response_schema_conformance", "error_envelope"} <= checks, checks
    assert result.returncode == 0, _summary(output)
