"""Production mode refuses development conveniences: `serve` and `worker` exit non-zero and say why.

Each case runs `python -m app.cli …` as a subprocess with a clean environment (no setting leaks
in from the test runner) and a bounded timeout: a process that starts instead of refusing is
killed when the timeout expires and the test fails.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import httpx
import pytest

from app.settings import DEV_JWT_SECRET, DEV_TOSS_SECRET_KEY, ENVIRONMENT_VARIABLES
from tests.support.servers import REPO_ROOT, free_port, running_server

REFUSAL_TIMEOUT = 30.0


def clean_environment(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT_VARIABLES}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return {**env, "PYTHONUNBUFFERED": "1", **settings}


@pytest.fixture(scope="module")
def secure(mysql_url: str) -> dict[str, str]:
    """Production settings with real-looking secrets, real MariaDB and Redis: nothing to refuse."""
    return {
        "ENVIRONMENT": "production",
        "JWT_SECRET": secrets.token_urlsafe(32),
        "TOSS_SECRET_KEY": "test_sk_" + secrets.token_hex(16),
        "TOSS_CLIENT_KEY": "test_ck_" + secrets.token_hex(16),
        "DATABASE_URL": mysql_url,
        "REDIS_URL": "redis://127.0.0.1:6379/9",
    }


def run_cli(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "app.cli", command]
    if command == "serve":
        args += ["--port", str(free_port())]
    return subprocess.run(
        args, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=REFUSAL_TIMEOUT, check=False
    )


CASES = {
    # name: (settings to break, what the message must name)
    "dev JWT secret": ({"JWT_SECRET": DEV_JWT_SECRET}, ["JWT_SECRET"]),
    "docs' Toss test secret key": ({"TOSS_SECRET_KEY": DEV_TOSS_SECRET_KEY}, ["TOSS_SECRET_KEY"]),
    "embedded SQLite": ({"DATABASE_URL": ""}, ["DATABASE_URL", "SQLite"]),
    # HS256 with a short secret can be brute-forced offline from one token: 32 bytes at least.
    "JWT secret shorter than 32 bytes": (
        {"JWT_SECRET": secrets.token_hex(15) + "x"},
        ["JWT_SECRET", "32 bytes"],
    ),
}


@pytest.mark.parametrize("command", ["serve", "worker"])
@pytest.mark.parametrize("case", CASES.keys())
def test_production_refuses_a_development_default(command: str, case: str, secure: dict[str, str]) -> None:
    broken, named = CASES[case]
    env = clean_environment(**{k: v for k, v in {**secure, **broken}.items() if v})

    result = run_cli(command, env)

    output = result.stdout + result.stderr
    assert result.returncode != 0, f"{command} started in production with the {case}:\n{output[-2000:]}"
    assert "production" in output, output[-2000:]
    for word in named:
        assert word in output, f"the refusal does not name {word}:\n{output[-2000:]}"
    assert "Traceback" not in output, output[-3000:]  # a clear message, not a crash
    for value in (secure["JWT_SECRET"], secure["TOSS_SECRET_KEY"], DEV_JWT_SECRET, DEV_TOSS_SECRET_KEY):
        assert value not in output, "the refusal prints a secret"


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_production_with_nothing_configured_names_every_problem_it_checks(command: str) -> None:
    result = run_cli(command, clean_environment(ENVIRONMENT="production"))

    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-2000:]
    assert "REDIS_URL" in output, output[-2000:]
    if command == "serve":  # the worker stops at the missing REDIS_URL first
        for word in ("JWT_SECRET", "TOSS_SECRET_KEY", "DATABASE_URL"):
            assert word in output, f"{word} not named:\n{output[-2000:]}"


def test_production_with_real_settings_serves_without_the_demo(secure: dict[str, str]) -> None:
    """The control case: nothing insecure, so `serve` starts (and hides the development demo)."""
    env = {k: v for k, v in clean_environment(**secure).items()}
    # start_server merges os.environ; blank out every setting the runner might carry.
    overrides = {name: "" for name in ENVIRONMENT_VARIABLES if name in os.environ} | env
    with running_server(["app.cli", "serve"], health_path="/health/ready", env=overrides) as server:
        ready = httpx.get(f"{server.url}/health/ready", timeout=5.0)
        demo = httpx.get(f"{server.url}/demo", timeout=5.0, follow_redirects=False)
        log = server.log()
    assert ready.status_code == 200 and ready.json()["database"] == "ok", ready.text
    assert demo.status_code == 404, demo.status_code
    assert "DEVELOPMENT mode" not in log and "TEST mode" not in log, log[-2000:]


# What `payments serve` builds, in a fresh interpreter: which of our modules did it import?
IMPORTED_DEMO = """
import sys
from app.main import create_served_app
create_served_app()
print("app.demo" in sys.modules)
"""


@pytest.mark.parametrize(
    ("environment", "imports_demo"),
    [
        ("production", False),
        ("development", True),
    ],
)
def test_the_demo_shop_is_not_even_imported_in_production(
    environment: str, imports_demo: bool, secure: dict[str, str]
) -> None:
    """The demo pages are development code: production must not load them, not only not route them."""
    env = clean_environment(**{**secure, "ENVIRONMENT": environment})
    result = subprocess.run(
        [sys.executable, "-c", IMPORTED_DEMO],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=REFUSAL_TIMEOUT,
        check=False,
    )

    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert result.stdout.strip().splitlines()[-1] == str(imports_demo), result.stdout[-2000:]
