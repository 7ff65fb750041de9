"""`pqwatch db copy --to URL`: a SQLite archive moved into an empty PostgreSQL database
(issue 19, item 3), complete, resumable after a kill -9, and refusing what is not empty.

Runs on the throw-away server of tests/pg.py (--postgres or PQWATCH_TEST_POSTGRES=1). The
archive is polled once per module from the replay of real recordings (../shared/data) and
copied as a file into each test.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pqwatch.resources import migrations_dir
from pqwatch.store.copy import copy_archive, tables
from pqwatch.store.db import Database
from pqwatch.testing.replay import ReplayServer
from tests.conftest import UK, CliResult, api_config, require_data
from tests.pg import PASSWORD, Cluster

# The source of a copy is an SQLite archive, and every test here already copies into
# PostgreSQL: the suite's PostgreSQL run has nothing to add.
pytestmark = pytest.mark.sqlite_only("copies an SQLite archive into PostgreSQL already")

ARCHIVE_CONFIG = """
[[watches]]
name = "Hospices"
query = "hospice OR palliative"

[[watches]]
name = "Schools"
query = "school"

[[subscribers]]
email = "officer@example.org"
"""


def _run_cli(*args: str) -> CliResult:
    """The real entry point in-process, for a module-scoped fixture (no capsys there)."""
    from pqwatch.cli import main

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", ["pqwatch", *args])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return CliResult(code, "", "")


@pytest.fixture(scope="module")
def archive_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An archive filled by `pqwatch init`, `poll` and `digest` from a month of recordings:
    questions, answers, events, members, matches, deliveries, a digest, poll runs."""
    data = require_data()
    folder = tmp_path_factory.mktemp("archive")
    base = data / "uk_parliament"
    with ReplayServer() as replay:
        replay.load_files(
            [
                base / "monthly_list_dumps" / "commons_tabled_2024-08.json.gz",
                base / "longform_detail_text" / "longform_2024-08.json.gz",
            ]
        )
        config = folder / "config.toml"
        text = api_config(replay.base_url, ARCHIVE_CONFIG, page_size=100)
        config.write_text(text.replace("sqlite:///pqwatch.db", f"sqlite:///{folder}/pqwatch.db"))
        for args in (
            ("init",),
            ("poll", "--since", "2024-08-01", "--until", "2024-08-31"),
            ("digest", "--out", str(folder / "outbox")),
        ):
            result = _run_cli("--config", str(config), *args)
            assert result.exit_code == 0, args
    db = folder / "pqwatch.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:  # a table polls leave empty
        conn.exec_driver_sql(
            "INSERT INTO rate_event (kind, key, created_at) VALUES "
            "('subscribe', 'k1', '2026-12-01 10:00:00.000000')"
        )
    engine.dispose()  # checkpoints the WAL into the file that tests copy
    return db


@pytest.fixture
def archive(archive_template: Path, tmp_path: Path) -> Path:
    """This test's own copy of the archive, and a config.toml pointing at it."""
    db = tmp_path / "pqwatch.db"
    shutil.copyfile(archive_template, db)
    (tmp_path / "config.toml").write_text(f'[database]\nurl = "sqlite:///{db}"\n')
    return db


def _config(archive: Path) -> Path:
    return archive.parent / "config.toml"


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows as Python values (read through the models), in key order."""
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            out = {}
            for t in tables():
                at = [list(t.columns).index(c) for c in t.primary_key.columns]
                rows = [tuple(r) for r in conn.execute(sa.select(t))]
                out[t.name] = sorted(rows, key=lambda r: tuple(r[i] for i in at))
            return out
    finally:
        db.dispose()


def _counts(url: str) -> dict[str, int]:
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            return {
                t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in tables()
            }
    finally:
        db.dispose()


def _one_line(result: CliResult, code: int) -> str:
    assert result.exit_code == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pqwatch: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def _pqwatch(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pqwatch", "--config", str(config), *args]


# -- the whole archive ------------------------------------------------------------------------


def test_copy_moves_every_row_and_a_second_run_has_nothing_to_copy(
    archive: Path, pg_url: str, cli: Callable[..., CliResult]
) -> None:
    source = snapshot(f"sqlite:///{archive}")
    # Every table has rows to copy, but job_lease, which only PostgreSQL's daemons write.
    assert [n for n in source if not source[n]] in ([], ["job_lease"])

    result = cli("--config", _config(archive), "db", "copy", "--to", pg_url)
    assert result.exit_code == 0, result.stderr
    total = sum(len(rows) for rows in source.values())
    assert result.stdout.startswith(f"Copied {total} rows from {archive} to ")
    assert PASSWORD not in result.stdout  # the target is named without its password
    assert snapshot(pg_url) == source

    again = cli("--config", _config(archive), "db", "copy", "--to", pg_url)
    assert again.exit_code == 0, again.stderr
    assert again.stdout.startswith(f"Nothing to copy: {Database(pg_url).describe()} already ")
    assert snapshot(pg_url) == source


def _migration(name: str) -> Any:
    path = migrations_dir() / "versions" / name
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_search_index_is_the_one_the_migrations_build(
    archive: Path, pg_url: str, cli: Callable[..., CliResult]
) -> None:
    assert cli("--config", _config(archive), "db", "copy", "--to", pg_url).exit_code == 0
    document = (
        f"{_migration('0002_question_fts.py').PG_DOCUMENT} || "
        f"setweight(to_tsvector('simple', {_migration('0005_fts_facets.py').PG_FACETS_SQL}), 'D')"
    )
    db = Database(pg_url)
    try:
        with db.engine.connect() as conn:
            differ = conn.exec_driver_sql(
                f"SELECT q.id FROM question q WHERE q.search_vector IS DISTINCT FROM ({document})"
            ).all()
            nbsp = conn.exec_driver_sql(
                "SELECT count(*) FROM question WHERE strpos(question_text, chr(160)) > 0"
            ).scalar_one()
    finally:
        db.dispose()
    assert differ == []
    assert nbsp  # the recordings have no-break spaces, which both turn into spaces


def test_after_the_copy_new_rows_get_new_ids(
    archive: Path, pg_url: str, cli: Callable[..., CliResult]
) -> None:
    assert cli("--config", _config(archive), "db", "copy", "--to", pg_url).exit_code == 0
    before = snapshot(pg_url)
    db = Database(pg_url)
    try:
        with db.write() as session:  # through the store's models, as pqwatch writes
            from pqwatch.store.models import Event, PollRun, Subscriber

            run = PollRun(source=UK, window_start=date(2024, 9, 1), window_end=date(2024, 9, 2))
            sub = Subscriber(email="new@example.org")
            question_id = before["question"][0][0]
            event = Event(question_id=question_id, kind="withdrawn", event_date=date(2030, 1, 1))
            session.add_all([run, sub, event])
            session.flush()
            assert run.id == max(r[0] for r in before["poll_run"]) + 1
            assert sub.id == max(r[0] for r in before["subscriber"]) + 1
            assert event.id == max(r[0] for r in before["event"]) + 1
    finally:
        db.dispose()


# -- killed part-way -------------------------------------------------------------------------


def _wait_then_kill(proc: subprocess.Popen[str], url: str, sql: str, timeout: float = 60) -> None:
    """SIGKILL the copy as soon as `sql` counts a row on the target."""
    db = Database(url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with db.engine.connect() as conn:
                    if conn.exec_driver_sql(sql).scalar():
                        break
            except sa.exc.DBAPIError:
                pass  # the tables are not there yet
            time.sleep(0.005)
    finally:
        db.dispose()
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"the copy ended before the kill: {out}{err}"


@pytest.mark.parametrize(
    "when",
    [
        # part-way through the questions, the first large table
        "SELECT count(*) > 100 FROM question",
        # part-way through the answers, with every question copied
        "SELECT count(*) > 100 FROM answer",
    ],
    ids=["questions", "answers"],
)
def test_a_copy_killed_part_way_carries_on_and_ends_identical(
    archive: Path, pg_url: str, when: str
) -> None:
    source = snapshot(f"sqlite:///{archive}")
    args = _pqwatch(_config(archive), "db", "copy", "--to", pg_url, "--batch-rows", "20")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_then_kill(proc, pg_url, when)
    assert _counts(pg_url) != {name: len(rows) for name, rows in source.items()}

    again = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("Copied ") and again.stderr == ""
    assert snapshot(pg_url) == source  # no row lost, none twice (keys are unique anyway)
    db = Database(pg_url)
    try:
        with db.engine.connect() as conn:
            unindexed = conn.exec_driver_sql(
                "SELECT count(*) FROM question WHERE search_vector IS NULL"
            ).scalar_one()
    finally:
        db.dispose()
    assert unindexed == 0
    third = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert third.returncode == 0 and third.stdout.startswith("Nothing to copy"), third.stderr


# -- refused ---------------------------------------------------------------------------------


def test_a_target_holding_another_archive_is_refused_in_one_line(
    archive: Path, pg_url: str, cli: Callable[..., CliResult], write_config: Callable[..., Path]
) -> None:
    other = write_config(
        f"[database]\nurl = '{pg_url}'\n\n[[subscribers]]\nemail = 'someone@example.org'\n",
        name="other/config.toml",
    )
    assert cli("--config", other, "init").exit_code == 0  # another install's database
    before = snapshot(pg_url)
    result = cli("--config", _config(archive), "db", "copy", "--to", pg_url)
    line = _one_line(result, 2)
    assert "already holds another pqwatch archive (rows in subscriber)" in line
    assert PASSWORD not in line
    assert snapshot(pg_url) == before  # nothing written


def test_a_database_with_other_tables_is_refused(
    archive: Path, pg_url: str, cli: Callable[..., CliResult]
) -> None:
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE invoices (id integer)")
    engine.dispose()
    line = _one_line(cli("--config", _config(archive), "db", "copy", "--to", pg_url), 2)
    assert "holds tables but is not a pqwatch database" in line


@pytest.mark.parametrize(
    ("to", "says"),
    [
        ("sqlite:///elsewhere.db", "--to: db copy fills a PostgreSQL database"),
        ("not a url", "--to: 'not a url' is not a database URL"),
        ("mysql://u@localhost/pq", "--to: unsupported database"),
    ],
)
def test_a_target_that_is_not_postgresql_is_a_usage_error(
    archive: Path, cli: Callable[..., CliResult], to: str, says: str
) -> None:
    line = _one_line(cli("--config", _config(archive), "db", "copy", "--to", to), 2)
    assert line.startswith(f"pqwatch: error: {says}"), line


def test_a_wrong_password_or_missing_server_is_one_line_exit_1(
    archive: Path, postgres: Cluster, cli: Callable[..., CliResult]
) -> None:
    config = _config(archive)
    url = postgres.create_database()
    wrong = url.replace(PASSWORD, "not-the-password")
    line = _one_line(cli("--config", config, "db", "copy", "--to", wrong), 1)
    assert "cannot connect to the database server" in line and "password" in line
    assert "not-the-password" not in line
    from tests.pg import free_port

    nowhere = f"postgresql+psycopg://u:p@127.0.0.1:{free_port()}/pq"
    line = _one_line(cli("--config", config, "db", "copy", "--to", nowhere), 1)
    assert "cannot connect to the database server" in line


def test_the_source_must_be_a_sqlite_archive(
    pg_url: str, cli: Callable[..., CliResult], write_config: Callable[..., Path], tmp_path: Path
) -> None:
    on_pg = write_config(f"[database]\nurl = '{pg_url}'\n")
    line = _one_line(cli("--config", on_pg, "db", "copy", "--to", pg_url), 2)
    assert "is not SQLite" in line
    missing = write_config(f'[database]\nurl = "sqlite:///{tmp_path}/none.db"\n', name="m.toml")
    line = _one_line(cli("--config", missing, "db", "copy", "--to", pg_url), 2)
    assert "there is no archive at" in line
    assert not (tmp_path / "none.db").exists()  # not made by trying


def test_a_nul_character_is_named_in_one_line(
    archive: Path, pg_url: str, cli: Callable[..., CliResult]
) -> None:
    engine = sa.create_engine(f"sqlite:///{archive}")
    with engine.begin() as conn:
        qid = conn.exec_driver_sql(
            "UPDATE question SET heading = 'a' || char(0) || 'b' WHERE id = "
            "(SELECT max(id) FROM question) RETURNING id"
        ).scalar_one()
    engine.dispose()
    line = _one_line(cli("--config", _config(archive), "db", "copy", "--to", pg_url), 1)
    assert f"question {qid}: heading holds a NUL character" in line


# -- odd values ------------------------------------------------------------------------------

# Text as SQLite may hold it: any code point but NUL (PostgreSQL's text cannot) and surrogates
# (not UTF-8); control characters, tabs, newlines, backslashes (COPY's escapes) included.
TEXT = st.text(st.characters(min_codepoint=1, exclude_categories=["Cs"]), max_size=40)
LONG = st.integers(1, 3).map(lambda n: ("é\t\\N\n" * 50_000)[: n * 70_000])
ODD_TEXT = st.one_of(TEXT, st.just(""), LONG, st.sampled_from(["\\.", "\\N", "\r\n", "\x7f\x9b"]))
DATES = st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))
TIMES = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
INT32 = st.integers(-(2**31), 2**31 - 1)


@st.composite
def odd_archive(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    """A few rows of the archive's main tables with odd but storable values."""
    members = [
        {
            "id": mid,
            "name": draw(st.none() | ODD_TEXT),
            "party": draw(st.none() | TEXT),
            "updated_at": draw(TIMES),
        }
        for mid in draw(st.lists(INT32, min_size=1, max_size=3, unique=True))
    ]
    questions, answers, runs = [], [], []
    for qid in range(1, draw(st.integers(1, 4)) + 1):
        questions.append(
            {
                "id": qid,
                "source": UK,
                "source_id": f"{qid}:{draw(TEXT)}",
                "uin": draw(st.none() | TEXT),
                "house": draw(st.sampled_from(["Commons", "Lords"])),
                "date_tabled": draw(DATES),
                "date_answered": draw(st.none() | DATES),
                "is_named_day": draw(st.booleans()),
                "heading": draw(st.none() | ODD_TEXT),
                "asking_member_id": draw(st.sampled_from([None] + [m["id"] for m in members])),
                "question_text": draw(ODD_TEXT),
                "status": draw(st.sampled_from(["unanswered", "answered"])),
                "content_hash": draw(TEXT),
                "first_seen_at": draw(TIMES),
                "updated_at": draw(TIMES),
            }
        )
        for version in range(1, draw(st.integers(0, 2)) + 1):
            answers.append(
                {
                    "question_id": qid,
                    "version": version,
                    "kind": "answer",
                    "answer_html": draw(ODD_TEXT),
                    "answer_text": draw(ODD_TEXT),
                    "original_answer_html": draw(st.none() | TEXT),
                    "is_full_text": draw(st.booleans()),
                    "content_hash": f"{qid}-{version}",
                    "recorded_at": draw(TIMES),
                }
            )
    for _ in range(draw(st.integers(0, 2))):
        runs.append(
            {
                "source": draw(TEXT),
                "window_start": draw(DATES),
                "window_end": draw(DATES),
                "error": draw(st.none() | ODD_TEXT),
                "items_seen": draw(INT32),
                "duration_seconds": draw(st.floats(allow_nan=False)),
                "started_at": draw(TIMES),
                "finished_at": draw(st.none() | TIMES),
            }
        )
    return {"member": members, "question": questions, "answer": answers, "poll_run": runs}


@pytest.fixture
def empty_archive(tmp_path: Path) -> Path:
    """A migrated, empty SQLite archive to copy from."""
    db = tmp_path / "empty.db"
    database = Database(f"sqlite:///{db}")
    database.migrate()
    database.dispose()  # checkpoints the WAL into the file that examples copy
    return db


_examples = itertools.count()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=odd_archive())
def test_odd_values_survive_the_copy_unchanged(
    data: dict[str, list[dict[str, Any]]], empty_archive: Path, pg_url: str
) -> None:
    meta = {t.name: t for t in tables()}
    db_file = empty_archive.with_name(f"odd-{next(_examples)}.db")  # no WAL of another
    shutil.copyfile(empty_archive, db_file)
    url = f"sqlite:///{db_file}"
    source = Database(url)
    try:
        with source.write() as session:
            for name, rows in data.items():
                if rows:
                    session.connection().execute(meta[name].insert(), rows)
        # Each example starts from an empty target: truncated, then the copy claims it.
        target = Database(pg_url)
        target.migrate()
        with target.engine.begin() as conn:
            names = ", ".join(t.name for t in tables())
            conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        target.dispose()
        result = copy_archive(source, pg_url)
    finally:
        source.dispose()
    assert result.rows_copied == sum(len(r) for r in data.values()) + 1  # + the secret
    assert snapshot(pg_url) == snapshot(url)


# -- searching the copy ----------------------------------------------------------------------

QUERIES = [
    "hospice",
    "school funding",
    '"mental health"',
    "nurs*",
    "school -academy",
    "dentist OR dental",
    "house:commons tabled:2024-08 housing",
    "status:answered dept:health",
]


def test_searches_give_the_same_results_on_the_copy(
    archive: Path,
    pg_url: str,
    cli: Callable[..., CliResult],
    write_config: Callable[..., Path],
) -> None:
    assert cli("--config", _config(archive), "db", "copy", "--to", pg_url).exit_code == 0
    on_pg = write_config(f"[database]\nurl = '{pg_url}'\n", name="pg/config.toml")
    for query in QUERIES:
        args = ("search", query, "--sort", "newest", "--limit", "50", "--format", "json")
        sqlite = cli("--config", _config(archive), *args)
        postgres = cli("--config", on_pg, *args)
        assert sqlite.exit_code == postgres.exit_code == 0, (sqlite.stderr, postgres.stderr)
        assert json.loads(sqlite.stdout)["hits"], query
        assert _unsnipped(postgres.stdout) == _unsnipped(sqlite.stdout), query


def _unsnipped(out: str) -> dict[str, Any]:
    """A search's JSON without the snippets and marked words: what FTS5's snippet() and
    ts_headline show around a match is the search modules' business, not the copy's (on
    PostgreSQL a phrase's words are also marked alone, "mental health" and "health")."""
    result = json.loads(out)
    for hit in result["hits"]:
        hit.pop("snippet")
        hit.pop("matched_terms")
    return result  # type: ignore[no-any-return]
