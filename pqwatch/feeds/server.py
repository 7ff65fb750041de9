"""`pqwatch serve`: feeds over HTTP with ETag/Last-Modified, and one-click unsubscribe.

Routes: `/`, `/index.html`, `/feeds/` and `/feeds/index.html` (index), `/feeds/{slug}.rss|.atom`
(slug `all` for every watch), `/unsubscribe/{token}[/{watch-slug}]` (GET shows one button; POST,
which is what mail clients send for List-Unsubscribe-Post, unsubscribes). Feeds are built from
the database per request, so they are never stale; the ETag is a hash of the bytes, and
Last-Modified is when this server first produced those bytes, so both change exactly when the
feed does.

`FeedServer.run()` serves until SIGTERM or SIGINT, lets the requests in flight finish and says
it stopped. Every connection has a timeout, a client that hangs up is not an error, and any
other failure is one line on stderr (never a traceback) and a 500 if the client can still get it.
"""

from __future__ import annotations

import contextlib
import html
import re
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Protocol

from pqwatch.feeds.build import etag
from pqwatch.text import strip_controls

_FEED = re.compile(r"^/feeds/([a-z0-9-]+)\.(rss|atom)$")
_UNSUB = re.compile(r"^/unsubscribe/([A-Za-z0-9_-]{16,})(?:/([a-z0-9-]+))?/?$")
_INDEX = {"/", "/index.html", "/feeds", "/feeds/", "/feeds/index.html"}
_DIGITS = re.compile(r"[0-9]+")  # int() would also take "-1", " +1_0" and non-ASCII digits
MAX_BODY = 65536  # the POST body is not used (RFC 8058 sends "List-Unsubscribe=One-Click")
CONTENT_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
}
# The client hung up (BrokenPipe, ConnectionReset...) or stalled past the timeout: nobody is
# left to answer and nothing is wrong with the server, so nothing is reported.
_GONE = (ConnectionError, TimeoutError)

_SignalHandler = Callable[[int, FrameType | None], Any] | int | None


class FeedSource(Protocol):
    def feed_bytes(self, slug: str, kind: str) -> bytes | None: ...
    def feeds_index_html(self, base: str) -> str: ...
    def unsubscribe(self, token: str, watch_slug: str | None) -> str | None: ...


class FeedServer(ThreadingHTTPServer):
    # Daemon threads: a stalled client never keeps the process alive; run() waits for the
    # requests in flight itself, and only for them (not for idle connections).
    daemon_threads = True
    client_timeout: float = 30.0  # seconds a connection may stay silent (slowloris)
    shutdown_grace: float = 5.0  # seconds run() waits for requests in flight when stopping

    def __init__(self, address: tuple[str, int], source: FeedSource) -> None:
        super().__init__(address, _Handler)
        self.source = source
        self._seen: dict[str, tuple[str, datetime]] = {}
        self._lock = threading.Lock()
        self._in_flight = 0
        self._idle = threading.Condition()

    def first_seen(self, path: str, tag: str, now: Callable[[], datetime]) -> datetime:
        with self._lock:
            known = self._seen.get(path)
            if known is None or known[0] != tag:
                known = (tag, now().replace(microsecond=0))
                self._seen[path] = known
            return known[1]

    def run(self, announce: Callable[[str], None]) -> None:
        """Serve until SIGTERM or SIGINT (Ctrl-C), let the requests in flight finish (for at
        most `shutdown_grace` seconds), close, and announce the start and the stop in one line
        each. Call it from the main thread: only that one may install signal handlers."""
        stopped_by: list[str] = []

        def stop(signum: int, frame: FrameType | None) -> None:
            if stopped_by:
                return
            stopped_by.append(signal.Signals(signum).name)
            # The handler runs on this very thread, inside serve_forever(); shutdown() waits
            # for serve_forever() to return, so it must be called from another thread.
            threading.Thread(target=self.shutdown, daemon=True).start()

        previous: dict[signal.Signals, _SignalHandler] = {}
        try:
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, stop)
            # Announced once the handlers are in: whoever waits for this line may signal at once.
            host, port = self.server_address[:2]
            announce(f"Serving feeds on http://{host!s}:{port}/feeds/ (Ctrl-C stops)")
            self.serve_forever()
        finally:
            # Restored first, so a second Ctrl-C while waiting below stops at once.
            for sig, handler in previous.items():
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)
            try:
                finished = self.wait_idle(self.shutdown_grace)
            finally:
                self.server_close()
        cut = "" if finished else f"; {self._in_flight} request(s) still running were cut off"
        announce(f"Stopped serving feeds ({stopped_by[0] if stopped_by else 'shut down'}){cut}.")

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is being answered; False if some still are after timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def track(self, delta: int) -> None:
        with self._idle:
            self._in_flight += delta
            if not self._in_flight:
                self._idle.notify_all()

    def report(self, what: str, exc: BaseException) -> None:
        """One line on stderr for an unexpected failure: the terminal is the server's log, and
        a client can provoke failures at will, so never a traceback (and no control chars)."""
        line = " ".join(strip_controls(f"{what}: {type(exc).__name__}: {exc}").split())
        sys.stderr.write(f"pqwatch serve: error: {line[:500]}\n")
        sys.stderr.flush()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # What the handler did not catch (a hang-up while reading the request line, say).
        # socketserver's default prints a traceback for each.
        exc = sys.exc_info()[1]
        if exc is None or isinstance(exc, _GONE):
            return
        self.report(f"connection from {client_address[0]}", exc)


class _Handler(BaseHTTPRequestHandler):
    server: FeedServer
    server_version = "pqwatch"
    _started = False  # a status line was sent: too late for a 500

    def log_message(self, format: str, *args: Any) -> None:  # quiet; run() says start/stop
        pass

    def setup(self) -> None:
        super().setup()
        # Every read and write on the connection: a silent or stalled client is dropped
        # instead of holding a thread for ever (the stdlib's handle_one_request then closes).
        self.connection.settimeout(self.server.client_timeout)

    def do_HEAD(self) -> None:
        self._guard(lambda: self._get(head=True), head=True)

    def do_GET(self) -> None:
        self._guard(lambda: self._get(head=False), head=False)

    def do_POST(self) -> None:
        self._guard(self._post, head=False)

    def _guard(self, respond: Callable[[], None], *, head: bool) -> None:
        self.server.track(+1)
        try:
            respond()
        except _GONE:
            self.close_connection = True
        except Exception as exc:
            self.close_connection = True
            path = self.path.split("?")[0][:200]
            self.server.report(f"{self.command} {path} from {self.client_address[0]}", exc)
            if not self._started:  # the details are for the operator, not the client
                with contextlib.suppress(OSError):
                    self._send(500, "text/plain; charset=utf-8", b"internal error\n", head)
        finally:
            self.server.track(-1)

    def _post(self) -> None:
        m = _UNSUB.match(self.path.split("?")[0])
        if not m:
            self._send(404, "text/plain; charset=utf-8", b"not found\n")
            return
        if not self._read_body():
            return
        email = self.server.source.unsubscribe(m.group(1), m.group(2))
        if email is None:
            self._send(404, "text/html; charset=utf-8", _page("Link not recognised", ""))
            return
        what = f"from the watch {m.group(2)}" if m.group(2) else "from all digests"
        self._send(
            200,
            "text/html; charset=utf-8",
            _page("Unsubscribed", html.escape(f"{email} is unsubscribed {what}.")),
        )

    def _read_body(self) -> bool:
        """Read the body announced by Content-Length (at most MAX_BODY bytes: closing on
        unread bytes resets the connection, which can lose the reply). False when an error
        was sent instead; then nothing is done."""
        values = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        if not values:  # `curl -X POST` sends none: no body
            return True
        value = values.pop()
        if values or not _DIGITS.fullmatch(value):
            self._send(400, "text/plain; charset=utf-8", b"bad Content-Length\n")
            return False
        wanted = min(int(value), MAX_BODY)
        try:
            body = self.rfile.read(wanted)
        except TimeoutError:
            self._send(408, "text/plain; charset=utf-8", b"request body timed out\n")
            return False
        if len(body) < wanted:  # the client closed its side early
            self._send(
                400, "text/plain; charset=utf-8", b"request body shorter than Content-Length\n"
            )
            return False
        return True

    def _get(self, *, head: bool) -> None:
        path = self.path.split("?")[0]
        if path in _INDEX:
            body = self.server.source.feeds_index_html("").encode()
            # One key for every spelling of the index, so they share one Last-Modified.
            self._conditional("/feeds/", body, "text/html; charset=utf-8", head)
            return
        m = _FEED.match(path)
        if m:
            data = self.server.source.feed_bytes(m.group(1), m.group(2))
            if data is None:
                self._send(404, "text/plain; charset=utf-8", b"no such feed\n", head)
                return
            self._conditional(path, data, CONTENT_TYPES[m.group(2)], head)
            return
        m = _UNSUB.match(path)
        if m:
            action = html.escape(path)
            form = (
                f'<form method="post" action="{action}">'
                '<button type="submit" style="font-size:18px;padding:8px 16px;">'
                "Unsubscribe</button></form>"
            )
            self._send(200, "text/html; charset=utf-8", _page("Unsubscribe", form), head)
            return
        self._send(404, "text/plain; charset=utf-8", b"not found\n", head)

    def _conditional(self, path: str, body: bytes, ctype: str, head: bool) -> None:
        tag = etag(body)
        modified = self.server.first_seen(path, tag, lambda: datetime.now(UTC))
        headers = {"ETag": tag, "Last-Modified": format_datetime(modified, usegmt=True)}
        inm = self.headers.get("If-None-Match")
        ims = self.headers.get("If-Modified-Since")
        not_modified = False
        if inm is not None:  # RFC 9110: If-None-Match wins over If-Modified-Since
            # Weak comparison (RFC 9110 13.1.2): W/"x" matches "x"; proxies weaken ETags.
            offered = [t.strip().removeprefix("W/") for t in inm.split(",")]
            not_modified = tag in offered or inm.strip() == "*"
        elif ims:
            try:
                since = parsedate_to_datetime(ims)
                not_modified = since.tzinfo is not None and modified <= since
            except (TypeError, ValueError):
                not_modified = False
        if not_modified:
            self._send(304, None, b"", True, headers)
            return
        self._send(200, ctype, body, head, {**headers, "Cache-Control": "max-age=300"})

    def _send(
        self,
        status: int,
        ctype: str | None,
        body: bytes,
        head: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._started = True
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and status != 304:
            self.wfile.write(body)


def _page(title: str, body: str) -> bytes:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title></head>"
        "<body style='font-family:Arial,sans-serif;max-width:640px;margin:2em auto;padding:0 1em'>"
        f"<h1>{html.escape(title)}</h1><p>{body}</p></body></html>"
    ).encode()
