#!/usr/bin/env python
"""`make fuzz`: the contract fuzzer (schemathesis) at scale, against a full local stack.

    .venv/bin/python scripts/fuzz.py                          # what `make fuzz` runs
    .venv/bin/python scripts/fuzz.py --seed 7 --min-requests 2000 --examples 60 --scenarios 150

The same harness as `make test`'s short run (tests/e2e/topology/fuzzing.py and
schemathesis_hooks.py): every built-in check plus the API's error envelope, all four phases
(examples, coverage, fuzzing, stateful), a fixed seed, and the OpenAPI links the service documents,
so the stateful phase walks catalog → issue → callback (the buyer pays in the mock's window) →
status → refund. Only the sizes are larger: by default 12,000-20,000 requests (at least 10,000
are required), in 2–3 minutes on a 2-core machine; --time-limit (default 15 min) stops a run that
takes longer and fails it. The seed fixes what schemathesis generates; which link a scenario
follows and the ids the service hands out still vary between runs.

The stack is the one `make loadtest` starts (scripts/loadtest.py: LocalStack): a fresh MariaDB
database (kept afterwards for inspection, recreated by the next run), a flushed Redis database,
the mock Toss with webhooks pointed at the API, the API and an arq worker, on free 127.0.0.1
ports; per-user rate limits are off (the fuzzer is one user).

Requests are counted by the hooks (one journal line per request answered or failed), not taken
from the configuration. Progress every 1,000 requests; at the end a summary by phase, operation
and status class, every 5xx and envelope violation with its request and answer, and schemathesis'
own failures. Exit status: 0 when there is no 5xx, no envelope violation, no schemathesis failure
and at least --min-requests requests; 1 otherwise; 2 when the stack could not start.
Reports (schemathesis output, JUnit, NDJSON, the journal, summary.txt, service logs) go to
var/fuzz/<timestamp>/.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO

SCRIPTS = Path(__file__).resolve().parent
REPO_ROOT = SCRIPTS.parent
for folder in (SCRIPTS, REPO_ROOT):  # scripts/loadtest.py and the tests' fuzzing harness
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from loadtest import LocalStack, StackError, StackOptions, sigterm_as_interrupt  # noqa: E402

from tests.e2e.topology.fuzzing import (  # noqa: E402
    DEFAULT_SEED,
    FuzzSize,
    JournalTally,
    config_text,
    failures_excerpt,
    hook_environment,
    links_line,
    read_journal,
    recorded_stats,
    schemathesis_command,
    tally,
)

FUZZ_DIR = REPO_ROOT / "var" / "fuzz"
PROGRESS_EVERY = 1_000
# The fuzzer is one user issuing thousands of transactions: the limiter has its own tests.
STACK_ENV = {
    "RATE_LIMIT_ISSUE_PER_MINUTE": "0",
    "RATE_LIMIT_REFUND_PER_MINUTE": "0",
    "RATE_LIMIT_WEBHOOK_PER_MINUTE": "0",  # every webhook example comes from this one address
    # A status stream of a pending transaction stays open for minutes: end each after a second, so
    # that the fuzzer reads whole answers and no request waits for its --request-timeout.
    "STREAM_MAX_SECONDS": "1",
}


def log(message: str) -> None:
    print(f"[fuzz] {message}", flush=True)


@dataclass
class JournalFollower:
    """Counts the journal's lines as the hooks write them; remembers the last phase seen."""

    path: Path
    lines: int = 0
    phase: str = "starting"
    _offset: int = 0
    _partial: bytes = b""

    def poll(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read()
        self._offset += len(chunk)
        data = self._partial + chunk
        complete, _, self._partial = data.rpartition(b"\n")
        if not complete:
            return
        new_lines = complete.split(b"\n")
        self.lines += len(new_lines)
        marker = b'"phase": "'
        last = new_lines[-1]
        at = last.find(marker)
        if at >= 0:
            self.phase = last[at + len(marker) :].split(b'"', 1)[0].decode()


def run_fuzzer(
    command: list[str],
    env: dict[str, str],
    output: IO[str],
    journal: Path,
    stack: LocalStack,
    time_limit: float,
) -> tuple[int, bool]:
    """Run schemathesis, print progress every PROGRESS_EVERY requests; (exit code, stopped early).

    Stopped early: the time limit, Ctrl-C or a service of the stack that died.
    """
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        stdout=output,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=journal.parent,
        env={**os.environ, **env},
    )
    follower = JournalFollower(journal)
    next_report = PROGRESS_EVERY
    stopped = False
    try:
        while process.poll() is None:
            time.sleep(0.5)
            follower.poll()
            elapsed = time.monotonic() - started
            while follower.lines >= next_report:
                log(f"{next_report:>7,} requests  {elapsed:6.0f} s  phase {follower.phase}")
                next_report += PROGRESS_EVERY
            if elapsed > time_limit:
                log(f"time limit of {time_limit:.0f} s reached: stopping schemathesis")
                stopped = True
                break
            stack.check_alive()
    except (KeyboardInterrupt, StackError) as exc:
        log(f"stopping schemathesis ({exc or 'interrupted'})")
        stopped = True
        if isinstance(exc, StackError):
            output.write(f"\n[fuzz] the stack broke during the run: {exc}\n")
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # schemathesis writes its reports on Ctrl-C
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode, stopped


def error_records(log_path: Path) -> list[str]:
    """The ERROR records of a service's JSON log (one object per line)."""
    if not log_path.exists():
        return []
    return [line for line in log_path.read_text(errors="replace").splitlines() if '"level": "ERROR"' in line]


def _row(label: str, counts: Counter[str], classes: list[str]) -> str:
    total = sum(counts.values())
    return f"  {label:<46}{total:>8,}" + "".join(f"{counts.get(c, 0):>10,}" for c in classes)


def summary_text(
    *,
    seed: int,
    size: FuzzSize,
    elapsed: float,
    counted: JournalTally,
    recorded: int,
    exit_code: int,
    stopped: bool,
    output: str,
    api_errors: list[str],
    min_requests: int,
) -> tuple[str, list[str]]:
    """The summary block and the reasons the run fails (empty when it passes)."""
    classes = ["2xx", "3xx", "4xx", "5xx", "no answer"]
    rate = counted.requests / elapsed if elapsed else 0.0
    lines = [
        f"seed {seed} · {size.examples_per_operation} examples per operation · "
        f"{size.stateful_scenarios} stateful scenarios of ≤ {size.stateful_steps} steps",
        f"requests: {counted.requests:,} sent by the fuzzer (counted by the hooks) in {elapsed:.0f} s "
        f"({rate:.0f}/s); {recorded:,} interactions recorded by schemathesis, check probes included",
        "by phase: " + " · ".join(f"{phase} {count:,}" for phase, count in sorted(counted.by_phase.items())),
        "by status class: " + " · ".join(f"{c} {counted.by_class.get(c, 0):,}" for c in classes),
    ]
    links = links_line(output)
    if links:
        lines.append(links.replace("API Links:", "OpenAPI links followed:").replace("  ", " "))
    lines += ["by operation:", f"  {'operation':<46}{'total':>8}" + "".join(f"{c:>10}" for c in classes)]
    for operation in sorted(counted.by_operation):
        lines.append(_row(operation, counted.by_operation[operation], classes))
    lines.append(
        f"5xx answers: {len(counted.server_errors)} · envelope violations: {len(counted.envelope_violations)} · "
        f"ERROR records in the API's log: {len(api_errors)} · schemathesis exit code: {exit_code}"
    )
    for title, entries in (
        ("5xx", counted.server_errors),
        ("envelope violation", counted.envelope_violations),
    ):
        for entry in entries[:20]:
            lines += [
                f"--- {title}: {entry['operation']} → {entry['status']} ({entry['phase']})",
                f"    request:  {entry.get('request')}",
                f"    response: {entry.get('response')}",
            ]
            if entry.get("envelope"):
                lines.append(f"    problem:  {entry['envelope']}")
        if len(entries) > 20:
            lines.append(f"    ... and {len(entries) - 20} more {title} entries in the journal")
    for record in api_errors[:5]:
        lines.append(f"--- API log: {record[:600]}")

    reasons = []
    if counted.server_errors:
        reasons.append(f"{len(counted.server_errors)} answers were 5xx")
    if counted.envelope_violations:
        reasons.append(f"{len(counted.envelope_violations)} error answers broke the envelope")
    if exit_code != 0:
        reasons.append(f"schemathesis exited with code {exit_code} (1: it found failures)")
    if stopped:
        reasons.append("the run was stopped before it finished (time limit, interrupt or a dead service)")
    if counted.requests < min_requests:
        reasons.append(f"only {counted.requests:,} requests were sent (at least {min_requests:,} wanted)")
    if exit_code != 0:
        lines += ["", "schemathesis' own summary and failures:", failures_excerpt(output)]
    return "\n".join(lines), reasons


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"schemathesis seed (default {DEFAULT_SEED})"
    )
    parser.add_argument(
        "--min-requests", type=int, default=10_000, help="fail when fewer requests were sent (default 10000)"
    )
    parser.add_argument(
        "--examples", type=int, default=1000, help="fuzzing phase: test cases per operation (default 1000)"
    )
    parser.add_argument(
        "--scenarios",
        type=int,
        default=1000,
        help="stateful phase: at most this many scenarios; Hypothesis ends the phase earlier when too many "
        "generated ones are invalid (default 1000)",
    )
    parser.add_argument(
        "--steps", type=int, default=10, help="stateful phase: steps per scenario (default 10)"
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=900,
        help="stop and fail a run longer than this, in s (default 900)",
    )
    parser.add_argument("--api-workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    parser.add_argument(
        "--database", default="payments_fuzz", help="MariaDB database, recreated (default payments_fuzz)"
    )
    parser.add_argument("--redis-db", type=int, default=8, help="Redis database, flushed (default 8)")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("TEST_REDIS_HOST_URL", "redis://127.0.0.1:6379"),
        help="Redis server without database (default $TEST_REDIS_HOST_URL or redis://127.0.0.1:6379)",
    )
    parser.add_argument(
        "--mysql-admin-url",
        default=os.environ.get("TEST_MARIADB_URL", "mysql+asyncmy://root@127.0.0.1:3306"),
        help="MariaDB server URL without database",
    )
    parser.add_argument("--report-dir", type=Path, default=None, help="default var/fuzz/<timestamp>")
    args = parser.parse_args(argv)
    if min(args.examples, args.scenarios, args.steps) < 1:
        parser.error("--examples, --scenarios and --steps must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    report_dir: Path = (args.report_dir or FUZZ_DIR / time.strftime("%Y%m%d-%H%M%S")).resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    size = FuzzSize(
        examples_per_operation=args.examples, stateful_scenarios=args.scenarios, stateful_steps=args.steps
    )
    options = StackOptions(
        api_workers=args.api_workers,
        database=args.database,
        redis_db=args.redis_db,
        redis_base_url=args.redis_url,
        mysql_admin_url=args.mysql_admin_url,
        log_dir=report_dir / "logs",
        extra_env=STACK_ENV,
    )
    journal = report_dir / "journal.ndjson"
    config = report_dir / "schemathesis.toml"
    config.write_text(config_text(size))
    out_path = report_dir / "schemathesis.out"
    log(
        f"seed {args.seed}; {size.examples_per_operation} examples per operation, {size.stateful_scenarios} "
        f"stateful scenarios of ≤ {size.stateful_steps} steps; time limit {args.time_limit:.0f} s; "
        f"reports in {report_dir}"
    )
    with sigterm_as_interrupt():
        try:
            with LocalStack(options) as stack:
                command = schemathesis_command(
                    config_file=config,
                    schema_url=f"{stack.api_url}/schema/openapi.json",
                    token=stack.token(f"fuzz-{args.seed}"),
                    seed=args.seed,
                    report_dir=report_dir / "schemathesis",
                    # a finder run: keep testing an operation after its first failure
                    extra=["--continue-on-failure"],
                )
                env = hook_environment(journal=journal, mock_toss_url=stack.mock_url)
                started = time.monotonic()
                with out_path.open("w") as output:
                    exit_code, stopped = run_fuzzer(command, env, output, journal, stack, args.time_limit)
                elapsed = time.monotonic() - started
                log(
                    f"schemathesis finished (exit code {exit_code}) after {elapsed:.0f} s; stopping the stack"
                )
        except StackError as exc:
            log(f"could not run: {exc}")
            return 2
        except KeyboardInterrupt:
            log("interrupted: the stack is stopped")
            return 130
    output_text = out_path.read_text(errors="replace")
    counted = tally(read_journal(journal))
    recorded, _ = recorded_stats(report_dir / "schemathesis")
    text, reasons = summary_text(
        seed=args.seed,
        size=size,
        elapsed=elapsed,
        counted=counted,
        recorded=recorded,
        exit_code=exit_code,
        stopped=stopped,
        output=output_text,
        api_errors=error_records(options.log_dir / "api.log"),
        min_requests=args.min_requests,
    )
    verdict = "PASSED" if not reasons else "FAILED: " + "; ".join(reasons)
    (report_dir / "summary.txt").write_text(f"{text}\n{verdict}\n")
    print()
    print(f"== Contract fuzzing summary ({report_dir}) ==")
    print(text)
    print(verdict)
    return 0 if not reasons else 1


if __name__ == "__main__":
    sys.exit(main())
