"""Keep the watch, subscriber and subscription tables in line with config.toml.

The config file is the source of truth for the operator's watches and subscribers (origin
"config"); the tables exist so that matches and deliveries can point at stable ids. A watch
or subscriber removed from the file is deactivated, not deleted, so its history (and anything
still owed) is kept.

Web subscribers and personal watches (origin "web", pqwatch.store.subscriptions) live only in
the database: sync never deactivates, deletes or re-subscribes them, whatever the file says.
Two meeting points: an address listed in the file that subscribed on the web becomes the
operator's (its personal watches stay), and a personal watch whose name a new watch in the
file takes is renamed.
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from pqwatch.config import Config

if TYPE_CHECKING:
    from sqlmodel import Session

    from pqwatch.store.models import Watch


# Feed names of the combined feed and the index page: a watch never gets one as its slug
# (a watch named "All" would overwrite all.rss).
RESERVED_SLUGS = frozenset({"all", "index"})


def free_slug(name: str, taken: set[str]) -> str:
    """A slug for a new watch that no watch has yet (nor the combined feed); added to taken."""
    slug = base = slugify(name)
    if slug in RESERVED_SLUGS:
        slug = base = f"watch-{base}"
    n = 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug)
    return slug


def free_name(name: str, taken: set[str]) -> str:
    """`name`, or "name (2)", "name (3)"...: one no watch has, compared casefolded (config
    watch names are unique that way); added to taken (casefolded names)."""
    candidate, n = name, 2
    while candidate.casefold() in taken:
        candidate, n = f"{name} ({n})", n + 1
    taken.add(candidate.casefold())
    return candidate


def slugify(name: str) -> str:
    """A stable, URL-safe slug: "Children's palliative care" -> "childrens-palliative-care"."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = re.sub(r"['\u2019`]", "", ascii_name.lower())
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-")
    return slug or "watch"


class DBAPIConnection(Protocol):
    """A DBAPI connection that runs a statement itself: sqlite3's, or psycopg 3's."""

    def execute(self, sql: str, /) -> Any: ...


def in_step(conn: DBAPIConnection, config: Config) -> bool:
    """Whether the tables already mirror the config (read-only, cheap, a DBAPI connection:
    plain sqlite3 lets read-only commands start without SQLAlchemy): most commands then need
    no write."""
    names = (  # each subscriber's watches, in one text
        "group_concat(w.name, char(31))"
        if isinstance(conn, sqlite3.Connection)
        else "string_agg(w.name, chr(31))"
    )
    rows = conn.execute(
        "SELECT name, query, slug FROM watch WHERE active AND origin = 'config'"
    ).fetchall()
    if {(r[0], r[1]) for r in rows} != {(w.name, w.query) for w in config.watches}:
        return False
    if any(r[2] in RESERVED_SLUGS for r in rows):  # slugged so by an earlier version
        return False
    rows = conn.execute(
        "SELECT s.email, s.name, s.frequency, s.send_empty, s.token IS NOT NULL, "
        f"s.unsubscribed_at IS NOT NULL, {names} "
        "FROM subscriber s LEFT JOIN subscription x ON x.subscriber_id = s.id "
        "LEFT JOIN watch w ON w.id = x.watch_id AND w.active AND w.origin = 'config' "
        "WHERE s.origin = 'config' "
        "AND (s.active OR s.unsubscribed_at IS NOT NULL OR s.paused_at IS NOT NULL) "
        "GROUP BY s.id"
    ).fetchall()
    have = {
        r[0]: (r[1], r[2], bool(r[3]), bool(r[4]), set(filter(None, (r[6] or "").split("\x1f"))))
        for r in rows
    }
    if set(have) != {s.email for s in config.subscribers}:
        return False
    for sc in config.subscribers:
        name, freq, empty, has_token, subs = have[sc.email]
        if (name, freq, empty, has_token) != (sc.name, sc.frequency, sc.send_empty, True):
            return False
        if subs != set(config.watch_names_for(sc)):
            return False
    return True


def sync_config(session: Session, config: Config, now: datetime) -> list[Watch]:
    """Mirror the config into the tables. Returns the watches that are new or whose query
    changed, whose matches over the archive must be (re)computed."""
    import secrets  # here, as the others: search starts faster without them

    import sqlalchemy as sa
    from sqlmodel import select

    from pqwatch.store.models import Subscriber, Subscription, Watch

    every = session.exec(select(Watch)).all()
    watches = {w.name: w for w in every if w.origin == "config"}
    personal = [w for w in every if w.origin != "config"]
    rematch: list[Watch] = []
    taken = {w.slug for w in every} | RESERVED_SLUGS

    for old in watches.values():
        if old.slug in RESERVED_SLUGS:  # named so by an earlier version: give it its own
            old.slug, old.updated_at = free_slug(old.name, taken), now
    wanted = {w.name for w in config.watches}
    # A personal watch never holds a name the operator gives a watch: it is renamed.
    claimed = {n.casefold() for n in wanted}
    names = claimed | {w.name.casefold() for w in every}
    for pw in personal:
        if pw.name.casefold() in claimed:
            pw.name, pw.updated_at = free_name(pw.name, names), now
    if personal:
        session.flush()
    for wc in config.watches:
        row = watches.get(wc.name)
        if row is None:
            slug = free_slug(wc.name, taken)
            row = Watch(name=wc.name, slug=slug, query=wc.query, created_at=now, updated_at=now)
            session.add(row)
            watches[wc.name] = row
            rematch.append(row)
        elif row.query != wc.query or not row.active:
            if row.query != wc.query:
                rematch.append(row)
            row.query, row.active, row.updated_at = wc.query, True, now
    for name, row in watches.items():  # the operator's only
        if name not in wanted and row.active:
            row.active, row.updated_at = False, now
    session.flush()

    # Every row, web ones too: an address the file lists is the operator's.
    subs = {s.email: s for s in session.exec(select(Subscriber)).all()}
    wanted_emails = {s.email for s in config.subscribers}
    by_casefold = {w.name.casefold(): w for w in watches.values()}
    # Only the operator's watches: subscriptions to personal ones are the subscriber's.
    operators = {w.id for w in watches.values()}
    for sc in config.subscribers:
        srow = subs.get(sc.email)
        if srow is None:
            srow = Subscriber(
                token=secrets.token_urlsafe(24),
                email=sc.email,
                name=sc.name,
                frequency=sc.frequency,
                send_empty=sc.send_empty,
                created_at=now,
                updated_at=now,
            )
            session.add(srow)
            session.flush()
        else:
            # Someone who unsubscribed themselves (or paused) stays so, whatever the file says.
            active = srow.unsubscribed_at is None and srow.paused_at is None
            if (srow.name, srow.frequency, srow.send_empty, srow.active, srow.origin) != (
                sc.name,
                sc.frequency,
                sc.send_empty,
                active,
                "config",
            ):
                srow.name, srow.frequency, srow.send_empty = sc.name, sc.frequency, sc.send_empty
                srow.active, srow.origin, srow.updated_at = active, "config", now
            if srow.token is None:
                srow.token = secrets.token_urlsafe(24)
        assert srow.id is not None
        want_ids = {by_casefold[n.casefold()].id for n in config.watch_names_for(sc)}
        have = {
            s.watch_id: s
            for s in session.exec(select(Subscription).where(Subscription.subscriber_id == srow.id))
            if s.watch_id in operators
        }
        for wid in want_ids - have.keys():
            assert wid is not None
            session.add(Subscription(subscriber_id=srow.id, watch_id=wid, created_at=now))
        stale = have.keys() - want_ids
        if stale:
            session.execute(
                sa.delete(Subscription).where(
                    Subscription.subscriber_id == srow.id,  # type: ignore[arg-type]
                    Subscription.watch_id.in_(stale),  # type: ignore[attr-defined]
                )
            )
    for email, srow in subs.items():
        if email not in wanted_emails and srow.active and srow.origin == "config":
            srow.active, srow.updated_at = False, now
    session.flush()
    return rematch
