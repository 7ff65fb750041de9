"""Alembic environment for pqwatch.

pqwatch runs migrations itself (`pqwatch init`, and every command on start-up), handing over
its own connection through `config.attributes["connection"]`; run by hand, Alembic builds an
engine from the URL in its config.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context
from sqlmodel import SQLModel

import pqwatch.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)

config = context.config
target_metadata = SQLModel.metadata

# Objects created by hand in migrations (the FTS index and its shadow tables) are not models.
UNMANAGED_PREFIXES = ("question_fts", "sqlite_")
# Likewise PostgreSQL's full-text column (0002) and the expression indexes of 0007 and 0011,
# which PostgreSQL reflects (SQLite does not) and the models cannot declare.
UNMANAGED_COLUMNS = {"search_vector"}
UNMANAGED_INDEXES = {"ix_question_search", "ix_question_newest", "ix_question_reference"}


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    if type_ == "table" and name and name.startswith(UNMANAGED_PREFIXES):
        return False
    if type_ == "column" and name in UNMANAGED_COLUMNS:
        return False
    if type_ == "index" and name in UNMANAGED_INDEXES:
        return False
    return True


def render_item(type_, obj, autogen_context):  # type: ignore[no-untyped-def]
    """Render model-specific column types as plain SQLAlchemy ones, so that old migrations
    never import pqwatch code that may later change."""
    if type_ == "type":
        name = type(obj).__name__
        if name == "AutoString":
            return "sa.String()"
        if name == "UTCDateTime":
            return "sa.DateTime()"
    return False


def run_migrations(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies tables
        include_object=include_object,
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///pqwatch.db")
    with engine.connect() as conn:
        run_migrations(conn)
        conn.commit()
