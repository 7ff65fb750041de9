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

import math
import sqlite3
from collections import Counter
from typing import TYPE_CHECKING, Any

from pqwatch.query import STATUS_FILTERS, Field, filter_for, parse
from pqwatch.search.results import Facet, FacetValue, SearchFacets
from pqwatch.store.sqlite.compile import CompiledQuery, compile_query
from pqwatch.store.sqlite.facets import facet_match
from pqwatch.store.sqlite.rows import rows
from pqwatch.store.sqlite.search import refuse_short_prefixes
from pqwatch.types import PARLIAMENTS

if TYPE_CHECKING:
    import sqlalchemy as sa

# Counted whole up to this many matches (the grouped query costs about 2 us a match: reading
# the question row half of it, grouping the rest).
EXACT_LIMIT = 10_000
# Past it, 1 in ceil(matches / SAMPLE_SIZE) is counted: 2,500 to 5,000 of them (a value with
# 1 % of the matches is then off by about 14 % either way, one time in three).
SAMPLE_SIZE = 5_000
# The sample: ids whose golden-ratio hash (mod a prime, no overflow) falls in 1 of k classes,
# so no period in the order items were stored can bias it.
_SAMPLED = "(({rowid} % 2147483647) * 1327217885 % 2147483647) % :__rate = 0"
_FTS_FIRST = "question_fts CROSS JOIN question q ON q.id = question_fts.rowid"
_TYPE_LABELS = {"question": "Written questions", "statement": "Written statements",
                "foi": "FOI requests"}  # fmt: skip


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
    rate = 1 if estimate <= EXACT_LIMIT else math.ceil(estimate / SAMPLE_SIZE)
    groups = _grouped(conn, source, where, params, rowid, rate)
    if rate > 1 and sum(g["n"] for g in groups) * rate <= EXACT_LIMIT:
        # Far fewer than the index promised (filters it cannot narrow by): count them all.
        rate = 1
        groups = _grouped(conn, source, where, params, rowid, rate)
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


def _simple(
    name: str, label: str, counts: Counter[Any], labels: dict[str, str] | None = None
) -> Facet:
    """A facet whose values are stored values, most frequent first (those the query
    language can filter by)."""
    return Facet(
        name,
        label,
        tuple(
            FacetValue((labels or {}).get(value, value), n, text)
            for value, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
            if value and (text := filter_for(name, value)) is not None
        ),
    )


def _statuses(counts: Counter[Any]) -> Facet:
    """The statuses as `status:` names them (answered includes corrected)."""
    found = [
        FacetValue(name.replace("_", " ").capitalize(), n, f"status:{name}")
        for name, stored in STATUS_FILTERS.items()
        if (n := sum(counts[s] for s in stored))
    ]
    return Facet("status", "Status", tuple(sorted(found, key=lambda v: -v.count)))


def _departments(
    conn: sa.Connection | sqlite3.Connection, counts: Counter[Any], limit: int
) -> Facet:
    """The departments (FOI: authorities) with the most matches, by name. Each one's count
    is what its dept: filter finds among the matches: every department whose name, as
    SQLite lower-cases it (the filter's `instr(lower(name), word)`), holds all its words."""
    ids = sorted(int(i) for i in counts if i is not None)
    if not ids or limit < 1:
        return Facet("dept", "Department", ())
    names = rows(
        conn,
        "SELECT id, name, lower(name) AS low FROM answering_body "
        f"WHERE id IN ({', '.join(map(str, ids))})",
        {},
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
