"""job_lease: when each scheduled job of `pqwatch run` last started and finished, and in which
process (issue 19). Several daemons on one PostgreSQL database read it under the job's advisory
lock: a slot another daemon has done is not done again, and a job started but never finished by
a process whose lock is gone was interrupted and is taken over. SQLite has one daemon per
database (a file lock) and never writes it; the table is made there too, so that both databases
have the same schema.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-20
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_lease",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("holder", sa.String(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("job_lease")
