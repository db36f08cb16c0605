"""What the per-source webhook limit counts (app/client_address.py) and TRUSTED_PROXIES' validation."""

from __future__ import annotations

import pytest
from litestar.testing import RequestFactory

from app.client_address import request_source, server_proxy_options, trusted_proxy_middleware
from app.settings import SettingsError, load_settings


def _source(peer: str) -> str:
    request = RequestFactory().get("/webhooks/payments/toss")
    request.scope["client"] = (peer, 40000)
    return request_source(request)


def test_an_ipv4_peer_is_its_own_source() -> None:
    assert _source("203.0.113.7") == "203.0.113.7"
    assert _source("203.0.113.8") != _source("203.0.113.7")


def test_an_ipv6_peer_counts_with_its_whole_64() -> None:
    # One host is given a /64: rotating the low bits must not make new sources.
    assert _source("2001:db8:1:2::1") == _source("2001:db8:1:2:ffff:ffff:ffff:fffe") == "2001:db8:1:2::/64"
    assert _source("2001:db8:1:3::1") != _source("2001:db8:1:2::1")


def test_an_ipv4_client_of_a_dual_stack_socket_is_its_ipv4_address() -> None:
    assert _source("::ffff:203.0.113.7") == "203.0.113.7"
    assert _source("::ffff:203.0.113.8") != _source("::ffff:203.0.113.7")


def test_a_peer_that_is_not_an_address_is_counted_as_it_is() -> None:
    assert _source("testclient") == "testclient"
    request = RequestFactory().get("/webhooks/payments/toss")
    request.scope["client"] = None
    assert request_source(request) == "unknown"


def test_x_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    assert server_proxy_options(None) == {"proxy_headers": False}
    assert server_proxy_options("") == {"proxy_headers": False}
    assert server_proxy_options("10.0.0.0/8,192.0.2.1") == {
        "proxy_headers": True,
        "forwarded_allow_ips": "10.0.0.0/8,192.0.2.1",
    }


async def _client_seen_by_app(trusted_proxies: str | None, peer: str, forwarded_for: str) -> object:
    """The `client` the app sees behind trusted_proxy_middleware, for a request from `peer`."""
    seen: dict[str, object] = {}

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        seen["client"] = scope["client"]

    wrapped = trusted_proxy_middleware(app, trusted_proxies)
    scope = {
        "type": "http",
        "client": (peer, 40000),
        "headers": [(b"x-forwarded-for", forwarded_for.encode())],
    }
    await wrapped(scope, None, None)
    return seen["client"]


async def test_granian_gets_the_same_proxy_rules_as_a_middleware() -> None:
    """Under granian (which reads no forwarded headers) the app is wrapped in uvicorn's middleware."""

    async def app(scope: object, receive: object, send: object) -> None:
        pass

    assert trusted_proxy_middleware(app, None) is app
    assert trusted_proxy_middleware(app, "") is app
    trusted = "10.0.0.0/8,192.0.2.1"
    assert await _client_seen_by_app(trusted, "10.1.2.3", "203.0.113.7") == ("203.0.113.7", 0)
    assert await _client_seen_by_app(trusted, "10.1.2.3", "198.51.100.1, 203.0.113.7") == ("203.0.113.7", 0)
    assert await _client_seen_by_app(trusted, "203.0.113.9", "198.51.100.1") == ("203.0.113.9", 40000)
    assert await _client_seen_by_app(None, "10.1.2.3", "198.51.100.1") == ("10.1.2.3", 40000)


@pytest.mark.parametrize("value", ["10.0.0.0/8", "192.0.2.1, 2001:db8::/32", " 127.0.0.1 "])
def test_trusted_proxies_accepts_addresses_and_networks(value: str) -> None:
    assert load_settings({"TRUSTED_PROXIES": value}).http.trusted_proxies == value


@pytest.mark.parametrize("value", ["proxy.internal", "10.0.0.1/8", "192.0.2.1,*", "300.1.1.1"])
def test_trusted_proxies_refuses_what_is_not_an_address_or_network(value: str) -> None:
    with pytest.raises(SettingsError, match="TRUSTED_PROXIES"):
        load_settings({"TRUSTED_PROXIES": value})


def test_webhook_job_slots_must_be_at_least_one() -> None:
    assert load_settings({}).provisioning.webhook_max_jobs == 5
    with pytest.raises(SettingsError, match="WEBHOOK_MAX_JOBS"):
        load_settings({"WEBHOOK_MAX_JOBS": "0"})
