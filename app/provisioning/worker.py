"""The arq worker: provisioning grants, refunds, and the periodic sweeper.

Run it with `payments worker` (or `arq app.provisioning.worker.WorkerSettings`). It builds the
same Services as the API (one Redis pool, one DB engine, one HTTP client per process).
"""

from __future__ import annotations

from typing import Any, ClassVar

from arq.connections import RedisSettings
from arq.cron import CronJob, cron
from arq.worker import Function, func

from app.provisioning.jobs import process_webhook, provision_grant, refund_payment, sweep
from app.settings import load_settings

_settings = load_settings()


async def startup(ctx: dict[str, Any]) -> None:
    from app.main import build_services

    services = build_services(_settings)
    ctx["services"] = services
    ctx["deps"] = services.job_deps
    if _settings.worker_metrics_port:
        from app.metrics import serve_metrics

        serve_metrics(_settings.worker_metrics_port)


async def shutdown(ctx: dict[str, Any]) -> None:
    services = ctx.get("services")
    if services is not None:
        await services.close()


def _redis_settings() -> RedisSettings:
    if not _settings.redis_url:
        raise SystemExit(
            "REDIS_URL is not set: the arq worker needs Redis (the embedded default runs jobs in-process)"
        )
    return RedisSettings.from_dsn(_settings.redis_url)


class WorkerSettings:
    # keep_result=0: a finished job frees its deterministic id at once, so it can be queued again.
    functions: ClassVar[list[Function]] = [
        func(
            provision_grant,
            keep_result=0,
            timeout=_settings.provisioning_job_timeout_seconds,
            max_tries=_settings.provisioning_max_tries + 2,  # our own rule turns the last try into 51
        ),
        func(
            refund_payment, keep_result=0, timeout=_settings.provisioning_job_timeout_seconds, max_tries=1000
        ),
        func(
            process_webhook, keep_result=0, timeout=_settings.provisioning_job_timeout_seconds, max_tries=20
        ),
    ]
    cron_jobs: ClassVar[list[CronJob]] = [
        cron(
            sweep,
            second=set(range(0, 60, _settings.sweep_interval_seconds)),
            run_at_startup=True,
            unique=True,
            # arq keeps every in-progress marker for the largest timeout of all functions + 10 s:
            # a longer cron timeout would delay the recovery of a crashed worker's grant.
            timeout=_settings.provisioning_job_timeout_seconds,
            keep_result=0,
        )
    ]
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = _redis_settings() if _settings.redis_url else RedisSettings()
    # A crashed worker's job is picked up again after job_timeout + 10 s: keep it tight.
    job_timeout = _settings.provisioning_job_timeout_seconds
    keep_result = 0
    max_jobs = 20
    poll_delay = 0.1
    health_check_interval = 10
    allow_abort_jobs = False
