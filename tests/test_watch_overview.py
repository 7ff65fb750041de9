"""A watch at a glance (issue 18, part 3): the figures of `watch_overview` on a small real
archive, checked against the raw recordings and plain SQL; the SVG charts and the Jinja macro
that puts a table beside each."""

from __future__ import annotations

import re
import statistics
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import jinja2
import pytest
from bs4 import BeautifulSoup
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pqwatch.errors import UsageError
from pqwatch.resources import templates_dir
from pqwatch.search.overview import LATENESS_BUCKETS, WatchOverview
from pqwatch.testing.replay import ReplayServer, load_items
from pqwatch.text import strip_controls
from pqwatch.web import charts
from pqwatch.web.charts import Bar, bar_chart, column_chart, watch_figures
from tests import shared_archive
from tests.conftest import api_config, open_service, require_data, rows

SVG = "{http://www.w3.org/2000/svg}"
TOPICS = re.compile(r"veteran|hospice|palliative", re.I)
VETERAN = re.compile(r"\bveterans?\b", re.I)  # what the watch's FTS5 query finds (porter)
WATCHES = """
[[watches]]
name = "Veterans"
query = "veteran"
[[watches]]
name = "Hovercraft"
query = "hovercraft"
"""
TODAY = date(2026, 7, 10)  # the period: August 2024 to July 2026


def _items(data: Path) -> dict[int, dict[str, Any]]:
    base = data / "uk_parliament"
    # 2021: members with names and parties; 2023-12 to 2024-08: monthly dumps (members by id
    # only), answered; July 2026: mostly unanswered, some holding answers.
    items = load_items(sorted((base / "recorded_http_2021").glob("wq_list_*.json")))
    for month in ("2023-12", "2024-07", "2024-08"):
        dump = load_items(
            [
                base / "monthly_list_dumps" / f"commons_tabled_{month}.json.gz",
                base / "longform_detail_text" / f"longform_{month}.json.gz",
            ]
        )
        items.update((i, v) for i, v in dump.items() if TOPICS.search(_text(v)))
    [snapshot] = (base / "list_snapshots_2026-07").glob("*_asof_2026-07-08_*.json.gz")
    july = load_items([snapshot, base / "longform_detail_text" / "longform_2026-07.json.gz"])
    items.update((i, v) for i, v in july.items() if TOPICS.search(_text(v)))
    return items


def _text(v: dict[str, Any]) -> str:
    return " ".join(v.get(k) or "" for k in ("heading", "questionText", "answerText"))


@pytest.fixture(scope="module")
def archive(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[Path, dict[int, Any]]]:
    data = require_data()
    folder = tmp_path_factory.mktemp("overview")
    items = _items(data)

    def make() -> Path:
        with ReplayServer(items.values()) as server:
            config = folder / "config.toml"
            config.write_text(api_config(server.base_url, extra=WATCHES), encoding="utf-8")
            with open_service(config, now=TODAY) as svc:
                [run] = svc.poll(date(2021, 1, 1), TODAY)
                assert run.ok, run.error
        return config

    yield shared_archive.build(request, make), items


@pytest.fixture(autouse=True)
def _reads_the_archive(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    shared_archive.reading_when_used(request, monkeypatch, "archive")


@pytest.fixture(scope="module")
def veterans(archive: tuple[Path, dict[int, Any]], request: pytest.FixtureRequest) -> WatchOverview:
    config, _ = archive
    with shared_archive.opened(request, config), open_service(config, now=TODAY) as svc:
        return svc.watch_overview("veterans")


def _db(config: Path) -> Path:
    return config.parent / "pqwatch.db"


def _period_source_ids(config: Path, slug: str, since: str, until: str) -> set[int]:
    """The questions with a matched event in the period, by plain SQL."""
    found = rows(
        _db(config),
        "SELECT DISTINCT q.source_id FROM watch_match m JOIN watch w ON w.id = m.watch_id "
        "JOIN event e ON e.id = m.event_id JOIN question q ON q.id = e.question_id "
        "WHERE w.slug = ? AND e.event_date BETWEEN ? AND ?",
        slug,
        since,
        until,
    )
    return {int(r[0]) for r in found}


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value[:10]) if value else None


# -- the figures, against the raw recordings and plain SQL ------------------------------------


def test_totals_are_the_questions_whose_text_has_the_word(
    veterans: WatchOverview, archive: tuple[Path, dict[int, Any]]
) -> None:
    config, items = archive
    expected = {i for i, v in items.items() if VETERAN.search(_text(v))}
    assert veterans.name == "Veterans" and veterans.slug == "veterans"
    assert veterans.query == "veteran"
    assert veterans.atom_path == "/feeds/veterans.atom"
    assert veterans.rss_path == "/feeds/veterans.rss"
    t = veterans.totals
    assert t.questions == len(expected) > 60
    [(events, first, last)] = rows(
        _db(config),
        "SELECT count(*), min(e.event_date), max(e.event_date) FROM watch_match m "
        "JOIN watch w ON w.id = m.watch_id JOIN event e ON e.id = m.event_id WHERE w.slug = ?",
        "veterans",
    )
    assert (t.events, t.first_match, t.last_match) == (events, _day(first), _day(last))
    assert t.first_match == date(2021, 2, 1)  # the 2021 recordings' day
    period = _period_source_ids(config, "veterans", "2024-08-01", TODAY.isoformat())
    assert t.period_questions == len(period) and period <= expected
    assert 0 < t.period_questions < t.questions


def test_the_veterans_page_in_figures(veterans: WatchOverview) -> None:
    """Counted by hand from the recordings: 92 questions mention veterans (6 tabled in
    February 2021, 32 in December 2023, 43 in July 2024, 3 in August 2024, 8 in July 2026).
    In the period (August 2024 on): the 3 of 30 August 2024 (due 3 September, answered on
    the 9th: 6 days late; two to Defence, one to the Scotland Office), 11 of July 2024
    answered from August (8 that month, 3 in September), and the 8 of July 2026, none
    answered and all past their date by 10 July."""
    t = veterans.totals
    assert (t.questions, t.period_questions, t.events) == (92, 22, 177)
    assert [
        (m.label, m.questions, m.tabled, m.answered) for m in veterans.months if m.questions
    ] == [
        ("August 2024", 11, 3, 8),
        ("September 2024", 6, 0, 6),
        ("July 2026", 8, 8, 0),
    ]
    assert [(c.label, c.count) for c in veterans.departments.top] == [
        ("Ministry of Defence", 21),
        ("Scotland Office", 1),
    ]
    late = veterans.timeliness
    assert (late.answered, late.with_due_date, late.on_time, late.late) == (14, 14, 0, 14)
    assert [b.count for b in late.buckets] == [0, 0, 9, 3, 2]
    assert (late.median_days_to_answer, late.median_days_late) == (10.0, 6.0)
    assert (late.waiting, late.overdue) == (8, 8)


def test_months_are_the_last_24_with_zeros_and_match_sql(
    veterans: WatchOverview, archive: tuple[Path, dict[int, Any]]
) -> None:
    config, _ = archive
    months = veterans.months
    assert len(months) == 24
    assert [m.month for m in months[:2]] == [date(2024, 8, 1), date(2024, 9, 1)]
    assert months[-1].month == date(2026, 7, 1) and months[-1].label == "July 2026"
    assert veterans.since == date(2024, 8, 1) and veterans.until == TODAY
    by_sql = {
        r[0]: r[1:]
        for r in rows(
            _db(config),
            "SELECT substr(CAST(e.event_date AS TEXT), 1, 7), count(DISTINCT e.question_id), "
            "sum(CASE WHEN e.kind = 'tabled' THEN 1 ELSE 0 END), "
            "sum(CASE WHEN e.kind = 'answered' THEN 1 ELSE 0 END) FROM watch_match m "
            "JOIN watch w ON w.id = m.watch_id JOIN event e ON e.id = m.event_id "
            "WHERE w.slug = 'veterans' AND e.event_date BETWEEN '2024-08-01' AND ? "
            "GROUP BY 1",
            TODAY.isoformat(),
        )
    }
    for m in months:
        assert (m.questions, m.tabled, m.answered) == by_sql.get(m.month.isoformat()[:7], (0, 0, 0))
    assert sum(1 for m in months if m.questions == 0) >= 12  # the quiet months are there
    # By hand from the recordings: the questions on veterans tabled in August 2024 and in
    # July 2026 (the 8 July snapshot) are tabled events of their month.
    _, items = archive
    for month in ("2024-08", "2026-07"):
        tabled = sum(
            1 for v in items.values() if v["dateTabled"][:7] == month and VETERAN.search(_text(v))
        )
        [m] = [m for m in months if m.month.isoformat()[:7] == month]
        assert m.tabled == tabled > 0


def test_departments_members_and_parties_count_each_question_once(
    veterans: WatchOverview, archive: tuple[Path, dict[int, Any]]
) -> None:
    config, items = archive
    period = [items[i] for i in _period_source_ids(config, "veterans", "2024-08-01", "2026-07-10")]
    bodies = Counter(v["answeringBodyName"] for v in period if v.get("answeringBodyName"))
    top = sorted(bodies.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert [(c.label, c.count) for c in veterans.departments.top] == top
    assert veterans.departments.top[0].label == "Ministry of Defence"
    assert veterans.departments.others == sum(bodies.values()) - sum(n for _, n in top)
    assert veterans.departments.other_names == max(0, len(bodies) - 10)

    askers = Counter(int(v["askingMemberId"]) for v in period if v.get("askingMemberId"))
    assert sorted(m.count for m in veterans.members.top) == sorted(
        sorted(askers.values(), reverse=True)[:10]
    )
    for m in veterans.members.top:
        assert askers[m.member_id] == m.count
        assert m.name is None and m.label == f"Member {m.member_id} (name not known)"
    assert veterans.members.unknown == len(period) - askers.total()
    # Members of these dumps come by id only: every question's party is not known.
    assert [(c.label, c.count) for c in veterans.parties.top] == [
        ("Party not known", askers.total())
    ]


def test_who_asks_with_names_and_parties(archive: tuple[Path, dict[int, Any]]) -> None:
    """In 2021 (the recordings with whole member objects), as of a day in that period."""
    config, items = archive
    with open_service(config, now=TODAY) as svc:
        ov = svc.watch_overview("veterans", today=date(2021, 3, 1))
    assert ov.since == date(2019, 4, 1)
    period = [items[i] for i in _period_source_ids(config, "veterans", "2019-04-01", "2021-03-01")]
    assert len(period) == ov.totals.period_questions > 0
    parties = Counter(v["askingMember"]["party"] for v in period)
    assert {(c.label, c.count) for c in ov.parties.top} == set(parties.items())
    names = Counter((v["askingMember"]["name"], v["askingMember"]["party"]) for v in period)
    assert {(m.name, m.party, m.count) for m in ov.members.top} <= {
        (n, p, c) for (n, p), c in names.items()
    }
    assert [m.count for m in ov.members.top] == sorted(names.values(), reverse=True)[:10]


def test_timeliness_against_the_due_date(
    veterans: WatchOverview, archive: tuple[Path, dict[int, Any]]
) -> None:
    config, items = archive
    period = [items[i] for i in _period_source_ids(config, "veterans", "2024-08-01", "2026-07-10")]
    answered = [v for v in period if v["dateAnswered"] and not v["answerIsHolding"]]
    days = [(_day(v["dateAnswered"]) - _day(v["dateTabled"])).days for v in answered]
    late = [
        (_day(v["dateAnswered"]) - _day(v["dateForAnswer"])).days
        for v in answered
        if v["dateForAnswer"]
    ]
    t = veterans.timeliness
    assert t.answered == len(answered) > 10
    assert t.with_due_date == len(late)
    assert t.median_days_to_answer == statistics.median(days)
    assert t.median_days_late == statistics.median(late)
    expected = [
        sum(1 for d in late if (lo is None or d >= lo) and (hi is None or d <= hi))
        for _, lo, hi in LATENESS_BUCKETS
    ]
    assert [b.count for b in t.buckets] == expected
    assert [b.label for b in t.buckets] == [label for label, _, _ in LATENESS_BUCKETS]
    assert t.on_time == sum(1 for d in late if d <= 0) and t.late == sum(1 for d in late if d > 0)
    assert t.on_time + t.late == t.with_due_date and sum(expected) == len(late)
    waiting = [
        v
        for v in period
        if (not v["dateAnswered"] or v["answerIsHolding"]) and not v["isWithdrawn"]
    ]
    assert t.waiting == len(waiting) > 0
    assert t.overdue == sum(1 for v in waiting if _day(v["dateForAnswer"]) < TODAY)
    assert 0 < t.overdue <= t.waiting


def test_recent_matches_are_the_newest_events(
    veterans: WatchOverview, archive: tuple[Path, dict[int, Any]]
) -> None:
    config, items = archive
    newest = rows(
        _db(config),
        "SELECT q.source_id, e.kind, e.event_date FROM watch_match m "
        "JOIN watch w ON w.id = m.watch_id JOIN event e ON e.id = m.event_id "
        "JOIN question q ON q.id = e.question_id WHERE w.slug = 'veterans' "
        "ORDER BY e.event_date DESC, e.id DESC LIMIT 20",
    )
    recent = veterans.recent
    assert len(recent) == 20
    assert [(r.source_id, r.event_kind, r.event_date.isoformat()) for r in recent] == [
        (str(s), k, d) for s, k, d in newest
    ]
    for r in recent:
        v = items[int(r.source_id)]
        assert r.heading == v["heading"] and r.uin == v["uin"]
        assert r.department == v["answeringBodyName"]
        assert r.parliament == "westminster" and r.kind == "question"
        assert r.label == "UK Parliament (Commons), written question"
        assert r.url and r.uin and r.url.endswith("/" + r.uin)


def test_recent_reaches_back_before_the_period(archive: tuple[Path, dict[int, Any]]) -> None:
    """A quiet period still lists the watch's newest matches (up to its day), from before it."""
    config, _ = archive
    with open_service(config, now=TODAY) as svc:
        ov = svc.watch_overview("veterans", today=date(2023, 11, 30))  # nothing since 2021
    assert ov.totals.period_questions == 0 and all(m.questions == 0 for m in ov.months)
    older = rows(
        _db(config),
        "SELECT q.source_id, e.kind, e.event_date FROM watch_match m "
        "JOIN watch w ON w.id = m.watch_id JOIN event e ON e.id = m.event_id "
        "JOIN question q ON q.id = e.question_id WHERE w.slug = 'veterans' "
        "AND e.event_date <= '2023-11-30' ORDER BY e.event_date DESC, e.id DESC LIMIT 20",
    )
    assert [(r.source_id, r.event_kind, r.event_date.isoformat()) for r in ov.recent] == [
        (str(s), k, d) for s, k, d in older
    ]
    assert len(ov.recent) > 5 and {r.event_date.year for r in ov.recent} == {2021}


def test_an_empty_watch_and_an_unknown_one(archive: tuple[Path, dict[int, Any]]) -> None:
    config, _ = archive
    with open_service(config, now=TODAY) as svc:
        ov = svc.watch_overview("hovercraft")
        with pytest.raises(UsageError) as caught:
            svc.watch_overview("no-such-watch")
    assert "'no-such-watch'" in str(caught.value) and "\n" not in str(caught.value)
    assert ov.totals.questions == ov.totals.events == 0 and ov.recent == ()
    assert ov.totals.first_match is None and len(ov.months) == 24
    assert ov.parties.top == ov.members.top == ov.departments.top == ()
    t = ov.timeliness
    assert (t.answered, t.with_due_date, t.waiting) == (0, 0, 0)
    assert t.median_days_to_answer is None and t.on_time_share is None
    figures = watch_figures(ov)
    assert "No matches from August 2024 to July 2026." in figures[0].svg
    assert all(f.rows == () and f.empty for f in figures[1:])
    html = _render(figures)
    soup = BeautifulSoup(html, "html.parser")
    assert len(soup.select("p.chart-empty")) == 4
    [svg] = _svgs(html)  # only the months, with its empty frame
    _well_formed(svg)


def test_a_removed_watch_is_not_shown(
    archive: tuple[Path, dict[int, Any]],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src, _ = archive
    config = shared_archive.private_copy(request, monkeypatch, src, tmp_path)
    with open_service(config, now=TODAY) as svc:  # it is there before
        assert svc.watch_overview("hovercraft").totals.questions == 0
    text = config.read_text(encoding="utf-8").replace(
        '[[watches]]\nname = "Hovercraft"\nquery = "hovercraft"\n', ""
    )
    config.write_text(text, encoding="utf-8")
    with open_service(config, now=TODAY) as svc, pytest.raises(UsageError):
        svc.watch_overview("hovercraft")


# -- the page's figures and the macro -----------------------------------------------------------


def _env() -> jinja2.Environment:
    """As the web app sets Jinja up: autoescape, strict, control characters stripped."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir() / "web"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=lambda v: strip_controls(v) if isinstance(v, str) else v,
    )


def _render(figures: tuple[charts.Figure, ...]) -> str:
    page = _env().from_string(
        '{% import "_charts.html" as charts %}{% for f in figures %}{{ charts.figure(f) }}'
        "{% endfor %}"
    )
    return page.render(figures=figures)


def _well_formed(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img" and root.get("viewBox", "").startswith("0 0 440 ")
    assert root.get("width") == "100%" and root.get("height") is None
    ids = {e.get("id") for e in root.iter() if e.get("id")}
    labelled = (root.get("aria-labelledby") or "").split()
    assert len(labelled) == 2 and set(labelled) <= ids
    assert root.find(f"{SVG}title") is not None and (root.find(f"{SVG}title").text or "")
    assert root.find(f"{SVG}desc") is not None
    assert not list(root.iter(f"{SVG}script")) and not list(root.iter(f"{SVG}style"))
    assert all(e.get("style") is None for e in root.iter())
    return root


def _svgs(html: str) -> list[str]:
    """The SVGs as the page has them (an HTML parser would lower-case viewBox)."""
    return re.findall(r"<svg\b.*?</svg>", html, re.S)


def _bars(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}rect") if e.get("class") == "bar"]


def test_the_watch_figures_render_with_their_tables(veterans: WatchOverview) -> None:
    figures = watch_figures(veterans)
    assert [f.id for f in figures] == [
        "watch-months",
        "watch-parties",
        "watch-members",
        "watch-departments",
        "watch-timeliness",
    ]
    months = _well_formed(figures[0].svg)
    assert len(_bars(months)) == 24
    tips = [g.find(f"{SVG}title").text for g in months.iter(f"{SVG}g")]
    assert tips[0] == f"August 2024: {veterans.months[0].questions} questions"
    axis = [t.text for t in months.iter(f"{SVG}text") if t.get("text-anchor") == "middle"]
    # Every third month, counted back from the newest; the year where it changes.
    assert axis == ["Oct", "2024", "Jan", "2025", "Apr", "Jul", "Oct", "Jan", "2026", "Apr", "Jul"]
    departments = _well_formed(figures[3].svg)
    assert len(_bars(departments)) == len(veterans.departments.top)
    labels = [t.text for t in departments.iter(f"{SVG}text")][::2]
    assert labels[0] == "Ministry of Defence"
    timeliness = _well_formed(figures[4].svg)
    assert len(_bars(timeliness)) == len(LATENESS_BUCKETS)

    soup = BeautifulSoup(_render(figures), "html.parser")
    shown = soup.find_all("figure", class_="chart")
    assert len(shown) == 5
    for fig, f in zip(shown, figures, strict=True):
        assert fig["id"] == f.id
        assert fig.figcaption.get_text(strip=True) == f.caption
        assert fig.find("svg")["role"] == "img"
        table = fig.find("table")
        assert table.caption.get_text(strip=True).startswith(f.caption)
        assert [th["scope"] for th in table.thead.find_all("th")] == ["col"] * len(f.columns)
        body = table.tbody.find_all("tr")
        assert len(body) == len(f.rows)
        for tr, row in zip(body, f.rows, strict=True):
            assert tr.th["scope"] == "row" and tr.th.get_text() == row[0]
            assert [td.get_text() for td in tr.find_all("td")] == list(row[1:])
    month_rows = shown[0].tbody.find_all("tr")
    assert month_rows[0].th.get_text() == "August 2024"
    assert month_rows[-1].find_all("td")[0].get_text() == f"{veterans.months[-1].questions:,}"
    departments_table = shown[3].tbody.find_all("tr")
    assert departments_table[0].th.get_text() == "Ministry of Defence"


def test_untrusted_names_are_escaped_in_chart_and_table(
    archive: tuple[Path, dict[int, Any]],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src, _ = archive
    shared_archive.private_copy(request, monkeypatch, src, tmp_path)
    hostile = '<script>alert("x")</script> & "Friends" of the Armed Forces\x1b[2J, a very long name'
    db = tmp_path / "pqwatch.db"
    rows(db, "UPDATE answering_body SET name = ? WHERE name = 'Ministry of Defence'", hostile)
    rows(db, "UPDATE member SET name = ?, party = '<b>&amp;</b>'", '<img src=x onerror="y">')
    with open_service(tmp_path / "config.toml", now=TODAY) as svc:
        ov = svc.watch_overview("veterans", today=date(2021, 3, 1))
    figures = watch_figures(ov)
    html = _render(figures)
    assert "<script" not in html and "<img" not in html and "<b>" not in html and "\x1b" not in html
    soup = BeautifulSoup(html, "html.parser")
    departments = soup.find(id="watch-departments")
    cleaned = hostile.replace("\x1b", "")
    assert departments.tbody.tr.th.get_text() == cleaned  # whole, in the table
    root = _well_formed(_svgs(html)[3])
    first = [t.text for t in root.iter(f"{SVG}text")][0]
    assert first and first.endswith("…") and cleaned.startswith(first[:-1].rstrip())
    members = soup.find(id="watch-members")
    assert members.tbody.tr.th.get_text() == '<img src=x onerror="y">'
    assert members.tbody.tr.td.get_text() == "<b>&amp;</b>"
    _well_formed(_svgs(html)[2])


# -- the chart functions ------------------------------------------------------------------------


def test_bar_chart_draws_a_bar_per_row_with_its_label_and_value() -> None:
    bars = [Bar("Labour", 12), Bar("Conservative", 7), Bar("Liberal Democrat", 0)]
    root = _well_formed(bar_chart(bars, chart_id="p", title="Parties", desc="By party"))
    assert len(_bars(root)) == 3
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert texts == ["Labour", "12", "Conservative", "7", "Liberal Democrat", "0"]
    widths = [float(b.get("width") or 0) for b in _bars(root)]
    assert widths[0] > widths[1] > widths[2] == 0
    assert abs(widths[1] / widths[0] - 7 / 12) < 0.01
    assert root.find(f"{SVG}title").text == "Parties"
    assert root.find(f"{SVG}desc").text == "By party"
    assert root.get("aria-labelledby") == "p-title p-desc"


def test_long_labels_are_cut_with_an_ellipsis() -> None:
    long = "Department for Environment, Food and Rural Affairs " * 3
    root = _well_formed(bar_chart([Bar(long, 3)], chart_id="d", title="t", desc="d"))
    label = next(root.iter(f"{SVG}text")).text or ""
    assert label.endswith("…") and len(label) < len(long) and long.startswith(label[:-1])
    tip = root.find(f"{SVG}g/{SVG}title")
    assert tip is not None and tip.text == f"{long.strip()}: 3"  # the tooltip has it whole


def test_escaping_of_labels_titles_and_ids() -> None:
    nasty = '<script>&"'
    for chart in (column_chart, bar_chart):
        svg = chart([Bar(nasty, 5, nasty)], chart_id='x"><script>', title=nasty, desc=nasty)
        assert "<script>" not in svg
        root = _well_formed(svg)
        assert root.find(f"{SVG}title").text == nasty
        assert nasty in [t.text for t in root.iter(f"{SVG}text")]
        assert all(
            re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", i)
            for i in root.get("aria-labelledby", "").split()
        )


def test_empty_charts_say_so() -> None:
    for chart in (column_chart, bar_chart):
        for bars in ([], [Bar("a", 0), Bar("b", 0)]):
            root = _well_formed(
                chart(bars, chart_id="e", title="T", desc="D", empty="Nothing yet.")
            )
            assert _bars(root) == []
            assert [t.text for t in root.iter(f"{SVG}text")] == ["Nothing yet."]


def test_column_chart_axis() -> None:
    bars = [Bar(f"Month {i}", v, f"M{i}") for i, v in enumerate([0, 3, 17, 9])]
    root = _well_formed(column_chart(bars, chart_id="m", title="T", desc="D", label_every=2))
    assert len(_bars(root)) == 4
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert texts[:5] == ["0", "5", "10", "15", "20"]  # a nice scale covering 17
    assert texts[5:] == ["M1", "M3"]  # every second bar, counted back from the last
    heights = [float(b.get("height") or 0) for b in _bars(root)]
    assert heights[0] == 0 and heights[2] == max(heights)


@pytest.mark.parametrize(
    ("top", "step", "maximum"),
    [(0, 1, 1), (1, 1, 1), (3, 1, 3), (17, 5, 20), (100, 50, 100), (999, 500, 1000)],
)
def test_nice_scale(top: int, step: int, maximum: int) -> None:
    assert charts.nice_scale(top) == (step, maximum)


def test_compact_numbers() -> None:
    assert [charts.compact(n) for n in (0, 950, 1200, 35_000, 4_000_000, 2e9, 3e15)] == [
        "0",
        "950",
        "1.2k",
        "35k",
        "4M",
        "2bn",
        "3e+15",
    ]


_labels = st.text(max_size=80)
_series = st.lists(
    st.tuples(_labels, st.one_of(st.integers(0, 10), st.integers(0, 10**30))), max_size=60
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series=_series, title=_labels, chart_id=_labels, every=st.integers(-1, 30))
def test_any_series_makes_well_formed_svg(
    series: list[tuple[str, int]], title: str, chart_id: str, every: int
) -> None:
    bars = [Bar(label, value, label[:5]) for label, value in series]
    drawn = any(v > 0 for _, v in series)
    for svg in (
        column_chart(bars, chart_id=chart_id or "c", title=title, desc=title, label_every=every),
        bar_chart(bars, chart_id=chart_id or "c", title=title, desc=title),
    ):
        root = _well_formed(svg)
        assert len(_bars(root)) == (len(bars) if drawn else 0)
        height = float(root.get("viewBox", "").split()[3])
        for rect in _bars(root):  # inside the picture
            x, y, w, h = (float(rect.get(a) or "nan") for a in ("x", "y", "width", "height"))
            assert 0 <= x and 0 <= w and x + w <= 440 and 0 <= y and 0 <= h and y + h <= height
