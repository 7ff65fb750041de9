"""Which questions a watch's query matches, on PostgreSQL (pqwatch.store.matching does the rest).

A batch's questions are found by their primary key and each is tested against the query's
condition (its tsquery over question.search_vector and its filters): the planner starts from
the ids, so a watch costs a few index probes per batch, not a search of the archive. SQLite's
private batch index has no counterpart here: there is nothing to build.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from pqwatch.store.postgresql.compile import CompiledQuery, compile_query


def compile(query: str, batch: bool) -> CompiledQuery:
    return compile_query(query)


def find(
    conn: sa.Connection,
    compiled: Callable[[str, bool], CompiledQuery],
    watches: Sequence[Any],
    qids: list[int],
    *,
    batch: bool,
) -> list[tuple[int, int]]:
    """(watch, question) for each of these questions each watch matches, in match order."""
    found: list[tuple[int, int]] = []
    for watch_id, query in watches:
        cq = compiled(query, batch)
        rows = conn.exec_driver_sql(
            f"SELECT q.id FROM question q WHERE q.id = ANY(%(__ids)s) AND ({cq.where}) "
            "ORDER BY q.id",
            {**cq.params, "__ids": qids},
        )
        found += [(watch_id, r[0]) for r in rows]
    return found


def history_events(
    conn: sa.Connection, cq: CompiledQuery, kinds: tuple[str, ...]
) -> list[tuple[int, int, bool]]:
    """The events of the kinds matched whose question the query matches, in the archive."""
    rows = conn.exec_driver_sql(
        "SELECT e.id, e.question_id, e.historical FROM event e JOIN question q "
        f"ON q.id = e.question_id WHERE e.kind = ANY(%(__kinds)s) AND ({cq.where}) "
        "ORDER BY e.id",
        {**cq.params, "__kinds": list(kinds)},
    )
    return [(r[0], r[1], bool(r[2])) for r in rows]
