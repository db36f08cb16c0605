"""The HTTP app: Payment Core from app.bootstrap, plus what only an API process needs
(Idempotency-Keys, tokens, rate limits), the routes of app.http, and the lifespan.

Read this file first, then app/bootstrap.py: together they are the only places that know every
piece (docs/architecture.md has the map).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from typing import Any

from litestar import Litestar, Request
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from app.bootstrap import Core, build_core
from app.core.auth import Caller, TokenAuthority
from app.core.idempotency import InMemoryIdempotencyStore, RedisIdempotencyStore
from app.core.ports import (
    Clock,
    IdempotencyStore,
    PaymentGateway,
    ProvisioningQueue,
)
from app.core.sql.status_reader import SqlStatusReader
from app.core.status_changes import StatusChangeListener
from app.core.status_stream import StatusStreams, StreamConfig, StreamSlots
from app.core.stream_tokens import StreamTokens
from app.http.callbacks import CallbackController, CallbackPieces
from app.http.errors import EXCEPTION_HANDLERS
from app.http.health import health_live, health_ready
from app.http.openapi import finish_document
from app.http.payments import IssuePieces, PaymentController, RequestGuards, StatusHotPath
from app.http.products import ProductController
from app.http.redirects import FrontendPages
from app.http.requests import PaymentsRequest
from app.http.status_events import StatusEventsController, StatusEventsPieces
from app.http.webhooks import WebhookController, WebhookPieces
from app.http_server import on_server_shutdown
from app.metrics_endpoint import metrics_route
from app.observability import request_id_middleware
from app.provisioning.api import EntitlementController
from app.provisioning.queue import InProcessQueue
from app.ratelimit import RateLimiter
from app.settings import Settings, load_settings
from app.web_security import SwaggerPage, schema_page_policy, security_headers

log = logging.getLogger("app")


@dataclass
class Services(Core):
    """Core plus what only an API process needs: Idempotency-Keys, tokens and rate limits."""

    idempotency: IdempotencyStore
    tokens: TokenAuthority
    rate_limiter: RateLimiter
    stream_tokens: StreamTokens  # ?streamToken= of the status stream
    status_streams: StatusStreams
    stream_slots: StreamSlots  # the per-user cap on open streams


def build_services(
    settings: Settings,
    *,
    gateway: PaymentGateway | None = None,
    queue: ProvisioningQueue | None = None,
    clock: Clock | None = None,
) -> Services:
    """An API process's services: Payment Core (app.bootstrap) and the HTTP side's own pieces."""
    core = build_core(settings, gateway=gateway, queue=queue, clock=clock)
    idempotency: IdempotencyStore
    if core.redis is not None:
        idempotency = RedisIdempotencyStore(core.redis, ttl_seconds=settings.http.idempotency_ttl_seconds)
    else:
        idempotency = InMemoryIdempotencyStore(ttl_seconds=settings.http.idempotency_ttl_seconds)
    stream = settings.stream
    status_streams = StatusStreams(
        reader=core.status_reader or SqlStatusReader(core.engine),  # the database, never the cache
        queries=core.queries,
        watchers=core.status_watchers,
        config=StreamConfig(
            heartbeat_seconds=stream.heartbeat_seconds,
            max_seconds=stream.max_seconds,
            poll_seconds=stream.poll_seconds,
            max_per_user=stream.max_per_user,
        ),
    )
    return Services(
        **{f.name: getattr(core, f.name) for f in fields(core)},
        idempotency=idempotency,
        tokens=TokenAuthority(settings.http.jwt_secret),
        rate_limiter=RateLimiter(
            core.redis,
            {
                "issue": settings.http.rate_limit_issue_per_minute,
                "refund": settings.http.rate_limit_refund_per_minute,
                "webhook": settings.http.rate_limit_webhook_per_minute,  # per source address
            },
        ),
        stream_tokens=StreamTokens(settings.http.jwt_secret, ttl_seconds=stream.token_ttl_seconds),
        status_streams=status_streams,
        stream_slots=StreamSlots(stream.max_per_user),
    )


# --- the app --------------------------------------------------------------------------------------


def create_app(settings: Settings | None = None, services: Services | None = None) -> Litestar:
    """The whole HTTP service. Pass `services` to share adapters (tests, `payments dev`)."""
    settings = settings or (services.settings if services else load_settings())
    built = services or build_services(settings)

    async def provide_caller(request: Request[Any, Any, Any]) -> Caller:
        return built.tokens.verify(request.headers.get("authorization"))

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        finish_document(app)  # when SCHEMA_ENABLED: examples, error codes, links (app.http.openapi)
        if not settings.is_production:
            log.warning("AsyncSite Payments is running in %s mode", settings.environment.upper())
        if isinstance(built.queue, InProcessQueue):
            built.queue.start_sweeper()  # the embedded default has no worker process
        listener = (
            StatusChangeListener(built.redis, built.status_cache, watchers=built.status_watchers)
            if built.redis is not None
            else None
        )
        if listener is not None:
            listener.start()  # until it is subscribed, polls read the database
        # A graceful shutdown ends the open status streams at once (the server would wait for them).
        forget_streams = on_server_shutdown(built.status_watchers.close_all)
        try:
            yield
        finally:
            forget_streams()
            if listener is not None:
                await listener.stop()
            if isinstance(built.queue, InProcessQueue):
                await built.queue.stop_sweeper()
            if services is None:  # we built them, we close them
                await built.close()
                log.info("API process stopped: database and Redis connections closed")

    route_handlers: list[Any] = [
        PaymentController,
        StatusEventsController,
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
    frontend_pages = FrontendPages(settings.http.frontend_base_url)
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
        state=State(
            {
                "status_hot_path": StatusHotPath(
                    tokens=built.tokens, queries=built.queries, stream_tokens=built.stream_tokens
                ),
                "status_events": StatusEventsPieces(
                    tokens=built.tokens,
                    stream_tokens=built.stream_tokens,
                    streams=built.status_streams,
                    slots=built.stream_slots,
                    retry_ms=settings.stream.retry_ms,
                ),
                "request_guards": RequestGuards(tokens=built.tokens, rate_limiter=built.rate_limiter),
                "issue": IssuePieces(
                    tokens=built.tokens,
                    checkout=built.checkout,
                    idempotency_store=built.idempotency,
                    stream_tokens=built.stream_tokens,
                ),
                "callbacks": CallbackPieces(
                    checkout=built.checkout, frontend_pages=frontend_pages, queue=built.queue
                ),
                "webhooks": WebhookPieces(service=built.webhooks, rate_limiter=built.rate_limiter),
            }
        ),
        middleware=[request_id_middleware],
        cors_config=cors_config(settings.http.cors_origins),
        before_send=[security_headers(schema_path="/schema", schema_policy=schema_page_policy())],
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


def cors_config(origins: tuple[str, ...]) -> CORSConfig | None:
    """CORS_ALLOW_ORIGINS: frontends on other origins may call the API (bearer tokens, no cookies)."""
    if not origins:
        return None
    return CORSConfig(
        allow_origins=list(origins),
        allow_methods=["GET", "POST"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "Idempotency-Key",
            "Accept-Language",
            "Last-Event-ID",
        ],
        expose_headers=["Idempotent-Replayed", "Retry-After", "X-Request-Id"],
        allow_credentials=False,
        max_age=600,
    )


def create_served_app() -> Litestar:
    """The factory `payments serve` hands to granian or uvicorn: logging is configured in every
    worker process."""
    from app.observability import configure_logging

    settings = load_settings()
    configure_logging(settings.observability.log_level, json_logs=settings.observability.log_format != "text")
    return create_app(settings)
