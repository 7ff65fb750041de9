"""The Northern Ireland Assembly source: AIMS's envelope quirks are read as they come, and a
local stand-in for data.niassembly.gov.uk carries a question from tabled to answered into the
archive, search and show, while garbage from it fails that source alone.

No real questions.asmx response has been recorded (shared/data/wave2/SOURCES.md); the real
recordings used are the AIMS members list (the envelope and its string typing) and the
Assembly's list of unanswered questions (a real question's wording)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pqwatch.config import NIAssemblyConfig
from pqwatch.errors import SourceError
from pqwatch.sources import ni_assembly
from pqwatch.sources.base import Batch
from pqwatch.sources.ni_assembly import (
    UK,
    NIAssemblySource,
    answer_html,
    member_names,
    parse_record,
    uk_date,
    unwrap,
)
from pqwatch.testing.ni_assembly import NIAssemblyServer
from pqwatch.testing.replay import ReplayServer
from pqwatch.types import MemberData, OpenItem, local_id, name_id
from tests.conftest import CliResult, api_config, require_data, rows

MEMBERS = "wave2/northern_ireland/aims_members_GetAllCurrentMembers_JSON_2015.json"
LIST_PAGE = (
    "wave2/northern_ireland/niassembly_consolidated_list_of_questions_page_excerpt_2014.json"
)
REF = "AQW 49327/22-27"


def _members_payload() -> Any:
    return json.loads((require_data() / MEMBERS).read_text(encoding="utf-8"))


def _members() -> list[dict[str, Any]]:
    rows_: list[dict[str, Any]] = _members_payload()["AllMembersList"]["Member"]
    return rows_


def _recorded_question_text() -> str:
    """The first question on the Assembly's recorded list page (its text is cut off there)."""
    page = json.loads((require_data() / LIST_PAGE).read_text(encoding="utf-8"))
    excerpt: str = page["pages"][0]["excerpt"]
    return excerpt[excerpt.index("To ask the First Minister") :]


def _stamp(day: date) -> str:
    """Midnight of a UK day as AIMS writes it, with that day's offset (+00:00 or +01:00)."""
    return datetime.combine(day, time(), tzinfo=UK).isoformat()


def _today() -> date:
    return datetime.now(UK).date()


# -- the real recordings ---------------------------------------------------------------------


def test_the_recorded_aims_envelope_unwraps_and_names_every_mla() -> None:
    payload = _members_payload()
    members = unwrap(payload, "members")
    assert len(members) == 108 and members == payload["AllMembersList"]["Member"]
    # Every scalar is a string, ids included: the quirk the question endpoints share.
    assert all(isinstance(v, str) for m in members for v in m.values())
    names = member_names(members)
    assert len(names) == 108
    first = members[0]
    assert (first["PersonId"], first["MemberFirstName"], first["MemberLastName"]) == (
        "307",
        "Steven",
        "Agnew",
    )
    assert names[307] == ("Steven Agnew", "Green Party", "North Down")
    assert names[292] == ("Jo-Anne Dobson", "Ulster Unionist Party", "Upper Bann")
    for m in members:
        assert names[int(m["PersonId"])][0] == f"{m['MemberFirstName']} {m['MemberLastName']}"


def test_a_recorded_question_names_its_asker_from_the_recorded_members() -> None:
    """The wording and the asker (Mrs J Dobson, Upper Bann) are the recorded list page's; the
    ids, reference and envelope fields around them are made up in AIMS's form."""
    text = _recorded_question_text()
    assert text.startswith("To ask the First Minister and deputy First Minister why permission")
    record = {
        "DocumentId": "210000",
        "Reference": "AQW 36001/11-16",
        "TabledDate": "2014-09-05T00:00:00+01:00",
        "QuestionText": text,
        "TablerPersonId": "292",
        "TablerName": "Mrs Jo-Anne Dobson",
        "TablerTitle": "MLA - Upper Bann",
        "Department": "Office of the First Minister and deputy First Minister",
    }
    q = parse_record(record, member_names(_members()))
    assert (q.source, q.parliament, q.source_id, q.uin) == (
        "ni_assembly",
        "ni",
        "210000",
        "AQW 36001/11-16",
    )
    assert q.question_text == text and q.date_tabled == date(2014, 9, 5)
    assert q.asking_member is not None and q.asking_member.id == local_id("ni", 292)
    assert q.asking_member.name == "Jo-Anne Dobson"
    assert q.asking_member.party == "Ulster Unionist Party"
    assert q.answering_body_name == "Office of the First Minister and deputy First Minister"
    assert q.answering_body_id == name_id("ni", q.answering_body_name)
    assert q.answer_raw is None and q.answering_member is None


# -- the envelope's quirks -------------------------------------------------------------------


def test_one_row_comes_as_an_object_and_none_as_null() -> None:
    row = {"DocumentId": "1"}
    assert unwrap({"QuestionsList": {"Question": [row, row]}}, "x") == [row, row]
    assert unwrap({"QuestionsList": {"Question": row}}, "x") == [row]
    assert unwrap({"QuestionsList": None}, "x") == []
    assert unwrap({"QuestionsList": {"Question": None}}, "x") == []
    assert unwrap({"QuestionsList": {}}, "x") == []


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        {},
        [{"DocumentId": "1"}],
        {"QuestionsList": "x", "More": 1},
        {"QuestionsList": 3},
        {"QuestionsList": {"Question": "x"}},
        {"QuestionsList": {"Question": [], "Other": []}},
    ],
)
def test_any_other_shape_is_one_line_naming_the_endpoint(payload: Any) -> None:
    with pytest.raises(SourceError) as caught:
        unwrap(payload, "GET /questions.asmx/GetQuestionDetails_JSON?documentId=1")
    message = str(caught.value)
    assert message.startswith("GET /questions.asmx/GetQuestionDetails_JSON?documentId=1: ")
    assert "\n" not in message


def test_every_scalar_a_string_or_not() -> None:
    stringy = {
        "DocumentId": "5",
        "Reference": "AQW 5/22-27",
        "TabledDate": "2024-02-01",
        "TablerPersonId": "307",
        "MinisterPersonId": "200",
        "PriorityRequest": "true",
        "AnsweredOnDate": "2024-02-03T00:00:00+00:00",
        "AnswerPlainText": "Yes.",
    }
    typed = {**stringy, "DocumentId": 5, "TablerPersonId": 307, "MinisterPersonId": 200}
    for record in (stringy, typed):
        q = parse_record(record, {})
        assert q.source_id == "5" and q.heading == "Priority written question"
        assert q.asking_member is not None and q.asking_member.id == local_id("ni", 307)
        assert q.asking_member.name == "MLA 307"  # not in the members list (yet)
        assert q.answering_member is not None and q.answering_member.id == local_id("ni", 200)
        assert q.date_answered == date(2024, 2, 3) and q.answer_raw == "<p>Yes.</p>"
    assert parse_record({**stringy, "PriorityRequest": "false"}, {}).heading == "Written question"
    # Keys are read whatever their case (DocumentID and DepartmentId are both seen in leads).
    q = parse_record({"DOCUMENTID": "6", "tableddate": "2024-02-01", "DepartmentName": "DfE"}, {})
    assert (q.source_id, q.answering_body_name) == ("6", "DfE")


def test_a_record_missing_optional_fields_is_stored_with_what_it_has() -> None:
    q = parse_record({"DocumentId": "7", "TabledDate": "2024-02-01T00:00:00+00:00"}, {})
    assert (q.source_id, q.uin, q.date_tabled) == ("7", None, date(2024, 2, 1))
    assert q.question_text == "(no question text)"
    assert q.asking_member is None and q.answering_body_id is None and q.date_for_answer is None
    # Answered on a day but with no text: stored unanswered, and the gap reported.
    q = parse_record(
        {
            "DocumentId": "8",
            "Reference": REF,
            "TabledDate": "2024-02-01",
            "AnsweredOnDate": "2024-02-05",
        },
        {},
    )
    assert q.answer_raw is None and q.date_answered is None
    assert q.problems == (f"ni_assembly {REF}: answered on 2024-02-05 but no answer text given",)
    # A minister known by title only (no PersonId) is named by the title.
    q = parse_record(
        {
            "DocumentId": "9",
            "TabledDate": "2024-02-01",
            "AnsweredOnDate": "2024-02-02",
            "AnswerPlainText": "No.",
            "MinisterTitle": "Minister of Health",
        },
        {},
    )
    assert q.answering_member is not None
    assert q.answering_member.id == name_id("ni", "Minister of Health")
    for bad in (
        {"TabledDate": "2024-02-01"},
        {"DocumentId": "", "TabledDate": "2024-02-01"},
        {"DocumentId": "x1", "TabledDate": "2024-02-01"},
        {"DocumentId": "1"},
        {"DocumentId": "1", "TabledDate": "2024-02-30"},
        ["DocumentId"],
    ):
        with pytest.raises(SourceError):
            parse_record(bad, {})


@pytest.mark.parametrize(
    ("stamp", "day"),
    [
        ("2008-03-07T00:00:00+00:00", date(2008, 3, 7)),  # GMT
        ("2026-06-22T00:00:00+01:00", date(2026, 6, 22)),  # BST
        # BST began at 01:00 GMT on 29 March 2026 and ended at 02:00 BST on 25 October 2026.
        ("2026-03-29T00:00:00+00:00", date(2026, 3, 29)),
        ("2026-03-30T00:00:00+01:00", date(2026, 3, 30)),
        ("2026-03-29T23:00:00+00:00", date(2026, 3, 30)),  # midnight BST written in UTC
        ("2026-10-25T00:00:00+01:00", date(2026, 10, 25)),
        ("2026-10-24T23:00:00Z", date(2026, 10, 25)),
        ("2026-10-26T00:00:00+00:00", date(2026, 10, 26)),
        ("2026-06-22T00:00:00", date(2026, 6, 22)),  # no offset: the day as written
        ("2026-06-22", date(2026, 6, 22)),
        ("2026-02-30T00:00:00+00:00", None),
        ("22/06/2026", None),
        ("", None),
        ("0001-01-01T00:00:00+01:00", None),  # out of range once moved to UK time
    ],
)
def test_timestamps_are_read_as_the_uk_calendar_day(stamp: str, day: date | None) -> None:
    assert uk_date(stamp) == day


def test_answer_html_is_sanitised_and_plain_text_escaped() -> None:
    html = answer_html(
        {
            "answerhtml": '<html><head><style>p{}</style></head><body><p class="x">'
            "Funding <b>rose</b>.</p><script>alert(1)</script></body></html>"
        }
    )
    assert html == "<p>Funding rose.</p>"
    encoded = answer_html({"answerhtml": "&lt;p&gt;Encoded &amp;amp; decoded&lt;/p&gt;"})
    assert encoded == "<p>Encoded &amp; decoded</p>"
    plain = answer_html({"answerhtml": "<p> </p>", "answerplaintext": "a <b> c\r\n\r\nnext"})
    assert plain == "<p>a &lt;b&gt; c</p><p>next</p>"


# -- the source against the stand-in server -------------------------------------------------


class _Known:
    def __init__(self, open_ids: tuple[str, ...] = ()) -> None:
        self.open = open_ids

    def open_items(self, source: str) -> list[OpenItem]:
        return [OpenItem(i, date(2024, 1, 1)) for i in self.open]

    def highest_id(self, source: str) -> int | None:
        return None


NOW = datetime(2026, 6, 22, 11, tzinfo=UTC)
DAY = date(2026, 6, 22)


def _q(doc: int, tabled: date, answered: date | None = None, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "DocumentId": doc,
        "Reference": f"AQW {doc}/22-27",
        "TabledDate": _stamp(tabled),
        "QuestionText": f"To ask the Minister of Health about question {doc}.",
        "TablerPersonId": 307,
        "TablerName": "Mr Steven Agnew",
        "MinisterPersonId": 200,
        "MinisterTitle": "Minister of Health",
        "Department": "Department of Health",
        "DepartmentID": 77,
        "AnswerByDate": _stamp(tabled + timedelta(days=10)),
        "PriorityRequest": False,
    }
    if answered is not None:
        record |= {
            "AnsweredOnDate": _stamp(answered),
            "AnswerPlainText": f"Answer {doc}.",
            "AnswerHtml": f"<p>Answer {doc}.</p>",
        }
    return record | extra


def _poll(server: NIAssemblyServer, state: dict[str, Any], **kw: Any) -> list[Batch]:
    config = NIAssemblyConfig(
        enabled=True,
        base_url=server.base_url,
        requests_per_second=1000,
        max_retries=0,
        backoff_seconds=0,
    )
    source = NIAssemblySource(config)
    try:
        return list(source.poll(state, kw.pop("known", _Known()), NOW, **kw))
    finally:
        source.close()


def _who(member: MemberData | None) -> tuple[str | None, str | None] | None:
    return (member.name, member.party) if member else None


def _items(batches: list[Batch]) -> dict[str, Any]:
    return {i.source_id: i for b in batches for i in b.items}


def test_a_poll_reads_both_windows_completes_answers_and_then_skips_them() -> None:
    records = [
        _q(1, DAY - timedelta(days=3)),  # tabled, open
        _q(2, DAY - timedelta(days=5), DAY - timedelta(days=1)),  # tabled and answered
        _q(3, DAY - timedelta(days=60), DAY - timedelta(days=40)),  # answered late
        _q(4, DAY - timedelta(days=200), DAY - timedelta(days=150)),  # out of both windows
    ]
    with NIAssemblyServer(records, _members()) as server:
        batches = _poll(server, {})
        calls = [(p.rsplit("/", 1)[1], q) for p, q, _ in server.requests]
    items = _items(batches)
    assert sorted(items) == ["1", "2", "3"]  # 2 once, its answered version
    assert items["1"].answer_raw is None and items["1"].date_tabled == DAY - timedelta(days=3)
    assert items["2"].answer_raw == "<p>Answer 2.</p>" and items["2"].date_answered == date(
        2026, 6, 21
    )
    assert _who(items["2"].answering_member) == ("Simon Hamilton", "Democratic Unionist Party")
    assert _who(items["3"].asking_member) == ("Steven Agnew", "Green Party")
    assert items["3"].answering_body_name == "Department of Health"
    assert items["3"].date_for_answer == date(2026, 5, 3)
    # The windows: answers from 90 days back, tabled from 21, both to tomorrow (is endDate
    # inclusive? not documented), chunked; one details call per answer; names once.
    assert calls == [
        (
            "GetQuestionsForWrittenAnswer_AnsweredInRange_JSON",
            "startDate=2026-03-24&endDate=2026-06-23",
        ),
        (
            "GetQuestionsForWrittenAnswer_TabledInRange_JSON",
            "startDate=2026-06-01&endDate=2026-06-23",
        ),
        ("GetAllCurrentMembers_JSON", ""),
        ("GetQuestionDetails_JSON", "documentId=2"),
        ("GetQuestionDetails_JSON", "documentId=3"),
    ]
    state = batches[-1].state
    assert set(state["answered"]) == {"2", "3"} and state["members_fetched"] == "2026-06-22"

    # Again, nothing changed: the answered rows are known, names are cached, 2 requests.
    with NIAssemblyServer(records, _members()) as server:
        again = _poll(server, state)
        assert len(server.requests) == 2
    assert sorted(_items(again)) == ["1"]  # the open one (its hash stops any write)
    assert again[-1].state == state


def test_answers_in_the_list_rows_need_no_details() -> None:
    records = [_q(2, DAY - timedelta(days=5), DAY - timedelta(days=1))]
    with NIAssemblyServer(records, answers_in_lists=True) as server:
        batches = _poll(server, {})
        paths = [p for p, _, _ in server.requests]
    assert not any(p.endswith("GetQuestionDetails_JSON") for p in paths)
    assert _items(batches)["2"].answer_raw == "<p>Answer 2.</p>"
    # No members list (404): the names given by the rows are used.
    assert _who(_items(batches)["2"].asking_member) == ("Mr Steven Agnew", None)


def test_since_reads_from_that_day_in_chunks_sharing_their_edges() -> None:
    with NIAssemblyServer([]) as server:
        batches = _poll(server, {}, since=date(2026, 1, 1))
        answered = [q for p, q, _ in server.requests if "AnsweredInRange" in p]
    assert answered == [
        "startDate=2026-01-01&endDate=2026-04-03",
        "startDate=2026-04-03&endDate=2026-06-23",
    ]
    assert _items(batches) == {}


def test_details_are_capped_per_poll_open_questions_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ni_assembly, "DETAILS_PER_POLL", 2)
    records = [_q(d, DAY - timedelta(days=30), DAY - timedelta(days=d)) for d in (1, 2, 3, 4)]
    with NIAssemblyServer(records) as server:
        first = _poll(server, {}, known=_Known(("4",)))
        second = _poll(server, first[-1].state)
    assert sorted(_items(first)) == ["1", "4"]  # the open one, then the newest answer
    assert first[-1].problems == ("ni_assembly: 2 answers wait for their text until the next poll",)
    assert sorted(_items(second)) == ["2", "3"]
    assert set(second[-1].state["answered"]) == {"1", "2", "3", "4"}


def test_a_bad_record_is_skipped_with_its_reason_and_the_rest_stored() -> None:
    good = _q(1, DAY - timedelta(days=2))
    no_id = {**_q(2, DAY - timedelta(days=2)), "DocumentId": None}  # served without the key
    undated = _q(3, DAY - timedelta(days=9), DAY - timedelta(days=1), TabledDate="05/09/2014")
    with NIAssemblyServer([good, no_id, undated], answers_in_lists=True) as server:
        batches = _poll(server, {})
    assert sorted(_items(batches)) == ["1"]
    assert [s for b in batches for s in b.skipped] == [
        "ni_assembly: a record has no DocumentId",
        "ni_assembly: record 3 (AQW 3/22-27) has no readable TabledDate",
    ]
    assert batches[-1].state["answered"] == {}  # tried again next poll


def test_details_that_fail_skip_that_question_then_stop_the_source() -> None:
    records = [_q(d, DAY - timedelta(days=9), DAY - timedelta(days=d)) for d in range(1, 8)]
    with NIAssemblyServer(records) as server:
        server.missing_details = {"2"}
        batches = _poll(server, {})
        assert sorted(_items(batches)) == ["1", "3", "4", "5", "6", "7"]
        assert [s for b in batches for s in b.skipped] == [
            "ni_assembly DocumentId 2: no details given (a null QuestionsList)"
        ]
        assert "2" not in batches[-1].state["answered"]
        # A server that has lost every answer is not asked 250 times: five, then a failure.
        server.missing_details = {str(d) for d in range(1, 8)}
        server.requests.clear()
        with pytest.raises(SourceError) as caught:
            _poll(server, {})
        assert str(caught.value) == (
            "GET /questions.asmx/GetQuestionDetails_JSON failed 5 times in a row; "
            "last: no details given (a null QuestionsList)"
        )
        assert sum(p.endswith("GetQuestionDetails_JSON") for p, _, _ in server.requests) == 5


def test_a_server_error_on_a_list_fails_the_poll_before_anything_is_yielded() -> None:
    with NIAssemblyServer([_q(1, DAY)]) as server:
        server.fail_with = 503
        with pytest.raises(SourceError) as caught:
            _poll(server, {})
    assert str(caught.value) == (
        "GET /questions.asmx/GetQuestionsForWrittenAnswer_AnsweredInRange_JSON: HTTP 503 "
        "(gave up after 1 attempts)"
    )


# -- end to end, as a user would -------------------------------------------------------------


def _config(write_config: Callable[..., Path], replay: ReplayServer, ni: NIAssemblyServer) -> Path:
    extra = (
        "[sources.ni_assembly]\n"
        f'enabled = true\nbase_url = "{ni.base_url}"\nrequests_per_second = 1000\n'
        "max_retries = 1\nbackoff_seconds = 0.01\n"
    )
    return write_config(api_config(replay.base_url, extra))


def _story() -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """AQW 49327/22-27 unanswered, then answered; and two others."""
    today = _today()
    target = _q(
        349327,
        today - timedelta(days=10),
        Reference=REF,
        QuestionText="To ask the Minister of Health what funding is planned for "
        "children's hospice care in 2026-27.",
    )
    answered = target | {
        "AnsweredOnDate": _stamp(today - timedelta(days=1)),
        "AnswerHtml": "<p>My Department will provide £2.1 million for children&#8217;s "
        "hospice services.</p><table><tr><td>Trust</td><td>£m</td></tr></table>",
        "AnswerPlainText": "My Department will provide £2.1 million ...",
    }
    others = [
        _q(349000, today - timedelta(days=40), today - timedelta(days=30)),
        _q(
            349400,
            today - timedelta(days=2),
            QuestionText=_recorded_question_text(),
            TablerPersonId=292,
            Department="The Executive Office",
        ),
    ]
    return target, answered, others


def test_an_ni_question_goes_from_tabled_to_answered_into_search_and_show(
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    target, answered, others = _story()
    with NIAssemblyServer([target, *others], _members()) as ni:
        config = _config(write_config, replay, ni)
        db = config.parent / "pqwatch.db"
        first = cli("--config", config, "poll")
        assert first.exit_code == 0, first.stderr
        assert rows(db, "SELECT count(*) FROM question WHERE parliament = 'ni'") == [(3,)]
        assert rows(db, "SELECT status, source_id FROM question WHERE uin = ?", REF) == [
            ("unanswered", "349327")
        ]

        ni.questions = [answered, *others]  # the answer arrives
        second = cli("--config", config, "poll")
        assert second.exit_code == 0, second.stderr
        events = rows(
            db,
            "SELECT e.kind, e.event_date FROM event e JOIN question q ON q.id = e.question_id "
            "WHERE q.uin = ? ORDER BY e.id",
            REF,
        )
        day = _today()
        assert events == [
            ("tabled", str(day - timedelta(days=10))),
            ("answered", str(day - timedelta(days=1))),
        ]
        assert rows(
            db,
            "SELECT count(*) FROM answer a JOIN question q ON q.id = a.question_id WHERE q.uin = ?",
            REF,
        ) == [(1,)]

        # Nothing changed: no details asked for again, nothing written.
        before = rows(db, "SELECT count(*), max(updated_at) FROM question")
        events_before = rows(db, "SELECT count(*) FROM event")
        ni.requests.clear()
        third = cli("--config", config, "poll")
        assert third.exit_code == 0, third.stderr
        assert not [p for p, _, _ in ni.requests if p.endswith("GetQuestionDetails_JSON")]
        assert rows(db, "SELECT count(*), max(updated_at) FROM question") == before
        assert rows(db, "SELECT count(*) FROM event") == events_before

    found = cli("--config", config, "search", "parliament:ni hospice", "--format", "json")
    assert found.exit_code == 0, found.stderr
    hits = json.loads(found.stdout)["hits"]
    assert [h["uin"] for h in hits] == [REF]
    assert hits[0]["parliament"] == "ni" and hits[0]["answering_member"] == "Simon Hamilton"
    assert hits[0]["url"] == (
        "http://aims.niassembly.gov.uk/questions/printquestionsummary.aspx?docid=349327"
    )
    by_dept = cli(
        "--config", config, "search", 'dept:"department of health" hospice', "--format", "json"
    )
    assert [h["uin"] for h in json.loads(by_dept.stdout)["hits"]] == [REF]
    recorded = cli(
        "--config", config, "search", "parliament:ni permission ulster", "--format", "json"
    )
    assert [h["uin"] for h in json.loads(recorded.stdout)["hits"]] == ["AQW 349400/22-27"]

    shown = cli("--config", config, "show", REF.lower())
    assert shown.exit_code == 0, shown.stderr
    assert f"Northern Ireland Assembly, written question · {REF} · id 349327" in shown.stdout
    assert "Asked by Steven Agnew (Green Party, North Down)" in shown.stdout
    assert "To: Department of Health" in shown.stdout
    assert "by Simon Hamilton" in shown.stdout and "£2.1 million" in shown.stdout
    assert "children’s hospice services" in shown.stdout and "Trust | £m" in shown.stdout


@pytest.mark.parametrize(
    "garbage",
    [
        b"<html><body>Server Error in '/' Application.</body></html>",
        b'{"QuestionsList":{"Question":[{"DocumentId":"1",',
        b"{}",
        b"null",
    ],
)
def test_garbage_fails_that_source_alone_and_keeps_what_is_stored(
    garbage: bytes,
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    target, _, others = _story()
    with NIAssemblyServer([target, *others], _members()) as ni:
        config = _config(write_config, replay, ni)
        db = config.parent / "pqwatch.db"
        assert cli("--config", config, "poll").exit_code == 0
        state_sql = "SELECT cursor_date, state_json FROM source_state WHERE source = 'ni_assembly'"
        state = rows(db, state_sql)
        stored = rows(db, "SELECT count(*), max(updated_at) FROM question WHERE parliament = 'ni'")
        ni.body = garbage
        result = cli("--config", config, "poll")
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if "ni_assembly" in ln]
    assert len(lines) == 1, result.stderr
    assert "GetQuestionsForWrittenAnswer_AnsweredInRange_JSON" in lines[0]
    assert "Traceback" not in result.stderr
    assert rows(db, "SELECT count(*), max(updated_at) FROM question WHERE parliament = 'ni'") == (
        stored
    )
    assert rows(db, state_sql) == state
    assert rows(
        db, "SELECT consecutive_failures FROM source_state WHERE source = 'uk_parliament'"
    ) == [(0,)]


# -- anything at all -------------------------------------------------------------------------

_ODD = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True),
    st.booleans(),
    st.just(""),
    st.sampled_from(
        [
            "307",
            "true",
            "2026-03-29T23:00:00+00:00",
            "2026-02-30",
            "AQW 1/22-27",
            "<p>x</p>",
            "&lt;p&gt;y",
            "9" * 5000,
            "０１２",
        ]
    ),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_KEYS = st.sampled_from(
    [
        "DocumentId",
        "Reference",
        "TabledDate",
        "QuestionText",
        "TablerName",
        "TablerPersonId",
        "TablerTitle",
        "MinisterPersonId",
        "MinisterTitle",
        "Department",
        "DepartmentName",
        "AnswerByDate",
        "PriorityRequest",
        "AnsweredOnDate",
        "AnswerPlainText",
        "AnswerHtml",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.one_of(_KEYS, st.text(max_size=12)), _ODD))
def test_any_record_is_stored_or_refused_with_a_one_line_reason(record: dict[str, Any]) -> None:
    """Fields present, absent, empty and odd: a record parses or is a SourceError (one line,
    the record skipped), never another exception."""
    try:
        q = parse_record(record, {307: ("Steven Agnew", "Green Party", "North Down")})
    except SourceError as exc:
        assert "\n" not in str(exc)
        return
    assert q.source_id.isdigit() and q.question_text
    assert (q.answer_raw is None) == (q.date_answered is None)
    assert q.uin is None or "\n" not in q.uin


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=2)
        ),
        max_leaves=8,
    )
)
def test_any_json_unwraps_to_rows_or_a_one_line_error(payload: Any) -> None:
    try:
        got = unwrap(payload, "GET x")
    except SourceError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("GET x: ")
        return
    assert isinstance(got, list)
