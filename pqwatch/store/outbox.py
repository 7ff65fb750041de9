"""Digest and delivery state: what each subscriber is owed, and what was sent.

The rules that make delivery exactly-once as far as we can make it:
- outbox rows (delivery) are written with the matches, in the event's transaction;
- a digest row, with its Message-ID, is created and its rows attached *before* sending, so a
  retry sends the same message (same Message-ID) with at least the same items;
- a digest is sent only by the sender that claims its subscriber (pqwatch.locks.sender gives
  the claims), so two runs never send the same one, and a digest left pending by a sender
  that died is taken over by the next. On SQLite one sender at a time holds the send lock,
  which is the claim on every pending digest (`AllClaimed`). On PostgreSQL senders work side
  by side: a claim is the subscriber's row locked FOR NO KEY UPDATE SKIP LOCKED by a
  transaction of its own, on a connection of the claims' own, held from before the digest is
  opened until after it is marked (`RowClaims`). It writes nothing, so the digest's own
  writes still commit apart (the Message-ID before the send, "sent" straight after the
  server's reply); and it dies with its connection, so a killed sender's claims are free at
  once, and a stuck or cut-off one's within a minute (store/postgresql/leases.py);
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
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from pqwatch.store.db import Database
from pqwatch.store.models import (
    Delivery,
    Digest,
    PollRun,
    SourceState,
    Subscriber,
    Subscription,
    Watch,
    WatchMatch,
)
from pqwatch.types import SOURCE_LABELS, SourcePolls

if TYPE_CHECKING:
    from pqwatch.store.postgresql.leases import Session

# Core over the SQLModel tables: typed columns (timestamps come back as aware datetimes).
D = Digest.__table__  # type: ignore[attr-defined]
DL = Delivery.__table__  # type: ignore[attr-defined]
SB = Subscriber.__table__  # type: ignore[attr-defined]
SN = Subscription.__table__  # type: ignore[attr-defined]
W = Watch.__table__  # type: ignore[attr-defined]
M = WatchMatch.__table__  # type: ignore[attr-defined]
S = SourceState.__table__  # type: ignore[attr-defined]
R = PollRun.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class SubscriberRow:
    id: int
    email: str
    name: str
    frequency: str
    send_empty: bool
    created_at: datetime
    # Subscribed on the web: the first digest goes even when nothing matched yet, so the
    # person who confirmed sees that it works.
    welcome: bool = False


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
    attempts: int = 0  # tries that did not reach the recipient so far (deferred, outage)


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
    last_ok: dict[str, datetime | None]  # source -> its last successful poll
    failed_starts: dict[str, tuple[datetime, ...]]  # source -> when failed polls started, sorted

    def health(self, since: datetime) -> tuple[SourcePolls, ...]:
        """Each source's last success and its failed polls since `since`, in the order
        readers see sources (SOURCE_LABELS)."""
        order = list(SOURCE_LABELS)
        names = sorted(
            set(self.last_ok) | set(self.failed_starts),
            key=lambda s: (order.index(s) if s in order else len(order), s),
        )
        return tuple(
            SourcePolls(
                s,
                self.last_ok.get(s),
                len(starts := self.failed_starts.get(s, ())) - bisect_left(starts, since),
            )
            for s in names
        )


@dataclass(frozen=True)
class DeliverySummary:
    counts: dict[str, int]  # sent, failed, waiting (digests); items_sent, items_pending
    waiting: list[dict[str, Any]]  # email, attempts, last_error, retry_at
    failed: list[dict[str, Any]]  # email, reply, when


class Claims(Protocol):
    """A sender's claims on subscribers' digests (see the module's docstring)."""

    def take(self, subscriber_id: int, known_last_sent: datetime | None, now: datetime) -> str:
        """Claim one subscriber's digest: "mine", or why not ("elsewhere": another sender has
        it; "already-sent": a digest went since `known_last_sent`, what this run read;
        "deferred": another sender was told to try it later)."""
        ...

    def release(self, subscriber_id: int) -> None: ...


class AllClaimed:
    """SQLite: the send lock is the claim on every digest."""

    def take(self, subscriber_id: int, known_last_sent: datetime | None, now: datetime) -> str:
        return "mine"

    def release(self, subscriber_id: int) -> None:
        pass


# Claimed by this sender: the subscriber's row, locked until its digest is marked. FOR NO KEY
# UPDATE, not FOR UPDATE, so that rows inserted meanwhile with a foreign key to it (matches
# stored by a poll, the digest this sender opens) do not wait for the claim.
_CLAIM = "SELECT id FROM subscriber WHERE id = %s FOR NO KEY UPDATE SKIP LOCKED"
# Read after the lock, so as of now (READ COMMITTED): what another sender did before it let go.
_SINCE = (
    "SELECT (SELECT max(sent_at) FROM digest WHERE subscriber_id = %(id)s"
    " AND status IN ('sent', 'failed')),"
    " (SELECT max(retry_at) FROM digest WHERE subscriber_id = %(id)s AND status = 'pending')"
)


class RowClaims:
    """PostgreSQL: one claim per subscriber, a row lock in a transaction on a connection of
    its own (two are enough: the digest being sent and the one opened ahead)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._free: list[Session] = []
        self._held: dict[int, Session] = {}

    def take(self, subscriber_id: int, known_last_sent: datetime | None, now: datetime) -> str:
        from pqwatch.store.postgresql.leases import Session

        s = self._free.pop() if self._free else Session(self.db, "sender")
        try:
            s.execute("BEGIN")
            if not s.execute(_CLAIM, (subscriber_id,)):
                why = "elsewhere"
            else:
                last, retry_at = s.execute(_SINCE, {"id": subscriber_id})[0]
                known = None if known_last_sent is None else _naive(known_last_sent)
                if last is not None and (known is None or last > known):
                    why = "already-sent"
                elif retry_at is not None and retry_at > _naive(now):
                    why = "deferred"
                else:
                    self._held[subscriber_id] = s
                    return "mine"
            s.execute("ROLLBACK")
        except BaseException:
            s.close()
            raise
        self._free.append(s)
        return why

    def release(self, subscriber_id: int) -> None:
        s = self._held.pop(subscriber_id, None)
        if s is None:
            return
        try:
            s.execute("ROLLBACK")  # the claim wrote nothing
        except BaseException:
            s.close()  # the lock goes with the connection
            raise
        self._free.append(s)

    def close(self) -> None:
        for s in [*self._held.values(), *self._free]:
            s.close()
        self._held.clear()
        self._free.clear()


def _naive(ts: datetime) -> datetime:
    """As timestamps are stored: naive UTC."""
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


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
        query = sa.select(
            SB.c.id, SB.c.email, SB.c.name, SB.c.frequency, SB.c.send_empty, SB.c.created_at,
            SB.c.origin == "web",
        ).where(SB.c.active)  # fmt: skip
        if email is not None:
            query = query.where(sa.func.lower(SB.c.email) == email.lower())
        with self.reading() as conn:
            rows = conn.execute(query.order_by(SB.c.email)).all()
        return [SubscriberRow(r[0], r[1], r[2], r[3], bool(r[4]), r[5], bool(r[6])) for r in rows]

    def _period_start(self, conn: sa.Connection, sub: SubscriberRow) -> datetime:
        last = conn.execute(
            sa.select(sa.func.max(D.c.period_end)).where(
                D.c.subscriber_id == sub.id, D.c.status == "sent"
            )
        ).scalar()
        return last if isinstance(last, datetime) else sub.created_at

    def open_digest(
        self, sub: SubscriberRow, *, dry_run: bool = False, allow_empty: bool = False
    ) -> OpenDigest | None:
        """The digest to send now: the one a failed run left pending (same Message-ID), or a
        new one, with every pending row attached. None when there is nothing to send (an
        empty digest only with allow_empty: a subscriber with send_empty at a due slot)."""
        now = self.now()
        mine = DL.c.subscriber_id == sub.id
        if dry_run:
            with self.reading() as conn:
                loose = conn.scalars(
                    sa.select(DL.c.id).where(mine, DL.c.status == "pending").order_by(DL.c.id)
                ).all()
                if not loose and not allow_empty:
                    return None
                start = self._period_start(conn, sub)
            return OpenDigest(None, self._message_id(), sub, start, now, tuple(loose))
        unattached = sa.and_(mine, DL.c.status == "pending", DL.c.digest_id.is_(None))
        with self._write() as conn:
            pending = conn.execute(
                sa.select(D.c.id, D.c.message_id, D.c.period_start, D.c.created_at, D.c.attempts)
                .where(D.c.subscriber_id == sub.id, D.c.status == "pending")
                .order_by(D.c.id)
                .limit(1)
            ).first()
            waiting = conn.execute(sa.select(sa.func.count()).where(unattached)).scalar()
            if pending is None and not waiting and not allow_empty:
                return None
            if pending is not None:
                digest_id, message_id, start, created, attempts = pending
            else:
                start, message_id, created, attempts = (
                    self._period_start(conn, sub), self._message_id(), now, 0,
                )  # fmt: skip
                key = conn.execute(
                    sa.insert(D).values(
                        subscriber_id=sub.id, message_id=message_id, period_start=start,
                        period_end=now, status="pending", item_count=0, attempts=0,
                        created_at=now,
                    )
                ).inserted_primary_key  # fmt: skip
                assert key is not None
                digest_id = key[0]
            conn.execute(sa.update(DL).where(unattached).values(digest_id=digest_id))
            ids = tuple(
                conn.scalars(
                    sa.select(DL.c.id).where(DL.c.digest_id == digest_id).order_by(DL.c.id)
                )
            )
            conn.execute(
                sa.update(D).where(D.c.id == digest_id).values(period_end=now, item_count=len(ids))
            )
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
                sa.select(DL.c.id)
                .where(
                    DL.c.digest_id == digest.id,
                    sa.or_(DL.c.status != "pending", DL.c.attempts > 0),
                )
                .limit(1)
            ).first()
            if attempted is not None:
                return
            conn.execute(sa.update(DL).where(DL.c.digest_id == digest.id).values(digest_id=None))
            conn.execute(sa.delete(D).where(D.c.id == digest.id, D.c.status == "pending"))

    def run_context(self) -> RunContext:
        with self.reading() as conn:
            last_sent = {
                r[0]: r[1]
                for r in conn.execute(
                    sa.select(D.c.subscriber_id, sa.func.max(D.c.sent_at))
                    .where(D.c.status.in_(("sent", "failed")))
                    .group_by(D.c.subscriber_id)
                )
                if r[1]
            }
            pending = {
                r[0]: r[1]
                for r in conn.execute(
                    sa.select(D.c.subscriber_id, sa.func.max(D.c.retry_at))
                    .where(D.c.status == "pending")
                    .group_by(D.c.subscriber_id)
                )
            }
            tokens = {
                r[0]: str(r[1])
                for r in conn.execute(sa.select(SB.c.id, SB.c.token).where(SB.c.token.is_not(None)))
            }
            subscriptions: dict[int, list[tuple[str, str]]] = {}
            for r in conn.execute(
                sa.select(SN.c.subscriber_id, W.c.name, W.c.slug)
                .join(W, W.c.id == SN.c.watch_id)
                .where(SN.c.unsubscribed_at.is_(None), W.c.active)
                .order_by(W.c.name)
            ):
                subscriptions.setdefault(r[0], []).append((r[1], r[2]))
            last = {r[0]: r[1] for r in conn.execute(sa.select(S.c.source, S.c.last_success_at))}
            failed: dict[str, list[datetime]] = {}
            for r in conn.execute(
                sa.select(R.c.source, R.c.started_at)
                .where(R.c.status == "failed")
                .order_by(R.c.started_at)
            ):
                failed.setdefault(r[0], []).append(r[1])
            starts = {k: tuple(v) for k, v in failed.items()}
        return RunContext(last_sent, pending, tokens, subscriptions, last, starts)

    def unsubscribe(self, token: str, watch_slug: str | None = None) -> str | None:
        """One-click unsubscribe from everything, or from one watch; what was still owed from
        those watches is cancelled. Returns the address, None for an unknown link."""
        now = self.now()
        with self._write() as conn:
            row = conn.execute(sa.select(SB.c.id, SB.c.email).where(SB.c.token == token)).first()
            if row is None:
                return None
            owed = sa.and_(
                DL.c.subscriber_id == row[0], DL.c.status == "pending", DL.c.digest_id.is_(None)
            )
            if watch_slug is None:
                conn.execute(
                    sa.update(SB).where(SB.c.id == row[0]).values(active=False, unsubscribed_at=now)
                )
            else:
                watch = sa.select(W.c.id).where(W.c.slug == watch_slug).scalar_subquery()
                done = conn.execute(
                    sa.update(SN)
                    .where(SN.c.subscriber_id == row[0], SN.c.watch_id == watch)
                    .values(unsubscribed_at=now)
                )
                if not done.rowcount:
                    return None
                # Only what that watch matched, and none of the subscriber's other watches did.
                matched_here = sa.select(M.c.event_id).where(M.c.watch_id == watch)
                still_wanted = (
                    sa.select(M.c.event_id)
                    .join(SN, SN.c.watch_id == M.c.watch_id)
                    .where(SN.c.subscriber_id == row[0], SN.c.unsubscribed_at.is_(None))
                )
                owed = sa.and_(
                    owed, DL.c.event_id.in_(matched_here), DL.c.event_id.not_in(still_wanted)
                )
            conn.execute(sa.update(DL).where(owed).values(status="cancelled"))
            return str(row[1])

    def summary(self) -> DeliverySummary:
        """For `pqwatch status`: digests by status, the items they carried, and the ones that
        wait (deferred or left by an outage) or were refused for good."""
        with self.reading() as conn:
            counts = {"sent": 0, "failed": 0, "waiting": 0}
            for status, n in conn.execute(
                sa.select(D.c.status, sa.func.count()).group_by(D.c.status)
            ):
                counts["waiting" if status == "pending" else status] = int(n)
            for status, n in conn.execute(
                sa.select(DL.c.status, sa.func.count())
                .where(DL.c.status.in_(("sent", "pending")))
                .group_by(DL.c.status)
            ):
                counts[f"items_{status}"] = int(n)
            waiting = [
                {"email": r[0], "attempts": int(r[1]), "last_error": r[2], "retry_at": r[3]}
                for r in conn.execute(
                    sa.select(SB.c.email, D.c.attempts, D.c.server_reply, D.c.retry_at)
                    .join(SB, SB.c.id == D.c.subscriber_id)
                    .where(D.c.status == "pending")
                    .order_by(SB.c.email)
                )
            ]
            failed = [
                {"email": r[0], "reply": r[1], "when": r[2]}
                for r in conn.execute(
                    sa.select(SB.c.email, D.c.server_reply, D.c.sent_at)
                    .join(SB, SB.c.id == D.c.subscriber_id)
                    .where(D.c.status == "failed")
                    .order_by(D.c.id.desc())
                    .limit(10)
                )
            ]
        return DeliverySummary(counts, waiting, failed)

    def has_pending_digest(self) -> bool:
        """Whether a digest was started but not accepted (an SMTP outage): worth a retry."""
        with self.reading() as conn:
            found = conn.execute(sa.select(D.c.id).where(D.c.status == "pending").limit(1))
            return found.first() is not None

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
        now = self.now()
        with self._write() as conn:
            conn.execute(
                sa.update(D)
                .where(D.c.id == digest.id)
                .values(status=status, server_reply=reply, sent_at=now)
            )
            conn.execute(
                sa.update(DL)
                .where(DL.c.digest_id == digest.id)
                .values(status=status, server_reply=reply, sent_at=now, attempts=DL.c.attempts + 1)
            )

    def defer(self, digest: OpenDigest, error: str, retry_at: datetime) -> None:
        """The server deferred this recipient (4xx): the digest stays pending, alone, until
        retry_at; the others go on."""
        self._tried(digest, error, retry_at)

    def note_attempt(self, digest: OpenDigest, error: str) -> None:
        """A transient failure: rows stay pending for the next run; remember why."""
        self._tried(digest, error, None)

    def _tried(self, digest: OpenDigest, error: str, retry_at: datetime | None) -> None:
        """A try that did not reach the recipient: counted, with the reply, on the digest and
        its rows; a deferral also says when to try again."""
        if digest.id is None:
            return
        with self._write() as conn:
            conn.execute(
                sa.update(D)
                .where(D.c.id == digest.id)
                .values(attempts=D.c.attempts + 1, retry_at=retry_at, server_reply=error)
            )
            conn.execute(
                sa.update(DL)
                .where(DL.c.digest_id == digest.id)
                .values(attempts=DL.c.attempts + 1, server_reply=error)
            )
