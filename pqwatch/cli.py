"""The `pqwatch` command line: parse arguments, call one facade method, format the result.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error. Every failure is
one line on stderr, never a traceback (set PQWATCH_DEBUG=1 to see one). Heavy modules are
imported inside commands so that `pqwatch --help` starts fast.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pqwatch import __version__
from pqwatch.errors import DeliveryError, PQWatchError, SourceError, UsageError

if TYPE_CHECKING:
    from pqwatch.ingest import Progress as IngestProgress
    from pqwatch.ingest import RunSummary
    from pqwatch.notify.outcome import DigestRun
    from pqwatch.search.results import QuestionStory, SearchResult
    from pqwatch.service import PQWatch

app = typer.Typer(
    name="pqwatch",
    help="Monitor UK parliamentary written questions: archive, search, digests and feeds.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain help: Rich-formatted help imports Rich's markdown stack and doubles start-up time.
    rich_markup_mode=None,
)


class _State:
    config_path: Path | None = None


state = _State()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pqwatch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            envvar="PQWATCH_CONFIG",
            help="Config file (default ./config.toml).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    state.config_path = config


@contextmanager
def _service() -> Iterator[PQWatch]:
    from pqwatch.service import PQWatch

    with PQWatch.open(state.config_path) as svc:
        yield svc


def _term(text: str) -> str:
    """Text for the terminal: no control character from archived data may reach it (ESC,
    OSC, BEL, CR... could rewrite the screen, retitle the window or hide a link)."""
    from pqwatch.text import strip_controls

    return strip_controls(text)


def _emit_json(data: Any) -> None:
    # JSON escapes C0 controls itself; C1 ones (U+009B) it writes as they are.
    typer.echo(_term(json.dumps(data, indent=2, ensure_ascii=False, default=str)))


@app.command()
def init() -> None:
    """Create the database, or migrate it to the current schema, and load the config."""
    with _service() as svc:
        res = svc.init()
    before = res.revision_before or "empty"
    change = "already current" if res.revision_before == res.revision_after else f"from {before}"
    typer.echo(f"Database {res.database} is at revision {res.revision_after} ({change}).")
    typer.echo(f"Config: {res.watches} watch(es), {res.subscribers} subscriber(s).")


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option}: {value!r} is not a date (use YYYY-MM-DD)") from None


SinceOpt = Annotated[
    str | None, typer.Option("--since", help="First day of the window (YYYY-MM-DD).")
]
UntilOpt = Annotated[
    str | None, typer.Option("--until", help="Last day of the window (default today).")
]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", help="Output format.")]


def _print_runs(runs: list[RunSummary], fmt: OutputFormat) -> None:
    if fmt is OutputFormat.json:
        _emit_json([r.as_dict() for r in runs])
        return
    for r in runs:
        c = r.counts
        state = "ok" if r.ok else "FAILED"
        if r.source == "uk_statements":
            done = f"{c.new_questions} new statements"
        elif r.source == "whatdotheyknow":
            done = (
                f"{c.new_questions} new FOI requests, {c.new_answers} new responses, "
                f"{c.state_changes} changes of state"
            )
        else:
            done = (
                f"{c.new_questions} new questions, {c.new_answers} new answers, "
                f"{c.holding_answers} holding answers, {c.corrections} corrections, "
                f"{c.transfers} transfers"
            )
        typer.echo(
            f"{r.source} {r.window_start}..{r.window_end}: {state}: {done} "
            f"({c.items_seen} items seen, {r.requests} requests, {r.seconds:.1f} s)"
        )
        for reason in r.skipped[:5]:
            typer.echo(_term(f"  skipped a malformed item: {reason}"))
        if len(r.skipped) > 5:
            typer.echo(f"  ... and {len(r.skipped) - 5} more malformed items skipped")
        for problem in r.problems[:5]:
            typer.echo(_term(f"  stored with a problem: {problem}"))
        if len(r.problems) > 5:
            typer.echo(f"  ... and {len(r.problems) - 5} more items stored with a problem")


def _fail_on_errors(errors: list[str]) -> None:
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise SourceError(errors[0] + more)


@app.command()
def poll(
    since: SinceOpt = None, until: UntilOpt = None, fmt: FormatOpt = OutputFormat.text
) -> None:
    """Fetch new questions, answers, holding answers and corrections now.

    Without --since, polls from the last successful poll (minus a day of overlap) to today.
    """
    with _service() as svc:
        runs, alerts = svc.poll_and_alert(
            _parse_date(since, "--since"), _parse_date(until, "--until")
        )
    _print_runs(runs, fmt)
    for alert in alerts:
        typer.echo(_term(f"Operator alerted: {alert}"), err=fmt is OutputFormat.json)
    _fail_on_errors([r.error for r in runs if r.error])


@app.command()
def backfill(
    since: Annotated[str, typer.Option("--since", help="First tabling day to load.")],
    until: UntilOpt = None,
    detail: Annotated[
        bool,
        typer.Option(
            "--detail/--no-detail",
            help="Fetch full texts of long questions and answers (--no-detail is faster).",
        ),
    ] = True,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Load the archive's history by tabling date; run it again to continue after a stop.

    Backfilled questions are searchable and appear in feeds, but are never mailed as new.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    start = _parse_date(since, "--since")
    assert start is not None
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[items]} items, {task.fields[rate]}/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=True,
        disable=fmt is OutputFormat.json or not sys.stderr.isatty(),
        console=_stderr_console(),
    )
    task = bar.add_task("backfill", total=None, items=0, rate="0")
    items_before: dict[tuple[int, object], int] = {}
    t0 = time.monotonic()

    def report(p: IngestProgress) -> None:
        items_before[(p.window_index, p.window_start)] = p.items_done
        done = sum(items_before.values())
        rate = done / max(time.monotonic() - t0, 1e-6)
        bar.update(
            task,
            total=p.windows_total,
            completed=p.window_index + (p.items_done / max(p.items_in_window, 1)),
            description=f"window {p.window_start}",
            items=done,
            rate=f"{rate:.0f}",
        )

    with _service() as svc, bar:
        result = svc.backfill(start, _parse_date(until, "--until"), detail=detail, progress=report)
    _print_runs([result], fmt)
    if fmt is OutputFormat.text and result.windows_skipped:
        typer.echo(f"({result.windows_skipped} window(s) already loaded by an earlier run)")
    _fail_on_errors([result.error] if result.error else [])


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


@app.command()
def run(
    once: Annotated[
        bool, typer.Option("--once", help="Run one full cycle and exit (the main job).")
    ] = False,
    fmt: FormatOpt = OutputFormat.text,
    log_format: Annotated[
        OutputFormat, typer.Option("--log-format", help="Daemon log lines: text or json.")
    ] = OutputFormat.text,
) -> None:
    """Run the scheduler: poll every poll_every_minutes (then feeds), digests at digest_time.

    With --once: one full cycle (poll -> match -> digests due -> feeds) and exit.
    SIGTERM or SIGINT lets the current step finish, then exits 0.
    """
    if not once:
        from pqwatch.scheduler import configure_logging, run_daemon

        configure_logging(log_format.value)
        with _service() as svc:
            raise typer.Exit(run_daemon(svc))
    with _service() as svc:
        result = svc.run_once()
    if fmt is OutputFormat.json:
        _emit_json(
            {
                "stages": result.stages,
                "polls": [p.as_dict() for p in result.polls],
                "digests": [o.__dict__ for o in result.digests.outcomes],
            }
        )
    else:
        _print_runs(result.polls, fmt)
        _print_digests(result.digests, fmt)
        for alert in result.alerts:
            typer.echo(_term(f"Operator alerted: {alert}"))
        if result.feeds is not None:
            typer.echo(
                f"Feeds: {len(result.feeds.written)} file(s) written to {result.feeds.folder}"
            )
        typer.echo(f"Cycle done: {' -> '.join(result.stages)}.")
    _fail_on_errors(result.errors)


class SearchFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


class Sort(StrEnum):
    relevance = "relevance"
    newest = "newest"


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="Query, e.g. 'hospice dept:\"health\" -lords'.")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Most results.")] = 20,
    sort: Annotated[Sort, typer.Option("--sort", help="Order of results.")] = Sort.relevance,
    fmt: Annotated[
        SearchFormat, typer.Option("--format", help="table, json (a list) or csv.")
    ] = SearchFormat.table,
) -> None:
    """Search the archive. Words must all match (stemmed); "phrases", OR, -word, (groups),
    prefix*, and filters parliament: type: house: dept: asker: answerer: heading: status:
    tabled: answered:."""
    with _service() as svc:
        result = svc.search(query, limit=limit, sort=sort.value)
    if fmt is SearchFormat.json:
        _emit_json(result.as_dict())
    elif fmt is SearchFormat.csv:
        from pqwatch.search.results import write_hits_csv

        write_hits_csv(result.hits, sys.stdout)
    else:
        _print_hits(result)
    if fmt is SearchFormat.csv:  # the file holds the rows; the count goes beside it
        typer.echo(f"pqwatch: {result.summary()}", err=True)


def _print_hits(result: SearchResult) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from pqwatch.search.results import MARK_END, MARK_START

    console = Console()
    table = Table(show_lines=True, expand=True)
    # Nothing is cut: long words fold onto the next line rather than end in "…".
    table.add_column("Id · UIN", no_wrap=True)
    table.add_column("Tabled\nAnswered", no_wrap=True)
    table.add_column("Heading · asked by → department", ratio=3, overflow="fold")
    table.add_column("Snippet", ratio=4, overflow="fold")
    for h in result.hits:
        answered = h.date_answered.isoformat() if h.date_answered else "—"
        if h.status in {"holding", "corrected", "withdrawn", "unanswered", "made"}:
            answered += f"\n({h.status})"
        who = f"{h.asking_member or 'unknown member'} → {h.answering_body or '?'}"
        if h.kind == "statement":
            who = f"made by {h.answering_member or 'a minister'} · {h.answering_body or '?'}"
        heading = Text(_term(h.heading or "(no heading yet)"), style="bold")
        heading.append("\n" + _term(who), style=None)
        table.add_row(
            f"{h.source_id}\n{h.place} {_term(h.uin or '')}",
            f"{h.date_tabled.isoformat()}\n{answered}",
            heading,
            _highlighted(h.snippet, MARK_START, MARK_END),
        )
    if result.hits:
        console.print(table)
    console.print(result.summary(), markup=False, highlight=False)


def _highlighted(snippet: str, start: str, end: str) -> Any:
    from rich.text import Text

    text = Text()
    bold = False
    for part in snippet.replace(end, start).split(start):
        text.append(_term(part), style="bold yellow" if bold else None)
        bold = not bold
    return text


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="Question id, UIN (e.g. HL1234) or DATE/UIN.")],
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Show the whole story of one question: text, every answer version, groups, events."""
    with _service() as svc:
        story = svc.show(ref)
    if fmt is OutputFormat.json:
        _emit_json(story.as_dict())
        return
    typer.echo(_term(_story_text(story)))


def _foi_story(story: QuestionStory) -> str:
    """An FOI request's whole story: who asked whom, its state, every response, and the
    request's history as WhatDoTheyKnow tells it."""
    from datetime import date as date_

    from pqwatch.types import foi_state_label

    h, d = story.hit, story.details
    law = {"foi": "Freedom of Information Act", "eir": "Environmental Information Regulations"}
    lines = [
        h.heading or "(no title)",
        f"FOI request (WhatDoTheyKnow) · {h.uin} · id {h.source_id}",
        f"Requested by {h.asking_member or 'an unknown requester'} from "
        f"{h.answering_body or 'an unknown authority'}"
        + (f" ({law.get(d['law_used'], d['law_used'])})" if d.get("law_used") else ""),
        f"Sent {h.date_tabled}"
        + (f"; due {story.date_for_answer}" if story.date_for_answer else "")
        + f" · state: {foi_state_label(h.status, story.date_for_answer, date_.today())}",
    ]
    if h.url:
        lines.append(h.url)
    lines += ["", h.question_text, ""]
    if story.answers:
        latest = story.answers[-1]
        head = f"Responses, newest first (latest {latest.date_answered or 'undated'})"
        lines += [head, "-" * len(head), latest.text, ""]
    else:
        lines += ["No response yet.", ""]
    history = [e for e in d.get("events", []) if isinstance(e, dict)]
    if history:
        lines.append("Request history (WhatDoTheyKnow):")
        for step in history:
            said = step.get("status") or step.get("state") or ""
            lines.append(
                f"  {step.get('date', '?')}  {step.get('type', '?')}{f'  ({said})' if said else ''}"
            )
        lines.append("")
    if story.matched_watches:
        lines += [f"Matched watches: {', '.join(w.name for w in story.matched_watches)}", ""]
    lines.append("Events:")
    for e in story.events:
        kind = {"tabled": "sent", "answered": "response"}.get(e.kind, e.kind)
        if e.kind == "state" and e.detail:
            kind += f" {e.detail.get('from')} -> {e.detail.get('to')}"
        lines.append(f"  {e.date}  {kind}")
    return "\n".join(lines)


def _story_text(story: QuestionStory) -> str:
    from pqwatch.types import item_label

    h = story.hit
    if h.kind == "foi":
        return _foi_story(story)
    lines = [
        f"{h.heading or '(no heading yet)'}",
        f"{item_label(h.parliament, h.kind, h.house)} · {h.uin} · id {h.source_id}",
    ]
    if h.kind == "statement":
        lines.append(f"Made by {h.answering_member or 'a minister'} on {h.date_tabled}")
        if h.answering_body:
            lines.append(f"Department: {h.answering_body}")
    else:
        who = h.asking_member or "unknown member"
        extra = ", ".join(x for x in (story.asking_party, story.asking_constituency) if x)
        lines.append(f"Asked by {who}{f' ({extra})' if extra else ''}")
        lines.append(f"To: {h.answering_body or 'unknown department'}")
        due = f"; due {story.date_for_answer}" if story.date_for_answer else ""
        named = " (named day)" if story.is_named_day else ""
        lines.append(f"Tabled {h.date_tabled}{due}{named} · status: {h.status}")
    if h.url:
        lines.append(h.url)
    lines += ["", h.question_text, ""]
    labels = {"holding": "Holding answer", "answer": "Answer", "correction": "Corrected answer"}
    for a in story.answers:
        when = a.date_corrected if a.kind == "correction" and a.date_corrected else a.date_answered
        by = a.correcting_member if a.kind == "correction" else a.answering_member
        head = f"{labels.get(a.kind, a.kind)} (version {a.version}), {when or 'undated'}"
        if by:
            head += f", by {by}"
        if not a.is_full_text:
            head += " [list text only: may be cut short]"
        lines += [head, "-" * min(len(head), 78), a.text, ""]
    if story.holding_not_archived:
        lines += [
            f"Holding answer given {story.date_holding_answer} (before the archive saw this "
            "question: its text is not archived)",
            "",
        ]
    if not story.answers and h.kind != "statement":
        lines += ["Not answered yet.", ""]
    if story.attachments:
        lines.append("Attachments:")
        for att in story.attachments:
            about = f" ({att.about})" if att.about else ""
            lines.append(f"  {att.title or 'Attachment'}{about}: {att.url}")
        lines.append("")
    if story.grouped:
        lines.append("Answered together with:")
        for g in story.grouped:
            asker = f" ({g.asking_member})" if g.asking_member else ""
            lines.append(f"  {g.uin} tabled {g.date_tabled}{asker}")
        lines.append("")
    if story.matched_watches:
        lines += [f"Matched watches: {', '.join(w.name for w in story.matched_watches)}", ""]
    lines.append("Events:")
    for e in story.events:
        # A statement's first event is the day it was made (stored as "tabled" everywhere).
        kind = "made" if h.kind == "statement" and e.kind == "tabled" else e.kind
        detail = ""
        if e.kind == "transferred" and e.detail:
            detail = f" from {e.detail.get('from')} to {e.detail.get('to')}"
        lines.append(f"  {e.date}  {kind}{detail}")
    if story.others_with_uin:
        others = ", ".join(f"id {i} (tabled {d})" for i, d in story.others_with_uin)
        lines += ["", f"UIN {h.uin} was also used by: {others}"]
    return "\n".join(lines)


foi_app = typer.Typer(help="FOI requests followed on WhatDoTheyKnow.", no_args_is_help=True)
app.add_typer(foi_app, name="foi")


@foi_app.command("campaign")
def foi_campaign(
    query: Annotated[
        str,
        typer.Argument(
            help="The campaign's FOI requests: words of their title or text, "
            'asker:"requester name", authority:..., tabled:2024 (type:foi is implied).'
        ),
    ],
    fmt: Annotated[
        SearchFormat, typer.Option("--format", help="table, json (a list) or csv.")
    ] = SearchFormat.table,
) -> None:
    """One row per authority asked: its state, days since sent, overdue or not, and the
    date of its last response."""
    with _service() as svc:
        rows = svc.campaign(query)
    if fmt is SearchFormat.json:
        _emit_json([r.as_dict() for r in rows])
        return
    if fmt is SearchFormat.csv:
        import csv

        from pqwatch.search.campaign import FIELDS

        writer = csv.DictWriter(sys.stdout, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow(
                {k: _term(v) if isinstance(v, str) else v for k, v in r.as_dict().items()}
            )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(expand=True)
    for column in ("Authority", "State", "Sent", "Days", "Overdue", "Last response", "Request"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(
            _term(r.authority), _term(r.state_label), r.sent.isoformat(),
            str(r.days_since_sent), r.overdue,
            r.last_response.isoformat() if r.last_response else "—",
            _term(r.url_title or "") + (f" (+{r.requests - 1} more)" if r.requests > 1 else ""),
        )  # fmt: skip
    if rows:
        Console().print(table)
    answered = sum(r.last_response is not None for r in rows)
    late = sum(r.overdue != "no" for r in rows)
    typer.echo(f"{len(rows)} authorities; {answered} responded; {late} overdue")


watches_app = typer.Typer(
    help="The configured watches, and a preview of a new query.", no_args_is_help=False
)
app.add_typer(watches_app, name="watches")


@watches_app.callback(invoke_without_command=True)
def watches(ctx: typer.Context, fmt: FormatOpt = OutputFormat.text) -> None:
    """List each watch with its matches (all time, last 7 days) and its last match."""
    if ctx.invoked_subcommand is not None:
        return
    with _service() as svc:
        stats = svc.watches()
    if fmt is OutputFormat.json:
        _emit_json([s.__dict__ for s in stats])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for col in ("Watch", "Query", "Matches", "Last 7 days", "Last match"):
        table.add_column(col)
    for s in stats:
        last = (
            f"{s.last_match_date} {s.last_match_heading or ''} ({s.last_match_uin})"
            if s.last_match_date
            else "—"
        )
        table.add_row(
            _term(s.name), _term(s.query), str(s.matches), str(s.matches_last_7_days), _term(last)
        )
    Console().print(table)
    if not stats:
        typer.echo("No watches configured: add [[watches]] to the config file.")


@watches_app.command()
def preview(
    query: Annotated[str, typer.Argument(help="The query a new watch would use.")],
    since: Annotated[
        str | None, typer.Option("--since", help="First day (default: 12 months ago).")
    ] = None,
    until: UntilOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """How many archive items a query would have matched in a period (the last 12 months
    unless told), with five examples, to tune a watch before adding it."""
    with _service() as svc:
        p = svc.preview(query, _parse_date(since, "--since"), _parse_date(until, "--until"))
    if fmt is OutputFormat.json:
        _emit_json(
            {
                "query": p.query,
                "since": p.since.isoformat(),
                "until": p.until.isoformat(),
                "answered": p.answered,
                "tabled": p.tabled,
                "archive_first": p.archive_first.isoformat() if p.archive_first else None,
                "archive_last": p.archive_last.isoformat() if p.archive_last else None,
                "examples": [h.as_dict() for h in p.examples],
            }
        )
        return
    typer.echo(
        _term(
            f"From {p.since} to {p.until} {p.query!r} would have matched "
            f"{p.answered} answer(s) and {p.tabled} newly tabled question(s)."
        )
    )
    if not p.archive_covers_period:
        if p.archive_first is None:
            typer.echo("The archive is empty: run `pqwatch poll` or `pqwatch backfill` first.")
        else:
            typer.echo(
                f"The archive holds nothing in that period: it covers {p.archive_first} to "
                f"{p.archive_last} (try --since {p.archive_first} --until {p.archive_last})."
            )
    for h in p.examples:
        when = h.date_answered or h.date_tabled
        line = f"  {when}  {h.place} {h.uin}  {h.heading or ''} — {h.asking_member or '?'}"
        typer.echo(_term(line))
        if h.url:
            typer.echo(f"      {h.url}")


@app.command()
def digest(
    subscriber: Annotated[
        str | None, typer.Option("--subscriber", help="Only this subscriber (email).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Write the messages to --out; mark nothing sent.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for .eml files (dry run: default outbox/dry-run)."),
    ] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Send each subscriber what polls have matched since their last digest, now."""
    with _service() as svc:
        result = svc.send_digests(
            subscriber,
            dry_run=dry_run,
            out=out,
            on_wait=lambda note: typer.echo(f"pqwatch: {note}", err=True),
        )
    _print_digests(result, fmt)
    if result.error:
        raise DeliveryError(result.error + " (the digest stays pending for the next run)")
    if result.refused:
        raise DeliveryError(result.refused)


def _print_digests(result: DigestRun, fmt: OutputFormat) -> None:
    if fmt is OutputFormat.json:
        _emit_json([o.__dict__ for o in result.outcomes])
        return
    if not result.outcomes:
        typer.echo("No digest due.")
    for o in result.outcomes:
        typer.echo(_term(f"{o.email}: {o.status} ({o.items} item(s)): {o.detail}"))


@app.command()
def feeds(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the feed files (default [feeds] out_dir)."),
    ] = None,
) -> None:
    """Write the RSS and Atom feeds (one per watch, and all.rss/all.atom) now."""
    with _service() as svc:
        result = svc.build_feeds(out)
    typer.echo(
        f"Feeds in {result.folder}: {len(result.written)} file(s) written, "
        f"{len(result.unchanged)} unchanged."
    )


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            help="Address to listen on ([web] host; 127.0.0.1 unless told).",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=0,
            max=65535,
            help="Port ([web] port, 8080; 0: any free one).",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Processes serving the port ([web] workers, 1): up to one per core.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the web app: search, each item's page, the feeds (with ETag/304) and the
    one-click unsubscribe links of digests."""
    with _service() as svc:
        # Announces where it listens; SIGTERM or Ctrl-C lets requests in flight finish.
        svc.serve(host, port, workers).run(typer.echo)


@app.command()
def status(fmt: FormatOpt = OutputFormat.text) -> None:
    """What happened last and what happens next: polls, failures, deliveries, schedule."""
    with _service() as svc:
        report = svc.status()
    if fmt is OutputFormat.json:
        _emit_json(report.__dict__)
        return
    typer.echo(f"Database: {report.database}")
    typer.echo(f"Daemon (pqwatch run): {'running' if report.daemon_running else 'not running'}")
    if not report.sources:
        typer.echo("Sources: never polled yet")
    for src in report.sources:
        fails = src["consecutive_failures"]
        typer.echo(
            f"Source {src['source']}: last successful poll {src['last_success_at'] or 'never'}; "
            f"{fails} failure(s) in a row; archive complete up to {src['cursor_date'] or '-'}"
        )
        if src["last_error"] and fails:
            typer.echo(_term(f"  last error: {src['last_error']}"))
    d = report.digests
    typer.echo(
        f"Digests: {d.get('sent', 0)} sent ({d.get('items_sent', 0)} items), "
        f"{d.get('failed', 0)} refused for good, {d.get('waiting', 0)} waiting to be sent; "
        f"{d.get('items_pending', 0)} matched items not sent yet"
    )
    for f in report.failed_digests:
        typer.echo(_term(f"  refused for good: {f['email']}: {f['reply']}"))
    for w in report.retrying_digests:
        line = f"  waiting: {w['email']}"
        if w["attempts"]:
            line += f" after {w['attempts']} attempt(s): {w['last_error']}"
        if w["retry_at"]:
            line += f"; next try after {w['retry_at']}"
        typer.echo(_term(line))
    typer.echo(f"Next poll: {report.next_poll}")
    for email, when in report.next_digests.items():
        typer.echo(f"Next digest for {email}: {when}")


db_app = typer.Typer(
    help="The database itself: move the archive to PostgreSQL.", no_args_is_help=True
)
app.add_typer(db_app, name="db")


@db_app.command("copy")
def db_copy(
    to: Annotated[
        str,
        typer.Option(
            "--to", help="The new, empty database: postgresql+psycopg://user:password@host/dbname."
        ),
    ],
    batch_rows: Annotated[
        int, typer.Option("--batch-rows", min=1, help="Rows per batch (one transaction each).")
    ] = 5000,
) -> None:
    """Copy the SQLite archive ([database] url) into an empty PostgreSQL database; then
    point [database] url (or PQWATCH_DATABASE_URL) at it. Stop `pqwatch run` first. Stopped
    part-way, run it again: it carries on where it stopped."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bar = Progress(
        TextColumn("[bold]{task.description:<14}"),
        BarColumn(),
        MofNCompleteColumn(),
        transient=True,
        disable=not sys.stderr.isatty(),
        console=_stderr_console(),
    )
    tasks: dict[str, Any] = {}

    def report(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    with _service() as svc, bar:
        result = svc.copy_database(to, report, batch_rows)
    if result.nothing_to_copy:
        typer.echo(
            f"Nothing to copy: {result.target} already holds all {result.rows_total} rows "
            f"of {result.source}."
        )
    else:
        rate = result.rows_copied / max(result.seconds, 1e-6)
        typer.echo(
            f"Copied {result.rows_copied} rows from {result.source} to {result.target} "
            f"({result.rows_total} in all; {result.seconds:.1f} s, {rate:.0f} rows/s)."
        )
    typer.echo("To use it, set [database] url (or PQWATCH_DATABASE_URL) to that URL.")


def main() -> None:
    """Entry point: run the app and turn every failure into one line and an exit code."""
    # Typer bundles its own click in recent versions; find its exception classes either way.
    mro = typer.BadParameter.__mro__
    UsageError: type[Any] = next(c for c in mro if c.__name__ == "UsageError")
    ClickException: type[Any] = next(c for c in mro if c.__name__ == "ClickException")
    Abort: type[BaseException] = typer.Abort

    try:
        rv = app(standalone_mode=False, prog_name="pqwatch")
    except UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        path = exc.ctx.command_path if exc.ctx else ""
        if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
            # `pqwatch` alone: the help itself, as it reads with --help (exit 2: no command).
            typer.echo(exc.ctx.get_help())
            sys.exit(2)
        if type(exc).__name__ == "NoSuchOption" and path.endswith(("search", "preview")):
            # A query that starts with "-" (an exclusion) looks like an option to the shell.
            # The example uses only options this command has.
            opts = {o for p in exc.ctx.command.params for o in getattr(p, "opts", ())}
            example = f"{path}{' --limit 5' if '--limit' in opts else ''} -- '-adult care'"
            hint = f" (a query starting with '-' goes after --, e.g. {example})"
        _fail(f"usage error: {exc.format_message()}{hint}", 2)
    except ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except (Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except PQWatchError as exc:
        _fail(str(exc), exc.exit_code)
    except Exception as exc:  # a bug: still one line, unless debugging
        if os.environ.get("PQWATCH_DEBUG"):
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (PQWATCH_DEBUG=1 shows more)", 1)
    sys.exit(rv if isinstance(rv, int) else 0)


def _fail(message: str, code: int) -> None:
    line = " ".join(_term(str(message)).split())
    sys.stderr.write(f"pqwatch: error: {line}\n")
    sys.exit(code)
