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
from datetime import date
from functools import lru_cache
from typing import Any

from pqwatch.query import DateRange, Field, Text
from pqwatch.store.searching import QueryCompiler, compile_top_level, suffix_splits

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
    splits = suffix_splits(word)
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


class _Compiler(QueryCompiler):
    """FTS5 expressions for the words, tested in SQL as `q.id IN (SELECT rowid ... MATCH)`."""

    OR = " OR "
    CONTAINS = "instr"

    def __init__(self, fts_table: str) -> None:
        super().__init__()
        self.fts_table = fts_table

    def placeholder(self, name: str) -> str:
        return placeholder(name)

    def day(self, value: date) -> str:
        return bind_day(value)

    def fts_select(self, expression: str) -> str:
        table = self.fts_table
        return f"SELECT rowid FROM {table} WHERE {table} MATCH {self.param(scoped(expression))}"

    def text(self, node: Text) -> str:
        alternatives: list[str] = []
        for variant in self.searched(node):
            if node.prefix and not node.phrase:
                alternatives += [_fts_string(s) + "*" for s in _prefix_stems(variant)]
            else:
                alternatives.append(_fts_string(variant) + ("*" if node.prefix else ""))
        expression = self.either(alternatives)
        if node.column is not None:
            return f"({node.column} : {expression})"
        return expression

    def combine(self, positives: list[str], negatives: list[str]) -> str:
        """`(a AND b) NOT (c OR d)`: FTS5's NOT is binary, so negatives hang off the positives."""
        expression = positives[0] if len(positives) == 1 else f"({' AND '.join(positives)})"
        if negatives:
            expression = f"{expression} NOT {self.either(negatives)}"
        return expression

    def all_of(self, positives: list[str], negatives: list[str]) -> str:
        return f"({self.combine(positives, negatives)})"

    def matching(self, expression: str) -> str:
        return f"q.id IN ({self.fts_select(expression)})"

    def excluding(self, expression: str) -> str:
        return f"q.id NOT IN ({self.fts_select(expression)})"

    def negate(self, condition: str) -> str:
        return f"NOT {condition}"

    def house(self, value: str) -> str:
        # True for about half the archive: without the hint SQLite walks every Commons
        # question by house rather than, say, one month by date_answered (550 ms, not 2).
        return f"likelihood(q.house = {value}, 0.5)"


def placeholder(name: str) -> str:
    """A named parameter as sqlite3 (and SQLAlchemy's text()) takes it."""
    return f":{name}"


def bind_day(value: date) -> str:
    """A date as the archive stores it: ISO text."""
    return value.isoformat()


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
    compiler = _Compiler(fts_table)
    top = compile_top_level(compiler, text)
    return CompiledQuery(
        match=None if top.match is None else scoped(top.match),
        where=" AND ".join(top.conditions) or "1",
        params=compiler.params,
        terms=top.terms,
        fts_table=fts_table,
        prefixes=top.prefixes,
        facets=top.facets,
    )
