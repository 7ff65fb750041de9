"""Benchmark: match a batch of new events against the active watches (issue 8, item 4).

Builds a fresh archive from :func:`bench.generate.generate` (an older ``--archive`` part first,
then the ``--events`` new part), stored the way ingest stores pages but without the matcher
hook, so the new events exist unmatched. ``--watches`` realistic queries (words, phrases, OR,
NOT, dept:/house: filters, the planted topics) come from the config, with one subscriber who
receives every watch. Then it times ``Matcher.on_events`` for the new event ids inside one
write transaction, in-process, as ingest runs it. Target: 10,000 events x 200 watches <= 2 s.

Command line::

    python -m bench.matching --events 10000 --watches 200 [--archive 50000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench._common import save_json
from bench.generate import TOPICS, generate
from pqwatch.config import load_config
from pqwatch.decide import prepare_answer
from pqwatch.service import PQWatch
from pqwatch.sources.uk_parliament import parse_question

START = date(2024, 1, 1)
END = date(2024, 3, 31)
TODAY = date(2024, 4, 1)
PAGE = 500
TARGET_SECONDS = 2.0

_WORD = re.compile(r"[A-Za-z]{5,}")
_STOP = frozenset(
    "about which their there these those would could should steps taking assessment "
    "department secretary state minister government majesty potential estimate asked "
    "number since years whether impact provide ensure".split()
)


def clock(day: date = TODAY, hour: int = 12) -> Any:
    moment = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
    return lambda: moment


def write_config(
    folder: Path,
    watches: Sequence[tuple[str, str]],
    subscribers: Iterable[tuple[str, list[str] | None]] = (("bench@example.org", None),),
    extra: str = "",
) -> Path:
    """A config file for a database in ``folder`` with these watches and subscribers."""
    text = '[database]\nurl = "sqlite:///pqwatch.db"\n'
    for name, query in watches:
        text += f"[[watches]]\nname = {json.dumps(name)}\nquery = {json.dumps(query)}\n"
    for email, names in subscribers:
        text += f"[[subscribers]]\nemail = {json.dumps(email)}\n"
        if names is not None:
            text += f"watches = {json.dumps(names)}\n"
    text += extra
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def store_items(svc: PQWatch, items: Iterable[dict[str, Any]], *, historical: bool = False) -> int:
    """Store API item dicts page by page as ingest does (detail form), WITHOUT the matcher
    hook: the events are stored unmatched. Returns the number of items stored."""
    page: list[Any] = []
    n = 0

    def flush() -> None:
        batch = [(q, prepare_answer(q)) for q in page]
        svc.archive.store_page(batch, today=TODAY, historical=historical)
        page.clear()

    for value in items:
        page.append(parse_question(value, from_list=False))
        n += 1
        if len(page) == PAGE:
            flush()
    if page:
        flush()
    return n


def watch_queries(sample: Sequence[dict[str, Any]], n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` realistic watch queries drawn from the sample's words, headings, departments and
    the generator's planted topics."""
    rng = random.Random(seed)
    words: Counter[str] = Counter()
    bigrams: Counter[str] = Counter()
    depts: Counter[str] = Counter()
    for item in sample:
        toks = [w.lower() for w in _WORD.findall(item["questionText"])]
        toks = [w for w in toks if w not in _STOP and not w.startswith(("school", "mental"))]
        words.update(toks)
        bigrams.update(f"{a} {b}" for a, b in zip(toks, toks[1:], strict=False))
        if item.get("answeringBodyName"):
            depts[item["answeringBodyName"]] += 1
    # Topic words, as people watch them: each in roughly 0.1 % to 1 % of questions (the
    # commonest words would match a tenth of everything; the rarest, nothing).
    ranked = [w for w, c in words.most_common() if c >= 2]
    pool = ranked[len(ranked) // 8 : len(ranked) // 2] or ranked
    phrases = [b for b, c in bigrams.most_common(400) if c >= 2][40:] or [f"{pool[0]} {pool[1]}"]
    dept_names = [d for d, _ in depts.most_common(12)]
    topics = [t.phrase for t in TOPICS]

    def w() -> str:
        return rng.choice(pool)

    def topic() -> str:
        p = rng.choice(topics)
        return f'"{p}"' if " " in p else p

    makers = [
        lambda: w(),
        lambda: f"{w()} {w()}",
        lambda: f'"{rng.choice(phrases)}"',
        lambda: f"{w()} OR {w()}",
        lambda: f"{w()} -{w()}",
        lambda: f"{w()} NOT {w()}",
        lambda: f'{w()} dept:"{rng.choice(dept_names)}"',
        lambda: f"{w()} house:lords",
        lambda: f'({w()} OR {w()}) dept:"{rng.choice(dept_names)}"',
        lambda: topic(),
        lambda: f"{topic()} OR {w()}",
        lambda: f"{w()}*",
    ]
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    i = 0
    while len(out) < n:
        q = makers[i % len(makers)]() if i >= len(topics) else topic()
        i += 1
        if q in seen:
            continue
        seen.add(q)
        out.append((f"Watch {len(out) + 1:04d}", q))
    return out


def build(
    folder: Path, *, events: int, archive: int, watches: int, seed: int
) -> tuple[PQWatch, list[int], dict[str, float]]:
    """The archive with unmatched new events; returns (service, new event ids, timings)."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    # Some questions are stored with one event (first seen answered), a few with none.
    new = list(generate(events + events // 2 + 10, seed=seed + 1, start=START, end=END))
    queries = watch_queries(new[:2000], watches, seed)
    svc = PQWatch(load_config(write_config(folder, queries)), now=clock())
    svc.ensure_ready()  # watches and subscriber in place on an empty archive
    if archive:
        store_items(svc, generate(archive, seed=seed, end=date(2023, 12, 31)), historical=True)
    with svc.db.read() as session:
        before = session.connection().execute(sa.text("SELECT coalesce(max(id), 0) FROM event"))
        last_old = int(before.scalar() or 0)
    store_items(svc, new)
    with svc.db.read() as session:
        ids = [
            r[0]
            for r in session.connection().execute(
                sa.text(
                    "SELECT id FROM event WHERE id > :last AND kind IN "
                    "('tabled', 'holding', 'answered', 'corrected') ORDER BY id LIMIT :n"
                ),
                {"last": last_old, "n": events},
            )
        ]
    timings["build_seconds"] = round(time.perf_counter() - t0, 2)
    return svc, ids, timings


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pqwatch-bench-matching-") as tmp:
        svc, ids, timings = build(
            Path(tmp),
            events=args.events,
            archive=args.archive,
            watches=args.watches,
            seed=args.seed,
        )
        try:
            load_before = os.getloadavg()[0]
            t0, c0 = time.perf_counter(), time.process_time()
            with svc.db.write() as session:
                matches = svc.matcher.on_events(session, ids, [])
            seconds = time.perf_counter() - t0
            cpu_seconds = time.process_time() - c0
            load_after = os.getloadavg()[0]
            with svc.db.read() as session:
                conn = session.connection()
                deliveries = conn.execute(sa.text("SELECT count(*) FROM delivery")).scalar()
                stored = conn.execute(sa.text("SELECT count(*) FROM watch_match")).scalar()
                matched_watches = conn.execute(
                    sa.text("SELECT count(DISTINCT watch_id) FROM watch_match")
                ).scalar()
        finally:
            svc.close()
    result: dict[str, Any] = dict(timings)
    result.update(
        benchmark="matching",
        events=len(ids),
        watches=args.watches,
        archive_questions=args.archive,
        seconds=round(seconds, 3),
        # Another job on the machine inflates the wall time; CPU time much less so.
        cpu_seconds=round(cpu_seconds, 3),
        load_average=[round(load_before, 2), round(load_after, 2)],
        matches=matches,
        watch_match_rows=stored,
        watches_with_matches=matched_watches,
        deliveries=deliveries,
        target_seconds=TARGET_SECONDS,
        within_target=seconds <= TARGET_SECONDS,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.matching", description=__doc__)
    p.add_argument("--events", type=int, default=10_000, help="new events to match")
    p.add_argument("--watches", type=int, default=200, help="active watches")
    p.add_argument("--archive", type=int, default=50_000, help="older questions stored first")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the result as JSON here")
    args = p.parse_args(argv)
    result = run(args)
    save_json(args.json, result)
    print(
        f"matching: {result['events']} events x {result['watches']} watches "
        f"(archive +{result['archive_questions']}): {result['seconds']:.3f} s "
        f"(CPU {result['cpu_seconds']:.3f} s, load {result['load_average'][1]:.2f}), "
        f"{result['matches']} matches, {result['deliveries']} deliveries "
        f"(target <= {TARGET_SECONDS:g} s: {'ok' if result['within_target'] else 'MISSED'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
