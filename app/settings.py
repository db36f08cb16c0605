"""Every setting of the service, read from the environment once and typed.

Settings are grouped by the component that reads them (`settings.database.url`,
`settings.toss.read_timeout_seconds`, ...). A field's msgspec name is its environment variable, so
the structs below are the one table from variables to fields, and `msgspec.convert` checks every
type and range declared here (`Meta`, `Literal`).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789"
DEV_TOSS_CLIENT_KEY = "test_ck_D5GePWvyJnrK0W0k6q8gLzN97Eoq"
DEV_TOSS_SECRET_KEY = "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R"
MIN_JWT_SECRET_BYTES = 32  # HS256's key should be at least as long as its 256-bit output (RFC 7518 §3.2)
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_URL = f"sqlite+aiosqlite:///{REPO_ROOT / 'var' / 'payments.sqlite3'}"

# An upper bound keeps every duration finite ("inf" parses as a float); nothing here waits a year.
_A_YEAR = 365 * 24 * 3600.0
Seconds = Annotated[float, Meta(gt=0, le=_A_YEAR)]
Delay = Annotated[float, Meta(ge=0, le=_A_YEAR)]  # 0: at once, or off
AtLeastOne = Annotated[int, Meta(ge=1)]
PerMinute = Annotated[int, Meta(ge=0)]  # 0: no limit
Port = Annotated[int, Meta(ge=0, le=65535)]  # 0: no listener
Environment = Literal["development", "test", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _prefixed(prefix: str) -> Callable[[str], str]:
    """A group's `rename`: its fields' variables share a prefix (`msgspec.field(name=...)` where not)."""
    return lambda name: f"{prefix}_{name.upper()}"


class DatabaseSettings(msgspec.Struct, frozen=True, kw_only=True, rename=_prefixed("DATABASE")):
    url: str = DEFAULT_SQLITE_URL
    pool_size: AtLeastOne = 10
    max_overflow: int = 10
    pool_recycle_seconds: int = 300
    echo: bool = False

    @property
    def uses_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


class TossSettings(msgspec.Struct, frozen=True, kw_only=True, rename=_prefixed("TOSS")):
    api_url: str = "http://127.0.0.1:8090"
    secret_key: str = DEV_TOSS_SECRET_KEY
    client_key: str = DEV_TOSS_CLIENT_KEY
    webhook_secret: str | None = None
    connect_timeout_seconds: Seconds = 3.0
    read_timeout_seconds: Seconds = 10.0
    max_attempts: AtLeastOne = 3
    retry_delay_seconds: Delay = 1.0
    checkout_url: str | None = None  # where the frontend opens the window; default: the mock's
    # Where a browser reaches the PG's own pages when that differs from TOSS_API_URL (compose: the
    # API calls http://mock-toss:8090, the browser http://localhost:8090): the mock's payment
    # window (the default checkout URL), its SDK script and test controls (the demo). Unset:
    # TOSS_API_URL.
    browser_url: str | None = None

    @property
    def browser_base_url(self) -> str:
        """The PG's origin (and base path) as a browser reaches it, without a trailing slash."""
        return (self.browser_url or self.api_url).rstrip("/")


class PaymentSettings(msgspec.Struct, frozen=True, kw_only=True, rename="upper"):
    """Payment Core's own rules."""

    transaction_expire_minutes: Annotated[int, Meta(gt=0)] = 30
    product_catalog_path: str | None = None
    refund_window_days: Annotated[int, Meta(ge=0)] = 7
    # The PG calls of one browser callback (confirm, lookups) share this budget, then the buyer
    # sees the "confirming" page and reconciliation finishes: a callback answers within 15 s.
    callback_budget_seconds: Seconds = 12.0
    # Non-final status views are served from each API process's cache for at most this long when
    # an invalidation is lost; 0 reads every poll from the database (app/core/status_cache.py).
    status_cache_ttl_seconds: Delay = 5.0


class ProvisioningSettings(msgspec.Struct, frozen=True, kw_only=True, rename=_prefixed("PROVISIONING")):
    """Grants and the other jobs of the worker (app/provisioning)."""

    study_service_url: str | None = msgspec.field(default=None, name="STUDY_SERVICE_URL")
    credit_service_url: str | None = msgspec.field(default=None, name="CREDIT_SERVICE_URL")
    http_timeout_seconds: Seconds = 5.0
    max_tries: AtLeastOne = 5
    retry_base_seconds: Seconds = 2.0
    retry_max_seconds: Seconds = 60.0
    job_timeout_seconds: AtLeastOne = 20
    refund_retry_seconds: Delay = msgspec.field(default=30.0, name="REFUND_RETRY_SECONDS")
    # Webhook jobs at once per worker process, apart from grants and refunds.
    webhook_max_jobs: AtLeastOne = msgspec.field(default=5, name="WEBHOOK_MAX_JOBS")


class ReconciliationSettings(msgspec.Struct, frozen=True, kw_only=True, rename=_prefixed("RECONCILE")):
    """Asking the PG about unknown outcomes, and the sweeper that finds due and stale work."""

    first_delay_seconds: Delay = 10.0
    backoff_scale: Seconds = 1.0
    give_up_seconds: Seconds = 24 * 3600.0
    virtual_account_recheck_seconds: Seconds = msgspec.field(
        default=3600.0, name="VIRTUAL_ACCOUNT_RECHECK_SECONDS"
    )
    sweep_interval_seconds: Annotated[int, Meta(ge=1, le=60)] = msgspec.field(
        default=10, name="SWEEP_INTERVAL_SECONDS"
    )
    sweep_stale_after_seconds: Seconds = msgspec.field(default=15.0, name="SWEEP_STALE_AFTER_SECONDS")
    sweep_batch_size: AtLeastOne = msgspec.field(default=100, name="SWEEP_BATCH_SIZE")


class HttpSettings(msgspec.Struct, frozen=True, kw_only=True, rename="upper"):
    """The API's HTTP side: its addresses, bearer tokens, Idempotency-Keys, limits, hardening."""

    public_base_url: str = "http://127.0.0.1:8000"
    frontend_base_url: str = "http://127.0.0.1:8000/demo"
    jwt_secret: str = DEV_JWT_SECRET
    idempotency_ttl_seconds: AtLeastOne = 24 * 3600
    rate_limit_issue_per_minute: PerMinute = 60
    rate_limit_refund_per_minute: PerMinute = 10
    # Webhooks are public (Toss does not sign them): per source address, 429 + Retry-After above it.
    rate_limit_webhook_per_minute: PerMinute = 300
    # Reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For names the
    # source; unset: the source is the connection's peer and X-Forwarded-For is ignored.
    trusted_proxies: str | None = None
    schema_enabled: bool | None = None  # OpenAPI at /schema; unset: on, except in production
    # A connection must deliver a complete request line and headers within this many seconds.
    request_head_timeout_seconds: Seconds = 10.0
    # The HTTP server of `payments serve` (its --server overrides it); loadtests/README.md compares them.
    server: Literal["uvicorn", "granian"] = "granian"
    # Frontend origins (comma-separated, e.g. `https://study.example.com`) whose pages may call the
    # API from the browser (CORS); unset: none, for a frontend served from the API's own origin.
    cors_allow_origins: str | None = None

    @property
    def cors_origins(self) -> tuple[str, ...]:
        return tuple(
            origin.strip() for origin in (self.cors_allow_origins or "").split(",") if origin.strip()
        )

    def __post_init__(self) -> None:
        for origin in self.cors_origins:
            parts = urlsplit(origin)
            if (
                parts.scheme not in ("http", "https")
                or not parts.netloc
                or origin != f"{parts.scheme}://{parts.netloc}"
            ):
                raise ValueError(
                    f"CORS_ALLOW_ORIGINS: {origin!r} is not an origin like https://study.example.com "
                    "(scheme and host, no path, no wildcard)"
                )
        for proxy in (self.trusted_proxies or "").split(","):
            try:
                if proxy.strip():
                    ipaddress.ip_network(proxy.strip())
            except ValueError:
                # msgspec.convert reports this as a ValidationError at `$.HTTP`
                raise ValueError(
                    f"TRUSTED_PROXIES: {proxy.strip()!r} is not an IP address or network"
                ) from None


class StreamSettings(msgspec.Struct, frozen=True, kw_only=True, rename=_prefixed("STREAM")):
    """The status stream, GET /api/payments/{id}/events (Server-Sent Events; README, "The status
    stream")."""

    # How long a streamToken (issue and status answers) opens a stream: at most an hour.
    token_ttl_seconds: Annotated[int, Meta(ge=60, le=3600)] = 3600
    heartbeat_seconds: Annotated[float, Meta(ge=1, le=60)] = 15.0  # a comment at least this often
    max_seconds: Seconds = 600.0  # then the stream ends (EventSource reconnects with Last-Event-ID)
    poll_seconds: Annotated[float, Meta(gt=0, le=60)] = 1.0  # reading the database while the bus is down
    max_per_user: AtLeastOne = 5  # open streams per user in one API process; 429 RATE_LIMITED above
    retry_ms: Annotated[int, Meta(ge=0, le=600_000)] = 3000  # the `retry:` the stream tells clients


class ObservabilitySettings(msgspec.Struct, frozen=True, kw_only=True, rename="upper"):
    """Logs and /metrics (README, "Running in production").

    /metrics on the API port: with a token, only to `Authorization: Bearer <METRICS_TOKEN>`; else,
    with METRICS_PORT, only on that listener of `payments serve`; else open outside production and
    absent (404) in production."""

    log_format: Literal["json", "text"] = "json"
    log_level: LogLevel = "INFO"
    metrics_token: str | None = None
    metrics_port: Port = 0
    metrics_host: str = "127.0.0.1"
    worker_metrics_port: Port = (
        0  # a worker's own /metrics (for hosts that share no PROMETHEUS_MULTIPROC_DIR)
    )


class Settings(msgspec.Struct, frozen=True, kw_only=True, rename="upper"):
    environment: Environment = "development"
    redis_url: str | None = None  # unset: in-process queue, Idempotency-Keys and status announcements
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    toss: TossSettings = msgspec.field(default_factory=TossSettings)
    payments: PaymentSettings = msgspec.field(default_factory=PaymentSettings)
    provisioning: ProvisioningSettings = msgspec.field(default_factory=ProvisioningSettings)
    reconciliation: ReconciliationSettings = msgspec.field(default_factory=ReconciliationSettings)
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)
    stream: StreamSettings = msgspec.field(default_factory=StreamSettings)
    observability: ObservabilitySettings = msgspec.field(default_factory=ObservabilitySettings)

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def serves_schema(self) -> bool:
        enabled = self.http.schema_enabled
        return not self.is_production if enabled is None else enabled

    def insecure_defaults(self) -> list[str]:
        """Development conveniences that must never reach production."""
        problems = []
        if self.http.jwt_secret == DEV_JWT_SECRET:
            problems.append("JWT_SECRET is the development default")
        elif len(self.http.jwt_secret.encode()) < MIN_JWT_SECRET_BYTES:
            problems.append(
                f"JWT_SECRET is shorter than {MIN_JWT_SECRET_BYTES} bytes (use e.g. `openssl rand -hex 32`)"
            )
        if self.toss.secret_key == DEV_TOSS_SECRET_KEY:
            problems.append("TOSS_SECRET_KEY is the public docs' test key")
        if self.database.uses_sqlite:
            problems.append("DATABASE_URL is the embedded SQLite file")
        if self.redis_url is None:
            problems.append("REDIS_URL is unset (in-process queue and idempotency store)")
        return problems


@dataclass(frozen=True)
class _Variable:
    group: str | None  # the group's encoded name in Settings, None for a top-level field
    kind: msgspec.inspect.Type


def _variables() -> dict[str, _Variable]:
    """Every environment variable, read off the structs above."""
    table: dict[str, _Variable] = {}
    root = msgspec.inspect.type_info(Settings)
    assert isinstance(root, msgspec.inspect.StructType)
    for field in root.fields:
        if isinstance(field.type, msgspec.inspect.StructType):
            entries = [(f.encode_name, _Variable(field.encode_name, f.type)) for f in field.type.fields]
        else:
            entries = [(field.encode_name, _Variable(None, field.type))]
        for name, variable in entries:
            assert name not in table, f"{name} names two settings"
            table[name] = variable
    return table


_VARIABLES = _variables()
ENVIRONMENT_VARIABLES = frozenset(_VARIABLES)
_TRUE, _FALSE = {"yes", "on"}, {"no", "off"}


def _accepts(kind: msgspec.inspect.Type, wanted: type[msgspec.inspect.Type]) -> bool:
    if isinstance(kind, msgspec.inspect.UnionType):
        return any(isinstance(member, wanted) for member in kind.types)
    return isinstance(kind, wanted)


def _lenient(raw: str, kind: msgspec.inspect.Type) -> str:
    """What msgspec's lax mode leaves out: blanks around numbers and booleans, yes/no and on/off."""
    if _accepts(kind, msgspec.inspect.BoolType):
        word = raw.strip().lower()
        return "true" if word in _TRUE else "false" if word in _FALSE else word
    if _accepts(kind, msgspec.inspect.IntType) or _accepts(kind, msgspec.inspect.FloatType):
        return raw.strip()
    return raw


def _explain(error: msgspec.ValidationError, given: Mapping[str, object]) -> str:
    """msgspec's message with the variable and its value in front (`... - at `$.TOSS.TOSS_X``)."""
    detail, found, path = str(error).rpartition(" - at `")
    if not found:
        return str(error)
    name = path.rstrip("`").rsplit(".", 1)[-1]
    if name not in given:  # a check in __post_init__ (TRUSTED_PROXIES) names its variable itself
        return detail
    kind = _VARIABLES[name].kind
    if isinstance(kind, msgspec.inspect.LiteralType):
        detail += f" (one of {', '.join(map(str, kind.values))})"
    return f"{name}={given[name]!r} is not valid: {detail}"


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Settings from environment variables (`os.environ` by default; an empty value is unset).

    `overrides` name variables in lower case (`database_url=...`), take typed values or strings,
    win over `environ`, and pass the same checks."""
    env = os.environ if environ is None else environ
    given: dict[str, object] = {name: env[name] for name in _VARIABLES if env.get(name)}
    for key, value in overrides.items():
        if key.upper() not in _VARIABLES:
            raise TypeError(f"load_settings() got an unknown setting {key!r}")
        given[key.upper()] = value
    raw: dict[str, object] = {}
    for name, value in given.items():
        variable = _VARIABLES[name]
        if isinstance(value, str):
            value = _lenient(value, variable.kind)
        if variable.group is None:
            raw[name] = value
        else:
            group = raw.setdefault(variable.group, {})
            assert isinstance(group, dict)
            group[name] = value
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_explain(exc, given)) from None
