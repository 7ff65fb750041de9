"""Process locks: beside a SQLite database file, or leases in a PostgreSQL database. Contains
no business logic.

SQLite: each lock is an flock(2) on a small file next to the database (`pqwatch.db.run.lock`,
...), so it dies with its process: a crash or kill -9 never leaves one behind, and whoever
takes it next knows the holder is gone. A SQLite database lives on one machine, so a file lock
covers every process that can open it.

- run:  one `pqwatch run` daemon per database.
- send: one digest sender at a time. Holding it is the claim on every digest still pending:
        a digest found pending by the holder was left by a sender that died, and is taken
        over (sent again with the same Message-ID).
- poll: held shared by every poll and backfill; a `running` poll_run row found while nobody
        holds it was left by a process that died.

PostgreSQL (issue 19): processes on several machines share the database, so the locks are
in it, on connections of their own that die with their process (store/postgresql/leases.py).
- run:  any number of daemons; each holds the run lease shared (for `status`), and each
        scheduled job takes a lease of its own (pqwatch.scheduler);
- send: senders work side by side, each claiming one subscriber's digest at a time (a row
        lock, store/outbox.py RowClaims);
- poll: as on SQLite, with a shared advisory lock.
A database given only by its description (a URL string) gets none of these: pass the
Database.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

from pqwatch.errors import DeliveryError, StorageError, UsageError

if TYPE_CHECKING:
    from pqwatch.store.db import Database
    from pqwatch.store.outbox import Claims
    from pqwatch.store.postgresql.leases import Session


def _server(db: Database | str) -> Database | None:
    """The database when it is a PostgreSQL one (its locks are leases), else None."""
    if isinstance(db, str) or db.dialect != "postgresql":
        return None
    return db


def _where(db: Database | str) -> str:
    return db if isinstance(db, str) else db.describe()


def lock_path(db_description: str, name: str) -> Path | None:
    """The lock file for a database (None when the database is not a file)."""
    if "://" in db_description or db_description in {"", ":memory:"}:
        return None
    return Path(f"{db_description}.{name}.lock")


def _open(path: Path) -> IO[str]:
    try:
        return open(path, "a+")  # noqa: SIM115 - held for as long as the lock is
    except OSError as exc:
        raise StorageError(f"cannot create the lock file {path}: {exc.strerror}") from None


def _holder(handle: IO[str]) -> str:
    handle.seek(0)
    return handle.read().strip() or "?"


def _mark(handle: IO[str]) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()


@contextmanager
def single_instance(db: Database | str) -> Iterator[Session | None]:
    """Hold the run lock; a second daemon gets a clear UsageError. On PostgreSQL several
    daemons may run: yields the daemon's lease session, on which its jobs take their leases
    (None on SQLite, where the one daemon needs none)."""
    server = _server(db)
    if server is not None:
        from pqwatch.store.postgresql import leases

        with leases.session(server, "run") as session:
            session.lock("run", shared=True)
            yield session
        return
    db_description = _where(db)
    path = lock_path(db_description, "run")
    if path is None:
        yield None
        return
    handle = _open(path)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(
                f"another `pqwatch run` (pid {_holder(handle)}) is already running "
                f"for {db_description}"
            ) from None
        _mark(handle)
        yield None
    finally:
        handle.close()


def held(db_description: str, name: str) -> bool:
    """Whether some process holds this lock now (exclusively or shared)."""
    path = lock_path(db_description, name)
    if path is None or not path.exists():
        return False
    try:
        with open(path) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def daemon_running(db: Database | str) -> bool:
    server = _server(db)
    if server is not None:
        from pqwatch.store.postgresql import leases

        with leases.session(server, "status") as session:
            return session.held_by_others("run")
    return held(_where(db), "run")


@contextmanager
def sender(
    db: Database | str,
    *,
    wait_seconds: float,
    on_wait: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Claims]:
    """Hold the send lock, waiting up to `wait_seconds` for another sender to finish (an
    operator's `pqwatch digest` while the daemon sends, say). DeliveryError when it does not.
    Yields the sender's claims: on SQLite the lock is the claim on every digest; on
    PostgreSQL there is no lock to wait for, and each digest is claimed on its own."""
    from pqwatch.store.outbox import AllClaimed, RowClaims

    server = _server(db)
    if server is not None:
        claims = RowClaims(server)
        try:
            yield claims
        finally:
            claims.close()
        return
    db_description = _where(db)
    path = lock_path(db_description, "send")
    if path is None:
        yield AllClaimed()
        return
    handle = _open(path)
    try:
        deadline = time.monotonic() + wait_seconds
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DeliveryError(
                        f"another digest run (pid {_holder(handle)}) is still sending after "
                        f"{wait_seconds:g} s; nothing was sent by this one"
                    ) from None
                if not told and on_wait is not None:
                    on_wait(f"waiting for another digest run (pid {_holder(handle)}) to finish")
                    told = True
                sleep(0.05)
        _mark(handle)
        yield AllClaimed()
    finally:
        handle.close()


@contextmanager
def polling(db: Database | str, when_alone: Callable[[], object]) -> Iterator[None]:
    """Hold the poll lock shared for a poll or backfill. When no other process holds it,
    `when_alone` runs first, under the lock held exclusively: `running` poll_run rows it
    finds were left by a process that died, and no other poll can start meanwhile."""
    server = _server(db)
    if server is not None:
        from pqwatch.store.postgresql import leases

        with leases.polling(server, when_alone):
            yield
        return
    path = lock_path(_where(db), "poll")
    if path is None:
        yield
        return
    handle = _open(path)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # others poll now: their rows are theirs
        else:
            when_alone()
        # Shared from here: polls may run side by side.
        fcntl.flock(handle, fcntl.LOCK_SH)
        yield
    finally:
        handle.close()
