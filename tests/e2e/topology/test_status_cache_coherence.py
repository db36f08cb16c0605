"""The status poll's per-process cache stays coherent across processes (app/core/status_cache.py).

Two API replicas (A, B) and one arq worker over one MariaDB and one Redis database. The mock
Toss sends its webhooks to A only, so B never writes a transaction itself: the only way B's
cached view of a transaction can change before it expires is the status-change bus
(app/core/status_changes.py). STATUS_CACHE_TTL_SECONDS is 60, so a view B missed an
invalidation for stays visible for a minute: every bound below is far shorter than that, and
the TTL cannot be what makes these tests pass.

Every poll of B is recorded; per transaction, each poller's sequence of status codes must
never go backwards. Every wait is a bounded poll.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.support.servers import RunningServer, free_port
from tests.support.stack import Stack, running_stack

from .helpers import (
    STUDY,
    SUCCESS_PAGE,
    WEBHOOK_PATH,
    issue,
    landed_on,
    metric_value,
    metrics_text,
    mock_toss_on,
    open_window,
    statuses,
    user_id,
)

TTL_SECONDS = 60  # a stale view would outlive every test here
CHECKOUTS = 10  # concurrent card checkouts in the cross-process test
WARM_POLLS = 5  # polls of B before the write: the first fills B's cache, the rest hit it
POLL_EVERY = 0.02
CATCH_UP_BOUND = 3.0  # ≪ TTL_SECONDS; from a committed write (A's 302, or the DB showing it) to B serving it
GRANT_BOUND = 15.0  # from A's 302 to the worker's grant (50) in the database
DEPOSIT_BOUND = 10.0  # from the deposit to B showing 50 (≪ TTL_SECONDS)
SUBSCRIPTION_BOUND = 10.0  # for B's listener to notice the kill and subscribe again
HAMMER_PAUSE = 0.005

SUBSCRIBED_LINE = "status-change subscription active"
LOST_LINE = "status-change subscription lost"

# Continuous polling keeps the pooled connections busy; the 2 s expiry keeps httpx from reusing
# one that sat idle long enough for uvicorn (5 s keep-alive) to close it under us.
POLL_LIMITS = httpx.Limits(max_connections=60, max_keepalive_connections=60, keepalive_expiry=2.0)


@dataclass
class Topology:
    stack: Stack
    mock: RunningServer
    a: RunningServer  # receives the callbacks and the webhooks: it (and the worker) write
    b: RunningServer  # only polled: it never writes

    def b_cache_counts(self) -> tuple[float, float]:
        """(hits, misses) of B's own process: /metrics sums every process of the stack."""
        return _process_counter(self.stack, self.b, "hit"), _process_counter(self.stack, self.b, "miss")


def _process_counter(stack: Stack, server: RunningServer, result: str) -> float:
    # The process started, and its children: granian (the default) serves from a worker process.
    pids = [server.process.pid, *(c.pid for c in psutil.Process(server.process.pid).children(recursive=True))]
    folder_of_all = Path(stack.env["PROMETHEUS_MULTIPROC_DIR"])
    sources = [
        folder_of_all / f"counter_{pid}.db" for pid in pids if (folder_of_all / f"counter_{pid}.db").exists()
    ]
    if not sources:
        return 0.0
    folder = tempfile.mkdtemp(prefix="one-process-metrics-")
    try:
        for source in sources:
            shutil.copy(source, folder)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=folder)
        exposition = generate_latest(registry).decode()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return metric_value(exposition, "payments_status_cache_total", result=result)


def _wait_for_log(server: RunningServer, needle: str, *, count: int, within: float) -> str:
    deadline = time.monotonic() + within
    while True:
        log = server.log()
        if log.count(needle) >= count:
            return log
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"{server.url}: {count} × {needle!r} expected in its log within {within:.0f} s, "
                f"saw {log.count(needle)}:\n{log[-3000:]}"
            )
        time.sleep(0.05)


@pytest.fixture(scope="module")
def topology(mysql_url: str) -> Iterator[Topology]:
    mock_port = free_port()
    with running_stack(
        mysql_url=mysql_url,
        toss_url=f"http://127.0.0.1:{mock_port}",
        apis=2,
        workers=1,
        env={"STATUS_CACHE_TTL_SECONDS": str(TTL_SECONDS), "RATE_LIMIT_ISSUE_PER_MINUTE": "0"},
    ) as stack:
        a, b = stack.apis
        # Webhooks to A only: B must learn every change from the bus.
        with mock_toss_on(mock_port, webhook_urls=[f"{a.url}{WEBHOOK_PATH}"]) as mock:
            # Until its listener is subscribed a replica reads every poll from the database.
            for api in (a, b):
                _wait_for_log(api, SUBSCRIBED_LINE, count=1, within=SUBSCRIPTION_BOUND)
            yield Topology(stack=stack, mock=mock, a=a, b=b)


@pytest.fixture
async def db(mysql_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(mysql_url, pool_size=5, max_overflow=10)
    yield engine
    await engine.dispose()


@pytest.fixture
async def clients(topology: Topology) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with (
        httpx.AsyncClient(timeout=10.0, limits=POLL_LIMITS) as http,
        httpx.AsyncClient(base_url=topology.mock.url, timeout=10.0) as pg,
    ):
        yield http, pg


# --- polling B ------------------------------------------------------------------------------------


async def poll_b(
    http: httpx.AsyncClient, topo: Topology, headers: Mapping[str, str], tid: str
) -> dict[str, Any]:
    response = await http.get(f"{topo.b.url}/api/payments/{tid}/status", headers=dict(headers))
    assert response.status_code == 200, (tid, response.status_code, response.text)
    body: dict[str, Any] = response.json()
    return body


@dataclass
class Poller:
    """One poller's view of one transaction at B, in the order the answers arrived."""

    name: str
    tid: str
    codes: list[int] = field(default_factory=list)

    def regressions(self) -> list[tuple[int, int, int]]:
        """(index, before, after) wherever a later answer showed a lower status code."""
        return [
            (i, self.codes[i - 1], self.codes[i])
            for i in range(1, len(self.codes))
            if self.codes[i] < self.codes[i - 1]
        ]


class Hammer:
    """Background pollers: one task per transaction, polling B back to back until stopped."""

    def __init__(self, http: httpx.AsyncClient, topo: Topology) -> None:
        self._http = http
        self._topo = topo
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.pollers: list[Poller] = []

    def add(self, tid: str, headers: Mapping[str, str]) -> None:
        poller = Poller(name="hammer", tid=tid)
        self.pollers.append(poller)
        self._tasks.append(asyncio.create_task(self._run(poller, headers)))

    async def _run(self, poller: Poller, headers: Mapping[str, str]) -> None:
        while not self._stop.is_set():
            body = await poll_b(self._http, self._topo, headers, poller.tid)
            poller.codes.append(int(body["statusCode"]))
            await asyncio.sleep(HAMMER_PAUSE)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)  # re-raises a poller's failure


@dataclass
class Checked:
    """What one checked transaction showed at B."""

    tid: str
    poller: Poller
    catch_up_40: float = 0.0  # A's 302 → B serves ≥ 40
    catch_up_50: float = 0.0  # the database shows 50 → B serves 50


async def wait_until_b_shows(
    http: httpx.AsyncClient,
    topo: Topology,
    headers: Mapping[str, str],
    poller: Poller,
    at_least: int,
    *,
    since: float,
    within: float,
    after: str = "the write that made it so committed",
) -> float:
    """Poll B every 20 ms until it answers ≥ `at_least`; the seconds from `since` until it did."""
    deadline = since + within
    while True:
        body = await poll_b(http, topo, headers, poller.tid)
        code = int(body["statusCode"])
        poller.codes.append(code)
        now = time.monotonic()
        if code >= at_least:
            return now - since
        assert now < deadline, (
            f"{poller.tid}: B still serves {code}, not ≥ {at_least}, {now - since:.2f} s after {after} "
            f"(bound {within} s; cache TTL {TTL_SECONDS} s): B's cached view was not invalidated. "
            f"B's {len(poller.codes)} answers to this poller end with {poller.codes[-12:]}"
        )
        await asyncio.sleep(POLL_EVERY)


async def wait_for_db(engine: AsyncEngine, tid: str, wanted: int, *, within: float) -> float:
    """Poll MariaDB every 20 ms until `tid` is at `wanted`; the monotonic time it was first seen."""
    deadline = time.monotonic() + within
    while True:
        code = (await statuses(engine, [tid])).get(tid)
        now = time.monotonic()
        if code == wanted:
            return now
        assert now < deadline, f"{tid} is at {code} in the database, not {wanted}, after {within} s"
        await asyncio.sleep(POLL_EVERY)


async def warm_b(
    http: httpx.AsyncClient, topo: Topology, headers: Mapping[str, str], poller: Poller, expected: int
) -> dict[str, Any]:
    """Poll B a few times while the transaction sits at `expected`: B caches that view."""
    body: dict[str, Any] = {}
    for _ in range(WARM_POLLS):
        body = await poll_b(http, topo, headers, poller.tid)
        poller.codes.append(int(body["statusCode"]))
        await asyncio.sleep(POLL_EVERY)
    assert poller.codes[-WARM_POLLS:] == [expected] * WARM_POLLS, (
        f"{poller.tid}: B should serve {expected} before the write, served {poller.codes}"
    )
    return body


async def card_checkout_seen_by_b(
    topo: Topology,
    http: httpx.AsyncClient,
    pg: httpx.AsyncClient,
    db: AsyncEngine,
    hammer: Hammer,
    label: str,
) -> Checked:
    """Issue at A, cache the 10 at B, callback at A; B must follow A's and the worker's writes."""
    user = user_id(label)
    headers = topo.stack.headers(user)
    issued = await issue(http, headers, STUDY, base_url=topo.a.url)
    tid: str = issued["transactionId"]
    window = await open_window(pg, issued)
    assert window.redirect_url.startswith(f"{topo.a.url}/api/payments/callback/success?"), window
    checked = Checked(tid=tid, poller=Poller(name="checker", tid=tid))

    await warm_b(http, topo, headers, checked.poller, 10)
    hammer.add(tid, headers)

    callback = await http.get(window.redirect_url)  # A: 10 → 30 → 40 → 45, committed before the 302
    committed = time.monotonic()
    assert landed_on(callback) == SUCCESS_PAGE, callback.headers.get("location")
    checked.catch_up_40 = await wait_until_b_shows(
        http, topo, headers, checked.poller, 40, since=committed, within=CATCH_UP_BOUND, after="A's 302"
    )

    # The grant (45 → 50) is written by the worker, a third process.
    granted = await wait_for_db(db, tid, 50, within=GRANT_BOUND)
    checked.catch_up_50 = await wait_until_b_shows(
        http,
        topo,
        headers,
        checked.poller,
        50,
        since=granted,
        within=CATCH_UP_BOUND,
        after="the database showed the worker's grant (50)",
    )
    assert checked.poller.codes[-1] == 50, checked.poller.codes
    return checked


def assert_never_backwards(pollers: list[Poller]) -> None:
    backwards = {f"{p.name}:{p.tid}": p.regressions() for p in pollers if p.regressions()}
    assert not backwards, (
        f"B's answers went backwards (index, before, after) for {len(backwards)} poller(s): {backwards}"
    )


def summary(name: str, values: list[float]) -> str:
    """The catch-up latencies of one kind, printed by the tests (visible with -s)."""
    ms = sorted(round(v * 1000, 1) for v in values)
    return f"{name}: n={len(ms)} min={ms[0]} ms median={ms[len(ms) // 2]} ms max={ms[-1]} ms"


# --- the tests ------------------------------------------------------------------------------------


async def test_b_follows_writes_of_a_and_of_the_worker(
    topology: Topology, clients: tuple[httpx.AsyncClient, httpx.AsyncClient], db: AsyncEngine
) -> None:
    http, pg = clients
    hits_before, _ = topology.b_cache_counts()
    hammer = Hammer(http, topology)
    try:
        async with asyncio.timeout(40):
            checked = await asyncio.gather(
                *(
                    card_checkout_seen_by_b(topology, http, pg, db, hammer, f"coh{i}")
                    for i in range(CHECKOUTS)
                )
            )
    finally:
        await hammer.stop()
    hits_after, _ = topology.b_cache_counts()

    print(
        "\n"
        + summary("A's 302 → B ≥ 40", [c.catch_up_40 for c in checked])
        + "\n"
        + summary("worker's 50 in DB → B 50", [c.catch_up_50 for c in checked])
    )
    assert_never_backwards([c.poller for c in checked] + hammer.pollers)
    # The stale views were really served from B's cache (else nothing here tested the cache) ...
    assert hits_after - hits_before >= CHECKOUTS * (WARM_POLLS - 1), (hits_before, hits_after)
    # ... and the worker's write had a cached 45 at B to invalidate for most transactions.
    saw_45 = [p.tid for p in hammer.pollers if 45 in p.codes]
    print(f"B served 45 (before the worker's 50) for {len(saw_45)} of {CHECKOUTS} transactions")
    assert len(saw_45) >= CHECKOUTS // 2, (
        f"B served 45 to the hammer for only {len(saw_45)} of {CHECKOUTS} transactions: the worker's "
        f"write was barely exercised; {[p.codes[-5:] for p in hammer.pollers]}"
    )


async def test_b_sees_a_virtual_account_deposit(
    topology: Topology, clients: tuple[httpx.AsyncClient, httpx.AsyncClient], db: AsyncEngine
) -> None:
    http, pg = clients
    user = user_id("coh-va")
    headers = topology.stack.headers(user)
    issued = await issue(http, headers, {**STUDY, "method": "VIRTUAL_ACCOUNT"}, base_url=topology.a.url)
    tid: str = issued["transactionId"]
    poller = Poller(name="checker", tid=tid)
    hammer = Hammer(http, topology)
    try:
        async with asyncio.timeout(30):
            window = await open_window(pg, issued)
            await warm_b(http, topology, headers, poller, 10)
            hammer.add(tid, headers)
            callback = await http.get(window.redirect_url)  # confirm → WAITING_FOR_DEPOSIT: 30 + account
            committed = time.monotonic()
            assert landed_on(callback) == SUCCESS_PAGE, callback.headers.get("location")
            issued_latency = await wait_until_b_shows(
                http, topology, headers, poller, 30, since=committed, within=CATCH_UP_BOUND, after="A's 302"
            )
            body = await warm_b(http, topology, headers, poller, 30)  # B caches the 30 with its account
            account = body["virtualAccount"]
            assert account and account.get("accountNumber"), body

            hits_before, _ = topology.b_cache_counts()
            deposit = await pg.post(f"/_mock/virtual-accounts/{tid}/deposit", json={})
            deposited = time.monotonic()
            assert deposit.status_code == 200, deposit.text
            # The webhook goes to A, which queues it; the worker writes 40 → 45, then grants 50.
            shown = await wait_until_b_shows(
                http,
                topology,
                headers,
                poller,
                50,
                since=deposited,
                within=DEPOSIT_BOUND,
                after="the deposit (webhook to A, then the worker writes 40, 45, 50)",
            )
            in_db = (await statuses(db, [tid]))[tid]
    finally:
        await hammer.stop()
    hits_after, _ = topology.b_cache_counts()

    print(
        f"\nVA: A's 302 → B shows 30 in {issued_latency * 1000:.1f} ms; "
        f"deposit → B shows 50 in {shown * 1000:.0f} ms (bound {DEPOSIT_BOUND} s, TTL {TTL_SECONDS} s)"
    )
    assert in_db == 50, in_db
    assert poller.codes[-1] == 50, poller.codes
    assert_never_backwards([poller, *hammer.pollers])
    assert hits_after > hits_before, "B never served the waiting-for-deposit view from its cache"
    assert 30 in hammer.pollers[0].codes, hammer.pollers[0].codes


async def test_b_resubscribes_after_losing_its_subscription(
    topology: Topology, clients: tuple[httpx.AsyncClient, httpx.AsyncClient], db: AsyncEngine
) -> None:
    http, pg = clients
    b = topology.b
    log_before = b.log()
    lost_before = log_before.count(LOST_LINE)
    active_before = log_before.count(SUBSCRIBED_LINE)

    # Kill this stack's subscriptions only (its Redis database), not other sessions' on the server.
    client = redis.Redis.from_url(topology.stack.env["REDIS_URL"])
    try:
        db_index = client.connection_pool.connection_kwargs["db"]
        ours = [
            entry for entry in client.client_list(_type="pubsub") if int(entry.get("db", -1)) == int(db_index)
        ]
        assert ours, f"no pubsub connection on Redis db {db_index}: the replicas are not subscribed"
        killed = sum(int(client.client_kill_filter(_id=entry["id"])) for entry in ours)
    finally:
        client.close()
    assert killed >= 2, f"killed {killed} pubsub connection(s) of db {db_index}; expected A's and B's"

    log = await asyncio.to_thread(
        _wait_for_log, b, LOST_LINE, count=lost_before + 1, within=SUBSCRIPTION_BOUND
    )
    lost_at = _nth_index(log, LOST_LINE, lost_before)  # the log only grows: the offset stays valid
    log = await asyncio.to_thread(
        _wait_for_log, b, SUBSCRIBED_LINE, count=active_before + 1, within=SUBSCRIPTION_BOUND
    )
    assert SUBSCRIBED_LINE in log[lost_at:], (
        f"B logged no {SUBSCRIBED_LINE!r} after {LOST_LINE!r}:\n{log[lost_at:][-3000:]}"
    )

    hammer = Hammer(http, topology)
    hits_before, _ = topology.b_cache_counts()
    try:
        async with asyncio.timeout(30):
            checked = await asyncio.gather(
                *(card_checkout_seen_by_b(topology, http, pg, db, hammer, f"coh-re{i}") for i in range(3))
            )
    finally:
        await hammer.stop()
    hits_after, _ = topology.b_cache_counts()

    print(
        f"\nafter the resubscription ({killed} pubsub connections killed):\n"
        + summary("A's 302 → B ≥ 40 (resubscribed)", [c.catch_up_40 for c in checked])
        + "\n"
        + summary("worker's 50 in DB → B 50 (resubscribed)", [c.catch_up_50 for c in checked])
    )
    assert_never_backwards([c.poller for c in checked] + hammer.pollers)
    # Coherent again: B caches views once more (an incoherent B would read every poll from the DB).
    assert hits_after - hits_before >= len(checked) * (WARM_POLLS - 1), (hits_before, hits_after)


def _nth_index(text: str, needle: str, n: int) -> int:
    """Where the (n+1)-th occurrence of `needle` starts (ValueError when there are fewer)."""
    at = -1
    for _ in range(n + 1):
        at = text.index(needle, at + 1)
    return at


async def test_metrics_show_b_served_polls_from_its_cache(
    topology: Topology, clients: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    http, _ = clients
    # Runs after the tests above (file order); one more cached poll series makes it stand alone too.
    headers = topology.stack.headers(user_id("coh-metrics"))
    issued = await issue(http, headers, STUDY, base_url=topology.a.url)
    await warm_b(http, topology, headers, Poller(name="checker", tid=issued["transactionId"]), 10)
    async with httpx.AsyncClient(base_url=topology.b.url, timeout=10.0) as api:
        exposition = await metrics_text(api)
    hits = metric_value(exposition, "payments_status_cache_total", result="hit")
    misses = metric_value(exposition, "payments_status_cache_total", result="miss")
    subscribed = metric_value(exposition, "payments_status_change_bus_total", event="subscribed")
    own_hits, own_misses = topology.b_cache_counts()
    print(
        f"\n/metrics on B: cache hit={hits:.0f} miss={misses:.0f}; B's own process: hit={own_hits:.0f} "
        f"miss={own_misses:.0f}; bus subscribed={subscribed:.0f}"
    )
    assert hits > 0, f"payments_status_cache_total{{result='hit'}} is {hits} on B's /metrics"
    assert own_hits > 0, "B's own process never answered a poll from its cache"
    assert subscribed >= 2, f"expected A's and B's subscriptions in /metrics, saw {subscribed}"
