"""The contract fuzzer's configuration and command line, shared by `make test` and `make fuzz`.

test_openapi_fuzz.py runs it briefly inside the suite; scripts/fuzz.py runs it at scale. Both use
every built-in check plus `error_envelope` (schemathesis_hooks.py), the same per-operation
exclusions (OPERATION_RULES) and the same hooks; only the sizes differ (FuzzSize).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
HOOKS = HERE / "schemathesis_hooks.py"
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
DEFAULT_SEED = 20261126
# Not part of the API contract: Prometheus' scrape endpoint and the development-only demo pages.
EXCLUDED_PATHS = r"^/(metrics|demo)(/|$)"

# Every check stays on for every operation; only what a schema cannot state is relaxed, per
# operation and per status code.
OPERATION_RULES = """
[[operations]]
# positive_data_acceptance (ST202) sends schema-valid bodies and wants them accepted. Issuing is
# priced by the product catalog: a schema-valid `amount` that is not the catalog's price is
# PAY_007 (400) by design (docs/api.md), and the schema cannot list prices. An Idempotency-Key the
# fuzzer already used with another body is PAY_009 (422) by design (docs/api.md): a schema cannot
# describe the keys' history. Only 400 and 422 are added to the check's defaults; the other
# checks (schema, envelope, 5xx, ...) still apply to these answers.
include-name = "POST /api/payments/issue"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
# Money is an integer on the wire, strictly (house rule): JSON Schema's "integer" also admits 1.0,
# which the service refuses with 400 PAY_000 rather than silently truncating an amount. A reused
# Idempotency-Key with another body is PAY_009 (422), as for issuing.
include-name = "POST /api/payments/{transaction_id}/refund"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
# `status` filters by status names or codes, comma-separated, in any case ("created,40"); an
# unknown one is PAY_000 (400) by design. A JSON schema could only state that with a pattern that
# spells every case variant, and Litestar documents an optional query string as `string | null`,
# which schemathesis sends as the text "null".
include-name = "GET /api/payments"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]

[[operations]]
# Toss sends two body shapes (PAYMENT_STATUS_CHANGED with data.orderId, DEPOSIT_CALLBACK flat with
# orderId) and adds fields without notice, so the document keeps the body an open JSON object. A
# schema-valid object that names no payment is malformed by design (400 PAY_000, issue 5); every
# other check (envelope, schema of answers, 5xx) still applies.
include-name = "POST /webhooks/payments/toss"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401"]
"""


@dataclass(frozen=True, slots=True)
class FuzzSize:
    """How much to generate: the fuzzing phase per operation, the stateful phase in scenarios."""

    examples_per_operation: int
    stateful_scenarios: int
    stateful_steps: int


def config_text(size: FuzzSize) -> str:
    """The schemathesis.toml of a run: the operation rules plus the phases' sizes."""
    return (
        OPERATION_RULES
        + f"""
[phases.fuzzing.generation]
max-examples = {size.examples_per_operation}

[phases.stateful]
max-steps = {size.stateful_steps}

[phases.stateful.generation]
max-examples = {size.stateful_scenarios}
"""
    )


def schemathesis_command(
    *,
    config_file: Path,
    schema_url: str,
    token: str,
    seed: int,
    report_dir: Path,
    extra: Iterable[str] = (),
) -> list[str]:
    """`schemathesis run` with every check, all four phases, a fixed seed and no example database."""
    return [
        str(SCHEMATHESIS),
        "--config-file",
        str(config_file),
        "--no-color",
        "run",
        schema_url,
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {token}",
        "--seed",
        str(seed),
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
        *extra,
    ]


def hook_environment(*, journal: Path | None = None, mock_toss_url: str | None = None) -> dict[str, str]:
    """What schemathesis_hooks.py reads: the hooks file itself, the journal, the mock's URL."""
    env = {"SCHEMATHESIS_HOOKS": str(HOOKS)}
    if journal is not None:
        env["FUZZ_JOURNAL"] = str(journal)
    if mock_toss_url:
        env["FUZZ_MOCK_TOSS_URL"] = mock_toss_url
    return env


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The hooks' journal: one entry per request the fuzzer sent (a torn last line is skipped)."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries


def status_class(status: int) -> str:
    return "no answer" if status == 0 else f"{status // 100}xx"


@dataclass
class JournalTally:
    """Requests by phase, operation and status class, and the bad answers (5xx, broken envelope)."""

    requests: int
    by_phase: Counter[str]
    by_class: Counter[str]
    by_operation: dict[str, Counter[str]]
    server_errors: list[dict[str, Any]]
    envelope_violations: list[dict[str, Any]]


def tally(entries: list[dict[str, Any]]) -> JournalTally:
    by_operation: dict[str, Counter[str]] = {}
    for entry in entries:
        by_operation.setdefault(entry["operation"], Counter())[status_class(entry["status"])] += 1
    return JournalTally(
        requests=len(entries),
        by_phase=Counter(entry["phase"] for entry in entries),
        by_class=Counter(status_class(entry["status"]) for entry in entries),
        by_operation=by_operation,
        server_errors=[entry for entry in entries if entry["status"] >= 500],
        envelope_violations=[entry for entry in entries if entry.get("envelope")],
    )


def recorded_stats(report_dir: Path) -> tuple[int, set[str]]:
    """Interactions schemathesis recorded (check probes included) and the checks it ran, from NDJSON."""
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


def failures_excerpt(output: str, limit: int = 6000) -> str:
    """schemathesis' summary plus the start of its failure details."""
    start = output.find("=== FAILURES ===")
    details = output[start : start + limit] if start >= 0 else ""
    summary_at = output.find("=== SUMMARY ===")
    summary = output[summary_at:] if summary_at >= 0 else output[-4000:]
    return f"{summary}\n--- first failures ---\n{details}"


def links_line(output: str) -> str | None:
    """schemathesis' `API Links: n covered / m selected / k total` line, when it printed one."""
    for line in output.splitlines():
        if "API Links:" in line:
            return line.strip()
    return None
