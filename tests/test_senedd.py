"""The Senedd source: the recorded Order Paper text parses to what it says, and a local
stand-in for record.senedd.wales carries a question from tabled to answered into the
archive, search and show, while a site answering garbage fails that source alone.

Only page text was recorded (wave2/senedd); the per-question pages the stand-in serves are
that text laid out as the research notes describe, with an asker added (the Order Papers
name none; the name and region are those a third-party test read from a real page)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pqwatch.config import SeneddConfig
from pqwatch.errors import SourceError
from pqwatch.sources.senedd import (
    NO_ANSWER_TEXT,
    SeneddSource,
    answer_html,
    page_text,
    parse_date,
    parse_order_paper,
    parse_question_page,
)
from pqwatch.testing.replay import ReplayServer
from pqwatch.testing.senedd import SeneddServer, pages_from_order_paper, render
from pqwatch.types import OpenItem, QuestionData
from tests.conftest import CliResult, api_config, require_data, rows

EXCERPTS = "wave2/senedd/senedd_written_questions_page_excerpts.json"
ASKER = "Andrew R.T. Davies\nSouth Wales Central\n"


def _pages() -> list[dict[str, str]]:
    data = json.loads((require_data() / EXCERPTS).read_text(encoding="utf-8"))
    pages: list[dict[str, str]] = data["pages"]
    return pages


def _parsed() -> dict[str, QuestionData]:
    out: dict[str, QuestionData] = {}
    for page in _pages():
        items, skipped = parse_order_paper(page["excerpt"])
        assert skipped == []
        out |= {q.uin or "": q for q in items}
    return out


def _texts() -> dict[int, str]:
    texts: dict[int, str] = {}
    for page in _pages():
        texts |= pages_from_order_paper(page["excerpt"])
    return texts


def test_every_recorded_order_paper_item_parses_to_what_the_page_says() -> None:
    qs = _parsed()
    assert len(qs) == 20 and all(q.source_id == q.uin[2:] for q in qs.values() if q.uin)
    q = qs["WQ91968"]
    assert (q.source, q.parliament, q.house) == ("senedd", "wales", "Senedd")
    assert (q.date_tabled, q.date_for_answer, q.date_answered) == (
        date(2024, 3, 13), date(2024, 3, 20), date(2024, 3, 15)
    )  # fmt: skip
    assert (
        q.answering_body_name == "First Minister" and q.heading == "Question to the First Minister"
    )
    assert q.answering_member is not None and q.answering_member.name == "First Minister"
    assert q.question_text.startswith("What proportion of Welsh Government staff worked")
    assert q.answer_raw == (
        "<p>Staffing matters within the Welsh Government are a matter for the Permanent "
        "Secretary. I will ask him to write to you.</p>"
    )
    assert q.asking_member is None  # Order Papers name no asker
    # Answered by someone other than the portfolio it is listed under; three paragraphs.
    q = qs["WQ90455"]
    assert q.answering_body_name == "Deputy Minister for Arts, Sport and Tourism"
    assert q.date_answered == date(2024, 1, 17) and q.date_for_answer == date(2024, 1, 19)
    assert q.answer_raw is not None and q.answer_raw.count("<p>") == 3
    assert q.answer_raw.startswith("<p>Our tourism website (visitwales.com)")
    # Answered after the due date.
    assert (qs["WQ87965"].date_for_answer, qs["WQ87965"].date_answered) == (
        date(2023, 4, 7), date(2023, 4, 11)
    )  # fmt: skip
    assert qs["WQ93022"].answering_body_name == "Counsel General"
    # A one-line answer that begins with a minister's title is still the answer.
    assert qs["WQ87840"].answer_raw == (
        "<p>The First Minister did not travel to the USA in March 2023</p>"
    )
    assert qs["WQ87844"].answering_body_name == "Minister for Economy"  # its section heading
    # Marked answered with no answer text on the page: a holding answer until text appears.
    for ref, day, who in [("WQ87954", date(2023, 6, 19), "Minister for Climate Change"),
                          ("WQ93023", date(2024, 6, 7), "First Minister"),
                          ("WQ93024", date(2024, 6, 7), "First Minister")]:  # fmt: skip
        q = qs[ref]
        assert (q.date_answered, q.answering_body_name, q.answer_is_holding) == (day, who, True)
        assert q.answer_raw == f"<p>{NO_ANSWER_TEXT}</p>"
    # The recording cuts each page's last item off mid-text: no answer date, no answer.
    for ref in ("WQ90458", "WQ87966", "WQ87844"):
        assert qs[ref].answer_raw is None and qs[ref].date_answered is None
    assert all(q.answer_is_holding is None for r, q in qs.items()
               if r not in ("WQ87954", "WQ93023", "WQ93024"))  # fmt: skip


def test_archive_pages_of_the_old_format_hold_no_current_items() -> None:
    """2009 and 2017 archive pages (WAQ numbers, asker before the question) are another
    format, on another site: they give no items, and as a question page they are a miss."""
    archive = [p["excerpt"] for p in _pages() if "/archive/" in p["url"]]
    assert len(archive) == 2
    for text in archive:
        assert parse_order_paper(text) == ([], [])
        assert parse_question_page(text, 73299) is None


def test_a_question_page_gives_the_asker_and_a_pending_minister() -> None:
    text = _texts()[90455]
    q = parse_question_page(render(ASKER + text), 90455)
    assert q is not None and q.uin == "WQ90455"
    assert q.asking_member is not None and q.asking_member.name == "Andrew R.T. Davies"
    assert q.asking_member.member_from == "South Wales Central"
    assert q.answer_raw is not None and "Polish will be considered" in q.answer_raw
    assert q.answer_raw.count("<p>") == 3  # the footer ("Contact us") is not in it

    pending = text.split("\nAnswered by")[0] + "\nTo be answered by: Minister for Economy"
    q = parse_question_page(render(ASKER + pending), 90455)
    assert q is not None and q.answer_raw is None and q.date_answered is None
    assert q.answering_body_name == "Minister for Economy" and q.answering_member is None
    # One "Name (Constituency)" line does as well; chrome before the reference is no asker.
    q = parse_question_page("Jane Hutt (Vale of Glamorgan)\n" + pending, 90455)
    assert q is not None and q.asking_member is not None
    assert (q.asking_member.name, q.asking_member.member_from) == ("Jane Hutt", "Vale of Glamorgan")
    q = parse_question_page("Search the Record\nWritten Questions\n" + pending, 90455)
    assert q is not None and q.asking_member is None


def test_pages_that_are_not_the_question_asked_for() -> None:
    texts = _texts()
    # The shell a missing id gets (its script says "Tabled on": scripts are not text).
    with SeneddServer({}, missing="shell") as shell:
        page = httpx.get(f"{shell.base_url}/WrittenQuestion/5").text
    assert "Tabled on" in page and parse_question_page(page, 5) is None
    with pytest.raises(SourceError, match=r"WQ91969: the page shows WQ91968 instead"):
        parse_question_page(render(texts[91968]), 91969)
    bad = texts[91968].replace("13/03/2024", "31/02/2024")
    with pytest.raises(SourceError, match=r"WQ91968: no readable tabling date"):
        parse_question_page(render(bad), 91968)
    with pytest.raises(SourceError, match=r"no 'WQ7 \.\.\. Tabled on <date>' header"):
        parse_question_page("<p>Tabled on 1/1/2024</p>", 7)


def test_page_text_reads_html_as_a_reader_sees_it() -> None:
    page = (
        "<html><head><title>t</title></head><body><script>Tabled on</script><!-- a comment -->"
        "<p>See <a href='https://gov.wales/x'>Ministerial\n   Code</a> &amp; more.<br>Next</p>"
        "<table><tr><th>Year</th><th>Cost</th></tr><tr><td>2023</td><td>£5</td></tr></table>"
        "<footer><p>Contact us</p></footer></body></html>"
    )
    assert page_text(page) == ["See Ministerial Code & more.", "Next", "Year | Cost", "2023 | £5"]
    assert page_text("  a\u00a0 b \n\n\r\nc\x07") == ["a b", "c"]
    assert answer_html("Further to WQ87719, <b>see</b> https://gov.wales/x.") == (
        '<p>Further to <a href="https://record.senedd.wales/WrittenQuestion/87719">WQ87719</a>, '
        '&lt;b&gt;see&lt;/b&gt; <a href="https://gov.wales/x">https://gov.wales/x</a>.</p>'
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [("16/08/2024", date(2024, 8, 16)), ("6/8/2024", date(2024, 8, 6)),
     ("16 August 2024", date(2024, 8, 16)), ("Friday 3rd May, 2024", date(2024, 5, 3)),
     ("18 Sept 2017", date(2017, 9, 18)), ("31/02/2024", None), ("16 Smarch 2024", None),
     ("00/00/0000", None), ("", None)],
)  # fmt: skip
def test_uk_dates(text: str, expected: date | None) -> None:
    assert parse_date(text) == expected


_ODD = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "\u2028", "&amp; &#0; &#xD800;", "<b>", "<![if x]>", "|",
                     "<?xml version='1.0'?>", "<script>", "<td>x", "Contact us",
                     "First Minister", "Minister for Economy", "WQ99999999999999999999"]),
)  # fmt: skip
_GOOD_DATE = st.sampled_from(["13/03/2024", "6/8/2024", "16 August 2024"])
_DATE = st.one_of(
    _GOOD_DATE,  # good, as often as not
    _GOOD_DATE,
    st.sampled_from(["31/02/2024", "99/99/99999", "1 Smarch 2024", "0/0/0", ""]),
    _ODD,
)  # fmt: skip


@st.composite
def _page_parts(draw: st.DrawFn) -> list[str]:
    """The documented fields, each present, absent, empty or odd, mostly in their order."""
    ref = draw(st.sampled_from(["WQ91968"] * 4 + ["WQ91969", "WQ 91968", "WQ" + "9" * 20]))
    lang = draw(st.sampled_from(["(e) ", "(w) ", "", "(x) "]))
    by = draw(st.sampled_from(["Answered by ", "To be answered by: ", "answered by:", "By "]))
    fields = [
        f"{draw(_ODD)}\n{draw(_ODD)}",  # name and constituency
        f"{ref} {lang}Tabled on {draw(_DATE)}",
        draw(_ODD),  # the question
        f"{by}{draw(_ODD)}",
        f"| Answered on {draw(_DATE)}",
        draw(_ODD),  # the answer
    ]
    kept = [f for f in fields if draw(st.integers(0, 3)) or "Tabled on" in f]
    return draw(st.permutations(kept)) if draw(st.booleans()) else kept


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(_page_parts(), _page_parts(), st.lists(st.one_of(_ODD, _DATE), max_size=25)),
    st.sampled_from(["\n", "\n", "\n", " ", ""]),
    st.booleans(),
)
def test_any_page_is_read_or_refused_with_one_line(
    parts: list[str], sep: str, as_html: bool
) -> None:
    """Fields present, absent, empty and odd: a page is a question, a miss, or a one-line
    SourceError; an Order Paper gives items and one-line reasons. Never another exception."""
    text = sep.join(parts)
    page = render(text) if as_html else text
    try:
        q = parse_question_page(page, 91968)
    except SourceError as exc:
        assert len(str(exc).splitlines()) == 1
    else:
        if q is not None:
            assert q.uin == "WQ91968" and q.question_text
            assert (q.answer_raw is None) == (q.date_answered is None)
    items, skipped = parse_order_paper(page)
    assert all(len(s.splitlines()) == 1 and s.startswith("senedd WQ") for s in skipped)
    assert all(q.source_id.isdigit() and q.question_text for q in items)


# -- the poll walk, straight against the stand-in --------------------------------------------


class _Known:
    def __init__(self, open_ids: list[int], highest: int | None) -> None:
        self.open = open_ids
        self.highest = highest

    def open_items(self, source: str) -> list[OpenItem]:
        return [OpenItem(str(i), date(2024, 1, 1), f"WQ{i}") for i in self.open]

    def highest_id(self, source: str) -> int | None:
        return self.highest


def _poll(server: SeneddServer, known: _Known, state: dict[str, Any], **cfg: Any) -> Any:
    config = SeneddConfig(enabled=True, base_url=server.base_url, requests_per_second=1000,
                          backoff_seconds=0.01, max_retries=1, **cfg)  # fmt: skip
    source = SeneddSource(config)
    try:
        batches = list(source.poll(state, known, datetime(2024, 3, 20, tzinfo=UTC)))
    finally:
        source.close()
    return batches, source.requests_made


def test_the_walk_crosses_short_gaps_and_stops_after_enough_misses() -> None:
    texts = _texts()
    pages = {i: texts[i] for i in (91968, 91969, 91972)}  # 91970-71 missing: a gap of two
    with SeneddServer(pages) as server:
        batches, requests = _poll(server, _Known([], None), {}, start_id=91968,
                                  stop_after_misses=3)  # fmt: skip
    got = [q.uin for b in batches for q in b.items]
    assert got == ["WQ91968", "WQ91969", "WQ91972"]
    assert batches[-1].state == {"next_id": 91973}  # missing ids after it: asked again
    assert requests == 3 + 2 + 3
    assert [p for p, _, _ in server.requests][-3:] == [f"/WrittenQuestion/{i}" for i in
                                                    (91973, 91974, 91975)]  # fmt: skip


def test_an_unreadable_page_is_skipped_with_its_reason_and_read_again() -> None:
    texts = _texts()
    pages = {i: texts[i] for i in (91968, 91969, 91972)}
    pages[91969] = pages[91969].replace("13/03/2024", "99/99/2024")
    with SeneddServer(pages) as server:
        cfg = {"start_id": 91968, "stop_after_misses": 3}
        first, _ = _poll(server, _Known([], None), {}, **cfg)
        # It counted as a miss (a site garbling every page cannot walk on for ever)...
        assert [q.uin for b in first for q in b.items] == ["WQ91968"]
        assert [s for b in first for s in b.skipped] == [
            "senedd WQ91969: no readable tabling date ('99/99/2024')"
        ]
        assert first[-1].state == {"next_id": 91969, "unreadable": [91969]}
        # ...but once known to exist it does not, so the walk gets past the gap after it.
        second, _ = _poll(server, _Known([], 91968), first[-1].state, **cfg)
        assert [q.uin for b in second for q in b.items] == ["WQ91972"]
        server.pages[91969] = texts[91969]  # mended: read again in the rotation
        third, _ = _poll(server, _Known([], 91972), second[-1].state, **cfg)
    assert [q.uin for b in third for q in b.items] == ["WQ91969"]
    assert "unreadable" not in third[-1].state


def test_open_questions_are_read_again_in_rotation() -> None:
    texts = _texts()
    pages = {i: texts[i] for i in (87839, 87840, 87841, 87842)}
    pages[87842] = pages[87842].replace("21/03/2023", "99/99/2023")  # one unreadable page
    known = _Known([87839, 87840, 87841, 87842], 87842)
    with SeneddServer(pages) as server:
        first, _ = _poll(server, known, {}, stop_after_misses=2, recheck_per_poll=2)
        second, _ = _poll(server, known, first[-1].state, stop_after_misses=2,
                          recheck_per_poll=2)  # fmt: skip
        third, _ = _poll(server, known, second[-1].state, stop_after_misses=2,
                         recheck_per_poll=2)  # fmt: skip
    assert [q.uin for b in first for q in b.items] == ["WQ87839", "WQ87840"]
    assert [q.uin for b in second for q in b.items] == ["WQ87841"]
    assert [s for b in second for s in b.skipped] == [
        "senedd WQ87842: no readable tabling date ('99/99/2023')"
    ]
    assert second[-1].state == {"recheck_after": 87842}
    assert [q.uin for b in third for q in b.items] == ["WQ87839", "WQ87840"]  # round again


# -- end to end, as a user would -------------------------------------------------------------


def _config(write_config: Callable[..., Path], replay: ReplayServer, wales: SeneddServer) -> Path:
    extra = (
        "[sources.senedd]\n"
        f'enabled = true\nbase_url = "{wales.base_url}"\nrequests_per_second = 1000\n'
        "start_id = 87839\nstop_after_misses = 3\nmax_retries = 1\nbackoff_seconds = 0.01\n"
    )
    return write_config(api_config(replay.base_url, extra))


def _site() -> tuple[dict[int, str], str, str]:
    """Four questions of 21/03/2023 as their own pages; WQ87840 first unanswered."""
    texts = _texts()
    pages = {i: ASKER + texts[i] for i in (87839, 87840, 87841, 87842)}
    answered = pages[87840]
    pending = answered.split("\nAnswered by")[0] + "\nTo be answered by: First Minister"
    return pages, pending, answered


def test_a_senedd_question_goes_from_tabled_to_answered_into_search_and_show(
    replay: ReplayServer, write_config: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    pages, pending, answered = _site()
    with SeneddServer({**pages, 87840: pending}) as wales:
        config = _config(write_config, replay, wales)
        db = config.parent / "pqwatch.db"
        first = cli("--config", config, "poll")
        assert first.exit_code == 0, first.stderr
        statuses = rows(db, "SELECT uin, status FROM question WHERE parliament = 'wales'")
        assert sorted(statuses) == [("WQ87839", "answered"), ("WQ87840", "unanswered"),
                                    ("WQ87841", "answered"), ("WQ87842", "answered")]  # fmt: skip

        wales.pages[87840] = answered  # the answer arrives; the walk finds nothing new
        second = cli("--config", config, "poll")
        assert second.exit_code == 0, second.stderr
        assert ("/WrittenQuestion/87840", "", 200) in wales.requests[-4:]
        events = rows(
            db,
            "SELECT e.kind, e.event_date FROM event e JOIN question q ON q.id = e.question_id "
            "WHERE q.uin = 'WQ87840' ORDER BY e.id",
        )
        assert events == [("tabled", "2023-03-21"), ("answered", "2023-03-28")]

        # Nothing new and nothing changed: nothing is written.
        before = rows(db, "SELECT count(*), max(updated_at) FROM question")
        events_before = rows(db, "SELECT count(*) FROM event")
        third = cli("--config", config, "poll")
        assert third.exit_code == 0, third.stderr
        assert rows(db, "SELECT count(*), max(updated_at) FROM question") == before
        assert rows(db, "SELECT count(*) FROM event") == events_before

    found = cli("--config", config, "search", "parliament:wales USA", "--format", "json")
    assert found.exit_code == 0, found.stderr
    hits = json.loads(found.stdout)["hits"]
    assert [h["uin"] for h in hits] == ["WQ87840"]
    assert hits[0]["url"] == "https://record.senedd.wales/WrittenQuestion/87840"
    assert hits[0]["asking_member"] == "Andrew R.T. Davies"
    dept = cli("--config", config, "search", 'dept:"minister for economy"', "--format", "json")
    assert [h["uin"] for h in json.loads(dept.stdout)["hits"]] == ["WQ87839"]

    shown = cli("--config", config, "show", "WQ87840")
    assert shown.exit_code == 0, shown.stderr
    assert "WQ87840" in shown.stdout and "Senedd" in shown.stdout
    assert "did not travel to the USA" in shown.stdout and "First Minister" in shown.stdout


@pytest.mark.parametrize(
    ("status", "body", "kind", "with_open"),
    [(500, b"", "text/html", True),
     (200, b"<html><body>Service page</body></html>", "text/html", True),
     # Nothing open to read again: the newest stored question is read, and is junk too.
     (200, b"<html><body>Service page</body></html>", "text/html", False),
     (200, b'{"error": "down"}', "application/json", True)],
)  # fmt: skip
def test_garbage_fails_senedd_alone_and_keeps_what_is_stored(
    status: int,
    body: bytes,
    kind: str,
    with_open: bool,
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    pages, pending, answered = _site()
    with SeneddServer({**pages, 87840: pending if with_open else answered}) as wales:
        config = _config(write_config, replay, wales)
        db = config.parent / "pqwatch.db"
        assert cli("--config", config, "poll").exit_code == 0
        state = rows(db, "SELECT cursor_date, state_json FROM source_state "
                         "WHERE source = 'senedd'")  # fmt: skip
        stored = rows(db, "SELECT uin, status, content_hash FROM question ORDER BY uin")
        if status != 200:
            wales.fail_with = status
        else:
            wales.body, wales.content_type = body, kind
        result = cli("--config", config, "poll")
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if "senedd" in ln]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert rows(db, "SELECT uin, status, content_hash FROM question ORDER BY uin") == stored
    assert rows(db, "SELECT cursor_date, state_json FROM source_state "
                    "WHERE source = 'senedd'") == state  # fmt: skip
    assert rows(db, "SELECT consecutive_failures FROM source_state "
                    "WHERE source = 'uk_parliament'") == [(0,)]  # fmt: skip
