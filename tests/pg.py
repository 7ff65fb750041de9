"""A throw-away PostgreSQL server for the tests (issue 19). Contains no pqwatch logic.

Asked for with `pytest --postgres` or PQWATCH_TEST_POSTGRES=1, and always under CI; elsewhere
the tests that use it are skipped, and say why. Where it is asked for, a server that cannot be
started fails them. One cluster per test session, in a temporary folder: initdb (password
authentication, so that a wrong password can be tested), then pg_ctl start on a free loopback
port with its socket in that folder; each test gets a database of its own. The cluster is
stopped and removed at the end.

PostgreSQL refuses to run as root. As root (CI), the cluster belongs to the `postgres` user
(Debian's package makes it), or else `nobody`, and its commands run through setpriv.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

USER = "pqwatch"
PASSWORD = "pqwatch-test"


def wanted(config: pytest.Config) -> bool:
    return bool(
        config.getoption("--postgres")
        or config.getoption("--database") == "postgresql"
        or os.environ.get("PQWATCH_TEST_POSTGRES") == "1"
        or os.environ.get("CI")
    )


def _bindir() -> Path:
    """Where initdb and pg_ctl are: on PATH, or Debian's newest /usr/lib/postgresql/N/bin
    (the package puts only the client programs on PATH)."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3])
    )
    if not versions:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    return versions[-1].parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    root: Path
    port: int
    bindir: Path
    owner: pwd.struct_passwd | None  # who runs the server when we are root
    started_seconds: float = 0.0
    _names: Iterator[int] = field(default_factory=itertools.count)

    def url(self, database: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql+psycopg://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = f"test_{next(self._names)}"
        dsn = f"host=127.0.0.1 port={self.port} user={USER} password={PASSWORD} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def _run(self, program: str, *args: str) -> None:
        cmd = [str(self.bindir / program), *args]
        if self.owner is not None:
            ids = [f"--reuid={self.owner.pw_uid}", f"--regid={self.owner.pw_gid}"]
            cmd = ["setpriv", *ids, "--clear-groups", *cmd]
        done = subprocess.run(cmd, cwd=self.root, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}{done.stderr}{tail}")

    def _own(self, path: Path) -> None:
        if self.owner is not None:
            os.chown(path, self.owner.pw_uid, self.owner.pw_gid)

    def start(self) -> None:
        t0 = time.perf_counter()
        self._own(self.root)
        pwfile = self.root / "password"
        pwfile.write_text(PASSWORD + "\n")
        self._own(pwfile)
        data = str(self.root / "data")
        self._run(
            "initdb", "-D", data, f"--username={USER}", "--auth=scram-sha-256",
            f"--pwfile={pwfile}", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
            "--no-instructions",
        )  # fmt: skip
        self.resume()
        self.started_seconds = time.perf_counter() - t0

    def resume(self) -> None:
        """Start the server (again, after `crash`)."""
        # Durability is not wanted of a cluster that is deleted in a minute.
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        data, log = str(self.root / "data"), str(self.root / "server.log")
        self._run("pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o", options, "start")

    def crash(self) -> None:
        """Stop the server at once, as a crash or a lost machine would (immediate mode: no
        shutdown checkpoint, clients cut off mid-statement)."""
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        try:
            if (self.root / "data" / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_cluster() -> Cluster:
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            owner = pwd.getpwnam("nobody")
    bindir = _bindir()
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="pqwatch-pg-")), free_port(), bindir, owner)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def postgres(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The session's throw-away PostgreSQL cluster."""
    if not wanted(request.config):
        pytest.skip("PostgreSQL tests: run with --postgres or PQWATCH_TEST_POSTGRES=1")
    try:
        cluster = start_cluster()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        pytest.fail(f"cannot start a throw-away PostgreSQL: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(postgres: Cluster) -> str:
    """The URL of a new empty database on the throw-away server."""
    return postgres.create_database()
