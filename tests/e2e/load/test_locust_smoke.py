"""The Locust smoke run inside `make test`: a short load test against the whole local stack.

It runs `scripts/loadtest.py` (MariaDB database of its own, Redis db 8, mock Toss, API, worker,
Locust) as a subprocess: Locust monkey-patches the standard library with gevent, so it must never
be imported into the pytest process.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.servers import REDIS_HOST_URL, REPO_ROOT, port_open

SMOKE_REDIS_DB = "8"  # make loadtest uses 7, make bench 6, the test suite 9–15
# Latency budgets are for `make loadtest` on a quiet machine, not for a test: the smoke run checks
# what happened (no failure, every checkout provisioned), never how fast (see loadtests/README.md).
NO_LATENCY_THRESHOLDS = [
    "--max-callback-to-settled-p95-ms",
    "off",
    "--max-callback-to-provisioned-p95-ms",
    "off",
    "--max-status-p95-ms",
    "off",
]

pytestmark = pytest.mark.slow


def _require(name: str, port: int) -> None:
    if not port_open(port):
        pytest.fail(f"{name} is not reachable on 127.0.0.1:{port}: run `make services`", pytrace=False)


def test_locust_smoke_run_has_no_failures_and_provisions_every_checkout(tmp_path: Path) -> None:
    _require("MariaDB", 3306)
    _require("Redis", urlsplit(REDIS_HOST_URL).port or 6379)
    report = tmp_path / "report"
    command = [
        sys.executable,
        str(REPO_ROOT / "scripts" / "loadtest.py"),
        "--users",
        "5",
        "--spawn-rate",
        "5",
        "--run-time",
        "12s",
        "--stop-timeout",
        "60s",
        "--api-workers",
        "1",
        "--database",
        f"payments_load_smoke_{os.getpid()}",
        "--drop-database",
        "--redis-db",
        SMOKE_REDIS_DB,
        "--redis-url",
        REDIS_HOST_URL,
        "--lock-wait",
        "300",
        "--report-dir",
        str(report),
        "--",
        # every user class at least once among 5 users, and checkouts back to back
        "--checkout-weight",
        "3",
        "--va-weight",
        "1",
        "--polling-weight",
        "1",
        "--checkout-wait-min",
        "0.2",
        "--checkout-wait-max",
        "0.8",
        *NO_LATENCY_THRESHOLDS,
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
    output = f"{result.stdout}\n{result.stderr}"[-8000:]
    assert result.returncode == 0, output

    with (report / "locust_stats.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    aggregated = next(row for row in rows if row["Name"] == "Aggregated")
    assert int(aggregated["Request Count"]) > 0, output
    assert int(aggregated["Failure Count"]) == 0, output

    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["passed"] is True and metrics["breaches"] == [], metrics["breaches"]
    assert metrics["requests"]["failures"] == 0
    checkouts = metrics["checkouts"]
    for kind in ("card", "virtual_account"):
        assert checkouts[kind]["started"] > 0, (kind, checkouts)
        assert checkouts[kind]["provisioned"] == checkouts[kind]["started"], (kind, checkouts)
    for kind, counts in checkouts.items():
        assert counts["completed"] == counts["started"], (kind, counts)
    assert metrics["callback_to_provisioned_ms"]["count"] == checkouts["card"]["started"]
    assert (report / "report.html").exists()
