"""full-text index: merge segments 8 at a time instead of 4 (FTS5's automerge setting).

A backfill adds the index in many transactions, and each leaves a segment that FTS5 merges
with its neighbours as it goes. Merging eight at a time instead of four does a fifth less
merge work per question stored (bench/ingest.py) and leaves look-ups as fast: a search
visits a few more segments, which are merged all the same as the archive grows.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        return  # an FTS5 setting: a GIN index has nothing like it
    op.execute("INSERT INTO question_fts (question_fts, rank) VALUES ('automerge', 8)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        return
    op.execute("INSERT INTO question_fts (question_fts, rank) VALUES ('automerge', 4)")
