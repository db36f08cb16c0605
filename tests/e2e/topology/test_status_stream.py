"""The status stream (GET /api/payments/{id}/events) across real processes: two API replicas (A, B)
and one arq worker over one MariaDB and a claimed Redis database, and the mock Toss as its own
process with its webhooks to A only.

The stream is opened on B; the payment is made through A (the mock's window, then A's success
callback) and finished by the worker (reconciliation or the webhook job, then the grant), so B
writes nothing: every change reaches B's stream through the status-change bus.

Each state of the walk is held for HOLD_SECONDS before the next one commits, by a MariaDB trigger
on this test's transaction only (`DO SLEEP` in a BEFORE UPDATE trigger: the writer waits inside
its UPDATE, readers are not blocked). Without it 40 → 45 commit a millisecond apart in one process
and the stream, which sends states (not transitions), may rightly show 45 without 40. With it,
every state must arrive, in order, each well within HOLD_SECONDS of its commit (STREAM_HEARTBEAT
stays 15 s, so only the bus can be that quick). The mock's slow card holds the confirm 3 s, so
30 is seen too.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.integration.provisioning.redis_claim import claimed_redis_db
from tests.support.servers import RunningServer, free_port
from tests.support.sse import SseComment, SseEvent, SseItem, sse_items
from tests.support.stack import Stack, running_stack

from .helpers import (
    CARD_SLOW_CONFIRM,
    SUCCESS_PAGE,
    WEBHOOK_PATH,
    issue,
    landed_on,
    metric_value,
    mock_toss_on,
    open_window,
    user_id,
)

HOLD_SECONDS = 0.6  # each state stays at least this long before the next commits (the trigger)
BUS_BOUND = 1.0  # from a commit (seen in MariaDB) to B's stream sending it
WALK = [10, 30, 40, 45, 50]
SUBSCRIBED_LINE = "status-change subscription active"
STREAM_TIMEOUT = httpx.Timeout(10.0, read=30.0)  # a read waits at most for the next heartbeat and more


@dataclass
class Topology:
    stack: Stack
    mock: RunningServer
    a: RunningServer  # callbacks and webhooks: with the worker, the only writers
    b: RunningServer  # only streams


def _wait_for_log(server: RunningServer, needle: str, *, within: float) -> None:
    deadline = time.monotonic() + within
    while needle not in server.log():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{server.url}: no {needle!r} in its log within {within} s")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def topology(mysql_url: str) -> Iterator[Topology]:
    mock_port = free_port()
    with (
        claimed_redis_db() as redis_db_url,  # our own queue: another run's worker must not take our jobs
        running_stack(
            mysql_url=mysql_url,
            toss_url=f"http://127.0.0.1:{mock_port}",
            apis=2,
            workers=1,
            env={"REDIS_URL": redis_db_url, "RATE_LIMIT_ISSUE_PER_MINUTE": "0"},
        ) as stack,
    ):
        a, b = stack.apis
        extra = ["--slow-confirm-seconds", "3"]
        with mock_toss_on(mock_port, webhook_urls=[f"{a.url}{WEBHOOK_PATH}"], extra_args=extra) as mock:
            for api in (a, b):
                _wait_for_log(api, SUBSCRIBED_LINE, within=10.0)
            yield Topology(stack=stack, mock=mock, a=a, b=b)


@pytest.fixture
async def db(mysql_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(mysql_url, pool_size=3)
    yield engine
    await engine.dispose()


@contextlib.asynccontextmanager
async def each_state_held(db: AsyncEngine, transaction_id: str, seconds: float) -> AsyncIterator[None]:
    """A trigger that makes every status change of this one transaction wait `seconds` in its UPDATE."""
    name = f"hold_{secrets.token_hex(6)}"
    async with db.begin() as conn:
        await conn.execute(
            text(
                f"CREATE TRIGGER {name} BEFORE UPDATE ON transactions FOR EACH ROW "
                f"IF NEW.transaction_id = :tid AND NEW.status <> OLD.status THEN DO SLEEP({seconds:.3f}); END IF"
            ).bindparams(tid=transaction_id)
        )
    try:
        yield
    finally:
        async with db.begin() as conn:
            await conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))


@dataclass
class Watched:
    """When each status first showed in MariaDB (polled every 20 ms)."""

    first_seen: dict[int, float] = field(default_factory=dict)
    saw_the_end: asyncio.Event = field(default_factory=asyncio.Event)


async def watch_database(db: AsyncEngine, transaction_id: str, watched: Watched, stop: asyncio.Event) -> None:
    query = text("SELECT status FROM transactions WHERE transaction_id = :tid")
    while not stop.is_set():
        async with db.connect() as conn:
            status = (await conn.execute(query, {"tid": transaction_id})).scalar_one()
        watched.first_seen.setdefault(int(status), time.monotonic())
        if int(status) == WALK[-1]:
            watched.saw_the_end.set()
        await asyncio.sleep(0.02)


@dataclass
class Received:
    status_code: int | None = None
    items: list[SseItem] = field(default_factory=list)
    ended: bool = False

    @property
    def events(self) -> list[SseEvent]:
        return [item for item in self.items if isinstance(item, SseEvent)]

    @property
    def codes(self) -> list[int]:
        return [int(event.json()["statusCode"]) for event in self.events]


async def read_stream(
    http: httpx.AsyncClient,
    url: str,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    into: Received | None = None,
    first_event: asyncio.Event | None = None,
) -> Received:
    """Read a stream to its end (bounded by the caller), recording everything."""
    received = into or Received()
    async with http.stream("GET", url, params=params, headers=headers, timeout=STREAM_TIMEOUT) as response:
        received.status_code = response.status_code
        if response.status_code != 200:
            await response.aread()
            return received
        async for item in sse_items(response.aiter_lines()):
            received.items.append(item)
            if first_event is not None and isinstance(item, SseEvent):
                first_event.set()
    received.ended = True
    return received


def open_streams(exposition: str) -> float:
    return metric_value(exposition, "payments_status_streams_open")


async def test_a_stream_on_b_follows_a_payment_made_through_a_and_resumes_without_loss(
    topology: Topology, db: AsyncEngine
) -> None:
    buyer = user_id("stream")
    headers = topology.stack.headers(buyer)
    async with (
        httpx.AsyncClient(timeout=10.0) as http,
        httpx.AsyncClient(base_url=topology.mock.url, timeout=10.0) as pg,
    ):
        issued = await issue(http, headers, base_url=topology.a.url)
        tid, token = issued["transactionId"], issued["streamToken"]
        events_url = f"{topology.b.url}/api/payments/{tid}/events"
        watched, stop = Watched(), asyncio.Event()
        async with each_state_held(db, tid, HOLD_SECONDS):
            watcher = asyncio.create_task(watch_database(db, tid, watched, stop))
            live, opened = Received(), asyncio.Event()
            stream = asyncio.create_task(
                read_stream(http, events_url, params={"streamToken": token}, into=live, first_event=opened)
            )
            try:
                async with asyncio.timeout(10):
                    await opened.wait()  # 10, before anything is paid
                assert open_streams(await metrics_text_of(http, topology.b)) >= 1

                window = await open_window(pg, issued, card=CARD_SLOW_CONFIRM)
                callback = await http.get(f"{topology.a.url}{window.path_and_query}")
                assert landed_on(callback) == SUCCESS_PAGE

                async with asyncio.timeout(60):
                    await stream  # ends by itself after 50
                async with asyncio.timeout(5):  # the poller may see 50 a little after the stream did
                    await watched.saw_the_end.wait()
            finally:
                stop.set()
                stream.cancel()
                await asyncio.gather(stream, watcher, return_exceptions=True)

        # Every state, in order, none twice, with growing ids; then the stream ended by itself.
        assert live.status_code == 200
        assert live.codes == WALK, live.codes
        ids = [int(event.id or -1) for event in live.events]
        assert ids == sorted(set(ids)) and ids[0] >= 1, ids
        assert live.ended
        assert all(event.event == "status" for event in live.events)
        # Through the bus: each within BUS_BOUND of MariaDB showing it (the heartbeat is 15 s).
        lags = {
            code: round(event.received_at - watched.first_seen[code], 3)
            for code, event in zip(live.codes, live.events, strict=True)
            if code != 10
        }
        print(f"commit (seen in MariaDB) → B's stream, seconds: {lags}")
        assert all(lag <= BUS_BOUND for lag in lags.values()), lags
        # The data is the status answer (B's; its streamToken too, minted within the same minute).
        final = live.events[-1].json()
        answer = (await http.get(f"{topology.b.url}/api/payments/{tid}/status", headers=headers)).json()
        assert final == answer
        assert final["statusCode"] == 50 and final["retryAfterMs"] is None

        # Reconnect after a missed change, on either replica: the current (final) state, the same id.
        for api in (topology.b, topology.a):
            resumed = await read_stream(
                http,
                f"{api.url}/api/payments/{tid}/events",
                params={"streamToken": token},
                headers={"Last-Event-ID": live.events[1].id or ""},
            )
            assert resumed.status_code == 200 and resumed.ended
            assert [(e.id, e.json()["statusCode"]) for e in resumed.events] == [(live.events[-1].id, 50)]
            # Everything seen: 204, so an EventSource stops reconnecting.
            done = await http.get(
                f"{api.url}/api/payments/{tid}/events",
                params={"streamToken": token},
                headers={"Last-Event-ID": live.events[-1].id or ""},
            )
            assert done.status_code == 204, done.text

        # Every stream gave its slot back; the streaming replica logged no error.
        assert open_streams(await metrics_text_of(http, topology.b)) == 0
        log = topology.b.log()
        assert "Traceback" not in log and '"level": "ERROR"' not in log, log[-3000:]


async def test_a_client_that_leaves_mid_stream_is_let_go_quietly(topology: Topology) -> None:
    buyer = user_id("leaver")
    headers = topology.stack.headers(buyer)
    async with httpx.AsyncClient(timeout=10.0) as http:
        issued = await issue(http, headers, base_url=topology.a.url)
        tid = issued["transactionId"]
        url = f"{topology.b.url}/api/payments/{tid}/events"
        for _ in range(3):  # more than once: a slot that leaked would be counted
            async with http.stream("GET", url, params={"streamToken": issued["streamToken"]}) as response:
                assert response.status_code == 200
                async for item in sse_items(response.aiter_lines()):
                    if isinstance(item, SseEvent):
                        break  # leave after the first event: the connection is closed
        deadline = time.monotonic() + 5
        while open_streams(await metrics_text_of(http, topology.b)) != 0:
            assert time.monotonic() < deadline, "a stream whose client left is still counted"
            await asyncio.sleep(0.1)
        # The bearer header works on the same endpoint, with comments (none here) and events alike.
        async with http.stream("GET", url, headers=headers) as response:
            assert response.status_code == 200
            async for item in sse_items(response.aiter_lines()):
                assert not isinstance(item, SseComment) or item.text == "keep-alive"
                if isinstance(item, SseEvent):
                    assert item.json()["statusCode"] == 10
                    break
    log = topology.b.log()
    assert "Traceback" not in log and '"level": "ERROR"' not in log, log[-3000:]


async def metrics_text_of(http: httpx.AsyncClient, api: RunningServer) -> str:
    response = await http.get(f"{api.url}/metrics")
    assert response.status_code == 200, response.text
    return response.text


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
async def test_sigterm_ends_open_streams_at_once_and_the_process_exits_cleanly(
    topology: Topology, server: str
) -> None:
    # uvicorn waits up to 20 s (timeout_graceful_shutdown) for responses to finish, then cancels
    # them with an ERROR; granian waits for them until its supervisor kills the worker (20 s). A
    # stream lasts minutes, so the app ends its streams when told (app/http_server.py,
    # app/granian_server.py).
    c = topology.stack.start_api(env={"SERVER": server})  # a third replica of the stack, stopped here
    try:
        _wait_for_log(c, SUBSCRIBED_LINE, within=10.0)
        headers = topology.stack.headers(user_id("sigterm"))
        async with httpx.AsyncClient(timeout=10.0) as http:
            issued = await issue(http, headers, base_url=c.url)
            received, opened = Received(), asyncio.Event()
            url = f"{c.url}/api/payments/{issued['transactionId']}/events"
            stream = asyncio.create_task(
                read_stream(
                    http,
                    url,
                    params={"streamToken": issued["streamToken"]},
                    into=received,
                    first_event=opened,
                )
            )
            async with asyncio.timeout(10):
                await opened.wait()
            signalled = time.monotonic()
            c.process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                await stream
            ended_after = time.monotonic() - signalled
        assert received.ended and received.codes == [10]  # ended cleanly, no final state: reconnect elsewhere
        assert ended_after < 3.0, ended_after
        exit_code = await asyncio.to_thread(c.process.wait, 10)
        assert exit_code in (0, -signal.SIGTERM)  # a lone uvicorn re-raises the SIGTERM it captured
        assert time.monotonic() - signalled < 8.0
        log = c.log()
        assert "timeout graceful shutdown exceeded" not in log and "Traceback" not in log, log[-3000:]
        assert "refused to gracefully stop" not in log, log[-3000:]  # granian's kill after 20 s
        assert "API process stopped" in log, log[-3000:]  # the lifespan shutdown ran
    finally:
        c.stop()
        topology.stack.apis.remove(c)
