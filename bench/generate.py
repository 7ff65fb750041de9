"""A deterministic synthetic archive of UK Parliament written questions, for benchmarks.

The archive looks like what ``GET /api/writtenquestions/questions/{id}?expandMember=true``
returns: ``QuestionsViewModel`` dicts with full question text, full HTML answers and
expanded member objects (see ``shared/docs/API.md`` sections 1.4 to 1.6). Its shape is
measured from the real recordings in ``shared/data/uk_parliament`` at run time
(:func:`profile`); nothing from them is stored in the repository. Without the recordings,
modest built-in defaults are used (:func:`default_profile`), so the generator always runs.

* :func:`generate` streams ``n`` questions, in id order, in constant memory. The same seed
  gives the same questions (each day has its own ``random.Random`` derived from the seed
  and the date, so any slice of the archive can be generated on its own).
* :func:`write_pages` writes them as gzip JSON arrays of ``{"value", "links"}`` items,
  which :func:`pqwatch.testing.replay.load_items` and ``ReplayServer.load_files`` read.
* Text is drawn from the real questions' and answers' vocabularies (their own Zipf-like
  frequencies), with a few known topics planted at known rates (:data:`TOPICS`); their
  words are kept out of all other text, so a search for one finds exactly the planted items.

Command line::

    python -m bench.generate --n 600000 --seed 1 --out /tmp/pqwatch-bench/archive
"""

from __future__ import annotations

import argparse
import gzip
import html
import json
import multiprocessing
import os
import random
import re
import sys
import time
from array import array
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache, lru_cache
from itertools import accumulate, chain, repeat
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "DEFAULT_END",
    "DEFAULT_START",
    "TOPICS",
    "Department",
    "Profile",
    "Topic",
    "count_topics",
    "data_dir",
    "default_profile",
    "generate",
    "load_profile",
    "main",
    "profile",
    "write_archive",
    "write_pages",
]

_T = TypeVar("_T")
REPO = Path(__file__).resolve().parent.parent
DEFAULT_START = date(2014, 5, 1)
DEFAULT_END = date(2026, 4, 30)
FIRST_ID = 1_000_001
FILE_PATTERN = "questions_{:04d}.json.gz"
LORDS_SHARE = 0.25
"""Lords share of all questions: a judgement. The 2021 bicameral recording had 389 Commons and
131 Lords questions (SOURCES.md); the recordings available here are Commons-only or filtered."""


def data_dir() -> Path:
    """The real recordings: ``$PQWATCH_TEST_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("PQWATCH_TEST_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


# --------------------------------------------------------------------------- planted topics


@dataclass(frozen=True)
class Topic:
    """A phrase planted in a known share of questions (the question text always, the answer
    and heading sometimes). ``reserved`` word prefixes never appear in any other text."""

    phrase: str
    rate: float
    reserved: tuple[str, ...]
    departments: tuple[tuple[int, float], ...]  # used when the recordings have too few hits
    headings: tuple[str, ...]  # built-in headings, used when the recordings have none

    @property
    def pattern(self) -> re.Pattern[str]:
        """Matches the phrase as whole words, case-insensitively."""
        return _phrase_pattern(self.phrase, r"\b")

    @property
    def loose(self) -> re.Pattern[str]:
        """Matches the phrase's words with any endings ("Hospices", "Schools")."""
        return _phrase_pattern(self.phrase, r"\w*")


@cache
def _phrase_pattern(phrase: str, ending: str) -> re.Pattern[str]:
    words = [re.escape(w) + ending for w in phrase.split()]
    return re.compile(r"\b" + r"\s+".join(words), re.I)


TOPICS: tuple[Topic, ...] = (
    Topic("school", 0.08, ("school",), ((60, 1.0),), ("Schools: Finance", "Free School Meals")),
    Topic("mental health", 0.03, ("mental",), ((17, 1.0),), ("Mental Health Services",)),
    # A decoy for phrase queries: "mental" without "health" right after it.
    Topic("mental capacity", 0.002, ("mental",), ((17, 0.6), (54, 0.4)), ("Mental Capacity",)),
    Topic("palliative care", 0.005, ("palliat",), ((17, 1.0),), ("Palliative Care",)),
    Topic("hospice", 0.003, ("hospice",), ((17, 1.0),), ("Hospices: Finance",)),
    Topic("hovercraft", 0.0001, ("hovercraft",), ((27, 1.0),), ("Hovercraft",)),
)
_RESERVED = tuple(sorted({stem for t in TOPICS for stem in t.reserved}))
_SUBWORD = re.compile(r"[a-z]+")


def _has_reserved(text: str, allowed: tuple[str, ...] = ()) -> bool:
    """Does any word (or part of a hyphenated word) start with a reserved topic stem?"""
    low = text.lower()
    if not any(stem in low for stem in _RESERVED):
        return False
    return any(
        word.startswith(stem)
        for word in _SUBWORD.findall(low)
        for stem in _RESERVED
        if stem not in allowed
    )


def count_topics(
    item: Mapping[str, Any],
    topics: Sequence[Topic] = TOPICS,
    fields: Sequence[str] = ("heading", "questionText", "answerText"),
) -> list[str]:
    """The planted topics an item contains (in any of ``fields``, as whole words)."""
    text = " ".join(str(item.get(key) or "") for key in fields).lower()
    return [t.phrase for t in topics if t.phrase.split()[0] in text and t.pattern.search(text)]


# --------------------------------------------------------------------------- the profile


@dataclass(frozen=True)
class Department:
    id: int
    name: str
    weight: float
    openings: tuple[tuple[str, float], ...]  # "To ask the Secretary of State for Defence"
    headings: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Profile:
    """Distributions measured from the recordings (or built in). Length, delay and gap
    distributions are quantile vectors (0 %, 1 %, ..., 100 %)."""

    source: str
    items_measured: int
    question_length: tuple[float, ...]  # full questionText, characters
    answer_length: tuple[float, ...]  # full answerText HTML, characters
    long_answer_share: float  # answers longer than 255 characters of text
    tag_share_long: dict[str, float]  # among long answers: "table", "ul", "a", "strong"
    departments: tuple[Department, ...]
    lords_share: float
    lords_share_measured: float
    grouped_share: float  # share of questions in a group
    group_sizes: tuple[tuple[int, float], ...]  # (size, weight per group)
    holding_share: float  # answered after a holding answer
    corrected_share: float
    unanswered_share: float  # never answered, in months long past
    named_day_share: float
    interest_share: float
    due_days_commons: tuple[tuple[int, bool, float], ...]  # (days after tabling, named, weight)
    due_days_lords: tuple[tuple[int, float], ...]
    answer_delay: tuple[float, ...]  # days from tabled to answered, no holding answer
    holding_delay: tuple[float, ...]  # days from tabled to the holding answer
    after_holding_delay: tuple[float, ...]  # days from tabled to the real answer
    correction_gap: tuple[float, ...]  # days from answered to corrected
    heading_null_by_age: tuple[float, ...]  # P(heading is null) by days since tabled
    asker_shares: tuple[float, ...]  # share of questions by asker rank
    members: tuple[dict[str, Any], ...]  # real MemberViewModel dicts (2021 recordings)
    member_houses: tuple[tuple[int, str], ...]  # (member id, house)
    answering_roles: tuple[tuple[int, int, str], ...]  # (member id, body id, house)
    question_stems: tuple[tuple[str, float], ...]  # "what steps his Department is taking"
    answer_openers: tuple[tuple[str, float], ...]  # "The Government is committed"
    question_vocab: tuple[tuple[str, int], ...]
    answer_vocab: tuple[tuple[str, int], ...]
    topic_headings: dict[str, tuple[str, ...]] = field(default_factory=dict)
    topic_departments: dict[str, tuple[tuple[int, float], ...]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The headline numbers, for reports."""

        def q(values: tuple[float, ...], *at: int) -> list[float]:
            return [round(values[min(i, len(values) - 1)], 1) for i in at]

        total = sum(d.weight for d in self.departments) or 1.0
        return {
            "source": self.source,
            "items_measured": self.items_measured,
            "question_length_p10_p50_p90_max": q(self.question_length, 10, 50, 90, 100),
            "answer_html_length_p10_p50_p90_max": q(self.answer_length, 10, 50, 90, 100),
            "long_answer_share": round(self.long_answer_share, 3),
            "tag_share_overall": {
                k: round(v * self.long_answer_share, 4) for k, v in self.tag_share_long.items()
            },
            "departments": len(self.departments),
            "top_departments": [(d.name, round(d.weight / total, 3)) for d in self.departments[:5]],
            "lords_share": self.lords_share,
            "lords_share_measured": round(self.lords_share_measured, 3),
            "grouped_share": round(self.grouped_share, 3),
            "group_size_max": max((s for s, _ in self.group_sizes), default=1),
            "holding_then_answered_share": round(self.holding_share, 4),
            "corrected_share": round(self.corrected_share, 4),
            "unanswered_share": round(self.unanswered_share, 4),
            "named_day_share": round(self.named_day_share, 3),
            "answer_delay_days_p10_p50_p90": q(self.answer_delay, 10, 50, 90),
            "headings": sum(len(d.headings) for d in self.departments),
            "real_members": len(self.members),
            "distinct_askers_measured": len(self.asker_shares),
            "question_vocab": len(self.question_vocab),
            "answer_vocab": len(self.answer_vocab),
            "question_stems": len(self.question_stems),
        }


# --------------------------------------------------------------------------- measuring

_TAG = re.compile(r"<[^>]*>")
_TOKEN = re.compile(r"£?\d[\d,.]*\d%?|£?\d%?|[A-Za-z][A-Za-z'’-]*[A-Za-z]|[A-Za-z]")
_OPENING_CUT = re.compile(r", (?=[a-z(])")
_LORDS_OPENING = re.compile(r"^To ask (?:His|Her) Majesty's Government\s+")
_VOCAB_SIZE = 20_000


def _day(value: str) -> date:
    return date.fromisoformat(value[:10])


def _quantiles(
    values: Sequence[float], weights: Sequence[float] | None = None
) -> tuple[float, ...]:
    """101 quantiles (0 %, 1 %, ..., 100 %) of weighted values."""
    if not values:
        return (0.0,) * 101
    pairs = sorted(zip(values, weights or [1.0] * len(values), strict=True))
    total = sum(w for _, w in pairs)
    out: list[float] = []
    acc, i = 0.0, 0
    for k in range(101):
        target = total * k / 100
        while i < len(pairs) - 1 and acc + pairs[i][1] < target:
            acc += pairs[i][1]
            i += 1
        out.append(float(pairs[i][0]))
    return tuple(out)


_ITEM_MARK = re.compile(r"\((?:[a-z]|[ivx]+|\d+)\)")


def _words(text: str) -> list[str]:
    """Word tokens, without list markers such as "(a)" or "(ii)"."""
    return [w.rstrip(".,") or w for w in _TOKEN.findall(_ITEM_MARK.sub(" ", text))]


def _strip_html(text: str) -> str:
    return html.unescape(_TAG.sub(" ", text))


def _recordings(root: Path) -> dict[str, list[Path]]:
    uk = root / "uk_parliament"
    return {
        "dumps": sorted((uk / "monthly_list_dumps").glob("*.json*")),
        "snapshots": sorted((uk / "list_snapshots_2026-07").glob("*.json*")),
        "2021": sorted((uk / "recorded_http_2021").glob("wq_*.json*")),
        "longform": sorted((uk / "longform_detail_text").glob("*.json*")),
    }


def _read(path: Path) -> Any:
    raw = path.read_bytes()
    return json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)


def profile(data_dir: Path) -> Profile:
    """Measure the distributions from the real recordings under ``data_dir`` (the folder
    holding ``uk_parliament/``). Falls back to :func:`default_profile` if there are none."""
    from pqwatch.testing.replay import load_items

    files = _recordings(Path(data_dir))
    if not files["dumps"] and not files["snapshots"]:
        return default_profile()
    dumps = load_items([*files["dumps"], *files["longform"]])
    everything = load_items(
        [*files["2021"], *files["dumps"], *files["snapshots"], *files["longform"]]
    )
    rec2021 = load_items(files["2021"])
    full_text_ids: set[int] = set()
    for path in files["longform"]:
        full_text_ids.update(int(k) for k in _read(path))
    values = list(everything.values())
    aged = list(dumps.values()) or values  # whole months, fetched long after

    # Lengths and answer markup.
    q_lengths = [
        len(v["questionText"])
        for v in values
        if len(v["questionText"]) != 255 or v["id"] in full_text_ids
    ]
    short: list[int] = []
    long_html: list[int] = []
    long_unknown = 0
    tags: Counter[str] = Counter()
    for v in values:
        text = v.get("answerText")
        if not isinstance(text, str) or v.get("answerIsHolding"):
            continue
        if "<" in text:
            if len(_TAG.sub("", text)) > 255:
                long_html.append(len(text))
                for tag in ("table", "ul", "a", "strong"):
                    tags[tag] += f"<{tag}>" in text or f"<{tag} " in text
            else:
                short.append(len(text))
        elif len(text) == 258 and text.endswith("..."):
            long_unknown += 1
        else:
            short.append(len(text) + len("<p></p>"))
    n_long = len(long_html) + long_unknown
    long_weight = n_long / len(long_html) if long_html else 0.0
    answer_length = _quantiles(
        [*short, *long_html], [1.0] * len(short) + [long_weight] * len(long_html)
    )
    long_share = n_long / (n_long + len(short)) if n_long + len(short) else 0.3
    tag_share = {
        t: tags[t] / len(long_html) if long_html else 0.0 for t in ("table", "ul", "a", "strong")
    }

    # Departments, their openings and headings.
    body_counts: Counter[tuple[int, str]] = Counter()
    openings: dict[int, Counter[str]] = defaultdict(Counter)
    headings: dict[int, Counter[str]] = defaultdict(Counter)
    topic_headings: dict[str, Counter[str]] = defaultdict(Counter)
    topic_depts: dict[str, Counter[int]] = defaultdict(Counter)
    stems: Counter[str] = Counter()
    openers: Counter[str] = Counter()
    q_vocab: Counter[str] = Counter()
    a_vocab: Counter[str] = Counter()
    for v in values:
        body = int(v["answeringBodyId"])
        body_counts[(body, v["answeringBodyName"])] += 1
        text = v["questionText"]
        full = len(text) != 255 or v["id"] in full_text_ids
        cut = _OPENING_CUT.search(text)
        lords = _LORDS_OPENING.match(text)
        if lords:
            rest = text[lords.end() :]
        elif cut and text.startswith("To ask"):
            openings[body][text[: cut.start()]] += 1
            rest = text[cut.end() :]
            stems[" ".join(rest.split()[:6])] += 1
        else:
            rest = text
        words = _words(rest)
        if not full and words:
            words.pop()  # cut mid-word
        q_vocab.update(words)
        heading = v.get("heading")
        if heading:
            matched = [t for t in TOPICS if t.loose.search(heading)]
            if len(matched) == 1 and not _has_reserved(heading, matched[0].reserved):
                topic_headings[matched[0].phrase][heading] += 1
            elif not matched and not _has_reserved(heading):
                headings[body][heading] += 1
        for phrase in count_topics(v):
            topic_depts[phrase][body] += 1
        answer = v.get("answerText")
        if isinstance(answer, str) and not v.get("answerIsHolding"):
            plain = _strip_html(answer)
            if "<" not in answer and plain.endswith("..."):
                plain = plain[:-3].rsplit(" ", 1)[0]
            a_words = _words(plain)
            a_vocab.update(a_words)
            openers[" ".join(a_words[:4])] += 1

    body_totals: Counter[int] = Counter()
    body_names: dict[int, str] = {}
    for (body, name), count in body_counts.most_common():
        body_totals[body] += count
        body_names.setdefault(body, name)  # the most common name
    departments = []
    for body, count in sorted(body_totals.items(), key=lambda kv: (-kv[1], kv[0])):
        name = body_names[body]
        opens = [(o, float(c)) for o, c in openings[body].most_common(3) if c >= 3]
        if not opens:
            opens = [(_default_opening(name), 1.0)]
        heads = tuple((h, float(c)) for h, c in headings[body].most_common(400))
        departments.append(Department(body, name, float(count), tuple(opens), heads))

    # Grouping, holding, corrections, unanswered, due dates, delays.
    grouped = [v for v in aged if v["groupedQuestions"]]
    sizes = Counter(len(v["groupedQuestions"]) + 1 for v in grouped)
    group_sizes = tuple(sorted((s, c / s) for s, c in sizes.items()))
    answered = [v for v in aged if v["dateAnswered"]]
    holding = [v for v in answered if v["dateHoldingAnswer"] and not v["answerIsHolding"]]
    corrected = [v for v in values if v["answerIsCorrection"] and v["dateAnswerCorrected"]]
    commons = [v for v in aged if v["house"] == "Commons"]
    due = Counter(
        ((_day(v["dateForAnswer"]) - _day(v["dateTabled"])).days, bool(v["isNamedDay"]))
        for v in commons
        if v.get("dateForAnswer")
    )
    lords_due = Counter(
        (_day(v["dateForAnswer"]) - _day(v["dateTabled"])).days
        for v in everything.values()
        if v["house"] == "Lords" and v.get("dateForAnswer")
    )
    delays = [
        (_day(v["dateAnswered"]) - _day(v["dateTabled"])).days
        for v in answered
        if not v["dateHoldingAnswer"]
    ]
    holding_delay = [(_day(v["dateHoldingAnswer"]) - _day(v["dateTabled"])).days for v in holding]
    after_holding = [(_day(v["dateAnswered"]) - _day(v["dateTabled"])).days for v in holding]
    gaps = [(_day(v["dateAnswerCorrected"]) - _day(v["dateAnswered"])).days for v in corrected]

    # Headings fill in a few days after tabling (the day-by-day snapshots).
    null_by_age: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for path in files["snapshots"]:
        match = re.search(r"asof_(\d{4}-\d{2}-\d{2})", path.name)
        if not match:
            continue
        as_of = date.fromisoformat(match.group(1))
        for v in load_items([path]).values():
            age = (as_of - _day(v["dateTabled"])).days
            null_by_age[age][0] += 1
            null_by_age[age][1] += v["heading"] is None
    null_share: list[float] = []
    for age in range(max(null_by_age, default=-1) + 1):
        seen, nulls = null_by_age.get(age, (0, 0))
        null_share.append(nulls / seen if seen else (null_share[-1] if null_share else 1.0))
    while null_share and null_share[-1] < 0.005:
        null_share.pop()

    # Members (expanded only in the 2021 recordings) and how questions spread over askers.
    members: dict[int, dict[str, Any]] = {}
    houses: dict[int, str] = {}
    roles: set[tuple[int, int, str]] = set()
    for v in rec2021.values():
        for key in ("askingMember", "answeringMember", "correctingMember"):
            member = v.get(key)
            if isinstance(member, dict) and isinstance(member.get("id"), int):
                members[member["id"]] = dict(member)
                houses[member["id"]] = v["house"]
        if isinstance(v.get("answeringMember"), dict):
            roles.add((v["answeringMember"]["id"], int(v["answeringBodyId"]), v["house"]))
    askers = Counter(v["askingMemberId"] for v in aged)
    asker_total = sum(askers.values()) or 1
    lords_measured = sum(v["house"] == "Lords" for v in rec2021.values()) / (len(rec2021) or 1)

    def top(counter: Counter[str], minimum: int, limit: int) -> tuple[tuple[str, float], ...]:
        return tuple(
            (k, float(c))
            for k, c in counter.most_common(limit)
            if c >= minimum and k and not _has_reserved(k)
        )

    def vocab(counter: Counter[str]) -> tuple[tuple[str, int], ...]:
        clean = Counter({w: c for w, c in counter.items() if not _has_reserved(w)})
        return tuple(clean.most_common(_VOCAB_SIZE))

    builtin = default_profile()
    return Profile(
        source=f"measured from {len(values):,} recorded questions in {data_dir}",
        items_measured=len(values),
        question_length=_quantiles(q_lengths),
        answer_length=answer_length,
        long_answer_share=long_share,
        tag_share_long=tag_share,
        departments=tuple(departments),
        lords_share=LORDS_SHARE,
        lords_share_measured=lords_measured,
        grouped_share=len(grouped) / len(aged) if aged else builtin.grouped_share,
        group_sizes=group_sizes or builtin.group_sizes,
        holding_share=len(holding) / len(aged) if aged else builtin.holding_share,
        corrected_share=sum(bool(v["answerIsCorrection"]) for v in aged) / len(aged),
        unanswered_share=sum(not v["dateAnswered"] for v in aged) / len(aged),
        named_day_share=sum(bool(v["isNamedDay"]) for v in commons) / (len(commons) or 1),
        interest_share=sum(bool(v["memberHasInterest"]) for v in aged) / len(aged),
        due_days_commons=tuple((d, n, float(c)) for (d, n), c in sorted(due.items()) if d > 0)
        or builtin.due_days_commons,
        due_days_lords=tuple((d, float(c)) for d, c in sorted(lords_due.items()) if d > 0)
        or builtin.due_days_lords,
        answer_delay=_quantiles(delays) if delays else builtin.answer_delay,
        holding_delay=_quantiles(holding_delay) if holding else builtin.holding_delay,
        after_holding_delay=_quantiles(after_holding) if holding else builtin.after_holding_delay,
        correction_gap=_quantiles(gaps) if gaps else builtin.correction_gap,
        heading_null_by_age=tuple(null_share) or builtin.heading_null_by_age,
        asker_shares=tuple(c / asker_total for _, c in askers.most_common()),
        members=tuple(members[k] for k in sorted(members)),
        member_houses=tuple(sorted(houses.items())),
        answering_roles=tuple(sorted(roles)),
        question_stems=top(stems, 3, 400) or builtin.question_stems,
        answer_openers=top(openers, 5, 200) or builtin.answer_openers,
        question_vocab=vocab(q_vocab),
        answer_vocab=vocab(a_vocab),
        topic_headings={
            p: tuple(h for h, _ in c.most_common(50)) for p, c in topic_headings.items()
        },
        topic_departments={
            p: tuple((b, float(n)) for b, n in c.most_common(5))
            for p, c in topic_depts.items()
            if sum(c.values()) >= 5
        },
    )


_OPENINGS = {
    "Home Office": "To ask the Secretary of State for the Home Department",
    "Treasury": "To ask the Chancellor of the Exchequer",
    "Cabinet Office": "To ask the Minister for the Cabinet Office",
}


def _default_opening(name: str) -> str:
    if name in _OPENINGS:
        return _OPENINGS[name]
    for prefix in ("Department for ", "Department of ", "Ministry of "):
        if name.startswith(prefix):
            return "To ask the Secretary of State for " + name[len(prefix) :]
    return "To ask the " + name


# --------------------------------------------------------------------------- built-in defaults

_DEFAULT_DEPARTMENTS = (
    (17, "Department of Health and Social Care", 13, ("NHS: Finance", "Dental Services")),
    (11, "Ministry of Defence", 10, ("Armed Forces: Housing", "Defence: Procurement")),
    (27, "Department for Transport", 8, ("Railways: Fares", "Roads: Repairs and Maintenance")),
    (1, "Home Office", 8, ("Police: Finance", "Asylum: Housing")),
    (60, "Department for Education", 7, ("Teachers: Recruitment", "Apprentices")),
    (14, "Treasury", 6, ("Income Tax: Thresholds", "Public Finance")),
    (29, "Department for Work and Pensions", 5, ("Universal Credit", "Pension Credit")),
    (54, "Ministry of Justice", 5, ("Prisons: Staff", "Courts: Backlogs")),
    (53, "Cabinet Office", 4, ("Civil Service: Pay", "Elections: Proof of Identity")),
    (13, "Department for Environment, Food and Rural Affairs", 6, ("Water: Pollution",)),
    (7, "Ministry of Housing, Communities and Local Government", 6, ("Housing: Construction",)),
)


def _zipf(words: Sequence[str], scale: int = 10_000) -> tuple[tuple[str, int], ...]:
    return tuple((w, max(1, scale // (rank + 1))) for rank, w in enumerate(words))


def _ramp(*points: tuple[int, float]) -> tuple[float, ...]:
    """101 quantiles by linear interpolation between (percent, value) points."""
    out = []
    for k in range(101):
        for (p0, v0), (p1, v1) in zip(points, points[1:], strict=False):
            if p0 <= k <= p1:
                out.append(v0 + (v1 - v0) * (k - p0) / (p1 - p0))
                break
    return tuple(out)


@lru_cache(maxsize=1)
def default_profile() -> Profile:
    """Modest built-in distributions, used when the recordings are not available."""
    q_words = (
        "the of to and in what for a steps is his her Department taking has made on by with "
        "number people support local funding how many assessment potential impact whether plans "
        "NHS services public last years each that have been are from information data including "
        "next proportion (a) (b) (c) England children families costs government policy new "
        "recent discussions access waiting times patients staff training housing energy water "
        "transport rail bus roads police crime courts prisons pensions benefits tax business "
        "trade exports farmers environment climate defence armed forces veterans ukraine aid "
        "councils planning homes rent care workers hospital cancer dental provision guidance"
    ).split()
    a_words = (
        "the of to and in a is we are for that this on will be with have as has by Government "
        "Department it not our support which its funding information continue work also "
        "more an at including available all from committed people local services ensure "
        "this year million new across published data can been provide further set out "
        "programme working partners system public sector plans review England national "
        "published guidance through those over £ number between most help investment"
    ).split()
    deps = tuple(
        Department(i, name, float(w), ((_default_opening(name), 1.0),), tuple((h, 1.0) for h in hs))
        for i, name, w, hs in _DEFAULT_DEPARTMENTS
    )
    return Profile(
        source="built-in defaults (no recordings found)",
        items_measured=0,
        question_length=_ramp((0, 60), (10, 135), (50, 200), (90, 320), (99, 520), (100, 760)),
        answer_length=_ramp((0, 60), (10, 170), (50, 520), (90, 1500), (99, 5000), (100, 13000)),
        long_answer_share=0.6,
        tag_share_long={"table": 0.035, "ul": 0.015, "a": 0.14, "strong": 0.04},
        departments=deps,
        lords_share=LORDS_SHARE,
        lords_share_measured=LORDS_SHARE,
        grouped_share=0.2,
        group_sizes=((2, 60.0), (3, 15.0), (4, 6.0), (5, 3.0), (8, 1.0), (12, 0.5)),
        holding_share=0.02,
        corrected_share=0.003,
        unanswered_share=0.0005,
        named_day_share=0.27,
        interest_share=0.008,
        due_days_commons=((4, False, 50.0), (5, True, 15.0), (3, True, 10.0), (21, False, 5.0)),
        due_days_lords=((14, 1.0),),
        answer_delay=_ramp((0, 1), (10, 5), (50, 8), (90, 22), (99, 60), (100, 170)),
        holding_delay=_ramp((0, 3), (50, 6), (100, 28)),
        after_holding_delay=_ramp((0, 5), (50, 16), (100, 85)),
        correction_gap=_ramp((0, 0), (50, 14), (100, 80)),
        heading_null_by_age=(1.0, 1.0, 1.0, 1.0, 1.0, 0.25, 0.08, 0.02),
        asker_shares=tuple(1 / (r + 5) for r in range(450)),
        members=(),
        member_houses=(),
        answering_roles=(),
        question_stems=(
            ("what steps his Department is taking to", 5.0),
            ("what assessment he has made of the", 5.0),
            ("if she will make an assessment of", 3.0),
            ("how many", 3.0),
            ("what discussions he has had with", 2.0),
        ),
        answer_openers=(
            ("The Government is committed", 3.0),
            ("The Department", 2.0),
            ("The information requested is", 1.0),
        ),
        question_vocab=_zipf(q_words),
        answer_vocab=_zipf(a_words),
    )


@lru_cache(maxsize=4)
def _cached_profile(root: str) -> Profile:
    path = Path(root)
    if not (path / "uk_parliament").is_dir():
        return default_profile()
    return profile(path)


def load_profile(root: Path | None = None) -> Profile:
    """The profile of ``root`` (default: :func:`data_dir`), measured once per process."""
    return _cached_profile(str(root if root is not None else data_dir()))


# --------------------------------------------------------------------------- sampling


class _Vocab:
    """Draws words i.i.d. from a weighted vocabulary, fast: layered lookup tables of 65,536
    entries indexed by random bytes (one C-level ``itemgetter`` call per text and layer),
    with the rarest words (under one table entry) drawn by ``random.choices``."""

    SIZE = 1 << 16

    def __init__(self, counts: Sequence[tuple[str, int]]) -> None:
        items = sorted(((w, c) for w, c in counts if c > 0), key=lambda p: (-p[1], p[0]))
        if not items:
            items = [("information", 1)]
        total = float(sum(c for _, c in items))
        self.mean_length = sum(c * (len(w) + 1) for w, c in items) / total
        # (table, share of all draws); the first layer is drawn for every position, later
        # layers overwrite their share of positions.
        self.layers: list[tuple[tuple[str, ...], float]] = []
        rest = items
        while rest and len(self.layers) < 4:
            mass = sum(c for _, c in rest)
            head = [(w, c) for w, c in rest if c * self.SIZE >= mass]
            if not head:
                break
            self.layers.append((self._table(head), sum(c for _, c in head) / total))
            rest = rest[len(head) :]
        self.rest = tuple(w for w, _ in rest)
        self.rest_cum = tuple(accumulate(c for _, c in rest))
        self.rest_share = sum(c for _, c in rest) / total

    def _table(self, words: Sequence[tuple[str, int]]) -> tuple[str, ...]:
        mass = sum(c for _, c in words)
        exact = [c * self.SIZE / mass for _, c in words]
        slots = [int(x) for x in exact]
        short = self.SIZE - sum(slots)
        for i in sorted(range(len(words)), key=lambda i: slots[i] - exact[i])[:short]:
            slots[i] += 1
        return tuple(chain.from_iterable(map(repeat, (w for w, _ in words), slots)))

    @staticmethod
    def _pick(rng: random.Random, table: tuple[str, ...], k: int) -> list[str]:
        """``k`` uniform draws from a table of SIZE entries."""
        idx = array("H", rng.randbytes(2 * k))
        if sys.byteorder == "big":
            idx.byteswap()
        picked = itemgetter(*idx)(table)
        return [picked] if k == 1 else list(picked)

    def sample(self, rng: random.Random, k: int) -> list[str]:
        if k <= 0:
            return []
        if not self.layers:
            return rng.choices(self.rest, cum_weights=self.rest_cum, k=k)
        out = self._pick(rng, self.layers[0][0], k)
        for table, share in self.layers[1:]:
            positions = self._positions(rng, k, share)
            if positions:
                out[positions] = self._pick(rng, table, len(range(k)[positions]))
        if self.rest:
            positions = self._positions(rng, k, self.rest_share)
            if positions:
                m = len(range(k)[positions])
                out[positions] = rng.choices(self.rest, cum_weights=self.rest_cum, k=m)
        return out

    @staticmethod
    def _positions(rng: random.Random, k: int, share: float) -> slice | None:
        """About ``share`` of ``k`` positions, evenly spread from a random offset."""
        m = int(k * share + rng.random())
        if m <= 0:
            return None
        step = max(1, k // m)
        return slice(_below(rng, step), k, step)


@lru_cache(maxsize=8)
def _vocab(counts: tuple[tuple[str, int], ...]) -> _Vocab:
    return _Vocab(counts)


class _Choice:
    """A weighted choice among items (one bisect per draw)."""

    def __init__(self, pairs: Iterable[tuple[Any, float]]) -> None:
        kept = [(v, w) for v, w in pairs if w > 0]
        if not kept:
            raise ValueError("nothing to choose from")
        self.values = [v for v, _ in kept]
        self.cum = list(accumulate(w for _, w in kept))
        self.total = self.cum[-1]
        self.last = len(self.values) - 1

    def __call__(self, rng: random.Random) -> Any:
        return self.values[min(bisect_right(self.cum, rng.random() * self.total), self.last)]


def _below(rng: random.Random, n: int) -> int:
    """A random int in [0, n): ``randrange`` without its argument checks (much faster)."""
    return int(rng.random() * n)


def _between(rng: random.Random, a: int, b: int) -> int:
    """A random int in [a, b]."""
    return a + int(rng.random() * (b - a + 1))


def _pick_one(rng: random.Random, seq: Sequence[_T]) -> _T:
    return seq[int(rng.random() * len(seq))]


def _from_quantiles(q: tuple[float, ...], rng: random.Random) -> float:
    u = rng.random() * (len(q) - 1)
    i = int(u)
    return q[i] + (q[min(i + 1, len(q) - 1)] - q[i]) * (u - i)


# --------------------------------------------------------------------------- calendar

_ELECTIONS = (
    date(2010, 5, 6),
    date(2015, 5, 7),
    date(2017, 6, 8),
    date(2019, 12, 12),
    date(2024, 7, 4),
)
_DISSOLVED = (  # no questions are tabled while Parliament is dissolved
    (date(2015, 3, 30), date(2015, 5, 17)),
    (date(2017, 5, 3), date(2017, 6, 20)),
    (date(2019, 11, 6), date(2019, 12, 18)),
    (date(2024, 5, 30), date(2024, 7, 16)),
)
_WEEKDAY = (1.0, 1.25, 1.2, 1.15, 0.55, 0.0, 0.0)
_HIS_MAJESTY = date(2022, 9, 8)


def _day_weight(d: date) -> float:
    weight = _WEEKDAY[d.weekday()]
    if not weight or any(a <= d <= b for a, b in _DISSOLVED):
        return 0.0
    m, dd = d.month, d.day
    if m == 8:
        weight *= 0.35  # summer recess (Commons written questions continue on some days)
    elif (m == 12 and dd >= 21) or (m == 1 and dd <= 3):
        weight *= 0.1
    elif (m == 4 and dd <= 14) or (m == 9 and dd >= 14) or (m == 5 and dd >= 25):
        weight *= 0.6  # Easter, conference and Whitsun recesses
    return weight


def _weekday_on_or_after(d: date) -> date:
    wd = d.weekday()
    return d + timedelta(days=7 - wd) if wd >= 5 else d


@dataclass(frozen=True)
class _Day:
    day: date
    count: int
    lords: int
    first_index: int
    commons_uin: int  # first UIN of the day (UINs restart each year)
    lords_uin: int


def _plan(n: int, start: date, end: date, lords_share: float) -> list[_Day]:
    """How many questions each day gets: exact totals, deterministic, no randomness."""
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    weights = [_day_weight(d) for d in days]
    total = sum(weights)
    if total <= 0:
        weights = [1.0] * len(days)
        total = float(len(days))
    plan: list[_Day] = []
    acc = 0.0
    done = lords_done = 0
    year = None
    commons_year = lords_year = 0
    for d, w in zip(days, weights, strict=True):
        if d.year != year:
            year, commons_year, lords_year = d.year, 0, 0
        acc += w
        target = min(n, round(n * acc / total))
        count = target - done
        if count <= 0:
            continue
        lords = round(lords_share * target) - lords_done
        lords = max(0, min(lords, count))
        plan.append(_Day(d, count, lords, done, commons_year + 1, lords_year + 1))
        done, lords_done = target, lords_done + lords
        commons_year += count - lords
        lords_year += lords
    return plan


# --------------------------------------------------------------------------- members

_PARTIES: dict[str, tuple[str, str]] = {  # abbreviation: (name, colour)
    "Con": ("Conservative", "0000ff"),
    "Lab": ("Labour", "ff0000"),
    "LD": ("Liberal Democrat", "f8a428"),
    "SNP": ("Scottish National Party", "fcf28f"),
    "DUP": ("Democratic Unionist Party", "000080"),
    "UUP": ("Ulster Unionist Party", "99CCFF"),
    "Alliance": ("Alliance", "C0C0C0"),
    "PC": ("Plaid Cymru", "008142"),
    "Green": ("Green Party", "78B82A"),
    "SDLP": ("Social Democratic & Labour Party", "99FF66"),
    "RUK": ("Reform UK", "12B6CF"),
    "Ind": ("Independent", "C0C0C0"),
    "XB": ("Crossbench", "C0C0C0"),
    "Bp": ("Bishops", "7F7F7F"),
    "Non-Afl": ("Non-affiliated", "C0C0C0"),
}
_COMMONS_SEATS = (  # seats by party at each general election (Sinn Féin and Speaker left out)
    (_ELECTIONS[0], "Con", {"Con": 306, "Lab": 258, "LD": 57, "DUP": 8, "SNP": 6, "PC": 3,
                            "SDLP": 3, "Green": 1, "Alliance": 1, "Ind": 1}),
    (_ELECTIONS[1], "Con", {"Con": 330, "Lab": 232, "SNP": 56, "LD": 8, "DUP": 8, "PC": 3,
                            "SDLP": 3, "UUP": 2, "Green": 1, "Ind": 2}),
    (_ELECTIONS[2], "Con", {"Con": 317, "Lab": 262, "SNP": 35, "LD": 12, "DUP": 10, "PC": 4,
                            "Green": 1, "Ind": 1}),
    (_ELECTIONS[3], "Con", {"Con": 365, "Lab": 202, "SNP": 48, "LD": 11, "DUP": 8, "PC": 4,
                            "SDLP": 2, "Alliance": 1, "Green": 1}),
    (_ELECTIONS[4], "Lab", {"Lab": 411, "Con": 121, "LD": 72, "SNP": 9, "Ind": 6, "RUK": 5,
                            "DUP": 5, "Green": 4, "PC": 4, "SDLP": 2, "Alliance": 1, "UUP": 1}),
)  # fmt: skip
_LORDS_PARTIES = {"Con": 260, "Lab": 180, "LD": 80, "XB": 185, "Bp": 25, "Non-Afl": 40,
                  "DUP": 5, "UUP": 2, "Green": 2, "PC": 1}  # fmt: skip
_FIRST = (
    "James John David Michael Andrew Richard Mark Paul Peter Robert Stephen Simon Daniel "
    "Christopher Matthew Thomas Ian Alan Gareth Jonathan Neil Alex Ben Sam Tom Luke Adam "
    "Rachel Sarah Emma Helen Catherine Louise Claire Anna Jessica Lucy Rebecca Kate Ruth "
    "Sophie Alison Fiona Jane Elizabeth Victoria Hannah Caroline Margaret Shabana Imran "
    "Rushanara Tanmanjeet Marsha Florence Wera Liam Kirsty Angus Rhiannon Owen Siobhan"
).split()
_SURNAMES = (
    "Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Walker "
    "Wright Robinson Thompson White Hughes Edwards Green Hall Wood Harris Lewis Martin "
    "Jackson Clarke Clark Turner Hill Scott Cooper Morris Ward Moore King Watson Baker "
    "Harrison Morgan Patel Young Allen Mitchell James Anderson Phillips Lee Bell Parker "
    "Davis Campbell Kelly Murphy Stewart Reid Murray Hussain Khan Ali Ahmed Begum Shah "
    "Kaur Singh Grant Fraser Hamilton Gibson Byrne Doherty Quinn Gallagher Pritchard "
    "Rees Price Powell Lloyd Owen Jenkins Bevan Fletcher Marshall Chapman Dixon Ellis "
    "Barker Palmer Fox Russell Webb Rose Holland Carter Lawson Sutherland Drummond"
).split()
_PLACES = (
    "Ashfield Barnsley Bassetlaw Bedford Birkenhead Blackburn Blackpool Bolton Bootle "
    "Bradford Brent Brighton Bristol Broxtowe Burnley Bury Calder Camborne Canterbury "
    "Carlisle Chelmsford Cheltenham Chesterfield Chichester Colchester Copeland Coventry "
    "Crawley Darlington Derby Dewsbury Doncaster Dover Dudley Durham Ealing Eastbourne "
    "Enfield Erewash Exeter Falkirk Gateshead Gedling Gloucester Gower Halifax Harlow "
    "Harrogate Hartlepool Hastings Hemel Hendon Hereford Hexham Huddersfield Ipswich "
    "Islington Keighley Kendal Kettering Lancaster Leeds Leicester Lewisham Lincoln Luton "
    "Maidstone Mansfield Medway Middlesbrough Milton Morecambe Newark Newport Northampton "
    "Norwich Nottingham Oldham Oxford Pendle Penrith Peterborough Plymouth Pontypridd "
    "Portsmouth Preston Reading Redcar Rochdale Rossendale Rotherham Rugby Salford "
    "Salisbury Sefton Sheffield Shipley Shrewsbury Slough Southampton Stafford Stevenage "
    "Stockport Stockton Stroud Sunderland Swansea Swindon Taunton Telford Thurrock "
    "Torbay Truro Wakefield Walsall Warrington Watford Wigan Winchester Wirral Woking "
    "Wolverhampton Worcester Worthing Wrexham Wycombe Yeovil York Aberdeen Dundee Perth "
    "Inverness Stirling Paisley Ayr Kilmarnock Airdrie Livingston Glenrothes Cardiff "
    "Bridgend Caerphilly Cynon Neath Ogmore Torfaen Belfast Foyle Lagan Strangford Antrim"
).split()
_SEAT_FORMS = ("{p}", "{p} North", "{p} South", "{p} East", "{p} West", "{p} Central",
               "North {p}", "South {p}", "{p} and {q}", "{p} Valley", "Mid {p}")  # fmt: skip
_SYNTHETIC_MEMBER_ID = 6001  # above the ids the real Members API had handed out by 2026


def _member(mid: int, name: str, list_as: str, party: str, seat: str) -> dict[str, Any]:
    party_name, colour = _PARTIES[party]
    return {
        "id": mid,
        "listAs": list_as,
        "name": name,
        "party": party_name,
        "partyColour": colour,
        "partyAbbreviation": party,
        "memberFrom": seat,
        "thumbnailUrl": f"https://members-api.parliament.uk/api/Members/{mid}/Thumbnail",
    }


@dataclass
class _House:
    members: list[dict[str, Any]]
    pick: _Choice
    by_party: dict[str, list[dict[str, Any]]]


class _Members:
    """Commons members per Parliament (with seats carried over between elections), one
    Lords, and ministers per department changing every two years and at each election."""

    def __init__(self, profile: Profile, seed: int) -> None:
        rng = random.Random(f"pqwatch-bench:{seed}:members")
        self.seed = seed
        self.profile = profile
        self.next_id = _SYNTHETIC_MEMBER_ID
        real = {m["id"]: m for m in profile.members}
        houses = dict(profile.member_houses)
        real_commons = [m for i, m in real.items() if houses.get(i) == "Commons"]
        real_lords = [m for i, m in real.items() if houses.get(i) == "Lords"]
        seats = self._seat_names(rng, 660)
        holders: list[tuple[str, dict[str, Any]] | None] = [None] * len(seats)
        self.parliaments: list[tuple[date, str, _House]] = []
        for start, government, shares in _COMMONS_SEATS:
            members: list[dict[str, Any]] = []
            parties = self._allocate(rng, holders, shares)
            for i, party in enumerate(parties):
                if not party:  # more seat names than seats
                    holders[i] = None
                    continue
                held = holders[i]
                if held is not None and held[0] == party and rng.random() < 0.85:
                    member = held[1]
                else:
                    member = self._commons_member(rng, party, seats[i])
                holders[i] = (party, member)
                members.append(member)
            if start == _ELECTIONS[3]:  # the real 2021 members sat in the 2019 Parliament
                members.extend(m for m in real_commons if m["partyAbbreviation"] in _PARTIES)
            self.parliaments.append((start, government, self._house(rng, members)))
        lords = [
            self._lord(rng, party) for party, count in _LORDS_PARTIES.items() for _ in range(count)
        ]
        lords.extend(m for m in real_lords if m["partyAbbreviation"] in _PARTIES)
        self.lords = self._house(rng, lords)
        self.real_ministers: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
        for mid, body, house in profile.answering_roles:
            if mid in real:
                self.real_ministers[(body, house)].append(real[mid])
        self._ministers: dict[tuple[int, int, int, str], list[dict[str, Any]]] = {}
        self._parliament_of: dict[date, int] = {}

    # -- building

    def _seat_names(self, rng: random.Random, count: int) -> list[str]:
        names: dict[str, None] = {}
        while len(names) < count:
            place, other = rng.choice(_PLACES), rng.choice(_PLACES)
            if place != other:
                names.setdefault(rng.choice(_SEAT_FORMS).format(p=place, q=other))
        return list(names)

    @staticmethod
    def _allocate(
        rng: random.Random, holders: list[tuple[str, dict[str, Any]] | None], shares: dict[str, int]
    ) -> list[str]:
        """Parties per seat: keep each party's old seats where it still has as many."""
        parties = [""] * len(holders)
        left = dict(shares)
        order = list(range(len(holders)))
        rng.shuffle(order)
        for i in order:
            held = holders[i]
            if held is not None and left.get(held[0], 0) > 0:
                parties[i] = held[0]
                left[held[0]] -= 1
        pool = [p for p, c in left.items() for _ in range(c)]
        rng.shuffle(pool)
        for i in order:
            if not parties[i] and pool:
                parties[i] = pool.pop()
        return parties

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def _commons_member(self, rng: random.Random, party: str, seat: str) -> dict[str, Any]:
        first, last = rng.choice(_FIRST), rng.choice(_SURNAMES)
        title = rng.choices(("", "Mr ", "Dr ", "Sir ", "Dame ", "Mrs "), (84, 7, 3, 2, 1, 3))[0]
        return _member(
            self._new_id(), f"{title}{first} {last}", f"{last}, {title}{first}", party, seat
        )

    def _lord(self, rng: random.Random, party: str) -> dict[str, Any]:
        last, place = rng.choice(_SURNAMES), rng.choice(_PLACES)
        if party == "Bp":
            return _member(
                self._new_id(), f"The Lord Bishop of {place}", f"{place}, Bp.", party, "Bishops"
            )
        if rng.random() < 0.06:
            return _member(
                self._new_id(), f"The Earl of {place}", f"{place}, E.", party, "Excepted Hereditary"
            )
        lady = rng.random() < 0.3
        title, initial = ("Baroness", "B.") if lady else ("Lord", "L.")
        if rng.random() < 0.35:
            last = f"{last} of {place}"
        return _member(self._new_id(), f"{title} {last}", f"{last}, {initial}", party, "Life peer")

    def _house(self, rng: random.Random, members: list[dict[str, Any]]) -> _House:
        order = list(range(len(members)))
        rng.shuffle(order)
        shares = self.profile.asker_shares or (1.0,)
        floor = shares[-1] * 0.2
        weights = [0.0] * len(members)
        for rank, i in enumerate(order):
            weights[i] = shares[rank] if rank < len(shares) else floor
        by_party: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for m in members:
            by_party[m["partyAbbreviation"]].append(m)
        return _House(members, _Choice(zip(members, weights, strict=True)), dict(by_party))

    # -- use

    def _parliament(self, day: date) -> int:
        found = self._parliament_of.get(day)
        if found is None:
            found = 0
            for i, (start, _, _) in enumerate(self.parliaments):
                if day >= start:
                    found = i
            self._parliament_of[day] = found
        return found

    def asker(self, rng: random.Random, day: date, house: str) -> dict[str, Any]:
        chamber = self.lords if house == "Lords" else self.parliaments[self._parliament(day)][2]
        member: dict[str, Any] = chamber.pick(rng)
        return member

    def ministers(self, day: date, body: int, house: str) -> list[dict[str, Any]]:
        p = self._parliament(day)
        start, government, chamber = self.parliaments[p]
        term = max(0, (day - start).days // 730)
        key = (p, term, body, house)
        found = self._ministers.get(key)
        if found is None:
            rng = random.Random(f"pqwatch-bench:{self.seed}:ministers:{key}")
            pool = (self.lords if house == "Lords" else chamber).by_party.get(government, [])
            pool = pool or (self.lords if house == "Lords" else chamber).members
            found = rng.sample(pool, min(len(pool), 1 if house == "Lords" else 3))
            if start == _ELECTIONS[3] and (body, house) in self.real_ministers:
                real = self.real_ministers[(body, house)]
                found = real + [m for m in found if m not in real][: max(0, 3 - len(real))]
            self._ministers[key] = found
        return found


# --------------------------------------------------------------------------- departments over time

_BEIS = (201, "Department for Business, Energy and Industrial Strategy",
         "To ask the Secretary of State for Business, Energy and Industrial Strategy")  # fmt: skip
_DIT = (202, "Department for International Trade",
        "To ask the Secretary of State for International Trade")  # fmt: skip
_MHCLG = (
    7,
    "Ministry of Housing, Communities and Local Government",
    "To ask the Secretary of State for Housing, Communities and Local Government",
)
_DCLG = (7, "Department for Communities and Local Government",
         "To ask the Secretary of State for Communities and Local Government")  # fmt: skip
_DLUHC = (211, "Department for Levelling Up, Housing and Communities",
          "To ask the Secretary of State for Levelling Up, Housing and Communities")  # fmt: skip
_FEB_2023, _SEP_2021, _JUL_2024, _JAN_2018 = (
    date(2023, 2, 7), date(2021, 9, 19), date(2024, 7, 8), date(2018, 1, 8))  # fmt: skip


def _era(body: int, day: date, coin: float) -> tuple[int, str, str] | None:
    """The department that existed on ``day`` in place of ``body`` (machinery-of-government
    changes since 2014 for the departments the recordings show), or None if unchanged."""
    if day < _FEB_2023 and body in (214, 215, 216):
        return _DIT if body == 214 and coin < 0.5 else _BEIS
    if body in (7, 211):
        if day < _JAN_2018:
            return _DCLG
        if day < _SEP_2021:
            return _MHCLG
        if day < _JUL_2024:
            return _DLUHC
        return _MHCLG
    return None


# --------------------------------------------------------------------------- the generator

_LORDS_STEMS = (
    ("what assessment they have made of", 5.0),
    ("what steps they are taking to", 5.0),
    ("whether they plan to", 3.0),
    ("what plans they have to", 2.0),
    ("how many", 2.0),
    ("what discussions they have had with", 2.0),
    ("whether they will publish", 1.0),
)
_HOLDING = (
    "{the} has indicated that it will not be possible to answer this question within the "
    "usual time period. An answer is being prepared and will be provided as soon as it is "
    "available."
)
_NBSP_P = "<p>\u00a0</p>"


def _capitalise(word: str) -> str:
    return word[:1].upper() + word[1:]


@cache
def _iso(d: date) -> str:
    return d.isoformat() + "T00:00:00"


class _Model:
    def __init__(
        self, profile: Profile, seed: int, start: date, end: date, pool: int = _Vocab.SIZE
    ) -> None:
        self.p = profile
        self.seed = seed
        self.start, self.end = start, end
        self.members = _Members(profile, seed)
        self.qwords = _vocab(profile.question_vocab)
        self.awords = _vocab(profile.answer_vocab)
        self._build_pool(pool)
        known = {w.lower() for w, _ in profile.question_vocab[:5000] if w.islower()}
        self.lower_known = frozenset(known)
        self.stems = _Choice(profile.question_stems)
        self.lords_stems = _Choice(_LORDS_STEMS)
        self.openers = _Choice(profile.answer_openers) if profile.answer_openers else None
        self.group_size = _Choice(profile.group_sizes)
        mean_size = sum(s * w for s, w in profile.group_sizes) / sum(
            w for _, w in profile.group_sizes
        )
        share = min(0.95, profile.grouped_share)
        # P(a new cluster is a group) so that `share` of questions end up in groups.
        self.p_group = share / (mean_size * (1 - share) + share) if share > 0 else 0.0
        self.due_commons = _Choice(((d, n), w) for d, n, w in profile.due_days_commons)
        self.due_lords = _Choice(profile.due_days_lords)
        self.departments = {d.id: d for d in profile.departments}
        topic_depts = {
            t.phrase: profile.topic_departments.get(t.phrase)
            or tuple(p for p in t.departments if p[0] in self.departments)
            for t in TOPICS
        }
        # Departments chosen because of a topic come out of the global weights, so the
        # overall department mix stays as measured.
        weights = {d.id: d.weight for d in profile.departments}
        total = sum(weights.values())
        for t in TOPICS:
            pairs = topic_depts[t.phrase]
            mass = sum(w for _, w in pairs)
            for body, w in pairs:
                if body in weights:
                    weights[body] -= total * t.rate * 0.7 * w / mass
        self.dept = _Choice((self.departments[b], max(w, total * 1e-5)) for b, w in weights.items())
        self.topic_dept = {
            phrase: _Choice((self.departments[b], w) for b, w in pairs if b in self.departments)
            for phrase, pairs in topic_depts.items()
            if any(b in self.departments for b, _ in pairs)
        }
        self.topic_headings = {
            t.phrase: profile.topic_headings.get(t.phrase) or t.headings for t in TOPICS
        }
        self.headings = {d.id: _Choice(d.headings) for d in profile.departments if d.headings}
        self.openings = {d.id: _Choice(d.openings) for d in profile.departments}
        rights: dict[str, float] = defaultdict(float)
        self.lefts: dict[int, _Choice] = {}
        for d in profile.departments:
            dept_lefts: dict[str, float] = defaultdict(float)
            for h, w in d.headings:
                if ": " in h:
                    left, right = h.split(": ", 1)
                    dept_lefts[left] += w
                    rights[right] += w
            if dept_lefts:
                self.lefts[d.id] = _Choice(dept_lefts.items())
        self.rights = _Choice(rights.items()) if rights else None
        self._heading_words: dict[str, str] = {}

    # -- pieces of text

    def _heading_phrase(self, heading: str) -> str:
        found = self._heading_words.get(heading)
        if found is None:
            words = heading.replace(":", "").split()
            found = " ".join(w.lower() if w.lower() in self.lower_known else w for w in words)
            if len(self._heading_words) < 50_000:
                self._heading_words[heading] = found
        return found

    def _heading(self, rng: random.Random, dept: Department, topics: list[Topic]) -> str:
        if topics:
            return _pick_one(rng, self.topic_headings[topics[0].phrase])
        choice = self.headings.get(dept.id)
        if choice is None:
            return dept.name
        if self.rights is not None and dept.id in self.lefts and rng.random() < 0.25:
            return f"{self.lefts[dept.id](rng)}: {self.rights(rng)}"
        heading: str = choice(rng)
        return heading

    def _question(
        self,
        rng: random.Random,
        house: str,
        opening: str,
        heading: str,
        topics: list[Topic],
    ) -> str:
        target = _from_quantiles(self.p.question_length, rng)
        if house == "Lords":
            stem: str = self.lords_stems(rng)
        else:
            stem = self.stems(rng)
        head = f"{opening} {stem}" if house == "Lords" else f"{opening}, {stem}"
        extra = [self._heading_phrase(heading)] if rng.random() < 0.6 else []
        extra.extend(topic.phrase for topic in topics)
        room = target - len(head) - sum(len(e) + 1 for e in extra)
        words = self.qwords.sample(rng, max(3, round(room / self.qwords.mean_length)))
        for phrase in extra:
            words.insert(_below(rng, len(words) + 1), phrase)
        if len(words) > 8 and rng.random() < 0.15:
            i = _below(rng, len(words) // 2)
            words.insert(i, "(a)")
            words.insert(i + 2 + _below(rng, len(words) - i - 1), "and (b)")
        return f"{head} {' '.join(words)}."

    @staticmethod
    def _sentences(rng: random.Random, words: list[str]) -> list[str]:
        """Split words into sentences of 8 to 30 words, capitalised, some with a comma."""
        out: list[str] = []
        rnd = rng.random
        i, total = 0, len(words)
        while i < total:
            n = 8 + int(rnd() * 23)
            chunk = words[i : i + n]
            i += n
            first = chunk[0]
            chunk[0] = first[:1].upper() + first[1:]
            size = len(chunk)
            if size > 10 and rnd() < 0.5:
                chunk[3 + int(rnd() * (size - 6))] += ","
            out.append(" ".join(chunk) + ".")
        return out

    @staticmethod
    def _paragraph_join(rng: random.Random, sentences: list[str]) -> str:
        """Sentences in paragraphs of 1 to 3, joined by ``</p><p>`` (no outer tags)."""
        rnd = rng.random
        for i in range(1 + int(rnd() * 3), len(sentences), 2):
            if rnd() < 0.6:
                sentences[i] = "</p><p>" + sentences[i]
        return " ".join(sentences).replace(" </p><p>", "</p><p>")

    def _build_pool(self, size: int) -> None:
        """Answer sentences drawn once per archive (i.i.d. words from the answers'
        vocabulary): answers reuse them, which keeps generation fast. The pool has
        ``size`` distinct sentences, repeated to fill a 65,536-entry table."""
        rng = random.Random(f"pqwatch-bench:{self.seed}:pool:{size}")
        words = self.awords.sample(rng, size * 19)
        sentences = self._sentences(rng, words)[:size]
        while len(sentences) < size:
            sentences.extend(self._sentences(rng, self.awords.sample(rng, 19)))
        del sentences[size:]
        self.pool = tuple(sentences) * (_Vocab.SIZE // size)
        self.pool_mean = sum(len(x) + 1 for x in sentences) / size

    def _title(self, rng: random.Random, k: int) -> str:
        return " ".join(_capitalise(w) for w in self.awords.sample(rng, k))

    def _table(self, rng: random.Random, budget: float) -> str:
        cols = _between(rng, 2, 5)

        def cell(text: str) -> str:
            return f"<td><p>{text}</p></td>"

        rows = [
            "<tr>"
            + "".join(cell(self._title(rng, _between(rng, 1, 4))) for _ in range(cols))
            + "</tr>"
        ]
        year = _between(rng, 2010, 2022)
        size = len(rows[0])
        while size < budget and len(rows) < 40:
            label = f"{year}/{(year + 1) % 100:02d}" if rng.random() < 0.5 else self._title(rng, 2)
            year += 1
            row = cell(label) + "".join(
                cell(f"{_between(rng, 0, 60_000):,}" if rng.random() < 0.9 else "~")
                for _ in range(cols - 1)
            )
            rows.append(f"<tr>{row}</tr>")
            size += len(rows[-1])
        return f"<table><tbody>{''.join(rows)}</tbody></table>"

    def _answer(self, rng: random.Random, heading: str | None, topics: list[Topic]) -> str:
        target = max(40.0, _from_quantiles(self.p.answer_length, rng))
        long = target > 300
        share = self.p.tag_share_long
        extras: list[str] = []
        budget = target
        if long and rng.random() < share.get("table", 0.0):
            table = self._table(rng, budget * 0.45)
            if rng.random() < 0.5:
                table = f"<p><strong>Table {_between(rng, 1, 3)}</strong></p>{_NBSP_P}{table}"
            extras.append(table)
            budget -= len(table)
        if long and rng.random() < share.get("ul", 0.0):
            items = [
                "<li>"
                + " ".join(self._sentences(rng, self.awords.sample(rng, _between(rng, 6, 22))))
                + "</li>"
                for _ in range(_between(rng, 2, 6))
            ]
            extras.append(f"<ul>{''.join(items)}</ul>")
            budget -= len(extras[-1])
        # One fresh sentence or two (opener, heading words and topics go there), then
        # sentences from the pool, about `budget` characters in all.
        fresh = self.awords.sample(rng, 8 + int(rng.random() * 23))
        if self.openers is not None and rng.random() < 0.45:
            opener: str = self.openers(rng)
            fresh[:0] = opener.split()
        if heading and rng.random() < 0.3:
            fresh.insert(_below(rng, len(fresh) + 1), self._heading_phrase(heading))
        for topic in topics:
            fresh.insert(_below(rng, len(fresh) + 1), topic.phrase)
        sentences = self._sentences(rng, fresh)
        room = budget - sum(len(x) + 1 for x in sentences)
        pooled = round(room / self.pool_mean) if room > 0 else 0
        if pooled > 0:
            sentences.extend(_Vocab._pick(rng, self.pool, pooled))
        text = self._paragraph_join(rng, sentences)
        wants_link = long and rng.random() < share.get("a", 0.0)
        # Half the tables come with a "<strong>Table N</strong>" caption already.
        strong = share.get("strong", 0.0) - 0.5 * share.get("table", 0.0)
        wants_strong = long and rng.random() < strong
        if not (extras or wants_link or wants_strong):
            return f"<p>{text}</p>"
        paragraphs = text.split("</p><p>")
        if wants_link:
            slug = "-".join(w.lower() for w in self.awords.sample(rng, _between(rng, 3, 7)))
            link = (
                f'<a href="https://www.gov.uk/government/publications/{html.escape(slug)}" '
                f'target="_blank">{self._title(rng, _between(rng, 2, 8))}</a>'
            )
            j = _below(rng, len(paragraphs))
            paragraphs[j] += f" Further information is available at: {link}."
        if wants_strong:
            j = _below(rng, len(paragraphs) + 1)
            paragraphs.insert(j, f"<strong>{self._title(rng, _between(rng, 1, 4))}</strong>")
        body = [f"<p>{p}</p>" for p in paragraphs]
        for extra in extras:
            j = _between(rng, 1, len(body))
            body[j:j] = [_NBSP_P, extra, _NBSP_P] if rng.random() < 0.5 else [extra]
        return "".join(body)

    # -- one cluster: a single question, or a group answered together

    def cluster(
        self,
        rng: random.Random,
        day: date,
        house: str,
        size: int,
        ids: list[int],
        uins: list[str],
    ) -> list[dict[str, Any]]:
        p = self.p
        topics = [t for t in TOPICS if rng.random() < t.rate]
        dept: Department
        if topics and topics[0].phrase in self.topic_dept and rng.random() < 0.7:
            dept = self.topic_dept[topics[0].phrase](rng)
        else:
            dept = self.dept(rng)
        body, body_name = dept.id, dept.name
        opening: str = self.openings[dept.id](rng)
        era = _era(body, day, rng.random())
        if era is not None:
            body, body_name, opening = era
        if house == "Lords":
            crown = "His" if day >= _HIS_MAJESTY else "Her"
            opening = f"To ask {crown} Majesty's Government"
        subject = self._heading(rng, dept, topics)
        heading: str | None = subject
        age = (self.end - day).days
        if age < len(p.heading_null_by_age) and rng.random() < p.heading_null_by_age[age]:
            heading = None
        tabled = _iso(day)
        if house == "Lords":
            due_days, named = int(self.due_lords(rng)), False
        else:
            due_days, named = self.due_commons(rng)
        due = day + timedelta(days=due_days)

        # The answer, shared by the whole group.
        state = "unanswered"
        answered_on = held_on = corrected_on = None
        if rng.random() >= p.unanswered_share:
            if rng.random() < p.holding_share:
                held_on = _weekday_on_or_after(
                    day + timedelta(days=max(1, round(_from_quantiles(p.holding_delay, rng))))
                )
                later = max(1, round(_from_quantiles(p.after_holding_delay, rng)))
                answered_on = _weekday_on_or_after(
                    max(held_on + timedelta(days=1), day + timedelta(days=later))
                )
            else:
                delay = max(0, round(_from_quantiles(p.answer_delay, rng)))
                answered_on = _weekday_on_or_after(day + timedelta(days=delay))
            if answered_on <= self.end:
                state = "answered"
                if rng.random() < p.corrected_share:
                    gap = round(_from_quantiles(p.correction_gap, rng))
                    corrected_on = answered_on + timedelta(days=max(0, gap))
                    if corrected_on > self.end:
                        corrected_on = None
            elif held_on is not None and held_on <= self.end:
                state = "holding"
        answerer = corrector = None
        answer_text: str | None = None
        if state != "unanswered":
            when = held_on if state == "holding" and held_on else answered_on
            assert when is not None
            answerer = _pick_one(rng, self.members.ministers(when, body, house))
            if state == "holding":
                the = body_name if body_name.startswith("The ") else f"The {body_name}"
                answer_text = _HOLDING.format(the=the)
            else:
                mention = [t for t in topics if rng.random() < 0.4]
                answer_text = self._answer(rng, heading, mention)
            if corrected_on is not None:
                corrector = answerer
                if rng.random() < 0.1:
                    corrector = _pick_one(rng, self.members.ministers(corrected_on, body, house))

        answered = state != "unanswered"
        is_holding = state == "holding" if answered else None
        is_corrected = corrected_on is not None if answered else None
        date_answered = (held_on if state == "holding" else answered_on) if answered else None
        answered_iso = _iso(date_answered) if date_answered else None
        corrected_iso = _iso(corrected_on) if corrected_on else None
        held_iso = _iso(held_on) if held_on and answered else None
        due_iso = _iso(due)
        answerer_id = answerer["id"] if answerer else None
        corrector_id = corrector["id"] if corrector else None
        same_asker = rng.random() < 0.97
        asker = self.members.asker(rng, day, house)
        interest = rng.random() < p.interest_share
        out: list[dict[str, Any]] = []
        for i in range(size):
            if i and not same_asker:
                asker = self.members.asker(rng, day, house)
                interest = rng.random() < p.interest_share
            others = [u for j, u in enumerate(uins) if j != i]
            out.append(
                {
                    "id": ids[i],
                    "askingMemberId": asker["id"],
                    "askingMember": dict(asker),
                    "house": house,
                    "memberHasInterest": interest,
                    "dateTabled": tabled,
                    "dateForAnswer": due_iso,
                    "uin": uins[i],
                    "questionText": self._question(rng, house, opening, subject, topics),
                    "answeringBodyId": body,
                    "answeringBodyName": body_name,
                    "isWithdrawn": False,
                    "isNamedDay": bool(named),
                    "groupedQuestions": others,
                    "answerIsHolding": is_holding,
                    "answerIsCorrection": is_corrected,
                    "answeringMemberId": answerer_id,
                    "answeringMember": dict(answerer) if answerer else None,
                    "correctingMemberId": corrector_id,
                    "correctingMember": dict(corrector) if corrector else None,
                    "dateAnswered": answered_iso,
                    "answerText": answer_text,
                    "originalAnswerText": "",
                    "comparableAnswerText": "",
                    "dateAnswerCorrected": corrected_iso,
                    "dateHoldingAnswer": held_iso,
                    "attachmentCount": 0,
                    "heading": heading,
                    "attachments": [],
                    "groupedQuestionsDates": [
                        {"questionUin": u, "dateTabled": tabled} for u in others
                    ],
                }
            )
        return out

    def day_items(self, plan: _Day) -> list[dict[str, Any]]:
        rng = random.Random(f"pqwatch-bench:{self.seed}:{plan.day.isoformat()}")
        clusters: list[tuple[str, int]] = []
        for house, quota in (("Lords", plan.lords), ("Commons", plan.count - plan.lords)):
            while quota > 0:
                size = self.group_size(rng) if rng.random() < self.p_group else 1
                size = min(size, quota)
                clusters.append((house, size))
                quota -= size
        rng.shuffle(clusters)
        next_id = FIRST_ID + 2 * plan.first_index
        next_uin = {"Commons": plan.commons_uin, "Lords": plan.lords_uin}
        items: list[dict[str, Any]] = []
        for house, size in clusters:
            ids = []
            for _ in range(size):
                ids.append(next_id)
                next_id += 1 + (rng.random() < 0.35)
            first = next_uin[house]
            next_uin[house] += size
            prefix = "HL" if house == "Lords" else ""
            uins = [f"{prefix}{first + j}" for j in range(size)]
            items.extend(self.cluster(rng, plan.day, house, size, ids, uins))
        return items


_MODELS: dict[tuple[int, int, date, date, int], tuple[Profile, _Model]] = {}


def _model(profile: Profile, seed: int, start: date, end: date, n: int) -> _Model:
    """The generator state for an archive, built once per process (its lazy caches are
    keyed and seeded independently of the order of use, so sharing it changes nothing)."""
    # A small archive needs only a small pool of answer sentences (a power of two).
    pool = 1 << max(10, min(16, (2 * n).bit_length()))
    key = (id(profile), seed, start, end, pool)
    found = _MODELS.get(key)
    if found is None or found[0] is not profile:
        if len(_MODELS) >= 4:
            _MODELS.clear()
        found = _MODELS[key] = (profile, _Model(profile, seed, start, end, pool))
    return found[1]


def _check(n: int, start: date, end: date) -> None:
    if n < 0:
        raise ValueError("n must be >= 0")
    if end < start:
        raise ValueError("end must not be before start")


def _generate_range(
    n: int,
    first: int,
    stop: int,
    *,
    seed: int,
    start: date,
    end: date,
    profile: Profile,
) -> Iterator[dict[str, Any]]:
    """Questions ``first`` to ``stop - 1`` (in id order) of the ``n``-question archive."""
    model = _model(profile, seed, start, end, n)
    for day in _plan(n, start, end, profile.lords_share):
        if day.first_index + day.count <= first:
            continue
        if day.first_index >= stop:
            return
        items = model.day_items(day)
        lo = max(0, first - day.first_index)
        hi = min(day.count, stop - day.first_index)
        yield from items[lo:hi]


def generate(
    n: int,
    *,
    seed: int = 1,
    start: date = DEFAULT_START,
    end: date = DEFAULT_END,
    profile: Profile | None = None,
) -> Iterator[dict[str, Any]]:
    """Stream ``n`` synthetic ``QuestionsViewModel`` dicts tabled from ``start`` to ``end``
    (the archive's "today": later answers are not given yet), in id order. Deterministic for
    a seed; memory stays constant (one day of questions at a time)."""
    _check(n, start, end)
    chosen = profile if profile is not None else load_profile()
    return _generate_range(n, 0, n, seed=seed, start=start, end=end, profile=chosen)


# --------------------------------------------------------------------------- writing


def _links(question_id: int) -> list[dict[str, str]]:
    return [{"rel": "self", "href": f"/Questions/{question_id}", "method": "GET"}]


# ASCII output (non-ASCII characters as \u escapes) encodes about a quarter faster.
_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), check_circular=False)


def _dump(item: Mapping[str, Any]) -> bytes:
    return _ENCODER.encode({"value": item, "links": _links(int(item["id"]))}).encode("ascii")


def write_pages(
    items: Iterable[dict[str, Any]],
    out_dir: Path,
    *,
    per_file: int = 50_000,
    first_file: int = 1,
    compresslevel: int = 1,
    on_item: Callable[[dict[str, Any]], None] | None = None,
) -> list[Path]:
    """Write ``items`` as gzip JSON arrays of ``{"value", "links"}`` (the list endpoint's
    item form), ``per_file`` to a file named ``questions_NNNN.json.gz`` (numbered from
    ``first_file``), streamed: about a megabyte is buffered at a time. Returns the files."""
    if per_file < 1:
        raise ValueError("per_file must be >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    out: gzip.GzipFile | None = None
    pending: list[bytes] = []
    size = in_file = 0
    try:
        for item in items:
            if out is None or in_file == per_file:
                if out is not None:
                    pending.append(b"]")
                    out.write(b"".join(pending))
                    out.close()
                    pending, size = [], 0
                path = out_dir / FILE_PATTERN.format(first_file + len(paths))
                out = gzip.GzipFile(path, "wb", compresslevel=compresslevel, mtime=0)
                paths.append(path)
                in_file = 0
            chunk = _dump(item)
            pending.append(b"," if in_file else b"[")
            pending.append(chunk)
            size += len(chunk) + 1
            in_file += 1
            if size >= 1 << 20:
                out.write(b"".join(pending))
                pending, size = [], 0
            if on_item is not None:
                on_item(item)
        if out is not None:
            pending.append(b"]")
            out.write(b"".join(pending))
    finally:
        if out is not None:
            out.close()
    return paths


@dataclass
class _Tally:
    items: int = 0
    topics: Counter[str] = field(default_factory=Counter)
    states: Counter[str] = field(default_factory=Counter)

    def __call__(self, item: dict[str, Any]) -> None:
        self.items += 1
        # Topics are always planted in the question (answers and headings only repeat
        # them), so the question alone tells; count_topics() checks everything.
        self.topics.update(count_topics(item, fields=("questionText",)))
        if item["answerIsHolding"]:
            self.states["holding now"] += 1
        elif item["dateAnswered"] is None:
            self.states["unanswered"] += 1
        if item["dateHoldingAnswer"] and not item["answerIsHolding"]:
            self.states["answered after holding"] += 1
        if item["answerIsCorrection"]:
            self.states["corrected"] += 1
        if item["groupedQuestions"]:
            self.states["grouped"] += 1
        if item["house"] == "Lords":
            self.states["lords"] += 1


def _write_slice(
    args: tuple[int, int, int, int, date, date, Profile, Path, int, int],
) -> tuple[Path, _Tally]:
    n, first, stop, seed, start, end, prof, out, number, level = args
    tally = _Tally()
    items = _generate_range(n, first, stop, seed=seed, start=start, end=end, profile=prof)
    [path] = write_pages(
        items, out, per_file=stop - first, first_file=number, compresslevel=level, on_item=tally
    )
    return path, tally


def write_archive(
    n: int,
    out_dir: Path,
    *,
    seed: int = 1,
    start: date = DEFAULT_START,
    end: date = DEFAULT_END,
    profile: Profile | None = None,
    per_file: int = 50_000,
    jobs: int = 1,
    compresslevel: int = 1,
) -> tuple[list[Path], int, Counter[str], Counter[str]]:
    """``write_pages(generate(n, ...))``, one file per worker task when ``jobs > 1`` (the
    same bytes either way). Returns (files, items, planted-topic counts, state counts)."""
    _check(n, start, end)
    prof = profile if profile is not None else load_profile()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = [
        (n, lo, min(n, lo + per_file), seed, start, end, prof, out_dir, i + 1, compresslevel)
        for i, lo in enumerate(range(0, n, per_file))
    ]
    if jobs > 1 and len(tasks) > 1:
        with multiprocessing.get_context("fork").Pool(min(jobs, len(tasks))) as pool:
            results = pool.map(_write_slice, tasks, chunksize=1)
    else:
        results = [_write_slice(t) for t in tasks]
    topics: Counter[str] = Counter()
    states: Counter[str] = Counter()
    total = 0
    for _, tally in results:
        total += tally.items
        topics.update(tally.topics)
        states.update(tally.states)
    return [path for path, _ in results], total, topics, states


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.generate",
        description="Write a deterministic synthetic archive of UK Parliament written "
        "questions (gzip JSON list pages that pqwatch's replay server loads).",
    )
    parser.add_argument("--n", type=int, default=600_000, help="questions (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default %(default)s)")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder (questions_*.json.gz files already there are replaced)",
    )
    parser.add_argument("--start", type=date.fromisoformat, default=DEFAULT_START)
    parser.add_argument("--end", type=date.fromisoformat, default=DEFAULT_END)
    parser.add_argument("--per-file", type=int, default=50_000)
    parser.add_argument(
        "--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes"
    )
    parser.add_argument("--compresslevel", type=int, default=1, choices=range(10))
    parser.add_argument("--data", type=Path, default=None, help="recordings (default: data_dir())")
    parser.add_argument("--profile", action="store_true", help="print the measured profile")
    args = parser.parse_args(argv)
    if args.n < 0 or args.per_file < 1 or args.end < args.start:
        parser.error("need --n >= 0, --per-file >= 1 and --start <= --end")

    began = time.perf_counter()
    prof = load_profile(args.data)
    if args.profile:
        print(json.dumps(prof.summary(), indent=2, ensure_ascii=False))
    measured = time.perf_counter() - began
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in args.out.glob("questions_*.json.gz"):
        stale.unlink()
    files, count, topics, states = write_archive(
        args.n,
        args.out,
        seed=args.seed,
        start=args.start,
        end=args.end,
        profile=prof,
        per_file=args.per_file,
        jobs=args.jobs,
        compresslevel=args.compresslevel,
    )
    elapsed = time.perf_counter() - began
    print(f"profile: {prof.source} ({measured:.1f} s)")
    for path in files:
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"items: {count}")
    print(f"elapsed: {elapsed:.1f} s")
    print("planted topics (items containing the phrase, expected rate):")
    for topic in TOPICS:
        got = topics[topic.phrase]
        share = got / count if count else 0.0
        print(f"  {topic.phrase!r}: {got} ({share:.4%}; planted at {topic.rate:.4%})")
    print("states: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
