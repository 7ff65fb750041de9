"""Compose a digest: read what is owed to a subscriber and shape it into plain view types.

One question appears once per digest, in the section of its most advanced event (corrected >
answered > holding > tabled), labelled with every watch that matched it and the words that
matched. Grouped questions answered together become one item listing every UIN and asker.
Nothing here renders or sends; templates get these frozen types, never ORM rows.
"""

from __future__ import annotations

import difflib
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from bs4 import BeautifulSoup
from bs4.element import NavigableString

from pqwatch.store import reads
from pqwatch.text import MAIL_TEXT_LIMIT, cut_html, cut_text
from pqwatch.types import (
    AttachmentData,
    SourcePolls,
    attachments_from_json,
    foi_state_label,
    item_label,
    official_url,
)

SECTIONS = ("answered", "corrected", "holding", "statement", "foi", "tabled")
SECTION_TITLES = {
    "answered": "New answers",
    "corrected": "Corrected answers",
    "holding": "Holding answers",
    # A written statement's one event is its "tabled" (made) event.
    "statement": "Written statements",
    # An FOI request's events: sent, each response, each change of state.
    "foi": "FOI responses and state changes",
    "tabled": "Newly tabled questions (awaiting answer)",
}
_PRECEDENCE = {"corrected": 4, "answered": 3, "state": 3, "holding": 2, "tabled": 1}


@dataclass(frozen=True)
class QuestionView:
    id: int
    source_id: str
    uin: str | None
    house: str
    date_tabled: date
    date_for_answer: date | None
    asker: str | None
    asker_party: str | None
    asker_constituency: str | None
    question_text: str
    url: str | None
    parliament: str = "westminster"
    kind: str = "question"
    # Who answers (for a statement: the minister who made it).
    answerer: str | None = None

    @property
    def where(self) -> str:
        """ "Scottish Parliament, written question" """
        return item_label(self.parliament, self.kind, self.house)

    @property
    def asker_line(self) -> str:
        extra = ", ".join(x for x in (self.asker_party, self.asker_constituency) if x)
        return f"{self.asker or 'Unknown member'}{f' ({extra})' if extra else ''}"


@dataclass(frozen=True)
class DiffPart:
    op: str  # equal | delete | insert
    text: str


@dataclass(frozen=True)
class DigestItem:
    section: str
    heading: str
    department: str | None
    questions: tuple[QuestionView, ...]
    watches: tuple[str, ...]
    terms: tuple[str, ...]
    answered_by: str | None = None
    date_answered: date | None = None
    date_corrected: date | None = None
    corrected_by: str | None = None
    # Sanitised HTML with matched terms wrapped in <mark>; the only markup marked safe.
    answer_html: str | None = None
    answer_text: str | None = None
    # Only the list endpoint's cut text was available for this answer.
    answer_partial: bool = False
    # Too long for mail: cut at a paragraph, the rest on the official page.
    answer_cut: bool = False
    diff: tuple[DiffPart, ...] = ()
    # FOI: the request's state in words, and what is new (response | state | sent).
    state: str | None = None
    foi_news: str | None = None
    attachments: tuple[AttachmentData, ...] = ()

    @property
    def uins(self) -> str:
        return ", ".join(q.uin or "?" for q in self.questions)


@dataclass(frozen=True)
class Digest:
    subscriber_email: str
    subscriber_name: str
    frequency: str
    period_start: datetime
    period_end: datetime
    items: tuple[DigestItem, ...]
    delivery_ids: tuple[int, ...]
    watches: tuple[str, ...]
    # Each source's polling over the period, for the footer (filled in by the pipeline).
    polls: tuple[SourcePolls, ...]
    sections: dict[str, tuple[DigestItem, ...]] = field(default_factory=dict)

    def count(self, section: str) -> int:
        return len(self.sections.get(section, ()))


def _d(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _ts(value: Any) -> datetime | None:
    from datetime import UTC

    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def highlight_html(html: str, terms: Sequence[str]) -> str:
    """Wrap whole-word occurrences of the matched terms in <mark>, in text nodes only."""
    words = sorted({t for t in terms if t.strip()}, key=len, reverse=True)
    if not words or not html:
        return html
    return _highlight(html, tuple(words))


# Subscribers of the same watch get the same answers marked with the same words: parse once.
@lru_cache(maxsize=4096)
def _highlight(html: str, words: tuple[str, ...]) -> str:
    pattern = re.compile(
        r"(?<!\w)(" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.IGNORECASE
    )
    soup = BeautifulSoup(html, "html.parser")
    for node in list(soup.find_all(string=pattern)):
        if not isinstance(node, NavigableString) or node.parent is None:
            continue
        parts = pattern.split(str(node))
        new_nodes: list[Any] = []
        for i, part in enumerate(parts):
            if not part:
                continue
            if i % 2:
                mark = soup.new_tag("mark")
                mark.string = part
                new_nodes.append(mark)
            else:
                new_nodes.append(NavigableString(part))
        node.replace_with(*new_nodes)
    return str(soup)


@lru_cache(maxsize=1024)  # the same correction goes to every subscriber of a watch
def word_diff(before: str, after: str) -> tuple[DiffPart, ...]:
    a, b = before.split(), after.split()
    out: list[DiffPart] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(DiffPart("equal", " ".join(a[i1:i2])))
        if op in {"delete", "replace"}:
            out.append(DiffPart("delete", " ".join(a[i1:i2])))
        if op in {"insert", "replace"}:
            out.append(DiffPart("insert", " ".join(b[j1:j2])))
    return tuple(out)


class ArchiveCache:
    """Questions, their groups and their answers as read for digests, kept for one run.

    Many subscribers are owed the same questions (every subscriber of a watch is); a run
    reads each question once, however many digests show it. Keep one cache for one run only:
    it shows the archive as it was when a question was first read."""

    def __init__(self) -> None:
        self._questions: dict[int, Any] = {}
        self._groups: dict[int, list[int]] = {}
        self._answers: dict[int, list[dict[str, Any]]] = {}
        self._views: dict[int, QuestionView] = {}
        self._words: dict[tuple[str, int], tuple[str, ...]] = {}

    def questions(self, conn: sa.Connection, ids: Sequence[int]) -> dict[int, Any]:
        """Question rows by id, with the ids of the questions each one is grouped with."""
        missing = sorted({q for q in ids if q not in self._questions})
        if missing:
            for row in reads.digest_questions(conn, missing):
                self._questions[row["id"]] = row
                self._groups[row["id"]] = []
            for qid, other in reads.digest_groups(conn, missing):
                self._groups[qid].append(other)
        # Like a lookup by primary key: a question that is not there is an error.
        return {q: self._questions[q] for q in ids}

    def group(self, qid: int) -> list[int]:
        return self._groups[qid]

    def view(self, conn: sa.Connection, qid: int) -> QuestionView:
        found = self._views.get(qid)
        if found is None:
            row = self.questions(conn, [qid])[qid]
            found = self._views[qid] = _question_view(row)
        return found

    def matched_words(
        self, conn: sa.Connection | sqlite3.Connection, query: str, qid: int
    ) -> tuple[str, ...]:
        """The words of a watch's query that FTS5 marks in this question, as highlight() marks
        them; every subscriber of the watch is shown the same, worked out once a run."""
        key = (query, qid)
        found = self._words.get(key)
        if found is None:
            found = self._words[key] = reads.matched_words(conn, query, qid)
        return found

    def answers(self, conn: sa.Connection, ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        """Every answer version of each question, oldest first."""
        missing = sorted({q for q in ids if q not in self._answers})
        for q in missing:
            self._answers[q] = []
        if missing:
            for row in reads.digest_answers(conn, missing):
                self._answers[row["question_id"]].append(row)
        return {q: self._answers[q] for q in ids}


def _question_view(row: Any) -> QuestionView:
    return QuestionView(
        id=row["id"],
        source_id=row["source_id"],
        uin=row["uin"],
        house=row["house"],
        date_tabled=_d(row["date_tabled"]) or date.min,
        date_for_answer=_d(row["date_for_answer"]),
        asker=row["asker"],
        asker_party=row["asker_party"],
        asker_constituency=row["asker_from"],
        question_text=cut_text(row["question_text"])[0],
        url=official_url(
            row["parliament"], row["kind"], row["date_tabled"], row["uin"], row["source_id"]
        ),
        parliament=row["parliament"],
        kind=row["kind"],
        answerer=row["answerer"],
    )


def compose(
    conn: sa.Connection,
    *,
    subscriber_id: int,
    email: str,
    name: str,
    frequency: str,
    delivery_ids: Sequence[int],
    period_start: datetime,
    period_end: datetime,
    cache: ArchiveCache | None = None,
) -> Digest:
    """Build the digest of the given outbox rows, from the database as it is now (or as the
    run's cache first read it)."""
    archive = cache if cache is not None else ArchiveCache()
    by_question: dict[int, list[tuple[int, str]]] = {}
    pending = reads.pending_events(conn, delivery_ids)
    pending.sort(key=lambda r: r[1])  # by event
    for _, event_id, kind, question_id in pending:
        by_question.setdefault(question_id, []).append((event_id, kind))

    # Grouped questions answered together are one item: union questions linked by groups.
    parent: dict[int, int] = {q: q for q in by_question}

    def find(q: int) -> int:
        while parent[q] != q:
            parent[q] = parent[parent[q]]
            q = parent[q]
        return q

    rows = archive.questions(conn, list(by_question))
    for q in by_question:
        for other in archive.group(q):
            if other in parent:
                parent[find(other)] = find(q)

    clusters: dict[int, list[int]] = {}
    for q in by_question:
        clusters.setdefault(find(q), []).append(q)

    # Which of the subscriber's watches matched each event (and so on which words).
    matched: dict[int, list[tuple[str, int, str]]] = {}
    events = sorted({e for evs in by_question.values() for e, _ in evs})
    for match_id, event_id, wname, wquery in reads.subscriber_matches(conn, subscriber_id, events):
        matched.setdefault(event_id, []).append((wname, match_id, wquery))
    leads = [min(members) for members in clusters.values()]
    answers = archive.answers(conn, leads)

    items: list[DigestItem] = []
    all_watches: set[str] = set()
    for members in clusters.values():
        members.sort()
        lead = members[0]
        cluster_events = [ev for q in members for ev in by_question[q]]
        question_of = {e: q for q in members for e, _ in by_question[q]}
        section = max((k for _, k in cluster_events), key=lambda k: _PRECEDENCE[k])
        if rows[lead]["kind"] in ("statement", "foi"):
            section = rows[lead]["kind"]
        watch_terms: dict[str, None] = {}
        terms: dict[str, None] = {}
        # In watch-name order, as the template lists them.
        hits = sorted(
            (*hit, question_of[e])
            for e in {e for e, _ in cluster_events}
            for hit in matched.get(e, ())
        )
        for wname, _, wquery, qid in hits:
            watch_terms.setdefault(wname, None)
            for t in archive.matched_words(conn, wquery, qid):
                terms.setdefault(t, None)
        all_watches.update(watch_terms)
        # Every question of the group, matched or not, with its asker.
        ids = sorted(set(members) | {o for q in members for o in archive.group(q)})
        views = tuple(archive.view(conn, q) for q in ids)
        item = _item(section, rows[lead], views, tuple(watch_terms), tuple(terms), answers[lead])
        if section == "foi":
            item = _foi(item, rows[lead], {k for _, k in cluster_events}, period_end.date())
        items.append(item)

    items.sort(key=lambda i: (SECTIONS.index(i.section), i.heading.lower()))
    sections = {s: tuple(i for i in items if i.section == s) for s in SECTIONS}
    return Digest(
        subscriber_email=email,
        subscriber_name=name,
        frequency=frequency,
        period_start=period_start,
        period_end=period_end,
        items=tuple(items),
        delivery_ids=tuple(delivery_ids),
        watches=tuple(sorted(all_watches)),
        polls=(),
        sections=sections,
    )


def _foi(item: DigestItem, q: Any, happened: set[str], today: date) -> DigestItem:
    """An FOI request's item: its state in words, what happened (a response, a change of
    state, or newly sent), and its latest response only when a response is the news."""
    news = "response" if "answered" in happened else "state" if "state" in happened else "sent"
    state = foi_state_label(q["status"], _d(q["date_for_answer"]), today)
    if news != "response":
        item = replace(item, answer_html=None, answer_text=None, answer_cut=False)
    return replace(item, state=state, foi_news=news)


def _item(
    section: str,
    q: Any,
    views: tuple[QuestionView, ...],
    watches: tuple[str, ...],
    terms: tuple[str, ...],
    answers: list[dict[str, Any]],
) -> DigestItem:
    base: dict[str, Any] = {
        "section": section,
        "heading": q["heading"] or "(heading not yet assigned)",
        "department": q["department"],
        "questions": views,
        "watches": watches,
        "terms": terms,
        "attachments": attachments_from_json(q["attachments_json"]),
    }
    if section == "tabled" or not answers:
        return DigestItem(**base)
    latest = answers[-1]
    # A very long answer is cut at a paragraph; the rest is on the official page.
    text, text_cut = cut_text(latest["answer_text"])
    html, html_cut = cut_html(latest["answer_html"])
    base.update(
        answered_by=latest["answerer"],
        date_answered=_d(latest["date_answered"]),
        answer_html=highlight_html(html, terms),
        answer_text=text,
        answer_partial=not latest["is_full_text"],
        answer_cut=text_cut or html_cut,
    )
    if section == "corrected":
        previous = next((a for a in reversed(answers[:-1]) if a["kind"] != "holding"), None)
        # What changed, word by word, for answers of a readable length.
        short = (
            previous is not None
            and not text_cut
            and len(previous["answer_text"]) <= MAIL_TEXT_LIMIT
        )
        base.update(
            date_corrected=_d(latest["date_corrected"]),
            corrected_by=latest["corrector"],
            diff=word_diff(previous["answer_text"], text) if previous and short else (),
        )
    return DigestItem(**base)
