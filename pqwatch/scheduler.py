"""`pqwatch run`: the daemon. APScheduler 3.x jobs are only triggers.

What is owed is always worked out from the database (digests due since the latest slot,
windows since the cursor), so a trigger that fires late, twice or not at all while the daemon
was down changes nothing: the next trigger, or the next start, catches up, and nothing is sent
twice. Jobs run one at a time on a single worker thread, because they share one database and
one facade. SIGTERM/SIGINT let the current step finish, then the daemon exits 0.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from pqwatch.errors import PQWatchError
from pqwatch.locks import single_instance

if TYPE_CHECKING:
    from pqwatch.service import PQWatch

log = logging.getLogger("pqwatch.run")

POLL_JOB, DIGEST_JOB = "poll", "digests"
# A poll that fires late is still worth running; a digest trigger that fires late must never
# be skipped (APScheduler's default grace is one second), and what it sends is computed anyway.
POLL_GRACE_SECONDS = 3600
DIGEST_GRACE_SECONDS = 24 * 3600


def build_scheduler(svc: PQWatch, *, now: Callable[[], datetime] | None = None) -> Any:
    """The scheduler with its two jobs, not started. `now` sets the first poll's time."""
    sched = svc.config.schedule
    tz = ZoneInfo(sched.timezone)
    scheduler = BackgroundScheduler(
        timezone=tz,
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1},
    )
    start = (now or (lambda: datetime.now(UTC)))().astimezone(tz)
    scheduler.add_job(
        guarded(POLL_JOB, svc.poll_cycle),
        IntervalTrigger(minutes=sched.poll_every_minutes, timezone=tz),
        id=POLL_JOB,
        name="poll, match, feeds",
        next_run_time=start,  # poll at once on start
        misfire_grace_time=POLL_GRACE_SECONDS,
        coalesce=True,
        max_instances=1,
    )
    hour, minute = (int(x) for x in sched.digest_time.split(":"))
    # Fires daily at digest_time; weekly subscribers are only due on digest_weekday (due.py).
    scheduler.add_job(
        guarded(DIGEST_JOB, svc.digest_cycle),
        CronTrigger(hour=hour, minute=minute, timezone=tz),
        id=DIGEST_JOB,
        name="digests due",
        misfire_grace_time=DIGEST_GRACE_SECONDS,
        coalesce=True,
        max_instances=1,
    )
    return scheduler


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="seconds"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if not record.name.startswith("pqwatch"):
            data["logger"] = record.name  # e.g. apscheduler's own warnings
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="seconds")
        fields = " ".join(f"{k}={v}" for k, v in getattr(record, "fields", {}).items())
        return f"{ts} {record.levelname.lower()} {record.getMessage()} {fields}".rstrip()


def configure_logging(fmt: str, stream: IO[str] | None = None) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("pqwatch")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    # APScheduler's own lines ("Run time of job ... was missed") go through the same handler,
    # so --log-format json stays one JSON object a line; its INFO chatter is left out.
    aps = logging.getLogger("apscheduler")
    aps.handlers[:] = [handler]
    aps.setLevel(logging.WARNING)
    aps.propagate = False


def log_event(event: str, level: int = logging.INFO, /, **fields: Any) -> None:
    log.log(level, event, extra={"fields": fields})


def run_daemon(svc: PQWatch, *, stop: threading.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or `stop` is set). Returns the exit code."""
    stop = stop or threading.Event()
    # The database first: a mistake in it is one line, and leaves no lock file beside it.
    svc.ensure_ready(writes="run")
    with single_instance(svc.db.describe()):
        scheduler = build_scheduler(svc)

        def on_signal(signum: int, _frame: object) -> None:
            log_event("stopping", signal=signal.Signals(signum).name)
            stop.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            scheduler.start()
            log_event("started", pid=os.getpid(), **next_runs(scheduler))
            # A digest slot missed while the daemon was down is sent now: after the start-up
            # poll (one job at a time), however long that takes, so never "missed" (the
            # default grace is one second).
            scheduler.add_job(
                guarded(DIGEST_JOB, svc.digest_cycle),
                id="catch-up",
                name="digests due at start",
                misfire_grace_time=None,
            )
            stop.wait()
            scheduler.shutdown(wait=True)  # lets the running job finish
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        log_event("stopped")
    return 0


def guarded(name: str, job: Callable[[], dict[str, Any]]) -> Callable[[], None]:
    """Wrap a job so a failure is one log line, never a dead scheduler thread."""

    def run() -> None:
        try:
            fields = job()
        except PQWatchError as exc:
            log_event(name, logging.ERROR, status="failed", error=str(exc))
            return
        except Exception as exc:  # a bug: log it, keep the daemon alive for the next trigger
            log.exception("%s crashed", name, extra={"fields": {"error": repr(exc)}})
            return
        level = logging.WARNING if fields.get("status") == "failed" else logging.INFO
        log_event(name, level, **fields)

    return run


def next_runs(scheduler: Any) -> dict[str, str]:
    return {
        f"next_{job.id}": job.next_run_time.isoformat(timespec="minutes")
        for job in scheduler.get_jobs()
        if job.next_run_time is not None
    }
