"""Items the recordings never held: attachments, hostile text, members that disagree, a detail
endpoint that fails for a while. Each goes through the whole product (poll, show, search,
digest, feed) as a user would run it, against the local replay server."""

from __future__ import annotations

import email
import email.policy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import feedparser

from pqwatch.testing.replay import Fault, ReplayServer, load_items
from tests.conftest import CliResult, api_config, rows

# What must never reach a terminal: C0 controls but tab and newline, DEL, C1 controls.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
WINDOW = ("--since", "2024-08-01", "--until", "2024-08-31")
WATCH = """
[[watches]]
name = "Hospices"
query = "hospice"
[[subscribers]]
email = "officer@example.org"
name = "Policy officer"
send_empty = true
[feeds]
out_dir = "feeds"
[email]
outbox_dir = "outbox"
operator = "ops@example.org"
"""


def _items(data_dir: Path) -> list[dict[str, Any]]:
    base = data_dir / "uk_parliament"
    return list(
        load_items(
            [
                base / "monthly_list_dumps" / "commons_tabled_2024-08.json.gz",
                base / "longform_detail_text" / "longform_2024-08.json.gz",
            ]
        ).values()
    )


def _answered(data_dir: Path, n: int = 3) -> list[dict[str, Any]]:
    """A few real answered questions, with long answers (the list cuts them)."""
    picked = [
        v
        for v in _items(data_dir)
        if v.get("answerText") and len(v["answerText"]) > 400 and v.get("dateAnswered")
    ]
    assert len(picked) >= n
    return [dict(v) for v in picked[:n]]


def _hospice(item: dict[str, Any], heading: str = "Hospices: Children") -> dict[str, Any]:
    """The item, made to match the watch "hospice"."""
    return {
        **item,
        "heading": heading,
        "questionText": "To ask about hospice care. " + item["questionText"],
    }


def _db(config: Path) -> Path:
    return config.parent / "pqwatch.db"


def _eml_text(folder: Path) -> list[str]:
    """Plain-text parts of every .eml in a folder, as a mail client would decode them."""
    out = []
    for path in sorted(folder.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        part = msg.get_body(("plain",))
        assert part is not None
        out.append(part.get_content())
    return out


def test_an_answer_with_attachments_polls_shows_mails_and_is_in_the_feeds(
    data_dir: Path,
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    item = _hospice(_answered(data_dir, 1)[0])
    item["attachments"] = [
        {
            "url": "https://qna.files.parliament.uk/qna-attachments/1/original/Hospices.xlsx",
            "title": "Hospice funding by ICB",
            "fileType": "Excel Spreadsheet",
            "fileSizeBytes": 18432,
        },
        {"url": "javascript:alert(1)", "title": "not a link we keep"},
        {"title": "no url at all"},
    ]
    item["attachmentCount"] = 3
    replay.set_items([item])
    config = write_config(api_config(replay.base_url, extra=WATCH))

    polled = cli("--config", config, "poll", *WINDOW)
    assert polled.exit_code == 0, polled.stderr
    assert "1 new answers" in polled.stdout

    shown = cli("--config", config, "show", str(item["id"]))
    assert shown.exit_code == 0, shown.stderr
    assert "Attachments:" in shown.stdout
    assert (
        "Hospice funding by ICB (Excel Spreadsheet, 18 KB): "
        "https://qna.files.parliament.uk/qna-attachments/1/original/Hospices.xlsx"
    ) in shown.stdout
    assert "javascript:" not in shown.stdout

    as_json = json.loads(
        cli("--config", config, "show", str(item["id"]), "--format", "json").stdout
    )
    assert as_json["attachments"] == [
        {
            "url": "https://qna.files.parliament.uk/qna-attachments/1/original/Hospices.xlsx",
            "title": "Hospice funding by ICB",
            "file_type": "Excel Spreadsheet",
            "file_size_bytes": 18432,
        }
    ]

    sent = cli("--config", config, "digest")
    assert sent.exit_code == 0, sent.stderr
    [text] = _eml_text(config.parent / "outbox")
    assert "Hospice funding by ICB (Excel Spreadsheet, 18 KB): https://qna.files" in text
    html = next((config.parent / "outbox").glob("*.eml")).read_bytes()
    msg = email.message_from_bytes(html, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    body = msg.get_body(("html",))
    assert body is not None
    assert 'href="https://qna.files.parliament.uk/qna-attachments/1/original/Hospices.xlsx"' in (
        body.get_content()
    )

    built = cli("--config", config, "feeds")
    assert built.exit_code == 0, built.stderr
    feed = feedparser.parse((config.parent / "feeds" / "hospices.atom").read_bytes())
    assert not feed.bozo
    [entry] = [e for e in feed.entries if e.title.startswith("[Answered]")]
    assert "Hospices.xlsx" in entry.content[0].value


def test_a_hostile_item_never_puts_a_control_character_on_the_terminal(
    data_dir: Path,
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    evil = "\x1b]0;pwned\x07\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\\x1b[2J\r\x08\x00\x9b31m"
    base = _answered(data_dir, 1)[0]
    item = _hospice(base, heading=f"Hospices{evil}: Children")
    item["questionText"] = f"To ask about hospice{evil} care.\r\nSecond line."
    item["answerText"] = f"<p>Hospice funding{evil} rose.</p><p>More\x1b[31m text.</p>"
    item["askingMember"] = {**(item.get("askingMember") or {}), "name": f"Jane{evil} Smith"}
    if item.get("askingMemberId") is not None:
        item["askingMember"]["id"] = item["askingMemberId"]
    replay.set_items([item])
    config = write_config(api_config(replay.base_url, extra=WATCH))

    outputs = [
        cli("--config", config, "poll", *WINDOW),
        cli("--config", config, "search", "hospice"),
        cli("--config", config, "search", "hospice", "--format", "csv"),
        cli("--config", config, "search", "hospice", "--format", "json"),
        cli("--config", config, "show", str(item["id"])),
        cli("--config", config, "show", str(item["id"]), "--format", "json"),
        cli("--config", config, "watches", "preview", "hospice"),
        cli("--config", config, "digest"),
    ]
    for out in outputs:
        assert out.exit_code == 0, out.stderr
        for stream in (out.stdout, out.stderr):
            assert not CONTROL.search(stream), repr(CONTROL.findall(stream))
    assert "pwned" in outputs[4].stdout  # the text is kept, only the controls are gone
    # Stored clean, so the index, mail and feeds never see the controls either.
    for table, column in (("question", "heading"), ("question", "question_text"),
                          ("answer", "answer_text"), ("answer", "answer_html"),
                          ("member", "name")):  # fmt: skip
        for (value,) in rows(_db(config), f"SELECT {column} FROM {table}"):
            assert value is None or not CONTROL.search(value), (table, column, value)
    [text] = _eml_text(config.parent / "outbox")
    assert not CONTROL.search(text.replace("\r", ""))


def test_members_that_disagree_store_the_question_and_say_so(
    data_dir: Path,
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    good, odd = _answered(data_dir, 2)
    odd = dict(odd, askingMemberId=4242)
    odd["askingMember"] = {"id": 5151, "name": "Someone Else", "party": "Independent"}
    replay.set_items([good, odd])
    config = write_config(api_config(replay.base_url))

    first = cli("--config", config, "poll", *WINDOW)
    assert first.exit_code == 0, first.stderr
    assert (
        f"stored with a problem: question {odd['id']}: askingMember.id 5151 differs from "
        "askingMemberId 4242"
    ) in first.stdout
    assert rows(_db(config), "SELECT count(*) FROM question") == [(2,)]
    assert rows(
        _db(config), "SELECT asking_member_id FROM question WHERE source_id = ?", str(odd["id"])
    ) == [(4242,)]
    assert rows(_db(config), "SELECT name FROM member WHERE id = 5151") == []
    again = cli("--config", config, "poll", *WINDOW)
    assert again.exit_code == 0, again.stderr


def test_an_answer_cut_by_a_failing_detail_request_is_fetched_again_until_whole(
    data_dir: Path,
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    first, second = _answered(data_dir, 2)
    replay.set_items([first, second])
    config = write_config(api_config(replay.base_url))
    db = _db(config)

    def stored(item: dict[str, Any]) -> tuple[Any, ...]:
        """Whether its text is pending, and its latest answer's: whole, its length, and how
        many answers it has."""
        found = rows(
            db,
            "SELECT q.detail_pending, a.is_full_text, length(a.answer_text) "
            "FROM question q JOIN answer a ON a.question_id = q.id WHERE q.source_id = ? "
            "ORDER BY a.version DESC",
            str(item["id"]),
        )
        return (*found[0], len(found))

    # The detail endpoint answers 404 (for a while) for every question of this poll.
    replay.add_fault(Fault("status", status=404, match="detail", times=1000))
    cut = cli("--config", config, "poll", *WINDOW)
    assert cut.exit_code == 0, cut.stderr
    assert stored(first)[:2] == (1, 0)  # kept from the list: pending, not full

    # A re-poll of the same month repairs it once the endpoint works again.
    replay.clear_faults()
    again = cli("--config", config, "poll", *WINDOW)
    assert again.exit_code == 0, again.stderr
    pending, full, length, versions = stored(first)
    assert (pending, full, versions) == (0, 1, 1)  # the same version, completed
    assert length > 300
    assert rows(db, "SELECT count(*) FROM event WHERE kind = 'answered'") == [(2,)]

    # A question no poll window lists any more is fetched again by id.
    rows(db, "UPDATE question SET detail_pending = TRUE WHERE source_id = ?", str(second["id"]))
    rows(
        db,
        "UPDATE answer SET is_full_text = FALSE WHERE question_id = "
        "(SELECT id FROM question WHERE source_id = ?)",
        str(second["id"]),
    )
    later = cli("--config", config, "poll", "--since", "2024-09-20", "--until", "2024-09-21")
    assert later.exit_code == 0, later.stderr
    assert stored(second)[:2] == (0, 1)
    detail = [r.path for r in replay.requests if r.endpoint == "detail"]
    assert detail[-1].endswith(f"/{second['id']}")


def test_a_huge_answer_is_cut_at_a_paragraph_in_mail_and_feeds(
    data_dir: Path,
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    item = _hospice(_answered(data_dir, 1)[0])
    rows_html = "".join(f"<tr><td>ICB {i}</td><td>£{i},000</td></tr>" for i in range(3000))
    paragraphs = "".join(
        f"<p>Paragraph {i} of the hospice answer. {'Words ' * 60}</p>" for i in range(12500)
    )
    item["answerText"] = f"<p>First paragraph.</p><table>{rows_html}</table>{paragraphs}"
    assert len(item["answerText"]) > 5_000_000
    replay.set_items([item])
    config = write_config(api_config(replay.base_url, extra=WATCH))
    assert cli("--config", config, "poll", *WINDOW).exit_code == 0
    # The archive keeps it whole.
    [(length,)] = rows(_db(config), "SELECT length(answer_text) FROM answer")
    assert length > 4_000_000

    sent = cli("--config", config, "digest")
    assert sent.exit_code == 0, sent.stderr
    [eml] = (config.parent / "outbox").glob("*.eml")
    assert eml.stat().st_size < 300_000  # it was 12.5 MB
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "First paragraph." in text and "Paragraph 12499" not in text
    assert "This answer is too long for an email: it continues on the official page, https://" in (
        text
    )
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "too long for an email" in html and html.count("<table") == html.count("</table>")
    assert "Paragraph 12499" not in html

    assert cli("--config", config, "feeds").exit_code == 0
    feed = config.parent / "feeds" / "hospices.rss"
    assert feed.stat().st_size < 400_000
    parsed = feedparser.parse(feed.read_bytes())
    assert not parsed.bozo
    assert "too long to show here" in parsed.entries[0].description


def test_control_characters_stored_by_an_older_version_never_reach_a_digest(
    data_dir: Path,
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    replay.set_items([_hospice(_answered(data_dir, 1)[0])])
    config = write_config(api_config(replay.base_url, extra=WATCH))
    assert cli("--config", config, "poll", *WINDOW).exit_code == 0
    # As an archive from before the cleaning.
    rows(_db(config), "UPDATE question SET heading = ?", "Hospices\x1b]0;pwned\x07: Children")
    rows(_db(config), "UPDATE answer SET answer_text = answer_text || ?", "\x1b[2J\x9b31m")
    assert cli("--config", config, "digest").exit_code == 0
    [text] = _eml_text(config.parent / "outbox")
    assert "Hospices]0;pwned: Children" in text
    assert not CONTROL.search(text.replace("\r", ""))
    shown = cli("--config", config, "show", str(_answered(data_dir, 1)[0]["id"]))
    assert not CONTROL.search(shown.stdout) and "pwned" in shown.stdout


def test_show_mentions_a_holding_answer_given_before_the_archive_saw_the_question(
    data_dir: Path,
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    item = _answered(data_dir, 1)[0]
    item["dateHoldingAnswer"] = "2024-08-05T00:00:00"
    replay.set_items([item])
    config = write_config(api_config(replay.base_url))
    assert cli("--config", config, "poll", *WINDOW).exit_code == 0
    shown = cli("--config", config, "show", str(item["id"]))
    assert shown.exit_code == 0, shown.stderr
    assert (
        "Holding answer given 2024-08-05 (before the archive saw this question: its text is "
        "not archived)"
    ) in shown.stdout
    as_json = json.loads(
        cli("--config", config, "show", str(item["id"]), "--format", "json").stdout
    )
    assert as_json["date_holding_answer"] == "2024-08-05"


def test_a_failing_refetch_of_incomplete_questions_does_not_fail_the_poll(
    data_dir: Path,
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    item = _answered(data_dir, 1)[0]
    replay.set_items([item])
    config = write_config(api_config(replay.base_url))
    assert cli("--config", config, "poll", *WINDOW).exit_code == 0
    # Stored without its full text, as after a 404.
    rows(_db(config), "UPDATE question SET detail_pending = TRUE")
    replay.add_fault(Fault("status", status=503, match="detail", times=1000))
    # A window after the stored one, that no longer lists the question.
    later = cli("--config", config, "poll", "--since", "2024-08-31", "--until", "2024-09-21")
    assert later.exit_code == 0, later.stderr
    assert "stored with a problem: fetching incomplete questions again: GET" in later.stdout
    assert rows(_db(config), "SELECT cursor_date FROM source_state") == [("2024-09-21",)]
    assert rows(_db(config), "SELECT detail_pending FROM question") == [(1,)]  # next time
