"""The arq worker process: grants, refunds and the periodic sweeper, and webhook processing apart.

`payments worker` runs two arq Workers on one event loop, over one set of Services (one Redis
pool per worker, one DB engine, one HTTP client per process):

- `grant_worker_settings`: grants, refunds and the sweeper on arq's default queue, 20 jobs at once;
- `webhook_worker_settings`: webhook processing on a queue of its own, WEBHOOK_MAX_JOBS at once.
  Anyone can post a webhook (Toss does not sign them), so a flood of deliveries may fill these
  slots, never the ones grants and refunds run in.

Settings are read when the worker starts (`run_worker_process`), never at import; the worker
builds Payment Core (app.bootstrap) and nothing of the HTTP side.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from arq.connections import RedisSettings
from arq.cron import cron
from arq.worker import Function, Worker, check_health, create_worker, func
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, WatchError
from redis.exceptions import TimeoutError as RedisTimeout

from app.provisioning.jobs import (
    WEBHOOK_QUEUE,
    job_tries,
    process_webhook,
    provision_grant,
    refund_payment,
    replay_callback,
    sweep,
)
from app.settings import Settings, load_settings

log = logging.getLogger("app.provisioning")
T = TypeVar("T")
REDIS_OUTAGE_SECONDS = 60.0  # how long the worker waits for Redis before it gives up and exits


async def startup(ctx: dict[str, Any]) -> None:
    """Build Payment Core once for the process (ctx["settings"] was read at start)."""
    from app.bootstrap import build_core

    settings: Settings = ctx["settings"]
    core = build_core(settings)
    ctx["services"] = core
    ctx["deps"] = core.job_deps
    if settings.observability.worker_metrics_port:
        from app.metrics import serve_metrics

        serve_metrics(settings.observability.worker_metrics_port)


async def shutdown(ctx: dict[str, Any]) -> None:
    services = ctx.get("services")
    if services is not None:
        await services.close()


class RideOutRedisOutages(Retry):
    """Retry a Redis connect or command for up to `seconds`, waiting 0.1, 0.2, … 1 s in between.

    arq's Worker ends at the first Redis error, and with it every grant until someone restarts
    the process. With this the worker waits through a Redis restart or a blip: its jobs and its
    polling resume once Redis answers (a Redis that comes back empty lost its queue: the sweeper
    queues the work again). A connect retried inside a command retried may wait twice as long.
    """

    __slots__ = ("_seconds",)

    def __init__(self, seconds: float) -> None:
        super().__init__(NoBackoff(), retries=-1)  # Redis's ConnectionError and TimeoutError
        self.update_supported_errors([OSError])  # a refused connect, before redis-py wraps it
        self._seconds = seconds

    async def call_with_retry(self, do: Callable[[], Awaitable[T]], fail: Callable[[RedisError], Any]) -> T:
        deadline = time.monotonic() + self._seconds
        failures = 0
        while True:
            try:
                return await do()
            except self._supported_errors as error:
                failures += 1
                await fail(error)
                if time.monotonic() >= deadline:
                    raise
                if failures == 1:
                    log.warning("Redis unreachable; the worker waits for it", extra={"error": repr(error)})
                await asyncio.sleep(min(1.0, 0.05 * 2**failures))


def _redis_settings(settings: Settings) -> RedisSettings:
    if not settings.redis_url:
        raise SystemExit(
            "REDIS_URL is not set: the arq worker needs Redis (the embedded default runs jobs in-process)"
        )
    return dataclasses.replace(
        RedisSettings.from_dsn(settings.redis_url),
        retry=RideOutRedisOutages(REDIS_OUTAGE_SECONDS),
        retry_on_error=[RedisConnectionError, RedisTimeout, OSError],
    )


def _functions(settings: Settings, *jobs: Callable[..., Any]) -> list[Function]:
    # keep_result=0: a finished job frees its deterministic id at once, so it can be queued again.
    tries = job_tries(settings.provisioning.max_tries)
    return [
        func(
            job,
            keep_result=0,
            timeout=settings.provisioning.job_timeout_seconds,
            max_tries=tries[job.__name__],
        )
        for job in jobs
    ]


def _common(settings: Settings) -> dict[str, Any]:
    return {
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": _redis_settings(settings),
        # A crashed worker's job is picked up again after job_timeout + 10 s: keep it tight.
        "job_timeout": settings.provisioning.job_timeout_seconds,
        "keep_result": 0,
        "poll_delay": 0.1,
        "health_check_interval": 10,
        "allow_abort_jobs": False,
    }


def grant_worker_settings(settings: Settings) -> dict[str, Any]:
    """Grants, refunds and the sweeper on arq's default queue, 20 at once (arq Worker arguments)."""
    return {
        **_common(settings),
        # Webhook jobs are queued on WEBHOOK_QUEUE; this also runs those an older API queued here.
        "functions": _functions(settings, provision_grant, refund_payment, process_webhook),
        "cron_jobs": [
            cron(
                sweep,
                second=set(range(0, 60, settings.reconciliation.sweep_interval_seconds)),
                run_at_startup=True,
                unique=True,
                # arq keeps every in-progress marker for the largest timeout of all functions + 10 s:
                # a longer cron timeout would delay the recovery of a crashed worker's grant.
                timeout=settings.provisioning.job_timeout_seconds,
                keep_result=0,
            )
        ],
        "max_jobs": 20,
    }


def webhook_worker_settings(settings: Settings) -> dict[str, Any]:
    """Webhook processing and replayed browser callbacks (both come from anyone) on a queue of
    their own, WEBHOOK_MAX_JOBS at once."""
    return {
        **_common(settings),
        "queue_name": WEBHOOK_QUEUE,
        "functions": _functions(settings, process_webhook, replay_callback),
        "max_jobs": settings.provisioning.webhook_max_jobs,
    }


def check_workers(settings: Settings) -> int:
    """0 when both workers (grants and webhooks) wrote their health-check key lately, else 1."""
    results = [
        check_health(arq) for arq in (grant_worker_settings(settings), webhook_worker_settings(settings))
    ]
    return 0 if not any(results) else 1


def run_worker_process(*, burst: bool = False) -> None:
    """`payments worker`: both workers until SIGINT/SIGTERM (with `burst`, until both queues are empty)."""
    asyncio.run(_run_both(load_settings(), burst=burst))


async def _run_both(settings: Settings, *, burst: bool) -> None:
    ctx: dict[str, Any] = {"settings": settings}
    await startup(ctx)  # once for both: they share the Services, and neither closes them alone
    try:
        # Each worker gets a ctx of its own (arq writes its Redis pool into it).
        makers = [
            functools.partial(
                create_worker, arq_settings, burst=burst, ctx=dict(ctx), on_startup=None, on_shutdown=None
            )
            for arq_settings in (grant_worker_settings(settings), webhook_worker_settings(settings))
        ]
        workers = [make() for make in makers]
        stopping = asyncio.Event()

        def take_signals() -> None:
            # Each Worker installs its own SIGINT/SIGTERM handler as it is made, the last replacing
            # the others: ours, installed after, stops both (arq's handle_sig cancels a worker's
            # jobs, which arq runs again later).
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, _stop, workers, signum, stopping)

        take_signals()
        log.info(
            "grants, refunds and the sweeper on %s (%d at once); webhooks on %s (%d at once)",
            workers[0].queue_name,
            workers[0].max_jobs,
            workers[1].queue_name,
            workers[1].max_jobs,
        )
        runs = [
            asyncio.ensure_future(_run_restarting(workers, slot, make, stopping, take_signals))
            for slot, make in enumerate(makers)
        ]
        # Returns when both ended (a signal, or burst), or as soon as one of them crashed.
        await asyncio.wait(runs, return_when=asyncio.FIRST_EXCEPTION)
        _stop(workers, signal.SIGTERM, stopping)
        await asyncio.gather(*runs, return_exceptions=True)
        for worker in workers:
            await worker.close()
        for run in runs:
            error = None if run.cancelled() else run.exception()
            if error is not None:
                raise error
    finally:
        await shutdown(ctx)


async def _run_restarting(
    workers: list[Worker],
    slot: int,
    make: Callable[[], Worker],
    stopping: asyncio.Event,
    take_signals: Callable[[], None],
) -> None:
    """Run `workers[slot]`; when Redis drops while it claims a job, run a new one in its place.

    arq claims a job under WATCH, and redis-py answers a connection lost while watching with
    WatchError before any retry, which ends arq's poll loop. The claim did not happen (the job
    stays queued), so nothing is lost by polling again with a fresh Worker; jobs the old Worker
    started finish on their own tasks, and its Redis pool is closed once they are done.
    """
    while True:
        try:
            await workers[slot].async_run()
            return
        except WatchError as error:
            if stopping.is_set():
                raise
            log.warning(
                "Redis dropped while the worker claimed a job; it polls again with a new worker",
                extra={"queue": workers[slot].queue_name, "error": repr(error)},
            )
            retired = workers[slot]
            workers[slot] = make()
            take_signals()
            retired_close = asyncio.ensure_future(_close_quietly(retired))
            _RETIRED.add(retired_close)
            retired_close.add_done_callback(_RETIRED.discard)
            await asyncio.sleep(0.5)


_RETIRED: set[asyncio.Future[None]] = set()


async def _close_quietly(worker: Worker) -> None:
    with contextlib.suppress(RedisError, OSError):
        await worker.close()


def _stop(workers: list[Worker], signum: signal.Signals, stopping: asyncio.Event) -> None:
    stopping.set()
    for worker in workers:
        if worker.main_task is not None and not worker.main_task.done():
            worker.handle_sig(signum)
