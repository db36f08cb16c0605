"""The load test's own metrics and thresholds (loadtests/metrics.py: plain Python, no Locust)."""

from __future__ import annotations

from loadtests.metrics import (
    CANCELLED,
    CARD,
    COMPLETED,
    DECLINED,
    UNPROVISIONED,
    UNSETTLED,
    VIRTUAL_ACCOUNT,
    CheckoutRecord,
    MetricsCollector,
    RequestTotals,
    Thresholds,
    evaluate,
    percentile,
    render,
    summarize,
)


def _card(polls: int, settled: float, provisioned: float | None, outcome: str = COMPLETED) -> CheckoutRecord:
    return CheckoutRecord(
        kind=CARD,
        outcome=outcome,
        polls=polls,
        callback_to_settled_ms=settled,
        callback_to_provisioned_ms=provisioned,
    )


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile(values, 99) == 99
    assert percentile([7.0], 99) == 7
    assert percentile([], 50) is None


def test_summary_counts_each_kind_and_its_end() -> None:
    records = [
        _card(2, 10, 1000),
        _card(2, 12, 1010),
        CheckoutRecord(kind=DECLINED, outcome=COMPLETED, polls=1, callback_to_settled_ms=8),
        CheckoutRecord(kind=CANCELLED, outcome=COMPLETED, polls=1, callback_to_settled_ms=9),
        CheckoutRecord(kind=VIRTUAL_ACCOUNT, outcome=COMPLETED, polls=3, deposit_to_provisioned_ms=1500),
    ]
    summary = summarize(records)
    assert summary["checkouts"][CARD] == {
        "started": 2,
        "completed": 2,
        "unsettled": 0,
        "unprovisioned": 0,
        "unexpected": 0,
        "interrupted": 0,
        "provisioned": 2,
    }
    assert summary["checkouts"][VIRTUAL_ACCOUNT]["provisioned"] == 1
    assert summary["totals"]["completed"] == 5
    assert summary["polls_per_checkout"]["count"] == 4  # card-window checkouts only
    assert summary["polls_per_checkout"]["mean"] == 1.5
    assert summary["callback_to_provisioned_ms"]["p50"] == 1000
    assert summary["deposit_to_provisioned_ms"]["count"] == 1
    assert "Threshold breaches: none" in render(summary, [])


def test_a_clean_run_breaks_no_threshold() -> None:
    summary = summarize([_card(2, 10, 1000) for _ in range(10)])
    assert evaluate(summary, RequestTotals(requests=50, failures=0, status_p95_ms=20), Thresholds()) == []


def test_every_threshold_kind_is_reported() -> None:
    records = [
        _card(20, 10, None, outcome=UNPROVISIONED),
        CheckoutRecord(kind=CARD, outcome=UNSETTLED, polls=20),
        _card(2, 5000, 9000),
    ]
    summary = summarize(records)
    totals = RequestTotals(requests=10, failures=1, task_exceptions=1, status_p95_ms=2000)
    names = {b.name for b in evaluate(summary, totals, Thresholds(min_completed=5))}
    assert {
        "failure ratio",
        "unsettled checkouts",
        "unprovisioned checkouts",
        "task exceptions",
        "checkouts completed",
        "polls per checkout (mean)",
        "polls per checkout (p95)",
        "callback → settled p95 (ms)",
        "callback → provisioned p95 (ms)",
        "status endpoint p95 (ms)",
    } <= names


def test_a_budget_of_none_is_not_checked() -> None:
    summary = summarize([_card(9, 10, 1000)])
    totals = RequestTotals(requests=1, failures=0)
    loose = Thresholds(max_polls_per_checkout_mean=None, max_polls_per_checkout_p95=None)
    assert evaluate(summary, totals, loose) == []


def test_collector_records_travel_between_processes() -> None:
    worker, master = MetricsCollector(), MetricsCollector()
    worker.add(_card(2, 10, 1000))
    master.merge(worker.drain())
    assert worker.records == []
    assert master.records == [_card(2, 10, 1000)]
