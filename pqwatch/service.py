"""The PQWatch facade: the one object the CLI (and the scheduler) talks to.

It wires the stages together (sources -> store -> match -> notify/feeds) and owns the
database handle and the clock. Each public method does one user-level thing and returns a
plain result type that the caller formats; it never prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from pqwatch.config import Config, load_config
from pqwatch.errors import UsageError
from pqwatch.ingest import ClientFactory, Ingest, Progress, RunSummary, default_client
from pqwatch.search import engine
from pqwatch.search.engine import Preview, QuestionStory, SearchResult, WatchStats
from pqwatch.search.matching import Matcher
from pqwatch.store import sync
from pqwatch.store.archive import Archive
from pqwatch.store.db import Database
from pqwatch.store.models import utcnow


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

    def run_once(self) -> CycleResult:
        """One full cycle: migrate, poll, match, digests due, feeds (the stages that exist)."""
        result = CycleResult()
        self.ensure_ready()
        result.stages.append("migrate")
        result.polls = self.ingest.poll()
        result.stages.append("poll")
        return result


@dataclass
class CycleResult:
    stages: list[str] = field(default_factory=list)
    polls: list[RunSummary] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.polls)

    @property
    def errors(self) -> list[str]:
        return [p.error for p in self.polls if p.error]
