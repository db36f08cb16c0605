#!/usr/bin/env python
"""`make capacity`: loadtests/CAPACITY.md, the capacity model, from measured inputs.

Reads the newest `make bench` report (loadtests/reports/bench-*/bench.json: CPU per checkout of
the API, the worker, the mock and MariaDB from (d); CPU per status poll from (b) and (b')) and the
newest `make db-ceiling` report (loadtests/reports/db-ceiling-*/db-ceiling.json: MariaDB's CPU
per checkout for the whole write pattern with its polls, the commits/s this box sustains, fsyncs
per commit) and derives, for a target rate (1,000 checkouts/s by default): API and worker
processes, database cores, commits/s, Redis commands/s, PG calls/s, connections; which
single instance saturates first; what to change there. Prints the Markdown, or writes it.

    .venv/bin/python scripts/capacity.py                               # print
    .venv/bin/python scripts/capacity.py --write loadtests/CAPACITY.md # what `make capacity` runs
    .venv/bin/python scripts/capacity.py --rate 2000 --utilisation 0.5 --db-host-cores 32

The arithmetic is in `derive()` (pure; tests/unit/test_capacity_model.py checks it by hand).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
REPORTS_DIR = REPO_ROOT / "loadtests" / "reports"

# --- inputs that no report carries (where each number comes from is in SOURCES) ------------------

# The design's polling (docs/api.md, "Polling"): poll at once, then after 1 s, …; an approved card
# is at 45 on the first poll and 50 on the second. `make loadtest` measured 2.00 polls per approved
# card (1.85 over all card-window checkouts, declines and cancels stop after one).
DESIGN_POLLS_PER_CHECKOUT = 2.0
# Redis commands per approved card checkout, by role. Measured on this box (2026-12-05):
# LocalStack (2 API workers, 1 arq worker, mock Toss with its webhook) on a private redis-server,
# 200 checkouts (issue → window → callback → polls until 50), every command seen by MONITOR
# (a script's own commands included) classified by its key (arq:* queue, idem:*, ratelimit:*,
# PUBLISH; MULTI/EXEC/WATCH to the role that sent them), the idle rate (arq's queue polls, the
# sweeper) subtracted. The queue's 40: each enqueue is one script of 3 commands (it was WATCH,
# EXISTS and a 4-command MULTI/EXEC, 44 in all, before app.provisioning.queue's script); the
# idempotency + rate-limit figure is from the first measurement, with an Idempotency-Key and the
# limit on (the code of both is unchanged). Refresh by hand when the write path changes how it
# uses Redis.
REDIS_COMMANDS_PER_CHECKOUT: dict[str, float] = {
    "queue (arq: the grant and the webhook job, each enqueued, started, finished)": 40.0,
    "idempotency + rate limit (issue)": 6.0,
    "status bus (a PUBLISH per committed status change)": 4.0,
}
# One Redis core: `redis-benchmark -q -n 200000 -c 50 -t set,get,incr` on this box (2026-12-05):
# 186,000-189,000 requests/s each, the client on the other core. The slowest is taken; the
# queue's WATCH/MULTI/EXEC and the bus's fan-out cost more per command than a GET.
REDIS_COMMANDS_PER_CORE = 186_000.0
# PG calls per approved card checkout: the confirm (callback). The webhook Toss sends after it is
# finished without a lookup once the order is paid (app.core.webhooks); `make bench`'s 2,805
# checkouts of 2026-12-05 made none. A webhook that overtakes its callback (the order still at 30)
# is looked up: count 2 for a PG that answers webhooks faster than its confirms.
PG_CALLS_PER_CHECKOUT = 1.0
# Connections each process may open, app/settings.py defaults: DATABASE_POOL_SIZE +
# DATABASE_MAX_OVERFLOW for SQLAlchemy's engine, and as many for the driver pool the write path and
# the status poll share (app/db_direct.py).
CONNECTIONS_PER_PROCESS = (10 + 10) * 2

SOURCES = {
    "polls": "docs/api.md (Polling) and `make loadtest` (2.00 per approved card)",
    "redis": "MONITOR over 200 checkouts on a private Redis, 2026-12-05 (scripts/capacity.py, REDIS_COMMANDS_PER_CHECKOUT)",
    "redis_core": "`redis-benchmark -q -n 200000 -c 50 -t set,get,incr` on this box, 2026-12-05",
    "pg": "the code: the confirm in the callback (the webhook job looks up only orders still open)",
}


@dataclass(frozen=True)
class Inputs:
    """Everything the model needs; CPU in microseconds of one core."""

    api_us_per_checkout: float  # bench (d): issue + callback + webhook receipt, all API processes
    worker_us_per_checkout: float  # bench (d): the grant job + the webhook job
    db_us_per_checkout_bench: float  # bench (d): MariaDB, no polls
    api_us_per_poll_cached: float  # bench (b)
    api_us_per_poll_uncached: float  # bench (b'): every poll reads MariaDB
    db_us_per_poll_uncached: float  # bench (b')
    polls_per_checkout: float
    db_us_per_checkout: float  # db-ceiling: the whole write pattern with its polls
    ceiling_checkouts_per_s: float  # db-ceiling: the best step on this box
    ceiling_commits_per_s: float
    commits_per_checkout: float
    statements_per_checkout: float
    round_trips_per_checkout: float  # db-ceiling: statements, COMMITs, the pool's pings and ROLLBACKs
    fsyncs_per_commit: float | None  # db-ceiling, the fewest of its steps (server-wide: data files too)
    commit_p50_ms_single: float  # db-ceiling, 1 writer: a COMMIT's round trip, its log flush included
    db_seconds_per_checkout: float  # db-ceiling, 1 writer: one checkout's DB round trips end to end
    redis_commands_per_checkout: float
    redis_commands_per_core: float
    pg_calls_per_checkout: float = PG_CALLS_PER_CHECKOUT
    mock_us_per_checkout: float | None = None  # bench (d): the mock Toss (Toss's side, for reference)
    db_us_per_checkout_range: tuple[float, float] | None = None  # db-ceiling: fewest and most writers' steps


@dataclass(frozen=True)
class Model:
    rate: float = 1000.0  # checkouts per second
    utilisation: float = 0.6  # how busy a core may be at that rate (the rest: spikes, a lost replica)
    poll_cache_hits: float = 0.0  # share of a checkout's polls answered from the status cache
    db_host_cores: int = 16  # the primary's size, for "where it saturates"
    network_rtt_ms: float = 0.3  # app host ↔ database host, per round trip (assumed: one zone)
    max_connections: int = 151  # MariaDB's default


@dataclass(frozen=True)
class Derived:
    api_us_per_checkout_with_polls: float
    api_cores: float
    api_processes: int
    worker_cores: float
    worker_processes: int
    db_cores: float
    db_cores_provisioned: int
    db_us_per_checkout_bench_with_polls: float
    commits_per_s: float
    statements_per_s: float
    fsyncs_per_s: float | None
    log_flushes_max_per_s: float  # one flush at a time, each as long as a lone COMMIT
    commits_per_flush_seen: float  # at the ceiling's best step (≥: fsyncs count data files too)
    commits_per_flush_needed: float  # at the target rate
    polls_per_s: float
    redis_commands_per_s: float
    redis_core_share: float  # of one Redis core
    bus_deliveries_per_s: float  # PUBLISHes × subscribed API processes
    pg_calls_per_s: float
    connections_busy: float  # Little's law: rate × one checkout's DB time (+ the network's round trips)
    redis_load_per_s: float  # commands + bus deliveries (a delivery taken to cost about a command)
    connections_configured: int
    limits: dict[str, float | None]  # checkouts/s at which each single instance is at 100 %
    loads: dict[str, float | None]  # how busy each is at the target rate
    first_bottleneck: str
    poll_share_of_db: float  # of the primary's CPU per checkout: what read replicas can take


def derive(inputs: Inputs, model: Model) -> Derived:
    i, m = inputs, model
    per_poll_api = (
        m.poll_cache_hits * i.api_us_per_poll_cached + (1 - m.poll_cache_hits) * i.api_us_per_poll_uncached
    )
    api_us = i.api_us_per_checkout + i.polls_per_checkout * per_poll_api
    api_cores = m.rate * api_us / 1e6
    worker_cores = m.rate * i.worker_us_per_checkout / 1e6
    db_cores = m.rate * i.db_us_per_checkout / 1e6
    api_processes = _whole(api_cores / m.utilisation)
    worker_processes = _whole(worker_cores / m.utilisation)
    commits = m.rate * i.commits_per_checkout
    poll_db_us = (1 - m.poll_cache_hits) * i.polls_per_checkout * i.db_us_per_poll_uncached
    bus_publishes = m.rate * bus_publishes_per_checkout(i)
    # Every PUBLISH reaches each API process (each one's cache listens): the fan-out grows with both.
    redis_load = m.rate * i.redis_commands_per_checkout + bus_publishes * api_processes
    flushes = 1000 / i.commit_p50_ms_single
    per_flush = 1 / i.fsyncs_per_commit if i.fsyncs_per_commit else 1.0
    limits: dict[str, float | None] = {
        "database primary: CPU": m.db_host_cores * 1e6 / i.db_us_per_checkout,
        LOG_FLUSH_LIMIT: flushes * per_flush / i.commits_per_checkout,
        REDIS_LIMIT: redis_limit(i, m, api_us),
        "Toss (the PG)": None,
    }
    known = {name: value for name, value in limits.items() if value is not None}
    return Derived(
        api_us_per_checkout_with_polls=api_us,
        api_cores=api_cores,
        api_processes=api_processes,
        worker_cores=worker_cores,
        worker_processes=worker_processes,
        db_cores=db_cores,
        db_cores_provisioned=_whole(db_cores / m.utilisation),
        db_us_per_checkout_bench_with_polls=i.db_us_per_checkout_bench
        + i.polls_per_checkout * i.db_us_per_poll_uncached,
        commits_per_s=commits,
        statements_per_s=m.rate * i.statements_per_checkout,
        fsyncs_per_s=None if i.fsyncs_per_commit is None else commits * i.fsyncs_per_commit,
        log_flushes_max_per_s=flushes,
        commits_per_flush_seen=per_flush,
        commits_per_flush_needed=commits / flushes,
        polls_per_s=m.rate * i.polls_per_checkout,
        redis_commands_per_s=m.rate * i.redis_commands_per_checkout,
        redis_core_share=redis_load / i.redis_commands_per_core,
        bus_deliveries_per_s=bus_publishes * api_processes,
        pg_calls_per_s=m.rate * i.pg_calls_per_checkout,
        connections_busy=m.rate
        * (i.db_seconds_per_checkout + i.round_trips_per_checkout * m.network_rtt_ms / 1000),
        redis_load_per_s=redis_load,
        connections_configured=(api_processes + worker_processes) * CONNECTIONS_PER_PROCESS,
        limits=limits,
        loads={
            name: (redis_load / i.redis_commands_per_core if name == REDIS_LIMIT else m.rate / limit)
            if limit
            else None
            for name, limit in limits.items()
        },
        first_bottleneck=min(known, key=lambda name: known[name]),
        poll_share_of_db=poll_db_us / i.db_us_per_checkout,
    )


LOG_FLUSH_LIMIT = "database primary: redo log flushes (estimate)"
REDIS_LIMIT = "Redis (one instance, one core; its bus fan-out grows with the API processes)"


def redis_limit(inputs: Inputs, model: Model, api_us: float) -> float:
    """Checkouts/s at which one Redis core is busy, the API processes growing with the rate.

    At rate R: R × commands + R × publishes × processes(R), processes(R) = R × api_us / 1e6 / U
    (unrounded), so a·R² + b·R = C with a = publishes × api_us / 1e6 / U, b = commands, C = the
    core's commands/s: R = (−b + √(b² + 4aC)) / 2a.
    """
    a = bus_publishes_per_checkout(inputs) * api_us / 1e6 / model.utilisation
    b, c = inputs.redis_commands_per_checkout, inputs.redis_commands_per_core
    return c / b if a == 0 else (-b + math.sqrt(b * b + 4 * a * c)) / (2 * a)


def _whole(units: float) -> int:
    """Whole processes or cores for `units`, rounded up (5.000000000000001 is 5: float noise)."""
    return max(1, math.ceil(units - 1e-9))


def bus_publishes_per_checkout(inputs: Inputs) -> float:
    """PUBLISHes per checkout: the status bus's share of the Redis commands, scaled to the input."""
    total = sum(REDIS_COMMANDS_PER_CHECKOUT.values())
    bus = next(v for k, v in REDIS_COMMANDS_PER_CHECKOUT.items() if k.startswith("status bus"))
    return inputs.redis_commands_per_checkout * bus / total


# --- reading the reports ------------------------------------------------------------------------------


def newest(pattern: str, wanted: Callable[[dict[str, Any]], bool] = lambda report: True) -> Path | None:
    """The newest report of a kind (folders are named by their timestamp) that `wanted` accepts."""
    for path in sorted(REPORTS_DIR.glob(pattern), key=lambda p: p.parent.name, reverse=True):
        try:
            if wanted(json.loads(path.read_text())):
                return path
        except (OSError, ValueError, KeyError):
            continue
    return None


def _full_pattern(report: dict[str, Any], mode: str | None = None) -> bool:
    """A db-ceiling run of the service's whole pattern (default options), in `mode` if given."""
    p = report["pattern"]
    whole = bool(p["ledger"] and p["webhook"] and p["polls"] == 2)
    return whole and (mode is None or p.get("connection_mode", "engine") == mode)


def cpu_us(result: dict[str, Any], part: str) -> float | None:
    """CPU µs `part` spent per request (per checkout for (d)), as scripts/bench.py computes it."""
    cpu, requests = result.get("cpu", {}), result.get("requests", 0)
    if not requests or part not in cpu:
        return None
    return float(cpu[part]) / 100 * float(cpu.get("seconds", result["seconds"])) / requests * 1e6


def from_bench(bench: dict[str, Any]) -> dict[str, float | None]:
    by_key = {r["key"]: r for r in bench["results"]}
    missing = {"b", "b'", "d"} - by_key.keys()
    if missing:
        raise SystemExit(f"the bench report lacks case(s) {sorted(missing)}: run `make bench` (all cases)")
    checkout, cached, uncached = by_key["d"], by_key["b"], by_key["b'"]
    return {
        "api_us_per_checkout": cpu_us(checkout, checkout.get("server", "api")),
        "worker_us_per_checkout": cpu_us(checkout, "worker"),
        "mock_us_per_checkout": cpu_us(checkout, "mock"),
        "db_us_per_checkout_bench": cpu_us(checkout, "db"),
        "api_us_per_poll_cached": cpu_us(cached, cached.get("server", "api")),
        "api_us_per_poll_uncached": cpu_us(uncached, uncached.get("server", "api-uncached")),
        "db_us_per_poll_uncached": cpu_us(uncached, "db"),
    }


def from_ceiling(ceiling: dict[str, Any]) -> dict[str, float | None]:
    summary, pattern = ceiling["summary"], ceiling["pattern"]
    best, single = _best_and_single(ceiling)
    return {
        "db_us_per_checkout": summary["db_cpu_us_per_checkout"],
        "db_us_per_checkout_range": _db_us_range(ceiling),
        "ceiling_checkouts_per_s": best["checkouts_per_s"],
        "ceiling_commits_per_s": best["commits_per_s"],
        "commits_per_checkout": pattern["commits_per_checkout"],
        "statements_per_checkout": pattern["statements_per_checkout"],
        "round_trips_per_checkout": pattern.get(
            "round_trips_per_checkout", pattern["statements_per_checkout"]
        ),
        # the best group commit seen: fewest fsyncs per commit over the usable steps (more writers, more per flush)
        "fsyncs_per_commit": min(
            (s["fsyncs_per_commit"] for s in _usable_steps(ceiling) if s.get("fsyncs_per_commit")),
            default=None,
        ),
        "commit_p50_ms_single": single["commit_p50_ms"],
        "db_seconds_per_checkout": (single["checkout_p50_ms"] or 0) / 1000,
    }


def _db_us_range(ceiling: dict[str, Any]) -> tuple[float, float] | None:
    values = [s["db_cpu_us_per_checkout"] for s in _usable_steps(ceiling) if s.get("db_cpu_us_per_checkout")]
    return (min(values), max(values)) if values else None


def _usable_steps(ceiling: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps the ceiling's summary used: those no other load on the box disturbed."""
    used = set(ceiling["summary"].get("steps_used", []))
    steps = [s for s in ceiling["steps"] if s["writers"] in used]
    return steps or ceiling["steps"]


def _best_and_single(ceiling: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The step with the most checkouts/s and the one with the fewest writers (its lone COMMIT)."""
    steps = _usable_steps(ceiling)
    return max(steps, key=lambda s: s["checkouts_per_s"]), min(steps, key=lambda s: s["writers"])


def build_inputs(
    bench: dict[str, Any], ceiling: dict[str, Any], polls: float, db_cpu: str = "ceiling"
) -> Inputs:
    """The model's inputs from the two reports; `db_cpu` picks MariaDB's CPU per checkout: the
    ceiling's (the pattern alone on the server) or the bench's (d) plus its polls (the real
    service, but mariadbd's whole CPU: whatever else the server did meanwhile is in it)."""
    values: dict[str, Any] = {**from_bench(bench), **from_ceiling(ceiling)}
    absent = [
        k
        for k, v in values.items()
        if v is None and k not in ("mock_us_per_checkout", "fsyncs_per_commit", "db_us_per_checkout_range")
    ]
    if absent:
        raise SystemExit(f"the reports lack {absent}")
    if db_cpu == "bench":
        values["db_us_per_checkout"] = (
            values["db_us_per_checkout_bench"] + polls * values["db_us_per_poll_uncached"]
        )
    return Inputs(
        **values,
        polls_per_checkout=polls,
        redis_commands_per_checkout=sum(REDIS_COMMANDS_PER_CHECKOUT.values()),
        redis_commands_per_core=REDIS_COMMANDS_PER_CORE,
    )


# --- the document -----------------------------------------------------------------------------------


def _n(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "unknown"
    return f"{value:,.{digits}f}"


def _table(head: tuple[str, ...], align: str, rows: Sequence[tuple[str, ...]]) -> list[str]:
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|",
    ]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def render(
    inputs: Inputs,
    model: Model,
    derived: Derived,
    *,
    bench: dict[str, Any],
    ceiling: dict[str, Any],
    bench_path: str,
    ceiling_path: str,
    placeholders: set[str],
    db_cpu: str = "ceiling",
    other: dict[str, Any] | None = None,
    other_path: str | None = None,
) -> str:
    i, m, d = inputs, model, derived
    machine = bench.get("context", {}).get("machine", {})
    server = ceiling["server"]
    flush_setting = f"innodb_flush_log_at_trx_commit={server.get('innodb_flush_log_at_trx_commit')}"

    def mark(*names: str) -> str:
        return " ⚠" if placeholders.intersection(names) else ""

    best, _ = _best_and_single(ceiling)
    lines = [
        "# Capacity model",
        "",
        "Generated by `make capacity` (`scripts/capacity.py --write loadtests/CAPACITY.md`) from the newest",
        "`make bench` and `make db-ceiling` reports: change the script, not this file. Every number was",
        "measured on this **2-core box** (load generator, API, worker, mock, MariaDB and Redis sharing it);",
        "what carries over to other machines is the CPU per unit of work, not the rates.",
        "",
    ]
    lines += _table(
        ("inputs", "measured", "command", "report"),
        "llll",
        [
            (
                "API, worker, mock and MariaDB CPU per checkout and per poll",
                _bench_date(bench_path),
                _bench_command(bench),
                f"`{bench_path}`",
            ),
            (
                "MariaDB ceiling for the checkout's statements",
                ceiling["date"][:10],
                f"`make db-ceiling` (`{ceiling['command']}`)",
                f"`{ceiling_path}`",
            ),
            ("Redis commands per checkout", "2026-12-05", SOURCES["redis"], "-"),
            ("Redis commands per core", "2026-12-05", SOURCES["redis_core"], "-"),
        ],
    )
    lines += [
        "",
        f"Machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, {machine.get('memory_gib', '?')} GiB, "
        f"Linux {machine.get('kernel', '?')}, Python {machine.get('python', '?')}. MariaDB {server.get('version', '?')} "
        f"with `{flush_setting}`, `sync_binlog={server.get('sync_binlog')}`, `log_bin={server.get('log_bin')}`, "
        f"`innodb_buffer_pool_size={int(server.get('innodb_buffer_pool_size', 0)) // 2**20} MiB`, "
        f"`innodb_flush_method={server.get('innodb_flush_method')}` (a Firecracker VM: its fsync is cheap).",
    ]
    if placeholders:
        lines += [
            "",
            f"⚠ **Placeholders** ({', '.join(sorted(placeholders))}): measured while the write path was being "
            "optimised (not yet committed); the rows marked ⚠ change with it. Once it has landed:",
            '`make bench && make db-ceiling && make capacity CAPACITY_ARGS="--placeholders none"`.',
        ]
    rows = [
        (
            "API CPU per checkout: issue, callback, webhook receipt" + mark("api"),
            _n(i.api_us_per_checkout),
            "µs",
            "bench (d)",
        ),
        (
            "worker CPU per checkout: grant job, webhook job" + mark("worker"),
            _n(i.worker_us_per_checkout),
            "µs",
            "bench (d)",
        ),
        (
            "mock Toss CPU per checkout (Toss's side, not ours to run)",
            _n(i.mock_us_per_checkout),
            "µs",
            "bench (d)",
        ),
        (
            "MariaDB CPU per checkout, no polls" + mark("db"),
            _n(i.db_us_per_checkout_bench),
            "µs",
            "bench (d), all of mariadbd",
        ),
        ("API CPU per poll, status cache hit" + mark("api"), _n(i.api_us_per_poll_cached), "µs", "bench (b)"),
        (
            "API CPU per poll, read from MariaDB" + mark("api"),
            _n(i.api_us_per_poll_uncached),
            "µs",
            "bench (b')",
        ),
        ("MariaDB CPU per poll read", _n(i.db_us_per_poll_uncached), "µs", "bench (b')"),
        ("polls per checkout", _n(i.polls_per_checkout, 2), "polls", SOURCES["polls"]),
        (
            "**MariaDB CPU per checkout, its statements and polls**" + mark("db"),
            f"**{_n(i.db_us_per_checkout)}**",
            "µs",
            "db-ceiling, median of its steps" if db_cpu == "ceiling" else "bench (d) + polls × (b')",
        ),
        (
            "MariaDB CPU per checkout, lowest and highest step (more writers, more per checkout on 2 cores)",
            "-"
            if i.db_us_per_checkout_range is None
            else " – ".join(_n(v) for v in i.db_us_per_checkout_range),
            "µs",
            "db-ceiling; the bench's 64 users sit at the high end",
        ),
        (
            "commits / SQL statements per checkout" + mark("db"),
            f"{_n(i.commits_per_checkout)} / {_n(i.statements_per_checkout)}",
            "",
            "db-ceiling",
        ),
        (
            "round trips per checkout: statements, COMMITs and "
            + (
                "a ping and a ROLLBACK per block (SQLAlchemy's pool)"
                if ceiling["pattern"].get("connection_mode", "engine") == "engine"
                else "a BEGIN per write (app.db_direct)"
            ),
            _n(i.round_trips_per_checkout),
            "",
            "db-ceiling",
        ),
        (
            "a lone COMMIT (1 writer), its redo log flush included",
            _n(i.commit_p50_ms_single, 2),
            "ms p50",
            "db-ceiling",
        ),
        (
            "fsyncs per commit, the fewest of the steps (server-wide)",
            _n(i.fsyncs_per_commit, 2),
            "",
            "db-ceiling",
        ),
        (
            "one checkout's DB round trips end to end (1 writer)",
            _n(i.db_seconds_per_checkout * 1000, 1),
            "ms",
            "db-ceiling",
        ),
        ("Redis commands per checkout", _n(i.redis_commands_per_checkout), "commands", "MONITOR, see below"),
        ("Redis commands per core", _n(i.redis_commands_per_core), "commands/s", "redis-benchmark"),
        ("PG (Toss) calls per checkout", _n(i.pg_calls_per_checkout), "calls", SOURCES["pg"]),
    ]
    lines += ["", "## Inputs", "", *_table(("input", "value", "unit", "source"), "lrll", rows)]
    lines += [
        "",
        "Redis commands per checkout by role: "
        + "; ".join(f"{role}: {count:g}" for role, count in REDIS_COMMANDS_PER_CHECKOUT.items())
        + ".",
        "",
    ]
    ceiling_rows = [
        (
            str(step["writers"]) + (" †" if step.get("disturbed") else ""),
            _n(step["checkouts_per_s"], 1),
            _n(step["commits_per_s"]),
            f"{_n(step['commit_p50_ms'], 2)} / {_n(step['commit_p99_ms'], 2)}",
            _n(step["db_cpu_us_per_checkout"]),
            f"{_n(step['db_cpu_percent'])} / {_n(step['generator_cpu_percent'])} / {_n(step['other_cpu_percent'])}",
        )
        for step in ceiling["steps"]
    ]
    head = (
        "writers",
        "checkouts/s",
        "commits/s",
        "COMMIT p50 / p99 ms",
        "MariaDB µs/checkout",
        "CPU % MariaDB / generator / other",
    )
    lines += ["### The database ceiling on this box", "", *_table(head, "rrrrrl", ceiling_rows)]
    lines += [
        "",
        f"The box tops out at **{_n(best['checkouts_per_s'], 1)} checkouts/s** ({_n(best['commits_per_s'])} commits/s) "
        f"at {best['writers']} writers, bound by CPU: MariaDB and the generator share the 2 cores. "
        "† = disturbed by other load on the box (the rest of the machine ≥ 25 % of a core): left out of the "
        "inputs above.",
        "",
        f"## Derived: {m.rate:,.0f} checkouts/s" + (" ⚠" if placeholders else ""),
        "",
        f"Cores at most {m.utilisation:.0%} busy (the rest: spikes, a lost replica); {m.poll_cache_hits:.0%} of a "
        "checkout's polls hit the status cache (each follows a status change, which invalidated the view).",
        "",
    ]
    derived_rows = [
        (
            f"API CPU: checkout + {i.polls_per_checkout:g} polls = {_n(d.api_us_per_checkout_with_polls)} µs"
            + mark("api"),
            _n(d.api_cores, 1),
            "cores",
            f"**{d.api_processes} API processes** (1 core each)",
        ),
        (
            "worker CPU" + mark("worker"),
            _n(d.worker_cores, 1),
            "cores",
            f"**{d.worker_processes} arq workers** (1 core each)",
        ),
        (
            "MariaDB primary CPU" + mark("db"),
            _n(d.db_cores, 1),
            "cores",
            f"**{d.db_cores_provisioned} cores**",
        ),
        (
            "MariaDB CPU, cross-check: bench (d) + polls",
            _n(m.rate * d.db_us_per_checkout_bench_with_polls / 1e6, 1),
            "cores",
            "all of mariadbd during the bench",
        ),
        ("status polls", _n(d.polls_per_s), "polls/s", "in the API row"),
        ("commits", _n(d.commits_per_s), "commits/s", "one primary"),
        ("SQL statements", _n(d.statements_per_s), "statements/s", ""),
        (
            "redo log flushes",
            f"≤ {_n(d.log_flushes_max_per_s)}",
            "flushes/s",
            f"so ≥ {_n(d.commits_per_flush_needed, 1)} commits per group commit (this box showed "
            f"{_n(d.commits_per_flush_seen, 1)})",
        ),
        (
            f"DB connections busy (Little's law, {_n(i.round_trips_per_checkout)} round trips × "
            f"{m.network_rtt_ms:g} ms network, assumed)",
            _n(d.connections_busy),
            "connections",
            f"{d.connections_configured:,} configured by the pools vs `max_connections` {m.max_connections}",
        ),
        ("Redis commands", _n(d.redis_commands_per_s), "commands/s", ""),
        ("status bus deliveries (PUBLISH × API processes)", _n(d.bus_deliveries_per_s), "messages/s", ""),
        (
            "Redis: commands + deliveries (a delivery taken to cost a command)",
            _n(d.redis_load_per_s),
            "ops/s",
            f"**{d.redis_core_share:.0%} of one Redis core**",
        ),
        ("Toss API calls", _n(d.pg_calls_per_s), "calls/s", "Toss's limit: unknown"),
    ]
    lines += _table(("what", "at that rate", "unit", "provisioned"), "lrll", derived_rows)
    limit_rows = []
    for name, limit in d.limits.items():
        busy = d.loads.get(name)
        load = "unknown" if busy is None else f"{busy:.0%}"
        first = " ← first" if name == d.first_bottleneck else ""
        limit_rows.append((name + first, _n(limit), load))
    lines += [
        "",
        "## Where a single instance saturates",
        "",
        f"API and worker processes scale out; these do not. At 100 % busy, a {m.db_host_cores}-core primary:",
        "",
    ]
    lines += _table(("single instance", "checkouts/s", f"load at {m.rate:,.0f}/s"), "lrr", limit_rows)
    known = sorted((v, k) for k, v in d.limits.items() if v is not None)
    lines += [
        "",
        f"First: **{known[0][1]}**"
        + (
            f"; next, {known[1][1]}, at {known[1][0] / known[0][0]:.2f}× its rate. Both are estimates: "
            'read them as "the same order of magnitude", and Toss\'s limit, unknown, may come before either.'
            if len(known) > 1
            else "."
        ),
        "",
        f"Redo log flushes (estimate): InnoDB flushes the log one group at a time, each about as long as a lone "
        f"COMMIT ({_n(i.commit_p50_ms_single, 2)} ms here), carrying the commits that waited "
        f"(up to {_n(d.commits_per_flush_seen, 1)} per fsync here; more with more writers waiting). The "
        "estimate moves with the disk, the fsync setting and the run (this VM's fsync is cheap and uneven): "
        f"`{flush_setting}`. On a disk whose fsync takes 1 ms, {_n(d.commits_per_s)} commits/s need ≥ "
        f"{_n(d.commits_per_s / 1000, 0)} commits per flush. Run `make db-ceiling` on the production "
        "database's disk before trusting this row.",
        "Toss: no rate limit is documented in this repository (mock_toss/README.md has none, docs/api.md neither): "
        f"unknown. Ask Toss for the contract's limit; at the target rate it is {_n(d.pg_calls_per_s)} calls/s.",
        "",
        "## What to change at that point",
        "",
    ]
    mode = ceiling["pattern"].get("connection_mode", "engine")
    extra_trips = i.round_trips_per_checkout - i.statements_per_checkout - i.commits_per_checkout
    if other is None:
        other_mode = "engine" if mode == "direct" else "direct"
        mode_effect = (
            f"the other mode not measured: `make db-ceiling DB_CEILING_ARGS=--connection-mode={other_mode}`"
        )
    else:
        runs = {mode: ceiling, other["pattern"].get("connection_mode", "engine"): other}
        engine, direct = runs.get("engine", ceiling), runs.get("direct", ceiling)
        us_engine, us_direct = (
            engine["summary"]["db_cpu_us_per_checkout"],
            direct["summary"]["db_cpu_us_per_checkout"],
        )
        mode_effect = (
            f"measured here: MariaDB {_n(us_engine)} µs per checkout through the engine, {_n(us_direct)} µs direct "
            f"({(us_direct - us_engine) / us_engine:+.0%}); the box's ceiling {_n(engine['summary']['max_checkouts_per_s'])} "
            f"→ {_n(direct['summary']['max_checkouts_per_s'])} checkouts/s"
        )
    change_rows = [
        (
            f"primary CPU > {m.utilisation:.0%}",
            "read replicas for status polls, history, detail and list reads",
            f"polls are {d.poll_share_of_db:.0%} of the primary's CPU per checkout (more for pollers of settled "
            "payments); the write path's SELECTs (callback, jobs) stay on the primary",
            "replica lag: a poll may show the previous status for the lag (the status cache already allows "
            "5 s); one more server to run",
        ),
        (
            "commits near the log-flush limit",
            f"fewer commits per checkout (now {i.commits_per_checkout:g}): 30→40 and 40→45 in one transaction, "
            "the webhook's record and finish in one",
            f"each commit removed: −{1 / i.commits_per_checkout:.1%} commits and flushes",
            "a longer transaction holds its row locks longer",
        ),
        (
            f"fsync-bound at `{flush_setting}`",
            "group commit: enough concurrent committers per flush (automatic in InnoDB; with `log_bin=ON` also "
            "`binlog_commit_wait_count` / `binlog_commit_wait_usec`); a log device with a fast fsync",
            f"commits per flush: up to {_n(d.commits_per_flush_seen, 1)} here, "
            f"{_n(d.commits_per_flush_needed, 1)} needed at the target",
            "a commit waits for its group: a few ms more latency",
        ),
        (
            "only with durability held elsewhere",
            "`innodb_flush_log_at_trx_commit=2` (log written at commit, fsynced once a second)",
            "no fsync per commit",
            "an OS crash or power loss loses up to ~1 s of committed payments: not for money unless a "
            "semi-synchronous replica has them",
        ),
        (
            f"the table grows: {_n(m.rate * 86400 / 1e6, 1)} M transactions and "
            f"{_n(5 * m.rate * 86400 / 1e6, 1)} M history rows a day at the target rate, sustained",
            "partition `transactions` and `transaction_history` by month (RANGE on `created_at`), archive or "
            "drop old months",
            "dropping a month is instant; hot indexes stay small",
            "InnoDB partitioned tables have no foreign keys (history and refunds reference `transactions`); "
            "every unique key must include `created_at` (`uq_transactions_transaction_id`, "
            "`uq_entitlements_transaction_id`); a lookup by id must name the month (the id carries the date)",
        ),
        (
            f"one Redis > {m.utilisation:.0%} of its core ({d.redis_core_share:.0%} at the target)",
            "a Redis per role: queue (arq), idempotency + rate limits, status bus (pub/sub)",
            f"each role its own core and failure domain; the queue is {_role_share('queue'):.0%} of the commands",
            "three URLs to configure and watch; the bus fan-out still grows with API processes",
        ),
        (
            f"round trips: {_n(i.round_trips_per_checkout)} per checkout, {_n(extra_trips)} of them "
            + ("the pool's ping and ROLLBACK" if mode == "engine" else "BEGINs"),
            "the write path on plain driver connections (app.db_direct): BEGIN … COMMIT, autocommit reads, "
            "no pre-ping, no reset on return" + (" — what the app does now" if mode == "direct" else ""),
            mode_effect,
            "a dead connection is found by its BEGIN (and replaced); a block must end its own transaction",
        ),
        (
            f"pools: {d.connections_configured:,} connections for {d.api_processes + d.worker_processes} processes "
            f"> `max_connections` {m.max_connections}",
            f"size pools by Little's law (~{_n(d.connections_busy)} busy at the target): "
            "`DATABASE_POOL_SIZE` 2–4 per process, `DATABASE_MAX_OVERFLOW` small; or a proxy (ProxySQL, MaxScale)",
            "no connection storm at a failover; MariaDB threads stay few",
            "a pool too small queues requests behind its timeout",
        ),
        (
            f"API or worker CPU > {m.utilisation:.0%}",
            "more processes: both are stateless (the status bus keeps the caches coherent)",
            "linear",
            "more subscribers on the bus, more connections",
        ),
    ]
    lines += _table(("when", "change", "what it buys", "what it costs"), "llll", change_rows)
    if other_path:
        lines += ["", f"The other connection mode's run: `{other_path}`."]
    return "\n".join(lines) + "\n"


def _role_share(prefix: str) -> float:
    total = sum(REDIS_COMMANDS_PER_CHECKOUT.values())
    return sum(v for k, v in REDIS_COMMANDS_PER_CHECKOUT.items() if k.startswith(prefix)) / total


def _bench_command(bench: dict[str, Any]) -> str:
    """`make bench` and the settings its report records (it does not record its command line)."""
    c = bench.get("context", {})
    settings = [
        f"{c.get('api_workers', '?')} API workers",
        f"server {c['server']}" if c.get("server") else "",
        f"{c.get('connections', '?')} connections",
        f"{c.get('duration', '?')} s per case, {c.get('rounds', '?')} round(s)",
    ]
    return "`make bench` (`scripts/bench.py`: " + ", ".join(x for x in settings if x) + ")"


def _bench_date(path: str) -> str:
    name = Path(path).parent.name  # bench-YYYYMMDD-HHMMSS
    digits = name.removeprefix("bench-")
    if len(digits) >= 8 and digits[:8].isdigit():
        return f"{digits[:4]}-{digits[4:6]}-{digits[6:8]}"
    return "?"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bench", type=Path, help="bench.json (default: the newest under loadtests/reports)")
    parser.add_argument("--db-ceiling", type=Path, help="db-ceiling.json (default: the newest)")
    parser.add_argument("--rate", type=float, default=1000.0, help="checkouts per second (default 1000)")
    parser.add_argument(
        "--utilisation", type=float, default=0.6, help="target busy share of a core (default 0.6)"
    )
    parser.add_argument(
        "--polls", type=float, default=DESIGN_POLLS_PER_CHECKOUT, help="polls per checkout (default 2)"
    )
    parser.add_argument("--poll-cache-hits", type=float, default=0.0, help="share of polls the cache answers")
    parser.add_argument(
        "--db-cpu",
        choices=["ceiling", "bench"],
        default="ceiling",
        help="MariaDB CPU per checkout from the db-ceiling (default) or the bench's (d) + polls",
    )
    parser.add_argument(
        "--connection-mode",
        choices=["auto", "engine", "direct"],
        default="auto",
        help="which db-ceiling run is the model's: auto (default) = how the app reaches MariaDB now",
    )
    parser.add_argument("--db-host-cores", type=int, default=16, help="the primary's cores (default 16)")
    parser.add_argument(
        "--placeholders",
        default="api,worker",
        help="inputs to mark as placeholders: api,worker,db or none (default api,worker)",
    )
    parser.add_argument("--write", type=Path, help="also write the Markdown there (loadtests/CAPACITY.md)")
    args = parser.parse_args(argv)
    if not 0 < args.utilisation <= 1 or not 0 <= args.poll_cache_hits <= 1 or args.rate <= 0:
        parser.error("--utilisation in (0, 1], --poll-cache-hits in [0, 1], --rate > 0")
    return args


def _app_connection_mode() -> str:
    """As scripts/db_ceiling.py decides it: direct when the app has app.db_direct."""
    return "direct" if (REPO_ROOT / "app" / "db_direct.py").exists() else "engine"


def _relative(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return path.name


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    bench_path = args.bench or newest("bench-*/bench.json")
    mode = _app_connection_mode() if args.connection_mode == "auto" else args.connection_mode
    ceiling_path = args.db_ceiling or newest("db-ceiling-*/db-ceiling.json", lambda r: _full_pattern(r, mode))
    if bench_path is None or ceiling_path is None:
        print(
            "no bench report, or no db-ceiling report of the whole pattern in this connection mode, under "
            "loadtests/reports: run `make bench` and `make db-ceiling`"
        )
        return 2
    bench = json.loads(bench_path.read_text())
    ceiling = json.loads(ceiling_path.read_text())
    # The same pattern through the other connection mode (engine ↔ direct), when there is a run of it.
    other = "engine" if ceiling["pattern"].get("connection_mode", "engine") == "direct" else "direct"
    other_path = newest("db-ceiling-*/db-ceiling.json", lambda r: _full_pattern(r, other))
    other_report = json.loads(other_path.read_text()) if other_path else None
    inputs = build_inputs(bench, ceiling, args.polls, args.db_cpu)
    model = Model(
        rate=args.rate,
        utilisation=args.utilisation,
        poll_cache_hits=args.poll_cache_hits,
        db_host_cores=args.db_host_cores,
        max_connections=int(ceiling["server"].get("max_connections", 151)),
    )
    placeholders = set() if args.placeholders == "none" else {p for p in args.placeholders.split(",") if p}
    if placeholders - {"api", "worker", "db"}:
        print("--placeholders: api, worker, db (comma-separated) or none")
        return 2
    text = render(
        inputs,
        model,
        derive(inputs, model),
        bench=bench,
        ceiling=ceiling,
        bench_path=_relative(bench_path),
        ceiling_path=_relative(ceiling_path),
        placeholders=placeholders,
        db_cpu=args.db_cpu,
        other=other_report,
        other_path=_relative(other_path) if other_path else None,
    )
    print(text)
    if args.write:
        args.write.write_text(text)
        print(f"wrote {_relative(args.write)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
