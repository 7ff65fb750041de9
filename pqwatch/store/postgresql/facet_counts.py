"""A search's matches counted by parliament, House, type, department, year tabled and status, on
PostgreSQL: the counts a search page offers to narrow by (pqwatch.store.sqlite.facet_counts
explains them; this is the same, with the search's PostgreSQL plan).

One grouped query over the matches gives every facet at once. Up to EXACT_LIMIT matches all
are counted; past it a fixed sample of 1 in k (by the same hash of the id as on SQLite, so the
same questions are sampled) is counted and scaled up, and the result says so.
"""

from __future__ import annotations

from typing import Any

from pqwatch.search.results import SearchFacets
from pqwatch.store.postgresql.compile import compile_query
from pqwatch.store.postgresql.search import plan, rows
from pqwatch.store.searching import (
    EXACT_LIMIT,
    SAMPLE_SIZE,
    count_facets,
    refuse_short_prefixes,
)

__all__ = ["EXACT_LIMIT", "SAMPLE_SIZE", "facet_counts"]

# The sample: ids whose golden-ratio hash (mod a prime, in bigint: no overflow) falls in 1 of
# k classes.
_SAMPLED = "mod(mod(mod(q.id::bigint, 2147483647) * 1327217885, 2147483647), %(__rate)s) = 0"


def facet_counts(
    conn: Any, query: str, *, limit_per_facet: int = 10, matches: int | None = None
) -> SearchFacets:
    """The query's matches counted by parliament, House, type, department (the
    `limit_per_facet` most frequent), year tabled and status. `matches`, the search's exact
    count when the caller has it, only sets the sampling. Raises UsageError as `search` does."""
    cq = compile_query(query)
    refuse_short_prefixes(cq)
    where, params = plan(conn, cq)
    if matches is None:
        matches = int(
            rows(conn, f"SELECT count(*) AS n FROM question q WHERE {where}", params)[0]["n"]
        )
    return count_facets(
        query,
        matches,
        lambda rate: _grouped(conn, where, params, rate),
        lambda sql: rows(conn, sql),
        limit_per_facet,
        exact_limit=EXACT_LIMIT,
        sample_size=SAMPLE_SIZE,
    )


def _grouped(conn: Any, where: str, params: dict[str, Any], rate: int) -> list[dict[str, Any]]:
    sampled = "" if rate == 1 else " AND " + _SAMPLED
    sql = (
        "SELECT q.parliament AS parliament, q.house AS house, q.kind AS kind, "
        "q.answering_body_id AS body, to_char(q.date_tabled, 'YYYY') AS year, "
        f"q.status AS status, count(*) AS n FROM question q WHERE ({where}){sampled} "
        "GROUP BY 1, 2, 3, 4, 5, 6"
    )
    return rows(conn, sql, {**params, **({"__rate": rate} if rate > 1 else {})})
