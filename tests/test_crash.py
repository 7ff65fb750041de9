"""Crash injection: real `pqwatch poll` and `pqwatch backfill` processes killed with SIGKILL
at random moments (seeded), run again and again until one finishes, against a replay of a real
month of recordings. The database they leave must equal, row by row, the one a clean
uninterrupted run writes: the same questions, answer versions, events, members, departments,
groups, index rows and watch matches, none missing and none twice, and a sound file.

On PostgreSQL (the suite's --database) each run's config names a database of its own on the
throw-away server, and its index is the question's search_vector rather than FTS5's table.

Rows are compared by natural keys (source id, answer version, event kind and date, member and
department ids), leaving out surrogate ids and the timestamps of when a row was written.
poll_run rows are not compared: a killed run leaves its row 'running'.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from pqwatch.testing.replay import ReplayServer, load_items
from tests.conftest import api_config

REPO = Path(__file__).resolve().parent.parent
MONTH = "2024-08"
N_ITEMS = 1200  # the whole month (1,004 questions)
KILLS = 8
SEED = 20240801

WATCHES = (
    '[[watches]]\nname = "Care"\nquery = "care OR hospice*"\n'
    '[[watches]]\nname = "Schools"\nquery = "school*"\n'
    '[[subscribers]]\nemail = "officer@example.org"\n'
)


def _items(data_dir: Path) -> list[dict[str, Any]]:
    """Part of a real month (every corrected answer among it), as the replay serves it."""
    base = data_dir / "uk_parliament"
    found = load_items(
        [
            base / "monthly_list_dumps" / f"commons_tabled_{MONTH}.json.gz",
            base / "longform_detail_text" / f"longform_{MONTH}.json.gz",
        ]
    )
    ordered = sorted(found.values(), key=lambda v: (not v.get("answerIsCorrection"), v["id"]))
    return ordered[:N_ITEMS]


# Where a run's archive is: its SQLite file, or (suite on PostgreSQL) a database's URL.
Archive = Path | str


@pytest.fixture
def new_archive(request: pytest.FixtureRequest) -> Callable[[Path], Archive]:
    """A new empty archive for a run whose config is in `folder`."""
    if not os.environ.get("PQWATCH_DATABASE_URL", "").startswith("postgresql"):
        return lambda folder: folder / "pqwatch.db"
    cluster = request.getfixturevalue("postgres")
    return lambda folder: str(cluster.create_database())


def _config(folder: Path, replay: ReplayServer, archive: Archive) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    # Small pages: many short write transactions, so that a kill lands among them.
    text = api_config(
        replay.base_url, WATCHES, page_size=20, requests_per_second=5000, max_concurrency=2
    )
    if isinstance(archive, str):  # the runs' environment has no PQWATCH_DATABASE_URL
        text = text.replace('url = "sqlite:///pqwatch.db"', f'url = "{archive}"', 1)
    path.write_text(text, encoding="utf-8")
    return path


def _pqwatch(config: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PQWATCH_")}
    return subprocess.Popen(
        [sys.executable, "-m", "pqwatch", "--config", str(config), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(config: Path, *args: str) -> float:
    """Run to the end; its duration. It must succeed."""
    t0 = time.monotonic()
    proc = _pqwatch(config, *args)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, (out, err)
    return time.monotonic() - t0


def _query(db_file: Archive, sql: str) -> list[tuple[Any, ...]]:
    if isinstance(db_file, str):
        import psycopg

        with psycopg.connect(db_file.replace("postgresql+psycopg://", "postgresql://")) as pg:
            return pg.execute(sql).fetchall()
    conn = sqlite3.connect(db_file)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# Each table by natural key: no surrogate ids (question, answer and event ids are replaced by
# the question's source id, the answer's version), no first_seen_at / updated_at / recorded_at /
# created_at.
NATURAL = {
    "question": (
        "SELECT source, source_id, uin, house, date_tabled, date_for_answer, is_named_day, "
        "heading, asking_member_id, member_has_interest, answering_body_id, question_text, "
        "question_text_full, is_withdrawn, date_withdrawn, status, date_answered, "
        "date_holding_answer, date_answer_corrected, answering_member_id, attachments_json, "
        "detail_pending, content_hash FROM question"
    ),
    "answer": (
        "SELECT q.source_id, a.version, a.kind, a.answer_html, a.answer_text, "
        "a.original_answer_html, a.is_full_text, a.answering_member_id, "
        "a.correcting_member_id, a.date_answered, a.date_corrected, a.content_hash "
        "FROM answer a JOIN question q ON q.id = a.question_id"
    ),
    "event": (
        "SELECT q.source_id, e.kind, e.event_date, a.version, e.detail_json, e.historical "
        "FROM event e JOIN question q ON q.id = e.question_id "
        "LEFT JOIN answer a ON a.id = e.answer_id"
    ),
    "member": (
        "SELECT id, name, list_as, party, party_abbreviation, member_from, house, "
        "thumbnail_url FROM member"
    ),
    "answering_body": "SELECT id, name FROM answering_body",
    "question_group": (
        "SELECT q.source_id, g.grouped_uin, g.grouped_date_tabled FROM question_group g "
        "JOIN question q ON q.id = g.question_id"
    ),
    "question_fts": (
        "SELECT q.source_id, f.heading, f.question, f.answer, f.facets FROM question_fts f "
        "JOIN question q ON q.id = f.rowid"
    ),
    "watch_match": (
        "SELECT w.name, q.source_id, e.kind, e.event_date "
        "FROM watch_match m JOIN watch w ON w.id = m.watch_id JOIN event e ON e.id = m.event_id "
        "JOIN question q ON q.id = e.question_id"
    ),
    "delivery": (
        "SELECT s.email, q.source_id, e.kind, e.event_date, d.status, d.digest_id "
        "FROM delivery d JOIN subscriber s ON s.id = d.subscriber_id "
        "JOIN event e ON e.id = d.event_id JOIN question q ON q.id = e.question_id"
    ),
}
COUNTS = {
    "question": "SELECT count(*) FROM question",
    "answer": "SELECT count(*) FROM answer",
    "event": "SELECT count(*) FROM event",
    "question_fts": "SELECT count(*) FROM question_fts",
}
# PostgreSQL's index is a column of question.
PG_INDEX = {
    "question_fts": (
        "SELECT source_id, search_vector::text FROM question WHERE search_vector IS NOT NULL"
    )
}
PG_INDEX_COUNT = {"question_fts": "SELECT count(search_vector) FROM question"}
# Each table's id sequence is past its largest id (the writer numbers rows itself and moves
# the sequences): an insert elsewhere never collides with a row a killed run committed.
PG_SEQUENCES = " AND ".join(
    f"(SELECT coalesce(max(id), 0) FROM {t}) <= "
    f"coalesce(pg_sequence_last_value(pg_get_serial_sequence('{t}', 'id')), 0)"
    for t in ("question", "answer", "event")
)


def _natural(db_file: Archive) -> dict[str, Counter[tuple[Any, ...]]]:
    """Every compared table as a multiset of natural-key rows (a duplicate counts twice)."""
    tables = {**NATURAL, **PG_INDEX} if isinstance(db_file, str) else NATURAL
    return {table: Counter(_query(db_file, sql)) for table, sql in tables.items()}


def _assert_same(crashed: Archive, clean: Archive) -> None:
    counts = COUNTS
    if isinstance(crashed, str):  # PostgreSQL checks its foreign keys as rows are written
        assert _query(crashed, f"SELECT {PG_SEQUENCES}") == [(True,)]
        counts = {**COUNTS, **PG_INDEX_COUNT}
    else:
        assert _query(crashed, "PRAGMA integrity_check") == [("ok",)]
        assert _query(crashed, "PRAGMA foreign_key_check") == []
    got, want = _natural(crashed), _natural(clean)
    for table in NATURAL:
        missing, extra = want[table] - got[table], got[table] - want[table]
        assert not missing and not extra, (
            f"{table}: {sum(missing.values())} rows missing, {sum(extra.values())} extra "
            f"(e.g. missing {list(missing)[:2]}, extra {list(extra)[:2]})"
        )
    for table, sql in counts.items():  # no row twice under another surrogate id
        assert _query(crashed, sql) == _query(clean, sql), table
    assert sum(want["question"].values()) > 0 and sum(want["event"].values()) > 0


def _progress(db_file: Archive) -> tuple[int, int, int]:
    """(questions, answer versions, events) stored so far."""
    if isinstance(db_file, Path) and not db_file.exists():
        return (0, 0, 0)
    if isinstance(db_file, str) and _query(db_file, "SELECT to_regclass('event')") == [(None,)]:
        return (0, 0, 0)  # not migrated yet
    try:
        [row] = _query(
            db_file,
            "SELECT (SELECT count(*) FROM question), (SELECT count(*) FROM answer), "
            "(SELECT count(*) FROM event)",
        )
    except sqlite3.OperationalError:  # not migrated yet
        return (0, 0, 0)
    return (row[0], row[1], row[2])


def _kill_loop(
    config: Path, db_file: Archive, args: tuple[str, ...], clean_seconds: float, seed: int
) -> tuple[int, list[tuple[int, int, int]]]:
    """Start the command and SIGKILL it at a random moment, KILLS times or until a run
    finishes first; returns how many kills interrupted a run that had stored something, and
    the (questions, answers, events) stored after each kill.

    A quarter of the kills come at any moment from the start (start-up and migration
    included); the rest a random moment after the run's first stored rows, so that most
    land among its write transactions whatever the machine's speed."""
    rng = random.Random(seed)
    effective, trail = 0, []
    for _ in range(KILLS):
        before = _progress(db_file)
        proc = _pqwatch(config, *args)
        if rng.random() < 1 / 4:
            time.sleep(rng.uniform(0.2, clean_seconds * 0.6))
        else:
            deadline = time.monotonic() + 60
            while proc.poll() is None and _progress(db_file) == before:
                assert time.monotonic() < deadline, "the run stored nothing for a minute"
                time.sleep(0.01)
            time.sleep(clean_seconds / 8 * rng.random() ** 2)  # soon after, mostly
        finished = proc.poll() is not None
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        if finished:  # nothing left to interrupt
            break
        effective += _progress(db_file) != before
        trail.append(_progress(db_file))
    return effective, trail


@pytest.mark.parametrize(
    "args",
    [
        ("poll", "--since", f"{MONTH}-01", "--until", f"{MONTH}-31"),
        ("backfill", "--since", f"{MONTH}-01", "--until", f"{MONTH}-31"),
    ],
    ids=["poll", "backfill"],
)
def test_kill_9_at_random_moments_then_a_finished_run_equals_a_clean_run(
    data_dir: Path,
    replay: ReplayServer,
    tmp_path: Path,
    args: tuple[str, ...],
    new_archive: Callable[[Path], Archive],
) -> None:
    """A poll (or backfill) killed -9 several times mid-window, then run to the end (exit 0),
    leaves the same archive as one clean run: every question, answer version, event, member,
    department, group link, index row, watch match and outbox row, none twice, none lost,
    and a database that passes integrity_check and foreign_key_check."""
    replay.set_items(_items(data_dir))
    clean_db, crashed_db = new_archive(tmp_path / "clean"), new_archive(tmp_path / "crashed")
    clean = _config(tmp_path / "clean", replay, clean_db)
    crashed = _config(tmp_path / "crashed", replay, crashed_db)
    clean_seconds = _run(clean, *args)

    effective, trail = _kill_loop(crashed, crashed_db, args, clean_seconds, SEED + len(args[0]))
    print(f"{args[0]}: clean run {clean_seconds:.1f} s; (questions, answers, events): {trail}")
    assert effective >= 3, f"too few kills landed while the run was storing: {trail}"
    _run(crashed, *args)  # the next run after the kills exits 0

    _assert_same(crashed_db, clean_db)


def _earlier(items: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """The same questions as they might have looked a few weeks before: many unanswered (no
    heading yet), some with a holding answer, some at another department, the corrected ones
    not yet corrected; the rest as they are."""
    rng = random.Random(seed)
    unanswered = dict.fromkeys(
        ("answerText", "dateAnswered", "answerIsHolding", "answerIsCorrection",
         "answeringMemberId", "answeringMember", "heading", "dateAnswerCorrected",
         "correctingMemberId", "correctingMember"),
    )  # fmt: skip
    out = []
    for v in items:
        v, roll = dict(v), rng.random()
        if v.get("answerIsCorrection"):
            v.update(answerIsCorrection=False, dateAnswerCorrected=None, correctingMemberId=None)
            v["answerText"] = "<p>The first version of this answer.</p>"
        elif roll < 0.4:
            v.update(unanswered)
        elif roll < 0.6:
            v.update(
                answerIsHolding=True,
                dateAnswered=v["dateTabled"],
                answerText="<p>It will not be possible to answer this question within the usual "
                "time period. An answer is being prepared.</p>",
            )
        elif roll < 0.7:
            # The Cabinet Office's real id: a body with two names in one archive would make
            # a transfer's "from" name depend on which page was written last.
            v.update(unanswered, answeringBodyId=53, answeringBodyName="Cabinet Office")
        out.append(v)
    return out


def test_kill_9_while_a_poll_updates_the_archive_then_it_equals_a_clean_run(
    data_dir: Path, replay: ReplayServer, tmp_path: Path, new_archive: Callable[[Path], Archive]
) -> None:
    """The same, for a poll that changes what is stored: answers to unanswered questions,
    answers after holding answers, corrections, transfers to another department, headings
    filled in (UPDATEs of questions, their group links and index rows, new versions)."""
    today = date.today()
    args = ("poll", "--since", f"{MONTH}-01", "--until", f"{MONTH}-31")
    now = _items(data_dir)[:600]
    replay.set_items(_earlier(now, SEED))
    clean_db, crashed_db = new_archive(tmp_path / "clean"), new_archive(tmp_path / "crashed")
    clean = _config(tmp_path / "clean", replay, clean_db)
    crashed = _config(tmp_path / "crashed", replay, crashed_db)
    _run(clean, *args)
    _run(crashed, *args)

    replay.set_items(now)
    clean_seconds = _run(clean, *args)
    effective, trail = _kill_loop(crashed, crashed_db, args, clean_seconds, SEED)
    print(f"update: clean run {clean_seconds:.1f} s; (questions, answers, events): {trail}")
    assert effective >= 3, f"too few kills landed while the run was storing: {trail}"
    _run(crashed, *args)

    if date.today() != today:  # a transfer is dated the day it is seen
        pytest.skip("the day changed during the test")
    _assert_same(crashed_db, clean_db)
    kinds = dict(_query(clean_db, "SELECT kind, count(*) FROM event GROUP BY 1"))
    assert {"answered", "holding", "corrected", "transferred"} <= set(kinds), kinds
