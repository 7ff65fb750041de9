"""A watch at a glance, on PostgreSQL: a watch's matches counted for its page. The same steps
and counting as on SQLite (pqwatch.store.sqlite.watchstats explains them; the code is
pqwatch.store.searching's), with ids passed as one array parameter instead of a JSON array."""

from __future__ import annotations

from functools import partial

from pqwatch.store import searching
from pqwatch.store.postgresql.compile import bind_day

# A watch at a glance (pqwatch.store.searching.watch_overview), with ids passed as an array.
watch_overview = partial(searching.watch_overview, in_ids="= ANY(?)", ids=list, day=bind_day)
