"""A watch at a glance, on SQLite: a watch's matches counted for its page (the result types,
and what each figure counts, are in pqwatch.search.overview).

What a watch page costs is walking the watch's matched events: watch_match (by watch) to
event (by id), a row each; a watch on "school" has 96,000 of them on the 600,000-question
bench archive, about 40 ms a walk. Each GROUP BY in SQL walked them again (five were 0.4 s),
so the walk is made twice, and the period's rows are counted in Python:

1. the watch;
2. the whole history's totals (one walk, counted by SQLite);
3. the period's matched events (the walk again; only the period's rows come back): the months,
   the period's questions and the newest events come from them;
4. those questions' facts (asker, party, department, dates), by id through json_each, from
   which the rankings and the timeliness are counted;
5. the newest events' questions (20 rows).

The steps and the counting are the same on PostgreSQL (pqwatch.store.searching has them);
what is SQLite's own is how a list of ids is passed.
"""

from __future__ import annotations

import json
from functools import partial

from pqwatch.store import searching
from pqwatch.store.sqlite.compile import bind_day

# A watch at a glance (pqwatch.store.searching.watch_overview), with ids passed as one JSON
# array: any number of them, one statement, one plan.
watch_overview = partial(
    searching.watch_overview,
    in_ids="IN (SELECT value FROM json_each(?))",
    ids=json.dumps,
    day=bind_day,
)
