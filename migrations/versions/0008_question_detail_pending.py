"""question.detail_pending: stored without the full text it needs; fetch it again.

A question whose detail request failed (a transient 404, an odd record) or that was loaded
with `backfill --no-detail` holds the list endpoint's cut text. Its list hash then matched on
every later poll, so it stayed cut for ever. Such a row is now marked: a listing never counts
it as unchanged, and each poll fetches a few of them by id until they are whole, the longest
untried first (a failed try touches updated_at). The partial index keeps that cheap. Rows stored cut before this revision are
marked here.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "question",
        sa.Column("detail_pending", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    true = "true" if op.get_bind().dialect.name == "postgresql" else "1"  # a boolean there
    op.execute(
        f"UPDATE question SET detail_pending = {true} WHERE NOT question_text_full OR EXISTS ("
        "SELECT 1 FROM answer a WHERE a.question_id = question.id AND NOT a.is_full_text)"
    )
    op.execute("CREATE INDEX ix_question_detail_pending ON question (updated_at) WHERE detail_pending")


def downgrade() -> None:
    op.execute("DROP INDEX ix_question_detail_pending")
    # Not a batch (copy-the-table) operation: that would lose ix_question_newest (0007).
    op.execute("ALTER TABLE question DROP COLUMN detail_pending")
