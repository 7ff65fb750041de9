"""Match events against watches, inside the transaction that stored the events.

For every newly stored event of a kind people are told about (tabled, holding, answered,
corrected) each active watch's query is run against that event's question. A match records
the watch, the event and the words that matched ("why did I get this?"), and, unless the
event is historical (backfill), one outbox row per subscriber of that watch. Because all of
this commits with the events, a match can neither be lost nor recorded twice: the unique keys
on watch_match(watch, event) and delivery(subscriber, event) absorb any repeat.
"""

from __future__ import annotations

import json
import re
import sqlite3
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from typing import Any, TypeAlias

import sqlalchemy as sa
from sqlmodel import Session

from pqwatch.search.engine import MARK_END, MARK_START, marked_terms
from pqwatch.search.query import CompiledQuery, compile_query, porter_stem, unscoped
from pqwatch.store.db import insert_rows, sql_ts

MATCHED_KINDS = ("tabled", "holding", "answered", "corrected")

_EVENTS_SQL = (
    "SELECT e.id, e.question_id, e.historical FROM event e "
    "WHERE e.kind IN ('tabled', 'holding', 'answered', 'corrected')"
)
# A still-unanswered question whose text, heading or department changed may now match a watch
# it did not match when tabled; its tabled event is matched again.
_REMATCH = sa.text(
    "SELECT e.id, e.question_id, e.historical FROM event e JOIN question q "
    "ON q.id = e.question_id WHERE e.question_id IN :ids AND e.kind = 'tabled' "
    "AND q.status = 'unanswered'"
).bindparams(sa.bindparam("ids", expanding=True))


class Matcher:
    """Matches events against the active watches; compiled queries are cached by text."""

    def __init__(self) -> None:
        self._compiled: dict[tuple[str, str], CompiledQuery] = {}

    def compiled(self, query: str, fts_table: str = "question_fts") -> CompiledQuery:
        cq = self._compiled.get((query, fts_table))
        if cq is None:
            cq = self._compiled[(query, fts_table)] = compile_query(query, fts_table=fts_table)
        return cq

    def on_events(
        self, session: Session, event_ids: Sequence[int], changed_question_ids: Sequence[int]
    ) -> int:
        """Match new events (and re-match changed unanswered questions). Returns matches."""
        conn = session.connection()
        rows: list[tuple[int, int, bool]] = []
        if event_ids:
            cur = _raw_cursor(conn)  # a whole batch of ids: plain sqlite3, in chunks
            for chunk in _chunks(event_ids):
                marks = ",".join("?" * len(chunk))
                rows += [
                    (r[0], r[1], bool(r[2]))
                    for r in cur.execute(f"{_EVENTS_SQL} AND e.id IN ({marks})", list(chunk))
                ]
        if changed_question_ids:
            rows += [
                (r[0], r[1], bool(r[2]))
                for r in conn.execute(_REMATCH, {"ids": list(changed_question_ids)})
            ]
        if not rows:
            return 0
        watches = conn.execute(sa.text("SELECT id, query FROM watch WHERE active")).all()
        return self._match(conn, watches, rows, datetime.now(UTC), deliver=True)

    def match_history(self, session: Session, watch_id: int, query: str) -> int:
        """Record a new (or changed) watch's matches over the whole archive, for its feed and
        statistics. Nothing is delivered: old news is not mailed as new."""
        conn = session.connection()
        conn.execute(sa.text("DELETE FROM watch_match WHERE watch_id = :w"), {"w": watch_id})
        cq = self.compiled(query)
        where, params = cq.sql()
        events = conn.execute(
            sa.text(
                "SELECT e.id, e.question_id, e.historical FROM event e JOIN question q "
                f"ON q.id = e.question_id WHERE e.kind IN {MATCHED_KINDS!r} AND ({where})"
            ),
            params,
        ).all()
        rows = [(r[0], r[1], bool(r[2])) for r in events]
        return self._match(conn, [(watch_id, query)], rows, datetime.now(UTC), deliver=False)

    def _match(
        self,
        conn: sa.Connection,
        watches: Iterable[Any],
        events: list[tuple[int, int, bool]],
        now: datetime,
        *,
        deliver: bool,
    ) -> int:
        by_question: dict[int, dict[int, None]] = {}  # question -> its events, in order
        for event_id, qid, _ in events:
            by_question.setdefault(qid, {})[event_id] = None
        qids = list(by_question)
        stamp = sql_ts(now)
        cur = _raw_cursor(conn)
        # A batch of new events (ingest) is matched against a private index of just its
        # questions: each watch's query then runs over the batch, not the whole archive.
        # A watch's whole-history match (one watch, events already found) uses the archive's.
        watches = list(watches)
        batch_fts = deliver and len(watches) > 1
        table = _BATCH_FTS if batch_fts else "question_fts"
        texts = _Texts(cur)
        if batch_fts:
            texts.add(_make_batch_index(cur, qids))
        terms_json: dict[tuple[str, ...], str] = {}
        try:
            found: list[tuple[int, int, str]] = []  # (watch, question, terms), in match order
            for watch_id, query in watches:
                cq = self.compiled(query, table)
                matched = _matching_questions(cur, cq, qids, batch=batch_fts)
                for qid, terms in _matched_terms(cur, cq, matched, texts).items():
                    as_json = terms_json.get(terms)
                    if as_json is None:
                        as_json = terms_json[terms] = json.dumps(list(terms))
                    found.append((watch_id, qid, as_json))
        finally:
            if batch_fts:
                _drop_batch_index(cur)
        if not found:
            return 0
        # Matches already recorded are kept as they are (and deliver nothing again).
        existing = _existing_matches(
            cur, sorted({e for qid in {q for _, q, _ in found} for e in by_question[qid]})
        )
        new = [
            (w, e, terms, stamp)
            for w, qid, terms in found
            for e in by_question[qid]
            if (w, e) not in existing
        ]
        insert_rows(
            cur,
            "INSERT INTO watch_match (watch_id, event_id, matched_terms_json, created_at)",
            new,
            "ON CONFLICT (watch_id, event_id) DO NOTHING",
        )
        if deliver:
            historical_events = {e for e, _, h in events if h}
            # Who receives each watch, read once (not joined again for every match).
            receivers: dict[int, list[int]] = {}
            for watch_id, subscriber_id in cur.execute(
                "SELECT s.watch_id, s.subscriber_id FROM subscription s "
                "JOIN subscriber sb ON sb.id = s.subscriber_id AND sb.active "
                "WHERE s.unsubscribed_at IS NULL ORDER BY s.watch_id, s.subscriber_id"
            ):
                receivers.setdefault(watch_id, []).append(subscriber_id)
            # One row per subscriber and event, however many of their watches matched it.
            outbox = dict.fromkeys(
                (sub, e)
                for w, e, _, _ in new
                if e not in historical_events
                for sub in receivers.get(w, ())
            )
            insert_rows(
                cur,
                "INSERT INTO delivery (subscriber_id, event_id, status, attempts, created_at)",
                [(sub, e, "pending", 0, stamp) for sub, e in outbox],
                "ON CONFLICT (subscriber_id, event_id) DO NOTHING",
            )
        return len(new)


_BATCH_FTS = "pqwatch_batch_fts"
_BATCH_IDS = "pqwatch_batch_ids"
_CHUNK = 500  # bound parameters per IN list (SQLite allows 32766; keep statements small)


def _raw_cursor(conn: sa.Connection) -> sqlite3.Cursor:
    """The DBAPI cursor of this connection (same transaction): SQLAlchemy's per-statement
    overhead dominated matching a large batch."""
    dbapi = conn.connection.driver_connection
    assert isinstance(dbapi, sqlite3.Connection)
    return dbapi.cursor()


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


def _make_batch_index(cur: sqlite3.Cursor, qids: Sequence[int]) -> list[_Row]:
    """A temporary FTS5 index, tokenised like question_fts, holding only these questions.
    Returns their indexed texts (rowid, heading, question, answer)."""
    _drop_batch_index(cur)
    cur.execute(f"CREATE TEMP TABLE {_BATCH_IDS} (id INTEGER PRIMARY KEY)")
    insert_rows(cur, f"INSERT INTO temp.{_BATCH_IDS} (id)", [(q,) for q in qids])
    cur.execute(
        f"CREATE VIRTUAL TABLE temp.{_BATCH_FTS} USING fts5("
        "heading, question, answer, tokenize='porter unicode61 remove_diacritics 2', "
        "content='', columnsize=0)"  # only rowids are read from it: no copy of the texts
    )
    rows = _indexed_texts(cur, sorted(qids))
    insert_rows(cur, f"INSERT INTO temp.{_BATCH_FTS} (rowid, heading, question, answer)", rows)
    return rows


def _indexed_texts(cur: sqlite3.Cursor, qids: Sequence[int]) -> list[_Row]:
    rows: list[_Row] = []
    for chunk in _chunks(qids):
        marks = ",".join("?" * len(chunk))
        rows += cur.execute(
            f"SELECT rowid, heading, question, answer FROM question_fts WHERE rowid IN ({marks})",
            list(chunk),
        ).fetchall()
    return rows


def _drop_batch_index(cur: sqlite3.Cursor) -> None:
    cur.execute(f"DROP TABLE IF EXISTS temp.{_BATCH_FTS}")
    cur.execute(f"DROP TABLE IF EXISTS temp.{_BATCH_IDS}")


def _existing_matches(cur: sqlite3.Cursor, event_ids: Sequence[int]) -> set[tuple[int, int]]:
    out: set[tuple[int, int]] = set()
    for chunk in _chunks(event_ids):
        marks = ",".join("?" * len(chunk))
        out.update(
            cur.execute(
                f"SELECT watch_id, event_id FROM watch_match WHERE event_id IN ({marks})",
                list(chunk),
            ).fetchall()
        )
    return out


def _matching_questions(
    cur: sqlite3.Cursor, cq: CompiledQuery, qids: list[int], *, batch: bool
) -> list[int]:
    """Which of these questions the query matches. With `batch`, the query was compiled for
    the batch index, which holds exactly `qids`."""
    table = cq.fts_table
    params = dict(cq.params)
    if batch:  # the batch index holds only the batch; the id table serves filter-only queries
        scope = f"q.id IN (SELECT id FROM temp.{_BATCH_IDS})"
    else:  # integers, rendered inline (any number of them)
        scope = f"q.id IN ({','.join(str(int(q)) for q in qids)})"
    if cq.match is None:
        sql = f"SELECT q.id FROM question q WHERE {scope} AND ({cq.where})"
        return [r[0] for r in cur.execute(sql, params)]
    params["__match"] = cq.match
    # CROSS JOIN: the FTS index first. Left to choose, SQLite may walk an index of `question`
    # (house = ?) over the whole archive and probe the FTS index once per row (100x slower).
    join = "CROSS JOIN" if batch else "JOIN"
    sql = (
        f"SELECT q.id FROM {table} {join} question q ON q.id = {table}.rowid "
        f"WHERE {table} MATCH :__match AND {'' if batch else scope + ' AND '}({cq.where})"
    )
    return [r[0] for r in cur.execute(sql, params)]


# --------------------------------------------------------------------------- matched words
#
# A match records the words that matched, as highlight() would mark them in the question's
# heading, question and answer: each instance of each phrase of the FTS5 query that took part
# in the match, overlapping instances merged, lower-cased, distinct, in order of appearance.
# highlight() re-tokenises all three columns for every (watch, question) pair, which cost more
# than everything else in matching a batch; here the same is worked out in Python from the
# query's phrases. For ASCII words that is exact: FTS5's unicode61 tokenizer takes runs of
# [A-Za-z0-9] as tokens and folds their case, and porter_stem is SQLite's stemmer step for
# step. Text with other letters, digits or combining marks (accents, other scripts) and
# anything unexpected are left to highlight() itself.

_Row: TypeAlias = tuple[int, str | None, str | None, str | None]  # rowid, the three columns
_Span: TypeAlias = tuple[int, int]
_COLUMNS = ("heading", "question", "answer")
_ALL_COLUMNS = frozenset(range(len(_COLUMNS)))
_TOKEN = re.compile(r"[a-z0-9]+")
_NOT_ASCII = re.compile(r"[^\x01-\x7f]")


class _Unsure(Exception):
    """The Python reading disagrees with FTS5 (a phrase that must match was not found)."""


def _plain(text: str) -> bool:
    """Whether FTS5 tokenises this text as runs of ASCII letters and digits: every other
    character is a separator (punctuation, symbols, spaces), none a letter, digit or mark."""
    for ch in set(_NOT_ASCII.findall(text)):
        category = unicodedata.category(ch)
        if ch == "\x00" or category[0] in "LNM" or category == "Co":
            return False
    return True


@dataclass(frozen=True)
class _Phrase:
    """One FTS5 phrase: its tokens' stems; with `prefix`, the last one is a prefix."""

    stems: tuple[str, ...]
    prefix: bool
    # Finds candidate instances in lower-cased text: each token as it is written. Porter
    # only rewrites the end of a word, so a word whose stem is s begins with s[:-1].
    pattern: re.Pattern[str] | None


@dataclass(frozen=True)
class _Op:
    op: str  # AND, OR, or NOT (binary: parts[0] NOT parts[1])
    parts: tuple[_Node, ...]


@dataclass(frozen=True)
class _InColumns:
    columns: frozenset[int]
    part: _Node


_Node: TypeAlias = _Phrase | _Op | _InColumns


def _phrase(text: str, prefix: bool) -> _Phrase:
    if not _plain(text):
        raise ValueError("not plain ASCII words")
    stems = tuple(porter_stem(token) for token in _TOKEN.findall(text.lower()))
    if not stems:
        return _Phrase(stems, prefix, None)
    tokens = [f"{s[:-1]}[a-z0-9]*" if len(s) > 1 else "[a-z0-9]+" for s in stems]
    first = stems[0][:-1]
    if first:  # the literal first, so that re can scan for it; then "starts a token"
        tokens[0] = f"{first}(?<![a-z0-9]{first})[a-z0-9]*"
    else:
        tokens[0] = f"(?<![a-z0-9]){tokens[0]}"
    if len(tokens) == 1:  # the match is the token (a group would slow the scan down)
        return _Phrase(stems, prefix, re.compile(tokens[0]))
    # One group per token; the tokens after the first are looked ahead at, so that the
    # next instance may begin with the second token of this one.
    rest = "".join(f"[^a-z0-9\x00]+({t})" for t in tokens[1:])
    return _Phrase(stems, prefix, re.compile(f"({tokens[0]})(?={rest})"))


_FTS_LEXER = re.compile(r'\s*(?:"((?:[^"]|"")*)"(\*?)|([()])|([A-Za-z_]\w*)\s*(:)?)')


class _FtsParser:
    """The FTS5 expressions compile_query writes: "strings" (optionally *), column : filters,
    AND, OR, NOT and parentheses. Anything else raises ValueError."""

    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []  # (kind, value)
        i = 0
        while i < len(text):
            m = _FTS_LEXER.match(text, i)
            if m is None:
                if text[i:].strip():
                    raise ValueError(f"unexpected {text[i:]!r}")
                break
            i = m.end()
            if m.group(1) is not None:
                kind = "PREFIX" if m.group(2) else "STRING"
                self.tokens.append((kind, m.group(1).replace('""', '"')))
            elif m.group(3):
                self.tokens.append((m.group(3), ""))
            elif m.group(5):
                self.tokens.append(("COLUMN", m.group(4)))
            elif m.group(4) in ("AND", "OR", "NOT"):
                self.tokens.append((m.group(4), ""))
            else:
                raise ValueError(f"unexpected {m.group(4)!r}")
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i][0] if self.i < len(self.tokens) else None

    def take(self, kind: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.tokens) or (kind is not None and self.tokens[self.i][0] != kind):
            raise ValueError("unexpected end or token")
        self.i += 1
        return self.tokens[self.i - 1]

    def parse(self) -> _Node:
        node = self.parse_or()
        if self.i != len(self.tokens):
            raise ValueError("trailing tokens")
        return node

    def parse_or(self) -> _Node:
        parts = [self.parse_and()]
        while self.peek() == "OR":
            self.take()
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else _Op("OR", tuple(parts))

    def parse_and(self) -> _Node:
        parts = [self.parse_not()]
        while self.peek() in ("AND", "STRING", "PREFIX", "(", "COLUMN"):
            if self.peek() == "AND":
                self.take()
            parts.append(self.parse_not())
        return parts[0] if len(parts) == 1 else _Op("AND", tuple(parts))

    def parse_not(self) -> _Node:
        node = self.parse_primary()
        while self.peek() == "NOT":
            self.take()
            node = _Op("NOT", (node, self.parse_primary()))
        return node

    def parse_primary(self) -> _Node:
        kind, value = self.take()
        if kind == "(":
            node = self.parse_or()
            self.take(")")
            return node
        if kind == "COLUMN":
            if value not in _COLUMNS:
                raise ValueError(f"unknown column {value!r}")
            return _InColumns(frozenset({_COLUMNS.index(value)}), self.parse_primary())
        if kind in ("STRING", "PREFIX"):
            return _phrase(value, kind == "PREFIX")
        raise ValueError(f"unexpected {kind!r}")


_Shape: TypeAlias = int | tuple[str, tuple["_Shape", ...]]  # phrase index, or (op, parts)


@dataclass(frozen=True)
class _Query:
    tree: _Node
    # When every phrase is one word and no column is named (most watches): the phrases, and
    # the tree with each phrase replaced by its index.
    words: tuple[_Phrase, ...] | None
    shape: _Shape
    # Per phrase of `words`: whether its instances are looked for. Not when it only excludes
    # (a NOT b, b): FTS5 has already found that it does not occur.
    looked_for: tuple[bool, ...] = ()


def _looked_for(shape: _Shape, sure: bool, out: list[bool]) -> None:
    if isinstance(shape, int):
        out[shape] = True
        return
    op, parts = shape
    if op == "NOT" and sure:
        _looked_for(parts[0], sure, out)
        return
    for part in parts:
        _looked_for(part, sure and op == "AND", out)


def _shape(node: _Node, words: list[_Phrase]) -> _Shape | None:
    if isinstance(node, _Phrase):
        if len(node.stems) != 1 or node.pattern is None:
            return None
        words.append(node)
        return len(words) - 1
    if isinstance(node, _InColumns):
        return None
    parts = [_shape(part, words) for part in node.parts]
    if any(part is None for part in parts):
        return None
    return (node.op, tuple(p for p in parts if p is not None))


_FTS_QUERIES: dict[str, _Query | None] = {}


def _fts_query(match: str) -> _Query | None:
    """An FTS5 expression's phrases as a tree, or None: leave this one to highlight()."""
    if match not in _FTS_QUERIES:
        query: _Query | None = None
        try:
            # The scope names exactly the three columns this reader knows: no narrowing.
            tree = _FtsParser(unscoped(match)).parse()
        except (ValueError, re.error):
            pass
        else:
            words: list[_Phrase] = []
            shape = _shape(tree, words)
            looked_for = [False] * len(words)
            if shape is not None:
                _looked_for(shape, True, looked_for)
            query = _Query(
                tree, tuple(words) if shape is not None else None, shape or 0, tuple(looked_for)
            )
        if len(_FTS_QUERIES) > 4096:
            _FTS_QUERIES.clear()
        _FTS_QUERIES[match] = query
    return _FTS_QUERIES[match]


class _Stems(dict[str, str]):
    """Each token's porter stem, worked out once."""

    def __missing__(self, token: str) -> str:
        stem = self[token] = porter_stem(token)
        return stem


class _Texts:
    """The indexed texts of the questions being matched: a batch's, read once for all
    watches; otherwise (a watch over the whole archive) read a chunk at a time."""

    def __init__(self, cur: sqlite3.Cursor) -> None:
        self.cur = cur
        self.batch = False  # set by add(): every text is here, kept for all watches
        self.rows: dict[int, _Row] = {}
        # Lower-cased columns joined by NUL (no phrase spans two columns), with the columns'
        # (start, end); None when the text is not plain ASCII words.
        self.prepared: dict[int, tuple[str, tuple[_Span, ...]] | None] = {}
        self.stems = _Stems()

    def add(self, rows: Iterable[_Row]) -> None:
        self.rows.update((r[0], r) for r in rows)
        self.batch = True

    def chunks(self, qids: list[int]) -> Iterable[list[int]]:
        """The ids in chunks whose texts are at hand while the chunk is worked on."""
        if self.batch:
            yield qids
            return
        for chunk in _chunks(qids):
            self.rows = {r[0]: r for r in _indexed_texts(self.cur, chunk)}
            self.prepared = {}
            yield list(chunk)
        self.rows, self.prepared = {}, {}

    def text(self, qid: int) -> tuple[str, tuple[_Span, ...]] | None:
        if qid in self.prepared:
            return self.prepared[qid]
        row = self.rows.get(qid)
        columns = [c or "" for c in row[1:]] if row is not None else None
        prepared = None
        if columns is not None and all(
            ("\x00" not in c) if c.isascii() else _plain(c) for c in columns
        ):
            bounds: list[_Span] = []
            start = 0
            for c in columns:
                bounds.append((start, start + len(c)))
                start += len(c) + 1
            prepared = ("\x00".join(columns).lower(), tuple(bounds))
        self.prepared[qid] = prepared
        return prepared


def _instances(
    phrase: _Phrase, text: str, bounds: tuple[_Span, ...], columns: frozenset[int], stems: _Stems
) -> list[_Span]:
    """Where the phrase occurs in these columns of the text: (start, end) of each instance."""
    pattern = phrase.pattern
    if pattern is None:
        return []
    if columns == _ALL_COLUMNS:
        found = pattern.finditer(text)
    else:
        found = chain.from_iterable(pattern.finditer(text, *bounds[c]) for c in sorted(columns))
    wanted, prefix = phrase.stems, phrase.prefix
    out: list[_Span] = []
    if len(wanted) == 1:
        want = wanted[0]
        for m in found:
            stem = stems[m.group()]
            if stem == want or (prefix and stem.startswith(want)):
                out.append(m.span())
        return out
    last = len(wanted) - 1
    for m in found:
        for i, token in enumerate(m.groups()):
            stem = stems[token]
            if stem != wanted[i] and not (prefix and i == last and stem.startswith(wanted[i])):
                break
        else:
            out.append((m.start(1), m.end(last + 1)))
    return out


def _collect(
    node: _Node,
    text: str,
    bounds: tuple[_Span, ...],
    columns: frozenset[int],
    sure: bool,
    stems: _Stems,
) -> list[_Span] | None:
    """The instances highlight() marks for this node, or None if the node does not match.
    `sure`: FTS5 found that the node matches."""
    if isinstance(node, _Phrase):
        found = _instances(node, text, bounds, columns, stems)
        if not found and sure:
            raise _Unsure
        return found or None
    if isinstance(node, _InColumns):
        return _collect(node.part, text, bounds, columns & node.columns, sure, stems)
    if node.op == "AND":
        out: list[_Span] = []
        for part in node.parts:
            got = _collect(part, text, bounds, columns, sure, stems)
            if got is None:
                return None
            out += got
        return out
    if node.op == "OR":
        parts = [_collect(part, text, bounds, columns, False, stems) for part in node.parts]
        if all(got is None for got in parts):
            if sure:
                raise _Unsure
            return None
        return [span for got in parts if got is not None for span in got]
    # NOT: what the left side marks; the right side does not match (FTS5 said so if sure).
    left = _collect(node.parts[0], text, bounds, columns, sure, stems)
    if left is None or sure:
        return left
    return left if _collect(node.parts[1], text, bounds, columns, False, stems) is None else None


def _marked(shape: _Shape, present: list[bool], sure: bool) -> list[int] | None:
    """_collect() for a tree of one-word phrases, given which of them occur."""
    if isinstance(shape, int):
        if present[shape]:
            return [shape]
        if sure:
            raise _Unsure
        return None
    op, parts = shape
    if op == "AND":
        out: list[int] = []
        for part in parts:
            got = _marked(part, present, sure)
            if got is None:
                return None
            out += got
        return out
    if op == "OR":
        marked = [_marked(part, present, False) for part in parts]
        if all(got is None for got in marked):
            if sure:
                raise _Unsure
            return None
        return [i for got in marked if got is not None for i in got]
    left = _marked(parts[0], present, sure)
    if left is None or sure:
        return left
    return left if _marked(parts[1], present, False) is None else None


def _words(text: str, spans: list[_Span]) -> tuple[str, ...]:
    """marked_terms() of the text with these spans marked (overlapping spans merged)."""
    if len(spans) == 1:
        start, end = spans[0]
        return (" ".join(text[start:end].split()),)
    words: dict[str, None] = {}
    end = -1
    start = -1
    for s, e in sorted(spans):
        if s < end:  # overlaps the current span (spans never cross a column boundary)
            end = max(end, e)
            continue
        if start >= 0:
            words.setdefault(" ".join(text[start:end].split()), None)
        start, end = s, e
    if start >= 0:
        words.setdefault(" ".join(text[start:end].split()), None)
    return tuple(words)


def _highlighted(cur: sqlite3.Cursor, cq: CompiledQuery, qid: int) -> tuple[str, ...]:
    """The words highlight() marks in this question, from FTS5 itself. The archive's index
    holds the same text as the (contentless) batch index, and the MATCH expression is the
    same for both."""
    table = "question_fts"
    marks = ", ".join(f"highlight({table}, {i}, '{MARK_START}', '{MARK_END}')" for i in range(3))
    row = cur.execute(
        f"SELECT {marks} FROM {table} WHERE {table} MATCH ? AND rowid = ?", (cq.match, qid)
    ).fetchone()
    return marked_terms(*row) if row is not None else ()


def _matched_terms(
    cur: sqlite3.Cursor, cq: CompiledQuery, qids: list[int], texts: _Texts
) -> dict[int, tuple[str, ...]]:
    """The words that matched in each of these questions (all matched by the query)."""
    if cq.match is None:
        return dict.fromkeys(qids, ())
    query = _fts_query(cq.match)
    if query is None:
        return {qid: _highlighted(cur, cq, qid) for qid in qids}
    out: dict[int, tuple[str, ...]] = {}
    for chunk in texts.chunks(qids):
        out.update(_terms_in(cur, cq, query, chunk, texts))
    return out


def _terms_in(
    cur: sqlite3.Cursor, cq: CompiledQuery, query: _Query, qids: list[int], texts: _Texts
) -> dict[int, tuple[str, ...]]:
    out: dict[int, tuple[str, ...]] = {}
    stems = texts.stems
    if query.words is not None and len(query.words) == 1:  # the commonest watch: one word
        [phrase] = query.words
        assert phrase.pattern is not None
        findall, want, prefix = phrase.pattern.findall, phrase.stems[0], phrase.prefix
        for qid in qids:
            prepared = texts.text(qid)
            words = None
            if prepared is not None:
                words = tuple(
                    token
                    for token in dict.fromkeys(findall(prepared[0]))
                    if stems[token] == want or (prefix and stems[token].startswith(want))
                )
            out[qid] = words or _highlighted(cur, cq, qid)
        return out
    for qid in qids:
        prepared = texts.text(qid)
        words = None
        if prepared is not None:
            try:
                if query.words is not None:
                    words = _one_word_phrases(
                        query.words, query.looked_for, query.shape, prepared[0], stems
                    )
                else:
                    words = _phrases(query.tree, prepared[0], prepared[1], stems)
            except _Unsure:
                pass
        out[qid] = words or _highlighted(cur, cq, qid)
    return out


def _one_word_phrases(
    phrases: tuple[_Phrase, ...],
    looked_for: tuple[bool, ...],
    shape: _Shape,
    text: str,
    stems: _Stems,
) -> tuple[str, ...]:
    """The marked words when every phrase is one word: each instance is one token."""
    found: list[list[str]] = []  # per phrase: the distinct matching tokens, in text order
    for phrase, look in zip(phrases, looked_for, strict=True):
        if not look:
            found.append([])
            continue
        assert phrase.pattern is not None
        want, prefix = phrase.stems[0], phrase.prefix
        found.append(
            [
                token
                for token in dict.fromkeys(phrase.pattern.findall(text))
                if stems[token] == want or (prefix and stems[token].startswith(want))
            ]
        )
    marked = _marked(shape, [bool(tokens) for tokens in found], True) or []
    if len(marked) == 1:
        return tuple(found[marked[0]])
    words = dict.fromkeys(token for i in marked for token in found[i])
    return tuple(sorted(words, key=lambda token: _first_token(text, token)))


_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


def _first_token(text: str, token: str) -> int:
    """Where the token first occurs as a whole token (it does occur)."""
    at = text.find(token)
    while at >= 0:
        end = at + len(token)
        if (at == 0 or text[at - 1] not in _TOKEN_CHARS) and (
            end == len(text) or text[end] not in _TOKEN_CHARS
        ):
            return at
        at = text.find(token, at + 1)
    return len(text)  # pragma: no cover - every token given was found in the text


def _phrases(
    tree: _Node, text: str, bounds: tuple[_Span, ...], stems: _Stems
) -> tuple[str, ...] | None:
    spans = _collect(tree, text, bounds, _ALL_COLUMNS, True, stems)
    return _words(text, spans) if spans else None
