"""Which questions a watch's query matches, on SQLite (pqwatch.store.matching does the rest).

A batch of new events (ingest) is matched against a private FTS5 index of just its questions:
each watch's query then runs over the batch, not the whole archive. A watch's whole-history
match (one watch) uses the archive's question_fts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from pqwatch.store.db import insert_rows, raw_cursor
from pqwatch.store.sqlite.compile import CompiledQuery, compile_query

_BATCH_FTS = "pqwatch_batch_fts"
_BATCH_IDS = "pqwatch_batch_ids"
_CHUNK = 500  # bound parameters per IN list (SQLite allows 32766; keep statements small)


def compile(query: str, batch: bool) -> CompiledQuery:
    return compile_query(query, fts_table=_BATCH_FTS if batch else "question_fts")


def find(
    conn: sa.Connection,
    compiled: Callable[[str, bool], CompiledQuery],
    watches: Sequence[Any],
    qids: list[int],
    *,
    batch: bool,
) -> list[tuple[int, int]]:
    """(watch, question) for each of these questions each watch matches, in match order."""
    cur = _cursor(conn)
    if batch:
        _make_batch_index(cur, qids)
    try:
        found: list[tuple[int, int]] = []
        for watch_id, query in watches:
            cq = compiled(query, batch)
            found += [(watch_id, q) for q in _matching_questions(cur, cq, qids, batch=batch)]
        return found
    finally:
        if batch:
            _drop_batch_index(cur)


def history_events(
    conn: sa.Connection, cq: CompiledQuery, kinds: tuple[str, ...]
) -> list[tuple[int, int, bool]]:
    """The events of the kinds matched whose question the query matches, in the archive."""
    where, params = cq.sql()
    events = conn.execute(
        sa.text(
            "SELECT e.id, e.question_id, e.historical FROM event e JOIN question q "
            f"ON q.id = e.question_id WHERE e.kind IN {kinds!r} AND ({where})"
        ),
        params,
    ).all()
    return [(r[0], r[1], bool(r[2])) for r in events]


def _cursor(conn: sa.Connection) -> sqlite3.Cursor:
    cur = raw_cursor(conn)
    assert isinstance(cur, sqlite3.Cursor)
    return cur


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


def _make_batch_index(cur: sqlite3.Cursor, qids: Sequence[int]) -> None:
    """A temporary FTS5 index, tokenised like question_fts, holding only these questions."""
    _drop_batch_index(cur)
    cur.execute(f"CREATE TEMP TABLE {_BATCH_IDS} (id INTEGER PRIMARY KEY)")
    insert_rows(cur, f"INSERT INTO temp.{_BATCH_IDS} (id)", [(q,) for q in qids])
    cur.execute(
        f"CREATE VIRTUAL TABLE temp.{_BATCH_FTS} USING fts5("
        "heading, question, answer, tokenize='porter unicode61 remove_diacritics 2', "
        "content='', columnsize=0)"  # only rowids are read from it: no copy of the texts
    )
    rows = _indexed_texts(cur, sorted(qids))
    insert_rows(cur, f"INSERT INTO temp.{_BATCH_FTS} (rowid, heading, question, answer)", rows)


def _indexed_texts(cur: sqlite3.Cursor, qids: Sequence[int]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for chunk in _chunks(qids):
        marks = ",".join("?" * len(chunk))
        rows += cur.execute(
            f"SELECT rowid, heading, question, answer FROM question_fts WHERE rowid IN ({marks})",
            list(chunk),
        ).fetchall()
    return rows


def _drop_batch_index(cur: sqlite3.Cursor) -> None:
    cur.execute(f"DROP TABLE IF EXISTS temp.{_BATCH_FTS}")
    cur.execute(f"DROP TABLE IF EXISTS temp.{_BATCH_IDS}")


def _matching_questions(
    cur: sqlite3.Cursor, cq: CompiledQuery, qids: list[int], *, batch: bool
) -> list[int]:
    """Which of these questions the query matches. With `batch`, the query was compiled for
    the batch index, which holds exactly `qids`."""
    table = cq.fts_table
    params = dict(cq.params)
    if batch:  # the batch index holds only the batch; the id table serves filter-only queries
        scope = f"q.id IN (SELECT id FROM temp.{_BATCH_IDS})"
    else:  # integers, rendered inline (any number of them)
        scope = f"q.id IN ({','.join(str(int(q)) for q in qids)})"
    if cq.match is None:
        sql = f"SELECT q.id FROM question q WHERE {scope} AND ({cq.where})"
        return [r[0] for r in cur.execute(sql, params)]
    params["__match"] = cq.match
    # CROSS JOIN: the FTS index first. Left to choose, SQLite may walk an index of `question`
    # (house = ?) over the whole archive and probe the FTS index once per row (100x slower).
    join = "CROSS JOIN" if batch else "JOIN"
    sql = (
        f"SELECT q.id FROM {table} {join} question q ON q.id = {table}.rowid "
        f"WHERE {table} MATCH :__match AND {'' if batch else scope + ' AND '}({cq.where})"
    )
    return [r[0] for r in cur.execute(sql, params)]
