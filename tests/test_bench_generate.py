"""bench.generate, the synthetic archive for benchmarks: deterministic, shaped like the real
API (compared with real recordings from ../shared/data), internally consistent, planted
topics at their rates, written pages that the replay server loads and pqwatch ingests."""

from __future__ import annotations

import gzip
import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bench.generate import (
    TOPICS,
    count_topics,
    data_dir,
    generate,
    load_profile,
    profile,
    write_archive,
    write_pages,
)
from pqwatch.testing.replay import ReplayServer, load_items
from tests.conftest import api_config, open_service, rows

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T00:00:00$")
DATE_FIELDS = (
    "dateTabled",
    "dateForAnswer",
    "dateAnswered",
    "dateAnswerCorrected",
    "dateHoldingAnswer",
)
QUARTER = {"start": date(2024, 1, 1), "end": date(2024, 3, 31)}  # dense days: real groups

Item = dict[str, Any]


@pytest.fixture(scope="module")
def sample() -> list[Item]:
    return list(generate(5000, seed=7, **QUARTER))


def _status(item: Item) -> str:
    if item["dateAnswered"] is None:
        return "unanswered"
    if item["answerIsHolding"]:
        return "holding"
    return "corrected" if item["answerIsCorrection"] else "answered"


# -- determinism ------------------------------------------------------------------------------


def test_a_seed_gives_the_same_archive_and_another_seed_another() -> None:
    random.seed(12345)
    expected_global = random.random()
    random.seed(12345)
    first = list(generate(200, seed=1))
    assert random.random() == expected_global  # the global RNG is left alone
    assert list(generate(200, seed=1)) == first
    other = list(generate(200, seed=2))
    assert len(other) == len(first) == 200
    assert (
        sum(a["questionText"] != b["questionText"] for a, b in zip(first, other, strict=True)) > 190
    )


def test_slices_written_by_workers_are_the_same_archive(tmp_path: Path) -> None:
    """write_archive generates each file on its own (for parallel workers)."""
    expected = list(generate(600, seed=5, **QUARTER))
    files, count, topics, _ = write_archive(600, tmp_path, seed=5, per_file=250, jobs=2, **QUARTER)
    assert [f.name for f in files] == [f"questions_{i:04d}.json.gz" for i in (1, 2, 3)]
    assert count == 600
    assert load_items(files) == {item["id"]: item for item in expected}
    assert topics == Counter(p for item in expected for p in count_topics(item))


def test_runs_without_the_recordings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PQWATCH_TEST_DATA", str(tmp_path / "missing"))
    assert data_dir() == tmp_path / "missing"
    builtin = load_profile()
    assert builtin.source.startswith("built-in") and profile(tmp_path) is builtin
    items = list(generate(400, seed=2, profile=builtin, **QUARTER))
    assert len(items) == 400 and len({i["id"] for i in items}) == 400
    assert all(i["questionText"].startswith("To ask ") for i in items)
    assert any(i["groupedQuestions"] for i in items) and any(i["answerText"] for i in items)


# -- the shape of a real item --------------------------------------------------------------------


def test_items_have_the_real_schema(data_dir: Path, sample: list[Item]) -> None:
    uk = data_dir / "uk_parliament"
    dump = uk / "monthly_list_dumps" / "commons_tabled_2024-08.json.gz"
    real = next(iter(load_items([dump]).values()))
    recorded = load_items(sorted((uk / "recorded_http_2021").glob("wq_list_*.json")))
    real_member = next(v["askingMember"] for v in recorded.values() if v["askingMember"])
    real_group = next(v for v in load_items([dump]).values() if v["groupedQuestionsDates"])

    for item in sample[:300] + [i for i in sample if i["groupedQuestions"]][:50]:
        assert list(item) == list(real)  # same keys, same order
        for key, value in item.items():
            if value is not None and real[key] is not None:
                assert type(value) is type(real[key]), key
        for field in DATE_FIELDS:
            assert item[field] is None or ISO.match(item[field]), (field, item[field])
        for field in ("askingMember", "answeringMember", "correctingMember"):
            if item[field] is not None:
                assert list(item[field]) == list(real_member)
                assert item[field]["id"] == item[field + "Id"]
                assert re.fullmatch(r"[0-9a-fA-F]{6}", item[field]["partyColour"])
        for entry in item["groupedQuestionsDates"]:
            assert list(entry) == list(real_group["groupedQuestionsDates"][0])
        assert item["questionText"].startswith("To ask ")
        assert "<" not in item["questionText"]
        assert (item["originalAnswerText"], item["comparableAnswerText"]) == ("", "")
        assert (item["isWithdrawn"], item["attachmentCount"], item["attachments"]) == (
            False,
            0,
            [],
        )
    for field in DATE_FIELDS:
        assert real[field] is None or ISO.match(real[field])
    # Real member objects from the 2021 recordings sit among the synthetic ones.
    real_members = {
        json.dumps(v[f], sort_keys=True)
        for v in recorded.values()
        for f in ("askingMember", "answeringMember")
        if v[f]
    }
    used = {
        json.dumps(i[f], sort_keys=True)
        for i in sample
        for f in ("askingMember", "answeringMember")
        if i[f]
    }
    assert real_members & used and len(used - real_members) > 300


def test_ids_increase_with_the_tabling_date_and_uins_restart_each_year() -> None:
    items = list(generate(3000, seed=3, start=date(2023, 11, 1), end=date(2024, 2, 29)))
    ids = [i["id"] for i in items]
    assert ids == sorted(set(ids))
    tabled = [i["dateTabled"] for i in items]
    assert tabled == sorted(tabled)
    per_house_year: dict[tuple[str, str], list[int]] = {}
    for item in items:
        uin = item["uin"]
        if item["house"] == "Lords":
            assert re.fullmatch(r"HL\d+", uin)
        else:
            assert uin.isdigit()
        per_house_year.setdefault((item["house"], item["dateTabled"][:4]), []).append(
            int(uin.removeprefix("HL"))
        )
    for numbers in per_house_year.values():
        assert numbers == sorted(set(numbers))  # unique, and in tabling order
    for house in ("Commons", "Lords"):
        assert min(per_house_year[(house, "2024")]) == 1  # a new year starts again
    assert Counter(i["house"] for i in items)["Lords"] == pytest.approx(750, abs=2)


# -- consistency -------------------------------------------------------------------------------


def test_grouped_questions_link_both_ways_and_share_the_answer(sample: list[Item]) -> None:
    by_key = {(i["house"], i["uin"], i["dateTabled"]): i for i in sample}
    grouped = [i for i in sample if i["groupedQuestions"]]
    assert 0.12 < len(grouped) / len(sample) < 0.35
    assert max(len(i["groupedQuestions"]) for i in grouped) >= 4
    for item in grouped:
        dates = item["groupedQuestionsDates"]
        assert [d["questionUin"] for d in dates] == item["groupedQuestions"]
        assert item["uin"] not in item["groupedQuestions"]
        for entry in dates:
            other = by_key[(item["house"], entry["questionUin"], entry["dateTabled"])]
            assert item["uin"] in other["groupedQuestions"]
            assert {"questionUin": item["uin"], "dateTabled": item["dateTabled"]} in other[
                "groupedQuestionsDates"
            ]
            for field in ("answerText", "dateAnswered", "answeringMemberId", "answeringBodyId"):
                assert other[field] == item[field]


def test_answer_states_are_consistent(sample: list[Item]) -> None:
    end = QUARTER["end"].isoformat()
    states: Counter[str] = Counter()
    for item in sample:
        status = _status(item)
        states[status] += 1
        assert item["dateTabled"][:10] <= end
        assert item["dateForAnswer"] > item["dateTabled"]
        if status == "unanswered":
            for field in (
                "answerText",
                "answerIsHolding",
                "answerIsCorrection",
                "answeringMemberId",
                "answeringMember",
                "dateHoldingAnswer",
                "correctingMemberId",
                "dateAnswerCorrected",
            ):
                assert item[field] is None, field
            continue
        assert item["dateTabled"] <= item["dateAnswered"] and item["dateAnswered"][:10] <= end
        assert item["answeringMember"]["id"] == item["answeringMemberId"]
        if status == "holding":
            assert item["dateAnswered"] == item["dateHoldingAnswer"]
            assert "will not be possible to answer this question" in item["answerText"]
            assert item["answerIsCorrection"] is False
            continue
        assert item["answerIsHolding"] is False
        assert item["answerText"].startswith("<p>") and item["answerText"].endswith(">")
        if item["dateHoldingAnswer"] is not None:
            states["answered after holding"] += 1
            assert item["dateHoldingAnswer"] < item["dateAnswered"]
        corrected = item["answerIsCorrection"]
        assert corrected is (item["dateAnswerCorrected"] is not None)
        assert corrected is (item["correctingMemberId"] is not None)
        if corrected:
            assert item["dateAnswered"] <= item["dateAnswerCorrected"] <= end + "T00:00:00"
            assert item["correctingMember"]["id"] == item["correctingMemberId"]
    assert all(states[s] for s in ("unanswered", "holding", "corrected", "answered after holding"))
    assert states["answered"] > 0.75 * len(sample)  # the last weeks are still open


def test_answers_carry_html_like_the_detail_endpoint(sample: list[Item]) -> None:
    answers = [i["answerText"] for i in sample if i["answerIsHolding"] is False]
    for tag, low, high in (("<table>", 0.01, 0.08), ("<ul>", 0.002, 0.04), ("<a ", 0.06, 0.22)):
        share = sum(tag in a for a in answers) / len(answers)
        assert low < share < high, (tag, share)
    for answer in answers:
        assert answer.count("<p>") == answer.count("</p>") > 0
        assert answer.count("<table>") == answer.count("</table>")


# -- planted topics ----------------------------------------------------------------------------


def test_planted_topics_come_at_their_rates_and_nowhere_else(sample: list[Item]) -> None:
    counts = Counter(p for item in sample for p in count_topics(item))
    n = len(sample)
    for topic in TOPICS:
        # Topics are drawn per group of questions, which roughly doubles the variance.
        tolerance = 4 * math.sqrt(2 * topic.rate * (1 - topic.rate) / n) + 2 / n
        assert abs(counts[topic.phrase] / n - topic.rate) <= tolerance, topic.phrase
    assert counts["school"] > counts["mental health"] > counts["palliative care"]
    assert counts["hovercraft"] <= 5
    # A reserved word appears only inside its planted phrase's items (so a search for
    # "palliative" finds exactly the "palliative care" items).
    stems = {t.reserved[0] for t in TOPICS}
    for item in sample:
        text = " ".join(str(item[k] or "") for k in ("heading", "questionText", "answerText"))
        text = text.lower()
        if not any(stem in text for stem in stems):
            continue
        planted = set(count_topics(item))
        words = set(re.findall(r"[a-z]+", text))
        for stem in stems:
            if any(w.startswith(stem) for w in words):
                assert any(t.reserved[0] == stem and t.phrase in planted for t in TOPICS)
        assert not ("palliative" in words and "palliative care" not in planted)


# -- writing and ingesting ---------------------------------------------------------------------


def test_written_pages_load_back_unchanged(tmp_path: Path) -> None:
    items = list(generate(300, seed=4, **QUARTER))
    paths = write_pages((dict(i) for i in items), tmp_path / "out", per_file=120)
    assert [p.name for p in paths] == [f"questions_{i:04d}.json.gz" for i in (1, 2, 3)]
    raw = json.loads(gzip.decompress(paths[0].read_bytes()))
    assert len(raw) == 120
    assert raw[0] == {
        "value": items[0],
        "links": [{"rel": "self", "href": f"/Questions/{items[0]['id']}", "method": "GET"}],
    }
    assert load_items(paths) == {i["id"]: i for i in items}
    assert write_pages(iter(()), tmp_path / "empty") == []


def test_pqwatch_ingests_a_generated_archive(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    items = list(generate(250, seed=9, start=date(2024, 1, 1), end=date(2024, 1, 31)))
    with ReplayServer(items) as server:
        config = write_config(api_config(server.base_url))
        with open_service(config, now=date(2024, 2, 1)) as svc:
            [run] = svc.poll(date(2024, 1, 1), date(2024, 1, 31))
    assert run.ok, run.error
    db = config.parent / "pqwatch.db"
    assert rows(db, "SELECT COUNT(*) FROM question") == [(250,)]
    stored = dict(rows(db, "SELECT source_id, question_text FROM question"))
    assert all(stored[str(i["id"])] == i["questionText"] for i in items)  # full texts
    houses = Counter(h for (h,) in rows(db, "SELECT house FROM question"))
    assert houses == Counter(i["house"] for i in items)
    statuses = Counter(s for (s,) in rows(db, "SELECT status FROM question"))
    assert statuses == Counter(_status(i) for i in items)
