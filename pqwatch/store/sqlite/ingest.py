"""What storing a page of questions does that is SQLite's own: the full-text index is FTS5's
question_fts (rowid = question.id). The PostgreSQL counterpart is pqwatch.store.postgresql.ingest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pqwatch.store.db import Cursor, insert_rows

# (question id, heading, question text, latest answer text, facet words)
IndexRow = tuple[int, str, str, str, str]


def begin_page(cur: Cursor) -> None:
    """Nothing to do: the page's IMMEDIATE transaction holds the database's only write lock,
    so new ids counted on from the largest stored one are the page's alone."""


def insert_questions(
    cur: Cursor, head: str, questions: Sequence[Sequence[Any]], index: Sequence[IndexRow]
) -> None:
    """Insert new questions (`head` is the INSERT naming their columns) and index them."""
    insert_rows(cur, head, questions)
    write_index(cur, index, ())


def write_index(cur: Cursor, rows: Sequence[IndexRow], stored: Sequence[int]) -> None:
    """Index these questions; `stored` are those already indexed, whose old rows go first
    (an FTS5 table has no upsert)."""
    for qid in stored:
        cur.execute("DELETE FROM question_fts WHERE rowid = ?", (qid,))
    insert_rows(cur, "INSERT INTO question_fts (rowid, heading, question, answer, facets)", rows)


def end_page(cur: Cursor, last_ids: dict[str, int]) -> None:
    """Nothing to do: SQLite's next rowid is always past the largest stored."""
