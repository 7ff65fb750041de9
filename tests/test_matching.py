"""The words a match records ("why did I get this?", shown in digests and feeds).

The matcher works them out in Python from the FTS5 query instead of calling highlight() for
every match; they must be exactly the words highlight() marks, which is what these tests
compare, on hand-made hard cases and on a whole synthetic batch matched through the service.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import pqwatch.search.matching as matching
from pqwatch.search.engine import MARK_END, MARK_START, marked_terms
from pqwatch.search.query import _SUFFIXES, compile_query, porter_stem
from pqwatch.sources.replay import load_items

TEXTS = {
    1: (
        "Palliative Care: Children",
        "To ask the Secretary of State for Health and Social Care, what funding is available "
        "for children's hospices; and if he will make a statement.",
        "The Government’s funding for hospices, including children’s hospice care, rose in "
        "2024. Hospice-at-home services and childrens hospice beds are PALLIATIVE care too.",
    ),
    2: (
        "Schools: Special Educational Needs",
        "To ask what steps are being taken to recruit educational psychologists; and what the "
        "education budget is for educating children with capability needs.",
        "Capabilities differ; the ability of each school to provide it is assessed. Education, "
        "Health and Care Plans (EHCPs) are issued by local authorities.",
    ),
    3: (
        "Care Homes",
        "What assessment has been made of care home capacity, of care  home fees, and of the "
        "number of homes for care leavers?",
        "Care\nhome fees are set locally. The care-home sector, care care care.",
    ),
    4: (
        "Covid-19: Vaccination",
        "To ask how many people were vaccinated against COVID-19 in 2024; and what the uptake "
        "of vaccines and vaccinating in pharmacies was.",
        None,
    ),
    5: (
        "Northern Ireland",
        "To ask what discussions he has had with Sinn Féin about the naïve hospice policy.",
        "Ministers met Sinn Féin representatives on 3 May; care home policies were discussed.",
    ),
    6: (
        None,
        "Policy on police policing: will the Minister see https://www.gov.uk/foo_bar_hospice "
        "and use AI? Using IT, used by us, is it happy or unhappy?",
        "Happiness and policies: the " + "x" * 70 + " token and 12345 are both words too.",
    ),
    7: (
        "Hospices: Finance",
        "What is the hospice funding formula for children's palliative care?",
        "Children's hospices are funded by the NHS; children's palliative care is a priority.",
    ),
    8: (None, "A NUL separates words for FTS5: hospice\x00care.", None),
}

QUERIES = [
    "hospices",
    "Hospice OR palliative",
    "palliative care children",
    '"palliative care"',
    '"children\'s hospice"',
    '"care home"',
    '"care home" home',
    "care home",
    "care -home",
    "(care -home) OR hospice",
    "(palliative leavers) OR hospice",
    "(care home) OR (funding formula)",
    "educ*",
    "educat*",
    "vaccin*",
    "capab*",
    '"palliative car"*',
    '"covid 19"',
    "covid-19",
    "heading:children palliative",
    "heading:care home",
    'heading:"palliative care" children',
    "heading:hospices OR heading:vaccination",
    "-heading:care hospice",
    "capability",
    "ability",
    "policy",
    "police",
    "happy",
    "using",
    "it",
    "fein",
    '"sinn fein"',
    "naive OR care",
    "bar",
    "hospice NOT children",
    '"care care"',
    '"hospice care"',
    "care",
    "12345",
    "x" * 70,
    "hospice house:commons",
    "hospice dept:health",
    "status:answered hospice",
]


def _database() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE VIRTUAL TABLE question_fts USING fts5(heading, question, answer, "
        "tokenize='porter unicode61 remove_diacritics 2')"
    )
    conn.executemany(
        "INSERT INTO question_fts (rowid, heading, question, answer) VALUES (?, ?, ?, ?)",
        [(qid, *columns) for qid, columns in TEXTS.items()],
    )
    return conn


def _highlight(conn: sqlite3.Connection, match: str) -> dict[int, tuple[str, ...]]:
    """What highlight() marks in each question the expression matches, in rowid order."""
    marks = ", ".join(
        f"highlight(question_fts, {i}, '{MARK_START}', '{MARK_END}')" for i in range(3)
    )
    sql = f"SELECT rowid, {marks} FROM question_fts WHERE question_fts MATCH ? ORDER BY rowid"
    return {r[0]: marked_terms(r[1], r[2], r[3]) for r in conn.execute(sql, (match,))}


@pytest.fixture
def highlight_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    calls: list[int] = []
    real = matching._highlighted

    def counted(cur: sqlite3.Cursor, cq: Any, qid: int) -> tuple[str, ...]:
        calls.append(qid)
        return real(cur, cq, qid)

    monkeypatch.setattr(matching, "_highlighted", counted)
    yield calls


@pytest.mark.parametrize("query", QUERIES)
def test_matched_words_are_what_highlight_marks(query: str, highlight_calls: list[int]) -> None:
    conn = _database()
    cq = compile_query(query)
    assert cq.match is not None
    expected = _highlight(conn, cq.match)
    assert expected, f"{query!r} matches none of the texts: not a useful case"
    cur = conn.cursor()
    got = matching._matched_terms(cur, cq, list(expected), matching._Texts(cur))
    assert got == expected
    # highlight() itself is only asked about text that is not plain ASCII words (Sinn Féin,
    # a NUL).
    assert set(highlight_calls) <= {5, 8}


def test_some_cases_read_as_a_user_expects() -> None:
    """A few of the cases above spelled out: the words as written, in order of appearance."""
    conn = _database()
    cur = conn.cursor()

    def words(query: str, qid: int) -> tuple[str, ...]:
        cq = compile_query(query)
        return matching._matched_terms(cur, cq, [qid], matching._Texts(cur))[qid]

    assert words("hospices", 1) == ("hospices", "hospice")
    # A phrase is one marked stretch of text, punctuation and all; overlapping marks merge.
    assert words('"care home" home', 3) == ("care homes", "care home", "homes", "care-home")
    assert words("care home", 3) == ("care", "homes", "home")
    assert words("educ*", 2) == ("educational", "education", "educating")
    assert words("heading:children palliative", 1) == ("palliative", "children")
    assert words('"children\'s hospice"', 7) == ("children's hospices",)
    assert words('"children\'s hospice"', 1) == (
        "children's hospices",
        "children’s hospice",
        "childrens hospice",
    )
    # The matched query words of a question that a filter, not a word, selected: none.
    cq = compile_query("status:answered")
    assert cq.match is None
    assert matching._matched_terms(cur, cq, [1], matching._Texts(cur)) == {1: ()}


def test_a_word_begins_with_its_stem_less_its_last_letter(data_dir: Path) -> None:
    """The matcher looks for a stem's words by their beginning, stem[:-1]: porter only ever
    rewrites a word's ending. Checked on every word of the recorded questions and on words
    made from every suffix the query compiler knows."""
    base = data_dir / "uk_parliament"
    items = load_items(
        sorted((base / "monthly_list_dumps").glob("*.json.gz"))
        + sorted((base / "longform_detail_text").glob("*.json.gz"))
    )
    words: set[str] = set()
    for item in items.values():
        text = " ".join(str(item.get(k) or "") for k in ("heading", "questionText", "answerText"))
        words.update(re.findall(r"[a-z0-9]+", text.lower()))
    roots = ("abl", "capab", "happ", "nois", "fil", "conflat", "relat", "sens", "tri", "agre")
    words.update(root + suffix for root in roots for suffix in _SUFFIXES)
    assert len(words) > 10_000
    assert [w for w in words if not w.startswith(porter_stem(w)[:-1])] == []


def test_recorded_words_match_highlight_through_the_service(tmp_path: Path) -> None:
    """A synthetic batch matched as ingest matches it (many watches: the batch index), then
    one watch again over the whole archive (the archive's index): both record what
    highlight() marks, and the same words for the same question."""
    from bench.matching import build

    svc, ids, _ = build(tmp_path, events=300, archive=60, watches=40, seed=5)
    try:
        with svc.db.write() as session:
            assert svc.matcher.on_events(session, ids, []) > 0
        db = sqlite3.connect(tmp_path / "pqwatch.db")
        recorded = db.execute(
            "SELECT w.id, w.query, e.question_id, m.matched_terms_json FROM watch_match m "
            "JOIN watch w ON w.id = m.watch_id JOIN event e ON e.id = m.event_id"
        ).fetchall()
        assert len({r[0] for r in recorded}) > 10
        expected: dict[tuple[int, int], tuple[str, ...]] = {}
        for watch_id, query, qid, terms in recorded:
            cq = compile_query(query)
            want = _highlight(db, cq.match).get(qid, ()) if cq.match else ()
            assert tuple(json.loads(terms)) == want, (query, qid)
            expected[(watch_id, qid)] = want
        # The watch with the most matches, matched again over the whole archive.
        watch_id, query = max(
            {(r[0], r[1]) for r in recorded if r[3] != "[]"},
            key=lambda w: sum(1 for r in recorded if r[0] == w[0]),
        )
        with svc.db.write() as session:
            assert svc.matcher.match_history(session, watch_id, query) > 0
            again = session.connection().execute(
                sa.text(
                    "SELECT e.question_id, m.matched_terms_json FROM watch_match m "
                    "JOIN event e ON e.id = m.event_id WHERE m.watch_id = :w"
                ),
                {"w": watch_id},
            )
            checked = 0
            for qid, terms in again:
                if (watch_id, qid) in expected:
                    assert tuple(json.loads(terms)) == expected[(watch_id, qid)]
                    checked += 1
            assert checked > 0
        # The same batch with that watch the only active one (ingest's path for one watch).
        with svc.db.write() as session:
            conn = session.connection()
            conn.execute(sa.text("UPDATE watch SET active = (id = :w)"), {"w": watch_id})
            conn.execute(sa.text("DELETE FROM watch_match"))
            assert svc.matcher.on_events(session, ids, []) > 0
            alone = conn.execute(
                sa.text(
                    "SELECT e.question_id, m.matched_terms_json FROM watch_match m "
                    "JOIN event e ON e.id = m.event_id"
                )
            ).all()
            assert {(watch_id, qid) for qid, _ in alone} == {
                key for key in expected if key[0] == watch_id
            }
            for qid, terms in alone:
                assert tuple(json.loads(terms)) == expected[(watch_id, qid)]
            session.rollback()
    finally:
        svc.close()
