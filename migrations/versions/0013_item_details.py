"""An item's source-specific facts (an FOI request's law, url_names and event history) in
one JSON column beside the common ones.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN: no table rebuild, triggers and expression indexes untouched.
    op.add_column("question", sa.Column("details_json", sa.String(), nullable=True))


def downgrade() -> None:
    op.drop_column("question", "details_json")  # SQLite >= 3.35: no table rebuild
