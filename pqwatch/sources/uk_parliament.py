"""Adapter for the UK Parliament Written Questions API (Commons and Lords).

Fetches and parses; returns plain `QuestionData`; knows nothing of the database. What we rely
on comes from real recordings (docs API.md): list results cut questionText at 255 characters
and answerText at 255 + "..." with tags stripped, so items that may be cut are re-fetched from
`/questions/{id}`; paging is unstable while answers arrive, so items are de-duplicated by id;
the API is slow and flaky, so every request has a timeout and is retried with backoff.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from functools import lru_cache
from typing import Any, TypeVar

import httpx

from pqwatch.config import UKParliamentConfig
from pqwatch.errors import SourceError
from pqwatch.sources.http import OverHTTP, Retry, SourceHTTP, read_json
from pqwatch.text import html_to_text, looks_like_html, sanitize_html, strip_controls
from pqwatch.types import AttachmentData, GroupLink, MemberData, PageResult, QuestionData

SOURCE = "uk_parliament"
LIST_PATH = "/api/writtenquestions/questions"
DETAIL_PATH = "/api/writtenquestions/questions/{id}"
# Written statements: the same API, a source of their own (own cursor, own health).
STATEMENTS_SOURCE = "uk_statements"
STATEMENTS_PATH = "/api/writtenstatements/statements"
STATEMENT_PATH = "/api/writtenstatements/statements/{id}"
LIST_TEXT_LIMIT = 255

_In = TypeVar("_In")
_Out = TypeVar("_Out")

# Which API parameters select each kind of date window.
WINDOW_PARAMS = {
    "tabled": ("tabledWhenFrom", "tabledWhenTo"),
    "answered": ("answeredWhenFrom", "answeredWhenTo"),
    "corrected": ("correctedWhenFrom", "correctedWhenTo"),
    "made": ("madeWhenFrom", "madeWhenTo"),  # statements
}


class UKParliamentClient(OverHTTP[UKParliamentConfig]):
    """HTTP client for the Written Questions API. Thread-safe; close() when done."""

    def __init__(
        self,
        config: UKParliamentConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self._net = SourceHTTP(config, transport=transport, sleep=sleep, jitter=jitter)

    def __enter__(self) -> UKParliamentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_json(
        self, path: str, params: dict[str, str | int] | None = None, *, allow_404: bool = False
    ) -> Any:
        """GET a JSON document, retrying transient failures. Raises SourceError; a 404 gives
        None when allow_404 is set."""
        return self._net.get(path, params, allow_404=allow_404, read=_read)

    # -- list and detail --------------------------------------------------------------------

    def iter_window(
        self, kind: str, start: date, end: date, houses: Sequence[str] | None = None
    ) -> Iterator[PageResult]:
        """Page through one date window ("tabled", "answered" or "corrected").

        Stops when the items collected reach totalResults or a page comes back empty;
        items repeated across pages (the result set shifts while answers arrive) are
        dropped, so each id is yielded once.
        """
        date_from, date_to = WINDOW_PARAMS[kind]
        houses = list(houses or self.config.houses)
        take = self.config.page_size
        params: dict[str, str | int] = {
            date_from: start.isoformat(),
            date_to: end.isoformat(),
            "house": houses[0] if len(houses) == 1 else "Bicameral",
            "expandMember": "true",
            # Withdrawn questions are left out unless asked for; we want to see withdrawals.
            "includeWithdrawn": "true",
            "take": take,
        }
        path, parse = LIST_PATH, parse_question
        if kind == "made":  # written statements (withdrawal is a question's matter)
            path, parse = STATEMENTS_PATH, parse_statement
            del params["includeWithdrawn"]
        seen: set[int] = set()
        skipped: list[str] = []
        skip = 0
        while True:
            data = self.get_json(path, {**params, "skip": skip})
            results, total = _envelope(data, path)
            fresh: list[QuestionData] = []
            for n, wrapper in enumerate(results, start=skip + 1):
                value = wrapper.get("value") if isinstance(wrapper, dict) else None
                qid = _int(value.get("id")) if isinstance(value, dict) else None
                if value is None or qid is None:
                    # Unusable, but it must not block the window for ever: skip and report it.
                    skipped.append(f"result {n} of {total} has no integer value.id")
                    continue
                if qid in seen:
                    continue
                seen.add(qid)
                try:
                    fresh.append(parse(value, from_list=True))
                except SourceError as exc:
                    # One unusable item must not block the window for ever: skip and count it.
                    skipped.append(str(exc))
            yield PageResult(
                items=tuple(fresh),
                total_results=total,
                seen_so_far=len(seen),
                skipped=tuple(skipped),
            )
            skipped = []
            if not results or len(seen) >= total:
                return
            skip += take

    def fetch_detail(self, item: QuestionData) -> QuestionData:
        """The full record of one listed item; the list item itself (with the problem noted)
        when the API has no usable detail for it."""
        statement = item.kind == "statement"
        full = self.fetch_question(item.source_id, item.list_hash, statement=statement)
        if isinstance(full, QuestionData):
            return full
        if full is None:
            path = (STATEMENT_PATH if statement else DETAIL_PATH).format(id=item.source_id)
            full = f"GET {path}: HTTP 404 (not found)"
        return _replace(item, problems=(*item.problems, full))

    def fetch_question(
        self, source_id: str, list_hash: str, *, statement: bool = False
    ) -> QuestionData | str | None:
        """One question from the detail endpoint, carrying `list_hash` (the list-level hash
        the next listing is compared against). None on a 404; a one-line problem when the
        record cannot be used."""
        path = (STATEMENT_PATH if statement else DETAIL_PATH).format(id=source_id)
        data = self.get_json(path, {"expandMember": "true"}, allow_404=True)
        if data is None:
            return None
        value = data.get("value") if isinstance(data, dict) else None
        try:
            if not isinstance(value, dict) or str(value.get("id")) != source_id:
                raise SourceError("the response has no value object for this question")
            full = (parse_statement if statement else parse_question)(value, from_list=False)
        except SourceError as exc:
            # Stored from the list instead (and fetched again later) rather than failing the
            # window for one odd record.
            return f"GET {path}: {exc}"
        return _replace(full, list_hash=list_hash)

    def fetch_details(self, items: Sequence[QuestionData]) -> list[QuestionData]:
        """Fetch the full records of many items concurrently, within the rate limit."""
        return self._map(self.fetch_detail, items)

    def fetch_questions(self, wanted: Sequence[tuple[str, str]]) -> list[QuestionData | str | None]:
        """fetch_question for many (source id, list hash) pairs, concurrently."""
        return self._map(lambda pair: self.fetch_question(*pair), wanted)

    def _map(self, fn: Callable[[_In], _Out], items: Sequence[_In]) -> list[_Out]:
        if not items:
            return []
        workers = min(self.config.max_concurrency, len(items))
        if workers == 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(fn, items))


def _read(resp: httpx.Response) -> Any:
    data = read_json(resp)
    # The API sometimes answers 200 with an error document inside (API.md 1.4).
    if isinstance(data, dict) and isinstance(data.get("status"), int) and data["status"] >= 400:
        raise Retry(f"error {data['status']} in a 200 response: {data.get('title') or ''}")
    return data


def _envelope(data: Any, path: str) -> tuple[list[Any], int]:
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise SourceError(f"GET {path}: the response is not a results page")
    total = data.get("totalResults")
    results: list[Any] = data["results"]
    return results, total if isinstance(total, int) else len(results)


# -- parsing ----------------------------------------------------------------------------------


def _date(value: Any) -> date | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _str(value: Any) -> str | None:
    """A text field as we keep it: control characters stripped; numbers as text; anything
    else (a list or object where text belongs) counts as absent."""
    if isinstance(value, str):
        return strip_controls(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _text(value: Any) -> str | None:
    """Like _str, but blank counts as absent."""
    text = _str(value)
    return text if text and text.strip() else None


def _line(value: Any) -> str | None:
    """A one-line field (heading, name, title): whitespace collapsed; blank is absent.
    (Real headings end in a stray CRLF now and then.)"""
    text = _str(value)
    return " ".join(text.split()) or None if text else None


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


_MEMBER_FIELDS = (
    "id",
    "name",
    "listAs",
    "party",
    "partyAbbreviation",
    "memberFrom",
    "thumbnailUrl",
)


def _member(obj: Any) -> MemberData | None:
    if not isinstance(obj, dict):
        return None
    fields = tuple(map(obj.get, _MEMBER_FIELDS))
    try:  # the same few hundred members come back in every page: clean each once
        return _member_of(fields)
    except TypeError:  # a list or an object in a field: not hashable, so not cached
        return _member_of.__wrapped__(fields)


@lru_cache(maxsize=4096)
def _member_of(fields: tuple[Any, ...]) -> MemberData | None:
    mid, name, list_as, party, abbreviation, member_from, thumbnail = fields
    if _key(mid) is None:
        return None
    return MemberData(
        id=mid,
        name=_line(name),
        list_as=_line(list_as),
        party=_line(party),
        party_abbreviation=_line(abbreviation),
        member_from=_line(member_from),
        thumbnail_url=_web_url(thumbnail),
    )


def _member_pair(
    value: dict[str, Any], id_key: str, obj_key: str, problems: list[str]
) -> tuple[int | None, MemberData | None]:
    """A member id and its expanded object, made consistent: when they name different
    members, the id field wins and the object is left out (and reported)."""
    mid, member = _key(value.get(id_key)), _member(value.get(obj_key))
    if member is not None and mid is not None and member.id != mid:
        problems.append(
            f"question {value.get('id')}: {obj_key}.id {member.id} differs from "
            f"{id_key} {mid}; stored the id without that member's details"
        )
        member = None
    return (member.id if member is not None and mid is None else mid), member


def _int(value: Any) -> int | None:
    """An integer id; None for anything else, or one SQLite cannot store (beyond 64 bits)."""
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return value
    return None


def _key(value: Any) -> int | None:
    """A member's or department's id, the key of its row: as `_int`, within the 32 bits of
    PostgreSQL's integer column (SQLite's hold 64), so that an archive stores the same items
    on both databases and `db copy` can move it."""
    found = _int(value)
    return found if found is not None and -(2**31) <= found < 2**31 else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _web_url(value: Any) -> str | None:
    """An http(s) URL, or None: a javascript: or data: link must never reach a page or mail."""
    url = _text(value)
    if url is None:
        return None
    url = url.strip()
    return url if url.lower().startswith(("https://", "http://")) and " " not in url else None


def _groups(value: dict[str, Any], tabled: date) -> tuple[GroupLink, ...]:
    links: dict[tuple[str, date], GroupLink] = {}
    for g in _list(value.get("groupedQuestionsDates")):
        uin = _line(g.get("questionUin")) if isinstance(g, dict) else None
        if uin:
            d = _date(g.get("dateTabled")) or tabled
            links[(uin, d)] = GroupLink(uin, d)
    dated = {uin for uin, _ in links}
    for raw in _list(value.get("groupedQuestions")):
        uin = _line(raw)
        if uin and uin not in dated:  # no date given: assume tabled the same day
            links[(uin, tabled)] = GroupLink(uin, tabled)
    return tuple(sorted(links.values(), key=lambda g: (g.date_tabled, g.uin)))


def _attachments(value: dict[str, Any]) -> tuple[AttachmentData, ...]:
    out = []
    for a in _list(value.get("attachments")):
        url = _web_url(a.get("url")) if isinstance(a, dict) else None
        if url:
            out.append(
                AttachmentData(
                    url=url,
                    title=_line(a.get("title")),
                    file_type=_line(a.get("fileType")),
                    file_size_bytes=_int(a.get("fileSizeBytes")),
                )
            )
    return tuple(out)


_HASH_FIELDS = (
    "uin", "house", "dateTabled", "dateForAnswer", "isNamedDay", "heading", "askingMemberId",
    "memberHasInterest", "answeringBodyId", "answeringBodyName", "questionText", "isWithdrawn",
    "groupedQuestions", "answerIsHolding", "answerIsCorrection", "answeringMemberId",
    "correctingMemberId", "dateAnswered", "answerText", "dateAnswerCorrected",
    "dateHoldingAnswer",
)  # fmt: skip
_TEXT_AT = _HASH_FIELDS.index("questionText")


def list_hash(value: dict[str, Any]) -> str:
    """Hash of the fields that matter, in their list form (text cut as the list cuts it)."""
    # repr of a tuple of JSON values is deterministic and about four times cheaper than a
    # sorted json.dumps of the same fields; the hash is only ever compared with itself.
    view = [value.get(k) for k in _HASH_FIELDS]
    text = view[_TEXT_AT]
    if text is None or isinstance(text, str):  # anything else is hashed as it is
        view[_TEXT_AT] = (text or "")[:LIST_TEXT_LIMIT]
    for key in ("askingMember", "answeringMember", "correctingMember"):
        m = value.get(key)
        view.append(
            (m.get("name"), m.get("party"), m.get("memberFrom")) if isinstance(m, dict) else None
        )
    raw = repr(view).encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).hexdigest()[:32]


def parse_question(value: dict[str, Any], *, from_list: bool) -> QuestionData:
    """Normalise one API item. Raises SourceError when a required field is missing; any
    other field may be absent, empty or of the wrong type and is then left out."""
    qid = _int(value.get("id"))
    tabled = _date(value.get("dateTabled"))
    house = _line(value.get("house"))
    if qid is None or tabled is None or house is None:
        missing = [k for k, v in (("id", qid), ("dateTabled", tabled), ("house", house)) if not v]
        raise SourceError(f"question {value.get('id')}: missing or invalid {', '.join(missing)}")
    raw_text = value.get("questionText")
    text = _str(raw_text) or ""
    answer = _text(value.get("answerText"))
    problems: list[str] = []
    asking_id, asking = _member_pair(value, "askingMemberId", "askingMember", problems)
    answering_id, answering = _member_pair(value, "answeringMemberId", "answeringMember", problems)
    correcting_id, correcting = _member_pair(
        value, "correctingMemberId", "correctingMember", problems
    )
    return QuestionData(
        source=SOURCE,
        source_id=str(qid),
        uin=_line(value.get("uin")),
        house=house,
        date_tabled=tabled,
        date_for_answer=_date(value.get("dateForAnswer")),
        is_named_day=bool(_flag(value.get("isNamedDay"))),
        heading=_line(value.get("heading")),
        asking_member_id=asking_id,
        asking_member=asking,
        member_has_interest=bool(_flag(value.get("memberHasInterest"))),
        answering_body_id=_key(value.get("answeringBodyId")),
        answering_body_name=_line(value.get("answeringBodyName")),
        question_text=text,
        # The list cuts at exactly 255 characters without a marker: shorter is complete.
        question_text_full=not from_list
        or not isinstance(raw_text, str)
        or len(raw_text) < LIST_TEXT_LIMIT,
        is_withdrawn=bool(_flag(value.get("isWithdrawn"))),
        answer_is_holding=_flag(value.get("answerIsHolding")),
        answer_is_correction=_flag(value.get("answerIsCorrection")),
        answering_member_id=answering_id,
        answering_member=answering,
        correcting_member_id=correcting_id,
        correcting_member=correcting,
        date_answered=_date(value.get("dateAnswered")),
        date_answer_corrected=_date(value.get("dateAnswerCorrected")),
        date_holding_answer=_date(value.get("dateHoldingAnswer")),
        answer_raw=answer,
        answer_full=not from_list,
        original_answer_raw=_text(value.get("originalAnswerText")),
        attachments=() if from_list else _attachments(value),
        group=_groups(value, tabled),
        list_hash=list_hash(value),
        problems=tuple(problems),
    )


_STATEMENT_HASH_FIELDS = (
    "id", "uin", "dateMade", "house", "title", "memberId", "memberRole", "answeringBodyId",
    "answeringBodyName", "hasAttachments", "noticeNumber",
)  # fmt: skip


def parse_statement(value: dict[str, Any], *, from_list: bool) -> QuestionData:
    """One written ministerial statement, as an item of its own kind: its title is the
    heading, its text the item's text, the day it was made its date, and the minister who
    made it (with the department) its answerer. Raises SourceError without id, date or
    House; anything else may be missing."""
    sid = _int(value.get("id"))
    made = _date(value.get("dateMade"))
    house = _line(value.get("house"))
    if sid is None or made is None or house is None:
        missing = [k for k, v in (("id", sid), ("dateMade", made), ("house", house)) if not v]
        raise SourceError(f"statement {value.get('id')}: missing or invalid {', '.join(missing)}")
    raw = _text(value.get("text")) or ""
    # The detail's text is HTML; the list's is plain, cut at 255 characters plus "...".
    text = html_to_text(sanitize_html(raw)) if looks_like_html(raw) else raw
    problems: list[str] = []
    member_id, member = _member_pair(value, "memberId", "member", problems)
    view = [value.get(k) for k in _STATEMENT_HASH_FIELDS] + [(raw or "")[:LIST_TEXT_LIMIT]]
    digest = hashlib.sha256(repr(view).encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return QuestionData(
        source=STATEMENTS_SOURCE,
        source_id=str(sid),
        kind="statement",
        uin=_line(value.get("uin")),
        house=house,
        date_tabled=made,
        heading=_line(value.get("title")),
        question_text=text,
        question_text_full=not from_list or len(raw) < LIST_TEXT_LIMIT,
        answering_member_id=member_id,
        answering_member=member,
        answering_body_id=_key(value.get("answeringBodyId")),
        answering_body_name=_line(value.get("answeringBodyName")),
        attachments=() if from_list else _attachments(value),
        list_hash=digest,
        problems=tuple(problems),
    )


def _replace(item: QuestionData, **changes: Any) -> QuestionData:
    from dataclasses import replace

    return replace(item, **changes)
