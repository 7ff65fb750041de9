"""`pqwatch run`: the daemon. APScheduler 3.x jobs are only triggers.

What is owed is always worked out from the database (digests due since the latest slot,
windows since the cursor), so a trigger that fires late, twice or not at all while the daemon
was down changes nothing: the next trigger, or the next start, catches up, and nothing is sent
twice. Jobs run one at a time on a single worker thread, because they share one database and
one facade. SIGTERM/SIGINT let the current step finish, then the daemon exits 0.

On PostgreSQL several daemons may share a database (issue 19). Each job then runs under a
lease of its own (`JobLeases`): a daemon that finds the lease held elsewhere skips that run
with a log line. Every daemon fires at its own times (an interval counts from its start), so
a poll another daemon started less than half an interval ago counts as this slot's poll and
is not repeated; a digest run needs no such rule, since it sends only what is still due. A
job that was started and never finished, with nobody holding its lease, was interrupted by a
daemon that died: another daemon runs it again within TAKEOVER_SECONDS (plus the time the
server takes to notice a holder that vanished: store/postgresql/leases.py).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
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
    from pqwatch.store.postgresql.leases import Session

log = logging.getLogger("pqwatch.run")

POLL_JOB, DIGEST_JOB = "poll", "digests"
# A poll that fires late is still worth running; a digest trigger that fires late must never
# be skipped (APScheduler's default grace is one second), and what it sends is computed anyway.
POLL_GRACE_SECONDS = 3600
DIGEST_GRACE_SECONDS = 24 * 3600
# How often a daemon sharing its database looks for a job interrupted by a daemon that died.
TAKEOVER_JOB, TAKEOVER_SECONDS = "takeover", 15

Job = Callable[[], dict[str, Any]]


class JobLeases:
    """The jobs of a daemon that shares its (PostgreSQL) database with other daemons: each
    runs under its lease, on a lease connection of this daemon's own (reopened if lost)."""

    def __init__(self, svc: PQWatch) -> None:
        self.svc = svc
        self._session: Session | None = None
        minutes = svc.config.schedule.poll_every_minutes
        # A slot's poll done by another daemon less than half an interval ago is this slot's.
        self.fresh = {POLL_JOB: timedelta(minutes=minutes) / 2}
        self.jobs: dict[str, Job] = {POLL_JOB: svc.poll_cycle, DIGEST_JOB: svc.digest_cycle}

    def session(self) -> Session:
        from pqwatch.store.postgresql import leases

        if self._session is None or self._session.lost or self._session.conn.closed:
            if self._session is not None:
                self._session.close()
            self._session = leases.Session(self.svc.db, "jobs")
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def wrap(self, name: str) -> Job:
        return lambda: self.run(name) or {}

    def run(self, name: str, *, takeover: bool = False) -> dict[str, Any] | None:
        """Run a job if its lease is free and its slot not done elsewhere. A takeover runs
        only a job that was interrupted (None otherwise: nothing to say)."""
        from pqwatch.store.postgresql import leases

        s = self.session()
        key = f"job:{name}"
        if not s.try_lock(key):
            return None if takeover else {"status": "skipped", "reason": "running elsewhere"}
        try:
            record = leases.job_record(s, name)
            now = self.svc.now()
            if takeover and not record.interrupted:
                return None
            fresh = self.fresh.get(name)
            if (
                not takeover
                and fresh is not None
                and not record.interrupted
                and record.started_at is not None
                and record.started_at > now - fresh
            ):
                when = record.started_at.isoformat(timespec="seconds")
                return {"status": "skipped", "reason": f"done by {record.holder} at {when}"}
            leases.job_started(s, name, now)
            try:
                fields = self.jobs[name]()
            finally:
                # Finished even when it failed: only a daemon that died leaves a job open.
                leases.job_finished(s, name, self.svc.now())
            if record.interrupted:  # by a daemon that died: say whose work this finished
                fields = {"took_over_from": record.holder, **fields}
            return fields
        finally:
            s.unlock(key)

    def take_over(self) -> None:
        """Run again any job a daemon that died left unfinished."""
        for name in self.jobs:
            guarded(name, partial(self.run, name, takeover=True), quiet_none=True)()


def build_scheduler(
    svc: PQWatch, *, now: Callable[[], datetime] | None = None, shared: JobLeases | None = None
) -> Any:
    """The scheduler with its two jobs, not started. `now` sets the first poll's time.
    With `shared` (a database other daemons use too), the jobs run under leases, and a third
    job takes over jobs interrupted elsewhere."""
    sched = svc.config.schedule
    tz = ZoneInfo(sched.timezone)
    scheduler = BackgroundScheduler(
        timezone=tz,
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1},
    )
    start = (now or (lambda: datetime.now(UTC)))().astimezone(tz)
    poll_job, digest_job = job_functions(svc, shared)
    scheduler.add_job(
        guarded(POLL_JOB, poll_job),
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
        guarded(DIGEST_JOB, digest_job),
        CronTrigger(hour=hour, minute=minute, timezone=tz),
        id=DIGEST_JOB,
        name="digests due",
        misfire_grace_time=DIGEST_GRACE_SECONDS,
        coalesce=True,
        max_instances=1,
    )
    if shared is not None:
        scheduler.add_job(
            shared.take_over,
            IntervalTrigger(seconds=TAKEOVER_SECONDS, timezone=tz),
            id=TAKEOVER_JOB,
            name="jobs interrupted elsewhere",
            misfire_grace_time=None,  # late behind a long job is fine; never "missed"
            coalesce=True,
            max_instances=1,
        )
    return scheduler


def job_functions(svc: PQWatch, shared: JobLeases | None) -> tuple[Job, Job]:
    """The poll and digest jobs: the service's own, or under leases when shared."""
    if shared is None:
        return svc.poll_cycle, svc.digest_cycle
    return shared.wrap(POLL_JOB), shared.wrap(DIGEST_JOB)


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
    with single_instance(svc.db) as run_lease:
        # Another daemon may share a PostgreSQL database: then jobs run under leases.
        shared = JobLeases(svc) if run_lease is not None else None
        scheduler = build_scheduler(svc, shared=shared)
        _, digest_job = job_functions(svc, shared)

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
                guarded(DIGEST_JOB, digest_job),
                id="catch-up",
                name="digests due at start",
                misfire_grace_time=None,
            )
            stop.wait()
            scheduler.shutdown(wait=True)  # lets the running job finish
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            if shared is not None:
                shared.close()
        log_event("stopped")
    return 0


def guarded(
    name: str, job: Callable[[], dict[str, Any] | None], *, quiet_none: bool = False
) -> Callable[[], None]:
    """Wrap a job so a failure is one log line, never a dead scheduler thread. With
    quiet_none, a job returning None did nothing worth a line."""

    def run() -> None:
        try:
            fields = job()
            if fields is None:
                if quiet_none:
                    return
                fields = {}
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
