"""The ingest pipeline: source windows -> pages -> full text -> archive, with cursors.

    for each source:   window = (cursor - 1 day .. today)  or the explicit --since/--until
      for kind in tabled (reaching back revisit_tabled_days), answered, corrected:
        for page in source.iter_window(kind, window):       # HTTP, outside transactions
          changed = page - archive.unchanged_ids(page)       # a read
          full    = source.fetch_details(changed that may be cut)   # HTTP, concurrent
          archive.store_page(prepare(full))                   # one short write transaction,
                                                               # on a writer thread
      archive.finish_run(ok, move_cursor_to=window end)       # the cursor moves last

A failure anywhere in a window leaves the cursor where it was, so the next poll asks for the
same window again; pages already stored are simply found unchanged. This module decides the
order of things; it does not parse HTTP (sources) or write SQL (store).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from pqwatch import locks
from pqwatch.config import Config
from pqwatch.decide import PreparedAnswer, prepare_answer
from pqwatch.errors import SourceError
from pqwatch.sources.base import Source
from pqwatch.sources.uk_parliament import SOURCE, STATEMENTS_SOURCE, UKParliamentClient
from pqwatch.store.archive import Archive, EventHook, StoreCounts
from pqwatch.store.writer import BackgroundWriter
from pqwatch.types import QuestionData

WINDOW_KINDS = ("tabled", "answered", "corrected")
OVERLAP = timedelta(days=1)
BACKFILL_WINDOW_DAYS = 7
# Pages that may wait for the writer thread; when storing is the slower side they are stored
# together, up to this many in one transaction (about 3,000 items, some 30 MB). Larger
# transactions cost less per item (a commit, and a full-text segment to merge, each): 30
# pages stored 100,000 items about 15% faster than 10 (bench/ingest.py).
WRITER_DEPTH = 30
# Questions stored without their full text (a detail request failed) fetched again per poll:
# enough to catch up after a bad hour, few enough to stay polite.
REFETCH_PER_POLL = 20

ClientFactory = Callable[[Config], UKParliamentClient]
SourceFactory = Callable[[Config], list[Source]]


def default_client(config: Config) -> UKParliamentClient:
    return UKParliamentClient(config.sources.uk_parliament)


def default_sources(config: Config) -> list[Source]:
    """The enabled sources besides Westminster's windowed API, in the order they poll."""
    # Imported only when enabled: a poll of Westminster alone never loads them.
    chosen: list[Source] = []
    if config.sources.scottish_parliament.enabled:
        from pqwatch.sources import scottish_parliament

        chosen.append(
            scottish_parliament.ScottishParliamentSource(config.sources.scottish_parliament)
        )
    if config.sources.senedd.enabled:
        from pqwatch.sources import senedd

        chosen.append(senedd.SeneddSource(config.sources.senedd))
    if config.sources.ni_assembly.enabled:
        from pqwatch.sources import ni_assembly

        chosen.append(ni_assembly.NIAssemblySource(config.sources.ni_assembly))
    if config.sources.whatdotheyknow.enabled:
        from pqwatch.query import alaveteli_search
        from pqwatch.sources import whatdotheyknow

        wdtk = config.sources.whatdotheyknow
        # Each watch's words become a search feed too (when asked): the same topics, in FOI.
        extra = [alaveteli_search(w.query) for w in config.watches] if wdtk.watch_searches else []
        searches = list(dict.fromkeys([*wdtk.searches, *(s for s in extra if s)]))
        chosen.append(whatdotheyknow.WhatDoTheyKnowSource(wdtk, searches=searches))
    return chosen


@dataclass
class RunSummary:
    """What one source's poll (or one backfill) did, for the CLI to print."""

    source: str
    kind: str
    window_start: date
    window_end: date
    ok: bool = True
    error: str | None = None
    counts: StoreCounts = field(default_factory=StoreCounts)
    requests: int = 0
    bytes_received: int = 0
    seconds: float = 0.0
    windows_done: int = 0
    windows_skipped: int = 0
    # Malformed items left out, with the reason (the rest of the window is stored).
    skipped: list[str] = field(default_factory=list)
    # Items stored with something left out or still to fetch again, with the reason.
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "kind": self.kind,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "ok": self.ok,
            "error": self.error,
            **self.counts.as_dict(),
            "requests": self.requests,
            "seconds": round(self.seconds, 2),
            "skipped_items": self.skipped,
            "problems": self.problems,
        }


@dataclass(frozen=True)
class Progress:
    """Reported after every stored page (backfill draws its progress bar from this)."""

    window_index: int
    windows_total: int
    window_start: date
    items_done: int
    items_in_window: int


class Ingest:
    def __init__(
        self,
        config: Config,
        archive: Archive,
        *,
        now: Callable[[], datetime],
        client_factory: ClientFactory = default_client,
        source_factory: SourceFactory = default_sources,
        on_events: EventHook | None = None,
    ) -> None:
        self.config = config
        self.archive = archive
        self.now = now
        self.client_factory = client_factory
        self.source_factory = source_factory
        self.on_events = on_events

    def today(self) -> date:
        return self.config.schedule.today(self.now())

    def poll(self, since: date | None = None, until: date | None = None) -> list[RunSummary]:
        with locks.polling(self.archive.db, self.archive.close_abandoned_runs):
            return self._poll(since, until)

    def _poll(self, since: date | None, until: date | None) -> list[RunSummary]:
        """Every enabled source, each on its own: one that fails (or crashes) is recorded as
        failed and the others still poll. A crash is raised once all have had their turn."""
        summaries: list[RunSummary] = []
        crash: Exception | None = None
        uk = self.config.sources.uk_parliament
        if uk.enabled:
            try:
                summaries.append(self._poll_westminster(since, until))
            except Exception as exc:  # recorded as a failed run already
                crash = exc
        if uk.enabled and uk.statements:
            try:
                summaries.append(self._poll_westminster(since, until, statements=True))
            except Exception as exc:
                crash = crash or exc
        for source in self.source_factory(self.config):
            try:
                summaries.append(self._run_source(source, since))
            except Exception as exc:
                crash = crash or exc
        if crash is not None:
            raise crash
        return summaries

    def _poll_westminster(
        self, since: date | None, until: date | None, *, statements: bool = False
    ) -> RunSummary:
        """Questions (tabled, answered, corrected windows) or written statements (made)."""
        source = STATEMENTS_SOURCE if statements else SOURCE
        today = self.today()
        end = until or today
        if since is None:
            cursor = self.archive.cursor(source)
            lookback = self.config.sources.uk_parliament.initial_lookback_days
            start = cursor - OVERLAP if cursor else today - timedelta(days=lookback)
        else:
            start = since
        start = min(start, end)
        if statements:
            return self._run_window(source, "poll", start, end, [("made", start, end)],
                                    historical=False)  # fmt: skip
        queries = [(kind, start, end) for kind in WINDOW_KINDS]
        if since is None:
            revisit = self.config.sources.uk_parliament.revisit_tabled_days
            queries[0] = ("tabled", min(start, end - timedelta(days=revisit)), end)
        return self._run_window(SOURCE, "poll", start, end, queries, historical=False)

    def _run_source(self, source: Source, since: date | None) -> RunSummary:
        """One poll of a source on the seam (pqwatch.sources.base): its batches are stored as
        they come; its state and cursor move only when all of them were."""
        today = self.today()
        summary = RunSummary(source.name, "poll", since or today, today)
        run_id = self.archive.start_run(source.name, "poll", since or today, today)
        t0 = time.monotonic()
        state = self.archive.source_state(source.name)
        crash: Exception | None = None
        try:
            for batch in source.poll(state, self.archive, self.now(), since=since):
                page = self._prepare_items(batch.items)
                summary.counts.add(self._store_batch(page, today=today, historical=False))
                summary.skipped.extend(batch.skipped)
                summary.problems.extend(batch.problems)
                state = batch.state
        except SourceError as exc:
            summary.ok = False
            summary.error = f"{source.name}: {exc}"
        except Exception as exc:  # a bug: a failed run (it alerts), then raised
            summary.ok, crash = False, exc
            summary.error = f"{source.name}: internal error: {type(exc).__name__}: {exc}"
        finally:
            summary.requests = source.requests_made
            summary.bytes_received = source.bytes_received
            source.close()
        summary.seconds = time.monotonic() - t0
        self.archive.finish_run(
            run_id,
            source=source.name,
            ok=summary.ok,
            counts=summary.counts.as_dict(),
            requests=summary.requests,
            seconds=summary.seconds,
            error=summary.error,
            move_cursor_to=today if summary.ok else None,
            state=state if summary.ok else None,
        )
        if crash is not None:
            raise crash
        return summary

    def backfill(
        self,
        since: date,
        until: date | None = None,
        *,
        detail: bool = True,
        progress: Callable[[Progress], None] | None = None,
    ) -> RunSummary:
        """Load history by tabling date in weekly windows. Restartable: windows stored by an
        earlier run are skipped. Its events are historical: searchable, never mailed."""
        end = until or self.today()
        windows = list(_windows(since, end, BACKFILL_WINDOW_DAYS))
        done = self.archive.done_windows(SOURCE, "backfill")
        total = RunSummary(SOURCE, "backfill", since, end)
        t0 = time.monotonic()
        with locks.polling(self.archive.db, self.archive.close_abandoned_runs):
            self._backfill_windows(total, windows, done, detail, progress)
        total.seconds = time.monotonic() - t0
        return total

    def _backfill_windows(
        self,
        total: RunSummary,
        windows: list[tuple[date, date]],
        done: set[tuple[date, date]],
        detail: bool,
        progress: Callable[[Progress], None] | None,
    ) -> None:
        for index, (w_start, w_end) in enumerate(windows):
            if (w_start, w_end) in done:
                total.windows_skipped += 1
                continue
            summary = self._run_window(
                SOURCE,
                "backfill",
                w_start,
                w_end,
                [("tabled", w_start, w_end)],
                historical=True,
                detail=detail,
                progress=(index, len(windows), progress),
            )
            total.counts.add(summary.counts)
            total.requests += summary.requests
            total.bytes_received += summary.bytes_received
            if not summary.ok:
                total.ok, total.error = False, summary.error
                break
            total.windows_done += 1

    def _run_window(
        self,
        source: str,
        kind: str,
        start: date,
        end: date,
        queries: list[tuple[str, date, date]],
        *,
        historical: bool,
        detail: bool = True,
        progress: tuple[int, int, Callable[[Progress], None] | None] | None = None,
    ) -> RunSummary:
        summary = RunSummary(source, kind, start, end)
        # An explicit window that leaves a gap after the cursor must not move it past the gap.
        cursor = self.archive.cursor(source)
        joins_cursor = cursor is None or start <= cursor + timedelta(days=1)
        run_id = self.archive.start_run(source, kind, start, end)
        t0 = time.monotonic()
        today = self.today()
        client = self.client_factory(self.config)
        store = functools.partial(self._store_batch, today=today, historical=historical)
        crash: Exception | None = None
        try:
            # Pages are stored on a writer thread while the next one is fetched and prepared.
            writer = PreparedPage.writer(store, summary.counts.add)
            with writer:
                for window_kind, q_start, q_end in queries:
                    for page in client.iter_window(window_kind, q_start, q_end):
                        prepared = self._prepare_page(client, page.items, detail)
                        writer.submit(prepared)
                        summary.skipped.extend(page.skipped)
                        summary.problems.extend(prepared.problems)
                        if progress is not None:
                            idx, n, report = progress
                            if report is not None:
                                report(
                                    Progress(idx, n, start, page.seen_so_far, page.total_results)
                                )
                    # The next kind's pages are checked against what this kind stored.
                    writer.drain()
                if kind == "poll" and source == SOURCE:
                    refetched = self._refetch(client, source)
                    writer.submit(refetched)
                    summary.problems.extend(refetched.problems)
        except SourceError as exc:
            summary.ok = False
            summary.error = f"{source}: window {start}..{end}: {exc}"
        except Exception as exc:
            # A bug: recorded as a failed run (it counts towards the operator's alert), then
            # raised, so the command still says "internal error".
            summary.ok, crash = False, exc
            summary.error = (
                f"{source}: window {start}..{end}: internal error: {type(exc).__name__}: {exc}"
            )
        finally:
            summary.requests = client.requests_made
            summary.bytes_received = client.bytes_received
            client.close()
        summary.seconds = time.monotonic() - t0
        self.archive.finish_run(
            run_id,
            source=source,
            ok=summary.ok,
            counts=summary.counts.as_dict(),
            requests=summary.requests,
            seconds=summary.seconds,
            error=summary.error,
            move_cursor_to=end if summary.ok and kind == "poll" and joins_cursor else None,
            # A backfill says nothing of whether polling works (status, alerts, digests).
            health=kind == "poll",
        )
        if crash is not None:
            raise crash
        return summary

    def _prepare_page(
        self, client: UKParliamentClient, items: tuple[QuestionData, ...], detail: bool
    ) -> PreparedPage:
        """Drop what is stored unchanged, fetch full text where needed, clean the answers."""
        unchanged = self.archive.unchanged_ids(items)
        todo = [i for i in items if i.source_id not in unchanged]
        if detail:
            need = [i for i in todo if i.needs_detail]
            full = {i.source_id: i for i in client.fetch_details(need)}
            todo = [full.get(i.source_id, i) for i in todo]
        problems = tuple(p for i in todo for p in i.problems)
        return PreparedPage(len(items), [(i, prepare_answer(i)) for i in todo], problems)

    def _prepare_items(self, items: tuple[QuestionData, ...]) -> PreparedPage:
        """A source's records that changed since stored, their answers made safe."""
        unchanged = self.archive.unchanged_ids(items)
        todo = [i for i in items if i.source_id not in unchanged]
        problems = tuple(p for i in todo for p in i.problems)
        return PreparedPage(len(items), [(i, prepare_answer(i)) for i in todo], problems)

    def _refetch(self, client: UKParliamentClient, source: str) -> PreparedPage:
        """Questions stored without their full text (a failed detail request), fetched again
        by id: a listing may never show them again. Still missing: tried again later."""
        wanted = self.archive.pending_details(source, REFETCH_PER_POLL)
        try:
            fetched = client.fetch_questions(wanted)
        except SourceError as exc:
            # The windows are stored: this waits for the next poll, and fails nothing now.
            return PreparedPage(0, [], (f"fetching incomplete questions again: {exc}",))
        whole = [q for q in fetched if isinstance(q, QuestionData) and not q.needs_detail]
        done = {q.source_id for q in whole}
        self.archive.detail_still_missing(source, [sid for sid, _ in wanted if sid not in done])
        problems = tuple(q for q in fetched if isinstance(q, str))
        return PreparedPage(0, [(i, prepare_answer(i)) for i in whole], problems)

    def _store_batch(self, page: PreparedPage, *, today: date, historical: bool) -> StoreCounts:
        counts = self.archive.store_page(
            page.batch, today=today, historical=historical, on_events=self.on_events
        )
        counts.items_seen = page.items_seen
        return counts


@dataclass(frozen=True)
class PreparedPage:
    items_seen: int
    batch: list[tuple[QuestionData, PreparedAnswer | None]]
    problems: tuple[str, ...] = ()

    @staticmethod
    def merge(pages: list[PreparedPage]) -> PreparedPage:
        return PreparedPage(
            sum(p.items_seen for p in pages),
            [pair for p in pages for pair in p.batch],
            tuple(x for p in pages for x in p.problems),
        )

    @staticmethod
    def writer(
        store: Callable[[PreparedPage], StoreCounts], on_stored: Callable[[StoreCounts], None]
    ) -> BackgroundWriter[PreparedPage, StoreCounts]:
        """The writer thread that poll and backfill store their pages on."""
        return BackgroundWriter(
            store,
            on_stored,
            depth=WRITER_DEPTH,
            merge=PreparedPage.merge,
        )


def _windows(start: date, end: date, days: int) -> Iterator[tuple[date, date]]:
    cur = start
    while cur <= end:
        w_end = min(cur + timedelta(days=days - 1), end)
        yield cur, w_end
        cur = w_end + timedelta(days=1)
