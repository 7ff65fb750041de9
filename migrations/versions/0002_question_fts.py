"""full-text index over heading, question and latest answer

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

The FTS5 table is not a model (Alembic cannot describe virtual tables); env.py leaves it out
of autogenerate. Its rowid is question.id; the store keeps it in step in the same transaction
as every question or answer write.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
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
    op.execute("DROP TABLE question_fts")
