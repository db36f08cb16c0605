#!/usr/bin/env python
"""`make bench`: requests/s and p50/p99 latency of the API's endpoints, in one run, on one stack.

    (a) GET  /health/live                 the bare Litestar JSON endpoint: the framework's ceiling
    (au) GET /health/live                 the same under the other server: uvicorn (with
                                          --server uvicorn, granian: the row is then (ag))
    (b) GET  /api/payments/{id}/status     valid token, a settled transaction in MariaDB
    (bu) GET /api/payments/{id}/status     the same under the other server ((bg) with --server uvicorn)
    (c) POST /api/payments/issue           with a fresh Idempotency-Key (what the frontend sends)
    (c') POST /api/payments/issue          without Idempotency-Key
    (d) full checkout                      issue → mock payment window → success callback (302)
    (pb) GET /api/payments/{id}/status     the same requests to the FastAPI peer
    (pc) POST /api/payments/issue          the same as (c), to the FastAPI peer

Every figure is also given as a ratio to (a). After the table, each target of the write path
(loadtests/README.md, "The write path"): (b) ≥ 60 % of (a); (c) ≥ 25 % of (a) and ≤ 500 µs of
API CPU; (d) ≤ 6,000 µs API, ≤ 3,000 µs worker, ≤ 15,000 µs all processes. The main rows run
under `payments serve --server` (--server, default the SERVER setting's default); (au) and (bu)
under the other server, on an API of their own over the same database and Redis, and the table
ends with granian ÷ uvicorn and each server's memory (loadtests/README.md, "uvicorn or
granian").

The peer (loadtests/peers/fastapi_peer.py) is the same two endpoints written the ordinary way:
FastAPI + pydantic v2 + SQLAlchemy ORM sessions, on the same MariaDB schema, Redis db and JWT
secret, one uvicorn worker (--peer-workers). The table ends with project ÷ peer for status
((b) ÷ (pb), goal ≥ 10×) and issue ((c) ÷ (pc), goal ≥ 3×); compare with --api-workers 1.

    .venv/bin/python scripts/bench.py                     # what `make bench` runs
    .venv/bin/python scripts/bench.py --duration 20 --connections 32 --rounds 3
    .venv/bin/python scripts/bench.py --rounds 5 --only a,au,b,bu   # granian vs uvicorn, 5 rounds

Load generator: wrk (installed with apt-get when missing and allowed) for (a)–(c'), with
scripts/bench_wrk.lua; Locust (loadtests/bench_locustfile.py, FastHttpUser) for (d), which chains
requests to two servers, and for everything when wrk cannot be had. The stack is the one
`make loadtest` starts (scripts/loadtest.py: LocalStack), on its own database and Redis db.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

SCRIPTS = Path(__file__).resolve().parent
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from loadtest import (  # noqa: E402  (scripts/loadtest.py: the stack is shared, not copied)
    DEFAULT_SERVER,
    FRONTEND_BASE_URL,
    REPO_ROOT,
    REPORTS_DIR,
    SERVERS,
    STOP_GRACE_SECONDS,
    LocalStack,
    StackError,
    StackOptions,
    sigterm_as_interrupt,
)

from tests.support.servers import (  # noqa: E402
    ProcessFailed,
    RunningServer,
    free_port,
    start_server,
)

WRK_SCRIPT = SCRIPTS / "bench_wrk.lua"
BENCH_LOCUSTFILE = REPO_ROOT / "loadtests" / "bench_locustfile.py"
CARD_APPROVE = "4330000000000005"
ISSUE_BODY = {"productType": "STUDY", "productId": "study_123", "amount": 50_000}


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


UNCACHED = "api-uncached"  # a second API with STATUS_CACHE_TTL_SECONDS=0: every poll reads MariaDB
PEER = "peer"  # loadtests/peers/fastapi_peer.py: FastAPI + pydantic + SQLAlchemy ORM, same DB and Redis
PEER_APP = "loadtests.peers.fastapi_peer:app"
# project ÷ peer: (project case, peer case, name, goal)
PEER_GOALS: tuple[tuple[str, str, str, float], ...] = (
    ("b", "pb", "status", 10.0),
    ("c", "pc", "issue", 3.0),
)


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    mode: str  # the BENCH_MODE of bench_wrk.lua / bench_locustfile.py
    unit: str = "req/s"
    server: str = "api"  # "api", "api-uncached" (status cache off) or "peer" (the FastAPI peer)


def other_server(server: str) -> str:
    return next(s for s in SERVERS if s != server)


def other_api(server: str) -> str:
    """The name of the API that runs under the other server (its CPU group too)."""
    return f"api-{other_server(server)}"


def cases_for(server: str) -> tuple[Case, ...]:
    """Every case, with (a) and (b) again under the server that is not `server`."""
    other = other_server(server)
    ours = list(CASES)
    ours.insert(
        1, Case(f"a{other[0]}", f"GET /health/live (bare), {other}", "live", server=other_api(server))
    )
    ours.insert(
        3,
        Case(f"b{other[0]}", f"GET /api/payments/{{id}}/status, {other}", "status", server=other_api(server)),
    )
    return tuple(ours)


CASES: tuple[Case, ...] = (
    Case("a", "GET /health/live (bare)", "live"),
    Case("b", "GET /api/payments/{id}/status", "status"),
    Case("b'", "GET /api/payments/{id}/status, cache off", "status", server=UNCACHED),
    Case("c", "POST /api/payments/issue (+Idempotency-Key)", "issue_idem"),
    Case("c'", "POST /api/payments/issue (no key)", "issue"),
    Case("d", "checkout: issue → window → callback", "checkout", unit="checkouts/s"),
    Case("pb", "peer (FastAPI+ORM): GET status", "status", server=PEER),
    Case("pc", "peer (FastAPI+ORM): POST issue (+Idem-Key)", "issue_idem", server=PEER),
)


@dataclass
class Result:
    key: str
    label: str
    unit: str
    generator: str
    requests: int
    seconds: float
    rate: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core over the window
    note: str = ""
    server: str = "api"  # the CPU group of the API that served the case

    def cpu_us_per_request(self, part: str) -> float | None:
        """CPU microseconds `part` spent per request (per checkout for (d)): robust to a busy machine."""
        if not self.requests or part not in self.cpu:
            return None
        return self.cpu[part] / 100 * self.cpu.get("seconds", self.seconds) / self.requests * 1e6


# --- CPU accounting -----------------------------------------------------------------------------


def _tree_seconds(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        total = 0.0
        for process in [root, *root.children(recursive=True)]:
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
        return total
    except psutil.Error:
        return 0.0


def _database_pids() -> list[int]:
    pids = []
    for process in psutil.process_iter(["name"]):
        if process.info.get("name") in ("mariadbd", "mysqld"):
            pids.append(process.pid)
    return pids


class CpuMeter:
    """CPU seconds used by each part of the stack, the generator and the whole machine over a window."""

    def __init__(self, stack: LocalStack) -> None:
        self.groups: dict[str, list[int]] = {m.name: [m.process.pid] for m in stack.processes}
        self.groups["db"] = _database_pids()

    def _sample(self) -> dict[str, float]:
        sample = {name: sum(_tree_seconds(pid) for pid in pids) for name, pids in self.groups.items()}
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        sample["gen"] = children.ru_utime + children.ru_stime  # finished generators (wrk, Locust)
        machine = psutil.cpu_times()
        sample["machine"] = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        return sample

    def measure(self, run: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
        before, started = self._sample(), time.monotonic()
        value = run()
        after, elapsed = self._sample(), time.monotonic() - started
        percent: dict[str, float] = {k: round(100 * (after[k] - before[k]) / elapsed) for k in before}
        ours = sum(v for k, v in percent.items() if k != "machine")
        percent["other"] = max(0, percent["machine"] - ours)  # everything else on the machine
        percent["seconds"] = round(elapsed, 3)
        return value, percent


# --- load generators ------------------------------------------------------------------------------


def ensure_wrk(allow_install: bool) -> str | None:
    """The wrk binary; installed with apt-get (as root, or sudo -n) when missing and allowed."""
    found = shutil.which("wrk")
    if found or not allow_install or not shutil.which("apt-get"):
        return found
    prefix: list[str] = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else [])
    if os.geteuid() != 0 and not prefix:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*prefix, "apt-get", "install", "-y", "-qq", "wrk"]
    log("wrk is missing: apt-get install -y wrk")
    if subprocess.run(install, env=env, capture_output=True, timeout=600, check=False).returncode != 0:
        subprocess.run(
            [*prefix, "apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600, check=False
        )
        subprocess.run(install, env=env, capture_output=True, timeout=600, check=False)
    return shutil.which("wrk")


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    return (
        (out.stdout or out.stderr).splitlines()[0].split(" Copyright")[0]
        if (out.stdout or out.stderr)
        else "wrk"
    )


def run_wrk(
    wrk: str,
    case: Case,
    url: str,
    *,
    seconds: float,
    args: argparse.Namespace,
    env: dict[str, str],
    log_path: Path,
) -> dict[str, Any]:
    command = [
        wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        # a fresh run id per wrk run: Idempotency-Keys must never repeat (a repeat is a cheap replay)
        env={**os.environ, **env, "BENCH_MODE": case.mode, "BENCH_RUN_ID": secrets.token_hex(6)},
        check=False,
    )
    with log_path.open("a") as handle:
        handle.write(f"$ {' '.join(command)}\n{completed.stdout}{completed.stderr}\n")
    for line in completed.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            parsed: dict[str, Any] = json.loads(line.removeprefix("BENCH_RESULT "))
            return parsed
    raise RuntimeError(f"wrk gave no result (exit {completed.returncode}): {completed.stderr[-2000:]}")


def run_locust(
    case: Case,
    stack: LocalStack,
    url: str,
    *,
    args: argparse.Namespace,
    env: dict[str, str],
    folder: Path,
) -> dict[str, Any]:
    result_path = folder / f"locust-{case.mode}.json"
    result_path.unlink(missing_ok=True)
    total = args.warmup + args.duration
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(BENCH_LOCUSTFILE),
        "--headless",
        "--host",
        url,
        "--users",
        str(args.connections),
        "--spawn-rate",
        str(args.connections),
        "--run-time",
        f"{total:g}s",
        "--stop-timeout",
        "0",
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]
    if args.locust_processes > 1:
        command += ["--processes", str(args.locust_processes)]
    with (folder / "locust.log").open("a") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        subprocess.run(
            command,
            cwd=REPO_ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            timeout=total + 120,
            env={
                **os.environ,
                **env,
                "BENCH_MODE": case.mode,
                "BENCH_WARMUP": str(args.warmup),
                "BENCH_RESULT": str(result_path),
                "BENCH_MOCK_URL": stack.mock_url,
                "BENCH_FRONTEND_URL": FRONTEND_BASE_URL,
            },
            check=False,
        )
    if not result_path.exists():
        raise RuntimeError(f"Locust wrote no result for {case.mode}; see {folder / 'locust.log'}")
    parsed: dict[str, Any] = json.loads(result_path.read_text())
    return parsed


# --- preparing transactions for the status endpoint -------------------------------------------------


def prepare_targets(stack: LocalStack, count: int, users: int, path: Path) -> int:
    """Issue `count` transactions for `users` users and pay them (issue → window → callback).

    Waits (up to 60 s) until they are provisioned (50); returns how many are. Writes "token id" lines.
    """
    tokens = [stack.token(f"bench-{i:03d}-{secrets.token_hex(3)}") for i in range(users)]

    def one(index: int) -> tuple[str, str]:
        token = tokens[index % users]
        with httpx.Client(timeout=30) as client:
            issued = client.post(
                f"{stack.api_url}/api/payments/issue",
                json=ISSUE_BODY,
                headers={"Authorization": f"Bearer {token}"},
            )
            issued.raise_for_status()
            body = issued.json()
            window = client.post(
                f"{stack.mock_url}/_mock/checkout",
                json={
                    "clientKey": body["clientKey"],
                    "orderId": body["transactionId"],
                    "amount": body["amount"],
                    "orderName": body["orderName"],
                    "method": "CARD",
                    "successUrl": body["successUrl"],
                    "failUrl": body["failUrl"],
                    "cardNumber": CARD_APPROVE,
                },
            )
            window.raise_for_status()
            callback = client.get(window.json()["redirectUrl"], follow_redirects=False)
            if callback.status_code != 302 or "/payment/success" not in callback.headers.get("location", ""):
                raise RuntimeError(f"callback: {callback.status_code} {callback.headers.get('location')}")
        return token, body["transactionId"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        pairs = list(pool.map(one, range(count)))
    path.write_text("".join(f"{token} {tid}\n" for token, tid in pairs))
    deadline = time.monotonic() + 60
    pending = {tid: token for token, tid in pairs}
    with httpx.Client(timeout=10) as client:
        while pending and time.monotonic() < deadline:
            for tid, token in list(pending.items()):
                answer = client.get(
                    f"{stack.api_url}/api/payments/{tid}/status", headers={"Authorization": f"Bearer {token}"}
                )
                answer.raise_for_status()
                if answer.json()["statusCode"] == 50:
                    del pending[tid]
            if pending:
                time.sleep(0.5)
    return count - len(pending)


# --- the FastAPI peer -----------------------------------------------------------------------------------


def start_peer(stack: LocalStack, workers: int, folder: Path) -> RunningServer:
    """The peer under uvicorn on the stack's database, Redis db and JWT secret; StackError if it fails."""
    for attempt in range(1, 4):
        port = free_port()
        try:
            server = start_server(
                [
                    "uvicorn",
                    PEER_APP,
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                port=port,
                health_path="/health",
                env=stack.env,
                timeout=60,
                name=PEER,
                log_path=folder / "logs" / f"{PEER}.log",
                own_group=True,
                grace_seconds=STOP_GRACE_SECONDS,
            )
        except ProcessFailed as exc:
            if attempt == 3:
                raise StackError(f"the FastAPI peer did not start: {exc}") from exc
            continue
        log(f"FastAPI peer up: {server.url} ({workers} worker(s))")
        return server
    raise StackError("the FastAPI peer did not start")


# --- the run --------------------------------------------------------------------------------------


def measure(
    case: Case,
    stack: LocalStack,
    meter: CpuMeter,
    *,
    generator: str,
    wrk: str | None,
    args: argparse.Namespace,
    env: dict[str, str],
    folder: Path,
    peer_url: str | None = None,
) -> Result:
    url = peer_url if case.server == PEER and peer_url else stack.url_of(case.server)
    if generator == "wrk" and case.mode != "checkout":
        assert wrk is not None
        log_path = folder / "wrk.log"
        if args.warmup > 0:
            run_wrk(wrk, case, url, seconds=args.warmup, args=args, env=env, log_path=log_path)
        raw, cpu = meter.measure(
            lambda: run_wrk(wrk, case, url, seconds=args.duration, args=args, env=env, log_path=log_path)
        )
        seconds = raw["duration_us"] / 1e6
        errors = sum(
            raw[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
        )
        return Result(
            key=case.key,
            label=case.label,
            unit=case.unit,
            generator=f"wrk -t{args.threads} -c{args.connections}",
            requests=raw["requests"],
            seconds=seconds,
            rate=raw["requests"] / seconds if seconds else 0.0,
            p50_ms=raw["p50_us"] / 1000,
            p99_ms=raw["p99_us"] / 1000,
            errors=int(errors),
            cpu=cpu,
            server=case.server,
        )
    raw, cpu = meter.measure(lambda: run_locust(case, stack, url, args=args, env=env, folder=folder))
    wanted = {
        "checkout": "CHECKOUT checkout",
        "live": "GET live",
        "status": "GET status",
        "issue": "POST issue",
        "issue_idem": "POST issue_idem",
    }[case.mode]
    entry = raw["entries"].get(wanted, {"requests": 0, "failures": 0, "p50_ms": None, "p99_ms": None})
    seconds = float(raw["seconds"]) or 1.0
    note = "; ".join(raw.get("errors", [])[:2])
    # The CPU shares are averages over the whole Locust run (start-up and warm-up included); per
    # request they are applied to the measured window only, an approximation for a steady load.
    cpu["seconds"] = seconds
    processes = f", {args.locust_processes} processes" if args.locust_processes > 1 else ""
    return Result(
        key=case.key,
        label=case.label,
        unit=case.unit,
        generator=f"Locust FastHttpUser, {args.connections} users{processes}",
        requests=int(entry["requests"]),
        seconds=seconds,
        rate=entry["requests"] / seconds,
        p50_ms=entry["p50_ms"],
        p99_ms=entry["p99_ms"],
        errors=int(raw["total"]["failures"]),
        cpu=cpu,
        note=note,
        server=case.server,
    )


def server_memory(stack: LocalStack, name: str) -> dict[str, Any]:
    """RSS and USS (MiB; USS: pages no other process shares) of an API's processes: the one started
    (uvicorn's or granian's supervisor, or a lone uvicorn) and its children (the workers)."""

    def mib(process: psutil.Process) -> dict[str, float]:
        info = process.memory_full_info()
        return {"rss": round(info.rss / 2**20, 1), "uss": round(info.uss / 2**20, 1)}

    managed = next(m for m in stack.processes if m.name == name)
    try:
        root = psutil.Process(managed.process.pid)
        return {"main": mib(root), "children": [mib(child) for child in root.children(recursive=True)]}
    except psutil.Error as exc:
        return {"error": str(exc)}


def _memory_line(server: str, memory: dict[str, Any], ready_after: float | None) -> str:
    if "main" not in memory:
        return f"{server}: memory not read ({memory.get('error')})"
    main, children = memory["main"], memory["children"]
    parts = [f"main process {main['rss']:.0f} MiB RSS / {main['uss']:.0f} MiB USS"]
    if children:
        each = ", ".join(f"{c['rss']:.0f}/{c['uss']:.0f}" for c in children)
        parts.append(f"{len(children)} child process(es) {each} MiB RSS/USS")
    ready = f"; ready {ready_after:.1f} s after its start" if ready_after is not None else ""
    return f"{server}: " + ", ".join(parts) + ready


def granian_vs_uvicorn(rounds: dict[str, list[Result]], key: str, server: str) -> float | None:
    """Mean rate under granian ÷ under uvicorn of case `key` ("a" or "b") over every round."""
    by_server = {server: rounds.get(key), other_server(server): rounds.get(f"{key}{other_server(server)[0]}")}
    granian, uvicorn = by_server["granian"], by_server["uvicorn"]
    if not granian or not uvicorn:
        return None
    return statistics.fmean([r.rate for r in granian]) / statistics.fmean([r.rate for r in uvicorn])


def median_result(results: list[Result]) -> Result:
    """The round with the median rate (the others are kept in the JSON)."""
    ordered = sorted(results, key=lambda r: r.rate)
    return ordered[(len(ordered) - 1) // 2]


def machine_description() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


# The write path's targets on this 2-core box (loadtests/README.md, "The write path")
STATUS_TARGET_PERCENT = 60.0
ISSUE_TARGET_PERCENT = 25.0
ISSUE_API_US_TARGET = 500.0
CHECKOUT_TARGETS_US = {"api": 6_000.0, "worker": 3_000.0, "all": 15_000.0}


def write_path_verdicts(base: Result | None, by_key: dict[str, Result]) -> list[str]:
    """One line per target of the write path: the measured figure, the target, met or not."""

    def verdict(ok: bool) -> str:
        return "meets" if ok else "MISSES"

    lines = []
    issue = by_key.get("c")
    if issue and base and base.rate:
        share = 100 * issue.rate / base.rate
        api_us = issue.cpu_us_per_request(issue.server)
        lines.append(
            f"issue (c) = {share:.1f}% of the bare endpoint ({verdict(share >= ISSUE_TARGET_PERCENT)} the "
            f"{ISSUE_TARGET_PERCENT:g}% target); API CPU {_us(api_us)} us per issue "
            f"({verdict(api_us is not None and api_us <= ISSUE_API_US_TARGET)} the ≤ {ISSUE_API_US_TARGET:,.0f} us target)"
        )
    checkout = by_key.get("d")
    if checkout:
        parts = {
            part: checkout.cpu_us_per_request(part) for part in (checkout.server, "worker", "mock", "db")
        }
        total = sum(v for v in parts.values() if v is not None)
        api_us, worker_us = parts[checkout.server], parts["worker"]
        lines.append(
            f"checkout (d), CPU per checkout: API {_us(api_us)} us "
            f"({verdict(api_us is not None and api_us <= CHECKOUT_TARGETS_US['api'])} ≤ {CHECKOUT_TARGETS_US['api']:,.0f}), "
            f"worker {_us(worker_us)} us "
            f"({verdict(worker_us is not None and worker_us <= CHECKOUT_TARGETS_US['worker'])} ≤ "
            f"{CHECKOUT_TARGETS_US['worker']:,.0f}), mock {_us(parts['mock'])} us, MariaDB {_us(parts['db'])} us; "
            f"all processes {total:,.0f} us ({verdict(total <= CHECKOUT_TARGETS_US['all'])} ≤ "
            f"{CHECKOUT_TARGETS_US['all']:,.0f}: {2e6 / total if total else 0:,.0f} checkouts/s fit 2 cores)"
        )
    return lines


def render(results: list[Result], context: dict[str, Any]) -> str:
    base = next((r for r in results if r.key == "a"), None)
    lines = []
    head = (
        f"{'':<4}{'measurement':<46}{'rate':>10} {'unit':<12}{'p50 ms':>8}{'p99 ms':>8}{'vs (a)':>8}"
        f"{'errors':>7}{'API us':>8}{'DB us':>7}  CPU % of a core: api/db/worker/mock/gen/other"
    )
    lines += [head, "-" * len(head)]
    for r in results:
        ratio = f"{100 * r.rate / base.rate:.1f}%" if base and base.rate else "-"
        p50 = "-" if r.p50_ms is None else f"{r.p50_ms:.1f}"
        p99 = "-" if r.p99_ms is None else f"{r.p99_ms:.1f}"
        cpu = "/".join(str(r.cpu.get(k, "-")) for k in (r.server, "db", "worker", "mock", "gen", "other"))
        api_us, db_us = r.cpu_us_per_request(r.server), r.cpu_us_per_request("db")
        lines.append(
            f"({r.key}){'':<{3 - len(r.key)}}{r.label:<46}{r.rate:>10.1f} {r.unit:<12}{p50:>8}{p99:>8}"
            f"{ratio:>8}{r.errors:>7}{_us(api_us):>8}{_us(db_us):>7}  {cpu}"
        )
    status = next((r for r in results if r.key == "b"), None)
    uncached = next((r for r in results if r.key == "b'"), None)
    lines.append("")
    if base and status and base.rate:
        share = 100 * status.rate / base.rate
        verdict = "meets" if share >= STATUS_TARGET_PERCENT else "is BELOW"
        lines.append(
            f"status endpoint = {share:.1f}% of the bare endpoint: {verdict} the "
            f"{STATUS_TARGET_PERCENT:g}% target"
        )
    lines += write_path_verdicts(base, {r.key: r for r in results})
    if base and uncached and base.rate:
        lines.append(
            f"status endpoint with its cache off (every poll reads MariaDB) = "
            f"{100 * uncached.rate / base.rate:.1f}% of the bare endpoint"
        )
    by_key = {r.key: r for r in results}
    for ours, theirs, name, goal in PEER_GOALS:
        if ours in by_key and theirs in by_key and by_key[theirs].rate:
            times = by_key[ours].rate / by_key[theirs].rate
            verdict = "holds" if times >= goal else "does NOT hold"
            cpu_ours, cpu_theirs = (
                by_key[ours].cpu_us_per_request(by_key[ours].server),
                by_key[theirs].cpu_us_per_request(PEER),
            )
            per_cpu = f"{cpu_theirs / cpu_ours:.1f}×" if cpu_ours and cpu_theirs else "-"
            lines.append(
                f"{name}: project ÷ peer = {times:.1f}× in req/s (({ours}) ÷ ({theirs}); goal ≥ {goal:g}×: "
                f"{verdict}); per request the peer's process spends {per_cpu} the API's CPU"
            )
    main_server = context.get("server", DEFAULT_SERVER)
    other = other_server(main_server)
    for key, name in (("a", "bare"), ("b", "status")):
        main_row, other_row = by_key.get(key), by_key.get(f"{key}{other[0]}")
        if main_row and other_row:
            rows = {main_server: main_row, other: other_row}
            granian, uvicorn = rows["granian"], rows["uvicorn"]
            cpu_granian = granian.cpu_us_per_request(granian.server)
            cpu_uvicorn = uvicorn.cpu_us_per_request(uvicorn.server)
            cpu = (
                f"; API CPU per request {cpu_granian:,.0f} vs {cpu_uvicorn:,.0f} us"
                if cpu_granian and cpu_uvicorn
                else ""
            )
            ratio = f"{granian.rate / uvicorn.rate:.2f}×" if uvicorn.rate else "-"
            lines.append(
                f"{name}: granian ÷ uvicorn = {ratio} in req/s (({granian.key}) ÷ ({uvicorn.key})){cpu}"
            )
    for server, memory in context.get("memory", {}).items():
        lines.append(_memory_line(server, memory, context.get("ready_after", {}).get(server)))
    if any(r.server == PEER for r in results):
        lines.append(
            f"peer: {PEER_APP} under uvicorn, {context.get('peer_workers', 1)} worker(s), against "
            f"{context['api_workers']} API worker(s); same MariaDB database, Redis db and JWT secret"
        )
    lines.append("generators: " + "; ".join(f"({r.key}) {r.generator}" for r in results))
    lines.append(
        f"server: payments serve --workers {context['api_workers']} --server {main_server} (rows without "
        f"a server named), DATABASE_POOL_SIZE "
        f"{context['pool_size']}, 1 arq worker, mock Toss; {context['duration']} s per measurement after "
        f"{context['warmup']} s warm-up, {context['rounds']} round(s) (median shown)"
    )
    lines.append(
        "API us / DB us: CPU microseconds the API processes / MariaDB spent per request (per checkout "
        "for (d)); CPU %: share of one core during the measurement, 'other' = the rest of the machine"
    )
    m = context["machine"]
    lines.append(
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}, Python "
        f"{m['python']}; load average at start {m['load_average_at_start']}"
    )
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10, help="seconds per measurement (default 10)")
    parser.add_argument("--warmup", type=float, default=2, help="warm-up seconds before each (default 2)")
    parser.add_argument(
        "--connections", type=int, default=64, help="concurrent connections/users (default 64)"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat the set; the median is shown (default 1)"
    )
    parser.add_argument("--api-workers", type=int, default=2, help="API worker processes (default 2)")
    parser.add_argument(
        "--server",
        choices=SERVERS,
        default=DEFAULT_SERVER,
        help=f"`payments serve --server` of the main rows; (a) and (b) also run under the other "
        f"(default {DEFAULT_SERVER})",
    )
    parser.add_argument(
        "--pool-size", type=int, default=10, help="DATABASE_POOL_SIZE per process (default 10)"
    )
    parser.add_argument(
        "--transactions", type=int, default=200, help="settled transactions to poll (default 200)"
    )
    parser.add_argument("--users", type=int, default=20, help="users owning them (default 20)")
    parser.add_argument(
        "--generator", choices=["auto", "wrk", "locust"], default="auto", help="auto: wrk, else Locust"
    )
    parser.add_argument("--no-install", action="store_true", help="never apt-get install wrk")
    parser.add_argument(
        "--locust-processes",
        type=int,
        default=0,
        help="Locust processes (default: 1 for (d), cores with fallback)",
    )
    parser.add_argument("--only", default="", help="comma-separated case keys, e.g. a,b (default all)")
    parser.add_argument("--database", default="payments_bench", help="MariaDB database (recreated, dropped)")
    parser.add_argument("--redis-db", type=int, default=6, help="Redis database (flushed; default 6)")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("TEST_REDIS_HOST_URL", "redis://127.0.0.1:6379"),
        help="Redis server URL without db (default $TEST_REDIS_HOST_URL or redis://127.0.0.1:6379)",
    )
    parser.add_argument(
        "--peer-workers", type=int, default=1, help="uvicorn workers of the FastAPI peer (default 1)"
    )
    parser.add_argument(
        "--lock-wait", type=float, default=0, help="wait for another run on the same Redis db"
    )
    parser.add_argument(
        "--report-dir", type=Path, default=None, help="default loadtests/reports/bench-<timestamp>"
    )
    parser.add_argument(
        "--mysql-admin-url",
        default=os.environ.get("TEST_MARIADB_URL", "mysql+asyncmy://root@127.0.0.1:3306"),
        help="server URL without database",
    )
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.duration > 600 or args.rounds < 1 or args.rounds > 10:
        parser.error("--duration must be in (0, 600] and --rounds in [1, 10]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    folder: Path = (args.report_dir or REPORTS_DIR / time.strftime("bench-%Y%m%d-%H%M%S")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {k.strip() for k in args.only.split(",") if k.strip()}
    cases = [c for c in cases_for(args.server) if not wanted or c.key in wanted]
    compared = other_api(args.server)

    wrk = None if args.generator == "locust" else ensure_wrk(allow_install=not args.no_install)
    if args.generator == "wrk" and wrk is None:
        log("wrk is not available and could not be installed")
        return 2
    generator = "wrk" if wrk else "locust"
    if args.locust_processes <= 0:
        args.locust_processes = 1 if generator == "wrk" else (os.cpu_count() or 1)
    log(f"load generator: {wrk_version(wrk) if wrk else 'Locust (wrk not available)'}")
    machine = machine_description()
    extra_apis: dict[str, dict[str, str]] = {}
    if any(c.server == UNCACHED for c in cases):
        extra_apis[UNCACHED] = {"STATUS_CACHE_TTL_SECONDS": "0"}
    if any(c.server == compared for c in cases):
        extra_apis[compared] = {"SERVER": other_server(args.server)}
    options = StackOptions(
        api_workers=args.api_workers,
        server=args.server,
        database=args.database,
        drop_database=True,
        redis_db=args.redis_db,
        redis_base_url=args.redis_url,
        mysql_admin_url=args.mysql_admin_url,
        pool_size=args.pool_size,
        log_dir=folder / "logs",
        lock_wait_seconds=args.lock_wait,
        # (c) measures issuing, not the per-user rate limit (60 issues a minute by default)
        extra_env={"RATE_LIMIT_ISSUE_PER_MINUTE": "0"},
        extra_apis=extra_apis,
    )
    memory: dict[str, dict[str, Any]] = {}
    ready_after: dict[str, float] = {}
    rounds: dict[str, list[Result]] = {c.key: [] for c in cases}
    with sigterm_as_interrupt():
        try:
            with LocalStack(options) as stack:
                targets = folder / "targets.txt"
                log(f"preparing {args.transactions} paid transactions for {args.users} users")
                provisioned = prepare_targets(stack, args.transactions, args.users, targets)
                log(f"{provisioned}/{args.transactions} provisioned (50)")
                env = {"BENCH_TARGETS": str(targets)}
                meter = CpuMeter(stack)
                peer = None
                if any(c.server == PEER for c in cases):
                    peer = start_peer(stack, args.peer_workers, folder)
                    stack.processes.append(peer)  # stopped with the stack
                    meter.groups[PEER] = [peer.process.pid]
                for number in range(1, args.rounds + 1):
                    for case in cases:
                        log(f"round {number}/{args.rounds}: ({case.key}) {case.label}, {args.duration:g} s")
                        result = measure(
                            case,
                            stack,
                            meter,
                            generator=generator,
                            wrk=wrk,
                            args=args,
                            env=env,
                            folder=folder,
                            peer_url=peer.url if peer else None,
                        )
                        rounds[case.key].append(result)
                        log(
                            f"  {result.rate:.1f} {result.unit}, p50 {result.p50_ms} ms, p99 {result.p99_ms} ms, "
                            f"errors {result.errors}, CPU {result.cpu}"
                        )
                stack.check_alive()
                # After the load: each server's processes as they serve (caches and pools warm).
                memory[args.server] = server_memory(stack, "api")
                ready_after[args.server] = stack.ready_after["api"]
                if compared in stack.ready_after:
                    memory[other_server(args.server)] = server_memory(stack, compared)
                    ready_after[other_server(args.server)] = stack.ready_after[compared]
        except StackError as exc:
            log(f"could not run: {exc}")
            return 2
        except KeyboardInterrupt:
            log("interrupted: the stack is stopped")
            return 130
    results = [median_result(rounds[c.key]) for c in cases if rounds[c.key]]
    context = {
        "server": args.server,
        "memory": memory,
        "ready_after": ready_after,
        "api_workers": args.api_workers,
        "peer_workers": args.peer_workers,
        "pool_size": args.pool_size,
        "duration": args.duration,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "connections": args.connections,
        "machine": machine,
    }
    table = render(results, context)
    (folder / "bench.txt").write_text(table + "\n")
    (folder / "bench.json").write_text(
        json.dumps(
            {
                "context": context,
                "results": [asdict(r) for r in results],
                "rounds": {k: [asdict(r) for r in v] for k, v in rounds.items()},
                "project_vs_peer": {
                    name: (
                        statistics.fmean([r.rate for r in rounds[ours]])
                        / statistics.fmean([r.rate for r in rounds[theirs]])
                        if rounds.get(ours) and rounds.get(theirs)
                        else None
                    )
                    for ours, theirs, name, _ in PEER_GOALS
                },
                "status_vs_bare": (
                    statistics.fmean([r.rate for r in rounds["b"]])
                    / statistics.fmean([r.rate for r in rounds["a"]])
                    if rounds.get("a") and rounds.get("b")
                    else None
                ),
                # bare and status: granian's rate over uvicorn's ((ag) ÷ (a), or (a) ÷ (au), …)
                "granian_vs_uvicorn": {
                    name: granian_vs_uvicorn(rounds, key, args.server)
                    for key, name in (("a", "bare"), ("b", "status"))
                },
            },
            indent=2,
        )
        + "\n"
    )
    print()
    print(f"== Benchmark ({folder}) ==")
    print(table)
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
