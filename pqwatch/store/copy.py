"""Copy a SQLite archive into an empty PostgreSQL database (`pqwatch db copy`, issue 19).

The target is migrated to head first, so the schema is the migrations' own, never one made
here. Tables go in foreign-key order (the models' `sorted_tables`), each in batches by primary
key: read through the model's table (SQLite's text dates and 0/1 booleans come out as Python
values), written with COPY, one transaction per batch. The target therefore always holds a
prefix of every table in key order, so a copy that was killed carries on from the target's
largest key and never writes a row twice. Questions get their question.search_vector as they
go in (FTS5's question_fts has no table to copy: on PostgreSQL the index is that column), and
at the end the id sequences are moved past the copied ids.

Which archive a target holds is told by the `secret` table (migration 0014 makes a random
signing key per archive): it is copied first, in the same transaction that finds the target
empty, so a half-copied target is recognised as this archive's and any other is refused.
Copying the key also keeps the confirmation and manage links already mailed working.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel

import pqwatch.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from pqwatch.errors import ConfigError, StorageError, UsageError
from pqwatch.store.db import Database, explain
from pqwatch.store.models import Answer, Question, Secret
from pqwatch.store.sqlite.facets import facet_text
from pqwatch.text import normalize_for_search

# Rows per batch, and so per transaction on the target.
BATCH_ROWS = 5_000
# The advisory lock one copy holds on its target for as long as it runs ("pqcp").
_COPY_LOCK = 0x70716370

# a table's name, its rows copied so far, its rows in the archive
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class TableCopy:
    name: str
    copied: int  # rows this run copied
    total: int  # rows in the archive


@dataclass(frozen=True)
class CopyResult:
    source: str
    target: str
    tables: list[TableCopy]
    seconds: float

    @property
    def rows_copied(self) -> int:
        return sum(t.copied for t in self.tables)

    @property
    def rows_total(self) -> int:
        return sum(t.total for t in self.tables)

    @property
    def nothing_to_copy(self) -> bool:
        return self.rows_copied == 0


def tables() -> list[sa.Table]:
    """The tables to copy, parents first. alembic_version is the target's own (migrated to
    head), and SQLite's FTS5 tables are not models."""
    return list(SQLModel.metadata.sorted_tables)


def copy_archive(
    source: Database,
    to_url: str,
    progress: Progress | None = None,
    batch_rows: int = BATCH_ROWS,
) -> CopyResult:
    """Copy the SQLite archive `source` into the empty PostgreSQL database at `to_url`, or
    carry on with a copy of it that stopped part-way.

    Raises:
        UsageError: the source is not SQLite, the target not PostgreSQL, or the target holds
            something else (another archive, or tables that are not pqwatch's).
        StorageError: either database cannot be opened, or the copy does not add up.
    """
    t0 = time.monotonic()
    report: Progress = progress or (lambda stage, done, total: None)
    where_from = source.describe()
    if source.dialect != "sqlite":
        raise UsageError(
            f"db copy moves a SQLite archive to PostgreSQL; the configured database "
            f"{where_from} is not SQLite"
        )
    if source.path is not None and not Path(source.path).is_file():
        raise UsageError(f"there is no archive at {where_from} to copy (is [database] url right?)")
    target = _target(to_url)
    where = target.describe()
    try:
        source.migrate()  # the models' columns must all be there
        with _errors(where_from, where), target.engine.connect() as tconn:
            _refuse_foreign(tconn, where)
            target.migrate()
            _lock(tconn, where)
            try:
                with source.engine.connect() as sconn, sconn.begin():
                    # One read transaction: every table from one snapshot, should something
                    # write to the archive meanwhile.
                    totals = {t.name: _count(sconn, t) for t in tables()}
                    claimed = _claim(sconn, tconn, where)
                    copied = []
                    for t in tables():
                        n = _copy_table(sconn, tconn, t, totals[t.name], batch_rows, report)
                        if t is _SECRET:
                            n += claimed
                        copied.append(TableCopy(t.name, n, totals[t.name]))
                _check_counts(tconn, totals, where)
                _set_sequences(tconn)
                tconn.exec_driver_sql("ANALYZE")  # a bulk copy leaves the planner no statistics
                tconn.commit()
            finally:
                _unlock(tconn)
    finally:
        target.dispose()
    return CopyResult(where_from, where, copied, time.monotonic() - t0)


def _target(to_url: str) -> Database:
    try:
        target = Database(to_url)
    except ConfigError as exc:  # it speaks of [database] url; here the URL is --to's
        raise UsageError("--to: " + str(exc).removeprefix("database.url: ")) from None
    if target.dialect != "postgresql":
        raise UsageError(
            "--to: db copy fills a PostgreSQL database (postgresql+psycopg://user@host/dbname); "
            f"{target.describe()} is not one"
        )
    return target


@contextmanager
def _errors(where_from: str, where_to: str) -> Iterator[None]:
    """A driver's failure in one line naming the database it came from: psycopg's are the
    target's (also those of COPY, which SQLAlchemy does not wrap), sqlite3's the archive's."""
    import psycopg

    try:
        yield
    except (sa.exc.DBAPIError, sqlite3.Error, psycopg.Error) as exc:
        orig = getattr(exc, "orig", None) or exc
        state = getattr(orig, "sqlstate", None) or ""
        if isinstance(orig, sqlite3.ProgrammingError) or (
            state.startswith("42") and state != "42501"
        ):
            raise  # a bad statement is a bug, not the database's state
        where = where_to if isinstance(orig, psycopg.Error) else where_from
        raise explain(exc, where) from exc


def _refuse_foreign(conn: sa.Connection, where: str) -> None:
    """Database.migrate refuses tables without alembic_version, but in words about [database]
    url; here the database is --to's."""
    names = set(sa.inspect(conn).get_table_names())
    conn.rollback()
    if names and "alembic_version" not in names:
        raise UsageError(
            f"--to: {where} holds tables but is not a pqwatch database; copy into a new, "
            "empty database (createdb)"
        )


def _lock(conn: sa.Connection, where: str) -> None:
    # Two copies into one database would both carry on from the same largest keys.
    got = conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({_COPY_LOCK})").scalar()
    conn.commit()
    if not got:
        raise UsageError(f"another pqwatch db copy is writing to {where}; let it finish")


def _unlock(conn: sa.Connection) -> None:
    # After a failure the connection may be gone, and the lock with it.
    with suppress(sa.exc.SQLAlchemyError):
        conn.rollback()
        conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_COPY_LOCK})")
        conn.commit()


def _count(conn: sa.Connection, table: sa.Table) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _secrets(conn: sa.Connection) -> list[tuple[Any, ...]]:
    t = _SECRET
    return [tuple(r) for r in conn.execute(sa.select(t.c.name, t.c.value).order_by(t.c.name))]


def _claim(sconn: sa.Connection, tconn: sa.Connection, where: str) -> int:
    """Mark the target as this archive's copy, or find that it is already (a copy that
    stopped, or one that finished); refuse any other. Returns the secret rows it copied."""
    mine = _secrets(sconn)
    with tconn.begin():
        if _secrets(tconn) == mine:
            return 0
        for table in tables():
            if table is _SECRET:
                continue  # the target's own migration made one
            if tconn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first():
                raise UsageError(
                    f"--to: {where} already holds another pqwatch archive (rows in "
                    f"{table.name}); db copy fills only a new, empty database (createdb)"
                )
        tconn.execute(_SECRET.delete())
        rows = sconn.execute(sa.select(_SECRET)).mappings().all()
        if rows:
            tconn.execute(_SECRET.insert(), [dict(r) for r in rows])
        return len(rows)


def _converter(table: sa.Table, dialect: sa.Dialect) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """Values as read to what an INSERT would hand psycopg: each column type's bind step
    (UTCDateTime's makes timezone-aware timestamps naive UTC, as every writer stores them)."""
    steps = [c.type.bind_processor(dialect) for c in table.columns]
    if not any(steps):
        return tuple

    def convert(row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(v if s is None else s(v) for v, s in zip(row, steps, strict=True))

    return convert


def _key_order(table: sa.Table, descending: bool = False) -> list[Any]:
    """ORDER BY the primary key as SQLite sorts it: text by code point, which is PostgreSQL's
    "C" collation (its default may be a locale's, which puts the largest key elsewhere)."""
    out: list[Any] = []
    for c in table.primary_key.columns:
        col: Any = c.collate("C") if isinstance(c.type, sa.String) else c
        out.append(col.desc() if descending else col)
    return out


def _after(table: sa.Table, last: Sequence[Any]) -> Any:
    key = list(table.primary_key.columns)
    if len(key) == 1:
        return key[0] > last[0]
    return sa.tuple_(*key) > sa.tuple_(
        *(sa.literal(v, c.type) for c, v in zip(key, last, strict=True))
    )


def _copy_table(
    sconn: sa.Connection,
    tconn: sa.Connection,
    table: sa.Table,
    total: int,
    batch_rows: int,
    report: Progress,
) -> int:
    """Copy the rows past the target's largest key, a batch per transaction; how many."""
    import psycopg

    key = list(table.primary_key.columns)
    found = tconn.execute(sa.select(*key).order_by(*_key_order(table, True)).limit(1)).first()
    last = tuple(found) if found is not None else None
    done = _count(tconn, table)
    tconn.commit()
    report(table.name, done, total)
    names = [c.name for c in table.columns]
    at = [names.index(c.name) for c in key]
    convert = _converter(table, tconn.dialect)
    query = sa.select(table)
    copy_sql = f"COPY {table.name} ({', '.join(names)}) FROM STDIN"
    then: str | None = None
    if table is _QUESTION:
        query, copy_sql, then = _indexed(tconn, names)
    copied = 0
    while True:
        batch = query.order_by(*key).limit(batch_rows)
        if last is not None:
            batch = batch.where(_after(table, last))
        rows = sconn.execute(batch).all()
        if not rows:
            return copied
        try:
            with tconn.begin():
                dbapi: Any = tconn.connection.driver_connection
                with dbapi.cursor() as cur:
                    with cur.copy(copy_sql) as copy:
                        for row in rows:
                            values = convert(row[: len(names)])
                            if then is not None:
                                values += _index_texts(row)
                            copy.write_row(values)
                    if then is not None:
                        cur.execute(then)
        except psycopg.DataError:
            _refuse_nul(table, names, at, rows)
            raise
        last = tuple(rows[-1][i] for i in at)
        copied += len(rows)
        report(table.name, done + copied, total)


def _indexed(tconn: sa.Connection, names: list[str]) -> tuple[Any, str, str]:
    """How questions are copied: with their search_vector made as they go in, which costs
    half what an UPDATE of every copied row does (each would be written twice). COPY fills a
    staging table with the rows and the texts the ingest writer indexes (from the archive's
    latest answer); one INSERT then moves them into question with the ingest's document."""
    from pqwatch.store.postgresql.ingest import DOCUMENT

    answer = _ANSWER
    latest = (
        sa.select(answer.c.answer_text)
        .where(answer.c.question_id == _QUESTION.c.id)
        .order_by(answer.c.version.desc())
        .limit(1)
        .scalar_subquery()
    )
    cols = ", ".join(names)
    tconn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS copy_question ON COMMIT DELETE ROWS AS "
        f"SELECT {cols}, ''::text AS h, ''::text AS q, ''::text AS a, ''::text AS f "
        "FROM question WITH NO DATA"
    )
    tconn.commit()
    return (
        sa.select(_QUESTION, latest.label("latest_answer")),
        f"COPY copy_question ({cols}, h, q, a, f) FROM STDIN",
        f"INSERT INTO question ({cols}, search_vector) "
        f"SELECT {', '.join(f'v.{n}' for n in names)}, {DOCUMENT} FROM copy_question v",
    )


def _index_texts(row: Any) -> tuple[str, str, str, str]:
    """A question's texts as the ingest writer indexes them (heading, question as
    normalize_for_search leaves it, latest answer, facet words)."""
    facets = facet_text(
        row.house, row.status, row.answering_body_id, row.date_tabled, row.date_answered
    )
    text = normalize_for_search(row.question_text)
    return (row.heading or "", text, row.latest_answer or "", facets)


def _refuse_nul(table: sa.Table, names: list[str], at: list[int], rows: Sequence[Any]) -> None:
    """PostgreSQL's text cannot hold U+0000, which SQLite's can: name the row that has one
    (the server's own message names neither row nor column)."""
    for row in rows:
        # A question's row ends with its latest answer's text (to index).
        for name, value in zip([*names, "its latest answer"], row, strict=False):
            if isinstance(value, str) and "\x00" in value:
                key = ", ".join(str(row[i]) for i in at)
                raise StorageError(
                    f"{table.name} {key}: {name} holds a NUL character (U+0000), which "
                    "PostgreSQL cannot store; remove it from the archive, then copy again"
                )


def _check_counts(conn: sa.Connection, totals: dict[str, int], where: str) -> None:
    """Resuming trusts that copied rows did not change: a table that does not add up means
    the archive changed between runs (rows deleted, or keys added below the copied ones)."""
    for table in tables():
        held = _count(conn, table)
        if held != totals[table.name]:
            conn.rollback()
            raise StorageError(
                f"{where}: {table.name} holds {held} rows but the archive {totals[table.name]}: "
                "the archive changed since this copy began; stop pqwatch and copy again into a "
                "new, empty database"
            )
    conn.commit()


def _set_sequences(conn: sa.Connection) -> None:
    """Move each id sequence past the copied ids (COPY does not), never back."""
    for table in tables():
        col = table.autoincrement_column
        if col is None:
            continue  # keys the API gives (member, answering_body) or several columns
        t, c = table.name, col.name
        conn.execute(
            sa.text(
                f"SELECT setval(s, greatest(coalesce((SELECT max({c}) FROM {t}), 0), "
                "coalesce(pg_sequence_last_value(s::regclass), 0)) + 1, false) "
                "FROM (SELECT pg_get_serial_sequence(:t, :c) AS s) AS q WHERE s IS NOT NULL"
            ),
            {"t": t, "c": c},
        )
    conn.commit()


_SECRET: sa.Table = Secret.__table__  # type: ignore[attr-defined]
_QUESTION: sa.Table = Question.__table__  # type: ignore[attr-defined]
_ANSWER: sa.Table = Answer.__table__  # type: ignore[attr-defined]
