"""Benchmark: the web app's speed (issue 18).

Targets, on the 600,000-question archive:

* **search page**: the server time of ``/search?q=...`` for ``bench.search``'s 20 queries, p95
  <= 150 ms;
* **watch page**: ``/watches/<slug>`` <= 300 ms (p95) for each watch (``bench.watchpage``
  times the facade call behind it; this times the whole page);
* **load**: 50 concurrent clients for 60 s against search and item pages: no errors, p95
  <= 500 ms.

The archive is ``bench.watchpage``'s (``watchpage-N``: the questions with five watches matched),
built once; for 600,000 questions it is a copy of ``bench.search``'s archive, which is left as
it is.

The first two are timed in process, without a network: the Starlette app of
``pqwatch.web.app.create_app`` over a ``PQWatch`` facade (with the clock at the archive's last
day, as ``bench.watchpage`` has it), each request handed to it as an ASGI call, from the call to
the last byte of the response body. Each URL is requested ``--runs`` times after one run that is
not counted; the search page's p95 is over all its requests (20 x ``--runs``). Beside each
page, the facade call alone (``search``, ``watch_overview``) is timed too, so the rest (facet
counts, templates, charts, the framework) is the difference.

The load runs the real server, ``pqwatch serve --port 0`` (uvicorn) in a process of its own, and
drives it from this process with ``--clients`` asyncio tasks sharing an httpx client (a
connection each, kept alive), each sending its next request as soon as the last is answered,
for ``--seconds``: a search page (one of the 20 queries) with chance ``--search-share``, else
the page of a random stored question (``/q/DATE/UIN``, as search results link it). An error is
a status other than 2xx, a timeout (``--timeout``) or a failed connection. On a small machine
the load generator shares the cores with the server: the report gives both processes' CPU time,
and what other processes took meanwhile (the machine's busy time in /proc/stat, less theirs),
which tells a disturbed run better than the load average: the server's own threads, waiting
for its GIL, count in that. ``--workers 1,2`` runs the load once for each number of server
processes (``pqwatch serve --workers N``; the server's CPU is then its worker processes' too),
one after the other, reported side by side. ``--parts`` runs some of the three only.

    .venv/bin/python -m bench.web                          # 5,000 questions: about 2 minutes
    .venv/bin/python -m bench.web --n 600000               # the bench archive (built once)
    .venv/bin/python -m bench.web --n 300 --clients 4 --seconds 2   # smoke test
    .venv/bin/python -m bench.web --n 600000 --parts load --workers 1,2
    .venv/bin/python -m bench.web --json results.json
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import random
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from datetime import time as clock
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

from bench import watchpage
from bench._common import save_json
from bench.search import QUERIES

SEARCH_TARGET_MS = 150.0
WATCH_TARGET_MS = 300.0
LOAD_TARGET_MS = 500.0
PARTS = ("search", "watch", "load")
BIN = Path(sys.executable).parent


def _pct(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile, as the other benchmarks take it."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def _stats(seconds: Sequence[float]) -> dict[str, float]:
    return {
        "median_ms": statistics.median(seconds) * 1000,
        "p95_ms": _pct(seconds, 95) * 1000,
        "max_ms": max(seconds) * 1000,
    }


def _load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def search_url(query: str) -> str:
    """The address the search box sends (its first page, by relevance)."""
    return "/search?" + urlencode({"q": query})


# -- in process: the app as an ASGI callable -------------------------------------------------


async def asgi_get(app: Any, target: str) -> tuple[int, int]:
    """GET `target` from the ASGI `app` directly: (status, body bytes)."""
    path, _, query = target.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(path),
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"accept", b"text/html")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    status, size = 0, 0
    finished = asyncio.Event()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await finished.wait()  # as a server does: the client goes once it has the response
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, size
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                finished.set()

    await app(scope, receive, send)
    return status, size


def _archive_now(db_path: Path) -> Callable[[], datetime]:
    day = watchpage._latest_day(db_path)
    moment = datetime.combine(day, clock(12), UTC)
    return lambda: moment


def measure_pages(root: Path, *, runs: int, parts: Sequence[str]) -> dict[str, Any]:
    """Search pages and watch pages through the app in process (see the module docstring)."""
    from pqwatch.config import load_config
    from pqwatch.service import PQWatch
    from pqwatch.web.app import create_app

    config = load_config(root / "config.toml")
    now = _archive_now(root / "pqwatch.db")
    out: dict[str, Any] = {"today": now().date().isoformat()}
    busy, own, began = _machine_busy(), _own_cpu(), time.perf_counter()
    with PQWatch(config, now=now) as svc:
        svc.ensure_ready()
        app = create_app(svc, self_service=config.web.self_service)

        async def timed(target: str) -> tuple[float, int]:
            t = time.perf_counter()
            status, size = await asgi_get(app, target)
            elapsed = time.perf_counter() - t
            if status != 200:
                raise SystemExit(f"bench.web: GET {target} answered {status}, not 200")
            return elapsed, size

        def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
            t = time.perf_counter()
            fn(*args, **kwargs)
            return time.perf_counter() - t

        async def pages() -> None:
            if "search" in parts:
                rows = []
                for q in QUERIES:
                    target = search_url(q.pqwatch)
                    await timed(target)  # not counted: the first run
                    page = [await timed(target) for _ in range(runs)]
                    found = svc.search(q.pqwatch, limit=20)
                    engine = [call(svc.search, q.pqwatch, limit=20) for _ in range(runs)]
                    rows.append(
                        {
                            "label": q.label,
                            "query": q.pqwatch,
                            "url": target,
                            "matches": found.total,
                            "page_bytes": page[-1][1],
                            "seconds": [s for s, _ in page],
                            **_stats([s for s, _ in page]),
                            "search_call_median_ms": statistics.median(engine) * 1000,
                        }
                    )
                out["search"] = rows
            if "watch" in parts:
                rows = []
                for slug, _, _ in svc.reads.active_watches():
                    target = f"/watches/{quote(slug)}"
                    await timed(target)
                    page = [await timed(target) for _ in range(runs)]
                    overview = svc.watch_overview(slug)
                    data = [call(svc.watch_overview, slug) for _ in range(runs)]
                    rows.append(
                        {
                            "watch": overview.name,
                            "slug": slug,
                            "questions": overview.totals.questions,
                            "period_questions": overview.totals.period_questions,
                            "page_bytes": page[-1][1],
                            "seconds": [s for s, _ in page],
                            **_stats([s for s, _ in page]),
                            "overview_call_median_ms": statistics.median(data) * 1000,
                        }
                    )
                out["watch"] = rows

        asyncio.run(pages())
    out["seconds"] = round(time.perf_counter() - began, 1)
    out["others_cpu_seconds"] = round(max(0.0, _machine_busy() - busy - (_own_cpu() - own)), 1)
    return out


# -- the real server under load -------------------------------------------------------------


def item_paths(db_path: Path, k: int, seed: int) -> list[str]:
    """The pages of up to `k` random stored questions, addressed as search results link them."""
    from pqwatch.web.app import item_path

    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as conn:
        top = conn.execute("SELECT max(id) FROM question").fetchone()[0] or 0
        ids = random.Random(seed).sample(range(1, top + 1), min(k, top))
        marks = ",".join("?" * len(ids))
        rows = conn.execute(
            f"SELECT uin, date_tabled, source_id FROM question WHERE id IN ({marks})", ids
        ).fetchall()
    return [item_path(uin, date.fromisoformat(tabled), src) for uin, tabled, src in rows]


def _machine_busy() -> float:
    """CPU seconds the whole machine has been busy since boot (Linux /proc/stat), 0 elsewhere:
    less this process's and the server's, what other processes took meanwhile."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (Linux /proc), 0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> set[int]:
    """A running process's children, theirs, and so on (Linux /proc), none elsewhere."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                kids = {int(k) for k in (task / "children").read_text().split()} - found
                found |= kids
                todo.extend(kids)
    return found


def _tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its running descendants (the server's workers)."""
    return sum(_cpu_seconds(p) for p in {pid, *_descendants(pid)})


@contextlib.contextmanager
def serving(
    config: Path, *, workers: int = 1, timeout: float = 120.0
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`pqwatch serve --port 0` on `config` in a process of its own: (base URL, process)."""
    cmd = [str(BIN / "pqwatch"), "--config", str(config), "serve", "--port", "0"]
    if workers != 1:
        cmd += ["--workers", str(workers)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    err: list[str] = []
    threading.Thread(target=lambda: err.extend(proc.stderr or ()), daemon=True).start()
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append((proc.stdout or [""]).readline()))
        reader.daemon = True
        reader.start()
        reader.join(timeout)
        words = line[0].split() if line else []
        if "Serving" not in words:
            raise SystemExit(f"bench.web: `pqwatch serve` did not start: {line} {''.join(err)}")
        yield words[words.index("on") + 1].rstrip("/"), proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if err:
            print("server stderr:", "".join(err)[-2000:], file=sys.stderr)


async def drive(
    base: str,
    searches: Sequence[str],
    items: Sequence[str],
    *,
    clients: int,
    seconds: float,
    timeout: float,
    search_share: float,
    seed: int,
) -> dict[str, Any]:
    """`clients` closed-loop clients for `seconds`: latencies by kind, statuses, errors."""
    import httpx

    latency: dict[str, list[float]] = {"search": [], "item": []}
    by_query: dict[str, list[float]] = {target: [] for target in searches}
    statuses: collections.Counter[str] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as client:
        # Warm: each search once and a few items, not counted (and the server must answer).
        for target in [*searches, *items[:10]]:
            r = await client.get(target)
            if r.status_code != 200:
                raise SystemExit(f"bench.web: GET {target} answered {r.status_code}, not 200")
        began = time.perf_counter()
        deadline = began + seconds

        async def one(rng: random.Random) -> None:
            while time.perf_counter() < deadline:
                kind = "search" if rng.random() < search_share else "item"
                target = rng.choice(searches if kind == "search" else items)
                t = time.perf_counter()
                try:
                    r = await client.get(target)
                except httpx.TimeoutException:
                    errors[f"{kind} page: timeout"] += 1
                    continue
                except httpx.HTTPError as exc:
                    errors[f"{kind} page: {type(exc).__name__}"] += 1
                    continue
                elapsed = time.perf_counter() - t
                statuses[str(r.status_code)] += 1
                if 200 <= r.status_code < 300:
                    latency[kind].append(elapsed)
                    if kind == "search":
                        by_query[target].append(elapsed)
                else:
                    errors[f"{kind} page: HTTP {r.status_code}"] += 1

        await asyncio.gather(*(one(random.Random(seed + i)) for i in range(clients)))
        elapsed = time.perf_counter() - began
    every = latency["search"] + latency["item"]
    done = len(every) + sum(errors.values())
    return {
        "elapsed_seconds": elapsed,
        "requests": done,
        "ok": len(every),
        "errors": sum(errors.values()),
        "errors_by_kind": dict(errors),
        "statuses": dict(statuses),
        "requests_per_second": done / elapsed if elapsed else 0.0,
        **(_stats(every) if every else {}),
        "by_kind": {k: {"count": len(v), **_stats(v)} for k, v in latency.items() if v},
        "search_by_query": {t: {"count": len(v), **_stats(v)} for t, v in by_query.items() if v},
    }


def measure_load(
    root: Path,
    *,
    clients: int,
    seconds: float,
    timeout: float,
    search_share: float,
    seed: int,
    workers: int = 1,
) -> dict[str, Any]:
    searches = [search_url(q.pqwatch) for q in QUERIES]
    items = item_paths(root / "pqwatch.db", 2000, seed)
    with serving(root / "config.toml", workers=workers) as (base, proc):
        load_before = _load_avg()
        server_cpu, own, busy = _tree_cpu_seconds(proc.pid), _own_cpu(), _machine_busy()
        result = asyncio.run(
            drive(
                base,
                searches,
                items,
                clients=clients,
                seconds=seconds,
                timeout=timeout,
                search_share=search_share,
                seed=seed,
            )
        )
        own, busy = _own_cpu() - own, _machine_busy() - busy  # the warm-up requests included
        server_cpu = _tree_cpu_seconds(proc.pid) - server_cpu
        load_after = _load_avg()
    return {
        "workers": workers,
        "clients": clients,
        "seconds": seconds,
        "search_share": search_share,
        "timeout_seconds": timeout,
        "item_pages": len(items),
        **result,
        "server_cpu_seconds": round(server_cpu, 2),
        "generator_cpu_seconds": round(own, 2),
        "others_cpu_seconds": round(max(0.0, busy - own - server_cpu), 1),
        "load_avg_before": load_before,
        "load_avg_after": load_after,
    }


# -- reporting -------------------------------------------------------------------------------


def _report_load(load: dict[str, Any], cpus: int, *, several: bool) -> tuple[dict[str, Any], str]:
    """Print one load run; its summary figures and its verdict."""
    workers = load.get("workers", 1)
    name = f"load ({workers} worker{'s' if workers != 1 else ''})" if several else "load"
    for kind, s in load["by_kind"].items():
        print(
            f"{name}, {kind + ' pages':<13} {s['count']:>7,} ok  median "
            f"{s['median_ms']:>7.1f}ms  p95 {s['p95_ms']:>7.1f}ms  max {s['max_ms']:>7.1f}ms"
        )
    p95 = load.get("p95_ms", float("inf"))
    ok = load["errors"] == 0 and p95 <= LOAD_TARGET_MS
    figures = {
        "workers": workers,
        "p95_ms": p95,
        "errors": load["errors"],
        "requests_per_second": load["requests_per_second"],
        "target_ms": LOAD_TARGET_MS,
        "within_target": ok,
    }
    kinds = f" {load['errors_by_kind']}" if load["errors"] else ""
    print(
        f"{name}: {load['clients']} clients x {load['seconds']:g} s: {load['requests']:,} "
        f"requests ({load['requests_per_second']:.0f}/s), {load['errors']} errors{kinds}; "
        f"median {load.get('median_ms', 0):.1f} ms, p95 {p95:.1f} ms, max "
        f"{load.get('max_ms', 0):.1f} ms (target: no errors, p95 <= {LOAD_TARGET_MS:g} ms: "
        f"{'ok' if ok else 'MISSED'}); CPU: server {load['server_cpu_seconds']:.1f} s, "
        f"load generator {load['generator_cpu_seconds']:.1f} s, other processes "
        f"{load['others_cpu_seconds']:.1f} s, of {cpus * load['elapsed_seconds']:.0f} s on "
        f"{cpus} CPUs (shared); load {load['load_avg_before']} -> {load['load_avg_after']}"
    )
    verdict = f"{name} p95 {p95:.0f} ms, {load['errors']} errors {'ok' if ok else 'MISSED'}"
    return figures, verdict


def report(result: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    cpus = os.cpu_count() or 0
    print(
        f"archive: {info.get('n', 0):,} questions ({info.get('source')}); today "
        f"{result['pages'].get('today')}; {cpus} CPUs; load at start {result['load_avg_start']}"
    )
    summary: dict[str, Any] = {"cpus": cpus}
    verdicts: list[str] = []
    rows = result["pages"].get("search")
    if rows:
        head = (
            f"{'search page (in process)':<24} {'matches':>8} {'median':>9} {'p95':>9} "
            f"{'max':>9} {'search()':>9} {'KB':>5}"
        )
        print(head)
        print("-" * len(head))
        for r in rows:
            print(
                f"{r['label']:<24} {r['matches']:>8,} {r['median_ms']:>7.1f}ms "
                f"{r['p95_ms']:>7.1f}ms {r['max_ms']:>7.1f}ms "
                f"{r['search_call_median_ms']:>7.1f}ms {r['page_bytes'] / 1000:>5.0f}"
            )
        every = [s for r in rows for s in r["seconds"]]
        p95 = _pct(every, 95) * 1000
        worst = max(rows, key=lambda r: r["max_ms"])
        ok = p95 <= SEARCH_TARGET_MS
        summary["search"] = {
            "p95_ms": p95,
            "median_ms": statistics.median(every) * 1000,
            "p95_of_medians_ms": _pct([r["median_ms"] for r in rows], 95),
            "max_ms": worst["max_ms"],
            "slowest": worst["label"],
            "requests": len(every),
            "target_ms": SEARCH_TARGET_MS,
            "within_target": ok,
        }
        print(
            f"search page: p95 {p95:.1f} ms over {len(every)} requests "
            f"(target <= {SEARCH_TARGET_MS:g} ms: {'ok' if ok else 'MISSED'}); median "
            f"{summary['search']['median_ms']:.1f} ms; slowest {worst['max_ms']:.1f} ms "
            f"({worst['label']})"
        )
        verdicts.append(f"search p95 {p95:.0f} ms {'ok' if ok else 'MISSED'}")
    rows = result["pages"].get("watch")
    if rows:
        print()
        head = (
            f"{'watch page (in process)':<30} {'questions':>9} {'in period':>9} {'median':>9} "
            f"{'p95':>9} {'max':>9} {'data':>9} {'KB':>5}"
        )
        print(head)
        print("-" * len(head))
        for r in rows:
            print(
                f"{r['watch']:<30} {r['questions']:>9,} {r['period_questions']:>9,} "
                f"{r['median_ms']:>7.1f}ms {r['p95_ms']:>7.1f}ms {r['max_ms']:>7.1f}ms "
                f"{r['overview_call_median_ms']:>7.1f}ms {r['page_bytes'] / 1000:>5.0f}"
            )
        worst = max(rows, key=lambda r: r["p95_ms"])
        ok = worst["p95_ms"] <= WATCH_TARGET_MS
        summary["watch"] = {
            "worst_p95_ms": worst["p95_ms"],
            "worst_watch": worst["watch"],
            "target_ms": WATCH_TARGET_MS,
            "within_target": ok,
        }
        print(
            f"watch page: worst p95 {worst['p95_ms']:.1f} ms ({worst['watch']}; target <= "
            f"{WATCH_TARGET_MS:g} ms: {'ok' if ok else 'MISSED'})"
        )
        verdicts.append(f"watch p95 {worst['p95_ms']:.0f} ms {'ok' if ok else 'MISSED'}")
    pages = result["pages"]
    if "others_cpu_seconds" in pages:
        print(
            f"in process: {pages['seconds']:g} s, while other processes took "
            f"{pages['others_cpu_seconds']:g} CPU-seconds"
        )
    loads = result.get("loads") or ([result["load"]] if result.get("load") else [])
    for load in loads:
        print()
        figures, verdict = _report_load(load, cpus, several=len(loads) > 1)
        summary.setdefault("load", figures)  # the first run (one worker unless told)
        summary.setdefault("load_by_workers", {})[str(load.get("workers", 1))] = figures
        verdicts.append(verdict)
    summary["load_avg_end"] = _load_avg()
    print(f"web: {'; '.join(verdicts)} (targets <= 150/300/500 ms; load {summary['load_avg_end']})")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.web",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--n", type=int, default=5_000, help="questions (default %(default)s)")
    parser.add_argument("--runs", type=int, default=5, help="timed requests per page (in process)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (load)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the load run")
    parser.add_argument(
        "--search-share", type=float, default=0.5, help="share of search pages in the load"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="a request's timeout (load)")
    parser.add_argument("--seed", type=int, default=1, help="for the items and the mix")
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help="which to run, comma-separated (default %(default)s)",
    )
    parser.add_argument(
        "--workers",
        default="1",
        help="server processes for the load, comma-separated to compare (e.g. 1,2)",
    )
    parser.add_argument("--rebuild", action="store_true", help="build the archive again")
    parser.add_argument("--json", type=Path, default=None, help="save the results here")
    parser.add_argument(
        "--work", type=Path, default=None, help=f"scratch folder (default {watchpage.ROOT})"
    )
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if unknown := set(parts) - set(PARTS):
        parser.error(f"--parts: unknown {', '.join(sorted(unknown))} (known: {', '.join(PARTS)})")
    try:
        worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]
    except ValueError:
        worker_counts = []
    if not worker_counts or min(worker_counts) < 1:
        parser.error(f"--workers: {args.workers!r} is not a list of numbers from 1 (e.g. 1,2)")
    root = (args.work or watchpage.ROOT) / f"watchpage-{args.n}"
    if args.rebuild:
        (root / "built.json").unlink(missing_ok=True)
    root = watchpage.build(args.n, args.work, log=lambda s: print(s, flush=True))
    info = watchpage._built(root)
    result: dict[str, Any] = {"cpus": os.cpu_count(), "load_avg_start": _load_avg()}
    result["pages"] = measure_pages(root, runs=max(1, args.runs), parts=parts)
    if "load" in parts:
        result["loads"] = [
            measure_load(
                root,
                clients=max(1, args.clients),
                seconds=args.seconds,
                timeout=args.timeout,
                search_share=args.search_share,
                seed=args.seed,
                workers=workers,
            )
            for workers in worker_counts
        ]
        result["load"] = result["loads"][0]
    summary = report(result, info)
    save_json(args.json, {"archive": info, "summary": summary, **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
