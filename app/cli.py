"""The `payments` command: dev | serve | migrate | token | openapi (and worker, with provisioning)."""

from __future__ import annotations

import os
import sys
import tempfile

import click

from app.settings import Settings, SettingsError, load_settings


def _configure_logging(*, json_logs: bool | None = None) -> None:
    from app.observability import configure_logging

    try:
        settings = load_settings()
    except SettingsError:
        configure_logging("INFO", json_logs=True)
        return
    as_json = settings.observability.log_format != "text" if json_logs is None else json_logs
    configure_logging(settings.observability.log_level, json_logs=as_json)


@click.group()
def main() -> None:
    """AsyncSite Payments."""


@main.command()
@click.argument("user_id")
@click.option("--admin", is_flag=True, help="Add the admin role.")
@click.option(
    "--ttl", "ttl_seconds", default=3600, show_default=True, type=click.IntRange(1), help="Seconds."
)
def token(user_id: str, admin: bool, ttl_seconds: int) -> None:
    """Print a signed bearer token (JWT_SECRET) for USER_ID, alone on one line."""
    from app.core.auth import TokenAuthority

    if not 1 <= len(user_id) <= 64:
        raise click.BadParameter("USER_ID must be 1–64 characters", param_hint="USER_ID")
    settings = load_settings()
    click.echo(TokenAuthority(settings.http.jwt_secret).mint(user_id, admin=admin, ttl_seconds=ttl_seconds))


@main.command()
def migrate() -> None:
    """Apply database migrations to DATABASE_URL."""
    from sqlalchemy.engine import make_url

    from app.migrate import upgrade_database

    _configure_logging()
    settings = load_settings()
    upgrade_database(settings.database.url)
    shown = make_url(settings.database.url).render_as_string(hide_password=True)
    click.echo(f"database is up to date: {shown}")


@main.command()
def openapi() -> None:
    """Print the OpenAPI document, as /schema/openapi.json serves it (no server, no database).

    The same whatever the environment: clients generate their types from it (`make client`)."""
    from app.http.openapi import openapi_json
    from app.main import create_app

    settings = load_settings({"DATABASE_URL": "sqlite+aiosqlite://", "SCHEMA_ENABLED": "true"})
    click.echo(openapi_json(create_app(settings)), nl=False)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--server",
    type=click.Choice(["uvicorn", "granian"]),
    default=None,
    help="The HTTP server. Default: the SERVER setting (granian unless set).",
)
def serve(host: str, port: int, workers: int, server: str | None) -> None:
    """Run the API only, configured by the environment."""
    _configure_logging()
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    _refuse_insecure_production(settings)
    server = server or settings.http.server
    if workers > 1 and settings.redis_url is None:
        raise click.ClickException(
            "--workers above 1 needs REDIS_URL: the processes share the provisioning queue, "
            "the Idempotency-Keys and the status-change announcements through Redis"
        )
    # Granian serves from worker processes even with one: the metrics listener of this process
    # reads their series only through the shared folder.
    if (workers > 1 or server == "granian") and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Every worker process writes its series here; /metrics aggregates them.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="payments-metrics-")
    _start_metrics_listener(settings, api_port=port)
    if server == "granian":
        from app.granian_server import PortInUse, run_granian

        try:
            run_granian(
                host=host,
                port=port,
                workers=workers,
                head_timeout_seconds=settings.http.request_head_timeout_seconds,
            )
        except PortInUse as exc:
            raise click.ClickException(f"cannot listen on {exc.strerror}") from exc
        return
    import uvicorn

    from app.client_address import server_proxy_options
    from app.http_server import head_timeout_protocol

    uvicorn.run(
        "app.main:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=20,
        **server_proxy_options(settings.http.trusted_proxies),
        http=head_timeout_protocol(settings.http.request_head_timeout_seconds),
    )


def _start_metrics_listener(settings: Settings, *, api_port: int) -> None:
    """METRICS_PORT: one listener in this (supervisor) process, which reads every worker's series."""
    import logging

    if not settings.observability.metrics_port:
        if settings.is_production and settings.observability.metrics_token is None:
            logging.getLogger("app").warning(
                "/metrics is not served: set METRICS_TOKEN or METRICS_PORT to scrape this API"
            )
        return
    if settings.observability.metrics_port == api_port:
        raise click.ClickException(f"METRICS_PORT {api_port} is the API's own port: pick another")
    from app.metrics import serve_metrics

    try:
        serve_metrics(settings.observability.metrics_port, settings.observability.metrics_host)
    except OSError as exc:
        where = f"{settings.observability.metrics_host}:{settings.observability.metrics_port}"
        raise click.ClickException(f"METRICS_PORT: cannot listen on {where} ({exc.strerror or exc})") from exc


@main.command()
@click.option("--burst", is_flag=True, help="Process what is queued, then exit.")
@click.option(
    "--check",
    is_flag=True,
    help="Exit 0 if both queues' workers reported healthy lately, else 1 (healthchecks).",
)
def worker(burst: bool, check: bool) -> None:
    """Run the arq workers: grants, refunds and the sweeper; webhooks in slots of their own (needs REDIS_URL)."""
    _configure_logging()
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    if not settings.redis_url:
        raise click.ClickException("REDIS_URL is not set: the worker needs Redis")
    if check:
        from app.provisioning.worker import check_workers

        sys.exit(check_workers(settings))
    _refuse_insecure_production(settings)
    from app.provisioning.worker import run_worker_process

    run_worker_process(burst=burst)


@main.command()
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="The API's port."
)
@click.option(
    "--mock-port",
    default=8090,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="The mock Toss's port.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
def dev(port: int, mock_port: int, host: str) -> None:
    """Everything on the embedded default (SQLite, in-process queue) plus the mock Toss.

    Exits with status 2 and one line on stderr, before printing or starting anything, when a port
    is already in use."""
    from app.dev import DevError, run_dev

    _configure_logging(json_logs=False)
    try:
        status = run_dev(host=host, port=port, mock_port=mock_port)
    except DevError as exc:
        click.echo(f"payments dev: {exc}", err=True)
        status = exc.status
    sys.exit(status)


def _refuse_insecure_production(settings: object) -> None:
    from app.settings import Settings

    assert isinstance(settings, Settings)
    if settings.is_production and settings.insecure_defaults():
        raise click.ClickException(
            "refusing to start in production mode: " + "; ".join(settings.insecure_defaults())
        )


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
