"""A search's matches counted by parliament, House, type, department, year tabled and status:
the counts a search page offers to narrow by, each with the filter that narrows to it.

One grouped query over the matches (the same FTS5 match and SQL conditions as the search,
word matches first) gives every facet at once; departments are then grouped by name and
years by tabling date in Python. Up to EXACT_LIMIT matches (20-30 ms on 600,000 questions)
everything is counted. Past it the cost would grow with the matches (0.55 s for a word in
two thirds of the archive), so a fixed sample of at most SAMPLE_SIZE of them is counted and
scaled up, and the result says so (`sample_rate`). The sample is 1 in k by a hash of the id,
tested on the full-text index's rowid before any question row is read.

A value's count is what its filter finds: a department's count is that of every department
whose name holds all the words of its filter (dept: matches names by words), as the search
would find them.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from pqwatch.search.results import SearchFacets
from pqwatch.store.searching import (
    EXACT_LIMIT,
    SAMPLE_SIZE,
    count_facets,
    refuse_short_prefixes,
)
from pqwatch.store.sqlite.compile import CompiledQuery, compile_query
from pqwatch.store.sqlite.facets import facet_match
from pqwatch.store.sqlite.rows import rows

if TYPE_CHECKING:
    import sqlalchemy as sa

# EXACT_LIMIT and SAMPLE_SIZE (pqwatch.store.searching) are read here, so a test may change
# them on this module.
__all__ = ["EXACT_LIMIT", "SAMPLE_SIZE", "facet_counts"]

# The sample: ids whose golden-ratio hash (mod a prime, no overflow) falls in 1 of k classes,
# so no period in the order items were stored can bias it.
_SAMPLED = "(({rowid} % 2147483647) * 1327217885 % 2147483647) % :__rate = 0"
_FTS_FIRST = "question_fts CROSS JOIN question q ON q.id = question_fts.rowid"


def facet_counts(
    conn: sa.Connection | sqlite3.Connection,
    query: str,
    *,
    limit_per_facet: int = 10,
    matches: int | None = None,
) -> SearchFacets:
    """The query's matches counted by parliament, House, type, department (the
    `limit_per_facet` most frequent), year tabled and status. `matches`, the search's exact
    count when the caller has it, saves counting them first (it only sets the sampling:
    the counts never depend on it). Raises UsageError as `search` does for a malformed query
    or a prefix too short to search."""
    cq = compile_query(query)
    refuse_short_prefixes(cq)
    source, where, params, rowid, estimate = _matches(conn, cq, matches)
    return count_facets(
        query,
        estimate,
        lambda rate: _grouped(conn, source, where, params, rowid, rate),
        lambda sql: rows(conn, sql, {}),
        limit_per_facet,
        exact_limit=EXACT_LIMIT,
        sample_size=SAMPLE_SIZE,
    )


def _matches(
    conn: sa.Connection | sqlite3.Connection, cq: CompiledQuery, matches: int | None
) -> tuple[str, str, dict[str, Any], str, int]:
    """Where the matches come from (the search's own plan), and how many there are at most:
    `matches` when given; else exactly, without words; the index's count of the words (and
    the filters' facet words), with them."""
    params = dict(cq.params)
    if cq.match is None:
        # As the search: the question table's indexes, or the index's filter words when
        # two or more filters have them.
        facets = facet_match(conn, cq) if len(cq.facets) > 1 else None
        if facets is None:
            source, where, rowid = "question q", cq.where, "q.id"
        else:
            source, rowid = _FTS_FIRST, "question_fts.rowid"
            where = f"question_fts MATCH :__match AND ({cq.where})"
            params["__match"] = facets
        sql = f"SELECT count(*) AS n FROM {source} WHERE {where}"
    else:
        facets = facet_match(conn, cq)
        params["__match"] = cq.match if facets is None else f"({cq.match}) AND {facets}"
        source, rowid = _FTS_FIRST, "question_fts.rowid"
        where = f"question_fts MATCH :__match AND ({cq.where})"
        sql = "SELECT count(*) AS n FROM question_fts WHERE question_fts MATCH :__match"
    if matches is None:
        matches = int(rows(conn, sql, params)[0]["n"])
    return source, where, params, rowid, matches


def _grouped(
    conn: sa.Connection | sqlite3.Connection,
    source: str,
    where: str,
    params: dict[str, Any],
    rowid: str,
    rate: int,
) -> list[dict[str, Any]]:
    sampled = "" if rate == 1 else " AND " + _SAMPLED.format(rowid=rowid)
    sql = (
        "SELECT q.parliament AS parliament, q.house AS house, q.kind AS kind, "
        "q.answering_body_id AS body, substr(q.date_tabled, 1, 4) AS year, q.status AS status, "
        f"count(*) AS n FROM {source} WHERE ({where}){sampled} GROUP BY 1, 2, 3, 4, 5, 6"
    )
    return rows(conn, sql, {**params, **({"__rate": rate} if rate > 1 else {})})
