"""Benchmark: one Scottish Parliament year polled, diffed and stored (issue 16: <= 10 s for
about 5,000 questions; an unchanged re-poll writes nothing and downloads nothing).

A year of ``--n`` questions is made from the recorded records (``shared/data``: the 2016
samples, wave 1 and wave 2; never the acceptance data), each copy given its own UniqueID,
EventID, date and a varied text, half of them answered, and served by
:class:`pqwatch.testing.scottish.ScottishServer` as the one JSON array the real endpoint
answers (about 7 MB for 5,000). pqwatch polls it with Westminster switched off:

1. **first poll**: download, parse, diff against an empty archive, store (timed, whole poll);
2. **unchanged, conditional**: the server answers 304 to the ETag: nothing downloaded, nothing
   written (timed; bytes and rows counted);
3. **unchanged, no ETag**: the server sends the whole year again without validators, so every
   record is parsed and recognised as unchanged by its hash: nothing written (timed);
4. **answers arrive**: the unanswered half is answered, so every one of them is written again
   with an answered event (timed).

Command line::

    python -m bench.scottish [--n 5000] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._common import save_json
from bench.generate import data_dir
from pqwatch.config import load_config
from pqwatch.service import PQWatch
from pqwatch.testing.scottish import ScottishServer

SAMPLES = (
    "scottish_parliament/motionsquestionsanswersquestions_2016_first14_records.json",
    "wave2/scottish_parliament/"
    "motionsquestionsanswersquestions_2016_20_records_at_offsets_5000000_and_10296000.json",
)
YEAR = 2026
NOW = datetime(YEAR, 11, 30, 12, tzinfo=UTC)


def make_year(n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the year with half its questions still open, the same year with all answered)."""
    base: list[dict[str, Any]] = []
    for name in SAMPLES:
        base += json.loads((data_dir() / name).read_text(encoding="utf-8"))
    answered = [r for r in base if r.get("AnswerText")]
    final, opened = [], []
    for i in range(n):
        r = copy.deepcopy(base[i % len(base)])
        if not r.get("AnswerText"):  # borrow an answer so every question ends answered
            src = answered[i % len(answered)]
            r |= {k: src[k] for k in ("AnswerText", "AnsweredByMSP")}
        day = f"{YEAR}-{1 + i % 11:02d}-{1 + i % 28:02d}"
        r |= {
            "UniqueID": 900_000 + i,
            "EventID": f"S6W-{i + 1:05d}",
            "SubmissionDateTime": f"{day}T10:00:00",
            "AnswerDate": f"{day}T16:00:00",
            "ItemText": f"{r.get('ItemText') or ''} (question {i})",
        }
        final.append(r)
        open_ = r if i % 2 else {**r, "AnswerText": "", "AnswerDate": None, "AnsweredByMSP": ""}
        opened.append(open_)
    return opened, final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scottish", description=__doc__)
    parser.add_argument("--n", type=int, default=5000, help="questions in the year")
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args(argv)
    opened, final = make_year(args.n)
    size = len(json.dumps(final, ensure_ascii=False).encode())
    work = Path(tempfile.mkdtemp(prefix="pqwatch-bench-scottish-"))
    db = work / "pqwatch.db"
    result: dict[str, Any] = {"n": args.n, "year_bytes": size, "steps": {}}
    with ScottishServer({YEAR: opened}) as server:
        (work / "config.toml").write_text(
            f'[database]\nurl = "sqlite:///{db}"\n'
            "[sources.uk_parliament]\nenabled = false\n"
            f'[sources.scottish_parliament]\nenabled = true\nbase_url = "{server.base_url}"\n'
            "requests_per_second = 1000\nmin_minutes_between_downloads = 0\n",
            encoding="utf-8",
        )
        config = load_config(work / "config.toml")

        def step(name: str) -> None:
            before = len(server.requests)
            t0 = time.perf_counter()
            with PQWatch(config, now=lambda: NOW) as svc:
                [run] = svc.poll()
            seconds = time.perf_counter() - t0
            if not run.ok:
                raise SystemExit(f"bench.scottish: the poll failed: {run.error}")
            with sqlite3.connect(db) as conn:
                stored = conn.execute("SELECT count(*), max(updated_at) FROM question").fetchone()
                events = conn.execute("SELECT kind, count(*) FROM event GROUP BY kind").fetchall()
            c = run.counts
            result["steps"][name] = {
                "seconds": round(seconds, 3),
                "statuses": [s for _, q, s in server.requests[before:] if "year=" in q],
                "bytes_received": run.bytes_received,
                "new_questions": c.new_questions,
                "new_answers": c.new_answers,
                "questions_stored": stored[0],
                "last_update": stored[1],
                "events": dict(events),
            }
            print(
                f"  {name}: {seconds:.2f} s, {run.bytes_received:,} bytes received, "
                f"{c.new_questions} new questions, {c.new_answers} new answers"
            )

        print(f"scottish year of {args.n} questions ({size / 1e6:.1f} MB):")
        step("first_poll")
        step("unchanged_conditional")
        server.etags = False
        step("unchanged_no_etag")
        server.years = {YEAR: final}
        step("answers_arrive")
    steps = result["steps"]
    unchanged_writes = [
        steps[s]["last_update"] != steps["first_poll"]["last_update"]
        for s in ("unchanged_conditional", "unchanged_no_etag")
    ]
    result["unchanged_wrote"] = any(unchanged_writes)
    first = steps["first_poll"]["seconds"]
    print(
        f"scottish: first poll {first:.2f} s for {args.n} questions (target <= 10 s); "
        f"unchanged re-poll {steps['unchanged_conditional']['seconds']:.2f} s with "
        f"{steps['unchanged_conditional']['bytes_received']} bytes; "
        f"wrote on an unchanged year: {'yes' if result['unchanged_wrote'] else 'no'}"
    )
    save_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
