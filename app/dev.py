"""`payments dev`: the API on SQLite and the in-process queue, with the mock Toss beside it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import uvicorn

from app.client_address import server_proxy_options
from app.core.auth import DEVELOPMENT_USER_ID, TokenAuthority
from app.main import create_app
from app.migrate import upgrade_database
from app.settings import DEFAULT_SQLITE_URL, load_settings

_EMBEDDED_ONLY = ("DATABASE_URL", "REDIS_URL", "ENVIRONMENT")


def _start_mock(host: str, mock_port: int, webhook_url: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mock_toss",
            "--host",
            host,
            "--port",
            str(mock_port),
            "--webhook-url",
            webhook_url,
        ]
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the mock Toss exited with {process.returncode} (is port {mock_port} free?)")
        try:
            if httpx.get(f"http://{host}:{mock_port}/_mock/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the mock Toss did not start within 20 s")


def _banner(host: str, port: int, mock_port: int, token: str, client_key: str) -> str:
    api = f"http://{host}:{port}"
    mock = f"http://{host}:{mock_port}"
    get_id = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"transactionId\"])'"
    get_redirect = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"redirectUrl\"])'"
    return f"""
================ AsyncSite Payments (development) ================
 Demo shop (click here)  {api}/demo/
 API                     {api}/api/payments  (OpenAPI: {api}/schema)
 Mock Toss               {mock}  (journal: {mock}/_mock/requests)
 Database                {DEFAULT_SQLITE_URL}
 Queue                   in-process (REDIS_URL unset)

 Dev token for user '{DEVELOPMENT_USER_ID}' (8 h), the demo pages' user too:
   export TOKEN={token}

 One checkout with curl:
   TX=$(curl -s -X POST {api}/api/payments/issue -H "Authorization: Bearer $TOKEN" \\
        -H 'Content-Type: application/json' -H "Idempotency-Key: demo-$RANDOM" \\
        -d '{{"productType":"STUDY","productId":"study_123","amount":50000}}' | {get_id})
   REDIRECT=$(curl -s -X POST {mock}/_mock/checkout -H 'Content-Type: application/json' \\
        -d '{{"clientKey":"{client_key}","orderId":"'$TX'","amount":50000,"orderName":"study",
             "method":"CARD","successUrl":"{api}/api/payments/callback/success",
             "failUrl":"{api}/api/payments/callback/fail?transactionId='$TX'"}}' | {get_redirect})
   curl -s -o /dev/null -w '%{{http_code}} -> %{{redirect_url}}\\n' "$REDIRECT"
   curl -s {api}/api/payments/$TX/status -H "Authorization: Bearer $TOKEN"
==================================================================
"""


def run_dev(*, host: str, port: int, mock_port: int) -> int:
    environ = {k: v for k, v in os.environ.items() if k not in _EMBEDDED_ONLY}
    settings = load_settings(
        environ,
        environment="development",
        toss_api_url=f"http://{host}:{mock_port}",
        public_base_url=f"http://{host}:{port}",
        frontend_base_url=f"http://{host}:{port}/demo",
    )
    upgrade_database(settings.database.url)
    mock = _start_mock(host, mock_port, f"http://{host}:{port}/webhooks/payments/toss")
    try:
        token = TokenAuthority(settings.http.jwt_secret).mint(DEVELOPMENT_USER_ID, ttl_seconds=8 * 3600)
        print(_banner(host, port, mock_port, token, settings.toss.client_key), flush=True)
        config = uvicorn.Config(
            create_app(settings),
            host=host,
            port=port,
            log_level="info",
            **server_proxy_options(settings.http.trusted_proxies),
        )
        server = uvicorn.Server(config)
        server.run()
    finally:
        mock.terminate()
        try:
            mock.wait(timeout=10)
        except subprocess.TimeoutExpired:
            mock.kill()
    return 0
