"""`pqwatch serve --workers N`: several processes serving one port (issue 19). The real
command runs as a subprocess over a small real archive (test_web's); which process answered a
connection is read from /proc (the worker holding the server's end of it), so the app needs no
hook for the tests. Linux only (/proc)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import httpx
import pytest

from pqwatch.errors import PQWatchError
from pqwatch.web.app import Site
from pqwatch.web.server import WebServer
from tests.conftest import MINIMAL_CONFIG, readline_within
from tests.test_web import build_archive

DEADLINE = 60.0  # seconds; spawning workers on a loaded 2-core machine takes a few

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_archive(tmp_path_factory.mktemp("workers-archive"))


@pytest.fixture
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A private copy of the archive (the server writes to it: it syncs the config); with the
    suite on PostgreSQL, the archive built in this test's database."""
    if os.environ.get("PQWATCH_DATABASE_URL"):
        return build_archive(tmp_path)
    archive: Path = request.getfixturevalue("archive")
    for name in ("config.toml", "pqwatch.db"):
        shutil.copy(archive.parent / name, tmp_path / name)
    return tmp_path / "config.toml"


class Served:
    """`pqwatch serve` running as a child process of its own session."""

    def __init__(self, config: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pqwatch", "--config", str(config), "serve", "--port", "0",
             *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # a process group of its own, as a terminal gives it
        )  # fmt: skip
        try:
            self.first = readline_within(self.proc.stdout, DEADLINE)
            words = self.first.split()
            assert words[:3] == ["Serving", "pqwatch", "on"], self.first
        except BaseException:
            self.close()
            raise
        self.url = words[3]
        self.port = int(self.url.rstrip("/").rsplit(":", 1)[1])

    def descendants(self) -> set[int]:
        found: set[int] = set()
        todo = [self.proc.pid]
        while todo:
            pid = todo.pop()
            for task in Path(f"/proc/{pid}/task").glob("*"):
                try:
                    kids = {int(k) for k in (task / "children").read_text().split()}
                except OSError:
                    continue
                todo.extend(kids - found)
                found |= kids
        return found

    def workers(self) -> set[int]:
        """The processes other than the parent that hold the listening socket."""
        [inode] = _inodes(local_port=self.port, state="0A")  # LISTEN
        return {pid for pid in self.descendants() if inode in _sockets(pid)}

    def stop(self, signum: int = signal.SIGTERM, *, group: bool = False) -> tuple[str, str]:
        if group:
            os.killpg(self.proc.pid, signum)  # Ctrl-C in a terminal: the whole group
        else:
            self.proc.send_signal(signum)
        return self.proc.communicate(timeout=DEADLINE)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.communicate()


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(config: Path, *args: str) -> Served:
        started.append(Served(config, *args))
        return started[-1]

    yield start
    for served in started:
        served.close()


def _inodes(*, local_port: int, state: str, remote_port: int | None = None) -> list[str]:
    """Socket inodes from /proc/net/tcp (IPv4) by local port, state and remote port."""
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, st, inode = fields[1], fields[2], fields[3], fields[9]
        if int(local.split(":")[1], 16) != local_port or st != state:
            continue
        if remote_port is None or int(remote.split(":")[1], 16) == remote_port:
            found.append(inode)
    return found


def _sockets(pid: int) -> set[str]:
    """The socket inodes a process holds."""
    held = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            held.add(target[8:-1])
    return held


def _answered_by(served: Served, sock: socket.socket) -> int:
    """The worker holding the server's end of this (answered) connection."""
    [inode] = _inodes(
        local_port=served.port, state="01", remote_port=sock.getsockname()[1]
    )  # ESTABLISHED
    [pid] = [pid for pid in served.workers() if inode in _sockets(pid)]
    return pid


def _get(sock: socket.socket, path: str) -> bytes:
    """One keep-alive request; the head of its reply (the connection stays open)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = sock.recv(65536)
        assert chunk, reply
        reply += chunk
    return reply


def _alive(pid: int) -> bool:
    """A process that still runs (a zombie left to a container's init counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"still waiting: {what}"
        time.sleep(0.1)


def test_requests_are_answered_by_several_worker_processes(
    config: Path, serve: Callable[..., Served]
) -> None:
    served = serve(config, "--workers", "2")
    assert (
        served.first == f"Serving pqwatch on {served.url} with 2 worker processes (Ctrl-C stops)\n"
    )
    workers = served.workers()
    assert len(workers) == 2 and served.proc.pid not in workers
    answered: set[int] = set()
    connections: list[socket.socket] = []
    try:
        # Each worker accepts from the shared socket; new connections, held open, land on
        # both sooner or later (the kernel wakes whichever is waiting).
        while answered != workers and len(connections) < 200:
            sock = socket.create_connection(("127.0.0.1", served.port), DEADLINE)
            connections.append(sock)
            path = "/search?q=hospice" if len(connections) % 2 else "/feeds/"
            assert _get(sock, path).startswith(b"HTTP/1.1 200 "), path
            answered.add(_answered_by(served, sock))
    finally:
        for sock in connections:
            sock.close()
    assert answered == workers
    page = httpx.get(served.url + "search", params={"q": "hospice"}, timeout=DEADLINE)
    assert page.status_code == 200 and "<mark>" in page.text
    out, err = served.stop()
    assert (served.proc.returncode, err) == (0, "")
    assert out.splitlines() == ["Stopped serving (SIGTERM)."]


def test_a_killed_worker_is_replaced_and_the_site_keeps_answering(
    config: Path, serve: Callable[..., Served]
) -> None:
    served = serve(config, "--workers", "2")
    before = served.workers()
    victim, survivor = sorted(before)
    os.kill(victim, signal.SIGKILL)
    # The survivor answers meanwhile: every request, none refused or dropped.
    with httpx.Client(base_url=served.url, timeout=DEADLINE) as client:
        deadline = time.monotonic() + DEADLINE
        while True:
            assert client.get("/feeds/all.rss").status_code == 200
            now = served.workers()
            if len(now) == 2 and victim not in now:
                break
            assert time.monotonic() < deadline, f"not replaced: {now}"
            time.sleep(0.1)
        assert survivor in now
        for _ in range(20):
            assert client.get("/search", params={"q": "trade"}).status_code == 200
    out, err = served.stop()
    assert (served.proc.returncode, err) == (0, "")
    assert out.splitlines() == ["Stopped serving (SIGTERM)."]


@pytest.mark.parametrize(
    ("signum", "group"), [(signal.SIGTERM, False), (signal.SIGINT, True)], ids=["SIGTERM", "Ctrl-C"]
)
def test_a_signal_stops_every_worker_and_exits_0(
    config: Path, serve: Callable[..., Served], signum: signal.Signals, group: bool
) -> None:
    served = serve(config, "--workers", "2")
    family = served.descendants()
    assert served.workers() <= family and len(served.workers()) == 2
    assert httpx.get(served.url, timeout=DEADLINE).status_code == 200
    out, err = served.stop(signum, group=group)
    assert served.proc.returncode == 0, err
    assert err == ""  # nothing from the workers either: no traceback, no KeyboardInterrupt
    assert out.splitlines() == [f"Stopped serving ({signum.name})."]
    _wait_for(f"processes left of {family}", lambda: not any(map(_alive, family)))
    with pytest.raises(httpx.ConnectError):
        httpx.get(served.url, timeout=DEADLINE)


def test_workers_come_from_the_config(
    write_config: Callable[..., Path], serve: Callable[..., Served]
) -> None:
    served = serve(write_config(MINIMAL_CONFIG + "\n[web]\nworkers = 2\n"))
    assert "with 2 worker processes" in served.first
    assert len(served.workers()) == 2
    _, err = served.stop()
    assert (served.proc.returncode, err) == (0, "")


def test_one_worker_is_todays_single_process(
    write_config: Callable[..., Path], serve: Callable[..., Served]
) -> None:
    served = serve(write_config(), "--workers", "1")
    assert served.first == f"Serving pqwatch on {served.url} (Ctrl-C stops)\n"
    assert served.descendants() == set()
    out, err = served.stop()
    assert (served.proc.returncode, err, out) == (0, "", "Stopped serving (SIGTERM).\n")


@pytest.mark.parametrize(
    ("args", "web", "message"),
    [
        (
            ["--workers", "0"],
            "",
            "usage error: Invalid value for '--workers': 0 is not in the range 1<=x<=64. "
            "(see 'pqwatch serve --help')",
        ),
        ([], "workers = 0", "{config}: web.workers: Input should be greater than or equal to 1"),
        (
            [],
            'workers = "2"',
            "{config}: web.workers: Input should be a valid integer, got str '2'",
        ),
    ],
    ids=["option 0", "config 0", "config text"],
)
def test_a_bad_worker_count_is_one_line(
    write_config: Callable[..., Path],
    cli: Callable[..., object],
    args: list[str],
    web: str,
    message: str,
) -> None:
    config = write_config(MINIMAL_CONFIG + f"\n[web]\nport = 0\n{web}\n")
    result = cli("--config", config, "serve", *args)
    assert result.exit_code == 2  # type: ignore[attr-defined]
    expected = f"pqwatch: error: {message.format(config=config)}\n"
    assert result.stderr == expected  # type: ignore[attr-defined]


def test_workers_on_postgresql(
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    serve: Callable[..., Served],
) -> None:
    import psycopg

    monkeypatch.setenv("PQWATCH_DATABASE_URL", pg_url)  # the archive and the server
    config = build_archive(tmp_path)
    served = serve(config, "--workers", "2")
    workers = served.workers()
    assert len(workers) == 2
    with httpx.Client(base_url=served.url, timeout=DEADLINE) as client:
        page = client.get("/search", params={"q": "hospice"})
        assert page.status_code == 200 and "<mark>" in page.text
        assert client.get("/watches/hospice-funding").status_code == 200
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    database = dsn.rsplit("/", 1)[1]

    def sessions() -> int:
        with psycopg.connect(dsn) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                "pg_backend_pid()",
                (database,),
            ).fetchone()
        return int(row[0]) if row else 0

    assert sessions() >= 1  # the workers' pools
    out, err = served.stop()
    assert (served.proc.returncode, err) == (0, "")
    assert out.splitlines() == ["Stopped serving (SIGTERM)."]
    # Each worker closed its pool as it stopped: no session left behind, none dropped.
    _wait_for("the workers' sessions to end", lambda: sessions() == 0)


def test_a_taken_port_is_one_line_before_any_worker_starts(
    write_config: Callable[..., Path], cli: Callable[..., object]
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = cli("--config", write_config(), "serve", "--port", str(port), "--workers", "2")
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert result.stderr == (  # type: ignore[attr-defined]
        f"pqwatch: error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )


def _no_site() -> Site:
    """An open_site that fails, as a worker whose database has gone away would."""
    raise OSError("the database went away")


def test_a_worker_that_cannot_start_stops_the_server_in_one_line_each(
    capfd: pytest.CaptureFixture[str],
) -> None:
    # In this process's main thread, as the CLI runs it; the workers are spawned.
    server = WebServer(cast(Site, _Nothing()), "127.0.0.1", 0, workers=2, open_site=_no_site)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    announced: list[str] = []
    with pytest.raises(PQWatchError) as failed:
        server.run(announced.append)
    assert str(failed.value).startswith("a web worker did not start (exit code 3)"), failed.value
    assert announced == []  # it never said it was serving
    assert {sig: signal.getsignal(sig) for sig in before} == before
    err = capfd.readouterr().err.splitlines()
    assert err and all(
        line
        == "pqwatch serve: error: a web worker could not start: OSError: the database went away"
        for line in err
    ), err
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), DEADLINE).close()


class _Nothing:
    """The supervisor's own site: it serves nothing with several workers."""


def test_workers_stop_when_the_supervisor_is_killed(
    config: Path, serve: Callable[..., Served]
) -> None:
    served = serve(config, "--workers", "2")
    workers = served.workers()
    os.kill(served.proc.pid, signal.SIGKILL)
    served.proc.communicate(timeout=DEADLINE)
    # Left behind they would serve the port for ever, from a config nobody runs any more.
    _wait_for(f"workers {workers} to stop", lambda: not any(map(_alive, workers)))
    with pytest.raises(httpx.ConnectError):
        httpx.get(served.url, timeout=DEADLINE)
