"""The mock Toss installs on its own: its wheel (scripts/build_mock_wheel.py) in a fresh venv, with
its dependencies from the package index and nothing of the payment service, runs `mock-toss` and
takes a checkout and a confirm.

Bounded: every step has a timeout and the whole test stays under 3 minutes (about 40 s here: the
build fetches setuptools, the install fetches litestar and the rest from the index).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import venv
from pathlib import Path

import httpx
import pytest

from mock_toss import __version__
from mock_toss.auth import basic_auth_header
from mock_toss.config import DEFAULT_CLIENT_KEY, DEFAULT_SECRET_KEY
from tests.support.servers import REPO_ROOT, free_port, start_process

pytestmark = pytest.mark.slow

BUDGET_SECONDS = 180
IMPORT_EVERY_MODULE = (
    "import importlib, pkgutil, mock_toss; "
    "[importlib.import_module(m.name) for m in pkgutil.walk_packages(mock_toss.__path__, 'mock_toss.')]; "
    "print(mock_toss.__file__)"
)


def _run(
    command: list[str], *, cwd: Path, timeout: float, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_wheel_installs_alone_and_serves_a_checkout(tmp_path: Path) -> None:
    started = time.monotonic()

    def left() -> float:
        remaining = BUDGET_SECONDS - (time.monotonic() - started)
        assert remaining > 0, f"over the {BUDGET_SECONDS} s budget"
        return remaining

    # Run outside the repository with nothing of it on the path: only the venv's site-packages count.
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{tmp_path / 'venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"

    built = _run(
        [sys.executable, str(REPO_ROOT / "scripts" / "build_mock_wheel.py"), "--out", str(tmp_path / "dist")],
        cwd=tmp_path,
        timeout=min(90, left()),
        env=env,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    wheel = Path(built.stdout.strip().splitlines()[-1])
    assert wheel.name == f"asyncsite_mock_toss-{__version__}-py3-none-any.whl" and wheel.is_file()

    venv.EnvBuilder(with_pip=True, clear=True).create(tmp_path / "venv")
    python = str(tmp_path / "venv" / "bin" / "python")
    installed = _run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        cwd=tmp_path,
        timeout=min(120, left()),
        env=env,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr

    # Only the mock is installed: the payment service is not importable, every mock module is.
    no_app = _run([python, "-c", "import app"], cwd=tmp_path, timeout=30, env=env)
    assert no_app.returncode != 0 and "No module named 'app'" in no_app.stderr, no_app.stderr
    modules = _run([python, "-c", IMPORT_EVERY_MODULE], cwd=tmp_path, timeout=60, env=env)
    assert modules.returncode == 0, modules.stderr
    assert Path(modules.stdout.strip()).is_relative_to(tmp_path / "venv")
    help_text = _run([python, "-m", "mock_toss", "--help"], cwd=tmp_path, timeout=30, env=env)
    assert help_text.returncode == 0 and "--webhook-url" in help_text.stdout

    port = free_port()
    server = start_process(
        [str(tmp_path / "venv" / "bin" / "mock-toss"), "--port", str(port)],
        name="mock-toss-wheel",
        env=env,
        cwd=tmp_path,
        grace_seconds=5,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        server.wait_for_http(f"{base}/_mock/health", timeout=min(30, left()))
        with httpx.Client(base_url=base, timeout=10, trust_env=False) as client:
            order = {
                "clientKey": DEFAULT_CLIENT_KEY,
                "orderId": "order-wheel-001",
                "amount": 15000,
                "orderName": "휠 설치 확인",
                "successUrl": "http://shop.test/success",
                "failUrl": "http://shop.test/fail",
            }
            window = client.post("/_mock/checkout", json=order)
            assert window.status_code == 200, window.text
            confirmed = client.post(
                "/v1/payments/confirm",
                json={
                    "paymentKey": window.json()["paymentKey"],
                    "orderId": "order-wheel-001",
                    "amount": 15000,
                },
                headers={"Authorization": basic_auth_header(DEFAULT_SECRET_KEY)},
            )
            assert confirmed.status_code == 200, confirmed.text
            assert confirmed.json()["status"] == "DONE"
            page = client.get("/checkout", params={**order, "orderId": "order-wheel-002"})
            assert page.status_code == 200 and "<form" in page.text  # the window's template is packaged
            sdk = client.get("/v2/standard")
            assert sdk.status_code == 200 and "TossPayments" in sdk.text  # the SDK script is packaged
    finally:
        server.stop()
    assert left() > 0
