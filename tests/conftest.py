"""Shared fixtures. Real recorded API data is read from ../shared/data (override with
PQWATCH_TEST_DATA); it is never copied into the repository."""

from __future__ import annotations

import json
import os
import select
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

import pytest

from pqwatch.config import load_config
from pqwatch.service import PQWatch
from pqwatch.testing.replay import ReplayServer
from tests.pg import pg_url, postgres  # noqa: F401  (fixtures: a throw-away PostgreSQL)
from tests.smtp_server import MailServer

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("PQWATCH_TEST_DATA", REPO.parent / "shared" / "data"))

MINIMAL_CONFIG = """
[database]
url = "sqlite:///pqwatch.db"

[[watches]]
name = "Children's palliative care"
query = "palliative care children"

[[subscribers]]
email = "officer@example.org"
name = "Policy officer"
"""


# Where the recordings must be there: in CI, or when a path was given on purpose. Elsewhere
# (a checkout without ../shared) the tests that need them are skipped, and say why.
DATA_REQUIRED = bool(os.environ.get("CI")) or "PQWATCH_TEST_DATA" in os.environ


def require_data() -> Path:
    """The recordings folder; a missing one fails the test where it must be there."""
    if not DATA_DIR.is_dir():
        message = f"real recordings not found at {DATA_DIR} (set PQWATCH_TEST_DATA)"
        if DATA_REQUIRED:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return DATA_DIR


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--postgres",
        action="store_true",
        help="run the PostgreSQL tests on a throw-away server (always under CI)",
    )
    parser.addoption(
        "--database",
        choices=("sqlite", "postgresql"),
        default=os.environ.get("PQWATCH_TEST_DATABASE", "sqlite"),
        help="the database every test's pqwatch runs on (PostgreSQL: a throw-away server, a "
        "new database per test, through PQWATCH_DATABASE_URL); env PQWATCH_TEST_DATABASE",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "sqlite_only(why): about SQLite's own file (locks, pragmas, FTS5, read-only copies); "
        "skipped when the suite runs on PostgreSQL",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not on_postgres(config):
        return
    for item in items:
        mark = item.get_closest_marker("sqlite_only")
        if mark is not None:
            why = mark.args[0] if mark.args else "about SQLite itself"
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {why}"))


def on_postgres(config: pytest.Config) -> bool:
    return bool(config.getoption("--database") == "postgresql")


@pytest.fixture
def data_dir() -> Path:
    return require_data()


# The database URL the running test's pqwatch uses when the suite runs on PostgreSQL (an
# environment variable: test modules import this file as tests.conftest, a second module).
_TEST_URL = "PQWATCH_TEST_PG_URL"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    for name in ("PQWATCH_CONFIG", "PQWATCH_DATABASE_URL", "PQWATCH_SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(_TEST_URL, raising=False)
    if on_postgres(request.config) and request.node.get_closest_marker("sqlite_only") is None:
        # Every config's [database] url gives way to the environment: each test gets an
        # empty database of its own on the session's throw-away server.
        url = request.getfixturevalue("pg_url")
        monkeypatch.setenv("PQWATCH_DATABASE_URL", url)
        monkeypatch.setenv(_TEST_URL, url)


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    def write(text: str = MINIMAL_CONFIG, name: str = "config.toml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., CliResult]:
    """Run the real `pqwatch` entry point in-process, as a user would from a shell."""
    from pqwatch.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["pqwatch", *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err)

    return run


UK = "uk_parliament"


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    """A local replay of the Written Questions API; load recordings with .load_files()."""
    with ReplayServer() as server:
        yield server


def api_config(base_url: str, extra: str = "", **source: object) -> str:
    """Config text pointing the source at a local server, with fast retries for tests."""
    settings = {
        "base_url": base_url,
        "requests_per_second": 1000,
        "backoff_seconds": 0.01,
        "max_retry_after_seconds": 2,
        "timeout_seconds": 5,
        "max_retries": 2,
        **source,
    }
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items())
    return f'[database]\nurl = "sqlite:///pqwatch.db"\n[sources.uk_parliament]\n{lines}\n{extra}'


def fixed_clock(day: date, hour: int = 12) -> Callable[[], datetime]:
    moment = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
    return lambda: moment


def open_service(config_path: Path, now: date | None = None) -> PQWatch:
    cfg = load_config(config_path)
    if now is None:
        return PQWatch(cfg)
    return PQWatch(cfg, now=fixed_clock(now))


def rows(db_file: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """Rows of the test's archive: the SQLite file, or (suite on PostgreSQL) the test's
    database, with values as SQLite gives them (dates as text, booleans as 0/1), so that
    assertions read the same on both."""
    if os.environ.get(_TEST_URL):
        return _pg_rows(os.environ[_TEST_URL], sql, params)
    with sqlite3.connect(db_file) as conn:
        return conn.execute(sql, params).fetchall()


def _pg_rows(url: str, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
    import psycopg

    def plain(v: Any) -> Any:
        if isinstance(v, bool):
            return int(v)
        if isinstance(v, datetime):
            return v.strftime("%Y-%m-%d %H:%M:%S.%f")
        if isinstance(v, date):
            return v.isoformat()
        return v

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        cur = conn.execute(sql.replace("%", "%%").replace("?", "%s"), params)
        if cur.description is None:
            return []
        return [tuple(plain(v) for v in r) for r in cur.fetchall()]


@pytest.fixture
def smtp_off() -> Iterator[MailServer]:
    """An SMTP server on a free port of 127.0.0.1 that is not listening until .start()."""
    server = MailServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp(smtp_off: MailServer) -> MailServer:
    smtp_off.start()
    return smtp_off


def readline_within(stream: IO[str] | None, timeout: float = 30) -> str:
    """A child's next output line, or an AssertionError after `timeout` seconds: a bare
    readline() waits for ever on a child that stays silent. Reads a byte at a time, so what
    follows the line is left for communicate()."""
    assert stream is not None
    fd, line = stream.fileno(), b""
    deadline = time.monotonic() + timeout
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError(f"no line within {timeout} s; got {line!r}")
        byte = os.read(fd, 1)
        if not byte:
            break
        line += byte
    return line.decode()
