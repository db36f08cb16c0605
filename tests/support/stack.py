"""The whole service as real processes: API replicas and arq workers over one MariaDB and Redis.

    with running_stack(mysql_url=..., redis_url=..., toss_url=mock.url, workers=1) as stack:
        token = stack.token("alice")
        ...

Each stack gets its own Redis database (flushed) so queued jobs of one stack never reach
another's workers; the database is shared (tests use their own users and transactions).
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import redis

from app.core.auth import TokenAuthority
from tests.support.servers import (
    REDIS_HOST_URL,
    ManagedProcess,
    RunningServer,
    free_port,
    start_process,
    start_server,
)

# Redis databases 10–15 are handed to stacks in turn; database 9 belongs to plain tests.
_STACK_REDIS_DBS = itertools.cycle(range(10, 16))

FAST_ENV: dict[str, str] = {
    "ENVIRONMENT": "test",
    "TOSS_READ_TIMEOUT_SECONDS": "1",
    "TOSS_RETRY_DELAY_SECONDS": "0.2",
    "TOSS_MAX_ATTEMPTS": "2",
    "PROVISIONING_RETRY_BASE_SECONDS": "0.2",
    "PROVISIONING_RETRY_MAX_SECONDS": "1",
    "PROVISIONING_MAX_TRIES": "4",
    "PROVISIONING_JOB_TIMEOUT_SECONDS": "5",
    "PROVISIONING_HTTP_TIMEOUT_SECONDS": "2",
    "REFUND_RETRY_SECONDS": "0.5",
    "SWEEP_INTERVAL_SECONDS": "1",
    "SWEEP_STALE_AFTER_SECONDS": "2",
    "RECONCILE_FIRST_DELAY_SECONDS": "1",
    "RECONCILE_BACKOFF_SCALE": "0.1",
}


# A `payments worker` process; its `stop()` gives running jobs WORKER_GRACE_SECONDS to finish.
WorkerProcess = ManagedProcess
WORKER_GRACE_SECONDS = 15.0
WORKER_START_SECONDS = 30.0  # until arq logs that it runs (imports, Redis, the first poll)


@dataclass
class Stack:
    env: dict[str, str]
    jwt_secret: str
    apis: list[RunningServer] = field(default_factory=list)
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return self.apis[0].url

    def token(self, user_id: str, *, admin: bool = False) -> str:
        return TokenAuthority(self.jwt_secret).mint(user_id, admin=admin)

    def headers(self, user_id: str, *, admin: bool = False) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id, admin=admin)}"}

    def start_worker(self) -> WorkerProcess:
        worker = start_process(
            [sys.executable, "-m", "app.cli", "worker"],
            name="worker",
            env=self.env,
            grace_seconds=WORKER_GRACE_SECONDS,
        )
        worker.wait_for_log(("Starting worker", "redis_version"), timeout=WORKER_START_SECONDS)
        self.workers.append(worker)
        return worker

    def start_api(self, *, port: int | None = None, env: Mapping[str, str] | None = None) -> RunningServer:
        """One more API process, on `port` (a free one unless given), with `env` over the stack's."""
        port = port or free_port()
        process_env = {**self.env, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", **(env or {})}
        server = start_server(
            ["app.cli", "serve", "--port", str(port)],
            port=port,
            health_path="/health/ready",
            env=process_env,
            name="api",
        )
        self.apis.append(server)
        return server


@contextlib.contextmanager
def running_stack(
    *,
    mysql_url: str,
    redis_base_url: str = REDIS_HOST_URL,
    toss_url: str,
    workers: int = 1,
    apis: int = 1,
    env: Mapping[str, str] | None = None,
) -> Iterator[Stack]:
    """Start `apis` API processes and `workers` arq workers; stop them all afterwards."""
    redis_db = next(_STACK_REDIS_DBS)
    redis_url = f"{redis_base_url}/{redis_db}"
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    jwt_secret = secrets.token_hex(16)
    # API and worker processes of one host share a metrics folder, so /metrics shows the workers' series.
    metrics_dir = tempfile.mkdtemp(prefix="stack-metrics-")
    stack = Stack(
        env={
            **FAST_ENV,
            "DATABASE_URL": mysql_url,
            "REDIS_URL": redis_url,
            "TOSS_API_URL": toss_url,
            "FRONTEND_BASE_URL": "http://frontend.test",
            "JWT_SECRET": jwt_secret,
            "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
            **(env or {}),
        },
        jwt_secret=jwt_secret,
    )
    try:
        for _ in range(apis):
            stack.start_api()
        for _ in range(workers):
            stack.start_worker()
        yield stack
    finally:
        for worker in stack.workers:
            worker.stop()
        for api in stack.apis:
            api.stop()
