"""Property-based tests (Hypothesis) of the input path: API item -> parse_question ->
prepare_answer -> Archive.store_page (-> matching), and UKParliamentClient paging a window.

Items are API-shaped ``value`` dicts, some made up, some real recorded items mutated, whose
fields are each present, absent, null, empty or odd: the wrong type (a number or a list where
text belongs, a string where a bool belongs), malformed or far-off dates, text with control
characters, lone surrogates, HTML and <script> in odd places, texts of 100,000 characters,
member objects whose id disagrees with the id field, attachments with javascript: URLs.

The bugs these properties found are pinned down by minimal regression tests at the end.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from pqwatch.config import Config, DatabaseConfig, UKParliamentConfig, load_config
from pqwatch.decide import prepare_answer
from pqwatch.errors import SourceError
from pqwatch.service import PQWatch
from pqwatch.sources.uk_parliament import DETAIL_PATH, LIST_PATH, UKParliamentClient, parse_question
from pqwatch.store.archive import Archive
from pqwatch.store.db import Database
from pqwatch.testing.replay import Fault, ReplayServer, list_form, load_items
from pqwatch.types import QuestionData
from tests import shared_archive
from tests.conftest import DATA_DIR, _pg_rows, api_config, on_postgres, open_service, rows
from tests.pg import Cluster

NOW = datetime(2024, 8, 1, 12, tzinfo=UTC)
TODAY = NOW.date()
INT64 = (-(2**63), 2**63 - 1)

# C0 controls but tab and newline, DEL, C1 controls: what no stored text may hold.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
SURROGATE = re.compile("[\ud800-\udfff]")

SETTINGS = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
        # data_dir (a constant path, or a skip) and template_db are the same for every example.
        HealthCheck.function_scoped_fixture,
    ],
)


# -- strategies ---------------------------------------------------------------------------

NASTY = [
    "\x00", "\x07", "\x08", "\x0c", "\x1b[2J", "\x1b]0;pwned\x07", "\r", "\r\n", "\n\n", "\t",
    "\x7f", "\x85", "\x9b31m", "\u2028", "\u202e", "\u00a0", "\ufeff", "\u200b", "\ud800",
    "\udfff", "\ud83d", "\U0001f600", "\U0010ffff", "é", " ", "   ", "&", "<", ">", '"', "'",
    "&amp;", "&lt;script&gt;", "&nbsp;", "&#160;", "&#128;", "&#0;", "&#xD800;", "&#x110000;",
    "&#", "&#27", "<script>alert(1)</script>", "<p>", "</p>", "<b>", "<br/>", "<!-- x -->",
    '<a href="javascript:alert(1)">x</a>', "<img src=x onerror=alert(1)>", "<style>p{}</style>",
    "To ask the Secretary of State for Health and Social Care, ", "hospice ", "care",
]  # fmt: skip
# Numeric character references to control characters (an HTML parser decodes them).
CONTROL_CHARREFS = ["&#27;", "&#x1b;[31m", "&#13;", "&#127;", "&#x81;", "&#12;", "&#1;"]
HTML_PIECES = [
    "<p>", "</p>", "<p> </p>", "<br>", "<strong>", "</strong>", "<em>x</em>", "<sup>2</sup>",
    "<ul><li>", "</li><li>", "</li></ul>", "<ol><li>a</li></ol>",
    '<table><tbody><tr><td colspan="2">', "</td><td>", "</td></tr></tbody></table>",
    "<tr><th rowspan=2>h</th></tr>", "</table>", "<td>",
    '<a href="https://www.gov.uk/x" target="_blank">', '<a href="JavaScript:alert(1)">', "</a>",
    "<script>document.cookie</script>", "<iframe src=https://evil.test></iframe>",
    '<p onclick="alert(1)">', "<svg><script>alert(1)</script></svg>", "<![CDATA[x]]>",
]  # fmt: skip

PIECE = st.one_of(st.text(max_size=12), st.sampled_from(NASTY), st.sampled_from(CONTROL_CHARREFS))
TEXT = st.lists(PIECE, max_size=8).map("".join)
# Long texts (to 100,000 characters) by repetition: cheap to generate, as large to process.
LONG_TEXT = st.builds(
    lambda s, n: ((s or "x") * (n // max(1, len(s or "x")) + 1))[:n],
    TEXT,
    st.sampled_from([256, 300, 5_000, 100_000]),
)
NUMBER = st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True))
ODD = st.one_of(
    st.none(),
    st.just(""),
    st.booleans(),
    NUMBER,
    st.lists(st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=3),
    st.dictionaries(st.text(max_size=4), st.one_of(st.integers(), st.text(max_size=4)), max_size=2),
)
TEXT_VALUE = st.one_of(TEXT, TEXT, LONG_TEXT, ODD, st.sampled_from(["   ", "\r\n", "\t"]))
ANSWER = st.lists(st.one_of(PIECE, st.sampled_from(HTML_PIECES)), max_size=14).map("".join)
ANSWER_VALUE = st.one_of(ANSWER, ANSWER, LONG_TEXT, TEXT_VALUE)


def _iso(d: date) -> str:
    return d.isoformat() + "T00:00:00"


GOOD_DATE = st.dates(date(2015, 1, 1), date(2027, 12, 31)).map(_iso)
DATE_VALUE = st.one_of(
    GOOD_DATE,
    GOOD_DATE,
    st.dates().map(_iso),  # year 1 to 9999
    st.dates().map(date.isoformat),
    st.sampled_from(
        [
            "",
            "2024-13-45T00:00:00",
            "2024-02-30T00:00:00",
            "0000-01-01T00:00:00",
            "yesterday",
            "2024-07-18T00:00:00Z",
            "2024-07-18T25:61:00",
            "18/07/2024",
            "20240718",
            "2024-W29-4",
            "\ud800",
            "2024-07-18\x00",
            " 2024-07-18",
            "2024-07-18T00:00:00+14:00",
            "9999-12-31T23:59:59.9999999",
            "0001-01-01T00:00:00",
        ]
    ),  # fmt: skip
    ODD,
)
BOOL_VALUE = st.one_of(
    st.booleans(),
    st.none(),
    st.sampled_from(["true", "false", "True", "", "yes", 0, 1, "0", [], {}]),
)
BIG_INT = st.one_of(st.integers(2**63, 2**80), st.integers(-(2**80), -(2**63) - 1))
ID_VALUE = st.one_of(
    st.integers(1, 5_000),  # small: ids collide across items
    st.integers(1, 5_000_000),
    st.integers(*INT64),
    st.sampled_from([0, -1, INT64[1], INT64[0]]),
    BIG_INT,  # beyond SQLite's 64 bits
    st.integers(1, 9999).map(str),
    ODD,
)
URL_VALUE = st.one_of(
    st.sampled_from(
        [
            "https://www.gov.uk/a.xlsx",
            "HTTP://example.org/b.pdf",
            "https://x.test/a b.pdf",
            "javascript:alert(1)",
            "JAVASCRIPT:alert(1)",
            " javascript:alert(1)",
            "java\tscript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:x",
            "//evil.test/x",
            "ftp://x.test/f",
            "https://x.test/\x1b[31m",
            "https://x.test/\ud800",
            'https://x.test/"><script>alert(1)</script>',
            " https://ok.test/lead",
        ]
    ),  # fmt: skip
    TEXT_VALUE,
)
ATTACHMENT = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "url": URL_VALUE,
            "title": TEXT_VALUE,
            "fileType": TEXT_VALUE,
            "fileSizeBytes": st.one_of(st.integers(*INT64), BIG_INT, ODD),
        },
    ),
    ODD,
)
UIN = st.one_of(st.integers(1, 99999).map(str), st.just("HL1234"), TEXT_VALUE)
GROUP_DATE = st.fixed_dictionaries({}, optional={"questionUin": UIN, "dateTabled": DATE_VALUE})
HOUSE = st.one_of(
    st.sampled_from(["Commons", "Lords"]),
    st.sampled_from(["Commons", "Lords", "Bicameral", "commons", " Lords\r\n", "<b>Lords</b>"]),
    TEXT_VALUE,
)

# The fields parse_question needs: mostly valid (dates to year 1 or 9999 are), now and then
# odd or missing.
REQUIRED: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "id": (st.one_of(st.integers(1, 400), st.integers(1, 2_000_000)), ID_VALUE),
    "dateTabled": (st.one_of(GOOD_DATE, GOOD_DATE, st.dates().map(_iso)), DATE_VALUE),
    "house": (
        st.sampled_from(
            ["Commons", "Lords", "Commons", "Lords", "Bicameral", " Lords\r\n", "<b>x"]
        ),
        HOUSE,
    ),
}
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "uin": UIN,
    "dateForAnswer": DATE_VALUE,
    "isNamedDay": BOOL_VALUE,
    "heading": TEXT_VALUE,
    "questionText": TEXT_VALUE,
    "memberHasInterest": BOOL_VALUE,
    "answeringBodyId": ID_VALUE,
    "answeringBodyName": TEXT_VALUE,
    "isWithdrawn": BOOL_VALUE,
    "answerText": ANSWER_VALUE,
    "answerIsHolding": BOOL_VALUE,
    "answerIsCorrection": BOOL_VALUE,
    "dateAnswered": DATE_VALUE,
    "dateAnswerCorrected": DATE_VALUE,
    "dateHoldingAnswer": DATE_VALUE,
    "originalAnswerText": ANSWER_VALUE,
    "comparableAnswerText": TEXT_VALUE,
    "groupedQuestions": st.one_of(st.lists(UIN, max_size=4), ODD),
    "groupedQuestionsDates": st.one_of(st.lists(st.one_of(GROUP_DATE, ODD), max_size=4), ODD),
    "attachments": st.one_of(st.lists(ATTACHMENT, max_size=3), ODD),
    "attachmentCount": ID_VALUE,
}
MEMBERS = [
    ("askingMemberId", "askingMember"),
    ("answeringMemberId", "answeringMember"),
    ("correctingMemberId", "correctingMember"),
]
# A small pool of member ids, so that members recur across items with different details.
MEMBER_ID = st.one_of(st.sampled_from([4253, 4362, 3985, 7, 8]), ID_VALUE)


@st.composite
def member_fields(draw: st.DrawFn, id_key: str, obj_key: str) -> dict[str, Any]:
    """A member id field and its expanded object, each present, absent, null or odd, the
    object's id agreeing with the id field or not."""
    out: dict[str, Any] = {}
    mid = draw(MEMBER_ID)
    if draw(st.booleans()):
        out[id_key] = mid
    shape = draw(st.sampled_from(["absent", "null", "same", "other", "odd", "dict"]))
    if shape == "null":
        out[obj_key] = None
    elif shape == "odd":
        out[obj_key] = draw(ODD)
    elif shape != "absent":
        obj = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": TEXT_VALUE,
                    "listAs": TEXT_VALUE,
                    "party": TEXT_VALUE,
                    "partyAbbreviation": TEXT_VALUE,
                    "partyColour": TEXT_VALUE,
                    "memberFrom": TEXT_VALUE,
                    "thumbnailUrl": URL_VALUE,
                },
            )
        )
        if shape == "same":
            obj["id"] = mid
        elif shape == "other":
            obj["id"] = draw(MEMBER_ID)
        elif draw(st.booleans()):
            obj["id"] = draw(ID_VALUE)
        out[obj_key] = obj
    return out


def _all_members() -> st.SearchStrategy[dict[str, Any]]:
    return st.tuples(*(member_fields(i, o) for i, o in MEMBERS)).map(
        lambda parts: {k: v for part in parts for k, v in part.items()}
    )


def _odd_required(draw: st.DrawFn, item: dict[str, Any], key: str) -> None:
    """Now and then (1 in 8) make a required field odd or take it out."""
    if draw(st.sampled_from([False] * 7 + [True])):  # (integers(0, 7) == 0 is far likelier)
        if draw(st.booleans()):
            item.pop(key, None)
        else:
            item[key] = draw(REQUIRED[key][1])


@st.composite
def synthetic_items(draw: st.DrawFn) -> dict[str, Any]:
    """A made-up item: id, dateTabled and house mostly valid, every other field optional."""
    item: dict[str, Any] = {key: draw(good) for key, (good, _) in REQUIRED.items()}
    for key in REQUIRED:
        _odd_required(draw, item, key)
    item.update(draw(st.fixed_dictionaries({}, optional=FIELDS)))
    item.update(draw(_all_members()))
    return item


@functools.cache
def real_items() -> tuple[dict[str, Any], ...]:
    """A few dozen real recorded items of every kind: answered (tables, links, long texts),
    corrected, grouped, holding, unanswered, with expanded members, a detail response."""
    base = DATA_DIR / "uk_parliament"
    groups = [
        [
            base / "monthly_list_dumps" / "commons_tabled_2023-12.json.gz",
            base / "longform_detail_text" / "longform_2023-12.json.gz",
        ],
        [
            next((base / "list_snapshots_2026-07").glob("*_asof_2026-07-08_*.json.gz")),
            base / "longform_detail_text" / "longform_2026-07.json.gz",
        ],
        sorted((base / "recorded_http_2021").glob("wq_list_*.json")),
        [base / "aws_samples" / "wq_detail_1679416.json"],
    ]  # fmt: skip
    kinds: list[Callable[[dict[str, Any]], bool]] = [
        lambda v: "<table" in (v.get("answerText") or ""),
        lambda v: "<a " in (v.get("answerText") or ""),
        lambda v: len(v.get("questionText") or "") > 255,
        lambda v: len(v.get("answerText") or "") > 3000,
        lambda v: bool(v.get("answerIsCorrection")),
        lambda v: bool(v.get("groupedQuestions")),
        lambda v: bool(v.get("answerIsHolding")),
        lambda v: v.get("answerText") is None,
        lambda v: v.get("heading") is None,
        lambda v: isinstance(v.get("askingMember"), dict),
        lambda v: isinstance(v.get("answeringMember"), dict),
        lambda v: v.get("house") == "Lords",
        lambda v: True,
    ]
    picked: dict[int, dict[str, Any]] = {}
    for files in groups:
        items = list(load_items(files).values())
        for kind in kinds:
            for v in [v for v in items if kind(v)][:2]:
                picked.setdefault(v["id"], v)
    return tuple(picked[k] for k in sorted(picked))


@st.composite
def mutated_real_items(draw: st.DrawFn, keep_id: bool | None = None) -> dict[str, Any]:
    """A real item with some fields deleted and some replaced by drawn (often odd) values;
    its id kept (the same question, changed) or not."""
    item: dict[str, Any] = copy.deepcopy(draw(st.deferred(lambda: st.sampled_from(real_items()))))
    for key in draw(st.sets(st.sampled_from([*FIELDS, *(k for p in MEMBERS for k in p)]))):
        if draw(st.sampled_from([False, False, False, True])):
            item.pop(key, None)
        elif key in FIELDS:
            item[key] = draw(FIELDS[key])
    if draw(st.booleans()):
        item.update(draw(_all_members()))
    if keep_id is False or (keep_id is None and draw(st.booleans())):
        item["id"] = draw(REQUIRED["id"][0])
    for key in REQUIRED:
        if key != "id" or keep_id is not True:
            _odd_required(draw, item, key)
    return item


def api_items(keep_id: bool | None = None) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(synthetic_items(), mutated_real_items(keep_id))


# -- helpers --------------------------------------------------------------------------------


def _texts(q: QuestionData) -> list[str]:
    members = [m for m in (q.asking_member, q.answering_member, q.correcting_member) if m]
    values: list[str | None] = [
        q.source_id, q.house, q.question_text, q.uin, q.heading, q.answering_body_name,
        q.answer_raw, q.original_answer_raw,
        *(g.uin for g in q.group),
        *(x for a in q.attachments for x in (a.url, a.title, a.file_type)),
        *(x for m in members for x in (m.name, m.list_as, m.party, m.party_abbreviation,
                                       m.member_from, m.thumbnail_url)),
    ]  # fmt: skip
    return [v for v in values if v is not None]


def _parse(item: dict[str, Any], *, from_list: bool = False) -> QuestionData | None:
    try:
        return parse_question(item, from_list=from_list)
    except SourceError:
        return None


# Where an example's database is: the SQLite file, or (the suite on PostgreSQL) its URL.
Target = Path | str


@dataclass(frozen=True)
class Template:
    """A database migrated to head once: the SQLite file, or a PostgreSQL database (on the
    session's server) that each example's database is made from."""

    path: Path
    cluster: Cluster | None = None
    name: str = ""


@pytest.fixture(scope="module")
def template_db(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Template:
    """A database migrated to head once; each example copies it (a migration costs more)."""
    path = tmp_path_factory.mktemp("template") / "t.db"
    if on_postgres(request.config):
        cluster: Cluster = request.getfixturevalue("postgres")
        name = shared_archive.create_database(cluster)
        template = Template(path, cluster, name)
    else:
        template = Template(path)
    db = Database(cluster.url(name) if template.cluster is not None else f"sqlite:///{path}")
    db.migrate()
    db.dispose()
    return template


@contextmanager
def fresh_database(template: Template) -> Iterator[tuple[Target, str]]:
    """A copy of the template: where it is, and its URL."""
    if template.cluster is not None:
        name = shared_archive.create_database(template.cluster, template=template.name)
        try:
            yield template.cluster.url(name), template.cluster.url(name)
        finally:
            shared_archive.drop_database(template.cluster, name)
        return
    with tempfile.TemporaryDirectory(dir=template.path.parent) as d:
        path = Path(d) / "a.db"
        shutil.copyfile(template.path, path)
        yield path, f"sqlite:///{path}"


@contextmanager
def fresh_archive(template: Template) -> Iterator[tuple[Target, Archive]]:
    with fresh_database(template) as (target, url):
        db = Database(url)
        try:
            yield target, Archive(db, now=lambda: NOW)
        finally:
            db.dispose()


def query(target: Target, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """Rows of an example's database, as SQLite gives them (tests/conftest.py rows)."""
    if isinstance(target, str):
        return _pg_rows(target, sql, params)
    with closing(sqlite3.connect(target)) as conn:
        return conn.execute(sql, params).fetchall()


def store(archive: Archive, items: list[dict[str, Any]], *, from_list: bool = False) -> int:
    """Parse (skipping clean SourceErrors), prepare and store one page; the number stored."""
    parsed = [q for q in (_parse(i, from_list=from_list) for i in items) if q is not None]
    archive.store_page([(q, prepare_answer(q)) for q in parsed], today=TODAY)
    return len(parsed)


TEXT_COLUMNS = {
    "question": ["source_id", "uin", "house", "heading", "question_text", "attachments_json"],
    "answer": ["answer_html", "answer_text", "original_answer_html"],
    "member": ["name", "list_as", "party", "party_abbreviation", "member_from", "thumbnail_url"],
    "answering_body": ["name"],
    "question_group": ["grouped_uin"],
}


def assert_clean_text(db_file: Target) -> None:
    """(d) No stored text holds a control character (tab and newline allowed)."""
    for table, columns in TEXT_COLUMNS.items():
        key = "question_id" if table == "question_group" else "id"
        for row in query(db_file, f"SELECT {key}, {', '.join(columns)} FROM {table}"):
            for column, value in zip(columns, row[1:], strict=True):
                if isinstance(value, str):
                    assert not CONTROL.search(value), (table, row[0], column, value[:200])


def snapshot(db_file: Target) -> dict[str, Any]:
    """Answer versions and events by natural key, with every column but surrogate ids."""
    answers = {
        (r[0], r[1]): r[2:]
        for r in query(
            db_file,
            "SELECT q.source_id, a.version, a.kind, a.answer_html, a.answer_text, "
            "a.original_answer_html, a.is_full_text, a.answering_member_id, "
            "a.correcting_member_id, a.date_answered, a.date_corrected, a.content_hash, "
            "a.recorded_at FROM answer a JOIN question q ON q.id = a.question_id",
        )
    }
    events = {
        (r[0], r[1], r[2]): r[3:]
        for r in query(
            db_file,
            "SELECT q.source_id, e.kind, e.event_date, a.version, e.detail_json, "
            "e.historical, e.created_at FROM event e JOIN question q ON q.id = e.question_id "
            "LEFT JOIN answer a ON a.id = e.answer_id",
        )
    }
    questions = {r[0] for r in query(db_file, "SELECT source_id FROM question")}
    return {"answers": answers, "events": events, "questions": questions}


# -- (a) parse ------------------------------------------------------------------------------


@settings(SETTINGS, max_examples=1000)
@given(item=api_items(), from_list=st.booleans())
def test_parse_question_gives_a_question_or_a_source_error(
    data_dir: Path, item: dict[str, Any], from_list: bool
) -> None:
    """(a) parse_question returns a QuestionData or raises SourceError, nothing else; what it
    returns is clean (no control characters or lone surrogates, http(s) attachments only, a
    member object never contradicts its id), and preparing its answer does not fail and
    leaves no script in the HTML."""
    item = item
    try:
        q = parse_question(item, from_list=from_list)
    except SourceError as exc:
        assert str(exc) and "\n" not in str(exc)
        event("SourceError")
        return
    assert isinstance(q, QuestionData)
    event("parsed, with problems" if q.problems else "parsed")
    assert q.source_id == str(item["id"])
    for text in _texts(q):
        assert not CONTROL.search(text) and not SURROGATE.search(text), text[:200]
    for a in q.attachments:
        assert a.url.lower().startswith(("https://", "http://")) and " " not in a.url
    for mid, m in (
        (q.asking_member_id, q.asking_member),
        (q.answering_member_id, q.answering_member),
        (q.correcting_member_id, q.correcting_member),
    ):
        assert m is None or m.id == mid
    prepared = prepare_answer(q)
    event(f"answer: {prepared.kind if prepared else None}")
    if prepared is not None:
        for html in (prepared.html, prepared.original_html or ""):
            assert "<script" not in html.lower() and "<iframe" not in html.lower()
            assert not re.search(r"\son\w+\s*=", html, re.I)
            assert not re.search(r'href="\s*(?!https?:|mailto:)', html, re.I), html[:300]


# -- (b), (d) store a page ---------------------------------------------------------------------


@settings(SETTINGS, max_examples=60)
@given(pages=st.lists(st.lists(api_items(), min_size=1, max_size=6), min_size=1, max_size=3))
def test_storing_pages_of_odd_items_never_raises(
    data_dir: Path, template_db: Template, pages: list[list[dict[str, Any]]]
) -> None:
    """(b) Parsing (a SourceError skips an item), preparing and storing pages of odd items
    never raises, again and again (the same pages stored twice), and leaves a sound
    database; (d) every stored text is free of control characters."""
    with fresh_archive(template_db) as (path, archive):
        stored = [store(archive, page) for page in [*pages, *pages]]
        event(f"items parsed and stored: {'none' if not sum(stored) else 'some'}")
        for (kind,) in query(path, "SELECT DISTINCT kind FROM answer"):
            event(f"answer version: {kind}")
        assert_clean_text(path)
        if isinstance(path, Path):  # PostgreSQL checks foreign keys itself, always
            with closing(sqlite3.connect(path)) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
                assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


@settings(SETTINGS, max_examples=60)
@given(items=st.lists(api_items(), min_size=1, max_size=8))
@example(
    items=[
        {
            "id": 9, "house": "Commons", "dateTabled": "2024-07-01T00:00:00",
            "heading": "A\x1b]0;title\x07 heading\r\n", "questionText": "To ask\x1b[2J \ud800x",
            "dateAnswered": "2024-07-02T00:00:00",
            "answerText": "<p>A\x1b[31m \x9b1m answer &#160; &#128;</p><table><tr><td>\x07",
            "originalAnswerText": "\x00<b>old</b>",
            "askingMemberId": 7, "askingMember": {"id": 7, "name": "Ms\x1b[8m Hidden\x0c"},
            "answeringBodyId": 17, "answeringBodyName": "Dept\x7f of \x85Health",
            "groupedQuestions": ["12\x003"],
        }
    ]
)  # fmt: skip
def test_stored_texts_have_no_control_characters(
    data_dir: Path, template_db: Template, items: list[dict[str, Any]]
) -> None:
    """(d) question heading and text, answer text and HTML (and original HTML), member and
    department names, UINs: no C0/C1 control character but tab and newline is ever stored."""
    with fresh_archive(template_db) as (path, archive):
        store(archive, [i for i in items])
        assert_clean_text(path)


# -- (c) nothing stored is lost ----------------------------------------------------------------


@settings(SETTINGS, max_examples=40)
@given(
    pages=st.lists(
        st.lists(st.one_of(mutated_real_items(keep_id=True), api_items()), min_size=1, max_size=6),
        min_size=1,
        max_size=4,
    )
)
def test_nothing_stored_is_lost(
    data_dir: Path, template_db: Template, pages: list[list[dict[str, Any]]]
) -> None:
    """(c) After a page of real items, pages of odd items (many the same questions, changed
    oddly) never remove or alter a stored answer version or event, and never lose a
    question."""
    with fresh_archive(template_db) as (path, archive):
        assert store(archive, list(real_items())) == len(real_items())
        before = snapshot(path)
        assert before["answers"] and before["events"]
        for page in pages:
            store(archive, page)
            after = snapshot(path)
            for part in ("answers", "events"):
                lost = {k: v for k, v in before[part].items() if after[part].get(k) != v}
                assert not lost, (part, lost, {k: after[part].get(k) for k in lost})
            assert before["questions"] <= after["questions"]
            before = after


@st.composite
def list_and_detail_pages(draw: st.DrawFn) -> list[tuple[str, list[dict[str, Any]]]]:
    """Pages of items from a small pool, each page in list or detail form: the same
    questions come back as list copies and as full records, in any order."""
    pool = draw(
        st.lists(st.one_of(mutated_real_items(keep_id=True), api_items()), min_size=1, max_size=5)
    )
    item = st.sampled_from(pool)
    page = st.tuples(st.sampled_from(["detail", "list"]), st.lists(item, min_size=1, max_size=4))
    return draw(st.lists(page, min_size=1, max_size=6))


@settings(SETTINGS, max_examples=50)
@given(pages=list_and_detail_pages())
def test_nothing_stored_is_lost_when_list_copies_come_between(
    data_dir: Path, template_db: Template, pages: list[tuple[str, list[dict[str, Any]]]]
) -> None:
    """(c) with list copies among the pages (an item stored from the list when its detail
    request failed: cut text, answer without tags): a full answer version and an event are
    never removed or altered, a list-text version is only ever completed in place (same
    version and kind, then full), and a list copy adds no list-text version of a kind
    already stored in full."""
    with fresh_archive(template_db) as (path, archive):
        store(archive, list(real_items()))
        before = snapshot(path)
        for form, page in pages:
            if form == "list":
                store(archive, [list_form(i) for i in page], from_list=True)
            else:
                store(archive, page)
            after = snapshot(path)
            assert all(after["events"].get(k) == v for k, v in before["events"].items())
            for key, row in before["answers"].items():
                now = after["answers"].get(key)
                assert now is not None, key
                kind, full = row[0], row[4]
                assert now == row if full else (now[0] == kind and now[4] in (0, 1)), key
                if not full and now[4]:
                    event("a list-text version completed in place")
            full_kinds = {(sid, r[0]) for (sid, _), r in before["answers"].items() if r[4]}
            for (sid, version), row in after["answers"].items():
                if (sid, version) not in before["answers"] and not row[4]:
                    event("a list-text version stored")
                    assert (sid, row[0]) not in full_kinds, (sid, version, row[0])
            assert before["questions"] <= after["questions"]
            before = after


# -- the list path: a client paging a window, and a whole poll ---------------------------------


def _mock_api(items: list[dict[str, Any]], total_extra: int = 0) -> httpx.MockTransport:
    """The list endpoint (each item in its list form, paged by skip/take, every window the
    same) and the detail endpoint (the full item) over JSON, as the API sends it (non-ASCII
    escaped, so a lone surrogate arrives as the escape \\ud800)."""
    by_id = {v["id"]: v for v in items if isinstance(v.get("id"), int)}

    def respond(payload: Any, status: int = 200) -> httpx.Response:
        return httpx.Response(
            status, content=json.dumps(payload), headers={"Content-Type": "application/json"}
        )

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == LIST_PATH:
            skip, take = int(request.url.params["skip"]), int(request.url.params["take"])
            page = items[skip : skip + take]
            return respond(
                {
                    "totalResults": len(items) + total_extra,
                    "results": [{"value": list_form(v), "links": []} for v in page],
                }
            )
        qid = path.rsplit("/", 1)[-1]
        found = by_id.get(int(qid)) if qid.lstrip("-").isdigit() else None
        if path != DETAIL_PATH.format(id=qid) or found is None:
            return respond({"status": 404, "title": "Not Found"}, 404)
        return respond({"value": found, "links": []})

    return httpx.MockTransport(handler)


def _with_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items with distinct integer ids (the list path drops repeats by id)."""
    return [{**v, "id": 100 + n} for n, v in enumerate(items)]


@settings(SETTINGS, max_examples=60)
@given(
    raw=st.lists(api_items(), max_size=12),
    page_size=st.integers(1, 7),
    total_extra=st.sampled_from([0, 0, 3, 1000]),
)
def test_client_pages_a_window_of_odd_items_without_failing(
    data_dir: Path, raw: list[dict[str, Any]], page_size: int, total_extra: int
) -> None:
    """UKParliamentClient.iter_window over pages of odd items never raises: each item comes
    out once, parsed or skipped with its reason (a totalResults larger than the truth ends
    at the first empty page); fetching their details never raises either."""
    items = _with_ids(raw)
    cfg = replace(
        UKParliamentConfig(), base_url="http://api.invalid", page_size=page_size, max_retries=0
    )
    with UKParliamentClient(
        cfg, transport=_mock_api(items, total_extra), sleep=lambda s: None
    ) as c:
        pages = list(c.iter_window("tabled", date(2024, 1, 1), date(2024, 1, 31)))
        got = [q for p in pages for q in p.items]
        skipped = [s for p in pages for s in p.skipped]
        assert len(got) + len(skipped) == len(items)
        assert len({q.source_id for q in got}) == len(got)
        expected = {str(v["id"]) for v in items if _parse(list_form(v), from_list=True)}
        assert {q.source_id for q in got} == expected
        full = c.fetch_details([q for q in got if q.needs_detail])
        for q in full:
            assert isinstance(q, QuestionData)


@settings(SETTINGS, max_examples=25)
@given(raw=st.lists(api_items(), min_size=1, max_size=10), page_size=st.integers(2, 6))
def test_a_poll_of_odd_items_stores_every_usable_one(
    data_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    template_db: Template,
    raw: list[dict[str, Any]],
    page_size: int,
) -> None:
    """A whole poll (PQWatch.poll: three windows, detail requests, the writer thread,
    matching against watches) over a mock API serving odd items ends ok: every item whose
    list form parses is stored, with clean texts; polling again changes nothing."""
    items = _with_ids([*raw, *real_items()[:3]])
    folder = tmp_path_factory.mktemp("poll")
    config = folder / "config.toml"
    config.write_text(
        api_config(
            "http://api.invalid",
            '[[watches]]\nname = "Care"\nquery = "care OR hospice*"\n'
            '[[watches]]\nname = "All"\nquery = "to"\n'
            '[[subscribers]]\nemail = "a@example.org"\n',
            page_size=page_size,
        ),
        encoding="utf-8",
    )
    cfg: Config = load_config(config)
    transport = _mock_api(items)

    def client(c: Config) -> UKParliamentClient:
        return UKParliamentClient(
            c.sources.uk_parliament, transport=transport, sleep=lambda s: None
        )

    tables = ("question", "answer", "event", "watch_match", "delivery")
    with (
        fresh_database(template_db) as (db_file, url),
        PQWatch(
            replace(cfg, database=DatabaseConfig(url=url)), now=lambda: NOW, client_factory=client
        ) as svc,
    ):
        [run] = svc.poll(date(2024, 1, 1), date(2024, 1, 31))
        assert run.ok, run.error
        stored = {r[0] for r in query(db_file, "SELECT source_id FROM question")}
        before = [query(db_file, f"SELECT * FROM {t} ORDER BY 1") for t in tables]
        expected = {str(v["id"]) for v in items if _parse(list_form(v), from_list=True)}
        assert stored == expected
        assert_clean_text(db_file)
        [again] = svc.poll(date(2024, 1, 1), date(2024, 1, 31))
        assert again.ok, again.error
        assert again.counts.items_written == 0
        after = [query(db_file, f"SELECT * FROM {t} ORDER BY 1") for t in tables]
        assert after == before


@settings(SETTINGS, max_examples=30)
@given(
    raw=st.lists(api_items(), max_size=5),
    bad=st.one_of(
        st.none(),
        st.just({}),
        st.just([]),
        st.just("x"),
        st.fixed_dictionaries({"value": st.one_of(st.none(), st.just({}), ODD)}),
        st.fixed_dictionaries(
            {
                "value": st.fixed_dictionaries(
                    {
                        "id": st.one_of(
                            st.text(max_size=4),
                            st.floats(),
                            st.none(),
                            st.lists(st.integers(), max_size=1),
                        )
                    }
                )
            }
        ),
    ),  # fmt: skip
    at=st.integers(0, 5),
)
def test_a_page_with_an_item_without_an_id_skips_it_and_keeps_the_rest(
    data_dir: Path, raw: list[dict[str, Any]], bad: Any, at: int
) -> None:
    """A result without an integer value.id is skipped and reported; the rest of the window is
    used (it used to fail the window, on every poll, for ever)."""
    items: list[Any] = [{"value": list_form(v)} for v in _with_ids(raw)]
    items.insert(min(at, len(items)), bad)

    def handler(request: httpx.Request) -> httpx.Response:
        skip, take = int(request.url.params["skip"]), int(request.url.params["take"])
        body = {"totalResults": len(items), "results": items[skip : skip + take]}
        return httpx.Response(200, content=json.dumps(body))

    cfg = replace(UKParliamentConfig(), base_url="http://api.invalid", page_size=3)
    with UKParliamentClient(cfg, transport=httpx.MockTransport(handler)) as c:
        pages = list(c.iter_window("answered", date(2024, 1, 1), date(2024, 1, 31)))

    def usable(v: dict[str, Any]) -> bool:
        try:
            parse_question(list_form(v), from_list=True)
        except SourceError:
            return False
        return True

    got = [q.source_id for p in pages for q in p.items]
    assert got == [str(v["id"]) for v in _with_ids(raw) if usable(v)]  # each usable one, once
    skipped = [reason for p in pages for reason in p.skipped]
    assert [r for r in skipped if "no integer value.id" in r] == [
        f"result {min(at, len(items) - 1) + 1} of {len(items)} has no integer value.id"
    ]


# -- regressions: the bugs these properties found (fixed in 76e6e9e), as minimal items -------


@pytest.mark.parametrize("text", [5, 1.5, True, {"a": 1}, ["x"], None], ids=repr)
def test_a_question_text_of_another_type_is_left_out_not_a_crash(
    template_db: Template, text: Any
) -> None:
    """list_hash sliced questionText without looking at its type (TypeError on 5)."""
    item = {"id": 1, "house": "Commons", "dateTabled": "2024-07-01T00:00:00", "questionText": text}
    for from_list in (True, False):
        q = parse_question(item, from_list=from_list)
        assert q.question_text in ("", str(text))
    with fresh_archive(template_db) as (path, archive):
        assert store(archive, [item]) == 1
        assert_clean_text(path)


@pytest.mark.parametrize(
    "fields",
    [
        {"askingMemberId": 2**63},
        {"answeringBodyId": 2**64, "answeringBodyName": "X"},
        {"askingMember": {"id": -(2**63) - 1, "name": "X"}},
        {"answeringMemberId": 2**70, "answeringMember": {"id": 2**70, "name": "X"}},
        # Beyond PostgreSQL's 32-bit integer column: the page failed there (out of range).
        {"askingMemberId": 2**63 - 1},
        {"answeringBodyId": -(2**31) - 1, "answeringBodyName": "X"},
    ],
    ids=["askingMemberId", "answeringBodyId", "member-object-id", "both", "int64", "int32-body"],
)
def test_an_id_beyond_64_bits_is_left_out_not_a_crash(
    template_db: Template, fields: dict[str, Any]
) -> None:
    """Any JSON integer was taken as an id and reached sqlite3: OverflowError, page lost."""
    item = {"id": 1, "house": "Commons", "dateTabled": "2024-07-01T00:00:00", "questionText": "q"}
    with fresh_archive(template_db) as (path, archive):
        assert store(archive, [{**item, **fields}]) == 1
        assert query(
            path, "SELECT asking_member_id, answering_body_id, answering_member_id FROM question"
        ) == [(None, None, None)]
        assert query(path, "SELECT count(*) FROM member") == [(0,)]


@pytest.mark.parametrize("ref", ["&#27;", "&#x1B;", "&#x8d;", "&#12;", "&#13;", "&#127;", "&#1"])
def test_character_references_to_controls_never_reach_stored_answers(
    template_db: Template, ref: str
) -> None:
    """The sanitiser decodes &#27; to a raw ESC, which was stored in answer_html and
    answer_text (and so reached terminals, mail and feeds)."""
    item = {
        "id": 1, "house": "Commons", "dateTabled": "2024-07-01T00:00:00", "questionText": "q",
        "dateAnswered": "2024-07-02T00:00:00", "answerText": f"<p>a{ref}[2Jb</p>",
        "answerIsCorrection": True, "originalAnswerText": f"<p>old{ref}]0;x</p>",
    }  # fmt: skip
    with fresh_archive(template_db) as (path, archive):
        store(archive, [item])
        assert_clean_text(path)
        texts = [t for (t,) in query(path, "SELECT answer_text FROM answer ORDER BY 1")]
        assert len(texts) == 2 and texts[0].startswith("a") and texts[0].endswith("[2Jb")


ANSWERED = {
    "id": 1, "uin": "1", "house": "Commons", "dateTabled": "2024-07-18T00:00:00",
    "questionText": "To ask about hospices.", "dateAnswered": "2024-07-19T00:00:00",
    "answerText": "<p>One.</p><p>Two.</p>", "answerIsHolding": False,
    "answerIsCorrection": False,
}  # fmt: skip


def test_a_list_copy_of_a_stored_answer_then_its_full_record(template_db: Template) -> None:
    """A list copy (its detail request failed) of an answer stored in full was stored as a
    second, partial version; when the full record came back, completing it collided with the
    first (uq_answer_content): IntegrityError, the page failed, on every poll."""
    with fresh_archive(template_db) as (path, archive):
        store(archive, [ANSWERED])  # poll 1: the detail record
        before = snapshot(path)
        changed = {**ANSWERED, "heading": "Hospices"}
        store(archive, [list_form(changed)], from_list=True)  # poll 2: detail request failed
        store(archive, [changed])  # poll 3: the detail record again (the refetch)
        after = snapshot(path)
        assert after["answers"] == before["answers"] and after["events"] == before["events"]
        # Seen from the list first, then whole: one version, completed in place.
        store(archive, [{**list_form(ANSWERED), "id": 2}], from_list=True)
        store(archive, [{**ANSWERED, "id": 2}])
        assert query(
            path,
            "SELECT q.source_id, a.version, a.is_full_text, a.answer_text FROM answer a "
            "JOIN question q ON q.id = a.question_id ORDER BY 1",
        ) == [("1", 1, 1, "One.\n\nTwo."), ("2", 1, 1, "One.\n\nTwo.")]


def test_polls_after_a_missing_detail_record_keep_working(
    data_dir: Path, replay: ReplayServer, tmp_path: Path
) -> None:
    """The same through real polls: a detail request answered 404 once, then the refetch."""
    replay.set_items([{**ANSWERED, "id": 1700001}])
    config = tmp_path / "config.toml"
    config.write_text(api_config(replay.base_url), encoding="utf-8")
    db_file = tmp_path / "pqwatch.db"

    def poll() -> None:
        with open_service(config, now=date(2024, 7, 22)) as svc:
            [run] = svc.poll(date(2024, 7, 1), date(2024, 7, 22))
            assert run.ok, run.error

    poll()
    replay.set_items([{**ANSWERED, "id": 1700001, "heading": "Hospices"}])
    replay.add_fault(Fault("status", status=404, match="detail", times=3))  # every try of poll 2
    for _ in range(3):
        poll()
    assert rows(db_file, "SELECT version, is_full_text, answer_text FROM answer") == [
        (1, 1, "One.\n\nTwo.")
    ]
    assert rows(db_file, "SELECT heading, detail_pending FROM question") == [("Hospices", 0)]


def test_a_department_name_is_never_replaced_by_a_placeholder(template_db: Template) -> None:
    """An item with answeringBodyId but no answeringBodyName renamed the stored department
    'Answering body 17'."""
    item = {
        "id": 1, "house": "Commons", "dateTabled": "2024-07-01T00:00:00", "questionText": "q",
        "answeringBodyId": 17, "answeringBodyName": "Department of Health and Social Care",
    }  # fmt: skip
    with fresh_archive(template_db) as (path, archive):
        store(archive, [{**item, "id": 2, "answeringBodyName": None}])
        store(archive, [item])
        store(archive, [{**item, "id": 3, "answeringBodyName": None}])
        assert query(path, "SELECT name FROM answering_body") == [
            ("Department of Health and Social Care",)
        ]
