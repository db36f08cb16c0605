"""Prometheus series of the service. The use cases record the business series (transactions,
payments, refunds, webhook deliveries) once their guarded write won; adapters record their own
(PG calls, the status cache, the status-change bus); the domain stays unaware.

With several processes (`payments serve --workers N`, workers on the same host) set
PROMETHEUS_MULTIPROC_DIR to a shared empty folder; `/metrics` then aggregates every process.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

TRANSACTIONS_CREATED = Counter("payments_transactions_created_total", "Transactions issued", ["product_type"])
PAYMENTS_SUCCEEDED = Counter("payments_payments_succeeded_total", "Payments confirmed by the PG (→ 40)")
PAYMENTS_FAILED = Counter("payments_payments_failed_total", "Payments failed (→ 41) by code", ["code"])
PAYMENT_DURATION = Histogram(
    "payments_payment_duration_seconds",
    "From issue to a confirmed payment (10 → 40)",
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 86400),
)
PROVISIONING_OUTCOMES = Counter("payments_provisioning_outcomes_total", "Grant job outcomes", ["outcome"])
PROVISIONING_RETRIES = Counter("payments_provisioning_retries_total", "Grant attempts that will be retried")
REFUNDS = Counter(
    "payments_refunds_total",
    "Refunds by stage (requested, refunded, refused, pg_side, revoke_failed)",
    ["stage"],
)
# Alert on this: money went back without us asking (an operator cancelled in the PG's console).
PG_SIDE_CANCELS = Counter(
    "payments_pg_side_cancels_total", "Cancels made at the PG that we did not request, recorded as refunds"
)
WEBHOOK_DELIVERIES = Counter(
    "payments_webhook_deliveries_total", "Toss webhook deliveries by outcome", ["outcome"]
)
RECONCILIATION_ACTIONS = Counter(
    "payments_reconciliation_actions_total", "What reconciliation did to pending payments", ["action"]
)
STATUS_POLLS = Counter("payments_status_polls_total", "Status endpoint requests", ["settled"])
STATUS_CACHE = Counter(
    "payments_status_cache_total", "Status polls answered from the process's cache (hit) or not", ["result"]
)
STATUS_CHANGE_BUS = Counter(
    "payments_status_change_bus_total",
    "Status-change bus events (subscribed, subscription_lost, publish_failed)",
    ["event"],
)
# Open status streams (GET /api/payments/{id}/events); summed over the live processes of a host.
STATUS_STREAMS_OPEN = Gauge(
    "payments_status_streams_open",
    "Open status event streams (Server-Sent Events)",
    multiprocess_mode="livesum",
)
# Redis unreachable, by what gave way: rate_limiter (failed open), idempotency (503 or a response
# not stored for replay), request (anything else answered 503). Non-zero means Redis is down.
REDIS_UNAVAILABLE = Counter(
    "payments_redis_unavailable_total", "Requests that met an unreachable Redis, by component", ["component"]
)
DATABASE_UNAVAILABLE = Counter(
    "payments_database_unavailable_total",
    "Requests answered 503 (request) and callbacks answered and queued for replay (callback) "
    "because the database was unreachable",
    ["component"],
)
PG_REQUEST_SECONDS = Histogram(
    "payments_pg_request_seconds",
    "Calls to the PG by endpoint and outcome",
    ["endpoint", "outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    from prometheus_client import REGISTRY

    return REGISTRY


def serve_metrics(port: int, host: str = "0.0.0.0") -> None:
    """A scrape endpoint of its own (a background thread of prometheus_client).

    A worker's (WORKER_METRICS_PORT, scraped from the network), or `payments serve`'s METRICS_PORT
    (METRICS_HOST, loopback by default), started once in the supervisor so that it aggregates every
    worker process through PROMETHEUS_MULTIPROC_DIR.
    """
    start_http_server(port, addr=host, registry=_registry())


def render_metrics() -> tuple[bytes, str]:
    """The exposition text: every process's series in multiprocess mode, else this process's."""
    return generate_latest(_registry()), CONTENT_TYPE_LATEST
