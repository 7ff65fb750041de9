"""Leases on PostgreSQL (issue 19): what the file locks of pqwatch.locks are on SQLite, for
processes that may run on several machines.

A lease is a session advisory lock held on a connection of its own (`Session`), so it ends
with that connection: a process that dies (kill -9, a crash) drops its socket and the server
frees its locks at once. Two slower failures are covered by the session's settings:
- a holder cut off by the network, or whose machine died, stops answering the server's TCP
  keepalives (10 s idle, then 3 probes 5 s apart): the server ends the session within ~25 s;
- a holder that is alive but stuck (stopped, swapping) stops the heartbeat that pings each
  session every 10 s; the server ends a session idle for 45 s (idle_session_timeout, and
  idle_in_transaction_session_timeout for a claim held in a transaction).
Either way a holder that comes back finds its connection gone at its next statement.

Scheduled jobs also leave a record (job_lease, migration 0015): when each last started and
finished, and where. SQL only: pqwatch.scheduler decides what the records mean.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pqwatch.errors import StorageError
from pqwatch.store.db import explain

if TYPE_CHECKING:
    import psycopg

    from pqwatch.store.db import Database

log = logging.getLogger("pqwatch.leases")

# The first key of every pqwatch advisory lock ("pqwa"); the second names the lease. (The
# migration lock is a one-key lock, which never meets a two-key one.)
NAMESPACE = 0x70717761
KEYS = {"run": 1, "poll": 2, "job:poll": 3, "job:digests": 4}

KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT = 10, 5, 3
USER_TIMEOUT_MS = 20_000  # data the peer does not acknowledge for 20 s: it is gone
HEARTBEAT_S = 10.0
IDLE_TIMEOUT_MS = 45_000  # > 4 heartbeats: a session that misses them is a stuck holder


def holder_name() -> str:
    """Who holds a lease, for log lines and job_lease.holder."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None)


def _aware(ts: datetime | None) -> datetime | None:
    return None if ts is None else ts.replace(tzinfo=UTC)


class Session:
    """A connection of its own for locks: autocommit (a claim opens its own transaction),
    UTC, keepalives both ways, and pinged by the heartbeat while open."""

    def __init__(self, db: Database, purpose: str) -> None:
        import psycopg

        self.where = db.describe()
        _, params = db.engine.dialect.create_connect_args(db.url)
        params = dict(params)
        # The client notices a dead server too, rather than hang in a send or a read.
        params.update(
            keepalives=1,
            keepalives_idle=KEEPALIVE_IDLE_S,
            keepalives_interval=KEEPALIVE_INTERVAL_S,
            keepalives_count=KEEPALIVE_COUNT,
            tcp_user_timeout=USER_TIMEOUT_MS,
            application_name=f"pqwatch {purpose}",
        )
        params.setdefault("connect_timeout", 10)
        try:
            self.conn: psycopg.Connection[Any] = psycopg.connect(autocommit=True, **params)
            version = int(self.conn.info.server_version)
            settings = {
                "timezone": "UTC",
                "tcp_keepalives_idle": KEEPALIVE_IDLE_S,
                "tcp_keepalives_interval": KEEPALIVE_INTERVAL_S,
                "tcp_keepalives_count": KEEPALIVE_COUNT,
                "idle_in_transaction_session_timeout": IDLE_TIMEOUT_MS,
            }
            if version >= 120000:
                settings["tcp_user_timeout"] = USER_TIMEOUT_MS
            if version >= 140000:
                settings["idle_session_timeout"] = IDLE_TIMEOUT_MS
            for name, value in settings.items():
                self.conn.execute("SELECT set_config(%s, %s, false)", (name, str(value)))
        except psycopg.Error as exc:
            raise explain(exc, self.where) from exc
        self._lock = threading.Lock()
        self.lost = False
        _HEARTBEAT.add(self)

    def execute(
        self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()
    ) -> list[tuple[Any, ...]]:
        import psycopg

        with self._lock:
            try:
                cur = self.conn.execute(sql, params)
                return cur.fetchall() if cur.description else []
            except psycopg.OperationalError as exc:
                self.lost = True
                raise explain(exc, self.where) from exc

    def ping(self) -> None:
        if self.lost or self.conn.closed:
            return
        try:
            self.execute("SELECT 1")
        except StorageError as exc:
            log.warning("lease connection lost", extra={"fields": {"error": str(exc)}})

    def close(self) -> None:
        _HEARTBEAT.discard(self)
        with self._lock:
            self.conn.close()  # its locks and any open claim end with it

    # -- advisory locks ------------------------------------------------------------------------

    def try_lock(self, name: str, *, shared: bool = False) -> bool:
        fn = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
        return bool(self.execute(f"SELECT {fn}(%s, %s)", (NAMESPACE, KEYS[name]))[0][0])

    def lock(self, name: str, *, shared: bool = False) -> None:
        fn = "pg_advisory_lock_shared" if shared else "pg_advisory_lock"
        self.execute(f"SELECT {fn}(%s, %s)", (NAMESPACE, KEYS[name]))

    def unlock(self, name: str, *, shared: bool = False) -> None:
        if self.lost or self.conn.closed:
            return  # the server freed it with the session
        fn = "pg_advisory_unlock_shared" if shared else "pg_advisory_unlock"
        self.execute(f"SELECT {fn}(%s, %s)", (NAMESPACE, KEYS[name]))

    def held_by_others(self, name: str) -> bool:
        """Whether another session holds this lease (in any mode) in this database."""
        rows = self.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()"
            " AND l.classid = %s AND l.objid = %s AND l.objsubid = 2"
            " AND l.pid <> pg_backend_pid()",
            (NAMESPACE, KEYS[name]),
        )
        return bool(rows[0][0])


class _Heartbeat:
    """One thread that pings every open Session (see the module's docstring)."""

    def __init__(self) -> None:
        self._sessions: weakref.WeakSet[Session] = weakref.WeakSet()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, session: Session) -> None:
        with self._guard:
            self._sessions.add(session)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="pqwatch-lease-heartbeat", daemon=True
                )
                self._thread.start()

    def discard(self, session: Session) -> None:
        with self._guard:
            self._sessions.discard(session)

    def _run(self) -> None:
        stop = threading.Event()
        while not stop.wait(HEARTBEAT_S):
            with self._guard:
                sessions = list(self._sessions)
            for session in sessions:
                session.ping()


_HEARTBEAT = _Heartbeat()


@contextmanager
def session(db: Database, purpose: str) -> Iterator[Session]:
    s = Session(db, purpose)
    try:
        yield s
    finally:
        s.close()


# -- polls ----------------------------------------------------------------------------------


@contextmanager
def polling(db: Database, when_alone: Any) -> Iterator[None]:
    """locks.polling on PostgreSQL: every poll and backfill holds the poll lease shared;
    one that finds nobody else holding it runs `when_alone` first, holding it exclusively."""
    with session(db, "poll") as s:
        if s.try_lock("poll"):
            try:
                when_alone()
                s.lock("poll", shared=True)
            finally:
                s.unlock("poll")
        else:
            s.lock("poll", shared=True)  # others poll now: their rows are theirs
        yield


# -- scheduled jobs -------------------------------------------------------------------------


@dataclass(frozen=True)
class JobRecord:
    holder: str | None
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def interrupted(self) -> bool:
        """Started and never finished: read under the job's lease, its holder died."""
        return self.started_at is not None and (
            self.finished_at is None or self.finished_at < self.started_at
        )


def job_record(s: Session, job: str) -> JobRecord:
    rows = s.execute(
        "SELECT holder, started_at, finished_at FROM job_lease WHERE name = %s", (job,)
    )
    if not rows:
        return JobRecord(None, None, None)
    holder, started, finished = rows[0]
    return JobRecord(holder, _aware(started), _aware(finished))


def job_started(s: Session, job: str, at: datetime) -> None:
    s.execute(
        "INSERT INTO job_lease (name, holder, started_at, finished_at) VALUES (%s, %s, %s, NULL)"
        " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
        " started_at = excluded.started_at, finished_at = NULL",
        (job, holder_name(), _utc(at)),
    )


def job_finished(s: Session, job: str, at: datetime) -> None:
    s.execute("UPDATE job_lease SET finished_at = %s WHERE name = %s", (_utc(at), job))
