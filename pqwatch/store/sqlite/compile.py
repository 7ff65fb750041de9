"""The query language compiled for SQLite: an FTS5 MATCH expression for the words (scoped to
heading, question and answer; the facets column narrows filters) and SQL conditions for the
filters, every value a bound parameter. User text never reaches SQL or FTS5 syntax directly:
every word or phrase becomes a double-quoted FTS5 string."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pqwatch.query import (
    And,
    DateRange,
    Field,
    Node,
    Not,
    Or,
    Text,
    parse,
)

_POSSESSIVE_IN = re.compile(r"(?<=\w)['\u2019][sS](?!\w)")
_DATE_COLUMNS = {
    "tabled": "date_tabled", "answered": "date_answered", "due": "date_for_answer",
}  # fmt: skip
_MEMBER_COLUMNS = {"asker": "asking_member_id", "answerer": "answering_member_id"}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FACET_FIELDS = ("house", "status", "dept")


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
    # (pqwatch.store.sqlite.facets); `where` still holds them all.
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
        if node.name in ("parliament", "type"):
            column = "q.parliament" if node.name == "parliament" else "q.kind"
            return f"({column} = {self.param(node.values[0])})"
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
# made-up filter words (pqwatch.store.sqlite.facets) that words and prefixes must never reach:
# `sun*` would otherwise find every unanswered question through its "sunanswered".
TEXT_COLUMNS = "{heading question answer}"
_SCOPE = f"{TEXT_COLUMNS} : ("


def scoped(expression: str) -> str:
    """An FTS5 expression limited to the text columns (a column filter inside it, such as
    `heading : ...`, narrows further)."""
    return f"{_SCOPE}{expression})"


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
