"""Where a request comes from, for per-source limits on public endpoints (Toss's webhooks).

The source is the connection's peer. Only when TRUSTED_PROXIES is set does the HTTP server (uvicorn's
proxy-headers middleware, configured by `server_proxy_options`; under granian the same middleware,
wrapped around the app by `trusted_proxy_middleware`) replace a trusted peer with the
right-most X-Forwarded-For address that is not itself a trusted proxy: a client cannot choose its
own address by sending the header, nor by prepending entries to it.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from litestar import Request


def server_proxy_options(trusted_proxies: str | None) -> dict[str, Any]:
    """uvicorn options: believe X-Forwarded-For only from TRUSTED_PROXIES (never by default)."""
    if not trusted_proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": trusted_proxies}


def trusted_proxy_middleware(app: Any, trusted_proxies: str | None) -> Any:
    """For servers that read no forwarded headers (granian): `app` behind uvicorn's ProxyHeadersMiddleware,
    as `server_proxy_options` has uvicorn do, or `app` itself when TRUSTED_PROXIES is unset."""
    if not trusted_proxies:
        return app
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    return ProxyHeadersMiddleware(app, trusted_hosts=trusted_proxies)


def request_source(request: Request[Any, Any, Any]) -> str:
    """The address a limit counts: an IPv4 address, or an IPv6 /64 (what one host is given)."""
    host = request.client.host if request.client is not None else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"  # a unix socket, or a test client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # an IPv4 client of a dual-stack socket
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
