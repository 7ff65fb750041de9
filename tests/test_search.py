"""Search, show, watches and matching on a small real archive built through the replay server."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from pqwatch.testing.replay import ReplayServer, load_items
from tests import shared_archive
from tests.conftest import CliResult, api_config, open_service, rows

TOPICS = re.compile(r"palliative|hospice|school|defence|short breaks", re.I)
WATCHES = """
[[watches]]
name = "Children's palliative care"
query = "palliative care children"
[[watches]]
name = "Hospice funding"
query = "hospice OR hospices"
[[subscribers]]
email = "officer@example.org"
watches = ["Children's palliative care"]
"""


def _archive_items(data_dir: Path) -> dict[int, dict[str, Any]]:
    base = data_dir / "uk_parliament"
    items = load_items(sorted((base / "recorded_http_2021").glob("wq_list_*.json")))
    for month in ("2024-07", "2024-08"):
        month_items = load_items(
            [
                base / "monthly_list_dumps" / f"commons_tabled_{month}.json.gz",
                base / "longform_detail_text" / f"longform_{month}.json.gz",
            ]
        )
        items.update(
            (i, v)
            for i, v in month_items.items()
            if TOPICS.search(f"{v['heading']} {v['questionText']}")
        )
    # Holding answers, as recorded in the 8 July 2026 snapshot.
    snapshot = load_items(sorted((base / "list_snapshots_2026-07").glob("*asof_2026-07-08*")))
    items.update((i, v) for i, v in snapshot.items() if v["answerIsHolding"])
    return items


@pytest.fixture(scope="module")
def archive(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[Path, dict[int, Any]]]:
    from tests.conftest import require_data

    data = require_data()
    folder = tmp_path_factory.mktemp("archive")
    items = _archive_items(data)

    def make() -> Path:
        with ReplayServer(items.values()) as server:
            config = folder / "config.toml"
            config.write_text(api_config(server.base_url, extra=WATCHES))
            with open_service(config, now=date(2026, 7, 10)) as svc:
                [run] = svc.poll(date(2021, 1, 1), date(2026, 7, 10))
                assert run.ok, run.error
        return config

    yield shared_archive.build(request, make), items


@pytest.fixture
def config(
    archive: tuple[Path, dict[int, Any]],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """A private copy of the built archive, so tests can change it."""
    src, _ = archive
    return shared_archive.private_copy(request, monkeypatch, src, tmp_path)


def _search_ids(cli: Callable[..., CliResult], config: Path, query: str) -> set[int]:
    result = cli("--config", config, "search", query, "--format", "json", "--limit", "1000")
    assert result.exit_code == 0, result.stderr
    return {hit["id"] for hit in json.loads(result.stdout)["hits"]}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


# -- queries against the real archive: expected sets computed from the raw data ---------------


def test_field_filters_agree_with_the_raw_data(
    config: Path, archive: tuple[Path, dict[int, Any]], cli: Callable[..., CliResult]
) -> None:
    _, items = archive
    cases: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
        ("house:lords", lambda v: v["house"] == "Lords"),
        ("house:commons -house:commons", lambda v: False),
        (
            'dept:"health and social care"',
            lambda v: {"health", "and", "social", "care"} <= _words(v["answeringBodyName"]),
        ),
        ("dept:defence", lambda v: "defence" in _words(v["answeringBodyName"])),
        ("tabled:2024-07", lambda v: v["dateTabled"].startswith("2024-07")),
        (
            "tabled:2024-07-01..2024-07-22",
            lambda v: "2024-07-01" <= v["dateTabled"][:10] <= "2024-07-22",
        ),
        ("answered:>=2024-08-01", lambda v: (v["dateAnswered"] or "")[:10] >= "2024-08-01"),
        ("status:holding", lambda v: v["answerIsHolding"] is True),
        ("status:corrected", lambda v: v["answerIsCorrection"] is True),
        (
            "asker:healey",
            lambda v: "healey" in _words((v.get("askingMember") or {}).get("name") or ""),
        ),
        (
            "answerer:quin house:commons",
            lambda v: "quin" in _words((v.get("answeringMember") or {}).get("name") or ""),
        ),
        (
            "house:lords -answerer:quin",
            lambda v: (
                v["house"] == "Lords"
                and "quin" not in _words((v.get("answeringMember") or {}).get("name") or "")
            ),
        ),
    ]
    for query, predicate in cases:
        expected = {i for i, v in items.items() if predicate(v)}
        assert _search_ids(cli, config, query) == expected, query
    assert any(_search_ids(cli, config, q) for q, _ in cases)  # the cases are not all empty


def test_not_a_person_or_department_includes_questions_without_one(
    config: Path, cli: Callable[..., CliResult]
) -> None:
    # Every recorded question has an answerer and a department; an unanswered one has none.
    db = config.parent / "pqwatch.db"
    [(qid, source_id)] = rows(
        db, "SELECT id, source_id FROM question WHERE house = 'Lords' ORDER BY id LIMIT 1"
    )
    rows(
        db,
        "UPDATE question SET answering_member_id = NULL, answering_body_id = NULL WHERE id = ?",
        qid,
    )
    for query in ("house:lords -answerer:quin", "house:lords NOT dept:defence"):
        assert int(source_id) in _search_ids(cli, config, query), query
    assert int(source_id) not in _search_ids(cli, config, "house:lords dept:a")


def test_words_phrases_or_and_not(
    config: Path, archive: tuple[Path, dict[int, Any]], cli: Callable[..., CliResult]
) -> None:
    _, items = archive
    hospice = _search_ids(cli, config, "hospice")
    hospices = _search_ids(cli, config, "hospices")
    assert hospice == hospices and hospice  # stemmed
    raw = {
        i
        for i, v in items.items()
        if re.search(r"hospice", f"{v['heading']} {v['questionText']} {v['answerText']}", re.I)
    }
    assert hospice == raw

    palliative = _search_ids(cli, config, "palliative")
    either = _search_ids(cli, config, "hospice OR palliative")
    assert either == hospice | palliative
    assert _search_ids(cli, config, "hospice -palliative") == hospice - palliative
    assert _search_ids(cli, config, "hospice NOT palliative") == hospice - palliative
    assert _search_ids(cli, config, "hospice palliative") == hospice & palliative
    phrase = _search_ids(cli, config, '"palliative care"')
    assert phrase <= palliative and phrase
    assert _search_ids(cli, config, "(hospice OR palliative) house:lords") == {
        i for i in either if items[i]["house"] == "Lords"
    }


def test_search_json_shape(config: Path, cli: Callable[..., CliResult]) -> None:
    result = cli("--config", config, "search", "hospice", "--format", "json", "--limit", "3")
    assert result.exit_code == 0
    found = json.loads(result.stdout)
    assert {k: found[k] for k in ("query", "sort", "total_is_exact")} == {
        "query": "hospice", "sort": "relevance", "total_is_exact": True,
    }  # fmt: skip
    assert found["total"] >= 3 and found["note"] is None
    hits = found["hits"]
    assert isinstance(hits, list) and len(hits) == 3
    for hit in hits:
        assert (hit["parliament"], hit["kind"]) == ("westminster", "question")
        assert set(hit) == {
            "id", "parliament", "kind", "uin", "house", "date_tabled", "date_answered", "heading",
            "asking_member",
            "asking_party", "asking_constituency", "date_for_answer", "answering_member",
            "answering_body", "status", "question_text", "answer_text", "snippet", "url",
            "matched_terms",
        }  # fmt: skip
        assert hit["url"] == (
            "https://questions-statements.parliament.uk/written-questions/detail/"
            f"{hit['date_tabled']}/{hit['uin']}"
        )
        assert "**" in hit["snippet"]
        assert any(t.startswith("hospice") for t in hit["matched_terms"])


def test_search_csv_opens_as_one_row_per_question(
    config: Path, cli: Callable[..., CliResult]
) -> None:
    result = cli(
        "--config", config, "search", 'hospice dept:"health and social care"', "--format", "csv"
    )
    assert result.exit_code == 0, result.stderr
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert table
    assert list(table[0]) == [
        "id", "parliament", "kind", "uin", "house", "date_tabled", "date_answered", "heading",
        "asking_member",
        "asking_party", "asking_constituency", "date_for_answer", "answering_member",
        "answering_body", "status", "question_text", "answer_text", "snippet", "url",
        "matched_terms",
    ]  # fmt: skip
    assert len({r["id"] for r in table}) == len(table)
    assert all(r["answering_body"] == "Department of Health and Social Care" for r in table)


def test_search_table_for_a_person(
    config: Path, cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "220")  # a wide terminal: no wrapping inside cells
    result = cli("--config", config, "search", "hospice funding", "--limit", "2")
    assert result.exit_code == 0
    assert "Hospices" in result.stdout  # a heading
    assert "Department of Health" in result.stdout
    assert re.search(r"\d+ match(es)?; showing 2 by relevance", result.stdout)


def test_sort_newest(config: Path, cli: Callable[..., CliResult]) -> None:
    result = cli("--config", config, "search", "school", "--sort", "newest", "--format", "json")
    dates = [h["date_answered"] or h["date_tabled"] for h in json.loads(result.stdout)["hits"]]
    assert dates == sorted(dates, reverse=True) and len(dates) > 1


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('hospice "funding', "unclosed quote"),
        ("(hospice OR", ""),
        ("colour:blue", "unknown field 'colour'"),
        ("tabled:2024-13-01", "2024-13-01"),
        ("hospice OR", ""),
    ],
)
def test_malformed_query_exits_2_with_a_readable_message(
    query: str, message: str, config: Path, cli: Callable[..., CliResult]
) -> None:
    result = cli("--config", config, "search", query)
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("pqwatch: error: malformed query")
    assert message in line
    assert "sqlite" not in line.lower() and "fts5" not in line.lower()


def test_a_malformed_watch_query_is_a_config_error(
    write_config: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    path = write_config('[[watches]]\nname = "Bad"\nquery = "hospice (funding"\n')
    result = cli("--config", path, "init")
    assert result.exit_code == 2
    assert "watches[0].query: malformed query" in result.stderr


# -- show -------------------------------------------------------------------------------------


def test_show_by_id_uin_and_date_uin(
    config: Path, archive: tuple[Path, dict[int, Any]], cli: Callable[..., CliResult]
) -> None:
    _, items = archive
    v = next(x for x in items.values() if x["groupedQuestionsDates"] and x["askingMember"])
    by_id = cli("--config", config, "show", str(v["id"]), "--format", "json")
    assert by_id.exit_code == 0, by_id.stderr
    story = json.loads(by_id.stdout)
    assert story["heading"] == v["heading"]
    assert story["asking_member"] == v["askingMember"]["name"]
    assert story["asking_party"] == v["askingMember"]["party"]
    assert story["answering_body"] == v["answeringBodyName"]
    assert [e["kind"] for e in story["events"]][:2] == ["tabled", "answered"]
    assert [a["kind"] for a in story["answers"]] == ["answer"]
    assert {g["uin"] for g in story["grouped_questions"]} == {
        g["questionUin"] for g in v["groupedQuestionsDates"]
    }
    by_uin = cli("--config", config, "show", v["uin"], "--format", "json")
    by_date_uin = cli("--config", config, "show", f"{v['dateTabled'][:10]}/{v['uin']}")
    assert json.loads(by_uin.stdout)["id"] == v["id"]
    assert by_date_uin.exit_code == 0
    text = by_date_uin.stdout
    assert v["heading"] in text and v["askingMember"]["name"] in text
    assert "Answer (version 1)" in text and "Events:" in text and "Answered together with:" in text


def test_show_holding_then_answer_in_order(
    config: Path, archive: tuple[Path, dict[int, Any]], cli: Callable[..., CliResult]
) -> None:
    _, items = archive
    held = next(v for v in items.values() if v["answerIsHolding"])
    result = cli("--config", config, "show", str(held["id"]))
    assert "Holding answer (version 1)" in result.stdout
    assert "status: holding" in result.stdout


def test_show_unknown_question(config: Path, cli: Callable[..., CliResult]) -> None:
    result = cli("--config", config, "show", "HL999999")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "pqwatch: error: no question with id or UIN 'HL999999' in the archive"
    )


# -- watches and matching ---------------------------------------------------------------------


def test_watches_and_preview(config: Path, cli: Callable[..., CliResult]) -> None:
    listing = cli("--config", config, "watches", "--format", "json")
    assert listing.exit_code == 0, listing.stderr
    stats = {s["name"]: s for s in json.loads(listing.stdout)}
    hospice = _search_ids(cli, config, "hospice OR hospices")
    assert stats["Hospice funding"]["matches"] == len(hospice) > 0
    assert stats["Hospice funding"]["last_match_date"]

    # The archive's answers are from 2024: preview as of September 2024.
    with open_service(config, now=date(2024, 9, 10)) as svc:
        p = svc.preview("hospice")
    expected = {i for i in _search_ids(cli, config, "hospice answered:2023-09-10..2024-09-10")}
    assert p.answered == len(expected) > 5
    assert len(p.examples) == 5 and {int(h.source_id) for h in p.examples} <= expected
    dates = [h.date_answered for h in p.examples]
    assert dates == sorted(dates, reverse=True)  # the newest five

    preview = cli("--config", config, "watches", "preview", "hospice", "--format", "json")
    assert preview.exit_code == 0, preview.stderr
    assert set(json.loads(preview.stdout)) == {
        "query",
        "since",
        "until",
        "answered",
        "tabled",
        "examples",
        "archive_first",
        "archive_last",
    }
    text = cli("--config", config, "watches", "preview", "hospice")
    assert "would have matched" in text.stdout
    # A period the archive does not reach: say so, and what it does hold.
    first, last = (json.loads(preview.stdout)[k] for k in ("archive_first", "archive_last"))
    empty = cli("--config", config, "watches", "preview", "hospice", "--until", "2020-12-31")
    assert "From 2019-12-28 to 2020-12-31" in empty.stdout
    assert f"The archive holds nothing in that period: it covers {first} to {last}" in (
        empty.stdout
    )
    period = cli(
        "--config", config, "watches", "preview", "hospice", "--since", first, "--until", last
    )
    assert period.exit_code == 0, period.stderr
    answered = _search_ids(cli, config, f"hospice answered:{first}..{last}")
    assert f"'hospice' would have matched {len(answered)} answer(s)" in period.stdout
    assert "holds nothing" not in period.stdout


def test_matches_and_outbox_rows_are_recorded_with_the_events(
    config: Path, archive: tuple[Path, dict[int, Any]]
) -> None:
    db = config.parent / "pqwatch.db"
    # Every event of a matching question is matched; the subscriber of the palliative-care
    # watch has one pending delivery per matched event, and none for the other watch.
    matched = rows(
        db,
        "SELECT w.name, count(*) FROM watch_match m JOIN watch w ON w.id = m.watch_id "
        "GROUP BY w.name",
    )
    assert dict(matched)["Hospice funding"] > 0
    pal = rows(
        db,
        "SELECT m.event_id FROM watch_match m JOIN watch w ON w.id = m.watch_id "
        "WHERE w.name = 'Children''s palliative care'",
    )
    deliveries = rows(db, "SELECT event_id, status FROM delivery ORDER BY event_id")
    assert sorted(e for e, _ in deliveries) == sorted(e for (e,) in pal)
    assert {s for _, s in deliveries} <= {"pending"}


def test_seed_watch_matches_a_heading_filled_in_later(
    data_dir: Path, replay: ReplayServer, write_config: Callable[..., Path]
) -> None:
    """Id 1924272 was tabled with no heading; recordings show headings arriving later
    (API.md 1.4). Replayed here: first as recorded, then with the heading the answer got."""
    snap = data_dir / "uk_parliament" / "list_snapshots_2026-07"
    first = load_items(sorted(snap.glob("*asof_2026-07-08*")))[1924272]
    assert first["heading"] is None
    later = dict(first, heading="Palliative Care: Children")
    config = write_config(
        api_config(
            replay.base_url,
            extra=WATCHES.replace("palliative care children", "heading:children palliative"),
        )
    )
    db = config.parent / "pqwatch.db"
    replay.set_items([first])
    with open_service(config, now=date(2026, 7, 8)) as svc:
        svc.poll()
    assert rows(db, "SELECT count(*) FROM delivery") == [(0,)]
    replay.set_items([later])
    with open_service(config, now=date(2026, 7, 9)) as svc:
        svc.poll()
    assert rows(db, "SELECT q.heading, e.kind FROM delivery d JOIN event e ON e.id = d.event_id "
                    "JOIN question q ON q.id = e.question_id") == [
        ("Palliative Care: Children", "tabled")
    ]  # fmt: skip


def test_backfilled_history_is_matched_but_never_delivered(
    data_dir: Path, replay: ReplayServer, write_config: Callable[..., Path]
) -> None:
    base = data_dir / "uk_parliament"
    replay.load_files([base / "monthly_list_dumps" / "commons_tabled_2024-07.json.gz"])
    config = write_config(api_config(replay.base_url, extra=WATCHES))
    with open_service(config, now=date(2024, 9, 1)) as svc:
        result = svc.backfill(date(2024, 7, 22), date(2024, 7, 23), detail=False)
    assert result.ok
    db = config.parent / "pqwatch.db"
    assert rows(db, "SELECT count(*) FROM watch_match")[0][0] > 0
    assert rows(db, "SELECT count(*) FROM delivery") == [(0,)]


def test_a_new_watch_is_matched_against_the_archive_without_deliveries(
    config: Path, cli: Callable[..., CliResult]
) -> None:
    text = config.read_text() + ('[[watches]]\nname = "Schools"\nquery = "school"\n')
    config.write_text(text.replace('watches = ["Children\'s palliative care"]', ""))
    db = config.parent / "pqwatch.db"
    before = rows(db, "SELECT count(*) FROM delivery")
    assert cli("--config", config, "init").exit_code == 0
    schools = rows(
        db,
        "SELECT count(DISTINCT e.question_id) FROM watch_match m JOIN watch w "
        "ON w.id = m.watch_id JOIN event e ON e.id = m.event_id WHERE w.name = 'Schools'",
    )
    assert schools == [(len(_search_ids(cli, config, "school")),)]
    assert rows(db, "SELECT count(*) FROM delivery") == before


def test_a_query_starting_with_a_dash_gets_a_hint(
    config: Path, cli: Callable[..., CliResult]
) -> None:
    result = cli("--config", config, "search", "-palliative")
    assert result.exit_code == 2
    assert "a query starting with '-' goes after --" in result.stderr
    ok = cli(
        "--config", config, "search", "--format", "json", "--limit", "1000", "--", "-palliative"
    )
    assert ok.exit_code == 0
    assert {h["id"] for h in json.loads(ok.stdout)["hits"]} == _search_ids(
        cli, config, "house:commons OR house:lords"
    ) - _search_ids(cli, config, "palliative")


# -- every planning path returns the page a plain query would ---------------------------------

PLAN_QUERIES = [
    "school",
    '"mental health"',
    "hospice OR palliative",
    "school -academy",
    "school tabled:2024-07-01..2024-07-20",
    "health answered:2024",
    'care dept:"health and social care"',
    "house:commons status:holding",
    "educ*",  # prefixes: hits are fetched over a rowid range, not id by id
    "child* answered:2024",
    "school NOT acad*",
    "dept:health answered:2024",  # filters only, through the question table's indexes
    "house:lords NOT care",
    "asker:smith -dept:defence",
]


@pytest.mark.parametrize(
    "caps",
    [
        {},  # the shipped limits
        {"RELEVANCE_LIMIT": 2, "FILTERED_SCAN_CAP": 2, "MONTH_WALK_FROM": 0},  # month walks
        {"RELEVANCE_LIMIT": 2, "FILTERED_SCAN_CAP": 2, "MONTH_WALK_FROM": 10**9},  # sort all
    ],
    ids=["default", "walk", "sort-all"],
)
@pytest.mark.parametrize("sort", ["relevance", "newest"])
@pytest.mark.sqlite_only("the SQLite search module's plans, against FTS5 queries")
def test_every_search_plan_returns_the_same_page_as_a_plain_query(
    archive: tuple[Path, dict[int, Any]],
    monkeypatch: pytest.MonkeyPatch,
    caps: dict[str, int],
    sort: str,
) -> None:
    from pqwatch.store.sqlite import search as engine
    from pqwatch.store.sqlite.compile import compile_query

    for name, value in caps.items():
        monkeypatch.setattr(engine, name, value)
    config, _ = archive
    conn = sqlite3.connect(config.parent / "pqwatch.db")
    for query in PLAN_QUERIES:
        result = engine.search(conn, query, limit=7, sort=sort)
        cq = compile_query(query)
        where, params = cq.sql()
        count = conn.execute(f"SELECT count(*) FROM question q WHERE {where}", params).fetchone()
        if result.total_is_exact:
            assert result.total == count[0], query
        else:
            assert count[0] > engine.FILTERED_SCAN_CAP
            assert result.summary().startswith(f"more than {engine.FILTERED_SCAN_CAP:,}")
        if result.sort == "relevance":
            order = f"{engine.BM25}, q.id DESC"
            source = "question_fts JOIN question q ON q.id = question_fts.rowid"
            where = f"question_fts MATCH :match AND {where}"
        else:
            order = "coalesce(q.date_answered, q.date_tabled) DESC, q.id DESC"
            source = "question q"
        expected = [
            r[0]
            for r in conn.execute(
                f"SELECT q.id FROM {source} WHERE {where} ORDER BY {order} LIMIT 7", params
            )
        ]
        assert [h.id for h in result.hits] == expected, (query, result.sort)
        assert result.sort == sort or result.note, query  # a change of order is explained
    conn.close()


def test_prefix_hits_keep_their_marks_and_a_short_prefix_is_refused(
    config: Path, cli: Callable[..., CliResult]
) -> None:
    from pqwatch.search.results import MARK_START

    with open_service(config) as svc:
        result = svc.search("child*", limit=7, sort="newest")
    assert len(result.hits) == 7 and result.total > 7
    for hit in result.hits:
        assert any(t.lower().startswith("child") for t in hit.matched_terms), hit.id
        assert hit.snippet is not None and MARK_START in hit.snippet, hit.id

    for query in ("a*", "health ca*", '"special ed"*', "heading:sc*"):
        result = cli("--config", config, "search", query)
        assert result.exit_code == 2, query
        [line] = result.stderr.strip().splitlines()
        assert "too short a prefix" in line and "at least 3 letters" in line, line
    assert cli("--config", config, "search", "nhs*").exit_code == 0


@pytest.mark.sqlite_only("SQLite's query plan")
def test_filters_alone_page_newest_first_by_the_newest_index(
    archive: tuple[Path, dict[int, Any]],
) -> None:
    """ "house:lords" sorted every Lords question for a page; migration 0007's index on the
    sort key lets SQLite stop after the page. The key must stay the index's expression."""
    from pqwatch.store.sqlite import search as engine
    from pqwatch.store.sqlite.compile import compile_query

    config, _ = archive
    where, params = compile_query("house:lords").sql()
    sql = (
        f"SELECT q.id FROM question q WHERE {where} "
        f"ORDER BY {engine._NEWEST_KEY} DESC, q.id DESC LIMIT 20"
    )
    with sqlite3.connect(config.parent / "pqwatch.db") as conn:
        plan = " ".join(r[-1] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "ix_question_newest" in plan and "TEMP B-TREE" not in plan, plan


@pytest.mark.sqlite_only("SQLite's search caps a filtered count; PostgreSQL's counts exactly")
def test_a_capped_count_reads_more_than(
    config: Path, cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pqwatch.store.sqlite import search as engine

    monkeypatch.setattr(engine, "FILTERED_SCAN_CAP", 3)
    result = cli("--config", config, "search", "school house:commons")
    assert result.exit_code == 0, result.stderr
    assert "more than 3 matches; showing 20 newest first" in " ".join(result.stdout.split())


def test_search_table_shows_id_and_tabled_date_and_never_cuts_a_heading(
    config: Path, cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # a small terminal, or output to a pipe
    as_json = json.loads(cli("--config", config, "search", "hospice", "--format", "json").stdout)
    result = cli("--config", config, "search", "hospice")
    assert result.exit_code == 0, result.stderr
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    for hit in as_json["hits"]:
        assert str(hit["id"]) in result.stdout and hit["date_tabled"] in result.stdout
        for word in (hit["heading"] or "").split():
            assert re.search(rf"(?<!\S){re.escape(word)}(?!\S)", result.stdout), word
    assert result.stdout.count("matches;") == 1
    # CSV holds rows only; its count goes to stderr, once.
    csv_out = cli("--config", config, "search", "hospice", "--format", "csv")
    assert csv_out.stderr.strip() == f"pqwatch: {as_json['total']} matches; showing " + (
        f"{len(as_json['hits'])} by relevance"
    )


def test_a_csv_cell_is_never_a_spreadsheet_formula_or_a_control_character() -> None:
    """Exported CSV (CLI and web share the writer) keeps archived text as text: a cell that a
    spreadsheet would run (=, +, -, @ first) gets a leading quote; numbers stay numbers."""
    from pqwatch.search.results import csv_cell

    assert csv_cell('=HYPERLINK("http://x","y")') == '\'=HYPERLINK("http://x","y")'
    assert [csv_cell(v) for v in ("+1", "-2", "@SUM(A1)")] == ["'+1", "'-2", "'@SUM(A1)"]
    assert csv_cell("School \x1b[31mfunding") == "School [31mfunding"
    assert csv_cell("Hospices: funding") == "Hospices: funding"
    assert csv_cell(12345) == 12345 and csv_cell(None) is None
