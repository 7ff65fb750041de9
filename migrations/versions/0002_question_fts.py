"""full-text index over heading, question and latest answer

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

The FTS5 table is not a model (Alembic cannot describe virtual tables); env.py leaves it out
of autogenerate. Its rowid is question.id; the store keeps it in step in the same transaction
as every question or answer write.

On PostgreSQL the index is a tsvector column on question, question.search_vector, with a GIN
index, English stemming (as FTS5's porter tokenizer) and the three texts as weights A, B and C:
ts_rank's default weights (1.0, 0.4, 0.2) are in the ratio of search's bm25 weights (5, 2, 1).
Also left out of autogenerate; the store is to keep it in step, as it does FTS5's table.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The document of one question q, as FTS5's columns hold it (PostgreSQL).
PG_DOCUMENT = (
    "setweight(to_tsvector('english', coalesce(q.heading, '')), 'A')"
    " || setweight(to_tsvector('english', replace(q.question_text, chr(160), ' ')), 'B')"
    " || setweight(to_tsvector('english', coalesce((SELECT a.answer_text FROM answer a"
    " WHERE a.question_id = q.id ORDER BY a.version DESC LIMIT 1), '')), 'C')"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE question ADD COLUMN search_vector tsvector")
        op.execute(f"UPDATE question q SET search_vector = {PG_DOCUMENT}")
        op.execute("CREATE INDEX ix_question_search ON question USING gin (search_vector)")
        return
    op.execute(
        "CREATE VIRTUAL TABLE question_fts USING fts5("
        "heading, question, answer, tokenize='porter unicode61 remove_diacritics 2')"
    )
    op.execute(
        """
        INSERT INTO question_fts (rowid, heading, question, answer)
        SELECT q.id, coalesce(q.heading, ''), replace(q.question_text, char(160), ' '),
               coalesce((SELECT a.answer_text FROM answer a WHERE a.question_id = q.id
                         ORDER BY a.version DESC LIMIT 1), '')
        FROM question q
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_question_search")
        op.execute("ALTER TABLE question DROP COLUMN search_vector")
        return
    op.execute("DROP TABLE question_fts")
