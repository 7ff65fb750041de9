"""A written statement awaits no answer: its status is "made", never "unanswered" (rows
stored before this revision are set so; an unchanged statement is never written again).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("UPDATE question SET status = 'made' WHERE kind = 'statement'")


def downgrade() -> None:
    op.execute("UPDATE question SET status = 'unanswered' WHERE kind = 'statement'")
