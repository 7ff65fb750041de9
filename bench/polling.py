"""Benchmark: what one ordinary daily poll costs, against re-fetching the month (issue 8,
item 6).

A month of questions is served by :class:`pqwatch.testing.replay.ReplayServer`: the real
recordings of July 2024 (``shared/data/uk_parliament``: the Commons list dump with its
long-form detail text; never the acceptance data) when present, else generated ones.
The server first holds the month as it stood at the end of day D-1 (questions tabled by then,
answers given by then) and pqwatch polls it once, which builds the archive and leaves the
cursor at D-1. Then it holds the month as of day D, and pqwatch's ordinary ``poll()`` runs
with the clock on day D: requests made and bytes received are counted by the client (and the
server's request log). Then the same client re-fetches the whole month the way some public
clients do: every page of the month's tabled window plus the detail of every item. Reported:
both, and the ratio.

Command line::

    python -m bench.polling [--day 2024-07-24] [--generated N] [--json out.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench._common import save_json
from bench.generate import data_dir, generate
from pqwatch.config import load_config
from pqwatch.ingest import default_client
from pqwatch.service import PQWatch
from pqwatch.testing.replay import ReplayServer, load_items

MONTH = (date(2024, 7, 1), date(2024, 7, 31))
_ANSWER_FIELDS: dict[str, Any] = {
    "dateAnswered": None,
    "answerText": None,
    "answeringMemberId": None,
    "answeringMember": None,
    "answerIsHolding": False,
    "answerIsCorrection": False,
    "correctingMemberId": None,
    "correctingMember": None,
    "dateAnswerCorrected": None,
    "dateHoldingAnswer": None,
    "originalAnswerText": None,
    "comparableAnswerText": None,
    "attachmentCount": 0,
    "attachments": [],
}


def recordings() -> list[Path]:
    base = data_dir() / "uk_parliament"
    paths = [
        base / "monthly_list_dumps" / "commons_tabled_2024-07.json.gz",
        base / "longform_detail_text" / "longform_2024-07.json.gz",
    ]
    return paths if all(p.is_file() for p in paths) else []


def _day(value: Any) -> date | None:
    return date.fromisoformat(str(value)[:10]) if value else None


def as_of(items: dict[int, dict[str, Any]], day: date) -> list[dict[str, Any]]:
    """The questions as the API showed them at the end of ``day``: tabled by then, with
    only the answers (and corrections) given by then."""
    out = []
    for value in items.values():
        tabled = _day(value["dateTabled"])
        if tabled is None or tabled > day:
            continue
        answered = _day(value.get("dateAnswered"))
        if answered is not None and answered > day:
            value = {**value, **_ANSWER_FIELDS}
        elif (corrected := _day(value.get("dateAnswerCorrected"))) and corrected > day:
            # Before its correction the question showed the original answer.
            value = {
                **value,
                "answerIsCorrection": False,
                "dateAnswerCorrected": None,
                "correctingMemberId": None,
                "correctingMember": None,
                "answerText": value.get("originalAnswerText") or value.get("answerText"),
            }
        out.append(value)
    return out


def ordinary_day(items: dict[int, dict[str, Any]]) -> date:
    """A sitting weekday in the second half of the month with a typical number of questions
    tabled (the median among such days)."""
    tabled = Counter(_day(v["dateTabled"]) for v in items.values())
    days = [
        d
        for d, n in tabled.items()
        if d is not None and d.weekday() < 4 and d.day >= 15 and n and d < MONTH[1]
    ]
    if not days:
        return MONTH[0] + timedelta(days=22)
    median = statistics.median_low(tabled[d] for d in days)
    return min(days, key=lambda d: (abs(tabled[d] - median), d))


def _clock(day: date) -> Any:
    moment = datetime(day.year, day.month, day.day, 22, tzinfo=UTC)
    return lambda: moment


def _config(folder: Path, base_url: str) -> Path:
    path = folder / "config.toml"
    path.write_text(
        '[database]\nurl = "sqlite:///pqwatch.db"\n'
        f'[sources.uk_parliament]\nbase_url = "{base_url}"\nrequests_per_second = 1000\n'
        "backoff_seconds = 0.01\nmax_retries = 2\ntimeout_seconds = 30\n"
        '[[watches]]\nname = "Palliative care"\nquery = "palliative OR hospice"\n'
        '[[subscribers]]\nemail = "bench@example.org"\n',
        encoding="utf-8",
    )
    return path


def run(args: argparse.Namespace) -> dict[str, Any]:
    paths = [] if args.generated else recordings()
    if paths:
        items = load_items(paths)
        source = "recorded July 2024 (Commons list dump + long-form detail text)"
    else:
        n = args.generated or 3000
        gen = generate(n, seed=args.seed, start=MONTH[0], end=MONTH[1] + timedelta(days=40))
        items = {v["id"]: v for v in gen if _day(v["dateTabled"]) <= MONTH[1]}  # type: ignore[operator]
        source = f"generated ({len(items)} questions, seed {args.seed})"
    day = args.day or ordinary_day(items)
    result: dict[str, Any] = {
        "benchmark": "polling",
        "source": source,
        "month": f"{MONTH[0]:%Y-%m}",
        "questions_in_month": len(items),
        "day": day.isoformat(),
    }
    with tempfile.TemporaryDirectory(prefix="pqwatch-bench-polling-") as tmp:
        with ReplayServer(as_of(items, day - timedelta(days=1))) as server:
            cfg = load_config(_config(Path(tmp), server.base_url))
            # 1. The month up to D-1, once: the archive, and the cursor at D-1.
            with PQWatch(cfg, now=_clock(day - timedelta(days=1))) as svc:
                [first] = svc.poll(since=MONTH[0], until=day - timedelta(days=1))
                assert first.ok, first.error
            result["setup_poll"] = {"requests": first.requests, "bytes": first.bytes_received}
            # 2. Day D: pqwatch's ordinary poll, from the cursor.
            server.set_items(as_of(items, day))
            server.requests.clear()
            t0 = time.perf_counter()
            with PQWatch(cfg, now=_clock(day)) as svc:
                [daily] = svc.poll()
                assert daily.ok, daily.error
            seconds = time.perf_counter() - t0
            endpoints = Counter(r.endpoint for r in server.requests)
            result["daily_poll"] = {
                "window": f"{daily.window_start}..{daily.window_end}",
                "requests": daily.requests,
                "bytes": daily.bytes_received,
                "server_requests": len(server.requests),
                "list_requests": endpoints.get("list", 0),
                "detail_requests": endpoints.get("detail", 0),
                "seconds": round(seconds, 2),
                **{
                    k: v
                    for k, v in daily.counts.as_dict().items()
                    if isinstance(v, int) and not isinstance(v, bool)
                },
            }
            # 3. The same client, the way some public clients keep up: the whole month again.
            server.requests.clear()
            client = default_client(cfg)
            t0 = time.perf_counter()
            try:
                listed = [
                    item
                    for page in client.iter_window("tabled", MONTH[0], MONTH[1])
                    for item in page.items
                ]
                client.fetch_details(listed)
                full: dict[str, Any] = {
                    "requests": client.requests_made,
                    "bytes": client.bytes_received,
                }
            finally:
                client.close()
            endpoints = Counter(r.endpoint for r in server.requests)
            full.update(
                items=len(listed),
                server_requests=len(server.requests),
                list_requests=endpoints.get("list", 0),
                detail_requests=endpoints.get("detail", 0),
                seconds=round(time.perf_counter() - t0, 2),
            )
            result["full_month_refetch"] = full
    d, f = result["daily_poll"], result["full_month_refetch"]
    result["ratio_requests"] = round(f["requests"] / max(1, d["requests"]), 1)
    result["ratio_bytes"] = round(f["bytes"] / max(1, d["bytes"]), 1)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.polling", description=__doc__)
    p.add_argument("--day", type=date.fromisoformat, help="the ordinary day D (in July 2024)")
    p.add_argument(
        "--generated", type=int, default=0, help="use N generated questions, not recordings"
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the result as JSON here")
    args = p.parse_args(argv)
    result = run(args)
    save_json(args.json, result)
    d, f = result["daily_poll"], result["full_month_refetch"]
    print(
        f"polling: daily poll of {result['day']}: {d['requests']} requests, {d['bytes']} bytes; "
        f"whole-month re-fetch: {f['requests']} requests, {f['bytes']} bytes; "
        f"ratio {result['ratio_requests']}x requests, {result['ratio_bytes']}x bytes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
