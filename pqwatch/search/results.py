"""What searching the archive gives: plain, frozen result types, the same whichever database
holds the archive (the SQLite queries that make them are in pqwatch.store.sqlite.search)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import IO, Any

from pqwatch.types import PARLIAMENTS, AttachmentData, official_url

MARK_START, MARK_END = "\x02", "\x03"  # highlight markers, rendered per output format


def plain_marks(text: str, start: str = "**", end: str = "**") -> str:
    return text.replace(MARK_START, start).replace(MARK_END, end)


def marked_terms(*texts: str | None) -> tuple[str, ...]:
    """The distinct words that FTS highlighted, in order of appearance."""
    seen: dict[str, None] = {}
    for text in texts:
        for m in re.finditer(f"{MARK_START}(.*?){MARK_END}", text or "", re.S):
            seen.setdefault(" ".join(m.group(1).lower().split()), None)
    return tuple(seen)


@dataclass(frozen=True)
class SearchHit:
    id: int
    source_id: str
    uin: str | None
    house: str
    date_tabled: date
    date_answered: date | None
    heading: str | None
    asking_member: str | None
    asking_party: str | None
    asking_constituency: str | None
    answering_member: str | None
    answering_body: str | None
    status: str
    question_text: str
    answer_text: str | None
    snippet: str
    matched_terms: tuple[str, ...]
    date_for_answer: date | None = None
    parliament: str = "westminster"
    kind: str = "question"

    @property
    def url(self) -> str | None:
        return official_url(self.parliament, self.kind, self.date_tabled, self.uin, self.source_id)

    @property
    def place(self) -> str:
        """Where it was asked or made, briefly: "Commons", "Scottish Parliament", "Lords
        statement"."""
        if self.kind == "foi":
            return "FOI"
        where = (
            self.house
            if self.parliament == "westminster"
            else PARLIAMENTS.get(self.parliament, self.parliament)
        )
        return where + (" statement" if self.kind == "statement" else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": int(self.source_id) if self.source_id.isdigit() else self.source_id,
            "parliament": self.parliament,
            "kind": self.kind,
            "uin": self.uin,
            "house": self.house,
            "date_tabled": self.date_tabled.isoformat(),
            "date_answered": self.date_answered.isoformat() if self.date_answered else None,
            "heading": self.heading,
            "asking_member": self.asking_member,
            "asking_party": self.asking_party,
            "asking_constituency": self.asking_constituency,
            "date_for_answer": self.date_for_answer.isoformat() if self.date_for_answer else None,
            "answering_member": self.answering_member,
            "answering_body": self.answering_body,
            "status": self.status,
            "question_text": self.question_text,
            "answer_text": self.answer_text,
            "snippet": plain_marks(self.snippet),
            "url": self.url,
            "matched_terms": list(self.matched_terms),
        }


@dataclass(frozen=True)
class SearchResult:
    query: str
    total: int
    sort: str
    hits: tuple[SearchHit, ...]
    # Why the order is not the one asked for (shown after the count); None when it is.
    note: str | None = None
    total_is_exact: bool = True

    def summary(self) -> str:
        """ "2,707 matches; showing 20 newest first (no words to rank by)" """
        shown = len(self.hits)
        order = "by relevance" if self.sort == "relevance" else "newest first"
        count = self.total - (not self.total_is_exact)
        text = ("" if self.total_is_exact else "more than ") + f"{count:,} match"
        text += "es" if count != 1 or not self.total_is_exact else ""
        if shown:
            text += f"; showing {shown} {order}"
        return text + (f" ({self.note})" if self.note else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "total": self.total - (not self.total_is_exact),
            "total_is_exact": self.total_is_exact,
            "sort": self.sort,
            "note": self.note,
            "hits": [h.as_dict() for h in self.hits],
        }


@dataclass(frozen=True)
class AnswerVersion:
    version: int
    kind: str
    date_answered: date | None
    date_corrected: date | None
    answering_member: str | None
    correcting_member: str | None
    html: str
    text: str
    is_full_text: bool


@dataclass(frozen=True)
class QuestionEvent:
    kind: str
    date: date
    detail: dict[str, Any]


@dataclass(frozen=True)
class GroupedQuestion:
    uin: str
    date_tabled: date
    id: str | None
    asking_member: str | None
    heading: str | None


@dataclass(frozen=True)
class MatchedWatch:
    """An operator's watch that matched one of an item's events (its page: /watches/<slug>)."""

    name: str
    slug: str


@dataclass(frozen=True)
class QuestionStory:
    hit: SearchHit
    date_for_answer: date | None
    is_named_day: bool
    asking_party: str | None
    asking_constituency: str | None
    answers: tuple[AnswerVersion, ...]
    events: tuple[QuestionEvent, ...]
    grouped: tuple[GroupedQuestion, ...]
    others_with_uin: tuple[tuple[str, date], ...] = field(default_factory=tuple)
    attachments: tuple[AttachmentData, ...] = ()
    # When the API says a holding answer was given (its text may predate the archive).
    date_holding_answer: date | None = None
    # Source-specific facts (an FOI request's law, url_names and event history).
    details: dict[str, Any] = field(default_factory=dict)
    # The operator's active watches (config.toml) that matched any of its events, by name;
    # personal watches made on the web are their owners' and never shown.
    matched_watches: tuple[MatchedWatch, ...] = ()

    @property
    def holding_not_archived(self) -> bool:
        """A holding answer was given, but the archive never saw its text."""
        return self.date_holding_answer is not None and not any(
            a.kind == "holding" for a in self.answers
        )

    def as_dict(self) -> dict[str, Any]:
        out = self.hit.as_dict()
        out.pop("snippet")
        out.pop("matched_terms")
        out.update(
            date_for_answer=self.date_for_answer.isoformat() if self.date_for_answer else None,
            is_named_day=self.is_named_day,
            date_holding_answer=(
                self.date_holding_answer.isoformat() if self.date_holding_answer else None
            ),
            asking_party=self.asking_party,
            asking_constituency=self.asking_constituency,
            **({"details": self.details} if self.details else {}),
            answers=[
                {
                    "version": a.version,
                    "kind": a.kind,
                    "date_answered": a.date_answered.isoformat() if a.date_answered else None,
                    "date_corrected": a.date_corrected.isoformat() if a.date_corrected else None,
                    "answering_member": a.answering_member,
                    "correcting_member": a.correcting_member,
                    "answer_html": a.html,
                    "answer_text": a.text,
                    "is_full_text": a.is_full_text,
                }
                for a in self.answers
            ],
            events=[
                {
                    "kind": e.kind,
                    "date": e.date.isoformat(),
                    **({"detail": e.detail} if e.detail else {}),
                }
                for e in self.events
            ],
            grouped_questions=[
                {
                    "uin": g.uin,
                    "date_tabled": g.date_tabled.isoformat(),
                    "id": int(g.id) if g.id and g.id.isdigit() else g.id,
                    "asking_member": g.asking_member,
                    "url": official_url(
                        self.hit.parliament, "question", g.date_tabled, g.uin, g.id
                    ),
                }
                for g in self.grouped
            ],
            attachments=[
                {
                    "url": a.url,
                    "title": a.title,
                    "file_type": a.file_type,
                    "file_size_bytes": a.file_size_bytes,
                }
                for a in self.attachments
            ],
            matched_watches=[{"name": w.name, "slug": w.slug} for w in self.matched_watches],
        )
        return out


@dataclass(frozen=True)
class FacetValue:
    """One value of a facet: how many of a search's matches have it, and the filter of the
    query language that narrows the search to them (`house:lords`, `dept:"..."`)."""

    label: str
    count: int
    filter: str


@dataclass(frozen=True)
class Facet:
    name: str  # the field: parliament, house, type, dept, tabled or status
    label: str  # as shown: "Department", "Year tabled"
    values: tuple[FacetValue, ...]
    more: int = 0  # values left out past the limit (departments)


@dataclass(frozen=True)
class SearchFacets:
    """A search's matches counted by parliament, House, type, department, year and status.

    With `sample_rate` 1 every count is exact, and following a value's filter finds exactly
    that many. Past a number of matches they are counted on a fixed sample of 1 in
    `sample_rate` (by id) and scaled up: estimates, which must be shown as such."""

    query: str
    total: int  # the matches counted (an estimate when sampled)
    facets: tuple[Facet, ...]
    sample_rate: int = 1

    @property
    def exact(self) -> bool:
        return self.sample_rate == 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "total": self.total,
            "exact": self.exact,
            "sample_rate": self.sample_rate,
            "facets": [
                {
                    "name": f.name,
                    "label": f.label,
                    "values": [
                        {"label": v.label, "count": v.count, "filter": v.filter} for v in f.values
                    ],
                    "more": f.more,
                }
                for f in self.facets
            ],
        }


@dataclass(frozen=True)
class WatchStats:
    name: str
    slug: str
    query: str
    matches: int
    matches_last_7_days: int
    last_match_date: date | None
    last_match_heading: str | None
    last_match_uin: str | None


@dataclass(frozen=True)
class Preview:
    query: str
    since: date
    until: date
    answered: int
    tabled: int
    examples: tuple[SearchHit, ...]
    # The days the archive covers (first tabled, last tabled or answered); None when empty.
    archive_first: date | None = None
    archive_last: date | None = None

    @property
    def archive_covers_period(self) -> bool:
        return (
            self.archive_first is not None
            and self.archive_last is not None
            and self.archive_first <= self.until
            and self.archive_last >= self.since
        )


# The columns of `pqwatch search --format csv` and of /search.csv: SearchHit.as_dict's keys.
CSV_FIELDS = (
    "id", "parliament", "kind", "uin", "house", "date_tabled", "date_answered", "heading",
    "asking_member", "asking_party", "asking_constituency", "date_for_answer",
    "answering_member", "answering_body", "status", "question_text", "answer_text", "snippet",
    "url", "matched_terms",
)  # fmt: skip
# A cell a spreadsheet would run as a formula (OWASP's CSV injection list).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """An archived value as a CSV cell: no control characters, and text a spreadsheet would
    take for a formula (an answer starting "=HYPERLINK(...)") kept as text with a quote."""
    if not isinstance(value, str):
        return value
    from pqwatch.text import strip_controls

    if value.startswith(_FORMULA_START):
        value = "'" + value
    return strip_controls(value)


def write_hits_csv(hits: Sequence[SearchHit], out: IO[str]) -> None:
    """Search hits as CSV: the one writer behind the CLI's --format csv and the web's
    /search.csv."""
    import csv

    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for h in hits:
        row = h.as_dict()
        row["matched_terms"] = "; ".join(row["matched_terms"])
        writer.writerow({k: csv_cell(v) for k, v in row.items()})
