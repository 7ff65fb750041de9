"""A watch at a glance: what its matches add up to, as plain frozen types (the SQLite queries
that make them are in pqwatch.store.sqlite.watchstats; the charts in pqwatch.web.charts).

What is counted, and over which days:
- `recent` is the watch's newest matched events (a question tabled and then answered is two),
  newest first, whenever they happened.
- `months` is the period's months, oldest first, zeros included: each month counts the
  questions with a matched event that month (once each), and the tabled and answered events.
- `parties`, `members`, `departments` and `timeliness` count each question matched in the
  period once: a question is in the period when one of its matched events is.
- `totals` has the whole history and the period.
"Question" here is any item a watch matches: a written question, a statement or an FOI request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Generic, TypeVar

from pqwatch.types import item_label, official_url

T = TypeVar("T")

# How many of each a watch page shows.
RECENT = 20
TOP = 10
# Months in a watch page's period (the last 24, this month included).
PERIOD_MONTHS = 24

# How an answer's date compares with the date it was due: (label, lowest, highest days late).
LATENESS_BUCKETS: tuple[tuple[str, int | None, int | None], ...] = (
    ("Before the due date", None, -1),
    ("On the due date", 0, 0),
    ("1–7 days late", 1, 7),
    ("8–30 days late", 8, 30),
    ("More than 30 days late", 31, None),
)
ON_TIME_BUCKETS = 2  # the first two buckets are on time


@dataclass(frozen=True)
class RecentMatch:
    """One matched event with what a list of matches shows of its question."""

    question_id: int  # pqwatch's row id
    source_id: str  # the source's own id (`pqwatch show` takes it)
    uin: str | None  # the parliament's own reference
    parliament: str
    kind: str  # question | statement | foi
    house: str
    heading: str | None
    date_tabled: date
    asker: str | None
    asker_party: str | None
    department: str | None
    event_kind: str  # tabled | holding | answered | corrected | state
    event_date: date

    @property
    def label(self) -> str:
        """ "UK Parliament (Commons), written question" """
        return item_label(self.parliament, self.kind, self.house)

    @property
    def url(self) -> str | None:
        """The item's page on its parliament's own site, when one can be made."""
        return official_url(self.parliament, self.kind, self.date_tabled, self.uin, self.source_id)


@dataclass(frozen=True)
class MonthCount:
    month: date  # its first day
    questions: int  # distinct questions with a matched event this month
    tabled: int  # matched "tabled" events
    answered: int  # matched "answered" events

    @property
    def label(self) -> str:
        """ "May 2026" """
        return f"{self.month:%B %Y}"

    @property
    def short_label(self) -> str:
        """ "May 26", for a chart's axis"""
        return f"{self.month:%b %y}"


@dataclass(frozen=True)
class Count:
    """A name and how many questions it has (a party, a department, a lateness bucket)."""

    label: str
    count: int


@dataclass(frozen=True)
class MemberCount:
    member_id: int
    name: str | None  # None when the archive never saw the member's name
    party: str | None
    count: int

    @property
    def label(self) -> str:
        return self.name or f"Member {self.member_id} (name not known)"


@dataclass(frozen=True)
class Ranking(Generic[T]):
    """The top rows, and what the rest add up to (questions, and how many names)."""

    top: tuple[T, ...]
    others: int = 0  # questions counted under names outside the top
    other_names: int = 0
    unknown: int = 0  # questions with nobody (no asker, no department) to count them under


@dataclass(frozen=True)
class Timeliness:
    """How long answers took, for the period's answered questions (holding answers are not
    answers). Days late are counted only where the question had a due date."""

    answered: int
    with_due_date: int  # of those answered, how many had a date for answer
    on_time: int  # answered on or before the due date
    late: int
    median_days_to_answer: float | None  # tabled -> answered, every answered question
    median_days_late: float | None  # answered - due (negative: early), those with a due date
    buckets: tuple[Count, ...]  # LATENESS_BUCKETS, in order, zeros included
    waiting: int  # not answered yet (holding answers included)
    overdue: int  # of those waiting, how many are past their due date today

    @property
    def on_time_share(self) -> float | None:
        """On time as a share of the answers with a due date (None without any)."""
        return self.on_time / self.with_due_date if self.with_due_date else None


@dataclass(frozen=True)
class Totals:
    questions: int  # distinct questions ever matched
    events: int  # matched events, ever
    first_match: date | None  # the earliest matched event's date
    last_match: date | None
    period_questions: int  # distinct questions with a matched event in the period
    period_events: int


@dataclass(frozen=True)
class WatchOverview:
    name: str
    slug: str
    query: str
    since: date  # the period: the first day of its first month
    until: date  # ... to today
    totals: Totals
    recent: tuple[RecentMatch, ...]
    months: tuple[MonthCount, ...]
    parties: Ranking[Count]
    members: Ranking[MemberCount]
    departments: Ranking[Count]
    timeliness: Timeliness

    @property
    def atom_path(self) -> str:
        return f"/feeds/{self.slug}.atom"

    @property
    def rss_path(self) -> str:
        return f"/feeds/{self.slug}.rss"

    @property
    def feed_paths(self) -> dict[str, str]:
        return {"atom": self.atom_path, "rss": self.rss_path}
