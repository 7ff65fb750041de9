"""Store pages on one background thread while the caller fetches and prepares the next.

SQLite releases the GIL while it executes statements and commits, which is about half of the
time of storing a page; on its own thread that work overlaps the next page's HTTP requests,
JSON decoding and HTML cleaning. Pages are stored one at a time, in the order given, each in
its own transaction, so what a reader or a crash sees is the same as without the thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_STOP = object()


class BackgroundWriter(Generic[T, R]):
    """``submit(batch)`` queues ``store(batch)``; ``on_stored(result)`` runs after each one.

    At most ``depth`` batches wait, so memory stays bounded when storing is the slower side.
    The first error stops storing: later batches are dropped, never stored out of order, and
    the error is raised in the caller's thread by the next ``submit``, ``drain`` or ``close``.
    """

    def __init__(
        self,
        store: Callable[[T], R],
        on_stored: Callable[[R], None] | None = None,
        *,
        depth: int = 2,
        merge: Callable[[list[T]], T] | None = None,
    ) -> None:
        self._store = store
        self._on_stored = on_stored
        self._merge = merge
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None  # the first failure; stops storing for good
        self._raised = False
        self._thread = threading.Thread(target=self._loop, name="pqwatch-writer", daemon=True)
        self._thread.start()

    def _take(self) -> tuple[list[T], bool]:
        """The next batch, and with ``merge`` every batch already waiting behind it: when
        storing is the slower side, batches pile up and are stored in fewer, larger
        transactions (a commit, and its full-text index flush, costs per transaction)."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        batches: list[T] = [first]  # type: ignore[list-item]
        while self._merge is not None:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is _STOP:
                return batches, True
            batches.append(more)  # type: ignore[arg-type]
        return batches, False

    def _loop(self) -> None:
        stop = False
        while not stop:
            batches, stop = self._take()
            try:
                if batches and self._error is None:
                    batch = self._merge(batches) if self._merge and len(batches) > 1 else batches[0]
                    result = self._store(batch)
                    if self._on_stored is not None:
                        self._on_stored(result)
            except BaseException as exc:  # handed to the caller's thread, not lost
                self._error = exc
            finally:
                for _ in range(len(batches) + stop):
                    self._queue.task_done()

    def _raise(self) -> None:
        if self._error is not None and not self._raised:
            self._raised = True
            raise self._error

    def submit(self, batch: T) -> None:
        self._raise()
        self._queue.put(batch)

    def drain(self) -> None:
        """Wait until every submitted batch is stored (or dropped after an error)."""
        self._queue.join()
        self._raise()

    def close(self) -> None:
        """Store what is queued, stop the thread, and raise the first error if there was one."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        self._raise()

    def __enter__(self) -> BackgroundWriter[T, R]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Also when the caller failed: what it handed over was fetched whole and is stored.
        # A storing error, if any, replaces the caller's (which stays as its __context__).
        self.close()
