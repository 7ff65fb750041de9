"""Digests end to end: a small archive built from real recordings through the replay server,
`pqwatch digest` as a user runs it, and a real SMTP server (aiosmtpd on 127.0.0.1) that
receives the mail. Assertions are about what people see: the message received, its parts and
headers, the rows stored, the exit code and the one line on stderr."""

from __future__ import annotations

import copy
import email
import re
import smtplib
from collections.abc import Callable
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.policy import default
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from bs4 import BeautifulSoup
from bs4.element import Tag

from pqwatch.testing.replay import Fault, ReplayServer, load_items
from tests.conftest import CliResult, api_config, rows
from tests.smtp_server import MailServer, Received

# Real recorded questions used below (ids are the API's).
MENTAL_HEALTH = 1676309  # 2023-12, Commons 5869, answered 12 Dec 2023 with a table
ADDICTIONS = 1282172  # 2021 recording with members: Dan Carden asks, Johnny Mercer answers
PHARMACY = 1675274  # 2023-12, Commons 5132, answer corrected on 21 Dec 2023
MATERNITY = 1923252  # 2026-07-08 snapshot, Commons 15256, holding answer of 7 Jul 2026
PALLIATIVE = 1924272  # 2026-07-08 snapshot, Commons 16102, tabled 6 Jul 2026, unanswered
SEVERANCE = (1677745, 1677747)  # 2023-12, Commons 6773 and 6774, answered together

LONDON = ZoneInfo("Europe/London")
SEPARATOR = "-" * 70
OFFICIAL = "https://questions-statements.parliament.uk/written-questions/detail/{date}/{uin}"
SECTION_TITLES = {
    "answered": "New answers",
    "corrected": "Corrected answers",
    "holding": "Holding answers",
    "tabled": "Newly tabled questions (awaiting answer)",
}


# -- real recordings ------------------------------------------------------------------------


@cache
def _recordings(data_dir: Path, which: str) -> dict[int, dict[str, Any]]:
    base = data_dir / "uk_parliament"
    if which == "2021":
        return load_items(sorted((base / "recorded_http_2021").glob("wq_list_*.json")))
    if which == "2026-07-08":
        [snapshot] = (base / "list_snapshots_2026-07").glob("*_asof_2026-07-08_*.json.gz")
        return load_items([snapshot, base / "longform_detail_text" / "longform_2026-07.json.gz"])
    return load_items(
        [
            base / "monthly_list_dumps" / f"commons_tabled_{which}.json.gz",
            base / "longform_detail_text" / f"longform_{which}.json.gz",
        ]
    )


def _source(data_dir: Path, qid: int) -> dict[str, Any]:
    """One recorded question (a private copy), from whichever recording holds it."""
    for which in ("2023-12", "2026-07-08", "2021"):
        found = _recordings(data_dir, which).get(qid)
        if found is not None:
            return copy.deepcopy(found)
    raise KeyError(qid)


def _uncorrected(corrected: dict[str, Any]) -> dict[str, Any]:
    """The corrected item as it was before the correction: two phrases of the answer differ."""
    answer = corrected["answerText"]
    assert "prior to the 2017 reforms" in answer and "are outside of" in answer
    return dict(
        corrected,
        answerIsCorrection=False,
        dateAnswerCorrected=None,
        correctingMemberId=None,
        correctingMember=None,
        answerText=answer.replace("2017 reforms", "2019 reforms").replace(
            "are outside of", "fall within"
        ),
    )


# -- config, archive, CLI -------------------------------------------------------------------

OPERATOR = "operator@pq.example.org"
SITE = "https://pq.example.org"


def _email_section(smtp: MailServer | None) -> str:
    text = f'[email]\nfrom = "pqwatch <digest@pq.example.org>"\noperator = "{OPERATOR}"\n'
    if smtp is not None:
        text += (
            f'smtp_host = "127.0.0.1"\nsmtp_port = {smtp.port}\nsecurity = "none"\n'
            "timeout_seconds = 5\n"
        )
    return text


def _watches(**queries: str) -> str:
    return "".join(
        f"[[watches]]\nname = {name!r}\nquery = {query!r}\n" for name, query in queries.items()
    )


def _subscriber(email_: str, name: str = "", watches: list[str] | None = None, **more: Any) -> str:
    text = f'[[subscribers]]\nemail = "{email_}"\nname = "{name}"\n'
    if watches is not None:
        text += "watches = [" + ", ".join(f'"{w}"' for w in watches) + "]\n"
    for key, value in more.items():
        text += f"{key} = {str(value).lower() if isinstance(value, bool) else repr(value)}\n"
    return text


def _config_text(
    replay: ReplayServer, smtp: MailServer | None, body: str, *, site_url: bool = True
) -> str:
    feeds = f'[feeds]\nsite_url = "{SITE}"\n' if site_url else ""
    return api_config(replay.base_url, extra=body + _email_section(smtp) + feeds)


def _poll(cli: Callable[..., CliResult], config: Path) -> None:
    result = cli("--config", config, "poll", "--since", "2021-01-01", "--until", "2026-07-31")
    assert result.exit_code == 0, result.stderr


def _digest(cli: Callable[..., CliResult], config: Path, *args: str) -> CliResult:
    return cli("--config", config, "digest", *args)


def _db(config: Path) -> Path:
    return config.parent / "pqwatch.db"


def _utc(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _day(value: date | datetime | str) -> str:
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    return f"{value.day} {value:%b %Y}"


def _period(db: Path, message_id: str) -> str:
    [(start, end)] = rows(
        db, "SELECT period_start, period_end FROM digest WHERE message_id = ?", message_id
    )
    s, e = _utc(start).astimezone(LONDON), _utc(end).astimezone(LONDON)
    return _day(e) if s.date() == e.date() else f"{_day(s)} to {_day(e)}"


def _last_updated(db: Path) -> str:
    [(last,)] = rows(db, "SELECT last_success_at FROM source_state")
    local = _utc(last).astimezone(LONDON)
    return f"Archive last updated successfully {_day(local)} at {local:%H:%M} (Europe/London)."


def _deliveries(db: Path, address: str) -> list[tuple[Any, ...]]:
    return rows(
        db,
        "SELECT d.status, d.server_reply, g.message_id, g.status FROM delivery d "
        "JOIN subscriber s ON s.id = d.subscriber_id LEFT JOIN digest g ON g.id = d.digest_id "
        "WHERE s.email = ? ORDER BY d.id",
        address,
    )


def _answer_text(db: Path, qid: int) -> str:
    [(text,)] = rows(
        db,
        "SELECT a.answer_text FROM answer a JOIN question q ON q.id = a.question_id "
        "WHERE q.source_id = ? ORDER BY a.version DESC LIMIT 1",
        str(qid),
    )
    return str(text)


# -- reading a received digest --------------------------------------------------------------


def _parts(message: EmailMessage) -> tuple[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    # Line ends are CRLF on the wire; compare text as the reader sees it.
    text, html = (str(p.get_content()).replace("\r\n", "\n") for p in parts)
    return text, html


def _text_items(text: str, section: str) -> list[str]:
    """The item blocks of one section of the plain-text part."""
    title = SECTION_TITLES[section]
    head = re.search(rf"^== {re.escape(title)} \((\d+)\) ==$", text, re.M)
    assert head, f"no section {title!r} in:\n{text}"
    rest = text[head.end() :]
    nxt = re.search(r"^== ", rest, re.M)
    blocks = [b.strip("\n") for b in (rest[: nxt.start()] if nxt else rest).split(SEPARATOR)]
    items = blocks[:-1]  # what follows the last separator is the next section or the footer
    assert len(items) == int(head.group(1))
    return items


@cache
def _soup(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "html.parser")


def _html_items(html: str, section: str) -> list[Tag]:
    """The item boxes of one section of the HTML part."""
    h2 = _soup(html).find("h2", id=section)
    assert isinstance(h2, Tag), f"no section {section!r}"
    items: list[Tag] = []
    for sibling in h2.find_next_siblings():
        if sibling.name != "div":
            break
        items.append(sibling)
    assert h2.get_text() == f"{SECTION_TITLES[section]} ({len(items)})"
    return items


def _words(tag: Tag) -> str:
    """A tag's text as a browser shows it: runs of white space are one space."""
    return " ".join(tag.get_text().split())


def _sections(text: str) -> list[str]:
    return re.findall(r"^== (.+) \(\d+\) ==$", text, re.M)


def _headings(text: str) -> list[str]:
    """The heading of every item of the plain-text part, in order."""
    keys = {title: key for key, title in SECTION_TITLES.items()}
    return [
        block.split("\n")[0]
        for title in _sections(text)
        for block in _text_items(text, keys[title])
    ]


def _question_lines(v: dict[str, Any], asker: str = "Unknown member", due: bool = False) -> str:
    """How the plain text shows one question: who, when, the full text and the link. (Only
    the 2021 recordings carry the asking member's details; the others show no name.)"""
    where = f"UK Parliament ({v['house']}), written question"
    line = f"{where} · {v['uin']} · asked by {asker} · tabled {_day(v['dateTabled'])}"
    if due:
        line += f" · due for answer {_day(v['dateForAnswer'])}"
    url = OFFICIAL.format(date=v["dateTabled"][:10], uin=v["uin"])
    return f"{line}\n{v['questionText']}\n{url}"


def _html_question(item: Tag, v: dict[str, Any]) -> None:
    """The HTML item names the question (house, UIN) and links to its official page."""
    url = OFFICIAL.format(date=v["dateTabled"][:10], uin=v["uin"])
    where = f"UK Parliament ({v['house']}), written question · {v['uin']}"
    assert where in [s.get_text() for s in item.find_all("strong")]
    assert url in [a.get("href") for a in item.find_all("a")]
    assert v["questionText"] in item.get_text()


def _one_message(smtp: MailServer, to: str) -> Received:
    found = [r for r in smtp.received if r.rcpt_tos == [to]]
    assert len(found) == 1, [r.rcpt_tos for r in smtp.received]
    return found[0]


def _one_line_error(result: CliResult) -> str:
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# -- 1. each section's contents --------------------------------------------------------------


OFFICER_WATCHES = _watches(
    **{
        "Armed forces": "addictions",
        "Children's mental health": '"mental health" children',
        "Children's palliative care": "palliative care children",
        "Maternity": "maternity",
        "Pharmacy students": "pharmacy",
    }
)


def test_each_section_shows_the_whole_item(
    data_dir: Path,
    replay: ReplayServer,
    smtp: MailServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    src = {
        q: _source(data_dir, q)
        for q in (MENTAL_HEALTH, ADDICTIONS, PHARMACY, MATERNITY, PALLIATIVE)
    }
    config = write_config(
        _config_text(replay, smtp, OFFICER_WATCHES + _subscriber("officer@example.org", "Ms O"))
    )
    db = _db(config)
    # The pharmacy answer is first seen as it was, then as corrected.
    replay.set_items([_uncorrected(src[PHARMACY]), *(v for q, v in src.items() if q != PHARMACY)])
    _poll(cli, config)
    replay.set_items([src[PHARMACY]])
    _poll(cli, config)

    result = _digest(cli, config)
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        f"officer@example.org: sent (5 item(s)): accepted by 127.0.0.1:{smtp.port}\n"
    )
    mail = _one_message(smtp, "officer@example.org")
    assert mail.mail_from == "digest@pq.example.org"
    msg = mail.message
    assert msg["To"] == "Ms O <officer@example.org>"
    assert msg["Subject"] == (
        "Weekly written questions digest: 2 new answers, 1 correction, 1 holding answer, "
        f"1 newly tabled question ({_period(db, msg['Message-ID'])})"
    )
    text, html = _parts(msg)
    # Every section but written statements (none matched here), in their order.
    assert _sections(text) == [t for k, t in SECTION_TITLES.items() if k != "statement"]
    assert "New answers: 2\nCorrected answers: 1\nHolding answers: 1\n" in text
    assert "Newly tabled questions (awaiting answer): 1\n" in text

    # New answers, by heading: one asked and answered by named members, one with a table.
    addictions, mental = _text_items(text, "answered")
    v = src[ADDICTIONS]
    assert addictions.startswith(f"{v['heading']}\nMatched: Armed forces (on: addictions")
    assert _question_lines(v, asker="Dan Carden (Labour, Liverpool, Walton)") in addictions
    assert "To: Ministry of Defence\n" in addictions
    assert f"Answer by Johnny Mercer, 1 Feb 2021:\n{_answer_text(db, ADDICTIONS)}" in addictions
    v = src[MENTAL_HEALTH]
    assert mental.startswith(
        "Mental Health Services: Children\nMatched: Children's mental health (on: "
    )
    assert _question_lines(v) in mental
    assert f"To: {v['answeringBodyName']}\n" in mental
    answer = _answer_text(db, MENTAL_HEALTH)
    assert f"Answer, 12 Dec 2023:\n{answer}" in mental
    assert "not collected at constituency level" in answer  # the full answer, not 255 chars
    assert "Central Bedfordshire | 185\nBedford | 95\nLuton | 125" in mental  # a table still

    # The correction: the answer now, and what changed word by word.
    [corrected] = _text_items(text, "corrected")
    v = src[PHARMACY]
    assert corrected.startswith("NHS Learning Support Fund: Pharmacy\nMatched: Pharmacy students")
    assert _question_lines(v) in corrected
    assert "To: Department of Health and Social Care\n" in corrected
    assert f"Corrected answer, 6 Dec 2023 (corrected 21 Dec 2023):\n{v['answerText']}\n" in (
        corrected
    )
    assert "What changed ([-removed-] {+added+}):\n" in corrected
    assert "the NHS Bursary prior to the [-2019-] {+2017+} reforms" in corrected
    assert "such as pharmacy [-fall within-] {+are outside of+} the scope" in corrected

    [holding] = _text_items(text, "holding")
    v = src[MATERNITY]
    assert holding.startswith("Maternity Services\nMatched: Maternity (on: maternity)\n")
    assert _question_lines(v) in holding
    assert f"Holding answer, 7 Jul 2026:\n{_answer_text(db, MATERNITY)}" in holding
    assert "will not be possible to answer this question within the usual time" in holding

    [tabled] = _text_items(text, "tabled")
    v = src[PALLIATIVE]
    assert v["heading"] is None  # not yet given one when this snapshot was taken
    assert tabled.startswith(
        "(heading not yet assigned)\nMatched: Children's palliative care (on: "
    )
    assert _question_lines(v, due=True) in tabled
    assert "due for answer 9 Jul 2026" in tabled
    assert "Answer" not in tabled

    # The HTML part carries the same items, each with its official link.
    for section, qids in {
        "answered": [ADDICTIONS, MENTAL_HEALTH],
        "corrected": [PHARMACY],
        "holding": [MATERNITY],
        "tabled": [PALLIATIVE],
    }.items():
        items = _html_items(html, section)
        assert len(items) == len(qids)
        for item, q in zip(items, qids, strict=True):
            _html_question(item, src[q])
    # Who answered and when, as the HTML reads (no stray comma when the minister is unknown).
    for section, lines in {
        "answered": ["Answer by Johnny Mercer, 1 Feb 2021", "Answer, 12 Dec 2023"],
        "corrected": ["Corrected answer, 6 Dec 2023 (corrected 21 Dec 2023)"],
        "holding": ["Holding answer, 7 Jul 2026"],
    }.items():
        for item, line in zip(_html_items(html, section), lines, strict=True):
            assert line in [_words(p) for p in item.find_all("p")]
    [item] = _html_items(html, "corrected")
    assert [d.get_text() for d in item.find_all("del")] == ["struck through", "2019", "fall within"]
    assert [i.get_text() for i in item.find_all("ins")] == ["highlighted", "2017", "are outside of"]
    [item] = _html_items(html, "tabled")
    assert "due for answer 9 Jul 2026" in item.get_text()

    assert f"{_last_updated(db)} No poll failed during this period." in text
    assert "officer@example.org subscribes to: Armed forces, Children's mental health, " in text

    # One outbox row per event (pharmacy: tabled, answered, corrected), all in this digest.
    assert rows(db, "SELECT status, count(*) FROM delivery GROUP BY status") == [("sent", 10)]
    assert rows(db, "SELECT status, message_id FROM digest") == [("sent", msg["Message-ID"])]


# -- 2. once per question; grouped questions are one item ------------------------------------


def test_a_question_appears_once_and_groups_are_one_item(
    data_dir: Path,
    replay: ReplayServer,
    smtp: MailServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    first, second = (_source(data_dir, q) for q in SEVERANCE)
    assert first["groupedQuestions"] == [second["uin"]]
    assert second["groupedQuestions"] == [first["uin"]]
    watches = _watches(
        **{
            "Children's mental health": '"mental health" children',
            "Mental health waiting times": '"mental health" waiting',
            "Severance payments": "severance",
        }
    )
    subs = _subscriber("officer@example.org") + _subscriber(
        "colleague@example.org", watches=["Mental health waiting times"]
    )
    config = write_config(_config_text(replay, smtp, watches + subs))
    replay.set_items([_source(data_dir, MENTAL_HEALTH), first, second])
    _poll(cli, config)
    result = _digest(cli, config)
    assert result.exit_code == 0, result.stderr

    text, html = _parts(_one_message(smtp, "officer@example.org").message)
    assert _sections(text) == ["New answers"]
    severance, mental = _text_items(text, "answered")  # by heading
    assert (
        text.count("written question · 5869 · asked by") == 1
    )  # once, though two watches matched it
    assert mental.startswith("Mental Health Services: Children\n")
    assert "\nMatched: Children's mental health, Mental health waiting times (on: " in mental
    # Both grouped questions, each with its own text and link, under one heading and answer.
    assert severance.startswith("Attorney General: Redundancy Pay\nMatched: Severance payments")
    assert severance.count("Attorney General: Redundancy Pay") == 1
    assert _question_lines(first) in severance and _question_lines(second) in severance
    assert severance.count("\nAnswer") == 1
    assert text.count("Attorney General: Redundancy Pay") == 1

    grouped, twice = _html_items(html, "answered")
    assert "Matched watches: Children's mental health, Mental health waiting times" in (
        twice.get_text()
    )
    _html_question(grouped, first)
    _html_question(grouped, second)
    assert len(grouped.find_all("h3")) == 1

    # The colleague sees only the watch they subscribe to, and not the other item.
    text, _ = _parts(_one_message(smtp, "colleague@example.org").message)
    [only] = _text_items(text, "answered")
    assert "\nMatched: Mental health waiting times (on: " in only
    assert "Severance" not in text and "Children's mental health" not in text


# -- 3. both parts; sanitised answer; matched words marked ----------------------------------


def test_html_part_is_sanitised_and_marks_the_matched_words(
    data_dir: Path,
    replay: ReplayServer,
    smtp: MailServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    real = _source(data_dir, MENTAL_HEALTH)
    hostile = (
        '<p onclick="steal()">Children first.<script>alert("x")</script></p>'
        "<img src=x onerror=alert(1)>"
        '<p><a href="javascript:alert(2)">click me</a> '
        '<a href="https://www.england.nhs.uk/">NHS England</a></p>'
    )
    heading = '<b onmouseover="alert(3)">Mental Health Services: Children</b>'
    replay.set_items([dict(real, heading=heading, answerText=hostile + real["answerText"])])
    watches = _watches(**{"Children's mental health": '"mental health" children'})
    config = write_config(_config_text(replay, smtp, watches + _subscriber("officer@example.org")))
    _poll(cli, config)
    # An archive row that escaped the sanitiser on the way in (say, written by an older
    # version) is cleaned again when the message is rendered.
    rows(
        _db(config),
        "UPDATE answer SET answer_html = answer_html || ?",
        '<p style="x" onmouseover="alert(5)">Tampered <iframe src="https://x.example">'
        "</iframe><script>alert(6)</script></p>",
    )
    assert _digest(cli, config).exit_code == 0

    text, html = _parts(_one_message(smtp, "officer@example.org").message)
    for bad in ("<script", "<img", "<b ", "<iframe", "javascript:", "onclick", "onerror"):
        assert bad not in html
    soup = _soup(html)
    assert not soup.find_all(["script", "img", "b", "style", "iframe"])
    for tag in soup.find_all(True):
        assert not [a for a in tag.attrs if a.lower().startswith("on")], tag
        assert not str(tag.get("href", "")).lower().startswith("javascript")
    assert '<a href="https://www.england.nhs.uk/" rel="noopener noreferrer">NHS England</a>' in (
        html
    )
    [item] = _html_items(html, "answered")
    h3 = item.find("h3")
    assert h3 is not None and h3.get_text() == heading  # shown as text, escaped, not markup
    answer = item.find("div")
    assert isinstance(answer, Tag)
    marked = [m.get_text() for m in answer.find_all("mark")]
    assert "mental health" in marked and "children" in marked and "Children" in marked
    assert {m.lower() for m in marked} <= {"mental health", "children"}
    assert "<p>Tampered </p>" in str(answer)
    table = answer.find("table")
    assert isinstance(table, Tag)
    cells = [td.get_text(strip=True) for td in table.find_all("td")]
    assert cells[-6:] == ["Central Bedfordshire", "185", "Bedford", "95", "Luton", "125"]
    # The plain-text part has the same answer, without any markup.
    [block] = _text_items(text, "answered")
    assert "Children first.\n\nclick me NHS England\n\nThe information requested" in block
    assert "<" not in block.replace(heading, "")


# -- 4. headers and footer ------------------------------------------------------------------


def test_headers_and_footer(
    data_dir: Path,
    replay: ReplayServer,
    smtp: MailServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    watches = _watches(Maternity="maternity")
    config = write_config(
        _config_text(replay, smtp, watches + _subscriber("officer@example.org", "Ms O"))
    )
    db = _db(config)
    replay.set_items([_source(data_dir, MATERNITY)])
    _poll(cli, config)
    # A later poll fails (the API keeps answering 500): the digest must say so.
    replay.add_fault(Fault("status", status=500, match="list", times=100))
    failed = cli("--config", config, "poll")
    assert failed.exit_code == 1
    replay.clear_faults()

    assert _digest(cli, config).exit_code == 0
    msg = _one_message(smtp, "officer@example.org").message
    [(message_id, token)] = rows(
        db, "SELECT g.message_id, s.token FROM digest g JOIN subscriber s ON s.id = g.subscriber_id"
    )
    assert re.fullmatch(r"<digest\.[0-9a-f]{32}@pq\.example\.org>", message_id)
    assert msg["Message-ID"] == message_id
    assert msg["Subject"] == (
        f"Weekly written questions digest: 1 holding answer ({_period(db, message_id)})"
    )
    assert msg["From"] == "pqwatch <digest@pq.example.org>"
    assert msg["To"] == "Ms O <officer@example.org>"
    assert msg["Date"] is not None and msg["Auto-Submitted"] == "auto-generated"
    assert len(token) >= 24
    assert msg["List-Unsubscribe"].strip() == (
        f"<mailto:{OPERATOR}?subject=unsubscribe%20officer%40example.org>, "
        f"<{SITE}/unsubscribe/{token}>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    text, html = _parts(msg)
    health = (
        f"{_last_updated(db)} Warning: 1 poll of UK Parliament written questions failed during "
        "this period, so some answers may arrive in a later digest."
    )
    assert health in text
    assert health in _soup(html).get_text()
    assert f"Unsubscribe from everything: {SITE}/unsubscribe/{token}" in text
    assert f"{SITE}/unsubscribe/{token}" in [a.get("href") for a in _soup(html).find_all("a")]


# -- 5. nothing is sent twice ---------------------------------------------------------------


def test_a_second_run_sends_nothing(
    data_dir: Path,
    replay: ReplayServer,
    smtp: MailServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    watches = _watches(**{"Maternity": "maternity", "Pharmacy students": "pharmacy"})
    config = write_config(_config_text(replay, smtp, watches + _subscriber("officer@example.org")))
    db = _db(config)
    replay.set_items([_source(data_dir, MATERNITY), _source(data_dir, PHARMACY)])
    _poll(cli, config)
    assert _digest(cli, config).exit_code == 0
    assert len(smtp.received) == 1
    sent = _deliveries(db, "officer@example.org")
    message_id = smtp.received[0].message["Message-ID"]
    assert len(sent) == 5  # tabled + holding, and tabled + answered + corrected
    assert all(
        s == ("sent", f"accepted by 127.0.0.1:{smtp.port}", message_id, "sent") for s in sent
    )

    again = _digest(cli, config)
    assert (again.exit_code, again.stderr) == (0, "")
    assert again.stdout == "officer@example.org: nothing (0 item(s)): nothing new\n"
    assert len(smtp.received) == 1
    assert _deliveries(db, "officer@example.org") == sent
    assert rows(db, "SELECT count(*) FROM digest") == [(1,)]


# -- 6. the SMTP server is down -------------------------------------------------------------


def test_server_down_keeps_everything_pending_then_sends_once(
    data_dir: Path,
    replay: ReplayServer,
    smtp_off: MailServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    watches = _watches(Maternity="maternity")
    subs = _subscriber("officer@example.org") + _subscriber("colleague@example.org")
    config = write_config(_config_text(replay, smtp_off, watches + subs))
    db = _db(config)
    replay.set_items([_source(data_dir, MATERNITY)])
    _poll(cli, config)

    failed = _digest(cli, config)
    line = _one_line_error(failed)
    assert line.startswith(
        f"pqwatch: error: colleague@example.org: cannot connect to SMTP 127.0.0.1:{smtp_off.port}:"
    )
    assert "refused" in line.lower()
    assert line.endswith("(the digest stays pending for the next run)")
    assert {d[0] for d in _deliveries(db, "colleague@example.org")} == {"pending"}
    assert {d[0] for d in _deliveries(db, "officer@example.org")} == {"pending"}
    [(message_id, status)] = rows(db, "SELECT message_id, status FROM digest")
    assert status == "pending"

    smtp_off.start()
    ok = _digest(cli, config)
    assert (ok.exit_code, ok.stderr) == (0, "")
    assert sorted(r.rcpt_tos[0] for r in smtp_off.received) == [
        "colleague@example.org",
        "officer@example.org",
    ]
    assert _one_message(smtp_off, "colleague@example.org").message["Message-ID"] == message_id
    for address in ("colleague@example.org", "officer@example.org"):
        assert {d[0] for d in _deliveries(db, address)} == {"sent"}
    assert set(rows(db, "SELECT status FROM digest")) == {("sent",)}
    assert _digest(cli, config).exit_code == 0
    assert len(smtp_off.received) == 2


# -- 7. one recipient refused for good ------------------------------------------------------


def test_run_once_ends_non_zero_on_the_cycle_that_met_a_refusal() -> None:
    """`pqwatch run --once` exits 1 with the first of the cycle's errors (CycleResult.errors)."""
    from pqwatch.notify.outcome import DigestOutcome, DigestRun
    from pqwatch.service import CycleResult

    sent = DigestOutcome("a@example.org", "sent", 2, "250 OK")
    gone = DigestOutcome("b@example.org", "failed", 1, "b@example.org: 550 5.1.1 no such user")
    assert CycleResult(digests=DigestRun([sent])).errors == []
    assert CycleResult(digests=DigestRun([sent, gone, gone])).errors == [
        "the mail server refused 2 digest(s) for good: b@example.org: 550 5.1.1 no such user "
        "(and 1 more); marked failed, not retried (see pqwatch status)"
    ]


def test_a_refused_recipient_fails_alone(
    data_dir: Path,
    replay: ReplayServer,
    smtp: MailServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    smtp.handler.refuse["gone@example.org"] = "550 5.1.1 no such user"
    watches = _watches(Maternity="maternity")
    subs = "".join(
        _subscriber(a) for a in ("officer@example.org", "gone@example.org", "colleague@example.org")
    )
    config = write_config(_config_text(replay, smtp, watches + subs))
    db = _db(config)
    replay.set_items([_source(data_dir, MATERNITY)])
    _poll(cli, config)

    result = _digest(cli, config)
    # A permanent per-recipient refusal is recorded, not an outage: the others are sent, and
    # the run that met it ends with one line and exit 1, so that cron tells the operator.
    reply = "gone@example.org: 550 5.1.1 no such user"
    assert result.exit_code == 1
    assert result.stderr == (
        "pqwatch: error: the mail server refused 1 digest(s) for good: "
        f"{reply}; marked failed, not retried (see pqwatch status)\n"
    )
    assert f"gone@example.org: failed (1 item(s)): {reply}\n" in result.stdout
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == [
        "colleague@example.org",
        "officer@example.org",
    ]
    assert {d[:2] for d in _deliveries(db, "gone@example.org")} == {("failed", reply)}
    assert rows(
        db,
        "SELECT g.status, g.server_reply FROM digest g JOIN subscriber s "
        "ON s.id = g.subscriber_id WHERE s.email = 'gone@example.org'",
    ) == [("failed", reply)]
    for address in ("colleague@example.org", "officer@example.org"):
        assert {d[0] for d in _deliveries(db, address)} == {"sent"}

    # Not retried: the next run does not even ask the server again.
    tries = smtp.handler.rcpt_attempts.count("gone@example.org")
    again = _digest(cli, config)
    assert again.exit_code == 0
    assert smtp.handler.rcpt_attempts.count("gone@example.org") == tries == 1
    assert len(smtp.received) == 2


# -- 8. the connection drops while sending --------------------------------------------------


@pytest.mark.parametrize(
    "fault, says",
    [("drop", "connection closed by the server"), ("421 4.3.0 closing", "said 421 4.3.0 closing")],
    ids=["dropped", "421"],
)
def test_a_dropped_send_stays_pending_then_sends_once(
    fault: str,
    says: str,
    data_dir: Path,
    replay: ReplayServer,
    smtp: MailServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    smtp.handler.data_faults.append(fault)
    watches = _watches(Maternity="maternity")
    subs = _subscriber("officer@example.org") + _subscriber("colleague@example.org")
    config = write_config(_config_text(replay, smtp, watches + subs))
    db = _db(config)
    replay.set_items([_source(data_dir, MATERNITY)])
    _poll(cli, config)

    line = _one_line_error(_digest(cli, config))
    assert line.startswith("pqwatch: error: colleague@example.org: SMTP 127.0.0.1:")
    assert says in line
    assert smtp.received == []
    for address in ("colleague@example.org", "officer@example.org"):
        assert {d[0] for d in _deliveries(db, address)} == {"pending"}
    [(message_id,)] = rows(db, "SELECT message_id FROM digest WHERE status = 'pending'")

    ok = _digest(cli, config)
    assert (ok.exit_code, ok.stderr) == (0, "")
    assert _one_message(smtp, "colleague@example.org").message["Message-ID"] == message_id
    _one_message(smtp, "officer@example.org")
    assert len(smtp.received) == 2
    assert set(rows(db, "SELECT status FROM delivery")) == {("sent",)}
    assert _digest(cli, config).exit_code == 0
    assert len(smtp.received) == 2


def test_a_server_refusing_the_sender_is_an_outage_not_a_bounce(
    data_dir: Path,
    replay: ReplayServer,
    smtp: MailServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    """A 5xx to MAIL FROM (e.g. the server wants a login) says nothing about the recipients:
    every digest would be refused the same way, so nothing may be marked failed for good."""
    smtp.handler.refuse_sender = "530 5.7.0 Authentication required"
    watches = _watches(Maternity="maternity")
    subs = _subscriber("officer@example.org") + _subscriber("colleague@example.org")
    config = write_config(_config_text(replay, smtp, watches + subs))
    db = _db(config)
    replay.set_items([_source(data_dir, MATERNITY)])
    _poll(cli, config)

    line = _one_line_error(_digest(cli, config))
    assert line.startswith("pqwatch: error: colleague@example.org: SMTP 127.0.0.1:")
    assert "530 5.7.0 Authentication required" in line
    assert set(rows(db, "SELECT status FROM delivery")) == {("pending",)}
    [(message_id, status)] = rows(db, "SELECT message_id, status FROM digest")
    assert status == "pending"

    smtp.handler.refuse_sender = None  # the operator fixed the server
    ok = _digest(cli, config)
    assert (ok.exit_code, ok.stderr) == (0, "")
    assert _one_message(smtp, "colleague@example.org").message["Message-ID"] == message_id
    _one_message(smtp, "officer@example.org")
    assert set(rows(db, "SELECT status FROM delivery")) == {("sent",)}


def test_an_outage_mid_run_stops_there_and_the_next_run_sends_each_once(
    data_dir: Path,
    replay: ReplayServer,
    smtp: MailServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    """Each digest is prepared while the one before it is with the server. When the server
    goes away (421: it is closing the connection), the run stops: the next digest, prepared
    but never offered, is given back (no digest row, its rows waiting as before), and the
    next run sends every digest once."""
    smtp.handler.refuse["b@example.org"] = "421 4.3.2 service shutting down"
    watches = _watches(Maternity="maternity")
    subs = "".join(_subscriber(a) for a in ("a@example.org", "b@example.org", "c@example.org"))
    config = write_config(_config_text(replay, smtp, watches + subs))
    db = _db(config)
    replay.set_items([_source(data_dir, MATERNITY)])
    _poll(cli, config)

    line = _one_line_error(_digest(cli, config))
    assert line.startswith("pqwatch: error: b@example.org: SMTP 127.0.0.1:")
    assert "421 4.3.2 service shutting down" in line
    assert [r.rcpt_tos for r in smtp.received] == [["a@example.org"]]
    assert rows(
        db,
        "SELECT s.email, g.status FROM digest g JOIN subscriber s ON s.id = g.subscriber_id "
        "ORDER BY s.email",
    ) == [("a@example.org", "sent"), ("b@example.org", "pending")]
    assert {(d[0], d[2]) for d in _deliveries(db, "c@example.org")} == {("pending", None)}
    [(message_id,)] = rows(db, "SELECT message_id FROM digest WHERE status = 'pending'")

    del smtp.handler.refuse["b@example.org"]
    ok = _digest(cli, config)
    assert (ok.exit_code, ok.stderr) == (0, "")
    assert [r.rcpt_tos[0] for r in smtp.received] == [
        "a@example.org",
        "b@example.org",
        "c@example.org",
    ]
    assert _one_message(smtp, "b@example.org").message["Message-ID"] == message_id
    assert set(rows(db, "SELECT status FROM delivery")) == {("sent",)}
    assert _digest(cli, config).exit_code == 0
    assert len(smtp.received) == 3


# -- 9. no SMTP server configured; dry runs -------------------------------------------------


def test_without_smtp_host_the_digest_is_written_to_the_outbox(
    data_dir: Path,
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    watches = _watches(Maternity="maternity")
    config = write_config(
        _config_text(replay, None, watches + _subscriber("officer@example.org"), site_url=False)
    )
    db = _db(config)
    replay.set_items([_source(data_dir, MATERNITY)])
    _poll(cli, config)
    result = _digest(cli, config)
    assert (result.exit_code, result.stderr) == (0, "")

    [eml] = (config.parent / "outbox").glob("*.eml")
    assert eml.name.endswith("-officer@example.org-1.eml")
    assert f"written to {eml}" in result.stdout
    msg = email.message_from_bytes(eml.read_bytes(), policy=default)
    assert isinstance(msg, EmailMessage)
    [(message_id,)] = rows(db, "SELECT message_id FROM digest WHERE status = 'sent'")
    assert msg["Message-ID"] == message_id
    assert msg["To"] == "officer@example.org"
    # Without [feeds] site_url there is no web link: unsubscribing is by mail to the operator.
    assert msg["List-Unsubscribe"].strip() == (
        f"<mailto:{OPERATOR}?subject=unsubscribe%20officer%40example.org>"
    )
    # RFC 8058: no one-click header without an HTTPS unsubscribe URI.
    assert msg["List-Unsubscribe-Post"] is None
    text, _ = _parts(msg)
    assert "Maternity Services\nMatched: Maternity (on: maternity)" in text
    assert f"To unsubscribe, write to {OPERATOR}." in text
    assert {d[:2] for d in _deliveries(db, "officer@example.org")} == {
        ("sent", f"written to {eml}")
    }
    assert _digest(cli, config).exit_code == 0
    assert len(list((config.parent / "outbox").glob("*.eml"))) == 1


def test_a_dry_run_writes_files_and_marks_nothing(
    data_dir: Path,
    replay: ReplayServer,
    smtp: MailServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
    tmp_path: Path,
) -> None:
    watches = _watches(Maternity="maternity")
    config = write_config(_config_text(replay, smtp, watches + _subscriber("officer@example.org")))
    db = _db(config)
    replay.set_items([_source(data_dir, MATERNITY)])
    _poll(cli, config)
    before = _deliveries(db, "officer@example.org")

    out = tmp_path / "preview"
    dry = _digest(cli, config, "--dry-run", "--out", str(out))
    assert (dry.exit_code, dry.stderr) == (0, "")
    assert dry.stdout.startswith("officer@example.org: dry-run (1 item(s)): written to ")
    [eml] = out.glob("*.eml")
    assert eml.name.endswith("-officer@example.org-dry-run.eml")
    preview = email.message_from_bytes(eml.read_bytes(), policy=default)
    assert isinstance(preview, EmailMessage)
    assert preview["Subject"].startswith("Weekly written questions digest: 1 holding answer (")
    assert "Maternity Services" in _parts(preview)[0]
    assert smtp.received == []
    assert _deliveries(db, "officer@example.org") == before
    assert {d[0] for d in before} == {"pending"} and {d[2] for d in before} == {None}
    assert rows(db, "SELECT count(*) FROM digest") == [(0,)]
    assert not (config.parent / "outbox").exists()

    real = _digest(cli, config)
    assert (real.exit_code, real.stderr) == (0, "")
    msg = _one_message(smtp, "officer@example.org").message
    assert msg["Subject"] == preview["Subject"]
    assert _parts(msg)[0].count("Maternity Services") == 1
    assert {d[0] for d in _deliveries(db, "officer@example.org")} == {"sent"}


# -- 10. a quiet period ---------------------------------------------------------------------


def test_an_empty_period_is_sent_only_to_who_asked_for_it(
    data_dir: Path,
    replay: ReplayServer,
    smtp: MailServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    watches = _watches(**{"Short breaks": '"short breaks"'})
    subs = _subscriber("quiet@example.org") + _subscriber("always@example.org", send_empty=True)
    config = write_config(_config_text(replay, smtp, watches + subs))
    db = _db(config)
    replay.set_items([_source(data_dir, MATERNITY)])  # matches no watch
    _poll(cli, config)

    result = _digest(cli, config)
    assert (result.exit_code, result.stderr) == (0, "")
    assert "quiet@example.org: nothing (0 item(s)): nothing new\n" in result.stdout
    assert [r.rcpt_tos for r in smtp.received] == [["always@example.org"]]
    msg = smtp.received[0].message
    message_id = msg["Message-ID"]
    assert msg["Subject"] == (
        f"Weekly written questions digest: nothing new ({_period(db, message_id)})"
    )
    text, html = _parts(msg)
    assert "Nothing new matched your watches in this period." in text
    assert "Nothing new matched your watches in this period." in html
    assert _sections(text) == []
    assert f"{_last_updated(db)} No poll failed during this period." in text
    assert rows(db, "SELECT status, item_count FROM digest") == [("sent", 0)]


# -- 11. a subscriber added later ------------------------------------------------------------


def test_a_new_subscriber_gets_only_what_was_matched_after_joining(
    data_dir: Path,
    replay: ReplayServer,
    smtp: MailServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    watches = _watches(Health="health")
    officer = _subscriber("officer@example.org")
    config = write_config(_config_text(replay, smtp, watches + officer))
    replay.set_items([_source(data_dir, MATERNITY)])
    _poll(cli, config)

    # The colleague joins after the maternity question was matched, before the pharmacy one.
    write_config(_config_text(replay, smtp, watches + officer + _subscriber("new@example.org")))
    first = _digest(cli, config)
    assert first.exit_code == 0, first.stderr
    assert "new@example.org: nothing (0 item(s)): nothing new\n" in first.stdout
    [mail] = smtp.received
    assert mail.rcpt_tos == ["officer@example.org"]
    assert _headings(_parts(mail.message)[0]) == ["Maternity Services"]

    replay.set_items([_source(data_dir, PHARMACY)])
    _poll(cli, config)
    second = _digest(cli, config)
    assert second.exit_code == 0, second.stderr
    assert sorted(r.rcpt_tos[0] for r in smtp.received[1:]) == [
        "new@example.org",
        "officer@example.org",
    ]
    newcomer = _one_message(smtp, "new@example.org").message
    for mail in smtp.received[1:]:
        text, _ = _parts(mail.message)
        assert _headings(text) == ["NHS Learning Support Fund: Pharmacy"]
        assert "Maternity" not in text
    # The newcomer's first period starts when they were added to the config.
    [(added,)] = rows(
        _db(config), "SELECT created_at FROM subscriber WHERE email = ?", "new@example.org"
    )
    [(start,)] = rows(
        _db(config),
        "SELECT period_start FROM digest WHERE message_id = ?",
        newcomer["Message-ID"],
    )
    assert start == added


# -- 12. the message on the wire ---------------------------------------------------------------


def _digest_message(
    text: str,
    html: str,
    *,
    subject: str = "Weekly written questions digest: 2 new answers (1 Jul 2026)",
    to_name: str = "",
    to_email: str = "officer@example.org",
    unsubscribe: str | None = None,
) -> EmailMessage:
    """A digest message as pqwatch builds one, from the text and HTML it rendered."""
    from pqwatch.notify.render import Rendered, build_message

    return build_message(
        Rendered(subject, text, html),
        sender="pqwatch <digest@pq.example.org>",
        to_name=to_name,
        to_email=to_email,
        message_id="<digest.1234@pq.example.org>",
        operator=OPERATOR,
        unsubscribe_url=unsubscribe,
        when=datetime(2026, 7, 8, 9, 30, tzinfo=UTC),
    )


def _send(smtp: MailServer, message: EmailMessage) -> Received:
    """Sends one message through pqwatch's SMTP transport; what the server received."""
    from pqwatch.config import EmailConfig
    from pqwatch.notify.mailer import SMTPTransport

    transport = SMTPTransport(
        EmailConfig(smtp_host="127.0.0.1", smtp_port=smtp.port, security="none")
    )
    try:
        assert transport.send(message, "digest").startswith("accepted")
    finally:
        transport.close()
    (got,) = smtp.received
    assert not got.message.defects
    assert not [p.defects for p in got.message.iter_parts() if p.defects]
    return got


def _wire_lines(raw: bytes) -> list[bytes]:
    """The lines of a message as the server received it, which must all end with CRLF."""
    lines = raw.split(b"\r\n")
    assert lines[-1] == b""
    assert not [line for line in lines if b"\r" in line or b"\n" in line]
    return lines[:-1]


def _as_read(text: str) -> str:
    """A text body as a reader gets it back: line ends as \\n, and one at the end."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


AWKWARD_TEXT = (
    "Plain · text = with signs, and trailing spaces   \n.\nFrom the start of a line\n"
    + "word " * 60
    + "\n"
    + "é" * 90
    + "\r\nwindows line end\rold line end\n\ttabs\t\n\n"
    + "=" * 100
    + "\n--===============1234567890==\nlast line without an end"
)
SHORT_HTML = '<p style="margin:0;color:#555;">Zoë &amp; “quotes” = </p>\n<p>.</p>\n'
# A line of 1,720 bytes, and a text line of 999: no mail line can carry them as they are.
AWKWARD_HTML = SHORT_HTML + '<td style="border:1px solid #bbb;">cell</td>' * 40 + "\n"
LONG_TEXT = AWKWARD_TEXT + "\n" + "x" * 999


@pytest.mark.parametrize("offers_8bitmime", [True, False], ids=["8bitmime", "no-8bitmime"])
@pytest.mark.parametrize(
    ("text", "html", "as_they_are"),
    [(AWKWARD_TEXT, SHORT_HTML, True), (LONG_TEXT, AWKWARD_HTML, False)],
    ids=["short-lines", "long-lines"],
)
def test_a_digest_reaches_the_server_whole_within_its_line_limits(
    smtp: MailServer,
    monkeypatch: pytest.MonkeyPatch,
    offers_8bitmime: bool,
    text: str,
    html: str,
    as_they_are: bool,
) -> None:
    """Bodies whose lines fit go as they are (8bit: they are not ASCII), to a server that
    offers 8BITMIME; anything else is encoded: every line on the wire is at most 998 bytes
    (76 characters in an encoded body), and a server without 8BITMIME gets no 8-bit byte.
    The reader gets the same text and HTML back either way, in the two parts, in UTF-8."""
    if not offers_8bitmime:
        # aiosmtpd offers 8BITMIME; a server that does not is played by hiding it from smtplib.
        real = smtplib.SMTP.has_extn
        monkeypatch.setattr(
            smtplib.SMTP, "has_extn", lambda self, name: name != "8bitmime" and real(self, name)
        )
    got = _send(smtp, _digest_message(text, html, to_name="Zoë O'Brien, MP"))
    eight_bit = as_they_are and offers_8bitmime
    assert (got.mail_from, got.rcpt_tos) == ("digest@pq.example.org", ["officer@example.org"])
    assert ("BODY=8BITMIME" in got.mail_options) == eight_bit
    assert "SMTPUTF8" not in got.mail_options
    assert got.raw.isascii() != eight_bit
    lines = _wire_lines(got.raw)
    assert max(len(line) for line in lines) <= 998
    parts = list(got.message.iter_parts())
    encodings = [p["Content-Transfer-Encoding"] for p in parts]
    if eight_bit:
        assert encodings == ["8bit", "8bit"]
    else:
        assert set(encodings) <= {"quoted-printable", "base64"}
        for part in parts:  # RFC 2045: encoded lines are 76 characters at most
            assert max(map(len, part.get_payload().splitlines())) <= 76
    assert _parts(got.message) == (_as_read(text), html)


def test_the_headers_a_reader_sees() -> None:
    """A long subject, a name that is not ASCII and has a comma, both unsubscribe targets:
    the headers read back as set, in this order, folded within 78 characters, in ASCII."""
    subject = (
        "Daily written questions digest: 12 new answers, 1 correction, 3 holding answers, "
        "20 newly tabled questions (1 Jul 2026 to 8 Jul 2026)"
    )
    unsubscribe = "https://pq.example.org/unsubscribe/abc123"
    message = _digest_message(
        AWKWARD_TEXT,
        SHORT_HTML,
        subject=subject,
        to_name="Zoë O'Brien, MP",
        unsubscribe=unsubscribe,
    )
    raw = message.as_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    msg = email.message_from_bytes(raw, policy=default)
    assert isinstance(msg, EmailMessage)
    assert msg.keys() == [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "Reply-To",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "Auto-Submitted",
        "MIME-Version",
        "Content-Type",
    ]
    assert msg["From"] == "pqwatch <digest@pq.example.org>"
    [to] = msg["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Zoë O'Brien, MP", "officer@example.org")
    assert msg["Subject"] == subject
    assert msg["Date"].datetime == datetime(2026, 7, 8, 9, 30, tzinfo=UTC)
    assert msg["Message-ID"] == "<digest.1234@pq.example.org>"
    assert msg["Reply-To"] == OPERATOR
    assert msg["List-Unsubscribe"] == (
        f"<mailto:{OPERATOR}?subject=unsubscribe%20officer%40example.org>, <{unsubscribe}>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["MIME-Version"] == "1.0"
    assert msg.get_content_type() == "multipart/alternative"
    assert _parts(msg) == (_as_read(AWKWARD_TEXT), SHORT_HTML)
    # Built again (sent again after a crash), the digest keeps its Message-ID.
    again = _digest_message(AWKWARD_TEXT, SHORT_HTML, subject=subject, unsubscribe=unsubscribe)
    assert again["Message-ID"] == msg["Message-ID"]


def test_an_address_that_is_not_ascii_goes_with_smtputf8(smtp: MailServer) -> None:
    got = _send(smtp, _digest_message(AWKWARD_TEXT, SHORT_HTML, to_email="zoë@example.org"))
    assert got.rcpt_tos == ["zoë@example.org"]
    assert {"SMTPUTF8", "BODY=8BITMIME"} <= set(got.mail_options)
    lines = _wire_lines(got.raw)
    assert max(len(line) for line in lines) <= 998
    # The address is written in UTF-8 (it cannot be encoded), the bodies go as they are.
    assert "To: zoë@example.org".encode() in lines[: lines.index(b"")]
    assert _parts(got.message) == (_as_read(AWKWARD_TEXT), SHORT_HTML)


def test_without_an_operator_or_a_real_sender_no_reply_address_is_invented(
    data_dir: Path,
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    watches = _watches(Maternity="maternity")
    config = write_config(
        api_config(replay.base_url, extra=watches + _subscriber("officer@example.org"))
    )
    replay.set_items([_source(data_dir, MATERNITY)])
    _poll(cli, config)
    assert _digest(cli, config).exit_code == 0
    [eml] = (config.parent / "outbox").glob("*.eml")
    raw = eml.read_bytes()
    assert b"pqwatch@localhost" not in raw.split(b"\n\n", 1)[1]  # never offered to write to
    msg = email.message_from_bytes(raw, policy=default)
    assert msg["Reply-To"] is None and msg["List-Unsubscribe"] is None
    # Sending by SMTP from the default sender is refused at once, naming the key.
    smtp_config = write_config(
        api_config(replay.base_url, extra='[email]\nsmtp_host = "127.0.0.1"\n'), "smtp.toml"
    )
    refused = cli("--config", smtp_config, "digest")
    assert refused.exit_code == 2
    assert "email.from: set the address digests are sent from" in refused.stderr


def test_digests_reply_to_the_operator(
    data_dir: Path,
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    watches = _watches(Maternity="maternity")
    config = write_config(
        _config_text(replay, None, watches + _subscriber("officer@example.org"), site_url=False)
    )
    replay.set_items([_source(data_dir, MATERNITY)])
    _poll(cli, config)
    assert _digest(cli, config).exit_code == 0
    [eml] = (config.parent / "outbox").glob("*.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=default)
    assert msg["Reply-To"] == OPERATOR and msg["From"] == "pqwatch <digest@pq.example.org>"


def test_a_correction_that_removes_words_shows_what_changed() -> None:
    """The usual correction shortens the answer; its diff must still be shown."""
    from pqwatch.notify.compose import _item

    def version(kind: str, text: str) -> dict[str, Any]:
        return {
            "kind": kind, "answer_text": text, "answer_html": f"<p>{text}</p>",
            "is_full_text": True, "answerer": "A Minister", "corrector": "A Minister",
            "date_answered": "2024-07-01", "date_corrected": "2024-07-09",
        }  # fmt: skip

    row = {"heading": "Hospices", "department": "DHSC", "attachments_json": None}
    item = _item(
        "corrected",
        row,
        (),
        ("Hospices",),
        (),
        [version("answer", "Funding rose by 5% in 2024 and 2025."),
         version("correction", "Funding rose in 2024.")],
    )  # fmt: skip
    ops = [(p.op, p.text) for p in item.diff]
    assert ("delete", "by 5%") in ops and ("insert", "2024.") in ops
