"""Westminster written statements: recorded statements parse as items of their own kind, and
a poll with `statements = true` stores them, finds them with type:statement, and shows them in
digests and feeds (the API is stood in for by the replay server over the recordings)."""

from __future__ import annotations

import email
import json
from collections.abc import Callable
from datetime import date
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import feedparser
import httpx

from pqwatch.config import load_config
from pqwatch.service import PQWatch
from pqwatch.sources.uk_parliament import parse_statement
from pqwatch.testing.replay import ReplayServer
from tests.conftest import CliResult, api_config, fixed_clock, require_data, rows

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


def _full(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The recorded statements as the detail endpoint holds them: whole HTML text (the list
    recordings hold only the first 255 characters; the rest is stood in for)."""
    return [{**v, "text": "<p>" + v["text"].removesuffix("...") + " in full.</p>"} for v in values]


def test_statements_are_polled_found_and_shown_in_digests_and_feeds(
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
    tmp_path: Path,
) -> None:
    replay.set_items(_full(_statements()))
    config = write_config(
        api_config(
            replay.base_url,
            '[[watches]]\nname = "Trade"\nquery = "trade"\n'
            '[[subscribers]]\nemail = "officer@example.org"\n',
            statements=True,
        )
    )
    cfg = load_config(config)
    db = config.parent / "pqwatch.db"
    with PQWatch(cfg, now=fixed_clock(date(2021, 2, 2))) as svc:
        runs = svc.poll(date(2021, 2, 1), date(2021, 2, 1))
    assert [(r.source, r.ok) for r in runs] == [("uk_parliament", True), ("uk_statements", True)]
    assert rows(db, "SELECT count(*) FROM question WHERE kind = 'statement'") == [(10,)]
    assert rows(db, "SELECT question_text_full, heading, status FROM question "
                    "WHERE uin = 'HLWS747'") == [
        (1, "The United Kingdom's Free Trade Agreements", "made")
    ]  # fmt: skip
    assert rows(db, "SELECT count(*) FROM question WHERE kind = 'statement' "
                    "AND status != 'made'") == [(0,)]  # fmt: skip
    shown = cli("--config", config, "show", "hlws747")
    assert shown.exit_code == 0, shown.stderr
    assert "Made by Lord Grimstone of Boscobel on 2021-02-01" in shown.stdout
    assert "2021-02-01  made" in shown.stdout and "Not answered yet" not in shown.stdout

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


def test_the_replay_server_serves_recorded_statements_beside_questions(
    replay: ReplayServer,
) -> None:
    data = require_data() / "uk_parliament/recorded_http_2021"
    replay.load_files([data / "ws_list_made_2021-02-01_take20.json",
                       data / "wq_list_tabled_2021-02-01_askingMember4651.json"])  # fmt: skip
    assert len(replay.statements) == 10 and replay.items
    replay.set_items(_full(_statements()), replace=False)
    url = replay.base_url + "/api/writtenstatements/statements"
    page = httpx.get(url, params={"madeWhenFrom": "2021-02-01", "madeWhenTo": "2021-02-01",
                                  "take": 3, "skip": 1, "expandMember": "true"}).json()  # fmt: skip
    assert page["totalResults"] == 10 and len(page["results"]) == 3
    first = page["results"][0]["value"]
    assert first["text"].endswith("...") and "<p>" not in first["text"]
    assert first["member"]["name"]
    lords = httpx.get(url, params={"house": "Lords", "take": 50}).json()
    assert lords["totalResults"] == len(
        [v for v in replay.statements.values() if v["house"] == "Lords"]
    )
    assert httpx.get(url, params={"madeWhenFrom": "2021-02-02"}).json()["totalResults"] == 0
    detail = httpx.get(f"{url}/{first['id']}").json()["value"]
    assert detail["text"].endswith(" in full.</p>")
    assert httpx.get(f"{url}/1").status_code == 404
    # Questions are untouched by statements held beside them.
    listed = httpx.get(replay.base_url + "/api/writtenquestions/questions", params={"take": 100})
    assert listed.json()["totalResults"] == len(replay.items)
