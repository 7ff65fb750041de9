"""What searching the archive does the same way on SQLite and on PostgreSQL; each dialect's
package (pqwatch.store.sqlite, pqwatch.store.postgresql) has the SQL that differs and calls this.

- Compiling: the walk over a parsed query (words, AND, OR, NOT, filters, dates, names) in
  `QueryCompiler`, whose small hooks each dialect fills in: how its full-text language writes a
  word and joins words, how SQL tests a question against it, how a value and a date are bound,
  how a name is searched for a word.
- Searching: the limits, the hit columns and their rows made into SearchHits, question look-up
  and story, watch figures and previews (their SQL is the same on both, through SQLAlchemy).
- Facet words: the words of the index's facets column a date filter stands for.
- Facet counts: a search's grouped matches made into SearchFacets.
- Watch pages: a watch's matched events counted into a WatchOverview; the statements are the
  same on both (raw_cursor's `?` placeholders) but for how a list of ids is passed.

No SQLAlchemy at import: SQLite's `pqwatch search` starts without it.
"""

from __future__ import annotations

import heapq
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pqwatch.errors import UsageError
from pqwatch.query import (
    STATUS_FILTERS,
    And,
    DateRange,
    Field,
    Node,
    Not,
    Or,
    Text,
    filter_for,
    parse,
)
from pqwatch.search.overview import (
    LATENESS_BUCKETS,
    ON_TIME_BUCKETS,
    PERIOD_MONTHS,
    RECENT,
    TOP,
    Count,
    MemberCount,
    MonthCount,
    Ranking,
    RecentMatch,
    Timeliness,
    Totals,
    WatchOverview,
)
from pqwatch.search.results import (
    AnswerVersion,
    Facet,
    FacetValue,
    GroupedQuestion,
    MatchedWatch,
    Preview,
    QuestionEvent,
    QuestionStory,
    SearchFacets,
    SearchHit,
    SearchResult,
    WatchStats,
)
from pqwatch.store.db import raw_cursor
from pqwatch.types import PARLIAMENTS, attachments_from_json

if TYPE_CHECKING:
    import sqlalchemy as sa

# --------------------------------------------------------------------------- compiling

_POSSESSIVE_IN = re.compile(r"(?<=\w)['\u2019][sS](?!\w)")
_DATE_COLUMNS = {
    "tabled": "date_tabled", "answered": "date_answered", "due": "date_for_answer",
}  # fmt: skip
_MEMBER_COLUMNS = {"asker": "asking_member_id", "answerer": "answering_member_id"}
_FACET_FIELDS = ("house", "status", "dept")

# Both indexes stem words, and a prefix as typed may stop part-way into a stem's suffix:
# `educat*` must find "education", indexed as "educ". A prefix is searched as the stems of the
# words it could begin (educat+ion -> educ), each dialect stemming them as its index does.
_SUFFIXES = (
    "s", "es", "e", "ed", "ing", "ings", "er", "ers", "y", "ies", "ly", "al", "als", "ally",
    "ality", "ion", "ions", "ional", "ation", "ations", "ational", "ate", "ated", "ates",
    "ating", "ator", "ators", "ative", "ive", "ives", "ively", "iveness", "ivity", "ity",
    "ities", "ism", "isms", "ist", "ists", "ise", "ised", "ises", "ising", "isation",
    "isations", "ize", "ized", "izes", "izing", "ization", "izations", "ement", "ements",
    "ment", "ments", "ness", "ful", "fully", "fulness", "ous", "ously", "ousness", "ence",
    "ences", "ent", "ently", "ency", "ance", "ances", "ant", "ants", "ancy", "ic", "ics",
    "ical", "ically", "icate", "icity", "able", "ably", "ability", "abilities", "ible", "ibly",
    "ibility", "logy", "logies", "logical", "ery", "eries",
)  # fmt: skip
# A prefix may stop part-way into a suffix (educat|ion): each (typed part, rest) split of each
# suffix, so that only the typed part may be lost from the prefix (vaccin|g is not "vac").
_SPLITS = tuple(sorted({(s[:k], s[k:]) for s in _SUFFIXES for k in range(len(s) + 1)}))


def suffix_splits(word: str) -> list[tuple[str, str]]:
    """The (typed part, rest) suffix splits that `word` (a lower-cased prefix) can end in,
    leaving some of the word: `word + rest` is a word the prefix could begin, and its stem
    must begin with the word less the typed part."""
    return [(t, r) for t, r in _SPLITS if word.endswith(t) and len(word) > len(t)]


class QueryCompiler:
    """A parsed query as the dialect's full-text expression for its words and SQL conditions
    over `question q` for the rest, every value a bound parameter (`params`, named p1, p2...).

    Full-text expressions are atomic (safe to combine as they are), or None for a node that
    cannot be a positive full-text query on its own (a bare NOT, an OR with a negative
    branch, anything with a non-text field). SQL conditions are two-valued, so NOT of one is
    what a user means: -answered:2024 includes questions not answered at all.

    A dialect fills in the hooks below the walk."""

    OR: str  # the full-text language's operator joining alternatives
    CONTAINS: str  # the SQL function (text, word) giving the word's position, 0 if absent

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.prefixes: list[str] = []

    def param(self, value: Any) -> str:
        name = f"p{len(self.params) + 1}"
        self.params[name] = value
        return self.placeholder(name)

    def searched(self, node: Text) -> list[str]:
        """The texts a word or phrase is searched as (noting a prefix's last word)."""
        if node.prefix:
            self.prefixes.append((node.text.split() or [node.text])[-1])
        variants = [node.text]
        if node.phrase and _POSSESSIVE_IN.search(node.text):
            # "children's hospice" also finds "childrens hospice"/"children hospice" text.
            variants.append(_POSSESSIVE_IN.sub("", node.text))
        return variants

    def either(self, expressions: list[str]) -> str:
        """Full-text alternatives as one atomic expression."""
        if len(expressions) == 1:
            return expressions[0]
        return f"({self.OR.join(expressions)})"

    # -- the walk

    def fts(self, node: Node) -> str | None:
        if isinstance(node, Text):
            return self.text(node)
        if isinstance(node, Or):
            parts = [self.fts(part) for part in node.parts]
            if any(part is None for part in parts):
                return None
            return "(" + self.OR.join(p for p in parts if p is not None) + ")"
        if isinstance(node, And):
            positives, negatives, others = self.split(node.parts)
            if others or not positives:
                return None
            return self.all_of(positives, negatives)
        return None

    def split(self, parts: tuple[Node, ...]) -> tuple[list[str], list[str], list[Node]]:
        """The full-text positives, the full-text negatives and the rest of an AND's parts."""
        positives: list[str] = []
        negatives: list[str] = []
        others: list[Node] = []
        for part in parts:
            expression = self.fts(part)
            if expression is not None:
                positives.append(expression)
                continue
            if isinstance(part, Not):
                expression = self.fts(part.part)
                if expression is not None:
                    negatives.append(expression)
                    continue
            others.append(part)
        return positives, negatives, others

    def conjunction(self, parts: tuple[Node, ...]) -> tuple[str | None, list[str]]:
        """An AND as one full-text expression for its words (if any is positive) plus SQL
        conditions for the rest."""
        positives, negatives, others = self.split(parts)
        match = None
        conditions: list[str] = []
        if positives:
            match = self.combine(positives, negatives)
        elif negatives:
            conditions.append(self.excluding(self.either(negatives)))
        conditions += [self.sql(part) for part in others]
        return match, conditions

    def sql(self, node: Node) -> str:
        expression = self.fts(node)
        if expression is not None:
            return self.matching(expression)
        if isinstance(node, Not):
            inner = self.fts(node.part)
            if inner is not None:
                return self.excluding(inner)
            return self.negate(self.sql(node.part))
        if isinstance(node, And):
            match, conditions = self.conjunction(node.parts)
            if match is not None:
                conditions.insert(0, self.matching(match))
            return "(" + " AND ".join(conditions) + ")"
        if isinstance(node, Or):
            texts = [e for e in (self.fts(part) for part in node.parts) if e is not None]
            conditions = []
            if texts:
                conditions.append(self.matching(self.either(texts)))
            conditions += [self.sql(part) for part in node.parts if self.fts(part) is None]
            return "(" + " OR ".join(conditions) + ")"
        if isinstance(node, DateRange):
            column = f"q.{_DATE_COLUMNS[node.name]}"
            conditions = [f"{column} IS NOT NULL"]
            if node.start is not None:
                conditions.append(f"{column} >= {self.param(self.day(node.start))}")
            if node.end is not None:
                conditions.append(f"{column} <= {self.param(self.day(node.end))}")
            return "(" + " AND ".join(conditions) + ")"
        if isinstance(node, Field):
            return self.field(node)
        raise AssertionError(f"unexpected node {node!r}")  # pragma: no cover

    def field(self, node: Field) -> str:
        if node.name == "house":
            return self.house(self.param(node.values[0]))
        if node.name == "status":
            return f"(q.status IN ({', '.join(self.param(v) for v in node.values)}))"
        if node.name in ("parliament", "type"):
            column = "q.parliament" if node.name == "parliament" else "q.kind"
            return f"({column} = {self.param(node.values[0])})"
        if node.name == "dept":
            table, alias, column = "answering_body", "b", "q.answering_body_id"
        else:
            table, alias, column = "member", "m", f"q.{_MEMBER_COLUMNS[node.name]}"
        # A position, not LIKE: a user's % and _ are letters here.
        words = " AND ".join(
            f"{self.CONTAINS}(lower({alias}.name), {self.param(word)}) > 0" for word in node.values
        )
        # `column IN (ids)` walks the column's index (dept:health 1.5 s -> 0.1 s on 600,000
        # questions on SQLite); EXISTS tested every question. IS NOT NULL keeps NOT dept:x true
        # for a question with no department.
        select = f"SELECT {alias}.id FROM {table} {alias} WHERE {words}"
        return f"({column} IS NOT NULL AND {self.among(column, select)})"

    # -- the dialect's hooks

    def placeholder(self, name: str) -> str:
        """A named parameter as the driver takes it."""
        raise NotImplementedError

    def day(self, value: date) -> Any:
        """A date as the driver binds it."""
        raise NotImplementedError

    def text(self, node: Text) -> str:
        """A word or phrase (or prefix) as an atomic full-text expression."""
        raise NotImplementedError

    def combine(self, positives: list[str], negatives: list[str]) -> str:
        """Words that must all be there and words that must not, as one expression."""
        raise NotImplementedError

    def all_of(self, positives: list[str], negatives: list[str]) -> str:
        """`combine` as an atomic expression."""
        return self.combine(positives, negatives)

    def matching(self, expression: str) -> str:
        """SQL: the question matches the full-text expression."""
        raise NotImplementedError

    def excluding(self, expression: str) -> str:
        """SQL: the question does not match the full-text expression."""
        raise NotImplementedError

    def negate(self, condition: str) -> str:
        """SQL: NOT of a condition."""
        raise NotImplementedError

    def house(self, value: str) -> str:
        """SQL: the question is from the House bound as `value`."""
        return f"(q.house = {value})"

    def among(self, column: str, select: str) -> str:
        """SQL: `column` is one of the ids `select` gives."""
        return f"{column} IN ({select})"


@dataclass(frozen=True)
class TopLevel:
    """A query compiled at its top level, an AND of its parts (pqwatch.query)."""

    match: str | None  # the full-text expression of the top-level words, or None
    conditions: list[str]  # the SQL conditions of the other parts
    texts: tuple[Text, ...]  # the words and phrases searched for (not against), distinct
    terms: tuple[str, ...]  # the same, as typed, distinct (for highlighting, "matched")
    # Top-level filters every match must pass, which the index's facet words can narrow.
    facets: tuple[Field | DateRange, ...]
    prefixes: tuple[str, ...]  # the prefixes searched, as typed but without the `*`


def compile_top_level(compiler: QueryCompiler, text: str) -> TopLevel:
    """Parse `text` (or raise QuerySyntaxError, a UsageError) and compile it with `compiler`,
    whose `params` then hold the parameters."""
    node = parse(text)
    parts = node.parts if isinstance(node, And) else (node,)
    match, conditions = compiler.conjunction(parts)
    texts: dict[Text, None] = {}
    _positive_texts(node, True, texts)
    return TopLevel(
        match=match,
        conditions=conditions,
        texts=tuple(texts),
        terms=tuple(dict.fromkeys(t.typed for t in texts)),
        facets=tuple(
            p
            for p in parts
            if isinstance(p, DateRange) or (isinstance(p, Field) and p.name in _FACET_FIELDS)
        ),
        prefixes=tuple(dict.fromkeys(compiler.prefixes)),
    )


def _positive_texts(node: Node, positive: bool, out: dict[Text, None]) -> None:
    if isinstance(node, Text):
        if positive:
            out[node] = None
    elif isinstance(node, Not):
        _positive_texts(node.part, not positive, out)
    elif isinstance(node, And | Or):
        for part in node.parts:
            _positive_texts(part, positive, out)


# --------------------------------------------------------------------------- searching

# Past this many matches, relevance would cost too much (it scores every match): newest first.
RELEVANCE_LIMIT = 5_000
# Word matches with filters: counted exactly and ranked up to this many.
FILTERED_SCAN_CAP = 2_000
# A prefix is expanded to every word it begins on each pass over the index: `a*` took 6 s on
# 600,000 questions in SQLite, `sta*` 1 s, `child*` 0.1 s.
MIN_PREFIX = 3
# What "newest first" sorts by: the answer's date, or the tabling date while unanswered. It must
# stay the expression of migration 0007's index, which lets a page stop early.
NEWEST_KEY = "coalesce(q.date_answered, q.date_tabled)"

# A hit's columns (hit_from_row reads them) over `question q` and HIT_JOINS.
HIT_COLUMNS = """
    q.id, q.source_id, q.uin, q.house, q.date_tabled, q.date_for_answer, q.date_answered,
    q.heading, q.parliament, q.kind,
    am.name AS asker, am.party AS asker_party, am.member_from AS asker_from,
    wm.name AS answerer, b.name AS body, q.status, q.question_text,
    (SELECT a.answer_text FROM answer a WHERE a.question_id = q.id
     ORDER BY a.version DESC LIMIT 1) AS answer_text
"""
HIT_JOINS = """
    LEFT JOIN member am ON am.id = q.asking_member_id
    LEFT JOIN member wm ON wm.id = q.answering_member_id
    LEFT JOIN answering_body b ON b.id = q.answering_body_id
"""


class _Prefixed(Protocol):
    @property
    def prefixes(self) -> tuple[str, ...]: ...


def check_search(limit: int, sort: str) -> None:
    """A UsageError for a search's limit or sort that cannot be."""
    if limit < 1:
        raise UsageError("--limit must be at least 1")
    if sort not in {"relevance", "newest"}:
        raise UsageError(f"unknown sort {sort!r} (use relevance or newest)")


def refuse_short_prefixes(cq: _Prefixed) -> None:
    """A UsageError for a prefix too short to search (see MIN_PREFIX)."""
    short = [p for p in cq.prefixes if len(p) < MIN_PREFIX]
    if short:
        raise UsageError(
            f"{short[0]}* is too short a prefix: it begins too many words to search; "
            f"give at least {MIN_PREFIX} letters before the * (like educ*)"
        )


def as_date(value: Any) -> date | None:
    """A date column's value (a date, or ISO text from SQLite) as a date."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def hit_from_row(r: Any, *, snippet: str, matched_terms: tuple[str, ...]) -> SearchHit:
    """A SearchHit from a row selected with HIT_COLUMNS."""
    return SearchHit(
        id=r["id"],
        source_id=r["source_id"],
        uin=r["uin"],
        house=r["house"],
        date_tabled=as_date(r["date_tabled"]) or date.min,
        date_answered=as_date(r["date_answered"]),
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
        date_for_answer=as_date(r["date_for_answer"]),
        parliament=r["parliament"],
        kind=r["kind"],
    )


def lead(text: str, words: int = 30) -> str:
    """The first words of a text, the snippet of a hit with no words marked."""
    parts = text.split()
    return " ".join(parts[:words]) + (" …" if len(parts) > words else "")


# -- show


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
    others = tuple((str(r[1]), as_date(r[2]) or date.min) for r in rows[1:])
    return int(rows[0][0]), others


def question_story(conn: sa.Connection, ref: str, today: date) -> QuestionStory:
    import sqlalchemy as sa

    qid, others = find_question(conn, ref, today)
    r = (
        conn.execute(
            sa.text(
                f"SELECT {HIT_COLUMNS}, q.is_named_day, q.attachments_json, "
                f"q.date_holding_answer, q.details_json FROM question q {HIT_JOINS} "
                "WHERE q.id = :id"
            ),
            {"id": qid},
        )
        .mappings()
        .one()
    )
    hit = hit_from_row(r, snippet="", matched_terms=())
    answers = tuple(
        AnswerVersion(
            version=a["version"],
            kind=a["kind"],
            date_answered=as_date(a["date_answered"]),
            date_corrected=as_date(a["date_corrected"]),
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
        QuestionEvent(e[0], as_date(e[1]) or date.min, json.loads(e[2]) if e[2] else {})
        for e in conn.execute(
            sa.text(
                "SELECT kind, event_date, detail_json FROM event WHERE question_id = :id "
                "ORDER BY event_date, id"
            ),
            {"id": qid},
        )
    )
    grouped = tuple(
        GroupedQuestion(g[0], as_date(g[1]) or date.min, g[2], g[3], g[4])
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
        date_for_answer=as_date(r["date_for_answer"]),
        is_named_day=bool(r["is_named_day"]),
        asking_party=r["asker_party"],
        asking_constituency=r["asker_from"],
        answers=answers,
        events=events,
        grouped=grouped,
        others_with_uin=others,
        attachments=attachments_from_json(r["attachments_json"]),
        date_holding_answer=as_date(r["date_holding_answer"]),
        details=_details(r["details_json"]),
        matched_watches=watches,
    )


def _details(raw: str | None) -> dict[str, Any]:
    try:
        found = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


# -- watches


def watch_stats(conn: sa.Connection, today: date, *, public: bool = False) -> list[WatchStats]:
    """Each active watch with its matched questions (all time, last 7 days) and last match;
    `public`: the operator's watches only (a subscriber's own searches are theirs)."""
    import sqlalchemy as sa

    only = " AND origin = 'config'" if public else ""
    counts_sql = sa.text(
        "SELECT count(DISTINCT e.question_id), "
        "count(DISTINCT CASE WHEN e.event_date >= :week THEN e.question_id END) "
        "FROM watch_match m JOIN event e ON e.id = m.event_id WHERE m.watch_id = :w"
    ).bindparams(sa.bindparam("week", type_=sa.Date))  # ISO text on SQLite, as stored
    last_sql = sa.text(
        "SELECT e.event_date, q.heading, q.uin FROM watch_match m "
        "JOIN event e ON e.id = m.event_id JOIN question q ON q.id = e.question_id "
        "WHERE m.watch_id = :w ORDER BY e.event_date DESC, e.id DESC LIMIT 1"
    )
    week_ago = date.fromordinal(today.toordinal() - 7)
    out = []
    for w in conn.execute(
        sa.text(f"SELECT id, name, slug, query FROM watch WHERE active{only} ORDER BY name")
    ).mappings():
        counts = conn.execute(counts_sql, {"w": w["id"], "week": week_ago}).one()
        last = conn.execute(last_sql, {"w": w["id"]}).first()
        out.append(
            WatchStats(
                name=w["name"],
                slug=w["slug"],
                query=w["query"],
                matches=int(counts[0]),
                matches_last_7_days=int(counts[1]),
                last_match_date=as_date(last[0]) if last else None,
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
    *,
    search: Callable[..., SearchResult],
    placeholder: Callable[[str], str],
    day: Callable[[date], Any],
    bounds: str,
) -> Preview:
    """What a watch would have caught in a period (by default the last 12 months): answers
    given, questions tabled, and the five newest examples. The dialect's `search`, its named
    `placeholder` and `day` binding; `bounds` selects the archive's first day and last."""
    import sqlalchemy as sa

    until = until or today
    since = since or date(until.year - 1, until.month, min(until.day, 28))
    if since > until:
        raise UsageError(f"--since {since} is after --until {until}")
    period = {"__since": day(since), "__today": day(until)}
    between = f"BETWEEN {placeholder('__since')} AND {placeholder('__today')}"
    answered, tabled = (
        search(
            conn,
            query,
            limit=limit,
            sort="newest",
            extra_where=f"q.{column} {between}",
            extra_params=period,
            exact_count=True,
        )
        for column, limit in (("date_answered", 5), ("date_tabled", 1))
    )
    first, last = conn.execute(sa.text(bounds)).one()
    examples = answered.hits or tabled.hits
    return Preview(
        query, since, until, answered.total, tabled.total, examples, as_date(first), as_date(last)
    )


# --------------------------------------------------------------------------- facet words

# The index's facets column (pqwatch.store.sqlite.facets explains it): past this many words a
# filter is left to SQL alone (a long OR costs more than it saves).
MAX_FACET_WORDS = 60
DATE_FACET_PREFIX = {"tabled": "t", "answered": "a"}
DATE_FACET_COLUMN = {"tabled": "date_tabled", "answered": "date_answered"}


def date_facet_words(name: str, start: date, end: date) -> list[str] | None:
    """The facet words of a tabled: or answered: range: a year's word for each whole year in
    it, a month's for each month of the rest; None when they are too many to use."""
    p = DATE_FACET_PREFIX[name]
    words = []
    for year in range(start.year, end.year + 1):
        if start <= date(year, 1, 1) and date(year, 12, 31) <= end:
            words.append(f"{p}y{year}")
            continue
        first = start.month if year == start.year else 1
        last = end.month if year == end.year else 12
        words += [f"{p}m{year}{month:02d}" for month in range(first, last + 1)]
    return words if len(words) <= MAX_FACET_WORDS else None


# --------------------------------------------------------------------------- facet counts

# Counted whole up to this many matches (the grouped query costs about 2 us a match on SQLite:
# reading the question row half of it, grouping the rest).
EXACT_LIMIT = 10_000
# Past it, 1 in ceil(matches / SAMPLE_SIZE) is counted: 2,500 to 5,000 of them (a value with
# 1 % of the matches is then off by about 14 % either way, one time in three).
SAMPLE_SIZE = 5_000
_TYPE_LABELS = {"question": "Written questions", "statement": "Written statements",
                "foi": "FOI requests"}  # fmt: skip


def count_facets(
    query: str,
    matches: int,
    grouped: Callable[[int], list[dict[str, Any]]],
    fetch: Callable[[str], list[dict[str, Any]]],
    limit_per_facet: int,
    *,
    exact_limit: int,
    sample_size: int,
) -> SearchFacets:
    """A search's facets from its matches grouped by parliament, house, kind, body, year and
    status (`grouped(rate)`: the dialect's grouped query, with the count of each group as `n`,
    over a sample of 1 in `rate` by the id's hash). `matches`, the count or an upper bound,
    sets the rate: 1 up to `exact_limit` (the dialect's EXACT_LIMIT), else a sample of about
    `sample_size`. `fetch` runs a statement on the dialect's connection."""
    rate = 1 if matches <= exact_limit else math.ceil(matches / sample_size)
    groups = grouped(rate)
    if rate > 1 and sum(g["n"] for g in groups) * rate <= exact_limit:
        # Far fewer than the count promised (filters the index cannot narrow by): count all.
        rate = 1
        groups = grouped(rate)
    by: dict[str, Counter[Any]] = {k: Counter() for k in ("parliament", "house", "kind", "body",
                                                          "year", "status")}  # fmt: skip
    for g in groups:
        for key, counter in by.items():
            counter[g[key]] += g["n"] * rate
    facets = [
        _simple("parliament", "Parliament", by["parliament"], PARLIAMENTS),
        _simple("house", "House", by["house"]),
        _simple("type", "Type", by["kind"], _TYPE_LABELS),
        _departments(fetch, by["body"], limit_per_facet),
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
    fetch: Callable[[str], list[dict[str, Any]]], counts: Counter[Any], limit: int
) -> Facet:
    """The departments (FOI: authorities) with the most matches, by name. Each one's count
    is what its dept: filter finds among the matches: every department whose name, as the
    database lower-cases it (the filter's `lower(name)`), holds all its words."""
    ids = sorted(int(i) for i in counts if i is not None)
    if not ids or limit < 1:
        return Facet("dept", "Department", ())
    names = fetch(
        "SELECT id, name, lower(name) AS low FROM answering_body "
        f"WHERE id IN ({', '.join(map(str, ids))})"
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


# --------------------------------------------------------------------------- watch pages

# pqwatch.store.sqlite.watchstats explains the steps. `{ids}`: the dialect's test of an id
# against a list passed as one parameter.
_WATCH = "SELECT id, name, slug, query FROM watch WHERE slug = ? AND active"
_MATCHED = "FROM watch_match m JOIN event e ON e.id = m.event_id WHERE m.watch_id = ?"
_TOTALS = (
    "SELECT count(*), count(DISTINCT e.question_id), min(e.event_date), max(e.event_date) "
    + _MATCHED
)
_PERIOD_EVENTS = (
    f"SELECT e.id, e.question_id, e.kind, e.event_date {_MATCHED} AND e.event_date BETWEEN ? AND ?"
)
# Only when the period has fewer than RECENT matched events.
_NEWEST_EVENTS = (
    f"SELECT e.id, e.question_id, e.kind, e.event_date {_MATCHED} AND e.event_date <= ? "
    "ORDER BY e.event_date DESC, e.id DESC LIMIT ?"
)
_FACTS = (
    "SELECT q.id, q.kind, q.status, q.date_tabled, q.date_for_answer, q.date_answered, "
    "q.asking_member_id, am.name, am.party, q.answering_body_id, b.name "
    "FROM question q LEFT JOIN member am ON am.id = q.asking_member_id "
    "LEFT JOIN answering_body b ON b.id = q.answering_body_id "
    "WHERE q.id {ids}"
)
_RECENT = (
    "SELECT e.id, e.kind, e.event_date, q.id, q.source_id, q.uin, q.parliament, q.kind, "
    "q.house, q.heading, q.date_tabled, am.name, am.party, b.name "
    "FROM event e JOIN question q ON q.id = e.question_id "
    "LEFT JOIN member am ON am.id = q.asking_member_id "
    "LEFT JOIN answering_body b ON b.id = q.answering_body_id "
    "WHERE e.id {ids}"
)

K = TypeVar("K")
T = TypeVar("T")

NO_PARTY = "Party not known"
# Holding answers are not answers; statements are never answered (nor late).
_NOT_ANSWERED = frozenset({"holding"})
_NOT_WAITING = frozenset({"withdrawn"})


def watch_overview(
    conn: Any,
    slug: str,
    today: date,
    *,
    months: int = PERIOD_MONTHS,
    in_ids: str,
    ids: Callable[[list[int]], Any],
    day: Callable[[date], Any],
) -> WatchOverview:
    """The active watch `slug` at a glance, its period the `months` months up to today.
    Raises UsageError for a watch that is not there (or no longer in the config).

    The dialect's `in_ids` tests a column against one parameter, a list of ids as `ids`
    makes it; `day` binds a date. The rows are read on the DBAPI cursor of the caller's
    connection, in its transaction: the period's rows are thousands, and SQLAlchemy's result
    rows cost more than fetching them."""
    cur = raw_cursor(conn)
    found = cur.execute(_WATCH, (slug,)).fetchone()
    if found is None:
        raise UsageError(f"no watch {slug!r} (pqwatch watches lists them)")
    watch_id, name, slug, query = found
    firsts = _month_starts(today, months)
    since, until = firsts[0], today

    events, questions, first, last = cur.execute(_TOTALS, (watch_id,)).fetchone()
    rows = cur.execute(_PERIOD_EVENTS, (watch_id, day(since), day(until))).fetchall()
    qids = sorted({r[1] for r in rows})
    facts = cur.execute(_FACTS.format(ids=in_ids), (ids(qids),)).fetchall() if qids else []

    newest = heapq.nlargest(RECENT, rows, key=lambda r: (r[3], r[0]))
    if len(newest) < RECENT and int(events) > len(rows):  # older matches fill the list
        newest = cur.execute(_NEWEST_EVENTS, (watch_id, day(until), RECENT)).fetchall()
    event_ids = [r[0] for r in newest]
    recent = (
        cur.execute(_RECENT.format(ids=in_ids), (ids(event_ids),)).fetchall() if event_ids else []
    )
    return WatchOverview(
        name=name,
        slug=slug,
        query=query,
        since=since,
        until=until,
        totals=Totals(
            questions=int(questions),
            events=int(events),
            first_match=as_date(first),
            last_match=as_date(last),
            period_questions=len(qids),
            period_events=len(rows),
        ),
        recent=_recent(recent, event_ids),
        months=_months(rows, firsts),
        parties=_parties(facts),
        members=_members(facts),
        departments=_departments_ranked(facts),
        timeliness=_timeliness(facts, today),
    )


def _month_starts(today: date, months: int) -> list[date]:
    """The first days of the `months` months ending with today's, oldest first."""
    if months < 1:
        raise ValueError("months must be at least 1")
    index = today.year * 12 + today.month - 1 - (months - 1)
    return [date((index + i) // 12, (index + i) % 12 + 1, 1) for i in range(months)]


def _months(rows: Sequence[Any], firsts: Sequence[date]) -> tuple[MonthCount, ...]:
    questions: dict[str, set[int]] = {}
    kinds: Counter[tuple[str, str]] = Counter()
    for _, qid, kind, day in rows:
        month = str(day)[:7]  # ISO text on SQLite, a date on PostgreSQL
        questions.setdefault(month, set()).add(qid)
        kinds[month, kind] += 1
    out = []
    for first in firsts:
        key = first.isoformat()[:7]
        out.append(
            MonthCount(
                month=first,
                questions=len(questions.get(key, ())),
                tabled=kinds[key, "tabled"],
                answered=kinds[key, "answered"],
            )
        )
    return tuple(out)


def _recent(rows: Sequence[Any], event_ids: list[int]) -> tuple[RecentMatch, ...]:
    """The rows of _RECENT in the order of `event_ids`."""
    by_id = {r[0]: r for r in rows}
    return tuple(
        RecentMatch(
            question_id=r[3],
            source_id=str(r[4]),
            uin=r[5],
            parliament=r[6],
            kind=r[7],
            house=r[8],
            heading=r[9],
            date_tabled=as_date(r[10]) or date.min,
            asker=r[11],
            asker_party=r[12],
            department=r[13],
            event_kind=r[1],
            event_date=as_date(r[2]) or date.min,
        )
        for r in (by_id[e] for e in event_ids if e in by_id)
    )


# -- counting the period's questions (rows of _FACTS)

_ID, _KIND, _STATUS, _TABLED, _DUE, _ANSWERED, _ASKER, _ASKER_NAME, _PARTY, _BODY, _BODY_NAME = (
    range(11)
)


def _ranking(
    counts: Counter[K], order: Callable[[K], Any], make: Callable[[K, int], T], unknown: int
) -> Ranking[T]:
    """The TOP keys by count, ties in `order` (so a page is the same every time), and what
    the others add up to."""
    top = sorted(counts.items(), key=lambda kv: (-kv[1], order(kv[0])))[:TOP]
    return Ranking(
        top=tuple(make(k, n) for k, n in top),
        others=counts.total() - sum(n for _, n in top),
        other_names=len(counts) - len(top),
        unknown=unknown,
    )


def _parties(facts: Sequence[Any]) -> Ranking[Count]:
    asked = [f for f in facts if f[_ASKER] is not None]
    counts = Counter(f[_PARTY] or NO_PARTY for f in asked)
    return _ranking(counts, str, Count, len(facts) - len(asked))


def _members(facts: Sequence[Any]) -> Ranking[MemberCount]:
    counts: Counter[int] = Counter()
    who: dict[int, tuple[str | None, str | None]] = {}
    for f in facts:
        if f[_ASKER] is not None:
            counts[f[_ASKER]] += 1
            who[f[_ASKER]] = (f[_ASKER_NAME], f[_PARTY])

    def order(member_id: int) -> tuple[bool, str, int]:  # by name; the nameless last
        name = who[member_id][0]
        return (name is None, name or "", member_id)

    def make(member_id: int, n: int) -> MemberCount:
        return MemberCount(member_id, who[member_id][0], who[member_id][1], n)

    return _ranking(counts, order, make, len(facts) - counts.total())


def _departments_ranked(facts: Sequence[Any]) -> Ranking[Count]:
    counts: Counter[int] = Counter()
    names: dict[int, str] = {}
    for f in facts:
        if f[_BODY] is not None:
            counts[f[_BODY]] += 1
            names[f[_BODY]] = f[_BODY_NAME] or f"Department {f[_BODY]}"
    return _ranking(
        counts, names.__getitem__, lambda b, n: Count(names[b], n), len(facts) - counts.total()
    )


def _timeliness(facts: Sequence[Any], today: date) -> Timeliness:
    # Imported here: `statistics` costs 15 ms, and `pqwatch search` never needs it.
    import statistics

    to_answer: list[int] = []  # days from tabled to answered
    late: list[int] = []  # days from due to answered (negative: early)
    waiting = overdue = 0
    for f in facts:
        if f[_KIND] == "statement":
            continue
        due, answered = as_date(f[_DUE]), as_date(f[_ANSWERED])
        if answered is None or f[_STATUS] in _NOT_ANSWERED:
            if f[_STATUS] not in _NOT_WAITING:
                waiting += 1
                overdue += due is not None and due < today
            continue
        to_answer.append((answered - (as_date(f[_TABLED]) or answered)).days)
        if due is not None:
            late.append((answered - due).days)
    buckets = [
        Count(label, sum(1 for d in late if (lo is None or d >= lo) and (hi is None or d <= hi)))
        for label, lo, hi in LATENESS_BUCKETS
    ]
    on_time = sum(b.count for b in buckets[:ON_TIME_BUCKETS])
    return Timeliness(
        answered=len(to_answer),
        with_due_date=len(late),
        on_time=on_time,
        late=len(late) - on_time,
        median_days_to_answer=float(statistics.median(to_answer)) if to_answer else None,
        median_days_late=float(statistics.median(late)) if late else None,
        buckets=tuple(buckets),
        waiting=waiting,
        overdue=overdue,
    )
