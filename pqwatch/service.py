"""The PQWatch facade: the one object the CLI (and the scheduler) talks to.

It wires the stages together (sources -> store -> match -> notify/feeds) and owns the
database handle and the clock. Each public method does one user-level thing and returns a
plain result type that the caller formats; it never prints.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from email.utils import parseaddr
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2

from pqwatch.config import Config, load_config
from pqwatch.errors import UsageError
from pqwatch.ingest import ClientFactory, Ingest, Progress, RunSummary, default_client
from pqwatch.notify import render
from pqwatch.notify.compose import compose
from pqwatch.notify.due import is_due
from pqwatch.notify.mailer import PermanentRefusal, TransientFailure, Transport, make_transport
from pqwatch.search import engine
from pqwatch.search.engine import Preview, QuestionStory, SearchResult, WatchStats
from pqwatch.search.matching import Matcher
from pqwatch.store import sync
from pqwatch.store.archive import Archive
from pqwatch.store.db import Database
from pqwatch.store.models import utcnow
from pqwatch.store.outbox import Outbox, SubscriberRow


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
        client_factory: ClientFactory = default_client,
    ) -> None:
        self.config = config
        self.now = now
        self.db = Database(config.database.url)
        self.archive = Archive(self.db, now)
        self.matcher = Matcher()
        self.outbox = Outbox(self.db, now, render.sender_domain(config.email.from_))
        self.ingest = Ingest(
            config,
            self.archive,
            now=now,
            client_factory=client_factory,
            on_events=self.matcher.on_events,
        )
        self._ready = False

    @classmethod
    def open(cls, config_path: str | Path | None = None) -> PQWatch:
        return cls(load_config(config_path))

    def __enter__(self) -> PQWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.dispose()

    def ensure_ready(self) -> tuple[str | None, str | None]:
        """Migrate the database to head and bring watches/subscribers in line with the config.
        Every command calls this first, so an upgrade migrates the database by itself."""
        before, after = self.db.migrate()
        if not self._ready:
            with self.db.write() as session:
                for watch in sync.sync_config(session, self.config, self.now()):
                    assert watch.id is not None
                    self.matcher.match_history(session, watch.id, watch.query)
            self._ready = True
        return before, after

    def init(self) -> InitResult:
        before, after = self.ensure_ready()
        return InitResult(
            database=self.db.describe(),
            revision_before=before,
            revision_after=after,
            watches=len(self.config.watches),
            subscribers=len(self.config.subscribers),
        )

    def poll(self, since: date | None = None, until: date | None = None) -> list[RunSummary]:
        """Fetch what changed since the last successful poll (or in an explicit window)."""
        if until is not None and since is None:
            raise UsageError("--until needs --since")
        if since is not None and until is not None and until < since:
            raise UsageError(f"--until {until} is before --since {since}")
        self.ensure_ready()
        return self.ingest.poll(since, until)

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
        self.ensure_ready()
        return self.ingest.backfill(since, until, detail=detail, progress=progress)

    def today(self) -> date:
        return self.ingest.today()

    def search(self, query: str, *, limit: int = 20, sort: str = "relevance") -> SearchResult:
        self.ensure_ready()
        with self.db.read() as session:
            return engine.search(session.connection(), query, limit=limit, sort=sort)

    def show(self, ref: str) -> QuestionStory:
        self.ensure_ready()
        with self.db.read() as session:
            return engine.question_story(session.connection(), ref)

    def watches(self) -> list[WatchStats]:
        self.ensure_ready()
        with self.db.read() as session:
            return engine.watch_stats(session.connection(), self.today())

    def preview(self, query: str) -> Preview:
        self.ensure_ready()
        with self.db.read() as session:
            return engine.preview_watch(session.connection(), query, self.today())

    def send_digests(
        self,
        subscriber: str | None = None,
        *,
        dry_run: bool = False,
        out: Path | None = None,
        due_only: bool = False,
    ) -> DigestRun:
        """Render and send what each subscriber is owed, now (or only where a scheduled slot
        has passed, with due_only). Dry runs write files to `out` and record nothing."""
        self.ensure_ready()
        subs = self.outbox.subscribers(subscriber)
        if subscriber is not None and not subs:
            raise UsageError(f"no active subscriber {subscriber!r} in the config")
        if dry_run and out is None:
            out = self.config.email.outbox_dir / "dry-run"
        sched = self.config.schedule
        tz = ZoneInfo(sched.timezone)
        run = DigestRun()
        transport = make_transport(self.config.email, out)
        env = render.environment()
        try:
            for sub in subs:
                now = self.now()
                if due_only and not is_due(
                    self.outbox.last_sent(sub.id),
                    now,
                    sub.frequency,
                    sched.digest_weekday,
                    sched.digest_time,
                    tz,
                ):
                    continue
                outcome = self._send_one(sub, env, transport, tz, dry_run=dry_run)
                run.outcomes.append(outcome)
                if outcome.status == "pending":
                    run.error = f"{sub.email}: {outcome.detail}"
                    break  # the server is down: the rest would fail the same way
        finally:
            transport.close()
        return run

    def _send_one(
        self,
        sub: SubscriberRow,
        env: jinja2.Environment,
        transport: Transport,
        tz: ZoneInfo,
        *,
        dry_run: bool,
    ) -> DigestOutcome:
        od = self.outbox.open_digest(sub, dry_run=dry_run)
        if od is None:
            return DigestOutcome(sub.email, "nothing", 0, "nothing new")
        with self.db.read() as session:
            digest = compose(
                session.connection(),
                subscriber_id=sub.id,
                email=sub.email,
                name=sub.name,
                frequency=sub.frequency,
                delivery_ids=od.delivery_ids,
                period_start=od.period_start,
                period_end=od.period_end,
            )
        last_ok, failures = self.outbox.health(od.period_start)
        digest = replace(digest, last_poll_ok_at=last_ok, poll_failures=failures)
        email = self.config.email
        operator = email.operator or parseaddr(email.from_)[1]
        site = self.config.feeds.site_url
        token = self.outbox.token(sub.id)
        unsubscribe = f"{site}/unsubscribe/{token}" if site and token else None
        rendered = render.render(
            env,
            digest,
            tz=tz,
            subscribed_watches=self.outbox.subscription_names(sub.id),
            operator=operator,
            unsubscribe_url=unsubscribe,
        )
        message = render.build_message(
            rendered,
            sender=email.from_,
            to_name=sub.name,
            to_email=sub.email,
            message_id=od.message_id,
            operator=operator,
            unsubscribe_url=unsubscribe,
            when=od.period_end,
        )
        stamp = od.period_end.astimezone(tz).strftime("%Y%m%d-%H%M%S")
        name = f"{stamp}-{re.sub(r'[^A-Za-z0-9.@-]+', '_', sub.email)}-{od.id or 'dry-run'}"
        n = len(digest.items)
        try:
            reply = transport.send(message, name)
        except PermanentRefusal as exc:
            self.outbox.mark_failed(od, str(exc))
            return DigestOutcome(sub.email, "failed", n, str(exc))
        except TransientFailure as exc:
            self.outbox.note_attempt(od, str(exc))
            return DigestOutcome(sub.email, "pending", n, str(exc))
        if dry_run:
            return DigestOutcome(sub.email, "dry-run", n, reply)
        self.outbox.mark_sent(od, reply)
        return DigestOutcome(sub.email, "sent", n, reply)

    def run_once(self) -> CycleResult:
        """One full cycle: migrate, poll, match, digests due, feeds (the stages that exist)."""
        result = CycleResult()
        self.ensure_ready()
        result.stages.append("migrate")
        result.polls = self.ingest.poll()
        result.stages.append("poll")
        result.digests = self.send_digests(due_only=True)
        result.stages.append("digests")
        return result


@dataclass(frozen=True)
class DigestOutcome:
    email: str
    # sent | failed (refused for good) | pending (server unavailable) | nothing | dry-run
    status: str
    items: int
    detail: str


@dataclass
class DigestRun:
    outcomes: list[DigestOutcome] = field(default_factory=list)
    error: str | None = None


@dataclass
class CycleResult:
    stages: list[str] = field(default_factory=list)
    polls: list[RunSummary] = field(default_factory=list)
    digests: DigestRun = field(default_factory=DigestRun)

    @property
    def errors(self) -> list[str]:
        errors = [p.error for p in self.polls if p.error]
        if self.digests.error:
            errors.append(self.digests.error)
        return errors
