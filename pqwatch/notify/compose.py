"""Compose a digest: read what is owed to a subscriber and shape it into plain view types.

One question appears once per digest, in the section of its most advanced event (corrected >
answered > holding > tabled), labelled with every watch that matched it and the words that
matched. Grouped questions answered together become one item listing every UIN and asker.
Nothing here renders or sends; templates get these frozen types, never ORM rows.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from bs4 import BeautifulSoup
from bs4.element import NavigableString

from pqwatch.search.engine import official_url

SECTIONS = ("answered", "corrected", "holding", "tabled")
SECTION_TITLES = {
    "answered": "New answers",
    "corrected": "Corrected answers",
    "holding": "Holding answers",
    "tabled": "Newly tabled questions (awaiting answer)",
}
_PRECEDENCE = {"corrected": 4, "answered": 3, "holding": 2, "tabled": 1}


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
    diff: tuple[DiffPart, ...] = ()

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
    last_poll_ok_at: datetime | None
    poll_failures: int
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


_PENDING = sa.text(
    "SELECT d.id AS delivery_id, d.event_id, e.kind, e.question_id FROM delivery d "
    "JOIN event e ON e.id = d.event_id WHERE d.id IN :ids ORDER BY e.id"
).bindparams(sa.bindparam("ids", expanding=True))

_QUESTION = sa.text(
    "SELECT q.id, q.source_id, q.uin, q.house, q.date_tabled, q.date_for_answer, q.heading, "
    "q.question_text, q.date_answered, q.date_answer_corrected, b.name AS department, "
    "am.name AS asker, am.party AS asker_party, am.member_from AS asker_from "
    "FROM question q LEFT JOIN answering_body b ON b.id = q.answering_body_id "
    "LEFT JOIN member am ON am.id = q.asking_member_id WHERE q.id = :id"
)
_ANSWERS = sa.text(
    "SELECT a.kind, a.answer_html, a.answer_text, a.is_full_text, a.date_answered, "
    "a.date_corrected, "
    "wm.name AS answerer, cm.name AS corrector FROM answer a "
    "LEFT JOIN member wm ON wm.id = a.answering_member_id "
    "LEFT JOIN member cm ON cm.id = a.correcting_member_id "
    "WHERE a.question_id = :id ORDER BY a.version"
)
_WATCHES = sa.text(
    "SELECT w.name, m.matched_terms_json FROM watch_match m JOIN watch w ON w.id = m.watch_id "
    "JOIN subscription s ON s.watch_id = w.id AND s.subscriber_id = :sub "
    "WHERE m.event_id IN :events ORDER BY w.name"
).bindparams(sa.bindparam("events", expanding=True))
_GROUP = sa.text(
    "SELECT o.id FROM question_group g JOIN question o ON o.uin = g.grouped_uin "
    "AND o.date_tabled = g.grouped_date_tabled AND o.house = :house WHERE g.question_id = :id"
)


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
        question_text=row["question_text"],
        url=official_url(row["date_tabled"], row["uin"]),
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
) -> Digest:
    """Build the digest of the given outbox rows, from the database as it is now."""
    by_question: dict[int, list[tuple[int, str]]] = {}
    for r in conn.execute(_PENDING, {"ids": list(delivery_ids)}).mappings():
        by_question.setdefault(r["question_id"], []).append((r["event_id"], r["kind"]))

    # Grouped questions answered together are one item: union questions linked by groups.
    parent: dict[int, int] = {q: q for q in by_question}

    def find(q: int) -> int:
        while parent[q] != q:
            parent[q] = parent[parent[q]]
            q = parent[q]
        return q

    rows = {q: conn.execute(_QUESTION, {"id": q}).mappings().one() for q in by_question}
    group_members: dict[int, list[int]] = {}
    for q, row in rows.items():
        linked = [r[0] for r in conn.execute(_GROUP, {"id": q, "house": row["house"]})]
        group_members[q] = linked
        for other in linked:
            if other in parent:
                parent[find(other)] = find(q)

    clusters: dict[int, list[int]] = {}
    for q in by_question:
        clusters.setdefault(find(q), []).append(q)

    items: list[DigestItem] = []
    all_watches: set[str] = set()
    for members in clusters.values():
        members.sort()
        lead = members[0]
        events = [ev for q in members for ev in by_question[q]]
        section = max((k for _, k in events), key=lambda k: _PRECEDENCE[k])
        watch_terms: dict[str, None] = {}
        terms: dict[str, None] = {}
        for wname, tjson in conn.execute(
            _WATCHES, {"sub": subscriber_id, "events": [e for e, _ in events]}
        ):
            watch_terms.setdefault(wname, None)
            for t in json.loads(tjson or "[]"):
                terms.setdefault(t, None)
        all_watches.update(watch_terms)
        # Every question of the group, matched or not, with its asker.
        ids = sorted(set(members) | {o for q in members for o in group_members[q]})
        views = []
        for q in ids:
            row = rows.get(q) or conn.execute(_QUESTION, {"id": q}).mappings().one()
            views.append(_question_view(row))
        lead_row = rows[lead]
        answers = [dict(a) for a in conn.execute(_ANSWERS, {"id": lead}).mappings()]
        item = _item(section, lead_row, tuple(views), tuple(watch_terms), tuple(terms), answers)
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
        last_poll_ok_at=None,
        poll_failures=0,
        sections=sections,
    )


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
    }
    if section == "tabled" or not answers:
        return DigestItem(**base)
    latest = answers[-1]
    base.update(
        answered_by=latest["answerer"],
        date_answered=_d(latest["date_answered"]),
        answer_html=highlight_html(latest["answer_html"], terms),
        answer_text=latest["answer_text"],
        answer_partial=not latest["is_full_text"],
    )
    if section == "corrected":
        previous = next((a for a in reversed(answers[:-1]) if a["kind"] != "holding"), None)
        base.update(
            date_corrected=_d(latest["date_corrected"]),
            corrected_by=latest["corrector"],
            diff=word_diff(previous["answer_text"], latest["answer_text"]) if previous else (),
        )
    return DigestItem(**base)
