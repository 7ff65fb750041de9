"""Archive search, question look-up and watch statistics on PostgreSQL: the tsvector column
question.search_vector (GIN index), ts_rank and ts_headline. The same functions, limits and
result types as pqwatch.store.sqlite.search.

Relevance is ts_rank with the weights {D, C, B, A} = {0, 0.2, 0.4, 1.0}: heading, question and
answer in the ratio of SQLite's bm25 weights 5, 2, 1, the facet words nothing; normalised by
the log of the document's length, as bm25 favours short documents. The rank is of the words
alone: ts_rank scores an AND by the distances between its words, and a facet word (weight 0)
in it would make every pair score nothing. Words and marked snippets come from ts_headline.

As on SQLite, every query has a LIMIT and relevance is used up to RELEVANCE_LIMIT matches;
filters with words in the index (House, status, department, dates) narrow the tsquery with
their facet words (weight D), as they narrow FTS5's MATCH.

What is the same on both databases (question look-up and story, watch figures, the limits, the
hit columns and hits) is pqwatch.store.searching's.
"""

from __future__ import annotations

import re
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any

from pqwatch.query import DateRange, Field
from pqwatch.search.results import MARK_END, MARK_START, SearchResult, marked_terms
from pqwatch.store import searching
from pqwatch.store.postgresql.compile import (
    CompiledQuery,
    bind_day,
    compile_query,
    lexeme,
    placeholder,
)
from pqwatch.store.searching import (
    DATE_FACET_COLUMN,
    DATE_FACET_PREFIX,
    FILTERED_SCAN_CAP,
    HIT_COLUMNS,
    HIT_JOINS,
    MAX_FACET_WORDS,
    MIN_PREFIX,
    NEWEST_KEY,
    RELEVANCE_LIMIT,
    as_date,
    check_search,
    date_facet_words,
    find_question,
    hit_from_row,
    lead,
    question_story,
    refuse_short_prefixes,
    watch_stats,
)

if TYPE_CHECKING:
    import sqlalchemy as sa

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

# ts_rank's weights are {D, C, B, A}: facets, answer, question, heading.
RANK_WEIGHTS = "'{0, 0.2, 0.4, 1.0}'"
# 1: divided by 1 + the log of the document's length.
_RANK_NORMALISATION = 1
# Every matching word marked (the "matched words" and the snippet are cut from it in Python).
_HEADLINE_OPTIONS = f"HighlightAll=true, StartSel={MARK_START}, StopSel={MARK_END}"
# Words around the best place in a snippet, as FTS5's snippet(..., 16) gives.
SNIPPET_WORDS = 16


def rows(conn: Any, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The rows of one statement (psycopg's %(name)s placeholders) as dicts, on an
    SQLAlchemy connection or a psycopg one."""
    if hasattr(conn, "exec_driver_sql"):
        return [dict(r) for r in conn.exec_driver_sql(sql, params or {}).mappings()]
    cur = conn.execute(sql, params or {})
    names = [d.name for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def rank(tsquery: str) -> str:
    """The ts_rank of a question for a tsquery expression."""
    return f"ts_rank({RANK_WEIGHTS}, q.search_vector, {tsquery}, {_RANK_NORMALISATION})"


# -- facet words ----------------------------------------------------------------------------


def facet_tsquery(conn: Any, cq: CompiledQuery) -> str | None:
    """A tsquery (as text, of quoted lexemes) of the facet words the query's top-level
    filters imply, or None when there is none to use. The SQL conditions still hold every
    filter: the words only narrow (a month's word stands for the whole month)."""
    groups = []
    for f in cq.facets:
        words = _facet_words(conn, f)
        if words is not None:
            groups.append("(" + " | ".join(lexeme(w, "D") for w in words or ["dnone"]) + ")")
    return " & ".join(groups) if groups else None


def _facet_words(conn: Any, f: Field | DateRange) -> list[str] | None:
    if isinstance(f, DateRange):
        return _date_words(conn, f) if f.name in DATE_FACET_PREFIX else None
    if f.name == "house":
        return [f"h{f.values[0].lower()}"]
    if f.name == "status":
        return [f"s{v}" for v in f.values]
    if f.name == "dept":
        words = {f"w{i}": word for i, word in enumerate(f.values)}
        condition = " AND ".join(f"strpos(lower(name), %({w})s) > 0" for w in words)
        ids = [
            r["id"] for r in rows(conn, f"SELECT id FROM answering_body WHERE {condition}", words)
        ]
        return [f"d{i}" for i in ids] if len(ids) <= MAX_FACET_WORDS else None
    return None


def _date_words(conn: Any, f: DateRange) -> list[str] | None:
    column = DATE_FACET_COLUMN[f.name]
    start, end = f.start, f.end
    if start is None or end is None:  # an open end is the archive's first or last date
        bounds = rows(conn, f"SELECT min({column}) AS lo, max({column}) AS hi FROM question")[0]
        start = start or as_date(bounds["lo"])
        end = end or as_date(bounds["hi"])
    if start is None or end is None or start > end:
        return None
    return date_facet_words(f.name, start, end)


def plan(conn: Any, cq: CompiledQuery, extra_where: str = "TRUE") -> tuple[str, dict[str, Any]]:
    """The search's WHERE over `question q` and its parameters: the words and the facet words
    of the filters in one tsquery (the facet words alone only when two or more filters have
    them, as on SQLite: one filter is as quick through the table's indexes), then the
    filters."""
    params = dict(cq.params)
    facets = facet_tsquery(conn, cq) if cq.tsquery is not None or len(cq.facets) > 1 else None
    parts = []
    if facets is not None:
        params["__facets"] = facets
        narrow = "to_tsquery('simple', %(__facets)s)"
        match = narrow if cq.tsquery is None else f"({cq.tsquery} && {narrow})"
        parts.append(f"q.search_vector @@ {match}")
    elif cq.tsquery is not None:
        parts.append(f"q.search_vector @@ {cq.tsquery}")
    parts.append(f"({cq.conditions})")
    if extra_where != "TRUE":
        parts.append(f"({extra_where})")
    return " AND ".join(parts), params


# -- search ---------------------------------------------------------------------------------


def search(
    conn: sa.Connection,
    query: str,
    *,
    limit: int = 20,
    sort: str = "relevance",
    extra_where: str = "TRUE",
    extra_params: dict[str, Any] | None = None,
    exact_count: bool = False,
) -> SearchResult:
    """Search the archive. `extra_where` is SQL over `question q` with %(name)s parameters
    from `extra_params`. With words and filters, a count past FILTERED_SCAN_CAP is a lower
    bound ("more than") unless ``exact_count``; ``total_is_exact`` says which."""
    check_search(limit, sort)
    cq = compile_query(query)
    refuse_short_prefixes(cq)
    where, params = plan(conn, cq, extra_where)
    params = {**params, **(extra_params or {}), "__limit": limit}
    filtered = cq.conditions != "TRUE" or extra_where != "TRUE"
    note = None
    used = sort
    exact = True
    if cq.tsquery is None:
        total = _count(conn, where, params)
        if sort == "relevance":
            used, note = "newest", "no words to rank by"
        ids = _newest(conn, where, params) if total else []
    elif not filtered:
        # Counted through the GIN index: a tsquery the planner cannot see (a sub-select) is not
        # taken for a common word's, which it would count by testing every question's vector
        # (`department`, 383,462 of 600,000: 1.0 s against 0.3-0.4 s through the index).
        total = _count(conn, f"q.search_vector @@ (SELECT {cq.tsquery})", params)
        if sort == "relevance" and total > RELEVANCE_LIMIT:
            used = "newest"
            note = f"relevance ranking is used up to {RELEVANCE_LIMIT:,} matches"
        if not total:
            ids = []
        elif used == "relevance":
            ids = _ranked(conn, cq, where, params)
        else:
            ids = _newest(conn, where, params)
    else:
        # One pass collects every match with its rank and date, up to the cap; the count and
        # either order come from that list (as on SQLite).
        cap = None if exact_count else FILTERED_SCAN_CAP
        assert cq.tsquery is not None
        sql = (
            f"SELECT q.id AS id, {rank(cq.tsquery)} AS r, {NEWEST_KEY} AS k "
            f"FROM question q WHERE {where}" + ("" if cap is None else f" LIMIT {cap + 1}")
        )
        found = rows(conn, sql, params)
        if cap is None or len(found) <= cap:
            if sort == "relevance":
                found.sort(key=lambda r: (-r["r"], -r["id"]))
            else:
                found.sort(key=lambda r: (r["k"], r["id"]), reverse=True)
            total, ids = len(found), [r["id"] for r in found[:limit]]
        else:
            note = f"with filters, matches are counted and ranked up to {cap:,}"
            total, used, exact = cap + 1, "newest", False
            ids = _newest(conn, where, params)
    hits = _hits(conn, cq, ids)
    return SearchResult(
        query=query, total=total, sort=used, hits=tuple(hits), note=note, total_is_exact=exact
    )


def _count(conn: Any, where: str, params: dict[str, Any]) -> int:
    return int(rows(conn, f"SELECT count(*) AS n FROM question q WHERE {where}", params)[0]["n"])


def _newest(conn: Any, where: str, params: dict[str, Any]) -> list[int]:
    sql = (
        f"SELECT q.id AS id FROM question q WHERE {where} "
        f"ORDER BY {NEWEST_KEY} DESC, q.id DESC LIMIT %(__limit)s"
    )
    return [r["id"] for r in rows(conn, sql, params)]


def _ranked(conn: Any, cq: CompiledQuery, where: str, params: dict[str, Any]) -> list[int]:
    assert cq.tsquery is not None
    sql = (
        f"SELECT q.id AS id FROM question q WHERE {where} "
        f"ORDER BY {rank(cq.tsquery)} DESC, q.id DESC LIMIT %(__limit)s"
    )
    return [r["id"] for r in rows(conn, sql, params)]


def _headlines(tsquery: str) -> str:
    """The heading, question and latest answer with every matching word marked (h0-h2)."""
    texts = ("coalesce(q.heading, '')", "q.question_text", "coalesce(answer_text, '')")
    return ", ".join(
        f"ts_headline('english', {text}, {tsquery}, %(__headline)s) AS h{i}"
        for i, text in enumerate(texts)
    )


def _hits(conn: Any, cq: CompiledQuery, ids: list[int]) -> list[Any]:
    if not ids:
        return []
    params: dict[str, Any] = {"__ids": ids}
    if cq.tsquery is not None:
        # The hit columns in a sub-select, so that the headlines can use its answer_text.
        sql = (
            f"SELECT h.*, {_headlines(cq.tsquery)} FROM (SELECT {HIT_COLUMNS} "
            f"FROM question q {HIT_JOINS} WHERE q.id = ANY(%(__ids)s)) AS h, question q "
            "WHERE q.id = h.id"
        )
        params.update(cq.params, __headline=_HEADLINE_OPTIONS)
    else:
        sql = (
            f"SELECT {HIT_COLUMNS}, NULL AS h0, NULL AS h1, NULL AS h2 "
            f"FROM question q {HIT_JOINS} WHERE q.id = ANY(%(__ids)s)"
        )
    by_id = {r["id"]: r for r in rows(conn, sql, params)}
    hits = []
    for r in (by_id[i] for i in ids if i in by_id):
        marked = [join_phrases(r[f"h{i}"], cq.phrases) for i in range(3)]
        cut = snippet(marked[1], marked[2], marked[0]) or lead(r["question_text"])
        hits.append(
            hit_from_row(r, snippet=" ".join(cut.split()), matched_terms=marked_terms(*marked))
        )
    return hits


# Two marked words next to each other: ts_headline marks each word of a phrase (and "covid"
# and "-19" of covid-19) on its own, where FTS5 marks the phrase as one.
_ADJACENT = re.compile(
    f"{MARK_START}([^{MARK_END}]*){MARK_END}(\\s*|['\u2019][sS]\\s+){MARK_START}"
)
_WORD = re.compile(r"[^\W_]+")


def _same_word(a: str, b: str) -> bool:
    """Two forms of a word, as far as a stemmer could tell (a shared start)."""
    n = min(len(a), len(b), 4)
    return a[:n] == b[:n]


def join_phrases(text: str | None, phrases: tuple[tuple[str, ...], ...]) -> str | None:
    """`text` with marked words next to each other marked as one where they are words of
    one of the query's phrases in order (or parts of one word: nothing between them)."""
    if not text or MARK_START not in text:
        return text

    def in_phrase(words: list[str]) -> bool:
        for phrase in phrases:
            for start in range(len(phrase) - len(words) + 1):
                window = phrase[start : start + len(words)]
                if all(_same_word(a, b) for a, b in zip(words, window, strict=True)):
                    return True
        return False

    pos = 0
    while (m := _ADJACENT.search(text, pos)) is not None:
        # The words of the marked span so far (back to its opening mark) and the next one.
        opening = text.rfind(MARK_START, 0, m.start() + 1)
        closing = text.find(MARK_END, m.end())
        span = text[opening + 1 : m.start(1) + len(m.group(1))] + m.group(2)
        following = text[m.end() : closing]
        words = [w for w in _WORD.findall((span + " " + following).lower()) if w != "s"]
        if not m.group(2) or in_phrase(words):
            text = text[: m.start(1) + len(m.group(1))] + m.group(2) + text[m.end() :]
            pos = opening
        else:
            pos = m.end() - 1
    return text


def snippet(*marked: str | None, words: int = SNIPPET_WORDS) -> str | None:
    """A window of `words` words of the first text with the most marked words, where it has
    the most of them, with "…" where it was cut (as FTS5's snippet()); None when none is
    marked."""
    best: tuple[int, list[str]] | None = None
    for text in marked:
        tokens = (text or "").split()
        count = sum(MARK_START in t for t in tokens)
        if count and (best is None or count > best[0]):
            best = count, tokens
    if best is None:
        return None
    tokens = best[1]
    scores = [MARK_START in t for t in tokens]
    start = max(
        range(max(len(tokens) - words, 0) + 1), key=lambda i: (sum(scores[i : i + words]), -i)
    )
    cut = tokens[start : start + words]
    return ("…" if start else "") + " ".join(cut) + ("…" if start + words < len(tokens) else "")


@lru_cache(maxsize=512)
def _compiled(query: str) -> CompiledQuery:
    """A watch's query, compiled once a process (a digest run asks per question)."""
    return compile_query(query)


def matched_words(conn: Any, query: str, qid: int) -> tuple[str, ...]:
    """The words of a watch's query that ts_headline marks in a question's heading, question
    and latest answer, lower-cased, distinct, in order of appearance (none when the query has
    no words, or no longer matches). PostgreSQL's counterpart of pqwatch.store.reads'
    matched_words (FTS5's highlight())."""
    cq = _compiled(query)
    if cq.tsquery is None:
        return ()
    sql = (
        f"SELECT {_headlines(cq.tsquery)} FROM question q LEFT JOIN LATERAL (SELECT "
        "a.answer_text FROM answer a WHERE a.question_id = q.id ORDER BY a.version DESC "
        f"LIMIT 1) AS a ON TRUE WHERE q.id = %(__id)s AND q.search_vector @@ {cq.tsquery}"
    )
    found = rows(conn, sql, {**cq.params, "__id": qid, "__headline": _HEADLINE_OPTIONS})
    if not found:
        return ()
    return marked_terms(*(join_phrases(found[0][f"h{i}"], cq.phrases) for i in range(3)))


# -- watches --------------------------------------------------------------------------------

# The archive's first day and last (tabled or answered).
_ARCHIVE_BOUNDS = (
    "SELECT min(date_tabled), greatest(max(date_tabled), max(date_answered)) FROM question"
)


# What a watch would have caught in a period, searched with this module's `search`.
preview_watch = partial(
    searching.preview_watch,
    search=search,
    placeholder=placeholder,
    day=bind_day,
    bounds=_ARCHIVE_BOUNDS,
)
