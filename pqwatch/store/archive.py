"""Write fetched questions into the archive: upsert, answer versions, lifecycle events.

One call of `store_page` is one short write transaction. Everything slow (HTTP, HTML
sanitising) has happened before; inside, the stored state is re-read under the write lock and
`decide` says what to write, so two writers can never both record the same change. Statements
are Core (bulk-friendly), not the ORM unit of work.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from types import ModuleType
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from pqwatch.decide import (
    ANSWERED,
    CORRECTED,
    HOLDING,
    STATE,
    TABLED,
    TRANSFERRED,
    WITHDRAWN,
    NewAnswer,
    PreparedAnswer,
    StoredQuestion,
    decide,
)
from pqwatch.store.db import Cursor, Database, insert_rows, raw_cursor, sql_ts
from pqwatch.store.models import (
    Answer,
    AnsweringBody,
    Event,
    Member,
    PollRun,
    Question,
    QuestionGroup,
    SourceState,
)
from pqwatch.store.sqlite.facets import facet_text
from pqwatch.text import normalize_for_search
from pqwatch.types import OpenItem, QuestionData, attachments_to_json

Q = Question.__table__  # type: ignore[attr-defined]
A = Answer.__table__  # type: ignore[attr-defined]
E = Event.__table__  # type: ignore[attr-defined]
G = QuestionGroup.__table__  # type: ignore[attr-defined]
M = Member.__table__  # type: ignore[attr-defined]
B = AnsweringBody.__table__  # type: ignore[attr-defined]
R = PollRun.__table__  # type: ignore[attr-defined]
S = SourceState.__table__  # type: ignore[attr-defined]

_COUNTED = {
    TABLED: "new_questions",
    ANSWERED: "new_answers",
    HOLDING: "holding_answers",
    CORRECTED: "corrections",
    TRANSFERRED: "transfers",
    WITHDRAWN: "withdrawals",
    STATE: "state_changes",  # FOI requests (reported by the poll, not kept in poll_run)
}


@dataclass
class StoreCounts:
    new_questions: int = 0
    new_answers: int = 0
    holding_answers: int = 0
    corrections: int = 0
    transfers: int = 0
    withdrawals: int = 0
    state_changes: int = 0
    items_seen: int = 0
    items_written: int = 0
    new_event_ids: list[int] = field(default_factory=list)

    def add(self, other: StoreCounts) -> None:
        for name in _COUNTED.values():
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.items_seen += other.items_seen
        self.items_written += other.items_written
        self.new_event_ids.extend(other.new_event_ids)

    def as_dict(self) -> dict[str, int]:
        keys = (*_COUNTED.values(), "items_seen", "items_written")
        return {k: getattr(self, k) for k in keys}


@dataclass(frozen=True)
class SourceHealth:
    source: str
    cursor_date: date | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    consecutive_failures: int
    last_error: str | None
    alert_sent: bool


# Called inside the page's write transaction with the ids of newly inserted events and of
# questions that changed without a new event, so that matching (and the outbox rows it
# causes) commit together with the events.
EventHook = Callable[[Session, list[int], list[int]], object]


class Archive:
    def __init__(self, db: Database, now: Callable[[], datetime]) -> None:
        self.db = db
        self.now = now

    # -- reading state ----------------------------------------------------------------------

    def unchanged_ids(self, items: Sequence[QuestionData]) -> set[str]:
        """Source ids whose stored list hash equals the fetched one: nothing to do for them."""
        if not items:
            return set()
        with self.db.read() as session:
            return _unchanged(raw_cursor(session), items)

    # -- writing ----------------------------------------------------------------------------

    def store_page(
        self,
        batch: Sequence[tuple[QuestionData, PreparedAnswer | None]],
        *,
        today: date,
        historical: bool = False,
        on_events: EventHook | None = None,
    ) -> StoreCounts:
        counts = StoreCounts(items_seen=len(batch))
        if not batch:
            return counts
        now = sql_ts(self.now())
        dialect = self.db.dialect_module("ingest")
        with self.db.write() as session:
            cur = raw_cursor(session)
            dialect.begin_page(cur)
            # One row per question: if a batch holds a question twice, its last copy wins.
            latest = {(i.source, i.source_id): (i, a) for i, a in batch}
            unchanged = _unchanged(cur, [item for item, _ in latest.values()])
            todo = [(i, a) for i, a in latest.values() if i.source_id not in unchanged]
            if not todo:
                return counts
            _upsert_members(cur, [i for i, _ in todo], now)
            _upsert_bodies(cur, [i for i, _ in todo], now)
            state = _load_state(cur, [i for i, _ in todo])
            rows = _PageRows(cur, historical, now, dialect)
            changed: list[int] = []
            for item, prepared in todo:
                old = state.get(item.source_id)
                decision = decide(old, item, prepared, today)
                if old is None:
                    qid = rows.new_question(item, decision.status)
                else:
                    qid = _write_question(cur, item, old, decision.status, now)
                    changed.append(qid)  # text, heading or department may have changed
                rows.group(qid, item)
                answer_ids = rows.answers(qid, item, decision.answers)
                rows.fts(qid, item, decision.answers, decision.status)
                for ev in decision.events:
                    answer_id = None if ev.answer_index is None else answer_ids[ev.answer_index]
                    if rows.event(qid, ev.kind, ev.event_date, answer_id, ev.detail):
                        counter = _COUNTED[ev.kind]
                        setattr(counts, counter, getattr(counts, counter) + 1)
                counts.items_written += 1
            counts.new_event_ids.extend(rows.flush())
            if on_events is not None and (counts.new_event_ids or changed):
                on_events(session, counts.new_event_ids, sorted(set(changed)))
        return counts

    # -- poll runs and cursors --------------------------------------------------------------

    def start_run(self, source: str, kind: str, start: date, end: date) -> int:
        with self.db.write() as session:
            res = session.connection().execute(
                sa.insert(R).values(
                    source=source,
                    kind=kind,
                    window_start=start,
                    window_end=end,
                    status="running",
                    started_at=self.now(),
                )
            )
            key = res.inserted_primary_key
            assert key is not None
            return int(key[0])

    def finish_run(
        self,
        run_id: int,
        *,
        source: str,
        ok: bool,
        counts: dict[str, int],
        requests: int,
        seconds: float,
        error: str | None = None,
        move_cursor_to: date | None = None,
        health: bool = True,
        state: dict[str, Any] | None = None,
    ) -> None:
        """Record the outcome of a run; on success move the cursor, in the same transaction,
        as the very last step of the window. With health (polls, not backfills), it also
        counts for the source's last success, failures in a row and operator alerts."""
        now = self.now()
        fields = {k: v for k, v in counts.items() if k in R.c}
        with self.db.write() as session:
            conn = session.connection()
            conn.execute(
                sa.update(R)
                .where(R.c.id == run_id)
                .values(
                    status="ok" if ok else "failed",
                    error=error,
                    requests=requests,
                    duration_seconds=round(seconds, 3),
                    finished_at=now,
                    **fields,
                )
            )
            if not health:
                return
            conn.execute(
                self.db.insert(S)
                .values(source=source, consecutive_failures=0, alert_sent=False, updated_at=now)
                .on_conflict_do_nothing(index_elements=["source"])
            )
            if ok:
                values: dict[str, Any] = {
                    "last_success_at": now,
                    "consecutive_failures": 0,
                    "updated_at": now,
                }
                if state is not None:
                    values["state_json"] = json.dumps(state, sort_keys=True)
                if move_cursor_to is not None:
                    # Never move a cursor backwards (an explicit re-sync of an old window).
                    values["cursor_date"] = sa.case(
                        (S.c.cursor_date.is_(None), move_cursor_to),
                        (S.c.cursor_date < move_cursor_to, move_cursor_to),
                        else_=S.c.cursor_date,
                    )
                conn.execute(sa.update(S).where(S.c.source == source).values(**values))
            else:
                conn.execute(
                    sa.update(S)
                    .where(S.c.source == source)
                    .values(
                        last_failure_at=now,
                        consecutive_failures=S.c.consecutive_failures + 1,
                        last_error=error,
                        updated_at=now,
                    )
                )

    def close_abandoned_runs(self) -> int:
        """Runs left `running` by a process that died (kill -9, a crash): they failed. Call
        only when no poll or backfill runs (pqwatch.locks.polling says when)."""
        with self.db.write() as session:
            done = session.connection().execute(
                sa.update(R)
                .where(R.c.status == "running")
                .values(
                    status="failed",
                    error="interrupted: the process stopped before the run finished",
                    finished_at=self.now(),
                )
            )
            return int(done.rowcount)

    def source_health(self) -> list[SourceHealth]:
        """Each source's cursor, last success and failure, and whether the operator knows."""
        with self.db.read() as session:
            rows = session.connection().execute(
                sa.select(
                    S.c.source, S.c.cursor_date, S.c.last_success_at, S.c.last_failure_at,
                    S.c.consecutive_failures, S.c.last_error, S.c.alert_sent,
                ).order_by(S.c.source)
            )  # fmt: skip
            return [SourceHealth(*r) for r in rows]

    def set_alert_sent(self, source: str, sent: bool) -> None:
        with self.db.write() as session:
            session.connection().execute(
                sa.update(S).where(S.c.source == source).values(alert_sent=sent)
            )

    def last_poll_started(self) -> datetime | None:
        with self.db.read() as session:
            value = (
                session.connection()
                .execute(sa.select(sa.func.max(R.c.started_at)).where(R.c.kind == "poll"))
                .scalar()
            )
        return value if isinstance(value, datetime) else None

    def cursor(self, source: str) -> date | None:
        with self.db.read() as session:
            value = (
                session.connection()
                .execute(sa.select(S.c.cursor_date).where(S.c.source == source))
                .scalar()
            )
        return value if isinstance(value, date) else None

    def source_state(self, source: str) -> dict[str, Any]:
        """What the source kept from its last good poll (an ETag, the highest id seen)."""
        with self.db.read() as session:
            value = (
                session.connection()
                .execute(sa.select(S.c.state_json).where(S.c.source == source))
                .scalar()
            )
        try:
            state = json.loads(value) if value else {}
        except ValueError:
            state = {}  # unreadable: the source starts over, which only costs requests
        return state if isinstance(state, dict) else {}

    def open_items(self, source: str) -> list[OpenItem]:
        """The source's stored items still waiting for an answer, oldest first."""
        with self.db.read() as session:
            rows = session.connection().execute(
                sa.select(Q.c.source_id, Q.c.date_tabled, Q.c.uin)
                .where(Q.c.source == source, Q.c.status.in_(("unanswered", "holding")))
                .order_by(Q.c.date_tabled, Q.c.id)
            )
            return [OpenItem(str(r[0]), r[1], r[2]) for r in rows]

    def highest_id(self, source: str) -> int | None:
        """The largest numeric source id stored for the source (None when it has none)."""
        with self.db.read() as session:
            value = (
                session.connection()
                .execute(
                    sa.select(sa.func.max(sa.cast(Q.c.source_id, sa.Integer))).where(
                        Q.c.source == source
                    )
                )
                .scalar()
            )
        return int(value) if value is not None else None

    def pending_details(self, source: str, limit: int) -> list[tuple[str, str]]:
        """(source id, stored list hash) of questions stored without their full text, the
        longest untried first: each poll fetches a few of them again (migration 0008)."""
        with self.db.read() as session:
            rows = session.connection().execute(
                sa.select(Q.c.source_id, Q.c.content_hash)
                .where(Q.c.detail_pending, Q.c.source == source)
                .order_by(Q.c.updated_at, Q.c.id)
                .limit(limit)
            )
            return [(str(r[0]), str(r[1])) for r in rows]

    def detail_still_missing(self, source: str, source_ids: Sequence[str]) -> None:
        """A try to fetch these again failed: send them to the back of the queue."""
        if not source_ids:
            return
        with self.db.write() as session:
            session.connection().execute(
                sa.update(Q)
                .where(Q.c.source == source, Q.c.source_id.in_(list(source_ids)))
                .values(updated_at=self.now())
            )

    def done_windows(self, source: str, kind: str) -> set[tuple[date, date]]:
        """Windows already stored completely by a run of this kind (for restartable backfill)."""
        with self.db.read() as session:
            rows = session.connection().execute(
                sa.select(R.c.window_start, R.c.window_end).where(
                    R.c.source == source, R.c.kind == kind, R.c.status == "ok"
                )
            )
            return {(r[0], r[1]) for r in rows}


# -- helpers (run inside a write transaction, on the DBAPI cursor) ----------------------------
# The ingest hot path runs on the DBAPI cursor of the session's own connection (so inside the
# same transaction): SQLAlchemy's per-statement overhead was 85% of the time (STYLE.md C.1).


def _d(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _date(value: date | str | None) -> date | None:
    """A date column as read back: text on SQLite, a date on PostgreSQL."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(value) if value else None


def _unchanged(cur: Cursor, items: Sequence[QuestionData]) -> set[str]:
    """Source ids whose stored list hash equals the fetched one."""
    out: set[str] = set()
    by_source: dict[str, dict[str, str]] = {}
    for it in items:
        by_source.setdefault(it.source, {})[it.source_id] = it.list_hash
    for source, wanted in by_source.items():
        marks = ",".join("?" * len(wanted))
        rows = cur.execute(
            # A row stored without its full text is never "unchanged": it must be fetched again.
            f"SELECT source_id, content_hash FROM question WHERE source = ? "
            f"AND source_id IN ({marks}) AND NOT detail_pending",
            (source, *wanted),
        )
        out.update(sid for sid, h in rows if wanted.get(sid) == h)
    return out


def _upsert_members(cur: Cursor, items: Sequence[QuestionData], now: str) -> None:
    full: dict[int, tuple[Any, ...]] = {}
    bare: set[int] = set()
    for it in items:
        # Askers sit in the question's House; so do the ministers who answer there.
        for mid, m in (
            (it.asking_member_id, it.asking_member),
            (it.answering_member_id, it.answering_member),
            (it.correcting_member_id, it.correcting_member),
        ):
            if m is not None and m.name:
                full[m.id] = (
                    m.id, m.name, m.list_as, m.party, m.party_abbreviation, m.member_from,
                    it.house, m.thumbnail_url, now,
                )  # fmt: skip
            if mid is not None:  # every id a question refers to needs its row
                bare.add(mid)
    insert_rows(
        cur,
        "INSERT INTO member (id, name, list_as, party, party_abbreviation, member_from, "
        "house, thumbnail_url, updated_at)",
        list(full.values()),
        "ON CONFLICT (id) DO UPDATE SET name = excluded.name, list_as = excluded.list_as, "
        "party = excluded.party, party_abbreviation = excluded.party_abbreviation, "
        "member_from = excluded.member_from, house = excluded.house, "
        "thumbnail_url = excluded.thumbnail_url, updated_at = excluded.updated_at",
    )
    bare -= full.keys()
    insert_rows(
        cur,
        "INSERT INTO member (id, updated_at)",
        [(mid, now) for mid in sorted(bare)],
        "ON CONFLICT (id) DO NOTHING",
    )


def _upsert_bodies(cur: Cursor, items: Sequence[QuestionData], now: str) -> None:
    named = {
        it.answering_body_id: (it.answering_body_id, it.answering_body_name, now)
        for it in items
        if it.answering_body_id is not None and it.answering_body_name
    }
    insert_rows(
        cur,
        "INSERT INTO answering_body (id, name, updated_at)",
        list(named.values()),
        "ON CONFLICT (id) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at "
        "WHERE answering_body.name != excluded.name",
    )
    # An id without a name: a placeholder row, never over a name already known.
    nameless = {
        it.answering_body_id: (it.answering_body_id, f"Answering body {it.answering_body_id}", now)
        for it in items
        if it.answering_body_id is not None and it.answering_body_id not in named
    }
    insert_rows(
        cur,
        "INSERT INTO answering_body (id, name, updated_at)",
        list(nameless.values()),
        "ON CONFLICT (id) DO NOTHING",
    )


def _load_state(cur: Cursor, items: Sequence[QuestionData]) -> dict[str, StoredQuestion]:
    if not items:
        return {}
    source = items[0].source
    ids = [i.source_id for i in items]
    marks = ",".join("?" * len(ids))
    rows = cur.execute(
        "SELECT q.id, q.source_id, q.content_hash, q.is_withdrawn, q.answering_body_id, "
        "b.name, q.date_answer_corrected, q.status FROM question q "
        "LEFT JOIN answering_body b ON b.id = q.answering_body_id "
        f"WHERE q.source = ? AND q.source_id IN ({marks})",
        (source, *ids),
    ).fetchall()
    if not rows:
        return {}
    qids = [r[0] for r in rows]
    keys: dict[int, set[tuple[str, str]]] = {q: set() for q in qids}
    partial: dict[int, set[tuple[str, str]]] = {q: set() for q in qids}
    qmarks = ",".join("?" * len(qids))
    for qid, kind, h, full in cur.execute(
        "SELECT question_id, kind, content_hash, is_full_text FROM answer "
        f"WHERE question_id IN ({qmarks})",
        qids,
    ).fetchall():
        keys[qid].add((kind, h))
        if not full:
            partial[qid].add((kind, h))
    return {
        r[1]: StoredQuestion(
            id=r[0],
            list_hash=r[2],
            is_withdrawn=bool(r[3]),
            answering_body_id=r[4],
            answering_body_name=r[5],
            date_answer_corrected=_date(r[6]),
            answer_keys=frozenset(keys[r[0]]),
            partial_keys=frozenset(partial[r[0]]),
            status=r[7],
        )
        for r in rows
    }


_QUESTION_COLUMNS = (
    "parliament", "kind", "uin", "house", "date_tabled", "date_for_answer", "is_named_day",
    "heading",
    "asking_member_id", "member_has_interest", "answering_body_id", "question_text",
    "question_text_full", "is_withdrawn", "status", "date_answered", "date_holding_answer",
    "date_answer_corrected", "answering_member_id", "attachments_json", "detail_pending",
    "content_hash", "updated_at", "details_json",
)  # fmt: skip
_INSERT_Q = (
    f"INSERT INTO question (id, source, source_id, first_seen_at, {', '.join(_QUESTION_COLUMNS)})"
)
_UPDATE_Q = f"UPDATE question SET {', '.join(c + ' = ?' for c in _QUESTION_COLUMNS)} WHERE id = ?"
_ANSWER_COLUMNS = (
    "id, question_id, version, kind, recorded_at, answer_html, answer_text, "
    "original_answer_html, is_full_text, answering_member_id, correcting_member_id, "
    "date_answered, date_corrected, content_hash"
)


def _question_values(
    item: QuestionData, text: str, text_full: bool, status: str, now: str
) -> tuple[Any, ...]:
    return (
        item.parliament, item.kind, item.uin, item.house, item.date_tabled.isoformat(),
        _d(item.date_for_answer),
        item.is_named_day, item.heading, item.asking_member_id, item.member_has_interest,
        item.answering_body_id, text, text_full, item.is_withdrawn, status,
        _d(item.date_answered), _d(item.date_holding_answer), _d(item.date_answer_corrected),
        item.answering_member_id, attachments_to_json(item.attachments),
        # Still without the full text it needs: fetched again by a later poll.
        not text_full or (item.has_answer and not item.answer_full),
        item.list_hash, now, item.details,
    )  # fmt: skip


def _write_question(
    cur: Cursor,
    item: QuestionData,
    old: StoredQuestion,
    status: str,
    now: str,
) -> int:
    """Update a stored question in place (new ones go in with the page's rows)."""
    text, text_full = item.question_text, item.question_text_full
    if not text_full:
        # Never replace a full stored text by a list result's cut one.
        current = cur.execute(
            "SELECT question_text, question_text_full FROM question WHERE id = ?", (old.id,)
        ).fetchone()
        if current[1] and current[0].startswith(text[:200]):
            text, text_full = current[0], True
    qid = old.id
    cur.execute(_UPDATE_Q, (*_question_values(item, text, text_full, status, now), qid))
    if item.is_withdrawn and not old.is_withdrawn:
        cur.execute("UPDATE question SET date_withdrawn = ? WHERE id = ?", (now[:10], qid))
    cur.execute("DELETE FROM question_group WHERE question_id = ?", (qid,))
    return qid


class _PageRows:
    """The rows one store_page adds, written together by :meth:`flush`.

    New rows get their ids here, counting on from the largest stored id, as SQLite itself
    would: the page's write transaction holds the database's only write lock, so nothing else
    can take an id meanwhile. Events are checked against the stored ones here too (the unique
    key is question, kind and date), so every event that :meth:`event` accepts is inserted.
    """

    def __init__(self, cur: Cursor, historical: bool, now: str, dialect: ModuleType) -> None:
        self.cur, self.historical, self.now, self.dialect = cur, historical, now, dialect
        last = cur.execute(
            "SELECT (SELECT coalesce(max(id), 0) FROM question), "
            "(SELECT coalesce(max(id), 0) FROM answer), "
            "(SELECT coalesce(max(id), 0) FROM event)"
        ).fetchone()
        self.next_q, self.next_a, self.next_e = (int(n) + 1 for n in last)
        self.first_new = self.next_q  # ids below it are stored questions
        self.questions: list[tuple[Any, ...]] = []
        self.groups: list[tuple[int, str, str]] = []
        self.answer_rows: list[tuple[Any, ...]] = []
        self.event_rows: list[tuple[Any, ...]] = []
        self.fts_rows: list[tuple[int, str, str, str, str]] = []
        self.reindexed: list[int] = []  # stored questions whose index row is replaced
        # Event keys (question, kind, date) of stored questions, read when first needed.
        self.stored_events: dict[int, set[tuple[str, str]]] = {}
        self.new_events: set[tuple[int, str, str]] = set()

    def new_question(self, item: QuestionData, status: str) -> int:
        qid, self.next_q = self.next_q, self.next_q + 1
        values = _question_values(
            item, item.question_text, item.question_text_full, status, self.now
        )
        self.questions.append((qid, item.source, item.source_id, self.now, *values))
        return qid

    def group(self, qid: int, item: QuestionData) -> None:
        self.groups.extend((qid, g.uin, g.date_tabled.isoformat()) for g in item.group)

    def answers(self, qid: int, item: QuestionData, answers: Sequence[NewAnswer]) -> list[int]:
        ids: list[int] = []
        if not answers:
            return ids
        cur = self.cur
        # A question inserted just now has no versions yet.
        version = (
            0
            if qid >= self.first_new
            else cur.execute(
                "SELECT coalesce(max(version), 0) FROM answer WHERE question_id = ?", (qid,)
            ).fetchone()[0]
        )
        for ans in answers:
            correction = ans.kind == "correction"
            values = (
                ans.html, ans.text, ans.original_html, ans.is_full, item.answering_member_id,
                item.correcting_member_id if correction else None, _d(item.date_answered),
                _d(item.date_answer_corrected) if correction else None, ans.content_hash,
            )  # fmt: skip
            if ans.completes_partial:
                # The list-text version of this very text if there is one, else the latest.
                partial = cur.execute(
                    "SELECT id FROM answer WHERE question_id = ? AND kind = ? "
                    "AND NOT is_full_text ORDER BY content_hash = ? DESC, version DESC LIMIT 1",
                    (qid, ans.kind, ans.content_hash),
                ).fetchone()
                if partial is not None:
                    cur.execute(
                        "UPDATE answer SET answer_html = ?, answer_text = ?, "
                        "original_answer_html = ?, is_full_text = ?, answering_member_id = ?, "
                        "correcting_member_id = ?, date_answered = ?, date_corrected = ?, "
                        "content_hash = ? WHERE id = ?",
                        (*values, partial[0]),
                    )
                    ids.append(int(partial[0]))
                    continue
            version += 1
            aid, self.next_a = self.next_a, self.next_a + 1
            self.answer_rows.append((aid, qid, version, ans.kind, self.now, *values))
            ids.append(aid)
        return ids

    def event(
        self, qid: int, kind: str, on: date, answer_id: int | None, detail: dict[str, Any]
    ) -> bool:
        """Add an event unless the question already has one of this kind on this day."""
        key = (qid, kind, on.isoformat())
        stored = self.stored_events.get(qid)
        if stored is None and qid < self.first_new:
            stored = self.stored_events[qid] = {
                (k, str(d))  # text on SQLite, a date on PostgreSQL
                for k, d in self.cur.execute(
                    "SELECT kind, event_date FROM event WHERE question_id = ?", (qid,)
                )
            }
        if key in self.new_events or (stored is not None and key[1:] in stored):
            return False
        self.new_events.add(key)
        eid, self.next_e = self.next_e, self.next_e + 1
        self.event_rows.append(
            (
                eid,
                *key,
                answer_id,
                json.dumps(detail) if detail else None,
                self.historical,
                self.now,
            )
        )
        return True

    def fts(
        self,
        qid: int,
        item: QuestionData,
        answers: Sequence[NewAnswer],
        status: str,
    ) -> None:
        """The full-text index row for the question and its latest answer; a stored
        question's old row is deleted now, and the new one goes in with the page's rows."""
        new = qid >= self.first_new
        if answers:
            answer_text = answers[-1].text
        elif new:  # a question inserted just now has no answers yet
            answer_text = ""
        else:
            row = self.cur.execute(
                "SELECT answer_text FROM answer WHERE question_id = ? "
                "ORDER BY version DESC LIMIT 1",
                (qid,),
            ).fetchone()
            answer_text = row[0] if row else ""
        if not new:  # a new question's id is new (questions are never deleted): no old row
            self.reindexed.append(qid)
        facets = facet_text(
            item.house, status, item.answering_body_id, item.date_tabled, item.date_answered
        )
        text = normalize_for_search(item.question_text)
        self.fts_rows.append((qid, item.heading or "", text, answer_text, facets))

    def flush(self) -> list[int]:
        """Insert the page's rows, parents first (foreign keys are checked per statement);
        returns the new events' ids."""
        cur = self.cur
        # New questions go in indexed (PostgreSQL: their documents in the same rows).
        stored = set(self.reindexed)
        self.dialect.insert_questions(
            cur, _INSERT_Q, self.questions, [r for r in self.fts_rows if r[0] not in stored]
        )
        insert_rows(
            cur,
            "INSERT INTO question_group (question_id, grouped_uin, grouped_date_tabled)",
            self.groups,
            "ON CONFLICT DO NOTHING",
        )
        insert_rows(cur, f"INSERT INTO answer ({_ANSWER_COLUMNS})", self.answer_rows)
        insert_rows(
            cur,
            "INSERT INTO event (id, question_id, kind, event_date, answer_id, detail_json, "
            "historical, created_at)",
            self.event_rows,
        )
        # The page's index rows go in before the event hook, which may search them.
        self.dialect.write_index(cur, [r for r in self.fts_rows if r[0] in stored], self.reindexed)
        used = {"question": self.questions, "answer": self.answer_rows, "event": self.event_rows}
        self.dialect.end_page(cur, {t: rows[-1][0] for t, rows in used.items() if rows})
        return [row[0] for row in self.event_rows]
