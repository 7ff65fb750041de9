"""watch_match.matched_terms_json goes: the words that matched are marked by FTS5's
highlight() when a digest shows the match, not worked out for every match at ingest (that
needed a re-implementation of FTS5's query reading and of the Porter stemmer).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE watch_match DROP COLUMN matched_terms_json")


def downgrade() -> None:
    op.add_column(
        "watch_match",
        sa.Column("matched_terms_json", sa.String(), nullable=False, server_default="[]"),
    )
