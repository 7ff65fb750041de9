"""FOI requests followed on WhatDoTheyKnow, end to end through the command line: a watch's
words become a search feed, a council's response lands in the archive, the next digest shows
it once in the FOI section, search and show find it, a change of state is one new event and
one new digest item, the campaign view lists each authority once, and a failing
WhatDoTheyKnow never blocks the parliaments. The site is stood in for by
pqwatch.testing.whatdotheyknow."""

from __future__ import annotations

import email
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import feedparser
import pytest

from pqwatch.testing.replay import Fault, ReplayServer
from pqwatch.testing.whatdotheyknow import WDTKServer
from pqwatch.types import add_working_days
from tests.conftest import CliResult, api_config, rows

TITLE = "Children's palliative care commissioning"
URL_TITLE = "childrens_palliative_care_commis"
RESPONSE = (
    "Dear A. Researcher,\n\nIn 2023/24 the council spent £412,000 on children's palliative "
    "care, commissioned jointly with the ICB from two local children's hospices.\n\n"
    "Information Governance Team"
)


def _site(date_form: str = "iso") -> WDTKServer:
    site = WDTKServer(date_form=date_form)
    site.add_request(
        URL_TITLE,
        TITLE,
        text="Dear Leeds City Council,\n\nPlease tell me what you commission for children's "
        "palliative care, and from whom.\n\nYours faithfully,\nA. Researcher",
        body=("leeds_city_council", "Leeds City Council"),
        user=("a_researcher", "A. Researcher"),
        at=datetime(2024, 12, 2, 10, 15, tzinfo=UTC),
    )
    site.add_response(
        URL_TITLE, RESPONSE, at=datetime(2024, 12, 20, 11, 30, tzinfo=UTC), state="successful"
    )
    return site


def _config(write_config: Callable[..., Path], replay: ReplayServer, site: WDTKServer) -> Path:
    extra = (
        "[sources.whatdotheyknow]\n"
        f'enabled = true\nbase_url = "{site.base_url}"\nrequests_per_second = 1000\n'
        "max_retries = 1\nbackoff_seconds = 0.01\n"
        '[[watches]]\nname = "Palliative care children"\nquery = "palliative care children"\n'
        '[[subscribers]]\nemail = "officer@example.org"\nfrequency = "daily"\n'
        '[email]\noutbox_dir = "outbox"\n'
    )
    return write_config(api_config(replay.base_url, extra))


def _digests(outbox: Path, seen: set[Path]) -> list[str]:
    """The plain-text bodies of the digests written since `seen`."""
    texts = []
    for path in sorted(outbox.glob("*.eml")):
        if path in seen:
            continue
        seen.add(path)
        msg = email.message_from_bytes(path.read_bytes(), policy=default)
        assert isinstance(msg, EmailMessage)
        body = msg.get_body(("plain",))
        assert body is not None
        texts.append(body.get_content())
    return texts


def test_a_councils_response_goes_from_the_feed_to_digest_search_show_and_feeds(
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    with _site() as site:
        config = _config(write_config, replay, site)
        db = config.parent / "pqwatch.db"
        first = cli("--config", config, "poll")
        assert first.exit_code == 0, first.stderr
        # The watch's words were searched for on the site.
        assert any(p == "/feed/search/palliative care children.json" for p, _, _ in site.requests)
        assert rows(
            db, "SELECT kind, parliament, uin, status, date_tabled, date_for_answer "
                "FROM question WHERE source = 'whatdotheyknow'"
        ) == [("foi", "foi", URL_TITLE, "successful", "2024-12-02",
               add_working_days(date(2024, 12, 2), 20).isoformat())]  # fmt: skip
        [(answer,)] = rows(db, "SELECT answer_text FROM answer a JOIN question q "
                               "ON q.id = a.question_id WHERE q.uin = ?", URL_TITLE)  # fmt: skip
        assert "£412,000" in answer

        outbox = config.parent / "outbox"
        seen: set[Path] = set()
        sent = cli("--config", config, "digest")
        assert sent.exit_code == 0, sent.stderr
        [text] = _digests(outbox, seen)
        assert "== FOI responses and state changes (1) ==" in text
        assert text.count(TITLE) == 1
        assert "To: Leeds City Council" in text and "State: Successful" in text
        assert "by A. Researcher · sent 2 Dec 2024" in text
        assert f"https://www.whatdotheyknow.com/request/{URL_TITLE}" in text
        assert "£412,000" in text

        found = cli("--config", config, "search", "type:foi palliative", "--format", "json")
        assert found.exit_code == 0, found.stderr
        [hit] = json.loads(found.stdout)["hits"]
        assert (hit["kind"], hit["uin"], hit["status"]) == ("foi", URL_TITLE, "successful")
        none = cli("--config", config, "search", "type:question palliative", "--format", "json")
        assert json.loads(none.stdout)["hits"] == []
        by_authority = cli("--config", config, "search", 'authority:"leeds city" palliative',
                           "--format", "json")  # fmt: skip
        assert [h["uin"] for h in json.loads(by_authority.stdout)["hits"]] == [URL_TITLE]

        shown = cli("--config", config, "show", URL_TITLE)
        assert shown.exit_code == 0, shown.stderr
        assert "Requested by A. Researcher from Leeds City Council" in shown.stdout
        assert "state: Successful" in shown.stdout and "£412,000" in shown.stdout

        # The requester says the information is not held after all: one new event, one
        # new digest item.
        site.change_state(URL_TITLE, "not_held")
        again = cli("--config", config, "poll")
        assert again.exit_code == 0, again.stderr
        events = rows(
            db,
            "SELECT e.kind, e.detail_json FROM event e JOIN question q "
            "ON q.id = e.question_id WHERE q.uin = ? ORDER BY e.id",
            URL_TITLE,
        )
        assert [k for k, _ in events] == ["tabled", "answered", "state"]
        assert json.loads(events[-1][1]) == {"from": "successful", "to": "not_held"}
        assert cli("--config", config, "digest").exit_code == 0
        [later] = _digests(outbox, seen)
        assert later.count(TITLE) == 1
        assert "State: Information not held (changed)" in later

        # Nothing new: a third poll adds no event, and no digest item.
        assert cli("--config", config, "poll").exit_code == 0
        assert len(rows(db, "SELECT id FROM event")) == 3

        assert cli("--config", config, "feeds").exit_code == 0
        parsed = feedparser.parse((config.parent / "feeds" / "palliative-care-children.atom")
                                  .read_bytes())  # fmt: skip
        titles = [e.title for e in parsed.entries]
        assert f"[FOI response] {TITLE} (Leeds City Council)" in titles
        assert f"[FOI: Information not held] {TITLE} (Leeds City Council)" in titles


def test_the_2010_date_form_parses_like_the_iso_one(
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    with _site(date_form="2010") as site:
        config = _config(write_config, replay, site)
        result = cli("--config", config, "poll")
    assert result.exit_code == 0, result.stderr
    assert rows(config.parent / "pqwatch.db",
                "SELECT date_tabled, date_answered, status FROM question") == [
        ("2024-12-02", "2024-12-20", "successful")
    ]  # fmt: skip


def test_the_campaign_view_lists_each_authority_once_with_its_state(
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    today = datetime.now(UTC)
    with _site() as site:
        # The same request to two more authorities: one refused, one not answered for months.
        for url_title, body, days in (
            ("palliative_care_children_york", ("york_council", "York Council"), 20),
            ("palliative_care_children_hull", ("hull_city_council", "Hull City Council"), 120),
        ):
            site.add_request(url_title, TITLE, body=body, at=today - timedelta(days=days))
        site.add_response("palliative_care_children_york", "We refuse.", state="rejected",
                          at=today - timedelta(days=2))  # fmt: skip
        # A second request to Leeds, older: Leeds is still one row.
        site.add_request("palliative_care_children_leeds_2", TITLE,
                         body=("leeds_city_council", "Leeds City Council"),
                         at=datetime(2024, 11, 1, 9, tzinfo=UTC))  # fmt: skip
        config = _config(write_config, replay, site)
        assert cli("--config", config, "poll").exit_code == 0
    result = cli("--config", config, "foi", "campaign", "palliative", "--format", "json")
    assert result.exit_code == 0, result.stderr
    by_authority = {r["authority"]: r for r in json.loads(result.stdout)}
    assert sorted(by_authority) == ["Hull City Council", "Leeds City Council", "York Council"]
    assert by_authority["Leeds City Council"]["state"] == "successful"
    assert by_authority["Leeds City Council"]["requests"] == 2
    assert by_authority["York Council"]["state"] == "rejected"
    assert by_authority["York Council"]["last_response"] is not None
    hull = by_authority["Hull City Council"]
    assert (hull["state"], hull["overdue"], hull["last_response"]) == (
        "waiting_response",
        "long overdue",
        None,
    )
    table = cli("--config", config, "foi", "campaign", "palliative")
    assert table.exit_code == 0, table.stderr
    assert "3 authorities; 2 responded; 1 overdue" in table.stdout
    csv_out = cli("--config", config, "foi", "campaign", "palliative", "--format", "csv")
    assert csv_out.stdout.splitlines()[0].startswith("authority,state,state_label,sent")
    assert len(csv_out.stdout.splitlines()) == 4


@pytest.mark.parametrize("fault", ["status", "html"])
def test_a_failing_whatdotheyknow_is_one_line_and_never_blocks_the_parliaments(
    fault: str,
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
    data_dir: Path,
) -> None:
    recorded = "uk_parliament/recorded_http_2021/wq_list_tabled_2021-02-01_askingMember4651.json"
    replay.load_files([data_dir / recorded])
    with _site() as site:
        config = _config(write_config, replay, site)
        db = config.parent / "pqwatch.db"
        assert cli("--config", config, "poll", "--since", "2021-02-01").exit_code == 0
        stored = rows(db, "SELECT count(*) FROM question WHERE source = 'whatdotheyknow'")
        state = rows(db, "SELECT state_json FROM source_state WHERE source = 'whatdotheyknow'")
        if fault == "status":
            site.fail_with = 503
        else:
            site.body = b"<html><body>Sorry, something went wrong</body></html>"
        site.change_state(URL_TITLE, "not_held")  # news it cannot deliver
        result = cli("--config", config, "poll")
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if "whatdotheyknow" in ln]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert rows(db, "SELECT count(*) FROM question WHERE source = 'whatdotheyknow'") == stored
    assert rows(db, "SELECT state_json FROM source_state WHERE source = 'whatdotheyknow'") == state
    assert rows(db, "SELECT consecutive_failures FROM source_state "
                    "WHERE source = 'uk_parliament'") == [(0,)]  # fmt: skip


def test_westminster_failing_does_not_stop_foi(
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    replay.add_fault(Fault("status", status=503, times=100))
    with _site() as site:
        config = _config(write_config, replay, site)
        result = cli("--config", config, "poll")
    assert result.exit_code == 1
    assert rows(config.parent / "pqwatch.db",
                "SELECT count(*) FROM question WHERE kind = 'foi'") == [(1,)]  # fmt: skip
