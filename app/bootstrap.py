"""The composition root of Payment Core: every adapter and use case, built once from Settings.

An API process (app.main) adds its HTTP pieces on top; a worker (app.provisioning.worker) uses
this alone. Read it to see which adapter stands behind which port.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.catalog import StaticProductCatalog
from app.core.checkout import Checkout, CheckoutConfig
from app.core.clock import SystemClock
from app.core.fulfilment import Fulfilment
from app.core.payment_results import PaymentResults, ResultsConfig
from app.core.ports import Clock, PaymentGateway, ProvisioningQueue, StatusChanges
from app.core.queries import PaymentQueries
from app.core.reconciliation import PaymentReconciler, ReconcileConfig
from app.core.refunds import RefundService
from app.core.sql.refunds import SqlRefundRepository
from app.core.sql.status_reader import MySqlStatusReader, SqlStatusReader
from app.core.sql.transactions import SqlTransactionRepository
from app.core.sql.webhook_events import SqlWebhookEventRepository
from app.core.status_cache import CachedStatusReader, StatusViewCache
from app.core.status_changes import LocalStatusChanges, RedisStatusChanges
from app.core.status_stream import StatusWatchers
from app.core.sweeper import Sweeper
from app.core.webhooks import WebhookService
from app.db import create_engine
from app.db_direct import DirectDatabase, HotPathDatabase, hot_path_database
from app.gateway.service import GatewayService
from app.gateway.toss import TossClient, create_http_client
from app.gateway.toss_webhooks import TossWebhooks
from app.provisioning.handlers import build_handlers
from app.provisioning.jobs import JobDeps, job_tries
from app.provisioning.queue import ArqProvisioningQueue, InProcessQueue
from app.settings import Settings


@dataclass
class Core:
    """Payment Core in one process: its adapters and use cases, created once, closed once."""

    settings: Settings
    engine: AsyncEngine
    hot: HotPathDatabase  # the engine on SQLite, a DirectDatabase on MySQL
    status_reader: MySqlStatusReader | None
    status_cache: StatusViewCache
    status_watchers: StatusWatchers
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
        if isinstance(self.hot, DirectDatabase):
            await self.hot.close()
        if self.status_reader is not None:
            await self.status_reader.close()


def build_core(
    settings: Settings,
    *,
    gateway: PaymentGateway | None = None,
    queue: ProvisioningQueue | None = None,
    clock: Clock | None = None,
) -> Core:
    """Every adapter and use case of Payment Core, wired once, for an API process and a worker
    alike. Tests pass fakes for the PG (`gateway`), the job queue (`queue`) and time (`clock`);
    everything else is the real thing."""
    engine = create_engine(settings)
    hot = hot_path_database(settings, engine)  # the checkout's statements (app.db_direct)
    status_reader = (
        None
        if settings.database.uses_sqlite
        else MySqlStatusReader(
            settings.database.url,
            pool_size=settings.database.pool_size,
            recycle_seconds=settings.database.pool_recycle_seconds,
            shared_pool=hot.pool if isinstance(hot, DirectDatabase) else None,
        )
    )
    # One Redis pool per process: arq's client is a redis.asyncio.Redis, so it serves both.
    redis = ArqRedis.from_url(settings.redis_url, socket_timeout=5) if settings.redis_url else None
    http = create_http_client(
        connect_timeout=settings.toss.connect_timeout_seconds,
        read_timeout=settings.toss.read_timeout_seconds,
    )
    toss = TossClient(
        http,
        base_url=settings.toss.api_url,
        secret_key=settings.toss.secret_key,
        max_attempts=settings.toss.max_attempts,
        retry_delay=settings.toss.retry_delay_seconds,
    )
    if gateway is None:
        gateway = GatewayService([toss], webhooks=[TossWebhooks(settings.toss.webhook_secret)])
    # With Redis, several processes may write: the cache is trusted only while this process is
    # subscribed to the status-change bus (the API's lifespan starts the listener; workers never
    # do, so theirs keeps final views only). Without Redis there is one process, always coherent.
    status_cache = StatusViewCache(
        ttl_seconds=settings.payments.status_cache_ttl_seconds, coherent=redis is None
    )
    # The open status streams of this process (API only) are woken by the same announcements; like
    # the cache, they trust them only while the listener is subscribed (always, without Redis).
    status_watchers = StatusWatchers(live=redis is None)
    status_changes: StatusChanges = (
        RedisStatusChanges(redis, status_cache, watchers=status_watchers)
        if redis is not None
        else LocalStatusChanges(status_cache, watchers=status_watchers)
    )
    # Polls read through this process's cache; the repositories announce each committed write.
    status_views = CachedStatusReader(status_reader or SqlStatusReader(engine), status_cache)
    repository = SqlTransactionRepository(engine, status_views, status_changes=status_changes, hot=hot)
    # The queue comes first and runs jobs only once their dependencies exist (end of this function):
    # use cases → queue → jobs → use cases is a cycle, broken by construction order.
    if queue is None:
        if redis is not None:
            queue = ArqProvisioningQueue(redis)
        else:
            queue = InProcessQueue(
                tries=job_tries(settings.provisioning.max_tries),
                sweep_interval_seconds=settings.reconciliation.sweep_interval_seconds,
                webhook_max_jobs=settings.provisioning.webhook_max_jobs,
            )
    checkout_url = settings.toss.checkout_url
    if checkout_url is None and not settings.is_production:
        checkout_url = f"{settings.toss.browser_base_url}/checkout"  # a page the browser opens
    catalog = StaticProductCatalog.from_file(settings.payments.product_catalog_path)
    clock = clock or SystemClock()
    refunds = RefundService(
        repository=repository,
        refunds=SqlRefundRepository(engine, status_changes=status_changes),
        gateway=gateway,
        catalog=catalog,
        queue=queue,
        clock=clock,
        window_days=settings.payments.refund_window_days,
    )
    # A paid payment hands over to fulfilment (40 → 45 and the grant job) through `on_paid`.
    fulfilment = Fulfilment(repository=repository, queue=queue, refunds=refunds, clock=clock)
    results = PaymentResults(
        repository=repository,
        gateway=gateway,
        clock=clock,
        config=ResultsConfig(
            reconcile_first_delay_seconds=settings.reconciliation.first_delay_seconds,
            virtual_account_recheck_seconds=settings.reconciliation.virtual_account_recheck_seconds,
            callback_budget_seconds=settings.payments.callback_budget_seconds,
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
            public_base_url=settings.http.public_base_url,
            transaction_expire_minutes=settings.payments.transaction_expire_minutes,
            client_key=settings.toss.client_key,
            provider=TossClient.name,
            checkout_url=checkout_url,
        ),
    )
    queries = PaymentQueries(repository=repository, catalog=catalog, clock=clock)
    sweeper = Sweeper(repository=repository, fulfilment=fulfilment, refunds=refunds, clock=clock)
    webhooks = WebhookService(
        events=SqlWebhookEventRepository(engine, hot),
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
            backoff_scale=settings.reconciliation.backoff_scale,
            give_up_seconds=settings.reconciliation.give_up_seconds,
        ),
    )
    downstream_http = httpx.AsyncClient(timeout=settings.provisioning.http_timeout_seconds)
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
            hot=hot,
            http=downstream_http,
            study_service_url=settings.provisioning.study_service_url,
            credit_service_url=settings.provisioning.credit_service_url,
        ),
        max_tries=settings.provisioning.max_tries,
        retry_base_seconds=settings.provisioning.retry_base_seconds,
        retry_max_seconds=settings.provisioning.retry_max_seconds,
        refund_retry_seconds=settings.provisioning.refund_retry_seconds,
        sweep_stale_after_seconds=settings.reconciliation.sweep_stale_after_seconds,
        sweep_batch_size=settings.reconciliation.sweep_batch_size,
    )
    if isinstance(queue, InProcessQueue):
        queue.run_jobs_with(job_deps)
    return Core(
        settings=settings,
        engine=engine,
        hot=hot,
        status_reader=status_reader,
        status_cache=status_cache,
        status_watchers=status_watchers,
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
        queue=queue,
        job_deps=job_deps,
    )
