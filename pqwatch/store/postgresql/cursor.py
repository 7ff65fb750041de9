"""psycopg 3's cursor taking the store's plain SQL as written for sqlite3.

The store's hot paths (ingest, matching, digest reads) run plain SQL on the DBAPI cursor of the
session's connection, because SQLAlchemy's per-statement overhead dominated them. That SQL is
standard but for the placeholder: sqlite3 takes `?`, PostgreSQL `$1, $2...`. Rewriting the
placeholder here keeps one copy of each statement for both databases; what really differs (the
full-text index) lives in each dialect's own module. The statements go to a RawCursor, which
passes `$n` to the server as it is: psycopg's usual cursor parses `%s` out of every statement
on every call, and a multi-row INSERT holds thousands (half of ingest's time, bench.postgres).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

# The most parameters one statement may bind (the wire protocol counts them in 16 bits).
MAX_PARAMS = 65_535


_MARK = re.compile(r"\?")


@lru_cache(maxsize=1024)
def _numbered(sql: str) -> str:
    # No statement of the store has a `?` inside a string literal.
    n = itertools.count(1)
    return _MARK.sub(lambda _: f"${next(n)}", sql)


class QmarkCursor:
    """The part of sqlite3.Cursor the store uses, over a psycopg RawCursor."""

    def __init__(self, cur: Any) -> None:
        self._cur = cur

    @property
    def connection(self) -> Any:
        return self._cur.connection

    @property
    def description(self) -> Any:
        return self._cur.description

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> QmarkCursor:
        if params:
            self._cur.execute(_numbered(sql), tuple(params))
        else:
            self._cur.execute(sql)
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> QmarkCursor:
        self._cur.executemany(_numbered(sql), rows)
        return self

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self._cur.fetchall())

    def __iter__(self) -> Iterator[Any]:
        # Statements with no result (an UPDATE) iterate as empty, as sqlite3's do.
        if self._cur.description is None:
            return iter(())
        return iter(self._cur)

    def close(self) -> None:
        self._cur.close()
