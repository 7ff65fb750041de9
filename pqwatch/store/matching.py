"""Match events against watches, inside the transaction that stored the events.

For every newly stored event of a kind people are told about (tabled, holding, answered,
corrected, and an FOI request's change of state) each active watch's query is run against
that event's question. A match records the watch and the event and, unless the event is
historical (backfill), one outbox row per subscriber of that watch. The words that matched
("why did I get this?") are marked by the index's own highlighting when a digest shows the
match (a few hundred at most), not for every match.
Because all of this commits with the events, a match can neither be lost nor recorded twice:
the unique keys on watch_match(watch, event) and delivery(subscriber, event) absorb any
repeat. Which questions a query matches is each dialect's own (pqwatch.store.sqlite.matching,
pqwatch.store.postgresql.matching: `compile`, `find` and `history_events`).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import cached_property
from types import ModuleType
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from pqwatch.store.db import Cursor, insert_rows, raw_cursor, sql_ts

MATCHED_KINDS = ("tabled", "holding", "answered", "corrected", "state")

_EVENTS_SQL = (
    f"SELECT e.id, e.question_id, e.historical FROM event e WHERE e.kind IN {MATCHED_KINDS!r}"
)
# A still-unanswered question whose text, heading or department changed may now match a watch
# it did not match when tabled; its tabled event is matched again.
_REMATCH = sa.text(
    "SELECT e.id, e.question_id, e.historical FROM event e JOIN question q "
    "ON q.id = e.question_id WHERE e.question_id IN :ids AND e.kind = 'tabled' "
    "AND q.status = 'unanswered'"
).bindparams(sa.bindparam("ids", expanding=True))
_CHUNK = 500  # bound parameters per IN list (SQLite allows 32766; keep statements small)


class Matcher:
    """Matches events against the active watches; compiled queries are cached by text."""

    def __init__(self, dialect: str = "sqlite") -> None:
        self._dialect_name = dialect
        self._compiled: dict[tuple[str, bool], Any] = {}

    @cached_property
    def _dialect(self) -> ModuleType:
        return importlib.import_module(f"pqwatch.store.{self._dialect_name}.matching")

    def compiled(self, query: str, batch: bool = False) -> Any:
        """The query compiled for the archive's index, or (batch) for the dialect's index of
        one batch of questions."""
        cq = self._compiled.get((query, batch))
        if cq is None:
            cq = self._compiled[(query, batch)] = self._dialect.compile(query, batch)
        return cq

    def on_events(
        self, session: Session, event_ids: Sequence[int], changed_question_ids: Sequence[int]
    ) -> int:
        """Match new events (and re-match changed unanswered questions). Returns matches."""
        conn = session.connection()
        rows: list[tuple[int, int, bool]] = []
        if event_ids:
            cur = raw_cursor(conn)  # a whole batch of ids: the DBAPI cursor, in chunks
            for chunk in _chunks(event_ids):
                marks = ",".join("?" * len(chunk))
                rows += [
                    (r[0], r[1], bool(r[2]))
                    for r in cur.execute(f"{_EVENTS_SQL} AND e.id IN ({marks})", list(chunk))
                ]
        if changed_question_ids:
            rows += [
                (r[0], r[1], bool(r[2]))
                for r in conn.execute(_REMATCH, {"ids": list(changed_question_ids)})
            ]
        if not rows:
            return 0
        watches = conn.execute(sa.text("SELECT id, query FROM watch WHERE active")).all()
        if not watches:
            return 0
        return self._match(conn, watches, rows, datetime.now(UTC), deliver=True)

    def match_history(self, session: Session, watch_id: int, query: str) -> int:
        """Record a new (or changed) watch's matches over the whole archive, for its feed and
        statistics. Nothing is delivered: old news is not mailed as new."""
        conn = session.connection()
        conn.execute(sa.text("DELETE FROM watch_match WHERE watch_id = :w"), {"w": watch_id})
        rows = self._dialect.history_events(conn, self.compiled(query), MATCHED_KINDS)
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
        by_question: dict[int, dict[int, None]] = {}  # question -> its events, in order
        for event_id, qid, _ in events:
            by_question.setdefault(qid, {})[event_id] = None
        stamp = sql_ts(now)
        cur = raw_cursor(conn)
        # A batch of new events (ingest) may be matched against an index of just its
        # questions (the dialect decides); a watch's whole-history match uses the archive's.
        watches = list(watches)
        batch = deliver and len(watches) > 1
        found: list[tuple[int, int]] = self._dialect.find(
            conn, self.compiled, watches, list(by_question), batch=batch
        )
        if not found:
            return 0
        # Matches already recorded are kept as they are (and deliver nothing again). The words
        # that matched are worked out by the index's highlighting when a digest shows them.
        existing = _existing_matches(
            cur, sorted({e for qid in {q for _, q in found} for e in by_question[qid]})
        )
        new = [
            (w, e, stamp) for w, qid in found for e in by_question[qid] if (w, e) not in existing
        ]
        insert_rows(
            cur,
            "INSERT INTO watch_match (watch_id, event_id, created_at)",
            new,
            "ON CONFLICT (watch_id, event_id) DO NOTHING",
        )
        if deliver:
            historical_events = {e for e, _, h in events if h}
            # Who receives each watch, read once (not joined again for every match).
            receivers: dict[int, list[int]] = {}
            for watch_id, subscriber_id in cur.execute(
                "SELECT s.watch_id, s.subscriber_id FROM subscription s "
                "JOIN subscriber sb ON sb.id = s.subscriber_id AND sb.active "
                "WHERE s.unsubscribed_at IS NULL ORDER BY s.watch_id, s.subscriber_id"
            ):
                receivers.setdefault(watch_id, []).append(subscriber_id)
            # One row per subscriber and event, however many of their watches matched it.
            outbox = dict.fromkeys(
                (sub, e)
                for w, e, _ in new
                if e not in historical_events
                for sub in receivers.get(w, ())
            )
            insert_rows(
                cur,
                "INSERT INTO delivery (subscriber_id, event_id, status, attempts, created_at)",
                [(sub, e, "pending", 0, stamp) for sub, e in outbox],
                "ON CONFLICT (subscriber_id, event_id) DO NOTHING",
            )
        return len(new)


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


def _existing_matches(cur: Cursor, event_ids: Sequence[int]) -> set[tuple[int, int]]:
    out: set[tuple[int, int]] = set()
    for chunk in _chunks(event_ids):
        marks = ",".join("?" * len(chunk))
        out.update(
            tuple(r)
            for r in cur.execute(
                f"SELECT watch_id, event_id FROM watch_match WHERE event_id IN ({marks})",
                list(chunk),
            ).fetchall()
        )
    return out
