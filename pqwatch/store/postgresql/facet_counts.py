"""A search's matches counted by parliament, House, type, department, year tabled and status, on
PostgreSQL: the counts a search page offers to narrow by (pqwatch.store.sqlite.facet_counts
explains them; this is the same, with the search's PostgreSQL plan).

One grouped query over the matches gives every facet at once. Up to EXACT_LIMIT matches all
are counted; past it a fixed sample of 1 in k (by the same hash of the id as on SQLite, so the
same questions are sampled) is counted and scaled up, and the result says so.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from pqwatch.query import Field, filter_for, parse
from pqwatch.search.results import Facet, FacetValue, SearchFacets
from pqwatch.store.postgresql.compile import compile_query
from pqwatch.store.postgresql.search import plan, refuse_short_prefixes, rows
from pqwatch.store.sqlite.facet_counts import (
    _TYPE_LABELS,
    EXACT_LIMIT,
    SAMPLE_SIZE,
    _simple,
    _statuses,
)
from pqwatch.types import PARLIAMENTS

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
    rate = 1 if matches <= EXACT_LIMIT else math.ceil(matches / SAMPLE_SIZE)
    groups = _grouped(conn, where, params, rate)
    if rate > 1 and sum(g["n"] for g in groups) * rate <= EXACT_LIMIT:
        rate = 1  # far fewer than the count promised: count them all
        groups = _grouped(conn, where, params, rate)
    by: dict[str, Counter[Any]] = {k: Counter() for k in ("parliament", "house", "kind", "body",
                                                          "year", "status")}  # fmt: skip
    for g in groups:
        for key, counter in by.items():
            counter[g[key]] += g["n"] * rate
    facets = [
        _simple("parliament", "Parliament", by["parliament"], PARLIAMENTS),
        _simple("house", "House", by["house"]),
        _simple("type", "Type", by["kind"], _TYPE_LABELS),
        _departments(conn, by["body"], limit_per_facet),
        Facet(
            "tabled",
            "Year tabled",
            tuple(
                FacetValue(year, n, text)
                for year, n in sorted(by["year"].items(), reverse=True)
                if year and (text := filter_for("tabled", year)) is not None
            ),
        ),
        _statuses(by["status"]),
    ]
    return SearchFacets(
        query=query,
        total=sum(by["kind"].values()),
        facets=tuple(f for f in facets if f.values),
        sample_rate=rate,
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


def _departments(conn: Any, counts: Counter[Any], limit: int) -> Facet:
    """The departments with the most matches, by name; each one's count is what its dept:
    filter finds among the matches (every department whose lower-cased name holds all its
    words, as the filter's strpos(lower(name), word))."""
    ids = sorted(int(i) for i in counts if i is not None)
    if not ids or limit < 1:
        return Facet("dept", "Department", ())
    names = rows(
        conn,
        "SELECT id, name, lower(name) AS low FROM answering_body WHERE id = ANY(%(ids)s)",
        {"ids": ids},
    )
    by_name: Counter[str] = Counter()
    for r in names:
        by_name[r["name"]] += counts[r["id"]]
    values = []
    for name, _ in sorted(by_name.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]:
        text = filter_for("dept", name)
        if text is None:
            continue
        node = parse(text)
        assert isinstance(node, Field)
        found = sum(counts[r["id"]] for r in names if all(w in r["low"] for w in node.values))
        values.append(FacetValue(name, found, text))
    values.sort(key=lambda v: (-v.count, v.label))
    return Facet("dept", "Department", tuple(values), more=max(len(by_name) - limit, 0))
