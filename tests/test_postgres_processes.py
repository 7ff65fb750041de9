"""Several pqwatch processes on one PostgreSQL database (issue 19, item 2).

Real `pqwatch run` and `pqwatch digest` processes against a throw-away server (tests/pg.py:
run with --postgres), a replay of the API and a real SMTP server. What is counted is what the
server accepted, by recipient and Message-ID, and the poll_run rows stored: every digest once,
every scheduled poll once, with a daemon killed with SIGKILL half-way.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pqwatch.store.db import Database
from pqwatch.testing.replay import ReplayServer, load_items
from tests.conftest import CliResult, api_config
from tests.smtp_server import MailServer

REPO = Path(__file__).resolve().parent.parent


def _items(data_dir: Path, n: int) -> list[dict[str, Any]]:
    """n answered questions from the recordings, all matched by the watch "hospices"."""
    base = data_dir / "uk_parliament"
    found = load_items(
        [
            base / "monthly_list_dumps" / "commons_tabled_2024-08.json.gz",
            base / "longform_detail_text" / "longform_2024-08.json.gz",
        ]
    ).values()
    answered = [dict(v) for v in found if v.get("answerText") and v.get("dateAnswered")][:n]
    assert len(answered) == n
    for v in answered:
        v["heading"] = "Hospices: " + (v.get("heading") or "")
    return answered


def _config(
    pg_url: str, replay: ReplayServer, smtp: MailServer, addresses: list[str], schedule: str = ""
) -> str:
    subs = "".join(f'[[subscribers]]\nemail = "{a}"\n' for a in addresses)
    text = api_config(
        replay.base_url,
        extra='[[watches]]\nname = "Hospices"\nquery = "hospices"\n'
        + subs
        + '[email]\nfrom = "pqwatch <digest@pq.example.org>"\n'
        f'smtp_host = "127.0.0.1"\nsmtp_port = {smtp.port}\nsecurity = "none"\n'
        f"timeout_seconds = 30\n[schedule]\n{schedule}",
        initial_lookback_days=3000,
    )
    return text.replace('url = "sqlite:///pqwatch.db"', f'url = "{pg_url}"')


def _pqwatch(config: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PQWATCH_")}
    return subprocess.Popen(
        [sys.executable, "-m", "pqwatch", "--config", str(config), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Daemon:
    """A `pqwatch run --log-format json` child, its log lines read with deadlines."""

    def __init__(self, config: Path) -> None:
        self.proc = _pqwatch(config, "run", "--log-format", "json")
        self.lines: list[dict[str, Any]] = []
        self._buf = b""

    def _read(self, deadline: float) -> bool:
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return False
        chunk = os.read(fd, 65536)
        if not chunk:
            return False
        self._buf += chunk
        while b"\n" in self._buf:
            line, _, self._buf = self._buf.partition(b"\n")
            if line.strip():
                self.lines.append(json.loads(line))
        return True

    def wait_for(self, test: Callable[[list[dict[str, Any]]], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not test(self.lines):
            if not self._read(deadline):
                raise AssertionError(f"not logged within {timeout} s; saw {self.lines}")

    def events(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.lines if e["event"] == event]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.wait_for(lambda lines: any(e["event"] == "stopped" for e in lines), 60)
                self.proc.wait(30)
            finally:
                if self.proc.poll() is None:
                    self.proc.kill()
        self.proc.communicate(timeout=30)


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
        d.proc.communicate(timeout=30)


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql))]
    finally:
        db.dispose()


def _per_recipient(smtp: MailServer) -> Counter[str]:
    return Counter(r.rcpt_tos[0] for r in smtp.received)


def _setup(
    pg_url: str,
    data_dir: Path,
    replay: ReplayServer,
    smtp: MailServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
    n_subscribers: int,
    *,
    schedule: str = "",
    poll: bool = False,
) -> tuple[Path, list[str]]:
    addresses = [f"reader{i:03d}@example.org" for i in range(n_subscribers)]
    replay.set_items(_items(data_dir, 3))
    config = write_config(_config(pg_url, replay, smtp, addresses, schedule))
    done = cli("--config", config, "init")
    assert done.exit_code == 0, done.stderr
    if poll:
        done = cli("--config", config, "poll", "--since", "2024-08-01", "--until", "2024-08-31")
        assert done.exit_code == 0, done.stderr
    return config, addresses


def _polled(d: Daemon) -> list[str]:
    return [e["status"] for e in d.events("poll")]


def test_two_daemons_send_one_digest_and_poll_once(
    pg_url: str,
    data_dir: Path,
    replay: ReplayServer,
    smtp: MailServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
    daemons: list[Daemon],
) -> None:
    """Both start together: each polls at start and sends the digests due at start; one
    subscriber, due at once."""
    config, [address] = _setup(pg_url, data_dir, replay, smtp, write_config, cli, 1)
    daemons += [Daemon(config), Daemon(config)]
    for d in daemons:
        d.wait_for(lambda lines: {"poll", "digests"} <= {e["event"] for e in lines}, 60)
    # The second daemon found the lease held, or the slot's poll done.
    assert sorted(s for d in daemons for s in _polled(d)) == ["ok", "skipped"], [
        d.lines for d in daemons
    ]
    for d in daemons:
        d.stop()
        assert d.proc.returncode == 0
    assert _per_recipient(smtp) == Counter({address: 1})
    assert _rows(pg_url, "SELECT status, count(*) FROM digest GROUP BY status") == [("sent", 1)]
    [(sources, runs)] = _rows(pg_url, "SELECT count(DISTINCT source), count(*) FROM poll_run")
    assert runs == sources  # each source polled once


def test_each_scheduled_poll_runs_once_with_two_daemons(
    pg_url: str,
    data_dir: Path,
    replay: ReplayServer,
    smtp: MailServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
    daemons: list[Daemon],
) -> None:
    """A minute apart, each daemon on its own clock: the start-up slot and the next one are
    polled once each, by one daemon or the other. (No subscribers: polls only.)"""
    config, _ = _setup(
        pg_url, data_dir, replay, smtp, write_config, cli, 0, schedule="poll_every_minutes = 1\n"
    )
    daemons.append(Daemon(config))
    time.sleep(2)  # the second daemon's slots are 2 s after the first's
    daemons.append(Daemon(config))
    for d in daemons:
        d.wait_for(lambda lines: [e["event"] for e in lines].count("poll") >= 2, 120)
    statuses = sorted(s for d in daemons for s in _polled(d)[:2])
    assert statuses == ["ok", "ok", "skipped", "skipped"], [d.lines for d in daemons]
    for d in daemons:
        d.stop()
    [(sources, runs)] = _rows(pg_url, "SELECT count(DISTINCT source), count(*) FROM poll_run")
    assert runs == 2 * sources


def test_a_daemon_killed_while_sending_is_taken_over_within_a_minute(
    pg_url: str,
    data_dir: Path,
    replay: ReplayServer,
    smtp: MailServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
    daemons: list[Daemon],
) -> None:
    """kill -9 of the daemon sending digests, while the server stalls a recipient: the other
    daemon takes the job over, sends the digest that was open (same Message-ID) and the
    rest; every subscriber gets one digest."""
    n = 6
    config, addresses = _setup(pg_url, data_dir, replay, smtp, write_config, cli, n, poll=True)
    smtp.handler.rcpt_delay = 1.5  # each digest takes 1.5 s: time to kill mid-run
    daemons += [Daemon(config), Daemon(config)]
    deadline = time.monotonic() + 60
    while len(smtp.received) < 2:
        assert time.monotonic() < deadline, "no digests sent"
        time.sleep(0.05)
    [(holder,)] = _rows(pg_url, "SELECT holder FROM job_lease WHERE name = 'digests'")
    pid = int(holder.rsplit(":", 1)[1])
    [victim] = [d for d in daemons if d.proc.pid == pid]
    [survivor] = [d for d in daemons if d is not victim]
    victim.proc.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    victim.proc.communicate(timeout=30)
    open_digest = _rows(pg_url, "SELECT message_id FROM digest WHERE status = 'pending'")
    assert len(smtp.received) < n, "the run finished before the kill"

    survivor.wait_for(lambda lines: any("took_over_from" in e for e in lines), 60)
    took_over = time.monotonic() - killed_at
    assert took_over < 60
    taken = next(e for e in survivor.lines if "took_over_from" in e)
    assert taken["event"] == "digests" and taken["took_over_from"] == holder
    survivor.stop()
    assert survivor.proc.returncode == 0
    assert _per_recipient(smtp) == Counter({a: 1 for a in addresses})
    sent_ids = {r.message["Message-ID"] for r in smtp.received}
    assert {m for (m,) in open_digest} <= sent_ids  # the open digest went, same Message-ID
    assert _rows(pg_url, "SELECT status, count(*) FROM digest GROUP BY status") == [("sent", n)]
    print(f"taken over {took_over:.1f} s after the kill")


def test_two_digest_runs_share_the_work_and_send_each_digest_once(
    pg_url: str,
    data_dir: Path,
    replay: ReplayServer,
    smtp: MailServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    n = 200
    config, addresses = _setup(pg_url, data_dir, replay, smtp, write_config, cli, n, poll=True)
    runs = [_pqwatch(config, "digest", "--format", "json") for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in runs]
    assert [p.returncode for p in runs] == [0, 0], outs
    assert _per_recipient(smtp) == Counter({a: 1 for a in addresses})
    assert len({r.message["Message-ID"] for r in smtp.received}) == n
    said = [Counter(o["status"] for o in json.loads(out)) for out, _ in outs]
    assert said[0]["sent"] + said[1]["sent"] == n
    assert said[0]["sent"] > 0 and said[1]["sent"] > 0, said  # both did some of the work
    assert _rows(pg_url, "SELECT status, count(*) FROM digest GROUP BY status") == [("sent", n)]
    print(f"sent by each run: {said[0]['sent']} and {said[1]['sent']}")
