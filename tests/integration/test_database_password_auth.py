"""Logging in to the database with a password: the path `docker compose up` takes on MySQL 8.4.

compose.yaml runs mysql:8.4, which creates the `payments` user with caching_sha2_password, and our
services log in with the password in DATABASE_URL over plain TCP (no TLS). On the first login after
the server starts (its cache is empty) MySQL asks for *full authentication*: the client fetches the
server's RSA public key and sends the password RSA-OAEP encrypted. asyncmy does that in
`asyncmy.auth.sha2_rsa_encrypt`, which imports `cryptography.hazmat.primitives.*` and, without the
package, raises "'cryptography' package is required for sha256_password or caching_sha2_password
auth methods": `payments migrate` would stop there on a fresh compose stack. Hence `cryptography`
is a dependency of the project.

What these tests cover, and what they do not:

- Covered: asyncmy's client side of caching_sha2_password, both ways a MySQL 8 server can answer
  (fast authentication from its cache, and full authentication with the RSA key exchange), against
  a small in-test server that speaks that part of the MySQL protocol exactly as documented and
  checks the password it receives (a wrong one gets MySQL's error 1045); and that the same full
  authentication fails without `cryptography`, as it would in an image without it.
- Covered: a password in DATABASE_URL, URL-encoded, with characters that mean something in a URL
  and in Alembic's config file (`@ : / % # ? &`), reaching the real MariaDB at 127.0.0.1:3306
  through our own code: `upgrade_database` (Alembic), the `payments migrate` command, the app's
  SQLAlchemy engine (`app.db.create_engine`) and the status poll's own asyncmy pool
  (`MySqlStatusReader`). MariaDB has no caching_sha2_password, so that user logs in with
  mysql_native_password, the one plugin asyncmy speaks to MariaDB without extra packages
  (`client_ed25519` needs PyNaCl, which is not a dependency; `auth_ed25519` is not loaded here).
- Not covered: a real MySQL 8.4 server (none runs here, and Docker has no engine on this machine),
  its TLS path (with TLS the password goes in clear over the encrypted channel, no RSA), and
  `sha256_password` (deprecated; same RSA helper).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import asyncmy
import asyncmy.auth
import pytest
from asyncmy.errors import OperationalError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy import make_url, text
from sqlalchemy.exc import OperationalError as DBAPIOperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.sql.status_reader import MySqlStatusReader
from app.db import create_engine
from app.migrate import upgrade_database
from app.settings import load_settings
from tests.conftest import MARIADB_ADMIN_URL, _require_port
from tests.support.servers import REPO_ROOT

# --- caching_sha2_password against a server that speaks it ---------------------------------------

# Capability flags (MySQL's include/mysql_com.h).
LONG_PASSWORD, PROTOCOL_41, TRANSACTIONS, SECURE_CONNECTION = 1, 1 << 9, 1 << 13, 1 << 15
MULTI_RESULTS, PLUGIN_AUTH, PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 17, 1 << 19, 1 << 21
SERVER_CAPABILITIES = (
    LONG_PASSWORD
    | PROTOCOL_41
    | TRANSACTIONS
    | SECURE_CONNECTION
    | MULTI_RESULTS
    | PLUGIN_AUTH
    | PLUGIN_AUTH_LENENC_CLIENT_DATA
)
UTF8MB4_0900_AI_CI = 255
OK_PACKET = b"\x00\x00\x00" + struct.pack("<HH", 0, 0)  # no AUTOCOMMIT flag: asyncmy sends nothing more
FAST_AUTH_OK, PERFORM_FULL_AUTHENTICATION, REQUEST_PUBLIC_KEY = b"\x01\x03", b"\x01\x04", b"\x02"


def access_denied(user: str) -> bytes:
    return b"\xff" + struct.pack("<H", 1045) + b"#28000" + f"Access denied for user '{user}'".encode()


class Sha2Server:
    """One MySQL 8 login at a time, the caching_sha2_password way (the MySQL source's
    sql/auth/sha2_password.cc and the protocol's "caching_sha2_password" page):

    handshake (plugin caching_sha2_password, 20-byte nonce) → the client's scramble
    XOR(SHA256(p), SHA256(SHA256(SHA256(p)) + nonce)) → with `cached`, check it and answer
    fast-auth-ok; else perform-full-authentication → the client asks for the public key (2) →
    the PEM key → the password XOR the nonce, RSA-OAEP(SHA-1) encrypted → decrypt, compare."""

    def __init__(self, user: str, password: str, *, cached: bool) -> None:
        self.user, self.password, self.cached = user, password, cached
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.logins: list[str] = []  # "fast" or "full", per login that succeeded

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sequence = 0

        async def send(payload: bytes) -> None:
            nonlocal sequence
            writer.write(len(payload).to_bytes(3, "little") + bytes([sequence]) + payload)
            await writer.drain()
            sequence += 1

        async def receive() -> bytes:
            nonlocal sequence
            header = await reader.readexactly(4)
            assert header[3] == sequence, f"packet {header[3]}, expected {sequence}"
            sequence += 1
            return await reader.readexactly(int.from_bytes(header[:3], "little"))

        try:
            nonce = bytes(secrets.choice(range(1, 128)) for _ in range(20))  # no NUL: it ends part 2
            await send(
                b"\x0a8.4.0-sha2-test\x00"
                + struct.pack("<I", 1)
                + nonce[:8]
                + b"\x00"
                + struct.pack("<H", SERVER_CAPABILITIES & 0xFFFF)
                + bytes([UTF8MB4_0900_AI_CI])
                + struct.pack("<H", 0)
                + struct.pack("<H", SERVER_CAPABILITIES >> 16)
                + bytes([21])
                + b"\x00" * 10
                + nonce[8:]
                + b"\x00"
                + b"caching_sha2_password\x00"
            )
            response = await receive()
            user, _, rest = response[32:].partition(b"\x00")
            scramble = rest[1 : 1 + rest[0]]  # length-encoded (< 251 bytes)
            plugin = rest[1 + rest[0] :].split(b"\x00")[0]
            assert plugin == b"caching_sha2_password", plugin
            if user.decode() != self.user:
                await send(access_denied(user.decode()))
                return
            if self.cached:
                if scramble != asyncmy.auth.scramble_caching_sha2(self.password.encode(), nonce):
                    await send(access_denied(self.user))
                    return
                await send(FAST_AUTH_OK)
                await send(OK_PACKET)
                self.logins.append("fast")
                return
            await send(PERFORM_FULL_AUTHENTICATION)
            assert await receive() == REQUEST_PUBLIC_KEY
            pem = self.key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            await send(b"\x01" + pem)
            sealed = await receive()
            oaep = padding.OAEP(
                mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None
            )
            xored = self.key.decrypt(sealed, oaep)
            sent = bytes(byte ^ nonce[i % len(nonce)] for i, byte in enumerate(xored))
            if sent != self.password.encode() + b"\x00":
                await send(access_denied(self.user))
                return
            await send(OK_PACKET)
            self.logins.append("full")
        except asyncio.IncompleteReadError:
            pass  # the client gave up (e.g. it could not encrypt the password)
        finally:
            writer.close()


@pytest.fixture
async def sha2_server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Sha2Server, int]]:
    fake = Sha2Server("payments", "s3cret-Passw0rd", cached=request.param == "fast")
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield fake, port


async def log_in(port: int, password: str) -> None:
    connection = await asyncmy.connect(
        host="127.0.0.1", port=port, user="payments", password=password, connect_timeout=5
    )
    connection.close()


@pytest.mark.parametrize("sha2_server", ["full", "fast"], indirect=True)
async def test_asyncmy_logs_in_with_caching_sha2_password(sha2_server: tuple[Sha2Server, int]) -> None:
    server, port = sha2_server
    await log_in(port, server.password)
    with pytest.raises(OperationalError) as refused:
        await log_in(port, server.password + "x")
    assert refused.value.args[0] == 1045, refused.value.args
    assert server.logins == ["fast" if server.cached else "full"]


@pytest.mark.parametrize("sha2_server", ["full"], indirect=True)
async def test_full_authentication_needs_cryptography(
    sha2_server: tuple[Sha2Server, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an image without `cryptography` does on MySQL 8's first login: asyncmy refuses."""
    server, port = sha2_server
    monkeypatch.setattr(asyncmy.auth, "_have_cryptography", False)
    with pytest.raises(RuntimeError, match="'cryptography' package is required"):
        await log_in(port, server.password)
    assert server.logins == []


def test_cryptography_is_a_dependency_asyncmy_finds() -> None:
    import tomllib

    dependencies = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(
        requirement.split(">")[0].split("=")[0].strip() == "cryptography" for requirement in dependencies
    )
    assert asyncmy.auth._have_cryptography  # asyncmy's own `from cryptography.hazmat... import` worked


# --- a password in DATABASE_URL, through our code, on the real MariaDB -----------------------------

# Characters that mean something in a URL (@ : / # ? &) and to Alembic's config parser (%).
PASSWORD = f"p@ss:w/rd%#?&-{secrets.token_hex(4)}"


async def _admin(*statements: tuple[str, dict[str, str]]) -> None:
    engine = create_async_engine(f"{MARIADB_ADMIN_URL}/mysql")
    try:
        async with engine.begin() as conn:
            for sql, params in statements:
                await conn.execute(text(sql), params)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def password_user() -> Iterator[tuple[str, str]]:
    """A database and a user that may log in to it only with PASSWORD: (user, DATABASE_URL)."""
    _require_port("MariaDB", 3306)
    host = make_url(MARIADB_ADMIN_URL).host or "127.0.0.1"
    suffix = f"{os.getpid()}_{secrets.token_hex(3)}"
    user, database = f"pw_{suffix}", f"payments_pw_{suffix}"
    asyncio.run(
        _admin(
            (f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4", {}),
            (
                f"CREATE USER :user@'{host}' IDENTIFIED VIA mysql_native_password USING PASSWORD(:pw)",
                {"user": user, "pw": PASSWORD},
            ),
            (f"GRANT ALL PRIVILEGES ON `{database}`.* TO :user@'{host}'", {"user": user}),
        )
    )
    port = make_url(MARIADB_ADMIN_URL).port or 3306
    try:
        yield user, f"mysql+asyncmy://{user}:{quote(PASSWORD, safe='')}@{host}:{port}/{database}"
    finally:
        asyncio.run(
            _admin(
                (f"DROP USER IF EXISTS :user@'{host}'", {"user": user}),
                (f"DROP DATABASE IF EXISTS `{database}`", {}),
            )
        )


async def test_migrations_and_the_app_log_in_with_the_password(password_user: tuple[str, str]) -> None:
    user, url = password_user
    assert make_url(url).password == PASSWORD  # the URL carries it, encoded
    await asyncio.to_thread(upgrade_database, url)

    engine = create_engine(load_settings({"DATABASE_URL": url}))
    try:
        async with engine.connect() as conn:
            who = (await conn.execute(text("SELECT CURRENT_USER()"))).scalar_one()
            migrated = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
    finally:
        await engine.dispose()
    assert who.split("@")[0] == user and migrated, (who, migrated)

    reader = MySqlStatusReader(url, pool_size=1, recycle_seconds=60)
    try:
        assert await reader.fetch("TXN_none") is None  # the poll's own asyncmy pool logged in too
    finally:
        await reader.close()


def test_payments_migrate_logs_in_with_the_password(password_user: tuple[str, str]) -> None:
    """The command compose's `migrate` service runs, with DATABASE_URL from the environment."""
    _, url = password_user
    done = subprocess.run(
        [str(Path(sys.executable).parent / "payments"), "migrate"],
        env={**os.environ, "DATABASE_URL": url, "ENVIRONMENT": "development", "LOG_FORMAT": "text"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "database is up to date" in done.stdout, done.stdout
    assert PASSWORD not in done.stdout + done.stderr and quote(PASSWORD, safe="") not in done.stdout


async def test_a_wrong_password_is_refused(password_user: tuple[str, str]) -> None:
    """The password is really checked: the same URL with another password cannot log in."""
    _, url = password_user
    engine = create_async_engine(make_url(url).set(password=PASSWORD + "x"))
    try:
        with pytest.raises(DBAPIOperationalError, match="1045"):
            async with engine.connect():
                pass
    finally:
        await engine.dispose()
