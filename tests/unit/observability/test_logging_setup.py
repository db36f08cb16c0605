"""The served app's logging: what `payments serve` sets up must survive building the Litestar app,
and the Prometheus series the service promises are registered under their names."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, generate_latest

from app.observability import JsonFormatter, configure_logging

SERIES = [
    "payments_transactions_created_total",
    "payments_payments_succeeded_total",
    "payments_payments_failed_total",
    "payments_payment_duration_seconds",
    "payments_provisioning_outcomes_total",
    "payments_provisioning_retries_total",
    "payments_refunds_total",
    "payments_webhook_deliveries_total",
    "payments_reconciliation_actions_total",
    "payments_status_polls_total",
    "payments_pg_request_seconds",
]


@pytest.fixture
def root_logging() -> Iterator[logging.Logger]:
    """Put the root logger (and pytest's capture handlers on it) back after the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def _json_handlers(root: logging.Logger) -> list[logging.Handler]:
    return [handler for handler in root.handlers if isinstance(handler.formatter, JsonFormatter)]


def test_configure_logging_installs_one_json_handler(root_logging: logging.Logger) -> None:
    configure_logging("INFO", json_logs=True)

    assert len(root_logging.handlers) == 1
    assert _json_handlers(root_logging)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "arq", "arq.worker"):
        assert logging.getLogger(name).propagate
        assert not logging.getLogger(name).handlers


def test_the_served_app_keeps_the_json_logs_it_configured(
    root_logging: logging.Logger, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`payments serve` runs `create_served_app`: it configures JSON logging, then builds the app.
    Building the app must not swap that handler for another format (Litestar applies its own
    default LoggingConfig unless told not to)."""
    from app.main import create_served_app

    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'never-opened.sqlite3'}")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/9")  # a client is built, never used

    create_served_app()

    formats = [
        f"{type(handler).__name__}/{type(handler.formatter).__name__}" for handler in root_logging.handlers
    ]
    assert _json_handlers(root_logging), f"root handlers after building the app: {formats}"


def test_every_promised_series_is_registered() -> None:
    import app.metrics  # noqa: F401  (registers the series)

    exposition = generate_latest(REGISTRY).decode()

    missing = [name for name in SERIES if f"# TYPE {name} " not in exposition]
    assert not missing, missing
