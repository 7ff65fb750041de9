"""Open the database (SQLite, or PostgreSQL through psycopg 3) and migrate it to head.

SQLite: every connection gets WAL, a busy timeout, foreign keys and synchronous=NORMAL.
Transactions that may write begin IMMEDIATE: a deferred transaction that reads and then writes
fails at once with "database is locked" when another process wrote meanwhile, busy timeout or
not (STYLE.md B.5). pysqlite's own transaction handling is switched off so we emit BEGIN
ourselves.

PostgreSQL (issue 19, in progress: it opens and migrates; search, ingest and matching are still
SQLite's): a plain pool, the server's own transactions, a bounded connect time, and one
migrator at a time by an advisory lock.
"""

from __future__ import annotations

import importlib
import io
import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

# SQLAlchemy is imported when an engine is first needed: read-only commands (search) use a
# plain sqlite3 connection and never pay its ~0.3 s import.
if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import Engine
    from sqlmodel import Session

from pqwatch.errors import ConfigError, PQWatchError, StorageError
from pqwatch.resources import migrations_dir

# The newest revision in migrations/versions (a test keeps the two in step). Knowing it lets
# every command check the schema with one query instead of loading Alembic.
SCHEMA_HEAD = "0015"
READ_MMAP_BYTES = 1 << 30
READ_CACHE_KIB = 64 * 1024
BUSY_TIMEOUT_MS = 10_000
_WRITE = "pqwatch_write"
# A server that does not answer (a dropped packet, a wrong address) fails in this many seconds
# instead of TCP's minutes; a URL's own ?connect_timeout= wins.
CONNECT_TIMEOUT_S = 10
# The advisory lock key migrations hold on PostgreSQL ("pqwa").
_MIGRATE_LOCK = 0x70717761
# The URLs taken as PostgreSQL: psycopg 3 is the driver pqwatch ships (a bare postgresql://
# would mean psycopg2 to SQLAlchemy).
_POSTGRES = {"postgresql", "postgresql+psycopg"}


def sql_ts(ts: datetime) -> str:
    """A timestamp as the UTCDateTime column stores it (naive UTC, microseconds), for raw SQL."""
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


_MAX_ROWS = 500


class Cursor(Protocol):
    """A DBAPI cursor taking `?` placeholders: sqlite3's own, or psycopg's through
    pqwatch.store.postgresql.cursor."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

    def execute(self, sql: str, params: Any = ..., /) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Any: ...


def raw_cursor(conn: Any) -> Cursor:
    """The DBAPI cursor of a session's or connection's own connection (so inside the same
    transaction), for the store's hot paths: SQLAlchemy's per-statement overhead dominated
    them (STYLE.md C.1). Takes a Session, a ReadSession, an SQLAlchemy Connection or a plain
    sqlite3 connection."""
    if isinstance(conn, sqlite3.Connection):
        return conn.cursor()
    if hasattr(conn, "connection") and callable(conn.connection):  # a session
        conn = conn.connection()
    dbapi = conn.connection.driver_connection
    if isinstance(dbapi, sqlite3.Connection):
        return dbapi.cursor()
    import psycopg

    from pqwatch.store.postgresql.cursor import QmarkCursor

    return QmarkCursor(psycopg.RawCursor(dbapi))


def insert_rows(
    cur: Cursor, head: str, rows: Sequence[Sequence[Any]], tail: str = "", template: str = ""
) -> None:
    """Insert many rows with a few multi-row INSERTs: ``head`` is ``INSERT INTO t (a, ...)``,
    ``tail`` an optional ON CONFLICT clause, ``template`` one row's VALUES when it is not one
    ``?`` a value (an expression of several values, say).

    SQLite then does each statement's rows in one call, without the GIL. With executemany
    (or a statement per row) the ingest writer thread took the GIL back after every row and
    waited for it behind the thread preparing the next page, up to a switch interval each
    time, so storing and preparing barely overlapped; a call per row also costs more.
    """
    if not rows:
        return
    width = len(rows[0])
    if isinstance(cur, sqlite3.Cursor):
        limit = cur.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    else:
        from pqwatch.store.postgresql.cursor import MAX_PARAMS

        limit = MAX_PARAMS
    per = max(1, min(_MAX_ROWS, limit // width))
    one = template or "(" + ",".join("?" * width) + ")"
    for i in range(0, len(rows), per):
        chunk = rows[i : i + per]
        cur.execute(
            f"{head} VALUES {','.join([one] * len(chunk))} {tail}",
            [v for row in chunk for v in row],
        )


def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any, read_only: bool = False) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _on_begin)
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if not read_only:  # setting the journal mode is a write
        cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.execute("PRAGMA synchronous = NORMAL")
    cur.close()


def _on_begin(conn: sa.Connection) -> None:
    mode = "IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


# A plain file URL, which needs no SQLAlchemy to read: sqlite:///relative or sqlite:////abs,
# without a query string or %-escapes (anything else goes through sqlalchemy.make_url).
_PLAIN_FILE_URL = re.compile(r"sqlite:///([^?%]+)")


def _plain_path(url: str) -> str | None:
    m = _PLAIN_FILE_URL.fullmatch(url)
    if not m or m.group(1) == ":memory:" or m.group(1).startswith("file:"):
        return None
    return m.group(1)


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _check_file(db: str | None) -> bool:
    """Before anything is opened or created: is this a place for a database file? Returns
    whether it can only be read here (a read-only copy). A mistyped path never creates
    folders, and nothing is written into a file that is not an SQLite database."""
    if not db or db == ":memory:" or db.startswith("file:"):
        return False
    path = Path(db)
    if path.is_dir():
        raise ConfigError(f"database.url: {path} is a folder, not a database file")
    if not path.parent.is_dir():
        raise ConfigError(
            f"database.url: the folder {path.parent} does not exist (is the path mistyped?)"
        )
    if not path.exists():
        if not os.access(path.parent, os.W_OK):
            raise StorageError(f"{path}: cannot create the database: {path.parent} is not writable")
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise StorageError(f"{path}: cannot read the database file: {exc.strerror}") from None
    if head and head != _SQLITE_MAGIC:
        raise ConfigError(f"database.url: {path} is not a pqwatch database (not an SQLite file)")
    # WAL needs to write beside the file (-wal, -shm) even to read.
    return not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK)


def _read_only_uri(path: str) -> str:
    """How to open a read-only copy. mode=ro needs the WAL's shared-memory file, which a
    read-only folder cannot hold when no writer has made it; then the copy is read as
    immutable (nobody can be writing it: a writer would have made that file)."""
    uri = f"file:{path}?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as conn:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return uri
    except sqlite3.Error:
        return f"{uri}&immutable=1"


def explain(exc: BaseException, where: str) -> PQWatchError:
    """One line for a driver error, naming the database."""
    orig = getattr(exc, "orig", None) or exc
    msg = str(orig)
    if type(orig).__module__.startswith("psycopg"):
        return _explain_postgres(msg, where)
    low = msg.lower()
    if "file is not a database" in low:
        return ConfigError(f"database.url: {where} is not a pqwatch database ({msg})")
    if "malformed" in low or "corrupt" in low:
        return StorageError(
            f"{where}: the database is damaged ({msg}); restore it from a backup, or check "
            f"it with: sqlite3 {where} 'PRAGMA integrity_check'"
        )
    if "readonly" in low or "read-only" in low:
        return StorageError(f"{where}: the database can only be read here ({msg})")
    if "unable to open" in low:
        return StorageError(f"{where}: cannot open the database file ({msg})")
    if "disk is full" in low or "disk i/o error" in low:
        return StorageError(f"{where}: {msg}")
    if "locked" in low or "busy" in low:
        return StorageError(
            f"{where}: the database stayed locked by another process for over "
            f"{BUSY_TIMEOUT_MS // 1000} s ({msg})"
        )
    return StorageError(f"{where}: database error: {msg}")


def _explain_postgres(msg: str, where: str) -> PQWatchError:
    # libpq says it on the first line ("... failed: Connection refused" is followed by a
    # "\tIs the server running ...?" line), after a "connection failed: " and a "FATAL:  ".
    reason = msg.strip().splitlines()[0] if msg.strip() else "no message"
    reason = reason.removeprefix("connection failed: ").replace("FATAL:  ", "")
    low = reason.lower()
    if 'database "' in low and "does not exist" in low:
        return StorageError(f"{where}: {reason} (create it first, with createdb)")
    if "connection" in low or "resolve host" in low or "timeout" in low or "password" in low:
        return StorageError(f"{where}: cannot connect to the database server ({reason})")
    return StorageError(f"{where}: database error: {reason}")


def _revision_of(conn: sqlite3.Connection, where: str) -> str | None:
    """The Alembic revision of a database; None when it is new (empty). An SQLite database
    holding other tables is someone else's: never migrate pqwatch's tables into it."""
    try:  # the usual case: one query
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables - {"sqlite_sequence"}:
            raise ConfigError(
                f"database.url: {where} is an SQLite database but not a pqwatch one "
                "(no alembic_version table); point [database] url at a new file"
            ) from None
        return None
    return str(row[0]) if row else None


class ReadSession:
    """What read code needs of a session: its connection."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def connection(self) -> sa.Connection:
        return self._conn


class Database:
    """Engines for one database: `read()` and `write()` give short transactions."""

    def __init__(self, url: str) -> None:
        self._url_text = url
        # The database file when the URL is a plain file URL (then reads need no SQLAlchemy).
        self.path: str | None = _plain_path(url)
        # "sqlite" or "postgresql": what store code branches on where SQL differs.
        self.dialect = "sqlite"
        if self.path is None:
            import sqlalchemy as sa

            try:
                parsed = sa.make_url(url)
            except sa.exc.ArgumentError:
                raise ConfigError(
                    f"database.url: {url!r} is not a database URL (like sqlite:///pqwatch.db)"
                ) from None
            if parsed.drivername in _POSTGRES:
                self.dialect = "postgresql"
                parsed = parsed.set(drivername="postgresql+psycopg")
            elif parsed.get_backend_name() != "sqlite":
                raise ConfigError(
                    f"database.url: unsupported database {parsed.render_as_string()!r}: "
                    "only sqlite:/// and postgresql+psycopg:// URLs"
                )
            self.__dict__["url"] = parsed
            # A server's database has no file to check; the server says what is wrong.
            self.read_only = self.dialect == "sqlite" and _check_file(parsed.database)
        else:
            self.read_only = _check_file(self.path)
        self._read_only_uri = (
            _read_only_uri(self.path) if self.read_only and self.path is not None else None
        )

    @cached_property
    def url(self) -> sa.URL:
        import sqlalchemy as sa

        return sa.make_url(self._url_text)

    @cached_property
    def engine(self) -> Engine:
        import sqlalchemy as sa
        from sqlalchemy import event

        url = self.url
        if self.dialect == "postgresql":
            # No pragmas and no BEGIN IMMEDIATE: the server locks rows, not a file. A pooled
            # connection is pinged before use, so a restarted server costs a daemon nothing.
            # Sessions run in UTC: timestamps are stored as naive UTC, as on SQLite, so the
            # server's now() must be UTC too.
            args: dict[str, Any] = {"application_name": "pqwatch"}
            if "options" not in url.query:
                args["options"] = "-c timezone=UTC"
            if "connect_timeout" not in url.query:
                args["connect_timeout"] = CONNECT_TIMEOUT_S
            return sa.create_engine(
                url, pool_size=4, max_overflow=8, pool_pre_ping=True, connect_args=args
            )
        if self._read_only_uri is not None:
            # A read-only copy: opened read-only, so nothing (not even WAL files) is written.
            url = sa.make_url(f"sqlite:///{self._read_only_uri}&uri=true")
        # An ordinary pool: connections are kept and reused, which also keeps SQLite's WAL
        # (it is checkpointed and deleted whenever the last connection closes).
        engine = sa.create_engine(url, pool_size=4, max_overflow=8)
        event.listen(engine, "connect", lambda c, r: _on_connect(c, r, read_only=self.read_only))
        event.listen(engine, "begin", _on_begin)
        return engine

    def dialect_module(self, name: str) -> ModuleType:
        """This database's own module `name` of the store (pqwatch.store.sqlite.<name> or
        pqwatch.store.postgresql.<name>): where SQL differs, each dialect has its module with
        the same functions."""
        return importlib.import_module(f"pqwatch.store.{self.dialect}.{name}")

    def insert(self, table: sa.Table) -> Any:
        """An INSERT for `table` that can take ON CONFLICT clauses (each dialect has its own)."""
        from sqlalchemy.dialects import postgresql, sqlite

        return (postgresql if self.dialect == "postgresql" else sqlite).insert(table)

    @cached_property
    def writer(self) -> Engine:
        return self.engine.execution_options(**{_WRITE: True})

    def describe(self) -> str:
        """The database file for people to read (the URL, password hidden, when it is not a
        file: lock files, which go beside a file, are then not made)."""
        if self.path is not None:
            return self.path
        db = self.url.database
        if self.dialect == "sqlite" and db and db != ":memory:" and not db.startswith("file:"):
            return db
        return self.url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One short IMMEDIATE transaction; commits on success, rolls back on error.
        Never do network I/O or parsing inside it."""
        from sqlmodel import Session

        with (
            storage_errors(self.describe()),
            Session(self.writer, expire_on_commit=False) as session,
        ):
            with session.begin():
                yield session

    @contextmanager
    def read(self) -> Iterator[ReadSession]:
        """One read transaction (no ORM: reads are Core or raw SQL, and start fast)."""
        with storage_errors(self.describe()), self.engine.connect() as conn, conn.begin():
            yield ReadSession(conn)

    def _connect(self) -> sqlite3.Connection:
        """A plain sqlite3 connection with the pragmas every engine connection gets."""
        assert self.path is not None
        if self._read_only_uri is not None:
            conn = sqlite3.connect(self._read_only_uri, uri=True)
        else:
            conn = sqlite3.connect(self.path)
        try:
            _on_connect(conn, None, read_only=self.read_only)
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def read_raw(self) -> Iterator[sqlite3.Connection]:
        """One read transaction on a plain sqlite3 connection, for read-only commands that
        should start fast (no SQLAlchemy import). Only for file URLs: check `path` first."""
        if self.path is None:
            raise StorageError(f"{self.describe()}: not a database file")
        try:
            with closing(self._connect()) as conn:
                # A search probes question rows all over a large file: mapped pages are read
                # without a copy, and a larger cache keeps the pages its several passes share.
                # (Readers only: a writer's mapped pages would count against its memory.)
                conn.execute(f"PRAGMA mmap_size = {READ_MMAP_BYTES}")
                conn.execute(f"PRAGMA cache_size = -{READ_CACHE_KIB}")
                conn.execute("BEGIN DEFERRED")
                try:
                    yield conn
                finally:
                    conn.rollback()  # read-only: nothing to keep
        except sqlite3.Error as exc:
            raise explain(exc, self.describe()) from exc

    def dispose(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()

    # -- migrations ---------------------------------------------------------------------------

    def _alembic_config(self, connection: sa.Connection | None = None) -> Any:
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig(stdout=io.StringIO())  # pqwatch reports results itself
        # The packaged migrations, or the repository's (pqwatch/resources.py has the rule).
        cfg.set_main_option("script_location", str(migrations_dir()))
        # ConfigParser reads "%" as interpolation: a %-escaped password must be doubled.
        url = self.url.render_as_string(hide_password=False).replace("%", "%%")
        cfg.set_main_option("sqlalchemy.url", url)
        if connection is not None:
            cfg.attributes["connection"] = connection
        return cfg

    def revision(self) -> str | None:
        """The revision the database is at (None for an empty database)."""
        from alembic.runtime.migration import MigrationContext

        with storage_errors(self.describe()), self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def _quick_revision(self) -> str | None:
        """The revision, read with a plain sqlite3 connection when possible (no Alembic)."""
        where = self.describe()
        if self.path is not None:
            try:
                with closing(self._connect()) as conn:
                    return _revision_of(conn, where)
            except sqlite3.Error as exc:
                raise explain(exc, where) from exc
        with storage_errors(where), self.engine.connect() as conn:
            if self.dialect == "postgresql":
                return _server_revision(conn, where)
            dbapi = conn.connection.driver_connection
            assert isinstance(dbapi, sqlite3.Connection)
            return _revision_of(dbapi, where)

    def head(self) -> str | None:
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self._alembic_config()).get_current_head()

    def migrate(self) -> tuple[str | None, str | None]:
        """Bring the database to the head revision. Returns (before, after)."""
        current = self._quick_revision()
        if current == SCHEMA_HEAD:
            return current, current
        if self.read_only:
            raise StorageError(
                f"{self.describe()}: the database can only be read here and needs migrating "
                f"(it is at revision {current or 'none'}, this pqwatch needs {SCHEMA_HEAD}): "
                "run pqwatch once where it can write to it"
            )
        from alembic import command
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(self._alembic_config())
        head = script.get_current_head()
        before = self.revision()
        if before == head:
            return before, head
        if before is not None and before not in {s.revision for s in script.walk_revisions()}:
            raise StorageError(
                f"the database is at revision {before}, which this pqwatch does not know: "
                "it was written by a newer version; upgrade pqwatch"
            )
        with storage_errors(self.describe()), self.writer.connect() as conn:
            if self.dialect == "postgresql":
                # One migrator at a time, as BEGIN IMMEDIATE makes it on SQLite: another
                # process starting now waits here, then finds the schema at head (Alembic
                # reads the revision again). Released when the transaction ends.
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATE_LOCK})")
            command.upgrade(self._alembic_config(conn), "head")
            conn.commit()
        return before, head


def _server_revision(conn: sa.Connection, where: str) -> str | None:
    """_revision_of for a server database: None when it is empty; one holding tables but no
    alembic_version is someone else's, and pqwatch's tables never go into it."""
    import sqlalchemy as sa

    tables = set(sa.inspect(conn).get_table_names())
    if "alembic_version" not in tables:
        if tables:
            raise ConfigError(
                f"database.url: {where} holds tables but is not a pqwatch database (no "
                "alembic_version table); point [database] url at a new, empty database"
            )
        return None
    row = conn.execute(sa.text("SELECT version_num FROM alembic_version")).first()
    return str(row[0]) if row else None


@contextmanager
def storage_errors(where: str = "the database") -> Iterator[None]:
    """Turn driver-level failures (unopenable, damaged, read-only, locked too long) into
    one-line errors that name the database."""
    import sqlalchemy as sa

    try:
        yield
    except (sa.exc.DBAPIError, sqlite3.Error) as exc:
        if _is_bug(getattr(exc, "orig", exc)):
            raise  # a broken constraint or a bad statement is a bug, not the database's state
        raise explain(exc, where) from exc


_BUGS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)


def _is_bug(orig: BaseException) -> bool:
    if isinstance(orig, _BUGS):
        return True
    # PostgreSQL's SQLSTATE: class 23 is a broken constraint, 42 a bad statement, except 42501
    # (permission denied), which is how the server was set up.
    state = getattr(orig, "sqlstate", None) or ""
    return state.startswith("23") or (state.startswith("42") and state != "42501")
