"""A local stand-in for WhatDoTheyKnow (Alaveteli), for tests and the offline tour.

Serves the JSON twins of Alaveteli's feeds, ``/feed/search/<query>.json``,
``/feed/body/<url_name>.json`` and ``/feed/user/<url_name>.json`` (25 events a page,
``?page=N``), ``/request/<url_title>.json`` (``InfoRequest#json_for_api(true)``) and the
request page ``/request/<url_title>`` rendered with the ids and classes of Alaveteli's
templates (``app/views/request/_incoming_correspondence.html.erb``,
``_outgoing_correspondence.html.erb``, ``_attachments.html.erb``). As in Alaveteli, feeds hold
only the events its search indexes (sent, followup_sent, response, comment; a status_update
is not among them), a search feed is sorted on when an event was last described and the
others on when it happened, and every JSON answer carries an ETag (If-None-Match: 304)::

    with WDTKServer() as server:
        server.add_request("care_2024", "Palliative care", text="Please send...")
        server.add_response("care_2024", "Please find attached...")

Run ``python -m pqwatch.testing.whatdotheyknow`` to serve a small built-in example.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import sys
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from werkzeug.wrappers import Request, Response

from pqwatch.testing.standin import StandIn
from pqwatch.types import FOI_STATES

PAGE_SIZE = 25
UK = ZoneInfo("Europe/London")
# InfoRequestEvent#json_for_api (alaveteli app/models/info_request_event.rb).
EVENT_FIELDS = (
    "id", "event_type", "created_at", "described_state", "calculated_state",
    "last_described_at", "incoming_message_id", "outgoing_message_id", "comment_id",
)  # fmt: skip
INDEXED = ("sent", "followup_sent", "response", "comment")
# InfoRequest.get_status_description (alaveteli app/models/info_request.rb).
STATUS = FOI_STATES
ERROR_PAGE = (
    b"<!DOCTYPE html><html><body><h1>We're sorry, but something went wrong.</h1></body></html>"
)


def _simple_format(text: str) -> str:
    """Rails' simple_format over escaped, linked text, as Alaveteli shows a message."""
    escaped = re.sub(
        r"https?://[^\s<>&\"]+",
        lambda m: f'<a href="{m.group(0)}" rel="nofollow">{m.group(0)}</a>',
        html.escape(text.strip(), quote=False),
    )
    paras = [p for p in re.split(r"\n\s*\n", escaped) if p.strip()]
    return "\n\n".join("<p>" + p.replace("\n", "\n<br />") + "</p>" for p in paras)


class WDTKServer(StandIn):
    """Requests are held in json_for_api shape (timestamps as datetimes until served) in
    ``info_requests``, message texts in ``texts`` by element id. Knobs: ``fail_with`` (every
    answer that status), ``body`` (every JSON body replaced), ``date_form`` ("iso", or "2010":
    "2010/10/04 11:11:57 +0000" with the authority and requester as plain url_names, as then),
    ``html_paths`` (paths answering a 200 HTML error page), ``gone`` (url_titles whose request
    answers 404 while its events stay in feeds) and ``hidden`` (incoming message ids shown
    hidden on the page, without their text)."""

    def __init__(self, *, date_form: str = "iso", etags: bool = True) -> None:
        super().__init__()
        self.info_requests: dict[str, dict[str, Any]] = {}
        self.texts: dict[str, str] = {}
        self.attachments: dict[int, list[str]] = {}
        self.date_form = date_form
        self.etags = etags
        self.fail_with: int | None = None
        self.body: bytes | None = None
        self.html_paths: set[str] = set()
        self.gone: set[str] = set()
        self.hidden: set[int] = set()
        self.clock = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
        self._ids = {"request": 900_000, "event": 7_000_000, "message": 3_000_000}

    # --- the data -------------------------------------------------------------------------

    def _next(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    def _tick(self, at: datetime | None) -> datetime:
        self.clock = at or self.clock + timedelta(hours=1)
        return self.clock

    def _event(self, req: dict[str, Any], kind: str, at: datetime, **fields: Any) -> dict[str, Any]:
        event = dict.fromkeys(EVENT_FIELDS) | {"id": self._next("event"), "event_type": kind}
        event["created_at"] = at
        event.update(fields)
        req["info_request_events"].append(event)
        req["updated_at"] = at
        return event

    def add_request(
        self,
        url_title: str,
        title: str,
        *,
        text: str = "Dear authority,\n\nPlease send me the information.\n\nYours faithfully,",
        body: tuple[str, str] = ("example_council", "Example Council"),
        user: tuple[str, str] | None = ("a_requester", "A Requester"),
        at: datetime | None = None,
        law_used: str = "foi",
    ) -> dict[str, Any]:
        """A request as sent (its first outgoing message holds `text`); user None is an
        external request (user_name only)."""
        at = self._tick(at)
        req: dict[str, Any] = {
            "id": self._next("request"), "url_title": url_title, "title": title,
            "created_at": at, "updated_at": at, "described_state": "waiting_response",
            "awaiting_description": False, "prominence": "normal", "law_used": law_used,
            "tags": [], "info_request_events": [],
        }  # fmt: skip
        # PublicBody#json_for_api (alaveteli app/models/public_body.rb), one id per body.
        req["public_body"] = {
            "id": zlib.crc32(body[0].encode()) % 100_000, "url_name": body[0], "name": body[1],
            "short_name": "", "created_at": at, "updated_at": at, "home_page": "",
            "notes": "", "publication_scheme": "", "disclosure_log": "", "tags": [],
            "info": {"requests_count": 1, "requests_successful_count": 0,
                     "requests_not_held_count": 0, "requests_overdue_count": 0,
                     "requests_visible_classified_count": 0},
        }  # fmt: skip
        if user:
            req["user"] = {"id": 40 + len(self.info_requests), "url_name": user[0],
                           "name": user[1], "ban_text": "", "about_me": ""}  # fmt: skip
        else:
            req["user_name"] = "An external requester"
        self.info_requests[url_title] = req
        out = self._next("message")
        self.texts[f"outgoing-{out}"] = text
        self._event(req, "sent", at, outgoing_message_id=out, described_state="waiting_response",
                    calculated_state="waiting_response", last_described_at=at)  # fmt: skip
        return req

    def add_response(
        self,
        url_title: str,
        text: str,
        *,
        at: datetime | None = None,
        state: str | None = None,
        attachments: Sequence[str] = (),
    ) -> int:
        """A response (its incoming message id), described as `state` when given."""
        req, at = self.info_requests[url_title], self._tick(at)
        incoming = self._next("message")
        self.texts[f"incoming-{incoming}"] = text
        self.attachments[incoming] = list(attachments)
        self._event(req, "response", at, incoming_message_id=incoming, described_state=state,
                    calculated_state=state or req["described_state"],
                    last_described_at=at if state else None)  # fmt: skip
        if state:
            req["described_state"] = state
        return incoming

    def change_state(self, url_title: str, state: str, *, at: datetime | None = None) -> int:
        """The requester describes the request (Classifiable#set_described_state): a
        status_update event, and the state recalculated onto the messages' events, which
        moves the latest up a search feed (it sorts on last_described_at)."""
        req, at = self.info_requests[url_title], self._tick(at)
        event = self._event(req, "status_update", at, described_state=state,
                            calculated_state=state, last_described_at=at)  # fmt: skip
        req["described_state"] = state
        latest = [e for e in req["info_request_events"] if e["event_type"] in INDEXED]
        if latest:
            latest[-1].update(calculated_state=state, last_described_at=at)
        return int(event["id"])

    # --- rendering ------------------------------------------------------------------------

    def _when(self, value: Any) -> Any:
        if not isinstance(value, datetime):
            return value
        if self.date_form == "2010":
            return value.astimezone(UTC).strftime("%Y/%m/%d %H:%M:%S +0000")
        return value.astimezone(UK).isoformat(timespec="milliseconds")

    def _when_all(self, record: dict[str, Any]) -> dict[str, Any]:
        return {k: self._when(v) for k, v in record.items()}

    def _event_json(self, event: dict[str, Any]) -> dict[str, Any]:
        out = {k: self._when(v) for k, v in event.items()}
        if event["incoming_message_id"]:
            out["display_status"] = STATUS.get(event["calculated_state"], "Response")
        elif event["outgoing_message_id"]:
            out["display_status"] = "Follow up" if event["event_type"] != "sent" else (
                "Clarification")  # fmt: skip
        return out

    def _request_json(self, req: dict[str, Any], deep: bool) -> dict[str, Any]:
        out = {k: self._when(v) for k, v in req.items()
               if k not in ("user", "user_name", "public_body", "info_request_events")}  # fmt: skip
        out["display_status"] = STATUS.get(req["described_state"], req["described_state"])
        if deep:
            body, user = req["public_body"], req.get("user")
            old = self.date_form == "2010"  # 2010: plain url_names (the recorded sample)
            out["public_body"] = body["url_name"] if old else self._when_all(body)
            if user:
                out["user"] = user["url_name"] if old else user
            else:
                out["user_name"] = req["user_name"]
            out["info_request_events"] = [self._event_json(e) for e in req["info_request_events"]]
        return out

    def _snippet(self, event: dict[str, Any], words: list[str]) -> str:
        """highlight_and_excerpt: 150 characters of escaped text, the words marked."""
        msg = event["incoming_message_id"] or event["outgoing_message_id"]
        prefix = "incoming" if event["incoming_message_id"] else "outgoing"
        text = self.texts.get(f"{prefix}-{msg}", "")
        cut = html.escape(text[:150] + ("..." if len(text) > 150 else ""))
        for w in words:
            cut = re.sub(f"({re.escape(w)})", r'<span class="highlight">\1</span>', cut, flags=re.I)
        return cut

    def _feed(self, kind: str, name: str, page: int) -> list[dict[str, Any]]:
        words = [w for w in re.findall(r"\w+", name.lower()) if w not in ("or", "and", "not")]
        rows = []
        for req in self.info_requests.values():
            events = [e for e in req["info_request_events"] if e["event_type"] in INDEXED]
            messages = [self.texts.get(f"{p}-{e[f'{p}_message_id']}", "") for e in events
                        for p in ("incoming", "outgoing") if e[f"{p}_message_id"]]  # fmt: skip
            haystack = " ".join([req["title"], *messages]).lower()
            if (
                (kind == "search" and all(w in haystack for w in words))
                or (kind == "body" and req["public_body"]["url_name"] == name)
                or (kind == "user" and (req.get("user") or {}).get("url_name") == name)
            ):
                rows += [(req, e) for e in events]

        def order(pair: tuple[dict[str, Any], dict[str, Any]]) -> tuple[datetime, int]:
            e = pair[1]
            when = (
                e["last_described_at"] or e["created_at"] if kind == "search" else e["created_at"]
            )
            return when, e["id"]

        rows.sort(key=order, reverse=True)
        chosen = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        out = []
        for req, e in chosen:
            item = self._event_json(e)
            if e["event_type"] != "comment":
                item["snippet"] = self._snippet(e, words if kind == "search" else [])
            item["info_request"] = self._request_json(req, deep=False)
            item["public_body"] = self._when_all(req["public_body"])
            item["user"] = req.get("user") or {"name": req["user_name"]}
            out.append(item)
        return out

    def _page(self, req: dict[str, Any]) -> str:
        """The request page, its correspondence as Alaveteli's templates write it."""
        body = html.escape(req["public_body"]["name"])
        user = html.escape((req.get("user") or {}).get("name") or req.get("user_name", ""))
        parts = []
        for e in req["info_request_events"]:
            date = f"{e['created_at'].astimezone(UK):%-d %B %Y}"
            if e["outgoing_message_id"] and e["event_type"] in ("sent", "followup_sent"):
                mid = e["outgoing_message_id"]
                text = _simple_format(self.texts.get(f"outgoing-{mid}", ""))
                parts.append(
                    f'<div class="ff-print-fix"></div>\n<div class="outgoing correspondence '
                    f'js-collapsible" id="outgoing-{mid}">\n  <div class="correspondence__header">'
                    f'<span class="correspondence__header__author js-collapsible-trigger">{user}'
                    f'</span><a href="#outgoing-{mid}" class="correspondence__header__date">{date}'
                    f'</a></div>\n  <div class="correspondence_text">\n    <div>{text}</div>\n  '
                    f'</div>\n  <p class="event_actions"></p>\n</div>'
                )
            elif e["incoming_message_id"] and e["event_type"] == "response":
                mid = e["incoming_message_id"]
                head = (
                    f'<div class="correspondence__header"><span class="correspondence__header__'
                    f'author js-collapsible-trigger">{body}</span><a href="#incoming-{mid}" '
                    f'class="correspondence__header__date">{date}</a></div>'
                )
                if mid in self.hidden:
                    parts.append(
                        f'<div class="incoming correspondence hidden js-collapsible" '
                        f'id="incoming-{mid}">{head}<p id="hidden_message" class="hidden_message">'
                        "This message has been hidden. There are various reasons why we might "
                        "have done this, sorry.</p></div>"
                    )
                    continue
                files = "".join(
                    f'<li class="attachment" id="attachment-{mid}{i}"><p class="attachment__name">'
                    f'{html.escape(n)}</p><p class="attachment__meta">12K <a href="#">Download</a>'
                    "</p></li>"
                    for i, n in enumerate(self.attachments.get(mid, []))
                )
                listing = (
                    f'<div class="attachments"><div class="attachments__header"><h3>'
                    f'{len(self.attachments[mid])} Attachments</h3></div><ul class="list-of-'
                    f'attachments">{files}</ul></div>'
                    if files
                    else ""
                )
                text = _simple_format(self.texts.get(f"incoming-{mid}", ""))
                unfold = (
                    f'\n\n<span class="unfold_link">\n  <a href="?unfold=1#incoming-{mid}">show '
                    "quoted sections</a>\n</span>"
                )
                parts.append(
                    f'<div class="ff-print-fix"></div>\n<div class="incoming correspondence '
                    f'normal js-collapsible" id="incoming-{mid}">\n  {head}\n  <div class="'
                    f'correspondence_text">\n    {listing}\n    <div id="attachment-{mid}0">'
                    f'{text}{unfold}</div>\n  </div>\n  <p class="event_actions"></p>\n</div>'
                )
        title = html.escape(req["title"])
        return (
            f'<!DOCTYPE html>\n<html lang="en-GB"><head><meta charset="utf-8"><title>{title} - a '
            f"Freedom of Information request to {body}</title></head>\n<body>\n<div "
            f'class="request-header"><h1 class="request-header__title">{title}</h1></div>\n<div '
            f'id="left_column" class="left_column">\n' + "\n".join(parts) + "\n</div>\n</body>"
            "</html>\n"
        )

    # --- serving --------------------------------------------------------------------------

    def _answer(self, request: Request) -> Response:
        if self.fail_with is not None:
            return Response(ERROR_PAGE, status=self.fail_with, content_type="text/html")
        path = unquote(request.path)
        if path in self.html_paths:
            return Response(ERROR_PAGE, content_type="text/html; charset=utf-8")
        page = max(1, request.args.get("page", 1, type=int) or 1)
        feed = re.fullmatch(r"/feed/(search|body|user)/(.+)\.json", path)
        found = re.fullmatch(r"/request/([^/]+?)(\.json)?", path)
        if feed:
            payload: Any = self._feed(feed.group(1), feed.group(2), page)
        elif found and found.group(1) in self.info_requests and found.group(1) not in self.gone:
            req = self.info_requests[found.group(1)]
            if not found.group(2):
                return Response(self._page(req), content_type="text/html; charset=utf-8")
            payload = self._request_json(req, deep=True)
        else:
            return Response("<html>The page doesn't exist.</html>", 404, content_type="text/html")
        if self.body is not None:
            return Response(self.body, content_type="application/json")
        response = Response(
            json.dumps(payload, ensure_ascii=False), content_type="application/json"
        )
        if self.etags:
            tag = hashlib.sha256(response.get_data()).hexdigest()[:16]
            response.set_etag(tag, weak=True)  # Rack::ETag's are weak
            if request.if_none_match.contains_weak(tag):
                return Response(status=304, headers={"ETag": f'W/"{tag}"'})
        return response


def example() -> WDTKServer:
    """A council's answer on commissioning children's palliative care, and a request still
    waiting (not started)."""
    server = WDTKServer()
    server.add_request(
        "childrens_palliative_care_commis",
        "Children's palliative care commissioning",
        text="Dear Leeds City Council,\n\nPlease tell me how much you spent on children's "
        "palliative care in 2023/24, and which providers you commission it from.\n\nYours "
        "faithfully,\nA. Researcher",
        body=("leeds_city_council", "Leeds City Council"),
        user=("a_researcher", "A. Researcher"),
        at=datetime(2024, 12, 2, 10, 15, tzinfo=UTC),
    )
    server.add_response(
        "childrens_palliative_care_commis",
        "Dear A. Researcher,\n\nThank you for your request, received on 2 December 2024. We "
        "will respond within 20 working days.\n\nInformation Governance Team",
        at=datetime(2024, 12, 2, 14, 0, tzinfo=UTC),
    )
    server.add_response(
        "childrens_palliative_care_commis",
        "Dear A. Researcher,\n\nIn 2023/24 the council spent £412,000 on children's palliative "
        "care, commissioned jointly with the ICB from two local children's hospices.\nThe "
        "contracts are published at https://example.org/contracts.\n\nInformation Governance "
        "Team",
        at=datetime(2024, 12, 20, 11, 30, tzinfo=UTC),
        state="successful",
        attachments=["Contracts register 2023-24.xlsx"],
    )
    server.add_request(
        "short_breaks_for_disabled_childr",
        "Short breaks for disabled children",
        text="Dear Leeds City Council,\n\nHow many families received short breaks in 2024?",
        body=("leeds_city_council", "Leeds City Council"),
        user=("a_researcher", "A. Researcher"),
        at=datetime(2025, 1, 3, 9, 0, tzinfo=UTC),
    )
    return server


def main(argv: Sequence[str] | None = None) -> int:
    if list(sys.argv[1:] if argv is None else argv):
        print("usage: python -m pqwatch.testing.whatdotheyknow (serves a built-in example)")
        return 2
    server = example()
    what = f"{len(server.info_requests)} FOI requests (try /feed/search/palliative%20care.json)"
    return server.serve(8769, what)


if __name__ == "__main__":
    raise SystemExit(main())
