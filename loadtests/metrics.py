"""The load test's own metrics and thresholds: plain Python, no Locust import.

The locustfile records one `CheckoutRecord` per finished checkout into a `MetricsCollector`;
at the end `summarize()` turns the records into the numbers the issue asks for (checkouts
completed, polls per checkout, callback → settled / provisioned times) and `evaluate()` compares
them with `Thresholds`. Keeping this free of gevent lets pytest use it in-process.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

# The kinds of checkout a Locust user drives, and what each one must end in.
CARD = "card"  # approved card: must reach 50 (PROVISION_SUCCESS)
DECLINED = "declined"  # card 4330000000000013: confirm declined, must end 41 with PAY_004
CANCELLED = "cancelled"  # the buyer closes the window: must end 41
VIRTUAL_ACCOUNT = "virtual_account"  # issue → VA → deposit: must reach 50
KINDS: tuple[str, ...] = (CARD, DECLINED, CANCELLED, VIRTUAL_ACCOUNT)
# Kinds whose happy end is provisioning (50); the others end at 41.
PROVISIONED_KINDS: frozenset[str] = frozenset({CARD, VIRTUAL_ACCOUNT})

# How a checkout ended.
COMPLETED = "completed"  # reached its expected end state
UNSETTLED = "unsettled"  # the poll budget ran out before the outcome was known (code < 40)
UNPROVISIONED = "unprovisioned"  # paid (40/45) but not at 50 when the poll budget ran out
UNEXPECTED = "unexpected"  # a wrong redirect, HTTP error or status this flow must never show
INTERRUPTED = "interrupted"  # Locust stopped the user mid-checkout (stop timeout, Ctrl-C)
OUTCOMES: tuple[str, ...] = (COMPLETED, UNSETTLED, UNPROVISIONED, UNEXPECTED, INTERRUPTED)


@dataclass(frozen=True, slots=True)
class CheckoutRecord:
    """One checkout as the load test saw it; times are milliseconds, None when not reached."""

    kind: str
    outcome: str
    polls: int
    callback_to_settled_ms: float | None = None
    callback_to_provisioned_ms: float | None = None
    deposit_to_provisioned_ms: float | None = None
    total_ms: float | None = None


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile (pct in 0–100]; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def distribution(values: Sequence[float]) -> dict[str, float | int | None]:
    """count, mean, p50, p95, p99, max of `values` (None where there are no values)."""
    return {
        "count": len(values),
        "mean": (sum(values) / len(values)) if values else None,
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": float(max(values)) if values else None,
    }


class MetricsCollector:
    """Collects CheckoutRecords in one Locust process; mergeable across processes."""

    def __init__(self) -> None:
        self.records: list[CheckoutRecord] = []

    def add(self, record: CheckoutRecord) -> None:
        if record.kind not in KINDS:
            raise ValueError(f"unknown checkout kind {record.kind!r}")
        if record.outcome not in OUTCOMES:
            raise ValueError(f"unknown checkout outcome {record.outcome!r}")
        self.records.append(record)

    def drain(self) -> list[dict[str, Any]]:
        """The records collected since the last drain, as plain dicts (a Locust worker's report)."""
        drained = [asdict(record) for record in self.records]
        self.records = []
        return drained

    def merge(self, raw: Iterable[Mapping[str, Any]]) -> None:
        """Add records drained by another process."""
        names = {f.name for f in fields(CheckoutRecord)}
        for item in raw:
            self.add(CheckoutRecord(**{key: value for key, value in item.items() if key in names}))

    def reset(self) -> None:
        self.records = []


def summarize(records: Sequence[CheckoutRecord]) -> dict[str, Any]:
    """The custom metrics of a run: per-kind counts, polls per checkout, the settle/provision times."""
    per_kind: dict[str, dict[str, int]] = {}
    for kind in KINDS:
        mine = [r for r in records if r.kind == kind]
        counts = {"started": len(mine)}
        for outcome in OUTCOMES:
            counts[outcome] = sum(1 for r in mine if r.outcome == outcome)
        if kind in PROVISIONED_KINDS:
            counts["provisioned"] = counts[COMPLETED]
        per_kind[kind] = counts
    # Polls per checkout: every card-window checkout (approved, declined, cancelled) that finished.
    card_polls = [float(r.polls) for r in records if r.kind != VIRTUAL_ACCOUNT and r.outcome != INTERRUPTED]
    va_polls = [float(r.polls) for r in records if r.kind == VIRTUAL_ACCOUNT and r.outcome != INTERRUPTED]
    settled = [
        r.callback_to_settled_ms
        for r in records
        if r.kind != VIRTUAL_ACCOUNT and r.callback_to_settled_ms is not None
    ]
    provisioned = [
        r.callback_to_provisioned_ms
        for r in records
        if r.kind == CARD and r.callback_to_provisioned_ms is not None
    ]
    deposit = [r.deposit_to_provisioned_ms for r in records if r.deposit_to_provisioned_ms is not None]
    totals = {outcome: sum(1 for r in records if r.outcome == outcome) for outcome in OUTCOMES}
    return {
        "checkouts": per_kind,
        "totals": {"started": len(records), **totals},
        "polls_per_checkout": distribution(card_polls),
        "polls_per_va_checkout": distribution(va_polls),
        "callback_to_settled_ms": distribution(settled),
        "callback_to_provisioned_ms": distribution(provisioned),
        "deposit_to_provisioned_ms": distribution(deposit),
    }


@dataclass(frozen=True, slots=True)
class Thresholds:
    """What makes a run fail; a None budget is not checked.

    Defaults fit the default scenario on a 2-core developer machine (docs/api.md's polling schedule
    0, 1, 2, 3, 5 s: an approved card is paid at the first poll and provisioned by the second).
    """

    max_fail_ratio: float = 0.0
    max_unsettled: int = 0
    max_unprovisioned: int = 0
    max_unexpected: int = 0
    max_interrupted: int = 0
    max_task_exceptions: int = 0
    min_completed: int = 1
    max_polls_per_checkout_mean: float | None = 3.0
    max_polls_per_checkout_p95: float | None = 4.0
    max_callback_to_settled_p95_ms: float | None = 2000.0
    max_callback_to_provisioned_p95_ms: float | None = 7000.0
    max_status_p95_ms: float | None = 1000.0


@dataclass(frozen=True, slots=True)
class RequestTotals:
    """What the thresholds need from Locust's own statistics."""

    requests: int
    failures: int
    task_exceptions: int = 0
    status_p95_ms: float | None = None

    @property
    def fail_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class Breach:
    name: str
    value: float
    limit: float
    detail: str

    def __str__(self) -> str:
        return f"{self.name}: {_fmt(self.value)} (limit {_fmt(self.limit)}) — {self.detail}"


def _fmt(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) and not value.is_integer() else f"{value:g}"


def evaluate(summary: Mapping[str, Any], totals: RequestTotals, thresholds: Thresholds) -> list[Breach]:
    """Every threshold the run broke (empty when it passed)."""
    breaches: list[Breach] = []

    def above(name: str, value: float | None, limit: float | None, detail: str) -> None:
        if value is not None and limit is not None and value > limit:
            breaches.append(Breach(name, float(value), float(limit), detail))

    counts = summary["totals"]
    above("failure ratio", totals.fail_ratio, thresholds.max_fail_ratio, "requests Locust counted as failed")
    above(
        "unsettled checkouts",
        counts[UNSETTLED],
        thresholds.max_unsettled,
        "outcome unknown after the poll budget",
    )
    above(
        "unprovisioned checkouts",
        counts[UNPROVISIONED],
        thresholds.max_unprovisioned,
        "paid but not at 50 after the poll budget",
    )
    above("unexpected outcomes", counts[UNEXPECTED], thresholds.max_unexpected, "wrong redirect or status")
    above("interrupted checkouts", counts[INTERRUPTED], thresholds.max_interrupted, "stopped mid-checkout")
    above(
        "task exceptions", totals.task_exceptions, thresholds.max_task_exceptions, "errors in the locustfile"
    )
    if counts[COMPLETED] < thresholds.min_completed:
        breaches.append(
            Breach(
                "checkouts completed",
                float(counts[COMPLETED]),
                float(thresholds.min_completed),
                "fewer than the minimum: the run measured nothing",
            )
        )
    polls = summary["polls_per_checkout"]
    above("polls per checkout (mean)", polls["mean"], thresholds.max_polls_per_checkout_mean, "budget")
    above("polls per checkout (p95)", polls["p95"], thresholds.max_polls_per_checkout_p95, "budget")
    above(
        "callback → settled p95 (ms)",
        summary["callback_to_settled_ms"]["p95"],
        thresholds.max_callback_to_settled_p95_ms,
        "latency budget",
    )
    above(
        "callback → provisioned p95 (ms)",
        summary["callback_to_provisioned_ms"]["p95"],
        thresholds.max_callback_to_provisioned_p95_ms,
        "latency budget",
    )
    above("status endpoint p95 (ms)", totals.status_p95_ms, thresholds.max_status_p95_ms, "latency budget")
    return breaches


def render(summary: Mapping[str, Any], breaches: Sequence[Breach | str]) -> str:
    """A plain-text table of the custom metrics, for the terminal and metrics.txt."""

    def ms(value: float | int | None) -> str:
        return "-" if value is None else f"{value:,.0f}"

    lines = ["Checkouts            started  completed  unsettled  unprovisioned  unexpected  interrupted"]
    for kind, c in summary["checkouts"].items():
        lines.append(
            f"  {kind:<18} {c['started']:>7}  {c[COMPLETED]:>9}  {c[UNSETTLED]:>9}  "
            f"{c[UNPROVISIONED]:>13}  {c[UNEXPECTED]:>10}  {c[INTERRUPTED]:>11}"
        )
    t = summary["totals"]
    lines.append(
        f"  {'all':<18} {t['started']:>7}  {t[COMPLETED]:>9}  {t[UNSETTLED]:>9}  "
        f"{t[UNPROVISIONED]:>13}  {t[UNEXPECTED]:>10}  {t[INTERRUPTED]:>11}"
    )
    lines.append("")
    lines.append(
        "Distribution                        count      mean       p50       p95       p99       max"
    )
    rows = (
        ("polls per checkout (card window)", "polls_per_checkout", False),
        ("polls per VA checkout", "polls_per_va_checkout", False),
        ("callback → settled (ms)", "callback_to_settled_ms", True),
        ("callback → provisioned (ms)", "callback_to_provisioned_ms", True),
        ("VA deposit → provisioned (ms)", "deposit_to_provisioned_ms", True),
    )
    for label, key, is_ms in rows:
        d = summary[key]

        def cell(value: float | int | None, as_ms: bool = is_ms) -> str:
            if value is None:
                return "-"
            return ms(value) if as_ms else f"{value:.2f}"

        lines.append(
            f"  {label:<32} {d['count']:>6} {cell(d['mean']):>9} {cell(d['p50']):>9} "
            f"{cell(d['p95']):>9} {cell(d['p99']):>9} {cell(d['max']):>9}"
        )
    lines.append("")
    if breaches:
        lines.append(f"Threshold breaches ({len(breaches)}):")
        lines.extend(f"  - {b}" for b in breaches)
    else:
        lines.append("Threshold breaches: none")
    return "\n".join(lines)


THRESHOLD_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Thresholds))
