"""The replay server: loading recordings, the list/detail endpoints, list-form text, faults."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

from pqwatch.testing.replay import (
    Fault,
    ReplayServer,
    list_answer_text,
    list_form,
    list_question_text,
    load_items,
    main,
)
from tests.conftest import REPO, readline_within

LIST = "/api/writtenquestions/questions"
UK = Path("uk_parliament")
DUMP_2023_12 = UK / "monthly_list_dumps" / "commons_tabled_2023-12.json.gz"
LONGFORM_2023_12 = UK / "longform_detail_text" / "longform_2023-12.json.gz"
DUMP_2024_07 = UK / "monthly_list_dumps" / "commons_tabled_2024-07.json.gz"
LONGFORM_2024_07 = UK / "longform_detail_text" / "longform_2024-07.json.gz"
DUMP_2024_08 = UK / "monthly_list_dumps" / "commons_tabled_2024-08.json.gz"
SNAPSHOTS = UK / "list_snapshots_2026-07"
SNAP_07_02 = SNAPSHOTS / "commons_tabled_2026-07_asof_2026-07-02_commit-b966e92.json.gz"
SNAP_07_08 = SNAPSHOTS / "commons_tabled_2026-07_asof_2026-07-08_commit-0472129.json.gz"
SNAP_06_PLAIN = SNAPSHOTS / "commons_tabled_2026-06_asof_2026-06-02_commit-fcf789f.json"
LONGFORM_2026_07 = UK / "longform_detail_text" / "longform_2026-07.json.gz"
HTTP_2021 = UK / "recorded_http_2021"
ASKING_4651 = HTTP_2021 / "wq_list_tabled_2021-02-01_askingMember4651.json"
TABLED_BODY11 = HTTP_2021 / "wq_list_tabled_2021-02-01_answeringBody11.json"
ANSWERED_BODY11 = HTTP_2021 / "wq_list_answered_2021-02-01_answeringBody11.json"
STATEMENTS = HTTP_2021 / "ws_list_made_2021-02-01_take20.json"
AWS_LIST = UK / "aws_samples" / "wq_list_page_20_results.json"
AWS_DETAIL = UK / "aws_samples" / "wq_detail_1679416.json"


# --------------------------------------------------------------------------- helpers


@cache
def _load(*paths: Path) -> dict[int, dict[str, Any]]:
    # The server copies what it is given and never mutates nested values, so tests can
    # share one parse of each (large) recording.
    return load_items(paths)


@cache
def _raw(path: Path) -> Any:
    data = path.read_bytes()
    return json.loads(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)


def recorded_values(path: Path) -> dict[int, dict[str, Any]]:
    """The recorded list items of a list file, by id, exactly as the API sent them."""
    data = _raw(path)
    entries = data["results"] if isinstance(data, dict) else data
    return {e["value"]["id"]: e["value"] for e in entries}


# Everything is plain HTTP on localhost; one TLS context for all clients saves building
# (and loading certificates into) a new one per client.
TLS = httpx.create_ssl_context()


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start ReplayServers (stopped at teardown) and hand back (server, client)."""
    opened: list[tuple[ReplayServer, httpx.Client]] = []

    def start(items: Any = ()) -> tuple[ReplayServer, httpx.Client]:
        server = ReplayServer(items).start()
        client = httpx.Client(base_url=server.base_url, timeout=5, verify=TLS)
        opened.append((server, client))
        return server, client

    yield start
    for server, client in opened:
        client.close()
        server.stop()


def get_list(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get(LIST, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(body: dict[str, Any]) -> list[int]:
    return [r["value"]["id"] for r in body["results"]]


# --------------------------------------------------------------------------- loading


def test_loads_a_list_envelope(data_dir: Path) -> None:
    items = load_items([data_dir / ASKING_4651])
    assert len(items) == 9
    assert all(v["askingMemberId"] == 4651 for v in items.values())
    assert len(load_items([data_dir / AWS_LIST])) == 20


def test_loads_json_arrays_plain_or_gzip(data_dir: Path) -> None:
    assert len(load_items([data_dir / DUMP_2024_08])) == 1004  # .json.gz
    assert len(load_items([data_dir / SNAP_06_PLAIN])) == 192  # plain .json


def test_gzip_is_detected_by_content_not_name(data_dir: Path, tmp_path: Path) -> None:
    misnamed_gzip = tmp_path / "list.json"
    misnamed_gzip.write_bytes(gzip.compress((data_dir / ASKING_4651).read_bytes()))
    misnamed_plain = tmp_path / "list.json.gz"
    misnamed_plain.write_bytes((data_dir / ASKING_4651).read_bytes())
    assert (
        load_items([misnamed_gzip]) == load_items([misnamed_plain]) == _load(data_dir / ASKING_4651)
    )


def test_loads_a_detail_response(data_dir: Path) -> None:
    items = load_items([data_dir / AWS_DETAIL])
    assert list(items) == [1679416]
    assert items[1679416]["answerText"].startswith("<p>")


def test_longform_overlay_applies_after_all_items_whatever_the_order(data_dir: Path) -> None:
    longform = _raw(data_dir / LONGFORM_2023_12)
    after = _load(data_dir / DUMP_2023_12, data_dir / LONGFORM_2023_12)
    before = _load(data_dir / LONGFORM_2023_12, data_dir / DUMP_2023_12)
    assert after == before
    assert len(after) == 2989
    for key, full in longform.items():
        assert after[int(key)]["questionText"] == full["question_text"]
        assert after[int(key)]["answerText"] == full["answer_text"]
    assert sum(len(v["questionText"]) > 255 for v in after.values()) > 700


def test_longform_overlay_touches_only_loaded_ids(data_dir: Path) -> None:
    assert load_items([data_dir / LONGFORM_2023_12]) == {}
    # The aws detail (2024-01) is not in the 2023-12 overlay: it stays as recorded.
    items = load_items([data_dir / AWS_DETAIL, data_dir / LONGFORM_2023_12])
    assert items == load_items([data_dir / AWS_DETAIL])


def test_longform_null_answer_keeps_the_recorded_answer(data_dir: Path) -> None:
    # The 2026-07 full texts were fetched before most answers: answer_text is null there.
    snapshot = recorded_values(data_dir / SNAP_07_08)
    longform = _raw(data_dir / LONGFORM_2026_07)
    items = _load(data_dir / SNAP_07_08, data_dir / LONGFORM_2026_07)
    answered_null = [
        int(k)
        for k, v in longform.items()
        if v["answer_text"] is None and snapshot.get(int(k), {}).get("answerText")
    ]
    assert answered_null
    for question_id in answered_null:
        assert items[question_id]["answerText"] == snapshot[question_id]["answerText"]


def test_later_files_replace_earlier_ids(data_dir: Path) -> None:
    first, last = recorded_values(data_dir / SNAP_07_02), recorded_values(data_dir / SNAP_07_08)
    items = _load(data_dir / SNAP_07_02, data_dir / SNAP_07_08)
    changed = [i for i in first if i in last and first[i] != last[i]]
    assert changed  # transfers, headings filled in, answers
    assert all(items[i] == last[i] for i in changed)


def test_unrecognised_files_raise_value_error_naming_the_file(
    data_dir: Path, tmp_path: Path
) -> None:
    odd = tmp_path / "odd.json"
    odd.write_text('{"hello": "world"}', encoding="utf-8")
    broken = tmp_path / "broken.json.gz"
    broken.write_bytes(gzip.compress(b"{not json"))
    for path in (odd, broken):
        with pytest.raises(ValueError, match=path.name):
            load_items([path])
    # Written statements are read, and held apart from the questions.
    assert load_items([data_dir / STATEMENTS]) == {}
    assert len(ReplayServer.from_files([data_dir / STATEMENTS]).statements) == 10
    with pytest.raises(ValueError, match="odd.json"):
        ReplayServer.from_files([data_dir / ASKING_4651, odd])


# --------------------------------------------------------------------------- list form


def test_list_form_reproduces_recorded_list_items_2023_12(data_dir: Path) -> None:
    """Measured: all 840 full texts of 2023-12 (39 answers with tables, 312 with empty
    paragraphs, 17 with entities in the first 255 characters) cut to exactly the recorded
    list text, and every one of the 2,989 list items comes back identical, field for field."""
    recorded = recorded_values(data_dir / DUMP_2023_12)
    longform = _raw(data_dir / LONGFORM_2023_12)
    items = _load(data_dir / DUMP_2023_12, data_dir / LONGFORM_2023_12)
    paired = [int(k) for k in longform]
    assert len(paired) == 840 and all(i in recorded for i in paired)
    question_hits = sum(
        list_question_text(longform[str(i)]["question_text"]) == recorded[i]["questionText"]
        for i in paired
    )
    answer_hits = sum(
        list_answer_text(longform[str(i)]["answer_text"]) == recorded[i]["answerText"]
        for i in paired
    )
    assert (question_hits, answer_hits) == (840, 840)
    assert sum(list_form(v, expand_member=False) == recorded[k] for k, v in items.items()) == 2989


def test_list_form_reproduces_recorded_list_items_2024_07(data_dir: Path) -> None:
    # 518/518 paired; includes 5 answers of exactly 255 characters (no "...") and id
    # 1722647, whose U+200E marks the list shows as "?".
    recorded = recorded_values(data_dir / DUMP_2024_07)
    items = _load(data_dir / DUMP_2024_07, data_dir / LONGFORM_2024_07)
    assert "\u200e" in items[1722647]["questionText"]
    assert "?PM2.5" in recorded[1722647]["questionText"]
    assert all(list_form(v) == recorded[k] for k, v in items.items())


def test_list_form_against_2026_snapshot_is_limited_by_fetch_timing(data_dir: Path) -> None:
    # Measured 645 of 662 paired questions. Of the 17 misses, 16 were rewritten between the
    # snapshot and the full-text fetch (transferred questions), and one (id 1923706) has a
    # U+00A0 that this list shows as a space, while 2023-24 lists keep U+00A0.
    recorded = recorded_values(data_dir / SNAP_07_08)
    longform = _raw(data_dir / LONGFORM_2026_07)
    items = _load(data_dir / SNAP_07_08, data_dir / LONGFORM_2026_07)
    paired = [int(k) for k in longform if int(k) in recorded]
    hits = sum(list_form(items[i])["questionText"] == recorded[i]["questionText"] for i in paired)
    assert (hits, len(paired)) == (645, 662)


def test_list_text_rules() -> None:
    long_html = "<p>" + "a" * 200 + "</p><p> </p><p>b &amp; " + "c" * 100 + "</p>"
    assert list_answer_text(long_html) == ("a" * 200 + " b &amp; " + "c" * 100)[:255] + "..."
    assert list_answer_text("<p>" + "x" * 255 + "</p>") == "x" * 255  # no "..." at 255
    assert list_answer_text("<p>One.</p><p>Two.</p>") == "One.Two."
    assert list_answer_text(list_answer_text(long_html)) == list_answer_text(long_html)
    assert list_question_text("q" * 300) == "q" * 255
    assert list_question_text("give\u202fkids CO\u2082 non\u2011party \u2019\xa3") == (
        "give kids CO2 non-party \u2019\xa3"
    )
    value = {"id": 1, "questionText": "q", "answerText": None, "askingMember": {"id": 2}}
    assert list_form(value)["originalAnswerText"] == ""
    assert list_form(value, expand_member=False)["askingMember"] is None


def test_serving_a_list_recording_gives_it_back_unchanged(data_dir: Path, serve: Any) -> None:
    recorded = recorded_values(data_dir / ASKING_4651)
    _, client = serve(_load(data_dir / ASKING_4651).values())
    body = get_list(client, askingMemberId=4651, expandMember="true", take=100)
    assert body["totalResults"] == 9
    assert {r["value"]["id"]: r["value"] for r in body["results"]} == recorded
    assert all(
        r["links"] == [{"rel": "self", "href": f"/Questions/{i}", "method": "GET"}]
        for r, i in zip(body["results"], ids(body), strict=True)
    )


# --------------------------------------------------------------------------- list endpoint


def test_filters_by_tabled_answered_and_corrected_windows(data_dir: Path, serve: Any) -> None:
    values = list(_load(data_dir / DUMP_2023_12).values())
    _, client = serve(values)

    def count(field: str, start: str, end: str) -> int:
        return sum(v[field] is not None and start <= v[field][:10] <= end for v in values)

    tabled = get_list(client, tabledWhenFrom="2023-12-05", tabledWhenTo="2023-12-06", take=1000)
    assert tabled["totalResults"] == count("dateTabled", "2023-12-05", "2023-12-06") == 587
    assert {r["value"]["dateTabled"][:10] for r in tabled["results"]} == {
        "2023-12-05",
        "2023-12-06",
    }
    answered = get_list(client, answeredWhenFrom="2024-01-08", answeredWhenTo="2024-01-08")
    assert answered["totalResults"] == count("dateAnswered", "2024-01-08", "2024-01-08") > 0
    corrected = get_list(client, correctedWhenFrom="2024-01-01", correctedWhenTo="2024-01-31")
    assert corrected["totalResults"] == count("dateAnswerCorrected", "2024-01-01", "2024-01-31")
    assert corrected["totalResults"] == 5
    # Names are case-insensitive; a date-time is compared by its date part.
    lower = get_list(client, tabledwhenfrom="2023-12-05T00:00:00", TABLEDWHENTO="2023-12-06")
    assert lower["totalResults"] == 587


def test_filters_by_house_members_bodies_uin_and_state(data_dir: Path, serve: Any) -> None:
    values = list(_load(data_dir / TABLED_BODY11, data_dir / ASKING_4651).values())
    _, client = serve(values)
    lords_count = sum(v["house"] == "Lords" for v in values)
    assert (len(values), lords_count) == (31, 6)  # one question is in both recordings
    assert get_list(client)["totalResults"] == 31
    assert get_list(client, house="Lords")["totalResults"] == 6
    assert get_list(client, house="commons")["totalResults"] == 25
    assert get_list(client, house="Bicameral")["totalResults"] == 31
    assert get_list(client, askingMemberId=4651)["totalResults"] == 9
    member = values[0]["answeringMemberId"]
    expected = sum(v["answeringMemberId"] == member for v in values)
    assert get_list(client, answeringMemberId=member)["totalResults"] == expected
    bodies = client.get(LIST, params=[("answeringBodies", "11"), ("answeringBodies", "999")])
    assert bodies.json()["totalResults"] == sum(v["answeringBodyId"] == 11 for v in values)
    lords = next(v for v in values if v["house"] == "Lords")
    assert ids(get_list(client, uin=lords["uin"].lower())) == [lords["id"]]
    assert get_list(client, answered="Unanswered")["totalResults"] == 0
    assert get_list(client, answered="Answered")["totalResults"] == 31


def test_withdrawn_questions_need_include_withdrawn(data_dir: Path, serve: Any) -> None:
    values = [dict(v) for v in _load(data_dir / ASKING_4651).values()]
    values[0]["isWithdrawn"] = True
    _, client = serve(values)
    assert values[0]["id"] not in ids(get_list(client))
    assert get_list(client)["totalResults"] == 8
    assert values[0]["id"] in ids(get_list(client, includeWithdrawn="true"))


def test_order_is_newest_answer_first_then_unanswered(data_dir: Path, serve: Any) -> None:
    _, client = serve(_load(data_dir / SNAP_07_08).values())
    body = get_list(client, take=5000)
    keys = [(r["value"]["dateAnswered"] or "", r["value"]["id"]) for r in body["results"]]
    assert keys == sorted(keys, reverse=True)
    assert keys[0][0] and not keys[-1][0]  # answered first, unanswered (null) last


def test_skip_take_paging_and_total_results(data_dir: Path, serve: Any) -> None:
    _, client = serve(_load(data_dir / DUMP_2024_08).values())
    everything = get_list(client, take=2000)
    assert everything["totalResults"] == len(everything["results"]) == 1004
    default = get_list(client)
    assert len(default["results"]) == 20 and default["totalResults"] == 1004
    pages = [get_list(client, skip=skip, take=300) for skip in range(0, 1004, 300)]
    assert [len(p["results"]) for p in pages] == [300, 300, 300, 104]
    assert all(p["totalResults"] == 1004 for p in pages)
    assert [i for p in pages for i in ids(p)] == ids(everything)
    past_the_end = get_list(client, skip=5000)
    assert past_the_end == {"totalResults": 1004, "results": []}
    assert get_list(client, take=0)["results"] == []


def test_expand_member_false_nulls_members(data_dir: Path, serve: Any) -> None:
    _, client = serve(_load(data_dir / ANSWERED_BODY11).values())
    plain = get_list(client)["results"]
    assert all(
        r["value"]["askingMember"] is None and r["value"]["answeringMember"] is None for r in plain
    )
    expanded = get_list(client, expandMember="true")["results"]
    assert all(r["value"]["askingMember"]["id"] == r["value"]["askingMemberId"] for r in expanded)
    question_id = expanded[0]["value"]["id"]
    detail = client.get(f"{LIST}/{question_id}").json()["value"]
    assert detail["askingMember"] is None and detail["answeringMember"] is None
    detail = client.get(f"{LIST}/{question_id}", params={"expandMember": "True"}).json()
    assert detail["value"]["answeringMember"]["name"]


def test_bad_parameter_values_are_400_problem_details(data_dir: Path, serve: Any) -> None:
    _, client = serve(_load(data_dir / ASKING_4651).values())
    for params in (
        {"take": "abc"},
        {"skip": "-1"},
        {"tabledWhenFrom": "yesterday"},
        {"answeredWhenTo": "2021-02-30"},
        {"house": "Mars"},
        {"answered": "maybe"},
        {"expandMember": "yes"},
        {"askingMemberId": "x"},
    ):
        response = client.get(LIST, params=params)
        assert response.status_code == 400, params
        problem = response.json()
        assert problem["status"] == 400 and problem["title"] and problem["type"]
        assert next(iter(params.values())) in problem["detail"]


# --------------------------------------------------------------------------- detail, 404


def test_detail_returns_full_html_text(data_dir: Path, serve: Any) -> None:
    longform = _raw(data_dir / LONGFORM_2023_12)
    _, client = serve(_load(data_dir / DUMP_2023_12, data_dir / LONGFORM_2023_12).values())
    question_id = next(int(k) for k, v in longform.items() if "<table" in v["answer_text"])
    response = client.get(f"{LIST}/{question_id}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.headers["cache-control"] == "public,max-age=30"
    body = response.json()
    assert body["links"] == [{"rel": "self", "href": f"/Questions/{question_id}", "method": "GET"}]
    value = body["value"]
    assert value["questionText"] == longform[str(question_id)]["question_text"]
    assert value["answerText"] == longform[str(question_id)]["answer_text"]
    assert "<table" in value["answerText"] and len(value["questionText"]) > 255
    listed = get_list(client, uIN=value["uin"], tabledWhenFrom=value["dateTabled"][:10])
    assert listed["results"][0]["value"]["answerText"].endswith("...")
    assert "<" not in listed["results"][0]["value"]["answerText"]
    by_date = client.get(f"{LIST}/{value['dateTabled'][:10]}/{value['uin']}")
    assert by_date.json()["value"]["id"] == question_id


def test_unknown_ids_and_paths_are_404(data_dir: Path, serve: Any) -> None:
    _, client = serve(_load(data_dir / ASKING_4651).values())
    paths = (f"{LIST}/1", f"{LIST}/abc", "/", "/api/writtenstatements/statements/1", "/api/x")
    for path in paths:
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["status"] == 404
        assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert client.post(LIST).status_code == 404  # only GET endpoints exist


# --------------------------------------------------------------------------- faults


def test_status_faults_with_retry_after(data_dir: Path, serve: Any) -> None:
    server, client = serve(_load(data_dir / ASKING_4651).values())
    server.add_fault(Fault("status", status=503, retry_after="2"))
    server.add_fault(Fault("status", status=429, retry_after="Wed, 21 Oct 2026 07:28:00 GMT"))
    first, second, third = (client.get(LIST) for _ in range(3))
    assert first.status_code == 503 and first.headers["retry-after"] == "2"
    assert first.json()["status"] == 503
    assert second.status_code == 429 and second.headers["retry-after"].startswith("Wed")
    assert third.status_code == 200
    assert [r.fault for r in server.requests] == ["status", "status", None]


def test_json_status_fault_is_a_200_with_an_error_body(data_dir: Path, serve: Any) -> None:
    server, client = serve(_load(data_dir / ASKING_4651).values())
    server.add_fault(Fault("json_status"))
    response = client.get(LIST)
    assert response.status_code == 200
    assert response.json()["status"] == 500 and response.json()["title"] == "An error occurred"
    assert "results" in client.get(LIST).json()


def test_truncated_json_fault(data_dir: Path, serve: Any) -> None:
    server, client = serve(_load(data_dir / ASKING_4651).values())
    whole = client.get(LIST).content
    server.add_fault(Fault("truncated_json"))
    response = client.get(LIST)
    assert response.status_code == 200
    assert response.content == whole[: len(whole) // 2]
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_delay_fault_times_out_a_short_client(data_dir: Path, serve: Any) -> None:
    server, client = serve(_load(data_dir / ASKING_4651).values())
    server.add_fault(Fault("delay", delay=0.15, times=2))
    with pytest.raises(httpx.ReadTimeout):
        client.get(LIST, timeout=0.05)
    assert client.get(LIST, timeout=5).status_code == 200  # slow, but answers normally
    assert [r.fault for r in server.requests] == ["delay", "delay"]
    server.add_fault(Fault("delay", delay=30))  # stop() must not wait for this one
    with pytest.raises(httpx.ReadTimeout):
        client.get(LIST, timeout=0.05)


def test_drop_fault_closes_the_connection(data_dir: Path, serve: Any) -> None:
    server, client = serve(_load(data_dir / ASKING_4651).values())
    server.add_fault(Fault("drop"))
    with pytest.raises(httpx.TransportError):
        client.get(LIST)
    assert client.get(LIST).status_code == 200
    assert len(server.requests) == 2 and server.requests[0].fault == "drop"


def test_faults_match_endpoints_in_order_and_can_be_cleared(data_dir: Path, serve: Any) -> None:
    server, client = serve(_load(data_dir / ASKING_4651).values())
    question_id = next(iter(_load(data_dir / ASKING_4651)))
    server.add_fault(Fault("status", status=500, match="detail", times=2))
    server.add_fault(Fault("status", status=503, match="detail"))
    assert client.get(LIST).status_code == 200
    statuses = [client.get(f"{LIST}/{question_id}").status_code for _ in range(4)]
    assert statuses == [500, 500, 503, 200]
    server.add_fault(Fault("status", status=500, match="list"))
    server.clear_faults()
    assert client.get(LIST).status_code == 200
    with pytest.raises(ValueError):
        Fault("explode")
    with pytest.raises(ValueError):
        Fault("status", match="everything")


def test_requests_are_recorded(data_dir: Path, serve: Any) -> None:
    server, client = serve(_load(data_dir / ASKING_4651).values())
    client.get(LIST, params=[("answeringBodies", "11"), ("answeringBodies", "17"), ("take", "5")])
    client.get(f"{LIST}/1")
    client.get("/elsewhere")
    first, second, third = server.requests
    assert first.path == LIST and first.endpoint == "list"
    assert first.query == {"answeringBodies": ["11", "17"], "take": ["5"]}
    assert (second.endpoint, third.endpoint) == ("detail", None)
    assert all(r.method == "GET" and r.fault is None for r in server.requests)


# --------------------------------------------------------------------------- datasets, life


def test_load_files_swaps_snapshots_while_serving(data_dir: Path, serve: Any) -> None:
    server, client = serve()
    assert get_list(client)["totalResults"] == 0
    assert server.load_files([data_dir / SNAP_07_02]) == 500
    assert get_list(client, answered="Answered")["totalResults"] == 0
    assert server.load_files([data_dir / SNAP_07_08]) == 2078
    assert get_list(client, answered="Answered")["totalResults"] == 169
    assert server.load_files([data_dir / SNAP_06_PLAIN], replace=False) == 2078 + 192
    server.set_items([], replace=True)
    assert get_list(client)["totalResults"] == 0


def test_overlay_loaded_later_applies_to_held_items(data_dir: Path, serve: Any) -> None:
    server, client = serve()
    server.load_files([data_dir / DUMP_2023_12])
    question_id = int(next(iter(_raw(data_dir / LONGFORM_2023_12))))
    before = client.get(f"{LIST}/{question_id}").json()["value"]["questionText"]
    server.load_files([data_dir / LONGFORM_2023_12], replace=False)
    after = client.get(f"{LIST}/{question_id}").json()["value"]["questionText"]
    assert len(before) == 255 and after.startswith(before) and len(after) > 255


def test_context_manager_and_quiet_stderr(
    data_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    server = ReplayServer.from_files([data_dir / ASKING_4651])
    with pytest.raises(RuntimeError):
        _ = server.base_url
    with server, httpx.Client(base_url=server.base_url, verify=TLS) as client:
        assert server.base_url.startswith("http://127.0.0.1:")
        assert client.get(LIST).status_code == 200
        assert client.get("/missing").status_code == 404
        server.add_fault(Fault("drop"))
        with pytest.raises(httpx.TransportError):
            client.get(LIST)
    assert capfd.readouterr().err == ""


def test_command_line(data_dir: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    process = subprocess.Popen(
        [sys.executable, "-m", "pqwatch.testing.replay", "--port", "0", str(data_dir / AWS_LIST)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = readline_within(process.stdout)
        assert "20 written questions" in line
        base_url = line.split(" at ")[1].split()[0]
        with httpx.Client(base_url=base_url, verify=TLS) as client:
            assert client.get(f"{LIST}/1679703").json()["value"]["id"] == 1679703
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert err == ""


def test_command_line_rejects_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main(["--port", "0", str(bad)])
    assert exit_info.value.code == 2
    assert "bad.json" in capsys.readouterr().err
