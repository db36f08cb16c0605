"""`mock-toss` / `python -m mock_toss`: run the mock Toss server."""

from __future__ import annotations

import os

import click
import uvicorn

from mock_toss.app import create_app
from mock_toss.config import (
    DEFAULT_CLIENT_KEY,
    DEFAULT_SECRET_KEY,
    DOCS_WIDGET_CLIENT_KEY,
    DOCS_WIDGET_SECRET_KEY,
    MockConfig,
)


def _webhook_urls(from_flags: tuple[str, ...]) -> tuple[str, ...]:
    # Flags win over MOCK_TOSS_WEBHOOK_URL; both accept comma-separated lists.
    raw = list(from_flags) or [os.environ.get("MOCK_TOSS_WEBHOOK_URL", "")]
    return tuple(url.strip() for value in raw for url in value.split(",") if url.strip())


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--host", default="127.0.0.1", show_default=True, envvar="MOCK_TOSS_HOST", help="Interface to bind."
)
@click.option(
    "--port", default=8090, show_default=True, type=int, envvar="MOCK_TOSS_PORT", help="Port to bind."
)
@click.option(
    "--webhook-url",
    "webhook_urls",
    multiple=True,
    help="Where to POST webhooks (repeatable; env MOCK_TOSS_WEBHOOK_URL, comma-separated).",
)
@click.option(
    "--time-scale",
    default=1.0,
    show_default=True,
    type=float,
    envvar="MOCK_TOSS_TIME_SCALE",
    help="Multiplies webhook retry intervals (0.001 → first retry after 0.06 s).",
)
@click.option(
    "--slow-confirm-seconds",
    default=15.0,
    show_default=True,
    type=float,
    envvar="MOCK_TOSS_SLOW_CONFIRM_SECONDS",
    help="How long the slow test card (4330000000000047) holds its confirm.",
)
@click.option(
    "--webhook-secret",
    default=None,
    envvar="MOCK_TOSS_WEBHOOK_SECRET",
    help="Sign webhooks with X-Toss-Signature (hex HMAC-SHA256 of the body).",
)
@click.option(
    "--secret-key",
    default=DEFAULT_SECRET_KEY,
    show_default=True,
    envvar="MOCK_TOSS_SECRET_KEY",
    help="The test secret key API calls must use.",
)
@click.option(
    "--client-key",
    default=DEFAULT_CLIENT_KEY,
    show_default=True,
    envvar="MOCK_TOSS_CLIENT_KEY",
    help="The test client key the payment window accepts.",
)
@click.option(
    "--widget-secret-key",
    default=DOCS_WIDGET_SECRET_KEY,
    show_default=True,
    envvar="MOCK_TOSS_WIDGET_SECRET_KEY",
    help="The widget pair's test secret key (confirms payments opened with the widget client key).",
)
@click.option(
    "--widget-client-key",
    default=DOCS_WIDGET_CLIENT_KEY,
    show_default=True,
    envvar="MOCK_TOSS_WIDGET_CLIENT_KEY",
    help="The widget pair's test client key (the SDK's widgets()).",
)
def main(
    host: str,
    port: int,
    webhook_urls: tuple[str, ...],
    time_scale: float,
    slow_confirm_seconds: float,
    webhook_secret: str | None,
    secret_key: str,
    client_key: str,
    widget_secret_key: str,
    widget_client_key: str,
) -> None:
    """Run the mock Toss Payments server (API, payment window and /_mock test controls)."""
    try:
        config = MockConfig(
            host=host,
            port=port,
            webhook_urls=_webhook_urls(webhook_urls),
            time_scale=time_scale,
            slow_confirm_seconds=slow_confirm_seconds,
            webhook_secret=webhook_secret or None,
            secret_key=secret_key,
            client_key=client_key,
            widget_secret_key=widget_secret_key,
            widget_client_key=widget_client_key,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    # A held request (slow card, chaos timeout) must not keep Ctrl+C waiting for long.
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=3,
    )


if __name__ == "__main__":
    main()
