"""Process locks beside a SQLite database file. Contains no business logic.

Each lock is an flock(2) on a small file next to the database (`pqwatch.db.run.lock`, ...),
so it dies with its process: a crash or kill -9 never leaves one behind, and whoever takes
it next knows the holder is gone. A SQLite database lives on one machine, so a file lock
covers every process that can open it. Databases that are not a file have no such locks.

- run:  one `pqwatch run` daemon per database.
- send: one digest sender at a time. Holding it is the claim on every digest still pending:
        a digest found pending by the holder was left by a sender that died, and is taken
        over (sent again with the same Message-ID).
- poll: held shared by every poll and backfill; a `running` poll_run row found while nobody
        holds it was left by a process that died.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from pqwatch.errors import DeliveryError, StorageError, UsageError


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
def single_instance(db_description: str) -> Iterator[None]:
    """Hold the run lock; a second daemon gets a clear UsageError."""
    path = lock_path(db_description, "run")
    if path is None:
        yield
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
        yield
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


def daemon_running(db_description: str) -> bool:
    return held(db_description, "run")


@contextmanager
def sender(
    db_description: str,
    *,
    wait_seconds: float,
    on_wait: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[None]:
    """Hold the send lock, waiting up to `wait_seconds` for another sender to finish (an
    operator's `pqwatch digest` while the daemon sends, say). DeliveryError when it does not."""
    path = lock_path(db_description, "send")
    if path is None:
        yield
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
        yield
    finally:
        handle.close()


@contextmanager
def polling(db_description: str, when_alone: Callable[[], object]) -> Iterator[None]:
    """Hold the poll lock shared for a poll or backfill. When no other process holds it,
    `when_alone` runs first, under the lock held exclusively: `running` poll_run rows it
    finds were left by a process that died, and no other poll can start meanwhile."""
    path = lock_path(db_description, "poll")
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
