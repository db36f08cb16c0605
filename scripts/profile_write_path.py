#!/usr/bin/env python
"""`make profile`: flame graphs of the write path under load, recorded with py-spy.

Starts the benchmark's stack (scripts/loadtest.py: LocalStack) with ONE API process, so one
process answers everything and its profile is the whole API, then records, each for --seconds:

    issue.svg            the API while wrk sends POST /api/payments/issue with fresh Idempotency-Keys
    checkout-api.svg     the API while Locust runs full checkouts (issue → mock window → success callback)
    checkout-worker.svg  the arq worker (grants) during the same checkouts
    checkout-mock.svg    the mock Toss (window, confirm, webhooks) during the same checkouts

into loadtests/reports/profile-<timestamp>/ (or --report-dir), with `summary.txt`: per picture, the
functions holding the most samples (own and with callees), read back from the SVG. py-spy samples
the processes from outside (ptrace); the services run unchanged.

    .venv/bin/python scripts/profile_write_path.py                  # what `make profile` runs
    .venv/bin/python scripts/profile_write_path.py --seconds 20 --rate 200

py-spy needs ptrace rights over the processes it samples: as root, or with
kernel.yama.ptrace_scope = 0 for processes this user started (a container may need SYS_PTRACE).
"""

from __future__ import annotations

import argparse
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from bench import CASES, ensure_wrk, log, prepare_targets, run_locust, run_wrk  # noqa: E402
from loadtest import REPO_ROOT, REPORTS_DIR, LocalStack, StackError, StackOptions, sigterm_as_interrupt  # noqa: E402

PY_SPY = Path(sys.executable).with_name("py-spy")
_TITLE = re.compile(r"<title>(.*?) \(([\d,]+) samples?, ([\d.]+)%\)</title>")


def record(pid: int, svg: Path, *, seconds: float, rate: int) -> list[subprocess.Popen[bytes]]:
    """py-spy sampling `pid` (and its children) for `seconds`: a flame graph into `svg`, and the
    same samples as collapsed stacks into `<name>.txt` (what summary.txt is computed from)."""
    return [
        _py_spy(pid, svg, "flamegraph", seconds=seconds, rate=rate),
        _py_spy(pid, svg.with_suffix(".txt"), "raw", seconds=seconds, rate=rate),
    ]


def _py_spy(pid: int, output: Path, form: str, *, seconds: float, rate: int) -> subprocess.Popen[bytes]:
    command = [
        str(PY_SPY if PY_SPY.exists() else shutil.which("py-spy") or "py-spy"),
        "record",
        "--pid",
        str(pid),
        "--subprocesses",
        "--rate",
        str(rate),
        "--duration",
        str(max(1, round(seconds))),
        "--format",
        form,
        "--output",
        str(output),
        "--nonblocking",
    ]
    log_path = output.with_suffix(f".{form}.log")
    return subprocess.Popen(command, stdout=log_path.open("w"), stderr=subprocess.STDOUT)


def scrub(path: Path) -> None:
    """Paths relative to the repository in a recorded file (frames, command lines), so a picture
    can be committed and read on any machine."""
    if path.exists():
        text = path.read_text(errors="replace")
        path.write_text(text.replace(str(REPO_ROOT) + "/", "").replace(str(REPO_ROOT), "."))


def summarize(stacks: Path, top: int) -> str:
    """From collapsed stacks (`frame;frame;… count` lines): the `top` functions by own samples,
    and the `top` frames of this repository's code (app/, mock_toss/) by samples with callees."""
    if not stacks.exists():
        return f"{stacks.name}: not written (see the .raw.log beside it)\n"
    own: dict[str, int] = defaultdict(int)
    inclusive: dict[str, int] = defaultdict(int)
    total = 0
    for line in stacks.read_text(errors="replace").splitlines():
        path, _, count_text = line.rpartition(" ")
        if not path or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_short(frame) for frame in path.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):  # a recursive frame counts once per sample
            if frame.startswith(("app/", "mock_toss/")) or " (app/" in frame:
                inclusive[frame] += count
    lines = [f"{stacks.stem}: {total} samples", "  own samples (where the CPU is):"]
    lines += [f"  {100 * n / total:5.1f}%  {name[:140]}" for name, n in _top(own, top)]
    lines.append("  this repository's frames, with what they call:")
    lines += [f"  {100 * n / total:5.1f}%  {name[:140]}" for name, n in _top(inclusive, top)]
    return "\n".join(lines) + "\n"


def _short(frame: str) -> str:
    """`func (/long/path/site-packages/pkg/mod.py:12)` → `func (pkg/mod.py)`: lines merged."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3.11/", str(REPO_ROOT) + "/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})" if where else name


def _top(counts: dict[str, int], top: int) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: -item[1])[:top]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15, help="seconds per recording (default 15)")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second (default 250)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections/Locust users")
    parser.add_argument("--top", type=int, default=40, help="frames listed per picture in summary.txt")
    parser.add_argument(
        "--report-dir", type=Path, default=None, help="default loadtests/reports/profile-<ts>"
    )
    parser.add_argument("--database", default="payments_profile")
    parser.add_argument("--redis-db", type=int, default=5)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    parser.add_argument("--mysql-admin-url", default="mysql+asyncmy://root@127.0.0.1:3306")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 300 or not 10 <= args.rate <= 1000:
        parser.error("--seconds must be in [1, 300] and --rate in [10, 1000]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    folder: Path = (args.report_dir or REPORTS_DIR / time.strftime("profile-%Y%m%d-%H%M%S")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    wrk = ensure_wrk(allow_install=True)
    if wrk is None:
        log("wrk is not available and could not be installed")
        return 2
    options = StackOptions(
        api_workers=1,
        database=args.database,
        drop_database=True,
        redis_db=args.redis_db,
        redis_base_url=args.redis_url,
        mysql_admin_url=args.mysql_admin_url,
        log_dir=folder / "logs",
        extra_env={"RATE_LIMIT_ISSUE_PER_MINUTE": "0"},
    )
    # The bench's own knobs, as its measure() reads them
    bench_args = argparse.Namespace(
        threads=1, connections=args.connections, warmup=2.0, duration=args.seconds + 2, locust_processes=1
    )
    cases = {case.mode: case for case in CASES if case.server == "api"}
    summary = []
    with sigterm_as_interrupt():
        try:
            with LocalStack(options) as stack:
                targets = folder / "targets.txt"
                prepare_targets(stack, 20, 5, targets)
                env = {"BENCH_TARGETS": str(targets)}
                api = next(p for p in stack.processes if p.name == "api").process.pid
                worker = next(p for p in stack.processes if p.name == "worker").process.pid
                mock = next(p for p in stack.processes if p.name == "mock").process.pid

                log(f"recording the API ({api}) under issue load, {args.seconds:g} s")
                run_wrk(
                    wrk,
                    cases["issue_idem"],
                    stack.api_url,
                    seconds=2,
                    args=bench_args,
                    env=env,
                    log_path=folder / "wrk.log",
                )  # warm-up
                spies = record(api, folder / "issue.svg", seconds=args.seconds, rate=args.rate)
                run_wrk(
                    wrk,
                    cases["issue_idem"],
                    stack.api_url,
                    seconds=args.seconds + 2,
                    args=bench_args,
                    env={**env, "BENCH_RUN_ID": secrets.token_hex(6)},
                    log_path=folder / "wrk.log",
                )
                for spy in spies:
                    spy.wait(timeout=120)

                log(
                    f"recording the API ({api}) and the worker ({worker}) under checkouts, {args.seconds:g} s"
                )
                spies = []

                def start_spies() -> None:
                    time.sleep(bench_args.warmup)  # Locust's users are spawned and warm
                    spies.extend(
                        record(api, folder / "checkout-api.svg", seconds=args.seconds, rate=args.rate)
                    )
                    spies.extend(
                        record(worker, folder / "checkout-worker.svg", seconds=args.seconds, rate=args.rate)
                    )
                    spies.extend(
                        record(mock, folder / "checkout-mock.svg", seconds=args.seconds, rate=args.rate)
                    )

                starter = threading.Thread(target=start_spies)
                starter.start()
                run_locust(cases["checkout"], stack, stack.api_url, args=bench_args, env=env, folder=folder)
                starter.join()
                for spy in spies:
                    spy.wait(timeout=120)
                stack.check_alive()
        except StackError as exc:
            log(f"could not run: {exc}")
            return 2
        except KeyboardInterrupt:
            log("interrupted: the stack is stopped")
            return 130
    for name in ("issue", "checkout-api", "checkout-worker", "checkout-mock"):
        for suffix in (".svg", ".txt"):
            scrub(folder / f"{name}{suffix}")
        summary.append(summarize(folder / f"{name}.txt", args.top))
    (folder / "summary.txt").write_text("\n".join(summary))
    print("\n".join(summary))
    print(f"flame graphs in {folder}")
    return 0 if all((folder / n).exists() for n in ("issue.svg", "checkout-api.svg")) else 1


if __name__ == "__main__":
    sys.exit(main())
