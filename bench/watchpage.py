"""Benchmark: the data of a watch page (issue 18, part 3), ``PQWatch.watch_overview``.

Builds (once) an archive of ``--n`` synthetic questions from :func:`bench.generate.generate`,
stored the way ingest stores pages (``Archive.store_page``, backfilled, so nothing is
mailed), with a few watches from rare to common (the generator's planted topics: hospice in
0.3 % of questions, mental health 3 %, school 8 %), matched over the whole archive as at
start-up. For the 600,000-question size it copies ``bench.search``'s archive when that one
is built (``make bench-search``), rather than build another. Then for each watch it times
``PQWatch.watch_overview`` (the facade call a page makes: a read connection, the SQL, the
counting) and, apart, the five charts drawn from it (``pqwatch.web.charts.watch_figures``),
warm, ``--runs`` times. Target: a watch page <= 300 ms on the 600,000-question archive.

    .venv/bin/python -m bench.watchpage                 # 5,000 questions: seconds
    .venv/bin/python -m bench.watchpage --n 600000      # the bench archive (built once)
    .venv/bin/python -m bench.watchpage --json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bench._common import save_json

ROOT = Path("/tmp/pqwatch-bench")  # the archive goes in ROOT/watchpage-N
SEARCH_ARCHIVE = Path("/tmp/pqwatch-bench/search")  # bench.search's, for --n 600000
PAGE = 500
TARGET_MS = 300.0
WATCHES: tuple[tuple[str, str], ...] = (
    ("Hospices", "hospice"),
    ("Palliative care", '"palliative care"'),
    ("Mental health", '"mental health"'),
    ("Schools", "school"),
    ("Health questions in the Lords", "dept:health house:lords"),
)


def _pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def _write_config(root: Path) -> Path:
    text = f'[database]\nurl = "sqlite:///{root / "pqwatch.db"}"\n'
    for name, query in WATCHES:
        text += f"[[watches]]\nname = {json.dumps(name)}\nquery = {json.dumps(query)}\n"
    path = root / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _store(root: Path, items: Iterable[dict[str, Any]], today: date, log: Any) -> int:
    from pqwatch.decide import prepare_answer
    from pqwatch.sources.uk_parliament import parse_question
    from pqwatch.store.archive import Archive
    from pqwatch.store.db import Database

    db = Database(f"sqlite:///{root / 'pqwatch.db'}")
    db.migrate()
    archive = Archive(db, lambda: datetime.now(UTC))
    page: list[Any] = []
    count = 0
    try:
        for value in items:
            item = parse_question(value, from_list=False)
            page.append((item, prepare_answer(item)))
            if len(page) == PAGE:
                archive.store_page(page, today=today, historical=True)
                count += len(page)
                page.clear()
                if count % 50_000 == 0:
                    log(f"  stored {count:,}")
        if page:
            archive.store_page(page, today=today, historical=True)
            count += len(page)
    finally:
        db.dispose()
    return count


def build(n: int, work: Path | None = None, *, log: Any = print) -> Path:
    """The archive of `n` questions with the watches matched (built once); its folder."""
    root = (work or ROOT) / f"watchpage-{n}"
    done = root / "built.json"
    if done.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    db_path = root / "pqwatch.db"
    for stale in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
        stale.unlink(missing_ok=True)
    t0 = time.perf_counter()
    shared = SEARCH_ARCHIVE / "pqwatch.db"
    info = _built(SEARCH_ARCHIVE)
    if work is None and info.get("n") == n and shared.exists():
        log(f"copying {shared} ({shared.stat().st_size / 1e9:.1f} GB)")
        shutil.copyfile(shared, db_path)
        source = str(shared)
    else:
        from bench.generate import DEFAULT_END, generate

        log(f"generating and storing {n:,} questions")
        _store(root, generate(n, seed=1), DEFAULT_END, log)
        source = "generated"
    stored = time.perf_counter() - t0

    from pqwatch.config import load_config
    from pqwatch.service import PQWatch

    t1 = time.perf_counter()
    with PQWatch(load_config(_write_config(root))) as svc:
        svc.ensure_ready()  # migrates, adds the watches, matches them over the archive
    matched = time.perf_counter() - t1
    log(f"built in {stored:.0f} s; watches matched in {matched:.1f} s")
    done.write_text(
        json.dumps(
            {
                "n": n,
                "source": source,
                "store_seconds": round(stored, 1),
                "match_seconds": round(matched, 1),
            }
        ),
        encoding="utf-8",
    )
    return root


def _built(folder: Path) -> dict[str, Any]:
    try:
        found = json.loads((folder / "built.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _latest_day(db_path: Path) -> date:
    """The archive's own "today": its newest event (a generated archive ends in the past)."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
        day = conn.execute("SELECT max(event_date) FROM event").fetchone()[0]
    return date.fromisoformat(day) if day else date.today()


def measure(root: Path, *, runs: int, today: date | None = None) -> dict[str, Any]:
    from pqwatch.config import load_config
    from pqwatch.service import PQWatch
    from pqwatch.web.charts import watch_figures

    day = today or _latest_day(root / "pqwatch.db")
    rows = []
    with PQWatch(load_config(root / "config.toml")) as svc:
        svc.ensure_ready()
        slugs = [s for s, _, _ in svc.reads.active_watches()]
        for slug in slugs:
            t = time.perf_counter()
            ov = svc.watch_overview(slug, today=day)
            first = time.perf_counter() - t
            lat, drawn = [], []
            for _ in range(runs):
                t = time.perf_counter()
                ov = svc.watch_overview(slug, today=day)
                lat.append(time.perf_counter() - t)
                t = time.perf_counter()
                watch_figures(ov)
                drawn.append(time.perf_counter() - t)
            rows.append(
                {
                    "watch": ov.name,
                    "query": ov.query,
                    "questions": ov.totals.questions,
                    "events": ov.totals.events,
                    "period_questions": ov.totals.period_questions,
                    "first_ms": first * 1000,
                    "median_ms": statistics.median(lat) * 1000,
                    "p95_ms": _pct(lat, 95) * 1000,
                    "max_ms": max(lat) * 1000,
                    "charts_median_ms": statistics.median(drawn) * 1000,
                }
            )
    return {"today": day.isoformat(), "watches": rows}


def report(result: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    print(
        f"archive: {info.get('n', 0):,} questions ({info.get('source')}); today {result['today']}"
    )
    head = (
        f"{'watch':<30} {'questions':>9} {'in period':>9} {'first':>8} {'median':>8} "
        f"{'p95':>8} {'max':>8} {'charts':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in result["watches"]:
        print(
            f"{r['watch']:<30} {r['questions']:>9,} {r['period_questions']:>9,} "
            f"{r['first_ms']:>6.1f}ms {r['median_ms']:>6.1f}ms {r['p95_ms']:>6.1f}ms "
            f"{r['max_ms']:>6.1f}ms {r['charts_median_ms']:>5.1f}ms"
        )
    worst = max(result["watches"], key=lambda r: r["p95_ms"])
    summary = {
        "worst_p95_ms": worst["p95_ms"],
        "worst_watch": worst["watch"],
        "worst_with_charts_ms": worst["p95_ms"] + worst["charts_median_ms"],
        "target_ms": TARGET_MS,
        "within_target": worst["p95_ms"] + worst["charts_median_ms"] <= TARGET_MS,
    }
    print(
        f"watchpage: worst p95 {summary['worst_p95_ms']:.1f} ms ({worst['watch']}), "
        f"{summary['worst_with_charts_ms']:.1f} ms with its charts "
        f"(target <= {TARGET_MS:g} ms: {'ok' if summary['within_target'] else 'MISSED'}; "
        f"load {os.getloadavg()[0]:.2f})"
    )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.watchpage", description=__doc__)
    parser.add_argument("--n", type=int, default=5_000, help="questions (default %(default)s)")
    parser.add_argument("--runs", type=int, default=7, help="timed calls per watch")
    parser.add_argument("--today", type=date.fromisoformat, default=None, help="YYYY-MM-DD")
    parser.add_argument("--rebuild", action="store_true", help="build the archive again")
    parser.add_argument("--json", type=Path, default=None, help="save the results here")
    parser.add_argument("--work", type=Path, default=None, help=f"scratch folder (default {ROOT})")
    args = parser.parse_args(argv)
    root = (args.work or ROOT) / f"watchpage-{args.n}"
    if args.rebuild:
        (root / "built.json").unlink(missing_ok=True)
    root = build(args.n, args.work, log=lambda s: print(s, flush=True))
    info = _built(root)
    result = measure(root, runs=max(1, args.runs), today=args.today)
    summary = report(result, info)
    save_json(args.json, {"archive": info, "summary": summary, **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
