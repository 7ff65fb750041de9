"""The web app's routes and pages, over a `Site` (the facade, or a fake in tests).

Routes:
  /                          a search box (also /index.html)
  /search?q=&sort=&page=     results with highlighted snippets, paging, and counts to narrow
                             by (each a link to the query with one filter more); a malformed
                             query is the CLI's one-line message beside the box (same page,
                             HTTP 200)
  /search.csv, /search.json  the same results as data (up to EXPORT_LIMIT rows)
  /q/<id or reference>       an item's whole story (references may hold spaces and slashes)
  /watches, /watches/<slug>  the watches, and one at a glance: recent matches and charts
                             (server-drawn SVG, each with its figures as a table)
  /feeds/, /feeds/<slug>.rss|.atom   feeds with ETag/Last-Modified and 304s
  /unsubscribe/<token>[/<watch>]     GET: a confirm button; POST (RFC 8058 one-click too):
                             unsubscribes
  /subscribe[?q=]            subscribe without the operator (and "alert me for this search"):
                             one confirmation mail; nothing is sent before it is confirmed
  /confirm/<token>           GET: a Confirm button (link scanners open links); POST confirms
  /manage/<token>            change watches and frequency, pause, unsubscribe from everything
                             (forms carry a CSRF token matched against a SameSite cookie)
  /static/...                the stylesheet and icon

Endpoints are sync functions: Starlette runs them in its thread pool, and the facade opens a
connection per call (a plain sqlite3 one for search, the engine's pool for the rest), so one
shared facade serves every thread. Pages use no script at all: the Content-Security-Policy
allows none, and archived HTML is cleaned again (nh3) right before it is marked safe.
"""

from __future__ import annotations

import io
import json
import math
import re
import secrets
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from email.utils import format_datetime, parsedate_to_datetime
from functools import lru_cache
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import anyio.to_thread
import jinja2
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pqwatch.errors import TooManyRequests, UsageError
from pqwatch.feeds.build import etag
from pqwatch.query import narrow
from pqwatch.resources import templates_dir
from pqwatch.search.overview import WatchOverview
from pqwatch.search.results import (
    MARK_END,
    MARK_START,
    QuestionStory,
    SearchFacets,
    SearchHit,
    SearchResult,
    WatchStats,
    write_hits_csv,
)
from pqwatch.search.subscriptions import SubscriptionView, WatchChoice
from pqwatch.text import sanitize_html, strip_controls
from pqwatch.types import foi_state_label, item_label

PER_PAGE = 20
# The store's search has a limit but no offset, so page N asks for N * PER_PAGE hits: pages
# stop here (1,000 results), past which a narrower query is the better answer anyway.
MAX_PAGES = 50
EXPORT_LIMIT = 1000
MAX_QUERY = 500  # characters; longer is no search a person types
CSRF_COOKIE = "pqwatch_csrf"
WORKER_THREADS = 4

# No script anywhere, styles only from our own stylesheet, forms only to us, never framed.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    # Unsubscribe links carry a token in the path: never tell another site where we were.
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
FEED_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
}
_FEED = re.compile(r"([a-z0-9-]+)\.(rss|atom)")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,}")
_SLUG = re.compile(r"[a-z0-9-]+")
_PAGE = re.compile(r"[0-9]{1,4}")


class Site(Protocol):
    """What the web app needs of the facade (pqwatch.service.PQWatch has all of it)."""

    def search(self, query: str, *, limit: int = 20, sort: str = "relevance") -> SearchResult: ...
    def search_facets(self, query: str, *, matches: int | None = None) -> SearchFacets: ...
    def show(self, ref: str) -> QuestionStory: ...
    def today(self) -> date: ...
    def feed_list(self) -> list[tuple[str, str, str | None]]: ...
    def feed_bytes(self, slug: str, kind: str) -> bytes | None: ...
    def unsubscribe(self, token: str, watch_slug: str | None = None) -> str | None: ...
    def watches(self, *, public: bool = False) -> list[WatchStats]: ...
    def subscribable_watches(self) -> list[WatchChoice]: ...
    def subscribe(
        self,
        email: str,
        watch_slugs: Sequence[str] = (),
        frequency: str = "weekly",
        *,
        query: str | None = None,
        client: str | None = None,
        base_url: str | None = None,
    ) -> None: ...
    def confirm(self, token: str, *, client: str | None = None) -> SubscriptionView: ...
    def manage(self, token: str) -> SubscriptionView: ...
    def update_subscription(
        self, token: str, watch_slugs: Sequence[str], frequency: str, paused: bool
    ) -> SubscriptionView: ...
    def unsubscribe_all(self, token: str) -> SubscriptionView: ...
    def watch_overview(self, slug: str, *, today: date | None = None) -> WatchOverview: ...


def report(what: str, exc: BaseException) -> None:
    """One line on stderr for an unexpected failure: the terminal is the server's log, and a
    client can provoke failures at will, so never a traceback (and no control characters)."""
    line = " ".join(strip_controls(f"{what}: {type(exc).__name__}: {exc}").split())
    sys.stderr.write(f"pqwatch serve: error: {line[:500]}\n")
    sys.stderr.flush()


class _Guard:
    """Around every route: the security headers on every response, and an unexpected failure
    becomes one line on stderr and a bare 500 (Starlette would re-raise it for uvicorn to log
    with a traceback). The details are for the operator, not the client."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.limited = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.limited:
            # Pages run in anyio's thread pool (40 by default). Forty threads convoy on the
            # one GIL, each SQLite row fetched a hand-off: measured under 50 clients, 4
            # threads served the same pages at half the CPU and a third of the p95
            # (docs/PERFORMANCE.md, "Why (c) is missed"). Set here: the pool is the loop's.
            anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
            self.limited = True
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_secured(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", ()), *_SECURITY_HEADERS]}
            await send(message)

        try:
            await self.app(scope, receive, send_secured)
        except Exception as exc:
            client = (scope.get("client") or ("?",))[0]
            report(f"{scope['method']} {scope['path'][:200]} from {client}", exc)
            if not started:
                await PlainTextResponse("internal error\n", 500)(scope, receive, send_secured)


# -- rendering helpers (Jinja filters) ------------------------------------------------------


def _day(value: date | None) -> str:
    return f"{value.day} {value:%B %Y}" if value else ""


def marked(snippet: str | None) -> Markup:
    """A search snippet with FTS's highlight markers as <mark>: the text is escaped and only
    our own tags are added; an unclosed mark is closed."""
    out: list[str] = []
    inside = False
    for part in re.split(f"({MARK_START}|{MARK_END})", snippet or ""):
        if part == MARK_START or part == MARK_END:
            if (part == MARK_START) != inside:
                out.append("<mark>" if part == MARK_START else "</mark>")
                inside = not inside
        else:
            out.append(str(escape(strip_controls(part))))
    return Markup("".join(out) + ("</mark>" if inside else ""))  # noqa: S704 - escaped above


@lru_cache(maxsize=1024)
def answer_html(html: str | None) -> Markup:
    """Archived answer HTML, cleaned again by nh3 before it is marked safe: it was cleaned on
    the way into the archive, and this keeps an older or altered archive from reaching a
    browser as anything but paragraphs, lists, tables and links."""
    return Markup(sanitize_html(strip_controls(html or "")))  # noqa: S704 - nh3 just cleaned it


def paragraphs(text: str | None) -> Markup:
    """Plain text as paragraphs (blank lines) and line breaks, escaped."""
    paras = [p.strip() for p in re.split(r"\n\s*\n", strip_controls(text or "")) if p.strip()]
    return Markup(  # noqa: S704 - every piece escaped
        "".join("<p>" + "<br>".join(str(escape(x)) for x in p.splitlines()) + "</p>" for p in paras)
    )


def item_path(uin: str | None, tabled: date, source_id: str | None) -> str:
    """The address of an item's page, one that `show` resolves to this very item: DATE/UIN
    (a Westminster UIN is reused every session), or a reference with spaces as written
    (AQW 49327/22-27 names its session itself), or the source's id when there is no UIN."""
    if uin and not any(ch.isspace() for ch in uin):
        return f"/q/{tabled.isoformat()}/{quote(uin, safe='/')}"
    if uin:
        return "/q/" + quote(uin, safe="/")
    return "/q/" + quote(source_id or "", safe="")


def _hit_path(hit: SearchHit) -> str:
    return item_path(hit.uin, hit.date_tabled, hit.source_id)


def _finalize(value: object) -> object:
    """Every value a page prints, without control characters (as in digests). Markup is ours
    (escaped or cleaned from text already stripped): re.sub would turn it back into text to
    escape a second time."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return strip_controls(value)
    return value


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir() / "web"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
    )
    env.filters.update(
        day=_day, marked=marked, answer_html=answer_html, paragraphs=paragraphs, hit_path=_hit_path
    )
    env.globals.update(item_path=item_path, item_label=item_label)
    return env


def _page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _environment().get_template(template).render(**context)
    return HTMLResponse(html, status)


def _message(title: str, text: str, status: int, **extra: Any) -> HTMLResponse:
    return _page("message.html", status, title=title, text=text, **extra)


# -- the item page ---------------------------------------------------------------------------

_EVENT_LABELS = {
    "tabled": "Tabled",
    "answered": "Answered",
    "holding": "Holding answer",
    "corrected": "Answer corrected",
    "transferred": "Transferred",
    "withdrawn": "Withdrawn",
}
_FOI_LABELS = {"tabled": "Request sent", "answered": "Response", "state": "State changed"}
_LAWS = {"foi": "Freedom of Information Act", "eir": "Environmental Information Regulations"}


def timeline(story: QuestionStory, today: date) -> list[tuple[date, str]]:
    """The dated steps of an item's life, oldest first: pqwatch's events, plus the day an
    answer is due and a holding answer the archive saw only as a date."""
    kind = story.hit.kind
    steps: list[tuple[date, int, str]] = []  # on one day: tabled, then due, then the rest
    for e in story.events:
        if kind == "foi":
            label = _FOI_LABELS.get(e.kind, e.kind.capitalize())
            if e.kind == "state" and e.detail:
                label += f": {e.detail.get('from')} to {e.detail.get('to')}"
        elif kind == "statement" and e.kind == "tabled":
            label = "Made"
        else:
            label = _EVENT_LABELS.get(e.kind, e.kind.capitalize())
            if e.kind == "transferred" and e.detail:
                label += f" from {e.detail.get('from')} to {e.detail.get('to')}"
        steps.append((e.date, 0 if e.kind == "tabled" else 2, label))
    if story.date_for_answer and kind != "statement":
        named = " (named day)" if story.is_named_day else ""
        due = "Response due" if kind == "foi" else "Answer due"
        steps.append((story.date_for_answer, 1, due + named))
    if story.holding_not_archived and story.date_holding_answer:
        steps.append((story.date_holding_answer, 2, "Holding answer (its text was not archived)"))
    # Otherwise in the order they happened (the sort is stable).
    return [(day, label) for day, _, label in sorted(steps, key=lambda s: s[:2])]


def _answer_heading(kind: str, version: int, when: date | None, by: str | None) -> str:
    labels = {"holding": "Holding answer", "answer": "Answer", "correction": "Corrected answer"}
    head = f"{labels.get(kind, kind.capitalize())} (version {version})"
    return head + (f", {_day(when)}" if when else "") + (f", by {by}" if by else "")


def _item_context(story: QuestionStory, today: date) -> dict[str, Any]:
    h = story.hit
    answers = story.answers
    if h.kind == "foi" and answers:
        answers = answers[-1:]  # every response is kept in the newest version's text
    d = story.details
    history = [e for e in d.get("events", []) if isinstance(e, dict)] if h.kind == "foi" else []
    return {
        "story": story,
        "hit": h,
        "foi": h.kind == "foi",
        "statement": h.kind == "statement",
        "title": h.heading or "(no heading yet)",
        "label": item_label(h.parliament, h.kind, h.house),
        "steps": timeline(story, today),
        "answers": [
            {
                "heading": _answer_heading(
                    a.kind,
                    a.version,
                    a.date_corrected
                    if a.kind == "correction" and a.date_corrected
                    else a.date_answered,
                    a.correcting_member if a.kind == "correction" else a.answering_member,
                ),
                "html": a.html,
                "text": a.text,
                "partial": not a.is_full_text,
            }
            for a in answers
        ],
        "state": (
            foi_state_label(h.status, story.date_for_answer, today) if h.kind == "foi" else None
        ),
        "law": _LAWS.get(d.get("law_used", ""), d.get("law_used")) if h.kind == "foi" else None,
        "history": history,
    }


# -- conditional responses (feeds) -----------------------------------------------------------


class _FirstSeen:
    """When this server first produced each path's current bytes: its Last-Modified, so it
    changes exactly when the ETag does."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._seen: dict[str, tuple[str, datetime]] = {}
        self._lock = threading.Lock()

    def __call__(self, path: str, tag: str) -> datetime:
        with self._lock:
            known = self._seen.get(path)
            if known is None or known[0] != tag:
                known = (tag, self._now().replace(microsecond=0))
                self._seen[path] = known
            return known[1]


def _conditional(request: Request, key: str, body: bytes, ctype: str, seen: _FirstSeen) -> Response:
    tag = etag(body)
    modified = seen(key, tag)
    headers = {"ETag": tag, "Last-Modified": format_datetime(modified, usegmt=True)}
    inm = request.headers.get("if-none-match")
    ims = request.headers.get("if-modified-since")
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
        return Response(status_code=304, headers=headers)
    return Response(body, 200, {**headers, "Cache-Control": "max-age=300"}, media_type=ctype)


# -- the app ---------------------------------------------------------------------------------


def _query_args(request: Request) -> tuple[str, str]:
    q = request.query_params.get("q", "")
    sort = request.query_params.get("sort", "relevance")
    return q, sort if sort in ("relevance", "newest") else "relevance"


def _run_search(site: Site, q: str, sort: str, limit: int) -> tuple[SearchResult | None, str]:
    """The result, or None and the one-line message the CLI would print."""
    if len(q) > MAX_QUERY:
        return None, f"the query is too long (at most {MAX_QUERY} characters)"
    try:
        return site.search(q, limit=limit, sort=sort), ""
    except UsageError as exc:
        return None, str(exc)


def _about(n: int) -> str:
    """An estimated count as a person would say it: two significant figures (8,100)."""
    if n < 100:
        return f"{n:,}"
    step = 10 ** (len(str(n)) - 2)
    return f"{round(n / step) * step:,}"


def facet_links(q: str, sort: str, facets: SearchFacets) -> list[dict[str, Any]]:
    """Each facet's values as links to the search narrowed by them: the same query with the
    value's filter added (`q house:lords`), so a link is just a search. A value whose filter
    the query has already is marked chosen; one that would make a query too long to take
    (or too deep) is not a link."""
    out = []
    for facet in facets.facets:
        values = []
        for v in facet.values:
            narrowed = narrow(q, v.filter)
            href = None
            if narrowed is not None and narrowed != q and len(narrowed) <= MAX_QUERY:
                href = "/search?" + urlencode({"q": narrowed, "sort": sort})
            count = f"{v.count:,}" if facets.exact else f"about {_about(v.count)}"
            values.append({"label": v.label, "count": count, "href": href,
                           "chosen": narrowed == q})  # fmt: skip
        out.append({"name": facet.name, "label": facet.label, "choices": values,
                    "more": facet.more})  # fmt: skip
    return out


def create_app(
    site: Site,
    *,
    site_url: str | None = None,
    own_url: str | None = None,
    self_service: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Starlette:
    """The web app over `site`. `site_url` (the public address) makes feed addresses shown
    to people absolute; pages link relatively, so the app works under any host name."""
    seen = _FirstSeen(now)
    base = (site_url or "").rstrip("/")

    def render_page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
        # Every page offers "Subscribe" only where subscribing is on.
        return _page(template, status, self_service=self_service, **context)

    def render_message(title: str, text: str, status: int, **extra: Any) -> HTMLResponse:
        return render_page("message.html", status, title=title, text=text, **extra)

    def home(request: Request) -> Response:
        return render_page("search.html", q="", sort="relevance", error="", result=None)

    def search(request: Request) -> Response:
        q, sort = _query_args(request)
        raw_page = request.query_params.get("page", "1")
        page = min(max(int(raw_page), 1), MAX_PAGES) if _PAGE.fullmatch(raw_page) else 1
        if not q.strip():
            return render_page("search.html", q=q, sort=sort, error="", result=None)
        result, error = _run_search(site, q, sort, page * PER_PAGE)
        if result is None:
            # The page as it was, with the message by the box. A 200: a browser logs a 4xx
            # page as a failed load (a console error), and nothing failed here.
            return render_page("search.html", q=q, sort=sort, error=error, result=None)
        pages = min(max(math.ceil((result.total - (not result.total_is_exact)) / PER_PAGE), 1),
                    MAX_PAGES)  # fmt: skip
        args = {"q": q, "sort": sort}
        facets = None
        if result.total:
            try:
                # The search's exact total spares counting the matches a second time.
                facets = site.search_facets(
                    q, matches=result.total if result.total_is_exact else None
                )
            except UsageError:  # refused as the search would be: the results stand alone
                facets = None
        return render_page(
            "search.html",
            q=q,
            sort=sort,
            error="",
            result=result,
            facets=facets,
            facet_lists=facet_links(q, sort, facets) if facets else [],
            hits=result.hits[(page - 1) * PER_PAGE : page * PER_PAGE],
            first=(page - 1) * PER_PAGE + 1,
            page=page,
            pages=pages,
            capped=result.total > MAX_PAGES * PER_PAGE,
            page_url=lambda n: "/search?" + urlencode({**args, "page": n}),
            other_sort="/search?"
            + urlencode({"q": q, "sort": "newest" if sort == "relevance" else "relevance"}),
            csv_url="/search.csv?" + urlencode(args),
            json_url="/search.json?" + urlencode(args),
        )

    def export(request: Request) -> Response:
        fmt = request.path_params["fmt"]
        if fmt not in ("csv", "json"):
            return render_message("Not found", "There is no page at this address.", 404)
        q, sort = _query_args(request)
        result, error = _run_search(site, q, sort, EXPORT_LIMIT)
        if result is None:
            if fmt == "json":
                return Response(json.dumps({"error": error}), 400, media_type="application/json")
            return PlainTextResponse(error + "\n", 400)
        if fmt == "json":
            data = json.dumps(result.as_dict(), indent=2, ensure_ascii=False, default=str)
            return Response(strip_controls(data), media_type="application/json")
        out = io.StringIO()
        write_hits_csv(result.hits, out)  # the CSV of `pqwatch search --format csv`
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="pqwatch-search.csv"'},
        )

    def item(request: Request) -> Response:
        ref = request.path_params["ref"]
        try:
            story = site.show(ref)
        except UsageError as exc:
            return render_message("Not found", str(exc), 404)
        return render_page("item.html", **_item_context(story, site.today()))

    def feeds_index(request: Request) -> Response:
        listing = [{"slug": s, "title": t, "query": q} for s, t, q in site.feed_list()]
        html = _environment().get_template("feeds.html").render(feeds=listing, base=base)
        # One key for every spelling of the index, so they share one Last-Modified.
        return _conditional(request, "/feeds/", html.encode(), "text/html; charset=utf-8", seen)

    def feed(request: Request) -> Response:
        m = _FEED.fullmatch(request.path_params["name"])
        data = site.feed_bytes(m.group(1), m.group(2)) if m else None
        if m is None or data is None:
            return PlainTextResponse("no such feed\n", 404)
        return _conditional(request, request.url.path, data, FEED_TYPES[m.group(2)], seen)

    def watches(request: Request) -> Response:
        return render_page("watches.html", watches=site.watches(public=True), base=base)

    def watch(request: Request) -> Response:
        from pqwatch.web.charts import watch_figures

        slug = request.path_params["slug"]
        try:
            overview = site.watch_overview(slug) if _SLUG.fullmatch(slug) else None
        except UsageError as exc:
            return render_message("No such watch", str(exc), 404)
        if overview is None:
            return render_message("No such watch", f"no watch {slug!r}", 404)
        recent = [(r, item_path(r.uin, r.date_tabled, r.source_id)) for r in overview.recent]
        return render_page(
            "watch.html", ov=overview, figures=watch_figures(overview), base=base, recent=recent
        )

    def unsubscribe(request: Request) -> Response:
        token, slug = request.path_params["token"], request.path_params.get("slug")
        if not _TOKEN.fullmatch(token) or (slug is not None and not _SLUG.fullmatch(slug)):
            return render_message(
                "Link not recognised", "This unsubscribe link is not complete.", 404
            )
        no_store = {"Cache-Control": "no-store"}
        if request.method == "GET":  # a link scanner must not unsubscribe anyone: a button
            page = render_page("unsubscribe.html", action=request.url.path, watch=slug)
            page.headers.update(no_store)
            return page
        # POST: the button, or a mail client's one-click (RFC 8058); the body is not needed.
        email = site.unsubscribe(token, slug)
        if email is None:
            return render_message("Link not recognised", "This unsubscribe link is not known.", 404)
        what = f"from the watch {slug}" if slug else "from all digests"
        page = render_message("Unsubscribed", f"{email} is unsubscribed {what}.", 200)
        page.headers.update(no_store)
        return page

    # -- subscribing without the operator -------------------------------------------------

    def csrfpage(request: Request, template: str, status: int = 200, **context: Any) -> Response:
        """A page with a form: its CSRF token is the cookie's value (double submit), the
        cookie SameSite=Strict so another site's form never carries it."""
        token = request.cookies.get(CSRF_COOKIE, "")
        if not _TOKEN.fullmatch(token):
            token = secrets.token_urlsafe(24)
        page = render_page(template, status, csrf=token, **context)
        page.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")  # fmt: skip
        page.headers["Cache-Control"] = "no-store"
        return page

    async def posted(request: Request) -> dict[str, list[str]] | None:
        """The form's fields, or None when its CSRF token does not match the cookie."""
        form = await request.form()
        sent, cookie = str(form.get("csrf", "")), request.cookies.get(CSRF_COOKIE, "")
        if not cookie or not secrets.compare_digest(sent.encode(), cookie.encode()):
            return None
        return {k: [str(v) for v in form.getlist(k)] for k in form}

    def refused(exc: UsageError) -> Response:
        if isinstance(exc, TooManyRequests):
            return render_message("Too many requests", str(exc), 429)
        return render_message("Not possible", str(exc), 400)

    def stale() -> Response:
        text = "This form has expired or came from another site. Open the page again."
        return render_message("Form expired", text, 403)

    async def subscribe(request: Request) -> Response:
        q = request.query_params.get("q", "")[:MAX_QUERY]
        try:
            choices = await run_in_threadpool(site.subscribable_watches)
        except UsageError as exc:
            return render_message("Subscribing is not offered here", str(exc), 404)
        if request.method == "GET":
            return csrfpage(request, "subscribe.html", choices=choices, q=q, error="",
                             email="", chosen=(), frequency="weekly")  # fmt: skip
        form = await posted(request)
        if form is None:
            return stale()
        email = (form.get("email") or [""])[0]
        chosen = tuple(form.get("watch", []))
        frequency = (form.get("frequency") or ["weekly"])[0]
        query = (form.get("q") or [""])[0].strip() or None
        client = request.client.host if request.client else None
        try:
            # The address in mailed links: site_url (the facade's own), else the one bound.
            fallback = None if base or not own_url else own_url.rstrip("/")
            await run_in_threadpool(
                lambda: site.subscribe(
                    email, chosen, frequency, query=query, client=client, base_url=fallback
                )  # fmt: skip
            )
        except TooManyRequests as exc:
            return refused(exc)
        except UsageError as exc:  # the form again, with the one-line reason
            return csrfpage(request, "subscribe.html", 200, choices=choices, q=query or "",
                             error=str(exc), email=email, chosen=chosen,
                             frequency=frequency)  # fmt: skip
        # The same answer whatever the address's state: nothing is revealed.
        sent = (
            f"If {email} can receive digests, a message is on its way with a link to "
            "confirm. Nothing is sent before you confirm."
        )
        return render_message("Check your email", sent, 200)

    async def confirm(request: Request) -> Response:
        token = request.path_params["token"]
        if request.method == "GET":  # a mail scanner opens links: confirming takes a click
            return csrfpage(request, "confirm.html", action=request.url.path)
        if await posted(request) is None:
            return stale()
        client = request.client.host if request.client else None
        try:
            view = await run_in_threadpool(lambda: site.confirm(token, client=client))
        except UsageError as exc:
            return refused(exc)
        return csrfpage(request, "manage.html", view=view, notice="Your subscription is "
                         "confirmed. Your first digest comes with the next run.")  # fmt: skip

    async def manage(request: Request) -> Response:
        token = request.path_params["token"]
        if request.method == "GET":
            try:
                view = await run_in_threadpool(lambda: site.manage(token))
            except UsageError as exc:
                return refused(exc)
            return csrfpage(request, "manage.html", view=view, notice="")
        form = await posted(request)
        if form is None:
            return stale()
        try:
            if (form.get("action") or [""])[0] == "unsubscribe":
                view = await run_in_threadpool(lambda: site.unsubscribe_all(token))
                notice = "You are unsubscribed from everything. Nothing more will be sent."
            else:
                chosen = form.get("watch", [])
                frequency = (form.get("frequency") or ["weekly"])[0]
                paused = (form.get("paused") or [""])[0] == "yes"
                view = await run_in_threadpool(
                    lambda: site.update_subscription(token, chosen, frequency, paused)
                )
                notice = "Saved."
        except UsageError as exc:
            return refused(exc)
        return csrfpage(request, "manage.html", view=view, notice=notice)

    def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return render_message("Not found", "There is no page at this address.", 404)
        return PlainTextResponse(f"{exc.detail}\n", exc.status_code, exc.headers)  # 405: Allow

    routes = [
        Route("/", home),
        Route("/index.html", home),
        Route("/search", search),
        Route("/search.{fmt:str}", export),
        Route("/q/{ref:path}", item),
        Route("/watches", watches),
        Route("/watches/", watches),
        Route("/watches/{slug:str}", watch),
        Route("/feeds", feeds_index),
        Route("/feeds/", feeds_index),
        Route("/feeds/index.html", feeds_index),
        Route("/feeds/{name:str}", feed),
        Route("/subscribe", subscribe, methods=["GET", "POST"]),
        Route("/confirm/{token:str}", confirm, methods=["GET", "POST"]),
        Route("/manage/{token:str}", manage, methods=["GET", "POST"]),
        Route("/unsubscribe/{token:str}", unsubscribe, methods=["GET", "POST"]),
        Route("/unsubscribe/{token:str}/{slug:str}", unsubscribe, methods=["GET", "POST"]),
        Mount("/static", StaticFiles(directory=templates_dir() / "web" / "static")),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(_Guard)],
        exception_handlers={HTTPException: http_error},
    )
    # Starlette would answer /feeds/x/ with a redirect built from the Host header: an address
    # that is not ours never comes back from us (no redirects at all).
    app.router.redirect_slashes = False
    return app
