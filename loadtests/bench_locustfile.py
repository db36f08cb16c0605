"""Locust users for scripts/bench.py: one kind of request per run, no think time.

Used for (d), the full checkout (issue → mock payment window → success callback), which wrk
cannot chain across two servers, and for every measurement when wrk is not available.
Configured by environment variables (scripts/bench.py sets them):

    BENCH_MODE       live | status | issue | issue_idem | checkout
    BENCH_TARGETS    file of "token transactionId" lines
    BENCH_MOCK_URL   the mock Toss (checkout mode)
    BENCH_WARMUP     seconds whose requests are not counted (statistics reset after them)
    BENCH_RESULT     where to write the JSON result
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, constant, events, task
from locust.env import Environment
from locust.runners import WorkerRunner

MODE = os.environ.get("BENCH_MODE", "live")
MOCK_URL = os.environ.get("BENCH_MOCK_URL", "").rstrip("/")
WARMUP_S = float(os.environ.get("BENCH_WARMUP", "0") or 0)
RESULT = os.environ.get("BENCH_RESULT", "")
FRONTEND_SUCCESS = (
    os.environ.get("BENCH_FRONTEND_URL", "http://frontend.test").rstrip("/") + "/payment/success"
)
ISSUE_BODY = {"productType": "STUDY", "productId": "study_123", "amount": 50_000}
CARD_APPROVE = "4330000000000005"


def _load_targets() -> list[tuple[str, str]]:
    path = os.environ.get("BENCH_TARGETS")
    if not path:
        return []
    pairs = []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            pairs.append((parts[0], parts[1]))
    return pairs


TARGETS = _load_targets()
WINDOW: dict[str, float] = {}


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return

    def start_measuring() -> None:
        environment.stats.reset_all()
        WINDOW["start"] = time.time()

    WINDOW.clear()
    if WARMUP_S > 0:
        gevent.spawn_later(WARMUP_S, start_measuring)
    else:
        WINDOW["start"] = time.time()


@events.test_stopping.add_listener
def _on_test_stopping(environment: Environment, **_: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        WINDOW["end"] = time.time()


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner) or not RESULT:
        return
    seconds = WINDOW.get("end", time.time()) - WINDOW.get("start", time.time())
    entries = {}
    for (name, method), entry in environment.stats.entries.items():
        entries[f"{method} {name}"] = {
            "requests": entry.num_requests,
            "failures": entry.num_failures,
            "p50_ms": entry.get_response_time_percentile(0.5) if entry.num_requests else None,
            "p99_ms": entry.get_response_time_percentile(0.99) if entry.num_requests else None,
        }
    total = environment.stats.total
    document = {
        "mode": MODE,
        "seconds": seconds,
        "entries": entries,
        "total": {"requests": total.num_requests, "failures": total.num_failures},
        "errors": [str(e.error) for e in environment.stats.errors.values()][:10],
    }
    Path(RESULT).write_text(json.dumps(document, indent=2) + "\n")


class BenchUser(FastHttpUser):
    wait_time = constant(0)
    network_timeout = 30.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.counter = random.randrange(1_000_000)

    def _target(self) -> tuple[str, str]:
        self.counter += 1
        return TARGETS[self.counter % len(TARGETS)]

    @task
    def hit(self) -> None:
        if MODE == "live":
            self.client.get("/health/live", name="live")
        elif MODE == "status":
            token, tid = self._target()
            self.client.get(
                f"/api/payments/{tid}/status", headers={"Authorization": f"Bearer {token}"}, name="status"
            )
        elif MODE in ("issue", "issue_idem"):
            token, _ = self._target()
            headers = {"Authorization": f"Bearer {token}"}
            if MODE == "issue_idem":
                headers["Idempotency-Key"] = uuid.uuid4().hex
            self.client.post("/api/payments/issue", json=ISSUE_BODY, headers=headers, name=MODE)
        elif MODE == "checkout":
            self.checkout()
        else:
            raise RuntimeError(f"unknown BENCH_MODE {MODE!r}")

    def checkout(self) -> None:
        """issue → mock payment window → success callback (302 to the success page): one CHECKOUT."""
        token, _ = self._target()
        started = time.perf_counter()
        problem = None
        response = self.client.post(
            "/api/payments/issue",
            json=ISSUE_BODY,
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex},
            name="issue",
        )
        issued = response.json() if response.status_code == 201 else None
        if issued is None:
            problem = f"issue: HTTP {response.status_code}"
        else:
            window = self.client.post(
                f"{MOCK_URL}/_mock/checkout",
                json={
                    "clientKey": issued["clientKey"],
                    "orderId": issued["transactionId"],
                    "amount": issued["amount"],
                    "orderName": issued["orderName"],
                    "method": "CARD",
                    "successUrl": issued["successUrl"],
                    "failUrl": issued["failUrl"],
                    "cardNumber": CARD_APPROVE,
                },
                name="mock checkout",
            )
            redirect = window.json().get("redirectUrl") if window.status_code == 200 else None
            if not redirect:
                problem = f"mock checkout: HTTP {window.status_code}"
            else:
                with self.client.get(
                    redirect, allow_redirects=False, name="callback", catch_response=True
                ) as callback:
                    location = callback.headers.get("location") or ""
                    if callback.status_code != 302 or not location.startswith(FRONTEND_SUCCESS):
                        problem = f"callback: HTTP {callback.status_code} → {location[:120]}"
                        callback.failure(problem)
                    else:
                        callback.success()
        self.environment.events.request.fire(
            request_type="CHECKOUT",
            name="checkout",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=RuntimeError(problem) if problem else None,
            context={},
        )
