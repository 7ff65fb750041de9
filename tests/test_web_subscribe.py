"""Subscribing on the web, through the pages a person uses: the form (with its CSRF token),
one confirmation mail and nothing else, a Confirm button (a link scanner opening the link
confirms nothing), the manage page changing frequency and unsubscribing; every form refused
without its token, and none of it offered when self-service is off."""

from __future__ import annotations

import email
import re
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from pqwatch.config import load_config
from pqwatch.service import PQWatch
from pqwatch.web.app import create_app
from tests import shared_archive
from tests.conftest import CliResult, rows
from tests.test_web import build_archive

SITE = "http://testserver"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    folder = tmp_path_factory.mktemp("web-subscribe")
    return shared_archive.build(request, lambda: build_archive(folder))


@pytest.fixture
def site_config(
    built: Path, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A private copy of the archive (subscribing changes it)."""
    return shared_archive.private_copy(request, monkeypatch, built, tmp_path)


@pytest.fixture
def web(site_config: Path) -> Iterator[tuple[TestClient, Path]]:
    config = site_config
    with config.open("a") as f:
        f.write(f'\n[web]\nsite_url = "{SITE}"\n')
    with (
        PQWatch(load_config(config)) as svc,
        TestClient(
            create_app(svc, site_url=SITE, self_service=True), follow_redirects=False
        ) as client,
    ):
        yield client, config


def _mails(config: Path) -> list[EmailMessage]:
    found = []
    for path in sorted((config.parent / "outbox").glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=default)
        assert isinstance(msg, EmailMessage)
        found.append(msg)
    return found


def _csrf(page: str) -> str:
    [token] = set(CSRF.findall(page))
    return token


def test_subscribe_confirm_manage_and_unsubscribe_on_the_web(
    web: tuple[TestClient, Path], cli: Callable[..., CliResult]
) -> None:
    client, config = web
    db = config.parent / "pqwatch.db"
    form = client.get("/subscribe")
    assert form.status_code == 200 and 'name="email"' in form.text
    assert 'value="trade"' in form.text  # the operator's watches are offered
    token = _csrf(form.text)

    # Without the form's token (another site's form): refused, nothing sent.
    forged = client.post("/subscribe", data={"email": "new@example.org", "watch": "trade"})
    assert forged.status_code == 403 and _mails(config) == []

    done = client.post("/subscribe", data={"csrf": token, "email": "new@example.org",
                                           "watch": "trade", "frequency": "weekly"})  # fmt: skip
    assert done.status_code == 200 and "Check your email" in done.text
    [mail] = _mails(config)  # one confirmation mail, and nothing else
    assert mail["To"] == "new@example.org"
    body = mail.get_body(("plain",))
    assert body is not None
    [link] = re.findall(rf"{SITE}(/confirm/\S+)", body.get_content())
    assert rows(db, "SELECT active FROM subscriber WHERE email = 'new@example.org'") == [(0,)]

    # Opening the link (as a mail scanner would) shows a button and confirms nothing.
    opened = client.get(link)
    assert opened.status_code == 200 and ">Confirm</button>" in opened.text
    assert rows(db, "SELECT active FROM subscriber WHERE email = 'new@example.org'") == [(0,)]
    confirmed = client.post(link, data={"csrf": _csrf(opened.text)})
    assert confirmed.status_code == 200 and "confirmed" in confirmed.text
    assert rows(db, "SELECT active, frequency FROM subscriber "
                    "WHERE email = 'new@example.org'") == [(1, "weekly")]  # fmt: skip

    # The next digest run sends them their first digest (nothing new matched yet: it says so).
    sent = cli("--config", config, "digest")
    assert sent.exit_code == 0, sent.stderr
    first = [m for m in _mails(config) if m["To"] == "new@example.org"][1:]
    assert len(first) == 1 and "digest" in first[0]["Subject"].lower()
    text = first[0].get_body(("plain",))
    assert text is not None and "Nothing new matched your watches" in text.get_content()

    [manage] = set(re.findall(r'action="(/manage/[^"]+)"', confirmed.text))
    daily = client.post(manage, data={"csrf": _csrf(confirmed.text), "action": "update",
                                      "watch": "trade", "frequency": "daily"})  # fmt: skip
    assert daily.status_code == 200 and "Saved." in daily.text
    assert rows(db, "SELECT frequency FROM subscriber WHERE email = 'new@example.org'") == [
        ("daily",)
    ]
    gone = client.post(manage, data={"csrf": _csrf(daily.text), "action": "unsubscribe"})
    assert gone.status_code == 200 and "unsubscribed from everything" in gone.text
    assert rows(db, "SELECT unsubscribed_at IS NOT NULL FROM subscriber "
                    "WHERE email = 'new@example.org'") == [(1,)]  # fmt: skip
    # The confirmation and the first digest to them, and nothing else.
    assert [m["To"] for m in _mails(config)].count("new@example.org") == 2


def test_alert_me_for_this_search_and_an_address_already_subscribed(
    web: tuple[TestClient, Path],
) -> None:
    client, config = web
    results = client.get("/search", params={"q": "hospice"})
    [alert] = re.findall(r'href="(/subscribe\?q=[^"]+)"', results.text)
    form = client.get(alert.replace("&amp;", "&"))
    assert "<code>hospice</code>" in form.text
    answer = client.post("/subscribe", data={"csrf": _csrf(form.text), "q": "hospice",
                                             "email": "officer@example.org"})  # fmt: skip
    new = client.post("/subscribe", data={"csrf": _csrf(form.text), "q": "hospice",
                                          "email": "someone.new@example.org"})  # fmt: skip
    # The same answer for an address already subscribed and a new one: nothing revealed.
    assert answer.status_code == new.status_code == 200
    assert answer.text.replace("officer@example.org", "X") == new.text.replace(
        "someone.new@example.org", "X"
    )
    # Confirmed, the search becomes a personal watch: theirs, listed on no public page.
    mail = next(m for m in _mails(config) if m["To"] == "someone.new@example.org")
    body = mail.get_body(("plain",))
    assert body is not None
    [link] = re.findall(rf"{SITE}(/confirm/\S+)", body.get_content())
    opened = client.get(link)
    assert client.post(link, data={"csrf": _csrf(opened.text)}).status_code == 200
    db = config.parent / "pqwatch.db"
    [(slug,)] = rows(db, "SELECT slug FROM watch WHERE origin = 'web' AND active")
    assert slug not in client.get("/watches").text
    assert slug not in client.get("/feeds/").text
    bad = client.post("/subscribe", data={"csrf": _csrf(form.text), "q": "hospice (",
                                          "email": "a@example.org"})  # fmt: skip
    assert bad.status_code == 200 and "malformed query" in bad.text


def test_self_service_off_offers_nothing(site_config: Path) -> None:
    config = site_config
    with config.open("a") as f:
        f.write(f'\n[web]\nsite_url = "{SITE}"\nself_service = false\n')
    with PQWatch(load_config(config)) as svc, TestClient(create_app(svc, site_url=SITE)) as c:
        assert c.get("/subscribe").status_code == 404
        assert "/subscribe" not in c.get("/").text


def test_a_digest_links_to_the_manage_page_of_a_local_install(
    site_config: Path, cli: Callable[..., CliResult]
) -> None:
    """Without a public address, a digest still leads to `pqwatch serve`'s manage page (at
    the address the config gives it); the unsubscribe header stays a mailto."""
    with site_config.open("a") as f:
        f.write("\n[web]\nport = 8123\n")
    sent = cli("--config", site_config, "digest")
    assert sent.exit_code == 0, sent.stderr
    [msg] = _mails(site_config)
    body = msg.get_body(("plain",))
    assert body is not None
    assert re.search(r"http://127\.0\.0\.1:8123/manage/\S+", body.get_content())
    assert "127.0.0.1" not in (msg["List-Unsubscribe"] or "")
