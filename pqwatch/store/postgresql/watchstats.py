"""A watch at a glance, on PostgreSQL: a watch's matches counted for its page. The same steps
as pqwatch.store.sqlite.watchstats (which explains them), the same counting in Python (its
functions over the rows), with ids passed as one array parameter instead of a JSON array."""

from __future__ import annotations

import heapq
from datetime import date
from typing import Any

from pqwatch.errors import UsageError
from pqwatch.search.overview import PERIOD_MONTHS, RECENT, RecentMatch, Totals, WatchOverview
from pqwatch.store.postgresql.search import rows as _dicts
from pqwatch.store.sqlite.watchstats import (
    _date,
    _departments,
    _members,
    _month_starts,
    _months,
    _parties,
    _timeliness,
)

_WATCH = "SELECT id, name, slug, query FROM watch WHERE slug = %(slug)s AND active"
_MATCHED = "FROM watch_match m JOIN event e ON e.id = m.event_id WHERE m.watch_id = %(w)s"
_TOTALS = (
    "SELECT count(*), count(DISTINCT e.question_id), min(e.event_date), max(e.event_date) "
    + _MATCHED
)
_PERIOD_EVENTS = (
    f"SELECT e.id, e.question_id, e.kind, e.event_date {_MATCHED} "
    "AND e.event_date BETWEEN %(since)s AND %(until)s"
)
_NEWEST_EVENTS = (
    f"SELECT e.id, e.question_id, e.kind, e.event_date {_MATCHED} "
    "AND e.event_date <= %(until)s ORDER BY e.event_date DESC, e.id DESC LIMIT %(n)s"
)
_FACTS = (
    "SELECT q.id, q.kind, q.status, q.date_tabled, q.date_for_answer, q.date_answered, "
    "q.asking_member_id, am.name, am.party, q.answering_body_id, b.name "
    "FROM question q LEFT JOIN member am ON am.id = q.asking_member_id "
    "LEFT JOIN answering_body b ON b.id = q.answering_body_id WHERE q.id = ANY(%(ids)s)"
)
_RECENT = (
    "SELECT e.id, e.kind, e.event_date, q.id, q.source_id, q.uin, q.parliament, q.kind, "
    "q.house, q.heading, q.date_tabled, am.name, am.party, b.name "
    "FROM event e JOIN question q ON q.id = e.question_id "
    "LEFT JOIN member am ON am.id = q.asking_member_id "
    "LEFT JOIN answering_body b ON b.id = q.answering_body_id WHERE e.id = ANY(%(ids)s)"
)


def _tuples(conn: Any, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Rows as tuples, in column order (the counting functions index them)."""
    if hasattr(conn, "exec_driver_sql"):
        return [tuple(r) for r in conn.exec_driver_sql(sql, params)]
    return [tuple(r) for r in conn.execute(sql, params).fetchall()]


def watch_overview(
    conn: Any, slug: str, today: date, *, months: int = PERIOD_MONTHS
) -> WatchOverview:
    """The active watch `slug` at a glance, its period the `months` months up to today.
    Raises UsageError for a watch that is not there (or no longer in the config)."""
    found = _dicts(conn, _WATCH, {"slug": slug})
    if not found:
        raise UsageError(f"no watch {slug!r} (pqwatch watches lists them)")
    watch_id, name, slug, query = (found[0][k] for k in ("id", "name", "slug", "query"))
    firsts = _month_starts(today, months)
    since, until = firsts[0], today
    period = {"w": watch_id, "since": since, "until": until}

    events, questions, first, last = _tuples(conn, _TOTALS, {"w": watch_id})[0]
    # Event dates as ISO text, as SQLite gives them to the counting functions.
    matched = [(r[0], r[1], r[2], str(r[3])) for r in _tuples(conn, _PERIOD_EVENTS, period)]
    qids = sorted({r[1] for r in matched})
    facts = _tuples(conn, _FACTS, {"ids": qids}) if qids else []

    newest = heapq.nlargest(RECENT, matched, key=lambda r: (r[3], r[0]))
    if len(newest) < RECENT and int(events) > len(matched):  # older matches fill the list
        newest = _tuples(conn, _NEWEST_EVENTS, {**period, "n": RECENT})
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
            period_events=len(matched),
        ),
        recent=_recent(conn, [r[0] for r in newest]),
        months=_months(matched, firsts),
        parties=_parties(facts),
        members=_members(facts),
        departments=_departments(facts),
        timeliness=_timeliness(facts, today),
    )


def _recent(conn: Any, event_ids: list[int]) -> tuple[RecentMatch, ...]:
    if not event_ids:
        return ()
    by_id = {r[0]: r for r in _tuples(conn, _RECENT, {"ids": event_ids})}
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
