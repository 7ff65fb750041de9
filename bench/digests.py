"""Benchmark: render and deliver digests to a local SMTP server (issue 8, item 5).

Builds an archive of generated questions (stored as ingest stores pages), ``--watches``
watches of ``--items`` matched questions each, and ``--subscribers`` subscribers spread
across the watches (one watch each), so every subscriber is owed ``--items`` items: pending
deliveries, as the matcher leaves them. An aiosmtpd server on 127.0.0.1, in a process of its
own (as a mail server is: it must not share the sender's interpreter lock), accepts and counts.
Then it times ``PQWatch.send_digests()`` end to end (compose, render, SMTP, bookkeeping), in
wall-clock seconds and in CPU seconds of the sending process, with the load average (another
job on the machine shows up as wall time well above CPU time).
Target: 1,000 subscribers x 50 items <= 30 s.

Command line::

    python -m bench.digests --subscribers 1000 --items 50 [--watches 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiosmtpd.controller import Controller

from bench._common import save_json
from bench.generate import generate
from bench.matching import END, START, store_items, write_config
from pqwatch.config import load_config
from pqwatch.service import PQWatch
from pqwatch.store.db import sql_ts

TARGET_SECONDS = 30.0


class CountingHandler:
    """aiosmtpd handler that accepts everything and counts messages, bytes and lines (a mail
    server reads a message line by line)."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.lines = 0
        self.recipients: set[str] = set()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages += 1
        self.bytes += len(envelope.original_content or b"")
        self.lines += (envelope.original_content or b"").count(b"\n")
        self.recipients.update(envelope.rcpt_tos)
        return "250 2.0.0 Ok: queued"


def serve(port: int, conn: Connection) -> None:
    """The SMTP server process: says "ready", serves until told to stop, then reports what it
    received and the CPU seconds it used."""
    handler = CountingHandler()
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
            "lines": handler.lines,
            "recipients": len(handler.recipients),
            "cpu_seconds": time.process_time(),
        }
    )


class SMTPServerProcess:
    """aiosmtpd on 127.0.0.1:port in its own process (spawned: no inherited state)."""

    def __init__(self, port: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=serve, args=(port, child), daemon=True)
        self.received: dict[str, Any] = {}

    def __enter__(self) -> SMTPServerProcess:
        self._process.start()
        try:
            ready = self._conn.poll(30) and self._conn.recv() == "ready"
        except EOFError:  # it died first
            ready = False
        if not ready:
            self._process.kill()
            raise RuntimeError("the SMTP server process did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._conn.send("stop")
            if self._conn.poll(30):
                self.received = self._conn.recv()
        finally:
            self._process.join(10)
            if self._process.is_alive():
                self._process.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build(
    folder: Path, *, subscribers: int, items: int, watches: int, seed: int, port: int
) -> PQWatch:
    watches = max(1, min(watches, subscribers))
    names = [f"Watch {i + 1:03d}" for i in range(watches)]
    # The queries only name the watches: matches are written directly below.
    queries = [(n, f"benchword{i}") for i, n in enumerate(names)]
    subs = [(f"subscriber{i:05d}@example.org", [names[i % watches]]) for i in range(subscribers)]
    email = (
        '[email]\nfrom = "pqwatch <digest@pq.example.org>"\n'
        f'smtp_host = "127.0.0.1"\nsmtp_port = {port}\nsecurity = "none"\n'
        'timeout_seconds = 30\n[feeds]\nsite_url = "https://pq.example.org"\n'
    )
    svc = PQWatch(load_config(write_config(folder, queries, subs, email)))
    svc.ensure_ready()
    store_items(svc, generate(watches * items + items, seed=seed, start=START, end=END))
    now = sql_ts(datetime.now(UTC))
    with svc.db.write() as session:
        conn = session.connection()
        # One event per question: its most advanced one (the one a subscriber is told about).
        events = [
            r[0]
            for r in conn.execute(
                sa.text(
                    "SELECT max(id) FROM event WHERE kind IN "
                    "('tabled', 'holding', 'answered', 'corrected') "
                    "GROUP BY question_id ORDER BY question_id"
                )
            )
        ]
        wids: dict[str, int] = {
            r[0]: r[1] for r in conn.execute(sa.text("SELECT name, id FROM watch"))
        }
        matches = []
        for i, name in enumerate(names):
            for ev in events[i * items : (i + 1) * items]:
                matches.append({"w": wids[name], "e": ev, "now": now})
        conn.execute(
            sa.text(
                "INSERT INTO watch_match (watch_id, event_id, created_at) VALUES (:w, :e, :now)"
            ),
            matches,
        )
        conn.execute(
            sa.text(
                "INSERT INTO delivery (subscriber_id, event_id, status, attempts, created_at) "
                "SELECT s.subscriber_id, m.event_id, 'pending', 0, :now FROM watch_match m "
                "JOIN subscription s ON s.watch_id = m.watch_id"
            ),
            {"now": now},
        )
    return svc


def run(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pqwatch-bench-digests-") as tmp:
        t0 = time.perf_counter()
        svc = build(
            Path(tmp),
            subscribers=args.subscribers,
            items=args.items,
            watches=args.watches,
            seed=args.seed,
            port=port,
        )
        build_seconds = time.perf_counter() - t0
        try:
            with SMTPServerProcess(port) as server:
                with svc.db.read() as session:
                    pending = (
                        session.connection()
                        .execute(sa.text("SELECT count(*) FROM delivery WHERE status = 'pending'"))
                        .scalar()
                    )
                load_before = os.getloadavg()
                t0, c0 = time.perf_counter(), time.process_time()
                outcome = svc.send_digests()
                seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
                load_after = os.getloadavg()
        finally:
            svc.close()
    received = server.received
    sent = sum(1 for o in outcome.outcomes if o.status == "sent")
    items = sum(o.items for o in outcome.outcomes if o.status == "sent")
    messages = int(received.get("messages", 0))
    return {
        "benchmark": "digests",
        "subscribers": args.subscribers,
        "items_per_subscriber": args.items,
        "watches": args.watches,
        "pending_deliveries": pending,
        "build_seconds": round(build_seconds, 2),
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "server_cpu_seconds": round(float(received.get("cpu_seconds", 0.0)), 3),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
        "digests_sent": sent,
        "items_sent": items,
        "messages_received": messages,
        "bytes_received": int(received.get("bytes", 0)),
        "lines_received": int(received.get("lines", 0)),
        "recipients_received": int(received.get("recipients", 0)),
        "error": outcome.error,
        "target_seconds": TARGET_SECONDS,
        "within_target": seconds <= TARGET_SECONDS and messages == args.subscribers,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.digests", description=__doc__)
    p.add_argument("--subscribers", type=int, default=1000)
    p.add_argument("--items", type=int, default=50, help="pending items per subscriber")
    p.add_argument("--watches", type=int, default=20, help="subscribers are spread across them")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the result as JSON here")
    args = p.parse_args(argv)
    result = run(args)
    save_json(args.json, result)
    print(
        f"digests: {result['subscribers']} subscribers x {result['items_per_subscriber']} items: "
        f"{result['seconds']:.3f} s ({result['cpu_seconds']:.1f} s CPU, load "
        f"{result['load_average_before'][0]:.2f}), {result['messages_received']} messages "
        f"received, {result['bytes_received']} bytes in {result['lines_received']} lines "
        f"(target <= {TARGET_SECONDS:g} s: {'ok' if result['within_target'] else 'MISSED'})"
    )
    return 0 if result["error"] is None else 1


if __name__ == "__main__":
    sys.exit(main())
