"""One query on either kind of connection the search stage is given: a plain sqlite3 one
(`pqwatch search` starts without importing SQLAlchemy) or an SQLAlchemy one."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlalchemy as sa


def rows(conn: sa.Connection | sqlite3.Connection, sql: str, params: Any) -> list[dict[str, Any]]:
    """The result rows as dicts (column name -> value)."""
    if isinstance(conn, sqlite3.Connection):
        cur = conn.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    import sqlalchemy as sa

    return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]
