"""Scale-out proof: two API replicas and two arq workers on one MariaDB and one Redis.

Every checkout's success callback reaches BOTH replicas at once (a double-delivered browser
redirect), the mock Toss sends its webhooks to both replicas too, and halfway through one worker
is killed with SIGKILL in the middle of a grant. Whatever races, every transaction must end
granted exactly once: one confirm at the PG, one grant, one history row per state.

To be sure the kill lands mid-grant, one extra "probe" checkout buys an AI_RESUME credit whose
grant goes to a fake credit service that holds the request: the worker that picked the probe's
grant is the one killed, while that grant is in flight. The 200 study checkouts are granted in
the local ledger (the `entitlements` table).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.support.fake_downstream import FakeDownstream, running_fake_downstream
from tests.support.servers import RunningServer
from tests.support.stack import Stack, WorkerProcess

from .helpers import (
    CONFIRM_PATH,
    NO_KEEPALIVE,
    PENDING_CODES,
    RESUME,
    STUDY,
    SUCCESS_PAGE,
    issue,
    landed_on,
    open_window,
    stack_with_mock,
    statuses,
    user_id,
    wait_for_statuses,
)

CHECKOUTS = int(os.environ.get("TOPOLOGY_CHECKOUTS", "200"))
CONCURRENCY = 20
USERS = 20
CALLBACK_PHASE_TIMEOUT = 75.0
# app/provisioning/worker.py: "A crashed worker's job is picked up again after job_timeout + 10 s";
# FAST_ENV's PROVISIONING_JOB_TIMEOUT_SECONDS is 5.
CRASH_RECOVERY_SECONDS = 15.0
RECOVERY_SLACK = 15.0  # a busy 2-core host
EVENTUAL_LIMIT = 80.0  # from the kill: the bound on waiting for the laggards at all
GRANTED_PATH = [10, 30, 40, 45, 50]  # each state exactly once


@pytest.fixture
async def db(mysql_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(mysql_url, pool_size=2)
    yield engine
    await engine.dispose()


@dataclass
class Run:
    """What the load did, for the checks afterwards."""

    owners: dict[str, str] = field(default_factory=dict)  # transactionId → user (study checkouts)
    landings: list[tuple[str, str, str]] = field(default_factory=list)  # (tid, page from A, from B)
    completed: int = 0
    probe: str = ""
    killed_at: float = 0.0
    killed_after: int = 0
    victim: WorkerProcess | None = None


def _page(response: httpx.Response) -> str:
    """Where a callback sent the browser; anything but a 302 is kept as "HTTP <status> <body>"."""
    if response.status_code != 302:
        return f"HTTP {response.status_code} {response.text[:200]}"
    return landed_on(response)


async def _grouped(engine: AsyncEngine, sql: str, ids: list[str]) -> list[tuple[Any, ...]]:
    query = text(sql).bindparams(bindparam("ids", expanding=True))
    async with engine.connect() as conn:
        return [tuple(row) for row in (await conn.execute(query, {"ids": ids})).all()]


async def _pay_at_both_replicas(
    run: Run,
    stack: Stack,
    http: httpx.AsyncClient,
    pg: httpx.AsyncClient,
    user: str,
    issuer: RunningServer,
    other: RunningServer,
    body: dict[str, Any],
    before_callback: Callable[[str], None] | None = None,
) -> str:
    """Issue at `issuer`, pay in the window, then fire the PG's redirect at both replicas at once."""
    issued = await issue(http, stack.headers(user), body, base_url=issuer.url)
    tid: str = issued["transactionId"]
    window = await open_window(pg, issued)
    assert window.redirect_url.startswith(f"{issuer.url}/api/payments/callback/success?")
    if before_callback is not None:
        before_callback(tid)
    at_issuer, at_other = await asyncio.gather(
        http.get(window.redirect_url), http.get(f"{other.url}{window.path_and_query}")
    )
    pages = {issuer.url: _page(at_issuer), other.url: _page(at_other)}
    replica_a, replica_b = stack.apis
    run.landings.append((tid, pages[replica_a.url], pages[replica_b.url]))
    return tid


async def _kill_the_worker_granting_the_probe(
    run: Run,
    stack: Stack,
    http: httpx.AsyncClient,
    pg: httpx.AsyncClient,
    credits: FakeDownstream,
    halfway: asyncio.Event,
) -> None:
    await halfway.wait()
    replica_a, replica_b = stack.apis

    def hold_the_probes_grant(tid: str) -> None:
        run.probe = tid
        credits.hold(60, key=tid)  # its grant request will hang at the credit service

    await _pay_at_both_replicas(
        run, stack, http, pg, user_id("probe"), replica_a, replica_b, RESUME, hold_the_probes_grant
    )
    await credits.wait_for_arrival(run.probe, within=20)  # a worker is inside the probe's grant now
    started = f"→ provision:{run.probe}:provision_grant("
    holder = [worker for worker in stack.workers if started in worker.log()]
    assert len(holder) == 1, [worker.process.pid for worker in holder]
    run.victim = holder[0]
    await asyncio.to_thread(run.victim.kill)  # SIGKILL, mid-grant
    run.killed_at = time.monotonic()
    run.killed_after = run.completed
    credits.release()  # the held request answers a dead connection; later attempts are not held


async def test_two_replicas_two_workers_grant_every_checkout_exactly_once(
    mysql_url: str, db: AsyncEngine
) -> None:
    run = Run()
    with (
        running_fake_downstream() as credits,
        stack_with_mock(
            mysql_url=mysql_url,
            apis=2,
            workers=2,
            env={"RATE_LIMIT_ISSUE_PER_MINUTE": "0", "CREDIT_SERVICE_URL": credits.url},
        ) as (stack, mock),
    ):
        replica_a, replica_b = stack.apis
        assert replica_a.port != replica_b.port
        users = [user_id(f"scale{i}") for i in range(USERS)]
        halfway = asyncio.Event()

        async with (
            httpx.AsyncClient(timeout=30.0, limits=NO_KEEPALIVE) as http,
            httpx.AsyncClient(base_url=mock.url, timeout=30.0, limits=NO_KEEPALIVE) as pg,
        ):
            gate = asyncio.Semaphore(CONCURRENCY)

            async def checkout(i: int) -> None:
                async with gate:
                    # Issue on alternating replicas; the PG's redirect points at the issuing one.
                    issuer, other = (replica_a, replica_b) if i % 2 == 0 else (replica_b, replica_a)
                    user = users[i % USERS]
                    tid = await _pay_at_both_replicas(run, stack, http, pg, user, issuer, other, STUDY)
                    run.owners[tid] = user
                    run.completed += 1
                    if run.completed >= CHECKOUTS // 2:
                        halfway.set()

            started = time.monotonic()
            # A TaskGroup: if one checkout fails, the others are cancelled, not left running.
            async with asyncio.timeout(CALLBACK_PHASE_TIMEOUT), asyncio.TaskGroup() as group:
                group.create_task(_kill_the_worker_granting_the_probe(run, stack, http, pg, credits, halfway))
                for i in range(CHECKOUTS):
                    group.create_task(checkout(i))
            callbacks_done = time.monotonic()
            tids = [*run.owners, run.probe]

            # The promise: a crashed worker's job runs again job_timeout + 10 s after the crash.
            promised = max(callbacks_done, run.killed_at + CRASH_RECOVERY_SECONDS) + RECOVERY_SLACK
            await wait_for_statuses(db, tids, {50}, within=promised - time.monotonic())
            lagging = {tid for tid, code in (await statuses(db, tids)).items() if code != 50}
            # Then wait on (bounded) to see whether the laggards get there at all.
            final = await wait_for_statuses(
                db, tids, {50}, within=max(run.killed_at + EVENTUAL_LIMIT - time.monotonic(), 1.0)
            )
            settled_at = time.monotonic()
            all_granted = len(final) == len(tids) and all(code == 50 for code in final.values())

            journal = await pg.get("/_mock/requests", params={"method": "POST", "path": CONFIRM_PATH})
            assert journal.status_code == 200, journal.text
            confirms = journal.json()["requests"]

            ledger_by_api: dict[str, set[str]] = {}
            for user in users:
                answer = await http.get(f"{replica_b.url}/api/entitlements", headers=stack.headers(user))
                assert answer.status_code == 200, answer.text
                ledger_by_api[user] = {item["transactionId"] for item in answer.json()["items"]}
        probe_grants = credits.grants(run.probe)

        victim = run.victim
        survivor = next(worker for worker in stack.workers if worker is not victim)
        callback_seconds = callbacks_done - started
        print(
            f"\nscale-out: {len(tids)} checkouts ({CHECKOUTS} + the probe), 2 APIs + 2 workers, "
            f"concurrency {CONCURRENCY}: callbacks done in {callback_seconds:.1f} s "
            f"({len(tids) / callback_seconds:.1f} checkouts/s); "
            f"{'all at 50' if all_granted else 'gave up waiting for 50'} after {settled_at - started:.1f} s "
            f"({settled_at - callbacks_done:.1f} s after the last callback, "
            f"{settled_at - run.killed_at:.1f} s after the kill); worker "
            f"{victim.process.pid if victim else '?'} SIGKILLed mid-grant after {run.killed_after} "
            f"checkouts; {len(lagging)} transaction(s) short of 50 {promised - run.killed_at:.0f} s "
            f"after the kill; grant jobs finished by the killed worker: "
            f"{victim.log().count('provision_grant ●') if victim else '?'}, by the survivor: "
            f"{survivor.log().count('provision_grant ●')}"
        )

    # Every check runs; all the problems are reported together.
    problems: list[str] = []
    if len(run.owners) != CHECKOUTS or not run.probe:
        problems.append(f"only {len(run.owners)} of {CHECKOUTS} checkouts (and probe {run.probe!r})")
    if victim is None or victim.process.returncode != -9:
        problems.append(f"no worker was SIGKILLed mid-grant ({victim and victim.process.returncode})")

    # Both replicas answered every double-delivered callback with a 302 to the success page.
    wrong = [landing for landing in run.landings if landing[1:] != (SUCCESS_PAGE, SUCCESS_PAGE)]
    if wrong:
        kinds = Counter(page for landing in wrong for page in landing[1:] if page != SUCCESS_PAGE)
        problems.append(
            f"{len(wrong)} of {len(run.landings)} double-delivered callbacks did not both answer 302 "
            f"to the success page: {dict(kinds)}; e.g. {wrong[:3]}"
        )

    # Nothing stuck: every transaction reached 50 (none left in 10/30/40/45, none failed) ...
    stuck = {tid: code for tid, code in final.items() if code != 50}
    if len(final) != len(tids) or stuck:
        problems.append(
            f"{len(stuck)} of {len(tids)} transactions did not reach 50 even {EVENTUAL_LIMIT:.0f} s after "
            f"the kill: {dict(Counter(stuck.values()))} "
            f"({sum(1 for c in stuck.values() if c in PENDING_CODES)} stuck in {sorted(PENDING_CODES)}); "
            f"e.g. {list(stuck.items())[:5]}"
        )
    # ... and in time: the killed worker's jobs ran again within job timeout + 10 s (+ slack).
    if lagging:
        problems.append(
            f"{len(lagging)} transaction(s) still short of 50 {promised - run.killed_at:.0f} s after a "
            f"worker was SIGKILLed mid-grant ({promised - callbacks_done:.0f} s after the last "
            f"callback; the probe whose grant was cut off is {'among' if run.probe in lagging else 'not among'} "
            f"them), though a crashed worker's job should run again {CRASH_RECOVERY_SECONDS:.0f} s after "
            f"the crash (PROVISIONING_JOB_TIMEOUT_SECONDS + 10); all were at 50 only "
            f"{settled_at - run.killed_at:.0f} s after the kill; e.g. {sorted(lagging)[:3]}"
        )

    # The PG processed exactly one confirm per transaction, each answered 200. A confirm whose
    # answer came after the gateway's read timeout is sent again with the same Idempotency-Key,
    # which Toss (and the mock) replays instead of processing: one key per transaction is the
    # at-most-once promise, however many times the request crossed the wire.
    keys_per_order: dict[str, set[str | None]] = {}
    for entry in confirms:
        keys_per_order.setdefault(entry["orderId"], set()).add(entry["idempotencyKey"])
    never = set(tids) - set(keys_per_order)
    twice = {
        tid: sorted(map(str, keys)) for tid, keys in keys_per_order.items() if len(keys) != 1 or None in keys
    }
    if never or twice:
        problems.append(f"confirms: never for {sorted(never)[:5]}, under more than one key (or none) {twice}")
    not_ok = [entry for entry in confirms if entry["status"] != 200]
    if not_ok:
        problems.append(f"{len(not_ok)} confirms did not answer 200: {not_ok[:3]}")

    # One grant per transaction: study checkouts in the ledger (for their owner), the probe at the
    # credit service (however many times its request was sent, one grant).
    study = list(run.owners)
    grants = await _grouped(
        db,
        "SELECT transaction_id, user_id, COUNT(*) FROM entitlements "
        "WHERE transaction_id IN :ids GROUP BY transaction_id, user_id",
        tids,
    )
    bad_grants = [row for row in grants if row[2] != 1 or run.owners.get(row[0]) != row[1]]
    if len(grants) != len(study) or bad_grants:
        problems.append(
            f"{len(grants)} ledger rows for {len(study)} study checkouts; wrong: {bad_grants[:5]}"
        )
    for user in users:
        expected = {tid for tid, owner in run.owners.items() if owner == user}
        if ledger_by_api[user] != expected:
            problems.append(f"GET /api/entitlements for {user}: {ledger_by_api[user] ^ expected} differ")
    if len(probe_grants) != 1:
        problems.append(f"the probe {run.probe} was granted {len(probe_grants)} times by the credit service")

    # No transition won twice: each history is 10 → 30 → 40 → 45 → 50, once each.
    history = await _grouped(
        db,
        "SELECT transaction_id, status, COUNT(*) FROM transaction_history "
        "WHERE transaction_id IN :ids GROUP BY transaction_id, status",
        tids,
    )
    by_transaction: dict[str, dict[int, int]] = {}
    for tid, status, count in history:
        by_transaction.setdefault(tid, {})[int(status)] = int(count)
    bad_history = {
        tid: by_transaction.get(tid)
        for tid in tids
        if by_transaction.get(tid) != dict.fromkeys(GRANTED_PATH, 1)
    }
    if bad_history:
        problems.append(
            f"{len(bad_history)} histories are not {GRANTED_PATH} once each: {list(bad_history.items())[:5]}"
        )

    assert not problems, "\n".join(problems)
