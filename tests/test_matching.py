"""Matching, and the words a digest shows for a match ("why did I get this?").

The words are what FTS5's own highlight() marks for the watch's query in the question, worked
out when a digest is composed (compose.ArchiveCache.matched_words); these tests spell out what
a reader sees on hand-made hard cases. Matching itself runs a batch of new events against a
private index of just their questions: it must find exactly what the archive's index finds.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from pqwatch.notify.compose import ArchiveCache
from pqwatch.search.results import MARK_END, MARK_START, marked_terms
from pqwatch.store.sqlite.compile import compile_query
from tests.conftest import rows

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
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    conn.execute(
        "CREATE VIRTUAL TABLE question_fts USING fts5(heading, question, answer, facets, "
        "tokenize='porter unicode61 remove_diacritics 2')"
    )
    conn.executemany(
        "INSERT INTO question_fts (rowid, heading, question, answer, facets) "
        "VALUES (?, ?, ?, ?, 'hcommons sanswered')",
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


def _words_shown(conn: sqlite3.Connection) -> tuple[ArchiveCache, sqlite3.Connection]:
    return ArchiveCache(), conn


@pytest.mark.parametrize("query", QUERIES)
def test_the_words_a_digest_shows_are_what_highlight_marks(query: str) -> None:
    conn = _database()
    cq = compile_query(query)
    assert cq.match is not None
    expected = _highlight(conn, cq.match)
    assert expected, f"{query!r} matches none of the texts: not a useful case"
    cache, sa_conn = _words_shown(conn)
    assert {qid: cache.matched_words(sa_conn, query, qid) for qid in expected} == expected


def test_some_cases_read_as_a_user_expects() -> None:
    """A few of the cases above spelled out: the words as written, in order of appearance."""
    cache, conn = _words_shown(_database())

    def words(query: str, qid: int) -> tuple[str, ...]:
        return cache.matched_words(conn, query, qid)

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
    # A question that a filter, not a word, selected: no words to show.
    assert words("status:answered", 1) == ()
    assert words("hospice house:commons", 1) == ("hospices", "hospice")


def test_a_batch_matches_what_the_archive_matches(tmp_path: Path) -> None:
    """A synthetic batch matched as ingest matches it (many watches: the batch index), then
    each watch again over the whole archive (the archive's index): the same matches."""
    from bench.matching import build

    svc, ids, _ = build(tmp_path, events=300, archive=60, watches=40, seed=5)
    try:
        with svc.db.write() as session:
            assert svc.matcher.on_events(session, ids, []) > 0
        db = tmp_path / "pqwatch.db"
        batch = set(rows(db, "SELECT watch_id, event_id FROM watch_match"))
        watches = rows(db, "SELECT id, query FROM watch WHERE active")
        assert len({w for w, _ in batch}) > 10
        archive: set[tuple[int, int]] = set()
        with svc.db.write() as session:
            for watch_id, query in watches:
                svc.matcher.match_history(session, watch_id, query)
            found = session.connection().execute(
                sa.text(
                    "SELECT m.watch_id, m.event_id FROM watch_match m "
                    "JOIN event e ON e.id = m.event_id WHERE e.id IN :ids"
                ).bindparams(sa.bindparam("ids", expanding=True)),
                {"ids": list(ids)},
            )
            archive = {(r[0], r[1]) for r in found}
            session.rollback()
        assert batch == archive
    finally:
        svc.close()
