"""digest.attempts and digest.retry_at: a recipient the mail server defers waits, alone.

A 4xx for one recipient used to stop the whole run, on every run. Now that digest stays
pending with the number of tries and when to try again (backoff), and the others are sent.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "digest",
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column("digest", sa.Column("retry_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE digest DROP COLUMN retry_at")
    op.execute("ALTER TABLE digest DROP COLUMN attempts")
