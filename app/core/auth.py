"""Bearer JWT (HS256): who is calling, and whether they are an admin."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from app import messages as texts
from app.core.domain import Unauthenticated

# Outside production, `payments dev` prints a token for this user and the demo pages act as this
# user, so the banner's curl commands read the payments made in the browser (and back).
DEVELOPMENT_USER_ID = "dev-user"


@dataclass(frozen=True, slots=True)
class Caller:
    user_id: str
    is_admin: bool


class TokenAuthority:
    """Mints and verifies the service's bearer tokens (`sub` = user id, `exp` required)."""

    CACHE_SIZE = 10_000

    def __init__(self, secret: str) -> None:
        self._secret = secret
        # Polling re-sends the same token every few seconds: remember verified ones until they expire.
        self._verified: dict[str, tuple[Caller, float]] = {}

    def mint(self, user_id: str, *, admin: bool = False, ttl_seconds: int = 3600) -> str:
        now = int(time.time())
        claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
        if admin:
            claims["roles"] = ["admin"]
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, authorization: str | None) -> Caller:
        """The caller behind an `Authorization: Bearer …` header; AUTH_001 otherwise."""
        if not authorization:
            raise Unauthenticated(texts.TOKEN_MISSING)
        cached = self._verified.get(authorization)
        if cached is not None:
            if cached[1] > time.time():
                return cached[0]
            del self._verified[authorization]
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(texts.TOKEN_NOT_BEARER)
        try:
            claims = jwt.decode(
                token.strip(), self._secret, algorithms=["HS256"], options={"require": ["exp", "sub"]}
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated(texts.TOKEN_EXPIRED) from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(texts.TOKEN_INVALID) from exc
        user_id = claims.get("sub")
        if not isinstance(user_id, str) or not 1 <= len(user_id) <= 64:
            raise Unauthenticated(texts.TOKEN_NO_USER)
        roles = claims.get("roles") or []
        caller = Caller(user_id=user_id, is_admin=isinstance(roles, list) and "admin" in roles)
        if len(self._verified) >= self.CACHE_SIZE:
            self._verified.clear()  # bounded; a miss only costs one signature check
        self._verified[authorization] = (caller, float(claims["exp"]))
        return caller
