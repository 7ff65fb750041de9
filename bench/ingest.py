"""Ingest throughput: pqwatch's store path side by side with ``sqlite-utils`` (issue 8, item 2).

Both sides get the same N synthetic questions (:func:`bench.generate.generate`, detail form):

* **pqwatch**: ``parse_question(from_list=False)`` -> ``prepare_answer`` ->
  ``Archive.store_page`` in pages of 100, into a fresh migrated SQLite database, stored on
  the writer thread as ``pqwatch poll`` and ``backfill`` do. No HTTP; the JSON items are
  decoded (the HTTP client's job) before the clock starts. (The profile covers the main
  thread only.)
* **sqlite-utils**: the same items as flat newline-delimited JSON rows (answer HTML as
  given), then the two commands a user would run, timed as whole processes::

      sqlite-utils insert DB questions FILE --nl --pk id
      sqlite-utils enable-fts DB questions heading question_text answer_text --fts5 \\
          --tokenize porter

Each pair runs ``--repeat`` times (default 2); the best time of each side is reported, with
the ratio pqwatch / sqlite-utils (target <= 1.0)::

    python -m bench.ingest --n 100000 --seed 1 --json /tmp/pqwatch-bench/ingest.json
    python -m bench.ingest --n 300          # smoke test: a few seconds

``--profile FILE`` writes a cProfile of the first pqwatch run (``python -m pstats FILE``).

``--floor`` also measures the least a single SQLite writer could take for pqwatch's store: it
records every INSERT the store path issues (statement and rows, transaction by transaction),
then replays them alone on one connection, with no parsing, cleaning or row building, side
by side with sqlite-utils (``--repeat`` times, alternately). It replays them twice: into the
schema as migrated, and into a *lean* one (no stored copy of the full-text content, and none
of the question and event indexes that search, feeds and digests use). See
docs/PERFORMANCE.md, "Why the ingest target is missed"::

    python -m bench.ingest --n 100000 --floor --json /tmp/pqwatch-bench/ingest-floor.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bench._common import save_json
from bench.generate import generate

PAGE = 100
DEFAULT_WORK = Path("/tmp/pqwatch-bench/ingest")
TODAY = date(2026, 5, 1)  # the generated archive ends on 2026-04-30


def _flat(value: dict[str, Any]) -> dict[str, Any]:
    """One question as the flat row a sqlite-utils user would insert."""

    def name(key: str) -> Any:
        m = value.get(key)
        return m.get("name") if isinstance(m, dict) else None

    return {
        "id": value["id"],
        "uin": value.get("uin"),
        "house": value.get("house"),
        "date_tabled": value.get("dateTabled"),
        "date_for_answer": value.get("dateForAnswer"),
        "heading": value.get("heading"),
        "question_text": value.get("questionText"),
        "answer_text": value.get("answerText"),
        "is_withdrawn": value.get("isWithdrawn"),
        "answer_is_holding": value.get("answerIsHolding"),
        "answer_is_correction": value.get("answerIsCorrection"),
        "date_answered": value.get("dateAnswered"),
        "date_answer_corrected": value.get("dateAnswerCorrected"),
        "answering_body_id": value.get("answeringBodyId"),
        "answering_body": value.get("answeringBodyName"),
        "asking_member_id": value.get("askingMemberId"),
        "asking_member": name("askingMember"),
        "answering_member_id": value.get("answeringMemberId"),
        "answering_member": name("answeringMember"),
    }


def prepare_inputs(n: int, seed: int, work: Path) -> tuple[Path, Path]:
    """Write the raw items (one JSON per line) and the flat rows; streamed, constant memory."""
    work.mkdir(parents=True, exist_ok=True)
    raw, flat = work / f"raw-{n}-{seed}.jsonl", work / f"flat-{n}-{seed}.jsonl"
    if raw.exists() and flat.exists():
        return raw, flat
    with open(raw.with_suffix(".tmp"), "w") as r:
        with open(flat.with_suffix(".tmp"), "w") as f:
            for value in generate(n, seed=seed):
                r.write(json.dumps(value, ensure_ascii=False) + "\n")
                f.write(json.dumps(_flat(value), ensure_ascii=False) + "\n")
    raw.with_suffix(".tmp").replace(raw)
    flat.with_suffix(".tmp").replace(flat)
    return raw, flat


def _pages(raw: Path) -> Iterator[list[dict[str, Any]]]:
    page: list[dict[str, Any]] = []
    with open(raw) as fh:
        for line in fh:
            page.append(json.loads(line))
            if len(page) == PAGE:
                yield page
                page = []
    if page:
        yield page


def _fresh(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def run_pqwatch(raw: Path, db_path: Path, profile: Path | None = None) -> dict[str, Any]:
    from pqwatch.decide import prepare_answer
    from pqwatch.ingest import PreparedPage
    from pqwatch.sources.uk_parliament import parse_question
    from pqwatch.store.archive import Archive, StoreCounts
    from pqwatch.store.db import Database

    _fresh(db_path)
    db = Database(f"sqlite:///{db_path}")
    db.migrate()
    archive = Archive(db, now=lambda: datetime.now(UTC))
    prof = None
    if profile is not None:
        import cProfile

        prof = cProfile.Profile()
    items = 0
    stored: list[StoreCounts] = []

    def store(page: PreparedPage) -> StoreCounts:
        return archive.store_page(page.batch, today=TODAY, historical=True)

    # Decoded before the clock starts: subtracting decode time from a timed loop would also
    # take off the writer thread's work done meanwhile. Frozen, so that the collector does
    # not walk a million decoded objects over and over (an HTTP client holds one page).
    d0, dc0 = time.perf_counter(), time.process_time()
    pages = list(_pages(raw))
    gc.freeze()
    decode, decode_cpu = time.perf_counter() - d0, time.process_time() - dc0
    t0, c0 = time.perf_counter(), time.process_time()
    # As Ingest does for a window or a backfill: pages are stored on the writer thread while
    # the next is prepared (the pool keeps the connections, and so the WAL, open).
    writer = PreparedPage.writer(store, stored.append)
    with writer:
        for page in pages:
            if prof is not None:
                prof.enable()
            batch = []
            for value in page:
                q = parse_question(value, from_list=False)
                batch.append((q, prepare_answer(q)))
            writer.submit(PreparedPage(len(page), batch))
            if prof is not None:
                prof.disable()
            items += len(page)
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    del pages
    gc.unfreeze()
    db.dispose()
    if prof is not None and profile is not None:
        prof.dump_stats(str(profile))
    written = sum(c.items_written for c in stored)
    if written != items:
        raise SystemExit(f"pqwatch wrote {written} of {items} items")
    return {
        "items": items,
        "seconds": total,
        "cpu_seconds": cpu,
        "json_decode_seconds": decode,
        "json_decode_cpu_seconds": decode_cpu,
    }


# What "lean" drops from the migrated schema: the full-text index keeps no copy of the text
# (content=''; pqwatch's snippets and updates need one) and the indexes reads rely on go.
_LEAN = (
    "DROP TABLE question_fts",
    "CREATE VIRTUAL TABLE question_fts USING fts5(heading, question, answer, facets, "
    "tokenize='porter unicode61 remove_diacritics 2', content='')",
    "INSERT INTO question_fts(question_fts, rank) VALUES('automerge', 8)",
    *(
        f"DROP INDEX {name}"
        for name in (
            "ix_question_answering_body_id", "ix_question_answering_member_id",
            "ix_question_asking_member_id", "ix_question_date_answered",
            "ix_question_date_tabled", "ix_question_status", "ix_event_created_at",
        )
    ),
)  # fmt: skip

Statements = list[list[tuple[str, list[tuple[Any, ...]], str]]]


def record_inserts(raw: Path, db_path: Path) -> Statements:
    """Every INSERT the store path issues for these items, a list per transaction (untimed)."""
    import pqwatch.store.archive as archive_module
    import pqwatch.store.sqlite.ingest as dialect_module
    from pqwatch.decide import prepare_answer
    from pqwatch.sources.uk_parliament import parse_question
    from pqwatch.store.archive import Archive
    from pqwatch.store.db import Database

    txns: Statements = []
    insert_rows = archive_module.insert_rows

    def record(cur: Any, head: str, rows: Sequence[Sequence[Any]], tail: str = "") -> None:
        txns[-1].append((head, [tuple(r) for r in rows], tail))
        insert_rows(cur, head, rows, tail)

    _fresh(db_path)
    db = Database(f"sqlite:///{db_path}")
    db.migrate()
    archive = Archive(db, now=lambda: datetime.now(UTC))
    # The archive's INSERTs, and the dialect module's: new questions and their index rows.
    archive_module.insert_rows = record  # type: ignore[assignment]
    dialect_module.insert_rows = record  # type: ignore[assignment]
    try:
        for pages in _batched(_pages(raw), 30):  # as the writer merges 30 waiting pages
            txns.append([])
            batch = [
                (q, prepare_answer(q))
                for q in (parse_question(v, from_list=False) for page in pages for v in page)
            ]
            archive.store_page(batch, today=TODAY, historical=True)
    finally:
        archive_module.insert_rows = insert_rows  # type: ignore[assignment]
        dialect_module.insert_rows = insert_rows  # type: ignore[assignment]
        db.dispose()
    return txns


def _batched(pages: Iterator[list[dict[str, Any]]], n: int) -> Iterator[list[list[Any]]]:
    group: list[list[Any]] = []
    for page in pages:
        group.append(page)
        if len(group) == n:
            yield group
            group = []
    if group:
        yield group


def replay_inserts(txns: Statements, db_path: Path, *, lean: bool) -> dict[str, Any]:
    """Time the recorded INSERTs alone on one connection, as the writer's transactions."""
    import sqlite3

    from pqwatch.store.db import Database, _on_connect, insert_rows

    _fresh(db_path)
    db = Database(f"sqlite:///{db_path}")
    db.migrate()
    db.dispose()
    conn = sqlite3.connect(db_path, isolation_level=None)
    _on_connect(conn, None)  # the pragmas pqwatch's connections get
    cur = conn.cursor()
    if lean:
        for sql in _LEAN:
            cur.execute(sql)
    t0, c0 = time.perf_counter(), time.process_time()
    for txn in txns:
        cur.execute("BEGIN IMMEDIATE")
        for head, rows, tail in txn:
            insert_rows(cur, head, rows, tail)
        cur.execute("COMMIT")
    conn.close()  # checkpoints the WAL, as the store path's last connection does
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}


def run_floor(raw: Path, flat: Path, work: Path, n: int, repeat: int) -> dict[str, Any]:
    txns = record_inserts(raw, work / "pqwatch-record.db")
    gc.collect()
    gc.freeze()  # the recorded rows are kept; the collector need not walk them
    runs: dict[str, list[dict[str, Any]]] = {"as-is": [], "lean": [], "sqlite-utils": []}
    for _ in range(repeat):
        runs["as-is"].append(replay_inserts(txns, work / "pqwatch-replay.db", lean=False))
        runs["sqlite-utils"].append(run_sqlite_utils(flat, work / "sqlite-utils.db", n))
        runs["lean"].append(replay_inserts(txns, work / "pqwatch-replay.db", lean=True))
    gc.unfreeze()
    best = {k: min(r["seconds"] for r in v) for k, v in runs.items()}
    return {
        "rows": sum(len(rows) for t in txns for _, rows, _ in t),
        "transactions": len(txns),
        "runs": runs,
        "best_seconds": best,
        "ratio_as_is": best["as-is"] / best["sqlite-utils"],
        "ratio_lean": best["lean"] / best["sqlite-utils"],
    }


def _sqlite_utils() -> str:
    here = Path(sys.executable).parent / "sqlite-utils"
    found = str(here) if here.exists() else shutil.which("sqlite-utils")
    if not found:
        raise SystemExit("sqlite-utils not found (pip install sqlite-utils)")
    return found


def run_sqlite_utils(flat: Path, db_path: Path, n: int) -> dict[str, Any]:
    _fresh(db_path)
    exe = _sqlite_utils()
    cmds = [
        [exe, "insert", str(db_path), "questions", str(flat), "--nl", "--pk", "id"],
        [exe, "enable-fts", str(db_path), "questions", "heading", "question_text",
         "answer_text", "--fts5", "--tokenize", "porter"],
    ]  # fmt: skip
    parts = []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    for cmd in cmds:
        c0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        parts.append(time.perf_counter() - c0)
    total = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {
        "items": n,
        "seconds": total,
        "cpu_seconds": cpu,
        "insert_seconds": parts[0],
        "fts_seconds": parts[1],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="items (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="scratch folder")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each side (best wins)")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile the first run")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also replay pqwatch's INSERTs alone, against sqlite-utils (the writer's floor)",
    )
    args = parser.parse_args(argv)
    if args.n < 1 or args.repeat < 1:
        parser.error("need --n >= 1 and --repeat >= 1")

    g0 = time.perf_counter()
    raw, flat = prepare_inputs(args.n, args.seed, args.work)
    gen_seconds = time.perf_counter() - g0
    runs: dict[str, list[dict[str, Any]]] = {"pqwatch": [], "sqlite-utils": []}
    for i in range(args.repeat):
        runs["pqwatch"].append(
            run_pqwatch(raw, args.work / "pqwatch.db", args.profile if i == 0 else None)
        )
        runs["sqlite-utils"].append(run_sqlite_utils(flat, args.work / "sqlite-utils.db", args.n))
    best = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items()}
    ratio = best["pqwatch"]["seconds"] / best["sqlite-utils"]["seconds"]
    # CPU time is steadier than wall time when other jobs share the machine.
    cpu = {k: min(r["cpu_seconds"] for r in v) for k, v in runs.items()}
    cpu_ratio = cpu["pqwatch"] / cpu["sqlite-utils"]
    result = {
        "n": args.n,
        "seed": args.seed,
        "repeat": args.repeat,
        "generate_seconds": round(gen_seconds, 2),
        "load_average": os.getloadavg(),
        "runs": runs,
        "best": best,
        "median_seconds": {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()},
        "ratio": ratio,
        "cpu_seconds": cpu,
        "cpu_ratio": cpu_ratio,
        "target_met": ratio <= 1.0,
    }
    print(f"{'side':<14}{'items':>9}{'seconds':>10}{'items/s':>10}   runs (s)")
    for side, r in best.items():
        times = ", ".join(f"{x['seconds']:.2f}" for x in runs[side])
        rate = r["items"] / r["seconds"]
        print(f"{side:<14}{r['items']:>9}{r['seconds']:>10.2f}{rate:>10.0f}   {times}")
    verdict = "met" if ratio <= 1.0 else "NOT met"
    load = os.getloadavg()[0]
    print(f"ratio pqwatch/sqlite-utils: {ratio:.2f} (target <= 1.0: {verdict}); load {load:.2f}")
    print(
        f"CPU seconds: pqwatch {cpu['pqwatch']:.2f}, sqlite-utils {cpu['sqlite-utils']:.2f}, "
        f"ratio {cpu_ratio:.2f}"
    )
    if args.floor:
        floor = run_floor(raw, flat, args.work, args.n, args.repeat)
        result["floor"] = floor
        b = floor["best_seconds"]
        print(
            f"floor, the {floor['rows']:,} rows pqwatch inserts, replayed alone in "
            f"{floor['transactions']} transactions: {b['as-is']:.2f} s "
            f"(ratio {floor['ratio_as_is']:.2f}); lean schema {b['lean']:.2f} s "
            f"(ratio {floor['ratio_lean']:.2f}); sqlite-utils {b['sqlite-utils']:.2f} s"
        )
    save_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
