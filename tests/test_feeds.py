"""RSS/Atom feeds: built from a real archive, read back with feedparser, served with 304s."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest

from pqwatch.service import PQWatch
from pqwatch.testing.replay import ReplayServer, load_items
from tests.conftest import CliResult, api_config, open_service, readline_within, rows

WATCHES = """
[[watches]]
name = "Hospice funding"
query = "hospice OR hospices"
[[watches]]
name = "Defence"
query = "dept:defence"
[[subscribers]]
email = "officer@example.org"
"""


def _items(data_dir: Path) -> dict[int, dict[str, Any]]:
    base = data_dir / "uk_parliament"
    items = load_items(sorted((base / "recorded_http_2021").glob("wq_list_*.json")))
    month = load_items(
        [
            base / "monthly_list_dumps" / "commons_tabled_2024-08.json.gz",
            base / "longform_detail_text" / "longform_2024-08.json.gz",
        ]
    )
    items.update(
        (i, v) for i, v in month.items() if "ospice" in f"{v['heading']} {v['questionText']}"
    )
    return items


@pytest.fixture
def archive(
    data_dir: Path, replay: ReplayServer, write_config: Callable[..., Path]
) -> Iterator[tuple[Path, ReplayServer]]:
    replay.set_items(_items(data_dir).values())
    config = write_config(api_config(replay.base_url, extra=WATCHES))
    with open_service(config, now=date(2024, 9, 10)) as svc:
        [run] = svc.poll(date(2021, 1, 1), date(2024, 9, 10))
        assert run.ok, run.error
    yield config, replay


def _parse(path: Path) -> Any:
    parsed = feedparser.parse(path.read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    return parsed


def test_every_feed_parses_and_lists_the_matched_questions(
    archive: tuple[Path, ReplayServer], cli: Callable[..., CliResult]
) -> None:
    config, replay = archive
    result = cli("--config", config, "feeds")
    assert result.exit_code == 0, result.stderr
    folder = config.parent / "feeds"
    files = sorted(p.name for p in folder.iterdir())
    assert files == [
        "all.atom", "all.rss", "defence.atom", "defence.rss", "hospice-funding.atom",
        "hospice-funding.rss", "index.html",
    ]  # fmt: skip
    db = config.parent / "pqwatch.db"
    for slug, name in (("hospice-funding", "Hospice funding"), ("defence", "Defence")):
        expected = rows(
            db,
            "SELECT e.kind, q.uin, q.date_tabled FROM watch_match m JOIN watch w "
            "ON w.id = m.watch_id JOIN event e ON e.id = m.event_id "
            "JOIN question q ON q.id = e.question_id WHERE w.name = ?",
            name,
        )
        assert expected
        for kind in ("rss", "atom"):
            feed = _parse(folder / f"{slug}.{kind}")
            assert len(feed.entries) == len(expected)
            links = {e.link for e in feed.entries}
            assert links == {
                f"https://questions-statements.parliament.uk/written-questions/detail/{d}/{u}"
                for _, u, d in expected
            }
            titles = [e.title for e in feed.entries]
            assert all(
                t.startswith(("[Answered] ", "[Tabled] ", "[Holding answer] ")) for t in titles
            )
            entry = feed.entries[0]
            assert name in {t.term for t in entry.tags}
            if slug == "defence":  # the 2021 recordings carry the askers' names
                askers = {r[0] for r in rows(db, "SELECT name FROM member WHERE name IS NOT NULL")}
                assert all(e.get("author") in askers for e in feed.entries)
    allfeed = _parse(folder / "all.rss")
    assert len({e.id for e in allfeed.entries}) == len(allfeed.entries)
    index = (folder / "index.html").read_text()
    assert 'href="./hospice-funding.rss"' in index and "Hospice funding" in index


def test_guids_are_stable_and_unchanged_feeds_are_not_rewritten(
    archive: tuple[Path, ReplayServer],
) -> None:
    config, _ = archive
    with open_service(config, now=date(2024, 9, 10)) as svc:
        first = svc.build_feeds()
        before = {p.name: p.read_bytes() for p in first.written}
        second = svc.build_feeds()
    assert first.written and not second.written
    assert len(second.unchanged) == len(first.written)
    feed = feedparser.parse(before["all.atom"])
    assert all(e.id.startswith("pqwatch:uk_parliament:") for e in feed.entries)


def test_a_correction_is_a_new_item(
    data_dir: Path, replay: ReplayServer, write_config: Callable[..., Path]
) -> None:
    month = load_items(
        [data_dir / "uk_parliament" / "monthly_list_dumps" / "commons_tabled_2023-12.json.gz"]
    )
    corrected = next(v for v in month.values() if v["answerIsCorrection"])
    original = dict(
        corrected,
        answerIsCorrection=False,
        dateAnswerCorrected=None,
        correctingMemberId=None,
        correctingMember=None,
        answerText="<p>The original answer.</p>",
    )
    watch = f'[[watches]]\nname = "This one"\nquery = "tabled:{corrected["dateTabled"][:10]}"\n'
    config = write_config(api_config(replay.base_url, extra=watch))
    day = date.fromisoformat(corrected["dateTabled"][:10])
    replay.set_items([original])
    with open_service(config, now=day + timedelta(days=40)) as svc:
        svc.poll(day, day)
        svc.build_feeds()
    folder = config.parent / "feeds"
    before = {e.id: e.title for e in _parse(folder / "this-one.rss").entries}
    replay.set_items([corrected])
    with open_service(config, now=day + timedelta(days=90)) as svc:
        svc.poll(day, day)
        svc.build_feeds()
    after = {e.id: e.title for e in _parse(folder / "this-one.rss").entries}
    assert set(before) < set(after)  # old items keep their GUIDs
    [new] = set(after) - set(before)
    assert after[new].startswith("[Corrected] ")
    assert any(t.startswith("[Answered] ") for t in after.values())
    corrected_entry = next(e for e in _parse(folder / "this-one.atom").entries if e.id == new)
    assert "Corrected answer" in corrected_entry.content[0].value


def test_control_characters_are_stripped(
    data_dir: Path, replay: ReplayServer, write_config: Callable[..., Path]
) -> None:
    value = next(iter(_items(data_dir).values()))
    dirty = dict(
        value,
        heading="Bell\x07 and\x0b tab\x1f",
        questionText="To ask\x00 about \x08backspace and \ufffe noncharacters.",
        answerText="<p>Answer with \x01 control \x1b characters.</p>",
        answerIsHolding=False,
        dateAnswered=value["dateAnswered"] or value["dateTabled"],
    )
    replay.set_items([dirty])
    config = write_config(
        api_config(replay.base_url, extra='[[watches]]\nname = "All"\nquery = "ask"\n')
    )
    day = date.fromisoformat(value["dateTabled"][:10])
    with open_service(config, now=day + timedelta(days=30)) as svc:
        svc.poll(day, day)
        svc.build_feeds()
    for kind in ("rss", "atom"):
        raw = (config.parent / "feeds" / f"all.{kind}").read_bytes()
        feed = _parse(config.parent / "feeds" / f"all.{kind}")
        assert feed.entries
        assert not any(ch in raw for ch in (b"\x07", b"\x0b", b"\x1f", b"\x00", b"\x01", b"\x1b"))
        assert "Bell and tab" in feed.entries[0].title


@pytest.fixture
def server(archive: tuple[Path, ReplayServer]) -> Iterator[tuple[str, PQWatch]]:
    config, _ = archive
    svc = open_service(config, now=date(2024, 9, 10))
    try:
        with svc.serve("127.0.0.1", 0).running() as url:
            yield url.rstrip("/"), svc
    finally:
        svc.close()


def test_serve_answers_304_to_conditional_requests(server: tuple[str, PQWatch]) -> None:
    base, _ = server
    with httpx.Client(base_url=base) as client:
        first = client.get("/feeds/hospice-funding.rss")
        assert first.status_code == 200
        assert first.headers["content-type"].startswith("application/rss+xml")
        assert not feedparser.parse(first.content).bozo
        tag, modified = first.headers["etag"], first.headers["last-modified"]
        again = client.get("/feeds/hospice-funding.rss", headers={"If-None-Match": tag})
        assert again.status_code == 304 and again.content == b""
        weak = client.get("/feeds/hospice-funding.rss", headers={"If-None-Match": f"W/{tag}"})
        assert weak.status_code == 304  # a proxy that gzips weakens the ETag
        since = client.get("/feeds/hospice-funding.rss", headers={"If-Modified-Since": modified})
        assert since.status_code == 304
        stale = client.get("/feeds/hospice-funding.rss", headers={"If-None-Match": '"other"'})
        assert stale.status_code == 200 and stale.headers["etag"] == tag
        atom = client.get("/feeds/all.atom")
        assert atom.status_code == 200 and not feedparser.parse(atom.content).bozo
        index = client.get("/feeds/")
        assert index.status_code == 200 and "/feeds/defence.atom" in index.text
        assert client.get("/feeds/no-such-watch.rss").status_code == 404


def test_one_click_unsubscribe(server: tuple[str, PQWatch]) -> None:
    base, svc = server
    db = Path(svc.db.describe())
    [(token,)] = rows(db, "SELECT token FROM subscriber")
    with httpx.Client(base_url=base) as client:
        page = client.get(f"/unsubscribe/{token}")
        assert page.status_code == 200 and '<form method="post"' in page.text
        assert rows(db, "SELECT active FROM subscriber") == [(1,)]  # a GET changes nothing
        done = client.post(f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click")
        assert done.status_code == 200 and "officer@example.org is unsubscribed" in done.text
        assert client.post("/unsubscribe/notarealtoken0000000").status_code == 404
    assert rows(db, "SELECT active, unsubscribed_at IS NOT NULL FROM subscriber") == [(0, 1)]
    assert rows(db, "SELECT count(*) FROM delivery WHERE status = 'pending'") == [(0,)]
    svc._ready = False
    svc.ensure_ready()  # the config still lists them: their choice wins
    assert rows(db, "SELECT active FROM subscriber") == [(0,)]


def test_serve_command_binds_loopback_and_stops_on_sigint(
    archive: tuple[Path, ReplayServer],
) -> None:
    config, _ = archive
    proc = subprocess.Popen(
        [sys.executable, "-m", "pqwatch", "--config", str(config), "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = readline_within(proc.stdout)
        assert line.startswith("Serving pqwatch on http://127.0.0.1:")
        url = line.split()[3] + "feeds/"
        deadline = time.monotonic() + 30
        while True:
            try:
                resp = httpx.get(url + "all.rss", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert resp.status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_a_watch_named_all_has_its_own_feed_and_every_atom_feed_has_an_author(
    data_dir: Path, replay: ReplayServer, write_config: Callable[..., Path]
) -> None:
    import xml.etree.ElementTree as ET

    replay.set_items(_items(data_dir).values())
    watches = '[[watches]]\nname = "All"\nquery = "hospices"\n' + WATCHES
    config = write_config(api_config(replay.base_url, extra=watches))
    with open_service(config, now=date(2024, 9, 10)) as svc:
        [run] = svc.poll(date(2021, 1, 1), date(2024, 9, 10))
        assert run.ok, run.error
        svc.build_feeds()
    folder = config.parent / "feeds"
    combined, own = _parse(folder / "all.atom"), _parse(folder / "watch-all.atom")
    assert combined.feed.title == "Written questions: All watches"
    assert own.feed.title == "Written questions: All"
    defence = {e.id for e in _parse(folder / "defence.atom").entries}
    assert defence and defence <= {e.id for e in combined.entries}
    assert not defence & {e.id for e in own.entries}  # the watch's feed is only its own
    index = (folder / "index.html").read_text()
    assert 'href="./all.rss"' in index and 'href="./watch-all.rss"' in index
    atom = "{http://www.w3.org/2005/Atom}"
    for path in folder.glob("*.atom"):  # RFC 4287 4.1.1
        root = ET.fromstring(path.read_bytes())
        names = [a.findtext(f"{atom}name") for a in root.findall(f"{atom}author")]
        assert names == ["pqwatch"], path.name
