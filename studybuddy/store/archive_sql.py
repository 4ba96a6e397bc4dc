"""Where the archive lives, and how to talk to it: the SQLite file (the default) or a PostgreSQL server.

`Archive` writes its SQL once, in SQLite's style (`?` and `:name` placeholders, `REAL` for a float); a
`Dialect` turns it into the server's (`%s`, `%(name)s`, `DOUBLE PRECISION`) and knows what differs
between the engines: row locks (`FOR UPDATE`, `FOR UPDATE SKIP LOCKED`) and a lock on a key that may have no
row yet. SQLite needs neither: every write is one `BEGIN IMMEDIATE` transaction that holds the whole file.

A `Backend` hands out one transaction at a time as a `Db`: the SQLite backend shares one connection between
threads behind a lock; the PostgreSQL backend takes a connection from a pool (psycopg 3, `psycopg_pool`).
Driver errors become one-line `ArchiveError`s naming the archive, its password never shown.
"""

from __future__ import annotations

import contextlib
import logging
import re
import selectors
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from studybuddy.errors import ArchiveError
from studybuddy.text import one_line

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10
POSTGRES_SCHEMES = ("postgresql", "postgres")
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class Cursor(Protocol):
    rowcount: int
    description: Any

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the engines in the archive's SQL."""

    name: str
    for_update: str  # appended to a SELECT that reads a row it will write
    skip_locked: str  # appended to a SELECT that takes queued rows no other transaction holds
    key_lock: str | None  # a statement taking a lock on `?` (a key that may have no row yet) until commit
    ids_per_query: int  # how many ids one `in_ids` condition takes

    def sql(self, statement: str) -> str:
        return statement if self.name == "sqlite" else _postgres_sql(statement)

    def in_ids(self, column: str, ids: Sequence[str]) -> tuple[str, list[Any]]:
        """A condition `column` is one of `ids`, and its parameters: SQLite binds each id, PostgreSQL one
        array (a statement with thousands of placeholders is slow to prepare)."""
        if self is SQLITE:
            return f"{column} IN ({', '.join('?' * len(ids))})", list(ids)
        return f"{column} = ANY(?)", [list(ids)]


SQLITE = Dialect("sqlite", for_update="", skip_locked="", key_lock=None, ids_per_query=500)
POSTGRES = Dialect(
    "postgresql",
    for_update=" FOR UPDATE",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    key_lock="SELECT pg_advisory_xact_lock(hashtext(?))",
    ids_per_query=100_000,
)


@lru_cache(maxsize=256)
def _postgres_sql(statement: str) -> str:
    """`?` -> `%s`, `:name` -> `%(name)s`, a literal `%` doubled; `REAL` (a float) -> `DOUBLE PRECISION`.
    The archive's SQL holds no `?` or `:` inside string literals."""
    text = statement.replace("%", "%%").replace("?", "%s")
    text = _NAMED.sub(r"%(\1)s", text)
    return re.sub(r"\bREAL\b", "DOUBLE PRECISION", text)


class Db:
    """One transaction on either engine; statements are written in SQLite's style."""

    def __init__(self, connection: Any, dialect: Dialect) -> None:
        self._connection = connection
        self.dialect = dialect

    def execute(self, statement: str, params: Sequence[Any] | dict[str, Any] = ()) -> Cursor:
        text = self.dialect.sql(statement)
        return cast(Cursor, self._connection.execute(text, params))

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run `statement` once per row (psycopg sends them all before it reads an answer); returns how many
        rows they changed in all."""
        text = self.dialect.sql(statement)
        if self.dialect is SQLITE:
            return int(self._connection.executemany(text, rows).rowcount)
        with self._connection.cursor() as cursor:
            cursor.executemany(text, list(rows))
            return int(cursor.rowcount)

    def lock_key(self, key: str) -> None:
        """Hold a lock on `key` until the transaction ends (SQLite: the transaction holds the file)."""
        if self.dialect.key_lock is not None:
            self.execute(self.dialect.key_lock, (key,))


class Backend(Protocol):
    dialect: Dialect
    where: str  # how errors name the archive: its file, or its URL without the password

    def reading(self, *, snapshot: bool = False) -> AbstractContextManager[Db]: ...

    def writing(self, *, one_statement: bool = False) -> AbstractContextManager[Db]:
        """A write transaction. `one_statement`: it is a single statement, which the server may run as a
        transaction of its own, without BEGIN and COMMIT (one round trip instead of three)."""
        ...

    def close(self) -> None: ...


def redact(url: str) -> str:
    """The URL with any password (in the user part or a `password=` parameter) replaced by `***`."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}"
    query = parts.query
    if "password" in query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if k == "password" else v) for k, v in pairs])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _error_line(exc: BaseException, secret: str | None = None) -> str:
    text = one_line(str(exc)) or exc.__class__.__name__
    return text.replace(secret, "***") if secret else text


def is_server_url(location: str | None) -> bool:
    """Whether `--archive` names a server (else the SQLite file of the output folder is used)."""
    return location is not None and urlsplit(location).scheme in POSTGRES_SCHEMES


def connect(root: Path, url: str | None) -> Backend:
    """The backend of the archive at `url` (`postgresql://...`), or of the SQLite file in `root`."""
    if url is None:
        return SqliteBackend(root / ".study-buddy.sqlite3")
    if not is_server_url(url):
        scheme = urlsplit(url).scheme or "(none)"
        raise ArchiveError(
            f"{redact(url)}: unknown archive scheme {scheme!r}; use postgresql://user@host/db, or leave "
            "--archive out for the SQLite file in the output folder"
        )
    return PostgresBackend(url)


class SqliteBackend:
    """The archive file: one connection shared by the threads of a run behind a lock; several processes may
    use the same file at once (WAL journal, a 10 s busy timeout, every write in `BEGIN IMMEDIATE`)."""

    dialect = SQLITE

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveError(f"{path}: cannot create the folder ({exc.strerror or exc})") from exc
        try:
            self._db = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise ArchiveError(f"{path}: cannot open the archive ({exc})") from exc
        self._lock = threading.Lock()
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            mode = self._enable_wal()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise ArchiveError(f"{path}: not a usable study-buddy archive ({exc})") from exc
        if mode.lower() != "wal":
            log.warning("%s: WAL journal not available (got %s); concurrent runs may wait", path, mode)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _enable_wal(self) -> str:
        """Switch to WAL, waiting out another process that is creating the same archive.

        SQLite answers "database is locked" to this pragma at once, without its busy handler, while another
        connection converts a new database; so the wait is done here, within the same busy timeout.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        pause = 0.01
        while True:
            try:
                (mode,) = self._db.execute("PRAGMA journal_mode = WAL").fetchone()
                return str(mode)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.25)

    @contextmanager
    def reading(self, *, snapshot: bool = False) -> Iterator[Db]:
        with self._lock:
            try:
                if snapshot:
                    self._db.execute("BEGIN")
                try:
                    yield Db(self._db, SQLITE)
                finally:
                    if snapshot and self._db.in_transaction:
                        self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise ArchiveError(f"{self.path}: cannot read the archive ({exc})") from exc

    @contextmanager
    def writing(self, *, one_statement: bool = False) -> Iterator[Db]:
        """One `BEGIN IMMEDIATE` transaction, one statement or more: taking the write lock first, processes
        cannot deadlock (a statement on its own would read first, and might find the file changed)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise ArchiveError(f"{self.path}: cannot write the archive ({exc})") from exc
            try:
                yield Db(self._db, SQLITE)
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise ArchiveError(f"{self.path}: cannot write the archive ({exc})") from exc
                raise


class PostgresBackend:
    """An archive on a PostgreSQL server, shared by machines: a pool of connections, one per transaction.

    Connections are in autocommit mode: a transaction of several statements is opened explicitly, and one
    statement on its own (`writing(one_statement=True)`: taking from the queue, most updates) costs one
    round trip. A connection taken from the pool is checked when its socket has something to say (the server
    closed it: a restart, `pg_terminate_backend`, an idle timeout), so one the server dropped is replaced,
    and a healthy one costs no round trip. A transaction that fails because the server went away is an
    `ArchiveError` like any other: the run stops with nothing marked failed, `work` tries again with backoff,
    and claims that are not released expire.
    """

    dialect = POSTGRES

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        import psycopg_pool

        self.where = redact(url)
        self._url = url
        self._password = urlsplit(url).password
        self._check_server()  # first: its error says what is wrong (the pool's would only time out)
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"connect_timeout": CONNECT_TIMEOUT_S, "autocommit": True},
            check=_check_if_told,
            timeout=BUSY_TIMEOUT_S,
            open=True,
            name="study-buddy-archive",
        )

    def _line(self, exc: BaseException) -> str:
        return _error_line(exc, self._password)

    def _check_server(self) -> None:
        """Connect once, outside the pool: an `ArchiveError` with the server's own answer if that fails."""
        import psycopg

        try:
            psycopg.connect(self._url, connect_timeout=CONNECT_TIMEOUT_S).close()
        except psycopg.Error as exc:
            raise ArchiveError(f"{self.where}: cannot connect to PostgreSQL ({self._line(exc)})") from None

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _transaction(self, doing: str, *, snapshot: bool = False, alone: bool = False) -> Iterator[Db]:
        import psycopg
        import psycopg_pool

        try:
            with self._pool.connection() as connection:
                if alone:
                    yield Db(connection, POSTGRES)
                    return
                with connection.transaction():
                    if snapshot:
                        connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    yield Db(connection, POSTGRES)
        except psycopg_pool.PoolTimeout:  # the server is gone (says why), or every connection stayed busy
            self._check_server()
            raise ArchiveError(
                f"{self.where}: cannot {doing} the archive (no free connection in {BUSY_TIMEOUT_S:.0f}s)"
            ) from None
        except psycopg.Error as exc:
            raise ArchiveError(f"{self.where}: cannot {doing} the archive ({self._line(exc)})") from None

    def reading(self, *, snapshot: bool = False) -> AbstractContextManager[Db]:
        return self._transaction("read", snapshot=snapshot, alone=not snapshot)

    def writing(self, *, one_statement: bool = False) -> AbstractContextManager[Db]:
        return self._transaction("write", alone=one_statement)


def _check_if_told(connection: psycopg.Connection[Any]) -> None:
    """The pool's check of a connection it hands out: a round trip only when the socket is readable. An idle
    connection hears nothing from the server unless it is closing it (its last words, then end of file) or,
    rarely, has a notice; then the full check reads what came, and fails on a closed connection."""
    import psycopg_pool

    with selectors.DefaultSelector() as selector:  # poll/epoll, or select where there are no others
        selector.register(connection.fileno(), selectors.EVENT_READ)  # a closed connection raises: replaced
        told = bool(selector.select(0))
    if told:
        psycopg_pool.ConnectionPool.check_connection(connection)
