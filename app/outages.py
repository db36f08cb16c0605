"""What counts as "the database is unreachable right now", as opposed to a bug.

A request that meets it is answered 503 SERVICE_UNAVAILABLE (retry), a browser callback is
answered with the frontend's page and replayed by a worker once the database is back, and a job
retries later. Any other database error stays what it is: a 500 and an ERROR log line.
"""

from __future__ import annotations

import asyncmy.errors
from sqlalchemy import exc as sa_exc

# MySQL/MariaDB client and server errors that mean "no connection", not "wrong query": too many
# connections, server shutting down, connection killed, can't connect (socket, TCP), server gone
# away, lost connection during a query, connection to the server lost during handshake.
_CONNECTION_ERRORS = frozenset({1040, 1053, 1927, 2002, 2003, 2006, 2012, 2013, 2055})


def database_unavailable(error: BaseException) -> bool:
    """Whether `error` (or what it was raised from) says the database cannot be reached."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, (sa_exc.TimeoutError, sa_exc.InterfaceError)):
            return True  # no pooled connection in time; a connection that is closed
        if isinstance(current, asyncmy.errors.InterfaceError):
            return True  # the raw status reader's closed connection
        if isinstance(current, (sa_exc.OperationalError, asyncmy.errors.OperationalError)):
            args = getattr(getattr(current, "orig", None) or current, "args", ())
            if args and args[0] in _CONNECTION_ERRORS:
                return True
        current = current.__cause__ or current.__context__
    return False
