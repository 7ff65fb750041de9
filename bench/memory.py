"""Peak memory of a real backfill (issue 8, item 7: a 100,000-item backfill <= 250 MB RSS).

Generates N questions (:func:`bench.generate.generate`), writes them as list pages
(:func:`bench.generate.write_pages`), serves them from a :class:`ReplayServer` running in
this process, and runs the real command in a subprocess, as a user would::

    pqwatch --config WORK/config.toml backfill --since START --until END --no-detail --format json

The figure reported is the pqwatch process's own peak RSS (``ru_maxrss`` from ``wait4``;
the replay server's memory is this process's, not the child's), with items/s and requests
from the command's JSON summary::

    python -m bench.memory --n 100000 --json /tmp/pqwatch-bench/memory.json
    python -m bench.memory --n 300          # smoke test: a few seconds
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench._common import save_json
from bench.generate import DEFAULT_END, DEFAULT_START, generate, write_pages

DEFAULT_WORK = Path("/tmp/pqwatch-bench/memory")
LIMIT_MB = 250
TIME = "/usr/bin/time"


def _span(n: int) -> tuple[date, date]:
    """The generator's whole span for a real run; a short one for a small N (fewer empty
    weekly windows, so a smoke test is quick)."""
    if n >= 20_000:
        return DEFAULT_START, DEFAULT_END
    return DEFAULT_END - timedelta(days=max(14, n // 20)), DEFAULT_END


def _pages(n: int, seed: int, start: date, end: date, work: Path) -> list[Path]:
    folder = work / f"pages-{n}-{seed}-{start}-{end}"
    done = folder / "done"
    if done.exists():
        return sorted(folder.glob("questions_*.json.gz"))
    paths = write_pages(generate(n, seed=seed, start=start, end=end), folder)
    done.write_text("ok\n")
    return paths


def _config(work: Path, base_url: str) -> Path:
    path = work / "config.toml"
    db = work / "pqwatch.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    path.write_text(
        f'[database]\nurl = "sqlite:///{db}"\n\n'
        f"[sources.uk_parliament]\n"
        f'base_url = "{base_url}"\n'
        "requests_per_second = 10000\n"
        "page_size = 100\n"
        "max_retries = 0\n"
    )
    return path


def run(n: int, seed: int, work: Path) -> dict[str, Any]:
    from pqwatch.testing.replay import ReplayServer

    work.mkdir(parents=True, exist_ok=True)
    start, end = _span(n)
    g0 = time.perf_counter()
    paths = _pages(n, seed, start, end, work)
    gen_seconds = time.perf_counter() - g0
    server = ReplayServer()
    held = server.load_files(paths)
    with server:
        config = _config(work, server.base_url)
        cmd = [
            sys.executable,
            "-m",
            "pqwatch",
            "--config",
            str(config),
            "backfill",
            "--since",
            start.isoformat(),
            "--until",
            end.isoformat(),
            "--no-detail",
            "--format",
            "json",
        ]
        # Through /usr/bin/time: this process is large (it holds the replay data) and Linux
        # keeps the peak RSS of a child across exec, so a child forked from here would
        # report this process's size; time(1) is small, and so is what it forks.
        maxrss = work / "maxrss.txt"
        maxrss.unlink(missing_ok=True)
        if os.path.exists(TIME):
            cmd = [TIME, "-f", "%M", "-o", str(maxrss), *cmd]
        t0 = time.perf_counter()
        with open(work / "stdout.json", "w+") as fout, open(work / "stderr.txt", "w+") as ferr:
            proc = subprocess.Popen(cmd, stdout=fout, stderr=ferr, text=True)
            # wait4 gives this child's own rusage (its peak RSS), not all children's.
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = code = os.waitstatus_to_exitcode(status)
            wall = time.perf_counter() - t0
            fout.seek(0)
            ferr.seek(0)
            out, err = fout.read(), ferr.read()
        served = len(server.requests)
    if code != 0:
        raise SystemExit(f"pqwatch backfill failed ({code}):\n{err[-2000:]}")
    summary = json.loads(out)
    run0 = summary[0] if isinstance(summary, list) else summary
    items = int(run0.get("items_seen", 0))
    # Kilobytes on Linux; without time(1) it may include this process's size (see above).
    kb = int(maxrss.read_text().split()[-1]) if maxrss.exists() else usage.ru_maxrss
    peak_mb = kb / 1024
    return {
        "n": n,
        "seed": seed,
        "since": start.isoformat(),
        "until": end.isoformat(),
        "generate_seconds": round(gen_seconds, 2),
        "questions_served": held,
        "items": items,
        "new_questions": run0.get("new_questions"),
        "requests": run0.get("requests"),
        "requests_served": served,
        "seconds": round(wall, 2),
        "pqwatch_seconds": run0.get("seconds"),
        "items_per_second": round(items / wall, 1) if wall else None,
        "peak_rss_mb": round(peak_mb, 1),
        "limit_mb": LIMIT_MB,
        "target_met": peak_mb <= LIMIT_MB and items == n,
        "load_average": os.getloadavg(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="items (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="scratch folder")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("need --n >= 1")
    r = run(args.n, args.seed, args.work)
    print(
        f"items {r['items']} of {r['n']}, {r['seconds']} s ({r['items_per_second']} items/s), "
        f"{r['requests']} requests"
    )
    print(
        f"peak RSS of the pqwatch process: {r['peak_rss_mb']} MB (target <= {LIMIT_MB} MB: "
        f"{'met' if r['target_met'] else 'NOT met'}); load average {r['load_average'][0]:.2f}"
    )
    save_json(args.json, r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
