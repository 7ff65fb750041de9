"""Scottish Parliament written, topical and First Minister's questions (data.parliament.scot).

``GET /api/motionsquestionsanswersquestions?year=YYYY`` answers one JSON array of every
question of that year (7-10 MB, no paging, no "changed since"; docs SOURCES_WAVE2.md §2).
Each poll fetches the current year, the previous one in January, and any recent year that
still holds open questions, each at most once per ``min_minutes_between_downloads`` and
conditionally when the server gave an ETag or Last-Modified. Records are keyed on
``UniqueID``; ``EventID`` (S5W-02060) is the reference shown. Unchanged records are
recognised by their hash and write nothing. MSP names come from ``/api/members``; when that
fails the questions still land, the asker shown as "MSP <id>" until a later poll knows them.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import httpx

from pqwatch.config import ScottishParliamentConfig
from pqwatch.errors import SourceError
from pqwatch.sources.base import Batch, Known
from pqwatch.sources.http import OverHTTP, read_json
from pqwatch.text import linked_paragraphs, strip_controls
from pqwatch.types import MemberData, QuestionData, local_id, name_id, official_url

SOURCE = "scottish_parliament"
PARLIAMENT = "scotland"
HOUSE = "Scottish Parliament"
QUESTIONS_PATH = "/api/motionsquestionsanswersquestions"
MEMBERS_PATH = "/api/members"
# EventSubTypeID -> what the question is (verified in the samples: 1, 7, 9).
KINDS = {1: "Written question", 7: "First Minister's question", 9: "Topical question"}
_LETTER_KINDS = {"W": KINDS[1], "F": KINDS[7], "T": KINDS[9], "O": "Oral question"}
_REFERENCE = re.compile(r"\bS\d+[A-Z]-\d+\b")
_EVENT_ID = re.compile(r"^S\d+([A-Z])-\d+$")


def _text(value: Any) -> str:
    """Text as given, HTML entities decoded (2026 data carries &rsquo; and &pound;), line
    ends normalised, control characters dropped."""
    if not isinstance(value, str):
        return ""
    return strip_controls(html.unescape(value).replace("\r\n", "\n").replace("\r", "\n")).strip()


def _day(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def answer_html(text: str) -> str:
    """A plain-text answer as HTML paragraphs, each reference to another question
    (S5W-02066) linked to its page on the Parliament's site, and web addresses linked."""
    return linked_paragraphs(
        text, _REFERENCE, lambda m: official_url(PARLIAMENT, "question", "", m[0], None)
    )


def member_names(data: Any) -> dict[int, str]:
    """MSP id -> name from /api/members (PersonID with PreferredName, or ParliamentaryName
    written "Surname, Forename"); records it cannot read are left out."""
    names: dict[int, str] = {}
    for row in data if isinstance(data, list) else ():
        if not isinstance(row, dict):
            continue
        pid = _int(row.get("PersonID", row.get("MSPID", row.get("ID"))))
        name = _text(row.get("PreferredName"))
        if not name:
            surname, _, forename = _text(row.get("ParliamentaryName")).partition(",")
            name = f"{forename.strip()} {surname.strip()}".strip()
        if pid is not None and name:
            names[pid] = name
    return names


def record_hash(record: dict[str, Any], asker_name: str | None) -> str:
    """What must change for a record to be written again (the asker's name included, so a
    name learnt later is stored)."""
    keys = ("EventID", "EventSubTypeID", "MSPID", "Party", "SubmissionDateTime", "ApprovedDate",
            "Title", "ItemText", "AnswerText", "AnswerDate", "AnsweredByMSP", "ExpectedAnswerDate",
            "MeetingDate", "AnswerStatusID")  # fmt: skip
    blob = json.dumps([record.get(k) for k in keys] + [asker_name], default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def parse_record(record: Any, names: dict[int, str]) -> QuestionData:
    """One record of a year's array. Raises SourceError when it has no UniqueID or cannot
    be dated; anything optional that is missing is simply left out."""
    if not isinstance(record, dict):
        raise SourceError("a record is not an object")
    unique = _int(record.get("UniqueID"))
    if unique is None:
        raise SourceError("a record has no UniqueID")
    ref = _text(record.get("EventID")) or None
    tabled = _day(record.get("SubmissionDateTime")) or _day(record.get("ApprovedDate"))
    if tabled is None:
        raise SourceError(f"record {unique} ({ref or 'no EventID'}) has no submission date")
    msp = _int(record.get("MSPID"))
    asker = None
    if msp is not None:
        asker = MemberData(
            id=local_id(PARLIAMENT, msp),
            name=names.get(msp) or f"MSP {msp}",
            party=_text(record.get("Party")) or None,
        )
    answer = _text(record.get("AnswerText"))
    answered = _day(record.get("AnswerDate"))
    minister = _text(record.get("AnsweredByMSP")) or None
    answerer = MemberData(id=name_id(PARLIAMENT, minister), name=minister) if minister else None
    letter = _EVENT_ID.match(ref or "")
    kind = KINDS.get(_int(record.get("EventSubTypeID")) or 0) or (
        _LETTER_KINDS.get(letter.group(1)) if letter else None
    )
    question = _text(record.get("ItemText"))
    title = _text(record.get("Title"))
    has_answer = bool(answer) and answered is not None
    return QuestionData(
        source=SOURCE,
        source_id=str(unique),
        parliament=PARLIAMENT,
        house=HOUSE,
        uin=ref,
        date_tabled=tabled,
        date_for_answer=_day(record.get("ExpectedAnswerDate")),
        # The portal gives questions no title; the kind of question stands in for one.
        heading=title or kind,
        question_text=question or "(no question text)",
        question_text_full=True,
        list_hash=record_hash(record, names.get(msp) if msp is not None else None),
        asking_member_id=asker.id if asker else None,
        asking_member=asker,
        member_has_interest=record.get("RegisteredInterest") is True,
        answering_member_id=answerer.id if answerer and has_answer else None,
        answering_member=answerer if has_answer else None,
        date_answered=answered if has_answer else None,
        answer_raw=answer_html(answer) if has_answer else None,
        answer_full=True,
        source_flags_corrections=False,
    )


def years_to_poll(today: date, open_tabled: list[date], years_back: int) -> list[int]:
    """The current year; the previous one in January (late December questions are approved
    in January and answered after); and recent years that still hold open questions."""
    years = {today.year}
    if today.month == 1:
        years.add(today.year - 1)
    years |= {d.year for d in open_tabled if today.year - years_back <= d.year < today.year}
    return sorted(years, reverse=True)


class ScottishParliamentSource(OverHTTP[ScottishParliamentConfig]):
    name = SOURCE

    def poll(
        self, state: dict[str, Any], known: Known, now: datetime, *, since: date | None = None
    ) -> Iterator[Batch]:
        state = json.loads(json.dumps(state))  # a copy: the caller's is kept as it was
        years_state: dict[str, dict[str, str]] = state.setdefault("years", {})
        names = {int(k): v for k, v in state.get("members", {}).items()}
        problems: list[str] = []
        try:
            fetched = member_names(self._net.get_json(MEMBERS_PATH, allow_404=True))
            if fetched:
                names.update(fetched)
                state["members"] = {str(k): v for k, v in sorted(names.items())}
        except SourceError as exc:
            problems.append(f"{SOURCE}: MSP names not fetched ({exc}); shown as 'MSP <id>'")
        open_tabled = [o.date_tabled for o in known.open_items(SOURCE)]
        wait = timedelta(minutes=self.config.min_minutes_between_downloads)
        years = years_to_poll(now.date(), open_tabled, self.config.open_years_back)
        if since is not None:  # asked for by hand: every year from then, whenever fetched
            years = sorted(set(years) | set(range(since.year, now.year + 1)), reverse=True)
        for year in years:
            seen = years_state.get(str(year), {})
            last = seen.get("fetched_at")
            if since is None and last and now - datetime.fromisoformat(last) < wait:
                continue  # never the whole year more often than configured
            records, headers = self._year(year, seen)
            entry = {"fetched_at": now.isoformat()}
            entry |= {k: v for k, v in headers.items() if v}
            years_state[str(year)] = entry
            items, skipped = [], []
            for record in records or ():
                try:
                    items.append(parse_record(record, names))
                except SourceError as exc:
                    skipped.append(f"{SOURCE} {year}: {exc}")
            yield Batch(tuple(items), state, tuple(skipped), tuple(problems))
            problems = []
        if problems:
            yield Batch((), state, (), tuple(problems))

    def _year(self, year: int, seen: dict[str, str]) -> tuple[list[Any] | None, dict[str, str]]:
        """A year's records (None when unchanged since the last download) and the validators
        to send next time."""
        headers = {}
        if seen.get("etag"):
            headers["If-None-Match"] = seen["etag"]
        if seen.get("last_modified"):
            headers["If-Modified-Since"] = seen["last_modified"]

        def read(resp: httpx.Response) -> tuple[list[Any] | None, dict[str, str]]:
            validators = {
                "etag": resp.headers.get("ETag", ""),
                "last_modified": resp.headers.get("Last-Modified", ""),
            }
            if resp.status_code == 304:
                return None, {k: v or seen.get(k, "") for k, v in validators.items()}
            data = read_json(resp)
            if not isinstance(data, list):
                raise SourceError(
                    f"GET {QUESTIONS_PATH}?year={year}: expected a JSON array of questions, "
                    f"got {type(data).__name__}"
                )
            return data, validators

        result: tuple[list[Any] | None, dict[str, str]] | None = self._net.get(
            QUESTIONS_PATH, {"year": year}, headers=headers, read=read, allow_404=True
        )
        # No such year (yet): early in January the new year may have no questions.
        return result if result is not None else ([], {})
