"""Northern Ireland Assembly written questions (data.niassembly.gov.uk, the AIMS open data).

Each poll reads ``questions.asmx/GetQuestionsForWrittenAnswer_TabledInRange_JSON`` for the
last ``tabled_days`` and ``…_AnsweredInRange_JSON`` for the last ``answered_days`` (answers
come late: the whole answered window is read again every poll), in chunks of at most
CHUNK_DAYS (a multi-year range is a ~100 MB body). Answered rows that carry no answer text
are completed from ``GetQuestionDetails_JSON?documentId=``, at most DETAILS_PER_POLL a poll;
an answered row already completed unchanged (kept in the state) costs nothing. MLA names,
parties and seats come from ``members.asmx/GetAllCurrentMembers_JSON``.

The envelope (SOURCES_WAVE2.md §4) is ``{"QuestionsList": {"Question": [...]}}``; one row
comes as a bare object, no rows as ``"QuestionsList": null``; every scalar is a string
(``"307"``, ``"false"``); timestamps carry the UK offset of their day (``+00:00``/``+01:00``);
a key no row has is left out. Records are keyed on ``DocumentId``; ``Reference`` (``AQW
49327/22-27``) is stored as the uin. Only the members envelope is verified on a real
recording; the question fields are third-party leads, so every field is read leniently.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from pqwatch.config import NIAssemblyConfig
from pqwatch.errors import SourceError
from pqwatch.sources.base import Batch, Known
from pqwatch.sources.http import OverHTTP, read_json
from pqwatch.text import (
    html_to_text,
    linked_paragraphs,
    looks_like_html,
    sanitize_html,
    strip_controls,
)
from pqwatch.types import MemberData, QuestionData, local_id, name_id

SOURCE = "ni_assembly"
PARLIAMENT = "ni"
HOUSE = "Northern Ireland Assembly"
QUESTIONS = "/questions.asmx/"
TABLED_PATH = QUESTIONS + "GetQuestionsForWrittenAnswer_TabledInRange_JSON"
ANSWERED_PATH = QUESTIONS + "GetQuestionsForWrittenAnswer_AnsweredInRange_JSON"
DETAIL_PATH = QUESTIONS + "GetQuestionDetails_JSON"
MEMBERS_PATH = "/members.asmx/GetAllCurrentMembers_JSON"
CHUNK_DAYS = 92
DETAILS_PER_POLL = 250  # a first poll of 90 days is thousands of answers: spread over polls
MAX_DETAIL_FAILURES = 5  # in a row: the server is down, stop asking it
MEMBERS_MAX_AGE_DAYS = 7
BATCH_SIZE = 50
UK = ZoneInfo("Europe/London")
_DIGITS = re.compile(r"[0-9]{1,9}")
_ANSWER_KEYS = ("answerhtml", "answerplaintext")

# PersonId -> (name, party, seat)
Names = dict[int, tuple[str, str, str]]


def _lower(record: dict[str, Any]) -> dict[str, Any]:
    """Keys case-folded: third-party notes spell DocumentId/DocumentID, DepartmentId/…ID."""
    return {str(k).lower(): v for k, v in record.items()}


def _text(value: Any) -> str:
    """A scalar as text: entities decoded, line ends normalised, controls dropped."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    text = html.unescape(str(value)).replace("\r\n", "\n").replace("\r", "\n")
    return strip_controls(text).strip()


def _line(value: Any) -> str:
    return " ".join(_text(value).split())


def _int(value: Any) -> int | None:
    """ "307" or 307; anything else (a bool, a negative, a huge or odd number) is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < 50_000_000 else None
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return int(value.strip())
    return None


def uk_date(value: Any) -> date | None:
    """The UK calendar day of "2026-06-22T00:00:00+01:00", "2008-03-07T00:00:00+00:00", a
    UTC instant or a bare date; None when unreadable. A timestamp with an offset is moved to
    UK time first, so midnight BST written as 23:00 UTC is still the next day."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
        return (moment.astimezone(UK) if moment.tzinfo else moment).date()
    except (ValueError, OverflowError):
        return None


def _uk_today(now: datetime) -> date:
    return now.astimezone(UK).date() if now.tzinfo else now.date()


def _shape(payload: Any) -> str:
    if isinstance(payload, dict):
        keys = ", ".join(repr(k)[:40] for k in list(payload)[:3])
        return f"an object with keys {keys}" if keys else "an empty object"
    return "null" if payload is None else type(payload).__name__


def unwrap(payload: Any, what: str) -> list[Any]:
    """The rows of an AIMS envelope ``{"XList": {"X": rows}}``: a list, one bare object, or
    null (no rows). Any other shape is a SourceError naming ``what``."""
    wrong = SourceError(
        f'{what}: expected {{"QuestionsList": {{"Question": [...]}}}}, got {_shape(payload)}'
    )
    if not isinstance(payload, dict) or len(payload) != 1:
        raise wrong
    (outer,) = payload.values()
    if outer is None or outer == {}:
        return []
    if not isinstance(outer, dict) or len(outer) != 1:
        raise wrong
    (rows,) = outer.values()
    if rows is None:
        return []
    if isinstance(rows, dict):
        return [rows]
    if isinstance(rows, list):
        return rows
    raise wrong


def member_names(rows: list[Any]) -> Names:
    """PersonId -> (name, party, seat) from a members list; unreadable rows left out."""
    names: Names = {}
    for row in rows:
        r = _lower(row) if isinstance(row, dict) else {}
        pid = _int(r.get("personid"))
        name = f"{_line(r.get('memberfirstname'))} {_line(r.get('memberlastname'))}".strip()
        if not name:
            surname, _, forename = _line(r.get("membername")).partition(",")
            name = f"{forename.strip()} {surname.strip()}".strip()
        name = name or _line(r.get("memberfulldisplayname"))
        if pid is not None and name:
            names[pid] = (name, _line(r.get("partyname")), _line(r.get("constituencyname")))
    return names


def answer_html(r: dict[str, Any]) -> str:
    """The answer as safe HTML: AnswerHtml sanitised (entity-encoded HTML decoded first, as
    the XML twin of this endpoint sends it), else AnswerPlainText as escaped paragraphs."""
    raw = r.get("answerhtml")
    if isinstance(raw, str) and raw.strip():
        if not looks_like_html(raw) and "&lt;" in raw:
            raw = html.unescape(raw)
        cleaned = strip_controls(sanitize_html(raw)) if looks_like_html(raw) else ""
        if html_to_text(cleaned).strip():
            return cleaned
    return linked_paragraphs(_text(r.get("answerplaintext")))


def _member(pid: int | None, fallback: str, names: Names, title: str = "") -> MemberData | None:
    """An MLA by PersonId (named from the members list when it knows them), else by name."""
    if pid is not None:
        name, party, seat = names.get(pid, (fallback or f"MLA {pid}", "", ""))
        # TablerTitle reads "MLA - North Antrim".
        seat = seat or (title.partition("-")[2].strip() if title.startswith("MLA") else "")
        return MemberData(
            local_id(PARLIAMENT, pid), name, party=party or None, member_from=seat or None
        )
    return MemberData(name_id(PARLIAMENT, fallback), fallback) if fallback else None


def parse_record(record: Any, names: Names) -> QuestionData:
    """One question row (list row, merged with its details when fetched). Raises
    SourceError when it has no DocumentId or tabling date; missing optional fields are
    simply left out."""
    if not isinstance(record, dict):
        raise SourceError("a record is not an object")
    r = _lower(record)
    doc = _int(r.get("documentid"))
    if doc is None:
        raise SourceError("a record has no DocumentId")
    ref = _line(r.get("reference")) or None
    tabled = uk_date(r.get("tableddate"))
    if tabled is None:
        raise SourceError(f"record {doc} ({ref or 'no Reference'}) has no readable TabledDate")
    answered = uk_date(r.get("answeredondate"))
    answer = answer_html(r) if answered else ""
    problems: tuple[str, ...] = ()
    if answered and not answer:
        problems = (f"{SOURCE} {ref or doc}: answered on {answered} but no answer text given",)
    has_answer = bool(answer)
    asker = _member(
        _int(r.get("tablerpersonid")),
        _line(r.get("tablername")),
        names,
        _line(r.get("tablertitle")),
    )
    minister = _member(_int(r.get("ministerpersonid")), _line(r.get("ministertitle")), names)
    department = _line(r.get("department") or r.get("departmentname")) or None
    priority = _text(r.get("priorityrequest")).lower() == "true"
    used = [m.name for m in (asker, minister) if m is not None]
    blob = json.dumps([sorted(r.items(), key=lambda kv: kv[0]), used], default=str)
    return QuestionData(
        source=SOURCE,
        source_id=str(doc),
        parliament=PARLIAMENT,
        house=HOUSE,
        uin=ref,
        date_tabled=tabled,
        date_for_answer=uk_date(r.get("answerbydate")),
        heading="Priority written question" if priority else "Written question",
        question_text=_text(r.get("questiontext")) or "(no question text)",
        question_text_full=True,
        list_hash=hashlib.sha256(blob.encode()).hexdigest()[:32],
        asking_member_id=asker.id if asker else None,
        asking_member=asker,
        # By name, not DepartmentID: an id present on one endpoint and absent on another
        # would read as a transfer between departments.
        answering_body_id=name_id(PARLIAMENT, department) if department else None,
        answering_body_name=department,
        answering_member_id=minister.id if minister and has_answer else None,
        answering_member=minister if has_answer else None,
        date_answered=answered if has_answer else None,
        answer_raw=answer if has_answer else None,
        answer_full=True,
        source_flags_corrections=False,
        problems=problems,
    )


def _answered_on(row: dict[str, Any]) -> date:
    return uk_date(_lower(row).get("answeredondate")) or date.min


def _merge(listed: dict[str, Any], details: dict[str, Any]) -> dict[str, Any]:
    """A list row completed by its details (an empty detail field never blanks a listed one)."""
    return {**listed, **{k: v for k, v in details.items() if v not in (None, "")}}


def _row_hash(row: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _chunks(start: date, end: date) -> Iterator[tuple[date, date]]:
    """[start, end + 1 day) in pieces; neighbours share a boundary day (whether endDate is
    inclusive is not documented) and the rows are de-duplicated by DocumentId."""
    stop = end + timedelta(days=1)
    while True:
        upto = min(start + timedelta(days=CHUNK_DAYS), stop)
        yield start, upto
        if upto >= stop:
            return
        start = upto


class NIAssemblySource(OverHTTP[NIAssemblyConfig]):
    name = SOURCE

    def poll(
        self, state: dict[str, Any], known: Known, now: datetime, *, since: date | None = None
    ) -> Iterator[Batch]:
        state = json.loads(json.dumps(state))  # a copy: the caller's is kept as it was
        today = _uk_today(now)
        tabled_from = since or today - timedelta(days=self.config.tabled_days)
        # Never later than tabled_from: a tabled row that was answered is then always in the
        # answered rows too, so an answer-less copy never overwrites a stored answer.
        answered_from = min(since or today - timedelta(days=self.config.answered_days), tabled_from)
        skipped: list[str] = []
        answered = self._by_doc(self._range(ANSWERED_PATH, answered_from, today), skipped)
        tabled = self._by_doc(self._range(TABLED_PATH, tabled_from, today), skipped)
        problems: list[str] = []
        names = self._names(state, [*answered.values(), *tabled.values()], today, problems)

        done_before: dict[str, str] = state.get("answered") or {}
        done: dict[str, str] = {}

        def kept() -> dict[str, Any]:  # answered rows stored in full, by their list row's hash
            return {**state, "answered": dict(done)}

        ready: list[dict[str, Any]] = [r for d, r in tabled.items() if d not in answered]
        pending: list[tuple[int, dict[str, Any]]] = []
        for doc, row in answered.items():
            if done_before.get(str(doc)) == _row_hash(row):
                done[str(doc)] = _row_hash(row)  # unchanged since stored: nothing to fetch
            elif any(_text(_lower(row).get(k)) for k in _ANSWER_KEYS):
                ready.append(row)
            else:
                pending.append((doc, row))
        items = self._parse([(r, r) for r in ready], names, skipped, done)
        yield Batch(tuple(items), kept(), tuple(skipped), tuple(problems))

        # Questions waiting in the archive first, then the newest answers.
        open_ids = {o.source_id for o in known.open_items(SOURCE)}
        pending.sort(key=lambda p: (str(p[0]) in open_ids, _answered_on(p[1])), reverse=True)
        todo, later = pending[:DETAILS_PER_POLL], len(pending) - DETAILS_PER_POLL
        failures = 0
        for start in range(0, len(todo), BATCH_SIZE):
            pairs, skipped = [], []
            for doc, row in todo[start : start + BATCH_SIZE]:
                try:
                    pairs.append((_merge(row, self._details(doc)), row))
                    failures = 0
                except SourceError as exc:
                    failures += 1
                    if failures >= MAX_DETAIL_FAILURES:
                        raise SourceError(
                            f"GET {DETAIL_PATH} failed {failures} times in a row; last: {exc}"
                        ) from None
                    skipped.append(f"{SOURCE} DocumentId {doc}: {exc}")
            items = self._parse(pairs, names, skipped, done)
            yield Batch(tuple(items), kept(), tuple(skipped))
        if later > 0:
            note = f"{SOURCE}: {later} answers wait for their text until the next poll"
            yield Batch((), kept(), (), (note,))

    def _parse(
        self,
        pairs: list[tuple[dict[str, Any], dict[str, Any]]],
        names: Names,
        skipped: list[str],
        done: dict[str, str],
    ) -> list[QuestionData]:
        """(record, its list row) pairs to records; one stored with its answer is noted in
        `done` by its list row's hash, so that later polls skip it while that row is the same."""
        items = []
        for record, listed in pairs:
            try:
                item = parse_record(record, names)
            except SourceError as exc:
                skipped.append(f"{SOURCE}: {exc}")
                continue
            items.append(item)
            if item.has_answer:
                done[item.source_id] = _row_hash(listed)
        return items

    def _by_doc(self, rows: list[Any], skipped: list[str]) -> dict[int, dict[str, Any]]:
        """Rows by DocumentId; of several rows for one question (an answer appended, the
        joint First Minister rows) the latest answered wins."""
        out: dict[int, dict[str, Any]] = {}
        for row in rows:
            if not isinstance(row, dict):
                skipped.append(f"{SOURCE}: a record is not an object")
                continue
            doc = _int(_lower(row).get("documentid"))
            if doc is None:
                skipped.append(f"{SOURCE}: a record has no DocumentId")
                continue
            if doc not in out or _answered_on(row) >= _answered_on(out[doc]):
                out[doc] = row
        return out

    def _rows(self, path: str, params: dict[str, str | int]) -> list[Any]:
        what = f"GET {path}?" + "&".join(f"{k}={v}" for k, v in params.items())

        def read(resp: httpx.Response) -> list[Any]:
            return unwrap(read_json(resp), what)

        rows: list[Any] = self._net.get(path, params, read=read)
        return rows

    def _range(self, path: str, start: date, end: date) -> list[Any]:
        rows: list[Any] = []
        for lo, hi in _chunks(start, end):
            rows += self._rows(path, {"startDate": lo.isoformat(), "endDate": hi.isoformat()})
        return rows

    def _details(self, doc: int) -> dict[str, Any]:
        found = [r for r in self._rows(DETAIL_PATH, {"documentId": doc}) if isinstance(r, dict)]
        if not found:
            raise SourceError("no details given (a null QuestionsList)")
        # Several rows (an answer appended): the one with the latest answer.
        return max(found, key=_answered_on)

    def _names(
        self, state: dict[str, Any], rows: list[dict[str, Any]], today: date, problems: list[str]
    ) -> Names:
        """MLA names from the state, fetched again weekly, or (once a day) when a row names
        a PersonId the list did not have."""
        names: Names = {int(k): (v[0], v[1], v[2]) for k, v in state.get("members", {}).items()}
        keys = ("tablerpersonid", "ministerpersonid")
        wanted = {_int(_lower(r).get(k)) for r in rows for k in keys}
        fetched_on = uk_date(state.get("members_fetched"))
        stale = fetched_on is None or (today - fetched_on).days >= MEMBERS_MAX_AGE_DAYS
        if not stale and (not wanted - {None} - names.keys() or fetched_on == today):
            return names
        try:
            data = self._net.get_json(MEMBERS_PATH, allow_404=True)
            fetched = member_names(unwrap(data, f"GET {MEMBERS_PATH}")) if data else {}
        except SourceError as exc:
            problems.append(f"{SOURCE}: MLA names not fetched ({exc}); shown as given")
            return names
        if fetched:
            names.update(fetched)
            state["members"] = {str(k): list(v) for k, v in sorted(names.items())}
            state["members_fetched"] = today.isoformat()
        return names
