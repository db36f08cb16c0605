"""Benchmark the mock Toss: checkout + confirm pairs at a given concurrency, against a health baseline.

Starts `python -m mock_toss` on a free loopback port, measures `GET /_mock/health` (the cheapest
route: the ceiling of this client, server and machine), then N pairs of `POST /_mock/checkout` +
`POST /v1/payments/confirm`, and prints a table with throughput, p50/p99 latency and the ratio to
the baseline. Bounded: stops after --max-seconds whatever N is.

    .venv/bin/python scripts/bench_mock.py [--pairs 2000] [--concurrency 50] [--max-seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `python scripts/bench_mock.py` puts scripts/ first, not the root
    sys.path.insert(0, str(REPO_ROOT))

from tests.support.servers import ProcessFailed, RunningServer, free_port, start_server  # noqa: E402

CLIENT_KEY = "test_ck_D5GePWvyJnrK0W0k6q8gLzN97Eoq"
SECRET_KEY = "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{SECRET_KEY}:".encode()).decode()}


@dataclass
class Measure:
    """Latencies (seconds) of one kind of request, and the wall time they took together."""

    name: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile_ms(self, percent: int) -> float:
        if len(self.latencies) < 2:
            return (self.latencies[0] if self.latencies else 0.0) * 1000
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[percent - 1] * 1000


def start_mock() -> RunningServer:
    """`python -m mock_toss` on a free port; SystemExit when it does not become healthy."""
    port = free_port()
    try:
        return start_server(
            ["mock_toss", "--port", str(port)], port=port, health_path="/_mock/health", name="bench-mock"
        )
    except ProcessFailed as exc:
        raise SystemExit(f"the mock did not start: {exc}") from None


async def run_workers(
    base_url: str,
    count: int,
    concurrency: int,
    max_seconds: float,
    job: Callable[[httpx.AsyncClient, int], Awaitable[None]],
) -> float:
    """Run job(client, 0..count-1) on `concurrency` workers; stop starting new jobs after max_seconds.

    Each worker has its own AsyncClient (one keep-alive connection): one shared pool of C connections
    makes httpx itself the bottleneck (its pool bookkeeping grows with the number of waiters).
    """
    numbers = itertools.count()
    started = time.perf_counter()

    async def worker() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=30, trust_env=False) as client:
            while time.perf_counter() - started < max_seconds:
                number = next(numbers)
                if number >= count:
                    return
                await job(client, number)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def timed(
    measure: Measure, call: Awaitable[httpx.Response], expected: int = 200
) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        response = await call
    except httpx.HTTPError:
        measure.errors += 1
        return None
    measure.latencies.append(time.perf_counter() - started)
    if response.status_code != expected:
        measure.errors += 1
        return None
    return response


async def benchmark(base_url: str, pairs: int, concurrency: int, max_seconds: float) -> list[Measure]:
    health = Measure("GET /_mock/health (baseline)")

    async def probe(client: httpx.AsyncClient, _: int) -> None:
        await timed(health, client.get("/_mock/health"))

    health.elapsed = await run_workers(base_url, pairs, concurrency, max_seconds, probe)

    checkout = Measure("POST /_mock/checkout")
    confirm = Measure("POST /v1/payments/confirm")
    pair = Measure("checkout + confirm pair")
    run = f"{int(time.time())}"

    async def purchase(client: httpx.AsyncClient, number: int) -> None:
        order_id = f"bench-{run}-{number:07d}"
        started = time.perf_counter()
        window = await timed(
            checkout,
            client.post(
                "/_mock/checkout",
                json={
                    "clientKey": CLIENT_KEY,
                    "orderId": order_id,
                    "amount": 50000,
                    "orderName": "알고리즘 스터디",
                    "method": "CARD",
                    "successUrl": "http://127.0.0.1:8000/api/payments/callback/success",
                    "failUrl": "http://127.0.0.1:8000/api/payments/callback/fail",
                },
            ),
        )
        if window is None:
            return
        body = {"paymentKey": window.json()["paymentKey"], "orderId": order_id, "amount": 50000}
        if await timed(confirm, client.post("/v1/payments/confirm", json=body, headers=AUTH)) is not None:
            pair.latencies.append(time.perf_counter() - started)

    elapsed = await run_workers(base_url, pairs, concurrency, max_seconds, purchase)
    checkout.elapsed = confirm.elapsed = pair.elapsed = elapsed
    # The mock's own time inside the confirm handler, from its journal (no HTTP, no client).
    inside = Measure("confirm handler alone (journal)")
    async with httpx.AsyncClient(base_url=base_url, timeout=30, trust_env=False) as client:
        journal = (await client.get("/_mock/requests", params={"path": "/v1/payments/confirm"})).json()
    inside.latencies = [entry["durationMs"] / 1000 for entry in journal["requests"]]
    inside.elapsed = sum(inside.latencies)
    return [health, checkout, confirm, pair, inside]


def print_table(measures: list[Measure], concurrency: int) -> None:
    baseline = measures[0].per_second or 1.0
    header = f"| {'measure':<34} | {'ok':>6} | {'errors':>6} | {'seconds':>7} | {'req/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'vs baseline':>11} |"
    print(
        f"\nconcurrency {concurrency}, one mock process (uvicorn, 1 worker), client and server on this machine\n"
    )
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for measure in measures:
        print(
            f"| {measure.name:<34} | {len(measure.latencies):>6} | {measure.errors:>6} | {measure.elapsed:>7.2f} "
            f"| {measure.per_second:>8.0f} | {measure.percentile_ms(50):>7.2f} | {measure.percentile_ms(99):>7.2f} "
            f"| {measure.per_second / baseline:>10.2f}× |"
        )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def print_server_cost(cpu: float, requests: int) -> None:
    per_request = cpu / requests if requests else 0.0
    print(
        f"\nmock process CPU: {cpu:.2f} s for {requests} requests = {per_request * 1e6:.0f} µs per request "
        f"→ one core could serve ≈ {1 / per_request if per_request else 0:,.0f} requests/s "
        "(the rest of the wall time above is the client and the machine)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=2000, help="checkout+confirm pairs (default 2000)")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight (default 50)")
    parser.add_argument(
        "--max-seconds", type=float, default=60.0, help="stop each phase after this (default 60)"
    )
    parser.add_argument("--url", help="benchmark an already running mock instead of starting one")
    args = parser.parse_args()
    mock = None
    base_url = args.url
    if base_url is None:
        mock = start_mock()
        base_url = mock.url
    cpu_before = cpu_seconds(mock.process.pid) if mock is not None else 0.0
    try:
        measures = asyncio.run(benchmark(base_url, args.pairs, args.concurrency, args.max_seconds))
        cpu_used = cpu_seconds(mock.process.pid) - cpu_before if mock is not None else None
    finally:
        if mock is not None:
            mock.stop()
    print_table(measures, args.concurrency)
    if cpu_used is not None:
        print_server_cost(cpu_used, sum(len(measure.latencies) for measure in measures[:3]))


if __name__ == "__main__":
    main()
