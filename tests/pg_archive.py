"""The small archive of tests/test_query.py stored in a real pqwatch database, SQLite or
PostgreSQL, by SQL alone (the rows and each dialect's full-text index), so that the two search
modules can be given the same archive. Contains no pqwatch logic."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from pqwatch.store.db import Database
from pqwatch.store.sqlite.facets import facet_text
from tests.test_query import BODIES, MEMBERS, QUESTIONS

_QUESTION = (
    "INSERT INTO question (id, source, source_id, uin, house, date_tabled, date_for_answer,"
    " is_named_day, heading, asking_member_id, member_has_interest, answering_body_id,"
    " question_text, question_text_full, is_withdrawn, status, date_answered,"
    " answering_member_id, content_hash, first_seen_at, updated_at) VALUES (:id, 'uk_parliament',"
    " :source_id, :uin, :house, :tabled, :due, false, :heading, :asker, false, :body, :text,"
    " true, :withdrawn, :status, :answered, :answerer, 'h', :now, :now)"
)
_ANSWER = (
    "INSERT INTO answer (question_id, version, kind, answer_html, answer_text, is_full_text,"
    " content_hash, recorded_at) VALUES (:id, 1, :kind, :html, :text, true, 'a', :now)"
)
# The document migrations 0002 and 0005 build from stored rows (PostgreSQL).
PG_DOCUMENT = (
    "setweight(to_tsvector('english', coalesce(q.heading, '')), 'A')"
    " || setweight(to_tsvector('english', replace(q.question_text, chr(160), ' ')), 'B')"
    " || setweight(to_tsvector('english', coalesce((SELECT a.answer_text FROM answer a"
    " WHERE a.question_id = q.id ORDER BY a.version DESC LIMIT 1), '')), 'C')"
    " || setweight(to_tsvector('simple', 'h' || lower(q.house) || ' s' || q.status"
    " || coalesce(' d' || q.answering_body_id, '')"
    " || ' ty' || to_char(q.date_tabled, 'YYYY') || ' tm' || to_char(q.date_tabled, 'YYYYMM')"
    " || coalesce(' ay' || to_char(q.date_answered, 'YYYY')"
    " || ' am' || to_char(q.date_answered, 'YYYYMM'), '')), 'D')"
)


def _rows() -> list[dict[str, Any]]:
    out = []
    for (
        qid,
        house,
        status,
        tabled,
        answered,
        asker,
        answerer,
        body,
        head,
        text,
        answer,
    ) in QUESTIONS:
        out.append(
            {
                "id": qid, "source_id": str(1_700_000 + qid), "uin": f"{qid}00",
                "house": house, "tabled": tabled, "due": None, "heading": head,
                "asker": asker, "body": body, "text": text, "withdrawn": status == "withdrawn",
                "status": status, "answered": answered, "answerer": answerer,
                "answer": answer,
            }
        )  # fmt: skip
    return out


def fill(db: Database) -> None:
    """Migrate `db` and store the archive in it, with its full-text index."""
    from datetime import date

    db.migrate()
    now = "2025-01-01 12:00:00"
    with db.write() as session:
        conn = session.connection()
        for mid, name in MEMBERS.items():
            conn.execute(
                sa.text("INSERT INTO member (id, name, party, updated_at) VALUES (:i, :n, :p, :t)"),
                {"i": mid, "n": name, "p": "Labour" if mid % 2 else "Conservative", "t": now},
            )
        for bid, name in BODIES.items():
            conn.execute(
                sa.text("INSERT INTO answering_body (id, name, updated_at) VALUES (:i, :n, :t)"),
                {"i": bid, "n": name, "t": now},
            )
        for row in _rows():
            values = {
                **row,
                "now": now,
                "tabled": date.fromisoformat(row["tabled"]),
                "answered": row["answered"] and date.fromisoformat(row["answered"]),
            }
            conn.execute(sa.text(_QUESTION), values)
            if row["answer"]:
                kind = "holding" if row["status"] == "holding" else "answer"
                conn.execute(
                    sa.text(_ANSWER),
                    {"id": row["id"], "kind": kind, "html": row["answer"], "text": row["answer"],
                     "now": now},
                )  # fmt: skip
            if db.dialect == "sqlite":
                facets = facet_text(
                    row["house"], row["status"], row["body"], values["tabled"], values["answered"]
                )
                conn.execute(
                    sa.text(
                        "INSERT INTO question_fts (rowid, heading, question, answer, facets)"
                        " VALUES (:id, :h, :q, :a, :f)"
                    ),
                    {"id": row["id"], "h": row["heading"], "q": row["text"],
                     "a": row["answer"], "f": facets},
                )  # fmt: skip
        if db.dialect == "postgresql":
            conn.execute(sa.text(f"UPDATE question q SET search_vector = {PG_DOCUMENT}"))
