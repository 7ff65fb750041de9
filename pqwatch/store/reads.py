"""Read models the feeds (and, later, the web pages) are built from: plain rows, no live
objects. The SQL lives here, in the store; the stages shape the rows."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from pqwatch.store.db import Database

# The newest events matched by a watch (or by any watch, for the combined feed "all"), with
# what a feed item shows: question, department, asker, the answer version and who gave it.
_FEED_EVENTS = """
SELECT e.id AS event_id, e.kind, e.event_date, q.source, q.source_id, q.uin, q.house,
       q.date_tabled, q.heading, q.question_text, q.attachments_json,
       b.name AS department, am.name AS asker,
       (SELECT group_concat(w2.name, '\x1f') FROM watch_match m2 JOIN watch w2
          ON w2.id = m2.watch_id WHERE m2.event_id = e.id AND w2.active) AS watches,
       a.answer_html, a.date_answered, a.date_corrected, wm.name AS answerer, cm.name AS corrector
FROM event e
JOIN question q ON q.id = e.question_id
LEFT JOIN answering_body b ON b.id = q.answering_body_id
LEFT JOIN member am ON am.id = q.asking_member_id
LEFT JOIN answer a ON a.id = e.answer_id
LEFT JOIN member wm ON wm.id = a.answering_member_id
LEFT JOIN member cm ON cm.id = a.correcting_member_id
WHERE e.id IN (
    SELECT m.event_id FROM watch_match m JOIN watch w ON w.id = m.watch_id
    WHERE w.active AND (:slug = 'all' OR w.slug = :slug)
)
ORDER BY e.event_date DESC, e.id DESC
LIMIT :limit
"""


class Reads:
    def __init__(self, db: Database) -> None:
        self.db = db

    def feed_events(self, slug: str, limit: int) -> list[dict[str, Any]]:
        """A watch's newest matched events, newest first ("all": any watch's)."""
        with self.db.read() as session:
            result = session.connection().execute(
                sa.text(_FEED_EVENTS), {"slug": slug, "limit": limit}
            )
            return [dict(r) for r in result.mappings()]
