"""Charts as SVG, drawn on the server: pure functions from numbers to markup. No script, no
style attribute (the Content-Security-Policy allows neither), no third-party library.

Each chart is an ``<svg role="img">`` named by its ``<title>`` and ``<desc>``, sized by its
viewBox only (``width="100%"``), so it scales with the column from a 375 px phone to a
desktop; the page should cap its width (``figure.chart svg { max-width: 36rem }``). Every
text is cleaned of characters XML cannot hold and escaped; a long label is cut with an
ellipsis in the picture, and the table beside it (templates/web/_charts.html) has it whole.
Colours are dark enough for 3:1 against white (WCAG 1.4.11), and the text 4.5:1.

`watch_figures` turns a WatchOverview into the watch page's five figures: a chart and the
rows of its table each.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

from markupsafe import Markup

from pqwatch.search.overview import WatchOverview

# The drawing's own units; the browser scales them to the column.
WIDTH = 440
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"
TEXT = "#1b1b1b"  # 17:1 on white
MUTED = "#52525b"  # 7.7:1
GRID = "#d4d4d8"  # decoration only
BLUE = "#1d4ed8"  # 6.7:1
GREEN = "#15803d"  # 5.0:1
DARK_GREEN = "#166534"  # 7.1:1
AMBER = "#b45309"  # 5.0:1
RED = "#b91c1c"  # 6.5:1
DARK_RED = "#7f1d1d"  # 10:1
# Font sizes in the drawing's units (times 0.78 on a 375 px phone, about 10.9 px for LABEL).
LABEL = 14  # a bar's label and value, the empty message
AXIS = 13  # the labels under columns
SMALL = 12  # the value axis
# Label widths are estimated: an average character is about 0.56 of the font size.
CHAR = 0.56


@dataclass(frozen=True)
class Bar:
    label: str  # the whole label: the bar's tooltip and the table
    value: int
    axis_label: str | None = None  # shorter text under a column ("Jan"); None: label
    axis_group: str | None = None  # a second line under it, shown where it changes ("2025")
    colour: str = BLUE


@dataclass(frozen=True)
class Figure:
    """A chart and the table beside it, as templates/web/_charts.html renders them."""

    id: str  # unique on the page: the figure's id and the prefix of the SVG's ids
    caption: str
    svg: Markup
    columns: tuple[str, ...]  # the table's column headings
    rows: tuple[tuple[str, ...], ...]  # first cell: the row's heading
    empty: str | None = None  # said instead of chart and table when there are no rows
    note: str = ""  # a sentence under the table: what is counted
    text_columns: int = 1  # the leading columns that are text; the rest are numbers


# -- text ---------------------------------------------------------------------------------------

# Characters XML 1.0 cannot hold (C0 controls but tab/newline/CR, lone surrogates, U+FFFE/F),
# and C1 controls and DEL, which it can but nobody means.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def clean(text: object) -> str:
    """One line of text that XML can hold: whitespace runs become one space."""
    return " ".join(_NOT_XML.sub("", str(text)).split())


def _esc(text: object) -> str:
    return escape(clean(text), quote=True)


def _width(text: str, size: float) -> float:
    """About how wide `text` is drawn at `size` (wide East Asian characters count twice)."""
    units = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return units * size * CHAR


def truncate(text: str, size: float, room: float) -> str:
    """`text` cut to fit `room` at `size`, with an ellipsis when cut."""
    text = clean(text)
    if _width(text, size) <= room:
        return text
    out = ""
    for ch in text:
        if _width(out + ch + "…", size) > room:
            break
        out += ch
    return out.rstrip() + "…"


def _id(text: str) -> str:
    """An XML id: letters, digits, - and _ only, starting with a letter."""
    ident = re.sub(r"[^A-Za-z0-9_-]", "-", text)
    return ident if ident[:1].isalpha() else "c-" + ident


def number(n: int) -> str:
    """12,345"""
    return f"{n:,}"


def compact(n: float) -> str:
    """An axis number, short: 950, 1.2k, 35k, 4M, 2bn; past a trillion, 1e+15."""
    n = float(n)
    for size, suffix in ((1e12, None), (1e9, "bn"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            if suffix is None:
                return f"{n:.0e}"
            value = n / size
            text = f"{value:.1f}" if value < 10 else f"{value:.0f}"
            return text.removesuffix(".0") + suffix
    return f"{n:.0f}" if n == int(n) else f"{n:.1f}"


def nice_scale(top: int, ticks: int = 4) -> tuple[int, int]:
    """(step, maximum) of an axis from 0 showing `top`: a step of 1, 2 or 5 times a power of
    ten, whole numbers, about `ticks` steps."""
    top = max(int(top), 1)
    raw = top / ticks
    power = 10 ** max(0, math.floor(math.log10(raw))) if raw >= 1 else 1
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return step, step * -(-top // step)


# -- the SVG shell ------------------------------------------------------------------------------


def _svg(chart_id: str, height: float, title: str, desc: str, body: list[str]) -> Markup:
    ident = _id(chart_id)
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0f}" '
        f'width="100%" role="img" aria-labelledby="{ident}-title {ident}-desc" '
        f'class="chart-svg" font-family="{_esc(FONT)}" font-size="{LABEL}" fill="{TEXT}">'
    )
    parts = [
        head,
        f'<title id="{ident}-title">{_esc(clean(title) or "Chart")}</title>',
        f'<desc id="{ident}-desc">{_esc(desc)}</desc>',
        *body,
        "</svg>",
    ]
    return Markup("\n".join(parts))  # noqa: S704 - every text above went through _esc


def _empty(chart_id: str, title: str, message: str) -> Markup:
    """The chart's place when there is nothing to draw: the message, in a light frame."""
    body = [
        f'<rect x="0.5" y="0.5" width="{WIDTH - 1}" height="59" rx="4" fill="none" '
        f'stroke="{GRID}"/>',
        f'<text x="{WIDTH / 2:.0f}" y="35" text-anchor="middle" fill="{MUTED}">'
        f"{_esc(truncate(message, LABEL, WIDTH - 24))}</text>",
    ]
    return _svg(chart_id, 60, title, message, body)


def _values(bars: Sequence[Bar]) -> list[int]:
    return [max(0, int(b.value)) for b in bars]  # a count below zero is drawn as none


# -- the charts ---------------------------------------------------------------------------------


def column_chart(
    bars: Sequence[Bar],
    *,
    chart_id: str,
    title: str,
    desc: str,
    empty: str = "Nothing to show.",
    unit: str = "",
    label_every: int = 1,
) -> Markup:
    """Vertical bars (a time series): a value axis with gridlines on the left, a column per
    bar, and every `label_every`th bar's axis label underneath, counted back from the
    last (the newest month is always labelled), with its `axis_group` on a second line where
    that changes (the year). All zero or no bars: the `empty` message."""
    values = _values(bars)
    if not any(values):
        return _empty(chart_id, title, empty)
    step, top = nice_scale(max(values))
    left, right, above, plot_h = 46, 8, 10, 160
    slot = (WIDTH - left - right) / len(bars)
    gap = min(slot * 0.2, 6)
    base = above + plot_h
    body: list[str] = []
    for tick in range(0, top + 1, step):  # gridlines and their numbers
        y = base - plot_h * tick / top
        body.append(
            f'<line x1="{left}" x2="{WIDTH - right}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{GRID}" stroke-width="1"/>'
        )
        body.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="{SMALL}" '
            f'fill="{MUTED}">{_esc(compact(tick))}</text>'
        )
    every = max(1, label_every)
    group: str | None = None  # the last group label drawn
    for i, (bar, value) in enumerate(zip(bars, values, strict=True)):
        x = left + i * slot + gap / 2
        h = plot_h * value / top
        body.append(
            f"<g><title>{_esc(_tip(bar, value, unit))}</title>"
            f'<rect class="bar" x="{x:.1f}" y="{base - h:.1f}" width="{slot - gap:.1f}" '
            f'height="{h:.1f}" fill="{_esc(bar.colour)}"/></g>'
        )
        if (len(bars) - 1 - i) % every:
            continue
        room = max(slot * every - 4, 1)
        lines = [truncate(bar.axis_label or bar.label, AXIS, room)]
        if bar.axis_group is not None and bar.axis_group != group:
            group = bar.axis_group
            lines.append(truncate(group, AXIS, room))
        for n, text in enumerate(lines):
            half = _width(text, AXIS) / 2  # kept inside the picture at either end
            middle = min(max(x + (slot - gap) / 2, half), WIDTH - half)
            body.append(
                f'<text x="{middle:.1f}" y="{base + 18 + 16 * n}" text-anchor="middle" '
                f'font-size="{AXIS}" fill="{TEXT if n == 0 else MUTED}">{_esc(text)}</text>'
            )
    body.append(
        f'<line x1="{left}" x2="{WIDTH - right}" y1="{base}" y2="{base}" stroke="{MUTED}"/>'
    )
    return _svg(chart_id, base + 44, title, desc, body)


def bar_chart(
    bars: Sequence[Bar],
    *,
    chart_id: str,
    title: str,
    desc: str,
    empty: str = "Nothing to show.",
    unit: str = "",
) -> Markup:
    """Horizontal bars (a ranking), one row each: the label above its bar (a phone has
    room for a label across the whole width, not beside a bar) and the value at the bar's
    end. No bars, or all zero: the `empty` message."""
    values = _values(bars)
    if not bars or not any(values):
        return _empty(chart_id, title, empty)
    shown = [number(v) if v < 10**10 else compact(v) for v in values]
    track = WIDTH - max(_width(t, LABEL) for t in shown) - 8  # the longest bar leaves room
    row, body = 46, []
    for i, (bar, value, text) in enumerate(zip(bars, values, shown, strict=True)):
        y = i * row
        w = max(track * value / max(values), 1 if value else 0)
        body.append(
            f"<g><title>{_esc(_tip(bar, value, unit))}</title>"
            f'<text x="0" y="{y + 15}">{_esc(truncate(bar.label, LABEL, WIDTH))}</text>'
            f'<rect class="bar" x="0" y="{y + 21}" width="{w:.1f}" height="16" rx="2" '
            f'fill="{_esc(bar.colour)}"/>'
            f'<text x="{w + 5:.1f}" y="{y + 34}">{text}</text></g>'
        )
    return _svg(chart_id, len(bars) * row, title, desc, body)


def _tip(bar: Bar, value: int, unit: str) -> str:
    """A bar's tooltip: its whole label and value."""
    return f"{clean(bar.label)}: {number(value)}" + (f" {unit}" if unit else "")


# -- the watch page's figures -------------------------------------------------------------------

LATENESS_COLOURS = (DARK_GREEN, GREEN, AMBER, RED, DARK_RED)


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "–"


def _most(bars: Sequence[Bar], unit: str) -> str:
    best = max(bars, key=lambda b: b.value)
    return f"Most: {clean(best.label)}, {number(best.value)} {unit}."


def watch_figures(ov: WatchOverview, prefix: str = "watch") -> tuple[Figure, ...]:
    """The watch page's figures, in page order: matches per month, parties, members,
    departments, how long answers took. `prefix` makes their ids unique on the page."""
    return (
        months_figure(ov, f"{prefix}-months"),
        parties_figure(ov, f"{prefix}-parties"),
        members_figure(ov, f"{prefix}-members"),
        departments_figure(ov, f"{prefix}-departments"),
        timeliness_figure(ov, f"{prefix}-timeliness"),
    )


def months_figure(ov: WatchOverview, ident: str) -> Figure:
    first, last = ov.months[0].label, ov.months[-1].label
    caption = f"Questions matched per month, {first} to {last}"
    bars = [Bar(m.label, m.questions, f"{m.month:%b}", str(m.month.year)) for m in ov.months]
    total = ov.totals.period_questions
    desc = f"A column per month from {first} to {last}. {number(total)} questions in all. " + (
        _most(bars, "questions") if total else ""
    )
    return Figure(
        id=_id(ident),
        caption=caption,
        svg=column_chart(
            bars,
            chart_id=ident,
            title=caption,
            desc=desc,
            empty=f"No matches from {first} to {last}.",
            unit="questions",
            label_every=3,
        ),
        columns=("Month", "Questions", "Tabled", "Answered"),
        rows=tuple(
            (m.label, number(m.questions), number(m.tabled), number(m.answered)) for m in ov.months
        ),
        note=(
            "A question counts once a month, in each month it was tabled, answered or "
            "changed; tabled and answered count those events."
        ),
    )


def _ranking_rows(
    rows: list[tuple[str, ...]], others: int, other_names: int, what: str
) -> tuple[tuple[str, ...], ...]:
    if others:
        rows.append((f"{number(other_names)} other {what}", number(others)))
    return tuple(rows)


def _ranking_figure(
    ov: WatchOverview,
    ident: str,
    *,
    caption: str,
    bars: list[Bar],
    per: str,
    empty: str,
    columns: tuple[str, ...],
    rows: tuple[tuple[str, ...], ...],
    text_columns: int = 1,
) -> Figure:
    """A ranking (parties, members, departments): a bar each, most questions first, with
    its table; the same empty message for the picture and the table."""
    desc = f"A bar per {per}, most questions first. {_most(bars, 'questions')}" if bars else ""
    return Figure(
        id=_id(ident),
        caption=caption,
        svg=bar_chart(
            bars,
            chart_id=ident,
            title=caption,
            desc=desc or caption,
            empty=empty,
            unit="questions",
        ),
        columns=columns,
        text_columns=text_columns,
        rows=rows,
        empty=None if bars else empty,
        note=_period_note(ov),
    )


def parties_figure(ov: WatchOverview, ident: str) -> Figure:
    r = ov.parties
    return _ranking_figure(
        ov,
        ident,
        caption="Who asks: questions by the asker's party",
        bars=[Bar(c.label, c.count) for c in r.top],
        per="party",
        empty="No questions with an asker in this period.",
        columns=("Party", "Questions"),
        rows=_ranking_rows(
            [(c.label, number(c.count)) for c in r.top], r.others, r.other_names, "parties"
        ),
    )


def members_figure(ov: WatchOverview, ident: str) -> Figure:
    r = ov.members
    return _ranking_figure(
        ov,
        ident,
        caption="Who asks: the members asking most",
        bars=[Bar(f"{m.label} ({m.party})" if m.party else m.label, m.count) for m in r.top],
        per="member",
        empty="No questions with an asker in this period.",
        columns=("Member", "Party", "Questions"),
        text_columns=2,
        rows=_ranking_rows(
            [(m.label, m.party or "", number(m.count)) for m in r.top],
            r.others,
            r.other_names,
            "members",
        ),
    )


def departments_figure(ov: WatchOverview, ident: str) -> Figure:
    r = ov.departments
    return _ranking_figure(
        ov,
        ident,
        caption="Which departments answer",
        bars=[Bar(c.label, c.count) for c in r.top],
        per="department",
        empty="No questions to a department in this period.",
        columns=("Department", "Questions"),
        rows=_ranking_rows(
            [(c.label, number(c.count)) for c in r.top], r.others, r.other_names, "departments"
        ),
    )


def timeliness_figure(ov: WatchOverview, ident: str) -> Figure:
    caption = "How long answers take, against the date due"
    t = ov.timeliness
    bars = [
        Bar(b.label, b.count, colour=c) for b, c in zip(t.buckets, LATENESS_COLOURS, strict=False)
    ]
    summary = (
        f"{number(t.on_time)} of {number(t.with_due_date)} answers with a due date were on time "
        f"({_share(t.on_time, t.with_due_date)}); {number(t.late)} were late."
        if t.with_due_date
        else "No answered question in this period had a due date."
    )
    medians = []
    if t.median_days_to_answer is not None:
        medians.append(f"Median time to answer: {_days(t.median_days_to_answer)} from tabling.")
    if t.median_days_late is not None:
        medians.append(f"Median against the due date: {_late(t.median_days_late)}.")
    if t.waiting:
        medians.append(
            f"{number(t.waiting)} not answered yet, {number(t.overdue)} of them past the due date."
        )
    rows = tuple((b.label, number(b.count), _share(b.count, t.with_due_date)) for b in t.buckets)
    return Figure(
        id=_id(ident),
        caption=caption,
        svg=bar_chart(
            bars,
            chart_id=ident,
            title=caption,
            desc=summary,
            empty="No answers with a due date in this period.",
            unit="answers",
        ),
        columns=("When answered", "Answers", "Share"),
        rows=rows if t.with_due_date else (),
        empty=None if t.with_due_date else "No answers with a due date in this period.",
        note=" ".join([summary, *medians]),
    )


def _days(n: float) -> str:
    text = f"{n:.1f}".removesuffix(".0")
    return f"{text} day" + ("" if text == "1" else "s")


def _late(n: float) -> str:
    if n == 0:
        return "on the day due"
    return f"{_days(abs(n))} {'late' if n > 0 else 'early'}"


def _day(d: date) -> str:
    return f"{d.day} {d:%B %Y}"


def _period_note(ov: WatchOverview) -> str:
    return f"Each question matched from {_day(ov.since)} to {_day(ov.until)} counts once."
