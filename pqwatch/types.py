"""Plain data types that cross stage boundaries (sources -> store -> notify/feeds).

They are frozen dataclasses, never live ORM objects, so a stage can be tested on its own and
nothing holds a database session by accident.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta

# The parliaments pqwatch follows: the value stored per item, and the name a reader sees.
PARLIAMENTS = {
    "westminster": "UK Parliament",
    "scotland": "Scottish Parliament",
    "wales": "Senedd",
    "ni": "Northern Ireland Assembly",
    "foi": "WhatDoTheyKnow",  # not a parliament: where FOI requests are followed
}
KINDS = ("question", "statement", "foi")
# FOI: an authority must answer within 20 working days; WhatDoTheyKnow calls a request
# "long overdue" 20 working days after that (Alaveteli's defaults for public bodies).
FOI_WORKING_DAYS = 20
# What a reader calls each source (digest footers, operator alerts), in the order shown.
SOURCE_LABELS = {
    "uk_parliament": "UK Parliament written questions",
    "uk_statements": "UK Parliament written statements",
    "scottish_parliament": "Scottish Parliament",
    "senedd": "Senedd",
    "ni_assembly": "Northern Ireland Assembly",
    "whatdotheyknow": "WhatDoTheyKnow",
}


def source_label(source: str) -> str:
    return SOURCE_LABELS.get(source, source)


# Member and answering-body ids are pqwatch's own, so that one table holds every
# parliament's: Westminster's as its API gives them, the others' moved into a range of their
# own. Someone known only by name (a Scottish answering minister, any Senedd member) gets an
# id from the name in the upper half of the range: the same name, the same id, every poll.
_ID_BASE = {
    "westminster": 0, "scotland": 100_000_000, "wales": 200_000_000, "ni": 300_000_000,
    "foi": 400_000_000,
}  # fmt: skip
_NAMED = 50_000_000


def local_id(parliament: str, native: int) -> int:
    """pqwatch's id for a parliament's own member (or department) id."""
    if not 0 <= native < _NAMED:
        raise ValueError(f"{parliament} id out of range: {native}")
    return _ID_BASE[parliament] + native


def name_id(parliament: str, name: str) -> int:
    """pqwatch's id for someone (or a department) a parliament names but gives no id."""
    key = " ".join(name.casefold().split()).encode()
    return _ID_BASE[parliament] + _NAMED + zlib.crc32(key) % _NAMED


def item_label(parliament: str, kind: str, house: str | None = None) -> str:
    """ "UK Parliament (Lords), written statement" / "Scottish Parliament, written question" """
    if kind == "foi":
        return "FOI request (WhatDoTheyKnow)"
    name = PARLIAMENTS.get(parliament, parliament)
    if parliament == "westminster" and house in ("Commons", "Lords"):
        name += f" ({house})"
    return f"{name}, written {kind}"


_OFFICIAL_URLS = {
    ("westminster", "question"): (
        "https://questions-statements.parliament.uk/written-questions/detail/{day}/{ref}"
    ),
    ("westminster", "statement"): (
        "https://questions-statements.parliament.uk/written-statements/detail/{day}/{ref}"
    ),
    ("scotland", "question"): (
        "https://www.parliament.scot/chamber-and-committees/questions-and-answers/question?ref={ref}"
    ),
    ("wales", "question"): "https://record.senedd.wales/WrittenQuestion/{id}",
    ("ni", "question"): (
        "http://aims.niassembly.gov.uk/questions/printquestionsummary.aspx?docid={id}"
    ),
    ("foi", "foi"): "https://www.whatdotheyknow.com/request/{ref}",
}


def official_url(
    parliament: str, kind: str, day: date | str, ref: str | None, source_id: str | None
) -> str | None:
    """The item's page on its parliament's own site (None when it cannot be made)."""
    pattern = _OFFICIAL_URLS.get((parliament, kind))
    if pattern is None or ("{ref}" in pattern and not ref) or ("{id}" in pattern and not source_id):
        return None
    text = day.isoformat() if isinstance(day, date) else str(day)[:10]
    return pattern.format(day=text, ref=ref or "", id=source_id or "")


@dataclass(frozen=True, slots=True)
class MemberData:
    id: int
    name: str | None = None
    list_as: str | None = None
    party: str | None = None
    party_abbreviation: str | None = None
    # Constituency for MPs; kind of peerage for Lords ("Life peer").
    member_from: str | None = None
    thumbnail_url: str | None = None


@dataclass(frozen=True, slots=True)
class GroupLink:
    """A grouped question, identified as the API does: UIN plus tabling date."""

    uin: str
    date_tabled: date


@dataclass(frozen=True, slots=True)
class AttachmentData:
    """A file attached to an answer (often a table as .xlsx or .pdf). url is http(s) only."""

    url: str
    title: str | None = None
    file_type: str | None = None
    file_size_bytes: int | None = None

    @property
    def about(self) -> str:
        """ "xlsx, 18 KB", or "" when neither is known."""
        return ", ".join(x for x in (self.file_type, human_size(self.file_size_bytes)) if x)


def attachments_to_json(attachments: tuple[AttachmentData, ...]) -> str | None:
    """The stored form of a question's attachments (None for none)."""
    if not attachments:
        return None
    return json.dumps([asdict(a) for a in attachments], ensure_ascii=False)


def attachments_from_json(text: str | None) -> tuple[AttachmentData, ...]:
    """Attachments as stored; anything unreadable counts as none rather than failing a read."""
    if not text:
        return ()
    try:
        rows = json.loads(text)
    except ValueError:
        return ()
    out = []
    for r in rows if isinstance(rows, list) else ():
        if isinstance(r, dict) and isinstance(r.get("url"), str):
            size = r.get("file_size_bytes")
            out.append(
                AttachmentData(
                    url=r["url"],
                    title=r.get("title") if isinstance(r.get("title"), str) else None,
                    file_type=r.get("file_type") if isinstance(r.get("file_type"), str) else None,
                    file_size_bytes=size if isinstance(size, int) else None,
                )
            )
    return tuple(out)


def human_size(size: int | None) -> str | None:
    """1234567 -> "1.2 MB" (None when unknown)."""
    if size is None or size < 0:
        return None
    if size < 1000:
        return f"{size} bytes"
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1000
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
    return None  # unreachable


@dataclass(frozen=True, slots=True)
class QuestionData:
    """One item as a source reports it, normalised but not yet stored: a written question
    (any parliament's) or a written statement (kind "statement": heading is its title,
    question_text its text, date_tabled the day it was made, answering_* its minister)."""

    source: str
    source_id: str
    house: str
    date_tabled: date
    question_text: str
    # False when the text came from a list result and may be cut at 255 characters.
    question_text_full: bool
    # Hash of the list-level view of the item: equal hashes mean nothing to write.
    list_hash: str
    parliament: str = "westminster"
    kind: str = "question"
    # Westminster flags a corrected answer itself; where a source does not, an answer whose
    # text changes after it was stored is a correction.
    source_flags_corrections: bool = True
    uin: str | None = None
    date_for_answer: date | None = None
    is_named_day: bool = False
    heading: str | None = None
    asking_member_id: int | None = None
    asking_member: MemberData | None = None
    member_has_interest: bool = False
    answering_body_id: int | None = None
    answering_body_name: str | None = None
    is_withdrawn: bool = False
    answer_is_holding: bool | None = None
    answer_is_correction: bool | None = None
    answering_member_id: int | None = None
    answering_member: MemberData | None = None
    correcting_member_id: int | None = None
    correcting_member: MemberData | None = None
    date_answered: date | None = None
    date_answer_corrected: date | None = None
    date_holding_answer: date | None = None
    # As given: HTML from the detail endpoint, tag-stripped and cut text from a list result.
    answer_raw: str | None = None
    # True when answer_raw is the detail endpoint's full HTML.
    answer_full: bool = False
    original_answer_raw: str | None = None
    attachments: tuple[AttachmentData, ...] = ()
    group: tuple[GroupLink, ...] = field(default_factory=tuple)
    # What was inconsistent in the source's record and how it was resolved (reported, stored).
    problems: tuple[str, ...] = ()
    # The source's own state of the item, stored as its status (FOI: Alaveteli's
    # described_state, kept as it came even when unknown). None: worked out from the answer.
    state: str | None = None
    # Source-specific facts as a JSON object (FOI: law used, url_names, event history).
    details: str | None = None

    @property
    def has_answer(self) -> bool:
        return self.answer_raw is not None and self.date_answered is not None

    @property
    def needs_detail(self) -> bool:
        """Whether the full record must be fetched to hold the full text and answer HTML."""
        return not self.question_text_full or (self.has_answer and not self.answer_full)


# WhatDoTheyKnow's words for each state (Alaveteli's InfoRequest::State); others shown as given.
FOI_STATES = {
    "waiting_response": "Awaiting response",
    "waiting_clarification": "Awaiting clarification",
    "gone_postal": "Handled by post",
    "not_held": "Information not held",
    "rejected": "Refused",
    "successful": "Successful",
    "partially_successful": "Partially successful",
    "internal_review": "Awaiting internal review",
    "error_message": "Delivery error",
    "requires_admin": "Unusual response",
    "user_withdrawn": "Withdrawn by the requester",
    "attention_requested": "Reported for administrator attention",
    "vexatious": "Considered vexatious",
    "not_foi": "Not a valid FOI request",
}


def foi_state_label(state: str | None, due: date | None, today: date) -> str:
    """ "Awaiting response (overdue: due 5 Feb 2019)", "Information not held", ..."""
    label = FOI_STATES.get(state or "", (state or "unknown").replace("_", " ").capitalize())
    if state == "waiting_response" and due is not None and today > due:
        late = add_working_days(due, FOI_WORKING_DAYS) < today
        label += f" ({'long overdue' if late else 'overdue'}: due {due.day} {due:%b %Y})"
    return label


def add_working_days(day: date, n: int) -> date:
    """The date n working days (Monday to Friday) after day. Bank holidays are not known
    here, so a deadline can come a day or two early around them."""
    while n > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            n -= 1
    return day


@dataclass(frozen=True, slots=True)
class SourcePolls:
    """One source's polling over a digest's period: its last success, and failed polls."""

    source: str
    last_ok: datetime | None
    failures: int


@dataclass(frozen=True, slots=True)
class OpenItem:
    """A stored item still waiting for an answer (what a source may re-check)."""

    source_id: str
    date_tabled: date
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class PageResult:
    """One page of a list query, already de-duplicated against earlier pages."""

    items: tuple[QuestionData, ...]
    total_results: int
    seen_so_far: int
    # Items that could not be used (e.g. no tabling date), with the reason.
    skipped: tuple[str, ...] = ()
