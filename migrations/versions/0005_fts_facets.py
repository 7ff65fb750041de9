"""a facets column in the full-text index: House, status, department and the tabled and
answered year and month as made-up words, so that filtered searches narrow inside the index
(pqwatch.store.sqlite.facets). FTS5 cannot add a column, so the index is built again.

On PostgreSQL the words are added to question.search_vector with weight D, parsed with the
'simple' configuration: they are codes, not English, and must not be stemmed (hcommons).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TOKENIZE = "tokenize='porter unicode61 remove_diacritics 2'"

# The same words as pqwatch.store.sqlite.facets.facet_text (a test holds the two together).
FACETS_SQL = (
    "'h' || lower(q.house) || ' s' || q.status"
    " || coalesce(' d' || q.answering_body_id, '')"
    " || ' ty' || substr(q.date_tabled, 1, 4)"
    " || ' tm' || substr(q.date_tabled, 1, 4) || substr(q.date_tabled, 6, 2)"
    " || coalesce(' ay' || substr(q.date_answered, 1, 4)"
    " || ' am' || substr(q.date_answered, 1, 4) || substr(q.date_answered, 6, 2), '')"
)


# The same words from PostgreSQL's dates.
PG_FACETS_SQL = (
    "'h' || lower(q.house) || ' s' || q.status"
    " || coalesce(' d' || q.answering_body_id, '')"
    " || ' ty' || to_char(q.date_tabled, 'YYYY') || ' tm' || to_char(q.date_tabled, 'YYYYMM')"
    " || coalesce(' ay' || to_char(q.date_answered, 'YYYY')"
    " || ' am' || to_char(q.date_answered, 'YYYYMM'), '')"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE question q SET search_vector = "
            f"search_vector || setweight(to_tsvector('simple', {PG_FACETS_SQL}), 'D')"
        )
        return
    op.execute(
        f"CREATE VIRTUAL TABLE question_fts_new USING fts5(heading, question, answer, facets, "
        f"{TOKENIZE})"
    )
    op.execute(
        "INSERT INTO question_fts_new (rowid, heading, question, answer, facets) "
        f"SELECT f.rowid, f.heading, f.question, f.answer, {FACETS_SQL} "
        "FROM question_fts f JOIN question q ON q.id = f.rowid"
    )
    op.execute("DROP TABLE question_fts")
    op.execute("ALTER TABLE question_fts_new RENAME TO question_fts")
    # One merged index: a bulk insert leaves many segments, and every look-up visits each
    # (about 15 s for 600,000 questions, once).
    op.execute("INSERT INTO question_fts (question_fts) VALUES ('optimize')")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE question SET search_vector = ts_filter(search_vector, '{a,b,c}')")
        return
    op.execute(f"CREATE VIRTUAL TABLE question_fts_old USING fts5(heading, question, answer, {TOKENIZE})")
    op.execute(
        "INSERT INTO question_fts_old (rowid, heading, question, answer) "
        "SELECT rowid, heading, question, answer FROM question_fts"
    )
    op.execute("DROP TABLE question_fts")
    op.execute("ALTER TABLE question_fts_old RENAME TO question_fts")
