"""`pqwatch serve`: feeds over HTTP with ETag/Last-Modified, and one-click unsubscribe.

Routes: `/` and `/feeds/` (index), `/feeds/{slug}.rss|.atom` (slug `all` for every watch),
`/unsubscribe/{token}[/{watch-slug}]` (GET shows one button; POST, which is what mail clients
send for List-Unsubscribe-Post, unsubscribes). Feeds are built from the database per request,
so they are never stale; the ETag is a hash of the bytes, and Last-Modified is when this
server first produced those bytes, so both change exactly when the feed does.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from pqwatch.feeds.build import etag

_FEED = re.compile(r"^/feeds/([a-z0-9-]+)\.(rss|atom)$")
_UNSUB = re.compile(r"^/unsubscribe/([A-Za-z0-9_-]{16,})(?:/([a-z0-9-]+))?/?$")
CONTENT_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
}


class FeedSource(Protocol):
    def feed_bytes(self, slug: str, kind: str) -> bytes | None: ...
    def feeds_index_html(self, base: str) -> str: ...
    def unsubscribe(self, token: str, watch_slug: str | None) -> str | None: ...


class FeedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], source: FeedSource) -> None:
        super().__init__(address, _Handler)
        self.source = source
        self._seen: dict[str, tuple[str, datetime]] = {}
        self._lock = threading.Lock()

    def first_seen(self, path: str, tag: str, now: Callable[[], datetime]) -> datetime:
        with self._lock:
            known = self._seen.get(path)
            if known is None or known[0] != tag:
                known = (tag, now().replace(microsecond=0))
                self._seen[path] = known
            return known[1]


class _Handler(BaseHTTPRequestHandler):
    server: FeedServer
    server_version = "pqwatch"

    def log_message(self, format: str, *args: Any) -> None:  # quiet; the CLI logs start/stop
        pass

    def do_HEAD(self) -> None:
        self._get(head=True)

    def do_GET(self) -> None:
        self._get(head=False)

    def do_POST(self) -> None:
        m = _UNSUB.match(self.path.split("?")[0])
        if not m:
            self._send(404, "text/plain; charset=utf-8", b"not found\n")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 65536))
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

    def _get(self, *, head: bool) -> None:
        path = self.path.split("?")[0]
        try:
            if path in {"/", "/feeds", "/feeds/"}:
                base = ""
                body = self.server.source.feeds_index_html(base).encode()
                self._conditional(path, body, "text/html; charset=utf-8", head)
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
        except Exception as exc:  # never a traceback to the client; one line to it
            self._send(500, "text/plain; charset=utf-8", f"error: {exc}\n".encode(), head)

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
