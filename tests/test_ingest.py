"""Polling and backfill against the local replay of real API recordings (../shared/data)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from pqwatch.config import UKParliamentConfig
from pqwatch.sources.uk_parliament import UKParliamentClient
from pqwatch.testing.replay import Fault, ReplayServer, load_items
from tests.conftest import CliResult, api_config, open_service, rows

UKP = "uk_parliament"


def _load(path: Path) -> Any:
    raw = path.read_bytes()
    return json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)


def _dump(data_dir: Path, month: str) -> list[Path]:
    base = data_dir / "uk_parliament"
    return [
        base / "monthly_list_dumps" / f"commons_tabled_{month}.json.gz",
        base / "longform_detail_text" / f"longform_{month}.json.gz",
    ]


def _snapshots(data_dir: Path) -> list[tuple[date, Path]]:
    folder = data_dir / "uk_parliament" / "list_snapshots_2026-07"
    out = []
    for p in sorted(folder.glob("commons_tabled_2026-07_asof_*.json.gz")):
        out.append((date.fromisoformat(p.name.split("_asof_")[1][:10]), p))
    return out


def _db(config: Path) -> Path:
    return config.parent / "pqwatch.db"


def _table_fingerprint(db_file: Path) -> list[Any]:
    tables = ["question", "answer", "event", "member", "answering_body", "question_group"]
    return [rows(db_file, f"SELECT * FROM {t} ORDER BY 1") for t in tables]


# -- a whole month: paging, full text, idempotence ------------------------------------------


def test_poll_a_month_stores_every_question_with_full_text(
    data_dir: Path,
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    replay.load_files(_dump(data_dir, "2024-08"))
    source = {i: v for i, v in replay.items.items()}
    config = write_config(api_config(replay.base_url, page_size=100))

    result = cli("--config", config, "poll", "--since", "2024-08-01", "--until", "2024-08-31")
    assert result.exit_code == 0, result.stderr
    db = _db(config)

    stored = {
        int(r[0]): r[1:]
        for r in rows(
            db,
            "SELECT source_id, uin, house, date_tabled, question_text, heading, "
            "answering_body_id, question_text_full FROM question",
        )
    }
    assert set(stored) == set(source)  # every question, once
    for qid, value in source.items():
        uin, house, tabled, text, heading, body, full = stored[qid]
        assert (uin, house, tabled) == (value["uin"], value["house"], value["dateTabled"][:10])
        assert text == value["questionText"]  # the full text, not the list's 255 characters
        assert heading == (" ".join(value["heading"].split()) or None)  # one line, trimmed
        assert body == value["answeringBodyId"]
        assert full == 1

    # Long questions really were cut in the list and completed from the detail endpoint.
    long_ids = [i for i, v in source.items() if len(v["questionText"]) > 255]
    assert long_ids
    detail_paths = {r.path for r in replay.requests if r.endpoint == "detail"}
    assert all(f"/api/writtenquestions/questions/{i}" in detail_paths for i in long_ids)

    # Answers are stored as sanitised HTML with their plain text.
    answered = [i for i, v in source.items() if v.get("answerText")]
    html = dict(
        rows(
            db,
            "SELECT q.source_id, a.answer_html FROM answer a JOIN question q "
            "ON q.id = a.question_id",
        )
    )
    assert set(map(int, html)) == set(answered)
    with_table = [i for i in answered if "<table" in source[i]["answerText"]]
    assert all("<table>" in html[str(i)] for i in with_table)
    paragraphs = [i for i in answered if "<p>" in source[i]["answerText"]]
    assert paragraphs and all("<p>" in html[str(i)] for i in paragraphs)

    # Paging: take=100 pages, stopped at totalResults.
    list_skips = [int(r.query["skip"][0]) for r in replay.requests if r.endpoint == "list"]
    assert 0 in list_skips and 1000 in list_skips and 1100 not in list_skips
    assert f"{len(source)} new questions" in result.stdout

    # Polling the same window again writes nothing new.
    before = _table_fingerprint(db)
    again = cli(
        "--config", config, "poll", "--since", "2024-08-01", "--until", "2024-08-31",
        "--format", "json",
    )  # fmt: skip
    assert again.exit_code == 0, again.stderr
    summary = json.loads(again.stdout)[0]
    assert (summary["new_questions"], summary["new_answers"], summary["items_written"]) == (0, 0, 0)
    assert _table_fingerprint(db) == before


def test_second_poll_makes_no_detail_requests(
    data_dir: Path, replay: ReplayServer, write_config: Callable[..., Path]
) -> None:
    replay.load_files(_dump(data_dir, "2024-08"))
    config = write_config(api_config(replay.base_url))
    with open_service(config) as svc:
        svc.poll(date(2024, 8, 1), date(2024, 8, 10))
        replay.requests.clear()
        [run] = svc.poll(date(2024, 8, 1), date(2024, 8, 10))
    assert run.ok and run.counts.items_written == 0
    assert {r.endpoint for r in replay.requests} == {"list"}


def test_pages_that_shift_are_deduplicated(data_dir: Path) -> None:
    """Items repeated across pages (the list moves while answers arrive) come back once."""
    items = [
        w["value"]
        for w in _load(data_dir / "uk_parliament" / "monthly_list_dumps"
                       / "commons_tabled_2024-08.json.gz")[:25]
    ]  # fmt: skip
    pages = [items[0:10], items[9:19], items[18:25]]  # each page repeats one item

    def handler(request: httpx.Request) -> httpx.Response:
        skip = int(request.url.params["skip"])
        page = pages[skip // 10] if skip // 10 < len(pages) else []
        return httpx.Response(
            200, json={"totalResults": 25, "results": [{"value": v} for v in page]}
        )

    cfg = UKParliamentConfig(base_url="http://replay.invalid", page_size=10)
    with UKParliamentClient(cfg, transport=httpx.MockTransport(handler)) as client:
        got = [
            q.source_id
            for p in client.iter_window("tabled", date(2024, 8, 1), date(2024, 8, 31))
            for q in p.items
        ]
    # 27 items served over three pages; the two repeats are dropped, order kept.
    assert got == [str(v["id"]) for v in items]


# -- lifecycle across real snapshots ----------------------------------------------------------


def _expected_events(snapshots: list[tuple[date, Path]]) -> set[tuple[str, str, str]]:
    """Events the data itself shows, snapshot to snapshot: (id, kind, date)."""
    expected: set[tuple[str, str, str]] = set()
    prev: dict[int, dict[str, Any]] = {}
    for asof, path in snapshots:
        for wrapper in _load(path):
            v = wrapper["value"]
            old = prev.get(v["id"])
            if old is None:
                expected.add((str(v["id"]), "tabled", v["dateTabled"][:10]))
            answered_now = bool(v.get("answerText")) and v.get("dateAnswered")
            if answered_now and v.get("answerIsHolding"):
                if not (old and old.get("answerIsHolding")):
                    expected.add((str(v["id"]), "holding", v["dateAnswered"][:10]))
            elif answered_now and not (
                old and old.get("answerText") and not old.get("answerIsHolding")
            ):
                expected.add((str(v["id"]), "answered", v["dateAnswered"][:10]))
            if old and old["answeringBodyId"] != v["answeringBodyId"]:
                expected.add((str(v["id"]), "transferred", asof.isoformat()))
            prev[v["id"]] = v
    return expected


def test_july_2026_snapshots_replayed_as_successive_polls(
    data_dir: Path, replay: ReplayServer, write_config: Callable[..., Path]
) -> None:
    snapshots = _snapshots(data_dir)
    assert len(snapshots) >= 5
    longform = data_dir / "uk_parliament" / "longform_detail_text" / "longform_2026-07.json.gz"
    config = write_config(api_config(replay.base_url))
    db = _db(config)
    for asof, path in snapshots:
        replay.load_files([path, longform])
        with open_service(config, now=asof) as svc:
            [run] = svc.poll()
        assert run.ok, run.error

    got = set(
        rows(
            db,
            "SELECT q.source_id, e.kind, e.event_date FROM event e "
            "JOIN question q ON q.id = e.question_id",
        )
    )
    expected = _expected_events(snapshots)
    kinds = {k for _, k, _ in expected}
    assert {"tabled", "holding", "answered", "transferred"} <= kinds
    assert got == expected

    # Unanswered -> holding -> answered is one question's story, in that order, with the
    # holding answer kept as its own version.
    versions: dict[int, list[str]] = {}
    for question_id, kind in rows(
        db, "SELECT question_id, kind FROM answer ORDER BY question_id, version"
    ):
        versions.setdefault(question_id, []).append(kind)
    stories = {">".join(kinds) for kinds in versions.values()}
    assert stories and stories <= {"answer", "holding", "holding>answer"}

    # Transfers keep where the question came from and where it went.
    transfers = rows(db, "SELECT detail_json FROM event WHERE kind = 'transferred'")
    for (detail,) in transfers:
        d = json.loads(detail)
        assert d["from_id"] != d["to_id"] and d["from"] and d["to"]

    # Headings filled in later are stored; they are not events.
    last = {w["value"]["id"]: w["value"] for w in _load(snapshots[-1][1])}
    first_seen: dict[int, Any] = {}
    for _, path in snapshots:
        for w in _load(path):
            first_seen.setdefault(w["value"]["id"], w["value"])
    filled = [i for i, v in last.items() if v["heading"] and not first_seen[i]["heading"]]
    assert filled
    headings = dict(rows(db, "SELECT source_id, heading FROM question"))
    # (Stored as one line: real headings sometimes end in a stray CRLF.)
    assert all(headings[str(i)] == " ".join(last[i]["heading"].split()) for i in filled)

    # Polling again on the last day changes nothing.
    before = _table_fingerprint(db)
    with open_service(config, now=snapshots[-1][0]) as svc:
        [run] = svc.poll()
    assert run.ok and run.counts.items_written == 0
    assert _table_fingerprint(db) == before


def test_cursor_moves_to_the_end_of_each_successful_window(
    data_dir: Path, replay: ReplayServer, write_config: Callable[..., Path]
) -> None:
    replay.load_files(_dump(data_dir, "2024-08"))
    config = write_config(api_config(replay.base_url, initial_lookback_days=3))
    with open_service(config, now=date(2024, 8, 20)) as svc:
        [first] = svc.poll()
    assert (first.window_start, first.window_end) == (date(2024, 8, 17), date(2024, 8, 20))
    with open_service(config, now=date(2024, 8, 22)) as svc:
        [second] = svc.poll()
    assert (second.window_start, second.window_end) == (date(2024, 8, 19), date(2024, 8, 22))
    assert rows(_db(config), "SELECT cursor_date FROM source_state") == [("2024-08-22",)]
    tabled = [r.query for r in replay.requests if "tabledWhenFrom" in r.query]
    # The tabled window reaches back revisit_tabled_days (7) to catch transfers and headings.
    assert tabled[-1]["tabledWhenFrom"] == ["2024-08-15"]


# -- corrections, groups, members, sanitising -------------------------------------------------


def test_corrections_keep_the_previous_answer(
    data_dir: Path, replay: ReplayServer, write_config: Callable[..., Path]
) -> None:
    items = {w["value"]["id"]: w["value"] for w in _load(_dump(data_dir, "2023-12")[0])}
    corrected = next(v for v in items.values() if v["answerIsCorrection"])
    before = dict(
        corrected,
        answerIsCorrection=False,
        dateAnswerCorrected=None,
        correctingMemberId=None,
        correctingMember=None,
        answerText="<p>The original answer, before it was corrected.</p>",
    )
    config = write_config(api_config(replay.base_url))
    day = date.fromisoformat(corrected["dateTabled"][:10])
    replay.set_items([before])
    with open_service(config, now=day + timedelta(days=30)) as svc:
        svc.poll(day, day)
    replay.set_items([corrected])
    with open_service(config, now=day + timedelta(days=60)) as svc:
        [run] = svc.poll(day, day)
    assert run.counts.corrections == 1
    db = _db(config)
    versions = rows(db, "SELECT version, kind, answer_text FROM answer ORDER BY version")
    assert [(v, k) for v, k, _ in versions] == [(1, "answer"), (2, "correction")]
    assert versions[0][2] == "The original answer, before it was corrected."
    assert rows(db, "SELECT kind, event_date FROM event ORDER BY id") == [
        ("tabled", corrected["dateTabled"][:10]),
        ("answered", corrected["dateAnswered"][:10]),
        ("corrected", corrected["dateAnswerCorrected"][:10]),
    ]
    assert rows(db, "SELECT status FROM question") == [("corrected",)]


def test_a_month_with_corrections_and_groups(
    data_dir: Path, replay: ReplayServer, write_config: Callable[..., Path]
) -> None:
    # The corrected and the grouped questions of the month (a subset keeps the test quick).
    month = load_items(_dump(data_dir, "2023-12"))
    replay.set_items(
        v for v in month.values() if v["answerIsCorrection"] or v["groupedQuestionsDates"]
    )
    source = replay.items
    assert len(source) < len(month)
    config = write_config(api_config(replay.base_url))
    with open_service(config, now=date(2024, 6, 1)) as svc:
        [run] = svc.poll(date(2023, 12, 1), date(2023, 12, 31))
    assert run.ok
    db = _db(config)
    n_corrected = sum(1 for v in source.values() if v["answerIsCorrection"])
    assert run.counts.corrections == n_corrected > 0
    assert rows(db, "SELECT count(*) FROM question WHERE status = 'corrected'") == [(n_corrected,)]

    # Grouping is stored both ways: each side's links name the other (UIN + tabling date).
    links = set(
        rows(
            db,
            "SELECT q.uin, q.date_tabled, g.grouped_uin, g.grouped_date_tabled "
            "FROM question_group g JOIN question q ON q.id = g.question_id",
        )
    )
    assert links
    expected = {
        (v["uin"], v["dateTabled"][:10], g["questionUin"], g["dateTabled"][:10])
        for v in source.values()
        for g in v["groupedQuestionsDates"] or []
    }
    assert links == expected
    both_ways = sum(1 for a, d, b, e in links if (b, e, a, d) in links)
    assert both_ways == len(links)


def test_expanded_members_and_bodies_are_upserted(
    data_dir: Path, replay: ReplayServer, write_config: Callable[..., Path]
) -> None:
    folder = data_dir / "uk_parliament" / "recorded_http_2021"
    replay.load_files(
        [folder / "wq_list_answered_2021-02-01_answeringBody11.json",
         folder / "wq_list_tabled_2021-02-01_askingMember4651.json"]
    )  # fmt: skip
    config = write_config(api_config(replay.base_url))
    with open_service(config, now=date(2021, 3, 1)) as svc:
        svc.poll(date(2021, 1, 1), date(2021, 2, 28))
    db = _db(config)
    got = rows(
        db,
        "SELECT q.source_id, m.name, m.party, m.member_from, b.name, am.name "
        "FROM question q JOIN member m ON m.id = q.asking_member_id "
        "JOIN answering_body b ON b.id = q.answering_body_id "
        "LEFT JOIN member am ON am.id = q.answering_member_id",
    )
    assert len(got) == len(replay.items)
    for sid, name, party, seat, body, answerer in got:
        v = replay.items[int(sid)]
        assert (name, party, seat) == (
            v["askingMember"]["name"], v["askingMember"]["party"], v["askingMember"]["memberFrom"]
        )  # fmt: skip
        assert body == v["answeringBodyName"]
        assert answerer == (v["answeringMember"] or {}).get("name")


def test_answer_html_is_sanitised(
    data_dir: Path, replay: ReplayServer, write_config: Callable[..., Path]
) -> None:
    value = next(
        w["value"] for w in _load(_dump(data_dir, "2024-08")[0]) if w["value"]["answerText"]
    )
    hostile = (
        '<p onclick="x()">Funding <script>alert(1)</script>rose by <strong>5%</strong>.</p>'
        '<p><a href="javascript:alert(1)">bad</a> <a href="https://gov.uk/x" target="_blank">'
        "good</a></p><style>p{}</style><img src=x onerror=alert(1)>"
        '<table><tr><td colspan="2" style="x">A &amp; B</td></tr></table>'
    )
    replay.set_items([dict(value, answerText=hostile)])
    config = write_config(api_config(replay.base_url))
    day = date.fromisoformat(value["dateTabled"][:10])
    with open_service(config, now=day) as svc:
        svc.poll(day, day)
    [(html, text)] = rows(_db(config), "SELECT answer_html, answer_text FROM answer")
    for bad in ("<script", "onclick", "javascript:", "<style", "onerror", "<img", "style="):
        assert bad not in html
    assert '<a href="https://gov.uk/x" rel="noopener noreferrer">good</a>' in html
    assert '<td colspan="2">A &amp; B</td>' in html
    assert text.startswith("Funding rose by 5%.\n\nbad good")
    assert "A & B" in text


# -- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", status=500, match="list", after=1),
        Fault("status", status=503, match="list", after=1),
        Fault("status", status=429, retry_after="0", match="list", after=1),
        Fault("json_status", match="list", after=1),
        Fault("truncated_json", match="list", after=1),
        Fault("drop", match="list", after=1),
        Fault("delay", delay=3, match="list", after=1),
    ],
    ids=lambda f: f"{f.kind}{f.status if f.kind == 'status' else ''}",
)
def test_transient_faults_are_retried(
    fault: Fault, data_dir: Path, replay: ReplayServer, write_config: Callable[..., Path]
) -> None:
    replay.load_files(_dump(data_dir, "2024-08"))
    day = [v for v in replay.items.values() if v["dateTabled"].startswith("2024-08-27")]
    replay.add_fault(fault)
    config = write_config(api_config(replay.base_url, page_size=10, timeout_seconds=1))
    with open_service(config, now=date(2024, 9, 1)) as svc:
        [run] = svc.poll(date(2024, 8, 27), date(2024, 8, 27))
    assert run.ok, run.error
    assert len(day) > 20  # more than two pages
    assert rows(_db(config), "SELECT count(*) FROM question") == [(len(day),)]
    assert [r.fault for r in replay.requests if r.fault] == [fault.kind]


def test_retry_after_is_honoured_and_capped(
    data_dir: Path, replay: ReplayServer, write_config: Callable[..., Path]
) -> None:
    replay.load_files(_dump(data_dir, "2024-08"))
    slept: list[float] = []
    replay.add_fault(Fault("status", status=429, retry_after="1", match="list"))
    replay.add_fault(Fault("status", status=429, retry_after="86400", match="list"))
    replay.add_fault(
        Fault("status", status=503, retry_after="Wed, 21 Oct 2015 07:28:00 GMT", match="list")
    )
    cfg = UKParliamentConfig(
        base_url=replay.base_url,
        max_retries=3,
        max_retry_after_seconds=30,
        backoff_seconds=0.5,
        requests_per_second=10000,  # keep the rate limiter's own waits out of `slept`
    )
    with UKParliamentClient(cfg, sleep=slept.append, jitter=lambda: 0.0) as client:
        pages = list(client.iter_window("tabled", date(2024, 8, 1), date(2024, 8, 31)))
    assert pages and pages[0].items
    # 1 s as asked; a day capped to 30 s; a date in the past means "now".
    assert [s for s in slept if s >= 0.01] == [1.0, 30.0]
    assert slept.count(0.0) == 1


def test_a_failed_window_keeps_the_cursor_and_the_next_poll_completes(
    data_dir: Path,
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    replay.load_files(_dump(data_dir, "2024-08"))
    day = [v for v in replay.items.values() if v["dateTabled"].startswith("2024-08-27")]
    config = write_config(api_config(replay.base_url, page_size=10))
    db = _db(config)
    # Page 3 of the first list query keeps failing past every retry.
    replay.add_fault(Fault("status", status=500, match="list", after=2, times=10))
    args = ("--config", config, "poll", "--since", "2024-08-27", "--until", "2024-08-27")
    failed = cli(*args)
    assert failed.exit_code == 1
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in failed.stderr
    assert lines[0].startswith("pqwatch: error: uk_parliament: window 2024-08-27..2024-08-27:")
    assert "HTTP 500" in lines[0]
    assert rows(db, "SELECT cursor_date, consecutive_failures FROM source_state") == [(None, 1)]
    assert rows(db, "SELECT status, error IS NOT NULL FROM poll_run") == [("failed", 1)]
    # What was stored is whole: the first two pages, each question with its events.
    assert rows(db, "SELECT count(*) FROM question") == [(20,)]
    assert rows(db, "SELECT count(*) FROM event WHERE kind = 'tabled'") == [(20,)]

    replay.clear_faults()
    ok = cli(*args)
    assert ok.exit_code == 0, ok.stderr
    assert rows(db, "SELECT count(*) FROM question") == [(len(day),)]
    assert rows(db, "SELECT count(*) FROM event WHERE kind = 'tabled'") == [(len(day),)]
    dupes = rows(
        db,
        "SELECT count(*) FROM "
        "(SELECT 1 FROM event GROUP BY question_id, kind HAVING count(*) > 1) AS dupes",
    )
    assert dupes == [(0,)]
    assert rows(db, "SELECT cursor_date, consecutive_failures FROM source_state") == [
        ("2024-08-27", 0)
    ]


def test_unreachable_api_is_one_line_and_exit_1(
    write_config: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    config = write_config(api_config("http://127.0.0.1:9", timeout_seconds=1))
    result = cli("--config", config, "poll")
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert "uk_parliament: window" in line and "connection failed" in line
    assert "gave up after 3 attempts" in line


def test_a_4xx_is_not_retried(
    replay: ReplayServer, write_config: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    replay.add_fault(Fault("status", status=400, match="list"))
    config = write_config(api_config(replay.base_url))
    result = cli("--config", config, "poll")
    assert result.exit_code == 1
    assert "HTTP 400" in result.stderr
    assert len([r for r in replay.requests if r.endpoint == "list"]) == 1


# -- backfill -------------------------------------------------------------------------------


def test_backfill_is_restartable_and_historical(
    data_dir: Path,
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    replay.load_files(_dump(data_dir, "2024-08"))
    config = write_config(api_config(replay.base_url))
    db = _db(config)
    # The third weekly window fails for good the first time.
    replay.add_fault(Fault("status", status=503, match="list", after=2, times=100))
    args = ("--config", config, "backfill", "--since", "2024-08-01", "--until", "2024-08-31")
    first = cli(*args)
    assert first.exit_code == 1
    assert "uk_parliament: window 2024-08-15..2024-08-21" in first.stderr
    windows_ok = rows(db, "SELECT window_start FROM poll_run WHERE status = 'ok' ORDER BY 1")
    assert windows_ok == [("2024-08-01",), ("2024-08-08",)]

    replay.clear_faults()
    replay.requests.clear()
    second = cli(*args, "--no-detail")
    assert second.exit_code == 0, second.stderr
    assert "2 window(s) already loaded" in second.stdout
    asked = {r.query["tabledWhenFrom"][0] for r in replay.requests if r.endpoint == "list"}
    assert asked == {"2024-08-15", "2024-08-22", "2024-08-29"}
    assert rows(db, "SELECT count(*) FROM question") == [(len(replay.items),)]
    assert rows(db, "SELECT count(*) FROM event WHERE NOT historical") == [(0,)]
    # Polls unaffected: no cursor, and no "last successful poll" claimed by a backfill.
    assert rows(db, "SELECT cursor_date, last_success_at FROM source_state") == []


def test_a_malformed_item_is_skipped_not_blocking_the_window(
    data_dir: Path,
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    items = list(load_items(_dump(data_dir, "2024-08")).values())[:5]
    broken = dict(items[0], id=900000001, house=None)
    replay.set_items([*items, broken])
    config = write_config(api_config(replay.base_url))
    result = cli("--config", config, "poll", "--since", "2024-08-01", "--until", "2024-08-31")
    assert result.exit_code == 0, result.stderr
    assert "skipped a malformed item: question 900000001: missing or invalid house" in (
        result.stdout
    )
    assert rows(_db(config), "SELECT count(*) FROM question") == [(5,)]
    assert rows(_db(config), "SELECT cursor_date FROM source_state") == [("2024-08-31",)]


def test_an_explicit_window_after_a_gap_does_not_move_the_cursor(
    data_dir: Path, replay: ReplayServer, write_config: Callable[..., Path]
) -> None:
    replay.load_files(_dump(data_dir, "2024-08"))
    config = write_config(api_config(replay.base_url, initial_lookback_days=3))
    with open_service(config, now=date(2024, 8, 10)) as svc:
        svc.poll()
    with open_service(config, now=date(2024, 8, 30)) as svc:
        svc.poll(date(2024, 8, 27), date(2024, 8, 28))  # leaves 11..26 August unpolled
        assert svc.archive.cursor("uk_parliament") == date(2024, 8, 10)
        svc.poll(date(2024, 8, 5), date(2024, 8, 12))  # joins the cursor: moves it
        assert svc.archive.cursor("uk_parliament") == date(2024, 8, 12)
