"""`pqwatch serve` under stress: stopped by signals, clients that hang up, stall or send a bad
Content-Length. What is checked is what a user sees: exit codes, stdout/stderr lines, replies."""

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
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from pqwatch.feeds.server import FeedServer
from pqwatch.service import PQWatch
from tests.conftest import open_service, readline_within, rows

DEADLINE = 30.0  # seconds; generous for a loaded 2-core machine, never waited out when it works


class _Source:
    """A FeedSource whose feed is `body`; feed_bytes can fail, or wait to be released."""

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

    def feeds_index_html(self, base: str) -> str:
        return "<p>index</p>"

    def unsubscribe(self, token: str, watch_slug: str | None) -> str | None:
        if self.error:
            raise self.error
        return "someone@example.org"


@contextmanager
def _serving(server: FeedServer) -> Iterator[FeedServer]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(DEADLINE)


@pytest.fixture
def service(write_config: Callable[..., Path]) -> Iterator[PQWatch]:
    svc = open_service(write_config())
    try:
        yield svc
    finally:
        svc.close()


@pytest.fixture
def served(service: PQWatch) -> Iterator[FeedServer]:
    """The real feed server of a fresh database (one watch, one subscriber), via the facade."""
    with _serving(service.serve("127.0.0.1", 0)) as server:
        yield server


def _url(server: FeedServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def _raw(server: FeedServer, request: bytes, *, half_close: bool = False) -> bytes:
    """Send bytes as they are, read the reply until the server closes (or fail at DEADLINE)."""
    with socket.create_connection(("127.0.0.1", server.server_address[1]), DEADLINE) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def _finished_connections(server: FeedServer) -> threading.Semaphore:
    """Released once per connection the server is completely done with (socketserver calls
    shutdown_request after the handler and after handle_error): stderr is final by then."""
    done = threading.Semaphore(0)
    original = server.shutdown_request

    def shutdown_request(request: Any) -> None:
        original(request)
        done.release()

    server.shutdown_request = shutdown_request  # type: ignore[method-assign]
    return done


def test_the_index_is_served_as_index_html_too(served: FeedServer) -> None:
    # `pqwatch feeds` writes feeds/index.html: the same address must work when served.
    with httpx.Client(base_url=_url(served), timeout=DEADLINE) as client:
        listing = client.get("/feeds/")
        assert listing.status_code == 200 and "/feeds/all.rss" in listing.text
        for path in ("/feeds/index.html", "/index.html"):
            page = client.get(path)
            assert page.status_code == 200, path
            assert page.headers["content-type"] == "text/html; charset=utf-8"
            assert page.text == listing.text
            again = client.get(path, headers={"If-None-Match": page.headers["etag"]})
            assert again.status_code == 304
        assert client.head("/feeds/index.html").status_code == 200


def test_a_client_that_drops_a_download_leaves_stderr_clean(
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Big enough that the server is still writing when the client resets the connection.
    source = _Source(body=b"<rss>" + b"x" * (16 << 20) + b"</rss>")
    with _serving(FeedServer(("127.0.0.1", 0), source)) as server:
        finished = _finished_connections(server)
        for _ in range(3):
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.settimeout(DEADLINE)
                sock.connect(("127.0.0.1", server.server_address[1]))
                sock.sendall(b"GET /feeds/all.rss HTTP/1.1\r\nHost: x\r\n\r\n")
                assert sock.recv(4096).startswith(b"HTTP/1.0 200")
                # Close with unread data and no lingering: the kernel sends a reset.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            assert finished.acquire(timeout=DEADLINE)
        resp = httpx.get(_url(server) + "/feeds/", timeout=DEADLINE)
        assert resp.status_code == 200
    assert capfd.readouterr().err == ""


def test_a_failure_is_one_line_on_stderr_and_a_500(capfd: pytest.CaptureFixture[str]) -> None:
    source = _Source(error=RuntimeError("database is locked\nsecond line"))
    with _serving(FeedServer(("127.0.0.1", 0), source)) as server:
        with httpx.Client(base_url=_url(server), timeout=DEADLINE) as client:
            feed = client.get("/feeds/all.rss")
            unsub = client.post("/unsubscribe/abcdefghijklmnop0123", content=b"x")
            assert client.get("/feeds/").status_code == 200  # still serving
    assert feed.status_code == 500 and unsub.status_code == 500
    assert "database is locked" not in feed.text + unsub.text  # details are for the operator
    err = capfd.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("pqwatch serve: error: GET /feeds/all.rss from 127.0.0.1")
    assert lines[1].startswith("pqwatch serve: error: POST /unsubscribe/")
    assert all(line.endswith("RuntimeError: database is locked second line") for line in lines)


@pytest.mark.parametrize("length", ["abc", "-1", "+5", "1_0", "5, 6"])
def test_a_bad_content_length_is_a_400(
    served: FeedServer, service: PQWatch, length: str, capfd: pytest.CaptureFixture[str]
) -> None:
    db = Path(service.db.describe())
    [(token,)] = rows(db, "SELECT token FROM subscriber")
    request = f"POST /unsubscribe/{token} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n"
    reply = _raw(served, request.encode())
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 400 ")
    assert b"text/plain" in head and body == b"bad Content-Length\n"
    assert rows(db, "SELECT active FROM subscriber") == [(1,)]  # nothing was done
    assert httpx.get(_url(served) + "/feeds/all.rss", timeout=DEADLINE).status_code == 200
    assert capfd.readouterr().err == ""


def test_a_post_without_content_length_unsubscribes(served: FeedServer, service: PQWatch) -> None:
    db = Path(service.db.describe())
    [(token,)] = rows(db, "SELECT token FROM subscriber")
    reply = _raw(served, f"POST /unsubscribe/{token} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.0 200 ")
    assert b"officer@example.org is unsubscribed from all digests." in reply
    assert rows(db, "SELECT active FROM subscriber") == [(0,)]


def test_a_body_shorter_than_announced_does_not_hang(
    served: FeedServer, service: PQWatch, capfd: pytest.CaptureFixture[str]
) -> None:
    served.client_timeout = 0.5
    db = Path(service.db.describe())
    [(token,)] = rows(db, "SELECT token FROM subscriber")
    request = f"POST /unsubscribe/{token} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    short = (request + "List-Unsubscribe=One-Click").encode()
    # The client waits for the reply: the server gives up after its timeout.
    assert _raw(served, short).startswith(b"HTTP/1.0 408 ")
    # The client closed its side: no more bytes will come.
    assert _raw(served, short, half_close=True).startswith(b"HTTP/1.0 400 ")
    assert rows(db, "SELECT active FROM subscriber") == [(1,)]
    assert httpx.get(_url(served) + "/feeds/", timeout=DEADLINE).status_code == 200
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(
    "sent", [b"", b"GET /feeds/all.rss HTTP/1.1\r\nHost:"], ids=["nothing", "half a request"]
)
def test_a_silent_client_is_disconnected_after_the_timeout(
    served: FeedServer, sent: bytes, capfd: pytest.CaptureFixture[str]
) -> None:
    served.client_timeout = 0.5
    finished = _finished_connections(served)
    assert _raw(served, sent) == b""  # closed by the server (else a timeout at DEADLINE)
    assert finished.acquire(timeout=DEADLINE)
    assert httpx.get(_url(served) + "/feeds/", timeout=DEADLINE).status_code == 200
    assert capfd.readouterr().err == ""


def test_run_stops_on_sigterm_after_the_request_in_flight() -> None:
    """FeedServer.run in this process (the main thread, as in the CLI): SIGTERM stops it once
    the request being answered is answered, and the previous signal handlers come back."""
    source = _Source()
    source.hold = True
    server = FeedServer(("127.0.0.1", 0), source)
    url = _url(server)
    before = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    announced: list[tuple[str, bool]] = []
    stopped = threading.Event()
    replies: list[httpx.Response] = []
    failures: list[BaseException] = []

    def announce(line: str) -> None:
        announced.append((line, source.returned.is_set()))
        if line.startswith("Stopped"):
            stopped.set()

    def drive() -> None:
        signalled = False
        try:
            deadline = time.monotonic() + DEADLINE
            while True:  # answering means serve_forever runs, so the handlers are in place
                try:
                    assert httpx.get(url + "/feeds/", timeout=DEADLINE).status_code == 200
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline and not over.is_set()
                    time.sleep(0.05)
            assert signal.getsignal(signal.SIGTERM) is not before[0]
            client = threading.Thread(
                target=lambda: replies.append(httpx.get(url + "/feeds/all.rss", timeout=DEADLINE))
            )
            client.start()
            assert source.entered.wait(DEADLINE)
            os.kill(os.getpid(), signal.SIGTERM)
            signalled = True
            # If run() did not wait for the request, it would announce the stop now.
            stopped.wait(1.0)
            source.release.set()
            client.join(DEADLINE)
        except BaseException as exc:
            failures.append(exc)
        finally:
            source.release.set()
            if not signalled:
                threading.Thread(target=server.shutdown, daemon=True).start()

    over = threading.Event()
    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    try:
        server.run(announce)
    finally:
        over.set()
        server.server_close()  # again if run() did, harmless; else the driver gives up at once
        driver.join(DEADLINE)
    assert not failures, failures
    assert [r.status_code for r in replies] == [200]
    assert replies[0].content == source.body
    port = server.server_address[1]
    assert announced == [
        (f"Serving feeds on http://127.0.0.1:{port}/feeds/ (Ctrl-C stops)", False),
        ("Stopped serving feeds (SIGTERM).", True),
    ]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_command_stops_cleanly_on_a_signal(
    write_config: Callable[..., Path], signum: signal.Signals
) -> None:
    config = write_config()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pqwatch", "--config", str(config), "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        first = readline_within(proc.stdout)
        assert first.startswith("Serving feeds on http://127.0.0.1:"), first
        url = first.split()[3]
        # A reply means serve_forever runs: a signal now must stop it cleanly.
        assert httpx.get(url + "all.rss", timeout=DEADLINE).status_code == 200
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert err == ""
    assert out.splitlines() == [f"Stopped serving feeds ({signum.name})."]
