"""scripts/capacity.py's arithmetic, on round numbers worked out by hand, and how it reads the
bench's CPU shares (the same formula as scripts/bench.py's Result.cpu_us_per_request)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any

import pytest

from tests.support.servers import REPO_ROOT


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("capacity_model", REPO_ROOT / "scripts" / "capacity.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


capacity = _load()


def _inputs(**changes: object) -> Any:
    values: dict[str, object] = {
        "api_us_per_checkout": 8_000.0,
        "worker_us_per_checkout": 3_000.0,
        "db_us_per_checkout_bench": 2_000.0,
        "api_us_per_poll_cached": 100.0,
        "api_us_per_poll_uncached": 250.0,
        "db_us_per_poll_uncached": 100.0,
        "polls_per_checkout": 2.0,
        "db_us_per_checkout": 2_500.0,
        "ceiling_checkouts_per_s": 200.0,
        "ceiling_commits_per_s": 1_600.0,
        "commits_per_checkout": 8.0,
        "statements_per_checkout": 22.0,
        "round_trips_per_checkout": 57.0,
        "fsyncs_per_commit": 0.5,
        "commit_p50_ms_single": 0.5,
        "db_seconds_per_checkout": 0.015,
        "redis_commands_per_checkout": 50.0,  # as measured: 4 of them the bus's PUBLISHes
        "redis_commands_per_core": 180_000.0,
        "pg_calls_per_checkout": 2.0,  # a PG whose webhooks overtake its confirms
    }
    values.update(changes)
    return capacity.Inputs(**values)


def _limit(derived: Any, prefix: str) -> float | None:
    limit: float | None = next(v for k, v in derived.limits.items() if k.startswith(prefix))
    return limit


def test_a_thousand_checkouts_a_second_worked_by_hand() -> None:
    model = capacity.Model(
        rate=1000,
        utilisation=0.6,
        poll_cache_hits=0.0,
        db_host_cores=16,
        max_connections=151,
        network_rtt_ms=0.3,
    )
    d = capacity.derive(_inputs(), model)

    # API: 8,000 µs + 2 polls × 250 µs = 8,500 µs; × 1,000/s = 8.5 cores; / 0.6 = 14.17 → 15 processes
    assert d.api_us_per_checkout_with_polls == pytest.approx(8_500)
    assert d.api_cores == pytest.approx(8.5)
    assert d.api_processes == 15
    # worker: 3,000 µs × 1,000/s = 3 cores; / 0.6 = 5 exactly → 5 processes
    assert d.worker_cores == pytest.approx(3.0) and d.worker_processes == 5
    # MariaDB: 2,500 µs × 1,000/s = 2.5 cores; / 0.6 = 4.17 → 5 cores; bench cross-check 2,000 + 2 × 100
    assert d.db_cores == pytest.approx(2.5) and d.db_cores_provisioned == 5
    assert d.db_us_per_checkout_bench_with_polls == pytest.approx(2_200)
    # 8 commits, 22 statements, 0.5 fsyncs per commit, 2 polls, 2 PG calls per checkout
    assert d.commits_per_s == pytest.approx(8_000) and d.statements_per_s == pytest.approx(22_000)
    assert d.fsyncs_per_s == pytest.approx(4_000)
    assert d.polls_per_s == pytest.approx(2_000) and d.pg_calls_per_s == pytest.approx(2_000)
    # log flushes: a lone COMMIT takes 0.5 ms → ≤ 2,000 flushes/s; 0.5 fsyncs per commit → 2 commits per
    # flush seen; 8,000 commits/s need 4 per flush
    assert d.log_flushes_max_per_s == pytest.approx(2_000)
    assert d.commits_per_flush_seen == pytest.approx(2) and d.commits_per_flush_needed == pytest.approx(4)
    # Redis: 50 commands; the bus is 4 of the 50 (scripts/capacity.py's measured split) → 4 PUBLISHes
    # per checkout, each delivered to 15 API processes = 60,000 deliveries/s; 50,000 + 60,000 =
    # 110,000 ops/s = 61.1 % of 180,000
    assert d.redis_commands_per_s == pytest.approx(50_000) and d.bus_deliveries_per_s == pytest.approx(60_000)
    assert d.redis_load_per_s == pytest.approx(110_000) and d.redis_core_share == pytest.approx(
        0.61111, rel=1e-4
    )
    # Little's law: 1,000/s × (15 ms + 57 round trips × 0.3 ms) = 32.1 connections; pools (15 + 5) × 40
    assert d.connections_busy == pytest.approx(32.1) and d.connections_configured == 800
    # Single instances at 100 %: CPU 16 × 1e6 / 2,500 = 6,400/s; flushes 2,000 × 2 / 8 = 500/s;
    # Redis, its fan-out growing with the API processes (R × 8,500 µs / 0.6 of them):
    # a = 4 × 0.0085 / 0.6 = 0.056667, b = 50, C = 180,000: R = (−50 + √(2,500 + 40,800)) / 0.113333
    # = (−50 + 208.087) / 0.113333 = 1,394.9/s; Toss unknown. The first: the log flushes.
    assert _limit(d, "database primary: CPU") == pytest.approx(6_400)
    assert _limit(d, "database primary: redo log") == pytest.approx(500)
    assert _limit(d, "Redis") == pytest.approx(1_394.9, rel=1e-4)
    assert _limit(d, "Toss") is None
    assert d.first_bottleneck.startswith("database primary: redo log")
    # how busy each is at 1,000/s: CPU 1,000 / 6,400, flushes 1,000 / 500, Redis its 61.1 % (not 1,000 / 1,395:
    # its load is not linear in the rate)
    assert d.loads["database primary: CPU"] == pytest.approx(0.15625)
    assert d.loads[next(k for k in d.loads if k.startswith("database primary: redo"))] == pytest.approx(2.0)
    assert d.loads[next(k for k in d.loads if k.startswith("Redis"))] == pytest.approx(0.61111, rel=1e-4)
    assert d.loads["Toss (the PG)"] is None
    # polls: 2 × 100 µs of 2,500 µs = 8 % of the primary's CPU per checkout
    assert d.poll_share_of_db == pytest.approx(0.08)


def test_cache_hits_a_faster_disk_and_more_api_processes_move_the_numbers() -> None:
    model = capacity.Model(rate=1000, utilisation=0.5, poll_cache_hits=0.5, db_host_cores=2, network_rtt_ms=0)
    d = capacity.derive(_inputs(commit_p50_ms_single=0.05), model)
    # half the polls hit: 8,000 + 2 × (0.5 × 100 + 0.5 × 250) = 8,350 µs → 8.35 cores / 0.5 = 16.7 → 17
    assert d.api_us_per_checkout_with_polls == pytest.approx(8_350) and d.api_processes == 17
    # the cache spares the database half the poll reads: 2 × 0.5 × 100 = 100 µs of 2,500 = 4 %
    assert d.poll_share_of_db == pytest.approx(0.04)
    # no network: 1,000 × 15 ms = 15 connections
    assert d.connections_busy == pytest.approx(15)
    # flushes: 20,000/s × 2 / 8 = 5,000/s; Redis: a = 4 × 0.00835 / 0.5 = 0.0668,
    # R = (−50 + √(2,500 + 48,096)) / 0.1336 = (−50 + 224.936) / 0.1336 = 1,309.4/s;
    # a 2-core primary: 2 × 1e6 / 2,500 = 800/s, the first
    assert _limit(d, "database primary: redo log") == pytest.approx(5_000)
    assert _limit(d, "Redis") == pytest.approx(1_309.4, rel=1e-4)
    assert _limit(d, "database primary: CPU") == pytest.approx(800)
    assert d.first_bottleneck == "database primary: CPU"


def test_cpu_per_request_from_a_bench_result_is_bench_py_s_formula() -> None:
    # 31 % of a core for 10 s over 650 checkouts = 3.1 CPU s / 650 = 4,769 µs per checkout
    result = {"requests": 650, "seconds": 10.0, "cpu": {"worker": 31, "seconds": 10.0}}
    assert capacity.cpu_us(result, "worker") == pytest.approx(4_769.23, rel=1e-5)
    assert capacity.cpu_us(result, "mock") is None
    assert capacity.cpu_us({**result, "requests": 0}, "worker") is None


def test_a_ceiling_report_is_read_from_its_undisturbed_steps() -> None:
    def step(writers: int, rate: float, fsyncs: float, disturbed: bool) -> dict[str, object]:
        return {
            "writers": writers,
            "checkouts_per_s": rate,
            "commits_per_s": rate * 8,
            "commit_p50_ms": 0.2 * writers,
            "checkout_p50_ms": 5.0 * writers,
            "fsyncs_per_commit": fsyncs,
            "db_cpu_us_per_checkout": 1_000 * writers,
            "disturbed": disturbed,
        }

    ceiling = {
        "summary": {"db_cpu_us_per_checkout": 1_500, "steps_used": [1, 2]},
        "pattern": {"commits_per_checkout": 8, "statements_per_checkout": 21, "round_trips_per_checkout": 37},
        # the 4-writer step was disturbed: it has the most checkouts/s and the fewest fsyncs, and must not count
        "steps": [step(1, 100, 1.0, False), step(2, 180, 0.5, False), step(4, 900, 0.1, True)],
    }
    values = capacity.from_ceiling(ceiling)
    assert values["ceiling_checkouts_per_s"] == 180 and values["ceiling_commits_per_s"] == 1_440
    assert values["fsyncs_per_commit"] == 0.5  # the fewest of the undisturbed steps
    assert values["commit_p50_ms_single"] == pytest.approx(0.2)
    assert values["db_seconds_per_checkout"] == pytest.approx(0.005)
    assert values["db_us_per_checkout"] == 1_500 and values["db_us_per_checkout_range"] == (1_000, 2_000)
    assert values["round_trips_per_checkout"] == 37
