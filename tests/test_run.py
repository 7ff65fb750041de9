"""The daemon, `run --once`, `status` and operator alerts."""

from __future__ import annotations

import email
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from email import policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pqwatch.errors import SourceError, UsageError
from pqwatch.locks import single_instance
from pqwatch.notify.due import is_due, latest_slot, next_slot
from pqwatch.scheduler import (
    DIGEST_GRACE_SECONDS,
    build_scheduler,
    configure_logging,
    guarded,
)
from pqwatch.testing.replay import Fault, ReplayServer, load_items
from tests.conftest import CliResult, api_config, open_service, rows

LONDON = ZoneInfo("Europe/London")
WATCH = """
[[watches]]
name = "Hospice funding"
query = "hospice OR hospices"
[[subscribers]]
email = "officer@example.org"
[email]
operator = "ops@example.org"
[schedule]
alert_after_failures = 2
"""


def _eml(folder: Path) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(p.read_bytes(), policy=policy.default)  # type: ignore[misc]
        for p in sorted(folder.glob("*.eml"))
    ]


# -- when things are due (pure) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "frequency", "expected"),
    [
        # Monday 08:00 slots; 23 Nov 2026 is a Monday.
        (datetime(2026, 11, 23, 8, 0, tzinfo=LONDON), "weekly", datetime(2026, 11, 23, 8, 0)),
        (datetime(2026, 11, 23, 7, 59, tzinfo=LONDON), "weekly", datetime(2026, 11, 16, 8, 0)),
        (datetime(2026, 11, 25, 12, 0, tzinfo=LONDON), "weekly", datetime(2026, 11, 23, 8, 0)),
        (datetime(2026, 11, 25, 12, 0, tzinfo=LONDON), "daily", datetime(2026, 11, 25, 8, 0)),
        (datetime(2026, 11, 25, 7, 0, tzinfo=LONDON), "daily", datetime(2026, 11, 24, 8, 0)),
        # Across the clocks going back (25 Oct 2026): still 08:00 local, i.e. 08:00 GMT.
        (datetime(2026, 10, 26, 9, 0, tzinfo=UTC), "weekly", datetime(2026, 10, 26, 8, 0)),
        # In summer time the 08:00 slot is 07:00 UTC.
        (datetime(2026, 7, 6, 7, 30, tzinfo=UTC), "weekly", datetime(2026, 7, 6, 8, 0)),
    ],
)
def test_latest_slot(now: datetime, frequency: str, expected: datetime) -> None:
    slot = latest_slot(now, frequency, "mon", "08:00", LONDON)
    assert slot.replace(tzinfo=None) == expected and slot.tzinfo == LONDON


def test_due_after_a_missed_slot_and_not_twice() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert is_due(None, now, "weekly", "mon", "08:00", LONDON)  # never sent: due at once
    last_week = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)
    assert is_due(last_week, now, "weekly", "mon", "08:00", LONDON)  # Monday's slot missed
    sent_monday = datetime(2026, 11, 23, 8, 1, tzinfo=UTC)
    assert not is_due(sent_monday, now, "weekly", "mon", "08:00", LONDON)
    assert next_slot(now, "weekly", "mon", "08:00", LONDON) == datetime(
        2026, 11, 30, 8, 0, tzinfo=LONDON
    )


# -- the scheduler's wiring ---------------------------------------------------------------------


def test_scheduler_jobs_are_triggers_with_generous_grace(
    write_config: Callable[..., Path],
) -> None:
    config = write_config(
        api_config("http://127.0.0.1:9", extra="[schedule]\npoll_every_minutes = 30\n"
                   'digest_time = "07:45"\n')
    )  # fmt: skip
    start = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)
    with open_service(config) as svc:
        scheduler = build_scheduler(svc, now=lambda: start)
        jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"poll", "digests"}
    poll, digests = jobs["poll"], jobs["digests"]
    assert poll.trigger.interval.total_seconds() == 30 * 60
    assert poll.next_run_time == start  # polls at once on start
    assert digests.misfire_grace_time == DIGEST_GRACE_SECONDS
    for job in (poll, digests):
        assert job.coalesce is True and job.max_instances == 1
    fire = digests.trigger.get_next_fire_time(None, start.astimezone(LONDON))
    assert fire == datetime(2026, 11, 23, 7, 45, tzinfo=LONDON)
    summer = digests.trigger.get_next_fire_time(None, datetime(2026, 7, 1, 12, tzinfo=LONDON))
    assert summer.utcoffset().total_seconds() == 3600 and (summer.hour, summer.minute) == (7, 45)


def test_a_failing_job_is_one_log_line_and_the_daemon_lives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def down() -> dict[str, object]:
        raise SourceError("uk_parliament: window 2026-11-21..2026-11-22: HTTP 503")

    def bug() -> dict[str, object]:
        raise RuntimeError("boom")

    with caplog.at_level(logging.INFO, logger="pqwatch"):
        guarded("poll", down)()
        guarded("poll", bug)()
        guarded("poll", lambda: {"status": "ok", "new_answers": 2})()
    messages = [(r.levelname, r.getMessage(), getattr(r, "fields", {})) for r in caplog.records]
    assert messages[0][:2] == ("ERROR", "poll") and "HTTP 503" in messages[0][2]["error"]
    assert messages[1][0] == "ERROR" and "crashed" in messages[1][1]
    assert messages[2] == ("INFO", "poll", {"status": "ok", "new_answers": 2})


def test_json_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    import sys as _sys

    configure_logging("json", _sys.stderr)
    from pqwatch.scheduler import log_event

    log_event("poll", status="ok", new_answers=3)
    line = json.loads(capsys.readouterr().err.strip())
    assert (line["event"], line["status"], line["new_answers"]) == ("poll", "ok", 3)
    logging.getLogger("pqwatch").handlers.clear()


def test_one_daemon_per_database(tmp_path: Path) -> None:
    db = str(tmp_path / "pq.db")
    with single_instance(db):
        with pytest.raises(UsageError, match="already running"), single_instance(db):
            pass
    with single_instance(db):  # released when the first one ends
        pass


# -- the cycle against a local API ------------------------------------------------------------


@pytest.fixture
def hospice_api(data_dir: Path, replay: ReplayServer) -> ReplayServer:
    base = data_dir / "uk_parliament"
    month = load_items(
        [
            base / "monthly_list_dumps" / "commons_tabled_2024-08.json.gz",
            base / "longform_detail_text" / "longform_2024-08.json.gz",
        ]
    )
    replay.set_items(v for v in month.values() if "ospice" in v["questionText"])
    return replay


def test_run_once_does_the_whole_cycle(
    hospice_api: ReplayServer, write_config: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    # The recordings are from 2024: look back far enough from today to reach them.
    config = write_config(api_config(hospice_api.base_url, extra=WATCH, initial_lookback_days=3000))
    result = cli("--config", config, "run", "--once")
    assert result.exit_code == 0, result.stderr
    assert "Cycle done: migrate -> poll -> digests -> feeds." in result.stdout
    [digest] = _eml(config.parent / "outbox")
    assert digest["To"] == "officer@example.org"
    assert "hospice" in digest.get_body(("plain",)).get_content().lower()  # type: ignore[union-attr]
    assert (config.parent / "feeds" / "hospice-funding.rss").exists()
    again = cli("--config", config, "run", "--once")
    assert again.exit_code == 0
    assert len(_eml(config.parent / "outbox")) == 1  # nothing sent twice


def test_a_missed_digest_is_sent_on_the_next_start(
    hospice_api: ReplayServer, write_config: Callable[..., Path]
) -> None:
    config = write_config(api_config(hospice_api.base_url, extra=WATCH, initial_lookback_days=120))
    outbox = config.parent / "outbox"
    first, *others = hospice_api.items.values()
    unanswered = dict(
        first, answerText=None, dateAnswered=None, answerIsHolding=None,
        answerIsCorrection=None, answeringMemberId=None,
    )  # fmt: skip
    hospice_api.set_items([unanswered, *others])
    # Sunday: first poll and the new subscriber's first digest.
    with open_service(config, now=date(2024, 9, 1)) as svc:
        svc.poll_cycle()
        assert svc.digest_cycle()["status"] == "ok"
    assert len(_eml(outbox)) == 1
    db = config.parent / "pqwatch.db"
    # The question is answered on Monday 2 September; the daemon is down at Monday 08:00 and
    # starts again on Wednesday.
    hospice_api.set_items([dict(first, dateAnswered="2024-09-02T00:00:00"), *others])
    with open_service(config, now=date(2024, 9, 4)) as svc:
        assert svc.poll_cycle()["new_answers"] == 1
        assert svc.digest_cycle()["status"] == "ok"
        assert svc.digest_cycle() == {"status": "ok"}  # the catch-up is not repeated
    second = _eml(outbox)[1]
    assert "1 new answer" in second["Subject"]
    assert rows(db, "SELECT count(*) FROM digest WHERE status = 'sent'") == [(2,)]


def test_operator_alert_once_after_n_failures_and_once_on_recovery(
    hospice_api: ReplayServer, write_config: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    config = write_config(api_config(hospice_api.base_url, extra=WATCH))
    outbox = config.parent / "outbox"
    hospice_api.add_fault(Fault("status", status=503, times=1000))
    with open_service(config, now=date(2024, 9, 1)) as svc:
        for _ in range(4):
            fields = svc.poll_cycle()
            assert fields["status"] == "failed"
    alerts = [m for m in _eml(outbox) if m["To"] == "ops@example.org"]
    assert len(alerts) == 1
    assert alerts[0]["Subject"] == "pqwatch: polling uk_parliament has failed 2 times in a row"
    assert "HTTP 503" in alerts[0].get_content()  # type: ignore[union-attr]
    assert not [m for m in _eml(outbox) if m["To"] != "ops@example.org"]  # never subscribers

    status = cli("--config", config, "status")
    assert status.exit_code == 0
    assert "4 failure(s) in a row" in status.stdout
    assert "last error: uk_parliament: window" in status.stdout and "HTTP 503" in status.stdout

    hospice_api.clear_faults()
    with open_service(config, now=date(2024, 9, 1)) as svc:
        assert svc.poll_cycle()["status"] == "ok"
        svc.poll_cycle()
    subjects = [m["Subject"] for m in _eml(outbox) if m["To"] == "ops@example.org"]
    assert subjects.count("pqwatch: polling uk_parliament has recovered") == 1
    assert len(subjects) == 2
    assert "0 failure(s) in a row" in cli("--config", config, "status").stdout


class _Lines:
    """Lines of a child's stderr, read with a deadline (a bare readline() can block for
    ever when the child stays quiet)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        self.fd = proc.stderr.fileno()
        self.buf = b""

    def next(self, deadline: float) -> str | None:
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:  # the child closed stderr
                line, self.buf = self.buf, b""
                return line.decode() or None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode() + "\n"


_READERS: dict[int, _Lines] = {}


def _wait_for(proc: subprocess.Popen[str], text: str, timeout: float = 20) -> list[str]:
    reader = _READERS.setdefault(proc.pid, _Lines(proc))
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while (line := reader.next(deadline)) is not None:
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"{text!r} not logged within {timeout} s; saw {seen}")


def test_daemon_polls_rides_out_an_outage_and_stops_on_sigterm(
    hospice_api: ReplayServer, write_config: Callable[..., Path], request: pytest.FixtureRequest
) -> None:
    config = write_config(
        api_config(hospice_api.base_url, extra=WATCH + "poll_every_minutes = 1\n",
                   max_retries=0, initial_lookback_days=120)
    )  # fmt: skip
    hospice_api.add_fault(Fault("status", status=500, times=1000))
    cmd = [sys.executable, "-m", "pqwatch", "--config", str(config), "run", "--log-format", "json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = _wait_for(proc, '"event": "poll"')
        poll = json.loads(lines[-1])
        assert poll["status"] == "failed" and "HTTP 500" in poll["error"]
        # A second daemon on the same database is refused: on SQLite only, where one daemon
        # runs per database (on PostgreSQL several do, tests/test_postgres_processes.py).
        if request.config.getoption("--database") == "sqlite":
            second = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            assert second.returncode == 2
            assert "already running" in second.stderr and "Traceback" not in second.stderr
        assert proc.poll() is None  # the outage did not kill the daemon
        proc.send_signal(signal.SIGTERM)
        rest = _wait_for(proc, '"event": "stopped"')
        assert any('"signal": "SIGTERM"' in line for line in rest)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    db = config.parent / "pqwatch.db"
    assert rows(db, "SELECT status FROM poll_run") == [("failed",)]


def test_a_digest_left_pending_is_retried_at_the_next_poll_and_shown_in_status(
    hospice_api: ReplayServer, write_config: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    extra = WATCH.replace("[email]\n", '[email]\noutbox_dir = "blocked/outbox"\n')
    config = write_config(api_config(hospice_api.base_url, extra=extra, initial_lookback_days=120))
    blocked = config.parent / "blocked"
    blocked.write_text("a file where the outbox folder should be")
    with open_service(config, now=date(2024, 9, 1)) as svc:
        svc.poll_cycle()
        assert svc.digest_cycle()["status"] == "failed"
    report = cli("--config", config, "status")
    assert "waiting: officer@example.org after 1 attempt(s): cannot write to" in (report.stdout)
    assert rows(config.parent / "pqwatch.db", "SELECT status FROM digest") == [("pending",)]
    blocked.unlink()  # the operator fixes the problem; the next poll sends it
    with open_service(config, now=date(2024, 9, 1)) as svc:
        assert svc.poll_cycle()["pending_digests_retried"] == "ok"
    assert rows(config.parent / "pqwatch.db", "SELECT status FROM digest") == [("sent",)]
    assert len(_eml(blocked / "outbox")) == 1


def test_the_daemon_sends_the_digest_due_at_start_after_a_slow_first_poll(
    hospice_api: ReplayServer, write_config: Callable[..., Path]
) -> None:
    """The catch-up digest waits behind the start-up poll, however long that takes; it is
    never dropped as "missed", and every log line, APScheduler's too, is JSON."""
    config = write_config(api_config(hospice_api.base_url, extra=WATCH, initial_lookback_days=1000))
    hospice_api.add_fault(Fault("delay", delay=4.0, match="list"))  # a slow API at start
    cmd = [sys.executable, "-m", "pqwatch", "--config", str(config), "run", "--log-format", "json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = _wait_for(proc, '"event": "digests"', timeout=30)
        proc.send_signal(signal.SIGTERM)
        lines += _wait_for(proc, '"event": "stopped"')
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        _, rest = proc.communicate()
    logged = [json.loads(line) for line in [*lines, *rest.splitlines()] if line.strip()]
    events = [entry["event"] for entry in logged]
    assert events.index("poll") < events.index("digests")
    digests = next(entry for entry in logged if entry["event"] == "digests")
    assert digests["status"] == "ok" and digests.get("sent") == 1, digests
    assert not [e for e in logged if "missed" in e["event"]]
    [mail] = _eml(config.parent / "outbox")
    assert mail["To"] == "officer@example.org"


def test_apscheduler_warnings_are_json_lines_too(capsys: pytest.CaptureFixture[str]) -> None:
    import sys as _sys

    configure_logging("json", _sys.stderr)
    try:
        logging.getLogger("apscheduler.executors.default").warning(
            "Run time of job %r was missed by %s", "digests", "0:00:06"
        )
        logging.getLogger("apscheduler.scheduler").info("Added job")  # below WARNING: left out
    finally:
        logging.getLogger("pqwatch").handlers.clear()
        logging.getLogger("apscheduler").handlers.clear()
    [line] = capsys.readouterr().err.strip().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "warning" and entry["logger"] == "apscheduler.executors.default"
    assert "was missed by 0:00:06" in entry["event"]


def test_poll_from_cron_alerts_the_operator_once_and_on_recovery(
    hospice_api: ReplayServer, write_config: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    config = write_config(api_config(hospice_api.base_url, extra=WATCH, max_retries=0))
    outbox = config.parent / "outbox"
    hospice_api.add_fault(Fault("status", status=503, times=1000))
    for _ in range(3):
        failed = cli("--config", config, "poll")
        assert failed.exit_code == 1 and "HTTP 503" in failed.stderr
    alerts = [m["Subject"] for m in _eml(outbox)]
    assert alerts == ["pqwatch: polling uk_parliament has failed 2 times in a row"]
    hospice_api.clear_faults()
    ok = cli("--config", config, "poll")
    assert ok.exit_code == 0, ok.stderr
    assert "Operator alerted: pqwatch: polling uk_parliament has recovered" in ok.stdout
    assert len(_eml(outbox)) == 2


def test_a_bug_during_a_poll_counts_as_a_failed_poll(
    hospice_api: ReplayServer,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pqwatch.store.archive import Archive

    config = write_config(api_config(hospice_api.base_url, extra=WATCH, initial_lookback_days=1000))

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in storing")

    monkeypatch.setattr(Archive, "store_page", broken)
    for _ in range(2):
        result = cli("--config", config, "poll")
        assert result.exit_code == 1
        assert "internal error: RuntimeError: a bug in storing" in result.stderr
    db = config.parent / "pqwatch.db"
    assert rows(db, "SELECT consecutive_failures FROM source_state") == [(2,)]
    assert {r[0] for r in rows(db, "SELECT status FROM poll_run")} == {"failed"}
    assert [m["To"] for m in _eml(config.parent / "outbox")] == ["ops@example.org"]


def test_a_poll_left_running_by_a_dead_process_is_closed_by_the_next_poll(
    hospice_api: ReplayServer, write_config: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    from pqwatch import locks

    config = write_config(api_config(hospice_api.base_url, extra=WATCH, initial_lookback_days=1000))
    assert cli("--config", config, "init").exit_code == 0
    db = config.parent / "pqwatch.db"
    rows(  # as a poll killed with -9 leaves it
        db,
        "INSERT INTO poll_run (source, kind, window_start, window_end, status, new_questions,"
        " new_answers, holding_answers, corrections, transfers, withdrawals, items_seen,"
        " requests, duration_seconds, started_at) VALUES ('uk_parliament', 'poll',"
        " '2024-08-01', '2024-08-02', 'running', 0, 0, 0, 0, 0, 0, 0, 0, 0,"
        " '2024-08-02 10:00:00.000000')",
    )
    # While another poll runs (it holds the poll lock), its row is left alone.
    with open_service(config) as svc, locks.polling(svc.db, lambda: None):
        assert cli("--config", config, "poll").exit_code == 0
        assert rows(db, "SELECT count(*) FROM poll_run WHERE status = 'running'") == [(1,)]
    assert cli("--config", config, "poll").exit_code == 0
    assert rows(db, "SELECT status, error FROM poll_run WHERE id = 1") == [
        ("failed", "interrupted: the process stopped before the run finished")
    ]
    assert rows(db, "SELECT count(*) FROM poll_run WHERE status = 'running'") == [(0,)]
