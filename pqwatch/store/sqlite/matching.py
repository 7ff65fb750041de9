"""Match events against watches, inside the transaction that stored the events.

For every newly stored event of a kind people are told about (tabled, holding, answered,
corrected, and an FOI request's change of state) each active watch's query is run against
that event's question. A match records the watch and the event and, unless the event is
historical (backfill), one outbox row per subscriber of that watch. The words that matched
("why did I get this?") are marked by FTS5's own highlight() when a digest shows the match
(a few hundred at most), not for every match.
Because all of this commits with the events, a match can neither be lost nor recorded twice:
the unique keys on watch_match(watch, event) and delivery(subscriber, event) absorb any
repeat.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from pqwatch.store.db import insert_rows, sql_ts
from pqwatch.store.sqlite.compile import CompiledQuery, compile_query

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


class Matcher:
    """Matches events against the active watches; compiled queries are cached by text."""

    def __init__(self) -> None:
        self._compiled: dict[tuple[str, str], CompiledQuery] = {}

    def compiled(self, query: str, fts_table: str = "question_fts") -> CompiledQuery:
        cq = self._compiled.get((query, fts_table))
        if cq is None:
            cq = self._compiled[(query, fts_table)] = compile_query(query, fts_table=fts_table)
        return cq

    def on_events(
        self, session: Session, event_ids: Sequence[int], changed_question_ids: Sequence[int]
    ) -> int:
        """Match new events (and re-match changed unanswered questions). Returns matches."""
        conn = session.connection()
        rows: list[tuple[int, int, bool]] = []
        if event_ids:
            cur = _raw_cursor(conn)  # a whole batch of ids: plain sqlite3, in chunks
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
        by_question: dict[int, dict[int, None]] = {}  # question -> its events, in order
        for event_id, qid, _ in events:
            by_question.setdefault(qid, {})[event_id] = None
        qids = list(by_question)
        stamp = sql_ts(now)
        cur = _raw_cursor(conn)
        # A batch of new events (ingest) is matched against a private index of just its
        # questions: each watch's query then runs over the batch, not the whole archive.
        # A watch's whole-history match (one watch, events already found) uses the archive's.
        watches = list(watches)
        batch_fts = deliver and len(watches) > 1
        table = _BATCH_FTS if batch_fts else "question_fts"
        if batch_fts:
            _make_batch_index(cur, qids)
        try:
            found: list[tuple[int, int]] = []  # (watch, question), in match order
            for watch_id, query in watches:
                cq = self.compiled(query, table)
                found += [
                    (watch_id, q) for q in _matching_questions(cur, cq, qids, batch=batch_fts)
                ]
        finally:
            if batch_fts:
                _drop_batch_index(cur)
        if not found:
            return 0
        # Matches already recorded are kept as they are (and deliver nothing again). The words
        # that matched are worked out by FTS5's highlight() when a digest shows the match.
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


_BATCH_FTS = "pqwatch_batch_fts"
_BATCH_IDS = "pqwatch_batch_ids"
_CHUNK = 500  # bound parameters per IN list (SQLite allows 32766; keep statements small)


def _raw_cursor(conn: sa.Connection) -> sqlite3.Cursor:
    """The DBAPI cursor of this connection (same transaction): SQLAlchemy's per-statement
    overhead dominated matching a large batch."""
    dbapi = conn.connection.driver_connection
    assert isinstance(dbapi, sqlite3.Connection)
    return dbapi.cursor()


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


def _make_batch_index(cur: sqlite3.Cursor, qids: Sequence[int]) -> None:
    """A temporary FTS5 index, tokenised like question_fts, holding only these questions."""
    _drop_batch_index(cur)
    cur.execute(f"CREATE TEMP TABLE {_BATCH_IDS} (id INTEGER PRIMARY KEY)")
    insert_rows(cur, f"INSERT INTO temp.{_BATCH_IDS} (id)", [(q,) for q in qids])
    cur.execute(
        f"CREATE VIRTUAL TABLE temp.{_BATCH_FTS} USING fts5("
        "heading, question, answer, tokenize='porter unicode61 remove_diacritics 2', "
        "content='', columnsize=0)"  # only rowids are read from it: no copy of the texts
    )
    rows = _indexed_texts(cur, sorted(qids))
    insert_rows(cur, f"INSERT INTO temp.{_BATCH_FTS} (rowid, heading, question, answer)", rows)


def _indexed_texts(cur: sqlite3.Cursor, qids: Sequence[int]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for chunk in _chunks(qids):
        marks = ",".join("?" * len(chunk))
        rows += cur.execute(
            f"SELECT rowid, heading, question, answer FROM question_fts WHERE rowid IN ({marks})",
            list(chunk),
        ).fetchall()
    return rows


def _drop_batch_index(cur: sqlite3.Cursor) -> None:
    cur.execute(f"DROP TABLE IF EXISTS temp.{_BATCH_FTS}")
    cur.execute(f"DROP TABLE IF EXISTS temp.{_BATCH_IDS}")


def _existing_matches(cur: sqlite3.Cursor, event_ids: Sequence[int]) -> set[tuple[int, int]]:
    out: set[tuple[int, int]] = set()
    for chunk in _chunks(event_ids):
        marks = ",".join("?" * len(chunk))
        out.update(
            cur.execute(
                f"SELECT watch_id, event_id FROM watch_match WHERE event_id IN ({marks})",
                list(chunk),
            ).fetchall()
        )
    return out


def _matching_questions(
    cur: sqlite3.Cursor, cq: CompiledQuery, qids: list[int], *, batch: bool
) -> list[int]:
    """Which of these questions the query matches. With `batch`, the query was compiled for
    the batch index, which holds exactly `qids`."""
    table = cq.fts_table
    params = dict(cq.params)
    if batch:  # the batch index holds only the batch; the id table serves filter-only queries
        scope = f"q.id IN (SELECT id FROM temp.{_BATCH_IDS})"
    else:  # integers, rendered inline (any number of them)
        scope = f"q.id IN ({','.join(str(int(q)) for q in qids)})"
    if cq.match is None:
        sql = f"SELECT q.id FROM question q WHERE {scope} AND ({cq.where})"
        return [r[0] for r in cur.execute(sql, params)]
    params["__match"] = cq.match
    # CROSS JOIN: the FTS index first. Left to choose, SQLite may walk an index of `question`
    # (house = ?) over the whole archive and probe the FTS index once per row (100x slower).
    join = "CROSS JOIN" if batch else "JOIN"
    sql = (
        f"SELECT q.id FROM {table} {join} question q ON q.id = {table}.rowid "
        f"WHERE {table} MATCH :__match AND {'' if batch else scope + ' AND '}({cq.where})"
    )
    return [r[0] for r in cur.execute(sql, params)]
