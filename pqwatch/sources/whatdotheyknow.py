"""FOI requests and their responses on WhatDoTheyKnow (Alaveteli; SOURCES_WAVE2.md §1).

Feeds (``/feed/search/<query>.json``, ``/feed/body/<url_name>.json``,
``/feed/user/<url_name>.json``) list events 25 a page, newest first, with no "since": page 1
is read conditionally and later pages only while every event on a page is unknown. A request
with a new event is read whole from ``/request/<url_title>.json`` (its events, no message
text), then its page ``/request/<url_title>`` once for the request text and each response's
text, found by the element ids Alaveteli gives them: ``outgoing-<id>`` and ``incoming-<id>``
(alaveteli app/helpers/link_to_helper.rb ``dom_id``), body in ``.correspondence_text``. One
record per request, all its responses newest first. A feed that fails is reported by name
once the others ran; a request gone (404) is skipped with a line; a message missing from its
page falls back to the feed's snippet, with a problem line.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning
from bs4.element import Comment, NavigableString, Tag

from pqwatch.config import WhatDoTheyKnowConfig
from pqwatch.errors import SourceError
from pqwatch.sources.base import Batch, Known
from pqwatch.sources.http import OverHTTP, Retry
from pqwatch.text import linked_paragraphs, strip_controls
from pqwatch.types import FOI_WORKING_DAYS, MemberData, QuestionData, add_working_days, name_id

SOURCE = "whatdotheyknow"
PARLIAMENT = "foi"
HOUSE = "WhatDoTheyKnow"
PAGE_SIZE = 25  # Alaveteli's perform_search(..., per_page = 25) for every feed
UK = ZoneInfo("Europe/London")

# "2010/10/04 11:11:57 +0000" (2010-13) and ISO 8601 ("2025-08-29T20:29:16.797+01:00", "...Z").
_TIME = re.compile(
    r"\s*(\d{4})[-/](\d{1,2})[-/](\d{1,2})"
    r"(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|z|UTC|[+-]\d{2}(?::?\d{2})?)?\s*",
    re.ASCII,
)
_MESSAGE_ID = re.compile(r"(incoming|outgoing)(?:-|_message_)(\d+)")
_EPOCH = datetime(1, 1, 1, tzinfo=UTC)
_BLOCKS = ("p", "div", "li", "tr", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6")


def parse_time(value: Any) -> datetime | None:
    """An Alaveteli timestamp as an aware datetime (a time without an offset is London's);
    None when it is not one."""
    m = _TIME.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        return None
    year, month, day, hour, minute, second, frac, zone = m.groups()
    try:
        tz: Any = UK
        if zone in ("Z", "z", "UTC"):
            tz = UTC
        elif zone:
            digits = zone[1:].replace(":", "").ljust(4, "0")
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            tz = timezone(-offset if zone[0] == "-" else offset)
        micro = int((frac or "0")[:6].ljust(6, "0"))
        when = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                        int(second or 0), micro, tzinfo=tz)  # fmt: skip
        return when.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _uk_day(when: datetime | None) -> date | None:
    try:
        return when.astimezone(UK).date() if when else None
    except (ValueError, OverflowError):  # a moment at the very edge of the calendar
        return None


def uk_date(value: Any) -> date | None:
    """The calendar day in the UK of an Alaveteli timestamp (None when unreadable)."""
    return _uk_day(parse_time(value))


def _text(value: Any) -> str:
    """JSON text as shown: entities decoded, control characters dropped."""
    return strip_controls(html.unescape(value)).strip() if isinstance(value, str) else ""


def _slug(value: Any) -> str:
    """A url_title or url_name, on one line (it names the request in reports)."""
    return " ".join(_text(value).split())


def _int(value: Any) -> int | None:
    """An id (a whole number, 0 or more; given as a number or a string of digits)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def _words(url_name: str) -> str:
    """ "wandsworth_borough_council" -> "Wandsworth Borough Council" (no name given)."""
    return " ".join(w[:1].upper() + w[1:] for w in re.split(r"[_\-\s]+", url_name) if w)


def _snippet(value: Any) -> str:
    """A feed's snippet as text: it is escaped HTML with <span class="highlight"> marks."""
    if not isinstance(value, str):
        return ""
    return strip_controls(html.unescape(re.sub(r"<[^>]*>", "", value))).strip()


def _plain(element: Tag) -> str:
    """An element's text as a browser shows it: whitespace collapsed, <br> a line break,
    blocks (simple_format's <p>) separated by a blank line."""
    for gone in element.find_all(["script", "style", "template"]):
        gone.decompose()
    for node in element.find_all(string=True):
        if isinstance(node, Comment) or type(node) is not NavigableString:
            node.extract()  # comments, doctypes and the like are not shown
        else:
            node.replace_with(re.sub(r"\s+", " ", str(node)))
    for br in element.find_all("br"):
        br.replace_with("\n")
    for block in element.find_all(_BLOCKS):
        block.insert_before("\n\n")
        block.insert_after("\n\n")
    lines = [line.strip() for line in element.get_text().split("\n")]
    return strip_controls(re.sub(r"\n{3,}", "\n\n", "\n".join(lines))).strip()


def messages(page: str) -> dict[str, str]:
    """Message texts on a request page by element id ("incoming-<id>", "outgoing-<id>").
    A message hidden or without text (attachments only) is left out."""
    if "<" not in page:
        return {}
    with warnings.catch_warnings():  # a page that looks like a file name is still read
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        soup = BeautifulSoup(page, "html.parser")
    found: dict[str, str] = {}
    for div in soup.find_all(id=_MESSAGE_ID):
        m = _MESSAGE_ID.fullmatch(str(div.get("id")))
        body = div.find(class_="correspondence_text") if m else None
        if m is None or not isinstance(body, Tag):
            continue
        # Attachment lists, "show quoted sections" links and prominence notices are not text.
        for extra in body.find_all(class_=("attachments", "unfold_link", "hidden_attachment")):
            extra.decompose()
        text = _plain(body)
        if text:
            found.setdefault(f"{m.group(1)}-{m.group(2)}", text)
    return found


def answer_html(text: str) -> str:
    """A response's text as escaped paragraphs (a letter's single line breaks kept as
    <br>), web addresses linked."""
    return linked_paragraphs(text, letter=True)


def _party(value: Any, hint: Any) -> tuple[str | None, str | None]:
    """(url_name, name) of a requester or authority: an object, or a plain url_name (2010
    form), with the names from a feed event's deeper copy when the request lacks them."""
    url_name = name = None
    if isinstance(value, dict):
        url_name, name = _slug(value.get("url_name")) or None, _text(value.get("name")) or None
    elif isinstance(value, str):
        url_name = _slug(value) or None
    if isinstance(hint, dict) and url_name in (None, _slug(hint.get("url_name"))):
        url_name = url_name or _slug(hint.get("url_name")) or None
        name = name or _text(hint.get("name")) or None
    return url_name, name


Events = list[tuple[int, str, dict[str, Any]]]  # (id, event_type, event), oldest first


def _responses(
    events: Events, texts: dict[str, str], snippets: dict[int, str], ref: str, problems: list[str]
) -> tuple[str | None, date | None]:
    """Every response as HTML, newest first, and the UK day of the newest."""
    # One response per incoming message: an admin's edit_incoming carries its id too.
    found: dict[str, tuple[datetime | None, int, str]] = {}
    for eid, kind, e in events:
        incoming = _int(e.get("incoming_message_id"))
        if kind != "response" and incoming is None:
            continue
        key = f"incoming-{incoming}" if incoming is not None else f"event-{eid}"
        if key in found and kind != "response":
            continue
        text = texts.get(key) or (snippets.get(incoming, "") if incoming is not None else "")
        if incoming is not None and key not in texts and key not in found:
            how = "the feed's snippet stands in" if text else "shown without its text"
            problems.append(
                f"{SOURCE} request {ref}: response (incoming message {incoming}) "
                f"not on its page; {how}"
            )
        found[key] = (parse_time(e.get("created_at")), eid, text)
    parts, newest = [], None
    for when, _, text in sorted(found.values(), key=lambda r: (r[0] or _EPOCH, r[1]), reverse=True):
        day = _uk_day(when)
        newest = newest or day
        # A bold paragraph, not a heading: archived HTML keeps only the tags text.ALLOWED_TAGS has.
        head = f"Response of {day.day} {day:%B %Y}" if day else "Response"
        parts.append(f"<p><strong>{head}</strong></p>")
        parts.append(answer_html(text))
    return ("".join(parts) if newest else None), newest


def _history(events: Events) -> list[dict[str, Any]]:
    out = []
    for eid, kind, e in events:
        day = uk_date(e.get("created_at"))
        state = _text(e.get("described_state")) or _text(e.get("calculated_state")) or None
        out.append({"id": eid, "type": kind, "date": day.isoformat() if day else None,
                    "state": state, "status": _text(e.get("display_status")) or None})  # fmt: skip
    return out


def parse_request(
    data: Any,
    url_title: str,
    texts: dict[str, str] | None = None,
    snippets: dict[int, str] | None = None,
    hint: dict[str, Any] | None = None,
) -> tuple[QuestionData, list[str]]:
    """A request's JSON (json_for_api(true)) as a record, with the problems met. `texts` are
    the page's message texts, `snippets` the feeds' by incoming message id, `hint` a feed
    event of this request. Raises SourceError when it has no id or no date."""
    texts, snippets = texts or {}, snippets or {}
    hint = hint if isinstance(hint, dict) else {}
    if not isinstance(data, dict):
        raise SourceError(f"request {url_title}: expected a JSON object")
    rid = _int(data.get("id"))
    if rid is None:
        raise SourceError(f"request {url_title}: no id")
    ref = _slug(data.get("url_title")) or url_title
    problems: list[str] = []
    events: Events = []
    raw = data.get("info_request_events")
    for e in raw if isinstance(raw, list) else ():
        eid = _int(e.get("id")) if isinstance(e, dict) else None
        if eid is None:
            problems.append(f"{SOURCE} request {ref}: an event without an id was left out")
        else:
            events.append((eid, _text(e.get("event_type")), e))
    events.sort(key=lambda event: event[0])
    sent = next((e for _, kind, e in events if kind == "sent"), None)
    tabled = (uk_date(sent.get("created_at")) if sent else None) or uk_date(data.get("created_at"))
    if tabled is None:
        raise SourceError(f"request {ref}: no date it was sent")

    # The request text: the first outgoing message (the one sent, else any).
    outgoing = [_int(e.get("outgoing_message_id")) for _, k, e in events if k == "sent"]
    outgoing += [_int(e.get("outgoing_message_id")) for _, _, e in events]
    first_out = next((o for o in outgoing if o is not None), None)
    question = texts.get(f"outgoing-{first_out}", "")
    if first_out is not None and not question:
        problems.append(f"{SOURCE} request {ref}: request text (outgoing message {first_out}) "
                        "not on its page; the title stands in")  # fmt: skip
    info = hint.get("info_request")
    title = _text(data.get("title")) or (_text(info.get("title")) if isinstance(info, dict) else "")
    answer, answered = _responses(events, texts, snippets, ref, problems)
    body_url, body_name = _party(data.get("public_body"), hint.get("public_body"))
    body_name = body_name or (_words(body_url) if body_url else None)
    user = data.get("user")
    if not isinstance(user, dict | str):  # an external request: a name, no account
        user = {"name": data.get("user_name")}
    user_url, user_name = _party(user, hint.get("user"))
    user_name = user_name or (_words(user_url) if user_url else None)
    asker = MemberData(id=name_id(PARLIAMENT, user_url or user_name), name=user_name) \
        if user_name else None  # fmt: skip
    state = _text(data.get("described_state")) or None
    details = json.dumps(
        {
            "law_used": _text(data.get("law_used")) or None,
            "authority_url_name": body_url,
            "requester_url_name": user_url,
            "events": _history(events),
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    question_text = question or title or ref
    # Everything that can change, so that an unchanged request writes nothing.
    blob = [state, title, question_text, answer, details, body_name, user_name]
    return QuestionData(
        source=SOURCE,
        source_id=str(rid),
        parliament=PARLIAMENT,
        kind="foi",
        house=HOUSE,
        uin=ref,
        date_tabled=tabled,
        date_for_answer=add_working_days(tabled, FOI_WORKING_DAYS),
        heading=title or ref,
        question_text=question_text,
        question_text_full=True,
        list_hash=hashlib.sha256(json.dumps(blob).encode()).hexdigest()[:32],
        asking_member_id=asker.id if asker else None,
        asking_member=asker,
        answering_body_id=name_id(PARLIAMENT, body_url or body_name) if body_name else None,
        answering_body_name=body_name,
        date_answered=answered,
        answer_raw=answer,
        answer_full=True,
        source_flags_corrections=False,
        state=state,
        details=details,
    ), problems


def _reason(exc: SourceError, path: str) -> str:
    return str(exc).removeprefix(f"GET {path}: ")


def _read_events(resp: httpx.Response) -> tuple[list[Any] | None, dict[str, str]]:
    """A feed page's events (None for 304) and its validators."""
    validators = {"etag": resp.headers.get("ETag", ""),
                  "last_modified": resp.headers.get("Last-Modified", "")}  # fmt: skip
    if resp.status_code == 304:
        return None, validators
    try:
        data = json.loads(resp.content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        kind = resp.headers.get("Content-Type", "").split(";")[0] or "no content type"
        raise Retry(f"expected JSON, got {kind}") from None  # a body cut short: try again
    if not isinstance(data, list):
        raise SourceError(f"expected a JSON array of events, got {type(data).__name__}")
    return data, validators


def _has_messages(data: Any) -> bool:
    """Whether a request has messages to read from its page (its JSON holds no text)."""
    raw = data.get("info_request_events") if isinstance(data, dict) else None
    return any(
        isinstance(e, dict) and (e.get("incoming_message_id") or e.get("outgoing_message_id"))
        for e in (raw if isinstance(raw, list) else ())
    )


class WhatDoTheyKnowSource(OverHTTP[WhatDoTheyKnowConfig]):
    name = SOURCE

    def __init__(
        self,
        config: WhatDoTheyKnowConfig,
        *,
        searches: list[str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(config, transport=transport)
        self.searches = list(config.searches if searches is None else searches)

    def _feeds(self) -> list[tuple[str, str, str]]:
        """(state key, label, path) of every feed followed."""
        feeds = [("search", q, f"/feed/search/{quote(q, safe='')}.json") for q in self.searches]
        feeds += [("body", b, f"/feed/body/{quote(b, safe='')}.json") for b in self.config.bodies]
        feeds += [("user", u, f"/feed/user/{quote(u, safe='')}.json") for u in self.config.users]
        return [(f"{kind}:{name}", f'{kind} "{name}"', path) for kind, name, path in feeds]

    def poll(
        self, state: dict[str, Any], known: Known, now: datetime, *, since: date | None = None
    ) -> Iterator[Batch]:
        state = json.loads(json.dumps(state))  # a copy: the caller's is kept as it was
        last_feeds = state.get("feeds") or {}
        feeds = {k: last_feeds[k] for k, _, _ in self._feeds() if k in last_feeds}
        state["feeds"] = feeds  # feeds no longer followed are forgotten
        # Requests followed directly: the digest of each one's JSON when last read.
        last_read = state.get("requests") or {}
        followed = {r: last_read[r] for r in self.config.requests if r in last_read}
        state["requests"] = followed
        failures: list[str] = []
        seen: set[int] = set()  # event ids, across pages and feeds
        done: set[str] = set()  # requests handled this poll
        snippets: dict[int, str] = {}
        for key, label, path in self._feeds():
            try:
                new, fresh = self._read_feed(path, feeds.get(key, {}), since, snippets)
            except SourceError as exc:
                failures.append(f"{SOURCE} feed {label}: {_reason(exc, path)}")
                continue
            wanted: dict[str, dict[str, Any]] = {}
            skipped = []
            for event in new:
                eid = _int(event.get("id"))
                if eid is None or eid in seen:
                    continue
                seen.add(eid)
                info = event.get("info_request")
                ref = _slug(info.get("url_title")) if isinstance(info, dict) else ""
                if ref:
                    wanted.setdefault(ref, event)
                else:
                    skipped.append(f"{SOURCE} feed {label}: event {eid} names no request")
            ok = True
            for ref, hint in wanted.items():
                if ref not in done:
                    done.add(ref)
                    batch = self._request(ref, state, failures, snippets, hint)
                    ok = ok and batch is not None
                    if batch is not None:
                        yield batch
            if ok:  # a feed moves on only once all its requests were read
                feeds[key] = fresh
            yield Batch((), state, tuple(skipped))
        for ref in self.config.requests:  # followed directly: read every poll
            if ref not in done:
                done.add(ref)
                batch = self._request(ref, state, failures, snippets, None, followed, since)
                if batch is not None:
                    yield batch
        if failures:
            if len(failures) > 1:  # the first is the error itself
                yield Batch((), state, (), tuple(failures[1:]))
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            raise SourceError(failures[0] + more)

    def _read_feed(
        self, path: str, last: dict[str, Any], since: date | None, snippets: dict[int, str]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """A feed's new events (by id, or described again since last read: a search feed
        sorts on last_described_at, and a state change moves an old event up) and its state."""
        top = None if since else _int(last.get("max_id"))
        described = None if since else parse_time(last.get("described"))
        headers = {}
        if since is None and last.get("etag"):
            headers["If-None-Match"] = str(last["etag"])
        if since is None and last.get("last_modified"):
            headers["If-Modified-Since"] = str(last["last_modified"])
        events: list[dict[str, Any]] = []
        validators: dict[str, str] = {}
        for page in range(1, self.config.max_pages + 1):
            got = self._net.get(path, {"page": page} if page > 1 else None, read=_read_events,
                                headers=headers if page == 1 else None, allow_404=True)  # fmt: skip
            if got is None:
                raise SourceError(f"GET {path}: no such feed (HTTP 404)")
            rows, found = got
            validators = validators or found
            if rows is None:  # 304: nothing new since the last read
                break
            events += [r for r in rows if isinstance(r, dict)]
            page_ids = [_int(r.get("id")) if isinstance(r, dict) else None for r in rows]
            if len(rows) < PAGE_SIZE or any(
                i is None or (top is not None and i <= top) for i in page_ids
            ):
                break  # the last page, or one that reaches events already seen
        new = []
        for e in events:
            eid, when = _int(e.get("id")), parse_time(e.get("last_described_at"))
            incoming = _int(e.get("incoming_message_id"))
            if incoming is not None and _snippet(e.get("snippet")):
                snippets[incoming] = _snippet(e.get("snippet"))
            redescribed = when is not None and described is not None and when > described
            if eid is not None and (top is None or eid > top or redescribed):
                new.append(e)
        ids = [last.get("max_id"), *(e.get("id") for e in events)]
        top_ids = [i for i in map(_int, ids) if i is not None]
        times = [last.get("described"), *(e.get("last_described_at") for e in events)]
        top_times = [t for t in map(parse_time, times) if t is not None]
        fresh: dict[str, Any] = {"max_id": max(top_ids)} if top_ids else {}
        if top_times:
            fresh["described"] = max(top_times).isoformat()
        for k in ("etag", "last_modified"):
            if validators.get(k) or last.get(k):
                fresh[k] = validators.get(k) or last[k]
        return new, fresh

    def _request(
        self,
        ref: str,
        state: dict[str, Any],
        failures: list[str],
        snippets: dict[int, str],
        hint: dict[str, Any] | None,
        followed: dict[str, Any] | None = None,
        since: date | None = None,
    ) -> Batch | None:
        """One request as a Batch (None when it failed: the failure is added)."""
        path = f"/request/{quote(ref, safe='')}"
        try:
            data = self._net.get_json(f"{path}.json", allow_404=True)
            if data is None:
                return Batch((), state, (f"{SOURCE} request {ref}: no longer exists (HTTP 404)",))
            digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]
            if followed is not None and since is None and followed.get(ref) == digest:
                return Batch((), state)  # followed directly and unchanged: no page to read
            page = None
            if _has_messages(data):
                page = self._net.get(path, headers={"Accept": "text/html"}, allow_404=True,
                                     read=lambda resp: resp.text)  # fmt: skip
        except SourceError as exc:
            failures.append(f"{SOURCE} request {ref}: {exc}")
            return None
        try:
            item, problems = parse_request(
                data, ref, messages(page) if page else {}, snippets, hint
            )
        except SourceError as exc:
            return Batch((), state, (f"{SOURCE} {exc}",))
        if followed is not None:
            followed[ref] = digest
        return Batch((item,), state, (), tuple(problems))
