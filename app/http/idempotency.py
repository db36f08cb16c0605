"""Idempotency-Key over HTTP (Stripe's rules): the first answer is stored and replayed, with
`Idempotent-Replayed: true`; the same key with another body is PAY_009, one still running PAY_010."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

import msgspec
from litestar import Request, Response
from litestar.datastructures import State

from app.core.auth import Caller
from app.core.idempotency import request_fingerprint
from app.core.ports import IdempotencyStore, ServiceUnavailable, StoredResponse

log = logging.getLogger("app.api")

JSON = "application/json"
ReplyT = TypeVar("ReplyT")


async def run_idempotently(
    produce: Callable[[], Awaitable[ReplyT]],
    *,
    store: IdempotencyStore,
    caller: Caller,
    key: str | None,
    request: Request[object, object, State],
    status_code: int,
) -> Response[ReplyT]:
    """Run `produce()` at most once per (user, endpoint, Idempotency-Key); replay its response."""
    replayed = False
    if key is None:
        body = msgspec.json.encode(await produce())
    else:
        scope = f"{caller.user_id}:{request.method}:{request.url.path}"
        # The body was read (and decoded) once already: Litestar keeps the bytes for this.
        fingerprint = request_fingerprint(request.method, request.url.path, await request.body())
        stored = await store.begin(scope, key, fingerprint)
        if stored is not None:
            body, status_code, replayed = stored.body, stored.status_code, True
        else:
            body = await _produce_once(produce, store, scope, key)
            try:
                await store.finish(
                    scope, key, fingerprint, StoredResponse(status_code=status_code, body=body)
                )
            except ServiceUnavailable:
                # The work is done and committed: answer it. Only a replay of this key is lost.
                log.warning("Idempotency-Key response not stored; a retry with this key will not replay it")
    response = Response(
        body,
        status_code=status_code,
        media_type=JSON,
        headers={"Idempotent-Replayed": "true"} if replayed else None,
    )
    # The body is a ReplyT already encoded (now, or the first time for a replay): the type
    # parameter is what the handler's OpenAPI entry describes, not what Litestar encodes.
    return cast("Response[ReplyT]", response)


async def _produce_once(
    produce: Callable[[], Awaitable[ReplyT]], store: IdempotencyStore, scope: str, key: str
) -> bytes:
    try:
        return msgspec.json.encode(await produce())
    except BaseException:
        # Nothing was created: the key may be retried (Stripe does not save failed validations).
        # If the store is unreachable the claim expires on its own; the original error is answered.
        with contextlib.suppress(ServiceUnavailable):
            await store.abandon(scope, key)
        raise
