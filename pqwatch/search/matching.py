"""Match events against watches, inside the transaction that stored the events.

For every newly stored event of a kind people are told about (tabled, holding, answered,
corrected) each active watch's query is run against that event's question. A match records
the watch, the event and the words that matched ("why did I get this?"), and, unless the
event is historical (backfill), one outbox row per subscriber of that watch. Because all of
this commits with the events, a match can neither be lost nor recorded twice: the unique keys
on watch_match(watch, event) and delivery(subscriber, event) absorb any repeat.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from pqwatch.search.engine import MARK_END, MARK_START, marked_terms
from pqwatch.search.query import CompiledQuery, compile_query
from pqwatch.store.db import sql_ts

MATCHED_KINDS = ("tabled", "holding", "answered", "corrected")

_EVENTS = sa.text(
    "SELECT e.id, e.question_id, e.historical FROM event e "
    "WHERE e.id IN :ids AND e.kind IN ('tabled', 'holding', 'answered', 'corrected')"
).bindparams(sa.bindparam("ids", expanding=True))
# A still-unanswered question whose text, heading or department changed may now match a watch
# it did not match when tabled; its tabled event is matched again.
_REMATCH = sa.text(
    "SELECT e.id, e.question_id, e.historical FROM event e JOIN question q "
    "ON q.id = e.question_id WHERE e.question_id IN :ids AND e.kind = 'tabled' "
    "AND q.status = 'unanswered'"
).bindparams(sa.bindparam("ids", expanding=True))
_INSERT_MATCH = sa.text(
    "INSERT INTO watch_match (watch_id, event_id, matched_terms_json, created_at) "
    "VALUES (:watch_id, :event_id, :terms, :now) ON CONFLICT (watch_id, event_id) DO NOTHING"
)
_INSERT_DELIVERIES = sa.text(
    "INSERT INTO delivery (subscriber_id, event_id, status, attempts, created_at) "
    "SELECT s.subscriber_id, :event_id, 'pending', 0, :now FROM subscription s "
    "JOIN subscriber sb ON sb.id = s.subscriber_id AND sb.active "
    "WHERE s.watch_id = :watch_id AND s.unsubscribed_at IS NULL "
    "ON CONFLICT (subscriber_id, event_id) DO NOTHING"
)


class Matcher:
    """Matches events against the active watches; compiled queries are cached by text."""

    def __init__(self) -> None:
        self._compiled: dict[str, CompiledQuery] = {}

    def compiled(self, query: str) -> CompiledQuery:
        cq = self._compiled.get(query)
        if cq is None:
            cq = self._compiled[query] = compile_query(query)
        return cq

    def on_events(
        self, session: Session, event_ids: Sequence[int], changed_question_ids: Sequence[int]
    ) -> int:
        """Match new events (and re-match changed unanswered questions). Returns matches."""
        conn = session.connection()
        rows: list[tuple[int, int, bool]] = []
        if event_ids:
            rows += [(r[0], r[1], bool(r[2])) for r in conn.execute(_EVENTS, {"ids": event_ids})]
        if changed_question_ids:
            rows += [
                (r[0], r[1], bool(r[2]))
                for r in conn.execute(_REMATCH, {"ids": list(changed_question_ids)})
            ]
        if not rows:
            return 0
        watches = conn.execute(sa.text("SELECT id, query FROM watch WHERE active")).all()
        return self._match(conn, watches, rows, datetime.now(UTC), deliver=True)

    def match_history(self, session: Session, watch_id: int, query: str) -> int:
        """Record a new (or changed) watch's matches over the whole archive, for its feed and
        statistics. Nothing is delivered: old news is not mailed as new."""
        conn = session.connection()
        conn.execute(sa.text("DELETE FROM watch_match WHERE watch_id = :w"), {"w": watch_id})
        cq = self.compiled(query)
        where, params = cq.sql()
        events = conn.execute(
            sa.text(
                "SELECT e.id, e.question_id, e.historical FROM event e JOIN question q "
                f"ON q.id = e.question_id WHERE e.kind IN {MATCHED_KINDS!r} AND ({where})"
            ),
            params,
        ).all()
        rows = [(r[0], r[1], bool(r[2])) for r in events]
        return self._match(conn, [(watch_id, query)], rows, datetime.now(UTC), deliver=False)

    def _match(
        self,
        conn: sa.Connection,
        watches: Iterable[Any],
        events: list[tuple[int, int, bool]],
        now: datetime,
        *,
        deliver: bool,
    ) -> int:
        by_question: dict[int, list[tuple[int, bool]]] = {}
        for event_id, qid, historical in events:
            by_question.setdefault(qid, []).append((event_id, historical))
        qids = list(by_question)
        stamp = sql_ts(now)
        matches = 0
        for watch_id, query in watches:
            cq = self.compiled(query)
            for qid, terms in _matching_questions(conn, cq, qids).items():
                for event_id, historical in by_question[qid]:
                    res = conn.execute(
                        _INSERT_MATCH,
                        {
                            "watch_id": watch_id,
                            "event_id": event_id,
                            "terms": json.dumps(list(terms)),
                            "now": stamp,
                        },
                    )
                    matches += res.rowcount
                    if deliver and res.rowcount and not historical:
                        conn.execute(
                            _INSERT_DELIVERIES,
                            {"event_id": event_id, "watch_id": watch_id, "now": stamp},
                        )
        return matches


def _matching_questions(
    conn: sa.Connection, cq: CompiledQuery, qids: list[int]
) -> dict[int, tuple[str, ...]]:
    """Which of these questions the query matches, with the words that matched."""
    params = {**cq.params, "__ids": qids}
    if cq.match is None:
        sql = sa.text(f"SELECT q.id FROM question q WHERE q.id IN :__ids AND ({cq.where})")
        return {
            r[0]: ()
            for r in conn.execute(sql.bindparams(sa.bindparam("__ids", expanding=True)), params)
        }
    params["__match"] = cq.match
    marks = ", ".join(
        f"highlight(question_fts, {i}, '{MARK_START}', '{MARK_END}')" for i in range(3)
    )
    sql = sa.text(
        f"SELECT q.id, {marks} FROM question_fts JOIN question q ON q.id = question_fts.rowid "
        f"WHERE question_fts MATCH :__match AND question_fts.rowid IN :__ids AND ({cq.where})"
    ).bindparams(sa.bindparam("__ids", expanding=True))
    return {r[0]: marked_terms(r[1], r[2], r[3]) for r in conn.execute(sql, params)}
