"""The query language compiled for PostgreSQL: one tsquery for the words, tested against the
full-text column question.search_vector, and SQL conditions for the filters, with the same
meaning as pqwatch.store.sqlite.compile gives them on FTS5.

User text never becomes tsquery or SQL syntax: every value is a bound parameter (psycopg's
``%(name)s``), and each word or phrase is one quoted lexeme handed to ``to_tsquery``, which
stems it with the 'english' configuration and joins its words with ``<->``. The tsqueries of
the words are combined in SQL with the ``&&``, ``||``, ``!!`` and ``<->`` operators.

The index holds the heading, question and answer as weights A, B and C and the facet words
(pqwatch.store.sqlite.facets) as D. A lexeme that could be a facet word is limited to ``:ABC``
(every lexeme of ``heading:`` to ``:A``): `sun*` must not find every unanswered question
through its ``sunanswered``. Other lexemes go without weights, because a weight makes the GIN
index recheck every match against its row's stored tsvector: counting `department`'s 383,462
matches on 600,000 questions took 1.4 s with ``:ABC`` (PERFORMANCE.md, issue 19). Which could
be one (_FACET_WORDS, _DIGIT_FACET):

- A word: 'english' keeps a word with digits as it is, so `d17` or `ty2024` is one; it stems
  the others (Snowball), which keeps a word's start and rewrites at most its last four letters
  (_STEM_REPLACEMENTS), so `hlords`, `held` (a status's second word: "snot_held") or
  `parliament` ("hscottish parliament") could be, and `health` or `sunday` could not.
- A prefix: each of its stems, worked out in the query, if a facet word begins with it
  (`sun*`, `d1*`, `am2024*`, `hco*`; not `dement*` or `health*`).

Where PostgreSQL's index differs from FTS5's, a query is adapted to find what FTS5 finds:

- Stop words: 'english' leaves them out of the index (keeping their positions) and FTS5 keeps
  them. A word that is a stop word is left out of the query (an empty tsquery, which the
  tsquery operators drop); in a phrase it is a gap of one word, so "end of life" finds "end of
  life" (and "end to life"). A query whose words are all stop words finds nothing.
- Hyphens and other marks inside a word: PostgreSQL's parser keeps `covid-19` as "covid" and
  "-19", `care-home` as "care-home", "care" and "home"; FTS5 reads both as two words. A word or
  phrase with such marks is also searched with the marks as spaces, so `covid-19` finds "covid
  19" too, as on SQLite.
- Accents: FTS5 removes them, 'english' does not. A word with accents is also searched
  without them (`café` finds "cafe"), but `cafe` cannot find "café".
- Prefixes: both stem the index, so `educat*` is expanded to the stems of the words it could
  begin (educat+ion -> educ), as on SQLite; the stems are PostgreSQL's own (`ts_lexize` with
  'english_stem'), worked out in the query itself, once per query.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from itertools import product
from typing import Any, get_args

from pqwatch.config import House
from pqwatch.query import STATUS_FILTERS, DateRange, Field, Text
from pqwatch.store.searching import QueryCompiler, compile_top_level, suffix_splits
from pqwatch.store.sqlite.facets import facet_text
from pqwatch.types import FOI_STATES, PARLIAMENTS

__all__ = [
    "CompiledQuery",
    "bind_day",
    "compile_query",
    "lexeme",
    "may_be_facet_word",
    "placeholder",
]

# The index's text weights: the facet words (D) are never searched for a user's words.
TEXT_WEIGHTS = "ABC"
_HEADING_WEIGHT = "A"
# What FTS5's unicode61 tokenizer keeps of a word: runs of letters and digits. PostgreSQL's
# parser splits the facet words the same way ('simple': "snot_held" is snot and held).
_TOKEN = re.compile(r"[^\W_]+")
_ASCII_WORD = re.compile(r"[a-z0-9]+")

# The facet words with digits (department, years and months tabled and answered), and the
# starts of them (what a prefix that could begin one looks like).
_DIGIT_FACET = re.compile(r"d[0-9]+|[ta](?:y[0-9]{4}|m[0-9]{6})")
_DIGIT_FACET_START = r"^(d[0-9]*|[ta](y[0-9]{0,4}|m[0-9]{0,6})?)$"
# The others: "h" and a House, "s" and a status, split into words, as facet_text writes them
# for every House the sources store (Westminster's two and each other parliament's name) and
# every status (the query language's and WhatDoTheyKnow's states).
_HOUSE_NAMES = (*get_args(House), *PARLIAMENTS.values())
_STATUSES = (*(s for stored in STATUS_FILTERS.values() for s in stored), *FOI_STATES)
_FACET_WORDS = frozenset(
    w
    for house, status in product(_HOUSE_NAMES, _STATUSES)
    for w in _TOKEN.findall(facet_text(house, status, None, date(2000, 1, 1), None))
    if not _DIGIT_FACET.fullmatch(w)
)
# What Snowball's English stemmer can put at the end of a stem in place of what it took off
# (izer -> ize, happy -> happi, dying -> die...). A word can stem to a facet word only if it
# begins with the facet word less the longest start of one of these that it ends in.
_STEM_REPLACEMENTS = (
    "e", "i", "y", "ie", "ee", "ss", "al", "ic", "og", "ate", "ent", "ize", "ful", "ous", "ive",
    "ble", "tion", "ence", "ance", "able", "less",
)  # fmt: skip


def _stem_start(word: str) -> str:
    rewritten = [k for e in _STEM_REPLACEMENTS for k in range(len(e) + 1) if word.endswith(e[:k])]
    return word[: len(word) - max(rewritten)]


_FACET_STEM_STARTS = tuple(sorted({_stem_start(w) for w in _FACET_WORDS}))


def may_be_facet_word(text: str) -> bool:
    """Whether 'english' could make a word of `text` one of the facet words (then it is
    searched with weights): a word with digits as it is, any other as a stem."""
    for token in _TOKEN.findall(text.lower()):
        if any(ch.isdigit() for ch in token):
            if _DIGIT_FACET.fullmatch(token) or token in _FACET_WORDS:
                return True
        elif token.startswith(_FACET_STEM_STARTS):
            return True
    return False


def lexeme(text: str, weights: str = "", prefix: bool = False) -> str:
    """`text` as one quoted tsquery lexeme, for to_tsquery: quotes and backslashes doubled,
    so nothing in it is an operator (to_tsquery still splits it into words, as a phrase)."""
    quoted = "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"
    if prefix:
        return f"{quoted}:*{weights}"
    return f"{quoted}:{weights}" if weights else quoted


def _without_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@dataclass(frozen=True)
class CompiledQuery:
    """A query compiled for PostgreSQL, over the table `question q` (and `member`,
    `answering_body` in sub-selects).

    Run it as ``SELECT ... FROM question q WHERE <where>`` with `params` (psycopg's
    ``%(name)s`` placeholders, names ``p1``, ``p2`` ...): `where` holds the full-text test
    ``q.search_vector @@ (<tsquery>)`` when the query has words at its top level, and the
    filters. `tsquery` is that tsquery expression (its parameters are in `params` too), for
    ts_rank and ts_headline; `conditions` is `where` without the full-text test.
    """

    where: str  # SQL condition over `question q`; "TRUE" when there is nothing to filter
    params: dict[str, Any]
    tsquery: str | None  # tsquery SQL expression of the top-level words, or None
    conditions: str  # the filters (and nested words) alone; "TRUE" when none
    terms: tuple[str, ...]  # positive words/phrases as typed
    # Top-level filters every match must pass, which the index's facet words can narrow.
    facets: tuple[Field | DateRange, ...] = ()
    # The prefixes searched, as typed but without the `*` (refused when too short to search).
    prefixes: tuple[str, ...] = ()
    # The words, lower-cased, of each positive phrase (or word of several, like covid-19):
    # ts_headline marks them one by one, FTS5's highlight() as one.
    phrases: tuple[tuple[str, ...], ...] = ()


class _Compiler(QueryCompiler):
    """tsquery expressions for the words, each parenthesised, tested in SQL as
    `q.search_vector @@ (...)`. A test may be NULL (a question without its search_vector), so
    a negation is `IS NOT TRUE`: two-valued, as on SQLite."""

    OR = " || "
    CONTAINS = "strpos"

    def placeholder(self, name: str) -> str:
        return placeholder(name)

    def day(self, value: date) -> date:
        return bind_day(value)

    def words(self, text: str, weights: str) -> str:
        """to_tsquery of `text` as one phrase, and of its variants as FTS5 would read it;
        `weights` on a variant that could be a facet word, or on all for ``heading:``."""
        variants = dict.fromkeys([text])
        spaced = " ".join(_TOKEN.findall(text))
        if spaced and spaced != text:
            variants[spaced] = None
        for variant in list(variants):
            plain = _without_accents(variant)
            if plain != variant:
                variants[plain] = None
        parts = [
            f"to_tsquery('english', {self.param(lexeme(v, self.weights(v, weights)))})"
            for v in variants
        ]
        return self.either(parts)

    @staticmethod
    def weights(text: str, weights: str) -> str:
        """The weights `text`'s lexemes need: none unless they could find a facet word."""
        if weights == _HEADING_WEIGHT or may_be_facet_word(text):
            return weights
        return ""

    def prefix(self, word: str, weights: str) -> str:
        """A tsquery that finds the words `word` begins: the prefix itself and the stems of the
        words it could begin (pqwatch.store.searching has the suffixes), each as a
        prefix lexeme, less those another one already covers. A stem that a facet word
        begins with has `weights`, the others none (all have them for ``heading:``)."""
        word = word.lower()
        if not _ASCII_WORD.fullmatch(word):
            return f"to_tsquery('english', {self.param(lexeme(word, weights, prefix=True))})"
        splits = suffix_splits(word)
        # The prefix's own stem too, whatever it begins with (as FTS5 stems a prefix).
        candidates = [word] + [word + rest for _, rest in splits]
        bases = [""] + [word[: len(word) - len(typed)] for typed, _ in splits]
        if weights == _HEADING_WEIGHT:
            weighted = f"':*{weights}'"
        else:
            weighted = (
                f"CASE WHEN c.s ~ {self.param(_DIGIT_FACET_START)} OR EXISTS (SELECT 1 FROM "
                f"unnest({self.param(sorted(_FACET_WORDS))}::text[]) AS f(w) "
                f"WHERE starts_with(f.w, c.s)) THEN ':*{weights}' ELSE ':*' END"
            )
        # Stems of ASCII letters and digits are ASCII letters and digits: safe as lexemes.
        return (
            "(WITH c(s) AS ("
            f"SELECT {self.param(word)}::text UNION SELECT l.s "
            f"FROM unnest({self.param(candidates)}::text[], {self.param(bases)}::text[]) "
            "AS w(word, base), unnest(ts_lexize('english_stem', w.word)) AS l(s) "
            "WHERE starts_with(l.s, w.base)) "
            f"SELECT string_agg(quote_literal(c.s) || {weighted}, ' | ')::tsquery FROM c "
            "WHERE NOT EXISTS (SELECT 1 FROM c o WHERE o.s <> c.s AND starts_with(c.s, o.s)))"
        )

    def text(self, node: Text) -> str:
        weights = _HEADING_WEIGHT if node.column == "heading" else TEXT_WEIGHTS
        alternatives: list[str] = []
        for variant in self.searched(node):
            if not node.prefix:
                alternatives.append(self.words(variant, weights))
                continue
            # A prefix phrase ("short br"*): its words, then the last one as a prefix.
            tokens = _TOKEN.findall(variant) or [variant]
            last = self.prefix(tokens[-1], weights)
            if len(tokens) > 1:
                last = f"({self.words(' '.join(tokens[:-1]), weights)} <-> {last})"
            alternatives.append(last)
        return "(" + self.OR.join(alternatives) + ")"

    def combine(self, positives: list[str], negatives: list[str]) -> str:
        return "(" + " && ".join(positives + [f"(!! {n})" for n in negatives]) + ")"

    def matching(self, expression: str) -> str:
        return f"q.search_vector @@ {expression}"

    def excluding(self, expression: str) -> str:
        return f"(({self.matching(expression)}) IS NOT TRUE)"

    def negate(self, condition: str) -> str:
        return f"(({condition}) IS NOT TRUE)"

    def among(self, column: str, select: str) -> str:
        """The ids as an array worked out first: an IN (SELECT) is planned for as many
        questions as the names could match, and `dept:education NOT school` tested the word
        on every question (0.7-1.2 s on 600,000) before joining the department (0.2 s)."""
        return f"{column} = ANY(ARRAY({select}))"


def placeholder(name: str) -> str:
    """A named parameter as psycopg takes it."""
    return f"%({name})s"


def bind_day(value: date) -> date:
    """A date as psycopg binds it: as it is."""
    return value


def _phrase_words(text: str) -> tuple[str, ...]:
    return tuple(w for w in _TOKEN.findall(text.lower()) if w != "s")


def compile_query(text: str) -> CompiledQuery:
    """Compile a query for PostgreSQL, or raise QuerySyntaxError (a UsageError, exit code 2)."""
    compiler = _Compiler()
    top = compile_top_level(compiler, text)
    rest = " AND ".join(top.conditions) or "TRUE"
    where = rest if top.match is None else f"{compiler.matching(top.match)} AND {rest}"
    if top.match is not None and not top.conditions:
        where = compiler.matching(top.match)
    return CompiledQuery(
        where=where,
        params=compiler.params,
        tsquery=top.match,
        conditions=rest,
        terms=top.terms,
        facets=top.facets,
        prefixes=top.prefixes,
        phrases=tuple(dict.fromkeys(w for t in top.texts if len(w := _phrase_words(t.text)) > 1)),
    )
