"""The query language shared by watches, `pqwatch search` and feed filters.

It behaves like a search engine's::

    palliative care children          every word must match (stemmed: hospices ~ hospice)
    "short breaks"                    an exact phrase
    hospice OR hospices               either (OR binds looser than the implicit AND; a bare
                                      `or` in any case is OR too: `hospice or palliative`)
    hospice -lords  /  NOT lords      exclusion; also -"phrase", -(group), -house:lords
    (hospice OR palliative) funding   grouping
    educ*                             a prefix
    house:commons  dept:"health and social care"  asker:"jane smith"  answerer:smith
    heading:hospices  status:answered  tabled:2024-01..2024-03  answered:>=2024-01-01

Grammar, loosest first::

    query   := or_expr
    or_expr := and_expr ("OR" and_expr)*               (OR in any case: OR, or, Or)
    and_expr:= unary (["AND"] unary)*
    unary   := "NOT" unary | "-"unary | primary       ("-" written straight before its term)
    primary := "(" or_expr ")" | field ":" value | "phrase"[*] | word[*]

A word written straight against a parenthesis is a term of its own, as if there were a
space: `foo(bar)` is `foo (bar)` (so pasted text such as `3(b)` still finds "3" and "b"), and
`NOT(a b)` or `x OR(a b)` use the operator. `"or"` in quotes searches for the word "or".

User text never reaches SQL or FTS5 syntax directly: every SQL value is a bound parameter
and every word or phrase becomes a double-quoted FTS5 string, so `:`, `"`, a leading `^` or a
spaced-out `NEAR` typed by a user can only ever be searched for, never interpreted. Syntax
from other search engines that would instead silently match nothing is refused with a
QuerySyntaxError that says so: a `*` anywhere but at the end of a word (`hos*pice`, `*pice`,
and in names: `asker:"sm*th"`), `?` inside a word (`wom?n`), `^` or `~` straight after a term
(boosting `word^2`, `"a phrase"^2`; fuzzy or proximity `word~`, `"a phrase"~5`), the
proximity operators `NEAR(a b)` and `a NEAR/3 b` (in any case), and a field given a group
(`heading:(a OR b)`). A quoted phrase is searched for as it is: `"hos*pice"` is the phrase
"hos pice". Characters that are not text at all (lone surrogates, from undecodable input) are
refused; NUL counts as a space. Groups, OR and NOT may nest 16 levels deep (the SQL and FTS5
parsers give up not far beyond).
"""

from __future__ import annotations

import difflib
import re
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import Any, Literal, TypeAlias

from pqwatch.errors import UsageError

__all__ = [
    "FIELDS",
    "And",
    "CompiledQuery",
    "DateRange",
    "Field",
    "Node",
    "Not",
    "Or",
    "QuerySyntaxError",
    "Text",
    "compile_query",
    "parse",
    "stems",
]

#: The field filters, in the order the error messages list them.
FIELDS = ("house", "dept", "asker", "answerer", "heading", "status", "tabled", "answered")
_ALIASES = {"department": "dept"}

_HOUSES = {"commons": "Commons", "lords": "Lords"}
# A corrected question has been answered, so `status:answered` includes it.
_STATUSES: dict[str, tuple[str, ...]] = {
    "answered": ("answered", "corrected"),
    "holding": ("holding",),
    "unanswered": ("unanswered",),
    "corrected": ("corrected",),
    "withdrawn": ("withdrawn",),
}
_DATE_COLUMNS = {"tabled": "date_tabled", "answered": "date_answered"}
_MEMBER_COLUMNS = {"asker": "asking_member_id", "answerer": "answering_member_id"}

_FACET_FIELDS = ("house", "status", "dept")
_MAX_LENGTH = 4000
_MAX_DEPTH = 32  # parentheses
# AND, OR and NOT levels: each becomes a level of parentheses (or a sub-select) in the SQL
# and FTS5 expressions, whose parsers give up past about 28 ("parser stack overflow").
_MAX_NESTING = 16
# Straight and curly double quotes (phones type curly ones; German „low-high“ ones too).
_QUOTES = '"\u201c\u201d\u201e\u201f'
_FIELD_RE = re.compile(r"([A-Za-z]+):(.*)", re.DOTALL)
_POSSESSIVE_END = re.compile(r"(?<=\w)['\u2019][sS]$")
_POSSESSIVE_IN = re.compile(r"(?<=\w)['\u2019][sS](?!\w)")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DATE_RE = re.compile(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?")
_NEAR_SLASH = re.compile(r"near/\d*", re.IGNORECASE)  # FTS3/4's `a NEAR/3 b`
_SURROGATE = re.compile("[\ud800-\udfff]")
# Shown escaped in messages: control characters (a terminal would act on them) and surrogates.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_STAR_INSIDE = "'*' only goes at the end of a word (like educ*)"
_NEAR_MESSAGE = 'NEAR(...) is not supported; use "a phrase" or list the words'
# Marks that other engines put straight after a term, with what they mean there.
_AFTER_TERM = {"^": "(boosting)", "~": "(fuzzy or proximity search)"}


def _one_line(text: str) -> str:
    """Text for a one-line message: whitespace runs (newlines too) as one space, and control
    characters escaped."""
    return _UNPRINTABLE.sub(lambda m: ascii(m.group())[1:-1], " ".join(text.split()))


class QuerySyntaxError(UsageError):
    """A malformed query. The message is one line that says what is wrong and where."""

    def __init__(self, reason: str, text: str, position: int | None = None) -> None:
        self.reason = reason
        self.text = text
        #: 1-based character position of the problem, or None when it is the whole query.
        self.position = position
        shown = _one_line(text[:200])
        where = "" if position is None else f" at character {position}"
        suffix = f": {shown}" if shown else ""
        super().__init__(f"malformed query: {_one_line(reason)}{where}{suffix}")


# --------------------------------------------------------------------------- the syntax tree


@dataclass(frozen=True)
class Text:
    """A word or phrase searched in the full text (or in one FTS column, for `heading:`)."""

    text: str  # what is searched for (a word's trailing possessive already removed)
    typed: str  # as typed, minus operators and quotes (prefixes keep their `*`)
    phrase: bool = False
    prefix: bool = False
    column: str | None = None
    pos: int = field(default=0, compare=False)  # 1-based, for messages


@dataclass(frozen=True)
class Field:
    """A non-text field filter: house, dept, asker, answerer or status."""

    name: str
    values: tuple[str, ...]  # canonical values (house/status) or lower-cased words (names)
    pos: int = field(default=0, compare=False)  # 1-based, for messages


@dataclass(frozen=True)
class DateRange:
    """`tabled:` or `answered:` between two days, both inclusive; None is an open end."""

    name: str
    start: date | None
    end: date | None
    pos: int = field(default=0, compare=False)  # 1-based, for messages


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    part: Node


Node: TypeAlias = Text | Field | DateRange | And | Or | Not


# --------------------------------------------------------------------------- lexing

_Kind = Literal["(", ")", "OR", "AND", "NOT", "-", "WORD", "PHRASE", "FIELD"]
_TERM_STARTS = frozenset({"(", "NOT", "-", "WORD", "PHRASE", "FIELD"})


@dataclass(frozen=True)
class _Token:
    kind: _Kind
    pos: int  # 1-based
    text: str = ""  # word or phrase text; for FIELD, the value
    prefix: bool = False
    name: str = ""  # FIELD: the field name as typed
    quoted: bool = False  # FIELD: the value was a "quoted phrase"
    value_pos: int = 0  # FIELD: where the value starts


def _separator(ch: str) -> bool:
    return ch.isspace() or ch in "()" or ch in _QUOTES


def _read_quoted(text: str, i: int) -> tuple[str, int]:
    """The phrase opening at text[i] and the index after its closing quote."""
    end = next((j for j in range(i + 1, len(text)) if text[j] in _QUOTES), -1)
    if end < 0:
        raise QuerySyntaxError("unclosed quote", text, i + 1)
    return text[i + 1 : end], end + 1


def _refuse_foreign_syntax(text: str, start: int, end: int) -> None:
    """Refuse marks from other engines' syntax in the unquoted run text[start:end]: `^` or
    `~` straight after a term (`word^2`, `"phrase"~5`, `(a b)^2`) and `?` inside a word."""
    for k in range(start, end):
        ch = text[k]
        before = text[k - 1] if k > 0 else ""
        if ch in _AFTER_TERM:
            # Inside a run the character before is a word's. At its start it is a separator:
            # a closing quote (phrases are read whole) or ")" ends a term; a space or "(" not.
            if before and (before.isalnum() or before in "*)" or before in _QUOTES):
                raise QuerySyntaxError(
                    f"'{ch}' {_AFTER_TERM[ch]} is not supported; remove it", text, k + 1
                )
        elif ch == "?" and start < k < end - 1 and before.isalnum() and text[k + 1].isalnum():
            raise QuerySyntaxError(
                "'?' is not a wildcard here; only '*' at the end of a word is (like educ*)",
                text,
                k + 1,
            )


def _refuse_near(text: str, word: str, pos: int, end: int) -> None:
    """Refuse FTS5's `NEAR(a b)` (the word straight before "(") and FTS3's `NEAR/3`: searched
    literally they would only find text that says "near"."""
    if word.lower() == "near" and end < len(text) and text[end] == "(":
        raise QuerySyntaxError(_NEAR_MESSAGE, text, pos)
    if _NEAR_SLASH.fullmatch(word):
        raise QuerySyntaxError(
            f"'{word}' (proximity search) is not supported; use \"a phrase\" or list the words",
            text,
            pos,
        )


def _lex(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    n = len(text)
    i = 0
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            tokens.append(_Token("(" if ch == "(" else ")", i + 1))
            i += 1
        elif ch == "-":
            following = text[i + 1] if i + 1 < n else ""
            if not following or following.isspace() or following == ")":
                raise QuerySyntaxError(
                    "'-' must be written straight before a word, \"phrase\", field or (group)",
                    text,
                    i + 1,
                )
            tokens.append(_Token("-", i + 1))
            i += 1
        elif ch in _QUOTES:
            phrase, j = _read_quoted(text, i)
            prefix = j < n and text[j] == "*"
            tokens.append(_Token("PHRASE", i + 1, phrase, prefix=prefix))
            i = j + 1 if prefix else j
        else:
            j = i
            while j < n and not _separator(text[j]):
                j += 1
            run = text[i:j]
            _refuse_foreign_syntax(text, i, j)
            field_match = _FIELD_RE.fullmatch(run)
            if field_match:
                name, value = field_match.group(1), field_match.group(2)
                value_pos = i + len(name) + 2
                quoted = prefix = False
                if value:
                    _refuse_near(text, value, value_pos, j)
                elif j < n and text[j] in _QUOTES:
                    value, j = _read_quoted(text, j)
                    quoted = True
                    if j < n and text[j] == "*":
                        prefix, j = True, j + 1
                tokens.append(
                    _Token("FIELD", i + 1, value, prefix, name, quoted, value_pos=value_pos)
                )
            elif run in ("OR", "AND", "NOT"):
                tokens.append(_Token(run, i + 1))  # type: ignore[arg-type]
            elif run.lower() == "or":  # people type `hospice or palliative` and mean OR
                tokens.append(_Token("OR", i + 1))
            else:
                _refuse_near(text, run, i + 1, j)
                tokens.append(_Token("WORD", i + 1, run))
            i = j
    return tokens


# --------------------------------------------------------------------------- parsing


def _has_alnum(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def _negate(node: Node) -> Node:
    return node.part if isinstance(node, Not) else Not(node)


def _too_deep(node: Node, depth: int) -> Text | Field | DateRange | None:
    """The first term inside more than _MAX_NESTING AND, OR and NOT levels, if any."""
    if isinstance(node, Text | Field | DateRange):
        return node if depth > _MAX_NESTING else None
    for part in (node.part,) if isinstance(node, Not) else node.parts:
        deep = _too_deep(part, depth + 1)
        if deep is not None:
            return deep
    return None


def _join(kind: type[And] | type[Or], parts: list[Node]) -> Node:
    flat: list[Node] = []
    for part in parts:
        flat.extend(part.parts if isinstance(part, kind) else (part,))
    return flat[0] if len(flat) == 1 else kind(tuple(flat))


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _lex(text)
        self.i = 0
        self.depth = 0

    def error(self, reason: str, pos: int | None) -> QuerySyntaxError:
        return QuerySyntaxError(reason, self.text, pos)

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def advance(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def starts_term(self) -> bool:
        token = self.peek()
        return token is not None and token.kind in _TERM_STARTS

    def parse(self) -> Node:
        if not self.tokens:
            raise self.error("the query is empty", None)
        node = self.parse_or()
        token = self.peek()
        if token is not None:  # only a ")" can stop parse_or early
            raise self.error("unmatched ')'", token.pos)
        deep = _too_deep(node, 0)
        if deep is not None:
            raise self.error("parentheses nested too deeply", deep.pos)
        return node

    def parse_or(self) -> Node:
        token = self.peek()
        if token is not None and token.kind in ("OR", "AND"):
            raise self.error(f"'{token.kind}' needs a search term before it", token.pos)
        parts = [self.parse_and()]
        while (token := self.peek()) is not None and token.kind == "OR":
            self.advance()
            if not self.starts_term():
                raise self.error("'OR' needs a search term after it", token.pos)
            parts.append(self.parse_and())
        return _join(Or, parts)

    def parse_and(self) -> Node:
        parts = [self.parse_unary()]
        while (token := self.peek()) is not None and token.kind not in (")", "OR"):
            if token.kind == "AND":
                self.advance()
                if not self.starts_term():
                    raise self.error("'AND' needs a search term after it", token.pos)
            parts.append(self.parse_unary())
        return _join(And, parts)

    def parse_unary(self) -> Node:
        negated = False  # a loop, not recursion: NOT NOT NOT ... a thousand times is one NOT
        token = self.advance()
        while token.kind in ("NOT", "-"):
            if not self.starts_term():
                if token.kind == "NOT":
                    raise self.error("'NOT' needs a search term after it", token.pos)
                raise self.error(
                    "'-' must be written straight before a word, \"phrase\", field or (group)",
                    token.pos,
                )
            negated = not negated
            token = self.advance()
        node = self.parse_primary(token)
        return _negate(node) if negated else node

    def parse_primary(self, token: _Token) -> Node:
        if token.kind == "(":
            closing = self.peek()
            if closing is None:
                raise self.error("unclosed '('", token.pos)
            if closing.kind == ")":
                raise self.error("empty parentheses", token.pos)
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise self.error("parentheses nested too deeply", token.pos)
            node = self.parse_or()
            closing = self.peek()
            if closing is None or closing.kind != ")":
                raise self.error("unclosed '('", token.pos)
            self.advance()
            self.depth -= 1
            return node
        if token.kind == "WORD":
            return self.word(token.text, token.pos)
        if token.kind == "PHRASE":
            return self.phrase(token.text, token.pos, token.prefix)
        if token.kind == "FIELD":
            return self.field(token)
        raise self.error("unmatched ')'", token.pos)

    def word(self, raw: str, pos: int, column: str | None = None) -> Text:
        prefix = raw.endswith("*")
        stem = raw.rstrip("*")
        if not stem:
            what = f"'{column}:*'" if column else "'*'"
            raise self.error(f"{what} must come straight after a word (like educ*)", pos)
        if "*" in stem:  # hos*pice would search for the two words "hos pice"
            raise self.error(_STAR_INSIDE, pos + stem.index("*"))
        text = _POSSESSIVE_END.sub("", stem)
        if not _has_alnum(text):
            raise self.error(f"'{stem}' has no letters or digits to search for", pos)
        return Text(text, stem + ("*" if prefix else ""), False, prefix, column, pos)

    def phrase(self, raw: str, pos: int, prefix: bool, column: str | None = None) -> Text:
        if not _has_alnum(raw):
            raise self.error("the quoted phrase has no letters or digits to search for", pos)
        typed = " ".join(raw.split())
        return Text(typed, typed + ("*" if prefix else ""), True, prefix, column, pos)

    def field(self, token: _Token) -> Node:
        typed_name = token.name
        name = _ALIASES.get(typed_name.lower(), typed_name.lower())
        if name not in FIELDS:
            close = difflib.get_close_matches(name, FIELDS, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise self.error(
                f"unknown field '{typed_name}' ({hint}fields: {', '.join(FIELDS)})", token.pos
            )
        value = token.text
        if not token.quoted and not value:
            group = self.peek()
            if group is not None and group.kind == "(" and group.pos == token.value_pos:
                raise self.error(
                    f"'{typed_name}:' takes a word or \"phrase\", not a (group): write "
                    f"({typed_name}:a OR {typed_name}:b)",
                    token.value_pos,
                )
            raise self.error(f"empty value for '{typed_name}:'", token.pos)
        if name == "heading":
            if token.quoted:
                return self.phrase(value, token.value_pos, token.prefix, column="heading")
            return self.word(value, token.value_pos, column="heading")
        if name in _DATE_COLUMNS:
            start, end = self.dates(typed_name, value, token.value_pos)
            return DateRange(name, start, end, token.pos)
        if name == "house":
            house = _HOUSES.get(value.strip().lower())
            if house is None:
                raise self.error(f"house must be commons or lords, not '{value}'", token.value_pos)
            return Field(name, (house,), token.pos)
        if name == "status":
            statuses = _STATUSES.get(value.strip().lower())
            if statuses is None:
                raise self.error(
                    f"status must be {', '.join(list(_STATUSES)[:-1])} or "
                    f"{list(_STATUSES)[-1]}, not '{value}'",
                    token.value_pos,
                )
            return Field(name, statuses, token.pos)
        # dept, asker, answerer: every word must appear in the name (case-insensitive).
        first = token.value_pos + (1 if token.quoted else 0)  # where the value's text starts
        for typed in re.finditer(r"\S+", value):
            inner = typed.group().rstrip("*").find("*")
            if inner >= 0:  # asker:sm*th or asker:*smith would look for a literal "*"
                raise self.error(_STAR_INSIDE, first + typed.start() + inner)
        words = tuple(dict.fromkeys(w.rstrip("*").lower() for w in value.split() if _has_alnum(w)))
        if not words:
            raise self.error(f"empty value for '{typed_name}:'", token.value_pos)
        return Field(name, words, token.pos)

    def dates(self, name: str, value: str, pos: int) -> tuple[date | None, date | None]:
        value = value.strip()
        try:
            if ".." in value:
                first, _, last = value.partition("..")
                if not first and not last:
                    raise self.error(f"'{name}:..' needs a date on at least one side", pos)
                start = self.day_span(name, first, pos)[0] if first else None
                end = self.day_span(name, last, pos + len(first) + 2)[1] if last else None
                if start is not None and end is not None and end < start:
                    raise self.error(
                        f"date range {value} ends before it starts (write it earliest first)",
                        pos,
                    )
                return start, end
            for op in (">=", "<=", ">", "<", "="):
                if value.startswith(op):
                    first_day, last_day = self.day_span(name, value[len(op) :], pos + len(op))
                    if op == ">=":
                        return first_day, None
                    if op == ">":
                        return last_day + timedelta(days=1), None
                    if op == "<=":
                        return None, last_day
                    if op == "<":
                        return None, first_day - timedelta(days=1)
                    return first_day, last_day
            return self.day_span(name, value, pos)
        except OverflowError:
            raise self.error(f"date out of range in '{name}:{value}'", pos) from None

    def day_span(self, name: str, value: str, pos: int) -> tuple[date, date]:
        """The first and last day that YYYY, YYYY-MM or YYYY-MM-DD stands for."""
        match = _DATE_RE.fullmatch(value)
        if not match:
            raise self.error(
                f"bad date '{value}' for '{name}:' (use YYYY, YYYY-MM or YYYY-MM-DD, "
                "a range like 2024-01-01..2024-03-31, or >=, >, <=, <)",
                pos,
            )
        year, month, day = match.groups()
        try:
            if day is not None:
                one = date(int(year), int(month), int(day))
                return one, one
            if month is not None:
                first = date(int(year), int(month), 1)
                following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
                return first, following - timedelta(days=1)
            return date(int(year), 1, 1), date(int(year), 12, 31)
        except ValueError as exc:
            raise self.error(f"bad date '{value}' for '{name}:' ({exc})", pos) from None


def parse(text: str) -> Node:
    """Parse a query into its syntax tree, or raise QuerySyntaxError."""
    if len(text) > _MAX_LENGTH:
        raise QuerySyntaxError(
            f"the query is too long ({len(text)} characters; the limit is {_MAX_LENGTH})",
            text[:80] + "...",
        )
    surrogate = _SURROGATE.search(text)
    if surrogate is not None:  # undecodable input (surrogateescape): SQLite cannot take it
        raise QuerySyntaxError(
            "a character that is not valid text (is the input UTF-8?)", text, surrogate.start() + 1
        )
    # NUL is a space: inside an FTS5 string SQLite would take it for the end of the query.
    return _Parser(text.replace("\x00", " ")).parse()


# --------------------------------------------------------------------------- stems of prefixes

# FTS5 stems prefix query terms too: `educat*` becomes the prefix "educat", but the index
# holds "educ" for education/educational/educate, so it would match nothing. To behave as a
# user expects, a prefix is expanded to the stems of the words it could begin (educat+ion ->
# educ). The stems are SQLite's own: its porter tokenizer run on the candidate words in an
# in-memory FTS5 table, read back through fts5vocab.

_stemmer_lock = threading.Lock()


@lru_cache(maxsize=1)
def _stemmer() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    conn.execute("CREATE VIRTUAL TABLE words USING fts5(word, tokenize='porter unicode61')")
    conn.execute("CREATE VIRTUAL TABLE stems USING fts5vocab(words, 'instance')")
    return conn


def stems(words: Iterable[str]) -> dict[str, str]:
    """Each word (ASCII letters and digits) as SQLite's porter tokenizer stems it."""
    todo = sorted(set(words))
    if not todo:
        return {}
    with _stemmer_lock:
        conn = _stemmer()
        conn.execute("DELETE FROM words")
        conn.executemany("INSERT INTO words (rowid, word) VALUES (?, ?)", enumerate(todo, 1))
        found = dict(conn.execute("SELECT doc, term FROM stems"))
    return {w: found.get(i, w) for i, w in enumerate(todo, 1)}


_SUFFIXES = (
    "s", "es", "e", "ed", "ing", "ings", "er", "ers", "y", "ies", "ly", "al", "als", "ally",
    "ality", "ion", "ions", "ional", "ation", "ations", "ational", "ate", "ated", "ates",
    "ating", "ator", "ators", "ative", "ive", "ives", "ively", "iveness", "ivity", "ity",
    "ities", "ism", "isms", "ist", "ists", "ise", "ised", "ises", "ising", "isation",
    "isations", "ize", "ized", "izes", "izing", "ization", "izations", "ement", "ements",
    "ment", "ments", "ness", "ful", "fully", "fulness", "ous", "ously", "ousness", "ence",
    "ences", "ent", "ently", "ency", "ance", "ances", "ant", "ants", "ancy", "ic", "ics",
    "ical", "ically", "icate", "icity", "able", "ably", "ability", "abilities", "ible", "ibly",
    "ibility", "logy", "logies", "logical", "ery", "eries",
)  # fmt: skip
# A prefix may stop part-way into a suffix (educat|ion): each (typed part, rest) split of each
# suffix, so that only the typed part may be lost from the prefix (vaccin|g is not "vac").
_SPLITS = tuple(sorted({(s[:k], s[k:]) for s in _SUFFIXES for k in range(len(s) + 1)}))
_MAX_EXPANSIONS = 6


def _prefix_stems(prefix: str) -> list[str]:
    """Strings to search as FTS5 prefixes so that `prefix*` finds the words it begins.

    FTS5 stems each prefix query term itself, so what is really searched is the stem of
    candidate*; keep the candidates whose searched form is not already covered by a shorter
    one.
    """
    word = prefix.lower()
    if not re.fullmatch(r"[a-z0-9]+", word):
        return [prefix]
    splits = [(t, r) for t, r in _SPLITS if word.endswith(t) and len(word) > len(t)]
    stemmed = stems(word + rest for _, rest in splits)
    candidates = {word}
    for typed, rest in splits:
        candidate = stemmed[word + rest]
        if candidate.startswith(word[: len(word) - len(typed)]):
            candidates.add(candidate)
    forms = stems(candidates)
    searched = sorted(((forms[c], c) for c in candidates), key=lambda p: (len(p[0]), p))
    kept: list[tuple[str, str]] = []
    for form, candidate in searched:
        if not any(form.startswith(other) for other, _ in kept):
            kept.append((form, candidate))
    return [candidate for _, candidate in kept[:_MAX_EXPANSIONS]]


# --------------------------------------------------------------------------- compiling


def _fts_string(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


@dataclass(frozen=True)
class CompiledQuery:
    """A query compiled for the tables `question q`, `member`, `answering_body` and FTS5.

    Run it as ``SELECT ... FROM question q JOIN question_fts ON question_fts.rowid = q.id
    WHERE question_fts MATCH :match AND (<where>)`` when `match` is not None (binding
    ``{**params, "match": match}``), else ``... FROM question q WHERE <where>``; or use
    `sql()` for one condition that needs no join.
    """

    match: str | None  # FTS5 MATCH expression for the top-level text, or None
    where: str  # SQL over `question q`; "1" when there is nothing to filter
    params: dict[str, Any]  # the named parameters of `where`
    terms: tuple[str, ...]  # positive words/phrases as typed (for highlighting, "matched")
    fts_table: str = "question_fts"
    # Top-level filters every match must pass, which the index's facets column can narrow
    # (pqwatch.search.facets); `where` still holds them all.
    facets: tuple[Field | DateRange, ...] = ()

    # The prefixes searched (`educ*`, or the last word of `"special educ"*`), as typed but
    # without the `*`. FTS5 expands a prefix whole, every word it begins merged, each time
    # the match runs, even to test one row.
    prefixes: tuple[str, ...] = ()

    def sql(self) -> tuple[str, dict[str, Any]]:
        """One WHERE condition over `question q` and its parameters, match included."""
        if self.match is None:
            return self.where, dict(self.params)
        table = self.fts_table
        condition = f"q.id IN (SELECT rowid FROM {table} WHERE {table} MATCH :match)"
        if self.where != "1":
            condition = f"{condition} AND ({self.where})"
        return condition, {**self.params, "match": self.match}


class _Compiler:
    def __init__(self, fts_table: str) -> None:
        self.fts_table = fts_table
        self.params: dict[str, Any] = {}
        self.prefixes: list[str] = []

    def param(self, value: Any) -> str:
        name = f"p{len(self.params) + 1}"
        self.params[name] = value
        return f":{name}"

    def fts_select(self, expression: str) -> str:
        table = self.fts_table
        return f"SELECT rowid FROM {table} WHERE {table} MATCH {self.param(scoped(expression))}"

    # FTS5 expressions. Each returned expression is atomic (safe to combine without
    # parentheses), or None when the node cannot be a positive FTS5 query on its own
    # (a bare NOT, an OR with a negative branch, anything with a non-text field).

    def text(self, node: Text) -> str:
        if node.prefix:
            self.prefixes.append((node.text.split() or [node.text])[-1])
        variants = [node.text]
        if node.phrase and _POSSESSIVE_IN.search(node.text):
            # "children's hospice" also finds "childrens hospice"/"children hospice" text.
            variants.append(_POSSESSIVE_IN.sub("", node.text))
        alternatives: list[str] = []
        for variant in variants:
            if node.prefix and not node.phrase:
                alternatives += [_fts_string(s) + "*" for s in _prefix_stems(variant)]
            else:
                alternatives.append(_fts_string(variant) + ("*" if node.prefix else ""))
        expression = alternatives[0] if len(alternatives) == 1 else f"({' OR '.join(alternatives)})"
        if node.column is not None:
            return f"({node.column} : {expression})"
        return expression

    def fts(self, node: Node) -> str | None:
        if isinstance(node, Text):
            return self.text(node)
        if isinstance(node, Or):
            parts = [self.fts(part) for part in node.parts]
            if any(part is None for part in parts):
                return None
            return "(" + " OR ".join(p for p in parts if p is not None) + ")"
        if isinstance(node, And):
            positives, negatives, others = self.split(node.parts)
            if others or not positives:
                return None
            return f"({self.combine(positives, negatives)})"
        return None

    def split(self, parts: tuple[Node, ...]) -> tuple[list[str], list[str], list[Node]]:
        """The FTS5 positives, the FTS5 negatives and the rest of an AND's parts."""
        positives: list[str] = []
        negatives: list[str] = []
        others: list[Node] = []
        for part in parts:
            expression = self.fts(part)
            if expression is not None:
                positives.append(expression)
                continue
            if isinstance(part, Not):
                expression = self.fts(part.part)
                if expression is not None:
                    negatives.append(expression)
                    continue
            others.append(part)
        return positives, negatives, others

    @staticmethod
    def combine(positives: list[str], negatives: list[str]) -> str:
        """`(a AND b) NOT (c OR d)`: FTS5's NOT is binary, so negatives hang off the positives."""
        expression = positives[0] if len(positives) == 1 else f"({' AND '.join(positives)})"
        if negatives:
            excluded = negatives[0] if len(negatives) == 1 else f"({' OR '.join(negatives)})"
            expression = f"{expression} NOT {excluded}"
        return expression

    def conjunction(self, parts: tuple[Node, ...]) -> tuple[str | None, list[str]]:
        """An AND as one FTS5 expression for its text (if any is positive) plus SQL parts."""
        positives, negatives, others = self.split(parts)
        match = None
        conditions: list[str] = []
        if positives:
            match = self.combine(positives, negatives)
        elif negatives:
            excluded = negatives[0] if len(negatives) == 1 else f"({' OR '.join(negatives)})"
            conditions.append(f"q.id NOT IN ({self.fts_select(excluded)})")
        conditions += [self.sql(part) for part in others]
        return match, conditions

    # SQL conditions over `question q`. Each one is two-valued (never NULL), so NOT of it
    # is what a user means: -answered:2024 includes questions not answered at all.

    def sql(self, node: Node) -> str:
        expression = self.fts(node)
        if expression is not None:
            return f"q.id IN ({self.fts_select(expression)})"
        if isinstance(node, Not):
            inner = self.fts(node.part)
            if inner is not None:
                return f"q.id NOT IN ({self.fts_select(inner)})"
            return f"NOT {self.sql(node.part)}"
        if isinstance(node, And):
            match, conditions = self.conjunction(node.parts)
            if match is not None:
                conditions.insert(0, f"q.id IN ({self.fts_select(match)})")
            return "(" + " AND ".join(conditions) + ")"
        if isinstance(node, Or):
            texts = [e for e in (self.fts(part) for part in node.parts) if e is not None]
            conditions = []
            if texts:
                joined = texts[0] if len(texts) == 1 else f"({' OR '.join(texts)})"
                conditions.append(f"q.id IN ({self.fts_select(joined)})")
            conditions += [self.sql(part) for part in node.parts if self.fts(part) is None]
            return "(" + " OR ".join(conditions) + ")"
        if isinstance(node, DateRange):
            column = f"q.{_DATE_COLUMNS[node.name]}"
            conditions = [f"{column} IS NOT NULL"]
            if node.start is not None:
                conditions.append(f"{column} >= {self.param(node.start.isoformat())}")
            if node.end is not None:
                conditions.append(f"{column} <= {self.param(node.end.isoformat())}")
            return "(" + " AND ".join(conditions) + ")"
        if isinstance(node, Field):
            return self.field(node)
        raise AssertionError(f"unexpected node {node!r}")  # pragma: no cover

    def field(self, node: Field) -> str:
        if node.name == "house":
            # True for about half the archive: without the hint SQLite walks every Commons
            # question by house rather than, say, one month by date_answered (550 ms, not 2).
            return f"likelihood(q.house = {self.param(node.values[0])}, 0.5)"
        if node.name == "status":
            return f"(q.status IN ({', '.join(self.param(v) for v in node.values)}))"
        if node.name == "dept":
            table, alias, column = "answering_body", "b", "q.answering_body_id"
        else:
            table, alias, column = "member", "m", f"q.{_MEMBER_COLUMNS[node.name]}"
        words = " AND ".join(
            f"instr(lower({alias}.name), {self.param(word)}) > 0" for word in node.values
        )
        # `column IN (ids)` walks the column's index (dept:health 1.5 s -> 0.1 s on 600,000
        # questions); EXISTS tested every question. IS NOT NULL keeps NOT dept:x true for a
        # question with no department, as it was.
        return (
            f"({column} IS NOT NULL AND "
            f"{column} IN (SELECT {alias}.id FROM {table} {alias} WHERE {words}))"
        )


def _terms(node: Node, positive: bool, out: dict[str, None]) -> None:
    if isinstance(node, Text):
        if positive:
            out[node.typed] = None
    elif isinstance(node, Not):
        _terms(node.part, not positive, out)
    elif isinstance(node, And | Or):
        for part in node.parts:
            _terms(part, positive, out)


# The columns a user's words are looked for in. The archive's index has a fourth column of
# made-up filter words (pqwatch.search.facets) that words and prefixes must never reach:
# `sun*` would otherwise find every unanswered question through its "sunanswered".
TEXT_COLUMNS = "{heading question answer}"
_SCOPE = f"{TEXT_COLUMNS} : ("


def scoped(expression: str) -> str:
    """An FTS5 expression limited to the text columns (a column filter inside it, such as
    `heading : ...`, narrows further)."""
    return f"{_SCOPE}{expression})"


def unscoped(expression: str) -> str:
    """The expression `scoped` was given (for readers of the text columns alone)."""
    if expression.startswith(_SCOPE) and expression.endswith(")"):
        return expression[len(_SCOPE) : -1]
    return expression


def compile_query(text: str, *, fts_table: str = "question_fts") -> CompiledQuery:
    """Compile a query for SQLite, or raise QuerySyntaxError (a UsageError, exit code 2)."""
    if not _IDENTIFIER.fullmatch(fts_table):
        raise ValueError(f"not an SQL identifier: {fts_table!r}")
    node = parse(text)
    compiler = _Compiler(fts_table)
    match, conditions = compiler.conjunction(node.parts if isinstance(node, And) else (node,))
    terms: dict[str, None] = {}
    _terms(node, True, terms)
    parts = node.parts if isinstance(node, And) else (node,)
    return CompiledQuery(
        match=None if match is None else scoped(match),
        where=" AND ".join(conditions) or "1",
        params=compiler.params,
        terms=tuple(terms),
        fts_table=fts_table,
        prefixes=tuple(dict.fromkeys(compiler.prefixes)),
        facets=tuple(
            p
            for p in parts
            if isinstance(p, DateRange) or (isinstance(p, Field) and p.name in _FACET_FIELDS)
        ),
    )
