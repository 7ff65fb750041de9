"""The WhatDoTheyKnow source on its own (no database, no CLI): recorded Alaveteli JSON parses,
and a local stand-in for WhatDoTheyKnow carries requests through feeds, paging, conditional
requests, state changes and every way a feed, a request or a page can fail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pqwatch.config import WhatDoTheyKnowConfig
from pqwatch.errors import SourceError
from pqwatch.sources.base import Batch
from pqwatch.sources.whatdotheyknow import (
    WhatDoTheyKnowSource,
    messages,
    parse_request,
    parse_time,
    uk_date,
)
from pqwatch.testing.whatdotheyknow import WDTKServer
from pqwatch.types import OpenItem, QuestionData, name_id
from tests.conftest import require_data

FEED_2011 = "wave2/whatdotheyknow/openlylocal_feed_search_tag-openlylocal_2011.json"
REQUEST_2010 = "wave2/whatdotheyknow/openlylocal_request_information_on_transaction_with_2010.json"
NOW = datetime(2025, 2, 1, 12, 0, tzinfo=UTC)
UK = ZoneInfo("Europe/London")
CARE = "childrens_palliative_care"


class NoKnown:
    def open_items(self, source: str) -> list[OpenItem]:
        return []

    def highest_id(self, source: str) -> int | None:
        return None


def config(base_url: str = "http://wdtk.test", **settings: Any) -> WhatDoTheyKnowConfig:
    fast = {"requests_per_second": 10000.0, "max_retries": 0, "backoff_seconds": 0.0}
    return WhatDoTheyKnowConfig(enabled=True, base_url=base_url, **(fast | settings))


@pytest.fixture
def server() -> Iterator[WDTKServer]:
    with WDTKServer() as running:
        yield running


class Poll:
    """One poll's batches, and the error it ended with (if any)."""

    def __init__(
        self, source: WhatDoTheyKnowSource, state: dict[str, Any], since: date | None = None
    ) -> None:
        self.batches: list[Batch] = []
        self.error: SourceError | None = None
        try:
            for batch in source.poll(state, NoKnown(), NOW, since=since):
                self.batches.append(batch)
        except SourceError as exc:
            self.error = exc
        self.state = self.batches[-1].state if self.batches else state
        self.items = [i for b in self.batches for i in b.items]
        self.skipped = [s for b in self.batches for s in b.skipped]
        self.problems = [p for b in self.batches for p in b.problems]

    def one(self, uin: str) -> QuestionData:
        (item,) = [i for i in self.items if i.uin == uin]
        return item


def poll(
    server: WDTKServer,
    state: dict[str, Any] | None = None,
    since: date | None = None,
    **settings: Any,
) -> Poll:
    settings.setdefault("searches", ["palliative care"])
    source = WhatDoTheyKnowSource(config(server.base_url, **settings))
    try:
        return Poll(source, state or {}, since)
    finally:
        source.close()


def add_care_request(server: WDTKServer) -> None:
    server.add_request(
        CARE,
        "Children's palliative care commissioning",
        text="Dear Leeds City Council,\n\nHow much did you spend on children's palliative care?",
        body=("leeds_city_council", "Leeds City Council"),
        user=("jo_bloggs", "Jo Bloggs"),
        at=datetime(2024, 12, 2, 10, 15, tzinfo=UTC),
    )
    server.add_response(
        CARE, "We have received your request.", at=datetime(2024, 12, 2, 14, 0, tzinfo=UTC)
    )
    server.add_response(
        CARE,
        "Dear Jo Bloggs,\n\nWe spent £412,000 <with> two hospices.\nSee https://example.org/c.",
        at=datetime(2025, 1, 5, 23, 30, tzinfo=UTC),
        state="successful",
        attachments=["Spend 2023-24.xlsx"],
    )


# --- recorded Alaveteli JSON -------------------------------------------------------------------


def recorded_transport(data: Any) -> tuple[httpx.MockTransport, list[str]]:
    feed = (data / FEED_2011).read_bytes()
    request = (data / REQUEST_2010).read_bytes()
    seen: list[str] = []

    def handle(req: httpx.Request) -> httpx.Response:
        seen.append(req.url.path)
        if req.url.path == "/feed/search/tag:openlylocal.json":
            return httpx.Response(200, content=feed, headers={"Content-Type": "application/json"})
        if req.url.path == "/request/information_on_transaction_with.json":
            return httpx.Response(200, content=request)
        return httpx.Response(404, text="<html>Not found</html>")

    return httpx.MockTransport(handle), seen


def test_the_recorded_2011_feed_and_2010_request_parse() -> None:
    data = require_data()
    transport, seen = recorded_transport(data)
    source = WhatDoTheyKnowSource(config(), searches=["tag:openlylocal"], transport=transport)
    result = Poll(source, {})
    assert result.error is None
    # 20 events over 4 requests: each request read once; three answer 404 here (skipped).
    wanted = [p for p in seen if p.startswith("/request/") and p.endswith(".json")]
    assert sorted(wanted) == [
        "/request/information_on_transaction_10125.json",
        "/request/information_on_transaction_31442.json",
        "/request/information_on_transaction_with.json",
        "/request/information_on_transaction_with_5.json",
    ]
    assert len(result.skipped) == 3
    assert all("no longer exists (HTTP 404)" in s for s in result.skipped)
    item = result.one("information_on_transaction_with")
    assert (item.source, item.source_id, item.parliament, item.kind, item.house) == (
        "whatdotheyknow", "48721", "foi", "foi", "WhatDoTheyKnow"
    )  # fmt: skip
    assert item.heading == "Information on Transaction with CATCH 22 in Jul 2010"
    assert item.state == "waiting_response"
    assert item.date_tabled == date(2010, 10, 4)  # "2010/10/04 11:11:57 +0000"
    assert item.date_for_answer == date(2010, 11, 1)  # 20 working days
    # The request names them by url_name only (2010); the feed's copies give the names.
    assert item.answering_body_name == "Wandsworth Borough Council"
    assert item.answering_body_id == name_id("foi", "wandsworth_borough_council")
    assert item.asking_member is not None and item.asking_member.name == "Chris Taggart"
    assert item.asking_member_id == name_id("foi", "chris_taggart")
    # Its page is not recorded: the response shows the feed's snippet, and says so.
    assert item.date_answered == date(2010, 10, 4)
    assert item.answer_raw is not None
    assert item.answer_raw.startswith(
        "<p><strong>Response of 4 October 2010</strong></p><p>Freedom of"
    )
    assert "received on 04/10/2010.</p>" in item.answer_raw
    assert item.question_text == item.heading
    assert any("incoming message 118370" in p and "snippet" in p for p in result.problems)
    details = json.loads(item.details or "")
    assert details["law_used"] == "foi"
    assert (details["authority_url_name"], details["requester_url_name"]) == (
        "wandsworth_borough_council", "chris_taggart"
    )  # fmt: skip
    assert details["events"] == [
        {"id": 235056, "type": "sent", "date": "2010-10-04", "state": "waiting_response",
         "status": None},
        {"id": 235096, "type": "response", "date": "2010-10-04", "state": "waiting_response",
         "status": None},
        {"id": 237312, "type": "edit", "date": "2010-10-09", "state": None, "status": None},
    ]  # fmt: skip
    # The feed state keeps the highest event id of the 20 (they come described-first).
    assert result.state["feeds"]["search:tag:openlylocal"]["max_id"] == 295516


def test_the_2010_request_alone_turns_url_names_into_names() -> None:
    data = json.loads((require_data() / REQUEST_2010).read_text(encoding="utf-8"))
    item, problems = parse_request(data, "information_on_transaction_with")
    assert item.answering_body_name == "Wandsworth Borough Council"
    assert item.asking_member is not None and item.asking_member.name == "Chris Taggart"
    # No page and no snippet: the response is there, without its text.
    assert item.answer_raw == "<p><strong>Response of 4 October 2010</strong></p>"
    assert any("118370" in p and "without its text" in p for p in problems)


def test_both_date_forms_give_the_uk_day() -> None:
    assert parse_time("2010/10/04 11:11:57 +0000") == datetime(2010, 10, 4, 11, 11, 57, tzinfo=UTC)
    assert parse_time("2013/06/18 10:18:19 +1000") == datetime(2013, 6, 18, 0, 18, 19, tzinfo=UTC)
    assert parse_time("2025-08-29T20:29:16.797+01:00") == datetime(
        2025, 8, 29, 19, 29, 16, 797000, tzinfo=UTC
    )
    assert parse_time("2025-08-29T19:29:16Z") == datetime(2025, 8, 29, 19, 29, 16, tzinfo=UTC)
    # Late evening UTC in British Summer Time is the next day in the UK; not in winter.
    assert uk_date("2010/10/04 23:30:00 +0000") == date(2010, 10, 5)
    assert uk_date("2010-12-04T23:30:00Z") == date(2010, 12, 4)
    assert uk_date("2025-08-29T23:30:00") == date(2025, 8, 29)  # no offset: London's
    bad = ["", "yesterday", "2025-02-30T10:00:00Z", "2025-01-01T25:00:00Z", None, 20250101,
           "2025-01-01T10:00:00+25:00", "0001-01-01T00:00:00+01:00"]  # fmt: skip
    assert [uk_date(b) for b in bad] == [None] * len(bad)


# --- through the stand-in server ---------------------------------------------------------------


def test_a_search_feed_yields_the_request_with_its_responses_newest_first(
    server: WDTKServer,
) -> None:
    add_care_request(server)
    result = poll(server)
    assert result.error is None and result.problems == [] and result.skipped == []
    item = result.one(CARE)
    assert item.heading == "Children's palliative care commissioning"
    assert item.question_text == (
        "Dear Leeds City Council,\n\nHow much did you spend on children's palliative care?"
    )
    assert (item.answering_body_name, item.state) == ("Leeds City Council", "successful")
    assert item.asking_member is not None and item.asking_member.name == "Jo Bloggs"
    assert item.date_tabled == date(2024, 12, 2) and item.date_for_answer == date(2024, 12, 30)
    assert item.date_answered == date(2025, 1, 5)
    assert item.answer_full and not item.source_flags_corrections
    assert item.answer_raw == (
        "<p><strong>Response of 5 January 2025</strong></p><p>Dear Jo Bloggs,</p>"
        "<p>We spent £412,000 "
        '&lt;with&gt; two hospices.<br>See <a href="https://example.org/c">https://example.org/c'
        "</a>.</p><p><strong>Response of 2 December 2024</strong></p>"
        "<p>We have received your request.</p>"
    )
    # The attachment list and the "show quoted sections" link are not the message's text.
    assert "xlsx" not in item.answer_raw and "quoted" not in item.answer_raw
    events = json.loads(item.details or "")["events"]
    assert [e["type"] for e in events] == ["sent", "response", "response"]
    assert events[-1]["state"] == "successful" and events[-1]["status"] == "Successful"
    # One feed, one request JSON, one page.
    assert [p for p, _, _ in server.requests] == [
        "/feed/search/palliative care.json", f"/request/{CARE}.json", f"/request/{CARE}"
    ]  # fmt: skip


def test_paging_stops_at_the_first_known_event(server: WDTKServer) -> None:
    for n in range(30):
        server.add_request(f"hospice_{n}", f"Hospice funding {n}")
    first = poll(server, searches=["hospice funding"])
    assert len(first.items) == 30
    assert [q for p, q, _ in server.requests if p.startswith("/feed/")] == ["", "page=2"]
    server.requests.clear()
    server.add_request("hospice_new", "Hospice funding again")
    second = poll(server, first.state, searches=["hospice funding"])
    assert [i.uin for i in second.items] == ["hospice_new"]
    # Page 1 held known events: page 2 is not read.
    assert [(q, s) for p, q, s in server.requests if p.startswith("/feed/")] == [("", 200)]


def test_a_poll_with_nothing_new_makes_only_conditional_requests(server: WDTKServer) -> None:
    add_care_request(server)
    first = poll(server, bodies=["leeds_city_council"], users=["jo_bloggs"])
    assert len(first.items) == 1  # found by three feeds, read once
    assert sum(p.startswith("/request/") for p, _, _ in server.requests) == 2
    server.requests.clear()
    again = poll(server, first.state, bodies=["leeds_city_council"], users=["jo_bloggs"])
    assert again.items == [] and again.error is None
    assert [s for _, _, s in server.requests] == [304, 304, 304]
    assert again.state == first.state
    # poll --since reads everything again, unconditionally.
    server.requests.clear()
    since = poll(server, first.state, date(2024, 1, 1), bodies=["leeds_city_council"])
    assert [i.uin for i in since.items] == [CARE]
    assert 304 not in [s for _, _, s in server.requests]
    # A feed no longer followed is forgotten.
    assert set(since.state["feeds"]) == {"search:palliative care", "body:leeds_city_council"}


def test_a_state_change_yields_the_request_again(server: WDTKServer) -> None:
    add_care_request(server)
    first = poll(server)
    server.requests.clear()
    event = server.change_state(CARE, "not_held", at=datetime(2025, 1, 20, 9, 0, tzinfo=UTC))
    second = poll(server, first.state)
    item = second.one(CARE)
    assert item.state == "not_held"
    assert item.list_hash != first.one(CARE).list_hash
    last = json.loads(item.details or "")["events"][-1]
    assert last == {"id": event, "type": "status_update", "date": "2025-01-20",
                    "state": "not_held", "status": None}  # fmt: skip
    # A status_update is not in feeds: the re-described response moved up the search feed.
    assert ("/feed/search/palliative care.json", "", 200) in server.requests


def test_the_2010_date_form_and_plain_url_names_parse() -> None:
    with WDTKServer(date_form="2010") as old:
        add_care_request(old)
        result = poll(old, bodies=["leeds_city_council"])
        raw = json.loads(httpx.get(f"{old.base_url}/request/{CARE}.json").text)
    assert raw["public_body"] == "leeds_city_council"
    assert raw["info_request_events"][0]["created_at"] == "2024/12/02 10:15:00 +0000"
    item = result.one(CARE)
    assert item.date_tabled == date(2024, 12, 2) and item.date_answered == date(2025, 1, 5)
    assert item.answering_body_name == "Leeds City Council"


def test_a_feed_answering_html_fails_the_poll_after_the_others_ran(server: WDTKServer) -> None:
    add_care_request(server)
    server.add_request("short_breaks", "Short breaks for disabled children")
    server.html_paths = {"/feed/search/hospice funding.json", "/feed/user/nobody.json"}
    result = poll(
        server,
        searches=["hospice funding", "palliative care", "short breaks"],
        users=["nobody"],
    )
    assert {i.uin for i in result.items} == {CARE, "short_breaks"}
    assert result.error is not None
    assert str(result.error) == (
        'whatdotheyknow feed search "hospice funding": expected JSON, got text/html '
        "(gave up after 1 attempts) (and 1 more)"
    )
    assert result.problems == [
        'whatdotheyknow feed user "nobody": expected JSON, got text/html (gave up after 1 attempts)'
    ]
    # The failed feeds keep no state; the others moved on.
    assert set(result.state["feeds"]) == {"search:palliative care", "search:short breaks"}


def test_garbage_and_server_errors_fail_the_poll(server: WDTKServer) -> None:
    add_care_request(server)
    server.body = b'[{"id": 1, "event_type": "resp'
    result = poll(server)
    assert result.error is not None and "expected JSON, got application/json" in str(result.error)
    server.body, server.fail_with = None, 503
    result = poll(server)
    assert result.error is not None and str(result.error).startswith(
        'whatdotheyknow feed search "palliative care": HTTP 503'
    )


def test_a_request_that_no_longer_exists_is_skipped(server: WDTKServer) -> None:
    add_care_request(server)
    server.add_request("gone_palliative_care", "Palliative care: a withdrawn request")
    server.gone.add("gone_palliative_care")
    result = poll(server)
    assert result.error is None
    assert [i.uin for i in result.items] == [CARE]
    assert result.skipped == ["whatdotheyknow request gone_palliative_care: no longer exists "
                              "(HTTP 404)"]  # fmt: skip


def test_a_response_missing_from_its_page_is_reported_and_the_request_still_yields(
    server: WDTKServer,
) -> None:
    add_care_request(server)
    hidden = server.add_response(
        CARE, "Palliative care figures follow.", at=datetime(2025, 1, 10, 9, 0, tzinfo=UTC)
    )
    server.hidden.add(hidden)
    result = poll(server)
    item = result.one(CARE)
    # The search feed's snippet stands in for the hidden message's text.
    assert item.answer_raw is not None
    assert item.answer_raw.startswith(
        "<p><strong>Response of 10 January 2025</strong></p><p>Palliative care figures follow.</p>"
    )
    assert result.problems == [
        f"whatdotheyknow request {CARE}: response (incoming message {hidden}) not on its page; "
        "the feed's snippet stands in"
    ]
    # Followed directly there is no feed and no snippet: the response is shown without text.
    server.requests.clear()
    direct = poll(server, searches=[], requests=[CARE])
    assert direct.one(CARE).answer_raw is not None
    assert direct.one(CARE).answer_raw.startswith(
        "<p><strong>Response of 10 January 2025</strong></p><p><strong>"
    )
    assert any("shown without its text" in p for p in direct.problems)
    # Unchanged, a request followed directly is read again but its page is not.
    server.requests.clear()
    again = poll(server, direct.state, searches=[], requests=[CARE])
    assert again.items == [] and [p for p, _, _ in server.requests] == [f"/request/{CARE}.json"]


def test_an_external_request_and_an_unknown_state_are_kept(server: WDTKServer) -> None:
    server.add_request("ext_palliative_care", "Palliative care beds", user=None)
    server.change_state("ext_palliative_care", "some_new_state")
    item = poll(server).one("ext_palliative_care")
    assert item.state == "some_new_state"
    assert item.asking_member is not None and item.asking_member.name == "An external requester"
    assert json.loads(item.details or "")["requester_url_name"] is None


# --- property tests ----------------------------------------------------------------------------


@given(
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_a_time_in_either_form_reads_back_as_the_same_moment(when: datetime, minutes: int) -> None:
    aware = when.replace(tzinfo=timezone(timedelta(minutes=minutes)))
    expected_day = aware.astimezone(UK).date()
    millis = aware.replace(microsecond=aware.microsecond // 1000 * 1000)
    for text, expected in (
        (aware.isoformat(timespec="milliseconds"), millis),  # what Alaveteli sends now
        (aware.isoformat(), aware),
        (aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), aware),
    ):
        assert parse_time(text) == expected
        assert uk_date(text) == expected_day
    old = aware.astimezone(UTC).strftime("%Y/%m/%d %H:%M:%S +0000")
    assert parse_time(old) == aware.replace(microsecond=0)
    assert uk_date(old) == aware.replace(microsecond=0).astimezone(UK).date()


@given(st.text(max_size=40))
def test_any_text_is_a_time_or_none(text: str) -> None:
    when = parse_time(text)
    assert when is None or when.tzinfo is not None
    uk_date(text)


_ODD = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**15), max_value=10**15),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
    st.sampled_from([
        "2010/10/04 11:11:57 +0000", "2025-08-29T20:29:16.797+01:00", "2025-08-29T19:29:16Z",
        "2025-13-45T99:99:99Z", "waiting_response", "not_held", "a_brand_new_state", "&amp;",
        "response", "sent", "status_update", "set_embargo", "", "12", "\x1b[2J",
    ]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)  # fmt: skip
ODD = _ODD


def mostly(good: st.SearchStrategy[Any], odd: st.SearchStrategy[Any] = ODD) -> Any:
    """`good` three times in four (one_of would weigh each of ODD's nine kinds as one)."""
    return st.integers(min_value=0, max_value=3).flatmap(lambda n: odd if n == 0 else good)


TIMES = mostly(
    st.one_of(
        st.sampled_from(["2010/10/04 11:11:57 +0000", "2025-08-29T20:29:16.797+01:00"]),
        st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    )
)
IDS = mostly(st.integers(min_value=1, max_value=50))
PARTY = mostly(
    st.fixed_dictionaries({}, optional={"url_name": mostly(st.sampled_from(["a_b", "c"])),
                                        "name": ODD}),
)  # fmt: skip
EVENT = st.fixed_dictionaries(
    {},
    optional={
        "id": IDS, "event_type": ODD, "created_at": TIMES, "described_state": ODD,
        "calculated_state": ODD, "last_described_at": ODD, "incoming_message_id": IDS,
        "outgoing_message_id": IDS, "comment_id": ODD, "display_status": ODD, "snippet": ODD,
        "public_body": PARTY, "user": PARTY,
        "info_request": mostly(st.fixed_dictionaries(
            {}, optional={"url_title": mostly(st.sampled_from(["req_a", "req_b"])),
                          "title": ODD})),
    },
)  # fmt: skip
# Mostly usable at the top (an id and a date), so that the odd parts below are reached.
REQUEST = st.fixed_dictionaries(
    {"id": mostly(st.one_of(st.integers(min_value=1, max_value=10**9), st.just("48721"))),
     "created_at": TIMES},
    optional={
        "url_title": ODD, "title": ODD, "updated_at": ODD,
        "described_state": ODD, "display_status": ODD, "law_used": ODD, "tags": ODD,
        "public_body": PARTY, "user": PARTY, "user_name": ODD,
        "info_request_events": mostly(st.lists(mostly(EVENT), max_size=6)),
    },
)  # fmt: skip
PAGES = st.one_of(
    st.text(max_size=60),
    st.sampled_from([
        '<div id="incoming-3"><div class="correspondence_text"><div><p>Hi<br />there</p>'
        '<!-- x --><script>x()</script></div></div></div>',
        '<div id="outgoing-2"><div class="correspondence_text">'
        '<div class="attachments">a.pdf</div></div></div><div id="incoming_message_4">',
        "<div id='incoming-x'><div class='correspondence_text'>&",
    ]),
)  # fmt: skip


@given(mostly(REQUEST, st.one_of(REQUEST.map(lambda r: [r]), ODD)), PAGES, mostly(EVENT))
def test_any_request_json_is_a_record_or_one_line(data: Any, page: str, hint: Any) -> None:
    try:
        item, problems = parse_request(data, "req_a", messages(page), {3: "snip"}, hint)
    except SourceError as exc:
        assert "\n" not in str(exc)
        return
    assert item.source_id.isdigit() and item.uin
    assert all("\n" not in p for p in problems)
    json.loads(item.details or "")
    assert (item.answer_raw is None) == (item.date_answered is None)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mostly(EVENT), max_size=30), mostly(REQUEST), PAGES)
def test_any_feed_and_request_make_records_or_one_line_errors(
    events: list[Any], request: Any, page: str
) -> None:
    def handle(req: httpx.Request) -> httpx.Response:
        if req.url.path.startswith("/feed/"):
            return httpx.Response(200, json=events)
        if req.url.path.endswith(".json"):
            return httpx.Response(200, json=request)
        return httpx.Response(200, text=page)

    source = WhatDoTheyKnowSource(
        config(requests=["req_b"]), searches=["care"], transport=httpx.MockTransport(handle)
    )
    result = Poll(source, {})
    assert result.error is None or "\n" not in str(result.error)
    for line in result.skipped + result.problems:
        assert "\n" not in line
    for item in result.items:
        assert item.source == "whatdotheyknow" and item.list_hash
    json.dumps(result.state)


def test_message_text_is_read_as_a_browser_shows_it() -> None:
    page = (
        '<div class="incoming correspondence" id="incoming-7"><div class="correspondence__header">'
        'Leeds City Council</div><div class="correspondence_text"><div class="attachments">'
        '<p class="attachment__name">a.pdf</p></div><div id="attachment-9"><p>Dear Jo,\n<br />'
        "Thanks &amp; regards   to\nall.</p>\n\n<p>Second <!-- hidden --><script>x()</script>"
        'para.</p><span class="unfold_link"><a href="?unfold=1">show quoted sections</a></span>'
        '</div></div></div><div id="outgoing_message_8"><div class="correspondence_text"><div>'
        "<p>Please\x1b[2J send.</p></div></div></div>"
        '<div id="incoming-9" class="incoming correspondence hidden"><p class="hidden_message">'
        "This message has been hidden.</p></div>"
    )
    assert messages(page) == {
        "incoming-7": "Dear Jo,\nThanks & regards to all.\n\nSecond para.",
        "outgoing-8": "Please[2J send.",
    }
