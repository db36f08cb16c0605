"""Locust's distributed mode (`make loadtest WORKERS=2`): a master and two worker processes.

Like the smoke run, it runs `scripts/loadtest.py` as a subprocess against the whole local stack,
here with `--workers 2`. The master merges Locust's request statistics itself; the custom metrics
(checkout records, polls, callback → settled times) reach it in the workers' reports
(loadtests/locustfile.py, "distributed runs"). The test checks that both workers made requests and
that the merged numbers are the sums of what each worker says it sent.
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

from tests.e2e.load.test_locust_smoke import NO_LATENCY_THRESHOLDS
from tests.support.servers import REDIS_HOST_URL, REPO_ROOT, port_open

DISTRIBUTED_REDIS_DB = "4"  # the smoke run uses 8, make loadtest 7, make bench 6, the test suite 9–15
RUN_SECONDS = 90  # the whole subprocess: stack up, 10 s of load, checkouts in flight, stack down

pytestmark = pytest.mark.slow


def _require(name: str, port: int) -> None:
    if not port_open(port):
        pytest.fail(f"{name} is not reachable on 127.0.0.1:{port}: run `make services`", pytrace=False)


def test_two_workers_report_to_one_master_and_the_custom_metrics_add_up(tmp_path: Path) -> None:
    _require("MariaDB", 3306)
    _require("Redis", urlsplit(REDIS_HOST_URL).port or 6379)
    report = tmp_path / "report"
    command = [
        sys.executable,
        str(REPO_ROOT / "scripts" / "loadtest.py"),
        "--workers",
        "2",
        "--users",
        "6",
        "--spawn-rate",
        "6",
        "--run-time",
        "10s",
        "--stop-timeout",
        "30s",
        "--api-workers",
        "1",
        "--database",
        f"payments_load_distributed_{os.getpid()}",
        "--drop-database",
        "--redis-db",
        DISTRIBUTED_REDIS_DB,
        "--redis-url",
        REDIS_HOST_URL,
        "--report-dir",
        str(report),
        "--",
        # 6 users over 2 workers: checkouts and VAs on both, back to back
        "--checkout-weight",
        "4",
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
    result = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=RUN_SECONDS, check=False
    )
    output = f"{result.stdout}\n{result.stderr}"[-8000:]
    assert result.returncode == 0, output

    locust = json.loads((report / "command.json").read_text())
    assert "--master" in locust["locust"] and len(locust["workers"]) == 2, locust

    with (report / "locust_stats.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    aggregated = next(row for row in rows if row["Name"] == "Aggregated")
    assert int(aggregated["Failure Count"]) == 0, output
    checkout_rows = sum(int(row["Request Count"]) for row in rows if row["Type"] == "CHECKOUT")
    http_requests = int(aggregated["Request Count"]) - checkout_rows

    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["passed"] is True and metrics["breaches"] == [], metrics["breaches"]
    workers = metrics["workers"]
    assert len(workers) == 2, workers
    for worker_id, tally in workers.items():
        # each worker made requests and finished checkouts, and its final totals are what the
        # master received from it
        assert tally["requests"] > 0 and tally["checkouts"] > 0 and tally["polls"] > 0, (worker_id, tally)
        assert tally["final"] == {k: tally[k] for k in ("requests", "checkouts", "polls")}, (worker_id, tally)

    # Locust's merged request statistics and the custom metrics agree with the per-worker sums.
    assert sum(t["requests"] for t in workers.values()) == http_requests == metrics["requests"]["total"]
    totals = metrics["totals"]
    assert totals["interrupted"] == 0 and totals["completed"] == totals["started"], totals
    assert sum(t["checkouts"] for t in workers.values()) == totals["started"] == checkout_rows
    card, va = metrics["polls_per_checkout"], metrics["polls_per_va_checkout"]
    assert card["count"] + va["count"] == totals["started"]
    merged_polls = round(card["mean"] * card["count"] + (va["mean"] or 0) * va["count"])
    assert sum(t["polls"] for t in workers.values()) == merged_polls, (workers, card, va)
    assert metrics["callback_to_settled_ms"]["count"] == card["count"]
    assert (report / "report.html").exists()
