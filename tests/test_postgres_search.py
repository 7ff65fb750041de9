"""Search on PostgreSQL (issue 19): the same archive in SQLite and in PostgreSQL gives the same
hits, judged query by query over every operator and filter, and ranks them sensibly.

Run on a throw-away server (tests/pg.py): asked for with --postgres or PQWATCH_TEST_POSTGRES=1.
The small archive is tests/test_query.py's, stored by SQL (tests/pg_archive.py); the recorded
one is polled from the replay server into both databases.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings

from pqwatch.errors import UsageError
from pqwatch.store.db import Database
from pqwatch.store.postgresql import facet_counts as pg_facets
from pqwatch.store.postgresql import search as pg
from pqwatch.store.postgresql.compile import compile_query
from pqwatch.store.sqlite import facet_counts as sq_facets
from pqwatch.store.sqlite import search as sq
from tests.conftest import CliResult
from tests.pg import Cluster
from tests.pg_archive import fill
from tests.test_query import CASES, HOSTILE, QUERIES, STEM_WORDS

# Where the two indexes differ (pqwatch.store.postgresql.compile says why): FTS5 removes
# accents and keeps stop words, PostgreSQL's 'english' configuration does neither.
DIFFERENT = {"cafe": set(), 'hospice "or" palliative': {2}}

# Each operator and filter with words, so that the search's own plans (words only, words and
# filters, facet words, filters only) are all taken.
MORE_QUERIES = [
    "care", "care house:lords", "care -house:lords", "care status:answered dept:health",
    "care tabled:2024-01..2024-03", "care answered:2023", "care answered:>=2024-06-01",
    "dept:health answered:2024", "house:commons status:answered", "hospice dept:nothing",
    "educat* dept:education", "hosp* house:commons", '"short br"*', "carer*", "vaccin* OR prison*",
    "heading:care", "heading:care -status:answered", "asker:whitfield OR answerer:merrow",
    "care -(hospice OR home)", "type:question parliament:westminster care",
    "tabled:2023", "answered:..2023-12-31 care", '"end of life"', '"end of life care"',
]  # fmt: skip


@pytest.fixture(scope="module")
def dbs(
    postgres: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Database]]:
    """The small archive in SQLite and in PostgreSQL."""
    folder = tmp_path_factory.mktemp("archive")
    both = {
        "sqlite": Database(f"sqlite:///{folder / 'pqwatch.db'}"),
        "postgresql": Database(postgres.create_database()),
    }
    for db in both.values():
        fill(db)
    yield both
    for db in both.values():
        db.dispose()


def _ids(db: Database, query: str, **options: Any) -> tuple[int, list[int], str]:
    engine = pg if db.dialect == "postgresql" else sq
    with db.read() as session:
        found = engine.search(session.connection(), query, limit=100, **options)
    return found.total, [h.id for h in found.hits], found.sort


def _where(db: Database, query: str, ids: list[int]) -> set[int]:
    """Matching's use of the compiled query: the ids among `ids` that it matches."""
    cq = compile_query(query)
    with db.read() as session:
        conn = session.connection()
        sql = f"SELECT q.id FROM question q WHERE q.id = ANY(%(ids)s) AND ({cq.where})"
        return {r[0] for r in conn.exec_driver_sql(sql, {**cq.params, "ids": ids})}


@pytest.mark.parametrize(("query", "expected"), CASES, ids=[c[0] for c in CASES])
def test_the_query_language_finds_what_it_finds_on_sqlite(
    dbs: dict[str, Database], query: str, expected: set[int]
) -> None:
    expected = DIFFERENT.get(query, expected)
    assert _where(dbs["postgresql"], query, list(range(1, 15))) == expected
    assert _where(dbs["postgresql"], query, [1, 2, 3]) == expected & {1, 2, 3}
    if any(len(p) < pg.MIN_PREFIX for p in compile_query(query).prefixes):
        with pytest.raises(UsageError, match="too short a prefix"):  # as on SQLite
            _ids(dbs["postgresql"], query)
        return
    total, ids, _ = _ids(dbs["postgresql"], query)
    assert set(ids) == expected and total == len(expected)


@pytest.mark.parametrize("sort", ["relevance", "newest"])
@pytest.mark.parametrize("query", [c[0] for c in CASES if c[0] not in DIFFERENT] + MORE_QUERIES)
def test_search_gives_the_same_hits_on_both(
    dbs: dict[str, Database], query: str, sort: str
) -> None:
    try:
        on_sqlite = _ids(dbs["sqlite"], query, sort=sort)
    except UsageError as error:
        with pytest.raises(UsageError) as caught:
            _ids(dbs["postgresql"], query, sort=sort)
        assert str(caught.value) == str(error)
        return
    on_postgres = _ids(dbs["postgresql"], query, sort=sort)
    assert on_postgres[0] == on_sqlite[0]  # the count
    assert on_postgres[2] == on_sqlite[2]  # the order used
    assert set(on_postgres[1]) == set(on_sqlite[1])
    if on_postgres[2] == "newest":  # a total order (ties by id)
        assert on_postgres[1] == on_sqlite[1]


@pytest.mark.parametrize(
    ("query", "headings"),
    [
        # A word in the heading counts most: the hospice headings before the answer's.
        ("hospice", {2, 3, 13}),
        ("palliative care", {1, 12}),  # "Palliative Care" headings, before an answer's words
        ("children", {1, 6}),  # headings, before question 14's text
        ("care", {1, 5, 7, 12}),  # "Care" in the heading, before nine with it elsewhere
    ],
)
def test_relevance_puts_heading_matches_first(
    dbs: dict[str, Database], query: str, headings: set[int]
) -> None:
    for db in dbs.values():
        _, ids, sort = _ids(db, query)
        assert sort == "relevance"
        assert set(ids[: len(headings)]) == headings, db.dialect


def test_stop_words_in_a_phrase_are_gaps_of_one_word(dbs: dict[str, Database]) -> None:
    # "end of life" (question 1's answer and 2's) is stored as end, a gap and life.
    assert _where(dbs["postgresql"], '"end of life"', list(range(1, 15))) == {1, 2}
    assert _where(dbs["postgresql"], '"end of life care"', list(range(1, 15))) == {1, 2}
    assert _where(dbs["postgresql"], '"end life"', list(range(1, 15))) == set()
    # Any stop word fills the gap (SQLite finds nothing: no text says "end to life").
    assert _where(dbs["postgresql"], '"end to life"', list(range(1, 15))) == {1, 2}
    # Only stop words: nothing to search, so nothing found (and no error).
    assert _where(dbs["postgresql"], '"or"', list(range(1, 15))) == set()
    assert _where(dbs["postgresql"], "-the hospice", list(range(1, 15))) == {2, 3, 13}


def test_facet_words_are_never_found_by_a_users_words(dbs: dict[str, Database]) -> None:
    # Every question has the facet words hcommons/hlords, sanswered..., d1..., ty2024...
    for query in ("hlords", "sanswered", "d1", "ty2024", "tm202401", "sun*", "hco*", "am2024*"):
        assert _where(dbs["postgresql"], query, list(range(1, 15))) == set(), query


# A question's text (B) beside the facet words (D) of a Scottish one and of an FOI request,
# whose House and state are two words each ("hscottish parliament", "sinternal review").
_FACETS_ONLY = "hscottish parliament snot_held d17 ty2024 tm202401 ay2025 am202502 sinternal_review"
_TEXTS = {
    1: "health department dementia sunday dentist tyres amber",
    2: "nothing known",
}


def _words_table(conn: Any) -> None:
    # Its own name: a pooled connection keeps another test's temporary `words`.
    conn.exec_driver_sql("CREATE TEMP TABLE facet_words (id int, search_vector tsvector)")
    for i, text in _TEXTS.items():
        conn.exec_driver_sql(
            "INSERT INTO facet_words VALUES (%(i)s, setweight(to_tsvector('english', %(t)s), 'B') "
            "|| setweight(to_tsvector('simple', %(f)s), 'D'))",
            {"i": i, "t": text, "f": _FACETS_ONLY},
        )


def _found(conn: Any, query: str) -> set[int]:
    cq = compile_query(query)
    sql = f"SELECT q.id FROM facet_words q WHERE {cq.where}"
    return {r[0] for r in conn.exec_driver_sql(sql, cq.params)}


def test_only_words_that_could_be_facet_words_are_searched_with_weights(
    dbs: dict[str, Database],
) -> None:
    """A weight makes GIN recheck every match (1.4 s to count `department` on 600,000), so
    the words and prefixes no facet word can be are searched without one; the others still
    never find a facet word, whichever of the facets' shapes they have."""
    with dbs["postgresql"].read() as session:
        conn = session.connection()
        _words_table(conn)
        for query in (
            "health", "department", "dementia", "sunday", "dentist", "tyres", "amber",
            "dement*", "health*", "sunda*", "dent*", "tyr*", "amb*", "d*", "t*", "a*", "dep*",
        ):  # fmt: skip
            assert _found(conn, query) == {1}, query
        for query in (
            "hscottish", "parliament", "held", "review", "reviews", "snot", "sinternal", "d17",
            "ty2024", "tm202401", "ay2025", "am202502", "d1*", "ty2*", "tm2024*", "am20*",
            "ay20*", "hsc*", "parliam*", "review*", "sno*", "sint*", "hel*",
        ):  # fmt: skip
            assert _found(conn, query) == set(), query
        conn.exec_driver_sql("DROP TABLE facet_words")
    weighted = {q: compile_query(q).params["p1"] for q in ("health", "hlords", "d17", "d17s")}
    assert weighted == {"health": "'health'", "hlords": "'hlords':ABC", "d17": "'d17':ABC",
                        "d17s": "'d17s'"}  # fmt: skip
    assert compile_query("heading:health").params["p1"] == "'health':A"


@pytest.mark.parametrize(
    "args",
    [
        ("Commons", "unanswered", 17, date(2024, 1, 2), None),
        ("Lords", "corrected", 3, date(2019, 12, 31), date(2020, 2, 1)),
        ("Scottish Parliament", "answered", None, date(2025, 6, 1), date(2025, 7, 1)),
        ("WhatDoTheyKnow", "partially_successful", 1234, date(2010, 1, 1), date(2011, 1, 1)),
        ("Northern Ireland Assembly", "not_held", None, date(2021, 5, 5), None),
    ],
)
def test_every_facet_word_is_searched_with_weights(args: tuple[Any, ...]) -> None:
    from pqwatch.store.postgresql.compile import may_be_facet_word
    from pqwatch.store.sqlite.facets import facet_text

    words = re.findall(r"[^\W_]+", facet_text(*args))
    assert [w for w in words if not may_be_facet_word(w)] == []


def test_the_facet_vocabulary_has_every_sources_house() -> None:
    import importlib
    import pkgutil

    import pqwatch.sources
    from pqwatch.store.postgresql.compile import _HOUSE_NAMES

    for info in pkgutil.iter_modules(pqwatch.sources.__path__):
        house = getattr(importlib.import_module(f"pqwatch.sources.{info.name}"), "HOUSE", None)
        assert house is None or house in _HOUSE_NAMES, info.name


def test_no_word_that_stems_to_a_facet_word_goes_without_weights(
    dbs: dict[str, Database],
) -> None:
    """may_be_facet_word's model of Snowball's stems, against PostgreSQL's own: every word
    made of a facet word (or its start) and a suffix whose stem is a facet word."""
    from pqwatch.store.postgresql.compile import _FACET_WORDS, may_be_facet_word
    from pqwatch.store.searching import _SUFFIXES

    words = sorted(
        {w[: len(w) - k] + s for w in _FACET_WORDS for k in range(6) for s in ("", *_SUFFIXES)}
        - {""}
    )
    with dbs["postgresql"].read() as session:
        stems = session.connection().exec_driver_sql(
            "SELECT w, tsvector_to_array(to_tsvector('english', w)) FROM unnest(%(w)s::text[]) w",
            {"w": words},
        )
        colliding = [w for w, lexemes in stems if set(lexemes) & _FACET_WORDS]
    assert len(colliding) > 1000
    assert [w for w in colliding if not may_be_facet_word(w)] == []


def test_a_prefix_finds_every_word_it_begins(dbs: dict[str, Database]) -> None:
    """As tests/test_query.py's test of the same name, with PostgreSQL's Snowball stems: it
    misses fewer than SQLite's porter does (the suffix list is SQLite's)."""
    db = dbs["postgresql"]
    missed = []
    with db.read() as session:
        conn = session.connection()
        conn.exec_driver_sql("CREATE TEMP TABLE words (id int, search_vector tsvector)")
        for i, word in enumerate(STEM_WORDS, 1):
            conn.exec_driver_sql(
                "INSERT INTO words VALUES (%(i)s, setweight(to_tsvector('english', %(w)s), 'B'))",
                {"i": i, "w": word},
            )
        for i, word in enumerate(STEM_WORDS, 1):
            for k in range(3, len(word) + 1):
                cq = compile_query(f"{word[:k]}*")
                sql = f"SELECT q.id FROM words q WHERE {cq.where}"
                if i not in {r[0] for r in conn.exec_driver_sql(sql, cq.params)}:
                    missed.append(f"{word[:k]}* misses {word}")
    assert missed == [
        "hopp* misses hopping", "hoppi* misses hopping", "hoppin* misses hopping",
        "oscilla* misses oscillators", "oscillat* misses oscillators",
        "oscillato* misses oscillators",
    ]  # fmt: skip


def test_matched_words_and_snippets_are_marked_as_fts5_marks_them(
    dbs: dict[str, Database],
) -> None:
    db = dbs["postgresql"]
    with db.read() as session:
        conn = session.connection()
        assert pg.matched_words(conn, "palliative care children", 1) == (
            "palliative", "care", "children",
        )  # fmt: skip
        assert pg.matched_words(conn, '"short breaks"', 6) == ("short breaks",)
        assert pg.matched_words(conn, "covid-19", 9) == ("covid-19",)
        assert pg.matched_words(conn, "hospice", 1) == ()  # no longer matches
        assert pg.matched_words(conn, "house:lords", 2) == ()  # no words
        found = pg.search(conn, "hospice funding", limit=1)
    [hit] = found.hits
    assert set(hit.matched_terms) <= {"hospices", "hospice", "fund", "funding"}
    assert "\x02fund\x03" in hit.snippet and len(hit.snippet.split()) <= pg.SNIPPET_WORDS


@pytest.mark.parametrize(
    "query",
    ["care", "hospice OR house:lords", "care dept:health", "status:answered", "-hospice", "educ*"],
)
def test_facet_counts_are_the_same_on_both(dbs: dict[str, Database], query: str) -> None:
    with dbs["sqlite"].read() as s1, dbs["postgresql"].read() as s2:
        on_sqlite = sq_facets.facet_counts(s1.connection(), query)
        on_postgres = pg_facets.facet_counts(s2.connection(), query)
    assert on_postgres == on_sqlite


def test_show_and_preview_are_the_same_on_both(dbs: dict[str, Database]) -> None:
    today = date(2025, 1, 10)
    with dbs["sqlite"].read() as s1, dbs["postgresql"].read() as s2:
        for ref in ("1700001", "100", "2024-01-08/100"):
            assert pg.question_story(s2.connection(), ref, today) == sq.question_story(
                s1.connection(), ref, today
            )
        for query in ("care", "hospice house:commons", "dept:health"):
            on_sqlite = sq.preview_watch(s1.connection(), query, today)
            on_postgres = pg.preview_watch(s2.connection(), query, today)
            # The same examples (their snippets may be cut at other words).
            assert [h.id for h in on_postgres.examples] == [h.id for h in on_sqlite.examples]
            assert replace(on_postgres, examples=()) == replace(on_sqlite, examples=())


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(QUERIES)
@example('"\x000"')
@example("NOT " * 999 + "a")
@example("(a OR -(b " * 13 + "c" + "))" * 13)
@example("(a OR (b " * 14 + "c" + "))" * 14)
@example("x' | 'y")
@example("a\\'b:*")
def test_any_text_is_searched_or_refused_in_one_line_as_on_sqlite(
    dbs: dict[str, Database], query: str
) -> None:
    """Random text never reaches PostgreSQL as an error: it is searched, or refused with the
    one-line UsageError SQLite gives."""
    try:
        _ids(dbs["sqlite"], query)
        refused = None
    except UsageError as error:
        refused = str(error)
    try:
        _ids(dbs["postgresql"], query)
        _where(dbs["postgresql"], query, [1, 2, 3])
    except UsageError as error:
        assert str(error) == refused
        assert str(error).splitlines() == [str(error)]
        return
    assert refused is None


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_input_is_searched_for_literally(dbs: dict[str, Database], query: str) -> None:
    try:
        cq = compile_query(query)
    except UsageError:
        return
    # No user text in the SQL: only placeholders, and quoted lexemes in the parameters.
    for value in cq.params.values():
        if isinstance(value, str):
            assert value not in cq.where
    _ids(dbs["postgresql"], query)
    with dbs["postgresql"].read() as session:
        count = session.connection().exec_driver_sql("SELECT count(*) FROM question")
        assert count.scalar_one() == 14


# -- the recorded archive, polled into both --------------------------------------------------

CLI_QUERIES = [
    "hospice", "palliative care children", '"short breaks"', "school -private",
    "hospice OR hospices", "educat*", "defence house:lords", 'dept:"health and social care"',
    "status:answered hospice", "tabled:2024-07 school", "answered:2021", "asker:smith",
    "heading:school", "-school house:lords", "covid-19", "carer* dept:health",
]  # fmt: skip


@pytest.fixture(scope="module")
def polled(
    postgres: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Path]]:
    """The recorded archive of tests/test_search.py polled from the replay server into an
    SQLite file and a PostgreSQL database: a config for each."""
    from pqwatch.testing.replay import ReplayServer
    from tests.conftest import api_config, open_service, require_data
    from tests.test_search import WATCHES, _archive_items

    items = _archive_items(require_data())
    configs = {}
    with ReplayServer(items.values()) as server:
        for dialect in ("sqlite", "postgresql"):
            folder = tmp_path_factory.mktemp(dialect)
            text = api_config(server.base_url, extra=WATCHES)
            if dialect == "postgresql":
                text = text.replace(
                    'url = "sqlite:///pqwatch.db"', f'url = "{postgres.create_database()}"'
                )
            config = folder / "config.toml"
            config.write_text(text)
            with open_service(config, now=date(2026, 7, 10)) as svc:
                [run] = svc.poll(date(2021, 1, 1), date(2026, 7, 10))
                assert run.ok, run.error
            configs[dialect] = config
    yield configs


@pytest.mark.parametrize("sort", ["relevance", "newest"])
def test_pqwatch_search_gives_the_same_results_on_both(
    polled: dict[str, Path], cli: Callable[..., CliResult], sort: str
) -> None:
    for query in CLI_QUERIES:
        found = {}
        for dialect, config in polled.items():
            result = cli(
                "--config", config, "search", "--format", "json", "--limit", "1000",
                "--sort", sort, "--", query,
            )  # fmt: skip
            assert result.exit_code == 0, result.stderr
            found[dialect] = json.loads(result.stdout)
        on_sqlite, on_postgres = found["sqlite"], found["postgresql"]
        assert on_postgres["total"] == on_sqlite["total"], query
        ids = [h["id"] for h in on_postgres["hits"]]
        assert set(ids) == {h["id"] for h in on_sqlite["hits"]}, query
        if sort == "newest":
            assert ids == [h["id"] for h in on_sqlite["hits"]], query


def test_pqwatch_search_table_output_reads_the_same(
    polled: dict[str, Path], cli: Callable[..., CliResult]
) -> None:
    out = {
        d: cli("--config", c, "search", "hospice funding", "--sort", "newest")
        for d, c in polled.items()
    }
    assert out["postgresql"].exit_code == 0, out["postgresql"].stderr
    # The same questions in the same order; snippets may be cut at other words.
    heads = {d: re.findall(r"^\S.*$", r.stdout, re.M)[:3] for d, r in out.items()}
    assert heads["postgresql"][0] == heads["sqlite"][0]
