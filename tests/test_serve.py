"""`pqwatch serve` under stress: stopped by signals, clients that hang up, stall or send a bad
Content-Length, a site that fails. What is checked is what a user sees: exit codes,
stdout/stderr lines, replies. (Pages themselves: test_web.py and test_browser.py.)"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest

from pqwatch.search.results import QuestionStory, SearchResult
from pqwatch.service import PQWatch
from pqwatch.web.server import WebServer
from tests.conftest import open_service, readline_within, rows

DEADLINE = 30.0  # seconds; generous for a loaded 2-core machine, never waited out when it works


class _Site:
    """A Site whose feed is `body`; feed_bytes can fail, or wait to be released."""

    def __init__(self, body: bytes = b"<rss/>", error: Exception | None = None) -> None:
        self.body = body
        self.error = error
        self.hold = False
        self.entered = threading.Event()
        self.release = threading.Event()
        self.returned = threading.Event()

    def feed_bytes(self, slug: str, kind: str) -> bytes | None:
        self.entered.set()
        if self.error:
            raise self.error
        if self.hold:
            self.release.wait(DEADLINE)
        self.returned.set()
        return self.body

    def feed_list(self) -> list[tuple[str, str, str | None]]:
        return [("all", "All watches", None)]

    def unsubscribe(self, token: str, watch_slug: str | None = None) -> str | None:
        if self.error:
            raise self.error
        return "someone@example.org"

    def search(self, query: str, *, limit: int = 20, sort: str = "relevance") -> SearchResult:
        return SearchResult(query, 0, sort, ())

    def show(self, ref: str) -> QuestionStory:
        raise NotImplementedError

    def today(self) -> date:
        return date(2026, 7, 10)


@pytest.fixture
def service(write_config: Callable[..., Path]) -> Iterator[PQWatch]:
    svc = open_service(write_config())
    try:
        yield svc
    finally:
        svc.close()


@pytest.fixture
def server(service: PQWatch) -> WebServer:
    """The real server of a fresh database (one watch, one subscriber), via the facade; tests
    may change its settings before serving."""
    return service.serve("127.0.0.1", 0)


@pytest.fixture
def served(server: WebServer) -> Iterator[WebServer]:
    with server.running():
        yield server


def _raw(server: WebServer, request: bytes, *, half_close: bool = False) -> bytes:
    """Send bytes as they are, read the reply until the server closes (or fail at DEADLINE)."""
    with socket.create_connection(("127.0.0.1", server.port), DEADLINE) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def _token(service: PQWatch) -> str:
    [(token,)] = rows(Path(service.db.describe()), "SELECT token FROM subscriber")
    return str(token)


def _active(service: PQWatch) -> list[tuple[int]]:
    return rows(Path(service.db.describe()), "SELECT active FROM subscriber")


def _idle(server: WebServer) -> None:
    """Wait until the server is done with every connection: stderr is final then."""
    deadline = time.monotonic() + DEADLINE
    while server.connections:
        assert time.monotonic() < deadline, "connections still open"
        time.sleep(0.01)


def test_the_feed_index_is_served_as_index_html_too(served: WebServer) -> None:
    # `pqwatch feeds` writes feeds/index.html: the same address must work when served.
    with httpx.Client(base_url=served.url, timeout=DEADLINE) as client:
        listing = client.get("/feeds/")
        assert listing.status_code == 200 and "/feeds/all.rss" in listing.text
        for path in ("/feeds/index.html", "/feeds"):
            page = client.get(path)
            assert page.status_code == 200, path
            assert page.headers["content-type"] == "text/html; charset=utf-8"
            assert page.text == listing.text
            again = client.get(path, headers={"If-None-Match": page.headers["etag"]})
            assert again.status_code == 304
        assert client.head("/feeds/index.html").status_code == 200
        home = client.get("/index.html")  # the site's index is the search page now
        assert home.status_code == 200 and home.text == client.get("/").text
        assert '<label for="q">Search</label>' in home.text


def test_a_client_that_drops_a_download_leaves_stderr_clean(
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Big enough that the server is still writing when the client resets the connection.
    site = _Site(body=b"<rss>" + b"x" * (16 << 20) + b"</rss>")
    server = WebServer(site, "127.0.0.1", 0)
    with server.running():
        for _ in range(3):
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.settimeout(DEADLINE)
                sock.connect(("127.0.0.1", server.port))
                sock.sendall(b"GET /feeds/all.rss HTTP/1.1\r\nHost: x\r\n\r\n")
                assert sock.recv(4096).startswith(b"HTTP/1.1 200")
                # Close with unread data and no lingering: the kernel sends a reset.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            _idle(server)
        assert httpx.get(server.url + "feeds/", timeout=DEADLINE).status_code == 200
    assert capfd.readouterr().err == ""


def test_a_failure_is_one_line_on_stderr_and_a_500(capfd: pytest.CaptureFixture[str]) -> None:
    site = _Site(error=RuntimeError("database is locked\nsecond line"))
    with WebServer(site, "127.0.0.1", 0).running() as url:
        with httpx.Client(base_url=url, timeout=DEADLINE) as client:
            feed = client.get("/feeds/all.rss")
            unsub = client.post("/unsubscribe/abcdefghijklmnop0123", content=b"x")
            assert client.get("/feeds/").status_code == 200  # still serving
    assert feed.status_code == 500 and unsub.status_code == 500
    assert feed.text == "internal error\n"  # the details are for the operator
    assert feed.headers["x-content-type-options"] == "nosniff"
    err = capfd.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("pqwatch serve: error: GET /feeds/all.rss from 127.0.0.1")
    assert lines[1].startswith("pqwatch serve: error: POST /unsubscribe/")
    assert all(line.endswith("RuntimeError: database is locked second line") for line in lines)


def test_forwarded_addresses_are_believed_only_from_trusted_proxies(
    capfd: pytest.CaptureFixture[str],
) -> None:
    site = _Site(error=RuntimeError("boom"))
    forwarded = {"X-Forwarded-For": "203.0.113.9"}
    for trusted, seen in (([], "127.0.0.1"), (["127.0.0.1"], "203.0.113.9")):
        with WebServer(site, "127.0.0.1", 0, trusted_proxies=trusted).running() as url:
            assert httpx.get(url + "feeds/all.rss", headers=forwarded).status_code == 500
        [line] = capfd.readouterr().err.splitlines()
        assert f"GET /feeds/all.rss from {seen}:" in line


@pytest.mark.parametrize("length", ["abc", "-1", "+5", "1_0", "5, 6"])
def test_a_bad_content_length_is_a_400(
    served: WebServer, service: PQWatch, length: str, capfd: pytest.CaptureFixture[str]
) -> None:
    request = (
        f"POST /unsubscribe/{_token(service)} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )
    head, _, _ = _raw(served, request.encode()).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert _active(service) == [(1,)]  # nothing was done
    assert httpx.get(served.url + "feeds/all.rss", timeout=DEADLINE).status_code == 200
    _idle(served)
    assert capfd.readouterr().err == ""


def test_a_post_without_content_length_unsubscribes(served: WebServer, service: PQWatch) -> None:
    request = (
        f"POST /unsubscribe/{_token(service)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    reply = _raw(served, request.encode())
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert b"officer@example.org is unsubscribed from all digests." in reply
    assert _active(service) == [(0,)]


def test_a_body_shorter_than_announced_does_not_hang(
    server: WebServer, service: PQWatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # The token in the address is the whole request (RFC 8058's body is a fixed word that
    # is not read): the reply comes at once, and the connection is not kept waiting for the
    # rest of the body.
    server.client_timeout = 0.5
    with server.running():
        request = (
            f"POST /unsubscribe/{_token(service)} HTTP/1.1\r\nHost: x\r\n"
            "Content-Length: 100\r\n\r\nList-Unsubscribe=One-Click"
        )
        started = time.monotonic()
        reply = _raw(server, request.encode())
        assert reply.startswith(b"HTTP/1.1 200 ") and time.monotonic() - started < 10
        assert _active(service) == [(0,)]
        assert httpx.get(server.url + "feeds/", timeout=DEADLINE).status_code == 200
        _idle(server)
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(
    "sent", [b"", b"GET /feeds/all.rss HTTP/1.1\r\nHost:"], ids=["nothing", "half a request"]
)
def test_a_silent_client_is_disconnected_after_the_timeout(
    server: WebServer, sent: bytes, capfd: pytest.CaptureFixture[str]
) -> None:
    server.client_timeout = 0.5
    with server.running():
        started = time.monotonic()
        assert _raw(server, sent) == b""  # closed by the server (else a timeout at DEADLINE)
        assert time.monotonic() - started < 10
        _idle(server)
        assert httpx.get(server.url + "feeds/", timeout=DEADLINE).status_code == 200
    assert capfd.readouterr().err == ""


def test_run_stops_on_sigterm_after_the_request_in_flight() -> None:
    """WebServer.run in this process (the main thread, as in the CLI): SIGTERM stops it once
    the request being answered is answered, and the previous signal handlers come back."""
    site = _Site()
    site.hold = True
    server = WebServer(site, "127.0.0.1", 0)
    url = server.url
    before = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    announced: list[tuple[str, bool]] = []
    serving, stopped = threading.Event(), threading.Event()
    replies: list[httpx.Response] = []
    failures: list[BaseException] = []

    def announce(line: str) -> None:
        announced.append((line, site.returned.is_set()))
        (stopped if line.startswith("Stopped") else serving).set()

    def drive() -> None:
        signalled = False
        try:
            # Announced once listening with the handlers in: a signal now must stop it.
            assert serving.wait(DEADLINE)
            assert signal.getsignal(signal.SIGTERM) is not before[0]
            client = threading.Thread(
                target=lambda: replies.append(httpx.get(url + "feeds/all.rss", timeout=DEADLINE))
            )
            client.start()
            assert site.entered.wait(DEADLINE)
            os.kill(os.getpid(), signal.SIGTERM)
            signalled = True
            # If run() did not wait for the request, it would announce the stop now.
            stopped.wait(1.0)
            site.release.set()
            client.join(DEADLINE)
        except BaseException as exc:
            failures.append(exc)
        finally:
            site.release.set()
            if not signalled:
                server.stop()

    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    try:
        server.run(announce)
    finally:
        server.stop()
        driver.join(DEADLINE)
    assert not failures, failures
    assert [r.status_code for r in replies] == [200]
    assert replies[0].content == site.body
    assert announced == [
        (f"Serving pqwatch on http://127.0.0.1:{server.port}/ (Ctrl-C stops)", False),
        ("Stopped serving (SIGTERM).", True),
    ]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


@pytest.mark.parametrize(
    ("signum", "port_from"),
    [(signal.SIGTERM, "option"), (signal.SIGINT, "config")],
    ids=["SIGTERM", "SIGINT"],
)
def test_serve_command_stops_cleanly_on_a_signal(
    write_config: Callable[..., Path], signum: signal.Signals, port_from: str
) -> None:
    from tests.conftest import MINIMAL_CONFIG

    if port_from == "config":  # [web] port, no option
        config, args = write_config(MINIMAL_CONFIG + "\n[web]\nport = 0\n"), []
    else:
        config, args = write_config(), ["--port", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pqwatch", "--config", str(config), "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        first = readline_within(proc.stdout)
        assert first.startswith("Serving pqwatch on http://127.0.0.1:"), first
        url = first.split()[3]
        assert first == f"Serving pqwatch on {url} (Ctrl-C stops)\n"
        assert httpx.get(url + "feeds/all.rss", timeout=DEADLINE).status_code == 200
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert err == ""
    assert out.splitlines() == [f"Stopped serving ({signum.name})."]


def test_a_taken_port_is_one_line(
    write_config: Callable[..., Path], cli: Callable[..., object]
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = cli("--config", write_config(), "serve", "--port", str(port))
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert result.stderr == (  # type: ignore[attr-defined]
        f"pqwatch: error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )


def test_a_keep_alive_client_is_not_held_up_by_a_delayed_ack(served: WebServer) -> None:
    # Without TCP_NODELAY each response on a reused connection waited ~40 ms (the client's
    # delayed ACK of the headers before the body went out): every browser reuses connections.
    with httpx.Client(base_url=served.url, timeout=DEADLINE) as client:
        times = []
        for _ in range(21):
            started = time.perf_counter()
            assert client.get("/static/pqwatch.css").status_code == 200
            times.append(time.perf_counter() - started)
    assert sorted(times)[10] < 0.025, times
