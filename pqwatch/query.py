"""The query language shared by watches, `pqwatch search` and feed filters: its syntax tree
and parser (pqwatch.store.sqlite.compile turns the tree into FTS5 and SQL).

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
    parliament:scotland (westminster, scotland, wales, ni)  type:statement (question, foi)
    authority:"leicester city council" (FOI; the same as dept:)  status:successful|overdue

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
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import Literal, TypeAlias

from pqwatch.errors import UsageError

__all__ = [
    "FIELDS",
    "And",
    "DateRange",
    "Field",
    "Node",
    "Not",
    "Or",
    "STATUS_FILTERS",
    "QuerySyntaxError",
    "Text",
    "filter_for",
    "narrow",
    "parse",
]

#: The field filters, in the order the error messages list them.
FIELDS = (
    "parliament", "type", "house", "dept", "asker", "answerer", "heading", "status", "tabled",
    "answered",
)  # fmt: skip
_ALIASES = {"department": "dept", "kind": "type", "authority": "dept"}
# The names people give each parliament; the value is what the archive stores.
_PARLIAMENTS = {
    "westminster": "westminster", "uk": "westminster",
    "scotland": "scotland", "scottish": "scotland", "holyrood": "scotland",
    "wales": "wales", "senedd": "wales", "welsh": "wales",
    "ni": "ni", "northern-ireland": "ni", "stormont": "ni",
}  # fmt: skip
_TYPES = {"question": "question", "questions": "question", "statement": "statement",
          "statements": "statement", "foi": "foi"}  # fmt: skip

_HOUSES = {"commons": "Commons", "lords": "Lords"}
# A corrected question has been answered, so `status:answered` includes it.
_STATUSES: dict[str, tuple[str, ...]] = {
    "answered": ("answered", "corrected"),
    "holding": ("holding",),
    "unanswered": ("unanswered",),
    "corrected": ("corrected",),
    "withdrawn": ("withdrawn",),
    "made": ("made",),  # written statements
    # FOI requests: WhatDoTheyKnow's states (its "Refused" is stored as rejected).
    "waiting": ("waiting_response", "waiting_clarification"),
    "successful": ("successful",),
    "partially_successful": ("partially_successful",),
    "not_held": ("not_held",),
    "refused": ("rejected",),
    "rejected": ("rejected",),
    "internal_review": ("internal_review",),
    # Waiting for a response past its due date (20 working days): worked out on the day.
    "overdue": ("waiting_response",),
}
_DATE_FIELDS = ("tabled", "answered")
#: Each `status:` value with the stored statuses it stands for, as a list of statuses to
#: narrow by offers them: no alias twice (`rejected` is `refused`), no `overdue` (a date).
STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    name: stored for name, stored in _STATUSES.items() if name not in ("rejected", "overdue")
}

_MAX_LENGTH = 4000
_MAX_DEPTH = 32  # parentheses
# AND, OR and NOT levels: each becomes a level of parentheses (or a sub-select) in the SQL
# and FTS5 expressions, whose parsers give up past about 28 ("parser stack overflow").
_MAX_NESTING = 16
# Straight and curly double quotes (phones type curly ones; German „low-high“ ones too).
_QUOTES = '"\u201c\u201d\u201e\u201f'
_FIELD_RE = re.compile(r"([A-Za-z]+):(.*)", re.DOTALL)
_POSSESSIVE_END = re.compile(r"(?<=\w)['\u2019][sS]$")
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
    """A non-text field filter: parliament, type, house, dept, asker, answerer or status."""

    name: str
    values: tuple[str, ...]  # canonical values (house/status) or lower-cased words (names)
    pos: int = field(default=0, compare=False)  # 1-based, for messages


@dataclass(frozen=True)
class DateRange:
    """`tabled:` or `answered:` between two days, both inclusive; None is an open end (and
    "due", the answer's due date, for status:overdue)."""

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
        if name in _DATE_FIELDS:
            start, end = self.dates(typed_name, value, token.value_pos)
            return DateRange(name, start, end, token.pos)
        if name in ("parliament", "type"):
            known = _PARLIAMENTS if name == "parliament" else _TYPES
            chosen = known.get(value.strip().lower())
            if chosen is None:
                choices = (
                    "westminster, scotland, wales or ni"
                    if name == "parliament"
                    else ("question, statement or foi")
                )
                raise self.error(f"{name} must be {choices}, not '{value}'", token.value_pos)
            return Field(name, (chosen,), token.pos)
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
            if value.strip().lower() == "overdue":
                yesterday = date.today() - timedelta(days=1)
                return And((Field(name, statuses, token.pos), DateRange("due", None, yesterday)))
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


@lru_cache(maxsize=4096)  # a search page asks for the same few dozen each time
def filter_for(name: str, value: str) -> str | None:
    """The filter that keeps the items whose `name` is `value` as the archive stores it
    (parliament "scotland", type "statement", house "Lords", a department's name, a year or
    day for tabled/answered), written as a person would type it: `house:lords`,
    `dept:"Department of Health and Social Care"`. None when the language has no such filter.

    A name filter keeps every item whose name holds all of its words, so it may keep other
    names too (dept:"Cabinet Office" finds "Cabinet Office and HM Treasury" as well)."""
    if name in ("dept", "asker", "answerer"):
        # Quotes cannot be escaped inside a quoted value: they go (every word stays).
        words = "".join(" " if ch in _QUOTES else ch for ch in value).split()
        text = f'{name}:"{" ".join(words)}"'
    elif name == "parliament" and value in _PARLIAMENTS.values():
        text = f"parliament:{value}"
    elif name == "type" and value in _TYPES.values():
        text = f"type:{value}"
    elif name == "house" and value in _HOUSES.values():
        text = f"house:{value.lower()}"
    elif name == "status" and value in STATUS_FILTERS:
        text = f"status:{value}"
    elif name in _DATE_FIELDS and _DATE_RE.fullmatch(value):
        text = f"{name}:{value}"
    else:
        return None
    try:
        parse(text)
    except QuerySyntaxError:  # a name with no letters, or with a `*` inside a word
        return None
    return text


def narrow(query: str, condition: str) -> str | None:
    """`query` with a filter every match must also pass, as text a person could have typed:
    `school house:lords`, or `(hospice OR palliative) house:lords` where the bare filter
    would bind to the last word of an OR. The query as it is when it has that filter at its
    top level already; None when either does not parse, or the two together would not."""
    try:
        node, extra = parse(query), parse(condition)
    except QuerySyntaxError:
        return None
    if extra in (node.parts if isinstance(node, And) else (node,)):
        return query
    expected = _join(And, [node, extra])
    query = query.strip()
    for text in (f"{query} {condition}", f"({query}) {condition}"):
        try:
            if parse(text) == expected:
                return text
        except QuerySyntaxError:  # too long, or nested too deeply with the parentheses
            continue
    return None


def alaveteli_search(text: str) -> str | None:
    """A query's words as an Alaveteli (Xapian) search, for following the same topic on
    WhatDoTheyKnow: words, "phrases", prefixes*, OR, -exclusions and groups carry over;
    filters (house:, dept:, dates...) have no counterpart there and are left out. None when
    nothing searchable is left, or the query does not parse."""
    try:
        node = parse(text)
    except QuerySyntaxError:
        return None

    def show(n: Node) -> str:
        if isinstance(n, Text):
            if n.column is not None:
                return ""
            word = f'"{n.text}"' if n.phrase else n.text
            return word + ("*" if n.prefix else "")
        if isinstance(n, Not):  # Xapian's -term and -"phrase"; it has no -(group)
            inner = show(n.part)
            return f"-{inner}" if inner and isinstance(n.part, Text) else ""
        if isinstance(n, And | Or):
            parts = [p for p in (show(part) for part in n.parts) if p]
            if isinstance(n, Or):
                # An OR with a filter in it cannot be searched without that filter.
                if len(parts) < len(n.parts):
                    return ""
                return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"
            return " ".join(parts)
        return ""  # Field, DateRange

    found = show(node).strip()
    return found if any(c.isalnum() for c in found.replace("-", "")) else None
