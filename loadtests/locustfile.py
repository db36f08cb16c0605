"""Locust scenarios for AsyncSite Payments: full checkouts, virtual accounts and the polling hot path.

`make loadtest` (scripts/loadtest.py) starts the whole stack and runs this file with the right
options. By hand, against a stack that is already running:

    .venv/bin/python -m locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 \\
        --mock-url http://127.0.0.1:8090 --jwt-secret "$JWT_SECRET" --headless -u 20 -r 5 -t 60s

Users:
- CheckoutUser: issue → the mock's payment window (`POST /_mock/checkout`) → the success or fail
  callback like a browser (302 expected) → poll the status endpoint on the design's schedule
  (0, 1, 2, 3, 5, 5 … s, or the server's `retryAfterMs` with `--poll-mode server`) until the outcome
  is known and, for an approved card, until 50. `--decline-share` of the checkouts use the
  declined test card, `--cancel-share` close the window.
- VirtualAccountUser: issue → VA window → callback (30, awaiting deposit) → deposit via the mock
  → poll until 50 (the deposit reaches the API as a webhook).
- PollingUser: pays a few transactions once, then polls them at a steady pace: the hot path alone.

A checkout that does not settle in time, a wrong redirect or an unexpected status is a Locust
failure, and each checkout is also reported as one `CHECKOUT` request (its whole duration).
At the end the custom metrics (loadtests/metrics.py) are printed, written to
`<--report-dir>/metrics.json` and checked against the thresholds (`--max-*` options); a broken
threshold makes Locust exit with code 1.
"""

from __future__ import annotations

import csv
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import gevent
from gevent import GreenletExit
from locust import FastHttpUser, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

from app.core.auth import TokenAuthority
from loadtests.metrics import (
    CANCELLED,
    CARD,
    COMPLETED,
    DECLINED,
    INTERRUPTED,
    THRESHOLD_FIELDS,
    UNEXPECTED,
    UNPROVISIONED,
    UNSETTLED,
    VIRTUAL_ACCOUNT,
    Breach,
    CheckoutRecord,
    MetricsCollector,
    RequestTotals,
    Thresholds,
    evaluate,
    render,
    summarize,
)

log = logging.getLogger("loadtests")

STATUS_NAME = "/api/payments/[id]/status"
# The design's client schedule: poll at once, then wait 1, 2, 3, then 5 s between polls.
POLL_SCHEDULE_S: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 5.0)
# A server-suggested wait is honoured up to this (a VA awaiting its deposit may suggest a minute).
MAX_SERVER_WAIT_S = 10.0

# The mock's test cards (mock_toss/README.md, "Test cards").
CARD_APPROVE = "4330000000000005"
CARD_DECLINED = "4330000000000013"  # confirm → 403 REJECT_CARD_PAYMENT → 41 with PAY_004

PRODUCTS: tuple[dict[str, Any], ...] = (
    {"productType": "STUDY", "productId": "study_123", "amount": 50_000},
    {"productType": "AI_RESUME", "productId": "resume_credit_10", "amount": 9_900},
)

PAID_CODES = frozenset({40, 45, 50})
PAID_OR_PENDING = frozenset({30, 40, 45, 50})  # 30 while the confirm is under way / reconciled
FAILED_CODES = frozenset({41})

COLLECTOR = MetricsCollector()
STOPPING = threading.Event()  # set while Locust stops the users: start no new checkout


class CheckoutFailed(Exception):
    """Why one checkout did not reach its expected end (the CHECKOUT request's failure)."""


# --- options --------------------------------------------------------------------------------------


def _budget(raw: str) -> float | None:
    """A threshold value: a number, or `off` to disable the check."""
    if raw.strip().lower() in {"off", "none", ""}:
        return None
    return float(raw)


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    # Locust's own add_argument (not an argument group's): it knows env_var, is_secret and the web UI.
    group = parser
    group.add_argument("--mock-url", default="", env_var="LOCUST_MOCK_URL", help="Mock Toss base URL")
    group.add_argument(
        "--jwt-secret", default="", env_var="LOCUST_JWT_SECRET", is_secret=True, help="The API's JWT_SECRET"
    )
    group.add_argument(
        "--frontend-url",
        default="http://frontend.test",
        env_var="LOCUST_FRONTEND_URL",
        help="The API's FRONTEND_BASE_URL (where callbacks must redirect)",
    )
    group.add_argument(
        "--poll-mode",
        choices=["schedule", "server"],
        default="schedule",
        env_var="LOCUST_POLL_MODE",
        help="schedule: wait 0,1,2,3,5,5… s; server: wait retryAfterMs (and send ?attempt=N)",
    )
    group.add_argument(
        "--max-polls", type=int, default=20, env_var="LOCUST_MAX_POLLS", help="Polls per checkout"
    )
    group.add_argument(
        "--decline-share",
        type=float,
        default=0.10,
        env_var="LOCUST_DECLINE_SHARE",
        help="Share of declined cards",
    )
    group.add_argument(
        "--cancel-share",
        type=float,
        default=0.05,
        env_var="LOCUST_CANCEL_SHARE",
        help="Share of window cancels",
    )
    group.add_argument("--checkout-wait-min", type=float, default=1.0, help="Seconds between checkouts (min)")
    group.add_argument("--checkout-wait-max", type=float, default=3.0, help="Seconds between checkouts (max)")
    group.add_argument(
        "--polling-interval", type=float, default=1.0, help="PollingUser: seconds between two polls"
    )
    group.add_argument(
        "--polling-transactions", type=int, default=3, help="PollingUser: transactions paid at start"
    )
    group.add_argument("--checkout-weight", type=int, default=6, help="CheckoutUser weight")
    group.add_argument("--va-weight", type=int, default=1, help="VirtualAccountUser weight")
    group.add_argument("--polling-weight", type=int, default=3, help="PollingUser weight")
    group.add_argument(
        "--report-dir",
        default="",
        env_var="LOCUST_REPORT_DIR",
        help="Write metrics.json and metrics.txt here",
    )
    defaults = Thresholds()
    for name in THRESHOLD_FIELDS:
        default = getattr(defaults, name)
        group.add_argument(
            "--" + name.replace("_", "-"),
            type=_budget,
            default=default,
            help=f"Threshold (default {default}; 'off' disables)",
        )


def _options(environment: Environment) -> Any:
    options = environment.parsed_options
    if options is None:
        raise RuntimeError("run this file with the locust command (it needs its command-line options)")
    return options


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:
        return
    CheckoutUser.weight = options.checkout_weight
    VirtualAccountUser.weight = options.va_weight
    PollingUser.weight = options.polling_weight
    if isinstance(environment.runner, WorkerRunner):
        return
    problems = []
    if not options.mock_url:
        problems.append("--mock-url (or LOCUST_MOCK_URL) is required")
    if not options.jwt_secret:
        problems.append("--jwt-secret (or LOCUST_JWT_SECRET) is required")
    if not 0 <= options.decline_share + options.cancel_share <= 1:
        problems.append("--decline-share + --cancel-share must be between 0 and 1")
    if problems:
        raise SystemExit("loadtests/locustfile.py: " + "; ".join(problems))


@events.test_start.add_listener
def _on_test_start(**_: Any) -> None:
    COLLECTOR.reset()  # a new run in the web UI starts from zero
    STOPPING.clear()
    SENT.reset()
    UNREPORTED_REQUESTS[0] = 0
    WORKERS.clear()


@events.test_stopping.add_listener
def _on_test_stopping(environment: Environment, **_: Any) -> None:
    STOPPING.set()
    options = environment.parsed_options
    if isinstance(environment.runner, MasterRunner) and options is not None and options.headless:
        # the headless master stops only to quit; the web UI's stop sends `stop` to the workers itself
        _wait_for_workers_final(environment)


# --- distributed runs (--master / --worker, or --processes): the custom metrics reach the master --------
#
# Every stats report a worker sends (every 3 s) carries the checkout records it finished since the
# last one and how many HTTP requests it made; the master merges the records into its COLLECTOR and
# keeps a tally per worker. Locust's headless master quits at the run time by sending `quit` and
# waiting only 0.5 s, which would lose every checkout still in flight. So the master first sends
# FINAL_STOP: each worker stops its users (honouring --stop-timeout), sends one last stats report
# and then FINAL_REPORT with its cumulative totals; the master waits for every worker's
# FINAL_REPORT (bounded), and a missing one or totals that disagree are threshold breaches.

FINAL_STOP = "asyncsite_final_stop"  # master → workers
FINAL_REPORT = "asyncsite_final_report"  # worker → master
FINAL_GRACE_SECONDS = 30.0  # beyond --stop-timeout


@dataclass
class WorkerTally:
    """One worker's numbers: what the master received, or (on a worker) what it sent in total."""

    requests: int = 0  # HTTP requests (not the CHECKOUT rows)
    checkouts: int = 0
    polls: int = 0  # status polls of those checkouts
    final: dict[str, int] | None = None  # the worker's own totals, from its FINAL_REPORT

    def add(self, requests: int, records: list[dict[str, Any]]) -> None:
        self.requests += requests
        self.checkouts += len(records)
        self.polls += sum(int(r.get("polls", 0)) for r in records)

    def totals(self) -> dict[str, int]:
        return {"requests": self.requests, "checkouts": self.checkouts, "polls": self.polls}

    def reset(self) -> None:
        self.requests = self.checkouts = self.polls = 0
        self.final = None


SENT = WorkerTally()  # on a worker: everything it reported to the master
UNREPORTED_REQUESTS = [0]  # on a worker: HTTP requests since its last report
WORKERS: dict[str, WorkerTally] = {}  # on the master: per worker id


@events.request.add_listener
def _count_request(request_type: str, **_: Any) -> None:
    if request_type != "CHECKOUT":
        UNREPORTED_REQUESTS[0] += 1


@events.report_to_master.add_listener
def _report_to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
    records = COLLECTOR.drain()
    requests, UNREPORTED_REQUESTS[0] = UNREPORTED_REQUESTS[0], 0
    SENT.add(requests, records)
    data["asyncsite_checkouts"] = records
    data["asyncsite_requests"] = requests


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    records = data.get("asyncsite_checkouts", [])
    COLLECTOR.merge(records)
    WORKERS.setdefault(client_id, WorkerTally()).add(int(data.get("asyncsite_requests", 0)), records)


def _on_final_stop(environment: Environment, **_: Any) -> None:
    """Worker: stop the users (as Locust's own stop does), then the last report and the totals."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        gevent.spawn(runner.stop)  # not in the message loop: stopping may take --stop-timeout


def _on_worker_test_stop(environment: Environment) -> None:
    runner = environment.runner
    if not isinstance(runner, WorkerRunner):
        return
    data: dict[str, Any] = {}
    environment.events.report_to_master.fire(client_id=runner.client_id, data=data)
    runner.send_message("stats", data)  # what the worker's periodic report sends; the master merges it
    runner.send_message(FINAL_REPORT, SENT.totals())


def _on_final_report(environment: Environment, msg: Any, **_: Any) -> None:
    WORKERS.setdefault(msg.node_id, WorkerTally()).final = dict(msg.data or {})


def _wait_for_workers_final(environment: Environment) -> None:
    """Master (headless): stop the workers ourselves and wait until each one sent its final numbers."""
    runner = environment.runner
    if not isinstance(runner, MasterRunner) or not runner.clients.all:
        return
    expected = [client.id for client in runner.clients.all]
    for worker_id in expected:
        WORKERS.setdefault(worker_id, WorkerTally())
    runner.send_message(FINAL_STOP)
    deadline = time.monotonic() + (environment.stop_timeout or 0.0) + FINAL_GRACE_SECONDS
    while time.monotonic() < deadline:
        if all(WORKERS[worker_id].final is not None for worker_id in expected):
            return
        gevent.sleep(0.2)
    log.error("workers without a final report after the stop timeout: %s", expected)


@events.init.add_listener
def _on_init_distributed(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message(FINAL_STOP, _on_final_stop)
        environment.events.test_stop.add_listener(_on_worker_test_stop)
    elif isinstance(runner, MasterRunner):
        runner.register_message(FINAL_REPORT, _on_final_report)


def worker_problems() -> list[str]:
    """Master: workers whose final report is missing or disagrees with what the master received."""
    problems = []
    for worker_id, tally in sorted(WORKERS.items()):
        if tally.final is None:
            problems.append(f"worker {worker_id}: no final report (its last numbers may be missing)")
        elif tally.final != tally.totals():
            problems.append(f"worker {worker_id}: sent {tally.final}, the master received {tally.totals()}")
    return problems


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner) or environment.parsed_options is None:
        return
    _write_final_csv(environment)
    environment.process_exit_code = finish_run(environment)


def _write_final_csv(environment: Environment) -> None:
    """Rewrite `<csv prefix>_stats.csv` / `_failures.csv` from the final statistics.

    Locust rewrites them once a second while it runs, so the requests of the last second
    (and of the stop timeout) can be missing from the files it leaves behind.
    """
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if not prefix:
        return
    writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
    with open(f"{prefix}_stats.csv", "w", newline="") as handle:
        writer.requests_csv(csv.writer(handle))
    with open(f"{prefix}_failures.csv", "w", newline="") as handle:
        writer.failures_csv(csv.writer(handle))


def finish_run(environment: Environment) -> int:
    """Summarize, check the thresholds, print and write the metrics; the exit code Locust should use."""
    options = _options(environment)
    thresholds = Thresholds(**{name: getattr(options, name) for name in THRESHOLD_FIELDS})
    summary = summarize(COLLECTOR.records)
    stats = environment.stats
    status_entry = stats.entries.get((STATUS_NAME, "GET"))
    status_p95 = (
        float(status_entry.get_response_time_percentile(0.95))
        if status_entry is not None and status_entry.num_requests
        else None
    )
    runner = environment.runner
    exceptions = sum(int(e.get("count", 1)) for e in runner.exceptions.values()) if runner else 0
    # CHECKOUT rows repeat failures already counted on the HTTP request that showed them.
    http_requests = sum(e.num_requests for (_, method), e in stats.entries.items() if method != "CHECKOUT")
    http_failures = sum(e.num_failures for (_, method), e in stats.entries.items() if method != "CHECKOUT")
    totals = RequestTotals(
        requests=http_requests, failures=http_failures, task_exceptions=exceptions, status_p95_ms=status_p95
    )
    breaches: list[Breach | str] = [*evaluate(summary, totals, thresholds), *worker_problems()]
    text = render(summary, breaches)
    header = (
        f"AsyncSite Payments load test: {totals.requests} HTTP requests, {totals.failures} failed "
        f"(ratio {totals.fail_ratio:.4f}), status endpoint p95 "
        f"{'-' if status_p95 is None else f'{status_p95:.0f} ms'}, poll mode {options.poll_mode}"
    )
    print(f"\n{header}\n{text}\n", flush=True)
    if options.report_dir:
        folder = Path(options.report_dir)
        folder.mkdir(parents=True, exist_ok=True)
        document = {
            **summary,
            "requests": {
                "total": totals.requests,
                "failures": totals.failures,
                "fail_ratio": totals.fail_ratio,
                "task_exceptions": totals.task_exceptions,
                "status_p95_ms": status_p95,
            },
            "options": {
                "poll_mode": options.poll_mode,
                "max_polls": options.max_polls,
                "decline_share": options.decline_share,
                "cancel_share": options.cancel_share,
                "users": getattr(options, "num_users", None),
                "run_time": getattr(options, "run_time", None),
            },
            "workers": {
                worker_id: {**tally.totals(), "final": tally.final}
                for worker_id, tally in sorted(WORKERS.items())
            },
            "thresholds": {name: getattr(thresholds, name) for name in THRESHOLD_FIELDS},
            "breaches": [str(b) for b in breaches],
            "passed": not breaches,
        }
        (folder / "metrics.json").write_text(json.dumps(document, indent=2) + "\n")
        (folder / "metrics.txt").write_text(f"{header}\n{text}\n")
    return 1 if breaches else 0


# --- one checkout, as the load test follows it ---------------------------------------------------


@dataclass
class Flow:
    kind: str
    started: float = field(default_factory=time.monotonic)
    polls: int = 0
    callback_at: float | None = None
    deposit_at: float | None = None
    settled_at: float | None = None
    provisioned_at: float | None = None
    outcome: str | None = None
    reason: str = ""

    def fail(self, outcome: str, reason: str) -> None:
        if self.outcome is None:
            self.outcome, self.reason = outcome, reason

    def record(self) -> CheckoutRecord:
        def since(start: float | None, end: float | None) -> float | None:
            return None if start is None or end is None else (end - start) * 1000

        return CheckoutRecord(
            kind=self.kind,
            outcome=self.outcome or UNEXPECTED,
            polls=self.polls,
            callback_to_settled_ms=since(self.callback_at, self.settled_at),
            callback_to_provisioned_ms=since(self.callback_at, self.provisioned_at),
            deposit_to_provisioned_ms=since(self.deposit_at, self.provisioned_at),
            total_ms=since(self.started, time.monotonic()),
        )


def _json(response: Any) -> Any:
    try:
        return response.json()
    except Exception:
        return None


def _short(response: Any) -> str:
    text = response.text or ""
    return f"HTTP {response.status_code}: {text[:200]}"


class PaymentsUser(FastHttpUser):
    """What every user shares: its own user id and token, and the checkout steps."""

    abstract = True
    network_timeout = 30.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        options = _options(self.environment)
        self.options = options
        self.mock_url: str = options.mock_url.rstrip("/")
        self.frontend: str = options.frontend_url.rstrip("/")
        self.user_id = f"load-{uuid.uuid4().hex[:20]}"
        token = TokenAuthority(options.jwt_secret).mint(self.user_id, ttl_seconds=12 * 3600)
        self.auth = {"Authorization": f"Bearer {token}"}

    # --- the steps --------------------------------------------------------------------------------

    def issue(self, method: str, *, name: str = "issue") -> dict[str, Any] | None:
        product = random.choice(PRODUCTS)
        body = {**product, "method": method}
        headers = {**self.auth, "Idempotency-Key": uuid.uuid4().hex}
        with self.client.post(
            "/api/payments/issue", json=body, headers=headers, name=name, catch_response=True
        ) as response:
            issued = _json(response)
            if response.status_code != 201 or not isinstance(issued, dict):
                response.failure(f"issue: {_short(response)}")
                return None
            callback_prefix = f"{self.host}/api/payments/callback/"
            if not str(issued.get("successUrl", "")).startswith(callback_prefix):
                response.failure(f"issue: successUrl {issued.get('successUrl')!r} is not our callback")
                return None
            if issued.get("statusCode") != 10 or issued.get("amount") != product["amount"]:
                response.failure(f"issue: unexpected body {issued}")
                return None
            response.success()
            return issued

    def open_window(
        self, issued: dict[str, Any], *, card: str | None, action: str, name: str = "mock: /_mock/checkout"
    ) -> str | None:
        """The buyer in the mock's payment window; the redirect URL it sends the browser to."""
        body: dict[str, Any] = {
            "clientKey": issued["clientKey"],
            "orderId": issued["transactionId"],
            "amount": issued["amount"],
            "orderName": issued["orderName"],
            "method": issued["method"],
            "successUrl": issued["successUrl"],
            "failUrl": issued["failUrl"],
            "action": action,
        }
        if card is not None:
            body["cardNumber"] = card
        with self.client.post(
            f"{self.mock_url}/_mock/checkout", json=body, name=name, catch_response=True
        ) as response:
            answer = _json(response)
            if response.status_code != 200 or not isinstance(answer, dict):
                response.failure(f"mock checkout: {_short(response)}")
                return None
            redirect = str(answer.get("redirectUrl") or "")
            if not redirect.startswith(f"{self.host}/api/payments/callback/"):
                response.failure(f"mock checkout: redirect {redirect!r} is not our callback")
                return None
            response.success()
            return redirect

    def follow_callback(
        self, url: str, transaction_id: str, *, success: bool, code: str | None = None, prefix: str = ""
    ) -> str | None:
        """The browser at our callback: a 302 to the right frontend page. None when right, else why."""
        path = urlsplit(url).path
        name = f"{prefix}callback: {'success' if path.endswith('/success') else 'fail'}"
        with self.client.get(url, allow_redirects=False, name=name, catch_response=True) as response:
            location = response.headers.get("location") or ""
            parts = urlsplit(location)
            page = f"{parts.scheme}://{parts.netloc}{parts.path}"
            params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            expected_page = f"{self.frontend}/payment/{'success' if success else 'fail'}"
            problem = None
            if response.status_code != 302:
                problem = f"callback: expected 302, got {_short(response)}"
            elif page != expected_page:
                problem = f"callback: wrong redirect {location!r} (expected {expected_page})"
            elif params.get("transactionId") != transaction_id:
                problem = f"callback: redirect names {params.get('transactionId')!r}, not {transaction_id}"
            elif code is not None and params.get("errorCode") != code:  # ours; `code` is the PG's
                problem = f"callback: fail errorCode {params.get('errorCode')!r}, expected {code}"
            if problem:
                response.failure(problem)
            else:
                response.success()
            return problem

    def poll(
        self,
        flow: Flow,
        transaction_id: str,
        *,
        allowed: frozenset[int],
        done: Callable[[dict[str, Any]], bool],
        check: Callable[[dict[str, Any]], str | None] | None = None,
    ) -> dict[str, Any] | None:
        """Poll like the frontend until `done(body)`; None when it failed or the budget ran out."""
        attempt = 0
        wait = 0.0
        while flow.polls < self.options.max_polls:
            if wait > 0:
                gevent.sleep(wait)
            url = f"/api/payments/{transaction_id}/status"
            if self.options.poll_mode == "server":
                url += f"?attempt={attempt}"
            with self.client.get(url, headers=self.auth, name=STATUS_NAME, catch_response=True) as response:
                flow.polls += 1
                body = _json(response)
                problem = self._status_problem(response, body, transaction_id, allowed)
                if problem is None and check is not None:
                    problem = check(body)
                if problem is not None:
                    response.failure(problem)
                    flow.fail(UNEXPECTED, problem)
                    return None
                code = body["statusCode"]
                now = time.monotonic()
                if code >= 40 and flow.settled_at is None:
                    flow.settled_at = now
                if code == 50 and flow.provisioned_at is None:
                    flow.provisioned_at = now
                if done(body):
                    response.success()
                    return body
                if flow.polls >= self.options.max_polls:
                    outcome = UNSETTLED if code < 40 else UNPROVISIONED
                    reason = f"{outcome}: still {body['status']} ({code}) after {flow.polls} polls"
                    response.failure(reason)
                    flow.fail(outcome, reason)
                    return None
                response.success()
            wait = self._next_wait(attempt, body)
            attempt += 1
        flow.fail(UNSETTLED, "no poll left")
        return None

    def _next_wait(self, attempt: int, body: dict[str, Any]) -> float:
        scheduled = POLL_SCHEDULE_S[min(attempt + 1, len(POLL_SCHEDULE_S) - 1)]
        if self.options.poll_mode == "server" and isinstance(body.get("retryAfterMs"), int):
            return min(max(body["retryAfterMs"] / 1000, 0.0), MAX_SERVER_WAIT_S)
        return scheduled

    @staticmethod
    def _status_problem(response: Any, body: Any, transaction_id: str, allowed: frozenset[int]) -> str | None:
        if response.status_code != 200:
            return f"status: {_short(response)}"
        if not isinstance(body, dict) or not isinstance(body.get("statusCode"), int):
            return f"status: not a status body: {(response.text or '')[:200]}"
        if body.get("transactionId") != transaction_id:
            return f"status: answered for {body.get('transactionId')!r}"
        code = body["statusCode"]
        if code not in allowed:
            return f"status: unexpected {body.get('status')} ({code}), failure {body.get('failure')}"
        if body.get("isSettled") is not (code >= 40) or body.get("needsPolling") is not (code < 40):
            return f"status: inconsistent hints for {code}: {body}"
        return None

    def report(self, flow: Flow) -> None:
        """Record the checkout in the custom metrics and as one CHECKOUT request in Locust's stats."""
        record = flow.record()
        COLLECTOR.add(record)
        exception = None if record.outcome == COMPLETED else CheckoutFailed(flow.reason or record.outcome)
        self.environment.events.request.fire(
            request_type="CHECKOUT",
            name=f"checkout: {flow.kind}",
            response_time=record.total_ms or 0.0,
            response_length=flow.polls,
            exception=exception,
            context={},
        )

    def run_flow(self, flow: Flow, steps: Callable[[Flow], None]) -> None:
        if STOPPING.is_set():
            # Locust kills a user that was between two tasks when the test stopped; the kill can land
            # just after the user woke up for its next task. Start no checkout then: it would only be
            # cut off at its first request and show up as "interrupted".
            return
        try:
            steps(flow)
        except GreenletExit:
            flow.fail(INTERRUPTED, "stopped by Locust mid-checkout")
            raise
        except Exception as exc:
            flow.fail(UNEXPECTED, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.report(flow)


class CheckoutUser(PaymentsUser):
    """Card checkouts like a browser: approved, declined and cancelled, in configurable shares."""

    weight = 6

    def wait_time(self) -> float:
        return random.uniform(self.options.checkout_wait_min, self.options.checkout_wait_max)

    @task
    def checkout(self) -> None:
        draw = random.random()
        if draw < self.options.decline_share:
            kind = DECLINED
        elif draw < self.options.decline_share + self.options.cancel_share:
            kind = CANCELLED
        else:
            kind = CARD
        self.run_flow(Flow(kind), self._card_checkout)

    def _card_checkout(self, flow: Flow) -> None:
        issued = self.issue("CARD")
        if issued is None:
            return flow.fail(UNEXPECTED, "issue failed")
        tid = issued["transactionId"]
        card = CARD_DECLINED if flow.kind == DECLINED else CARD_APPROVE
        action = "cancel" if flow.kind == CANCELLED else "approve"
        redirect = self.open_window(issued, card=card, action=action)
        if redirect is None:
            return flow.fail(UNEXPECTED, "the payment window failed")
        problem = self.follow_callback(
            redirect, tid, success=flow.kind == CARD, code="PAY_004" if flow.kind == DECLINED else None
        )
        if problem is not None:
            return flow.fail(UNEXPECTED, problem)
        flow.callback_at = time.monotonic()
        if flow.kind == CARD:
            body = self.poll(flow, tid, allowed=PAID_OR_PENDING, done=lambda b: b["statusCode"] == 50)
        else:
            expected = "PAY_004" if flow.kind == DECLINED else None

            def failure_code(b: dict[str, Any]) -> str | None:
                got = (b.get("failure") or {}).get("code")
                if expected is not None and got != expected:
                    return f"status: failure code {got!r}, expected {expected}"
                return None

            body = self.poll(
                flow, tid, allowed=FAILED_CODES, done=lambda b: b["statusCode"] == 41, check=failure_code
            )
        if body is not None:
            flow.outcome = COMPLETED


class VirtualAccountUser(PaymentsUser):
    """Issue → virtual account → deposit via the mock → poll until provisioned (50)."""

    weight = 1

    def wait_time(self) -> float:
        return random.uniform(self.options.checkout_wait_min, self.options.checkout_wait_max)

    @task
    def virtual_account_checkout(self) -> None:
        self.run_flow(Flow(VIRTUAL_ACCOUNT), self._va_checkout)

    def _va_checkout(self, flow: Flow) -> None:
        issued = self.issue("VIRTUAL_ACCOUNT", name="issue (VA)")
        if issued is None:
            return flow.fail(UNEXPECTED, "issue failed")
        tid = issued["transactionId"]
        redirect = self.open_window(issued, card=None, action="approve", name="mock: /_mock/checkout (VA)")
        if redirect is None:
            return flow.fail(UNEXPECTED, "the payment window failed")
        problem = self.follow_callback(redirect, tid, success=True, prefix="VA ")
        if problem is not None:
            return flow.fail(UNEXPECTED, problem)
        flow.callback_at = time.monotonic()

        def has_account(b: dict[str, Any]) -> str | None:
            return None if b.get("virtualAccount") else f"status: no virtualAccount while waiting: {b}"

        # The page after the window: one poll shows the account to pay into.
        waiting = self.poll(
            flow, tid, allowed=frozenset({30}), done=lambda b: b["statusCode"] == 30, check=has_account
        )
        if waiting is None:
            return None
        with self.client.post(
            f"{self.mock_url}/_mock/virtual-accounts/{tid}/deposit",
            json={"depositorName": "load"},
            name="mock: deposit",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"deposit: {_short(response)}")
                return flow.fail(UNEXPECTED, "the deposit failed")
            response.success()
        flow.deposit_at = time.monotonic()
        body = self.poll(flow, tid, allowed=PAID_OR_PENDING, done=lambda b: b["statusCode"] == 50)
        if body is not None:
            flow.outcome = COMPLETED
        return None


class PollingUser(PaymentsUser):
    """Pays a few transactions once, then polls them at a steady pace: the status endpoint alone."""

    weight = 3

    def on_start(self) -> None:
        super().on_start()
        self.transaction_ids: list[str] = []
        self._task_started = time.monotonic()
        for _ in range(self.options.polling_transactions):
            issued = self.issue("CARD", name="setup: issue")
            if issued is None:
                continue
            redirect = self.open_window(
                issued, card=CARD_APPROVE, action="approve", name="setup: mock checkout"
            )
            if redirect is None:
                continue
            tid = issued["transactionId"]
            if self.follow_callback(redirect, tid, success=True, prefix="setup: ") is None:
                self.transaction_ids.append(tid)

    def wait_time(self) -> float:
        # constant pacing: one poll every --polling-interval seconds, however long the poll took
        return max(0.0, self.options.polling_interval - (time.monotonic() - self._task_started))

    @task
    def poll_existing(self) -> None:
        self._task_started = time.monotonic()
        if not self.transaction_ids:
            return
        tid = random.choice(self.transaction_ids)
        with self.client.get(
            f"/api/payments/{tid}/status", headers=self.auth, name=STATUS_NAME, catch_response=True
        ) as response:
            problem = self._status_problem(response, _json(response), tid, PAID_OR_PENDING)
            if problem is None:
                response.success()
            else:
                response.failure(problem)
