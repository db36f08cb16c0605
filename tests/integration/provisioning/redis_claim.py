"""A private Redis database for a test's arq queue, claimed so that concurrent runs never share it.

arq's queue lives in one Redis database: a worker of anyone else's on the same database would take
our jobs (and find nothing to do in its own MySQL database), so the provisioning tests claim an
empty database: atomically (MULTI/EXEC) only while it is empty, marked with an owner key that other
claimers (these helpers, the reconciliation e2e helpers) see as "in use". Candidates avoid the
databases other tools flush without asking (6, 7: bench and load scripts; 9: plain tests; 10–15:
running_stack). Override with PROVISIONING_TEST_REDIS_DBS="1,2".
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

import redis

from tests.support.servers import REDIS_HOST_URL

OWNER_KEY = "provisioning-tests:owner"
_TOKEN = f"pid{os.getpid()}-{secrets.token_hex(4)}"  # this test process's claims
CANDIDATES = tuple(
    int(db) for db in os.environ.get("PROVISIONING_TEST_REDIS_DBS", "1,2,0,3,4,5").split(",") if db.strip()
)


@contextlib.contextmanager
def claimed_redis_db() -> Iterator[str]:
    """Claim an empty candidate database (with an owner key), yield its URL, empty it afterwards."""
    token = _TOKEN
    for db in CANDIDATES:
        client = redis.Redis.from_url(f"{REDIS_HOST_URL}/{db}")
        try:
            if _claim(client, token):
                url = f"{REDIS_HOST_URL}/{db}"
                try:
                    yield url
                finally:
                    if client.get(OWNER_KEY) in (token.encode(), None):  # None: someone flushed it
                        client.flushdb()
                return
        finally:
            client.close()
    raise RuntimeError(f"no empty Redis database among {CANDIDATES} (set PROVISIONING_TEST_REDIS_DBS)")


def reset_claimed(url: str) -> None:
    """Empty our claimed database and keep it claimed (one MULTI/EXEC).

    If someone flushed it meanwhile (the owner key is gone), it is claimed again.
    """
    client = redis.Redis.from_url(url)
    try:
        with client.pipeline(transaction=True) as pipe:
            pipe.flushdb()
            pipe.set(OWNER_KEY, _TOKEN)
            pipe.execute()
    finally:
        client.close()


def _claim(client: redis.Redis, token: str) -> bool:
    """Set the owner key only if the database is empty, atomically."""
    with client.pipeline(transaction=True) as pipe:
        try:
            pipe.watch(OWNER_KEY)  # type: ignore[no-untyped-call]
            if pipe.dbsize() != 0:
                pipe.unwatch()
                return False
            pipe.multi()
            pipe.set(OWNER_KEY, token, nx=True)
            result = pipe.execute()
        except redis.WatchError:
            return False
    return bool(result[0])
