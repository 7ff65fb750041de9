"""A local HTTP server that replays recorded UK Parliament Written Questions API data.

Tests never reach the internet. This module serves real recorded questions (the files in
``shared/data/uk_parliament``) the way ``questions-statements-api.parliament.uk`` does:

* ``GET /api/writtenquestions/questions``: the filtered, ordered and paged list, with each
  item in the endpoint's *list form* (question cut to 255 characters, answer stripped of its
  HTML and cut to 255 characters plus ``"..."``; see :func:`list_form`);
* ``GET /api/writtenquestions/questions/{id}`` (and ``/{date}/{uin}``): one question with
  its full text, answer as HTML;
* ``GET /api/writtenstatements/statements`` (``madeWhenFrom``/``madeWhenTo``, ``house``,
  paged, text cut like an answer's) and ``/statements/{id}`` (the text as held), for written
  statements found among the recordings (items with ``dateMade`` and ``title``).

It can also misbehave on request (:class:`Fault`: error statuses with ``Retry-After``, a
200 carrying an error body, truncated JSON, a slow answer, a dropped connection), and it
records every request it receives for assertions. It is a WSGI app on werkzeug's
development server, run in a background thread::

    with ReplayServer.from_files([dump, longform]) as server:
        httpx.get(server.base_url + "/api/writtenquestions/questions", params={"take": 5})

Run ``python -m pqwatch.testing.replay FILE...`` to serve recordings by hand.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, TypeVar
from wsgiref.types import StartResponse, WSGIEnvironment

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

__all__ = [
    "FAULT_KINDS",
    "Fault",
    "RecordedRequest",
    "ReplayServer",
    "list_answer_text",
    "list_form",
    "list_question_text",
    "load_items",
    "main",
]

LIST_TEXT_LIMIT = 255
"""The list endpoint cuts ``questionText`` and ``answerText`` at this many characters."""

FAULT_KINDS = frozenset({"status", "json_status", "truncated_json", "delay", "drop"})
_FAULT_MATCHES = frozenset({"list", "detail", "statements", "statement"})

_MEMBER_FIELDS = ("askingMember", "answeringMember", "correctingMember")
_LIST_PATH = "/api/writtenquestions/questions"
_STATEMENTS_PATH = "/api/writtenstatements/statements"
_TAG = re.compile(r"<[^>]*>")
_GZIP_MAGIC = b"\x1f\x8b"
_T = TypeVar("_T")

# The list endpoint's questionText only ever holds characters that Windows-1252 can encode
# (true of every list item recorded, ~17,000), while the detail text holds any Unicode. The
# list text looks like a Windows "best fit" conversion to cp1252. The first four entries
# were seen in the data (detail text vs list text, same id); the rest are the same families
# (spaces, hyphens, sub/superscript digits) and are assumed. Anything else that cp1252
# cannot encode becomes "?", as U+200E did.
_BEST_FIT: dict[int, str] = {
    0x202F: " ",  # narrow no-break space (seen: ids 1923227, 1924812)
    0x2011: "-",  # non-breaking hyphen (seen: ids 1924263, 1925184, 1925186)
    0x2082: "2",  # subscript two (seen: id 1924817)
    0x200E: "?",  # left-to-right mark (seen: id 1722647)
    **{cp: " " for cp in (*range(0x2000, 0x200B), 0x205F, 0x3000)},
    **{cp: "-" for cp in (0x2010, 0x2012, 0x2212)},
    **{0x2080 + d: str(d) for d in range(10)},
    **{cp: str(d) for d, cp in ((0, 0x2070), *((d, 0x2070 + d) for d in range(4, 10)))},
}


# --------------------------------------------------------------------------- list form


def _cp1252_best_fit(text: str) -> str:
    try:
        text.encode("cp1252")
        return text
    except UnicodeEncodeError:
        pass
    out: list[str] = []
    for char in text:
        try:
            char.encode("cp1252")
            out.append(char)
        except UnicodeEncodeError:
            out.append(_BEST_FIT.get(ord(char), "?"))
    return "".join(out)


def list_question_text(text: str) -> str:
    """The list endpoint's ``questionText``: the first 255 characters, no marker, with
    characters outside Windows-1252 replaced by a near equivalent (or ``"?"``)."""
    return _cp1252_best_fit(text[:LIST_TEXT_LIMIT])


def list_answer_text(html: str) -> str:
    """The list endpoint's ``answerText``: HTML tags removed (entities and all whitespace
    kept as they are, so paragraphs run together), then cut to 255 characters plus
    ``"..."`` when longer than 255. Idempotent on text already in list form."""
    text = _TAG.sub("", html)
    if len(text) > LIST_TEXT_LIMIT:
        return text[:LIST_TEXT_LIMIT] + "..."
    return text


def _without_members(value: dict[str, Any]) -> dict[str, Any]:
    for name in _MEMBER_FIELDS:
        value[name] = None
    return value


def list_form(value: Mapping[str, Any], *, expand_member: bool = True) -> dict[str, Any]:
    """A question (``QuestionsViewModel`` with full text) as the list endpoint shows it."""
    out = dict(value)
    if isinstance(out.get("questionText"), str):
        out["questionText"] = list_question_text(out["questionText"])
    if isinstance(out.get("answerText"), str):
        out["answerText"] = list_answer_text(out["answerText"])
    out["originalAnswerText"] = ""
    out["comparableAnswerText"] = ""
    return out if expand_member else _without_members(out)


def _detail_form(value: Mapping[str, Any], *, expand_member: bool) -> dict[str, Any]:
    out = dict(value)
    return out if expand_member else _without_members(out)


def _links(question_id: int) -> list[dict[str, str]]:
    return [{"rel": "self", "href": f"/Questions/{question_id}", "method": "GET"}]


# --------------------------------------------------------------------------- loading


def _read_json(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc}") from exc
    try:
        if data[:2] == _GZIP_MAGIC:
            data = gzip.decompress(data)
        return json.loads(data)
    except (OSError, EOFError, ValueError) as exc:  # bad gzip, bad UTF-8, bad JSON
        raise ValueError(f"{path}: not valid JSON (plain or gzip): {exc}") from exc


def _is_statement(value: Mapping[str, Any]) -> bool:
    return isinstance(value.get("dateMade"), str) and isinstance(value.get("title"), str)


def _question(value: Any, path: Path) -> dict[str, Any]:
    """Check that one recorded ``value`` is a written question or a written statement."""
    if isinstance(value, dict) and isinstance(value.get("id"), int):
        if isinstance(value.get("dateTabled"), str) and isinstance(value.get("questionText"), str):
            return value
        if _is_statement(value):
            return value
    raise ValueError(
        f"{path}: an item is neither a written question (integer 'id', 'dateTabled' and "
        f"'questionText') nor a written statement ('id', 'dateMade' and 'title')"
    )


def _wrapped(entries: Any, path: Path) -> list[dict[str, Any]]:
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and "value" in e for e in entries
    ):
        raise ValueError(f"{path}: expected a list of {{'value': ..., 'links': ...}} items")
    return [_question(e["value"], path) for e in entries]


def _is_overlay(data: dict[str, Any]) -> bool:
    return all(
        key.isdigit() and isinstance(entry, dict) and "question_text" in entry
        for key, entry in data.items()
    )


def _classify(
    data: Any, path: Path
) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]] | None]:
    """Items of one file, or (``[]``, overlay) for a longform full-text file."""
    if isinstance(data, list):  # 2: an array of list items
        return _wrapped(data, path), None
    if isinstance(data, dict):
        if isinstance(data.get("results"), list):  # 1: a list-endpoint envelope
            return _wrapped(data["results"], path), None
        if isinstance(data.get("value"), dict):  # 3: one detail response
            return [_question(data["value"], path)], None
        if _is_overlay(data):  # 4: longform {"<id>": {question_text, answer_text}}
            return [], {int(key): entry for key, entry in data.items()}
    raise ValueError(
        f"{path}: not a Written Questions recording (expected a list envelope, a JSON array "
        f"of list items, a detail response, or a longform full-text overlay)"
    )


def _read_files(
    paths: Iterable[str | Path],
) -> tuple[list[dict[str, Any]], list[dict[int, dict[str, Any]]]]:
    items: list[dict[str, Any]] = []
    overlays: list[dict[int, dict[str, Any]]] = []
    for name in paths:
        path = Path(name)
        found, overlay = _classify(_read_json(path), path)
        items.extend(found)
        if overlay is not None:
            overlays.append(overlay)
    return items, overlays


def _apply_overlays(
    items: dict[int, dict[str, Any]], overlays: Iterable[Mapping[int, Mapping[str, Any]]]
) -> None:
    for overlay in overlays:
        for question_id, full in overlay.items():
            item = items.get(question_id)
            if item is None:
                continue
            if isinstance(full.get("question_text"), str):
                item["questionText"] = full["question_text"]
            answer = full.get("answer_text")
            # Only fill in an answer the item already has: a full text fetched after the
            # question was answered must not make an unanswered snapshot item look answered.
            if isinstance(answer, str) and item.get("answerText") is not None:
                item["answerText"] = answer


def load_items(paths: Iterable[str | Path]) -> dict[int, dict[str, Any]]:
    """Load recorded questions, keyed by ``id``, from the given files (plain or gzip).

    Accepts list envelopes ``{"totalResults", "results"}``, JSON arrays of ``{"value",
    "links"}`` items, single detail responses ``{"value", "links"}`` and longform overlays
    ``{"<id>": {"question_text", "answer_text"}}``. Later items replace earlier ones with
    the same id; overlays are applied after all items, whatever the argument order.
    Raises ``ValueError`` naming the file for anything else.
    """
    found, overlays = _read_files(paths)
    items = {value["id"]: value for value in found if not _is_statement(value)}
    _apply_overlays(items, overlays)
    return items


# --------------------------------------------------------------------------- faults, requests


@dataclass
class Fault:
    """One kind of misbehaviour, applied to the next ``times`` matching requests.

    kind: ``"status"`` (answer ``status`` with a ProblemDetails body and ``Retry-After:
    retry_after`` if given), ``"json_status"`` (HTTP 200 whose body is a JSON error with
    ``"status": 500``), ``"truncated_json"`` (HTTP 200, the real body cut in half),
    ``"delay"`` (sleep ``delay`` seconds, then answer normally) or ``"drop"`` (close the
    connection without a response). match: ``None`` for any request, ``"list"`` or
    ``"detail"`` for that endpoint only. after: let this many matching requests through
    untouched first (e.g. ``after=1`` fails the second page of a list).
    """

    kind: str
    status: int = 500
    retry_after: str | None = None
    delay: float = 0.0
    match: str | None = None
    times: int = 1
    after: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {sorted(FAULT_KINDS)}")
        if self.match is not None and self.match not in _FAULT_MATCHES:
            raise ValueError(f"unknown fault match {self.match!r}; use None, 'list' or 'detail'")
        if self.times < 1:
            raise ValueError("a fault must affect at least one request (times >= 1)")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received. ``query`` keeps parameter names as sent."""

    method: str
    path: str
    query: dict[str, list[str]]
    endpoint: str | None  # "list", "detail" or None (anything else)
    fault: str | None  # the kind of fault applied to it, if any


class _BadRequest(Exception):
    def __init__(self, parameter: str, value: str) -> None:
        super().__init__(f"The value '{value}' is not valid for {parameter}.")
        self.parameter = parameter


@dataclass
class _ListQuery:
    tabled: tuple[str | None, str | None] = (None, None)
    answered_window: tuple[str | None, str | None] = (None, None)
    corrected: tuple[str | None, str | None] = (None, None)
    house: str | None = None
    answered: str = "any"
    asking_member: int | None = None
    answering_member: int | None = None
    bodies: frozenset[int] = frozenset()
    uin: str | None = None
    include_withdrawn: bool = False
    expand_member: bool = False
    skip: int = 0
    take: int = 20


class _Params:
    """Query parameters with case-insensitive names; blank values count as absent."""

    def __init__(self, query: Mapping[str, list[str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, values in query.items():
            kept = [v.strip() for v in values if v.strip()]
            if kept:
                self._values.setdefault(name.lower(), []).extend(kept)

    def all(self, name: str) -> list[str]:
        return self._values.get(name.lower(), [])

    def one(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def parse(self, name: str, convert: Callable[[str], _T]) -> _T | None:
        raw = self.one(name)
        if raw is None:
            return None
        try:
            return convert(raw)
        except ValueError:
            raise _BadRequest(name, raw) from None


def _to_int(minimum: int) -> Callable[[str], int]:
    def convert(raw: str) -> int:
        number = int(raw)
        if number < minimum:
            raise ValueError(raw)
        return number

    return convert


def _to_date(raw: str) -> str:
    """A ``yyyy-mm-dd`` (or ISO date-time) value as its ``yyyy-mm-dd`` date part."""
    parsed = date.fromisoformat(raw) if len(raw) == 10 else datetime.fromisoformat(raw).date()
    return parsed.isoformat()


def _to_bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered not in ("true", "false"):
        raise ValueError(raw)
    return lowered == "true"


def _to_choice(*choices: str) -> Callable[[str], str]:
    def convert(raw: str) -> str:
        if raw.lower() not in choices:
            raise ValueError(raw)
        return raw.lower()

    return convert


def _parse_list_query(params: _Params) -> _ListQuery:
    def window(prefix: str) -> tuple[str | None, str | None]:
        start = params.parse(prefix + "WhenFrom", _to_date)
        return start, params.parse(prefix + "WhenTo", _to_date)

    answered = params.parse("answered", _to_choice("any", "answered", "unanswered")) or "any"
    status = params.parse(
        "questionStatus", _to_choice("notanswered", "answeredonly", "allquestions")
    )
    if status == "notanswered":
        answered = "unanswered"
    elif status == "answeredonly":
        answered = "answered"
    bodies: set[int] = set()
    for raw in params.all("answeringBodies"):
        try:
            bodies.add(_to_int(1)(raw))
        except ValueError:
            raise _BadRequest("answeringBodies", raw) from None
    house = params.parse("house", _to_choice("commons", "lords", "bicameral"))
    uin = params.one("uIN")
    return _ListQuery(
        tabled=window("tabled"),
        answered_window=window("answered"),
        corrected=window("corrected"),
        house=None if house == "bicameral" else house,
        answered=answered,
        asking_member=params.parse("askingMemberId", _to_int(1)),
        answering_member=params.parse("answeringMemberId", _to_int(1)),
        bodies=frozenset(bodies),
        uin=uin.lower() if uin is not None else None,
        include_withdrawn=params.parse("includeWithdrawn", _to_bool) or False,
        expand_member=params.parse("expandMember", _to_bool) or False,
        skip=params.parse("skip", _to_int(0)) or 0,
        take=20 if (take := params.parse("take", _to_int(0))) is None else take,
    )


def _in_window(value: Any, window: tuple[str | None, str | None]) -> bool:
    start, end = window
    if start is None and end is None:
        return True
    if not isinstance(value, str):
        return False
    day = value[:10]
    return (start is None or day >= start) and (end is None or day <= end)


def _matches(item: Mapping[str, Any], q: _ListQuery) -> bool:
    if item.get("isWithdrawn") and not q.include_withdrawn:
        return False
    if q.house is not None and str(item.get("house", "")).lower() != q.house:
        return False
    is_answered = item.get("dateAnswered") is not None
    if (q.answered == "answered" and not is_answered) or (
        q.answered == "unanswered" and is_answered
    ):
        return False
    if q.asking_member is not None and item.get("askingMemberId") != q.asking_member:
        return False
    if q.answering_member is not None and item.get("answeringMemberId") != q.answering_member:
        return False
    if q.bodies and item.get("answeringBodyId") not in q.bodies:
        return False
    if q.uin is not None and str(item.get("uin", "")).lower() != q.uin:
        return False
    return (
        _in_window(item.get("dateTabled"), q.tabled)
        and _in_window(item.get("dateAnswered"), q.answered_window)
        and _in_window(item.get("dateAnswerCorrected"), q.corrected)
    )


def _order_key(item: Mapping[str, Any]) -> tuple[str, int]:
    # Sorted in reverse: newest dateAnswered first, unanswered ("") last, ties by id desc.
    answered = item.get("dateAnswered")
    return (answered if isinstance(answered, str) else "", int(item["id"]))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _problem(status: int, detail: str, **extra: Any) -> dict[str, Any]:
    sections = {400: "6.5.1", 404: "6.5.4", 429: "6.5", 500: "6.6.1", 503: "6.6.4"}
    return {
        "type": f"https://tools.ietf.org/html/rfc7231#section-{sections.get(status, '6')}",
        "title": _phrase(status),
        "status": status,
        "detail": detail,
        **extra,
    }


# --------------------------------------------------------------------------- HTTP


def _json(status: int, payload: Any) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    # The reason phrase as http.server words it (werkzeug's own is in capitals).
    status_line = f"{status} {_phrase(status)}"
    return Response(body, status_line, content_type="application/json; charset=utf-8")


class _QuietHandler(WSGIRequestHandler):
    """werkzeug's handler without its log of every request (and dropped connection) on
    stderr, and with this server's name in ``Server``."""

    def log(self, type: str, message: str, *args: Any) -> None:
        return

    def version_string(self) -> str:
        return "pqwatch-replay"


def _drop(environ: WSGIEnvironment) -> NoReturn:
    """Close the connection without a response (the client sees it closed)."""
    environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
    # werkzeug takes a ConnectionError from the app for a client that hung up: it sends
    # nothing (no 500) and logs nothing.
    raise ConnectionAbortedError("connection dropped by a replay fault")


def _route(path: str) -> tuple[str | None, tuple[str, ...]]:
    """Which endpoint a path is: ("list", ()), ("detail", (id,)), ("detail", (date, uin)),
    ("statements", ()) or ("statement", (id,))."""
    parts = [p for p in path.lower().split("/") if p]
    for base_path, many, one, most in (
        (_LIST_PATH, "list", "detail", 2),
        (_STATEMENTS_PATH, "statements", "statement", 1),
    ):
        base = [p for p in base_path.split("/") if p]
        if parts[: len(base)] != base:
            continue
        rest = tuple(p for p in path.split("/") if p)[len(base) :]
        if not rest:
            return many, ()
        if len(rest) <= most:
            return one, rest
    return None, ()


class ReplayServer:
    """Serves recorded questions over HTTP on ``host:port`` (port 0 = any free port).

    ``items`` are ``QuestionsViewModel`` dicts (``value`` objects) with full text; the list
    endpoint derives its truncated text from them. Use as a context manager, or call
    :meth:`start` and :meth:`stop`. Datasets and faults can be changed while it runs.
    """

    def __init__(
        self,
        items: Iterable[dict[str, Any]] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        compress: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.compress = compress  # gzip bodies when the client accepts it, like the real API
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._items: dict[int, dict[str, Any]] = {}
        self._ordered: list[dict[str, Any]] = []
        # Statements are numbered apart from questions (ids can coincide): held apart.
        self._statements: dict[int, dict[str, Any]] = {}
        self._faults: list[list[Any]] = []  # [Fault, remaining uses, requests to let through]
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.set_items(items)

    @classmethod
    def from_files(cls, paths: Iterable[str | Path], **kw: Any) -> ReplayServer:
        """A server holding the questions (and statements) in ``paths`` (see
        :func:`load_items`)."""
        server = cls(**kw)
        server.load_files(paths)
        return server

    # ----------------------------------------------------------------- data

    def load_files(self, paths: Iterable[str | Path], *, replace: bool = True) -> int:
        """Load recordings (see :func:`load_items`) and swap them in; returns the number of
        questions now held. With ``replace=False`` they are merged into the current
        dataset, and any longform overlays among ``paths`` also apply to it."""
        found, overlays = _read_files(paths)
        with self._lock:
            items = {} if replace else {k: dict(v) for k, v in self._items.items()}
            items.update((v["id"], v) for v in found if not _is_statement(v))
            _apply_overlays(items, overlays)
            statements = {} if replace else dict(self._statements)
            statements.update((v["id"], v) for v in found if _is_statement(v))
            self._statements = statements
            self._swap(items)
            return len(items)

    def set_items(self, items: Iterable[dict[str, Any]], *, replace: bool = True) -> None:
        """Swap in questions (``value`` dicts with full text; ``{"value": ...}`` wrappers
        are unwrapped). Later items replace earlier ones with the same id."""
        fresh: dict[int, dict[str, Any]] = {}
        statements: dict[int, dict[str, Any]] = {}
        for item in items:
            value = (
                item["value"] if "id" not in item and isinstance(item.get("value"), dict) else item
            )
            if not isinstance(value, dict) or not isinstance(value.get("id"), int):
                raise ValueError(f"a question needs an integer 'id': {str(value)[:80]}")
            (statements if _is_statement(value) else fresh)[value["id"]] = dict(value)
        with self._lock:
            self._statements = statements if replace else {**self._statements, **statements}
            self._swap(fresh if replace else {**self._items, **fresh})

    def _swap(self, items: dict[int, dict[str, Any]]) -> None:
        self._items = items
        self._ordered = sorted(items.values(), key=_order_key, reverse=True)

    @property
    def items(self) -> dict[int, dict[str, Any]]:
        """The questions held, by id (a snapshot; do not modify)."""
        with self._lock:
            return dict(self._items)

    @property
    def statements(self) -> dict[int, dict[str, Any]]:
        """The written statements held, by id (a snapshot; do not modify)."""
        with self._lock:
            return dict(self._statements)

    # ----------------------------------------------------------------- faults

    def add_fault(self, fault: Fault) -> None:
        """Queue a fault; faults apply in the order added, one per matching request."""
        with self._lock:
            self._faults.append([fault, fault.times, fault.after])

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, endpoint: str | None) -> Fault | None:
        with self._lock:
            for entry in self._faults:
                fault: Fault = entry[0]
                if fault.match is None or fault.match == endpoint:
                    if entry[2] > 0:  # still letting requests through
                        entry[2] -= 1
                        return None
                    entry[1] -= 1
                    if entry[1] <= 0:
                        self._faults.remove(entry)
                    return fault
        return None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    # ----------------------------------------------------------------- answering

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        path, query = request.path, request.args.to_dict(flat=False)
        endpoint, route = _route(path) if request.method in ("GET", "HEAD") else (None, ())
        fault = self._take_fault(endpoint)
        kind = fault.kind if fault is not None else None
        self._record(RecordedRequest(request.method, path, query, endpoint, kind))
        if kind == "drop":
            _drop(environ)
        if fault is not None and kind == "delay" and self._stopping.wait(fault.delay):
            _drop(environ)  # the server is stopping: give up without answering
        if fault is not None and kind == "status":
            problem = _problem(fault.status, "Injected fault (replay server).")
            response = _json(fault.status, problem)
            if fault.retry_after:
                response.headers["Retry-After"] = fault.retry_after
        elif kind == "json_status":
            rfc = "https://tools.ietf.org/html/rfc7231#section-6.6.1"
            response = _json(200, {"type": rfc, "title": "An error occurred", "status": 500})
        else:
            response = self._answer(endpoint, route, _Params(query))
            if kind == "truncated_json":
                response.data = response.data[: len(response.data) // 2]
        response.headers["Cache-Control"] = "public,max-age=30"
        response.headers["Vary"] = "Accept-Encoding"
        if self.compress and "gzip" in request.headers.get("Accept-Encoding", "").lower():
            response.data = gzip.compress(response.data, compresslevel=1)
            response.headers["Content-Encoding"] = "gzip"
        return response(environ, start_response)  # HEAD: werkzeug sends no body

    def _answer(self, endpoint: str | None, route: tuple[str, ...], params: _Params) -> Response:
        try:
            if endpoint == "list":
                return self._list(_parse_list_query(params))
            if endpoint == "detail":
                expand = params.parse("expandMember", _to_bool) or False
                return self._detail(route, expand)
            if endpoint == "statements":
                return self._statement_list(params)
            if endpoint == "statement":
                return self._statement(route[0])
        except _BadRequest as exc:
            return _json(400, _problem(400, str(exc), errors={exc.parameter: [str(exc)]}))
        detail = "No such endpoint on the Written Questions API replay server."
        return _json(404, _problem(404, detail))

    def _list(self, q: _ListQuery) -> Response:
        with self._lock:
            ordered = self._ordered
        matches = [item for item in ordered if _matches(item, q)]
        page = matches[q.skip : q.skip + q.take]
        payload = {
            "totalResults": len(matches),
            "results": [
                {"value": list_form(v, expand_member=q.expand_member), "links": _links(v["id"])}
                for v in page
            ],
        }
        return _json(200, payload)

    def _detail(self, route: tuple[str, ...], expand: bool) -> Response:
        with self._lock:
            items = self._items
        found: dict[str, Any] | None = None
        if len(route) == 1 and route[0].isdigit():
            found = items.get(int(route[0]))
        elif len(route) == 2:
            day = _Params({"date": [route[0]]}).parse("date", _to_date)
            uin = route[1].lower()
            found = next(
                (
                    v
                    for v in items.values()
                    if str(v.get("dateTabled", ""))[:10] == day
                    and str(v.get("uin", "")).lower() == uin
                ),
                None,
            )
        if found is None:
            return _json(404, _problem(404, f"No written question found for '{'/'.join(route)}'."))
        payload = {"value": _detail_form(found, expand_member=expand), "links": _links(found["id"])}
        return _json(200, payload)

    def _statement_list(self, params: _Params) -> Response:
        made = (params.parse("madeWhenFrom", _to_date), params.parse("madeWhenTo", _to_date))
        house = params.parse("house", _to_choice("commons", "lords", "bicameral"))
        expand = params.parse("expandMember", _to_bool) or False
        skip = params.parse("skip", _to_int(0)) or 0
        take = 20 if (t := params.parse("take", _to_int(0))) is None else t
        with self._lock:
            held = list(self._statements.values())
        found = sorted(
            (
                v
                for v in held
                if _in_window(v.get("dateMade"), made)
                and house in (None, "bicameral", str(v.get("house", "")).lower())
            ),
            key=lambda v: (str(v["dateMade"]), v["id"]),
            reverse=True,
        )
        results: list[dict[str, Any]] = []
        for v in found[skip : skip + take]:
            out: dict[str, Any] = {**v, "text": list_answer_text(v.get("text") or "")}
            results.append(
                {
                    "value": out if expand else {**out, "member": None},
                    "links": [{"rel": "self", "href": f"/Statements/{v['id']}", "method": "GET"}],
                }
            )
        return _json(200, {"totalResults": len(found), "results": results})

    def _statement(self, raw_id: str) -> Response:
        with self._lock:
            found = self._statements.get(int(raw_id)) if raw_id.isdigit() else None
        if found is None:
            return _json(404, _problem(404, f"No written statement found for '{raw_id}'."))
        links = [{"rel": "self", "href": f"/Statements/{found['id']}", "method": "GET"}]
        return _json(200, {"value": found, "links": links})

    # ----------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        if self._server is None:
            raise RuntimeError("the replay server is not running; call start() first")
        host, port = self._server.socket.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> ReplayServer:
        if self._server is not None:
            return self
        self._stopping = threading.Event()
        # Bound here and handed over as a descriptor: werkzeug's own bind looks up the host's
        # FQDN (which can stall without DNS) and exits the process when the port is taken,
        # where this raises OSError.
        with socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen()
            self._server = server = make_server(
                self.host,
                self.port,
                self._wsgi,
                threaded=True,
                request_handler=_QuietHandler,
                fd=sock.fileno(),
            )
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},  # how long stop() may wait
            name=f"pqwatch-replay-{server.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wake delayed answers
        server.shutdown()  # werkzeug's serve_forever closes the socket as it returns
        if thread is not None:
            thread.join()
        self._server = self._thread = None

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pqwatch.testing.replay",
        description=(
            "Serve recorded UK Parliament Written Questions API data on a local port, "
            "mimicking GET /api/writtenquestions/questions, /questions/{id}, "
            "/api/writtenstatements/statements and /statements/{id}."
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="port to listen on, 0 for any (default: %(default)s)"
    )
    parser.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help=(
            "recordings, plain or gzip: list envelopes, JSON arrays of list items, detail "
            "responses, longform full-text overlays (applied last); later files win per id"
        ),
    )
    args = parser.parse_args(argv)
    try:
        server = ReplayServer.from_files(args.files, host=args.host, port=args.port)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        server.start()
    except OSError as exc:
        parser.error(f"cannot listen on {args.host}:{args.port}: {exc}")
    print(
        f"Serving {len(server.items)} written questions and {len(server.statements)} written "
        f"statements at {server.base_url} (Ctrl-C to stop)",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
