"""Westminster written statements: recorded statements parse as items of their own kind, and
a poll with `statements = true` stores them, finds them with type:statement, and shows them in
digests and feeds (the API is stood in for by httpx.MockTransport over the recordings)."""

from __future__ import annotations

import email
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import feedparser
import httpx

from pqwatch.config import DatabaseConfig, load_config
from pqwatch.service import PQWatch
from pqwatch.sources.uk_parliament import UKParliamentClient, parse_statement
from tests.conftest import CliResult, require_data, rows

RECORDED = "uk_parliament/recorded_http_2021/ws_list_made_2021-02-01_take20.json"


def _statements() -> list[dict[str, Any]]:
    data = json.loads((require_data() / RECORDED).read_text(encoding="utf-8"))
    return [r["value"] for r in data["results"]]


def test_recorded_statements_parse_as_statements() -> None:
    values = _statements()
    parsed = [parse_statement(v, from_list=True) for v in values]
    assert len(parsed) == len(values) == 10
    s = next(p for p in parsed if p.uin == "HLWS747")
    assert (s.kind, s.parliament, s.house) == ("statement", "westminster", "Lords")
    assert s.heading == "The United Kingdom's Free Trade Agreements"
    assert s.answering_member is not None and s.answering_member.name == (
        "Lord Grimstone of Boscobel"
    )
    assert s.answering_body_name == "Department for International Trade"
    assert str(s.date_tabled) == "2021-02-01"
    assert not s.question_text_full  # the list cuts the text: the detail is fetched


def _api(values: list[dict[str, Any]]) -> httpx.MockTransport:
    """The statements list (filtered by madeWhen, paged) and details with full text; the
    questions list is empty."""

    def handler(request: httpx.Request) -> httpx.Response:
        path, q = request.url.path, request.url.params
        if path == "/api/writtenquestions/questions":
            return httpx.Response(200, json={"totalResults": 0, "results": []})
        if path == "/api/writtenstatements/statements":
            lo, hi = q.get("madeWhenFrom", ""), q.get("madeWhenTo", "9999")
            found = [v for v in values if lo <= v["dateMade"][:10] <= hi]
            skip, take = int(q.get("skip", 0)), int(q.get("take", 20))
            page = [{"value": v, "links": []} for v in found[skip : skip + take]]
            return httpx.Response(200, json={"totalResults": len(found), "results": page})
        sid = path.rsplit("/", 1)[-1]
        for v in values:
            if str(v["id"]) == sid:
                full = {**v, "text": "<p>" + v["text"].removesuffix("...") + " in full.</p>"}
                return httpx.Response(200, json={"value": full, "links": []})
        return httpx.Response(404, json={"status": 404, "title": "Not Found"})

    return httpx.MockTransport(handler)


def test_statements_are_polled_found_and_shown_in_digests_and_feeds(
    write_config: Callable[..., Path], cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    values = _statements()
    config = write_config(
        '[database]\nurl = "sqlite:///pqwatch.db"\n'
        "[sources.uk_parliament]\nstatements = true\nrequests_per_second = 1000\n"
        '[[watches]]\nname = "Trade"\nquery = "trade"\n'
        '[[subscribers]]\nemail = "officer@example.org"\n'
    )
    cfg = load_config(config)
    db = config.parent / "pqwatch.db"
    cfg = replace(cfg, database=DatabaseConfig(url=f"sqlite:///{db}"))
    transport = _api(values)

    def client(c: Any) -> UKParliamentClient:
        return UKParliamentClient(c.sources.uk_parliament, transport=transport)

    now = datetime(2021, 2, 2, 12, tzinfo=UTC)
    with PQWatch(cfg, now=lambda: now, client_factory=client) as svc:
        runs = svc.poll(date(2021, 2, 1), date(2021, 2, 1))
    assert [(r.source, r.ok) for r in runs] == [("uk_parliament", True), ("uk_statements", True)]
    assert rows(db, "SELECT count(*) FROM question WHERE kind = 'statement'") == [(10,)]
    assert rows(db, "SELECT question_text_full, heading FROM question WHERE uin = 'HLWS747'") == [
        (1, "The United Kingdom's Free Trade Agreements")
    ]

    found = cli("--config", config, "search", "type:statement trade", "--format", "json")
    assert found.exit_code == 0, found.stderr
    hits = json.loads(found.stdout)["hits"]
    assert "HLWS747" in [h["uin"] for h in hits]
    assert {h["kind"] for h in hits} == {"statement"}
    hit = next(h for h in hits if h["uin"] == "HLWS747")
    assert hit["url"] == (
        "https://questions-statements.parliament.uk/written-statements/detail/2021-02-01/HLWS747"
    )
    none = cli("--config", config, "search", "type:question trade", "--format", "json")
    assert json.loads(none.stdout)["hits"] == []

    out = tmp_path / "preview"
    dry = cli("--config", config, "digest", "--dry-run", "--out", str(out))
    assert dry.exit_code == 0, dry.stderr
    [eml] = out.glob("*.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=default)
    assert isinstance(msg, EmailMessage)
    assert "written statement" in msg["Subject"]
    body = msg.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "== Written statements (" in text
    assert (
        "UK Parliament (Lords), written statement · HLWS747 · made by Lord Grimstone of "
        "Boscobel · 1 Feb 2021"
    ) in text
    assert "in full." in text and "Department: Department for International Trade" in text

    feeds = cli("--config", config, "feeds")
    assert feeds.exit_code == 0, feeds.stderr
    parsed = feedparser.parse((config.parent / "feeds" / "trade.atom").read_bytes())
    titles = [e.title for e in parsed.entries]
    assert "[Statement] The United Kingdom's Free Trade Agreements (HLWS747)" in titles
    entry = next(e for e in parsed.entries if "HLWS747" in e.title)
    assert "made by Lord Grimstone of Boscobel" in entry.content[0].value
