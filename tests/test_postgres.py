"""PostgreSQL (issue 19): pqwatch opens, migrates and checks a PostgreSQL database, and a
server that goes away mid-poll loses nothing.

Run on a throw-away server (tests/pg.py): asked for with --postgres or PQWATCH_TEST_POSTGRES=1,
always under CI. (The whole suite also runs on PostgreSQL with --database postgresql; search,
processes and db copy have their own test_postgres_*.py and test_db_copy.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pqwatch.locks import lock_path
from pqwatch.store.db import SCHEMA_HEAD, Database
from pqwatch.testing.replay import Fault, ReplayServer
from tests.conftest import CliResult, api_config
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
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The refusing server is the config's own URL, not the suite's database.
    monkeypatch.delenv("PQWATCH_DATABASE_URL", raising=False)
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


@pytest.fixture
def own_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A cluster of this test's own, which the test may crash and start again."""
    from tests.pg import start_cluster, wanted

    if not wanted(request.config):
        pytest.skip("PostgreSQL tests: run with --postgres or PQWATCH_TEST_POSTGRES=1")
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_a_server_that_goes_away_mid_poll_is_one_line_and_the_next_poll_carries_on(
    own_cluster: Cluster, data_dir: Path, replay: ReplayServer, tmp_path: Path
) -> None:
    """The server crashes while a poll is storing pages: the poll ends in one line, exit 1;
    with the server back, the next poll completes, and the archive holds every question of
    the window once, with one tabled event each (nothing lost, nothing doubled)."""
    base = data_dir / "uk_parliament"
    replay.load_files(
        [
            base / "monthly_list_dumps" / "commons_tabled_2024-08.json.gz",
            base / "longform_detail_text" / "longform_2024-08.json.gz",
        ]
    )
    window = [
        v for v in replay.items.values() if "2024-08-27" <= v["dateTabled"][:10] <= "2024-08-30"
    ]
    assert len(window) > 60
    # Slow pages: the crash comes while the poll is part-way through the window.
    replay.add_fault(Fault("delay", delay=0.5, match="list", after=2, times=100))
    url = own_cluster.create_database()
    config = tmp_path / "config.toml"
    config.write_text(
        api_config(replay.base_url, page_size=10) + f'\n[email]\noutbox_dir = "{tmp_path}/outbox"\n'
    )
    env = {**os.environ, "PQWATCH_DATABASE_URL": url}
    cmd = [sys.executable, "-m", "pqwatch", "--config", str(config)]
    poll = [*cmd, "poll", "--since", "2024-08-27", "--until", "2024-08-30"]
    assert subprocess.run([*cmd, "init"], env=env, capture_output=True).returncode == 0
    proc = subprocess.Popen(
        poll, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while _count(url, "question") == 0:  # the first pages are stored
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        own_cluster.crash()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, (out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "cannot connect to the database server" in err, err
    own_cluster.resume()
    replay.clear_faults()
    again = subprocess.run(poll, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert _count(url, "question") == len(window)
    assert _count(url, "event WHERE kind = 'tabled'") == len(window)
    sources = _rows(url, "SELECT count(*), count(DISTINCT source_id) FROM question")
    assert sources[0][0] == sources[0][1]


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


def _count(url: str, what: str) -> int:
    try:
        return int(_rows(url, f"SELECT count(*) FROM {what}")[0][0])
    except sa.exc.OperationalError:
        return 0
