"""Composition root: build every adapter from Settings and wire them into the Litestar app.

Read this file first: it is the only place that knows every piece.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from arq.connections import ArqRedis
from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.api import (
    CLOSED_REQUEST_BODIES,
    CallbackController,
    PaymentController,
    PaymentsRequest,
    ProductController,
    StatusHotPath,
    WebhookController,
    document_links,
)
from app.core.auth import Caller, TokenAuthority
from app.core.catalog import StaticProductCatalog
from app.core.checkout import Checkout, CheckoutConfig
from app.core.clock import SystemClock
from app.core.fulfilment import Fulfilment
from app.core.idempotency import InMemoryIdempotencyStore, RedisIdempotencyStore
from app.core.payment_results import PaymentResults, ResultsConfig
from app.core.ports import (
    Clock,
    IdempotencyStore,
    PaymentGateway,
    ProvisioningQueue,
    StatusChanges,
)
from app.core.queries import PaymentQueries
from app.core.reconciliation import PaymentReconciler, ReconcileConfig
from app.core.refunds import RefundService
from app.core.sql.refunds import SqlRefundRepository
from app.core.sql.status_reader import MySqlStatusReader, SqlStatusReader
from app.core.sql.transactions import SqlTransactionRepository
from app.core.sql.webhook_events import SqlWebhookEventRepository
from app.core.status_cache import CachedStatusReader, StatusViewCache
from app.core.status_changes import LocalStatusChanges, RedisStatusChanges, StatusChangeListener
from app.core.sweeper import Sweeper
from app.core.webhooks import WebhookService
from app.db import create_engine
from app.gateway.service import GatewayService
from app.gateway.toss import TossClient, create_http_client
from app.gateway.toss_webhooks import TossWebhooks
from app.http.errors import EXCEPTION_HANDLERS
from app.http.health import health_live, health_ready
from app.http.redirects import FrontendPages
from app.metrics_endpoint import metrics_route
from app.observability import request_id_middleware
from app.provisioning.api import EntitlementController
from app.provisioning.handlers import build_handlers
from app.provisioning.jobs import JobDeps
from app.provisioning.queue import ArqProvisioningQueue, InProcessQueue
from app.ratelimit import RateLimiter
from app.settings import Settings, load_settings
from app.web_security import SwaggerPage, schema_page_policy, security_headers

log = logging.getLogger("app")


@dataclass
class Services:
    """Every long-lived adapter of one process: created once, closed once."""

    settings: Settings
    engine: AsyncEngine
    status_reader: MySqlStatusReader | None
    status_cache: StatusViewCache
    redis: ArqRedis | None
    http: httpx.AsyncClient
    downstream_http: httpx.AsyncClient
    gateway: PaymentGateway
    repository: SqlTransactionRepository
    checkout: Checkout
    results: PaymentResults
    fulfilment: Fulfilment
    queries: PaymentQueries
    sweeper: Sweeper
    refunds: RefundService
    webhooks: WebhookService
    idempotency: IdempotencyStore
    tokens: TokenAuthority
    rate_limiter: RateLimiter
    queue: ProvisioningQueue
    job_deps: JobDeps

    async def close(self) -> None:
        if isinstance(self.queue, InProcessQueue):
            await self.queue.close()
        await self.http.aclose()
        await self.downstream_http.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()
        if self.status_reader is not None:
            await self.status_reader.close()


def build_services(
    settings: Settings,
    *,
    gateway: PaymentGateway | None = None,
    queue: ProvisioningQueue | None = None,
    clock: Clock | None = None,
) -> Services:
    """Every adapter and use case of one process, wired once. Tests pass fakes for the PG
    (`gateway`), the job queue (`queue`) and time (`clock`); everything else is the real thing."""
    engine = create_engine(settings)
    status_reader = (
        None
        if settings.uses_sqlite
        else MySqlStatusReader(
            settings.database_url,
            pool_size=settings.database_pool_size,
            recycle_seconds=settings.database_pool_recycle_seconds,
        )
    )
    # One Redis pool per process: arq's client is a redis.asyncio.Redis, so it serves both.
    redis = ArqRedis.from_url(settings.redis_url, socket_timeout=5) if settings.redis_url else None
    http = create_http_client(
        connect_timeout=settings.toss_connect_timeout_seconds,
        read_timeout=settings.toss_read_timeout_seconds,
    )
    toss = TossClient(
        http,
        base_url=settings.toss_api_url,
        secret_key=settings.toss_secret_key,
        max_attempts=settings.toss_max_attempts,
        retry_delay=settings.toss_retry_delay_seconds,
    )
    if gateway is None:
        gateway = GatewayService([toss], webhooks=[TossWebhooks(settings.toss_webhook_secret)])
    # With Redis, several processes may write: the cache is trusted only while this process is
    # subscribed to the status-change bus (the API's lifespan starts the listener; workers never
    # do, so theirs keeps final views only). Without Redis there is one process, always coherent.
    status_cache = StatusViewCache(ttl_seconds=settings.status_cache_ttl_seconds, coherent=redis is None)
    status_changes: StatusChanges = (
        RedisStatusChanges(redis, status_cache) if redis is not None else LocalStatusChanges(status_cache)
    )
    # Polls read through this process's cache; the repositories announce each committed write.
    status_views = CachedStatusReader(status_reader or SqlStatusReader(engine), status_cache)
    repository = SqlTransactionRepository(engine, status_views, status_changes=status_changes)
    idempotency: IdempotencyStore
    if redis is not None:
        idempotency = RedisIdempotencyStore(redis, ttl_seconds=settings.idempotency_ttl_seconds)
    else:
        idempotency = InMemoryIdempotencyStore(ttl_seconds=settings.idempotency_ttl_seconds)
    job_ctx: dict[str, Any] = {}
    if queue is not None:
        pass  # the caller's (a test's)
    elif redis is not None:
        queue = ArqProvisioningQueue(redis)
    else:
        queue = InProcessQueue(
            job_ctx,
            max_tries=settings.provisioning_max_tries,
            sweep_interval_seconds=settings.sweep_interval_seconds,
            webhook_max_jobs=settings.webhook_max_jobs,
        )
    checkout_url = settings.toss_checkout_url
    if checkout_url is None and not settings.is_production:
        checkout_url = f"{settings.toss_api_url.rstrip('/')}/checkout"
    catalog = StaticProductCatalog.from_file(settings.product_catalog_path)
    clock = clock or SystemClock()
    refunds = RefundService(
        repository=repository,
        refunds=SqlRefundRepository(engine, status_changes=status_changes),
        gateway=gateway,
        catalog=catalog,
        queue=queue,
        clock=clock,
        window_days=settings.refund_window_days,
    )
    # A paid payment hands over to fulfilment (40 → 45 and the grant job) through `on_paid`.
    fulfilment = Fulfilment(repository=repository, queue=queue, refunds=refunds, clock=clock)
    results = PaymentResults(
        repository=repository,
        gateway=gateway,
        clock=clock,
        config=ResultsConfig(
            reconcile_first_delay_seconds=settings.reconcile_first_delay_seconds,
            virtual_account_recheck_seconds=settings.virtual_account_recheck_seconds,
            callback_budget_seconds=settings.callback_budget_seconds,
        ),
        on_paid=fulfilment.start_provisioning,
    )
    checkout = Checkout(
        repository=repository,
        catalog=catalog,
        gateway=gateway,
        results=results,
        clock=clock,
        config=CheckoutConfig(
            public_base_url=settings.public_base_url,
            transaction_expire_minutes=settings.transaction_expire_minutes,
            client_key=settings.toss_client_key,
            provider=TossClient.name,
            checkout_url=checkout_url,
        ),
    )
    queries = PaymentQueries(repository=repository, catalog=catalog, clock=clock)
    sweeper = Sweeper(repository=repository, fulfilment=fulfilment, refunds=refunds, clock=clock)
    webhooks = WebhookService(
        events=SqlWebhookEventRepository(engine),
        results=results,
        transactions=repository,
        refunds=refunds,
        gateway=gateway,
        queue=queue,
        clock=clock,
    )
    reconciler = PaymentReconciler(
        repository=repository,
        gateway=gateway,
        results=results,
        clock=clock,
        config=ReconcileConfig(
            backoff_scale=settings.reconcile_backoff_scale, give_up_seconds=settings.reconcile_give_up_seconds
        ),
    )
    downstream_http = httpx.AsyncClient(timeout=settings.provisioning_http_timeout_seconds)
    job_deps = JobDeps(
        transactions=repository,
        checkout=checkout,
        fulfilment=fulfilment,
        sweeper=sweeper,
        refunds=refunds,
        catalog=catalog,
        reconciler=reconciler,
        webhooks=webhooks,
        handlers=build_handlers(
            engine=engine,
            http=downstream_http,
            study_service_url=settings.study_service_url,
            credit_service_url=settings.credit_service_url,
        ),
        max_tries=settings.provisioning_max_tries,
        retry_base_seconds=settings.provisioning_retry_base_seconds,
        retry_max_seconds=settings.provisioning_retry_max_seconds,
        refund_retry_seconds=settings.refund_retry_seconds,
        sweep_stale_after_seconds=settings.sweep_stale_after_seconds,
        sweep_batch_size=settings.sweep_batch_size,
    )
    job_ctx["deps"] = job_deps
    return Services(
        settings=settings,
        engine=engine,
        status_reader=status_reader,
        status_cache=status_cache,
        redis=redis,
        http=http,
        downstream_http=downstream_http,
        gateway=gateway,
        repository=repository,
        checkout=checkout,
        results=results,
        fulfilment=fulfilment,
        queries=queries,
        sweeper=sweeper,
        refunds=refunds,
        webhooks=webhooks,
        idempotency=idempotency,
        tokens=TokenAuthority(settings.jwt_secret),
        rate_limiter=RateLimiter(
            redis,
            {
                "issue": settings.rate_limit_issue_per_minute,
                "refund": settings.rate_limit_refund_per_minute,
                "webhook": settings.rate_limit_webhook_per_minute,  # per source address
            },
        ),
        queue=queue,
        job_deps=job_deps,
    )


# --- the app --------------------------------------------------------------------------------------


def _document_closed_bodies(app: Litestar) -> None:
    """Request bodies that refuse unknown fields say so in the OpenAPI document (Litestar omits it)."""
    schemas = app.openapi_schema.components.schemas or {}
    for struct in CLOSED_REQUEST_BODIES:
        schema = schemas.get(struct.__name__)
        if schema is not None:
            schema.additional_properties = False


def create_app(settings: Settings | None = None, services: Services | None = None) -> Litestar:
    """The whole HTTP service. Pass `services` to share adapters (tests, `payments dev`)."""
    settings = settings or (services.settings if services else load_settings())
    built = services or build_services(settings)

    async def provide_caller(request: Request[Any, Any, Any]) -> Caller:
        return built.tokens.verify(request.headers.get("authorization"))

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if app.openapi_config is not None:  # SCHEMA_ENABLED
            _document_closed_bodies(app)
            document_links(app.openapi_schema)
        if not settings.is_production:
            log.warning("AsyncSite Payments is running in %s mode", settings.environment.upper())
        if isinstance(built.queue, InProcessQueue):
            built.queue.start_sweeper()  # the embedded default has no worker process
        listener = StatusChangeListener(built.redis, built.status_cache) if built.redis is not None else None
        if listener is not None:
            listener.start()  # until it is subscribed, polls read the database
        try:
            yield
        finally:
            if listener is not None:
                await listener.stop()
            if isinstance(built.queue, InProcessQueue):
                await built.queue.stop_sweeper()
            if services is None:  # we built them, we close them
                await built.close()

    route_handlers: list[Any] = [
        PaymentController,
        CallbackController,
        ProductController,
        EntitlementController,
        WebhookController,
        health_live,
        health_ready,
    ]
    if (metrics := metrics_route(settings)) is not None:  # METRICS_TOKEN / METRICS_PORT
        route_handlers.append(metrics)
    if not settings.is_production:
        from app.demo import DemoController  # development pages: never imported in production

        route_handlers.append(DemoController)
    frontend_pages = FrontendPages(settings.frontend_base_url)
    swagger = SwaggerPage()

    return Litestar(
        route_handlers=route_handlers,
        dependencies={
            "caller": Provide(provide_caller),
            "services": Provide(lambda: built, use_cache=True, sync_to_thread=False),
            "checkout": Provide(lambda: built.checkout, use_cache=True, sync_to_thread=False),
            "payment_queries": Provide(lambda: built.queries, use_cache=True, sync_to_thread=False),
            "frontend_pages": Provide(lambda: frontend_pages, use_cache=True, sync_to_thread=False),
            "refund_service": Provide(lambda: built.refunds, use_cache=True, sync_to_thread=False),
            "idempotency_store": Provide(lambda: built.idempotency, use_cache=True, sync_to_thread=False),
            "token_authority": Provide(lambda: built.tokens, use_cache=True, sync_to_thread=False),
            "engine": Provide(lambda: built.engine, use_cache=True, sync_to_thread=False),
            "redis_client": Provide(lambda: built.redis, use_cache=True, sync_to_thread=False),
            "webhook_service": Provide(lambda: built.webhooks, use_cache=True, sync_to_thread=False),
            "rate_limiter": Provide(lambda: built.rate_limiter, use_cache=True, sync_to_thread=False),
            "provisioning_queue": Provide(lambda: built.queue, use_cache=True, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        state=State({"status_hot_path": StatusHotPath(tokens=built.tokens, queries=built.queries)}),
        middleware=[request_id_middleware],
        before_send=[
            security_headers(schema_path="/schema", schema_policy=schema_page_policy(swagger.asset_origins))
        ],
        request_class=PaymentsRequest,
        openapi_config=OpenAPIConfig(
            title="AsyncSite Payments",
            version="0.1.0",
            components=Components(
                security_schemes={
                    "BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
                }
            ),
            render_plugins=[swagger, JsonRenderPlugin(), YamlRenderPlugin()],
        )
        if settings.serves_schema
        else None,
        debug=False,
        # Our handler (JSON, redaction, request id) stays in charge of the root logger.
        logging_config=None,
    )


def create_served_app() -> Litestar:
    """The factory `payments serve` hands to uvicorn: logging is configured in every worker process."""
    from app.observability import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, json_logs=settings.log_format != "text")
    return create_app(settings)
