"""The words of a watch's query that matched a question, as FTS5's highlight() marks them
(the PostgreSQL counterpart: pqwatch.store.postgresql.highlight)."""

from __future__ import annotations

import sqlite3
from functools import lru_cache

import sqlalchemy as sa

from pqwatch.search.results import MARK_END, MARK_START, marked_terms
from pqwatch.store.db import raw_cursor
from pqwatch.store.sqlite.compile import compile_query


@lru_cache(maxsize=512)
def _match_of(query: str) -> str | None:
    """A watch's FTS5 expression, compiled once a process (a digest run asks per question)."""
    return compile_query(query).match


def matched_words(
    conn: sa.Connection | sqlite3.Connection, query: str, qid: int
) -> tuple[str, ...]:
    """The words of a watch's query that FTS5's highlight() marks in a question's heading,
    question and answer, lower-cased, distinct, in order of appearance (none when the query
    has no words, or no longer matches)."""
    match = _match_of(query)
    if match is None:
        return ()
    marks = ", ".join(f"highlight(question_fts, {i}, ?, ?)" for i in range(3))
    row = (
        raw_cursor(conn)
        .execute(
            f"SELECT {marks} FROM question_fts WHERE question_fts MATCH ? AND rowid = ?",
            (*(MARK_START, MARK_END) * 3, match, qid),
        )
        .fetchone()
    )
    return marked_terms(*row) if row else ()
