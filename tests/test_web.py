"""The web app in-process (Starlette's TestClient, httpx) over a small real archive built
through the replay server: questions of 2021 and of July 2024 (tables and holding answers
among them) and written statements. Fake sites stand in where the archive holds no example
(FOI requests, attachments, hostile HTML)."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import escape
from starlette.testclient import TestClient

from pqwatch.errors import UsageError
from pqwatch.query import QuerySyntaxError, narrow, parse
from pqwatch.search.results import (
    CSV_FIELDS,
    MARK_END,
    MARK_START,
    AnswerVersion,
    QuestionEvent,
    QuestionStory,
    SearchFacets,
    SearchHit,
    SearchResult,
)
from pqwatch.service import PQWatch
from pqwatch.testing.replay import ReplayServer, load_items
from pqwatch.text import html_to_text, sanitize_html
from pqwatch.types import AttachmentData
from pqwatch.web.app import create_app, item_path, marked
from tests import shared_archive
from tests.conftest import CliResult, api_config, open_service, require_data, rows

TOPICS = re.compile(r"palliative|hospice|school|short breaks", re.I)
WATCHES = """
[[watches]]
name = "Hospice funding"
query = "hospice OR hospices"
[[watches]]
name = "Trade"
query = "trade"
[[subscribers]]
email = "officer@example.org"
"""
TODAY = date(2026, 7, 10)


def archive_items(data: Path) -> list[dict[str, Any]]:
    """Questions (2021 recordings; July 2024 on our topics or with a table in the answer;
    holding answers of July 2026) and the recorded written statements, made whole."""
    base = data / "uk_parliament"
    items = load_items(sorted((base / "recorded_http_2021").glob("wq_list_*.json")))
    month = load_items(
        [
            base / "monthly_list_dumps" / "commons_tabled_2024-07.json.gz",
            base / "longform_detail_text" / "longform_2024-07.json.gz",
        ]
    )
    items.update(
        (i, v)
        for i, v in month.items()
        if TOPICS.search(f"{v['heading']} {v['questionText']}")
        or "<table" in (v["answerText"] or "")
    )
    snapshot = load_items(sorted((base / "list_snapshots_2026-07").glob("*asof_2026-07-08*")))
    items.update((i, v) for i, v in snapshot.items() if v["answerIsHolding"])
    recorded = base / "recorded_http_2021" / "ws_list_made_2021-02-01_take20.json"
    statements = [
        # The list cuts a statement's text; the detail holds it whole (stood in for here).
        {**r["value"], "text": "<p>" + r["value"]["text"].removesuffix("...") + " in full.</p>"}
        for r in json.loads(recorded.read_text(encoding="utf-8"))["results"]
    ]
    return [*items.values(), *statements]


def build_archive(folder: Path) -> Path:
    """A config and its archive in `folder`, polled from the replay server."""
    with ReplayServer(archive_items(require_data())) as server:
        config = folder / "config.toml"
        config.write_text(api_config(server.base_url, extra=WATCHES, statements=True))
        with open_service(config, now=TODAY) as svc:
            runs = svc.poll(date(2021, 1, 1), TODAY)
            assert all(r.ok for r in runs), [r.error for r in runs]
    return config


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    folder = tmp_path_factory.mktemp("web-archive")
    return shared_archive.build(request, lambda: build_archive(folder))


@pytest.fixture(autouse=True)
def _reads_the_archive(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    shared_archive.reading_when_used(request, monkeypatch, "archive")


@pytest.fixture
def config(
    archive: Path, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A private copy of the archive, for tests that change it."""
    return shared_archive.private_copy(request, monkeypatch, archive, tmp_path)


@pytest.fixture(scope="module")
def svc(archive: Path, request: pytest.FixtureRequest) -> Iterator[PQWatch]:
    with shared_archive.opened(request, archive), open_service(archive, now=TODAY) as service:
        service.ensure_ready()
        yield service


@pytest.fixture(scope="module")
def client(svc: PQWatch) -> Iterator[TestClient]:
    with TestClient(create_app(svc), follow_redirects=False) as c:
        yield c


def _links(page: str, pattern: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'href="(' + pattern + r'[^"]*)"', page)]


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text))


def _text(page: str) -> str:
    """What a reader sees: tags dropped, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


# -- search -----------------------------------------------------------------------------------


def test_search_finds_a_question_and_its_page_shows_the_whole_answer(
    client: TestClient, svc: PQWatch
) -> None:
    home = client.get("/")
    assert home.status_code == 200
    assert re.search(r'<label for="q">Search</label>\s*<input id="q" name="q"', home.text)
    found = client.get("/search", params={"q": "hospice"})
    assert found.status_code == 200
    assert "<mark>" in found.text and MARK_START not in found.text
    expected = svc.search("hospice", limit=20)
    assert f"{expected.total:,} match" in found.text
    assert _links(found.text, "/q/") == [f"/q/{h.date_tabled}/{h.uin}" for h in expected.hits]
    # A 2021 recording: its asker is known in full, and it was answered with others.
    items = archive_items(require_data())
    v = next(x for x in items if x.get("askingMember") and x.get("groupedQuestionsDates"))
    query = f'heading:"{v["heading"]}" tabled:{v["dateTabled"][:10]}'
    found = client.get("/search", params={"q": query})
    href = f"/q/{v['dateTabled'][:10]}/{v['uin']}"
    assert href in _links(found.text, "/q/")
    page = client.get(href)
    assert page.status_code == 200
    text = _text(page.text)
    story = svc.show(str(v["id"]))
    first = story.hit
    assert first.heading and f"<h1>{escape(first.heading)}</h1>" in page.text
    member = v["askingMember"]
    assert f"Asked by {member['name']} ({member['party']}, {member['memberFrom']})" in text
    assert f"Department {v['answeringBodyName']}" in text
    assert " ".join(first.question_text.split()) in text
    assert [a.kind for a in story.answers] == ["answer"]
    for para in html_to_text(story.answers[0].html).split("\n\n"):  # the whole answer
        assert " ".join(para.split()) in text
    assert f'href="{first.url}"' in page.text  # the official record
    assert "Answered together with" in text
    for g in v["groupedQuestionsDates"]:
        assert f'href="/q/{g["dateTabled"][:10]}/{g["questionUin"]}"' in page.text
    # The whole answer, paragraph by paragraph (not a snippet).
    for para in html_to_text(story.answers[-1].html).split("\n\n"):
        assert " ".join(para.split()) in text
    assert " ".join(first.question_text.split()) in text
    assert f'href="{first.url}"' in page.text  # the official record


def test_a_long_answer_is_shown_whole_and_its_table_stays_a_table(client: TestClient) -> None:
    [v] = [x for x in archive_items(require_data()) if x["id"] == 1724464]
    page = client.get("/q/1724464")  # Winter Fuel Payment, July 2024: a table of figures
    assert page.status_code == 200
    text = _text(page.text)
    whole = html_to_text(sanitize_html(v["answerText"]))
    assert len(whole) > 1000
    words = _words(text)
    for line in whole.splitlines():  # every paragraph, list item and table row, in order
        assert _words(line) in words
    region = re.search(
        r'<div class="text wide" tabindex="0" role="group".*?</div>', page.text, re.S
    )
    assert region and "<table>" in region.group(0) and "<td" in region.group(0)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("hospice (funding", "malformed query"),
        ("tabled:2024-13-01", "2024-13-01"),
        ("hospice OR", "malformed query"),
        ("ed*", "too short a prefix"),
    ],
)
def test_a_malformed_query_is_one_line_beside_the_box(
    client: TestClient, svc: PQWatch, query: str, message: str
) -> None:
    page = client.get("/search", params={"q": query})
    assert page.status_code == 200  # the search page, not an error page (app.py says why)
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    [alert] = re.findall(r'<p id="q-error" class="error" role="alert">(.*?)</p>', page.text)
    assert "\n" not in alert and message in html.unescape(alert)
    try:  # the very line the CLI prints
        svc.search(query)
    except Exception as exc:
        assert html.unescape(alert) == str(exc)
    assert f'value="{html.escape(query)}"' in page.text  # the query stays in the box
    assert 'aria-invalid="true"' in page.text
    assert "Traceback" not in page.text and "fts5" not in page.text.lower()
    assert "Narrow the results" not in page.text  # no facets without results


def test_the_query_is_escaped_wherever_it_is_shown(client: TestClient) -> None:
    query = '"><script>alert(1)</script> hospice'
    page = client.get("/search", params={"q": query})
    assert page.status_code == 200
    assert "<script" not in page.text
    assert str(escape(query)) in page.text


def test_csv_and_json_links_give_the_same_results_as_the_cli(
    client: TestClient, archive: Path, cli: Any
) -> None:
    query = 'hospice -"palliative care"'
    page = client.get("/search", params={"q": query, "sort": "newest"})
    [csv_url] = _links(page.text, "/search.csv")
    [json_url] = _links(page.text, "/search.json")
    data = client.get(json_url)
    assert data.status_code == 200 and data.headers["content-type"] == "application/json"
    got = data.json()
    assert got["query"] == query and got["sort"] == "newest"
    assert 0 < got["total"] == len(got["hits"])
    table = client.get(csv_url)
    assert table.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in table.headers["content-disposition"]
    parsed = list(csv.DictReader(io.StringIO(table.text)))
    assert [int(r["id"]) for r in parsed] == [h["id"] for h in got["hits"]]
    ran: CliResult = cli("--config", archive, "search", query, "--sort", "newest",
                         "--format", "csv", "--limit", "1000")  # fmt: skip
    assert ran.exit_code == 0, ran.stderr
    assert table.text == ran.stdout
    assert tuple(parsed[0]) == CSV_FIELDS
    bad = client.get("/search.json", params={"q": "hospice ("})
    assert bad.status_code == 400 and "malformed query" in bad.json()["error"]
    assert client.get("/search.csv", params={"q": "hospice ("}).status_code == 400
    assert client.get("/search.xml", params={"q": "hospice"}).status_code == 404


def test_pages_and_sort(client: TestClient, svc: PQWatch) -> None:
    total = svc.search("school", limit=1).total
    assert total > 40, "enough results for three pages"
    first = client.get("/search", params={"q": "school", "sort": "newest"})
    assert f"page 1 of {-(-total // 20)}" in first.text
    [next_url] = re.findall(r'<a rel="next" href="([^"]+)"', first.text)
    second = client.get(html.unescape(next_url))
    assert second.status_code == 200 and 'rel="prev"' in second.text
    assert '<ol class="hits" start="21">' in second.text
    ids1, ids2 = _links(first.text, "/q/"), _links(second.text, "/q/")
    assert len(ids1) == len(ids2) == 20 and not set(ids1) & set(ids2)
    every = svc.search("school", limit=40, sort="newest").hits
    assert ids1 == [f"/q/{h.date_tabled}/{h.uin}" for h in every[:20]]
    assert ids2 == [f"/q/{h.date_tabled}/{h.uin}" for h in every[20:]]
    again = client.get("/search", params={"q": "school", "sort": "newest", "page": "x"})
    assert again.text == first.text
    far = client.get("/search", params={"q": "school", "sort": "newest", "page": "9999"})
    assert far.status_code == 200 and "Nothing on this page." in far.text
    odd = client.get("/search", params={"q": "school", "sort": "sideways"})
    assert odd.status_code == 200 and '"relevance" selected' in odd.text


def test_an_empty_search_is_the_form(client: TestClient) -> None:
    page = client.get("/search", params={"q": "  "})
    assert page.status_code == 200 and "Results" not in page.text


# -- counts to narrow a search by ---------------------------------------------------------------

_FACET_LINK = re.compile(
    r'<li><a href="(/search\?[^"]+)">([^<]+)</a> <span class="count">([^<]+)</span></li>'
)


def _facet_nav(page: str) -> str:
    [nav] = re.findall(r'<nav id="narrow" class="facets" aria-label="Narrow the results">'
                       r"(.*?)</nav>", page, re.S)  # fmt: skip
    return nav


def _summary_count(page: str) -> int:
    [count] = re.findall(r'<p class="summary">([0-9,]+) match', page)
    return int(count.replace(",", ""))


@pytest.mark.parametrize("query", ["the", "government", "hospice OR palliative", "tabled:2021"])
def test_a_facet_link_narrows_the_search_to_exactly_its_count(
    client: TestClient, svc: PQWatch, query: str
) -> None:
    page = client.get("/search", params={"q": query, "sort": "newest"})
    if query == "the" and svc.db.dialect == "postgresql":
        # A stop word finds nothing on PostgreSQL (pqwatch/store/postgresql/compile.py).
        assert svc.search(query).total == 0 and 'id="narrow"' not in page.text
        return
    nav = _facet_nav(page.text)
    headings = re.findall(r"<h3 id=\"facet-(\w+)\">", nav)
    assert headings == [
        h for h in ("parliament", "house", "type", "dept", "tabled", "status") if h in headings
    ] and {"type", "tabled", "status"} <= set(headings)
    links = _FACET_LINK.findall(nav)
    assert links
    facets = svc.search_facets(query)
    assert facets.exact and facets.total == svc.search(query, limit=1).total
    for href, label, count in links:
        href = html.unescape(href)
        narrowed = re.search(r"q=([^&]+)", href)
        assert narrowed and "sort=newest" in href
        followed = client.get(href)
        assert followed.status_code == 200
        # The link is a search: the query with one filter more, giving exactly that many.
        assert _summary_count(followed.text) == int(count.replace(",", "")), (label, href)
        result = svc.search(followed.url.params["q"], limit=1)
        assert result.total_is_exact and result.total == int(count.replace(",", ""))
        assert followed.url.params["q"].startswith((query, f"({query})"))
    # A filter the query has already is shown as chosen, not as a link to the same search.
    if query == "tabled:2021":
        assert re.search(r'<span class="chosen">2021 <span class="tag">\(in the search\)', nav)
        assert "tabled%3A2021+tabled" not in nav


def test_facet_counts_equal_direct_sql_counts(svc: PQWatch, archive: Path) -> None:
    db = archive.parent / "pqwatch.db"
    words = ["the", "government", "department"]
    if svc.db.dialect == "postgresql":
        # A stop word finds nothing on PostgreSQL (pqwatch/store/postgresql/compile.py).
        assert svc.search_facets(words.pop(0)).total == 0
        text_match = "q.search_vector @@ to_tsquery('english', ?)"
    else:
        text_match = "q.id IN (SELECT rowid FROM question_fts WHERE question_fts MATCH ?)"
    for word in words:
        facets = svc.search_facets(word)
        matches = (
            "FROM question q LEFT JOIN answering_body b ON b.id = q.answering_body_id "
            f"WHERE {text_match}"
        )
        if svc.db.dialect == "postgresql":
            match = f"'{word}':ABC"  # heading, question and answer (D: the facet words)
        else:
            match = f'{{heading question answer}} : "{word}"'
        [(total,)] = rows(db, f"SELECT count(*) {matches}", match)
        assert facets.exact and facets.total == total > 0
        got = {f.name: {v.label: v.count for v in f.values} for f in facets.facets}
        direct = {
            "house": "q.house",
            "tabled": "substr(CAST(q.date_tabled AS TEXT), 1, 4)",
            "parliament": "q.parliament",
            "type": "q.kind",
        }
        names = {"westminster": "UK Parliament", "question": "Written questions",
                 "statement": "Written statements"}  # fmt: skip
        for facet, column in direct.items():
            counted = rows(db, f"SELECT {column}, count(*) {matches} GROUP BY 1", match)
            assert got[facet] == {names.get(v, v): n for v, n in counted}, facet
        statuses = dict(rows(db, f"SELECT q.status, count(*) {matches} GROUP BY 1", match))
        answered = statuses.pop("answered", 0) + statuses.get("corrected", 0)
        assert got["status"] == {
            "Answered": answered,
            **{k.capitalize(): n for k, n in statuses.items()},
        }
        # A department's count is every match whose department's name has all its words.
        assert got["dept"]
        for name, n in got["dept"].items():
            words = name.lower().split()
            where = " AND ".join("lower(b.name) LIKE ?" for _ in words)
            likes = [f"%{w}%" for w in words]
            [(expected,)] = rows(db, f"SELECT count(*) {matches} AND {where}", match, *likes)
            assert n == expected, name
        # Left out past the limit: departments with fewer matches than any shown.
        # The search's count only saves counting: the counts never depend on it.
        assert svc.search_facets(word, matches=1) == facets
        assert svc.search_facets(word, matches=10**6) == facets
        few = svc.search_facets(word, limit_per_facet=2)
        [dept] = [f for f in few.facets if f.name == "dept"]
        bodies = rows(db, f"SELECT count(DISTINCT b.name) {matches}", match)[0][0]
        assert len(dept.values) == min(2, bodies) and dept.more == max(bodies - 2, 0)


def test_past_the_exact_limit_counts_are_estimates_and_say_so(
    client: TestClient, svc: PQWatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    facet_counts = svc.db.dialect_module("facet_counts")
    monkeypatch.setattr(facet_counts, "EXACT_LIMIT", 20)
    monkeypatch.setattr(facet_counts, "SAMPLE_SIZE", 10)
    # SQLite: 192 matches, 1 in 20 counted; "the" is a stop word on PostgreSQL, which finds
    # nothing (pqwatch/store/postgresql/compile.py): 86 matches, 1 in 9 there.
    word, rate = ("department", 9) if svc.db.dialect == "postgresql" else ("the", 20)
    facets = svc.search_facets(word)
    assert not facets.exact and facets.sample_rate == rate
    assert facets.total % rate == 0 and all(v.count % rate == 0 for f in facets.facets
                                            for v in f.values)  # fmt: skip
    page = client.get("/search", params={"q": word})
    nav = _facet_nav(page.text)
    assert "These counts are estimates, rounded" in nav and f"1 in {rate}" in nav
    counts = re.findall(r'<span class="count">([^<]+)</span>', nav)
    assert counts and all(c.startswith("about ") for c in counts)
    # Far fewer matches than the index promised: counted whole after all.
    exact = svc.search_facets(f"{word} asker:smith")
    assert exact.exact


def test_narrowing_a_query_keeps_its_meaning() -> None:
    assert narrow("school", "house:lords") == "school house:lords"
    assert narrow("hospice OR palliative", "house:lords") == "(hospice OR palliative) house:lords"
    assert narrow("school -academy", "tabled:2024") == "school -academy tabled:2024"
    assert narrow("school house:lords", "house:lords") == "school house:lords"  # has it
    assert narrow('a dept:"x"', 'dept:"X"') == 'a dept:"x"'
    assert narrow("school (", "house:lords") is None
    # At the nesting limit, or the length limit, there is no room for one more filter.
    deep = "a OR (b c OR (" * 16 + "z" + "))" * 16
    parse(deep)
    assert narrow(deep, "house:lords") is None
    long = "hospice " * 499
    parse(long)
    assert narrow(long, "house:lords") is None


# Filters and words of the recordings' archive, and the language's operators, in any order.
_FACET_PIECES = st.sampled_from(
    [
        "the", "school", "government", "hospice", "trade", "educ*", "minister", "zzzz", "OR",
        "NOT", "AND", "-", "(", ")", '"', "house:lords", "house:commons", "dept:health",
        'dept:"department for"', "status:answered", "status:holding", "status:overdue",
        "tabled:2021", "tabled:2024-07", "answered:>=2024-01-01", "type:statement",
        "parliament:westminster", "parliament:scotland", "asker:smith", "heading:school", "a*",
    ]
)  # fmt: skip
_FACET_QUERIES = st.lists(_FACET_PIECES, min_size=1, max_size=7).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(_FACET_QUERIES)
def test_facet_counting_never_fails_for_a_query_that_parses(svc: PQWatch, query: str) -> None:
    try:
        parse(query)
    except QuerySyntaxError:
        return  # the search page shows the parser's message and no facets
    try:
        facets = svc.search_facets(query)
    except UsageError as error:  # only what the search itself refuses (a short prefix)
        with pytest.raises(UsageError) as searched:
            svc.search(query, limit=1)
        assert str(searched.value) == str(error) and "too short a prefix" in str(error)
        return
    result = svc.search(query, limit=1)
    assert facets.exact and facets.total == result.total
    for facet in facets.facets:
        assert all(0 < v.count <= facets.total for v in facet.values), facet
        if facet.name in ("parliament", "type"):
            assert sum(v.count for v in facet.values) == facets.total
        for v in facet.values:
            narrowed = narrow(query, v.filter)
            assert narrowed is not None, (query, v.filter)
            assert svc.search(narrowed, limit=1).total == v.count, (narrowed, v)


# -- item pages -------------------------------------------------------------------------------


def test_an_item_by_id_by_reference_and_by_date_and_reference(
    client: TestClient, svc: PQWatch
) -> None:
    hit = next(h for h in svc.search("hospice", limit=20).hits if h.uin and h.uin.isdigit())
    pages = [
        client.get(f"/q/{hit.source_id}"),
        client.get(f"/q/{hit.date_tabled}/{hit.uin}"),
        client.get("/q/" + quote(f"{hit.date_tabled}/{hit.uin}", safe="")),
    ]
    for page in pages:
        assert page.status_code == 200
        assert f"<h1>{html.escape(hit.heading or '')}</h1>" in page.text
    lords = next(h for h in svc.search("house:lords", limit=50).hits if h.uin)
    by_reference = client.get(f"/q/{lords.uin.lower()}")  # as `pqwatch show hl1234`
    assert by_reference.status_code == 200 and (lords.heading or "") in html.unescape(
        by_reference.text
    )


def test_a_question_with_a_holding_answer_shows_its_timeline(
    client: TestClient, svc: PQWatch
) -> None:
    [hit, *_] = svc.search("status:holding", limit=1).hits
    page = client.get(f"/q/{hit.source_id}")
    assert page.status_code == 200
    steps = re.findall(
        r'<li><time datetime="([0-9-]+)">[^<]+</time> <span>([^<]+)</span></li>', page.text
    )
    labels = [label for _, label in steps]
    assert labels[0] == "Tabled" and any(lab.startswith("Holding answer") for lab in labels)
    assert [d for d, _ in steps] == sorted(d for d, _ in steps)
    assert "Holding answer (version 1)" in page.text or "its text was not archived" in page.text


def test_a_statement_has_its_own_shape(client: TestClient) -> None:
    page = client.get("/q/2021-02-01/HLWS747")
    assert page.status_code == 200
    text = _text(page.text)
    assert "UK Parliament (Lords), written statement · HLWS747" in text
    assert "Made by Lord Grimstone of Boscobel" in text
    assert "Department Department for International Trade" in text
    assert "1 February 2021 Made" in text
    assert "in full." in text and "Not answered yet" not in text
    assert '<h2 id="text-heading">Statement</h2>' in page.text


def test_an_item_lists_the_operator_watches_that_matched_it(
    client: TestClient, svc: PQWatch, archive: Path, cli: Any
) -> None:
    db = archive.parent / "pqwatch.db"
    matched: dict[str, set[tuple[str, str]]] = {}
    for source_id, name, slug in rows(
        db,
        "SELECT DISTINCT q.source_id, w.name, w.slug FROM watch_match m "
        "JOIN event e ON e.id = m.event_id JOIN question q ON q.id = e.question_id "
        "JOIN watch w ON w.id = m.watch_id",
    ):
        matched.setdefault(source_id, set()).add((name, slug))
    assert {n for found in matched.values() for n, _ in found} == {"Hospice funding", "Trade"}
    for source_id, watches in matched.items():
        story = svc.show(source_id)
        assert {(w.name, w.slug) for w in story.matched_watches} == watches
        assert story.as_dict()["matched_watches"] == [
            {"name": w.name, "slug": w.slug} for w in story.matched_watches
        ]
        page = client.get(f"/q/{source_id}")
        [section] = re.findall(
            r'<section aria-labelledby="watches-heading">(.*?)</section>', page.text, re.S
        )
        assert '<h2 id="watches-heading">Watches that matched it</h2>' in section
        links = re.findall(r'<a href="(/watches/[a-z0-9-]+)">([^<]+)</a>', section)
        assert links == [(f"/watches/{slug}", name) for name, slug in sorted(watches)]
        for href, _ in links:
            assert client.get(href).status_code == 200
    [(unmatched,)] = rows(
        db,
        "SELECT source_id FROM question WHERE id NOT IN (SELECT e.question_id FROM event e "
        "JOIN watch_match m ON m.event_id = e.id) LIMIT 1",
    )
    assert svc.show(unmatched).matched_watches == ()
    assert "watches-heading" not in client.get(f"/q/{unmatched}").text
    hospice = next(i for i, w in matched.items() if ("Hospice funding", "hospice-funding") in w)
    shown = cli("--config", archive, "show", hospice)
    assert shown.exit_code == 0 and "Matched watches: Hospice funding" in shown.stdout


def test_personal_and_retired_watches_are_not_listed_on_an_item(config: Path) -> None:
    db = config.parent / "pqwatch.db"
    # A subscriber's own watch, and one the file dropped.
    for name, origin, active in (("Mine", "web", True), ("Old", "config", False)):
        [(watch,)] = rows(
            db,
            "INSERT INTO watch (name, slug, query, active, created_at, updated_at, origin) "
            "VALUES (?, lower(?), 'hospice', ?, '2026-07-10', '2026-07-10', ?) RETURNING id",
            name,
            name,
            active,
            origin,
        )
        rows(
            db,
            "INSERT INTO watch_match (watch_id, event_id, created_at) SELECT ?, event_id, "
            "created_at FROM watch_match WHERE watch_id = (SELECT id FROM watch "
            "WHERE slug = 'hospice-funding')",
            watch,
        )
    [(source_id,)] = rows(
        db,
        "SELECT q.source_id FROM watch_match m JOIN event e ON e.id = m.event_id "
        "JOIN question q ON q.id = e.question_id JOIN watch w ON w.id = m.watch_id "
        "WHERE w.slug = 'mine' LIMIT 1",
    )
    with open_service(config, now=TODAY) as service:
        story = service.show(source_id)
        assert [w.name for w in story.matched_watches] == ["Hospice funding"]
        with TestClient(create_app(service)) as c:
            page = c.get(f"/q/{source_id}").text
    assert "/watches/hospice-funding" in page and "/watches/mine" not in page
    assert "/watches/old" not in page


def test_an_unknown_reference_is_a_404_page_with_the_cli_message(client: TestClient) -> None:
    page = client.get("/q/HL999999")
    assert page.status_code == 404
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "no question with id or UIN &#39;HL999999&#39; in the archive" in page.text
    for path in ("/q/", "/q/2099-01-01/HL1", "/q/AQW 1/22-27", "/nowhere", "/search/"):
        assert client.get(path).status_code == 404, path


# -- safety -----------------------------------------------------------------------------------


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    paths = ["/", "/search?q=hospice", "/search?q=(", "/q/2021-02-01/HLWS747", "/q/nope1",
             "/feeds/", "/feeds/all.rss", "/static/pqwatch.css", "/nowhere"]  # fmt: skip
    for path in paths:
        resp = client.get(path)
        csp = resp.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp, path
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["referrer-policy"] == "same-origin"
        assert resp.headers["x-frame-options"] == "DENY"
        assert "server" not in resp.headers
        if resp.headers["content-type"].startswith("text/html"):
            # What the policy would block must not be there: no script, no inline style.
            assert "<script" not in resp.text and "style=" not in resp.text, path
            assert '<main id="main">' in resp.text and '<html lang="en-GB">' in resp.text


def test_no_redirects_at_all(client: TestClient) -> None:
    for path in ("//evil.example.org/", "/feeds", "/search/", "/q", "/static", "/%2Fevil.org"):
        resp = client.get(path, headers={"Host": "evil.example.org"})
        assert not 300 <= resp.status_code < 400, (path, resp.status_code)
        assert "location" not in resp.headers
    assert client.get("/feeds").status_code == 200


class FakeSite:
    """A site whose one item is `story`; searching finds it."""

    def __init__(self, story: QuestionStory) -> None:
        self.story = story

    def search(self, query: str, *, limit: int = 20, sort: str = "relevance") -> SearchResult:
        return SearchResult(query, 1, sort, (self.story.hit,))

    def search_facets(self, query: str, *, matches: int | None = None) -> SearchFacets:
        return SearchFacets(query, 1, ())

    def show(self, ref: str) -> QuestionStory:
        return self.story

    def today(self) -> date:
        return TODAY

    def feed_list(self) -> list[tuple[str, str, str | None]]:
        return [("all", "All watches", None)]

    def feed_bytes(self, slug: str, kind: str) -> bytes | None:
        return None

    def unsubscribe(self, token: str, watch_slug: str | None = None) -> str | None:
        return None


HIT = SearchHit(
    id=1, source_id="1700001", uin="12345", house="Commons", date_tabled=date(2024, 7, 1),
    date_answered=date(2024, 7, 9), heading="Hospices: Finance", asking_member="Jane Smith",
    asking_party="Labour", asking_constituency="Exampleton", answering_member="A Minister",
    answering_body="Department of Health and Social Care", status="answered",
    question_text="To ask the Secretary of State...\n\nSecond paragraph <b>bold?</b>",
    answer_text="", snippet=f"about {MARK_START}hospice{MARK_END} funding", matched_terms=(),
)  # fmt: skip
HOSTILE = (
    '<p onclick="steal()">Answer <script>alert(1)</script><img src=x onerror="x()">'
    '<a href="javascript:alert(1)">bad</a> <a href="https://example.org/ok">good</a></p>'
    '<iframe src="https://evil.example"></iframe><p style="position:fixed">styled</p>'
    "<table><tr><th>Year</th><td>2024</td></tr></table>"
)


def _story(**changes: Any) -> QuestionStory:
    story = QuestionStory(
        hit=HIT, date_for_answer=date(2024, 7, 8), is_named_day=True, asking_party="Labour",
        asking_constituency="Exampleton",
        answers=(AnswerVersion(1, "answer", date(2024, 7, 9), None, "A Minister", None,
                               HOSTILE, "Answer", True),),
        events=(QuestionEvent("tabled", date(2024, 7, 1), {}),
                QuestionEvent("answered", date(2024, 7, 9), {})),
        grouped=(), attachments=(AttachmentData("https://example.org/a.xlsx", "Data", "xlsx",
                                                18_000),),
    )  # fmt: skip
    return replace(story, **changes)


def test_archived_html_is_cleaned_again_before_it_reaches_a_browser() -> None:
    with TestClient(create_app(FakeSite(_story()))) as c:
        page = c.get("/q/anything").text
    for bad in ("<script", "onclick", "onerror", "javascript:", "<iframe", "<img", "style="):
        assert bad not in page, bad
    assert '<a href="https://example.org/ok" rel="noopener noreferrer">good</a>' in page
    assert "<table>" in page and "<th>Year</th>" in page
    assert "Second paragraph &lt;b&gt;bold?&lt;/b&gt;" in page  # question text is text
    assert '<a href="https://example.org/a.xlsx">Data</a> (xlsx, 18 KB)' in page
    text = _text(page)
    assert "8 July 2024 Answer due (named day)" in text
    assert "Answered by A Minister" in text


def test_an_foi_request_has_its_own_shape() -> None:
    hit = replace(HIT, parliament="foi", kind="foi", uin="hospice_costs", source_id="9001",
                  asking_member="A Requester", answering_body="Exampleshire Council",
                  status="waiting_response", heading="Hospice costs")  # fmt: skip
    story = _story(
        hit=hit,
        date_for_answer=date(2024, 7, 29),
        is_named_day=False,
        answers=(
            AnswerVersion(1, "answer", date(2024, 7, 5), None, None, None, "<p>old</p>", "", True),
            AnswerVersion(2, "answer", date(2024, 7, 9), None, None, None, "<p>new</p>", "", True),
        ),
        events=(
            QuestionEvent("tabled", date(2024, 7, 1), {}),
            QuestionEvent(
                "state", date(2024, 7, 9), {"from": "waiting_response", "to": "successful"}
            ),
        ),  # fmt: skip
        details={"law_used": "eir", "events": [{"date": "2024-07-01", "type": "sent"}]},
    )
    with TestClient(create_app(FakeSite(story))) as c:
        page = c.get("/q/hospice_costs").text
    text = _text(page)
    assert "FOI request (WhatDoTheyKnow) · hospice_costs" in text
    assert "Requested by A Requester" in text and "Authority Exampleshire Council" in text
    assert "Law Environmental Information Regulations" in text
    assert "1 July 2024 Request sent" in text
    assert "State changed: waiting_response to successful" in text
    assert "29 July 2024 Response due" in text
    assert "Responses, newest first new" in text and "<p>old</p>" not in page
    assert "2024-07-01 sent" in text
    assert "This request on WhatDoTheyKnow" in text


def test_snippet_marks_are_escaped_and_balanced() -> None:
    s, e = MARK_START, MARK_END
    assert marked(f"a {s}<b>{e} c") == "a <mark>&lt;b&gt;</mark> c"
    assert marked(f"{s}open") == "<mark>open</mark>"
    assert marked(f"stray{e} {s}x{s}y{e}") == "stray <mark>xy</mark>"
    assert marked(None) == ""


# -- feeds and unsubscribing ------------------------------------------------------------------


def test_feeds_answer_304_to_a_matching_etag(client: TestClient) -> None:
    first = client.get("/feeds/hospice-funding.rss")
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/rss+xml; charset=utf-8"
    tag, modified = first.headers["etag"], first.headers["last-modified"]
    assert (
        client.get("/feeds/hospice-funding.rss", headers={"If-None-Match": tag}).status_code == 304
    )
    weak = client.get("/feeds/hospice-funding.rss", headers={"If-None-Match": f"W/{tag}"})
    assert weak.status_code == 304 and weak.content == b""
    since = client.get("/feeds/hospice-funding.rss", headers={"If-Modified-Since": modified})
    assert since.status_code == 304
    other = client.get("/feeds/hospice-funding.rss", headers={"If-None-Match": '"other"'})
    assert other.status_code == 200 and other.headers["etag"] == tag
    assert client.get("/feeds/trade.atom").headers["content-type"].startswith("application/atom")
    assert client.head("/feeds/all.rss").status_code == 200
    assert client.get("/feeds/nope.rss").status_code == 404
    assert client.get("/feeds/all.json").status_code == 404
    index = client.get("/feeds/")
    assert '<a href="/feeds/hospice-funding.rss">' in index.text
    assert client.get("/feeds/index.html").text == index.text


def test_the_feed_index_shows_absolute_addresses_with_a_site_url(svc: PQWatch) -> None:
    app = create_app(svc, site_url="https://pq.example.org/")
    with TestClient(app) as c:
        page = c.get("/feeds/").text
    assert "<code>https://pq.example.org/feeds/trade.rss</code>" in page


def test_one_click_unsubscribe(config: Path) -> None:
    db = config.parent / "pqwatch.db"
    with open_service(config, now=TODAY) as svc, TestClient(create_app(svc)) as c:
        svc.ensure_ready()
        [(token,)] = rows(db, "SELECT token FROM subscriber")
        page = c.get(f"/unsubscribe/{token}/trade")
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        assert f'<form method="post" action="/unsubscribe/{token}/trade">' in page.text
        assert rows(db, "SELECT active FROM subscriber") == [(1,)]  # a GET changes nothing
        one = c.post(f"/unsubscribe/{token}/trade", content=b"List-Unsubscribe=One-Click")
        assert one.status_code == 200
        assert "officer@example.org is unsubscribed from the watch trade." in one.text
        assert rows(db, "SELECT active FROM subscriber") == [(1,)]
        done = c.post(f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click")
        assert done.status_code == 200
        assert "officer@example.org is unsubscribed from all digests." in done.text
        assert rows(db, "SELECT active FROM subscriber") == [(0,)]
        assert c.post("/unsubscribe/notarealtoken0000000").status_code == 404
        assert c.get("/unsubscribe/short").status_code == 404
        assert c.get(f"/unsubscribe/{token}/Not_A_Slug").status_code == 404
        assert c.delete(f"/unsubscribe/{token}").status_code == 405


def test_the_last_modified_time_is_when_the_bytes_first_appeared() -> None:
    times = iter([datetime(2026, 7, 1, 12, tzinfo=UTC), datetime(2026, 7, 2, 12, tzinfo=UTC)])
    body = [b"<rss>one</rss>"]

    class Feeds(FakeSite):
        def feed_bytes(self, slug: str, kind: str) -> bytes | None:
            return body[0]

    with TestClient(create_app(Feeds(_story()), now=lambda: next(times))) as c:
        a, b = c.get("/feeds/all.rss"), c.get("/feeds/all.rss")
        body[0] = b"<rss>two</rss>"
        changed = c.get("/feeds/all.rss")
    assert (
        a.headers["last-modified"]
        == b.headers["last-modified"]
        == ("Wed, 01 Jul 2026 12:00:00 GMT")
    )
    assert changed.headers["last-modified"] == "Thu, 02 Jul 2026 12:00:00 GMT"
    assert changed.headers["etag"] != a.headers["etag"]


def test_a_reference_with_spaces_and_slashes_reaches_show_whole() -> None:
    asked: list[str] = []

    class Recording(FakeSite):
        def show(self, ref: str) -> QuestionStory:
            asked.append(ref)
            return super().show(ref)

    hit = replace(HIT, parliament="ni", uin="AQW 49327/22-27", source_id="412345")
    path = item_path(hit.uin, hit.date_tabled, hit.source_id)
    assert path == "/q/AQW%2049327/22-27"  # as written: the reference names its session
    with TestClient(create_app(Recording(_story(hit=hit)))) as c:
        assert c.get(path).status_code == 200
        assert c.get("/q/AQW 49327%2F22-27").status_code == 200
        assert c.get("/q/2024-07-01/HL1234").status_code == 200
    assert asked == ["AQW 49327/22-27", "AQW 49327/22-27", "2024-07-01/HL1234"]
    assert item_path("HL1234", date(2024, 7, 1), "1") == "/q/2024-07-01/HL1234"
    assert item_path(None, date(2024, 7, 1), "1700001") == "/q/1700001"


def test_the_watches_and_a_watch_at_a_glance(client: TestClient, svc: PQWatch) -> None:
    from pqwatch.web.charts import watch_figures

    listing = client.get("/watches")
    assert listing.status_code == 200
    slugs = {link.rsplit("/", 1)[1] for link in _links(listing.text, r"/watches/[a-z0-9-]+")}
    assert slugs == {w.slug for w in svc.watches()} == {"hospice-funding", "trade"}
    overview = svc.watch_overview("hospice-funding")
    assert overview.totals.questions > 0
    page = client.get("/watches/hospice-funding")
    assert page.status_code == 200
    text = _text(page.text)
    assert "Hospice funding" in text and f"{overview.totals.questions} item" in text
    # Each chart is a picture with its figures beside it as a table; no script anywhere.
    figures = watch_figures(overview)
    assert page.text.count('<figure class="chart"') == len(figures) == 5
    assert page.text.count('<table class="chart-data">') == sum(1 for f in figures if f.rows)
    assert page.text.count("<svg") == sum(1 for f in figures if f.rows)
    assert "<script" not in page.text
    assert "/feeds/hospice-funding.atom" in page.text
    assert "/feeds/hospice-funding.rss" in page.text
    # Recent matches link to their items' pages, which exist.
    items = _links(page.text, r"/q/[^\"]+")
    assert len(items) == len(overview.recent) > 0
    assert client.get(items[0].replace("&amp;", "&")).status_code == 200
    missing = client.get("/watches/no-such-watch")
    assert missing.status_code == 404 and "no watch" in missing.text
