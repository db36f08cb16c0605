"""Liveness and readiness probes."""

from __future__ import annotations

from litestar import MediaType, Response, get
from litestar.openapi.datastructures import ResponseSpec
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.schemas import ErrorBody
from app.http.errors import envelope


@get("/health/live", tags=["health"], media_type=MediaType.JSON)
async def health_live() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/health/ready",
    tags=["health"],
    media_type=MediaType.JSON,
    responses={
        503: ResponseSpec(
            data_container=ErrorBody, description="NOT_READY: the database or Redis is unreachable"
        )
    },
)
async def health_ready(engine: AsyncEngine, redis_client: Redis | None) -> Response[dict[str, str]]:
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
    return envelope(503, "NOT_READY", "A dependency is unreachable.", checks)  # type: ignore[return-value]
