"""Every setting of the service, read from the environment once and typed."""

from __future__ import annotations

import ipaddress
import math
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path

import msgspec

DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789"
DEV_TOSS_CLIENT_KEY = "test_ck_D5GePWvyJnrK0W0k6q8gLzN97Eoq"
DEV_TOSS_SECRET_KEY = "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R"
MIN_JWT_SECRET_BYTES = 32  # HS256's key should be at least as long as its 256-bit output (RFC 7518 §3.2)
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_URL = f"sqlite+aiosqlite:///{REPO_ROOT / 'var' / 'payments.sqlite3'}"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    environment: str = "development"
    database_url: str = DEFAULT_SQLITE_URL
    database_pool_size: int = 10
    database_max_overflow: int = 10
    database_pool_recycle_seconds: int = 300
    database_echo: bool = False
    redis_url: str | None = None
    toss_api_url: str = "http://127.0.0.1:8090"
    toss_secret_key: str = DEV_TOSS_SECRET_KEY
    toss_client_key: str = DEV_TOSS_CLIENT_KEY
    toss_webhook_secret: str | None = None
    toss_connect_timeout_seconds: float = 3.0
    toss_read_timeout_seconds: float = 10.0
    toss_max_attempts: int = 3
    toss_retry_delay_seconds: float = 1.0
    toss_checkout_url: str | None = None  # where the frontend opens the window; default: the mock's
    jwt_secret: str = DEV_JWT_SECRET
    public_base_url: str = "http://127.0.0.1:8000"
    frontend_base_url: str = "http://127.0.0.1:8000/demo"
    transaction_expire_minutes: int = 30
    idempotency_ttl_seconds: int = 24 * 3600
    product_catalog_path: str | None = None
    refund_window_days: int = 7
    study_service_url: str | None = None
    credit_service_url: str | None = None
    provisioning_http_timeout_seconds: float = 5.0
    provisioning_max_tries: int = 5
    provisioning_retry_base_seconds: float = 2.0
    provisioning_retry_max_seconds: float = 60.0
    provisioning_job_timeout_seconds: int = 20
    refund_retry_seconds: float = 30.0
    sweep_interval_seconds: int = 10
    sweep_stale_after_seconds: float = 15.0
    sweep_batch_size: int = 100
    reconcile_first_delay_seconds: float = 10.0
    # The PG calls of one browser callback (confirm, lookups) share this budget, then the buyer
    # sees the "confirming" page and reconciliation finishes: a callback answers within 15 s.
    callback_budget_seconds: float = 12.0
    reconcile_backoff_scale: float = 1.0
    reconcile_give_up_seconds: float = 24 * 3600.0
    virtual_account_recheck_seconds: float = 3600.0
    # Non-final status views are served from each API process's cache for at most this long when
    # an invalidation is lost; 0 reads every poll from the database (app/core/status_cache.py).
    status_cache_ttl_seconds: float = 5.0
    rate_limit_issue_per_minute: int = 60
    rate_limit_refund_per_minute: int = 10
    # Webhooks are public (Toss does not sign them): per source address, 429 + Retry-After above it.
    rate_limit_webhook_per_minute: int = 300
    # Reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For names the
    # source; unset: the source is the connection's peer and X-Forwarded-For is ignored.
    trusted_proxies: str | None = None
    webhook_max_jobs: int = 5  # webhook jobs at once per worker process, apart from grants and refunds
    worker_metrics_port: int = 0  # a worker's own /metrics (for hosts that share no PROMETHEUS_MULTIPROC_DIR)
    # Production hardening (README, "Running in production"). /metrics on the API port: with a
    # token, only to `Authorization: Bearer <METRICS_TOKEN>`; else, with METRICS_PORT, only on that
    # listener of `payments serve`; else open outside production and absent (404) in production.
    metrics_token: str | None = None
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    schema_enabled: bool | None = None  # OpenAPI at /schema; unset: on, except in production
    # A connection must deliver a complete request line and headers within this many seconds.
    request_head_timeout_seconds: float = 10.0
    log_format: str = "json"  # json | text
    log_level: str = "INFO"

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def uses_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def serves_schema(self) -> bool:
        return not self.is_production if self.schema_enabled is None else self.schema_enabled

    def insecure_defaults(self) -> list[str]:
        """Development conveniences that must never reach production."""
        problems = []
        if self.jwt_secret == DEV_JWT_SECRET:
            problems.append("JWT_SECRET is the development default")
        elif len(self.jwt_secret.encode()) < MIN_JWT_SECRET_BYTES:
            problems.append(
                f"JWT_SECRET is shorter than {MIN_JWT_SECRET_BYTES} bytes (use e.g. `openssl rand -hex 32`)"
            )
        if self.toss_secret_key == DEV_TOSS_SECRET_KEY:
            problems.append("TOSS_SECRET_KEY is the public docs' test key")
        if self.uses_sqlite:
            problems.append("DATABASE_URL is the embedded SQLite file")
        if self.redis_url is None:
            problems.append("REDIS_URL is unset (in-process queue and idempotency store)")
        return problems


def _parse(name: str, raw: str, kind: object) -> object:
    try:
        if kind is bool or kind == "bool":
            lowered = raw.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if kind is int or kind == "int":
            return int(raw)
        if kind is float or kind == "float":
            return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind}") from exc
    return raw


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build Settings from environment variables named like the fields in upper case."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for field in msgspec.structs.fields(Settings):
        raw = env.get(field.name.upper())
        if raw is None or raw == "":
            continue
        kind = field.type
        if isinstance(kind, str):
            kind = kind.split(" | ")[0]
        elif isinstance(kind, types.UnionType):  # `bool | None` parses as a bool
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        values[field.name] = _parse(field.name.upper(), raw, kind)
    values.update(overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.environment not in {"development", "test", "production"}:
        raise SettingsError("ENVIRONMENT must be development, test or production")
    if settings.transaction_expire_minutes <= 0:
        raise SettingsError("TRANSACTION_EXPIRE_MINUTES must be positive")
    for name in (
        "toss_connect_timeout_seconds",
        "toss_read_timeout_seconds",
        "provisioning_http_timeout_seconds",
        "provisioning_retry_base_seconds",
        "sweep_stale_after_seconds",
        "reconcile_backoff_scale",
        "callback_budget_seconds",
        "request_head_timeout_seconds",
    ):
        value = getattr(settings, name)
        if not (math.isfinite(value) and value > 0):
            raise SettingsError(f"{name.upper()} must be a positive number of seconds, not {value!r}")
    if not (math.isfinite(settings.status_cache_ttl_seconds) and settings.status_cache_ttl_seconds >= 0):
        raise SettingsError("STATUS_CACHE_TTL_SECONDS must be 0 (off) or a positive number of seconds")
    if settings.webhook_max_jobs < 1:
        raise SettingsError("WEBHOOK_MAX_JOBS must be at least 1")
    for proxy in (settings.trusted_proxies or "").split(","):
        try:
            if proxy.strip():
                ipaddress.ip_network(proxy.strip())
        except ValueError:
            raise SettingsError(
                f"TRUSTED_PROXIES: {proxy.strip()!r} is not an IP address or network"
            ) from None
    if settings.provisioning_max_tries < 1:
        raise SettingsError("PROVISIONING_MAX_TRIES must be at least 1")
    if not 1 <= settings.sweep_interval_seconds <= 60:
        raise SettingsError("SWEEP_INTERVAL_SECONDS must be between 1 and 60")
    if not 0 <= settings.metrics_port <= 65535:
        raise SettingsError("METRICS_PORT must be 0 (none) or a TCP port")
    return settings
