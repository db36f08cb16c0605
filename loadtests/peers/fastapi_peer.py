"""A benchmark peer: the status and issue endpoints written the way a team would write them
without this project's care — FastAPI, pydantic v2 models, SQLAlchemy ORM async sessions (asyncmy).

It runs on the SAME MariaDB schema as the service (ORM models mapped onto the existing
`transactions` and `transaction_history` tables; it creates nothing) and the same bearer tokens
(HS256 JWT signed with JWT_SECRET, `sub` = user id):

    DATABASE_URL=mysql+asyncmy://root@127.0.0.1:3306/payments JWT_SECRET=… REDIS_URL=redis://…/6 \\
        python -m uvicorn loadtests.peers.fastapi_peer:app --port 8100

    GET  /health                               {"status": "ok"}
    GET  /api/payments/{id}/status             401 without a valid token, 404 for another user's transaction;
                                               answers transactionId, status, statusCode, amount, completedAt,
                                               isSettled, needsPolling, retryAfterMs, refundedAmount
    POST /api/payments/issue                   201; the price from app/catalog.json (400 unknown product,
                                               400 amount differs); one DB transaction inserts the
                                               transaction (CREATED, 10) and its history row ("issued");
                                               Idempotency-Key: SET NX in Redis per user and key, the
                                               first answer stored there and replayed (409 while in flight)

Deliberately ordinary: the JWT is decoded on every request, the session and the user come from
FastAPI dependencies, the whole ORM row is loaded, and responses go through pydantic models.
Not part of the service: loadtests/README.md ("Running the benchmark") says why it exists.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import jwt
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from redis.asyncio import Redis
from sqlalchemy import JSON, BigInteger, DateTime, Integer, SmallInteger, String, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

CATALOG_PATH = Path(__file__).resolve().parents[2] / "app" / "catalog.json"
STATUS_NAMES = {
    10: "CREATED",
    30: "PAYMENT_PENDING",
    40: "PAYMENT_SUCCESS",
    41: "PAYMENT_FAILED",
    45: "PROVISION_PENDING",
    50: "PROVISION_SUCCESS",
    51: "PROVISION_FAILED",
    90: "REFUND_REQUESTED",
    95: "REFUNDED",
}
IDEMPOTENCY_TTL_SECONDS = 24 * 3600


# --- ORM models on the existing tables ------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class TransactionRow(Base):
    __tablename__ = "transactions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(String(64))
    product_type: Mapped[str] = mapped_column(String(20))
    product_id: Mapped[str] = mapped_column(String(50))
    order_name: Mapped[str] = mapped_column(String(100))
    amount: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(20))
    status: Mapped[int] = mapped_column(SmallInteger)
    provider: Mapped[str] = mapped_column(String(20))
    payment_key: Mapped[str | None] = mapped_column(String(200))
    pg_method: Mapped[str | None] = mapped_column(String(20))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)  # naive UTC, as the service stores it
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)
    failure_code: Mapped[str | None] = mapped_column(String(20))
    failure_message: Mapped[str | None] = mapped_column(String(510))
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    refund_reserved_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    reconcile_attempts: Mapped[int] = mapped_column(Integer, default=0)


class HistoryRow(Base):
    __tablename__ = "transaction_history"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(SmallInteger)
    message: Mapped[str] = mapped_column(String(255))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)


# --- pydantic models ----------------------------------------------------------------------------------


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class IssueIn(CamelModel):
    product_type: str = Field(min_length=1, max_length=20)
    product_id: str = Field(min_length=1, max_length=50)
    amount: int = Field(ge=1, le=100_000_000)
    order_name: str | None = Field(default=None, min_length=1, max_length=100)
    method: str = "CARD"
    metadata: dict[str, Any] = Field(default_factory=dict)


class IssueOut(CamelModel):
    transaction_id: str
    status: str
    status_code: int
    amount: int
    order_name: str
    product_type: str
    product_id: str
    method: str
    expires_at: datetime


class StatusOut(CamelModel):
    transaction_id: str
    status: str
    status_code: int
    amount: int
    completed_at: datetime | None
    is_settled: bool
    needs_polling: bool
    retry_after_ms: int | None
    refunded_amount: int


# --- wiring -------------------------------------------------------------------------------------------

engine = create_async_engine(
    os.environ.get("DATABASE_URL", "mysql+asyncmy://root@127.0.0.1:3306/payments"),
    pool_size=int(os.environ.get("DATABASE_POOL_SIZE", "10")),
    max_overflow=int(os.environ.get("DATABASE_MAX_OVERFLOW", "10")),
    pool_pre_ping=True,
)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)
redis = Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), decode_responses=True)
JWT_SECRET = os.environ.get("JWT_SECRET", "change-me")
CATALOG = {(p["productType"], p["productId"]): p for p in json.loads(CATALOG_PATH.read_text())["products"]}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
    await engine.dispose()
    await redis.aclose()


app = FastAPI(title="FastAPI peer (benchmark)", lifespan=lifespan)


@app.exception_handler(HTTPException)
async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session


def current_user(authorization: Annotated[str | None, Header()] = None) -> str:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(401, "missing bearer token")
    try:
        claims = jwt.decode(
            authorization[7:].strip(), JWT_SECRET, algorithms=["HS256"], options={"require": ["exp", "sub"]}
        )
    except jwt.PyJWTError as exc:
        raise HTTPException(401, "invalid token") from exc
    user_id = claims.get("sub")
    if not isinstance(user_id, str) or not user_id:
        raise HTTPException(401, "invalid token")
    return user_id


Session = Annotated[AsyncSession, Depends(get_session)]
User = Annotated[str, Depends(current_user)]


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _retry_after_ms(row: TransactionRow) -> int | None:
    if row.status >= 40:
        return None
    waited = (_utcnow() - row.updated_at).total_seconds()
    return 1000 if waited < 1 else 2000 if waited < 3 else 3000 if waited < 6 else 5000


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/api/payments/{transaction_id}/status", response_model=StatusOut)
async def payment_status(transaction_id: str, user_id: User, session: Session) -> StatusOut:
    row = (
        await session.execute(select(TransactionRow).where(TransactionRow.transaction_id == transaction_id))
    ).scalar_one_or_none()
    if row is None or row.user_id != user_id:
        raise HTTPException(404, "transaction not found")
    return StatusOut(
        transaction_id=row.transaction_id,
        status=STATUS_NAMES.get(row.status, str(row.status)),
        status_code=row.status,
        amount=row.amount,
        completed_at=row.completed_at.replace(tzinfo=UTC) if row.completed_at else None,
        is_settled=row.status >= 40,
        needs_polling=row.status < 40,
        retry_after_ms=_retry_after_ms(row),
        refunded_amount=row.refunded_amount,
    )


@app.post("/api/payments/issue", status_code=201, response_model=IssueOut)
async def issue(
    body: IssueIn,
    user_id: User,
    session: Session,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Any:
    redis_key = f"peer:idem:{user_id}:{idempotency_key}" if idempotency_key else None
    if redis_key is not None and not await redis.set(redis_key, "", nx=True, ex=IDEMPOTENCY_TTL_SECONDS):
        stored = await redis.get(redis_key)
        if not stored:
            raise HTTPException(409, "a request with this Idempotency-Key is in progress")
        return JSONResponse(json.loads(stored), status_code=201)
    try:
        product = CATALOG.get((body.product_type, body.product_id))
        if product is None:
            raise HTTPException(400, "unknown product")
        if body.amount != product["amount"]:
            raise HTTPException(400, f"amount differs from the price {product['amount']}")
        now = _utcnow()
        row = TransactionRow(
            transaction_id=f"TXN_{now:%Y%m%d}_{secrets.token_hex(11)}",
            user_id=user_id,
            product_type=body.product_type,
            product_id=body.product_id,
            order_name=body.order_name or product["name"],
            amount=product["amount"],
            method=body.method,
            status=10,
            provider="TOSS",
            metadata_=body.metadata,
            created_at=now,
            updated_at=now,
            expires_at=now + timedelta(minutes=30),
            refunded_amount=0,
            refund_reserved_amount=0,
            reconcile_attempts=0,
        )
        async with session.begin():
            session.add(row)
            await session.flush()  # the parent row before its history (foreign key)
            session.add(
                HistoryRow(transaction_id=row.transaction_id, status=10, message="issued", created_at=now)
            )
        answer = IssueOut(
            transaction_id=row.transaction_id,
            status="CREATED",
            status_code=10,
            amount=row.amount,
            order_name=row.order_name,
            product_type=row.product_type,
            product_id=row.product_id,
            method=row.method,
            expires_at=row.expires_at.replace(tzinfo=UTC),
        )
    except BaseException:
        if redis_key is not None:
            await redis.delete(redis_key)
        raise
    if redis_key is not None:
        await redis.set(redis_key, answer.model_dump_json(by_alias=True), ex=IDEMPOTENCY_TTL_SECONDS)
    return answer
