"""Idempotency keys, request fingerprints, bearer tokens, list cursors and settings parsing."""

from __future__ import annotations

import re
import time

import jwt
import pytest

from app.core.auth import Caller, TokenAuthority
from app.core.domain import IdempotencyKeyInProgress, IdempotencyKeyReused, Unauthenticated
from app.core.idempotency import InMemoryIdempotencyStore, request_fingerprint
from app.core.ports import StoredResponse
from app.core.sql.transactions import decode_cursor, encode_cursor
from app.http.errors import http_status_of
from app.settings import ENVIRONMENT_VARIABLES, REPO_ROOT, Settings, SettingsError, load_settings

SECRET = "unit-test-secret-" + "0123456789abcdef" * 4  # long enough for HS256 and HS512
PATH = "/api/payments/issue"
CREATED = StoredResponse(status_code=201, body=b'{"transactionId":"TXN_1"}')

# --- the in-memory idempotency store (Stripe semantics) -------------------------------------------


async def test_first_begin_claims_the_key() -> None:
    store = InMemoryIdempotencyStore()
    assert await store.begin("u1:POST:/issue", "k1", "fp") is None


async def test_finished_key_replays_the_first_response() -> None:
    store = InMemoryIdempotencyStore()
    await store.begin("u1", "k1", "fp")
    await store.finish("u1", "k1", "fp", CREATED)
    assert await store.begin("u1", "k1", "fp") == CREATED
    assert await store.begin("u1", "k1", "fp") == CREATED  # as often as asked


async def test_finished_key_with_another_request_is_refused() -> None:
    store = InMemoryIdempotencyStore()
    await store.begin("u1", "k1", "fp")
    await store.finish("u1", "k1", "fp", CREATED)
    with pytest.raises(IdempotencyKeyReused) as caught:
        await store.begin("u1", "k1", "other-fp")
    assert (caught.value.code, http_status_of(caught.value)) == ("PAY_009", 422)
    assert await store.begin("u1", "k1", "fp") == CREATED  # the refusal did not overwrite anything


async def test_key_in_progress() -> None:
    store = InMemoryIdempotencyStore()
    await store.begin("u1", "k1", "fp")
    with pytest.raises(IdempotencyKeyInProgress) as caught:
        await store.begin("u1", "k1", "fp")
    assert (caught.value.code, http_status_of(caught.value)) == ("PAY_010", 409)
    with pytest.raises(IdempotencyKeyReused):  # a different request is PAY_009 even while running
        await store.begin("u1", "k1", "other-fp")


async def test_abandon_frees_the_key() -> None:
    store = InMemoryIdempotencyStore()
    await store.begin("u1", "k1", "fp")
    await store.abandon("u1", "k1")
    assert await store.begin("u1", "k1", "other-fp") is None
    await store.abandon("u1", "never-claimed")  # harmless


async def test_scopes_isolate_users_and_endpoints() -> None:
    store = InMemoryIdempotencyStore()
    await store.begin("alice:POST:/issue", "same-key", "fp-a")
    await store.finish("alice:POST:/issue", "same-key", "fp-a", CREATED)
    assert await store.begin("bob:POST:/issue", "same-key", "fp-b") is None
    assert await store.begin("alice:POST:/refund", "same-key", "fp-c") is None
    assert await store.begin("alice:POST:/issue", "same-key", "fp-a") == CREATED


async def test_a_crashed_claim_expires() -> None:
    store = InMemoryIdempotencyStore(lock_seconds=0)
    await store.begin("u1", "k1", "fp")
    assert await store.begin("u1", "k1", "fp") is None  # the lock ran out: claim again


async def test_replays_expire_after_the_ttl() -> None:
    store = InMemoryIdempotencyStore(ttl_seconds=0)
    await store.begin("u1", "k1", "fp")
    await store.finish("u1", "k1", "fp", CREATED)
    assert await store.begin("u1", "k1", "other-fp") is None


# --- request fingerprints -------------------------------------------------------------------------


def test_fingerprint_ignores_json_key_order_and_whitespace() -> None:
    a = request_fingerprint("POST", PATH, b'{"productType":"STUDY","productId":"study_123","amount":50000}')
    b = request_fingerprint(
        "post", PATH, b'{ "amount": 50000, "productId": "study_123", "productType": "STUDY" }'
    )
    assert a == b


def test_fingerprint_ignores_key_order_in_nested_objects() -> None:
    a = request_fingerprint("POST", PATH, b'{"metadata":{"a":1,"b":[1,2]},"amount":1}')
    b = request_fingerprint("POST", PATH, b'{"amount":1,"metadata":{"b":[1,2],"a":1}}')
    assert a == b


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", PATH, b'{"productType":"STUDY","productId":"study_123","amount":50001}'),
        ("POST", PATH, b'{"productType":"STUDY","productId":"study_124","amount":50000}'),
        ("POST", PATH, b'{"productType":"STUDY","productId":"study_123","amount":"50000"}'),
        ("POST", PATH, b'{"productType":"STUDY","productId":"study_123"}'),
        (
            "POST",
            "/api/payments/TXN_1/refund",
            b'{"productType":"STUDY","productId":"study_123","amount":50000}',
        ),
        ("PUT", PATH, b'{"productType":"STUDY","productId":"study_123","amount":50000}'),
        ("POST", PATH, b""),
    ],
)
def test_fingerprint_sees_every_other_difference(method: str, path: str, body: bytes) -> None:
    reference = request_fingerprint(
        "POST", PATH, b'{"productType":"STUDY","productId":"study_123","amount":50000}'
    )
    assert request_fingerprint(method, path, body) != reference


def test_fingerprint_of_a_body_that_is_not_json() -> None:
    assert request_fingerprint("POST", PATH, b"{not json") == request_fingerprint("POST", PATH, b"{not json")
    assert request_fingerprint("POST", PATH, b"{not json") != request_fingerprint("POST", PATH, b"{not json!")


# --- bearer tokens --------------------------------------------------------------------------------


def _bearer(token: str) -> str:
    return f"Bearer {token}"


def test_mint_and_verify_round_trip() -> None:
    tokens = TokenAuthority(SECRET)
    assert tokens.verify(_bearer(tokens.mint("user_42"))) == Caller(user_id="user_42", is_admin=False)


def test_admin_role() -> None:
    tokens = TokenAuthority(SECRET)
    assert tokens.verify(_bearer(tokens.mint("ops", admin=True))) == Caller(user_id="ops", is_admin=True)


def test_scheme_is_case_insensitive_and_surrounding_space_is_tolerated() -> None:
    tokens = TokenAuthority(SECRET)
    assert tokens.verify("bearer  " + tokens.mint("u1") + " ").user_id == "u1"


def test_expired_token() -> None:
    tokens = TokenAuthority(SECRET)
    with pytest.raises(Unauthenticated) as caught:
        tokens.verify(_bearer(tokens.mint("u1", ttl_seconds=-1)))
    assert (caught.value.code, http_status_of(caught.value)) == ("AUTH_001", 401)
    assert "expired" in caught.value.message


def _claims_token(claims: dict[str, object], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("Bearer", id="no-token"),
        pytest.param("Bearer    ", id="blank-token"),
        pytest.param("Basic dXNlcjpwYXNz", id="wrong-scheme"),
        pytest.param("Token " + TokenAuthority(SECRET).mint("u1"), id="wrong-scheme-valid-token"),
        pytest.param(TokenAuthority(SECRET).mint("u1"), id="no-scheme"),
        pytest.param("Bearer not.a.jwt", id="garbage"),
        pytest.param(
            "Bearer " + TokenAuthority("another-secret-" + "fedcba9876543210" * 4).mint("u1"), id="forged"
        ),
        pytest.param("Bearer " + _claims_token({"sub": "u1"}), id="no-exp"),
        pytest.param("Bearer " + _claims_token({"exp": int(time.time()) + 600}), id="no-sub"),
        pytest.param(
            "Bearer " + _claims_token({"sub": 42, "exp": int(time.time()) + 600}), id="sub-not-a-string"
        ),
        pytest.param("Bearer " + _claims_token({"sub": "", "exp": int(time.time()) + 600}), id="empty-sub"),
        pytest.param(
            "Bearer " + _claims_token({"sub": "u" * 65, "exp": int(time.time()) + 600}), id="sub-too-long"
        ),
        pytest.param(
            "Bearer " + _claims_token({"sub": "u1", "exp": int(time.time()) + 600}, algorithm="HS512"),
            id="other-algorithm",
        ),
        pytest.param(
            "Bearer " + jwt.encode({"sub": "u1", "exp": int(time.time()) + 600}, key=None, algorithm="none"),  # type: ignore[arg-type]
            id="alg-none",
        ),
    ],
)
def test_invalid_credentials_are_unauthenticated(header: str | None) -> None:
    with pytest.raises(Unauthenticated) as caught:
        TokenAuthority(SECRET).verify(header)
    assert (caught.value.code, http_status_of(caught.value)) == ("AUTH_001", 401)
    assert caught.value.message


@pytest.mark.parametrize("roles", [["user"], "admin", None, [], {"admin": True}])
def test_only_a_roles_list_with_admin_makes_an_admin(roles: object) -> None:
    token = _claims_token({"sub": "u1", "exp": int(time.time()) + 600, "roles": roles})
    assert TokenAuthority(SECRET).verify(_bearer(token)).is_admin is False


def test_token_crafted_with_pyjwt_and_the_right_secret_is_accepted() -> None:
    token = _claims_token({"sub": "u7", "exp": int(time.time()) + 600, "roles": ["admin", "x"]})
    assert TokenAuthority(SECRET).verify(_bearer(token)) == Caller("u7", True)


# --- list cursors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("row_id", [1, 2, 9, 10, 255, 65_536, 2**53])
def test_cursor_round_trip(row_id: int) -> None:
    cursor = encode_cursor(row_id)
    assert decode_cursor(cursor) == row_id
    assert "=" not in cursor and str(row_id) not in cursor  # opaque, URL-safe


@pytest.mark.parametrize(
    "garbage",
    ["", "!!!", "abc", "djI6NQ", "djE6YWJj", "////", "\u00e9\u00e9", "djE6"],
    ids=["empty", "bangs", "abc", "v2-version", "v1-not-a-number", "slashes", "non-ascii", "v1-empty"],
)
def test_garbage_cursor_is_none(garbage: str) -> None:
    assert decode_cursor(garbage) is None


# --- settings -------------------------------------------------------------------------------------


def test_settings_parse_ints_floats_and_bools() -> None:
    settings = load_settings(
        {
            "DATABASE_POOL_SIZE": "25",
            "TOSS_READ_TIMEOUT_SECONDS": "2.5",
            "TOSS_CONNECT_TIMEOUT_SECONDS": "1",
            "DATABASE_ECHO": "yes",
            "TRANSACTION_EXPIRE_MINUTES": "45",
            "REDIS_URL": "redis://127.0.0.1:6379/3",
            "ENVIRONMENT": "test",
        }
    )
    assert settings.database.pool_size == 25 and isinstance(settings.database.pool_size, int)
    assert settings.toss.read_timeout_seconds == 2.5
    assert settings.toss.connect_timeout_seconds == 1.0 and isinstance(
        settings.toss.connect_timeout_seconds, float
    )
    assert settings.database.echo is True
    assert settings.payments.transaction_expire_minutes == 45
    assert settings.redis_url == "redis://127.0.0.1:6379/3"
    assert settings.environment == "test"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("on", True),
        (" yes ", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
    ],
)
def test_settings_bools(raw: str, expected: bool) -> None:
    assert load_settings({"DATABASE_ECHO": raw}).database.echo is expected


def test_settings_defaults_and_overrides() -> None:
    defaults = load_settings({})
    assert defaults == Settings()
    assert defaults.payments.transaction_expire_minutes == 30 and defaults.redis_url is None
    assert load_settings({"DATABASE_POOL_SIZE": ""}).database.pool_size == 10  # empty = unset
    overridden = load_settings(
        {"DATABASE_URL": "sqlite+aiosqlite:///x.db"}, database_url="sqlite+aiosqlite:///y.db"
    )
    assert overridden.database.url == "sqlite+aiosqlite:///y.db"


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("DATABASE_POOL_SIZE", "ten"),
        ("DATABASE_POOL_SIZE", "2.5"),
        ("TRANSACTION_EXPIRE_MINUTES", "30m"),
        ("TOSS_READ_TIMEOUT_SECONDS", "fast"),
        ("TOSS_READ_TIMEOUT_SECONDS", "1,5"),
        ("DATABASE_ECHO", "maybe"),
        ("DATABASE_ECHO", "2"),
    ],
)
def test_settings_reject_malformed_values_naming_the_variable(variable: str, raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: raw})
    assert variable in str(caught.value)


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"ENVIRONMENT": "staging"}, "ENVIRONMENT"),
        ({"TRANSACTION_EXPIRE_MINUTES": "0"}, "TRANSACTION_EXPIRE_MINUTES"),
        ({"TRANSACTION_EXPIRE_MINUTES": "-5"}, "TRANSACTION_EXPIRE_MINUTES"),
        ({"SWEEP_INTERVAL_SECONDS": "61"}, "SWEEP_INTERVAL_SECONDS"),
        ({"METRICS_PORT": "65536"}, "METRICS_PORT"),
        ({"TOSS_MAX_ATTEMPTS": "0"}, "TOSS_MAX_ATTEMPTS"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
    ],
)
def test_settings_reject_out_of_range_values(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ)
    assert variable in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TOSS_READ_TIMEOUT_SECONDS", "nan"),
        ("TOSS_CONNECT_TIMEOUT_SECONDS", "0"),
        ("SWEEP_STALE_AFTER_SECONDS", "-1"),
        ("REQUEST_HEAD_TIMEOUT_SECONDS", "inf"),
    ],
)
def test_timeouts_must_be_positive_finite_seconds(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings({variable: value})


def test_settings_overrides_name_variables_in_lower_case_and_pass_the_same_checks() -> None:
    settings = load_settings({"TOSS_MAX_ATTEMPTS": "2"}, toss_max_attempts=1, provisioning_max_tries="4")
    assert (settings.toss.max_attempts, settings.provisioning.max_tries) == (1, 4)
    with pytest.raises(SettingsError, match="PROVISIONING_MAX_TRIES"):
        load_settings({}, provisioning_max_tries=0)
    with pytest.raises(TypeError, match="max_tries"):
        load_settings({}, max_tries=3)  # a field's name inside its group is not a variable


def test_every_variable_in_the_readme_configuration_table_is_a_setting() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = {
        name
        for row in table.splitlines()
        if row.startswith("| `")
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])
    }
    assert len(documented) > 20, documented
    assert documented <= ENVIRONMENT_VARIABLES, sorted(documented - ENVIRONMENT_VARIABLES)
