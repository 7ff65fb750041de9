"""Archive search on SQLite: FTS5, bm25 and the facet words. The result types are the search
stage's (pqwatch.search.results); question look-up and watch figures, the same on every
database, are pqwatch.store.searching's.

Every query has a LIMIT. Relevance (bm25) must score every match, so it is used only while
the match count is moderate; past that, results come newest first and the result says so.
Each path visits a bounded number of rows, so no query is slow however common its words.
"""

from __future__ import annotations

import sqlite3
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any

# SQLAlchemy is imported by the functions that take an SQLAlchemy connection: `search` also
# accepts a plain sqlite3 connection, so `pqwatch search` starts without it.
if TYPE_CHECKING:
    import sqlalchemy as sa

from pqwatch.search.results import MARK_END, MARK_START, SearchResult, marked_terms
from pqwatch.store import searching
from pqwatch.store.db import raw_cursor
from pqwatch.store.searching import (
    FILTERED_SCAN_CAP,
    HIT_COLUMNS,
    HIT_JOINS,
    MIN_PREFIX,
    RELEVANCE_LIMIT,
    check_search,
    find_question,
    hit_from_row,
    lead,
    question_story,
    refuse_short_prefixes,
    watch_stats,
)
from pqwatch.store.searching import NEWEST_KEY as _NEWEST_KEY
from pqwatch.store.sqlite.compile import CompiledQuery, bind_day, compile_query, placeholder
from pqwatch.store.sqlite.facets import facet_match, month_match
from pqwatch.store.sqlite.rows import rows as _rows

# What every dialect's search module has (the service picks the module by dialect).
__all__ = [
    "FILTERED_SCAN_CAP",
    "MIN_PREFIX",
    "RELEVANCE_LIMIT",
    "find_question",
    "matched_words",
    "preview_watch",
    "question_story",
    "refuse_short_prefixes",
    "search",
    "watch_stats",
]

# RELEVANCE_LIMIT: bm25 scores every match (about 3 us each), so past it a page comes newest
# first. FILTERED_SCAN_CAP: word matches with filters are counted exactly and ranked up to it
# (see _filtered). Both are read here, so a test may change them on this module.
# Newest first past this many word matches: a month at a time (_newest_by_month) rather
# than sorting them all.
MONTH_WALK_FROM = 2_000
# bm25 weights for heading, question, answer: a word in the heading says most about a question.
# The facets column (filter words, pqwatch.store.sqlite.facets) adds nothing to a question's rank.
BM25 = "bm25(question_fts, 5.0, 2.0, 1.0, 0.0)"


def _count(conn: sa.Connection, cq: CompiledQuery) -> int:
    import sqlalchemy as sa

    where, params = cq.sql()
    return int(
        conn.execute(sa.text(f"SELECT count(*) FROM question q WHERE {where}"), params).scalar()
        or 0
    )


def search(
    conn: sa.Connection | sqlite3.Connection,
    query: str,
    *,
    limit: int = 20,
    sort: str = "relevance",
    extra_where: str = "1",
    extra_params: dict[str, Any] | None = None,
    exact_count: bool = False,
) -> SearchResult:
    """Search the archive on an SQLAlchemy connection or a plain sqlite3 one (fast start).

    With words and filters, a count past FILTERED_SCAN_CAP is a lower bound ("more than")
    unless ``exact_count``; ``total_is_exact`` says which."""
    check_search(limit, sort)
    cq = compile_query(query)
    refuse_short_prefixes(cq)
    where, params = cq.sql()
    params = {**params, **(extra_params or {}), "__limit": limit}
    where = f"({where}) AND ({extra_where})"
    filtered = cq.where != "1" or extra_where != "1"
    note = None
    used = sort
    if cq.match is None:
        # Filters only: through the question table's indexes, or, where two or more filters
        # have words in the full-text index (facets), through the questions that have them
        # all, each checked by SQL (dept:health answered:2024: 337 -> 24 ms on 600,000).
        facets = facet_match(conn, cq) if len(cq.facets) > 1 else None
        source = "question q"
        if facets is not None:
            source = "question_fts CROSS JOIN question q ON q.id = question_fts.rowid"
            where = f"question_fts MATCH :__facets AND {where}"
            params["__facets"] = facets
        total = int(
            _rows(conn, f"SELECT count(*) AS n FROM {source} WHERE {where}", params)[0]["n"]
        )
        if sort == "relevance":
            used, note = "newest", "no words to rank by"
        ids = _newest_by_sql(conn, where, params, source) if total else []
    elif not filtered:
        # Words only: FTS5 counts its matches itself, without visiting a question row.
        total = _text_count(conn, cq.match)
        if sort == "relevance" and total > RELEVANCE_LIMIT:
            used = "newest"
            note = f"relevance ranking is used up to {RELEVANCE_LIMIT:,} matches"
        ids = _words_only_ids(conn, cq, params, used, total) if total else []
    else:
        total, ids, used, note = _filtered(conn, cq, extra_where, params, sort, exact_count)
    rows: list[Any] = []
    if ids:
        in_ids = ", ".join(str(int(i)) for i in ids)
        if cq.match is not None:
            snippet = (
                f"snippet(question_fts, -1, '{MARK_START}', '{MARK_END}', '…', 16) AS snip, "
                f"highlight(question_fts, 0, '{MARK_START}', '{MARK_END}') AS h0, "
                f"highlight(question_fts, 1, '{MARK_START}', '{MARK_END}') AS h1, "
                f"highlight(question_fts, 2, '{MARK_START}', '{MARK_END}') AS h2"
            )
            only = f"question_fts.rowid IN ({in_ids})"
            if cq.prefixes:
                # `rowid IN` runs the match once per id, and a prefix is expanded whole each
                # time (20 x 25 ms for child*). Over the ids' rowid range it runs once; the
                # `+` keeps the IN list a filter.
                only = f"question_fts.rowid BETWEEN {min(ids)} AND {max(ids)} AND +{only}"
            sql = (
                f"SELECT {HIT_COLUMNS}, {snippet} FROM question_fts "
                f"JOIN question q ON q.id = question_fts.rowid {HIT_JOINS} "
                f"WHERE question_fts MATCH :__match AND {only}"
            )
            fetched = _rows(conn, sql, {"__match": cq.match})
        else:
            sql = (
                f"SELECT {HIT_COLUMNS}, NULL AS snip, NULL AS h0, NULL AS h1, NULL AS h2 "
                f"FROM question q {HIT_JOINS} WHERE q.id IN ({in_ids})"
            )
            fetched = _rows(conn, sql, {})
        by_id = {r["id"]: r for r in fetched}
        rows = [by_id[i] for i in ids if i in by_id]
    hits = [
        hit_from_row(
            r,
            snippet=" ".join((r["snip"] or lead(r["question_text"])).split()),
            matched_terms=marked_terms(r["h0"], r["h1"], r["h2"]),
        )
        for r in rows
    ]
    return SearchResult(
        query=query,
        total=total,
        sort=used,
        hits=tuple(hits),
        note=note,
        total_is_exact=exact_count or not (filtered and cq.match and total > FILTERED_SCAN_CAP),
    )


def _text_count(conn: sa.Connection | sqlite3.Connection, match: str) -> int:
    sql = "SELECT count(*) AS n FROM question_fts WHERE question_fts MATCH :m"
    return int(_rows(conn, sql, {"m": match})[0]["n"])


def _newest_by_sql(
    conn: sa.Connection | sqlite3.Connection,
    where: str,
    params: dict[str, Any],
    source: str = "question q",
) -> list[int]:
    sql = (
        f"SELECT q.id AS id FROM {source} WHERE {where} "
        f"ORDER BY {_NEWEST_KEY} DESC, q.id DESC LIMIT :__limit"
    )
    return [r["id"] for r in _rows(conn, sql, params)]


def _words_only_ids(
    conn: sa.Connection | sqlite3.Connection,
    cq: CompiledQuery,
    params: dict[str, Any],
    used: str,
    total: int,
) -> list[int]:
    if used == "relevance":  # rank in the FTS table alone
        sql = (
            "SELECT rowid AS id FROM question_fts WHERE question_fts MATCH :__match "
            f"ORDER BY {BM25}, rowid DESC LIMIT :__limit"
        )
        return [r["id"] for r in _rows(conn, sql, {**params, "__match": cq.match})]
    assert cq.match is not None
    if total > MONTH_WALK_FROM:
        return _newest_by_month(conn, cq.match, cq, "1", params)
    return _newest_words_first(conn, cq.match, cq, "1", params)


def _word_matches(columns: str, cq: CompiledQuery, extra_where: str, tail: str = "") -> str:
    """SQL over the questions matching :__match that pass the filters. CROSS JOIN keeps the
    word matches first: SQLite would otherwise walk, say, every Lords question and look each
    one up in the full-text index (seconds, not ms)."""
    return (
        f"SELECT {columns} FROM question_fts CROSS JOIN question q ON q.id = question_fts.rowid "
        f"WHERE question_fts MATCH :__match AND ({cq.where}) AND ({extra_where}) {tail}"
    )


def _newest_words_first(
    conn: sa.Connection | sqlite3.Connection,
    match: str,
    cq: CompiledQuery,
    extra_where: str,
    params: dict[str, Any],
) -> list[int]:
    """The newest matches, sorting every word match."""
    tail = f"ORDER BY {_NEWEST_KEY} DESC, q.id DESC LIMIT :__limit"
    sql = _word_matches("q.id AS id", cq, extra_where, tail)
    return [r["id"] for r in _rows(conn, sql, {**params, "__match": match})]


def _filtered(
    conn: sa.Connection | sqlite3.Connection,
    cq: CompiledQuery,
    extra_where: str,
    params: dict[str, Any],
    sort: str,
    exact_count: bool,
) -> tuple[int, list[int], str, str | None]:
    """Words and filters. One pass over the word matches (each tested against the filters)
    collects every match with its date, up to FILTERED_SCAN_CAP of them; the count and either
    order then come from that list. Past the cap the count is given as "more than", and the
    page comes newest first, a month at a time. (Counting and ranking in separate queries
    visited every word match two or three times: 0.4 s for a common word with a filter on
    600,000 questions.)

    Where the filters have words in the index (facets), the pass reads only the matches
    that have them. It then leaves out the rank: bm25 would first count every question with
    each facet word (tens of ms for a range of years); a second pass over the index alone
    ranks the few matches, and only when they are ranked."""
    cap = None if exact_count else FILTERED_SCAN_CAP
    assert cq.match is not None
    facets = facet_match(conn, cq)
    match = cq.match if facets is None else f"({cq.match}) AND {facets}"
    rank = f"{BM25} AS r, " if facets is None else ""
    sql = _word_matches(
        f"q.id AS id, {rank}{_NEWEST_KEY} AS k",
        cq,
        extra_where,
        "" if cap is None else f"LIMIT {cap + 1}",
    )
    found = _rows(conn, sql, {**params, "__match": match})
    limit = int(params["__limit"])
    if cap is None or len(found) <= cap:
        if sort == "relevance":
            if facets is not None:
                ranks = {
                    r["id"]: r["r"]
                    for r in _rows(
                        conn,
                        f"SELECT rowid AS id, {BM25} AS r FROM question_fts "
                        "WHERE question_fts MATCH :__match",
                        {"__match": match},
                    )
                }
                for r in found:
                    r["r"] = ranks[r["id"]]
            found.sort(key=lambda r: (r["r"], -r["id"]))
        else:
            found.sort(key=lambda r: (r["k"], r["id"]), reverse=True)
        return len(found), [r["id"] for r in found[:limit]], sort, None
    note = f"with filters, matches are counted and ranked up to {cap:,}"
    return cap + 1, _newest_by_month(conn, match, cq, extra_where, params), "newest", note


def _newest_by_month(
    conn: sa.Connection | sqlite3.Connection,
    match: str,
    cq: CompiledQuery,
    extra_where: str,
    params: dict[str, Any],
) -> list[int]:
    """The newest matches of a common query, a month at a time, newest month first.

    "Newest" is ``coalesce(date_answered, date_tabled)``. A question whose date falls in a
    month has that month's answered or tabled word in its facets, so each month's matches are
    one narrow index query; the walk stops at the first month that completes a page (every
    later match is older than all of it). Used only for matches too many to sort whole.
    """
    limit = int(params["__limit"])
    bounds = _rows(
        conn,
        "SELECT (SELECT max(date_answered) FROM question) AS a, "
        "(SELECT max(date_tabled) FROM question) AS t, "
        "(SELECT min(date_tabled) FROM question) AS first, "
        "(SELECT min(date_answered) FROM question) AS first_answer",
        {},
    )[0]
    newest = max(str(v)[:7] for v in (bounds["a"], bounds["t"]) if v)
    year, month = int(newest[:4]), int(newest[5:7])
    # An answer can be dated before its question was tabled (the API has such dates).
    first = min(str(v)[:7] for v in (bounds["first"], bounds["first_answer"]) if v)
    found: list[Any] = []
    sql = _word_matches(
        f"q.id AS id, {_NEWEST_KEY} AS k",
        cq,
        extra_where,
        f"AND substr({_NEWEST_KEY}, 1, 7) = :__month",
    )
    while f"{year:04d}-{month:02d}" >= first:
        in_month = {"__match": f"({match}) AND {month_match(year, month)}"}
        found += _rows(conn, sql, {**params, **in_month, "__month": f"{year:04d}-{month:02d}"})
        if len(found) >= limit:
            break
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    found.sort(key=lambda r: (str(r["k"]), r["id"]), reverse=True)
    return [r["id"] for r in found[:limit]]


# -- watches ----------------------------------------------------------------------------------

# The archive's first day and last (tabled or answered): max() of several values is NULL when
# one is, so no answer at all is ''.
_ARCHIVE_BOUNDS = (
    "SELECT min(date_tabled), max(max(date_tabled), coalesce(max(date_answered), '')) FROM question"
)


# What a watch would have caught in a period, searched with this module's `search`.
preview_watch = partial(
    searching.preview_watch,
    search=search,
    placeholder=placeholder,
    day=bind_day,
    bounds=_ARCHIVE_BOUNDS,
)


@lru_cache(maxsize=512)
def _match_of(query: str) -> str | None:
    """A watch's FTS5 expression, compiled once a process (a digest run asks per question)."""
    return compile_query(query).match


def matched_words(
    conn: sa.Connection | sqlite3.Connection, query: str, qid: int
) -> tuple[str, ...]:
    """The words of a watch's query that FTS5's highlight() marks in a question's heading,
    question and answer, lower-cased, distinct, in order of appearance (none when the query
    has no words, or no longer matches)."""
    match = _match_of(query)
    if match is None:
        return ()
    marks = ", ".join(f"highlight(question_fts, {i}, ?, ?)" for i in range(3))
    row = (
        raw_cursor(conn)
        .execute(
            f"SELECT {marks} FROM question_fts WHERE question_fts MATCH ? AND rowid = ?",
            (*(MARK_START, MARK_END) * 3, match, qid),
        )
        .fetchone()
    )
    return marked_terms(*row) if row else ()
