"""The Scottish Parliament source: recorded records parse, and a local stand-in for
data.parliament.scot carries a question from tabled to answered into the archive, search,
show and the digest, while a failing source never stops the others."""

from __future__ import annotations

import copy
import email
import json
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pqwatch.errors import SourceError
from pqwatch.sources.scottish_parliament import answer_html, member_names, parse_record
from pqwatch.testing.replay import Fault, ReplayServer
from pqwatch.testing.scottish import ScottishServer
from tests.conftest import CliResult, api_config, require_data, rows

WAVE2 = "wave2/scottish_parliament/motionsquestionsanswersquestions_2016_20_records_at_offsets_5000000_and_10296000.json"  # noqa: E501
WAVE1 = "scottish_parliament/motionsquestionsanswersquestions_2016_first14_records.json"


def _records() -> list[dict[str, Any]]:
    data = require_data()
    out: list[dict[str, Any]] = []
    for name in (WAVE1, WAVE2):
        out += json.loads((data / name).read_text(encoding="utf-8"))
    return out


def _by_ref(records: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    return next(r for r in records if r["EventID"] == ref)


def test_every_recorded_record_parses_with_its_reference_kind_and_answer() -> None:
    records = _records()
    parsed = [parse_record(r, {}) for r in records]
    assert len({p.source_id for p in parsed}) == len(records) == 34
    q = next(p for p in parsed if p.uin == "S5W-02060")
    assert (q.parliament, q.kind, q.house) == ("scotland", "question", "Scottish Parliament")
    assert q.source_id == "314885" and q.heading == "Written question"
    assert str(q.date_tabled) == "2016-08-18" and str(q.date_answered) == "2016-09-06"
    assert q.answering_member is not None and q.answering_member.name == "Kevin Stewart"
    assert q.asking_member is not None and q.asking_member.name == "MSP 5709"
    assert q.asking_member.party == "Scottish Conservative and Unionist Party"
    assert q.answer_raw and q.answer_raw.startswith("<p>A full five-year policy review")
    # Written, topical and First Minister's questions are told apart.
    kinds = {p.uin.split("-")[0][-1]: p.heading for p in parsed if p.uin}
    assert kinds == {
        "W": "Written question", "F": "First Minister's question", "T": "Topical question"
    }  # fmt: skip
    # An unanswered record has no answer, answerer or date.
    open_ = [p for p in parsed if p.date_answered is None]
    assert open_ and all(p.answer_raw is None and p.answering_member is None for p in open_)


def test_a_cross_reference_links_to_the_question_it_names() -> None:
    q = parse_record(_by_ref(_records(), "S5W-02067"), {})
    assert q.answer_raw is not None
    assert (
        '<a href="https://www.parliament.scot/chamber-and-committees/questions-and-answers/'
        'question?ref=S5W-02066">S5W-02066</a>'
    ) in q.answer_raw
    assert '<a href="http://www.parliament.scot/parliamentarybusiness/28877.aspx">' in (
        q.answer_raw
    )


def test_text_is_unescaped_and_names_come_from_the_members_list() -> None:
    record = copy.deepcopy(_by_ref(_records(), "S5W-02060"))
    record["ItemText"] = "To ask about the &pound;5 &rsquo;fund&rsquo; <b>now</b>"
    names = member_names(
        [{"PersonID": 5709, "ParliamentaryName": "Smith, Jane"}, {"PersonID": "x"}, "odd"]
    )
    q = parse_record(record, names)
    assert q.question_text == "To ask about the £5 ’fund’ <b>now</b>"
    assert q.asking_member is not None and q.asking_member.name == "Jane Smith"
    assert "<b>" not in answer_html("a <b>bold</b> claim")


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "UniqueID",
                "EventID",
                "EventSubTypeID",
                "MSPID",
                "Party",
                "SubmissionDateTime",
                "ApprovedDate",
                "ItemText",
                "AnswerText",
                "AnswerDate",
                "AnsweredByMSP",
                "Title",
                "ExpectedAnswerDate",
                "RegisteredInterest",
            ]
        ),  # fmt: skip
        st.one_of(
            st.none(),
            st.text(max_size=30),
            st.integers(-5, 10**7),
            st.booleans(),
            st.just(""),
            st.just("2016-08-18T15:57:00"),
            st.just("S5W-1"),
            st.lists(st.integers(), max_size=2),
        ),  # fmt: skip
    )
)
def test_any_record_is_stored_or_refused_with_a_reason(record: dict[str, Any]) -> None:
    """Fields present, absent, empty and odd: a record parses or is a SourceError (one line,
    the record skipped), never another exception."""
    try:
        q = parse_record(record, {})
    except SourceError as exc:
        assert "\n" not in str(exc)
        return
    assert q.source_id.isdigit() and q.question_text
    assert (q.answer_raw is None) == (q.date_answered is None)


# -- end to end, as a user would -------------------------------------------------------------


def _config(write_config: Callable[..., Path], replay: ReplayServer, scot: ScottishServer) -> Path:
    extra = (
        "[sources.scottish_parliament]\n"
        f'enabled = true\nbase_url = "{scot.base_url}"\nrequests_per_second = 1000\n'
        "min_minutes_between_downloads = 0\nmax_retries = 1\nbackoff_seconds = 0.01\n"
        '[[watches]]\nname = "Home reports"\nquery = "home report"\n'
        '[[subscribers]]\nemail = "officer@example.org"\nname = "Officer"\n'
    )
    return write_config(api_config(replay.base_url, extra))


def test_a_scottish_question_goes_from_tabled_to_answered_into_search_show_and_digest(
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
    tmp_path: Path,
) -> None:
    records = _records()
    target = _by_ref(records, "S5W-02060")
    unanswered = {**target, "AnswerText": "", "AnswerDate": None, "AnsweredByMSP": ""}
    others = [r for r in records if r is not target]
    with ScottishServer({None: [*others, unanswered]}) as scot:
        config = _config(write_config, replay, scot)
        db = config.parent / "pqwatch.db"
        first = cli("--config", config, "poll")
        assert first.exit_code == 0, first.stderr
        stored = rows(db, "SELECT count(*) FROM question WHERE parliament = 'scotland'")
        assert stored == [(len(records),)]
        assert rows(db, "SELECT status FROM question WHERE uin = 'S5W-02060'") == [("unanswered",)]

        scot.years = {None: [*others, target]}  # the answer arrives
        second = cli("--config", config, "poll")
        assert second.exit_code == 0, second.stderr
        events = rows(
            db,
            "SELECT e.kind, e.event_date FROM event e JOIN question q ON q.id = e.question_id "
            "WHERE q.uin = 'S5W-02060' ORDER BY e.id",
        )
        assert events == [("tabled", "2016-08-18"), ("answered", "2016-09-06")]

        # Unchanged: a conditional request, answered 304, writes nothing.
        before = rows(db, "SELECT count(*), max(updated_at) FROM question")
        third = cli("--config", config, "poll")
        assert third.exit_code == 0, third.stderr
        assert scot.requests[-1][2] == 304
        assert rows(db, "SELECT count(*), max(updated_at) FROM question") == before

    found = cli("--config", config, "search", "parliament:scotland home report", "--format",
                "json")  # fmt: skip
    assert found.exit_code == 0, found.stderr
    hits = json.loads(found.stdout)["hits"]
    assert [h["uin"] for h in hits] == ["S5W-02060"]
    assert hits[0]["parliament"] == "scotland" and hits[0]["answering_member"] == "Kevin Stewart"
    assert hits[0]["url"].endswith("question?ref=S5W-02060")
    assert (
        json.loads(
            cli(
                "--config",
                config,
                "search",
                "parliament:westminster home report",
                "--format",
                "json",
            ).stdout  # fmt: skip
        )["hits"]
        == []
    )

    shown = cli("--config", config, "show", "s5w-02060")
    assert shown.exit_code == 0, shown.stderr
    assert "Scottish Parliament, written question · S5W-02060" in shown.stdout
    assert "by Kevin Stewart" in shown.stdout and "Home Report" in shown.stdout

    out = tmp_path / "preview"
    dry = cli("--config", config, "digest", "--dry-run", "--out", str(out))
    assert dry.exit_code == 0, dry.stderr
    [eml] = out.glob("*.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=default)
    assert isinstance(msg, EmailMessage)
    body = msg.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Scottish Parliament, written question · S5W-02060" in text
    assert "Answer by Kevin Stewart, 6 Sep 2016:" in text
    assert "A full five-year policy review of the Home Report" in text


@pytest.mark.parametrize("garbage", [b"<html>Service page</html>", b'[{"UniqueID": 1,', b"{}"])
def test_garbage_fails_that_source_alone_and_keeps_what_is_stored(
    garbage: bytes,
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    require_data()
    replay.load_files(
        [
            require_data()
            / "uk_parliament/recorded_http_2021/wq_list_tabled_2021-02-01_askingMember4651.json"
        ]
    )  # noqa: E501
    records = _records()
    with ScottishServer({None: records}) as scot:
        config = _config(write_config, replay, scot)
        db = config.parent / "pqwatch.db"
        assert cli("--config", config, "poll").exit_code == 0
        state = rows(db, "SELECT cursor_date, state_json FROM source_state "
                         "WHERE source = 'scottish_parliament'")  # fmt: skip
        scot.body = garbage
        result = cli("--config", config, "poll")
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if "scottish_parliament" in ln]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert rows(db, "SELECT count(*) FROM question WHERE parliament = 'scotland'") == [
        (len(records),)
    ]
    assert rows(db, "SELECT cursor_date, state_json FROM source_state "
                    "WHERE source = 'scottish_parliament'") == state  # fmt: skip
    westminster = rows(db, "SELECT consecutive_failures FROM source_state "
                           "WHERE source = 'uk_parliament'")  # fmt: skip
    assert westminster == [(0,)]


def test_a_failing_westminster_api_does_not_stop_scottish_answers(
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    records = _records()
    replay.add_fault(Fault("status", status=503, times=100))
    with ScottishServer({None: records}) as scot:
        config = _config(write_config, replay, scot)
        result = cli("--config", config, "poll")
    assert result.exit_code == 1
    assert [ln for ln in result.stderr.splitlines() if "uk_parliament" in ln], result.stderr
    db = config.parent / "pqwatch.db"
    assert rows(db, "SELECT count(*) FROM question WHERE parliament = 'scotland'") == [
        (len(records),)
    ]

    # Status and the digest footer report each source on its own.
    status = cli("--config", config, "status")
    assert status.exit_code == 0, status.stderr
    lines = {ln.split(":")[0]: ln for ln in status.stdout.splitlines()}
    assert "1 failure(s) in a row" in lines["Source uk_parliament"]
    assert "0 failure(s) in a row" in lines["Source scottish_parliament"]
    assert "last successful poll never" in lines["Source uk_parliament"]
    out = config.parent / "preview"
    dry = cli("--config", config, "digest", "--dry-run", "--out", str(out))
    assert dry.exit_code == 0, dry.stderr
    [eml] = out.glob("*.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=default)
    assert isinstance(msg, EmailMessage)
    body = msg.get_body(("plain",))
    assert body is not None
    footer = " ".join(body.get_content().split())
    assert "Archive last updated successfully: UK Parliament written questions not yet, " \
        "Scottish Parliament " in footer  # fmt: skip
    assert "Warning: 1 poll of UK Parliament written questions failed during this period" in footer
