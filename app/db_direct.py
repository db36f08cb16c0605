"""The write path's statements on a plain asyncmy pool: SQLAlchemy's SQL, without its per-call work.

Under load a checkout spends more CPU in SQLAlchemy's execution layer (building a statement,
its cache key, the execution context, the greenlet hop per call, the ping and the reset of a
pooled connection) than the database takes to run the statement: measured on this project's
write pattern, two INSERTs and a COMMIT cost ~500 µs of Python CPU through the engine and ~150 µs
on the driver (loadtests/README.md, "Where the write path's time went").

`DirectDatabase` runs the hot statements of the repositories itself. It has the engine's shape
(`begin()` for a transaction, `connect()` for autocommit reads, results with `rowcount`, `first()`,
`inserted_primary_key`), so a repository runs the same code on either; on SQLite the engine itself
plays this part (`hot_path_database`). What stays SQLAlchemy's, computed once per statement and
set of parameter names and then reused:

- the SQL, compiled for this server's dialect from the repository's Core statement, so the two
  paths cannot drift apart;
- the bind processors (UTC datetimes, JSON) and the result processors, SQLAlchemy's own;
- the errors: a driver error is raised as SQLAlchemy's IntegrityError / OperationalError /
  DBAPIError around the driver's, as the engine raises it, so callers and `app.outages` see one kind.

Only statements built once (module constants) go through here: plans are kept by statement
identity, so a statement built per call would be compiled per call and kept forever.

Connections: autocommit on, a transaction is an explicit BEGIN … COMMIT (ROLLBACK on any error),
and a read needs no reset. BEGIN doubles as the liveness check SQLAlchemy's pre-ping makes: a
connection the server dropped fails its BEGIN (or a read's first statement, which has no effect)
and is replaced, so a restarted database costs no request an error. CLIENT.FOUND_ROWS is set, as
SQLAlchemy sets it: `rowcount` counts the rows an UPDATE matched (the guarded transitions).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import asyncmy
import asyncmy.errors
from asyncmy.constants import CLIENT
from sqlalchemy import exc as sa_exc
from sqlalchemy import make_url
from sqlalchemy.dialects.mysql.asyncmy import MySQLDialect_asyncmy
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from app.settings import Settings

# "No connection" errors worth one more connection (server gone away, lost connection, closed)
_STALE_CONNECTION_ERRORS = frozenset({2006, 2013, 2055})
_ACQUIRE_ATTEMPTS = 3
_IDLE_PING_SECONDS = 5.0  # a read on a connection idle this long checks it first


class HotPathConnection(Protocol):
    async def execute(self, statement: Any, parameters: Mapping[str, Any] | None = None) -> Any: ...


class HotPathDatabase(Protocol):
    """What the repositories' hot statements run on: an AsyncEngine, or a DirectDatabase."""

    def begin(self) -> contextlib.AbstractAsyncContextManager[Any]: ...

    def connect(self) -> contextlib.AbstractAsyncContextManager[Any]: ...


class _Plan:
    """One statement compiled for one set of parameter names: SQL, binds in order, processors."""

    __slots__ = ("binds", "compiled", "keys", "result_processors", "sql")

    def __init__(self, statement: ClauseElement, names: Sequence[str], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(names))
        assert isinstance(compiled, SQLCompiler)
        self.compiled = compiled
        self.sql = compiled.string
        processors: Mapping[str, Any] = compiled._bind_processors  # no expanding IN: one callable each
        # Per positional bind: its name, its type's processor, and the value compiled into the
        # statement (a literal), used when the caller gives none.
        self.binds: list[tuple[str, Callable[[Any], Any] | None, Any]] = [
            (name, processors.get(name), bind.value)
            for name, bind in ((name, compiled.binds[name]) for name in compiled.positiontup or ())
        ]
        columns = compiled._result_columns
        self.keys = tuple(column[0] for column in columns)
        self.result_processors: tuple[Callable[[Any], Any] | None, ...] = tuple(
            column[3]._cached_result_processor(dialect, None) for column in columns
        )

    def arguments(self, parameters: Mapping[str, Any]) -> tuple[Any, ...]:
        arguments = []
        for name, processor, literal in self.binds:
            value = parameters.get(name, literal)
            arguments.append(value if processor is None else processor(value))
        return tuple(arguments)

    def row(self, raw: Sequence[Any], keys: tuple[str, ...]) -> DirectRow:
        if not self.result_processors:
            return DirectRow(tuple(raw), keys)
        return DirectRow(
            tuple(
                value if processor is None or value is None else processor(value)
                for value, processor in zip(raw, self.result_processors, strict=True)
            ),
            keys,
        )


class DirectRow(tuple[Any, ...]):
    """A result row: by position like a tuple, by column name through `_mapping` like SQLAlchemy's."""

    _keys: tuple[str, ...]

    def __new__(cls, values: tuple[Any, ...], keys: tuple[str, ...]) -> DirectRow:
        row = super().__new__(cls, values)
        row._keys = keys
        return row

    @property
    def _mapping(self) -> dict[str, Any]:
        return dict(zip(self._keys, self, strict=False))


class DirectResult:
    """What the repositories read of a result: rows, rowcount, the new row's id."""

    def __init__(self, rows: list[DirectRow], rowcount: int, lastrowid: int | None) -> None:
        self._rows = rows
        self.rowcount = rowcount
        self.inserted_primary_key = (lastrowid,) if lastrowid else None

    def first(self) -> DirectRow | None:
        return self._rows[0] if self._rows else None

    def one(self) -> DirectRow:
        if len(self._rows) != 1:
            raise (
                sa_exc.NoResultFound("expected one row") if not self._rows else sa_exc.MultipleResultsFound()
            )
        return self._rows[0]

    def scalar_one_or_none(self) -> Any:
        return self._rows[0][0] if self._rows else None


class DirectConnection:
    """One pooled driver connection, running planned statements."""

    def __init__(self, database: DirectDatabase, connection: Any) -> None:
        self._database = database
        self._connection = connection

    async def execute(self, statement: Any, parameters: Mapping[str, Any] | None = None) -> DirectResult:
        given = parameters or {}
        plan = self._database.plan(statement, given)
        arguments = plan.arguments(given)
        cursor = self._connection.cursor()
        try:
            await cursor.execute(plan.sql, arguments)
            if cursor.description is None:  # INSERT, UPDATE: no rows
                return DirectResult([], cursor.rowcount, cursor.lastrowid)
            raw = await cursor.fetchall()
            keys = plan.keys or tuple(column[0] for column in cursor.description)  # text()
            return DirectResult([plan.row(r, keys) for r in raw], cursor.rowcount, cursor.lastrowid)
        except asyncmy.errors.Error as error:
            raise _sqlalchemy_error(plan.sql, arguments, error) from error
        finally:
            await cursor.close()


class DirectDatabase:
    """The hot statements on a plain asyncmy pool of this process (MySQL and MariaDB only)."""

    def __init__(
        self,
        database_url: str,
        *,
        pool_size: int,
        recycle_seconds: int,
        dialect: Dialect | None = None,
        acquire_timeout: float = 30.0,
    ) -> None:
        self._connect_args = driver_connect_args(database_url)
        self._pool_size = pool_size
        self._recycle = recycle_seconds
        self._acquire_timeout = acquire_timeout
        self._pool: Any = None
        self._opening = asyncio.Lock()
        self._dialect = dialect or MySQLDialect_asyncmy()  # the engine's: the same SQL and types
        self._plans: dict[tuple[Any, ...], tuple[ClauseElement, _Plan]] = {}

    def plan(self, statement: ClauseElement, parameters: Mapping[str, Any]) -> _Plan:
        key = (id(statement), *parameters)  # the callers pass their parameters in a fixed order
        found = self._plans.get(key)
        if found is None or found[0] is not statement:
            # the statement is kept alive with its plan, so its id is never another's
            found = (statement, _Plan(statement, sorted(parameters), self._dialect))
            self._plans[key] = found
        return found[1]

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[DirectConnection]:
        """A transaction: BEGIN, the caller's statements, COMMIT; ROLLBACK if the block raises."""
        async with self._connection(start="BEGIN") as connection:
            try:
                yield DirectConnection(self, connection)
            except BaseException:
                with contextlib.suppress(Exception):  # a dead connection is discarded on release
                    await connection.rollback()
                raise
            with _as_sqlalchemy_error("COMMIT", ()):
                await connection.commit()

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[DirectConnection]:
        """Autocommit reads: each statement sees what is committed, and nothing needs a reset."""
        async with self._connection(start=None) as connection:
            yield DirectConnection(self, connection)

    async def pool(self) -> Any:
        """The asyncmy pool itself (the status poll's reader shares it), opened on first use."""
        return self._pool or await self._open()

    @contextlib.asynccontextmanager
    async def _connection(self, *, start: str | None) -> AsyncIterator[Any]:
        for attempt in range(1, _ACQUIRE_ATTEMPTS + 1):
            try:
                async with asyncio.timeout(self._acquire_timeout):
                    pool = self._pool or await self._open()
                    connection = await pool.acquire()
            except TimeoutError:
                raise sa_exc.TimeoutError(
                    f"no database connection within {self._acquire_timeout:g} s (pool of {self._pool_size})"
                ) from None
            except asyncmy.errors.Error as error:
                raise _sqlalchemy_error("connect", (), error) from error
            except (OSError, RuntimeError) as error:
                # A server that closes the socket at once (too many connections, shutting down)
                # fails asyncmy's connect outside its own errors: it is "can't connect" all the same.
                refused = asyncmy.errors.OperationalError(2003, f"cannot connect: {error!r}")
                raise _sqlalchemy_error("connect", (), refused) from error
            try:
                if start is not None:
                    await connection.begin()
                elif _idle_for(connection, pool) > _IDLE_PING_SECONDS:
                    await connection.ping(reconnect=False)  # a busy connection is alive: no ping
            except (asyncmy.errors.Error, OSError) as error:
                # Dropped by the server while pooled: nothing ran on it. Take another connection.
                connection.close()
                pool.release(connection)
                if attempt == _ACQUIRE_ATTEMPTS or not _stale(error):
                    raise _sqlalchemy_error(start or "ping", (), error) from error
                continue
            try:
                yield connection
            finally:
                pool.release(connection)
            return

    async def _open(self) -> Any:
        async with self._opening:  # the pool binds to the running event loop: open it lazily, once
            if self._pool is None:
                self._pool = await asyncmy.create_pool(
                    minsize=1, maxsize=self._pool_size, pool_recycle=self._recycle, **self._connect_args
                )
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            await self._pool.wait_closed()
            self._pool = None


def driver_connect_args(database_url: str) -> dict[str, Any]:
    """asyncmy's connect arguments for DATABASE_URL: autocommit, utf8mb4, and FOUND_ROWS as
    SQLAlchemy sets it (an UPDATE's rowcount counts the rows it matched)."""
    url = make_url(database_url)
    return {
        "host": url.host or "127.0.0.1",
        "port": url.port or 3306,
        "user": url.username or "root",
        "password": url.password or "",
        "db": url.database,
        "autocommit": True,
        "charset": "utf8mb4",
        "client_flag": CLIENT.FOUND_ROWS,
        **{k: v for k, v in url.query.items() if k in ("unix_socket",)},
    }


def hot_path_database(settings: Settings, engine: AsyncEngine) -> HotPathDatabase:
    """A DirectDatabase on MySQL and MariaDB; on SQLite the engine itself (one writer anyway)."""
    if settings.database.uses_sqlite:
        return engine
    return DirectDatabase(
        settings.database.url,
        pool_size=settings.database.pool_size + settings.database.max_overflow,
        recycle_seconds=settings.database.pool_recycle_seconds,
        dialect=engine.dialect,
    )


def _idle_for(connection: Any, pool: Any) -> float:
    return float(pool._loop.time() - connection.last_usage)


def _stale(error: BaseException) -> bool:
    if isinstance(error, asyncmy.errors.InterfaceError | OSError):
        return True
    args: tuple[Any, ...] = getattr(error, "args", ())
    return bool(args) and args[0] in _STALE_CONNECTION_ERRORS


@contextlib.contextmanager
def _as_sqlalchemy_error(sql: str, arguments: Sequence[Any]) -> Iterator[None]:
    try:
        yield
    except asyncmy.errors.Error as error:
        raise _sqlalchemy_error(sql, arguments, error) from error


def _sqlalchemy_error(sql: str, arguments: Sequence[Any], error: BaseException) -> sa_exc.DBAPIError:
    """The driver's error as the engine raises it (its `orig`), so callers handle one kind."""
    kind: type[sa_exc.DBAPIError]
    if isinstance(error, asyncmy.errors.IntegrityError):
        kind = sa_exc.IntegrityError
    elif isinstance(error, asyncmy.errors.OperationalError):
        kind = sa_exc.OperationalError
    elif isinstance(error, asyncmy.errors.InterfaceError):
        kind = sa_exc.InterfaceError
    else:
        kind = sa_exc.DBAPIError
    return kind(sql, tuple(arguments), error)
