"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response, get
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.http.errors import ApiError, envelope, request_language
from app.messages import ERROR_MESSAGES


@get("/health/live", tags=["health"], media_type=MediaType.JSON)
async def health_live() -> dict[str, str]:
    return {"status": "ok"}


@get("/health/ready", tags=["health"], media_type=MediaType.JSON)
async def health_ready(
    request: Request[Any, Any, Any], engine: AsyncEngine, redis_client: Redis | None
) -> Response[dict[str, str]]:
    checks: dict[str, str] = {}
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    if redis_client is not None:
        try:
            await redis_client.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
    if all(value == "ok" for value in checks.values()):
        return Response({"status": "ok", **checks})
    code = ApiError.NOT_READY
    message = ERROR_MESSAGES[code](request_language(request))
    return envelope(code.status, code, message, checks)  # type: ignore[return-value]
