#!/usr/bin/env python
"""`make bench-sse`: one API process holding 1,000 status streams (GET /api/payments/{id}/events).

    .venv/bin/python scripts/bench_sse.py                          # 1,000 streams on 500 transactions
    .venv/bin/python scripts/bench_sse.py --streams 2000 --per-transaction 4 --rate 400

What it does, bounded by --time-limit (120 s):

1. a fresh MariaDB database (migrated), then `payments serve --workers 1 --server uvicorn` on a free loopback port
   with MariaDB and Redis (database --redis-db, only its status-change channel is used), and waits
   until its listener is subscribed to the status-change bus;
2. writes the transactions (each of its own user: the per-user cap is never the limit) and opens
   --streams streams with their streamTokens (httpx, one connection each), checking that every
   stream gets its first event (10);
3. idle: --idle-seconds with every stream open and nothing changing (long enough for one
   heartbeat round at STREAM_HEARTBEAT_SECONDS 15);
4. fan-out: writes 10 → 30 for every transaction at --rate writes a second from this process
   (another "replica": its SQL repository, announcing on Redis after each commit), checks that each
   stream got its 30, then 30 → 41 for all (a burst), after which every stream must end by itself;
5. prints the API process's CPU (% of one core) and RSS at each stage, the time to open the
   streams, and the delay from a write to each of its streams' events (p50, p99, max).

CPU and RSS are read with psutil (/proc) for the API process only; the machine's other load is
shown too, as this client (httpx, in this process) shares the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import resource
import secrets
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `python scripts/bench_sse.py` puts scripts/ first, not the root
    sys.path.insert(0, str(REPO_ROOT))

from app.core.domain import Method, ProductType, Status, Transaction, Transition, new_transaction_id  # noqa: E402
from app.core.stream_tokens import StreamTokens  # noqa: E402
from tests.support.servers import REDIS_HOST_URL, RunningServer, free_port, start_server  # noqa: E402
from tests.support.sse import SseComment, SseEvent, sse_items  # noqa: E402

CONNECTIONS_PER_CLIENT = 25


def log(message: str) -> None:
    print(f"[bench-sse] {message}", flush=True)


# --- the stack: a database, one API process ---------------------------------------------------------


async def _admin(admin_url: str, statement: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"{admin_url.rstrip('/')}/mysql")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            async with engine.begin() as conn:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


def start_api(args: argparse.Namespace, database_url: str, jwt_secret: str) -> RunningServer:
    port = free_port()
    env = {
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "DATABASE_POOL_SIZE": "10",
        "REDIS_URL": args.redis_url,
        "JWT_SECRET": jwt_secret,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "LOG_LEVEL": "WARNING",
        "STREAM_HEARTBEAT_SECONDS": str(args.heartbeat),
        # Its own folder: prometheus_client writes its files there (an empty value means the cwd).
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="bench-sse-metrics-"),
    }
    return start_server(
        # uvicorn: one process that both serves and is measured (granian serves from a worker
        # process apart from its supervisor, the process started here)
        ["app.cli", "serve", "--port", str(port), "--workers", "1", "--server", "uvicorn"],
        port=port,
        health_path="/health/ready",
        env=env,
        name="api",
        timeout=60,
        own_group=True,
        grace_seconds=5,
    )


async def wait_subscribed(http: httpx.AsyncClient, api: RunningServer, within: float = 15.0) -> None:
    """Until the API's status-change listener is subscribed (before that, streams poll the database)."""
    deadline = time.monotonic() + within
    while True:
        text = (await http.get(f"{api.url}/metrics")).text
        if any(
            line.startswith('payments_status_change_bus_total{event="subscribed"}')
            and not line.endswith(" 0.0")
            for line in text.splitlines()
        ):
            return
        if time.monotonic() > deadline:
            raise SystemExit("the API's status-change listener did not subscribe")
        await asyncio.sleep(0.1)


async def open_streams_gauge(http: httpx.AsyncClient, api: RunningServer) -> float:
    for line in (await http.get(f"{api.url}/metrics")).text.splitlines():
        if line.startswith("payments_status_streams_open "):
            return float(line.split()[1])
    return 0.0


# --- measuring the API process -------------------------------------------------------------------


@dataclass
class Sample:
    label: str
    seconds: float
    api_cpu_percent: float  # of one core
    api_rss_mib: float
    client_cpu_percent: float
    machine_cpu_percent: float  # of all cores together (100 = every core busy)


class Meter:
    def __init__(self, pid: int) -> None:
        self.api = psutil.Process(pid)
        self.me = psutil.Process()

    def _cpu(self) -> tuple[float, float, float, float]:
        api, me, machine = self.api.cpu_times(), self.me.cpu_times(), psutil.cpu_times()
        busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        return time.monotonic(), api.user + api.system, me.user + me.system, busy

    @contextlib.asynccontextmanager
    async def window(self, label: str, samples: list[Sample]) -> AsyncIterator[None]:
        t0, api0, me0, busy0 = self._cpu()
        yield
        t1, api1, me1, busy1 = self._cpu()
        seconds = max(t1 - t0, 1e-9)
        samples.append(
            Sample(
                label=label,
                seconds=seconds,
                api_cpu_percent=100 * (api1 - api0) / seconds,
                api_rss_mib=self.api.memory_info().rss / 2**20,
                client_cpu_percent=100 * (me1 - me0) / seconds,
                machine_cpu_percent=100 * (busy1 - busy0) / seconds / (os.cpu_count() or 1),
            )
        )

    def rss_mib(self) -> float:
        return float(self.api.memory_info().rss / 2**20)


# --- the streams -----------------------------------------------------------------------------------


@dataclass
class Follower:
    transaction_id: str
    url: str
    codes: list[int] = field(default_factory=list)
    received_at: dict[int, float] = field(default_factory=dict)
    keep_alives: int = 0
    ended: bool = False
    error: str | None = None
    first: asyncio.Event = field(default_factory=asyncio.Event)
    got: dict[int, asyncio.Event] = field(default_factory=dict)

    def waiter(self, code: int) -> asyncio.Event:
        return self.got.setdefault(code, asyncio.Event())


async def follow(http: httpx.AsyncClient, follower: Follower, opening: asyncio.Semaphore) -> None:
    """One stream, recorded in `follower`, until the server ends it."""
    try:
        async with contextlib.AsyncExitStack() as stack:
            async with opening:  # at most so many connections being opened at once
                response = await stack.enter_async_context(http.stream("GET", follower.url))
            if response.status_code != 200:
                follower.error = f"HTTP {response.status_code}: {(await response.aread())[:200]!r}"
                follower.first.set()
                return
            async for item in sse_items(response.aiter_lines()):
                if isinstance(item, SseEvent):
                    code = int(item.json()["statusCode"])
                    follower.codes.append(code)
                    follower.received_at[code] = item.received_at
                    follower.first.set()
                    follower.waiter(code).set()
                elif isinstance(item, SseComment) and item.text == "keep-alive":
                    follower.keep_alives += 1
            follower.ended = True
    except Exception as exc:  # counted and shown: the run fails
        follower.error = repr(exc)
        follower.first.set()


def percentiles_ms(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"


async def write_walk(
    repo: object, transaction_ids: list[str], expected: Status, target: Status, rate: float
) -> dict[str, float]:
    """`expected` → `target` for each transaction, `rate` writes a second; returns when each began."""
    from app.core.sql.transactions import SqlTransactionRepository

    assert isinstance(repo, SqlTransactionRepository)
    started: dict[str, float] = {}
    interval = 1.0 / rate if rate > 0 else 0.0
    begin = time.monotonic()
    for index, tid in enumerate(transaction_ids):
        if interval:
            delay = begin + index * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        started[tid] = time.monotonic()
        moved = await repo.apply(tid, Transition(expected, target, "bench"), now=datetime.now(UTC))
        assert moved, tid
    return started


async def run(args: argparse.Namespace) -> int:
    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.core.sql.transactions import SqlTransactionRepository
    from app.core.status_cache import StatusViewCache
    from app.core.status_changes import RedisStatusChanges
    from app.migrate import upgrade_database

    transactions = args.streams // args.per_transaction
    database_url = f"{args.mysql_admin_url.rstrip('/')}/{args.database}"
    jwt_secret = secrets.token_hex(24)
    await _admin(args.mysql_admin_url, f"DROP DATABASE IF EXISTS `{args.database}`")
    await _admin(args.mysql_admin_url, f"CREATE DATABASE `{args.database}` CHARACTER SET utf8mb4")
    api: RunningServer | None = None
    engine = create_async_engine(database_url, pool_size=5)
    redis = Redis.from_url(args.redis_url)
    samples: list[Sample] = []
    pool: list[httpx.AsyncClient] = []
    try:
        await asyncio.to_thread(upgrade_database, database_url)
        api = await asyncio.to_thread(start_api, args, database_url, jwt_secret)
        meter = Meter(api.process.pid)
        # The streams go through several small clients: an httpx pool's bookkeeping grows with its
        # connections, and one pool of 1,000 makes this client, not the API, the bottleneck.
        limits = httpx.Limits(max_connections=CONNECTIONS_PER_CLIENT, max_keepalive_connections=0)
        timeout = httpx.Timeout(30.0, read=args.heartbeat * 3 + 30)
        pool.extend(
            httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False)
            for _ in range(-(-args.streams // CONNECTIONS_PER_CLIENT))
        )
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as http:  # /metrics
            await wait_subscribed(http, api)
            rss_empty = meter.rss_mib()
            log(f"API pid {api.process.pid} on {api.url}, RSS {rss_empty:.1f} MiB; bus subscribed")

            # This process as another replica: its repository announces each commit on Redis.
            repo = SqlTransactionRepository(
                engine,
                status_changes=RedisStatusChanges(redis, StatusViewCache(ttl_seconds=0, coherent=False)),
            )
            tokens = StreamTokens(jwt_secret)
            now = datetime.now(UTC)
            tids: list[str] = []
            owners: dict[str, str] = {}
            for index in range(transactions):
                tid = new_transaction_id(now)
                owners[tid] = f"bench-sse-{index:05d}-{secrets.token_hex(3)}"  # a user each: never capped
                await repo.add(
                    Transaction(
                        transaction_id=tid,
                        user_id=owners[tid],
                        product_type=ProductType.STUDY,
                        product_id="study_123",
                        order_name="bench",
                        amount=50_000,
                        method=Method.CARD,
                        status=Status.CREATED,
                        created_at=now,
                        updated_at=now,
                        expires_at=now + timedelta(minutes=30),
                        provider="toss",
                    ),
                    "issued",
                )
                tids.append(tid)
            followers = [
                Follower(
                    tid, f"{api.url}/api/payments/{tid}/events?streamToken={tokens.mint(tid, owners[tid])}"
                )
                for tid in tids
                for _ in range(args.per_transaction)
            ]
            log(f"{transactions} transactions written; opening {len(followers)} streams")

            opening = asyncio.Semaphore(args.open_concurrency)
            tasks: list[asyncio.Task[None]] = []
            async with meter.window("open: connect + first event", samples):
                open_started = time.monotonic()
                tasks = [
                    asyncio.create_task(follow(pool[i // CONNECTIONS_PER_CLIENT], f, opening))
                    for i, f in enumerate(followers)
                ]
                async with asyncio.timeout(60):
                    await asyncio.gather(*(f.first.wait() for f in followers))
                open_seconds = time.monotonic() - open_started
            failed = [f for f in followers if f.error or f.codes[:1] != [10]]
            if failed:
                log(
                    f"{len(failed)} streams did not get their first event, e.g. {failed[0].error or failed[0].codes}"
                )
                return 1
            log(f"{len(followers)} streams open, each with its first event (10), in {open_seconds:.2f} s")
            gauge_open = await open_streams_gauge(http, api)

            log(f"idle for {args.idle_seconds:g} s with every stream open")
            async with meter.window(f"idle, {len(followers)} streams open", samples):
                await asyncio.sleep(args.idle_seconds)
            keep_alives = sum(f.keep_alives for f in followers)

            random.shuffle(tids)
            log(f"fan-out: 10 → 30 for {transactions} transactions at {args.rate:g} writes/s")
            async with meter.window(
                f"fan-out: {args.rate:g} writes/s, {args.per_transaction} streams each", samples
            ):
                started = await write_walk(repo, tids, Status.CREATED, Status.PAYMENT_PENDING, args.rate)
                async with asyncio.timeout(30):
                    await asyncio.gather(*(f.waiter(30).wait() for f in followers))
            delays_30 = [f.received_at[30] - started[f.transaction_id] for f in followers]
            rate_30 = transactions / max(1e-9, max(started.values()) - min(started.values()))

            log(
                f"30 → 41 for all {transactions}, one writer as fast as it goes; every stream must end by itself"
            )
            async with meter.window("30 → 41 for all, one writer flat out", samples):
                started = await write_walk(repo, tids, Status.PAYMENT_PENDING, Status.PAYMENT_FAILED, 0)
                async with asyncio.timeout(30):
                    await asyncio.gather(*(f.waiter(41).wait() for f in followers))
            delays_41 = [f.received_at[41] - started[f.transaction_id] for f in followers]
            rate_41 = transactions / max(1e-9, max(started.values()) - min(started.values()))
            ending = time.monotonic()
            async with asyncio.timeout(30):
                await asyncio.gather(*tasks)  # each stream ends by itself after 41
            end_seconds = time.monotonic() - ending
            gauge_after = await open_streams_gauge(http, api)

        wrong = [f for f in followers if f.codes != [10, 30, 41] or not f.ended or f.error]
        print()
        print(f"== Status streams: {len(followers)} on one API process ({api.url}) ==")
        print(
            f"{'stage':<44}{'seconds':>8}{'API CPU %':>11}{'API RSS MiB':>13}{'client CPU %':>14}{'machine %':>11}"
        )
        print(f"{'before any stream':<44}{'':>8}{'':>11}{rss_empty:>13.1f}")
        for s in samples:
            print(
                f"{s.label:<44}{s.seconds:>8.2f}{s.api_cpu_percent:>11.1f}{s.api_rss_mib:>13.1f}"
                f"{s.client_cpu_percent:>14.1f}{s.machine_cpu_percent:>11.1f}"
            )
        print()
        print(
            f"opened: {len(followers)} streams in {open_seconds:.2f} s; gauge payments_status_streams_open = {gauge_open:g}"
        )
        print(f"idle: {keep_alives} keep-alive comments received (heartbeat {args.heartbeat:g} s)")
        print(
            f"write → event, 10 → 30 ({rate_30:.0f} writes/s, {args.per_transaction} streams each): "
            f"{percentiles_ms(delays_30)}"
        )
        print(f"write → event, 30 → 41 (one writer, {rate_41:.0f} writes/s): {percentiles_ms(delays_41)}")
        print(
            f"every stream saw 10, 30, 41 and ended: {len(followers) - len(wrong)}/{len(followers)} "
            f"(the last ended {end_seconds:.2f} s after the last 41); gauge afterwards = {gauge_after:g}"
        )
        print(
            f"machine: {os.cpu_count()} cores, load average {tuple(round(x, 2) for x in os.getloadavg())}; "
            "API CPU % is of one core; the client (httpx) runs in this process on the same machine"
        )
        if wrong:
            example = wrong[0]
            print(
                f"WRONG: {len(wrong)} streams, e.g. {example.codes} ended={example.ended} error={example.error}"
            )
            return 1
        return 0 if gauge_after == 0 else 1
    finally:
        await asyncio.gather(*(client.aclose() for client in pool))
        await redis.aclose()
        await engine.dispose()
        if api is not None:
            await asyncio.to_thread(api.stop)
        with contextlib.suppress(Exception):
            await _admin(args.mysql_admin_url, f"DROP DATABASE IF EXISTS `{args.database}`")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=1000, help="open streams (default 1000)")
    parser.add_argument("--per-transaction", type=int, default=2, help="streams per transaction (default 2)")
    parser.add_argument("--rate", type=float, default=200.0, help="10 → 30 writes a second (default 200)")
    parser.add_argument("--idle-seconds", type=float, default=20.0, help="the idle window (default 20)")
    parser.add_argument("--heartbeat", type=float, default=15.0, help="STREAM_HEARTBEAT_SECONDS (default 15)")
    parser.add_argument("--open-concurrency", type=int, default=200, help="connections opened at once (200)")
    parser.add_argument("--time-limit", type=float, default=120.0, help="the whole run (default 120 s)")
    parser.add_argument(
        "--database", default="payments_bench_sse", help="MariaDB database (recreated, dropped)"
    )
    parser.add_argument(
        "--redis-url",
        default=f"{REDIS_HOST_URL}/8",
        help="Redis for the bus (default: TEST_REDIS_HOST_URL or 127.0.0.1:6379, database 8)",
    )
    parser.add_argument(
        "--mysql-admin-url",
        default=os.environ.get("TEST_MARIADB_URL", "mysql+asyncmy://root@127.0.0.1:3306"),
        help="server URL without database",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.per_transaction <= 5 or args.streams < args.per_transaction:
        parser.error("--per-transaction must be 1-5 (STREAM_MAX_PER_USER) and at most --streams")
    if not 0 < args.time_limit <= 600:
        parser.error("--time-limit must be in (0, 600]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, 2 * args.streams + 512))  # this client and the API (inherited)
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))

    async def bounded() -> int:
        async with asyncio.timeout(args.time_limit):
            return await run(args)

    try:
        return asyncio.run(bounded())
    except TimeoutError:
        log(f"stopped: the run took longer than {args.time_limit:g} s")
        return 1


if __name__ == "__main__":
    sys.exit(main())
