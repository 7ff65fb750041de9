"""PostgreSQL, phase 1 of issue 19: pqwatch opens, migrates and checks a PostgreSQL database.

Run on a throw-away server (tests/pg.py): asked for with --postgres or PQWATCH_TEST_POSTGRES=1,
always under CI. Search, ingest and matching on PostgreSQL are later phases.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pqwatch.locks import lock_path
from pqwatch.store.db import SCHEMA_HEAD, Database
from tests.conftest import CliResult
from tests.pg import PASSWORD, Cluster, free_port

TABLES = {
    "alembic_version", "answer", "answering_body", "delivery", "digest", "event", "member",
    "poll_run", "question", "question_group", "rate_event", "secret", "source_state",
    "subscriber", "subscription", "watch", "watch_match",
}  # fmt: skip


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url)
    yield database
    database.dispose()


def _config(write_config: Callable[..., Path], url: str) -> Path:
    # No watches: matching a watch's history is SQLite's FTS5 still (a later phase).
    return write_config(
        f"[database]\nurl = '{url}'\n\n[[subscribers]]\nemail = 'officer@example.org'\n"
    )


def _tables(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def _downgrade(db: Database, revision: str) -> None:
    from alembic import command

    with db.writer.connect() as conn:
        command.downgrade(db._alembic_config(conn), revision)
        conn.commit()


def test_a_postgresql_url_is_read_as_psycopg_and_named_without_its_password() -> None:
    db = Database("postgresql://someone:secret@db.example.org/pq")
    assert db.dialect == "postgresql" and not db.read_only and db.path is None
    assert db.url.drivername == "postgresql+psycopg"
    assert db.describe() == "postgresql+psycopg://someone:***@db.example.org/pq"
    assert lock_path(db.describe(), "run") is None  # no lock files beside a server's database


def test_init_creates_the_schema_at_head(
    pg_url: str, write_config: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    config = _config(write_config, pg_url)
    result = cli("--config", config, "init")
    assert result.exit_code == 0, result.stderr
    assert f"at revision {SCHEMA_HEAD} (from empty)" in result.stdout
    assert PASSWORD not in result.stdout  # the database is named without its password
    db = Database(pg_url)
    try:
        assert TABLES <= _tables(db)
        assert db.revision() == db.head() == SCHEMA_HEAD
        with db.read() as session:
            conn = session.connection()
            emails = conn.execute(sa.text("SELECT email, active FROM subscriber")).all()
            assert [tuple(r) for r in emails] == [("officer@example.org", True)]
    finally:
        db.dispose()
    again = cli("--config", config, "init")
    assert again.exit_code == 0 and "already current" in again.stdout, again.stderr


def test_migrations_go_down_and_up_again_with_data_in_the_database(db: Database) -> None:
    db.migrate()
    with db.write() as session:
        conn = session.connection()
        for sql in (
            "INSERT INTO answering_body (id, name, updated_at) VALUES (17, 'DHSC', now())",
            "INSERT INTO question (id, source, source_id, uin, house, date_tabled, is_named_day,"
            " heading, member_has_interest, answering_body_id, question_text,"
            " question_text_full, is_withdrawn, status, date_answered, content_hash,"
            " first_seen_at, updated_at)"
            " VALUES (1, 'uk_parliament', '1700001', '123', 'Commons', '2024-07-18', false,"
            " 'Hospices: Children', false, 17, 'To ask about hospices\u00a0for children.',"
            " false, false, 'answered', '2024-07-19', 'h', now(), now())",
            "INSERT INTO answer (question_id, version, kind, answer_html, answer_text,"
            " is_full_text, content_hash, recorded_at) VALUES (1, 1, 'answer',"
            " '<p>Funding is £25m.</p>', 'Funding is £25m.', true, 'a', now())",
            "INSERT INTO watch (name, slug, query, active, created_at, updated_at)"
            " VALUES ('Hospices', 'hospices', 'hospice', true, now(), now())",
        ):
            conn.execute(sa.text(sql))

    _downgrade(db, "0001")
    assert "search_vector" not in {c["name"] for c in sa.inspect(db.engine).get_columns("question")}
    assert db.migrate() == ("0001", SCHEMA_HEAD)
    with db.read() as session:
        conn = session.connection()
        one = lambda sql: conn.execute(sa.text(sql)).scalar_one()  # noqa: E731
        # The full-text column, rebuilt from the rows: English stems of the heading, the
        # question (no-break space and all) and the latest answer, and the facet words as
        # they are (0005), weighted D.
        assert one(
            "SELECT search_vector @@ to_tsquery('english', 'hospices & children & funding') "
            "FROM question"
        )
        assert one(
            "SELECT search_vector @@ to_tsquery('simple', "
            "'hcommons:D & sanswered:D & d17:D & ty2024:D & tm202407:D & am202407:D') "
            "FROM question"
        )
        assert one("SELECT search_vector @@ to_tsquery('english', 'hospic:A') FROM question")
        assert one("SELECT detail_pending FROM question")  # 0008: its text was cut
        assert one("SELECT origin FROM watch") == "config"  # 0014
        assert one("SHOW timezone") == "UTC"  # naive timestamps are UTC, as on SQLite

    _downgrade(db, "base")
    assert _tables(db) == {"alembic_version"}
    assert db.migrate() == (None, SCHEMA_HEAD)
    assert TABLES <= _tables(db)


def test_models_and_migrations_agree(db: Database) -> None:
    """Alembic's check: autogenerate finds nothing to do on a database at head."""
    from alembic import command
    from alembic.util.exc import AutogenerateDiffsDetected

    db.migrate()
    with db.engine.connect() as conn:
        try:
            command.check(db._alembic_config(conn))
        except AutogenerateDiffsDetected as exc:  # pragma: no cover - the failure message
            pytest.fail(f"models and migrations differ on PostgreSQL: {exc}")


def _one_line_error(result: CliResult, code: int, starts: str) -> None:
    assert result.exit_code == code, result.stderr
    assert result.stderr.startswith("pqwatch: error: " + starts), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"password": "wrong"}, 'password authentication failed for user "pqwatch"'),
        ({"port": "free"}, "Connection refused"),
        ({"database": "nosuch"}, 'database "nosuch" does not exist (create it first'),
    ],
    ids=["wrong password", "nothing on the port", "no such database"],
)
def test_a_server_that_refuses_us_is_one_line(
    postgres: Cluster,
    change: dict[str, str],
    reason: str,
    write_config: Callable[..., Path],
    cli: Callable[..., CliResult],
) -> None:
    password = change.get("password", PASSWORD)
    url = postgres.url(change.get("database", "postgres"), password)
    if change.get("port"):
        url = url.replace(f":{postgres.port}/", f":{free_port()}/")
    config = _config(write_config, url)
    for command in (("init",), ("status",)):
        result = cli("--config", config, *command)
        where = url.replace(f":{password}@", ":***@")
        _one_line_error(result, 1, f"{where}: ")
        assert reason in result.stderr
        assert password not in result.stderr


def test_a_database_from_a_newer_pqwatch_is_refused(
    db: Database, write_config: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    db.migrate()
    with db.write() as session:
        session.connection().execute(sa.text("UPDATE alembic_version SET version_num = 'ffff'"))
    result = cli("--config", _config(write_config, db.url.render_as_string(False)), "init")
    _one_line_error(result, 1, "the database is at revision ffff, which this pqwatch does not know")
    with db.read() as session:  # untouched
        version = session.connection().execute(sa.text("SELECT version_num FROM alembic_version"))
        assert version.scalar_one() == "ffff"


def test_somebody_elses_database_is_left_alone(
    db: Database, write_config: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    with db.write() as session:
        session.connection().execute(sa.text("CREATE TABLE somebody_elses (x int)"))
    result = cli("--config", _config(write_config, db.url.render_as_string(False)), "init")
    _one_line_error(result, 2, f"database.url: {db.describe()} holds tables but is not a pqwatch")
    assert _tables(db) == {"somebody_elses"}
