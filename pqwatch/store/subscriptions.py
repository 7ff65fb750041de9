"""Self-service subscriptions: web subscribers, their personal watches, the signing secret and
the rate-limit counters. Every statement about them is here; the facade (pqwatch.service,
"self-service subscriptions") checks signed links and sends the mail.

A web subscriber (origin "web") is, in turn:
- pending: confirmed_at NULL and inactive. Matching writes outbox rows only for active
  subscribers and digests go only to active ones, so nothing is owed or sent before the
  mailed link is opened. A new request for the address replaces the pending one (its nonce
  too, so only the newest link works). Requests left unconfirmed PENDING_DAYS are deleted.
- confirmed: active; created_at is reset to the moment of confirmation, which bounds what a
  new subscriber is owed (Outbox._period_start).
- paused (paused_at) or unsubscribed (unsubscribed_at): inactive; the manage link resumes.
A personal watch (origin "web", owner_id) is made from a search; it stays inactive until its
owner confirms it (with the subscription, or by a link of its own when the owner is
subscribed already) and is deactivated when the owner drops it. Config sync
(pqwatch.store.sync) never touches either; an address listed in config.toml is the
operator's, whose watches and frequency only the file changes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from pqwatch.errors import TooManyRequests, UsageError
from pqwatch.search.subscriptions import SubscriptionView, WatchChoice
from pqwatch.store.db import Database
from pqwatch.store.models import (
    Delivery,
    Digest,
    RateEvent,
    Secret,
    Subscriber,
    Subscription,
    Watch,
    WatchMatch,
)
from pqwatch.store.sync import RESERVED_SLUGS, slugify

if TYPE_CHECKING:
    from sqlmodel import Session

SB = Subscriber.__table__  # type: ignore[attr-defined]
SN = Subscription.__table__  # type: ignore[attr-defined]
W = Watch.__table__  # type: ignore[attr-defined]
M = WatchMatch.__table__  # type: ignore[attr-defined]
D = Digest.__table__  # type: ignore[attr-defined]
DL = Delivery.__table__  # type: ignore[attr-defined]
RE = RateEvent.__table__  # type: ignore[attr-defined]
SC = Secret.__table__  # type: ignore[attr-defined]

FREQUENCIES = ("weekly", "daily")
# An unconfirmed request (and a search never confirmed) is deleted after this long.
PENDING_DAYS = 7
# The longest search a personal watch is made from, and the longest name shown for one.
MAX_QUERY = 500
MAX_NAME = 60

TOO_MANY = "too many requests, try again later"


@dataclass(frozen=True)
class Limit:
    """At most `count` requests of a kind per key (address or client) in `window`."""

    kind: str
    count: int
    window: timedelta


SUBSCRIBE_PER_CLIENT = Limit("subscribe", 20, timedelta(hours=1))
CONFIRM_PER_CLIENT = Limit("confirm", 30, timedelta(hours=1))
MAILS_PER_ADDRESS = Limit("mail", 3, timedelta(days=1))
_LONGEST_WINDOW = timedelta(days=1)

# Rematch a watch over the archive (Matcher.match_history): its feed and statistics get
# history, and nothing is delivered.
Rematch = Callable[["Session", int, str], int]


@dataclass(frozen=True)
class Holder:
    """A subscriber as a signed link is checked against."""

    id: int
    email: str
    secret: str  # the subscriber's own secret (also the one-click unsubscribe token)
    nonce: str | None  # bound into the latest confirmation link
    operator: bool  # listed in config.toml


@dataclass(frozen=True)
class Request:
    """What `request` decided, for the mail the facade sends."""

    kind: str  # confirm | addition | already (pqwatch.notify.confirm.ConfirmationMail)
    holder: Holder
    frequency: str
    watches: tuple[str, ...]


def read_signing_key(conn: sa.Connection) -> bytes | None:
    """The signing secret, on the caller's connection (digests sign their manage links)."""
    value = conn.execute(sa.select(SC.c.value).where(SC.c.name == "signing")).scalar()
    return str(value).encode() if value else None


def personal_name(query: str) -> str:
    """What a personal watch is called: its search, cut to MAX_NAME characters."""
    text = " ".join(query.split())
    return text if len(text) <= MAX_NAME else text[: MAX_NAME - 1].rstrip() + "\u2026"


class Subscriptions:
    """Reads and writes of self-service subscriptions, each in one short transaction."""

    def __init__(
        self, db: Database, now: Callable[[], datetime], operator_emails: frozenset[str]
    ) -> None:
        self.db = db
        self.now = now
        self.operator_emails = operator_emails
        self._key: bytes | None = None

    @contextmanager
    def _write(self) -> Iterator[tuple[Session, sa.Connection]]:
        with self.db.write() as session:
            yield session, session.connection()

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self.db.read() as session:
            yield session.connection()

    # -- the secret and the counters ------------------------------------------------------

    def signing_key(self) -> bytes:
        """The secret links are signed with: made by migration 0014 (made again, once, if
        someone deleted it: links signed before then stop working)."""
        if self._key is None:
            with self._read() as conn:
                key = read_signing_key(conn)
            if key is None:
                with self._write() as (_, conn):
                    conn.execute(
                        sa.insert(SC)
                        .prefix_with("OR IGNORE")
                        .values(name="signing", value=secrets.token_hex(32), created_at=self.now())
                    )
                    key = read_signing_key(conn)
            assert key is not None
            self._key = key
        return self._key

    def _rate_key(self, kind: str, value: str) -> str:
        """A keyed hash of the address or client: the table never holds either."""
        mac = hmac.new(self.signing_key(), f"{kind}\0{value}".encode(), hashlib.sha256)
        return mac.hexdigest()[:32]

    def _hit(self, conn: sa.Connection, limit: Limit, value: str, now: datetime) -> bool:
        """Count one request; False (and not counted) when the limit is reached already."""
        conn.execute(sa.delete(RE).where(RE.c.created_at < now - _LONGEST_WINDOW))
        key = self._rate_key(limit.kind, value)
        seen = conn.execute(
            sa.select(sa.func.count()).where(
                RE.c.kind == limit.kind, RE.c.key == key, RE.c.created_at > now - limit.window
            )
        ).scalar()
        if int(seen or 0) >= limit.count:
            return False
        conn.execute(sa.insert(RE).values(kind=limit.kind, key=key, created_at=now))
        return True

    def hit(self, limit: Limit, value: str) -> None:
        """Count one request from a client, or raise TooManyRequests."""
        self.signing_key()  # before the write: it may need a transaction of its own
        with self._write() as (_, conn):
            allowed = self._hit(conn, limit, value, self.now())
        if not allowed:
            raise TooManyRequests(TOO_MANY)

    # -- reads ----------------------------------------------------------------------------

    def subscribable(self) -> list[WatchChoice]:
        """The operator's active watches, by name: what /subscribe offers."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(W.c.slug, W.c.name, W.c.query)
                .where(W.c.active, W.c.origin == "config")
                .order_by(W.c.name)
            ).all()
        return [WatchChoice(r[0], r[1], r[2]) for r in rows]

    def holder(self, subscriber_id: int) -> Holder | None:
        with self._read() as conn:
            row = conn.execute(_holder_query().where(SB.c.id == subscriber_id)).first()
        return None if row is None else self._holder(row)

    def _holder(self, row: Any) -> Holder:
        return Holder(
            id=int(row.id),
            email=str(row.email),
            secret=str(row.token),
            nonce=row.confirm_nonce,
            operator=row.origin == "config" and row.email in self.operator_emails,
        )

    def view(self, subscriber_id: int, manage_token: str) -> SubscriptionView:
        """The subscription as /manage shows it; a UsageError for one that is not confirmed
        or that the operator ended."""
        with self._read() as conn:
            row = self._managed(conn, subscriber_id)
            choices = self._choices(conn, row)
        return SubscriptionView(
            email=str(row.email),
            frequency=str(row.frequency),
            paused=row.paused_at is not None,
            unsubscribed=row.unsubscribed_at is not None,
            operator_managed=self._holder(row).operator,
            watches=tuple(choices),
            manage_token=manage_token,
        )

    def _managed(self, conn: sa.Connection, subscriber_id: int) -> Any:
        row = conn.execute(_holder_query().where(SB.c.id == subscriber_id)).first()
        if row is None:
            raise UsageError("this link is not valid (was it copied whole?)")
        if row.origin == "web" and row.confirmed_at is None:
            raise UsageError(
                "this subscription is waiting for confirmation: open the link in the "
                "confirmation mail first"
            )
        if row.origin == "config" and row.email not in self.operator_emails:
            raise UsageError(
                "the operator of this service has ended this subscription; you can subscribe again"
            )
        return row

    def _choices(self, conn: sa.Connection, row: Any) -> list[WatchChoice]:
        """The subscriber's own searches, then the operator's watches they may choose (all of
        them; for an address in config.toml, the ones the file gives it)."""
        mine = {
            r.id: r
            for r in conn.execute(
                sa.select(W.c.id, W.c.slug, W.c.name, W.c.query, W.c.origin, SN.c.unsubscribed_at)
                .join(SN, SN.c.watch_id == W.c.id)
                .where(SN.c.subscriber_id == row.id, W.c.active)
                .order_by(W.c.name)
            )
        }
        personal = [
            WatchChoice(r.slug, r.name, r.query, subscribed=True, personal=True)
            for r in mine.values()
            if r.origin == "web" and r.unsubscribed_at is None
        ]
        if self._holder(row).operator:
            offered = [
                WatchChoice(r.slug, r.name, r.query, subscribed=r.unsubscribed_at is None)
                for r in mine.values()
                if r.origin == "config"
            ]
        else:
            live = {i for i, r in mine.items() if r.unsubscribed_at is None}
            offered = [
                WatchChoice(r.slug, r.name, r.query, subscribed=r.id in live)
                for r in conn.execute(
                    sa.select(W.c.id, W.c.slug, W.c.name, W.c.query)
                    .where(W.c.active, W.c.origin == "config")
                    .order_by(W.c.name)
                )
            ]
        return personal + offered

    # -- a request from /subscribe ----------------------------------------------------------

    def request(
        self, email: str, slugs: Sequence[str], frequency: str, query: str | None
    ) -> Request:
        """Record a subscribe request: a new or renewed pending subscription, searches to add
        to a subscription, or nothing (the address is subscribed already: "already"). The
        address's mail limit counts whichever it is, and is checked before anything else is
        looked at, so no answer depends on the address's state.

        Raises UsageError (unknown watch, bad frequency, a query that cannot be matched) and
        TooManyRequests."""
        if frequency not in FREQUENCIES:
            raise UsageError(f"frequency must be weekly or daily, not {ascii(frequency[:40])}")
        search = " ".join(query.split()) if query is not None else None
        if search is not None:
            from pqwatch.store.sqlite.compile import compile_query

            if len(search) > MAX_QUERY:
                raise UsageError(
                    f"the search is too long to watch ({len(search)} characters; at most "
                    f"{MAX_QUERY})"
                )
            compile_query(search)  # a QuerySyntaxError (UsageError) with the parser's message
        self.signing_key()
        now = self.now()
        with self._write() as (_, conn):
            chosen = self._operator_watches(conn, slugs)
            if not chosen and search is None:
                raise UsageError("choose at least one watch (or a search to be alerted about)")
            if not self._hit(conn, MAILS_PER_ADDRESS, email, now):
                raise TooManyRequests(TOO_MANY)
            self._purge(conn, now)
            row = conn.execute(_holder_query().where(SB.c.email == email)).first()
            if row is not None and self._subscribed(row):
                return self._more(conn, row, search, now)
            return self._pending(conn, row, email, chosen, frequency, search, now)

    def _subscribed(self, row: Any) -> bool:
        if row.origin == "config":
            return bool(row.email in self.operator_emails)
        return row.confirmed_at is not None and row.unsubscribed_at is None

    def _operator_watches(self, conn: sa.Connection, slugs: Sequence[str]) -> dict[int, str]:
        """{id: name} of the operator's active watches with these slugs; a UsageError names
        the first that is not one."""
        wanted = list(dict.fromkeys(slugs))
        if not wanted:
            return {}
        found = {
            r.slug: (r.id, r.name)
            for r in conn.execute(
                sa.select(W.c.id, W.c.slug, W.c.name).where(
                    W.c.slug.in_(wanted), W.c.active, W.c.origin == "config"
                )
            )
        }
        for slug in wanted:
            if slug not in found:
                raise UsageError(f"there is no watch {ascii(str(slug)[:60])} to subscribe to")
        return {found[s][0]: found[s][1] for s in wanted}

    def _more(self, conn: sa.Connection, row: Any, search: str | None, now: datetime) -> Request:
        """A request for an address subscribed already: a search becomes a pending personal
        watch, confirmed by a link of its own; anything else changes nothing."""
        subscribed = tuple(
            r.name
            for r in conn.execute(
                sa.select(W.c.name)
                .join(SN, SN.c.watch_id == W.c.id)
                .where(SN.c.subscriber_id == row.id, SN.c.unsubscribed_at.is_(None), W.c.active)
                .order_by(W.c.name)
            )
        )
        if search is not None:
            watch_id, active = self._personal(conn, row.id, search, now)
            live = conn.execute(
                sa.select(SN.c.watch_id).where(
                    SN.c.subscriber_id == row.id,
                    SN.c.watch_id == watch_id,
                    SN.c.unsubscribed_at.is_(None),
                )
            ).first()
            if not (active and live):
                # Theirs once, dropped since: it waits for the new link like a new one.
                conn.execute(
                    sa.update(W).where(W.c.id == watch_id).values(active=False, updated_at=now)
                )
                self._subscribe(conn, row.id, [watch_id], now)
                nonce = secrets.token_urlsafe(12)
                conn.execute(sa.update(SB).where(SB.c.id == row.id).values(confirm_nonce=nonce))
                row = conn.execute(_holder_query().where(SB.c.id == row.id)).one()
                waiting = tuple(name for _, name, _ in self._waiting(conn, row.id))
                return Request("addition", self._holder(row), str(row.frequency), waiting)
        return Request("already", self._holder(row), str(row.frequency), subscribed)

    def _pending(
        self,
        conn: sa.Connection,
        row: Any,
        email: str,
        chosen: dict[int, str],
        frequency: str,
        search: str | None,
        now: datetime,
    ) -> Request:
        """A new pending subscription, or a pending one renewed (a removed operator address,
        someone who unsubscribed, an earlier request): inactive until confirmed, with the
        subscriptions asked for now and a new nonce."""
        nonce = secrets.token_urlsafe(12)
        state = dict(
            origin="web", active=False, confirmed_at=None, paused_at=None, frequency=frequency,
            confirm_nonce=nonce, updated_at=now,
        )  # fmt: skip
        if row is None:
            key = conn.execute(
                sa.insert(SB).values(
                    email=email, name="", send_empty=False, token=secrets.token_urlsafe(24),
                    created_at=now, **state,
                )
            ).inserted_primary_key  # fmt: skip
            assert key is not None
            sid = int(key[0])
        else:
            sid = int(row.id)
            conn.execute(sa.update(SB).where(SB.c.id == sid).values(**state))
            if row.token is None:
                conn.execute(
                    sa.update(SB).where(SB.c.id == sid).values(token=secrets.token_urlsafe(24))
                )
        wanted = dict(chosen)
        if search is not None:
            watch_id, _ = self._personal(conn, sid, search, now)
            wanted[watch_id] = personal_name(search)
        self._subscribe(conn, sid, list(wanted), now, only=True)
        fresh = conn.execute(_holder_query().where(SB.c.id == sid)).one()
        names = tuple(
            r.name
            for r in conn.execute(
                sa.select(W.c.name).where(W.c.id.in_(list(wanted))).order_by(W.c.name)
            )
        )
        return Request("confirm", self._holder(fresh), frequency, names)

    def _personal(
        self, conn: sa.Connection, owner: int, search: str, now: datetime
    ) -> tuple[int, bool]:
        """(id, active) of the owner's personal watch for this search: theirs already, or a
        new one, inactive, named from the search (a name and slug no other watch has)."""
        found = conn.execute(
            sa.select(W.c.id, W.c.active).where(
                W.c.owner_id == owner, W.c.origin == "web", W.c.query == search
            )
        ).first()
        if found is not None:
            conn.execute(sa.update(W).where(W.c.id == found.id).values(updated_at=now))
            return int(found.id), bool(found.active)
        every = conn.execute(sa.select(W.c.name, W.c.slug)).all()
        names = {r.name.casefold() for r in every}
        # A name taken (another person's search, or a watch of the operator's) gets a random
        # tag, not a number: "(12)" would tell them how many others searched the same.
        name = base = personal_name(search)
        while name.casefold() in names:
            name = f"{base} ({secrets.token_hex(2)})"
        slugs = {r.slug for r in every} | RESERVED_SLUGS
        slug = stem = slugify(base)[:60].strip("-") or "search"
        while slug in slugs:
            slug = f"{stem}-{secrets.token_hex(3)}"
        key = conn.execute(
            sa.insert(W).values(
                name=name, slug=slug, query=search, active=False, origin="web", owner_id=owner,
                created_at=now, updated_at=now,
            )
        ).inserted_primary_key  # fmt: skip
        assert key is not None
        return int(key[0]), False

    def _subscribe(
        self,
        conn: sa.Connection,
        sid: int,
        watch_ids: Sequence[int],
        now: datetime,
        *,
        only: bool = False,
    ) -> None:
        """Subscribe to these watches (again, for one dropped before); with `only`, end every
        other subscription, and deactivate the subscriber's own searches so dropped."""
        have = {
            r.watch_id: r.unsubscribed_at
            for r in conn.execute(
                sa.select(SN.c.watch_id, SN.c.unsubscribed_at).where(SN.c.subscriber_id == sid)
            )
        }
        for wid in watch_ids:
            if wid not in have:
                conn.execute(sa.insert(SN).values(subscriber_id=sid, watch_id=wid, created_at=now))
            elif have[wid] is not None:
                conn.execute(
                    sa.update(SN)
                    .where(SN.c.subscriber_id == sid, SN.c.watch_id == wid)
                    .values(unsubscribed_at=None)
                )
        if only:
            dropped = [w for w, ended in have.items() if ended is None and w not in watch_ids]
            if dropped:
                conn.execute(
                    sa.update(SN)
                    .where(SN.c.subscriber_id == sid, SN.c.watch_id.in_(dropped))
                    .values(unsubscribed_at=now)
                )
                self._retire(conn, sid, now)

    def _waiting(self, conn: sa.Connection, sid: int) -> list[tuple[int, str, str]]:
        """(id, name, query) of the subscriber's own searches waiting for confirmation."""
        rows = conn.execute(
            sa.select(W.c.id, W.c.name, W.c.query)
            .join(SN, sa.and_(SN.c.watch_id == W.c.id, SN.c.subscriber_id == sid))
            .where(
                W.c.owner_id == sid,
                W.c.origin == "web",
                sa.not_(W.c.active),
                SN.c.unsubscribed_at.is_(None),
            )
            .order_by(W.c.name)
        )
        return [(int(r.id), str(r.name), str(r.query)) for r in rows]

    def _retire(self, conn: sa.Connection, sid: int, now: datetime) -> None:
        """Deactivate the subscriber's own searches they no longer subscribe to."""
        ended = (
            sa.select(SN.c.watch_id)
            .where(SN.c.subscriber_id == sid, SN.c.unsubscribed_at.is_not(None))
            .scalar_subquery()
        )
        conn.execute(
            sa.update(W)
            .where(W.c.owner_id == sid, W.c.origin == "web", W.c.active, W.c.id.in_(ended))
            .values(active=False, updated_at=now)
        )

    def retire(self, subscriber_id: int) -> None:
        with self._write() as (_, conn):
            self._retire(conn, subscriber_id, self.now())

    def _purge(self, conn: sa.Connection, now: datetime) -> None:
        """Forget requests never confirmed (and searches never confirmed) after PENDING_DAYS:
        rows that were never active, with no digest or delivery of their own."""
        cutoff = now - timedelta(days=PENDING_DAYS)
        stale = (
            sa.select(SB.c.id)
            .where(
                SB.c.origin == "web",
                SB.c.confirmed_at.is_(None),
                SB.c.updated_at < cutoff,
                ~sa.exists().where(D.c.subscriber_id == SB.c.id),
                ~sa.exists().where(DL.c.subscriber_id == SB.c.id),
            )
            .scalar_subquery()
        )
        never_used = sa.and_(
            W.c.origin == "web",
            sa.not_(W.c.active),
            ~sa.exists().where(M.c.watch_id == W.c.id),
        )
        conn.execute(
            sa.delete(W).where(never_used, sa.or_(W.c.owner_id.in_(stale), W.c.updated_at < cutoff))
        )
        conn.execute(sa.delete(SB).where(SB.c.id.in_(stale)))

    # -- confirming, managing ---------------------------------------------------------------

    def confirm(self, subscriber_id: int, nonce: str | None, rematch: Rematch) -> None:
        """What the confirmation link confirms: a pending subscription becomes active (owed
        what is matched from now on) and the subscriber's searches waiting for it start to be
        matched. Again is a no-op. A UsageError when a newer request replaced the link."""
        now = self.now()
        with self._write() as (session, conn):
            row = conn.execute(_holder_query().where(SB.c.id == subscriber_id)).first()
            if row is None or nonce is None or row.confirm_nonce != nonce:
                raise UsageError(
                    "this link was replaced by a newer one: use the latest mail we sent you"
                )
            if row.origin == "web" and row.confirmed_at is None:
                conn.execute(
                    sa.update(SB)
                    .where(SB.c.id == row.id)
                    .values(
                        active=True, confirmed_at=now, created_at=now, unsubscribed_at=None,
                        paused_at=None, updated_at=now,
                    )
                )  # fmt: skip
            for watch_id, _, query in self._waiting(conn, row.id):
                conn.execute(
                    sa.update(W).where(W.c.id == watch_id).values(active=True, updated_at=now)
                )
                rematch(session, watch_id, query)

    def update(
        self, subscriber_id: int, slugs: Sequence[str], frequency: str, paused: bool
    ) -> list[str]:
        """Set the subscription from the manage form: these watches (the subscriber's own
        searches among them), this frequency, paused or not; not paused also resumes an
        unsubscribed one. Returns the slugs to unsubscribe from (Outbox.unsubscribe, which
        also cancels what was owed from them). For an address in config.toml the frequency
        and the choice among the operator's watches are the file's: only dropping (or taking
        back) one of its own is allowed."""
        if frequency not in FREQUENCIES:
            raise UsageError(f"frequency must be weekly or daily, not {ascii(str(frequency)[:40])}")
        wanted = list(dict.fromkeys(slugs))
        if not wanted:
            raise UsageError("choose at least one watch (or unsubscribe from everything)")
        now = self.now()
        with self._write() as (_, conn):
            row = self._managed(conn, subscriber_id)
            choices = {c.slug: c for c in self._choices(conn, row)}
            for slug in wanted:
                if slug not in choices:
                    raise UsageError(f"there is no watch {ascii(str(slug)[:60])} to choose here")
            operator = self._holder(row).operator
            if operator and frequency != row.frequency:
                raise UsageError(
                    "how often this address gets digests is set by the operator of this service"
                )
            add = [s for s in wanted if not choices[s].subscribed]
            ids: dict[str, int] = {
                r.slug: int(r.id)
                for r in conn.execute(sa.select(W.c.slug, W.c.id).where(W.c.slug.in_(add)))
            }
            self._subscribe(conn, row.id, [ids[s] for s in add], now)
            state: dict[str, Any] = {"frequency": frequency, "updated_at": now}
            if paused:
                state.update(active=False, paused_at=row.paused_at or now)
            else:
                state.update(active=True, paused_at=None, unsubscribed_at=None)
            conn.execute(sa.update(SB).where(SB.c.id == row.id).values(**state))
        return [s for s, c in choices.items() if c.subscribed and s not in wanted]


def _holder_query() -> sa.Select[Any]:
    return sa.select(
        SB.c.id, SB.c.email, SB.c.token, SB.c.confirm_nonce, SB.c.origin, SB.c.confirmed_at,
        SB.c.unsubscribed_at, SB.c.paused_at, SB.c.frequency,
    )  # fmt: skip
