"""Every benchmark in bench/ runs on tiny sizes, so none of them rots (issue 8).

Each is run as a user runs it, ``python -m bench.X`` with small arguments and ``--json``,
in a subprocess; it must exit 0, print its result line and write its JSON. A benchmark whose
module is not there (yet) is skipped."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run(
    module: str, tmp_path: Path, *args: str, timeout: float = 180
) -> tuple[str, dict[str, Any]]:
    if importlib.util.find_spec(f"bench.{module}") is None:
        pytest.skip(f"bench.{module} does not exist yet")
    out = tmp_path / f"{module}.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args, "--json", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0 and "is not installed in this environment" in proc.stderr:
        pytest.skip(proc.stderr.strip().splitlines()[-1])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip(), f"bench.{module} printed nothing"
    assert out.is_file(), f"bench.{module} wrote no --json file"
    return proc.stdout, json.loads(out.read_text(encoding="utf-8"))


def _result_line(stdout: str, prefix: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith(prefix)]
    assert lines, f"no line starting {prefix!r} in:\n{stdout}"
    return lines[-1]


def test_matching(tmp_path: Path) -> None:
    stdout, result = _run(
        "matching", tmp_path, "--events", "60", "--watches", "12", "--archive", "40"
    )
    assert "events x 12 watches" in _result_line(stdout, "matching:")
    assert result["events"] == 60 and result["watches"] == 12
    assert result["matches"] > 0 and result["deliveries"] > 0


def test_digests(tmp_path: Path) -> None:
    stdout, result = _run(
        "digests", tmp_path, "--subscribers", "4", "--items", "3", "--watches", "2"
    )
    assert "4 messages received" in _result_line(stdout, "digests:")
    assert result["messages_received"] == result["digests_sent"] == 4
    assert result["items_sent"] == 12 and result["bytes_received"] > 0


def test_polling(tmp_path: Path) -> None:
    stdout, result = _run("polling", tmp_path, "--generated", "150")
    assert "ratio" in _result_line(stdout, "polling:")
    daily, full = result["daily_poll"], result["full_month_refetch"]
    assert 0 < daily["requests"] <= full["requests"]
    assert daily["requests"] == daily["server_requests"]
    assert full["detail_requests"] == full["items"]


@pytest.mark.sqlite_only("bench.scottish reads its SQLite archive file")
def test_scottish(tmp_path: Path) -> None:
    stdout, result = _run("scottish", tmp_path, "--n", "120")
    assert "target <= 10 s" in _result_line(stdout, "scottish:")
    steps = result["steps"]
    assert steps["first_poll"]["new_questions"] == steps["first_poll"]["questions_stored"] == 120
    assert steps["unchanged_conditional"]["statuses"] == [304]
    assert steps["unchanged_no_etag"]["statuses"] == [200]
    assert result["unchanged_wrote"] is False
    assert steps["answers_arrive"]["new_answers"] == 60
    assert steps["answers_arrive"]["events"]["answered"] == 120


def test_ingest_floor_replays_every_row_pqwatch_stored(tmp_path: Path) -> None:
    """The floor replays the store path's INSERTs alone; it must store the same archive."""
    import sqlite3

    work = tmp_path / "work"
    stdout, result = _run(
        "ingest", tmp_path, "--n", "250", "--repeat", "1", "--floor", "--work", str(work)
    )
    assert "replayed alone" in _result_line(stdout, "floor,")
    floor = result["floor"]
    assert floor["rows"] > 250 and set(floor["best_seconds"]) == {"as-is", "lean", "sqlite-utils"}

    def counts(name: str) -> list[int]:
        with sqlite3.connect(work / name) as conn:
            return [
                conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("question", "answer", "event", "question_group", "member")
            ]

    recorded, replayed = counts("pqwatch-record.db"), counts("pqwatch-replay.db")
    assert recorded[0] == 250 and recorded[2] > 250
    assert replayed == recorded


@pytest.mark.sqlite_only("bench.watchpage builds and reads its SQLite archive file")
def test_watchpage(tmp_path: Path) -> None:
    work = str(tmp_path / "work")
    stdout, result = _run("watchpage", tmp_path, "--n", "400", "--runs", "2", "--work", work)
    assert "target <= 300 ms" in _result_line(stdout, "watchpage:")
    watches = {w["watch"]: w for w in result["watches"]}
    assert len(watches) == 5 and watches["Schools"]["questions"] > 0
    assert all(w["p95_ms"] > 0 for w in watches.values())


@pytest.mark.sqlite_only("bench.web builds and reads its SQLite archive file")
def test_web(tmp_path: Path) -> None:
    """The app in process (search and watch pages) and `pqwatch serve` under a little load."""
    work = str(tmp_path / "work")
    args = ("--n", "300", "--runs", "2", "--clients", "4", "--seconds", "2", "--work", work)
    stdout, result = _run("web", tmp_path, *args)
    assert "targets <= 150/300/500 ms" in _result_line(stdout, "web:")
    assert [r["label"] for r in result["pages"]["search"]][:2] == ["rare word", "rare phrase"]
    assert len(result["pages"]["search"]) == 20
    assert all(len(r["seconds"]) == 2 for r in result["pages"]["search"])
    assert len(result["pages"]["watch"]) == 5
    load = result["load"]
    assert load["errors"] == 0 and load["ok"] == load["requests"] > 0, load
    assert set(load["by_kind"]) == {"search", "item"}
    assert load["server_cpu_seconds"] > 0


def test_postgres(tmp_path: Path, pg_url: str) -> None:
    """Search and ingest on both databases (issue 19), on the tests' throw-away server."""
    work = str(tmp_path / "work")
    args = ("--n", "300", "--ingest-n", "200", "--runs", "2", "--repeat", "1")
    stdout, result = _run("postgres", tmp_path, *args, "--url", pg_url, "--work", work)
    assert "target <= 2.0" in _result_line(stdout, "postgres search:")
    assert "target <= 1.5" in _result_line(stdout, "postgres ingest:")
    search = result["search"]
    assert search["copy"]["rows_total"] > 300 and len(search["queries"]) == 20
    assert all(len(r["postgresql"]["runs_ms"]) == 2 for r in search["queries"])
    assert [r["postgresql"]["total"] for r in search["queries"][:5]] == [
        r["sqlite"]["total"] for r in search["queries"][:5]
    ]
    assert search["explain"] and search["explain"][0]["plan"]
    assert [r["items"] for r in result["ingest"]["runs"]["postgresql"]] == [200]


def test_senders(tmp_path: Path, pg_url: str) -> None:
    """One `pqwatch digest` and two at once on PostgreSQL (issue 19): each digest once."""
    args = ("--subscribers", "6", "--items", "3", "--watches", "2", "--repeat", "1")
    stdout, result = _run("senders", tmp_path, *args, "--url", pg_url)
    assert "target <= 0.6" in _result_line(stdout, "senders:")
    assert result["exactly_once"], result["problems"]
    one, two = result["runs"]["one"][0], result["runs"]["two"][0]
    assert one["messages"] == two["messages"] == 6 and two["recipients"] == 6
    assert two["most_to_one_recipient"] == 1 and len(two["per_sender"]) == 2
    assert sum(s["outcomes"].get("sent", 0) for s in two["per_sender"]) == 6


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("ingest", ("--n", "200", "--repeat", "1")),
        ("memory", ("--n", "200")),
        ("search", ("--n", "300", "--rebuild", "--repeat", "1", "--runs", "1")),
        ("startup", ("--runs", "1")),
    ],
)
def test_other_benchmarks(module: str, args: tuple[str, ...], tmp_path: Path) -> None:
    if "--n" in args and module in {"ingest", "memory", "search"}:
        args = (*args, "--work", str(tmp_path / "work"))
    _run(module, tmp_path, *args, timeout=300)
