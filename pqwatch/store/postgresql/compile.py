"""The query language compiled for PostgreSQL: one tsquery for the words, tested against the
full-text column question.search_vector, and SQL conditions for the filters, with the same
meaning as pqwatch.store.sqlite.compile gives them on FTS5.

User text never becomes tsquery or SQL syntax: every value is a bound parameter (psycopg's
``%(name)s``), and each word or phrase is one quoted lexeme handed to ``to_tsquery``, which
stems it with the 'english' configuration and joins its words with ``<->``. The tsqueries of
the words are combined in SQL with the ``&&``, ``||``, ``!!`` and ``<->`` operators.

The index holds the heading, question and answer as weights A, B and C and the facet words
(pqwatch.store.sqlite.facets) as D, so every lexeme searched is limited to ``:ABC`` (``:A`` for
``heading:``): `sun*` must not find every unanswered question through its ``sunanswered``.

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
from typing import Any

from pqwatch.query import And, DateRange, Field, Node, Not, Or, Text, parse
from pqwatch.store.sqlite.compile import _SPLITS

__all__ = ["CompiledQuery", "compile_query", "lexeme"]

_POSSESSIVE_IN = re.compile(r"(?<=\w)['\u2019][sS](?!\w)")
_DATE_COLUMNS = {
    "tabled": "date_tabled", "answered": "date_answered", "due": "date_for_answer",
}  # fmt: skip
_MEMBER_COLUMNS = {"asker": "asking_member_id", "answerer": "answering_member_id"}
_FACET_FIELDS = ("house", "status", "dept")
# The index's text weights: the facet words (D) are never searched for a user's words.
TEXT_WEIGHTS = "ABC"
_HEADING_WEIGHT = "A"
# What FTS5's unicode61 tokenizer keeps of a word: runs of letters and digits.
_TOKEN = re.compile(r"[^\W_]+")
_ASCII_WORD = re.compile(r"[a-z0-9]+")


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


class _Compiler:
    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.prefixes: list[str] = []

    def param(self, value: Any) -> str:
        name = f"p{len(self.params) + 1}"
        self.params[name] = value
        return f"%({name})s"

    # tsquery expressions. Each is parenthesised (safe to combine), or None when the node
    # cannot be a positive tsquery on its own (a bare NOT, an OR with a negative branch,
    # anything with a non-text field), as on SQLite.

    def words(self, text: str, weights: str) -> str:
        """to_tsquery of `text` as one phrase, and of its variants as FTS5 would read it."""
        variants = dict.fromkeys([text])
        spaced = " ".join(_TOKEN.findall(text))
        if spaced and spaced != text:
            variants[spaced] = None
        for variant in list(variants):
            plain = _without_accents(variant)
            if plain != variant:
                variants[plain] = None
        parts = [f"to_tsquery('english', {self.param(lexeme(v, weights))})" for v in variants]
        return parts[0] if len(parts) == 1 else "(" + " || ".join(parts) + ")"

    def prefix(self, word: str, weights: str) -> str:
        """A tsquery that finds the words `word` begins: the prefix itself and the stems of the
        words it could begin (pqwatch.store.sqlite.compile explains the suffixes), each as a
        prefix lexeme, less those another one already covers."""
        word = word.lower()
        if not _ASCII_WORD.fullmatch(word):
            return f"to_tsquery('english', {self.param(lexeme(word, weights, prefix=True))})"
        splits = [(t, r) for t, r in _SPLITS if word.endswith(t) and len(word) > len(t)]
        # The prefix's own stem too, whatever it begins with (as FTS5 stems a prefix).
        candidates = [word] + [word + rest for _, rest in splits]
        bases = [""] + [word[: len(word) - len(typed)] for typed, _ in splits]
        # Stems of ASCII letters and digits are ASCII letters and digits: safe as lexemes.
        return (
            "(WITH c(s) AS ("
            f"SELECT {self.param(word)}::text UNION SELECT l.s "
            f"FROM unnest({self.param(candidates)}::text[], {self.param(bases)}::text[]) "
            "AS w(word, base), unnest(ts_lexize('english_stem', w.word)) AS l(s) "
            "WHERE starts_with(l.s, w.base)) "
            f"SELECT string_agg(quote_literal(c.s) || ':*{weights}', ' | ')::tsquery FROM c "
            "WHERE NOT EXISTS (SELECT 1 FROM c o WHERE o.s <> c.s AND starts_with(c.s, o.s)))"
        )

    def text(self, node: Text) -> str:
        weights = _HEADING_WEIGHT if node.column == "heading" else TEXT_WEIGHTS
        if node.prefix:
            self.prefixes.append((node.text.split() or [node.text])[-1])
        variants = [node.text]
        if node.phrase and _POSSESSIVE_IN.search(node.text):
            # "children's hospice" also finds "childrens hospice"/"children hospice" text.
            variants.append(_POSSESSIVE_IN.sub("", node.text))
        alternatives: list[str] = []
        for variant in variants:
            if not node.prefix:
                alternatives.append(self.words(variant, weights))
                continue
            # A prefix phrase ("short br"*): its words, then the last one as a prefix.
            tokens = _TOKEN.findall(variant) or [variant]
            last = self.prefix(tokens[-1], weights)
            if len(tokens) > 1:
                last = f"({self.words(' '.join(tokens[:-1]), weights)} <-> {last})"
            alternatives.append(last)
        if len(alternatives) == 1:
            return f"({alternatives[0]})"
        return "(" + " || ".join(alternatives) + ")"

    def fts(self, node: Node) -> str | None:
        if isinstance(node, Text):
            return self.text(node)
        if isinstance(node, Or):
            parts = [self.fts(part) for part in node.parts]
            if any(part is None for part in parts):
                return None
            return "(" + " || ".join(p for p in parts if p is not None) + ")"
        if isinstance(node, And):
            positives, negatives, others = self.split(node.parts)
            if others or not positives:
                return None
            return self.combine(positives, negatives)
        return None

    def split(self, parts: tuple[Node, ...]) -> tuple[list[str], list[str], list[Node]]:
        """The tsquery positives, the tsquery negatives and the rest of an AND's parts."""
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
        return "(" + " && ".join(positives + [f"(!! {n})" for n in negatives]) + ")"

    @staticmethod
    def matches(expression: str) -> str:
        return f"q.search_vector @@ {expression}"

    def conjunction(self, parts: tuple[Node, ...]) -> tuple[str | None, list[str]]:
        """An AND as one tsquery for its words (if any is positive) plus SQL conditions."""
        positives, negatives, others = self.split(parts)
        tsquery = None
        conditions: list[str] = []
        if positives:
            tsquery = self.combine(positives, negatives)
        elif negatives:
            excluded = negatives[0] if len(negatives) == 1 else f"({' || '.join(negatives)})"
            conditions.append(f"(({self.matches(excluded)}) IS NOT TRUE)")
        conditions += [self.sql(part) for part in others]
        return tsquery, conditions

    # SQL conditions over `question q`. A condition may be NULL (a question without its
    # search_vector), so a negation is `IS NOT TRUE`: two-valued, and -answered:2024 includes
    # questions not answered at all.

    def sql(self, node: Node) -> str:
        expression = self.fts(node)
        if expression is not None:
            return f"({self.matches(expression)})"
        if isinstance(node, Not):
            return f"(({self.sql(node.part)}) IS NOT TRUE)"
        if isinstance(node, And):
            tsquery, conditions = self.conjunction(node.parts)
            if tsquery is not None:
                conditions.insert(0, self.matches(tsquery))
            return "(" + " AND ".join(conditions) + ")"
        if isinstance(node, Or):
            texts = [e for e in (self.fts(part) for part in node.parts) if e is not None]
            conditions = []
            if texts:
                joined = texts[0] if len(texts) == 1 else f"({' || '.join(texts)})"
                conditions.append(self.matches(joined))
            conditions += [self.sql(part) for part in node.parts if self.fts(part) is None]
            return "(" + " OR ".join(conditions) + ")"
        if isinstance(node, DateRange):
            column = f"q.{_DATE_COLUMNS[node.name]}"
            conditions = [f"{column} IS NOT NULL"]
            if node.start is not None:
                conditions.append(f"{column} >= {self.param(node.start)}")
            if node.end is not None:
                conditions.append(f"{column} <= {self.param(node.end)}")
            return "(" + " AND ".join(conditions) + ")"
        if isinstance(node, Field):
            return self.field(node)
        raise AssertionError(f"unexpected node {node!r}")  # pragma: no cover

    def field(self, node: Field) -> str:
        if node.name == "house":
            return f"(q.house = {self.param(node.values[0])})"
        if node.name == "status":
            return f"(q.status IN ({', '.join(self.param(v) for v in node.values)}))"
        if node.name in ("parliament", "type"):
            column = "q.parliament" if node.name == "parliament" else "q.kind"
            return f"({column} = {self.param(node.values[0])})"
        if node.name == "dept":
            table, alias, column = "answering_body", "b", "q.answering_body_id"
        else:
            table, alias, column = "member", "m", f"q.{_MEMBER_COLUMNS[node.name]}"
        # strpos, not LIKE: a user's % and _ are letters here, as instr's are on SQLite.
        words = " AND ".join(
            f"strpos(lower({alias}.name), {self.param(word)}) > 0" for word in node.values
        )
        return (
            f"({column} IS NOT NULL AND "
            f"{column} IN (SELECT {alias}.id FROM {table} {alias} WHERE {words}))"
        )


def _terms(node: Node, positive: bool, out: dict[Text, None]) -> None:
    if isinstance(node, Text):
        if positive:
            out[node] = None
    elif isinstance(node, Not):
        _terms(node.part, not positive, out)
    elif isinstance(node, And | Or):
        for part in node.parts:
            _terms(part, positive, out)


def _phrase_words(text: str) -> tuple[str, ...]:
    return tuple(w for w in _TOKEN.findall(text.lower()) if w != "s")


def compile_query(text: str) -> CompiledQuery:
    """Compile a query for PostgreSQL, or raise QuerySyntaxError (a UsageError, exit code 2)."""
    node = parse(text)
    compiler = _Compiler()
    parts = node.parts if isinstance(node, And) else (node,)
    tsquery, conditions = compiler.conjunction(parts)
    texts: dict[Text, None] = {}
    _terms(node, True, texts)
    rest = " AND ".join(conditions) or "TRUE"
    where = rest if tsquery is None else f"{_Compiler.matches(tsquery)} AND {rest}"
    if tsquery is not None and not conditions:
        where = _Compiler.matches(tsquery)
    return CompiledQuery(
        where=where,
        params=compiler.params,
        tsquery=tsquery,
        conditions=rest,
        terms=tuple(dict.fromkeys(t.typed for t in texts)),
        facets=tuple(
            p
            for p in parts
            if isinstance(p, DateRange) or (isinstance(p, Field) and p.name in _FACET_FIELDS)
        ),
        prefixes=tuple(dict.fromkeys(compiler.prefixes)),
        phrases=tuple(dict.fromkeys(w for t in texts if len(w := _phrase_words(t.text)) > 1)),
    )
