"""An archive built once per test module and shared by its tests, on either database the
suite runs on. Contains no pqwatch logic.

SQLite: the archive is the file beside the module's config; a test that changes it works on
a copy of both. PostgreSQL (`--database postgresql`): every test's PQWATCH_DATABASE_URL is an
empty database of its own (tests/conftest.py), so the archive is built in a database of the
module's own, tests that read it point PQWATCH_DATABASE_URL at it (`reading`), and a private
copy is a new database made from it (CREATE DATABASE … TEMPLATE, `private_copy`).
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import _TEST_URL, on_postgres
from tests.pg import PASSWORD, USER, Cluster

ENV = "PQWATCH_DATABASE_URL"

# The PostgreSQL database of each archive, by its config file; and the pristine copy each
# private copy is made from (a template must have no one connected, and a module's service
# may keep connections to the archive itself open).
_DATABASES: dict[Path, tuple[str, str]] = {}
_names = itertools.count()


def _server(cluster: Cluster, sql: str) -> None:
    import psycopg

    dsn = f"host=127.0.0.1 port={cluster.port} user={USER} password={PASSWORD} dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql)


def create_database(cluster: Cluster, template: str | None = None) -> str:
    """A new database on the server (a copy of `template`, which no one may be connected
    to); its name."""
    name = f"archive_{os.getpid()}_{next(_names)}"
    _server(cluster, f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    return name


def drop_database(cluster: Cluster, name: str) -> None:
    _server(cluster, f"DROP DATABASE {name} WITH (FORCE)")


@contextmanager
def _pointing(url: str) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV, url)
        mp.setenv(_TEST_URL, url)
        yield


def build(request: pytest.FixtureRequest, make: Callable[[], Path]) -> Path:
    """Build a module's archive with `make` (which returns its config file): on PostgreSQL,
    in a new database of its own."""
    if not on_postgres(request.config):
        return make()
    cluster: Cluster = request.getfixturevalue("postgres")
    name = create_database(cluster)
    with _pointing(cluster.url(name)):
        config = make()
    _DATABASES[config.resolve()] = (name, create_database(cluster, template=name))
    return config


def _url(request: pytest.FixtureRequest, config: Path) -> str | None:
    if not on_postgres(request.config):
        return None
    cluster: Cluster = request.getfixturevalue("postgres")
    return cluster.url(_DATABASES[config.resolve()][0])


@contextmanager
def opened(request: pytest.FixtureRequest, config: Path) -> Iterator[None]:
    """Around opening a service (or starting a process) on the module's archive outside a
    test (a module fixture): it opens the archive's database."""
    url = _url(request, config)
    if url is None:
        yield
        return
    with _pointing(url):
        yield


def reading(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, config: Path) -> None:
    """This test reads the module's archive itself (not a copy)."""
    url = _url(request, config)
    if url is not None:
        monkeypatch.setenv(ENV, url)
        monkeypatch.setenv(_TEST_URL, url)


def private_copy(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, config: Path, to: Path
) -> Path:
    """A copy of the module's archive for one test that changes it: its config in `to`, and
    the database (the file beside it, or a new PostgreSQL database the test then uses)."""
    for name in ("config.toml", "pqwatch.db"):
        if (config.parent / name).exists():
            shutil.copy(config.parent / name, to / name)
    if on_postgres(request.config):
        cluster: Cluster = request.getfixturevalue("postgres")
        name = create_database(cluster, template=_DATABASES[config.resolve()][1])
        monkeypatch.setenv(ENV, cluster.url(name))
        monkeypatch.setenv(_TEST_URL, cluster.url(name))
    return to / "config.toml"


def reading_when_used(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, fixture: str
) -> None:
    """For an autouse fixture: a test that uses the module's archive (the fixture named,
    which gives its config, or a tuple holding it) reads it."""
    if fixture in request.fixturenames:
        built = request.getfixturevalue(fixture)
        if isinstance(built, tuple):
            built = next(v for v in built if isinstance(v, Path))
        reading(request, monkeypatch, built)
