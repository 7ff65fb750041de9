"""Filter values kept as words in the full-text index, so that a search with filters narrows
inside the index instead of testing each word match against the question table.

Each question's index row has a ``facets`` column of made-up words: its House, status,
department and the year and month it was tabled and answered (``hlords sholding d17 ty2024
tm202403 ay2024 am202404``). A query such as ``school house:lords tabled:2023-01..2023-03``
then asks FTS5 for ``school AND facets:(hlords) AND facets:(tm202301 OR tm202302 OR
tm202303)``. The SQL conditions stay as they were, so the words only ever narrow the search
(a month word stands for the whole month; the exact days are still checked in SQL).
"""

from __future__ import annotations

import sqlite3
from datetime import date
from typing import TYPE_CHECKING, Any

from pqwatch.query import DateRange, Field
from pqwatch.store.sqlite.compile import CompiledQuery
from pqwatch.store.sqlite.rows import rows

if TYPE_CHECKING:
    import sqlalchemy as sa

# Past this many words a filter is left to SQL alone (a long OR costs more than it saves).
MAX_WORDS = 60
_PREFIX = {"tabled": "t", "answered": "a"}
_COLUMN = {"tabled": "date_tabled", "answered": "date_answered"}
_NOTHING = '"dnone"'  # a department filter that names no department matches nothing


def facet_text(
    house: str, status: str, body_id: int | None, tabled: date, answered: date | None
) -> str:
    """The facets column of one question (migration 0005 builds the same words in SQL)."""
    words = [f"h{house.lower()}", f"s{status}"]
    if body_id is not None:
        words.append(f"d{body_id}")
    words += [f"ty{tabled.year}", f"tm{tabled.year}{tabled.month:02d}"]
    if answered is not None:
        words += [f"ay{answered.year}", f"am{answered.year}{answered.month:02d}"]
    return " ".join(words)


def facet_match(conn: sa.Connection | sqlite3.Connection, cq: CompiledQuery) -> str | None:
    """An FTS5 expression over the facets column implied by the query's top-level filters,
    or None when there is none to use."""
    groups = []
    for f in cq.facets:
        words = _words(conn, f)
        if words is not None:
            groups.append(f"facets : ({' OR '.join(words)})" if words else _NOTHING)
    return " AND ".join(groups) if groups else None


def _words(conn: sa.Connection | sqlite3.Connection, f: Field | DateRange) -> list[str] | None:
    if isinstance(f, DateRange):
        return _date_words(conn, f) if f.name in _PREFIX else None
    if f.name == "house":
        return [f'"h{f.values[0].lower()}"']
    if f.name == "status":
        return [f'"s{v}"' for v in f.values]
    if f.name == "dept":
        words = {f"w{i}": word for i, word in enumerate(f.values)}
        condition = " AND ".join(f"instr(lower(name), :{w}) > 0" for w in words)
        ids = _scalars(conn, f"SELECT id FROM answering_body WHERE {condition}", words)
        return [f'"d{i}"' for i in ids] if len(ids) <= MAX_WORDS else None
    return None


def _date_words(conn: sa.Connection | sqlite3.Connection, f: DateRange) -> list[str] | None:
    column = _COLUMN[f.name]
    start, end = f.start, f.end
    # An open end is the archive's first or last date (read from the column's index).
    if start is None:
        start = _day(_scalars(conn, f"SELECT min({column}) FROM question", {}))
    if end is None:
        end = _day(_scalars(conn, f"SELECT max({column}) FROM question", {}))
    if start is None or end is None or start > end:
        return None
    p = _PREFIX[f.name]
    words = []
    for year in range(start.year, end.year + 1):
        if start <= date(year, 1, 1) and date(year, 12, 31) <= end:
            words.append(f'"{p}y{year}"')
            continue
        first = start.month if year == start.year else 1
        last = end.month if year == end.year else 12
        words += [f'"{p}m{year}{month:02d}"' for month in range(first, last + 1)]
    return words if len(words) <= MAX_WORDS else None


def month_match(year: int, month: int) -> str:
    """The questions whose answer, or tabling, falls in this month (a superset of those
    whose "newest first" date does: an answered question's tabling month is in it too)."""
    return f'facets : ("am{year:04d}{month:02d}" OR "tm{year:04d}{month:02d}")'


def _day(values: list[Any]) -> date | None:
    value = values[0] if values else None
    return date.fromisoformat(str(value)[:10]) if value else None


def _scalars(
    conn: sa.Connection | sqlite3.Connection, sql: str, params: dict[str, Any]
) -> list[Any]:
    return [next(iter(r.values())) for r in rows(conn, sql, params)]
