"""Subscribing without the operator (issue 18, part 4), through the facade methods the web app
calls: the mail a person gets (read back from the outbox folder with the email package), the
links in it, what the database then owes them, and what a later `pqwatch digest` sends.
Recordings of real questions go through the replay server, as in test_digest.py."""

from __future__ import annotations

import email
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pqwatch.config import load_config
from pqwatch.errors import TooManyRequests, UsageError
from pqwatch.query import parse
from pqwatch.search.subscriptions import SubscriptionView
from pqwatch.service import PQWatch
from pqwatch.testing.replay import ReplayServer
from tests.conftest import CliResult, api_config, rows
from tests.test_digest import MATERNITY, PHARMACY, _source

SITE = "https://pq.example.org"
OPERATOR = "operator@pq.example.org"
LINK = re.compile(rf"{re.escape(SITE)}/(confirm|manage)/(\S+)")
WATCHES = (
    "[[watches]]\nname = 'Health'\nquery = 'health'\n"
    "[[watches]]\nname = 'Short breaks'\nquery = '\"short breaks\"'\n"
)
OFFICER = "[[subscribers]]\nemail = 'officer@example.org'\nwatches = ['Health']\n"


def _config_text(base_url: str, body: str = WATCHES + OFFICER, web: str = "") -> str:
    mail = f'[email]\nfrom = "pqwatch <digest@pq.example.org>"\noperator = "{OPERATOR}"\n'
    return api_config(base_url, extra=body + mail + f'[web]\nsite_url = "{SITE}"\n{web}')


class Clock:
    def __init__(self, start: datetime | None = None) -> None:
        self.at = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


_OPENED: list[PQWatch] = []


@pytest.fixture(autouse=True)
def _close_services() -> Iterator[None]:
    """Close the services a test opened (PostgreSQL's connections warn when left open)."""
    yield
    while _OPENED:
        _OPENED.pop().close()


def _service(config: Path, clock: Callable[[], datetime] | None = None) -> PQWatch:
    cfg = load_config(config)
    svc = PQWatch(cfg) if clock is None else PQWatch(cfg, now=clock)
    _OPENED.append(svc)
    return svc


def _outbox(config: Path, to: str | None = None) -> list[EmailMessage]:
    """Every message in the outbox folder (or those to one address), oldest first."""
    found = []
    for path in sorted(
        (config.parent / "outbox").glob("*.eml"), key=lambda p: p.stat().st_mtime_ns
    ):
        msg = email.message_from_bytes(path.read_bytes(), policy=default)
        assert isinstance(msg, EmailMessage)
        if to is None or msg["To"] == to:
            found.append(msg)
    return found


def _text(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def _link(msg: EmailMessage, kind: str) -> str:
    """The token of the one link of this kind in the text part (and the same in the HTML)."""
    found = [(k, t) for k, t in LINK.findall(_text(msg)) if k == kind]
    assert len(found) == 1, _text(msg)
    html = msg.get_body(("html",))
    assert html is not None and f'href="{SITE}/{kind}/{found[0][1]}"' in str(html.get_content())
    return found[0][1]


def _db(config: Path) -> Path:
    return config.parent / "pqwatch.db"


def _poll(cli: Callable[..., CliResult], config: Path) -> None:
    result = cli("--config", config, "poll", "--since", "2021-01-01", "--until", "2026-07-31")
    assert result.exit_code == 0, result.stderr


def _deliveries(config: Path, address: str) -> list[tuple[Any, ...]]:
    """The distinct states of the outbox rows for this address (a question's tabled and
    answered events are a row each)."""
    return rows(
        _db(config),
        "SELECT DISTINCT d.status FROM delivery d JOIN subscriber s ON s.id = d.subscriber_id "
        "WHERE s.email = ? ORDER BY 1",
        address,
    )


def _subscriber(config: Path, address: str) -> tuple[Any, ...]:
    [row] = rows(
        _db(config),
        "SELECT origin, active, frequency, confirmed_at IS NOT NULL, paused_at IS NOT NULL, "
        "unsubscribed_at IS NOT NULL FROM subscriber WHERE email = ?",
        address,
    )
    return row


@pytest.fixture
def config(
    replay: ReplayServer, write_config: Callable[..., Path], cli: Callable[..., CliResult]
) -> Path:
    path = write_config(_config_text(replay.base_url))
    assert cli("--config", path, "init").exit_code == 0
    return path


# -- the whole path: subscribe, confirm, digest, manage -----------------------------------------


def test_a_new_address_gets_one_confirmation_and_nothing_until_it_is_opened(
    data_dir: Path, replay: ReplayServer, config: Path, cli: Callable[..., CliResult]
) -> None:
    svc = _service(config)
    assert (
        svc.subscribe("New.Person@Example.org", ["health"], "daily", client="198.51.100.7") is None
    )

    # One mail, a confirmation, and nothing else anywhere.
    [mail] = _outbox(config)
    assert mail["To"] == "new.person@example.org"
    assert mail["From"] == "pqwatch <digest@pq.example.org>"
    assert mail["Reply-To"] == OPERATOR
    assert mail["Subject"] == "Confirm your alerts about written questions"
    assert mail["Auto-Submitted"] == "auto-generated"
    text = _text(mail)
    assert "daily email alerts for new.person@example.org about:\n\n  - Health\n" in text
    assert "Nothing is sent to you unless you open it." in text
    token = _link(mail, "confirm")
    assert _subscriber(config, "new.person@example.org") == ("web", 0, "daily", 0, 0, 0)
    assert rows(_db(config), "SELECT count(*) FROM digest") == [(0,)]

    # Before the link is opened a matching question owes them nothing (the operator's
    # subscriber of the same watch is owed it).
    replay.set_items([_source(data_dir, MATERNITY)])
    _poll(cli, config)
    assert _deliveries(config, "new.person@example.org") == []
    assert _deliveries(config, "officer@example.org") == [("pending",)]
    early = cli("--config", config, "digest", "--subscriber", "new.person@example.org")
    assert early.exit_code == 2 and "no active subscriber" in early.stderr

    view = svc.confirm(token, client="198.51.100.7")
    assert isinstance(view, SubscriptionView)
    assert (view.email, view.frequency, view.paused, view.unsubscribed) == (
        "new.person@example.org", "daily", False, False,
    )  # fmt: skip
    assert view.subscribed_slugs == ("health",)
    assert [w.slug for w in view.watches] == ["health", "short-breaks"]
    assert _subscriber(config, "new.person@example.org") == ("web", 1, "daily", 1, 0, 0)
    again = svc.confirm(token)  # again: nothing changes (but a fresh manage link)
    assert replace(again, manage_token="") == replace(view, manage_token="")
    assert _deliveries(config, "new.person@example.org") == []  # nothing old is owed

    # What is matched after confirming goes out at the next digest run, with a manage link.
    replay.set_items([_source(data_dir, PHARMACY)])
    _poll(cli, config)
    assert _deliveries(config, "new.person@example.org") == [("pending",)]
    result = cli("--config", config, "digest")
    assert result.exit_code == 0, result.stderr
    assert "new.person@example.org: sent (1 item(s))" in result.stdout
    digests = [m for m in _outbox(config) if m["To"] == "new.person@example.org"][1:]
    [digest] = digests
    text = _text(digest)
    assert "NHS Learning Support Fund: Pharmacy" in text and "Maternity" not in text
    manage = _link(digest, "manage")
    assert "Manage your subscription (watches, how often, pause): " in text
    assert _deliveries(config, "new.person@example.org") == [("sent",)]
    # The link in the digest opens their subscription.
    assert svc.manage(manage).email == "new.person@example.org"


def test_the_manage_link_changes_the_frequency_pauses_and_unsubscribes(
    data_dir: Path, replay: ReplayServer, config: Path, cli: Callable[..., CliResult]
) -> None:
    svc = _service(config)
    svc.subscribe("reader@example.org", ["health"], "weekly")
    view = svc.confirm(_link(_outbox(config)[0], "confirm"))
    token = view.manage_token

    changed = svc.update_subscription(token, ["health", "short-breaks"], "daily", False)
    assert (changed.frequency, changed.subscribed_slugs) == ("daily", ("health", "short-breaks"))
    assert _subscriber(config, "reader@example.org") == ("web", 1, "daily", 1, 0, 0)

    paused = svc.update_subscription(token, ["health"], "daily", True)
    assert paused.paused and paused.subscribed_slugs == ("health",)
    assert _subscriber(config, "reader@example.org") == ("web", 0, "daily", 1, 1, 0)
    replay.set_items([_source(data_dir, MATERNITY)])
    _poll(cli, config)
    assert _deliveries(config, "reader@example.org") == []  # paused: owed nothing

    resumed = svc.update_subscription(token, ["health"], "daily", False)
    assert not resumed.paused
    replay.set_items([_source(data_dir, PHARMACY)])
    _poll(cli, config)
    assert _deliveries(config, "reader@example.org") == [("pending",)]

    gone = svc.unsubscribe_all(token)
    assert gone.unsubscribed and gone.email == "reader@example.org"
    assert _subscriber(config, "reader@example.org") == ("web", 0, "daily", 1, 0, 1)
    assert _deliveries(config, "reader@example.org") == [("cancelled",)]
    result = cli("--config", config, "digest")
    assert "reader@example.org" not in result.stdout
    # The manage link still works: to subscribe again.
    back = svc.update_subscription(token, ["health"], "weekly", False)
    assert not back.unsubscribed
    assert _subscriber(config, "reader@example.org") == ("web", 1, "weekly", 1, 0, 0)

    for slugs, frequency, message in [
        ([], "weekly", "choose at least one watch"),
        (["no-such-watch"], "weekly", "there is no watch 'no-such-watch' to choose here"),
        (["health"], "hourly", "frequency must be weekly or daily, not 'hourly'"),
    ]:
        with pytest.raises(UsageError, match=re.escape(message)):
            svc.update_subscription(token, slugs, frequency, False)


def test_the_operators_subscribers_may_pause_but_their_watches_are_the_files(
    config: Path,
) -> None:
    svc = _service(config)
    svc.subscribe("officer@example.org", ["short-breaks"], "daily")
    [mail] = _outbox(config)
    assert mail["Subject"] == "Your alerts about written questions"
    assert "receives them already, about: Health." in _text(mail)
    view = svc.manage(_link(mail, "manage"))
    assert view.operator_managed
    assert [(w.slug, w.subscribed) for w in view.watches] == [("health", True)]
    with pytest.raises(UsageError, match="set by the operator"):
        svc.update_subscription(view.manage_token, ["health"], "daily", False)
    with pytest.raises(UsageError, match="there is no watch 'short-breaks' to choose here"):
        svc.update_subscription(view.manage_token, ["health", "short-breaks"], "weekly", False)
    assert svc.update_subscription(view.manage_token, ["health"], "weekly", True).paused
    # The file does not undo a pause, and the pause does not make the config out of step.
    assert _subscriber(config, "officer@example.org") == ("config", 0, "weekly", 0, 1, 0)
    assert svc._in_step()  # sync.in_step on the service's own connection


# -- nothing revealed ----------------------------------------------------------------------------


def test_an_address_subscribed_already_gets_the_same_answer_and_nothing_changes(
    config: Path,
) -> None:
    svc = _service(config)
    svc.subscribe("known@example.org", ["health"], "weekly")
    svc.confirm(_link(_outbox(config)[0], "confirm"))
    before = rows(_db(config), "SELECT * FROM subscriber ORDER BY id")
    subscriptions = rows(_db(config), "SELECT * FROM subscription ORDER BY subscriber_id")

    answers = [
        svc.subscribe(address, ["short-breaks"], "daily", client="203.0.113.9")
        for address in ("known@example.org", "officer@example.org", "stranger@example.org")
    ]
    assert answers == [None, None, None]
    mails = [
        _outbox(config, a)[-1]
        for a in ("known@example.org", "officer@example.org", "stranger@example.org")
    ]
    assert [m["Subject"] for m in mails] == [
        "Your alerts about written questions",
        "Your alerts about written questions",
        "Confirm your alerts about written questions",
    ]
    # The subscribed ones are told so, with a manage link, in their own mailbox only.
    for msg in mails[:2]:
        assert svc.manage(_link(msg, "manage")).email == msg["To"]
        assert "nothing has changed" in _text(msg)
    after = rows(_db(config), "SELECT * FROM subscriber ORDER BY id")
    assert after[: len(before)] == before
    assert rows(_db(config), "SELECT * FROM subscription ORDER BY subscriber_id")[:2] == (
        subscriptions
    )
    # The same refusals, whoever the address is.
    for address in ("known@example.org", "officer@example.org", "stranger@example.org"):
        with pytest.raises(UsageError) as refused:
            svc.subscribe(address, ["nothing-such"], "weekly")
        assert str(refused.value) == "there is no watch 'nothing-such' to subscribe to"


def test_expired_tampered_and_replaced_links_are_refused(config: Path) -> None:
    clock = Clock()
    svc = _service(config, clock)
    svc.subscribe("late@example.org", ["health"], "weekly")
    token = _link(_outbox(config)[0], "confirm")
    sid, expires, signature = token.split(".")

    not_valid = "this link is not valid, or a newer mail replaced it: use the latest one"
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for bad in [
        f"{sid}.{expires}.{flipped}",  # signature
        f"{sid}.{int(expires) + 3600}.{signature}",  # a longer life
        f"{int(sid) + 1}.{expires}.{signature}",  # someone else
        token[:-1],
        "",
        "../../etc/passwd",
        token + "x",
    ]:
        with pytest.raises(UsageError) as refused:
            svc.confirm(bad)
        assert str(refused.value) == not_valid
    # A confirmation link is not a manage link.
    with pytest.raises(UsageError, match=r"^this link is not valid \(was it copied whole\?\)$"):
        svc.manage(token)

    clock.advance(hours=48, seconds=1)
    with pytest.raises(UsageError) as late:
        svc.confirm(token)
    assert str(late.value) == "this link has expired: subscribe again to get a new one"
    assert _subscriber(config, "late@example.org")[1:4] == (0, "weekly", 0)

    # A new request replaces the old link: only the newest works.
    svc.subscribe("late@example.org", ["short-breaks"], "daily")
    newer = _link(_outbox(config)[1], "confirm")
    clock.advance(hours=-48)
    with pytest.raises(UsageError, match="replaced"):
        svc.confirm(token)
    clock.advance(hours=48)
    view = svc.confirm(newer)
    assert (view.frequency, view.subscribed_slugs) == ("daily", ("short-breaks",))

    clock.advance(days=91)
    with pytest.raises(UsageError) as old:
        svc.manage(view.manage_token)
    assert str(old.value) == "this link has expired: use the one in your latest digest"


def test_rate_limits_per_address_and_per_client(config: Path) -> None:
    clock = Clock()
    svc = _service(config, clock)
    for _ in range(3):
        svc.subscribe("busy@example.org", ["health"], "weekly")
        svc.subscribe("officer@example.org", ["health"], "weekly")
    sent = len(_outbox(config))
    assert sent == 6
    for address in ("busy@example.org", "officer@example.org"):
        with pytest.raises(TooManyRequests) as refused:
            svc.subscribe(address, ["health"], "weekly")
        assert str(refused.value) == "too many requests, try again later"
    assert len(_outbox(config)) == sent
    clock.advance(days=1, seconds=1)
    svc.subscribe("busy@example.org", ["health"], "weekly")
    assert len(_outbox(config)) == sent + 1

    # Per client: 20 attempts an hour, valid or not, whatever the address.
    client = "192.0.2.44"
    for i in range(20):
        try:
            svc.subscribe(f"person{i}@example.org" if i % 2 else "not an address", [], "weekly",
                          query="health", client=client)  # fmt: skip
        except UsageError as exc:
            assert "is not a valid email address" in str(exc)
    with pytest.raises(TooManyRequests, match="^too many requests, try again later$"):
        svc.subscribe("fresh@example.org", ["health"], "weekly", client=client)
    svc.subscribe("fresh@example.org", ["health"], "weekly", client="192.0.2.45")
    with pytest.raises(UsageError, match="not valid"):
        svc.confirm("1.1.x", client="192.0.2.46")
    for _ in range(29):
        with pytest.raises(UsageError):
            svc.confirm("1.1.x", client="192.0.2.46")
    with pytest.raises(TooManyRequests):
        svc.confirm(_link(_outbox(config, "fresh@example.org")[-1], "confirm"), client="192.0.2.46")
    clock.advance(hours=1, seconds=1)
    svc.subscribe("later@example.org", ["health"], "weekly", client=client)
    # The table keeps keyed hashes, never an address or a client.
    keys = rows(_db(config), "SELECT kind, key FROM rate_event")
    assert keys and not [k for _, k in keys if "@" in k or "." in k]


# -- "alert me for this search" ------------------------------------------------------------------


def test_a_search_becomes_a_personal_watch_once_confirmed(
    data_dir: Path, replay: ReplayServer, config: Path, cli: Callable[..., CliResult]
) -> None:
    replay.set_items([_source(data_dir, MATERNITY)])
    _poll(cli, config)
    svc = _service(config)
    svc.subscribe("searcher@example.org", [], "weekly", query="  maternity   services ")
    [mail] = _outbox(config)
    assert "  - maternity services\n" in _text(mail)
    [watch] = rows(
        _db(config),
        "SELECT w.name, w.slug, w.query, w.active, w.origin, s.email FROM watch w "
        "JOIN subscriber s ON s.id = w.owner_id",
    )
    assert watch == (
        "maternity services", "maternity-services", "maternity services", 0, "web",
        "searcher@example.org",
    )  # fmt: skip
    view = svc.confirm(_link(mail, "confirm"))
    [mine] = [w for w in view.watches if w.personal]
    assert (mine.slug, mine.subscribed, mine.query) == (
        "maternity-services", True, "maternity services",
    )  # fmt: skip
    # Active, with its history matched (for its page), none of it owed.
    assert rows(
        _db(config),
        "SELECT w.active, count(m.id) FROM watch w LEFT JOIN watch_match m ON m.watch_id = w.id "
        "WHERE w.slug = 'maternity-services' GROUP BY w.id HAVING count(m.id) > 0",
    ) == [(1, 2)]  # the question's tabled and holding-answer events
    assert _deliveries(config, "searcher@example.org") == []
    # Someone else's same search is a watch of their own, and its name does not count them.
    svc.subscribe("second@example.org", [], "weekly", query="maternity services")
    [(name, slug)] = rows(
        _db(config),
        "SELECT w.name, w.slug FROM watch w JOIN subscriber s ON s.id = w.owner_id "
        "WHERE s.email = 'second@example.org'",
    )
    assert re.fullmatch(r"maternity services \([0-9a-f]{4}\)", name)
    assert re.fullmatch(r"maternity-services-[0-9a-f]{6}", slug)

    # Someone subscribed already asks for a search: it waits for its own link.
    svc.subscribe("officer@example.org", ["health"], "weekly", query="pharmacy")
    [added] = _outbox(config, "officer@example.org")
    assert added["Subject"] == "Confirm your new alert about written questions"
    assert "to the alerts officer@example.org receives:\n\n  - pharmacy\n" in _text(added)
    assert rows(_db(config), "SELECT active FROM watch WHERE slug = 'pharmacy'") == [(0,)]
    officer = svc.confirm(_link(added, "confirm"))
    assert [w.slug for w in officer.watches if w.personal and w.subscribed] == ["pharmacy"]
    replay.set_items([_source(data_dir, PHARMACY)])
    _poll(cli, config)
    assert _deliveries(config, "officer@example.org") == [("pending",)]

    # Dropping it on the manage page cancels what it was owed and retires the watch.
    kept = svc.update_subscription(officer.manage_token, ["health"], "weekly", False)
    assert [w.slug for w in kept.watches if w.personal] == []
    assert rows(_db(config), "SELECT active FROM watch WHERE slug = 'pharmacy'") == [(0,)]


def test_a_malformed_search_is_refused_with_the_parsers_message(config: Path) -> None:
    svc = _service(config)
    for query in ["hos*pice", "heading:(a OR b)", '"unclosed', "", "   ", "word^2"]:
        with pytest.raises(UsageError) as refused:
            parse(query)
        with pytest.raises(UsageError) as ours:
            svc.subscribe("q@example.org", [], "weekly", query=query)
        assert str(ours.value) == str(refused.value)
        assert "\n" not in str(ours.value)
    assert _outbox(config) == []
    assert rows(_db(config), "SELECT count(*) FROM subscriber WHERE origin = 'web'") == [(0,)]
    with pytest.raises(UsageError, match="choose at least one watch"):
        svc.subscribe("q@example.org", [], "weekly")
    with pytest.raises(UsageError, match="frequency must be weekly or daily"):
        svc.subscribe("q@example.org", ["health"], "monthly")
    with pytest.raises(UsageError, match="'a b@example.org' is not a valid email address"):
        svc.subscribe("a b@example.org", ["health"], "weekly")


# -- config reload -------------------------------------------------------------------------------


def test_a_config_reload_keeps_web_subscribers_and_personal_watches(
    replay: ReplayServer,
    config: Path,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    svc = _service(config)
    svc.subscribe("web@example.org", ["short-breaks"], "daily", query="respite")
    web = svc.confirm(_link(_outbox(config)[0], "confirm"))
    svc.subscribe("adopted@example.org", ["health"], "weekly", query="hospice")
    svc.confirm(_link(_outbox(config, "adopted@example.org")[0], "confirm"))
    svc.close()

    # The operator drops "Short breaks" and the officer, adds a watch called "respite" and
    # lists adopted@ in the file.
    write_config(
        _config_text(
            replay.base_url,
            "[[watches]]\nname = 'Health'\nquery = 'health'\n"
            "[[watches]]\nname = 'Respite'\nquery = 'respite care'\n"
            "[[subscribers]]\nemail = 'adopted@example.org'\nwatches = ['Respite']\n",
        )
    )
    assert cli("--config", config, "init").exit_code == 0
    assert _subscriber(config, "web@example.org") == ("web", 1, "daily", 1, 0, 0)
    assert _subscriber(config, "officer@example.org")[:2] == ("config", 0)
    assert _subscriber(config, "adopted@example.org")[:2] == ("config", 1)
    watches = rows(_db(config), "SELECT name, slug, query, active, origin FROM watch ORDER BY id")
    assert watches == [
        ("Health", "health", "health", 1, "config"),
        ("Short breaks", "short-breaks", '"short breaks"', 0, "config"),
        ("respite (2)", "respite", "respite", 1, "web"),  # renamed: the file took its name
        ("hospice", "hospice", "hospice", 1, "web"),
        ("Respite", "respite-2", "respite care", 1, "config"),
    ]
    subs = rows(
        _db(config),
        "SELECT s.email, w.slug FROM subscription x JOIN subscriber s ON s.id = x.subscriber_id "
        "JOIN watch w ON w.id = x.watch_id WHERE x.unsubscribed_at IS NULL ORDER BY 1, 2",
    )
    assert subs == [
        ("adopted@example.org", "hospice"),  # their own search stays theirs
        ("adopted@example.org", "respite-2"),
        ("officer@example.org", "health"),
        ("web@example.org", "respite"),
        ("web@example.org", "short-breaks"),
    ]
    # In step: the next command does not sync again.
    again = _service(config)
    assert again._in_step()
    mine = again.manage(web.manage_token)
    assert [(w.name, w.subscribed, w.personal) for w in mine.watches] == [
        ("respite (2)", True, True),
        ("Health", False, False),
        ("Respite", False, False),
    ]


def test_without_self_service_everything_refuses_and_digests_carry_no_manage_link(
    data_dir: Path,
    replay: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    config = write_config(_config_text(replay.base_url, web="self_service = false\n"))
    svc = _service(config)
    calls: list[Callable[[], object]] = [
        lambda: svc.subscribable_watches(),
        lambda: svc.subscribe("a@example.org", ["health"], "weekly"),
        lambda: svc.confirm("1.2.abcdefghijklmnopqrstuvwx"),
        lambda: svc.manage("1.2.abcdefghijklmnopqrstuvwx"),
        lambda: svc.update_subscription("1.2.abcdefghijklmnopqrstuvwx", ["health"], "daily", True),
        lambda: svc.unsubscribe_all("1.2.abcdefghijklmnopqrstuvwx"),
    ]
    for call in calls:
        with pytest.raises(UsageError, match=r"^subscribing on this site is turned off"):
            call()
    replay.set_items([_source(data_dir, MATERNITY)])
    _poll(cli, config)
    assert cli("--config", config, "digest").exit_code == 0
    [digest] = _outbox(config)
    assert "/manage/" not in digest.as_string()
    assert f"{SITE}/unsubscribe/" in _text(digest)


def test_requests_never_confirmed_are_forgotten_after_a_week(config: Path) -> None:
    clock = Clock()
    svc = _service(config, clock)
    svc.subscribe("forgetful@example.org", [], "weekly", query="hospice")
    assert rows(_db(config), "SELECT count(*) FROM watch WHERE origin = 'web'") == [(1,)]
    clock.advance(days=8)
    svc.subscribe("other@example.org", ["health"], "weekly")
    assert rows(_db(config), "SELECT email FROM subscriber WHERE origin = 'web'") == [
        ("other@example.org",)
    ]
    assert rows(_db(config), "SELECT count(*) FROM watch WHERE origin = 'web'") == [(0,)]


# -- odd input never gives a traceback -----------------------------------------------------------

_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_ADDRESSES = st.one_of(
    st.text(max_size=80),
    st.emails(),
    st.builds(
        lambda local, domain: f"{local}@{domain}",
        st.text(min_size=1, max_size=70),
        st.sampled_from(["example.org", "ex-ample.org", "a", "-bad.org", "example..org"]),
    ),
)
_TOKENS = st.one_of(
    st.text(max_size=60),
    st.from_regex(r"[0-9]{1,20}\.[0-9]{1,13}\.[A-Za-z0-9_-]{20,26}", fullmatch=True),
    st.text(alphabet=string.printable, max_size=60),
)


@_SETTINGS
@given(address=_ADDRESSES, query=st.one_of(st.none(), st.text(max_size=60)), token=_TOKENS)
def test_odd_addresses_searches_and_links_are_a_usage_error_or_work(
    config: Path, address: str, query: str | None, token: str
) -> None:
    svc = _service(config)
    try:
        try:
            svc.subscribe(address, ["health"], "weekly", query=query)
        except TooManyRequests:
            pass
        except UsageError as exc:
            assert "\n" not in str(exc) and str(exc)
        for call in (svc.confirm, svc.manage, svc.unsubscribe_all):
            with pytest.raises(UsageError) as refused:
                call(token)
            assert "\n" not in str(refused.value)
    finally:
        svc.close()
