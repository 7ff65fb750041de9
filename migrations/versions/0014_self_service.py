"""Self-service subscriptions: where a watch and a subscriber come from (config.toml or the
web site), a web subscriber's confirmation and pause, personal watches' owners, the signing
secret of confirmation and manage links, and the counted requests behind the rate limits.

Plain ADD COLUMNs: no table rebuild (rebuilding `watch` or `subscriber` drops the old table,
which with foreign keys on cascades to watch_match, subscription and delivery). So
watch.owner_id has no foreign key. Existing rows are the operator's: origin 'config'.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08
"""

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "watch", sa.Column("origin", sa.String(), nullable=False, server_default="config")
    )
    op.add_column("watch", sa.Column("owner_id", sa.Integer(), nullable=True))
    op.create_index("ix_watch_owner_id", "watch", ["owner_id"])
    op.add_column(
        "subscriber", sa.Column("origin", sa.String(), nullable=False, server_default="config")
    )
    op.add_column("subscriber", sa.Column("confirmed_at", sa.DateTime(), nullable=True))
    op.add_column("subscriber", sa.Column("paused_at", sa.DateTime(), nullable=True))
    op.add_column("subscriber", sa.Column("confirm_nonce", sa.String(), nullable=True))
    op.create_table(
        "rate_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rate_event_key", "rate_event", ["kind", "key", "created_at"])
    secret = op.create_table(
        "secret",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    # Generated here, once, so that a read-only copy has it too; never in config.toml.
    now = datetime.now(UTC).replace(tzinfo=None)
    op.bulk_insert(secret, [{"name": "signing", "value": secrets.token_hex(32), "created_at": now}])


def downgrade() -> None:
    op.drop_table("secret")
    op.drop_index("ix_rate_event_key", table_name="rate_event")
    op.drop_table("rate_event")
    op.drop_column("subscriber", "confirm_nonce")  # SQLite >= 3.35: no table rebuild
    op.drop_column("subscriber", "paused_at")
    op.drop_column("subscriber", "confirmed_at")
    op.drop_column("subscriber", "origin")
    op.drop_index("ix_watch_owner_id", table_name="watch")
    op.drop_column("watch", "owner_id")
    op.drop_column("watch", "origin")
