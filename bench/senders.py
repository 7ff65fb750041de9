"""Two digest senders against one (issue 19): on PostgreSQL, ``pqwatch digest`` processes
share the work, each claiming one subscriber at a time (store/outbox.py RowClaims).

Target: two senders deliver 1,000 x 50-item digests in at most 0.6 times the time of one.

* **The workload** is bench.digests': its ``build`` makes the archive, the watches, the
  subscribers and their pending deliveries (``--items`` each) in a SQLite file, which
  pqwatch's own ``copy_archive`` (``pqwatch db copy``) moves into a PostgreSQL database, then
  VACUUM ANALYZE. Each timed run gets a fresh copy of that database (``CREATE DATABASE ...
  TEMPLATE``), so both sides start from the same state.
* **The server** is bench.postgres': a throw-away cluster (tests/pg.py's) restarted with an
  operator's settings and durable writes, stopped at the end; ``--url`` uses a server of
  your own instead (databases are created and dropped beside the one named).
* **The mail server** is aiosmtpd on 127.0.0.1, in a process of its own (as bench.digests'),
  taking ``--smtp-delay-ms`` (default 10 ms) before its ``250`` for each message, as a real
  relay does (queue file, fsync); the wait is asynchronous, so two connections are served
  side by side. It counts messages per recipient: every one of the subscribers must get
  exactly one.
* **A run** is whole ``pqwatch digest --format json`` processes (the config bench.digests
  writes, ``PQWATCH_DATABASE_URL`` naming the copy): (a) one, (b) two started together.
  Timed from the start to the last one's exit; each process's CPU (wait4), the server's (its
  processes, reaped backends included), the mail server's, and the machine's busy share
  from /proc/stat (the cores are shared with other work). ``--repeat`` pairs, alternately;
  the best of each side gives the ratio.

    python -m bench.senders --subscribers 1000 --items 50 --json /tmp/r.json
    python -m bench.senders --subscribers 6 --items 3 --repeat 1 --url postgresql+psycopg://...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench._common import compile_package, save_json
from bench.digests import SMTPServerProcess, build, free_port
from bench.postgres import (
    SERVER_SETTINGS,
    Load,
    _psycopg_dsn,
    drop_database,
    new_database,
    server_pids,
    server_settings,
    start_server,
)

TARGET_RATIO = 0.6
TEMPLATE = "pqbench_senders"


# -- the mail server ----------------------------------------------------------------------------


class SlowCountingHandler:
    """Accepts every message after `delay` seconds (asynchronously: other connections go on)
    and counts messages per recipient."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.per_recipient: Counter[str] = Counter()
        self.messages = 0
        self.bytes = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.delay)
        self.messages += 1
        self.bytes += len(envelope.original_content or b"")
        self.per_recipient.update(envelope.rcpt_tos)
        return "250 2.0.0 Ok: queued"


def serve(port: int, delay: float, conn: Connection) -> None:
    """The SMTP server process: says "ready", serves until told to stop, then reports."""
    from aiosmtpd.controller import Controller

    handler = SlowCountingHandler(delay)
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        conn.send("ready")
        conn.recv()  # "stop"
    finally:
        controller.stop()
    conn.send(
        {
            "messages": handler.messages,
            "bytes": handler.bytes,
            "per_recipient": dict(handler.per_recipient),
            "cpu_seconds": time.process_time(),
        }
    )


class SlowSMTPServer(SMTPServerProcess):
    """bench.digests' server process, with `serve` above as its body."""

    def __init__(self, port: int, delay: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=serve, args=(port, delay, child), daemon=True)
        self.received: dict[str, Any] = {}


# -- the database -------------------------------------------------------------------------------


def make_template(url: str, folder: Path, args: argparse.Namespace, port: int) -> dict[str, Any]:
    """bench.digests' workload, built in SQLite and copied into the database TEMPLATE on
    `url`'s server. Returns what was built."""
    import psycopg

    from pqwatch.store.copy import copy_archive
    from pqwatch.store.db import Database

    t0 = time.perf_counter()
    svc = build(
        folder,
        subscribers=args.subscribers,
        items=args.items,
        watches=args.watches,
        seed=args.seed,
        port=port,
    )
    svc.close()
    built = time.perf_counter() - t0
    target = new_database(url, TEMPLATE)
    t0 = time.perf_counter()
    source = Database(f"sqlite:///{folder / 'pqwatch.db'}")
    try:
        copied = copy_archive(source, target)
    finally:
        source.dispose()
    with psycopg.connect(_psycopg_dsn(target), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        pending = conn.execute(
            "SELECT count(*), count(DISTINCT subscriber_id) FROM delivery WHERE status = 'pending'"
        ).fetchone()
    assert pending is not None
    return {
        "build_seconds": round(built, 2),
        "copy_seconds": round(time.perf_counter() - t0, 2),
        "rows_copied": copied.rows_copied,
        "pending_deliveries": pending[0],
        "subscribers_owed": pending[1],
    }


def fresh_copy(url: str, name: str) -> str:
    """A new database `name`, a copy of TEMPLATE; its URL."""
    import psycopg
    import sqlalchemy as sa

    with psycopg.connect(_psycopg_dsn(url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    return sa.make_url(url).set(database=name).render_as_string(hide_password=False)


def final_state(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(_psycopg_dsn(url)) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM digest WHERE status = 'sent'),"
            " (SELECT count(DISTINCT subscriber_id) FROM digest WHERE status = 'sent'),"
            " (SELECT count(*) FROM delivery WHERE status = 'pending'),"
            " (SELECT count(*) FROM delivery WHERE status = 'sent')"
        ).fetchone()
    assert row is not None
    return {
        "digests_sent": row[0],
        "subscribers_sent": row[1],
        "deliveries_pending": row[2],
        "deliveries_sent": row[3],
    }


# -- a run --------------------------------------------------------------------------------------


def _pqwatch() -> list[str]:
    script = Path(sys.executable).parent / "pqwatch"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pqwatch"]


def run_senders(
    n: int, url: str, config: Path, folder: Path, port: int, delay: float, load: Load
) -> dict[str, Any]:
    """`n` `pqwatch digest` processes started together on a fresh copy; timed, checked."""
    db_url = fresh_copy(url, f"pqbench_senders_{n}")
    env = {**os.environ, "PQWATCH_DATABASE_URL": db_url}
    env.pop("PQWATCH_CONFIG", None)
    procs: list[dict[str, Any]] = []
    with SlowSMTPServer(port, delay) as server, load.measure() as used:
        t0 = time.perf_counter()
        for i in range(n):
            out = open(folder / f"sender{n}-{i}.out", "wb")  # noqa: SIM115 (closed below)
            err = open(folder / f"sender{n}-{i}.err", "wb")  # noqa: SIM115
            p = subprocess.Popen(
                [*_pqwatch(), "--config", str(config), "digest", "--format", "json"],
                cwd=folder, env=env, stdout=out, stderr=err,
            )  # fmt: skip
            procs.append({"proc": p, "out": out, "err": err})

        def reap(entry: dict[str, Any]) -> None:
            _pid, status, usage = os.wait4(entry["proc"].pid, 0)
            entry["seconds"] = time.perf_counter() - t0
            entry["returncode"] = os.waitstatus_to_exitcode(status)
            entry["proc"].returncode = entry["returncode"]
            entry["cpu_seconds"] = usage.ru_utime + usage.ru_stime

        waiters = [threading.Thread(target=reap, args=(e,)) for e in procs]
        for w in waiters:
            w.start()
        for w in waiters:
            w.join()
        seconds = time.perf_counter() - t0
    senders = []
    for i, e in enumerate(procs):
        e["out"].close()
        e["err"].close()
        stdout = (folder / f"sender{n}-{i}.out").read_text(encoding="utf-8")
        stderr = (folder / f"sender{n}-{i}.err").read_text(encoding="utf-8")
        try:
            statuses = Counter(o["status"] for o in json.loads(stdout))
        except ValueError:
            statuses = Counter()
        senders.append(
            {
                "seconds": round(e["seconds"], 3),
                "cpu_seconds": round(e["cpu_seconds"], 3),
                "returncode": e["returncode"],
                "outcomes": dict(statuses),
                "stderr": stderr[-2000:],
            }
        )
    state = final_state(db_url)
    drop_database(url, f"pqbench_senders_{n}")
    received = server.received
    per = Counter(received.get("per_recipient", {}))
    sink_cpu = float(received.get("cpu_seconds", 0.0))
    senders_cpu = sum(s["cpu_seconds"] for s in senders)
    other = used["cpu_busy_seconds"] - used["bench_cpu_seconds"] - used["server_cpu_seconds"]
    other -= senders_cpu + sink_cpu
    return {
        "senders": n,
        "seconds": seconds,
        "per_sender": senders,
        "senders_cpu_seconds": senders_cpu,
        "server_cpu_seconds": used["server_cpu_seconds"],
        "smtp_cpu_seconds": sink_cpu,
        "other_cpu_seconds": max(other, 0.0),
        "other_cores": max(other, 0.0) / max(seconds, 1e-9),
        "messages": int(received.get("messages", 0)),
        "bytes": int(received.get("bytes", 0)),
        "recipients": len(per),
        "most_to_one_recipient": max(per.values(), default=0),
        "state": state,
        "load": used,
    }


def check(run: dict[str, Any], subscribers: int) -> list[str]:
    """Why the run did not deliver every digest exactly once (empty: it did)."""
    problems = []
    if run["messages"] != subscribers or run["recipients"] != subscribers:
        problems.append(
            f"{run['messages']} messages to {run['recipients']} recipients, not {subscribers}"
        )
    if run["most_to_one_recipient"] > 1:
        problems.append(f"a recipient got {run['most_to_one_recipient']} messages")
    st = run["state"]
    if st["digests_sent"] != subscribers or st["deliveries_pending"]:
        problems.append(f"database: {st}")
    sent = sum(s["outcomes"].get("sent", 0) for s in run["per_sender"])
    if sent != subscribers:
        problems.append(f"the senders reported {sent} sent")
    for i, s in enumerate(run["per_sender"]):
        if s["returncode"] != 0:
            problems.append(f"sender {i} exited {s['returncode']}: {s['stderr'].strip()[-300:]}")
    return problems


def _run_line(r: dict[str, Any]) -> str:
    split = " + ".join(str(s["outcomes"].get("sent", 0)) for s in r["per_sender"])
    cpu = " + ".join(f"{s['cpu_seconds']:.1f}" for s in r["per_sender"])
    return (
        f"  {r['senders']} sender(s): {r['seconds']:6.2f} s, sent {split}; CPU senders {cpu} s, "
        f"server {r['server_cpu_seconds']:.1f} s, SMTP {r['smtp_cpu_seconds']:.1f} s, other "
        f"processes {r['other_cpu_seconds']:.1f} s ({r['other_cores']:.2f} cores); both cores "
        f"{r['load']['cpu_busy_share']:.0%} busy (load {r['load']['loadavg_before'][0]:.1f}); "
        f"{r['messages']} messages to {r['recipients']} recipients, at most "
        f"{r['most_to_one_recipient']} each"
    )


# -- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.senders", description=__doc__)
    p.add_argument("--subscribers", type=int, default=1000)
    p.add_argument("--items", type=int, default=50, help="pending items per subscriber")
    p.add_argument("--watches", type=int, default=20, help="subscribers are spread across them")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--smtp-delay-ms", type=float, default=10.0, help="the relay's time a message")
    p.add_argument("--repeat", type=int, default=2, help="runs of each side (best wins)")
    p.add_argument("--url", default=None, help="a PostgreSQL server of your own (a database URL)")
    p.add_argument("--json", type=Path, default=None, help="save the results here")
    args = p.parse_args(argv)
    # The workload is built in SQLite from bench.digests' config: nothing may redirect it.
    os.environ.pop("PQWATCH_DATABASE_URL", None)
    compile_package()
    delay = args.smtp_delay_ms / 1000
    result: dict[str, Any] = {
        "benchmark": "senders",
        "subscribers": args.subscribers,
        "items_per_subscriber": args.items,
        "watches": args.watches,
        "smtp_delay_ms": args.smtp_delay_ms,
        "cores": os.cpu_count(),
        "started": datetime.now(UTC).isoformat(),
        "target_ratio": TARGET_RATIO,
    }
    cluster = None
    url = args.url
    if url is None:
        t = time.perf_counter()
        cluster = start_server(dict(SERVER_SETTINGS))
        url = cluster.url()
        print(
            f"started a throw-away PostgreSQL in {cluster.root} ({time.perf_counter() - t:.1f} s)"
        )
    try:
        with tempfile.TemporaryDirectory(prefix="pqwatch-bench-senders-") as tmp:
            folder = Path(tmp)
            port = free_port()
            result["server"] = server_settings(url)
            result["workload"] = make_template(url, folder, args, port)
            load = Load(lambda: server_pids(url))
            runs: dict[str, list[dict[str, Any]]] = {"one": [], "two": []}
            for _ in range(args.repeat):
                for side, n in (("one", 1), ("two", 2)):
                    r = run_senders(n, url, folder / "config.toml", folder, port, delay, load)
                    r["problems"] = check(r, args.subscribers)
                    runs[side].append(r)
                    print(_run_line(r), flush=True)
            drop_database(url, TEMPLATE)
    finally:
        if cluster is not None:
            cluster.stop()
    best = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items()}
    ratio = best["two"]["seconds"] / max(best["one"]["seconds"], 1e-9)
    problems = [f"{k} run {i + 1}: {p}" for k, v in runs.items() for i, r in enumerate(v)
                for p in r["problems"]]  # fmt: skip
    met = ratio <= TARGET_RATIO and not problems
    # Each pair ran back to back, so under about the same load from other work.
    pairs = [
        b["seconds"] / max(a["seconds"], 1e-9)
        for a, b in zip(runs["one"], runs["two"], strict=True)
    ]
    result.update(
        runs=runs,
        pair_ratios=pairs,
        best_seconds={k: v["seconds"] for k, v in best.items()},
        ratio=ratio,
        exactly_once=not problems,
        problems=problems,
        target_met=met,
    )
    save_json(args.json, result)
    for problem in problems:
        print(f"  NOT exactly once: {problem}")
    paired = ", ".join(f"{x:.2f}" for x in pairs)
    print(
        f"senders: {args.subscribers} subscribers x {args.items} items, SMTP "
        f"{args.smtp_delay_ms:g} ms a message: one sender {best['one']['seconds']:.2f} s, two "
        f"{best['two']['seconds']:.2f} s, ratio {ratio:.2f} (target <= {TARGET_RATIO}; best of "
        f"{args.repeat}; pairs {paired}); every digest exactly once: "
        f"{'yes' if not problems else 'NO'}: "
        f"{'met' if met else 'NOT met'}"
    )
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
