"""What storing a page of questions does that is PostgreSQL's own.

Ids: the writer numbers a page's new questions, answers and events itself, on from the largest
stored (their rows refer to each other before any is inserted). SQLite's write lock makes that
safe; here a transaction-level advisory lock does the same for pages, and the tables' sequences
are moved past the ids used, so that an insert elsewhere (a copied archive, a test) never
collides.

The full-text index is the column question.search_vector: the same texts as SQLite's
question_fts gets (the heading, the question as normalize_for_search left it and the latest
answer, stemmed with the 'english' configuration as weights A, B and C) and the facet words
with 'simple' (codes, not English) as weight D. Migrations 0002 and 0005 build the same
document from stored rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pqwatch.store.db import Cursor, insert_rows

IndexRow = tuple[int, str, str, str, str]

# Held by a page's transaction while it numbers and inserts rows ("pqin").
PAGE_LOCK = 0x7071696E
# One question's document from the values heading h, question q, answer a, facets f.
DOCUMENT = (
    "setweight(to_tsvector('english', v.h), 'A') || setweight(to_tsvector('english', v.q), 'B')"
    " || setweight(to_tsvector('english', v.a), 'C') || setweight(to_tsvector('simple', v.f), 'D')"
)
# The same document from four bound values, for a row being inserted.
_DOCUMENT_OF_VALUES = (
    "setweight(to_tsvector('english', ?::text), 'A') || setweight(to_tsvector('english', "
    "?::text), 'B') || setweight(to_tsvector('english', ?::text), 'C') || "
    "setweight(to_tsvector('simple', ?::text), 'D')"
)
_PER_STATEMENT = 1000


def begin_page(cur: Cursor) -> None:
    cur.execute(f"SELECT pg_advisory_xact_lock({PAGE_LOCK})")


def insert_questions(
    cur: Cursor, head: str, questions: Sequence[Sequence[Any]], index: Sequence[IndexRow]
) -> None:
    """Insert new questions (`head` is the INSERT naming their columns) with their documents
    in the same rows: setting them by an UPDATE afterwards wrote every row, and all of its
    indexes, twice."""
    if not questions:
        return
    texts = {row[0]: row[1:] for row in index}
    width = len(questions[0])
    values = ",".join("?" * width)
    insert_rows(
        cur,
        head.removesuffix(")") + ", search_vector)",
        [(*q, *texts[q[0]]) for q in questions],
        template=f"({values}, {_DOCUMENT_OF_VALUES})",
    )


def write_index(cur: Cursor, rows: Sequence[IndexRow], stored: Sequence[int] = ()) -> None:
    """Set the document of each of these questions (a column: new and stored alike)."""
    for i in range(0, len(rows), _PER_STATEMENT):
        chunk = rows[i : i + _PER_STATEMENT]
        values = ",".join(["(?::bigint, ?::text, ?::text, ?::text, ?::text)"] * len(chunk))
        cur.execute(
            f"UPDATE question SET search_vector = {DOCUMENT} FROM (VALUES {values}) "
            "AS v(id, h, q, a, f) WHERE question.id = v.id",
            [x for row in chunk for x in row],
        )


def end_page(cur: Cursor, last_ids: dict[str, int]) -> None:
    """Move each table's id sequence past the largest id the page used."""
    for table, last in last_ids.items():
        # `last` is past every stored id (the page numbered on from the largest), so this
        # never sets a sequence back onto an id in use.
        cur.execute("SELECT setval(pg_get_serial_sequence(?, 'id'), ?)", (table, last))
