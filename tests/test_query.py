"""The query language, judged by what a user gets back from a small archive."""

from __future__ import annotations

import random
import re
import sqlite3
from collections.abc import Iterator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pqwatch.errors import UsageError
from pqwatch.query import QuerySyntaxError, parse
from pqwatch.store.sqlite.compile import CompiledQuery, compile_query

SCHEMA = """
CREATE TABLE member (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE answering_body (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE question (
    id INTEGER PRIMARY KEY,
    house TEXT NOT NULL,
    status TEXT NOT NULL,
    date_tabled DATE NOT NULL,
    date_answered DATE,
    asking_member_id INTEGER REFERENCES member(id),
    answering_member_id INTEGER REFERENCES member(id),
    answering_body_id INTEGER REFERENCES answering_body(id),
    heading TEXT,
    question_text TEXT NOT NULL
);
CREATE VIRTUAL TABLE question_fts USING fts5(
    heading, question, answer, tokenize='porter unicode61 remove_diacritics 2'
);
"""

MEMBERS = {
    1: "Jess Whitfield",
    2: "Baroness Finch of Harrow",
    3: "Tom Ashdown",
    4: "Baroness Merrow",
    5: "Dr Priya Kaur",
    6: "Lord Pennant",
    7: "Sarah Lowther",
    8: "Sir Malcolm Reeve",
    9: "Lord Dunmore",
    10: "Ed Lucas",
}
DHSC, DFE, MOJ, HMT, DWP = 1, 2, 3, 4, 5
BODIES = {
    DHSC: "Department of Health and Social Care",
    DFE: "Department for Education",
    MOJ: "Ministry of Justice",
    HMT: "HM Treasury",
    DWP: "Department for Work and Pensions",
}

# id, house, status, tabled, answered, asker, answerer, body, heading, question, answer
QUESTIONS = [
    (1, "Commons", "answered", "2024-01-08", "2024-01-16", 1, 3, DHSC,
     "Palliative Care: Children",
     "To ask the Secretary of State for Health and Social Care, what steps his Department is "
     "taking to improve access to children's palliative care services.",
     "The Government is committed to ensuring that every child with a life-limiting condition "
     "receives high quality end of life care. NHS England has published service "
     "specifications for specialist palliative care for children and young people."),
    (2, "Lords", "answered", "2024-02-05", "2024-02-19", 2, 4, DHSC,
     "Hospices: Government Assistance",
     "To ask His Majesty's Government what plans they have to increase funding for hospices "
     "in 2024-25.",
     "Integrated care boards are responsible for commissioning palliative and end of life "
     "care services, including funding for hospices, to meet the needs of their populations."),
    (3, "Commons", "answered", "2023-11-14", "2023-11-21", 5, 3, DHSC,
     "Hospices: Finance",
     "To ask the Secretary of State for Health and Social Care, what assessment he has made "
     "of the adequacy of funding for adult hospice services.",
     "The Department does not fund hospices directly; funding is provided through integrated "
     "care boards."),
    (4, "Commons", "holding", "2024-03-04", None, 8, 3, DHSC,
     "Dental Services: Rural Areas",
     "To ask the Secretary of State for Health and Social Care, how many NHS dentists are "
     "accepting new patients in rural areas.",
     "I will reply to the Hon. Member as soon as possible."),
    (5, "Commons", "corrected", "2023-06-12", "2023-06-20", 1, 3, DHSC,
     "Care Homes: Staff",
     "To ask the Secretary of State for Health and Social Care, how many care home staff left "
     "the sector in 2022.",
     "Skills for Care estimates that 152,000 staff left care home roles in 2022."),
    (6, "Commons", "unanswered", "2024-04-22", None, 5, None, DFE,
     "Disabled Children: Short Breaks",
     "To ask the Secretary of State for Education, what funding is available to local "
     "authorities for short breaks for families of disabled children.",
     ""),
    (7, "Lords", "answered", "2023-09-04", "2023-09-18", 6, 9, DWP,
     "Carers: Respite Care",
     "To ask His Majesty's Government what support is available to unpaid carers who need "
     "breaks from caring, and whether waiting times for respite are short enough.",
     "Local authorities must assess the needs of carers, including their need for a break."),
    (8, "Commons", "answered", "2024-03-05", "2024-03-12", 8, 7, DFE,
     "Special Educational Needs: Mainstream Schools",
     "To ask the Secretary of State for Education, what steps her Department is taking to "
     "improve special educational needs provision in mainstream schools.",
     "The Department is investing £850 million in high needs education places."),
    (9, "Lords", "answered", "2023-11-28", "2023-12-05", 2, 4, DHSC,
     "Covid-19: Vaccination",
     "To ask His Majesty's Government what the uptake of covid-19 vaccinations among care "
     "home residents was in autumn 2023.",
     "Uptake of covid-19 vaccines among older care home residents was 72 per cent."),
    (10, "Commons", "answered", "2023-03-01", "2023-03-08", 8, 10, MOJ,
     "Prisons: Drugs",
     "To ask the Secretary of State for Justice, what steps he is taking to reduce the supply "
     "of drugs in prisons.",
     "We are investing £100 million in security measures, including X-ray body scanners."),
    (11, "Commons", "answered", "2024-12-20", "2024-12-31", 1, 3, DHSC,
     "Hospitals: Parking",
     "To ask the Secretary of State for Health and Social Care, whether he plans to end car "
     "parking charges at hospitals for carers of patients.",
     "Free hospital car parking is provided for disabled people, frequent outpatient "
     "attenders and NHS staff on night shifts."),
    (12, "Lords", "answered", "2023-12-18", "2024-01-01", 6, 4, DHSC,
     "Palliative Care: Rural Areas",
     "To ask His Majesty's Government what steps they are taking to improve access to "
     "palliative care for adults in rural areas.",
     "Integrated care boards must commission palliative care services that meet the needs of "
     "their population, including in rural areas."),
    (13, "Commons", "withdrawn", "2024-05-01", None, 5, None, HMT,
     "Hospices: VAT",
     "To ask the Chancellor of the Exchequer, whether she plans to exempt hospices from VAT "
     "on building works.",
     ""),
    (14, "Commons", "answered", "2024-06-10", "2024-06-18", 8, 7, DFE,
     "Schools: Mental Health",
     "To ask the Secretary of State for Education, what support is available for children\u2019s "
     "mental health in schools, including café-style drop-in sessions.",
     "Mental health support teams now cover 44 per cent of pupils."),
]  # fmt: skip
ALL = frozenset(q[0] for q in QUESTIONS)


# The archive's own index (migrations/versions/0005_fts_facets.py): a fourth column of
# facet words, and the same tokenizer.
_TEST_FTS = "question_fts USING fts5(\n    heading, question, answer, tokenize="
_REAL_FTS = "question_fts USING fts5(\n    heading, question, answer, facets, tokenize="
assert _TEST_FTS in SCHEMA
REAL_SCHEMA = SCHEMA.replace(_TEST_FTS, _REAL_FTS)


def _build(schema: str = SCHEMA) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.executescript(schema)
    conn.executemany("INSERT INTO member VALUES (?, ?)", MEMBERS.items())
    conn.executemany("INSERT INTO answering_body VALUES (?, ?)", BODIES.items())
    for (
        qid,
        house,
        status,
        tabled,
        answered,
        asker,
        answerer,
        body,
        head,
        text,
        answer,
    ) in QUESTIONS:
        conn.execute(
            "INSERT INTO question VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (qid, house, status, tabled, answered, asker, answerer, body, head, text),
        )
        conn.execute(
            "INSERT INTO question_fts (rowid, heading, question, answer) VALUES (?, ?, ?, ?)",
            (qid, head, text, answer),
        )
    return conn


@pytest.fixture(scope="module")
def db() -> Iterator[sqlite3.Connection]:
    conn = _build()
    yield conn
    conn.close()


def search(conn: sqlite3.Connection, query: str) -> set[int]:
    """What a search returns, run the way the search stage runs it (joined when text leads)."""
    compiled = compile_query(query)
    if compiled.match is None:
        sql = f"SELECT q.id FROM question q WHERE {compiled.where}"
        params = compiled.params
    else:
        sql = (
            "SELECT q.id FROM question q JOIN question_fts ON question_fts.rowid = q.id "
            f"WHERE question_fts MATCH :match AND ({compiled.where})"
        )
        params = {**compiled.params, "match": compiled.match}
    return {row[0] for row in conn.execute(sql, params)}


def count(conn: sqlite3.Connection, query: str) -> set[int]:
    """The same search through CompiledQuery.sql(), as a caller that doesn't join would."""
    condition, params = compile_query(query).sql()
    return {
        row[0] for row in conn.execute(f"SELECT q.id FROM question q WHERE {condition}", params)
    }


def test_fts5_is_available() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(x)")


CASES: list[tuple[str, set[int]]] = [
    # The policy officer's seed watch, however it is typed.
    ("palliative care children", {1}),
    ("children's palliative care", {1}),
    ("children\u2019s palliative care", {1}),
    ("Palliative CARE Children", {1}),
    ("palliative care", {1, 2, 12}),
    ("hospice funding", {2, 3}),
    # Stemming: the plural finds the singular and the other way round.
    ("hospices", {2, 3, 13}),
    ("hospice", {2, 3, 13}),
    ("hospital", {11}),
    ("vaccinated", {9}),
    ("education", {6, 8, 14}),
    ("cafe", {14}),
    ("café", {14}),
    # Phrases against bags of words.
    ('"short breaks"', {6}),
    ("short breaks", {6, 7}),
    ('"rural areas"', {4, 12}),
    ('"palliative care"', {1, 12}),
    ('"care palliative"', set()),
    ('"children\'s palliative care"', {1}),
    ('"children\u2019s mental health"', {14}),
    ("covid-19", {9}),
    ("covid", {9}),
    ("“short breaks”", {6}),
    # OR binds looser than the implicit AND.
    ("vaccination OR prisons", {9, 10}),
    ("hospice OR hospital funding", {2, 3, 13}),
    ("(hospice OR hospital) funding", {2, 3}),
    ("hospice AND funding", {2, 3}),
    # Exclusion.
    ("hospice -vat", {2, 3}),
    ("hospice NOT vat", {2, 3}),
    ('hospice -"adult hospice"', {2, 13}),
    ("palliative -(children OR rural)", {2}),
    ("palliative NOT (children OR rural)", {2}),
    ("NOT NOT hospice", {2, 3, 13}),
    # Prefixes, including ones that stop inside a stemmed-away suffix.
    ("educ*", {6, 8, 14}),
    ("educat*", {6, 8, 14}),
    ("vaccin*", {9}),
    ("hosp*", {2, 3, 11, 13}),
    ("hospice*", {2, 3, 13}),
    ('"short br"*', {6}),
    ("heading:hosp*", {2, 3, 11, 13}),
    # Field filters, case-insensitive in name and value.
    ("house:lords", {2, 7, 9, 12}),
    ("House:LORDS", {2, 7, 9, 12}),
    ("hospice house:commons", {3, 13}),
    ("hospice -house:lords", {3, 13}),
    ('dept:"health and social care"', {1, 2, 3, 4, 5, 9, 11, 12}),
    ("dept:education", {6, 8, 14}),
    ("DEPT:EDUCATION", {6, 8, 14}),
    ("department:justice", {10}),
    ('dept:"social care" hospice', {2, 3}),
    ("dept:health -dept:social", set()),
    ('asker:"jess whitfield"', {1, 5, 11}),
    ("asker:whitfield hospitals", {11}),
    ("answerer:merrow", {2, 9, 12}),
    ('answerer:"baroness merrow" vaccination', {9}),
    ("-answerer:merrow dept:health", {1, 3, 4, 5, 11}),
    ("-answerer:lucas -answerer:ashdown house:commons", {6, 8, 13, 14}),
    ("heading:hospices", {2, 3, 13}),
    ('heading:"palliative care"', {1, 12}),
    ("heading:children", {1, 6}),
    ("children -heading:children", {14}),
    ("status:answered", {1, 2, 3, 5, 7, 8, 9, 10, 11, 12, 14}),
    ("status:holding", {4}),
    ("status:unanswered", {6}),
    ("status:corrected", {5}),
    ("Status:Withdrawn", {13}),
    ("-status:answered", {4, 6, 13}),
    # Dates: inclusive ends, open ends, whole years and months.
    ("tabled:2024-01-01..2024-03-31", {1, 2, 4, 8}),
    ("answered:2024-01-01..2024-01-16", {1, 12}),
    ("answered:>=2024-12-31", {11}),
    ("answered:>2024-12-30", {11}),
    ("answered:>2024-12-31", set()),
    ("answered:<2023-06-20", {10}),
    ("answered:<=2023-06-20", {5, 10}),
    ("answered:2023-06-20", {5}),
    ("answered:=2023-06-20", {5}),
    ("answered:2024-12-31..", {11}),
    ("answered:..2023-06-20", {5, 10}),
    ("answered:2024", {1, 2, 8, 11, 12, 14}),
    ("answered:2023-12", {9}),
    ("tabled:2023-12", {12}),
    ("Tabled:2024-03", {4, 8}),
    ("tabled:2023..2023", {3, 5, 7, 9, 10, 12}),
    ("answered:2024-01..2024-02", {1, 2, 12}),
    ("answered:>2023", {1, 2, 8, 11, 12, 14}),
    ("answered:<=2023-03", {10}),
    ("answered:2024-1-1", {12}),
    ('tabled:"2024-01..2024-02"', {1, 2}),
    # Not answered in 2024 includes never answered (NULL dates are not a third answer).
    ("-answered:2024", {3, 4, 5, 6, 7, 9, 10, 13}),
    # Text mixed with fields under OR / NOT.
    ("vat OR house:lords", {2, 7, 9, 12, 13}),
    ("hospice OR asker:pennant", {2, 3, 7, 12, 13}),
    ("(covid OR prisons) OR status:holding", {4, 9, 10}),
    ("hospice (house:lords OR status:withdrawn)", {2, 13}),
    ("NOT (hospice house:commons)", ALL - {3, 13}),
    ("hospice AND house:lords", {2}),
    ("covid OR -house:commons", {2, 7, 9, 12}),
    ("palliative (-children OR house:commons)", {1, 2, 12}),
    ("(palliative -children) OR prisons", {2, 10, 12}),
    # Only negations are allowed: everything except.
    ("-hospice", ALL - {2, 3, 13}),
    ("-hospice -care", {6, 8, 10, 14}),
    ("NOT house:commons", {2, 7, 9, 12}),
    ("-house:lords -status:answered", {4, 6, 13}),
    ("-(hospice OR care)", {6, 8, 10, 14}),
    # A bare `or`, in any case, is OR; in quotes it is a word of the phrase.
    ("vaccination or prisons", {9, 10}),
    ("hospice Or hospital funding", {2, 3, 13}),
    ("(hospice oR hospital) funding", {2, 3}),
    ("hospice or house:lords", {2, 3, 7, 9, 12, 13}),
    ('"hospice or palliative"', set()),
    ('hospice "or" palliative', set()),
    # A word written against a parenthesis is a term of its own, as if spaced.
    ("palliative(children)", {1}),
    ("NOT(hospice OR care)", {6, 8, 10, 14}),
    ("care-home", {5, 9}),
    ("hospice?", {2, 3, 13}),
    ("\u201eshort breaks\u201c", {6}),
    ('"short\x00breaks"', {6}),
    # Things that look like FTS5 or SQL syntax are searched for literally.
    ("NEAR (palliative children)", set()),
    ("palliative NEAR children", set()),
    ("^palliative children", {1}),
    ("palliative +children", {1}),
]


@pytest.mark.parametrize(("query", "expected"), CASES, ids=[c[0] for c in CASES])
def test_search_results(db: sqlite3.Connection, query: str, expected: set[int]) -> None:
    assert search(db, query) == expected
    assert count(db, query) == expected


def test_top_level_text_goes_into_one_match_expression() -> None:
    compiled = compile_query('palliative care -"short breaks" dept:health answered:2024')
    scope = "{heading question answer} : "  # never the index's facets column
    assert compiled.match == scope + '(("palliative" AND "care") NOT "short breaks")'
    assert "MATCH" not in compiled.where
    assert "answering_body" in compiled.where
    assert set(compiled.params.values()) == {"health", "2024-01-01", "2024-12-31"}

    plain = compile_query("palliative care")
    assert plain.match == scope + '(("palliative" AND "care"))'
    assert plain.where == "1"
    assert plain.params == {}


def test_mixed_or_and_negative_only_queries_use_sub_selects() -> None:
    mixed = compile_query("hospice OR house:lords")
    assert mixed.match is None
    assert "q.id IN (SELECT rowid FROM question_fts WHERE question_fts MATCH" in mixed.where

    negative = compile_query("-hospice -vat")
    assert negative.match is None
    assert negative.where.startswith("q.id NOT IN (SELECT rowid FROM question_fts")
    assert '{heading question answer} : (("hospice" OR "vat"))' in negative.params.values()

    other = compile_query("hospice", fts_table="archive_fts")
    assert other.sql()[0] == (
        "q.id IN (SELECT rowid FROM archive_fts WHERE archive_fts MATCH :match)"
    )
    with pytest.raises(ValueError):
        compile_query("hospice", fts_table="x; DROP TABLE question")


def test_terms_are_the_positive_words_as_typed() -> None:
    compiled = compile_query(
        'palliative "short  breaks" -vat educ* heading:hospices house:lords '
        "children's (covid OR -prisons) NOT (x OR heading:y) palliative"
    )
    assert compiled.terms == (
        "palliative",
        "short breaks",
        "educ*",
        "hospices",
        "children's",
        "covid",
    )
    assert compile_query("-hospice house:lords").terms == ()


def test_parse_gives_a_small_tree() -> None:
    tree = parse("a OR b -c")
    assert type(tree).__name__ == "Or"
    assert parse("NOT NOT a") == parse("a")


MALFORMED: list[tuple[str, str, int | None]] = [
    ("", "the query is empty", None),
    ("   ", "the query is empty", None),
    ('hospice "funding', "unclosed quote", 9),
    ("(hospice funding", "unclosed '('", 1),
    ("hospice (funding", "unclosed '('", 9),
    ("hospice (", "unclosed '('", 9),
    ("hospice funding)", "unmatched ')'", 16),
    ("(hospice))", "unmatched ')'", 10),
    (")", "unmatched ')'", 1),
    ("()", "empty parentheses", 1),
    ("hospice (funding OR", "'OR' needs a search term after it", 18),
    ("hospice OR", "'OR' needs a search term after it", 9),
    ("OR hospice", "'OR' needs a search term before it", 1),
    ("hospice OR OR funding", "'OR' needs a search term after it", 9),
    ("(OR hospice)", "'OR' needs a search term before it", 2),
    ("hospice AND", "'AND' needs a search term after it", 9),
    ("AND hospice", "'AND' needs a search term before it", 1),
    ("hospice AND OR funding", "'AND' needs a search term after it", 9),
    ("hospice NOT", "'NOT' needs a search term after it", 9),
    ("hospice (NOT) funding", "'NOT' needs a search term after it", 10),
    ("hospice - funding", "'-' must be written straight before a word", 9),
    ("hospice -", "'-' must be written straight before a word", 9),
    ("-", "'-' must be written straight before a word", 1),
    ("hospice -OR funding", "'-' must be written straight before a word", 9),
    (
        "colour:red",
        "unknown field 'colour' (fields: parliament, type, house, dept, asker, answerer, "
        "heading, status, tabled, answered)",
        1,
    ),
    ("hospice depts:health", "unknown field 'depts' (did you mean 'dept'?", 9),
    ("palliative:children", "unknown field 'palliative'", 1),
    ("house:", "empty value for 'house:'", 1),
    ("hospice dept: health", "empty value for 'dept:'", 9),
    ('asker:""', "empty value for 'asker:'", 7),
    ("house:senate", "house must be commons or lords, not 'senate'", 7),
    (
        "status:pending",
        "status must be answered, holding, unanswered, corrected, withdrawn, made, waiting, "
        "successful, partially_successful, not_held, refused, rejected, internal_review or "
        "overdue",
        8,
    ),
    ("tabled:2024-13-01", "bad date '2024-13-01' for 'tabled:' (month must be in 1..12)", 8),
    ("answered:2024-02-30", "bad date '2024-02-30' for 'answered:'", 10),
    ("answered:yesterday", "bad date 'yesterday' for 'answered:' (use YYYY, YYYY-MM", 10),
    ("tabled:2024-03-31..2024-01-01", "ends before it starts", 8),
    ("tabled:2024-01-01..2024-13", "bad date '2024-13'", 20),
    ("tabled:..", "'tabled:..' needs a date on at least one side", 8),
    ("tabled:>=", "bad date ''", 10),
    ("answered:>9999-12-31", "date out of range", 10),
    ("*", "'*' must come straight after a word", 1),
    ("heading:*", "'heading:*' must come straight after a word", 9),
    ("hospice &", "'&' has no letters or digits to search for", 9),
    ('hospice ""', "the quoted phrase has no letters or digits", 9),
    ('heading:";"', "the quoted phrase has no letters or digits", 9),
    ("(" * 40 + "a" + ")" * 40, "parentheses nested too deeply", 33),
    ("a " * 2001, "the query is too long (4002 characters; the limit is 4000)", None),
    # A bare `or` is OR, and gives OR's messages.
    ("hospice or", "'OR' needs a search term after it", 9),
    ("or hospice", "'OR' needs a search term before it", 1),
    ("Or", "'OR' needs a search term before it", 1),
    ("hospice or or funding", "'OR' needs a search term after it", 9),
    ("hospice oR OR funding", "'OR' needs a search term after it", 9),
    ("(or hospice)", "'OR' needs a search term before it", 2),
    ("hospice AND or funding", "'AND' needs a search term after it", 9),
    ("hospice -or", "'-' must be written straight before a word", 9),
    # Wildcards and operators from other engines, which would match nothing.
    ("hos*pice", "'*' only goes at the end of a word (like educ*)", 4),
    ("*pice", "'*' only goes at the end of a word (like educ*)", 1),
    ("palliative hos*pice*", "'*' only goes at the end of a word", 15),
    ("heading:hos*pice", "'*' only goes at the end of a word", 12),
    ("asker:wh*tfield", "'*' only goes at the end of a word", 9),
    ('asker:"jess wh*tfield"', "'*' only goes at the end of a word", 15),
    ("wom?n", "'?' is not a wildcard here; only '*' at the end of a word is (like educ*)", 4),
    ("hospice^2", "'^' (boosting) is not supported; remove it", 8),
    ("hospice^", "'^' (boosting) is not supported; remove it", 8),
    ('"short breaks"^2', "'^' (boosting) is not supported; remove it", 15),
    ("(hospice OR care)^2", "'^' (boosting) is not supported; remove it", 18),
    ("educ*^2", "'^' (boosting) is not supported; remove it", 6),
    ('dept:"health"^2', "'^' (boosting) is not supported; remove it", 14),
    ("hospice~", "'~' (fuzzy or proximity search) is not supported; remove it", 8),
    ("hospice~2", "'~' (fuzzy or proximity search) is not supported; remove it", 8),
    ('"short breaks"~3', "'~' (fuzzy or proximity search) is not supported; remove it", 15),
    (
        "NEAR(palliative children)",
        'NEAR(...) is not supported; use "a phrase" or list the words',
        1,
    ),
    ("palliative near(children)", 'NEAR(...) is not supported; use "a phrase"', 12),
    ("Near(a b, 5)", 'NEAR(...) is not supported; use "a phrase"', 1),
    ("heading:NEAR(a b)", 'NEAR(...) is not supported; use "a phrase"', 9),
    ("palliative NEAR/3 children", "'NEAR/3' (proximity search) is not supported", 12),
    (
        "heading:(hospices OR hospitals)",
        "'heading:' takes a word or \"phrase\", not a (group): write (heading:a OR heading:b)",
        9,
    ),
    # Not text at all: a lone surrogate, from input that was not UTF-8.
    ("hospice caf\udce9", "a character that is not valid text (is the input UTF-8?)", 12),
    ("\u201ehospice", "unclosed quote", 1),
]


@pytest.mark.parametrize(("query", "fragment", "position"), MALFORMED, ids=lambda v: str(v)[:40])
def test_malformed_queries_say_what_and_where(
    query: str, fragment: str, position: int | None
) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        compile_query(query)
    error = caught.value
    message = str(error)
    assert message.startswith("malformed query: ")
    assert fragment in message
    assert error.position == position
    if position is not None:
        assert f" at character {position}: " in message
    assert "\n" not in message
    assert isinstance(error, UsageError) and error.exit_code == 2


SCOPE = "{heading question answer} : "

# Neighbours of what is now refused, which compile exactly as they did before.
UNCHANGED: list[tuple[str, str]] = [
    ("educ*", '("educ"*)'),
    ("educ**", '("educ"*)'),
    ("hospice*", '("hospic"*)'),
    ("heading:hosp*", '((heading : "hosp"*))'),
    ('"hospice or palliative"', '("hospice or palliative")'),
    ('hospice "or" palliative', '(("hospice" AND "or" AND "palliative"))'),
    ("or*", '("or"*)'),
    ("oracle OR orders", '(("oracle" OR "orders"))'),
    ("care-home", '("care-home")'),
    ("covid-19", '("covid-19")'),
    ("hospice?", '("hospice?")'),
    ("?hospice", '("?hospice")'),
    ("^palliative children", '(("^palliative" AND "children"))'),
    ("hospice ^2", '(("hospice" AND "^2"))'),
    ("hospice ~2", '(("hospice" AND "~2"))'),
    ('"hos*pice"', '("hos*pice")'),
    ('"educ*"', '("educ*")'),
    ('"a^2 b~3 wom?n"', '("a^2 b~3 wom?n")'),
    ("palliative NEAR children", '(("palliative" AND "NEAR" AND "children"))'),
    ("NEAR (palliative children)", '(("NEAR" AND "palliative" AND "children"))'),
    ("nearby(x)", '(("nearby" AND "x"))'),
    ("foo(bar)", '(("foo" AND "bar"))'),
    ("3(b)", '(("3" AND "b"))'),
    ("hospice OR(vat care)", '(("hospice" OR (("vat" AND "care"))))'),
    ("a (b OR (c (d OR (e -f))))", '(("a" AND ("b" OR (("c" AND ("d" OR ("e" NOT "f")))))))'),
]


@pytest.mark.parametrize(("query", "match"), UNCHANGED, ids=[c[0] for c in UNCHANGED])
def test_neighbours_of_refused_queries_still_compile_as_before(query: str, match: str) -> None:
    compiled = compile_query(query)
    assert compiled.match == SCOPE + match
    assert compiled.where == "1"


def test_name_filters_with_a_trailing_star_are_unchanged() -> None:
    assert compile_query("dept:health*").params == {"p1": "health"}
    assert compile_query('asker:"jess whitfield"*').params == {"p1": "jess", "p2": "whitfield"}
    assert compile_query("asker:o'brien").params == {"p1": "o'brien"}


def test_a_lower_case_or_is_the_operator() -> None:
    assert parse("hospice or palliative") == parse("hospice OR palliative")
    assert parse("a Or b c oR d") == parse("a OR b c OR d")
    assert (
        compile_query("hospice or -house:lords").where
        == compile_query("hospice OR -house:lords").where
    )


def test_long_runs_of_not_are_one_not() -> None:
    assert parse("NOT " * 997 + "hospice") == parse("NOT hospice")
    assert parse("-" * 3998 + "ab") == parse("ab")


# Nestings that do not flatten: each level adds AND, OR and NOT levels to the SQL and FTS5
# expressions, whose parsers overflow their stacks at about 28 levels.
NESTINGS = [
    "(a OR (b {}))",
    "(a OR -(b {}))",
    "(house:lords OR (a {}))",
    "(a OR house:lords -{})",
    "-(a OR house:lords {})",
    "(a OR NOT {})",
    "(house:lords -{})",
    "(-a OR (-b {}))",
]


@pytest.mark.parametrize("shape", NESTINGS)
def test_deep_nesting_is_refused_before_sqlite_gives_up(db: sqlite3.Connection, shape: str) -> None:
    query = "{}"
    for level in range(1, 16):
        query = query.format(shape)
        text = query.format("c")
        try:
            compile_query(text)
        except QuerySyntaxError as error:
            assert "parentheses nested too deeply" in str(error)
            assert level > 4  # what a person writes is never refused
            break
        search(db, text)
        count(db, text)
    else:
        pytest.fail(f"{shape} nested 15 deep was not refused")


def test_messages_stay_on_one_line_and_escape_control_characters() -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        compile_query('house:"commons\nlords"')
    assert str(caught.value) == (
        "malformed query: house must be commons or lords, not 'commons lords' "
        'at character 7: house:"commons lords"'
    )
    with pytest.raises(QuerySyntaxError) as caught:
        compile_query('x\x1b[31m"')
    assert str(caught.value) == 'malformed query: unclosed quote at character 7: x\\x1b[31m"'
    with pytest.raises(QuerySyntaxError) as caught:
        compile_query("a\u2028\r" * 150 + '"')
    message = str(caught.value)
    assert message.splitlines() == [message]


def test_the_documented_example_message() -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        compile_query('hospice "funding')
    assert str(caught.value) == 'malformed query: unclosed quote at character 9: hospice "funding'


def test_a_multi_line_query_gives_a_one_line_message() -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        compile_query('hospice\nfunding\n"oops')
    assert str(caught.value) == (
        'malformed query: unclosed quote at character 17: hospice funding "oops'
    )


_FTS_STRING = re.compile(r'"(?:[^"]|"")*"')
_FTS_SYNTAX = re.compile(r"[\s()*:]|\bAND\b|\bOR\b|\bNOT\b|\bheading\b")


def _assert_no_user_text_in_syntax(compiled: CompiledQuery) -> None:
    """User text appears only as bound values and as double-quoted FTS5 strings."""
    assert "'" not in compiled.where and '"' not in compiled.where
    expressions = [compiled.match or ""] + [
        v for v in compiled.params.values() if isinstance(v, str) and '"' in v
    ]
    for expression in expressions:
        expression = expression.replace("{heading question answer}", "")  # the scope
        assert _FTS_SYNTAX.sub("", _FTS_STRING.sub("", expression)) == ""


HOSTILE = [
    '"; DROP TABLE question; --',
    "'; DROP TABLE question; --",
    "hospice'; DROP TABLE question; --",
    "hospice) OR 1=1 --",
    "NEAR(a b)",
    "NEAR(hospice funding, 5)",
    "heading:*",
    "heading:(x)",
    '"',
    "'",
    '"" OR ""',
    "hospice OR *",
    "{heading question}: hospice",
    "question_fts:hospice",
    "rowid:1",
    "house:lords' OR '1'='1",
    'dept:"x\') OR 1=1 --"',
    "asker:%",
    "asker:_",
    "dept:%_ hospice",
    "answered:2024-01-01'..",
    "hospice\x00funding",
    "^hospice",
    "hospice + funding",
    "a:b:c",
    "hospice -- comment",
    "💬 hospice",
    "\u201chospice",
]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_input_is_a_clean_error_or_a_literal_search(
    db: sqlite3.Connection, query: str
) -> None:
    try:
        compiled = compile_query(query)
    except QuerySyntaxError as error:
        assert "\n" not in str(error)
        return
    _assert_no_user_text_in_syntax(compiled)
    search(db, query)
    count(db, query)
    assert db.execute("SELECT count(*) FROM question").fetchone()[0] == len(QUESTIONS)


@pytest.fixture(scope="module")
def real_db() -> Iterator[sqlite3.Connection]:
    conn = _build(REAL_SCHEMA)
    yield conn
    conn.close()


# Pieces of the query language, glued together with no space as often as not.
_PIECES = st.sampled_from(
    [
        "a", "hospice", "educ*", "*", "^", "^2", "~", "?", ":", "-", "(", ")", '"', "\u201c",
        "\u201d", "\u201e", "'", " ", "\n", "\t", "\x00", "\x01", "\x1b", "\u2028", "\ud800",
        "or", "OR", "AND", "not", "NOT", "NEAR", "near/3", "heading:", "dept:", "house:",
        "asker:", "status:", "tabled:", "2024", "..", ">=", "lords", "\u00e9", "\u19b0",
    ]
)  # fmt: skip
QUERIES = st.one_of(st.text(), st.lists(_PIECES, max_size=24).map("".join))


def _fts_expressions(compiled: CompiledQuery) -> list[str]:
    """The FTS5 MATCH expressions a compiled query hands SQLite."""
    expressions = [v for v in compiled.params.values() if isinstance(v, str) and "{" in v]
    return expressions + ([compiled.match] if compiled.match is not None else [])


@settings(max_examples=300, deadline=None)
@given(QUERIES)
@example('"\x000"')  # NUL inside quotes ended the FTS5 string: "unterminated string"
@example("a\ud800")  # a lone surrogate reached SQLite: UnicodeEncodeError
@example("NOT " * 999 + "a")  # RecursionError
@example("(a OR -(b " * 13 + "c" + "))" * 13)  # SQLite: "parser stack overflow"
@example("(a OR (b " * 14 + "c" + "))" * 14)  # FTS5: "parser stack overflow"
def test_any_text_compiles_or_is_refused_in_one_line(
    real_db: sqlite3.Connection, query: str
) -> None:
    try:
        compiled = compile_query(query)
    except UsageError as error:  # QuerySyntaxError is one; anything else is a bug
        message = str(error)
        assert message.splitlines() == [message]  # one line, not empty
        return
    _assert_no_user_text_in_syntax(compiled)
    for expression in _fts_expressions(compiled):
        sql = "SELECT rowid FROM question_fts WHERE question_fts MATCH ?"
        real_db.execute(sql, (expression,)).fetchall()
        # The search stage narrows by the facets column the same way.
        real_db.execute(sql, (f'({expression}) AND facets : ("hlords")',)).fetchall()
    condition, params = compiled.sql()
    real_db.execute(f"SELECT q.id FROM question q WHERE {condition}", params).fetchall()


def test_like_wildcards_in_names_are_literal(db: sqlite3.Connection) -> None:
    assert search(db, "asker:jess%") == set()
    assert search(db, "asker:j_ss") == set()
    assert search(db, "dept:health_") == set()
    assert search(db, "asker:jess") == {1, 5, 11}


def test_random_queries_never_reach_sqlite_errors(db: sqlite3.Connection) -> None:
    pieces = [
        "hospice", "care", "children's", "covid-19", "educ*", "*", '"', "“", "”", "(", ")",
        "-", "OR", "AND", "NOT", "or", "NEAR", "house:", "lords", "heading:", "dept:",
        '"social care"', "status:", "answered", "tabled:", "2024", "..", ">=", "<", ":", "'",
        ";", "^", "+", "{", "}", "%", "_", "\\", "é", " ", " ", " ", "\n",
    ]  # fmt: skip
    rng = random.Random(20240101)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(3000):
        query = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 9)))
        try:
            compiled = compile_query(query)
        except QuerySyntaxError as error:
            assert "\n" not in str(error), query
            outcomes["error"] += 1
            continue
        _assert_no_user_text_in_syntax(compiled)
        try:
            search(db, query)
            count(db, query)
        except sqlite3.Error as error:  # pragma: no cover - the failure message is the point
            pytest.fail(f"{query!r} reached SQLite: {error}")
        outcomes["ok"] += 1
    assert outcomes["ok"] > 300 and outcomes["error"] > 300


def test_fts5_alone_misses_prefixes_that_stop_inside_a_suffix(db: sqlite3.Connection) -> None:
    """Why prefixes are expanded: the porter tokenizer stems the prefix too, and the index
    holds "educ" for education/educational, which the prefix "educat" does not begin."""
    rows = db.execute("SELECT rowid FROM question_fts WHERE question_fts MATCH ?", ('"educat"*',))
    assert rows.fetchall() == []
    assert search(db, "educat*") == {6, 8, 14}
    assert search(db, "communicat*") == set()  # expanded, and still well-formed
    assert search(db, "carer*") == {7, 11}


STEM_WORDS = """
children childhood hospice hospices hospital hospitals hospitality palliative caring carers
care cared careful education educational educate educating educator vaccination vaccinated
vaccines funding funded fund funds relational conditional rational valenci hesitanci digitizer
conformabli radicalli differentli vileli analogousli vietnamization predication operator
feudalism decisiveness hopefulness callousness formaliti sensitiviti sensibiliti triplicate
formative formalize electriciti electrical hopeful goodness revival allowance inference airliner
gyroscopic adjustable defensible irritant replacement adjustment dependent adoption homologou
communism activate angulariti homologous effective bowdlerize probate rate cease controll roll
caresses ponies ties caress cats feed agreed plastered bled motoring sing conflated troubled
sized hopping tanned falling hissing fizzed failing filing happy sky generalizations
oscillators agreement sportsmanship yes by ay ieee organisation organisational analysis
analyse analytic policy police policies covid nurse nursing nursery disabled disability
""".split()


def test_a_prefix_finds_every_word_it_begins() -> None:
    """FTS5 stems a prefix too ("educat*" searches the stem of "educat"), so the compiler
    expands a prefix to the stems of the words it could begin: every beginning of every
    word here (three letters or more) must find that word, but for the few the suffix list
    does not reach (a doubled consonant, Greek -sis, -ization, -ator), listed as they are."""
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE VIRTUAL TABLE question_fts USING fts5(heading, question, answer, facets, "
        "tokenize='porter unicode61 remove_diacritics 2')"
    )
    conn.executemany(
        "INSERT INTO question_fts (rowid, heading, question, answer, facets) "
        "VALUES (?, '', ?, '', '')",
        enumerate(STEM_WORDS, 1),
    )
    missed = []
    for i, word in enumerate(STEM_WORDS, 1):
        for k in range(3, len(word) + 1):
            match = compile_query(f"{word[:k]}*").match
            found = {r[0] for r in conn.execute(
                "SELECT rowid FROM question_fts WHERE question_fts MATCH ?", (match,)
            )}  # fmt: skip
            if i not in found:
                missed.append(f"{word[:k]}* misses {word}")
    assert missed == [
        "hopp* misses hopping", "hoppi* misses hopping", "hoppin* misses hopping",
        "generaliz* misses generalizations", "generaliza* misses generalizations",
        "generalizat* misses generalizations", "generalizati* misses generalizations",
        "generalizatio* misses generalizations", "oscilla* misses oscillators",
        "oscillat* misses oscillators", "oscillato* misses oscillators",
        "analy* misses analysis", "analy* misses analyse", "analy* misses analytic",
    ]  # fmt: skip
