"""Read models the feeds and digests are built from (and, later, the web pages): plain rows,
no live objects, and the words a watch matched, as the index's highlighting marks them. The SQL
lives here, in the store; the stages shape the rows."""

from __future__ import annotations

import importlib
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from pqwatch.store.db import Database, raw_cursor
from pqwatch.store.models import Answer, AnsweringBody, Event, Member, Question, Watch, WatchMatch

EV = Event.__table__  # type: ignore[attr-defined]
Q = Question.__table__  # type: ignore[attr-defined]
B = AnsweringBody.__table__  # type: ignore[attr-defined]
A = Answer.__table__  # type: ignore[attr-defined]
MB = Member.__table__  # type: ignore[attr-defined]
M = WatchMatch.__table__  # type: ignore[attr-defined]
W = Watch.__table__  # type: ignore[attr-defined]


class Reads:
    def __init__(self, db: Database) -> None:
        self.db = db

    def active_watches(self) -> list[tuple[str, str, str]]:
        """(slug, name, query) of each active operator watch, by name. Personal watches
        (a subscriber's own search, made on the web) are theirs: no public feed lists them."""
        with self.db.read() as session:
            rows = session.connection().execute(
                sa.select(W.c.slug, W.c.name, W.c.query)
                .where(W.c.active, W.c.origin == "config")
                .order_by(W.c.name)
            )
            return [(r[0], r[1], r[2]) for r in rows]

    def feed_events(self, slug: str, limit: int) -> list[dict[str, Any]]:
        """A watch's newest matched events, newest first ("all": any watch's), with what a
        feed item shows: question, department, asker, the answer version and who gave it,
        and the names of the active watches that matched it (`watches`, a sorted tuple)."""
        e, q, b, a = EV.alias("e"), Q.alias("q"), B.alias("b"), A.alias("a")
        asker, answerer, corrector = MB.alias("am"), MB.alias("wm"), MB.alias("cm")
        minister = MB.alias("qm")  # who answers the question (a statement: who made it)
        # Operator watches only: a feed never shows what a person's own search found.
        matched = (
            sa.select(M.c.event_id)
            .join(W, W.c.id == M.c.watch_id)
            .where(W.c.active, W.c.origin == "config")
        )
        if slug != "all":
            matched = matched.where(W.c.slug == slug)
        query = (
            sa.select(
                e.c.id.label("event_id"), e.c.kind, e.c.event_date, q.c.source, q.c.source_id,
                q.c.parliament, q.c.kind.label("item_kind"), q.c.uin, q.c.house,
                q.c.date_tabled, q.c.date_for_answer, q.c.heading, q.c.question_text, q.c.status,
                e.c.detail_json,
                q.c.attachments_json, b.c.name.label("department"), asker.c.name.label("asker"),
                a.c.answer_html, a.c.date_answered, a.c.date_corrected,
                answerer.c.name.label("answerer"), corrector.c.name.label("corrector"),
                minister.c.name.label("minister"),
            )
            .join(q, q.c.id == e.c.question_id)
            .outerjoin(b, b.c.id == q.c.answering_body_id)
            .outerjoin(asker, asker.c.id == q.c.asking_member_id)
            .outerjoin(a, a.c.id == e.c.answer_id)
            .outerjoin(answerer, answerer.c.id == a.c.answering_member_id)
            .outerjoin(corrector, corrector.c.id == a.c.correcting_member_id)
            .outerjoin(minister, minister.c.id == q.c.answering_member_id)
            .where(e.c.id.in_(matched))
            .order_by(e.c.event_date.desc(), e.c.id.desc())
            .limit(limit)
        )  # fmt: skip
        with self.db.read() as session:
            conn = session.connection()
            rows = [dict(r) for r in conn.execute(query).mappings()]
            names: dict[int, set[str]] = {}
            ids = [r["event_id"] for r in rows]
            for event_id, name in conn.execute(
                sa.select(M.c.event_id, W.c.name)
                .join(W, W.c.id == M.c.watch_id)
                .where(W.c.active, W.c.origin == "config", M.c.event_id.in_(ids))
            ):
                names.setdefault(event_id, set()).add(name)
        for r in rows:
            r["watches"] = tuple(sorted(names.get(r["event_id"], ())))
        return rows


# -- digests: read in a few IN (...) queries per digest, on the connection (and transaction)
# the caller holds. Ids go in chunks well under SQLite's limit on bound parameters.

_CHUNK = 500

_PENDING = (
    "SELECT d.id AS delivery_id, d.event_id, e.kind, e.question_id FROM delivery d "
    "JOIN event e ON e.id = d.event_id WHERE d.id IN ({})"
)
_QUESTIONS = (
    "SELECT q.id, q.source_id, q.parliament, q.kind, q.uin, q.house, q.date_tabled, "
    "q.date_for_answer, q.heading, "
    "q.question_text, q.date_answered, q.date_answer_corrected, q.attachments_json, "
    "q.status, b.name AS department, "
    "am.name AS asker, am.party AS asker_party, am.member_from AS asker_from, "
    "wm.name AS answerer "
    "FROM question q LEFT JOIN answering_body b ON b.id = q.answering_body_id "
    "LEFT JOIN member am ON am.id = q.asking_member_id "
    "LEFT JOIN member wm ON wm.id = q.answering_member_id WHERE q.id IN ({})"
)
_GROUPS = (
    "SELECT g.question_id, o.id FROM question_group g "
    "JOIN question q ON q.id = g.question_id "
    "JOIN question o ON o.uin = g.grouped_uin AND o.date_tabled = g.grouped_date_tabled "
    "AND o.house = q.house WHERE g.question_id IN ({})"
)
_ANSWERS = (
    "SELECT a.question_id, a.kind, a.answer_html, a.answer_text, a.is_full_text, "
    "a.date_answered, a.date_corrected, "
    "wm.name AS answerer, cm.name AS corrector FROM answer a "
    "LEFT JOIN member wm ON wm.id = a.answering_member_id "
    "LEFT JOIN member cm ON cm.id = a.correcting_member_id "
    "WHERE a.question_id IN ({}) ORDER BY a.question_id, a.version"
)
_MATCHES = (
    "SELECT m.id, m.event_id, w.name, w.query FROM watch_match m "
    "JOIN watch w ON w.id = m.watch_id "
    "JOIN subscription s ON s.watch_id = w.id AND s.subscriber_id = ? "
    "WHERE m.event_id IN ({})"
)


# These run once or more per digest: on the DBAPI cursor of the same connection and
# transaction (raw_cursor), SQLAlchemy's per-statement work (an expanding IN) cost more than
# they do.


def _in_chunks(
    conn: sa.Connection, sql: str, ids: Sequence[int], *before: Any
) -> Iterator[tuple[Any, ...]]:
    cur = raw_cursor(conn)
    for i in range(0, len(ids), _CHUNK):
        chunk = list(ids[i : i + _CHUNK])
        yield from cur.execute(sql.format(", ".join("?" * len(chunk))), [*before, *chunk])


def _dicts(conn: sa.Connection, sql: str, ids: Sequence[int]) -> list[dict[str, Any]]:
    cur = raw_cursor(conn)
    out: list[dict[str, Any]] = []
    for i in range(0, len(ids), _CHUNK):
        chunk = list(ids[i : i + _CHUNK])
        cur.execute(sql.format(", ".join("?" * len(chunk))), chunk)
        names = [d[0] for d in cur.description]
        out.extend(dict(zip(names, row, strict=True)) for row in cur.fetchall())
    return out


def pending_events(conn: sa.Connection, delivery_ids: Sequence[int]) -> list[tuple[Any, ...]]:
    """(delivery id, event id, event kind, question id) of outbox rows."""
    return list(_in_chunks(conn, _PENDING, delivery_ids))


def digest_questions(conn: sa.Connection, ids: Sequence[int]) -> list[dict[str, Any]]:
    """Questions as a digest shows them: with department and asker."""
    return _dicts(conn, _QUESTIONS, ids)


def digest_groups(conn: sa.Connection, ids: Sequence[int]) -> list[tuple[Any, ...]]:
    """(question id, id of a stored question it is grouped with)."""
    return list(_in_chunks(conn, _GROUPS, ids))


def digest_answers(conn: sa.Connection, ids: Sequence[int]) -> list[dict[str, Any]]:
    """Every answer version of the questions, oldest first, with who gave and corrected it."""
    return _dicts(conn, _ANSWERS, ids)


def subscriber_matches(
    conn: sa.Connection, subscriber_id: int, event_ids: Sequence[int]
) -> list[tuple[Any, ...]]:
    """(match id, event id, watch name, watch query) for this subscriber's watches."""
    return list(_in_chunks(conn, _MATCHES, event_ids, subscriber_id))


def matched_words(
    conn: sa.Connection | sqlite3.Connection, query: str, qid: int
) -> tuple[str, ...]:
    """The words of a watch's query that the index's highlighting marks in a question's
    heading, question and answer, lower-cased, distinct, in order of appearance (none when the
    query has no words, or no longer matches). Each dialect marks them its own way."""
    dialect = "sqlite" if isinstance(conn, sqlite3.Connection) else conn.dialect.name
    module = importlib.import_module(f"pqwatch.store.{dialect}.search")
    words: tuple[str, ...] = module.matched_words(conn, query, qid)
    return words
