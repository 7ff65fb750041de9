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
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from pqwatch.decide import (
    ANSWERED,
    CORRECTED,
    HOLDING,
    TABLED,
    TRANSFERRED,
    WITHDRAWN,
    PreparedAnswer,
    StoredQuestion,
    decide,
)
from pqwatch.store.db import Database
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
from pqwatch.types import MemberData, QuestionData

Q = Question.__table__  # type: ignore[attr-defined]
A = Answer.__table__  # type: ignore[attr-defined]
E = Event.__table__  # type: ignore[attr-defined]
G = QuestionGroup.__table__  # type: ignore[attr-defined]
M = Member.__table__  # type: ignore[attr-defined]
B = AnsweringBody.__table__  # type: ignore[attr-defined]
R = PollRun.__table__  # type: ignore[attr-defined]
S = SourceState.__table__  # type: ignore[attr-defined]

# Statements built once; rows are passed as parameters so SQLAlchemy's compiled cache is hit
# instead of re-coercing .values() for every row (several times faster on a backfill).
_INSERT_EVENT = sqlite_insert(E).on_conflict_do_nothing(
    index_elements=["question_id", "kind", "event_date"]
)
_INSERT_QUESTION = sa.insert(Q)
_UPDATE_QUESTION = sa.update(Q).where(Q.c.id == sa.bindparam("qid"))
_DELETE_GROUPS = sa.delete(G).where(G.c.question_id == sa.bindparam("qid"))
_INSERT_GROUP = sa.insert(G)
_INSERT_ANSWER = sa.insert(A)
_UPDATE_ANSWER = sa.update(A).where(A.c.id == sa.bindparam("aid"))

_COUNTED = {
    TABLED: "new_questions",
    ANSWERED: "new_answers",
    HOLDING: "holding_answers",
    CORRECTED: "corrections",
    TRANSFERRED: "transfers",
    WITHDRAWN: "withdrawals",
}


@dataclass
class StoreCounts:
    new_questions: int = 0
    new_answers: int = 0
    holding_answers: int = 0
    corrections: int = 0
    transfers: int = 0
    withdrawals: int = 0
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
            return _unchanged(session, items)

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
        now = self.now()
        with self.db.write() as session:
            conn = session.connection()
            unchanged = _unchanged(session, [item for item, _ in batch])
            todo = [(i, a) for i, a in batch if i.source_id not in unchanged]
            if not todo:
                return counts
            _upsert_members(conn, [i for i, _ in todo], now)
            _upsert_bodies(conn, [i for i, _ in todo], now)
            state = _load_state(conn, [i for i, _ in todo])
            changed: list[int] = []
            for item, prepared in todo:
                old = state.get(item.source_id)
                decision = decide(old, item, prepared, today)
                qid = _write_question(conn, item, old, decision.status, now)
                answer_ids = _write_answers(conn, qid, item, decision.answers, now)
                _index(conn, qid)
                for ev in decision.events:
                    res = conn.execute(
                        sqlite_insert(E)
                        .values(
                            question_id=qid,
                            kind=ev.kind,
                            event_date=ev.event_date,
                            answer_id=None
                            if ev.answer_index is None
                            else answer_ids[ev.answer_index],
                            detail_json=json.dumps(ev.detail) if ev.detail else None,
                            historical=historical,
                            created_at=now,
                        )
                        .on_conflict_do_nothing(
                            index_elements=["question_id", "kind", "event_date"]
                        )
                    )
                    if res.rowcount:
                        counter = _COUNTED[ev.kind]
                        setattr(counts, counter, getattr(counts, counter) + 1)
                        if res.lastrowid:
                            counts.new_event_ids.append(int(res.lastrowid))
                if old is not None:  # text, heading or department may have changed
                    changed.append(qid)
                counts.items_written += 1
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
            return _new_id(res)

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
    ) -> None:
        """Record the outcome of a run; on success move the cursor, in the same transaction,
        as the very last step of the window."""
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
            conn.execute(
                sqlite_insert(S)
                .values(source=source, consecutive_failures=0, alert_sent=False, updated_at=now)
                .on_conflict_do_nothing(index_elements=["source"])
            )
            if ok:
                values: dict[str, Any] = {
                    "last_success_at": now,
                    "consecutive_failures": 0,
                    "updated_at": now,
                }
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

    def cursor(self, source: str) -> date | None:
        with self.db.read() as session:
            value = (
                session.connection()
                .execute(sa.select(S.c.cursor_date).where(S.c.source == source))
                .scalar()
            )
        return value if isinstance(value, date) else None

    def done_windows(self, source: str, kind: str) -> set[tuple[date, date]]:
        """Windows already stored completely by a run of this kind (for restartable backfill)."""
        with self.db.read() as session:
            rows = session.connection().execute(
                sa.select(R.c.window_start, R.c.window_end).where(
                    R.c.source == source, R.c.kind == kind, R.c.status == "ok"
                )
            )
            return {(r[0], r[1]) for r in rows}


# -- helpers (run inside a transaction) ------------------------------------------------------


def _unchanged(session: Session, items: Sequence[QuestionData]) -> set[str]:
    by_source: dict[str, list[QuestionData]] = {}
    for it in items:
        by_source.setdefault(it.source, []).append(it)
    out: set[str] = set()
    conn = session.connection()
    for source, group in by_source.items():
        wanted = {i.source_id: i.list_hash for i in group}
        rows = conn.execute(
            sa.select(Q.c.source_id, Q.c.content_hash).where(
                Q.c.source == source, Q.c.source_id.in_(list(wanted))
            )
        )
        out.update(sid for sid, h in rows if wanted.get(sid) == h)
    return out


def _member_row(m: MemberData, house: str | None, now: datetime) -> dict[str, Any]:
    return {
        "id": m.id,
        "name": m.name,
        "list_as": m.list_as,
        "party": m.party,
        "party_abbreviation": m.party_abbreviation,
        "member_from": m.member_from,
        "house": house,
        "thumbnail_url": m.thumbnail_url,
        "updated_at": now,
    }


def _upsert_members(conn: sa.Connection, items: Sequence[QuestionData], now: datetime) -> None:
    full: dict[int, dict[str, Any]] = {}
    bare: set[int] = set()
    for it in items:
        # Only the asker is known to sit in the question's House; ministers answering in
        # the Lords are peers, in the Commons MPs, so the House holds for them too.
        for mid, obj in (
            (it.asking_member_id, it.asking_member),
            (it.answering_member_id, it.answering_member),
            (it.correcting_member_id, it.correcting_member),
        ):
            if obj is not None and obj.name:
                full[obj.id] = _member_row(obj, it.house, now)
            elif mid is not None:
                bare.add(mid)
    if full:
        stmt = sqlite_insert(M)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["id"],
                set_={c: stmt.excluded[c] for c in full[next(iter(full))] if c != "id"},
            ),
            list(full.values()),
        )
    bare -= full.keys()
    if bare:
        conn.execute(
            sqlite_insert(M).on_conflict_do_nothing(index_elements=["id"]),
            [{"id": mid, "updated_at": now} for mid in sorted(bare)],
        )


def _upsert_bodies(conn: sa.Connection, items: Sequence[QuestionData], now: datetime) -> None:
    rows = {
        it.answering_body_id: {
            "id": it.answering_body_id,
            "name": it.answering_body_name or f"Answering body {it.answering_body_id}",
            "updated_at": now,
        }
        for it in items
        if it.answering_body_id is not None
    }
    if rows:
        stmt = sqlite_insert(B)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["id"],
                set_={"name": stmt.excluded.name, "updated_at": stmt.excluded.updated_at},
            ),
            list(rows.values()),
        )


def _load_state(conn: sa.Connection, items: Sequence[QuestionData]) -> dict[str, StoredQuestion]:
    if not items:
        return {}
    source = items[0].source
    ids = [i.source_id for i in items]
    rows = conn.execute(
        sa.select(
            Q.c.id,
            Q.c.source_id,
            Q.c.content_hash,
            Q.c.is_withdrawn,
            Q.c.answering_body_id,
            B.c.name,
            Q.c.date_answer_corrected,
        )
        .select_from(Q.outerjoin(B, B.c.id == Q.c.answering_body_id))
        .where(Q.c.source == source, Q.c.source_id.in_(ids))
    ).all()
    if not rows:
        return {}
    qids = [r[0] for r in rows]
    keys: dict[int, set[tuple[str, str]]] = {q: set() for q in qids}
    partial: dict[int, set[str]] = {q: set() for q in qids}
    for qid, kind, h, full in conn.execute(
        sa.select(A.c.question_id, A.c.kind, A.c.content_hash, A.c.is_full_text).where(
            A.c.question_id.in_(qids)
        )
    ):
        keys[qid].add((kind, h))
        if not full:
            partial[qid].add(kind)
    return {
        r[1]: StoredQuestion(
            id=r[0],
            list_hash=r[2],
            is_withdrawn=bool(r[3]),
            answering_body_id=r[4],
            answering_body_name=r[5],
            date_answer_corrected=r[6],
            answer_keys=frozenset(keys[r[0]]),
            partial_kinds=frozenset(partial[r[0]]),
        )
        for r in rows
    }


def _write_question(
    conn: sa.Connection,
    item: QuestionData,
    old: StoredQuestion | None,
    status: str,
    now: datetime,
) -> int:
    values: dict[str, Any] = {
        "uin": item.uin,
        "house": item.house,
        "date_tabled": item.date_tabled,
        "date_for_answer": item.date_for_answer,
        "is_named_day": item.is_named_day,
        "heading": item.heading,
        "asking_member_id": item.asking_member_id,
        "member_has_interest": item.member_has_interest,
        "answering_body_id": item.answering_body_id,
        "question_text": item.question_text,
        "question_text_full": item.question_text_full,
        "is_withdrawn": item.is_withdrawn,
        "status": status,
        "date_answered": item.date_answered,
        "date_holding_answer": item.date_holding_answer,
        "date_answer_corrected": item.date_answer_corrected,
        "answering_member_id": item.answering_member_id,
        "attachments_json": json.dumps([a.__dict__ for a in item.attachments])
        if item.attachments
        else None,
        "content_hash": item.list_hash,
        "updated_at": now,
    }
    if old is None:
        res = conn.execute(
            _INSERT_QUESTION,
            {"source": item.source, "source_id": item.source_id, "first_seen_at": now, **values},
        )
        qid = _new_id(res)
    else:
        qid = old.id
        if not item.question_text_full:
            # Never replace a full stored text by a list result's cut one.
            current = conn.execute(
                sa.select(Q.c.question_text, Q.c.question_text_full).where(Q.c.id == qid)
            ).one()
            if current[1] and current[0].startswith(item.question_text[:200]):
                values["question_text"], values["question_text_full"] = current[0], True
        if item.is_withdrawn and not old.is_withdrawn:
            values["date_withdrawn"] = now.date()
        conn.execute(_UPDATE_QUESTION, {"qid": qid, **values})
    conn.execute(_DELETE_GROUPS, {"qid": qid})
    if item.group:
        conn.execute(
            _INSERT_GROUP,
            [
                {"question_id": qid, "grouped_uin": g.uin, "grouped_date_tabled": g.date_tabled}
                for g in item.group
            ],
        )
    return qid


def _index(conn: sa.Connection, qid: int) -> None:
    """Keep the full-text index in step with the question and its latest answer."""
    conn.execute(sa.text("DELETE FROM question_fts WHERE rowid = :id"), {"id": qid})
    conn.execute(
        sa.text(
            "INSERT INTO question_fts (rowid, heading, question, answer) "
            "SELECT q.id, coalesce(q.heading, ''), replace(q.question_text, char(160), ' '), "
            "coalesce((SELECT a.answer_text FROM answer a WHERE a.question_id = q.id "
            "ORDER BY a.version DESC LIMIT 1), '') FROM question q WHERE q.id = :id"
        ),
        {"id": qid},
    )


def _write_answers(
    conn: sa.Connection, qid: int, item: QuestionData, answers: Sequence[Any], now: datetime
) -> list[int]:
    ids: list[int] = []
    if not answers:
        return ids
    version = conn.execute(
        sa.select(sa.func.coalesce(sa.func.max(A.c.version), 0)).where(A.c.question_id == qid)
    ).scalar_one()
    for ans in answers:
        values = {
            "answer_html": ans.html,
            "answer_text": ans.text,
            "original_answer_html": ans.original_html,
            "is_full_text": ans.is_full,
            "answering_member_id": item.answering_member_id,
            "correcting_member_id": item.correcting_member_id if ans.kind == "correction" else None,
            "date_answered": item.date_answered,
            "date_corrected": item.date_answer_corrected if ans.kind == "correction" else None,
            "content_hash": ans.content_hash,
        }
        if ans.completes_partial:
            partial_id = conn.execute(
                sa.select(A.c.id)
                .where(A.c.question_id == qid, A.c.kind == ans.kind, A.c.is_full_text.is_(False))
                .order_by(A.c.version.desc())
                .limit(1)
            ).scalar()
            if partial_id is not None:
                conn.execute(_UPDATE_ANSWER, {"aid": partial_id, **values})
                ids.append(int(partial_id))
                continue
        version += 1
        res = conn.execute(
            _INSERT_ANSWER,
            {
                "question_id": qid,
                "version": version,
                "kind": ans.kind,
                "recorded_at": now,
                **values,
            },
        )
        ids.append(_new_id(res))
    return ids


def _new_id(res: sa.CursorResult[Any]) -> int:
    key = res.inserted_primary_key
    assert key is not None
    return int(key[0])
