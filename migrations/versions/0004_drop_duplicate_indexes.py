"""drop the question_id indexes of answer and event, and the watch_id index of watch_match:
their unique constraints begin with the same column and already serve those lookups, and
every extra index slows ingest and matching

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_answer_question_id", table_name="answer")
    op.drop_index("ix_event_question_id", table_name="event")
    op.drop_index("ix_watch_match_watch_id", table_name="watch_match")


def downgrade() -> None:
    op.create_index("ix_watch_match_watch_id", "watch_match", ["watch_id"], unique=False)
    op.create_index("ix_event_question_id", "event", ["question_id"], unique=False)
    op.create_index("ix_answer_question_id", "answer", ["question_id"], unique=False)
