"""Every UK parliament in one archive: a question row says which parliament it belongs to
and what kind of item it is (a written question or a written statement); a source keeps its
own state (a Scottish year's ETag, when it was last fetched) beside its cursor; and an item
can be found by its parliament's own reference (S5W-02060, WQ91968, HCWS123) alone.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN with a constant default: no table rebuild on SQLite, so the expression
    # index of 0007 and the full-text triggers are untouched.
    op.add_column(
        "question",
        sa.Column("parliament", sa.String(), nullable=False, server_default="westminster"),
    )
    op.add_column(
        "question", sa.Column("kind", sa.String(), nullable=False, server_default="question")
    )
    # `show S5W-02060` looks the reference up in any case (an expression index, as in 0007).
    op.create_index("ix_question_reference", "question", [sa.text("upper(uin)")])
    op.add_column("source_state", sa.Column("state_json", sa.String(), nullable=True))


def downgrade() -> None:
    op.drop_column("source_state", "state_json")
    op.drop_index("ix_question_reference", table_name="question")
    op.drop_column("question", "kind")
    op.drop_column("question", "parliament")
