"""A watch at a glance, on SQLite: a watch's matches counted for its page (the result types,
and what each figure counts, are in pqwatch.search.overview).

What a watch page costs is walking the watch's matched events: watch_match (by watch) to
event (by id), a row each; a watch on "school" has 96,000 of them on the 600,000-question
bench archive, about 40 ms a walk. Each GROUP BY in SQL walked them again (five were 0.4 s),
so the walk is made twice, and the period's rows are counted in Python:

1. the watch;
2. the whole history's totals (one walk, counted by SQLite);
3. the period's matched events (the walk again; only the period's rows come back): the months,
   the period's questions and the newest events come from them;
4. those questions' facts (asker, party, department, dates), by id through json_each, from
   which the rankings and the timeliness are counted;
5. the newest events' questions (20 rows).
"""

from __future__ import annotations

import heapq
import json
import sqlite3
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import sqlalchemy as sa

from pqwatch.errors import UsageError
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

_WATCH = "SELECT id, name, slug, query FROM watch WHERE slug = :slug AND active"
_MATCHED = "FROM watch_match m JOIN event e ON e.id = m.event_id WHERE m.watch_id = :w"
_TOTALS = (
    "SELECT count(*), count(DISTINCT e.question_id), min(e.event_date), max(e.event_date) "
    + _MATCHED
)
_PERIOD_EVENTS = (
    f"SELECT e.id, e.question_id, e.kind, e.event_date {_MATCHED} "
    "AND e.event_date BETWEEN :since AND :until"
)
# Only when the period has fewer than RECENT matched events.
_NEWEST_EVENTS = (
    f"SELECT e.id, e.question_id, e.kind, e.event_date {_MATCHED} AND e.event_date <= :until "
    "ORDER BY e.event_date DESC, e.id DESC LIMIT :n"
)
# Ids go in as one JSON array: any number of them, one statement, one plan.
_FACTS = (
    "SELECT q.id, q.kind, q.status, q.date_tabled, q.date_for_answer, q.date_answered, "
    "q.asking_member_id, am.name, am.party, q.answering_body_id, b.name "
    "FROM question q LEFT JOIN member am ON am.id = q.asking_member_id "
    "LEFT JOIN answering_body b ON b.id = q.answering_body_id "
    "WHERE q.id IN (SELECT value FROM json_each(:ids))"
)
_RECENT = (
    "SELECT e.id, e.kind, e.event_date, q.id, q.source_id, q.uin, q.parliament, q.kind, "
    "q.house, q.heading, q.date_tabled, am.name, am.party, b.name "
    "FROM event e JOIN question q ON q.id = e.question_id "
    "LEFT JOIN member am ON am.id = q.asking_member_id "
    "LEFT JOIN answering_body b ON b.id = q.answering_body_id "
    "WHERE e.id IN (SELECT value FROM json_each(:ids))"
)

K = TypeVar("K")
T = TypeVar("T")

NO_PARTY = "Party not known"
# Holding answers are not answers; statements are never answered (nor late).
_NOT_ANSWERED = frozenset({"holding"})
_NOT_WAITING = frozenset({"withdrawn"})


def watch_overview(
    conn: sa.Connection | sqlite3.Connection,
    slug: str,
    today: date,
    *,
    months: int = PERIOD_MONTHS,
) -> WatchOverview:
    """The active watch `slug` at a glance, its period the `months` months up to today.
    Raises UsageError for a watch that is not there (or no longer in the config)."""
    cur = _cursor(conn)
    found = cur.execute(_WATCH, {"slug": slug}).fetchone()
    if found is None:
        raise UsageError(f"no watch {slug!r} (pqwatch watches lists them)")
    watch_id, name, slug, query = found
    firsts = _month_starts(today, months)
    since, until = firsts[0], today
    period = {"w": watch_id, "since": since.isoformat(), "until": until.isoformat()}

    events, questions, first, last = cur.execute(_TOTALS, {"w": watch_id}).fetchone()
    rows = cur.execute(_PERIOD_EVENTS, period).fetchall()
    qids = sorted({r[1] for r in rows})
    facts = cur.execute(_FACTS, {"ids": json.dumps(qids)}).fetchall() if qids else []

    newest = heapq.nlargest(RECENT, rows, key=lambda r: (r[3], r[0]))
    if len(newest) < RECENT and int(events) > len(rows):  # older matches fill the list
        newest = cur.execute(_NEWEST_EVENTS, {**period, "n": RECENT}).fetchall()
    return WatchOverview(
        name=name,
        slug=slug,
        query=query,
        since=since,
        until=until,
        totals=Totals(
            questions=int(questions),
            events=int(events),
            first_match=_date(first),
            last_match=_date(last),
            period_questions=len(qids),
            period_events=len(rows),
        ),
        recent=_recent(cur, [r[0] for r in newest]),
        months=_months(rows, firsts),
        parties=_parties(facts),
        members=_members(facts),
        departments=_departments(facts),
        timeliness=_timeliness(facts, today),
    )


def _cursor(conn: sa.Connection | sqlite3.Connection) -> sqlite3.Cursor:
    """The DBAPI cursor of the caller's connection, in its transaction: the period's rows are
    thousands, and SQLAlchemy's result rows cost more than fetching them."""
    if isinstance(conn, sqlite3.Connection):
        return conn.cursor()
    dbapi = conn.connection.driver_connection
    assert isinstance(dbapi, sqlite3.Connection)
    return dbapi.cursor()


def _date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


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
        month = str(day)[:7]
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


def _recent(cur: sqlite3.Cursor, event_ids: list[int]) -> tuple[RecentMatch, ...]:
    if not event_ids:
        return ()
    by_id = {r[0]: r for r in cur.execute(_RECENT, {"ids": json.dumps(event_ids)})}
    return tuple(
        RecentMatch(
            question_id=r[3],
            source_id=str(r[4]),
            uin=r[5],
            parliament=r[6],
            kind=r[7],
            house=r[8],
            heading=r[9],
            date_tabled=_date(r[10]) or date.min,
            asker=r[11],
            asker_party=r[12],
            department=r[13],
            event_kind=r[1],
            event_date=_date(r[2]) or date.min,
        )
        for r in (by_id[e] for e in event_ids if e in by_id)
    )


# -- counting the period's questions (rows of _FACTS) -------------------------------------------

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


def _departments(facts: Sequence[Any]) -> Ranking[Count]:
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
    to_answer: list[int] = []  # days from tabled to answered
    late: list[int] = []  # days from due to answered (negative: early)
    waiting = overdue = 0
    for f in facts:
        if f[_KIND] == "statement":
            continue
        due, answered = _date(f[_DUE]), _date(f[_ANSWERED])
        if answered is None or f[_STATUS] in _NOT_ANSWERED:
            if f[_STATUS] not in _NOT_WAITING:
                waiting += 1
                overdue += due is not None and due < today
            continue
        to_answer.append((answered - (_date(f[_TABLED]) or answered)).days)
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
