"""The PQWatch facade: the one object the CLI (and the scheduler) talks to.

It wires the stages together (sources -> store -> match -> notify/feeds) and owns the
database handle and the clock. Each public method does one user-level thing and returns a
plain result type that the caller formats; it never prints.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from pqwatch.config import Config, load_config
from pqwatch.errors import PQWatchError, StorageError, UsageError
from pqwatch.notify.outcome import DigestRun
from pqwatch.store.db import Database

# Stages are imported where they are used: `pqwatch search` should not pay for the HTTP
# client, the HTML parser, the template engine and the feed builder (start-up time).
if TYPE_CHECKING:
    from collections.abc import Sequence

    import jinja2

    from pqwatch.feeds.build import FeedDoc
    from pqwatch.ingest import ClientFactory, Ingest, Progress, RunSummary
    from pqwatch.search.campaign import CampaignRow
    from pqwatch.search.overview import WatchOverview
    from pqwatch.search.results import (
        Preview,
        QuestionStory,
        SearchFacets,
        SearchResult,
        WatchStats,
    )
    from pqwatch.search.subscriptions import SubscriptionView, WatchChoice
    from pqwatch.store.archive import Archive
    from pqwatch.store.copy import CopyResult
    from pqwatch.store.copy import Progress as CopyProgress
    from pqwatch.store.matching import Matcher
    from pqwatch.store.outbox import Outbox
    from pqwatch.store.reads import Reads
    from pqwatch.store.subscriptions import Holder, Subscriptions
    from pqwatch.store.subscriptions import Request as SubscribeRequest
    from pqwatch.web.server import WebServer


def utcnow() -> datetime:
    return datetime.now(UTC)


def _local(when: datetime, tz: ZoneInfo) -> str:
    return when.astimezone(tz).isoformat(timespec="minutes")


@dataclass(frozen=True)
class InitResult:
    database: str
    revision_before: str | None
    revision_after: str | None
    watches: int
    subscribers: int


class PQWatch:
    """Open with `PQWatch.open(config_path)`; close with `close()` (or use `with`)."""

    def __init__(
        self,
        config: Config,
        *,
        now: Callable[[], datetime] = utcnow,
        client_factory: ClientFactory | None = None,
    ) -> None:
        self.config = config
        self.now = now
        self.db = Database(config.database.url)
        self._client_factory = client_factory
        self._ready = False
        self._jinja: jinja2.Environment | None = None

    @cached_property
    def archive(self) -> Archive:
        from pqwatch.store.archive import Archive

        return Archive(self.db, self.now)

    @cached_property
    def reads(self) -> Reads:
        from pqwatch.store.reads import Reads

        return Reads(self.db)

    @cached_property
    def matcher(self) -> Matcher:
        from pqwatch.store.matching import Matcher

        return Matcher(self.db.dialect)

    @cached_property
    def outbox(self) -> Outbox:
        from pqwatch.notify.render import sender_domain
        from pqwatch.store.outbox import Outbox

        return Outbox(self.db, self.now, sender_domain(self.config.email.from_))

    @cached_property
    def ingest(self) -> Ingest:
        from pqwatch.ingest import Ingest, default_client

        return Ingest(
            self.config,
            self.archive,
            now=self.now,
            client_factory=self._client_factory or default_client,
            on_events=self.matcher.on_events,
        )

    @classmethod
    def open(cls, config_path: str | Path | None = None) -> PQWatch:
        return cls(load_config(config_path))

    def __enter__(self) -> PQWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.dispose()

    def ensure_ready(self, writes: str | None = None) -> tuple[str | None, str | None]:
        """Migrate the database to head and bring watches/subscribers in line with the config.
        Every command calls this first, so an upgrade migrates the database by itself. A
        command that `writes` (named so) refuses a read-only copy up front, in one line."""
        if writes is not None and self.db.read_only:
            raise StorageError(
                f"{self.db.describe()}: the database can only be read here, and {writes} writes "
                "to it (search, show, watches and feeds work on a read-only copy)"
            )
        before, after = self.db.migrate()
        if not self._ready:
            # A read-only copy is searched as it is (its watches as they were stored).
            if not self.db.read_only and not self._in_step():
                from pqwatch.store import sync

                with self.db.write() as session:
                    for watch in sync.sync_config(session, self.config, self.now()):
                        assert watch.id is not None
                        self.matcher.match_history(session, watch.id, watch.query)
            self._ready = True
        return before, after

    def _in_step(self) -> bool:
        from pqwatch.store import sync

        if self.db.path is None:  # not a plain file: borrow the engine's DBAPI connection
            with self.db.read() as session:
                dbapi = session.connection().connection.driver_connection
                assert dbapi is not None
                return sync.in_step(dbapi, self.config)
        with self.db.read_raw() as conn:
            return sync.in_step(conn, self.config)

    def init(self) -> InitResult:
        before, after = self.ensure_ready(writes="init")
        return InitResult(
            database=self.db.describe(),
            revision_before=before,
            revision_after=after,
            watches=len(self.config.watches),
            subscribers=len(self.config.subscribers),
        )

    def poll(self, since: date | None = None, until: date | None = None) -> list[RunSummary]:
        """Fetch what changed since the last successful poll (or in an explicit window)."""
        self._ready_to_poll(since, until)
        return self.ingest.poll(since, until)

    def poll_and_alert(
        self, since: date | None = None, until: date | None = None
    ) -> tuple[list[RunSummary], list[str]]:
        """Poll, then tell the operator about a source that keeps failing (or recovered).
        A poll that fails with a bug is a failing poll too. From cron (`pqwatch poll`) this
        is the only way an alert goes out; the daemon polls this way too."""
        self._ready_to_poll(since, until)  # a refused window or database alerts nobody
        try:
            runs = self.ingest.poll(since, until)
        except Exception:
            with suppress(PQWatchError):  # the poll's own error is the one to report
                self.check_alerts()
            raise
        return runs, self.check_alerts()

    def _ready_to_poll(self, since: date | None, until: date | None) -> None:
        if until is not None and since is None:
            raise UsageError("--until needs --since")
        if since is not None and until is not None and until < since:
            raise UsageError(f"--until {until} is before --since {since}")
        self._not_future(since=since, until=until)
        self.ensure_ready(writes="poll")

    def _not_future(self, **days: date | None) -> None:
        """A window that ends after today would move "complete up to" past today, and the
        next poll would skip the real gap: refuse it."""
        today = self.today()
        for option, day in days.items():
            if day is not None and day > today:
                raise UsageError(f"--{option} {day} is in the future (today is {today})")

    def backfill(
        self,
        since: date,
        until: date | None = None,
        *,
        detail: bool = True,
        progress: Callable[[Progress], None] | None = None,
    ) -> RunSummary:
        """Load history (searchable, never mailed as new); a re-run continues where it stopped."""
        if until is not None and until < since:
            raise UsageError(f"--until {until} is before --since {since}")
        self._not_future(since=since, until=until)
        self.ensure_ready(writes="backfill")
        return self.ingest.backfill(since, until, detail=detail, progress=progress)

    def today(self) -> date:
        return self.config.schedule.today(self.now())

    def search(self, query: str, *, limit: int = 20, sort: str = "relevance") -> SearchResult:
        if TYPE_CHECKING:  # each dialect's module has the same functions as SQLite's
            from pqwatch.store.sqlite import search as engine
        else:
            engine = self.db.dialect_module("search")

        self.ensure_ready()
        if self.db.path is not None:  # a plain sqlite3 connection: no SQLAlchemy import
            with self.db.read_raw() as conn:
                return engine.search(conn, query, limit=limit, sort=sort)
        with self.db.read() as session:
            return engine.search(session.connection(), query, limit=limit, sort=sort)

    def search_facets(
        self, query: str, *, limit_per_facet: int = 10, matches: int | None = None
    ) -> SearchFacets:
        """The query's matches counted by parliament, House, type, department, year and
        status, each value with the filter that narrows to it; estimates from a fixed sample
        past 10,000 matches (`SearchFacets.exact` says which). `matches`: the search's exact
        total, if known (saves counting; the counts never depend on it)."""
        if TYPE_CHECKING:
            from pqwatch.store.sqlite.facet_counts import facet_counts
        else:
            facet_counts = self.db.dialect_module("facet_counts").facet_counts

        self.ensure_ready()
        if self.db.path is not None:  # a plain sqlite3 connection, like search
            with self.db.read_raw() as conn:
                return facet_counts(conn, query, limit_per_facet=limit_per_facet, matches=matches)
        with self.db.read() as session:
            return facet_counts(
                session.connection(), query, limit_per_facet=limit_per_facet, matches=matches
            )

    def show(self, ref: str) -> QuestionStory:
        if TYPE_CHECKING:  # each dialect's module has the same functions as SQLite's
            from pqwatch.store.sqlite import search as engine
        else:
            engine = self.db.dialect_module("search")

        self.ensure_ready()
        with self.db.read() as session:
            return engine.question_story(session.connection(), ref, self.today())

    def campaign(self, query: str) -> list[CampaignRow]:
        """One row per authority among the FOI requests the query finds (newest each)."""
        from pqwatch.search.campaign import campaign_rows

        # Every matching request: a campaign is hundreds of authorities, not thousands.
        found = self.search(f"type:foi ({query})", limit=100_000, sort="newest")
        return campaign_rows(list(found.hits), self.today())

    def watches(self, *, public: bool = False) -> list[WatchStats]:
        """Every active watch with its figures; `public`: the operator's only (the web)."""
        if TYPE_CHECKING:  # each dialect's module has the same functions as SQLite's
            from pqwatch.store.sqlite import search as engine
        else:
            engine = self.db.dialect_module("search")

        self.ensure_ready()
        with self.db.read() as session:
            return engine.watch_stats(session.connection(), self.today(), public=public)

    def preview(self, query: str, since: date | None = None, until: date | None = None) -> Preview:
        if TYPE_CHECKING:  # each dialect's module has the same functions as SQLite's
            from pqwatch.store.sqlite import search as engine
        else:
            engine = self.db.dialect_module("search")

        self._not_future(since=since, until=until)
        self.ensure_ready()
        with self.db.read() as session:
            return engine.preview_watch(session.connection(), query, self.today(), since, until)

    def send_digests(
        self,
        subscriber: str | None = None,
        *,
        dry_run: bool = False,
        out: Path | None = None,
        due_only: bool = False,
        on_wait: Callable[[str], None] | None = None,
    ) -> DigestRun:
        """Render and send what each subscriber is owed, now (or only where a scheduled slot
        has passed, with due_only). Dry runs write files to `out` and record nothing."""
        from pqwatch.notify import pipeline

        self.ensure_ready(writes=None if dry_run else "digest")
        subs = self.outbox.subscribers(subscriber)
        if subscriber is not None and not subs:
            raise UsageError(f"no active subscriber {subscriber!r} in the config")
        if dry_run and out is None:
            out = self.config.email.outbox_dir / "dry-run"
        if out is not None and not dry_run and self.config.email.smtp_host:
            # Writing files instead of mailing, then marking them sent, would lose the mail.
            raise UsageError("--out without --dry-run only applies when no smtp_host is set")
        return pipeline.send_digests(
            self.outbox,
            self.config,
            subs,
            now=self.now,
            dry_run=dry_run,
            out=out,
            due_only=due_only,
            on_wait=on_wait,
        )

    # -- feeds ----------------------------------------------------------------------------

    def _feed_list(self) -> list[tuple[str, str, str | None]]:
        from pqwatch.feeds import build as feeds

        listing: list[tuple[str, str, str | None]] = [(feeds.ALL, "All watches", None)]
        return listing + [(s, n, q) for s, n, q in self.reads.active_watches()]

    def _feed_doc(self, slug: str, title: str) -> FeedDoc:
        from pqwatch.feeds import build as feeds

        rows = self.reads.feed_events(slug, self.config.feeds.max_items)
        return feeds.load_feed(rows, slug, title, ZoneInfo(self.config.schedule.timezone))

    def feed_bytes(self, slug: str, kind: str) -> bytes | None:
        """One feed ("rss" or "atom") as bytes; None when there is no such watch."""
        from pqwatch.feeds import build as feeds

        titles = {s: t for s, t, _ in self._feed_list()}
        if slug not in titles:
            return None
        doc = self._feed_doc(slug, titles[slug])
        return feeds.render_feed(doc, kind, self._env(), self.config.feeds.site_url)

    def feeds_index_html(self, base: str = "") -> str:
        return self._index_html(self._feed_list(), base)

    def _index_html(self, listing: list[tuple[str, str, str | None]], base: str) -> str:
        items = [{"slug": s, "title": t, "query": q} for s, t, q in listing]
        return self._env().get_template("feeds_index.html").render(feeds=items, base=base)

    def build_feeds(self, out: Path | None = None) -> FeedsResult:
        """Write every feed, and an index page, into the feeds folder (atomic replace; files
        whose content did not change are left alone, keeping their modification time)."""
        from pqwatch.feeds import build as feeds

        self.ensure_ready()
        folder = out or self.config.feeds.out_dir
        result = FeedsResult(folder)
        listing = self._feed_list()  # read once; each feed's rows once, for both formats
        for slug, title, _ in listing:
            doc = self._feed_doc(slug, title)
            for kind in ("rss", "atom"):
                data = feeds.render_feed(doc, kind, self._env(), self.config.feeds.site_url)
                self._write_if_changed(folder / f"{slug}.{kind}", data, result)
        index = self._index_html(listing, ".").replace("./feeds/", "./").encode()
        self._write_if_changed(folder / "index.html", index, result)
        return result

    @staticmethod
    def _write_if_changed(path: Path, data: bytes, result: FeedsResult) -> None:
        from pqwatch.feeds import build as feeds

        try:
            if path.read_bytes() == data:
                result.unchanged.append(path)
                return
        except OSError:
            pass
        try:
            feeds.write_atomic(path, data)
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc.strerror}") from None
        result.written.append(path)

    def unsubscribe(self, token: str, watch_slug: str | None = None) -> str | None:
        """One-click unsubscribe from everything, or from one watch. Returns the address."""
        return self.outbox.unsubscribe(token, watch_slug)

    def serve(
        self, host: str | None = None, port: int | None = None, workers: int | None = None
    ) -> WebServer:
        """The web app bound to host:port, [web] host and port by default (not yet serving:
        call its run()). One facade serves every request thread: search opens a connection
        per call and the rest use the engine's pool, and it is made ready here, once. With
        several `workers` ([web] workers) each worker process opens a facade of its own (its
        own engine and pool) on this config, and this one lets its connections go."""
        from pqwatch.web.server import WebServer

        self.ensure_ready()
        web = self.config.web
        workers = web.workers if workers is None else workers
        server = WebServer(
            self,
            web.host if host is None else host,
            web.port if port is None else port,
            site_url=web.site_url or self.config.feeds.site_url,
            trusted_proxies=web.trusted_proxies,
            self_service=web.self_service,
            workers=workers,
            open_site=partial(_worker_facade, self.config),
        )
        if workers > 1:
            self.db.dispose()  # the supervisor holds no connection while the workers serve
        return server

    def _env(self) -> jinja2.Environment:
        from pqwatch.notify import render

        if self._jinja is None:
            self._jinja = render.environment()
        return self._jinja

    # -- the pipeline as the daemon runs it -----------------------------------------------

    def poll_cycle(self) -> dict[str, object]:
        """Poll, rebuild feeds, tell the operator about failures. Returns log fields."""
        runs, alerts = self.poll_and_alert()
        built = self.build_feeds()
        # A digest an SMTP outage left pending goes out at the next poll, not a day later.
        retried = self.digest_cycle() if self.outbox.has_pending_digest() else None
        fields: dict[str, object] = {"status": "ok" if all(r.ok for r in runs) else "failed"}
        for r in runs:
            fields.update(r.counts.as_dict())
            fields.update(requests=r.requests, seconds=round(r.seconds, 1))
            if r.error:
                fields["error"] = r.error
        fields["feeds_written"] = len(built.written)
        if alerts:
            fields["alerts"] = "; ".join(alerts)
        if retried is not None:
            fields["pending_digests_retried"] = retried.get("status")
        return fields

    def digest_cycle(self) -> dict[str, object]:
        run = self.send_digests(due_only=True)
        counts: dict[str, int] = {}
        for o in run.outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        fields: dict[str, object] = {"status": "failed" if run.error else "ok", **counts}
        if run.error:
            fields["error"] = run.error
        return fields

    def check_alerts(self) -> list[str]:
        """One email to the operator when a source has failed alert_after_failures polls in a
        row, and one when it recovers; never one per failure, never to subscribers."""
        threshold = self.config.schedule.alert_after_failures
        sent: list[str] = []
        for health in self.archive.source_health():
            source, failures, alerted = (
                health.source,
                health.consecutive_failures,
                health.alert_sent,
            )
            error, last_ok = health.last_error, health.last_success_at
            if failures >= threshold and not alerted:
                subject = f"pqwatch: polling {source} has failed {failures} times in a row"
                body = (
                    f"Polling {source} has failed {failures} times in a row.\n\n"
                    f"Last error: {error}\nLast successful poll: {last_ok or 'never'}\n\n"
                    "pqwatch keeps retrying the same window on every poll; nothing is lost. "
                    "You will get one more email when polling recovers.\n"
                )
                new_flag = True
            elif failures == 0 and alerted:
                subject = f"pqwatch: polling {source} has recovered"
                body = f"Polling {source} works again (last success: {last_ok}).\n"
                new_flag = False
            else:
                continue
            if self._send_operator(subject, body):
                self.archive.set_alert_sent(source, new_flag)
                sent.append(subject)
        return sent

    def _send_operator(self, subject: str, body: str) -> bool:
        from pqwatch.notify import render
        from pqwatch.notify.mailer import PermanentRefusal, TransientFailure, make_transport

        email = self.config.email
        if not email.operator:
            return False  # nobody to tell (yet): an operator added later still hears of it
        from email.message import EmailMessage
        from email.utils import format_datetime, make_msgid

        msg = EmailMessage()
        msg["From"] = email.from_
        msg["To"] = email.operator
        msg["Subject"] = subject
        msg["Date"] = format_datetime(self.now())
        msg["Message-ID"] = make_msgid(domain=render.sender_domain(email.from_))
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(body)
        transport = make_transport(email)
        try:
            stamp = self.now().strftime("%Y%m%d-%H%M%S")
            kind = "recovered" if "recovered" in subject else "failing"
            transport.send(msg, f"{stamp}-operator-{kind}-{uuid.uuid4().hex[:8]}")
        except (PermanentRefusal, TransientFailure):
            return False
        finally:
            transport.close()
        return True

    def status(self) -> StatusReport:
        from pqwatch.locks import daemon_running
        from pqwatch.notify.due import is_due, next_slot

        self.ensure_ready()

        tz = ZoneInfo(self.config.schedule.timezone)
        now = self.now()
        sources: list[dict[str, object]] = []
        for h in self.archive.source_health():
            src = dataclasses.asdict(h)
            for key in ("last_success_at", "last_failure_at"):
                if src[key]:
                    src[key] = _local(src[key], tz)
            sources.append(src)
        last_run = self.archive.last_poll_started()
        subs = self.outbox.subscribers()
        sched = self.config.schedule
        context = self.outbox.run_context()
        summary = self.outbox.summary()
        next_digest = {}
        for sub in subs:
            # A digest sent, or refused for good, since the latest slot deals with that slot.
            last = context.last_sent.get(sub.id)
            due_now = is_due(last, now, sub.frequency, sched.digest_weekday, sched.digest_time, tz)
            nxt = next_slot(now, sub.frequency, sched.digest_weekday, sched.digest_time, tz)
            upcoming = "due now" if due_now else nxt.astimezone(tz).isoformat(timespec="minutes")
            if sub.id in context.pending:
                retry_at = context.pending[sub.id]
                upcoming = (
                    f"waiting to be sent again after {_local(retry_at, tz)}"
                    if retry_at is not None and retry_at > now
                    else "waiting to be sent (at the next run)"
                )
            next_digest[sub.email] = upcoming
        for row in summary.waiting:
            row["retry_at"] = _local(row["retry_at"], tz) if row["retry_at"] else None
        next_poll = None
        if last_run:
            next_poll = (last_run + timedelta(minutes=sched.poll_every_minutes)).astimezone(tz)
        return StatusReport(
            database=self.db.describe(),
            daemon_running=daemon_running(self.db),
            sources=sources,
            digests=summary.counts,
            failed_digests=summary.failed,
            retrying_digests=summary.waiting,
            next_poll=next_poll.isoformat(timespec="minutes") if next_poll else "at next run",
            next_digests=next_digest,
        )

    def run_once(self) -> CycleResult:
        """One full cycle: migrate, poll, match, digests due, feeds (the stages that exist)."""
        result = CycleResult()
        self.ensure_ready(writes="run")
        result.stages.append("migrate")
        result.polls, result.alerts = self.poll_and_alert()
        result.stages.append("poll")
        result.digests = self.send_digests(due_only=True)
        result.stages.append("digests")
        result.feeds = self.build_feeds()
        result.stages.append("feeds")
        return result

    def copy_database(
        self, to_url: str, progress: CopyProgress | None = None, batch_rows: int | None = None
    ) -> CopyResult:
        """Copy this SQLite archive into an empty PostgreSQL database, or carry on with a
        copy of it that stopped (`pqwatch db copy`)."""
        from pqwatch.locks import daemon_running
        from pqwatch.store.copy import BATCH_ROWS, copy_archive

        # Rows the daemon changes after they were copied would not be copied again.
        if daemon_running(self.db.describe()):
            raise UsageError("stop `pqwatch run` first: it writes to the archive being copied")
        return copy_archive(self.db, to_url, progress, batch_rows or BATCH_ROWS)

    # -- web ------------------------------------------------------------------------------

    def feed_list(self) -> list[tuple[str, str, str | None]]:
        """Every feed as (slug, title, query): the combined one first, then each watch."""
        return self._feed_list()

    # -- watch overview

    def watch_overview(self, slug: str, *, today: date | None = None) -> WatchOverview:
        """A watch at a glance (its page): recent matches and what they add up to over the
        last 24 months. An unknown or inactive watch is a UsageError."""
        if TYPE_CHECKING:
            from pqwatch.store.sqlite import watchstats
        else:
            watchstats = self.db.dialect_module("watchstats")

        self.ensure_ready()
        day = today or self.today()
        if self.db.path is not None:  # a plain sqlite3 connection, like search
            with self.db.read_raw() as conn:
                return watchstats.watch_overview(conn, slug, day)
        with self.db.read() as session:
            return watchstats.watch_overview(session.connection(), slug, day)

    # -- self-service subscriptions -------------------------------------------------------
    # The backend of /subscribe, /confirm/<token> and /manage/<token> (issue 18). Web
    # subscribers and their personal watches live in the database (pqwatch.store.
    # subscriptions), inactive and owed nothing until the mailed link is opened; config sync
    # leaves them be. Every method refuses with a UsageError when [web] self_service is
    # false, and none answers differently for an address that is subscribed already.
    # Links are signed and expire (pqwatch.notify.confirm); `client` (the web layer's idea
    # of the client's address) and the address are rate-limited: TooManyRequests.

    @cached_property
    def subscriptions(self) -> Subscriptions:
        from pqwatch.store.subscriptions import Subscriptions

        operators = frozenset(s.email for s in self.config.subscribers)
        return Subscriptions(self.db, self.now, operators)

    def _self_service(self, writes: str | None) -> None:
        from pqwatch.notify.confirm import self_service_on

        if not self_service_on(self.config):
            raise UsageError("subscribing on this site is turned off ([web] self_service)")
        self.ensure_ready(writes=writes)

    def subscribable_watches(self) -> list[WatchChoice]:
        """The operator's active watches, by name: what /subscribe offers.

        Raises:
            UsageError: self-service is off.
        """
        self._self_service(None)
        return self.subscriptions.subscribable()

    def subscribe(
        self,
        email: str,
        watch_slugs: Sequence[str] = (),
        frequency: str = "weekly",
        *,
        query: str | None = None,
        client: str | None = None,
        base_url: str | None = None,
    ) -> None:
        """Ask for digests of these watches (slugs of the operator's watches) and, with
        `query` ("alert me for this search"), of a personal watch made from the search.
        Sends one mail and returns nothing, the same whatever the address's state: a new
        (or renewed) address gets a confirmation link ({site}/confirm/<token>, 48 hours) and
        is sent nothing else until it is opened; an address subscribed already gets a manage
        link, or a link confirming the new search.

        Args:
            email: the address as typed (checked as config.toml's are).
            watch_slugs: the operator's watches chosen (at least one, or a query).
            frequency: "weekly" or "daily".
            query: a search in pqwatch's query language, for a personal watch.
            client: the client's address, for the limit per client (None: no limit).
            base_url: the site's address when neither [web] nor [feeds] site_url is set
                (the web layer's own, never taken from a request's Host header).

        Raises:
            UsageError: self-service off, no site address, a bad address, frequency or
                watch, a malformed query (the parser's one-line message).
            TooManyRequests: too many requests from this client or mails to this address.
            DeliveryError: the mail could not be sent now (one line, nothing revealed).
            StorageError: a read-only database.
        """
        from pqwatch.notify import confirm
        from pqwatch.query import parse
        from pqwatch.store.subscriptions import SUBSCRIBE_PER_CLIENT
        from pqwatch.text import strip_controls

        self._self_service("subscribing")
        site = confirm.public_site(self.config) or (base_url or "").rstrip("/")
        if not site:
            raise UsageError(
                "subscribing on the web needs [web] site_url, the address links in mail lead to"
            )
        subs = self.subscriptions
        if client is not None:
            subs.hit(SUBSCRIBE_PER_CLIENT, client)
        address = confirm.address(email)
        if query is not None:
            query = " ".join(strip_controls(query).split())
            parse(query)
        slugs = [watch_slugs] if isinstance(watch_slugs, str) else list(watch_slugs)
        request = subs.request(address, slugs, frequency, query)
        self._mail_request(request, site)

    def _mail_request(self, request: SubscribeRequest, site: str) -> None:
        from pqwatch.notify import confirm
        from pqwatch.notify.pipeline import reply_address

        now, holder = self.now(), request.holder
        key = self.subscriptions.signing_key()
        if request.kind == "already":
            expires = now + confirm.MANAGE_LIFETIME
            link = confirm.manage_url(site, key, holder.id, holder.secret, now)
        else:
            expires = now + confirm.CONFIRM_LIFETIME
            binding = confirm.confirm_binding(holder.secret, holder.nonce)
            token = confirm.make_token(key, "confirm", holder.id, expires, binding)
            link = f"{site}/confirm/{token}"
        mail = confirm.ConfirmationMail(
            request.kind, holder.email, request.frequency, request.watches, link, expires
        )
        message = confirm.build_message(
            self._env(),
            mail,
            email=self.config.email,
            reply_to=reply_address(self.config.email),
            now=now,
            timezone=self.config.schedule.timezone,
        )
        confirm.send(self.config.email, message, now)

    def _link_holder(self, token: str, purpose: str) -> Holder:
        """Whose signed link this is, or a one-line UsageError (not valid, or expired)."""
        from pqwatch.notify import confirm

        subs = self.subscriptions
        parsed = confirm.read_token(token)
        holder = subs.holder(parsed.subscriber_id) if parsed is not None else None
        if parsed is None or holder is None:
            ok = False
        elif purpose == "confirm":
            binding = confirm.confirm_binding(holder.secret, holder.nonce)
            ok = confirm.signed(subs.signing_key(), purpose, parsed, binding)
        else:
            binding = confirm.manage_binding(holder.secret)
            ok = confirm.signed(subs.signing_key(), purpose, parsed, binding)
        if not ok or parsed is None or holder is None:
            raise UsageError(
                "this link is not valid, or a newer mail replaced it: use the latest one"
                if purpose == "confirm"
                else "this link is not valid (was it copied whole?)"
            )
        if confirm.expired(parsed, self.now()):
            raise UsageError(
                "this link has expired: subscribe again to get a new one"
                if purpose == "confirm"
                else "this link has expired: use the one in your latest digest"
            )
        return holder

    def _subscription_view(self, holder: Holder) -> SubscriptionView:
        from pqwatch.notify import confirm

        key = self.subscriptions.signing_key()
        token = confirm.manage_token(key, holder.id, holder.secret, self.now())
        return self.subscriptions.view(holder.id, token)

    def confirm(self, token: str, *, client: str | None = None) -> SubscriptionView:
        """Open a confirmation link: a pending subscription becomes active (owed what is
        matched from now on; its first digest at the next run), and searches waiting for it
        start to be matched. Opening it again changes nothing. Returns the subscription
        (its manage_token leads to /manage/<token>).

        Raises:
            UsageError: self-service off; a link not valid, replaced by a newer request, or
                expired (48 hours).
            TooManyRequests: too many confirmations from this client.
        """
        from pqwatch.store.subscriptions import CONFIRM_PER_CLIENT

        self._self_service("confirming")
        if client is not None:
            self.subscriptions.hit(CONFIRM_PER_CLIENT, client)
        holder = self._link_holder(token, "confirm")
        self.subscriptions.confirm(holder.id, holder.nonce, self.matcher.match_history)
        return self._subscription_view(holder)

    def manage(self, token: str) -> SubscriptionView:
        """What /manage/<token> shows: address, frequency, paused or unsubscribed, the
        subscriber's own searches and the watches they may choose (subscribed or not).

        Raises:
            UsageError: self-service off; a link not valid or expired; a subscription
                waiting for confirmation, or ended by the operator.
        """
        self._self_service(None)
        return self._subscription_view(self._link_holder(token, "manage"))

    def update_subscription(
        self, token: str, watch_slugs: Sequence[str], frequency: str, paused: bool
    ) -> SubscriptionView:
        """The manage form: subscribe to exactly these watches (slugs among the view's
        `watches`), at this frequency, paused or not (not paused also resumes after an
        unsubscribe). What was owed from a dropped watch is cancelled. For an address in
        config.toml, frequency and the choice of the operator's watches stay the file's:
        only dropping or taking back one of its own is allowed.

        Raises:
            UsageError: self-service off; a link not valid or expired; no watch chosen, a
                watch not offered, a bad frequency, or a change that is the operator's.
        """
        self._self_service("changing a subscription")
        holder = self._link_holder(token, "manage")
        slugs = [watch_slugs] if isinstance(watch_slugs, str) else list(watch_slugs)
        dropped = self.subscriptions.update(holder.id, slugs, frequency, paused)
        for slug in dropped:
            self.outbox.unsubscribe(holder.secret, slug)
        if dropped:
            self.subscriptions.retire(holder.id)
        return self._subscription_view(holder)

    def unsubscribe_all(self, token: str) -> SubscriptionView:
        """Unsubscribe from everything (as the one-click link does: what was owed is
        cancelled). The manage link still works, to subscribe again.

        Raises:
            UsageError: self-service off; a link not valid or expired.
        """
        self._self_service("unsubscribing")
        holder = self._link_holder(token, "manage")
        self.outbox.unsubscribe(holder.secret)
        return self._subscription_view(holder)


@dataclass
class FeedsResult:
    folder: Path
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class StatusReport:
    database: str
    daemon_running: bool
    sources: list[dict[str, object]]
    # digests sent / failed / waiting, and the items (answers, events) they carried
    digests: dict[str, int]
    failed_digests: list[dict[str, object]]
    retrying_digests: list[dict[str, object]]
    next_poll: str
    next_digests: dict[str, str]


@dataclass
class CycleResult:
    stages: list[str] = field(default_factory=list)
    polls: list[RunSummary] = field(default_factory=list)
    digests: DigestRun = field(default_factory=DigestRun)
    feeds: FeedsResult | None = None
    alerts: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        errors = [p.error for p in self.polls if p.error]
        if self.digests.error:
            errors.append(self.digests.error)
        if self.digests.refused:
            errors.append(self.digests.refused)
        return errors


def _worker_facade(config: Config) -> PQWatch:
    """The facade of one web worker process (`pqwatch serve --workers N`), made in it. The
    supervisor made the database ready before it started the workers: this one does not
    again (syncing the config from N workers at once would be N writes for nothing)."""
    svc = PQWatch(config)
    svc._ready = True
    return svc
