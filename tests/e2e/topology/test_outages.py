"""The database or Redis goes away for 10 s and comes back: nothing is lost, nothing happens twice.

Each test starts a MariaDB and a Redis of its own (`tests/support/private_services.py`: own port,
own data directory; the machine's servers are never touched), a real stack on them (API, arq
worker, mock Toss, a fake study/credit service that counts grants by Idempotency-Key), and
checkouts through the mock's payment window. Then it stops a server while work is in flight:

- MariaDB (SIGKILL, a crash; SIGTERM, a shutdown) while success callbacks wait on the PG's
  confirm (the mock's chaos slows the confirm to 2.5 s: the PG charges, the write that records it
  finds no database) and while grants are in flight (the fake service holds them until the
  database is gone). More callbacks arrive during the 10 s outage. They must all answer a 302 to
  the frontend — the success page ("confirming") or, for a failed payment window, the fail page —
  never a 5xx or a JSON body; the status endpoint and issue answer 503 in the error envelope.
- Redis (SIGKILL; it restarts empty, so the queue is gone) while grants are in flight, with more
  checkouts during the outage whose grants cannot be queued: the sweeper queues them again.

Afterwards, within a bounded wait, every transaction agrees with the PG (DONE → 50, anything else
→ 41), each paid one was approved by exactly one confirm (retries of one Idempotency-Key count
once) and granted exactly once at the downstream service, and each history passes through
10 → 30 → 40 → 45 → 50 once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.support.fake_downstream import FakeDownstream, running_fake_downstream
from tests.support.private_services import PrivateMariaDB, PrivateRedis, private_mariadb, private_redis
from tests.support.servers import RunningServer, free_port
from tests.support.stack import Stack, running_stack

from .helpers import (
    CARD_APPROVE,
    CARD_REJECT_BALANCE,
    CONFIRM_PATH,
    FAIL_PAGE,
    NO_KEEPALIVE,
    RESUME,
    STUDY,
    SUCCESS_PAGE,
    TOSS_BASIC,
    WEBHOOK_PATH,
    Window,
    issue,
    mock_toss_on,
    open_window,
    user_id,
)

pytestmark = pytest.mark.slow

CARD_WINDOW_FAILS = "4330000000000062"  # the window itself fails: the fail redirect, no payment
OUTAGE_SECONDS = 10.0
CONVERGE_WITHIN = 60.0  # from the restart: every transaction settled and agreeing with the PG
SLOW_CONFIRM_MS = 2500  # the PG's confirm latency while the database goes away
PAID_PATH = [10, 30, 40, 45, 50]

# Both tests: short sweeper and reconciler delays (see README "Configuration"), and PG and grant
# timeouts longer than the slow confirm and the held grants, so a request in flight just waits.
OUTAGE_ENV = {
    "RATE_LIMIT_ISSUE_PER_MINUTE": "0",
    "TOSS_READ_TIMEOUT_SECONDS": "10",
    "PROVISIONING_HTTP_TIMEOUT_SECONDS": "15",
    "PROVISIONING_JOB_TIMEOUT_SECONDS": "20",
    "RECONCILE_FIRST_DELAY_SECONDS": "1",
    "RECONCILE_BACKOFF_SCALE": "0.1",
    "SWEEP_INTERVAL_SECONDS": "1",
    "SWEEP_STALE_AFTER_SECONDS": "2",
}


@dataclass
class Checkout:
    """One purchase attempt and what the browser saw."""

    tid: str
    user: str
    amount: int
    card: str
    issued: dict[str, Any]
    window: Window | None = None
    callback_status: int | None = None
    callback_location: str = ""
    callback_body: str = ""
    callback_type: str = ""
    callback_sent_at: float = 0.0
    callback_answered_at: float = 0.0

    @property
    def page(self) -> str:
        """Where the callback sent the browser (scheme, host, path), or "HTTP <status> <body>"."""
        if self.callback_status != 302:
            return f"HTTP {self.callback_status} {self.callback_type} {self.callback_body[:150]}"
        parts = urlsplit(self.callback_location)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"

    @property
    def page_transaction(self) -> str | None:
        values = parse_qs(urlsplit(self.callback_location).query).get("transactionId")
        return values[0] if values else None


@dataclass
class Outage:
    """What happened around the outage, for the checks at the end."""

    checkouts: dict[str, list[Checkout]] = field(default_factory=dict)  # phase → checkouts
    stopped_at: float = 0.0
    restarted_at: float = 0.0
    polls: list[tuple[int, str, Any]] = field(default_factory=list)  # during the outage: (status, type, body)
    issues: list[tuple[int, str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def all(self) -> list[Checkout]:
        return [c for phase in self.checkouts.values() for c in phase]


@contextlib.contextmanager
def outage_stack(
    *, database: PrivateMariaDB, cache: PrivateRedis, downstream: FakeDownstream
) -> Iterator[tuple[Stack, RunningServer]]:
    """One API and one worker on the private servers, then a mock Toss whose webhooks reach the API."""
    mock_port = free_port()
    with running_stack(
        mysql_url=database.url,
        redis_base_url=cache.url,
        toss_url=f"http://127.0.0.1:{mock_port}",
        env={**OUTAGE_ENV, "STUDY_SERVICE_URL": downstream.url, "CREDIT_SERVICE_URL": downstream.url},
    ) as stack:
        hooks = [f"{api.url}{WEBHOOK_PATH}" for api in stack.apis]
        with mock_toss_on(mock_port, webhook_urls=hooks) as mock:
            yield stack, mock


@pytest.fixture
def database() -> Iterator[PrivateMariaDB]:
    with private_mariadb() as server:
        yield server


@pytest.fixture
def cache() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


@pytest.fixture
async def db(database: PrivateMariaDB) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database.url, pool_size=2, pool_pre_ping=True)
    yield engine
    await engine.dispose()


# --- the buyer ---------------------------------------------------------------------------------


async def _issue(
    http: httpx.AsyncClient, stack: Stack, label: str, product: dict[str, Any], card: str
) -> Checkout:
    user = user_id(label)
    issued = await issue(http, stack.headers(user), product, base_url=stack.api_url)
    return Checkout(tid=issued["transactionId"], user=user, amount=issued["amount"], card=card, issued=issued)


async def _open_window(pg: httpx.AsyncClient, checkout: Checkout) -> None:
    checkout.window = await open_window(pg, checkout.issued, card=checkout.card)


async def _deliver_callback(http: httpx.AsyncClient, checkout: Checkout) -> None:
    """The browser follows the PG's redirect to our callback (success or fail URL)."""
    assert checkout.window is not None
    checkout.callback_sent_at = time.monotonic()
    try:
        response = await http.get(checkout.window.redirect_url)
    except httpx.HTTPError as exc:
        checkout.callback_status, checkout.callback_body = -1, repr(exc)
    else:
        checkout.callback_status = response.status_code
        checkout.callback_location = response.headers.get("location", "")
        checkout.callback_type = response.headers.get("content-type", "")
        checkout.callback_body = response.text
    checkout.callback_answered_at = time.monotonic()


async def _pay(http: httpx.AsyncClient, pg: httpx.AsyncClient, checkout: Checkout) -> None:
    await _open_window(pg, checkout)
    await _deliver_callback(http, checkout)


async def _paid_and_granting(
    http: httpx.AsyncClient, pg: httpx.AsyncClient, stack: Stack, downstream: FakeDownstream, label: str
) -> list[Checkout]:
    """8 checkouts paid, their grants arrived at the downstream service and held there (60 s)."""
    downstream.hold(60)
    granting = [
        await _issue(http, stack, f"{label}{i}", STUDY if i % 2 else RESUME, CARD_APPROVE) for i in range(8)
    ]
    await asyncio.gather(*(_pay(http, pg, c) for c in granting))
    for c in granting:
        await downstream.wait_for_arrival(c.tid, within=20)
    return granting


def _envelope(response: httpx.Response) -> tuple[int, str, Any]:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:200]
    return response.status_code, response.headers.get("content-type", ""), body


# --- reading the outcome -----------------------------------------------------------------------


async def _statuses(engine: AsyncEngine, tids: list[str]) -> dict[str, int]:
    query = text("SELECT transaction_id, status FROM transactions WHERE transaction_id IN :ids").bindparams(
        bindparam("ids", expanding=True)
    )
    async with engine.connect() as conn:
        return {str(r[0]): int(r[1]) for r in (await conn.execute(query, {"ids": tids})).all()}


async def _histories(engine: AsyncEngine, tids: list[str]) -> dict[str, list[int]]:
    query = text(
        "SELECT transaction_id, status FROM transaction_history WHERE transaction_id IN :ids ORDER BY id"
    ).bindparams(bindparam("ids", expanding=True))
    found: dict[str, list[int]] = {tid: [] for tid in tids}
    async with engine.connect() as conn:
        for tid, status in (await conn.execute(query, {"ids": tids})).all():
            found[str(tid)].append(int(status))
    return found


async def _pg_truth(pg: httpx.AsyncClient, tids: list[str]) -> dict[str, tuple[str, int | None]]:
    """What the PG holds for each order: (status, totalAmount), ("NOT_FOUND", None) when nothing."""
    truth: dict[str, tuple[str, int | None]] = {}
    for tid in tids:
        response = await pg.get(f"/v1/payments/orders/{tid}", headers={"Authorization": TOSS_BASIC})
        if response.status_code == 404:
            truth[tid] = ("NOT_FOUND", None)
        else:
            assert response.status_code == 200, response.text
            truth[tid] = (response.json()["status"], int(response.json()["totalAmount"]))
    return truth


def _wanted(pg_status: str) -> int:
    return 50 if pg_status == "DONE" else 41


async def _converge(
    outage: Outage, engine: AsyncEngine, pg: httpx.AsyncClient
) -> tuple[dict[str, int], dict[str, tuple[str, int | None]], float]:
    """Wait (bounded) until every transaction is where the PG's truth puts it; returns the last look."""
    tids = [c.tid for c in outage.all]
    deadline = outage.restarted_at + CONVERGE_WITHIN
    while True:
        current = await _statuses(engine, tids)
        truth = await _pg_truth(pg, tids)
        if all(current.get(tid) == _wanted(truth[tid][0]) for tid in tids):
            return current, truth, time.monotonic() - outage.restarted_at
        if time.monotonic() >= deadline:
            return current, truth, time.monotonic() - outage.restarted_at
        await asyncio.sleep(0.5)


async def _check_outcome(
    outage: Outage,
    engine: AsyncEngine,
    pg: httpx.AsyncClient,
    downstream: FakeDownstream,
    label: str,
) -> str:
    """Every transaction agrees with the PG; one approval and one grant per paid one; the summary."""
    problems = outage.problems
    current, truth, converged_in = await _converge(outage, engine, pg)
    tids = [c.tid for c in outage.all]
    by_tid = {c.tid: c for c in outage.all}

    lost = [tid for tid in tids if tid not in current]
    wrong = {
        tid: (current.get(tid), truth[tid][0])
        for tid in tids
        if tid not in lost and current[tid] != _wanted(truth[tid][0])
    }
    if lost or wrong:
        problems.append(
            f"{len(wrong)} of {len(tids)} transactions disagree with the PG {CONVERGE_WITHIN:.0f} s after the "
            f"restart (ours, PG's): {dict(Counter(wrong.values()))}; e.g. {list(wrong.items())[:4]}; lost: {lost}"
        )
    paid = [tid for tid in tids if truth[tid][0] == "DONE"]
    mischarged = {tid: truth[tid] for tid in paid if truth[tid][1] != by_tid[tid].amount}
    if mischarged:
        problems.append(f"the PG charged a different amount: {mischarged}")

    response = await pg.get("/_mock/requests", params={"method": "POST", "path": CONFIRM_PATH})
    assert response.status_code == 200, response.text
    approvals: dict[str, set[str | None]] = {}
    confirm_calls: Counter[str] = Counter()
    for entry in response.json()["requests"]:
        confirm_calls[entry["orderId"]] += 1
        if entry["status"] == 200:
            approvals.setdefault(entry["orderId"], set()).add(entry["idempotencyKey"])
    twice = {
        tid: len(approvals.get(tid, ())) for tid in tids if len(approvals.get(tid, ())) != int(tid in paid)
    }
    if twice:
        problems.append(
            f"approved confirms per order (distinct Idempotency-Keys) other than one per payment: {twice}"
        )

    grants = {tid: len(downstream.grants(tid)) for tid in tids}
    wrong_grants = {tid: n for tid, n in grants.items() if n != int(current.get(tid) == 50)}
    if wrong_grants:
        problems.append(
            f"grants at the downstream service other than one per granted transaction: {wrong_grants}"
        )

    histories = await _histories(engine, tids)
    bad_history = {}
    for tid, steps in histories.items():
        distinct = [s for i, s in enumerate(steps) if i == 0 or steps[i - 1] != s]
        repeated = {s: n for s, n in Counter(steps).items() if n > 1 and s != 30}  # 30 also carries notes
        if (current.get(tid) == 50 and distinct != PAID_PATH) or repeated:
            bad_history[tid] = steps
    if bad_history:
        problems.append(f"histories that are not {PAID_PATH} once each: {list(bad_history.items())[:4]}")

    cancels = await pg.get("/_mock/requests", params={"method": "POST", "path": "/v1/payments/*"})
    cancelled = [e["orderId"] for e in cancels.json()["requests"] if e["path"].endswith("/cancel")]
    if cancelled:
        problems.append(f"payments were cancelled (refunded): {cancelled}")

    finals = Counter(current.values())
    return (
        f"{label}: {len(tids)} checkouts ({', '.join(f'{k} {len(v)}' for k, v in outage.checkouts.items())}), "
        f"server down {outage.restarted_at - outage.stopped_at:.1f} s; after the restart "
        f"{'converged' if not wrong and not lost else 'NOT converged'} in {converged_in:.1f} s: "
        f"{finals.get(50, 0)} at 50, {finals.get(41, 0)} at 41; confirms sent {sum(confirm_calls[t] for t in tids)}, "
        f"approved {sum(len(approvals.get(t, ())) for t in tids)} for {len(paid)} payments; "
        f"grants {sum(grants.values())} distinct from {sum(len(downstream.requests(t)) for t in tids)} requests"
    )


def _check_processes(stack: Stack, problems: list[str]) -> None:
    for process in [*stack.apis, *stack.workers]:
        if process.process.poll() is not None:
            log = process.log()
            problems.append(
                f"a stack process (pid {process.process.pid}) exited with {process.process.returncode}:\n"
                f"{log[-1500:]}"
            )


def _check_landings(
    checkouts: list[Checkout], problems: list[str], *, phase: str, fail_allowed: set[str]
) -> None:
    """302 to the frontend, to the success page ("confirming") unless the window itself failed."""
    bad = []
    for c in checkouts:
        expected = FAIL_PAGE if c.card == CARD_WINDOW_FAILS else SUCCESS_PAGE
        allowed = {expected} | ({FAIL_PAGE} if c.card in fail_allowed else set())
        if c.callback_status != 302 or c.page not in allowed or c.page_transaction != c.tid:
            bad.append((c.tid[-8:], c.card[-3:], c.page))
        elif "json" in c.callback_type:  # a browser redirect, not an API answer
            bad.append((c.tid[-8:], c.card[-3:], f"302 with {c.callback_type}"))
    if bad:
        kinds = Counter(page for _, _, page in bad)
        problems.append(
            f"{phase}: {len(bad)} of {len(checkouts)} callbacks did not redirect to the frontend's page for "
            f"their transaction: {dict(kinds)}"
        )


# --- MariaDB goes away ---------------------------------------------------------------------------


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM], ids=["crash", "shutdown"])
async def test_mariadb_down_for_10s_mid_callback_and_mid_grant(
    stop_signal: signal.Signals, database: PrivateMariaDB, cache: PrivateRedis, db: AsyncEngine
) -> None:
    outage = Outage()
    problems = outage.problems
    with (
        running_fake_downstream() as downstream,
        outage_stack(database=database, cache=cache, downstream=downstream) as (stack, mock),
    ):
        async with (
            httpx.AsyncClient(timeout=30.0, limits=NO_KEEPALIVE) as http,
            httpx.AsyncClient(base_url=mock.url, timeout=30.0, limits=NO_KEEPALIVE) as pg,
        ):
            # Phase "granting": paid before the outage; their grants are held at the downstream
            # service until the database is gone, so each answer arrives with no database to record it.
            granting = await _paid_and_granting(http, pg, stack, downstream, "dbA")
            # Phase "confirming": callbacks in flight at the PG's (slow) confirm when the database dies.
            # Phase "during": issued now, paid in the window and called back during the outage.
            confirming_cards = [CARD_APPROVE] * 7 + [CARD_REJECT_BALANCE]
            confirming = [
                await _issue(http, stack, f"dbB{i}", STUDY, card) for i, card in enumerate(confirming_cards)
            ]
            during_cards = [CARD_APPROVE] * 5 + [CARD_REJECT_BALANCE] * 2 + [CARD_WINDOW_FAILS]
            during = [
                await _issue(http, stack, f"dbC{i}", RESUME, card) for i, card in enumerate(during_cards)
            ]
            outage.checkouts = {"granting": granting, "confirming": confirming, "during": during}
            for c in confirming:
                await _open_window(pg, c)
            chaos = await pg.put(
                "/_mock/chaos", json={"seed": 7, "routes": {"confirm": {"latencyMs": SLOW_CONFIRM_MS}}}
            )
            assert chaos.status_code == 200, chaos.text
            in_flight = [asyncio.create_task(_deliver_callback(http, c)) for c in confirming]
            await asyncio.sleep(1.0)  # the callbacks have claimed their transactions and wait on the PG

            # SIGKILL: every connection reset, nothing flushed; SIGTERM: clients told it shuts down.
            await asyncio.to_thread(database.stop, stop_signal)
            outage.stopped_at = time.monotonic()
            await pg.delete("/_mock/chaos")
            await asyncio.sleep(0.5)
            downstream.release()  # the held grants answer now: granted downstream, nowhere to record it

            for c in during:
                await _open_window(pg, c)
                await _deliver_callback(http, c)
                poll = await http.get(
                    f"{stack.api_url}/api/payments/{c.tid}/status", headers=stack.headers(c.user)
                )
                outage.polls.append(_envelope(poll))
                await asyncio.sleep(0.3)
            blocked = await http.post(
                f"{stack.api_url}/api/payments/issue", json=STUDY, headers=stack.headers(user_id("dbX"))
            )
            outage.issues.append(_envelope(blocked))
            await asyncio.gather(*in_flight)

            await asyncio.sleep(max(0.0, outage.stopped_at + OUTAGE_SECONDS - time.monotonic()))
            # Which payments the PG approved while there was no database to record them.
            journal = await pg.get("/_mock/requests", params={"method": "POST", "path": CONFIRM_PATH})
            charged_unrecorded = {e["orderId"] for e in journal.json()["requests"] if e["status"] == 200}
            await asyncio.to_thread(database.start)
            outage.restarted_at = time.monotonic()

            summary = await _check_outcome(outage, db, pg, downstream, f"MariaDB outage ({stop_signal.name})")
        _check_processes(stack, problems)
    print("\n" + summary)

    # The outage really cut work in two: callbacks waiting on the PG, grants waiting downstream.
    not_mid_callback = [
        c.tid for c in confirming if not c.callback_sent_at < outage.stopped_at < c.callback_answered_at
    ]
    if not_mid_callback:
        problems.append(f"callbacks not in flight when MariaDB stopped: {not_mid_callback}")
    not_charged = [c.tid for c in confirming if c.card == CARD_APPROVE and c.tid not in charged_unrecorded]
    if not_charged:
        problems.append(
            f"callbacks whose confirm the PG had not approved before MariaDB came back: {not_charged}"
        )
    not_mid_grant = [
        c.tid
        for c in granting
        if not (requests := downstream.requests(c.tid))
        or not outage.stopped_at < requests[0].answered_at < outage.restarted_at
    ]
    if not_mid_grant:
        problems.append(f"grants not answered while MariaDB was down: {not_mid_grant}")

    _check_landings(granting, problems, phase="before the outage", fail_allowed=set())
    _check_landings(confirming, problems, phase="mid-callback", fail_allowed={CARD_REJECT_BALANCE})
    _check_landings(during, problems, phase="during the outage", fail_allowed={CARD_REJECT_BALANCE})
    # Polls: a view this process cached may still answer 200; a read that needs the database 503.
    bad_polls = [p for p in outage.polls if p[0] != 200 and not _is_unavailable(p)]
    if bad_polls or not any(_is_unavailable(p) for p in outage.polls):
        problems.append(
            f"status polls during the outage (want 503 SERVICE_UNAVAILABLE or 200): {outage.polls}"
        )
    if not all(_is_unavailable(i) for i in outage.issues):
        problems.append(f"issue during the outage (want 503 SERVICE_UNAVAILABLE): {outage.issues}")

    assert not problems, "\n".join(problems)


def _is_unavailable(answer: tuple[int, str, Any]) -> bool:
    status, content_type, body = answer
    return (
        status == 503
        and content_type.startswith("application/json")
        and isinstance(body, dict)
        and set(body) <= {"code", "message", "details"}
        and body.get("code") == "SERVICE_UNAVAILABLE"
    )


# --- Redis goes away -----------------------------------------------------------------------------


async def test_redis_down_for_10s_mid_grant(
    database: PrivateMariaDB, cache: PrivateRedis, db: AsyncEngine
) -> None:
    outage = Outage()
    problems = outage.problems
    with (
        running_fake_downstream() as downstream,
        outage_stack(database=database, cache=cache, downstream=downstream) as (stack, mock),
    ):
        async with (
            httpx.AsyncClient(timeout=30.0, limits=NO_KEEPALIVE) as http,
            httpx.AsyncClient(base_url=mock.url, timeout=30.0, limits=NO_KEEPALIVE) as pg,
        ):
            # Phase "granting": grants in flight (held downstream) when Redis dies; its restart is empty.
            granting = await _paid_and_granting(http, pg, stack, downstream, "rdA")
            # Phase "during": issued, paid and called back while Redis is down: no grant can be queued.
            outage.checkouts = {"granting": granting, "during": []}

            await asyncio.to_thread(cache.stop)
            outage.stopped_at = time.monotonic()
            await asyncio.sleep(0.5)
            downstream.release()

            for i in range(8):
                c = await _issue(http, stack, f"rdC{i}", STUDY if i % 2 else RESUME, CARD_APPROVE)
                outage.checkouts["during"].append(c)
                await _pay(http, pg, c)
                poll = await http.get(
                    f"{stack.api_url}/api/payments/{c.tid}/status", headers=stack.headers(c.user)
                )
                outage.polls.append(_envelope(poll))
            keyed = await http.post(
                f"{stack.api_url}/api/payments/issue",
                json=STUDY,
                headers={**stack.headers(user_id("rdX")), "Idempotency-Key": "outage-1"},
            )
            outage.issues.append(_envelope(keyed))

            await asyncio.sleep(max(0.0, outage.stopped_at + OUTAGE_SECONDS - time.monotonic()))
            # Their grants were never queued: only the sweeper can find them once Redis is back.
            unqueued = await _statuses(db, [c.tid for c in outage.checkouts["during"]])
            await asyncio.to_thread(cache.start)
            outage.restarted_at = time.monotonic()

            summary = await _check_outcome(outage, db, pg, downstream, "Redis outage")
        _check_processes(stack, problems)
    print("\n" + summary)

    not_mid_grant = [
        c.tid
        for c in granting
        if not (requests := downstream.requests(c.tid))
        or not outage.stopped_at < requests[0].answered_at < outage.restarted_at
    ]
    if not_mid_grant:
        problems.append(f"grants not answered while Redis was down: {not_mid_grant}")
    during = outage.checkouts["during"]
    if set(unqueued.values()) != {45}:
        problems.append(f"checkouts during the Redis outage were not all waiting at 45: {unqueued}")
    _check_landings(granting, problems, phase="before the outage", fail_allowed=set())
    _check_landings(during, problems, phase="during the outage", fail_allowed=set())
    # The database is up: polls answer from it.
    if any(p[0] != 200 for p in outage.polls):
        problems.append(f"status polls during the Redis outage (want 200): {outage.polls}")
    # An Idempotency-Key cannot be honoured without Redis: 503, never a 500 or a second transaction.
    if not all(_is_unavailable(i) for i in outage.issues):
        problems.append(
            f"issue with an Idempotency-Key during the outage (want 503 SERVICE_UNAVAILABLE): {outage.issues}"
        )

    assert not problems, "\n".join(problems)
