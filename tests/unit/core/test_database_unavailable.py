"""Which database errors mean "unreachable, retry" (503, callback replayed) and which stay bugs (500)."""

from __future__ import annotations

import asyncmy.errors
import pytest
from sqlalchemy import exc as sa_exc

from app.outages import database_unavailable


def _wrapped(orig: Exception, *, invalidated: bool = False) -> sa_exc.OperationalError:
    return sa_exc.OperationalError("SELECT 1", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "code",
    [2003, 2013, 2006, 1053, 1927, 1040],
    ids=["cannot-connect", "lost-mid-query", "gone-away", "shutting-down", "killed", "too-many"],
)
def test_connection_errors_are_unavailable(code: int) -> None:
    assert database_unavailable(_wrapped(asyncmy.errors.OperationalError(code, "…")))
    assert database_unavailable(asyncmy.errors.OperationalError(code, "…"))  # the raw status reader


def test_query_errors_are_not() -> None:
    assert not database_unavailable(_wrapped(asyncmy.errors.OperationalError(1054, "Unknown column")))
    assert not database_unavailable(_wrapped(asyncmy.errors.OperationalError(1213, "Deadlock found")))
    assert not database_unavailable(
        sa_exc.IntegrityError("INSERT", {}, asyncmy.errors.IntegrityError(1062, "Duplicate entry"))
    )
    assert not database_unavailable(sa_exc.OperationalError("SELECT", {}, Exception("database is locked")))
    assert not database_unavailable(ValueError("a bug"))


def test_invalidated_connections_closed_connections_and_pool_timeouts_are_unavailable() -> None:
    assert database_unavailable(_wrapped(Exception("reset"), invalidated=True))
    assert database_unavailable(sa_exc.InterfaceError("SELECT 1", {}, Exception("closed")))
    assert database_unavailable(sa_exc.TimeoutError("QueuePool limit reached"))


def test_an_error_raised_from_an_unreachable_database_is_unavailable() -> None:
    try:
        try:
            raise _wrapped(asyncmy.errors.OperationalError(2003, "Can't connect"))
        except sa_exc.OperationalError as cause:
            raise RuntimeError("while recording the confirm") from cause
    except RuntimeError as error:
        assert database_unavailable(error)
