"""Digest and delivery state: what each subscriber is owed, and what was sent.

The rules that make delivery exactly-once as far as we can make it:
- outbox rows (delivery) are written with the matches, in the event's transaction;
- a digest row, with its Message-ID, is created and its rows attached *before* sending, so a
  retry sends the same message (same Message-ID) with at least the same items;
- one sender at a time (pqwatch.locks.sender): holding that lock is the claim on every
  pending digest, so two runs never send the same one, and a digest left pending by a sender
  that died is taken over by the next;
- rows are marked sent in their own short transaction straight after the server accepted
  the message, with nothing in between. A crash in that instant re-sends the digest once on
  the next run: that is the at-least-once boundary, and the unchanged Message-ID lets mail
  clients fold the duplicate.
"""

from __future__ import annotations

import uuid
from bisect import bisect_left
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from pqwatch.store.db import Database, sql_ts


@dataclass(frozen=True)
class SubscriberRow:
    id: int
    email: str
    name: str
    frequency: str
    send_empty: bool
    created_at: datetime


@dataclass(frozen=True)
class OpenDigest:
    id: int | None  # None for a dry run: nothing is recorded
    message_id: str
    subscriber: SubscriberRow
    period_start: datetime
    period_end: datetime
    delivery_ids: tuple[int, ...]
    created: bool = False  # opened by this call (not a digest an earlier run left pending)
    # When the digest row was first made: a message re-sent after a crash keeps its name.
    created_at: datetime | None = None
    attempts: int = 0  # tries the server deferred so far


@dataclass(frozen=True)
class RunContext:
    """What every digest of a run looks up about its subscriber and the archive's health,
    read once for the run instead of once per digest."""

    # subscriber id -> when their last digest was accepted, or refused for good: either way
    # that slot is dealt with.
    last_sent: dict[int, datetime]
    # subscriber id -> when their pending digest may be tried again (None: now); a subscriber
    # with a pending digest is owed it whatever the schedule says.
    pending: dict[int, datetime | None]
    tokens: dict[int, str]  # subscriber id -> unsubscribe token
    subscriptions: dict[int, list[tuple[str, str]]]  # subscriber id -> [(name, slug)]
    last_poll_ok_at: datetime | None
    failed_poll_starts: tuple[str, ...]  # started_at of failed polls, as stored, sorted

    def health(self, since: datetime) -> tuple[datetime | None, int]:
        """When the archive was last updated successfully, and failed polls since `since`."""
        starts = self.failed_poll_starts
        return self.last_poll_ok_at, len(starts) - bisect_left(starts, sql_ts(since))


@dataclass(frozen=True)
class DeliverySummary:
    counts: dict[str, int]  # sent, failed, waiting (digests); items_sent, items_pending
    waiting: list[dict[str, Any]]  # email, attempts, last_error, retry_at
    failed: list[dict[str, Any]]  # email, reply, when


def _ts(value: object) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


class Outbox:
    def __init__(self, db: Database, now: Callable[[], datetime], domain: str) -> None:
        self.db = db
        self.now = now
        self.domain = domain

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """One IMMEDIATE transaction (see Database.write)."""
        with self.db.write() as session:
            yield session.connection()

    @contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """One read transaction (see Database.read)."""
        with self.db.read() as session:
            yield session.connection()

    def subscribers(self, email: str | None = None) -> list[SubscriberRow]:
        sql = (
            "SELECT id, email, name, frequency, send_empty, created_at FROM subscriber WHERE active"
        )
        params: dict[str, object] = {}
        if email is not None:
            sql += " AND lower(email) = lower(:email)"
            params["email"] = email
        with self.db.read() as session:
            rows = session.connection().execute(sa.text(sql + " ORDER BY email"), params).all()
        return [SubscriberRow(r[0], r[1], r[2], r[3], bool(r[4]), _ts(r[5])) for r in rows]

    def _period_start(self, conn: sa.Connection, sub: SubscriberRow) -> datetime:
        last = conn.execute(
            sa.text(
                "SELECT max(period_end) FROM digest WHERE subscriber_id = :s AND status = 'sent'"
            ),
            {"s": sub.id},
        ).scalar()
        return _ts(last) if last else sub.created_at

    def open_digest(
        self, sub: SubscriberRow, *, dry_run: bool = False, allow_empty: bool = False
    ) -> OpenDigest | None:
        """The digest to send now: the one a failed run left pending (same Message-ID), or a
        new one, with every pending row attached. None when there is nothing to send (an
        empty digest only with allow_empty: a subscriber with send_empty at a due slot)."""
        now = self.now()
        if dry_run:
            with self.reading() as conn:
                loose = [
                    r[0]
                    for r in conn.execute(
                        sa.text(
                            "SELECT id FROM delivery WHERE subscriber_id = :s "
                            "AND status = 'pending' ORDER BY id"
                        ),
                        {"s": sub.id},
                    )
                ]
                if not loose and not allow_empty:
                    return None
                start = self._period_start(conn, sub)
            return OpenDigest(None, self._message_id(), sub, start, now, tuple(loose))
        with self._write() as conn:
            pending = conn.execute(
                sa.text(
                    "SELECT id, message_id, period_start, created_at, attempts FROM digest "
                    "WHERE subscriber_id = :s AND status = 'pending' ORDER BY id LIMIT 1"
                ),
                {"s": sub.id},
            ).first()
            unattached = conn.execute(
                sa.text(
                    "SELECT count(*) FROM delivery WHERE subscriber_id = :s "
                    "AND status = 'pending' AND digest_id IS NULL"
                ),
                {"s": sub.id},
            ).scalar()
            if pending is None and not unattached and not allow_empty:
                return None
            created, attempts = now, 0
            if pending is not None:
                digest_id, message_id, start = pending[0], pending[1], _ts(pending[2])
                created, attempts = _ts(pending[3]), int(pending[4])
            else:
                start = self._period_start(conn, sub)
                message_id = self._message_id()
                digest_id = conn.execute(
                    sa.text(
                        "INSERT INTO digest (subscriber_id, message_id, period_start, "
                        "period_end, status, item_count, created_at) "
                        "VALUES (:s, :m, :start, :end, 'pending', 0, :now)"
                    ),
                    {
                        "s": sub.id,
                        "m": message_id,
                        "start": sql_ts(start),
                        "end": sql_ts(now),
                        "now": sql_ts(now),
                    },
                ).lastrowid
            conn.execute(
                sa.text(
                    "UPDATE delivery SET digest_id = :d WHERE subscriber_id = :s "
                    "AND status = 'pending' AND digest_id IS NULL"
                ),
                {"d": digest_id, "s": sub.id},
            )
            ids = tuple(
                r[0]
                for r in conn.execute(
                    sa.text("SELECT id FROM delivery WHERE digest_id = :d ORDER BY id"),
                    {"d": digest_id},
                )
            )
            conn.execute(
                sa.text("UPDATE digest SET period_end = :end, item_count = :n WHERE id = :d"),
                {"end": sql_ts(now), "n": len(ids), "d": digest_id},
            )
        assert digest_id is not None
        return OpenDigest(
            int(digest_id), message_id, sub, start, now, ids, pending is None, created, attempts
        )

    def abandon(self, digest: OpenDigest) -> None:
        """Undo open_digest for a digest that was never handed to a server (the run stopped
        first): its rows go back to waiting, as if it had not been opened. A digest an earlier
        run left pending keeps its Message-ID: it may have reached someone."""
        if digest.id is None or not digest.created:
            return
        with self._write() as conn:
            attempted = conn.execute(
                sa.text(
                    "SELECT 1 FROM delivery WHERE digest_id = :d "
                    "AND (status != 'pending' OR attempts > 0) LIMIT 1"
                ),
                {"d": digest.id},
            ).first()
            if attempted is not None:
                return
            conn.execute(
                sa.text("UPDATE delivery SET digest_id = NULL WHERE digest_id = :d"),
                {"d": digest.id},
            )
            conn.execute(
                sa.text("DELETE FROM digest WHERE id = :d AND status = 'pending'"),
                {"d": digest.id},
            )

    def run_context(self) -> RunContext:
        with self.db.read() as session:
            conn = session.connection()
            last_sent = {
                r[0]: _ts(r[1])
                for r in conn.execute(
                    sa.text(
                        "SELECT subscriber_id, max(sent_at) FROM digest "
                        "WHERE status IN ('sent', 'failed') GROUP BY subscriber_id"
                    )
                )
                if r[1]
            }
            pending = {
                r[0]: _ts(r[1]) if r[1] else None
                for r in conn.execute(
                    sa.text(
                        "SELECT subscriber_id, max(retry_at) FROM digest "
                        "WHERE status = 'pending' GROUP BY subscriber_id"
                    )
                )
            }
            tokens = {
                r[0]: str(r[1])
                for r in conn.execute(sa.text("SELECT id, token FROM subscriber"))
                if r[1]
            }
            subscriptions: dict[int, list[tuple[str, str]]] = {}
            for r in conn.execute(
                sa.text(
                    "SELECT s.subscriber_id, w.name, w.slug FROM subscription s "
                    "JOIN watch w ON w.id = s.watch_id "
                    "WHERE s.unsubscribed_at IS NULL AND w.active ORDER BY w.name"
                )
            ):
                subscriptions.setdefault(r[0], []).append((r[1], r[2]))
            last = conn.execute(sa.text("SELECT max(last_success_at) FROM source_state")).scalar()
            failed = tuple(
                str(r[0])
                for r in conn.execute(
                    sa.text(
                        "SELECT started_at FROM poll_run WHERE status = 'failed' "
                        "ORDER BY started_at"
                    )
                )
            )
        return RunContext(
            last_sent, pending, tokens, subscriptions, _ts(last) if last else None, failed
        )

    def active_watches(self) -> list[tuple[str, str, str]]:
        """(slug, name, query) of each active watch, by name."""
        with self.db.read() as session:
            rows = session.connection().execute(
                sa.text("SELECT slug, name, query FROM watch WHERE active ORDER BY name")
            )
            return [(r[0], r[1], r[2]) for r in rows]

    def unsubscribe(self, token: str, watch_slug: str | None = None) -> str | None:
        """One-click unsubscribe from everything, or from one watch; what was still owed from
        those watches is cancelled. Returns the address, None for an unknown link."""
        stamp = sql_ts(self.now())
        with self._write() as conn:
            row = conn.execute(
                sa.text("SELECT id, email FROM subscriber WHERE token = :t"), {"t": token}
            ).first()
            if row is None:
                return None
            if watch_slug is None:
                conn.execute(
                    sa.text(
                        "UPDATE subscriber SET active = 0, unsubscribed_at = :now WHERE id = :s"
                    ),
                    {"now": stamp, "s": row[0]},
                )
            else:
                done = conn.execute(
                    sa.text(
                        "UPDATE subscription SET unsubscribed_at = :now WHERE subscriber_id = :s "
                        "AND watch_id = (SELECT id FROM watch WHERE slug = :w)"
                    ),
                    {"now": stamp, "s": row[0], "w": watch_slug},
                )
                if not done.rowcount:
                    return None
            conn.execute(
                sa.text(
                    "UPDATE delivery SET status = 'cancelled' WHERE subscriber_id = :s "
                    "AND status = 'pending' AND digest_id IS NULL"
                    + (
                        ""
                        if watch_slug is None
                        else " AND event_id IN (SELECT m.event_id FROM watch_match m JOIN watch w "
                        "ON w.id = m.watch_id WHERE w.slug = :w) AND event_id NOT IN ("
                        "SELECT m.event_id FROM watch_match m JOIN subscription s2 ON "
                        "s2.watch_id = m.watch_id AND s2.subscriber_id = :s "
                        "AND s2.unsubscribed_at IS NULL)"
                    )
                ),
                {"s": row[0], "w": watch_slug},
            )
            return str(row[1])

    def summary(self) -> DeliverySummary:
        """For `pqwatch status`: digests by status, the items they carried, and the ones that
        wait (deferred or left by an outage) or were refused for good."""
        with self.db.read() as session:
            conn = session.connection()
            counts = {"sent": 0, "failed": 0, "waiting": 0}
            for status, n in conn.execute(
                sa.text("SELECT status, count(*) FROM digest GROUP BY status")
            ):
                counts["waiting" if status == "pending" else status] = int(n)
            for status, n in conn.execute(
                sa.text(
                    "SELECT status, count(*) FROM delivery WHERE status IN ('sent', 'pending') "
                    "GROUP BY status"
                )
            ):
                counts[f"items_{status}"] = int(n)
            waiting = [
                {"email": r[0], "attempts": int(r[1]), "last_error": r[2],
                 "retry_at": _ts(r[3]) if r[3] else None}
                for r in conn.execute(
                    sa.text(
                        "SELECT s.email, max(g.attempts, (SELECT coalesce(max(d.attempts), 0) "
                        "FROM delivery d WHERE d.digest_id = g.id)), g.server_reply, g.retry_at "
                        "FROM digest g JOIN subscriber s ON s.id = g.subscriber_id "
                        "WHERE g.status = 'pending' ORDER BY s.email"
                    )
                )
            ]  # fmt: skip
            failed = [
                {"email": r[0], "reply": r[1], "when": r[2]}
                for r in conn.execute(
                    sa.text(
                        "SELECT s.email, d.server_reply, d.sent_at FROM digest d JOIN subscriber s "
                        "ON s.id = d.subscriber_id WHERE d.status = 'failed' "
                        "ORDER BY d.id DESC LIMIT 10"
                    )
                )
            ]
        return DeliverySummary(counts, waiting, failed)

    def has_pending_digest(self) -> bool:
        """Whether a digest was started but not accepted (an SMTP outage): worth a retry."""
        with self.db.read() as session:
            return bool(
                session.connection()
                .execute(sa.text("SELECT 1 FROM digest WHERE status = 'pending' LIMIT 1"))
                .first()
            )

    def _message_id(self) -> str:
        return f"<digest.{uuid.uuid4().hex}@{self.domain}>"

    def mark_sent(self, digest: OpenDigest, reply: str) -> None:
        self._finish(digest, "sent", reply)

    def mark_failed(self, digest: OpenDigest, reply: str) -> None:
        """A permanent refusal (e.g. the recipient does not exist): kept, visible, not retried."""
        self._finish(digest, "failed", reply)

    def _finish(self, digest: OpenDigest, status: str, reply: str) -> None:
        if digest.id is None:
            return
        now = sql_ts(self.now())
        with self._write() as conn:
            conn.execute(
                sa.text(
                    "UPDATE digest SET status = :st, server_reply = :r, sent_at = :now "
                    "WHERE id = :d"
                ),
                {"st": status, "r": reply, "now": now, "d": digest.id},
            )
            conn.execute(
                sa.text(
                    "UPDATE delivery SET status = :st, server_reply = :r, sent_at = :now, "
                    "attempts = attempts + 1 WHERE digest_id = :d"
                ),
                {"st": status, "r": reply, "now": now, "d": digest.id},
            )

    def defer(self, digest: OpenDigest, error: str, retry_at: datetime) -> None:
        """The server deferred this recipient (4xx): the digest stays pending, alone, until
        retry_at; the others go on."""
        if digest.id is None:
            return
        with self._write() as conn:
            conn.execute(
                sa.text(
                    "UPDATE digest SET attempts = attempts + 1, retry_at = :at, "
                    "server_reply = :r WHERE id = :d"
                ),
                {"at": sql_ts(retry_at), "r": error, "d": digest.id},
            )
            conn.execute(
                sa.text(
                    "UPDATE delivery SET attempts = attempts + 1, server_reply = :r "
                    "WHERE digest_id = :d"
                ),
                {"r": error, "d": digest.id},
            )

    def note_attempt(self, digest: OpenDigest, error: str) -> None:
        """A transient failure: rows stay pending for the next run; remember why."""
        if digest.id is None:
            return
        with self._write() as conn:
            conn.execute(
                sa.text("UPDATE digest SET server_reply = :r WHERE id = :d"),
                {"r": error, "d": digest.id},
            )
            conn.execute(
                sa.text(
                    "UPDATE delivery SET attempts = attempts + 1, server_reply = :r "
                    "WHERE digest_id = :d"
                ),
                {"r": error, "d": digest.id},
            )
