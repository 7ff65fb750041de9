"""Open the SQLite database with the pragmas pqwatch relies on, and migrate it to head.

Every connection gets WAL, a busy timeout, foreign keys and synchronous=NORMAL. Transactions
that may write begin IMMEDIATE: a deferred transaction that reads and then writes fails at
once with "database is locked" when another process wrote meanwhile, busy timeout or not
(STYLE.md B.5). pysqlite's own transaction handling is switched off so we emit BEGIN ourselves.
"""

from __future__ import annotations

import io
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

# SQLAlchemy is imported when an engine is first needed: read-only commands (search) use a
# plain sqlite3 connection and never pay its ~0.3 s import.
if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import Engine
    from sqlmodel import Session

from pqwatch.errors import StorageError

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent.parent / "migrations"
# The newest revision in migrations/versions (a test keeps the two in step). Knowing it lets
# every command check the schema with one query instead of loading Alembic.
SCHEMA_HEAD = "0009"
READ_MMAP_BYTES = 1 << 30
READ_CACHE_KIB = 64 * 1024
BUSY_TIMEOUT_MS = 10_000
_WRITE = "pqwatch_write"


def sql_ts(ts: datetime) -> str:
    """A timestamp as the UTCDateTime column stores it (naive UTC, microseconds), for raw SQL."""
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


_MAX_ROWS = 500


def insert_rows(
    cur: sqlite3.Cursor, head: str, rows: Sequence[Sequence[Any]], tail: str = ""
) -> None:
    """Insert many rows with a few multi-row INSERTs: ``head`` is ``INSERT INTO t (a, ...)``,
    ``tail`` an optional ON CONFLICT clause.

    SQLite then does each statement's rows in one call, without the GIL. With executemany
    (or a statement per row) the ingest writer thread took the GIL back after every row and
    waited for it behind the thread preparing the next page, up to a switch interval each
    time, so storing and preparing barely overlapped; a call per row also costs more.
    """
    if not rows:
        return
    width = len(rows[0])
    limit = cur.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per = max(1, min(_MAX_ROWS, limit // width))
    one = "(" + ",".join("?" * width) + ")"
    for i in range(0, len(rows), per):
        chunk = rows[i : i + per]
        cur.execute(
            f"{head} VALUES {','.join([one] * len(chunk))} {tail}",
            [v for row in chunk for v in row],
        )


def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _on_begin)
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
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


def _ensure_parent(db: str | None) -> None:
    if not db or db == ":memory:" or db.startswith("file:"):
        return
    parent = Path(db).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the database folder {parent}: {exc.strerror}") from None


class ReadSession:
    """What read code needs of a session: its connection."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def connection(self) -> sa.Connection:
        return self._conn


class Database:
    """Engines for one SQLite database: `read()` and `write()` give short transactions."""

    def __init__(self, url: str) -> None:
        self._url_text = url
        # The database file when the URL is a plain file URL (then reads need no SQLAlchemy).
        self.path: str | None = _plain_path(url)
        if self.path is None:
            import sqlalchemy as sa

            try:
                parsed = sa.make_url(url)
            except sa.exc.ArgumentError:
                raise StorageError(f"invalid database URL {url!r}") from None
            if parsed.get_backend_name() != "sqlite":
                raise StorageError(f"unsupported database {url!r}: only sqlite:/// URLs for now")
            self.__dict__["url"] = parsed
            _ensure_parent(parsed.database)
        else:
            _ensure_parent(self.path)

    @cached_property
    def url(self) -> sa.URL:
        import sqlalchemy as sa

        return sa.make_url(self._url_text)

    @cached_property
    def engine(self) -> Engine:
        import sqlalchemy as sa
        from sqlalchemy import event

        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        event.listen(engine, "connect", _on_connect)
        event.listen(engine, "begin", _on_begin)
        return engine

    @cached_property
    def writer(self) -> Engine:
        return self.engine.execution_options(**{_WRITE: True})

    def describe(self) -> str:
        """The database file for people to read (the URL when it is not a file)."""
        if self.path is not None:
            return self.path
        db = self.url.database
        if db and db != ":memory:" and not db.startswith("file:"):
            return db
        return self.url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One short IMMEDIATE transaction; commits on success, rolls back on error.
        Never do network I/O or parsing inside it."""
        from sqlmodel import Session

        with storage_errors(), Session(self.writer, expire_on_commit=False) as session:
            with session.begin():
                yield session

    @contextmanager
    def read(self) -> Iterator[ReadSession]:
        """One read transaction (no ORM: reads are Core or raw SQL, and start fast)."""
        with storage_errors(), self.engine.connect() as conn, conn.begin():
            yield ReadSession(conn)

    def _connect(self) -> sqlite3.Connection:
        """A plain sqlite3 connection with the pragmas every engine connection gets."""
        assert self.path is not None
        conn = sqlite3.connect(self.path)
        try:
            _on_connect(conn, None)
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
        except sqlite3.OperationalError as exc:
            raise StorageError(f"database error: {exc}") from exc

    def dispose(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()

    # -- migrations ---------------------------------------------------------------------------

    def _alembic_config(self, connection: sa.Connection | None = None) -> Any:
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig(stdout=io.StringIO())  # pqwatch reports results itself
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url.render_as_string(hide_password=False))
        if connection is not None:
            cfg.attributes["connection"] = connection
        return cfg

    def revision(self) -> str | None:
        """The revision the database is at (None for an empty database)."""
        from alembic.runtime.migration import MigrationContext

        with storage_errors(), self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def _quick_revision(self) -> str | None:
        if self.path is not None:
            try:
                with closing(self._connect()) as conn:
                    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
                return str(row[0]) if row else None
            except sqlite3.OperationalError:
                return None  # no such table yet (or unreadable: the full path will say why)
            except sqlite3.Error:
                pass  # e.g. not a database: let the engine path raise what it raises
        import sqlalchemy as sa

        try:
            with self.engine.connect() as conn:
                row = conn.exec_driver_sql("SELECT version_num FROM alembic_version").first()
        except sa.exc.OperationalError:
            return None  # no such table yet (or unreadable: the full path will say why)
        return str(row[0]) if row else None

    def head(self) -> str | None:
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self._alembic_config()).get_current_head()

    def migrate(self) -> tuple[str | None, str | None]:
        """Bring the database to the head revision. Returns (before, after)."""
        current = self._quick_revision()
        if current == SCHEMA_HEAD:
            return current, current
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
        with storage_errors(), self.writer.connect() as conn:
            command.upgrade(self._alembic_config(conn), "head")
            conn.commit()
        return before, head


@contextmanager
def storage_errors() -> Iterator[None]:
    """Turn driver-level failures (unopenable file, locked too long) into one-line errors."""
    import sqlalchemy as sa

    try:
        yield
    except sa.exc.OperationalError as exc:
        raise StorageError(f"database error: {exc.orig}") from exc
