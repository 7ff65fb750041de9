"""The seam every source plugs into: a source reads its parliament and yields plain records.

A source is one module with a class that has a ``name`` (its [sources.NAME] config section and
its row in source_state), a ``poll`` that yields :class:`Batch` es of ``QuestionData``, and the
HTTP counters. It never touches the database: what it needs to know of the archive comes
through :class:`Known`, and what it must remember between polls (an ETag, the highest id
seen) it returns as ``state``, which the ingest stores only once everything before it was
stored. The Westminster API's windowed source (uk_parliament) predates this seam and is driven
by pqwatch.ingest directly; new sources use this one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from pqwatch.types import OpenItem, QuestionData


@dataclass(frozen=True)
class Batch:
    """Records to store together, and the state to keep once they (and all before) are."""

    items: tuple[QuestionData, ...]
    state: dict[str, Any]
    # Records left out (no key, unreadable), with the reason: reported, never fatal.
    skipped: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


class Known(Protocol):
    """What a source may ask of the archive."""

    def open_items(self, source: str) -> list[OpenItem]: ...

    def highest_id(self, source: str) -> int | None: ...


class Source(Protocol):
    name: str

    def poll(
        self, state: dict[str, Any], known: Known, now: datetime, *, since: date | None = None
    ) -> Iterator[Batch]:
        """Batches of records; `since` (poll --since) asks for everything from that day."""
        ...

    @property
    def requests_made(self) -> int: ...

    @property
    def bytes_received(self) -> int: ...

    def close(self) -> None: ...
