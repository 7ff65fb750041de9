"""Archive search, question look-up and watch statistics on SQLite: FTS5, bm25 and the facet
words. The result types are the search stage's (pqwatch.search.results).

Every query has a LIMIT. Relevance (bm25) must score every match, so it is used only while
the match count is moderate; past that, results come newest first and the result says so.
Each path visits a bounded number of rows, so no query is slow however common its words.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING, Any

# SQLAlchemy is imported by the functions that take an SQLAlchemy connection: `search` also
# accepts a plain sqlite3 connection, so `pqwatch search` starts without it.
if TYPE_CHECKING:
    import sqlalchemy as sa

from pqwatch.errors import UsageError
from pqwatch.search.results import (
    MARK_END,
    MARK_START,
    AnswerVersion,
    GroupedQuestion,
    MatchedWatch,
    Preview,
    QuestionEvent,
    QuestionStory,
    SearchHit,
    SearchResult,
    WatchStats,
    marked_terms,
)
from pqwatch.store.db import raw_cursor
from pqwatch.store.sqlite.compile import CompiledQuery, compile_query
from pqwatch.store.sqlite.facets import facet_match, month_match
from pqwatch.store.sqlite.rows import rows as _rows
from pqwatch.types import attachments_from_json

# bm25 scores every match (about 3 us each), so past this many a page comes newest first.
RELEVANCE_LIMIT = 5_000
# Word matches with filters: counted exactly and ranked up to this many (see _filtered).
FILTERED_SCAN_CAP = 2_000
# Newest first past this many word matches: a month at a time (_newest_by_month) rather
# than sorting them all.
MONTH_WALK_FROM = 2_000
# A prefix is expanded to every word it begins on each pass over the index: `a*` took 6 s on
# 600,000 questions, `sta*` 1 s, `child*` 0.1 s.
MIN_PREFIX = 3
# What "newest first" sorts by: the answer's date, or the tabling date while unanswered.
_NEWEST_KEY = "coalesce(q.date_answered, q.date_tabled)"
# bm25 weights for heading, question, answer: a word in the heading says most about a question.
# The facets column (filter words, pqwatch.store.sqlite.facets) adds nothing to a question's rank.
BM25 = "bm25(question_fts, 5.0, 2.0, 1.0, 0.0)"


_HIT_COLUMNS = """
    q.id, q.source_id, q.uin, q.house, q.date_tabled, q.date_for_answer, q.date_answered,
    q.heading, q.parliament, q.kind,
    am.name AS asker, am.party AS asker_party, am.member_from AS asker_from,
    wm.name AS answerer, b.name AS body, q.status, q.question_text,
    (SELECT a.answer_text FROM answer a WHERE a.question_id = q.id
     ORDER BY a.version DESC LIMIT 1) AS answer_text
"""
_JOINS = """
    LEFT JOIN member am ON am.id = q.asking_member_id
    LEFT JOIN member wm ON wm.id = q.answering_member_id
    LEFT JOIN answering_body b ON b.id = q.answering_body_id
"""


def _date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


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
    if limit < 1:
        raise UsageError("--limit must be at least 1")
    if sort not in {"relevance", "newest"}:
        raise UsageError(f"unknown sort {sort!r} (use relevance or newest)")
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
                f"SELECT {_HIT_COLUMNS}, {snippet} FROM question_fts "
                f"JOIN question q ON q.id = question_fts.rowid {_JOINS} "
                f"WHERE question_fts MATCH :__match AND {only}"
            )
            fetched = _rows(conn, sql, {"__match": cq.match})
        else:
            sql = (
                f"SELECT {_HIT_COLUMNS}, NULL AS snip, NULL AS h0, NULL AS h1, NULL AS h2 "
                f"FROM question q {_JOINS} WHERE q.id IN ({in_ids})"
            )
            fetched = _rows(conn, sql, {})
        by_id = {r["id"]: r for r in fetched}
        rows = [by_id[i] for i in ids if i in by_id]
    hits = [
        _hit(
            r,
            snippet=" ".join((r["snip"] or _lead(r["question_text"])).split()),
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


def refuse_short_prefixes(cq: CompiledQuery) -> None:
    """A UsageError for a prefix too short to search (see MIN_PREFIX)."""
    short = [p for p in cq.prefixes if len(p) < MIN_PREFIX]
    if short:
        raise UsageError(
            f"{short[0]}* is too short a prefix: it begins too many words to search; "
            f"give at least {MIN_PREFIX} letters before the * (like educ*)"
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


def _hit(r: Any, *, snippet: str, matched_terms: tuple[str, ...]) -> SearchHit:
    """A SearchHit from a row selected with _HIT_COLUMNS."""
    return SearchHit(
        id=r["id"],
        source_id=r["source_id"],
        uin=r["uin"],
        house=r["house"],
        date_tabled=_date(r["date_tabled"]) or date.min,
        date_answered=_date(r["date_answered"]),
        heading=r["heading"],
        asking_member=r["asker"],
        asking_party=r["asker_party"],
        asking_constituency=r["asker_from"],
        answering_member=r["answerer"],
        answering_body=r["body"],
        status=r["status"],
        question_text=r["question_text"],
        answer_text=r["answer_text"],
        snippet=snippet,
        matched_terms=matched_terms,
        date_for_answer=_date(r["date_for_answer"]),
        parliament=r["parliament"],
        kind=r["kind"],
    )


def _lead(text: str, words: int = 30) -> str:
    parts = text.split()
    return " ".join(parts[:words]) + (" …" if len(parts) > words else "")


# -- show -------------------------------------------------------------------------------------


def find_question(
    conn: sa.Connection, ref: str, today: date
) -> tuple[int, tuple[tuple[str, date], ...]]:
    """Resolve an id, a UIN (HL1234 or 12345) or DATE/UIN to a question row id.

    A parliament's own reference (S5W-02060, AQW 49327/22-27) is tried first as written. A
    bare number is tried as the API id first, then as a UIN. A UIN used in several sessions
    resolves to the newest question; the others are returned so the caller can say so. A
    DATE must be a real day, not after today.
    """
    import sqlalchemy as sa

    by_reference = "SELECT id, source_id, date_tabled FROM question WHERE upper(uin) = upper(:k)"
    order = " ORDER BY date_tabled DESC, id DESC"
    whole = " ".join(ref.split())
    # A parliament's own reference first, as written: AQW 49327/22-27 holds a space and a /.
    # (A bare number stays an id first.)
    first = bool(whole) and not whole.isdigit()
    rows = conn.execute(sa.text(by_reference + order), {"k": whole}).all() if first else []
    day_text, slash, key = whole.partition("/")
    day: str | None = None
    if rows:
        slash = ""
    elif not slash:
        key = day_text
    else:
        try:
            tabled = date.fromisoformat(day_text)
        except ValueError:
            raise UsageError(
                f"{ref!r}: no such reference, and {day_text!r} is not a date (DATE/UIN)"
            ) from None
        if tabled > today:
            raise UsageError(f"{ref!r}: {tabled} is in the future (today is {today})")
        day = tabled.isoformat()
    if not rows and (not key or any(ch.isspace() for ch in key)):
        raise UsageError(f"{ref!r} is not in the archive (give an id, a reference or DATE/UIN)")
    if not rows and day is None and key.isdigit():
        row = conn.execute(
            sa.text("SELECT id FROM question WHERE source_id = :k ORDER BY id LIMIT 1"), {"k": key}
        ).first()
        if row:
            return int(row[0]), ()
    if not rows:
        sql, params = by_reference, {"k": key}
        if day:
            sql += " AND date_tabled = :d"
            params["d"] = day
        rows = conn.execute(sa.text(sql + order), params).all()
    if not rows:
        raise UsageError(f"no question with id or UIN {ref!r} in the archive")
    others = tuple((str(r[1]), _date(r[2]) or date.min) for r in rows[1:])
    return int(rows[0][0]), others


def question_story(conn: sa.Connection, ref: str, today: date) -> QuestionStory:
    import sqlalchemy as sa

    qid, others = find_question(conn, ref, today)
    r = (
        conn.execute(
            sa.text(
                f"SELECT {_HIT_COLUMNS}, q.is_named_day, q.attachments_json, "
                f"q.date_holding_answer, q.details_json FROM question q {_JOINS} "
                "WHERE q.id = :id"
            ),
            {"id": qid},
        )
        .mappings()
        .one()
    )
    hit = _hit(r, snippet="", matched_terms=())
    answers = tuple(
        AnswerVersion(
            version=a["version"],
            kind=a["kind"],
            date_answered=_date(a["date_answered"]),
            date_corrected=_date(a["date_corrected"]),
            answering_member=a["answerer"],
            correcting_member=a["corrector"],
            html=a["answer_html"],
            text=a["answer_text"],
            is_full_text=bool(a["is_full_text"]),
        )
        for a in conn.execute(
            sa.text(
                "SELECT a.*, wm.name AS answerer, cm.name AS corrector FROM answer a "
                "LEFT JOIN member wm ON wm.id = a.answering_member_id "
                "LEFT JOIN member cm ON cm.id = a.correcting_member_id "
                "WHERE a.question_id = :id ORDER BY a.version"
            ),
            {"id": qid},
        ).mappings()
    )
    events = tuple(
        QuestionEvent(e[0], _date(e[1]) or date.min, json.loads(e[2]) if e[2] else {})
        for e in conn.execute(
            sa.text(
                "SELECT kind, event_date, detail_json FROM event WHERE question_id = :id "
                "ORDER BY event_date, id"
            ),
            {"id": qid},
        )
    )
    grouped = tuple(
        GroupedQuestion(g[0], _date(g[1]) or date.min, g[2], g[3], g[4])
        for g in conn.execute(
            sa.text(
                # Links are stored as the API gives them, by UIN and date; read both ways.
                "SELECT l.uin, l.d, o.source_id, m.name, o.heading FROM ("
                "  SELECT grouped_uin AS uin, grouped_date_tabled AS d FROM question_group "
                "  WHERE question_id = :id "
                "  UNION SELECT q2.uin, q2.date_tabled FROM question_group g "
                "  JOIN question q2 ON q2.id = g.question_id "
                "  WHERE g.grouped_uin = :uin AND g.grouped_date_tabled = :dt AND q2.id != :id"
                ") l LEFT JOIN question o ON o.uin = l.uin AND o.date_tabled = l.d "
                "AND o.house = :house "
                "LEFT JOIN member m ON m.id = o.asking_member_id ORDER BY l.d, l.uin"
            ),
            {"id": qid, "uin": hit.uin, "dt": hit.date_tabled.isoformat(), "house": hit.house},
        )
    )
    watches = tuple(
        MatchedWatch(w[0], w[1])
        for w in conn.execute(
            sa.text(
                # The operator's watches only: a personal watch is its owner's business.
                "SELECT DISTINCT w.name, w.slug FROM event e "
                "JOIN watch_match m ON m.event_id = e.id JOIN watch w ON w.id = m.watch_id "
                "WHERE e.question_id = :id AND w.active AND w.origin = 'config' ORDER BY w.name"
            ),
            {"id": qid},
        )
    )
    return QuestionStory(
        hit=hit,
        date_for_answer=_date(r["date_for_answer"]),
        is_named_day=bool(r["is_named_day"]),
        asking_party=r["asker_party"],
        asking_constituency=r["asker_from"],
        answers=answers,
        events=events,
        grouped=grouped,
        others_with_uin=others,
        attachments=attachments_from_json(r["attachments_json"]),
        date_holding_answer=_date(r["date_holding_answer"]),
        details=_details(r["details_json"]),
        matched_watches=watches,
    )


def _details(raw: str | None) -> dict[str, Any]:
    try:
        found = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


# -- watches ----------------------------------------------------------------------------------


def watch_stats(conn: sa.Connection, today: date, *, public: bool = False) -> list[WatchStats]:
    """Each active watch with its matched questions (all time, last 7 days) and last match;
    `public`: the operator's watches only (a subscriber's own searches are theirs)."""
    import sqlalchemy as sa

    week_ago = date.fromordinal(today.toordinal() - 7).isoformat()
    only = " AND origin = 'config'" if public else ""
    out = []
    for w in conn.execute(
        sa.text(f"SELECT id, name, slug, query FROM watch WHERE active{only} ORDER BY name")
    ).mappings():
        counts = conn.execute(
            sa.text(
                "SELECT count(DISTINCT e.question_id), "
                "count(DISTINCT CASE WHEN e.event_date >= :week THEN e.question_id END) "
                "FROM watch_match m JOIN event e ON e.id = m.event_id WHERE m.watch_id = :w"
            ),
            {"w": w["id"], "week": week_ago},
        ).one()
        last = conn.execute(
            sa.text(
                "SELECT e.event_date, q.heading, q.uin FROM watch_match m "
                "JOIN event e ON e.id = m.event_id JOIN question q ON q.id = e.question_id "
                "WHERE m.watch_id = :w ORDER BY e.event_date DESC, e.id DESC LIMIT 1"
            ),
            {"w": w["id"]},
        ).first()
        out.append(
            WatchStats(
                name=w["name"],
                slug=w["slug"],
                query=w["query"],
                matches=int(counts[0]),
                matches_last_7_days=int(counts[1]),
                last_match_date=_date(last[0]) if last else None,
                last_match_heading=last[1] if last else None,
                last_match_uin=last[2] if last else None,
            )
        )
    return out


def preview_watch(
    conn: sa.Connection,
    query: str,
    today: date,
    since: date | None = None,
    until: date | None = None,
) -> Preview:
    """What a watch would have caught in a period (by default the last 12 months): answers
    given, questions tabled, and the five newest examples."""
    import sqlalchemy as sa

    until = until or today
    since = since or date(until.year - 1, until.month, min(until.day, 28))
    if since > until:
        raise UsageError(f"--since {since} is after --until {until}")
    period = {"__since": since.isoformat(), "__today": until.isoformat()}
    answered = search(
        conn,
        query,
        limit=5,
        sort="newest",
        extra_where="q.date_answered BETWEEN :__since AND :__today",
        extra_params=period,
        exact_count=True,
    )
    tabled = search(
        conn,
        query,
        limit=1,
        sort="newest",
        extra_where="q.date_tabled BETWEEN :__since AND :__today",
        extra_params=period,
        exact_count=True,
    )
    first, last = conn.execute(
        sa.text(
            "SELECT min(date_tabled), max(max(date_tabled), coalesce(max(date_answered), '')) "
            "FROM question"
        )
    ).one()
    examples = answered.hits or tabled.hits
    return Preview(
        query, since, until, answered.total, tabled.total, examples, _date(first), _date(last)
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
