"""one-click unsubscribe: a secret token per subscriber, and who unsubscribed from what

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("unsubscribed_at", sa.DateTime(), nullable=True))
        batch_op.create_unique_constraint("uq_subscriber_token", ["token"])
    with op.batch_alter_table("subscription", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unsubscribed_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscription", schema=None) as batch_op:
        batch_op.drop_column("unsubscribed_at")
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.drop_constraint("uq_subscriber_token", type_="unique")
        batch_op.drop_column("unsubscribed_at")
        batch_op.drop_column("token")
