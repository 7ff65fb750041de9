"""Senedd Cymru / Welsh Parliament written questions (record.senedd.wales).

There is no data API (docs SOURCES_WAVE2.md §3): each question has a page,
``/WrittenQuestion/<n>``, whose reference is ``WQ<n>``, and ids are dense and sequential
(~60 a week). A poll walks upward from the highest id stored until ``stop_after_misses`` ids
in a row are missing (a 404, or a page with no "Tabled on" line: the site shell a missing id
is said to serve), then reads up to ``recheck_per_poll`` unanswered questions again, in
rotation, because answers often come weeks after the due date. Ids are not dates, so
``poll --since`` changes nothing here; to load older questions, start an empty archive with
a lower ``start_id``.

Verified against real page text (Order Papers, ``/OrderPaper/WrittenQuestions/DD-MM-YYYY``):
an item is ``WQ91968 (e) Tabled on 13/03/2024``, the question, ``Answered by <minister> |
Answered on dd/mm/yyyy`` and the answer, which may be missing. Not verified (third-party
notes only): that a question's own page shows the same block after the member's name and
constituency on two lines, and ``To be answered by: <minister>`` while unanswered. So the
parser reads the page as rendered text and keys on those labels, never on the markup.

A page that cannot be read is skipped with its reason (and read again later); a poll in
which no page could be read though known questions' pages were asked for means the site is
answering something else, and fails with one line: nothing stored is touched.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import json
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import httpx
from bs4 import BeautifulSoup
from bs4.element import NavigableString

from pqwatch.config import SeneddConfig
from pqwatch.errors import SourceError
from pqwatch.sources.base import Batch, Known
from pqwatch.sources.http import OverHTTP, Retry
from pqwatch.text import linked_paragraphs, looks_like_html, strip_controls
from pqwatch.types import MemberData, QuestionData, name_id, official_url

SOURCE, PARLIAMENT, HOUSE = "senedd", "wales", "Senedd"
PAGE = "/WrittenQuestion/{}"
BATCH_PAGES = 50  # pages read per stored batch
MAX_UNREADABLE = 100  # ids of pages that could not be read, kept to try again
NO_ANSWER_TEXT = "The Senedd's page gives an answer date but no answer text yet."

_DATE_NUM = re.compile(r"\b([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})\b")
_DATE_WORDS = re.compile(r"\b([0-9]{1,2})(?:st|nd|rd|th)?\s+([A-Za-z]{3,9})\.?,?\s+([0-9]{4})\b")
_MONTHS = {name[:3].lower(): i for i, name in enumerate(calendar.month_name) if name}
# An item's header: the reference, (e)/(w) for the language it was tabled in, the day.
_HEADER = re.compile(
    r"\bWQ ?(?P<num>[0-9]{1,9})\b\s*(?:\((?P<lang>[ewEW])\)\s*)?Tabled on\b[ :]*(?P<rest>[^\n]*)"
)
# Labels start a line or follow a "|" ("Answered by X | Answered on 15/03/2024").
_BY = re.compile(r"(?:^|\|) *(?P<to_be>to be )?answered by\b *:?\s*(?P<who>[^|\n]*)", re.I | re.M)
_ON = re.compile(r"(?:^|\|) *answered on\b *:?\s*(?P<when>[^|\n]*)", re.I | re.M)
_FOR_ANSWER = re.compile(r"\bfor answer on\b *:?\s*([^|\n]*)", re.I)
# A minister's title standing alone on a line: an Order Paper's portfolio heading.
_PORTFOLIO = re.compile(
    r"(?:the )?(?:deputy )?(?:first minister|minister|cabinet secretary|counsel general"
    r"|trefnydd|llywydd|senedd commission)(?: (?:for|and|of) [^.?!:|]{1,150})?",
    re.I,
)
_NAME_SEAT = re.compile(r"(?P<name>[^()]+?) *\((?P<seat>[^()]+)\)")
_NOT_A_NAME = re.compile(
    r"[0-9|:;?!@/<>=_#*]|\.$"
    r"|\b(?:question|questions|senedd|record|parliament|search|menu|home|cymraeg|english"
    r"|tabled|answered|contact|cookies)\b",
    re.I,
)
_REFERENCE = re.compile(r"\bWQ([0-9]{1,9})\b")
_DROP = ["script", "style", "noscript", "template", "head", "nav", "footer", "svg", "iframe"]
_BLOCKS = ["address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt",
           "figcaption", "figure", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr",
           "li", "main", "ol", "p", "pre", "section", "table", "ul"]  # fmt: skip


def _error(message: str) -> SourceError:
    return SourceError(" ".join(message.split()))  # always one line, whatever the page held


def _clean(text: str) -> str:
    return " ".join(text.split()).strip(" :|")


def parse_date(text: str) -> date | None:
    """The first UK date in the text: 16/08/2024, 6/8/2024, 16 August 2024, Fri 16 Aug 2024."""
    day = month = year = 0
    if m := _DATE_NUM.search(text):
        day, month, year = int(m[1]), int(m[2]), int(m[3])
    elif m := _DATE_WORDS.search(text):
        day, month, year = int(m[1]), _MONTHS.get(m[2][:3].lower(), 0), int(m[3])
    try:
        return date(year, month, day)
    except ValueError:
        return None


def page_text(page: str) -> list[str]:
    """A page as the lines a reader sees: HTML rendered (block elements start lines, inline
    ones such as links do not, table rows become "cell | cell"), entities decoded, runs of
    spaces collapsed, empty lines dropped. Plain text (the recordings) is taken as it is."""
    if looks_like_html(page):
        with warnings.catch_warnings():  # an XML-looking or URL-looking page is still read
            warnings.simplefilter("ignore")
            soup = BeautifulSoup(page, "html.parser")
        for tag in soup(_DROP):
            tag.decompose()
        for node in list(soup.find_all(string=True)):
            if type(node) is NavigableString:  # not comments: those stay out of the text
                node.replace_with(re.sub(r"\s+", " ", node))
        for row in soup("tr"):
            cells = [_clean(c.get_text(" ")) for c in row(["td", "th"])]
            row.replace_with("\n" + " | ".join(cells) + "\n")
        for tag in soup(_BLOCKS):
            tag.insert_before("\n")
            tag.insert_after("\n")
        text = soup.get_text()
    else:
        text = html.unescape(page)
    lines = [" ".join(line.split()) for line in strip_controls(text).split("\n")]
    lines = [line for line in lines if line]
    # The site footer, when it is not in a <footer> (the third-party parser stops here too).
    end = next((i for i, ln in enumerate(lines) if ln.lower().startswith("contact us")), None)
    return lines[:end]


@dataclass(frozen=True)
class _Item:
    num: int
    lang: str
    tabled: str  # the rest of the header line, where the tabling date is
    body: str  # question, answer labels, answer
    before: tuple[str, ...]  # the lines before the first item (a page's own header)
    portfolio: str | None  # the Order Paper heading the item is listed under
    for_answer: date | None


def _items(lines: list[str]) -> list[_Item]:
    """The items on a page, in order; a portfolio heading ending one item's text is taken
    off it and given to the next."""
    text = "\n".join(lines)
    heads = list(_HEADER.finditer(text))
    if not heads:
        return []
    before = [ln for ln in text[: heads[0].start()].split("\n") if ln]
    due = _FOR_ANSWER.search(text[: heads[0].start()])
    for_answer = parse_date(due[1]) if due else None
    portfolio = before[-1] if before and _PORTFOLIO.fullmatch(before[-1]) else None
    out = []
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        body = [ln for ln in text[head.end() : end].split("\n") if ln]
        nxt = None
        while body and _PORTFOLIO.fullmatch(body[-1]):
            nxt = body.pop()
        lang = (head["lang"] or "").lower()
        out.append(_Item(int(head["num"]), lang, head["rest"], "\n".join(body),
                         tuple(before) if i == 0 else (), portfolio, for_answer))  # fmt: skip
        portfolio = nxt or portfolio
    return out


def _asker(lines: tuple[str, ...]) -> MemberData | None:
    """The member's name and constituency from the two lines before the reference (or one
    "Name (Constituency)" line); None when they do not look like that."""

    def looks(text: str, words: int) -> bool:
        n = len(text.split())
        return (
            words <= n <= 6
            and len(text) <= 60
            and not _NOT_A_NAME.search(text)
            and not (_PORTFOLIO.fullmatch(text))
        )

    tail = list(lines[-2:])
    one = _NAME_SEAT.fullmatch(tail[-1]) if tail else None
    if one and looks(one["name"], 2) and looks(one["seat"], 1):
        name, seat = one["name"], one["seat"]
    elif len(tail) == 2 and looks(tail[0], 2) and looks(tail[1], 1):
        name, seat = tail
    else:
        return None
    return MemberData(id=name_id(PARLIAMENT, name), name=name, member_from=seat)


def answer_html(text: str) -> str:
    """Plain answer text as HTML paragraphs (one a line), web addresses and references to
    other questions (WQ87719) linked."""
    return linked_paragraphs(
        text, _REFERENCE, lambda m: official_url(PARLIAMENT, "question", "", None, m[1])
    )


def _question(item: _Item, asker: MemberData | None) -> QuestionData:
    """One item as a record. Raises SourceError when it cannot be dated; anything else that
    is missing or unreadable is left out (and said, in the record's problems)."""
    ref = f"WQ{item.num}"
    tabled = parse_date(item.tabled)
    if tabled is None:
        raise _error(f"{ref}: no readable tabling date ({item.tabled[:40]!r})")
    body = item.body
    by, on = list(_BY.finditer(body)), list(_ON.finditer(body))
    done = [m for m in by if not m["to_be"]]
    pending = [m for m in by if m["to_be"]]
    marks = by + on
    question = body[: min(m.start() for m in marks)] if marks else body
    # The answer starts on the line after the last label (what follows it there is labels).
    after = body[max(m.end() for m in marks) :].partition("\n")[2] if marks else ""
    who = _clean((done or pending)[0]["who"]) if by else ""
    minister = re.sub(r"(?i)^the ", "", who or item.portfolio or "") or None
    problems = []
    answered = parse_date(on[0]["when"]) if on else None
    if on and answered is None:
        problems.append(f"{SOURCE} {ref}: answer date {_clean(on[0]['when'])[:40]!r} "
                        "unreadable; stored as unanswered")  # fmt: skip
    answer = "" if pending and not answered else after.strip()
    if answer and answered is None and not on:
        problems.append(f"{SOURCE} {ref}: answer text without an answer date; stored as "
                        "unanswered")  # fmt: skip
    answer_raw = None
    if answered is not None:
        # An answer date with no text (seen on real pages): kept as a holding answer, so the
        # question stays open, is read again, and its text arrives as the answer.
        answer_raw = answer_html(answer or NO_ANSWER_TEXT)
    minister_data = (
        MemberData(id=name_id(PARLIAMENT, minister), name=minister) if minister else None
    )
    question_text = question.strip()
    blob = [ref, item.lang, tabled, item.for_answer, asker, minister, question_text, answered,
            answer]  # fmt: skip
    return QuestionData(
        source=SOURCE,
        source_id=str(item.num),
        parliament=PARLIAMENT,
        house=HOUSE,
        uin=ref,
        date_tabled=tabled,
        date_for_answer=item.for_answer,
        # Senedd questions have no title: who they are to stands in for one.
        heading=f"Question to the {minister}" if minister else "Written question",
        question_text=question_text or "(no question text)",
        question_text_full=True,
        list_hash=hashlib.sha256(json.dumps(blob, default=str).encode()).hexdigest()[:32],
        asking_member_id=asker.id if asker else None,
        asking_member=asker,
        # The minister's title is the portfolio, so dept:economy finds "Minister for Economy".
        answering_body_id=minister_data.id if minister_data else None,
        answering_body_name=minister,
        answering_member_id=minister_data.id if minister_data and answer_raw else None,
        answering_member=minister_data if answer_raw else None,
        date_answered=answered if answer_raw else None,
        answer_raw=answer_raw,
        answer_is_holding=True if answered is not None and not answer else None,
        answer_full=True,
        source_flags_corrections=False,
        problems=tuple(problems),
    )


def parse_order_paper(page: str) -> tuple[list[QuestionData], list[str]]:
    """Every item of an Order Paper (or any page of items), and why any was left out.
    Order Papers name no asker."""
    items, skipped = [], []
    for item in _items(page_text(page)):
        try:
            items.append(_question(item, None))
        except SourceError as exc:
            skipped.append(f"{SOURCE} {exc}")
    return items, skipped


def parse_question_page(page: str, page_id: int) -> QuestionData | None:
    """The question on its own page; None when the page has no "Tabled on" line (the shell a
    missing id gets). Raises SourceError when the page has one but cannot be read."""
    lines = page_text(page)
    if not any("Tabled on" in ln for ln in lines):
        return None
    items = _items(lines)
    mine = [it for it in items if it.num == page_id]
    if not mine:
        shown = ", ".join(f"WQ{it.num}" for it in items[:3])
        raise _error(
            f"WQ{page_id}: the page shows {shown} instead" if shown
            else f"WQ{page_id}: 'Tabled on' but no 'WQ{page_id} ... Tabled on <date>' header"
        )  # fmt: skip
    return _question(mine[0], _asker(mine[0].before))


def _html_body(resp: httpx.Response) -> str:
    kind = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
    text = resp.text
    if (kind and "html" not in kind) or not looks_like_html(text):
        raise Retry(f"the response was not an HTML page ({kind or 'no content type'})")
    return text


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class SeneddSource(OverHTTP[SeneddConfig]):
    name = SOURCE

    accept = "text/html"  # question pages, not an API

    def _read(self, page_id: int) -> QuestionData | str | None:
        """The question, None for a missing page, or why its page could not be read. A
        response that is not an HTML page at all raises SourceError (after retries)."""
        page = self._net.get(PAGE.format(page_id), read=_html_body, allow_404=True)
        if page is None:
            return None
        try:
            return parse_question_page(page, page_id)
        except SourceError as exc:
            return f"{SOURCE} {exc}"

    def poll(
        self, state: dict[str, Any], known: Known, now: datetime, *, since: date | None = None
    ) -> Iterator[Batch]:
        state = json.loads(json.dumps(state))  # a copy: the caller's is kept as it was
        highest = known.highest_id(SOURCE)
        starts = [_int(state.get("next_id")), highest + 1 if highest is not None else None]
        start = max((s for s in starts if s is not None), default=self.config.start_id)
        kept = state.get("unreadable")
        unreadable = {i for i in kept if _int(i) is not None} if isinstance(kept, list) else set()
        items: list[QuestionData] = []
        skipped: list[str] = []
        read = 0

        def batch() -> Batch:
            if unreadable:
                state["unreadable"] = sorted(unreadable)[-MAX_UNREADABLE:]
            else:
                state.pop("unreadable", None)
            out = Batch(tuple(items), json.loads(json.dumps(state)), tuple(skipped))
            items.clear()
            skipped.clear()
            return out

        # 1. New questions: walk up until enough ids in a row are missing or unreadable
        # (so a site that garbles every page cannot keep the walk going). The cursor moves
        # only past questions read; a page seen unreadable before is known to exist and does
        # not count, so one broken page before a gap cannot stop the walk for good.
        page_id, misses = start, 0
        while misses < self.config.stop_after_misses:
            got = self._read(page_id)
            if isinstance(got, QuestionData):
                items.append(got)
                read, misses = read + 1, 0
                state["next_id"] = page_id + 1
                unreadable.discard(page_id)
            elif got is None or page_id not in unreadable:
                misses += 1
            if isinstance(got, str):
                skipped.append(got)
                unreadable.add(page_id)
            page_id += 1
            if (page_id - start) % BATCH_PAGES == 0:
                yield batch()
        walked = range(start, page_id)

        # 2. Open questions (and pages that could not be read) again, in rotation, from
        # where the last poll stopped. When nothing else is read, the newest stored
        # question is read instead: a site serving junk must not look like a quiet week.
        ids = sorted({int(o.source_id) for o in known.open_items(SOURCE)
                      if o.source_id.isdigit()} | unreadable)  # fmt: skip
        ids = [i for i in ids if i not in walked]
        after = _int(state.get("recheck_after")) or 0
        chosen = ([i for i in ids if i > after] + [i for i in ids if i <= after])[
            : self.config.recheck_per_poll
        ]
        if chosen:
            state["recheck_after"] = chosen[-1]
        elif read == 0 and highest is not None and highest not in walked:
            chosen = [highest]
        failed: list[str] = []
        for n, known_id in enumerate(chosen, 1):
            got = self._read(known_id)
            if isinstance(got, QuestionData):
                items.append(got)
                read += 1
                unreadable.discard(known_id)
            else:
                failed.append(got or f"{SOURCE} WQ{known_id}: its page shows no question")
                if got is None:
                    unreadable.discard(known_id)  # gone: open questions are asked for anyway
            if n % BATCH_PAGES == 0:
                yield batch()
        if failed and len(failed) == len(chosen) and read == 0:
            first = failed[0].removeprefix(f"{SOURCE} ")
            raise _error(f"no stored question's page could be read ({len(chosen)} tried; "
                         f"{first}): the site answers something else")  # fmt: skip
        skipped.extend(failed)
        last = batch()
        if highest is None and read == 0:
            note = (f"{SOURCE}: no question found at WQ{start}-WQ{page_id - 1}; is "
                    "[sources.senedd] start_id right?")  # fmt: skip
            last = Batch(last.items, last.state, last.skipped, (note,))
        yield last
