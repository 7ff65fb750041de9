"""question: an index on the date "newest first" sorts by, coalesce(date_answered, date_tabled).

A search with filters and no words ("house:lords", "NOT care") sorted every question it
matched to show the newest 20: 0.3-0.6 s on 600,000 questions. Walking this index newest
first stops after the page (house:lords 226 ms -> 0.1 ms). It costs an index entry per
question stored.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX ix_question_newest ON question (coalesce(date_answered, date_tabled), id)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_question_newest")
